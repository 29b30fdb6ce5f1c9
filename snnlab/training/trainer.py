"""The training loop: build from a config, train, evaluate, checkpoint, and be controlled from another thread.

Example:
    >>> from snnlab.training import ExperimentConfig, Trainer
    >>> cfg = ExperimentConfig(hidden=[32], epochs=1, max_batches_per_epoch=2, eval_max_batches=1)
    >>> tr = Trainer(cfg, progress=False)
    >>> result = tr.run()
    >>> tr.state, sorted(result)
    ('finished', ['final', 'rounded'])

Numbering: events and history records carry ``epoch`` = the 0-based index of the epoch they
belong to and ``step`` = the number of optimiser steps done so far (``1`` after the first).
A checkpoint's ``"epoch"`` is the number of *completed* epochs, i.e. where a resumed run starts.
With learnable delays, an epoch's record gives the ``sigma`` it trained with, and its ``test_*`` metrics are
measured with that sigma: the sigma schedule advances after the epoch's evaluation.

The trainer's other jobs live beside this module: ``control.py`` (state, start / pause / stop, Ctrl-C),
``resume.py`` (checkpoints and resuming), ``records.py`` (history, events, run store) and ``runtime.py``
(seeds, device).
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
import traceback
import warnings
import weakref
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from snnlab.core.delays import DelayedLinear, DelaySchedule
from snnlab.core.network import WeakMethodHook, carry_suspended, neuron_layers
from snnlab.core.neurons import LIF
from snnlab.core.readout import decide, logits, tie_tolerance
from snnlab.core.validation import as_flag, user_stacklevel
from snnlab.data.loader_rng import loader_states, restore_loader_states

from .checkpoint import load_checkpoint, to_plain
from .config import ExperimentConfig
from .control import STATES, ControlMixin
from .events import Event, EventBus
from .interrupts import batch_norm_buffers, step_boundary
from .lr_schedule import lr_factor, one_cycle_momentum
from .precision import check_precision, forward_precision
from .records import EVAL_KEYS, STEP_METRICS, History, ReportingMixin, RunStoreProtocol, scalar_metrics
from .regularization import spike_rate_penalty
from .resume import ResumeMixin, load_resume, refuse_foreign_checkpoint
from .run_folder import (CHECKPOINT_NAME, CONFIG_NAME, CONFIG_TMP_NAME, RunFolderTaken, check_run_folder,
                         refuse_busy_run_folder, run_folder_lock, warn_unlocked)
from .runtime import (global_draws, resolve_device, seed_everything, shuffles_with_global_rng,
                      training_in_process)
from .threads import training_model

__all__ = ["Trainer", "TrainingDiverged", "RunStoreProtocol", "History", "STATES", "seed_everything",
           "resolve_device", "EVAL_KEYS"]

log = logging.getLogger(__name__)


def deployed_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The evaluation of a run's ``result`` (``{"final": ..., "rounded": ...}``) that its store summary holds: that of
    the model as deployed, marked ``"delays_rounded": True`` where it is the one after rounding learned delays to
    integers (not ``result["final"]``, that of the learned, fractional delays).

    Example:
        >>> deployed_summary({"final": {"accuracy": 0.2344}, "rounded": {"accuracy": 0.25}})
        {'accuracy': 0.25, 'delays_rounded': True}
        >>> deployed_summary({"final": {"accuracy": 0.9}, "rounded": None})
        {'accuracy': 0.9}
    """
    if result.get("rounded") is not None:
        return dict(result["rounded"]) | {"delays_rounded": True}
    return dict(result["final"])


def _remove_hooks(handles: list) -> None:
    for handle in handles:
        handle.remove()


def _callback_list(callbacks: Callable[[Event], Any] | Iterable[Callable[[Event], Any]] | None) -> list:
    """``callbacks`` as a list of callables: one callable is a list of one, None an empty list; ``TypeError`` naming
    the Trainer and the bad value for anything else."""
    if callbacks is None:
        return []
    if callable(callbacks):
        return [callbacks]
    if isinstance(callbacks, (str, bytes)) or not isinstance(callbacks, Iterable):
        raise TypeError(f"Trainer: callbacks must be a callable or an iterable of callables, got {callbacks!r}")
    found = list(callbacks)
    bad = [cb for cb in found if not callable(cb)]
    if bad:
        raise TypeError(f"Trainer: callbacks must be callables (each receives every Event), got {bad[0]!r} "
                        f"({type(bad[0]).__name__}) among them")
    return found


def _refuse_known_run_id(store: RunStoreProtocol | None, run_id: str | None, ckpt: dict[str, Any] | None) -> None:
    """``ValueError`` when ``run_id`` is a run that ``store`` already holds, unless ``ckpt`` (the checkpoint being
    resumed) is that run's: a new run under its id would be merged into its record (metrics, config, summary)."""
    if run_id is None or store is None or not hasattr(store, "get_run"):
        return
    resumed = None if ckpt is None else ckpt.get("run_id")
    if resumed is not None and str(resumed) == str(run_id):
        return
    try:
        known = store.get_run(str(run_id))
    except KeyError:
        return
    status = known.get("status") if isinstance(known, dict) else None
    held = f"run_id={run_id!r} is already a run in the store" + (f" (status {status!r})" if status else "")
    if ckpt is None:
        raise ValueError(f"Trainer: {held}; give a new run_id (or none: the store gives one) for a new run, or "
                         f"resume=<its checkpoint or run folder> to continue that run")
    raise ValueError(f"Trainer: {held}, and the checkpoint resumed is run {resumed!r}'s; leave run_id out to continue "
                     f"run {resumed!r}, or give an id the store does not hold")


def _refuse_inference_parameters(model: nn.Module) -> None:
    """``ValueError`` naming the Trainer and the parameter for a model made under ``torch.inference_mode()``: its
    parameters are inference tensors, which autograd cannot train."""
    for name, p in model.named_parameters():
        if p.is_inference():
            raise ValueError(f"Trainer: the model's parameter {name!r} is an inference tensor (the model was built or "
                             "loaded under torch.inference_mode()), which cannot be trained; build the model outside "
                             "inference_mode (or clone its parameters there)")


def _data_classes(loader: Any, cfg: ExperimentConfig, first_labels: torch.Tensor | None) -> int:
    """The class count of a model built from ``cfg`` for the training ``loader`` passed in: its dataset's (or the
    dataset a ``Subset`` wraps) ``num_classes``, else ``len(classes)``; else ``cfg.dataset``'s, with a ``UserWarning``
    (one batch cannot tell the classes), and a ``ValueError`` when ``first_labels`` (the first batch's) already lie
    outside them."""
    from .config import dataset_shape

    dataset = getattr(loader, "dataset", None)
    for ds in (dataset, getattr(dataset, "dataset", None)):
        n = getattr(ds, "num_classes", None)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            return n
        classes = getattr(ds, "classes", None)
        if isinstance(classes, (list, tuple)) and classes:
            return len(classes)
    n = int(dataset_shape(cfg)[1])
    fix = ("give the loader's dataset a num_classes attribute (or a classes list), or build the model yourself and "
           "pass it (Trainer(cfg, model=..., train_loader=..., test_loader=...))")
    if first_labels is not None and first_labels.numel() and int(first_labels.max()) >= n:
        raise ValueError(f"Trainer: the training loader's labels go up to {int(first_labels.max())}, but the model "
                         f"built from cfg would get the {n} classes of cfg.dataset ({cfg.dataset!r}): the data passed "
                         f"in does not tell its class count; {fix}")
    warnings.warn(f"Trainer: the model built from cfg for the loaders passed in gets {n} outputs, the class count of "
                  f"cfg.dataset ({cfg.dataset!r}): the data does not tell its own; {fix}",
                  UserWarning, stacklevel=user_stacklevel())
    return n


def _checkpoint_classes(ckpt: dict[str, Any] | None) -> int | None:
    """The class count of the network a resumed checkpoint holds (its last synapse's outputs), or None (no checkpoint,
    or not a network built from a configuration)."""
    from .model import synapse_weights

    weights = synapse_weights((ckpt or {}).get("model"))
    return int(weights[-1][1].shape[0]) if weights else None


def _custom_data_label(cfg: ExperimentConfig, n_in: int, n_cls: int) -> str:
    """The label of a model built from ``cfg`` for data passed in: the configuration's, without the parts that
    describe ``cfg.dataset``'s data (its name, time steps and padding: ``cfg.dataset`` is not the data), with the layer
    sizes built, then ``" (custom data)"``.

    Example:
        >>> _custom_data_label(ExperimentConfig(hidden=[16]), 12, 3)
        '12-16-3 multi_spike atan (custom data)'
    """
    from .model import _CUSTOM_DATA_SUFFIX

    parts = cfg._label_parts()  # (the label's parts by group: the data's are left out as groups, not by their text)
    arch = "-".join(str(int(v)) for v in [n_in, *cfg.hidden, n_cls])
    return " ".join([arch, *parts["model"], *parts["options"]]) + _CUSTOM_DATA_SUFFIX  # (the ending custom_parts reads)


def _warn_persistent_workers(loader: Any) -> None:
    """Warn (at the user's line) that a resume of a run whose training loader keeps its workers between epochs
    (``persistent_workers=True``) is not bit-exact: the workers' random states carry over from epoch to epoch in an
    uninterrupted run, and a resumed run starts new workers (random transforms or encoders in them draw otherwise)."""
    from torch.utils.data import DataLoader

    if isinstance(loader, DataLoader) and loader.num_workers > 0 and loader.persistent_workers:
        warnings.warn("Trainer: the training loader keeps its worker processes between epochs "
                      "(persistent_workers=True): their random states carry over from epoch to epoch, and this "
                      "resumed run starts new workers, so what they draw (random transforms, rate encoding) differs "
                      "from the run never interrupted; use persistent_workers=False for bit-exact resumes",
                      UserWarning, stacklevel=user_stacklevel())


