"""The import side of :mod:`snnlab.interop.nir`: :func:`from_nir` (a NIR graph as a :class:`~snnlab.Sequential`).

The mapping, what is accepted and what is refused, is documented in :mod:`snnlab.interop.nir`, which re-exports
:func:`from_nir`; this module holds the code (and the helpers both sides share). ``nir`` is imported inside the
functions only.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from snnlab.core.delays import DelayedLinear
from snnlab.core.network import Sequential
from snnlab.core.neurons import LI, LIF
from snnlab.core.recurrent import RecurrentLIF
from snnlab.core.time_distributed import TimeDistributed
from snnlab.extras import require

if TYPE_CHECKING:  # pragma: no cover
    import nir

__all__ = ["from_nir"]

_GAIN_RTOL = 1e-9  # an input gain r*dt/tau this close to 1 is 1 (the float64 round trip of tau and r)
_SCALE_RTOL = 1e-6  # a subtract-reset Scale this close to -beta * threshold is it (values written in float32)


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


def _fail(key: str, node: Any, why: str) -> ValueError:
    return ValueError(f"from_nir: node {key!r} ({type(node).__name__}) {why}")


def _tensor(a: Any) -> torch.Tensor:
    """``a`` as a float64 tensor (:func:`from_nir` casts the finished network to its ``dtype``)."""
    return torch.from_numpy(np.array(a, dtype=np.float64))


@dataclass(frozen=True)
class _Ctx:
    """How :func:`from_nir` reads the graph: the step ``dt``, whether the exact values :func:`~snnlab.interop.nir.
    to_nir` noted apply (an snnlab graph read at the ``dt`` it was written at) and the ``learnable`` option."""

    dt: float
    exact: bool = False
    learnable: bool | None = None
    written: float | None = None  # (the graph's metadata["dt"], when it is one number)


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


def _neuron_count(node: Any, n: int | None, prefix: str = "") -> int | None:
    """``n`` (the per-neuron count the values show), else the ``n_neurons`` :func:`to_nir` noted when it matches the
    node's last dimension (a per-neuron layer whose values are all equal)."""
    noted = _metadata(node).get(f"snnlab_{prefix}n_neurons")
    values = getattr(node, "v_threshold", None)
    shape = np.shape(getattr(node, "r", None) if values is None else values)
    if n is None and isinstance(noted, numbers.Integral) and shape and int(shape[-1]) == int(noted):
        return int(noted)
    return n


def _learn(node: Any, flag: str, ctx: _Ctx) -> bool:
    """Whether the imported parameter ``flag`` (``learn_tau``...) is learnable: ``ctx.learnable`` when given, else
    what :func:`to_nir` noted (``snnlab_<flag>``; not learnable in a graph without it)."""
    return bool(_metadata(node).get(f"snnlab_{flag}", False)) if ctx.learnable is None else ctx.learnable


def _tau_field(node: Any, prefix: str = "") -> str:
    """The field of ``node`` holding the time constant of its neurons (``prefix`` ``"syn_"``: of a ``CubaLIF``'s
    synaptic current): ``tau``, ``tau_mem`` / ``tau_syn`` of a ``CubaLIF`` (``IF`` / ``I`` have none)."""
    if isinstance(node, _nir().CubaLIF):
        return "tau_syn" if prefix == "syn_" else "tau_mem"
    return "tau"


def _stored(node: Any, prefix: str, beta: np.ndarray, ctx: _Ctx) -> tuple[np.ndarray, np.ndarray | None]:
    """``(beta, tau_mem in steps or None)``: the layer's own values that :func:`to_nir` noted (``snnlab_<prefix>
    tau_mem`` of a learned tau, ``snnlab_<prefix>beta`` of a fixed one), which NIR's ``tau`` in seconds may give back
    only to a few ulps, where they apply: ``ctx.exact`` and the node still holds the ``tau`` noted with them
    (``snnlab_<prefix>tau_s``, bit for bit: any edit of the node, however small, makes its own values win); else
    ``beta``."""
    meta = _metadata(node)
    tau, fixed = meta.get(f"snnlab_{prefix}tau_mem"), meta.get(f"snnlab_{prefix}beta")
    written, noted = getattr(node, _tau_field(node, prefix), None), meta.get(f"snnlab_{prefix}tau_s")
    if not ctx.exact or (tau is None and fixed is None) or written is None or noted is None:
        return beta, None
    try:
        written = np.asarray(written, dtype=np.float64)
        if not np.array_equal(np.broadcast_to(np.asarray(noted, dtype=np.float64), written.shape), written):
            return beta, None  # (the node was edited after to_nir wrote it)
        if tau is not None:
            tau = np.broadcast_to(np.asarray(tau, dtype=np.float64), beta.shape)
            exact = 1.0 - 1.0 / np.maximum(tau, 1.0)  # (LIF.beta() of a learned tau, clamped at 1 step)
        else:
            exact = np.broadcast_to(np.asarray(fixed, dtype=np.float64), beta.shape)
    except (TypeError, ValueError):  # (noted for another shape, or not numbers: the metadata was edited)
        return beta, None
    if not np.all(np.abs(exact - beta) <= 1e-6):  # (the noted values disagree with the tau noted with them)
        return beta, None
    return exact, tau


