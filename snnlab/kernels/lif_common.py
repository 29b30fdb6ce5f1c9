"""Argument checks and parameter reshaping shared by the fused LIF kernels (Triton and compiled CPU).

The fused kernels view ``x [T, B, ...]`` as ``[T, M]`` (``M`` elements per time step) and take
``beta`` / ``threshold`` expanded to ``[M]``; their per-element parameter gradients are summed
back to the parameters' shapes with :func:`reduce_to`.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from .neuron_choices import RESETS
from .surrogate_math import (CUSTOM_SURROGATES, NOISE_SURROGATES, SURROGATE_NAMES, check_builtin_surrogate,
                             check_known_surrogate)

# integer codes of the surrogates, as the kernels know them
SURROGATE_CODES = {name: i for i, name in enumerate(SURROGATE_NAMES)}


def reduce_to(grad: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Sum a broadcast gradient ``[B, ...]`` down to a parameter's shape.

    Example:
        >>> reduce_to(torch.ones(4, 3), torch.Size([3])).tolist()
        [4.0, 4.0, 4.0]
    """
    if grad.shape == shape:
        return grad
    if len(shape) == 0:
        return grad.sum()
    lead = grad.dim() - len(shape)
    g = grad.sum(dim=tuple(range(lead))) if lead > 0 else grad
    keep = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(dim=keep, keepdim=True) if keep else g


def check_reset(who: str, reset: str) -> None:
    """``ValueError`` naming ``who`` unless ``reset`` is ``"subtract"`` or ``"zero"``.

    Example:
        >>> check_reset("f", "substract")
        Traceback (most recent call last):
        ...
        ValueError: f: unknown reset 'substract'; choose 'subtract' or 'zero'
    """
    if not isinstance(reset, str) or reset not in RESETS:
        raise ValueError(f"{who}: unknown reset {reset!r}; choose 'subtract' or 'zero'")


def check_noise(who: str, noise: str | None) -> None:
    """``ValueError`` naming ``who`` unless ``noise`` is None or a noise density's name.

    Example:
        >>> check_noise("f", "uniform")
        Traceback (most recent call last):
        ...
        ValueError: f: unknown noise 'uniform'; choose one of ['gaussian', 'logistic']
    """
    if noise is not None and (not isinstance(noise, str) or noise not in NOISE_SURROGATES):
        raise ValueError(f"{who}: unknown noise {noise!r}; choose one of {list(NOISE_SURROGATES)}")


