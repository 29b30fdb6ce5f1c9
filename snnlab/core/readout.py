"""Turning a network's time-major output into class scores (logits).

Readouts, for an output of shape ``[T, B, C]``:

- ``"membrane_sum"``: ``sum_t out[t]`` — for a non-spiking ``LI`` readout layer (the default).
- ``"membrane_max"``: ``max_t out[t]``.
- ``"softmax_sum"``: ``sum_t softmax(out[t])`` — each step's membranes turned into class probabilities and
  summed over time (the DCLS delay papers' readout; the loss then takes the log-softmax of these sums).
- ``"spike_count"``: ``sum_t s[t]`` — for a spiking output layer.
- ``"first_spike"``: ``-(first spike time) / T`` — time-to-first-spike decoding: the earliest
  output neuron wins. With ``first_spike_time`` written as ``sum_t t*s[t] + T*(1 - sum_t s[t])`` for
  neurons that fire at most once, the surrogate gradient reaches the spike times.

Decisions (:func:`predict`, :func:`prediction_over_time`): the class with the unique largest score;
a tie for the largest score (e.g. a silent output, all scores equal) is *no decision*, ``-1``, which
never matches a label. ``softmax_sum`` scores that differ by no more than the rounding of the softmax
(:func:`tie_tolerance`) count as tied: ``softmax([0, 1, 0])[1]`` and ``softmax([0, 0, 1])[2]`` differ in their
last bit. Every readout needs at least one time step: an output with ``T = 0`` is refused (``ValueError``), as
:func:`snnlab.metrics.evaluate` refuses such batches. A spike readout of an output that an ``LI`` layer produced is
refused by :class:`MembraneReadoutCheck` (``evaluate`` and the trainer check their first batch). The training loss
uses :func:`logits` as they are.
"""
from __future__ import annotations

import math

import torch
from torch import nn

# the readouts of a membrane and of a spiking output layer (torch-free there, for the configuration)
from .choices import MEMBRANE_READOUTS, READOUTS, SPIKE_READOUTS  # noqa: F401

#: The prediction of a sample without a decision (a tie for the largest score, e.g. a silent output).
NO_DECISION = -1


def first_spike_time(spikes: torch.Tensor) -> torch.Tensor:
    """Time of each neuron's first spike ``[B, C]`` (``T`` when it never fires); differentiable.

    Spikes after the first are ignored, so the result is exact for any neuron (float32 for half-precision
    spikes, whose formats cannot hold every step past 256 in bfloat16 or 2048 in float16).

    Example:
        >>> s = torch.zeros(5, 1, 2); s[2, 0, 0] = 1; s[4, 0, 0] = 1
        >>> first_spike_time(s).tolist()
        [[2.0, 5.0]]
    """
    T = spikes.shape[0]
    if spikes.dtype in (torch.float16, torch.bfloat16):
        spikes = spikes.float()
    fired_before = torch.cumsum(spikes.detach(), 0) - spikes.detach()
    first = spikes * (fired_before == 0).to(spikes.dtype)          # keeps only the first spike
    t = torch.arange(T, dtype=spikes.dtype, device=spikes.device).view(T, *([1] * (spikes.dim() - 1)))
    return (t * first).sum(0) + T * (1.0 - first.sum(0))


def logits(out: torch.Tensor, readout: str = "membrane_sum") -> torch.Tensor:
    """Class scores ``[B, C]`` from a time-major output ``[T, B, C]``.

    An output without time steps (``T = 0``) is refused with a ``ValueError``: no readout has a score for it.

    Example:
        >>> logits(torch.ones(4, 2, 3)).shape
        torch.Size([2, 3])
    """
    _check_output(out, readout)
    out = _at_least_float32(out)  # half precision scored in float32: a bfloat16 count of 301 spikes reads 300
    if readout in ("membrane_sum", "spike_count"):
        return out.sum(0)
    if readout == "membrane_max":
        return out.max(0).values
    if readout == "softmax_sum":  # (a bfloat16 sum of 100 probabilities would keep 3 digits)
        return torch.softmax(out, dim=-1).sum(0)
    if readout == "first_spike":
        return -first_spike_time(out) / out.shape[0]
    raise ValueError(f"unknown readout {readout!r}; choose one of {list(READOUTS)}")


