"""Edge cases of snnlab.viz checked on the rendered Bokeh models: tables without rows (or only NaN), the per-layer
colours and legend of binned rasters, and the legend entry of thresholds in membrane plots."""
from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import pytest
import torch

import snnlab as sl
from snnlab.viz import (HISTORY_COLUMNS, LiveCurves, delay_evolution, delay_snapshot, learning_curves,
                        membrane_traces, monitor_raster, monitor_traces, pareto_front, robustness_plot, series_curves,
                        spike_raster, theme, tradeoff_scatter)


def render(obj):
    return hv.render(obj, backend="bokeh")


def figures(model) -> list:
    """The Bokeh figures of a rendered plot (one, or the panels of a grid), in order."""
    if hasattr(model, "renderers"):
        return [model]
    children = getattr(model, "children", None) or []
    return [f for child in children for f in figures(child[0] if isinstance(child, tuple) else child)]


def texts(fig) -> list[str]:
    """The strings drawn by the Text glyphs of ``fig``."""
    out = []
    for r in fig.renderers:
        if type(r.glyph).__name__ == "Text":
            out += [str(t) for t in r.data_source.data.get(r.glyph.text.field if hasattr(r.glyph.text, "field")
                                                            else "text", [])]
    return out


def legend_items(fig) -> dict[str, list]:
    """``{label: [renderers]}`` of the legend items of ``fig``."""
    items = {}
    for legend in fig.legend:
        for item in legend.items:
            label = getattr(item.label, "value", item.label)
            items[str(label)] = list(item.renderers)
    return items


def assert_says(model, panels: int, message: str, titles: list[str] | None = None) -> None:
    """``model`` has ``panels`` drawn figures (none skipped), each showing ``message``, with ``titles``."""
    figs = figures(model)
    assert len(figs) == panels, [type(f).__name__ for f in figs]
    for fig in figs:
        assert message in texts(fig) or message in fig.title.text, (fig.title.text, texts(fig))
    if titles is not None:
        assert [f.title.text for f in figs] == titles


# ------------------------------------------------------------------------------------------ tables without rows
def _runs(rows: int, nan: bool = False) -> pd.DataFrame:
    values = [np.nan] * rows if nan else list(np.linspace(0.5, 0.9, rows))
    return pd.DataFrame({"name": [f"r{i}" for i in range(rows)], "config.lr": [1e-3] * rows,
                         "accuracy": pd.Series(values, dtype=float),
                         "spikes_per_sample": pd.Series(values, dtype=float)})


@pytest.mark.parametrize("color", [None, "lr", "name"])
def test_tradeoff_scatter_of_no_runs_draws_and_says_so(color):
    """Live plots: zero rows (SkipRendering-free but blank before) and all-NaN rows say why they are empty."""
    empty = render(tradeoff_scatter(_runs(0), "spikes_per_sample", "accuracy", color=color))
    assert empty.title.text == "no runs yet" and texts(empty) == ["no runs yet"]
    assert empty.xaxis[0].axis_label == "spikes_per_sample" and empty.yaxis[0].axis_label == "accuracy"
    nan = render(tradeoff_scatter(_runs(3, nan=True), "spikes_per_sample", "accuracy", color=color))
    assert texts(nan) == ["no run has both spikes_per_sample and accuracy yet"]
    # a summaries table of an empty store has no columns at all: still no runs, not a KeyError
    assert texts(render(tradeoff_scatter(pd.DataFrame(), "spikes_per_sample", "accuracy"))) == ["no runs yet"]
    # the caller's options (the dashboard sets its own title and size) still apply
    titled = render(tradeoff_scatter(_runs(0), "spikes_per_sample", "accuracy").opts(title="y vs x", width=820,
                                                                                     backend="bokeh"))
    assert titled.title.text == "y vs x" and titled.width == 820 and texts(titled) == ["no runs yet"]


