"""Import Triton for snnlab's kernels, or fail with a message that says what to install.

Example:
    >>> from snnlab.kernels.triton_import import triton, tl  # doctest: +SKIP
"""
from __future__ import annotations

try:
    import triton
    import triton.language as tl
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "snnlab's Triton kernels (snnlab.kernels.lif_triton, snnlab.kernels.delays_triton) need the 'triton' "
        "package, which is not installed. Install it (pip install 'snnlab[gpu]' or pip install triton) "
        "or use backend='torch'."
    ) from exc

__all__ = ["triton", "tl"]
