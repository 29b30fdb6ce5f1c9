"""Fused Triton kernels for the multi-step LIF (forward and reverse-time backward).

Same functions and gradients as :func:`snnlab.kernels.lif_torch.lif_torch` (see its docstring
for the semantics). Layout: ``x`` is viewed as ``[T, M]`` with ``M`` the number of elements in
one time step; one Triton program owns ``BLOCK`` neurons and runs the whole time loop with the
membrane kept in registers.

* forward: writes the spikes and the pre-reset membrane ``h`` (saved for backward) and, with
  ``max_spikes``, each neuron's spike and threshold-crossing counts;
* backward: runs time in reverse, recomputes the surrogate, the spikes (without noise:
  ``h >= threshold``, capped by the crossings before the step; otherwise the saved spikes are
  read), the ``max_spikes`` mask (counts decremented from the forward's totals) and ``v[t-1]``,
  writes ``grad_x`` and per-element partial gradients of ``beta`` and ``threshold`` (summed over
  time in registers), which are then reduced in PyTorch to the parameter shapes. An output
  gradient expanded from one number (the gradient of ``sum()``) is passed as that number.

Memory traffic per element and step (float32, no noise): forward reads ``x`` and writes ``s`` and
``h``; backward reads ``h`` and the output gradient and writes ``grad_x`` (6 tensors; 5 with a
``sum()`` loss, whose gradient is one number).

The time loop is sequential, so a program that loaded each step just before using it would wait on
DRAM latency at every step: both kernels keep the loads of the next ``SNNLAB_TRITON_LIF_PREFETCH``
steps (default 4, 1 to 4) in flight while they compute one. Programs get up to 1024 neurons, fewer
where that would leave multiprocessors idle (:func:`launch_config`; ``SNNLAB_TRITON_LIF_BLOCK`` fixes
the block). Both settings are read when this module is imported.

Noisy neurons draw their uniforms from the same counter hash as
:mod:`snnlab.kernels.counter_rng` (element index ``t * M + m`` XOR the seed key), so the
same seed gives the same spikes as the PyTorch path (up to draws within float32 rounding of the firing
probability: see that module). Spike masking (``mask_p > 0``) is fused the
same way: the forward stores ``s * keep`` (keep from the hash under the mask key) as the output and
the backward multiplies the output gradient by the recomputed keep; the neuron's own spikes are
recomputed as above, or (noise) written to a second tensor for the backward.

Inputs may be float32, float16 or bfloat16: values are loaded, computed in float32 and stored
in the input dtype. ``beta`` / ``threshold`` may be any tensors broadcastable to ``x.shape[1:]``
(scalars or per neuron); they are expanded to ``[M]`` for the kernel.

The kernels' set-up (neurons, parameters, offsets, counters, loads in flight) and spike bookkeeping (cap, masks,
stores) are small ``@triton.jit`` helpers, inlined when compiled, that :mod:`snnlab.kernels.adaptive_lif_triton` shares.

Importing this module without Triton installed raises :class:`ImportError`.
"""
from __future__ import annotations

import functools
import os

import torch

from .counter_rng import cached_mask_key, seed_key
from .dispatch import TRITON_DTYPES, surrogate_param_or_default
from .first_order import first_order_backward, refuse_forward_mode
from .func_transforms import (PARAM, STEP, TIME, backward_cfg, backward_runner, check_vmap_randomness,
                              fixed_signature, graph_tie, vmap_by_slices, vmap_folded)
from .lif_common import (LIFOptions, SURROGATE_CODES, check_fused_args, check_lif_options, check_mask_p,
                         expanded_from_one, flat_param, lif_params, noise_divisor, param_grads, steps_and_width)
from .triton_import import interpreter_problem, tl, triton

_ATAN, _FAST_SIGMOID, _TRIANGLE, _SIGMOID, _GAUSSIAN, _LOGISTIC = (
    SURROGATE_CODES[n] for n in ("atan", "fast_sigmoid", "triangle", "sigmoid", "gaussian", "logistic"))

_SUPPORTED_DTYPES = TRITON_DTYPES


