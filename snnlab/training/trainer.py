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
"""
from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import os
import random
import threading
import time
import traceback
import warnings
import weakref
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from snnlab.core.delays import DelayedLinear, DelaySchedule
from snnlab.core.network import WeakMethodHook
from snnlab.core.neurons import LIF
from snnlab.core.readout import decide, logits, tie_tolerance
from snnlab.core.validation import user_stacklevel
from snnlab.data.loader_rng import loader_states, restore_loader_states

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, to_plain
from .config import ExperimentConfig
from .events import Event, EventBus
from .interrupts import (batch_norm_buffers, global_rng_state, handle_signals, roll_back, set_global_rng_state,
                         step_boundary, tell)
from .lr_schedule import lr_factor, one_cycle_momentum
from .precision import check_precision, forward_precision
from .regularization import spike_rate_penalty

__all__ = ["Trainer", "TrainingDiverged", "RunStoreProtocol", "History", "STATES", "seed_everything",
           "resolve_device", "EVAL_KEYS"]

log = logging.getLogger(__name__)

def _remove_hooks(handles: list) -> None:
    for handle in handles:
        handle.remove()


STATES = ("idle", "running", "paused", "stopped", "finished", "failed")
CHECKPOINT_FORMAT = "snnlab-checkpoint-v1"
CHECKPOINT_NAME = "checkpoint.pt"
EVAL_KEYS = ("accuracy", "loss", "spikes_per_sample", "spikes_per_layer", "synops_per_sample", "macs_per_sample",
             "energy_per_sample_j", "latency_steps", "n_samples")


class TrainingDiverged(RuntimeError):
    """The loss (or the weights) became NaN or infinite."""


@runtime_checkable
class RunStoreProtocol(Protocol):
    """What the trainer needs from a run store (e.g. an SQLite-backed one)."""

    def create_run(self, config: dict, name: str | None = None) -> str:
        """Register a run with its configuration dict; return its id."""

    def log_metrics(self, run_id: str, step: int, epoch: int, metrics: dict) -> None:
        """Record scalar metrics (``{name: float}``) at a global step / epoch (a store whose ``log_metrics`` also takes
        ``kind`` gets ``kind="eval"`` for the test-set metrics, ``"train"`` for the others)."""

    def set_status(self, run_id: str, status: str, message: str | None = None) -> None:
        """Record the run's state (one of ``STATES``) with an optional message."""

    def set_checkpoint(self, run_id: str, path: str) -> None:
        """Record where the run's latest checkpoint is."""


