"""Sweeps on a process pool and on a dask LocalCluster, the grid expansion and the Pareto front."""
from pathlib import Path

import pandas as pd
import pytest

from snnlab.experiments import RunStore, expand_grid, sweep
from snnlab.experiments.sweeps import run_folder_names
from snnlab.metrics.pareto import pareto_front, pareto_mask
from snnlab.training import ConfigError, ExperimentConfig

TINY = dict(dataset="digits", hidden=[16], epochs=1, num_steps=8, batch_size=32, max_batches_per_epoch=2,
            eval_max_batches=1)


def test_expand_grid_and_its_errors():
    base = ExperimentConfig(**TINY)
    cfgs = expand_grid(base, {"neuron": ["ttfs", "multi_spike"], "mask_p": [0.0, 0.2]})
    assert [(c.neuron, c.mask_p) for c in cfgs] == [("ttfs", 0.0), ("ttfs", 0.2), ("multi_spike", 0.0),
                                                      ("multi_spike", 0.2)]
    assert all(c.hidden == [16] for c in cfgs)
    with pytest.raises(ConfigError, match="unknown field"):
        expand_grid(base, {"nerons": ["ttfs"]})
    with pytest.raises(ConfigError, match="non-empty list"):
        expand_grid(base, {"neuron": []})
    with pytest.raises(ConfigError):
        expand_grid(base, {"neuron": ["bogus"]})


def test_pareto_front_hand_case():
    df = pd.DataFrame({"acc": [0.9, 0.8, 0.85, 0.7, 0.9, float("nan")], "spikes": [100, 20, 150, 30, 90, 1]})
    front = pareto_front(df, {"acc": "max", "spikes": "min"})
    assert front[["acc", "spikes"]].values.tolist() == [[0.8, 20], [0.9, 90]]
    assert pareto_mask(df[["acc", "spikes"]].to_numpy(), [True, False]).tolist() == [False, True, False, False, True, False]
    with pytest.raises(ValueError, match="no column"):
        pareto_front(df, {"latency": "min"})


def test_sweep_on_a_process_pool_logs_every_run_in_the_store(tmp_path):
    store_path = tmp_path / "runs.sqlite"
    result = sweep(ExperimentConfig(**TINY), {"neuron": ["ttfs", "multi_spike"]}, store_path=store_path,
                   run_root=tmp_path / "runs", max_workers=2, progress=False, robustness=("deletion", 0.5))
    table = result.table
    assert table["neuron"].tolist() == ["ttfs", "multi_spike"]
    assert (table["status"] == "finished").all()
    assert table["accuracy"].between(0, 1).all() and (table["spikes_per_sample"] >= 0).all()
    assert "robust_accuracy_deletion_0.5" in table
    assert 1 <= len(result.front) <= 2 and set(result.front["run_id"]) <= set(table["run_id"])
    store = RunStore(store_path)
    runs = store.list_runs()
    assert set(runs["run_id"]) == set(table["run_id"]) and (runs["status"] == "finished").all()
    assert sorted(n.rsplit("[", 1)[1] for n in runs["name"]) == ["neuron=multi_spike]", "neuron=ttfs]"]
    summaries = store.summaries()
    assert set(summaries["config.neuron"]) == {"ttfs", "multi_spike"}
    folders = run_folder_names(expand_grid(ExperimentConfig(**TINY), {"neuron": ["ttfs", "multi_spike"]}))
    assert all((tmp_path / "runs" / f / "checkpoint.pt").exists() for f in folders)
    assert all(Path(p).is_absolute() and Path(p).exists() for p in runs["checkpoint"])


def test_sweep_on_a_dask_local_cluster(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            result = sweep(ExperimentConfig(**TINY), {"mask_p": [0.0, 0.3]}, executor=client, progress=False)
    assert result.table["mask_p"].tolist() == [0.0, 0.3]
    assert (result.table["status"] == "finished").all()


def test_failed_runs_are_reported_not_raised(tmp_path):
    from snnlab.experiments.sweeps import run_one

    row = run_one({**TINY, "dataset": "nmnist", "data_root": str(tmp_path / "missing")})
    assert row["status"] == "failed" and "FileNotFoundError" in row["error"] and "NMNIST" in row["error"]


@pytest.mark.parametrize("robustness,match", [(("bogus", 1.0), "unknown perturbation"),
                                              ([("deletion", 2.0)], "probability"),
                                              ([("jitter",)], "pairs")])
def test_bad_robustness_settings_are_refused_before_anything_trains(tmp_path, robustness, match):
    from concurrent.futures import ThreadPoolExecutor

    store = tmp_path / "runs.sqlite"
    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match=match):
        sweep(ExperimentConfig(**TINY), {"seed": [0, 1]}, executor=pool, store_path=store, robustness=robustness,
              progress=False)
    assert not store.exists() or RunStore(store).list_runs().empty


