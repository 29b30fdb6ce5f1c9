"""Blocks and row splits shared by the Triton kernels of :class:`~snnlab.core.delays.DelayedLinear` (the
"mma" kernels of :mod:`snnlab.kernels.delays_triton`, the "taps" ones of
:mod:`snnlab.kernels.delay_taps_triton`): which output block a program computes, how many taps reach
inside the sequence from it, block sizes, and how a reduction over rows is split across programs.
"""
from __future__ import annotations

import torch

from .triton_import import tl, triton

__all__ = ["taps_reaching_rows", "output_block", "pow2_block", "row_splits", "stored_dtype"]


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
