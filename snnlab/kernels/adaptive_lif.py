r"""Adaptive LIF (ALIF) in PyTorch with a hand-written reverse-time backward: the fused path of :class:`snnlab.ALIF`,
feed-forward or recurrent.

Semantics (``x`` time-major ``[T, B, ..., N]``, ``v[-1] = 0``, ``o[-1] = 0``, ``a[-1] = 0``, ``W`` the recurrent
weight ``[N, N]`` or none, ``k`` the adaptation strength)::

    h[t]     = beta * v[t-1] + x[t] (+ o[t-1] @ W^T)     the pre-reset membrane
    theta[t] = threshold + k * a[t-1]                   the effective threshold
    s[t]     = H(h[t] - theta[t]) * m[t]                m: the max_spikes mask (1 without max_spikes)
    v[t]     = h[t] - theta[t] * s[t]                   reset="subtract"
    v[t]     = h[t] * (1 - s[t])                        reset="zero"
    a[t]     = rho * a[t-1] + s[t]                      the trace of the neuron's own spikes
    o[t]     = s[t] * keep[t]                           the transmitted spikes (keep: the spike-masking values)

exactly :func:`snnlab.core.step_loop.lif_step_loop` with ``feedback = o @ W^T`` and ``Adaptation(rho, k)``: the
same operations in the same order (so the same spikes, bit for bit, as tested on the CPU; a GPU's matrix products
may round the recurrent current differently), the noise draws and keep masks at the same counter indices
``t * numel + i`` (:mod:`snnlab.kernels.counter_rng`).

The forward runs the loop without an autograd graph and saves ``[T, ...]`` tensors only: the pre-reset membrane,
the own spikes, the trace before each step ``a[t-1]`` and (recurrent) the transmitted spikes. The backward is a
linear recurrence in reverse time in two states, ``gh[t] = dL/dh[t]`` and ``ga[t] = dL/da[t]`` (``go`` the output
gradient, ``sg = surrogate(h - theta) * m``, ``sgk = sg * keep``)::

    gh[t]   = sgk[t] * (go[t] + gh[t+1] @ W) + sg[t] * ga[t] + bc[t] * gh[t+1]
    ga[t-1] = rho * ga[t] + k * gtheta[t],   gtheta[t] = -(gh[t] - beta * (1 - s[t]) * gh[t+1])
    bc = beta * (1 - theta * sg)  (subtract)    beta  (subtract, detach_reset)
         beta * ((1 - s) - h * sg)  (zero)      beta * (1 - s)  (zero, detach_reset)

(``gtheta`` = dL/dtheta[t]: the spike's ``-dL/du`` and the subtract reset's ``-s * dL/dv``). The trace and the reset
see the neuron's own spikes, so ``ga`` reaches it unmasked by ``keep``; the output gradient through kept spikes
only. Everything but the two states is computed vectorised over cache-sized chunks of time, and so are the
parameter gradients::

    dL/dx = gh        dL/dW = sum_t gh[t+1]^T o[t]        dL/dbeta = sum_t gh[t+1] * v[t]
    dL/dthreshold = sum_t gtheta[t]    dL/dk = sum_t gtheta[t] * a[t-1]    dL/drho = sum_t ga[t] * a[t-1]

With ``T = 1`` nothing feeds back and no trace is read: ``W`` and ``rho`` get no gradient (None, as the step loop,
which never uses them on the output's path); an empty sequence gives zeros for everything.

First-order gradients only (a second-order request raises, as every snnlab time-loop kernel), and no
``torch.func`` support: :func:`adaptive_lif` raises a ``RuntimeError`` under ``torch.func`` transforms (the layer
runs the step loop there).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .counter_rng import cached_mask_key, keep_mask, seed_key
from .dispatch import compute_dtype, surrogate_param_or_default
from .first_order import refuse_forward_mode, refuse_higher_order
from .func_transforms import refuse_transforms
from .lif_common import (ADAPTIVE_PARAMS, LIFOptions, adaptive_param_grads, adaptive_param_tensors, check_cap_and_params,
                         check_lif_options, check_mask_p)
from .lif_torch import _time_chunk
from .recurrent_lif import _beta_c, _noise_chunk
from .surrogate_math import noise_cdf, surrogate_grad_

__all__ = ["AdaptiveLIFFunction", "adaptive_lif"]

_NAME = "adaptive_lif"


def _refuse_transforms() -> None:
    refuse_transforms(_NAME, "fused adaptive LIF")


class AdaptiveLIFFunction(torch.autograd.Function):
    """Autograd function of the adaptive LIF over ``x [T, *step]`` (``step = [..., N]``); arguments ``(x, w or None,
    beta, threshold, rho, strength, opts)`` (``opts`` a :class:`~snnlab.kernels.lif_common.LIFOptions`, its
    ``surrogate`` the noise density's name for a noisy neuron, ``noise`` None unless sampling). Returns ``(o, h,
    theta, s or None, a_prev)``: the transmitted spikes (the only differentiable output), the pre-reset membrane,
    the effective threshold, the own spikes when masking makes them differ from ``o``, and the trace before each
    step (``a[t-1]``, for the backward).

    Example:
        >>> x = torch.tensor([[[1.2]], [[1.2]], [[1.2]]])
        >>> opts = LIFOptions("subtract", False, None, "atan", 2.0, None, 0.3, 0, True, 0.0, 0)
        >>> o, h, theta, _, _ = AdaptiveLIFFunction.apply(x, None, torch.tensor(0.5), torch.tensor(1.0),
        ...                                               torch.tensor(0.5), torch.tensor(0.5), opts)
        >>> o[:, 0, 0].tolist(), theta[:, 0, 0].tolist()
        ([1.0, 0.0, 1.0], [1.0, 1.5, 1.25])
    """

    @staticmethod
    def forward(x, w, beta, threshold, rho, strength, opts):
        _refuse_transforms()
        with torch.no_grad():  # (as autograd runs a Function's forward; torch.export traces it with grad mode on)
            return _forward_loop(x, w, beta, threshold, rho, strength, opts, keep_membrane=True)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w, beta, threshold, rho, strength, opts = inputs
        out, membrane, theta, own, a_prev = output
        ctx.save_for_backward(membrane, out if own is None else own, a_prev, out if w is not None else None,
                              w, beta, threshold, rho, strength)
        ctx.opts = opts
        ctx.mark_non_differentiable(*(t for t in (membrane, theta, own, a_prev) if t is not None))
        ctx.set_materialize_grads(False)  # no [T, ...] zeros for the outputs without a gradient

    @staticmethod
    def backward(ctx, grad_out, *unused):
        _refuse_transforms()  # (Function.apply under torch.func runs its forward outside the transform)
        refuse_higher_order("ALIF (adaptive_lif)", (grad_out,))  # (a tangent on grad_out: forward over reverse)
        membrane, spikes, a_prev, out, w, beta, threshold, rho, strength = ctx.saved_tensors
        if grad_out is None:
            grad_out = torch.zeros_like(membrane)
        o = ctx.opts
        masking = (o.mask_p, cached_mask_key(o.mask_seed)) if o.mask_p > 0.0 else None
        need = tuple(bool(n) for n in ctx.needs_input_grad[1:6])
        gx, gw, gb, gt, gr, gk = _backward(o, masking, need, grad_out, membrane, spikes, a_prev, out, w, beta,
                                           threshold, rho, strength)
        meta = [(p.shape, p.dtype) for p in (beta, threshold, rho, strength)]
        return (gx, gw) + adaptive_param_grads((gb, gt, gr, gk), membrane.shape[0], membrane.shape[1:], meta) + (None,)


def _fire_(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor, theta: torch.Tensor, subtract: bool,
           rnd: torch.Tensor | None, opts: LIFOptions, count: torch.Tensor | None,
           allowed: torch.Tensor | None) -> None:
    """One step after its pre-reset membrane ``h`` and threshold ``theta``, in place: the spikes ``s`` (``h >= theta``,
    or drawn with the uniforms ``rnd``), capped by ``max_spikes`` (``count`` / ``allowed``), and the reset membrane
    ``v`` (``h - theta * s``: ``s`` is 0 or 1, so the product is exact and ``v`` is the step loop's)."""
    if rnd is not None:
        torch.lt(rnd, noise_cdf(opts.noise, h - theta, opts.noise_scale), out=s)
    else:
        torch.ge(h, theta, out=s)
    if count is not None:
        torch.lt(count, opts.max_spikes, out=allowed)
        s.mul_(allowed)
        count.add_(s)
    if subtract:
        torch.addcmul(h, s, theta, value=-1.0, out=v)
    else:
        torch.addcmul(h, h, s, value=-1.0, out=v)


def _aligned(t: torch.Tensor, buf: torch.Tensor) -> torch.Tensor:
    """``t``, or its copy in ``buf`` where ``t`` does not start on a 64-byte boundary. The BLAS's matrix products
    can round differently for unaligned operands, and the step loop multiplies freshly allocated (aligned) spikes:
    the same operands give the same membrane, so the same spikes."""
    return t if t.data_ptr() % 64 == 0 else buf.copy_(t)


def _forward_loop(x: torch.Tensor, w: torch.Tensor | None, beta: torch.Tensor, threshold: torch.Tensor,
                  rho: torch.Tensor, strength: torch.Tensor, opts: LIFOptions,
                  keep_membrane: bool) -> tuple[torch.Tensor, ...]:
    """The forward time loop over ``x [T, *step]`` (no autograd graph): ``(o, h, theta, s or None, a_prev or
    None)`` as :class:`AdaptiveLIFFunction`. ``keep_membrane=False`` (no backward to come) keeps one step of ``h``
    and ``theta`` (``[1, *step]``, ``[0, *step]`` for ``T = 0``) and neither the own spikes nor the trace."""
    T, step = x.shape[0], tuple(x.shape[1:])
    masking = opts.mask_p > 0.0
    rows = T if keep_membrane else min(T, 1)
    new = lambda n: torch.empty((n,) + step, dtype=x.dtype, device=x.device)  # noqa: E731
    membrane, theta = new(rows), new(rows)
    spikes = new(T if keep_membrane or not masking else rows)
    out = new(T) if masking else spikes
    a_prev = new(T) if keep_membrane else new(min(T, 1))   # a[t-1]; one row (updated in place) without a backward
    if a_prev.shape[0]:
        a_prev[0].zero_()
    v = torch.zeros(step, dtype=x.dtype, device=x.device)
    rec = torch.empty_like(v) if w is not None else None
    o_buf = torch.empty_like(v) if w is not None else None
    wt = w.t() if w is not None else None
    flat = (math.prod(step[:-1]), step[-1]) if w is not None else None   # one step as [P, N] for the matmul
    count = torch.zeros_like(v) if opts.max_spikes is not None else None
    allowed = torch.empty_like(v) if opts.max_spikes is not None else None
    n_key = seed_key(opts.seed) if opts.noise is not None else 0
    m_key = cached_mask_key(opts.mask_seed) if masking else 0
    subtract = opts.reset == "subtract"
    numel = v.numel()
    chunk = _time_chunk(numel)
    for start in range(0, T, chunk):
        end = min(T, start + chunk)
        rnd = _noise_chunk(start, end, torch.Size(step), n_key, x) if opts.noise is not None else None
        keep = keep_mask(start * numel, (end - start,) + step, m_key, opts.mask_p, x.device,
                         x.dtype) if masking else None
        for i, t in enumerate(range(start, end)):
            r = t if keep_membrane else 0
            h, th, s, a = membrane[r], theta[r], spikes[t if spikes.shape[0] == T else 0], a_prev[r]
            if t == 0 or w is None:
                torch.addcmul(x[t], v, beta, out=h)              # beta * v[t-1] + x[t]
            else:
                torch.mm(_aligned(out[t - 1], o_buf).view(flat), wt, out=rec.view(flat))   # x[t] + o[t-1] @ W^T
                torch.add(x[t], rec, out=h).addcmul_(v, beta)   # as the step loop: then the leak
            torch.mul(strength, a, out=th).add_(threshold)       # threshold + k * a[t-1]
            _fire_(h, s, v, th, subtract, None if rnd is None else rnd[i], opts, count, allowed)
            if keep_membrane and t + 1 < T:
                torch.addcmul(s, a, rho, out=a_prev[t + 1])      # a[t] = rho * a[t-1] + s[t]
            elif not keep_membrane:
                torch.addcmul(s, a, rho, out=a)
            if keep is not None:
                torch.mul(s, keep[i], out=out[t])
    own = spikes if masking and keep_membrane else None
    return out, membrane, theta, own, a_prev if keep_membrane else None


def _backward(opts: LIFOptions, masking: tuple[float, int] | None, need: Sequence[bool], grad_out: torch.Tensor,
              membrane: torch.Tensor, spikes: torch.Tensor, a_prev: torch.Tensor, out: torch.Tensor | None,
              w: torch.Tensor | None, beta: torch.Tensor, threshold: torch.Tensor, rho: torch.Tensor,
              strength: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
    """``(grad_x, grad_w, and the beta, threshold, rho, strength gradients per element of a step)``, None where not
    needed (``need``: for ``w, beta, threshold, rho, strength``)."""
    need_w, need_beta, need_thr, need_rho, need_k = need
    T, step = membrane.shape[0], membrane.shape[1:]
    grad_x = torch.empty_like(membrane)
    if T == 0:  # an empty sequence: zeros for everything
        zeros = membrane.new_zeros(step)
        grads = tuple(zeros.clone() if n else None for n in need[1:])
        return (grad_x, w.new_zeros(w.shape) if need_w and w is not None else None) + grads
    sums = _reverse_time(opts, masking, need, grad_out, membrane, spikes, a_prev, w, beta, threshold, rho, strength,
                         grad_x)
    g_w = None
    if need_w and w is not None and T > 1:   # dL/dW = sum_t gh[t+1]^T o[t]: one matmul over all steps
        rows = ((T - 1) * math.prod(step[:-1]), w.shape[0])
        g_w = grad_x[1:].reshape(rows).t() @ out[:-1].reshape(rows)
    if T == 1:
        sums["rho"] = None  # the trace of the only step is never read: no gradient, as the step loop
    return (grad_x, g_w) + tuple(sums.get(k) for k in ("beta", "thr", "rho", "k"))


def _reverse_time(opts: LIFOptions, masking: tuple[float, int] | None, need: Sequence[bool], grad_out: torch.Tensor,
                  membrane: torch.Tensor, spikes: torch.Tensor, a_prev: torch.Tensor, w: torch.Tensor | None,
                  beta: torch.Tensor, threshold: torch.Tensor, rho: torch.Tensor, strength: torch.Tensor,
                  grad_x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The reverse-time recurrence (see the module docstring): writes ``grad_x`` (= ``gh``) and returns the
    parameter gradients per element of a step (``{"beta", "thr", "rho", "k"}``, those needed), summed chunk by
    chunk while the chunk's buffers are at hand."""
    T = membrane.shape[0]
    subtract = opts.reset == "subtract"
    fired_after = spikes.sum(0) if opts.max_spikes is not None else None
    chunk = min(T, _time_chunk(membrane[0].numel()))
    buf = lambda: torch.empty((chunk,) + membrane.shape[1:], dtype=membrane.dtype, device=membrane.device)  # noqa
    sg_buf, bc_buf, th_buf, f_buf, ga_buf = buf(), buf(), buf(), buf(), buf()
    sgk_buf = buf() if masking else None
    rec = torch.empty_like(membrane[0]) if w is not None else None
    flat = (math.prod(membrane.shape[1:-1]), membrane.shape[-1])    # one step as [P, N] for the matmul
    ga_carry = torch.zeros_like(membrane[0])      # dL/da[t] for the last step of the chunk: from the later steps
    neg_k = -strength
    kb = strength * beta
    sums = {name: torch.zeros_like(membrane[0]) for name, n in zip(("beta", "thr", "rho", "k"), need[1:]) if n}
    gh_next = None
    for end in range(T, 0, -chunk):
        start = max(0, end - chunk)
        L = end - start
        h, s, ap, go = membrane[start:end], spikes[start:end], a_prev[start:end], grad_out[start:end]
        theta = torch.mul(strength, ap, out=th_buf[:L]).add_(threshold)   # as the forward: bit for bit
        sg = surrogate_grad_(opts.surrogate, torch.sub(h, theta, out=sg_buf[:L]), opts.surrogate_param)
        if fired_after is not None:
            before = fired_after - s.flip(0).cumsum(0).flip(0)
            fired_after = before[0]
            sg.mul_(before < opts.max_spikes)
        if masking:  # the output gradient reaches the neuron through kept spikes only
            keep = keep_mask(start * s[0].numel(), s.shape, masking[1], masking[0], s.device, s.dtype)
            sgk = torch.mul(sg, keep, out=sgk_buf[:L])
        else:
            sgk = sg
        gx = grad_x[start:end]
        torch.mul(sgk, go, out=gx)
        bc = _beta_c(subtract, opts.detach_reset, h, s, sg, beta, -beta * theta, bc_buf[:L])
        f = torch.sub(1.0, s, out=f_buf[:L]).mul_(kb)          # k * beta * (1 - s): gtheta's part from gh[t+1]
        ga = ga_buf[:L]
        ga[L - 1].copy_(ga_carry)
        for i in range(L - 1, -1, -1):
            g = gx[i]
            if gh_next is not None:     # (the last step: nothing comes back from t + 1, and ga[T-1] = 0)
                if rec is not None:
                    torch.mm(gh_next.view(flat), w, out=rec.view(flat))
                    g.addcmul_(sgk[i], rec)
                g.addcmul_(sg[i], ga[i]).addcmul_(gh_next, bc if bc is beta else bc[i])
            nxt = ga[i - 1] if i else ga_carry              # ga[t-1] = rho * ga[t] + k * gtheta[t]
            torch.mul(ga[i], rho, out=nxt).addcmul_(g, neg_k)
            if gh_next is not None:
                nxt.addcmul_(f[i], gh_next)
            gh_next = g
        _chunk_sums(sums, grad_x, start, end, h, s, ap, theta, ga, beta, subtract, bc_buf[:L])
    return sums


def _chunk_sums(sums: dict[str, torch.Tensor], grad_x: torch.Tensor, start: int, end: int, h: torch.Tensor,
                s: torch.Tensor, ap: torch.Tensor, theta: torch.Tensor, ga: torch.Tensor, beta: torch.Tensor,
                subtract: bool, scratch: torch.Tensor) -> None:
    """Add the chunk ``start..end-1``'s terms of the parameter gradients to ``sums`` (``scratch``: a free chunk
    buffer). ``gh[t+1]`` exists for ``t < T - 1`` only (``gh[T] = 0``)."""
    T = grad_x.shape[0]
    n = min(end, T - 1) - start                    # steps of the chunk with a next step
    gh, nxt = grad_x[start:end], grad_x[start + 1:start + 1 + n]
    if "rho" in sums:
        sums["rho"] += torch.mul(ga, ap, out=scratch).sum(0)
    if "thr" in sums or "k" in sums:   # gtheta = -(gh[t] - beta * (1 - s[t]) * gh[t+1])
        gth = torch.neg(gh, out=scratch)
        if n:
            gth[:n].addcmul_(torch.sub(1.0, s[:n]).mul_(beta), nxt)
        if "thr" in sums:
            sums["thr"] += gth.sum(0)
        if "k" in sums:
            sums["k"] += gth.mul_(ap).sum(0)
    if "beta" in sums and n:           # sum_t gh[t+1] * v[t]
        v = h[:n] - theta[:n] * s[:n] if subtract else h[:n] * (1.0 - s[:n])
        sums["beta"] += v.mul_(nxt).sum(0)


def adaptive_lif(x: torch.Tensor, w: torch.Tensor | None, beta: torch.Tensor, threshold: torch.Tensor,
                 rho: torch.Tensor, strength: torch.Tensor, *, reset: str = "subtract", detach_reset: bool = False,
                 max_spikes: int | None = None, surrogate: str = "atan", surrogate_param: float | None = None,
                 noise: str | None = None, noise_scale: float = 0.3, seed: int = 0, sample: bool = True,
                 mask_p: float = 0.0, mask_seed: int = 0,
                 keep_membrane: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the adaptive LIF over ``x [T, B, ..., N]`` (recurrent weight ``w [N, N]``, or None for feed-forward
    neurons); returns ``(transmitted spikes, pre-reset membrane, effective threshold)``, of ``x``'s shape and dtype.

    ``beta``, ``threshold``, ``rho`` (the trace's decay) and ``strength`` (the threshold increase per unit of trace)
    broadcast to ``[..., N]``. Computed in :func:`~snnlab.kernels.dispatch.compute_dtype` (float32 for half input;
    the parameters are cast to it, their gradients come back in their own dtypes). Options as
    :func:`~snnlab.kernels.recurrent_lif.recurrent_lif` (``noise`` with ``sample=True`` draws the spikes; its density
    is the surrogate either way; ``mask_p > 0`` masks the transmitted spikes with ``mask_seed``'s keep masks).
    ``keep_membrane=False``: where no gradient is recorded only the last step's membrane and threshold are kept and
    returned (``[1, B, ..., N]``). Not under ``torch.func`` transforms (``RuntimeError``).

    Example:
        >>> x = torch.full((5, 1, 1), 1.2)
        >>> o, h, theta = adaptive_lif(x, None, torch.tensor(0.5), torch.tensor(1.0), torch.tensor(0.5),
        ...                            torch.tensor(0.5))
        >>> o[:, 0, 0].tolist(), theta[:, 0, 0].tolist()
        ([1.0, 0.0, 1.0, 0.0, 1.0], [1.0, 1.5, 1.25, 1.625, 1.3125])
    """
    refuse_forward_mode("ALIF (adaptive_lif)", (x, w, beta, threshold, rho, strength))
    _refuse_transforms()
    _check_args(x, w)
    surrogate_param = surrogate_param_or_default(_NAME, surrogate, surrogate_param, noise)
    surrogate, surrogate_param = check_lif_options(_NAME, reset, surrogate, surrogate_param, noise, noise_scale)
    work = compute_dtype(x)
    params = adaptive_param_tensors(_NAME, x, work, (beta, threshold, rho, strength))  # (numbers: in `work`)
    max_spikes = check_cap_and_params(_NAME, x, max_spikes, dict(zip(ADAPTIVE_PARAMS, params)))
    xw = x.to(work).contiguous()
    params = tuple(p.to(work) for p in params)
    opts = LIFOptions(reset, bool(detach_reset), max_spikes, surrogate, surrogate_param,
                      noise if sample else None, float(noise_scale), int(seed), bool(sample), check_mask_p(mask_p),
                      int(mask_seed))
    wk = w.to(work) if w is not None else None
    if keep_membrane or _records_gradient((xw, wk) + params):
        out, membrane, theta, _, _ = AdaptiveLIFFunction.apply(xw, wk, *params, opts)
    else:
        with torch.no_grad():
            out, membrane, theta, _, _ = _forward_loop(xw, wk, *params, opts, keep_membrane=False)
    return out.to(x.dtype), membrane.to(x.dtype), theta.to(x.dtype)


def _check_args(x: torch.Tensor, w: torch.Tensor | None) -> None:
    """``ValueError`` / ``TypeError`` for an ``x`` or a recurrent weight :func:`adaptive_lif` cannot take (the options
    and parameters are checked as every LIF kernel checks them: :func:`~snnlab.kernels.lif_common.check_lif_options`,
    :func:`~snnlab.kernels.lif_common.check_cap_and_params`)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{_NAME}: x must be a floating-point tensor, got {type(x).__name__}"
                        f"{'' if not isinstance(x, torch.Tensor) else ' of dtype ' + str(x.dtype)}")
    if x.dim() < 2:
        raise ValueError(f"{_NAME}: x must be time-major [T, B, ..., N], got shape {tuple(x.shape)}")
    if w is not None and w.shape != (x.shape[-1], x.shape[-1]):
        raise ValueError(f"{_NAME}: the recurrent weight must be [N, N] = [{x.shape[-1]}, {x.shape[-1]}] for x "
                         f"{tuple(x.shape)}, got {tuple(w.shape)}")


def _records_gradient(tensors: Sequence[torch.Tensor | None]) -> bool:
    """Whether autograd would differentiate a function of ``tensors``."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
