"""Dropout for time-major tensors with one mask per sample, shared by every time step."""
from __future__ import annotations

import torch
from torch import nn

from snnlab.kernels.func_transforms import transforms_active
from snnlab.kernels.lif_common import check_mask_p

__all__ = ["TimeDropout"]


class TimeDropout(nn.Module):
    """Dropout of ``[T, B, ...]`` tensors whose mask is drawn once per sample and neuron and used at every step.

    In training each neuron of each sample is dropped with probability ``p`` for the whole sequence and the kept
    ones are scaled by ``1 / (1 - p)``; in evaluation it is the identity. Dropping a neuron at random steps
    instead (``torch.nn.Dropout`` on ``[T, B, N]``) mostly averages out over time; one mask per sequence is what
    SpikingJelly's multi-step ``Dropout`` does, and what the DCLS delay networks were trained with.
    ``p`` must lie in ``[0, 1)`` (``ValueError``), also when it is set later (``drop.p = 0.2``).
    It has no state, and draws from torch's global generator (seed it for reproducible masks). Under ``torch.func``
    transforms the mask is drawn out of place (the same numbers), so it also runs under
    ``torch.func.vmap(..., randomness="different")`` (a mask per vmapped sample) or ``"same"``.

    Example:
        >>> drop = TimeDropout(0.5)
        >>> y = drop(torch.ones(4, 2, 3))
        >>> bool((y == y[0]).all()), sorted(set(y.flatten().tolist())) in ([0.0, 2.0], [0.0], [2.0])
        (True, True)
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p  # (checked as it is set: __setattr__)

    def __setattr__(self, name: str, value) -> None:
        if name == "p":  # at construction and at any later assignment (p = 1 would divide by 0: NaN outputs)
            try:
                value = check_mask_p(value, "p")
            except ValueError:
                raise ValueError(f"TimeDropout: p must be a number in [0, 1), got {value!r}") from None
        super().__setattr__(name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(f"TimeDropout expects time-major input [T, B, ...], got {getattr(x, 'shape', type(x))}")
        if not self.training or self.p == 0.0:
            return x
        shape = (1,) + tuple(x.shape[1:])
        if transforms_active():  # out of place: an in-place draw into a fresh tensor fails under vmap(randomness=
            # "different"); torch.bernoulli(t, p) is t's shape filled by bernoulli_(p): the same numbers
            keep = torch.bernoulli(torch.empty(shape, dtype=x.dtype, device=x.device), 1.0 - self.p)
        else:  # (one allocation fewer)
            keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p:g}"
