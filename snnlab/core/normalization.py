"""Batch normalisation of time-major tensors ``[T, B, F]``."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .validation import all_finite, is_integer, raise_non_finite

__all__ = ["TimeBatchNorm", "TimeSyncBatchNorm", "convert_sync_batchnorm"]


class TimeBatchNorm(nn.BatchNorm1d):
    """``torch.nn.BatchNorm1d`` over the features of a time-major ``[T, B, F]`` tensor.

    Each feature (neuron) is normalised with its mean and variance over all ``T * B`` time steps and
    samples (running averages of them in evaluation), as the DCLS delay networks normalise the synaptic
    currents before the neurons. ``nn.BatchNorm1d`` itself would read ``[T, B, F]`` as ``[N, C, L]`` and
    normalise over the wrong axis. Parameters and state dict are those of ``nn.BatchNorm1d(num_features)``.
    Normalising with batch statistics (training, or no running statistics) needs more than one value per feature:
    an input with ``T * B == 1`` is then a ``ValueError``; ``T * B == 0`` returns an empty copy.

    Under ``DistributedDataParallel`` each process normalises with the statistics of its own batch, as
    ``nn.BatchNorm1d`` does. To normalise over the batches of all processes, convert the model with
    ``from snnlab.core.normalization import convert_sync_batchnorm`` (this layer becomes a
    :class:`TimeSyncBatchNorm`; it is not re-exported as ``snnlab.convert_sync_batchnorm``) before wrapping it in
    ``DistributedDataParallel``, not with ``nn.SyncBatchNorm.convert_sync_batchnorm``: that one replaces it by a plain
    ``nn.SyncBatchNorm``, which reads ``[T, B, F]`` as ``[N, C, L]`` and normalises over the wrong axis (silently
    wrong where ``B == F``).

    Example:
        >>> bn = TimeBatchNorm(3)
        >>> y = bn(torch.randn(20, 4, 3) * 5 + 2)
        >>> y.shape, bool(y.mean(dim=(0, 1)).abs().max() < 1e-5)
        (torch.Size([20, 4, 3]), True)

        For ``DistributedDataParallel`` (the conversion itself needs no process group):

        >>> import torch, snnlab as sl
        >>> from snnlab.core.normalization import convert_sync_batchnorm
        >>> net = convert_sync_batchnorm(sl.Sequential(torch.nn.Linear(4, 3), sl.TimeBatchNorm(3), sl.LIF()))
        >>> type(net[1]).__name__
        'TimeSyncBatchNorm'
    """

    def __init__(self, num_features: int, *args, **kwargs) -> None:
        if not is_integer(num_features) or num_features < 1:
            raise ValueError(f"TimeBatchNorm: num_features must be a positive int (the F of [T, B, F]), "
                             f"got {num_features!r}")
        super().__init__(int(num_features), *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} expects time-major input [T, B, F], got {shape}")
        t, b, f = x.shape
        if f != self.num_features:
            raise ValueError(f"{name}({self.num_features}) got {f} features (input [T, B, F] = {tuple(x.shape)}); "
                             f"build it with num_features={f}")
        if t * b == 0:
            return x.clone()
        if t * b == 1 and (self.training or (self.running_mean is None and self.running_var is None)):
            raise ValueError(f"{name}: normalising with batch statistics needs more than one value per feature "
                             f"(the T * B values of an input [T, B, F]), got an input of shape {tuple(x.shape)}; use "
                             "more steps or samples, or .eval() to normalise with the running statistics")
        if self.training and self.track_running_stats and x.is_floating_point() and not all_finite(x):
            raise_non_finite(name, "input")  # before its running statistics take the NaN in for good
        return super().forward(x.reshape(t * b, f)).reshape(t, b, f)


class TimeSyncBatchNorm(TimeBatchNorm, nn.SyncBatchNorm):
    """:class:`TimeBatchNorm` with the statistics of the batches of all processes (``nn.SyncBatchNorm``'s).

    The same normalisation of ``[T, B, F]`` over its ``T * B`` rows per feature, with the means and variances
    gathered across the processes of ``process_group`` (default: all) in training under ``torch.distributed``, on
    the devices ``nn.SyncBatchNorm`` takes (GPUs); without a process group, or in evaluation, it computes what
    :class:`TimeBatchNorm` computes. Arguments are ``nn.SyncBatchNorm``'s (``process_group`` after
    ``track_running_stats``); parameters and state dict keys are :class:`TimeBatchNorm`'s, and it is one
    (``isinstance``). Usually made by :func:`convert_sync_batchnorm`.

    Example:
        >>> bn, sync = TimeBatchNorm(3), TimeSyncBatchNorm(3)
        >>> x = torch.randn(20, 3, 3)
        >>> torch.equal(bn(x), sync(x)), list(sync.state_dict()) == list(bn.state_dict())
        (True, True)
    """


def convert_sync_batchnorm(module: nn.Module, process_group=None) -> nn.Module:
    """``module`` with its batch norms synchronised across processes: :class:`TimeBatchNorm` layers become
    :class:`TimeSyncBatchNorm` and the other ``torch.nn`` batch norms ``nn.SyncBatchNorm``, as
    ``nn.SyncBatchNorm.convert_sync_batchnorm`` converts them (which would make a ``TimeBatchNorm`` a plain
    ``nn.SyncBatchNorm``, normalising ``[T, B, F]`` over the wrong axis). The new layers hold the same parameters
    (an optimiser built before still trains them) and running statistics; layers synchronised already are kept.
    Returns ``module``, or the new layer where ``module`` itself is a batch norm. Call it before wrapping the
    model in ``DistributedDataParallel``.

    Example:
        >>> import snnlab as sl
        >>> net = convert_sync_batchnorm(sl.Sequential(nn.Linear(4, 3), TimeBatchNorm(3), nn.BatchNorm1d(3)))
        >>> [type(m).__name__ for m in net]
        ['Linear', 'TimeSyncBatchNorm', 'SyncBatchNorm']
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"convert_sync_batchnorm: expected an nn.Module, got {type(module).__name__}")
    out = module
    if isinstance(module, _BatchNorm) and not isinstance(module, nn.SyncBatchNorm):
        out = _synchronised(module, TimeSyncBatchNorm if isinstance(module, TimeBatchNorm) else nn.SyncBatchNorm,
                            process_group)
    for name, child in module.named_children():
        out.add_module(name, convert_sync_batchnorm(child, process_group))
    return out


def _synchronised(bn: _BatchNorm, cls: type, process_group) -> nn.SyncBatchNorm:
    """A ``cls`` (``nn.SyncBatchNorm`` or :class:`TimeSyncBatchNorm`) holding ``bn``'s parameters and statistics."""
    extra = {"bias": False} if bn.affine and bn.bias is None else {}  # (PyTorch >= 2.13: an affine norm without bias)
    new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats, process_group, **extra)
    if bn.affine:
        new.weight, new.bias = bn.weight, bn.bias
    new.running_mean, new.running_var, new.num_batches_tracked = bn.running_mean, bn.running_var, bn.num_batches_tracked
    new.train(bn.training)
    if hasattr(bn, "qconfig"):
        new.qconfig = bn.qconfig
    return new
