"""Plain step-by-step references the tests compare snnlab against (autograd does the backward)."""
from __future__ import annotations

import torch

from snnlab.kernels.counter_rng import seed_key, uniform_from_counter
from snnlab.kernels.surrogate_math import noise_cdf, surrogate_grad


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, fired, name, param):
        ctx.save_for_backward(u)
        ctx.cfg = (name, param)
        return fired.to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * surrogate_grad(ctx.cfg[0], u, ctx.cfg[1]), None, None, None


def lif_reference(x, beta, thr, reset="subtract", detach_reset=False, max_spikes=None, surrogate="atan",
                  param=2.0, noise=None, noise_scale=0.3, seed=0, sample=True, w_rec=None, keep=None, adapt=None,
                  thresholds=None):
    """Straightforward LIF loop: returns (spikes, pre-reset membrane), differentiable by autograd.

    ``w_rec`` ``[N, N]``: recurrent synapses, ``h[t] += o[t-1] @ w_rec.T``; ``keep`` ``[T, ...]``: spike masks, the
    output (and what ``w_rec`` feeds back) being ``o = s * keep``; ``adapt = (rho, strength)``: an adaptive
    threshold ``thr + strength * a[t-1]`` with ``a[t] = rho * a[t-1] + s[t]`` (the neuron's own spikes), whose
    values are appended to the list ``thresholds`` when one is given."""
    if noise is not None:
        surrogate, param = noise, noise_scale
    T = x.shape[0]
    v = torch.zeros_like(x[0])
    count = torch.zeros_like(x[0])
    M = x[0].numel()
    idx = torch.arange(M, dtype=torch.int64).view(x.shape[1:])
    spikes, membranes = [], []
    o = torch.zeros_like(x[0])
    a = torch.zeros_like(x[0])
    for t in range(T):
        h = beta * v + x[t] + (o @ w_rec.T if w_rec is not None else 0.0)
        theta = thr if adapt is None else thr + adapt[1] * a
        if thresholds is not None:
            thresholds.append(theta + torch.zeros_like(h))
        u = h - theta
        if noise is not None and sample:
            rnd = uniform_from_counter(idx + t * M, seed_key(seed))
            fired = rnd < noise_cdf(noise, u.detach(), noise_scale)
        else:
            fired = u.detach() >= 0
        s = _Spike.apply(u, fired, surrogate, param)
        if max_spikes is not None:
            s = s * (count < max_spikes).to(x.dtype)
            count = count + s.detach()
        r = s.detach() if detach_reset else s
        v = h - theta * r if reset == "subtract" else h * (1 - r)
        if adapt is not None:
            a = adapt[0] * a + s
        o = s * keep[t] if keep is not None else s
        spikes.append(o)
        membranes.append(h)
    return torch.stack(spikes), torch.stack(membranes)


def li_reference(x, beta):
    h = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        h = beta * h + x[t]
        out.append(h)
    return torch.stack(out)