def test_a_robustness_measurement_that_fails_keeps_the_trained_run(monkeypatch):
    from snnlab.experiments import sweeps

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(sweeps, "robustness_curve", broken)
    row = sweeps.run_one(TINY, robustness=[("gaussian", 0.5)])
    assert row["status"] == "finished" and row["accuracy"] is not None and "out of memory" in row["error"]


def test_a_bfloat16_run_measures_its_robustness_in_bfloat16():
    """Probe of precision='bfloat16': the robustness column ran in float32, so level 0 did not give the run's own
    accuracy (0.8361 against 0.8389)."""
    from snnlab.experiments import sweeps

    cfg = dict(TINY, hidden=[64], num_steps=15, batch_size=64, max_batches_per_epoch=6, eval_max_batches=None,
               lr=5e-3, precision="bfloat16")
    row = sweeps.run_one(cfg, robustness=[("deletion", 0.0)])
    assert row["status"] == "finished" and row["accuracy"] > 0.3
    assert row["robust_accuracy_deletion_0"] == row["accuracy"]


def _interrupting_trainer(monkeypatch, seed, step):
    """Make the in-process run of ``seed`` press Ctrl-C (SIGINT to the main thread) at ``step``, then wait for
    the sweep to ask it to stop."""
    import signal
    import threading
    import time

    from snnlab.training import trainer as trainer_mod

    class Interrupting(trainer_mod.Trainer):
        def __init__(self, cfg, *args, **kwargs):
            super().__init__(cfg, *args, **kwargs)
            if self.cfg.seed == seed and kwargs.get("resume") is None:
                self.events.subscribe(self._ctrl_c, kinds=["step"])

        def _ctrl_c(self, event):
            if event.step == step:
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                deadline = time.time() + 30
                while not self._stop_req and time.time() < deadline:
                    time.sleep(0.01)

    monkeypatch.setattr(trainer_mod, "Trainer", Interrupting)


