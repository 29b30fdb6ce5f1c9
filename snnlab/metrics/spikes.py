"""Spike counts from recorded spike trains (e.g. ``Monitor.spikes``), per sample, per layer and per neuron.

Every neuron type is counted the same way: a spike is a non-zero entry of a LIF layer's output
``[T, B, ...]`` (deterministic, ``max_spikes=1``, noisy, ...); a layer called several times in one forward
(shared by several places) is recorded by :class:`~snnlab.Monitor` as its calls joined along time, so its counts
sum every call (each call is a whole sequence from rest: calls one step at a time do not continue the membrane,
see :class:`~snnlab.LIF`). The samples are counted from each tensor's batch dimension ``B``, never from calls: for a
stream fed in chunks (layers with ``carry_state=True``), each chunk's record holds more steps of the same ``B``
samples, so join the chunks' records along time (``torch.cat(chunks)``) or add their ``[B]`` counts, not their
batch sizes. What that output holds depends on where
spike masking (active in training, or at inference with ``mask_at_inference=True``) happens:

* fused masking, ``LIF(mask_p=p)``: the output is what the layer *transmits*; the spikes it fired (it
  still fires and resets) are not observable, so they are not counted;
* an ``LIF`` whose output goes through a separate :class:`~snnlab.SpikeMask`: the output is what the layer
  *fires*, the mask drops about a fraction ``p`` of it afterwards.

So the same function gives ``spikes_per_sample`` about ``1 - p`` times smaller in its fused form.
:func:`snnlab.metrics.spike_accounting_table` reports output, fired and transmitted spikes side by side,
and what the next layers receive (transmitted, either form) is what :mod:`snnlab.metrics.synops` counts.
"""
from __future__ import annotations

import math
from typing import Mapping

import pandas as pd
import torch

__all__ = ["layer_spike_counts", "neuron_spike_counts", "neuron_spike_table", "total_spike_counts"]


def _check(name: str, s: torch.Tensor) -> None:
    if not isinstance(s, torch.Tensor) or s.dim() < 2:
        raise ValueError(f"spike counts: layer {name!r} needs a time-major tensor [T, B, ...], "
                         f"got {getattr(s, 'shape', type(s))}")


def layer_spike_counts(spikes: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{layer: [B]}`` number of spikes each sample emitted in each layer (``[T, B, ...]`` inputs; empty ones,
    ``T = 0`` or ``B = 0``, give zero counts).

    Example:
        >>> s = torch.zeros(4, 2, 3); s[0, 0, 1] = 1; s[3, 0, 2] = 1; s[1, 1, 0] = 1
        >>> layer_spike_counts({"1": s})["1"].tolist()
        [2.0, 1.0]
    """
    out = {}
    for name, s in spikes.items():
        _check(name, s)
        nz = (s != 0).to(torch.float64)
        per_sample = s.shape[0] * math.prod(s.shape[2:])  # explicit: -1 is ambiguous for an empty batch
        out[name] = nz.transpose(0, 1).reshape(s.shape[1], per_sample).sum(1)
    return out


def total_spike_counts(spikes: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``[B]`` spikes per sample summed over all the given layers."""
    counts = layer_spike_counts(spikes)
    if not counts:
        raise ValueError("total_spike_counts: no layers given")
    sizes = {name: tuple(spikes[name].shape[:2]) for name in counts}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"total_spike_counts: the layers were recorded over different time steps or samples "
                         f"([T, B] per layer: {sizes}); give spikes of one pass")
    return torch.stack(list(counts.values())).sum(0)


def neuron_spike_counts(spikes: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``{layer: [B, N]}`` spikes of each neuron in each sample (extra neuron dims are flattened)."""
    out = {}
    for name, s in spikes.items():
        _check(name, s)
        out[name] = (s != 0).to(torch.float64).sum(0).reshape(s.shape[1], math.prod(s.shape[2:]))
    return out


def neuron_spike_table(totals: Mapping[str, torch.Tensor], n_samples: int | None = None) -> pd.DataFrame:
    """Tidy per-neuron table with columns ``layer, neuron, spikes_per_sample``.

    ``totals`` maps a layer name either to per-neuron counts summed over ``n_samples`` samples
    (a 1-D tensor ``[N]``; give ``n_samples``) or to recorded spikes ``[T, B, ...]`` (then
    ``n_samples`` defaults to ``B``).
    """
    rows = []
    for name, t in totals.items():
        if not isinstance(t, torch.Tensor) or t.dim() == 0:
            raise TypeError(f"neuron_spike_table: {name!r} must be per-neuron counts [N] or recorded spikes [T, B, ...] "
                            f"(a tensor), got {type(t).__name__}{' of 0 dimensions' if isinstance(t, torch.Tensor) else ''}")
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
