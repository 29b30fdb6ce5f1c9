"""The random generators a DataLoader draws from, to save, restore or replay its randomness."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch
from torch import nn

__all__ = ["loader_generators", "loader_states", "restore_loader_states", "same_generator_states", "same_randomness"]


def loader_generators(loader: Any, depth: int = 3) -> dict[str, torch.Generator]:
    """Every ``torch.Generator`` reachable from a loader (its shuffle generator, its collate's encoder, its
    dataset's augmentation generator, ...).

    Keys are attribute paths (``"generator"``, ``"collate_fn.encoder.generator"``), so the states can be
    saved in a checkpoint and restored for a bit-exact resume.
    """
    found: dict[str, torch.Generator] = {}
    seen: set[int] = set()

    def walk(obj, path: str, level: int) -> None:
        if id(obj) in seen or level > depth:
            return
        seen.add(id(obj))
        if isinstance(obj, torch.Generator):
            found[path] = obj
            return
        if isinstance(obj, (torch.Tensor, nn.Module, str, bytes, int, float, bool)) or obj is None:
            return
        try:
            attrs = vars(obj)
        except TypeError:
            return
        for k in sorted(attrs):
            if k.startswith("__") or k in ("sampler", "batch_sampler") and level == 0:  # (the sampler's: below)
                continue
            walk(attrs[k], f"{path}.{k}" if path else k, level + 1)

    walk(loader, "", 0)
    sampler = getattr(loader, "sampler", None)
    if sampler is not None:
        gen = getattr(sampler, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found.values()):
            found["sampler.generator"] = gen
    return found


def loader_states(loader: Any) -> dict[str, torch.Tensor]:
    """``{path: state}`` of every generator of :func:`loader_generators` (to checkpoint or replay)."""
    return {path: g.get_state() for path, g in loader_generators(loader).items()}


def restore_loader_states(loader: Any, states: dict[str, Any] | None) -> None:
    """Set the loader's generators back to ``states`` (from :func:`loader_states`); paths it lacks are kept."""
    states = states or {}
    for path, g in loader_generators(loader).items():
        if isinstance(states.get(path), torch.Tensor):
            g.set_state(states[path])


@contextlib.contextmanager
def same_randomness(loader: Any) -> Iterator[None]:
    """Restore the loader's generators on exit, so that every pass made inside draws the same numbers.

    Evaluation passes use it: a rate-encoded test set then gives the same spikes on every evaluation
    (a fixed test set), and evaluating does not move the random stream a later pass sees.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> loader = DataLoader(range(6), batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0))
        >>> with same_randomness(loader):
        ...     first = [b.tolist() for b in loader]
        >>> with same_randomness(loader):
        ...     again = [b.tolist() for b in loader]
        >>> first == again
        True
    """
    with same_generator_states(loader_generators(loader)):
        yield


@contextlib.contextmanager
def same_generator_states(generators: dict[str, torch.Generator]) -> Iterator[None]:
    """Set every generator of ``generators`` back to its state of entry on exit (a loader's, a model's...).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> with same_generator_states({"g": g}):
        ...     a = torch.rand(2, generator=g)
        >>> torch.equal(a, torch.rand(2, generator=g))
        True
    """
    saved = {k: g.get_state() for k, g in generators.items()}
    try:
        yield
    finally:
        for k, g in generators.items():
            g.set_state(saved[k])
