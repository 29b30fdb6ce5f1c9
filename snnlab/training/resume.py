"""Checkpointing a run and resuming it exactly: what a checkpoint holds, and how a trainer is set back to it.

* :func:`refuse_foreign_checkpoint` / :func:`load_resume`: the check and the loading that come before a
  :class:`~snnlab.training.Trainer` is built.
* :data:`FIXED_ON_RESUME` / :func:`resume_conflicts` / :func:`check_resume_config`: the one rule of what a resumed run
  may change (the Trainer, ``snnlab train --resume`` and sweeps resuming their runs all apply it): everything but the
  settings that shape the model's parameters (or what they mean) or the optimiser's state, which the checkpoint
  holds, and ``epochs`` only down to the epochs already trained (:func:`check_resume_epochs`).
* :func:`warn_other_threads` / :func:`checkpoint_threads`: a resume on another torch thread count than its run
  trained with does not repeat it bit for bit (warned; :func:`other_threads_said` where the caller said so).
* :func:`trained_epochs` / :func:`position_text`: how far a checkpoint's run got, in words that count epochs from 1
  as the progress bar does (the checkpoint's own ``epoch`` counts the complete epochs).
* :class:`ResumeMixin`: the trainer's :meth:`~ResumeMixin.checkpoint_state`, :meth:`~ResumeMixin.save_checkpoint`,
  :meth:`~ResumeMixin.resume_from`, its restoring from a checkpoint and the rollback of a step cut short.

The file format (atomic writes, plain types and tensors) is :mod:`snnlab.training.checkpoint`'s.

Example:
    >>> import tempfile
    >>> from snnlab.training import ExperimentConfig, Trainer
    >>> cfg = ExperimentConfig(hidden=[16], epochs=1, max_batches_per_epoch=2, eval_max_batches=1)
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = Trainer(cfg, run_dir, progress=False).run()
    >>> longer = Trainer.resume_from(run_dir, cfg.copy(epochs=2), progress=False)   # one more epoch
    >>> longer.epoch, longer.step, longer.checkpoint_path.name == CHECKPOINT_NAME
    (1, 2, True)
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import uuid
import time
import warnings
from pathlib import Path
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, TypeVar

import torch

from snnlab.core.validation import user_stacklevel
from snnlab.data.loader_rng import loader_states, restore_loader_states

from .checkpoint import (HISTORY_KEY, CheckpointError, encode_history, load_checkpoint,
                         save_checkpoint, to_plain)
from .config import ConfigError, ExperimentConfig, dataset_shape
from .interrupts import global_rng_state, roll_back, set_global_rng_state
from .records import History
# (the rule of what a resume keeps, torch-free there: ``snnlab train --help`` states it)
from .resume_rule import FIXED_ON_RESUME, INPUT_PART, OPTIMIZER_PART, SEED_PART, WHERE_IT_RUNS, fixed_on_resume_text
from .run_folder import CHECKPOINT_NAME, RunFolderTaken

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "refuse_foreign_checkpoint", "load_resume", "ResumeMixin",
           "FIXED_ON_RESUME", "ResumeConfigError", "resume_conflicts", "check_resume_config", "fixed_on_resume_text",
           "check_resume_epochs", "trained_epochs", "batches_into_epoch", "position_text", "WHERE_IT_RUNS",
           "checkpoint_threads", "warn_other_threads", "other_threads_said"]

log = logging.getLogger("snnlab.training.trainer")  # the Trainer's messages keep the logger they always had

CHECKPOINT_FORMAT = "snnlab-checkpoint-v1"

_Run = TypeVar("_Run", bound="ResumeMixin")


class ResumeConfigError(CheckpointError, ConfigError):
    """A resume with a configuration whose model or optimiser the checkpoint does not fit (see
    :data:`FIXED_ON_RESUME`); a :class:`CheckpointError` and a :class:`ConfigError`."""


def _layout(cfg: ExperimentConfig) -> dict[str, Any]:
    """The value of each part of :data:`FIXED_ON_RESUME` for ``cfg`` (None where it cannot be told: a bad value that
    validation reports)."""
    from snnlab.core.readout import SPIKE_READOUTS

    try:
        shape: Any = dataset_shape(cfg)
    except (TypeError, ValueError):
        shape = None
    delay_range = int(cfg.max_delay) if cfg.delays else None  # (without delays it sets nothing: not compared)
    parts = [shape, [int(h) for h in cfg.hidden], bool(cfg.delays), delay_range, bool(cfg.recurrent),
             cfg.adaptation > 0, bool(cfg.recurrent) or cfg.tau_mem_cv > 0, cfg.tau_syn is not None,
             bool(cfg.learn_tau), bool(cfg.learn_threshold), bool(cfg.batch_norm), cfg.readout in SPIKE_READOUTS,
             cfg.optimizer, int(cfg.seed)]
    return dict(zip(FIXED_ON_RESUME, parts, strict=True))


def resume_conflicts(saved: ExperimentConfig, cfg: ExperimentConfig,
                     skip: Collection[str] = ()) -> dict[str, tuple[Any, Any]]:
    """``{field: (saved value, new value)}`` of the fields whose change would not fit the checkpoint of a run trained
    with ``saved`` (:data:`FIXED_ON_RESUME`, less its parts in ``skip``); empty when ``cfg`` may resume it.

    Example:
        >>> saved = ExperimentConfig(hidden=[32])
        >>> resume_conflicts(saved, saved.copy(hidden=[64], epochs=20, tau_mem=5.0))
        {'hidden': ([32], [64])}
        >>> resume_conflicts(ExperimentConfig(adaptation=0.5), ExperimentConfig(adaptation=0.8))   # still adaptive
        {}
    """
    old, new = _layout(saved), _layout(cfg)
    out: dict[str, tuple[Any, Any]] = {}
    for part, fields in FIXED_ON_RESUME.items():
        if part in skip or old[part] is None or new[part] is None or old[part] == new[part]:
            continue
        for field in fields:
            a, b = getattr(saved, field), getattr(cfg, field)
            if a != b:
                out[field] = (list(a) if isinstance(a, (list, tuple)) else a, list(b) if isinstance(b, (list, tuple))
                              else b)
    return out


def check_resume_config(saved: ExperimentConfig, cfg: ExperimentConfig, source: Any,
                        describe: Callable[[str, Any, Any], str] | None = None,
                        name: Callable[[str], str] = str, skip: Collection[str] = (),
                        checkpoint: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ResumeConfigError` naming the changed fields when ``cfg`` cannot resume the checkpoint ``source``
    of a run trained with ``saved`` (:func:`resume_conflicts`), before any data or model is built. ``describe(field,
    old, new)`` words one change (default ``field old -> new``) and ``name(field)`` a field in the list of what
    cannot change (the command line writes its flags); ``skip``: parts of :data:`FIXED_ON_RESUME` not to check.
    ``checkpoint``: the checkpoint itself (its metadata: ``epoch``, ``step``, ``finished``...), whose epochs trained
    ``cfg.epochs`` must not fall below (:func:`check_resume_epochs`).

    Example:
        >>> check_resume_config(ExperimentConfig(hidden=[32]), ExperimentConfig(hidden=[64]), "runs/a")
        Traceback (most recent call last):
        ...
        snnlab.training.resume.ResumeConfigError: checkpoint runs/a cannot resume with hidden [32] -> [64]: ...
    """
    conflicts = resume_conflicts(saved, cfg, skip)
    if conflicts:
        changes = _changes_text(conflicts, describe)
        raise ResumeConfigError(
            f"checkpoint {source} cannot resume with {changes}: the checkpoint holds the weights and optimiser state "
            f"of the model it trained, and these settings change the model's parameters, what they mean, or the "
            f"optimiser. A resume "
            f"cannot change what these set: {fixed_on_resume_text(name)}; everything else it may (epochs, learning "
            f"rates, tau_mem, threshold, neuron, surrogate, dropout, ...). Start a new run to change them.")
    if checkpoint is not None:
        check_resume_epochs(checkpoint, cfg, source, saved=saved, describe=describe, name=name, skip=skip)


