"""Learnable synaptic delays in the style of DCLS (Hammouamri et al., 2023).

"Learning Delays in SNNs using Dilated Convolutions with Learnable Spacings" gives every
synapse a real-valued delay position and trains it through a Gaussian interpolation
kernel whose width ``sigma`` shrinks over training; at the end the positions are rounded
to integer delays. This module provides:

* :class:`DelayedLinear` -- a dense layer with one learnable delay per synapse,
* :class:`DelaySchedule` -- the sigma schedule (``max_delay / 2`` down to ``0.5``),
* :func:`delayed_linear` / :func:`delayed_linear_rounded` -- the functional forms,
* :func:`delayed_linear_reference` -- a slow, obviously-correct dense reference for tests.

All tensors are time-major: ``x`` is ``[T, B, in_features]``.
"""
from __future__ import annotations

import functools
import math
import warnings
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from snnlab.core.choices import SIGMA_SCHEDULES
from snnlab.core.validation import (as_flag, as_number, as_seed, check_choice, check_positive, check_time_major,
                                    is_integer)
from snnlab.kernels.delay_math import (  # the formula and the autocast policy live in the kernels layer
    _TAP_CHUNK_ELEMENTS,
    ASK,
    autocast_dtype,
    autocast_off,
    autocast_operands,
    gaussian_delay_kernel,
    two_sigma_squared,
)
from snnlab.kernels.dispatch import (_IS_EXPORTING, HALF_DTYPES, TRITON_DTYPES, compute_dtype, float32_if_half,
                                     graph_capture_active, resolve_backend)
from snnlab.kernels.first_order import transform_free

__all__ = [
    "DelayedLinear",
    "DelaySchedule",
    "delayed_linear",
    "delayed_linear_rounded",
    "delayed_linear_reference",
    "gaussian_delay_kernel",
]

_LAYER = "DelayedLinear"
_BACKENDS = ("auto", "torch", "triton")
_METHODS = ("auto", "fft", "taps")
# torch.cond with autograd (the rounded layer's graphs under torch.compile: the delays that occur, checked)
_COND_TRAINS = hasattr(torch, "cond") and tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 6)


# ----------------------------------------------------------------------------- functional


def _fast_fft_size(n: int) -> int:
    """Smallest integer >= max(n, 1) whose only prime factors are 2, 3 and 5.

    Example:
        >>> [_fast_fft_size(n) for n in (0, 7, 11, 97)]
        [1, 8, 12, 100]
    """
    n = max(int(n), 1)  # (0 divides by every factor: the loop below would never end)
    while True:
        m = n
        for f in (2, 3, 5):
            while m % f == 0:
                m //= f
        if m == 1:
            return n
        n += 1


def _shift_matmul(x: torch.Tensor, w: torch.Tensor, d: int) -> torch.Tensor:
    """``y[t] = x[t - d] @ w.T`` with zeros for ``t < d``; x is ``[T, M, in]``."""
    T = x.shape[0]
    y = x[: T - d] @ w.t()
    return F.pad(y, (0, 0, 0, 0, d, 0)) if d else y


def _zeros_in_graph(x3: torch.Tensor, out: int, weights: torch.Tensor) -> torch.Tensor:
    """``[T, M, out]`` zeros (no tap reaches inside the sequence, or no rows) that keep ``x3`` and ``weights`` in the
    autograd graph: their gradients come back as zeros, not None, as from the other paths."""
    return x3.new_zeros(x3.shape[0], x3.shape[1], out) + (x3[:0].sum() + 0.0 * weights.sum())


def _conv_taps(x: torch.Tensor, kernel: torch.Tensor, support: torch.Tensor | None = None,
               amp: torch.dtype | None = None) -> torch.Tensor:
    """Direct causal convolution: ``y[t] = sum_k x[t-k] @ kernel[:, :, k].T``, skipping the taps where
    ``support`` (default: ``kernel``; same shape) is zero for every synapse (or, where :func:`_conv1d_wins`, as
    one ``conv1d`` over the taps up to the last active one).

    Pass the Gaussian as ``support`` when ``kernel = W * G``: a tap where every ``W * G`` is zero because
    ``W`` is (a zero-initialised layer) still carries the weight gradient ``G``. ``amp``: autocast's product dtype,
    which the ``conv1d`` runs in where oneDNN has fast kernels for it (:func:`_fast_cpu_conv`; summed in float32
    inside, rounded once: the speed-up autocast is for); the per-tap products keep ``x``'s dtype (each rounded to
    ``amp`` would be summed rounded).
    """
    T = x.shape[0]
    K = min(kernel.shape[-1], T)
    support = kernel if support is None else support
    # a graph that torch.compile / torch.export capture (the taps in use are data, which a graph's sizes cannot
    # depend on), shapes only, or batched under vmap: every tap (exact: the unused ones add exact zeros)
    if graph_capture_active() or support.is_meta or (free := transform_free(support)).dim() != support.dim():
        active = list(range(K))
    else:
        active = (free[..., :K] != 0).flatten(0, 1).any(0).nonzero().flatten().tolist()
    if not active:
        return _zeros_in_graph(x, kernel.shape[0], kernel)
    if _conv1d_wins(x, len(active), max(active) + 1, kernel[..., 0].numel() * (max(active) + 1)):
        kernel = kernel[..., : max(active) + 1]
        if not _fast_cpu_conv(amp):
            return _causal_conv1d(x, kernel)
        return _causal_conv1d(x.to(amp), kernel.to(amp)).to(x.dtype)
    y = None
    # one unbind, not kernel[:, :, k] per tap: each select's backward would fill a zero kernel of full size
    slices = kernel[..., :K].unbind(-1)
    for k in active:
        term = _shift_matmul(x, slices[k], k)
        y = term if y is None else y + term
    return y


def _work_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """The dtype the convolutions compute in: the tensors' promoted dtype, float32 for half precision (as
    :func:`~snnlab.kernels.dispatch.compute_dtype`: every path, Triton's too, sums in float32).

    Example:
        >>> _work_dtype(torch.ones(1, dtype=torch.bfloat16), torch.ones(1)), _work_dtype(torch.ones(1).double())
        (torch.float32, torch.float64)
    """
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return float32_if_half(dtype)


def _cast_for_autocast(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
                       ) -> tuple[torch.dtype | None, torch.dtype | None, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(on, amp, x, weight, bias)``, autocast asked once: ``on`` its dtype on ``x``'s device (None: off; for
    :func:`autocast_off`), ``amp`` the dtype it gives the taps paths' products here, or None (off, or a float64
    layer: autocast leaves float64 alone), and the operands cast to ``amp`` (:func:`autocast_operands`; unchanged
    where ``amp`` is None)."""
    on = autocast_dtype(x.device.type)
    amp = None if weight.dtype == torch.float64 else on
    return (on, None, x, weight, bias) if amp is None else (on, amp, *autocast_operands(x, weight, bias, amp))


def _conv_fft(x: torch.Tensor, kernel: torch.Tensor, on: torch.dtype | None | object = ASK) -> torch.Tensor:
    """Causal convolution through the FFT: one complex ``[B, in] @ [in, out]`` matmul per frequency. ``on``:
    autocast's dtype here where the caller knows it (None: off), else asked."""
    # the FFTs and the complex matmul need float32 or float64: autocast would cast the stacked matmul down
    with autocast_off(x, on):
        return _conv_fft_full_precision(x, kernel)


