"""Encoders that turn static inputs ``[B, F]`` in ``[0, 1]`` into time-major ``[T, B, F]`` tensors.

Three schemes are provided, each as a function and as a tiny callable class usable as a
transform (for example inside a ``collate_fn``):

* :func:`latency_encode` / :class:`LatencyEncoder` -- time-to-first-spike, at most one spike
  per feature, brighter features spike earlier, features below ``threshold`` never spike.
* :func:`rate_encode` / :class:`RateEncoder` -- Bernoulli spikes with probability ``x * gain``
  per step (seeded with a ``torch.Generator`` for reproducibility).
* :func:`direct_encode` / :class:`DirectEncoder` -- the analog value repeated as an input current.
"""
from __future__ import annotations


import torch

from snnlab.core.validation import (FLOAT32_MAX, all_finite, as_flag, as_number, as_seed, check_non_negative,
                                    check_positive, is_integer)

__all__ = [
    "latency_encode",
    "rate_encode",
    "direct_encode",
    "LatencyEncoder",
    "RateEncoder",
    "DirectEncoder",
    "spike_times_to_dense",
]


def _check_steps(num_steps: int, fn: str) -> int:
    """``num_steps`` as an ``int``; ``ValueError`` naming ``fn`` unless it is an integer >= 1."""
    if not is_integer(num_steps) or num_steps < 1:
        raise ValueError(f"{fn}: num_steps must be an int >= 1, got {num_steps!r}")
    return int(num_steps)


def _check_input(x: torch.Tensor, num_steps: int, fn: str, unit_range: bool) -> tuple[torch.Tensor, int]:
    """``(x as a float tensor, num_steps as an int)`` after the checks shared by the encoders."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: x must be a torch.Tensor of shape [B, F], got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(
            f"{fn}: x must have a batch dimension, shape [B, F] (or [B, C, H, W]); got shape "
            f"{tuple(x.shape)}. For a single sample use x.unsqueeze(0)."
        )
    num_steps = _check_steps(num_steps, fn)
    if x.is_complex():  # (a cast would drop the imaginary part, with only a torch warning)
        raise TypeError(f"{fn}: x must be real, got dtype {x.dtype}; take x.real, x.abs() or x.angle() first")
    if not x.is_floating_point():
        x = x.float()
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{fn}: x contains NaN values; clean or impute the input before encoding.")
    if unit_range and x.numel() > 0:
        lo, hi = float(x.min()), float(x.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{fn}: x must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}); normalise it first, "
                "e.g. x = (x - x.min()) / (x.max() - x.min())."
            )
    return x, num_steps


def _as_step_times(times: torch.Tensor, fn: str) -> torch.Tensor:
    """Spike times as int64 steps, by the rule of :func:`spike_times_to_dense`: integer times as they are; float
    times must be whole steps (a fractional one is a ``ValueError`` naming ``fn``, not truncated), and NaN, +-inf
    and magnitudes past ``2**62`` (outside any window) become ``-1``, "no spike"; bool or complex times are a
    ``TypeError``.

    Example:
        >>> _as_step_times(torch.tensor([2.0, float("nan"), -1.0]), "f").tolist()
        [2, -1, -1]
    """
    if not isinstance(times, torch.Tensor):
        raise TypeError(f"{fn}: times must be a torch.Tensor of spike times, got {type(times).__name__}")
    if times.is_floating_point():
        finite = torch.isfinite(times) & (times.abs() < 2.0**62)  # (a cast of a larger float is no int64 value)
        if not bool((times[finite] == times[finite].round()).all()):
            raise ValueError(f"{fn}: times must be whole time steps, got fractional values; round them "
                             "(times.round()) or bin them first")
        times = torch.where(finite, times, torch.full_like(times, -1.0))
    elif times.is_complex() or times.dtype == torch.bool:
        raise TypeError(f"{fn}: times must be integer time steps, got dtype {times.dtype}")
    return times.long()


def spike_times_to_dense(times: torch.Tensor, num_steps: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Turn integer spike times ``[B, ...]`` (``-1`` = no spike) into a time-major raster ``[T, B, ...]``.

    Times outside ``[0, num_steps)`` are treated as "no spike"; ``num_steps`` must be >= 1. Float times must be
    whole steps (NaN and infinities also mean "no spike"): a fractional time is an error, not truncated.

    Example:
        >>> spike_times_to_dense(torch.tensor([[0, 2, -1]]), 3)[:, 0]
        tensor([[1., 0., 0.],
                [0., 0., 0.],
                [0., 1., 0.]])
    """
    times = _as_step_times(times, "spike_times_to_dense")
    num_steps = _check_steps(num_steps, "spike_times_to_dense")
    valid = (times >= 0) & (times < num_steps)
    out = torch.zeros((num_steps,) + tuple(times.shape), dtype=dtype, device=times.device)
    idx = torch.where(valid, times, torch.zeros_like(times)).unsqueeze(0)
    out.scatter_(0, idx, valid.unsqueeze(0).to(dtype))
    return out


