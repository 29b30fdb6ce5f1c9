r"""Export snnlab networks to NIR (the Neuromorphic Intermediate Representation) and import them back.

:func:`to_nir` turns a :class:`~snnlab.Sequential` into a ``nir.NIRGraph`` (a chain ``Input -> ... -> Output``),
which ``nir.write`` saves and snnTorch, Norse, SpikingJelly, Lava, Sinabs, Rockpool and hardware toolchains read;
:func:`from_nir` builds a :class:`~snnlab.Sequential` from such a graph. Needs ``pip install "snnlab[interop]"``
(``nir`` is imported inside the functions only).

**The time mapping.** NIR nodes are continuous-time ODEs; snnlab layers are discrete maps with ``tau_mem`` in
steps. The graph holds times in seconds, ``dt`` being the length of one step (also stored as
``graph.metadata["dt"]``, which :func:`from_nir` reads when no ``dt`` is given). NIR's LIF is::

    tau * dv/dt = (v_leak - v) + r * I,    spike z = 1 when v > v_threshold, then v = v_reset

Forward Euler at step ``dt`` gives ``v[t] = (1 - dt/tau) * v[t-1] + (dt/tau) * (v_leak + r * I[t])``, then the
threshold test and the reset on ``v[t]``. snnlab's LIF is ``h[t] = beta * v[t-1] + x[t]`` with
``beta = 1 - 1/tau_mem``. They are the same map, for every input, exactly when::

    tau = tau_mem * dt = dt / (1 - beta)     (seconds)
    r = tau / dt = tau_mem = 1 / (1 - beta)  (so that dt/tau * r = 1: the input enters unscaled)
    v_leak = 0,  v_threshold = threshold,  v_reset = 0   (reset="zero")

``beta = 1 - dt/tau`` is the forward-Euler factor, not ``exp(-dt/tau)``: snnlab's ``beta = 1 - 1/tau_mem`` is
itself that discretisation, and it is what snnTorch's NIR export and import use (``tau = dt/(1 - beta)``,
``r = tau/dt`` on export; ``beta = 1 - dt/tau`` and an input gain ``r*dt/tau`` on import; snnTorch 1.0 fixes
``dt = 1e-4`` on both sides, so export with ``dt=1e-4`` for it). Norse 1.1 integrates the same Euler step
(default ``dt = 1e-3``) but ignores ``r`` (it warns when ``r != 1``), so it reads such a graph with the input
scaled by ``1/tau_mem``. ``LI`` maps the same way to NIR ``LI`` (its output is ``v``). A layer without leak
(``beta = 1``, ``tau = inf``) becomes NIR ``IF`` / ``I`` with ``r = 1/dt`` (``dv/dt = r * I``).

Layers (``model`` a :class:`~snnlab.Sequential` or ``nn.Sequential``, nested ones unrolled; the graph is the
network's inference function whatever mode it is in):

- ``nn.Linear`` -> ``Affine`` (with bias) or ``Linear``, on a one-dimensional feature shape.
- :class:`~snnlab.LIF` -> ``LIF`` (``IF`` without leak), parameters broadcast to the layer's neuron shape (per-neuron
  and learned ``tau_mem`` / ``threshold`` export their current values). Refused with a ``ValueError``: ``reset=
  "subtract"`` (NIR's LIF sets ``v = v_reset``; it cannot subtract the threshold), ``max_spikes``, noise with
  ``noisy_eval=True`` and ``mask_p`` with ``mask_at_inference=True`` (random or budgeted spiking has no NIR node),
  and :class:`~snnlab.ALIF` (an adaptive threshold has no NIR node).
  Training-only options are exported as the deterministic neuron: ``surrogate``, ``detach_reset``, noise and
  masks that are off at inference. snnlab fires at ``h >= threshold``, NIR at ``v > v_threshold``: the two differ
  only for a membrane exactly on the threshold.
- :class:`~snnlab.LI` -> ``LI`` (``I`` without leak).
- :class:`~snnlab.LI` directly followed by :class:`~snnlab.LIF` (the current-based neuron of ``tau_syn``; skipped
  layers between them do not count) -> one ``CubaLIF`` named after the LIF (see below), when both leak (else the two
  nodes ``LI`` / ``I`` and ``LIF`` / ``IF``). An LI before a :class:`~snnlab.RecurrentLIF` stays ``LI`` + the
  recurrent sub-graph: in a ``CubaLIF <-> Linear`` loop (snnTorch's ``RSynaptic``) the recurrent spikes pass
  through the synaptic current, whereas snnlab adds ``W_rec @ o[t-1]`` to the membrane.
- :class:`~snnlab.RecurrentLIF` (``reset="zero"``) -> a sub-graph ``Input -> LIF -> Output`` with the cycle
  ``LIF -> Linear(W_rec) -> LIF`` (snnTorch's form for its ``RLeaky``): the recurrent edge carries the previous
  step's spikes, as in snnlab's ``W_rec @ o[t-1]``.
- ``TimeDistributed(nn.Conv1d / nn.Conv2d)`` -> ``Conv1d`` / ``Conv2d`` (zero padding only). Two limitations of
  the ``nir`` package (1.0.8) refuse some: ``groups > 1`` (its nodes take the input channels from
  ``weight.shape[1] = in_channels / groups``, and the graph's type check fails), and a non-square ``Conv2d`` kernel
  whenever its output shape differs from a square one's (NIR computes the shape with ``weight.shape[2]`` as the
  kernel size of both dimensions; ``padding="same"`` at stride 1, for example, exports);
  ``TimeDistributed(nn.AvgPool2d)`` -> ``AvgPool2d`` (no padding); ``nn.Flatten`` on ``[T, B, ...]`` (``start_dim
  >= 2``) or ``TimeDistributed(nn.Flatten())`` -> ``Flatten`` (NIR's dims count from the first feature dimension).
  The input shape must then be given (``input_shape=(C, H, W)``).
- :class:`~snnlab.DelayedLinear` after ``round_delays()``: NIR's ``Delay`` delays each *neuron*, not each synapse, so
  the layer becomes three nodes: ``Linear`` copying every input once per distinct delay ``d_k`` (``K`` copies),
  ``Delay`` of ``d_k * dt`` on copy ``k``, and ``Linear`` / ``Affine`` whose weight is ``W_ij`` on the copy with
  ``d_k = d_ij`` (zero elsewhere): ``y[t, j] = sum_i W_ij x[t - d_ij, i] (+ b_j)``, exactly the rounded layer.
  :func:`from_nir` folds that pattern (and a ``Delay`` followed by ``Linear`` / ``Affine``) back into one.
  Learnable (unrounded) delays are refused.
- :class:`~snnlab.TimeBatchNorm` in eval mode: folded into the ``Linear`` / ``Affine`` before it
  (``W' = s W``, ``b' = s (b - mean) + shift``, ``s = weight / sqrt(running_var + eps)``); refused in train mode,
  without running statistics or without a dense layer before it.
- :class:`~snnlab.TimeDropout`, :class:`~snnlab.SpikeMask` (unless ``mask_at_inference``), ``nn.Dropout`` and
  ``nn.Identity`` are the identity at inference and are left out.

**CubaLIF.** NIR's current-based LIF is ``tau_syn * dI/dt = -I + w_in * x``, ``tau_mem * dv/dt = (v_leak - v) +
r * I``, spikes and reset as LIF. NIR gives the ODEs only, not the order of the two updates within a step. snnlab
steps the current first, and the membrane integrates the *new* current::

    I[t] = (1 - dt/tau_syn) * I[t-1] + (w_in * dt/tau_syn) * x[t]
    v[t] = (1 - dt/tau_mem) * v[t-1] + (r * dt/tau_mem) * I[t]     then the threshold test and the reset

which is snnTorch's ``Synaptic`` (``syn = alpha*syn + x; mem = beta*mem + syn``, exported as ``CubaLIF`` with
``tau = dt/(1 - alpha or beta)``, ``w_in = tau_syn/dt``, ``r = tau_mem/dt``) and exactly ``LI(tau_syn) -> LIF``.
So ``to_nir`` writes ``tau_syn = tau_syn_steps * dt``, ``w_in = tau_syn_steps``, ``tau_mem = tau_mem_steps * dt``,
``r = tau_mem_steps`` (both gains 1). The strictly explicit Euler step (``v[t]`` from ``I[t-1]``, as the numpy
reference simulation of NIR's paper code and Norse's CuBa LIF step, which adds ``x`` to ``I`` unscaled) is the
same neuron one step later: its spikes are snnlab's shifted by one step.

Graphs that :func:`to_nir` wrote come back with the same layers and state-dict shapes: its node metadata notes a
layer's ``n_neurons`` (``snnlab_n_neurons``, for per-neuron values that happen to be equal) and a convolution without
bias (``snnlab_bias``); the imported neurons' time constants and thresholds are fixed (not learnable) values.
:func:`from_nir` takes chains of those nodes back (``Affine``, ``Linear``, ``LIF``, ``IF``, ``LI``, ``I``,
``CubaLIF``, ``Conv1d``, ``Conv2d``, ``AvgPool2d``, ``Flatten``, ``Delay`` before a dense node, the recurrent
sub-graph above, and the same ``LIF <-> Linear`` cycle written in the top-level graph). A LIF / IF whose input gain
``g = r*dt/tau`` (``r*dt`` for IF) is not 1 is imported with ``threshold = v_threshold / g`` (with ``v_leak =
v_reset = 0`` the membrane is then ``v / g`` at every step: the same spikes). A ``CubaLIF`` is imported as
``LI(beta = 1 - dt/tau_syn) -> LIF(beta = 1 - dt/tau_mem)`` with ``threshold = v_threshold / (g_syn * g_mem)``,
``g_syn = w_in*dt/tau_syn``, ``g_mem = r*dt/tau_mem`` (the LI's output only feeds the LIF, so its gain folds into
the threshold too). ``v_leak != 0``, ``v_reset != 0``, ``tau < dt`` (``tau_syn`` / ``tau_mem`` too), gains that
are not positive and finite, an ``LI`` with a gain other than 1, a ``CubaLIF`` in a recurrent loop, fan-in /
fan-out and other nodes (``CubaLI``, ``Threshold``, ``Scale``...) are refused.

Example:
    >>> import torch, snnlab as sl
    >>> from snnlab.interop.nir import to_nir, from_nir
    >>> net = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(tau_mem=5.0, reset="zero"), torch.nn.Linear(4, 2),
    ...                     sl.LI(tau_mem=10.0))
    >>> graph = to_nir(net, dt=1e-3)
    >>> [type(graph.nodes[k]).__name__ for k in ("input", "0", "1", "2", "3", "output")]
    ['Input', 'Affine', 'LIF', 'Affine', 'LI', 'Output']
    >>> lif = graph.nodes["1"]
    >>> float(lif.tau[0]), float(lif.r[0]), float(lif.v_threshold[0])   # tau = 5 steps * 1 ms, r = tau / dt
    (0.005, 5.0, 1.0)
    >>> x = torch.rand(20, 2, 3)
    >>> torch.equal(from_nir(graph)(x), net(x))
    True
    >>> cuba = sl.Sequential(torch.nn.Linear(3, 4), sl.LI(tau_mem=4.0), sl.LIF(tau_mem=10.0, reset="zero"))
    >>> g = to_nir(cuba, dt=1e-3)   # the LI -> LIF pair (tau_syn = 4 steps) is one CubaLIF
    >>> type(g.nodes["2"]).__name__, float(g.nodes["2"].tau_syn[0]), float(g.nodes["2"].w_in[0])
    ('CubaLIF', 0.004, 4.0)
    >>> [type(m).__name__ for m in from_nir(g)]
    ['Linear', 'LI', 'LIF']
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from snnlab.core.adaptive import ALIF
from snnlab.core.delays import DelayedLinear
from snnlab.core.dropout import TimeDropout
from snnlab.core.masking import SpikeMask
from snnlab.core.network import Sequential
from snnlab.core.neurons import LI, LIF
from snnlab.core.normalization import TimeBatchNorm
from snnlab.core.recurrent import RecurrentLIF
from snnlab.core.time_distributed import TimeDistributed
from snnlab.extras import require

if TYPE_CHECKING:  # pragma: no cover
    import nir

__all__ = ["to_nir", "from_nir"]

_GAIN_RTOL = 1e-9  # an input gain r*dt/tau this close to 1 is 1 (the float64 round trip of tau and r)


def _nir() -> Any:
    """The ``nir`` package, or an ImportError naming the extra to install."""
    return require("nir", extra="interop", feature="snnlab.interop.nir")


def _check_dt(dt: Any, who: str) -> float:
    if isinstance(dt, torch.Tensor) and dt.numel() == 1 and not dt.dtype.is_complex:
        dt = dt.item()  # (a one-value tensor, as NumPy scalars below)
    ok = isinstance(dt, numbers.Real) and not isinstance(dt, bool) and math.isfinite(dt) and dt > 0
    if not ok:
        raise ValueError(f"{who}: dt must be a positive number of seconds (the length of one time step), got {dt!r}")
    return float(dt)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


# ----------------------------------------------------------------------------------------------------- export


def _layers(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The layers of a (nested) ``nn.Sequential`` in order, named by their path (``"2_0"`` for ``model[2][0]``)."""
    out = []
    for name, child in model.named_children():
        path = f"{prefix}{name}"
        out += _layers(child, path + "_") if isinstance(child, nn.Sequential) else [(path, child)]
    return out


