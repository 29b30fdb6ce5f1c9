"""Build the network and the data loaders an :class:`~snnlab.training.ExperimentConfig` describes."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Subset

from snnlab.core import surrogates as sg
from snnlab.core.adaptive import ALIF
from snnlab.core.delays import DelayedLinear
from snnlab.core.dropout import TimeDropout
from snnlab.core.network import Sequential, neuron_layers
from snnlab.core.neurons import LI, LIF
from snnlab.core.normalization import TimeBatchNorm
from snnlab.core.random_stream import RNG_STATE_KEY
from snnlab.core.readout import SPIKE_READOUTS
from snnlab.core.recurrent import RecurrentLIF
from snnlab.core.validation import as_flag

from .config import (EVENT_DATASETS, PAD_TO_LONGEST, ExperimentConfig, _data_frames, event_frame_kwargs,
                     event_pad_to, frames_per_sample)

__all__ = ["build_model", "build_data", "load_model_state", "keep_neuron_constants", "neuron_kwargs", "FlattenCollate",
           "model_from_checkpoint", "model_and_checkpoint", "CustomRunError", "custom_parts"]


def neuron_kwargs(cfg: ExperimentConfig) -> dict[str, Any]:
    """Keyword arguments for the hidden :class:`~snnlab.LIF` layers."""
    kw: dict[str, Any] = dict(tau_mem=float(cfg.tau_mem), threshold=float(cfg.threshold), reset=cfg.reset,
                              max_spikes=cfg.effective_max_spikes(), learn_threshold=bool(cfg.learn_threshold),
                              learn_tau=bool(cfg.learn_tau), detach_reset=bool(cfg.detach_reset))
    a = cfg.surrogate_alpha
    kw["surrogate"] = sg.get(cfg.surrogate, alpha=a, sigma=a)
    if cfg.neuron == "noisy":
        kw["noise"] = cfg.noise
        kw["noise_scale"] = float(cfg.noise_scale)
    return kw


def _hidden_neurons(cfg: ExperimentConfig, width: int, kw: dict[str, Any]) -> LIF:
    """One hidden layer's neurons: :class:`~snnlab.ALIF` with ``cfg.adaptation > 0`` (recurrent with
    ``cfg.recurrent``), else :class:`~snnlab.RecurrentLIF` with ``cfg.recurrent``, else :class:`~snnlab.LIF`; with
    ``cfg.tau_mem_cv > 0`` one time constant per neuron, spread around ``tau_mem`` (:meth:`~snnlab.LIF.spread_tau_`);
    masking ``mask_p`` in training, and in evaluation too with ``cfg.mask_at_inference``."""
    mask = dict(mask_p=float(cfg.mask_p), mask_at_inference=bool(cfg.mask_at_inference))
    per_neuron = width if cfg.recurrent or cfg.tau_mem_cv > 0 else None
    if cfg.adaptation > 0:
        neurons: LIF = ALIF(**kw, **mask, adaptation=float(cfg.adaptation), tau_adapt=float(cfg.tau_adapt),
                            recurrent=bool(cfg.recurrent), n_neurons=per_neuron)
    elif cfg.recurrent:
        neurons = RecurrentLIF(width, **kw, **mask)
    else:
        neurons = LIF(**kw, **mask, n_neurons=per_neuron)
    if cfg.tau_mem_cv > 0:  # heterogeneous time constants, drawn from torch's global RNG (seeded with the run)
        neurons.spread_tau_(float(cfg.tau_mem_cv))
    return neurons


def _synapse(cfg: ExperimentConfig, n_in: int, n_out: int, gain: float) -> nn.Module:
    if cfg.delays:
        layer: nn.Module = DelayedLinear(n_in, n_out, max_delay=int(cfg.max_delay))
    else:
        layer = nn.Linear(n_in, n_out, bias=False)
    if gain != 1.0:
        with torch.no_grad():
            layer.weight.mul_(float(gain))
    return layer


def build_model(cfg: ExperimentConfig, n_inputs: int, n_classes: int) -> Sequential:
    """The network of ``cfg``: per hidden layer ``synapse [-> TimeBatchNorm] [-> LI] -> LIF [-> TimeDropout]``, then
    ``synapse -> readout`` (batch norm with ``cfg.batch_norm``, a synaptic current ``LI(tau_syn)`` with
    ``cfg.tau_syn``, dropout with ``cfg.dropout > 0``).

    The synapse is :class:`~snnlab.DelayedLinear` when ``cfg.delays`` else a bias-free ``nn.Linear``; the hidden
    neurons are :class:`~snnlab.RecurrentLIF` layers (recurrent synapses within each layer) with ``cfg.recurrent``,
    adaptive :class:`~snnlab.ALIF` layers (recurrent or not) with ``cfg.adaptation > 0``;
    initial weights are scaled by ``cfg.weight_gain`` (hidden, and a spiking output layer) and
    ``cfg.readout_gain`` (the synapses of an LI readout).
    The readout layer is an :class:`~snnlab.LI` for membrane readouts, and a spiking
    :class:`~snnlab.LIF` for ``spike_count`` (same neuron options as the hidden layers) and
    ``first_spike`` (``max_spikes=1``). With ``cfg.mask_p > 0`` the hidden LIF layers mask their output
    spikes (``LIF(mask_p=...)``, fused into the neuron kernels: the function of a
    :class:`~snnlab.SpikeMask` after each of them), in evaluation too with ``cfg.mask_at_inference``
    (``LIF(mask_at_inference=True)``). Initialisation uses torch's global RNG (seed it first).

    Example:
        >>> net = build_model(ExperimentConfig(hidden=[16], mask_p=0.1), 64, 10)
        >>> [type(m).__name__ for m in net], net[1].mask_p
        (['Linear', 'LIF', 'Linear', 'LI'], 0.1)
        >>> build_model(ExperimentConfig(hidden=[16], mask_p=0.1, mask_at_inference=True), 64, 10)[1].mask_at_inference
        True
    """
    for name, v in (("n_inputs", n_inputs), ("n_classes", n_classes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"build_model: {name} must be a positive int, got {v!r}")
    kw = neuron_kwargs(cfg)
    layers: list[nn.Module] = []
    prev = n_inputs
    for h in cfg.hidden:
        layers.append(_synapse(cfg, prev, int(h), cfg.weight_gain))
        if cfg.batch_norm:
            layers.append(TimeBatchNorm(int(h)))
        if cfg.tau_syn is not None:  # current-based synapses: a leaky synaptic current before the neurons
            layers.append(LI(tau_mem=float(cfg.tau_syn)))
        neurons = _hidden_neurons(cfg, int(h), kw)
        layers.append(neurons)
        if cfg.dropout > 0:
            layers.append(TimeDropout(float(cfg.dropout)))
        prev = int(h)
    spiking_out = cfg.readout in SPIKE_READOUTS  # a spiking output layer must reach threshold: hidden gain
    layers.append(_synapse(cfg, prev, n_classes, cfg.weight_gain if spiking_out else cfg.readout_gain))
    if spiking_out:
        out_kw = dict(kw)
        if cfg.readout == "first_spike":
            out_kw["max_spikes"] = 1
        layers.append(LIF(**out_kw))
    else:
        layers.append(LI(tau_mem=float(cfg.tau_mem), learn_tau=bool(cfg.learn_tau)))
    return Sequential(*layers)


def _renumber_stateless_layers(model: nn.Module, state: dict[str, Any]) -> dict[str, Any] | None:
    """``state`` with its layer numbers moved onto ``model``'s layers that hold state, or None if they do not match.

    Layers without parameters or buffers (``TimeDropout``, the ``SpikeMask`` that ``mask_p`` used to add; a seeded
    one holds only its random stream, which counts as no state here) take a number in a ``Sequential`` but no
    weights in its state dict, so adding or removing one shifts every later key.
    The saved layers and the model's stateful layers are paired in order, and every pair must hold the same keys.
    """
    if not isinstance(model, nn.Sequential):
        return None
    saved: dict[int, dict[str, Any]] = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        if not head.isdigit() or not rest:
            return None
        saved.setdefault(int(head), {})[rest] = value
    # a seeded layer's random stream alone does not make it a layer that holds state: it is left where it is
    saved = {j: keys for j, keys in saved.items() if set(keys) != {RNG_STATE_KEY}}
    own = [(i, keys) for i, m in enumerate(model) if (keys := set(m.state_dict())) - {RNG_STATE_KEY}]
    if len(own) != len(saved):
        return None
    out: dict[str, Any] = {}
    for (i, keys), j in zip(own, sorted(saved)):
        if keys - {RNG_STATE_KEY} != set(saved[j]) - {RNG_STATE_KEY}:
            return None
        out.update({f"{i}.{k}": v for k, v in saved[j].items()})
    return out


def load_model_state(model: nn.Module, state: dict[str, Any]) -> None:
    """``model.load_state_dict(state)``, also across layers without state added or removed.

    A checkpoint trained with ``dropout`` loads into the same network without it (and the reverse), and a
    checkpoint saved before masking was fused into the LIF (November 2026: ``mask_p > 0`` put a stateless
    ``SpikeMask`` after each hidden LIF) loads into today's layout: the layers that hold state are paired in order.
    Raises ``RuntimeError`` (as ``load_state_dict``) when ``state`` does not fit either way.

    Example:
        >>> trained = build_model(ExperimentConfig(hidden=[8], dropout=0.3), 4, 2)
        >>> load_model_state(build_model(ExperimentConfig(hidden=[8]), 4, 2), trained.state_dict())
    """
    own = {k for k in model.state_dict() if not k.endswith(RNG_STATE_KEY)}
    if own != {k for k in state if not k.endswith(RNG_STATE_KEY)}:  # layers added or removed: pair them first
        # (a failed direct load would already have copied the keys that match by number, e.g. one seeded layer's
        # random stream onto another layer that now has that number)
        moved = _renumber_stateless_layers(model, state)
        if moved is not None:
            state = moved
    model.load_state_dict(state)


def keep_neuron_constants(model: nn.Module, load: Callable[[], Any], keep: bool = True) -> list[str]:
    """Run ``load()`` (a state-dict load into ``model``) keeping the neurons' fixed decay factors, thresholds and
    (:class:`~snnlab.ALIF`) adaptation strengths and time constants.

    Where one of them is not learned it is a buffer, so a checkpoint's state dict carries it; but for a model built
    from a configuration it is configuration, not training state: a run resumed with another ``threshold``,
    ``tau_mem``, ``adaptation`` or ``tau_adapt`` must use the new value, as it does for every other setting. Returns
    the ones that ``load()`` changed as ``"<layer>.<buffer>"``; with ``keep=False`` they keep the loaded values (a
    model of your own whose constants, e.g. drawn by :meth:`~snnlab.LIF.spread_tau_`, were trained with).

    Example:
        >>> model = build_model(ExperimentConfig(hidden=[8], threshold=2.0), 4, 2)
        >>> old = build_model(ExperimentConfig(hidden=[8]), 4, 2).state_dict()
        >>> keep_neuron_constants(model, lambda: model.load_state_dict(old)), float(model[1].threshold)
        (['1.threshold'], 2.0)
        >>> keep_neuron_constants(model, lambda: model.load_state_dict(old), keep=False), float(model[1].threshold)
        (['1.threshold'], 1.0)
    """
    keep = as_flag(keep, "keep", "keep_neuron_constants")
    kept = [(f"{prefix}.{name}" if prefix else name, module, name, buf.detach().clone())
            for prefix, module in neuron_layers(model).items()
            # the neuron's constants: the buffers among those it keeps in full precision (see _Leaky._apply)
            for name, buf in module.named_buffers(recurse=False) if name in module._FULL_PRECISION]
    load()
    changed = []
    with torch.no_grad():
        for key, module, name, value in kept:
            current = getattr(module, name)
            if current.shape != value.shape or not torch.equal(current, value.to(current.device)):
                changed.append(key)
                if keep:
                    setattr(module, name, value.to(current.device))
    return changed


# ------------------------------------------------------------------------------------------- data


class FlattenCollate:
    """Wrap a collate function so that ``x [T, B, C, H, W]`` becomes ``[T, B, C*H*W]`` (float32); picklable when
    ``collate`` is (``time_major_collate``, :class:`~snnlab.data.collate.PadCollate`), for ``num_workers > 0``.

    Example:
        >>> from snnlab.data.collate import PadCollate
        >>> collate = FlattenCollate(PadCollate(5))
        >>> x, y = collate([(torch.ones(3, 2, 4, 4), 0), (torch.ones(2, 2, 4, 4), 1)])
        >>> x.shape, x.dtype, y.tolist()
        (torch.Size([5, 2, 32]), torch.float32, [0, 1])
        >>> collate
        FlattenCollate(PadCollate(n_steps=5))
    """

    def __init__(self, collate) -> None:
        self.collate = collate

    def __call__(self, batch):
        x, y = self.collate(batch)
        x = torch.as_tensor(x)
        if x.dim() > 3:
            x = x.reshape(x.shape[0], x.shape[1], -1)
        return x.float(), y

    def __repr__(self) -> str:
        inner = getattr(self.collate, "__name__", None) or repr(self.collate)
        return f"FlattenCollate({inner})"


def _split(ds, test_fraction: float, seed: int):
    n = len(ds)
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    n_test = max(1, int(round(n * float(test_fraction))))
    if n_test >= n:
        raise ValueError(f"dataset of {n} samples is too small to split off a test set")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed))).tolist()
    return Subset(ds, perm[n_test:]), Subset(ds, perm[:n_test])


def _loaders(train_ds, test_ds, cfg: ExperimentConfig, collate, num_workers: int = 0) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(int(cfg.seed))
    train = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=g, collate_fn=collate,
                       num_workers=num_workers)
    # seeded too: workers draw their seeds from it, and same_randomness() restores only a loader's own generators
    test = DataLoader(test_ds, batch_size=cfg.batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers,
                      generator=torch.Generator().manual_seed(int(cfg.seed) + 1))
    return train, test


def _root(cfg: ExperimentConfig):
    if cfg.data_root:
        return cfg.data_root
    from snnlab.data.neuromorphic import shared_data_root

    return shared_data_root()


def _check_pad_to(cfg: ExperimentConfig, pad_to: int, longest: dict[str, int]) -> None:
    """A ``ValueError`` when a sample of an event dataset is longer than an int ``data_kwargs`` ``pad_to``;
    ``longest``: ``{split: its longest sample's frame count}``."""
    split = max(longest, key=lambda k: longest[k])
    steps = longest[split]
    if steps <= pad_to:
        return
    window = (cfg.data_kwargs or {}).get("time_window")
    raise ValueError(f"build_data: data_kwargs 'pad_to'={pad_to} is shorter than the longest sample of dataset "
                     f"{cfg.dataset!r}: {steps} frames (in the {split} set; with time_window={window!r} us alone a "
                     f"sample has as many frames as its recording lasts), so its batch could not be padded; pass "
                     f"pad_to={PAD_TO_LONGEST!r} (every batch to the longest sample) or an int pad_to >= {steps}")


def build_data(cfg: ExperimentConfig) -> tuple[DataLoader, DataLoader, int, int]:
    """``(train_loader, test_loader, n_inputs, n_classes)`` for ``cfg.dataset``; batches are ``(x [T, B, F], y [B])``.

    Uses :mod:`snnlab.data`; ``cfg.data_kwargs`` go to the dataset function (``test_fraction``, ``num_workers`` and
    ``pad_to`` are taken out first). Event-camera frames are flattened to ``[T, B, C*H*W]``.
    Real datasets are read from ``cfg.data_root`` (never downloaded).

    Event datasets' batches are padded to their longest sample, or, with ``data_kwargs`` ``pad_to``
    (:func:`~snnlab.training.config.event_pad_to`), all to one length: an int, or ``"longest"`` (the longest sample of
    the train and test sets, :func:`~snnlab.data.neuromorphic.max_sample_steps`, counted here once), so that with
    ``time_window`` alone a sample's outputs and metrics do not depend on the batch it lands in. An int ``pad_to``
    shorter than the longest sample is a ``ValueError`` here, before any batch: with ``time_window`` alone the
    samples are counted for it as for ``"longest"`` (every recording read once, not binned).

    Example:
        >>> train, test, n_in, n_classes = build_data(ExperimentConfig(dataset="randman", num_steps=8,
        ...                                                            data_kwargs={"samples_per_class": 4}))
        >>> next(iter(train))[0].shape, n_in, n_classes
        (torch.Size([8, 32, 100]), 100, 10)

        With event files under ``data_root`` (e.g. ``shd_train.h5``, ``shd_test.h5``)::

            cfg = ExperimentConfig(dataset="shd", data_root="/data/shd",
                                   data_kwargs={"time_window": 10_000, "pad_to": "longest"})
            train, test, n_in, n_classes = build_data(cfg)   # every batch [T_longest, B, 700]
    """
    import snnlab.data as sd
    from snnlab.data.collate import PadCollate, time_major_collate
    from snnlab.data.neuromorphic import max_sample_steps

    kw = dict(cfg.data_kwargs or {})
    test_fraction = float(kw.pop("test_fraction", 0.2))
    num_workers = int(kw.pop("num_workers", 0))
    name, T, seed = cfg.dataset, int(cfg.num_steps), int(cfg.seed)

    if name in ("digits", "mnist5k"):
        train, test = sd.make_loaders(name, encoding=cfg.encoding, num_steps=T, batch_size=cfg.batch_size,
                                      test_fraction=test_fraction, seed=seed, num_workers=num_workers, **kw)
        info = sd.EMBEDDED_DATASETS[name]
        return train, test, int(info["n_features"]), int(info["n_classes"])

    if name == "randman":
        kw.setdefault("n_classes", 10)
        kw.setdefault("n_units", 100)
        kw.setdefault("samples_per_class", 100)
        ds = sd.make_randman(n_steps=T, seed=seed, **kw)
        tr, te = _split(ds, test_fraction, seed)
        train, test = _loaders(tr, te, cfg, time_major_collate, num_workers)
        return train, test, int(kw["n_units"]), int(kw["n_classes"])

    if name == "delay_task":
        kw.setdefault("delays", (10, 25))
        kw["delays"] = tuple(int(d) for d in kw["delays"])
        ds = sd.make_delay_task(n_steps=T, seed=seed, **kw)
        tr, te = _split(ds, test_fraction, seed)
        train, test = _loaders(tr, te, cfg, time_major_collate, num_workers)
        n_in = 2 * int(kw.get("n_per_channel", 1)) + int(kw.get("n_distractors", 0))
        return train, test, n_in, len(kw["delays"])

    if name in EVENT_DATASETS:
        from snnlab.data.neuromorphic import NEUROMORPHIC_DATASETS, load_neuromorphic

        key = EVENT_DATASETS[name]
        kw.pop("pad_to", None)
        pad_to = event_pad_to(cfg)
        frames_per_sample(cfg)  # (refuses an int pad_to below the frames the settings give every sample)
        kw.update(event_frame_kwargs(cfg))  # num_steps bins unless a time_window gives frames of a fixed length
        root = _root(cfg)
        tr = load_neuromorphic(key, root, "train", **kw)
        te = load_neuromorphic(key, root, "test", **kw)
        n_in = int(math.prod(tr[0][0].shape[1:]))
        n_steps = max(max_sample_steps(tr), max_sample_steps(te)) if pad_to == PAD_TO_LONGEST else pad_to
        if isinstance(pad_to, int) and not _data_frames(cfg)[1]:  # samples as long as their recordings
            _check_pad_to(cfg, pad_to, {"train": max_sample_steps(tr), "test": max_sample_steps(te)})
        collate = (time_major_collate if n_steps is None
                   else PadCollate(n_steps, source="data_kwargs 'pad_to'") if isinstance(pad_to, int)
                   else PadCollate(n_steps))
        train, test = _loaders(tr, te, cfg, FlattenCollate(collate), num_workers)
        return train, test, n_in, int(NEUROMORPHIC_DATASETS[key].n_classes)

    if name == "fsdd":
        from snnlab.data.audio import load_fsdd

        kw.setdefault("n_channels", 64)
        root = cfg.data_root  # None -> load_fsdd's default (<shared data>/fsdd)
        tr = load_fsdd(root, "train", num_steps=T, **kw)
        te = load_fsdd(root, "test", num_steps=T, **kw)
        train, test = _loaders(tr, te, cfg, time_major_collate, num_workers)
        return train, test, int(kw["n_channels"]), 10

    raise ValueError(f"unknown dataset {name!r}")


class CustomRunError(ValueError):
    """A run trained with a model or data passed to the :class:`~snnlab.training.Trainer` (``model=``,
    ``train_loader=``/``test_loader=``), which its configuration does not describe, asked to be rebuilt from it."""


#: how the Trainer labels such runs (``Trainer.label``, saved as the checkpoint's ``"label"``): a model passed in is
#: ``"<class name> (custom model) on <dataset or 'custom data'>"``, a configured model on data passed in is the
#: configuration's label followed by ``" (custom data)"``
_CUSTOM_MODEL_LABEL = re.compile(r"^\S+ \(custom model\) on (?P<data>.*)$", re.DOTALL)
_CUSTOM_DATA_SUFFIX = " (custom data)"


def custom_parts(checkpoint: dict[str, Any]) -> tuple[str, ...]:
    """Which of a training checkpoint's run were passed to the Trainer rather than built from its configuration:
    ``()``, ``("model",)``, ``("data",)`` or ``("model", "data")``.

    Read from the ``"own_model"`` / ``"own_data"`` flags where the checkpoint holds them, else from its ``"label"``
    (the Trainer's, e.g. ``"Sequential (custom model) on custom data"``). A checkpoint written before the Trainer
    labelled such runs (or without a label) reads as ``()``.

    Example:
        >>> custom_parts({"label": "Sequential (custom model) on digits"})
        ('model',)
        >>> custom_parts({"label": "digits 12-16-3 multi_spike atan T20 (custom data)"})
        ('data',)
        >>> custom_parts({"label": "digits 64-16-10 multi_spike atan T20"})
        ()
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f"custom_parts: expected a checkpoint dict, got {type(checkpoint).__name__}")
    flags = {part: checkpoint.get(f"own_{part}") for part in ("model", "data")}
    label = checkpoint.get("label")
    if isinstance(label, str) and any(v is None for v in flags.values()):
        m = _CUSTOM_MODEL_LABEL.match(label)
        from_label = {"model": m is not None,
                      "data": (m.group("data") == "custom data") if m else label.endswith(_CUSTOM_DATA_SUFFIX)}
        flags = {k: from_label[k] if v is None else v for k, v in flags.items()}
    return tuple(part for part, own in flags.items() if own)


def synapse_weights(state: Any) -> list[tuple[int, torch.Tensor]]:
    """``[(layer index, weight)]`` of the synapses of a network built from a configuration (:func:`build_model`), in
    layer order, read from its ``state_dict`` (the ``"<index>.weight"`` matrices): the first's inputs and the last's
    outputs are the network's input and class counts. ``[]`` for anything else.

    Example:
        >>> net = build_model(ExperimentConfig(hidden=[16]), 12, 3)
        >>> [(i, tuple(w.shape)) for i, w in synapse_weights(net.state_dict())]
        [(0, (16, 12)), (2, (3, 16))]
    """
    if not isinstance(state, dict):
        return []
    return sorted(((int(k.split(".")[0]), v) for k, v in state.items()
                   if isinstance(k, str) and k.split(".")[0].isdigit() and k.count(".") == 1 and k.endswith(".weight")
                   and isinstance(v, torch.Tensor) and v.dim() == 2), key=lambda iw: iw[0])


def model_from_checkpoint(path: str | Any, run_id: str | None = None) -> tuple[Sequential, ExperimentConfig]:
    """``(model, cfg)`` of a training checkpoint (a ``checkpoint.pt`` or the run folder holding it), in eval mode,
    rounded delays rounded, without loading the data: the input and class counts are read from the saved weights
    (the first synapse's inputs, the last one's outputs). Only networks built from a configuration
    (:func:`build_model`) can be rebuilt: the checkpoint of a run trained with your own model
    (``Trainer(cfg, model=...)``, :func:`custom_parts`) raises a :class:`CustomRunError` (a ``ValueError``), as does
    one whose weights do not fit the configuration's network. A configured network trained on data of your own is
    rebuilt (its input and class counts are the weights'), but its ``cfg.dataset`` is not the data it saw
    (``custom_parts(...)`` holds ``"data"``). ``run_id``: the stored run it is loaded for (``ValueError`` when the
    file holds another run's checkpoint, :func:`~snnlab.training.checkpoint.check_checkpoint_run`).

    Example:
        >>> import tempfile
        >>> from snnlab.training import Trainer
        >>> run = tempfile.mkdtemp()
        >>> _ = Trainer(ExperimentConfig(hidden=[8], epochs=1, max_batches_per_epoch=1, eval_max_batches=1),
        ...             run_dir=run, progress=False).run()
        >>> model, cfg = model_from_checkpoint(run)
        >>> [type(m).__name__ for m in model], cfg.hidden
        (['Linear', 'LIF', 'Linear', 'LI'], [8])
    """
    model, cfg, _ = model_and_checkpoint(path, run_id)
    return model, cfg


def model_and_checkpoint(path: str | Any, run_id: str | None = None) -> tuple[Sequential, ExperimentConfig, dict]:
    """:func:`model_from_checkpoint` and the checkpoint it read (without its history): for callers that also need
    what it holds (e.g. :func:`custom_parts`), from the same read of the file."""
    from .checkpoint import check_run, load_checkpoint

    ckpt = load_checkpoint(path, history=False)  # the network and its configuration: the history is not decoded
    if run_id is not None:  # loaded for a stored run: refused when another run saved over the file
        check_run(ckpt, path, run_id)
    if "model" in custom_parts(ckpt):  # (its weights may fit the configured network: the layers would not be its)
        raise CustomRunError(
            f"model_from_checkpoint: {path} holds a run trained with a model of your own "
            f"(label {ckpt.get('label')!r}), "
            "passed to Trainer(cfg, model=...): its configuration does not describe that network (neuron class, "
            "threshold, reset, surrogate, layers...), so it is not rebuilt from it; build your model again and load "
            f"its weights: model.load_state_dict(snnlab.training.load_checkpoint({str(path)!r})['model'])")
    cfg = ExperimentConfig.from_saved(ckpt["config_json"])
    state = ckpt["model"]
    weights = synapse_weights(state)
    if not weights or weights[0][0] != 0:
        raise CustomRunError(f"model_from_checkpoint: {path} does not hold a network built from its configuration "
                         "(no synapse weights at layer 0): rebuild your own model and load_state_dict its 'model'")
    model = build_model(cfg, int(weights[0][1].shape[1]), int(weights[-1][1].shape[0]))
    if ckpt.get("delays_rounded"):
        for m in model.modules():
            if isinstance(m, DelayedLinear):
                m.round_delays()
    try:
        load_model_state(model, state)
    except RuntimeError as exc:
        raise CustomRunError(f"model_from_checkpoint: {path} does not match the network of its configuration: {exc}") \
            from exc
    return model.eval(), cfg, ckpt
