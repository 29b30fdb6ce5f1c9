"""Synthetic spiking tasks: Randman (random smooth manifolds) and a delay/coincidence task.

Both datasets store integer spike times ``[N, F]`` (``-1`` = silent) and return per-sample
rasters ``[T, F]``; use :func:`snnlab.data.collate.time_major_collate` (or
:meth:`SpikeTimesDataset.loader`) to get time-major batches ``[T, B, F]``.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..core.validation import check_non_negative, is_integer
from .collate import _as_labels, time_major_collate
from .encoders import _as_step_times, _check_steps, spike_times_to_dense

__all__ = ["SpikeTimesDataset", "make_randman", "make_delay_task", "randman_embedding"]


class SpikeTimesDataset(Dataset):
    """Dataset of one-or-more spikes per unit stored as times; items are ``(raster [T, F], label)``.

    ``times`` is ``[N, F]`` (one spike per unit, ``-1`` = silent) or ``[N, F, K]`` (up to ``K``
    spikes per unit), stored as int64 by the rule of :func:`~snnlab.data.encoders.spike_times_to_dense`: float
    times must be whole steps (a fractional one is a ``ValueError``, not truncated) and NaN / inf mean "no spike"
    (``-1``). Labels (a tensor, NumPy array or list of whole numbers, one per sample) are stored as int64 ``[N]``;
    ``num_steps`` is an int >= 1. Bad settings are errors at construction.

    Example:
        >>> ds = SpikeTimesDataset(torch.tensor([[0, 3]]), torch.tensor([1]), num_steps=4)
        >>> x, y = ds[0]
        >>> x.shape, int(y), x[:, 1].tolist()
        (torch.Size([4, 2]), 1, [0.0, 0.0, 0.0, 1.0])
    """

    def __init__(self, times: torch.Tensor, labels: torch.Tensor | np.ndarray | list[int], num_steps: int) -> None:
        fn = "SpikeTimesDataset"
        num_steps = _check_steps(num_steps, fn)
        times = _as_step_times(times, fn)
        if times.dim() not in (2, 3):
            raise ValueError(f"{fn}: times must be [N, F] (one spike per unit) or [N, F, K] (up to K spikes per "
                             f"unit), got shape {tuple(times.shape)}; for one sample use times.unsqueeze(0)")
        labels = _as_labels(labels, fn)
        if times.shape[0] != labels.shape[0]:
            raise ValueError(f"{fn}: times has {times.shape[0]} samples but labels has {labels.shape[0]}; give one "
                             "label per sample")
        self.times = times
        self.labels = labels
        self.num_steps = num_steps

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.times[i]
        dense = spike_times_to_dense(t, self.num_steps)
        if t.dim() == 2:  # [F, K] -> [T, F, K] -> sum over K
            dense = dense.sum(-1)
        return dense, self.labels[i]

    def dense(self) -> torch.Tensor:
        """All samples as one time-major tensor ``[T, N, F]``.

        Example:
            >>> SpikeTimesDataset(torch.tensor([[0], [1]]), torch.tensor([0, 1]), 2).dense()[:, :, 0].tolist()
            [[1.0, 0.0], [0.0, 1.0]]
        """
        d = spike_times_to_dense(self.times, self.num_steps)
        return d.sum(-1) if self.times.dim() == 3 else d

    def loader(self, batch_size: int = 32, shuffle: bool = True, seed: int = 0) -> DataLoader:
        """A DataLoader yielding ``(x [T, B, F], y [B])``.

        Example:
            >>> ds = make_randman(n_classes=2, n_units=5, n_steps=10, samples_per_class=4)
            >>> next(iter(ds.loader(batch_size=3)))[0].shape
            torch.Size([10, 3, 5])
        """
        g = torch.Generator().manual_seed(seed)
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, generator=g, collate_fn=time_major_collate)


def randman_embedding(
    u: np.ndarray, n_units: int, alpha: float, n_components: int, rng: np.random.Generator
) -> np.ndarray:
    """Evaluate one random smooth map ``[0,1]^d -> [0,1]^F`` at points ``u [M, d]``.

    Each output coordinate is a sum over intrinsic dimensions ``k`` and frequencies
    ``m = 1..n_components`` of sinusoids ``a * m**(-alpha) * sin(2 pi (m * u_k + phase))`` with
    random amplitudes ``a ~ U(0,1)`` and phases; larger ``alpha`` damps high frequencies and gives
    a smoother manifold. Each coordinate is rescaled to ``[0, 1]`` over a dense reference grid so
    the scaling does not depend on how many points are sampled. The same ``rng`` state gives the
    same map.

    Example:
        >>> y = randman_embedding(np.random.default_rng(0).random((5, 1)), 3, 2.0, 4, np.random.default_rng(1))
        >>> y.shape, bool((y >= 0).all() and (y <= 1).all())
        ((5, 3), True)
    """
    d = u.shape[1]
    m = np.arange(1, n_components + 1, dtype=np.float64)  # [C]
    amp = rng.random((n_units, d, n_components)) * m ** (-float(alpha))  # [F, d, C]
    phase = rng.random((n_units, d, n_components))

    def f(points: np.ndarray) -> np.ndarray:  # [M, d] -> [M, F]
        arg = 2 * math.pi * (points[:, None, :, None] * m + phase[None])  # [M, F, d, C]
        return (amp[None] * np.sin(arg)).sum(axis=(2, 3))

    # reference grid over [0,1]^d (periodic sinusoids: extremes are well covered by a grid)
    per_dim = max(2, int(round(4096 ** (1.0 / d))))
    axes = [np.linspace(0.0, 1.0, per_dim)] * d
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, d)
    ref = f(grid)
    lo, hi = ref.min(0), ref.max(0)
    return np.clip((f(u) - lo) / np.maximum(hi - lo, 1e-12), 0.0, 1.0)


def make_randman(
    n_classes: int = 10,
    n_units: int = 100,
    n_steps: int = 100,
    dim_manifold: int = 1,
    alpha: float = 2.0,
    samples_per_class: int = 100,
    n_components: int = 4,
    jitter: float = 0.0,
    seed: int = 0,
) -> SpikeTimesDataset:
    """Randman: classify which random smooth manifold a spike pattern was sampled from.

    Re-implemented from the description in Zenke & Vogels (2021), *The remarkable robustness of
    surrogate gradient learning for instilling complex function in spiking neural networks*:
    each class is a random smooth function from an intrinsic space ``[0,1]^dim_manifold`` to
    ``[0,1]^n_units`` (see :func:`randman_embedding`); a sample is a uniformly drawn intrinsic
    point mapped through its class's function, and each of the ``n_units`` coordinates becomes
    the time of the single spike of one input neuron within ``n_steps`` steps. Difficulty grows
    with ``dim_manifold`` and ``n_classes`` and falls with ``alpha`` (smoothness).

    Args:
        n_classes: number of manifolds/classes.
        n_units: input neurons (embedding dimension).
        n_steps: time steps ``T``.
        dim_manifold: intrinsic dimension ``d``.
        alpha: smoothness exponent of the sinusoid spectrum.
        samples_per_class: samples drawn per class.
        n_components: sinusoid frequencies per intrinsic dimension.
        jitter: std of Gaussian spike-time noise in steps (0 = none): a finite number >= 0 (values above
            1 are fine, the noisy times are clipped to the window).
        seed: RNG seed; the same seed gives the same dataset.

    Returns:
        :class:`SpikeTimesDataset` with items ``([n_steps, n_units], label)`` -- one spike per unit.

    Example:
        >>> ds = make_randman(n_classes=3, n_units=20, n_steps=50, samples_per_class=10, seed=1)
        >>> x, y = ds[0]
        >>> len(ds), x.shape, x.sum(0).tolist() == [1.0] * 20
        (30, torch.Size([50, 20]), True)
    """
    for name, v in (("n_classes", n_classes), ("n_units", n_units), ("n_steps", n_steps),
                    ("dim_manifold", dim_manifold), ("samples_per_class", samples_per_class),
                    ("n_components", n_components)):
        if not is_integer(v) or v < 1:
            raise ValueError(f"make_randman: {name} must be an int >= 1, got {v!r}")
    n_classes, n_units, n_steps, dim_manifold, samples_per_class, n_components = (
        int(v) for v in (n_classes, n_units, n_steps, dim_manifold, samples_per_class, n_components))
    if not (float(alpha) >= 0):
        raise ValueError(f"make_randman: alpha must be >= 0, got {alpha!r}")
    jitter = check_non_negative(jitter, "jitter", "make_randman")
    rng = np.random.default_rng(seed)
    times, labels = [], []
    for c in range(n_classes):
        map_rng = np.random.default_rng(rng.integers(2**63))
        u = rng.random((samples_per_class, dim_manifold))
        y = randman_embedding(u, n_units, alpha, n_components, map_rng)
        t = y * (n_steps - 1)
        if jitter > 0:
            t = t + rng.normal(0.0, jitter, size=t.shape)
        times.append(np.clip(np.round(t), 0, n_steps - 1).astype(np.int64))
        labels.append(np.full(samples_per_class, c, dtype=np.int64))
    times_a, labels_a = np.concatenate(times), np.concatenate(labels)
    perm = rng.permutation(len(labels_a))
    return SpikeTimesDataset(torch.from_numpy(times_a[perm]), torch.from_numpy(labels_a[perm]), n_steps)


def _whole(value: object, name: str, fn: str) -> int:
    """``value`` as an int: an int, a NumPy int or a float with a whole value (``5.0``); ``ValueError`` naming ``fn``
    for anything else (``int(5.7)`` would silently be 5).

    Example:
        >>> _whole(5.0, "n_steps", "make_delay_task")
        5
    """
    if is_integer(value):
        return int(value)
    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise ValueError(f"{fn}: {name} must be an int, got {value!r}")


def make_delay_task(
    n_samples: int = 1000,
    n_steps: int = 100,
    delays: tuple[int, ...] = (10, 25),
    n_per_channel: int = 1,
    n_distractors: int = 0,
    jitter: int = 0,
    seed: int = 0,
) -> SpikeTimesDataset:
    """Interval-discrimination task that needs (learnable) synaptic/axonal delays.

    There are two input channels A and B of ``n_per_channel`` neurons each (units ``[0, n)`` are
    A, ``[n, 2n)`` are B), plus optional ``n_distractors`` extra neurons that spike once at a
    uniformly random time. In every sample, all A neurons spike at a random onset ``t1`` and all
    B neurons at ``t1 + delays[label]`` (plus optional independent ``jitter`` of up to
    ``+-jitter`` steps per neuron). The onset ``t1`` is uniform over all positions that fit in the
    window, independently per sample.

    Why it needs delays: every class has exactly the same number of spikes on every neuron
    (one), so rate/count features carry no class information, and A's spike time carries none
    either (its onset range is the same for every class). B's spike time alone does carry some, at
    the edges: with ``L = n_steps - max(delays)`` onsets (``jitter=0``), class ``c``'s B spike falls
    in ``[delays[c], delays[c] + L)``, so a B time in only one class's range gives the class away.
    For two classes that happens for a fraction ``(max(delays) - min(delays)) / (n_steps - max(delays))``
    of the samples (with the defaults 15 / 75 = 20 %; with ``n_steps=60``, as in the ``delays_delay_task``
    preset, 15 / 35 = 43 %), and a network without delays can reach ``(1 + that fraction) / 2`` accuracy
    from *when* B fires alone (60 % with the defaults, 71 % with ``n_steps=60``; in general
    ``|union of the ranges| / (len(delays) * L)``), not chance; ``jitter`` blurs the edges. The rest
    of the information is the interval ``t_B - t_A``. A feed-forward network without delays can only
    relate two spikes that are ``d`` steps apart through its membrane/synaptic leak, whose trace
    after ``d >> tau`` steps is negligible (``(1 - 1/tau)**d``, below ``exp(-d / tau)``), so with the
    default intervals (10 and 25 steps) and typical time constants of a few steps it cannot do better
    than that edge cue. A neuron with a delay of ``delays[c]`` on its A synapse receives A and B
    *coincidently* only for class ``c`` -- a classic coincidence detector (Jeffress model) -- so a
    delay-learning network solves every sample.

    Args:
        n_samples: number of samples (classes are balanced, ``label = i % len(delays)``, shuffled).
        n_steps: time steps ``T``; must exceed ``max(delays) + 2 * jitter``.
        delays: interval (in steps) that defines each class.
        n_per_channel: neurons per channel A and B.
        n_distractors: extra neurons spiking once at a random time.
        jitter: max absolute per-neuron jitter in steps.
        seed: RNG seed.

    Returns:
        :class:`SpikeTimesDataset` of ``([n_steps, 2 * n_per_channel + n_distractors], label)``.

    Example:
        >>> ds = make_delay_task(n_samples=4, n_steps=40, delays=(5, 15), seed=0)
        >>> x, y = ds[0]
        >>> int(x[:, 1].argmax() - x[:, 0].argmax()) == (5, 15)[int(y)]
        True
    """
    n_samples, n_steps, n_per_channel, n_distractors, jitter = (
        _whole(v, name, "make_delay_task") for v, name in ((n_samples, "n_samples"), (n_steps, "n_steps"),
                                                          (n_per_channel, "n_per_channel"),
                                                          (n_distractors, "n_distractors"), (jitter, "jitter")))
    delays = tuple(_whole(d, "each of delays", "make_delay_task") for d in delays)
    if len(delays) < 2 or len(set(delays)) != len(delays) or min(delays) < 0:
        raise ValueError(f"make_delay_task: delays must be >= 2 distinct non-negative ints, got {delays!r}")
    if n_steps <= max(delays) + 2 * jitter:
        raise ValueError(
            f"make_delay_task: n_steps ({n_steps}) must exceed max(delays) + 2 * jitter ({max(delays) + 2 * jitter})"
        )
    if n_samples < 1 or n_per_channel < 1 or n_distractors < 0 or jitter < 0:
        raise ValueError("make_delay_task: n_samples and n_per_channel must be >= 1, n_distractors and jitter >= 0")
    rng = np.random.default_rng(seed)
    labels = np.arange(n_samples) % len(delays)
    rng.shuffle(labels)
    d = np.asarray(delays)[labels]
    # the same onset range for every class: onsets that fit the longest interval
    t1 = rng.integers(jitter, n_steps - max(delays) - jitter, size=n_samples)
    n = n_per_channel
    ta = np.repeat(t1[:, None], n, 1)
    tb = np.repeat((t1 + d)[:, None], n, 1)
    if jitter > 0:
        ta = ta + rng.integers(-jitter, jitter + 1, size=ta.shape)
        tb = tb + rng.integers(-jitter, jitter + 1, size=tb.shape)
    parts = [ta, tb]
    if n_distractors:
        parts.append(rng.integers(0, n_steps, size=(n_samples, n_distractors)))
    times = np.concatenate(parts, 1).astype(np.int64)
    return SpikeTimesDataset(torch.from_numpy(times), torch.from_numpy(labels.astype(np.int64)), n_steps)