def _check_output(out: torch.Tensor, readout: str) -> None:
    """``ValueError`` unless ``out`` is a time-major output ``[T, B, C]`` with at least one step."""
    if not isinstance(out, torch.Tensor) or out.dim() != 3:
        raise ValueError(f"readout expects a time-major output [T, B, C], got {getattr(out, 'shape', type(out))}")
    if out.shape[0] == 0:
        raise ValueError(f"readout {readout!r}: the output of shape {tuple(out.shape)} has no time steps (time-major "
                         "[T, B, C] with T = 0); give every sample at least one step")


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def tie_tolerance(readout: str, steps: int, dtype: torch.dtype) -> float:
    """The relative tolerance of a tie for the largest score: for ``"softmax_sum"`` the rounding of a sum of
    ``steps`` softmax probabilities, each a few units of the last place (``eps``) off, summed with about ``log2(steps)``
    roundings: ``(8 + 2 log2(steps)) * eps`` of the scores' float type (float32 for half precision, which
    :func:`logits` computes in float32); 0 (exact ties only) for the other readouts, whose tied scores are computed
    alike. :func:`decide` scales it by the largest score.

    Example:
        >>> round(tie_tolerance("softmax_sum", 100, torch.float32) / torch.finfo(torch.float32).eps, 2)
        21.29
        >>> tie_tolerance("membrane_sum", 100, torch.float32)
        0.0
    """
    if readout != "softmax_sum" or not dtype.is_floating_point:
        return 0.0
    eps = torch.finfo(torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype).eps
    return (8.0 + 2.0 * math.log2(max(int(steps), 1))) * eps