def _check_latency_settings(tau: float | None, threshold: float, linear: bool, fn: str) -> tuple[float, bool]:
    """``(threshold, linear)``: ``threshold`` as a float in ``[0, 1)``, ``linear`` as a bool (:func:`as_flag`); ``tau``
    (read by the non-linear code only), when given, a finite number > 0. Errors name ``fn``."""
    linear = as_flag(linear, "linear", fn)
    threshold = as_number(threshold, "threshold", fn)
    if not (0.0 <= threshold < 1.0):
        raise ValueError(f"{fn}: threshold must be in [0, 1), got {threshold!r}")
    if not linear and tau is not None:
        check_positive(tau, "tau", fn)
    return threshold, linear


def latency_encode(
    x: torch.Tensor,
    num_steps: int,
    tau: float | None = None,
    threshold: float = 0.01,
    linear: bool = True,
) -> torch.Tensor:
    """Time-to-first-spike coding: each feature spikes at most once, brighter features earlier.

    Features with ``x < threshold`` (and, for the non-linear code, ``x == threshold``) never
    spike. With ``threshold=0`` only ``x > 0`` spikes (in both codes): a zero feature, e.g. a black background
    pixel, stays silent rather than spiking at the last step.

    * ``linear=True``: spike step ``t = round((1 - x) * (num_steps - 1))`` so ``x = 1`` spikes at
      step 0 and ``x = threshold`` close to the last step.
    * ``linear=False``: the charging time of an RC membrane driven by a constant current ``x``
      towards a firing ``threshold``: ``t = tau * ln(x / (x - threshold))`` (in steps). The map is
      steep near ``threshold``: with the defaults every ``x >= 0.05`` spikes within the first 5 % of
      the window and only ``x`` below about ``1.007 * threshold`` reaches its last step; raise
      ``tau`` or ``threshold`` to spread values over the window. Spikes later than the window are dropped. ``tau`` defaults to ``(num_steps - 1) / 5`` (for
      ``num_steps=1`` that is 0: every feature above ``threshold`` spikes at the only step).

    Args:
        x: inputs ``[B, ...]`` in ``[0, 1]``.
        num_steps: number of time steps ``T`` (>= 1).
        tau: RC time constant in steps (only for ``linear=False``).
        threshold: minimum value that produces a spike (``linear=True``; the non-linear code needs
            ``x > threshold``), in ``[0, 1)``; ``0`` means every ``x > 0`` spikes and ``x = 0`` never does.
        linear: linear or logarithmic (RC) mapping.

    Returns:
        Binary tensor ``[T, B, ...]`` of ``x``'s float dtype (float32 for integer ``x``). The steps are computed in
        float32 (float64 for float64 ``x``), so a bfloat16 / float16 ``x`` spikes where the same values in float32
        do, also past step 256 / 2048.

    Example:
        >>> s = latency_encode(torch.tensor([[1.0, 0.5, 0.0]]), num_steps=5)
        >>> s[:, 0].argmax(0).tolist(), s.sum(0).tolist()
        ([0, 2, 0], [[1.0, 1.0, 0.0]])
    """
    x, num_steps = _check_input(x, num_steps, "latency_encode", unit_range=True)
    threshold, linear = _check_latency_settings(tau, threshold, linear, "latency_encode")
    out_dtype = x.dtype
    # the steps in float32 at least: bfloat16 / float16 hold whole numbers exactly only up to 256 / 2048
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    if linear:
        t = torch.round((1.0 - x) * (num_steps - 1))
        fire = x >= threshold
        if threshold == 0.0:
            fire = x > 0.0
    else:
        tau_v = (num_steps - 1) / 5.0 if tau is None else float(tau)
        fire = x > threshold
        safe = torch.where(fire, x, torch.ones_like(x))
        # the default tau is 0 only for num_steps=1: the limit tau -> 0, every firing feature at step 0
        t = tau_v * torch.log(safe / (safe - threshold)) if threshold > 0 and tau_v > 0 else torch.zeros_like(x)
        t = torch.round(t)
        fire = fire & (t <= num_steps - 1)
    times = torch.where(fire, t, torch.full_like(t, -1.0)).long()
    return spike_times_to_dense(times, num_steps, dtype=out_dtype)