def _env_setting(name: str, low: int, high: int, power_of_two: bool) -> int | None:
    """An integer tuning setting from the environment (``None`` when unset); ``ValueError`` when out of range."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    n = int(value) if value.isdigit() else 0
    if n < low or n > high or (power_of_two and n & (n - 1)):
        kind = "a power of two" if power_of_two else "an integer"
        raise ValueError(f"{name} must be {kind} from {low} to {high}, got {value!r}")
    return n


def _block_setting() -> int | None:
    """Neurons per program set by ``SNNLAB_TRITON_LIF_BLOCK`` (a power of two, 16 to 4096), or ``None``."""
    return _env_setting("SNNLAB_TRITON_LIF_BLOCK", 16, 4096, power_of_two=True)


def _prefetch_setting() -> int:
    """Time steps each program loads ahead: 4, or ``SNNLAB_TRITON_LIF_PREFETCH`` (1 to 4)."""
    n = _env_setting("SNNLAB_TRITON_LIF_PREFETCH", 1, 4, power_of_two=False)
    return 4 if n is None else n


# None: up to 1024 neurons per program, fewer where that leaves SMs idle (see launch_config)
_FIXED_BLOCK = _block_setting()
_MAX_BLOCK = _FIXED_BLOCK or 1024
_PREFETCH = _prefetch_setting()
# the kernels index the neurons of a step in int32 (the time offsets are int64)
_MAX_NEURONS = 2**31 - 1


@triton.jit
def _mix32(x):
    """lowbias32 hash on uint32 (wrap-around arithmetic == the ``& 0xFFFFFFFF`` of the torch path)."""
    x = x ^ (x >> 16)
    x = x * tl.full(x.shape, 0x7FEB352D, tl.uint32)
    x = x ^ (x >> 15)
    x = x * tl.full(x.shape, 0x846CA68B, tl.uint32)
    x = x ^ (x >> 16)
    return x


@triton.jit
def _uniform(ctr, key_u):
    """Uniform in [0, 1) from uint32 counters and key (counter_rng.uniform_from_counter)."""
    return (_mix32(ctr ^ key_u) >> 8).to(tl.float32) * (1.0 / 16777216.0)


@triton.jit
def _surrogate(u, p, SURR: tl.constexpr):
    """dS/du for surrogate code SURR with parameter p (see surrogate_math.surrogate_grad)."""
    if SURR == 0:  # atan
        a = (1.5707963267948966 * p) * u
        g = (p * 0.5) / (1.0 + a * a)
    elif SURR == 1:  # fast_sigmoid
        d = p * tl.abs(u) + 1.0
        g = 1.0 / (d * d)
    elif SURR == 2:  # triangle
        g = p * tl.maximum(1.0 - p * tl.abs(u), 0.0)
    elif SURR == 3:  # sigmoid
        sg = tl.sigmoid(p * u)
        g = p * sg * (1.0 - sg)
    elif SURR == 4:  # gaussian density, p = sigma
        z = u / p
        g = tl.exp(-0.5 * z * z) * (0.3989422804014327 / p)
    else:  # logistic density, p = sigma
        sg = tl.sigmoid(u / p)
        g = sg * (1.0 - sg) / p
    return g


@triton.jit
def _noise_cdf(u, div, NOISE: tl.constexpr):
    """Firing probability: gaussian div = sigma*sqrt(2), logistic div = sigma."""
    if NOISE == 4:
        pr = 0.5 * (1.0 + tl.math.erf(u / div))
    else:
        pr = tl.sigmoid(u / div)
    return pr


@triton.jit
def _queue_push(q1, q2, q3, q4, new, DEPTH: tl.constexpr):
    """One step of a queue of loads ``DEPTH`` (1 to 4) deep, ``q1`` the oldest: ``(q1, queue after pushing new)``.

    Loads issued ``DEPTH`` steps before they are used keep that many steps of memory latency in flight
    per program (the time loop is sequential: one load ahead leaves it waiting on DRAM every step).
    """
    out = q1
    if DEPTH == 1:
        q1 = new
    elif DEPTH == 2:
        q1 = q2
        q2 = new
    elif DEPTH == 3:
        q1 = q2
        q2 = q3
        q3 = new
    else:
        q1 = q2
        q2 = q3
        q3 = q4
        q4 = new
    return out, q1, q2, q3, q4


@triton.jit
def _load_step(ptr, off, valid):
    """One step's values at ``ptr + off`` as float32, 0 where not ``valid``."""
    return tl.load(ptr + off, mask=valid, other=0.0).to(tl.float32)


@triton.jit
def _neuron_params(beta_ptr, thr_ptr, M, BLOCK: tl.constexpr):
    """This program's neurons of a step: ``(offs, mask, beta, thr)``, ``mask`` the offsets below ``M``, the decay and
    threshold as float32 (0 where masked). Shared by the LIF and adaptive LIF kernels."""
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < M
    beta = _load_step(beta_ptr, offs, mask)
    thr = _load_step(thr_ptr, offs, mask)
    return offs, mask, beta, thr


