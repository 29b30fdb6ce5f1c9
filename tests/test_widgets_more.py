"""Widgets: what a closed widget leaves behind (Panel views, Bokeh models, ipywidgets), docstring examples of every
public member, and the store the ``snnlab dashboard`` start-up line names."""
import gc
import importlib
import inspect
import os
import sys
from pathlib import Path

import holoviews as hv
import pandas as pd
import panel as pn
import pytest
import torch
from bokeh.model import Model

import snnlab as sl
from snnlab.training import ExperimentConfig
from snnlab.widgets import ConfigForm, DelayViewer, HoloViewsWidget, RasterExplorer, TradeoffExplorer, TrainerWidget
from snnlab.widgets._hv import closable_bokeh_model
from snnlab.widgets._lifecycle import close_one, registered_widgets

MAKERS = {
    "HoloViewsWidget": lambda: HoloViewsWidget(hv.Curve([1, 2, 3])),
    "RasterExplorer": lambda: RasterExplorer(sl.Sequential(torch.nn.Linear(4, 8), sl.LIF()), torch.rand(10, 2, 4)),
    "TrainerWidget": lambda: TrainerWidget(ExperimentConfig(dataset="digits", hidden=[16]), poll_interval=None,
                                           stop_others=False),
    "DelayViewer": lambda: DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0)),
    "TradeoffExplorer": lambda: TradeoffExplorer(pd.DataFrame({"accuracy": [0.9, 0.8], "spikes_per_sample": [9., 5.]})),
    "ConfigForm": lambda: ConfigForm(),
}


def _bokeh_models() -> int:
    return sum(issubclass(type(o), Model) for o in gc.get_objects())


# ---------------------------------------------------------------------------------------------- close()
@pytest.mark.parametrize("name", list(MAKERS))
def test_closed_widgets_leave_no_panel_view_and_no_bokeh_model(name):
    """Panel registers every root it renders in ``pn.state._views`` (and that entry keeps the whole Bokeh plot:
    0.7 MB per RasterExplorer, 1.9 MB per TrainerWidget); close() must drop it."""
    make = MAKERS[name]
    make().close()  # the first one fills caches (themes, option trees) that stay by design
    gc.collect()
    views, models, widgets = len(pn.state._views), _bokeh_models(), registered_widgets()
    for _ in range(5):  # a cell run again and again, its old widget closed
        w = make()
        assert registered_widgets() > widgets
        w.close()
        del w
    gc.collect()
    assert len(pn.state._views) == views
    assert _bokeh_models() == models
    assert registered_widgets() == widgets


def _show(slot: HoloViewsWidget, *counts: int) -> None:
    """What Jupyter does to the slot's widget: views opened and closed (Panel renders a new root, in a new
    document, each time it is displayed again after its last view went away)."""
    for n in counts:
        slot.widget._view_count = n


def test_a_slot_displayed_again_and_again_leaves_no_panel_view_and_no_bokeh_model():
    """Every root Panel renders for the widget goes from ``pn.state._views`` and every document is cleared, not only
    the first and the last (the roots in between kept 5 MB per TrainerWidget shown three times)."""
    other = HoloViewsWidget(hv.Scatter([(0, 1)]), mode="bokeh")  # stays open: its view must stay
    _show(other, 1)
    HoloViewsWidget(hv.Curve([1, 2, 3]), mode="bokeh").close()  # caches
    gc.collect()
    views, models = dict(pn.state._views), _bokeh_models()
    for _ in range(3):
        slot = HoloViewsWidget(hv.Curve([1, 2, 3]), mode="bokeh")
        _show(slot, 1, 0, 1, 0, 1, 2)  # shown, hidden, shown again (twice), then in a second output
        assert len(pn.state._views) == len(views) + 1  # the root shown now (the earlier ones went on re-display)
        slot.close()
        assert dict(pn.state._views) == views
        del slot
    gc.collect()
    assert _bokeh_models() == models
    other.close()


def test_closing_one_of_two_slots_showing_the_same_plot_leaves_the_other_updating():
    pipe = hv.streams.Pipe(data=[(0, 0), (1, 1)])
    dmap = hv.DynamicMap(hv.Curve, streams=[pipe])
    a, b = HoloViewsWidget(dmap, mode="bokeh"), HoloViewsWidget(dmap, mode="bokeh")
    _show(a, 1)
    _show(b, 1, 2)  # b in two outputs
    b_refs = {ref for ref, (view, *_rest) in pn.state._views.items() if view is b._pane or view is b._pane.layout}
    sent = []
    b.widget.send = lambda msg, buffers=None: sent.append(msg)  # the patches to b's views in the browser
    a.close()
    assert b_refs and b_refs <= set(pn.state._views)
    pipe.send([(0, 5), (1, 6), (2, 7)])
    sources = [m for m in b.widget._document.models if type(m).__name__ == "ColumnDataSource" and "y" in m.data]
    assert [list(m.data["y"]) for m in sources] == [[5, 6, 7]]
    assert sent  # patched in place
    b.close()
    assert not b_refs & set(pn.state._views)


def test_a_bokeh_slot_closed_twice_and_collected_raises_nothing(monkeypatch):
    """jupyter_bokeh's close raises KeyError when called again (as ``Widget.__del__`` does on collection)."""
    raised = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: raised.append(u.exc_value))
    before = registered_widgets()
    slot = HoloViewsWidget(hv.Curve([1, 2, 3]), mode="bokeh")
    widget = slot.widget
    slot.close()
    widget.close()  # again: nothing happens
    close_one(widget)
    del slot, widget
    gc.collect()
    assert raised == [] and registered_widgets() == before


