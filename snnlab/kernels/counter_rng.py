"""A counter-based uniform RNG (integer hash of seed and element index).

Both the PyTorch path and the Triton kernel draw the noise of noisy neurons from this hash,
so the same seed gives the same spikes on every backend and device.
"""
from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """The 'lowbias32' integer hash on int64 tensors holding uint32 values."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    x = x ^ (x >> 16)
    return x


def seed_key(seed: int) -> int:
    """Scramble a user seed into the 32-bit key XORed into every counter."""
    return int(_mix32(torch.tensor([(int(seed) + 0x9E3779B9) & _MASK32], dtype=torch.int64)).item())


def uniform_from_counter(index: torch.Tensor, key: int) -> torch.Tensor:
    """Uniform floats in [0, 1) from int64 element indices and a key from :func:`seed_key`."""
    x = _mix32((index & _MASK32) ^ key)
    return (x >> 8).to(torch.float32) * (1.0 / 16777216.0)
