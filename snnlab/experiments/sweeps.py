"""Grid sweeps over experiment configurations, on a process pool, a dask cluster or one thread.

Each grid point trains one run (logged in the run store when one is given) in a worker; the
result is the trade-off table (one row per run: the varied settings, ``run_id``, ``label``,
``status`` and the metrics of the model as deployed) and its Pareto front.

Resuming: with ``run_root``, a grid point keeps its checkpoint in ``run_root/<hash of its config>``
(``<hash>.1``, ``<hash>.2``... for repeats of one config in a grid; ``tau_mem=20`` and ``20.0`` hash alike, and a
folder an older snnlab named otherwise is still found, ``run_root/000``, ``001``... of a sweep before 2026-12-06
included, matched by the configuration its checkpoint records: :func:`run_folders`). A rerun with the same ``run_root``
reuses every grid point whose checkpoint is finished (no training; its run keeps its id, and a store that
lacks it, e.g. another ``store_path``, gets it with its results), resumes every
other checkpoint of the same config (a stopped, failed or killed run continues from its last
checkpoint, under its run id) and trains the rest. Another sweep (other configs) in the same
``run_root`` gets other folders, so it never overwrites a run. Without ``run_root`` nothing is saved
and a rerun trains everything again. Each worker decides this again just before its grid point trains, so two
sweeps of one grid on one ``run_root`` at the same time share the work: a point the other sweep finished meanwhile
is reused, one it is training gives a "skipped" row ("being trained by another process (pid N); rerun the sweep
later to collect it"), with no run of its own in the store.

Interrupting: Ctrl-C (``KeyboardInterrupt``) cancels the queued runs, asks the running ones to stop at
their next step (their checkpoints are saved, their status becomes "stopped"), waits for them (a second
Ctrl-C kills them) and raises :class:`SweepInterrupted`, whose ``result`` holds the table so far: the
finished rows, "stopped" ones, and "cancelled" for runs never started. A pool made with a cancel event
(``process_pool(n, cancel=cancel_event())``, or ``thread_pool(cancel=...)`` for runs in this process) is cancelled
from outside by setting it (what a closed dashboard tab
does): its workers start no further run, even one the pool already handed them (``shutdown(cancel_futures=True)``
cannot take those back), and its row says "cancelled"; a run still building its trainer (loading its data) stops
before its first step ("stopped", resumable); runs already training finish. A worker that dies (the OOM
killer) breaks the process pool: every run not finished by then is reported as a "failed" row, none is lost,
and a rerun with the same ``run_root`` reuses the finished ones.

Example:
    >>> from snnlab.training import ExperimentConfig
    >>> base = ExperimentConfig(hidden=[32], epochs=1, max_batches_per_epoch=3)
    >>> [c.neuron for c in expand_grid(base, {"neuron": ["ttfs", "multi_spike"]})]
    ['ttfs', 'multi_spike']
    >>> run_folder_names([base, base.copy(seed=1), base])[0] == run_folder_names([base])[0]
    True
"""
from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import queue
import re
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import (BrokenExecutor, CancelledError, Executor, ProcessPoolExecutor,
                                ThreadPoolExecutor, wait)
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import param
import torch

from snnlab.core.validation import is_integer, user_stacklevel
from snnlab.data.cache import params_key, write_atomically
from snnlab.metrics.pareto import pareto_front
from snnlab.metrics.robustness import perturb, robustness_curve
from snnlab.training.config import ConfigError, ExperimentConfig, unknown_keys_error, with_changes
from snnlab.training.interrupts import hangup_signal
from snnlab.training.precision import forward_precision
from snnlab.training.resume import checkpoint_threads, other_threads_said

DEFAULT_OBJECTIVES = {"accuracy": "max", "spikes_per_sample": "min"}
METRIC_COLUMNS = ("accuracy", "loss", "spikes_per_sample", "activation_sparsity", "synops_per_sample",
                  "energy_per_sample_j", "latency_steps")
def robust_column(kind: str, level: float) -> str:
    """The sweep table's column of the accuracy under perturbation ``kind`` at ``level``.

    Example:
        >>> robust_column("deletion", 0.30)
        'robust_accuracy_deletion_0.3'
    """
    return f"robust_accuracy_{kind}_{level:g}"


# store statuses of a run that has not ended ("died": running, as stored, but its process is gone)
_UNFINISHED = ("created", "idle", "running", "paused", "died")
_NOT_STARTED = "the sweep was interrupted before this run started"
_CANCELLED = "the sweep was cancelled before this run's first step"  # (a stop request's reason: the store's message)


def expand_grid(base: ExperimentConfig, grid: dict[str, list]) -> list[ExperimentConfig]:
    """Every combination of ``grid`` applied to ``base`` (validated; bad keys or values raise ``ConfigError``).

    A ``data_kwargs`` value is merged into the base's key by key (:func:`snnlab.training.config.with_changes`), so a
    grid over ``channel_bin`` keeps a preset's ``time_window``. The values of a field may be a list, a tuple or a
    1-D array or tensor (``np.arange(3)``, ``torch.linspace(1e-3, 1e-2, 4)``): their elements become Python numbers.

    Example:
        >>> from snnlab.training import preset
        >>> points = expand_grid(preset("dcls_shd"), {"data_kwargs": [{"channel_bin": 10}]})
        >>> points[0].data_kwargs["channel_bin"], "time_window" in points[0].data_kwargs
        (10, True)
    """
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("sweep grid must be a non-empty dict {field: [values, ...]}")
    unknown = [k for k in grid if k not in ExperimentConfig.fields()]
    if unknown:  # (an UnknownKeyError, a ConfigError: with the closest field as a hint, as the constructor gives)
        raise unknown_keys_error(unknown, ExperimentConfig.fields(), "sweep grid: unknown field(s)", "valid fields")
    grid = {k: list(v) if isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim >= 1 else v for k, v in grid.items()}
    for k, v in grid.items():
        if not isinstance(v, (list, tuple)) or len(v) == 0:
            raise ConfigError(f"sweep grid: {k!r} needs a non-empty list of values, got {v!r}")
    keys = list(grid)
    return [ExperimentConfig.from_dict(with_changes(base.to_dict(), dict(zip(keys, combo))))
            for combo in itertools.product(*(grid[k] for k in keys))]


def folder_identity(cfg: ExperimentConfig) -> dict[str, Any]:
    """What a grid point's folder name hashes: ``cfg.identity_dict()`` with an int in a real-valued field (a
    ``param.Number`` that is no ``param.Integer``) written as the float it equals, so ``tau_mem=20`` (a Python grid)
    and ``tau_mem=20.0`` (``--grid tau_mem=20``, a form's text box), one configuration, get one folder. Integer
    fields (``epochs``, ``seed``...), lists and ``data_kwargs`` are kept as they are.

    Example:
        >>> folder_identity(ExperimentConfig(tau_mem=20))["tau_mem"], folder_identity(ExperimentConfig(epochs=3))["epochs"]
        (20.0, 3)
    """
    out = cfg.identity_dict()
    for k, v in out.items():
        field = ExperimentConfig.param[k]
        if isinstance(v, int) and not isinstance(v, bool) and isinstance(field, param.Number) \
                and not isinstance(field, param.Integer):
            out[k] = float(v)
    return out


