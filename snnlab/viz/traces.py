"""Membrane traces with threshold and spike marks; firing-rate and spike-count histograms."""
from __future__ import annotations

from typing import Any, Sequence

import holoviews as hv
import numpy as np
import pandas as pd

from . import theme
from ._util import array_arg, as_time_neuron, ensure_bokeh, monitor_record, to_numpy
from .curves import MAX_CURVE_POINTS, downsample_minmax

__all__ = ["membrane_traces", "monitor_traces", "rate_histogram", "spike_count_histogram"]

_MEMBRANE = "one layer's membrane [T, B, N] (or [T, N]) as a tensor or array"
_SPIKES = "spikes [T, N] or time-major [T, B, ...] as a tensor or array"


def membrane_traces(
    membrane: Any,
    spikes: Any | None = None,
    neurons: Sequence[int] | None = None,
    threshold: Any = 1.0,
    sample: int | None = 0,
    max_neurons: int = 5,
    dt: float | None = None,
    max_points: int | None = MAX_CURVE_POINTS,
) -> hv.Overlay:
    """Membrane potential of a few neurons over time, the firing threshold and the spike times.

    ``membrane`` / ``spikes``: ``[T, N]`` or time-major ``[T, B, N...]`` (``sample`` picks the sample; trailing
    dimensions are flattened into neurons): one layer's tensors or arrays (a :class:`snnlab.Monitor` or its dict of
    layers is a ``TypeError`` pointing to :func:`monitor_traces`).
    ``neurons``: indices to show (default: the first ``max_neurons``). Returns an overlay of an
    ``hv.NdOverlay`` of ``hv.Curve`` (kdim ``neuron``; curve kdims ``time``, vdims ``v``), the thresholds
    (``threshold=None``: none) as dashed ``hv.Curve`` elements labelled ``threshold`` and, with ``spikes``, an
    ``hv.Scatter`` of the spikes at the membrane value of their step (columns ``time, v, neuron``).

    A fixed threshold is one flat curve over the recorded steps per distinct value: one value, one per neuron of the
    flattened recording, or values that broadcast over the recording's neuron dimensions as the layer broadcasts them
    (learnt per-neuron thresholds of an ``LIF(n_neurons=W)`` fed conv maps ``[T, B, C, H, W]``, or of a ``RecurrentLIF``
    fed ``[T, B, K, N]``: one per last-dimension index); an array of the membrane's shape is a threshold that moves,
    e.g. an :class:`~snnlab.ALIF`'s, drawn as one curve per shown neuron (vdims ``v, threshold of``: the neuron shows on
    hover). However many, the thresholds share one legend entry, ``threshold`` (clicking it mutes them all). The y range
    always includes the thresholds; the legend is beside the plot, outside the traces.

    Long recordings (more than ``max_points`` steps, default
    :data:`~snnlab.viz.curves.MAX_CURVE_POINTS`) are drawn thinned, as the learning curves are: each membrane
    (and moving threshold) curve keeps its first and last step and the minimum and maximum of each of
    ``(max_points - 2) // 2`` buckets of consecutive steps (:func:`~snnlab.viz.curves.downsample_minmax`), so
    peaks and resets stay visible and the y range is unchanged; each neuron keeps at most one spike mark (its
    first) in each stretch of about that bucket's length, at the membrane value of its step (so a neuron that fires
    shows where it fires). ``max_points=None`` draws every step.

    Example:
        >>> import torch
        >>> from snnlab.viz import membrane_traces
        >>> v = torch.randn(50, 8).cumsum(0) / 5
        >>> plot = membrane_traces(v, (v >= 1).float(), neurons=[0, 3], threshold=1.0)
        >>> [(type(e).__name__, e.label) for e in plot]
        [('NdOverlay', ''), ('Curve', 'threshold'), ('Scatter', 'spikes')]
    """
    _check_max_points(max_points, "membrane_traces")
    ensure_bokeh()
    m = array_arg(membrane, "membrane_traces", _MEMBRANE, "monitor_traces(mon, layer)", record="membrane")
    v = as_time_neuron(m, sample, "membrane_traces").astype(float)
    T, N = v.shape
    idx = list(range(min(N, max_neurons))) if neurons is None else [int(i) for i in neurons]
    bad = [i for i in idx if not -N <= i < N]
    if bad:
        raise IndexError(f"membrane_traces: neurons {bad} out of range for {N} neurons")
    scale = 1.0 if dt is None else float(dt)
    time = np.arange(T) * scale
    tdim = hv.Dimension("time", label="time [step]" if dt is None else "time", unit=None if dt is None else "s")
    thresholds = np.zeros(0)
    moving = None
    thr = None if threshold is None else array_arg(threshold, "membrane_traces", _THRESHOLD)
    if thr is not None and thr.ndim >= 2:  # a threshold per step: [T, N] or [T, B, N]
        moving = as_time_neuron(thr, sample, "membrane_traces").astype(float)
        if moving.shape != v.shape:
            raise ValueError(f"membrane_traces: a moving threshold must have the membrane's shape {v.shape}, got "
                             f"{moving.shape}")
        thresholds = np.array([moving[:, idx].min(), moving[:, idx].max()]) if T and idx else np.zeros(0)
    elif thr is not None:
        thresholds = np.unique(_fixed_thresholds(thr, m.shape[1:] if m.ndim <= 2 else m.shape[2:])[idx])
    # the y range always takes in the thresholds: a neuron that stays below would lose its line otherwise
    soft: tuple = (None, None)
    if thresholds.size:
        shown = np.concatenate([v[:, idx].ravel(), thresholds])
        shown = shown[np.isfinite(shown)]
        pad = 0.05 * (float(shown.max() - shown.min()) or 1.0) if shown.size else 0.0
        soft = (float(thresholds.min()) - pad, float(thresholds.max()) + pad)
    vdim = hv.Dimension("v", label="membrane", soft_range=soft)
    # a long recording is thinned per curve (first, last, each bucket's min and max): every step of 200k steps
    # and 5 neurons made a 9.6 MB document that blocked the browser
    curves = {i: hv.Curve(downsample_minmax(time, v[:, i], max_points), kdims=[tdim], vdims=[vdim]) for i in idx}
    plot = hv.NdOverlay(curves, kdims=["neuron"])
    layers: list[Any] = [plot]
    if moving is not None:
        layers += [_threshold_curve(*downsample_minmax(time, moving[:, i], max_points), tdim, vdim, neuron=i)
                   for i in idx]
    elif threshold is not None:
        span = (time[0], time[-1]) if T > 1 else (0.0, scale)  # (a line needs two points)
        layers += [_threshold_curve(np.array(span), np.full(2, float(thr)), tdim, vdim) for thr in thresholds]
    if spikes is not None:
        s = as_time_neuron(spikes, sample, "membrane_traces")
        if s.shape != v.shape:
            raise ValueError(f"membrane_traces: spikes {s.shape} and membrane {v.shape} differ in shape")
        t, j = np.nonzero(s[:, idx])
        if max_points is not None and T > max_points:  # at most one mark (the first) per neuron and bucket
            size = -(-T // max(1, (max_points - 2) // 2))
            _, first = np.unique(np.stack([j, t // size]), axis=1, return_index=True)
            first = np.sort(first)
            t, j = t[first], j[first]
        cols = np.asarray(idx, dtype=int)[j]
        marks = pd.DataFrame({"time": t * scale, "v": v[t, cols], "neuron": cols})
        layers.append(hv.Scatter(marks, kdims=[tdim], vdims=[vdim, "neuron"], label="spikes").opts(
            marker="triangle", size=8, color=theme.SPIKE_COLOR, tools=["hover"], backend="bokeh"))
    # the legend (one entry per neuron, and the spikes) beside the plot, outside the traces: below it, it
    # would take the height of the plot area in the fixed-height panes that show membranes
    return hv.Overlay(layers).opts(width=theme.WIDTH, height=theme.HEIGHT, legend_position="right", backend="bokeh")


_THRESHOLD = "a threshold: one value, one per neuron, or one per step and neuron, as a number, tensor or array"


def _fixed_thresholds(thr: np.ndarray, neurons: tuple[int, ...]) -> np.ndarray:
    """One fixed threshold per neuron of a recording whose neuron dimensions are ``neurons`` (flattened, as the plot
    flattens them): one value for all, one per neuron, or values that broadcast over ``neurons`` as the layer
    broadcasts its threshold (an ``LIF(n_neurons=W)``'s over the last dimension of ``[C, H, W]`` maps)."""
    n = int(np.prod(neurons))
    thr = thr.astype(float)
    if thr.size == n:
        return thr.reshape(n)
    try:
        return np.broadcast_to(thr, neurons).reshape(n)
    except ValueError:
        raise ValueError(f"membrane_traces: threshold must be one value or one per neuron ({n}), got {thr.size} values "
                         f"of shape {thr.shape}, which do not broadcast over the recording's neuron dimensions "
                         f"{tuple(neurons)} as a layer broadcasts them (e.g. one per last-dimension index, "
                         f"{neurons[-1] if neurons else 1})") from None


def _check_max_points(max_points: Any, who: str) -> None:
    """``TypeError`` / ``ValueError`` naming ``who`` unless ``max_points`` is ``None`` or an int of at least 4."""
    if max_points is None:
        return
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)):
        raise TypeError(f"{who}: max_points must be an int (at least 4) or None, got {type(max_points).__name__}")
    if max_points < 4:
        raise ValueError(f"{who}: max_points must be at least 4 (first, last, a min and a max) or None, got "
                         f"{max_points}")


def _threshold_curve(time: np.ndarray, values: np.ndarray, tdim: hv.Dimension, vdim: hv.Dimension,
                     neuron: int | None = None) -> hv.Curve:
    """A dashed threshold line labelled ``threshold`` (one legend entry for all of them: HoloViews merges the
    entries of one label); ``neuron``: whose moving threshold it is (a ``threshold of`` column, for hover)."""
    data: tuple = (time, values) if neuron is None else (time, values, np.full(len(time), int(neuron)))
    vdims = [vdim] if neuron is None else [vdim, hv.Dimension("threshold of")]
    return hv.Curve(data, kdims=[tdim], vdims=vdims, label="threshold").opts(
        color=theme.THRESHOLD_COLOR, line_dash="dashed", line_width=1.5, tools=["hover"], backend="bokeh")


def monitor_traces(mon: Any, layer: str, sample: int = 0, neurons: Sequence[int] | None = None,
                   max_neurons: int = 5, dt: float | None = None,
                   max_points: int | None = MAX_CURVE_POINTS) -> hv.Overlay:
    """:func:`membrane_traces` of one layer recorded by a :class:`snnlab.Monitor`.

    A recording of more than ``max_points`` steps is drawn thinned (see :func:`membrane_traces`; ``None``: every
    step).

    The threshold is the one the monitor recorded when it moves (``mon.thresholds[layer]``, an
    :class:`~snnlab.ALIF`'s), else the layer module's (``mon.layers[layer].threshold``) when it has one.

    Example:
        >>> import torch, snnlab as sl
        >>> from snnlab.viz import monitor_traces
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF())
        >>> with sl.Monitor(net) as mon:
        ...     _ = net(torch.rand(20, 2, 4) * 3)
        >>> plot = monitor_traces(mon, "1", neurons=[0, 1])
    """
    membrane = monitor_record(mon, "membrane", "monitor_traces")
    if layer not in membrane:
        raise KeyError(f"monitor_traces: no membrane recorded for {layer!r}; recorded: {list(membrane)}")
    module = getattr(mon, "layers", {}).get(layer)
    thr = getattr(mon, "thresholds", {}).get(layer)
    if thr is None:
        thr = getattr(module, "threshold", None)
    return membrane_traces(membrane[layer], getattr(mon, "spikes", {}).get(layer), neurons=neurons, threshold=thr,
                           sample=sample, max_neurons=max_neurons, dt=dt, max_points=max_points)


def _per_neuron_counts(spikes: Any) -> np.ndarray:
    """Spike counts per (sample, neuron): ``[B, N]`` from ``[T, N]`` (B=1) or ``[T, B, ...]``."""
    a = (to_numpy(spikes) != 0)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim == 2:
        return a.sum(0)[None, :]
    return a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:]))).sum(0)


