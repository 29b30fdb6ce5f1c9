"""Tests of snnlab.viz: assert on the data inside the returned HoloViews objects, and that each renders."""
from __future__ import annotations

import math

import holoviews as hv
import numpy as np
import pandas as pd
import pytest
import torch

import snnlab as sl
from snnlab.core.delays import gaussian_delay_kernel
from snnlab import viz
from snnlab.viz import (LiveCurves, delay_evolution, delay_histogram, delay_matrix, delay_snapshot, event_animation,
                        event_frame, gaussian_kernels, learning_curves, live_learning_curves, membrane_traces,
                        monitor_raster, monitor_traces, pareto_front, rate_histogram, robustness_plot,
                        spike_count_histogram, spike_raster, tradeoff_scatter)


def render(obj):
    return hv.render(obj, backend="bokeh")


def spikes(T=40, B=3, N=20, p=0.1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, N, generator=g) < p).float()


@pytest.fixture(scope="module")
def recorded():
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(6, 12), sl.LIF(threshold=0.8), torch.nn.Linear(12, 5), sl.LIF())
    with sl.Monitor(net) as mon:
        net(torch.rand(30, 2, 6) * 4)
    return mon


# ------------------------------------------------------------------------------------------ rasters
def test_raster_points_are_exactly_the_spikes():
    s = spikes()
    pts = spike_raster(s, sample=1)
    assert isinstance(pts, hv.Points)
    t, n = np.nonzero(s[:, 1].numpy())
    got = sorted(zip(pts.dimension_values("time").astype(int), pts.dimension_values("neuron").astype(int)))
    assert got == sorted(zip(t, n))
    assert len(pts) == int(s[:, 1].sum())
    # [T, N] input and a batch without a sample
    assert len(spike_raster(s[:, 0])) == int(s[:, 0].sum())
    with pytest.raises(ValueError, match="sample"):
        spike_raster(s, sample=None)


def test_raster_color_by_and_dt():
    s = torch.zeros(5, 4)
    s[1, 0] = s[2, 3] = s[4, 3] = 1
    pts = spike_raster(s, color_by=["a", "a", "b", "c"], dt=1e-3)
    df = pts.data.sort_values("time")
    assert df["group"].tolist() == ["a", "c", "c"]
    np.testing.assert_allclose(df["time"], [1e-3, 2e-3, 4e-3])
    with pytest.raises(ValueError, match="labels"):
        spike_raster(s, color_by=["a"])


def test_raster_bins_above_threshold_and_image_sums_to_spike_count():
    s = spikes(T=60, B=1, N=30, p=0.3)[:, 0]
    count = int(s.sum())
    assert count > 50
    img = spike_raster(s, max_points=50)
    assert isinstance(img, hv.Image)
    z = img.dimension_values("spikes", flat=False)
    assert z.shape == (30, 60) and z.sum() == count
    np.testing.assert_array_equal(z, s.numpy().T)  # one bin per step/neuron: the binary matrix itself
    coarse = spike_raster(s, max_points=50, bins=(7, 5))
    zc = coarse.dimension_values("spikes", flat=False)
    assert zc.shape == (5, 7) and zc.sum() == count
    assert isinstance(spike_raster(s, max_points=10**9), hv.Points)
    assert isinstance(spike_raster(s, method="image"), hv.Image)


def test_raster_large_is_binned_and_renders():
    a = np.zeros((2000, 500), dtype=np.float32)
    rng = np.random.default_rng(0)
    a[rng.random(a.shape) < 0.3] = 1.0  # ~300k spikes
    img = spike_raster(a)
    assert isinstance(img, hv.Image)
    assert img.dimension_values("spikes").sum() == a.sum()
    assert img.dimension_values("spikes", flat=False).shape == (400, 800)
    render(img)


@pytest.mark.parametrize("shape", [(50, 1), (1, 50), (1, 1)])
def test_binned_raster_with_one_row_or_column(shape):
    img = spike_raster(np.ones(shape), method="image")
    assert img.dimension_values("spikes").sum() == shape[0] * shape[1]
    render(img)


def test_datashader_method_when_installed():
    pytest.importorskip("datashader")
    out = spike_raster(spikes()[:, 0], method="datashader")
    render(out)


def test_monitor_raster_stacks_layers(recorded):
    mon = recorded
    plot = monitor_raster(mon, sample=1)
    df = plot.data
    n1 = int(mon.spikes["1"][:, 1].sum())
    n3 = int(mon.spikes["3"][:, 1].sum())
    assert len(df) == n1 + n3 and n1 > 0
    assert set(df["group"]) <= {"1", "3"}
    assert df.loc[df["group"] == "1", "neuron"].max() < 12
    if n3:
        assert df.loc[df["group"] == "3", "neuron"].min() >= 12
    layout = monitor_raster(mon, overlay=False)
    assert isinstance(layout, hv.Layout) and len(layout) == 2
    assert len(monitor_raster(mon, layers=["3"]).data) == int(mon.spikes["3"][:, 0].sum())
    with pytest.raises(KeyError):
        monitor_raster(mon, layers=["nope"])
    glyph = render(plot).renderers[0].glyph
    assert glyph.marker == "dash" and glyph.angle == pytest.approx(math.pi / 2)  # vertical ticks (degrees -> radians)
    render(layout)


# ------------------------------------------------------------------------------------------ traces
def test_membrane_traces_data():
    v = torch.linspace(0, 2, 10)[:, None].repeat(1, 4) + torch.arange(4) * 0.1
    s = (v >= 1.0).float()
    plot = membrane_traces(v, s, neurons=[0, 2], threshold=1.0)
    curves, line, marks = plot
    assert list(curves.keys()) == [0, 2]
    np.testing.assert_allclose(curves[2].dimension_values("v"), v[:, 2].numpy(), rtol=1e-6)
    assert line.label == "threshold" and line.dimension_values("v").tolist() == [1.0, 1.0]
    assert line.dimension_values("time").tolist() == [0.0, 9.0]  # over the recorded steps
    t, j = np.nonzero(s[:, [0, 2]].numpy())
    assert len(marks) == len(t)
    np.testing.assert_allclose(marks.dimension_values("v"), v.numpy()[t, np.array([0, 2])[j]], rtol=1e-6)
    assert set(marks.dimension_values("neuron")) == {0, 2}
    assert len(membrane_traces(v, threshold=None)) == 1
    render(plot)


