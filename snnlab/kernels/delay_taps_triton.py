"""The "taps" algorithm of the fused :class:`~snnlab.core.delays.DelayedLinear` kernels: the dense tap tensor
``C [K, in, out]`` (``C[k, i, j] = W_ji G_ji[k]``, or ``W_ji [d_ji == k]`` after ``round_delays()``) is built
once per call in PyTorch (autograd carries its gradient to ``W`` and the positions), then the layer is
``K`` time-shifted matrix products on the tensor cores::

    y[r, j]     = sum_k sum_i x[r - k M, i] C[k, i, j]          (_shifted_taps_kernel, SIGN = -1)
    gx[r, i]    = sum_k sum_j gy[r + k M, j] C[k, i, j]         (_shifted_taps_kernel, SIGN = +1)
    gC[k, i, j] = sum_r x[r - k M, i] gy[r, j]                  (_tap_correlation_kernel)

with rows ``r`` of the ``[T * M, features]`` view (``M``: everything between time and features; a row
before or after the sequence is zero). Unlike the "mma" algorithm (kernel tiles built in registers for
every block of rows), every operand comes from memory, split beforehand in PyTorch and zero-padded to
whole tiles, and each loop iteration runs one ``tl.dot``: Triton's software pipeliner then keeps the next
tiles' loads and a tensor-core product in flight together (on sm_90: ``cp.async`` and a wgmma left
pending across iterations, checked by tests/triton_cuda_compile.py). The price is the ``K * in * out`` tap
tensor in memory (3.6 MB for the SHD layer, 140 -> 256 with 25 taps), its gradient, and the split copies
of the operands. Precisions as :func:`snnlab.kernels.delays_triton.kernel_options`, float32 accumulation:

* ``"bf16x3"`` (``x`` exact in bfloat16: spikes): the other operand (``C``, ``grad_y``) as three bfloat16
  parts (``hi + mid + lo``, 24 bits), three bfloat16 products;
* ``"tf32x3"``: both operands as two TF32 parts, three TF32 products (``A_lo B_hi + A_hi B_lo + A_hi B_hi``);
* ``"tf32"``, ``"ieee"``: one product, in TF32 or in float32 FMA.

Called through :func:`snnlab.kernels.delays_triton.delayed_linear_triton` with ``algorithm="taps"``
(or ``SNNLAB_TRITON_DELAY_ALGO=taps``).
"""
from __future__ import annotations

import torch

from .first_order import first_order_backward
from .delay_blocks_triton import (output_block, pow2_block, row_splits, stored_dtype, vmap_delay_backward,
                                  vmap_delay_forward)
from .delay_math import gaussian_delay_kernel
from .func_transforms import backward_runner, fixed_signature
from .triton_import import tl, triton

__all__ = ["dense_taps", "ShiftedTapsFunction", "ShiftedTapsBackward", "bf16_split", "tf32_split"]

_NAME = "DelayedLinear (backend='triton')"  # in the errors of the Functions' torch.func / autograd refusals


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _term_parts(term, PRECISION: tl.constexpr):
    """``(part of A, part of B)`` multiplied in product ``term`` of ``PRECISION``: ``"bf16x3"``: A exact, B's
    ``lo``, ``mid``, ``hi``; ``"tf32x3"``: ``A_lo B_hi``, ``A_hi B_lo``, ``A_hi B_hi``; else one product."""
    if PRECISION == "bf16x3":
        return 0, 2 - term
    elif PRECISION == "tf32x3":
        return 1 - tl.minimum(term, 1), term % 2
    else:
        return 0, 0


@triton.jit
def _term_dot(a, b, acc, PRECISION: tl.constexpr, BF16_DOT: tl.constexpr):
    """``acc + a @ b`` for one product of ``PRECISION`` (bfloat16 operands when ``"bf16x3"``, else float32 ones
    whose TF32 products are exact for the split's parts; ``BF16_DOT=False`` for the interpreter, whose
    bfloat16 ``tl.dot`` is broken: the same bfloat16 values multiplied in float32)."""
    if PRECISION == "bf16x3":
        if BF16_DOT:
            acc = tl.dot(a, b, acc)
        else:
            acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    elif PRECISION == "ieee":
        acc = tl.dot(a, b, acc, input_precision="ieee")
    else:
        acc = tl.dot(a, b, acc, input_precision="tf32")
    return acc


