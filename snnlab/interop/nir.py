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
- :class:`~snnlab.LIF` with ``reset="zero"`` -> ``LIF`` (``IF`` without leak), parameters broadcast to the layer's
  neuron shape (per-neuron and learned ``tau_mem`` / ``threshold`` export their current values, their learnability
  noted in metadata).
- :class:`~snnlab.LIF` with ``reset="subtract"`` (the default) -> a sub-graph (see **Subtract reset** below)
  ``Input -> LI -> Threshold -> Output`` with the loop ``Threshold -> Scale(-beta * threshold) -> LI``: NIR's LIF,
  IF and CubaLIF set ``v = v_reset`` and none subtracts the threshold, so the membrane is an ``LI`` (``I`` without
  leak, with ``Scale(-threshold)``) and the reset a loop that feeds the previous step's spikes back.
  Refused with a ``ValueError``, whatever the reset: ``max_spikes``, noise with ``noisy_eval=True`` and ``mask_p``
  with ``mask_at_inference=True`` (random or budgeted spiking has no NIR node), and :class:`~snnlab.ALIF` (an
  adaptive threshold has no NIR node).
  Training-only options are exported as the deterministic neuron: ``surrogate``, ``detach_reset``, noise and
  masks that are off at inference. snnlab fires at ``h >= threshold``, NIR's LIF at ``v > v_threshold`` and its
  Threshold at ``v > threshold``: the two differ only for a membrane exactly on the threshold.
