"""Where a run's records go: its :class:`History`, its events, and an optional run store (:class:`RunStoreProtocol`).

:class:`ReportingMixin` gives the :class:`~snnlab.training.Trainer` its ``_emit`` (events), ``_store`` (run-store
calls whose errors are logged, never fatal) and ``_log_eval`` (test-set metrics to the store).

Example:
    >>> h = History([{"kind": "step", "step": 1, "loss": 0.5}, {"kind": "epoch", "step": 1, "train_loss": 0.5}])
    >>> [r["step"] for r in h.steps()], list(h.frame("epoch").columns)
    ([1], ['kind', 'step', 'train_loss'])
    >>> scalar_metrics("test_", {"accuracy": 0.5, "spikes_per_layer": {"h1": 3}, "note": "x"})
    {'test_accuracy': 0.5, 'test_spikes_per_layer.h1': 3.0}
"""
from __future__ import annotations

import collections
import contextlib
import inspect
import logging
import sqlite3
import time
import warnings
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .events import Event

__all__ = ["STEP_METRICS", "EVAL_KEYS", "RunStoreProtocol", "History", "scalar_metrics", "ReportingMixin"]

log = logging.getLogger("snnlab.training.trainer")  # the Trainer's messages keep the logger they always had

#: the metrics the trainer records at every optimiser step (its "step" records, events and store rows)
STEP_METRICS = ("loss", "accuracy", "spikes_per_sample")
EVAL_KEYS = ("accuracy", "loss", "spikes_per_sample", "spikes_per_layer", "synops_per_sample", "macs_per_sample",
             "energy_per_sample_j", "latency_steps", "n_samples")


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


def scalar_metrics(prefix: str, d: dict[str, Any]) -> dict[str, float]:
    """Flatten a metrics dict to ``{prefix+name: float}`` (nested dicts as ``name.sub``), skipping non-numbers."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            for sk, sv in scalar_metrics("", v).items():
                out[f"{prefix}{k}.{sk}"] = sv
        elif isinstance(v, bool):
            out[prefix + k] = float(v)
        elif isinstance(v, (int, float, np.number)):
            out[prefix + k] = float(v)
        elif isinstance(v, torch.Tensor) and v.numel() == 1:
            out[prefix + k] = float(v)
    return out


def _transient(exc: BaseException) -> bool:
    """Whether a failed store write may succeed later (a locked, busy or full database, an I/O error), as opposed
    to one that never will (a store without that method, a bug): only the former are kept for a retry."""
    text = str(exc).lower()
    return isinstance(exc, (sqlite3.OperationalError, OSError)) and (
        isinstance(exc, OSError) or any(w in text for w in ("locked", "busy", "full", "disk i/o", "unable to open")))


#: seconds between retries of run-store writes that failed (each attempt may wait for a lock)
STORE_RETRY_S = 10.0
#: seconds a retry of failed writes waits for the store's lock (a store with ``write_timeout``, as
#: :class:`~snnlab.experiments.RunStore`): a locked store holds the training up this long at most, not the store's
#: whole timeout (the first try of a write and the last retry at the end of the run wait that long)
STORE_RETRY_WAIT_S = 1.0
#: writes kept for a retry at most (beyond, the oldest are dropped and counted)
MAX_STORE_BACKLOG = 100_000


class ReportingMixin:
    """A run's events and run-store calls, for the :class:`~snnlab.training.Trainer`.

    Expects of the class it is mixed into: ``events`` (an :class:`~snnlab.training.EventBus`), ``run_id``,
    ``step``, ``epoch`` and ``store`` (a :class:`RunStoreProtocol` or None); :meth:`_init_reporting` sets its own.
    """

    def _init_reporting(self) -> None:
        self._store_takes_kind: bool | None = None  # whether store.log_metrics takes kind= (see _log_eval)
        self._store_backlog: collections.deque = collections.deque()  # writes not in the store yet, in order
        self._store_failed_at: float | None = None  # when a write last failed (retried STORE_RETRY_S later)
        self._store_dropped = 0  # writes dropped from a full backlog
        self._store_failures_logged: set[tuple[str, type]] = set()  # (method, error type) of writes that cannot succeed
        self.store_error: str | None = None  # the last store write's error, if any

    @property
    def store_writes_pending(self) -> int:
        """Writes to the run store that failed and are not in it (retried at later writes and at the end of
        :meth:`run`; past :data:`MAX_STORE_BACKLOG` the oldest are dropped, and counted here)."""
        return len(self._store_backlog) + self._store_dropped

    def _emit(self, kind: str, epoch: int | None = None, **data: Any) -> Event:
        return self.events.publish(Event(kind=kind, run_id=self.run_id, step=int(self.step),
                                         epoch=int(self.epoch if epoch is None else epoch), data=data))

    def _store(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call ``store.<method>``; a write that fails for a while (a locked, busy or full store) is kept and retried, in
        order, at later writes (at most every :data:`STORE_RETRY_S`, each retry waiting at most
        :data:`STORE_RETRY_WAIT_S` for the store's lock) and at the end of the run (waiting the store's own lock
        timeout); one that cannot succeed (another error) is logged and dropped."""
        if self.store is None:
            return
        if len(self._store_backlog) >= MAX_STORE_BACKLOG:
            self._store_backlog.popleft()
            self._store_dropped += 1
        self._store_backlog.append((method, args, kwargs))
        if self._store_failed_at is None:
            self._flush_store()
        elif time.monotonic() - self._store_failed_at >= STORE_RETRY_S:
            with self._short_store_waits():  # a retry: the store failed a while ago, it must not stall training
                self._flush_store()

    def _short_store_waits(self):
        """This thread's store writes waiting at most :data:`STORE_RETRY_WAIT_S` for a lock, where the store can."""
        limit = getattr(self.store, "write_timeout", None)
        return limit(STORE_RETRY_WAIT_S) if callable(limit) else contextlib.nullcontext()

    def _flush_store(self) -> None:
        while self._store_backlog:
            method, args, kwargs = item = self._store_backlog.popleft()  # (popped first: an interrupt cannot repeat it)
            try:
                getattr(self.store, method)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - a store problem must not stop training
                if not _transient(exc):  # a write that can never succeed: logged (once per kind) and dropped
                    if (method, type(exc)) not in self._store_failures_logged:  # (e.g. each metric row of a deleted run)
                        self._store_failures_logged.add((method, type(exc)))
                        log.exception("run store %s(...) failed for run %s; training continues (later %s failures "
                                      "of it are not logged again)", method, self.run_id, type(exc).__name__)
                    continue
                self._store_backlog.appendleft(item)
                if self._store_failed_at is None:
                    log.exception("run store %s(...) failed for run %s; training continues, and the writes are "
                                  "retried", method, self.run_id)
                self._store_failed_at = time.monotonic()
                self.store_error = f"{type(exc).__name__}: {exc}"
                return
        if self._store_failed_at is not None:
            log.warning("run store writes for run %s work again; the ones that had failed are saved", self.run_id)
        self._store_failed_at = None

    def _settle_store(self) -> None:
        """At the end of a run: the pending writes once more, and a ``RuntimeWarning`` saying what the store lacks."""
        if self.store is None:
            return
        if self._store_backlog:
            self._flush_store()
        if self.store_writes_pending:
            warnings.warn(f"Trainer: {self.store_writes_pending} writes to the run store failed and are not in it "
                          f"(last error: {self.store_error}): run {self.run_id}'s status, metrics or results there are "
                          "incomplete; its checkpoint holds the result, and resuming the run writes its status and "
                          "final results again (not the missing metric rows)", RuntimeWarning, stacklevel=3)

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
