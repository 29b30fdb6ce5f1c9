"""Runs that train at the same time in one process share torch's global random generators: a run that draws from them
(dropout, unseeded noise or masks, ...) does not repeat bit for bit beside another. The Trainer says so (one
RuntimeWarning per run, naming the other run) and records it (``trainer.shared_randomness``, history, store)."""
from __future__ import annotations

import threading
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import snnlab as sl
from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.runtime import global_draws, trainers_training

torch.set_num_threads(1)

BASE = {"hidden": [8], "num_steps": 6, "batch_size": 16, "max_batches_per_epoch": 3, "eval_max_batches": 1,
        "epochs": 1}


def _shared_warnings(caught: list, trainer: Trainer) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)
            and f"run {trainer.run_id} shares torch's global random generators" in str(w.message)]


def _train_side_by_side(cfg_a: dict, cfg_b: dict, **kw) -> tuple[Trainer, Trainer, list]:
    """A trains in a background thread and holds at its first step until B (started meanwhile) has begun."""
    a_started, b_started = threading.Event(), threading.Event()

    def hold_a(event) -> None:
        if event.kind == "started":
            a_started.set()
        if event.kind == "step" and event.step == 1:
            assert b_started.wait(60)

    def mark_b(event) -> None:
        if event.kind == "started":
            b_started.set()

    a = Trainer({**BASE, **cfg_a}, progress=False, callbacks=hold_a, **kw)
    b = Trainer({**BASE, **cfg_b}, progress=False, callbacks=mark_b, **kw)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a.start()
        assert a_started.wait(60)
        b.start()
        assert a.wait(120) and b.wait(120)
    assert (a.state, b.state) == ("finished", "finished")
    return a, b, caught


