r"""Fused Triton kernels for the feed-forward adaptive LIF (ALIF): the same function and gradients as
:func:`snnlab.kernels.adaptive_lif.adaptive_lif` with ``w=None`` (see its docstring for the semantics and the backward
recurrences in the two states ``gh`` and ``ga``).

Without a recurrent weight every neuron's time loop is independent of the others, so, as for the LIF
(:mod:`snnlab.kernels.lif_triton`), ``x [T, B, ..., N]`` is viewed as ``[T, M]`` and one Triton program owns
``BLOCK`` neurons and runs the whole time loop with its state in registers. The kernels' set-up (neurons, decay and
threshold, offsets, counters, loads in flight) and their spike cap, masks and stores are the LIF kernels'
``@triton.jit`` helpers, so the two cannot drift:

* forward: ``v`` (the membrane after reset), ``a`` (the spike trace) and, with ``max_spikes``, the spike and
  threshold-crossing counts in registers; writes the transmitted spikes ``o``, the pre-reset membrane ``h``, the
  effective threshold ``theta = threshold + strength * a[t-1]`` (an output), the trace before each step ``a[t-1]``
  (saved for the backward; not written where no backward comes) and, where the backward cannot recompute them
  (noise, half precision) and masking makes them differ from ``o``, the neuron's own spikes. With ``max_spikes`` it
  writes each neuron's spike and crossing totals (``[2, M]``).
* both kernels keep the loads of the next ``SNNLAB_TRITON_LIF_PREFETCH`` steps (1 to 4, default 4; the LIF kernels'
  setting) in flight while they compute one;
* backward: reverse time with ``gh = dL/dh[t]`` and ``ga = dL/da[t]`` in registers; recomputes ``theta`` from the
  saved trace (the forward's operations: the same value), the surrogate, the ``max_spikes`` mask (counts
  decremented from the forward's totals) and, in float32 without noise, the spikes (``h >= theta`` capped by the
  crossings before the step; otherwise they are read back); writes ``grad_x = gh`` and per-element partial sums of
  the ``beta``, ``threshold``, ``rho`` and ``strength`` gradients (summed over time in registers, reduced to the
  parameters' shapes in PyTorch). An output gradient expanded from one number (``sum()``) is read as that number.

Rounding follows the PyTorch path step by step: ``h = fma(v, beta, x)`` and ``a = fma(a, rho, s)`` (``torch.addcmul``
rounds once), ``theta = strength * a`` then ``+ threshold`` (two roundings: the kernels are compiled without
floating-point contraction, ``enable_fp_fusion=False``; the explicit ``fma`` are kept), so in float32 the spikes, the
membrane and the threshold are the CPU PyTorch path's, bit for bit (tested under the interpreter). Noise draws and
keep masks come from the counter hash at ``t * M + m`` with the same keys as the PyTorch path: the same seed gives the
same spikes.

Inputs may be float32, float16 or bfloat16: computed in float32, returned in the input's dtype; what the backward reads
(the membrane, the trace) is saved in float32.
First-order gradients only; no ``torch.func`` support (``RuntimeError`` under its transforms). Needs CUDA tensors, or
CPU tensors with ``TRITON_INTERPRET=1`` set before Triton is imported (testing). Importing this module without
Triton raises :class:`ImportError`.
"""
from __future__ import annotations

import torch

from . import lif_triton as _lif_triton
from .counter_rng import cached_mask_key, seed_key
from .dispatch import surrogate_param_or_default
from .first_order import refuse_forward_mode, refuse_higher_order
from .func_transforms import refuse_transforms
from .lif_common import (ADAPTIVE_PARAMS, LIFOptions, SURROGATE_CODES, adaptive_gradients, adaptive_param_tensors,
                         check_cap_and_params, check_fused_args, check_lif_options, check_mask_p, expanded_from_one,
                         flat_param, keep_for_adaptive_backward, noise_divisor, steps_and_width)
from .lif_triton import (_MAX_NEURONS, _SUPPORTED_DTYPES, _backward_offsets, _cap_spikes, _forward_counters,
                         _gpu_sms, _keep, _load_step, _neuron_params, _next_input, _noise_cdf, _prefetch_inputs,
                         _queue_push, _signed32, _spike_totals, _step_spikes, _store_counts, _store_spikes, _surrogate,
                         _uniform, launch_config)
from .triton_import import tl, triton

