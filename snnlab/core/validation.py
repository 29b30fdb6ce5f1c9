"""Input checks shared by the core modules: clear errors that name the argument and the fix."""
from __future__ import annotations

import contextlib
import math
import numbers
import os
import sys

import numpy as np
import torch

from snnlab.kernels.func_transforms import under_vmap
from snnlab.kernels.lif_common import check_mask_p

_LIBRARY_DIRS = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                      for m in (sys.modules["snnlab"], torch))  # .../snnlab/ and .../torch/


def user_stacklevel() -> int:
    """The ``stacklevel`` of the first caller outside snnlab, torch and ``contextlib`` (a ``with eval_mode(...)``
    block enters there), for a warning raised in the caller of this function: it then points at the user's line,
    whichever snnlab entry point (or module hook) led there.

    Example:
        >>> user_stacklevel() >= 1
        True
    """
    level, frame = 1, sys._getframe(1)
    while frame is not None and (os.path.abspath(frame.f_code.co_filename).startswith(_LIBRARY_DIRS)
                                 or frame.f_code.co_filename == contextlib.__file__):
        frame, level = frame.f_back, level + 1
    return level


#: seeds are ints in ``[SEED_MIN, SEED_LIMIT)``, what ``torch.Generator.manual_seed`` takes (a negative ``s`` as
#: ``2**64 + s``: -1 is 2**64 - 1)
SEED_MIN, SEED_LIMIT = -(2**63), 2**64