def _rest(key: str, node: Any) -> np.ndarray:
    """The potential ``c`` a LIF / IF / CubaLIF node rests and resets at (``v_leak == v_reset``; 0 for ``IF``):
    snnlab's membrane is ``v - c``, which starts at 0 (at rest) and resets to 0."""
    reset = np.asarray(0.0 if node.v_reset is None else node.v_reset, dtype=np.float64)
    if isinstance(node, _nir().IF):
        if np.any(reset != 0):
            raise _fail(key, node, f"has v_reset != 0 (v_reset {_some(reset)}); an IF has no resting potential and "
                                   "snnlab's membrane starts at 0, so it must reset to 0 too")
        return reset
    leak = np.asarray(node.v_leak, dtype=np.float64)
    differ = leak != reset
    if np.any(differ):
        raise _fail(key, node, f"has v_leak != v_reset (v_leak {_some(leak[differ])}, v_reset "
                               f"{_some(np.broadcast_to(reset, leak.shape)[differ])}); snnlab's membrane starts at "
                               "rest and resets to the resting potential (v = v_leak = v_reset, snnlab's 0): a reset "
                               "away from rest has no snnlab equivalent")
    return reset


def _some(a: np.ndarray) -> str:
    """The first value of ``a`` for a message (``e.g. 0.5``, with ``...`` when there are other values)."""
    a = np.asarray(a).reshape(-1)
    return f"{a[0]:g}" + (", ..." if np.any(a != a[0]) else "")


