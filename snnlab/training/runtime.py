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
    """``"auto"``/None -> cuda when available else cpu; a device that is not here (``"cuda"`` without a GPU, a GPU
    index past the last, ``"mps"`` without MPS, another backend such as ``"xpu"`` that cannot hold a tensor here) or
    a name that is no device raises a clear error.

    Example:
        >>> resolve_device("cpu"), resolve_device(torch.device("cpu"))
        (device(type='cpu'), device(type='cpu'))
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: device='gpu' is not a device name: use 'auto', 'cpu', 'cuda' or 'cuda:<index>'
    """
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = name if isinstance(name, torch.device) else torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={name!r} is not a device name: use 'auto', 'cpu', 'cuda' or 'cuda:<index>'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but CUDA is not available here; use device='cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(f"device={str(dev)!r} was requested but this machine has {torch.cuda.device_count()} CUDA "
                           f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device='mps' was requested but MPS is not available here; use device='cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda", "mps", "meta"):  # another backend ('xpu', 'hpu', ...): can it hold a tensor?
        try:
            torch.empty(0, device=dev)
        except Exception:  # (torch raises AssertionError, ModuleNotFoundError, NotImplementedError... by backend)
            raise RuntimeError(f"device={str(dev)!r} was requested but it is not available here; use device='cpu' "
                               "or 'auto'") from None
    return dev