def _first_shape(name: str, layer: nn.Module) -> tuple[int, ...]:
    """The input shape the first layer implies (dense and neuron layers), else a ValueError asking for it."""
    if isinstance(layer, (nn.Linear, DelayedLinear)):
        return (layer.in_features,)
    if isinstance(layer, LIF | LI) and layer.n_neurons is not None:
        return (layer.n_neurons,)
    raise ValueError(f"to_nir: cannot tell the input shape from the first layer {name!r} ({type(layer).__name__}): "
                     "give input_shape=(features,) or (channels, height, width), without time and batch")


def _refuse(name: str, layer: nn.Module, why: str) -> ValueError:
    return ValueError(f"to_nir: layer {name!r} ({type(layer).__name__}) {why}")


def _check_lif(name: str, m: LIF) -> None:
    if isinstance(m, ALIF):  # (checked first: its threshold moves whatever the other options)
        raise _refuse(name, m, "has an adaptive threshold (it rises with each spike); NIR's neuron nodes have a fixed "
                               "threshold, so an ALIF has no NIR equivalent")
    if m.reset != "zero":
        raise _refuse(name, m, f"has reset={m.reset!r}; NIR's LIF sets v = v_reset after a spike and cannot subtract "
                               "the threshold: only reset='zero' can be exported (train with it)")
    if m.max_spikes is not None:
        raise _refuse(name, m, f"has max_spikes={m.max_spikes}; NIR has no spike budget per neuron")
    if m.noise is not None and m.noisy_eval:
        raise _refuse(name, m, f"has noise={m.noise!r} with noisy_eval=True; NIR neurons are deterministic "
                               "(with noisy_eval=False the noise is training-only and the layer exports)")
    if m.mask_p > 0 and m.mask_at_inference:
        raise _refuse(name, m, f"has mask_p={m.mask_p:g} with mask_at_inference=True; NIR cannot drop spikes at random")