__all__ = ["AdaptiveLIFTritonFunction", "adaptive_lif_triton"]

_NAME = "adaptive_lif_triton"


@triton.jit(do_not_specialize=["T", "key", "mask_key", "mask_p"])
def _alif_fwd_kernel(x_ptr, beta_ptr, thr_ptr, rho_ptr, k_ptr, o_ptr, own_ptr, h_ptr, th_ptr, a_ptr, cnt_ptr,
                     raw_ptr, T, M, max_spikes, key, noise_div, mask_key, mask_p,
                     RESET_ZERO: tl.constexpr, HAS_MAX: tl.constexpr, SAMPLING: tl.constexpr, NOISE: tl.constexpr,
                     MASKING: tl.constexpr, STORE_OWN: tl.constexpr, STORE_A: tl.constexpr, BLOCK: tl.constexpr,
                     PREFETCH: tl.constexpr):
    offs, mask, beta, thr = _neuron_params(beta_ptr, thr_ptr, M, BLOCK)  # (the LIF kernels' set-up)
    rho = _load_step(rho_ptr, offs, mask)
    k = _load_step(k_ptr, offs, mask)
    v = tl.zeros([BLOCK], dtype=tl.float32)
    a = tl.zeros([BLOCK], dtype=tl.float32)      # the trace a[t-1]
    count = tl.zeros([BLOCK], dtype=tl.float32)  # spikes so far (max_spikes)
    raw = tl.zeros([BLOCK], dtype=tl.float32)    # threshold crossings / draws so far, before the cap
    off, stride, ctr, m_u, key_u, mkey_u = _forward_counters(offs, M, key, mask_key, BLOCK)
    # the inputs of the next PREFETCH steps are in flight while a step is computed (q1 = this step's)
    step0, q1, q2, q3, q4 = _prefetch_inputs(x_ptr, off, stride, mask, T, BLOCK, PREFETCH)
    for t in range(T):
        xt, q1, q2, q3, q4 = _next_input(x_ptr, off, stride, mask, step0 + t, T, q1, q2, q3, q4, PREFETCH)
        h = tl.fma(v, beta, xt)                  # torch.addcmul(x, v, beta): one rounding
        theta = k * a + thr                      # two roundings (compiled without fp contraction)
        if SAMPLING:
            s = tl.where(_uniform(ctr, key_u) < _noise_cdf(h - theta, noise_div, NOISE), 1.0, 0.0)
        else:
            s = tl.where(h >= theta, 1.0, 0.0)
        s, count, raw = _cap_spikes(s, count, raw, max_spikes, HAS_MAX)
        # transmitted s * keep with masking; the neuron's own s drive its reset, its trace (and the backward)
        _store_spikes(o_ptr, own_ptr, off, s, mask, ctr, mkey_u, mask_p, MASKING, STORE_OWN)
        tl.store(h_ptr + off, h.to(h_ptr.dtype.element_ty), mask=mask)
        tl.store(th_ptr + off, theta.to(th_ptr.dtype.element_ty), mask=mask)
        if STORE_A:
            tl.store(a_ptr + off, a.to(a_ptr.dtype.element_ty), mask=mask)
        if RESET_ZERO:
            v = h - h * s
        else:
            v = h - theta * s                    # s is 0 or 1: the product is exact
        a = tl.fma(a, rho, s)                    # torch.addcmul(s, a, rho)
        ctr = ctr + m_u
        off = off + stride
    _store_counts(cnt_ptr, raw_ptr, offs, count, raw, mask, HAS_MAX)


