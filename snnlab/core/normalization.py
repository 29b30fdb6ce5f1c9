"""Batch normalisation of time-major tensors ``[T, B, F]``."""
from __future__ import annotations

import torch
from torch import nn

from .validation import all_finite, is_integer, raise_non_finite

__all__ = ["TimeBatchNorm"]


class TimeBatchNorm(nn.BatchNorm1d):
    """``torch.nn.BatchNorm1d`` over the features of a time-major ``[T, B, F]`` tensor.

    Each feature (neuron) is normalised with its mean and variance over all ``T * B`` time steps and
    samples (running averages of them in evaluation), as the DCLS delay networks normalise the synaptic
    currents before the neurons. ``nn.BatchNorm1d`` itself would read ``[T, B, F]`` as ``[N, C, L]`` and
    normalise over the wrong axis. Parameters and state dict are those of ``nn.BatchNorm1d(num_features)``.
    Normalising with batch statistics (training, or no running statistics) needs more than one value per feature:
    an input with ``T * B == 1`` is then a ``ValueError``; ``T * B == 0`` returns an empty copy.

    Example:
        >>> bn = TimeBatchNorm(3)
        >>> y = bn(torch.randn(20, 4, 3) * 5 + 2)
        >>> y.shape, bool(y.mean(dim=(0, 1)).abs().max() < 1e-5)
        (torch.Size([20, 4, 3]), True)
    """

    def __init__(self, num_features: int, *args, **kwargs) -> None:
        if not is_integer(num_features) or num_features < 1:
            raise ValueError(f"TimeBatchNorm: num_features must be a positive int (the F of [T, B, F]), "
                             f"got {num_features!r}")
        super().__init__(int(num_features), *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"TimeBatchNorm expects time-major input [T, B, F], got {shape}")
        t, b, f = x.shape
        if f != self.num_features:
            raise ValueError(f"TimeBatchNorm({self.num_features}) got {f} features (input [T, B, F] = {tuple(x.shape)}); "
                             f"build it with num_features={f}")
        if t * b == 0:
            return x.clone()
        if t * b == 1 and (self.training or (self.running_mean is None and self.running_var is None)):
            raise ValueError(f"TimeBatchNorm: normalising with batch statistics needs more than one value per feature "
                             f"(the T * B values of an input [T, B, F]), got an input of shape {tuple(x.shape)}; use "
                             "more steps or samples, or .eval() to normalise with the running statistics")
        if self.training and self.track_running_stats and x.is_floating_point() and not all_finite(x):
            raise_non_finite("TimeBatchNorm", "input")  # before its running statistics take the NaN in for good
        return super().forward(x.reshape(t * b, f)).reshape(t, b, f)
