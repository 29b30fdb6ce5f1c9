"""Spike counts from recorded spike trains (e.g. ``Monitor.spikes``), per sample, per layer and per neuron.

Every neuron type is counted the same way: a spike is a non-zero entry of a LIF layer's output
``[T, B, ...]`` (deterministic, ``max_spikes=1``, noisy, ...). These are the spikes a layer emits:
for a layer with fused masking (``LIF(mask_p=...)``, training or ``mask_at_inference``) the ones it
transmits, for an LIF followed by a separate ``SpikeMask`` those before the mask. What the next
layers receive is counted by :mod:`snnlab.metrics.synops` either way.
"""
from __future__ import annotations

from typing import Mapping

import pandas as pd
import torch

__all__ = ["layer_spike_counts", "neuron_spike_counts", "neuron_spike_table", "total_spike_counts"]


def _check(name: str, s: torch.Tensor) -> None:
    if not isinstance(s, torch.Tensor) or s.dim() < 2:
        raise ValueError(f"spike counts: layer {name!r} needs a time-major tensor [T, B, ...], "
                         f"got {getattr(s, 'shape', type(s))}")


def layer_spike_counts(spikes: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{layer: [B]}`` number of spikes each sample emitted in each layer (``[T, B, ...]`` inputs).

    Example:
        >>> s = torch.zeros(4, 2, 3); s[0, 0, 1] = 1; s[3, 0, 2] = 1; s[1, 1, 0] = 1
        >>> layer_spike_counts({"1": s})["1"].tolist()
        [2.0, 1.0]
    """
    out = {}
    for name, s in spikes.items():
        _check(name, s)
        nz = (s != 0).to(torch.float64)
        out[name] = nz.transpose(0, 1).reshape(s.shape[1], -1).sum(1)
    return out


def total_spike_counts(spikes: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``[B]`` spikes per sample summed over all the given layers."""
    counts = list(layer_spike_counts(spikes).values())
    if not counts:
        raise ValueError("total_spike_counts: no layers given")
    return torch.stack(counts).sum(0)


def neuron_spike_counts(spikes: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{layer: [B, N]}`` spikes of each neuron in each sample (extra neuron dims are flattened)."""
    out = {}
    for name, s in spikes.items():
        _check(name, s)
        out[name] = (s != 0).to(torch.float64).sum(0).reshape(s.shape[1], -1)
    return out


def neuron_spike_table(totals: Mapping[str, torch.Tensor], n_samples: int | None = None) -> pd.DataFrame:
    """Tidy per-neuron table with columns ``layer, neuron, spikes_per_sample``.

    ``totals`` maps a layer name either to per-neuron counts summed over ``n_samples`` samples
    (a 1-D tensor ``[N]``; give ``n_samples``) or to recorded spikes ``[T, B, ...]`` (then
    ``n_samples`` defaults to ``B``).
    """
    rows = []
    for name, t in totals.items():
        if t.dim() >= 2:
            per = neuron_spike_counts({name: t})[name]
            n, summed = (per.shape[0] if n_samples is None else n_samples), per.sum(0)
        else:
            if n_samples is None:
                raise ValueError("neuron_spike_table: give n_samples for summed per-neuron counts")
            n, summed = n_samples, t.to(torch.float64)
        if n <= 0:
            raise ValueError(f"neuron_spike_table: n_samples must be positive, got {n}")
        for i, v in enumerate((summed / n).tolist()):
            rows.append((name, i, float(v)))
    return pd.DataFrame(rows, columns=["layer", "neuron", "spikes_per_sample"]).astype(
        {"layer": str, "neuron": "int64", "spikes_per_sample": "float64"})