@triton.jit(do_not_specialize=["R", "M", "K", "NA", "n_b"])
def _shifted_taps_kernel(src_ptr, c_ptr, out_ptr, R, M, K, NA, n_b, stride_sp, stride_sr,
                         stride_cp, stride_ck, stride_cb, stride_ca,
                         SIGN: tl.constexpr, PRECISION: tl.constexpr, TERMS: tl.constexpr, BF16_DOT: tl.constexpr,
                         BR: tl.constexpr, BB: tl.constexpr, BA: tl.constexpr):
    """``out[r, a] = sum_k src[r + SIGN k M, :] @ C_k[:, a]`` (``a < NA``): part ``q`` of ``src`` at ``q *
    stride_sp + r * stride_sr + b``, of ``C_k[b, a]`` at ``q * stride_cp + k * stride_ck + b * stride_cb + a *
    stride_ca``, both zero-padded to whole tiles (``n_b`` blocks of ``b``; ``a`` to a multiple of ``BA``), so
    that only rows are masked and the loads stay vectorised. One program per (block of rows, block of
    ``a``); one loop over (tap, block of ``b``, product of the split), one ``tl.dot`` each, that stops at the
    last tap reaching inside the sequence for some row of the block."""
    rows64, offs_a, rmask, amask, k_reach = output_block(R, NA, M, SIGN, BR, BA)
    Mi = M.to(tl.int64)
    acc = tl.zeros([BR, BA], dtype=tl.float32)
    for step in range(0, tl.minimum(K, k_reach) * n_b * TERMS):
        term = step % TERMS
        kb = step // TERMS
        k = kb // n_b
        offs_b = (kb - k * n_b) * BB + tl.arange(0, BB)
        a_part, b_part = _term_parts(term, PRECISION)
        src = rows64 + SIGN * (k * Mi)
        valid = rmask & (src >= 0) & (src < R)
        a = tl.load(src_ptr + a_part * stride_sp + src[:, None] * stride_sr + offs_b[None, :], mask=valid[:, None],
                    other=0.0)
        b = tl.load(c_ptr + b_part * stride_cp + k * stride_ck + offs_b[:, None] * stride_cb
                    + offs_a[None, :] * stride_ca)
        acc = _term_dot(a, b, acc, PRECISION, BF16_DOT)
    out_off = rows64[:, None] * NA + offs_a[None, :]
    tl.store(out_ptr + out_off, acc.to(out_ptr.dtype.element_ty), mask=rmask[:, None] & amask[None, :])


