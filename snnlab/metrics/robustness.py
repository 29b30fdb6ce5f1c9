"""Input perturbations and robustness curves (accuracy against perturbation level).

Every perturbation takes a time-major input ``x`` ``[T, B, ...]``, a level and an optional
``torch.Generator`` (CPU; random numbers are drawn on the CPU and moved to ``x``'s device, so a seed
gives the same result on any device), and returns a new tensor; the input is never modified. One generator
serves the whole batch, so a sample's draws depend on the batch it is in: :func:`perturb_samples` (what
:func:`robustness_curve` uses) draws each sample's noise from a generator of its own instead, seeded from
``(seed, kind, the sample's index)``, so the perturbed inputs do not depend on how the samples are batched.
"""
from __future__ import annotations

import zlib
from typing import Callable, Iterable, Sequence

import pandas as pd
import torch
from torch import nn

from snnlab.core.network import carry_suspended
from snnlab.core.readout import predict
from snnlab.core.validation import as_seed, check_non_negative

from ._common import (batches, check_labels, eval_mode, input_dtype, model_input, model_output, resolve_device,
                      same_model_randomness)

__all__ = ["PERTURBATIONS", "jitter_spikes", "delete_spikes", "insert_spikes", "gaussian_noise", "perturb",
           "perturb_samples", "robustness_curve", "sample_seed"]


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
    return _jitter(x, std, lambda t, j: _randn(t.shape, generator, x), merge)


def _jitter(x: torch.Tensor, std: float, draw: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
            merge: bool = True) -> torch.Tensor:
    """:func:`jitter_spikes` with the standard normal noise of the spikes at ``(t, j)`` (``x`` flattened to
    ``[T, -1]``) given by ``draw(t, j)``."""
    if std == 0.0 or x.numel() == 0:  # (an empty x: nothing moves, and it has no [T, -1] view)
        return x.clone()
    T = x.shape[0]
    flat = x.reshape(T, -1)
    t, j = flat.nonzero(as_tuple=True)
    vals = flat[t, j]
    noise = draw(t, j)
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
    return _delete(x, p, _rand(x.shape, generator, x))


def _delete(x: torch.Tensor, p: float, u: torch.Tensor) -> torch.Tensor:
    return x * (u >= p).to(x.dtype)  # u: uniform [0, 1) noise of x's shape


def insert_spikes(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Put a spike (value 1) into each empty bin (zero entry) independently with probability ``p``.

    Existing spikes are untouched, so about ``p * (number of empty bins)`` spikes are added.
    """
    _check_x(x, "insert_spikes")
    p = _check_prob(p, "insert_spikes")
    return _insert(x, p, _rand(x.shape, generator, x))


def _insert(x: torch.Tensor, p: float, u: torch.Tensor) -> torch.Tensor:
    return x + ((x == 0) & (u < p)).to(x.dtype)  # u: uniform [0, 1) noise of x's shape


def gaussian_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Add ``N(0, std^2)`` current noise to every entry of ``x`` (the input is no longer binary)."""
    x, std = _gaussian_args(x, std)
    return _add_noise(x, std, _randn(x.shape, generator, x))


def _gaussian_args(x: torch.Tensor, std: float) -> tuple[torch.Tensor, float]:
    """:func:`gaussian_noise`'s checks: ``x`` as a floating tensor and ``std`` as a float it can hold."""
    _check_x(x, "gaussian_noise")
    std = check_non_negative(std, "std", "gaussian_noise")
    if not x.is_floating_point():
        x = x.float()
    if std > torch.finfo(x.dtype).max:
        raise ValueError(f"gaussian_noise: std={std:g} overflows {x.dtype} (largest {torch.finfo(x.dtype).max:g})")
    return x, std


def _add_noise(x: torch.Tensor, std: float, z: torch.Tensor) -> torch.Tensor:
    return x + std * z.to(x.dtype)  # x: floating; z: standard normal noise of x's shape


PERTURBATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "jitter": jitter_spikes,
    "deletion": delete_spikes,
    "insertion": insert_spikes,
    "gaussian": gaussian_noise,
}


