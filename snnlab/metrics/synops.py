"""Synaptic operations of synaptic layers (``nn.Linear``, :class:`snnlab.DelayedLinear`, ``nn.Conv1d`` /
``nn.Conv2d`` / ``nn.Conv3d`` and ``nn.ConvTranspose1d`` / ``2d`` / ``3d``).

For each call of a dense synaptic layer with input ``x`` ``[T, B, ..., in]``, sample by sample (so a sample's
count never depends on the other samples of its batch, as long as they have the same length: samples of
different lengths zero-padded into one batch, see :func:`snnlab.data.time_major_collate`, are simulated
through the padding too: pad every batch to one length with :class:`snnlab.data.PadCollate` for counts that do
not depend on the batch):

* event input (every entry of the sample a non-negative integer: a spike train, or event counts from
  binning events into frames, where an entry of 2 is two events): every event is delivered to
  ``out_features`` synapses, so ``ACs = sum(x) * out_features`` accumulates (SynOps);
* any other (analog) input: the layer runs dense for that sample, ``MACs = T * in * out`` (times any
  extra middle dimensions).

A 2-D input ``[N, F]`` is tested row by row, as convolution frames are (a row: one step of one sample, for a
layer fed ``[T*B, F]``, time flattened into the batch, or ``[B, F]``, one step per call): each event row
counts ACs, each analog row ``F * out`` MACs, so the count of a sample still never depends on its batch-mates (a
sample whose steps mix event and analog rows is billed step by step, where the time-major ``[T, B, F]`` form bills
the whole sample dense).

For a :class:`~snnlab.DelayedLinear` an event only counts the synapses whose delay delivers it inside
the window: ``ACs = sum_{t,i} x[t, i] * #{j : t + d_ij < T}`` (an event delayed past the last step
never arrives). The delays are ``layer.delays``: the frozen integer delays after
:meth:`~snnlab.DelayedLinear.round_delays`, and ``round(clamp(positions))`` for the learnable
(Gaussian) form, which is thus counted as the rounded layer it becomes -- an estimate of the deployed
network; the Gaussian training form itself spreads each event over all ``max_delay`` taps, dense work
that is not counted.

Convolutions (``nn.Conv1d/2d/3d``) get frames ``[N, C, *spatial]`` (or one unbatched frame ``[C, *spatial]``)
in whatever layout the model feeds them -- ``N = T*B`` when time is flattened into the batch, ``N = B`` per
step -- so the event test is made frame by frame (a row of ``N``: one step of one sample):

* event frame: an event at input position ``p`` reaches ``(out_channels / groups) * k(p)`` synapses, ``k(p)``
  the kernel taps that carry it to a valid output position given stride, padding (and padding mode: an event
  copied into a reflect / replicate / circular border is delivered again), dilation and groups
  (:func:`conv_fanout`), so ``ACs = sum_p x[p] * fan-out(p)`` exactly -- border events reach fewer outputs;
* analog frame: dense, ``MACs = output elements * (in_channels / groups) * prod(kernel_size)``.

Transposed convolutions (``nn.ConvTranspose1d/2d/3d``) get frames the same way and scatter each input position
through the kernel (input position ``i``, tap ``k`` -> output position ``i * stride + k * dilation - padding``):

* event frame: an event reaches ``(out_channels / groups) * k(p)`` synapses, ``k(p)`` the taps that land inside
  the output -- those cropped by ``padding`` at either edge, or past the end of an output that ``output_padding``
  (or the ``output_size`` given to the forward, read from the output's shape) did not extend, deliver nothing;
* analog frame: dense, ``MACs = input elements * (out_channels / groups) * prod(kernel_size)`` -- every input
  times every weight it meets, cropped taps included, as the dense convolution's count includes the taps that read
  its zero padding.

The recurrent synapses of a :class:`snnlab.RecurrentLIF` or a recurrent :class:`snnlab.ALIF` (its child
``nn.Linear``, row ``"<layer>.recurrent"``) are counted from the layer's output, by a forward hook on the layer: the
transmitted spikes of steps ``0..T-2`` each reach ``n_neurons`` synapses at the next step (the last step's spikes
would arrive after the window: not counted). The child ``nn.Linear`` is not hooked itself (the fused layer does not
call it, and the step loops call it once per step). Other layers (other
recurrent cells, a user's own weighted module) are not counted.

Per-sample figures divide the totals by a number of samples (:meth:`SynOpsCounter.acs_per_sample`):
:func:`snnlab.metrics.evaluate` passes the samples it fed; standalone, the counter takes the batch sizes of
the forwards of the model it was given (dimension 1 of a time-major ``[T, B, ...]`` input), so a layer called
several times per forward (shared weights, or one step per call) is summed over its calls and a layer fed
``[T*B, ...]`` is divided by ``B`` (see :class:`SynOpsCounter`). A synaptic layer may take time in any of these
layouts, but a neuron layer takes whole sequences: each of its calls starts from rest, so calling it one step at a
time does not continue its membrane (see :class:`~snnlab.LIF`), unless it carries its state (``carry_state=True``):
then a forward of the model that continues a stream (some neuron layer holds a carried membrane when it starts)
feeds more steps of samples already counted, and adds none, so the chunks of one stream count as the whole
sequence would.

The inputs are read by a forward-pre hook (a forward hook for convolutions, so that an input the
convolution refuses raises its own error, and a transposed convolution's output size is known), so what is
counted is what the layer actually receives: after a :class:`snnlab.SpikeMask` or a masking LIF (``mask_p``)
these are the masked (transmitted) spikes.
Biases are not counted.

An input is event input when its entries are non-negative integers, so integer intensities (0..255 pixels) are billed
as that many events each; where that charges more energy than the layer run dense (for a dense layer, more than
``E_MAC_J / E_AC_J``, about 5, events per input element) the counter warns once per layer
(:class:`CostlyEventInputWarning`): scale such inputs to [0, 1]. Real event counts trigger it only in very coarse bins
(N-MNIST in one frame: about 1.7 events per element).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from snnlab.core.delays import DelayedLinear
from snnlab.core.network import neuron_layers
from snnlab.core.neurons import LIF
from snnlab.core.time_distributed import TimeDistributed
from snnlab.core.validation import is_integer, user_stacklevel

from .energy import E_AC_J, E_MAC_J

__all__ = ["CONV_TYPES", "CostlyEventInputWarning", "SYNAPTIC_TYPES", "TRANSPOSED_CONV_TYPES", "LayerOps", "SynOpsCounter", "conv_fanout",
           "conv_ops", "delivered_fanout", "event_samples", "is_binary", "is_event_input", "layer_ops", "synaptic_layers"]

class CostlyEventInputWarning(RuntimeWarning):
    """A layer's integer-valued input, counted as events, costs more energy than the layer run dense (see
    :class:`SynOpsCounter`); filter it with ``warnings.filterwarnings("ignore", category=CostlyEventInputWarning)``."""


CONV_TYPES: tuple[type, ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
TRANSPOSED_CONV_TYPES: tuple[type, ...] = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_FRAME_TYPES: tuple[type, ...] = CONV_TYPES + TRANSPOSED_CONV_TYPES   # layers fed frames [N, C, *spatial]
SYNAPTIC_TYPES: tuple[type, ...] = (nn.Linear, DelayedLinear) + _FRAME_TYPES
_CONV_FN = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T_FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


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
    integers); an input ``[T, F]`` without a batch dimension is one sample (:func:`layer_ops` tests a 2-D input
    row by row instead: it cannot tell a 2-D input's samples apart).

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


def _rows(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """``(xs [T, B, ...], per_row)``: a time-major input as it is (the event test per sample, across its steps); a 2-D
    input ``[N, F]`` as ``[N, 1, F]`` and a 1-D one ``[F]`` as ``[1, 1, F]``, tested row by row (``per_row``)."""
    if x.dim() >= 3:
        return x, False
    return (x.unsqueeze(1) if x.dim() == 2 else x.reshape(1, 1, x.shape[0] if x.dim() else 1)), True


def layer_ops(x: torch.Tensor, out_features: int, delays: torch.Tensor | None = None) -> tuple[float, float, bool, float]:
    """``(ACs, MACs, all_events, input_events)`` of one synaptic layer call on ``x`` ``[T, B, ..., in]``
    (summed over the batch; each sample event or analog input as :func:`event_samples` tests it). A 2-D input
    ``[N, in]`` (time flattened into the batch ``[T*B, in]``, or one step ``[B, in]`` of a loop over time) is tested
    row by row, as convolution frames are: a row's count never depends on the other rows.

    ``delays`` (integer ``[out, in]``, a ``DelayedLinear``'s) limits each event to the synapses that
    deliver it before the last step (:func:`delivered_fanout`).

    Example:
        >>> x = torch.zeros(2, 2, 3); x[0, 0, 1] = 2.0; x[1, 0, 2] = 1.0; x[:, 1] = 0.5
        >>> layer_ops(x, 4)   # sample 0: 3 events * 4; sample 1 analog: 2 * 3 * 4 MACs
        (12.0, 24.0, False, 3.0)
        >>> layer_ops(x.reshape(4, 3), 4)   # rows: 2 event rows (3 events * 4), 2 analog rows (2 * 3 * 4 MACs)
        (12.0, 24.0, False, 3.0)
        >>> layer_ops(torch.tensor([[1., 0., 1.], [0.5, 0., 0.]]), 4)   # row 0: 2 events; row 1 analog: 3 * 4 MACs
        (8.0, 12.0, False, 2.0)
    """
    xs, per_row = _rows(x)
    T, B = xs.shape[0], xs.shape[1]
    row_numel = math.prod(xs.shape[2:])
    ok = _event_entries(xs).reshape(T, B, row_numel).all(-1)               # [T, B]: each step of each sample
    events = ok if per_row else ok.all(0, keepdim=True).expand(T, B)      # per row (2-D) / per sample, all steps
    # exact integer sums: float32 rows (exact below 2**24), float64 totals; no copy of float inputs
    work = xs if xs.dtype in (torch.float32, torch.float64) else xs.float()
    zero = torch.zeros((), dtype=torch.float64, device=xs.device)
    peak = zero  # the largest float32 row sum (exact below 2**24)
    if delays is None:
        rows = work.reshape(T, B, row_numel).sum(-1)                       # [T, B], in the input's own dtype
        if work.dtype == torch.float32 and rows.numel():
            peak = rows.max().to(torch.float64)
        cell_events = rows.to(torch.float64)                                # [T, B]
        cell_acs = cell_events * out_features
    else:  # one pass over x: per step, sample and input, then weighted by the delivered fan-out
        fan = delivered_fanout(delays.to(xs.device), T).to(torch.float64)   # [T, in] (no matmul: TF32 rounds)
        mid = math.prod(xs.shape[2:-1])                                     # explicit: B or T may be 0
        per_input = work.reshape(T, B, mid, fan.shape[-1]).sum(2, dtype=torch.float64)   # [T, B, in]
        cell_events = per_input.sum(2)
        cell_acs = torch.einsum("tbi,ti->tb", per_input, fan)  # float64: exact for event counts

    def totals() -> list[float]:  # one device sync for the numbers
        return torch.stack([(~events).sum().to(torch.float64), torch.where(events, cell_events, zero).sum(),
                            torch.where(events, cell_acs, zero).sum(), peak]).tolist()

    n_analog, n_events, acs, top = totals()
    if top >= 2.0 ** 24:  # a float32 row past exact integers (rare): the rows again in float64
        cell_events = work.reshape(T, B, row_numel).sum(-1, dtype=torch.float64)
        cell_acs = cell_events * out_features
        n_analog, n_events, acs, _ = totals()
    macs = float(int(n_analog) * row_numel) * out_features                 # analog rows run dense
    return float(acs), macs, int(n_analog) == 0, float(n_events)


def conv_fanout(conv: nn.Module, spatial, device=None,
                output_size=None) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``(fan_out [*spatial], out_spatial)`` of a convolution or transposed convolution on frames of spatial size
    ``spatial``: the number of synapses an input event at each position reaches -- ``out_channels / groups`` times
    the kernel taps that carry it to a valid output position (stride, padding and padding mode, dilation; for a
    transposed convolution the taps not cropped by ``padding`` / ``output_padding``) -- as float64 integers, and the
    spatial size of the output.

    ``output_size`` (transposed convolutions only): the output size given to its forward (its last
    ``len(kernel_size)`` entries are the spatial size), which replaces ``output_padding``.

    It is the gradient of ``sum(conv(x))`` with respect to ``x`` for a one-channel all-ones kernel (each input
    position's exact fan-out, borders and padding copies included). A transposed convolution whose output has a
    spatial size of 0 (``padding`` cropping every position) delivers nothing: fan-outs of 0.

    Example:
        >>> fan, out = conv_fanout(nn.Conv2d(1, 2, 3, padding=1), (4, 4))
        >>> fan[1, 1].item(), fan[0, 0].item(), out   # interior: 2 * 9 taps, corner: 2 * 4
        (18.0, 8.0, (4, 4))
        >>> up = nn.ConvTranspose1d(1, 1, 3, stride=2, padding=1)   # taps of input i land on 2i-1, 2i, 2i+1
        >>> conv_fanout(up, (3,))[0].tolist(), conv_fanout(up, (3,), output_size=(6,))[0].tolist()
        ([2.0, 3.0, 2.0], [2.0, 3.0, 3.0])
    """
    spatial = tuple(int(s) for s in spatial)
    output_padding = _output_padding(conv, spatial, output_size)
    if output_padding is not None:  # an empty output (a transposed size of 0) receives nothing; torch's op refuses it
        out_spatial = _transposed_size(conv, spatial, output_padding)
        if min(out_spatial) == 0:
            return torch.zeros(spatial, dtype=torch.float64, device=device), out_spatial
    with torch.inference_mode(False), torch.enable_grad():
        ones = torch.ones((1, 1, *spatial), dtype=torch.float64, device=device, requires_grad=True)
        out = _unit_conv(conv, ones, output_padding)
        (grad,) = torch.autograd.grad(out.sum(), ones)
    return grad[0, 0] * (conv.out_channels // conv.groups), tuple(out.shape[2:])


def _transposed_size(conv: nn.Module, spatial: tuple[int, ...], output_padding: tuple[int, ...]) -> tuple[int, ...]:
    """A transposed convolution's output spatial size (``(n - 1) * stride - 2 * padding + dilation * (k - 1) + 1 +
    output_padding`` per dimension)."""
    return tuple((n - 1) * s - 2 * p + d * (k - 1) + 1 + q for n, s, p, d, k, q in
                 zip(spatial, conv.stride, conv.padding, conv.dilation, conv.kernel_size, output_padding))


def _output_padding(conv: nn.Module, spatial: tuple[int, ...], output_size) -> tuple[int, ...] | None:
    """The ``output_padding`` that gives a transposed convolution's output ``output_size`` (its own when None);
    None for a convolution."""
    if not isinstance(conv, TRANSPOSED_CONV_TYPES):
        if output_size is not None:
            raise ValueError(f"conv_fanout: output_size is for transposed convolutions, not {type(conv).__name__} "
                             f"(got output_size={output_size!r})")
        return None
    if output_size is None:
        return tuple(conv.output_padding)
    nd = len(conv.kernel_size)
    size = tuple(int(o) for o in output_size)[-nd:]
    smallest = _transposed_size(conv, spatial, (0,) * nd)
    pad = tuple(o - m for o, m in zip(size, smallest))
    if len(size) != nd or any(not 0 <= q < max(s, d) for q, s, d in zip(pad, conv.stride, conv.dilation)):
        raise ValueError(f"conv_fanout: output_size {tuple(output_size)!r} is not an output size of "
                         f"{type(conv).__name__} on input size {spatial}: each spatial size must lie in "
                         f"[smallest, smallest + max(stride, dilation) - 1], smallest = {tuple(smallest)}")
    return pad


def _unit_conv(conv: nn.Module, x: torch.Tensor, output_padding: tuple[int, ...] | None) -> torch.Tensor:
    """``conv``'s geometry applied to one-channel ``x`` with an all-ones kernel (no bias)."""
    nd = len(conv.kernel_size)
    kernel = torch.ones((1, 1, *conv.kernel_size), dtype=x.dtype, device=x.device)
    if output_padding is not None:  # transposed: scatter, then crop padding (zeros only) and extend by output_padding
        return _CONV_T_FN[nd](x, kernel, None, conv.stride, conv.padding, output_padding, 1, conv.dilation)
    # pad explicitly (nn.ConvNd's own left/right amounts, 'same' and 'valid' included), then convolve unpadded:
    # a zero border delivers nothing, a reflect / replicate / circular copy passes its gradient back to its source
    mode = "constant" if conv.padding_mode == "zeros" else conv.padding_mode
    return _CONV_FN[nd](F.pad(x, conv._reversed_padding_repeated_twice, mode=mode), kernel, None, conv.stride, 0,
                        conv.dilation)


def conv_ops(x: torch.Tensor, conv: nn.Module, fanout: tuple[torch.Tensor, tuple[int, ...]] | None = None,
             output_size=None) -> tuple[float, float, bool, float]:
    """``(ACs, MACs, all_events, input_events)`` of one call of a convolution or transposed convolution on frames
    ``x`` ``[N, C, *spatial]`` (or one frame ``[C, *spatial]``), summed over the frames; each frame is event input
    (ACs: every event times its fan-out, :func:`conv_fanout`) or analog (dense MACs: output elements times
    ``in_channels / groups * prod(kernel_size)`` for a convolution, input elements times ``out_channels / groups *
    prod(kernel_size)`` for a transposed one). ``fanout``: a precomputed ``conv_fanout(conv, spatial)``;
    ``output_size``: the one given to a transposed convolution's forward (see :func:`conv_fanout`).

    Example:
        >>> x = torch.zeros(2, 1, 4, 4); x[0, 0, 1, 1] = x[0, 0, 0, 0] = 1.0; x[1] = 0.5
        >>> conv_ops(x, nn.Conv2d(1, 2, 3, padding=1))   # frame 0: 18 + 8 ACs; frame 1: 2 * 16 * 9 MACs
        (26.0, 288.0, False, 2.0)
        >>> conv_ops(x, nn.ConvTranspose2d(1, 2, 3, padding=1))  # the same fan-outs; frame 1: 16 * 2 * 9 MACs
        (26.0, 288.0, False, 2.0)
    """
    nd = len(conv.kernel_size)
    xs = x if x.dim() == nd + 2 else x.unsqueeze(0)
    N, C = xs.shape[0], xs.shape[1]
    spatial = tuple(xs.shape[2:])
    S = math.prod(spatial)
    fan, out_spatial = fanout if fanout is not None else conv_fanout(conv, spatial, xs.device, output_size)
    events = _event_entries(xs).reshape(N, C * S).all(1)                   # [N]: frame by frame
    work = xs if xs.dtype in (torch.float32, torch.float64) else xs.float()
    per_pos = work.reshape(N, C, S).sum(1, dtype=torch.float64)            # [N, S] events per position
    per_events = per_pos.sum(1)
    per_acs = per_pos @ fan.reshape(S).to(device=xs.device, dtype=torch.float64)   # float64: exact counts
    zero = torch.zeros((), dtype=torch.float64, device=xs.device)
    n_analog, n_events, acs = torch.stack([(~events).sum().to(torch.float64),
                                           torch.where(events, per_events, zero).sum(),
                                           torch.where(events, per_acs, zero).sum()]).tolist()
    taps = (conv.in_channels // conv.groups) * conv.out_channels * math.prod(conv.kernel_size)  # weights
    dense = taps * (S if isinstance(conv, TRANSPOSED_CONV_TYPES) else math.prod(out_spatial))  # per input / output
    return float(acs), float(int(n_analog) * dense), int(n_analog) == 0, float(n_events)


def synaptic_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: module}`` of the synaptic layers (``nn.Linear``, ``DelayedLinear``, ``nn.Conv1d/2d/3d``,
    ``nn.ConvTranspose1d/2d/3d``) of ``model``."""
    return {n: m for n, m in model.named_modules() if isinstance(m, SYNAPTIC_TYPES)}


def _samples_in(x: torch.Tensor) -> int:
    """Samples of a time-major input ``[T, B, ...]``: ``B`` (a 2-D ``[T, F]`` is one sample)."""
    return int(x.shape[1]) if x.dim() >= 3 else 1


@dataclass
class LayerOps:
    """Running totals of one synaptic layer (over all calls and samples seen).

    For a (transposed) convolution ``in_features`` / ``out_features`` hold its input / output channels."""

    in_features: int
    out_features: int
    acs: float = 0.0
    macs: float = 0.0
    input_events: float = 0.0   # events received by the event-input samples (spikes, counts)
    n_samples: int = 0          # summed over calls: the batch dim of [T, B, ...] (1 for 2-D); a conv's frames N
    binary: bool = True         # every sample so far was event input (spikes or event counts)


class SynOpsCounter:
    """Context manager that counts ACs (SynOps) and MACs of every synaptic layer during forwards.

    Per-sample figures (:meth:`acs_per_sample`, :meth:`macs_per_sample`, :meth:`table`) divide each layer's totals
    by ``n_samples`` when given (what :func:`snnlab.metrics.evaluate` does, with the samples it fed), else by
    :attr:`n_samples`: the samples of the forwards of ``model`` seen while counting (the batch size ``B`` of its
    time-major input ``[T, B, ...]``; a 2-D input ``[T, F]`` is one sample). So a layer called several times in one
    forward (shared weights, one step per call) is summed over its calls, and a layer fed ``[T*B, F]`` or frames
    ``[T*B, C, H, W]`` (time flattened into the batch) is divided by ``B``. Only when no forward of ``model`` itself
    was seen (layers called directly, or ``model`` a (transposed) convolution) does each layer divide by its own
    :attr:`LayerOps.n_samples` (the batch dimension of its ``[T, B, ...]`` inputs summed over calls; a
    convolution's frames) -- give ``n_samples`` then for a layer called per step or fed flattened time.

    A forward of ``model`` that continues a stream (some :class:`~snnlab.LIF` / :class:`~snnlab.LI` of it holds a
    membrane carried from the last call when the forward starts, ``carry_state=True``) adds no samples: its samples
    are those of the stream's first chunk, so a sequence fed in chunks gives the per-sample figures of the whole
    sequence. The first forward the counter sees is counted whatever it continues (a stream joined midway counts its
    samples once); call ``snnlab.reset_states(model)`` before each new stream, as the layers need.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 5))
        >>> x = torch.zeros(2, 1, 4); x[0, 0, 1] = x[1, 0, 1] = x[1, 0, 3] = 1   # 3 spikes
        >>> with SynOpsCounter(net) as c:
        ...     _ = net(x)
        >>> c.acs_per_sample(), c.macs_per_sample(), c.n_samples
        (15.0, 0.0, 1)
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.layers = synaptic_layers(model)
        self.ops: dict[str, LayerOps] = {
            n: LayerOps(int(_in_features(m)), int(_out_features(m))) for n, m in self.layers.items()}
        # recurrent LIF layers: {layer name: row of its recurrent synapses}, counted from the layer's output
        self._recurrent = {n: _recurrent_row(n) for n, m in model.named_modules() if _is_recurrent(m)}
        # dense layers inside a TimeDistributed: fed frames [T*B, ...] (time folded into the batch), tested frame by frame
        self._folded = {f"{n}.{c}" if n and c else (n or c) for n, td in model.named_modules()
                        if isinstance(td, TimeDistributed) for c, _ in td.named_modules()}
        self.n_samples = 0  # samples of the forwards of `model` seen (see the class docstring)
        self._neurons = list(neuron_layers(model).values())  # (stream continuations)
        self._counted_forward = False  # a forward of `model` was counted since the start or the last reset()
        self._handles: list = []
        self._fanouts: dict[tuple, tuple[torch.Tensor, tuple[int, ...]]] = {}
        self._warned: set[str] = set()  # layers warned about costly event input

    def _hook(self, name: str):
        def count(module: nn.Module, inputs) -> None:
            x = inputs[0]
            if not isinstance(x, torch.Tensor):
                return
            rec = self.ops[name]
            delays = module.delays if isinstance(module, DelayedLinear) else None
            xd = x.detach()
            if name in self._folded and xd.dim() >= 3:  # [T*B, ..., in]: one frame (a step of a sample) per row
                xd = xd.reshape(xd.shape[0], math.prod(xd.shape[1:]))
            acs, macs, binary, events = layer_ops(xd, rec.out_features, delays)
            self._warn_costly_events(name, acs, x.numel() * rec.out_features)
            self._add(rec, acs, macs, binary, events, _samples_in(x))
        return count

    def _recurrent_hook(self, row: str):
        def count(module: nn.Module, inputs, output) -> None:  # output o [T, B, ..., N]: o[:-1] is delivered
            if not isinstance(output, torch.Tensor) or output.dim() < 1:
                return
            rec = self.ops[row]
            acs, macs, binary, events = layer_ops(output.detach()[:-1], rec.out_features)
            self._add(rec, acs, macs, binary, events, _samples_in(output))
        return count

    def _conv_hook(self, name: str):
        def count(module: nn.Module, inputs, output) -> None:
            x = inputs[0]
            if not isinstance(x, torch.Tensor) or not isinstance(output, torch.Tensor):
                return
            nd = len(module.kernel_size)
            frames = int(x.shape[0]) if x.dim() == nd + 2 else 1
            # a transposed convolution's output size: its output_padding, or the output_size given to its forward
            out_size = tuple(output.shape[-nd:]) if isinstance(module, TRANSPOSED_CONV_TYPES) else None
            key = (name, tuple(x.shape[-nd:]), x.device, out_size)
            if key not in self._fanouts:
                self._fanouts[key] = conv_fanout(module, key[1], x.device, out_size)
            acs, macs, binary, events = conv_ops(x.detach(), module, self._fanouts[key])
            self._warn_costly_events(name, acs, _dense_conv_macs(module, x, output))
            self._add(self.ops[name], acs, macs, binary, events, frames)
        return count

    def _warn_costly_events(self, name: str, acs: float, dense_macs: int) -> None:
        """Warn (:class:`CostlyEventInputWarning`, once per layer) when a layer's integer-valued input, counted as events,
        costs more energy in ACs than the layer run dense (``dense_macs`` MACs, every input element times its
        synapses): intensities such as 0..255 pixels are integers too, and are then billed as that many events each."""
        if name in self._warned or acs * E_AC_J <= dense_macs * E_MAC_J:
            return
        self._warned.add(name)
        warnings.warn(f"SynOpsCounter: layer {name!r} receives integer-valued input, counted as events: "
                      f"{acs:.4g} ACs, more energy than the {dense_macs:.4g} MACs of the same layer run dense. If these "
                      "are intensities (e.g. 0..255 pixels), not event counts, scale them to [0, 1]; if they are event "
                      "counts, the bins are so coarse that this layer would be cheaper run dense",
                      CostlyEventInputWarning, stacklevel=user_stacklevel())

    @staticmethod
    def _add(rec: LayerOps, acs: float, macs: float, binary: bool, events: float, samples: int) -> None:
        rec.acs += acs
        rec.macs += macs
        rec.binary = rec.binary and binary
        rec.input_events += events
        rec.n_samples += samples

    def _count_forward(self, module: nn.Module, inputs) -> None:
        if not inputs or not isinstance(inputs[0], torch.Tensor):
            return
        if self._counted_forward and self._continues_stream():
            return  # more steps of the samples the stream's first chunk counted
        self._counted_forward = True
        self.n_samples += _samples_in(inputs[0])

    def _continues_stream(self) -> bool:
        """Whether the forward starting now continues a stream: some neuron layer holds a carried membrane."""
        return any(layer.carried_membrane is not None for layer in self._neurons)

    def __enter__(self) -> "SynOpsCounter":
        if not isinstance(self.model, _FRAME_TYPES):  # a convolution's own input is frames, not [T, B, ...]
            self._handles.append(self.model.register_forward_pre_hook(self._count_forward))
        recurrent_rows = set(self._recurrent.values())
        for name, layer in self.model.named_modules():
            if name in self._recurrent and self._recurrent[name] in self.ops:
                self._handles.append(layer.register_forward_hook(self._recurrent_hook(self._recurrent[name])))
        for name, module in self.layers.items():
            if name in recurrent_rows:
                continue  # counted by its RecurrentLIF's hook
            if isinstance(module, _FRAME_TYPES):
                self._handles.append(module.register_forward_hook(self._conv_hook(name)))
            else:
                self._handles.append(module.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def reset(self) -> None:
        self.n_samples = 0
        self._counted_forward = False
        for rec in self.ops.values():
            rec.acs = rec.macs = rec.input_events = 0.0
            rec.n_samples = 0
            rec.binary = True

    def _per(self, value: float, rec: LayerOps, n_samples: int | None) -> float:
        n = n_samples if n_samples is not None else (self.n_samples or rec.n_samples)
        return value / n if n else 0.0

    @staticmethod
    def _check_n(n_samples) -> int | None:
        if n_samples is None:
            return None
        if not is_integer(n_samples) or n_samples < 0:
            raise ValueError(f"SynOpsCounter: n_samples must be a non-negative int or None, got {n_samples!r}")
        return int(n_samples)

    def acs_per_sample(self, n_samples: int | None = None) -> float:
        """Accumulates (SynOps) per sample, summed over layers (``n_samples``: see the class docstring)."""
        n = self._check_n(n_samples)
        return float(sum(self._per(r.acs, r, n) for r in self.ops.values()))

    def macs_per_sample(self, n_samples: int | None = None) -> float:
        """Multiply-accumulates per sample, summed over layers (``n_samples``: see the class docstring)."""
        n = self._check_n(n_samples)
        return float(sum(self._per(r.macs, r, n) for r in self.ops.values()))

    def table(self, n_samples: int | None = None) -> pd.DataFrame:
        """Tidy per-layer table: ``layer, in_features, out_features`` (a convolution's channels), ``binary_input``
        (every sample was event input), ``input_events_per_sample, acs_per_sample, macs_per_sample``
        (``n_samples``: see the class docstring)."""
        n = self._check_n(n_samples)
        rows = [(name, r.in_features, r.out_features, r.binary, self._per(r.input_events, r, n),
                 self._per(r.acs, r, n), self._per(r.macs, r, n)) for name, r in self.ops.items()]
        return pd.DataFrame(rows, columns=["layer", "in_features", "out_features", "binary_input",
                                           "input_events_per_sample", "acs_per_sample", "macs_per_sample"])


def _dense_conv_macs(module: nn.Module, x: torch.Tensor, output: torch.Tensor) -> int:
    """The MACs of a (transposed) convolution run dense on ``x``, as the module docstring counts analog frames: a
    convolution's output elements times ``in_channels / groups * prod(kernel_size)``; a transposed one's input
    elements times ``out_channels / groups * prod(kernel_size)``."""
    taps = math.prod(module.kernel_size)
    if isinstance(module, TRANSPOSED_CONV_TYPES):
        return x.numel() * (module.out_channels // module.groups) * taps
    return output.numel() * (module.in_channels // module.groups) * taps


def _is_recurrent(m: nn.Module) -> bool:
    """Whether ``m`` is a neuron layer with recurrent synapses (a ``RecurrentLIF``, a recurrent ``ALIF``): an LIF
    whose child ``recurrent`` is an ``nn.Linear`` fed with the layer's output."""
    return isinstance(m, LIF) and isinstance(getattr(m, "recurrent", None), nn.Linear)


def _recurrent_row(name: str) -> str:
    """The row of a RecurrentLIF layer's recurrent synapses: its child ``recurrent``'s module name."""
    return f"{name}.recurrent" if name else "recurrent"


def _in_features(m: nn.Module) -> int:
    return getattr(m, "in_channels") if isinstance(m, _FRAME_TYPES) else getattr(m, "in_features")


def _out_features(m: nn.Module) -> int:
    return getattr(m, "out_channels") if isinstance(m, _FRAME_TYPES) else getattr(m, "out_features")
