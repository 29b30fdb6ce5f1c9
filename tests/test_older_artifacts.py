"""Artifacts older snnlab versions wrote, read by this one: a sweep root whose grid points are named by index
(``000``, ``001``: sweeps before 2026-12-06), a checkpoint saved inside an epoch without its progress (before
2026-12-06), and reused sweep rows of runs that predate a metric."""
import json
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from snnlab.cli import main
from snnlab.experiments import sweep
from snnlab.experiments.sweeps import expand_grid, run_folders
from snnlab.training import ExperimentConfig, Trainer, load_checkpoint

TINY = dict(hidden=[8], num_steps=8, batch_size=32, epochs=1, max_batches_per_epoch=1, eval_max_batches=1,
            device="cpu")
#: the keys of a checkpoint snnlab 0cfb1af wrote (no epoch_progress, save_id, torch_threads, name...; the history a
#: list, not JSON text)
OLD_KEYS = ("format", "config_json", "run_id", "label", "epoch", "step", "model", "optimizer", "delay_schedule",
            "delays_rounded", "finished", "partial_epoch", "history", "last_eval", "result", "rng",
            "loader_generators", "time")
#: metrics the results of that version lack
OLD_MISSING_METRICS = ("activation_sparsity",)


def make_old(run_dir) -> dict:
    """Rewrite the checkpoint in ``run_dir`` (written by this snnlab) as snnlab 0cfb1af wrote one: its keys only, its
    configuration without the fields added since (at their defaults), its results without the metrics added since.
    The folder keeps ``checkpoint.pt`` and ``config.json``, the layout that version wrote. Returns the checkpoint."""
    ck = load_checkpoint(run_dir)
    old = {k: ck[k] for k in OLD_KEYS}
    old["config_json"] = json.dumps(ExperimentConfig.from_saved(ck["config_json"]).identity_dict(), indent=2)
    for key in ("result", "last_eval"):
        for part in (old[key] or {}).values() if key == "result" else [old[key] or {}]:
            for metric in OLD_MISSING_METRICS:
                if isinstance(part, dict):
                    part.pop(metric, None)
    torch.save(old, run_dir / "checkpoint.pt")
    (run_dir / "config.json").write_text(old["config_json"])
    return old


def train_into(run_dir, cfg: ExperimentConfig, stop_after_epoch: bool = False) -> Trainer:
    trainer = Trainer(cfg, run_dir=run_dir, progress=False)
    if stop_after_epoch:
        trainer.events.subscribe(lambda e: trainer.stop(), kinds=["epoch"])
    trainer.run()
    make_old(run_dir)
    return trainer


# ------------------------------------------------------------------------------------ 1. index-named sweep folders


def test_a_sweep_reuses_and_resumes_index_folders_matched_by_configuration_not_index(tmp_path):
    root = tmp_path / "runs"
    base = ExperimentConfig(**{**TINY, "epochs": 2})
    grid = {"lr": [0.01, 0.02]}
    points = expand_grid(base, grid)
    # the older sweep's grid order was another: 000 holds point 1 (finished), 001 point 0 (stopped after epoch 1)
    finished = train_into(root / "000", points[1])
    stopped = train_into(root / "001", points[0], stop_after_epoch=True)
    assert load_checkpoint(root / "001")["epoch"] == 1 and not load_checkpoint(root / "001")["finished"]
    other = train_into(root / "002", base.copy(lr=0.05))  # a point of no grid here: left alone, and said so
    before = (root / "002" / "checkpoint.pt").read_bytes()
    unused = r"002: lr=0\.05 where this sweep has 0\.0[12]"
    with ThreadPoolExecutor(1) as pool, pytest.warns(RuntimeWarning, match=unused):
        result = sweep(base, grid, executor=pool, run_root=root, progress=False, threads=torch.get_num_threads())
    assert result.reused == (1,) and result.resumed == (0,)
    assert result.table["run_id"].tolist() == [stopped.run_id, finished.run_id]
    assert (result.table["status"] == "finished").all()
    assert sorted(p.name for p in root.iterdir()) == ["000", "001", "002"]  # nothing trained into a new folder
    assert load_checkpoint(root / "001")["epoch"] == 2
    assert (root / "002" / "checkpoint.pt").read_bytes() == before
    assert other.run_id not in result.table["run_id"].tolist()


def _hand_written(folder, cfg: ExperimentConfig) -> None:
    """An index folder as snnlab 0cfb1af left it, but for the tensors (matching reads only the configuration)."""
    folder.mkdir(parents=True)
    torch.save({"format": "snnlab-checkpoint-v1", "config_json": json.dumps(cfg.identity_dict(), indent=2),
                "run_id": folder.name, "epoch": 0, "step": 0, "finished": False, "partial_epoch": False},
               folder / "checkpoint.pt")
    (folder / "config.json").write_text(json.dumps(cfg.identity_dict(), indent=2))


