"""Fused Triton kernels for :class:`snnlab.core.delays.DelayedLinear` (learnable synaptic delays).

Same functions and gradients as the PyTorch paths in :mod:`snnlab.core.delays`, in one kernel launch
per pass (forward, ``grad_x``, parameter gradients; the row splits of the last are summed after it);
the default algorithms never write the dense ``[out, in, max_delay]`` kernel to global memory (its tiles
are built on chip):

* rounded path (integer delays ``d``, a LongTensor ``[out, in]``)::

      y[t, b, j] = sum_i W_ij * x[t - d_ij, b, i]                  (x[t < 0] = 0)

  (``W_ij [d_ij == k]`` as tap ``k``'s kernel);
* training path (real positions ``p``, Gaussian interpolation of width ``sigma``)::

      G_ij[k] = exp(-(k - p_ij)^2 / (2 sigma^2)) / sum_k' exp(-(k' - p_ij)^2 / (2 sigma^2))
      y[t, b, j] = sum_i W_ij * sum_k G_ij[k] * x[t - k, b, i]

  with ``p`` clamped to ``[0, max_delay - 1]`` (zero gradient outside, like
  :func:`~snnlab.kernels.delay_math.gaussian_delay_kernel`). The kernel weights are computed on the
  fly in registers, per synapse, over a window of ``min(max_delay, 2 * ceil(6 sigma) + 1)``
  taps centred on the nearest tap ``round(p)`` (shifted to stay inside ``0..max_delay-1``);
  the taps left out have relative weight ``< exp(-18) ~ 1.5e-8``, below float32 resolution,
  so the result equals the full-kernel form to float32 precision (exactly the full kernel
  whenever the window covers all ``max_delay`` taps, e.g. early in training when sigma is
  large). Each exponent is taken relative to the nearest tap's, as ``(k - r)(k + r - 2 p)`` with
  ``r = round(p)`` (:func:`~snnlab.kernels.delay_math.relative_exponent`: float32-accurate for small sigma,
  finite for tiny ones), and the positions' gradient is taken about the nearest tap (not about ``p``: a
  one-hot kernel's gradient would then be the difference of two terms of size ``|r - p| / sigma^2``).

Layout: ``x [T, B, ..., in]`` is viewed as ``[R = T * M, in]`` rows (``M`` = everything
between time and features); time step ``t - k`` of row ``r`` is row ``r - k * M``, valid iff
it is ``>= 0``. Three algorithms (:func:`kernel_options`), the same functions:

``"mma"`` (the default): a time shift by ``k`` steps is a shift by ``k * M`` rows, so tap ``k`` of
all synapses is one matrix product of contiguous row blocks with the tap's kernel slice
``C[:, :, k]`` (``W G[k]``, or ``W [d == k]``), which is built tile by tile on chip and fed to
``tl.dot`` (the tensor cores: wgmma on Hopper). Each tile runs only the taps some synapse of
the tile uses that reach inside the sequence. Products at float32 accuracy by default (``"auto"``):
where ``x`` is exact in bfloat16 (spikes, small integers, bfloat16 inputs) the forward and parameter
gradient products split their other operand (the kernel tile, ``grad_y``) into three bfloat16 parts
(``hi + mid + lo``, 24 bits) and run three bfloat16 products (tensor cores at twice the TF32 rate), else
three TF32 products (``"tf32x3"``, also asked for by name); or once in TF32 (``"tf32"``) or in float32
FMA (``"ieee"``); accumulation in float32.

* ``_delay_mma_apply_kernel``: ``out[r, a] = sum_k src[r + SIGN k M, :] @ C_k[:, a]``, one program
  per (block of rows, block of ``a``); forward and ``grad_x`` as below.
* ``_delay_mma_grad_kernel``: per ``[in, out]`` tile and split of rows, ``A[k] = x[r - k M]^T @ gy[r]``
  for the tile's taps, folded into ``grad_W`` and ``grad_p`` as below as each tap ends.

``"gather"``: each synapse's window taps gathered on the CUDA cores (only the window's taps, no
tensor cores), float32:

* ``_delay_apply_kernel``: ``out[r, a] = sum_b sum_k C_ab[k] * src[r + SIGN * k * M, b]``;
  one program per (block of rows, block of ``a``), looping over ``b`` in blocks with 3-D
  ``[rows, b, a]`` gathers, float32 accumulation. Forward: ``src = x``, ``a = j``, ``b = i``,
  ``SIGN = -1``. ``grad_x``: ``src = grad_y``, ``a = i``, ``b = j``, ``SIGN = +1`` (the
  "advance" form ``grad_x[t, i] = sum_j sum_k C_ij[k] gy[t + k, j]``: a gather, no atomics).
* ``_delay_grad_kernel``: per ``[in, out]`` tile (optionally split over rows, partial sums
  reduced in PyTorch, deterministic) ``A_ij[k] = sum_r gy[r, j] * x[r - k M, i]`` over the
  window taps, giving ``grad_W_ij = sum_k G_ij[k] A_ij[k]`` and
  ``grad_p_ij = W_ij * sum_k G_ij[k] (u_k - ubar) A_ij[k]`` with ``u_k = (k - r) / sigma^2`` (any shift of
  ``u`` gives the same exact value; about the nearest tap ``r``, float32 keeps it accurate)
  and ``ubar = sum_k G_ij[k] u_k`` (derivative of the normalised Gaussian), summed as
  ``sum_k G_ij[k] (u_k - ubar) (A_ij[k] - A_ij[k0])`` with ``k0`` a tap of the loop (the window's first; the
  "mma" tile's first): centred in both factors, as the PyTorch path's, so an offset common to every tap's
  ``A`` (a constant added to ``grad_y``) cancels exactly instead of costing float32 digits (the uncentred
  ``sum G u A - ubar sum G A`` lost about ``offset / |A - Abar|`` units).

``"taps"``: the dense tap tensor written once per call (PyTorch; its gradient reaches ``W`` and ``p``
through autograd), then pipelined time-shifted products on the tensor cores, see
:mod:`snnlab.kernels.delay_taps_triton`. Faster where building tiles on chip bounds the "mma" kernels,
at the memory of ``max_delay * in * out`` floats (and its gradient).

Inputs may be float32, float16 or bfloat16 (all of ``x``, ``W``, ``p`` the same floating
dtype family; computation is float32 -- products in TF32 with ``precision="tf32"``, see
:func:`kernel_options` -- outputs in ``x``'s dtype, gradients in each input's dtype; under ``torch.autocast``
``x`` and ``W`` are cast to its dtype first, as on the PyTorch paths). With 16-bit
inputs the "mma" kernels' loads are not software-pipelined (Triton pipelines the float32 ones).
Needs CUDA tensors, or ``TRITON_INTERPRET=1`` set before Triton is imported to run on CPU tensors
through Triton's (slow) interpreter, for testing.

``torch.func``: ``grad``, ``vjp``, ``jacrev`` and ``vmap`` run the Functions (``forward`` + ``setup_context``,
their backward a Function of its own, :mod:`snnlab.kernels.func_transforms`); under ``vmap`` a batch of inputs
is folded into the rows of one call, stacked weights run one call per slice
(:func:`~snnlab.kernels.delay_blocks_triton.vmap_delay_forward`). Forward mode (``jvp``, ``jacfwd``) and
second-order gradients are refused (:mod:`snnlab.kernels.first_order`).

Importing this module without Triton installed raises :class:`ImportError`.
"""
from __future__ import annotations