def _numbered(digests: list[str]) -> list[str]:
    """Each digest as a folder name, ``.1``, ``.2``... added to its repeats."""
    names, seen = [], {}
    for digest in digests:
        k = seen[digest] = seen.get(digest, -1) + 1
        names.append(digest if k == 0 else f"{digest}.{k}")
    return names


def run_folder_names(configs: list[ExperimentConfig]) -> list[str]:
    """The folder of each grid point under ``run_root``: a hash of its config (:func:`folder_identity`; ``.1``,
    ``.2``... for repeats). A run root written before ints and floats were hashed alike may hold a point under
    another name: :func:`run_folders` finds it.

    Example:
        >>> from snnlab.training import ExperimentConfig
        >>> a, b = ExperimentConfig(seed=0), ExperimentConfig(seed=1)
        >>> names = run_folder_names([a, b, a])
        >>> names[2] == names[0] + ".1" and names[0] != names[1] and len(names[0]) == 12
        True
        >>> run_folder_names([ExperimentConfig(tau_mem=20)]) == run_folder_names([ExperimentConfig(tau_mem=20.0)])
        True
    """
    return _numbered([params_key(folder_identity(cfg))[:12] for cfg in configs])


def _legacy_run_folder_names(configs: list[ExperimentConfig]) -> list[str]:
    """The folder names :func:`run_folder_names` gave before :func:`folder_identity`: a hash of
    ``cfg.identity_dict()`` as it is, an int apart from the float it equals (the same name wherever the config
    holds no int in a real-valued field)."""
    return _numbered([params_key(cfg.identity_dict())[:12] for cfg in configs])


def run_folders(root: str | os.PathLike, configs: list[ExperimentConfig]) -> list[Path]:
    """The folder of each grid point under the run root ``root``: ``root / name`` (:func:`run_folder_names`), or
    the folder an earlier snnlab named it (``tau_mem=20`` apart from ``tau_mem=20.0``) where only that one exists,
    so its checkpoint is still reused or resumed; failing its own, the older folder of another point of the same
    configuration (a grid holding ``tau_mem=20`` and ``20.0``, which an older snnlab kept apart). Failing those, the
    folder a sweep before 2026-12-06 named by grid index (``000``, ``001``...) whose checkpoint records the point's
    configuration (its metadata read, no model loaded; never matched by index: the grid's order may differ); index
    folders that match no point are left unused, with a ``RuntimeWarning`` naming them and why. No two points get
    one folder.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> cfg = ExperimentConfig(tau_mem=20)
        >>> (root / _legacy_run_folder_names([cfg])[0]).mkdir()    # a folder an older sweep made
        >>> run_folders(root, [cfg])[0].name == _legacy_run_folder_names([cfg])[0] != run_folder_names([cfg])[0]
        True
    """
    root = Path(root)
    names, legacy = run_folder_names(configs), _legacy_run_folder_names(configs)
    chosen: list[str | None] = [name if (root / name).is_dir() else None for name in names]
    taken = {name for name in chosen if name is not None}
    for i, old in enumerate(legacy):
        if chosen[i] is None and old not in taken and (root / old).is_dir():
            chosen[i] = old
            taken.add(old)
    same: dict[str, list[str]] = {}  # {new name less its ".k": the older names of the points of that configuration}
    for name, old in zip(names, legacy):
        same.setdefault(name.split(".")[0], []).append(old)
    for i, name in enumerate(names):
        if chosen[i] is None:
            free = [old for old in same[name.split(".")[0]] if old not in taken and (root / old).is_dir()]
            if free:
                chosen[i] = free[0]
                taken.add(free[0])
    _adopt_index_folders(root, configs, names, chosen, taken)
    return [root / (name if name is not None else new) for name, new in zip(chosen, names)]


#: the folder names a sweep before 2026-12-06 gave its grid points: the index in its grid, ``f"{i:03d}"`` (under 12
#: digits: a hashed name of 12 decimal digits is no index)
_INDEX_NAME = re.compile(r"\d{3,11}")


def _index_folders(root: Path, taken: set[str]) -> list[Path]:
    """The folders of ``root`` a sweep before 2026-12-06 named by grid index (``000``, ``001``...), each holding a
    checkpoint, in index order; those in ``taken`` (a hashed name of this sweep's points) left out."""
    from snnlab.training.run_folder import CHECKPOINT_NAME

    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _INDEX_NAME.fullmatch(p.name) and p.name == f"{int(p.name):03d}"
             and p.name not in taken and (p / CHECKPOINT_NAME).is_file()]
    return sorted(found, key=lambda p: int(p.name))


def _saved_identity(folder: Path) -> dict[str, Any]:
    """:func:`folder_identity` of the configuration the checkpoint in ``folder`` records (its metadata only: tensors
    mapped, not read, no model built); ``ValueError`` saying why for one that cannot be read."""
    from snnlab.training.checkpoint import CheckpointError, load_checkpoint
    from snnlab.training.run_folder import CHECKPOINT_NAME

    try:
        ck = load_checkpoint(folder / CHECKPOINT_NAME, mmap=True, history=False)
        with warnings.catch_warnings():  # (data_kwargs it drops are said when the point is planned: _plan)
            warnings.simplefilter("ignore")
            return folder_identity(ExperimentConfig.from_saved(ck["config_json"]))
    except (CheckpointError, ConfigError, OSError, KeyError, TypeError) as exc:
        raise ValueError(f"its checkpoint's configuration cannot be read ({type(exc).__name__}: {exc})") from None


def _adopt_index_folders(root: Path, configs: list[ExperimentConfig], names: list[str], chosen: list[str | None],
                         taken: set[str]) -> None:
    """Give each point without a folder yet (``chosen[i] is None``) the index folder (:func:`_index_folders`) whose
    checkpoint records its configuration (compared as :func:`run_folder_names` compares them: the hash of
    :func:`folder_identity`; never by index, the grid's order may differ), in index order for repeats of one
    configuration; updates ``chosen`` and ``taken``. Index folders left unused are warned about once, naming them."""
    folders = _index_folders(root, taken)
    if not folders:
        return
    saved: dict[str, dict[str, Any] | str] = {}  # {folder name: its identity, or why it has none}
    for folder in folders:
        try:
            saved[folder.name] = _saved_identity(folder)
        except ValueError as exc:
            saved[folder.name] = str(exc)
    for name, identity in saved.items():
        if isinstance(identity, str):
            continue
        digest = params_key(identity)[:12]
        free = [i for i, new in enumerate(names) if chosen[i] is None and new.split(".")[0] == digest]
        if free:
            chosen[free[0]] = name
            taken.add(name)
    unused = {name: why for name, why in saved.items() if name not in taken}
    if unused:
        _warn_unused_index_folders(root, configs, names, chosen, unused)