@triton.jit
def _forward_counters(offs, M, key, mask_key, BLOCK: tl.constexpr):
    """A forward's offsets and random counters at step 0: ``(off, stride, ctr, m_u, key_u, mkey_u)``.

    ``off`` / ``stride``: the elements' offsets and a step's (int64); ``ctr``: the counters ``t * M + m`` in uint32
    (advanced by ``m_u`` each step, wrapping mod 2**32 like the torch path's mask); the noise and mask keys as uint32.
    """
    off = offs.to(tl.int64)
    ctr = offs.to(tl.uint32)
    m_u = tl.full([BLOCK], M, tl.int64).to(tl.uint32)
    key_u = tl.full([BLOCK], key, tl.int32).to(tl.uint32, bitcast=True)
    mkey_u = tl.full([BLOCK], mask_key, tl.int32).to(tl.uint32, bitcast=True)
    stride = tl.full([BLOCK], M, tl.int64)
    return off, stride, ctr, m_u, key_u, mkey_u


@triton.jit
def _prefetch_inputs(x_ptr, off, stride, mask, T, BLOCK: tl.constexpr, PREFETCH: tl.constexpr):
    """The loads of steps 0 .. PREFETCH-1 of ``x`` put in flight (0 from step T): ``(step0, q1, q2, q3, q4)``,
    the queue for :func:`_next_input` (``q1`` step 0's) and ``step0`` a zero step index."""
    step0 = tl.full([BLOCK], 0, tl.int32)
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    q1, q2, q3, q4 = zero, zero, zero, zero
    for k in tl.static_range(PREFETCH):  # (launched only when T > 0)
        _, q1, q2, q3, q4 = _queue_push(q1, q2, q3, q4, _load_step(x_ptr, off + k * stride, mask & (step0 + k < T)),
                                        PREFETCH)
    return step0, q1, q2, q3, q4


@triton.jit
def _next_input(x_ptr, off, stride, mask, step, T, q1, q2, q3, q4, PREFETCH: tl.constexpr):
    """Step ``step``'s input (``off`` its offsets) from the queue, and the queue with the load of step
    ``step + PREFETCH`` (0 from step T) pushed in: ``(xt, q1, q2, q3, q4)``."""
    ahead = _load_step(x_ptr, off + PREFETCH * stride, mask & (step + PREFETCH < T))
    return _queue_push(q1, q2, q3, q4, ahead, PREFETCH)


@triton.jit
def _cap_spikes(s, count, raw, max_spikes, HAS_MAX: tl.constexpr):
    """With ``max_spikes``: ``(s, count, raw)`` with the crossing counted in ``raw`` and ``s`` kept only while fewer
    than ``max_spikes`` spikes came before (then counted in ``count``); unchanged without."""
    if HAS_MAX:
        raw = raw + s
        s = s * tl.where(count < max_spikes, 1.0, 0.0)
        count = count + s
    return s, count, raw


@triton.jit
def _keep(ctr, mkey_u, mask_p):
    """1.0 where the spike at counter ``ctr`` is transmitted (its uniform under the mask key >= ``mask_p``), else 0.0:
    the forward's mask and the backward's, from the same counters."""
    return tl.where(_uniform(ctr, mkey_u) >= mask_p, 1.0, 0.0)