def _leak(name: str, m: LIF | LI, shape: tuple[int, ...], dt: float) -> tuple[np.ndarray, bool]:
    """``(tau_mem in steps broadcast to shape, no_leak)``; a layer mixing leaky and leak-free neurons is refused."""
    if m.n_neurons is not None and (not shape or shape[-1] != m.n_neurons):
        raise _refuse(name, m, f"has n_neurons={m.n_neurons}, but its input has the feature shape {shape}")
    stored = m.beta().detach().cpu()
    beta = np.broadcast_to(stored.double().numpy(), shape).copy()
    no_leak = beta >= 1.0
    if no_leak.any() and not no_leak.all():
        raise _refuse(name, m, "mixes neurons without leak (beta = 1, tau = inf) and leaky ones; NIR's LIF / LI "
                               "need a finite tau and IF / I have no leak: one kind per layer")
    if no_leak.all():
        return np.full(shape, np.inf), True
    values, where = np.unique(beta, return_inverse=True)
    return _short_steps(values, stored.numpy().dtype, dt)[where].reshape(shape), False


def _short_steps(beta: np.ndarray, dtype: np.dtype, dt: float) -> np.ndarray:
    """``tau_mem = 1 / (1 - beta)`` in steps, each as the shortest decimal that :func:`from_nir` reads back as the
    stored ``beta`` (``1 - dt / (tau_mem * dt)`` rounded to ``dtype``): ``5`` rather than ``5.0000003`` for the
    float32 beta of ``tau_mem=5``."""
    exact = 1.0 / (1.0 - beta)
    steps = exact.copy()
    found = np.zeros(beta.shape, dtype=bool)
    for digits in range(1, 18):
        candidate = np.array([float(f"{v:.{digits}g}") for v in exact])
        same = (1.0 - dt / (candidate * dt)).astype(dtype) == beta.astype(dtype)
        steps = np.where(same & ~found, candidate, steps)
        found |= same
        if found.all():
            break
    return steps


def _lif_node(nir: Any, name: str, m: LIF, shape: tuple[int, ...], dt: float) -> Any:
    _check_lif(name, m)
    steps, no_leak = _leak(name, m, shape, dt)
    thr = np.broadcast_to(_np(m.threshold), shape).copy()
    zeros = np.zeros(shape)
    if no_leak:
        node = nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=thr, v_reset=zeros)
    else:
        node = nir.LIF(tau=steps * dt, r=steps, v_leak=zeros, v_threshold=thr, v_reset=zeros)
    return _with_neuron_count(node, m)


def _with_neuron_count(node: Any, m: LIF | LI) -> Any:
    """``node`` noting the layer's ``n_neurons`` (metadata ``snnlab_n_neurons``), so that :func:`from_nir` gives back
    per-neuron parameters also where their values are all equal (a fresh layer)."""
    if m.n_neurons is not None:
        node.metadata = {**(node.metadata or {}), "snnlab_n_neurons": int(m.n_neurons)}
    return node


def _li_node(nir: Any, name: str, m: LI, shape: tuple[int, ...], dt: float) -> Any:
    steps, no_leak = _leak(name, m, shape, dt)
    node = nir.I(r=np.full(shape, 1.0 / dt)) if no_leak else nir.LI(tau=steps * dt, r=steps, v_leak=np.zeros(shape))
    return _with_neuron_count(node, m)


def _cuba_node(nir: Any, pair: list[tuple[str, nn.Module]], shape: tuple[int, ...], dt: float) -> Any | None:
    """``LI -> LIF`` (``pair``) as one ``CubaLIF`` with unit gains, or None when ``pair`` is not such a pair or
    one of them has no leak (``tau = inf``: no finite ``w_in`` / ``r`` gives a gain of 1)."""
    if len(pair) < 2 or not isinstance(pair[0][1], LI) or not isinstance(pair[1][1], LIF):
        return None
    if isinstance(pair[1][1], RecurrentLIF):  # recurrence into the membrane: LI + the recurrent sub-graph
        return None
    (li_name, li), (name, lif) = pair
    _check_lif(name, lif)
    syn, syn_free = _leak(li_name, li, shape, dt)
    mem, mem_free = _leak(name, lif, shape, dt)
    if syn_free or mem_free:
        return None
    thr = np.broadcast_to(_np(lif.threshold), shape).copy()
    zeros = np.zeros(shape)
    return nir.CubaLIF(tau_syn=syn * dt, tau_mem=mem * dt, r=mem, v_leak=zeros, v_threshold=thr, v_reset=zeros,
                       w_in=syn)