#: how many unused index folders the warning of :func:`_warn_unused_index_folders` says why of (the rest named only)
_REASONS_SHOWN = 5


def _with_defaults(identity: dict[str, Any]) -> dict[str, Any]:
    """``identity`` (:func:`folder_identity`) with every field it leaves out (those added later, at their default)
    put back at its default: two of them then compare field by field, a difference showing the value, not None.

    Example:
        >>> _with_defaults(folder_identity(ExperimentConfig()))["dropout"]
        0.0
    """
    return {**{k: ExperimentConfig.param[k].default for k in ExperimentConfig.fields()}, **identity}


def _warn_unused_index_folders(root: Path, configs: list[ExperimentConfig], names: list[str],
                               chosen: list[str | None], unused: dict[str, dict[str, Any] | str]) -> None:
    """Warn that the index folders ``unused`` (``{name: the identity its checkpoint records, or why none}``) match no
    grid point of this sweep (left as they are), each with why (the first :data:`_REASONS_SHOWN`; the others named
    only): the settings in which it differs from the closest point, the point of its configuration that has a folder
    already, or its unreadable checkpoint."""
    idents = [_with_defaults(folder_identity(cfg)) for cfg in configs]
    reasons = []
    for name, identity in list(unused.items())[:_REASONS_SHOWN]:
        if isinstance(identity, str):
            reasons.append(f"{name}: {identity}")
            continue
        identity = _with_defaults(identity)
        diffs = [sorted(k for k in set(identity) | set(own) if identity.get(k) != own.get(k)) for own in idents]
        i = min(range(len(idents)), key=lambda j: len(diffs[j]))
        if not diffs[i]:
            reasons.append(f"{name}: the configuration of grid point {i}, which has its folder "
                           f"{chosen[i] or names[i]} already")
            continue
        shown = ", ".join(f"{k}={identity.get(k)!r} where this sweep has {idents[i].get(k)!r}" for k in diffs[i][:3])
        more = f" and {len(diffs[i]) - 3} more" if len(diffs[i]) > 3 else ""
        reasons.append(f"{name}: {shown}{more}")
    if len(unused) > _REASONS_SHOWN:
        reasons.append(f"and {len(unused) - _REASONS_SHOWN} more: {', '.join(list(unused)[_REASONS_SHOWN:])}")
    warnings.warn(f"sweep: run_root {root} holds {len(unused)} folder(s) that an snnlab before 2026-12-06 named by "
                  f"grid index whose run matches no grid point of this sweep, left unused ({'; '.join(reasons)}). A "
                  "grid point reuses or resumes such a folder only when its whole configuration is the one the "
                  "folder's checkpoint records: rerun with those settings to collect them, or move them away",
                  RuntimeWarning, stacklevel=user_stacklevel())


def _robustness_list(robustness) -> list[tuple[str, float]]:
    """``None``, one ``(kind, level)`` or a list of them -> a checked list (``ValueError`` for a bad one)."""
    if robustness is None:
        return []
    if isinstance(robustness, tuple) and len(robustness) == 2 and isinstance(robustness[0], str):
        robustness = [robustness]
    out = []
    for r in robustness:
        if not isinstance(r, (tuple, list)) or len(r) != 2:
            raise ValueError(f"sweep: robustness entries are (perturbation, level) pairs, got {r!r}")
        kind, level = str(r[0]), float(r[1])
        try:
            perturb(torch.zeros(2, 1, 1), kind, level)  # the perturbation's own checks of kind and level
        except ValueError as exc:
            raise ValueError(f"sweep: robustness {kind}:{level:g}: {exc}") from None
        out.append((kind, level))
    return out


# ------------------------------------------------------------------ worker side
_worker_interrupted = False  # a worker got SIGINT: runs it has yet to start are cancelled
_worker_cancel = None  # its pool's cancel event (process_pool(cancel=...)); once set, the same as far as starting goes
_worker_trainer = None  # the Trainer a worker (process, or the one thread of a thread pool) is running
_thread_worker = threading.local()  # .cancel: the cancel event of the thread_pool whose thread this is


def _pool_cancel() -> Any:
    """The cancel event of the pool running this call: a :func:`thread_pool`'s (per thread: several sweeps may run in
    one dashboard server), else a :func:`process_pool` worker's; None for neither."""
    cancel = getattr(_thread_worker, "cancel", None)
    return cancel if cancel is not None else _worker_cancel


def _worker_cancelled() -> bool:
    """Whether this worker must start no further run: it got SIGINT, or its pool's cancel event is set."""
    cancel = _pool_cancel()
    return _worker_interrupted or (cancel is not None and cancel.is_set())


def _stop_if_cancelled(trainer) -> bool:
    """At a run's "started" event, just before its first step: stop it there (True) if its pool's cancel event was set
    while its trainer was being built (data loaded, model made: seconds, a dataset's first download far longer)."""
    cancel = _pool_cancel()
    if cancel is None or not cancel.is_set():
        return False
    trainer.stop(reason=_CANCELLED)
    return True


def _worker_signal(signum, frame) -> None:
    """SIGINT or SIGHUP in a sweep worker: stop its run at the next step (checkpoint saved), start no other."""
    global _worker_interrupted
    _worker_interrupted = True
    trainer = _worker_trainer
    if trainer is not None:
        trainer.stop(reason="sweep interrupted")


def _reset_interrupt() -> None:
    global _worker_interrupted
    _worker_interrupted = False


def _worker_signals() -> set[int]:
    """The signals a sweep worker winds its run down on (:func:`_worker_signal`): SIGINT, and SIGHUP (the terminal
    closing, an ssh session dropped, reaches the workers too) unless it is ignored (under nohup: ignored, as it was)."""
    hup = hangup_signal()
    return {signal.SIGINT} | ({hup} if hup is not None else set())


