"""A widget closed by the user is closed again by ``Widget.__del__`` (at the latest at interpreter exit, when imports
fail): that second close must do nothing, not print a traceback."""
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("panel")
pytest.importorskip("ipywidgets")

import holoviews as hv  # noqa: E402

from snnlab.widgets._hv import HoloViewsWidget  # noqa: E402


def test_a_second_close_of_a_plot_slot_does_nothing(monkeypatch):
    slot = HoloViewsWidget(hv.Curve([1, 2, 3]), mode="bokeh")
    slot.close()
    calls = []
    monkeypatch.setattr(slot, "_forget_panel_views", lambda: calls.append(1))
    slot.close()
    assert calls == []


def test_closed_widgets_print_nothing_at_interpreter_exit():
    script = textwrap.dedent("""
        import torch, snnlab as sl
        import snnlab.widgets as W
        # (kept in variables: their Widget.__del__, which closes again, then runs at interpreter exit)
        tw = W.TrainerWidget({"hidden": [8]}, poll_interval=None, plot_mode="bokeh")
        ex = W.RasterExplorer(sl.Sequential(torch.nn.Linear(4, 8), sl.LIF()), torch.rand(10, 2, 4), plot_mode="bokeh")
        dv = W.DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0), plot_mode="bokeh")
        for widget in (tw, ex, dv):
            widget.close()
        print("done")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("done")
    assert "Exception ignored" not in out.stderr and "Traceback" not in out.stderr, out.stderr


def _own_views(slot: HoloViewsWidget) -> list[str]:
    import panel as pn

    return [ref for ref, (view, *_rest) in pn.state._views.items() if view is slot._pane or view is slot._pane.layout]


def test_a_close_that_failed_half_way_still_closes_the_widget_and_can_be_retried(monkeypatch):
    slot = HoloViewsWidget(hv.Curve([1, 2, 3]), mode="bokeh")
    slot.widget._view_count = 1
    assert _own_views(slot) and slot.widget.comm is not None

    def fail():
        raise RuntimeError("boom")

    monkeypatch.setattr(slot, "_forget_panel_views", fail)
    with pytest.raises(RuntimeError, match="boom"):
        slot.close()
    assert slot.widget.comm is None and slot.object is None  # the ipywidget went even so
    monkeypatch.undo()
    slot.close()  # retried (before: a no-op, the Panel views and their plots stayed for good)
    assert not _own_views(slot)
    calls = []
    monkeypatch.setattr(slot, "_forget_panel_views", lambda: calls.append(1))
    slot.close()  # done: a third close does nothing
    assert calls == []


def test_a_trainer_widget_whose_close_failed_closes_its_plots_and_can_be_closed_again(monkeypatch):
    from snnlab.widgets import TrainerWidget

    tw = TrainerWidget({"hidden": [8]}, poll_interval=None, plot_mode="bokeh", stop_others=False)
    slots = [*tw.curve_views, tw.raster]
    real = tw._stop_polling

    def fail():
        raise RuntimeError("boom")

    monkeypatch.setattr(tw, "_stop_polling", fail)
    with pytest.raises(RuntimeError, match="boom"):
        tw.close()
    assert tw.start() is False  # closed for training at once
    assert all(s.widget.comm is None for s in slots) and tw.comm is None  # the widgets went even so
    assert tw in TrainerWidget._instances  # (a run that may still be active stays stoppable)
    monkeypatch.setattr(tw, "_stop_polling", real)
    tw.close()  # retried (before: a no-op)
    assert tw not in TrainerWidget._instances and not any(_own_views(s) for s in slots)
    calls = []
    monkeypatch.setattr(tw, "_stop_polling", lambda: calls.append(1))
    tw.close()  # done: nothing more
    assert calls == []
