"""The arithmetic of a run's forward passes (the config's ``precision``): float32, or bfloat16 under
``torch.autocast``."""
from __future__ import annotations

import contextlib

import torch

from snnlab.kernels.dispatch import is_ampere_or_newer

from .config import PRECISIONS

__all__ = ["forward_precision", "check_precision"]


def _check_name(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be {' or '.join(repr(p) for p in PRECISIONS)}, got {precision!r}")


def check_precision(precision: str, device: torch.device) -> None:
    """Raise ``ValueError`` when ``device`` cannot run ``precision``.

    Example:
        >>> check_precision("bfloat16", torch.device("cpu"))
        >>> check_precision("float16", torch.device("cpu"))
        Traceback (most recent call last):
        ...
        ValueError: precision must be 'float32' or 'bfloat16', got 'float16'
    """
    _check_name(precision)
    if (precision == "bfloat16" and device.type == "cuda"
            and not is_ampere_or_newer(torch.cuda.get_device_capability(device))):
        raise ValueError(f"precision='bfloat16': the GPU {torch.cuda.get_device_name(device)} has no bfloat16 "
                         "arithmetic (it needs NVIDIA Ampere or newer, compute capability 8.0); use "
                         "precision='float32'")


def forward_precision(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a forward pass (and its loss) runs in: nothing for ``"float32"``, ``torch.autocast`` to
    bfloat16 on ``device``'s type for ``"bfloat16"`` (whether the device can: :func:`check_precision`, once). Run
    the backward pass outside it.

    Example:
        >>> lin = torch.nn.Linear(3, 2)
        >>> with forward_precision("bfloat16", torch.device("cpu")):
        ...     y = lin(torch.ones(4, 3))
        >>> y.dtype, lin.weight.dtype
        (torch.bfloat16, torch.float32)
    """
    _check_name(precision)  # (the device was checked once, by check_precision: not at every step)
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