def test_monitor_traces_uses_layer_threshold(recorded):
    plot = monitor_traces(recorded, "1", neurons=[0, 1, 2])
    assert plot.Curve.Threshold.dimension_values("v") == pytest.approx([0.8, 0.8])
    assert len(plot.NdOverlay.I) == 3
    render(plot)


def test_a_moving_threshold_is_drawn_per_neuron_from_the_monitor():
    net = sl.Sequential(torch.nn.Linear(4, 6), sl.ALIF(adaptation=0.4, tau_adapt=20.0))
    torch.manual_seed(0)
    with sl.Monitor(net) as mon:
        net(torch.rand(30, 2, 4) * 3)
    busiest = int(mon.spikes["1"][:, 1].sum(0).argmax())
    shown = sorted({0, busiest})
    plot = monitor_traces(mon, "1", sample=1, neurons=shown)
    curves, *thresholds, _ = plot
    assert [int(c.dimension_values("threshold of")[0]) for c in thresholds] == shown
    assert {c.label for c in thresholds} == {"threshold"} and not plot.traverse(lambda e: e, [hv.HLine])
    want = mon.thresholds["1"][:, 1, busiest].numpy()
    np.testing.assert_allclose(thresholds[shown.index(busiest)].dimension_values("v"), want, rtol=1e-6)
    assert want.max() > 1.0  # it moved
    with pytest.raises(ValueError, match="moving threshold must have the membrane's shape"):
        membrane_traces(mon.membrane["1"], threshold=mon.thresholds["1"][:10])
    render(plot)


def test_rate_and_count_histograms():
    s = torch.zeros(10, 2, 4)
    s[:, :, 0] = 1            # neuron 0 fires every step: rate 1
    s[::2, :, 1] = 1          # neuron 1 every other step: rate 0.5
    h = rate_histogram(s, bins=4)
    assert h.dimension_values("neurons").sum() == 4
    assert h.dimension_values("neurons").tolist() == [2, 0, 1, 1]
    hz = rate_histogram(s, dt=1e-3, bins=4)
    assert hz.edges[-1] == pytest.approx(1000.0)
    c = spike_count_histogram(s)  # counts per (sample, neuron): 10, 5, 0, 0 for both samples
    counts = dict(zip(np.round(c.dimension_values("spikes")).astype(int), c.dimension_values("count")))
    assert counts[10] == 2 and counts[5] == 2 and counts[0] == 4
    cs = spike_count_histogram(s, over="sample")
    assert cs.dimension_values("count").sum() == 2
    render(h)
    render(c)


# ------------------------------------------------------------------------------------------ delays
@pytest.fixture()
def layer():
    return sl.DelayedLinear(7, 5, max_delay=9, seed=1)


def test_delay_histogram_counts(layer):
    h = delay_histogram(layer)
    expected = np.bincount(layer.delays.flatten().numpy(), minlength=9)
    np.testing.assert_array_equal(h.dimension_values("synapses"), expected)
    assert delay_histogram(layer, rounded=False).dimension_values("synapses").sum() == 35
    assert delay_histogram(layer.delays).dimension_values("synapses").sum() == 35
    render(h)


def test_delay_matrix_values_equal_layer_delays(layer):
    img = delay_matrix(layer)
    d = layer.delays.numpy()
    np.testing.assert_array_equal(img.dimension_values("delay", flat=False), d)
    assert img[3, 4] == d[4, 3]  # img[in, out]
    row = sl.DelayedLinear(7, 1, max_delay=9, seed=2)
    np.testing.assert_array_equal(delay_matrix(row).dimension_values("delay", flat=False), row.delays.numpy())
    render(delay_matrix(row))
    cont = delay_matrix(layer, rounded=False)
    np.testing.assert_allclose(cont.dimension_values("delay", flat=False), layer.positions.detach().numpy(),
                               rtol=1e-6)
    render(img)


def test_gaussian_kernels_match_the_layer(layer):
    layer.sigma = 1.5
    ov = gaussian_kernels(layer, synapses=[(0, 1), (4, 6)])
    assert list(ov.keys()) == ["0-1", "4-6"]
    expect = gaussian_delay_kernel(layer.positions.detach()[4, 6], 1.5, 9).numpy()
    np.testing.assert_allclose(ov["4-6"].dimension_values("kernel"), expect, rtol=1e-6)
    narrow = gaussian_kernels(layer, synapses=[(2, 2)], sigma=0.1)
    assert np.argmax(narrow["2-2"].dimension_values("kernel")) == int(layer.delays[2, 2])
    assert len(gaussian_kernels(layer)) == 4
    w = gaussian_kernels(layer, synapses=[(0, 1)], weighted=True)
    assert w["0-1"].dimension_values("kernel").sum() == pytest.approx(float(layer.weight.detach()[0, 1]), rel=1e-5)
    render(ov)


@pytest.mark.parametrize("make", [lambda: sl.DelayedLinear(6, 3, max_delay=10, learn_delays=False, seed=0),
                                  lambda: sl.DelayedLinear(6, 3, max_delay=10, seed=0).round_delays()])
def test_gaussian_kernels_of_a_rounded_layer_are_its_integer_delays(make):
    layer = make()
    syn = [(0, 1), (2, 5)]
    ov = gaussian_kernels(layer, synapses=syn, weighted=True)
    for j, i in syn:  # the weighted kernel is the synapse's impulse response: W_ji at tap d_ji
        impulse = torch.zeros(10, 1, 6)
        impulse[0, 0, i] = 1.0
        np.testing.assert_allclose(ov[f"{j}-{i}"].dimension_values("kernel"),
                                   layer(impulse)[:, 0, j].detach().numpy(), rtol=1e-6)
    assert "rounded" in ov.opts.get().kwargs["title"]
    preview = gaussian_kernels(layer, synapses=syn, sigma=2.0)  # an explicit sigma still shows a Gaussian
    assert (preview["0-1"].dimension_values("kernel") > 0).all()
    render(ov)


