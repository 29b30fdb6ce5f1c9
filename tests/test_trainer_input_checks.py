"""Trainer arguments refused before anything is written (a known run_id, one loader alone, bad callbacks), clear errors
(labels out of range while training, evaluate on a missing CUDA device), a stop's checkpoint that a second Ctrl-C or
a failing save cannot lose silently, and NIR export of a bfloat16 model."""
from __future__ import annotations

import os
import signal

import pytest
import torch

import snnlab as sl
from snnlab.experiments.store import RunStore
from snnlab.training import ExperimentConfig, Trainer


def tiny(**kw) -> ExperimentConfig:
    base = dict(hidden=[8], num_steps=6, batch_size=8, epochs=1, max_batches_per_epoch=3, eval_max_batches=1,
                device="cpu")
    return ExperimentConfig(**(base | kw))


def _data(n_in: int = 5, n_classes: int = 3, labels=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    y = torch.tensor(labels) if labels is not None else torch.randint(0, n_classes, (4,), generator=g)
    return [(torch.rand(6, len(y), n_in, generator=g), y) for _ in range(2)]


def _net(n_in: int = 5, n_classes: int = 3) -> torch.nn.Module:
    return sl.Sequential(torch.nn.Linear(n_in, 8), sl.LIF(), torch.nn.Linear(8, n_classes), sl.LI())


# ------------------------------------------------------------------------------ a stop's checkpoint
class _SignalOnThirdWrite:
    """A file that sends this process a SIGINT on its third write: a Ctrl-C that lands inside ``torch.save``, where
    torch turns the KeyboardInterrupt into "RuntimeError: [enforce fail at inline_container.cc] unexpected pos"."""

    def __init__(self, f) -> None:
        self.f, self.writes = f, 0

    def write(self, data) -> int:
        self.writes += 1
        if self.writes == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def test_a_second_ctrl_c_inside_the_stops_save_waits_for_it(tmp_path, monkeypatch):
    """The second Ctrl-C cut torch.save of the stop's checkpoint short (RuntimeError 'unexpected pos'): the run ended
    "stopped" with no checkpoint.pt, and resume_from failed."""
    store = RunStore(tmp_path / "runs.sqlite")
    tr = Trainer(tiny(epochs=2), run_dir=tmp_path / "run", store=store, progress=False)
    tr.events.subscribe(lambda ev: os.kill(os.getpid(), signal.SIGINT) if ev.step == 2 else None, kinds=["step"])
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):  # the first save is the stop's (the stop comes before the epoch's end)
        saves.append(1)
        return real_save(obj, _SignalOnThirdWrite(f) if len(saves) == 1 else f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(KeyboardInterrupt):
        tr.run()
    monkeypatch.setattr(torch, "save", real_save)
    assert tr.state == "stopped" and tr.step == 2 and len(saves) == 1  # stopped after step 2; saved once, whole
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    assert [p.name for p in (tmp_path / "run").glob("*.tmp")] == []
    assert store.get_run(tr.run_id)["status"] == "stopped"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    rest = Trainer.resume_from(tmp_path / "run", store=store, progress=False)
    assert rest.step == 2
    rest.run()
    assert rest.state == "finished" and rest.step == 6


def _stop_at_step(trainer: Trainer, step: int) -> None:
    trainer.events.subscribe(lambda ev: trainer.stop(reason="asked") if ev.step == step else None, kinds=["step"])


def _failing_save(monkeypatch, after: int) -> None:
    """The checkpoint saves fail (OSError) after the first ``after`` of them."""
    import snnlab.training.resume as resume_module

    real, calls = resume_module.save_checkpoint, []

    def save(path, state):
        calls.append(1)
        if len(calls) > after:
            raise OSError(28, "No space left on device")
        return real(path, state)

    monkeypatch.setattr(resume_module, "save_checkpoint", save)


def test_a_stop_whose_checkpoint_cannot_be_saved_is_not_stored_as_resumable(tmp_path, monkeypatch):
    """The store said "stopped" (resumable) although no checkpoint had been saved."""
    store = RunStore(tmp_path / "runs.sqlite")
    tr = Trainer(tiny(epochs=2), run_dir=tmp_path / "run", store=store, progress=False)
    _stop_at_step(tr, 2)
    _failing_save(monkeypatch, after=0)
    assert tr.run() is None and tr.state == "stopped"
    assert not (tmp_path / "run" / "checkpoint.pt").exists()
    row = store.get_run(tr.run_id)
    assert row["status"] == "failed"
    assert "no checkpoint was saved (OSError" in row["message"] and "cannot be resumed" in row["message"]


def test_a_stop_whose_checkpoint_cannot_be_saved_keeps_the_earlier_one(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs.sqlite")
    tr = Trainer(tiny(epochs=2), run_dir=tmp_path / "run", store=store, progress=False)
    _stop_at_step(tr, 5)  # in the second epoch: the first epoch's checkpoint is saved
    _failing_save(monkeypatch, after=1)
    assert tr.run() is None and tr.state == "stopped"
    row = store.get_run(tr.run_id)
    assert row["status"] == "stopped"
    assert "could not be saved (OSError" in row["message"] and "earlier checkpoint" in row["message"]
    monkeypatch.undo()
    assert Trainer.resume_from(tmp_path / "run", store=store, progress=False).step == 3


def _signal_inside_save(monkeypatch, which: int, writes: tuple[int, ...] = (3,)) -> list[int]:
    """The ``which``-th torch.save (from 1) sends this process a SIGINT on each of its ``writes``; returns the list
    that counts the saves."""
    real_save, saves = torch.save, []

    class _Signalling(_SignalOnThirdWrite):
        def write(self, data) -> int:
            self.writes += 1
            if self.writes in writes:
                os.kill(os.getpid(), signal.SIGINT)
            return self.f.write(data)

    def save(obj, f, *args, **kwargs):
        saves.append(1)
        return real_save(obj, _Signalling(f) if len(saves) == which else f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    return saves


def test_a_third_ctrl_c_inside_the_stops_save_waits_for_it_too(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "runs.sqlite")
    tr = Trainer(tiny(epochs=2), run_dir=tmp_path / "run", store=store, progress=False)
    tr.events.subscribe(lambda ev: os.kill(os.getpid(), signal.SIGINT) if ev.step == 2 else None, kinds=["step"])
    saves = _signal_inside_save(monkeypatch, 1, writes=(3, 4))
    with pytest.raises(KeyboardInterrupt):
        tr.run()
    monkeypatch.undo()
    assert tr.state == "stopped" and tr.step == 2 and len(saves) == 1
    assert store.get_run(tr.run_id)["status"] == "stopped"
    assert Trainer.resume_from(tmp_path / "run", store=store, progress=False).step == 2


def test_a_second_ctrl_c_inside_an_epochs_save_waits_for_it_then_stops_the_run(tmp_path, monkeypatch):
    """The second Ctrl-C cut the end-of-epoch torch.save short: the run "failed" with torch's RuntimeError ("unexpected
    pos"), no checkpoint, and the trained epoch lost."""
    store = RunStore(tmp_path / "runs.sqlite")
    tr = Trainer(tiny(epochs=2), run_dir=tmp_path / "run", store=store, progress=False)
    # the first Ctrl-C as the first epoch ends (a stop at the next step), the second inside that epoch's save
    tr.events.subscribe(lambda ev: os.kill(os.getpid(), signal.SIGINT) if ev.epoch == 0 else None, kinds=["epoch"])
    _signal_inside_save(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        tr.run()
    monkeypatch.undo()
    assert tr.state == "stopped" and tr.error is None and tr.epoch == 1 and tr.step == 3
    assert store.get_run(tr.run_id)["status"] == "stopped"
    rest = Trainer.resume_from(tmp_path / "run", store=store, progress=False)
    assert (rest.epoch, rest.step) == (1, 3)
    rest.run()
    assert rest.state == "finished" and rest.step == 6


def test_a_second_ctrl_c_inside_the_finished_runs_save_lets_the_run_finish(tmp_path, monkeypatch):
    """The second Ctrl-C cut the finished run's save short: a trained, evaluated run ended "failed"."""
    store = RunStore(tmp_path / "runs.sqlite")
    tr = Trainer(tiny(epochs=1), run_dir=tmp_path / "run", store=store, progress=False)
    tr.events.subscribe(lambda ev: os.kill(os.getpid(), signal.SIGINT), kinds=["epoch"])
    saves = _signal_inside_save(monkeypatch, 2)  # the epoch's save, then the finished run's
    result = tr.run()
    monkeypatch.undo()
    assert len(saves) == 2 and tr.state == "finished" and result is tr.result and result["final"] is not None
    assert store.get_run(tr.run_id)["status"] == "finished"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert tr._pending_interrupt is None


def test_a_ctrl_c_that_cuts_the_stops_save_without_a_handler_still_reports_the_stop(tmp_path, monkeypatch):
    """A KeyboardInterrupt that no handler of snnlab's held back (loaders with worker processes) cut the stop's save:
    the run raised with no "stopped" event and the store's row left "running"."""
    store = RunStore(tmp_path / "runs.sqlite")
    tr = Trainer(tiny(epochs=2), run_dir=tmp_path / "run", store=store, progress=False)
    _stop_at_step(tr, 2)
    real, stopped = tr.checkpoint_state, []
    tr.events.subscribe(stopped.append, kinds=["stopped"])

    def cut(**flags):
        raise KeyboardInterrupt

    monkeypatch.setattr(tr, "checkpoint_state", cut)
    with pytest.raises(KeyboardInterrupt):
        tr.run()
    assert tr.state == "stopped" and len(stopped) == 1 and stopped[0].data["checkpoint"] is None
    row = store.get_run(tr.run_id)
    assert row["status"] == "failed" and "KeyboardInterrupt: the save was interrupted" in row["message"]
    monkeypatch.setattr(tr, "checkpoint_state", real)


# ------------------------------------------------------------------------------ run_id
def test_a_run_id_the_store_holds_is_refused_before_anything_is_written(tmp_path):
    """A second run under a known id was merged into the first one's row (two loss rows per step)."""
    store = RunStore(tmp_path / "runs.sqlite")
    Trainer(tiny(), store=store, run_dir=tmp_path / "a", progress=False, run_id="abc").run()
    before = store.get_run("abc")
    n_metrics = len(store.metrics("abc"))
    with pytest.raises(ValueError, match=r"Trainer: run_id='abc' is already a run in the store \(status 'finished'\);"
                                         r" give a new run_id .* or resume="):
        Trainer(tiny(hidden=[16]), store=store, run_dir=tmp_path / "b", progress=False, run_id="abc")
    assert not (tmp_path / "b").exists()
    after = store.get_run("abc")
    assert (after["config"], after["summary"], after["status"]) == (before["config"], before["summary"], "finished")
    assert len(store.metrics("abc")) == n_metrics and store.list_runs()["run_id"].tolist() == ["abc"]


def test_resuming_a_known_run_under_its_own_id_still_works_and_another_known_id_is_refused(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    first = Trainer(tiny(epochs=2), store=store, run_dir=tmp_path / "a", progress=False, run_id="abc")
    _stop_at_step(first, 2)
    first.run()
    Trainer(tiny(), store=store, progress=False, run_id="other").run()
    with pytest.raises(ValueError, match=r"run_id='other' is already a run in the store.*the checkpoint resumed is "
                                         r"run 'abc'"):
        Trainer(resume=tmp_path / "a", store=store, progress=False, run_id="other")
    again = Trainer(resume=tmp_path / "a", store=store, progress=False, run_id="abc")  # (a sweep's resume passes it)
    again.run()
    assert again.state == "finished" and store.get_run("abc")["status"] == "finished"
    assert Trainer(tiny(), store=store, progress=False, run_id="new").run_id == "new"  # an unknown id is taken


# ------------------------------------------------------------------------------ loaders
@pytest.mark.parametrize("given", ["train_loader", "test_loader"])
def test_one_loader_alone_is_refused(tmp_path, given):
    """The other loader was built from cfg.dataset (digits): a custom-data model evaluated on the digits, or built
    for the digits' 64 inputs ('mat1 and mat2 shapes cannot be multiplied')."""
    store = RunStore(tmp_path / "runs.sqlite")
    missing = "test_loader" if given == "train_loader" else "train_loader"
    with pytest.raises(ValueError, match=f"Trainer: {given} was given without {missing}; give both"):
        Trainer(tiny(), run_dir=tmp_path / "run", store=store, progress=False, **{given: _data()})
    assert not (tmp_path / "run").exists() and store.list_runs().empty
    both = Trainer(tiny(), train_loader=_data(), test_loader=_data(), progress=False)  # both: custom data
    assert both.run()["final"]["n_samples"] == 4 and both.label.endswith("(custom data)")  # eval_max_batches=1


# ------------------------------------------------------------------------------ callbacks
@pytest.mark.parametrize("bad,match", [
    (["not callable"], r"Trainer: callbacks must be callables .*got 'not callable' \(str\)"),
    (3, r"Trainer: callbacks must be a callable or an iterable of callables, got 3"),
    ("print", r"Trainer: callbacks must be a callable or an iterable of callables, got 'print'"),
])
def test_bad_callbacks_are_refused_before_the_run_is_registered(tmp_path, bad, match):
    store = RunStore(tmp_path / "runs.sqlite")
    with pytest.raises(TypeError, match=match):
        Trainer(tiny(), run_dir=tmp_path / "run", store=store, progress=False, callbacks=bad)
    assert store.list_runs().empty and not (tmp_path / "run").exists()


def test_a_single_callable_is_a_list_of_one():
    """callbacks=print gave "'builtin_function_or_method' object is not iterable" (after registering the run)."""
    seen = []
    tr = Trainer(tiny(), progress=False, callbacks=seen.append)
    tr.run()
    assert [ev.kind for ev in seen][0] == "started" and seen[-1].kind == "finished"
    listed = []
    Trainer(tiny(), progress=False, callbacks=(listed.append, lambda ev: None)).run()
    assert [ev.kind for ev in listed] == [ev.kind for ev in seen]


# ------------------------------------------------------------------------------ clear errors
def test_a_label_out_of_range_while_training_is_named_as_evaluate_names_it():
    """Training gave torch's 'IndexError: Target 5 is out of bounds'."""
    bad = _data(labels=[0, 5, 1, 2])
    tr = Trainer(tiny(), model=_net(), train_loader=bad, test_loader=bad, progress=False)
    with pytest.raises(ValueError, match=r"Trainer: y \(batch 0\) must be class indices in \[0, 3\) for an output "
                                         r"with 3 classes, got labels from 0 to 5"):
        tr.run()
    with pytest.raises(ValueError, match=r"must be class indices in \[0, 3\)"):
        Trainer(tiny(), model=_net(), train_loader=_data(labels=[0, -1, 1, 2]), test_loader=_data(),
                progress=False).run()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", torch.device("cuda", 0)])
def test_evaluate_on_a_missing_cuda_device_says_so_as_the_trainer_does(device):
    """evaluate(device="cuda") gave 'AssertionError: Torch not compiled with CUDA enabled'."""
    from snnlab.metrics import evaluate

    with pytest.raises(RuntimeError, match=r"device='cuda' was requested but CUDA is not available here; use "
                                           r"device='cpu' or 'auto'"):
        evaluate(_net(), _data(), device=device)
    assert evaluate(_net(), _data(), device="cpu")["n_samples"] == 8


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="needs a machine without "
                    "CUDA and MPS")
def test_evaluate_refuses_a_device_name_that_is_no_device_or_not_here():
    """Before: 'gpu' gave torch's own parser error (no function named) and 'mps' was passed on without MPS."""
    from snnlab.metrics import evaluate

    with pytest.raises(ValueError, match=r"device='gpu' is not a device name: use 'auto', 'cpu', 'cuda'"):
        evaluate(_net(), _data(), device="gpu")
    with pytest.raises(RuntimeError, match=r"device='mps' was requested but MPS is not available here"):
        evaluate(_net(), _data(), device="mps")
    assert evaluate(_net(), _data(), device="auto")["n_samples"] == 8


def test_to_nir_exports_a_bfloat16_model_as_float32():
    """numpy has no bfloat16: to_nir failed with 'Got unsupported ScalarType BFloat16'."""
    pytest.importorskip("nir")
    from snnlab.interop.nir import to_nir

    net = _net(3, 2).to(torch.bfloat16)
    graph = to_nir(net, dt=1e-3)
    weights = [node.weight for node in graph.nodes.values() if hasattr(node, "weight")]
    assert len(weights) == 2 and all(w.dtype.name == "float32" for w in weights)
    import numpy as np

    assert np.array_equal(weights[0], net[0].weight.detach().float().numpy())  # exact: bfloat16 fits in float32
    assert np.array_equal(weights[1], net[2].weight.detach().float().numpy())


@pytest.mark.skipif(torch.xpu.is_available() if hasattr(torch, "xpu") else True, reason="needs torch's xpu module "
                    "and a machine without an XPU")
def test_a_device_of_another_backend_that_is_not_here_is_refused_up_front():
    """Before: resolve_device('xpu') returned the device and evaluate failed later inside torch ('Torch not compiled
    with XPU enabled', an AssertionError); 'hpu' without its module the same (ModuleNotFoundError)."""
    from snnlab.metrics import evaluate
    from snnlab.training.runtime import resolve_device

    for name in ("xpu", "hpu"):
        with pytest.raises(RuntimeError, match=rf"device='{name}' was requested but it is not available here; use "
                                               r"device='cpu' or 'auto'"):
            resolve_device(name)
    with pytest.raises(RuntimeError, match=r"device='xpu' was requested but it is not available here"):
        evaluate(_net(), _data(), device="xpu")
    assert resolve_device("meta") == torch.device("meta")  # (a real device: shapes only, as the user asked)


def test_a_failed_run_logs_its_traceback_only_when_it_does_not_raise_it(caplog):
    """Tester: a run failing on a user error printed the full traceback twice (the log, then the raised error)."""
    import logging

    def failing():
        tr = Trainer(tiny(), model=_net(), train_loader=_data(labels=[0, 5, 1, 2]), test_loader=_data(),
                     progress=False)
        return tr

    with caplog.at_level(logging.ERROR, logger="snnlab"):
        with pytest.raises(ValueError, match="class indices"):
            failing().run()
        assert not [r for r in caplog.records if "failed" in r.getMessage()]
        tr = failing()
        assert tr.run(raise_errors=False) is None and tr.state == "failed"
        assert [r for r in caplog.records if "training run" in r.getMessage() and "Traceback" in r.getMessage()]
