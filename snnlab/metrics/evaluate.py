"""One pass over a loader that measures accuracy, loss, spikes, SynOps, energy and latency.

:func:`evaluate` returns a plain dict (a contract other parts of snnlab rely on)::

    {"accuracy", "loss", "spikes_per_sample", "spikes_per_layer", "synops_per_sample",
     "macs_per_sample", "energy_per_sample_j", "latency_steps", "n_samples"}

Accounting (the same for every neuron type -- deterministic, ``max_spikes=1``, noisy, masked):

* spikes: emitted spikes of every :class:`~snnlab.LIF` layer (recorded by a :class:`~snnlab.Monitor`;
  for a layer with fused masking, ``LIF(mask_p=...)``, the spikes it transmits);
* SynOps / MACs: inputs received by ``nn.Linear`` / ``DelayedLinear`` layers
  (:mod:`snnlab.metrics.synops`; after masking, the masked spikes are counted);
* energy: :func:`snnlab.metrics.energy.energy_j` (0.9 pJ per AC, 4.6 pJ per MAC, 45 nm);
* latency: :func:`snnlab.metrics.latency.decision_latency` (undecided samples count as ``T``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from snnlab.core.network import Monitor
from snnlab.core.neurons import LIF
from snnlab.core.readout import READOUTS, logits

from ._common import batches, eval_mode, model_output, resolve_device
from .energy import E_AC_J, E_MAC_J, energy_j
from .latency import decision_latency, mean_latency
from .spikes import layer_spike_counts, neuron_spike_counts, neuron_spike_table
from .synops import SynOpsCounter

__all__ = ["EVALUATE_KEYS", "EvalRecord", "collect", "evaluate", "metrics_table", "per_neuron_spike_counts",
           "synops_table"]

EVALUATE_KEYS = ("accuracy", "loss", "spikes_per_sample", "spikes_per_layer", "synops_per_sample",
                 "macs_per_sample", "energy_per_sample_j", "latency_steps", "n_samples")


@dataclass
class EvalRecord:
    """Everything measured in one pass (totals over all samples); :func:`evaluate` summarises it."""

    readout: str
    n_samples: int = 0
    correct: int = 0
    loss_sum: float = 0.0
    layer_spikes: dict[str, float] = field(default_factory=dict)          # total spikes per LIF layer
    neuron_spikes: dict[str, torch.Tensor] = field(default_factory=dict)  # [N] totals per LIF layer
    latencies: list[torch.Tensor] = field(default_factory=list)           # per-sample, per batch
    synops: SynOpsCounter | None = None

    def latency(self) -> torch.Tensor:
        """Per-sample decision latencies ``[n_samples]`` in steps."""
        return torch.cat(self.latencies) if self.latencies else torch.zeros(0, dtype=torch.float64)


def collect(model: nn.Module, loader: Iterable, readout: str = "membrane_sum", device=None,
            max_batches: int | None = None) -> EvalRecord:
    """Run ``model`` over ``loader`` (eval mode, no grad; training mode restored) and gather totals."""
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}; choose one of {list(READOUTS)}")
    dev = resolve_device(model, device)
    rec = EvalRecord(readout=readout)
    with eval_mode(model), Monitor(model) as mon, SynOpsCounter(model) as counter:
        lif_names = [n for n, m in mon.layers.items() if isinstance(m, LIF)]
        rec.layer_spikes = {n: 0.0 for n in lif_names}
        rec.synops = counter
        for x, y in batches(loader, max_batches):
            x, y = x.to(dev), y.to(dev)
            mon.spikes.clear()
            out = model_output(model, x)
            z = logits(out, readout)
            rec.loss_sum += float(F.cross_entropy(z.float(), y, reduction="sum"))
            rec.correct += int((z.argmax(-1) == y).sum())
            rec.n_samples += y.numel()
            rec.latencies.append(decision_latency(out, readout, y))
            recorded = {n: mon.spikes[n] for n in lif_names if n in mon.spikes}
            for n, c in layer_spike_counts(recorded).items():
                rec.layer_spikes[n] += float(c.sum())
            for n, c in neuron_spike_counts(recorded).items():
                total = c.sum(0).cpu()
                rec.neuron_spikes[n] = total if n not in rec.neuron_spikes else rec.neuron_spikes[n] + total
    if rec.n_samples == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    return rec


def _summary(rec: EvalRecord, e_ac: float, e_mac: float) -> dict:
    n = rec.n_samples
    per_layer = {name: total / n for name, total in rec.layer_spikes.items()}
    acs, macs = rec.synops.acs_per_sample(), rec.synops.macs_per_sample()
    return {
        "accuracy": rec.correct / n,
        "loss": rec.loss_sum / n,
        "spikes_per_sample": float(sum(per_layer.values())),
        "spikes_per_layer": per_layer,
        "synops_per_sample": acs,
        "macs_per_sample": macs,
        "energy_per_sample_j": energy_j(acs, macs, e_ac, e_mac),
        "latency_steps": mean_latency(rec.latency()),
        "n_samples": n,
    }


def evaluate(model: nn.Module, loader: Iterable, readout: str = "membrane_sum", device=None,
             max_batches: int | None = None, *, e_ac: float = E_AC_J, e_mac: float = E_MAC_J) -> dict:
    """Accuracy, loss and cost of ``model`` on ``loader`` (yielding ``(x [T, B, F], y [B])``).

    Returns ``{"accuracy", "loss" (mean cross-entropy of logits(out, readout)), "spikes_per_sample"
    (emitted spikes of all LIF layers), "spikes_per_layer" ({LIF layer name: spikes per sample}),
    "synops_per_sample" (ACs), "macs_per_sample", "energy_per_sample_j", "latency_steps" (mean
    decision latency, undecided samples counted as T), "n_samples"}``. Runs under ``torch.no_grad``
    in eval mode and restores the model's training mode afterwards. ``e_ac`` / ``e_mac``: joules per
    accumulate / multiply-accumulate (default 0.9 pJ / 4.6 pJ, 45 nm, Horowitz ISSCC 2014).
    """
    return _summary(collect(model, loader, readout, device, max_batches), e_ac, e_mac)


def per_neuron_spike_counts(model: nn.Module, loader: Iterable, device=None, max_batches: int | None = None,
                            readout: str = "membrane_sum") -> pd.DataFrame:
    """Tidy ``layer, neuron, spikes_per_sample`` table of every LIF neuron's mean spike count."""
    rec = collect(model, loader, readout, device, max_batches)
    return neuron_spike_table(rec.neuron_spikes, rec.n_samples)