def _tensor_like(value: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return _tensor(np.broadcast_to(value, like.shape))


def _fill(layer: LIF | LI, params: dict[str, np.ndarray]) -> LIF | LI:
    """``layer`` (built with its ``learn_tau`` / ``learn_threshold``) holding ``params``: ``beta`` (``tau`` too when
    known exactly), ``thr`` for a LIF."""
    if layer.learn_tau:
        tau = params.get("tau")
        tau = 1.0 / (1.0 - params["beta"]) if tau is None else tau
        layer.tau_mem = nn.Parameter(_tensor_like(tau, layer.tau_mem))
    else:
        layer.beta_const = _tensor_like(params["beta"], layer.beta_const)
    if "thr" in params:
        thr = _tensor_like(params["thr"], layer.threshold)
        layer.threshold = nn.Parameter(thr) if layer.learn_threshold else thr
    return layer


def _euler(key: str, node: Any, field: str, scale: Any, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - dt / tau, scale * dt / tau)`` of ``tau * dv/dt = -v + scale * input`` (``tau = node.<field>``) at step
    ``dt``: the decay and the input gain of one forward-Euler step; ``tau < dt`` is refused."""
    tau = np.asarray(getattr(node, field), dtype=np.float64)
    if np.any(tau < dt):
        raise _fail(key, node, f"has {field} < dt = {dt:g} s (min {field} {tau.min():g}); forward Euler needs "
                               f"{field} >= dt (snnlab's beta = 1 - dt / {field} lies in [0, 1])")
    return 1.0 - dt / tau, np.asarray(scale, dtype=np.float64) * dt / tau


def _decay_and_gain(key: str, node: Any, dt: float, leak_free: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(beta, input gain)`` of a neuron node stepped with forward Euler at ``dt``: ``(1, r * dt)`` for a node
    without leak (``IF`` / ``I``), else ``(1 - dt / tau, r * dt / tau)`` (``tau >= dt``)."""
    r = np.asarray(node.r, dtype=np.float64)
    if leak_free:
        return np.ones_like(r), r * dt
    return _euler(key, node, "tau", r, dt)


def _unit(gain: np.ndarray) -> np.ndarray:
    """``gain`` with the values within ``_GAIN_RTOL`` of 1 set to 1 (the float64 round trip of ``tau`` and ``r``)."""
    return np.where(np.abs(gain - 1.0) <= _GAIN_RTOL, 1.0, gain)


def _threshold(key: str, node: Any, gain: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """``(v_threshold - rest) / gain``: the threshold of snnlab's membrane ``(v - rest) / gain`` (a gain within
    ``_GAIN_RTOL`` of 1 is 1, leaving the threshold as written); refused unless positive."""
    if np.any(gain <= 0) or not np.all(np.isfinite(gain)):
        what = "w_in * dt / tau_syn * r * dt / tau_mem" if isinstance(node, _nir().CubaLIF) else "r * dt / tau"
        raise _fail(key, node, f"has an input gain {what} that is not positive and finite (gain {_some(gain)}); "
                               "snnlab's LIF fires on a positive membrane")
    thr = np.asarray(node.v_threshold, dtype=np.float64)
    thr = thr if not np.any(rest) else thr - rest
    gain = _unit(gain)
    out = np.where(gain == 1.0, thr, thr / gain)
    if np.any(out <= 0):
        raise _fail(key, node, f"has a threshold <= 0 (v_threshold - v_reset = {_some(thr[thr <= 0])}); snnlab "
                               "thresholds are positive")
    if not np.all(np.isfinite(out)):
        raise _fail(key, node, f"has a threshold that is not finite (v_threshold {_some(thr[~np.isfinite(out)])}, "
                               "v_reset and the gain must be finite numbers too)")
    return out


def _lif_params(key: str, node: Any, ctx: _Ctx) -> tuple[dict[str, np.ndarray], int | None]:
    """The per-neuron ``beta`` / ``thr`` (``tau`` when noted exactly) of an NIR ``LIF`` / ``IF`` and their count."""
    rest = _rest(key, node)
    beta, gain = _decay_and_gain(key, node, ctx.dt, leak_free=isinstance(node, _nir().IF))
    beta, tau = _stored(node, "", beta, ctx)
    values = {"beta": beta, "thr": _threshold(key, node, gain, rest)} | ({} if tau is None else {"tau": tau})
    params, n = _per_neuron(key, node, values)
    return params, _neuron_count(node, n)


def _lif_flags(node: Any, params: dict[str, np.ndarray], ctx: _Ctx, prefix: str = "") -> dict[str, bool]:
    """``learn_tau`` (only where every neuron leaks: a tau of inf cannot be learned) and ``learn_threshold``."""
    flags = {"learn_tau": _learn(node, f"{prefix}learn_tau", ctx) and bool(np.all(params["beta"] < 1))}
    return flags | ({"learn_threshold": _learn(node, "learn_threshold", ctx)} if "thr" in params else {})


def _lif_layer(key: str, node: Any, ctx: _Ctx) -> LIF:
    params, n = _lif_params(key, node, ctx)
    return _fill(LIF(beta=0.5, reset="zero", n_neurons=n, **_lif_flags(node, params, ctx)), params)


def _li_layer(key: str, node: Any, ctx: _Ctx) -> tuple[LI, np.ndarray]:
    """An NIR ``LI`` / ``I`` as snnlab's ``LI`` and its input gain ``r * dt / tau`` (``r * dt`` for ``I``), which
    :func:`from_nir` folds into the dense layer before it (snnlab's LI adds its input unscaled)."""
    if not isinstance(node, _nir().I) and np.any(np.asarray(node.v_leak) != 0):
        raise _fail(key, node, f"has v_leak != 0 (v_leak {_some(np.asarray(node.v_leak))}); its output would rest "
                               "at v_leak, and snnlab's LI rests at 0 (its output has no offset)")
    beta, gain = _decay_and_gain(key, node, ctx.dt, leak_free=isinstance(node, _nir().I))
    if not np.all(np.isfinite(gain)):
        raise _fail(key, node, f"has an input gain r * dt / tau that is not finite (gain {_some(gain)})")
    beta, tau = _stored(node, "", beta, ctx)
    values = {"beta": beta, "gain": _unit(gain)} | ({} if tau is None else {"tau": tau})
    params, n = _per_neuron(key, node, values)
    layer = LI(beta=0.5, n_neurons=_neuron_count(node, n), **_lif_flags(node, params, ctx))
    return _fill(layer, params), params["gain"]


def _fold_gain(key: str, node: Any, prev: nn.Module | None, gain: np.ndarray) -> None:
    """Scales the output of ``prev`` (the layer before an LI) by the LI's input ``gain``: ``LI(g * x) = g * LI(x)``
    is the node's output, exactly up to rounding."""
    if np.all(gain == 1.0):
        return
    dense = prev.module if isinstance(prev, TimeDistributed) and gain.ndim == 0 else prev
    if not isinstance(dense, nn.Linear | DelayedLinear | nn.Conv1d | nn.Conv2d) or (
            gain.ndim and (isinstance(dense, nn.Conv1d | nn.Conv2d) or gain.shape[0] != dense.out_features)):
        raise _fail(key, node, f"has an input gain r * dt / tau = {_some(gain)} != 1 (r != tau / dt) and no "
                               "Linear / Affine (or convolution, for one gain per layer) right before it, into which "
                               "snnlab folds that gain: its LI adds the input unscaled")
    g = _tensor(gain)
    with torch.no_grad():
        dense.weight.mul_(g.reshape(-1, *[1] * (dense.weight.dim() - 1)) if g.dim() else g)
        if dense.bias is not None:
            dense.bias.mul_(g)


def _cuba_layers(key: str, node: Any, ctx: _Ctx) -> list[nn.Module]:
    """An NIR ``CubaLIF`` as ``LI(synaptic current) -> LIF``: the current stepped first, the membrane integrating the
    new current (see :mod:`snnlab.interop.nir`); both input gains go into the LIF's threshold."""
    rest = _rest(key, node)
    beta_syn, gain_syn = _euler(key, node, "tau_syn", node.w_in, ctx.dt)
    beta_mem, gain_mem = _euler(key, node, "tau_mem", node.r, ctx.dt)
    thr = _threshold(key, node, gain_syn * gain_mem, rest)
    beta_syn, tau_syn = _stored(node, "syn_", beta_syn, ctx)
    beta_mem, tau_mem = _stored(node, "", beta_mem, ctx)
    syn, n_syn = _per_neuron(key, node, {"beta": beta_syn} | ({} if tau_syn is None else {"tau": tau_syn}))
    mem, n_mem = _per_neuron(key, node, {"beta": beta_mem, "thr": thr} | ({} if tau_mem is None else {"tau": tau_mem}))
    li = LI(beta=0.5, n_neurons=_neuron_count(node, n_syn, "syn_"), **_lif_flags(node, syn, ctx, "syn_"))
    lif = LIF(beta=0.5, reset="zero", n_neurons=_neuron_count(node, n_mem), **_lif_flags(node, mem, ctx))
    return [_fill(li, syn), _fill(lif, mem)]


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


def _recurrent_layer(key: str, lif: Any, w_rec: Any, ctx: _Ctx) -> RecurrentLIF:
    _refuse_cuba_loop(key, lif)
    if not isinstance(lif, _nir().LIF | _nir().IF):
        raise _fail(key, lif, "is in a recurrent loop; snnlab imports a loop LIF <-> Linear only")
    if hasattr(w_rec, "bias") and np.any(np.asarray(w_rec.bias) != 0):
        raise _fail(key, w_rec, "is a recurrent Affine with a bias; RecurrentLIF's recurrent weight has none")
    w = np.asarray(w_rec.weight)
    n = w.shape[0]
    if w.shape != (n, n) or np.asarray(lif.v_threshold).shape != (n,):
        raise _fail(key, w_rec, f"has the shape {w.shape}; a recurrent weight is [n, n] for n LIF neurons")
    params, _ = _lif_params(key, lif, ctx)
    layer = RecurrentLIF(n, beta=0.5, reset="zero", recurrent_init="zeros", **_lif_flags(lif, params, ctx))
    _fill(layer, params)
    layer.recurrent.weight = nn.Parameter(_tensor(w))
    return layer


def _subtract_layer(key: str, nodes: dict[str, Any], membrane: str, threshold: str, loop: list[str],
                    ctx: _Ctx) -> LIF:
    """The subtract-reset pattern ``membrane (LI / I) -> threshold (Threshold)`` with the loop nodes ``loop`` (each
    ``threshold -> node -> membrane``: one ``Scale``, at most one ``Linear`` / ``Affine`` without bias) as a
    :class:`~snnlab.LIF` / :class:`~snnlab.RecurrentLIF` with ``reset="subtract"`` (see :mod:`snnlab.interop.nir`;
    ``key``: the prefix of the node names in messages)."""
    nir = _nir()
    mem, thr_node = nodes[membrane], nodes[threshold]
    scales = [k for k in loop if isinstance(nodes[k], nir.Scale)]
    dense = [k for k in loop if isinstance(nodes[k], nir.Linear | nir.Affine)]
    if len(scales) != 1 or len(dense) > 1 or len(loop) != len(scales) + len(dense):
        kinds = sorted(type(nodes[k]).__name__ for k in loop)
        raise _fail(key + threshold, thr_node, f"feeds back to {membrane!r} through {kinds}; snnlab imports one "
                                               "Scale (the subtract reset) and at most one Linear / Affine (the "
                                               "recurrent weight)")
    mkey = key + membrane
    if not isinstance(mem, nir.LI | nir.I):
        raise _fail(mkey, mem, "drives a Threshold with a reset loop; snnlab imports the subtract reset with an LI / I "
                               "membrane only")
    if isinstance(mem, nir.LI) and np.any(np.asarray(mem.v_leak) != 0):
        raise _fail(mkey, mem, f"has v_leak != 0 (v_leak {_some(np.asarray(mem.v_leak))}); the membrane of snnlab's "
                               "subtract-reset LIF rests at 0")
    beta, gain = _decay_and_gain(mkey, mem, ctx.dt, leak_free=isinstance(mem, nir.I))
    if np.any(gain <= 0) or not np.all(np.isfinite(gain)):
        raise _fail(mkey, mem, f"has an input gain r * dt / tau that is not positive and finite (gain {_some(gain)}); "
                               "snnlab's LIF fires on a positive membrane")
    try:  # (one neuron shape: a per-layer value written as a scalar broadcasts, as for the other neuron nodes)
        thr = np.asarray(thr_node.threshold, dtype=np.float64)
        scale = np.asarray(nodes[scales[0]].scale, dtype=np.float64)
        shape = np.broadcast_shapes(beta.shape, gain.shape, thr.shape, scale.shape)
        beta, gain, thr, scale = (np.broadcast_to(a, shape) for a in (beta, gain, thr, scale))
    except ValueError:
        raise _fail(key + threshold, thr_node, f"(shape {np.shape(thr_node.threshold)}) and its reset Scale (shape "
                                               f"{np.shape(nodes[scales[0]].scale)}) do not match the shape "
                                               f"{beta.shape} of {membrane!r}") from None
    gain = _unit(gain)
    thr = np.where(gain == 1.0, thr, thr / gain)  # (the membrane v / gain, as for a LIF node)
    if not np.all(thr > 0) or not np.all(np.isfinite(thr)):
        bad = ~((thr > 0) & np.isfinite(thr))
        raise _fail(key + threshold, thr_node, f"has a threshold <= 0 or not finite ({_some(thr[bad])}); "
                                               "snnlab thresholds are positive")
    want = -beta * thr  # (the loop enters through the gain too: scale * gain = -beta * threshold in NIR's units)
    ok = np.abs(scale - want) <= _SCALE_RTOL * np.abs(want)  # (False for a NaN / inf Scale)
    if not np.all(ok):
        again = "" if ctx.written in (None, ctx.dt) else (
            f" (read at dt = {ctx.dt:g} s, written at metadata['dt'] = {ctx.written:g} s: a reset loop holds the "
            "reset of one step length, so read the graph at the dt it was written at)")
        raise _fail(key + scales[0], nodes[scales[0]],
                    f"feeds back {_some(scale[~ok])} per spike, but snnlab's subtract reset (v[t] = h[t] - threshold "
                    f"* s[t], decayed by beta before the next input) is -beta * threshold / gain = {_some(want[~ok])}; "
                    f"another reset loop has no snnlab equivalent{again}")
    beta, tau = _stored(mem, "", beta, ctx)
    values = {"beta": beta, "thr": thr} | ({} if tau is None else {"tau": tau})
    params, n = _per_neuron(mkey, mem, values)
    flags = _lif_flags(mem, params, ctx)
    if not dense:
        return _fill(LIF(beta=0.5, reset="subtract", n_neurons=_neuron_count(mem, n), **flags), params)
    w_node = nodes[dense[0]]
    if hasattr(w_node, "bias") and np.any(np.asarray(w_node.bias) != 0):
        raise _fail(key + dense[0], w_node, "is a recurrent Affine with a bias; RecurrentLIF's recurrent weight has "
                                            "none")
    w = np.asarray(w_node.weight)
    size = int(np.prod(beta.shape))
    if beta.shape != (size,) or w.shape != (size, size):
        raise _fail(key + dense[0], w_node, f"has the shape {w.shape}; a recurrent weight is [n, n] for the n "
                                            f"neurons of {membrane!r} (shape {beta.shape})")
    layer = _fill(RecurrentLIF(size, beta=0.5, reset="subtract", recurrent_init="zeros", **flags), params)
    layer.recurrent.weight = nn.Parameter(_tensor(w))
    return layer


def _subtract_subgraph(key: str, graph: Any, inner: dict[str, Any]) -> tuple[str, str, list[str]]:
    """``(membrane, threshold, loop nodes)`` of a sub-graph ``Input -> LI / I -> Threshold -> Output`` whose every
    other node ``w`` is in a loop ``Threshold -> w -> LI / I``, else a ValueError."""
    nir = _nir()
    ends = {k: v for k, v in graph.nodes.items() if k not in inner}
    inputs = [k for k, v in ends.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in ends.items() if isinstance(v, nir.Output)]
    thresholds = [k for k, v in inner.items() if isinstance(v, nir.Threshold)]
    listed = _edges(graph, f"the sub-graph {key!r}")
    edges = set(listed)
    if len(inputs) == 1 and len(outputs) == 1 and len(thresholds) == 1 and len(edges) == len(listed):
        t = thresholds[0]
        members = [b for a, b in edges if a == inputs[0]]
        if len(members) == 1 and members[0] in inner:
            m = members[0]
            loop = [k for k in inner if k not in (m, t)]
            want = {(inputs[0], m), (m, t), (t, outputs[0])} | {(t, w) for w in loop} | {(w, m) for w in loop}
            if edges == want and loop:
                return m, t, loop
    raise _fail(key, graph, "holds a Threshold, but is not the subtract-reset loop Input -> LI -> Threshold -> "
                            "Output with Threshold -> Scale -> LI (and Threshold -> Linear -> LI) that snnlab imports")


def _subgraph_layer(key: str, graph: Any, ctx: _Ctx) -> LIF:
    nir = _nir()
    inner = {k: v for k, v in graph.nodes.items() if not isinstance(v, nir.Input | nir.Output)}
    if any(isinstance(v, nir.Threshold) for v in inner.values()):
        return _subtract_layer(f"{key}.", inner, *_subtract_subgraph(key, graph, inner), ctx)
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
    return _recurrent_layer(key, inner[lif], inner[w], ctx)


def _chain(graph: Any) -> list[str | tuple[str, ...]]:
    """The node keys from the Input to the Output; a flat ``LIF <-> Linear`` loop is ``(lif, linear)``, a flat
    subtract-reset pattern ``LI -> Threshold`` with its loops ``Threshold -> w -> LI`` is ``(li, threshold, *ws)``."""
    nir = _nir()
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    pred: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in _edges(graph, "the graph"):
        succ[a].append(b)
        pred[b].append(a)
    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"from_nir: the graph must have one Input node, got {inputs}")
    order: list[str | tuple[str, ...]] = []
    key, seen = inputs[0], set()
    while True:
        seen.add(key)
        nxt = succ[key]
        loops = _loops(succ, pred, key)
        reset = _reset_loop(graph, succ, pred, key)
        last = key  # (the node whose successors nxt are: the Threshold of a subtract-reset pattern)
        if reset:
            order.append((key, *reset))
            seen.update(reset)
            last = reset[0]
            nxt = [k for k in succ[last] if k not in reset[1:]]
        elif loops:
            order.append((key, loops[0]))
            seen.add(loops[0])
            nxt = [k for k in nxt if k != loops[0]]
        else:
            order.append(key)
        if isinstance(graph.nodes[key], nir.Output) and not nxt:
            return order
        if len(nxt) != 1:
            rest = " besides its reset loop" if reset else ""
            raise _fail(last, graph.nodes[last], f"has {len(nxt)} successors {nxt}{rest}; from_nir imports chains only")
        key = nxt[0]
        fed_back = _loops(succ, pred, key) + list((_reset_loop(graph, succ, pred, key) or ("",))[1:])
        if key in seen or len([p for p in pred[key] if p not in fed_back]) != 1:
            raise _fail(key, graph.nodes[key], f"has the predecessors {pred[key]}; from_nir imports chains only")


def _edges(graph: Any, where: str) -> list[tuple[str, str]]:
    """``graph.edges`` as pairs of its node keys, else a ValueError naming the edge (``where``: the graph, in
    messages)."""
    edges = []
    for e in graph.edges:
        pair = () if isinstance(e, str | bytes) or not hasattr(e, "__iter__") else tuple(e)
        if len(pair) != 2 or any(not isinstance(k, Hashable) or k not in graph.nodes for k in pair):
            raise ValueError(f"from_nir: {where} has the edge {e!r}, which does not join two of its nodes "
                             f"{list(graph.nodes)}")
        edges.append(pair)
    return edges


def _loops(succ: dict[str, list[str]], pred: dict[str, list[str]], key: str) -> list[str]:
    """The nodes in a two-node loop with ``key`` (``key -> w -> key``, ``w`` connected to nothing else)."""
    return [w for w in succ[key] if succ[w] == [key] and pred[w] == [key]]


def _reset_loop(graph: Any, succ: dict[str, list[str]], pred: dict[str, list[str]],
                key: str) -> tuple[str, ...] | None:
    """``(threshold, *ws)`` where ``key`` is an LI / I whose one successor is a Threshold feeding back to it through
    the nodes ``ws`` (``threshold -> w -> key``, ``w`` connected to nothing else): the subtract-reset pattern."""
    nir = _nir()
    if not isinstance(graph.nodes[key], nir.LI | nir.I) or len(succ[key]) != 1:
        return None
    t = succ[key][0]
    if not isinstance(graph.nodes[t], nir.Threshold):
        return None
    ws = [w for w in succ[t] if succ[w] == [key] and pred[w] == [t]]
    return (t, *ws) if ws else None


def _context(graph: Any, dt: float | None, learnable: Any) -> _Ctx:
    """The step (``dt``, else ``graph.metadata["dt"]``), whether it is the ``dt`` the graph was written at (the
    exact values :func:`~snnlab.interop.nir.to_nir` noted apply) and ``learnable``, checked."""
    if learnable is not None and not isinstance(learnable, bool):
        raise TypeError(f"from_nir: learnable must be None (as the graph notes), True or False, got {learnable!r}")
    meta = _metadata(graph)
    if dt is None:
        if "dt" not in meta:
            raise ValueError("from_nir: the graph has no metadata['dt']; give dt= (the step length in seconds)")
        step = _check_dt(float(np.asarray(meta["dt"])), "from_nir")
        return _Ctx(step, True, learnable, step)
    step = _check_dt(dt, "from_nir")
    try:  # (a given dt wins: metadata['dt'] that is not one number only means the noted values do not apply)
        written = None if meta.get("dt") is None else float(np.asarray(meta["dt"]))
    except (TypeError, ValueError):
        written = None
    return _Ctx(step, written == step, learnable, written)


def from_nir(graph: "nir.NIRGraph", *, dt: float | None = None, dtype: torch.dtype | None = None,
             learnable: bool | None = None) -> Sequential:
    """The :class:`~snnlab.Sequential` of a chain-shaped NIR graph (see :mod:`snnlab.interop.nir`).

    ``dt``: the step length in seconds at which to discretise the graph (forward Euler); default
    ``graph.metadata["dt"]``, which :func:`~snnlab.interop.nir.to_nir` writes. ``dtype``: of the parameters
    (default: torch's default dtype, float32 unless changed), each rounded once from the graph's values.
    ``learnable``: whether the neurons' ``tau_mem`` and thresholds are learnable parameters: ``None`` (default) as
    the graph notes (a graph ``to_nir`` wrote gives back its layers' ``learn_tau`` / ``learn_threshold``; other
    graphs import fixed values), ``True`` all of them (to fine-tune a foreign graph; a neuron without leak keeps
    its infinite tau fixed), ``False`` none.

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
        >>> from_nir(g, dt=0.001, learnable=True)[1]
        LIF(tau_mem=10, learn_tau=True, threshold=1, learn_threshold=True, reset='zero', surrogate=atan(2))
    """
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"from_nir: expected a nir.NIRGraph, got {type(graph).__name__}")
    ctx = _context(graph, dt, learnable)
    items = _chain(graph)
    layers: list[nn.Module] = []
    i = 0
    while i < len(items):
        i += _take(graph, items, i, ctx, layers)
    return Sequential(*layers).to(dtype or torch.get_default_dtype())


