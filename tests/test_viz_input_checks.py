"""Plot functions with long recordings and odd arguments: membrane traces thinned like the learning curves, clear
errors from the delay plots, whole-word metric names in better_direction; per-neuron thresholds broadcast as the layer
broadcasts them; wrong containers (a Monitor, its dict, the model, one result) refused with a TypeError saying what to
pass, a list of row dicts taken as a table."""
from __future__ import annotations

import warnings

import holoviews as hv
import numpy as np
import pytest
import torch

import snnlab as sl
from snnlab import viz
from snnlab.viz.curves import MAX_CURVE_POINTS
from snnlab.viz.pareto import better_direction, known_direction


def _sources(fig, glyph: str = "Line") -> list[dict]:
    """The data sent to the browser for the renderers of one glyph type (``Line``: curves, ``Scatter``: marks)."""
    return [r.data_source.data for r in fig.renderers if type(r.glyph).__name__ == glyph]


# --- membrane traces of long recordings ------------------------------------------------------------------------

def _long_recording(T: int = 20_000, N: int = 3):
    rng = np.random.default_rng(0)
    v = rng.normal(0.0, 0.1, size=(T, N))
    v[T // 4, 0] = 7.0    # a peak and a dip that must stay visible
    v[T - T // 5, N - 1] = -5.0
    spikes = np.zeros((T, N))
    spikes[::7, N - 1] = 1.0  # a neuron firing every 7th step (2858 spikes in 20k steps)
    spikes[T // 4, 0] = 1.0
    return v, spikes


def test_membrane_traces_of_a_long_recording_send_at_most_max_curve_points_per_curve():
    v, spikes = _long_recording()
    fig = hv.render(viz.membrane_traces(v, spikes), backend="bokeh")
    curves = _sources(fig)
    assert len(curves) == 4  # three neurons and the threshold line
    assert max(len(d["time"]) for d in curves) <= MAX_CURVE_POINTS
    every = np.concatenate([np.asarray(d["v"]) for d in curves])
    assert every.max() == 7.0 and every.min() == -5.0  # the peak and the dip are drawn
    first = [d for d in curves if v.shape[0] // 4 in np.asarray(d["time"])]
    assert first and 0 in np.asarray(first[0]["time"]) and v.shape[0] - 1 in np.asarray(first[0]["time"])
    marks = _sources(fig, "Scatter")
    assert len(marks) == 1 and len(marks[0]["time"]) <= MAX_CURVE_POINTS  # the spike marks are thinned too
    assert v.shape[0] // 4 in np.asarray(marks[0]["time"])  # a lone spike keeps its mark
    times = np.asarray(marks[0]["time"])[np.asarray(marks[0]["neuron"]) == 2]
    assert times.max() - times.min() > 0.99 * (v.shape[0] - 8)  # the firing neuron shows over the whole recording


def test_membrane_traces_max_points_none_draws_every_step_and_short_recordings_are_untouched():
    v, spikes = _long_recording(T=5_000, N=1)
    full = hv.render(viz.membrane_traces(v, threshold=None, max_points=None), backend="bokeh")
    assert [len(d["time"]) for d in _sources(full)] == [5_000]
    short = viz.membrane_traces(v[:300], spikes[:300])
    assert len(short.get(0)[0].dimension_values("time")) == 300


def test_moving_thresholds_of_a_long_recording_are_thinned():
    v, _ = _long_recording(T=20_000, N=2)
    thr = 1.0 + np.abs(v)
    plot = viz.membrane_traces(v, threshold=thr, max_points=400)
    lines = [e for e in plot if e.label == "threshold"]
    assert len(lines) == 2 and all(len(e) <= 400 for e in lines)
    assert max(float(e.dimension_values("v").max()) for e in lines) == 8.0  # 1 + the 7.0 peak


def test_monitor_traces_passes_max_points():
    net = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF())
    with sl.Monitor(net) as mon:
        net(torch.rand(600, 1, 3) * 3)
    plot = viz.monitor_traces(mon, "1", neurons=[0], max_points=100)
    assert len(plot.get(0)[0]) <= 100


@pytest.mark.parametrize("bad,error", [(3, ValueError), (0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_membrane_traces_refuse_a_bad_max_points(bad, error):
    with pytest.raises(error, match="membrane_traces: max_points"):
        viz.membrane_traces(np.zeros((10, 2)), max_points=bad)


# --- delay plots -----------------------------------------------------------------------------------------------

@pytest.fixture
def layer():
    return sl.DelayedLinear(3, 2, max_delay=6, seed=0)


def test_delay_histogram_leaves_out_nan_delays_and_says_so():
    h = viz.delay_histogram(torch.tensor([1.5, 2.5, float("nan"), float("inf")]))
    assert int(h.dimension_values("synapses").sum()) == 2
    fig = hv.render(h, backend="bokeh")
    assert fig.title.text == "2 of 4 delays not finite, not drawn"
    everything_nan = viz.delay_histogram(np.full(3, np.nan))
    assert int(everything_nan.dimension_values("synapses").sum()) == 0


@pytest.mark.parametrize("rounded", [True, False])
def test_delay_histogram_of_a_diverged_layer_counts_only_its_finite_delays(layer, rounded):
    with torch.no_grad():
        layer.positions[0, 0] = float("nan")  # layer.delays is garbage (-2**63) there
    h = viz.delay_histogram(layer, rounded=rounded)
    assert int(h.dimension_values("synapses").sum()) == 5
    assert "1 of 6 delays not finite" in hv.render(h, backend="bokeh").title.text


def test_delay_matrix_and_snapshot_of_a_diverged_layer_show_no_garbage_delay(layer):
    """Before: a NaN position's rounded delay was ``layer.delays``' garbage, -2**63: the matrix's colour range went
    to -9.2e18 and the history's ``delay`` column held it."""
    with torch.no_grad():
        layer.positions[1, 2] = float("nan")
    for rounded in (True, False):
        d = viz.delay_matrix(layer, rounded=rounded).dimension_values("delay", flat=False)
        assert np.isnan(d[1, 2]) and np.isfinite(np.delete(d.ravel(), 5)).all()
        assert np.nanmin(d) >= 0 and np.nanmax(d) <= layer.max_delay - 1
    rows = viz.delay_snapshot(layer, step=0).set_index("synapse")
    assert rows.loc["1-2", "delay"] == -1 and rows["delay"].min() == -1 and rows["delay"].max() <= 5
    assert rows.drop("1-2")["delay"].tolist() == np.round(rows.drop("1-2")["position"]).astype(int).tolist()


def test_delay_histogram_takes_bins_as_a_one_element_tensor():
    """Before: ``bins=torch.tensor([3])`` passed the check but went to ``np.histogram`` as one edge: no bin at all."""
    values = torch.tensor([0.0, 1.0, 2.0, 3.0])
    for bins in (torch.tensor([3]), np.int64(3), 3):
        assert viz.delay_histogram(values, bins=bins).dimension_values("synapses").tolist() == [1, 1, 2]


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(bins=0), ValueError, "bins must be at least 1"), (dict(bins=2.5), TypeError, "bins must be an int"),
    (dict(rounded="no"), TypeError, "rounded must be True or False"),
])
def test_delay_histogram_refuses_bad_arguments(layer, kwargs, error, match):
    with pytest.raises(error, match=f"delay_histogram: {match}"):
        viz.delay_histogram(layer, **kwargs)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(synapses=-1), ValueError, "synapses .* at least 1, got -1"),
    (dict(synapses=0), ValueError, "synapses .* at least 1, got 0"),
    (dict(synapses=2.5), TypeError, "synapses must be"),
    (dict(synapses=True), TypeError, "synapses .* must be an int"),
    (dict(synapses=[(0, 1, 2)]), TypeError, r"synapses must be \(out, in\) pairs of ints"),
    (dict(synapses=[(0.5, 1)]), TypeError, "an out index must be an int"),
    (dict(step=1.5), TypeError, "step must be an int"),
    (dict(epoch="1"), TypeError, "epoch must be an int"),
    (dict(seed=-1), ValueError, "seed must be at least 0"),
    (dict(name=3), TypeError, "name must be a string"),
])
def test_delay_snapshot_refuses_bad_arguments(layer, kwargs, error, match):
    args = dict(step=0) | kwargs
    with pytest.raises(error, match=f"delay_snapshot: {match}"):
        viz.delay_snapshot(layer, **args)