def test_a_bokeh_slot_is_still_a_bokeh_model_that_jupyter_renders():
    from jupyter_bokeh.widgets import BokehModel

    slot = HoloViewsWidget(hv.Curve([1, 2, 3]), mode="bokeh")
    w = slot.widget
    assert isinstance(w, BokehModel) and w._model_name == "BokehModel" and w._view_name == "BokehView"
    plain = pn.ipywidget(pn.pane.HTML("<b>hi</b>"))  # what the front end looks up: the same names and modules
    names = [k for k in plain.keys if k.startswith(("_model_", "_view_")) and k != "_view_count"]
    assert len(names) == 6 and w.get_state(names) == plain.get_state(names) and w.keys == plain.keys
    assert repr(w).startswith("BokehModel(") and "model_id" in w._repr_mimebundle_()[
        "application/vnd.jupyter.widget-view+json"]
    plain.__class__ = closable_bokeh_model()  # (a plain BokehModel raises KeyError when collected after close)
    plain.close()
    slot.close()
    assert "close" not in vars(w)  # closing twice is handled by the class, not by a function put on each instance


# ---------------------------------------------------------------------------------------------- docstring examples
WIDGET_MODULES = ["trainer_widget", "raster_explorer", "delay_viewer", "tradeoff_explorer", "config_form", "session",
                  "notebook", "_hv", "_lifecycle"]


def public_members_without_example(module_name: str) -> list[str]:
    """The public classes, functions, methods and properties defined in ``module_name`` whose docstring has no
    ``>>>`` example."""
    mod = importlib.import_module(module_name)
    missing = []
    for name, obj in vars(mod).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        if not (inspect.isclass(obj) or inspect.isfunction(inspect.unwrap(obj))):
            continue
        members = [(name, obj)]
        if inspect.isclass(obj):
            members += [(f"{name}.{attr}", value) for attr, value in vars(obj).items()
                        if not attr.startswith("_") and (isinstance(value, property) or inspect.isfunction(value))]
        for qualname, value in members:
            doc = (value.fget if isinstance(value, property) else value).__doc__ or ""
            if ">>>" not in doc:
                missing.append(f"{module_name}.{qualname}")
    return missing


@pytest.mark.parametrize("module", WIDGET_MODULES)
def test_every_public_widget_member_has_an_example(module):
    assert public_members_without_example(f"snnlab.widgets.{module}") == []


def test_the_dashboard_server_module_has_examples():
    assert public_members_without_example("snnlab.dashboard.serve") == []


# ---------------------------------------------------------------------------------------------- dashboard start-up
def test_the_start_up_line_names_the_store_the_app_opens(tmp_path, monkeypatch):
    from snnlab.dashboard.serve import served_store_path, startup_line
    from snnlab.experiments.store import RunStore, default_store_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SNNLAB_STORE", raising=False)
    assert served_store_path() == tmp_path / "runs" / "snnlab.sqlite"
    monkeypatch.setenv("SNNLAB_STORE", "elsewhere/my.sqlite")
    expected = tmp_path / "elsewhere" / "my.sqlite"
    assert served_store_path() == expected == Path(os.path.abspath(default_store_path()))
    assert RunStore(default_store_path()).path == expected  # what the served app opens
    line = startup_line(5077, "127.0.0.1", check=False)  # (the line alone: no folder made, no port bound)
    assert line == (f"snnlab dashboard: open http://localhost:5077/app in your browser (Ctrl-C stops it); "
                    f"run store: {expected}")
    given = served_store_path("given.sqlite")  # --store wins over SNNLAB_STORE, as serve_dashboard passes it on
    assert given == tmp_path / "given.sqlite" and str(given) in startup_line(5077, "127.0.0.1", "given.sqlite", check=False)
    assert "http://10.0.0.5:8000/app" in startup_line(8000, "10.0.0.5", check=False)


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "0.0.0.0", "::", "::1", "", "10.0.0.5"])
def test_the_start_up_url_is_one_whose_websocket_the_server_accepts(address):
    """Bokeh refuses a page's websocket whose origin is not allowed: with ``--address 0.0.0.0`` the line named
    ``http://0.0.0.0:5077/app`` (refused) and with ``::`` the malformed ``http://:::5077/app``."""
    from urllib.parse import urlparse

    from snnlab.dashboard.serve import build_serve_command, startup_line

    url = startup_line(5077, address, check=False).split()[3]  # (this machine need not have the address)
    assert url.startswith("http://") and url.endswith(":5077/app")
    assert f"--allow-websocket-origin={urlparse(url).netloc}" in build_serve_command(5077, address)


def test_an_ipv6_address_bokeh_cannot_allow_is_refused_before_the_server_starts():
    """Bokeh's origin allowlist reads host:port with one colon: a server bound to fe80::1 would refuse its page."""
    from snnlab.dashboard.serve import build_serve_command, startup_line

    for call in (lambda: build_serve_command(5077, "fe80::1"), lambda: startup_line(5077, "fe80::1")):
        with pytest.raises(ValueError, match=r"IPv6 address 'fe80::1' cannot be a websocket origin .* bind to '::'"):
            call()


def test_an_empty_store_path_is_the_default_store_not_the_current_folder(monkeypatch, tmp_path):
    from snnlab.dashboard.serve import served_store_path
    from snnlab.experiments.store import default_store_path

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SNNLAB_STORE", raising=False)
    assert served_store_path("") == tmp_path / default_store_path() != tmp_path