def _recurrent_node(nir: Any, name: str, m: RecurrentLIF, shape: tuple[int, ...], dt: float) -> Any:
    if shape != (m.n_neurons,):
        raise _refuse(name, m, f"has {m.n_neurons} neurons, but its input has the feature shape {shape}")
    n = m.n_neurons
    nodes = {"input": nir.Input(input_type=np.array([n])), "lif": _lif_node(nir, name, m, shape, dt),
             "w_rec": nir.Linear(weight=_np(m.recurrent.weight)), "output": nir.Output(output_type=np.array([n]))}
    edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"snnlab_layer": "RecurrentLIF"})


def _dense_node(nir: Any, name: str, m: nn.Linear, shape: tuple[int, ...]) -> Any:
    if shape != (m.in_features,):
        raise _refuse(name, m, f"takes {m.in_features} features, but its input has the feature shape {shape} "
                               "(NIR's Affine acts on one-dimensional inputs: flatten first)")
    if m.bias is None:
        return nir.Linear(weight=_np(m.weight))
    return nir.Affine(weight=_np(m.weight), bias=_np(m.bias))


def _delay_nodes(nir: Any, name: str, m: DelayedLinear, shape: tuple[int, ...], dt: float) -> list[tuple[str, Any]]:
    """A rounded DelayedLinear as ``Linear`` (copy per distinct delay) -> ``Delay`` -> ``Linear`` / ``Affine``."""
    if not m.rounded:
        raise _refuse(name, m, "has learnable delays; call round_delays() first (NIR holds integer delays)")
    if shape != (m.in_features,):
        raise _refuse(name, m, f"takes {m.in_features} features, but its input has the feature shape {shape}")
    delays, w = m.delays.cpu().numpy(), _np(m.weight)
    values = np.unique(delays)
    n_in, k = m.in_features, len(values)
    fanout = np.zeros((k * n_in, n_in), dtype=w.dtype)
    fanout[np.arange(k * n_in), np.tile(np.arange(n_in), k)] = 1.0
    wide = np.concatenate([w * (delays == d) for d in values], axis=1)  # [out, K * in]
    nodes = [(f"{name}_fanout", nir.Linear(weight=fanout)),
             (f"{name}_delay", nir.Delay(delay=np.repeat(values.astype(np.float64) * dt, n_in)))]
    last = nir.Linear(weight=wide) if m.bias is None else nir.Affine(weight=wide, bias=_np(m.bias))
    last.metadata = {"snnlab_max_delay": int(m.max_delay)}
    return nodes + [(name, last)]


def _fold_batchnorm(nir: Any, name: str, bn: TimeBatchNorm, prev: Any) -> Any:
    """The dense node ``prev`` followed by the eval-mode ``bn``, as one ``Affine``."""
    if bn.training or not bn.track_running_stats or bn.running_mean is None:
        raise _refuse(name, bn, "normalises with batch statistics (train mode or track_running_stats=False); "
                                "call model.eval() so that it uses its running statistics")
    if not isinstance(prev, nir.Affine | nir.Linear):
        raise _refuse(name, bn, "does not follow a Linear / DelayedLinear layer, into which it would be folded")
    mean, var = bn.running_mean.double().cpu().numpy(), bn.running_var.double().cpu().numpy()
    gamma = bn.weight.detach().double().cpu().numpy() if bn.affine else np.ones_like(mean)
    shift = bn.bias.detach().double().cpu().numpy() if bn.affine else np.zeros_like(mean)
    s = gamma / np.sqrt(var + bn.eps)
    w = prev.weight.astype(np.float64)
    b = prev.bias.astype(np.float64) if isinstance(prev, nir.Affine) else np.zeros(w.shape[0])
    node = nir.Affine(weight=(s[:, None] * w).astype(prev.weight.dtype),
                      bias=(s * (b - mean) + shift).astype(prev.weight.dtype))
    node.metadata = dict(prev.metadata)
    return node


def _flatten_node(nir: Any, name: str, m: nn.Flatten, shape: tuple[int, ...], lead: int) -> Any:
    """``nn.Flatten`` on a tensor with ``lead`` dimensions before the features (2: [T, B, ...], 1: [T*B, ...])."""
    ndim = len(shape) + lead
    start, end = m.start_dim % ndim, m.end_dim % ndim
    if start < lead:
        raise _refuse(name, m, f"flattens from dim {m.start_dim}, which would merge time/batch into the features; "
                               f"use start_dim={lead} (or more)")
    return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=start - lead, end_dim=end - lead)


def _frame_node(nir: Any, name: str, m: nn.Module, shape: tuple[int, ...]) -> Any:
    """The NIR node of a frame-by-frame module (inside ``TimeDistributed``)."""
    if isinstance(m, nn.Conv1d | nn.Conv2d):
        if m.padding_mode != "zeros":
            raise _refuse(name, m, f"has padding_mode={m.padding_mode!r}; NIR convolutions pad with zeros")
        if m.groups > 1:
            raise _refuse(name, m, f"has groups={m.groups}; the nir package's {type(m).__name__} takes its input "
                                   f"channels from weight.shape[1] = in_channels / groups = "
                                   f"{m.in_channels // m.groups}, not {m.in_channels}, so NIR's type check rejects "
                                   f"grouped convolutions")
        bias = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=_np(m.weight).dtype)
        cls, spatial = (nir.Conv1d, shape[1]) if isinstance(m, nn.Conv1d) else (nir.Conv2d, tuple(shape[1:]))
        if len(shape) != (2 if isinstance(m, nn.Conv1d) else 3):
            raise _refuse(name, m, f"gets the feature shape {shape}, not (channels, *spatial)")
        unpack = (lambda v: v[0]) if isinstance(m, nn.Conv1d) else tuple
        padding = m.padding if isinstance(m.padding, str) else unpack(m.padding)
        node = cls(input_shape=spatial, weight=_np(m.weight), stride=unpack(m.stride), padding=padding,
                   dilation=unpack(m.dilation), groups=m.groups, bias=bias)
        if m.bias is None:  # (NIR's convolutions always hold a bias: noted, so that from_nir leaves it out)
            node.metadata = {**(node.metadata or {}), "snnlab_bias": False}
        return node
    if isinstance(m, nn.AvgPool2d):
        pair = lambda v: np.array(v if isinstance(v, tuple) else (v, v))  # noqa: E731
        if np.any(pair(m.padding) != 0) or m.ceil_mode or m.divisor_override is not None:
            raise _refuse(name, m, "uses padding, ceil_mode or divisor_override, which NIR's AvgPool2d does not hold")
        return nir.AvgPool2d(kernel_size=pair(m.kernel_size), stride=pair(m.stride), padding=np.array([0, 0]))
    if isinstance(m, nn.Flatten):
        return _flatten_node(nir, name, m, shape, lead=1)
    raise _refuse(name, m, "has no NIR node (TimeDistributed exports Conv1d, Conv2d, AvgPool2d and Flatten)")


