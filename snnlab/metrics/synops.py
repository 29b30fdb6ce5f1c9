"""Synaptic operations of synaptic layers (``nn.Linear``, :class:`snnlab.DelayedLinear`).

For each call of a synaptic layer with input ``x`` ``[T, B, ..., in]``, sample by sample (so a sample's
count never depends on the other samples of its batch, as long as they have the same length: samples of
different lengths zero-padded into one batch, see :func:`snnlab.data.time_major_collate`, are simulated
through the padding too):

* event input (every entry of the sample a non-negative integer: a spike train, or event counts from
  binning events into frames, where an entry of 2 is two events): every event is delivered to
  ``out_features`` synapses, so ``ACs = sum(x) * out_features`` accumulates (SynOps);
* any other (analog) input: the layer runs dense for that sample, ``MACs = T * in * out`` (times any
  extra middle dimensions).

For a :class:`~snnlab.DelayedLinear` an event only counts the synapses whose delay delivers it inside
the window: ``ACs = sum_{t,i} x[t, i] * #{j : t + d_ij < T}`` (an event delayed past the last step
never arrives). The delays are ``layer.delays``: the frozen integer delays after
:meth:`~snnlab.DelayedLinear.round_delays`, and ``round(clamp(positions))`` for the learnable
(Gaussian) form, which is thus counted as the rounded layer it becomes -- an estimate of the deployed
network; the Gaussian training form itself spreads each event over all ``max_delay`` taps, dense work
that is not counted.

The inputs are read by a forward-pre hook, so what is counted is what the layer actually receives:
after a :class:`snnlab.SpikeMask` or a masking LIF (``mask_p``) these are the masked (transmitted) spikes. Biases are not counted.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from snnlab.core.delays import DelayedLinear

__all__ = ["SYNAPTIC_TYPES", "LayerOps", "SynOpsCounter", "delivered_fanout", "event_samples", "is_binary",
           "is_event_input", "layer_ops", "synaptic_layers"]

SYNAPTIC_TYPES: tuple[type, ...] = (nn.Linear, DelayedLinear)


def is_binary(x: torch.Tensor) -> bool:
    """True when every entry of ``x`` is 0 or 1 (a spike train)."""
    if x.dtype == torch.bool:
        return True
    return bool(((x == 0) | (x == 1)).all())


def _event_entries(x: torch.Tensor) -> torch.Tensor:
    """Elementwise: the entry is a finite non-negative integer (a number of events)."""
    if x.dtype == torch.bool:
        return torch.ones_like(x, dtype=torch.bool)
    if x.is_complex():
        return torch.zeros_like(x, dtype=torch.bool)
    if not x.is_floating_point():
        return x >= 0
    return (torch.frac(x) == 0) & (x >= 0)  # frac is NaN for NaN and +-inf: they fail too


def is_event_input(x: torch.Tensor) -> bool:
    """True when every entry of ``x`` is a non-negative integer: spikes or event counts.

    Example:
        >>> is_event_input(torch.tensor([0., 1., 2.])), is_event_input(torch.tensor([0., 0.5])), is_event_input(torch.tensor([-1.]))
        (True, False, False)
    """
    return bool(_event_entries(x).all())


def event_samples(x: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: which samples of a time-major input ``[T, B, ...]`` are event input (non-negative
    integers); an input ``[T, F]`` without a batch dimension is one sample.

    Example:
        >>> x = torch.zeros(3, 2, 4); x[0, 0, 1] = 2.0; x[1, 1, 0] = 0.3
        >>> event_samples(x).tolist()
        [True, False]
    """
    ok = _event_entries(x)
    if ok.dim() < 3:
        ok = ok.unsqueeze(1)
    # explicit sizes (-1 is ambiguous for an empty input, T = 0 or B = 0); a view: no copy of the mask
    return ok.reshape(ok.shape[0], ok.shape[1], math.prod(ok.shape[2:])).all(-1).all(0)


def delivered_fanout(delays: torch.Tensor, T: int) -> torch.Tensor:
    """``[T, in]``: how many of an input's synapses deliver an event at step ``t`` inside the window,
    ``#{j : t + d_ij < T}``, from integer delays ``[out, in]`` (a per-input delay histogram, summed
    cumulatively).

    Example:
        >>> delivered_fanout(torch.tensor([[0, 1], [2, 3], [3, 3]]), 5).T.tolist()
        [[3, 3, 2, 1, 1], [3, 3, 1, 1, 0]]
    """
    d = delays.long().clamp_min(0)
    n_in = d.shape[1]
    hist = torch.zeros(n_in, T + 1, dtype=torch.long, device=d.device)
    hist.scatter_add_(1, d.t().clamp_max(T), torch.ones_like(d.t()))       # delays >= T fall in bin T
    within = hist[:, :T].cumsum(1)                                          # [in, k]: #{j : d_ij <= k}
    return within.flip(1).t()                                               # row t: #{j : d_ij <= T-1-t}


