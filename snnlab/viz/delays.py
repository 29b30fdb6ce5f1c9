"""Synaptic delays of :class:`snnlab.DelayedLinear` layers: histograms, matrices, kernels, evolution.

History format (:func:`delay_snapshot` writes it, :func:`delay_evolution` reads it): a tidy
DataFrame with one row per (snapshot, synapse) and columns

* ``step`` (int): training step of the snapshot
* ``epoch`` (int): epoch, ``-1`` when unknown
* ``layer`` (str): layer name
* ``synapse`` (str): ``"<out>-<in>"`` (target neuron ``out``, source ``in``)
* ``out``, ``in`` (int): target index ``j`` and source index ``i``
* ``position`` (float): delay position ``p_ij`` clamped to ``[0, max_delay - 1]``
* ``delay`` (int): rounded delay ``round(p_ij)``, ``-1`` where the position is NaN (training diverged)
* ``sigma`` (float): the layer's Gaussian kernel width at that time

Concatenate snapshots with ``pd.concat``.
"""
from __future__ import annotations

import operator
from typing import Any, Sequence

import holoviews as hv
import numpy as np
import pandas as pd

from snnlab.core.validation import as_flag

from . import theme
from ._util import ensure_bokeh, grid_image, has_data, no_data, to_numpy

__all__ = ["HISTORY_COLUMNS", "delay_histogram", "delay_matrix", "gaussian_kernels", "delay_snapshot",
           "delay_evolution"]

HISTORY_COLUMNS = ["step", "epoch", "layer", "synapse", "out", "in", "position", "delay", "sigma"]


def _is_layer(obj: Any) -> bool:
    return hasattr(obj, "positions") and hasattr(obj, "max_delay")


def _check_layer(obj: Any, who: str) -> None:
    """``TypeError`` naming ``who`` unless ``obj`` is a delay layer (a :class:`snnlab.DelayedLinear`)."""
    if not _is_layer(obj):
        raise TypeError(f"{who}: expected a snnlab.DelayedLinear layer (with positions and max_delay), got "
                        f"{type(obj).__name__}; pick the layer out of the model, e.g. model[0]")


def _check_int(value: Any, name: str, who: str, low: int | None = None) -> int:
    """``value`` as an int: ``TypeError`` naming ``who`` for a non-integer (a bool too), ``ValueError`` below
    ``low``."""
    try:
        if isinstance(value, (bool, np.bool_)):
            raise TypeError
        number = operator.index(value)  # ints, NumPy ints, one-element integer tensors; not 2.5 nor True
    except TypeError:
        raise TypeError(f"{who}: {name} must be an int, got {type(value).__name__} {value!r}") from None
    if low is not None and number < low:
        raise ValueError(f"{who}: {name} must be at least {low}, got {number}")
    return number


def _positions(layer: Any) -> np.ndarray:
    return np.clip(to_numpy(layer.positions).astype(float), 0.0, float(layer.max_delay - 1))


