"""A run whose checkpoint another run replaced (``overwrite``) loses its store entry for it, and a stale entry is
never loaded for the wrong run (the dashboard's robustness curves)."""
import sqlite3

import holoviews as hv
import pytest

from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig, Trainer, load_checkpoint
from snnlab.training.checkpoint import save_checkpoint

TINY = dict(dataset="digits", num_steps=4, batch_size=16, epochs=1, max_batches_per_epoch=1, eval_max_batches=1,
            device="cpu")


def _two_runs_in_one_folder(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    folder = tmp_path / "run"
    old = Trainer(ExperimentConfig(hidden=[12], **TINY), run_dir=folder, store=store, progress=False, name="old")
    old.run()
    new = Trainer(ExperimentConfig(hidden=[8], **TINY), run_dir=folder, store=store, progress=False, name="new",
                  overwrite=True)
    new.run()
    return store, folder, old.run_id, new.run_id


def test_overwrite_clears_the_replaced_runs_checkpoint_entry_and_says_so(tmp_path):
    store, folder, old_id, new_id = _two_runs_in_one_folder(tmp_path)
    path = (folder / "checkpoint.pt").resolve()
    assert load_checkpoint(path)["run_id"] == new_id
    old, new = store.get_run(old_id), store.get_run(new_id)
    assert old["checkpoint"] is None
    assert old["message"] == f"checkpoint replaced by run {new_id}"
    assert old["status"] == "finished" and old["summary"] is not None  # its results stay
    assert not store.metrics(old_id).empty  # and its metrics
    assert new["checkpoint"] == str(path) and new["message"] is None
    listed = store.list_runs().set_index("run_id")
    assert not isinstance(listed.loc[old_id, "checkpoint"], str) and listed.loc[new_id, "checkpoint"] == str(path)


def test_set_checkpoint_clears_only_other_runs_at_the_same_path(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    a, b, c = store.create_run({}), store.create_run({}), store.create_run({})
    shared, other = tmp_path / "x" / "checkpoint.pt", tmp_path / "y" / "checkpoint.pt"
    store.set_checkpoint(a, shared)
    store.set_status(a, "stopped", "stop requested")
    store.set_checkpoint(c, other)
    store.set_checkpoint(a, shared)  # a run saving again over its own checkpoint keeps it
    assert store.get_run(a)["checkpoint"] == str(shared.resolve())
    assert store.get_run(a)["message"] == "stop requested"
    store.set_checkpoint(b, shared)
    run_a = store.get_run(a)
    assert run_a["checkpoint"] is None and run_a["status"] == "stopped"
    assert run_a["message"] == f"stop requested; checkpoint replaced by run {b}"
    assert store.get_run(b)["checkpoint"] == str(shared.resolve())
    assert store.get_run(c)["checkpoint"] == str(other.resolve()) and store.get_run(c)["message"] is None


def test_check_checkpoint_run_refuses_another_runs_checkpoint(tmp_path):
    from snnlab.training.checkpoint import check_checkpoint_run

    path = save_checkpoint(tmp_path / "checkpoint.pt", {"run_id": "new"})
    assert check_checkpoint_run(path, "new")["run_id"] == "new"
    assert check_checkpoint_run(tmp_path, "new")["run_id"] == "new"  # the run folder
    with pytest.raises(ValueError, match=r"check_checkpoint_run: .* holds the checkpoint of run 'new', not run 'old'"):
        check_checkpoint_run(path, "old")
    anonymous = save_checkpoint(tmp_path / "other.pt", {"epoch": 1})
    with pytest.raises(ValueError, match="holds no run id"):
        check_checkpoint_run(anonymous, "old")


def test_dashboard_refuses_a_stale_checkpoint_entry(tmp_path):
    pn = pytest.importorskip("panel")
    from snnlab.dashboard import build_app
    from snnlab.dashboard.runs import load_model_from_checkpoint

    store, folder, old_id, new_id = _two_runs_in_one_folder(tmp_path)
    path = str((folder / "checkpoint.pt").resolve())
    with pytest.raises(ValueError, match=f"holds the checkpoint of run '{new_id}', not run '{old_id}'"):
        load_model_from_checkpoint(path, old_id)
    model, _, cfg = load_model_from_checkpoint(path, new_id)
    assert cfg.hidden == [8]
    # a store written before the entry was cleared (or by another tool) still points the old run at the file
    with sqlite3.connect(tmp_path / "runs.sqlite") as con:
        con.execute("UPDATE runs SET checkpoint=? WHERE run_id=?", (path, old_id))
    store.close()
    view = build_app(store_path=tmp_path / "runs.sqlite", defaults=TINY, sweep_executor="threads")
    app = view.dashboard
    try:
        ids = app.runs.table.value["run_id"].tolist()
        app.runs.table.selection = [ids.index(old_id)]
        app.runs.levels.value = "0"
        app.runs.robust_button.clicks += 1
        shown = app.runs.robust_pane.objects
        assert len(shown) == 1 and isinstance(shown[0].object, hv.Div)
        text = str(shown[0].object.data)
        assert f"run {old_id}: ValueError" in text and f"holds the checkpoint of run '{new_id}'" in text
    finally:
        app.close()
    assert pn is not None