def _positive_number(who: str, what: str, value: Any) -> float:
    """``value`` as a float; ``TypeError`` naming ``who`` unless it is one real number, ``ValueError`` unless it is
    finite and > 0 (``what`` names it in the message)."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{who}: {what} must be a number, got {type(value).__name__} {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{who}: {what} must be a number, got {type(value).__name__} {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{who}: {what} must be a finite number > 0, got {value!r}")
    return v


def check_lif_options(who: str, reset: str, surrogate: str, surrogate_param: float, noise: str | None,
                      noise_scale: float) -> tuple[str, float]:
    """The checks every LIF kernel (PyTorch, compiled CPU, Triton; plain, adaptive and recurrent) makes of its
    options, with messages naming ``who``: a known ``reset`` and ``noise``, and a finite ``noise_scale > 0`` for a noisy
    neuron, else a known ``surrogate`` (built in, or registered) with a finite ``surrogate_param > 0`` (the checks of
    ``LIF(noise_scale=...)`` and :class:`~snnlab.core.surrogates.Surrogate`). Returns the surrogate the backward
    computes and its parameter: for a noisy neuron its noise density, of scale ``noise_scale``.

    Example:
        >>> check_lif_options("f", "zero", "atan", 2, None, 1), check_lif_options("f", "zero", "atan", 2, "logistic", 1)
        (('atan', 2.0), ('logistic', 1.0))
        >>> check_lif_options("f", "zero", "atan", 0.0, None, 0.3)
        Traceback (most recent call last):
        ...
        ValueError: f: surrogate 'atan': its parameter (surrogate_param) must be a finite number > 0, got 0.0
    """
    check_reset(who, reset)
    check_noise(who, noise)
    if noise is not None:
        return noise, _positive_number(who, "noise_scale", noise_scale)
    check_known_surrogate(who, surrogate)  # (a custom one not registered again here: says how)
    return surrogate, _positive_number(who, f"surrogate {surrogate!r}: its parameter (surrogate_param)",
                                       surrogate_param)


def check_fused_args(who: str, x: torch.Tensor, reset: str, surrogate: str, noise: str | None,
                     dtypes: tuple[torch.dtype, ...]) -> None:
    """Raise ``ValueError`` / ``TypeError`` naming ``who`` for options or inputs a fused kernel cannot take
    (``surrogate``: the one the backward computes, a noisy neuron's noise density)."""
    check_reset(who, reset)
    check_noise(who, noise)  # (before the surrogate, which is the noise's name for a noisy neuron)
    check_builtin_surrogate(who, surrogate)  # (checks it is known first; a noisy neuron's is its density: built in)
    if x.dtype not in dtypes:
        raise TypeError(f"{who} supports {[str(d) for d in dtypes]} inputs, got {x.dtype}: use backend='torch' or "
                        "'auto' (they take every floating dtype), or cast the input")
    if x.dim() < 1:
        raise ValueError(f"{who}: x must be time-major [T, B, ...]")


#: the largest ``max_spikes`` a kernel is handed (:func:`check_max_spikes`): an int64 a tensor comparison takes, far
#: above any sequence length, so a larger cap (which could not bind either) computes the same
MAX_SPIKES_CEILING = 2**62


def check_max_spikes(who: str, max_spikes: int | None) -> int | None:
    """``max_spikes`` as a plain int >= 0, or None: any integer (Python or NumPy, not a bool) is taken;
    ``ValueError`` naming ``who`` otherwise. A cap above :data:`MAX_SPIKES_CEILING` (more spikes than any sequence
    holds, so it never binds) is returned as that ceiling, which the kernels' comparisons take (``torch.lt`` with
    ``2**70`` or ``np.uint64(2**63)`` overflows).

    Example:
        >>> import numpy as np
        >>> check_max_spikes("f", np.int64(2)), check_max_spikes("f", None)
        (2, None)
        >>> check_max_spikes("f", 1.5)
        Traceback (most recent call last):
        ...
        ValueError: f: max_spikes must be None or an integer >= 0, got 1.5
    """
    if max_spikes is None:
        return None
    if isinstance(max_spikes, numbers.Integral) and not isinstance(max_spikes, bool) and max_spikes >= 0:
        return min(int(max_spikes), MAX_SPIKES_CEILING)
    raise ValueError(f"{who}: max_spikes must be None or an integer >= 0, got {max_spikes!r}")


#: the largest spike cap the kernels count exactly: they count spikes in float32 (the C loops, the Triton kernels, the
#: PyTorch path's ``count``), whose steps of 1 end at ``2**24`` (``16_777_216 + 1`` rounds back to it)
MAX_EXACT_SPIKE_COUNT = 2**24


def spike_cap_for_call(who: str, max_spikes: int | None, T: int) -> int | None:
    """The cap one call over ``T`` steps runs with: None (no cap) where ``max_spikes`` is None or ``>= T`` (a neuron
    fires at most once a step, so it cannot bind), else ``max_spikes``. ``ValueError`` naming ``who``, the cap and
    ``T`` for a cap above :data:`MAX_EXACT_SPIKE_COUNT` (``2**24``) that could bind (``T`` above it): the kernels
    count spikes in float32, which cannot count past ``2**24``, so that cap would not be honoured.

    Example:
        >>> spike_cap_for_call("LIF", 3, 50), spike_cap_for_call("LIF", 50, 50), spike_cap_for_call("LIF", None, 9)
        (3, None, None)
        >>> spike_cap_for_call("LIF", 2**24 + 1, 2**25)
        Traceback (most recent call last):
        ...
        ValueError: LIF: max_spikes=16777217 with T=33554432 steps cannot be honoured: spike counts are float32, exact up to 2**24 = 16777216; use a cap <= 16777216 or split the sequence
    """
    if max_spikes is None or max_spikes >= T:
        return None
    if max_spikes > MAX_EXACT_SPIKE_COUNT:
        raise ValueError(f"{who}: max_spikes={max_spikes} with T={T} steps cannot be honoured: spike counts are "
                         f"float32, exact up to 2**24 = {MAX_EXACT_SPIKE_COUNT}; use a cap <= "
                         f"{MAX_EXACT_SPIKE_COUNT} or split the sequence")
    return int(max_spikes)


def check_cap_and_params(who: str, x: torch.Tensor, max_spikes: int | None,
                         params: dict[str, torch.Tensor]) -> int | None:
    """``ValueError`` naming ``who`` unless ``max_spikes`` is None or an integer >= 0 (:func:`check_max_spikes`) and
    every parameter (``{name: tensor}``) broadcasts to one step of ``x``, ``x.shape[1:]``. Returns ``max_spikes`` as
    the call runs with (:func:`spike_cap_for_call`: a plain int, or None where it cannot bind in ``x``'s ``T`` steps;
    ``ValueError`` for a cap above ``2**24`` that could bind: float32 counts).

    Example:
        >>> check_cap_and_params("f", torch.zeros(3, 2, 4), 1, {"beta": torch.zeros(4)})
        1
        >>> check_cap_and_params("f", torch.zeros(3, 2, 4), None, {"beta": torch.zeros(3)})
        Traceback (most recent call last):
        ...
        ValueError: f: beta of shape (3,) does not broadcast to a step of x, (2, 4)
    """
    max_spikes = spike_cap_for_call(who, check_max_spikes(who, max_spikes), x.shape[0])
    step = x.shape[1:]
    for name, p in params.items():
        shape = p.shape
        # broadcasts to the step without growing it: each trailing size 1 or the step's (torch.broadcast_shapes
        # would say the same in ~15 us, and this runs at every LIF call; the common shapes, () and the step's
        # trailing sizes, take one comparison)
        lead = len(step) - len(shape)
        if lead < 0 or (shape != step[lead:] and not all(n == 1 or n == m for n, m in zip(shape, step[lead:]))):
            raise ValueError(f"{who}: {name} of shape {tuple(p.shape)} does not broadcast to a step of x, "
                             f"{tuple(x.shape[1:])}")
    return max_spikes


def lif_params(who: str, x: torch.Tensor, beta: torch.Tensor | float, threshold: torch.Tensor | float,
               max_spikes: int | None, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int | None]:
    """The ``beta``, ``threshold`` and ``max_spikes`` of a LIF kernel call (:func:`~snnlab.kernels.lif_torch.lif_torch` and the fused
    ones) as tensors, checked as the adaptive kernels check theirs (:func:`check_cap_and_params`): a number (Python or
    NumPy) becomes a tensor of ``dtype`` on ``x``'s device, a tensor is returned as it is; ``max_spikes`` as
    :func:`check_max_spikes` returns it (a plain int, or None). ``TypeError`` naming
    ``who`` for an ``x`` that is not a floating-point tensor and a parameter that is not a number or a tensor, ``ValueError`` for an
    ``x`` without a time dimension, a ``max_spikes`` that is not None or an int >= 0, and a parameter shape that does
    not broadcast to a step of ``x``. Looks at the metadata only (no device synchronisation).

    Example:
        >>> import numpy as np
        >>> beta, thr, cap = lif_params("f", torch.zeros(3, 2, 4), 0.5, torch.ones(4), np.int64(2), torch.float32)
        >>> beta, thr.shape, cap
        (tensor(0.5000), torch.Size([4]), 2)
        >>> lif_params("f", torch.zeros(3, 2, 4), 0.5, 1.0, -1, torch.float32)
        Traceback (most recent call last):
        ...
        ValueError: f: max_spikes must be None or an integer >= 0, got -1
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: x must be a time-major tensor [T, B, ...], got {type(x).__name__}")
    if x.dim() < 1:
        raise ValueError(f"{who}: x must be time-major [T, B, ...], got a 0-d tensor")
    if not x.is_floating_point():  # (an integer membrane would round the leak away: beta 0.5 -> 0)
        raise TypeError(f"{who}: x must be a floating-point tensor, got {x.dtype}; convert it first (x.float())")
    if not isinstance(beta, torch.Tensor):
        beta = _number_param(who, "beta", beta, x, dtype)
    if not isinstance(threshold, torch.Tensor):
        threshold = _number_param(who, "threshold", threshold, x, dtype)
    max_spikes = check_cap_and_params(who, x, max_spikes, {"beta": beta, "threshold": threshold})
    return beta, threshold, max_spikes


def _number_param(who: str, name: str, value: Any, x: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
    """A parameter given as a number (or a NumPy array / nested list of numbers) as a tensor of ``dtype`` on ``x``'s
    device (the default device for an ``x`` that is not a tensor, which the caller refuses); ``TypeError`` naming
    ``who`` and ``name`` for anything else."""
    if isinstance(value, (bool, str, bytes)) or value is None:
        raise TypeError(f"{who}: {name} must be a tensor or a real number, got {type(value).__name__} {value!r}")
    try:
        return torch.as_tensor(value, dtype=dtype, device=x.device if isinstance(x, torch.Tensor) else None)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{who}: {name} must be a tensor or a real number, got {type(value).__name__} "
                        f"{value!r}") from None


def check_mask_p(mask_p: float, name: str = "mask_p") -> float:
    """``mask_p`` as a float in ``[0, 1)`` (the probability of dropping a spike), else ``ValueError``.

    Any real number is taken (``numbers.Real``: Python and NumPy floats and ints), not a bool; ``name`` is the
    argument's name in the message.

    Example:
        >>> import numpy as np
        >>> check_mask_p(0.25), check_mask_p(np.float32(0.5))
        (0.25, 0.5)
    """
    if isinstance(mask_p, bool) or not isinstance(mask_p, numbers.Real):
        raise ValueError(f"{name} is the probability of dropping a spike and must be a number in [0, 1), got "
                         f"{type(mask_p).__name__} {mask_p!r}")
    if not 0 <= mask_p < 1:  # (compared as given: float() of a huge int would overflow)
        raise ValueError(f"{name} is the probability of dropping a spike and must lie in [0, 1), got {mask_p!r}")
    return float(mask_p)


def steps_and_width(x: torch.Tensor) -> tuple[int, int]:
    """``(T, M)``: time steps and elements per step of a time-major tensor."""
    return x.shape[0], math.prod(x.shape[1:])


ADAPTIVE_PARAMS = ("beta", "threshold", "rho", "strength")


def adaptive_param_tensors(who: str, x: torch.Tensor, dtype: torch.dtype,
                           params: Sequence[Any]) -> tuple[torch.Tensor, ...]:
    """The adaptive kernels' ``(beta, threshold, rho, strength)`` as tensors on ``x``'s device, converted as
    :func:`lif_params` converts a LIF's: a tensor keeps its dtype (its gradient comes back in it), a number (Python or
    NumPy) becomes a tensor of ``dtype`` (the dtype the kernel computes in: 0.9 is not first rounded to float32 for
    float64 ``x``); ``TypeError`` naming ``who`` and the parameter for a bool, a string or None.

    Example:
        >>> ps = adaptive_param_tensors("f", torch.zeros(2, 3), torch.float64, (0.9, torch.ones(3), 1, 0.5))
        >>> [p.dtype for p in ps]
        [torch.float64, torch.float32, torch.float64, torch.float64]
        >>> adaptive_param_tensors("f", torch.zeros(2, 3), torch.float32, (True, 1.0, 0.9, 0.1))
        Traceback (most recent call last):
        ...
        TypeError: f: beta must be a tensor or a real number, got bool True
    """
    device = x.device if isinstance(x, torch.Tensor) else None
    return tuple(torch.as_tensor(p, device=device) if isinstance(p, torch.Tensor) else
                 _number_param(who, name, p, x, dtype) for name, p in zip(ADAPTIVE_PARAMS, params))


def flat_param(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Expand a parameter broadcastable to ``x.shape[1:]`` to a contiguous float32 ``[M]``."""
    p = torch.as_tensor(p, device=x.device)
    return p.detach().to(torch.float32).expand(x.shape[1:]).contiguous().view(-1)


