"""Two sweeps of one grid on one run_root at the same time (files/concurrency tester: both exited 1, each left a
"failed" run in the store beside the finished run of the same grid point, with Python-API advice or RunFolderBusy as
the message). The plan a sweep makes at its start goes stale: each worker decides again, a point the other sweep is
training is "skipped" (no store row), one it finished meanwhile is reused."""
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest

from snnlab.experiments import RunStore, expand_grid, sweep
from snnlab.experiments import sweeps as sweeps_module
from snnlab.experiments.sweeps import run_folder_names
from snnlab.training import ExperimentConfig, Trainer, load_checkpoint
from snnlab.training import trainer as trainer_module
from snnlab.training.run_folder import LOCK_NAME, run_folder_lock

TINY = dict(dataset="digits", hidden=[16], epochs=1, num_steps=8, batch_size=32, max_batches_per_epoch=2,
            eval_max_batches=1)
GRID = {"seed": [0, 1]}


def folders(root):
    return [root / name for name in run_folder_names(expand_grid(ExperimentConfig(**TINY), GRID))]


def run_sweep(tmp_path):
    with ThreadPoolExecutor(1) as pool:
        return sweep(ExperimentConfig(**TINY), GRID, executor=pool, store_path=tmp_path / "s.sqlite",
                     run_root=tmp_path / "rr", progress=False)


@pytest.fixture
def held_by_another_process(tmp_path):
    """Point 0's folder locked by another process (as a sweep training it holds it); yields that process's id."""
    folder = folders(tmp_path / "rr")[0]
    folder.mkdir(parents=True)
    code = textwrap.dedent(f"""
        import fcntl, os, sys
        with open({str(folder / LOCK_NAME)!r}, "a+") as f:  # the lock as run_folder_lock takes it (no torch to load)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            f.write(str(os.getpid()))
            f.flush()
            print("held", flush=True)
            sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        yield proc.pid
    finally:
        proc.communicate("\n", timeout=60)


def test_a_point_another_process_trains_is_skipped_without_a_store_row(tmp_path, held_by_another_process):
    table = run_sweep(tmp_path).table
    assert table["status"].tolist() == ["skipped", "finished"]
    assert table["error"][0] == (f"being trained by another process (pid {held_by_another_process}); rerun the sweep "
                                 "later to collect it")
    runs = RunStore(tmp_path / "s.sqlite").list_runs()
    assert runs["status"].tolist() == ["finished"] and runs["run_id"].tolist() == [table["run_id"][1]]


def test_a_point_finished_since_the_sweep_began_is_reused(tmp_path, monkeypatch):
    """The sweep planned a new run for point 0, and another sweep finished it before this one's worker got to it."""
    first = folders(tmp_path / "rr")[0]
    store = RunStore(tmp_path / "s.sqlite")
    other = Trainer(ExperimentConfig(**TINY, seed=0), first, store, progress=False)
    other.run()
    plan, stale = sweeps_module._plan, []

    def planned_at_the_start(cfg, run_dir, robustness):
        if run_dir == first and not stale:  # the plan the sweep made before the other one saved there
            stale.append(True)
            return "new", "0123456789ab", None, None
        return plan(cfg, run_dir, robustness)

    monkeypatch.setattr(sweeps_module, "_plan", planned_at_the_start)
    table = run_sweep(tmp_path).table
    assert stale and table["status"].tolist() == ["finished", "finished"]
    assert table["run_id"][0] == other.run_id  # the other sweep's run, not trained again
    runs = store.list_runs()
    assert sorted(runs["run_id"]) == sorted(table["run_id"]) and (runs["status"] == "finished").all()
    assert load_checkpoint(first / "checkpoint.pt")["run_id"] == other.run_id


def test_a_folder_taken_between_construction_and_start_leaves_no_row(tmp_path, monkeypatch):
    """Another training takes point 0's folder after this sweep built its trainer and before it starts."""
    first = folders(tmp_path / "rr")[0]
    run = trainer_module.Trainer.run
    held = []

    def taken_first(self, *args, **kwargs):
        if self.run_dir == first and not held:
            held.append(run_folder_lock(first))
            held[0].__enter__()
        return run(self, *args, **kwargs)

    monkeypatch.setattr(trainer_module.Trainer, "run", taken_first)
    try:
        table = run_sweep(tmp_path).table
    finally:
        if held:
            held[0].__exit__(None, None, None)
    assert table["status"].tolist() == ["skipped", "finished"]
    assert "being trained by another training in this process" in table["error"][0]
    runs = RunStore(tmp_path / "s.sqlite").list_runs()
    assert runs["run_id"].tolist() == [table["run_id"][1]]  # the refused trainer's row is gone
    # a rerun collects it: point 0 trained now, point 1 reused
    again = run_sweep(tmp_path)
    assert again.table["status"].tolist() == ["finished", "finished"] and again.reused == (1,)
    assert (RunStore(tmp_path / "s.sqlite").list_runs()["status"] == "finished").all()