def test_delay_snapshot_and_evolution(layer):
    rows = []
    for step in range(4):
        layer.sigma = 4.0 - step
        with torch.no_grad():
            layer.positions.add_(0.5)
        layer.clamp_positions_()
        rows.append(delay_snapshot(layer, step=step * 10, epoch=step, name="fc1"))
    hist = pd.concat(rows, ignore_index=True)
    assert list(hist.columns) == viz.HISTORY_COLUMNS
    assert len(hist) == 4 * 35
    last = hist[hist["step"] == 30]
    np.testing.assert_allclose(last["position"].to_numpy(), layer.positions.detach().numpy().ravel(), rtol=1e-6)
    # fixed random subset, same at every call
    sub1 = delay_snapshot(layer, step=0, synapses=10)
    sub2 = delay_snapshot(layer, step=1, synapses=10)
    assert len(sub1) == 10 and sub1["synapse"].tolist() == sub2["synapse"].tolist()
    one = delay_snapshot(layer, 0, synapses=[(1, 2)])
    assert one["position"].item() == pytest.approx(float(layer.positions.detach()[1, 2]))
    plot = delay_evolution(hist, synapses=["0-1"])
    pos, sig = plot
    mean = pos.Curve.fc1_mean
    np.testing.assert_allclose(mean.dimension_values("position"), hist.groupby("step")["position"].mean().to_numpy())
    np.testing.assert_allclose(sig.Curve.fc1.dimension_values("sigma"), [4.0, 3.0, 2.0, 1.0])
    assert len(pos.Curve) == 2  # mean + the chosen synapse
    render(plot)
    render(delay_evolution(hist, x="epoch"))


# ------------------------------------------------------------------------------------------ curves
def _metrics_table():
    rows = []
    for run, slope in (("r1", 0.1), ("r2", 0.2)):
        for step in range(5):
            rows.append((run, step, 0, "train", "loss", 1.0 - slope * step))
            rows.append((run, step, 0, "train", "accuracy", slope * step))
    return pd.DataFrame(rows, columns=["run_id", "step", "epoch", "kind", "name", "value"])


def test_learning_curves_panels_and_runs():
    df = _metrics_table()
    layout = learning_curves(df)
    assert len(layout) == 2
    loss = layout.NdOverlay.I
    assert set(loss.keys()) == {"r1", "r2"}
    np.testing.assert_allclose(loss["r2"].dimension_values("value"), [1.0, 0.8, 0.6, 0.4, 0.2])
    one = learning_curves(df[df.run_id == "r1"], names=["accuracy"])
    assert len(one) == 1 and len(one.NdOverlay.I) == 1
    named = learning_curves(df, labels={"r1": "baseline"})
    assert "baseline" in named.NdOverlay.I.keys()
    render(layout)


def _glyphs(plot):
    """(glyph type, points, colour) of each renderer of a rendered plot with data."""
    fig = render(plot)
    out = []
    for r in fig.renderers:
        n = len(next(iter(r.data_source.data.values()), []))
        if n:
            out.append((type(r.glyph).__name__, n, getattr(r.glyph, "line_color", None)))
    return sorted(out)


def test_learning_curves_mark_series_of_one_point():
    """A one-epoch run and the single test after rounding are points: Bokeh draws no line through one point."""
    df = pd.DataFrame({"run_id": ["r1", "r1", "r1", "r2", "r1", "r2"], "step": [0, 1, 2, 2, 2, 2],
                       "name": ["test_accuracy"] * 4 + ["rounded_test_accuracy"] * 2,
                       "value": [0.1, 0.2, 0.3, 0.5, 0.31, 0.52]})
    test, rounded = learning_curves(df)
    glyphs = _glyphs(test)
    lines = {colour: n for kind, n, colour in glyphs if kind == "Line"}
    markers = [(n, colour) for kind, n, colour in glyphs if kind == "Scatter"]
    # r1 a line of 3 points, r2 one point: a line glyph (invisible) and a marker in the same colour
    assert sorted(lines.values()) == [1, 3] and len(markers) == 1
    assert markers[0][0] == 1 and lines[markers[0][1]] == 1
    assert test.get(1)["r2"].dimension_values("value").tolist() == [0.5]
    assert len([g for g in _glyphs(rounded) if g[0] == "Scatter"]) == 2
    # both runs many points: plain lines, as before
    assert isinstance(learning_curves(df[df.name == "test_accuracy"].query("run_id == 'r1'")).NdOverlay.I, hv.NdOverlay)


def test_live_curves_mark_test_metrics_and_keep_their_structure():
    live = LiveCurves(metrics=["loss", "test_loss"])
    live.send(1, {"loss": 1.0})
    live.send(2, {"loss": 0.8, "test_loss": 0.9})
    first = live.plot[()]
    assert isinstance(first, hv.Overlay) and first.get(1)["test_loss"].dimension_values("value").tolist() == [0.9]
    assert len(first.get(1)["loss"]) == 0  # an empty stand-in: the same keys on every draw
    assert sorted(g[:2] for g in _glyphs(live.plot)) == [("Line", 1), ("Line", 2), ("Scatter", 1)]
    live.send(3, {"loss": 0.7, "test_loss": 0.6})
    assert live.plot[()].get(1)["test_loss"].dimension_values("value").tolist() == [0.9, 0.6]


def test_live_curves_buffer_grows_and_plot_updates():
    live = LiveCurves(buffer_length=5)
    assert len(live.buffer.data) == 0
    live.send(1, {"loss": 1.0, "acc": 0.1, "nested": {"x": torch.tensor(2.0)}, "bad": float("nan"), "s": "x"})
    assert len(live.buffer.data) == 3
    live.send(2, {"loss": 0.5, "acc": 0.4})
    assert len(live.buffer.data) == 5
    live.send(3, {"loss": 0.25})
    assert len(live.buffer.data) == 5  # bounded by buffer_length
    ov = live.plot[()].get(0)  # the lines; .get(1) the markers of test metrics (none here)
    from snnlab.viz.curves import TRAINING_METRICS

    assert set(ov.keys()) == {"acc", "nested/x"} | set(TRAINING_METRICS)  # (the trainer's, empty until sent)
    assert len(ov["accuracy"].dimension_values("value")) == 0
    np.testing.assert_allclose(ov["loss"].dimension_values("value"), [0.5, 0.25])
    render(live.plot)
    live.clear()
    assert len(live.buffer.data) == 0


def test_live_curves_panels_and_tables():
    live = LiveCurves(metrics=["loss", "accuracy"], panels=True)
    assert isinstance(live.plot, hv.Layout) and len(live.plot) == 2
    live.send_table(_metrics_table().query("run_id == 'r1'"))
    live.send(5, {"loss": 0.4, "other": 3.0})
    assert len(live.buffer.data) == 11
    assert live.plot[0][()]["loss"].dimension_values("value")[-1] == pytest.approx(0.4)
    render(live.plot)
    dmap, buf = live_learning_curves()
    buf.send(pd.DataFrame({"step": [1.0, 2.0], "name": ["loss", "loss"], "value": [0.3, 0.2]}))
    assert isinstance(dmap, hv.DynamicMap) and len(buf.data) == 2