- :class:`~snnlab.LI` -> ``LI`` (``I`` without leak).
- :class:`~snnlab.LI` directly followed by :class:`~snnlab.LIF` (the current-based neuron of ``tau_syn``; skipped
  layers between them do not count) -> one ``CubaLIF`` named after the LIF (see below), when both leak and the LIF
  resets to zero (else the two nodes ``LI`` / ``I`` and ``LIF`` / ``IF`` or the subtract sub-graph). An LI before
  a :class:`~snnlab.RecurrentLIF` stays ``LI`` + the recurrent sub-graph: in a ``CubaLIF <-> Linear`` loop
  (snnTorch's ``RSynaptic``) the recurrent spikes pass through the synaptic current, whereas snnlab adds
  ``W_rec @ o[t-1]`` to the membrane.
- :class:`~snnlab.RecurrentLIF` (``reset="zero"``) -> a sub-graph ``Input -> LIF -> Output`` with the cycle
  ``LIF -> Linear(W_rec) -> LIF`` (snnTorch's form for its ``RLeaky``): the recurrent edge carries the previous
  step's spikes, as in snnlab's ``W_rec @ o[t-1]``. With ``reset="subtract"``: the subtract sub-graph with a second
  loop ``Threshold -> Linear(W_rec) -> LI`` beside the ``Scale`` (two edges into the LI, whose inputs add up: the
  recurrent weight stays as it is, rather than one ``Linear(W_rec - diag(beta * threshold))``).
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

**Subclasses and hooks.** A layer is mapped by its class (the first that fits above: an ``ALIF`` or a
``RecurrentLIF`` is not mapped as an ``LIF``), and the node holds what that class's ``forward`` computes. So a subclass
exports only while it keeps that ``forward``: one adding methods or attributes, or overriding ``__init__``,
``extra_repr`` or another method, exports as its parent (the exporter reads its parameters, ``beta()`` included;
only ``forward`` and ``__call__`` are checked, not the helpers a ``forward`` calls); one overriding ``forward`` (or
``__call__``) is refused with a ``ValueError`` naming the layer (its node name and module path), its class and the
``forward`` it has, whatever it computes: the graph would hold the parent's computation, not this layer's. The
same holds for the containers (``model`` and the nested ``nn.Sequential``), the frame module of a ``TimeDistributed``
and the recurrent ``nn.Linear`` of a ``RecurrentLIF``.
Forward hooks and forward pre-hooks (of those modules, and the global ``register_module_forward_*hook``) are not
run by a NIR simulator: ``to_nir`` exports without them and names them in a ``UserWarning`` (a warning, not an
error: most hooks only watch, as loggers and FLOP counters do; one that returns another input or output makes the
graph compute something else than the model: remove it with its handle's ``remove()`` before exporting). Not named:
snnlab's own hooks (:class:`~snnlab.Monitor`, the SynOps counter, the trainer's: they only record), and the
pre-hooks of ``torch.nn.utils.prune`` and the hook-based ``weight_norm`` / ``spectral_norm``, which compute a weight
from its parameters: the exported weight is the one they compute from the current parameters (the spectral norm's
stored vectors, without a power iteration, as in eval mode), not the attribute the last call left behind; a
``torch.nn.utils.parametrize``-d weight (``parametrizations.spectral_norm``...) is computed with its parametrizations
in eval mode too, so exporting a model in train mode leaves its state (the stored vectors) as it was.

**Subtract reset.** snnlab's ``h[t] = beta * v[t-1] + x[t]``, ``s[t] = H(h[t] - threshold)``, ``v[t] = h[t] -
threshold * s[t]`` is, written for the pre-reset membrane ``h`` alone::

    h[t] = beta * h[t-1] + x[t] - beta * threshold * s[t-1]

an LI (mapped as above: ``tau = tau_mem * dt``, ``r = tau_mem``, ``v_leak = 0``) whose input adds the previous
step's spikes scaled by ``-beta * threshold``, and whose output ``h`` goes through a ``Threshold(threshold)``. So
``to_nir`` writes the sub-graph ``{input, membrane: LI, threshold: Threshold, reset: Scale, output}`` with the
edges ``input -> membrane -> threshold -> output`` and ``threshold -> reset -> membrane`` (plus ``threshold ->
w_rec -> membrane`` for a RecurrentLIF), noted ``metadata = {"snnlab_layer": "LIF" or "RecurrentLIF",
"snnlab_reset": "subtract"}``, the layer's metadata (learnability, exact values) on the ``membrane`` node. As for
the recurrent sub-graph, an edge that closes a loop carries the previous step's output (forward Euler: the loop
sees ``s[t-1]``; ``s[-1] = 0``). The LI's Euler step ``v[t] = (1 - dt/tau) v[t-1] + (dt/tau) r I[t]`` is snnlab's
map exactly; a simulator that reads the loop without that one-step delay computes another neuron.

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

Graphs that :func:`to_nir` wrote come back with the same layers, state-dict shapes and values: its node metadata notes
a layer's ``n_neurons`` (``snnlab_n_neurons``, for per-neuron values that happen to be equal), a convolution without
bias (``snnlab_bias``), whether ``tau_mem`` / the threshold are learnable (``snnlab_learn_tau``,
``snnlab_learn_threshold``; ``snnlab_syn_...`` for the synaptic LI of a ``CubaLIF``) and the layer's own ``tau_mem``
(``snnlab_tau_mem`` when learned) or ``beta`` (``snnlab_beta``) in float64, because ``tau`` in seconds may give it
back only to a few ulps, and the ``tau`` it wrote (``snnlab_tau_s``). :func:`from_nir` uses those exact values when
it reads the graph at the ``dt`` it was written at and the node still holds the ``tau`` it wrote (an edited node's
own values win, however small the edit), so float64 parameters round-trip bit-equal; its ``learnable`` option
chooses the learnable parameters (``None``: as noted, so fixed for graphs from other tools; ``True`` / ``False``:
all / none).

:func:`from_nir` takes chains of those nodes back (``Affine``, ``Linear``, ``LIF``, ``IF``, ``LI``, ``I``,
``CubaLIF``, ``Conv1d``, ``Conv2d``, ``AvgPool2d``, ``Flatten``, ``Delay`` before a dense node, the recurrent
sub-graph above, and the same ``LIF <-> Linear`` cycle written in the top-level graph), accepting every
parameterisation snnlab's neurons represent exactly (in forward Euler at ``dt``, with ``g`` the input gain
``r*dt/tau``, ``r*dt`` for IF / I):

