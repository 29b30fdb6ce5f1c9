"""A counter-based uniform RNG (integer hash of seed and element index).

Every backend (the PyTorch path, the C loop, the Triton kernels) draws the noise of noisy neurons from this hash,
so the same seed gives the same uniforms everywhere, and the same spikes except where the firing probability
``F((h - threshold) / sigma)`` rounds differently between the backends' CDFs (``erf`` / ``exp`` to float32 rounding):
a draw within that rounding of it can go the other way (inputs placed exactly on the boundary show such flips;
3.2 million ordinary seeded draws per noise type matched exactly in a differential test). Spike masking draws its keep mask from the same hash under another key
(:func:`mask_key`): masks are equal on every backend.

The counter is 32-bit (as in the kernels): within one call, element ``i`` and ``i + COUNTER_PERIOD`` get the
same number. Each call draws a fresh key, so only calls over more than ``2**32`` elements repeat draws
(:class:`snnlab.LIF` warns then).
"""
from __future__ import annotations

import functools
import math

import torch

_MASK32 = 0xFFFFFFFF
#: elements after which one call's draws repeat (the counter is 32-bit)
COUNTER_PERIOD = 2**32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """The 'lowbias32' integer hash on int64 tensors holding uint32 values (``x`` is overwritten)."""
    x.bitwise_xor_(x >> 16)
    x.mul_(0x7FEB352D).bitwise_and_(_MASK32)
    x.bitwise_xor_(x >> 15)
    x.mul_(0x846CA68B).bitwise_and_(_MASK32)
    x.bitwise_xor_(x >> 16)
    return x


def seed_key(seed: int) -> int:
    """Scramble a user seed into the 32-bit key XORed into every counter."""
    return int(_mix32(torch.tensor([(int(seed) + 0x9E3779B9) & _MASK32], dtype=torch.int64)).item())


def mask_key(seed: int) -> int:
    """The key of the spike-masking stream for ``seed``: another key than :func:`seed_key` gives the
    noise of the same seed, so a noisy neuron's draws and its mask draws are not the same numbers."""
    return seed_key(int(seed) + 0x6A09E667)


def keep_mask(start: int, shape: torch.Size, key: int, drop_p: float, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Spike-masking keep values (1 kept, 0 dropped) of ``shape``, for the elements with flat indices
    ``start, start + 1, ...``: ``uniform >= drop_p``, the uniform of :func:`uniform_from_counter` and
    ``drop_p`` compared in float32 (as the kernels do).

    Example:
        >>> keep = keep_mask(0, torch.Size([1000]), mask_key(0), 0.25)
        >>> 0.7 < keep.mean().item() < 0.8
        True
    """
    index = torch.arange(start, start + int(torch.Size(shape).numel()), device=device, dtype=torch.int64)
    # uniform = (hash >> 8) / 2**24 is exact in float32, so uniform >= float32(drop_p) exactly when
    # hash >= ceil(float32(drop_p) * 2**24) * 2**8 (integers, no float conversion)
    bound = math.ceil(float(torch.tensor(float(drop_p), dtype=torch.float32)) * 16777216.0) << 8
    return (_mix32(index.bitwise_and_(_MASK32).bitwise_xor_(key)) >= bound).to(dtype).view(shape)


def uniform_from_counter(index: torch.Tensor, key: int) -> torch.Tensor:
    """Uniform floats in [0, 1) from int64 element indices and a key from :func:`seed_key`."""
    x = _mix32((index & _MASK32).bitwise_xor_(key))
    return x.bitwise_right_shift_(8).to(torch.float32).mul_(1.0 / 16777216.0)


#: :func:`mask_key` of recent seeds: each LIF call with masks needs its key in the
#: forward and again in the backward (~25 us to derive)
cached_mask_key = functools.lru_cache(maxsize=64)(mask_key)
