"""Inputs and option sets shared by the tests of the adaptive LIF's kernels (fused PyTorch, compiled C, Triton)."""
from __future__ import annotations

import torch

NOISES = ("gaussian", "logistic")


def adaptive_inputs(shape, steps, per_neuron, seed=0, dtype=torch.float32):
    """``(x [steps, *shape], (beta, threshold, rho, strength), output gradient)`` on the CPU, drawn in float32 (``x``
    then cast to ``dtype``); the trace's decay and strength are drawn so that adaptation changes the spikes."""
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    x = (torch.randn((steps,) + tuple(shape), generator=g) * 0.8 + 0.5).to(dtype)
    if per_neuron:
        params = (torch.rand(n, generator=g) * 0.5 + 0.4, torch.rand(n, generator=g) * 0.5 + 0.7,
                  torch.rand(n, generator=g) * 0.3 + 0.65, torch.rand(n, generator=g) * 0.6 + 0.1)
    else:
        params = tuple(torch.tensor(v) for v in (0.8, 0.9, 0.85, 0.4))
    grad = torch.randn((steps,) + tuple(shape), generator=g)
    return x, params, grad


def adaptive_options(reset, detach, max_spikes, surrogate, param, mask_p=0.0, sample=True):
    """The kernels' keyword arguments for one case of ``lif_cases.CASES`` (a noise name as the surrogate: a noisy
    neuron), with fixed noise and mask seeds."""
    kw = dict(reset=reset, detach_reset=detach, max_spikes=max_spikes, mask_p=mask_p, mask_seed=7, seed=3)
    if surrogate in NOISES:
        kw.update(noise=surrogate, noise_scale=param, sample=sample)
    else:
        kw.update(surrogate=surrogate, surrogate_param=param)
    return kw