def _changes_text(changes: dict[str, tuple[Any, Any]], describe: Callable[[str, Any, Any], str] | None) -> str:
    """``{field: (old, new)}`` as one comma-separated text, each change by ``describe`` (default
    :func:`_describe_change`)."""
    describe = describe or _describe_change
    return ", ".join(describe(field, old, new) for field, (old, new) in changes.items())


def _describe_change(field: str, old: Any, new: Any) -> str:
    return f"{field} {old!r} -> {new!r}"


def trained_epochs(ckpt: Mapping[str, Any]) -> tuple[int, bool]:
    """``(complete epochs, whether the epoch after them is part-trained)`` of a checkpoint: a run stopped inside an
    epoch holds some of that epoch's steps (its ``epoch_progress`` counts the batches done).

    Example:
        >>> trained_epochs({"epoch": 3, "step": 9, "finished": True})
        (3, False)
        >>> trained_epochs({"epoch": 0, "step": 35, "partial_epoch": True, "epoch_progress": {"batches_done": 35}})
        (0, True)
    """
    progress = ckpt.get("epoch_progress") if ckpt.get("partial_epoch") else None
    return int(ckpt.get("epoch") or 0), bool(isinstance(progress, Mapping) and progress.get("batches_done"))


def batches_into_epoch(ckpt: Mapping[str, Any]) -> int | None:
    """How many batches of the epoch it was saved in a checkpoint's run had trained: its ``step`` less the step its
    last complete epoch ended at (its history's record of that epoch; 0 in the first epoch), or None where the
    history does not tell.

    Example:
        >>> batches_into_epoch({"epoch": 1, "step": 11, "history": [{"kind": "epoch", "epoch": 0, "step": 8}]})
        3
        >>> batches_into_epoch({"epoch": 0, "step": 5}), batches_into_epoch({"epoch": 2, "step": 20})
        (5, None)
    """
    epoch, step = ckpt.get("epoch"), ckpt.get("step")
    if not isinstance(epoch, int) or not isinstance(step, int):
        return None
    if epoch == 0:
        return step
    ends = [r.get("step") for r in ckpt.get("history") or [] if isinstance(r, Mapping)
            and r.get("kind") == "epoch" and r.get("epoch") == epoch - 1]
    return step - ends[-1] if ends and isinstance(ends[-1], int) and ends[-1] <= step else None


