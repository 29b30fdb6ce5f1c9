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
    line = startup_line(5077, "127.0.0.1")
    assert line == (f"snnlab dashboard: open http://localhost:5077/app in your browser (Ctrl-C stops it); "
                    f"run store: {expected}")
    given = served_store_path("given.sqlite")  # --store wins over SNNLAB_STORE, as serve_dashboard passes it on
    assert given == tmp_path / "given.sqlite" and str(given) in startup_line(5077, "127.0.0.1", "given.sqlite")
    assert "http://10.0.0.5:8000/app" in startup_line(8000, "10.0.0.5")