def delay_histogram(layer_or_delays: Any, rounded: bool = True, bins: int | None = None) -> hv.Histogram:
    """Histogram of the delays of a layer (or of any delay array).

    For a ``DelayedLinear``: ``rounded=True`` counts the integer delays ``layer.delays`` with one
    bin per value ``0..max_delay-1``; ``rounded=False`` the real-valued clamped positions (in ``bins`` bins,
    default 30). For an array/tensor: integer arrays get one bin per integer, floats ``bins`` (default 30) bins.
    The vdim ``synapses`` counts synapses.

    NaN (and infinite) delays are not counted: the positions of a layer whose training diverged are NaN (as
    :func:`delay_evolution` shows). The title then says how many were left out (``3 of 40 delays not finite,
    not drawn``).

    Example:
        >>> import snnlab as sl
        >>> from snnlab.viz import delay_histogram
        >>> layer = sl.DelayedLinear(10, 4, max_delay=8, seed=0)
        >>> h = delay_histogram(layer)
        >>> int(h.dimension_values("synapses").sum())
        40
    """
    as_flag(rounded, "rounded", "delay_histogram")
    if bins is not None:
        bins = _check_int(bins, "bins", "delay_histogram", low=1)  # (np.histogram reads a tensor([3]) as edges)
    ensure_bokeh()
    if _is_layer(layer_or_delays):
        top = layer_or_delays.max_delay - 1
        positions = _positions(layer_or_delays).ravel()
        if rounded:  # (a NaN position has no integer delay: layer.delays holds garbage there)
            values = np.where(np.isfinite(positions), to_numpy(layer_or_delays.delays).ravel(), np.nan)
            edges: Any = np.arange(-0.5, top + 1.5)
        else:
            values = positions
            edges = bins or np.linspace(0.0, float(top) if top > 0 else 1.0, 31)
    else:
        values = to_numpy(layer_or_delays).ravel()
        if values.dtype.kind not in "biuf":  # (a module, strings, objects: nothing to count)
            of = f" of {values.dtype}" if values.dtype.kind != "O" else ""
            raise TypeError(f"delay_histogram: expected a snnlab.DelayedLinear layer or an array / tensor of delays, "
                            f"got {type(layer_or_delays).__name__}{of}")
        if np.issubdtype(values.dtype, np.integer) and bins is None:
            lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
            edges = np.arange(lo - 0.5, hi + 1.5)
        else:
            edges = bins or 30
    values = values.astype(float)
    finite = np.isfinite(values)
    counts, e = np.histogram(values[finite], bins=edges)
    opts: dict[str, Any] = {}
    if not finite.all():
        opts["title"] = f"{values.size - int(finite.sum())} of {values.size} delays not finite, not drawn"
    return hv.Histogram((e, counts), kdims=[hv.Dimension("delay", label="delay [steps]")], vdims=["synapses"]).opts(
        color=theme.CATEGORICAL[4], width=theme.WIDTH // 2 + 100, height=theme.HEIGHT, tools=["hover"],
        backend="bokeh", **opts)


