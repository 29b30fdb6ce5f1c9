"""Import Triton for snnlab's kernels, or fail with a message that says what to install.

Example:
    >>> from snnlab.kernels.triton_import import triton, tl  # doctest: +SKIP
"""
from __future__ import annotations

import functools
import re

try:
    import triton
    import triton.language as tl
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "snnlab's Triton kernels (snnlab.kernels.lif_triton, snnlab.kernels.delays_triton) need the 'triton' "
        "package, which is not installed. Install it (pip install 'snnlab[gpu]' or pip install triton) "
        "or use backend='torch'."
    ) from exc



def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


@functools.lru_cache(maxsize=1)
def interpreter_problem() -> str | None:
    """Why Triton's CPU interpreter (``TRITON_INTERPRET=1``) cannot run snnlab's kernels here, or None.

    Triton before 3.7 turns a kernel's scalar arguments into one-element NumPy arrays and their ``range()``
    into ``int(array)``, which recent NumPy refuses for arrays that are not 0-dimensional: every kernel with
    a time loop fails inside the interpreter. (Compiled for a GPU, those Triton versions are fine.)

    Example:
        >>> interpreter_problem() is None or "triton>=3.7" in interpreter_problem()  # doctest: +SKIP
        True
    """
    import numpy

    if _version(triton.__version__) >= (3, 7):
        return None
    try:
        int(numpy.zeros(1))
    except TypeError:
        return (f"Triton {triton.__version__}'s CPU interpreter (TRITON_INTERPRET=1) cannot run snnlab's kernels "
                f"with NumPy {numpy.__version__}: it converts one-element arrays to ints, which this NumPy refuses. "
                "Install triton>=3.7 (or an older NumPy) to test the kernels on the CPU, or run them on a "
                "CUDA device.")
    return None


__all__ = ["triton", "tl", "interpreter_problem"]
