"""The names a neuron layer's formula options take, without torch: its reset and its surrogate gradient (the built-in
ones and those registered in this process), with their checks.

:mod:`snnlab.kernels.surrogate_math` (the formulas), :mod:`snnlab.kernels.lif_common`, :mod:`snnlab.core.neurons` and
:class:`snnlab.training.ExperimentConfig` (whose allowed values they are, listed by ``snnlab train --help`` without
importing torch) take them from here.

Example:
    >>> RESETS, SURROGATE_NAMES[:2]
    (('subtract', 'zero'), ('atan', 'fast_sigmoid'))
"""
from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: what a neuron does to its membrane after a spike: subtract the threshold, or set it to zero
RESETS = ("subtract", "zero")

SHARPNESS_SURROGATES = ("atan", "fast_sigmoid", "triangle", "sigmoid")
NOISE_SURROGATES = ("gaussian", "logistic")
SURROGATE_NAMES = SHARPNESS_SURROGATES + NOISE_SURROGATES
#: each surrogate's parameter when none is given (the sharpness ``alpha``; the noise scale ``sigma`` of "gaussian"
#: and "logistic"): what the functional LIFs take for ``surrogate_param=None`` (:func:`snnlab.kernels.dispatch.surrogate_param_or_default`)
#: and ``snnlab.surrogates.get(name)`` and the layers take; ``snnlab.surrogates.register`` adds the user's own.
SURROGATE_DEFAULTS: dict[str, float] = {"atan": 2.0, "fast_sigmoid": 10.0, "triangle": 1.0, "sigmoid": 4.0,
                                        "gaussian": 0.3, "logistic": 0.3}

#: surrogates registered by users (``snnlab.surrogates.register``): ``{name: grad(u, param)}``. Only the
#: PyTorch path computes them; the fused kernels refuse them (:func:`check_builtin_surrogate`). Held per process: a
#: model saved with one keeps its name only (:func:`unknown_surrogate_message` says so where it is not registered).
CUSTOM_SURROGATES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {}


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
