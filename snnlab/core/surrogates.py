"""Named surrogate gradients for the spike non-linearity, with a registry.

Each surrogate is a small object with a ``name``, one shape parameter and ``grad(u)``, the
pseudo-derivative used in place of the Heaviside step's derivative at ``u = h - threshold``.
The formulas live in :mod:`snnlab.kernels.surrogate_math` (shared with the fused kernels).

=================  ==========================================================  ===============
name               pseudo-derivative                                           parameter
=================  ==========================================================  ===============
``atan``           ``(alpha/2) / (1 + (pi/2 * alpha * u)^2)``                   alpha = 2.0
``fast_sigmoid``   ``1 / (alpha * |u| + 1)^2``                                  alpha = 10.0
``triangle``       ``alpha * max(0, 1 - alpha * |u|)``                          alpha = 1.0
``sigmoid``        ``alpha * sig(alpha u) * (1 - sig(alpha u))``                alpha = 4.0
``gaussian``       Normal density of scale sigma (noisy neurons, NSNN)          sigma = 0.3
``logistic``       Logistic density of scale sigma (noisy neurons, NSNN)        sigma = 0.3
=================  ==========================================================  ===============

Your own: :func:`register` a name with its pseudo-derivative ``grad(u, param)`` (tried once on a test input: it must
give finite values of ``u``'s shape). The PyTorch path computes it (``backend="auto"`` takes that path for it); the
fused kernels compute the built-in ones only and refuse it. ``ExperimentConfig(surrogate=...)`` takes it too, once
registered in that process; the command line and the dashboard offer the built-in names.

Example:
    >>> import torch, snnlab as sl
    >>> sg = sl.surrogates.get("fast_sigmoid", alpha=25.0)
    >>> float(sg.grad(torch.tensor(0.0)))
    1.0
    >>> sorted(sl.surrogates.available())[:2]
    ['atan', 'fast_sigmoid']
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from snnlab.kernels.neuron_choices import SURROGATE_DEFAULTS
from snnlab.kernels.surrogate_math import (CUSTOM_SURROGATES, NOISE_SURROGATES, SURROGATE_NAMES, surrogate_grad,
                                          unknown_surrogate_message)

from .validation import check_positive


@dataclass(frozen=True)
class Surrogate:
    """A surrogate gradient: ``name`` (a registry key) and its shape parameter ``param``."""

    name: str
    param: float
    description: str = ""

    def __post_init__(self) -> None:
        if self.name not in REGISTRY:
            raise ValueError(unknown_surrogate_message(None, self.name))
        if not float(self.param) > 0:
            raise ValueError(f"surrogate {self.name!r}: its parameter must be > 0, got {self.param!r}")

    @property
    def is_custom(self) -> bool:
        """True for a surrogate added with :func:`register` (computed by the PyTorch path only)."""
        return self.name in CUSTOM_SURROGATES

    @property
    def is_noise(self) -> bool:
        """True for the noise densities used by noisy neurons."""
        return self.name in NOISE_SURROGATES

    def grad(self, u: torch.Tensor) -> torch.Tensor:
        """Pseudo-derivative of the spike at ``u = h - threshold``."""
        return surrogate_grad(self.name, u, float(self.param))


_DESCRIPTIONS = {
    "atan": "arctangent (SpikingJelly-style), alpha sets the sharpness",
    "fast_sigmoid": "fast sigmoid / SuperSpike, 1/(alpha|u|+1)^2",
    "triangle": "triangle of half-width 1/alpha and unit area",
    "sigmoid": "derivative of sigmoid(alpha u)",
    "gaussian": "Gaussian noise density of scale sigma (noisy neurons)",
    "logistic": "logistic noise density of scale sigma (noisy neurons)",
}
# name -> (default parameter, one-line description); the dashboard lists these. The defaults are the kernels'
# (snnlab.kernels.neuron_choices.SURROGATE_DEFAULTS, which the functional LIFs take for surrogate_param=None).
REGISTRY: dict[str, tuple[float, str]] = {name: (SURROGATE_DEFAULTS[name], text)
                                          for name, text in _DESCRIPTIONS.items()}


def register(name: str, grad: Callable[[torch.Tensor, float], torch.Tensor], default: float,
             description: str = "") -> None:
    """Add your own surrogate: ``grad(u, param)`` returns the pseudo-derivative at ``u = h - threshold`` (a tensor
    like ``u``), ``default`` its parameter when none is given. Registering a name again replaces it; the built-in
    names cannot be replaced. :class:`snnlab.LIF` layers use it on the PyTorch path (``backend="auto"`` takes that
    path for them, ``"cpu"`` and ``"triton"`` refuse it).

    ``grad`` is tried once here, with ``param = default``, on a test input ``u`` of shape ``[2, 3, 4]`` holding values
    from -1.5 to 1.375 (0 included, the threshold): it must return a finite floating-point tensor of ``u``'s shape on
    ``u``'s device (any float precision; it may overwrite ``u``), or ``ValueError`` names the surrogate and what is
    wrong (``TypeError`` when calling it fails with one).

    Configurations: ``ExperimentConfig(surrogate=name)`` takes a name registered in this process as well as the built-in
    ones, whenever ``snnlab.training`` was imported, so ``Trainer``, sweeps and run folders use it; the choices
    offered by the command line and the dashboard (processes of their own, where it is not registered) and by the
    config forms are the built-in names only. A run saved with it names it only: register it again (the same name
    and ``grad``) in the process that resumes it or loads its model, else they refuse it with that hint. The same
    holds for a sweep's workers: the default process pool starts new ("spawn") processes, whose runs fail with that
    hint unless the ``register`` call sits at the top level of the script or of a module they import (not under
    ``if __name__ == "__main__":``, nor only in a notebook cell); ``executor=thread_pool()`` runs the points here.

    Example:
        >>> import torch, snnlab as sl
        >>> sl.surrogates.register("rectangle", lambda u, a: (u.abs() < 0.5 / a).to(u.dtype) * a, 1.0)
        >>> lif = sl.LIF(surrogate="rectangle", backend="auto")
        >>> x = torch.full((3, 1, 1), 0.9, requires_grad=True)
        >>> lif(x).sum().backward(); x.grad.flatten().tolist()   # u = 0.9 - 1 at step 0 is inside the rectangle
        [1.0, 0.0, 0.0]
        >>> sl.surrogates.register("inverse", lambda u, a: a / u.abs(), 1.0)
        Traceback (most recent call last):
        ...
        ValueError: register: surrogate 'inverse': grad(u, param) with param=1 returned inf at 1 of 24 test points (u = 0); ...
        >>> sl.surrogates.unregister("rectangle")
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"register: name must be a non-empty string, got {name!r}")
    if name in SURROGATE_NAMES:
        raise ValueError(f"register: {name!r} is a built-in surrogate; choose another name")
    if not callable(grad):
        raise TypeError(f"register: grad must be a function grad(u, param), got {type(grad).__name__}")
    check_positive(default, "the default parameter", "register")
    _check_grad(name, grad, float(default))
    CUSTOM_SURROGATES[name] = grad
    SURROGATE_DEFAULTS[name] = float(default)  # (the functional LIFs' surrogate_param=None)
    REGISTRY[name] = (float(default), description or f"custom surrogate {name!r}")


