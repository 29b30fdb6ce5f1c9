"""Synaptic operations of synaptic layers (``nn.Linear``, :class:`snnlab.DelayedLinear`).

For each call of a synaptic layer with input ``x`` ``[T, B, ..., in]``:

* binary input (every entry 0 or 1, i.e. a spike train): every non-zero input event is delivered to
  ``out_features`` synapses, so ``ACs = nnz(x) * out_features`` accumulates (SynOps);
* any other (analog) input: the layer runs dense, ``MACs = x.numel() * out_features``
  (``T * in * out`` per sample).

The inputs are read by a forward-pre hook, so what is counted is what the layer actually receives:
after a :class:`snnlab.SpikeMask` or a masking LIF (``mask_p``) these are the masked (transmitted) spikes. Biases are not counted.
For a ``DelayedLinear`` each event counts ``out_features`` SynOps whatever its delays (events delayed
past the last step are still counted: an upper bound).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from snnlab.core.delays import DelayedLinear

__all__ = ["SYNAPTIC_TYPES", "LayerOps", "SynOpsCounter", "is_binary", "layer_ops", "synaptic_layers"]

SYNAPTIC_TYPES: tuple[type, ...] = (nn.Linear, DelayedLinear)


def is_binary(x: torch.Tensor) -> bool:
    """True when every entry of ``x`` is 0 or 1 (a spike train)."""
    if x.dtype == torch.bool:
        return True
    return bool(((x == 0) | (x == 1)).all())


def layer_ops(x: torch.Tensor, out_features: int) -> tuple[float, float, bool]:
    """``(ACs, MACs, binary)`` of one synaptic layer call on input ``x`` ``[T, B, ..., in]`` (whole batch)."""
    if is_binary(x):
        return float(torch.count_nonzero(x).item()) * out_features, 0.0, True
    return 0.0, float(x.numel()) * out_features, False


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
    input_events: float = 0.0   # non-zero binary input entries (spikes received)
    n_samples: int = 0          # samples seen (batch size summed over calls)
    binary: bool = True         # every input so far was a spike train


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
            acs, macs, binary = layer_ops(x.detach(), rec.out_features)
            rec.acs += acs
            rec.macs += macs
            rec.binary = rec.binary and binary
            if binary:
                rec.input_events += acs / rec.out_features
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
        """Tidy per-layer table: ``layer, in_features, out_features, binary_input, input_events_per_sample,
        acs_per_sample, macs_per_sample``."""
        rows = [(n, r.in_features, r.out_features, r.binary, self._per(r.input_events, r),
                 self._per(r.acs, r), self._per(r.macs, r)) for n, r in self.ops.items()]
        return pd.DataFrame(rows, columns=["layer", "in_features", "out_features", "binary_input",
                                           "input_events_per_sample", "acs_per_sample", "macs_per_sample"])


def _in_features(m: nn.Module) -> int:
    return getattr(m, "in_features")


def _out_features(m: nn.Module) -> int:
    return getattr(m, "out_features")
