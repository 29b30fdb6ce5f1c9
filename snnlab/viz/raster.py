"""Spike rasters: time on x, neuron on y; exact points for moderate data, binned images for big data."""
from __future__ import annotations

from typing import Any, Sequence

import holoviews as hv
import numpy as np
import pandas as pd

from snnlab.extras import require

from . import theme
from ._util import array_arg, as_time_neuron, ensure_bokeh, grid_image, monitor_record, to_numpy

__all__ = ["spike_coordinates", "spike_raster", "monitor_raster", "group_colors"]

_METHODS = ("auto", "points", "image", "datashader")
_SPIKES = "one layer's spikes [T, B, N] (or [T, N]) as a tensor or array"


def spike_coordinates(spikes: Any, sample: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(t, n)`` index arrays of the non-zero entries of ``spikes`` (``[T, N]`` or ``[T, B, ...]``).

    Example:
        >>> import numpy as np
        >>> spike_coordinates(np.array([[0, 1], [1, 0]]))
        (array([0, 1]), array([1, 0]))
    """
    a = as_time_neuron(spikes, sample, "spike_coordinates")
    t, n = np.nonzero(a)
    return t, n


def spike_raster(
    spikes: Any,
    sample: int | None = 0,
    color_by: Sequence[Any] | None = None,
    max_points: int = theme.MAX_POINTS,
    method: str = "auto",
    bins: tuple[int, int] = theme.RASTER_BINS,
    dt: float | None = None,
    label: str = "",
) -> hv.Element | hv.Overlay | hv.DynamicMap:
    """Raster plot of a recorded layer (time x neuron).

    ``spikes``: ``[T, N]``, or time-major ``[T, B, N...]`` of which ``sample`` is shown (trailing
    dimensions are flattened into neurons): one layer's tensor or array (a :class:`snnlab.Monitor` or its dict of
    layers is a ``TypeError`` pointing to :func:`monitor_raster`). Every non-zero entry is one spike.

    * ``method="points"`` (or ``"auto"`` with at most ``max_points`` spikes): one ``hv.Points`` with
      kdims ``time, neuron`` and a vertical dash marker -- exact, hoverable, WebGL-friendly.
      ``color_by`` (one label per neuron, e.g. its class or layer name) adds a ``group`` column that
      colours the dashes with :data:`theme.CATEGORICAL`, a colour per group in the order the groups first
      appear in ``color_by`` (so a group keeps its colour whichever neurons fire), with the legend below
      the plot when there are several groups (a raster in one colour has no legend).
    * ``method="image"`` (or ``"auto"`` above ``max_points``): an ``hv.Image`` of spike counts per
      (time bin, neuron bin) from ``np.histogram2d``, at most ``bins = (time_bins, neuron_bins)``
      (bins never finer than one step / one neuron); the image sums to the number of spikes.
      With ``color_by``, an ``hv.Overlay`` instead: one such ``hv.Image`` per group (label: the group),
      counting that group's spikes over the neuron bins its neurons fall in, in a ramp of the group's
      colour (:func:`theme.ramp`; bins without its spikes transparent, one colour scale for all), and the
      same legend as the points (an empty ``hv.Points`` per group carries its entry).
    * ``method="datashader"``: ``rasterize`` of the points (needs the optional ``datashader``); with
      ``color_by`` a count per group (``count_cat``: an ``hv.ImageStack`` in the groups' colours) with
      the same legend, overlaid in a ``DynamicMap``.

    ``dt`` (seconds per step) puts time in seconds instead of steps.

    Example:
        >>> import torch
        >>> from snnlab.viz import spike_raster
        >>> s = (torch.rand(100, 4, 32) < 0.05).float()         # [T, B, N]
        >>> r = spike_raster(s, sample=0)
        >>> len(r) == int(s[:, 0].sum())
        True
    """
    if method not in _METHODS:
        raise ValueError(f"spike_raster: method must be one of {_METHODS}, got {method!r}")
    ensure_bokeh()
    a = as_time_neuron(array_arg(spikes, "spike_raster", _SPIKES, "monitor_raster(mon)"), sample, "spike_raster")
    T, N = a.shape
    t, n = np.nonzero(a)
    scale = 1.0 if dt is None else float(dt)
    tdim = hv.Dimension("time", unit=None if dt is None else "s", label="time" + (" [step]" if dt is None else ""))
    ndim = hv.Dimension("neuron")
    if method == "auto":
        method = "points" if len(t) <= max_points else "image"
    labels = None
    if color_by is not None:
        labels = np.asarray(color_by, dtype=object)
        if labels.ndim != 1 or len(labels) != N:
            raise ValueError(f"spike_raster: color_by has {len(labels)} labels for {N} neurons")
        labels = labels.astype(str)
        if method == "datashader" and not len(t):
            method = "image"  # (datashader counts no category of no points: the binned raster, empty, and its legend)
    if method == "image" and (T == 0 or N == 0):
        method = "points"  # (an image needs a step and a neuron: an empty raster is drawn as no points)
    size = dict(width=theme.WIDTH, height=theme.HEIGHT)
    if method == "image":
        tb, nb = max(1, min(int(bins[0]), T)), max(1, min(int(bins[1]), N))
        if labels is not None:
            return _binned_by_group(t, n, labels, (T, N), (tb, nb), scale, tdim, ndim, label)
        counts, tedges, nedges = np.histogram2d(t, n, bins=[tb, nb], range=[[-0.5, T - 0.5], [-0.5, N - 0.5]])
        img = grid_image(counts.T, -0.5 * scale, (T - 0.5) * scale, -0.5, N - 0.5, kdims=[tdim, ndim],
                         vdims=[hv.Dimension("spikes")], label=label)
        return img.opts(cmap=theme.CMAP_COUNTS, colorbar=True, tools=["hover"], backend="bokeh", **size)
    data = {"time": t * scale, "neuron": n}
    vdims: list[Any] = []
    if labels is not None:
        data["group"] = labels[n]
        vdims = ["group"]
    pts = hv.Points(pd.DataFrame(data), kdims=[tdim, ndim], vdims=vdims, label=label)
    marker = 8 if N <= 200 else 5
    limits = dict(xlim=(-0.5 * scale, (T - 0.5) * scale), ylim=(-0.5, N - 0.5))
    if method == "datashader":
        require("datashader", extra="bigdata", feature="spike_raster(method='datashader')")
        from holoviews.operation.datashader import rasterize
        if labels is None:
            return rasterize(pts).opts(cmap=theme.CMAP_COUNTS, backend="bokeh", **size)
        import datashader as ds

        colors = group_colors(labels)
        # the raster's ranges given: those of the spikes are empty for one step or one neuron, and count_cat then
        # gives one 'Count' layer instead of one per group
        stack = rasterize(pts, aggregator=ds.count_cat("group"), x_range=limits["xlim"], y_range=limits["ylim"])
        stack = stack.opts(cmap=colors, backend="bokeh")
        return (stack * hv.Overlay(_legend_keys(colors, tdim, ndim))).opts(  # (a DynamicMap: re-binned on zoom)
            backend="bokeh", **limits, **theme.legend_below(len(colors)), width=size["width"])
    opts: dict[str, Any] = dict(marker="dash", angle=90, size=marker, tools=["hover"], **limits, **size)
    if labels is not None:  # one legend entry per group, listed below the plot (none for one group)
        opts.update(color="group", cmap=group_colors(labels),
                    **theme.legend_below(len(pd.unique(data["group"])) if len(t) else 0))
    else:  # one colour: a legend would only repeat the label over the spikes
        opts.update(color=theme.SPIKE_COLOR, show_legend=False)
    return pts.opts(backend="bokeh", **opts)


def group_colors(labels: Sequence[Any]) -> dict[str, str]:
    """``{group: colour}`` of the neurons' group ``labels``: :data:`theme.CATEGORICAL` (cycled) in the order the
    groups first appear, whichever neurons fire -- one mapping for scatter and binned rasters, stable over frames.

    Example:
        >>> group_colors(["hid", "hid", "out", "hid"])
        {'hid': '#1f77b4', 'out': '#ff7f0e'}
    """
    pal = theme.CATEGORICAL
    return {str(g): pal[k % len(pal)] for k, g in enumerate(pd.unique(np.asarray(labels, dtype=object).astype(str)))}


def _legend_keys(colors: dict[str, str], tdim: hv.Dimension, ndim: hv.Dimension) -> list[hv.Points]:
    """An empty ``hv.Points`` per group in its colour: the legend entries of images (which have none in Bokeh)."""
    return [hv.Points(([], []), kdims=[tdim, ndim], label=g).opts(color=c, marker="square", size=10, backend="bokeh")
            for g, c in colors.items()]


def _binned_by_group(t: np.ndarray, n: np.ndarray, labels: np.ndarray, shape: tuple[int, int], bins: tuple[int, int],
                     scale: float, tdim: hv.Dimension, ndim: hv.Dimension, label: str) -> hv.Overlay:
    """The binned raster of spikes ``(t, n)`` with a count image per group of ``labels`` (one per neuron) in the
    group's colour, each over the neuron bins (of the whole raster's ``bins``) that its neurons fall in."""
    (T, N), (tb, nb) = shape, bins
    tedges, nedges = np.linspace(-0.5, T - 0.5, tb + 1), np.linspace(-0.5, N - 0.5, nb + 1)
    bin_of = np.clip(np.searchsorted(nedges, np.arange(N), side="right") - 1, 0, nb - 1)  # neuron -> its bin
    colors = group_colors(labels)
    codes, order = pd.factorize(labels)  # (integer codes, groups in order of first appearance: as colors)
    spike_codes = codes[n]
    counts = {}
    for k, g in enumerate(order):
        rows = bin_of[codes == k]
        lo, hi = int(rows.min()), int(rows.max())
        mine = spike_codes == k
        c, _, _ = np.histogram2d(t[mine], n[mine], bins=[tedges, nedges[lo:hi + 2]])
        counts[g] = (c.T, lo, hi)
    top = max([1.0] + [float(c.max()) for c, _, _ in counts.values()])
    images = []
    for g, (c, lo, hi) in counts.items():
        img = grid_image(c, tedges[0] * scale, tedges[-1] * scale, nedges[lo], nedges[hi + 1], kdims=[tdim, ndim],
                         vdims=[hv.Dimension("spikes")], label=g)
        # bins without spikes (below the colour range) transparent: they show the layers under and beside them
        images.append(img.opts(cmap=theme.ramp(colors[g]), clim=(0.5, top), clipping_colors={"min": "transparent"},
                               colorbar=len(colors) == 1, tools=["hover"], backend="bokeh"))
    return hv.Overlay([*images, *_legend_keys(colors, tdim, ndim)], label=label).opts(
        width=theme.WIDTH, xlim=(tedges[0] * scale, tedges[-1] * scale), ylim=(-0.5, N - 0.5), backend="bokeh",
        **theme.legend_below(len(colors)))


def monitor_raster(
    mon: Any,
    sample: int = 0,
    layers: Sequence[str] | None = None,
    overlay: bool = True,
    max_points: int = theme.MAX_POINTS,
    method: str = "auto",
    dt: float | None = None,
) -> hv.Element | hv.Overlay | hv.Layout | hv.DynamicMap:
    """Rasters of every spiking layer recorded by a :class:`snnlab.Monitor` (``mon.spikes[name]``, ``[T, B, N]``).

    ``overlay=True``: one raster with the layers stacked on the neuron axis (layer ``k`` starts at
    the sum of the sizes of the layers before it) and coloured by layer name. ``overlay=False``: an
    ``hv.Layout`` with one raster per layer. ``layers`` picks and orders them (default: all recorded).
    ``mon`` may also be its ``mon.spikes`` dict; anything else (the model itself, one tensor) is a ``TypeError``
    saying what to pass.

    Example:
        >>> import torch, snnlab as sl
        >>> from snnlab.viz import monitor_raster
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 6), sl.LIF())
        >>> with sl.Monitor(net) as mon:
        ...     _ = net(torch.rand(20, 2, 4) * 3)
        >>> sorted(set(monitor_raster(mon).data["group"])) <= ["1", "3"]
        True
    """
    recorded = dict(monitor_record(mon, "spikes", "monitor_raster"))
    names = list(recorded) if layers is None else list(layers)
    missing = [n for n in names if n not in recorded]
    if missing:
        raise KeyError(f"monitor_raster: no spikes recorded for {missing}; recorded layers are {list(recorded)}")
    if not names:
        raise ValueError("monitor_raster: the monitor recorded no spiking layer: no forward pass ran inside it, "
                         "or the model has no neuron layer it records (neuron layers are snnlab.LIF / LI subclasses; "
                         "only LIF layers spike)")
    mats = [as_time_neuron(recorded[n], sample, "monitor_raster") for n in names]
    if not overlay:
        return hv.Layout([spike_raster(m, max_points=max_points, method=method, dt=dt, label=f"layer {n}")
                          for n, m in zip(names, mats)]).cols(1)
    T = {m.shape[0] for m in mats}
    if len(T) != 1:
        raise ValueError(f"monitor_raster: layers have different lengths {sorted(T)}; use overlay=False")
    stacked = np.concatenate([to_numpy(m) for m in mats], axis=1)
    groups = np.concatenate([np.full(m.shape[1], n, dtype=object) for n, m in zip(names, mats)])
    return spike_raster(stacked, color_by=groups, max_points=max_points, method=method, dt=dt)