def test_ctrl_c_keeps_the_finished_rows_and_a_rerun_resumes_the_rest(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from snnlab.experiments import SweepInterrupted

    store_path, root, out = tmp_path / "runs.sqlite", tmp_path / "runs", tmp_path / "table.csv"
    base, grid = ExperimentConfig(**{**TINY, "epochs": 2}), {"seed": [0, 1, 2]}
    _interrupting_trainer(monkeypatch, seed=1, step=3)
    with ThreadPoolExecutor(1) as pool, pytest.raises(SweepInterrupted) as info:
        sweep(base, grid, executor=pool, store_path=store_path, run_root=root, progress=False, out=out)
    table = info.value.result.table
    assert table["status"].tolist() == ["finished", "stopped", "cancelled"]  # seed 2 never started
    assert pd.read_csv(out)["status"].tolist() == ["finished", "stopped", "cancelled"]  # nothing lost
    store = RunStore(store_path)
    assert store.list_runs()["status"].tolist() == ["finished", "stopped"]
    first_ids = table["run_id"].tolist()[:2]

    monkeypatch.undo()
    with ThreadPoolExecutor(1) as pool:
        again = sweep(base, grid, executor=pool, store_path=store_path, run_root=root, progress=False)
    assert again.reused == (0,) and again.resumed == (1,)
    assert (again.table["status"] == "finished").all() and again.table["run_id"].tolist()[:2] == first_ids
    runs = store.list_runs()
    assert len(runs) == 3 and (runs["status"] == "finished").all()  # no duplicate runs
    loss = store.metrics(first_ids[1]).query("name == 'loss'")["step"].tolist()
    assert loss == [1, 2, 3, 4]  # the stopped run continued from its checkpoint (step 3)

    # another sweep in the same run_root: its own folders, nobody's checkpoint overwritten
    with ThreadPoolExecutor(1) as pool:
        other = sweep(base.copy(hidden=[8]), {"seed": [0]}, executor=pool, store_path=store_path, run_root=root,
                      progress=False)
    assert other.reused == () and len(list(root.iterdir())) == 4
    from snnlab.training import load_checkpoint

    runs = store.list_runs()
    assert [load_checkpoint(p)["run_id"] for p in runs["checkpoint"]] == runs["run_id"].tolist()


def test_a_dead_worker_fails_its_runs_not_the_sweep(tmp_path):
    """A worker killed (OOM killer, kill -9) breaks the pool: its run and the queued ones become failed rows."""
    from concurrent.futures import Future, ThreadPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    from snnlab.experiments.sweeps import run_one

    store_path = tmp_path / "runs.sqlite"

    class DyingPool(ThreadPoolExecutor):
        """Runs seed 0; the worker of seed 1 dies mid-run (its run stays "running"); seed 2 never starts."""

        def submit(self, fn, *args, **kwargs):
            seed = args[0]["seed"]
            if seed == 0:
                return super().submit(fn, *args, **kwargs)
            if seed == 1:
                store = RunStore(store_path)
                store.set_status(store.create_run(args[0], args[5], run_id=args[6]), "running")
            fut = Future()
            fut.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
            return fut

    assert run_one  # the worker function the pool is given
    with DyingPool(1) as pool:
        result = sweep(ExperimentConfig(**TINY), {"seed": [0, 1, 2]}, executor=pool, store_path=store_path,
                       progress=False, out=tmp_path / "t.csv")
    table = result.table
    assert table["status"].tolist() == ["finished", "failed", "failed"], table["error"].tolist()
    assert "worker process died" in table["error"][1] and table["error"][2].startswith("not started")
    assert len(pd.read_csv(tmp_path / "t.csv")) == 3
    runs = RunStore(store_path).list_runs()
    assert sorted(runs["status"]) == ["failed", "finished"]  # not left "running" forever
    assert len(result.front) == 1


def test_thread_pools_run_one_run_at_a_time(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="not reproducible"):
        sweep(ExperimentConfig(**TINY), {"seed": [0, 1]}, executor=pool, store_path=tmp_path / "s.sqlite",
              progress=False)
    assert not (tmp_path / "s.sqlite").exists()  # refused before anything ran


def test_a_grid_over_data_kwargs_keeps_the_bases_other_keys():
    """Probe: a grid over channel_bin on the dcls_shd preset dropped its 10 ms frames (every run on 100 bins)."""
    from snnlab.training import preset

    points = expand_grid(preset("dcls_shd"), {"data_kwargs": [{"channel_bin": 5}, {"channel_bin": 10}], "seed": [0]})
    assert [p.data_kwargs for p in points] == [{"time_window": 10000, "channel_bin": 5},
                                               {"time_window": 10000, "channel_bin": 10}]
    assert all("dt10ms" in p.label() for p in points)


def test_a_rerun_reuses_a_run_saved_with_data_kwargs_its_dataset_ignored(tmp_path):
    """Versions before 2026-12-06 kept data_kwargs the dataset ignored (here the rate encoder's gain under the
    latency encoding) in the checkpoint; the grid point without them is the same run, reused with a warning."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from snnlab.training import load_checkpoint, save_checkpoint

    root, base, grid = tmp_path / "runs", ExperimentConfig(**TINY), {"seed": [0]}
    with ThreadPoolExecutor(1) as pool:
        first = sweep(base, grid, executor=pool, run_root=root, progress=False, store_path=tmp_path / "s.sqlite")
    (folder,) = root.iterdir()
    ckpt_path = next(folder.glob("*.pt"))
    ck = load_checkpoint(ckpt_path)
    old = json.loads(ck["config_json"])
    ck["config_json"] = json.dumps({**old, "data_kwargs": {**old["data_kwargs"], "gain": 0.5}})
    save_checkpoint(ckpt_path, ck)
    with ThreadPoolExecutor(1) as pool, pytest.warns(UserWarning, match=r"\['gain'\] are not options"):
        again = sweep(base, grid, executor=pool, run_root=root, progress=False, store_path=tmp_path / "s.sqlite")
    assert again.reused == (0,) and again.table["status"].tolist() == ["finished"]
    assert again.table["run_id"].tolist() == first.table["run_id"].tolist()


def test_workers_exit_when_the_sweep_process_is_killed(tmp_path):
    """Store probe: after a SIGKILL of `snnlab sweep` its workers lived on forever (re-parented), training queued
    runs for nobody."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    import time

    script = textwrap.dedent("""
        import os, sys
        from snnlab.experiments.sweeps import process_pool
        pool = process_pool(1)
        print(pool.submit(os.getpid).result(), flush=True)
        os.kill(os.getpid(), 9)   # as a SIGKILL from outside: no clean-up at all
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    worker = int(proc.stdout.split()[0])

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        with open(f"/proc/{pid}/stat") as f:  # a zombie is gone too
            return f.read().split(")")[-1].split()[0] != "Z"

    deadline = time.monotonic() + 30
    while alive(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    try:
        assert not alive(worker)
    finally:
        if alive(worker):
            os.kill(worker, signal.SIGKILL)
