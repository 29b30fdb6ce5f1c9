"""The widgets' threads (a tester drove a real Jupyter kernel):

* ``TrainerWidget(plot_mode="output")`` redrew its plots from the poll thread with ``Output.clear_output``, which
  enters ``with out:`` and points the Output widget at the running cell (``msg_id``): the front end moved that cell's
  prints into the plot, whose next clear erased them (58 and 77 of 200 lines). An Output's content is now replaced
  through its ``outputs`` trait only.
* After a TrainerWidget cell was run again, the old widget's "stopped: a newer TrainerWidget was created" was
  overwritten by its poll thread's last refresh, and the new widget named a stale polled step.
* The widgets' threads (poll thread, CDN probe, Bokeh sync timer) started in an empty context: in ipykernel 7, which
  keeps the cell in a ContextVar, what they wrote did not go to the cell that started them.
"""
import contextvars
import threading
import time

import holoviews as hv
import ipywidgets as W
import pytest

from snnlab.training import ExperimentConfig
from snnlab.widgets import HoloViewsWidget, TrainerWidget
from snnlab.widgets import _hv
from snnlab.widgets import notebook as nb

TINY = dict(dataset="digits", hidden=[16], epochs=1, num_steps=8, batch_size=16, max_batches_per_epoch=3,
            eval_max_batches=1)
CELL = contextvars.ContextVar("cell", default="no cell")


def _wait(pred, timeout=60.0):
    deadline = time.time() + timeout
    while not pred() and time.time() < deadline:
        time.sleep(0.05)
    return pred()


class _Kernel:
    """What ``Output.__enter__`` looks for: a shell with a kernel and the request of the cell being run."""

    kernel = object()

    def get_parent(self):
        return {"header": {"msg_id": "the-running-cell"}}

    def set_parent(self, parent):
        pass


@pytest.fixture
def in_a_cell(monkeypatch):
    """As in a kernel running a cell: ``with out:`` would set ``out.msg_id`` to that cell's id."""
    from ipywidgets.widgets import widget_output

    monkeypatch.setattr(widget_output, "get_ipython", lambda: _Kernel())


def _record_msg_ids(out: W.Output) -> list:
    seen = []
    out.observe(lambda change: seen.append(change["new"]), names="msg_id")
    return seen


def _in_thread(fn, *args):
    errors = []

    def run():
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 -- re-raised in the test
            errors.append(e)

    t = threading.Thread(target=run)
    t.start()
    t.join(60)
    assert not t.is_alive() and not errors, errors


def test_the_harness_sees_a_capture():
    """(The fixture works: entering the Output does set its msg_id, as in a kernel.)"""
    out = W.Output()
    seen = _record_msg_ids(out)
    from ipywidgets.widgets import widget_output

    original = widget_output.get_ipython
    widget_output.get_ipython = lambda: _Kernel()
    try:
        with out:
            pass
    finally:
        widget_output.get_ipython = original
    assert seen == ["the-running-cell", ""]


def test_output_mode_replaces_the_content_from_a_thread_without_capturing_the_cell(in_a_cell):
    view = HoloViewsWidget(None, mode="output")
    seen = _record_msg_ids(view.widget)
    first, second = hv.Curve([1, 2, 3], "first_x", "first_y"), hv.Curve([3, 2, 1], "second_x", "second_y")

    def set_object(obj):
        view.object = obj

    _in_thread(set_object, first)
    _in_thread(set_object, second)
    assert seen == [] and view.widget.msg_id == ""  # never pointed at the running cell
    outputs = view.widget.outputs
    assert len(outputs) == 1 and outputs[0]["output_type"] == "display_data"  # the second plot only
    assert "second_x" in str(outputs[0]["data"]) and "first_x" not in str(outputs[0]["data"])
    _in_thread(set_object, None)
    assert view.widget.outputs == () and seen == []
    view.close()


def test_trainer_widget_output_mode_redraws_from_a_thread_without_capturing_the_cell(in_a_cell):
    tw = TrainerWidget(ExperimentConfig(**TINY), poll_interval=None, plot_mode="output", probe_every=1000)
    views = [*tw.curve_views, tw.raster]
    seen = [_record_msg_ids(v.widget) for v in views]
    assert tw.start() and tw.session.wait(120)
    _in_thread(tw.refresh)  # what the poll thread does
    assert all(s == [] for s in seen), seen
    assert all(len(v.widget.outputs) == 1 for v in views)  # every curve panel and the raster drawn, once
    assert tw.display_error is None
    tw.close()