def test_tradeoff_scatter_with_rows_is_unchanged_and_still_refuses_bad_columns():
    fig = render(tradeoff_scatter(_runs(3), "spikes_per_sample", "accuracy"))
    assert not texts(fig) and set(legend_items(fig)) == {"runs", "Pareto front"}
    with pytest.raises(KeyError, match="no column 'nope'"):
        tradeoff_scatter(_runs(3), "nope", "accuracy")
    with pytest.raises(ValueError, match="two different metrics"):
        tradeoff_scatter(_runs(0), "accuracy", "accuracy")


def test_pareto_front_of_no_rows_is_an_empty_table():
    for df in (_runs(0), _runs(2, nan=True)):
        front = pareto_front(df, "spikes_per_sample", "accuracy")
        assert front.empty and list(front.columns) == list(df.columns)


def test_robustness_plot_refuses_no_rows_and_draws_nan_panels_with_a_message():
    columns = {"perturbation": pd.Series(dtype=object), "level": pd.Series(dtype=float),
               "accuracy": pd.Series(dtype=float)}
    for split in (True, False):
        with pytest.raises(ValueError, match="robustness_plot: the table has no rows"):
            robustness_plot(pd.DataFrame(columns), split=split)
    nan = pd.DataFrame({"perturbation": ["jitter"] * 2 + ["deletion"] * 2, "level": [0.0, 1.0] * 2,
                        "accuracy": [np.nan, np.nan, 0.9, 0.7]})
    layout = render(robustness_plot(nan))
    assert [f.title.text for f in figures(layout)] == ["jitter", "deletion"]
    jitter, deletion = figures(layout)
    assert texts(jitter) == ["no finite accuracy values"] and not texts(deletion)
    assert_says(render(robustness_plot(nan.iloc[:2], split=False)), 1, "no finite accuracy values")


def _tidy(rows: int, value: float = 0.5) -> pd.DataFrame:
    return pd.DataFrame({"step": pd.Series(np.arange(rows), dtype=float),
                         "name": pd.Series(["loss"] * rows, dtype=object),
                         "value": pd.Series([value] * rows, dtype=float)})


def test_learning_and_series_curves_without_rows_draw_a_panel_that_says_so():
    """Before: SkipRendering (an empty hv.Layout), or a blank panel for a metric asked for by name."""
    for plot in (learning_curves(_tidy(0)), series_curves({})):
        assert_says(render(plot), 1, "no data yet", titles=["no metrics yet"])
    for plot in (learning_curves(_tidy(0), names=["loss", "accuracy"]), series_curves({}, names=["loss", "accuracy"])):
        assert_says(render(plot), 2, "no data yet", titles=["loss", "accuracy"])
    mixed = render(learning_curves(_tidy(3), names=["loss", "accuracy"]))
    loss, acc = figures(mixed)
    assert not texts(loss) and texts(acc) == ["no data yet"]


def test_a_metric_of_only_nan_values_keeps_its_panel_saying_no_finite_values():
    """Before: a diverged loss (logged, every value NaN) drew 'no metrics yet', as if nothing had been logged."""
    nan_loss = pd.concat([_tidy(3, np.nan), _tidy(2).assign(name="accuracy")], ignore_index=True)
    nan_series = {("r", "train", "loss"): ([1, 2], [np.nan, np.nan])}
    for plot in (learning_curves(_tidy(3, np.nan)), series_curves(nan_series)):
        assert_says(render(plot), 1, "no finite values", titles=["loss"])
    loss, acc = figures(render(learning_curves(nan_loss)))
    assert (loss.title.text, texts(loss)) == ("loss", ["no finite values"]) and not texts(acc)
    series = {("r", "train", "loss"): ([1, 2], [np.nan, np.nan]), ("r", "train", "accuracy"): ([1, 2], [0.5, 0.6])}
    acc, loss = figures(render(series_curves(series)))  # (in key order, as before)
    assert (loss.title.text, texts(loss)) == ("loss", ["no finite values"]) and not texts(acc)
    loss, acc = figures(render(learning_curves(_tidy(3, np.nan), names=["loss", "accuracy"])))
    assert (texts(loss), texts(acc)) == (["no finite values"], ["no data yet"])  # logged as NaN / never logged