class History(list):
    """Per-step and per-epoch records (dicts with a ``"kind"`` key); :meth:`frame` gives a DataFrame."""

    def frame(self, kind: str | None = None):
        """A ``pandas.DataFrame`` of the records (only those of ``kind``: "step", "epoch", "evaluation")."""
        import pandas as pd

        rows = [dict(r) for r in list(self) if kind is None or r.get("kind") == kind]
        for r in rows:  # nested dicts (spikes per layer) become columns "test_spikes_per_layer.<name>"
            for k in [k for k, v in r.items() if isinstance(v, dict)]:
                for sub, v in r.pop(k).items():
                    r[f"{k}.{sub}"] = v
        return pd.DataFrame(rows)

    def steps(self) -> list[dict]:
        return [r for r in list(self) if r.get("kind") == "step"]

    def epochs(self) -> list[dict]:
        return [r for r in list(self) if r.get("kind") == "epoch"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> cuda when available else cpu; ``"cuda"`` without a GPU raises a clear error."""
    if isinstance(name, torch.device):
        return name
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but CUDA is not available here; use device='cpu' or 'auto'")
    return dev


def _scalars(prefix: str, d: dict[str, Any]) -> dict[str, float]:
    """Flatten a metrics dict to ``{prefix+name: float}`` (nested dicts as ``name.sub``), skipping non-numbers."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            for sk, sv in _scalars("", v).items():
                out[f"{prefix}{k}.{sk}"] = sv
        elif isinstance(v, bool):
            out[prefix + k] = float(v)
        elif isinstance(v, (int, float, np.number)):
            out[prefix + k] = float(v)
        elif isinstance(v, torch.Tensor) and v.numel() == 1:
            out[prefix + k] = float(v)
    return out


def _refuse_foreign_checkpoint(run_dir: Path, resume: str | os.PathLike | None) -> None:
    """Raise ``FileExistsError`` when ``run_dir`` holds a checkpoint that ``resume`` does not continue."""
    existing = run_dir / CHECKPOINT_NAME
    if not existing.exists():
        return
    if resume is not None:
        rp = Path(resume)
        if (rp / CHECKPOINT_NAME if rp.is_dir() else rp).resolve() == existing.resolve():
            return
    raise FileExistsError(f"run_dir {run_dir} already holds the checkpoint of another run; resume it "
                          f"(resume={str(run_dir)!r}), choose another folder, or pass overwrite=True to replace it")


ADAM_BETAS = (0.9, 0.999)  # torch's defaults, restated: a resume puts back the first one after a one-cycle run
SGD_MOMENTUM = 0.9


class Trainer:
    """Train the network an :class:`ExperimentConfig` describes, in this thread or in the background.

    Args:
        cfg: the configuration (an ``ExperimentConfig`` or a dict for :meth:`ExperimentConfig.from_dict`);
            may be None when ``resume`` is given (the checkpoint's config is used).
        run_dir: folder for ``checkpoint.pt`` (written atomically after every epoch) and ``config.json``;
            None = no files (when resuming: the checkpoint's folder). A folder that already holds another
            run's checkpoint is refused (``FileExistsError``) unless resuming that checkpoint or ``overwrite``.
        store: optional object following :class:`RunStoreProtocol`; its errors are logged, never fatal.
        callbacks: callables subscribed to :attr:`events` (they receive every :class:`Event`).
        model, train_loader, test_loader: inject your own instead of building them from ``cfg``. With your own
            ``model`` the fields that build a network (``hidden``, ``neuron``, ``recurrent``, ``tau_syn``, ...) are
            not used (the training fields are: ``lr``, ``epochs``, ``readout``, ``spike_reg``...), and the run store
            records ``cfg`` as given, under a "(custom model)" label.
        resume: path of a checkpoint (or a run folder) to continue from.
        progress: show tqdm progress bars.
        name: run name passed to ``store.create_run``.
        run_id: force a run id (default: the checkpoint's when resuming, else the store's, else random).
        log_every: send step metrics to the store every this many steps (events go out every step).
        overwrite: start a new run in a ``run_dir`` whose checkpoint (of another run) gets replaced.

    Resuming into a store that knows the run updates its stored config (e.g. more epochs) and deletes the
    metrics it holds for steps after the checkpoint (a crashed attempt logged them; they are trained again).

    Control: :meth:`run` (blocking), :meth:`start` (background thread), :meth:`pause`,
    :meth:`resume`, :meth:`stop` (at the next step boundary), :meth:`wait`; :attr:`state` is one of
    ``STATES``. Ctrl-C in :meth:`run` stops at the next step (a second one at once), saves a checkpoint
    that resumes exactly, marks the run "stopped" and raises ``KeyboardInterrupt``, so a loop over runs ends
    too (details in :meth:`run`). Results: :attr:`history` (records; ``history.frame()``),
    :attr:`result` (``{"final": eval dict, "rounded": eval dict after rounding delays, or None}``).
    """

    def __init__(self, cfg: ExperimentConfig | dict | None = None, run_dir: str | os.PathLike | None = None,
                 store: RunStoreProtocol | None = None, callbacks: Iterable[Callable[[Event], Any]] = (), *,
                 model: nn.Module | None = None, train_loader=None, test_loader=None,
                 resume: str | os.PathLike | None = None, progress: bool = True, name: str | None = None,
                 run_id: str | None = None, log_every: int = 1, overwrite: bool = False) -> None:
        ckpt = None
        if run_dir is not None and not overwrite:
            _refuse_foreign_checkpoint(Path(run_dir), resume)
        if resume is not None:
            ckpt = load_checkpoint(resume)
            if ckpt.get("format") != CHECKPOINT_FORMAT:
                raise CheckpointError(f"{resume} is not an snnlab training checkpoint (format={ckpt.get('format')!r})")
            if cfg is None:
                if not isinstance(ckpt.get("config_json"), str):
                    raise CheckpointError(f"{resume} holds no configuration (config_json); pass cfg= to resume it")
                cfg = ExperimentConfig.from_saved(ckpt["config_json"])
            if run_dir is None:
                rp = Path(resume)
                run_dir = rp if rp.is_dir() else rp.parent
        if cfg is None:
            raise ValueError("Trainer needs a configuration (cfg) or a checkpoint to resume from")
        if isinstance(cfg, dict):
            cfg = ExperimentConfig.from_dict(cfg)
        if not isinstance(cfg, ExperimentConfig):
            raise TypeError(f"cfg must be an ExperimentConfig or a dict, got {type(cfg).__name__}")
        cfg.validate()
        self.cfg = cfg
        self.progress = bool(progress)
        self.log_every = max(1, int(log_every))
        self.device = resolve_device(cfg.device)
        check_precision(cfg.precision, self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.store = store
        self.events = EventBus()
        self.history = History()
        self.result: dict[str, Any] | None = None
        self._resume_progress: dict[str, Any] | None = None  # a partial epoch to finish (from a checkpoint)
        self._epoch_progress: dict[str, Any] | None = None  # the running epoch, for a checkpoint inside it
        self._start_step = 0  # self.step when this run() began
        self.last_eval: dict[str, Any] | None = None
        self.error: str | None = None
        self.epoch = 0  # completed epochs
        self.step = 0  # optimiser steps done
        self.loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy
        self.checkpoint_path: Path | None = self.run_dir / CHECKPOINT_NAME if self.run_dir is not None else None

        seed_everything(cfg.seed)
        own_data = train_loader is not None or test_loader is not None  # (before the missing one is built)
        if train_loader is None or test_loader is None:
            tr, te, n_in, n_cls = self._build_data()
            train_loader = tr if train_loader is None else train_loader
            test_loader = te if test_loader is None else test_loader
        else:
            n_in = n_cls = None
        self.train_loader, self.test_loader = train_loader, test_loader
        own_model = model is not None
        #: the run's label (run store, checkpoints, events): the configuration's, unless the model or the data were
        #: passed in, which the configuration then does not describe
        self.label = cfg.label()
        if own_model:
            self.label = f"{type(model).__name__} (custom model) on {'custom data' if own_data else cfg.dataset}"
        elif own_data:
            self.label += " (custom data)"
        if model is None:
            if n_in is None:
                from .config import dataset_shape

                from snnlab.metrics import check_batch

                first = next(iter(train_loader), None)
                if first is None:
                    raise ValueError("Trainer: the training loader yields no batches")
                check_batch(first, "Trainer", 0)  # a malformed one raises (an empty one has the feature size too)
                n_in, n_cls = int(first[0].shape[-1]), dataset_shape(cfg)[1]
            from .model import build_model

            model = build_model(cfg, n_in, n_cls)
        self.model = model.to(self.device)
        if ckpt is not None and ckpt.get("delays_rounded"):
            for layer in self._delay_layers(all_layers=True):
                layer.round_delays()
        self.optimizer = self._build_optimizer()
        learnable = self._delay_layers()
        self.schedule = (DelaySchedule(learnable, total_epochs=cfg.epochs, sigma_end=cfg.sigma_end, kind=cfg.sigma_schedule,
                                       anneal_fraction=cfg.sigma_anneal_fraction) if learnable else None)

        # spikes per sample during training steps
        self._spike_counts: list[torch.Tensor] = []
        self._spike_outputs: list[torch.Tensor] = []  # the LIF layers' spikes of this step (with spike_reg)
        self._counting = False
        self._warned_short = False
        self._warned_empty = False
        self._boundary: dict[str, Any] | None = None  # the state at the start of the step in progress
        self._in_optimizer_step = False  # interrupt() waits until the step is recorded
        self._pending_interrupt: BaseException | None = None
        hooks = [m.register_forward_hook(WeakMethodHook(self, "_count_hook"))  # held weakly: copies and pickles of
                 for m in self.model.modules() if isinstance(m, LIF)]          # the model leave the trainer behind
        weakref.finalize(self, _remove_hooks, hooks)  # and a model outliving its trainer sheds them

        self._cond = threading.Condition(threading.RLock())
        self._state = "idle"
        self._pause_req = False
        self._stop_req = False
        self._stop_reason: str | None = None
        self._store_takes_kind: bool | None = None  # whether store.log_metrics takes kind= (see _log_eval)
        self._thread: threading.Thread | None = None
        self._delays_rounded = bool(ckpt.get("delays_rounded")) if ckpt is not None else False

        if ckpt is not None:
            try:
                self._restore(ckpt, resume)
            except CheckpointError:
                raise
            except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
                field = f"the field {e.args[0]!r} is missing" if isinstance(e, KeyError) and e.args else \
                    f"{type(e).__name__}: {e}"
                raise CheckpointError(f"checkpoint {resume} is damaged or was not written by this version of snnlab "
                                      f"({field}); start the run anew, or resume from another checkpoint") from e
        if run_id is None and ckpt is not None:
            run_id = ckpt.get("run_id")
        if run_id is not None and store is not None and hasattr(store, "get_run"):
            try:
                store.get_run(run_id)
            except KeyError:  # resumed into a store that never saw the run (or a chosen id): register it
                store.create_run(cfg.to_dict(), name or (ckpt or {}).get("label") or self.label, run_id=run_id)
            else:
                if ckpt is not None:  # the store follows the resumed run: its config, no metrics of undone steps
                    if hasattr(store, "set_config"):
                        store.set_config(run_id, cfg.to_dict())
                    if hasattr(store, "delete_metrics_after"):
                        store.delete_metrics_after(run_id, int(ckpt["step"]))
        if run_id is None and store is not None:
            run_id = str(store.create_run(cfg.to_dict(), name or self.label))
        self.run_id = str(run_id) if run_id is not None else uuid.uuid4().hex[:12]
        self.name = name or self.label
        for cb in callbacks:
            self.events.subscribe(cb)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.run_dir / ".config.json.tmp"
            tmp.write_text(cfg.to_json())
            os.replace(tmp, self.run_dir / "config.json")
        self._store("set_status", self.run_id, "idle", None)

    # ------------------------------------------------------------------------------ construction
    @classmethod
    def resume_from(cls, path: str | os.PathLike, cfg: ExperimentConfig | dict | None = None, **kwargs: Any) -> "Trainer":
        """A trainer that continues the run saved at ``path`` (a checkpoint file or a run folder).

        ``cfg`` defaults to the checkpoint's configuration; pass one with more ``epochs`` to train longer.
        """
        return cls(cfg, resume=path, **kwargs)

    def _build_data(self):
        from .model import build_data

        return build_data(self.cfg)

    def _delay_layers(self, all_layers: bool = False) -> list[DelayedLinear]:
        return [m for m in self.model.modules()
                if isinstance(m, DelayedLinear) and (all_layers or (m.learn_delays and not m.rounded))]

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        delay_ids = {id(m.positions) for m in self._delay_layers() if isinstance(m.positions, nn.Parameter)}
        weights = [p for p in self.model.parameters() if p.requires_grad and id(p) not in delay_ids]
        delays = [p for p in self.model.parameters() if p.requires_grad and id(p) in delay_ids]
        norm_ids = {id(p) for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                    for p in m.parameters()}
        norms = [p for p in weights if id(p) in norm_ids]  # batch norm's scale and shift: no weight decay
        weights = [p for p in weights if id(p) not in norm_ids]
        groups = []
        for name, params in (("weights", weights), ("norm", norms), ("delays", delays)):
            if params:
                lr, _, decay = self._group_settings(name)
                groups.append({"params": params, "lr": lr, "weight_decay": decay, "name": name})
        if not groups:
            raise ValueError("the model has no trainable parameters")
        if cfg.optimizer == "adam":
            return torch.optim.Adam(groups, lr=cfg.lr, betas=ADAM_BETAS)
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=SGD_MOMENTUM)

    def _group_settings(self, name: str | None) -> tuple[float, str, float]:
        """``(base rate, schedule, weight decay)`` of the parameter group ``name``: "weights", "norm" (batch
        norm's scale and shift: no weight decay) or "delays" (the positions)."""
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
            self._spike_counts.append(output.detach().sum(dtype=torch.float64))  # exact also for half spikes
            if self.cfg.spike_reg > 0:  # kept with their graph for the activity penalty
                self._spike_outputs.append(output)

    # ------------------------------------------------------------------------------ state & control
    @property
    def state(self) -> str:
        """One of ``"idle", "running", "paused", "stopped", "finished", "failed"``."""
        with self._cond:
            return self._state

    def _set_state(self, state: str) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    def start(self) -> "Trainer":
        """Run :meth:`run` in a background (daemon) thread and return at once."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("this trainer is already running in a background thread")
            self._check_can_run()
            self._thread = threading.Thread(target=self.run, kwargs={"raise_errors": False},
                                            name=f"snnlab-trainer-{self.run_id}", daemon=True)
            self._state = "running"  # so that pause(wait=True) right after start() waits for the pause
            self._thread.start()
        return self

    def pause(self, wait: bool = False, timeout: float | None = None) -> bool:
        """Ask the run to pause at the next step boundary; with ``wait``, block until it has paused.

        Returns True when the run is (or, without ``wait``, will be) paused.
        """
        with self._cond:
            if self._state in ("finished", "failed", "stopped"):
                return False
            self._pause_req = True
            self._cond.notify_all()
            if not wait:
                return True
            ok = self._cond.wait_for(lambda: self._state != "running" or not self._pause_req, timeout)
            return ok and self._state == "paused"

    def resume(self) -> None:
        """Continue a paused run; :attr:`state` reads ``"running"`` as soon as this returns."""
        with self._cond:
            self._pause_req = False
            if self._state == "paused" and not self._stop_req:
                self._state = "running"
            self._cond.notify_all()

    def stop(self, wait: bool = False, timeout: float | None = None, reason: str | None = None) -> bool:
        """Ask the run to stop gracefully at the next step boundary (a checkpoint is saved).

        ``reason`` goes with the "stopped" event and the store's status message (default "stop requested").
        Safe to call from a signal handler in the training thread. Returns True when the run has ended
        (with ``wait``) or the request was made.
        """
        with self._cond:
            self._stop_req = True
            self._stop_reason = reason if reason is not None else self._stop_reason
            self._pause_req = False
            self._cond.notify_all()
        return self.wait(timeout) if wait else True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends (or ``timeout`` seconds); returns True when it is no longer running.

        It waits for the run's state, then for its background thread to deliver its last events. (A
        ``Thread.join`` cut short by Ctrl-C marks the thread as ended although it runs on, so the state decides.)
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if not self._cond.wait_for(lambda: self._state not in ("running", "paused"), timeout):
                return False
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return True

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused")

    def _check_can_run(self) -> None:
        if self._state in ("running", "paused") and (self._thread is None or self._thread is not threading.current_thread()):
            raise RuntimeError("this trainer is already running")
        if self._state in ("finished", "failed"):
            raise RuntimeError(f"this run has already {self._state}; create a new Trainer "
                               "(or Trainer.resume_from(checkpoint) to continue from the last checkpoint)")

    def _control(self) -> bool:
        """Honour pause/stop requests at a step boundary; returns True when the run must stop."""
        with self._cond:
            if self._stop_req:
                return True
            if not self._pause_req:
                return False
            self._state = "paused"
            self._cond.notify_all()
        self._emit("paused")
        self._store("set_status", self.run_id, "paused", None)
        with self._cond:
            self._cond.wait_for(lambda: not self._pause_req or self._stop_req)
            if self._stop_req:
                return True
            self._state = "running"
            self._cond.notify_all()
        self._emit("resumed")
        self._store("set_status", self.run_id, "running", None)
        return False

    # ------------------------------------------------------------------------------ helpers
    def _emit(self, kind: str, epoch: int | None = None, **data: Any) -> Event:
        return self.events.publish(Event(kind=kind, run_id=self.run_id, step=int(self.step),
                                         epoch=int(self.epoch if epoch is None else epoch), data=data))

    def _store(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.store is None:
            return
        try:
            getattr(self.store, method)(*args, **kwargs)
        except Exception:
            log.exception("run store %s(...) failed for run %s; training continues", method, self.run_id)

    def _log_eval(self, epoch: int, metrics: dict[str, float]) -> None:
        """Test-set metrics to the store, as ``kind="eval"`` where its ``log_metrics`` takes a kind."""
        if self.store is None:
            return
        if self._store_takes_kind is None:  # decided once: the store is the trainer's for its life
            try:
                self._store_takes_kind = "kind" in inspect.signature(self.store.log_metrics).parameters
            except (TypeError, ValueError):  # no signature to read
                self._store_takes_kind = False
        kind = {"kind": "eval"} if self._store_takes_kind else {}
        self._store("log_metrics", self.run_id, self.step, epoch, metrics, **kind)

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

    # ------------------------------------------------------------------------------ checkpoints
    def _global_rng_state(self) -> dict[str, Any]:
        return global_rng_state(cuda=self.device.type == "cuda")

    def _set_global_rng_state(self, rng: dict[str, Any]) -> None:
        set_global_rng_state(rng, cuda=self.device.type == "cuda")

    def checkpoint_state(self, finished: bool = False, partial_epoch: bool = False) -> dict[str, Any]:
        """Everything needed to continue the run, as plain types and tensors.

        A checkpoint taken inside an epoch (``partial_epoch``) also holds the epoch's progress: the
        batches done, their running sums and the loader's generator states at the epoch's start, so that
        a resume replays the same batch order and continues with the next batch.
        """
        rng = self._global_rng_state()
        return {
            "format": CHECKPOINT_FORMAT,
            "config_json": self.cfg.to_json(),
            "run_id": self.run_id,
            "label": self.label,
            "epoch": int(self.epoch),
            "step": int(self.step),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "delay_schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "delays_rounded": bool(self._delays_rounded),
            "finished": bool(finished),
            "partial_epoch": bool(partial_epoch),
            "history": to_plain(list(self.history)),
            "last_eval": to_plain(self.last_eval),
            "result": to_plain(self.result),
            "rng": rng,
            "loader_generators": loader_states(self.train_loader),
            "epoch_progress": to_plain(self._epoch_progress) if partial_epoch and self._epoch_progress else None,
            "time": time.time(),
        }

    def save_checkpoint(self, path: str | os.PathLike | None = None, **flags: bool) -> Path | None:
        """Atomically write the checkpoint (default ``run_dir/checkpoint.pt``); returns its path."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            return None
        save_checkpoint(path, self.checkpoint_state(**flags))
        self._store("set_checkpoint", self.run_id, str(path))  # the store keeps it absolute
        return path

    def _restore(self, ckpt: dict[str, Any], source) -> None:
        from .model import keep_neuron_constants, load_model_state

        self._check_same_batches(ckpt, source)
        self._warn_other_length(ckpt, source)
        try:
            changed = keep_neuron_constants(self.model, lambda: load_model_state(self.model, ckpt["model"]))
        except (RuntimeError, KeyError) as e:
            raise CheckpointError(f"checkpoint {source} does not match the configured model: {e}") from e
        if changed:  # fixed taus and thresholds are configuration: the resumed run uses the configured ones
            log.info("resume: %s taken from the configuration, not from checkpoint %s", ", ".join(changed), source)
        if not ckpt.get("delays_rounded"):
            try:
                self.optimizer.load_state_dict(ckpt["optimizer"])
            except (ValueError, KeyError) as e:
                raise CheckpointError(f"checkpoint {source}: optimizer state does not match: {e}") from e
            self._reset_rates_to_config()  # the rates saved are the old run's: a resume takes the configured ones
        self.epoch = int(ckpt["epoch"])
        self.step = int(ckpt["step"])
        if self.schedule is not None and ckpt.get("delay_schedule"):
            self.schedule.epoch = int(ckpt["delay_schedule"]["epoch"])
            self.schedule._apply()
        self.history = History(ckpt.get("history") or [])
        self.last_eval = ckpt.get("last_eval")
        self.result = ckpt.get("result")
        progress = ckpt.get("epoch_progress") if ckpt.get("partial_epoch") else None
        self._resume_progress = self._resumable(progress)
        self._set_global_rng_state(ckpt.get("rng") or {})
        restore_loader_states(self.train_loader, ckpt.get("loader_generators"))

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

    # ------------------------------------------------------------------------------ training
    def run(self, raise_errors: bool = True) -> dict[str, Any] | None:
        """Train in the calling thread until finished, stopped or failed; returns :attr:`result`.

        On failure the state becomes "failed", a "failed" event carries the message, and the
        error is re-raised when ``raise_errors`` (the background thread of :meth:`start` does not raise).
        :meth:`stop` stops gracefully, and then this returns None.

        Ctrl-C, in the main thread with Python's own handler and loaders without worker processes: the first one
        stops at the next step boundary, saves a checkpoint that resumes exactly, sets the state "stopped" and
        raises ``KeyboardInterrupt`` (whatever ``raise_errors``; if the run finished meanwhile, e.g. a Ctrl-C
        during its last evaluation, its result is returned). A second Ctrl-C interrupts at once: during an
        optimiser step, once the step is recorded, otherwise rolling the step in progress back (random states,
        batch-norm statistics), so the checkpoint still resumes exactly. Elsewhere (loaders with worker processes,
        a program with its own handler) a ``KeyboardInterrupt`` rolls the step back in the same way, except inside
        the optimiser step: a handler that calls :meth:`interrupt` (as the CLI's does) waits for its end instead.
        """
        with self._cond:
            self._check_can_run()
            self._state = "running"
            self._cond.notify_all()
        with self._first_ctrl_c_stops() as asked:
            result = self._run_guarded(raise_errors)
        if asked:
            if self.state == "stopped":  # stopped at a step boundary: end a loop over runs as Ctrl-C would
                raise KeyboardInterrupt
            with self._cond:  # the run finished before the stop came: nothing is left to stop
                self._stop_req, self._stop_reason = False, None
        return result

    def interrupt(self, exc: BaseException | None = None) -> None:
        """Raise ``exc`` (default ``KeyboardInterrupt``) now, from a signal handler of the thread that runs
        :meth:`run`, or, when that thread is inside an optimiser step, just after the step is recorded (an
        optimiser step cut in half could not be resumed). :meth:`run` then saves a checkpoint and re-raises it."""
        exc = exc if exc is not None else KeyboardInterrupt()
        if self._in_optimizer_step:
            self._pending_interrupt = exc
            return
        raise exc

    def _first_ctrl_c_stops(self) -> contextlib.AbstractContextManager[list[int]]:
        """The first Ctrl-C asks for a stop at the next step boundary, a later one calls :meth:`interrupt`; not with
        loaders that use worker processes (Ctrl-C reaches them too, and a spawned worker dies of it)."""
        if self._loaders_use_worker_processes():
            return contextlib.nullcontext([])

        def first(signum: int) -> bool:
            self.stop(reason="interrupted (Ctrl-C)")
            tell(f"\nrun {self.run_id}: stopping at the next training step (Ctrl-C again to interrupt at once)")
            return True

        return handle_signals(first, lambda signum: self.interrupt())

    def _loaders_use_worker_processes(self) -> bool:
        return any(int(getattr(loader, "num_workers", 0) or 0) > 0 for loader in (self.train_loader, self.test_loader))

    def _run_guarded(self, raise_errors: bool) -> dict[str, Any] | None:
        try:
            return self._train()
        except KeyboardInterrupt:
            self._on_stopped(partial=True, reason="interrupted")
            raise
        except BaseException as e:  # noqa: BLE001 - report every failure
            msg = str(e) if isinstance(e, TrainingDiverged) else f"{type(e).__name__}: {e}"
            self.error = msg
            self._set_state("failed")
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            if not isinstance(e, TrainingDiverged):
                log.error("training run %s failed:\n%s", self.run_id, tb)
            self._emit("failed", message=msg, error_type=type(e).__name__, traceback=tb,
                       checkpoint=str(self.checkpoint_path) if self.checkpoint_path and self.checkpoint_path.exists() else None)
            self._store("set_status", self.run_id, "failed", msg)
            if raise_errors:
                raise
            return None

    def _train(self) -> dict[str, Any] | None:
        cfg = self.cfg
        self._check_schedules_can_run()
        n_params = sum(p.numel() for p in self.model.parameters())
        self._emit("started", config=cfg.to_dict(), label=self.label, name=self.name, device=str(self.device),
                   n_parameters=int(n_params), start_epoch=int(self.epoch), epochs=int(cfg.epochs))
        self._store("set_status", self.run_id, "running", None)
        self._start_step = self.step
        for epoch in range(self.epoch, cfg.epochs):
            t0 = time.time()
            summary = self._train_epoch(epoch)
            if summary is None:
                self._on_stopped(partial=True, reason=self._stop_reason or "stop requested")
                return None
            self.epoch = epoch + 1
            if self.schedule is not None:
                summary["sigma"] = self.schedule.sigma_at(epoch)
                self.schedule.step()
            summary["epoch_time_s"] = time.time() - t0
            self._epoch_progress = None  # the epoch is trained: a stop from here on resumes with the next one
            ev = None
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                try:
                    ev = self.evaluate()
                except KeyboardInterrupt:  # keep the trained epoch's record; its evaluation is lost
                    self.last_eval = None  # not the previous epoch's: the run's final result must be evaluated anew
                    self._record_epoch(epoch, summary, None)
                    raise
                self.last_eval = ev
            self._record_epoch(epoch, summary, ev)
            self.save_checkpoint()
        return self._finish()

    def _record_epoch(self, epoch: int, summary: dict[str, Any], ev: dict[str, Any] | None) -> None:
        """The epoch's record (and its evaluation's, if any) into the history, the events and the store."""
        rec = {"kind": "epoch", "epoch": epoch, "step": self.step, **summary}
        if ev is not None:
            rec.update({f"test_{k}": v for k, v in ev.items()})
        self.history.append(rec)
        self._emit("epoch", epoch=epoch, **{k: v for k, v in rec.items() if k not in ("kind", "epoch", "step")})
        self._store("log_metrics", self.run_id, self.step, epoch, _scalars("", summary))
        if ev is not None:
            self.history.append({"kind": "evaluation", "epoch": epoch, "step": self.step, "phase": "epoch", **ev})
            self._emit("evaluation", epoch=epoch, phase="epoch", **ev)
            self._log_eval(epoch, _scalars("test_", ev))

    def _train_epoch(self, epoch: int) -> dict[str, float] | None:
        """One epoch; returns its summary, or None when a stop was requested."""
        from tqdm.auto import tqdm

        cfg, model, opt = self.cfg, self.model, self.optimizer
        model.train()
        delay_layers = self._delay_layers()
        bounded_layers = [m for m in model.modules() if callable(getattr(m, "clamp_parameters_", None))]
        from snnlab.metrics import check_batch, input_dtype, model_input, model_output  # (pandas: at training, not at import)

        in_dtype = input_dtype(model)
        n_batches = self._batches_per_epoch()
        # Ctrl-C reaches only the main thread: a background run (start()) never needs the step snapshots
        interruptible = threading.current_thread() is threading.main_thread()
        norm_buffers = batch_norm_buffers(model)
        resume, self._resume_progress = self._resume_progress, None
        sums = {"loss": 0.0, "accuracy": 0.0, "spikes_per_sample": 0.0}
        n_seen = 0
        done = int(resume["batches_done"]) if resume else 0
        if resume:
            sums.update({k: float(v) for k, v in resume["sums"].items()})
            n_seen = int(resume["n_seen"])
        bar = tqdm(total=n_batches, initial=done, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not self.progress,
                   leave=False)
        self._epoch_progress = {"batches_done": done, "sums": dict(sums), "n_seen": n_seen,
                                "loader_generators": resume["loader_generators"] if resume else None}
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
                x, y = checked
                # the model's floating dtype (integer event frames, float32 data for a float64 model), as evaluate
                x = model_input(x.to(self.device, non_blocking=True), self.device, in_dtype)
                y = y.to(self.device, non_blocking=True)
                self._spike_counts, self._spike_outputs = [], []
                self._counting = True
                try:
                    with forward_precision(cfg.precision, self.device):
                        # ((output, extras) gives output, as evaluate() takes it); the first step refuses a spike
                        # readout of an LI's membrane before any update
                        out = model_output(model, x, cfg.readout if self.step == 0 else None)
                        lg = logits(out, cfg.readout)
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
                    rec = {"kind": "step", "epoch": epoch, "step": self.step, "batch": i, "loss": loss_v,
                           "accuracy": acc, "spikes_per_sample": spikes, "lr": float(opt.param_groups[0]["lr"]),
                           "time": time.time()}
                    for k in sums:
                        sums[k] += rec[k] * bs
                    n_seen += bs
                    self._epoch_progress.update(batches_done=i + 1, sums=dict(sums), n_seen=n_seen)
                    self.history.append(rec)
                    self._boundary = None
                finally:
                    self._in_optimizer_step = False
                self._emit("step", epoch=epoch, batch=i, n_batches=n_batches, loss=loss_v, accuracy=acc,
                           spikes_per_sample=spikes, lr=rec["lr"])
                if self.step % self.log_every == 0:
                    self._store("log_metrics", self.run_id, self.step, epoch,
                                {"loss": loss_v, "accuracy": acc, "spikes_per_sample": spikes})
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
        """``iter(train_loader)``, recording the loader's generator states at the epoch's start.

        Resuming inside an epoch: the loader's generators are set back to the epoch's start, the batches
        already trained are drawn again and dropped (the same order, the same encoder draws), and the
        global random states are left as the checkpoint had them.
        """
        if resume is None:
            self._epoch_progress["loader_generators"] = loader_states(self.train_loader)
            return iter(self.train_loader)
        restore_loader_states(self.train_loader, resume.get("loader_generators"))
        rng = self._global_rng_state()
        it = iter(self.train_loader)
        for _ in range(int(resume["batches_done"])):
            next(it, None)
        self._set_global_rng_state(rng)
        return it

    def _finish(self) -> dict[str, Any]:
        done = self.result or {}
        untrained = self.step == self._start_step  # resumed with nothing left to train
        if self._delays_rounded and untrained and done.get("rounded") is not None:
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
        if self.store is not None and hasattr(self.store, "set_summary"):
            # the numbers of the model as deployed: with integer delays when the run learned delays
            self._store("set_summary", self.run_id, dict(rounded if rounded is not None else final))
        self.save_checkpoint(finished=True)
        return self._mark_finished()

    def _evaluate_rounded(self) -> dict[str, Any]:
        """Evaluate the model with its rounded (integer) delays and record it as the "rounded" evaluation."""
        rounded = self.evaluate()
        last_epoch = max(self.epoch - 1, 0)
        self.history.append({"kind": "evaluation", "epoch": last_epoch, "step": self.step, "phase": "rounded",
                             **rounded})
        self._emit("evaluation", epoch=last_epoch, phase="rounded", **rounded)
        self._log_eval(last_epoch, _scalars("rounded_test_", rounded))
        return rounded

    def _mark_finished(self) -> dict[str, Any]:
        self._set_state("finished")
        self._emit("finished", result=self.result)
        self._store("set_status", self.run_id, "finished", None)
        return self.result

    def _roll_back_to_boundary(self) -> None:
        """Undo a step interrupted before its optimiser step (a second Ctrl-C), so the checkpoint resumes exactly."""
        boundary, self._boundary = self._boundary, None
        if boundary is not None:
            roll_back(self.model, boundary, cuda=self.device.type == "cuda")

    def _on_stopped(self, partial: bool, reason: str) -> None:
        self._roll_back_to_boundary()
        self._pending_interrupt = None
        # run() again on this trainer continues exactly where the checkpoint would
        self._resume_progress = self._resumable(self._epoch_progress) if partial else None
        path = None
        try:
            path = self.save_checkpoint(partial_epoch=partial)
        except Exception:
            log.exception("could not save the checkpoint of stopped run %s", self.run_id)
        finally:  # stopped even if another Ctrl-C cuts the saving short (the previous checkpoint stays whole)
            with self._cond:
                self._state = "stopped"
                self._stop_req = False
                self._stop_reason = None
                self._cond.notify_all()
        self._emit("stopped", reason=reason, checkpoint=str(path) if path else None)
        self._store("set_status", self.run_id, "stopped", reason)

    @staticmethod
    def _resumable(progress: dict[str, Any] | None) -> dict[str, Any] | None:
        """An epoch's progress to resume from: batches done, or none yet but its shuffle drawn already."""
        if progress and (progress.get("batches_done") or progress.get("loader_generators") is not None):
            return progress
        return None

    def history_frame(self, kind: str | None = None):
        """:attr:`history` as a pandas DataFrame (optionally only records of ``kind``)."""
        return self.history.frame(kind)

    def __repr__(self) -> str:
        return (f"Trainer(run_id={self.run_id!r}, state={self.state!r}, epoch={self.epoch}/{self.cfg.epochs}, "
                f"step={self.step}, label={self.label!r})")
