"""The Gaussian delay kernel of learnable delays (DCLS) as a plain tensor function.

The single source of truth for that formula: :mod:`snnlab.core.delays` re-exports it (its torch path
convolves with it), the "taps" Triton algorithm builds its tap tensor from it, and the "mma" Triton
kernels compute the same formula in registers, over the taps that matter in float32 (tested
against this one).
"""
from __future__ import annotations

import torch

__all__ = ["gaussian_delay_kernel", "two_sigma_squared"]


def gaussian_delay_kernel(positions: torch.Tensor, sigma: float, max_delay: int, tap_dim: int = -1) -> torch.Tensor:
    """Normalised Gaussian delay kernel ``G[..., k]`` for taps ``k = 0..max_delay-1``.

    ``G[..., k] = exp(-(k - p)^2 / (2 sigma^2)) / sum_k' exp(-(k' - p)^2 / (2 sigma^2))`` with
    ``p`` clamped to ``[0, max_delay - 1]``. Computed as a softmax, so it stays finite (a
    one-hot) when ``sigma`` is tiny: ``2 sigma^2`` is taken no smaller than the dtype's smallest normal
    number (``torch.finfo(dtype).tiny``), so the nearest tap's exponent (``(k - p)^2 <= 1/4``) never
    overflows; the kernel is already one-hot at that width (the nearest tap; two taps tie only at an
    exact midpoint, where they share the weight). Larger ``sigma`` is used as it is. ``tap_dim`` is
    where the new tap axis goes in the (contiguous) result: last by default, ``0`` gives
    ``[max_delay, *positions.shape]`` without a permuted copy.

    Example:
        >>> g = gaussian_delay_kernel(torch.tensor([1.0, 2.5]), sigma=0.5, max_delay=4)
        >>> tuple(g.shape), [round(float(s), 4) for s in g.sum(-1)], int(g[0].argmax())
        ((2, 4), [1.0, 1.0], 1)
        >>> tuple(gaussian_delay_kernel(torch.tensor([1.0, 2.5]), 0.5, 4, tap_dim=0).shape)
        (4, 2)
    """
    ndim = positions.dim() + 1
    if not -ndim <= tap_dim < ndim:
        raise ValueError(f"tap_dim must be in [{-ndim}, {ndim - 1}] for positions of shape "
                         f"{tuple(positions.shape)}, got {tap_dim}")
    dim = tap_dim % ndim
    p = positions.clamp(0.0, float(max_delay - 1)).unsqueeze(dim)
    tap_shape = [1] * ndim
    tap_shape[dim] = max_delay
    taps = torch.arange(max_delay, device=p.device, dtype=p.dtype).view(tap_shape)
    logits = -((taps - p) ** 2) / two_sigma_squared(sigma, p.dtype)
    return torch.softmax(logits, dim=dim)


def two_sigma_squared(sigma: float, dtype: torch.dtype) -> float:
    """``2 sigma^2``, at least the smallest normal number of ``dtype`` (the result's floating dtype): below it the
    division underflows, every exponent overflows to ``-inf`` and the softmax gives NaN instead of a one-hot."""
    floor = torch.finfo(dtype if dtype.is_floating_point else torch.get_default_dtype()).tiny
    return max(2.0 * float(sigma) ** 2, floor)
