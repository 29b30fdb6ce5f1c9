"""Choose the LIF backend: the PyTorch reference loop or the fused Triton kernels.

``"torch"`` always works; ``"triton"`` needs Triton plus a CUDA device (or ``TRITON_INTERPRET=1``
to run the kernels on CPU tensors through Triton's interpreter, for testing) and raises a
:class:`RuntimeError` saying what is missing otherwise - never a silent fallback; ``"auto"``
picks Triton on CUDA tensors when it is installed, else PyTorch.
"""
from __future__ import annotations

import importlib.util
import os

import torch

BACKENDS = ("auto", "torch", "triton")


def triton_available() -> bool:
    """Whether the ``triton`` package can be imported."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        return False


def triton_interpret_enabled() -> bool:
    """Whether ``TRITON_INTERPRET`` is set to a true value (Triton's CPU interpreter)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "yes", "on")


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """Return ``"torch"`` or ``"triton"`` for ``backend`` in ``("auto", "torch", "triton")``.

    Example:
        >>> resolve_backend("auto", torch.device("cpu"))
        'torch'
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    device = torch.device(device)
    if backend == "torch":
        return "torch"
    is_cuda = device.type == "cuda"
    if backend == "auto":
        return "triton" if is_cuda and triton_available() else "torch"
    # backend == "triton": explicit request, fail loudly if it cannot run
    if not triton_available():
        raise RuntimeError(
            "backend='triton' was requested but the 'triton' package is not installed. "
            "Install it (pip install 'snnlab[gpu]' or pip install triton), or use backend='torch' / 'auto'.")
    if not (is_cuda or triton_interpret_enabled()):
        raise RuntimeError(
            f"backend='triton' was requested for a tensor on device '{device}', but the Triton kernels need "
            "a CUDA device. Move the model and data to CUDA, use backend='torch' / 'auto', or (for CPU "
            "testing only) set the environment variable TRITON_INTERPRET=1 before importing triton.")
    return "triton"


def lif(x: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, backend: str = "auto", **kw):
    """Multi-step LIF on the backend chosen by :func:`resolve_backend`; returns ``(spikes, membrane)``.

    Keyword arguments are those of :func:`snnlab.kernels.lif_torch.lif_torch`.

    Example:
        >>> s, h = lif(torch.ones(5, 1, 2), torch.tensor(0.5), torch.tensor(1.5), backend="torch")
        >>> s[:, 0, 0].tolist()
        [0.0, 1.0, 0.0, 1.0, 0.0]
    """
    if resolve_backend(backend, x.device) == "triton":
        from .lif_triton import lif_triton
        return lif_triton(x, beta, threshold, **kw)
    from .lif_torch import lif_torch
    return lif_torch(x, beta, threshold, **kw)
