"""Turning a network's time-major output into class scores (logits).

Readouts, for an output of shape ``[T, B, C]``:

- ``"membrane_sum"``: ``sum_t out[t]`` — for a non-spiking ``LI`` readout layer (the default).
- ``"membrane_max"``: ``max_t out[t]``.
- ``"spike_count"``: ``sum_t s[t]`` — for a spiking output layer.
- ``"first_spike"``: ``-(first spike time) / T`` — time-to-first-spike decoding: the earliest
  output neuron wins. With ``first_spike_time`` written as ``sum_t t*s[t] + T*(1 - sum_t s[t])`` for
  neurons that fire at most once, the surrogate gradient reaches the spike times.
"""
from __future__ import annotations

import torch

READOUTS = ("membrane_sum", "membrane_max", "spike_count", "first_spike")


def first_spike_time(spikes: torch.Tensor) -> torch.Tensor:
    """Time of each neuron's first spike ``[B, C]`` (``T`` when it never fires); differentiable.

    Spikes after the first are ignored, so the result is exact for any neuron (float32 for half-precision
    spikes, whose formats cannot hold every step past 256 in bfloat16 or 2048 in float16).

    Example:
        >>> s = torch.zeros(5, 1, 2); s[2, 0, 0] = 1; s[4, 0, 0] = 1
        >>> first_spike_time(s).tolist()
        [[2.0, 5.0]]
    """
    T = spikes.shape[0]
    if spikes.dtype in (torch.float16, torch.bfloat16):
        spikes = spikes.float()
    fired_before = torch.cumsum(spikes.detach(), 0) - spikes.detach()
    first = spikes * (fired_before == 0).to(spikes.dtype)          # keeps only the first spike
    t = torch.arange(T, dtype=spikes.dtype, device=spikes.device).view(T, *([1] * (spikes.dim() - 1)))
    return (t * first).sum(0) + T * (1.0 - first.sum(0))


def logits(out: torch.Tensor, readout: str = "membrane_sum") -> torch.Tensor:
    """Class scores ``[B, C]`` from a time-major output ``[T, B, C]``.

    Example:
        >>> logits(torch.ones(4, 2, 3)).shape
        torch.Size([2, 3])
    """
    if not isinstance(out, torch.Tensor) or out.dim() != 3:
        raise ValueError(f"readout expects a time-major output [T, B, C], got {getattr(out, 'shape', type(out))}")
    if readout in ("membrane_sum", "spike_count"):
        return out.sum(0)
    if readout == "membrane_max":
        return out.max(0).values
    if readout == "first_spike":
        return -first_spike_time(out) / out.shape[0]
    raise ValueError(f"unknown readout {readout!r}; choose one of {list(READOUTS)}")


def prediction_over_time(out: torch.Tensor, readout: str = "membrane_sum") -> torch.Tensor:
    """The prediction ``[T, B]`` the readout would give if the sample stopped after each step.

    Used for decision latency: for membrane readouts the running sum (or max) up to ``t``; for
    spike readouts the running count or the first neuron to have fired (``-1`` before any spike).
    """
    if readout == "membrane_sum" or readout == "spike_count":
        running = out.cumsum(0)
    elif readout == "membrane_max":
        running = out.cummax(0).values
    elif readout == "first_spike":
        fired = out.cumsum(0) > 0
        # the earliest-firing neuron: rank by first spike time, ties broken by index
        t = first_spike_time(out.detach())
        pred = t.argmin(-1).unsqueeze(0).expand(out.shape[0], -1).clone()
        pred[~fired.any(-1)] = -1
        return pred
    else:
        raise ValueError(f"unknown readout {readout!r}; choose one of {list(READOUTS)}")
    pred = running.argmax(-1)
    if readout == "spike_count":
        pred[running.sum(-1) == 0] = -1
    return pred
