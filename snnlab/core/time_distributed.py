"""Run a frame-by-frame module (convolution, pooling, batch norm...) on time-major ``[T, B, ...]`` tensors."""
from __future__ import annotations

import torch
from torch import nn

from .delays import DelayedLinear
from .dropout import TimeDropout
from .neurons import LI, LIF
from .normalization import TimeBatchNorm

__all__ = ["TimeDistributed"]


class TimeDistributed(nn.Module):
    """Apply ``module`` to every time step at once by folding time into the batch: ``[T, B, ...]`` is passed as
    ``[T * B, ...]`` and the output is unfolded to ``[T, B, ...]`` again.

    This is how convolutional SNNs take event frames: ``nn.Conv2d`` expects ``[batch, C, H, W]``, and a
    time-major ``[T, B, C, H, W]`` tensor is ``T * B`` independent frames for it. Any module without memory
    across time fits (convolutions, pooling, ``nn.Flatten``, ``nn.BatchNorm2d``, whose statistics are then
    taken over time and batch together). Neuron layers have memory and take ``[T, B, ...]`` themselves, so a
    ``module`` holding an :class:`~snnlab.LIF` or :class:`~snnlab.LI` is refused, and so is one holding another
    snnlab layer that works on the time axis: :class:`~snnlab.TimeDropout` (one mask per sample for all its steps;
    folded, one mask would serve every frame of the batch), :class:`~snnlab.DelayedLinear` (delays along time),
    :class:`~snnlab.TimeBatchNorm` (``[T, B, F]`` only) and a nested ``TimeDistributed``. Use them outside the
    wrapper. :class:`~snnlab.SpikeMask` is allowed: it drops each element independently, without time structure,
    so folded it draws the same masks (the same random numbers, in the same order) as on ``[T, B, ...]``.
    ``nn.Linear`` and ``nn.Flatten(start_dim=2)`` work on time-major tensors as they are and need no wrapper.

    The SynOps counter of :mod:`snnlab.metrics` sees the wrapped layer's calls on the folded batch and counts
    them per sample, as for any other layout. Average pooling of spikes gives fractions (0.25, 0.5...), which
    the counter takes as analog input: the next layer then counts dense MACs, not events (sum pooling, e.g.
    ``nn.LPPool2d(1, k)``, keeps integer event counts).

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(sl.TimeDistributed(torch.nn.Conv2d(2, 4, 3, stride=2)), sl.LIF(),
        ...                     torch.nn.Flatten(start_dim=2), torch.nn.Linear(4 * 16 * 16, 10), sl.LI())
        >>> net(torch.rand(5, 3, 2, 34, 34)).shape    # N-MNIST frames: [T, B, polarity, 34, 34]
        torch.Size([5, 3, 10])
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"TimeDistributed wraps an nn.Module, got {type(module).__name__}")
        neurons = [name or type(module).__name__ for name, m in module.named_modules()
                   if isinstance(m, (LIF, LI, nn.RNNBase, nn.RNNCellBase))]
        if neurons:
            raise ValueError(f"TimeDistributed: {type(module).__name__} holds the neuron or recurrent layer(s) "
                             f"{neurons}, which keep a state across time and take [T, B, ...] themselves; wrap only the layers "
                             f"without memory (convolutions, pooling...) and put the neurons between them.")
        timed = [f"{name} ({type(m).__name__})" if name else type(m).__name__
                 for name, m in module.named_modules() if isinstance(m, _TIME_MAJOR)]
        if timed:
            raise ValueError(f"TimeDistributed: {type(module).__name__} holds the time-major layer(s) {timed}, which "
                             f"take [T, B, ...] themselves (TimeDropout: one mask per sample for all its steps; "
                             f"DelayedLinear: delays along time; TimeBatchNorm: [T, B, F] only; TimeDistributed: "
                             f"folds time itself); use them outside the wrapper, on the time-major tensor.")
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"TimeDistributed({type(self.module).__name__}): the input must be a torch.Tensor of "
                            f"shape [T, B, ...], got {type(x).__name__}")
        if x.dim() < 3:
            raise ValueError(f"TimeDistributed({type(self.module).__name__}): the input must be time-major "
                             f"[T, B, ...] with at least 3 dimensions, got shape {tuple(x.shape)}")
        T, B = x.shape[:2]
        y = self.module(x.flatten(0, 1))
        if not isinstance(y, torch.Tensor) or y.dim() < 1 or y.shape[0] != T * B:
            got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(f"TimeDistributed({type(self.module).__name__}): the module must map [T*B, ...] = "
                             f"[{T * B}, ...] to one output per frame, got {got}")
        return y.unflatten(0, (T, B))


#: snnlab layers that work on the time axis of ``[T, B, ...]`` (neurons aside): refused inside the wrapper
_TIME_MAJOR = (TimeDropout, DelayedLinear, TimeBatchNorm, TimeDistributed)
