"""Pareto fronts of two metrics (a pure function on DataFrames, no plotting)."""
from __future__ import annotations

import pandas as pd

from snnlab.metrics.pareto import pareto_mask

__all__ = ["MAXIMIZE", "MINIMIZE", "better_direction", "pareto_front"]

#: Metrics where larger is better (matched by prefix, so ``accuracy_test`` counts too).
MAXIMIZE = ("accuracy", "acc", "robustness", "auc", "f1", "precision", "recall")
#: Metrics where smaller is better.
MINIMIZE = ("spikes_per_sample", "synops_per_sample", "energy_per_sample_j", "latency_steps", "loss", "spikes",
            "synops", "energy", "latency", "params", "time")


def better_direction(column: str) -> bool:
    """``True`` if larger values of ``column`` are better (accuracy, robustness, ...), ``False`` for costs.

    Example:
        >>> better_direction("accuracy"), better_direction("synops_per_sample")
        (True, False)
    """
    name = column.split(".")[-1].split("/")[-1].lower()
    if any(name.startswith(m) for m in MINIMIZE):
        return False
    if any(name.startswith(m) for m in MAXIMIZE):
        return True
    raise ValueError(f"better_direction: don't know whether larger {column!r} is better; pass maximize_x/maximize_y")


def pareto_front(df: pd.DataFrame, x: str, y: str, maximize_x: bool | None = None,
                 maximize_y: bool | None = None) -> pd.DataFrame:
    """The non-dominated rows of ``df`` in the objectives ``x`` and ``y``, sorted by ``x`` ascending.

    A row is dominated when another row is at least as good in both objectives and strictly better
    in one (good = larger where ``maximize_*`` is true, smaller otherwise; ``None`` guesses from the
    column name with :func:`better_direction`). Rows with NaN in ``x`` or ``y`` are ignored; exact
    duplicates on the front are all kept. The original index is kept (the rule is
    :func:`snnlab.metrics.pareto.pareto_mask`).

    Example:
        >>> import pandas as pd
        >>> from snnlab.viz import pareto_front
        >>> df = pd.DataFrame({"spikes": [10, 20, 30, 15], "accuracy": [0.5, 0.8, 0.9, 0.4]})
        >>> pareto_front(df, "spikes", "accuracy", maximize_x=False, maximize_y=True).index.tolist()
        [0, 1, 2]
    """
    for c in (x, y):
        if c not in df.columns:
            raise KeyError(f"pareto_front: no column {c!r} (have {list(df.columns)})")
    mx = better_direction(x) if maximize_x is None else bool(maximize_x)
    my = better_direction(y) if maximize_y is None else bool(maximize_y)
    clean = df[df[x].notna() & df[y].notna()]
    if clean.empty:
        return clean.copy()
    keep = pareto_mask(clean[[x, y]].to_numpy(dtype=float), [mx, my])
    return clean[keep].sort_values([x, y], kind="mergesort")
