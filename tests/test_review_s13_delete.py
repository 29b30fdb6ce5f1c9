"""Review of deleting runs (RunStore.delete_runs, `snnlab runs delete`, the dashboard's Runs tab): what a trainer
still holding a deleted run writes afterwards, and how run names show in the dashboard's confirmation."""
import sqlite3

import pytest

from snnlab.experiments import RunStore


def _orphans(path) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT count(*) FROM metrics WHERE run_id NOT IN (SELECT run_id FROM runs)").fetchone()[0]
    finally:
        con.close()


def test_log_metrics_of_a_deleted_run_writes_nothing_and_says_so(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run = store.create_run({}, name="gone")
    store.log_metrics(run, step=1, metrics={"loss": 1.0})
    store.delete_runs(run)
    with pytest.raises(KeyError, match=run):  # as set_status / set_config of a run the store does not hold
        store.log_metrics(run, step=2, metrics={"loss": 0.5})
    assert _orphans(tmp_path / "runs.sqlite") == 0
    again = store.create_run({}, name="new", run_id=run)  # a run registered later under its id starts empty
    assert again == run and len(store.metrics(run)) == 0


def test_a_trainer_whose_idle_run_is_deleted_trains_on_and_leaves_no_metrics_behind(tmp_path, caplog):
    from snnlab.training.config import ExperimentConfig
    from snnlab.training.trainer import Trainer

    store = RunStore(tmp_path / "runs.sqlite")
    cfg = ExperimentConfig(dataset="digits", hidden=[16], num_steps=8, batch_size=32, max_batches_per_epoch=2,
                           eval_max_batches=1, epochs=1)
    trainer = Trainer(cfg, run_dir=tmp_path / "run", store=store, progress=False)
    assert store.list_runs().empty  # (no row before the run starts)
    trainer.events.subscribe(lambda e: store.delete_runs([trainer.run_id], force=True), kinds=["started"])
    with caplog.at_level("ERROR", logger="snnlab.training"):
        trainer.run()  # the store's refusals are logged; training is not stopped
    assert trainer.state == "finished"
    assert store.list_runs().empty and _orphans(tmp_path / "runs.sqlite") == 0
    # each kind of refused write is logged once, not at every metric row
    failed = [r.getMessage().split("(")[0] for r in caplog.records if "failed for run" in r.getMessage()]
    assert failed and len(failed) == len(set(failed)), failed
    assert any("log_metrics" in m for m in failed)


def test_the_dashboard_confirmation_keeps_a_run_name_with_line_breaks_on_one_line(tmp_path):
    pytest.importorskip("panel")
    from snnlab.dashboard.runs import RunsPanel

    store = RunStore(tmp_path / "runs.sqlite")
    odd = store.create_run({}, name="x\n\n- item\n# head *b* <script>`t`")
    store.set_status(odd, "finished")
    panel = RunsPanel(store)
    panel.refresh(force=True)
    panel.table.selection = [0]
    panel.ask_delete()
    question = panel.delete_question.object
    assert "\n" not in question
    assert "&lt;script&gt;" in question and "\\*b\\*" in question and "\\`t\\`" in question and "\\#" in question
    panel.confirm_delete()
    assert "\n" not in panel.delete_alert.object and store.list_runs().empty


def test_the_trade_off_drops_a_run_deleted_elsewhere_while_another_finishes(tmp_path):
    pytest.importorskip("panel")
    from snnlab.dashboard.runs import RunsPanel

    store = RunStore(tmp_path / "runs.sqlite")

    def finished(name, accuracy):
        run = store.create_run({}, name=name)
        store.set_summary(run, {"test_accuracy": accuracy, "test_spikes_per_sample": 3.0})
        store.set_status(run, "finished")
        return run

    a, b = finished("a", 0.5), finished("b", 0.6)
    c = store.create_run({}, name="c")
    store.set_status(c, "idle")
    panel = RunsPanel(store)
    panel.refresh(force=True)
    assert sorted(panel._summaries["run_id"]) == sorted([a, b])
    RunStore(tmp_path / "runs.sqlite").delete_runs([a])  # `snnlab runs delete` meanwhile, and c finishes:
    store.set_summary(c, {"test_accuracy": 0.9, "test_spikes_per_sample": 1.0})
    store.set_status(c, "finished")  # as many finished runs as before
    panel.refresh()  # the periodic refresh
    assert sorted(panel._summaries["run_id"]) == sorted([b, c])


def test_remove_run_files_of_a_run_folder_recorded_as_the_checkpoint(tmp_path):
    from snnlab.experiments import remove_run_files
    from snnlab.training.checkpoint import save_checkpoint

    folder = tmp_path / "run"
    folder.mkdir()
    save_checkpoint(folder / "checkpoint.pt", {"run_id": "r1"})
    done = remove_run_files("r1", folder)  # (RunStore.set_checkpoint takes any path; check_checkpoint_run a folder)
    assert done.ok, done.lines
    assert not folder.exists() and [p.name for p in done.removed] == ["checkpoint.pt", "run"]


def test_remove_run_files_through_a_link_to_the_run_folder_removes_the_folder(tmp_path):
    from snnlab.experiments import remove_run_files
    from snnlab.training.checkpoint import save_checkpoint

    real = tmp_path / "real"
    real.mkdir()
    save_checkpoint(real / "checkpoint.pt", {"run_id": "r1"})
    (real / "config.json").write_text("{}")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    done = remove_run_files("r1", tmp_path / "link" / "checkpoint.pt")
    assert done.ok, done.lines  # was: the folder emptied, then "Not a directory" removing the link as a folder
    assert not real.exists()


def test_remove_run_files_of_a_link_to_a_run_folder_recorded_as_the_checkpoint(tmp_path):
    from snnlab.experiments import remove_run_files
    from snnlab.training.checkpoint import save_checkpoint

    real = tmp_path / "real"
    real.mkdir()
    save_checkpoint(real / "checkpoint.pt", {"run_id": "r1"})
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    done = remove_run_files("r1", tmp_path / "link")  # was: "removed .../link" (the link), the checkpoint kept
    assert done.ok, done.lines
    assert not real.exists() and [p.name for p in done.removed] == ["checkpoint.pt", "real"]