def perturb(x: torch.Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the perturbation ``kind`` (one of :data:`PERTURBATIONS`) at ``level``, drawing from ``generator``
    (torch's global CPU generator if None) for the whole batch at once: a sample's draws depend on its place in
    the batch. :func:`perturb_samples` perturbs each sample with its own draws.

    Example:
        >>> x = torch.ones(5, 2, 3)
        >>> torch.equal(perturb(x, "deletion", 0.3, torch.Generator().manual_seed(0)),
        ...             delete_spikes(x, 0.3, torch.Generator().manual_seed(0)))
        True
    """
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; choose one of {list(PERTURBATIONS)}")
    return PERTURBATIONS[kind](x, level, generator)


_MASK64 = (1 << 64) - 1


def _mix64(z: int) -> int:
    """A 64-bit finaliser (SplitMix64's): nearby inputs give unrelated outputs."""
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def sample_seed(seed: int, kind: str, index: int) -> int:
    """The seed of sample ``index``'s perturbation generator in :func:`perturb_samples`: a fixed mix of ``seed``, the
    perturbation ``kind`` and ``index`` (the same in every process, on every machine; not Python's ``hash``).

    Example:
        >>> sample_seed(0, "deletion", 0) == sample_seed(0, "deletion", 0) != sample_seed(0, "deletion", 1)
        True
    """
    h = _mix64(int(seed) & _MASK64)
    h = _mix64(h ^ zlib.crc32(kind.encode()))
    return _mix64(h ^ (int(index) & _MASK64)) >> 1  # 63 bits: any torch.Generator takes it


def _sample_noise(x: torch.Tensor, kind: str, seed: int, start: int, normal: bool) -> torch.Tensor:
    """Noise of ``x``'s shape ``[T, B, ...]`` (standard normal, else uniform in [0, 1)): sample ``b``'s part drawn on
    the CPU from a generator of its own seeded with ``sample_seed(seed, kind, start + b)``, then moved to ``x``'s
    device."""
    if x.shape[1] == 0:
        return torch.empty(x.shape, device=x.device)
    shape = (x.shape[0],) + tuple(x.shape[2:])
    draw = torch.randn if normal else torch.rand
    gen = torch.Generator()
    parts = [draw(shape, generator=gen.manual_seed(sample_seed(seed, kind, start + b))) for b in range(x.shape[1])]
    return torch.stack(parts, 1).to(device=x.device)


def _spike_noise(x: torch.Tensor, seed: int, start: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``draw(t, j)`` for :func:`_jitter`: one standard normal number per spike, sample ``b``'s spikes (in their
    ``(t, ...)`` order) drawn from the generator of ``sample_seed(seed, "jitter", start + b)``, as
    :func:`jitter_spikes` draws them for that sample alone."""
    def draw(t: torch.Tensor, j: torch.Tensor) -> torch.Tensor:  # (called for a non-empty x only)
        B = x.shape[1]
        per_sample = x[0].numel() // B  # the columns of one sample in x.reshape(T, -1)
        b = torch.div(j, per_sample, rounding_mode="floor").cpu()
        counts = torch.bincount(b, minlength=B).tolist()
        gen = torch.Generator()
        draws = [torch.randn(c, generator=gen.manual_seed(sample_seed(seed, "jitter", start + i)))
                 for i, c in enumerate(counts)]
        noise = torch.empty(b.numel())
        noise[torch.argsort(b, stable=True)] = torch.cat(draws)  # the spikes come sorted by t, then sample
        return noise.to(device=x.device)

    return draw


def perturb_samples(x: torch.Tensor, kind: str, level: float, seed: int = 0, start: int = 0) -> torch.Tensor:
    """:func:`perturb` with each sample's own random numbers: sample ``b`` of ``x`` ``[T, B, ...]`` gets
    ``perturb(x[:, b:b+1], kind, level, g)`` with ``g`` a CPU generator seeded with :func:`sample_seed` ``(seed, kind,
    start + b)`` (``start``: the index of the batch's first sample in the stream), computed for the whole batch at
    once. A sample thus gets the same perturbation in a batch of any size, on any device (drawn on the CPU);
    :func:`robustness_curve` perturbs its inputs so.

    The draws do not depend on ``level`` (common random numbers): a higher deletion / insertion level drops / adds a
    superset of the spikes, a larger jitter or Gaussian std scales the same draws. Errors name the perturbation
    function (:func:`jitter_spikes`, ...).

    Example:
        >>> x = torch.ones(20, 4, 3)
        >>> a = perturb_samples(x, "deletion", 0.5, seed=1)
        >>> b = torch.cat([perturb_samples(x[:, :1], "deletion", 0.5, seed=1),
        ...                perturb_samples(x[:, 1:], "deletion", 0.5, seed=1, start=1)], 1)
        >>> torch.equal(a, b), bool(perturb_samples(x, "deletion", 0.7, seed=1).le(a).all())
        (True, True)
        >>> g = torch.Generator().manual_seed(sample_seed(1, "deletion", 2))
        >>> torch.equal(a[:, 2:3], perturb(x[:, 2:3], "deletion", 0.5, g))
        True
    """
    if kind not in PERTURBATIONS:
        raise ValueError(f"unknown perturbation {kind!r}; choose one of {list(PERTURBATIONS)}")
    seed = as_seed(seed, "perturb_samples", none_ok=False)
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"perturb_samples: start must be an int >= 0 (the index of the first sample), got {start!r}")
    if kind == "jitter":
        _check_x(x, "jitter_spikes")
        std = check_non_negative(level, "std", "jitter_spikes")
        return _jitter(x, std, _spike_noise(x, seed, start))
    if kind == "gaussian":
        x, std = _gaussian_args(x, level)
        return _add_noise(x, std, _sample_noise(x, kind, seed, start, normal=True))
    fn, name = (_delete, "delete_spikes") if kind == "deletion" else (_insert, "insert_spikes")
    _check_x(x, name)
    return fn(x, _check_prob(level, name), _sample_noise(x, kind, seed, start, normal=False))


def robustness_curve(model: nn.Module, loader: Iterable, kind: str | Sequence[str], levels: Iterable[float],
                     readout: str = "membrane_sum", seed: int = 0, max_batches: int | None = None,
                     device=None) -> pd.DataFrame:
    """Accuracy under input perturbations: tidy DataFrame ``perturbation, level, accuracy, n_samples``.

    ``kind`` is one of ``"jitter"`` (level = std in steps), ``"deletion"`` / ``"insertion"``
    (level = probability) and ``"gaussian"`` (level = std), or a list of them (rows are stacked).

    Randomness (common random numbers: the curves are reproducible and e.g. deletions at a higher level drop a
    superset of the spikes):

    * the input perturbation (:func:`perturb_samples`): the ``i``-th sample the loader yields (counted from 0 over
      the whole pass, batch after batch) gets noise from its own generator seeded with ``(seed, kind, i)``, the same
      at every level. A sample's perturbed input thus depends on ``seed``, ``kind``, ``level`` and its position
      ``i`` only: not on the batch size, nor on the device (drawn on the CPU). The position does depend on the
      loader's order: a loader that yields the same samples in another order (another shuffle) gives them other
      noise, and ``max_batches`` with a smaller batch size evaluates fewer samples;
    * the model's own noise (``noisy_eval`` neurons, ``mask_at_inference`` masks): every (kind, level) starts from
      torch's global generators seeded with ``seed`` (unseeded layers) and the layers' own generators (seeded
      ``LIF`` / ``SpikeMask``) at their state when the call began, exactly as
      ``evaluate(model, loader, seed=seed)`` does, so level 0 gives the accuracy that call gives. These layers draw
      one tensor per batch, so *their* noise, unlike the input perturbation, still depends on the batch size
      and order (a noise-free model's curve does not, up to the rounding of batched arithmetic).

    All of them are restored afterwards, so a call repeated gives the same table and moves no random stream.
    The prediction is :func:`snnlab.core.readout.predict` (a tie, e.g. a silent output, is wrong); a spike readout
    (``spike_count``, ``first_spike``) of a model whose output is an ``LI`` membrane is refused (``ValueError``), as
    :func:`snnlab.metrics.evaluate` refuses it. The model's output is read as :func:`snnlab.metrics.evaluate` reads
    it (a tensor ``[T, B, C]``, or the first element of a tuple / list; anything else is a ``TypeError``,
    :func:`~snnlab.metrics.model_output`). ``kind`` and ``levels`` must not be empty; ``seed`` is an int.
    The model runs in eval mode under ``torch.no_grad``; its training mode is restored afterwards. Each batch runs
    from rest whatever the layers' ``carry_state``, and a membrane carried from before the call is put back afterwards
    (:func:`snnlab.carry_suspended`), as in :func:`snnlab.metrics.evaluate`. The perturbed
    inputs are cast to the model's floating dtype (integer event frames included), as in :func:`snnlab.metrics.evaluate`.

    Example:
        >>> import snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 2), sl.LI())
        >>> x, y = (torch.rand(10, 8, 4) < 0.5).float(), torch.arange(8) % 2
        >>> whole = robustness_curve(net, [(x, y)], "deletion", [0.0, 0.5])
        >>> halves = robustness_curve(net, [(x[:, :4], y[:4]), (x[:, 4:], y[4:])], "deletion", [0.0, 0.5])
        >>> whole.equals(halves)   # the same samples in batches of another size: the same curve
        True
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
    with eval_mode(model), carry_suspended(model):
        for k in kinds:
            for level in levels:
                correct = n = 0
                with same_model_randomness(model, dev, seed=seed):
                    for x, y in batches(loader, max_batches, "robustness_curve"):
                        xp = model_input(perturb_samples(x, k, level, seed, start=n), dev, dtype)
                        out = model_output(model, xp, None if checked else readout, "robustness_curve")
                        checked = True
                        check_labels(y, "robustness_curve", "y", n_classes=out.shape[-1])
                        pred = predict(out, readout).cpu()
                        correct += int((pred == y).sum())
                        n += y.numel()
                if n == 0:
                    raise ValueError("robustness_curve: the loader yielded no samples")
                rows.append((k, level, correct / n, n))
    return pd.DataFrame(rows, columns=["perturbation", "level", "accuracy", "n_samples"])
