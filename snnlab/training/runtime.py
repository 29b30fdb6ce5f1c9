"""A run's process-wide setup: the seed of every global random generator, and the device to train on.

Example:
    >>> seed_everything(3); a = torch.rand(2)
    >>> seed_everything(3); bool((torch.rand(2) == a).all())
    True
    >>> resolve_device("cpu")
    device(type='cpu')
"""
from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["seed_everything", "resolve_device"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> cuda when available else cpu; ``"cuda"`` without a GPU raises a clear error."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but CUDA is not available here; use device='cpu' or 'auto'")
    return dev
