"""A resume asks for no fewer epochs than its checkpoint trained (refused before anything recorded changes), and the
command line tells where a run stands counting epochs from 1, as its progress bar does."""
import json
import signal
import sqlite3

import pytest

from snnlab.cli import main
from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig, Trainer, load_checkpoint
from snnlab.training.resume import ResumeConfigError, position_text, trained_epochs

TINY = ["--hidden", "8", "--num-steps", "8", "--batch-size", "32", "--max-batches-per-epoch", "2",
        "--eval-max-batches", "1", "--quiet"]
KEPT = "run_id, name, status, message, config, created, checkpoint, summary"  # (all but the time of the last update)


def tiny(**kw) -> ExperimentConfig:
    base = dict(hidden=[8], num_steps=8, batch_size=32, epochs=2, max_batches_per_epoch=2, eval_max_batches=1,
                device="cpu")
    return ExperimentConfig(**{**base, **kw})


def recorded(run_dir, store: str, columns: str = "*") -> tuple:
    """Everything a refused resume must leave as it was: the run folder's files and the store's rows (``columns`` of
    its runs table)."""
    with sqlite3.connect(store) as db:
        runs = db.execute(f"select {columns} from runs order by run_id").fetchall()
        metrics = db.execute("select * from metrics order by rowid").fetchall()
    return (run_dir / "config.json").read_bytes(), (run_dir / "checkpoint.pt").read_bytes(), runs, metrics


def test_cli_refuses_fewer_epochs_than_trained_and_changes_nothing(tmp_path, capsys):
    run_dir, store = tmp_path / "run", str(tmp_path / "runs.sqlite")
    assert main(["train", *TINY, "--epochs", "3", "--run-dir", str(run_dir), "--store", store]) == 0
    before = recorded(run_dir, store)
    capsys.readouterr()
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--epochs", "2", "--store", store]) == 2
    out, err = capsys.readouterr()
    assert "test results" not in out and "resumed" not in out  # nothing ran
    assert "cannot resume with --epochs 2: its run has trained 3 of 3 epochs (step 6, finished)" in err
    assert "--epochs must be at least 3" in err
    assert recorded(run_dir, store) == before
    run_id = RunStore(store).list_runs()["run_id"][0]
    assert RunStore(store).get_run(run_id)["config"]["epochs"] == 3
    assert json.loads((run_dir / "config.json").read_text())["epochs"] == 3

    # as many epochs as trained: nothing left to train; the finished run says so and writes its results again
    kept = recorded(run_dir, store, KEPT)[2:]
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--epochs", "3", "--store", store, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "already finished after 3 of 3 epochs (step 6): nothing left to train" in out and "test results" in out
    assert recorded(run_dir, store, KEPT)[2:] == kept  # the store's row (config, summary...) and metrics as they were
    assert json.loads((run_dir / "config.json").read_text()) == json.loads(before[0])

    # ... and another setting with nothing to train it would be recorded unused: refused too
    before = recorded(run_dir, store)
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--lr", "0.5", "--store", store]) == 2
    assert "--lr 0.5 (the checkpoint's: --lr 0.002) would be recorded without being used" in capsys.readouterr().err
    assert recorded(run_dir, store) == before

    # more epochs train on
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--epochs", "4", "--store", store, "--quiet"]) == 0
    assert "resumed after 3 of 4 epochs (step 6)" in capsys.readouterr().out
    assert load_checkpoint(run_dir)["epoch"] == 4


def test_trainer_refuses_fewer_epochs_before_writing_anything(tmp_path):
    store_path = str(tmp_path / "runs.sqlite")
    Trainer(tiny(epochs=2), run_dir=tmp_path / "run", store=RunStore(store_path), progress=False).run()
    before = recorded(tmp_path / "run", store_path)
    with pytest.raises(ResumeConfigError, match=r"cannot resume with epochs 1: its run has trained 2 of 2 epochs "
                                                r"\(step 4, finished\).*epochs must be at least 2"):
        Trainer.resume_from(tmp_path / "run", tiny(epochs=1), store=RunStore(store_path), progress=False)
    assert recorded(tmp_path / "run", store_path) == before
    with pytest.raises(ResumeConfigError, match="would be recorded without being used"):
        Trainer.resume_from(tmp_path / "run", tiny(epochs=2, dropout=0.2), progress=False)
    same = Trainer.resume_from(tmp_path / "run", tiny(epochs=2), progress=False)  # nothing to train: allowed
    assert same.position() == "after 2 of 2 epochs (step 4)"


