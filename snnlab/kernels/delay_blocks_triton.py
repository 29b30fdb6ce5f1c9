"""Blocks and row splits shared by the Triton kernels of :class:`~snnlab.core.delays.DelayedLinear` (the
"mma" kernels of :mod:`snnlab.kernels.delays_triton`, the "taps" ones of
:mod:`snnlab.kernels.delay_taps_triton`): which output block a program computes, how many taps reach
inside the sequence from it, block sizes, and how a reduction over rows is split across programs; and the
``torch.func.vmap`` rules of their autograd Functions (:func:`vmap_delay_forward`, :func:`vmap_delay_backward`).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .func_transforms import vmap_by_slices
from .triton_import import tl, triton

__all__ = ["MAX_ROWS", "taps_reaching_rows", "output_block", "pow2_block", "row_splits", "stored_dtype", "fold_rows",
           "unfold_rows", "vmap_delay_forward", "vmap_delay_backward"]

#: the most rows of a ``[T * M, features]`` view the kernels take (they index rows in int32)
MAX_ROWS = 2**31 - 1


@triton.jit
def taps_reaching_rows(pid_r, R, M, SIGN: tl.constexpr, BR: tl.constexpr):
    """How many taps ``k = 0, 1, ...`` reach a source row ``r + SIGN k M`` inside the sequence (``0 <= . < R``)
    for some row ``r`` of block ``pid_r`` (``BR`` rows): looking back (``SIGN < 0``) or ahead."""
    row_first = pid_r * BR
    if SIGN < 0:
        return (tl.minimum(row_first + BR, R) - 1) // M + 1  # r - k M >= 0
    else:
        return (R - 1 - row_first) // M + 1  # r + k M < R


@triton.jit
def output_block(R, NA, M, SIGN: tl.constexpr, BR: tl.constexpr, BA: tl.constexpr):
    """This program's block of an ``[R, NA]`` output (axis 0: blocks of rows, axis 1: of columns): ``(rows
    as int64, columns, row mask, column mask, taps reaching inside the sequence)``."""
    pid_r = tl.program_id(0)
    rows = pid_r * BR + tl.arange(0, BR)
    offs_a = tl.program_id(1) * BA + tl.arange(0, BA)
    return rows.to(tl.int64), offs_a, rows < R, offs_a < NA, taps_reaching_rows(pid_r, R, M, SIGN, BR)


# helpers decorated while TRITON_INTERPRET=1 run through Triton's interpreter (as the kernels calling them)
_INTERPRETED = type(output_block).__name__ == "InterpretedFunction"


def pow2_block(n: int, lo: int, hi: int) -> int:
    """The power of two ``>= n``, clamped to ``[lo, hi]``: a block size for ``n`` elements.

    Example:
        >>> pow2_block(140, 16, 64), pow2_block(3, 16, 64)
        (64, 16)
    """
    return max(lo, min(hi, triton.next_power_of_2(max(int(n), 1))))


def row_splits(R: int, n_tiles: int, BR: int, programs: int, blocks_per_split: int) -> int:
    """Splits of ``R`` rows over which a reduction's ``n_tiles`` output tiles are computed in parallel (partial
    sums added afterwards, deterministically): about ``programs`` programs in all, each with at least
    ``blocks_per_split`` blocks of ``BR`` rows; one under the interpreter."""
    if _INTERPRETED:
        return 1
    return max(1, min(-(-programs // n_tiles), triton.cdiv(R, blocks_per_split * BR)))


def stored_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a kernel stores an output of ``dtype`` in: float32 for bfloat16 under the interpreter, whose
    float32 -> bfloat16 conversion truncates (compiled kernels round to nearest even, as PyTorch does), then
    rounded by PyTorch; else ``dtype``.

    Example:
        >>> stored_dtype(torch.float16)
        torch.float16
    """
    return torch.float32 if _INTERPRETED and dtype == torch.bfloat16 else dtype


# ----------------------------------------------------------------------------- vmap rules
#
# The kernels see a time-major [T, M, features] tensor as T * M rows, every row of a step computed alike:
# a vmapped dimension (size V) of the time-major operand alone folds into M ([T, V * M, features], one call,
# where the T * V * M rows stay within MAX_ROWS); anything else vmapped (the weights, positions, taps, or
# parameter gradients, which sum over the rows of every sample) runs one call per vmapped slice.


def fold_rows(t: torch.Tensor, dim: int | None, n: int) -> torch.Tensor:
    """A ``[T, M, f]`` tensor per sample, vmapped (size ``n``) at ``dim`` of ``t`` (None: not vmapped,
    repeated), as one contiguous ``[T, n * M, f]`` tensor, the samples side by side in each step.

    Example:
        >>> t = torch.arange(12.0).view(2, 3, 2, 1)   # 2 samples of [T=3, M=2, f=1]
        >>> fold_rows(t, 0, 2)[:, :, 0].tolist()
        [[0.0, 1.0, 6.0, 7.0], [2.0, 3.0, 8.0, 9.0], [4.0, 5.0, 10.0, 11.0]]
    """
    t = t.unsqueeze(1).expand(t.shape[0], n, *t.shape[1:]) if dim is None else t.movedim(dim, 1)
    return t.reshape(t.shape[0], n * t.shape[2], t.shape[3]).contiguous()  # (no -1: empty tensors)


