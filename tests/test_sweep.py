"""Sweeps on a process pool and on a dask LocalCluster, the grid expansion and the Pareto front."""
import pandas as pd
import pytest

from snnlab.experiments import RunStore, expand_grid, sweep
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
    assert (tmp_path / "runs" / "000" / "checkpoint.pt").exists()


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