- The subtract-reset pattern, in a sub-graph (whatever its node names) or in the top-level graph: an ``LI`` / ``I``
  (``v_leak = 0``) whose only successor is a ``Threshold``, which feeds back to it through one ``Scale`` (and at most
  one ``Linear`` / ``Affine`` without bias, the recurrent weight), each loop node connected to nothing else; a
  sub-graph holding a Threshold must be exactly that, between its Input and Output. It becomes an LIF (a
  RecurrentLIF with the dense loop) with ``reset="subtract"``, ``threshold = threshold / g`` and ``beta`` from the
  LI, when the Scale is ``-beta * threshold / g`` (to a relative 1e-6; ``-threshold / g`` without leak). Another
  Scale (``-threshold`` with leak would reset after the decay), two Scales, another node in the loop or a
  threshold <= 0 are refused. The Scale is the reset of one step of the ``dt`` the graph was written for: read
  at another ``dt``, beta and the gain change but the Scale does not, and the loop is refused (a zero-reset node
  reads at any ``dt``).

- LIF / IF with ``g != 1``: ``threshold = v_threshold / g`` (the membrane is then ``v / g`` at every step: the same
  spikes). With ``v_leak = v_reset = c`` (any ``c``, for example -65 mV), ``v - c`` follows ``(v - c)[t] = beta *
  (v - c)[t-1] + g * I[t]`` and resets to 0: imported with ``threshold = (v_threshold - c) / g``, the membrane
  starting at rest (``v = c``, as Norse starts it; a simulator starting at ``v = 0`` differs while it settles).
- LI / I with ``g != 1`` (Norse writes ``r = 1``, so ``g = dt/tau``): its output is ``g`` times that of snnlab's
  LI, so ``g`` is folded into the ``Linear`` / ``Affine`` right before it (``W' = g W``, ``b' = g b``, per neuron;
  one ``g`` for the whole layer also into a convolution): the same output up to rounding.
- ``CubaLIF``: ``LI(beta = 1 - dt/tau_syn) -> LIF(beta = 1 - dt/tau_mem)`` with ``threshold = (v_threshold - c) /
  (g_syn * g_mem)``, ``g_syn = w_in*dt/tau_syn``, ``g_mem = r*dt/tau_mem`` (the LI's output only feeds the LIF, so
  its gain folds into the threshold too).

Refused, each with the value and the reason: ``v_leak != v_reset`` (snnlab's membrane resets to where it rests),
``v_reset != 0`` for IF (no resting potential: it starts at 0), ``v_leak != 0`` for LI (an output offset),
``tau < dt`` (``tau_syn`` / ``tau_mem`` too: ``beta < 0``), LIF gains that are not positive and finite and
thresholds at or below ``v_reset``, an LI with a gain and no dense layer before it, a ``CubaLIF`` in a recurrent
loop, fan-in / fan-out and other nodes (``CubaLI``; ``Threshold``, ``Scale`` outside the subtract pattern...).

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
    >>> default = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(tau_mem=5.0, threshold=0.5))  # reset="subtract"
    >>> sub = to_nir(default, dt=1e-3).nodes["1"]
    >>> [f"{a}->{b}" for a, b in sub.edges]
    ['input->membrane', 'membrane->threshold', 'threshold->reset', 'reset->membrane', 'threshold->output']
    >>> float(sub.nodes["reset"].scale[0])   # -beta * threshold = -0.8 * 0.5
    -0.4000000059604645
    >>> back = from_nir(to_nir(default, dt=1e-3))
    >>> back[1].reset, torch.equal(back(x), default(x))
    ('subtract', True)
    >>> learned = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(tau_mem=5.0, reset="zero", learn_tau=True))
    >>> back = from_nir(to_nir(learned, dt=1e-3))     # learnability noted in the node's metadata, restored
    >>> back[1].learn_tau, back[1].learn_threshold, from_nir(to_nir(learned, dt=1e-3), learnable=False)[1].learn_tau
    (True, False, False)