@triton.jit(do_not_specialize=["T", "mask_key", "mask_p"])
def _alif_bwd_kernel(gs_ptr, h_ptr, s_ptr, a_ptr, beta_ptr, thr_ptr, rho_ptr, k_ptr, cnt_ptr, gx_ptr, gbeta_ptr,
                     gthr_ptr, grho_ptr, gk_ptr, T, M, max_spikes, sparam, mask_key, mask_p,
                     RESET_ZERO: tl.constexpr, DETACH: tl.constexpr, HAS_MAX: tl.constexpr, SURR: tl.constexpr,
                     GS_MODE: tl.constexpr, RECOMPUTE_S: tl.constexpr, NEED_BETA: tl.constexpr,
                     NEED_THR: tl.constexpr, NEED_RHO: tl.constexpr, NEED_K: tl.constexpr, MASKING: tl.constexpr,
                     BLOCK: tl.constexpr, PREFETCH: tl.constexpr):
    offs, mask, beta, thr = _neuron_params(beta_ptr, thr_ptr, M, BLOCK)  # (the LIF kernels' set-up)
    rho = _load_step(rho_ptr, offs, mask)
    k = _load_step(k_ptr, offs, mask)
    before = _spike_totals(cnt_ptr, offs, mask, HAS_MAX, BLOCK)
    gs_one = 0.0
    if GS_MODE == 1:  # the output gradient is one number for every element (from sum())
        gs_one = tl.load(gs_ptr).to(tl.float32)
    gh_next = tl.zeros([BLOCK], dtype=tl.float32)  # gh[t+1] (0 after the last step)
    ga = tl.zeros([BLOCK], dtype=tl.float32)       # ga[t] (0 at the last step)
    g_beta = tl.zeros([BLOCK], dtype=tl.float32)
    g_thr = tl.zeros([BLOCK], dtype=tl.float32)
    g_rho = tl.zeros([BLOCK], dtype=tl.float32)
    g_k = tl.zeros([BLOCK], dtype=tl.float32)
    mkey_u, stride, off = _backward_offsets(offs, T, M, mask_key, BLOCK)
    # the loads of the PREFETCH steps before step t are in flight while step t is computed (queues of the
    # membrane, trace, saved spikes and output gradient; slot 1 holds step t)
    step0 = tl.full([BLOCK], 0, tl.int32)
    qh1, qh2, qh3, qh4 = ga, ga, ga, ga
    qa1, qa2, qa3, qa4 = ga, ga, ga, ga
    qs1, qs2, qs3, qs4 = ga, ga, ga, ga
    qg1, qg2, qg3, qg4 = ga, ga, ga, ga
    for j in tl.static_range(PREFETCH):  # steps T-1 .. T-PREFETCH
        nh, na, ns, ng = _load_back(h_ptr, a_ptr, s_ptr, gs_ptr, off - j * stride, mask & (step0 + j < T),
                                    RECOMPUTE_S, GS_MODE)
        _, qh1, qh2, qh3, qh4 = _queue_push(qh1, qh2, qh3, qh4, nh, PREFETCH)
        _, qa1, qa2, qa3, qa4 = _queue_push(qa1, qa2, qa3, qa4, na, PREFETCH)
        _, qs1, qs2, qs3, qs4 = _queue_push(qs1, qs2, qs3, qs4, ns, PREFETCH)
        _, qg1, qg2, qg3, qg4 = _queue_push(qg1, qg2, qg3, qg4, ng, PREFETCH)
    for i in range(T):
        nh, na, ns, ng = _load_back(h_ptr, a_ptr, s_ptr, gs_ptr, off - PREFETCH * stride,
                                    mask & (step0 + T - 1 - i - PREFETCH >= 0), RECOMPUTE_S, GS_MODE)
        h, qh1, qh2, qh3, qh4 = _queue_push(qh1, qh2, qh3, qh4, nh, PREFETCH)
        ap, qa1, qa2, qa3, qa4 = _queue_push(qa1, qa2, qa3, qa4, na, PREFETCH)
        s_read, qs1, qs2, qs3, qs4 = _queue_push(qs1, qs2, qs3, qs4, ns, PREFETCH)
        go, qg1, qg2, qg3, qg4 = _queue_push(qg1, qg2, qg3, qg4, ng, PREFETCH)
        theta = k * ap + thr                     # as the forward
        s, before, allowed = _step_spikes(h, s_read, mask, theta, before, max_spikes, RECOMPUTE_S, HAS_MAX)
        sg = _surrogate(h - theta, sparam, SURR) * allowed
        if GS_MODE == 1:
            go = go + gs_one
        if MASKING:  # the output gradient reaches the neuron through kept spikes only (counter t*M + m)
            go = go * _keep(off.to(tl.uint32), mkey_u, mask_p)
        if RESET_ZERO:
            if DETACH:
                bc = beta * (1.0 - s)
            else:
                bc = beta * ((1.0 - s) - h * sg)
        else:
            if DETACH:
                bc = beta
            else:
                bc = beta * (1.0 - theta * sg)
        gh = sg * go + sg * ga + bc * gh_next
        tl.store(gx_ptr + off, gh.to(gx_ptr.dtype.element_ty), mask=mask)
        gtheta = beta * (1.0 - s) * gh_next - gh  # dL/dtheta[t]
        if NEED_BETA:  # gh[t+1] * v[t]
            if RESET_ZERO:
                v = h - h * s
            else:
                v = h - theta * s
            g_beta = g_beta + gh_next * v
        if NEED_THR:
            g_thr = g_thr + gtheta
        if NEED_K:
            g_k = g_k + gtheta * ap
        if NEED_RHO:
            g_rho = g_rho + ga * ap
        ga = rho * ga + k * gtheta               # ga[t-1]
        gh_next = gh
        off = off - stride
    if NEED_BETA:
        tl.store(gbeta_ptr + offs, g_beta, mask=mask)
    if NEED_THR:
        tl.store(gthr_ptr + offs, g_thr, mask=mask)
    if NEED_RHO:
        tl.store(grho_ptr + offs, g_rho, mask=mask)
    if NEED_K:
        tl.store(gk_ptr + offs, g_k, mask=mask)