def _test_input() -> torch.Tensor:
    """The ``u`` :func:`register` tries a ``grad`` on: shape ``[2, 3, 4]`` (distinct sizes, so a flattened or permuted
    result shows), values -1.5 to 1.375 in steps of 1/8 around the threshold, both signs, 0 included."""
    return torch.arange(-12, 12, dtype=torch.get_default_dtype()).div_(8.0).reshape(2, 3, 4)


def _check_grad(name: str, grad: Callable[[torch.Tensor, float], torch.Tensor], param: float) -> None:
    """``ValueError`` (``TypeError`` when the call fails with one) naming surrogate ``name`` unless ``grad(u, param)``
    on :func:`_test_input` is a finite floating-point tensor of ``u``'s shape on ``u``'s device."""
    u = _test_input()
    shape, device, where = tuple(u.shape), u.device, f"grad(u, param) with param={param:g}"
    try:
        with torch.no_grad():
            out = grad(u.clone(), param)  # (a clone: an in-place grad may overwrite it)
    except Exception as e:  # (its own bug: say which surrogate, keep the original as the cause)
        kind = TypeError if isinstance(e, TypeError) else ValueError
        raise kind(f"register: surrogate {name!r}: {where} raised {type(e).__name__}: {e} (on a test input u of "
                   f"shape {list(shape)}, values {float(u.min()):g} to {float(u.max()):g})") from e
    prefix = f"register: surrogate {name!r}: {where}"
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"{prefix} must return a tensor of u's shape, got {type(out).__name__}")
    if tuple(out.shape) != shape:
        raise ValueError(f"{prefix} must return a tensor of u's shape {list(shape)} (one value per element), got "
                         f"shape {list(out.shape)}")
    if out.device != device:
        raise ValueError(f"{prefix} must return a tensor on u's device ({device}), got one on {out.device}")
    if not out.dtype.is_floating_point:
        raise ValueError(f"{prefix} must return a floating-point tensor (e.g. convert with .to(u.dtype)), got "
                         f"{out.dtype}")
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        n_nan, n_inf = int(torch.isnan(out).sum()), int(torch.isinf(out).sum())
        what = " and ".join(f"{kind} at {n}" for kind, n in (("NaN", n_nan), ("inf", n_inf)) if n)
        shown = ", ".join(f"{v:g}" for v in u[bad].flatten()[:4].tolist()) + (", ..." if int(bad.sum()) > 4 else "")
        raise ValueError(f"{prefix} returned {what} of {out.numel()} test points (u = {shown}); a pseudo-derivative "
                         "must be finite wherever u may be (training with it would turn the weights into NaN)")