"""
from __future__ import annotations

import numbers
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from snnlab.core.adaptive import ALIF
from snnlab.core.delays import DelayedLinear
from snnlab.core.dropout import TimeDropout
from snnlab.core.masking import SpikeMask
from snnlab.core.module_hooks import WEIGHT_HOOK_TYPES, hook_label, hook_tensor_name, is_snnlab_hook
from snnlab.core.network import Sequential
from snnlab.core.neurons import LI, LIF
from snnlab.core.normalization import TimeBatchNorm
from snnlab.core.recurrent import RecurrentLIF
from snnlab.core.time_distributed import TimeDistributed
from snnlab.core.validation import user_stacklevel
from snnlab.interop.nir_import import _check_dt, _nir, _tau_field, from_nir

if TYPE_CHECKING:  # pragma: no cover
    import nir

__all__ = ["to_nir", "from_nir"]


def _np(t: torch.Tensor) -> np.ndarray:
    """``t`` as a NumPy array of its own; bfloat16 (which NumPy lacks) as float32, which holds each value exactly."""
    t = t.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy().copy()


# ----------------------------------------------------------------------------------------------------- export


def _layers(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The layers of a (nested) ``nn.Sequential`` in order, named by their path (``"2_0"`` for ``model[2][0]``)."""
    out = []
    for name, child in model.named_children():
        path = f"{prefix}{name}"
        out += _layers(child, path + "_") if isinstance(child, nn.Sequential) else [(path, child)]
    return out


#: the classes whose ``forward`` the exporter maps (the first that a layer is an instance of: subclasses first)
_MAPPED: tuple[type[nn.Module], ...] = (ALIF, RecurrentLIF, LIF, LI, DelayedLinear, nn.Linear, TimeBatchNorm,
                                        TimeDistributed, nn.Flatten, TimeDropout, SpikeMask, nn.Dropout, nn.Identity)
#: the same for the frame module of a ``TimeDistributed``
_FRAME_MAPPED: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.AvgPool2d, nn.Flatten)


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_forward(where: str, m: nn.Module, mapped: tuple[type[nn.Module], ...]) -> None:
    """``ValueError`` when ``m`` is mapped as one of ``mapped`` but computes something else: its class overrides that
    class's ``forward`` (or ``nn.Module.__call__``). ``where``: the layer, as the message names it."""
    base = next((c for c in mapped if isinstance(m, c)), None)
    if base is None:  # (no NIR node: refused as such later)
        return
    cls = type(m)
    if cls.forward is not base.forward:
        why = f"overrides forward ({hook_label(cls.forward)})"
    elif cls.__call__ is not nn.Module.__call__:
        why = f"overrides __call__ ({_qualname(cls)}.__call__)"
    else:
        return
    raise ValueError(f"to_nir: {where} ({_qualname(cls)}, a subclass of {base.__name__}) {why}; to_nir maps a "
                     f"{base.__name__} by what {base.__name__}.forward computes, so the graph would hold the "
                     f"parent's computation, not this layer's. A subclass exports only while it keeps "
                     f"{base.__name__}.forward (methods and attributes of its own are fine): build the exported "
                     f"network from {base.__name__} itself, or leave this layer out")


def _param(m: nn.Module, attr: str) -> torch.Tensor | None:
    """``m.<attr>`` (``"weight"`` / ``"bias"``) as ``m``'s next call computes it: recomputed from its parameters where
    a prune / hook-based ``weight_norm`` / ``spectral_norm`` pre-hook writes it at each call (the attribute holds the
    value of the last call, stale after an optimiser step); the spectral norm from its stored vectors, as in eval
    mode."""
    for hook in m._forward_pre_hooks.values():
        if hook_tensor_name(hook) != attr:  # (None for all but the WEIGHT_HOOK_TYPES)
            continue
        with torch.no_grad():
            if isinstance(hook, SpectralNorm):
                return hook.compute_weight(m, do_power_iteration=False)
            return hook.compute_weight(m) if isinstance(hook, WeightNorm) else hook.apply_mask(m)
    if parametrize.is_parametrized(m, attr):  # (computed on access: in train mode a spectral norm would run a power
        return _eval_parametrized(m, attr)  # iteration, moving its stored vectors and exporting another weight)
    return getattr(m, attr)


def _eval_parametrized(m: nn.Module, attr: str) -> torch.Tensor:
    """``m.<attr>`` of a ``torch.nn.utils.parametrize``-d tensor computed with its parametrizations in eval mode (the
    model's state unchanged), their training flags put back after."""
    modes = [(p, p.training) for p in m.parametrizations[attr].modules()]
    try:
        m.parametrizations[attr].eval()
        with torch.no_grad():
            return getattr(m, attr)
    finally:
        for p, training in modes:
            p.training = training