def test_a_run_stopped_inside_an_epoch_must_finish_that_epoch(tmp_path):
    cfg = tiny(epochs=3)
    first = Trainer(cfg, run_dir=tmp_path, progress=False)
    first.events.subscribe(lambda e: first.stop() if e.step == 3 else None, kinds=["step"])
    first.run()
    assert first.state == "stopped" and first.position() == "during epoch 2/3 (step 3)"
    ck = load_checkpoint(tmp_path)
    assert (ck["epoch"], ck["step"]) == (1, 3) and trained_epochs(ck) == (1, True)  # stored data stays as it was
    with pytest.raises(ResumeConfigError, match=r"stopped during epoch 2/3 \(step 3\), after 1 complete epoch.*"
                                                r"epochs must be at least 2 \(to finish the epoch it stopped in"):
        Trainer.resume_from(tmp_path, cfg.copy(epochs=1), progress=False)
    resumed = Trainer.resume_from(tmp_path, cfg.copy(epochs=2), progress=False)
    assert resumed.position() == "during epoch 2/2 (step 3)"
    resumed.run()
    assert resumed.state == "finished" and resumed.step == 4 and resumed.position() == "after 2 of 2 epochs (step 4)"


def test_a_run_stopped_between_epochs_may_finish_where_it_is(tmp_path, capsys):
    run_dir, store = tmp_path / "run", str(tmp_path / "runs.sqlite")
    first = Trainer(tiny(epochs=3), run_dir=run_dir, store=RunStore(store), progress=False)
    first.events.subscribe(lambda e: first.stop(), kinds=["epoch"])
    first.run()
    assert first.state == "stopped" and first.position() == "after 1 of 3 epochs (step 2)"
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--epochs", "1", "--store", store, "--quiet"]) == 0
    assert "resumed after 1 of 1 epoch (step 2): nothing left to train, the run finishes here" in \
        capsys.readouterr().out
    run = RunStore(store).get_run(first.run_id)
    assert run["status"] == "finished" and run["config"]["epochs"] == 1


def test_cli_messages_count_epochs_as_the_progress_bar(tmp_path, capsys, monkeypatch):
    import snnlab.training

    real = snnlab.training.Trainer

    class Interrupted(real):  # Ctrl-C after the first step of epoch 2 (2 batches per epoch)
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.events.subscribe(lambda e: signal.raise_signal(signal.SIGINT) if e.step == 3 else None,
                                  kinds=["step"])

    monkeypatch.setattr(snnlab.training, "Trainer", Interrupted)
    run_dir = str(tmp_path / "run")
    assert main(["train", *TINY, "--epochs", "5", "--run-dir", run_dir, "--no-store"]) == 130
    assert f" stopped during epoch 2/5 (step 3); checkpoint saved: {run_dir}" in capsys.readouterr().err
    monkeypatch.setattr(snnlab.training, "Trainer", real)
    assert main(["train", "--resume", "--run-dir", run_dir, "--no-store", "--quiet"]) == 0
    assert "resumed during epoch 2/5 (step 3)" in capsys.readouterr().out


def test_position_text_and_trained_epochs():
    assert position_text(0, 5, 35, partial=True) == "during epoch 1/5 (step 35)"
    assert position_text(3, 5, 9) == "after 3 of 5 epochs (step 9)"
    assert trained_epochs({"epoch": 2, "partial_epoch": True, "epoch_progress": None}) == (2, False)  # cut in eval
    assert trained_epochs({"epoch": 2, "partial_epoch": True, "epoch_progress": {"batches_done": 0}}) == (2, False)


