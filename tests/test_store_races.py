"""Races between two trainings of one run (reviewers of the run-folder/sweep changes): a refused trainer's store row
marked "failed" after the other trainer had set it "running" (read, then write); a sweep deleting a row the other
process had started logging to; two processes registering one resumed run id (the second got sqlite's
IntegrityError, and a sweep then marked the other's row failed). The races are played deterministically: the other
process's write is made from a store hook between this process's read and its write. Also: a file system refusing
locks warned twice (the second at contextlib.py), a sweep's "(pid unknown)", and ``snnlab train --resume`` on a
checkpoint without its configuration saying only ``error: config_json``."""
import errno
import os
import sqlite3
import warnings
from types import SimpleNamespace

import pytest
import torch

import snnlab.training.run_folder as run_folder
from snnlab.cli import main
from snnlab.experiments import RunStore
from snnlab.experiments import sweeps
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.run_folder import RunFolderBusy, run_folder_lock

TINY = dict(hidden=[8], num_steps=5, batch_size=16, epochs=1, max_batches_per_epoch=2, eval_max_batches=1,
            device="cpu")


# ------------------------------------------------------------------------------ the store's conditional writes
def test_set_status_only_if_changes_a_row_only_in_the_statuses_named(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    run = store.create_run({}, name="r")
    assert store.set_status(run, "idle") is True
    store.set_status(run, "running")
    assert store.set_status(run, "failed", "not started", only_if=("idle",)) is False
    row = store.get_run(run)
    assert (row["status"], row["message"]) == ("running", None)
    store.set_status(run, "idle")
    assert store.set_status(run, "failed", "not started", only_if="idle") is True
    assert (store.get_run(run)["status"], store.get_run(run)["message"]) == ("failed", "not started")
    with pytest.raises(KeyError, match="no run 'nope'"):
        store.set_status("nope", "failed", only_if=("idle",))
    with pytest.raises(ValueError, match=r"RunStore.set_status: only_if .*'idel'"):
        store.set_status(run, "failed", only_if=("idel",))


def test_delete_unused_run_keeps_a_row_that_trained_or_that_another_process_moved_on(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    unused, logged, live, saved = (store.create_run({}, name=n) for n in ("unused", "logged", "live", "saved"))
    store.set_status(unused, "failed", "not started: RunFolderBusy")
    store.log_metrics(logged, step=1, metrics={"loss": 1.0})
    store.set_status(live, "running")
    store.set_checkpoint(saved, tmp_path / "checkpoint.pt")
    assert [store.delete_unused_run(r) for r in (logged, live, saved)] == [False, False, False]
    assert store.delete_unused_run(unused) is True and store.delete_unused_run(unused) is False
    assert sorted(store.list_runs()["name"]) == ["live", "logged", "saved"]
    assert len(store.metrics(logged)) == 1
    assert store.delete_unused_run(live, only_if=("running",)) is True  # (an expected state given: its owner goes)
    with pytest.raises(ValueError, match="delete_unused_run: only_if"):
        store.delete_unused_run(saved, only_if=())


class RacingStore(RunStore):
    """A RunStore whose ``before`` hook (the other process's write) runs once, just before the first call of one of
    this process's methods (the write that follows its read)."""

    def arm(self, method: str, before, call: int = 1) -> None:
        """``before()`` runs at the ``call``-th call of ``method`` (counted from now)."""
        self._armed = [method, before, call]

    def _fire(self, method: str) -> None:
        armed = getattr(self, "_armed", None)
        if armed is not None and armed[0] == method:
            armed[2] -= 1
            if armed[2] == 0:
                self._armed = None
                armed[1]()

    def set_status(self, run_id, status, message=None, only_if=None):
        if status == "failed":
            self._fire("set_status:failed")
        return super().set_status(run_id, status, message, **({} if only_if is None else {"only_if": only_if}))

    def delete_runs(self, *args, **kwargs):
        self._fire("delete")
        return super().delete_runs(*args, **kwargs)

    def delete_unused_run(self, *args, **kwargs):
        self._fire("delete")
        return super().delete_unused_run(*args, **kwargs)

    def get_run(self, run_id):
        try:
            return super().get_run(run_id)
        finally:
            self._fire("get_run")


# ------------------------------------------------------------------------------ 1. the refused trainer's row
def test_a_refused_resume_writes_no_row_under_the_id_the_other_trainer_runs(tmp_path):
    first = Trainer(ExperimentConfig(**TINY), tmp_path / "run", progress=False, run_id="R")
    first.run()
    store = RunStore(tmp_path / "s.sqlite")
    trainer = Trainer(store=store, resume=tmp_path / "run", progress=False)
    assert store.list_runs().empty  # (no row before the run starts)
    with run_folder_lock(tmp_path / "run"), pytest.raises(RunFolderBusy):
        trainer.run()
    assert store.list_runs().empty  # (the other trainer of run R owns its row)


def test_a_refused_trainer_marks_its_own_idle_row_failed(tmp_path):
    store, run = RunStore(tmp_path / "s.sqlite"), tmp_path / "run"
    trainer = Trainer(ExperimentConfig(**TINY), run, store, progress=False, name="A")
    with run_folder_lock(run), pytest.raises(RunFolderBusy):
        trainer.run()
    row = store.get_run(trainer.run_id)
    assert row["status"] == "failed" and row["message"].startswith("not started: RunFolderBusy: run_dir")


def test_a_sweep_keeps_the_row_another_process_started_logging_to(tmp_path):
    store = RacingStore(tmp_path / "s.sqlite")
    run = store.create_run({}, name="new point")
    store.set_status(run, "failed", "not started: RunFolderBusy")
    store.arm("delete", lambda: RunStore.log_metrics(store, run, step=1, metrics={"loss": 0.5}))
    sweeps._drop_refused_row(store, SimpleNamespace(run_id=run, registered_run=True))
    assert store.get_run(run)["status"] == "failed" and len(store.metrics(run)) == 1


def test_a_sweep_drops_the_unused_row_of_a_new_point_but_never_a_resumed_runs(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    new, resumed = store.create_run({}, name="new"), store.create_run({}, name="resumed")
    for run in (new, resumed):
        store.set_status(run, "failed", "not started: RunFolderTaken")
    sweeps._drop_refused_row(store, SimpleNamespace(run_id=new, registered_run=True), resumed=False)
    # a resumed point's id is its checkpoint's: another process resuming it may train under it (it follows the row)
    sweeps._drop_refused_row(store, SimpleNamespace(run_id=resumed, registered_run=True), resumed=True)
    assert store.list_runs()["name"].tolist() == ["resumed"]


def test_the_sweeps_warning_about_a_row_it_cannot_drop_points_at_the_caller():
    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    store = SimpleNamespace(get_run=broken, delete_runs=broken, delete_unused_run=broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sweeps._drop_refused_row(store, SimpleNamespace(run_id="r1", registered_run=True))
    assert len(caught) == 1 and "could not remove the store row of run r1" in str(caught[0].message)
    assert caught[0].filename == __file__


# ------------------------------------------------------------------------------ 2. one run id registered twice
def the_other_registers_first(store: RacingStore, run_id: str, call: int = 1) -> None:
    """Both processes read "no such run": the other one's create_run comes right after this one's get_run (its
    ``call``-th)."""
    store.arm("get_run", lambda: (RunStore.create_run(store, {}, name="the other's", run_id=run_id),
                                  RunStore.set_status(store, run_id, "running")), call)


def test_a_new_run_under_a_chosen_id_another_process_took_meanwhile_is_refused_as_a_known_id(tmp_path):
    store = RacingStore(tmp_path / "s.sqlite")
    # (its first get_run is the check that the chosen id is new; the second, the registration's)
    the_other_registers_first(store, "R", call=2)
    trainer = Trainer(ExperimentConfig(**TINY), store=store, progress=False, run_id="R")
    with pytest.raises(ValueError, match="run_id='R' is already a run in the store"):
        trainer.run()
    row = store.get_run("R")
    assert (row["name"], row["status"]) == ("the other's", "running") and len(store.list_runs()) == 1


def test_a_resumed_trainer_follows_the_row_another_process_registered_meanwhile(tmp_path):
    first = Trainer(ExperimentConfig(**TINY), tmp_path / "run", progress=False, run_id="R")
    first.run()
    store = RacingStore(tmp_path / "s.sqlite")
    the_other_registers_first(store, "R")
    trainer = Trainer(store=store, resume=tmp_path / "run", progress=False)
    assert trainer.run_id == "R" and not trainer.registered_run
    assert store.get_run("R")["status"] == "running"  # (a followed run's status stays until it trains)
    with run_folder_lock(tmp_path / "run"), pytest.raises(RunFolderBusy):
        trainer.run()
    assert store.get_run("R")["status"] == "running"


def test_a_failed_sweep_point_never_marks_the_other_processes_row_failed(tmp_path):
    store = RacingStore(tmp_path / "s.sqlite")
    the_other_registers_first(store, "R")
    cfg = ExperimentConfig(**TINY)
    assert sweeps._register_failed(store, "R", cfg, "mine", "ValueError: bad data") == "R"
    assert store.get_run("R")["status"] == "running"


def test_a_failed_sweep_point_is_still_registered_failed(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    cfg = ExperimentConfig(**TINY)
    run = sweeps._register_failed(store, None, cfg, "mine", "ValueError: bad data")
    assert (store.get_run(run)["status"], store.get_run(run)["message"]) == ("failed", "ValueError: bad data")


# ------------------------------------------------------------------------------ 3. a file system refusing locks
class NoLocks:
    LOCK_EX, LOCK_NB, LOCK_UN = 2, 4, 8

    @staticmethod
    def flock(fd, op):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))


def test_a_file_system_refusing_locks_is_warned_about_once_at_the_users_line(tmp_path, monkeypatch):
    monkeypatch.setattr(run_folder, "fcntl", NoLocks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = Trainer(ExperimentConfig(**TINY), tmp_path / "run", progress=False)
        trainer.run()
    said = [w for w in caught if "refuses locks" in str(w.message)]
    assert len(said) == 1 and said[0].filename == __file__
    assert said[0].category is RuntimeWarning and str(tmp_path / "run") in str(said[0].message)


def test_the_cli_warns_once_about_a_file_system_refusing_locks(tmp_path, monkeypatch):
    monkeypatch.setattr(run_folder, "fcntl", NoLocks)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / run_folder.LOCK_NAME).write_text("")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["train", "--hidden", "8", "--epochs", "1", "--num-steps", "5", "--batch-size", "16",
                     "--max-batches-per-epoch", "2", "--eval-max-batches", "1", "--quiet", "--no-store",
                     "--run-dir", str(tmp_path / "run")]) == 0
    said = [w for w in caught if "refuses locks" in str(w.message)]
    assert len(said) == 1 and said[0].filename == __file__


# ------------------------------------------------------------------------------ 4. a holder not written yet
def test_a_skipped_row_of_an_unknown_holder_names_no_pid():
    row = sweeps._skipped_row(ExperimentConfig(**TINY), None, "unknown")
    assert row["error"] == "being trained by another process; rerun the sweep later to collect it"
    assert "(pid 42)" in sweeps._skipped_row(ExperimentConfig(**TINY), None, "42")["error"]


# ------------------------------------------------------------------------------ 5. a checkpoint without its config
def test_resume_of_a_checkpoint_without_its_configuration_says_so(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    torch.save({"step": 3, "model": {}}, tmp_path / "run" / "checkpoint.pt")
    assert main(["train", "--resume", "--run-dir", str(tmp_path / "run"), "--no-store", "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "has no saved configuration" in err and str(tmp_path / "run" / "checkpoint.pt") in err
    assert "not written by snnlab's Trainer" in err and "--overwrite" in err