def _shape_limitation(m: nn.Module) -> str:
    """Why NIR gets a frame shape wrong, when it is a known limitation of the ``nir`` package."""
    if isinstance(m, nn.Conv2d) and len(set(m.kernel_size)) > 1:
        return (f": a limitation of the nir package's Conv2d, which takes weight.shape[2] = {m.kernel_size[0]} as "
                f"the kernel size of both spatial dimensions (non-square kernel {tuple(m.kernel_size)}); use a "
                f"square kernel, or padding / stride for which both give the same shape")
    return ""


def _frame_shape(m: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(m(torch.zeros((1, *shape))).shape[1:])


def _convert(nir: Any, name: str, m: nn.Module, shape: tuple[int, ...],
             dt: float) -> tuple[list[tuple[str, Any]], tuple[int, ...]]:
    """The NIR nodes of one layer and the feature shape after it."""
    if isinstance(m, ALIF):
        _check_lif(name, m)  # refuses it
    if isinstance(m, RecurrentLIF):
        return [(name, _recurrent_node(nir, name, m, shape, dt))], shape
    if isinstance(m, LIF):
        return [(name, _lif_node(nir, name, m, shape, dt))], shape
    if isinstance(m, LI):
        return [(name, _li_node(nir, name, m, shape, dt))], shape
    if isinstance(m, nn.Linear):
        return [(name, _dense_node(nir, name, m, shape))], (m.out_features,)
    if isinstance(m, DelayedLinear):
        return _delay_nodes(nir, name, m, shape, dt), (m.out_features,)
    if isinstance(m, nn.Flatten):
        node = _flatten_node(nir, name, m, shape, lead=2)
        return [(name, node)], tuple(int(v) for v in node.output_type["output"])
    if isinstance(m, TimeDistributed):
        node = _frame_node(nir, name, m.module, shape)
        out = _frame_shape(m.module, shape)
        nir_out = node.output_type.get("output")
        if nir_out is not None and tuple(int(v) for v in nir_out) != out:
            raise _refuse(name, m, f"gives the frame shape {out}, but NIR computes {tuple(int(v) for v in nir_out)} "
                                   f"for it{_shape_limitation(m.module)}")
        return [(name, node)], out
    raise _refuse(name, m, "has no NIR equivalent (see snnlab.interop.nir for the layers that export)")


def _skipped(name: str, m: nn.Module) -> bool:
    """Layers that are the identity at inference."""
    if isinstance(m, SpikeMask) and m.mask_at_inference and m.p > 0:
        raise _refuse(name, m, f"drops spikes at inference (p={m.p:g}, mask_at_inference=True); NIR cannot")
    return isinstance(m, TimeDropout | SpikeMask | nn.Dropout | nn.Identity)


def to_nir(model: nn.Module, *, dt: float, input_shape: tuple[int, ...] | None = None) -> "nir.NIRGraph":
    """The NIR graph of ``model`` (see :mod:`snnlab.interop.nir` for the mapping and what is refused).

    ``dt``: the length of one time step in seconds (NIR's time constants are ``tau_mem * dt``; stored in
    ``graph.metadata["dt"]``). ``input_shape``: the feature shape of one step, without time and batch (default:
    from the first layer, which must then be dense or a neuron layer with ``n_neurons``).

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(2, 3, bias=False), sl.LIF(beta=0.75, reset="zero"))
        >>> g = to_nir(net, dt=1e-4)
        >>> g.edges
        [('input', '0'), ('0', '1'), ('1', 'output')]
        >>> g.nodes["1"].tau.round(8).tolist(), g.nodes["1"].r.tolist()   # tau = dt / (1 - beta), r = 1 / (1 - beta)
        ([0.0004, 0.0004, 0.0004], [4.0, 4.0, 4.0])
    """
    nir = _nir()
    dt = _check_dt(dt, "to_nir")
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"to_nir: model must be an snnlab.Sequential (or nn.Sequential) of layers, got "
                        f"{type(model).__name__}")
    layers = [(n, m) for n, m in _layers(model) if not _skipped(n, m)]
    if not layers:
        raise ValueError("to_nir: the model has no layer to export")
    in_shape = _input_shape(input_shape) if input_shape is not None else _first_shape(*layers[0])
    shape = in_shape  # (each layer's output shape from here on)
    nodes: list[tuple[str, Any]] = []
    i = 0
    while i < len(layers):
        name, m = layers[i]
        cuba = _cuba_node(nir, layers[i:i + 2], shape, dt)
        if cuba is not None:  # LI -> LIF: one CubaLIF, named after the LIF
            nodes.append((layers[i + 1][0], cuba))
            i += 2
            continue
        if isinstance(m, TimeBatchNorm):
            prev = nodes[-1][1] if nodes else None
            nodes[-1:] = [(nodes[-1][0] if nodes else name, _fold_batchnorm(nir, name, m, prev))]
        else:
            new, shape = _convert(nir, name, m, shape, dt)
            nodes += new
        i += 1
    all_nodes = {"input": nir.Input(input_type=np.array(in_shape)), **dict(nodes),
                 "output": nir.Output(output_type=np.array(shape))}
    names = list(all_nodes)
    edges = list(zip(names[:-1], names[1:]))
    return nir.NIRGraph(nodes=all_nodes, edges=edges, metadata={"dt": dt, "source": "snnlab"})


def _input_shape(input_shape: Any) -> tuple[int, ...]:
    """``input_shape`` as a tuple of positive ints (an int for a one-dimensional feature shape)."""
    shape = (input_shape,) if isinstance(input_shape, numbers.Integral) else input_shape
    try:
        out = tuple(int(v) for v in shape)
        ok = all(v > 0 and v == w for v, w in zip(out, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"to_nir: input_shape must be the feature shape of one step (positive ints, without time "
                         f"and batch, e.g. (2, 34, 34)), got {input_shape!r}")
    return out


# ----------------------------------------------------------------------------------------------------- import


def _fail(key: str, node: Any, why: str) -> ValueError:
    return ValueError(f"from_nir: node {key!r} ({type(node).__name__}) {why}")


def _tensor(a: Any) -> torch.Tensor:
    """``a`` as a float64 tensor (:func:`from_nir` casts the finished network to its ``dtype``)."""
    return torch.from_numpy(np.array(a, dtype=np.float64))


def _per_neuron(key: str, node: Any, values: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int | None]:
    """The parameters reduced to one value per layer (``n_neurons=None``) or per last-dimension neuron."""
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in values.items()}
    if all(np.all(a == a.flat[0]) for a in arrays.values() if a.size):
        return {k: a.flat[0:1].reshape(()) if a.size else a for k, a in arrays.items()}, None
    shape = next(iter(arrays.values())).shape
    if not shape:
        return arrays, None
    last = {k: a.reshape(-1, shape[-1]) for k, a in arrays.items()}
    if not all(np.all(a == a[:1]) for a in last.values()):
        raise _fail(key, node, f"has parameters varying over its neuron shape {shape} in more than the last "
                               "dimension; snnlab's per-neuron parameters are one per last-dimension neuron")
    return {k: a[0] for k, a in last.items()}, int(shape[-1])