import functools
import math
import os

import torch

from .dispatch import TRITON_DTYPES, is_ampere_or_newer
from .first_order import first_order_backward, refuse_forward_mode, transform_free
from .delay_blocks_triton import (MAX_ROWS, output_block, pow2_block, row_splits, stored_dtype,
                                  vmap_delay_backward, vmap_delay_forward)
from .delay_math import ASK, autocast_operands
from .delay_taps_triton import ShiftedTapsFunction, dense_taps
from .func_transforms import backward_runner, fixed_signature
from .lif_triton import _check_device as check_triton_device  # the Triton kernels' shared device check
from .triton_import import tl, triton

__all__ = ["delayed_linear_triton", "DelayedLinearTritonFunction", "DelayedLinearRoundedTritonFunction",
           "DelayedLinearTritonBackward", "gaussian_window"]

_NAME = "DelayedLinear (backend='triton')"  # in the errors of the Functions' torch.func / autograd refusals

_SUPPORTED_DTYPES = TRITON_DTYPES
#: half-width of the tap window in units of sigma (taps further than this from ``p`` are dropped)
WINDOW_SIGMAS = 6.0
#: the fused kernels' algorithms and the precisions of the tensor-core one (first: the default), see
#: :func:`kernel_options`
ALGORITHMS = ("mma", "gather", "taps")
PRECISIONS = ("auto", "tf32x3", "tf32", "ieee")
# the kernels index rows of the [T * M, features] view in int32 (the element offsets are int64)
_MAX_ROWS = MAX_ROWS


# ----------------------------------------------------------------------------- kernels


@triton.jit
def _window_start(kr, RAD, KMAX0):
    """First tap of the window around nearest taps ``kr``: ``clamp(kr - RAD, 0, max_delay - NW)``."""
    return tl.minimum(tl.maximum(kr - RAD, 0.0), KMAX0)


@triton.jit
def _nearest_tap(p):
    """The tap nearest to positions ``p >= 0``, exactly (:func:`~snnlab.kernels.delay_math.nearest_tap`; not
    ``floor(p + 0.5)``, 1 for the float32 just below 0.5, whose tap 0 then weighs ``exp(+huge) = inf`` relative to
    tap 1 when sigma is tiny: NaN outputs)."""
    f = tl.floor(p)
    return tl.where(p - f >= 0.5, f + 1.0, f)


@triton.jit
def _relative_weight(k, kr, p, inv_2s2):
    """Unnormalised Gaussian weight of tap ``k`` at positions ``p``, relative to the nearest tap ``kr = round(p)``
    (which weighs exp(0)): ``exp(-((k - p)^2 - (kr - p)^2) / (2 sigma^2))`` with the exponent as
    ``(k - kr)(k + kr - 2 p)`` (exact integers and ``2 p``: one subtraction and one product rounded; squaring
    first would lose float32 digits for small sigma), as :func:`~snnlab.kernels.delay_math.relative_exponent`;
    never above 1 (``kr`` from :func:`_nearest_tap`), so no ``exp`` overflows."""
    return tl.exp(-(k - kr) * ((k + kr) - 2.0 * p) * inv_2s2)


@triton.jit
def _gauss_window(p, RAD, KMAX0, NW, inv_2s2):
    """The Gaussian tap window around positions ``p``: ``(k0, kr, z)``.

    ``k0 = clamp(round(p) - RAD, 0, max_delay - NW)`` is the first tap (a float), ``kr = round(p)`` the nearest
    tap (every weight relative to its: :func:`_relative_weight`), and ``z`` the sum of the ``NW`` unnormalised
    tap weights (``z >= 1``).
    """
    kr = _nearest_tap(p)
    k0 = _window_start(kr, RAD, KMAX0)
    z = tl.zeros_like(p)
    for wi in range(NW):
        z += _relative_weight(k0 + wi, kr, p, inv_2s2)
    return k0, kr, z


@triton.jit
def _window_moments(p, RAD, KMAX0, NW, inv_2s2):
    """``(k0, kr, z, m)`` of the window around positions ``p``: the first tap, the nearest tap, ``z = sum_k e_k``
    (``e_k``: :func:`_relative_weight`, ``z >= 1``) and ``m = sum_k e_k (k - kr) / z``, the kernel's mean tap
    offset from the nearest one (the ``ubar`` of the positions' gradient, in taps), in one pass over the window."""
    kr = _nearest_tap(p)
    k0 = _window_start(kr, RAD, KMAX0)
    z = tl.zeros_like(p)
    s = tl.zeros_like(p)
    for wi in range(NW):
        e = _relative_weight(k0 + wi, kr, p, inv_2s2)
        z += e
        s += e * ((k0 + wi) - kr)
    return k0, kr, z, s / z


