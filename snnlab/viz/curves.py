"""Learning curves: static from a tidy metrics table, and live from a stream while training."""
from __future__ import annotations

import math
import threading
import warnings
from typing import Any, Iterable, Mapping, Sequence

import holoviews as hv
import numpy as np
import pandas as pd
import param
from holoviews.core.util import dimension_sanitizer

from snnlab.training.records import STEP_METRICS

from . import theme
from ._util import NO_DATA, ensure_bokeh, no_data
from .piped import live_dmap

__all__ = ["learning_curves", "series_curves", "LiveCurves", "live_learning_curves", "flatten_metrics", "series_overlay",
           "style_overlay", "is_evaluation_metric", "downsample_minmax", "MAX_CURVE_POINTS", "name_series_once",
           "legend_lists_drawn_series", "EVAL_BUFFER_LENGTH"]

LIVE_COLUMNS = ["step", "name", "value"]

#: the most points drawn per series (curve): a longer series is thinned by :func:`downsample_minmax`
#: (a plot is ~500 px wide; 200k points of one run sent 2.4 MB to the browser and blocked it for seconds)
MAX_CURVE_POINTS = 2000

#: evaluation rows (``test_*``, ``rounded_test_*``: a few per evaluation) a :class:`LiveCurves` keeps apart from its
#: ``buffer_length`` step rows, so the test points of a whole run stay drawn after its early steps left the buffer
#: (10,000 rows: 3,333 evaluations of three metrics; past it the oldest evaluation rows go)
EVAL_BUFFER_LENGTH = 10_000