def test_delay_snapshot_still_takes_numpy_and_tensor_ints(layer):
    df = viz.delay_snapshot(layer, step=np.int64(3), epoch=torch.tensor(1), synapses=[(np.int64(1), 2)])
    assert df[["step", "epoch", "out", "in"]].values.tolist() == [[3, 1, 1, 2]]
    assert len(viz.delay_snapshot(layer, step=0, synapses=np.int32(4))) == 4


@pytest.mark.parametrize("sigma", [-1.0, 0.0, float("nan"), float("inf")])
def test_gaussian_kernels_refuse_a_non_positive_or_non_finite_sigma(layer, sigma):
    with pytest.raises(ValueError, match="gaussian_kernels: sigma must be a finite number above 0"):
        viz.gaussian_kernels(layer, sigma=sigma)


def test_gaussian_kernels_other_arguments(layer):
    with pytest.raises(TypeError, match="gaussian_kernels: sigma must be a number"):
        viz.gaussian_kernels(layer, sigma="1")
    with pytest.raises(TypeError, match="gaussian_kernels: weighted must be True or False"):
        viz.gaussian_kernels(layer, weighted="yes")
    with pytest.raises(TypeError, match="gaussian_kernels: synapses must be"):
        viz.gaussian_kernels(layer, synapses=5)
    fig = hv.render(viz.gaussian_kernels(layer, sigma=torch.tensor(0.5)), backend="bokeh")
    assert fig.title.text == "Gaussian delay kernels (sigma = 0.5)"


