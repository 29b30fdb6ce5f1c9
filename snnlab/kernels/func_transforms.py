"""``torch.func`` support shared by the time-loop Functions of every backend (LIF, LI, RecurrentLIF): their
``vmap`` rules (a vmapped dimension folded into the batch, or one call per slice), how a backward runs its
backward Function, and what ties it to the graph under the transforms.

The Functions are written as ``forward`` + ``setup_context`` (as ``torch.func`` requires) with their backward
pass as a Function of its own, so that ``grad`` / ``vjp`` / ``jacrev`` / ``vmap`` can run it; differentiating it
raises (:mod:`snnlab.kernels.first_order`), and so does forward mode (``jvp``, ``jacfwd``, ``hessian``), refused by the
kernels' entry points (:func:`~snnlab.kernels.first_order.refuse_forward_mode`).
"""
from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .counter_rng import cached_mask_key
from .first_order import forward_mode_inputs, refuse_double_backward, refuse_higher_order

__all__ = ["PARAM", "STEP", "TIME", "backward_cfg", "backward_runner", "check_vmap_randomness", "fixed_signature", "refuse_transforms",
           "graph_tie", "outside_transforms", "transforms_active", "under_vmap", "vmap_by_slices", "vmap_folded",
           "vmap_randomness"]

# Layouts of a Function's tensor arguments and outputs, for its vmap rule (None: not a tensor, passed as is):
PARAM = "param"  # beta / threshold: broadcastable to the step shape x.shape[1:]
TIME = "time"    # [L, *step]: time-major tensors, membrane checkpoints, the two count rows [2, *step]
STEP = "step"    # [*step]: one value per element of a step
_OUT_DIM = {TIME: 1, STEP: 0}


def transforms_active() -> bool:
    """Whether a ``torch.func`` transform (``grad``, ``vjp``, ``vmap``...) is active here (PyTorch's private test,
    cheap; True where this torch lacks it, the safe answer for what depends on it).

    Example:
        >>> transforms_active(), bool(torch.func.grad(lambda x: x * transforms_active())(torch.tensor(1.0)))
        (False, True)
    """
    return _ACTIVE()


_ACTIVE = getattr(torch._C, "_are_functorch_transforms_active", lambda: True)

try:  # PyTorch offers no public test of "inside vmap": its private one, where present
    from torch._C._functorch import TransformType as _TransformType
    from torch._functorch.pyfunctorch import retrieve_all_functorch_interpreters as _interpreters
except ImportError:  # pragma: no cover - another PyTorch layout: no vmap checks (a read-back then raises)
    _TransformType = _interpreters = None


def refuse_transforms(who: str, what: str) -> None:
    """``RuntimeError`` naming ``who`` (``what``: the kernel, in words) under ``torch.func`` transforms, for a Function
    without rules for them; the layers run their per-step autograd loop there instead.

    Example:
        >>> refuse_transforms("adaptive_lif", "fused adaptive LIF")   # outside transforms: nothing to refuse
    """
    if transforms_active():
        raise RuntimeError(f"{who}: torch.func transforms (grad, vjp, vmap, jacrev...) are not supported by the "
                           f"{what}; use the per-step loop (snnlab.core.step_loop.lif_step_loop) there")


def vmap_randomness() -> str | None:
    """The ``randomness`` of the innermost ``torch.func.vmap`` this runs in (``"error"``, ``"different"`` or
    ``"same"``), None outside vmap. Its batched tensors cannot be read back as a Python value, so the layers skip
    their value checks there.

    Example:
        >>> vmap_randomness(), torch.func.vmap(lambda x: x + (vmap_randomness() == "error"))(torch.ones(2)).tolist()
        (None, [2.0, 2.0])
    """
    if _interpreters is None or not transforms_active():  # (the cheap test first: no transform at all)
        return None
    modes = [i.randomness() for i in _interpreters() if i.key() == _TransformType.Vmap]
    return modes[-1] if modes else None


def under_vmap() -> bool:
    """Whether this runs inside ``torch.func.vmap`` (see :func:`vmap_randomness`)."""
    return vmap_randomness() is not None


