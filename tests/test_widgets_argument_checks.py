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


def _mixed_runs() -> pd.DataFrame:
    """Like RunStore.summaries(): a bool field, a field None in one run, lists stored as JSON text."""
    return pd.DataFrame.from_records([
        {"name": "a", "config.delays": True, "config.surrogate_alpha": None, "config.hidden": "[128]",
         "config.time_limit": 5.0, "config.mix": 1.0, "accuracy": 0.8, "spikes_per_sample": 10.0},
        {"name": "b", "config.delays": False, "config.surrogate_alpha": 2.0, "config.hidden": "[64, 64]",
         "config.time_limit": 7.0, "config.mix": "fast", "accuracy": 0.9, "spikes_per_sample": 5.0},
        {"name": "c", "config.delays": True, "config.surrogate_alpha": 5.0, "config.hidden": "[32]",
         "config.time_limit": 9.0, "config.mix": None, "accuracy": 0.7, "spikes_per_sample": 7.0}])


def test_tradeoff_explorer_never_guesses_the_direction_of_a_config_column():
    # 'time_limit' reads as a cost to better_direction, but a config column is a setting: no silent front
    ex = TradeoffExplorer(_mixed_runs(), x="time_limit", plot_mode="output")
    assert ex.x.value == "config.time_limit" and ex.direction("x") is None and ex.front.empty
    assert "don't know whether higher or lower is better for 'config.time_limit'" in _message(ex)
    ex.close()
    ex = TradeoffExplorer(_mixed_runs(), x="time_limit", maximize_x=False, plot_mode="output")  # told: a front
    assert ex.front["name"].tolist() == ["a", "b"] and "2 on the Pareto front" in _message(ex)
    assert "lower config.time_limit and higher accuracy are better" in _message(ex)
    ex.close()


def test_tradeoff_explorer_config_column_missing_in_some_runs_plots_the_others():
    ex = TradeoffExplorer(_mixed_runs(), x="surrogate_alpha", maximize_x=True, plot_mode="output")
    assert ex.x.value == "config.surrogate_alpha" and ex.front["name"].tolist() == ["b", "c"]  # (a: None)
    assert ">2 runs, 2 on the Pareto front (higher config.surrogate_alpha" in _message(ex)
    ex.close()


def test_tradeoff_explorer_refuses_a_true_false_axis_that_bokeh_cannot_draw():
    import holoviews as hv

    ex = TradeoffExplorer(_mixed_runs(), x="delays", plot_mode="output")
    assert ex.x.value == "spikes_per_sample" and "config.delays" not in ex.x.options
    assert "column 'config.delays' is True/False, not numbers to plot on x (colour by it instead)" in _message(ex)
    assert "config.delays" in ex.color.options
    hv.render(ex.plot.object, backend="bokeh")  # (a True/False axis raised TypeError here)
    ex.close()


def test_tradeoff_explorer_says_why_a_text_config_column_is_no_axis():
    ex = TradeoffExplorer(_mixed_runs(), x="hidden", y="mix", plot_mode="output")
    msg = _message(ex)
    assert "column 'config.hidden' has no numbers to plot on x" in msg  # JSON text of the layer sizes
    assert "column 'config.mix' is not numeric in every run (1 of 2 values are numbers): cannot plot it on y" in msg
    ex.close()


def test_tradeoff_explorer_reports_an_axis_column_that_a_refresh_no_longer_finds():
    rows = {"df": _runs()}
    ex = TradeoffExplorer(lambda: rows["df"], x="lr", plot_mode="output")
    rows["df"] = _runs().drop(columns=["config.lr"])
    ex.refresh()
    assert ex.x.value == "spikes_per_sample" and "config.lr" not in ex.x.options
    assert "column 'config.lr' (on x) is no longer a numeric column of the runs: showing 'spikes_per_sample'" \
        in _message(ex)
    rows["df"] = _runs()
    ex.refresh()  # back: offered again, and nothing to report
    assert "config.lr" in ex.x.options and "no longer" not in _message(ex) and "color:#555" in ex.message.value
    ex.close()