def test_live_curves_say_no_data_in_their_title_until_rows_arrive_and_after_clear():
    live = LiveCurves(groups={"loss": ["loss", "test_loss"], "accuracy": ["accuracy"]})
    plots = {title: hv.renderer("bokeh").get_plot(dmap) for title, dmap in live.plots.items()}
    titles = lambda: {title: p.state.title.text for title, p in plots.items()}  # noqa: E731
    assert titles() == {"loss": "loss (no data yet)", "accuracy": "accuracy (no data yet)"}
    live.send(1, {"loss": 0.5})
    assert titles() == {"loss": "loss", "accuracy": "accuracy (no data yet)"}  # the same figures, updated
    live.clear()
    assert titles() == {"loss": "loss (no data yet)", "accuracy": "accuracy (no data yet)"}
    one = LiveCurves()
    plot = hv.renderer("bokeh").get_plot(one.plot)
    assert plot.state.title.text == "no data yet"
    one.send(1, {"loss": 0.5})
    assert plot.state.title.text == ""
    with pytest.raises(ValueError, match="LiveCurves: metrics is empty"):
        LiveCurves(metrics=[])


def test_delay_evolution_of_an_empty_or_nan_history_draws_both_panels_with_a_message():
    """Before: a grid whose two panels HoloViews skipped ("Overlay is empty"): nothing drawn."""
    empty = pd.DataFrame(columns=HISTORY_COLUMNS)
    assert_says(render(delay_evolution(empty)), 2, "no delay snapshots yet", titles=["delay positions", "sigma"])
    layer = sl.DelayedLinear(3, 2, max_delay=6, seed=0)
    hist = pd.concat([delay_snapshot(layer, step=s) for s in range(2)]).assign(position=np.nan)
    left, right = figures(render(delay_evolution(hist)))
    assert texts(left) == ["no finite delay positions"] and not texts(right)


# ------------------------------------------------------------------------------------------ binned rasters
def _layers(seed: int = 0, sizes=(("enc", 30), ("hid", 20), ("out", 10)), T: int = 120) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    return {name: torch.tensor(rng.random((T, 2, n)) < 0.3).float() for name, n in sizes}


def _image_colours(fig) -> dict[str, str]:
    """The darkest colour (the top of the colour map) of every image of ``fig``, in order."""
    return [r.glyph.color_mapper.palette[-1] for r in fig.renderers if type(r.glyph).__name__ == "Image"]


def test_binned_monitor_raster_keeps_each_layers_colour_and_legend():
    """Before: one viridis hv.Image of all layers, no legend (the scatter raster colours layers and lists them)."""
    rec = _layers()
    scatter = monitor_raster(rec, sample=1)
    binned = monitor_raster(rec, sample=1, max_points=100)
    assert isinstance(scatter, hv.Points) and isinstance(binned, hv.Overlay)
    colours = {"enc": theme.CATEGORICAL[0], "hid": theme.CATEGORICAL[1], "out": theme.CATEGORICAL[2]}
    # the scatter raster's colours ...
    mapper = render(scatter).renderers[0].glyph.fill_color.transform
    assert dict(zip(mapper.factors, mapper.palette)) == colours
    # ... are those of the binned raster: an image per layer in a ramp of its colour, and a legend entry per layer
    fig = render(binned)
    assert _image_colours(fig) == list(colours.values())
    items = legend_items(fig)
    assert list(items) == ["enc", "hid", "out"]
    assert [items[k][0].glyph.fill_color for k in items] == list(colours.values())
    assert {where for where in ("below", "right") for r in getattr(fig, where) if r in fig.legend} == {"below"}
    # each image counts its layer's spikes only, over its own rows; together they are every spike
    start = 0
    for (name, s), img in zip(rec.items(), binned.Image):
        z = img.dimension_values("spikes", flat=False)
        assert np.sum(z) == s[:, 1].sum().item()
        (y0, y1) = img.bounds.lbrt()[1::2]
        assert (y0, y1) == (start - 0.5, start + s.shape[-1] - 0.5)
        start += s.shape[-1]