def test_run_folders_match_repeats_in_index_order_and_warn_once_about_the_rest(tmp_path):
    a, b = ExperimentConfig(**TINY, seed=1), ExperimentConfig(**TINY, seed=2)
    for name, cfg in (("000", b), ("001", a), ("002", a), ("003", a), ("004", ExperimentConfig(**TINY, seed=9))):
        _hand_written(tmp_path / name, cfg)
    (tmp_path / "005").mkdir()  # no checkpoint: nothing to reuse, nothing to say
    (tmp_path / "006").mkdir()
    (tmp_path / "006" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.warns(RuntimeWarning) as caught:
        got = run_folders(tmp_path, [a, a, b])
    assert [p.name for p in got] == ["001", "002", "000"]
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "003: the configuration of grid point 0, which has its folder 001 already" in message
    assert "004: seed=9 where this sweep has 1" in message
    assert "006: its checkpoint's configuration cannot be read" in message
    assert "005" not in message


def test_run_folders_never_match_by_index_alone(tmp_path):
    _hand_written(tmp_path / "000", ExperimentConfig(**TINY, seed=5))
    cfg = ExperimentConfig(**TINY, seed=6)
    with pytest.warns(RuntimeWarning, match="000: seed=5 where this sweep has 6"):
        got = run_folders(tmp_path, [cfg])
    assert got[0].name != "000"


# --------------------------------------------------------------------------- 2. a mid-epoch checkpoint, no progress


def stopped_run(run_dir, stop_at_step: int | None, old: bool) -> ExperimentConfig:
    """A run of 3 epochs of 3 batches stopped inside its second epoch, just after step ``stop_at_step`` (None: at its
    first epoch's end, before the next epoch's first batch); with ``old`` its checkpoint as snnlab 0cfb1af wrote it
    (partial_epoch=True, no epoch_progress)."""
    cfg = ExperimentConfig(**{**TINY, "epochs": 3, "max_batches_per_epoch": 3})
    trainer = Trainer(cfg, run_dir=run_dir, progress=False)
    if stop_at_step is None:
        trainer.events.subscribe(lambda e: trainer.stop(), kinds=["epoch"])
    else:
        trainer.events.subscribe(lambda e: trainer.stop() if e.step == stop_at_step else None, kinds=["step"])
    trainer.run()
    ck = make_old(run_dir) if old else load_checkpoint(run_dir)
    assert (ck["epoch"], ck["partial_epoch"]) == (1, True) and ("epoch_progress" in ck) != old
    return cfg


def test_resuming_an_old_mid_epoch_checkpoint_warns_that_its_epoch_restarts_and_only_that_one(tmp_path):
    cfg = stopped_run(tmp_path / "old", 4, old=True)
    with pytest.warns(UserWarning, match=r"saved inside epoch 2 \(step 4\) by an older snnlab .* restarts from its "
                                         r"first batch \(1 batch trained again\), so the result will differ"):
        trainer = Trainer(cfg, run_dir=tmp_path / "old", resume=tmp_path / "old", progress=False)
    trainer.run()
    assert load_checkpoint(tmp_path / "old")["step"] == 3 * 3 + 1  # what the warning said: one batch trained twice
    # no warning for a checkpoint that keeps its epoch's progress, nor for an old one where no batch trains twice
    for name, stop_at_step, old in (("current", 4, False), ("old_at_start", None, True)):
        cfg = stopped_run(tmp_path / name, stop_at_step, old)
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*older snnlab")
            Trainer(cfg, run_dir=tmp_path / name, resume=tmp_path / name, progress=False).run()
        assert load_checkpoint(tmp_path / name)["step"] == 3 * 3


def test_the_command_line_shows_that_warning(tmp_path):
    stopped_run(tmp_path / "run", 4, old=True)
    with pytest.warns(UserWarning, match=r"saved inside epoch 2 .*1 batch trained again"):
        assert main(["train", "--resume", "--run-dir", str(tmp_path / "run"), "--no-store", "--quiet"]) == 0


def test_batches_into_epoch():
    from snnlab.training.resume import batches_into_epoch

    history = [{"kind": "step", "epoch": 0, "step": 3}, {"kind": "epoch", "epoch": 0, "step": 3}]
    assert batches_into_epoch({"epoch": 1, "step": 5, "history": history}) == 2
    assert batches_into_epoch({"epoch": 0, "step": 2}) == 2
    assert batches_into_epoch({"epoch": 1, "step": 5}) is None  # no history: it cannot tell


# ---------------------------------------------------------------- 3. reused rows of runs that predate a metric


def test_reused_rows_without_a_metric_hold_nan_and_the_front_says_it_leaves_them_out(tmp_path):
    root = tmp_path / "runs"
    base = ExperimentConfig(**TINY)
    grid = {"lr": [0.01, 0.02]}
    with ThreadPoolExecutor(1) as pool:
        sweep(base, grid, executor=pool, run_root=root, progress=False, threads=torch.get_num_threads())
    for folder in root.iterdir():
        make_old(folder)  # runs of a version that did not measure activation_sparsity
    objectives = {"accuracy": "max", "activation_sparsity": "max"}
    with ThreadPoolExecutor(1) as pool, \
            pytest.warns(RuntimeWarning, match=r"2 of 2 finished run\(s\) .* have no activation_sparsity"):
        result = sweep(base, grid, executor=pool, run_root=root, progress=False, threads=torch.get_num_threads(),
                       objectives=objectives)
    assert result.reused == (0, 1)
    column = result.table["activation_sparsity"]
    assert column.dtype == float and column.isna().all()
    assert "activation_sparsity" in result.table[["accuracy", "activation_sparsity"]].mean(numeric_only=True)
    assert len(result.front) == 0
