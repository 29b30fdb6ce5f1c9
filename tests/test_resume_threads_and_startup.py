"""A resume on another torch thread count (warned; `snnlab train --resume` takes the checkpoint's), Ctrl-C while
the command line or a sweep worker starts, a run record as --config, and hidden given as a tuple."""
import argparse
import json
import os
import signal
import warnings
from concurrent.futures import ProcessPoolExecutor

import pytest
import torch

import snnlab.cli as cli
import snnlab.experiments.sweeps as sweeps
from snnlab.config_args import config_from_args
from snnlab.training import ExperimentConfig, Trainer, load_checkpoint

TINY = dict(dataset="digits", hidden=[16], epochs=1, max_batches_per_epoch=2, batch_size=32, num_steps=8,
            eval_max_batches=1, device="cpu", seed=0)


@pytest.fixture
def threads():
    """Set torch's thread count in a test; put back after."""
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def _trained_on_one_thread(run_dir, threads) -> None:
    threads(1)
    Trainer(ExperimentConfig(**TINY), run_dir=str(run_dir), progress=False).run()
    assert load_checkpoint(run_dir / "checkpoint.pt")["torch_threads"] == 1


def _thread_warnings(seen) -> list[str]:
    return [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning) and "thread" in str(w.message)]


def test_resume_on_another_thread_count_warns_once_and_says_how_to_match(tmp_path, threads):
    _trained_on_one_thread(tmp_path, threads)
    threads(2)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        Trainer.resume_from(tmp_path, ExperimentConfig(**{**TINY, "epochs": 2}), progress=False)
    said = _thread_warnings(seen)
    assert len(said) == 1
    assert "trained with 1 torch thread(s), this process resumes it with 2" in said[0]
    assert "will not repeat the uninterrupted one bit for bit" in said[0] and "torch.set_num_threads(1)" in said[0]
    threads(1)  # the same count: nothing said
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        Trainer.resume_from(tmp_path, ExperimentConfig(**{**TINY, "epochs": 2}), progress=False)
    assert _thread_warnings(seen) == []


def test_a_sweep_worker_leaves_the_thread_warning_to_its_sweep(tmp_path, threads):
    from snnlab.training.resume import other_threads_said

    _trained_on_one_thread(tmp_path, threads)
    threads(2)
    with warnings.catch_warnings(record=True) as seen, other_threads_said():
        warnings.simplefilter("always")
        Trainer.resume_from(tmp_path, progress=False)
    assert _thread_warnings(seen) == []


def test_train_resume_takes_the_checkpoints_thread_count_unless_threads_is_given(tmp_path, threads, capsys):
    stopped = tmp_path / "a"
    threads(1)
    trainer = Trainer(ExperimentConfig(**{**TINY, "epochs": 2}), run_dir=str(stopped), progress=False)
    trainer.events.subscribe(lambda ev: trainer.stop() if ev.kind == "step" and trainer.step == 1 else None)
    trainer.run()
    threads(2)
    assert cli.main(["train", "--resume", "--run-dir", str(stopped), "--no-store", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "resuming on 1 torch thread(s), as the checkpoint's run trained" in err and "--threads N overrides" in err
    assert load_checkpoint(stopped / "checkpoint.pt")["torch_threads"] == 1
    _trained_on_one_thread(tmp_path / "b", threads)
    with pytest.warns(RuntimeWarning, match=r"trained with 1 torch thread\(s\), this process resumes it with 2"):
        assert cli.main(["train", "--resume", "--run-dir", str(tmp_path / "b"), "--epochs", "2", "--threads", "2",
                         "--no-store", "--quiet"]) == 0


def test_ctrl_c_while_the_command_line_starts_exits_130_without_a_traceback(monkeypatch, capsys):
    def interrupted_import(**kwargs):  # a Ctrl-C while torch is imported to build the config flags
        signal.raise_signal(signal.SIGINT)
        raise AssertionError("SIGINT did not interrupt")

    monkeypatch.setattr(cli, "build_parser", interrupted_import)
    try:
        status = cli.main(["train", "--no-store"])
    except KeyboardInterrupt:
        pytest.fail("a Ctrl-C at start-up escaped main() (a traceback, exit by signal)")
    assert status == 130
    assert "Traceback" not in capsys.readouterr().err


class _InterruptedAtStart(ProcessPoolExecutor):
    """A sweep's process pool whose workers get SIGINT at once, while they still import torch."""

    def submit(self, *args, **kwargs):
        fut = super().submit(*args, **kwargs)
        for proc in list(self._processes.values()):
            os.kill(proc.pid, signal.SIGINT)
        return fut


def test_ctrl_c_while_a_sweep_worker_starts_cancels_its_runs(monkeypatch):
    import multiprocessing

    def pool(max_workers, cancel=None):
        return _InterruptedAtStart(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=sweeps._worker_init, initargs=(cancel,))

    monkeypatch.setattr(sweeps, "process_pool", pool)
    result = sweeps.sweep(ExperimentConfig(**TINY), {"seed": [0, 1]}, progress=False)
    assert result.table["status"].tolist() == ["cancelled", "cancelled"], result.table[["status", "error"]]


def test_a_run_record_as_config_uses_its_config_with_a_note(tmp_path, capsys):
    record = tmp_path / "record.json"  # what `snnlab runs show RUN > record.json` writes
    record.write_text(json.dumps({"run_id": "be89aa", "name": "a", "status": "finished", "message": None,
                                  "config": {**TINY, "epochs": 3}, "summary": {"accuracy": 0.5}}, indent=2))
    cfg = config_from_args(argparse.Namespace(config=str(record)))
    assert (cfg.epochs, cfg.hidden) == (3, [16])
    assert capsys.readouterr().err.strip() == (f"--config: {str(record)!r} is a run record (snnlab runs show); "
                                               'using its "config" (run be89aa)')


def test_hidden_takes_a_tuple_and_keeps_a_list():
    cfg = ExperimentConfig(hidden=(64, 32))
    assert cfg.hidden == [64, 32] and type(cfg.hidden) is list
    cfg.hidden = (8,)
    assert cfg.hidden == [8] and type(cfg.hidden) is list
    assert cfg.to_dict() == ExperimentConfig.from_dict({"hidden": [8]}).to_dict()


def _blocked_signals() -> list[str]:
    return sorted(s.name for s in signal.pthread_sigmask(signal.SIG_BLOCK, []))


def test_a_sweep_on_the_users_own_process_pool_leaves_its_workers_signals_alone():
    """Only snnlab's own pools' workers unblock the signals held while they start: a pool of the user's own kept them
    blocked for its whole life (a Ctrl-C never reached its workers again; reviewer r2's user_pool_sigmask.py)."""
    import multiprocessing

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        sweeps.sweep(ExperimentConfig(**TINY), {"seed": [0]}, executor=pool, progress=False)
        assert pool.submit(_blocked_signals).result() == []
