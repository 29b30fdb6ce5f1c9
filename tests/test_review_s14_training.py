"""Review of the training changes of session 14 (re-decided sweep points, refused run folders, neuron constants)."""
from concurrent.futures import ThreadPoolExecutor

from snnlab.experiments import RunStore, expand_grid, sweep
from snnlab.experiments import sweeps as sweeps_module
from snnlab.experiments.sweeps import run_folder_names
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.run_folder import run_folder_lock

TINY = dict(dataset="digits", hidden=[16], epochs=1, num_steps=8, batch_size=32, max_batches_per_epoch=2,
            eval_max_batches=1)
GRID = {"seed": [0, 1]}


def _first_folder(root):
    return root / run_folder_names(expand_grid(ExperimentConfig(**TINY), GRID))[0]


def _stale_plan(monkeypatch, folder, action):
    """The sweep's plan of ``folder`` made before another sweep changed it: ``action`` with a made-up run id."""
    plan, stale = sweeps_module._plan, []

    def planned_at_the_start(cfg, run_dir, robustness):
        if run_dir == folder and not stale:
            stale.append(True)
            return action, "0123456789ab", None, None
        return plan(cfg, run_dir, robustness)

    monkeypatch.setattr(sweeps_module, "_plan", planned_at_the_start)
    return stale


def _sweep(tmp_path):
    with ThreadPoolExecutor(1) as pool:
        return sweep(ExperimentConfig(**TINY), GRID, executor=pool, store_path=tmp_path / "s.sqlite",
                     run_root=tmp_path / "rr", progress=False)


def test_a_point_the_worker_reuses_counts_as_reused(tmp_path, monkeypatch):
    """Before: planned "new", finished by another sweep meanwhile, reused by the worker, but ``reused`` was () (and
    the CLI's "N finished run(s) reused" said nothing of it)."""
    first = _first_folder(tmp_path / "rr")
    Trainer(ExperimentConfig(**TINY, seed=0), first, RunStore(tmp_path / "s.sqlite"), progress=False).run()
    stale = _stale_plan(monkeypatch, first, "new")
    result = _sweep(tmp_path)
    assert stale and result.table["status"].tolist() == ["finished", "finished"]
    assert result.reused == (0,) and result.resumed == ()
    assert "_plan" not in result.table.columns


def test_a_planned_resume_skipped_as_busy_is_not_counted_as_resumed(tmp_path, monkeypatch):
    """Before: a point planned "resume" whose folder another training held gave a "skipped" row, yet ``resumed``
    listed it (the CLI: "1 resumed from their checkpoints")."""
    first = _first_folder(tmp_path / "rr")
    first.mkdir(parents=True)
    stale = _stale_plan(monkeypatch, first, "resume")
    with run_folder_lock(first):
        result = _sweep(tmp_path)
    assert stale and result.table["status"].tolist() == ["skipped", "finished"]
    assert result.resumed == () and result.reused == ()


def test_run_one_rows_keep_their_columns_unless_asked(tmp_path):
    row = sweeps_module.run_one(ExperimentConfig(**TINY).to_dict(), None, str(tmp_path / "run"))
    assert row["status"] == "finished" and "_plan" not in row
    again = sweeps_module.run_one(ExperimentConfig(**TINY).to_dict(), None, str(tmp_path / "run"), report_plan=True)
    assert again["status"] == "finished" and again["_plan"] == "reuse"


def test_a_trainer_for_a_folder_another_training_holds_is_told_it_is_busy_first(tmp_path):
    """Before: a folder holding another run's checkpoint, locked by a training, got RunFolderTaken's advice (resume it
    or overwrite=True), which the lock then refused too; now RunFolderBusy says so, before the checkpoint is read."""
    import pytest

    from snnlab.training.run_folder import RunFolderBusy
    folder = tmp_path / "run"
    Trainer(ExperimentConfig(**TINY), run_dir=folder, progress=False).run()
    with run_folder_lock(folder):  # (another open of the lock file: refused as another process would be)
        with pytest.raises(RunFolderBusy, match="in use by another training"):
            Trainer(ExperimentConfig(**TINY), run_dir=folder, progress=False)
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(FileExistsError, match="already holds the checkpoint"):  # free again: what it holds is said
        Trainer(ExperimentConfig(**TINY), run_dir=folder, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == before
