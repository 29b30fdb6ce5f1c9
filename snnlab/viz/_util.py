"""Small helpers shared by the viz modules: array conversion and the Bokeh option registry."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from snnlab.metrics._common import described

if TYPE_CHECKING:
    import pandas as pd

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


#: What the functions that plot one recording take (the ``what`` of :func:`array_arg`).
RECORDING = "one layer's recording [T, N] or time-major [T, B, ...] as a tensor or array"


def array_arg(x: Any, fn: str, what: str = RECORDING, monitor_fn: str | None = None,
              record: str = "spikes") -> np.ndarray:
    """``x`` (a tensor, an array or a nested sequence of numbers) as a NumPy array of numbers.

    Anything else (a :class:`snnlab.Monitor`, a dict of layers, a model, None) is a ``TypeError`` that names ``fn``
    (the plot function), ``what`` it takes, what it got and what to pass: one of a dict's tensors, one layer's
    ``mon.<record>[...]`` of a Monitor, or ``monitor_fn`` (the plot of a whole Monitor, e.g. ``"monitor_raster(mon)"``).

    Example:
        >>> array_arg([[0, 1], [1, 0]], "spike_raster").shape
        (2, 2)
        >>> array_arg({"1": [[0, 1]]}, "spike_raster", monitor_fn="monitor_raster(mon)")
        Traceback (most recent call last):
        ...
        TypeError: spike_raster takes ... got a dict with keys ['1']: pass one of its entries, e.g. x['1'] (for every
        layer of a Monitor: monitor_raster(mon))
    """
    try:
        a = to_numpy(x)
    except (TypeError, ValueError, RuntimeError):  # ragged nested lists, objects that refuse conversion
        a = np.empty(0, dtype=object)
    if a.dtype.kind in "biuf":
        return a
    if isinstance(getattr(x, record, None), Mapping):  # a Monitor (or a recorder like it)
        fix = f"pass one layer's record, e.g. mon.{record}[{_first_key(getattr(x, record))!r}]"
        fix = f"for a Monitor use {monitor_fn}, or {fix}" if monitor_fn else fix
    elif isinstance(x, Mapping):
        whole = f" (for every layer of a Monitor: {monitor_fn})" if monitor_fn else ""
        fix = f"pass one of its entries, e.g. x[{_first_key(x)!r}]{whole}"
    elif hasattr(x, "named_modules"):  # a model: its layers' recordings come from a Monitor
        fix = (f"record the layers with a Monitor (with sl.Monitor(net) as mon: net(x)) and pass one layer's "
               f"mon.{record}[<layer>]" + (f", or use {monitor_fn}" if monitor_fn else ""))
    else:
        fix = "pass a tensor or array"
    raise TypeError(f"{fn} takes {what}, got {described(x)}: {fix}")


def monitor_record(mon: Any, record: str, fn: str) -> Mapping:
    """The ``{layer: tensor}`` dict ``mon.<record>`` of a :class:`snnlab.Monitor` (``record``: ``"spikes"`` or
    ``"membrane"``), or ``mon`` itself when it is such a dict; a ``TypeError`` naming ``fn`` otherwise (a model, a
    tensor: it says how to record one).

    Example:
        >>> monitor_record({"1": [[0, 1]]}, "spikes", "monitor_raster")
        {'1': [[0, 1]]}
    """
    found = getattr(mon, record, mon)
    if isinstance(found, Mapping):
        return found
    raise TypeError(f"{fn} takes a snnlab.Monitor (or its .{record} dict {{layer: [T, B, N] tensor}}), got "
                    f"{described(mon)}: record the model's layers first (with sl.Monitor(net) as mon: net(x)), then "
                    f"call {fn}(mon{', layer' if fn == 'monitor_traces' else ''})")


def table_arg(df: Any, fn: str, rows: str = "run") -> "pd.DataFrame":
    """``df`` as a pandas DataFrame: a DataFrame as it is, a list (or tuple) of row dicts (such as
    :func:`snnlab.metrics.evaluate` results, or robustness rows) as ``pandas.DataFrame(rows)``; anything else (one
    dict, a list of tables, ...) is a ``TypeError`` naming ``fn`` and what to pass (``rows``: what a row is).

    Example:
        >>> table_arg([{"accuracy": 0.9}, {"accuracy": 0.8}], "tradeoff_scatter")["accuracy"].tolist()
        [0.9, 0.8]
    """
    import pandas as pd

    if isinstance(df, pd.DataFrame):
        return df
    if isinstance(df, (list, tuple)) and all(isinstance(r, Mapping) for r in df):
        return pd.DataFrame(list(df))
    takes = f"{fn} takes a table with one row per {rows} (a pandas DataFrame, or a list of row dicts)"
    if isinstance(df, Mapping):
        raise TypeError(f"{takes}, got {described(df)}: pass [row] for a single row, or "
                        f"pandas.DataFrame(columns) for a dict of columns")
    if isinstance(df, (list, tuple)) and df and all(isinstance(t, pd.DataFrame) for t in df):
        raise TypeError(f"{takes}, got a {type(df).__name__} of {len(df)} DataFrames: join them first with "
                        f"pandas.concat(tables, ignore_index=True)")
    raise TypeError(f"{takes}, got {described(df)}")


def _first_key(mapping: Mapping) -> Any:
    return next(iter(mapping), "<layer>")


def as_time_neuron(x: Any, sample: int | None, name: str) -> np.ndarray:
    """``[T, N]`` from ``[T, N]`` or ``[T, B, ...]`` (picking ``sample`` and flattening the rest); a ``TypeError`` for
    what is no array of numbers (:func:`array_arg`), a ``ValueError`` for a single number."""
    a = array_arg(x, name)
    if a.ndim == 0:
        raise ValueError(f"{name}: got a single number, not a recording over time; give [T, N] or time-major "
                         f"[T, B, ...]")
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