@triton.jit(do_not_specialize=["R", "M", "NB", "NA", "NW"])
def _delay_apply_kernel(src_ptr, w_ptr, p_ptr, out_ptr, R, M, NB, NA, stride_wb, stride_wa,
                        RAD, KMAX0, NW, inv_2s2,
                        SIGN: tl.constexpr, GAUSS: tl.constexpr,
                        BR: tl.constexpr, BB: tl.constexpr, BA: tl.constexpr):
    pid_r = tl.program_id(0)
    pid_a = tl.program_id(1)
    rows = pid_r * BR + tl.arange(0, BR)
    offs_a = pid_a * BA + tl.arange(0, BA)
    rmask = rows < R
    amask = offs_a < NA
    r3 = rows.to(tl.int64)[:, None, None]
    rmask3 = rmask[:, None, None]
    Mi = M.to(tl.int64)
    acc = tl.zeros([BR, BA], dtype=tl.float32)
    for b0 in range(0, NB, BB):
        offs_b = b0 + tl.arange(0, BB)
        pmask = (offs_b < NB)[:, None] & amask[None, :]
        poff = offs_b[:, None] * stride_wb + offs_a[None, :] * stride_wa
        w = tl.load(w_ptr + poff, mask=pmask, other=0.0).to(tl.float32)
        b3 = offs_b.to(tl.int64)[None, :, None]
        m3 = rmask3 & pmask[None, :, :]
        if GAUSS:
            p = tl.load(p_ptr + poff, mask=pmask, other=0.0).to(tl.float32)
            k0, kr, z = _gauss_window(p, RAD, KMAX0, NW, inv_2s2)
            scale = w / z  # z >= 1 (the nearest tap contributes exp(0))
            for wi in range(NW):
                k = k0 + wi
                c = _relative_weight(k, kr, p, inv_2s2) * scale
                src = r3 + SIGN * (k.to(tl.int64)[None, :, :] * Mi)
                valid = m3 & (src >= 0) & (src < R)
                v = tl.load(src_ptr + src * NB + b3, mask=valid, other=0.0).to(tl.float32)
                acc += tl.sum(v * c[None, :, :], axis=1)
        else:
            d = tl.load(p_ptr + poff, mask=pmask, other=0).to(tl.int64)
            src = r3 + SIGN * (d[None, :, :] * Mi)
            valid = m3 & (src >= 0) & (src < R)
            v = tl.load(src_ptr + src * NB + b3, mask=valid, other=0.0).to(tl.float32)
            acc += tl.sum(v * w[None, :, :], axis=1)
    out_off = rows.to(tl.int64)[:, None] * NA + offs_a[None, :]
    tl.store(out_ptr + out_off, acc.to(out_ptr.dtype.element_ty), mask=rmask[:, None] & amask[None, :])


@triton.jit
def _shifted_x_dot_gy(x_ptr, gy_ptr, shift, row_lo, row_hi, offs_j, jmask, pmask, i3, I, J,
                      BR: tl.constexpr, BI: tl.constexpr, BJ: tl.constexpr):
    """``a[i, j] = sum_r x[r - shift[i, j], i] * gy[r, j]`` over rows ``[row_lo, row_hi)`` (0 before the start)."""
    a = tl.zeros([BI, BJ], dtype=tl.float32)
    for r0 in range(row_lo, row_hi, BR):
        rows = r0 + tl.arange(0, BR)
        rmask = rows < row_hi
        rows64 = rows.to(tl.int64)
        gy = tl.load(gy_ptr + rows64[:, None] * J + offs_j[None, :],
                     mask=rmask[:, None] & jmask[None, :], other=0.0).to(tl.float32)
        src = rows64[:, None, None] - shift
        valid = rmask[:, None, None] & pmask[None, :, :] & (src >= 0)
        xv = tl.load(x_ptr + src * I + i3, mask=valid, other=0.0).to(tl.float32)
        a += tl.sum(xv * gy[:, None, :], axis=0)
    return a


@triton.jit(do_not_specialize=["R", "M", "I", "J", "rows_per_split", "NW"])
def _delay_grad_kernel(x_ptr, gy_ptr, w_ptr, p_ptr, gw_ptr, gp_ptr, R, M, I, J, rows_per_split,
                       RAD, KMAX0, NW, inv_2s2, inv_s2,
                       GAUSS: tl.constexpr, NEED_W: tl.constexpr, NEED_P: tl.constexpr,
                       BR: tl.constexpr, BI: tl.constexpr, BJ: tl.constexpr):
    pid_i = tl.program_id(0)
    pid_j = tl.program_id(1)
    pid_s = tl.program_id(2)
    offs_i = pid_i * BI + tl.arange(0, BI)
    offs_j = pid_j * BJ + tl.arange(0, BJ)
    jmask = offs_j < J
    pmask = (offs_i < I)[:, None] & jmask[None, :]
    poff = offs_j[None, :] * I + offs_i[:, None]  # W / p are [out = J, in = I]
    i3 = offs_i.to(tl.int64)[None, :, None]
    Mi = M.to(tl.int64)
    row_lo = pid_s * rows_per_split
    row_hi = tl.minimum(row_lo + rows_per_split, R)
    out_off = pid_s.to(tl.int64) * I * J + poff
    if GAUSS:
        w = tl.load(w_ptr + poff, mask=pmask, other=0.0).to(tl.float32)
        p = tl.load(p_ptr + poff, mask=pmask, other=0.0).to(tl.float32)
        k0, kr, z, m = _window_moments(p, RAD, KMAX0, NW, inv_2s2)
        inv_z = 1.0 / z
        gw = tl.zeros([BI, BJ], dtype=tl.float32)
        cov = tl.zeros([BI, BJ], dtype=tl.float32)  # sum_k G[k] ((k - kr) - m) (A[k] - A[k0]): centred, see the docstring
        a0 = tl.zeros([BI, BJ], dtype=tl.float32)
        for wi in range(NW):
            k = k0 + wi
            g = _relative_weight(k, kr, p, inv_2s2) * inv_z
            a = _shifted_x_dot_gy(x_ptr, gy_ptr, k.to(tl.int64)[None, :, :] * Mi, row_lo, row_hi, offs_j, jmask,
                                  pmask, i3, I, J, BR, BI, BJ)
            gw += g * a
            if NEED_P:
                a0 = tl.where(wi == 0, a, a0)
                cov += g * ((k - kr) - m) * (a - a0)
        if NEED_W:
            tl.store(gw_ptr + out_off, gw, mask=pmask)
        if NEED_P:
            tl.store(gp_ptr + out_off, w * inv_s2 * cov, mask=pmask)
    else:
        d = tl.load(p_ptr + poff, mask=pmask, other=0).to(tl.int64)
        a = _shifted_x_dot_gy(x_ptr, gy_ptr, d[None, :, :] * Mi, row_lo, row_hi, offs_j, jmask, pmask, i3, I, J,
                              BR, BI, BJ)
        tl.store(gw_ptr + out_off, a, mask=pmask)


# --- tensor-core path ("mma"): the taps as shifted matrix products --------------------------------
#
# A time shift by k steps is a shift by k * M rows of the [R, features] view, so for one tap k the
# contribution of all synapses is a plain matrix product of contiguous row blocks with the tap's kernel
# slice H[:, :, k] = W * G[k] (W * [d == k] when rounded), which is built tile by tile on chip (never
# in global memory) and fed to tl.dot. Each tile runs only the taps that some synapse of the tile uses
# (its window, or its delay) and that reach inside the sequence.


