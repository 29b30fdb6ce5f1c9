"""Activity regularisation: a loss term on spike counts, to trade accuracy for sparsity while training."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["spike_rate_penalty"]


def spike_rate_penalty(spikes: Sequence[torch.Tensor]) -> torch.Tensor:
    """The mean spike count per neuron and sample of the layers' spike tensors ``[T, B, ...]`` (all of one batch
    ``B``): ``sum of all spikes / (B * neurons of all layers)``, differentiable through the neurons' surrogate
    gradients. Added to the loss with a weight (``ExperimentConfig.spike_reg``), it is an L1 penalty on firing:
    every spike costs the same, whichever layer fires it, so training trades accuracy against spikes (and
    SynOps) -- a training-time alternative to cutting spikes by masking (``mask_p``).

    Example:
        >>> s1, s2 = torch.zeros(10, 2, 4), torch.zeros(10, 2, 6)
        >>> s1[:, 0, 0] = 1.0                 # one neuron of sample 0 fires at every one of the 10 steps
        >>> float(spike_rate_penalty([s1, s2]))   # 10 spikes / (2 samples * 10 neurons)
        0.5
    """
    if not spikes:
        raise ValueError("spike_rate_penalty: give the spike tensors of at least one layer")
    batch = {int(s.shape[1]) for s in spikes if s.dim() >= 2}
    if len(batch) != 1 or any(s.dim() < 2 for s in spikes):
        raise ValueError(f"spike_rate_penalty: the spike tensors must be time-major [T, B, ...] of one batch size, "
                         f"got shapes {[tuple(s.shape) for s in spikes]}")
    neurons = sum(math.prod(s.shape[2:]) for s in spikes)
    total = torch.stack([s.sum(dtype=torch.float32) for s in spikes]).sum()
    return total / max(1, batch.pop() * neurons)
