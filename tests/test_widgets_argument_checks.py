"""Constructor arguments of the widgets: columns asked for by name in TradeoffExplorer, checked numbers and
sources in RasterExplorer / DelayViewer / TradeoffExplorer (a clear error naming the widget, no silent fallback)."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest
import torch

import snnlab as sl
from snnlab.widgets import DelayViewer, RasterExplorer, TradeoffExplorer


def _runs() -> pd.DataFrame:
    return pd.DataFrame({"name": ["a", "b", "c"], "config.lr": [1e-3, 1e-2, 1e-1], "config.neuron": ["lif"] * 3,
                         "accuracy": [0.8, 0.9, 0.7], "spikes_per_sample": [10.0, 5.0, 7.0]})


def _message(ex) -> str:
    return html.unescape(ex.message.value)


@pytest.mark.parametrize("asked", ["config.lr", "lr"])
def test_tradeoff_explorer_plots_a_config_column_named_as_x(asked):
    ex = TradeoffExplorer(_runs(), x=asked, plot_mode="output")
    assert ex.x.value == "config.lr" and "config.lr" in ex.x.options
    assert ex.scatter.kdims[0].name == "config.lr"
    assert ex.scatter.dimension_values("config.lr").tolist() == [1e-3, 1e-2, 1e-1]
    assert "no column" not in _message(ex)
    ex.x.value = "spikes_per_sample"
    ex.refresh()  # asked for by name: still offered after a refresh
    assert "config.lr" in ex.x.options and ex.x.value == "spikes_per_sample"
    ex.close()


def test_tradeoff_explorer_config_column_as_y_and_default_options_unchanged():
    ex = TradeoffExplorer(_runs(), x="accuracy", y="config.lr", plot_mode="output")
    assert (ex.x.value, ex.y.value) == ("accuracy", "config.lr") and "config.lr" in ex.y.options
    ex.close()
    plain = TradeoffExplorer(_runs(), plot_mode="output")  # config columns are colours, not axes, unless asked for
    assert list(plain.x.options) == ["accuracy", "spikes_per_sample"] and "config.lr" in plain.color.options
    plain.close()


@pytest.mark.parametrize("axis", ["x", "y"])
def test_tradeoff_explorer_reports_an_axis_name_that_matches_no_column(axis):
    ex = TradeoffExplorer(_runs(), **{axis: "nope"}, plot_mode="output")
    assert (ex.x.value, ex.y.value) == ("spikes_per_sample", "accuracy")  # the defaults are shown
    msg = _message(ex)
    assert f"no column 'nope' to plot on {axis}" in msg and "color:#b00020" in msg
    ex.close()


def test_tradeoff_explorer_reports_a_non_numeric_axis_column_and_bad_names_on_refresh():
    ex = TradeoffExplorer(_runs(), x="name", y="neuron", color="nope", plot_mode="output")
    msg = _message(ex)
    assert "column 'name' has no numbers to plot on x" in msg
    assert "column 'config.neuron' has no numbers to plot on y" in msg
    assert "no column 'nope' to colour by" in msg  # all three problems are shown
    ex.refresh(x="synops")  # a later bad name keeps the current axis and says so
    assert ex.x.value == "spikes_per_sample" and "no column 'synops' to plot on x" in _message(ex)
    ex.refresh()
    assert "no column" not in _message(ex)
    ex.close()


@pytest.mark.parametrize("kw", [{"maximize_x": "yes"}, {"maximize_y": 1}, {"maximize_x": 0.0}])
def test_tradeoff_explorer_refuses_a_direction_that_is_not_a_bool(kw):
    name, value = next(iter(kw.items()))
    with pytest.raises(TypeError, match=f"TradeoffExplorer: {name} must be True, False or None.*{value!r}"):
        TradeoffExplorer(_runs(), plot_mode="output", **kw)


def test_tradeoff_explorer_accepts_numpy_bool_directions():
    ex = TradeoffExplorer(_runs(), maximize_x=np.bool_(True), maximize_y=None, plot_mode="output")
    assert ex.direction("x") is True and ex.direction("y") is True
    ex.close()


def _net():
    torch.manual_seed(0)
    return sl.Sequential(torch.nn.Linear(4, 8), sl.LIF())


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (-4, ValueError), (0, ValueError),
                                        (2.5, TypeError), ("3", TypeError), (True, TypeError)])
def test_raster_explorer_refuses_a_bad_max_samples(bad, error):
    batch = (torch.rand(6, 5, 4), torch.arange(5))
    with pytest.raises(error, match="RasterExplorer: max_samples must be"):
        RasterExplorer(_net(), batch, max_samples=bad, plot_mode="output")


def test_raster_explorer_max_samples_none_and_numpy_ints():
    batch = (torch.rand(6, 5, 4), torch.arange(5))
    ex = RasterExplorer(_net(), batch, max_samples=None, plot_mode="output")  # None: the whole batch
    assert ex.sample.max == 4 and ex.labels.tolist() == [0, 1, 2, 3, 4]
    ex.close()
    ex = RasterExplorer(_net(), batch, max_samples=np.int64(2), plot_mode="output")
    assert ex.sample.max == 1 and ex.labels.tolist() == [0, 1] and ex.spikes["1"].shape[1] == 2
    ex.close()


def test_delay_viewer_refuses_a_history_that_is_no_frame_nor_callable():
    layer = sl.DelayedLinear(6, 3, max_delay=5, seed=0)
    with pytest.raises(TypeError, match="DelayViewer: history must be a DataFrame.*got list"):
        DelayViewer(layer, history=[1, 2], plot_mode="output")


def test_delay_viewer_reports_a_history_source_returning_no_frame():
    layer = sl.DelayedLinear(6, 3, max_delay=5, seed=0)
    v = DelayViewer(layer, history=lambda: [1, 2], plot_mode="output")
    assert "could not read the delay history: expected a DataFrame, got list" in v.message.value
    v.close()
    v = DelayViewer(layer, history=lambda: None, plot_mode="output")  # nothing yet: no history, no error
    assert v.message.value == "" and v.history.empty
    v.close()