def rate_encode(
    x: torch.Tensor,
    num_steps: int,
    gain: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Bernoulli (discrete Poisson) rate code: spike with probability ``clamp(x * gain, 0, 1)`` each step.

    Args:
        x: inputs ``[B, ...]`` in ``[0, 1]``.
        num_steps: number of time steps ``T`` (>= 1).
        gain: scales the firing probability (a finite number >= 0; past float32's range the product is taken in
            float64, so ``x = 0`` stays silent and every ``x > 0`` spikes).
        generator: optional ``torch.Generator`` for reproducible spikes.

    Returns:
        Binary tensor ``[T, B, ...]`` of ``x``'s float dtype (float32 for integer ``x``); the probabilities are
        computed in float32 (float64 for float64 ``x``) whatever ``x``'s precision.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> s = rate_encode(torch.full((2, 3), 0.5), num_steps=100, generator=g)
        >>> s.shape, 0.35 < float(s.mean()) < 0.65
        (torch.Size([100, 2, 3]), True)
    """
    x, num_steps = _check_input(x, num_steps, "rate_encode", unit_range=True)
    g = check_non_negative(gain, "gain", "rate_encode")
    # the probability in float32 at least (a bfloat16 / float16 product would round it), the spikes in x's dtype
    dtype = torch.promote_types(x.dtype, torch.float32)
    if g > FLOAT32_MAX and dtype != torch.float64:  # g itself is inf in float32 (0 * inf = NaN): in float64, then cast
        p = (x.double() * g).clamp(0.0, 1.0).to(dtype)
    else:
        p = (x.to(dtype) * g).clamp(0.0, 1.0)
    p = p.unsqueeze(0).expand((num_steps,) + tuple(x.shape))
    return torch.bernoulli(p, generator=generator).to(x.dtype)


def direct_encode(x: torch.Tensor, num_steps: int) -> torch.Tensor:
    """Direct (current) coding: repeat the analog value as input current at every step.

    Example:
        >>> direct_encode(torch.tensor([[0.2, 0.7]]), 3)[:, 0, 1].tolist()
        [0.699999988079071, 0.699999988079071, 0.699999988079071]
    """
    x, num_steps = _check_input(x, num_steps, "direct_encode", unit_range=False)
    if not all_finite(x):
        raise ValueError("direct_encode: x contains inf values.")
    return x.unsqueeze(0).repeat((num_steps,) + (1,) * x.dim())


class LatencyEncoder:
    """Callable transform wrapping :func:`latency_encode`.

    Example:
        >>> enc = LatencyEncoder(num_steps=10)
        >>> enc(torch.rand(4, 64)).shape
        torch.Size([10, 4, 64])
    """

    def __init__(self, num_steps: int, tau: float | None = None, threshold: float = 0.01, linear: bool = True) -> None:
        num_steps = _check_steps(num_steps, "LatencyEncoder")
        _, linear = _check_latency_settings(tau, threshold, linear, "LatencyEncoder")  # at construction
        self.num_steps, self.tau, self.threshold, self.linear = num_steps, tau, threshold, linear

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return latency_encode(x, self.num_steps, tau=self.tau, threshold=self.threshold, linear=self.linear)

    def __repr__(self) -> str:
        return f"LatencyEncoder(num_steps={self.num_steps}, tau={self.tau}, threshold={self.threshold}, linear={self.linear})"


class RateEncoder:
    """Callable transform wrapping :func:`rate_encode`; owns a seeded generator for reproducibility.

    In a DataLoader worker process the generator is re-seeded from ``seed`` and the worker's own seed
    (``torch.utils.data.get_worker_info().seed``, new for every worker and epoch, reproducible when the
    loader has a seeded ``generator``), so workers and epochs draw different spikes instead of each
    repeating the copy of the generator it was given.

    Example:
        >>> enc = RateEncoder(num_steps=20, seed=0)
        >>> enc(torch.rand(4, 64)).shape
        torch.Size([20, 4, 64])
    """

    def __init__(self, num_steps: int, gain: float = 1.0, seed: int | None = None) -> None:
        num_steps, seed = _check_steps(num_steps, "RateEncoder"), None if seed is None else as_seed(seed, "RateEncoder")
        check_non_negative(gain, "gain", "RateEncoder")  # at construction, not at the first call
        self.num_steps, self.gain, self.seed = num_steps, gain, seed
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self._worker_seed: int | None = None

    def _reseed_in_worker(self) -> None:
        info = torch.utils.data.get_worker_info()
        if self.generator is None or info is None or self._worker_seed == info.seed:
            return
        self._worker_seed = info.seed
        self.generator = torch.Generator(self.generator.device).manual_seed(
            (int(self.seed) * 1_000_003 + int(info.seed)) % (2**63))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._reseed_in_worker()
        gen = self.generator
        if gen is not None and gen.device != x.device:  # inputs moved to a GPU: a seeded generator there
            self.generator = gen = torch.Generator(x.device).manual_seed(int(self.seed))
        return rate_encode(x, self.num_steps, gain=self.gain, generator=gen)

    def __repr__(self) -> str:
        return f"RateEncoder(num_steps={self.num_steps}, gain={self.gain}, seed={self.seed})"


class DirectEncoder:
    """Callable transform wrapping :func:`direct_encode`.

    Example:
        >>> DirectEncoder(num_steps=5)(torch.rand(2, 3)).shape
        torch.Size([5, 2, 3])
    """

    def __init__(self, num_steps: int) -> None:
        self.num_steps = _check_steps(num_steps, "DirectEncoder")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return direct_encode(x, self.num_steps)

    def __repr__(self) -> str:
        return f"DirectEncoder(num_steps={self.num_steps})"
