"""One pass over a loader that measures accuracy, loss, spikes, SynOps, energy and latency.

:func:`evaluate` returns a plain dict (a contract other parts of snnlab rely on)::

    {"accuracy", "loss", "spikes_per_sample", "spikes_per_layer", "activation_sparsity",
     "synops_per_sample", "macs_per_sample", "energy_per_sample_j", "latency_steps", "n_samples"}

Accounting (the same for every neuron type -- deterministic, ``max_spikes=1``, noisy, masked):

* spikes: the output spikes of every :class:`~snnlab.LIF` layer (recorded by a :class:`~snnlab.Monitor`;
  a layer called several times in one forward, e.g. shared by several places, counts all its calls; each call is a
  whole sequence from rest, so calls one step at a time do not continue the membrane). Only
  ``LIF`` layers and their subclasses are counted: a neuron written as another ``nn.Module`` is invisible, and
  a model without any ``LIF`` layer gets a warning (its spike counts are 0).
  With masking active at inference this differs between the two forms of the same function: a layer
  with fused masking, ``LIF(mask_p=..., mask_at_inference=True)``, outputs (and is counted with) the
  spikes it *transmits*, while an ``LIF`` whose output a :class:`~snnlab.SpikeMask` takes is counted with the
  spikes it *fires* (the mask is a separate layer). :func:`spike_accounting_table` gives both counts
  side by side (fired spikes are not observable inside a fused layer); it pairs each mask with the LIF whose
  output the mask takes in the forward pass, wherever the two are defined (:class:`MaskFlow`);
* SynOps / MACs: inputs received by ``nn.Linear`` / ``DelayedLinear`` / ``nn.Conv1d/2d/3d`` /
  ``nn.ConvTranspose1d/2d/3d`` layers (:mod:`snnlab.metrics.synops`; after masking, the transmitted spikes are
  counted, either form), summed over all calls of a layer;
* per sample: every total (spikes, SynOps, MACs, energy) is divided by the samples :func:`evaluate` fed (the
  batch sizes of the loader's ``[T, B, ...]`` batches), whatever layout the layers see inside the model
  (time flattened into the batch, or one step per call of a synaptic layer);
* inputs: each batch is cast to the floating dtype of the model's first floating parameter (integer or bool
  event frames, float32 data for a float64 / bfloat16 model);
* energy: :func:`snnlab.metrics.energy.energy_j` (0.9 pJ per AC, 4.6 pJ per MAC, 45 nm);
* accuracy: :func:`snnlab.core.readout.predict` (a tie for the top score, e.g. a silent output, is
  no decision and counts as wrong; the loss uses the logits as they are);
* latency: :func:`snnlab.metrics.latency.decision_latency` (undecided samples count as ``T``).

Random layers at inference (``noisy_eval``, ``mask_at_inference``): every pass starts from the same
random state and restores it afterwards (the layers' own generators and torch's global one, see
:func:`~snnlab.metrics._common.same_model_randomness`), as the loader's are, so evaluating twice gives the
same numbers and does not move the random streams training sees.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from snnlab.core.masking import SpikeMask
from snnlab.core.network import Monitor, carry_suspended, neuron_layers
from snnlab.core.validation import as_seed
from snnlab.core.neurons import LIF
from snnlab.core.readout import READOUTS, decide, logits, tie_tolerance

from ._common import (batches, check_labels, eval_mode, input_dtype, model_input, model_output, resolve_device,
                      same_model_randomness, warn_seed_unused)
from .energy import E_AC_J, E_MAC_J, energy_j
from .latency import decision_latency, mean_latency
from .spikes import layer_spike_counts, neuron_spike_counts, neuron_spike_table
from .synops import SynOpsCounter

__all__ = ["EVALUATE_KEYS", "EvalRecord", "collect", "evaluate", "metrics_table", "per_neuron_spike_counts",
           "spike_accounting_table", "synops_table"]

EVALUATE_KEYS = ("accuracy", "loss", "spikes_per_sample", "spikes_per_layer", "activation_sparsity",
                 "synops_per_sample", "macs_per_sample", "energy_per_sample_j", "latency_steps", "n_samples")


@dataclass
class EvalRecord:
    """Everything measured in one pass (totals over all samples); :func:`evaluate` summarises it."""

    readout: str
    n_samples: int = 0
    correct: int = 0
    loss_sum: float = 0.0
    layer_spikes: dict[str, float] = field(default_factory=dict)          # total output spikes per LIF layer
    neuron_steps: float = 0.0                                             # total LIF neuron-steps (T * neurons)
    transmitted_spikes: dict[str, float] = field(default_factory=dict)    # total spikes passed on per LIF layer
    masking: dict[str, str] = field(default_factory=dict)                 # per LIF layer: none / fused / SpikeMask name
    neuron_spikes: dict[str, torch.Tensor] = field(default_factory=dict)  # [N] totals per LIF layer
    latencies: list[torch.Tensor] = field(default_factory=list)           # per-sample, per batch
    synops: SynOpsCounter | None = None

    def latency(self) -> torch.Tensor:
        """Per-sample decision latencies ``[n_samples]`` in steps."""
        return torch.cat(self.latencies) if self.latencies else torch.zeros(0, dtype=torch.float64)


def collect(model: nn.Module, loader: Iterable, readout: str = "membrane_sum", device=None,
            max_batches: int | None = None, seed: int | None = None, fn: str = "evaluate") -> EvalRecord:
    """Run ``model`` over ``loader`` (eval mode, no grad; training mode restored) and gather totals
    (``seed``: see :func:`evaluate`; ``fn``, the caller, names it in errors)."""
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}; choose one of {list(READOUTS)}")
    dev = resolve_device(model, device)
    rec = EvalRecord(readout=readout)
    modules = dict(model.named_modules())
    # only masks that drop spikes at inference transmit other counts than their LIF fires
    masks = {n: m for n, m in modules.items() if isinstance(m, SpikeMask) and _mask_active(m)}
    neurons = list(neuron_layers(model))  # (named: no second warning from Monitor)
    if not any(isinstance(m, LIF) for m in modules.values()):
        warnings.warn(f"{fn}: the model has no snnlab.LIF layer, so no spikes are counted (spikes_per_sample = 0): "
                      f"neuron layers must subclass snnlab.LIF (or snnlab.LI, which does not spike) to be counted",
                      UserWarning, stacklevel=3)
    with eval_mode(model), carry_suspended(model), same_model_randomness(model, dev, seed=seed), \
            Monitor(model, neurons, membrane=False) as mon, SynOpsCounter(model) as counter, \
            MaskFlow(model, masks) as flow:
        lif_names = [n for n, m in mon.layers.items() if isinstance(m, LIF)]
        rec.layer_spikes = {n: 0.0 for n in lif_names}
        rec.synops = counter
        _collect_batches(model, loader, readout, dev, max_batches, rec, mon, lif_names, fn)
    for n in rec.layer_spikes:
        passed = flow.passed_on.get(n)
        if passed:
            rec.masking[n] = "SpikeMask " + ", ".join(passed)
            rec.transmitted_spikes[n] = float(sum(passed.values()))
        else:
            rec.masking[n] = "fused" if modules[n].mask_p > 0 and modules[n].mask_at_inference else "none"
            rec.transmitted_spikes[n] = rec.layer_spikes[n]
    if rec.n_samples == 0:
        raise ValueError(f"{fn}: the loader yielded no samples")
    return rec


def _mask_active(mask: SpikeMask) -> bool:
    return mask.p > 0 and mask.mask_at_inference


class MaskFlow:
    """Hooks that find, while the model runs, which LIF's spikes each of the ``masks`` (``{name: SpikeMask}``) passes
    on, and count them: ``passed_on`` is ``{LIF name: {mask name: spikes passed on}}`` (totals, on the device).

    A mask call masks the LIF whose output of the same forward pass is its input (that tensor or a view of it:
    a slice, a reshape, a flatten), wherever the two are defined in the model. A call whose input is no LIF's output
    (the spikes went through another operation first) counts for the LIF that the mask directly follows in
    definition order (:func:`_masks_after_lif`), if any; otherwise it masks no LIF's spikes and is not counted.
    A mask shared by several LIFs counts each call for its own LIF.

    Example:
        >>> import snnlab as sl
        >>> class Net(torch.nn.Module):                       # the mask is defined after lif_b, but masks lif_a
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.lif_a, self.lif_b, self.mask = sl.LIF(), sl.LIF(), sl.SpikeMask(0.5)
        ...     def forward(self, x):
        ...         return self.lif_b(self.mask(self.lif_a(x)))
        >>> net = Net()
        >>> with MaskFlow(net, {"mask": net.mask}) as flow:
        ...     _ = net(torch.ones(3, 1, 2))
        >>> {lif: list(per) for lif, per in flow.passed_on.items()}
        {'lif_a': ['mask']}
    """

    def __init__(self, model: nn.Module, masks: Mapping[str, SpikeMask]) -> None:
        self.passed_on: dict[str, dict[str, torch.Tensor]] = {}
        self._model, self._masks = model, dict(masks)
        self._outputs: dict[tuple, tuple[str, torch.Tensor]] = {}  # storage -> (LIF, its output, held for the pass)
        self._handles: list = []

    def __enter__(self) -> "MaskFlow":
        if not self._masks:  # nothing to pair: no hooks
            return self
        after = {mask: lif for lif, mask in _masks_after_lif(self._model).items()}
        model = self._model
        self._handles = [model.register_forward_pre_hook(self._forget), model.register_forward_hook(self._forget)]
        # (hooks run eagerly under torch.compile: traced, each batch's storage addresses would compile them anew)
        self._handles += [m.register_forward_hook(torch.compiler.disable(self._lif_hook(n)))
                          for n, m in model.named_modules() if isinstance(m, LIF)]
        self._handles += [m.register_forward_hook(torch.compiler.disable(self._mask_hook(n, after.get(n))))
                          for n, m in self._masks.items()]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles, self._outputs = [], {}

    def _forget(self, *_) -> None:
        """Before and after each forward of the model: the LIF outputs of one pass only (no tensor held after it)."""
        self._outputs = {}

    def _lif_hook(self, name: str):
        def hook(module: nn.Module, inputs, output) -> None:
            key = _storage_key(output)
            if key is not None:
                self._outputs[key] = (name, output)  # held: its memory cannot pass to another tensor in this pass
        return hook

    def _mask_hook(self, name: str, after: str | None):
        def hook(module: nn.Module, inputs, output) -> None:  # summed on the device: no sync per batch
            source = self._outputs.get(_storage_key(inputs[0])) if inputs else None
            lif = source[0] if source is not None else after
            if lif is not None:
                counts = self.passed_on.setdefault(lif, {})
                counts[name] = counts.get(name, 0) + torch.count_nonzero(output.detach())
        return hook


def _storage_key(t: object) -> tuple | None:
    """What identifies the memory of tensor ``t`` (shared by its views), or None where there is none to compare."""
    if not isinstance(t, torch.Tensor) or t.layout != torch.strided or t.numel() == 0:
        return None
    try:
        return t.device, t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # (tensors without storage: functorch wrappers, fake tensors)
        return None


def _masks_after_lif(model: nn.Module) -> dict[str, str]:
    """``{LIF name: SpikeMask name}`` for every SpikeMask that directly follows an LIF among the model's layers in
    definition order (leaf modules and neuron layers, nested containers flattened: ``Sequential(Sequential(lin,
    lif), mask)`` pairs ``0.1`` with ``1``): :class:`MaskFlow`'s rule for a mask call whose input is no LIF's
    output."""
    layers: list[tuple[str, nn.Module]] = []
    inside = None  # the prefix of a neuron layer's own children (an ALIF's recurrent synapses), skipped
    for name, module in model.named_modules():
        if inside is not None and name.startswith(inside):
            continue
        if isinstance(module, LIF):
            layers.append((name, module))
            inside = f"{name}." if name else None
        elif not any(True for _ in module.children()):
            layers.append((name, module))
    return {a: b for (a, ma), (b, mb) in zip(layers, layers[1:]) if isinstance(ma, LIF) and isinstance(mb, SpikeMask)}


def _collect_batches(model: nn.Module, loader: Iterable, readout: str, dev: torch.device, max_batches: int | None,
                     rec: EvalRecord, mon: Monitor, lif_names: list[str], fn: str) -> None:
    dtype = input_dtype(model)
    for i, (x, y) in enumerate(batches(loader, max_batches, fn)):
        x = model_input(x, dev, dtype)
        mon.reset()  # the records of this batch only (a layer called per step joins its calls, see Monitor)
        out = model_output(model, x, readout if i == 0 else None, fn)  # (the first batch: an LI's membrane refused)
        z = logits(out, readout)
        y = check_labels(y, fn, "y", n_classes=z.shape[-1]).to(dev)  # on the host, before the loss indexes with them
        rec.loss_sum += float(F.cross_entropy(z.float(), y, reduction="sum"))
        hit = (decide(z.detach(), tie_tolerance(readout, out.shape[0], z.dtype)) == y).cpu()  # the final decision
        rec.correct += int(hit.sum())
        rec.n_samples += y.numel()
        # the labels are checked: latency of the stable decision, T where it is not the correct one
        rec.latencies.append(torch.where(hit, decision_latency(out, readout), float(out.shape[0])))
        recorded = {n: mon.spikes[n] for n in lif_names if n in mon.spikes}
        rec.neuron_steps += float(sum(s.numel() for s in recorded.values()))
        for n, c in layer_spike_counts(recorded).items():
            rec.layer_spikes[n] += float(c.sum())
        for n, c in neuron_spike_counts(recorded).items():
            total = c.sum(0).cpu()
            rec.neuron_spikes[n] = total if n not in rec.neuron_spikes else rec.neuron_spikes[n] + total


def _summary(rec: EvalRecord, e_ac: float, e_mac: float) -> dict:
    n = rec.n_samples
    per_layer = {name: total / n for name, total in rec.layer_spikes.items()}
    acs, macs = rec.synops.acs_per_sample(n), rec.synops.macs_per_sample(n)  # per sample fed, not per layer call
    return {
        "accuracy": rec.correct / n,
        "loss": rec.loss_sum / n,
        "spikes_per_sample": float(sum(per_layer.values())),
        "spikes_per_layer": per_layer,
        "activation_sparsity": 1.0 - sum(rec.layer_spikes.values()) / rec.neuron_steps if rec.neuron_steps else math.nan,
        "synops_per_sample": acs,
        "macs_per_sample": macs,
        "energy_per_sample_j": energy_j(acs, macs, e_ac, e_mac),
        "latency_steps": mean_latency(rec.latency()),
        "n_samples": n,
    }


def evaluate(model: nn.Module, loader: Iterable, readout: str = "membrane_sum", device=None,
             max_batches: int | None = None, *, e_ac: float = E_AC_J, e_mac: float = E_MAC_J,
             seed: int | None = None) -> dict:
    """Accuracy, loss and cost of ``model`` on ``loader`` (yielding ``(x [T, B, F], y [B])``).

    ``model(x)`` returns the time-major output ``[T, B, C]`` that ``readout`` reads; of a tuple or list it returns,
    the first element is scored (``(spikes, membrane)`` scores the spikes: put the output to score first), as the
    :class:`~snnlab.training.Trainer` trains it, and anything else (a dict, None) is a ``TypeError`` saying how to
    fix the model (:func:`~snnlab.metrics.model_output`).

    ``y`` holds integer class indices in ``[0, C)`` for a model with ``C`` outputs (float labels are refused, not
    truncated). An empty batch (``B = 0``) is skipped; a batch with ``T = 0`` steps is an error.

    Returns ``{"accuracy" (a tie for the top score, e.g. a silent output, counts as wrong), "loss" (mean
    cross-entropy of logits(out, readout)), "spikes_per_sample" (output spikes of all LIF layers, every call
    counted; a model without an LIF layer warns), "spikes_per_layer" ({LIF layer name: spikes per sample}),
    "activation_sparsity" (the fraction of LIF neuron-steps without a spike, NeuroBench's activation sparsity; NaN
    without LIF layers),
    "synops_per_sample" (ACs), "macs_per_sample", "energy_per_sample_j", "latency_steps" (mean decision latency,
    undecided samples counted as T), "n_samples"}`` (every per-sample figure: a total divided by the samples
    fed). Runs under ``torch.no_grad`` in eval mode and restores the model's training mode afterwards; each batch
    holds whole sequences and runs from rest whatever the layers' ``carry_state`` (:class:`~snnlab.LIF`), and a
    membrane carried from before the call is put back afterwards (:func:`snnlab.carry_suspended`); random
    layers start every call from the same state (see the module docstring), so a noisy network evaluated twice
    gives the same numbers: pass another ``seed`` for another draw of the noise (it seeds torch's generators inside the call; layers with a generator of their own keep
    theirs, with a warning where they draw at inference). With ``seed=None`` (the default) unseeded noisy layers
    draw from torch's global generators as they stand when the call begins (``torch.manual_seed`` before it chooses
    the draw), while :func:`~snnlab.metrics.robustness_curve` always seeds them (its ``seed``, 0 by default): a noisy
    model's ``evaluate(model, loader, seed=s)`` gives the accuracy of ``robustness_curve(model, loader, kind,
    [0.0], seed=s)`` at level 0, any ``kind``; ``evaluate(model, loader)`` in general does not. Each batch is cast to the floating dtype of the model's first floating parameter (integer or bool
    event frames included). ``e_ac`` / ``e_mac``: joules per accumulate / multiply-accumulate (default 0.9 pJ /
    4.6 pJ, 45 nm, Horowitz ISSCC 2014).

    Spikes with masking at inference: a fused ``LIF(mask_p=p, mask_at_inference=True)`` counts the spikes
    it *transmits* (its output), an ``LIF`` whose output goes through a ``SpikeMask(p, mask_at_inference=True)``
    the spikes it *fires* (about ``1 / (1 - p)`` times more); SynOps count the transmitted spikes for both.
    :func:`spike_accounting_table` shows output, fired and transmitted spikes per layer.

    Samples of different lengths (event loaders with ``time_window`` and no ``duration``) are zero-padded to the
    longest of their batch and the network runs on through the padding (spiking there too when batch norm turns
    the zeros into a constant current), so their numbers depend on how they are batched: give a ``duration``,
    pad every batch to one length (``make_neuromorphic_loader(n_steps=...)``, :class:`snnlab.data.PadCollate`),
    or evaluate with ``batch_size=1``, for numbers per sample.

    Example:
        >>> import snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(2, 2, bias=False), sl.LIF(), torch.nn.Linear(2, 2, bias=False), sl.LI())
        >>> r = evaluate(net, [(torch.zeros(3, 2, 2), torch.tensor([0, 1]))])   # silent: no decision
        >>> r["accuracy"], r["latency_steps"]
        (0.0, 3.0)
    """
    energy_j(0, 0, e_ac, e_mac)  # checks the energies per operation before the pass
    seed = None if seed is None else as_seed(seed, "evaluate")
    if seed is not None:
        warn_seed_unused(model, "evaluate")
    return _summary(collect(model, loader, readout, device, max_batches, seed), e_ac, e_mac)


def per_neuron_spike_counts(model: nn.Module, loader: Iterable, device=None, max_batches: int | None = None,
                            readout: str = "membrane_sum") -> pd.DataFrame:
    """Tidy ``layer, neuron, spikes_per_sample`` table of every LIF neuron's mean spike count."""
    rec = collect(model, loader, readout, device, max_batches, fn="per_neuron_spike_counts")
    return neuron_spike_table(rec.neuron_spikes, rec.n_samples)


