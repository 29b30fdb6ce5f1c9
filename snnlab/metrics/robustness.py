"""Input perturbations and robustness curves (accuracy against perturbation level).

Every perturbation takes a time-major input ``x`` ``[T, B, ...]``, a level and an optional
``torch.Generator`` (CPU; random numbers are drawn on the CPU and moved to ``x``'s device, so a seed
gives the same result on any device), and returns a new tensor; the input is never modified.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from snnlab.core.readout import predict
from snnlab.core.validation import as_seed, check_non_negative

from ._common import (batches, check_labels, eval_mode, input_dtype, model_input, model_output, resolve_device,
                      same_model_randomness)

__all__ = ["PERTURBATIONS", "jitter_spikes", "delete_spikes", "insert_spikes", "gaussian_noise", "perturb",
           "robustness_curve"]


def _rand(shape, generator, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device=like.device)


def _randn(shape, generator, like: torch.Tensor) -> torch.Tensor:
    return torch.randn(shape, generator=generator).to(device=like.device)


def _check_prob(p: float, name: str) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}: the probability must lie in [0, 1], got {p!r}")
    return float(p)


def _check_x(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        raise ValueError(f"{name}: x must be a time-major tensor [T, B, ...], got {getattr(x, 'shape', type(x))}")


def jitter_spikes(x: torch.Tensor, std: float, generator: torch.Generator | None = None,
                  merge: bool = True) -> torch.Tensor:
    """Move every spike (non-zero entry) in time by ``round(N(0, std^2))`` steps, clipped to ``[0, T-1]``.

    Spikes are clipped to the edge bins, never dropped. Two spikes of the same neuron that land in
    the same bin: with ``merge=True`` (default) the train stays binary and they merge into one (the
    larger value is kept), so the count is preserved exactly unless spikes collide; with
    ``merge=False`` their values add up and the total ``x.sum()`` is preserved exactly.
    ``std=0`` returns an unchanged copy; ``std`` must be finite (a huge one moves every spike to an edge bin).
    """
    _check_x(x, "jitter_spikes")
    std = check_non_negative(std, "std", "jitter_spikes")
    if std == 0.0:
        return x.clone()
    T = x.shape[0]
    flat = x.reshape(T, -1)
    t, j = flat.nonzero(as_tuple=True)
    vals = flat[t, j]
    noise = _randn(t.shape, generator, x)
    # the shift is clamped in float before it becomes an integer: a shift of 2T or more clips to the same edge
    # bin, and one beyond int64 would wrap (the scale is capped so that a zero draw never gives 0 * inf = NaN)
    shift = torch.round(noise * min(std, torch.finfo(noise.dtype).max)).clamp(-2.0 * T, 2.0 * T).long()
    t_new = (t + shift).clamp(0, T - 1)
    out = torch.zeros_like(flat).view(-1)
    idx = t_new * flat.shape[1] + j
    if merge:
        out.scatter_reduce_(0, idx, vals, reduce="amax", include_self=False)
    else:
        out.index_add_(0, idx, vals)
    return out.view(x.shape)


def delete_spikes(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop each spike (non-zero entry) independently with probability ``p`` (0 keeps all, 1 drops all)."""
    _check_x(x, "delete_spikes")
    p = _check_prob(p, "delete_spikes")
    keep = _rand(x.shape, generator, x) >= p
    return x * keep.to(x.dtype)


def insert_spikes(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Put a spike (value 1) into each empty bin (zero entry) independently with probability ``p``.

    Existing spikes are untouched, so about ``p * (number of empty bins)`` spikes are added.
    """
    _check_x(x, "insert_spikes")
    p = _check_prob(p, "insert_spikes")
    add = (x == 0) & (_rand(x.shape, generator, x) < p)
    return x + add.to(x.dtype)


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add ``N(0, std^2)`` current noise to every entry of ``x`` (the input is no longer binary)."""
    _check_x(x, "gaussian_noise")
    std = check_non_negative(std, "std", "gaussian_noise")
    if not x.is_floating_point():
        x = x.float()
    if std > torch.finfo(x.dtype).max:
        raise ValueError(f"gaussian_noise: std={std:g} overflows {x.dtype} (largest {torch.finfo(x.dtype).max:g})")
    return x + std * _randn(x.shape, generator, x).to(x.dtype)


PERTURBATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "jitter": jitter_spikes,
    "deletion": delete_spikes,
    "insertion": insert_spikes,
    "gaussian": gaussian_noise,
}