def unfold_rows(y: torch.Tensor, n: int) -> torch.Tensor:
    """The inverse of :func:`fold_rows`: ``[T, n * M, g] -> [T, n, M, g]`` (a view; the samples at dimension 1).

    Example:
        >>> t = torch.randn(2, 3, 4, 5)
        >>> torch.equal(unfold_rows(fold_rows(t, 0, 2), 2).movedim(1, 0), t)
        True
    """
    return y.view(y.shape[0], n, y.shape[1] // n, y.shape[2])


def _folds(t: torch.Tensor, dim: int | None, n: int) -> bool:
    """Whether ``n`` samples of ``t`` (vmapped at ``dim``) folded into one call stay within :data:`MAX_ROWS` rows."""
    return (t.numel() // (1 if dim is None else n) // max(t.shape[-1], 1)) * n <= MAX_ROWS


def vmap_delay_forward(fn: type[torch.autograd.Function], info: Any, in_dims: Sequence[Any],
                       args: Sequence[Any]) -> tuple[torch.Tensor, int]:
    """The vmap rule of a delay kernel's forward Function ``fn`` (``args[0]``: ``x [T, M, in]``, then the weights
    and options; one output ``[T, M, out]``): one call with ``x``'s vmapped dimension folded into ``M``
    (:func:`fold_rows`) when nothing else is vmapped (and the rows fit: :data:`MAX_ROWS`), else one call per slice
    (stacked parameters).

    Example:
        >>> class Scale(torch.autograd.Function):   # y = x * w, row by row as the delay kernels
        ...     @staticmethod
        ...     def forward(x, w):
        ...         return x * w
        ...     @staticmethod
        ...     def setup_context(ctx, inputs, output):
        ...         pass
        ...     @staticmethod
        ...     def vmap(info, in_dims, *args):
        ...         return vmap_delay_forward(Scale, info, in_dims, args)
        >>> x, w = torch.ones(4, 3, 2, 1), torch.tensor([2.0])
        >>> torch.func.vmap(Scale.apply, in_dims=(0, None))(x, w).shape
        torch.Size([4, 3, 2, 1])
        >>> torch.func.vmap(Scale.apply, in_dims=(None, 0))(x[0], torch.ones(5, 1)).shape   # by slices
        torch.Size([5, 3, 2, 1])
    """
    n = info.batch_size
    others_fixed = all(d is None for a, d in zip(args[1:], in_dims[1:]) if isinstance(a, torch.Tensor))
    if others_fixed and _folds(args[0], in_dims[0], n):  # (a non-tensor's in_dims: None, or a tuple of them)
        return unfold_rows(fn.apply(fold_rows(args[0], in_dims[0], n), *args[1:]), n), 1
    return vmap_by_slices(fn, info, in_dims, args)


def vmap_delay_backward(fn: type[torch.autograd.Function], info: Any, in_dims: Sequence[Any], args: Sequence[Any],
                        need_params: bool) -> tuple[tuple, tuple]:
    """The vmap rule of a delay kernel's backward Function ``fn``: ``args = (cfg, grad_y [T, M, out], x, *params)``
    -> ``(grad_x [T, M, in], *param grads)``. Where only ``grad_x`` is asked for (not ``need_params``) and no
    parameter is vmapped, one call with ``grad_y``'s vmapped dimension folded into ``M`` where the rows fit (``x`` is
    not read then: passed as it is); else one call per slice (a parameter gradient sums over every row of its sample).

    Example:
        >>> class ScaleBackward(torch.autograd.Function):   # (grad_x, grad_w) of y = x * w
        ...     @staticmethod
        ...     def forward(cfg, gy, x, w):
        ...         return gy * w, (gy * x).sum((0, 1)) if cfg else None
        ...     @staticmethod
        ...     def setup_context(ctx, inputs, output):
        ...         pass
        ...     @staticmethod
        ...     def vmap(info, in_dims, *args):
        ...         return vmap_delay_backward(ScaleBackward, info, in_dims, args, need_params=args[0])
        >>> gy, x, w = torch.ones(4, 3, 2, 1), torch.ones(3, 2, 1), torch.tensor([2.0])
        >>> torch.func.vmap(lambda g: ScaleBackward.apply(False, g, x, w)[0])(gy).shape   # folded
        torch.Size([4, 3, 2, 1])
        >>> torch.func.vmap(lambda g: ScaleBackward.apply(True, g, x, w)[1])(gy).tolist()   # by slices
        [[6.0], [6.0], [6.0], [6.0]]
    """
    cfg, gy, x, *params = args
    n = info.batch_size
    params_vmapped = any(d is not None for a, d in zip(params, in_dims[3:]) if isinstance(a, torch.Tensor))
    if need_params or params_vmapped or not _folds(gy, in_dims[1], n):
        return vmap_by_slices(fn, info, in_dims, args)
    gx = fn.apply(cfg, fold_rows(gy, in_dims[1], n), x, *params)[0]
    nones = (None,) * len(params)
    if gx is None:
        return (None,) + nones, (None,) + nones
    return (unfold_rows(gx, n),) + nones, (1,) + nones