def synops_table(model: nn.Module, loader: Iterable, device=None, max_batches: int | None = None,
                 readout: str = "membrane_sum", e_ac: float = E_AC_J, e_mac: float = E_MAC_J) -> pd.DataFrame:
    """Per synaptic layer: ``layer, in_features, out_features, binary_input, input_events_per_sample,
    acs_per_sample, macs_per_sample, energy_per_sample_j``."""
    rec = collect(model, loader, readout, device, max_batches)
    df = rec.synops.table()
    df["energy_per_sample_j"] = [energy_j(a, m, e_ac, e_mac) for a, m in zip(df["acs_per_sample"], df["macs_per_sample"])]
    return df


def metrics_table(results: Sequence[dict] | Mapping[str, dict], names: Sequence[str] | None = None,
                  per_layer: bool = True) -> pd.DataFrame:
    """One row per :func:`evaluate` result; scalar metrics as columns.

    ``results`` is a list of dicts (``names`` optionally labels them in a ``"model"`` column) or a
    ``{name: result}`` mapping. With ``per_layer=True`` the ``spikes_per_layer`` dict becomes
    columns ``"spikes_per_layer[<layer>]"`` (NaN where a model has no such layer).
    """
    if isinstance(results, Mapping):
        if names is not None:
            raise ValueError("metrics_table: give names only with a list of results")
        names, results = list(results.keys()), list(results.values())
    results = list(results)
    if names is not None and len(names) != len(results):
        raise ValueError(f"metrics_table: {len(names)} names for {len(results)} results")
    rows = []
    for i, r in enumerate(results):
        row = {} if names is None else {"model": names[i]}
        for k, v in r.items():
            if isinstance(v, Mapping):
                if per_layer:
                    row.update({f"{k}[{layer}]": float(x) for layer, x in v.items()})
            else:
                row[k] = v
        rows.append(row)
    return pd.DataFrame(rows)