def test_live_curves_groups_one_panel_per_scale_with_markers_and_padded_x():
    """Reviewer: spikes_per_sample (30-60) on the y axis of accuracy flattened it; the one test point was clipped."""
    groups = {"loss": ["loss", "test_loss"], "accuracy": ["accuracy", "test_accuracy", "rounded_test_accuracy"],
              "spikes per sample": ["spikes_per_sample", "test_spikes_per_sample"]}
    live = LiveCurves(groups=groups)
    assert list(live.plots) == list(groups) and isinstance(live.plot, hv.Layout) and len(live.plot) == 3
    assert live.metrics == [n for names in groups.values() for n in names]
    figs = {title: render(plot) for title, plot in live.plots.items()}
    legend = figs["accuracy"].legend[0]
    assert not any(item.visible for item in legend.items)  # an empty frame lists no metrics
    # canvas: in the reviewer's browser only one of several live WebGL plots showed its lines
    assert {f.output_backend for f in figs.values()} == {"canvas"}
    live.send_many([(step, {"loss": 1.0 / step, "accuracy": step / 200, "spikes_per_sample": 40.0 + step % 20})
                    for step in range(1, 181)])
    live.send(180, {"test_accuracy": 0.8, "test_loss": 0.4, "test_spikes_per_sample": 45.0, "other": 1.0})
    acc = live.plots["accuracy"][()]
    assert set(acc.get(0).keys()) == set(groups["accuracy"])  # nothing of another scale in this panel
    assert acc.get(1)["test_accuracy"].dimension_values("value").tolist() == [0.8]  # a marker
    fig = figs["accuracy"]
    assert fig.y_range.end < 2  # accuracy's own axis, not squashed by spike counts
    assert fig.x_range.start < 1 and fig.x_range.end > 180 + 5  # the test point at the last step is inside
    visible = {item.label.value for item in legend.items if item.visible}
    assert visible == {"accuracy", "test_accuracy"}  # no entry for a series without data (rounded_test_*)
    spikes = figs["spikes per sample"]
    assert spikes.y_range.start > 30 and spikes.y_range.end < 70
    assert "other" not in set(live.buffer.data["name"])


def test_live_curves_send_many_and_replace_table_redraw_once_and_count_rows_when_drawing_fails():
    live = LiveCurves(groups={"loss": ["loss", "test_loss"]})
    redraws = []
    live.buffer.add_subscriber(lambda **kw: redraws.append(len(kw["data"])))
    assert live.send_many([(s, {"loss": 1.0 / s}) for s in range(1, 51)]) == 50 and redraws == [50]
    assert live.send_many([]) == 0 and redraws == [50]
    new = pd.DataFrame({"step": [1, 2], "name": ["loss", "test_loss"], "value": [0.9, 0.8]})
    live.replace_table(new)  # a new run: old rows out, new rows in, one redraw (no empty frame in between)
    assert redraws == [50, 2] and live.buffer.data["value"].tolist() == [0.9, 0.8]
    assert live.total_rows == 52 and live.rows_since(50)[0]["value"].tolist() == [0.9, 0.8]

    def broken(**kw):
        raise RuntimeError("Set changed size during iteration")

    live.buffer.add_subscriber(broken)
    with pytest.raises(RuntimeError):
        live.send(3, {"loss": 0.7})
    assert live.total_rows == 53 and live.buffer.data["value"].tolist() == [0.9, 0.8, 0.7]  # kept and counted


# ------------------------------------------------------------------------------------------ trade-offs
def test_pareto_front_hand_case():
    df = pd.DataFrame({
        "spikes": [10, 20, 30, 15, 40, 20, 5, np.nan],
        "accuracy": [0.5, 0.8, 0.9, 0.4, 0.85, 0.8, 0.2, 1.0],
    }, index=list("abcdefgh"))
    # minimise spikes, maximise accuracy: g (5, .2), a (10, .5), b/f (20, .8, duplicates), c (30, .9)
    front = pareto_front(df, "spikes", "accuracy", maximize_x=False, maximize_y=True)
    assert front.index.tolist() == ["g", "a", "b", "f", "c"]
    assert pareto_front(df, "spikes", "accuracy").index.tolist() == ["g", "a", "b", "f", "c"]  # guessed directions
    # maximise both: e (40, .85) and c (30, .9)
    both = pareto_front(df, "spikes", "accuracy", maximize_x=True, maximize_y=True)
    assert both.index.tolist() == ["c", "e"]
    # minimise both: only g (5, .2)
    assert pareto_front(df, "spikes", "accuracy", maximize_x=False, maximize_y=False).index.tolist() == ["g"]
    with pytest.raises(ValueError, match="maximize"):
        pareto_front(df.rename(columns={"spikes": "foo"}), "foo", "accuracy")


@pytest.mark.parametrize("column,larger_is_better", [
    ("accuracy", True), ("rounded/accuracy", True), ("robustness.gaussian", True), ("macs_per_sample", False),
    ("spikes_per_layer/1", False), ("rounded.x/synops_per_sample", False), ("latency_steps", False),
    # sweep-table columns (metric_columns offers them): accuracy anywhere / robust -> maximise
    ("robust_accuracy_deletion_0.3", True), ("robust_accuracy_jitter_2", True), ("test_accuracy", True),
    ("rounded_test_accuracy", True), ("rounded/test_accuracy", True),
])
def test_better_direction_reads_the_innermost_known_part_of_a_name(column, larger_is_better):
    from snnlab.viz import better_direction

    assert better_direction(column) is larger_is_better


def test_better_direction_refuses_names_that_do_not_tell():
    from snnlab.viz import better_direction

    for column in ("n_samples", "seed", "score"):
        with pytest.raises(ValueError, match="maximize"):
            better_direction(column)