def test_binned_raster_with_coarse_bins_straddling_layers_counts_every_spike_once():
    rec = _layers(sizes=(("a", 7), ("b", 5), ("c", 9)))
    total = sum(s[:, 0].sum().item() for s in rec.values())
    stacked = np.concatenate([s[:, 0].numpy() for s in rec.values()], axis=1)
    groups = np.repeat(["a", "b", "c"], [7, 5, 9])
    plot = spike_raster(stacked, color_by=groups, method="image", bins=(13, 4))
    images = list(plot.Image)
    assert sum(np.sum(i.dimension_values("spikes")) for i in images) == total
    plain = spike_raster(stacked, method="image", bins=(13, 4)).dimension_values("spikes", flat=False)
    summed = np.zeros_like(plain)  # the per-layer images add up to the uncoloured image, bin by bin
    edges = np.linspace(-0.5, 21 - 0.5, 5)
    for img in images:
        z = (img.dimension_values("spikes", flat=False))  # (row 0: the lowest neuron bin)
        lo = int(np.argmin(np.abs(edges - img.bounds.lbrt()[1])))
        summed[lo:lo + z.shape[0]] += z
    np.testing.assert_array_equal(summed, plain)
    render(plot)


def test_binned_raster_of_one_layer_has_its_colour_a_colour_bar_and_no_legend():
    rec = _layers(sizes=(("hid", 40),))
    fig = render(monitor_raster(rec, max_points=10))
    assert _image_colours(fig) == [theme.CATEGORICAL[0]]
    assert not any(lg.visible and lg.items for lg in fig.legend)
    assert any(type(r).__name__ == "ColorBar" for r in fig.right)


def test_layer_colours_follow_the_layer_order_not_the_first_spike():
    """A layer keeps its colour whichever layer fires first (the colours of a live raster stayed put)."""
    rec = _layers()
    rec["enc"][:20] = 0  # "hid" fires first
    mapper = render(monitor_raster(rec)).renderers[0].glyph.fill_color.transform
    assert dict(zip(mapper.factors, mapper.palette))["enc"] == theme.CATEGORICAL[0]  # (was the second colour)
    from snnlab.viz.raster import group_colors

    assert group_colors(["hid", "enc", "hid"]) == {"hid": theme.CATEGORICAL[0], "enc": theme.CATEGORICAL[1]}


def test_a_silent_layer_keeps_its_image_and_legend_entry():
    rec = _layers()
    rec["hid"].zero_()
    plot = monitor_raster(rec, max_points=100)
    assert len(plot.Image) == 3 and (plot.Image.Hid.dimension_values("spikes") == 0).all()
    assert list(legend_items(render(plot))) == ["enc", "hid", "out"]


def test_datashaded_raster_colours_layers_when_datashader_is_installed():
    pytest.importorskip("datashader")
    rec = _layers()
    fig = render(monitor_raster(rec, method="datashader"))
    assert list(legend_items(fig)) == ["enc", "hid", "out"]
    stack = next(r.glyph for r in fig.renderers if type(r.glyph).__name__ == "ImageStack")
    assert sorted(stack.color_mapper.palette) == sorted(theme.CATEGORICAL[:3])


