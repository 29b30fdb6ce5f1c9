"""Pareto fronts of two metrics (a pure function on DataFrames, no plotting)."""
from __future__ import annotations

import functools
import re

import pandas as pd

from snnlab.metrics.pareto import pareto_mask

__all__ = ["MAXIMIZE", "MAXIMIZE_ANYWHERE", "METRICS", "MINIMIZE", "better_direction", "known_direction", "metric_columns", "pareto_front"]

#: Metrics where larger is better (matched as whole words: ``accuracy_test``, ``acc@1`` and ``test_acc`` count,
#: ``accumulated_loss`` and ``f10_rate`` do not; see :func:`better_direction`).
MAXIMIZE = ("accuracy", "acc", "robustness", "auc", "f1", "precision", "recall", "activation_sparsity", "sparsity")
#: Metrics where smaller is better (matched as whole words, as :data:`MAXIMIZE`).
MINIMIZE = ("spikes_per_sample", "synops_per_sample", "energy_per_sample_j", "latency_steps", "loss", "spikes",
            "synops", "macs", "energy", "latency", "params", "time")


#: Name parts that mean "larger is better" wherever they occur (``test_accuracy``, ``robust_accuracy_jitter_2``).
MAXIMIZE_ANYWHERE = ("accuracy", "robust")


#: a word of a name part: letters and digits (``acc@1`` -> ``acc``, ``1``; ``f10_rate`` -> ``f10``, ``rate``)
_WORD = re.compile(r"[a-z0-9]+")
#: the one-word metrics, matched as any word of a name part when no part starts with a known metric
_MAXIMIZE_WORDS = frozenset(m for m in MAXIMIZE if _WORD.fullmatch(m))
_MINIMIZE_WORDS = frozenset(m for m in MINIMIZE if _WORD.fullmatch(m))


def _starts_with_word(name: str, metric: str) -> bool:
    """``name`` starts with ``metric`` followed by the end or a character that is neither a letter nor a digit
    (``acc_test``, ``acc@1`` start with ``acc``; ``accumulated_loss`` does not)."""
    return name.startswith(metric) and (len(name) == len(metric) or not name[len(metric)].isalnum())


@functools.lru_cache(maxsize=1)
def _config_fields() -> frozenset[str]:
    """The :class:`~snnlab.training.ExperimentConfig` field names (imported when first needed)."""
    from snnlab.training.config import ExperimentConfig

    return frozenset(ExperimentConfig.fields())


def better_direction(column: str) -> bool:
    """``True`` if larger values of ``column`` are better (accuracy, robustness, ...), ``False`` for costs.

    The parts of a nested name (``rounded/accuracy``, ``spikes_per_layer/1``) are tried from the last one
    back, so the innermost known metric decides: a part starting with a cost (:data:`MINIMIZE`) is
    minimised, one starting with a gain (:data:`MAXIMIZE`) or containing ``accuracy`` / ``robust``
    anywhere (``test_accuracy``, ``rounded_test_accuracy``, ``robust_accuracy_deletion_0.3``) maximised;
    otherwise the last known metric among its words decides (``test_acc``, ``val_f1``: gains; ``accumulated_loss``,
    ``n_spikes``: costs). Names match as whole words, words being split at anything but a letter or a digit:
    ``acc`` matches ``acc``, ``acc_test``, ``acc@1`` and ``test_acc`` but not ``accumulated_loss``; ``f1`` not
    ``f10_rate``.
    Raises ``ValueError`` for a name that tells neither (``n_samples``) and for a ``config.<field>`` column:
    a setting is a choice, not an outcome (``config.time_steps`` is no cost to minimise); the words of a bare
    configuration field's name (a sweep table's ``max_spikes`` column) are not read either.

    Example:
        >>> better_direction("accuracy"), better_direction("synops_per_sample"), better_direction("spikes_per_layer/1")
        (True, False, False)
        >>> better_direction("robust_accuracy_deletion_0.3"), better_direction("rounded_test_accuracy")
        (True, True)
        >>> better_direction("acc@1"), better_direction("test_acc"), better_direction("accumulated_loss")
        (True, True, False)
        >>> better_direction("config.time_steps")
        Traceback (most recent call last):
        ...
        ValueError: better_direction: 'config.time_steps' is a setting, not an outcome: pass maximize_x/maximize_y to say whether larger is better
    """
    if column.startswith("config."):
        raise ValueError(f"better_direction: {column!r} is a setting, not an outcome: pass maximize_x/maximize_y to "
                         "say whether larger is better")
    for name in reversed(column.replace(".", "/").lower().split("/")):
        if any(_starts_with_word(name, m) for m in MINIMIZE):
            return False
        if any(_starts_with_word(name, m) for m in MAXIMIZE) or any(m in name for m in MAXIMIZE_ANYWHERE):
            return True
        if name in _config_fields():  # a sweep table's grid column (max_spikes): a setting, as config.<field> is
            break
        for word in reversed(_WORD.findall(name)):  # e.g. test_acc, val_loss: the last known word decides
            if word in _MINIMIZE_WORDS:
                return False
            if word in _MAXIMIZE_WORDS:
                return True
    raise ValueError(f"better_direction: don't know whether larger {column!r} is better; pass maximize_x/maximize_y")


def known_direction(column: str) -> bool | None:
    """:func:`better_direction`, or ``None`` where the column name does not tell."""
    try:
        return better_direction(column)
    except ValueError:
        return None


#: Metric columns offered first (in this order) as trade-off axes when present.
METRICS = ("accuracy", "spikes_per_sample", "activation_sparsity", "synops_per_sample", "energy_per_sample_j",
           "latency_steps")


def metric_columns(df: pd.DataFrame) -> list[str]:
    """Numeric, non-config columns of ``df`` usable as trade-off axes: :data:`METRICS`, then robustness
    columns, then any other numeric column whose better direction is known (e.g. ``rounded/accuracy``).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"accuracy": [0.9], "macs_per_sample": [1e3], "n_samples": [10], "config.seed": [0]})
        >>> metric_columns(df)
        ['accuracy', 'macs_per_sample']
    """
    numeric = [c for c in df.columns if not str(c).startswith("config.") and pd.api.types.is_numeric_dtype(df[c])
               and df[c].notna().any()]
    first = [m for m in METRICS if m in numeric]
    robust = [c for c in numeric if "robust" in str(c).lower() and c not in first]
    rest = [c for c in numeric if c not in first and c not in robust and known_direction(str(c)) is not None]
    return first + robust + rest


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