def layer_ops(x: torch.Tensor, out_features: int, delays: torch.Tensor | None = None) -> tuple[float, float, bool, float]:
    """``(ACs, MACs, all_events, input_events)`` of one synaptic layer call on ``x`` ``[T, B, ..., in]``
    (summed over the batch; each sample counted as event or analog input by :func:`event_samples`).

    ``delays`` (integer ``[out, in]``, a ``DelayedLinear``'s) limits each event to the synapses that
    deliver it before the last step (:func:`delivered_fanout`).

    Example:
        >>> x = torch.zeros(2, 2, 3); x[0, 0, 1] = 2.0; x[1, 0, 2] = 1.0; x[:, 1] = 0.5
        >>> layer_ops(x, 4)   # sample 0: 3 events * 4; sample 1 analog: 2 * 3 * 4 MACs
        (12.0, 24.0, False, 3.0)
    """
    events = event_samples(x)                                               # [B]
    xs = x if x.dim() >= 3 else x.unsqueeze(1)
    T, B = xs.shape[0], xs.shape[1]
    per_sample_numel = xs.numel() // B if B else 0
    # exact integer sums: float32 rows (exact below 2**24), float64 totals; no copy of float inputs
    work = xs if xs.dtype in (torch.float32, torch.float64) else xs.float()
    zero = torch.zeros((), dtype=torch.float64, device=xs.device)
    if delays is None:
        per_events = work.sum(dim=[d for d in range(work.dim()) if d != 1], dtype=torch.float64)   # [B]
        per_acs = per_events * out_features
    else:  # one pass over x: per step, sample and input, then weighted by the delivered fan-out
        fan = delivered_fanout(delays.to(xs.device), T).to(torch.float64)   # [T, in] (no matmul: TF32 rounds)
        mid = math.prod(xs.shape[2:-1])                                     # explicit: B or T may be 0
        per_input = work.reshape(T, B, mid, fan.shape[-1]).sum(2, dtype=torch.float64)   # [T, B, in]
        per_events = per_input.sum((0, 2))
        per_acs = torch.einsum("tbi,ti->b", per_input, fan)  # float64: exact for event counts
    # one device sync for the three numbers
    n_analog, n_events, acs = torch.stack([(~events).sum().to(torch.float64),
                                           torch.where(events, per_events, zero).sum(),
                                           torch.where(events, per_acs, zero).sum()]).tolist()
    macs = float(int(n_analog) * per_sample_numel) * out_features
    return float(acs), macs, int(n_analog) == 0, float(n_events)


def synaptic_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: module}`` of the synaptic layers (``nn.Linear``, ``DelayedLinear``) of ``model``."""
    return {n: m for n, m in model.named_modules() if isinstance(m, SYNAPTIC_TYPES)}


@dataclass
class LayerOps:
    """Running totals of one synaptic layer (over all calls and samples seen)."""

    in_features: int
    out_features: int
    acs: float = 0.0
    macs: float = 0.0
    input_events: float = 0.0   # events received by the event-input samples (spikes, counts)
    n_samples: int = 0          # samples seen (batch size summed over calls)
    binary: bool = True         # every sample so far was event input (spikes or event counts)


class SynOpsCounter:
    """Context manager that counts ACs (SynOps) and MACs of every synaptic layer during forwards.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 5))
        >>> x = torch.zeros(2, 1, 4); x[0, 0, 1] = x[1, 0, 1] = x[1, 0, 3] = 1   # 3 spikes
        >>> with SynOpsCounter(net) as c:
        ...     _ = net(x)
        >>> c.acs_per_sample(), c.macs_per_sample()
        (15.0, 0.0)
    """

    def __init__(self, model: nn.Module) -> None:
        self.layers = synaptic_layers(model)
        self.ops: dict[str, LayerOps] = {
            n: LayerOps(int(_in_features(m)), int(_out_features(m))) for n, m in self.layers.items()}
        self._handles: list = []

    def _hook(self, name: str):
        def count(module: nn.Module, inputs) -> None:
            x = inputs[0]
            if not isinstance(x, torch.Tensor):
                return
            rec = self.ops[name]
            delays = module.delays if isinstance(module, DelayedLinear) else None
            acs, macs, binary, events = layer_ops(x.detach(), rec.out_features, delays)
            rec.acs += acs
            rec.macs += macs
            rec.binary = rec.binary and binary
            rec.input_events += events
            rec.n_samples += int(x.shape[1]) if x.dim() >= 3 else 1
        return count

    def __enter__(self) -> "SynOpsCounter":
        for name, module in self.layers.items():
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def reset(self) -> None:
        for rec in self.ops.values():
            rec.acs = rec.macs = rec.input_events = 0.0
            rec.n_samples = 0
            rec.binary = True

    @staticmethod
    def _per(value: float, rec: LayerOps) -> float:
        return value / rec.n_samples if rec.n_samples else 0.0

    def acs_per_sample(self) -> float:
        """Accumulates (SynOps) per sample, summed over layers."""
        return float(sum(self._per(r.acs, r) for r in self.ops.values()))

    def macs_per_sample(self) -> float:
        """Multiply-accumulates per sample, summed over layers."""
        return float(sum(self._per(r.macs, r) for r in self.ops.values()))

    def table(self) -> pd.DataFrame:
        """Tidy per-layer table: ``layer, in_features, out_features, binary_input`` (every sample was event
        input), ``input_events_per_sample, acs_per_sample, macs_per_sample``."""
        rows = [(n, r.in_features, r.out_features, r.binary, self._per(r.input_events, r),
                 self._per(r.acs, r), self._per(r.macs, r)) for n, r in self.ops.items()]
        return pd.DataFrame(rows, columns=["layer", "in_features", "out_features", "binary_input",
                                           "input_events_per_sample", "acs_per_sample", "macs_per_sample"])


def _in_features(m: nn.Module) -> int:
    return getattr(m, "in_features")


def _out_features(m: nn.Module) -> int:
    return getattr(m, "out_features")