def check_time_major(x: torch.Tensor, name: str, features: int | None = None, layer: str = "layer",
                     finite: bool = True) -> None:
    """Check that ``x`` is a time-major ``[T, B, ...]`` tensor of real numbers with finite values.

    Raises ``TypeError`` for non-tensors and complex tensors, and ``ValueError`` for wrong rank, a wrong feature
    size (with the ``permute`` that gives ``[T, B, N]`` when the features sit in another dimension of a 3-D
    tensor) or NaN/inf values (``finite=False`` skips that check for callers that detect non-finite values more
    cheaply themselves).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{layer}: {name} must be a torch.Tensor of shape [T, B, ...], got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{layer}: {name} has the complex dtype {x.dtype}, but the layer takes real values (its "
                        f"imaginary part would be dropped); pass x.real, x.abs() or both parts as separate features.")
    if x.dim() < 3:
        raise ValueError(f"{layer}: {name} must be time-major with at least 3 dimensions [T, B, features], got shape "
                         f"{tuple(x.shape)}: snnlab tensors are [time, batch, ...]. {_low_rank_hint(x.dim())}")
    if features is not None and x.shape[-1] != features:
        hint = _transposed_hint(tuple(x.shape), features)
        raise ValueError(
            f"{layer}: {name} has {x.shape[-1]} features in its last dimension but the layer expects "
            f"{features} (shape {tuple(x.shape)}, expected [T, B, {features}]).{hint}"
        )
    if finite and x.is_floating_point() and not all_finite(x):
        raise_non_finite(layer, name)


def _low_rank_hint(dim: int) -> str:
    """How to make a ``dim``-dimensional input (``dim < 3``) time-major: for 2-D, both readings of its dimensions
    (and that a step at a time starts each call from rest unless the neuron layers carry their state); for 1-D and
    0-D, the reshape.

    Example:
        >>> _low_rank_hint(0)
        'For one value use x.reshape(1, 1, 1).'
    """
    if dim == 2:
        return ("For one sample [T, F] use x.unsqueeze(1); for one time step of a batch [B, F] use x.unsqueeze(0), "
                "but each call is a whole sequence from rest, so calls one step at a time do not carry the membrane "
                "over unless the neuron layers carry it (carry_state=True, or snnlab.carrying_state(model)), and a "
                "DelayedLinear never carries its delayed input over: pass the whole sequence [T, B, F] in one call.")
    if dim == 1:
        return ("For the features of one step of one sample [F] use x.reshape(1, 1, -1); for one feature of one sample "
                "over time [T] use x.reshape(-1, 1, 1).")
    return "For one value use x.reshape(1, 1, 1)."


def _transposed_hint(shape: tuple[int, ...], features: int) -> str:
    """The hint for a 3-D input whose features sit in dimension 0 or 1 instead of the last: for each order of the
    two other dimensions (time before batch, then batch before time), the layout that is and the ``permute`` that
    makes it ``[T, B, N]``. Empty unless exactly one dimension has the size ``features`` (else where the features
    are is a guess).

    Example:
        >>> print(_transposed_hint((10, 5, 2), 5).strip().replace("; ", ";\\n"))
        The features (5) seem to be in dimension 1: for x laid out [T, N, B] use x.permute(0, 2, 1);
        for x laid out [B, N, T] (batch-first, channels before time) use x.permute(2, 0, 1). snnlab expects [T, B, N].
        >>> _transposed_hint((5, 5, 2), 5)
        ''
    """
    if len(shape) != 3 or shape.count(features) != 1:
        return ""
    dim = shape.index(features)
    first, second = (d for d in range(3) if d != dim)
    advice = []
    for time, batch in ((first, second), (second, first)):
        layout = ["?"] * 3
        layout[time], layout[batch], layout[dim] = "T", "B", "N"
        note = " (batch-first, channels before time)" if layout == ["B", "N", "T"] else ""
        advice.append(f"for x laid out [{', '.join(layout)}]{note} use x.permute({time}, {batch}, {dim})")
    return f" The features ({features}) seem to be in dimension {dim}: {'; '.join(advice)}. snnlab expects [T, B, N]."


def raise_non_finite(layer: str, name: str) -> None:
    """The error for a NaN/inf input."""
    raise ValueError(f"{layer}: {name} contains NaN or inf values; check the encoder or the previous layer.")


def all_finite(x: torch.Tensor) -> bool:
    """True when ``x`` has no NaN/inf, checked with one fast reduction (True under ``vmap``, where the values
    cannot be read back).

    The sum of a tensor is finite whenever all its values are (except for an overflow of huge
    values), so the exact element-wise check runs only when the sum is not finite: a full
    ``isfinite`` pass writes a bool tensor the size of ``x`` and costs ~15x a sum on the CPU.
    """
    if x.numel() == 0 or x.is_meta or under_vmap():  # meta tensors have no values to check
        return True
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if bool(torch.isfinite(torch.sum(x, dtype=acc))):
        return True
    return bool(torch.isfinite(x).all())


def as_number(value: float, name: str, layer: str = "layer") -> float:
    """``value`` as a float; ``TypeError`` naming the argument unless it is one number."""
    if isinstance(value, torch.Tensor) and value.numel() != 1:
        raise TypeError(
            f"{layer}: {name} must be one number, got a tensor of shape {tuple(value.shape)}. For one "
            f"(learnable) value per neuron pass a number and n_neurons=N, then set the values through "
            f"the layer's parameter or buffer."
        )
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"{layer}: {name} must be a number, got {type(value).__name__} {value!r}")
    if (isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real)) or (
            isinstance(value, torch.Tensor) and value.is_complex()):
        raise TypeError(f"{layer}: {name} must be a real number, got the complex {type(value).__name__} {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{layer}: {name} must be a number, got {type(value).__name__} {value!r}") from None


def is_integer(value: object) -> bool:
    """True for an integer of any kind (``int``, NumPy integers: ``numbers.Integral``) except ``bool``.

    Example:
        >>> import numpy as np
        >>> is_integer(3), is_integer(np.int64(3)), is_integer(True), is_integer(3.0)
        (True, True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def as_seed(value: int, layer: str = "layer", name: str = "seed", none_ok: bool = True) -> int:
    """``value`` as a Python int seed in ``[-2**63, 2**64)`` (what a ``torch.Generator`` takes): ``TypeError`` unless
    it is an int (not a bool), ``ValueError`` outside that range. ``none_ok``: whether the caller takes ``None`` (an
    unseeded stream; the caller handles it before this check), which the ``TypeError`` then offers.

    Example:
        >>> import numpy as np
        >>> as_seed(np.int64(7), "LIF")
        7
        >>> as_seed(None, "robustness_curve", none_ok=False)
        Traceback (most recent call last):
        ...
        TypeError: robustness_curve: seed must be an int, got NoneType None
    """
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point() \
            and not value.is_complex() and value.dtype != torch.bool:
        value = int(value)  # a 0-d integer tensor, as int() took it before
    if not is_integer(value):
        offer = " (or None for an unseeded stream)" if none_ok else ""
        raise TypeError(f"{layer}: {name} must be an int{offer}, got {type(value).__name__} {value!r}")
    if not SEED_MIN <= value < SEED_LIMIT:
        raise ValueError(f"{layer}: {name} must lie in [-2**63, 2**64) (a torch.Generator's seeds), got {value!r}")
    return int(value)


def as_drop_probability(value: float, name: str, layer: str = "layer") -> float:
    """``value``, the probability of dropping a spike, as a float in ``[0, 1)`` (any real number: Python or NumPy);
    ``ValueError`` naming the layer and the argument otherwise (the fused kernels' own check, with the layer's name).
    """
    try:
        return check_mask_p(value, name)
    except ValueError as exc:
        raise ValueError(f"{layer}: {exc}") from None


def check_positive(value: float, name: str, layer: str = "layer") -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0 (``TypeError`` unless it is one number)."""
    v = as_number(value, name, layer)
    if not (v > 0) or v != v or v == float("inf"):
        raise ValueError(f"{layer}: {name} must be a finite number > 0, got {value!r}")


def check_non_negative(value: float, name: str, layer: str = "layer") -> float:
    """``value`` as a float; ``TypeError`` unless it is one number (not a string or bool), ``ValueError``
    unless it is finite and ``>= 0``."""
    v = as_number(value, name, layer)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{layer}: {name} must be a finite number >= 0, got {value!r}")
    return v


#: the largest finite float32: the layers keep their parameters in float32 tensors
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def check_fits_float32(value: float, name: str, layer: str = "layer") -> None:
    """Raise ``ValueError`` when the finite number ``value`` is out of float32's range (it would become inf in a
    float32 tensor, or make ``torch.full`` fail); infinities and NaN are left to the caller's own checks.

    Example:
        >>> check_fits_float32(1e38, "threshold", "LIF")
        >>> check_fits_float32(1e39, "threshold", "LIF")
        Traceback (most recent call last):
        ...
        ValueError: LIF: threshold=1e+39 does not fit in float32 (at most 3.4e+38)
    """
    v = float(value)
    if FLOAT32_MAX < abs(v) < math.inf:
        raise ValueError(f"{layer}: {name}={v!r} does not fit in float32 (at most {FLOAT32_MAX:.3g})")


def as_flag(value: object, name: str, layer: str = "layer") -> bool:
    """``value`` as a bool: ``True`` / ``False`` (also NumPy's, and the ints 1 / 0); anything else (``"no"``,
    ``None``, ``0.5``) is a ``TypeError`` naming ``layer`` and ``name`` instead of a truth value taken silently.

    Example:
        >>> as_flag(True, "detach_reset", "LIF"), as_flag(0, "detach_reset", "LIF")
        (True, False)
        >>> as_flag("no", "detach_reset", "LIF")
        Traceback (most recent call last):
        ...
        TypeError: LIF: detach_reset must be True or False, got str 'no'
    """
    if isinstance(value, (bool, np.bool_)) or (is_integer(value) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{layer}: {name} must be True or False, got {type(value).__name__} {value!r}")


def check_choice(value: str, name: str, choices: tuple[str, ...] | list[str], layer: str = "layer") -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{layer}: unknown {name} {value!r}; choose one of {sorted(choices)}")