@triton.jit(do_not_specialize=["R", "M", "K", "I", "J", "rows_per_split"])
def _tap_correlation_kernel(x_ptr, g_ptr, out_ptr, R, M, K, I, J, rows_per_split, stride_xp, stride_xr,
                            stride_gp, stride_gr,
                            SPLITS: tl.constexpr, PRECISION: tl.constexpr, TERMS: tl.constexpr,
                            BF16_DOT: tl.constexpr, BR: tl.constexpr, BI: tl.constexpr, BJ: tl.constexpr):
    """``out[s, k, i, j] = sum_r x[r - k M, i] gy[r, j]`` (``i < I``, ``j < J``) over split ``s`` of the rows
    (``r >= k M``); part ``q`` of ``x`` at ``q * stride_xp + r * stride_xr + i``, of ``gy`` likewise, both
    zero-padded to whole tiles of features (only rows are masked). One program per (block of ``i``, block
    of ``j``, tap and split), one loop over (block of rows, product of the split), one ``tl.dot`` each."""
    pid_i = tl.program_id(0)
    pid_j = tl.program_id(1)
    k = tl.program_id(2) // SPLITS
    s = tl.program_id(2) % SPLITS
    offs_i = pid_i * BI + tl.arange(0, BI)
    offs_j = pid_j * BJ + tl.arange(0, BJ)
    imask = offs_i < I
    jmask = offs_j < J
    shift = k.to(tl.int64) * M
    row_lo = tl.maximum(s * rows_per_split, k * M)
    row_hi = tl.minimum((s + 1) * rows_per_split, R)
    acc = tl.zeros([BI, BJ], dtype=tl.float32)
    for step in range(0, tl.cdiv(tl.maximum(row_hi - row_lo, 0), BR) * TERMS):
        term = step % TERMS
        rows = (row_lo + (step // TERMS) * BR + tl.arange(0, BR)).to(tl.int64)
        rmask = rows < row_hi
        a_part, b_part = _term_parts(term, PRECISION)
        xt = tl.load(x_ptr + a_part * stride_xp + offs_i[:, None] + (rows - shift)[None, :] * stride_xr,
                     mask=rmask[None, :], other=0.0)
        g = tl.load(g_ptr + b_part * stride_gp + rows[:, None] * stride_gr + offs_j[None, :], mask=rmask[:, None],
                    other=0.0)
        acc = _term_dot(xt, g, acc, PRECISION, BF16_DOT)
    out_off = ((s * K + k).to(tl.int64) * I + offs_i[:, None]) * J + offs_j[None, :]
    tl.store(out_ptr + out_off, acc, mask=imask[:, None] & jmask[None, :])


# kernels decorated while TRITON_INTERPRET=1 run on CPU tensors through Triton's interpreter
_INTERPRETED = type(_shifted_taps_kernel).__name__ == "InterpretedFunction"


# ----------------------------------------------------------------------------- PyTorch side


def dense_taps(weight: torch.Tensor, positions_or_delays: torch.Tensor, sigma: float, max_delay: int,
               rounded: bool, n_taps: int) -> torch.Tensor:
    """The tap tensor ``C [n_taps, in, out]`` (float32, differentiable in ``weight`` and the positions) of
    the first ``n_taps`` of ``max_delay`` taps: ``C[k, i, j] = W_ji G_ji[k]`` with the normalised Gaussian
    ``G_ji[k]`` of width ``sigma`` around the position ``p_ji`` clamped to ``[0, max_delay - 1]``, or
    ``W_ji [d_ji == k]``. Contiguous, the layout the kernels read.

    Example:
        >>> w, p = torch.ones(2, 3), torch.full((2, 3), 1.0)
        >>> c = dense_taps(w, p, sigma=0.5, max_delay=4, rounded=False, n_taps=4)
        >>> tuple(c.shape), round(float(c[1].sum()), 4), round(float(c.sum()), 4)
        ((4, 3, 2), 4.7207, 6.0)
    """
    w = weight.to(torch.float32).t()  # [in, out]
    taps = torch.arange(n_taps, device=weight.device)
    if rounded:  # [in, out] operands made contiguous, so the [K, in, out] result is (no copy of it later)
        d = positions_or_delays.t().contiguous()
        return torch.where(d.unsqueeze(0) == taps[:, None, None], w.contiguous(), 0.0)
    # [n_taps, in, out], normalised over all max_delay taps without building the others (T < max_delay)
    g = gaussian_delay_kernel(positions_or_delays.to(torch.float32).t(), sigma, max_delay, tap_dim=0,
                              n_taps=max(n_taps, 1))[:n_taps]  # (T = 0: no tap)
    return g * w  # contiguous, as g


def bf16_split(t: torch.Tensor) -> torch.Tensor:
    """``[3, *t.shape]`` bfloat16: ``hi, mid, lo`` with ``hi + mid + lo == t`` to about 2^-24 relative.

    Example:
        >>> parts = bf16_split(torch.tensor([1 / 3]))
        >>> bool(abs(parts.double().sum(0) - 1 / 3) < 1e-7)
        True
    """
    t = t.to(torch.float32)
    hi = t.to(torch.bfloat16)
    rest = t - hi.to(torch.float32)
    mid = rest.to(torch.bfloat16)
    return torch.stack((hi, mid, (rest - mid.to(torch.float32)).to(torch.bfloat16)))


def _round_to_tf32(t: torch.Tensor) -> torch.Tensor:
    """float32 ``t`` rounded to the nearest TF32 number (10 mantissa bits; ties away from zero)."""
    bits = t.view(torch.int32)
    rounded = ((bits + 0x1000) & -0x2000).view(torch.float32)
    return torch.where(torch.isfinite(rounded) | ~torch.isfinite(t), rounded, (bits & -0x2000).view(torch.float32))


def tf32_split(t: torch.Tensor) -> torch.Tensor:
    """``[2, *t.shape]`` float32: ``hi, lo``, both TF32 numbers, ``hi + lo == t`` to about 2^-22 relative (so
    ``A_hi B_hi + A_hi B_lo + A_lo B_hi`` in TF32 products is a float32-accurate ``A B``).

    Example:
        >>> parts = tf32_split(torch.tensor([1 / 3]))
        >>> bool(abs(parts.double().sum(0) - 1 / 3) < 1e-7), bool(parts[0] != 1 / 3)
        (True, True)
    """
    t = t.to(torch.float32).contiguous()
    hi = _round_to_tf32(t)
    return torch.stack((hi, _round_to_tf32(t - hi)))


# the parts of (the operand that may be exact, the other one) and the products of each precision
_SPLITS = {"bf16x3": (lambda t: t.to(torch.bfloat16).unsqueeze(0), bf16_split, 3),
           "tf32x3": (tf32_split, tf32_split, 3),
           "tf32": (lambda t: t.to(torch.float32).unsqueeze(0),) * 2 + (1,),
           "ieee": (lambda t: t.to(torch.float32).unsqueeze(0),) * 2 + (1,)}


def _pad(t: torch.Tensor, multiples: tuple[int, ...]) -> torch.Tensor:
    """``t`` contiguous, its last ``len(multiples)`` dimensions zero-padded up to those multiples."""
    pad: list[int] = []
    for size, m in zip(reversed(t.shape), reversed(multiples)):
        pad += [0, -size % m]
    return torch.nn.functional.pad(t, pad).contiguous() if any(pad) else t.contiguous()


def _reduction_block(n: int, largest: int) -> int:
    """The block of the reduction over ``n`` features: ``largest`` (64 bytes or more of a row per load)
    unless 32 pads ``n`` less (140 inputs: 160 with 32, 192 with 64), at least 16."""
    block = pow2_block(n, 16, largest)
    return 32 if block > 32 and -n % 32 < -n % block else block


def _shifted_taps(src: torch.Tensor, c: torch.Tensor, M: int, transpose: bool, precision: str,
                  out_dtype: torch.dtype) -> torch.Tensor:
    """Forward (``transpose=False``): ``y [R, out]`` from ``src = x [R, in]``; ``grad_x [R, in]`` from
    ``src = grad_y [R, out]`` (``transpose=True``). ``precision="bf16x3"`` needs ``src`` exact in bfloat16."""
    R, NB = src.shape
    K, I, J = c.shape
    NA = I if transpose else J
    out = torch.empty(R, NA, device=src.device, dtype=stored_dtype(out_dtype))
    if R == 0 or NA == 0 or NB == 0 or K == 0:
        return out.zero_().to(out_dtype)
    split_src, split_c, terms = _SPLITS[precision]
    BR, BB = pow2_block(R, 16, 128), _reduction_block(NB, 64 if precision == "bf16x3" else 32)
    BA = 128 if NA % 128 == 0 else pow2_block(NA, 16, 64)
    src_parts = _pad(split_src(src), (BB,))
    if transpose:  # C_k[b = j, a = i]
        c_parts = _pad(split_c(c), (BA, BB))
        strides = (c_parts.stride(0), c_parts.stride(1), 1, c_parts.stride(2))
    else:  # C_k[b = i, a = j]
        c_parts = _pad(split_c(c), (BB, BA))
        strides = c_parts.stride()
    grid = (triton.cdiv(R, BR), triton.cdiv(NA, BA))
    _shifted_taps_kernel[grid](src_parts, c_parts, out, R, M, K, NA, src_parts.shape[2] // BB,
                               src_parts.stride(0), src_parts.stride(1), *strides, SIGN=1 if transpose else -1,
                               PRECISION=precision, TERMS=terms, BF16_DOT=not _INTERPRETED, BR=BR, BB=BB, BA=BA,
                               num_warps=8 if BR * BA >= 128 * 128 else 4)
    return out.to(out_dtype)


def _correlation_splits(R: int, n_programs: int, BR: int) -> int:
    """Splits of the rows for the tap correlation: two programs a multiprocessor of an H100/H200."""
    return row_splits(R, n_programs, BR, programs=264, blocks_per_split=8)


def _tap_correlation(x2: torch.Tensor, gy2: torch.Tensor, K: int, M: int, precision: str) -> torch.Tensor:
    """``gC [K, in, out]`` float32: ``gC[k, i, j] = sum_r x[r - k M, i] gy[r, j]``. ``precision="bf16x3"``
    needs ``x`` exact in bfloat16."""
    R, I = x2.shape
    J = gy2.shape[1]
    if R == 0 or I == 0 or J == 0 or K == 0:
        return torch.zeros(K, I, J, device=x2.device, dtype=torch.float32)
    split_x, split_gy, terms = _SPLITS[precision]
    BR, BI, BJ = pow2_block(R, 16, 32), pow2_block(I, 16, 64), pow2_block(J, 16, 128)
    x_parts, gy_parts = _pad(split_x(x2), (BI,)), _pad(split_gy(gy2), (BJ,))
    tiles = triton.cdiv(I, BI) * triton.cdiv(J, BJ) * K
    splits = _correlation_splits(R, tiles, BR)
    rows_per_split = triton.cdiv(triton.cdiv(R, splits), BR) * BR
    splits = triton.cdiv(R, rows_per_split)
    out = torch.empty(splits, K, I, J, device=x2.device, dtype=torch.float32)
    grid = (triton.cdiv(I, BI), triton.cdiv(J, BJ), K * splits)
    _tap_correlation_kernel[grid](x_parts, gy_parts, out, R, M, K, I, J, rows_per_split, x_parts.stride(0),
                                  x_parts.stride(1), gy_parts.stride(0), gy_parts.stride(1), SPLITS=splits,
                                  PRECISION=precision, TERMS=terms, BF16_DOT=not _INTERPRETED, BR=BR, BI=BI, BJ=BJ,
                                  num_warps=4)
    return out.sum(0) if splits > 1 else out[0]


class ShiftedTapsFunction(torch.autograd.Function):
    """``(x [T, M, in], C [K, in, out] float32, precision) -> y [T, M, out]`` in ``x``'s dtype,
    ``y[t] = sum_k x[t - k] @ C[k]``; gradients for ``x`` and ``C``. ``precision``: as the "mma" algorithm's,
    ``"bf16x3"`` only where ``x`` is exact in bfloat16 (``grad_x`` then takes TF32 x3). The backward is
    :class:`ShiftedTapsBackward`; ``forward`` + ``setup_context`` with a ``vmap`` rule, for ``torch.func``.

    Example (under ``TRITON_INTERPRET=1`` on CPU tensors, or on CUDA ones):
        >>> x, c = torch.ones(3, 1, 2), torch.ones(2, 2, 1)  # doctest: +SKIP
        >>> ShiftedTapsFunction.apply(x, c, "ieee").flatten().tolist()  # doctest: +SKIP
        [2.0, 4.0, 4.0]
    """

    @staticmethod
    @fixed_signature
    def forward(x, c, precision):
        T, M, I = x.shape
        c = c.contiguous()
        y = _shifted_taps(x.reshape(T * M, I).contiguous(), c, M, False, precision, x.dtype)
        return y.view(T, M, c.shape[2])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, c, precision = inputs
        ctx.save_for_backward(x, c)
        ctx.precision = precision

    @staticmethod
    def backward(ctx, gy):
        saved = ctx.saved_tensors
        run = backward_runner(ShiftedTapsBackward, _NAME, saved, (gy,))
        gx, gc = run((ctx.precision, ctx.needs_input_grad[0], ctx.needs_input_grad[1]), gy, *saved)
        return gx, gc, None

    @staticmethod
    def vmap(info, in_dims, *args):
        return vmap_delay_forward(ShiftedTapsFunction, info, in_dims, args)


class ShiftedTapsBackward(torch.autograd.Function):
    """The backward of :class:`ShiftedTapsFunction` as a Function (``torch.func`` runs it; differentiating it
    raises): ``((precision, need_x, need_c), grad_y [T, M, out], x [T, M, in], C) -> (grad_x, grad_C float32)``,
    None where not asked for; ``x`` is read for ``grad_C`` only (it ties the backward to the graph otherwise)."""

    @staticmethod
    @fixed_signature
    def forward(cfg, gy, x, c):
        precision, need_x, need_c = cfg
        T, M, J = gy.shape
        gy2 = gy.contiguous().view(T * M, J)
        c = c.contiguous()
        gx = gc = None
        if need_x:
            gx_precision = "tf32x3" if precision == "bf16x3" else precision  # grad_y is not exact in bfloat16
            gx = _shifted_taps(gy2, c, M, True, gx_precision, x.dtype).view(T, M, c.shape[1])
        if need_c:
            gc = _tap_correlation(x.reshape(T * M, c.shape[1]).contiguous(), gy2, c.shape[0], M, precision)
        return gx, gc

    setup_context, backward = first_order_backward(_NAME)

    @staticmethod
    def vmap(info, in_dims, *args):
        return vmap_delay_backward(ShiftedTapsBackward, info, in_dims, args, args[0][2])
