"""Activation checkpointing that replays seeded noise and spike masks.

``torch.utils.checkpoint`` frees a block's activations in the forward pass and recomputes them in the
backward. It restores torch's global random generators for the recomputation, but not the generators of
seeded snnlab layers (``sl.LIF(noise=..., seed=...)``, ``sl.LIF(mask_p=..., seed=...)``, ``sl.SpikeMask(seed=...)``):
the recomputed block would draw other noise and masks than the forward and give wrong gradients. Such a
recomputation raises a ``RuntimeError``; :func:`activation_checkpoint` (or :func:`seeded_stream_contexts` as
the ``context_fn`` of ``torch.utils.checkpoint.checkpoint``) replays the draws, so the gradients are those of
the same block without checkpointing. Unseeded layers draw from torch's global generators, which
``torch.utils.checkpoint`` already replays.

The recomputation also leaves the running statistics of batch norm layers alone (``snnlab.TimeBatchNorm``, any
``torch.nn`` batch or instance norm tracking them, ``num_batches_tracked`` included): the forward updated them
once, and a recomputing block updating them again would count every training step twice. Its layers update scratch
copies instead, so after forward and backward the model is the plain call's, buffers bit for bit.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, ContextManager

from torch import nn
from torch.nn.modules.batchnorm import _NormBase
from torch.utils.checkpoint import checkpoint

from .random_stream import StreamRegion, recording_streams, replaying_streams

__all__ = ["activation_checkpoint", "seeded_stream_contexts"]

ContextPair = tuple[ContextManager, ContextManager]


def seeded_stream_contexts(context_fn: Callable[[], ContextPair] | None = None) -> ContextPair:
    """The ``(forward, recomputation)`` context managers that make ``torch.utils.checkpoint`` replay the draws
    of seeded snnlab layers: pass it as ``context_fn`` (non-reentrant checkpointing only). The recomputation leaves
    the running statistics of batch norm layers as the forward left them (:class:`kept_running_stats`).
    ``context_fn`` wraps another context function's pair inside these (e.g.
    ``functools.partial(seeded_stream_contexts, mine)``).

    Example:
        >>> import torch, snnlab as sl
        >>> from torch.utils.checkpoint import checkpoint
        >>> lif = sl.LIF(noise="gaussian", noise_scale=0.5, seed=0)
        >>> x = torch.randn(10, 2, 4, requires_grad=True)
        >>> y = checkpoint(lif, x, use_reentrant=False, context_fn=sl.seeded_stream_contexts)
        >>> y.sum().backward()
    """
    region = StreamRegion()
    forward, recompute = _checked_pair(context_fn) if context_fn is not None else (contextlib.nullcontext(),
                                                                                   contextlib.nullcontext())
    return _Nested(recording_streams(region), forward), _Nested(replaying_streams(region), kept_running_stats(),
                                                                 recompute)


def _checked_pair(context_fn: Callable[[], ContextPair]) -> ContextPair:
    """``context_fn()``, checked to be two context managers (``TypeError`` naming what it gave otherwise)."""
    if not callable(context_fn):
        raise TypeError(f"seeded_stream_contexts: context_fn must be callable, got {type(context_fn).__name__}")
    pair = context_fn()
    if not (isinstance(pair, tuple) and len(pair) == 2
            and all(hasattr(c, "__enter__") and hasattr(c, "__exit__") for c in pair)):
        raise TypeError("seeded_stream_contexts: context_fn must return a (forward, recomputation) pair of context "
                        f"managers, got {pair!r}")
    return pair


class _Nested:
    """``with first, second, ...:`` as one context manager, entered again at each recomputation (a second
    backward pass with ``retain_graph=True`` recomputes again)."""

    def __init__(self, *contexts: ContextManager) -> None:
        self.contexts = contexts
        self._stacks: list[contextlib.ExitStack] = []

    def __enter__(self) -> None:
        with contextlib.ExitStack() as stack:
            for context in self.contexts:
                stack.enter_context(context)
            self._stacks.append(stack.pop_all())

    def __exit__(self, *exc: Any) -> bool:
        return bool(self._stacks.pop().__exit__(*exc))


class kept_running_stats:  # noqa: N801 - used like a function: ``with kept_running_stats():``
    """Within the block, batch norm layers (any ``torch.nn`` batch or instance norm, :class:`~snnlab.TimeBatchNorm`)
    called in training by this thread update scratch copies of their running statistics (``running_mean``,
    ``running_var``, ``num_batches_tracked``) and get their own back, untouched, at the end: what activation
    checkpointing's recomputation runs in (reusable; nested blocks each put back what they swapped).

    Example:
        >>> import torch, snnlab as sl
        >>> bn = sl.TimeBatchNorm(3)
        >>> with kept_running_stats():
        ...     y = bn(torch.randn(5, 2, 3))
        >>> int(bn.num_batches_tracked), bool(bn.running_mean.eq(0).all())
        (0, True)
    """

    def __init__(self) -> None:
        self._frames: list[tuple[Any, dict[nn.Module, dict[str, Any]]]] = []

    def __enter__(self) -> None:
        thread, swapped = threading.get_ident(), {}

        def scratch_stats(module: nn.Module, args: Any) -> None:
            if (isinstance(module, _NormBase) and module.training and module.track_running_stats
                    and module not in swapped and threading.get_ident() == thread):
                own = {name: t for name, t in module._buffers.items() if t is not None and name in _RUNNING_STATS}
                swapped[module] = own
                module._buffers.update({name: t.clone() for name, t in own.items()})

        # (a global hook, only while a recomputation runs: the block may be any function, not only a module)
        handle = nn.modules.module.register_module_forward_pre_hook(scratch_stats)
        self._frames.append((handle, swapped))

    def __exit__(self, *exc: Any) -> None:
        handle, swapped = self._frames.pop()
        handle.remove()
        for module, own in swapped.items():
            module._buffers.update(own)


_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


def activation_checkpoint(function: Callable[..., Any], *args: Any, preserve_rng_state: bool = True,
                          context_fn: Callable[[], ContextPair] | None = None, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` without keeping its activations for the backward pass: the backward
    recomputes them (``torch.utils.checkpoint.checkpoint`` with ``use_reentrant=False``), replaying the noise
    and spike masks of seeded snnlab layers, so the gradients equal those of the plain call. The recomputation
    leaves batch norm running statistics alone (:class:`kept_running_stats`): the forward updated them once, as
    the plain call does. Trades compute (one more forward of ``function``) for memory: for long sequences,
    checkpoint each layer or block.

    ``preserve_rng_state`` (torch's global generators, for unseeded layers), ``context_fn`` (wrapped inside
    snnlab's contexts) and checkpoint's own keywords (``determinism_check``, ``early_stop``) are passed on to
    ``torch.utils.checkpoint.checkpoint``; other keywords go to ``function``. ``torch.func`` transforms cannot
    differentiate through it (checkpointing uses saved-tensor hooks, which they refuse).

    Example:
        >>> import torch, snnlab as sl
        >>> block = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(noise="gaussian", noise_scale=0.3, seed=0))
        >>> x = torch.randn(20, 2, 4)
        >>> y = sl.activation_checkpoint(block, x)
        >>> y.sum().backward()
        >>> block[0].weight.grad.shape
        torch.Size([8, 4])
    """
    if not callable(function):
        raise TypeError(f"activation_checkpoint: function must be callable, got {type(function).__name__}")
    if kwargs.get("debug"):
        raise TypeError("activation_checkpoint: debug=True is not available (torch's checkpoint debug mode takes no "
                        "context_fn, and replaying seeded layers needs one)")
    if kwargs.pop("use_reentrant", False):
        raise TypeError("activation_checkpoint: use_reentrant=True is not an option (reentrant checkpointing has no "
                        "context_fn, so it cannot replay seeded layers); call torch.utils.checkpoint.checkpoint "
                        "directly for it")
    return checkpoint(function, *args, use_reentrant=False, preserve_rng_state=preserve_rng_state,
                      context_fn=lambda: seeded_stream_contexts(context_fn), **kwargs)