def test_a_run_stopped_after_an_epoch_left_unevaluated_finishes_with_its_own_evaluation(tmp_path):
    """Review: with eval_every, a run stopped after an epoch it did not evaluate and resumed with nothing left to
    train gave an earlier epoch's evaluation as its final result."""
    cfg = tiny(epochs=4, eval_every=2, max_batches_per_epoch=3)
    first = Trainer(cfg, run_dir=tmp_path, progress=False)
    first.events.subscribe(lambda e: first.stop() if e.epoch == 2 else None, kinds=["epoch"])  # after epoch 3/4
    first.run()
    assert first.state == "stopped" and first.position() == "after 3 of 4 epochs (step 9)"
    stale = load_checkpoint(tmp_path)["last_eval"]  # epoch 2's, stored as it was
    resumed = Trainer.resume_from(tmp_path, cfg.copy(epochs=3), progress=False)
    result = resumed.run()
    fresh = resumed.evaluate()
    assert result["final"]["loss"] == pytest.approx(fresh["loss"]) and result["final"]["loss"] != stale["loss"]
    assert load_checkpoint(tmp_path)["result"]["final"]["loss"] == pytest.approx(fresh["loss"])


def test_a_finished_run_written_again_may_say_where_its_data_is_and_what_it_runs_on(tmp_path, capsys):
    """Review: a finished run resumed to write its results again was refused a moved data folder or another device,
    which building its trainer needs (device='cuda' on a machine without a GPU names device='cpu' as the fix)."""
    run_dir, store = tmp_path / "run", str(tmp_path / "runs.sqlite")
    assert main(["train", *TINY, "--epochs", "2", "--device", "cpu", "--run-dir", str(run_dir), "--store", store]) == 0
    capsys.readouterr()
    moved = str(tmp_path / "data")
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--data-root", moved, "--device", "auto",
                 "--store", store, "--quiet"]) == 0
    assert "already finished after 2 of 2 epochs (step 4)" in capsys.readouterr().out
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["data_root"], saved["device"]) == (moved, "auto")
    before = recorded(run_dir, store)
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--device", "cpu", "--lr", "0.5",
                 "--store", store]) == 2  # a setting of the training itself: still refused, and only it named
    err = capsys.readouterr().err
    assert "--lr 0.5 (the checkpoint's: --lr 0.002) would be recorded without being used" in err and "--device" not in err
    assert recorded(run_dir, store) == before


def test_cli_names_the_store_in_the_command_that_writes_missing_results_again(tmp_path, capsys, monkeypatch):
    """Review: after failed store writes the CLI suggested a resume without the run's --store, which writes to the
    default store instead."""
    import snnlab.training

    class Unrecorded(snnlab.training.Trainer):
        store_writes_pending = 2
        store_error = "OperationalError: database is locked"

    monkeypatch.setattr(snnlab.training, "Trainer", Unrecorded)
    run_dir, store = str(tmp_path / "a run"), str(tmp_path / "my runs.sqlite")
    with pytest.warns(RuntimeWarning, match="writes to the run store failed"):
        assert main(["train", *TINY, "--epochs", "1", "--run-dir", run_dir, "--store", store]) == 1
    err = capsys.readouterr().err
    assert f"snnlab train --resume --run-dir '{run_dir}' --store '{store}' --quiet writes its status and final " \
           f"results again" in err  # (--quiet: TINY's)


def test_a_delay_run_trained_on_after_it_finished_does_not_finish_with_its_first_result(tmp_path):
    """Review: a run with learned delays that finished, was resumed with more epochs and stopped between epochs gave
    its first end's result (and store summary) when resumed with nothing left to train."""
    cfg = tiny(epochs=1, max_batches_per_epoch=3, delays=True, max_delay=3, lr=0.05)
    first = Trainer(cfg, run_dir=tmp_path, progress=False).run()
    longer = Trainer.resume_from(tmp_path, cfg.copy(epochs=4), progress=False)
    longer.events.subscribe(lambda e: longer.stop() if e.epoch == 2 else None, kinds=["epoch"])
    longer.run()
    assert longer.state == "stopped" and load_checkpoint(tmp_path)["result"] == first  # stored data as it was
    resumed = Trainer.resume_from(tmp_path, cfg.copy(epochs=3), progress=False)
    result = resumed.run()
    fresh = resumed.evaluate()
    assert result["rounded"]["loss"] == pytest.approx(fresh["loss"]) and result["rounded"]["loss"] != \
        first["rounded"]["loss"]