def _take(graph: Any, items: list[str | tuple[str, ...]], i: int, ctx: _Ctx, layers: list[nn.Module]) -> int:
    """Appends the layers of ``items[i]`` (and of the nodes folded with it) to ``layers``; the items taken."""
    nir, item = _nir(), items[i]
    if isinstance(item, tuple) and len(item) == 2:  # a flat LIF <-> Linear loop
        layers.append(_recurrent_layer(item[0], graph.nodes[item[0]], graph.nodes[item[1]], ctx))
        return 1
    if isinstance(item, tuple):  # a flat subtract-reset pattern (membrane, threshold, *loop)
        layers.append(_subtract_layer("", graph.nodes, item[0], item[1], list(item[2:]), ctx))
        return 1
    node = graph.nodes[item]
    ahead = [graph.nodes[k] if isinstance(k, str) else None for k in items[i + 1:i + 3]]
    if isinstance(node, nir.Linear) and ahead[:1] and isinstance(ahead[0], nir.Delay):
        if len(ahead) < 2 or not isinstance(ahead[1], nir.Linear | nir.Affine):
            raise _fail(items[i + 1], ahead[0], "is not followed by a Linear / Affine node")
        layers.append(_delay_layer(items[i:i + 3], node, ahead[0], ahead[1], ctx.dt))
        return 3
    if isinstance(node, nir.Delay):
        if not ahead or not isinstance(ahead[0], nir.Linear | nir.Affine):
            raise _fail(item, node, "is not followed by a Linear / Affine node (snnlab delays synapses)")
        layers.append(_delay_layer([item, item, items[i + 1]], None, node, ahead[0], ctx.dt))
        return 2
    if isinstance(node, nir.CubaLIF):
        layers += _cuba_layers(item, node, ctx)
    elif isinstance(node, nir.LI | nir.I):
        li, gain = _li_layer(item, node, ctx)
        _fold_gain(item, node, layers[-1] if layers else None, gain)
        layers.append(li)
    elif (layer := _layer(item, node, ctx)) is not None:
        layers.append(layer)
    return 1