def _metadata(node: Any) -> dict:
    meta = getattr(node, "metadata", None)
    return meta if isinstance(meta, dict) else {}


def _neuron_count(node: Any, n: int | None) -> int | None:
    """``n`` (the per-neuron count the values show), else the ``n_neurons`` :func:`to_nir` noted when it matches the
    node's last dimension (a per-neuron layer whose values are all equal)."""
    noted = _metadata(node).get("snnlab_n_neurons")
    shape = np.shape(getattr(node, "v_threshold", None) if getattr(node, "v_threshold", None) is not None
                     else getattr(node, "r", None))
    if n is None and isinstance(noted, numbers.Integral) and shape and int(shape[-1]) == int(noted):
        return int(noted)
    return n


def _zero(key: str, node: Any, field: str) -> None:
    value = getattr(node, field, None)
    if value is not None and np.any(np.asarray(value) != 0):
        raise _fail(key, node, f"has {field} != 0; snnlab neurons rest and reset at 0")


def _set_neurons(layer: LIF | LI, beta: np.ndarray, thr: np.ndarray | None = None) -> LIF | LI:
    layer.beta_const = _tensor(np.broadcast_to(beta, layer.beta_const.shape))
    if thr is not None:
        layer.threshold = _tensor(np.broadcast_to(thr, layer.threshold.shape))
    return layer


def _euler(key: str, node: Any, field: str, scale: Any, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - dt / tau, scale * dt / tau)`` of ``tau * dv/dt = -v + scale * input`` (``tau = node.<field>``) at step
    ``dt``: the decay and the input gain of one forward-Euler step; ``tau < dt`` is refused."""
    tau = np.asarray(getattr(node, field), dtype=np.float64)
    if np.any(tau < dt):
        raise _fail(key, node, f"has {field} < dt = {dt:g} s (min {field} {tau.min():g}); forward Euler needs "
                               f"{field} >= dt")
    return 1.0 - dt / tau, np.asarray(scale, dtype=np.float64) * dt / tau


def _decay_and_gain(key: str, node: Any, dt: float, leak_free: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(beta, input gain)`` of a neuron node stepped with forward Euler at ``dt``: ``(1, r * dt)`` for a node
    without leak (``IF`` / ``I``), else ``(1 - dt / tau, r * dt / tau)`` (``v_leak`` must be 0, ``tau >= dt``)."""
    r = np.asarray(node.r, dtype=np.float64)
    if leak_free:
        return np.ones_like(r), r * dt
    _zero(key, node, "v_leak")
    return _euler(key, node, "tau", r, dt)


def _threshold(key: str, node: Any, gain: np.ndarray) -> np.ndarray:
    """``v_threshold / gain``: the threshold on the membrane divided by the input gain (a gain within
    ``_GAIN_RTOL`` of 1 is 1, leaving the threshold as written)."""
    if np.any(gain <= 0) or not np.all(np.isfinite(gain)):
        what = "w_in * dt / tau_syn * r * dt / tau_mem" if isinstance(node, _nir().CubaLIF) else "r * dt / tau"
        raise _fail(key, node, f"has an input gain {what} that is not positive and finite")
    thr = np.asarray(node.v_threshold, dtype=np.float64)
    gain = np.where(np.abs(gain - 1.0) <= _GAIN_RTOL, 1.0, gain)
    return np.where(gain == 1.0, thr, thr / gain)