def delay_matrix(layer: Any, rounded: bool = True) -> hv.Image:
    """Heatmap of a layer's delays: x = input (source) index ``i``, y = output (target) index ``j``.

    ``rounded=True`` shows ``layer.delays`` (integers), ``False`` the clamped real positions; a synapse whose
    position is NaN (training diverged) is NaN (blank) either way. ``img[i, j]`` is the delay of synapse ``in i -> out j``; the ``hv.Image`` has kdims
    ``input, output`` and vdim ``delay`` (``img.dimension_values("delay", flat=False)`` is the
    ``[out, in]`` matrix).

    Example:
        >>> import snnlab as sl
        >>> from snnlab.viz import delay_matrix
        >>> layer = sl.DelayedLinear(6, 3, max_delay=5, seed=0)
        >>> img = delay_matrix(layer)
        >>> int(img[2, 1]) == int(layer.delays[1, 2])
        True
    """
    _check_layer(layer, "delay_matrix")
    as_flag(rounded, "rounded", "delay_matrix")
    ensure_bokeh()
    d = _positions(layer)
    if rounded:  # (a NaN position has no integer delay: layer.delays holds garbage there, -9.2e18)
        d = np.where(np.isfinite(d), to_numpy(layer.delays).astype(float), np.nan)
    out, inp = d.shape
    img = grid_image(d, -0.5, inp - 0.5, -0.5, out - 0.5, kdims=["input", "output"],
                     vdims=[hv.Dimension("delay", range=(0, layer.max_delay - 1))])
    return img.opts(cmap=theme.CMAP_DELAYS, colorbar=True, tools=["hover"], width=theme.WIDTH,
                    height=max(200, min(600, theme.WIDTH * out // max(inp, 1))), backend="bokeh")


def _default_synapses(shape: tuple[int, int], k: int) -> list[tuple[int, int]]:
    flat = np.linspace(0, shape[0] * shape[1] - 1, num=min(k, shape[0] * shape[1])).round().astype(int)
    return [(int(f // shape[1]), int(f % shape[1])) for f in flat]


def _synapse_pairs(synapses: Any, who: str) -> list[tuple[int, int]]:
    """``synapses`` as a list of ``(out, in)`` int pairs; ``TypeError`` naming ``who`` for anything else."""
    try:
        items = list(synapses)
    except TypeError:
        raise TypeError(f"{who}: synapses must be (out, in) pairs, got {type(synapses).__name__} "
                        f"{synapses!r}") from None
    pairs = []
    for pair in items:
        if isinstance(pair, (str, bytes)) or not hasattr(pair, "__len__") or len(pair) != 2:
            raise TypeError(f"{who}: synapses must be (out, in) pairs of ints, got the item {pair!r}")
        pairs.append((_check_int(pair[0], "an out index", who), _check_int(pair[1], "an in index", who)))
    return pairs


def _check_synapses(pairs: list[tuple[int, int]], shape: tuple[int, int], who: str, allow_empty: bool = False) -> None:
    """``ValueError`` naming ``who`` for no pair (unless ``allow_empty``) or a pair outside the ``(out, in)`` matrix."""
    if not pairs and not allow_empty:
        raise ValueError(f"{who}: synapses is empty; give (out, in) pairs, or None for a default choice")
    bad = [(j, i) for j, i in pairs if not (0 <= j < shape[0] and 0 <= i < shape[1])]
    if bad:
        raise ValueError(f"{who}: synapses {bad[:5]} are outside the layer's {shape[0]} outputs x {shape[1]} inputs "
                         "(pairs are (out, in), from 0)")


def gaussian_kernels(layer: Any, synapses: Sequence[tuple[int, int]] | None = None,
                     sigma: float | None = None, weighted: bool = False) -> hv.NdOverlay:
    """The Gaussian delay kernels ``G_ij[k]`` of chosen synapses at the layer's current ``sigma``.

    ``synapses``: ``(out j, in i)`` pairs (default: 4 spread over the matrix). ``sigma`` overrides
    the layer's value (e.g. to preview a later point of the schedule). ``weighted=True`` multiplies
    each kernel by its weight ``W_ij`` (what the layer actually applies). Returns an
    ``hv.NdOverlay`` of ``hv.Curve`` (kdim ``tap``, vdim ``kernel``) keyed by ``synapse``
    (``"<out>-<in>"``); the kernels (unweighted) sum to 1. A rounded layer (``layer.rounded``) applies
    integer delays: its kernels are one-hot at ``layer.delays`` unless ``sigma`` is given. ``sigma`` must be
    a finite number above 0 (``ValueError`` otherwise).

    Example:
        >>> import snnlab as sl
        >>> from snnlab.viz import gaussian_kernels
        >>> layer = sl.DelayedLinear(6, 3, max_delay=10, seed=0)
        >>> ov = gaussian_kernels(layer, synapses=[(0, 1), (2, 5)])
        >>> round(float(ov["0-1"].dimension_values("kernel").sum()), 6)
        1.0
    """
    import torch

    from snnlab.core.delays import gaussian_delay_kernel

    _check_layer(layer, "gaussian_kernels")
    as_flag(weighted, "weighted", "gaussian_kernels")
    if sigma is not None:
        try:
            if isinstance(sigma, (bool, np.bool_, str, bytes)):
                raise TypeError
            sigma = float(sigma)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"gaussian_kernels: sigma must be a number (or None: the layer's), got "
                            f"{type(sigma).__name__} {sigma!r}") from None
        if not (np.isfinite(sigma) and sigma > 0):
            raise ValueError(f"gaussian_kernels: sigma must be a finite number above 0 (a kernel width), got {sigma}")
    ensure_bokeh()
    pos = layer.positions.detach().cpu().float()
    syn = (_default_synapses(tuple(pos.shape), 4) if synapses is None
           else _synapse_pairs(synapses, "gaussian_kernels"))
    _check_synapses(syn, tuple(pos.shape), "gaussian_kernels")
    s = float(layer.sigma if sigma is None else sigma)
    idx_j = torch.tensor([j for j, _ in syn], dtype=torch.long)
    idx_i = torch.tensor([i for _, i in syn], dtype=torch.long)
    one_hot = sigma is None and bool(getattr(layer, "rounded", False))
    if one_hot:
        delays = layer.delays.cpu()[idx_j, idx_i]
        kern = torch.nn.functional.one_hot(delays, layer.max_delay).float().numpy()
        title = "integer delay kernels (rounded)"
    else:
        kern = gaussian_delay_kernel(pos[idx_j, idx_i], s, layer.max_delay).numpy()
        title = f"Gaussian delay kernels (sigma = {s:.3g})"
    if weighted:
        kern = kern * layer.weight.detach().cpu().float()[idx_j, idx_i].numpy()[:, None]
    taps = np.arange(layer.max_delay)
    curves = {f"{j}-{i}": hv.Curve((taps, kern[k]), kdims=[hv.Dimension("tap", label="delay tap [steps]")],
                                   vdims=["kernel"]).opts(interpolation="steps-mid", backend="bokeh")
              for k, (j, i) in enumerate(syn)}
    return hv.NdOverlay(curves, kdims=["synapse"]).opts(
        width=theme.WIDTH, height=theme.HEIGHT, title=title,
        legend_position="right", backend="bokeh")


def delay_snapshot(layer: Any, step: int, epoch: int | None = None, name: str = "delays",
                   synapses: Sequence[tuple[int, int]] | str | int = 1024, seed: int = 0) -> pd.DataFrame:
    """Rows of the delay history format (see the module docstring) for one layer at one step.

    ``synapses``: ``"all"``; a list of ``(out, in)`` pairs; or an int ``k >= 1`` -- all synapses when the
    layer has at most ``k``, else a fixed random subset of ``k`` drawn with ``seed`` (the same
    subset at every call for the same layer shape, so curves of one synapse line up over time).
    ``step``, ``epoch`` and ``seed`` are ints (``epoch`` may be ``None``: unknown), ``name`` a string.

    Example:
        >>> import pandas as pd, snnlab as sl
        >>> from snnlab.viz import delay_snapshot
        >>> layer = sl.DelayedLinear(4, 3, max_delay=10, seed=0)
        >>> hist = pd.concat([delay_snapshot(layer, step=s, epoch=s) for s in range(3)])
        >>> len(hist), list(hist.columns[:4])
        (36, ['step', 'epoch', 'layer', 'synapse'])
    """
    _check_layer(layer, "delay_snapshot")
    step = _check_int(step, "step", "delay_snapshot")
    epoch = None if epoch is None else _check_int(epoch, "epoch", "delay_snapshot")
    seed = _check_int(seed, "seed", "delay_snapshot", low=0)
    if not isinstance(name, str):
        raise TypeError(f"delay_snapshot: name must be a string (the layer's name), got {type(name).__name__} {name!r}")
    pos = _positions(layer)
    out, inp = pos.shape
    if isinstance(synapses, str):
        if synapses != "all":
            raise ValueError(f"delay_snapshot: synapses must be 'all', an int or (out, in) pairs, got {synapses!r}")
        flat = np.arange(out * inp)
    elif isinstance(synapses, (int, np.integer, np.bool_)):
        k = _check_int(synapses, "synapses (how many)", "delay_snapshot", low=1)
        flat = np.arange(out * inp)
        if out * inp > k:
            flat = np.sort(np.random.default_rng(seed).choice(out * inp, size=k, replace=False))
    else:
        pairs = _synapse_pairs(synapses, "delay_snapshot")
        _check_synapses(pairs, (out, inp), "delay_snapshot", allow_empty=True)
        flat = np.array([j * inp + i for j, i in pairs], dtype=int)
    j, i = flat // inp, flat % inp
    p = pos[j, i]
    return pd.DataFrame({
        "step": np.full(len(flat), int(step)), "epoch": np.full(len(flat), -1 if epoch is None else int(epoch)),
        "layer": name, "synapse": [f"{a}-{b}" for a, b in zip(j, i)], "out": j, "in": i,
        "position": p, "delay": np.where(np.isnan(p), -1.0, np.round(p)).astype(int), "sigma": float(layer.sigma),
    }, columns=HISTORY_COLUMNS)


#: Line dashes of the chosen synapses' curves in :func:`delay_evolution`, one per layer.
_SYNAPSE_DASHES = ("dashed", "dotted", "dotdash", "dashdot")


def delay_evolution(history: pd.DataFrame, x: str = "step", synapses: Sequence[str] | None = None,
                    quantiles: tuple[float, float] = (0.1, 0.9)) -> hv.Layout:
    """How delay positions and sigma moved over training, from a history DataFrame (module docstring).

    Left panel: per layer, the mean position over ``x`` (``"step"`` or ``"epoch"``) with a band between
    the ``quantiles`` of the positions, plus curves for chosen ``synapses`` (ids like ``"0-3"``; one colour
    per synapse after the layers' colours, one dash pattern per layer).
    Right panel: sigma per layer. Returns ``hv.Layout`` of two overlays.

    The history grows while a model trains, so an empty one draws: with no rows (or no finite position / sigma)
    a panel keeps its title and says ``no delay snapshots yet`` (``no finite delay positions`` / ``no finite sigma``
    where every value is NaN, e.g. a diverged run) in its middle (:func:`snnlab.viz._util.no_data`).

    Example:
        >>> import pandas as pd, snnlab as sl
        >>> from snnlab.viz import delay_snapshot, delay_evolution
        >>> layer = sl.DelayedLinear(4, 3, max_delay=10, seed=0)
        >>> hist = pd.concat([delay_snapshot(layer, step=s) for s in range(3)])
        >>> plot = delay_evolution(hist, synapses=["0-1"])
    """
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"delay_evolution: history must be a pandas DataFrame (pd.concat of delay_snapshot() rows), "
                        f"got {type(history).__name__}")
    if x not in ("step", "epoch"):
        raise ValueError(f"delay_evolution: x must be 'step' or 'epoch', got {x!r}")
    if isinstance(synapses, str):
        raise TypeError(f"delay_evolution: synapses must be a list of synapse ids like ['0-1'], got the string "
                        f"{synapses!r}")
    if (not isinstance(quantiles, (tuple, list)) or len(quantiles) != 2
            or any(isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating)) for q in quantiles)
            or not all(0.0 <= q <= 1.0 for q in quantiles) or quantiles[0] > quantiles[1]):
        raise ValueError(f"delay_evolution: quantiles must be two numbers lo <= hi in [0, 1], got {quantiles!r}")
    missing = [c for c in (x, "layer", "synapse", "position", "sigma") if c not in history.columns]
    if missing:
        raise ValueError(f"delay_evolution: history lacks columns {missing}; make it with delay_snapshot()")
    ensure_bokeh()
    lo, hi = quantiles
    xdim = hv.Dimension(x)
    pdim = hv.Dimension("position", label="delay position [steps]")
    pos_items: list[Any] = []
    sig_items: list[Any] = []
    groups = list(history.groupby("layer", sort=False))
    pal = theme.CATEGORICAL
    for k, (layer, g) in enumerate(groups):
        color = pal[k % len(pal)]
        dash = _SYNAPSE_DASHES[k % len(_SYNAPSE_DASHES)]
        stats = g.groupby(x)["position"].agg(mean="mean", lo=lambda s: s.quantile(lo), hi=lambda s: s.quantile(hi))
        stats = stats.reset_index().sort_values(x)
        pos_items.append(hv.Area((stats[x], stats["lo"], stats["hi"]), kdims=[xdim], vdims=[pdim, "position_hi"],
                                 label=f"{layer} q{lo:g}-q{hi:g}").opts(color=color, alpha=0.2, line_alpha=0,
                                                                       backend="bokeh"))
        pos_items.append(hv.Curve((stats[x], stats["mean"]), kdims=[xdim], vdims=[pdim], label=f"{layer} mean")
                         .opts(color=color, line_width=2, backend="bokeh"))
        for m, sid in enumerate(synapses or []):
            one = g[g["synapse"] == sid].sort_values(x)
            if len(one):  # one colour per synapse (after the layers' colours), one dash pattern per layer
                pos_items.append(hv.Curve((one[x], one["position"]), kdims=[xdim], vdims=[pdim],
                                          label=f"{layer} {sid}").opts(
                    color=pal[(len(groups) + m) % len(pal)], line_dash=dash, line_width=1.5, backend="bokeh"))
        sig = g.groupby(x)["sigma"].first().reset_index().sort_values(x)
        sig_items.append(hv.Curve((sig[x], sig["sigma"]), kdims=[xdim], vdims=["sigma"], label=str(layer))
                         .opts(color=color, line_width=2, backend="bokeh"))
    left_size = dict(width=theme.WIDTH, height=theme.HEIGHT, title="delay positions")
    right_size = dict(width=theme.WIDTH // 2, height=theme.HEIGHT, title="sigma")
    if not len(history):
        return hv.Layout([no_data("no delay snapshots yet", xdim, pdim, **left_size),
                          no_data("no delay snapshots yet", xdim, "sigma", **right_size)])
    left = (hv.Overlay(pos_items).opts(legend_position="right", backend="bokeh", **left_size)
            if has_data(history[x], history["position"]) else no_data("no finite delay positions", xdim, pdim,
                                                                      **left_size))
    right = (hv.Overlay(sig_items).opts(backend="bokeh", **right_size) if has_data(history[x], history["sigma"])
             else no_data("no finite sigma", xdim, "sigma", **right_size))
    return hv.Layout([left, right])
