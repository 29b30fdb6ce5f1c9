"""Closing a dashboard tab during a sweep (processes or threads): no run that had not started training when it closed
ever trains.

A process pool hands up to ``max_workers + 1`` calls to its workers' queue, which ``shutdown(cancel_futures=True)``
cannot take back; the sweep's workers are told through the pool's cancel event instead, and a run whose trainer was
being built when it was set stops before its first step. The runs are held at a gate (files in ``gate/``) so that the
tab closes while the first one is in its worker, never by timing.
"""
import textwrap
import threading
import time

import pytest

pytest.importorskip("panel")

from snnlab.dashboard import sweeper  # noqa: E402
from snnlab.dashboard.sweeper import SweepPanel  # noqa: E402
from snnlab.experiments import RunStore, sweeps  # noqa: E402
from snnlab.training import ExperimentConfig  # noqa: E402

TINY = dict(dataset="digits", hidden=[4], num_steps=4, batch_size=16, epochs=1, max_batches_per_epoch=1,
            eval_max_batches=1)

# imported by the spawned workers (the parent's sys.path reaches them): the pool's own initializer, then a gate
# before each run's training that says the run is in its worker and waits until the test lets it go
GATE_MODULE = textwrap.dedent('''
    import time
    from pathlib import Path

    from snnlab.experiments import sweeps


    def init(gate, initializer, initargs):
        initializer(*initargs)
        train_row = sweeps._train_row

        def gated(cfg, *args):
            Path(gate, f"started-{cfg.seed}").touch()
            deadline = time.monotonic() + 120  # a guard: the test lets it go at once
            while not Path(gate, "go").exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            return train_row(cfg, *args)

        sweeps._train_row = gated
''')