def test_delay_matrix_refuses_a_non_bool_rounded(layer):
    with pytest.raises(TypeError, match="delay_matrix: rounded must be True or False"):
        viz.delay_matrix(layer, rounded="False")


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(x="time"), ValueError, "x must be 'step' or 'epoch'"),
    (dict(synapses="0-1"), TypeError, "synapses must be a list"),
    (dict(quantiles=(0.9, 0.1)), ValueError, "quantiles"),
    (dict(quantiles=(0.1, 1.5)), ValueError, "quantiles"),
    (dict(quantiles=0.5), ValueError, "quantiles"),
])
def test_delay_evolution_refuses_bad_arguments(layer, kwargs, error, match):
    hist = viz.delay_snapshot(layer, step=0)
    with pytest.raises(error, match=f"delay_evolution: {match}"):
        viz.delay_evolution(hist, **kwargs)
    with pytest.raises(TypeError, match="delay_evolution: history must be a pandas DataFrame"):
        viz.delay_evolution(hist.to_dict())


# --- better_direction: whole words -----------------------------------------------------------------------------

@pytest.mark.parametrize("column,larger_is_better", [
    ("accumulated_loss", False), ("acc", True), ("acc_test", True), ("acc@1", True), ("test_acc", True),
    ("top1_acc", True), ("val_f1", True), ("f1", True), ("auc", True), ("auc_roc", True), ("test_loss", False),
    ("n_spikes", False), ("epoch_time_s", False), ("rounded/acc@5", True),
])
def test_better_direction_matches_metric_names_as_whole_words(column, larger_is_better):
    assert better_direction(column) is larger_is_better