def _hook_names(where: str, m: nn.Module) -> list[str]:
    """The forward (pre-)hooks of ``m`` that :func:`to_nir` does not export, as ``"<kind> <hook> on <where>"``."""
    out = [f"forward pre-hook {hook_label(hook)} on {where}" for hook in m._forward_pre_hooks.values()
           if not (is_snnlab_hook(hook) or isinstance(hook, WEIGHT_HOOK_TYPES))]  # (weight hooks: see _param)
    return out + [f"forward hook {hook_label(hook)} on {where}" for hook in m._forward_hooks.values()
                  if not is_snnlab_hook(hook)]


def _check_modules(model: nn.Sequential) -> None:
    """Refuse (``ValueError``) the layers that override the ``forward`` their export is mapped from, and name the
    forward hooks that the graph leaves out in one ``UserWarning`` (see **Subclasses and hooks** in
    :mod:`snnlab.interop.nir`)."""
    hooks: list[str] = []

    def walk(container: nn.Module, where: str, prefix: str, path: str) -> None:
        _check_forward(where, container, (Sequential, nn.Sequential))  # (snnlab's computes nn.Sequential's)
        hooks.extend(_hook_names(where, container))
        for child_name, child in container.named_children():
            node, module_path = f"{prefix}{child_name}", f"{path}.{child_name}" if path else child_name
            here = f"layer {node!r} (model.{module_path})" if node != module_path else f"layer {node!r}"
            if isinstance(child, nn.Sequential):
                walk(child, f"the container model.{module_path}", node + "_", module_path)
                continue
            _check_forward(here, child, _MAPPED)
            hooks.extend(_hook_names(here, child))
            for attr, mapped in (("module", _FRAME_MAPPED), ("recurrent", (nn.Linear,))):
                inner = getattr(child, attr, None) if isinstance(child, TimeDistributed | RecurrentLIF) else None
                if isinstance(inner, nn.Module):
                    _check_forward(f"the {attr} of {here}", inner, mapped)
                    hooks.extend(_hook_names(f"the {attr} of {here}", inner))

    walk(model, "the model", "", "")
    glob = nn.modules.module
    hooks += [f"global forward pre-hook {hook_label(hook)}" for hook in glob._global_forward_pre_hooks.values()
              if not is_snnlab_hook(hook)]
    hooks += [f"global forward hook {hook_label(hook)}" for hook in glob._global_forward_hooks.values()
              if not is_snnlab_hook(hook)]
    if hooks:
        warnings.warn(f"to_nir: the graph leaves out {len(hooks)} forward hook(s), which a NIR simulator does not "
                      f"run: {'; '.join(hooks)}. Exported as the modules' own forward: if a hook changes a module's "
                      "input or output, the graph computes something else than the model (remove the hook with its "
                      "handle's remove() before exporting)", UserWarning, stacklevel=user_stacklevel())


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
    if m.reset == "subtract":
        return _subtract_graph(nir, name, m, shape, dt)
    steps, no_leak = _leak(name, m, shape, dt)
    thr = np.broadcast_to(_np(m.threshold), shape).copy()
    zeros = np.zeros(shape)
    if no_leak:
        node = nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=thr, v_reset=zeros)
    else:
        node = nir.LIF(tau=steps * dt, r=steps, v_leak=zeros, v_threshold=thr, v_reset=zeros)
    return _with_meta(node, m)


def _with_meta(node: Any, m: LIF | LI, prefix: str = "") -> Any:
    """``node`` noting in its metadata what NIR's fields do not hold: the layer's ``n_neurons`` (``snnlab_n_neurons``,
    so that per-neuron parameters come back per neuron also where their values are all equal), ``learn_tau`` /
    ``learn_threshold`` (``snnlab_learn_tau``...) and its own time constant (``snnlab_tau_mem`` of a learned tau,
    ``snnlab_beta`` of a fixed one, float64), which ``tau`` in seconds gives back only to a few ulps, with the node's
    ``tau`` it goes with (``snnlab_tau_s``: :func:`from_nir` uses the exact value only while the node holds it).
    ``prefix`` ``"syn_"``: the synaptic LI of a ``CubaLIF``."""
    meta = {f"snnlab_{prefix}learn_tau": bool(m.learn_tau)}
    if m.n_neurons is not None:
        meta[f"snnlab_{prefix}n_neurons"] = int(m.n_neurons)
    value = (m.tau_mem if m.learn_tau else m.beta_const).detach().cpu().double().numpy()
    meta[f"snnlab_{prefix}{'tau_mem' if m.learn_tau else 'beta'}"] = _compact(value)
    written = getattr(node, _tau_field(node, prefix), None)
    if written is not None:
        meta[f"snnlab_{prefix}tau_s"] = _compact(np.asarray(written, dtype=np.float64))
    if isinstance(m, LIF):
        meta["snnlab_learn_threshold"] = bool(m.learn_threshold)
    node.metadata = {**(node.metadata or {}), **meta}
    return node


