"""A live training session for any front end: ipywidgets in JupyterLab or Panel in the browser.

:class:`TrainingSession` runs one :class:`~snnlab.training.Trainer` in a background thread and turns
its events into plot-ready state: live learning curves (a :class:`~snnlab.viz.LiveCurves`), a progress
fraction, the latest evaluation, and every ``probe_every`` steps a *snapshot* of the network on a
fixed batch (spikes and membranes of each layer, delay positions) for rasters and delay plots.
The UI thread calls :meth:`poll` periodically; nothing here knows about a particular toolkit.

:meth:`poll` takes every event queued since the last call and appends their metrics to ``curves`` in
*one* send (one redraw, however many steps the run made meanwhile); status and progress follow the
latest event. An event whose processing fails stays queued for the next :meth:`poll` (no event is lost
because a plot could not be drawn).

Example:
    >>> from snnlab.training import ExperimentConfig
    >>> session = TrainingSession(ExperimentConfig(hidden=[16], epochs=1, max_batches_per_epoch=3))
    >>> session.start(); session.wait(60)
    True
    >>> events = session.poll(); session.state, session.progress
    ('finished', 1.0)
"""
from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from snnlab.core.delays import DelayedLinear
from snnlab.core.network import Monitor, carry_suspended
from snnlab.core.neurons import LIF
from snnlab.data.loader_rng import same_generator_states, same_randomness
from snnlab.metrics._common import model_generators
from snnlab.training import Event, ExperimentConfig, Trainer
from snnlab.training.interrupts import global_rng_state, set_global_rng_state
from snnlab.training.records import STEP_METRICS
from snnlab.viz import LiveCurves, delay_snapshot

#: one live panel per metric scale: a training metric with its test and rounded-test variants
CURVE_GROUPS: dict[str, list[str]] = {m.replace("_", " "): [m, f"test_{m}", f"rounded_test_{m}"] for m in STEP_METRICS}
#: an event whose processing fails this many times in a row is dropped (one bad event cannot stall the view)
MAX_POLL_ATTEMPTS = 3
#: delay snapshots a session keeps: past it every other one is dropped (the newest kept), so a long run (dcls_shd:
#: ~1,000 snapshots of ~3,000 synapses) keeps its whole span in bounded memory
MAX_DELAY_SNAPSHOTS = 400
#: step-metric rows the live curves of a session (and of the TrainerWidget's and dashboard's pages that show them)
#: keep: ~6,600 steps of loss, accuracy and spikes per sample, the latest ones; the test points of the whole run are
#: kept apart from them (:data:`snnlab.viz.curves.EVAL_BUFFER_LENGTH` rows). The run's store keeps every step.
LIVE_BUFFER_LENGTH = 20_000


