"""Layers with a random stream of their own: a seeded layer keeps its generator's state in its state dict."""
from __future__ import annotations

import warnings

import torch
from torch import nn

__all__ = ["RandomStream", "RNG_STATE_KEY"]

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