@pytest.mark.parametrize("column", ["config.time_steps", "config.time_limit", "config.spikes_target"])
def test_direct_plots_never_guess_the_direction_of_a_config_column(column):
    # a config column is a setting: 'time_steps' reads as a cost, but nothing says fewer steps is better
    from snnlab.viz import better_direction
    from snnlab.viz.pareto import known_direction

    df = pd.DataFrame({column: [5.0, 9.0, 7.0], "accuracy": [0.8, 0.9, 0.7]})
    with pytest.raises(ValueError, match="setting, not an outcome"):
        better_direction(column)
    assert known_direction(column) is None
    with pytest.raises(ValueError, match="maximize_x"):
        pareto_front(df, column, "accuracy")
    with pytest.raises(ValueError, match="maximize_x"):
        tradeoff_scatter(df, column, "accuracy")
    assert pareto_front(df, column, "accuracy", maximize_x=False).index.tolist() == [0, 1]  # told: a front
    assert len(tradeoff_scatter(df, column, "accuracy", front=False)) == 1  # no front: nothing to guess


def test_a_sweep_tables_setting_column_gets_no_direction_from_its_words():
    """A sweep table names its grid columns by field (``max_spikes``), without ``config.``; before, the whole-word
    rule read ``spikes`` in it as a cost, so metric_columns offered a setting as an axis and the front minimised it."""
    from snnlab.viz import better_direction
    from snnlab.viz.pareto import known_direction, metric_columns

    table = pd.DataFrame({"max_spikes": [1, 2, 4], "accuracy": [0.7, 0.8, 0.9], "test_loss": [0.5, 0.4, 0.3]})
    with pytest.raises(ValueError, match="maximize_x"):
        better_direction("max_spikes")
    assert known_direction("max_spikes") is None
    assert metric_columns(table) == ["accuracy", "test_loss"]
    with pytest.raises(ValueError, match="maximize_x"):
        pareto_front(table, "max_spikes", "accuracy")
    # field names that are also metric names keep the direction they had: a loss is a cost, precision a gain
    assert (better_direction("loss"), better_direction("precision")) == (False, True)


def test_pareto_front_of_robustness_columns_maximises_them():
    # the reviewer's p10: a sweep table with a robustness column; both accuracies are to be maximised
    df = pd.DataFrame({"robust_accuracy_deletion_0.3": [0.5, 0.8, 0.6], "test_accuracy": [0.9, 0.9, 0.9],
                       "spikes_per_sample": [10.0, 20.0, 30.0]})
    assert pareto_front(df, "robust_accuracy_deletion_0.3", "test_accuracy").index.tolist() == [1]
    # robustness against spikes: (0.5, 10) and (0.8, 20) trade off, (0.6, 30) is dominated by (0.8, 20)
    assert pareto_front(df, "spikes_per_sample", "robust_accuracy_deletion_0.3").index.tolist() == [0, 1]
    from snnlab.viz.pareto import metric_columns
    assert metric_columns(df) == ["spikes_per_sample", "robust_accuracy_deletion_0.3", "test_accuracy"]


def test_metric_columns_offer_only_metrics_with_a_known_direction():
    from snnlab.viz.pareto import metric_columns

    df = pd.DataFrame({"run_id": ["a"], "n_samples": [10], "accuracy": [0.9], "macs_per_sample": [3.0],
                       "spikes_per_layer/1": [2.0], "config.seed": [0], "robustness/gaussian": [0.5],
                       "latency_steps": [np.nan]})
    assert metric_columns(df) == ["accuracy", "robustness/gaussian", "macs_per_sample", "spikes_per_layer/1"]


@pytest.mark.parametrize("mx,my", [(False, True), (True, True), (False, False), (True, False)])
def test_pareto_front_matches_brute_force(mx, my):
    rng = np.random.default_rng(int(mx) * 2 + int(my))
    df = pd.DataFrame({"a": rng.integers(0, 6, 60).astype(float), "b": rng.integers(0, 6, 60).astype(float)})
    v = df.to_numpy() * np.array([1 if mx else -1, 1 if my else -1])
    brute = [i for i in range(len(v)) if not np.any(np.all(v >= v[i], 1) & np.any(v > v[i], 1))]
    assert sorted(pareto_front(df, "a", "b", mx, my).index) == brute


def test_tradeoff_scatter_hover_and_front():
    df = pd.DataFrame({
        "run_id": ["a", "b", "c", "d"], "name": ["A", "B", "C", "D"],
        "config.lr": [1e-3, 1e-2, 1e-1, 1e-2], "config.neuron": ["lif", "lif", "alif", "alif"],
        "config.layers": ["[64, 64]", "[128]", "[32]", "[64]"],
        "accuracy": [0.8, 0.9, 0.7, 0.6], "synops_per_sample": [100.0, 300.0, 200.0, 250.0],
    })
    plot = tradeoff_scatter(df, "synops_per_sample", "accuracy", color="neuron")
    scatter = plot.Scatter.Runs
    assert len(scatter) == 4
    assert "config.lr" in [d.name for d in scatter.vdims]
    front = plot.Curve.Pareto_front
    assert front.dimension_values("synops_per_sample").tolist() == [100.0, 300.0]
    fig = render(plot)
    hovers = [t for t in fig.tools if type(t).__name__ == "HoverTool"]
    labels = {lab for t in hovers for lab, _ in (t.tooltips or [])}
    assert {"config.lr", "config.neuron", "name"} <= labels
    numeric = tradeoff_scatter(df, "synops_per_sample", "accuracy", color="lr",
                               hover=["name"], front=False)
    assert len(numeric) == 1
    render(numeric)


def test_robustness_plot_curves():
    rows = []
    for run, drop in (("r1", 0.1), ("r2", 0.2)):
        for kind in ("jitter", "deletion"):
            for level in (0.0, 0.5, 1.0):
                rows.append((run, kind, level, 0.9 - drop * level, 100))
    df = pd.DataFrame(rows, columns=["run_id", "perturbation", "level", "accuracy", "n_samples"])
    layout = robustness_plot(df)
    assert len(layout) == 2
    jit = layout.NdOverlay.Jitter
    assert set(jit.keys()) == {"r1", "r2"}
    np.testing.assert_allclose(jit["r2"].dimension_values("accuracy"), [0.9, 0.8, 0.7])
    flat = robustness_plot(df, split=False)
    assert isinstance(flat, hv.NdOverlay) and len(flat) == 4
    render(layout)
    render(flat)


