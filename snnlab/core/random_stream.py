"""Layers with a random stream of their own: a seeded layer keeps its generator's state in its state dict, and
replays its draws when activation checkpointing recomputes it (:mod:`snnlab.core.activation_checkpoint`)."""
from __future__ import annotations

import threading
import warnings

import torch
from torch import nn

__all__ = ["RandomStream", "RNG_STATE_KEY", "StreamRegion", "recording_streams", "replaying_streams",
           "draws_in_backward", "in_recomputation"]

#: the state-dict entry (after the layer's prefix) that holds a seeded layer's generator state
RNG_STATE_KEY = "_rng_state"


class RandomStream(nn.Module):
    """A layer whose random draws come from its own ``self._generator`` (a CPU ``torch.Generator``) when seeded,
    from torch's global generators when ``self._generator`` is None.

    A seeded layer's state dict carries the generator's state (``<prefix>_rng_state``, a uint8 tensor,
    not a parameter or buffer: ``.to()`` / ``.half()`` leave it alone and optimisers never see it), so a
    run resumed from a saved state dict continues the stream where it stopped instead of replaying it
    from the seed. Loading:

    - a saved stream into a seeded layer replaces its stream, whatever seed the layer was built with;
    - a state without one (an unseeded layer's, or one saved before snnlab kept the stream) loads, also
      with ``strict=True``, and leaves the layer's stream where it is (a fresh layer: at its seed);
    - a saved stream into an unseeded layer is ignored with a ``UserWarning``: being seeded is the layer's
      configuration, so it keeps drawing from torch's global generators.

    An unseeded layer's state dict keys are the same as without this class. ``copy.deepcopy`` and
    pickling copy the generator with the layer.

    Example:
        >>> import torch, snnlab as sl
        >>> a, b = sl.SpikeMask(0.5, seed=0), sl.SpikeMask(0.5, seed=1)
        >>> _ = a(torch.ones(4, 1, 3))
        >>> list(a.state_dict()), list(sl.SpikeMask(0.5).state_dict())
        (['_rng_state'], [])
        >>> _ = b.load_state_dict(a.state_dict())
        >>> torch.equal(a(torch.ones(4, 1, 3)), b(torch.ones(4, 1, 3)))
        True
    """

    _generator: torch.Generator | None

    def _stream(self) -> torch.Generator | None:
        """The generator to draw this call's randomness from (None: torch's global one). Call it right before
        drawing: inside :func:`~snnlab.core.activation_checkpoint.activation_checkpoint` it records the stream's
        state (forward) or rewinds it to the recorded one (recomputation), and a recomputation that cannot
        replay raises instead of silently drawing other noise."""
        generator = self._generator
        if generator is not None:
            _prepare_draw(self, generator)
        return generator

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._generator is not None:
            destination[prefix + RNG_STATE_KEY] = self._generator.get_state()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        key = prefix + RNG_STATE_KEY
        saved = state_dict.get(key)
        if key in state_dict and self._generator is not None:
            problem = self._rng_state_problem(key, saved)
            if problem:  # reported as PyTorch reports a bad tensor; the layer changes nothing
                error_msgs.append(problem)
                return
        errors_before = len(error_msgs)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if key in unexpected_keys:
            unexpected_keys.remove(key)  # ours, handled here (strict loads included)
        if key not in state_dict or len(error_msgs) > errors_before:
            return
        if self._generator is None:
            warnings.warn(f"{type(self).__name__} {prefix.rstrip('.') or '(root)'}: the loaded state holds a seeded "
                          "layer's random stream, but this layer is unseeded: it is ignored (the layer keeps drawing "
                          "from torch's global generator; build it with a seed to continue the stream)",
                          UserWarning, stacklevel=4)
            return
        self._generator.set_state(saved.detach().to("cpu", copy=True).contiguous())

    def _rng_state_problem(self, key: str, saved: object) -> str | None:
        """PyTorch-style message when ``saved`` cannot be this layer's generator state, else None."""
        own = self._generator.get_state()
        if not isinstance(saved, torch.Tensor):
            return (f'While copying the random generator state named "{key}", expected a torch.Tensor from the '
                    f"checkpoint but received {type(saved)}")
        if saved.dtype != own.dtype or saved.shape != own.shape:
            return (f"{type(self).__name__}: {key} is not a CPU generator state: expected a {own.dtype} tensor of "
                    f"shape {tuple(own.shape)}, got a {saved.dtype} tensor of shape {tuple(saved.shape)}")
        try:  # the bytes must make a valid state too (tried on a scratch generator: the layer's stays as it is)
            torch.Generator().set_state(saved.detach().to("cpu", copy=True).contiguous())
        except RuntimeError as e:
            return f"{type(self).__name__}: {key} is not a valid CPU generator state ({e})"
        return None


# ----------------------------------------------------------------------------- activation checkpointing
class StreamRegion:
    """The seeded streams' states at their first draw inside one checkpointed call: recorded while the call
    runs forward, replayed each time activation checkpointing recomputes it (see
    :func:`~snnlab.core.activation_checkpoint.seeded_stream_contexts`).

    Example:
        >>> import torch, snnlab as sl
        >>> mask, region = sl.SpikeMask(0.5, seed=0), StreamRegion()
        >>> with recording_streams(region):
        ...     a = mask(torch.ones(5, 1, 4))
        >>> with replaying_streams(region):
        ...     b = mask(torch.ones(5, 1, 4))
        >>> torch.equal(a, b), len(region.states)
        (True, 1)
    """

    def __init__(self) -> None:
        self.states: dict[RandomStream, torch.Tensor] = {}


