"""Surrogate-gradient and noise formulas as plain tensor functions.

These are the single source of truth for the maths; ``snnlab.core.surrogates`` wraps them
as named objects, and the Triton kernels implement the same formulas (tested against these).

For the sharpness surrogates the parameter is ``alpha`` (larger = sharper); for the noise
densities ("gaussian", "logistic") the parameter is the noise scale ``sigma``.
"""
from __future__ import annotations

import math

import torch

# the names, the registry of custom surrogates and their checks live torch-free in neuron_choices (re-exported here)
from .neuron_choices import (CUSTOM_SURROGATES, NOISE_SURROGATES, SHARPNESS_SURROGATES, SURROGATE_NAMES,  # noqa: F401
                             check_builtin_surrogate, check_known_surrogate, unknown_surrogate_message)

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def surrogate_grad(name: str, u: torch.Tensor, param: float) -> torch.Tensor:
    """Pseudo-derivative ``dS/du`` of the spike ``S = H(u)`` at ``u = h - threshold``."""
    if name == "atan":
        return (param / 2.0) / (1.0 + (math.pi / 2.0 * param * u) ** 2)
    if name == "fast_sigmoid":
        return 1.0 / (param * u.abs() + 1.0) ** 2
    if name == "triangle":
        return param * torch.clamp(1.0 - param * u.abs(), min=0.0)
    if name == "sigmoid":
        sg = torch.sigmoid(param * u)
        return param * sg * (1.0 - sg)
    if name == "gaussian":
        z = u / param
        return torch.exp(-0.5 * z * z) * (_INV_SQRT_2PI / param)
    if name == "logistic":
        sg = torch.sigmoid(u / param)
        return sg * (1.0 - sg) / param
    if name in CUSTOM_SURROGATES:
        return CUSTOM_SURROGATES[name](u, param)
    raise ValueError(unknown_surrogate_message("surrogate_grad", name))


def surrogate_grad_(name: str, u: torch.Tensor, param: float) -> torch.Tensor:
    """In-place :func:`surrogate_grad`: overwrites the scratch tensor ``u`` with ``dS/du`` and returns it.

    The CPU backward uses it on reused chunk buffers (no allocation per chunk); the common
    surrogates are a chain of in-place ops, the others copy the out-of-place result.
    """
    if name == "atan":
        k = math.pi / 2.0 * param
        # 1 / (2/param + (2 k^2 / param) u^2): one fused multiply-add, then the reciprocal
        return torch.addcmul(u.new_tensor(2.0 / param), u, u, value=k * k * 2.0 / param, out=u).reciprocal_()
    if name == "fast_sigmoid":
        return u.abs_().mul_(param).add_(1.0).square_().reciprocal_()
    if name == "triangle":
        return u.abs_().mul_(-param * param).add_(param).clamp_(min=0.0)
    return u.copy_(surrogate_grad(name, u, param))


def noise_cdf(name: str, u: torch.Tensor, sigma: float) -> torch.Tensor:
    """Firing probability ``F(u / sigma)`` of a noisy neuron (F the noise CDF)."""
    if name == "gaussian":
        return 0.5 * (1.0 + torch.erf(u / (sigma * math.sqrt(2.0))))
    if name == "logistic":
        return torch.sigmoid(u / sigma)
    raise ValueError(f"unknown noise {name!r}; choose one of {list(NOISE_SURROGATES)}")
