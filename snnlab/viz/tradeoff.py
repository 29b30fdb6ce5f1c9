"""Trade-off scatters of two metrics across runs, with the Pareto front and each run's config on hover."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import holoviews as hv
import numpy as np
import pandas as pd

from . import theme
from ._util import ensure_bokeh, has_data, no_data, table_arg
from .pareto import better_direction, pareto_front

__all__ = ["tradeoff_scatter"]


def _resolve(df: pd.DataFrame, col: str, strict: bool = True) -> str:
    """``col``, or ``config.<col>`` where only that exists; ``KeyError`` for neither (``strict=False``: ``col``)."""
    if col in df.columns:
        return col
    if f"config.{col}" in df.columns:
        return f"config.{col}"
    if not strict:
        return col
    raise KeyError(f"tradeoff_scatter: no column {col!r} (have {list(df.columns)})")


def _spans_decades(values: pd.Series, decades: float = 2.0) -> bool:
    """Whether positive ``values`` span more than ``decades`` powers of ten (an lr or noise sweep): coloured on a
    log scale, their small settings would otherwise share one colour."""
    v = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    return bool(v.size) and bool((v > 0).all()) and float(np.log10(v.max() / v.min())) > decades


def tradeoff_scatter(df: pd.DataFrame | Sequence[Mapping[str, Any]], x: str, y: str, color: str | None = None,
                     hover: Sequence[str] | None = None, front: bool = True, maximize_x: bool | None = None,
                     maximize_y: bool | None = None, label: str | None = None) -> hv.Overlay:
    """Scatter of two metrics over runs/models with the Pareto front as a step line.

    ``df``: one row per run, e.g. :meth:`RunStore.summaries` (``config.<field>`` columns and metric
    columns) or :func:`snnlab.metrics.metrics_table`, or a list of row dicts such as :func:`snnlab.metrics.evaluate`
    results (read as ``pandas.DataFrame(rows)``; one dict alone is a ``TypeError``: pass ``[result]``).
    ``x``/``y``: any two metric columns
    (accuracy, spikes_per_sample, synops_per_sample, energy_per_sample_j, latency_steps, a
    robustness column, ...). ``color``: a column or config field (``"lr"`` finds ``"config.lr"``),
    numeric -> colour bar (on a log scale for positive values spanning more than two decades, such as an ``lr``
    sweep), otherwise categorical. ``hover``: columns shown on hover (default: the
    run's ``name``/``run_id``/``model`` and every ``config.*`` column). Whether larger is better is
    guessed from the names (:func:`snnlab.viz.pareto.better_direction`) unless ``maximize_*`` is
    given. Returns ``hv.Overlay`` of the ``hv.Scatter`` (label ``runs``) and, with ``front=True``,
    the front as ``hv.Curve`` (label ``Pareto front``, rows of :func:`pareto_front`). The legend is
    listed below the plot (:func:`snnlab.viz.theme.legend_below`), never over the runs.

    Live plots (the dashboard's, the trade-off explorer) draw the table as it grows, so a table without runs draws:
    a table of no rows (whatever its columns) or one where no row has both ``x`` and ``y`` (all NaN) gives an
    overlay with the message ``no runs yet`` / ``no run has both <x> and <y> yet`` as its title and in its middle
    (:func:`snnlab.viz._util.no_data`). Unknown columns of a table with rows raise ``KeyError``, ``x == y``
    ``ValueError``.

    Example:
        >>> import pandas as pd
        >>> from snnlab.viz import tradeoff_scatter
        >>> df = pd.DataFrame({"name": ["a", "b", "c"], "config.lr": [1e-3, 1e-2, 1e-1],
        ...                    "accuracy": [0.8, 0.9, 0.7], "spikes_per_sample": [100.0, 300.0, 200.0]})
        >>> plot = tradeoff_scatter(df, "spikes_per_sample", "accuracy", color="lr")
        >>> plot.Curve.Pareto_front.dimension_values("accuracy").tolist()
        [0.8, 0.9]
    """
    df = table_arg(df, "tradeoff_scatter")
    ensure_bokeh()
    x, y = _resolve(df, x, strict=len(df) > 0), _resolve(df, y, strict=len(df) > 0)
    if x == y:
        raise ValueError(f"tradeoff_scatter: x and y are both {x!r}; a trade-off needs two different metrics")
    size = dict(width=theme.WIDTH, height=theme.HEIGHT + 100)
    if not len(df):
        return no_data("no runs yet", x, y, **size)
    color_col = _resolve(df, color) if color is not None else None
    if hover is None:
        hover_cols = [c for c in ("name", "run_id", "model") if c in df.columns]
        hover_cols += [c for c in df.columns if str(c).startswith("config.")]
    else:
        hover_cols = [_resolve(df, h) for h in hover]
    if not has_data(df[x], df[y]):
        return no_data(f"no run has both {x} and {y} yet", x, y, **size)
    extra = [c for c in dict.fromkeys(hover_cols + ([color_col] if color_col else [])) if c not in (x, y)]
    data = df[[x, y] + extra].copy()
    for c in extra:  # lists/dicts/None in configs would break the data source
        if data[c].dtype == object:
            data[c] = data[c].astype(str)
    scatter = hv.Scatter(data, kdims=[hv.Dimension(x)], vdims=[hv.Dimension(c) for c in [y] + extra],
                         label=label or "runs")
    opts: dict[str, Any] = dict(size=9, tools=["hover"], hover_tooltips=[c for c in [x, y] + hover_cols],
                                line_color="black", line_width=0.5)
    entries = 1  # legend entries: "runs", or one per colour category; plus the front
    if color_col is not None:
        numeric = pd.api.types.is_numeric_dtype(df[color_col])
        opts.update(color=color_col, cmap=theme.CMAP_COUNTS if numeric else theme.CATEGORICAL, colorbar=numeric,
                    show_legend=not numeric, logz=numeric and _spans_decades(df[color_col]))
        entries = 0 if numeric else int(data[color_col].nunique())
    else:
        opts.update(color=theme.CATEGORICAL[0])
    items: list[Any] = [scatter.opts(backend="bokeh", **opts)]
    if front:
        mx = better_direction(x) if maximize_x is None else bool(maximize_x)
        my = better_direction(y) if maximize_y is None else bool(maximize_y)
        pf = pareto_front(df, x, y, mx, my)
        items.insert(0, hv.Curve((pf[x].to_numpy(), pf[y].to_numpy()), kdims=[hv.Dimension(x)],
                                 vdims=[hv.Dimension(y)], label="Pareto front").opts(
            interpolation="steps-pre" if mx else "steps-post", color=theme.FRONT_COLOR, line_width=2,
            line_dash="dashed", backend="bokeh"))
        entries += 1
    # padding: the best runs sit on the edges of the ranges, and would be drawn half outside the plot;
    # the legend goes below the plot: inside it, it hid the runs in its corner (often the best ones)
    return hv.Overlay(items).opts(padding=0.08, width=size["width"], backend="bokeh",
                                  **theme.legend_below(entries, height=size["height"]))