def position_text(epochs_done: int, epochs: int, step: int, partial: bool = False) -> str:
    """Where a run stands, with epochs counted from 1 as the progress bar counts them (``epoch 1/5`` is the first):
    ``epochs_done`` complete epochs of ``epochs``, ``step`` optimiser steps, and ``partial``: inside the next epoch.

    Example:
        >>> position_text(0, 5, 35, partial=True)
        'during epoch 1/5 (step 35)'
        >>> position_text(3, 5, 9)
        'after 3 of 5 epochs (step 9)'
    """
    if partial:
        return f"during epoch {epochs_done + 1}/{epochs} (step {step})"
    return f"after {epochs_done} of {epochs} epoch{'' if epochs == 1 else 's'} (step {step})"


def check_resume_epochs(ckpt: Mapping[str, Any], cfg: ExperimentConfig, source: Any,
                        saved: ExperimentConfig | None = None,
                        describe: Callable[[str, Any, Any], str] | None = None,
                        name: Callable[[str], str] = str, skip: Collection[str] = ()) -> None:
    """Raise :class:`ResumeConfigError` when ``cfg`` would resume the checkpoint ``ckpt`` (read from ``source``) with
    fewer ``epochs`` than its run has trained (the complete epochs, and the one it stopped inside, if any): its
    model, history and metrics hold those epochs, which a resume cannot take back. ``epochs`` equal to the complete
    epochs leaves nothing to train: a stopped run then finishes where it is; a finished run (nothing trained or
    evaluated again) is refused a configuration other than ``saved``, which would be recorded without being used
    (but for the fields of the parts of :data:`FIXED_ON_RESUME` in ``skip``: those that do not describe a model or
    data passed in; and :data:`WHERE_IT_RUNS`, which the trainer needs to be built at all: a data folder moved, a
    run trained on a GPU written again on a machine without one). ``describe`` and ``name`` word a change and a field
    as in :func:`check_resume_config`.

    Example:
        >>> done = {"epoch": 3, "step": 9, "finished": True}
        >>> check_resume_epochs(done, ExperimentConfig(epochs=3), "runs/a")   # nothing to train: allowed
        >>> check_resume_epochs(done, ExperimentConfig(epochs=2), "runs/a")
        Traceback (most recent call last):
        ...
        snnlab.training.resume.ResumeConfigError: checkpoint runs/a cannot resume with epochs 2: its run ...
    """
    try:
        done, partial = trained_epochs(ckpt)
        step = int(ckpt.get("step") or 0)
    except (TypeError, ValueError):  # a damaged checkpoint: restoring it says what is wrong
        return
    epochs, least = int(cfg.epochs), done + int(partial)
    flag, finished = name("epochs"), bool(ckpt.get("finished"))
    if epochs < least:
        total = int(saved.epochs) if saved is not None else None
        plural = "" if done == 1 else "s"
        if partial:
            where = (f"its run stopped during epoch {done + 1}{'' if total is None else f'/{total}'} (step {step}), "
                     f"after {done} complete epoch{plural}")
            need = "to finish the epoch it stopped in, whose steps its model holds"
        else:
            where = (f"its run has trained {done}{'' if total is None else f' of {total}'} epoch{plural} (step {step}"
                     f"{', finished' if finished else ''})")
            left = "the run's results are written again" if finished else "the run finishes where it is"
            need = f"{least}: nothing left to train, {left}; more: it trains on"
        raise ResumeConfigError(
            f"checkpoint {source} cannot resume with {flag} {epochs}: {where}, and a resume cannot take trained "
            f"epochs back. {flag} must be at least {least} ({need}); start a new run for a shorter one")
    if finished and not partial and epochs == done and saved is not None:
        old, new = saved.to_dict(), cfg.to_dict()
        ignored = {field for part in skip for field in FIXED_ON_RESUME.get(part, ())} | set(WHERE_IT_RUNS)
        changed = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new))
                   if k not in ignored and old.get(k) != new.get(k)}
        if changed:
            changes = _changes_text(changed, describe)
            raise ResumeConfigError(
                f"checkpoint {source}: its run finished {position_text(done, done, step)}, so with {flag} {epochs} "
                f"nothing is left to train or evaluate and {changes} would be recorded without being used; give "
                f"{flag} above {done} to train on with it, or leave it out (a finished run resumed as it is writes "
                f"its results again)")


