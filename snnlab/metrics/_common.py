"""Helpers shared by the metrics loops: eval mode, device, batch iteration."""
from __future__ import annotations

import contextlib
from typing import Iterable, Iterator

import torch
from torch import nn

from snnlab.data.loader_rng import same_randomness


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode under ``torch.no_grad``; restores each submodule's training flag afterwards."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in modes.items():
            m.training = flag


def resolve_device(model: nn.Module, device) -> torch.device:
    """``device`` if given, else the device of the model's first parameter or buffer, else the CPU."""
    if device is not None:
        return torch.device(device)
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def batches(loader: Iterable, max_batches: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x [T, B, ...], y [B])`` pairs from ``loader``, at most ``max_batches`` of them.

    The loader's random generators are restored afterwards (:func:`~snnlab.data.loader_rng.same_randomness`):
    every evaluation pass over a loader sees the same inputs (rate-encoded spikes included).
    """
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    with same_randomness(loader):
        yield from _checked_batches(loader, max_batches)


def _checked_batches(loader: Iterable, max_batches: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            return
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("the loader must yield (x [T, B, ...], y [B]) pairs")
        x, y = batch[0], batch[1]
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(f"x must be a time-major tensor [T, B, ...], got {getattr(x, 'shape', type(x))}")
        y = torch.as_tensor(y).long().view(-1)
        if y.numel() != x.shape[1]:
            raise ValueError(f"y has {y.numel()} labels but x has batch size {x.shape[1]} (x must be time-major [T, B, ...])")
        yield x, y


def model_output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run the model; a tuple/list output gives its first element (the time-major output)."""
    out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out
