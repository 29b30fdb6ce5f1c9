"""Surrogate-gradient and noise formulas as plain tensor functions.

These are the single source of truth for the maths; ``snnlab.core.surrogates`` wraps them
as named objects, and the Triton kernels implement the same formulas (tested against these).

For the sharpness surrogates the parameter is ``alpha`` (larger = sharper); for the noise
densities ("gaussian", "logistic") the parameter is the noise scale ``sigma``.
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Callable

import torch

SHARPNESS_SURROGATES = ("atan", "fast_sigmoid", "triangle", "sigmoid")
NOISE_SURROGATES = ("gaussian", "logistic")
SURROGATE_NAMES = SHARPNESS_SURROGATES + NOISE_SURROGATES

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

#: surrogates registered by users (``snnlab.surrogates.register``): ``{name: grad(u, param)}``. Only the
#: PyTorch path computes them; the fused kernels refuse them (:func:`check_builtin_surrogate`). Held per process: a
#: model saved with one keeps its name only (:func:`unknown_surrogate_message` says so where it is not registered).
CUSTOM_SURROGATES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {}


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


def unknown_surrogate_message(who: str | None, name: object) -> str:
    """The message for a surrogate ``name`` that is neither built in nor registered in this process: the names known
    here (with the closest one to a typo), and how a surrogate of your own becomes known again in a new process
    (a model saved with one keeps only its name). ``who`` starts it (``"who: unknown surrogate ..."``); None leaves
    that to a caller that adds its own name.

    Example:
        >>> msg = unknown_surrogate_message("f", "atna")
        >>> msg.split(";")[0], "(did you mean 'atan'?)" in msg, "register it again" in msg
        ("f: unknown surrogate 'atna'", True, True)
    """
    known = list(SURROGATE_NAMES) + list(CUSTOM_SURROGATES)
    close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    prefix = f"{who}: " if who else ""
    return (f"{prefix}unknown surrogate {name!r}; choose one of {known}{hint}. A surrogate of your own is known only "
            "to a process whose snnlab.surrogates.register added it: register it again (the same name and grad "
            "function) in a new process or worker before using a model saved with it")


def check_known_surrogate(who: str, name: object) -> None:
    """``ValueError`` (:func:`unknown_surrogate_message`, naming ``who``) unless ``name`` is a built-in surrogate or one
    registered in this process.

    Example:
        >>> check_known_surrogate("f", "triangle")
        >>> check_known_surrogate("f", "rect")
        Traceback (most recent call last):
        ...
        ValueError: f: unknown surrogate 'rect'; choose one of [...]. A surrogate of your own is known only to ...
    """
    if not isinstance(name, str) or (name not in SURROGATE_NAMES and name not in CUSTOM_SURROGATES):
        raise ValueError(unknown_surrogate_message(who, name))


def check_builtin_surrogate(who: str, name: str) -> None:
    """``ValueError`` unless ``name`` is a built-in surrogate, the only ones the fused kernels compute (a name
    unknown here gets :func:`unknown_surrogate_message`: a custom one not registered again in this process).

    Example:
        >>> check_builtin_surrogate("f", "atan")
        >>> check_builtin_surrogate("f", "rect")
        Traceback (most recent call last):
        ...
        ValueError: f: unknown surrogate 'rect'; choose one of [...]. A surrogate of your own is known only to ...
    """
    check_known_surrogate(who, name)
    if name in CUSTOM_SURROGATES:
        raise ValueError(f"{who}: surrogate {name!r} was registered with snnlab.surrogates.register; the fused "
                         "kernels compute the built-in surrogates only: use backend='torch' (or 'auto', which takes "
                         "it for custom surrogates)")


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