def _saved_config(ckpt: dict[str, Any]) -> ExperimentConfig | None:
    """The configuration a checkpoint was trained with, or None where it holds none that can be read."""
    if not isinstance(ckpt.get("config_json"), str):
        return None
    try:
        with warnings.catch_warnings():  # (keys it drops are said when it is resumed with its own configuration)
            warnings.simplefilter("ignore")
            return ExperimentConfig.from_saved(ckpt["config_json"])
    except (ConfigError, ValueError, TypeError):
        return None


def refuse_foreign_checkpoint(run_dir: Path, resume: str | os.PathLike | None) -> None:
    """Raise :class:`~snnlab.training.run_folder.RunFolderTaken` (a ``FileExistsError``) when ``run_dir`` holds a
    checkpoint that ``resume`` does not continue."""
    existing = run_dir / CHECKPOINT_NAME
    if not existing.exists():
        return
    if resume is not None:
        rp = Path(resume)
        if (rp / CHECKPOINT_NAME if rp.is_dir() else rp).resolve() == existing.resolve():
            return
    raise RunFolderTaken(f"run_dir {run_dir} already holds the checkpoint of another run; resume it "
                         f"(resume={str(run_dir)!r}), choose another folder, or pass overwrite=True to replace it")


def refuse_rebuilding_custom_parts(ckpt: dict[str, Any], resume: str | os.PathLike, own_model: bool,
                                   own_data: bool) -> None:
    """A ``ValueError`` when the checkpoint's run trained a model or data passed to its Trainer
    (:func:`~snnlab.training.model.custom_parts`) and the resume does not pass them again: the configuration does not
    describe them, so a model or data rebuilt from it would be another (e.g. another reset rule with the same shapes).

    Example:
        >>> refuse_rebuilding_custom_parts({"own_model": True, "own_data": False}, "run", False, False)
        Traceback (most recent call last):
        ...
        ValueError: run: this run trained a model passed to its Trainer, which its configuration does not describe: resume it with the model again, Trainer(cfg, model=..., resume=...)
    """
    from .model import custom_parts

    missing = [part for part in custom_parts(ckpt) if not (own_model if part == "model" else own_data)]
    if missing:
        what = " and ".join("a model" if p == "model" else "data" for p in missing)
        again = ", ".join("model=..." if p == "model" else "train_loader=..., test_loader=..." for p in missing)
        raise ValueError(f"{resume}: this run trained {what} passed to its Trainer, which its configuration does not "
                         f"describe: resume it with {'them' if len(missing) > 1 else 'the ' + missing[0]} again, "
                         f"Trainer(cfg, {again}, resume=...)")


def load_resume(resume: str | os.PathLike, cfg: ExperimentConfig | dict | None, run_dir: str | os.PathLike | None,
                own_model: bool = False,
                own_data: bool = False) -> tuple[dict[str, Any], ExperimentConfig | dict, str | os.PathLike]:
    """The training checkpoint at ``resume`` (a file or a run folder), the configuration to resume it with (``cfg``,
    else the checkpoint's) and the run folder (``run_dir``, else the checkpoint's); a clear
    :class:`CheckpointError` for a file that is no training checkpoint or holds no configuration to use, and a
    :class:`ResumeConfigError` for a ``cfg`` that changes what a resume keeps or asks for fewer epochs than were
    trained (:func:`check_resume_config`), raised before anything (run folder, run store) is written.

    ``own_model``: the run trains a model passed in, which the configuration does not describe: of
    :data:`FIXED_ON_RESUME` only the optimiser and the ``seed`` (which splits the configured data) are checked.
    ``own_data``: its data is passed in, so the input and class counts are not the configured dataset's and are not
    checked (a checkpoint that does not fit still fails to load). Both passed in: the ``seed`` draws neither the
    data nor the model's constants and is not checked either.
    """
    ckpt = load_checkpoint(resume)
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{resume} is not an snnlab training checkpoint (format={ckpt.get('format')!r})")
    refuse_rebuilding_custom_parts(ckpt, resume, own_model, own_data)
    if cfg is None:
        if not isinstance(ckpt.get("config_json"), str):
            raise CheckpointError(f"{resume} holds no configuration (config_json); pass cfg= to resume it")
        cfg = ExperimentConfig.from_saved(ckpt["config_json"])
    else:  # a changed configuration: refused here, before any data is loaded, when the checkpoint cannot fit it
        saved = _saved_config(ckpt)
        try:
            new = cfg if isinstance(cfg, ExperimentConfig) else ExperimentConfig.from_dict(cfg, validate=False)
        except (ConfigError, ValueError, TypeError):
            new = None  # (the Trainer reports a bad configuration itself)
        if saved is not None and isinstance(new, ExperimentConfig):
            # a model passed in is not the configured one (only its optimiser is, and the seed, which draws the
            # configured data's split: with data passed in too, it draws nothing the run uses); data passed in sets
            # the counts
            kept = (OPTIMIZER_PART,) if own_data else (OPTIMIZER_PART, SEED_PART)
            skip = [p for p in FIXED_ON_RESUME if p not in kept] if own_model else \
                [INPUT_PART] if own_data else []
            check_resume_config(saved, new, resume, skip=skip, checkpoint=ckpt)
        elif isinstance(new, ExperimentConfig):  # no saved configuration to compare with: the epochs still count
            check_resume_epochs(ckpt, new, resume)
    if run_dir is None:
        rp = Path(resume)
        run_dir = rp if rp.is_dir() else rp.parent
    return ckpt, cfg, run_dir


