"""Pareto fronts of trade-off tables (e.g. accuracy up, spikes per sample down)."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd


def pareto_mask(values: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values [n, k]``.

    A row is dominated when another row is at least as good in every objective and strictly
    better in one. NaN rows are never on the front. ``ValueError`` for no objectives or a shape that does not match.

    Example:
        >>> pareto_mask([[0.9, 100], [0.8, 20], [0.85, 150]], [True, False]).tolist()
        [True, True, False]
    """
    if len(maximize) == 0:
        raise ValueError("pareto_mask: give at least one objective (maximize is empty: with none, no row is "
                         "dominated and every row would be on the front)")
    v = np.asarray(values, dtype=float).copy()
    if v.ndim != 2 or v.shape[1] != len(maximize):
        raise ValueError(f"pareto_mask: values must be [n, {len(maximize)}], got shape {v.shape}")
    v[:, [not m for m in maximize]] *= -1.0            # everything becomes "larger is better"
    ok = ~np.isnan(v).any(axis=1)
    mask = np.zeros(len(v), dtype=bool)
    for i in np.flatnonzero(ok):
        others = v[ok]
        dominated = np.any(np.all(others >= v[i], axis=1) & np.any(others > v[i], axis=1))
        mask[i] = not dominated
    return mask


def pareto_front(df: pd.DataFrame, objectives: dict[str, str]) -> pd.DataFrame:
    """The non-dominated rows of ``df`` for ``objectives`` ``{column: "max" | "min"}``, sorted by the first.

    ``TypeError`` unless ``df`` is a DataFrame and ``objectives`` a dict; ``ValueError`` for no objectives, an unknown,
    repeated or non-numeric column or a direction other than ``"max"`` / ``"min"``. An empty ``df`` gives an empty copy.
    A row with NaN (or None) in an objective is left out: it is never on the front.

    Example:
        >>> df = pd.DataFrame({"accuracy": [0.9, 0.8, 0.85, 0.7], "spikes": [100, 20, 150, 30]})
        >>> pareto_front(df, {"accuracy": "max", "spikes": "min"})["accuracy"].tolist()
        [0.8, 0.9]
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"pareto_front: df must be a pandas DataFrame, got {type(df).__name__}")
    if not isinstance(objectives, Mapping):
        raise TypeError(f"pareto_front: objectives must be a dict {{column: 'max' | 'min'}}, got "
                        f"{type(objectives).__name__} {objectives!r}")
    if not objectives:
        raise ValueError("pareto_front: objectives is empty; give at least one {column: 'max' | 'min'}, e.g. "
                         "{'accuracy': 'max', 'spikes_per_sample': 'min'}")
    for col, sense in objectives.items():
        if col not in df.columns:
            raise ValueError(f"pareto_front: no column {col!r}; columns are {list(df.columns)}")
        if (n := list(df.columns).count(col)) > 1:
            raise ValueError(f"pareto_front: the column {col!r} appears {n} times in df")
        if sense not in ("max", "min"):
            raise ValueError(f"pareto_front: objective {col!r} must be 'max' or 'min', got {sense!r}")
    if df.empty:
        return df.copy()
    cols = list(objectives)
    try:
        values = df[cols].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pareto_front: the objective columns {cols} must hold numbers (or NaN), but {exc}") from None
    mask = pareto_mask(values, [objectives[c] == "max" for c in cols])
    return df[mask].sort_values(cols[0]).reset_index(drop=True)
