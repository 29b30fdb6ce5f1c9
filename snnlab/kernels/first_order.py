"""The time-loop kernels' backward passes are hand-written (no autograd graph), so they give first-order
gradients only, in reverse mode: :func:`refuse_higher_order` turns a request for more into a clear error, and
:func:`refuse_forward_mode` a forward-mode one (``jvp``, ``jacfwd``, ``hessian``, ``torch.autograd.forward_ad``)."""
from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any, NoReturn

import torch
import torch.autograd.forward_ad as _fwAD

try:  # PyTorch's private view of the torch.func transforms, where present
    from torch._C._functorch import TransformType as _TransformType
    from torch._C._functorch import get_unwrapped as _unwrapped
    from torch._C._functorch import is_functorch_wrapped_tensor as _is_wrapped
    from torch._C._functorch import maybe_get_level as _level
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters as _interpreters
except ImportError:  # pragma: no cover - another PyTorch layout: plain forward_ad duals are still found
    _TransformType = _interpreters = None


def transform_free(t: torch.Tensor) -> torch.Tensor:
    """``t``'s values without the wrappers of ``torch.func``'s transforms, for a check read back as a Python value
    (which ``vmap`` refuses on its batched tensors): under ``vmap``, every vmapped sample's values together; ``t``
    itself outside the transforms. The result carries no gradient: use it for decisions (which taps are active,
    which precision), never in the computation.

    Example:
        >>> torch.func.vmap(lambda t: t + transform_free(t).sum())(torch.ones(2, 3)).tolist()
        [[7.0, 7.0, 7.0], [7.0, 7.0, 7.0]]
    """
    if _interpreters is None:  # pragma: no cover - another PyTorch layout: no wrappers seen
        return t
    while _is_wrapped(t):
        t = _unwrapped(t)
    return t


def refuse_higher_order(name: str, grads: Iterable[Any] = ()) -> None:
    """Raise inside a custom ``backward`` when autograd records it (``create_graph=True``), or when one of ``grads``
    (the output gradients it got) carries a forward-mode tangent (:func:`forward_mode_inputs`: the ``jvp`` of a
    ``vjp``, dual ``grad_outputs``: a forward-over-reverse Hessian-vector product).

    A hand-written backward is not differentiable: without this check a gradient penalty, MAML or a
    Hessian-vector product through the layer would silently miss the layer's second-order terms (a compiled
    backward drops a tangent on its output gradient without a word).

    Example:
        >>> with torch.no_grad():   # a plain backward runs with grad mode off: nothing happens
        ...     refuse_higher_order("LIF")
        >>> refuse_higher_order("LIF")   # as under backward(create_graph=True)
        Traceback (most recent call last):
        ...
        RuntimeError: LIF: second-order gradients (create_graph=True: gradient penalties, MAML, Hessians) are not supported; its backward pass is hand-written and not differentiable
    """
    if torch.is_grad_enabled() or forward_mode_inputs(grads):
        raise RuntimeError(f"{name}: second-order gradients (create_graph=True: gradient penalties, MAML, Hessians) "
                           "are not supported; its backward pass is hand-written and not differentiable")


def refuse_double_backward(name: str) -> NoReturn:
    """The backward of a backward Function: always the error of :func:`refuse_higher_order` (a second-order
    gradient was asked for).

    Example:
        >>> refuse_double_backward("LI")
        Traceback (most recent call last):
        ...
        RuntimeError: LI: second-order gradients (create_graph=True: gradient penalties, MAML, Hessians) are not supported; its backward pass is hand-written and not differentiable
    """
    with torch.enable_grad():  # refuse_higher_order raises where autograd records, as here
        refuse_higher_order(name)
    raise AssertionError("unreachable")  # pragma: no cover