@pytest.mark.parametrize("shape, p", [((1, 1), 1.0), ((1, 7), 1.0), ((7, 1), 1.0), ((20, 6), 0.0), ((0, 4), 0.0)])
def test_datashaded_raster_by_group_draws_one_step_one_neuron_and_no_spikes(shape, p):
    """Before: ValueError 'The supplied cmap dictionary must have the same value dimensions as the element': with
    no spikes, or spikes all at one step / one neuron (an empty range), count_cat gave one 'Count' layer."""
    pytest.importorskip("datashader")
    spikes = (np.random.default_rng(0).random(shape) < p).astype(float)
    groups = [("a", "b", "c")[i % 3] for i in range(shape[1])]
    fig = render(spike_raster(spikes, method="datashader", color_by=groups))
    named = list(dict.fromkeys(groups))
    if len(named) > 1 and shape[0]:  # (no step at all: drawn as no points, without a legend)
        assert list(legend_items(fig)) == named
    colours = dict(zip(named, theme.CATEGORICAL))
    stacks = [r.glyph for r in fig.renderers if type(r.glyph).__name__ == "ImageStack"]
    for stack in stacks:  # (the ImageStack's layers: the groups that fired, each in its group's colour)
        assert set(stack.color_mapper.palette) <= set(colours.values())
    if spikes.any():
        assert stacks
    x0, x1 = fig.x_range.start, fig.x_range.end
    assert (x0, x1) == (-0.5, shape[0] - 0.5) or not shape[0]


# ------------------------------------------------------------------------------------------ thresholds
@pytest.fixture(scope="module")
def monitored():
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(4, 6), sl.LIF(threshold=0.8), torch.nn.Linear(6, 6),
                        sl.ALIF(adaptation=0.4, tau_adapt=20.0))
    with sl.Monitor(net) as mon:
        net(torch.rand(30, 2, 4) * 3)
    return mon


def _threshold_renderers(fig) -> list:
    items = legend_items(fig)
    assert list(items).count("threshold") == 1
    for r in items["threshold"]:
        assert r.glyph.line_dash == [6] and r.glyph.line_color == theme.THRESHOLD_COLOR
    return items["threshold"]


@pytest.mark.parametrize("layer", ["1", "3"])
def test_thresholds_have_one_legend_entry(monitored, layer):
    """Before: no entry for a fixed threshold (an hv.HLine); an ALIF's moving thresholds were folded into each
    neuron's entry (the keys of an NdOverlay keyed like the traces)."""
    fig = render(monitor_traces(monitored, layer, neurons=[0, 1, 2]))
    assert list(legend_items(fig)) == ["0", "1", "2", "threshold", "spikes"]
    lines = _threshold_renderers(fig)
    if layer == "1":  # one flat line at the LIF's threshold over the steps
        assert len(lines) == 1 and list(lines[0].data_source.data["v"]) == pytest.approx([0.8, 0.8])
    else:  # one curve per neuron under one entry; the traces' entries hold their own line only
        assert len(lines) == 3
        want = monitored.thresholds[layer][:, 0, :3].numpy().T
        for line, row in zip(lines, want):
            np.testing.assert_allclose(line.data_source.data["v"], row, rtol=1e-6)
        assert all(len(legend_items(fig)[k]) == 1 for k in ("0", "1", "2"))


def test_many_thresholds_do_not_flood_the_legend():
    v = torch.randn(20, 12).cumsum(0)
    per_neuron = render(membrane_traces(v, threshold=torch.linspace(0.5, 1.6, 12), neurons=range(12), max_neurons=12))
    assert len(_threshold_renderers(per_neuron)) == 12 and len(legend_items(per_neuron)) == 13
    moving = render(membrane_traces(v, threshold=v.abs() + 1.0, neurons=range(12)))
    assert len(_threshold_renderers(moving)) == 12 and len(legend_items(moving)) == 13
    short = render(membrane_traces(v[:1], threshold=1.0))  # one step: the line still spans a step
    assert list(_threshold_renderers(short)[0].data_source.data["time"]) == [0.0, 1.0]
