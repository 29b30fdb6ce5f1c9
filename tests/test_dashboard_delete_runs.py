"""Deleting runs from the dashboard's Runs tab, driven through RunsPanel's Python objects (no browser): the button
asks first, Confirm deletes exactly the runs it named (and their files when ticked), Cancel nothing, live runs are
refused with the store's message, and runs deleted elsewhere meanwhile do not break the tab."""
import os

import time

import pytest

pn = pytest.importorskip("panel")

from snnlab.dashboard.runs import RunsPanel  # noqa: E402
from snnlab.experiments import RunStore  # noqa: E402
from snnlab.training.checkpoint import save_checkpoint  # noqa: E402


def _store(tmp_path, names=("a", "b", "c", "d")):
    """A store with finished runs of ``names`` (one metric row each); returns it and {name: run id}."""
    store = RunStore(tmp_path / "runs.sqlite")
    ids = {}
    for name in names:
        rid = store.create_run({}, name=name)
        store.log_metrics(rid, step=0, metrics={"loss": 1.0, "accuracy": 0.5})
        store.set_status(rid, "finished")
        ids[name] = rid
    return store, ids


def _panel(store):
    panel = RunsPanel(store)
    panel.refresh(force=True)
    return panel


def _select(panel, *run_ids):
    rows = panel._runs["run_id"].tolist()
    panel.table.selection = [rows.index(r) for r in run_ids]


def click(button):
    button.clicks += 1  # what a browser click does: on_click callbacks run


def _run_folder(folder, run_id, *extra):
    """A run folder as a training leaves it (checkpoint of ``run_id``, config.json, lock) plus ``extra`` files."""
    folder.mkdir()
    ckpt = save_checkpoint(folder / "checkpoint.pt", {"run_id": run_id})
    for name in ("config.json", ".snnlab-lock", *extra):
        (folder / name).write_text("{}")
    return ckpt


def test_delete_button_is_disabled_without_a_selection(tmp_path):
    store, ids = _store(tmp_path)
    panel = _panel(store)
    assert panel.delete_button.disabled and panel.delete_button.button_type == "danger"
    assert panel.delete_button in list(panel.runs_view.select(pn.widgets.Button))
    _select(panel, ids["a"])
    assert not panel.delete_button.disabled
    panel.table.selection = []
    assert panel.delete_button.disabled


def test_delete_asks_first_then_confirm_deletes_refreshes_and_clears_the_selection(tmp_path):
    store, ids = _store(tmp_path)
    ckpt = save_checkpoint(tmp_path / "b.pt", {"run_id": ids["b"]})
    store.set_checkpoint(ids["b"], ckpt)
    panel = _panel(store)
    _select(panel, ids["b"], ids["c"])
    click(panel.delete_button)
    assert len(store.list_runs()) == 4  # asking deletes nothing
    assert panel.delete_confirm.visible and not panel.delete_files.value  # files: off unless ticked
    question = panel.delete_question.object
    assert "Delete 2 runs" in question and f"b ({ids['b']})" in question and f"c ({ids['c']})" in question
    assert "a (" not in question and "d (" not in question

    click(panel.confirm_button)
    assert sorted(store.list_runs()["name"]) == ["a", "d"] and store.metrics(ids["b"]).empty
    assert sorted(panel.table.value["name"]) == ["a", "d"]  # the table re-read
    assert panel.table.selection == [] and panel.selected_ids() == [] and panel.delete_button.disabled
    assert not panel.delete_confirm.visible
    assert panel.delete_alert.visible and panel.delete_alert.alert_type == "success"
    assert "Deleted 2 runs" in panel.delete_alert.object and f"b ({ids['b']})" in panel.delete_alert.object
    assert panel._compared == []  # the comparison no longer shows the deleted runs
    assert ckpt.exists()  # files stay unless the box is ticked


def test_cancel_deletes_nothing(tmp_path):
    store, ids = _store(tmp_path)
    panel = _panel(store)
    _select(panel, ids["a"])
    click(panel.delete_button)
    assert panel.delete_confirm.visible
    click(panel.cancel_button)
    assert not panel.delete_confirm.visible and len(store.list_runs()) == 4
    assert panel.selected_ids() == [ids["a"]]  # the selection stays
    assert "Nothing deleted" in panel.delete_alert.object
    click(panel.confirm_button)  # a stray Confirm after Cancel: nothing pending, nothing deleted
    assert len(store.list_runs()) == 4


def test_a_live_run_is_refused_with_the_stores_message_and_nothing_is_deleted(tmp_path):
    store, ids = _store(tmp_path)
    store.set_status(ids["c"], "running")  # (no process recorded: it may still run somewhere)
    panel = _panel(store)
    _select(panel, ids["b"], ids["c"])
    click(panel.delete_button)
    click(panel.confirm_button)
    assert len(store.list_runs()) == 4  # all or nothing: b stays too
    assert panel.delete_alert.visible and panel.delete_alert.alert_type == "danger"
    text = panel.delete_alert.object
    assert "may still be running" in text and "nothing deleted" in text and ids["c"] in text
    assert len(panel.table.value) == 4