def expanded_from_one(t: torch.Tensor) -> bool:
    """Whether ``t`` is one number expanded (all strides 0, e.g. the gradient of ``sum()``); its data
    pointer then points at that number. Looks at the metadata only (no device synchronisation).

    Example:
        >>> expanded_from_one(torch.tensor(2.0).expand(3, 4)), expanded_from_one(torch.ones(2))
        (True, False)
    """
    return t.numel() > 0 and all(st == 0 for st in t.stride())


def constant_value(t: torch.Tensor) -> float | None:
    """The value of a tensor expanded from one number (see :func:`expanded_from_one`), else None.

    Example:
        >>> constant_value(torch.tensor(2.0).expand(3, 4)), constant_value(torch.ones(2))
        (2.0, None)
    """
    return float(t.reshape(-1)[0]) if expanded_from_one(t) else None


def noise_divisor(noise: str, noise_scale: float) -> float:
    """``u`` is divided by this before the noise CDF: ``sigma * sqrt(2)`` (gaussian, for erf) or ``sigma``."""
    return float(noise_scale) * math.sqrt(2.0) if noise == "gaussian" else float(noise_scale)


def param_grads(g_beta: torch.Tensor | None, g_thr: torch.Tensor | None, beta: torch.Tensor,
                threshold: torch.Tensor, step_shape: torch.Size) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-element ``[M]`` gradients of beta / threshold, summed to the parameters' shapes and dtypes."""
    gb = reduce_to(g_beta.view(step_shape), beta.shape).to(beta.dtype) if g_beta is not None else None
    gt = reduce_to(g_thr.view(step_shape), threshold.shape).to(threshold.dtype) if g_thr is not None else None
    return gb, gt