@contextlib.contextmanager
def _signals_held_while_workers_start(pool: Executor) -> Iterator[None]:
    """Block the workers' signals (:func:`_worker_signals`) in this thread while ``pool`` (a process pool) starts its
    workers, which inherit the blocked mask: a Ctrl-C while a worker still imports torch, before :func:`_worker_init`
    installs its handler and unblocks them, no longer kills it (every run of the sweep then "failed", the pool
    broken) but reaches that handler (the runs not started: "cancelled"). This process's own Ctrl-C comes when
    they are unblocked, on leaving. Only snnlab's own pools (:func:`process_pool`): a pool of the user's own keeps
    its workers' signals."""
    if getattr(pool, "_initializer", None) is not _worker_init or not hasattr(signal, "pthread_sigmask"):
        yield  # (a pool of the user's own: its workers would never unblock them)
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _worker_signals())
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _worker_init(cancel: Any = None) -> None:
    """Initializer of :func:`process_pool` workers: SIGINT winds the worker's run down instead of killing it, a
    worker whose sweep process dies (SIGKILL) stops its run and exits rather than train on for nobody, and once
    ``cancel`` (the pool's cancel event, if any) is set the worker starts no further run."""
    global _worker_cancel
    _worker_cancel = cancel
    for signum in _worker_signals():
        signal.signal(signum, _worker_signal)
    if hasattr(signal, "pthread_sigmask"):  # (held while the sweep started this worker: one that came meanwhile
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _worker_signals())  # is handled now, the run not started)
    parent = multiprocessing.parent_process()  # (its pid, not getppid(): the parent may already be gone)
    threading.Thread(target=_exit_with_parent, args=(parent.pid if parent is not None else os.getppid(),),
                     name="snnlab-sweep-parent-watch", daemon=True).start()