def _lif_params(key: str, node: Any, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``(beta, threshold)`` of an NIR ``LIF`` / ``IF`` node at step ``dt``."""
    _zero(key, node, "v_reset")
    beta, gain = _decay_and_gain(key, node, dt, leak_free=isinstance(node, _nir().IF))
    return beta, _threshold(key, node, gain)


def _lif_layer(key: str, node: Any, dt: float) -> LIF:
    beta, thr = _lif_params(key, node, dt)
    params, n = _per_neuron(key, node, {"beta": beta, "thr": thr})
    if np.any(params["thr"] <= 0):
        raise _fail(key, node, "has a threshold <= 0; snnlab thresholds are positive")
    layer = LIF(beta=0.5, threshold=1.0, reset="zero", n_neurons=_neuron_count(node, n))
    return _set_neurons(layer, params["beta"], params["thr"])


def _li_layer(key: str, node: Any, dt: float) -> LI:
    beta, gain = _decay_and_gain(key, node, dt, leak_free=isinstance(node, _nir().I))
    if np.any(np.abs(gain - 1.0) > _GAIN_RTOL):
        raise _fail(key, node, "has an input gain r * dt / tau != 1 (r != tau / dt), which would scale snnlab's LI "
                               "output; scale the weights before it instead")
    params, n = _per_neuron(key, node, {"beta": beta})
    return _set_neurons(LI(beta=0.5, n_neurons=_neuron_count(node, n)), params["beta"])


def _cuba_layers(key: str, node: Any, dt: float) -> list[nn.Module]:
    """An NIR ``CubaLIF`` as ``LI(synaptic current) -> LIF``: the current stepped first, the membrane integrating the
    new current (see :mod:`snnlab.interop.nir`); both input gains go into the LIF's threshold."""
    _zero(key, node, "v_leak")
    _zero(key, node, "v_reset")
    beta_syn, gain_syn = _euler(key, node, "tau_syn", node.w_in, dt)
    beta_mem, gain_mem = _euler(key, node, "tau_mem", node.r, dt)
    thr = _threshold(key, node, gain_syn * gain_mem)
    syn, n_syn = _per_neuron(key, node, {"beta": beta_syn})
    mem, n_mem = _per_neuron(key, node, {"beta": beta_mem, "thr": thr})
    if np.any(mem["thr"] <= 0):
        raise _fail(key, node, "has a threshold <= 0; snnlab thresholds are positive")
    li = _set_neurons(LI(beta=0.5, n_neurons=n_syn), syn["beta"])
    lif = _set_neurons(LIF(beta=0.5, threshold=1.0, reset="zero", n_neurons=n_mem), mem["beta"], mem["thr"])
    return [li, lif]


def _refuse_cuba_loop(key: str, node: Any) -> None:
    if isinstance(node, _nir().CubaLIF):
        raise _fail(key, node, "is in a recurrent loop: the recurrent spikes would pass through its synaptic current "
                               "(as snnTorch's RSynaptic), but snnlab's RecurrentLIF adds them to the membrane; "
                               "snnlab imports a loop LIF <-> Linear only")


def _dense_layer(node: Any) -> nn.Linear:
    w = np.asarray(node.weight)
    has_bias = hasattr(node, "bias")
    layer = nn.Linear(w.shape[1], w.shape[0], bias=has_bias)
    with torch.no_grad():
        layer.weight = nn.Parameter(_tensor(w))
        if has_bias:
            layer.bias = nn.Parameter(_tensor(node.bias))
    return layer


def _ints(v: Any) -> Any:
    if isinstance(v, str | bytes):
        return v.decode() if isinstance(v, bytes) else v
    a = np.asarray(v).astype(int)
    return int(a) if a.ndim == 0 else tuple(int(x) for x in a)


def _conv_layer(key: str, node: Any) -> TimeDistributed:
    w = np.asarray(node.weight)
    cls = nn.Conv1d if w.ndim == 3 else nn.Conv2d
    conv = cls(w.shape[1] * int(node.groups), w.shape[0], w.shape[2:], stride=_ints(node.stride),
               padding=_ints(node.padding), dilation=_ints(node.dilation), groups=int(node.groups))
    conv.weight = nn.Parameter(_tensor(w))
    if not bool(_metadata(node).get("snnlab_bias", True)) and not np.any(np.asarray(node.bias)):
        conv.bias = None  # a convolution without bias that to_nir wrote
    else:
        conv.bias = nn.Parameter(_tensor(node.bias))
    return TimeDistributed(conv)


def _flatten_layer(node: Any) -> nn.Flatten:
    n = len(node.input_type["input"]) if node.input_type.get("input") is not None else None
    start, end = int(node.start_dim), int(node.end_dim)
    if n is not None:
        start, end = start % n, end % n
    return nn.Flatten(start + 2 if start >= 0 else start, end + 2 if end >= 0 else end)


def _pool_layer(key: str, node: Any) -> TimeDistributed:
    if np.any(np.asarray(node.padding) != 0):
        raise _fail(key, node, "has padding; snnlab imports AvgPool2d without padding only")
    return TimeDistributed(nn.AvgPool2d(_ints(node.kernel_size), stride=_ints(node.stride)))


def _delay_layer(keys: list[str], fanout: Any, delay: Any, dense: Any, dt: float) -> DelayedLinear:
    """``[Linear fanout ->] Delay -> Linear / Affine`` as one rounded DelayedLinear (``fanout`` None: identity)."""
    steps = np.asarray(delay.delay, dtype=np.float64) / dt
    d = np.round(steps)
    if np.any(np.abs(steps - d) > 1e-6 * np.maximum(1.0, d)) or np.any(d < 0):
        raise _fail(keys[1], delay, f"has delays that are not whole non-negative multiples of dt = {dt:g} s")
    d = d.astype(np.int64).reshape(-1)
    w_wide = np.asarray(dense.weight)
    if fanout is None:
        src, n_in = np.arange(d.size), d.size
    else:
        r = np.asarray(fanout.weight)
        if not (np.isin(r, (0, 1)).all() and (r.sum(axis=1) == 1).all()):
            raise _fail(keys[0], fanout, "before a Delay is not a copy of its inputs (one 1 per row); snnlab folds "
                                         "only Linear(copy) -> Delay -> Linear into a DelayedLinear")
        src, n_in = r.argmax(axis=1), r.shape[1]
    out = w_wide.shape[0]
    weight, delays = np.zeros((out, n_in), dtype=w_wide.dtype), np.zeros((out, n_in), dtype=np.int64)
    for i in range(n_in):
        cols = np.flatnonzero(src == i)
        nonzero = w_wide[:, cols] != 0
        if (nonzero.sum(axis=1) > 1).any():
            raise _fail(keys[-1], dense, f"connects input {i} to an output through several delays; a DelayedLinear "
                                         "has one delay per synapse")
        pick = cols[nonzero.argmax(axis=1)]
        weight[:, i] = w_wide[np.arange(out), pick]
        delays[:, i] = np.where(nonzero.any(axis=1), d[pick], 0)
    max_delay = max(int(delays.max()) + 1, int(dense.metadata.get("snnlab_max_delay", 0)) if dense.metadata else 0)
    layer = DelayedLinear(n_in, out, max_delay, learn_delays=False, bias=hasattr(dense, "bias"), init_delay="zero")
    with torch.no_grad():
        layer.weight = nn.Parameter(_tensor(weight))
        layer.positions = _tensor(delays).to(layer.weight.dtype)
        if hasattr(dense, "bias"):
            layer.bias = nn.Parameter(_tensor(dense.bias))
    return layer


def _recurrent_layer(key: str, lif: Any, w_rec: Any, dt: float) -> RecurrentLIF:
    _refuse_cuba_loop(key, lif)
    if not isinstance(lif, _nir().LIF | _nir().IF):
        raise _fail(key, lif, "is in a recurrent loop; snnlab imports a loop LIF <-> Linear only")
    if hasattr(w_rec, "bias") and np.any(np.asarray(w_rec.bias) != 0):
        raise _fail(key, w_rec, "is a recurrent Affine with a bias; RecurrentLIF's recurrent weight has none")
    w = np.asarray(w_rec.weight)
    n = w.shape[0]
    if w.shape != (n, n) or np.asarray(lif.v_threshold).shape != (n,):
        raise _fail(key, w_rec, f"has the shape {w.shape}; a recurrent weight is [n, n] for n LIF neurons")
    beta, thr = _lif_params(key, lif, dt)
    if np.any(thr <= 0):
        raise _fail(key, lif, "has a threshold <= 0; snnlab thresholds are positive")
    layer = RecurrentLIF(n, beta=0.5, reset="zero", recurrent_init="zeros")
    _set_neurons(layer, beta, thr)
    layer.recurrent.weight = nn.Parameter(_tensor(w))
    return layer


def _subgraph_layer(key: str, graph: Any, dt: float) -> RecurrentLIF:
    nir = _nir()
    inner = {k: v for k, v in graph.nodes.items() if not isinstance(v, nir.Input | nir.Output)}
    if len(inner) == 2:
        for k, v in inner.items():
            _refuse_cuba_loop(f"{key}.{k}", v)
    lifs = [k for k, v in inner.items() if isinstance(v, nir.LIF | nir.IF)]
    dense = [k for k, v in inner.items() if isinstance(v, nir.Linear | nir.Affine)]
    if len(inner) != 2 or len(lifs) != 1 or len(dense) != 1:
        raise _fail(key, graph, "is a sub-graph other than the recurrent LIF <-> Linear loop snnlab imports")
    lif, w = lifs[0], dense[0]
    edges = {tuple(e) for e in graph.edges}
    ins = [a for a, b in edges if b == lif and a != w]
    if not {(lif, w), (w, lif)} <= edges or [b for a, b in edges if a == w] != [lif] or len(ins) != 1:
        raise _fail(key, graph, "is not the loop Input -> LIF -> Output with LIF -> Linear -> LIF")
    return _recurrent_layer(key, inner[lif], inner[w], dt)


def _chain(graph: Any) -> list[str | tuple[str, str]]:
    """The node keys from the Input to the Output; a flat ``LIF <-> Linear`` loop is ``(lif, linear)``."""
    nir = _nir()
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    pred: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
        pred[b].append(a)
    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"from_nir: the graph must have one Input node, got {inputs}")
    order: list[str | tuple[str, str]] = []
    key, seen = inputs[0], set()
    while True:
        seen.add(key)
        nxt = succ[key]
        loops = _loops(succ, pred, key)
        if loops:
            order.append((key, loops[0]))
            seen.add(loops[0])
            nxt = [k for k in nxt if k != loops[0]]
        else:
            order.append(key)
        if isinstance(graph.nodes[key], nir.Output) and not nxt:
            return order
        if len(nxt) != 1:
            raise _fail(key, graph.nodes[key], f"has {len(nxt)} successors {nxt}; from_nir imports chains only")
        key = nxt[0]
        if key in seen or len([p for p in pred[key] if p not in _loops(succ, pred, key)]) != 1:
            raise _fail(key, graph.nodes[key], f"has the predecessors {pred[key]}; from_nir imports chains only")