def outside_transforms():
    """A context in which ``torch.func`` transforms do not apply (the private switch when present, else nothing):
    a layer's own random seeds are drawn there as plain numbers, also inside ``vmap(..., randomness="different")``."""
    switch = getattr(torch._C, "_DisableFuncTorch", None)
    return switch() if switch is not None else contextlib.nullcontext()


def fixed_signature(forward: Callable) -> Callable:
    """Give a Function's ``forward`` its signature once (``__signature__``): ``autograd.Function.apply`` binds the
    arguments to it at every call, and working it out each time (``inspect.signature``, tens of microseconds for
    a forward wrapped by ``torch.compiler.disable``) would cost as much as a small LIF call.

    Example:
        >>> inspect.signature(fixed_signature(lambda x, beta: x))
        <Signature (x, beta)>
    """
    forward.__signature__ = inspect.signature(forward)
    return forward


def backward_cfg(ctx: Any) -> tuple:
    """What a LIF backward Function takes of the options (``ctx.opts``) and of ``ctx.needs_input_grad``: ``(reset,
    detach_reset, max_spikes, surrogate, surrogate_param, mask_p, mask key, need_beta, need_thr)``.

    The mask key is derived here rather than in ``setup_context``, which ``torch.compile`` traces with the forward
    (the key's ``.item()`` would split its graph once more).
    """
    o = ctx.opts
    m_key = cached_mask_key(o.mask_seed) if o.mask_p > 0.0 else 0
    return (o.reset, bool(o.detach_reset), o.max_spikes, o.surrogate, float(o.surrogate_param), o.mask_p, m_key,
            bool(ctx.needs_input_grad[1]), bool(ctx.needs_input_grad[2]))


def graph_tie(out: torch.Tensor) -> torch.Tensor | None:
    """What a LIF Function saves of its output ``out`` for its backward Function: ``out`` itself under ``torch.func``
    (its transforms are active), where it ties the backward Function to the graph so that differentiating it
    raises instead of giving zeros; None elsewhere (no backward reads it: saving it would keep one more
    ``[T, B, ...]`` tensor). ``out`` where this torch lacks the private check.

    Example:
        >>> graph_tie(torch.ones(2)) is None   # no transform active
        True
    """
    return out if transforms_active() else None


def backward_runner(fn: type[torch.autograd.Function], name: str, saved: Sequence[torch.Tensor | None],
                    grads: Sequence[torch.Tensor | None] = ()) -> Callable:
    """How a LIF Function's backward runs its backward Function ``fn`` (``saved``: its saved tensors, ``grads``: the
    output gradients it got). Output gradients with a forward-mode tangent (``jvp`` of a ``vjp``, the
    forward-over-reverse Hessian-vector product) ask for a second-order gradient: refused
    (:func:`~snnlab.kernels.first_order.refuse_double_backward`).

    ``fn.apply`` where the backward may be differentiated later: under ``torch.func``, whose ``grad`` and ``vjp``
    always record the backward (its transforms are active, or ``saved`` are its wrappers); differentiating
    ``fn`` then raises. Elsewhere ``fn.forward`` itself (nothing records it: no Function overhead), after
    refusing ``create_graph=True`` right away (:func:`~snnlab.kernels.first_order.refuse_higher_order`).

    Example:
        >>> from snnlab.kernels.lif_torch import LIBackward
        >>> with torch.no_grad():   # a plain backward
        ...     backward_runner(LIBackward, "LI", [torch.ones(2)]) is LIBackward.forward
        True
    """
    if forward_mode_inputs(grads):
        refuse_double_backward(name)
    if transforms_active():
        return fn.apply
    if not torch.compiler.is_compiling() and any(
            t is not None and torch._C._functorch.is_functorch_wrapped_tensor(t) for t in saved):
        return fn.apply  # the function torch.func.vjp returns, called after the transform
    refuse_higher_order(name)
    return fn.forward


def _step_rank(args: Sequence[Any], in_dims: Sequence[Any], layouts: Sequence[str | None]) -> int:
    """Dimensions of one time step (per vmapped sample) of the first time-major tensor among ``args``."""
    for a, d, kind in zip(args, in_dims, layouts):
        if kind == TIME and isinstance(a, torch.Tensor):
            return a.dim() - (d is not None) - 1
    raise AssertionError("a LIF Function without a time-major tensor")  # pragma: no cover