def spike_accounting_table(model: nn.Module, loader: Iterable, device=None, max_batches: int | None = None,
                           readout: str = "membrane_sum") -> pd.DataFrame:
    """Per LIF layer: ``layer, masking`` (``"none"``, ``"fused"`` for ``LIF(mask_p, mask_at_inference=True)``,
    ``"SpikeMask <name>"`` for the mask that takes the layer's output in the forward pass, ``"SpikeMask <a>,
    <b>"`` for several), ``output_spikes_per_sample`` (what :func:`evaluate` counts), ``fired_spikes_per_sample``
    (NaN for a fused mask: the fired spikes are not observable inside the kernel) and
    ``transmitted_spikes_per_sample`` (what the next layer receives: what its masks pass on).

    A mask is paired by data flow, wherever it is defined in the model: it masks the LIF whose output (that tensor,
    or a view of it such as a slice or a reshape) is its input in the same forward pass. Only a mask fed the spikes
    through another operation first (``mask(lif(x) * 2)``) is paired by its place: with the LIF it directly follows
    among the model's layers in definition order, as in an :class:`snnlab.Sequential` (:class:`MaskFlow`).

    Example:
        >>> import snnlab as sl
        >>> lin = torch.nn.Linear(1, 2, bias=False); _ = torch.nn.init.constant_(lin.weight, 2.0)
        >>> net = sl.Sequential(lin, sl.LIF(beta=0.0), sl.SpikeMask(0.5, mask_at_inference=True, seed=0))
        >>> df = spike_accounting_table(net, [(torch.ones(5, 1, 1), torch.tensor([0]))])
        >>> df.iloc[:, :4].values.tolist(), bool(df["transmitted_spikes_per_sample"].lt(10).all())  # 2 neurons x 5 steps
        ([['1', 'SpikeMask 2', 10.0, 10.0]], True)
    """
    rec = collect(model, loader, readout, device, max_batches, fn="spike_accounting_table")
    n = rec.n_samples
    rows = [(name, rec.masking[name], out / n, math.nan if rec.masking[name] == "fused" else out / n,
             rec.transmitted_spikes[name] / n) for name, out in rec.layer_spikes.items()]
    return pd.DataFrame(rows, columns=["layer", "masking", "output_spikes_per_sample", "fired_spikes_per_sample",
                                       "transmitted_spikes_per_sample"])


def synops_table(model: nn.Module, loader: Iterable, device=None, max_batches: int | None = None,
                 readout: str = "membrane_sum", e_ac: float = E_AC_J, e_mac: float = E_MAC_J) -> pd.DataFrame:
    """Per synaptic layer: ``layer, in_features, out_features`` (channels for a convolution), ``binary_input,
    input_events_per_sample, acs_per_sample, macs_per_sample, energy_per_sample_j`` (per sample fed)."""
    energy_j(0, 0, e_ac, e_mac)  # checks the energies per operation before the pass
    rec = collect(model, loader, readout, device, max_batches, fn="synops_table")
    df = rec.synops.table(rec.n_samples)
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