def _compact(value: np.ndarray) -> float | np.ndarray:
    """``value`` for metadata: one float where all its values are equal (a per-layer value broadcast over the
    neurons), else a copy of the array."""
    flat = value.reshape(-1)
    return float(flat[0]) if flat.size and np.all(flat == flat[0]) else value.copy()


def _subtract_graph(nir: Any, name: str, m: LIF, shape: tuple[int, ...], dt: float) -> Any:
    """A LIF with ``reset="subtract"`` (a :class:`~snnlab.RecurrentLIF` too) as the sub-graph ``Input -> LI ->
    Threshold -> Output`` with the loop ``Threshold -> Scale(-beta * threshold) -> LI`` (and ``Threshold ->
    Linear(W_rec) -> LI`` for a recurrent layer): the LI integrates ``h[t] = beta * h[t-1] + x[t] - beta *
    threshold * s[t-1]``, snnlab's pre-reset membrane (``I`` and ``Scale(-threshold)`` without leak)."""
    steps, no_leak = _leak(name, m, shape, dt)
    thr = np.broadcast_to(_np(m.threshold), shape).copy()
    beta = np.broadcast_to(m.beta().detach().cpu().double().numpy(), shape)
    membrane = nir.I(r=np.full(shape, 1.0 / dt)) if no_leak else nir.LI(tau=steps * dt, r=steps,
                                                                          v_leak=np.zeros(shape))
    nodes = {"input": nir.Input(input_type=np.array(shape)), "membrane": _with_meta(membrane, m),
             "threshold": nir.Threshold(threshold=thr), "reset": nir.Scale(scale=-(beta * thr.astype(np.float64))),
             "output": nir.Output(output_type=np.array(shape))}
    edges = [("input", "membrane"), ("membrane", "threshold"), ("threshold", "reset"), ("reset", "membrane"),
             ("threshold", "output")]
    if isinstance(m, RecurrentLIF):
        nodes["w_rec"] = nir.Linear(weight=_np(_param(m.recurrent, "weight")))
        edges[-1:-1] = [("threshold", "w_rec"), ("w_rec", "membrane")]
    meta = {"snnlab_layer": type(m).__name__, "snnlab_reset": "subtract"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def _li_node(nir: Any, name: str, m: LI, shape: tuple[int, ...], dt: float) -> Any:
    steps, no_leak = _leak(name, m, shape, dt)
    node = nir.I(r=np.full(shape, 1.0 / dt)) if no_leak else nir.LI(tau=steps * dt, r=steps, v_leak=np.zeros(shape))
    return _with_meta(node, m)


def _cuba_node(nir: Any, pair: list[tuple[str, nn.Module]], shape: tuple[int, ...], dt: float) -> Any | None:
    """``LI -> LIF`` (``pair``) as one ``CubaLIF`` with unit gains, or None when ``pair`` is not such a pair or
    one of them has no leak (``tau = inf``: no finite ``w_in`` / ``r`` gives a gain of 1)."""
    if len(pair) < 2 or not isinstance(pair[0][1], LI) or not isinstance(pair[1][1], LIF):
        return None
    if isinstance(pair[1][1], RecurrentLIF):  # recurrence into the membrane: LI + the recurrent sub-graph
        return None
    (li_name, li), (name, lif) = pair
    _check_lif(name, lif)
    if lif.reset == "subtract":  # the LI + the subtract-reset sub-graph: CubaLIF resets to v_reset
        return None
    syn, syn_free = _leak(li_name, li, shape, dt)
    mem, mem_free = _leak(name, lif, shape, dt)
    if syn_free or mem_free:
        return None
    thr = np.broadcast_to(_np(lif.threshold), shape).copy()
    zeros = np.zeros(shape)
    node = nir.CubaLIF(tau_syn=syn * dt, tau_mem=mem * dt, r=mem, v_leak=zeros, v_threshold=thr, v_reset=zeros,
                       w_in=syn)
    return _with_meta(_with_meta(node, lif), li, prefix="syn_")


def _recurrent_node(nir: Any, name: str, m: RecurrentLIF, shape: tuple[int, ...], dt: float) -> Any:
    if shape != (m.n_neurons,):
        raise _refuse(name, m, f"has {m.n_neurons} neurons, but its input has the feature shape {shape}")
    if m.reset == "subtract":
        return _lif_node(nir, name, m, shape, dt)  # (the subtract sub-graph, with the recurrent loop)
    n = m.n_neurons
    nodes = {"input": nir.Input(input_type=np.array([n])), "lif": _lif_node(nir, name, m, shape, dt),
             "w_rec": nir.Linear(weight=_np(_param(m.recurrent, "weight"))),
             "output": nir.Output(output_type=np.array([n]))}
    edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"snnlab_layer": "RecurrentLIF"})


