"""Spike rasters: time on x, neuron on y; exact points for moderate data, binned images for big data."""
from __future__ import annotations

from typing import Any, Sequence

import holoviews as hv
import numpy as np
import pandas as pd

from snnlab.extras import require

from . import theme
from ._util import as_time_neuron, ensure_bokeh, grid_image, to_numpy

__all__ = ["spike_coordinates", "spike_raster", "monitor_raster"]

_METHODS = ("auto", "points", "image", "datashader")


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
) -> hv.Element | hv.DynamicMap:
    """Raster plot of a recorded layer (time x neuron).

    ``spikes``: ``[T, N]``, or time-major ``[T, B, N...]`` of which ``sample`` is shown (trailing
    dimensions are flattened into neurons). Every non-zero entry is one spike.

    * ``method="points"`` (or ``"auto"`` with at most ``max_points`` spikes): one ``hv.Points`` with
      kdims ``time, neuron`` and a vertical dash marker -- exact, hoverable, WebGL-friendly.
      ``color_by`` (one label per neuron, e.g. its class or layer name) adds a ``group`` column that
      colours the dashes with :data:`theme.CATEGORICAL` (legend below the plot when there are several
      groups; a raster in one colour has no legend).
    * ``method="image"`` (or ``"auto"`` above ``max_points``): an ``hv.Image`` of spike counts per
      (time bin, neuron bin) from ``np.histogram2d``, at most ``bins = (time_bins, neuron_bins)``
      (bins never finer than one step / one neuron); the image sums to the number of spikes.
      ``color_by`` is ignored here.
    * ``method="datashader"``: ``rasterize`` of the points (needs the optional ``datashader``).

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
    a = as_time_neuron(spikes, sample, "spike_raster")
    T, N = a.shape
    t, n = np.nonzero(a)
    scale = 1.0 if dt is None else float(dt)
    tdim = hv.Dimension("time", unit=None if dt is None else "s", label="time" + (" [step]" if dt is None else ""))
    ndim = hv.Dimension("neuron")
    if method == "auto":
        method = "points" if len(t) <= max_points else "image"
    if method == "image" and (T == 0 or N == 0):
        method = "points"  # (an image needs a step and a neuron: an empty raster is drawn as no points)
    if method == "image":
        tb, nb = max(1, min(int(bins[0]), T)), max(1, min(int(bins[1]), N))
        counts, tedges, nedges = np.histogram2d(t, n, bins=[tb, nb], range=[[-0.5, T - 0.5], [-0.5, N - 0.5]])
        img = grid_image(counts.T, -0.5 * scale, (T - 0.5) * scale, -0.5, N - 0.5, kdims=[tdim, ndim],
                         vdims=[hv.Dimension("spikes")], label=label)
        return img.opts(cmap=theme.CMAP_COUNTS, colorbar=True, width=theme.WIDTH, height=theme.HEIGHT,
                        tools=["hover"], backend="bokeh")
    data = {"time": t * scale, "neuron": n}
    vdims: list[Any] = []
    if color_by is not None:
        groups = np.asarray(color_by, dtype=object)
        if len(groups) != N:
            raise ValueError(f"spike_raster: color_by has {len(groups)} labels for {N} neurons")
        data["group"] = groups[n].astype(str)
        vdims = ["group"]
    pts = hv.Points(pd.DataFrame(data), kdims=[tdim, ndim], vdims=vdims, label=label)
    size = 8 if N <= 200 else 5
    if method == "datashader":
        require("datashader", extra="bigdata", feature="spike_raster(method='datashader')")
        from holoviews.operation.datashader import rasterize
        return rasterize(pts).opts(cmap=theme.CMAP_COUNTS, width=theme.WIDTH, height=theme.HEIGHT, backend="bokeh")
    opts: dict[str, Any] = dict(marker="dash", angle=90, size=size, width=theme.WIDTH, height=theme.HEIGHT,
                                tools=["hover"], xlim=(-0.5 * scale, (T - 0.5) * scale), ylim=(-0.5, N - 0.5))
    if color_by is not None:  # one legend entry per group, listed below the plot (none for one group)
        opts.update(color="group", cmap=theme.CATEGORICAL,
                    **theme.legend_below(len(pd.unique(data["group"])) if len(t) else 0))
    else:  # one colour: a legend would only repeat the label over the spikes
        opts.update(color=theme.SPIKE_COLOR, show_legend=False)
    return pts.opts(backend="bokeh", **opts)


def monitor_raster(
    mon: Any,
    sample: int = 0,
    layers: Sequence[str] | None = None,
    overlay: bool = True,
    max_points: int = theme.MAX_POINTS,
    method: str = "auto",
    dt: float | None = None,
) -> hv.Element | hv.Layout | hv.DynamicMap:
    """Rasters of every spiking layer recorded by a :class:`snnlab.Monitor` (``mon.spikes[name]``, ``[T, B, N]``).

    ``overlay=True``: one raster with the layers stacked on the neuron axis (layer ``k`` starts at
    the sum of the sizes of the layers before it) and coloured by layer name. ``overlay=False``: an
    ``hv.Layout`` with one raster per layer. ``layers`` picks and orders them (default: all recorded).

    Example:
        >>> import torch, snnlab as sl
        >>> from snnlab.viz import monitor_raster
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 6), sl.LIF())
        >>> with sl.Monitor(net) as mon:
        ...     _ = net(torch.rand(20, 2, 4) * 3)
        >>> sorted(set(monitor_raster(mon).data["group"])) <= ["1", "3"]
        True
    """
    recorded = dict(getattr(mon, "spikes", mon))
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