def _layer(key: str, node: Any, ctx: _Ctx) -> nn.Module | None:
    """The snnlab layer of one NIR node (None for Input / Output)."""
    nir = _nir()
    if isinstance(node, nir.Input | nir.Output):
        return None
    if isinstance(node, nir.Affine | nir.Linear):
        if np.asarray(node.weight).ndim != 2:
            raise _fail(key, node, f"has a weight of shape {np.asarray(node.weight).shape}; snnlab imports 2-D ones")
        return _dense_layer(node)
    if isinstance(node, nir.LIF | nir.IF):
        return _lif_layer(key, node, ctx)
    if isinstance(node, nir.Conv1d | nir.Conv2d):
        return _conv_layer(key, node)
    if isinstance(node, nir.Flatten):
        return _flatten_layer(node)
    if isinstance(node, nir.AvgPool2d):
        return _pool_layer(key, node)
    if isinstance(node, nir.NIRGraph):
        return _subgraph_layer(key, node, ctx)
    raise _fail(key, node, "has no snnlab layer (imported: Affine, Linear, LIF, IF, LI, I, CubaLIF, Conv1d, Conv2d, "
                           "AvgPool2d, Flatten, Delay before a dense node, the recurrent LIF sub-graph, and "
                           "Threshold / Scale in the subtract-reset pattern LI -> Threshold with Threshold -> Scale -> "
                           "LI)")