def decide(scores: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
    """The class with the unique largest score ``[...]`` of scores ``[..., C]``; ``-1`` (no decision) where
    the largest score is shared by several classes (all-zero scores included) or is NaN. ``tol``: a relative
    tolerance, scores at most ``tol * |largest|`` below the largest one share it (see :func:`tie_tolerance`).

    Example:
        >>> decide(torch.tensor([[0.1, 0.7, 0.2], [0.0, 0.0, 0.0], [0.5, 0.5, 0.1]])).tolist()
        [1, -1, -1]
        >>> decide(torch.tensor([[0.5, 0.5 + 1e-7]]), tol=1e-6).tolist()
        [-1]
    """
    if not (isinstance(tol, (int, float)) and 0.0 <= tol < math.inf):
        raise ValueError(f"decide: tol must be a finite number >= 0 (a relative tolerance), got {tol!r}")
    top = scores.max(-1, keepdim=True).values
    if tol == 0.0 or not scores.is_floating_point():
        shared = scores == top
    else:  # (an infinite top ties with itself only: inf * tol would make every score share it)
        shared = scores >= torch.where(torch.isinf(top), top, top - tol * top.abs())
    unique = shared.sum(-1) == 1                       # 0 where the top is NaN
    return torch.where(unique, scores.argmax(-1), torch.full_like(unique, NO_DECISION, dtype=torch.long))


def predict(out: torch.Tensor, readout: str = "membrane_sum") -> torch.Tensor:
    """Predicted classes ``[B]`` of a time-major output ``[T, B, C]``: :func:`decide` on :func:`logits`
    (``-1`` for a tie, e.g. a silent output).

    Example:
        >>> out = torch.zeros(4, 2, 3); out[1, 0, 2] = 1.0           # sample 1 is silent
        >>> predict(out, "spike_count").tolist()
        [2, -1]
    """
    scores = logits(out, readout).detach()
    return decide(scores, tie_tolerance(readout, out.shape[0], scores.dtype))


class MembraneReadoutCheck:
    """Refuses (``ValueError``) a spike readout of an output that an ``LI`` layer produced (a membrane, not spikes):
    within the ``with`` block the model's ``LI`` layers record what their forwards return, and :meth:`check` tests
    whether the model's output is one of those tensors. Spiking outputs pooled or scaled after the last ``LIF``
    (population votes, dropout), models with several heads, and ``LI`` layers that do not produce the output pass;
    membrane readouts take anything. Used for one forward (the first batch) by ``evaluate`` and the trainer.

    Example:
        >>> from snnlab.core.neurons import LI
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), LI())
        >>> with MembraneReadoutCheck(net, "spike_count") as guard:
        ...     guard.check(net(torch.rand(4, 1, 2)))
        Traceback (most recent call last):
        ...
        ValueError: readout 'spike_count' reads spikes, but the model's output is the membrane of its LI layer '1': use a membrane readout (membrane_sum, membrane_max, softmax_sum) or end the network with spiking neurons (LIF)
    """

    def __init__(self, model: nn.Module, readout: str) -> None:
        from .neurons import LI  # (neurons -> kernels; readout stays importable on its own)

        self.readout = readout
        self._layers = ({name: m for name, m in model.named_modules() if isinstance(m, LI)}
                        if readout in SPIKE_READOUTS else {})
        self._outputs: dict[str, object] = {}
        self._handles: list = []

    def __enter__(self) -> "MembraneReadoutCheck":
        for name, layer in self._layers.items():
            self._handles.append(layer.register_forward_hook(
                lambda module, inputs, output, name=name: self._outputs.__setitem__(name, output)))
        return self

    def check(self, out: torch.Tensor) -> None:
        """``ValueError`` if ``out`` (the model's output) is what one of its ``LI`` layers returned."""
        found = [name for name, o in self._outputs.items() if o is out]
        self._outputs.clear()
        if found:
            raise ValueError(f"readout {self.readout!r} reads spikes, but the model's output is the membrane of its LI "
                             f"layer {found[0]!r}: use a membrane readout ({', '.join(MEMBRANE_READOUTS)}) or end the "
                             "network with spiking neurons (LIF)")

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._outputs.clear()


def prediction_over_time(out: torch.Tensor, readout: str = "membrane_sum") -> torch.Tensor:
    """The prediction ``[T, B]`` the readout would give if the sample stopped after each step.

    Used for decision latency: for membrane readouts the running sum (or max) up to ``t``; for
    spike readouts the running count or the first neuron to have fired. Steps where the largest
    running score is shared (before any spike, a silent membrane, neurons firing first together) give
    ``-1``, so the last row is :func:`predict`. ``T = 0`` is refused (``ValueError``), as by :func:`logits`.

    Example:
        >>> out = torch.zeros(4, 1, 2); out[2, 0, 1] = 1.0
        >>> prediction_over_time(out, "membrane_sum")[:, 0].tolist()
        [-1, -1, 1, 1]
    """
    _check_output(out, readout)
    out = _at_least_float32(out)  # as logits: running counts and sums of half-precision outputs in float32
    if readout == "membrane_sum" or readout == "spike_count":
        running = out.cumsum(0)
    elif readout == "membrane_max":
        running = out.cummax(0).values
    elif readout == "softmax_sum":
        running = torch.softmax(out.detach(), dim=-1).cumsum(0)
    elif readout == "first_spike":
        out = out.detach()
        fired = (out.cumsum(0) > 0).any(-1)                          # [T, B]: some neuron has fired
        # the earliest-firing neuron (unique), known from its first spike on
        final = decide(-first_spike_time(out))
        pred = final.unsqueeze(0).expand(out.shape[0], -1).clone()
        pred[~fired] = NO_DECISION
        return pred
    else:
        raise ValueError(f"unknown readout {readout!r}; choose one of {list(READOUTS)}")
    running = running.detach()
    if readout != "membrane_max" and out.shape[0]:  # the last row is the score itself: a running sum's last value can
        running[-1] = logits(out.detach(), readout)  # differ from the sum in its last bits, and so decide otherwise
    return decide(running, tie_tolerance(readout, out.shape[0], running.dtype))