#: whether the kernels run on Triton's CPU interpreter (``TRITON_INTERPRET=1`` when this module was imported)
_INTERPRETED = type(_alif_fwd_kernel).__name__ == "InterpretedFunction"


@triton.jit
def _load_back(h_ptr, a_ptr, s_ptr, gs_ptr, off, valid, RECOMPUTE_S: tl.constexpr, GS_MODE: tl.constexpr):
    """What the backward reads of one step: membrane, trace, saved spikes (unless recomputed) and output gradient
    (a tensor: GS_MODE 2), as float32; zeros for what it does not read and where not ``valid``."""
    h = _load_step(h_ptr, off, valid)
    a = _load_step(a_ptr, off, valid)
    s = tl.zeros(h.shape, tl.float32)
    g = tl.zeros(h.shape, tl.float32)
    if not RECOMPUTE_S:
        s = _load_step(s_ptr, off, valid)
    if GS_MODE == 2:
        g = _load_step(gs_ptr, off, valid)
    return h, a, s, g


def _refuse_transforms() -> None:
    refuse_transforms(_NAME, "fused Triton adaptive LIF")


def _prefetch() -> int:
    """Steps each program loads ahead: :mod:`~snnlab.kernels.lif_triton`'s setting (``SNNLAB_TRITON_LIF_PREFETCH``,
    1 to 4, default 4), read at each launch."""
    return _lif_triton._PREFETCH


def _recomputes_spikes(sampling: bool) -> bool:
    """Whether the backward recomputes the spikes (without noise: ``h >= theta`` on the float32 membrane and trace
    the forward compared, capped by the crossings) instead of reading them back."""
    return not sampling


def _forward(x: torch.Tensor, params: tuple[torch.Tensor, ...], opts: LIFOptions,
             store_trace: bool) -> tuple[torch.Tensor | None, ...]:
    """Launch the forward kernel over ``x [T, *step]`` (contiguous, a supported dtype): ``(o, h, theta, own, a_prev,
    counts)``; ``own`` None unless written apart (masking, spikes not recomputable), ``a_prev`` None unless
    ``store_trace``, ``counts`` (``[2, M]`` float32: spikes, crossings) None without ``max_spikes``."""
    T, M = steps_and_width(x)
    if M > _MAX_NEURONS:
        raise ValueError(f"{_NAME}: {M} neurons per time step (B * ... * N) is more than the kernels' int32 indices "
                         f"reach ({_MAX_NEURONS}); split the batch or use adaptive_lif (the PyTorch path)")
    # what the backward reads (the membrane, the trace) is kept in float32 for half-precision input: rounded to
    # bfloat16, a membrane of about 14 (an adapted threshold) moves by 0.06, a large part of a surrogate's width
    saved = torch.float32 if store_trace else x.dtype
    o, h, theta = torch.empty_like(x), torch.empty_like(x, dtype=saved), torch.empty_like(x)
    sampling, masking = opts.sampling(), opts.mask_p > 0.0
    own = torch.empty_like(x) if store_trace and masking and not _recomputes_spikes(sampling) else None
    a_prev = torch.empty_like(x, dtype=torch.float32) if store_trace else None
    counts = (torch.empty((2, M), dtype=torch.float32, device=x.device) if opts.max_spikes is not None else None)
    if T > 0 and M > 0:
        block, warps = launch_config(M, _gpu_sms(x))
        _alif_fwd_kernel[(triton.cdiv(M, block),)](
            x, *params, o, o if own is None else own, h, theta, o if a_prev is None else a_prev,
            o if counts is None else counts[0], o if counts is None else counts[1], T, M,
            float(opts.max_spikes) if opts.max_spikes is not None else 0.0,
            _signed32(seed_key(opts.seed)) if sampling else 0,
            noise_divisor(opts.noise, opts.noise_scale) if sampling else 1.0,
            _signed32(cached_mask_key(opts.mask_seed)) if masking else 0, opts.mask_p,
            RESET_ZERO=opts.reset == "zero", HAS_MAX=opts.max_spikes is not None, SAMPLING=sampling,
            NOISE=SURROGATE_CODES[opts.noise] if sampling else 0, MASKING=masking, STORE_OWN=own is not None,
            STORE_A=a_prev is not None, BLOCK=block, PREFETCH=_prefetch(), num_warps=warps, enable_fp_fusion=False)
    return o, h, theta, own, a_prev, counts