def adaptive_param_grads(grads: Sequence[torch.Tensor | None], steps: int, step_shape: torch.Size,
                         params: Sequence[tuple[torch.Size, torch.dtype]]) -> tuple[torch.Tensor | None, ...]:
    """The adaptive LIF's per-element ``[M]`` gradients of ``(beta, threshold, rho, strength)`` summed to the
    parameters' ``(shape, dtype)``; None for ``rho`` when ``steps == 1`` (the trace of the only step is never read, as
    the step loop gives) and where a gradient was not computed.

    Example:
        >>> meta = [(torch.Size([]), torch.float32)] * 4
        >>> [None if g is None else float(g) for g in adaptive_param_grads([torch.ones(3)] * 4, 1, (3,), meta)]
        [3.0, 3.0, None, 3.0]
    """
    grads = list(grads)
    if steps == 1:
        grads[2] = None
    return tuple(None if g is None else reduce_to(g.view(step_shape), shape).to(dtype)
                 for g, (shape, dtype) in zip(grads, params))


def keep_for_adaptive_backward(ctx: Any, saved: Sequence[torch.Tensor | None], opts: Any, x: torch.Tensor,
                               params: Sequence[torch.Tensor], h: torch.Tensor, theta: torch.Tensor) -> None:
    """What a fused adaptive-LIF Function (C or Triton) keeps for its backward: its ``saved`` tensors, ``opts``, the
    step shape and input dtype of ``x``, the ``(shape, dtype)`` of ``params`` (for :func:`adaptive_gradients`); the
    returned membrane ``h`` and threshold ``theta`` are not differentiable, and an absent output gradient stays None
    (no ``[T, ...]`` zeros)."""
    ctx.save_for_backward(*saved)
    ctx.opts, ctx.step, ctx.x_dtype = opts, x.shape[1:], x.dtype
    ctx.param_meta = tuple((p.shape, p.dtype) for p in params)
    ctx.mark_non_differentiable(h, theta)
    ctx.set_materialize_grads(False)