def _int_bins(values: np.ndarray, bins: int | None) -> Any:
    if bins is not None:
        return bins
    hi = int(values.max()) if values.size else 0
    return np.arange(-0.5, hi + 1.5) if hi <= 60 else 30


def rate_histogram(spikes: Any, dt: float | None = None, bins: int = 20) -> hv.Histogram:
    """Histogram over neurons of the mean firing rate (spikes per step, or Hz with ``dt`` in seconds).

    ``spikes``: ``[T, N]`` or time-major ``[T, B, ...]`` (rates averaged over the batch). Silent
    neurons are counted in the first bin; the vdim ``neurons`` counts neurons.

    Example:
        >>> import torch
        >>> from snnlab.viz import rate_histogram
        >>> h = rate_histogram((torch.rand(100, 4, 64) < 0.1).float(), dt=1e-3)
        >>> int(h.dimension_values("neurons").sum())
        64
    """
    ensure_bokeh()
    a = array_arg(spikes, "rate_histogram", _SPIKES)
    T = a.shape[0]
    if T == 0:
        raise ValueError(f"rate_histogram: spikes of shape {a.shape} have no time steps; rates need T >= 1")
    rates = _per_neuron_counts(a).mean(0) / T
    if dt is not None:
        rates = rates / float(dt)
    lo, hi = (0.0, float(rates.max())) if rates.size else (0.0, 1.0)
    counts, edges = np.histogram(rates, bins=bins, range=(lo, hi if hi > lo else lo + 1.0))
    xdim = hv.Dimension("rate", label="firing rate", unit="Hz" if dt is not None else "spikes/step")
    return hv.Histogram((edges, counts), kdims=[xdim], vdims=["neurons"]).opts(
        color=theme.CATEGORICAL[0], width=theme.WIDTH // 2 + 100, height=theme.HEIGHT, tools=["hover"],
        backend="bokeh")