class _Replay:
    """One recomputation of a region: the streams it rewound, with the states to put back afterwards."""

    def __init__(self, region: StreamRegion) -> None:
        self.region = region
        self.resume: dict[RandomStream, torch.Tensor] = {}


_local = threading.local()  # .stack: the regions open in this thread, outermost first


def _open_regions() -> list[StreamRegion | _Replay]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


class recording_streams:  # noqa: N801 - used like a function: ``with recording_streams(region):``
    """Record into ``region`` the state of every seeded stream at its first draw inside the block (reusable)."""

    def __init__(self, region: StreamRegion) -> None:
        self.region = region

    def __enter__(self) -> StreamRegion:
        _open_regions().append(self.region)
        return self.region

    def __exit__(self, *exc: object) -> None:
        _open_regions().remove(self.region)


class replaying_streams:  # noqa: N801 - used like a function: ``with replaying_streams(region):``
    """Rewind every stream ``region`` recorded to that state at its first draw inside the block, and put each
    back where it was at the end: the streams go on as if the block had not run (reusable: a second backward
    pass recomputes again)."""

    def __init__(self, region: StreamRegion) -> None:
        self.region = region
        self._replays: list[_Replay] = []

    def __enter__(self) -> StreamRegion:
        replay = _Replay(self.region)
        self._replays.append(replay)
        _open_regions().append(replay)
        return self.region

    def __exit__(self, *exc: object) -> None:
        replay = self._replays.pop()
        _open_regions().remove(replay)
        for layer, state in replay.resume.items():
            layer._generator.set_state(state)


class draws_in_backward:  # noqa: N801 - used like a function: ``with draws_in_backward():``
    """Let seeded layers draw inside a backward pass in this block (a gradient hook under
    ``backward(create_graph=True)``, which looks like a checkpoint's recomputation to the check that refuses those).

    Example:
        >>> import torch, snnlab as sl
        >>> lif, x = sl.LIF(noise="gaussian", seed=0), torch.ones(3, 1, 2, requires_grad=True)
        >>> y = x * 2
        >>> _ = y.register_hook(lambda g: g * lif(torch.ones_like(g)).mean())
        >>> with draws_in_backward():
        ...     (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    """

    def __enter__(self) -> None:
        _local.allowed = getattr(_local, "allowed", 0) + 1

    def __exit__(self, *exc: object) -> None:
        _local.allowed -= 1


_GRAPH_TASK_ID = getattr(torch._C, "_current_graph_task_id", None)


def _recomputing() -> bool:
    """Whether this looks like activation checkpointing recomputing a forward: inside an autograd backward pass (a
    graph task of this thread) with gradients enabled, which checkpointing turns on for its recomputation while
    a backward pass otherwise runs without (a gradient hook drawing noise is left alone), unless
    :class:`draws_in_backward` allows it."""
    return (_GRAPH_TASK_ID is not None and _GRAPH_TASK_ID() != -1 and torch.is_grad_enabled()
            and not getattr(_local, "allowed", 0))


def in_recomputation() -> bool:
    """Whether activation checkpointing is recomputing a forward in this thread: a backward pass running the
    recomputation of :func:`~snnlab.core.activation_checkpoint.activation_checkpoint` (or of
    ``torch.utils.checkpoint`` given :func:`~snnlab.core.activation_checkpoint.seeded_stream_contexts`), or what
    looks like one of ``torch.utils.checkpoint`` alone (:func:`_recomputing`). A :class:`~snnlab.Monitor` records
    nothing there: the forward that ran was recorded already.

    Example:
        >>> import torch
        >>> from torch.utils.checkpoint import checkpoint
        >>> seen = []
        >>> def square(t):
        ...     seen.append(in_recomputation())
        ...     return t * t
        >>> checkpoint(square, torch.ones(2, requires_grad=True), use_reentrant=False).sum().backward()
        >>> seen
        [False, True]
    """
    if _GRAPH_TASK_ID is not None and _GRAPH_TASK_ID() == -1:  # not in a backward pass (the cheap test first)
        return False
    stack = getattr(_local, "stack", None)
    return bool(stack and any(isinstance(entry, _Replay) for entry in stack)) or _recomputing()




def _prepare_draw(layer: RandomStream, generator: torch.Generator) -> None:
    stack = _open_regions()
    replayed = False
    for entry in stack:  # outermost first: an outer replay rewinds before an inner region records
        if isinstance(entry, _Replay):
            replayed = True
            saved = entry.region.states.get(layer)
            if saved is None:
                raise RuntimeError(
                    f"{type(layer).__name__}: a seeded layer draws random numbers in the recomputation of a "
                    "checkpointed block but drew none in its forward pass (was the block's training mode changed, "
                    "e.g. .train() after a forward in eval mode, or its control flow, between the forward and the "
                    "backward?); the recomputed forward would differ from the one that ran, and so the gradients")
            if layer not in entry.resume:
                entry.resume[layer] = generator.get_state()
                generator.set_state(saved)
        elif layer not in entry.states:
            entry.states[layer] = generator.get_state()
    if not replayed and _recomputing():
        raise RuntimeError(
            f"{type(layer).__name__}: a seeded layer is drawing random numbers during a backward pass, which is "
            "how activation checkpointing (torch.utils.checkpoint) recomputes its forward; the recomputation would "
            "draw other noise or masks than the forward did and give wrong gradients. Checkpoint with "
            "snnlab.activation_checkpoint(fn, *args) (or pass context_fn=snnlab.seeded_stream_contexts to "
            "torch.utils.checkpoint.checkpoint with use_reentrant=False), or build the layer without a seed. (Not a "
            "recomputation but a gradient hook under backward(create_graph=True)? Run that backward inside "
            "snnlab.core.random_stream.draws_in_backward().)")