@triton.jit
def _tap_weight(kr, p, k, RAD, KMAX0, NW, inv_2s2):
    """Unnormalised Gaussian weight of tap ``k`` at positions ``p`` (0 outside each synapse's window), the
    nearest tap ``kr = round(p)`` weighing exp(0): ``(k - p)^2 - (kr - p)^2 = (k - kr)(k + kr - 2 p)``."""
    kf = k + 0.0  # k: a loop's int (a Python int under the interpreter)
    k0 = _window_start(kr, RAD, KMAX0)
    inside = (kf >= k0) & (kf < k0 + NW)
    return tl.where(inside, _relative_weight(kf, kr, p, inv_2s2), 0.0)


@triton.jit
def _window_tile(p, RAD, KMAX0, NW, inv_2s2):
    """What the tap loops keep of a tile of positions ``p`` besides ``p``: ``(kr, 1 / z)`` (see
    :func:`_tap_weight`; ``z`` sums the window's weights, ``z >= 1`` since the nearest tap weighs exp(0))."""
    kr = _nearest_tap(p)
    k0 = _window_start(kr, RAD, KMAX0)
    z = tl.zeros_like(p)
    for wi in range(NW):
        z += _tap_weight(kr, p, k0 + wi, RAD, KMAX0, NW, inv_2s2)
    return kr, 1.0 / z


@triton.jit
def _tap_range(p, pmask, RAD, KMAX0, NW, GAUSS: tl.constexpr):
    """``[k_lo, k_hi)``: the taps some synapse of the tile uses (``p``: nearest taps ``kr`` when ``GAUSS``,
    else the integer delays; masked entries left out)."""
    if GAUSS:
        k0 = _window_start(p, RAD, KMAX0)
        k_lo = tl.min(tl.where(pmask, k0, KMAX0)).to(tl.int32)
        k_hi = tl.max(tl.where(pmask, k0, 0.0)).to(tl.int32) + NW
    else:
        k_lo = tl.min(tl.where(pmask, p, 2147483647))
        k_hi = tl.max(tl.where(pmask, p, -1)) + 1
    return k_lo, k_hi


@triton.jit
def _dot(a, b, acc, PRECISION: tl.constexpr, BF16_DOT: tl.constexpr):
    """``acc + a @ b`` (float32 operands). ``PRECISION="bf16x3"``: ``a`` holds values exact in bfloat16
    (spikes, small integers) and ``b`` is split into three bfloat16 parts, ``b = hi + mid + lo`` to
    about 2^-24 relative, so three bfloat16 products accumulated in float32 give float32 accuracy
    (``BF16_DOT=False``, for the interpreter whose bfloat16 ``tl.dot`` is broken: the same parts
    multiplied in float32). Otherwise ``tl.dot`` at that input precision."""
    if PRECISION == "bf16x3":
        a16 = a.to(tl.bfloat16)
        hi = b.to(tl.bfloat16)
        rest = b - hi.to(tl.float32)
        mid = rest.to(tl.bfloat16)
        lo = (rest - mid.to(tl.float32)).to(tl.bfloat16)
        if BF16_DOT:
            acc = tl.dot(a16, lo, acc)
            acc = tl.dot(a16, mid, acc)
            acc = tl.dot(a16, hi, acc)
        else:
            a32 = a16.to(tl.float32)
            acc = tl.dot(a32, lo.to(tl.float32), acc, input_precision="ieee")
            acc = tl.dot(a32, mid.to(tl.float32), acc, input_precision="ieee")
            acc = tl.dot(a32, hi.to(tl.float32), acc, input_precision="ieee")
    else:
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    return acc


@triton.jit(do_not_specialize=["R", "M", "NB", "NA", "NW"])
def _delay_mma_apply_kernel(src_ptr, w_ptr, p_ptr, out_ptr, R, M, NB, NA, stride_wb, stride_wa,
                            RAD, KMAX0, NW, inv_2s2,
                            SIGN: tl.constexpr, GAUSS: tl.constexpr, PRECISION: tl.constexpr,
                            BF16_DOT: tl.constexpr, BR: tl.constexpr, BB: tl.constexpr, BA: tl.constexpr):
    """``out[r, a] = sum_k src[r + SIGN k M, :] @ C_k[:, a]`` (``C_k[b, a]`` the tap-k kernel), one program
    per (block of rows, block of ``a``), one tl.dot per (block of ``b``, tap)."""
    rows64, offs_a, rmask, amask, k_reach = output_block(R, NA, M, SIGN, BR, BA)
    Mi = M.to(tl.int64)
    acc = tl.zeros([BR, BA], dtype=tl.float32)
    for b0 in range(0, NB, BB):
        offs_b = b0 + tl.arange(0, BB)
        bmask = offs_b < NB
        pmask = bmask[:, None] & amask[None, :]
        poff = offs_b[:, None] * stride_wb + offs_a[None, :] * stride_wa
        w = tl.load(w_ptr + poff, mask=pmask, other=0.0).to(tl.float32)
        # per synapse, kept over the tap loop: (kr, p, W / z) when GAUSS, else (delay, W)
        if GAUSS:
            p = tl.load(p_ptr + poff, mask=pmask, other=0.0).to(tl.float32)
            kr, inv_z = _window_tile(p, RAD, KMAX0, NW, inv_2s2)
            w = w * inv_z
        else:
            kr = tl.load(p_ptr + poff, mask=pmask, other=0).to(tl.int32)
            p = kr
        k_lo, k_hi = _tap_range(kr, pmask, RAD, KMAX0, NW, GAUSS)
        for k in range(k_lo, tl.minimum(k_hi, k_reach)):
            if GAUSS:
                c = _tap_weight(kr, p, k, RAD, KMAX0, NW, inv_2s2) * w
            else:
                c = tl.where(kr == k, w, 0.0)
            src = rows64 + SIGN * (k * Mi)
            valid = rmask & (src >= 0) & (src < R)
            a = tl.load(src_ptr + src[:, None] * NB + offs_b[None, :], mask=valid[:, None] & bmask[None, :],
                        other=0.0).to(tl.float32)
            acc = _dot(a, c, acc, PRECISION, BF16_DOT)
    out_off = rows64[:, None] * NA + offs_a[None, :]
    tl.store(out_ptr + out_off, acc.to(out_ptr.dtype.element_ty), mask=rmask[:, None] & amask[None, :])