def test_a_widget_stopped_by_a_newer_one_keeps_its_message_and_both_name_the_final_step():
    cfg = ExperimentConfig(**{**TINY, "epochs": 500, "max_batches_per_epoch": None})
    old = TrainerWidget(cfg, poll_interval=0.05, probe_every=1000)
    assert old.start()
    assert _wait(lambda: old.session.step >= 2, 60)
    new = TrainerWidget(ExperimentConfig(**TINY), poll_interval=None)
    assert old.state == "stopped"  # the new widget waited for the run to stop
    final = old.session.trainer.step
    assert f"stopped the run of an earlier TrainerWidget at step {final}" in new.status.value
    assert f"stopped at step {final}: a newer TrainerWidget was created" in old.status.value
    # the old widget's poll thread does its last refreshes and ends: the message stays
    assert _wait(lambda: old._poll_thread is None or not old._poll_thread.is_alive(), 30)
    old.refresh()
    assert "a newer TrainerWidget was created" in old.status.value, old.status.value
    assert not old.start_button.disabled and old.stop_button.disabled  # its buttons came back
    assert old.start() and "newer" not in old.status.value  # a new run of its own: its own status again
    old.close()
    new.close()


def test_the_poll_thread_runs_in_the_context_of_the_thread_that_started_it():
    tw = TrainerWidget(ExperimentConfig(**{**TINY, "epochs": 3}), poll_interval=0.05, probe_every=1000)
    seen = []
    refresh = tw._safe_refresh

    def recording():
        seen.append(CELL.get())
        refresh()

    tw._safe_refresh = recording
    token = CELL.set("cell 7")
    try:
        assert tw.start()
    finally:
        CELL.reset(token)
    assert _wait(lambda: bool(seen), 60)
    assert tw.session.wait(120)
    assert set(seen) == {"cell 7"}, seen
    tw.close()


def test_the_cdn_probe_runs_in_the_callers_context(monkeypatch):
    seen = []

    def connect(address, timeout):
        seen.append(CELL.get())
        raise OSError("unreachable")

    monkeypatch.setattr(nb.socket, "create_connection", connect)
    token = CELL.set("cell 3")
    try:
        assert not nb.cdn_reachable(("example.invalid", 443), timeout=5.0)
    finally:
        CELL.reset(token)
    assert seen == ["cell 3"]


def test_the_bokeh_sync_timer_runs_in_the_callers_context():
    pytest.importorskip("jupyter_bokeh")
    view = HoloViewsWidget(hv.Curve([1, 2]), mode="bokeh")
    seen, done = [], threading.Event()
    view._sync_from_timer = lambda: (seen.append(CELL.get()), done.set())
    token = CELL.set("cell 5")
    try:
        view._schedule_sync(delay=0.0)
    finally:
        CELL.reset(token)
    assert done.wait(30) and seen == ["cell 5"]
    view.close()


def test_a_run_not_stopped_within_the_wait_is_not_called_stopped(monkeypatch):
    """(Attack review) When the older run had not stopped within STOP_OTHERS_TIMEOUT, the new widget still said
    "stopped the run ... at step N", and the old one said "stopping (at step N ...)" for good, after it had stopped."""
    from snnlab.widgets import trainer_widget

    cfg = ExperimentConfig(**{**TINY, "epochs": 500, "max_batches_per_epoch": None})
    old = TrainerWidget(cfg, poll_interval=0.05, probe_every=1000)
    assert old.start()
    assert _wait(lambda: old.session.step >= 2, 60)
    release = threading.Event()
    old.session.trainer.events.subscribe(lambda event: release.wait(60))  # (its steps wait: it cannot stop in time)
    monkeypatch.setattr(trainer_widget, "STOP_OTHERS_TIMEOUT", 0.0)
    new = TrainerWidget(ExperimentConfig(**TINY), poll_interval=None)
    try:
        assert "stopped the run" not in new.status.value and "still running" in new.status.value, new.status.value
        assert "stopping" in old.status.value, old.status.value
        release.set()
        assert old.session.wait(60)
        final = old.session.trainer.step
        assert _wait(lambda: f"stopped at step {final}: a newer TrainerWidget" in old.status.value, 30), \
            old.status.value
    finally:
        release.set()
        old.close()
        new.close()