def _wait_for(predicate, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert predicate(), f"never happened: {what}"


def _statuses(panel: SweepPanel) -> list[str]:
    assert panel.wait(180)
    panel.poll()
    assert panel._error is None, panel._error
    return panel.results.value["status"].tolist()


def test_closing_during_a_process_sweep_starts_none_of_the_queued_runs(tmp_path, monkeypatch):
    gate = tmp_path / "gate"
    gate.mkdir()
    (tmp_path / "sweep_gate.py").write_text(GATE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    real_pool = sweeper.process_pool

    def gated_pool(max_workers, **kwargs):
        pool = real_pool(max_workers, **kwargs)  # the dashboard's pool, as it makes it
        import sweep_gate

        pool._initializer, pool._initargs = sweep_gate.init, (str(gate), pool._initializer, pool._initargs)
        return pool

    monkeypatch.setattr(sweeper, "process_pool", gated_pool)
    store_path = tmp_path / "runs.sqlite"
    panel = SweepPanel(lambda: ExperimentConfig(**TINY), store_path, max_workers=1)
    panel.grid.value = '{"seed": [0, 1, 2]}'
    panel.executor.value = "processes"
    assert panel.launch() and not panel.alert.visible
    _wait_for((gate / "started-0").exists, "the first run reached its worker")
    panel.close()  # the tab closes: seed 1 (and maybe seed 2) is already in the pool's call queue
    (gate / "go").touch()
    # seed 0, past the worker's check but not yet training, stops before its first step; 1 and 2 never start
    assert _statuses(panel) == ["stopped", "cancelled", "cancelled"]
    assert "cancelled before this run's first step" in panel.results.value["error"].iloc[0]
    assert sorted(p.name for p in gate.iterdir()) == ["go", "started-0"]  # seeds 1 and 2 never reached training
    runs = RunStore(store_path, read_only=True).list_runs()
    assert runs["status"].tolist() == ["stopped"] and "seed=0" in runs["name"].iloc[0]  # nothing left "running"
    assert RunStore(store_path, read_only=True).metrics(runs["run_id"].iloc[0]).empty  # not one step trained


def test_closing_during_a_thread_sweep_cancels_the_queued_runs(tmp_path, monkeypatch):
    """The thread pool's cancel event: the run past its start check when the tab closes stops before its first step
    (before: it trained to its end), the queued ones never start."""
    started, go, seen = threading.Event(), threading.Event(), []
    train_row = sweeps._train_row

    def gated(cfg, *args):
        seen.append(cfg.seed)
        started.set()
        go.wait(120)
        return train_row(cfg, *args)

    monkeypatch.setattr(sweeps, "_train_row", gated)
    store_path = tmp_path / "runs.sqlite"
    panel = SweepPanel(lambda: ExperimentConfig(**TINY), store_path, default_executor="threads", max_workers=1)
    panel.grid.value = '{"seed": [0, 1, 2]}'
    assert panel.launch() and not panel.alert.visible
    assert started.wait(120)
    panel.close()
    go.set()
    assert _statuses(panel) == ["stopped", "cancelled", "cancelled"]
    assert "cancelled before this run's first step" in panel.results.value["error"].iloc[0]
    assert seen == [0]
    runs = RunStore(store_path, read_only=True).list_runs()
    assert runs["status"].tolist() == ["stopped"]
    assert RunStore(store_path, read_only=True).metrics(runs["run_id"].iloc[0]).empty  # not one step trained


def test_thread_pools_keep_their_cancel_events_apart_and_refuse_a_non_event(tmp_path, monkeypatch):
    """Two thread sweeps in one server: setting one's event cancels only its runs."""
    monkeypatch.setattr(sweeps, "_train_row", lambda *a: {"status": "finished"})
    first, second = threading.Event(), threading.Event()
    pools = [sweeps.thread_pool(cancel=first), sweeps.thread_pool(cancel=second)]
    first.set()
    cfg = ExperimentConfig(**TINY).to_dict()
    rows = [pool.submit(sweeps.run_one, cfg, None).result() for pool in pools]
    assert [r["status"] for r in rows] == ["cancelled", "finished"]
    assert sweeps._pool_cancel() is None  # (the test's own thread belongs to no pool)
    for pool in pools:
        pool.shutdown()
    with pytest.raises(TypeError, match="thread_pool: cancel must be an event"):
        sweeps.thread_pool(cancel=True)


def test_a_worker_whose_cancel_event_is_set_starts_no_run_and_a_bad_event_is_refused(tmp_path, monkeypatch):
    cancel = sweeps.cancel_event()
    monkeypatch.setattr(sweeps, "_worker_cancel", cancel)  # as process_pool's initializer sets it in a worker
    monkeypatch.setattr(sweeps, "_train_row", lambda *a: pytest.fail("a cancelled worker started a run"))
    cancel.set()
    row = sweeps.run_one(ExperimentConfig(**TINY).to_dict(), str(tmp_path / "runs.sqlite"))
    assert row["status"] == "cancelled" and row["run_id"] is None and "before this run started" in row["error"]
    assert not (tmp_path / "runs.sqlite").exists()
    with pytest.raises(TypeError, match="process_pool: cancel must be an event from cancel_event"):
        sweeps.process_pool(1, cancel=threading.Event())


def _cancel_during(monkeypatch, cancel, when: str) -> None:
    """Set ``cancel`` (as a closed tab does) once the run's trainer is built ("built"), or at its first epoch's end
    ("epoch": the run is training by then)."""
    from snnlab.training.trainer import Trainer

    built = Trainer.__init__

    def init(self, *args, **kwargs):
        built(self, *args, **kwargs)
        if when == "built":
            cancel.set()
        else:
            self.events.subscribe(lambda event: cancel.set(), kinds=[when])

    monkeypatch.setattr(Trainer, "__init__", init)


def test_a_cancel_while_the_trainer_is_built_stops_the_run_before_its_first_step(tmp_path, monkeypatch):
    """The worker passed its check and was loading the run's data when the tab closed: the run never trains a step,
    its store row says stopped (nothing is left "running") and its checkpoint resumes it."""
    from snnlab.training.checkpoint import load_checkpoint
    from snnlab.training.resume import CHECKPOINT_NAME

    cancel = sweeps.cancel_event()
    monkeypatch.setattr(sweeps, "_worker_cancel", cancel)  # as process_pool's initializer sets it in a worker
    _cancel_during(monkeypatch, cancel, "built")
    store_path, run_dir = tmp_path / "runs.sqlite", tmp_path / "run"
    row = sweeps.run_one(dict(ExperimentConfig(**TINY).to_dict(), epochs=2), str(store_path), str(run_dir))
    assert row["status"] == "stopped" and row["run_id"] is not None, row
    assert row["error"] == "the sweep was cancelled before this run's first step; its checkpoint is saved"
    run = RunStore(store_path, read_only=True).get_run(row["run_id"])
    assert run["status"] == "stopped" and "cancelled before this run's first step" in run["message"]
    assert RunStore(store_path, read_only=True).metrics(row["run_id"]).empty  # not one step logged
    assert load_checkpoint(run_dir / CHECKPOINT_NAME)["step"] == 0


def test_a_cancel_once_the_run_trains_lets_it_finish(tmp_path, monkeypatch):
    cancel = sweeps.cancel_event()
    monkeypatch.setattr(sweeps, "_worker_cancel", cancel)
    _cancel_during(monkeypatch, cancel, "epoch")
    row = sweeps.run_one(dict(ExperimentConfig(**TINY).to_dict(), epochs=2), str(tmp_path / "runs.sqlite"))
    assert cancel.is_set() and row["status"] == "finished" and row["error"] is None, row
    assert RunStore(tmp_path / "runs.sqlite", read_only=True).get_run(row["run_id"])["status"] == "finished"


def test_a_fork_context_event_is_refused_before_the_pool_starts():
    """A spawn pool's workers cannot share a "fork" event: it used to fail only at the sweep's first submit."""
    import multiprocessing

    with pytest.raises(ValueError, match="process_pool: cancel is an event of the 'fork' context"):
        sweeps.process_pool(1, cancel=multiprocessing.get_context("fork").Event())
