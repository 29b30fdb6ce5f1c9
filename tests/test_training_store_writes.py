"""Run-store writes that fail while training (a locked or full store) are retried, in order, and a run that ends
with some still missing says so (store probe: they were logged and lost, and the run exited 0)."""
import sqlite3

import pytest

from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training import records

TINY = dict(hidden=[8], num_steps=5, batch_size=16, epochs=2, max_batches_per_epoch=3, eval_max_batches=1,
            device="cpu")


class FlakyStore(RunStore):
    """A store whose writes fail while ``broken`` is True (as a locked database does)."""

    broken = False

    def log_metrics(self, *args, **kwargs):
        if self.broken:
            raise sqlite3.OperationalError("database is locked")
        return super().log_metrics(*args, **kwargs)

    def set_status(self, *args, **kwargs):
        if self.broken:
            raise sqlite3.OperationalError("database is locked")
        return super().set_status(*args, **kwargs)


def test_writes_that_failed_are_retried_in_order_when_the_store_works_again(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "STORE_RETRY_S", 0.0)
    reference = RunStore(tmp_path / "ref.sqlite")
    tr = Trainer(ExperimentConfig(**TINY), store=reference, progress=False)
    tr.run()
    def table(st, run):  # (an epoch's wall time differs between runs)
        m = st.metrics(run)
        return m.loc[~m["name"].str.endswith("_time_s"), ["step", "name", "value"]].reset_index(drop=True)

    want = table(reference, tr.run_id)

    store = FlakyStore(tmp_path / "flaky.sqlite")
    tr = Trainer(ExperimentConfig(**TINY), store=store, progress=False)
    tr.events.subscribe(lambda e: setattr(store, "broken", e.kind == "step" and e.step < 4))  # steps 1-3 fail
    tr.run()
    got = table(store, tr.run_id)
    assert len(got) > 30 and got.equals(want) and tr.store_writes_pending == 0
    assert store.get_run(tr.run_id)["status"] == "finished"


def test_a_run_that_ends_with_writes_missing_warns_and_the_cli_fails(tmp_path, monkeypatch):
    store = FlakyStore(tmp_path / "s.sqlite")
    tr = Trainer(ExperimentConfig(**TINY), store=store, progress=False)
    tr.events.subscribe(lambda e: setattr(store, "broken", True) if e.kind == "epoch" else None)
    with pytest.warns(RuntimeWarning, match=r"writes to the run store failed and are not in it \(last error: "
                                            r"OperationalError: database is locked\)"):
        tr.run()
    assert tr.state == "finished" and tr.store_writes_pending > 0
    assert store.get_run(tr.run_id)["status"] == "running"  # what the store could not be told

    from snnlab import cli

    monkeypatch.setattr(RunStore, "set_status", FlakyStore.set_status)
    monkeypatch.setattr(RunStore, "broken", True, raising=False)
    args = ["train", "--hidden", "8", "--num-steps", "5", "--epochs", "1", "--max-batches-per-epoch", "2",
            "--eval-max-batches", "1", "--device", "cpu", "--quiet", "--store", str(tmp_path / "c.sqlite")]
    with pytest.warns(RuntimeWarning):
        assert cli.main(args) == 1


def test_a_write_that_can_never_succeed_is_dropped_and_does_not_hold_up_the_others(tmp_path):
    """Review: a store without a working set_checkpoint (a duck-typed one) kept every later write waiting: the store
    said "running" forever."""
    class NoCheckpoints(RunStore):
        def set_checkpoint(self, *args, **kwargs):
            raise NotImplementedError("this store keeps no checkpoint paths")

    store = NoCheckpoints(tmp_path / "s.sqlite")
    tr = Trainer(ExperimentConfig(**TINY), run_dir=tmp_path / "run", store=store, progress=False)
    tr.run()
    assert store.get_run(tr.run_id)["status"] == "finished" and tr.store_writes_pending == 0
    assert len(store.metrics(tr.run_id)) > 30


@pytest.mark.parametrize("delays", [False, True])
def test_resuming_a_finished_run_writes_its_status_and_summary_again(tmp_path, delays):
    """Review: the message promised it, but a run that learned delays skipped its summary on such a resume."""
    class NoSummaries(FlakyStore):
        def set_summary(self, *args, **kwargs):
            if self.broken:
                raise sqlite3.OperationalError("database is locked")
            return super().set_summary(*args, **kwargs)

    cfg = dict(TINY, epochs=1, delays=delays, max_delay=3)
    store = NoSummaries(tmp_path / "s.sqlite")
    tr = Trainer(ExperimentConfig(**cfg), run_dir=tmp_path / "run", store=store, progress=False)
    tr.events.subscribe(lambda e: setattr(store, "broken", True) if e.kind == "epoch" else None)
    with pytest.warns(RuntimeWarning):
        tr.run()
    assert store.get_run(tr.run_id)["summary"] is None
    again = Trainer.resume_from(tmp_path / "run", store=RunStore(tmp_path / "s.sqlite"), progress=False)
    again.run()
    run = RunStore(tmp_path / "s.sqlite").get_run(tr.run_id)
    assert run["status"] == "finished" and run["summary"] is not None