def downsample_minmax(x: Any, y: Any, max_points: int | None = MAX_CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` thinned to at most ``max_points`` points: the first and the last point, and the minimum and
    the maximum of ``y`` in each of ``(max_points - 2) // 2`` buckets of consecutive points (so a spike in a
    loss curve stays visible and the axes' ranges do not change). A series of at most ``max_points`` points
    (or ``max_points=None``) comes back unchanged. Deterministic and vectorised (NumPy, no Python loop);
    NaN values are never picked over numbers of their bucket.

    Example:
        >>> import numpy as np
        >>> from snnlab.viz.curves import downsample_minmax
        >>> y = np.zeros(10_000); y[5_000] = 9.0; y[7_000] = -3.0
        >>> xs, ys = downsample_minmax(np.arange(10_000), y, max_points=100)
        >>> len(xs) <= 100, [int(xs[0]), int(xs[-1])], [float(ys.max()), float(ys.min())], int(xs[ys.argmax()])
        (True, [0, 9999], [9.0, -3.0], 5000)
    """
    x, y = np.asarray(x), np.asarray(y)
    n = len(y)
    if max_points is None or n <= max_points:
        return x, y
    if max_points < 4:
        raise ValueError(f"downsample_minmax: max_points must be at least 4 (first, last, a min and a max), "
                         f"got {max_points}")
    inner = n - 2  # the points between the first and the last, in equal buckets of `size` (the last one shorter)
    size = -(-inner // ((max_points - 2) // 2))
    buckets = -(-inner // size)
    pad = buckets * size - inner
    values = y[1:-1].astype("float64")
    nan = np.isnan(values)
    # padding and NaN lose both contests; a bucket's first element is always a real point
    low = np.concatenate([np.where(nan, np.inf, values), np.full(pad, np.inf)]).reshape(buckets, size)
    high = np.concatenate([np.where(nan, -np.inf, values), np.full(pad, -np.inf)]).reshape(buckets, size)
    start = 1 + size * np.arange(buckets)
    keep = np.unique(np.concatenate([[0, n - 1], start + low.argmin(axis=1), start + high.argmax(axis=1)]))
    return x[keep], y[keep]


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (nested) metrics dict as floats, keys joined with ``/`` (tensors with one element too).

    Example:
        >>> flatten_metrics({"loss": 0.5, "acc": {"train": 1}, "note": "x"})
        {'loss': 0.5, 'acc/train': 1.0}
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, name + "/"))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, (int, float)):
            flat[name] = float(value)
        elif hasattr(value, "item"):  # torch tensors and NumPy scalars/arrays with one element
            size = value.numel() if hasattr(value, "numel") else getattr(value, "size", 0)
            if size == 1:
                flat[name] = float(value.item())
    return flat


def series_overlay(series: Mapping[Any, tuple[Any, Any]], xdim: Any, ydim: Any,
                   kdims: str | Sequence[str] = "metric", points: Sequence[Any] | None = None,
                   max_points: int | None = None) -> hv.NdOverlay | hv.Overlay:
    """A line for each of ``series`` (``{key: (x, y)}``), with markers on those in ``points``.

    A series of more than ``max_points`` points is drawn thinned by :func:`downsample_minmax` (``None``: every
    point); every curve builder of this module thins here, once.

    ``points=None`` marks every series of a single point: Bokeh draws no line through one point, so such a
    series (a one-epoch run, the one test after ``round_delays()``) would show as a legend entry only.
    Without markers the result is an ``hv.NdOverlay`` of ``hv.Curve``; with them, that overlay times an
    ``hv.NdOverlay`` of ``hv.Scatter`` in the same colours and with the same keys, so each legend entry
    shows the line and its marker. Given ``points`` (live plots: the test metrics, a point per epoch), the
    result is always that product with a (possibly empty) marker for every key, so that a live plot keeps
    its structure while data arrives.

    Example:
        >>> from snnlab.viz.curves import series_overlay
        >>> plot = series_overlay({"test": ([1, 2], [0.5, 0.6]), "rounded": ([2], [0.58])}, "step", "accuracy")
        >>> type(plot).__name__, list(plot.get(1).keys()), plot.get(1)["rounded"].dimension_values("accuracy").tolist()
        ('Overlay', ['rounded'], [0.58])
        >>> type(series_overlay({"test": ([1, 2], [0.5, 0.6])}, "step", "accuracy")).__name__
        'NdOverlay'
    """
    kdims = [kdims] if isinstance(kdims, str) else list(kdims)
    series = {k: downsample_minmax(x, y, max_points) for k, (x, y) in series.items()}
    marked = {k for k, (x, _) in series.items() if len(x) == 1} if points is None else set(points) & set(series)
    lines = hv.NdOverlay({k: hv.Curve((x, y), kdims=[xdim], vdims=[ydim]) for k, (x, y) in series.items()},
                         kdims=kdims)
    if points is None and not marked:
        return lines
    colours = list(hv.Cycle().values) or ["black"]
    dots = {}
    for i, k in enumerate(lines.keys()):  # the lines' colours follow this (sorted) order
        if k in marked:
            dots[k] = hv.Scatter(series[k], kdims=[xdim], vdims=[ydim]).opts(
                color=colours[i % len(colours)], size=7, backend="bokeh")
        elif points is not None:  # an empty, invisible stand-in: the same keys on every live draw
            dots[k] = hv.Scatter(([], []), kdims=[xdim], vdims=[ydim]).opts(size=0, backend="bokeh")
    return lines * hv.NdOverlay(dots, kdims=kdims)


def is_evaluation_metric(name: str) -> bool:
    """Whether ``name`` is logged once per evaluation (``test_*``, ``rounded_test_*``): few points, drawn with
    markers in live plots (the first evaluation is a single point, which a line alone does not show).

    Example:
        >>> is_evaluation_metric("test_accuracy"), is_evaluation_metric("rounded_test_loss"), is_evaluation_metric("loss")
        (True, True, False)
    """
    return name.startswith(("test_", "rounded_test_"))


#: What the panel of a metric says whose every logged value is NaN (e.g. a loss that diverged at once).
NO_FINITE = "no finite values"


def _curve_panel(series: Mapping[Any, tuple[Any, Any]], x: str, metric: str, groups: list[str],
                 max_points: int | None = MAX_CURVE_POINTS, empty: str = NO_DATA) -> hv.NdOverlay | hv.Overlay:
    """One metric's panel: ``series`` (``{key: (x, y)}``, keys of the ``groups``, or the metric's name where there
    are none) overlaid, thinned to ``max_points``; a panel titled ``metric`` that says ``empty`` where no series
    has a point."""
    xdim, ydim = hv.Dimension(x), hv.Dimension("value", label=metric)
    if not any(len(xy[0]) for xy in series.values()):
        return no_data(empty, xdim, ydim, title=metric, width=theme.WIDTH // 2 + 100)
    return style_overlay(series_overlay(series, xdim, ydim, kdims=groups or ["metric"], max_points=max_points),
                         width=theme.WIDTH // 2 + 100, title=metric,
                         **theme.legend_below(len(series) if groups else 0))


def _table_series(df: pd.DataFrame, x: str, metric: str, groups: list[str]) -> dict[Any, tuple[Any, Any]]:
    """``{key: (x, value)}`` of one metric's rows, one series per value of ``groups`` (sorted by ``x``, stably: rows
    of one ``x`` keep their order)."""
    if not groups:
        g = df.sort_values(x, kind="stable")
        return {metric: (g[x].to_numpy(), g["value"].to_numpy())}
    series: dict[Any, tuple[Any, Any]] = {}
    for key, g in df.groupby(groups, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        g = g.sort_values(x, kind="stable")
        series[key if len(key) > 1 else key[0]] = (g[x].to_numpy(), g["value"].to_numpy())
    return series


def name_series_once(plot: Any, element: Any) -> None:
    """Bokeh hook of the lines and markers of an overlay: its series' key (run, kind, metric) as the name of the
    glyph renderer, shown by the hover tool as ``$name``, instead of a string column with a copy of the key for
    every point of the series in the data sent to the browser (HoloViews adds one per key dimension of an
    ``hv.NdOverlay``: 72 bytes per point of a run id and a kind). Applied on the first draw; later draws (live
    plots) then send only the x and y columns.
    """
    dims = getattr(plot, "overlay_dims", None)
    source, renderer = plot.handles.get("source"), plot.handles.get("glyph_renderer")
    if not dims or source is None or renderer is None:
        return
    columns = {dimension_sanitizer(d.name) for d in dims}
    renderer.name = ", ".join(d.pprint_value(v) for d, v in dims.items())  # what the legend shows
    source.data = {k: v for k, v in source.data.items() if k not in columns}
    hover = plot.handles.get("hover")
    if hover is not None and isinstance(hover.tooltips, list):
        fields = {f"@{{{c}}}" for c in columns} | {f"@{c}" for c in columns}
        keyed = [t for t in hover.tooltips if isinstance(t, tuple) and t[1] in fields]
        if keyed:
            rest = [t for t in hover.tooltips if t not in keyed]
            hover.tooltips = [(", ".join(t[0] for t in keyed), "$name")] + rest
    plot.overlay_dims = {}  # (HoloViews re-adds the columns on every later draw while this is set)


def style_overlay(plot: hv.NdOverlay | hv.Overlay, framewise: bool = False, **look: Any) -> hv.NdOverlay | hv.Overlay:
    """Bokeh options ``look`` (size, title, legend...) on a :func:`series_overlay`, hover on its lines and
    markers alike (the series' key shown from the glyph's name, :func:`name_series_once`), and ``framewise``
    axes (for live plots) on all of it.

    Example:
        >>> from snnlab.viz.curves import series_overlay, style_overlay
        >>> plot = style_overlay(series_overlay({"a": ([1], [2.0])}, "step", "loss"), title="loss", width=300)
        >>> type(plot).__name__
        'Overlay'
    """
    whole = "NdOverlay" if isinstance(plot, hv.NdOverlay) else "Overlay"
    element = dict(tools=["hover"], framewise=framewise, hooks=[name_series_once])
    return plot.opts({whole: dict(look, framewise=framewise), "Curve": element, "Scatter": element}, backend="bokeh")


def learning_curves(df: pd.DataFrame, x: str = "step", names: Sequence[str] | None = None,
                    by: Sequence[str] | str | None = "auto", labels: Mapping[str, str] | None = None,
                    cols: int = 2, max_points: int | None = MAX_CURVE_POINTS) -> hv.Layout:
    """One panel per metric (``name``), ``value`` over ``x``, one curve per run / kind.

    ``df``: a tidy metrics table with at least ``name``, ``value`` and ``x`` columns, e.g.
    :meth:`snnlab.experiments.store.RunStore.metrics` (``run_id, step, epoch, kind, name, value``).
    ``names`` selects and orders metrics (default: all, in order of appearance). ``by``: columns
    whose values get one curve each; ``"auto"`` uses those of ``run_id`` and ``kind`` that take
    more than one value (so two runs, or train vs eval loss, are compared in one panel).
    ``labels`` maps run ids to readable names (e.g. from ``RunStore.list_runs()``). Rows with a
    missing value are dropped. Returns an ``hv.Layout`` of panels as made by :func:`series_overlay`:
    ``hv.NdOverlay`` of ``hv.Curve``, with a series of one point (a one-epoch run) drawn as a marker.
    A curve of more than ``max_points`` points is thinned to its first and last points and the minimum and
    maximum of each of ``max_points // 2`` buckets (:func:`downsample_minmax`; ``None``: every point).

    A table without rows (a run that logged nothing yet) draws: a metric of ``names`` without rows gets a panel
    titled with its name that says "no data yet" (one whose values are all NaN, e.g. a loss that diverged at once,
    "no finite values"), and with no metric at all the layout holds one panel
    titled "no metrics yet" (:func:`snnlab.viz._util.no_data`), never an empty layout (which HoloViews skips).

    Example:
        >>> import pandas as pd
        >>> from snnlab.viz import learning_curves
        >>> df = pd.DataFrame({"step": [1, 2, 1, 2], "name": ["loss", "loss", "acc", "acc"],
        ...                    "value": [1.0, 0.5, 0.2, 0.6]})
        >>> len(learning_curves(df))
        2
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"learning_curves: df must be a pandas DataFrame (a tidy metrics table with columns {x!r}, "
                        f"'name' and 'value', e.g. RunStore.metrics()), got {type(df).__name__}; for a list of "
                        f"such rows (dicts) pass pd.DataFrame(rows)")
    missing = [c for c in (x, "name", "value") if c not in df.columns]
    if missing:
        raise ValueError(f"learning_curves: the table lacks columns {missing} (have {list(df.columns)})")
    ensure_bokeh()
    logged = list(pd.unique(df["name"]))  # (a metric of only NaN values, e.g. a diverged loss, keeps its panel)
    df = df.dropna(subset=["value"])
    if labels and "run_id" in df.columns:
        ids = df["run_id"].unique()  # one look-up per run, not per row
        df = df.assign(run_id=df["run_id"].map(dict(zip(ids, (labels.get(r, r) for r in ids)))))
    if by == "auto":
        groups = [c for c in ("run_id", "kind") if c in df.columns and df[c].nunique() > 1]
    elif by is None:
        groups = []
    else:
        groups = [by] if isinstance(by, str) else list(by)
    by_name = dict(tuple(df.groupby("name", sort=False)))  # one pass over the rows, not one per metric
    order = logged if names is None else list(names)  # (in order of appearance)
    panels = [_curve_panel(_table_series(by_name.get(n, df.iloc[:0]), x, n, groups), x, n, groups, max_points,
                           empty=NO_FINITE if n in logged else NO_DATA) for n in order]
    return hv.Layout(panels or [_no_metrics(x)]).cols(cols)


def _no_metrics(x: str) -> hv.Overlay:
    """The one panel of a layout of learning curves without any metric."""
    return no_data(NO_DATA, x, "value", title="no metrics yet", width=theme.WIDTH // 2 + 100)


def series_curves(series: Mapping[tuple[str, str, str], tuple[Any, Any]], names: Sequence[str] | None = None,
                  labels: Mapping[str, str] | None = None, x: str = "step", cols: int = 2,
                  max_points: int | None = MAX_CURVE_POINTS) -> hv.Layout:
    """:func:`learning_curves` of metric series given as arrays, ``{(run_id, kind, name): (x, value)}`` (e.g.
    :meth:`snnlab.experiments.store.RunStore.metric_series`), each in ``x`` order: the same panels as
    ``learning_curves(table, names=names, labels=labels, max_points=max_points)`` of the tidy table of those rows,
    built without one (a table of every row of 20 long runs took longer than drawing them). Curves are keyed by
    those of run and kind that take more than one value; NaN values are dropped. No series, or a metric without a
    finite value, draws as in :func:`learning_curves`: panels that say "no data yet" / "no finite values".

    Example:
        >>> from snnlab.viz.curves import series_curves
        >>> layout = series_curves({("r1", "train", "loss"): ([1, 2], [0.9, 0.5]),
        ...                         ("r2", "train", "loss"): ([1, 2, 3], [1.0, 0.7, float("nan")])})
        >>> len(layout), sorted(layout.NdOverlay.I.keys()), len(layout.NdOverlay.I["r2"])
        (1, ['r1', 'r2'], 2)
    """
    if not isinstance(series, Mapping) or not all(isinstance(k, tuple) and len(k) == 3 for k in series):
        raise TypeError("series_curves: series must map (run_id, kind, name) tuples to (x, value) arrays, e.g. "
                        f"RunStore.metric_series(), got {type(series).__name__}"
                        + (f" with key {next(iter(series))!r}" if isinstance(series, Mapping) and series else ""))
    ensure_bokeh()
    labels = labels or {}
    kept: list[tuple[tuple[Any, str, str], tuple[np.ndarray, np.ndarray]]] = []
    logged: dict[str, None] = {}  # every metric, in key order (a metric of only NaN values keeps its panel)
    for (run, kind, name), (xs, ys) in sorted(series.items(), key=lambda item: item[0]):
        logged[name] = None
        xs, ys = np.asarray(xs), np.asarray(ys, dtype="float64")
        real = ~np.isnan(ys)
        if real.any():
            kept.append(((labels.get(run, run), kind, name), (xs, ys) if real.all() else (xs[real], ys[real])))
    varying = [i for i in (0, 1) if len({key[i] for key, _ in kept}) > 1]  # "auto": run and kind, where they vary
    groups = [("run_id", "kind")[i] for i in varying]
    by_name: dict[str, dict[Any, list[tuple[np.ndarray, np.ndarray]]]] = {}
    for key, xy in kept:
        curve = tuple(key[i] for i in varying)
        by_name.setdefault(key[2], {}).setdefault(key[2] if not curve else curve if len(curve) > 1 else curve[0],
                                                  []).append(xy)
    order = list(logged) if names is None else list(names)
    panels = [_curve_panel({k: _merged(parts) for k, parts in sorted(by_name.get(n, {}).items())}, x, n, groups,
                           max_points, empty=NO_FINITE if n in logged else NO_DATA) for n in order]
    return hv.Layout(panels or [_no_metrics(x)]).cols(cols)


def _merged(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One series of several (runs given the same label): their points in ``x`` order, stably."""
    if len(parts) == 1:
        return parts[0]
    xs, ys = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    order = np.argsort(xs, kind="stable")
    return xs[order], ys[order]


def legend_lists_drawn_series(plot: Any, element: Any) -> None:
    """Bokeh hook of live plots: a legend entry only for a series with data (a live overlay keeps every key,
    e.g. ``rounded_test_loss`` of a run that never rounds, or the previous run's metrics on a new run).

    Pass it as ``hooks=[legend_lists_drawn_series]`` in the options of a live overlay's plot.
    """
    for legend in getattr(plot.state, "legend", []):
        for item in legend.items:
            drawn = any(len(next(iter(r.data_source.data.values()), [])) for r in item.renderers
                        if hasattr(r, "data_source"))
            if item.visible != drawn:
                item.visible = drawn


#: the curves a :class:`LiveCurves` without ``metrics`` always has: the trainer's step metrics with their test and
#: rounded-test values
TRAINING_METRICS = tuple(f"{prefix}{m}" for m in STEP_METRICS for prefix in ("", "test_", "rounded_test_"))


def _live_title(title: str, series: Mapping[Any, tuple[Any, Any]]) -> str:
    """The title of a live panel: ``title``, with "(no data yet)" while none of its ``series`` has a point (a live
    plot keeps its structure, so it says so in its title, not with a text element)."""
    if any(len(xy[0]) for xy in series.values()):
        return title
    return f"{title} ({NO_DATA})" if title else NO_DATA


class LiveCurves:
    """Learning curves that grow while a model trains.

    ``.send(step, {"loss": ..., "acc": ...})`` appends one tidy row per numeric metric
    (``step, name, value``) to an ``hv.streams.Buffer`` (``.buffer``); ``.plot`` is an ``hv.DynamicMap`` that redraws on every send: one curve per
    metric, overlaid. A live plot cannot add curves once drawn: without ``metrics`` it keeps those of its first
    draw (the metrics sent so far, and :data:`TRAINING_METRICS`) and warns once for each other metric sent later. With ``metrics`` given and ``panels=True``, or with ``groups``
    (``{title: [metric, ...]}``, metrics of one scale each, e.g. ``loss`` with ``test_loss``),
    there is one DynamicMap per panel in ``.plots`` (``{title: DynamicMap}``) and ``.plot`` is
    their ``hv.Layout``: metrics of different scales (loss, accuracy, spike counts) each get
    their own y axis. Evaluation metrics (:func:`is_evaluation_metric`: one point per test) are
    drawn with markers and the x range is padded, so the first test point, at the last step,
    shows whole.

    Memory stays bounded: the buffer keeps the last ``buffer_length`` rows of step metrics and, apart from them,
    the last ``eval_length`` rows of evaluation metrics (:func:`is_evaluation_metric`), so a long run's early test
    points stay drawn after its early steps left the buffer (rows in the order sent, the oldest dropped first).

    A redraw sends every point of a plot to the browser: a series of more than ``max_points`` buffered
    points is drawn thinned (:func:`downsample_minmax`: first, last, each bucket's min and max); the buffer
    keeps every row. Every send redraws every plot of the buffer: many rows at a time go in one
    :meth:`send_many` / :meth:`send_table` (one redraw), not row by row. ``.send`` may be called
    from a training thread in Panel (the update is handed to the server's event loop). In a Jupyter
    kernel a plot shown with ``jupyter_bokeh`` must not be redrawn while it applies a message from
    the browser (another thread): the trainer widget (a higher layer) holds one lock for both.
    A drawing error raised by a send loses no row (the rows are in the buffer; the next send draws them).
    Empty (before the first row, after :meth:`clear`, or while none of a panel's metrics has a row) a plot draws
    its axes and says "no data yet" in its title.
    A plot shown again (a notebook cell run again, a second output, a new page) draws the rows buffered by then
    (:func:`~snnlab.viz.piped.live_dmap`: one redraw per new plot, none more per send).

    Example:
        >>> from snnlab.viz import LiveCurves
        >>> live = LiveCurves(buffer_length=1000)
        >>> live.send(1, {"loss": 0.9, "acc": 0.3})
        >>> live.send_many([(2, {"loss": 0.7, "acc": 0.5}), (3, {"loss": 0.6})])   # one redraw
        3
        >>> len(live.buffer.data)
        5
        >>> small = LiveCurves(buffer_length=2)       # 2 step rows kept; the test points stay
        >>> _ = small.send_many([(s, {"loss": 1.0 / s, "test_loss": 0.5}) for s in (1, 2, 3, 4)])
        >>> kept = small.buffer.data.groupby("name")["step"].apply(list).to_dict(); kept
        {'loss': [3.0, 4.0], 'test_loss': [1.0, 2.0, 3.0, 4.0]}
        >>> grouped = LiveCurves(groups={"loss": ["loss", "test_loss"], "accuracy": ["acc"]})
        >>> list(grouped.plots), len(grouped.plot)
        (['loss', 'accuracy'], 2)
    """

    #: x padding (a fraction of the x range) of live plots: a test point at the last step stays inside
    X_PADDING = 0.04

    def __init__(self, metrics: Sequence[str] | None = None, buffer_length: int = 10_000, x: str = "step",
                 panels: bool = False, groups: Mapping[str, Sequence[str]] | None = None,
                 width: int | None = None, height: int | None = None,
                 max_points: int | None = MAX_CURVE_POINTS, eval_length: int = EVAL_BUFFER_LENGTH) -> None:
        ensure_bokeh()
        for arg, value in (("buffer_length", buffer_length), ("eval_length", eval_length)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"LiveCurves: {arg} must be a positive int (rows kept), got {value!r}")
        self.buffer_length, self.eval_length = int(buffer_length), int(eval_length)
        self.max_points = max_points
        if metrics is not None and not len(metrics):  # (an overlay without curves would not draw)
            raise ValueError("LiveCurves: metrics is empty; give the metrics to draw, or None for every metric sent")
        if groups is not None:
            groups = {str(title): list(names) for title, names in groups.items()}
            if not groups or not all(groups.values()):
                raise ValueError("LiveCurves: groups must map each panel title to a non-empty list of metrics")
            metrics = list(dict.fromkeys(n for names in groups.values() for n in names))
        elif panels and metrics:
            groups = {m: [m] for m in metrics}
        self.metrics = None if metrics is None else list(metrics)
        self.groups = groups
        self.x = x
        self.panels = groups is not None
        self._lock = threading.Lock()
        self._follow_lock = threading.Lock()  # one follow() at a time: two would forward the same rows twice
        self._followed: LiveCurves | None = None  # the source :meth:`follow` shows, and its rows sent so far
        self._followed_seen = 0
        self.total_rows = 0  # rows sent so far (the buffer keeps the last buffer_length, and evaluation rows)
        self._eval_rows = 0  # evaluation rows in the buffer
        self._tail = 0  # the buffer's last rows that are the rows last sent, none left out (see rows_since)
        self._drawn_names: set[str] | None = None  # without metrics: the curves the first draw fixed
        self._warned: set[str] = set()
        example = pd.DataFrame({x: pd.Series(dtype="float64"), "name": pd.Series(dtype="object"),
                                "value": pd.Series(dtype="float64")})
        # (the buffer never trims by itself: _push drops the rows to drop before each send)
        self.buffer = hv.streams.Buffer(example, length=self.buffer_length + self.eval_length, index=False)
        if groups is not None:
            size = dict(width=width or theme.WIDTH // 2 + 30, height=height or theme.HEIGHT - 40)
            self.plots: dict[str, hv.DynamicMap] = {
                title: live_dmap(self._callback(names, title, legend_below=True, **size), [self.buffer])
                for title, names in groups.items()}
            self.plot: hv.DynamicMap | hv.Layout = hv.Layout(list(self.plots.values())).cols(2)
        else:
            size = dict(width=width or theme.WIDTH, height=height or theme.HEIGHT)
            self.plot = live_dmap(self._callback(self.metrics, "", **size), [self.buffer])
            self.plots = {}

    def _callback(self, names: list[str] | None, title: str, width: int, height: int, legend_below: bool = False):
        xdim = hv.Dimension(self.x)
        ydim = hv.Dimension("value", label=title) if title else "value"

        fixed: list[str] | None = None  # the keys without names given: those of the first draw

        def draw(data: pd.DataFrame) -> hv.NdOverlay | hv.Overlay:
            # every key on every draw: a live overlay cannot gain items after its first draw. Without names, the
            # first draw's metrics and the trainer's (TRAINING_METRICS; legend entries only for drawn ones)
            nonlocal fixed
            keys = names
            if keys is None:
                if fixed is None:
                    fixed = list(dict.fromkeys([*pd.unique(data["name"]), *TRAINING_METRICS]))
                    self._drawn_names = set(fixed)
                keys = fixed
            by_name = dict(tuple(data.groupby("name", sort=False)))
            series = {}
            for n in keys:
                g = by_name.get(n, data.iloc[:0])
                series[n] = (g[self.x].to_numpy(), g["value"].to_numpy())
            plot = series_overlay(series, xdim, ydim, points=[n for n in keys if is_evaluation_metric(n)],
                                  max_points=self.max_points)
            look = (theme.legend_below(len(series), height=height) if legend_below
                    else dict(legend_position="right", height=height))
            plot = style_overlay(plot, framewise=True, width=width, title=_live_title(title, series), **look)
            pad = dict(padding=(self.X_PADDING, 0.1))
            whole = "NdOverlay" if isinstance(plot, hv.NdOverlay) else "Overlay"
            # canvas, not WebGL: of several live WebGL plots on one page the browser drew the lines of only one
            overall = dict(hooks=[legend_lists_drawn_series], backend_opts={"plot.output_backend": "canvas"})
            return plot.opts({"Curve": pad, "Scatter": pad, whole: overall}, backend="bokeh")

        return draw

    def _rows(self, step: float, metrics: Mapping[str, Any]) -> dict[str, float]:
        flat = {k: v for k, v in flatten_metrics(metrics).items() if math.isfinite(v)}
        if self.metrics is not None:
            flat = {k: v for k, v in flat.items() if k in self.metrics}
        return flat

    def _warn_undrawn(self, names: Iterable[str]) -> None:
        """Warn once per metric that arrives after a plot without ``metrics`` was drawn with other keys."""
        if self._drawn_names is None:
            return
        new = sorted(set(names) - self._drawn_names - self._warned)
        if new:
            self._warned.update(new)
            warnings.warn(f"LiveCurves: {new} arrived after the plot was first drawn with {sorted(self._drawn_names)}; "
                          "a live plot cannot add curves once shown (the rows are kept in the buffer): give "
                          "LiveCurves(metrics=[...]) every name up front", UserWarning, stacklevel=3)

    def _push(self, rows: pd.DataFrame) -> None:
        # the Buffer appends the rows first, then redraws: a drawing error (raised to the caller) loses no row
        with self._lock:
            rows, sent = rows.reset_index(drop=True), len(rows)
            old = self.buffer.data
            new_eval = _evaluation_rows(rows["name"])
            n_eval = int(new_eval.sum())
            steps_over = len(old) - self._eval_rows + len(rows) - n_eval > self.buffer_length
            if steps_over or self._eval_rows + n_eval > self.eval_length:
                # the oldest step rows past buffer_length and evaluation rows past eval_length go: the old ones
                # silently (the send below redraws), the new ones (more than fit) before the send
                is_eval = np.concatenate([_evaluation_rows(old["name"]), new_eval])
                keep = np.ones(len(is_eval), dtype=bool)
                for kind, length in ((is_eval, self.eval_length), (~is_eval, self.buffer_length)):
                    where = np.flatnonzero(kind)
                    keep[where[:max(0, len(where) - length)]] = False
                dropped = np.flatnonzero(~keep)
                if len(dropped):
                    after = len(keep) - int(dropped[-1]) - 1  # all kept, and sent after the last row dropped
                    self._tail = min(self._tail + len(rows), after)
                else:
                    self._tail += len(rows)
                self._eval_rows = int((is_eval & keep).sum())
                with param.edit_constant(self.buffer):
                    self.buffer.data = old[keep[:len(old)]]
                rows = rows[keep[len(old):]].reset_index(drop=True)
            else:
                self._eval_rows += n_eval
                self._tail += len(rows)
            self.total_rows += sent
            self.buffer.send(rows)

    def send(self, step: float, metrics: Mapping[str, Any]) -> None:
        """Append the numeric metrics of one step (nested dicts flattened with ``/``; non-finite dropped)."""
        self.send_many([(step, metrics)])

    def send_many(self, items: Iterable[tuple[float, Mapping[str, Any]]]) -> int:
        """Append the metrics of many steps (``[(step, metrics), ...]``, as :meth:`send`) in one send: one
        redraw. Returns the number of rows appended."""
        xs: list[float] = []
        names: list[str] = []
        values: list[float] = []
        for step, metrics in items:
            flat = self._rows(step, metrics)
            xs.extend([float(step)] * len(flat))
            names.extend(flat)
            values.extend(flat.values())
        if not names:
            return 0
        self._warn_undrawn(names)
        self._push(pd.DataFrame({self.x: xs, "name": names, "value": values}))
        return len(names)

    def _clean(self, df: pd.DataFrame) -> pd.DataFrame:
        """The ``x, name, value`` rows of a tidy table that this plot shows (numeric values, known metrics)."""
        rows = df[[self.x, "name", "value"]].dropna(subset=["value"]).astype({self.x: "float64", "value": "float64"})
        return rows[rows["name"].isin(self.metrics)] if self.metrics is not None else rows

    def send_table(self, df: pd.DataFrame) -> None:
        """Append rows of a tidy metrics table (e.g. ``RunStore.metrics(run, since_step=last)``) in one send."""
        if df.empty:
            return
        rows = self._clean(df)
        if len(rows):
            self._warn_undrawn(pd.unique(rows["name"]))
            self._push(rows)

    def replace_table(self, df: pd.DataFrame) -> None:
        """Show only the rows of ``df`` (a new run): the old rows go and the new ones come in one redraw, so
        the plots never show an empty frame in between."""
        if not len(self._clean(df)):
            self.clear()
            return
        with self._lock:
            with param.edit_constant(self.buffer):
                self.buffer.data = self.buffer.data.iloc[:0]  # (no redraw: the send below draws)
            self._eval_rows = self._tail = 0
        self.send_table(df)

    def forward_from(self, source: "LiveCurves", seen: int) -> tuple[int, int]:
        """Show the rows ``source`` received after its first ``seen`` (see :meth:`rows_since`): appended in
        one redraw, or, where some already left ``source``'s buffer, all it holds instead of what is shown.
        Returns ``(rows sent to source so far, rows forwarded)``: pass the first as ``seen`` next time.

        Example:
            >>> src, page = LiveCurves(), LiveCurves()
            >>> src.send(1, {"loss": 0.5}); src.send(2, {"loss": 0.4})
            >>> page.forward_from(src, 0), page.forward_from(src, 2), len(page.buffer.data)
            ((2, 2), (2, 0), 2)
        """
        rows, total, gap = source.rows_since(seen)
        if gap:
            self.replace_table(rows)
        else:
            self.send_table(rows)
        return total, len(rows)

    def follow(self, source: "LiveCurves", keep_until_rows: bool = False) -> bool:
        """Show what ``source`` (a training session's curves) holds and, on later calls, what it receives: a new
        ``source`` replaces the rows shown (with ``keep_until_rows``, only once it has rows), the same one has its
        new rows forwarded (:meth:`forward_from`). Returns whether the rows shown changed.

        Example:
            >>> run1, run2, page = LiveCurves(), LiveCurves(), LiveCurves()
            >>> run1.send(1, {"loss": 0.5}); page.follow(run1), page.follow(run1), len(page.buffer.data)
            (True, False, 1)
            >>> page.follow(run2, keep_until_rows=True), len(page.buffer.data)  # run2 has no rows yet
            (False, 1)
        """
        with self._follow_lock:  # (a dashboard's polls run on a thread pool and may overlap on a busy machine)
            if source is not self._followed:
                rows, total, _ = source.rows_since(0)
                if not len(rows) and keep_until_rows:
                    return False
                self._followed, self._followed_seen = source, total
                self.replace_table(rows)
                return True
            self._followed_seen, forwarded = self.forward_from(source, self._followed_seen)
            return forwarded > 0

    def rows_since(self, seen: int) -> tuple[pd.DataFrame, int, bool]:
        """``(rows, total, gap)``: the buffered rows sent after the first ``seen`` rows, the number of rows
        sent so far, and whether rows after ``seen`` already left the buffer (then ``rows`` is all it holds,
        the evaluation rows kept from earlier included).

        Example:
            >>> live = LiveCurves(buffer_length=4)
            >>> for step in range(3):
            ...     live.send(step, {"loss": 1.0 / (step + 1)})
            >>> rows, total, gap = live.rows_since(1)
            >>> rows["step"].tolist(), total, gap
            ([1.0, 2.0], 3, False)
        """
        with self._lock:
            data, total, tail = self.buffer.data, self.total_rows, self._tail
        new = total - int(seen)
        if new <= 0:
            return data.iloc[:0], total, False
        if new > min(tail, len(data)):
            return data, total, True
        return data.iloc[len(data) - new:], total, False

    def clear(self) -> None:
        """Drop all rows (e.g. when a new run starts)."""
        with self._lock:
            self._eval_rows = self._tail = 0
            self.buffer.clear()


def _evaluation_rows(names: pd.Series) -> np.ndarray:
    """Which rows of a ``name`` column are of evaluation metrics (:func:`is_evaluation_metric`), one test per name."""
    codes, uniques = pd.factorize(names)
    if not len(uniques):
        return np.zeros(len(names), dtype=bool)
    return np.array([is_evaluation_metric(str(u)) for u in uniques], dtype=bool)[codes]


def live_learning_curves(metrics: Sequence[str] | None = None,
                         buffer_length: int = 10_000) -> tuple[hv.DynamicMap, hv.streams.Buffer]:
    """``(plot, buffer)`` of a :class:`LiveCurves`; send tidy rows ``step, name, value`` to the buffer.

    Example:
        >>> import pandas as pd
        >>> from snnlab.viz import live_learning_curves
        >>> plot, buf = live_learning_curves()
        >>> buf.send(pd.DataFrame({"step": [1.0], "name": ["loss"], "value": [0.5]}))
        >>> len(buf.data)
        1
        >>> buf.send(pd.DataFrame({"step": range(20_000), "name": "loss", "value": 0.1}))
        >>> len(buf.data)  # (the last buffer_length rows)
        10000
    """
    live = LiveCurves(metrics=metrics, buffer_length=buffer_length)
    # rows sent straight to the buffer skip LiveCurves' own trimming: the buffer keeps the last buffer_length itself
    live.buffer.length = live.buffer_length
    return live.plot, live.buffer