def test_runs_side_by_side_that_draw_are_told_and_recorded(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    a, b, caught = _train_side_by_side({"dropout": 0.3, "seed": 1}, {"seed": 2}, store=store)
    assert a.shared_randomness and b.shared_randomness
    assert a.shared_randomness_with == (b.run_id,) and b.shared_randomness_with == (a.run_id,)
    for me, other in ((a, b), (b, a)):
        told = _shared_warnings(caught, me)
        assert len(told) == 1, told  # one warning per run, naming the other run and what draws
        assert f"with run(s) {other.run_id}" in told[0] and "TimeDropout '2'" in told[0]
        assert "will not repeat bit for bit" in told[0] and "snnlab sweep" in told[0]
        records = [r for r in me.history if r["kind"] == "shared_randomness"]
        assert [r["with"] for r in records] == [[other.run_id]]
        row = store.get_run(me.run_id)
        assert row["summary"]["shared_randomness"] is True
        assert row["summary"]["shared_randomness_with"] == [other.run_id]
        assert row["status"] == "finished" and other.run_id in row["message"]
        assert "does not repeat bit for bit" in row["message"]
    assert trainers_training() == []
    store.close()


def test_runs_side_by_side_that_draw_nothing_are_not_flagged(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    a, b, caught = _train_side_by_side({"seed": 1}, {"seed": 2, "encoding": "rate"}, store=store)  # (seeded rate)
    assert not a.shared_randomness and not b.shared_randomness
    assert _shared_warnings(caught, a) == [] == _shared_warnings(caught, b)
    assert all(r["kind"] != "shared_randomness" for r in [*a.history, *b.history])
    assert "shared_randomness" not in store.get_run(a.run_id)["summary"]
    assert store.get_run(a.run_id)["message"] is None
    store.close()


@pytest.mark.parametrize("dropout", [0.3, 0.0])
def test_a_trainer_built_while_a_run_trains_is_flagged(dropout):
    """Its construction seeds the generators and draws its initial weights from them: it is flagged whatever the
    run beside it does; that run only where it draws (its dropout masks come from the generators reseeded)."""
    holding, release = threading.Event(), threading.Event()

    def hold(event) -> None:
        if event.kind == "step" and event.step == 1:
            holding.set()
            assert release.wait(60)

    a = Trainer({**BASE, "dropout": dropout}, progress=False, callbacks=hold)
    assert trainers_training() == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a.start()
        try:
            assert holding.wait(60)
            assert trainers_training() == [a]
            b = Trainer(BASE, progress=False)
        finally:
            release.set()
        assert a.wait(120)
    assert b.shared_randomness_with == (a.run_id,)
    assert a.shared_randomness_with == ((b.run_id,) if dropout else ())
    assert len(_shared_warnings(caught, a)) == (1 if dropout else 0)
    assert trainers_training() == []


class _HeldLoader:
    """Batches whose first iteration waits for ``go``: holds a trainer in its construction (reading the first
    batch for the input size of a model built from the configuration)."""

    def __init__(self, held: threading.Event, go: threading.Event) -> None:
        self.batches = [(torch.rand(6, 4, 5), torch.tensor([0, 1, 0, 1]))]
        self.held, self.go = held, go

    def __iter__(self):
        self.held.set()
        assert self.go.wait(60)
        return iter(self.batches)


def test_two_trainers_built_at_once_are_both_flagged():
    """Two tabs starting plain runs at the same moment: each construction seeds the generators the other draws its
    initial weights from, while it draws them."""
    held, go = threading.Event(), threading.Event()
    loader = _HeldLoader(held, go)
    built = {}

    def build_a() -> None:
        built["a"] = Trainer(BASE, train_loader=loader, test_loader=loader.batches, progress=False)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (the class count of data passed in)
        thread = threading.Thread(target=build_a)
        thread.start()
        try:
            assert held.wait(60)
            assert len(trainers_training()) == 1  # (a, in its construction)
            b = Trainer(BASE, progress=False)
            assert b.shared_randomness_with == ("(a Trainer being built)",)  # (its id is chosen at its end)
        finally:
            go.set()
            thread.join(60)
    a = built["a"]
    assert a.shared_randomness_with == (b.run_id,) and b.shared_randomness_with == (a.run_id,)
    assert trainers_training() == []


def test_registry_is_left_when_a_run_fails_or_stops(tmp_path):
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise RuntimeError("broken model")

    data = [(torch.rand(4, 2, 3), torch.tensor([0, 1]))]
    failed = Trainer(BASE, model=Broken(), train_loader=data, test_loader=data, progress=False)
    with pytest.raises(RuntimeError, match="broken model"):
        failed.run()
    assert failed.state == "failed" and trainers_training() == []
    stopped = Trainer(BASE, run_dir=tmp_path / "r", progress=False)
    stopped.stop()
    assert stopped.run() is None and stopped.state == "stopped" and trainers_training() == []


def test_a_resumed_run_keeps_the_record(tmp_path):
    """A run stopped after sharing the generators resumes alone: its flag (from the checkpoint's history) stays, and
    its summary says so."""
    stop_at = threading.Event()
    a_started, b_started = threading.Event(), threading.Event()

    def hold_a(event) -> None:
        if event.kind == "started":
            a_started.set()
        if event.kind == "step" and event.step == 1:
            assert b_started.wait(60)
        if event.kind == "step" and event.step == 2:
            stop_at.set()
            a.stop()

    a = Trainer({**BASE, "dropout": 0.3, "epochs": 2}, run_dir=tmp_path / "a", progress=False, callbacks=hold_a)
    b = Trainer(BASE, progress=False, callbacks=lambda e: e.kind == "started" and b_started.set())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.start()
        assert a_started.wait(60)
        b.start()
        assert a.wait(120) and b.wait(120)
    assert a.state == "stopped" and a.shared_randomness_with == (b.run_id,)
    store = RunStore(tmp_path / "runs.sqlite")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = Trainer(resume=tmp_path / "a", store=store, progress=False)
        assert resumed.shared_randomness_with == (b.run_id,)
        resumed.run()
    assert _shared_warnings(caught, resumed) == []  # (told by the run that met it)
    assert store.get_run(resumed.run_id)["summary"]["shared_randomness_with"] == [b.run_id]
    store.close()


class _Own(nn.Module):
    def forward(self, x):
        return x


def test_global_draws_counts_what_cannot_be_told():
    ds = TensorDataset(torch.rand(4, 3), torch.zeros(4, dtype=torch.long))
    plain = sl.Sequential(nn.Linear(3, 4), sl.LIF(), nn.Linear(4, 2), sl.LI())
    batches = [(torch.rand(2, 1, 3), torch.tensor([0]))]
    loss = torch.nn.functional.cross_entropy
    assert global_draws(plain, [("training", batches), ("test", DataLoader(ds, batch_size=2))], [("loss", loss)]) == []
    assert global_draws(sl.Sequential(sl.LIF(noise="gaussian", seed=0), sl.SpikeMask(0.2, seed=1))) == []
    assert global_draws(sl.Sequential(sl.LIF(mask_p=0.2))) == ["LIF '0' (noise, spike masks or dropout)"]
    assert global_draws(nn.LSTM(3, 4, num_layers=2, dropout=0.1)) == ["LSTM (noise, spike masks or dropout)"]
    assert global_draws(nn.Sequential(_Own())) == [
        "_Own '0' (a class of your own: what its forward draws cannot be told)"]
    assert global_draws(plain, [("training", DataLoader(ds, shuffle=True))]) == [
        "the training loader (its order or its workers' seeds come from torch's global generator)"]
    assert global_draws(plain, [("training", DataLoader(ds, collate_fn=lambda b: b))]) == [
        "the training loader's collate_fn: test_global_draws_counts_what_cannot_be_told.<locals>.<lambda> "
        "(your own: what it draws cannot be told)"]
    assert global_draws(plain, [("test", iter([]))]) == [
        "the test loader (list_iterator, no DataLoader: what it draws cannot be told)"]
