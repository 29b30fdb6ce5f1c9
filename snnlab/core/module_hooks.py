"""What snnlab reads from the hooks of a module: which hooks are its own, how a hook is named in a message, and the
forward pre-hooks of ``torch.nn.utils`` (``prune``, the hook-based ``weight_norm`` / ``spectral_norm``) that compute a
tensor of the module at each call. Shared by the recurrent layers' fused loops (:mod:`snnlab.core.recurrent`) and the
NIR exporter (:mod:`snnlab.interop.nir`)."""
from __future__ import annotations

from typing import Any

from torch.nn.utils.prune import BasePruningMethod
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

__all__ = ["WEIGHT_HOOK_TYPES", "hook_label", "hook_tensor_name", "is_snnlab_hook"]

#: the forward pre-hooks of ``torch.nn.utils.prune`` / ``weight_norm`` / ``spectral_norm``, which compute a tensor
#: (``weight`` usually) of their module from other parameters at each call
WEIGHT_HOOK_TYPES = (BasePruningMethod, WeightNorm, SpectralNorm)


def is_snnlab_hook(hook: Any) -> bool:
    """Whether ``hook`` is one of snnlab's own (Monitor, the SynOps counter, the trainer's, the running-statistics
    guard of activation checkpointing...): defined in an ``snnlab.`` module.

    Example:
        >>> from snnlab.core.module_hooks import hook_label
        >>> is_snnlab_hook(hook_label), is_snnlab_hook(print)
        (True, False)
    """
    return str(getattr(hook, "__module__", None) or "").startswith("snnlab.")


def hook_label(hook: Any) -> str:
    """``hook`` (any callable) named by its qualified name (a function, a bound method) or else by its class, not its
    repr (which may be long): ``"<module>.<qualname>"``.

    Example:
        >>> import functools
        >>> hook_label(is_snnlab_hook), hook_label(functools.partial(print))
        ('snnlab.core.module_hooks.is_snnlab_hook', 'functools.partial')
    """
    named = hook if hasattr(hook, "__qualname__") else type(hook)
    return f"{getattr(named, '__module__', None) or '?'}.{named.__qualname__}"


def hook_tensor_name(hook: Any) -> str | None:
    """The name of the tensor (``"weight"``, ``"bias"``...) that ``hook`` computes, for one of
    :data:`WEIGHT_HOOK_TYPES`; None for any other hook.

    Example:
        >>> import torch
        >>> from torch.nn.utils import prune
        >>> lin = prune.l1_unstructured(torch.nn.Linear(2, 2), "bias", amount=0.5)
        >>> [hook_tensor_name(h) for h in lin._forward_pre_hooks.values()], hook_tensor_name(print)
        (['bias'], None)
    """
    if isinstance(hook, BasePruningMethod):
        return getattr(hook, "_tensor_name", None)
    return getattr(hook, "name", None) if isinstance(hook, (WeightNorm, SpectralNorm)) else None