@pytest.mark.parametrize("column", ["accumulated", "f10_rate", "auction", "accent", "timestamp"])
def test_better_direction_does_not_read_a_metric_into_a_longer_word(column):
    assert known_direction(column) is None
    with pytest.raises(ValueError, match="better_direction: don't know"):
        better_direction(column)


# --- per-neuron thresholds broadcast as the layer broadcasts them ------------------------------------------------

def _threshold_values(plot) -> set[float]:
    return {float(v) for e in plot if e.label == "threshold" for v in e.dimension_values("v")}


def test_monitor_traces_of_per_neuron_thresholds_over_conv_maps_gives_each_neuron_its_own():
    """An LIF(n_neurons=5) fed [T, B, C, H, W=5] maps broadcasts its 5 thresholds over W; the plot refused them
    ('threshold must be one value or one per neuron (40), got 5 values')."""
    torch.manual_seed(0)
    lif = sl.LIF(threshold=0.3, n_neurons=5, learn_threshold=True)
    with torch.no_grad():
        lif.threshold.copy_(torch.tensor([0.25, 0.5, 0.75, 1.0, 1.25]))
    net = sl.Sequential(sl.TimeDistributed(torch.nn.Conv2d(1, 2, 3, padding=1)), lif)
    with sl.Monitor(net) as mon:
        net(torch.rand(10, 2, 1, 4, 5))
    assert tuple(mon.membrane["1"].shape) == (10, 2, 2, 4, 5)
    # flattened neuron i of the [C, H, W] map has the threshold of its W index, i % 5
    assert _threshold_values(viz.monitor_traces(mon, "1", neurons=[3, 6, 12])) == {1.0, 0.5, 0.75}
    assert _threshold_values(viz.monitor_traces(mon, "1", neurons=[0, 5, 10])) == {0.25}
    # thresholds that no layer could broadcast over the maps are still refused
    with pytest.raises(ValueError, match=r"one value or one per neuron \(40\), got 4 values of shape \(4,\), which do "
                                         r"not broadcast over the recording's neuron dimensions \(2, 4, 5\)"):
        viz.membrane_traces(mon.membrane["1"], threshold=[1.0, 2.0, 3.0, 4.0])


def test_monitor_traces_of_a_recurrent_lif_with_an_extra_dimension():
    net = sl.Sequential(torch.nn.Linear(3, 4), sl.RecurrentLIF(4, threshold=0.5))
    with sl.Monitor(net) as mon:
        net(torch.rand(10, 2, 3, 3))  # [T, B, 3, N=4]: the extra dimension acts as more batch
    assert _threshold_values(viz.monitor_traces(mon, "1", neurons=[0, 7, 11])) == {0.5}


# --- wrong containers: a TypeError that says what to pass ---------------------------------------------------------

@pytest.fixture(scope="module")
def recorded():
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(4, 6), sl.LIF(threshold=0.3), torch.nn.Linear(6, 2), sl.LI())
    x, y = (torch.rand(20, 3, 4) < 0.5).float(), torch.tensor([0, 1, 0])
    with sl.Monitor(net) as mon:
        net(x)
    return net, mon, x, y


_SPIKES = r"spike_raster takes one layer's spikes \[T, B, N\] \(or \[T, N\]\) as a tensor or array, got "
_MEMBRANE = r"membrane_traces takes one layer's membrane \[T, B, N\] \(or \[T, N\]\) as a tensor or array, got "