# ------------------------------------------------------------------------------------------ events
def test_event_frame_modes():
    f = torch.zeros(2, 6, 8)
    f[1, 2, 5] = 4.0   # ON at row 2, column 5
    f[0, 3, 1] = 2.0   # OFF at row 3, column 1
    rgb = event_frame(f)
    assert isinstance(rgb, hv.RGB)
    r = rgb.dimension_values("R", flat=False)
    b = rgb.dimension_values("B", flat=False)
    assert r.shape == (6, 8)
    assert r[2, 5] == pytest.approx(1.0) and r[3, 1] == pytest.approx(0.5 * 0.1)
    assert b[3, 1] == pytest.approx(0.5 * 1.0)
    signed = event_frame(f, mode="signed")
    z = signed.dimension_values("on_minus_off", flat=False)
    np.testing.assert_array_equal(z, (f[1] - f[0]).numpy())
    assert signed[5, 2] == 4.0 and signed[1, 3] == -2.0
    counts = event_frame(f[1])
    assert counts.dimension_values("events").sum() == 4.0
    assert event_frame(f, mode="counts").dimension_values("events").sum() == 6.0
    with pytest.raises(ValueError):
        event_frame(torch.zeros(3, 4, 4))
    for el in (rgb, signed, counts):
        render(el)


def test_event_animation_frames():
    frames = torch.rand(7, 2, 5, 6)
    hm = event_animation(frames, mode="signed")
    assert isinstance(hm, hv.HoloMap) and len(hm) == 7
    assert list(hm.keys()) == list(range(7))
    np.testing.assert_allclose(hm[3].dimension_values("on_minus_off", flat=False),
                               (frames[3, 1] - frames[3, 0]).numpy(), rtol=1e-6)
    assert hm[0].opts.get().kwargs["clim"] == hm[6].opts.get().kwargs["clim"]  # one scale for all frames
    batch = torch.rand(4, 3, 2, 5, 6)
    assert len(event_animation(batch, sample=2, dt=1e-3)) == 4
    dm = event_animation(frames, dynamic=True)
    assert isinstance(dm, hv.DynamicMap)
    assert dm[2].dimension_values("R", flat=False).shape == (5, 6)
    render(hm)
    render(dm)


def test_theme_is_the_single_source():
    assert viz.theme.CATEGORICAL and viz.theme.MAX_POINTS > 0
    pts = spike_raster(torch.eye(4))
    assert pts.opts.get().kwargs["color"] == viz.theme.SPIKE_COLOR


def test_plots_of_a_recording_without_time_steps():
    empty = torch.zeros(0, 2, 5)
    assert len(spike_raster(empty, sample=1)) == 0
    with pytest.raises(ValueError, match="no time steps"):
        sl.viz.rate_histogram(empty)
    assert sl.viz.spike_count_histogram(empty).dimension_values("neurons").sum() == 10  # 2 samples x 5 silent neurons


def test_tradeoff_scatter_refuses_one_metric_on_both_axes():
    df = pd.DataFrame({"accuracy": [0.8, 0.9], "spikes_per_sample": [1.0, 2.0]})
    with pytest.raises(ValueError, match="two different metrics"):
        tradeoff_scatter(df, "accuracy", "accuracy")


def test_piped_plot_updates_one_figure_whose_axes_follow_the_data():
    from snnlab.viz import PipedPlot

    def frame(k):
        return (hv.Curve(np.arange(10) * k) * hv.HLine(1.0)).opts(title=f"x{k}", backend="bokeh")

    import holoviews.plotting.bokeh  # noqa: F401 - the backend (options need a loaded plotting extension)

    live = PipedPlot(frame(1))
    plot = hv.renderer("bokeh").get_plot(live.dmap)
    fig = plot.state
    assert live.update(frame(10)) is False  # same structure: the same DynamicMap, the same figure
    assert plot.state is fig and fig.title.text == "x10"
    assert fig.y_range.end > 80  # every layer framewise: an overlay kept the first frame's axes
    assert live.update(hv.Scatter([1, 2])) is True and live.dmap is not plot.hmap


# ------------------------------------------------------------------------------------------ legends and ranges
def _legends(fig):
    """(where, number of items) of each visible legend of a rendered Bokeh figure."""
    placed = {id(r): side for side in ("below", "right", "left", "above") for r in getattr(fig, side)}
    return [(placed.get(id(lg), "inside"), len(lg.items)) for lg in fig.legend if lg.visible and lg.items]


def test_rasters_have_no_legend_over_the_spikes(recorded):
    # one colour: no legend box (it showed the label "1" over the spikes)
    plot = spike_raster(spikes()[:, 0], label="layer 1")
    assert hv.Store.lookup_options("bokeh", plot, "plot").kwargs.get("show_legend") is False
    assert _legends(render(plot)) == []
    one_layer = monitor_raster(recorded, layers=["1"])
    assert _legends(render(one_layer)) == []
    # several layers: the legend lists them below the plot, not inside it
    both = monitor_raster(recorded)
    assert {where for where, _ in _legends(render(both))} == {"below"}


def test_tradeoff_scatter_legend_is_below_the_runs():
    df = pd.DataFrame({"model": ["a", "b", "c"], "accuracy": [0.8, 0.9, 0.7],
                       "spikes_per_sample": [100.0, 300.0, 200.0]})
    for plot in (tradeoff_scatter(df, "spikes_per_sample", "accuracy"),
                 tradeoff_scatter(df, "spikes_per_sample", "accuracy", color="model")):
        legends = _legends(render(plot))
        assert legends and all(where == "below" for where, _ in legends)  # was inside, bottom right


def test_membrane_traces_keep_the_threshold_in_view_and_the_legend_outside():
    v = torch.linspace(-1.0, 0.2, 30)[:, None].repeat(1, 3)  # stays well below the threshold
    plot = membrane_traces(v, (v >= 1.0).float(), neurons=[0], threshold=1.0)
    fig = render(plot)
    assert fig.y_range.start <= -1.0 and fig.y_range.end > 1.0  # the threshold line is drawn
    assert {where for where, _ in _legends(fig)} == {"right"}  # beside the plot area, not over the traces
    per_neuron = membrane_traces(v, neurons=[0, 1], threshold=torch.tensor([1.5, 2.0, 9.0]))
    assert render(per_neuron).y_range.end > 2.0


def test_delay_evolution_tells_the_synapses_of_one_layer_apart(layer):
    hist = pd.concat([delay_snapshot(layer, step=s) for s in range(3)])
    ids = ["0-0", "0-1", "1-0", "1-1"]
    left = delay_evolution(hist, synapses=ids)[0]
    curves = [c for c in left if isinstance(c, hv.Curve) and str(c.label).endswith(tuple(ids))]
    assert len(curves) == 4
    colors = {hv.Store.lookup_options("bokeh", c, "style").kwargs["color"] for c in curves}
    assert len(colors) == 4  # they were all the layer's colour
    mean = next(c for c in left if str(c.label).endswith("mean"))
    assert hv.Store.lookup_options("bokeh", mean, "style").kwargs["color"] not in colors