#: set where the caller has said already that a resume runs on another thread count (a sweep warns once for all its
#: points: :func:`other_threads_said`)
_OTHER_THREADS_SAID: contextvars.ContextVar[bool] = contextvars.ContextVar("snnlab_other_threads_said", default=False)


def checkpoint_threads(ckpt: Mapping[str, Any]) -> int | None:
    """The torch CPU threads the run of checkpoint ``ckpt`` trained with (``"torch_threads"``), or None where an older
    checkpoint does not say.

    Example:
        >>> checkpoint_threads({"torch_threads": 1}), checkpoint_threads({})
        (1, None)
    """
    n = ckpt.get("torch_threads")
    return int(n) if isinstance(n, int) and not isinstance(n, bool) and n >= 1 else None


def warn_other_threads(ckpt: Mapping[str, Any], source: Any) -> None:
    """Warn (``RuntimeWarning``) when this process resumes checkpoint ``ckpt`` (read from ``source``) on another
    torch CPU thread count (``torch.get_num_threads()``) than its run trained with: the resumed run will not repeat
    the uninterrupted one bit for bit (torch's CPU reductions depend on the thread count). The Trainer calls it on
    every resume on the CPU; ``snnlab train --resume`` without ``--threads`` takes the checkpoint's count instead.
    Silent within :func:`other_threads_said`.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as seen:
        ...     warnings.simplefilter("always")
        ...     warn_other_threads({"torch_threads": torch.get_num_threads() + 1}, "run/checkpoint.pt")
        >>> "will not repeat" in str(seen[0].message)
        True
    """
    trained, now = checkpoint_threads(ckpt), torch.get_num_threads()
    if trained is None or trained == now or _OTHER_THREADS_SAID.get():
        return
    warnings.warn(f"checkpoint {source} trained with {trained} torch thread(s), this process resumes it with {now}: "
                  f"the resumed run will not repeat the uninterrupted one bit for bit (torch's CPU reductions depend "
                  f"on the thread count); call torch.set_num_threads({trained}) before resuming (snnlab train "
                  f"--resume: --threads {trained}, or leave --threads out) to match it",
                  RuntimeWarning, stacklevel=user_stacklevel())


@contextlib.contextmanager
def other_threads_said() -> Iterator[None]:
    """Within it (in this thread or task), resumes do not warn of another thread count (:func:`warn_other_threads`):
    the caller has said it already (a sweep, once for all its points).

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as seen, other_threads_said():
        ...     warnings.simplefilter("always")
        ...     warn_other_threads({"torch_threads": torch.get_num_threads() + 1}, "x")
        >>> seen
        []
    """
    token = _OTHER_THREADS_SAID.set(True)
    try:
        yield
    finally:
        _OTHER_THREADS_SAID.reset(token)