def perturb(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the perturbation ``kind`` (one of :data:`PERTURBATIONS`) at ``level``."""
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; choose one of {list(PERTURBATIONS)}")
    return PERTURBATIONS[kind](x, level, generator)


def robustness_curve(model: nn.Module, loader: Iterable, kind: str | Sequence[str], levels: Iterable[float],
                     readout: str = "membrane_sum", seed: int = 0, max_batches: int | None = None,
                     device=None) -> pd.DataFrame:
    """Accuracy under input perturbations: tidy DataFrame ``perturbation, level, accuracy, n_samples``.

    ``kind`` is one of ``"jitter"`` (level = std in steps), ``"deletion"`` / ``"insertion"``
    (level = probability) and ``"gaussian"`` (level = std), or a list of them (rows are stacked).
    Every (kind, level) starts from the same random state (common random numbers: the curves are
    reproducible and e.g. deletions at a higher level drop a superset of the spikes): a fresh
    perturbation generator seeded with ``seed``, torch's global generator seeded with ``seed`` (it
    drives unseeded noisy / masking layers), and the layers' own generators (seeded ``LIF`` /
    ``SpikeMask``) at their state when the call began; all of them are restored afterwards, so a call
    repeated gives the same table and moves no random stream.
    The prediction is :func:`snnlab.core.readout.predict` (a tie, e.g. a silent output, is wrong); a spike readout
    (``spike_count``, ``first_spike``) of a model whose output is an ``LI`` membrane is refused (``ValueError``), as
    :func:`snnlab.metrics.evaluate` refuses it. ``kind`` and ``levels`` must not be empty; ``seed`` is an int.
    The model runs in eval mode under ``torch.no_grad``; its training mode is restored afterwards. The perturbed
    inputs are cast to the model's floating dtype (integer event frames included), as in :func:`snnlab.metrics.evaluate`.
    """
    kinds = [kind] if isinstance(kind, str) else list(kind)
    if not kinds:
        raise ValueError(f"robustness_curve: give at least one perturbation kind (one of {list(PERTURBATIONS)})")
    for k in kinds:
        if k not in PERTURBATIONS:
            raise ValueError(f"unknown perturbation {k!r}; choose one of {list(PERTURBATIONS)}")
    seed = as_seed(seed, "robustness_curve", none_ok=False)  # common random numbers: a fixed seed, never None
    levels = [float(v) for v in levels]
    if not levels:
        raise ValueError("robustness_curve: give at least one level")
    dev = resolve_device(model, device)
    dtype = input_dtype(model)
    rows = []
    checked = False  # the first forward refuses a spike readout of an LI membrane, as in evaluate
    with eval_mode(model):
        for k in kinds:
            for level in levels:
                gen = torch.Generator().manual_seed(seed)
                correct = n = 0
                with same_model_randomness(model, dev, seed=seed):
                    for x, y in batches(loader, max_batches, "robustness_curve"):
                        xp = model_input(perturb(x, k, level, gen), dev, dtype)
                        out = model_output(model, xp, None if checked else readout)
                        checked = True
                        check_labels(y, "robustness_curve", "y", n_classes=out.shape[-1])
                        pred = predict(out, readout).cpu()
                        correct += int((pred == y).sum())
                        n += y.numel()
                if n == 0:
                    raise ValueError("robustness_curve: the loader yielded no samples")
                rows.append((k, level, correct / n, n))
    return pd.DataFrame(rows, columns=["perturbation", "level", "accuracy", "n_samples"])