def test_overlapping_follows_forward_each_row_once():
    """Dashboard probe: with two trainings on 2 cores, the page's polls (Panel's thread pool) overlapped and forwarded
    the same rows twice: 423 rows for 372 steps, lines jumping back."""
    import threading
    import time

    from snnlab.viz import LiveCurves

    source, page = LiveCurves(), LiveCurves()
    page.follow(source)
    slow_send = page.send_table
    page.send_table = lambda df: (time.sleep(0.05), slow_send(df))  # a busy machine
    for step in range(1, 41):
        source.send(step, {"loss": 1.0 / step})
        if step % 10 == 0:
            threads = [threading.Thread(target=page.follow, args=(source,)) for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    steps = page.buffer.data["step"]
    assert len(steps) == 40 and steps.is_unique


# ------------------------------------------------------------------------------------------ long runs (scale)
def _long_run(n=200_000, spike_at=123_457, dip_at=7_001):
    """A tidy table of one run's loss of ``n`` steps with one spike and one dip, and a short eval series."""
    rng = np.random.default_rng(0)
    loss = 2.0 * np.exp(-np.arange(n) / 40_000) + 0.01 * rng.standard_normal(n)
    loss[spike_at], loss[dip_at] = 9.0, -5.0
    train = pd.DataFrame({"run_id": "long", "step": np.arange(n), "kind": "train", "name": "loss", "value": loss})
    ev = pd.DataFrame({"run_id": "long", "step": [n // 2, n - 1], "kind": "eval", "name": "loss", "value": [0.5, 0.4]})
    return pd.concat([train, ev], ignore_index=True)


def test_downsample_minmax_bounds_points_keeps_ends_and_extremes_and_leaves_short_series_alone():
    from snnlab.viz.curves import MAX_CURVE_POINTS, downsample_minmax

    x = np.arange(200_000)
    y = np.sin(x / 5000.0)
    y[150_001], y[3] = 50.0, -50.0
    y[10:20] = np.nan  # never chosen over the numbers of its bucket
    xs, ys = downsample_minmax(x, y)
    assert 2 < len(xs) <= MAX_CURVE_POINTS and np.all(np.diff(xs) > 0)  # a subset, in order
    assert (xs[0], xs[-1]) == (0, 199_999) and ys.max() == 50.0 and ys.min() == -50.0
    assert xs[np.argmax(ys)] == 150_001 and not np.isnan(ys).any()
    np.testing.assert_array_equal(ys, y[xs])  # real points, not averages
    # each bucket's extremes: the sine's range is kept as well as the spikes
    assert np.nanmax(ys[ys < 50]) == pytest.approx(np.nanmax(y[y < 50]))
    short_x, short_y = np.arange(MAX_CURVE_POINTS), np.cos(np.arange(MAX_CURVE_POINTS))
    same_x, same_y = downsample_minmax(short_x, short_y)
    assert same_x is short_x and same_y is short_y  # at the bound: unchanged
    assert len(downsample_minmax(x, y, max_points=None)[0]) == len(x)
    assert len(downsample_minmax(np.arange(7), np.arange(7.0), max_points=5)[0]) <= 5
    with pytest.raises(ValueError):
        downsample_minmax(x, y, max_points=3)


def test_learning_curves_of_a_200k_step_run_send_bounded_points_with_spikes_and_no_string_columns():
    from bokeh.models import HoverTool

    from snnlab.viz.curves import MAX_CURVE_POINTS

    df = _long_run()
    (loss,) = learning_curves(df)
    train = loss["train"]
    assert len(train) <= MAX_CURVE_POINTS and len(loss["eval"]) == 2
    steps, values = train.dimension_values("step"), train.dimension_values("value")
    assert steps[0] == 0 and steps[-1] == 199_999
    assert values.max() == 9.0 and values.min() == -5.0  # the spike and the dip stay visible
    assert steps[values.argmax()] == 123_457 and steps[values.argmin()] == 7_001
    full = learning_curves(df, max_points=None)
    assert len(full.NdOverlay.I["train"]) == 200_000
    # two runs in one panel: no per-point copy of the run id / kind in the data sent to the browser
    two = pd.concat([df, df.assign(run_id="other")], ignore_index=True)
    fig = render(learning_curves(two, labels={"long": "my run"}).NdOverlay.I)
    columns = {k for r in fig.renderers for k in r.data_source.data}
    assert columns == {"step", "value"}
    rows = [len(r.data_source.data["step"]) for r in fig.renderers]
    assert len(rows) == 4 and max(rows) <= MAX_CURVE_POINTS
    assert {r.name for r in fig.renderers} == {"my run, train", "my run, eval", "other, train", "other, eval"}
    legend = {item.label.value for item in fig.legend[0].items}
    assert legend == {r.name for r in fig.renderers}  # the series are told apart by the legend...
    (hover,) = fig.select(type=HoverTool)
    assert hover.tooltips[0] == ("run_id, kind", "$name")  # ...and by hover, from the renderer's name


def test_learning_curves_below_the_bound_are_unchanged_and_split_by_metric_in_one_pass(monkeypatch):
    df = _metrics_table()
    layout, full = learning_curves(df), learning_curves(df, max_points=None)
    for a, b in zip(layout, full):
        for key in b.keys():
            np.testing.assert_array_equal(a[key].dimension_values("value"), b[key].dimension_values("value"))
            np.testing.assert_array_equal(a[key].dimension_values("step"), b[key].dimension_values("step"))
    # many metrics: no comparison of the whole name column per metric (quadratic in rows x metrics)
    many = pd.DataFrame({"step": np.tile(np.arange(50), 40), "name": np.repeat([f"m{i}" for i in range(40)], 50),
                         "value": np.arange(2000.0)})
    compared = []
    eq = pd.Series.__eq__
    monkeypatch.setattr(pd.Series, "__eq__", lambda s, o: (compared.append(len(s)), eq(s, o))[1])
    layout = learning_curves(many)
    assert len(layout) == 40 and [k for k in compared if k == len(many)] == []
    assert list(layout)[7].dimension_values("value").tolist() == list(np.arange(350.0, 400.0))


def test_live_curves_draw_bounded_points_and_keep_every_row_in_the_buffer():
    from snnlab.viz.curves import MAX_CURVE_POINTS

    live = LiveCurves(groups={"loss": ["loss", "test_loss"]}, buffer_length=100_000)
    steps = np.arange(1, 30_001)
    loss = 1.0 / steps
    loss[20_000] = 7.0
    live.send_table(pd.DataFrame({"step": steps, "name": "loss", "value": loss}))
    live.send(30_000, {"test_loss": 0.3})
    assert len(live.buffer.data) == 30_001  # the rows are all kept; only the drawing is thinned
    drawn = live.plots["loss"][()].get(0)["loss"]
    assert len(drawn) <= MAX_CURVE_POINTS and drawn.dimension_values("value").max() == 7.0
    assert drawn.dimension_values("step")[[0, -1]].tolist() == [1.0, 30_000.0]
    fig = render(live.plots["loss"])
    assert {k for r in fig.renderers for k in r.data_source.data} == {"step", "value"}
    assert max(len(r.data_source.data["step"]) for r in fig.renderers) <= MAX_CURVE_POINTS
    unbounded = LiveCurves(metrics=["loss"], buffer_length=100_000, max_points=None)
    unbounded.send_table(pd.DataFrame({"step": steps, "name": "loss", "value": loss}))
    assert len(unbounded.plot[()].get(0)["loss"]) == 30_000


def test_activation_sparsity_is_a_gain_and_a_trade_off_axis():
    import pandas as pd

    from snnlab.viz.pareto import better_direction, metric_columns

    assert better_direction("activation_sparsity") is True and better_direction("spikes_per_sample") is False
    df = pd.DataFrame({"accuracy": [0.5, 0.6], "activation_sparsity": [0.9, 0.8], "n_samples": [10, 10]})
    assert metric_columns(df) == ["accuracy", "activation_sparsity"]


def test_live_curves_without_metrics_can_be_shown_before_any_data():
    """Widget probe: LiveCurves() shown before its first send could not draw (SkipRendering), and every later
    send raised inside the stream: the plot stayed broken. It now starts with the trainer's metrics."""
    import warnings as _warnings

    from snnlab.viz.curves import TRAINING_METRICS

    live = LiveCurves()
    plot = hv.renderer("bokeh").get_plot(live.plot)  # a persistent plot, as a notebook or a served page keeps
    live.send(1, {"loss": 0.5, "accuracy": 0.2})
    live.send(2, {"loss": 0.4, "test_accuracy": 0.3})
    drawn = {}  # (a test metric is drawn twice: its line and its markers)
    for r in plot.state.renderers:
        data = getattr(getattr(r, "data_source", None), "data", {})
        if "value" in data and len(data["value"]):
            drawn.setdefault(r.name, set()).update(float(v) for v in data["value"])
    assert drawn == {"loss": {0.5, 0.4}, "accuracy": {0.2}, "test_accuracy": {0.3}}
    assert set(TRAINING_METRICS) >= {"loss", "accuracy", "test_accuracy"}
    with pytest.warns(UserWarning, match=r"\['lr'\] arrived after the plot was first drawn"):
        live.send(3, {"loss": 0.3, "lr": 1e-3})
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")
        live.send(4, {"lr": 1e-3})  # warned once per metric
    assert len(live.buffer.data) == 7  # every row is kept


def test_live_curves_without_metrics_drawn_after_data_keep_the_first_metrics():
    live = LiveCurves()
    live.send(1, {"acc": 0.5})
    hv.renderer("bokeh").get_plot(live.plot)
    live.send(2, {"loss": 0.3, "test_accuracy": 0.4})  # the trainer's metrics have their curves from the start
    with pytest.warns(UserWarning, match=r"\['lr'\] arrived after"):
        live.send(3, {"lr": 0.3})


def test_a_colour_column_spanning_decades_is_drawn_on_a_log_scale():
    """Widget probe: an lr sweep of 1e-4, 1e-3, 1e-1 on a linear colour bar gave its two small rates one colour."""
    import pandas as pd

    from snnlab import viz

    df = pd.DataFrame({"accuracy": [0.9, 0.8, 0.7], "spikes_per_sample": [100.0, 80.0, 50.0],
                       "config.lr": [1e-4, 1e-3, 1e-1], "config.hidden_width": [64, 128, 256]})
    mappers = {}
    for column in ("lr", "hidden_width"):
        fig = hv.render(viz.tradeoff_scatter(df, "spikes_per_sample", "accuracy", color=column), backend="bokeh")
        mappers[column] = type(fig.right[0].color_mapper).__name__
    assert mappers == {"lr": "LogColorMapper", "hidden_width": "LinearColorMapper"}


def test_membrane_traces_refuse_a_threshold_per_neuron_of_another_length():
    from snnlab.viz import membrane_traces

    with pytest.raises(ValueError, match=r"one value or one per neuron \(4\), got 2 values"):
        membrane_traces(torch.randn(10, 4), threshold=[1.0, 2.0])
    membrane_traces(torch.randn(10, 4), threshold=[1.0, 2.0, 1.5, 1.0])  # one per neuron


def test_edge_inputs_of_rasters_events_and_delay_plots_get_clear_answers():
    """Widget probe: a ZeroDivisionError, a render-time AttributeError and raw IndexErrors."""
    import snnlab as sl
    from snnlab.viz import event_animation, gaussian_kernels, spike_raster

    hv.render(spike_raster(torch.zeros(0, 20), method="image"), backend="bokeh")  # no steps: an empty raster
    with pytest.raises(ValueError, match="no time steps"):
        event_animation(torch.zeros(0, 2, 4, 4))
    with pytest.raises(IndexError, match="sample 5 out of range for a batch of 2"):
        event_animation(torch.zeros(3, 2, 2, 4, 4), sample=5)
    layer = sl.DelayedLinear(6, 3, max_delay=5, seed=0)
    with pytest.raises(ValueError, match=r"synapses \[\(5, 0\)\] are outside the layer's 3 outputs x 6 inputs"):
        gaussian_kernels(layer, synapses=[(5, 0)])
    with pytest.raises(ValueError, match="synapses is empty"):
        gaussian_kernels(layer, synapses=[])
    with pytest.raises(ValueError, match=r"outside the layer's 3 outputs"):
        delay_snapshot(layer, 0, synapses=[(9, 9)])
    assert len(delay_snapshot(layer, 0, synapses=[])) == 0