@triton.jit
def _store_spikes(s_ptr, own_ptr, off, s, mask, ctr, mkey_u, mask_p, MASKING: tl.constexpr, STORE_OWN: tl.constexpr):
    """Store a step's transmitted spikes: ``s``, or with MASKING ``s * keep`` (and, with STORE_OWN, the neuron's own
    ``s`` to ``own_ptr``, which drive its reset and the backward)."""
    if MASKING:
        kept = s * _keep(ctr, mkey_u, mask_p)
        tl.store(s_ptr + off, kept.to(s_ptr.dtype.element_ty), mask=mask)
        if STORE_OWN:
            tl.store(own_ptr + off, s.to(own_ptr.dtype.element_ty), mask=mask)
    else:
        tl.store(s_ptr + off, s.to(s_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _store_counts(cnt_ptr, raw_ptr, offs, count, raw, mask, HAS_MAX: tl.constexpr):
    """With ``max_spikes``, the totals of spikes and crossings over the sample, where the backward's mask starts."""
    if HAS_MAX:
        tl.store(cnt_ptr + offs, count, mask=mask)
        tl.store(raw_ptr + offs, raw, mask=mask)


@triton.jit
def _spike_totals(cnt_ptr, offs, mask, HAS_MAX: tl.constexpr, BLOCK: tl.constexpr):
    """Where a backward's count of spikes (or crossings) before a step starts: the forward's totals over the sample
    with ``max_spikes`` (decremented going back in time), else 0."""
    before = tl.zeros([BLOCK], dtype=tl.float32)
    if HAS_MAX:
        before = tl.load(cnt_ptr + offs, mask=mask, other=0.0)
    return before


@triton.jit
def _backward_offsets(offs, T, M, mask_key, BLOCK: tl.constexpr):
    """A backward's ``(mkey_u, stride, off)``: the mask key as uint32, a step's offset and the last step's offsets
    (int64)."""
    mkey_u = tl.full([BLOCK], mask_key, tl.int32).to(tl.uint32, bitcast=True)
    stride = tl.full([BLOCK], M, tl.int64)
    off = offs.to(tl.int64) + (T - 1).to(tl.int64) * M
    return mkey_u, stride, off


@triton.jit(do_not_specialize=["T", "key", "mask_key", "mask_p"])  # M specialised: divisibility lets loads vectorise
def _lif_fwd_kernel(x_ptr, beta_ptr, thr_ptr, s_ptr, own_ptr, h_ptr, cnt_ptr, raw_ptr, T, M, max_spikes, key,
                    noise_div, mask_key, mask_p,
                    RESET_ZERO: tl.constexpr, HAS_MAX: tl.constexpr, SAMPLING: tl.constexpr,
                    NOISE: tl.constexpr, MASKING: tl.constexpr, STORE_OWN: tl.constexpr, BLOCK: tl.constexpr,
                    PREFETCH: tl.constexpr):
    offs, mask, beta, thr = _neuron_params(beta_ptr, thr_ptr, M, BLOCK)
    v = tl.zeros([BLOCK], dtype=tl.float32)
    count = tl.zeros([BLOCK], dtype=tl.float32)  # spikes so far (max_spikes)
    raw = tl.zeros([BLOCK], dtype=tl.float32)  # threshold crossings / draws so far, before the cap
    off, stride, ctr, m_u, key_u, mkey_u = _forward_counters(offs, M, key, mask_key, BLOCK)
    # the inputs of the next PREFETCH steps are in flight while a step is computed (q1 = this step's)
    step0, q1, q2, q3, q4 = _prefetch_inputs(x_ptr, off, stride, mask, T, BLOCK, PREFETCH)
    for t in range(T):
        xt, q1, q2, q3, q4 = _next_input(x_ptr, off, stride, mask, step0 + t, T, q1, q2, q3, q4, PREFETCH)
        h = tl.fma(v, beta, xt)  # one rounding, as torch.addcmul (whatever Triton's fp-fusion default)
        u = h - thr
        if SAMPLING:
            rnd = _uniform(ctr, key_u)
            s = tl.where(rnd < _noise_cdf(u, noise_div, NOISE), 1.0, 0.0)
        else:
            s = tl.where(u >= 0.0, 1.0, 0.0)
        s, count, raw = _cap_spikes(s, count, raw, max_spikes, HAS_MAX)
        # transmitted spikes s * keep with masking; the neuron's own s drive its reset (and the backward)
        _store_spikes(s_ptr, own_ptr, off, s, mask, ctr, mkey_u, mask_p, MASKING, STORE_OWN)
        tl.store(h_ptr + off, h.to(h_ptr.dtype.element_ty), mask=mask)
        ctr = ctr + m_u
        if RESET_ZERO:
            v = h * (1.0 - s)
        else:
            v = h - thr * s
        off = off + stride
    _store_counts(cnt_ptr, raw_ptr, offs, count, raw, mask, HAS_MAX)


@triton.jit
def _step_spikes(h, s_read, valid, thr, before, max_spikes, RECOMPUTE_S: tl.constexpr, HAS_MAX: tl.constexpr):
    """Spikes, count before this step and max_spikes mask of one step, going back in time.

    ``h`` is the step's membrane and ``s_read`` its saved spikes (used unless recomputed), both 0 where
    not ``valid``. ``before`` is the count up to and including this step (crossings when recomputing,
    spikes when reading them); returns it without this step. Recomputed spikes: ``h >= threshold``,
    capped by the crossings before the step (a crossing is a spike exactly while fewer than max_spikes
    came before).
    """
    if RECOMPUTE_S:
        s = tl.where(valid & (h - thr >= 0.0), 1.0, 0.0)
    else:
        s = s_read
    allowed = tl.full(h.shape, 1.0, tl.float32)
    if HAS_MAX:
        before = before - s
        allowed = tl.where(before < max_spikes, 1.0, 0.0)
        if RECOMPUTE_S:
            s = s * allowed
    return s, before, allowed


@triton.jit
def _load_back(h_ptr, s_ptr, gs_ptr, off, valid, RECOMPUTE_S: tl.constexpr, GS_MODE: tl.constexpr):
    """What the backward reads of one step: membrane, saved spikes (unless recomputed), output gradient
    (a tensor: GS_MODE 2); zeros for what it does not read."""
    h = _load_step(h_ptr, off, valid)
    s = tl.zeros(h.shape, tl.float32)
    g = tl.zeros(h.shape, tl.float32)
    if not RECOMPUTE_S:
        s = _load_step(s_ptr, off, valid)
    if GS_MODE == 2:
        g = _load_step(gs_ptr, off, valid)
    return h, s, g


@triton.jit(do_not_specialize=["T", "mask_key", "mask_p"])
def _lif_bwd_kernel(gs_ptr, h_ptr, s_ptr, beta_ptr, thr_ptr, cnt_ptr, gx_ptr, gbeta_ptr, gthr_ptr,
                    T, M, max_spikes, sparam, mask_key, mask_p,
                    RESET_ZERO: tl.constexpr, DETACH: tl.constexpr, HAS_MAX: tl.constexpr,
                    SURR: tl.constexpr, GS_MODE: tl.constexpr, RECOMPUTE_S: tl.constexpr,
                    NEED_BETA: tl.constexpr, NEED_THR: tl.constexpr, MASKING: tl.constexpr, BLOCK: tl.constexpr,
                    PREFETCH: tl.constexpr):
    offs, mask, beta, thr = _neuron_params(beta_ptr, thr_ptr, M, BLOCK)
    before = _spike_totals(cnt_ptr, offs, mask, HAS_MAX, BLOCK)
    gv = tl.zeros([BLOCK], dtype=tl.float32)
    g_beta = tl.zeros([BLOCK], dtype=tl.float32)
    g_thr = tl.zeros([BLOCK], dtype=tl.float32)
    mkey_u, stride, off = _backward_offsets(offs, T, M, mask_key, BLOCK)
    step0 = tl.full([BLOCK], 0, tl.int32)
    # output gradient: none (GS_MODE 0), one number for every element (1: from sum()), or a tensor (2)
    h, s, gs = _load_back(h_ptr, s_ptr, gs_ptr, off, mask, RECOMPUTE_S, GS_MODE)
    if GS_MODE == 1:
        gs = gs + tl.load(gs_ptr).to(tl.float32)
    s, before, allowed = _step_spikes(h, s, mask, thr, before, max_spikes, RECOMPUTE_S, HAS_MAX)
    # the loads of the PREFETCH steps before step t are in flight while step t is computed
    # (queues of membrane, saved spikes and output gradient; slot 1 holds step t-1)
    zero = tl.zeros([BLOCK], dtype=tl.float32)
    qh1, qh2, qh3, qh4 = zero, zero, zero, zero
    qs1, qs2, qs3, qs4 = zero, zero, zero, zero
    qg1, qg2, qg3, qg4 = zero, zero, zero, zero
    for k in tl.static_range(1, PREFETCH + 1):  # steps T-2 .. T-1-PREFETCH
        nh, ns, ng = _load_back(h_ptr, s_ptr, gs_ptr, off - k * stride, mask & (step0 + k < T), RECOMPUTE_S, GS_MODE)
        _, qh1, qh2, qh3, qh4 = _queue_push(qh1, qh2, qh3, qh4, nh, PREFETCH)
        _, qs1, qs2, qs3, qs4 = _queue_push(qs1, qs2, qs3, qs4, ns, PREFETCH)
        _, qg1, qg2, qg3, qg4 = _queue_push(qg1, qg2, qg3, qg4, ng, PREFETCH)
    for i in range(T):
        t = T - 1 - i
        # step t-1 (v_prev for the beta gradient, and the next iteration's current values) from the queues;
        # step t-1-PREFETCH joins them
        nh, ns, ng = _load_back(h_ptr, s_ptr, gs_ptr, off - (PREFETCH + 1) * stride,
                                mask & (step0 + t - 1 - PREFETCH >= 0), RECOMPUTE_S, GS_MODE)
        h_prev, qh1, qh2, qh3, qh4 = _queue_push(qh1, qh2, qh3, qh4, nh, PREFETCH)
        s_prev, qs1, qs2, qs3, qs4 = _queue_push(qs1, qs2, qs3, qs4, ns, PREFETCH)
        gs_prev, qg1, qg2, qg3, qg4 = _queue_push(qg1, qg2, qg3, qg4, ng, PREFETCH)
        if GS_MODE != 2:
            gs_prev = gs
        pmask = mask & (step0 + t > 0)
        s_prev, before, allowed_prev = _step_spikes(h_prev, s_prev, pmask, thr, before, max_spikes, RECOMPUTE_S,
                                                    HAS_MAX)
        sg = _surrogate(h - thr, sparam, SURR) * allowed
        g_out = gs
        if MASKING:  # the output gradient reaches the neuron through kept spikes only (counter t*M + m)
            g_out = gs * _keep(off.to(tl.uint32), mkey_u, mask_p)
        if RESET_ZERO:
            if DETACH:
                eff = g_out
            else:
                eff = g_out - h * gv
            gh = sg * eff + gv * (1.0 - s)
            if NEED_THR:
                g_thr = g_thr - sg * eff
        else:
            if DETACH:
                eff = g_out
            else:
                eff = g_out - thr * gv
            gh = sg * eff + gv
            if NEED_THR:
                g_thr = g_thr - (sg * eff + gv * s)
        tl.store(gx_ptr + off, gh.to(gx_ptr.dtype.element_ty), mask=mask)
        if NEED_BETA:
            if RESET_ZERO:
                v_prev = h_prev * (1.0 - s_prev)
            else:
                v_prev = h_prev - thr * s_prev
            g_beta = g_beta + gh * v_prev  # v_prev == 0 at t == 0 (masked loads)
        gv = gh * beta
        h = h_prev
        s = s_prev
        gs = gs_prev
        allowed = allowed_prev
        off = off - stride
    if NEED_BETA:
        tl.store(gbeta_ptr + offs, g_beta, mask=mask)
    if NEED_THR:
        tl.store(gthr_ptr + offs, g_thr, mask=mask)


# kernels decorated while TRITON_INTERPRET=1 run on CPU tensors through Triton's interpreter
_INTERPRETED = type(_lif_fwd_kernel).__name__ == "InterpretedFunction"


def _check_device(x: torch.Tensor, who: str = "lif_triton", instead: str = "the torch backend") -> None:
    """``RuntimeError`` naming ``who`` for a tensor the Triton kernels cannot run on (not CUDA, and not under the
    interpreter), suggesting ``instead``; also the interpreter's known problems."""
    if x.device.type != "cuda" and not _INTERPRETED:
        raise RuntimeError(
            f"{who} got a tensor on '{x.device}'; the Triton kernels need a CUDA device. Use {instead}, move the "
            "tensors to CUDA, or set TRITON_INTERPRET=1 before importing triton (CPU testing only).")
    if _INTERPRETED and interpreter_problem():
        raise RuntimeError(f"{who}: {interpreter_problem()}")


@functools.lru_cache(maxsize=None)
def _sm_count(device_index: int) -> int:
    return torch.cuda.get_device_properties(device_index).multi_processor_count


def _gpu_sms(x: torch.Tensor) -> int | None:
    """The streaming multiprocessors of ``x``'s GPU; ``None`` for a CPU tensor (the interpreter)."""
    if not x.is_cuda:
        return None
    return _sm_count(x.device.index if x.device.index is not None else torch.cuda.current_device())


def launch_config(m: int, sms: int | None) -> tuple[int, int]:
    """``(neurons per program, warps)`` for ``m`` neurons per step on a GPU with ``sms`` multiprocessors.

    Up to 1024 neurons per program (``SNNLAB_TRITON_LIF_BLOCK`` sets the most), halved down to 128 while
    there would be fewer programs than multiprocessors (unless the block is set): each program streams
    its neurons' steps one after the other, so an idle multiprocessor is bandwidth lost. Four neurons
    per thread (128-bit loads and stores), at most 8 warps.

    Example:
        >>> launch_config(16 * 16384, sms=132), launch_config(16 * 4096, sms=132)
        ((1024, 8), (256, 2))
    """
    block = max(16, min(_MAX_BLOCK, triton.next_power_of_2(max(m, 1))))
    if sms and _FIXED_BLOCK is None:
        while block > 128 and triton.cdiv(m, block) < sms:
            block //= 2
    return block, max(1, min(8, block // 128))


def _signed32(k: int) -> int:
    return k - (1 << 32) if k >= (1 << 31) else k


def _recomputes_spikes(sampling: bool) -> bool:
    """Whether the backward recomputes the spikes from the membrane (without noise: ``h >= threshold`` on the float32
    membrane the forward compared, capped by the crossings count) instead of reading them back."""
    return not sampling


class LIFTritonFunction(torch.autograd.Function):
    """Autograd function for the fused Triton LIF; returns ``(spikes, membrane_pre_reset)`` and what the backward
    reads (non-differentiable): the neuron's own spikes where written apart, the ``max_spikes`` counts ``[2, ...]``
    (None where absent), beta and the threshold expanded to a step.

    Same arguments as :class:`snnlab.kernels.lif_torch.LIFFunction`; the backward is :class:`LIFTritonBackward`
    (see :mod:`snnlab.kernels.lif_torch` for ``torch.func``).
    """

    @staticmethod
    @fixed_signature
    def forward(x, beta, threshold, opts):
        reset, max_spikes, noise, noise_scale, mask_p = (
            opts.reset, opts.max_spikes, opts.noise, opts.noise_scale, opts.mask_p)
        check_fused_args("lif_triton", x, reset, opts.surrogate, noise, _SUPPORTED_DTYPES)
        _check_device(x)
        x = x.contiguous()
        T, M = steps_and_width(x)
        if M > _MAX_NEURONS:
            raise ValueError(f"lif_triton: {M} neurons per time step (B * N) is more than the kernels' int32 "
                             f"indices reach ({_MAX_NEURONS}); split the batch or use the torch backend")
        spikes = torch.empty_like(x)
        # the backward evaluates the surrogate on the membrane: kept in float32 for half-precision input (rounded
        # to bfloat16, a membrane near 1 moves by up to 0.004, enough to shift a sharp surrogate's gradient by 20 %)
        membrane = torch.empty_like(x, dtype=torch.float32)
        sampling = opts.sampling()
        masking = mask_p > 0.0
        # deterministic spikes are h >= threshold (capped by the crossings count): the backward recomputes them
        # from the saved float32 membrane instead of reading them back (so half input saves 4 bytes per element,
        # as float32 input does)
        recompute = _recomputes_spikes(sampling)
        # with masking the output is s * keep: the neuron's own spikes are written apart when the
        # backward reads them (noise)
        own = torch.empty_like(x) if masking and not recompute else spikes
        m_key = cached_mask_key(opts.mask_seed) if masking else 0
        # per neuron: spikes and threshold crossings over the sample (max_spikes only; the kernel writes all)
        counts = (torch.empty((2,) + x.shape[1:], dtype=torch.float32, device=x.device) if max_spikes is not None
                  else None)
        beta_f, thr_f = flat_param(beta, x), flat_param(threshold, x)  # [M] float32, kept for the backward
        if T > 0 and M > 0:
            block, warps = launch_config(M, _gpu_sms(x))
            noise_div = noise_divisor(noise, noise_scale) if sampling else 1.0
            cnt, raw = (counts[0], counts[1]) if counts is not None else (spikes, spikes)  # unused when absent
            _lif_fwd_kernel[(triton.cdiv(M, block),)](
                x, beta_f, thr_f, spikes, own, membrane, cnt, raw, T, M,
                float(max_spikes) if max_spikes is not None else 0.0,
                _signed32(seed_key(opts.seed)) if sampling else 0, noise_div, _signed32(m_key), mask_p,
                RESET_ZERO=reset == "zero", HAS_MAX=max_spikes is not None, SAMPLING=sampling,
                NOISE=SURROGATE_CODES[noise] if sampling else 0, MASKING=masking,
                STORE_OWN=own is not spikes, BLOCK=block, PREFETCH=_PREFETCH, num_warps=warps)
        step = x.shape[1:]
        return spikes, membrane, None if own is spikes else own, counts, beta_f.view(step), thr_f.view(step)

    @staticmethod
    def setup_context(ctx, inputs, output):
        spikes, membrane, own, counts, beta_f, thr_f = output
        ctx.recompute = _recomputes_spikes(inputs[3].sampling())
        ctx.save_for_backward(membrane, None if ctx.recompute else spikes if own is None else own, counts, beta_f,
                              thr_f, graph_tie(spikes), inputs[1], inputs[2])
        ctx.opts = inputs[3]
        ctx.x_dtype = inputs[0].dtype
        ctx.mark_non_differentiable(*(t for t in output[1:] if t is not None))
        ctx.set_materialize_grads(False)  # no zeros for the outputs without a gradient (all but the spikes)

    @staticmethod
    def backward(ctx, grad_spikes, *_):
        saved = ctx.saved_tensors
        run = backward_runner(LIFTritonBackward, "LIF (backend='triton')", saved, (grad_spikes,))
        cfg = backward_cfg(ctx)
        cfg = cfg[:5] + (ctx.recompute,) + cfg[5:]
        grad_x, g_beta, g_thr = run(cfg, grad_spikes, *saved[:6])
        gb, gt = param_grads(g_beta, g_thr, saved[6], saved[7], saved[0].shape[1:])
        return None if grad_x is None else grad_x.to(ctx.x_dtype), gb, gt, None

    @staticmethod
    def vmap(info, in_dims, *args):
        check_vmap_randomness(info, "LIF (backend='triton')", args[3].draws())
        return vmap_folded(LIFTritonFunction, info, in_dims, args, (TIME, PARAM, PARAM, None),
                           (TIME,) * 4 + (STEP,) * 2)


class LIFTritonBackward(torch.autograd.Function):
    """The backward of :class:`LIFTritonFunction` as a Function (``torch.func`` runs it; differentiating it raises):
    ``(cfg, grad_spikes, membrane, spikes, counts, beta_f, thr_f, out) -> (grad_x, grad_beta, grad_threshold)``
    (``beta_f`` / ``thr_f``: the parameters expanded to a step), the parameter gradients per element of a step
    (None where not needed); ``out`` is not read, it ties the backward to the graph under ``torch.func``, None
    elsewhere (see :class:`snnlab.kernels.lif_torch.LIFBackward`)."""

    @staticmethod
    @fixed_signature
    def forward(cfg, grad_spikes, membrane, spikes, counts, beta_f, thr_f, out):
        reset, detach_reset, max_spikes, surrogate, surrogate_param, recompute, mask_p, m_key, need_beta, need_thr = cfg
        membrane = membrane.contiguous()
        spikes, counts = (t.contiguous() if t is not None else None for t in (spikes, counts))
        beta_f, thr_f = beta_f.contiguous().view(-1), thr_f.contiguous().view(-1)  # [M] float32
        T, M = steps_and_width(membrane)
        step_shape = membrane.shape[1:]
        grad_x = torch.empty_like(membrane)
        # per-element parameter gradients, written in full by the kernel when needed
        g_beta = torch.empty(M, dtype=torch.float32, device=membrane.device) if need_beta else None
        g_thr = torch.empty(M, dtype=torch.float32, device=membrane.device) if need_thr else None
        if T > 0 and M > 0:
            # an output gradient of one value (e.g. from sum()) is read once, not T*M times
            if grad_spikes is None:
                gs_mode, gs = 0, grad_x  # a dummy pointer
            elif expanded_from_one(grad_spikes):
                gs_mode, gs = 1, grad_spikes
            else:
                gs_mode, gs = 2, grad_spikes.contiguous()
            cnt = grad_x if counts is None else counts[1] if recompute else counts[0]
            block, warps = launch_config(M, _gpu_sms(membrane))
            _lif_bwd_kernel[(triton.cdiv(M, block),)](
                gs, membrane, membrane if spikes is None else spikes, beta_f, thr_f, cnt,
                grad_x, grad_x if g_beta is None else g_beta, grad_x if g_thr is None else g_thr, T, M,
                float(max_spikes) if max_spikes is not None else 0.0, surrogate_param, _signed32(m_key), mask_p,
                RESET_ZERO=reset == "zero", DETACH=detach_reset, HAS_MAX=max_spikes is not None,
                SURR=SURROGATE_CODES[surrogate], GS_MODE=gs_mode, RECOMPUTE_S=recompute,
                NEED_BETA=need_beta, NEED_THR=need_thr, MASKING=mask_p > 0.0, BLOCK=block,
                PREFETCH=_PREFETCH, num_warps=warps)
        else:
            grad_x.zero_()
            g_beta, g_thr = (g.zero_() if g is not None else None for g in (g_beta, g_thr))
        return grad_x, *(g.view(step_shape) if g is not None else None for g in (g_beta, g_thr))

    setup_context, backward = first_order_backward("LIF (backend='triton')")

    @staticmethod
    def vmap(info, in_dims, *args):
        if args[0][6] > 0.0 and in_dims[2] is None:  # masks, forward not vmapped here: drawn per slice
            return vmap_by_slices(LIFTritonBackward, info, in_dims, args)
        return vmap_folded(LIFTritonBackward, info, in_dims, args, (None,) + (TIME,) * 4 + (STEP, STEP, TIME),
                           (TIME, STEP, STEP))


def lif_triton(x: torch.Tensor, beta: torch.Tensor | float, threshold: torch.Tensor | float, *, reset: str = "subtract",
               detach_reset: bool = False, max_spikes: int | None = None, surrogate: str = "atan",
               surrogate_param: float | None = None, noise: str | None = None, noise_scale: float = 0.3,
               seed: int = 0, sample: bool = True, mask_p: float = 0.0, mask_seed: int = 0,
               keep_membrane: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused Triton multi-step LIF over ``x [T, B, ...]``; returns ``(spikes, pre-reset membrane)``.

    Drop-in for :func:`snnlab.kernels.lif_torch.lif_torch` (same arguments, checks, results and
    gradients; ``beta`` / ``threshold`` may be numbers; the whole membrane is always returned: in ``x``'s dtype, or
    with ``keep_membrane=False`` the float32 one the backward reads, for half-precision input). Needs a
    CUDA tensor, or ``TRITON_INTERPRET=1`` set before Triton is imported to run on CPU tensors
    through the (slow) interpreter.
    """
    refuse_forward_mode("LIF (backend='triton')", (x, beta, threshold))
    beta, threshold, max_spikes = lif_params("lif_triton", x, beta, threshold, max_spikes, torch.float32)
    surrogate_param = surrogate_param_or_default("lif_triton", surrogate, surrogate_param, noise)
    surrogate, surrogate_param = check_lif_options("lif_triton", reset, surrogate, surrogate_param, noise, noise_scale)
    opts = LIFOptions(reset, bool(detach_reset), max_spikes, surrogate, surrogate_param, noise,
                      float(noise_scale), int(seed), bool(sample), check_mask_p(mask_p), int(mask_seed))
    spikes, membrane, *_ = LIFTritonFunction.apply(x, beta, threshold, opts)
    return spikes, membrane.to(x.dtype) if keep_membrane else membrane  # (float32 for half input when not kept)