@triton.jit(do_not_specialize=["R", "M", "I", "J", "rows_per_split", "NW"])
def _delay_mma_grad_kernel(x_ptr, gy_ptr, w_ptr, p_ptr, gw_ptr, gp_ptr, R, M, I, J, rows_per_split,
                           RAD, KMAX0, NW, inv_2s2, inv_s2,
                           GAUSS: tl.constexpr, NEED_W: tl.constexpr, NEED_P: tl.constexpr,
                           PRECISION: tl.constexpr, BF16_DOT: tl.constexpr,
                           BR: tl.constexpr, BI: tl.constexpr, BJ: tl.constexpr):
    """Per ``[in, out]`` tile and split of rows: ``A[k] = x[r - k M, :]^T @ gy[r, :]`` for the tile's taps
    (one tl.dot per block of rows), folded into ``grad_W`` and ``grad_p`` as tap ``k`` ends."""
    pid_i = tl.program_id(0)
    pid_j = tl.program_id(1)
    pid_s = tl.program_id(2)
    offs_i = pid_i * BI + tl.arange(0, BI)
    offs_j = pid_j * BJ + tl.arange(0, BJ)
    imask = offs_i < I
    jmask = offs_j < J
    pmask = imask[:, None] & jmask[None, :]
    poff = offs_j[None, :] * I + offs_i[:, None]  # W / p are [out = J, in = I]
    Mi = M.to(tl.int64)
    row_lo = pid_s * rows_per_split
    row_hi = tl.minimum(row_lo + rows_per_split, R)
    # per synapse, kept over the tap loop: the positions (nearest taps recomputed, 1 / z at the end: fewer live
    # registers) and, for their gradient, the mean tap m, A[k_lo] and the sum cov below; or the integer delays
    if GAUSS:
        p = tl.load(p_ptr + poff, mask=pmask, other=0.0).to(tl.float32)
        nearest = _nearest_tap(p)
    else:
        p = tl.load(p_ptr + poff, mask=pmask, other=0).to(tl.int32)
        nearest = p
    k_lo, k_hi = _tap_range(nearest, pmask, RAD, KMAX0, NW, GAUSS)
    k_end = tl.minimum(k_hi, (row_hi - 1) // M + 1)  # rows r >= k M see x[r - k M]
    gw = tl.zeros([BI, BJ], dtype=tl.float32)
    # the positions' gradient, centred (see the module's docstring): cov = sum_k G[k] z ((k - r) - m) (A[k] - A[k_lo])
    # with r the nearest tap, m the mean tap's offset from it (any A[k_lo] gives the same exact value: the first
    # tap of the tile's loop, whose A carries the same common offset as the others)
    cov = tl.zeros([BI, BJ], dtype=tl.float32)
    a0 = tl.zeros([BI, BJ], dtype=tl.float32)
    if GAUSS:
        _k0, _kr, _z, m = _window_moments(p, RAD, KMAX0, NW, inv_2s2)
    for k in range(k_lo, k_end):
        a = tl.zeros([BI, BJ], dtype=tl.float32)
        for r0 in range(tl.maximum(row_lo, k * M), row_hi, BR):
            rows = (r0 + tl.arange(0, BR)).to(tl.int64)
            rmask = rows < row_hi
            gy = tl.load(gy_ptr + rows[:, None] * J + offs_j[None, :], mask=rmask[:, None] & jmask[None, :],
                         other=0.0).to(tl.float32)
            xv = tl.load(x_ptr + (rows - k * Mi)[:, None] * I + offs_i[None, :],
                         mask=rmask[:, None] & imask[None, :], other=0.0).to(tl.float32)
            a = _dot(tl.trans(xv), gy, a, PRECISION, BF16_DOT)
        if GAUSS:
            kr = _nearest_tap(p)
            g = _tap_weight(kr, p, k, RAD, KMAX0, NW, inv_2s2)  # G[k] z
            gw += g * a
            if NEED_P:
                if k == k_lo:
                    a0 = a
                cov += g * (((k + 0.0) - kr) - m) * (a - a0)
        else:
            gw += tl.where(p == k, a, 0.0)
    out_off = pid_s.to(tl.int64) * I * J + poff
    if GAUSS:
        kr, inv_z = _window_tile(p, RAD, KMAX0, NW, inv_2s2)
        gw = gw * inv_z
        if NEED_W:
            tl.store(gw_ptr + out_off, gw, mask=pmask)
        if NEED_P:
            # the window's taps past this split's rows (A[k] = 0 here) still weigh in the centring
            for k in range(tl.maximum(k_lo, k_end), k_hi):
                g = _tap_weight(kr, p, k, RAD, KMAX0, NW, inv_2s2)
                cov -= g * (((k + 0.0) - kr) - m) * a0
            # d/dp of the normalised Gaussian: G[k] (u_k - ubar), u_k = (k - r) / sigma^2 (about the nearest tap r,
            # not p: see the module's docstring), over the whole window
            w = tl.load(w_ptr + poff, mask=pmask, other=0.0).to(tl.float32)
            tl.store(gp_ptr + out_off, w * inv_s2 * (cov * inv_z), mask=pmask)
    else:
        tl.store(gw_ptr + out_off, gw, mask=pmask)

# kernels decorated while TRITON_INTERPRET=1 run on CPU tensors through Triton's interpreter
_INTERPRETED = type(_delay_apply_kernel).__name__ == "InterpretedFunction"


# ----------------------------------------------------------------------------- launch helpers


def _check_device(*tensors: torch.Tensor) -> None:
    """``RuntimeError`` for tensors on several devices, or on one the kernels cannot run on: the LIF kernels'
    check (:func:`snnlab.kernels.lif_triton._check_device`, the same messages: not CUDA and not under the
    interpreter, or the interpreter's known problems)."""
    dev = tensors[0].device
    for t in tensors:
        if t.device != dev:
            raise RuntimeError(f"delayed_linear_triton: all tensors must be on one device, got {dev} and {t.device}")
    check_triton_device(tensors[0], "delayed_linear_triton", "backend='torch'")


def gaussian_window(sigma: float, max_delay: int) -> tuple[int, int]:
    """``(radius, n_taps)`` of the tap window used for ``sigma``: ``radius = ceil(WINDOW_SIGMAS * sigma)``,
    ``n_taps = min(max_delay, 2 * radius + 1)``."""
    rad = int(math.ceil(WINDOW_SIGMAS * float(sigma)))
    return rad, min(int(max_delay), 2 * rad + 1)


_SIGMA_SQ_FLOOR = 1e-30


def _gauss_args(sigma: float, max_delay: int) -> dict:
    rad, nw = gaussian_window(sigma, max_delay)
    # Below sigma = 1e-15 every tap but the nearest already weighs exactly 0 in float32 and the positions' gradient
    # is 0, so the floor changes nothing but keeps 1 / sigma^2 and its products with (k - p) finite. Not at an exact
    # tie (a position at k + 0.5): there the positions' gradient grows like 1 / sigma^2 in every implementation,
    # and its value depends on the floor (the PyTorch reference floors 2 sigma^2 at float32's smallest normal).
    s2 = max(float(sigma) ** 2, _SIGMA_SQ_FLOOR)
    return dict(RAD=float(rad), KMAX0=float(max_delay - nw), NW=nw, inv_2s2=0.5 / s2), 1.0 / s2


_ROUNDED_ARGS = dict(RAD=0.0, KMAX0=0.0, NW=1, inv_2s2=0.0)


def kernel_options(algorithm: str | None = None, precision: str | None = None) -> tuple[str, str]:
    """``(algorithm, precision)`` of the fused kernels: the arguments, else the environment, else the defaults.

    * ``algorithm``: ``"mma"`` (default; each tap a matrix product on the tensor cores, kernel tiles built on
      chip), ``"gather"`` (per-synapse windows gathered on the CUDA cores, only the window's taps) or
      ``"taps"`` (the dense ``[max_delay, in, out]`` tap tensor built in PyTorch, then time-shifted matrix
      products on the tensor cores, every operand from memory: :mod:`snnlab.kernels.delay_taps_triton`);
      ``SNNLAB_TRITON_DELAY_ALGO`` sets it.
    * ``precision`` of the ``"mma"`` and ``"taps"`` products: ``"auto"`` (default: float32 accuracy, from
      three bfloat16 products where ``x`` is exact in bfloat16 -- spikes, small integers, bfloat16 inputs; checked once
      per call, one device synchronisation -- else from three TF32 products), ``"tf32x3"`` (always three
      TF32 products), ``"tf32"`` (one product, ~1e-3 relative, as cuDNN's default for float32
      convolutions) or ``"ieee"`` (float32 FMA, no tensor cores); ``SNNLAB_TRITON_DELAY_PRECISION`` sets
      it. The gradient for ``x`` (``grad_y`` times the kernel, neither exact) takes TF32 x3 under
      ``"auto"``. The ``"gather"`` path always computes in float32, and so does ``"mma"`` on GPUs without
      TF32 (before compute capability 8.0), whatever the precision asked.

    Example:
        >>> kernel_options("gather")[0]
        'gather'
    """
    chosen = []
    for value, env, choices in ((algorithm, "SNNLAB_TRITON_DELAY_ALGO", ALGORITHMS),
                                (precision, "SNNLAB_TRITON_DELAY_PRECISION", PRECISIONS)):
        if value is None:
            value = os.environ.get(env, "").strip().lower() or choices[0]
            where = f"the environment variable {env}"
        else:
            where = "delayed_linear_triton"
        if value not in choices:
            raise ValueError(f"{where}: expected one of {list(choices)}, got {value!r}")
        chosen.append(value)
    return chosen[0], chosen[1]


@functools.lru_cache(maxsize=None)
def _has_tf32(device_index: int) -> bool:
    return is_ampere_or_newer(torch.cuda.get_device_capability(device_index))


def _options_for(device: torch.device, options: tuple[str, str]) -> tuple[str, str]:
    """``options`` as the device can run them: TF32 and bfloat16 products need compute capability 8.0 or later."""
    algorithm, precision = options
    if precision != "ieee" and device.type == "cuda":
        if not _has_tf32(device.index if device.index is not None else torch.cuda.current_device()):
            precision = "ieee"
    return algorithm, precision


def _exact_in_bf16(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is a bfloat16 number (NaN is not; one device synchronisation). Under
    ``torch.func.vmap``: of every vmapped sample (the folded call computes them all in one precision)."""
    if x.dtype == torch.bfloat16:
        return True
    x = transform_free(x)
    return torch.equal(x, x.to(torch.bfloat16).to(x.dtype))


def _resolve_precision(options: tuple[str, str], x: torch.Tensor) -> tuple[str, str]:
    """``options`` with ``"auto"`` replaced: ``"bf16x3"`` (the kernels' bfloat16 split, exact operand ``x``)
    for the tensor-core algorithms ("mma", "taps") when ``x`` is exact in bfloat16, else ``"tf32x3"``."""
    algorithm, precision = options
    if precision == "auto":
        precision = "bf16x3" if algorithm in ("mma", "taps") and _exact_in_bf16(x) else "tf32x3"
    return algorithm, precision


def _apply(src: torch.Tensor, weight: torch.Tensor, param: torch.Tensor, M: int, out_features: int,
           transpose: bool, gauss_args: dict, gauss: bool, out_dtype: torch.dtype,
           options: tuple[str, str]) -> torch.Tensor:
    """``out[R, NA]``; forward (``transpose=False``): a = out index j, b = in index i, looking back in time;
    grad_x (``transpose=True``): a = i, b = j, looking ahead."""
    R, NB = src.shape
    I = weight.shape[1]
    NA = out_features
    out = torch.empty(R, NA, device=src.device, dtype=stored_dtype(out_dtype))
    if R == 0 or NA == 0 or NB == 0:
        return out.zero_().to(out_dtype)
    stride_wb, stride_wa = (I, 1) if transpose else (1, I)
    common = dict(SIGN=1 if transpose else -1, GAUSS=gauss)
    algorithm, precision = options
    if transpose and precision == "bf16x3":  # grad_y is not exact in bfloat16
        precision = "tf32x3"
    if algorithm == "mma":
        BR, BB = pow2_block(R, 16, 64), pow2_block(NB, 16, 32)
        BA = 128 if NA % 128 == 0 else pow2_block(NA, 16, 64)
        grid = (triton.cdiv(R, BR), triton.cdiv(NA, BA))
        _delay_mma_apply_kernel[grid](src, weight, param, out, R, M, NB, NA, stride_wb, stride_wa, **gauss_args,
                                      **common, PRECISION=precision, BF16_DOT=not _INTERPRETED, BR=BR, BB=BB,
                                      BA=BA, num_warps=8)
    else:
        BR, BB, BA = pow2_block(R, 16, 32), pow2_block(NB, 8, 8), pow2_block(NA, 16, 32)
        grid = (triton.cdiv(R, BR), triton.cdiv(NA, BA))
        _delay_apply_kernel[grid](src, weight, param, out, R, M, NB, NA, stride_wb, stride_wa, **gauss_args,
                                  **common, BR=BR, BB=BB, BA=BA, num_warps=8)
    return out.to(out_dtype)


def _grad_splits(R: int, n_tiles: int, BR: int) -> int:
    """Splits of the rows for the parameter gradients (see :func:`row_splits`)."""
    return row_splits(R, n_tiles, BR, programs=256, blocks_per_split=4)


def _param_grads(x2: torch.Tensor, gy2: torch.Tensor, weight: torch.Tensor, param: torch.Tensor, M: int,
                 gauss_args: dict, inv_s2: float, gauss: bool, need_w: bool, need_p: bool,
                 options: tuple[str, str]):
    """float32 ``(grad_W, grad_p)`` ``[out, in]`` (``grad_p`` is None unless ``gauss and need_p``)."""
    R, I = x2.shape
    J = gy2.shape[1]
    need_p = need_p and gauss
    algorithm, precision = options
    if algorithm == "mma":
        BR, BI, BJ = pow2_block(R, 16, 64), pow2_block(I, 16, 64), pow2_block(J, 16, 32)
    else:
        BR, BI, BJ = pow2_block(R, 16, 16), pow2_block(I, 16, 16), pow2_block(J, 16, 32)
    splits = _grad_splits(R, triton.cdiv(I, BI) * triton.cdiv(J, BJ), BR)
    rows_per_split = triton.cdiv(triton.cdiv(max(R, 1), splits), BR) * BR
    splits = max(1, triton.cdiv(R, rows_per_split))
    gw = torch.zeros(splits, J, I, device=x2.device, dtype=torch.float32)
    gp = torch.zeros(splits, J, I, device=x2.device, dtype=torch.float32) if need_p else gw
    if R > 0 and I > 0 and J > 0:
        grid = (triton.cdiv(I, BI), triton.cdiv(J, BJ), splits)
        args = (x2, gy2, weight, param, gw, gp, R, M, I, J, rows_per_split)
        flags = dict(**gauss_args, inv_s2=inv_s2, GAUSS=gauss, NEED_W=need_w or need_p, NEED_P=need_p,
                     BR=BR, BI=BI, BJ=BJ)
        if algorithm == "mma":
            _delay_mma_grad_kernel[grid](*args, **flags, PRECISION=precision, BF16_DOT=not _INTERPRETED,
                                         num_warps=8)
        else:
            _delay_grad_kernel[grid](*args, **flags, num_warps=8)
    gw = gw.sum(0) if splits > 1 else gw[0]
    gp = (gp.sum(0) if splits > 1 else gp[0]) if need_p else None
    return gw, gp


# ----------------------------------------------------------------------------- autograd


class DelayedLinearTritonFunction(torch.autograd.Function):
    """Gaussian-interpolated delays: ``(x [T, M, in], W [out, in], p [out, in] already clamped, sigma,
    max_delay, options) -> y [T, M, out]``; gradients for ``x``, ``W`` and ``p``, by
    :class:`DelayedLinearTritonBackward`. ``forward`` + ``setup_context`` with a ``vmap`` rule, so that
    ``torch.func`` (``grad``, ``vjp``, ``jacrev``, ``vmap``) runs it (:mod:`snnlab.kernels.func_transforms`)."""

    @staticmethod
    @fixed_signature
    def forward(x, weight, positions, sigma, max_delay, options):
        T, M, I = x.shape
        gargs, _ = _gauss_args(sigma, max_delay)
        y = _apply(x.reshape(T * M, I).contiguous(), weight.contiguous(), positions.contiguous(), M, weight.shape[0],
                   False, gargs, True, x.dtype, options)
        return y.view(T, M, weight.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, positions, sigma, max_delay, options = inputs
        ctx.save_for_backward(x, weight, positions)
        gargs, inv_s2 = _gauss_args(sigma, max_delay)
        ctx.cfg = (True, gargs, inv_s2, options)

    @staticmethod
    def backward(ctx, gy):
        saved = ctx.saved_tensors
        run = backward_runner(DelayedLinearTritonBackward, _NAME, saved, (gy,))
        gx, gw, gp = run(ctx.cfg + tuple(ctx.needs_input_grad[:3]), gy, *saved)
        return gx, gw, gp, None, None, None

    @staticmethod
    def vmap(info, in_dims, *args):
        return vmap_delay_forward(DelayedLinearTritonFunction, info, in_dims, args)


class DelayedLinearRoundedTritonFunction(torch.autograd.Function):
    """Integer delays: ``(x [T, M, in], W [out, in], d [out, in] int64 >= 0, options) -> y [T, M, out]``;
    gradients for ``x`` and ``W``, by :class:`DelayedLinearTritonBackward` (``torch.func`` as
    :class:`DelayedLinearTritonFunction`)."""

    @staticmethod
    @fixed_signature
    def forward(x, weight, delays, options):
        T, M, I = x.shape
        y = _apply(x.reshape(T * M, I).contiguous(), weight.contiguous(), delays.contiguous(), M, weight.shape[0],
                   False, _ROUNDED_ARGS, False, x.dtype, options)
        return y.view(T, M, weight.shape[0])

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, delays, options = inputs
        ctx.save_for_backward(x, weight, delays)
        ctx.cfg = (False, _ROUNDED_ARGS, 0.0, options)

    @staticmethod
    def backward(ctx, gy):
        saved = ctx.saved_tensors
        run = backward_runner(DelayedLinearTritonBackward, _NAME, saved, (gy,))
        gx, gw, _ = run(ctx.cfg + (ctx.needs_input_grad[0], ctx.needs_input_grad[1], False), gy, *saved)
        return gx, gw, None, None

    @staticmethod
    def vmap(info, in_dims, *args):
        return vmap_delay_forward(DelayedLinearRoundedTritonFunction, info, in_dims, args)


class DelayedLinearTritonBackward(torch.autograd.Function):
    """The backward of :class:`DelayedLinearTritonFunction` and :class:`DelayedLinearRoundedTritonFunction` as a
    Function (``torch.func`` runs it; differentiating it raises): ``(cfg, grad_y [T, M, out], x [T, M, in], W,
    p or d) -> (grad_x, grad_W, grad_p)``, None where not asked for; ``cfg = (gauss, window args, 1 / sigma^2,
    options, need_x, need_W, need_p)``. ``x`` is read for the parameter gradients only (it ties the backward to the
    graph otherwise)."""

    @staticmethod
    @fixed_signature
    def forward(cfg, gy, x, weight, param):
        gauss, gargs, inv_s2, options, need_x, need_w, need_p = cfg
        T, M, J = gy.shape
        I = weight.shape[1]
        gy2 = gy.contiguous().view(T * M, J)
        weight, param = weight.contiguous(), param.contiguous()
        gx = gw = gp = None
        if need_x:
            gx = _apply(gy2, weight, param, M, I, True, gargs, gauss, x.dtype, options).view(T, M, I)
        if need_w or need_p:
            gw32, gp32 = _param_grads(x.reshape(T * M, I).contiguous(), gy2, weight, param, M, gargs, inv_s2, gauss,
                                      need_w, need_p, options)
            gw = gw32.to(weight.dtype) if need_w else None
            gp = gp32.to(param.dtype) if need_p and gauss else None
        return gx, gw, gp

    setup_context, backward = first_order_backward(_NAME)

    @staticmethod
    def vmap(info, in_dims, *args):
        return vmap_delay_backward(DelayedLinearTritonBackward, info, in_dims, args, args[0][5] or args[0][6])


# ----------------------------------------------------------------------------- entry point


def delayed_linear_triton(x: torch.Tensor, weight: torch.Tensor, positions_or_delays: torch.Tensor,
                          sigma: float, max_delay: int, rounded: bool, algorithm: str | None = None,
                          precision: str | None = None, *, autocast: torch.dtype | None | object = ASK
                          ) -> torch.Tensor:
    """Fused Triton :class:`~snnlab.core.delays.DelayedLinear` forward (no bias), differentiable.

    ``x`` is ``[T, B, ..., in]`` (middle dimensions are flattened), ``weight`` ``[out, in]``.
    ``rounded=False``: ``positions_or_delays`` are real positions ``[out, in]`` (clamped here to
    ``[0, max_delay - 1]``, zero gradient outside), Gaussian width ``sigma``; gradients flow
    to ``x``, ``weight`` and the positions. ``rounded=True``: integer delays ``[out, in]``
    (``>= 0``; delays ``>= T`` contribute nothing), ``sigma`` is ignored; gradients flow to
    ``x`` and ``weight``. Returns ``[T, B, ..., out]`` in ``x``'s dtype. Under ``torch.autocast``, ``x`` and
    ``weight`` are first cast to the autocast dtype (:func:`~snnlab.kernels.delay_math.autocast_operands`; the
    kernels then compute in float32 and return that dtype, as the PyTorch paths do). ``algorithm`` and
    ``precision``: see :func:`kernel_options` (default: ``"mma"`` at ``"auto"``, or what the environment sets).
    ``autocast`` (keyword only, for callers that asked autocast already): the floating dtype to cast ``x`` and
    ``weight`` to, or None to take them as they are (e.g. cast already, as :class:`~snnlab.core.delays.DelayedLinear`
    does); by default (:data:`~snnlab.kernels.delay_math.ASK`) autocast is asked here.

    Example:
        >>> x, w = torch.rand(5, 2, 3), torch.randn(4, 3)
        >>> p = torch.rand(4, 3) * 3
        >>> delayed_linear_triton(x, w, p, 1.0, 4, False, autocast="bf16")
        Traceback (most recent call last):
        ...
        TypeError: delayed_linear_triton: autocast must be a floating torch.dtype, None or ASK, got 'bf16'
    """
    name = "delayed_linear_triton"
    refuse_forward_mode(_NAME, (x, weight, positions_or_delays))  # (the Functions' derivatives: reverse mode only)
    if not (autocast is ASK or autocast is None or (isinstance(autocast, torch.dtype) and autocast.is_floating_point)):
        raise TypeError(f"{name}: autocast must be a floating torch.dtype, None or ASK, got {autocast!r}")
    x, weight, _ = autocast_operands(x, weight, dtype=autocast)  # autocast's dtype for x and weight, as every path
    if x.dim() < 2:
        raise ValueError(f"{name}: x must be time-major [T, ..., in], got shape {tuple(x.shape)}")
    if weight.dim() != 2 or weight.shape[1] != x.shape[-1]:
        raise ValueError(f"{name}: weight must be [out, in={x.shape[-1]}], got {tuple(weight.shape)}")
    if tuple(positions_or_delays.shape) != tuple(weight.shape):
        what = "delays" if rounded else "positions"
        raise ValueError(f"{name}: {what} must have the weight's shape {tuple(weight.shape)}, "
                         f"got {tuple(positions_or_delays.shape)}")
    if isinstance(max_delay, bool) or int(max_delay) != max_delay or max_delay < 1:
        raise ValueError(f"{name}: max_delay must be an int >= 1, got {max_delay!r}")
    max_delay = int(max_delay)
    for t, label in ((x, "x"), (weight, "weight")):
        if t.dtype not in _SUPPORTED_DTYPES:
            raise TypeError(f"{name}: {label} must be one of {list(_SUPPORTED_DTYPES)}, got {t.dtype}")
    _check_device(x, weight, positions_or_delays)
    options = _options_for(x.device, kernel_options(algorithm, precision))
    options = _resolve_precision(options, x)
    shape = x.shape
    width = math.prod(shape[1:-1])  # M: the rows of one step
    if shape[0] * width > _MAX_ROWS:
        raise ValueError(f"{name}: {shape[0] * width} rows (T * B * ...) are more than the kernels' int32 row "
                         f"indices reach ({_MAX_ROWS}); split the batch or use backend='torch'")
    x3 = x.reshape(shape[0], width, shape[-1]).contiguous()  # -1 fails on empty tensors
    if rounded:
        d = positions_or_delays
        if d.dtype.is_floating_point or d.dtype == torch.bool or d.is_complex():
            raise TypeError(f"{name}: rounded=True needs integer delays (e.g. layer.delays, a LongTensor), "
                            f"got {d.dtype}")
        # one device sync for both: the check and the number of taps "taps" needs
        # (under torch.func.vmap: of all the vmapped samples' delays together)
        d_min, d_max = torch.stack(torch.aminmax(transform_free(d))).tolist() if d.numel() else (0, -1)
        if d_min < 0:
            raise ValueError(f"{name}: delays must be >= 0")
        # delays >= T reach before the sequence (nothing) either way; capped, they fit the kernels' int32
        d = d.to(torch.int64).clamp(max=max(shape[0], 1))
        if options[0] == "taps":
            n_taps = min(shape[0], d_max + 1)
            c = dense_taps(weight, d, 1.0, max_delay, True, n_taps)
            y = ShiftedTapsFunction.apply(x3, c, options[1])
        else:
            y = DelayedLinearRoundedTritonFunction.apply(x3, weight, d, options)
    else:
        p = positions_or_delays
        if p.dtype not in _SUPPORTED_DTYPES:
            raise TypeError(f"{name}: positions must be one of {list(_SUPPORTED_DTYPES)}, got {p.dtype}")
        sigma = float(sigma)
        if not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"{name}: sigma must be a finite float > 0, got {sigma!r}")
        if options[0] == "taps":  # the Gaussian clamps the positions itself
            c = dense_taps(weight, p, sigma, max_delay, False, min(shape[0], max_delay))
            y = ShiftedTapsFunction.apply(x3, c, options[1])
        else:
            p = p.clamp(0.0, float(max_delay - 1))
            y = DelayedLinearTritonFunction.apply(x3, weight, p, sigma, max_delay, options)
    return y.reshape(*shape[:-1], weight.shape[0])