def _neuron_constant_ids(model: nn.Module) -> set[int]:
    """The ids of the learned constants of ``model``'s neuron layers (:func:`~snnlab.core.network.neuron_layers`):
    the parameters a layer holds itself among the constants its class declares (``tau_mem``, ``threshold``; an
    ``ALIF``'s ``adaptation`` and ``tau_adapt``). Weights are not among them: the recurrent weight ``W_rec`` of a
    ``RecurrentLIF`` or recurrent ``ALIF`` is its ``recurrent`` submodule's.

    Example:
        >>> import snnlab as sl
        >>> net = sl.Sequential(nn.Linear(2, 4), sl.RecurrentLIF(4, learn_tau=True), sl.LI(learn_tau=True))
        >>> sorted(n for n, p in net.named_parameters() if id(p) in _neuron_constant_ids(net))
        ['1.tau_mem', '2.tau_mem']
    """
    return {id(p) for layer in neuron_layers(model).values()
            for name, p in layer.named_parameters(recurse=False) if name in layer._FULL_PRECISION}


def _saved_without_neuron_group(ckpt: dict[str, Any] | None) -> bool:
    """Whether a resumed checkpoint's optimiser state (loaded unless its delays were rounded) has no "neurons" group:
    saved by an snnlab before 2026-12-08, which kept the neurons' learned constants in the "weights" group (and
    decayed them), or by a model without learned constants."""
    if ckpt is None or ckpt.get("delays_rounded"):
        return False
    state = ckpt.get("optimizer")
    groups = state.get("param_groups") if isinstance(state, dict) else None
    return isinstance(groups, list) and not any(isinstance(g, dict) and g.get("name") == "neurons" for g in groups)


class _RunRef:
    """A trainer's run id as the runs it meets keep it: known once its construction has chosen it (None before)."""

    __slots__ = ("run_id",)

    def __init__(self, run_id: str | None = None) -> None:
        self.run_id = run_id


#: why a trainer being built counts as drawing from the global random generators
_BUILDING = "a Trainer's construction (it seeds the generators and draws the initial weights from them)"


def _meet(new: "Trainer", old: "Trainer") -> None:
    """``new`` enters the process's registry (it is being built, or starts training) while ``old`` is in it: each
    records the other where what it draws from the global random generators may have changed (called under the
    registry's lock: :func:`~snnlab.training.runtime.training_in_process`; each tells it in its own thread).

    Two runs training: either draws (:attr:`Trainer._global_draws`). A trainer being built is always affected (its
    seed and initial weights: the other's thread may draw, or put the generators back, as the dashboard's snapshots
    do), and affects a training run that draws."""
    if old._phase == "training" and getattr(old, "_state", None) in ("finished", "stopped", "failed"):
        return  # (its run is ending: it trains no more)
    for one, two in ((new, old), (old, new)):
        if one._phase == "building":
            affected = True
        elif two._phase == "building":
            affected = bool(one._global_draws)
        else:
            affected = bool(one._global_draws or two._global_draws)
        if affected and all(ref is not two._run_ref for ref, _ in one._shared_with):
            one._shared_with.append((two._run_ref, tuple(new._global_draws) + tuple(old._global_draws)))


def _ref_text(ref: _RunRef) -> str:
    return ref.run_id if ref.run_id is not None else "(a Trainer being built)"