def _backward(opts: LIFOptions, need: tuple[bool, ...], grad_o: torch.Tensor | None, h: torch.Tensor,
              spikes: torch.Tensor | None, a_prev: torch.Tensor, counts: torch.Tensor | None,
              params: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor | None, ...]:
    """Launch the backward kernel: ``(grad_x, and the beta, threshold, rho, strength gradients per element [M]
    float32)``, None where not ``need``-ed; ``spikes`` None where the kernel recomputes them."""
    T, M = steps_and_width(h)
    grad_x = torch.empty_like(h)
    grads = tuple(torch.zeros(M, dtype=torch.float32, device=h.device) if n else None for n in need)
    if T == 0 or M == 0:
        return (grad_x.zero_(),) + grads
    if grad_o is None:
        gs_mode, gs = 0, grad_x            # (a dummy pointer)
    elif expanded_from_one(grad_o):
        gs_mode, gs = 1, grad_o
    else:
        gs_mode, gs = 2, grad_o.contiguous()
    recompute = spikes is None
    cnt = grad_x if counts is None else counts[1] if recompute else counts[0]
    block, warps = launch_config(M, _gpu_sms(h))
    _alif_bwd_kernel[(triton.cdiv(M, block),)](
        gs, h, h if recompute else spikes, a_prev, *params, cnt, grad_x, *(grad_x if g is None else g for g in grads),
        T, M, float(opts.max_spikes) if opts.max_spikes is not None else 0.0, opts.surrogate_param,
        _signed32(cached_mask_key(opts.mask_seed)) if opts.mask_p > 0.0 else 0, opts.mask_p,
        RESET_ZERO=opts.reset == "zero", DETACH=opts.detach_reset, HAS_MAX=opts.max_spikes is not None,
        SURR=SURROGATE_CODES[opts.surrogate], GS_MODE=gs_mode, RECOMPUTE_S=recompute, NEED_BETA=need[0],
        NEED_THR=need[1], NEED_RHO=need[2], NEED_K=need[3], MASKING=opts.mask_p > 0.0, BLOCK=block,
        PREFETCH=_prefetch(), num_warps=warps, enable_fp_fusion=False)
    return (grad_x,) + grads


class AdaptiveLIFTritonFunction(torch.autograd.Function):
    """Autograd function of the fused Triton feed-forward adaptive LIF: ``(x [T, *step], beta, threshold, rho,
    strength, opts) -> (o, h, theta)`` (parameters broadcastable to ``step``, ``opts`` a
    :class:`~snnlab.kernels.lif_common.LIFOptions` whose ``noise`` is None unless sampling and whose ``surrogate`` is
    the noise density for a noisy neuron); only ``o`` is differentiable. Call :func:`adaptive_lif_triton`."""

    @staticmethod
    def forward(ctx, x, beta, threshold, rho, strength, opts):
        _refuse_transforms()
        flat = tuple(flat_param(p, x) for p in (beta, threshold, rho, strength))   # [M] float32
        o, h32, theta, own, a_prev, counts = _forward(x, flat, opts, store_trace=True)
        spikes = None if _recomputes_spikes(opts.sampling()) else o if own is None else own
        h = h32.to(x.dtype)  # (returned in x's dtype; the float32 one is kept for the backward)
        keep_for_adaptive_backward(ctx, (h32, spikes, a_prev, counts, *flat), opts, x, (beta, threshold, rho, strength),
                                   h, theta)
        return o, h, theta

    @staticmethod
    def backward(ctx, grad_o, *unused):
        _refuse_transforms()
        refuse_higher_order("ALIF (adaptive_lif_triton)", (grad_o,))  # (a tangent on grad_o: forward over reverse)
        h, spikes, a_prev, counts, *flat = ctx.saved_tensors
        need = tuple(bool(n) for n in ctx.needs_input_grad[1:5])
        grad_x, *grads = _backward(ctx.opts, need, grad_o, h, spikes, a_prev, counts, tuple(flat))
        return adaptive_gradients(ctx, grad_x, grads, h.shape[0])


