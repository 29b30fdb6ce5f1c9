"""Choose the implementation of a time loop: the PyTorch path or the fused Triton kernels."""
from __future__ import annotations

import torch

BACKENDS = ("auto", "torch", "triton")


def pick_lif_impl(backend: str, device: torch.device):
    """Return the ``lif`` function (``lif_torch`` signature) for ``backend`` on ``device``.

    ``"triton"`` that cannot run raises ``RuntimeError`` (no silent fallback).
    """
    from snnlab.kernels.lif_torch import lif_torch

    if backend == "torch":
        return lif_torch
    try:
        from snnlab.kernels.dispatch import resolve_backend
    except ImportError:  # pragma: no cover - kernels not built in this install
        if backend == "triton":
            raise RuntimeError("backend='triton' requested but snnlab's Triton kernels are not available") from None
        return lif_torch
    if resolve_backend(backend, device) == "triton":
        from snnlab.kernels.lif_triton import lif_triton

        return lif_triton
    return lif_torch
