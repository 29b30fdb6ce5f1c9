"""Learning-rate schedules as pure functions of training progress (so a resumed run needs no scheduler state).

``lr_factor(kind, step, total_steps)`` multiplies the configured learning rate at the 0-based ``step`` of a run
of ``total_steps`` optimiser steps:

* ``"constant"``: 1.
* ``"cosine"``: ``(1 + cos(pi p)) / 2`` with ``p = step / total_steps``: from 1 down towards 0.
* ``"one_cycle"``: the configured rate is the peak. Up from ``1/25`` to 1 along a half cosine over the first
  30 % of the steps, then down along a half cosine to ``1/250000`` at the last step: the factors of
  ``torch.optim.lr_scheduler.OneCycleLR`` with its defaults (``div_factor=25``, ``final_div_factor=1e4``,
  ``pct_start=0.3``, cosine annealing).

Example:
    >>> [round(lr_factor("one_cycle", s, 10), 3) for s in (0, 2, 9)]
    [0.04, 1.0, 0.0]
    >>> lr_factor("cosine", 5, 10)
    0.5
"""
from __future__ import annotations

import math

__all__ = ["LR_SCHEDULES", "lr_factor"]

LR_SCHEDULES = ("constant", "cosine", "one_cycle")

ONE_CYCLE_WARMUP = 0.3
ONE_CYCLE_START = 1.0 / 25.0
ONE_CYCLE_END = ONE_CYCLE_START / 1e4


def _cos_between(start: float, end: float, r: float) -> float:
    """From ``start`` (r = 0) to ``end`` (r = 1) along a half cosine."""
    return end + (start - end) * (1.0 + math.cos(math.pi * r)) / 2.0


def lr_factor(kind: str, step: int, total_steps: int) -> float:
    """The factor on the base learning rate at 0-based ``step`` of ``total_steps`` (see the module docstring)."""
    if kind not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {kind!r}; choose one of {list(LR_SCHEDULES)}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"lr_factor: total_steps must be an int >= 1, got {total_steps!r}")
    if kind == "constant":
        return 1.0
    step = min(max(int(step), 0), total_steps - 1)
    if kind == "cosine":
        return _cos_between(1.0, 0.0, step / total_steps)
    last = total_steps - 1
    peak = ONE_CYCLE_WARMUP * total_steps - 1  # where torch's OneCycleLR puts the peak
    if 0 < peak and step <= peak:
        return _cos_between(ONE_CYCLE_START, 1.0, step / peak)
    return _cos_between(1.0, ONE_CYCLE_END, (step - peak) / (last - peak)) if last > peak else ONE_CYCLE_END