def _dense_node(nir: Any, name: str, m: nn.Linear, shape: tuple[int, ...]) -> Any:
    if shape != (m.in_features,):
        raise _refuse(name, m, f"takes {m.in_features} features, but its input has the feature shape {shape} "
                               "(NIR's Affine acts on one-dimensional inputs: flatten first)")
    weight, bias = _param(m, "weight"), _param(m, "bias")
    return nir.Linear(weight=_np(weight)) if bias is None else nir.Affine(weight=_np(weight), bias=_np(bias))


def _delay_nodes(nir: Any, name: str, m: DelayedLinear, shape: tuple[int, ...], dt: float) -> list[tuple[str, Any]]:
    """A rounded DelayedLinear as ``Linear`` (copy per distinct delay) -> ``Delay`` -> ``Linear`` / ``Affine``."""
    if not m.rounded:
        raise _refuse(name, m, "has learnable delays; call round_delays() first (NIR holds integer delays)")
    if shape != (m.in_features,):
        raise _refuse(name, m, f"takes {m.in_features} features, but its input has the feature shape {shape}")
    delays, w, bias = _np(m.delays), _np(_param(m, "weight")), _param(m, "bias")
    values = np.unique(delays)
    n_in, k = m.in_features, len(values)
    fanout = np.zeros((k * n_in, n_in), dtype=w.dtype)
    fanout[np.arange(k * n_in), np.tile(np.arange(n_in), k)] = 1.0
    wide = np.concatenate([w * (delays == d) for d in values], axis=1)  # [out, K * in]
    nodes = [(f"{name}_fanout", nir.Linear(weight=fanout)),
             (f"{name}_delay", nir.Delay(delay=np.repeat(values.astype(np.float64) * dt, n_in)))]
    last = nir.Linear(weight=wide) if bias is None else nir.Affine(weight=wide, bias=_np(bias))
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
        weight, bias = _np(_param(m, "weight")), _param(m, "bias")
        bias = _np(bias) if bias is not None else np.zeros(m.out_channels, dtype=weight.dtype)
        cls, spatial = (nir.Conv1d, shape[1]) if isinstance(m, nn.Conv1d) else (nir.Conv2d, tuple(shape[1:]))
        if len(shape) != (2 if isinstance(m, nn.Conv1d) else 3):
            raise _refuse(name, m, f"gets the feature shape {shape}, not (channels, *spatial)")
        unpack = (lambda v: v[0]) if isinstance(m, nn.Conv1d) else tuple
        padding = m.padding if isinstance(m.padding, str) else unpack(m.padding)
        node = cls(input_shape=spatial, weight=weight, stride=unpack(m.stride), padding=padding,
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
    """The output shape of the frame module ``m`` for one frame of ``shape`` (a zero frame of its parameters' dtype and
    device: a float64 or CUDA convolution refuses a float32 CPU frame)."""
    like = next(m.parameters(), None)
    zeros = torch.zeros((1, *shape)) if like is None else torch.zeros((1, *shape), dtype=like.dtype, device=like.device)
    with torch.no_grad():
        return tuple(m(zeros).shape[1:])


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
    _check_modules(model)
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