def adaptive_gradients(ctx: Any, grad_x: torch.Tensor, grads: Sequence[torch.Tensor | None],
                       steps: int) -> tuple[torch.Tensor | None, ...]:
    """A fused adaptive-LIF Function's backward result: ``grad_x`` in the input's dtype, the parameter gradients
    reduced to their shapes (:func:`adaptive_param_grads`), None for the options."""
    return (grad_x.to(ctx.x_dtype),) + adaptive_param_grads(grads, steps, ctx.step, ctx.param_meta) + (None,)


class LIFOptions(NamedTuple):
    """The options of one LIF call (the keyword arguments of :func:`lif_torch`), passed to the LIF Functions of every
    backend as one argument: ``autograd.Function.apply`` binds the arguments of its forward at every call, and a
    dozen of them would cost ~10 us more.

    Example:
        >>> LIFOptions("zero", False, None, "atan", 2.0, None, 0.3, 0, True, 0.0, 0).keep_membrane
        True
    """

    reset: str
    detach_reset: bool
    max_spikes: int | None
    surrogate: str
    surrogate_param: float
    noise: str | None
    noise_scale: float
    seed: int
    sample: bool
    mask_p: float
    mask_seed: int
    keep_membrane: bool = True

    def sampling(self) -> bool:
        """Whether the spikes are drawn (noisy neurons while sampling)."""
        return self.noise is not None and self.sample

    def draws(self) -> bool:
        """Whether the call draws random numbers (noise while sampling, or spike masks)."""
        return self.sampling() or self.mask_p > 0.0
