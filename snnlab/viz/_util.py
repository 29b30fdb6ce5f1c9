"""Small helpers shared by the viz modules: array conversion and the Bokeh option registry."""
from __future__ import annotations

from typing import Any

import numpy as np

_BOKEH_READY = False


def ensure_bokeh() -> None:
    """Register HoloViews' Bokeh plotting options so ``.opts(..., backend="bokeh")`` works.

    This only imports ``holoviews.plotting.bokeh`` (no ``hv.extension``, no notebook JS); the
    currently selected backend is left as it was.
    """
    global _BOKEH_READY
    if _BOKEH_READY:
        return
    from holoviews import Store

    current = Store.current_backend
    import holoviews.plotting.bokeh  # noqa: F401  (registers the bokeh options)

    if current in Store.renderers:
        Store.set_current_backend(current)
    _BOKEH_READY = True


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy array from a torch tensor (detached, on the CPU), array or sequence."""
    if hasattr(x, "detach"):
        x = x.detach()
        if x.dtype.is_floating_point and x.dtype not in (_torch().float32, _torch().float64):
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def _torch():
    import torch

    return torch


def as_time_neuron(x: Any, sample: int | None, name: str) -> np.ndarray:
    """``[T, N]`` from ``[T, N]`` or ``[T, B, ...]`` (picking ``sample`` and flattening the rest)."""
    a = to_numpy(x)
    if a.ndim == 1:
        return a[:, None]
    if a.ndim == 2:
        return a
    if sample is None:
        raise ValueError(f"{name}: got a [T, B, ...] array of shape {a.shape}; pass sample=<index>")
    if not -a.shape[1] <= sample < a.shape[1]:
        raise IndexError(f"{name}: sample={sample} out of range for batch size {a.shape[1]}")
    return a[:, sample].reshape(a.shape[0], int(np.prod(a.shape[2:])))


def grid_image(z: np.ndarray, x0: float, x1: float, y0: float, y1: float, element: Any = None, **params: Any):
    """An ``hv.Image`` (or ``hv.RGB`` for ``[ny, nx, 3]``) of ``z`` whose row ``r`` lies at the ``r``-th y
    from the bottom, spanning ``[x0, x1] x [y0, y1]`` (pixel edges). Works for one row or column too."""
    import holoviews as hv

    cls = element or (hv.RGB if z.ndim == 3 else hv.Image)
    return cls(np.ascontiguousarray(z[::-1]), bounds=(x0, y0, x1, y1), **params)


#: What a plot without data says, unless its function says more (e.g. which columns it waits for).
NO_DATA = "no data yet"


def no_data(message: str = NO_DATA, x: Any = "x", y: Any = "y", title: str | None = None, **opts: Any):
    """A plot without data that still draws (HoloViews skips an empty overlay or layout: a blank placeholder, or
    ``SkipRendering`` raised): the axes ``x`` and ``y`` (names or ``hv.Dimension``) without tick labels,
    ``message`` in the middle, and ``title`` (default: ``message``). ``opts``: more Bokeh options of the overlay
    (size, ...).

    Example:
        >>> import holoviews as hv
        >>> plot = no_data("no runs yet", "spikes_per_sample", "accuracy")
        >>> hv.render(plot, backend="bokeh").title.text
        'no runs yet'
    """
    import holoviews as hv

    from . import theme

    ensure_bokeh()
    text = hv.Text(0.5, 0.5, message, kdims=[x, y]).opts(text_color=theme.NO_DATA_COLOR,
                                                         text_font_size=theme.NO_DATA_FONT, backend="bokeh")
    return hv.Overlay([text]).opts(title=message if title is None else title, xlim=(0.0, 1.0), ylim=(0.0, 1.0),
                                   xformatter=" ", yformatter=" ", show_legend=False, backend="bokeh", **opts)


def has_data(*columns: Any) -> bool:
    """Whether some row has a finite number in every one of ``columns`` (equal-length arrays / Series; what is not a
    number counts as missing).

    Example:
        >>> has_data([1.0, float("nan")], [float("nan"), 2.0]), has_data([1.0, 3.0], [float("nan"), 2.0])
        (False, True)
    """
    import pandas as pd

    if not columns:
        return False
    ok = np.ones(len(columns[0]), dtype=bool)
    for c in columns:
        dtype = getattr(c, "dtype", None)
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":  # (a numeric column: no pass through objects)
            values = np.asarray(c, dtype=float)
        else:
            values = pd.to_numeric(pd.Series(np.asarray(c, dtype=object)), errors="coerce").to_numpy(dtype=float)
        ok &= np.isfinite(values)
    return bool(ok.any())
