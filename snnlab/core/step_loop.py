r"""The per-step autograd loop of LIF layers with state across neurons or steps: the reference of
:class:`~snnlab.RecurrentLIF` and the time loop of :class:`~snnlab.ALIF`.

One step, with ``v[-1] = 0``, ``o[-1] = 0``, ``a[-1] = 0``::

    h[t]     = beta * v[t-1] + x[t] + feedback(o[t-1])     (feedback: the recurrent current, or none)
    theta[t] = threshold + adaptation * a[t-1]              (threshold adaptation, or theta = threshold)
    s[t]     = H(h[t] - theta[t]) * m[t]                    m: the max_spikes mask (1 without max_spikes)
    v[t]     = h[t] - theta[t] * s[t]                       reset="subtract"
    v[t]     = h[t] * (1 - s[t])                            reset="zero"
    a[t]     = rho * a[t-1] + s[t]                          (the neuron's own spikes, masked or not)
    o[t]     = s[t] * k[t]                                  k: the spike-masking keep values

Noisy neurons draw ``s[t] ~ Bernoulli(F((h[t] - theta[t]) / sigma)) * m[t]`` and the keep masks come from the
counter hash of :mod:`snnlab.kernels.counter_rng` at the element indices ``t * numel + i`` (``numel`` the elements
of one step): the indices, keys and seeds of the fused LIF, so without feedback and adaptation the loop fires
exactly an ``LIF``'s spikes. The backward is plain autograd, with the spike's ``dH/du`` replaced by the surrogate
(masked by ``m[t]``); ``detach_reset`` detaches the spike in the reset term only.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import torch

from snnlab.kernels.counter_rng import cached_mask_key, keep_mask, seed_key, uniform_from_counter
from snnlab.kernels.first_order import refuse_forward_mode
from snnlab.kernels.surrogate_math import noise_cdf, surrogate_grad

if TYPE_CHECKING:  # (a runtime import would be circular: neurons -> ... -> step_loop)
    from .neurons import LIF

__all__ = ["Adaptation", "LoopResult", "lif_step_loop"]


class Adaptation(NamedTuple):
    """Threshold adaptation of :func:`lif_step_loop`: the decay ``rho`` of the trace ``a`` and the threshold
    increase per unit of trace ``strength`` (tensors broadcasting to one step)."""
    rho: torch.Tensor
    strength: torch.Tensor


class LoopResult(NamedTuple):
    """What :func:`lif_step_loop` returns: the transmitted spikes ``out [T, ...]``, the pre-reset membrane
    ``membrane [T, ...]`` (None unless recording), the last step's ``h`` as ``[1, ...]`` (for the final finiteness
    check), and the effective thresholds ``theta [T, ...]`` (recording with adaptation only, else None)."""
    out: torch.Tensor
    membrane: torch.Tensor | None
    last: torch.Tensor
    theta: torch.Tensor | None


class _Spike(torch.autograd.Function):
    """Heaviside spike with a surrogate backward: ``forward(u, fired, allowed, name, param)`` returns the 0/1
    spikes ``fired * allowed`` (``fired`` decided by the caller: deterministic or sampled); the backward is
    ``grad * surrogate(u) * allowed`` (``allowed`` the max_spikes mask ``m[t]``, or None). Elementwise, so
    ``torch.func.vmap`` runs it through the generated rule."""

    generate_vmap_rule = True

    @staticmethod
    def forward(u, fired, allowed, name, param):
        spikes = fired.to(u.dtype)
        return spikes if allowed is None else spikes * allowed

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # (separate from forward: torch.func.grad / vjp can run it)
        u, _, allowed, name, param = inputs
        ctx.save_for_backward(u, allowed)
        ctx.cfg = (name, param)

    @staticmethod
    def backward(ctx, grad):
        u, allowed = ctx.saved_tensors
        g = grad * surrogate_grad(ctx.cfg[0], u, ctx.cfg[1])
        return (g if allowed is None else g * allowed), None, None, None, None


def lif_step_loop(layer: LIF, x: torch.Tensor, beta: torch.Tensor, thr: torch.Tensor, noise_seed: int | None,
                  mask_seed: int | None, feedback: Callable[[torch.Tensor], torch.Tensor] | None = None,
                  adaptation: Adaptation | None = None) -> LoopResult:
    """Run ``layer``'s neurons (its reset, ``detach_reset``, ``max_spikes``, surrogate, noise and masking options)
    over ``x [T, ...]`` (in its compute dtype) step by step in plain autograd; see the module docstring.

    ``feedback(o)`` maps one step's transmitted spikes to the current they add to the next step; ``adaptation``
    adds the adaptive threshold. ``noise_seed`` / ``mask_seed``: this call's seeds (None: no sampling / masking).

    Example:
        >>> import torch, snnlab as sl
        >>> lif = sl.LIF(beta=0.5, backend="torch")
        >>> x = torch.tensor([[[1.5]], [[0.0]], [[1.5]]])
        >>> lif_step_loop(lif, x, lif.beta(), lif.threshold, None, None).out[:, 0, 0].tolist()
        [1.0, 0.0, 1.0]
        >>> ad = Adaptation(rho=torch.tensor(0.9), strength=torch.tensor(1.0))   # a spike raises the threshold by 1
        >>> lif_step_loop(lif, x, lif.beta(), lif.threshold, None, None, adaptation=ad).out[:, 0, 0].tolist()
        [1.0, 0.0, 0.0]
    """
    T, step_shape = x.shape[0], x.shape[1:]
    record = layer.record
    if T == 0:  # an empty sequence: zero gradients for the input and the parameters, as LIF gives
        tie = (beta.sum() + thr.sum()) * 0.0
        if adaptation is not None:
            tie = tie + (adaptation.rho.sum() + adaptation.strength.sum()) * 0.0
        empty = x.detach().clone() if record else None
        return LoopResult(x * 0.0 + tie, empty, x, empty if adaptation is not None else None)
    name, param = (layer.noise, layer.noise_scale) if layer.noise is not None else (layer.surrogate.name,
                                                                                   layer.surrogate.param)
    numel = math.prod(step_shape)
    base = torch.arange(numel, device=x.device, dtype=torch.int64).view(step_shape) if noise_seed is not None else None
    n_key = seed_key(noise_seed) if noise_seed is not None else 0
    m_key = cached_mask_key(mask_seed) if mask_seed is not None else 0
    v = torch.zeros(step_shape, dtype=x.dtype, device=x.device)
    trace = torch.zeros_like(v) if adaptation is not None else None
    count = torch.zeros_like(v) if layer.max_spikes is not None else None
    outs, hs, thetas = [], [], []
    o = None
    for t, x_t in enumerate(x.unbind(0)):  # (one backward for all steps: x[t] would add a [T, ...] zeros per step)
        cur = x_t if o is None or feedback is None else x_t + feedback(o)
        h = torch.addcmul(cur, v, beta)
        theta = thr if trace is None else thr + adaptation.strength * trace
        u = h - theta
        if base is not None:
            rnd = uniform_from_counter(base + t * numel, n_key).to(x.dtype)
            fired = rnd < noise_cdf(layer.noise, u.detach(), layer.noise_scale)
        else:
            fired = h.detach() >= theta.detach()
        allowed = (count < layer.max_spikes).to(x.dtype) if count is not None else None
        refuse_forward_mode(f"{type(layer).__name__} (per-step loop)", (u,))  # (_Spike has no jvp: say so clearly)
        s = _Spike.apply(u, fired, allowed, name, float(param))
        if count is not None:
            count = count + s.detach()
        r = s.detach() if layer.detach_reset else s
        v = h - theta * r if layer.reset == "subtract" else torch.addcmul(h, h, r, value=-1.0)
        if trace is not None:
            trace = torch.addcmul(s, trace, adaptation.rho)
        if mask_seed is not None:
            s = s * keep_mask(t * numel, step_shape, m_key, layer.mask_p, x.device, x.dtype)
        o = s
        outs.append(o)
        if record:
            hs.append(h.detach())
            if trace is not None:
                thetas.append(torch.broadcast_to(theta.detach(), h.shape))
    membrane = torch.stack(hs) if record else None
    theta_trace = torch.stack(thetas) if record and adaptation is not None else None
    return LoopResult(torch.stack(outs), membrane, h.detach().unsqueeze(0), theta_trace)
