"""Robustness curves: accuracy against perturbation level, one curve per run and perturbation."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import holoviews as hv
import pandas as pd

from . import theme
from ._util import ensure_bokeh, has_data, no_data, table_arg

__all__ = ["robustness_plot"]

_LEVEL_LABELS = {"jitter": "jitter std [steps]", "deletion": "deletion probability",
                 "insertion": "insertion probability", "gaussian": "noise std"}


def robustness_plot(df: pd.DataFrame | Sequence[Mapping[str, Any]], x: str = "level", y: str = "accuracy",
                    by: Sequence[str] | str | None = "auto", split: bool = True) -> hv.Layout | hv.NdOverlay:
    """Accuracy against perturbation level from :func:`snnlab.metrics.robustness_curve` tables.

    ``df`` has columns ``perturbation, level, accuracy`` (plus e.g. ``run_id``/``model``/``name`` when
    several tables were concatenated), or a list of such rows as dicts (read as ``pandas.DataFrame(rows)``; one dict
    alone, or a list of tables, is a ``TypeError`` saying what to pass). ``by``: columns that get one curve each;
    ``"auto"`` uses whichever of ``run_id``, ``model``, ``name`` exist. ``split=True`` gives an ``hv.Layout`` with one
    panel per perturbation (their levels have different units); ``split=False`` one ``hv.NdOverlay``
    with a curve per (run, perturbation). Curves are ``hv.Curve`` with kdim ``level``.

    A one-shot plot of measured curves: a table without rows is a mistake (nothing was measured) and raises
    ``ValueError``. Rows with NaN ``x`` or ``y`` are left out; a panel (or, unsplit, the plot) left with none
    draws empty with the message ``no finite <y> values`` (:func:`snnlab.viz._util.no_data`).

    Example:
        >>> import pandas as pd
        >>> from snnlab.viz import robustness_plot
        >>> df = pd.DataFrame({"perturbation": ["jitter"] * 3, "level": [0.0, 1.0, 2.0],
        ...                    "accuracy": [0.9, 0.8, 0.6], "n_samples": [100] * 3})
        >>> plot = robustness_plot(df)
        >>> plot.NdOverlay.Jitter.last.dimension_values("accuracy").tolist()
        [0.9, 0.8, 0.6]
    """
    df = table_arg(df, "robustness_plot", rows="perturbation level")
    missing = [c for c in (x, y) if c not in df.columns]
    if missing:
        raise ValueError(f"robustness_plot: the table lacks columns {missing} (have {list(df.columns)})")
    if not len(df):
        raise ValueError("robustness_plot: the table has no rows; measure curves first, e.g. with "
                         "snnlab.metrics.robustness_curve(model, loader, 'jitter', [0, 1, 2])")
    ensure_bokeh()
    if "perturbation" not in df.columns:
        df = df.assign(perturbation="perturbation")
    if by == "auto":
        groups = [c for c in ("run_id", "model", "name") if c in df.columns]
    elif by is None:
        groups = []
    else:
        groups = [by] if isinstance(by, str) else list(by)

    size = dict(width=theme.WIDTH // 2 + 100)

    def panel(part: pd.DataFrame, keys: list[str], title: str, xlabel: str) -> hv.NdOverlay | hv.Overlay:
        xdim = hv.Dimension(x, label=xlabel)
        ydim = hv.Dimension(y, range=(0, 1) if y == "accuracy" else (None, None))
        if not has_data(part[x], part[y]):
            return no_data(f"no finite {y} values", xdim, ydim, title=title, **size)
        part = part[part[x].notna() & part[y].notna()]
        items: dict[Any, Any] = {}
        grouped = part.groupby(keys, sort=False) if keys else [(("all",), part)]
        for key, g in grouped:
            key = key if isinstance(key, tuple) else (key,)
            g = g.groupby(x, as_index=False)[y].mean().sort_values(x)  # repeated levels (seeds): mean
            items[key if len(key) > 1 else key[0]] = hv.Curve((g[x].to_numpy(), g[y].to_numpy()),
                                                              kdims=[xdim], vdims=[ydim])
        return hv.NdOverlay(items, kdims=keys or ["curve"]).opts(
            **size, title=title, tools=["hover"], backend="bokeh",
            **theme.legend_below(len(items) if keys else 0))

    if not split:
        return panel(df, groups + ["perturbation"], "robustness", x)
    panels = []
    for kind, part in df.groupby("perturbation", sort=False):
        drawn = panel(part, groups, str(kind), _LEVEL_LABELS.get(str(kind), x))
        panels.append(drawn.relabel(group=type(drawn).__name__, label=str(kind)))
    return hv.Layout(panels).cols(2)