def test_this_pages_own_training_is_refused(tmp_path):
    from snnlab.dashboard import build_app

    view = build_app(store_path=tmp_path / "runs.sqlite", sweep_executor="threads",
                     defaults=dict(dataset="digits", hidden=[16], num_steps=8, batch_size=32, max_batches_per_epoch=3,
                                   eval_max_batches=1, epochs=200))
    app = view.dashboard
    try:
        click(app.live.start_button)
        session = app.live.session
        run_id = session.trainer.run_id
        deadline = time.monotonic() + 60  # the training thread marks its run running once it has started
        while app.store.list_runs()["status"].tolist() != ["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
        app.runs.refresh()
        assert app.store.list_runs()["status"].tolist() == ["running"]
        _select(app.runs, run_id)
        click(app.runs.delete_button)
        click(app.runs.confirm_button)
        assert app.store.list_runs()["run_id"].tolist() == [run_id]
        assert "may still be running" in app.runs.delete_alert.object
        assert app.runs.delete_alert.alert_type == "danger"
    finally:
        app.close()


def test_files_are_removed_when_ticked(tmp_path):
    store, ids = _store(tmp_path, names=("own", "mixed", "bare"))
    store.set_checkpoint(ids["own"], _run_folder(tmp_path / "own", ids["own"]))
    store.set_checkpoint(ids["mixed"], _run_folder(tmp_path / "mixed", ids["mixed"], "notes.txt"))
    panel = _panel(store)
    _select(panel, *ids.values())
    click(panel.delete_button)
    panel.delete_files.value = True
    click(panel.confirm_button)
    assert store.list_runs().empty
    assert not (tmp_path / "own").exists()  # a folder of snnlab's files only: gone
    assert sorted(os.listdir(tmp_path / "mixed")) == [".snnlab-lock", "config.json", "notes.txt"]  # kept
    text = panel.delete_alert.object
    assert "Deleted 3 runs" in text and "removed" in text and "it holds other files too (notes.txt)" in text
    assert "no checkpoint recorded" in text
    # the next confirmation starts with the box off again
    _select(panel)
    other = store.create_run({}, name="later")
    panel.refresh()
    _select(panel, other)
    click(panel.delete_button)
    assert panel.delete_confirm.visible and not panel.delete_files.value


def test_a_selection_of_runs_deleted_elsewhere_does_not_break_the_tab(tmp_path):
    store, ids = _store(tmp_path)
    panel = _panel(store)
    _select(panel, ids["a"], ids["b"])
    store.delete_runs([ids["a"]])  # another page, or `snnlab runs delete`, before the button
    click(panel.delete_button)  # re-reads the store: a has left the table and the selection
    question = panel.delete_question.object
    assert "Delete 1 run" in question and f"b ({ids['b']})" in question and "deleted elsewhere" in question
    store.delete_runs([ids["b"]])  # ... and b between the question and Confirm
    assert panel.confirm_delete() == {}
    assert "Already deleted elsewhere" in panel.delete_alert.object
    assert panel.delete_alert.alert_type == "success"
    assert sorted(panel.table.value["name"]) == ["c", "d"] and panel.selected_ids() == []

    _select(panel, ids["c"], ids["d"])  # one of two gone before Confirm: the other is deleted
    click(panel.delete_button)
    store.delete_runs([ids["c"]])
    assert list(panel.confirm_delete()) == [ids["d"]]
    assert store.list_runs().empty and panel.table.value.empty
    assert "Deleted 1 run" in panel.delete_alert.object and "Already deleted elsewhere" in panel.delete_alert.object

    other = store.create_run({}, name="e")
    panel.refresh()
    _select(panel, other)
    store.delete_runs([other])  # every selected run gone: nothing to ask
    click(panel.delete_button)
    assert not panel.delete_confirm.visible and panel.delete_alert.alert_type == "warning"
    assert "deleted elsewhere" in panel.delete_alert.object and panel.table.value.empty


def test_a_read_only_store_disables_the_button_and_says_why(tmp_path):
    store, ids = _store(tmp_path)
    store.close()
    panel = _panel(RunStore(tmp_path / "runs.sqlite", read_only=True))
    _select(panel, ids["a"])
    assert panel.delete_button.disabled and "read-only" in panel.delete_button.description
    assert "read-only" in panel.info.object
    panel.ask_delete()  # (a click cannot reach a disabled button; a call says so and deletes nothing)
    assert not panel.delete_confirm.visible and "read-only" in panel.delete_alert.object
    assert len(RunStore(tmp_path / "runs.sqlite").list_runs()) == 4