@pytest.mark.parametrize("call, match", [
    (lambda net, mon: viz.spike_raster(mon),
     _SPIKES + r"a Monitor: for a Monitor use monitor_raster\(mon\), or pass one layer's record, e.g. "
               r"mon.spikes\['1'\]"),
    (lambda net, mon: viz.spike_raster(mon.spikes),
     _SPIKES + r"a dict with keys \['1'\]: pass one of its entries, e.g. x\['1'\] \(for every layer of a Monitor: "
               r"monitor_raster\(mon\)\)"),
    (lambda net, mon: viz.membrane_traces(mon),
     _MEMBRANE + r"a Monitor: for a Monitor use monitor_traces\(mon, layer\), or pass one layer's record, e.g. "
                 r"mon.membrane\['1'\]"),
    (lambda net, mon: viz.membrane_traces(None), _MEMBRANE + "None: pass a tensor or array"),
    (lambda net, mon: viz.monitor_raster(net),
     r"monitor_raster takes a snnlab.Monitor \(or its .spikes dict \{layer: \[T, B, N\] tensor\}\), got a Sequential: "
     r"record the model's layers first \(with sl.Monitor\(net\) as mon: net\(x\)\), then call monitor_raster\(mon\)"),
    (lambda net, mon: viz.monitor_traces(net, "1"),
     r"monitor_traces takes a snnlab.Monitor \(or its .membrane dict .*\), got a Sequential: .* then call "
     r"monitor_traces\(mon, layer\)"),
    (lambda net, mon: viz.rate_histogram(mon.spikes),
     r"rate_histogram takes spikes \[T, N\] or time-major \[T, B, ...\] as a tensor or array, got a dict"),
], ids=["spike_raster(mon)", "spike_raster(mon.spikes)", "membrane_traces(mon)", "membrane_traces(None)",
        "monitor_raster(net)", "monitor_traces(net)", "rate_histogram(mon.spikes)"])
def test_plots_of_one_recording_given_a_wrong_container_say_what_to_pass(recorded, call, match):
    """Before: IndexError: tuple index out of range (spike_raster / membrane_traces), TypeError: cannot convert
    dictionary update sequence element #0 to a sequence (monitor_raster of the model), AttributeError otherwise."""
    net, mon, _, _ = recorded
    with pytest.raises(TypeError, match="^" + match):
        call(net, mon)


def test_tradeoff_scatter_and_robustness_plot_take_a_list_of_rows_and_refuse_one_dict(recorded):
    """Before: AttributeError: 'list' (or 'dict') object has no attribute 'columns'."""
    import pandas as pd

    from snnlab.metrics import evaluate

    net, _, x, y = recorded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = evaluate(net, [(x, y)])
    rows = [r, dict(r, accuracy=0.1, spikes_per_sample=r["spikes_per_sample"] / 2)]
    from_rows = viz.tradeoff_scatter(rows, "spikes_per_sample", "accuracy")
    from_table = viz.tradeoff_scatter(pd.DataFrame(rows), "spikes_per_sample", "accuracy")
    assert from_rows.Scatter.runs.data.equals(from_table.Scatter.runs.data)
    assert sorted(from_rows.Scatter.runs.dimension_values("accuracy")) == sorted([r["accuracy"], 0.1])
    with pytest.raises(TypeError, match=r"^tradeoff_scatter takes a table with one row per run \(a pandas DataFrame, "
                                        r"or a list of row dicts\), got a dict with keys \['accuracy', .*\] \(and 2 "
                                        r"more\): pass \[row\] for a single row, or pandas.DataFrame\(columns\) for a "
                                        r"dict of columns$"):
        viz.tradeoff_scatter(r, "spikes_per_sample", "accuracy")
    curve = [{"perturbation": "jitter", "level": 0.0, "accuracy": 0.9},
             {"perturbation": "jitter", "level": 1.0, "accuracy": 0.7}]
    plot = viz.robustness_plot(curve)
    assert plot.NdOverlay.Jitter.last.dimension_values("accuracy").tolist() == [0.9, 0.7]
    with pytest.raises(TypeError, match=r"^robustness_plot takes a table with one row per perturbation level .*, got "
                                        r"a list of 2 DataFrames: join them first with pandas.concat"):
        viz.robustness_plot([pd.DataFrame(curve), pd.DataFrame(curve)])