def _shared_in_history(history: Iterable[Any]) -> list[tuple[_RunRef, tuple[str, ...]]]:
    """The runs a resumed run shared the global random generators with, from its history's ``"shared_randomness"``
    records (see :attr:`Trainer.shared_randomness`)."""
    found: dict[str, tuple[str, ...]] = {}
    for rec in history:
        if isinstance(rec, dict) and rec.get("kind") == "shared_randomness":
            for run_id in rec.get("with") or ():
                found.setdefault(str(run_id), tuple(str(d) for d in rec.get("draws") or ()))
    return [(_RunRef(run_id), draws) for run_id, draws in found.items()]


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN or infinite."""


#: the values of ``Trainer(neuron_constants=...)``: whose fixed neuron constants a resumed model keeps
NEURON_CONSTANTS = ("model", "checkpoint")


def _check_neuron_constants(value: Any, resume: Any, model: nn.Module | None) -> None:
    """``ValueError`` naming the Trainer for a ``neuron_constants`` it cannot honour (before anything is written)."""
    if value is None:
        return
    if not isinstance(value, str) or value not in NEURON_CONSTANTS:
        raise ValueError(f"Trainer: neuron_constants must be None, 'model' or 'checkpoint', got {value!r}")
    if value == "checkpoint" and resume is None:
        raise ValueError("Trainer: neuron_constants='checkpoint' keeps a resumed checkpoint's neuron constants; "
                         "give resume=<checkpoint or run folder> with it")
    if value == "checkpoint" and model is None:
        raise ValueError("Trainer: neuron_constants='checkpoint' is for a model passed in (model=...); a model built "
                         "from cfg takes its fixed constants (tau_mem, threshold, adaptation, tau_adapt) from cfg: "
                         "resume with the checkpoint's configuration (cfg=None) to keep the trained ones")


def _store_has(store: Any, run_id: str) -> bool:
    """Whether ``store`` holds run ``run_id`` (its ``get_run`` raises ``KeyError`` for one it does not)."""
    try:
        store.get_run(run_id)
    except KeyError:
        return False
    return True


def _takes_keyword(store: Any, method: str, keyword: str) -> bool:
    """Whether ``store.<method>`` takes ``keyword``: :meth:`RunStore.create_run` takes ``run_id`` (the trainer then
    picks the id and registers the run when it starts), :meth:`RunStore.set_status` takes ``only_if`` (a conditional
    change); another store following :class:`RunStoreProtocol` may take neither."""
    import inspect

    try:
        return keyword in inspect.signature(getattr(store, method)).parameters
    except (AttributeError, TypeError, ValueError):
        return False


ADAM_BETAS = (0.9, 0.999)  # torch's defaults, restated: a resume puts back the first one after a one-cycle run
SGD_MOMENTUM = 0.9


class Trainer(ControlMixin, ResumeMixin, ReportingMixin):
    """Train the network an :class:`ExperimentConfig` describes, in this thread or in the background.

    Args:
        cfg: the configuration (an ``ExperimentConfig`` or a dict for :meth:`ExperimentConfig.from_dict`);
            may be None when ``resume`` is given (the checkpoint's config is used).
        run_dir: folder for ``checkpoint.pt`` (written atomically after every epoch) and ``config.json`` (written
            when the run starts, once it holds the folder); None = no files (when resuming: the checkpoint's folder).
            A folder that already holds another run's checkpoint is refused
            (:class:`~snnlab.training.run_folder.RunFolderTaken`, a ``FileExistsError``) unless resuming that
            checkpoint or ``overwrite``; a path that is a file, or whose ``checkpoint.pt`` is a folder, is refused
            here too (:func:`~snnlab.training.run_folder.check_run_folder`). The folder is made, locked and given
            its ``config.json`` when the run starts (a trainer never run leaves none). A trainer refused at
            :meth:`run` (or :meth:`start`) leaves the folder as it was (:meth:`_refused` says what the store keeps).
        store: optional object following :class:`RunStoreProtocol`; its errors are logged, never fatal. A store whose
            ``create_run`` takes ``run_id`` (a :class:`~snnlab.experiments.RunStore`) gets the run's row when the run
            starts: a trainer built and never run leaves no row, and a refused new run one row, "failed" with the
            refusal. Another store registers the run here, "idle".
        callbacks: a callable, or an iterable of callables, subscribed to :attr:`events` (they receive every
            :class:`Event`); anything else is refused (``TypeError``) before anything is written.
        model, train_loader, test_loader: inject your own instead of building them from ``cfg``: both loaders or
            neither (one alone is refused with a ``ValueError``: the other, built from ``cfg.dataset``, would hold other
            data than yours). With your own
            ``model`` the fields that build a network (``hidden``, ``neuron``, ``recurrent``, ``tau_syn``, ...) are
            not used (the training fields are: ``lr``, ``epochs``, ``readout``, ``spike_reg``...), and the run store
            records ``cfg`` as given, under a "(custom model)" label. Your model's ``forward`` returns the time-major
            output ``[T, B, C]`` that ``cfg.readout`` reads; of a tuple or list it returns, the first element is trained
            and scored (``(spikes, membrane)`` trains on the spikes: put the output to score first), and anything else
            (a dict, ...) is a ``TypeError`` saying so (:func:`snnlab.metrics.model_output`, the rule of
            :func:`snnlab.metrics.evaluate` too). Each batch holds whole sequences: training steps and evaluations run
            every batch from rest whatever its layers' ``carry_state``, and put back the membrane a layer carried before
            (:func:`snnlab.carry_suspended`). A model built from ``cfg`` for your loaders takes its input size from
            their first batch and its class count from their dataset's ``num_classes`` (or ``len(classes)``); a dataset
            without one gets ``cfg.dataset``'s, with a ``UserWarning`` (a ``ValueError`` when the first batch's labels
            lie outside it); its label gives the sizes built, not ``cfg.dataset``
            (``"12-128-3 multi_spike atan (custom data)"``). A bit-exact resume inside an epoch holds for loaders that
            shuffle with torch's global generator too (``DataLoader(ds, shuffle=True)``), not for a loader with
            ``persistent_workers=True`` (its workers' random states carry over between epochs: warned at a resume).
        resume: path of a checkpoint (or a run folder) to continue from. A ``cfg`` with fewer ``epochs`` than the
            checkpoint trained (its complete epochs, and the one it stopped inside) is refused with a
            :class:`~snnlab.training.resume.ResumeConfigError` before anything is written
            (:func:`~snnlab.training.resume.check_resume_epochs`); as many leaves nothing to train: the run
            finishes where it is (a finished one writes its results again, and is refused other settings).
        progress: show tqdm progress bars (True or False, as ``overwrite``: ``"no"`` is a ``TypeError``).
        name: run name passed to ``store.create_run``.
        run_id: force a run id (default: the checkpoint's when resuming, else the store's, else random). An id that
            ``store`` already holds is refused (``ValueError``, before anything is written) unless resuming that
            run's checkpoint: a new run would be merged into the old run's record.
        log_every: send step metrics to the store every this many steps (events go out every step).
        overwrite: start a new run in a ``run_dir`` whose checkpoint (of another run) gets replaced.
        neuron_constants: on a resume, whose fixed neuron constants (the buffers ``beta_const``, ``tau_mem``,
            ``threshold``, an ALIF's ``adaptation`` and ``tau_adapt``) the model keeps where they differ from the
            checkpoint's: ``"model"`` the model's as built, ``"checkpoint"`` those the run trained with. None (the
            default): a model built from ``cfg`` keeps the configuration's (a resume may change ``tau_mem`` or
            ``threshold``), and a ``model`` passed in keeps its own with a ``UserWarning`` naming them (e.g. per-neuron
            time constants drawn again by :meth:`~snnlab.LIF.spread_tau_`). ``"checkpoint"`` needs ``resume`` and a
            ``model`` passed in (a model built from ``cfg`` takes them from ``cfg``: resume it with the checkpoint's
            configuration to keep them).

    Resuming into a store that knows the run updates its stored config (e.g. more epochs) and deletes the
    metrics it holds for steps after the checkpoint (a crashed attempt logged them; they are trained again), once the
    resumed run starts training: a resume refused, never run, or failing before it trains leaves the store's row as
    it was. Resuming into a store that never saw the run registers it under its id and name (the checkpoint's), when it
    starts (a refused resume writes no row: another trainer of the run may hold the folder and write it).

    Runs of one process share torch's global random generators: :attr:`shared_randomness` says when another run
    beside this one may have changed its draws (it is then warned about, and recorded).

    Control: :meth:`run` (blocking), :meth:`start` (background thread), :meth:`pause`,
    :meth:`resume`, :meth:`stop` (at the next step boundary), :meth:`wait`; :attr:`state` is one of
    ``STATES``. Ctrl-C in :meth:`run` stops at the next step (a second one at once), saves a checkpoint
    that resumes exactly, marks the run "stopped" and raises ``KeyboardInterrupt``, so a loop over runs ends
    too (details in :meth:`run`). Results: :attr:`history` (records; ``history.frame()``),
    :attr:`result` (``{"final": eval dict, "rounded": eval dict after rounding delays, or None}``).

    Modes: each training step runs with the whole model in train mode (``model.train()`` again before a step that
    finds a module in eval mode: an evaluation from another thread, which warns, affects at most the steps it
    overlaps). A module that must stay in eval mode while the rest trains (frozen batch norm) overrides its
    ``train()``, as with other PyTorch training loops; a callback's ``module.eval()`` lasts until the next step.

    The construction, the optimiser and its schedules, the epoch loop, evaluation and finishing are defined here;
    the control methods in :class:`~snnlab.training.control.ControlMixin`, the checkpoints and resuming in
    :class:`~snnlab.training.resume.ResumeMixin`, the events and store calls in
    :class:`~snnlab.training.records.ReportingMixin`.
    """

    def __init__(self, cfg: ExperimentConfig | dict | None = None, run_dir: str | os.PathLike | None = None,
                 store: RunStoreProtocol | None = None, callbacks: Iterable[Callable[[Event], Any]] = (), *,
                 model: nn.Module | None = None, train_loader=None, test_loader=None,
                 resume: str | os.PathLike | None = None, progress: bool = True, name: str | None = None,
                 run_id: str | None = None, log_every: int = 1, overwrite: bool = False,
                 neuron_constants: str | None = None) -> None:
        callbacks = _callback_list(callbacks)  # (these checks come before anything is read, built or written)
        _check_neuron_constants(neuron_constants, resume, model)
        self._neuron_constants = neuron_constants
        self._own_model = model is not None
        if (train_loader is None) != (test_loader is None):
            given, missing = ("train_loader", "test_loader") if test_loader is None else ("test_loader", "train_loader")
            raise ValueError(f"Trainer: {given} was given without {missing}; give both (your own data) or neither "
                             f"(both built from cfg.dataset): a {missing} built from cfg.dataset would hold other "
                             "data than yours")
        ckpt = None
        self._overwrite = as_flag(overwrite, "overwrite", "Trainer")
        progress = as_flag(progress, "progress", "Trainer")
        self._save_id: str | None = None  # the checkpoint save this trainer last made or loaded
        self._folder_claim: contextlib.ExitStack | None = None  # the run folder's lock while a run holds it
        self._warned_unlocked = False  # a file system refusing the run folder's locks is warned about once
        run_dir = Path(run_dir).expanduser() if run_dir is not None else None  # ("~/runs/a": in the user's home)
        if run_dir is not None:
            check_run_folder(run_dir)  # a file, or a folder where checkpoint.pt goes: refused before any training
            refuse_busy_run_folder(run_dir)  # another training's folder: said before its checkpoint is read
        elif isinstance(resume, (str, os.PathLike)):  # the run folder is the checkpoint's (resume_from): probed too
            resume_path = Path(resume)
            refuse_busy_run_folder(resume_path if resume_path.is_dir() else resume_path.parent)
        if run_dir is not None and not overwrite:
            refuse_foreign_checkpoint(Path(run_dir), resume)
        if resume is not None:
            given_dir = run_dir
            ckpt, cfg, run_dir = load_resume(resume, cfg, run_dir, own_model=model is not None,
                                             own_data=train_loader is not None or test_loader is not None)
            if given_dir is None:
                check_run_folder(run_dir)
        if cfg is None:
            raise ValueError("Trainer needs a configuration (cfg) or a checkpoint to resume from")
        if isinstance(cfg, dict):
            cfg = ExperimentConfig.from_dict(cfg)
        if not isinstance(cfg, ExperimentConfig):
            raise TypeError(f"cfg must be an ExperimentConfig or a dict, got {type(cfg).__name__}")
        cfg.validate()
        _refuse_known_run_id(store, run_id, ckpt)
        self.cfg = cfg
        self.progress = progress
        self.log_every = max(1, int(log_every))
        self.device = resolve_device(cfg.device)
        check_precision(cfg.precision, self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.store = store
        self.events = EventBus()
        self.history = History()
        self.result: dict[str, Any] | None = None
        self._resume_progress: dict[str, Any] | None = None  # a partial epoch to finish (from a checkpoint)
        # a trained epoch whose end (evaluation, record) a Ctrl-C cut short: {"epoch": index, "summary": dict}
        self._pending_epoch_end: dict[str, Any] | None = None
        self._epoch_progress: dict[str, Any] | None = None  # the running epoch, for a checkpoint inside it
        self._start_step = 0  # self.step when this run() began
        self.last_eval: dict[str, Any] | None = None
        self.error: str | None = None
        self.epoch = 0  # completed epochs
        self.step = 0  # optimiser steps done
        self.loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
        self.checkpoint_path: Path | None = self.run_dir / CHECKPOINT_NAME if self.run_dir is not None else None

        #: the runs this one shared the global random generators with, ``(their _RunRef, what draws)``, appended
        #: under the process's registry lock (runtime.training_in_process); the first _shared_told are told
        self._shared_with: list[tuple[_RunRef, tuple[str, ...]]] = []
        self._shared_told = 0
        self._warned_shared = False
        self._run_ref = _RunRef()  # (its run id once known: runs met while this one is built name it)
        self._phase, self._global_draws = "building", [_BUILDING]
        with training_in_process(self, _meet):  # (counted while it seeds, draws and restores the global generators)
            self._build_from_seed(model, train_loader, test_loader, ckpt, resume)
        # (the folder, its lock and config.json are made when a run claims it: _claim_run_folder; a trainer never run
        # leaves no folder behind, and the lock is taken once, there)
        self._follow: tuple[dict, int] | None = None  # (config, step) a store that knows the resumed run takes at run()
        #: whether this trainer registered its run in the store (a new run, or a resumed one the store did not know);
        #: with a store that takes ``create_run(..., run_id=)`` (a RunStore) that is when the run starts
        self.registered_run = False
        #: the row to register when the run starts, ``{"name": ..., "own_id": whether the id is this trainer's own
        #: pick, "step": the resumed checkpoint's step or None}``; None: registered already, followed, or no store
        self._registration: dict[str, Any] | None = None
        self.run_id = self._register_run(run_id, ckpt, name)
        self._run_ref.run_id = self.run_id
        self.name = name or (ckpt or {}).get("name") or self.label
        for cb in callbacks:
            self.events.subscribe(cb)
        if self.registered_run:  # (a store registering at construction: a known run's stored status stays until it
            self._store("set_status", self.run_id, "idle", None)  # trains)

    # ------------------------------------------------------------------------------ construction
    def _build_from_seed(self, model: nn.Module | None, train_loader, test_loader, ckpt: dict[str, Any] | None,
                         resume) -> None:
        """The part of the construction that uses the process's global random generators: their seed, the parts
        built from it (:meth:`_build_parts`: the model's initial weights), the trainer's own state, and a resumed
        checkpoint's (:meth:`_restore_or_explain`: its random states)."""
        seed_everything(self.cfg.seed)
        # (a trainer built under torch.inference_mode(): its data, model and restored state are trainable all the same)
        with torch.inference_mode(False):
            self._build_parts(model, train_loader, test_loader, ckpt)

        # spikes per sample during training steps
        self._spike_counts: list[torch.Tensor] = []
        self._spike_outputs: list[torch.Tensor] = []  # the LIF layers' spikes of this step (with spike_reg)
        self._counting = False
        self._warned_short = False
        self._warned_empty = False
        self._warned_spike_reg = False  # spike_reg > 0 on a model without LIF layers: warned once
        self._boundary: dict[str, Any] | None = None  # the state at the start of the step in progress
        hooks = [m.register_forward_hook(WeakMethodHook(self, "_count_hook"))  # held weakly: copies and pickles of
                 for m in self.model.modules() if isinstance(m, LIF)]          # the model leave the trainer behind
        weakref.finalize(self, _remove_hooks, hooks)  # and a model outliving its trainer sheds them

        self._init_control()
        self._init_reporting()
        self._delays_rounded = bool(ckpt.get("delays_rounded")) if ckpt is not None else False

        if ckpt is not None:
            with torch.inference_mode(False):
                self._restore_or_explain(ckpt, resume)
            _warn_persistent_workers(self.train_loader)
            earlier = _shared_in_history(self.history)  # (told by the run that saved it)
            self._shared_with[:0] = earlier
            self._shared_told += len(earlier)

    def _build_parts(self, model: nn.Module | None, train_loader, test_loader, ckpt: dict[str, Any] | None) -> None:
        """The loaders (``cfg.dataset``'s unless given), :attr:`label`, the model (built from ``cfg`` unless given),
        the optimiser and the delays' sigma schedule.

        A model built from ``cfg`` for loaders passed in takes its input size from their first batch and its class
        count from their dataset's ``num_classes`` (or ``len(classes)``) when it has one; otherwise from
        ``cfg.dataset`` (warned: :func:`_data_classes`); a resumed run's from its checkpoint's weights (a run saved
        before the dataset's count was read trained with ``cfg.dataset``'s). Its label names no dataset: the layer
        sizes built, then ``" (custom data)"``."""
        cfg = self.cfg
        own_data = train_loader is not None  # (both loaders or neither: checked above)
        self._own_data = own_data
        if not own_data:
            train_loader, test_loader, n_in, n_cls = self._build_data()
        else:
            n_in = n_cls = None
        self.train_loader, self.test_loader = train_loader, test_loader
        #: the run's label (run store, checkpoints, events): the configuration's, unless the model or the data were
        #: passed in, which the configuration then does not describe
        self.label = cfg.label()
        if model is not None:
            _refuse_inference_parameters(model)
            self.label = f"{type(model).__name__} (custom model) on {'custom data' if own_data else cfg.dataset}"
        else:
            if n_in is None:
                from snnlab.metrics import check_batch

                first = next(iter(train_loader), None)
                if first is None:
                    raise ValueError("Trainer: the training loader yields no batches")
                checked = check_batch(first, "Trainer", 0)  # a malformed one raises (an empty one has the feature size)
                n_in = int(first[0].shape[-1])
                # a resumed run: the class count it trained with (one saved before the dataset's was read has
                # cfg.dataset's), so that its weights load
                n_cls = _checkpoint_classes(ckpt)
                if n_cls is None:
                    n_cls = _data_classes(train_loader, cfg, None if checked is None else checked[1])
                self.label = _custom_data_label(cfg, n_in, n_cls)
            from .model import build_model

            model = build_model(cfg, n_in, n_cls)
        self.model = model.to(self.device)
        if ckpt is not None and ckpt.get("delays_rounded"):
            for layer in self._delay_layers(all_layers=True):
                layer.round_delays()
        self.optimizer = self._build_optimizer(ckpt)
        learnable = self._delay_layers()
        self.schedule = (DelaySchedule(learnable, total_epochs=cfg.epochs, sigma_end=cfg.sigma_end, kind=cfg.sigma_schedule,
                                       anneal_fraction=cfg.sigma_anneal_fraction) if learnable else None)

    def _register_run(self, run_id: str | None, ckpt: dict[str, Any] | None, name: str | None) -> str:
        """The run's id (``run_id``, else the checkpoint's, else the store's, else random). A store that knows the
        resumed run follows it (its config, no metrics of the steps not done) when it starts training
        (:meth:`_follow_resumed_run`). One it does not know gets the run's row when the run starts
        (:meth:`_register_at_start`, a resumed run under the checkpoint's id and name): a trainer built and never run
        leaves no row. A store whose ``create_run`` takes no ``run_id`` (it picks the id) is registered here, "idle"."""
        store, cfg = self.store, self.cfg
        if run_id is None and ckpt is not None:
            run_id = ckpt.get("run_id")
        saved = ckpt or {}
        row_name = name or saved.get("name") or saved.get("label") or self.label
        if store is not None and hasattr(store, "get_run") and _takes_keyword(store, "create_run", "run_id"):
            if run_id is not None and _store_has(store, run_id):  # (a known id of a new run is refused above)
                if ckpt is not None:  # the store follows the resumed run once it trains (not if it is refused)
                    self._follow = (cfg.to_dict(), int(ckpt["step"]))
                return str(run_id)
            self._registration = {"name": row_name, "own_id": run_id is None,
                                  "step": None if ckpt is None else int(ckpt["step"]),
                                  "resumed_id": None if ckpt is None else ckpt.get("run_id")}
            return str(run_id) if run_id is not None else uuid.uuid4().hex[:12]
        if run_id is not None and store is not None and hasattr(store, "get_run"):
            if not _store_has(store, run_id):  # resumed into a store that never saw the run (or a chosen id)
                try:
                    store.create_run(cfg.to_dict(), row_name, run_id=run_id)
                    self.registered_run = True
                except Exception:
                    # another trainer registered it meanwhile: a resumed run follows it as below, a new run under a
                    # chosen id is refused as if the store had held it from the start; any other error stands
                    if not _store_has(store, run_id):
                        raise
                    _refuse_known_run_id(store, run_id, ckpt)
            if not self.registered_run and ckpt is not None:  # the store follows the resumed run once it trains
                self._follow = (cfg.to_dict(), int(ckpt["step"]))  # (not if it is refused)
        if run_id is None and store is not None:
            run_id = str(store.create_run(cfg.to_dict(), name or self.label))
            self.registered_run = True
        return str(run_id) if run_id is not None else uuid.uuid4().hex[:12]

    def _register_at_start(self) -> None:
        """Register the run's row now that the run holds its folder and starts (:meth:`_register_run` left it for
        this). Another trainer that registered the id meanwhile (the same run resumed in another process) is followed
        by a resumed run of that id; a new run under a chosen id, or a resume given another run's id, is then refused
        (``ValueError``), as at construction (:func:`_refuse_known_run_id`)."""
        registration = self._registration
        if registration is None or self.store is None:
            return
        try:
            self.store.create_run(self.cfg.to_dict(), registration["name"], run_id=self.run_id)
        except Exception:
            if not _store_has(self.store, self.run_id):
                raise
            resumed = None if registration["step"] is None else {"run_id": registration["resumed_id"]}
            _refuse_known_run_id(self.store, self.run_id, resumed)
            self._follow = (self.cfg.to_dict(), registration["step"])
        else:
            self.registered_run = True
        self._registration = None

    def _follow_resumed_run(self) -> None:
        """A store that knows the resumed run takes its config and drops the metrics of the steps trained again, once
        (the run has claimed its folder and starts training)."""
        follow, self._follow = self._follow, None
        if follow is None or self.store is None:
            return
        config, step = follow
        if hasattr(self.store, "set_config"):
            self._store("set_config", self.run_id, config)
        if hasattr(self.store, "delete_metrics_after"):
            self._store("delete_metrics_after", self.run_id, step)

    def _build_data(self):
        from .model import build_data

        return build_data(self.cfg)

    def _delay_layers(self, all_layers: bool = False) -> list[DelayedLinear]:
        return [m for m in self.model.modules()
                if isinstance(m, DelayedLinear) and (all_layers or (m.learn_delays and not m.rounded))]

    def _build_optimizer(self, ckpt: dict[str, Any] | None = None) -> torch.optim.Optimizer:
        """The optimiser, with a parameter group for each of: the weights ("weights", with ``cfg.weight_decay``), the
        neuron layers' learned constants ("neurons": :func:`_neuron_constant_ids`), batch norm's scale and shift
        ("norm") and the delays' positions ("delays", at ``cfg.lr_delays``); only the weights are decayed. A resumed
        checkpoint saved with the neuron constants among the weights (:func:`_saved_without_neuron_group`) keeps that
        grouping, so that its optimiser state loads and the run goes on as it trained (warned where
        ``cfg.weight_decay`` decays them)."""
        cfg = self.cfg
        params = [p for p in self.model.parameters() if p.requires_grad]
        kinds = {"delays": {id(m.positions) for m in self._delay_layers() if isinstance(m.positions, nn.Parameter)},
                 "norm": {id(p) for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                          for p in m.parameters()},
                 "neurons": _neuron_constant_ids(self.model)}
        if any(id(p) in kinds["neurons"] for p in params) and _saved_without_neuron_group(ckpt):
            kinds["neurons"] = set()  # (the checkpoint's grouping: its optimiser state loads into no other)
            self._warn_decayed_neuron_constants()
        group_of = {id(p): next((k for k, ids in kinds.items() if id(p) in ids), "weights") for p in params}
        groups = []
        for name in ("weights", "neurons", "norm", "delays"):
            members = [p for p in params if group_of[id(p)] == name]
            if members:
                lr, _, decay = self._group_settings(name)
                groups.append({"params": members, "lr": lr, "weight_decay": decay, "name": name})
        if not groups:
            raise ValueError("the model has no trainable parameters")
        if cfg.optimizer == "adam":
            return torch.optim.Adam(groups, lr=cfg.lr, betas=ADAM_BETAS)
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=SGD_MOMENTUM)

    def _warn_decayed_neuron_constants(self) -> None:
        """Say (a ``UserWarning`` at the user's line) that this resumed run goes on decaying its neurons' learned
        constants, as the checkpoint's run did, where ``cfg.weight_decay`` > 0 (at 0 nothing is decayed)."""
        if not self.cfg.weight_decay > 0:
            return
        warnings.warn(f"Trainer: the checkpoint resumed was saved by an snnlab that applied weight_decay="
                      f"{self.cfg.weight_decay:g} to the neurons' learned constants too (tau_mem, threshold, an ALIF's "
                      "adaptation and tau_adapt), and its optimiser state loads only into that grouping: this run "
                      "goes on decaying them as it trained; start a new run to train them without weight decay",
                      UserWarning, stacklevel=user_stacklevel())

    def _group_settings(self, name: str | None) -> tuple[float, str, float]:
        """``(base rate, schedule, weight decay)`` of the parameter group ``name``: "weights", "neurons" (the neuron
        layers' learned constants) or "norm" (batch norm's scale and shift), those two without weight decay, or
        "delays" (the positions)."""
        cfg = self.cfg
        if name == "delays":
            return float(cfg.lr_delays), cfg.lr_delays_schedule, 0.0
        return float(cfg.lr), cfg.lr_schedule, float(cfg.weight_decay) if name == "weights" else 0.0

    def _reset_rates_to_config(self) -> None:
        """Each parameter group's rate, momentum and weight decay as :meth:`_build_optimizer` sets them."""
        for group in self.optimizer.param_groups:
            group["lr"], _, group["weight_decay"] = self._group_settings(group.get("name"))
            if "betas" in group:
                group["betas"] = (ADAM_BETAS[0], group["betas"][1])
            elif "momentum" in group:
                group["momentum"] = SGD_MOMENTUM

    def _scheduled(self) -> bool:
        return self.cfg.lr_schedule != "constant" or self.cfg.lr_delays_schedule != "constant"

    def _schedules_text(self) -> str:
        return f"lr_schedule={self.cfg.lr_schedule!r}, lr_delays_schedule={self.cfg.lr_delays_schedule!r}"

    def _batches_per_epoch(self) -> int | None:
        """Batches an epoch trains: the loader's length capped by ``max_batches_per_epoch`` (None: unknown)."""
        try:
            n = len(self.train_loader)
        except TypeError:
            n = None
        cap = self.cfg.max_batches_per_epoch
        return n if cap is None else (cap if n is None else min(n, cap))

    def _check_schedules_can_run(self) -> None:
        if self._scheduled() and not self._batches_per_epoch():
            raise ValueError(f"{self._schedules_text()} need the number of steps of the run: give a training loader "
                             "with a length, or set max_batches_per_epoch to the number of batches the loader yields "
                             "per epoch")

    def _schedule_learning_rates(self, batches_per_epoch: int) -> None:
        """Set each parameter group's rate for this step from ``cfg.lr_schedule`` / ``cfg.lr_delays_schedule``."""
        if not self._scheduled():
            return  # the optimiser's rates are left as they are
        total = int(self.cfg.epochs) * int(batches_per_epoch)
        for group in self.optimizer.param_groups:
            base, kind, _ = self._group_settings(group.get("name"))
            group["lr"] = base * lr_factor(kind, self.step, total)
            if kind == "one_cycle":  # the momentum cycles against the rate, as torch's OneCycleLR
                m = one_cycle_momentum(self.step, total)
                if "betas" in group:
                    group["betas"] = (m, group["betas"][1])
                elif "momentum" in group:
                    group["momentum"] = m

    def _count_hook(self, module, inputs, output) -> None:
        if self._counting:
            if not isinstance(output, torch.Tensor):  # (a tuple's first element is not known to be the spikes)
                name = next((n for n, m in self.model.named_modules() if m is module), "?")
                raise TypeError(f"Trainer: layer {name!r} ({type(module).__name__}) returned {type(output).__name__}, "
                                "not a tensor: a neuron layer (an LIF or a subclass) must return its spike tensor "
                                "[T, B, ...] alone (keep the membrane in last_membrane)")
            self._spike_counts.append(output.detach().sum(dtype=torch.float64))  # exact also for half spikes
            if self.cfg.spike_reg > 0:  # kept with their graph for the activity penalty
                self._spike_outputs.append(output)

    # ------------------------------------------------------------------------------ helpers
    def _params_finite(self) -> bool:
        ps = [p.detach() for p in self.model.parameters()]
        if not ps:
            return True
        return bool(torch.isfinite(torch.stack([p.float().sum() for p in ps])).all())

    def _diverged(self, what: str, value: float | None, epoch: int) -> TrainingDiverged:
        kind = "NaN" if value is None or math.isnan(value) else "infinite"
        where = f"at epoch {epoch + 1}/{self.cfg.epochs} step {self.step + 1}"
        keep = (f" The last good checkpoint ({self.checkpoint_path}) was kept." if self.checkpoint_path is not None
                and self.checkpoint_path.exists() else "")
        return TrainingDiverged(
            f"{what} became {kind} {where}; lower the learning rate (lr={self.cfg.lr:g}, e.g. try {self.cfg.lr / 10:g}"
            f"{', lr_delays=%g' % self.cfg.lr_delays if self._delay_layers() else ''}), or check the inputs and "
            f"threshold/tau_mem.{keep}")

    def evaluate(self, loader=None, max_batches: int | None = None) -> dict[str, Any]:
        """Evaluate on ``loader`` (default the test loader) with ``snnlab.metrics.evaluate``: at most ``max_batches``
        batches, by default ``cfg.eval_max_batches`` of the test loader and all of a loader you pass."""
        from snnlab.metrics import evaluate as metrics_evaluate

        mb = max_batches if max_batches is not None else self.cfg.eval_max_batches if loader is None else None
        loader = self.test_loader if loader is None else loader
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), forward_precision(self.cfg.precision, self.device):
                res = metrics_evaluate(self.model, loader, readout=self.cfg.readout, device=self.device, max_batches=mb)
        finally:
            self.model.train(was_training)
        return to_plain(dict(res))

    # ------------------------------------------------------------------------------ training
    def run(self, raise_errors: bool = True) -> dict[str, Any] | None:
        """Train in the calling thread until finished, stopped or failed; returns :attr:`result`.

        On failure the state becomes "failed", a "failed" event carries the message, and the
        error is re-raised when ``raise_errors`` (the background thread of :meth:`start` does not raise).
        :meth:`stop` stops gracefully, and then this returns None. It trains with gradients on and outside inference
        mode whatever the calling thread has set (``torch.set_grad_enabled(False)``, ``torch.inference_mode()``), as
        :meth:`start`'s thread does; evaluations run without gradients.

        Ctrl-C, in the main thread with Python's own handler and loaders without worker processes: the first one
        stops at the next step boundary, saves a checkpoint that resumes exactly, sets the state "stopped" and
        raises ``KeyboardInterrupt`` (whatever ``raise_errors``; if the run finished meanwhile, e.g. a Ctrl-C
        during its last evaluation, its result is returned). A second Ctrl-C interrupts at once: during an
        optimiser step, once the step is recorded, otherwise rolling the step in progress back (random states,
        batch-norm statistics), so the checkpoint still resumes exactly; while a stopping run saves its checkpoint
        it waits for the save (a checkpoint cut short would be lost), and the stop answers it. Elsewhere (loaders
        with worker processes, a program with its own handler) a ``KeyboardInterrupt`` rolls the step back in the
        same way, except inside the optimiser step: a handler that calls :meth:`interrupt` (as the CLI's does)
        waits for its end instead. An epoch's evaluation cut short this way is done again by the resume (or by
        calling :meth:`run` again), with the sigma that epoch trained with, before the next epoch trains.
        """
        with self._cond:  # (already running, e.g. in start()'s thread: refused before the claim, which is that run's
            self._check_can_run()  # and which the release below would otherwise take from it)
        self._claim_run_folder()  # one training at a time in a run folder (refused before any state changes)
        try:
            self._begin_running()
            self._phase, self._global_draws = "training", self._find_global_draws()  # (what it trains with now)
            # (counted as training in this process until the run ends, however: runs beside it are told, see
            # shared_randomness; marked as trained by this thread while running: an evaluation from another thread
            # warns, see eval_mode)
            with training_in_process(self, _meet), self._first_ctrl_c_stops() as asked, \
                    training_model(self.model, lambda: self.state == "running"):
                result = self._run_guarded(raise_errors)
        finally:
            self._end_running()
            self._release_run_folder()  # (after the checkpoint a stop or an interrupt saves)
            self._settle_store()  # the run-store writes that failed: once more, and a warning for what is missing
        if asked:
            if self.state == "stopped":  # stopped at a step boundary: end a loop over runs as Ctrl-C would
                raise KeyboardInterrupt
            self._forget_stop_request()  # the run finished before the stop came: nothing is left to stop
        return result

    def _run_guarded(self, raise_errors: bool) -> dict[str, Any] | None:
        try:
            # gradients on, outside inference mode, whatever the caller's thread has set (torch.set_grad_enabled(False)
            # left over from a notebook cell, a with torch.inference_mode() block): evaluations turn them off
            with torch.inference_mode(False), torch.enable_grad():
                return self._train()
        except KeyboardInterrupt:
            # (not when it came as the stop or the finish ended: the run is saved and reported)
            if self.state not in ("stopped", "finished"):
                self._on_stopped(partial=True, reason="interrupted")
            raise
        except BaseException as e:  # noqa: BLE001 - report every failure
            msg = str(e) if isinstance(e, TrainingDiverged) else f"{type(e).__name__}: {e}"
            self.error = msg
            self._set_state("failed")
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            if not isinstance(e, TrainingDiverged) and not raise_errors:  # (re-raised: its traceback shows once)
                log.error("training run %s failed:\n%s", self.run_id, tb)
            self._emit("failed", message=msg, error_type=type(e).__name__, traceback=tb,
                       checkpoint=str(self.checkpoint_path) if self.checkpoint_path and self.checkpoint_path.exists() else None)
            if self._follow is None:  # (a resumed run refused before it trained: the store keeps its row)
                self._store("set_status", self.run_id, "failed", msg)
            if raise_errors:
                raise
            return None

    def _claim_run_folder(self) -> None:
        """Take ``run_dir`` for a run, once (:meth:`start` takes it before its thread starts, :meth:`run` when called
        directly): its lock (:class:`~snnlab.training.run_folder.RunFolderBusy` while another training holds it),
        a check that its checkpoint is the one this trainer last saved or loaded
        (:class:`~snnlab.training.run_folder.RunFolderTaken`, a ``FileExistsError``, when another trainer, or an
        older one of this run, saved there since, unless ``overwrite``), then the run's ``config.json``. When it
        refuses, the folder and the trainer are left as they were (it may run later), and the refusal is recorded
        (:meth:`_refused`). Once the run holds the folder, its store row is registered (:meth:`_register_at_start`).
        The folder's lock is taken here once; the probes before (:func:`~snnlab.training.run_folder.
        refuse_busy_run_folder`) only look at it."""
        if self._folder_claim is not None:
            return
        try:
            with contextlib.ExitStack() as claim:  # (released here if the check refuses)
                if self.run_dir is not None:
                    check_run_folder(self.run_dir)
                    self.run_dir.mkdir(parents=True, exist_ok=True)  # (where locks are off too: config.json goes there)
                claim.enter_context(run_folder_lock(self.run_dir, self._unlocked))
                self._refuse_checkpoint_saved_since()
                self._register_at_start()
                self._write_config()
                self._folder_claim = claim.pop_all()  # kept until _release_run_folder
        except Exception as exc:
            self._refused(exc)
            raise

    def _write_config(self) -> None:
        """Write ``run_dir/config.json`` (atomically), once the run holds the folder: a trainer refused there never
        replaces the configuration beside another run's checkpoint."""
        if self.run_dir is None:
            return
        tmp = self.run_dir / CONFIG_TMP_NAME
        tmp.write_text(self.cfg.to_json())
        os.replace(tmp, self.run_dir / CONFIG_NAME)

    def _unlocked(self, run_dir: str | os.PathLike, exc: OSError) -> None:
        """The run folder's file system refuses locks: said once per trainer (its construction and each run's claim
        try the lock), at the user's line."""
        if not self._warned_unlocked:
            self._warned_unlocked = True
            warn_unlocked(run_dir, exc)

    def _refused(self, exc: BaseException) -> None:
        """A run refused its folder (or its row) before it trained: recorded in the store as a "failed" row.

        A new run whose id this trainer picked (no other trainer writes it) gets its row now, "failed" with the
        refusal, written once (never "idle" first). A run under an id another trainer may train under (a resumed
        run's, a chosen ``run_id``) gets no row: the other trainer's row is its own to write. With a store that
        registered the run at construction, the row ends "failed" if the trainer never trained and the row is still
        as it left it ("idle"); a resumed run's row, or one another trainer of the run moved on meanwhile (e.g. set
        "running"), stays as it is. A store whose ``set_status`` takes ``only_if``
        (:class:`~snnlab.experiments.store.RunStore`) checks and writes in one step; another store is read, then
        written."""
        if self.state != "idle" or self.store is None:
            return
        message = f"not started: {type(exc).__name__}: {exc}"
        registration = self._registration
        if registration is not None:
            if registration["own_id"]:
                self._registration = None
                self.registered_run = True
                self._store("create_run", self.cfg.to_dict(), registration["name"], run_id=self.run_id)
                self._store("set_status", self.run_id, "failed", message)
            return
        if not self.registered_run:
            return
        if _takes_keyword(self.store, "set_status", "only_if"):
            # ("created": a row registered at the claim, which then failed, e.g. writing config.json)
            self._store("set_status", self.run_id, "failed", message, only_if=("created", "idle"))
            return
        if not hasattr(self.store, "get_run"):
            return
        try:
            status = self.store.get_run(self.run_id).get("status")
        except Exception:  # noqa: BLE001 - the store's errors are never fatal (a deleted row: nothing to mark)
            return
        if status in ("created", "idle"):
            self._store("set_status", self.run_id, "failed", message)

    def _release_run_folder(self) -> None:
        claim, self._folder_claim = self._folder_claim, None
        if claim is not None:
            claim.close()

    def _refuse_checkpoint_saved_since(self) -> None:
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return
        if self._overwrite and self._save_id is None:  # asked to replace another run's checkpoint
            return
        try:
            ck = load_checkpoint(self.checkpoint_path, mmap=True, history=False)  # its save id: no history decoded
        except Exception:  # noqa: BLE001 - an unreadable file is replaced, as before
            return
        if ck.get("save_id") != self._save_id:
            whose = "another run's" if ck.get("run_id") != self.run_id else "a later save of this run's"
            raise RunFolderTaken(
                f"run_dir {self.run_dir} now holds {whose} checkpoint (run {ck.get('run_id')}, step {ck.get('step')}), "
                "saved there since this trainer last saved or loaded it; training on would replace it: resume from "
                "it (Trainer.resume_from), give this run another run_dir, or build the trainer with overwrite=True",
                run_id=None if ck.get("run_id") is None else str(ck.get("run_id")))

    def _train(self) -> dict[str, Any] | None:
        cfg = self.cfg
        self._check_schedules_can_run()
        self._follow_resumed_run()  # (the resume is not refused: the store follows it now)
        n_params = sum(p.numel() for p in self.model.parameters())
        self._emit("started", config=cfg.to_dict(), label=self.label, name=self.name, device=str(self.device),
                   n_parameters=int(n_params), start_epoch=int(self.epoch), epochs=int(cfg.epochs))
        self._store("set_status", self.run_id, "running", None)
        self._warn_spike_reg_unused()
        self._tell_shared_randomness()  # (runs that trained beside this one when it started, or when it was built)
        self._start_step = self.step
        ended = False  # whether this run ended an epoch: the model trained since the checkpoint's result (if any)
        if self._pending_epoch_end is not None:  # an epoch trained, whose evaluation a Ctrl-C cut short: end it first
            pending = self._pending_epoch_end
            self._end_epoch(int(pending["epoch"]), pending["summary"], pending.get("sigmas"))
            ended = True
        for epoch in range(self.epoch, cfg.epochs):
            t0 = time.time()
            self._schedule_sigma_to(epoch)
            summary = self._train_epoch(epoch)
            if summary is None:
                self._on_stopped(partial=True, reason=self._stop_reason or "stop requested")
                return None
            if self.schedule is not None:  # the sigma the epoch trained with, and is evaluated with in its end
                summary["sigma"] = self.schedule.sigma_at(epoch)
            summary["epoch_time_s"] = time.time() - t0
            # the epoch is trained: a stop from here on resumes with the next one, after this one's end (evaluation and
            # record), which stays pending until done (all set at once: no call between them where a Ctrl-C could
            # stop the run with the epoch counted and its progress still to resume, or its end not pending)
            # (with each delay layer's sigma: a resume with other epochs evaluates it with these, not the new schedule's)
            sigmas = [float(layer.sigma) for layer in self.schedule.layers] if self.schedule is not None else None
            self.epoch, self._epoch_progress, self._pending_epoch_end = epoch + 1, None, {
                "epoch": epoch, "summary": summary, "sigmas": sigmas}
            self._end_epoch(epoch, summary, sigmas)
        return self._finish(untrained=self.step == self._start_step and not ended)

    def _end_epoch(self, epoch: int, summary: dict[str, Any], sigmas: list[float] | None = None) -> None:
        """The end of the trained (and counted) epoch ``epoch``: its evaluation when due, with the sigma it trained
        with (``sigmas``: each delay layer's, when known), its record (history, events, store), the sigma schedule's
        step and the checkpoint.

        A ``KeyboardInterrupt`` in the evaluation leaves the end pending (:attr:`_pending_epoch_end`): the stop's
        checkpoint holds it, and the resumed run (or :meth:`run` again) starts with it, so the run's history, store
        rows and results are those of the run never interrupted. An :meth:`interrupt` (a second Ctrl-C) during the
        record waits for the record and the checkpoint: a record cut short could be neither kept nor done again."""
        self._schedule_sigma_to(epoch)  # (there already, but for a run resumed with the end pending: one epoch on)
        if self.schedule is not None and sigmas is not None and len(sigmas) == len(self.schedule.layers):
            for layer, sigma in zip(self.schedule.layers, sigmas):  # the epoch's own (a resume may change epochs)
                layer.sigma = float(sigma)
        ev = None
        if (epoch + 1) % self.cfg.eval_every == 0 or epoch + 1 == self.cfg.epochs:
            ev = self._evaluate_epoch()
            self.last_eval = ev
        self._pending_epoch_end = None  # (before the record: a Ctrl-C in it never records the epoch twice)
        # an interrupt() meanwhile waits for the record and the save, then interrupts (the next run starts after them)
        with self._interrupts_wait(then_raise=True):
            self._record_epoch(epoch, summary, ev)
            if self.schedule is not None:  # the next epoch's sigma, once this epoch is evaluated with its own
                self.schedule.step()
            self.save_checkpoint()

    def _evaluate_epoch(self) -> dict[str, Any]:
        """:meth:`evaluate` for an epoch's end; a ``KeyboardInterrupt`` in it puts the global random states and the
        test loader's generators back as they were before it (a resume evaluates anew from there)."""
        rng, test_generators = self._global_rng_state(), loader_states(self.test_loader)
        try:
            return self.evaluate()
        except KeyboardInterrupt:
            self.last_eval = None  # not the previous epoch's: the run's final result must be evaluated anew
            self._set_global_rng_state(rng)
            restore_loader_states(self.test_loader, test_generators)
            raise

    def _schedule_sigma_to(self, epoch: int) -> None:
        """Set the delays' sigma schedule to ``epoch``, the epoch about to train. It is there already, but for a run
        stopped in an epoch's end after the epoch was counted and before the schedule's step (in or after the
        epoch's evaluation, which uses the sigma the epoch trained with): its checkpoint, or this trainer run again,
        holds the schedule one epoch behind."""
        if self.schedule is not None and self.schedule.epoch != epoch:
            self.schedule.epoch = int(epoch)
            self.schedule._apply()

    def _record_epoch(self, epoch: int, summary: dict[str, Any], ev: dict[str, Any] | None) -> None:
        """The epoch's record (and its evaluation's, if any) into the history, the events and the store."""
        rec = {"kind": "epoch", "epoch": epoch, "step": self.step, **summary}
        if ev is not None:
            rec.update({f"test_{k}": v for k, v in ev.items()})
        self.history.append(rec)
        self._emit("epoch", epoch=epoch, **{k: v for k, v in rec.items() if k not in ("kind", "epoch", "step")})
        self._store("log_metrics", self.run_id, self.step, epoch, scalar_metrics("", summary))
        if ev is not None:
            self.history.append({"kind": "evaluation", "epoch": epoch, "step": self.step, "phase": "epoch", **ev})
            self._emit("evaluation", epoch=epoch, phase="epoch", **ev)
            self._log_eval(epoch, scalar_metrics("test_", ev))

    def _train_epoch(self, epoch: int) -> dict[str, float] | None:
        """One epoch; returns its summary, or None when a stop was requested."""
        from snnlab.training.progress import progress_bar  # (a bar whose reader has gone goes quiet)

        cfg, model, opt = self.cfg, self.model, self.optimizer
        model.train()
        delay_layers = self._delay_layers()
        modules = list(model.modules())
        bounded_layers = list(neuron_layers(model).values())  # (clamp_parameters_ after steps)
        from snnlab.metrics import check_batch, input_dtype, model_input, model_output  # (pandas: at training, not at import)
        from snnlab.metrics._common import check_labels

        in_dtype = input_dtype(model)
        n_batches = self._batches_per_epoch()
        # Ctrl-C reaches only the main thread: a background run (start()) never needs the step snapshots
        interruptible = threading.current_thread() is threading.main_thread()
        norm_buffers = batch_norm_buffers(model)
        resume, self._resume_progress = self._resume_progress, None
        sums = dict.fromkeys(STEP_METRICS, 0.0)
        n_seen = 0
        done = int(resume["batches_done"]) if resume else 0
        if resume:
            sums.update({k: float(v) for k, v in resume["sums"].items()})
            n_seen = int(resume["n_seen"])
        bar = progress_bar(total=n_batches, initial=done, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                           disable=not self.progress, leave=False)
        self._epoch_progress = {"batches_done": done, "sums": dict(sums), "n_seen": n_seen,
                                "loader_generators": resume["loader_generators"] if resume else None,
                                "global_rng": resume.get("global_rng") if resume else None}
        try:
            it = None
            i = done - 1
            while True:
                i += 1
                if cfg.max_batches_per_epoch is not None and i >= cfg.max_batches_per_epoch:
                    break
                # honour pause/stop *before* touching the loader, so a stopped run's RNG states are
                # exactly those at the step boundary (bit-exact resume)
                if self._control():
                    return None
                # each step in train mode: an evaluation from another thread (which sets the shared model's flag, and
                # restores it when it ends) affects at most the steps it overlaps, not the rest of the epoch (a check
                # first: ~2 us, where train() costs ~0.1 ms on the dcls_shd preset's model)
                if not all(m.training for m in modules):
                    model.train()
                if interruptible:  # what a step cut short by Ctrl-C is rolled back to
                    self._boundary = step_boundary(norm_buffers, cuda=self.device.type == "cuda")
                if it is None:
                    it = self._epoch_iterator(resume)
                try:
                    batch = next(it)
                except StopIteration:
                    break
                checked = check_batch(batch, "Trainer", i)  # the checks evaluate() makes
                if checked is None:  # an empty batch: nothing to train on; it counts as done (as evaluate counts it)
                    self._warn_empty_batch(i, epoch)
                    self._epoch_progress.update(batches_done=i + 1)
                    bar.update(1)
                    self._boundary = None
                    continue
                x, y_given = checked
                # the model's floating dtype (integer event frames, float32 data for a float64 model), as evaluate
                x = model_input(x.to(self.device, non_blocking=True), self.device, in_dtype)
                y = y_given.to(self.device, non_blocking=True)
                if x.is_inference() or y.is_inference():  # (data made under inference_mode: autograd cannot save it)
                    x, y = x.clone(), y.clone()
                self._spike_counts, self._spike_outputs = [], []
                self._counting = True
                try:
                    # each batch: whole sequences from rest, whatever the layers' carry_state (a stream the model
                    # carried continues after the step); a check first: ~1 us, where the pass over the modules costs
                    # ~10 us on a small model
                    suspended = (carry_suspended(model) if any(m.carry_state for m in bounded_layers)
                                 else contextlib.nullcontext())
                    with forward_precision(cfg.precision, self.device), suspended:
                        # ((output, extras) gives output, as evaluate() takes it); the first step refuses a spike
                        # readout of an LI's membrane before any update
                        out = model_output(model, x, cfg.readout if self.step == 0 else None, "Trainer")
                        lg = logits(out, cfg.readout)
                        # labels within the output's classes, as evaluate checks them (a min / max of the labels,
                        # on the loader's device: the CPU, without a wait for the GPU)
                        check_labels(y_given, "Trainer", f"y (batch {i})", n_classes=int(lg.shape[-1]))
                        loss = self.loss_fn(lg, y)
                finally:
                    self._counting = False
                loss_v = float(loss.detach())
                if not math.isfinite(loss_v):
                    raise self._diverged("loss", loss_v, epoch)
                bs = int(y.shape[0])
                acc = float((decide(lg.detach(), tie_tolerance(cfg.readout, out.shape[0], lg.dtype)) == y).float().mean())
                spikes = float(torch.stack(self._spike_counts).sum()) / bs if self._spike_counts else 0.0
                self._spike_counts = []
                objective = loss
                if self._spike_outputs:  # spike_reg: the task loss plus the weighted activity penalty
                    objective = loss + float(cfg.spike_reg) * spike_rate_penalty(self._spike_outputs)
                    self._spike_outputs = []
                opt.zero_grad(set_to_none=True)
                objective.backward()
                self._schedule_learning_rates(n_batches)
                self._in_optimizer_step = True  # from the update to its record, interrupt() waits
                try:
                    opt.step()
                    for layer in delay_layers:
                        layer.clamp_positions_()
                    for layer in bounded_layers:  # learned tau / adaptation back into range (else stuck past it)
                        layer.clamp_parameters_()
                    if not self._params_finite():
                        raise self._diverged("the weights", None, epoch)
                    self.step += 1  # the step is done: from here a checkpoint counts it
                    values = dict(zip(STEP_METRICS, (loss_v, acc, spikes), strict=True))
                    rec = {"kind": "step", "epoch": epoch, "step": self.step, "batch": i, **values,
                           "lr": float(opt.param_groups[0]["lr"]), "time": time.time()}
                    for k in sums:
                        sums[k] += rec[k] * bs
                    n_seen += bs
                    self._epoch_progress.update(batches_done=i + 1, sums=dict(sums), n_seen=n_seen)
                    self.history.append(rec)
                    self._boundary = None
                finally:
                    self._in_optimizer_step = False
                self._emit("step", epoch=epoch, batch=i, n_batches=n_batches, **values, lr=rec["lr"])
                if len(self._shared_with) > self._shared_told:  # another run started beside this one
                    self._tell_shared_randomness()
                if self.step % self.log_every == 0:
                    self._store("log_metrics", self.run_id, self.step, epoch, values)
                bar.update(1)
                bar.set_postfix(loss=f"{loss_v:.3f}", acc=f"{acc:.2f}")
                if self._pending_interrupt is not None:  # a Ctrl-C that came during the optimiser step
                    pending, self._pending_interrupt = self._pending_interrupt, None
                    raise pending
        finally:
            bar.close()
        self._boundary = None
        if (self._scheduled() and n_batches and self._epoch_progress["batches_done"] < n_batches
                and not self._warned_short):
            self._warned_short = True
            warnings.warn(f"epoch {epoch + 1} ended after {self._epoch_progress['batches_done']} of the {n_batches} "
                          f"batches the learning-rate schedules assume ({self._schedules_text()}), so they will not "
                          "reach their end; set max_batches_per_epoch to the batches the loader yields per epoch",
                          RuntimeWarning, stacklevel=2)
        if n_seen == 0:
            why = ("every batch of it was empty (batch size 0)" if self._epoch_progress["batches_done"] > 0 else
                   "the training loader yielded no batches")
            raise ValueError(f"Trainer: epoch {epoch + 1} trained on no samples: {why}")
        n = max(n_seen, 1)
        return {f"train_{k}": v / n for k, v in sums.items()} | {"train_samples": n_seen}

    def _warn_spike_reg_unused(self) -> None:
        """Warn once per trainer when ``cfg.spike_reg > 0`` has no layer to act on: the penalty counts the spikes of
        snnlab LIF layers (and subclasses), and the model has none."""
        if self._warned_spike_reg or not self.cfg.spike_reg > 0:
            return
        if any(isinstance(m, LIF) for m in self.model.modules()):
            return
        self._warned_spike_reg = True
        warnings.warn(f"Trainer: spike_reg={self.cfg.spike_reg:g} does nothing here: the activity penalty counts the "
                      "spikes of snnlab.LIF layers (and subclasses), and the model has none; make the neuron layers "
                      "subclass snnlab.LIF (their spikes are then penalised), or set spike_reg=0", UserWarning,
                      stacklevel=user_stacklevel())

    def _warn_empty_batch(self, index: int, epoch: int) -> None:
        """Warn once per run, under a learning-rate schedule, that an empty training batch is skipped (the schedule
        counts it as a step)."""
        if self._warned_empty or not self._scheduled():
            return
        self._warned_empty = True
        warnings.warn(f"Trainer: batch {index} of epoch {epoch + 1} is empty (batch size 0) and is skipped; the "
                      f"learning-rate schedules ({self._schedules_text()}) count len(loader) batches per epoch, so "
                      "they will not reach their end", RuntimeWarning, stacklevel=user_stacklevel())

    def _epoch_iterator(self, resume: dict[str, Any] | None):
        """``iter(train_loader)``, recording the loader's generator states and the global random states at the
        epoch's start (a loader without a generator of its own, e.g. ``DataLoader(ds, shuffle=True)``, draws its
        order from torch's global generator when the iteration starts).

        Resuming inside an epoch: the loader's generators and the global random states are set back to the epoch's
        start, the batches already trained are drawn again and dropped (the same order, the same encoder draws), and
        the global random states are then left as the checkpoint had them. A checkpoint written before the epoch's
        global states were kept, of a loader that shuffles with the global generator, resumes on another order: warned.
        """
        if resume is None:
            self._epoch_progress["loader_generators"] = loader_states(self.train_loader)
            self._epoch_progress["global_rng"] = self._global_rng_state()
            return iter(self.train_loader)
        restore_loader_states(self.train_loader, resume.get("loader_generators"))
        rng = self._global_rng_state()
        start = resume.get("global_rng")
        if start:
            self._set_global_rng_state(start)
        elif int(resume["batches_done"]) > 0 and shuffles_with_global_rng(self.train_loader):
            warnings.warn("Trainer: the checkpoint was saved inside an epoch by an snnlab version that did not keep "
                          "the global random state at the epoch's start, and the training loader may draw from it (a shuffle "
                          "without a generator= of its own, a sampler or an iterable dataset of your own, worker "
                          "processes seeded from torch's generator): the rest of this epoch may be drawn from another "
                          "order (some samples twice, some not at all) or with other draws; later epochs are exact. "
                          "Give the DataLoader generator=torch.Generator().manual_seed(...) (and samplers that use it) "
                          "for exact resumes of any checkpoint",
                          UserWarning, stacklevel=user_stacklevel())
        try:
            it = iter(self.train_loader)
            for _ in range(int(resume["batches_done"])):
                next(it, None)
        finally:
            self._set_global_rng_state(rng)
        return it

    def _finish(self, untrained: bool) -> dict[str, Any]:
        """The run's end: its final (and rounded) evaluation, summary, checkpoint and report. ``untrained``: resumed
        with nothing left to train, not even a pending epoch end (the checkpoint's result, if any, is this model's)."""
        done = self.result or {}
        if self._delays_rounded and untrained and done.get("rounded") is not None:
            self._write_summary(done)  # (again: a store that missed it gets it)
            with self._interrupts_wait(then_raise=False):
                return self._mark_finished()  # the rounded run's result stands
        if self._delays_rounded and untrained and done.get("final") is not None:
            final = done["final"]  # rounded, but its evaluation was cut short: only that is left
            rounded = self._evaluate_rounded()
        else:
            final = self.last_eval if self.last_eval is not None else self.evaluate()
            self.last_eval = final
            rounded = final if self._delays_rounded else None  # trained on after rounding: final is the rounded model
            layers = self._delay_layers()
            if layers:
                for layer in layers:
                    layer.round_delays()
                self._delays_rounded = True
                self.result = {"final": final, "rounded": None}  # what a stop in the next evaluation resumes from
                rounded = self._evaluate_rounded()
        self.result = {"final": final, "rounded": rounded}
        self._write_summary(self.result)
        # the run is trained and evaluated: a Ctrl-C now waits for its checkpoint and its report, and the run's end
        # answers it (its result is returned)
        with self._interrupts_wait(then_raise=False):
            self.save_checkpoint(finished=True)
            return self._mark_finished()

    def _write_summary(self, result: dict[str, Any]) -> None:
        """The run's summary in the store, of its ``result`` (``{"final": ..., "rounded": ...}``): the numbers of the
        model as deployed (:func:`deployed_summary`: marked ``"delays_rounded": True`` where the run learned delays),
        ``"shared_randomness": True`` with ``"shared_randomness_with"`` (the other runs' ids) where
        :attr:`shared_randomness`, and how it ran, ``"runtime"`` (:meth:`_runtime_record`)."""
        self._tell_shared_randomness()
        if self.store is not None and hasattr(self.store, "set_summary"):
            shared = self.shared_randomness_with
            note = {"shared_randomness": True, "shared_randomness_with": list(shared)} if shared else {}
            self._store("set_summary", self.run_id,
                        deployed_summary(result) | note | {"runtime": self._runtime_record()})

    def _runtime_record(self) -> dict[str, Any]:
        """How the run ran, for its store summary: the torch CPU threads, the device it used (``device="auto"``
        resolved: ``"cpu"``, ``"cuda:0"``...) and the torch and snnlab versions (a run repeats bit for bit only with
        the same)."""
        import snnlab

        device = self.device
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return {"device": str(device), "torch_threads": int(torch.get_num_threads()),
                "torch_version": str(torch.__version__), "snnlab_version": snnlab.__version__}  # (not TorchVersion)

    def _evaluate_rounded(self) -> dict[str, Any]:
        """Evaluate the model with its rounded (integer) delays and record it as the "rounded" evaluation."""
        rounded = self.evaluate()
        last_epoch = max(self.epoch - 1, 0)
        self.history.append({"kind": "evaluation", "epoch": last_epoch, "step": self.step, "phase": "rounded",
                             **rounded})
        self._emit("evaluation", epoch=last_epoch, phase="rounded", **rounded)
        self._log_eval(last_epoch, scalar_metrics("rounded_test_", rounded))
        return rounded

    def _mark_finished(self) -> dict[str, Any]:
        self._set_state("finished")
        self._emit("finished", result=self.result)
        shared = self.shared_randomness_with
        note = (f"shared torch's global random generators with run(s) {', '.join(shared)} of its process: its result "
                "does not repeat bit for bit from its seed" if shared else None)
        self._store("set_status", self.run_id, "finished", note)
        return self.result

    def _on_stopped(self, partial: bool, reason: str) -> None:
        """Save the stopped run's checkpoint and report the stop; a Ctrl-C meanwhile waits for its end and is then
        dropped (the run it would stop is stopped).

        A checkpoint that cannot be saved is logged, and the store's status says so: "stopped" with the message that
        resuming continues from the run's earlier checkpoint, or "failed" (no checkpoint: nothing to resume). A
        ``KeyboardInterrupt`` that cuts the save short without :meth:`interrupt` (no handler of snnlab's: loaders with
        worker processes) is such a failure too, reported, then raised."""
        self._tell_shared_randomness(warn=False)  # (into the checkpoint's history; never raised while stopping)
        with self._interrupts_wait(then_raise=False):
            self._roll_back_to_boundary()
            self._pending_interrupt = None
            # run() again on this trainer continues exactly where the checkpoint would
            self._resume_progress = self._resumable(self._epoch_progress) if partial else None
            path, error, cut = None, None, None
            try:
                path = self.save_checkpoint(partial_epoch=partial)
            except Exception as e:  # noqa: BLE001 - the run is stopped all the same; the store is told
                error = f"{type(e).__name__}: {e}"
                log.exception("could not save the checkpoint of stopped run %s", self.run_id)
            except BaseException as e:  # a Ctrl-C that interrupt() did not hold back: told, then raised
                error, cut = f"{type(e).__name__}: the save was interrupted", e
            finally:  # stopped even if the saving fails (the previous checkpoint stays whole: saves are atomic)
                self._mark_stopped()
            self._emit("stopped", reason=reason, checkpoint=str(path) if path else None)
            if error is None:
                self._store("set_status", self.run_id, "stopped", reason)
            elif self._save_id is not None:  # this trainer's earlier save is still there (a save replaces it whole)
                self._store("set_status", self.run_id, "stopped",
                            f"{reason}; the checkpoint of this stop could not be saved ({error}): resuming continues "
                            f"from the run's earlier checkpoint {self.checkpoint_path}")
            else:
                self._store("set_status", self.run_id, "failed",
                            f"{reason}; no checkpoint was saved ({error}), so the run cannot be resumed")
            if cut is not None:
                raise cut

    # ------------------------------------------------------------------------------ runs beside this one
    @property
    def shared_randomness(self) -> bool:
        """Whether this run shared torch's (and NumPy's, Python's) global random generators with another run of its
        process, so that its result may not repeat bit for bit from its seed: another :class:`Trainer` trained while
        this one trained and one of the two may draw from them (dropout, unseeded noise or spike masks, a loader
        shuffling with the global generator, or a part whose draws cannot be told: a module class, dataset, collate
        or loss function of your own; :func:`~snnlab.training.runtime.global_draws`), or one was built (it seeds
        them and draws its initial weights: a trainer being built is flagged beside any other, a training run beside
        one being built where it draws). Event subscribers are not looked at: snnlab's put back what they draw.
        Said once per trainer by a ``RuntimeWarning`` naming the other runs, and recorded in :attr:`history`
        (``"shared_randomness"`` records: kept by its checkpoints, read back by a resume), the store's summary
        (``"shared_randomness": True``, ``"shared_randomness_with"``) and the finished status's message. Train one run at a time in a process, or each in its own (``snnlab sweep`` trains its runs in a
        process pool). :attr:`shared_randomness_with` names the other runs.

        Example:
            >>> from snnlab.training import ExperimentConfig
            >>> tr = Trainer(ExperimentConfig(hidden=[8], epochs=1, max_batches_per_epoch=1), progress=False)
            >>> tr.shared_randomness, tr.shared_randomness_with
            (False, ())
        """
        return bool(self._shared_with)

    @property
    def shared_randomness_with(self) -> tuple[str, ...]:
        """The ids of the runs this one shared the global random generators with (see :attr:`shared_randomness`)."""
        return tuple(_ref_text(ref) for ref, _ in list(self._shared_with))

    def _find_global_draws(self) -> list[str]:
        """What of this run may draw from the global random generators (:func:`~snnlab.training.runtime.global_draws`
        of its model, loaders and loss function)."""
        return global_draws(self.model, (("training", self.train_loader), ("test", self.test_loader)),
                            (("the loss function", self.loss_fn),))

    def _tell_shared_randomness(self, warn: bool = True) -> None:
        """In the run's thread: record the runs met since the last call in :attr:`history`, and (``warn``) say it
        with a ``RuntimeWarning``, once per trainer (:attr:`shared_randomness`)."""
        met = list(self._shared_with)[self._shared_told:]
        if not met:
            return
        self._shared_told += len(met)
        draws = sorted({why for _, whys in met for why in whys})
        others = [_ref_text(ref) for ref, _ in met]
        self.history.append({"kind": "shared_randomness", "epoch": int(self.epoch), "step": int(self.step),
                             "with": others, "draws": draws, "time": time.time()})
        if not warn or self._warned_shared:
            return
        self._warned_shared = True
        shown = "; ".join(draws[:3]) + (f"; and {len(draws) - 3} more" if len(draws) > 3 else "")
        warnings.warn(f"Trainer: run {self.run_id} shares torch's global random generators with run(s) "
                      f"{', '.join(others)}, trained or built in this process while this run was built or trained, "
                      f"and draws from them may have moved ({shown}): the result will not repeat bit for bit from its "
                      "seed. Train one run at a time, or each in a process of its own (e.g. snnlab sweep, whose runs "
                      "train in a process pool); trainer.shared_randomness, its history and its store summary record "
                      "this", RuntimeWarning, stacklevel=user_stacklevel())

    def history_frame(self, kind: str | None = None):
        """:attr:`history` as a pandas DataFrame (optionally only records of ``kind``)."""
        return self.history.frame(kind)

    def __repr__(self) -> str:
        return (f"Trainer(run_id={self.run_id!r}, state={self.state!r}, epoch={self.epoch}/{self.cfg.epochs}, "
                f"step={self.step}, label={self.label!r})")