class ResumeMixin:
    """Checkpoints of a run and resuming from them, for the :class:`~snnlab.training.Trainer`.

    Expects of the class it is mixed into: ``cfg``, ``device``, ``model``, ``optimizer``, ``schedule`` (a
    ``DelaySchedule`` or None), ``train_loader``, ``run_id``, ``label``, ``name``, ``epoch``, ``step``, ``history``,
    ``last_eval``, ``result``, ``checkpoint_path``, ``_neuron_constants``, ``_own_model`` and ``_own_data`` (the Trainer's
    ``neuron_constants`` and whether its model was passed in), ``_delays_rounded``, ``_epoch_progress`` (the running
    epoch's progress), ``_resume_progress`` (set here: a partial epoch to finish), ``_pending_epoch_end`` (set here
    too: a counted epoch whose evaluation and record are still to do), ``_boundary`` (the state at the start of
    the step in progress, or None), and the methods ``_scheduled``, ``_schedules_text``, ``_reset_rates_to_config``
    and ``_store``.
    """

    @classmethod
    def resume_from(cls: type[_Run], path: str | os.PathLike, cfg: ExperimentConfig | dict | None = None,
                    **kwargs: Any) -> _Run:
        """A trainer that continues the run saved at ``path`` (a checkpoint file or a run folder).

        ``cfg`` defaults to the checkpoint's configuration; pass one with more ``epochs`` to train longer (fewer
        than the checkpoint trained are refused: :func:`check_resume_epochs`).
        """
        return cls(cfg, resume=path, **kwargs)

    def position(self) -> str:
        """Where the run stands, with epochs counted from 1 as its progress bar counts them (:func:`position_text`):
        ``"during epoch 2/5 (step 35)"`` inside an epoch (stopped there, or resumed to finish it), else
        ``"after 3 of 5 epochs (step 9)"``. (:attr:`epoch` is the number of complete epochs.)

        Example:
            >>> from snnlab.training import ExperimentConfig, Trainer
            >>> Trainer(ExperimentConfig(hidden=[16], epochs=2, max_batches_per_epoch=2), progress=False).position()
            'after 0 of 2 epochs (step 0)'
        """
        progress = self._resume_progress or self._epoch_progress
        partial = bool(progress and progress.get("batches_done"))
        return position_text(self.epoch, self.cfg.epochs, self.step, partial)

    def _global_rng_state(self) -> dict[str, Any]:
        return global_rng_state(cuda=self.device.type == "cuda")

    def _set_global_rng_state(self, rng: dict[str, Any]) -> None:
        set_global_rng_state(rng, cuda=self.device.type == "cuda")

    def checkpoint_state(self, finished: bool = False, partial_epoch: bool = False) -> dict[str, Any]:
        """Everything needed to continue the run, as plain types and tensors (the history as one JSON text under
        :data:`~snnlab.training.checkpoint.HISTORY_KEY`, which :func:`~snnlab.training.checkpoint.load_checkpoint`
        decodes).

        A checkpoint taken inside an epoch (``partial_epoch``) also holds the epoch's progress: the
        batches done, their running sums, the loader's generator states and the global random states
        (``"global_rng"``: a loader without a generator of its own shuffles with torch's) at the epoch's start, so
        that a resume replays the same batch order and continues with the next batch. (One saved before
        ``"global_rng"`` was kept still resumes; a loader shuffling with the global generator is then warned about.)
        """
        rng = self._global_rng_state()
        return {
            "format": CHECKPOINT_FORMAT,
            "config_json": self.cfg.to_json(),
            "run_id": self.run_id,
            "label": self.label,
            "name": self.name,  # (a resume into another store registers the run under it)
            "own_model": bool(self._own_model),  # (a model / data passed in: not rebuilt from the configuration,
            "own_data": bool(self._own_data),    # snnlab.training.model.custom_parts)
            "epoch": int(self.epoch),
            "step": int(self.step),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "delay_schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "delays_rounded": bool(self._delays_rounded),
            "finished": bool(finished),
            "partial_epoch": bool(partial_epoch),
            HISTORY_KEY: encode_history(self.history),  # one JSON text: cheap to save and load (not a dict a step)
            "last_eval": to_plain(self.last_eval),
            "result": to_plain(self.result),
            "rng": rng,
            "loader_generators": loader_states(self.train_loader),
            "epoch_progress": to_plain(self._epoch_progress) if partial_epoch and self._epoch_progress else None,
            # an epoch trained and counted whose end (evaluation, record) a Ctrl-C cut short: the resume does it
            "pending_epoch_end": to_plain(self._pending_epoch_end),
            # the torch CPU threads it trained with (last): a run repeats bit for bit only on as many; a sweep rerun
            # with other --threads says so (its reused and resumed points would not match new ones)
            "torch_threads": int(torch.get_num_threads()),
            "runtime": self._runtime_record(),  # (the store summary's: a sweep that reuses the run registers it)
            "time": time.time(),
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None, **flags: bool) -> Path | None:
        """Atomically write the checkpoint (default ``run_dir/checkpoint.pt``); returns its path."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            return None
        state = self.checkpoint_state(**flags)
        state["save_id"] = uuid.uuid4().hex  # which save this is: a trainer refuses to train over a later one
        save_checkpoint(path, state)
        if path == self.checkpoint_path:
            self._save_id = state["save_id"]
        self._store("set_checkpoint", self.run_id, str(path))  # the store keeps it absolute
        return path

    def _restore_or_explain(self, ckpt: dict[str, Any], source) -> None:
        """:meth:`_restore`, with a checkpoint that lacks a field or holds a wrong one as a :class:`CheckpointError`."""
        try:
            self._restore(ckpt, source)
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
            field = f"the field {e.args[0]!r} is missing" if isinstance(e, KeyError) and e.args else \
                f"{type(e).__name__}: {e}"
            raise CheckpointError(f"checkpoint {source} is damaged or was not written by this version of snnlab "
                                  f"({field}); start the run anew, or resume from another checkpoint") from e

    def _restore(self, ckpt: dict[str, Any], source) -> None:
        from .model import keep_neuron_constants, load_model_state

        self._save_id = ckpt.get("save_id")  # the save this trainer continues (None: written before save ids)
        self._check_same_batches(ckpt, source)
        self._warn_other_length(ckpt, source)
        if self.device.type == "cpu":
            warn_other_threads(ckpt, source)
        chosen = self._neuron_constants  # Trainer(neuron_constants=...): None, "model", "checkpoint"
        try:
            changed = keep_neuron_constants(self.model, lambda: load_model_state(self.model, ckpt["model"]),
                                            keep=chosen != "checkpoint")
        except (RuntimeError, KeyError) as e:
            raise CheckpointError(f"checkpoint {source} does not match the configured model: {e}") from e
        if changed:
            self._report_neuron_constants(changed, chosen, source)
        if not ckpt.get("delays_rounded"):
            try:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"checkpoint {source}: optimizer state does not match: {e}") from e
            self._reset_rates_to_config()  # the rates saved are the old run's: a resume takes the configured ones
        self.epoch = int(ckpt["epoch"])
        self.step = int(ckpt["step"])
        if self.schedule is not None and ckpt.get("delay_schedule"):
            # the epoch to train next: a run stopped between an epoch's evaluation and the schedule's step saved the
            # schedule one epoch behind its epoch count (the sigma it is set to equals the saved one otherwise)
            self.schedule.epoch = self.epoch
            self.schedule._apply()
        self.history = History(ckpt.get("history") or [])  # (load_checkpoint decoded history_json into it)
        self.last_eval, self.result = self._current_results(ckpt)
        progress = ckpt.get("epoch_progress") if ckpt.get("partial_epoch") else None
        self._resume_progress = self._resumable(progress)
        if ckpt.get("partial_epoch") and "epoch_progress" not in ckpt:
            self._warn_epoch_restarts(ckpt, source)
        self._pending_epoch_end = self._pending_end(ckpt)
        self._set_global_rng_state(ckpt.get("rng") or {})
        restore_loader_states(self.train_loader, ckpt.get("loader_generators"))

    @staticmethod
    def _warn_epoch_restarts(ckpt: dict[str, Any], source) -> None:
        """Warn that a checkpoint saved inside an epoch by an snnlab before 2026-12-06 (``partial_epoch`` without the
        ``epoch_progress`` later versions keep) resumes at that epoch's first batch: the batches it had trained there
        are trained again, so the run ends one part-epoch of steps longer than an uninterrupted one, with other
        numbers. Nothing is said where no batch of it had trained (stopped at its start: the resume is exact)."""
        done = batches_into_epoch(ckpt)
        if done == 0:
            return
        again = "the batches it had trained" if done is None else f"{done} batch{'' if done == 1 else 'es'}"
        warnings.warn(f"checkpoint {source} was saved inside epoch {int(ckpt.get('epoch') or 0) + 1} (step "
                      f"{ckpt.get('step')}) by an older snnlab (before 2026-12-06), which did not keep the epoch's "
                      f"progress: that epoch restarts from its first batch ({again} trained again), so the result "
                      "will differ from an uninterrupted run", UserWarning, stacklevel=user_stacklevel())

    def _report_neuron_constants(self, changed: list[str], chosen: str | None, source) -> None:
        """Say whose fixed neuron constants (``changed``: ``"<layer>.<buffer>"`` that differ from the checkpoint's)
        the resumed model holds. A model built from the configuration keeps the configured ones (a resume may change
        ``tau_mem`` or ``threshold``): logged. A model passed in keeps its own unless ``neuron_constants`` says which:
        a ``UserWarning``, as its constants (per-neuron ones drawn at random) may not be those the run trained with."""
        names = ", ".join(changed)
        if chosen == "checkpoint":
            log.info("resume: %s taken from checkpoint %s (neuron_constants='checkpoint')", names, source)
        elif chosen is None and self._own_model:
            warnings.warn(f"Trainer: the model passed in holds other fixed neuron constants than checkpoint {source} "
                          f"trained with ({names}), and the resumed run uses the model's (per-neuron time constants "
                          "drawn again by spread_tau_, say); pass neuron_constants='checkpoint' to keep those the "
                          "run trained with, or neuron_constants='model' to keep the model's without this warning",
                          UserWarning, stacklevel=user_stacklevel())
        else:  # fixed taus and thresholds are configuration: the resumed run uses the configured ones
            log.info("resume: %s taken from the %s, not from checkpoint %s", names,
                     "model passed in" if self._own_model else "configuration", source)

    def _current_results(self, ckpt: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The checkpoint's ``last_eval`` and ``result``, each None where it no longer evaluates the model it holds,
        which a resume with nothing left to train (:meth:`_finish`) would otherwise give as the run's final result:
        ``last_eval`` after an epoch that ``eval_every`` left unevaluated (it is an earlier epoch's), ``result`` of a
        run that finished, trained on with more epochs and stopped (it is the first end's). A finished checkpoint's,
        one cut short in the rounded evaluation, and those of a checkpoint whose history does not tell (older
        versions) are kept. Needs :attr:`epoch` and :attr:`history` restored."""
        last_eval, result = ckpt.get("last_eval"), ckpt.get("result")
        if ckpt.get("finished"):
            return last_eval, result
        history = [r for r in self.history if isinstance(r, Mapping)]
        if result and ckpt.get("delays_rounded") and result.get("rounded") is None:
            return last_eval, result  # stopped in the rounded evaluation: its "final" is this model's
        if result and result.get("rounded") is not None:  # the rounded evaluation is recorded at its step
            at = [r.get("step") for r in history if r.get("kind") == "evaluation" and r.get("phase") == "rounded"]
            if at and at[-1] != ckpt.get("step"):
                result = None
        records = [r for r in history if r.get("epoch") == int(self.epoch) - 1]
        if last_eval and any(r.get("kind") == "epoch" for r in records) and not any(
                r.get("kind") == "evaluation" and r.get("phase", "epoch") == "epoch" for r in records):
            last_eval = None
        return last_eval, result

    def _pending_end(self, ckpt: dict[str, Any]) -> dict[str, Any] | None:
        """The checkpoint's pending epoch end (``{"epoch": index, "summary": dict, "sigmas": each delay layer's sigma
        or None}``: the last counted epoch, whose
        evaluation a Ctrl-C cut short), or None (none, or a checkpoint written before it was kept); ``ValueError`` for
        one that is not the last counted epoch's. Needs :attr:`epoch` restored."""
        pending = ckpt.get("pending_epoch_end")
        if pending is None:
            return None
        if not isinstance(pending, Mapping) or not isinstance(pending.get("summary"), Mapping) \
                or pending.get("epoch") != int(self.epoch) - 1:
            raise ValueError(f"pending_epoch_end {pending!r} is not the end of the last counted epoch "
                             f"(epoch {int(self.epoch) - 1})")
        sigmas = pending.get("sigmas")  # each delay layer's sigma the epoch trained with (None: not kept)
        return {"epoch": int(pending["epoch"]), "summary": dict(pending["summary"]),
                "sigmas": None if sigmas is None else [float(s) for s in sigmas]}

    def _check_same_batches(self, ckpt: dict[str, Any], source) -> None:
        """Refuse a resume with another batch size where it would train other samples or rates than it says: inside
        an epoch (the batches done are counted in the old size) or under a learning-rate schedule (a function of
        the step, its length counted in the old size's batches)."""
        try:
            saved = int(json.loads(ckpt["config_json"])["batch_size"])
        except (KeyError, TypeError, ValueError):  # a checkpoint without a readable config: nothing to compare
            return
        if saved == int(self.cfg.batch_size):
            return
        progress = ckpt.get("epoch_progress") if ckpt.get("partial_epoch") else None
        if progress and progress.get("batches_done"):
            raise CheckpointError(
                f"checkpoint {source} stopped inside epoch {int(ckpt.get('epoch', 0)) + 1} after "
                f"{progress['batches_done']} batches of {saved}: resume it with batch_size={saved} (another batch "
                f"size would skip or repeat samples); the batch size can change only at an epoch boundary")
        if self._scheduled():
            raise CheckpointError(
                f"checkpoint {source} was trained with batch_size={saved} under a learning-rate schedule "
                f"({self._schedules_text()}) whose length is counted in those batches: resume it with "
                f"batch_size={saved}, or use constant rates")

    def _warn_other_length(self, ckpt: dict[str, Any], source) -> None:
        """Warn when a resume changes the length of a schedule: the rate schedules (``epochs`` and
        ``max_batches_per_epoch`` set their number of steps) and the delays' sigma schedule (``epochs``) follow the
        new length from the step they resume at, so the resumed run follows neither the curve its first part
        trained on nor the one a run of the new length would have from its start."""
        try:
            saved = json.loads(ckpt["config_json"])
        except (KeyError, TypeError, ValueError):
            return
        changed = {k: (saved.get(k), getattr(self.cfg, k)) for k in ("epochs", "max_batches_per_epoch")
                   if k in saved and saved.get(k) != getattr(self.cfg, k)}
        what = [self._schedules_text()] if self._scheduled() and changed else []
        if "epochs" in changed and self.schedule is not None and not ckpt.get("delays_rounded"):
            what.append(f"the delays' sigma schedule ({self.cfg.sigma_schedule!r})")
        if what:
            was = ", ".join(f"{k}={a}" for k, (a, _) in changed.items())
            now = ", ".join(f"{k}={b}" for k, (_, b) in changed.items())
            warnings.warn(f"checkpoint {source} was trained with {was} and resumes with {now}: {' and '.join(what)} "
                          f"stretch to the new length from here on, so the result differs from a run trained with "
                          f"{now} from the start", UserWarning, stacklevel=user_stacklevel())

    def _roll_back_to_boundary(self) -> None:
        """Undo a step interrupted before its optimiser step (a second Ctrl-C), so the checkpoint resumes exactly."""
        boundary, self._boundary = self._boundary, None
        if boundary is not None:
            roll_back(self.model, boundary, cuda=self.device.type == "cuda")

    @staticmethod
    def _resumable(progress: dict[str, Any] | None) -> dict[str, Any] | None:
        """An epoch's progress to resume from: batches done, or none yet but its shuffle drawn already."""
        if progress and (progress.get("batches_done") or progress.get("loader_generators") is not None):
            return progress
        return None
