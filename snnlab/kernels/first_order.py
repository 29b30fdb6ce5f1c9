"""The time-loop kernels' backward passes are hand-written (no autograd graph), so they give first-order
gradients only; :func:`refuse_higher_order` turns a request for more into a clear error."""
from __future__ import annotations

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