def first_order_backward(name: str) -> tuple[staticmethod, staticmethod]:
    """``setup_context`` and ``backward`` of an autograd Function that *is* a hand-written backward pass (so that
    ``torch.func`` can run it): it saves nothing, and differentiating it raises :func:`refuse_double_backward`.

    Example:
        >>> class DoubleBackward(torch.autograd.Function):
        ...     setup_context, backward = first_order_backward("Double")
        ...     @staticmethod
        ...     def forward(grad):
        ...         return 2 * grad
        >>> DoubleBackward.apply(torch.ones(2)).tolist()
        [2.0, 2.0]
    """
    def setup_context(ctx, inputs, output) -> None:
        return None

    def backward(ctx, *grads) -> NoReturn:
        refuse_double_backward(name)

    return staticmethod(setup_context), staticmethod(backward)


def forward_mode_inputs(tensors: Iterable[Any]) -> bool:
    """Whether forward-mode AD would carry a tangent through a function of ``tensors`` (non-tensors are skipped):
    one of them is a dual tensor of ``torch.autograd.forward_ad`` or has a tangent of an active ``torch.func.jvp``
    (``jacfwd``, ``hessian``: found as ``torch.func`` finds it, one transform after the other from the innermost).
    Free where no dual level is open (every forward-mode transform opens one).

    Example:
        >>> import torch.autograd.forward_ad as fwAD
        >>> x = torch.ones(2)
        >>> forward_mode_inputs([x, 0.5])
        False
        >>> with fwAD.dual_level():
        ...     forward_mode_inputs([fwAD.make_dual(x, torch.ones(2))]), forward_mode_inputs([x])
        (True, False)
        >>> bool(torch.func.jvp(lambda v: v * forward_mode_inputs([v]), (x,), (x,))[0].all())
        True
    """
    if getattr(_fwAD, "_current_level", 0) < 0:  # no dual level open: no forward mode at all
        return False
    tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
    if _interpreters is None:  # pragma: no cover - another PyTorch layout: the plain duals only
        return any(_fwAD.unpack_dual(t).tangent is not None for t in tensors)
    with contextlib.ExitStack() as lowered:
        for interpreter in reversed(_interpreters()):  # the innermost transform first
            level = interpreter.level()
            if interpreter.key() == _TransformType.Jvp and any(_fwAD.unpack_dual(t).tangent is not None
                                                                 for t in tensors):
                return True  # (a jvp's tangent is seen where that jvp is the innermost transform)
            tensors = [_unwrapped(t) if _is_wrapped(t) and _level(t) == level else t for t in tensors]
            lowered.enter_context(interpreter.lower())
        return any(_fwAD.unpack_dual(t).tangent is not None for t in tensors)  # torch.autograd.forward_ad's duals


def refuse_forward_mode(name: str, tensors: Iterable[Any]) -> None:
    """``NotImplementedError`` naming ``name`` (the layer and kernel) where forward-mode AD reaches a time-loop kernel
    through ``tensors`` (:func:`forward_mode_inputs`): its derivative is a hand-written backward pass, reverse mode
    only. Called by the kernels' entry points before their autograd Function (a ``jvp`` staticmethod on the
    Function would stop ``torch.compile`` from tracing it).

    Example:
        >>> refuse_forward_mode("LI", [torch.ones(2)])   # no forward mode here: nothing to refuse
        >>> torch.func.jacfwd(lambda v: refuse_forward_mode("LI", [v]))(torch.ones(2))
        Traceback (most recent call last):
        ...
        NotImplementedError: LI: forward-mode AD (torch.func.jvp / jacfwd / hessian, torch.autograd.forward_ad) is not supported; its derivative is a hand-written backward pass (reverse mode only): use backward(), torch.autograd.grad or torch.func.grad / vjp / jacrev (second-order gradients are not supported either)
    """
    if forward_mode_inputs(tensors):
        raise NotImplementedError(
            f"{name}: forward-mode AD (torch.func.jvp / jacfwd / hessian, torch.autograd.forward_ad) is not "
            "supported; its derivative is a hand-written backward pass (reverse mode only): use backward(), "
            "torch.autograd.grad or torch.func.grad / vjp / jacrev (second-order gradients are not supported either)")
