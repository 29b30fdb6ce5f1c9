"""Learning-rate schedules as pure functions of training progress (so a resumed run needs no scheduler state).

``lr_factor(kind, step, total_steps)`` multiplies the configured learning rate at the 0-based ``step`` of a run
of ``total_steps`` optimiser steps:

* ``"constant"``: 1.
* ``"cosine"``: ``(1 + cos(pi p)) / 2`` with ``p = step / total_steps``: from 1 down towards 0.
* ``"one_cycle"``: the configured rate is the peak. Up from ``1/25`` to 1 along a half cosine over the first
  30 % of the steps, then down along a half cosine to ``1/250000`` at the last step: the factors of
  ``torch.optim.lr_scheduler.OneCycleLR`` with its defaults (``div_factor=25``, ``final_div_factor=1e4``,
  ``pct_start=0.3``, cosine annealing). Like it, the momentum (Adam's first beta) cycles the other way,
  0.95 -> 0.85 -> 0.95 (:func:`one_cycle_momentum`).

Example:
    >>> [round(lr_factor("one_cycle", s, 10), 3) for s in (0, 2, 9)]
    [0.04, 1.0, 0.0]
    >>> lr_factor("cosine", 5, 10)
    0.5
"""
from __future__ import annotations

import math

__all__ = ["LR_SCHEDULES", "lr_factor", "one_cycle_momentum"]

LR_SCHEDULES = ("constant", "cosine", "one_cycle")

ONE_CYCLE_WARMUP = 0.3
ONE_CYCLE_START = 1.0 / 25.0
ONE_CYCLE_END = ONE_CYCLE_START / 1e4
ONE_CYCLE_MOMENTUM = (0.85, 0.95)  # torch's base_momentum, max_momentum


def _cos_between(start: float, end: float, r: float) -> float:
    """From ``start`` (r = 0) to ``end`` (r = 1) along a half cosine."""
    return end + (start - end) * (1.0 + math.cos(math.pi * r)) / 2.0


def _check(kind: str, total_steps: int) -> None:
    if kind not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {kind!r}; choose one of {list(LR_SCHEDULES)}")
    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"lr_factor: total_steps must be an int >= 1, got {total_steps!r}")


def _one_cycle(step: int, total_steps: int, start: float, peak: float, end: float) -> float:
    """``start`` -> ``peak`` over the first 30 % of the steps, then -> ``end`` at the last, as torch's OneCycleLR."""
    last = total_steps - 1
    top = ONE_CYCLE_WARMUP * total_steps - 1  # where torch's OneCycleLR puts the peak
    if 0 < top and step <= top:
        return _cos_between(start, peak, step / top)
    return _cos_between(peak, end, (step - top) / (last - top)) if last > top else end


def lr_factor(kind: str, step: int, total_steps: int) -> float:
    """The factor on the base learning rate at 0-based ``step`` of ``total_steps`` (see the module docstring)."""
    _check(kind, total_steps)
    if kind == "constant":
        return 1.0
    step = min(max(int(step), 0), total_steps - 1)
    if kind == "cosine":
        return _cos_between(1.0, 0.0, step / total_steps)
    return _one_cycle(step, total_steps, ONE_CYCLE_START, 1.0, ONE_CYCLE_END)


def one_cycle_momentum(step: int, total_steps: int) -> float:
    """The momentum (Adam's first beta) of a ``"one_cycle"`` schedule at ``step``: down from 0.95 to 0.85 while the
    rate rises, back to 0.95 while it falls (torch's OneCycleLR with ``cycle_momentum=True``, its default).

    Example:
        >>> [round(one_cycle_momentum(s, 10), 3) for s in (0, 2, 9)]
        [0.95, 0.85, 0.95]
    """
    _check("one_cycle", total_steps)
    step = min(max(int(step), 0), total_steps - 1)
    return _one_cycle(step, total_steps, ONE_CYCLE_MOMENTUM[1], ONE_CYCLE_MOMENTUM[0], ONE_CYCLE_MOMENTUM[1])