def _loops(succ: dict[str, list[str]], pred: dict[str, list[str]], key: str) -> list[str]:
    """The nodes in a two-node loop with ``key`` (``key -> w -> key``, ``w`` connected to nothing else)."""
    return [w for w in succ[key] if succ[w] == [key] and pred[w] == [key]]


def _graph_dt(graph: Any, dt: float | None) -> float:
    if dt is None:
        meta = graph.metadata if isinstance(getattr(graph, "metadata", None), dict) else {}
        if "dt" not in meta:
            raise ValueError("from_nir: the graph has no metadata['dt']; give dt= (the step length in seconds)")
        dt = float(np.asarray(meta["dt"]))
    return _check_dt(dt, "from_nir")


def from_nir(graph: "nir.NIRGraph", *, dt: float | None = None, dtype: torch.dtype | None = None) -> Sequential:
    """The :class:`~snnlab.Sequential` of a chain-shaped NIR graph (see :mod:`snnlab.interop.nir`).

    ``dt``: the step length in seconds at which to discretise the graph (forward Euler); default
    ``graph.metadata["dt"]``, which :func:`to_nir` writes. ``dtype``: of the parameters (default: torch's default
    dtype, float32 unless changed), each rounded once from the graph's values.

    Example:
        >>> import numpy as np, nir
        >>> g = nir.NIRGraph.from_list(nir.Linear(weight=np.ones((2, 3))),
        ...                            nir.LIF(tau=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2),
        ...                                    v_threshold=np.ones(2)))
        >>> from_nir(g, dt=0.001)
        Sequential(
          (0): Linear(in_features=3, out_features=2, bias=False)
          (1): LIF(tau_mem=10, threshold=1, reset='zero', surrogate=atan(2))
        )
    """
    nir = _nir()
    dt = _graph_dt(graph, dt)
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"from_nir: expected a nir.NIRGraph, got {type(graph).__name__}")
    items = _chain(graph)
    layers: list[nn.Module] = []
    i = 0
    while i < len(items):
        item = items[i]
        if isinstance(item, tuple):
            layers.append(_recurrent_layer(item[0], graph.nodes[item[0]], graph.nodes[item[1]], dt))
            i += 1
            continue
        node = graph.nodes[item]
        ahead = [graph.nodes[k] if isinstance(k, str) else None for k in items[i + 1:i + 3]]
        if isinstance(node, nir.Linear) and ahead[:1] and isinstance(ahead[0], nir.Delay):
            if len(ahead) < 2 or not isinstance(ahead[1], nir.Linear | nir.Affine):
                raise _fail(items[i + 1], ahead[0], "is not followed by a Linear / Affine node")
            layers.append(_delay_layer(items[i:i + 3], node, ahead[0], ahead[1], dt))
            i += 3
            continue
        if isinstance(node, nir.Delay):
            if not ahead or not isinstance(ahead[0], nir.Linear | nir.Affine):
                raise _fail(item, node, "is not followed by a Linear / Affine node (snnlab delays synapses)")
            layers.append(_delay_layer([item, item, items[i + 1]], None, node, ahead[0], dt))
            i += 2
            continue
        if isinstance(node, nir.CubaLIF):
            layers += _cuba_layers(item, node, dt)
            i += 1
            continue
        layer = _layer(item, node, dt)
        if layer is not None:
            layers.append(layer)
        i += 1
    return Sequential(*layers).to(dtype or torch.get_default_dtype())


def _layer(key: str, node: Any, dt: float) -> nn.Module | None:
    """The snnlab layer of one NIR node (None for Input / Output)."""
    nir = _nir()
    if isinstance(node, nir.Input | nir.Output):
        return None
    if isinstance(node, nir.Affine | nir.Linear):
        if np.asarray(node.weight).ndim != 2:
            raise _fail(key, node, f"has a weight of shape {np.asarray(node.weight).shape}; snnlab imports 2-D ones")
        return _dense_layer(node)
    if isinstance(node, nir.LIF | nir.IF):
        return _lif_layer(key, node, dt)
    if isinstance(node, nir.LI | nir.I):
        return _li_layer(key, node, dt)
    if isinstance(node, nir.Conv1d | nir.Conv2d):
        return _conv_layer(key, node)
    if isinstance(node, nir.Flatten):
        return _flatten_layer(node)
    if isinstance(node, nir.AvgPool2d):
        return _pool_layer(key, node)
    if isinstance(node, nir.NIRGraph):
        return _subgraph_layer(key, node, dt)
    raise _fail(key, node, "has no snnlab layer (imported: Affine, Linear, LIF, IF, LI, I, CubaLIF, Conv1d, Conv2d, "
                           "AvgPool2d, Flatten, Delay before a dense node, the recurrent LIF sub-graph)")