def _exit_with_parent(parent: int, poll_s: float = 1.0, grace_s: float = 120.0) -> None:
    """A sweep worker's watch: once its parent is gone (the worker was re-parented), stop the run at its next step
    (its checkpoint is saved, so a rerun of the sweep resumes it) and exit, after at most ``grace_s`` seconds."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    _worker_signal(signal.SIGTERM, None)
    deadline = time.monotonic() + grace_s
    while _worker_trainer is not None and time.monotonic() < deadline:
        time.sleep(0.2)
    os._exit(1)


def default_workers(n_runs: int) -> int:
    """Worker processes for ``n_runs`` runs: one per CPU, at most one per run."""
    return max(1, min(n_runs, os.cpu_count() or 1))


def cancel_event() -> Any:
    """An event for :func:`process_pool`'s ``cancel``: set it, and the pool's workers start no further run.

    Example:
        >>> cancel = cancel_event()
        >>> cancel.is_set()
        False
    """
    return multiprocessing.get_context("spawn").Event()


def process_pool(max_workers: int, cancel: Any = None) -> ProcessPoolExecutor:
    """A "spawn" process pool for :func:`sweep` whose workers handle Ctrl-C gracefully (see the module doc).

    ``cancel``: an event from :func:`cancel_event`; once it is set, a worker starts no further run (its row says
    "cancelled"; one whose trainer is still being built stops before its first step; runs already training finish).
    ``shutdown(cancel_futures=True)`` alone cannot cancel the calls the pool has already handed to its workers' queue
    (up to ``max_workers + 1``).

    Example:
        >>> pool = process_pool(1, cancel=cancel_event())
        >>> pool.shutdown()
    """
    from multiprocessing.synchronize import Event

    if cancel is not None and not isinstance(cancel, Event):
        raise TypeError(f"process_pool: cancel must be an event from cancel_event(), got {type(cancel).__name__}")
    if getattr(getattr(cancel, "_flag", None), "_is_fork_ctx", False):  # multiprocessing.Event() where fork is default
        raise ValueError("process_pool: cancel is an event of the 'fork' context, which the pool's 'spawn' workers "
                         "cannot share (the sweep would fail at its first run); make it with cancel_event()")
    return ProcessPoolExecutor(max_workers=max_workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(cancel,))


def thread_pool(cancel: Any = None) -> ThreadPoolExecutor:
    """A one-thread pool for :func:`sweep` in this process (one run at a time; see :func:`sweep` for why one).

    ``cancel``: an event (:func:`cancel_event` or ``threading.Event()``); once it is set, the pool starts no further
    run (its row says "cancelled") and a run whose trainer is still being built stops before its first step; a run
    already training finishes. Its ``shutdown(cancel_futures=True)`` cancels the queued runs too, but not the one
    being built.

    Example:
        >>> pool = thread_pool(cancel=threading.Event())
        >>> pool.shutdown()
    """
    if cancel is not None and not (callable(getattr(cancel, "is_set", None)) and callable(getattr(cancel, "set", None))):
        raise TypeError(f"thread_pool: cancel must be an event (cancel_event() or threading.Event()), got "
                        f"{type(cancel).__name__}")
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="snnlab-sweep", initializer=_thread_worker_init,
                              initargs=(cancel,))


def _thread_worker_init(cancel: Any) -> None:
    _thread_worker.cancel = cancel


def _register_failed(store, run_id: str | None, cfg: ExperimentConfig, name: str | None, message: str) -> str:
    """Mark ``run_id`` failed in ``store``, registering it first if the store never saw it (one another process
    registered meanwhile counts as seen). A row another process holds live ("running", "paused": the same run resumed
    there) is left as it is."""
    import sqlite3

    from snnlab.experiments.store import STATUSES

    try:
        if run_id is None:
            raise KeyError(run_id)
        store.get_run(run_id)
    except KeyError:
        try:
            run_id = store.create_run(cfg.to_dict(), name or cfg.label(), run_id=run_id)
        except sqlite3.IntegrityError:  # registered by another process since get_run
            pass
    store.set_status(run_id, "failed", message, only_if=tuple(s for s in STATUSES if s not in ("running", "paused")))
    return run_id


def run_one(config: dict, store_path: str | None = None, run_dir: str | None = None,
            robustness: Any = None, threads: int = 1, name: str | None = None, run_id: str | None = None,
            resume: bool = False, report_plan: bool = False) -> dict[str, Any]:
    """Train one configuration and return its row of the trade-off table (runs in a worker process).

    ``run_id`` registers the run under that id; ``resume`` continues the checkpoint in ``run_dir``, as
    decided again here (another sweep on the same run root may have started or finished the point since): a finished
    checkpoint's row is reused, and a folder another training holds gives a ``status="skipped"`` row.
    Never raises for a failed run: the row then has ``status="failed"`` and the ``error`` message.
    A run stopped by Ctrl-C in a worker gives a "stopped" row; a worker already interrupted, or whose pool's cancel
    event is set (:func:`process_pool`, :func:`thread_pool`), starts no run ("cancelled"); a cancel that comes while the run's trainer is
    being built stops it before its first step (a "stopped" row; its checkpoint, if any, resumes it). The run uses
    ``threads`` torch CPU threads; the caller's setting is put back after (a sweep in the caller's own process leaves
    it as it was). With ``report_plan`` (what :func:`sweep` asks) a row of a point in ``run_dir`` also says what the
    worker did with it, under the key ``"_plan"``: "reuse", "resume", "new", or None (skipped, or its checkpoint cannot
    be continued); the sweep counts its ``reused``/``resumed`` points from it and takes the key out of its table.
    """
    cfg = ExperimentConfig.from_dict(config)
    if _worker_cancelled():
        return {"run_id": None, "label": cfg.label(), "status": "cancelled", "error": _NOT_STARTED}
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    try:
        row = _train_row(cfg, store_path, run_dir, robustness, name, run_id, resume)
        if not report_plan or run_dir is None:
            row.pop(_PLAN_KEY, None)
        return row
    finally:
        torch.set_num_threads(before)


#: how many times a worker decides again what to do with a grid point whose folder another sweep took meanwhile
_REPLANS = 3
#: the key of a worker's row that says what it did with its grid point (run_one(report_plan=True)); not a table column
_PLAN_KEY = "_plan"


def _skipped_row(cfg: ExperimentConfig, run_id: str | None, holder: str) -> dict[str, Any]:
    """The row of a grid point whose folder another training holds (``holder``: its process id): not trained here,
    not failed; a rerun of the sweep collects it (reused when finished, resumed otherwise)."""
    who = (f"another training in this process (pid {holder})" if holder == str(os.getpid())
           else "another process" if holder == "unknown" else f"another process (pid {holder})")
    return {"run_id": run_id, "label": cfg.label(), "status": "skipped",
            "error": f"being trained by {who}; rerun the sweep later to collect it"}


def _replan(cfg: ExperimentConfig, run_dir: Path, robustness: Any, store_path: str | None, name: str | None,
            run_id: str | None, resume: bool) -> tuple[str | None, bool] | dict[str, Any]:
    """The grid point's plan decided again in the worker, just before it trains (another sweep on the same
    ``run_root`` may have started or finished it since the sweep began): ``(run_id, resume)`` to train, or the row of
    a point not to train (finished meanwhile: reused, registered in the store; a checkpoint that cannot be
    continued: failed, as :func:`_plan` says)."""
    action, planned_id, row, ck = _plan(cfg, run_dir, _robustness_list(robustness))
    if action == "new":
        return (run_id, False) if not resume else (planned_id, False)
    if action == "resume":
        return planned_id, True
    if action == "reuse" and store_path:
        _register_reused(store_path, cfg, run_dir, ck, name or cfg.label())
    return {**row, _PLAN_KEY: "reuse" if action == "reuse" else None}


def _drop_refused_row(store, trainer, resumed: bool = False) -> None:
    """Delete the store row of a new sweep run whose trainer was refused its folder before it trained (another sweep
    took the folder between the trainer's construction and its start): the grid point is another process's run, not a
    failed one of this sweep. Only while the row never trained (:meth:`RunStore.delete_unused_run`, one transaction):
    a row that trained, or that another trainer moved on, is left. A ``resumed`` run's row is left too: its id is the
    checkpoint's, which another process resuming the same run may be training under (it follows the row this trainer
    registered; its status then says so)."""
    import warnings

    if store is None or resumed or not getattr(trainer, "registered_run", False):
        return
    try:
        store.delete_unused_run(trainer.run_id)
    except Exception as exc:  # noqa: BLE001 - the grid point's row in the table stands
        warnings.warn(f"sweep: could not remove the store row of run {trainer.run_id}, refused its folder "
                      f"({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=user_stacklevel())


def _train_row(cfg: ExperimentConfig, store_path: str | None, run_dir: str | None, robustness: Any,
               name: str | None, run_id: str | None, resume: bool) -> dict[str, Any]:
    """:func:`run_one`'s work, in the threads it set. The plan made at the sweep's start is decided again here
    (:func:`_replan`), and once more whenever another sweep on the same ``run_root`` took the folder meanwhile; a
    folder another training holds gives a "skipped" row (:func:`_skipped_row`), with no run in the store."""
    from snnlab.experiments.store import RunStore
    from snnlab.training.run_folder import RunFolderBusy, RunFolderTaken
    from snnlab.training.trainer import Trainer

    store = RunStore(store_path) if store_path else None
    for _ in range(_REPLANS):
        if run_dir is not None:
            planned = _replan(cfg, Path(run_dir), robustness, store_path, name, run_id, resume)
            if isinstance(planned, dict):
                return planned
            run_id, resume = planned
        try:
            with other_threads_said():  # (the sweep warned once for all its points: _warn_other_threads)
                trainer = Trainer(cfg, run_dir=run_dir, store=store, progress=False, name=name, run_id=run_id,
                                  resume=run_dir if resume else None)
        except RunFolderBusy as exc:  # (refused before the trainer registered the run)
            return {**_skipped_row(cfg, run_id if resume else None, exc.holder), _PLAN_KEY: None}
        except RunFolderTaken:  # a run saved its checkpoint there since the plan: decide again
            continue
        except Exception as exc:  # bad data folder, impossible model...: a failed row, not a crashed sweep
            message = f"{type(exc).__name__}: {exc}"
            if store is not None:
                run_id = _register_failed(store, run_id, cfg, name, message)
            return {"run_id": run_id, "label": cfg.label(), "status": "failed", "error": message,
                    _PLAN_KEY: "resume" if resume else "new"}
        try:
            return {**_run_trainer(trainer, cfg, robustness), _PLAN_KEY: "resume" if resume else "new"}
        except RunFolderBusy as exc:  # taken between the trainer's construction and its start
            _drop_refused_row(store, trainer, resume)
            return {**_skipped_row(cfg, run_id if resume else None, exc.holder), _PLAN_KEY: None}
        except RunFolderTaken:
            _drop_refused_row(store, trainer, resume)
    return {"run_id": None, "label": cfg.label(), "status": "skipped",
            "error": f"{run_dir} was taken by other trainings {_REPLANS} times in a row; rerun the sweep later to "
                     "collect it", _PLAN_KEY: None}


def _run_trainer(trainer, cfg: ExperimentConfig, robustness: Any) -> dict[str, Any]:
    """Train ``trainer`` (the worker's current run) and give its row of the table; the folder's refusal at the run's
    start (:class:`~snnlab.training.run_folder.RunFolderBusy` / ``RunFolderTaken``) is raised for the caller."""
    global _worker_trainer
    _worker_trainer = trainer
    cancelled: list[bool] = []  # [True]: the pool's cancel stopped the run before its first step
    if _pool_cancel() is not None:  # a cancel while the trainer was being built: the run stops before its first step
        trainer.events.subscribe(lambda event: cancelled.append(_stop_if_cancelled(trainer)), kinds=["started"])
    try:
        if _worker_interrupted:  # the signal came while the trainer was being built
            trainer.stop(reason="sweep interrupted")
        try:
            result = trainer.run(raise_errors=False)
        except KeyboardInterrupt:  # checkpoint saved, run marked stopped; a worker reports it as a row
            if multiprocessing.parent_process() is None:
                raise  # in the main process: the interrupt is the caller's
            result = None
    finally:
        _worker_trainer = None
    row: dict[str, Any] = {"run_id": trainer.run_id, "label": cfg.label(), "status": trainer.state,
                           "error": trainer.error}
    if trainer.state == "stopped":
        saved = trainer.checkpoint_path is not None and trainer.checkpoint_path.exists()
        row["error"] = ((_CANCELLED if any(cancelled) else "interrupted") + "; "
                        + ("its checkpoint is saved" if saved else "no checkpoint (no run_root)"))
    if result is not None:
        row.update(_deployed_metrics(result))
        for kind, level in _robustness_list(robustness):
            try:
                with forward_precision(cfg.precision, trainer.device):  # as the run evaluates
                    curve = robustness_curve(trainer.model, trainer.test_loader, kind, [level], readout=cfg.readout,
                                             max_batches=cfg.eval_max_batches, device=trainer.device)
            except Exception as exc:  # noqa: BLE001 - the trained run stays in the table
                row["error"] = f"robustness {kind}:{level:g}: {type(exc).__name__}: {exc}"
                continue
            row[robust_column(kind, level)] = float(curve["accuracy"].iloc[0])
    return row


# ------------------------------------------------------------------ the sweep
@dataclass
class SweepResult:
    """A sweep's trade-off ``table`` (one row per run) and its Pareto ``front``.

    ``reused``/``resumed``: the table rows taken from finished checkpoints in ``run_root`` / continued
    from their checkpoints.
    """

    table: pd.DataFrame
    front: pd.DataFrame
    objectives: dict[str, str]
    reused: tuple[int, ...] = ()
    resumed: tuple[int, ...] = ()


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`sweep`; ``result`` is the :class:`SweepResult` so far, ``signum`` the signal
    (when the interrupt came from a handler that turned a signal into ``KeyboardInterrupt``)."""

    def __init__(self, result: SweepResult, signum: int | None = None) -> None:
        super().__init__("sweep interrupted")
        self.result = result
        self.signum = signum


def _as_executor(executor: Any) -> Executor:
    """Accept a ``concurrent.futures.Executor`` or a ``dask.distributed.Client``.

    A ``ThreadPoolExecutor`` must have one thread: runs in threads of one process share torch's, NumPy's
    and Python's global random state, so runs in parallel threads are not reproducible.
    """
    if isinstance(executor, ThreadPoolExecutor) and getattr(executor, "_max_workers", 1) > 1:
        raise ValueError(f"sweep: a ThreadPoolExecutor with {executor._max_workers} threads would train runs side "
                         "by side in one process, sharing its global random state (results not reproducible); use "
                         "executor=None (a process pool), a dask Client, or ThreadPoolExecutor(max_workers=1)")
    if executor is None or isinstance(executor, Executor):
        return executor
    if hasattr(executor, "get_executor"):  # a dask.distributed Client
        return executor.get_executor()
    raise TypeError(f"sweep: executor must be a concurrent.futures.Executor or a dask Client, got {type(executor).__name__}")


def _plan(cfg: ExperimentConfig, run_dir: Path | None,
          robustness: list) -> tuple[str, str | None, dict | None, dict | None]:
    """What to do with one grid point: ("new", run_id, None), ("resume", run_id, None), ("reuse", run_id, row)
    or ("failed", run_id, row) for a folder whose checkpoint cannot be continued; then, for "reuse" and "resume", the
    checkpoint read (a reused run is registered from it: :func:`_register_reused`), else None."""
    from snnlab.training.checkpoint import CheckpointError, load_checkpoint
    from snnlab.training.run_folder import CHECKPOINT_NAME

    new_id = uuid.uuid4().hex[:12]
    if run_dir is None or not (run_dir / CHECKPOINT_NAME).exists():
        return "new", new_id, None, None
    try:
        # the metadata is all it needs: tensors mapped, not read, and the history left undecoded
        ck = load_checkpoint(run_dir / CHECKPOINT_NAME, mmap=True, history=False)
        # from_saved: a run saved with data_kwargs its dataset ignored is the same run as one without them; compared
        # as the folder name hashes them (folder_identity), so a setting without effect there (mask_at_inference
        # with mask_p=0) is the same run too, reused with the configuration its checkpoint records
        same = folder_identity(ExperimentConfig.from_saved(ck["config_json"])) == folder_identity(cfg)
    except (CheckpointError, ConfigError, OSError, KeyError) as exc:
        return "failed", None, {"run_id": None, "label": cfg.label(), "status": "failed",
                                "error": f"{run_dir}: {exc}; delete that folder to train this grid point anew"}, None
    run_id = ck.get("run_id")
    if not same:
        return "failed", run_id, {"run_id": run_id, "label": cfg.label(), "status": "failed",
                                  "error": f"{run_dir} holds the checkpoint of another configuration"}, None
    if ck.get("finished") and ck.get("result") and not robustness:
        return "reuse", run_id, {"run_id": run_id, "label": cfg.label(), "status": "finished", "error": None,
                                 **_deployed_metrics(ck["result"])}, ck
    return "resume", run_id, None, ck


def _warn_other_threads(points: dict[str, int], threads: int) -> None:
    """Warn that grid points reused or resumed from ``run_root`` (``points``: ``{folder name: the threads its
    checkpoint trained with}``) trained with another ``threads`` than this sweep's runs: their results will not match
    those of runs trained anew here bit for bit (torch's CPU reductions depend on the thread count)."""
    import warnings

    other = {name: n for name, n in points.items() if n != threads}
    if not other:
        return
    counts = sorted(set(other.values()))
    shown = ", ".join(sorted(other)[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
    warnings.warn(f"sweep: {len(other)} grid point(s) in run_root ({shown}) trained with "
                  f"{' or '.join(map(str, counts))} torch thread(s) per run, this sweep with {threads}: their reused "
                  f"or resumed results will not match runs trained with {threads} bit for bit; rerun with "
                  f"threads={counts[0]} (--threads {counts[0]}) to compare them exactly, or use another run_root",
                  RuntimeWarning, stacklevel=3)


def _register_reused(store_path, cfg: ExperimentConfig, run_dir: Path, ck: dict, name: str) -> None:
    """Put a reused run (``ck``: the finished checkpoint :func:`_plan` read in ``run_dir``) into the store at
    ``store_path`` when it lacks it (a rerun with another store) or has not recorded its end: its config, name,
    checkpoint, results and status "finished" (not its metric rows: those are in the store it trained in). A store
    error is a warning: the run's row in the table stands."""
    import sqlite3
    import warnings

    from snnlab.experiments.store import RunStore, StoreError
    from snnlab.training.run_folder import CHECKPOINT_NAME
    from snnlab.training.trainer import deployed_summary

    path = run_dir / CHECKPOINT_NAME
    try:
        store = RunStore(store_path)
        try:
            try:
                known = store.get_run(ck["run_id"])
            except KeyError:
                store.create_run(cfg.to_dict(), ck.get("name") or name, run_id=ck["run_id"])
                known = None
            if known is None or known["status"] != "finished" or known["summary"] is None:
                store.set_checkpoint(ck["run_id"], path)
                runtime = {"runtime": ck["runtime"]} if ck.get("runtime") else {}
                store.set_summary(ck["run_id"], deployed_summary(ck["result"]) | runtime)
                store.set_status(ck["run_id"], "finished")
        finally:
            store.close()
    except (sqlite3.Error, StoreError, OSError, KeyError, TypeError) as exc:
        warnings.warn(f"sweep: the finished run in {run_dir} is reused, but the run store {store_path} could not "
                      f"record it ({type(exc).__name__}: {exc})", RuntimeWarning, stacklevel=3)


def _deployed_metrics(result: dict) -> dict:
    """The table's metrics of a run's result: of the model as deployed (rounded delays when it learned delays)."""
    from snnlab.training.trainer import deployed_summary

    deployed = deployed_summary(result)
    return {k: deployed.get(k) for k in METRIC_COLUMNS}


def _table(configs: list[ExperimentConfig], grid: dict, rows: list[dict]) -> pd.DataFrame:
    """The trade-off table: the varied settings, then the rows; a metric a row lacks (a run not done, or reused
    from an snnlab that did not measure it: None in its result) is NaN, so every metric column is a float column."""
    varied = {k: [getattr(cfg, k) for cfg in configs] for k in grid}
    table = pd.concat([pd.DataFrame(varied), pd.DataFrame(rows)], axis=1)
    for column in table.columns:
        if column in METRIC_COLUMNS or str(column).startswith("robust_accuracy_"):
            table[column] = table[column].astype(float)
    return table


def _warn_unmeasured(finished: pd.DataFrame, objectives: dict[str, str]) -> None:
    """Warn when ``finished`` rows lack an objective (NaN: runs reused from an snnlab that did not measure it), which
    the Pareto front then leaves out."""
    for metric in objectives:
        missing = finished.index[finished[metric].isna()].tolist() if metric in finished else finished.index.tolist()
        if missing:
            warnings.warn(f"sweep: {len(missing)} of {len(finished)} finished run(s) (table rows {missing}) have no "
                          f"{metric} (NaN: runs reused from an snnlab that did not measure it, or diverged ones), so "
                          "the Pareto front leaves them out; rerun them in another run_root to measure it, or choose "
                          "other objectives",
                          RuntimeWarning, stacklevel=user_stacklevel())


def _write_csv(out: Path, table: pd.DataFrame) -> None:
    """Write ``table`` to ``out`` atomically (through a temporary file beside it, removed when the write or the
    rename fails: ``out`` a folder, a full disk)."""
    write_atomically(out, lambda tmp: table.to_csv(tmp, index=False))


def sweep(config: ExperimentConfig, grid: dict[str, list], executor: Any = None, store_path: str | os.PathLike | None = None,
          run_root: str | os.PathLike | None = None, max_workers: int | None = None,
          objectives: dict[str, str] | None = None, robustness: Any = None,
          progress: bool = True, out: str | os.PathLike | None = None, threads: int = 1) -> SweepResult:
    """Train every grid point of ``grid`` over ``config`` and return the trade-off table and Pareto front.

    Args:
        executor: where runs execute: ``None`` = a local process pool (``max_workers`` processes,
            default: the CPU count, at most one per run), any ``concurrent.futures.Executor`` (a
            ``ThreadPoolExecutor`` only with one thread: one run at a time, in this process), or a
            ``dask.distributed.Client``.
        store_path: the run store every run logs into (so the dashboard can watch them arrive).
        run_root: a folder for each run's checkpoint (``run_root/<config hash>``), which makes the sweep
            resumable (see the module doc); None = no checkpoints.
        objectives: ``{metric: "max"|"min"}`` for the front (default accuracy up, spikes per sample down).
        robustness: optional ``(perturbation, level)`` or a list of them: also measure accuracy under each
            (perturbations of :mod:`snnlab.metrics.robustness`: jitter, deletion, insertion, gaussian).
        out: a CSV file rewritten with the table whenever a run ends (runs not done yet: "pending").
        threads: torch CPU threads of each run (runs train side by side: one each by default).

    Raises :class:`SweepInterrupted` (a ``KeyboardInterrupt``) on Ctrl-C, with the table so far.
    """
    if not is_integer(threads) or threads < 1:
        raise ValueError(f"sweep: threads must be a positive int (torch CPU threads per run), got {threads!r}")
    threads = int(threads)
    configs = expand_grid(config, grid)
    robustness = _robustness_list(robustness)  # checked before anything trains
    objectives = _check_objectives(objectives, robustness)  # before anything trains
    pool = _as_executor(executor)
    out = Path(out).expanduser() if out is not None else None  # ("~/sweep.csv": in the user's home)
    root = Path(run_root).expanduser().resolve() if run_root is not None else None
    if root is not None and root.exists() and not root.is_dir():  # (else each run would fail on its own)
        raise ValueError(f"sweep: run_root {str(run_root)!r} is a file, not a folder: give a folder for the runs' "
                         "checkpoints (it is created if missing)")
    dirs = run_folders(root, configs) if root is not None else [None] * len(configs)
    rows: list[dict] = []
    jobs: dict[int, tuple] = {}
    reused, resumed = [], []
    trained_with: dict[str, int] = {}  # {folder name: torch threads} of the points reused or resumed
    for i, (cfg, run_dir) in enumerate(zip(configs, dirs)):
        action, run_id, row, ck = _plan(cfg, run_dir, robustness)
        if ck is not None and (trained := checkpoint_threads(ck)) is not None:  # (older checkpoints do not say)
            trained_with[run_dir.name] = trained
        rows.append(row or {"run_id": run_id, "label": cfg.label(), "status": "pending"})
        values = ", ".join(f"{k}={getattr(cfg, k)}" for k in grid)  # runs of a sweep told apart by name too
        if action in ("new", "resume"):
            jobs[i] = (cfg.to_dict(), str(store_path) if store_path else None, str(run_dir) if run_dir else None,
                       robustness, threads, f"{cfg.label()} [{values}]", run_id, action == "resume", True)
            if action == "resume":
                resumed.append(i)
        elif action == "reuse":
            reused.append(i)
            if store_path:
                _register_reused(store_path, cfg, run_dir, ck, f"{cfg.label()} [{values}]")
    _warn_other_threads(trained_with, threads)
    if out is not None:
        _write_csv(out, _table(configs, grid, rows))  # a bad --out path fails before anything trains
    owned = pool is None and bool(jobs)
    if owned:
        pool = process_pool(max_workers or default_workers(len(jobs)))
    from snnlab.training.progress import progress_bar  # (a bar whose reader has gone goes quiet)

    futures: dict = {}
    interrupt: KeyboardInterrupt | None = None
    try:
        with _signals_held_while_workers_start(pool):
            for i, job in jobs.items():
                futures[pool.submit(run_one, *job)] = i
        for fut in progress_bar(_completed(futures), total=len(futures), desc="sweep", disable=not progress):
            i = futures[fut]
            rows[i] = _take_plan(_row_of(fut, rows[i], configs[i]), i, reused, resumed)
            if out is not None:
                _write_csv(out, _table(configs, grid, rows))
    except KeyboardInterrupt as exc:
        interrupt = exc
        _wind_down(pool, owned, futures)
    finally:
        if owned:
            pool.shutdown(wait=interrupt is None, cancel_futures=True)
        if isinstance(pool, ThreadPoolExecutor):
            _reset_interrupt()  # set by _wind_down for this process's thread; later sweeps start anew
    for fut, i in futures.items():
        if rows[i].get("status") == "pending":
            rows[i] = _take_plan(_row_of(fut, rows[i], configs[i]), i, reused, resumed)
    # rows a worker returned were written to the store by its trainer (a row it says failed may be another live
    # process's run, left as that process has it); those of dead or interrupted workers are settled here
    returned = {i for fut, i in futures.items() if fut.done() and not fut.cancelled() and fut.exception() is None}
    _settle_store(store_path, [row for i, row in enumerate(rows) if i not in returned])
    table = _table(configs, grid, rows)
    if out is not None:
        _write_csv(out, table)
    ok = table[table["status"] == "finished"]
    if len(ok):
        _warn_unmeasured(ok, objectives)
    front = pareto_front(ok.dropna(subset=list(objectives)), objectives) if len(ok) else ok.copy()
    result = SweepResult(table=table, front=front, objectives=objectives, reused=tuple(sorted(reused)),
                         resumed=tuple(sorted(resumed)))
    if interrupt is not None:
        raise SweepInterrupted(result, getattr(interrupt, "signum", None)) from interrupt
    return result


def _take_plan(row: dict, i: int, reused: list[int], resumed: list[int]) -> dict:
    """``row`` of grid point ``i`` without the worker's ``"_plan"`` (:func:`run_one`), which, where present, replaces
    the sweep's own plan of the point in ``reused``/``resumed`` (the worker decides again: another sweep on the same
    ``run_root`` may have finished, started or be training it)."""
    if _PLAN_KEY not in row:  # (cancelled, a dead worker...: the plan stands)
        return row
    row = dict(row)
    decided = row.pop(_PLAN_KEY)
    for kept, action in ((reused, "reuse"), (resumed, "resume")):
        if decided == action and i not in kept:
            kept.append(i)
        elif decided != action and i in kept:
            kept.remove(i)
    return row


def _check_objectives(objectives: dict | None, robustness: list) -> dict[str, str]:
    """``objectives`` (default :data:`DEFAULT_OBJECTIVES`) checked against the table's metric columns: a typo would
    otherwise fail only after every run has trained."""
    objectives = dict(objectives or DEFAULT_OBJECTIVES)
    known = list(METRIC_COLUMNS) + [robust_column(kind, level) for kind, level in robustness]
    for metric, goal in objectives.items():
        if metric not in known:
            raise ValueError(f"sweep: objective {metric!r} is not a column of the sweep table; choose from {known}")
        if goal not in ("max", "min"):
            raise ValueError(f"sweep: objective {metric!r} must be 'max' or 'min', got {goal!r}")
    return objectives


def _completed(futures) -> Iterator:
    """``as_completed`` that also yields futures cancelled from outside (``shutdown(cancel_futures=True)``, e.g. the
    dashboard closing): ``as_completed``/``wait`` never count those as done, but their done-callbacks run."""
    finished: queue.SimpleQueue = queue.SimpleQueue()
    for fut in futures:
        fut.add_done_callback(finished.put)
    for _ in range(len(futures)):
        yield finished.get()


def _row_of(fut, pending: dict, cfg: ExperimentConfig) -> dict:
    """The row of a grid point from its future (done, cancelled, failed, or still running elsewhere)."""
    base = {"run_id": pending.get("run_id"), "label": cfg.label()}
    if fut.cancelled():
        return {**base, "run_id": None, "status": "cancelled", "error": _NOT_STARTED}
    if not fut.done():  # an executor not ours, interrupted: the run may still be going on there
        return {**base, "status": "running", "error": "still running in the executor when the sweep was interrupted"}
    try:
        return fut.result()
    except CancelledError:
        return {**base, "run_id": None, "status": "cancelled", "error": _NOT_STARTED}
    except KeyboardInterrupt:  # a worker without our signal handling: its trainer saved a checkpoint
        return {**base, "status": "stopped", "error": "interrupted"}
    except BrokenExecutor as exc:  # a worker died (the OOM killer, kill -9): this run, or the pool it waited for
        return {**base, "status": "failed", "error": f"a sweep worker process died ({type(exc).__name__}: {exc}); "
                                                     "rerun the sweep to train it (with the same run_root it resumes)"}
    except BaseException as exc:  # noqa: BLE001 - any other failure is this run's row, not the sweep's end
        return {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}


def _wind_down(pool: Executor, owned: bool, futures: dict) -> None:
    """After Ctrl-C: cancel queued runs, ask running ones to stop (checkpoint), wait; a second Ctrl-C kills them."""
    for fut in futures:
        fut.cancel()
    procs = list((getattr(pool, "_processes", None) or {}).values()) if owned else []
    if owned:
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:  # Ctrl-C in a terminal reached them already; a kill -INT of this process only did not
            try:
                os.kill(p.pid, signal.SIGINT)
            except (OSError, TypeError):
                pass
    elif isinstance(pool, ThreadPoolExecutor):  # its one thread, in this process: as a worker's signal would
        _worker_signal(signal.SIGINT, None)
    else:
        return  # dask or another executor: runs already there go on; their rows say "running"
    # not the cancelled futures: a pool shut down with cancel_futures never marks them done for wait()
    try:
        wait([f for f in futures if not f.cancelled()])
    except KeyboardInterrupt:
        for p in procs:
            p.kill()
        wait([f for f in futures if not f.cancelled()], timeout=30)


def _settle_store(store_path, rows: list[dict]) -> None:
    """Runs whose row says failed or stopped but which the store still shows unfinished (``rows``: those of dead or
    interrupted workers, whose trainer could not write its end)."""
    if not store_path:
        return
    from snnlab.experiments.store import RunStore

    ids = {r["run_id"]: r for r in rows if r.get("run_id") and r.get("status") in ("failed", "stopped")}
    if not ids:
        return
    store = RunStore(store_path)
    for run_id, row in ids.items():
        try:
            if store.get_run(run_id)["status"] in _UNFINISHED:
                store.set_status(run_id, row["status"], row.get("error"))
        except KeyError:  # never registered: the worker died before the run began
            row["run_id"] = None
            if row["status"] == "failed":
                row["error"] = "not started: " + str(row.get("error"))
