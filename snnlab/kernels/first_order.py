"""The time-loop kernels' backward passes are hand-written (no autograd graph), so they give first-order
gradients only; :func:`refuse_higher_order` turns a request for more into a clear error."""
from __future__ import annotations

from typing import NoReturn

import torch


def refuse_higher_order(name: str) -> None:
    """Raise inside a custom ``backward`` when autograd records it (``create_graph=True``).

    A hand-written backward is not differentiable: without this check a gradient penalty, MAML or a
    Hessian-vector product through the layer would silently miss the layer's second-order terms.

    Example:
        >>> with torch.no_grad():   # a plain backward runs with grad mode off: nothing happens
        ...     refuse_higher_order("LIF")
        >>> refuse_higher_order("LIF")   # as under backward(create_graph=True)
        Traceback (most recent call last):
        ...
        RuntimeError: LIF: second-order gradients (create_graph=True: gradient penalties, MAML, Hessians) are not supported; its backward pass is hand-written and not differentiable
    """
    if torch.is_grad_enabled():
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