def _conv_fft_full_precision(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    T, K = x.shape[0], kernel.shape[-1]
    if x.numel() == 0:  # (MKL's FFT refuses an empty batch)
        return _zeros_in_graph(x, kernel.shape[0], kernel).to(x.dtype)
    n = _fast_fft_size(T + K - 1)  # no circular wrap-around into the first T outputs
    work = compute_dtype(x)
    xf = torch.fft.rfft(x.to(work), n=n, dim=0)  # [Fq, M, in]
    kf = torch.fft.rfft(kernel.to(work), n=n, dim=-1)  # [out, in, Fq]
    # Complex GEMM per frequency written as one real GEMM on stacked parts (complex matmul is
    # several times slower on CPU): [a, b] @ [[c, d], [-d, c]] = [ac - bd, ad + bc].
    out = kernel.shape[0]
    a, b = xf.real, xf.imag
    c, d = kf.real.permute(2, 1, 0), kf.imag.permute(2, 1, 0)  # [Fq, in, out]
    k2 = torch.cat([torch.cat([c, d], dim=2), torch.cat([-d, c], dim=2)], dim=1)  # [Fq, 2 in, 2 out]
    y2 = torch.matmul(torch.cat([a, b], dim=2), k2)  # [Fq, M, 2 out]
    yf = torch.complex(y2[..., :out], y2[..., out:])
    return torch.fft.irfft(yf, n=n, dim=0)[:T].to(x.dtype)


# Cost model of the PyTorch paths (:func:`_choose_method`), for a training step (forward and backward), per synapse
# (``in * out``). Times in units of one ``conv1d`` product-row (fitted on a 2-core CPU, float32): the FFT's complex
# products per frequency and row, and its kernel spectrum (``kf`` and the stacked ``k2``, transformed, stacked and
# differentiated: a cost per frequency whatever the batch); the per-tap matrix products, about 2x a conv1d's time per
# product, plus a cost per tap (slicing the kernel, its gradient, a small GEMM's overhead).
_FFT_PER_FREQ_ROW = 17.3
_FFT_PER_FREQ = 2630.0
_TAPS_PER_PRODUCT = 2.0
_TAPS_PER_TAP = 1500.0
# Memory guard: a method needing more than _MEMORY_FACTOR times another's extra memory (and more than
# _MEMORY_SLACK floats beyond it) loses to it unless it is more than _TIME_FACTOR times faster.
_MEMORY_FACTOR = 4.0
_MEMORY_SLACK = 2**24
_TIME_FACTOR = 2.0


def _method_costs(T: int, max_delay: int, rows: int, in_features: int, out_features: int,
                  conv1d: bool) -> dict[str, tuple[float, float]]:
    """``{"fft": (time, floats), "taps": (time, floats)}``: the cost model of :func:`_choose_method` for ``x
    [T, rows, in]`` and a ``[out, in, max_delay]`` kernel; ``conv1d``: the taps run as one ``conv1d``
    (:func:`_conv1d_wins`). Times in units of one conv1d product-row per synapse, summed over the synapses; memory in
    the floats a training step holds beyond what every method holds (the Gaussian, the kernel, the output)::

        K = min(T, max_delay), n = _fast_fft_size(T + K - 1), F = n // 2 + 1, io = in * out
        fft   time  io * F * (17.3 * rows + 2630)       memory  12 * F * io + 8 * F * rows * (in + out)
        conv1d time io * K * T * rows                   memory  2 * rows * (in * (T + K) + out * T) + 2 * K * io
        taps  time  io * (2 * P * rows + 1500 * K)      memory  2 * T * rows * out + 2 * K * io
                    (P = K * T - K * (K - 1) / 2 shifted products per row)

    The FFT's kernel spectrum (``kf`` and the stacked ``k2``, ``[F, 2 in, 2 out]``, with their gradients) costs
    ``~12 F io`` floats and ``2630 F io`` time whatever the batch: at a small batch or a long sequence it dominates.

    Example:
        >>> c = _method_costs(3000, 25, 1, 140, 256, conv1d=False)
        >>> c["fft"][0] > 10 * c["taps"][0], c["fft"][1] > 10 * c["taps"][1]
        (True, True)
    """
    K = min(max_delay, T)
    n = _fast_fft_size(T + K - 1)  # (the kernel the forward transforms has the K taps that reach inside the sequence)
    F = n // 2 + 1
    io = in_features * out_features
    fft = (io * F * (_FFT_PER_FREQ_ROW * rows + _FFT_PER_FREQ),
           12.0 * F * io + 8.0 * F * rows * (in_features + out_features))
    if conv1d:
        taps = (float(io) * K * T * rows,
                2.0 * rows * (in_features * (T + K) + out_features * T) + 2.0 * K * io)
    else:
        P = K * T - K * (K - 1) / 2
        taps = (io * (_TAPS_PER_PRODUCT * P * rows + _TAPS_PER_TAP * K), 2.0 * T * rows * out_features + 2.0 * K * io)
    return {"fft": fft, "taps": taps}


def _choose_method(T: int, max_delay: int, x3: torch.Tensor | None = None, kernel_size: int | None = None,
                   out_features: int | None = None) -> str:
    """``"fft"`` or ``"taps"``, whichever the cost model (:func:`_method_costs`) says is faster for ``x3 [T, M, in]``
    and a kernel of ``kernel_size`` entries (out * in * min(T, max_delay)), with a memory guard: the faster method
    loses where it needs more than 4x the other's extra memory (and 64 MB more in float32) unless it is more than 2x
    faster (:func:`_method_for_sizes`). Fitted on the CPU (float32 / float64; a half-precision ``x3`` is costed as
    the float32 it is computed in, so a layer and its bfloat16 copy choose alike); elsewhere, or without ``x3``, the
    products are counted (one dense step per unit) as before: not measured on a GPU.

    Example:
        >>> x3 = torch.zeros(3000, 1, 140)   # the SHD layer at batch 1 over a long sequence: the kernel spectrum
        >>> _choose_method(3000, 25, x3, 256 * 140 * 25)
        'taps'
    """
    if x3 is None:
        return _gemm_count_method(T, max_delay)
    rows, in_features = x3.shape[1], x3.shape[2]
    if out_features is None:
        out_features = kernel_size // (in_features * max(max_delay, 1)) if kernel_size and in_features else 1
    return _method_for_sizes(T, max_delay, rows, in_features, max(out_features, 1), x3.device.type, x3.dtype,
                             kernel_size)


def _method_for_sizes(T: int, max_delay: int, rows: int, in_features: int, out_features: int,
                      device_type: str = "cpu", dtype: torch.dtype = torch.float32,
                      kernel_size: int | None = None) -> str:
    """:func:`_choose_method` for ``x [T, rows, in]`` of ``dtype`` on ``device_type`` (costed in the dtype the paths
    compute in: float32 for half precision), by sizes alone.

    Example:
        >>> _method_for_sizes(100, 25, 256, 140, 256), _method_for_sizes(100, 25, 256, 140, 256, dtype=torch.bfloat16)
        ('fft', 'fft')
    """
    work = float32_if_half(dtype)
    if device_type != "cpu" or work not in (torch.float32, torch.float64):
        return _gemm_count_method(T, max_delay)
    costs = _method_costs(T, max_delay, rows, in_features, out_features,
                          _taps_as_conv1d(T, max_delay, rows, work, kernel_size))
    (t_fft, m_fft), (t_taps, m_taps) = costs["fft"], costs["taps"]
    best, other = ("fft", "taps") if t_fft < t_taps else ("taps", "fft")
    (t_best, m_best), (t_other, m_other) = costs[best], costs[other]
    if m_best > _MEMORY_FACTOR * m_other + _MEMORY_SLACK and t_other <= _TIME_FACTOR * t_best:
        return other
    return best


def _gemm_count_method(T: int, max_delay: int) -> str:
    """The method with fewer dense ``[M, in] @ [in, out]`` products per step: :func:`_choose_method` where its CPU
    cost model does not apply (a GPU, or sizes unknown; not measured there: the kernel spectrum is left out)."""
    K = min(max_delay, T)
    taps_cost = K * T - K * (K - 1) / 2
    fft_cost = 4 * (_fast_fft_size(T + K - 1) // 2 + 1) + 2 * T
    return "fft" if fft_cost < taps_cost else "taps"


def _taps_as_conv1d(T: int, max_delay: int, rows: int, dtype: torch.dtype, kernel_size: int | None) -> bool:
    """Whether the taps of every tap below ``min(T, max_delay)`` run as one ``conv1d`` on the CPU (``rows`` per step,
    ``dtype`` the work dtype; False where ``kernel_size`` is unknown)."""
    K = min(max_delay, T)
    return kernel_size is not None and _conv1d_wins_for("cpu", dtype, T * rows, K, K, kernel_size)


# Memory of a training step of the PyTorch path whatever the method (measured: see training_step_floats), in copies
# of the kernel [out, in, min(T, max_delay)] (the Gaussian and the kernel, saved for the backward, their gradients,
# the Gaussian's backward's temporaries) and, where T < max_delay, of a chunk of the normaliser's sum over the taps
# past the sequence, and of the positions [out, in] (its moments and their derivative)
_KERNEL_COPIES = 5.0
_CHUNK_COPIES = 6.0
_SYNAPSE_COPIES = 12.0


def training_step_floats(T: int, max_delay: int, rows: int, in_features: int, out_features: int) -> float:
    """The floats one training step (forward and backward, method "auto", float32 on the CPU) of a
    :class:`DelayedLinear` with learnable delays holds at its peak beyond its input: the kernel-sized tensors every
    method holds (:data:`_KERNEL_COPIES` of ``[out, in, min(T, max_delay)]``), the output and the input's gradient,
    and the extra memory of the method ``"auto"`` takes (:func:`_method_costs`, the model it chooses by). The
    memory term of :func:`snnlab.training.estimate_memory_bytes`.

    Example:
        >>> f = training_step_floats(100, 25, 256, 140, 256)   # the SHD layer
        >>> round(f * 4 / 2**20)   # MiB (the FFT's; measured: 224 MiB)
        354
    """
    K = min(max_delay, T)
    io = in_features * out_features
    kernel_size = io * K
    method = _method_for_sizes(T, max_delay, rows, in_features, out_features, kernel_size=kernel_size)
    extra = _method_costs(T, max_delay, rows, in_features, out_features,
                          _taps_as_conv1d(T, max_delay, rows, torch.float32, kernel_size))[method][1]
    floats = _KERNEL_COPIES * kernel_size + float(T) * rows * (in_features + out_features) + extra
    if 0 < K < max_delay:  # the normaliser over the taps past the sequence, by chunks (gaussian_delay_kernel(n_taps))
        chunk = min(max(1, _TAP_CHUNK_ELEMENTS // io), max_delay - K) * io
        floats += _CHUNK_COPIES * chunk + _SYNAPSE_COPIES * io
    return floats


def delayed_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    positions: torch.Tensor,
    sigma: float,
    max_delay: int,
    bias: torch.Tensor | None = None,
    method: str = "auto",
) -> torch.Tensor:
    """Gaussian-interpolated delayed dense layer (training form), pure PyTorch.

    ``y[t, j] = sum_i W_ij * sum_k G_ij[k] * x[t - k, i] (+ bias_j)`` with ``G`` from
    :func:`gaussian_delay_kernel`; ``x`` is ``[T, ..., in]``. ``method``: ``"fft"`` (cost
    independent of ``sigma`` and ``max_delay``), ``"taps"`` (one shifted GEMM per non-zero
    tap; on the CPU with many rows, one ``conv1d``) or ``"auto"`` (the cheaper by a cost model: GEMM counts, or,
    where taps run as one ``conv1d``, times fitted on a CPU). Both are exact, not truncated. Half-precision
    operands are computed in float32, the output in ``x``'s dtype; under ``torch.autocast`` ``x``, ``weight`` and
    ``bias`` are first cast to the autocast dtype (see :class:`DelayedLinear`).
    """
    check_choice(method, "method", _METHODS, "delayed_linear")
    return _delayed_linear(*_cast_for_autocast(x, weight, bias), positions, sigma, max_delay, method)


def _delayed_linear(on: torch.dtype | None, amp: torch.dtype | None, x: torch.Tensor, weight: torch.Tensor,
                    bias: torch.Tensor | None, positions: torch.Tensor, sigma: float, max_delay: int,
                    method: str) -> torch.Tensor:
    """:func:`delayed_linear` with its operands cast (``on``, ``amp``, ``x``, ``weight``, ``bias``: from
    :func:`_cast_for_autocast`; autocast is not asked again)."""
    with autocast_off(x, on):
        shape = x.shape
        # half-precision positions: the Gaussian in float32 (not rounded to their dtype), as the Triton kernels; only
        # the first T taps reach inside the sequence (normalised over all max_delay taps, the others never built)
        n_taps = shape[0] if 0 < shape[0] < max_delay else None
        gaussian = gaussian_delay_kernel(positions.to(compute_dtype(positions)), sigma, max_delay, n_taps=n_taps)
        kernel = weight.unsqueeze(-1) * gaussian  # [out, in, min(T, max_delay)]
        work = _work_dtype(x, kernel)
        x3 = x.reshape(shape[0], math.prod(shape[1:-1]), shape[-1]).to(work)  # (not -1: T may be 0)
        kernel = kernel.to(work)
        if method == "auto":
            method = _choose_method(shape[0], max_delay, x3, kernel.numel(), weight.shape[0])
        y = _conv_fft(x3, kernel, None) if method == "fft" else _conv_taps(x3, kernel, support=gaussian, amp=amp)
        y = _add_bias(y.to(x.dtype), bias)
    return y.reshape(*shape[:-1], weight.shape[0])


def delayed_linear_rounded(
    x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Integer-delay dense layer: ``y[t, j] = sum_i W_ij * x[t - d_ij, i] (+ bias_j)``, exact arithmetic.

    Synapses are grouped by delay value and only values that occur (and are ``< T``) are
    used: ``y = sum_d shift_d(x) @ (W * [D == d]).T``. On the CPU, where many delay values occur, the same
    sum is one ``conv1d`` over a kernel holding each synapse's weight at its delay tap (``W_ij`` at ``d_ij``,
    zeros elsewhere): the same products, without an FFT, about 2x faster than one matrix product per delay.
    Precision as :func:`delayed_linear`'s (float32 for half precision, output in ``x``'s dtype; autocast's dtype
    for ``x``, ``weight`` and ``bias`` under ``torch.autocast``).
    """
    on, amp, x, weight, bias = _cast_for_autocast(x, weight, bias)
    with autocast_off(x, on):
        return _rounded(x, weight, delays, bias, amp)


def _rounded(x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, bias: torch.Tensor | None,
             amp: torch.dtype | None = None, max_delay: int | None = None,
             occurring: tuple[int, ...] | None = None) -> torch.Tensor:
    """:func:`delayed_linear_rounded` with its operands cast (autocast off; ``amp``: autocast's product dtype).
    ``max_delay``: the delays lie below it (the layer's), which bounds the taps of a captured graph. ``occurring``:
    the delay values that occur, where the caller knows them (the layer's, as Python ints: eager code reads them
    from ``delays`` otherwise; a ``torch.compile`` graph takes them as constants, checked against ``delays``)."""
    shape = x.shape
    T = shape[0]
    work = _work_dtype(x, weight)
    x3 = x.reshape(T, math.prod(shape[1:-1]), shape[-1]).to(work)
    out_dtype, weight = x.dtype, weight.to(work)
    delays = delays.to(weight.device)
    if graph_capture_active():
        y = _rounded_captured(x3, weight, delays, amp, min(T, max_delay if max_delay is not None else T), occurring)
    else:
        # meta: shapes only; under torch.func.vmap the delays of every vmapped layer (unique cannot run batched)
        if occurring is None:
            occurring = (0,) if delays.is_meta else tuple(torch.unique(transform_free(delays)).tolist())
        y = _rounded_sum(x3, weight, delays, [d for d in occurring if d < T], amp)
    y = _add_bias(y.to(out_dtype), bias)
    return y.reshape(*shape[:-1], weight.shape[0])


def _rounded_sum(x3: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, used: Iterable[int],
                 amp: torch.dtype | None) -> torch.Tensor:
    """``sum_{d in used} shift_d(x3) @ (W * [D == d]).T`` for ``x3 [T, M, in]`` (every delay below T must be in
    ``used``): one shifted product per delay value, or, where :func:`_conv1d_wins`, one ``conv1d`` over the one-hot
    delay kernel; zeros in the graph where ``used`` is empty."""
    used = list(used)
    taps = max(used) + 1 if used else 0
    if not used:
        return _zeros_in_graph(x3, weight.shape[0], weight)
    if _conv1d_wins(x3, len(used), taps, weight.numel() * taps):
        return _one_hot_conv1d(x3, weight, delays, taps, amp)
    y = None
    for d in used:
        term = _shift_matmul(x3, weight * (delays == d).to(weight.dtype), int(d))
        y = term if y is None else y + term
    return y


def _one_hot_conv1d(x3: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, taps: int,
                    amp: torch.dtype | None) -> torch.Tensor:
    """The rounded sum over the delays below ``taps`` as one ``conv1d`` over the one-hot delay kernel (each synapse's
    weight at its delay's tap; in ``amp`` where :func:`_fast_cpu_conv`: exact products, summed in float32 inside)."""
    one_hot = delays.unsqueeze(-1) == torch.arange(taps, device=delays.device)
    kernel = weight.unsqueeze(-1) * one_hot.to(weight.dtype)
    if _fast_cpu_conv(amp):
        return _causal_conv1d(x3.to(amp), kernel.to(amp)).to(x3.dtype)
    return _causal_conv1d(x3, kernel)


def _rounded_captured(x3: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor, amp: torch.dtype | None,
                      taps: int, occurring: tuple[int, ...] | None) -> torch.Tensor:
    """:func:`_rounded_sum` in a graph that ``torch.compile`` / ``torch.export`` capture, where the delays that occur
    are data (the graph's operations cannot depend on them): every tap below ``taps`` (= min(T, max_delay); the
    unused ones add exact zeros), or, under ``torch.compile`` with the ``occurring`` values known (the layer's,
    constants of the graph), a ``torch.cond`` that takes the products of those values only where every delay below T
    is among them -- checked in the graph on the delays of this call, so delays changed since (in place, unseen by the
    layer) cost the time of every tap, never a wrong output (on the CPU, where the one-hot kernel is small enough
    for :func:`_conv1d_wins`, that branch is one ``conv1d`` whatever the rows: it compiles in seconds, where one
    product per tap took a minute for 100 taps). ``torch.export`` keeps every tap: an exported program runs with
    whatever delays its buffers are given."""
    every = range(taps)
    used = [d for d in occurring if d < taps] if occurring is not None else None
    if used is None or len(used) == taps or _IS_EXPORTING() or not _COND_TRAINS:
        return _rounded_sum(x3, weight, delays, every, amp)
    known = (torch.isin(delays, torch.tensor(used, dtype=delays.dtype, device=delays.device)) | (delays >= taps)).all()
    one_conv = _conv1d_wins_for(x3.device.type, x3.dtype, _CONV1D_MIN_ROWS, taps, taps, weight.numel() * taps)

    def fallback(x: torch.Tensor, w: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return (_one_hot_conv1d(x, w, d, taps, amp) if one_conv else _rounded_sum(x, w, d, every, amp)).contiguous()

    # (contiguous: torch.cond needs the branches' outputs alike, and one may be a conv1d's permuted output)
    return torch.cond(known, lambda x, w, d: _rounded_sum(x, w, d, used, amp).contiguous(), fallback,
                      (x3, weight, delays))


def _add_bias(y: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``y + bias`` in ``y``'s dtype (the input's): a wider bias (a float32 one and a bfloat16 ``y``) is added in
    the promoted dtype and the sum rounded to ``y``'s, instead of promoting the output.

    Example:
        >>> _add_bias(torch.ones(2, dtype=torch.bfloat16), torch.full((2,), 0.5)).dtype
        torch.bfloat16
    """
    if bias is None:
        return y
    out = y + bias
    return out if out.dtype == y.dtype else out.to(y.dtype)


_CONV1D_MIN_ROWS = 4096  # T * batch: below it the products' small matrices win
_CONV1D_MAX_KERNEL = 2**23  # out * in * taps: above it conv1d's weight gradient falls far behind (100x at 179M)


def _conv1d_wins(x3: torch.Tensor, products: int, taps: int, kernel_size: int) -> bool:
    """Whether one ``conv1d`` over ``taps`` taps beats ``products`` shifted matrix products (``kernel_size`` =
    out * in * taps). Measured on a 2-core CPU (float32, forward and weight gradient): conv1d does about 2x the
    work per second in the SHD configuration (T * batch = 25 600 rows, a 0.9M kernel), loses with few rows (200
    rows: 28 vs 6 ms) and with huge kernels; so only on the CPU (float32 / float64), with the products covering
    more than half of the taps, at least 4096 rows and at most 2**23 kernel entries. On a GPU cuDNN may compute
    float32 convolutions in TF32, so the exact products stay."""
    return _conv1d_wins_for(x3.device.type, x3.dtype, x3.shape[0] * x3.shape[1], products, taps, kernel_size)


def _conv1d_wins_for(device_type: str, dtype: torch.dtype, rows: int, products: int, taps: int,
                     kernel_size: int) -> bool:
    """:func:`_conv1d_wins` by sizes: ``rows`` = T * batch of an input of ``dtype`` on ``device_type``."""
    return (device_type == "cpu" and dtype in (torch.float32, torch.float64) and 2 * products > taps
            and rows >= _CONV1D_MIN_ROWS and kernel_size <= _CONV1D_MAX_KERNEL)


def _fast_cpu_conv(dtype: torch.dtype | None) -> bool:
    """Whether a CPU ``conv1d`` in ``dtype`` (autocast's; None: off) runs on oneDNN's kernels for it: bfloat16 on CPUs
    with AVX-512 (or Arm's bfloat16), float16 on CPUs with AVX-512-FP16 or AMX-FP16. Elsewhere PyTorch's reference
    loops run it at 1/17 to 1/32 of float32's speed (the SHD layer's conv1d on a 2-core AVX-512 CPU: 2.8 s in
    float16, 0.09 s in float32; its training step under float16 autocast 5.8 s instead of 0.34 s), so the
    ``conv1d`` stays in float32 there.

    Example:
        >>> _fast_cpu_conv(None), _fast_cpu_conv(torch.float32)
        (False, False)
    """
    if dtype not in HALF_DTYPES or not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    return _onednn_supports(dtype)


@functools.lru_cache(maxsize=None)
def _onednn_supports(dtype: torch.dtype) -> bool:
    """oneDNN's own check of the CPU for ``dtype`` (bfloat16 or float16); False where this PyTorch lacks it."""
    name = "_is_mkldnn_bf16_supported" if dtype == torch.bfloat16 else "_is_mkldnn_fp16_supported"
    try:
        return bool(getattr(torch.ops.mkldnn, name)())
    except (AttributeError, RuntimeError):
        return False


def _causal_conv1d(x3: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``y[t] = sum_k x3[t - k] @ kernel[:, :, k].T`` for ``x3 [T, M, in]`` and ``kernel [out, in, K]`` (``x[t < 0] =
    0``) as one ``conv1d``: the same products as :func:`_conv_taps`, in one call."""
    K = kernel.shape[-1]
    xb = F.pad(x3.permute(1, 2, 0), (K - 1, 0))  # [M, in, K - 1 + T]
    return F.conv1d(xb, kernel.flip(-1)).permute(2, 0, 1)  # conv1d correlates: its tap K-1-k is delay k


def delayed_linear_reference(
    x: torch.Tensor, weight: torch.Tensor, positions: torch.Tensor, sigma: float, max_delay: int
) -> torch.Tensor:
    """Slow dense reference (no bias) used by the tests: explicit kernel and loops over taps.

    ``G_ij[k] = exp(-(k - p_ij)^2 / (2 sigma^2)) / sum_k' exp(...)`` (``p`` clamped to
    ``[0, max_delay-1]``; the largest exponent is subtracted before ``exp`` and ``2 sigma^2`` is at least the
    dtype's smallest normal number, so tiny sigmas stay finite), then ``y[t, j] = sum_i W_ij sum_k G_ij[k] x[t - k, i]`` with ``x[t < 0] = 0``.
    """
    T = x.shape[0]
    p = positions.clamp(0.0, float(max_delay - 1))
    taps = torch.arange(max_delay, dtype=x.dtype, device=x.device)
    expo = -((taps.view(1, 1, -1) - p.unsqueeze(-1)) ** 2) / two_sigma_squared(sigma, x.dtype)
    g = torch.exp(expo - expo.max(dim=-1, keepdim=True).values)
    g = g / g.sum(dim=-1, keepdim=True)
    kernel = weight.unsqueeze(-1) * g  # [out, in, K]
    rows = []
    for t in range(T):
        acc = x.new_zeros(x.shape[1:-1] + (weight.shape[0],))
        for k in range(max_delay):
            if t - k >= 0:
                acc = acc + x[t - k] @ kernel[:, :, k].t()
        rows.append(acc)
    return torch.stack(rows)


# ----------------------------------------------------------------------------- backends

_TRITON_IMPL = None
_TRITON_ERROR: str | None = None


def _triton_impl():
    """Return ``snnlab.kernels.delays_triton.delayed_linear_triton`` or ``None`` (import is cached)."""
    global _TRITON_IMPL, _TRITON_ERROR
    if _TRITON_IMPL is None and _TRITON_ERROR is None:
        try:
            from snnlab.kernels.delays_triton import delayed_linear_triton

            _TRITON_IMPL = delayed_linear_triton
        except Exception as exc:  # ImportError, or triton itself failing to load
            _TRITON_ERROR = f"{type(exc).__name__}: {exc}"
    return _TRITON_IMPL


# ----------------------------------------------------------------------------- layer


class DelayedLinear(nn.Module):
    r"""Dense layer with one learnable synaptic delay per synapse (DCLS-style).

    Parameters: ``weight`` ``[out, in]`` (initialised like :class:`torch.nn.Linear`),
    ``positions`` ``[out, in]`` (one real delay per synapse, uniform in ``[0, max_delay-1]``)
    and an optional ``bias`` ``[out]``. Input ``x`` is time-major ``[T, B, in]`` (extra middle
    dimensions are allowed), output ``[T, B, out]``.

    Training form (Gaussian interpolation over taps ``k = 0..max_delay-1``)::

        G_ij[k] = exp(-(k - p_ij)^2 / (2 sigma^2)) / sum_k' exp(-(k' - p_ij)^2 / (2 sigma^2))
        y[t, j] = sum_i W_ij * sum_k G_ij[k] * x[t - k, i]   (+ bias_j)

    causal (``x[t < 0] = 0``), with ``p`` clamped to ``[0, max_delay - 1]`` in the forward pass
    (call :meth:`clamp_positions_`, or :meth:`clamp_parameters_` as on the neuron layers, after an optimiser step to
    clamp the stored values too).
    ``sigma`` is a settable float (default ``max_delay / 2``), usually driven by
    :class:`DelaySchedule` down to ``0.5``.

    After :meth:`round_delays` the delays are frozen to ``d_ij = round(clamp(p_ij))``
    (``layer.delays``, a LongTensor) and the output is exactly::

        y[t, j] = sum_i W_ij * x[t - d_ij, i]   (+ bias_j)

    With ``learn_delays=False`` the layer starts in that rounded state with fixed random
    integer delays (a buffer, not a Parameter). ``learn_delays`` must be True or False (``"no"`` is a
    ``TypeError``, not a true value), and is fixed at construction: assigning another value later is an
    ``AttributeError`` (it would not change what the layer learns; :meth:`round_delays` freezes learned delays).

    The state dict holds ``sigma`` and ``max_delay`` too, and loading it takes the saved form (rounded or learnable
    positions), so a reloaded layer computes the same function as the saved one; a state saved from a layer with
    another ``max_delay`` is refused (``RuntimeError`` naming both: build the layer with the saved one). A state
    saved before ``max_delay`` was kept loads as before, except rounded delays outside ``0..max_delay - 1``
    (refused) and learnable positions past ``max_delay - 1`` (a ``UserWarning``: from a longer layer, or never
    clamped).

    Algorithm (pure PyTorch path). The per-synapse kernels are folded into
    ``H = W[..., None] * G`` (``[out, in, max_delay]``, cheap to build; for a sequence of ``T < max_delay`` steps
    only the ``T`` taps that reach inside it, still normalised over all ``max_delay``) and the causal
    convolution over time is done without running ``max_delay`` dense GEMMs:

    * ``"fft"``: ``x`` is zero-padded in time to ``n >= T + max_delay - 1`` and transformed with
      ``rfft``; each of the ``n/2 + 1`` frequencies needs one complex ``[B, in] @ [in, out]``
      GEMM, then ``irfft`` and the first ``T`` steps are kept. Its products are ~``2 (T + max_delay)``
      dense-layer-steps instead of ``max_delay * T`` for a per-tap convolution (about 10x fewer for ``T=100,
      max_delay=25``), but it also transforms and stacks the kernel's spectrum (``[n/2 + 1, 2 in, 2 out]``, ~12x
      ``(T + max_delay) / 2 * in * out`` floats with its gradient, and time per frequency whatever the batch), so
      it pays off only with many rows (a large batch) and a short sequence. Independent of ``sigma``, and exact
      (no Gaussian truncation), so the full kernel is used even for large sigmas.
    * ``"taps"``: ``y = sum_k pad_k(x[:T-k] @ H[:, :, k].T)`` over the taps that are non-zero
      for some synapse and reach inside the sequence (``k < T``); on the CPU with many rows, one ``conv1d``.

    ``"auto"`` takes the faster by a cost model of time and memory (``_method_costs`` in this module: the FFT's
    products and kernel spectrum against the taps' products, per frequency / tap, row and synapse), and never a
    method needing over 4x the other's extra memory unless it is over 2x faster. In the SHD configuration
    (140 -> 256, ``max_delay=25``, ``T=100``, batch 256) that is the FFT; at batch 1 or over long sequences, taps.

    The rounded form groups synapses by integer delay and uses only the values that occur:
    ``y = sum_d shift_d(x) @ (W * [D == d]).T`` -- exact arithmetic (spike inputs give exact
    zeros), cost proportional to the number of distinct delays (on the CPU with many rows, one ``conv1d`` over
    the one-hot delay kernel instead). Time shifts are done by slicing and padding the time-major tensor; there
    is no Python loop over ``t``.

    ``backend``: ``"torch"`` always uses the path above; ``"triton"`` requires
    ``snnlab.kernels.delays_triton.delayed_linear_triton`` (``RuntimeError`` otherwise);
    ``"auto"`` uses it for CUDA inputs when it can be imported, else PyTorch. The Triton kernels run
    each tap as a matrix product on the tensor cores at float32 accuracy by default (three bfloat16
    products where the input is exact in bfloat16, as spikes are; three TF32 ones otherwise); the environment
    variables ``SNNLAB_TRITON_DELAY_ALGO`` and ``SNNLAB_TRITON_DELAY_PRECISION`` choose others
    (:func:`snnlab.kernels.delays_triton.kernel_options`). ``backend="triton"`` on a device the kernels cannot
    run on (no CUDA, and no ``TRITON_INTERPRET=1``) raises the ``RuntimeError`` the LIF layers raise.

    Initialisation: ``weight`` and ``bias`` as :class:`torch.nn.Linear`'s, then the positions (``init_delay``:
    ``"uniform"`` in ``[0, max_delay - 1]``, ``"zero"`` or ``"center"``), drawn from ``generator`` (a CPU
    ``torch.Generator``), or from a fresh generator seeded with ``seed`` (an int: the same initial layer for the
    same seed), or, with neither, from torch's global generator. Give one of ``seed`` and ``generator``, not both
    (``ValueError``). The values are drawn on the CPU in float32 and then cast to the layer's device and ``dtype``,
    so a seed gives the same layer whatever ``torch.set_default_dtype`` / ``set_default_device`` say (and the same
    integer delays in any dtype). :meth:`reset_parameters` draws them again (from the layer's ``seed`` if it has
    one: the values of a fresh construction) and restores the buffers and the constructed form, as
    ``nn.Linear.reset_parameters`` does for its layer: a model built on the meta device, then
    ``model.to_empty(device=...)`` and ``reset_parameters()`` of every module gets what it would have on that
    device. Loading a state dict or :meth:`round_delays` under ``torch.inference_mode()`` keeps the tensors normal
    (not inference tensors), so training afterwards still gets gradients.

    Precision. Every path computes the delay convolution to float32 accuracy (float64 where the input or the layer
    is float64; the Triton kernels at their default precision), half-precision inputs and parameters included, and
    returns ``x``'s dtype, as :func:`delayed_linear` and the neuron layers do: the input is not cast to the layer's
    dtype first (a float64 input to a float32 layer is computed and returned in float64, a float32 input to a
    float16 layer computed and returned in float32, a bfloat16 input to a float32 layer computed in float32 and
    returned in bfloat16; a wider bias is added in its dtype and the sum rounded to ``x``'s). Integer or bool input
    is taken in the layer's dtype. The Triton kernels take float32, float16 and bfloat16 inputs and layers:
    ``backend="auto"`` runs float64 on PyTorch, ``backend="triton"`` refuses it (``TypeError``).
    The positions are never stored in half precision: a float16 / bfloat16 layer (``dtype=`` at construction,
    ``.half()``, ``.bfloat16()``, ``.to(dtype)``) keeps them in float32, with their values from before the cast, as
    the LIF layers keep their constants: bfloat16 holds integers exactly only up to 256 (float16 up to 2048), so
    a delay of 399 would become 400, past ``max_delay - 1`` (a half-precision state dict loads into float32).

    ``torch.compile`` (also ``fullgraph=True``) and ``torch.export`` capture the PyTorch path (``backend="torch"``,
    and ``"auto"`` on the CPU); the input's NaN / inf check reads values back to the host and is skipped inside
    the graphs they capture. The delays that occur in the rounded form are data to a graph: ``torch.compile``
    computes the products of the values the layer last saw (when its delays changed through it: ``round_delays()``,
    a load, ``.to()``, any eager forward; taken as constants, so a change compiles the graph again), where a check in
    the graph finds every delay among them; otherwise (delays changed in place since) every tap below ``T``, exact
    but slower. ``torch.export`` keeps every tap below ``T`` (an exported program runs with whatever delays it is
    given).

    Under ``torch.autocast`` the layer follows autocast's policy for matrix products, as :class:`torch.nn.Linear`
    does: ``x``, ``weight`` and ``bias`` are cast to the autocast dtype (e.g. bfloat16), the positions and the
    Gaussian stay in their dtype (a bfloat16 position between 16 and 32 would be off by up to 1/16 step), the
    products of the cast operands are summed in float32, and the output is in the autocast dtype on every path (a
    float64 layer ignores autocast: it computes in float64 and returns ``x``'s dtype, as outside it). The FFT
    path and the Triton kernels form each synapse's Gaussian-weighted kernel ``W * G`` in float32 and agree to the
    rounding of the output; where the PyTorch "taps" and rounded paths run as one ``conv1d`` (CPU, many rows) they
    run it in the autocast dtype, as a ``conv1d`` under autocast does, where oneDNN has fast kernels for that dtype
    (bfloat16 on AVX-512 CPUs, float16 only with AVX-512-FP16 or AMX; elsewhere in float32, 17 to 32 times
    faster than PyTorch's reference loops): ``W * G`` rounded to that dtype too (a relative ``2**-9`` per term in
    bfloat16; exact for rounded delays), summed in float32 -- the speed-up autocast is for::

        with torch.autocast("cuda", dtype=torch.bfloat16):
            y = layer(x)          # y.dtype == torch.bfloat16, summed in float32

    Example::

        >>> layer = DelayedLinear(140, 256, max_delay=25)
        >>> sched = DelaySchedule(layer, total_epochs=50)   # sigma 12.5 -> 0.5
        >>> y = layer(torch.rand(100, 8, 140))               # [T, B, in] -> [100, 8, 256]
        >>> # ... train, calling sched.step() once per epoch and layer.clamp_positions_()
        >>> _ = layer.round_delays()                              # exact integer delays for inference
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        max_delay: int,
        learn_delays: bool = True,
        bias: bool = False,
        sigma: float | None = None,
        init_delay: str = "uniform",
        backend: str = "auto",
        generator: torch.Generator | None = None,
        seed: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        for name, value, lo in (("in_features", in_features, 1), ("out_features", out_features, 1), ("max_delay", max_delay, 1)):
            if not is_integer(value):
                raise TypeError(f"{_LAYER}: {name} must be an int, got {type(value).__name__} {value!r}")
            if value < lo:
                hint = " (use max_delay=1 for no delays)" if name == "max_delay" else ""
                raise ValueError(f"{_LAYER}: {name} must be >= {lo}, got {value}{hint}")
        check_choice(init_delay, "init_delay", ("uniform", "zero", "center"), _LAYER)
        check_choice(backend, "backend", _BACKENDS, _LAYER)
        if backend == "triton" and _triton_impl() is None:
            raise RuntimeError(
                f"{_LAYER}: backend='triton' needs snnlab.kernels.delays_triton.delayed_linear_triton, which "
                f"could not be imported ({_TRITON_ERROR}). Install triton with a CUDA GPU, or use backend='torch'/'auto'."
            )
        if generator is not None:
            if seed is not None:  # one would be ignored
                raise ValueError(f"{_LAYER}: give seed or generator, not both (the initial weights and delays are "
                                 f"drawn from one of them); got seed={seed!r} and a generator")
            if not isinstance(generator, torch.Generator):
                raise TypeError(f"{_LAYER}: generator must be a torch.Generator (or None), got "
                                f"{type(generator).__name__} {generator!r}")
        seed = None if seed is None else as_seed(seed, _LAYER)
        in_features, out_features, max_delay = int(in_features), int(out_features), int(max_delay)

        self.in_features = in_features
        self.out_features = out_features
        self.max_delay = max_delay
        self.learn_delays = as_flag(learn_delays, "learn_delays", _LAYER)
        self.backend = backend
        self.sigma = float(max_delay) / 2.0 if sigma is None else sigma

        self.init_delay = init_delay
        self.seed = seed  # (reset_parameters draws from it again)

        # the tensors' shapes, device and dtypes here; their values from reset_parameters (one code path)
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features, **factory))
        else:
            self.register_parameter("bias", None)
        kept = float32_if_half(self.weight.dtype)  # (float32 in a half-precision layer)
        self.register_buffer("_is_rounded", torch.tensor(not self.learn_delays, device=device))
        positions = torch.empty(out_features, in_features, device=device, dtype=kept)
        if self.learn_delays:
            self.positions = nn.Parameter(positions)
        else:
            self.register_buffer("positions", positions)
        self.reset_parameters(generator)

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw ``weight``, ``bias`` and ``positions`` again as the constructor does, and restore the buffers (the
        ``_is_rounded`` flag) and the form to the constructed ones, in place (the optimiser keeps the Parameters).

        The draws come from ``generator`` (a CPU ``torch.Generator``) if given, else from a fresh generator seeded
        with the layer's ``seed`` (so a seeded layer gets the values of a fresh construction with that seed), else
        from torch's global generator. They are made on the CPU in float32 and then cast to the layer's device and
        dtype, so neither depends on ``torch.set_default_dtype`` / ``set_default_device``. A layer built with
        ``learn_delays=True`` that was rounded (:meth:`round_delays`) gets learnable positions again: a new
        Parameter (``UserWarning``: build the optimiser after). On the meta device only the form is set (no values
        to draw). This is what ``module.to_empty(device=...)`` followed by ``reset_parameters()`` of every module
        (the usual re-initialisation of a model built on the meta device) needs.

        Example:
            >>> layer = DelayedLinear(3, 2, max_delay=4, seed=0)
            >>> w = layer.weight.detach().clone()
            >>> with torch.no_grad():
            ...     _ = layer.weight.zero_()
            >>> layer.reset_parameters()
            >>> torch.equal(layer.weight, w)
            True
        """
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"{_LAYER}.reset_parameters: generator must be a torch.Generator (or None), got "
                            f"{type(generator).__name__} {generator!r}")
        seed = getattr(self, "seed", None)  # (a layer pickled before seed was kept has none)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(seed)
        if self.learn_delays and self.rounded:
            warnings.warn(f"{_LAYER}.reset_parameters: the layer was built with learnable delays, so its rounded "
                          "positions become a new Parameter again; an optimiser built before does not hold it "
                          "(build the optimiser after)", UserWarning, stacklevel=2)
        self._set_positions_learnable(self.learn_delays)
        self._is_rounded.fill_(not self.learn_delays)
        if self.weight.is_meta:  # shapes only
            self._note_delays()
            return
        out_features, in_features, top = self.out_features, self.in_features, float(self.max_delay - 1)
        init_delay = getattr(self, "init_delay", "uniform")  # (the constructor's default, for older pickles)
        draw = {"dtype": torch.float32, "device": "cpu"}  # (not the default dtype / device: the same numbers always)
        bound = 1.0 / math.sqrt(in_features)  # what nn.Linear's kaiming_uniform(a=sqrt(5)) gives
        self.weight.copy_(torch.empty(out_features, in_features, **draw).uniform_(-bound, bound, generator=generator))
        if self.bias is not None:
            self.bias.copy_(torch.empty(out_features, **draw).uniform_(-bound, bound, generator=generator))
        if init_delay == "uniform":
            pos = torch.rand(out_features, in_features, generator=generator, **draw) * top
        elif init_delay == "zero":
            pos = torch.zeros(out_features, in_features, **draw)
        else:
            pos = torch.full((out_features, in_features), top / 2.0, **draw)
        if not self.learn_delays:  # fixed integer delays
            if init_delay == "uniform":  # random, each value equally likely
                pos = torch.randint(0, self.max_delay, (out_features, in_features), generator=generator,
                                    device="cpu")
            pos = pos.round()
        self.positions.copy_(pos)
        self._note_delays()

    def __setattr__(self, name: str, value) -> None:
        if name == "learn_delays" and name in self.__dict__:  # after construction: refused (a no-op if unchanged)
            if as_flag(value, name, _LAYER) != self.learn_delays:
                hint = ("call round_delays() to freeze this layer's delays" if self.learn_delays else
                        "build a DelayedLinear(..., learn_delays=True) and copy this layer's weight (and positions, "
                        "as its starting delays) into it")
                raise AttributeError(f"{_LAYER}: learn_delays is fixed at construction (it makes the positions a "
                                     f"Parameter or a fixed buffer), so it cannot be set to {value!r} afterwards; "
                                     f"{hint}")
            return
        super().__setattr__(name, value)
        if name == "positions":  # (new values: read again where the layer next sees them; see _note_delays)
            self.__dict__["_occurring"] = None

    def _apply(self, fn, recurse: bool = True):
        """As ``nn.Module._apply`` (``.to()``, ``.half()``, ``.bfloat16()``, ``.cuda()``...), but the positions stay
        float32 when the rest goes to float16 / bfloat16, with their values from before the cast: bfloat16 holds
        integers exactly only up to 256 (float16 up to 2048), so a delay of 399 would become 400 (past the longest,
        ``max_delay - 1``) and 289 would become 288; a learned position 298.6 would be 298. Every path computes the
        Gaussian in float32 anyway (the LIF layers keep their constants the same way)."""
        old = self.positions
        # detached now: the cast may swap the data of the Parameter (and of its gradient) in place
        before = None if old is None or old.dtype in HALF_DTYPES else (
            old.detach(), None if old.grad is None else old.grad.detach())
        super()._apply(fn, recurse)
        if self.positions is not None and self.positions.dtype in HALF_DTYPES:
            self._positions_in_float32(*(before or (self.positions.detach(), self.positions.grad)))
        self._note_delays()  # (to_empty(): new values)
        return self

    def _positions_in_float32(self, values: torch.Tensor, grad: torch.Tensor | None) -> None:
        """Store ``values`` (and ``grad``, for a Parameter) as the positions, in float32 on their current device
        (the Parameter kept: an optimiser holding it still trains it)."""
        current = self.positions
        with torch.inference_mode(False):  # (normal tensors under inference_mode too: a load there; see _set_...)
            values = values.to(device=current.device, dtype=torch.float32)
            if isinstance(current, nn.Parameter):
                current.grad = None
                current.data = values
                if grad is not None:  # (optimisers need the gradient in the parameter's dtype)
                    current.grad = grad.detach().to(device=current.device, dtype=torch.float32)
            else:
                self.positions = values

    # -- delays state --------------------------------------------------------------------

    @property
    def sigma(self) -> float:
        """Width of the Gaussian delay kernel in time steps (float > 0)."""
        return self._sigma

    @sigma.setter
    def sigma(self, value: float) -> None:
        check_positive(value, "sigma", _LAYER)
        self._sigma = float(value)

    @property
    def rounded(self) -> bool:
        """True once the delays are frozen integers (after :meth:`round_delays`, or ``learn_delays=False``)."""
        # the form is where positions live (kept in step with the saved _is_rounded flag by round_delays and the
        # loads): no read of the flag's value (no device sync per forward; meta tensors work), and not the
        # positions' type, which torch.func.functional_call swaps for a plain tensor in the same dict
        return "positions" in self._buffers

    @property
    def delays(self) -> torch.Tensor:
        """Integer delays ``round(clamp(positions))`` as a LongTensor ``[out, in]`` (frozen once rounded)."""
        return self.positions.detach().clamp(0.0, float(self.max_delay - 1)).round().long()

    @torch.no_grad()
    def clamp_positions_(self) -> "DelayedLinear":
        """Clamp the stored positions to ``[0, max_delay - 1]`` in place (call after ``optimizer.step()``)."""
        self.positions.clamp_(0.0, float(self.max_delay - 1))
        return self

    def clamp_parameters_(self) -> "DelayedLinear":
        """:meth:`clamp_positions_` under the name the neuron layers give it, so one loop over a model's modules
        after ``optimizer.step()`` puts every layer's learned values back into range. Returns the layer.

        Example:
            >>> layer = DelayedLinear(3, 2, max_delay=5)
            >>> with torch.no_grad():
            ...     _ = layer.positions.add_(100.0)       # an optimiser step overshot
            >>> float(layer.clamp_parameters_().positions.detach().max())
            4.0
        """
        return self.clamp_positions_()

    @torch.no_grad()
    def round_delays(self) -> "DelayedLinear":
        """Freeze the delays to ``round(clamp(positions))``; positions become a non-learnable buffer."""
        d = self.delays.to(self.positions.dtype)
        self._set_positions_learnable(False)
        self.positions.copy_(d)
        self._is_rounded.fill_(True)
        self._note_delays()
        return self

    def _note_delays(self) -> None:
        """Keep the delay values that occur in the rounded form as Python ints (``_occurring``; None in the training
        form and where they cannot be read: meta tensors, tensor subclasses (fake tensors; the wrappers of
        ``torch.func`` transforms), a graph being captured): a ``torch.compile`` graph of the layer takes them as constants and computes only their products
        where every delay is among them (checked in the graph: :func:`_rounded_captured`), so values changed without
        the layer seeing it (in place) cost time, not correctness. Read again by :meth:`round_delays`,
        :meth:`reset_parameters`, loading a state dict, ``.to()`` and every eager forward; a ``positions`` assignment
        forgets them. (A change makes ``torch.compile`` compile the layer's graph again: it guards on them.)"""
        pos = self.positions
        readable = self.rounded and _plain(pos) and not graph_capture_active()
        self.__dict__["_occurring"] = tuple(torch.unique(self.delays).tolist()) if readable else None

    def _set_positions_learnable(self, learnable: bool) -> None:
        """Make ``positions`` a Parameter (training form) or a buffer (rounded form), keeping its values."""
        if learnable == isinstance(self.positions, nn.Parameter):
            return
        data = self.positions.detach()
        del self.positions
        # normal tensors even where this runs under torch.inference_mode() (a load or round_delays() in an evaluation
        # script): an inference-tensor Parameter would get no gradient in the training that follows
        with torch.inference_mode(False):
            if learnable:
                self.positions = nn.Parameter(data.clone())
            else:
                self.register_buffer("positions", data.clone() if data.is_inference() else data)

    # -- saving and loading ----------------------------------------------------------------

    def get_extra_state(self) -> torch.Tensor:
        """``sigma`` and ``max_delay`` travel with the state dict (as ``<prefix>_extra_state``, the float64 tensor
        ``[sigma, max_delay]``; a state saved before max_delay was kept holds ``sigma`` alone, a scalar)."""
        return torch.tensor([self._sigma, float(self.max_delay)], dtype=torch.float64)

    def set_extra_state(self, state: torch.Tensor | float) -> None:
        """Take ``sigma`` from a saved ``[sigma, max_delay]`` (or a lone ``sigma``); ``ValueError`` for another
        ``max_delay`` (a load reports it before changing anything: :meth:`_incompatible`)."""
        sigma, saved_max_delay = _saved_extra(state)
        if saved_max_delay is not None and saved_max_delay != self.max_delay:
            raise ValueError(self._max_delay_mismatch("(this layer)", saved_max_delay))
        self.sigma = sigma

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        # Check first, then load: a state this layer cannot take (a tensor of another shape, not a tensor, a bad
        # sigma) is reported as PyTorch reports it and changes nothing, not even the layer's form, so the optimiser
        # keeps the same Parameters. (Missing keys stay PyTorch's business: it tells no module whether the load is
        # strict, so a partial load takes what is there, as for any module.)
        problems = self._incompatible(state_dict, prefix)
        if problems:
            error_msgs.extend(problems)
            return
        # The saved layer may be in the other form: take its form first, so that the loaded positions are
        # learnable exactly when the loaded delays are not frozen (rounded or learn_delays=False).
        flag = state_dict.get(prefix + "_is_rounded")
        if isinstance(flag, torch.Tensor) and flag.numel() == 1:
            if not bool(flag) and not isinstance(self.positions, nn.Parameter):
                warnings.warn(f"{_LAYER} {prefix.rstrip('.') or '(root)'}: the loaded state has learnable delays, so "
                              "positions become a new Parameter; an optimiser built before this load does not hold "
                              "it (build the optimiser after loading)", UserWarning, stacklevel=4)
                self.__dict__["learn_delays"] = True  # (the loaded form; refused as an assignment: __setattr__)
            self._set_positions_learnable(not bool(flag))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if self.positions.dtype in HALF_DTYPES:  # load_state_dict(assign=True) of half-precision positions: float32,
            self._positions_in_float32(self.positions.detach(), None)  # as a cast keeps them (see _apply)
        extra = prefix + "_extra_state"
        if extra not in state_dict and extra in missing_keys:
            missing_keys.remove(extra)  # saved before sigma was kept: the layer keeps its current sigma
        self._note_delays()

    def _incompatible(self, state_dict, prefix: str) -> list[str]:
        """PyTorch's messages for the saved tensors this layer cannot take (raises ``ValueError`` for a bad sigma)."""
        problems = []
        for name, own in (*self._parameters.items(), *self._buffers.items()):
            key = prefix + name
            if own is None or key not in state_dict:
                continue
            value = state_dict[key]
            if not isinstance(value, torch.Tensor):
                problems.append(f'While copying the parameter named "{key}", expected torch.Tensor or Tensor-like '
                                f"object from checkpoint but received {type(value)}")
            elif value.shape != own.shape and not (own.dim() == 0 and value.shape == (1,)):  # (PyTorch's [1] -> [])
                problems.append(f"size mismatch for {key}: copying a param with shape {value.shape} from checkpoint, "
                                f"the shape in current model is {own.shape}.")
        extra = prefix + "_extra_state"
        if problems:
            return problems
        sigma, saved_max_delay = _saved_extra(state_dict[extra]) if extra in state_dict else (None, None)
        if saved_max_delay is not None and saved_max_delay != self.max_delay:
            return [self._max_delay_mismatch(prefix.rstrip(".") or "(root)", saved_max_delay)]
        if sigma is not None:
            check_positive(sigma, "sigma", _LAYER)  # what set_extra_state will check, before any change
        if saved_max_delay is None:  # saved before max_delay was kept: what the positions tell of it
            problems.extend(self._delays_out_of_range(state_dict, prefix))
        return problems

    def _max_delay_mismatch(self, where: str, saved: int) -> str:
        """The load error for a state saved from a layer with another ``max_delay`` (``where``: the layer's name)."""
        own = self.max_delay
        return (f"{_LAYER} {where}: max_delay mismatch: the state dict was saved from a layer with max_delay={saved}, "
                f"and this layer has max_delay={own}, which clamps the delays to 0..{own - 1} and normalises the "
                f"Gaussian kernels over {own} taps, so it would compute another function; build the layer with "
                f"{_LAYER}(..., max_delay={saved}) to load it")

    def _delays_out_of_range(self, state_dict, prefix: str) -> list[str]:
        """For a state saved without ``max_delay`` (an older snnlab): the load error for rounded delays outside
        ``0..max_delay - 1`` (no rounded layer holds such delays: this one would clamp them); a ``UserWarning`` for
        learnable positions past ``max_delay - 1``, which a layer with a larger ``max_delay`` saves, but also one of
        this ``max_delay`` whose positions were not clamped after the optimiser steps (its forward clamps them)."""
        key = prefix + "positions"
        saved = state_dict.get(key)
        if not isinstance(saved, torch.Tensor) or saved.numel() == 0 or not _plain(saved):
            return []
        top = self.max_delay - 1
        low, high = float(saved.detach().min()), float(saved.detach().max())
        flag = state_dict.get(prefix + "_is_rounded")
        rounded = bool(flag) if isinstance(flag, torch.Tensor) and flag.numel() == 1 and _plain(flag) else self.rounded
        longer = (f"; it was likely saved from a layer with max_delay >= {math.floor(high) + 1}: build this one with "
                  f"{_LAYER}(..., max_delay=<the saved layer's>) to load it") if high > top else ""
        if rounded and (low < 0 or high > top):
            return [f"delays out of range for {key}: the saved rounded delays span {low:g}..{high:g}, but this layer "
                    f"(max_delay={self.max_delay}) holds delays 0..{top} (the state dict was saved by an snnlab that "
                    f"did not record max_delay){longer}"]
        if not rounded and high > top:
            warnings.warn(f"{_LAYER} {prefix.rstrip('.') or '(root)'}: the saved positions reach {high:g}, past this "
                          f"layer's longest delay {top} (max_delay={self.max_delay}), and the state dict does not "
                          "record the max_delay it was saved with (an older snnlab). If that layer had a larger "
                          "max_delay, this one computes another function (it clamps the delays to "
                          f"{top}): build it with {_LAYER}(..., max_delay=<the saved layer's>); positions that were "
                          "only left unclamped after the optimiser steps load as they are", UserWarning, stacklevel=6)
        return []

    # -- forward -------------------------------------------------------------------------

    def _use_triton(self, x: torch.Tensor, weight: torch.Tensor | None = None) -> bool:
        """Whether the Triton kernels run ``x`` with ``weight`` (default: the layer's; the operands as autocast cast
        them): always for ``backend="triton"`` (which raises where they cannot: no Triton, a device it cannot run
        on, a float64 input or layer), for ``"auto"`` on CUDA when every operand has a dtype they take."""
        weight = self.weight if weight is None else weight
        operands = (("input", x), ("weight", weight)) + (() if self.rounded else (("positions", self.positions),))
        if self.backend == "torch":
            return False
        if self.backend == "triton":
            if _triton_impl() is None:
                raise RuntimeError(f"{_LAYER}: backend='triton' is unavailable ({_TRITON_ERROR}); use backend='torch'.")
            resolve_backend("triton", x.device, x.dtype)  # the LIF layers' error for a device Triton cannot run on
            for label, t in operands:
                if t.dtype not in TRITON_DTYPES:
                    raise TypeError(
                        f"{_LAYER}: backend='triton' computes {[str(d) for d in TRITON_DTYPES]} tensors, got the "
                        f"{label} in {t.dtype}; use backend='torch' or 'auto' (they compute float64 in float64), "
                        "or cast the input / the layer")
            return True
        return (x.is_cuda and all(t.dtype in TRITON_DTYPES for _, t in operands)
                and _triton_impl() is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (the NaN check reads values back to the host: skipped inside a torch.compile / torch.export graph)
        check_time_major(x, "x", self.in_features, _LAYER, finite=not graph_capture_active())
        check_choice(self.backend, "backend", _BACKENDS, _LAYER)  # (set after construction: the constructor's check)
        # autocast asked once per call: the paths below take the operands as cast here
        on, amp, x, weight, bias = _cast_for_autocast(x, self.weight, self.bias)  # (unchanged where it is off)
        if not x.is_floating_point():  # integer / bool spikes: the layer's dtype (x's own would truncate the output)
            x = x.to(weight.dtype)
        # x keeps its dtype (the output's): every path computes the promoted dtype of x and the layer, float32 for
        # half precision, so a float64 input is not rounded to a float32 layer's precision, nor float32 to float16
        if self._use_triton(x, weight):
            arg = self.delays if self.rounded else self.positions.clamp(0.0, float(self.max_delay - 1))
            y = _triton_impl()(x, weight, arg, self.sigma, self.max_delay, self.rounded, autocast=None)
            return _add_bias(y, bias)
        if self.rounded:
            delays = self.delays
            with autocast_off(x, on):
                return _rounded(x, weight, delays, bias, amp, self.max_delay, self._occurring_now(delays))
        return _delayed_linear(on, amp, x, weight, bias, self.positions, self.sigma, self.max_delay, "auto")

    def _occurring_now(self, delays: torch.Tensor) -> tuple[int, ...] | None:
        """The delay values for :func:`_rounded`: in a captured graph the ones kept (:meth:`_note_delays`); in eager
        code read from ``delays`` (as the rounded path would) and kept; None where they cannot be read (meta, vmap:
        the rounded path's own reading)."""
        if graph_capture_active():
            return getattr(self, "_occurring", None)  # (older pickles: none)
        if not _plain(delays):
            return None
        occurring = tuple(torch.unique(delays).tolist())
        if self.__dict__.get("_occurring") != occurring:
            self.__dict__["_occurring"] = occurring
        return occurring

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, max_delay={self.max_delay}, "
            f"sigma={self.sigma:.3g}, learn_delays={self.learn_delays}, rounded={self.rounded}, "
            f"bias={self.bias is not None}, backend={self.backend!r}"
        )


def _saved_extra(state: object) -> tuple[float, int | None]:
    """``(sigma, max_delay)`` from a saved ``_extra_state``: the tensor ``[sigma, max_delay]``, or ``sigma`` alone
    (a number or a one-element tensor, saved before max_delay was kept: max_delay None). ``TypeError`` /
    ``ValueError`` naming the layer for anything else.

    Example:
        >>> _saved_extra(torch.tensor([2.5, 5.0], dtype=torch.float64)), _saved_extra(torch.tensor(0.5))
        ((2.5, 5), (0.5, None))
    """
    if not isinstance(state, torch.Tensor) or state.numel() == 1:
        return as_number(state, "sigma", _LAYER), None
    values = state.detach().flatten().tolist() if state.numel() == 2 else None
    if values is None or not math.isfinite(values[1]) or values[1] != int(values[1]) or values[1] < 1:
        raise ValueError(f"{_LAYER}: a saved _extra_state is [sigma, max_delay] (max_delay an int >= 1) or sigma "
                         f"alone, got {state!r}")
    return float(values[0]), int(values[1])


def _plain(t: torch.Tensor | None) -> bool:
    """Whether ``t`` is a plain tensor with values to read (not meta, not a subclass: a fake tensor, ``torch.func``'s
    wrappers of a transform)."""
    return type(t) in (torch.Tensor, nn.Parameter) and not t.is_meta and transform_free(t) is t


# ----------------------------------------------------------------------------- schedule


class DelaySchedule:
    """Sigma schedule for :class:`DelayedLinear` layers, from ``max_delay / 2`` down to ``0.5``.

    ``layers_or_module`` is a layer, any module (all ``DelayedLinear`` submodules are found)
    or an iterable of those. With progress ``r = min(epoch / E, 1)`` where
    ``E = max(1, round(anneal_fraction * (total_epochs - 1)))`` is the epoch at which sigma reaches its end:

    * ``"linear"``: ``s0 + (s1 - s0) r``
    * ``"cosine"``: ``s1 + (s0 - s1) (1 + cos(pi r)) / 2``
    * ``"exponential"``: ``s0 (s1 / s0) ** r``

    where ``s0 = sigma_start`` (default: each layer's ``max_delay / 2``) and ``s1 = sigma_end``.
    Construction sets epoch 0's sigma; :meth:`step` advances one epoch. Sigma reaches ``sigma_end``
    after ``anneal_fraction`` of the epochs and stays there, so the last epochs train with the narrow
    kernel the network is evaluated and rounded with (the last epoch always trains at ``sigma_end``).

    Example:
        >>> sched = DelaySchedule(DelayedLinear(2, 2, max_delay=9), total_epochs=5, anneal_fraction=0.5)
        >>> [round(sched.sigma_at(e), 2) for e in range(5)]
        [4.5, 2.5, 0.5, 0.5, 0.5]
    """

    KINDS = SIGMA_SCHEDULES

    def __init__(
        self,
        layers_or_module: nn.Module | Iterable[nn.Module],
        total_epochs: int,
        sigma_start: float | None = None,
        sigma_end: float = 0.5,
        kind: str = "linear",
        anneal_fraction: float = 0.75,
    ) -> None:
        name = "DelaySchedule"
        settings = self._checked(name, total_epochs, sigma_start, sigma_end, kind, anneal_fraction)
        mods = [layers_or_module] if isinstance(layers_or_module, nn.Module) else list(layers_or_module)
        layers: list[DelayedLinear] = []
        for m in mods:
            if not isinstance(m, nn.Module):
                raise TypeError(f"{name}: expected nn.Module objects, got {type(m).__name__}")
            for sub in m.modules():
                if isinstance(sub, DelayedLinear) and all(sub is not l for l in layers):
                    layers.append(sub)
        if not layers:
            raise ValueError(f"{name}: no DelayedLinear layer found in {type(layers_or_module).__name__}; pass the model or the layers.")
        self.layers = layers
        self.total_epochs, self.sigma_start, self.sigma_end, self.kind, self.anneal_fraction = settings
        self.epoch = 0
        self._apply()

    @classmethod
    def _checked(cls, who: str, total_epochs: int, sigma_start: float | None, sigma_end: float, kind: str,
                 anneal_fraction: float) -> tuple[int, float | None, float, str, float]:
        """The settings checked (``ValueError`` / ``TypeError`` naming ``who`` and the argument) and normalised, in
        the order ``total_epochs, sigma_start, sigma_end, kind, anneal_fraction``: the one check of the constructor
        and :meth:`load_state_dict`."""
        if not is_integer(total_epochs) or total_epochs < 1:
            raise ValueError(f"{who}: total_epochs must be an int >= 1, got "
                             f"{type(total_epochs).__name__} {total_epochs!r}")
        fraction = as_number(anneal_fraction, "anneal_fraction", who)
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"{who}: anneal_fraction must lie in (0, 1], got {anneal_fraction!r}")
        if sigma_start is not None:
            check_positive(sigma_start, "sigma_start", who)
        check_positive(sigma_end, "sigma_end", who)
        check_choice(kind, "kind", cls.KINDS, who)
        return (int(total_epochs), None if sigma_start is None else float(sigma_start), float(sigma_end), kind,
                fraction)

    def sigma_at(self, epoch: int, layer: DelayedLinear | None = None) -> float:
        """Sigma at ``epoch`` for ``layer`` (default: the first layer found)."""
        layer = self.layers[0] if layer is None else layer
        s0 = self.sigma_start if self.sigma_start is not None else layer.max_delay / 2.0
        s1 = self.sigma_end
        if self.total_epochs == 1:  # the only epoch is the last: it trains at sigma_end
            r = 1.0
        else:
            end_epoch = max(1, round(self.anneal_fraction * (self.total_epochs - 1)))
            r = min(max(float(epoch), 0.0) / end_epoch, 1.0)
        if self.kind == "linear":
            return s0 + (s1 - s0) * r
        if self.kind == "cosine":
            return s1 + (s0 - s1) * (1.0 + math.cos(math.pi * r)) / 2.0
        return s0 * (s1 / s0) ** r

    def _apply(self) -> None:
        for layer in self.layers:
            layer.sigma = self.sigma_at(self.epoch, layer)

    def step(self) -> float:
        """Advance one epoch, set ``sigma`` on every layer and return the first layer's sigma."""
        self.epoch += 1
        self._apply()
        return self.layers[0].sigma

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "total_epochs": self.total_epochs,
            "sigma_start": self.sigma_start,
            "sigma_end": self.sigma_end,
            "kind": self.kind,
            "anneal_fraction": self.anneal_fraction,
        }

    def load_state_dict(self, state: dict) -> None:
        """Take the settings and epoch of :meth:`state_dict` (checked as the constructor checks them; a bad state
        changes nothing). A state without ``anneal_fraction`` (saved before it existed) anneals over all epochs."""
        who = "DelaySchedule.load_state_dict"
        if not isinstance(state, dict):
            raise TypeError(f"{who}: expected the dict of DelaySchedule.state_dict(), got {type(state).__name__}")
        missing = [k for k in ("epoch", "total_epochs", "sigma_start", "sigma_end", "kind") if k not in state]
        if missing:
            raise ValueError(f"{who}: the state lacks {missing}; pass the dict of DelaySchedule.state_dict()")
        settings = self._checked(who, state["total_epochs"], state["sigma_start"], state["sigma_end"], state["kind"],
                                 state.get("anneal_fraction", 1.0))
        epoch = state["epoch"]
        if not is_integer(epoch) or epoch < 0:
            raise ValueError(f"{who}: epoch must be an int >= 0, got {type(epoch).__name__} {epoch!r}")
        self.total_epochs, self.sigma_start, self.sigma_end, self.kind, self.anneal_fraction = settings
        self.epoch = int(epoch)
        self._apply()