def _check_args(x: torch.Tensor, params: tuple[torch.Tensor, ...], opts: LIFOptions, noise: str | None) -> None:
    """``ValueError`` / ``TypeError`` for inputs and options the kernels cannot take."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{_NAME}: x must be a floating-point tensor, got {type(x).__name__}"
                        f"{' of dtype ' + str(x.dtype) if isinstance(x, torch.Tensor) else ''}")
    check_fused_args(_NAME, x, opts.reset, opts.surrogate, noise, _SUPPORTED_DTYPES)
    if x.dim() < 2:
        raise ValueError(f"{_NAME}: x must be time-major [T, B, ..., N], got shape {tuple(x.shape)}")
    check_cap_and_params(_NAME, x, opts.max_spikes, dict(zip(ADAPTIVE_PARAMS, params)))


def adaptive_lif_triton(x: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, rho: torch.Tensor,
                        strength: torch.Tensor, *, reset: str = "subtract", detach_reset: bool = False,
                        max_spikes: int | None = None, surrogate: str = "atan", surrogate_param: float | None = None,
                        noise: str | None = None, noise_scale: float = 0.3, seed: int = 0, sample: bool = True,
                        mask_p: float = 0.0, mask_seed: int = 0,
                        keep_membrane: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused Triton feed-forward adaptive LIF over ``x [T, B, ..., N]``: ``(transmitted spikes, pre-reset
    membrane, effective threshold)`` of ``x``'s shape and dtype, as
    ``adaptive_lif(x, None, beta, threshold, rho, strength, ...)`` with the same options (and gradients for ``x``
    and the four parameters, which broadcast to ``[..., N]``).

    ``x`` float32, float16 or bfloat16 on a CUDA device (or on the CPU under ``TRITON_INTERPRET=1``), computed in
    float32. The whole membrane and threshold are always returned; ``keep_membrane=False`` with no gradient recorded
    only skips saving the trace for a backward. Not under ``torch.func`` transforms (``RuntimeError``); first-order
    gradients only.

    Example:
        >>> x = torch.full((5, 1, 1), 1.2, device="cuda")  # doctest: +SKIP
        >>> o, h, theta = adaptive_lif_triton(x, 0.5, 1.0, 0.5, 0.5)  # doctest: +SKIP
        >>> o[:, 0, 0].tolist(), theta[:, 0, 0].tolist()  # doctest: +SKIP
        ([1.0, 0.0, 1.0, 0.0, 1.0], [1.0, 1.5, 1.25, 1.625, 1.3125])
    """
    refuse_forward_mode("ALIF (adaptive_lif_triton)", (x, beta, threshold, rho, strength))
    _refuse_transforms()
    surrogate_param = surrogate_param_or_default(_NAME, surrogate, surrogate_param, noise)
    surrogate, surrogate_param = check_lif_options(_NAME, reset, surrogate, surrogate_param, noise, noise_scale)
    opts = LIFOptions(reset, bool(detach_reset), max_spikes, surrogate, surrogate_param,
                      noise if sample else None, float(noise_scale), int(seed), bool(sample), check_mask_p(mask_p),
                      int(mask_seed))
    params = adaptive_param_tensors(_NAME, x, torch.float32, (beta, threshold, rho, strength))
    _check_args(x, params, opts, noise)
    _lif_triton._check_device(x, _NAME, "snnlab.kernels.adaptive_lif.adaptive_lif (the PyTorch path)")
    x = x.contiguous()
    if keep_membrane or (torch.is_grad_enabled() and any(t.requires_grad for t in (x,) + params)):
        return AdaptiveLIFTritonFunction.apply(x, *params, opts)
    flat = tuple(flat_param(p, x) for p in params)
    o, h, theta, *_ = _forward(x, flat, opts, store_trace=False)
    return o, h, theta
