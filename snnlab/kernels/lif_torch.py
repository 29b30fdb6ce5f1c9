"""Multi-step LIF in pure PyTorch with a hand-written reverse-time backward.

This is the reference every other LIF backend is tested against, and the fast CPU path.
The forward runs the time loop without recording an autograd graph and saves only the
pre-reset membrane ``h`` and the spikes ``s``; the backward recomputes everything else.

Semantics (``x`` time-major ``[T, B, ...]``, ``v[-1] = 0``)::

    h[t] = beta * v[t-1] + x[t]
    s[t] = H(h[t] - threshold) * m[t]            H(u) = 1 if u >= 0 else 0
    m[t] = 1 if (spikes fired before t) < max_spikes else 0   (m = 1 when max_spikes is None)
    v[t] = h[t] - threshold * s[t]               reset="subtract"
    v[t] = h[t] * (1 - s[t])                     reset="zero"

Noisy neurons (``noise`` set and ``sample=True``): ``s[t] ~ Bernoulli(F((h - threshold) / sigma)) * m[t]``
with the uniform numbers drawn from :mod:`snnlab.kernels.counter_rng`. The backward replaces
``dH/du`` by the surrogate (for noise, its density), masked by ``m[t]``; with ``detach_reset``
the reset term carries no gradient.
"""
from __future__ import annotations

import torch

from .counter_rng import seed_key, uniform_from_counter
from .surrogate_math import noise_cdf, surrogate_grad


def _reduce_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient ``[B, ...]`` down to a parameter's shape."""
    if grad.shape == shape:
        return grad
    if len(shape) == 0:
        return grad.sum()
    lead = grad.dim() - len(shape)
    g = grad.sum(dim=tuple(range(lead))) if lead > 0 else grad
    keep = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(dim=keep, keepdim=True) if keep else g


class LIFFunction(torch.autograd.Function):
    """Autograd function for the multi-step LIF; returns ``(spikes, membrane_pre_reset)``."""

    @staticmethod
    def forward(ctx, x, beta, threshold, reset, detach_reset, max_spikes, surrogate, surrogate_param,
                noise, noise_scale, seed, sample):
        T = x.shape[0]
        step_shape = x.shape[1:]
        spikes = torch.empty_like(x)
        membrane = torch.empty_like(x)
        v = torch.zeros(step_shape, dtype=x.dtype, device=x.device)
        count = torch.zeros(step_shape, dtype=x.dtype, device=x.device) if max_spikes is not None else None
        sampling = noise is not None and sample
        if sampling:
            numel = v.numel()
            base = torch.arange(numel, device=x.device, dtype=torch.int64).view(step_shape)
            key = seed_key(seed)
        for t in range(T):
            h = membrane[t]
            torch.addcmul(x[t], v, beta, out=h)
            u = h - threshold
            if sampling:
                rnd = uniform_from_counter(base + t * numel, key).to(x.dtype)
                s = (rnd < noise_cdf(noise, u, noise_scale)).to(x.dtype)
            else:
                s = (u >= 0).to(x.dtype)
            if count is not None:
                s.mul_((count < max_spikes).to(x.dtype))
                count.add_(s)
            spikes[t] = s
            if reset == "subtract":
                v = h - threshold * s
            else:
                v = h * (1.0 - s)
        ctx.save_for_backward(membrane, spikes, beta, threshold)
        ctx.cfg = (reset, detach_reset, max_spikes, surrogate, surrogate_param)
        ctx.mark_non_differentiable(membrane)
        return spikes, membrane

    @staticmethod
    def backward(ctx, grad_spikes, grad_membrane):
        membrane, spikes, beta, threshold = ctx.saved_tensors
        reset, detach_reset, max_spikes, surrogate, surrogate_param = ctx.cfg
        T = membrane.shape[0]
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(spikes)
        grad_x = torch.empty_like(membrane)
        gv = torch.zeros_like(membrane[0])
        g_beta = torch.zeros_like(membrane[0]) if ctx.needs_input_grad[1] else None
        g_thr = torch.zeros_like(membrane[0]) if ctx.needs_input_grad[2] else None
        running = spikes.sum(0) if max_spikes is not None else None
        subtract = reset == "subtract"
        for t in range(T - 1, -1, -1):
            h = membrane[t]
            s = spikes[t]
            sg = surrogate_grad(surrogate, h - threshold, surrogate_param)
            if running is not None:
                running = running - s                      # spikes fired before t
                sg = sg * (running < max_spikes).to(sg.dtype)
            gs = grad_spikes[t]
            if subtract:
                eff = gs if detach_reset else gs - threshold * gv
                gh = sg * eff + gv
                if g_thr is not None:
                    g_thr -= sg * eff + gv * s
            else:
                eff = gs if detach_reset else gs - h * gv
                gh = sg * eff + gv * (1.0 - s)
                if g_thr is not None:
                    g_thr -= sg * eff
            grad_x[t] = gh
            if g_beta is not None and t > 0:
                hp, sp = membrane[t - 1], spikes[t - 1]
                v_prev = hp - threshold * sp if subtract else hp * (1.0 - sp)
                g_beta += gh * v_prev
            gv = gh * beta
        gb = _reduce_to(g_beta, beta.shape) if g_beta is not None else None
        gt = _reduce_to(g_thr, threshold.shape) if g_thr is not None else None
        return grad_x, gb, gt, None, None, None, None, None, None, None, None, None


