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