def spike_count_histogram(spikes: Any, over: str = "neuron", bins: int | None = None) -> hv.Histogram:
    """Histogram of spike counts.

    ``over="neuron"``: one count per (sample, neuron) -- how many neurons fire how often;
    ``over="sample"``: one total per sample. Small integer counts get one bin per integer.

    Example:
        >>> import torch
        >>> from snnlab.viz import spike_count_histogram
        >>> h = spike_count_histogram(torch.ones(3, 2, 4), over="sample")
        >>> int(h.dimension_values("count").sum())   # two samples, 12 spikes each
        2
    """
    if over not in ("neuron", "sample"):
        raise ValueError(f"spike_count_histogram: over must be 'neuron' or 'sample', got {over!r}")
    ensure_bokeh()
    c = _per_neuron_counts(array_arg(spikes, "spike_count_histogram", _SPIKES))
    values = (c.ravel() if over == "neuron" else c.sum(1)).astype(float)
    counts, edges = np.histogram(values, bins=_int_bins(values, bins))
    ylabel = "neurons" if over == "neuron" else "samples"
    xdim = hv.Dimension("spikes", label=f"spikes per {over}" if over == "sample" else "spikes per neuron and sample")
    return hv.Histogram((edges, counts), kdims=[xdim], vdims=[hv.Dimension("count", label=ylabel)]).opts(
        color=theme.CATEGORICAL[1], width=theme.WIDTH // 2 + 100, height=theme.HEIGHT, tools=["hover"],
        backend="bokeh")