def lif_torch(x: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, *, reset: str = "subtract",
              detach_reset: bool = False, max_spikes: int | None = None, surrogate: str = "atan",
              surrogate_param: float = 2.0, noise: str | None = None, noise_scale: float = 0.3,
              seed: int = 0, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the multi-step LIF over ``x [T, B, ...]``; returns ``(spikes, pre-reset membrane)``.

    ``beta`` and ``threshold`` are tensors broadcastable to ``x.shape[1:]`` (scalars or per neuron).
    With ``noise`` set, the surrogate is the noise density of scale ``noise_scale``.

    Example:
        >>> x = torch.ones(5, 1, 2)
        >>> s, h = lif_torch(x, torch.tensor(0.5), torch.tensor(1.5))
        >>> s[:, 0, 0].tolist()
        [0.0, 1.0, 0.0, 1.0, 0.0]
    """
    if noise is not None:
        surrogate, surrogate_param = noise, noise_scale
    return LIFFunction.apply(x, beta, threshold, reset, detach_reset, max_spikes, surrogate,
                             float(surrogate_param), noise, float(noise_scale), int(seed), bool(sample))


class LIFunction(torch.autograd.Function):
    """Leaky integrator ``h[t] = beta * h[t-1] + x[t]`` with a reverse-time backward."""

    @staticmethod
    def forward(ctx, x, beta):
        out = torch.empty_like(x)
        h = torch.zeros_like(x[0])
        for t in range(x.shape[0]):
            h = torch.addcmul(x[t], h, beta, out=out[t])
        ctx.save_for_backward(out, beta)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        out, beta = ctx.saved_tensors
        grad_x = torch.empty_like(out)
        g = torch.zeros_like(out[0])
        g_beta = torch.zeros_like(out[0]) if ctx.needs_input_grad[1] else None
        for t in range(out.shape[0] - 1, -1, -1):
            g = torch.addcmul(grad_out[t], g, beta, out=grad_x[t])
            if g_beta is not None and t > 0:
                g_beta += g * out[t - 1]
        return grad_x, (_reduce_to(g_beta, beta.shape) if g_beta is not None else None)


def li_torch(x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Non-spiking leaky integrator over ``x [T, B, ...]``; returns the membrane ``[T, B, ...]``.

    Example:
        >>> li_torch(torch.ones(3, 1, 1), torch.tensor(0.5))[:, 0, 0].tolist()
        [1.0, 1.5, 1.75]
    """
    return LIFunction.apply(x, beta)