def unregister(name: str) -> None:
    """Remove a surrogate added with :func:`register` (``ValueError`` for a built-in or unknown name)."""
    if name not in CUSTOM_SURROGATES:
        raise ValueError(f"unregister: {name!r} is not a registered custom surrogate "
                         f"(custom ones: {sorted(CUSTOM_SURROGATES)})")
    del CUSTOM_SURROGATES[name]
    del SURROGATE_DEFAULTS[name]
    del REGISTRY[name]


def available() -> list[str]:
    """Names of all registered surrogates."""
    return list(REGISTRY)


def describe() -> dict[str, str]:
    """``{name: description}`` for every registered surrogate."""
    return {k: v[1] for k, v in REGISTRY.items()}


def get(name: str | Surrogate, alpha: float | None = None, sigma: float | None = None) -> Surrogate:
    """Build a surrogate by name (``alpha`` for sharpness ones, ``sigma`` for noise ones).

    Passing a :class:`Surrogate` returns it unchanged. The keyword that does not apply to ``name``, given
    alone, is refused rather than silently ignored (given both, the one that applies is taken).

    Example:
        >>> get("gaussian", sigma=0.5).param
        0.5
        >>> get("atan", sigma=5.0)
        Traceback (most recent call last):
        ...
        ValueError: surrogate 'atan' takes alpha (its sharpness), not sigma
    """
    if isinstance(name, Surrogate):
        return name
    if not isinstance(name, str):
        raise TypeError(f"surrogate must be a name or a Surrogate, got {type(name).__name__}")
    if name not in REGISTRY:  # (a typo, or a surrogate of your own not registered again in this process)
        raise ValueError(unknown_surrogate_message(None, name))
    default, description = REGISTRY[name]
    noise = name in NOISE_SURROGATES
    param, other = (sigma, alpha) if noise else (alpha, sigma)
    if other is not None and param is None:
        right, wrong = ("sigma (its noise scale)", "alpha") if noise else ("alpha (its sharpness)", "sigma")
        raise ValueError(f"surrogate {name!r} takes {right}, not {wrong}")
    return Surrogate(name, float(default if param is None else param), description)


def ATan(alpha: float = 2.0) -> Surrogate:
    """Arctangent surrogate."""
    return get("atan", alpha=alpha)


def FastSigmoid(alpha: float = 10.0) -> Surrogate:
    """Fast-sigmoid (SuperSpike) surrogate."""
    return get("fast_sigmoid", alpha=alpha)


def Triangle(alpha: float = 1.0) -> Surrogate:
    """Triangle surrogate."""
    return get("triangle", alpha=alpha)


def Sigmoid(alpha: float = 4.0) -> Surrogate:
    """Sigmoid-derivative surrogate."""
    return get("sigmoid", alpha=alpha)


def GaussianNoise(sigma: float = 0.3) -> Surrogate:
    """Gaussian noise density (the surrogate of Gaussian noisy neurons)."""
    return get("gaussian", sigma=sigma)


def LogisticNoise(sigma: float = 0.3) -> Surrogate:
    """Logistic noise density (the surrogate of logistic noisy neurons)."""
    return get("logistic", sigma=sigma)
