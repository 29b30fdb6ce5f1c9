"""``mask_at_inference`` without ``mask_p`` has no effect, so it is no part of a run's identity there: a sweep
``--grid mask_p=0,0.3 --mask-at-inference`` on a run root that holds the plain baseline reuses it (no retraining,
no second run of one label in the store), while the masked point trains."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import torch

from snnlab.experiments import sweep
from snnlab.experiments.store import RunStore
from snnlab.experiments.sweeps import folder_identity, run_folder_names
from snnlab.training import ExperimentConfig

TINY = dict(dataset="digits", hidden=[8], num_steps=8, batch_size=32, epochs=1, max_batches_per_epoch=2,
            eval_max_batches=1, device="cpu", seed=0)


def test_the_flag_without_mask_p_is_no_part_of_the_identity():
    plain, flagged = ExperimentConfig(mask_p=0.0), ExperimentConfig(mask_p=0.0, mask_at_inference=True)
    assert plain.label() == flagged.label()
    assert folder_identity(plain) == folder_identity(flagged)
    assert run_folder_names([plain]) == run_folder_names([flagged])
    masked = [ExperimentConfig(mask_p=0.3, mask_at_inference=on) for on in (False, True)]
    assert run_folder_names(masked[:1]) != run_folder_names(masked[1:])  # with mask_p it is another run


def _sweep(base: ExperimentConfig, grid: dict, root, store):
    with ThreadPoolExecutor(1) as pool:
        return sweep(base, grid, executor=pool, run_root=root, store_path=store, progress=False,
                     threads=torch.get_num_threads())


def test_a_flagged_sweep_over_mask_p_reuses_the_plain_baseline(tmp_path):
    root, store_path = tmp_path / "runs", tmp_path / "runs.db"
    first = _sweep(ExperimentConfig(**TINY), {"mask_p": [0.0]}, root, store_path)
    assert first.table["status"].tolist() == ["finished"]
    baseline_id = first.table["run_id"][0]

    second = _sweep(ExperimentConfig(**TINY, mask_at_inference=True), {"mask_p": [0.0, 0.3]}, root, store_path)
    assert second.table["status"].tolist() == ["finished", "finished"]
    assert second.reused == (0,) and second.resumed == ()
    assert second.table["run_id"][0] == baseline_id  # reused, not retrained
    assert second.table["run_id"][1] != baseline_id
    assert len([p for p in root.iterdir() if p.is_dir()]) == 2  # no second folder of the baseline

    store = RunStore(store_path)
    try:
        runs = store.list_runs()
        assert len(runs) == 2 and runs["name"].nunique() == 2  # one run per label
        assert store.get_config(baseline_id)["mask_at_inference"] is False  # the row keeps the config it trained
    finally:
        store.close()
