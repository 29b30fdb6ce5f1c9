"""Decision latency: after how many time steps a sample's decision is available.

Latencies are 0-based step indices ``t`` (the decision is known once step ``t`` has been processed,
i.e. after ``t + 1`` input steps), consistent with :func:`snnlab.core.readout.first_spike_time`.

One definition for every readout, so that latencies compare across them: the earliest step ``t`` such that
:func:`~snnlab.core.readout.prediction_over_time` equals the final prediction (the one accuracy scores) at every
step ``t..T-1``, *and* the final prediction is correct (with ``target=None``, only the stability). Steps with a
tied readout (e.g. all zero, or no output spike yet) are no prediction, not class 0. For ``"first_spike"`` this is
the time of the first output spike (unless several neurons fire first together); for ``"spike_count"`` the step
from which the final winner leads alone for good, not the first step at which any neuron leads.

Samples without a decision (no output spike; a final tie, e.g. a silent output; a wrong final
prediction) get ``never``, which by
default is ``T`` -- one step past the window, as ``first_spike_time`` does for silent neurons. This
keeps means finite and penalises undecided samples; pass ``never=float("nan")`` to leave them out
(then :func:`mean_latency` averages the decided samples only).
"""
from __future__ import annotations

import math

import torch

from snnlab.core.readout import MEMBRANE_READOUTS, NO_DECISION, READOUTS, SPIKE_READOUTS, prediction_over_time

from snnlab.core.validation import as_number

from ._common import check_labels

__all__ = ["SPIKE_READOUTS", "MEMBRANE_READOUTS", "decision_latency", "mean_latency"]


def decision_latency(out: torch.Tensor, readout: str = "membrane_sum", target: torch.Tensor | None = None,
                     never: float | None = None) -> torch.Tensor:
    """Per-sample decision latency ``[B]`` (float, in steps) of a time-major output ``[T, B, C]``.

    ``target``: integer class indices ``[B]``, one per sample, in ``[0, C)``. ``out``
    needs at least one step and one class.

    Example:
        >>> out = torch.zeros(5, 2, 3); out[2, 0, 1] = 1          # sample 1 never spikes
        >>> decision_latency(out, "first_spike").tolist()
        [2.0, 5.0]
    """
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}; choose one of {list(READOUTS)}")
    if not isinstance(out, torch.Tensor) or out.dim() != 3:
        raise ValueError(f"decision_latency expects a time-major output [T, B, C], got {getattr(out, 'shape', type(out))}")
    T, B, C = out.shape
    if T == 0 or C == 0:
        raise ValueError(f"decision_latency: out of shape {tuple(out.shape)} has no "
                         f"{'time steps (T = 0)' if T == 0 else 'classes (C = 0)'}: nothing to decide from")
    if target is not None:
        target = check_labels(target, "decision_latency", "target", n_samples=B, n_classes=C)
    out = out.detach()
    fill = float(T) if never is None else as_number(never, "never", "decision_latency")
    steps = torch.arange(T, device=out.device).view(T, 1)
    pred = prediction_over_time(out, readout)                       # [T, B], -1 where tied
    final = pred[-1]
    differs = pred != final                                         # False at t = T-1
    last_diff = torch.where(differs, steps, -1).max(0).values       # -1 if always equal
    lat = (last_diff + 1).to(torch.float64)
    decided = final != NO_DECISION                                  # a final tie is no decision
    if target is not None:
        decided = decided & (final == target.to(final.device))
    return torch.where(decided, lat, torch.full_like(lat, fill)).cpu()


def mean_latency(latencies: torch.Tensor) -> float:
    """Mean of per-sample latencies, ignoring NaN (undecided samples with ``never=nan``); NaN if none."""
    latencies = torch.as_tensor(latencies).to(torch.float64)  # integer latencies too (NaN is a float's)
    lat = latencies[~torch.isnan(latencies)]
    return float(lat.mean()) if lat.numel() else math.nan