def _fold(t: torch.Tensor, dim: int | None, kind: str, n: int, step_rank: int) -> torch.Tensor:
    """One argument with its vmapped dimension ``dim`` (size ``n``; None: not vmapped) moved to the first
    dimension of the step shape (expanded there when not vmapped; a parameter not vmapped broadcasts)."""
    if kind == PARAM:
        if dim is None:
            return t
        t = t.movedim(dim, 0)
        pad = step_rank - (t.dim() - 1)
        if pad < 0:
            raise ValueError(f"LIF under vmap: beta / threshold of shape {tuple(t.shape[1:])} per sample do not "
                             f"broadcast to a time step of {step_rank} dimensions")
        return t.reshape(t.shape[:1] + (1,) * pad + t.shape[1:])
    lead = 1 if kind == TIME else 0
    if dim is None:
        return t.unsqueeze(lead).expand(t.shape[:lead] + (n,) + t.shape[lead:])
    return t.movedim(dim, lead)


def _out_dims(out: Any, layouts: Sequence[str]) -> Any:
    if isinstance(out, torch.Tensor):
        return _OUT_DIM[layouts[0]]
    return tuple(None if o is None else _OUT_DIM[k] for o, k in zip(out, layouts))


def vmap_folded(fn: type[torch.autograd.Function], info: Any, in_dims: Sequence[Any], args: Sequence[Any],
                in_layouts: Sequence[str | None], out_layouts: Sequence[str]) -> tuple[Any, Any]:
    """The vmap rule of a LIF Function: one call of ``fn`` with the vmapped dimension (size ``V``) folded in
    front of the step shape, ``[T, B, ...] -> [T, V, B, ...]`` (LIF is elementwise across batch and neurons).

    The counter-based noise and spike masks are indexed by an element's position in that folded call, so
    sample ``v`` draws other numbers than a separate call on its slice would (as a batch of ``V * B``
    samples would); the same seed still gives the same result for the same vmapped call.
    ``in_layouts`` / ``out_layouts`` give each argument's and output's layout (:data:`TIME`, :data:`STEP`,
    :data:`PARAM`, None for a non-tensor).
    """
    n = info.batch_size
    rank = _step_rank(args, in_dims, in_layouts)
    folded = [a if kind is None or a is None else _fold(a, d, kind, n, rank)
              for a, d, kind in zip(args, in_dims, in_layouts)]
    out = fn.apply(*folded)
    return out, _out_dims(out, out_layouts)


def vmap_by_slices(fn: type[torch.autograd.Function], info: Any, in_dims: Sequence[Any],
                   args: Sequence[Any]) -> tuple[Any, Any]:
    """A vmap rule that calls ``fn`` on each vmapped slice and stacks the results (for a backward whose
    forward was not vmapped at this level, e.g. ``jacrev``: its counter-based masks were drawn per slice); ``fn``
    may return one tensor or a tuple of them (None where absent)."""
    def sliced(i: int) -> list[Any]:
        return [a.select(d, i) if isinstance(a, torch.Tensor) and d is not None else a for a, d in zip(args, in_dims)]
    outs = [fn.apply(*sliced(i)) for i in range(info.batch_size)]
    if isinstance(outs[0], torch.Tensor):
        return torch.stack(outs), 0
    stacked = tuple(None if o[0] is None else torch.stack(o) for o in zip(*outs))
    return stacked, tuple(None if o is None else 0 for o in stacked)


def check_vmap_randomness(info: Any, who: str, draws: bool) -> None:
    """``ValueError`` for ``vmap(..., randomness="same")`` over neurons that draw (noise or spike masks:
    ``draws``): the folded call (:func:`vmap_folded`) gives each sample its own draws."""
    if info.randomness == "same" and draws:
        raise ValueError(f"{who}: vmap(randomness='same') is not supported with noise or spike masking (the "
                         "vmapped samples are one call and draw different numbers); use randomness='different'")