class TrainingSession:
    """One background training run and its live, plot-ready state (see the module docstring).

    Args:
        cfg: the experiment (an ``ExperimentConfig`` or a dict).
        store: a :class:`~snnlab.experiments.RunStore` the run logs into (optional).
        run_dir: folder for the run's checkpoint (optional).
        run_root: instead of ``run_dir``, a folder in which this session gets a new subfolder of its own.
        probe_every: take a network snapshot every this many training steps.
        probe_samples: samples of the fixed probe batch kept in each snapshot.
        buffer_length: step-metric rows ``curves`` keeps (default :data:`LIVE_BUFFER_LENGTH`: the latest ~6,600
            steps of three metrics); the test points stay for the whole run, apart from them.

    The probe batch is the test loader's first batch, drawn without moving any random stream the run uses (the
    loader's generators, the global ones; snapshots put the global ones back too): a watched run trains and
    evaluates as the same run trained without a session (``Trainer(cfg).run()``, ``snnlab train``).

    Example:
        >>> s = TrainingSession({"hidden": [16], "epochs": 2, "num_steps": 8, "max_batches_per_epoch": 2})
        >>> s.state, s.poll(), s.snapshot is None       # nothing happens before start()
        ('idle', [], True)
        >>> TrainingSession({"hidden": [16], "epochs": 0})
        Traceback (most recent call last):
        ...
        snnlab.training.config.ConfigError: ...epochs...
    """

    def __init__(self, cfg: ExperimentConfig | dict, store: Any = None, run_dir: str | None = None,
                 probe_every: int = 5, probe_samples: int = 4, buffer_length: int = LIVE_BUFFER_LENGTH,
                 run_root: str | os.PathLike | None = None) -> None:
        self.cfg = ExperimentConfig.from_dict(cfg) if isinstance(cfg, dict) else cfg
        self.cfg.validate()
        if run_root is not None:  # every session its own folder: a run_dir holding another run's checkpoint is refused
            if run_dir is not None:
                raise ValueError("TrainingSession: give run_dir or run_root, not both")
            run_dir = str(Path(run_root) / uuid.uuid4().hex[:12])
        self.store, self.run_dir = store, run_dir
        self.probe_every, self.probe_samples = max(1, int(probe_every)), max(1, int(probe_samples))
        self.curves = LiveCurves(buffer_length=buffer_length)
        self.trainer: Trainer | None = None
        self.progress = 0.0
        self.step = 0
        self.last_eval: dict[str, Any] | None = None
        self.error: str | None = None
        self.snapshot: dict[str, Any] | None = None
        self.delay_history: list[pd.DataFrame] = []
        self._lock = threading.Lock()
        self._poll_lock = threading.RLock()
        self._pending: list[Event] = []  # drained from the queue, not yet processed
        self._attempts = 0  # failed attempts at processing self._pending[0]
        self._queue = None
        self._unsubscribe = None
        self._probe: tuple[torch.Tensor, torch.Tensor] | None = None

    # ------------------------------------------------------------------ control
    @property
    def state(self) -> str:
        """``"idle"`` before :meth:`start`, then the trainer's state.

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 1})
            >>> before = s.state; s.start(); s.wait(60)
            True
            >>> before, s.state
            ('idle', 'finished')
        """
        return self.trainer.state if self.trainer is not None else "idle"

    def start(self) -> None:
        """Build the trainer (data and model) and start training in the background.

        Raises the config's or the data's error (e.g. a missing dataset folder) here, in the caller.

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 1}, probe_samples=3)
            >>> s.start(); s.snapshot["step"], tuple(s.snapshot["spikes"]["1"].shape)   # the step-0 snapshot
            (0, (8, 3, 16))
            >>> s.wait(60), s.state
            (True, 'finished')
            >>> TrainingSession({"dataset": "nmnist", "data_root": "/nonexistent"}).start()
            Traceback (most recent call last):
            ...
            FileNotFoundError: ...NMNIST...
        """
        if self.trainer is not None:
            raise RuntimeError("this session already started; create a new TrainingSession for another run")
        self.trainer = Trainer(self.cfg, run_dir=self.run_dir, store=self.store, progress=False)
        loader = self.trainer.test_loader
        # the test loader's generators (a rate encoder's spikes, its workers' seeds) and the global ones (a
        # loader without a generator draws its seed there) as they were: the run's evaluations see what they
        # see without a session
        with self._same_global_randomness():
            with same_randomness(loader):
                x, y = next(iter(loader))
            self._probe = (x[:, : self.probe_samples].to(self.trainer.device), y[: self.probe_samples])
            self._queue = self.trainer.events.queue(maxsize=50_000)
            self._unsubscribe = self.trainer.events.subscribe(self._on_step, kinds=["step"])
            self.take_snapshot(step=0)
        self.trainer.start()

    @contextlib.contextmanager
    def _same_global_randomness(self) -> Iterator[None]:
        """Put torch's, NumPy's, Python's (and on a CUDA run, CUDA's) global random states back on exit, and the
        model's own generators (a seeded layer drawing noise or masks in eval mode: its training stream). Only in
        the thread that trains, or before it starts: the states are the process's."""
        cuda = self.trainer is not None and self.trainer.device.type == "cuda"
        own = model_generators(self.trainer.model) if self.trainer is not None else {}
        rng = global_rng_state(cuda=cuda)
        try:
            with same_generator_states(own):
                yield
        finally:
            set_global_rng_state(rng, cuda=cuda)

    def pause(self) -> None:
        """Pause at the next step boundary.

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 10_000})
            >>> s.start(); s.pause(); s.trainer.pause(wait=True, timeout=30)   # (the trainer's pause can wait)
            True
            >>> s.state
            'paused'
            >>> s.close()
        """
        if self.trainer is not None:
            self.trainer.pause()

    def resume(self) -> None:
        """Resume a paused run.

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 10_000})
            >>> s.start(); s.pause(); s.trainer.pause(wait=True, timeout=30)
            True
            >>> s.resume(); s.state
            'running'
            >>> s.close()
        """
        if self.trainer is not None:
            self.trainer.resume()

    def stop(self, wait: bool = False, timeout: float | None = 30.0) -> None:
        """Stop at the next step boundary (a checkpoint is kept when ``run_dir`` is set).

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 10_000})
            >>> s.start(); s.stop(wait=True); s.state
            'stopped'
            >>> s.close()
        """
        if self.trainer is not None and self.trainer.state in ("running", "paused"):
            self.trainer.stop(wait=wait, timeout=timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends; True if it did within ``timeout``.

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 1})
            >>> s.wait()          # not started: nothing to wait for
            True
            >>> s.start(); s.wait(60), s.state
            (True, 'finished')
        """
        return self.trainer.wait(timeout) if self.trainer is not None else True

    def close(self) -> None:
        """Stop the run and detach from it (call when the UI goes away).

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 10_000})
            >>> s.start(); s.close(); s.state
            'stopped'
        """
        self.stop(wait=True, timeout=30.0)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._queue is not None:
            self._queue.close()

    # ------------------------------------------------------------------ state for the UI
    def poll(self) -> list[Event]:
        """Process the events queued since the last call; returns them (call from the UI thread).

        Their metrics go to ``curves`` in one send (one redraw). If processing an event raises, the
        events before it are kept (progress, curves), the exception propagates and that event and the
        ones after it stay queued for the next call (after ``MAX_POLL_ATTEMPTS`` failures the event is
        skipped). A drawing error raised by the curves' send loses nothing: the rows are already in
        the buffer and the next send draws them.

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 1})
            >>> s.start(); s.wait(60)
            True
            >>> [e.kind for e in s.poll()]
            ['started', 'step', 'step', 'epoch', 'evaluation', 'finished']
            >>> int((s.curves.buffer.data["name"] == "loss").sum()), s.progress, s.poll()
            (2, 1.0, [])
        """
        with self._poll_lock:
            if self._queue is not None:
                self._pending.extend(self._queue.drain())
            if not self._pending:
                return []
            done: list[Event] = []
            rows: list[tuple[int, dict[str, float]]] = []
            error: BaseException | None = None
            for ev in self._pending:
                try:
                    rows.extend(self._apply(ev))
                except Exception as e:  # noqa: BLE001 -- kept queued, re-raised below
                    self._attempts += 1
                    if self._attempts < MAX_POLL_ATTEMPTS:
                        error = e
                        break
                    error = RuntimeError(f"skipped a {ev.kind!r} event after {self._attempts} failed attempts: "
                                         f"{type(e).__name__}: {e}")
                self._attempts = 0
                done.append(ev)
            del self._pending[:len(done)]
            try:
                self.curves.send_many(rows)  # one DataFrame, one redraw
            finally:
                if error is not None:
                    raise error
            return done

    def _apply(self, ev: Event) -> list[tuple[int, dict[str, float]]]:
        """Update the state from one event; returns its curve rows ``[(step, metrics)]``."""
        d = ev.data
        epochs = max(1, int(self.cfg.epochs))
        if ev.kind == "step":
            rows = [(ev.step, {k: d[k] for k in STEP_METRICS if d.get(k) is not None})]
            n = d.get("n_batches") or 0
            if n:
                self.progress = min(1.0, (ev.epoch + (d.get("batch", 0) + 1) / n) / epochs)
            self.step = ev.step
            return rows
        if ev.kind == "evaluation":
            prefix = "rounded_test_" if d.get("phase") == "rounded" else "test_"
            rows = [(ev.step, {prefix + k: d[k] for k in STEP_METRICS if k in d})]
            self.last_eval = {k: v for k, v in d.items() if k != "phase"}
            return rows
        if ev.kind == "finished":
            self.take_snapshot(step=ev.step)
            self.progress = 1.0
        elif ev.kind == "failed":
            self.error = d.get("message", "training failed")
        return []

    def take_snapshot(self, step: int) -> dict[str, Any]:
        """Run the model on the probe batch under a :class:`Monitor` and store the result (its whole sequences from
        rest, whatever the layers' ``carry_state``: :func:`snnlab.carry_suspended`).

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 1}, probe_samples=2)
            >>> s.take_snapshot(step=0)
            Traceback (most recent call last):
            ...
            RuntimeError: start() the session first
            >>> s.start(); s.wait(60)
            True
            >>> snap = s.take_snapshot(step=99)
            >>> snap is s.snapshot, sorted(snap["spikes"]), tuple(snap["membrane"]["1"].shape), snap["labels"].shape
            (True, ['1'], (8, 2, 16), torch.Size([2]))
        """
        if self.trainer is None or self._probe is None:
            raise RuntimeError("start() the session first")
        model = self.trainer.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), carry_suspended(model), Monitor(model, to_cpu=True) as mon:
                model(self._probe[0])  # (whole sequences from rest, whatever the layers' carry_state)
        finally:
            model.train(was_training)
        delays = {name: m for name, m in model.named_modules() if isinstance(m, DelayedLinear)}
        # learnt ones change during training; an ALIF's moves within a sample (the monitor's record, [T, B, ...])
        thresholds = {name: mon.thresholds.get(name, m.threshold.detach().cpu().clone() if isinstance(m, LIF) else None)
                      for name, m in mon.layers.items()}
        snap = {"step": int(step), "spikes": dict(mon.spikes), "membrane": dict(mon.membrane),
                "thresholds": thresholds, "labels": self._probe[1].clone(), "delay_layers": delays}
        rows = [delay_snapshot(m, step, name=name) for name, m in delays.items()]
        with self._lock:
            self.snapshot = snap
            if rows:
                self.delay_history.append(pd.concat(rows, ignore_index=True))
                if len(self.delay_history) > MAX_DELAY_SNAPSHOTS:  # thin out: every other one, the newest kept
                    self.delay_history = self.delay_history[-1::-2][::-1]
        return snap

    def delay_history_frame(self) -> pd.DataFrame:
        """All delay snapshots so far, in :data:`snnlab.viz.HISTORY_COLUMNS` format.

        Example:
            >>> s = TrainingSession({"hidden": [16], "num_steps": 8, "batch_size": 16, "max_batches_per_epoch": 2,
            ...                     "eval_max_batches": 1, "epochs": 1, "delays": True, "max_delay": 4}, probe_every=1)
            >>> s.delay_history_frame().empty
            True
            >>> s.start(); s.wait(60)
            True
            >>> h = s.delay_history_frame()       # a snapshot at the start and after each of the 2 steps
            >>> sorted(h["step"].unique().tolist()), {"step", "position", "sigma"} <= set(h.columns)
            ([0, 1, 2], True)
        """
        with self._lock:
            return pd.concat(self.delay_history, ignore_index=True) if self.delay_history else pd.DataFrame()

    def _on_step(self, event: Event) -> None:
        # runs in the training thread, between optimiser steps: the weights are consistent here
        if event.step % self.probe_every == 0:
            with self._same_global_randomness():  # (a model drawing random numbers in eval mode)
                self.take_snapshot(event.step)
