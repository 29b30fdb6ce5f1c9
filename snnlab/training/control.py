"""Controlling a run from another thread or from Ctrl-C: its state, start / pause / resume / stop / wait, interrupts.

:class:`ControlMixin` gives the :class:`~snnlab.training.Trainer` these methods. A run honours pause and stop
requests at step boundaries (:meth:`ControlMixin._control`, called by the epoch loop before each batch); a
:meth:`~ControlMixin.interrupt` that comes inside an optimiser step waits until the step is recorded.

Example:
    >>> from snnlab.training import ExperimentConfig, Trainer
    >>> tr = Trainer(ExperimentConfig(hidden=[16], epochs=1, max_batches_per_epoch=2), progress=False)
    >>> tr.state, tr.running, tr.state in STATES
    ('idle', False, True)
    >>> tr.stop()                          # asked before the run: it stops at its first step boundary
    True
    >>> tr.run() is None, tr.state
    (True, 'stopped')
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TypeVar

from .interrupts import handle_signals, tell
from .threads import ContextThread

__all__ = ["STATES", "ControlMixin"]

STATES = ("idle", "running", "paused", "stopped", "finished", "failed")

_Run = TypeVar("_Run", bound="ControlMixin")


class ControlMixin:
    """State and thread control of a run, for the :class:`~snnlab.training.Trainer`.

    Expects of the class it is mixed into: ``run(raise_errors=...)`` (the training, in the calling thread), ``run_id``,
    ``train_loader`` / ``test_loader``, ``_emit`` and ``_store`` (see :class:`~snnlab.training.records.ReportingMixin`);
    :meth:`_init_control` sets its own attributes, and ``run`` calls :meth:`_begin_running` and, when it returns,
    :meth:`_end_running`. :meth:`stop`, :meth:`pause` and :meth:`wait` called in the training thread (a callback,
    which runs there) return at once instead of waiting for what only that thread can do.
    """

    def _init_control(self) -> None:
        self._in_optimizer_step = False  # interrupt() waits until the step is recorded
        self._saving_checkpoint = False  # interrupt() waits until the checkpoint being saved is saved (_interrupts_wait)
        self._pending_interrupt: BaseException | None = None
        self._cond = threading.Condition(threading.RLock())
        self._state = "idle"
        self._pause_req = False
        self._stop_req = False
        self._stop_reason: str | None = None
        self._thread: threading.Thread | None = None
        self._runner: threading.Thread | None = None  # the thread inside run() (the training thread), while it runs

    @property
    def state(self) -> str:
        """One of ``"idle", "running", "paused", "stopped", "finished", "failed"``."""
        with self._cond:
            return self._state

    def _set_state(self, state: str) -> None:
        with self._cond:
            self._state = state
            self._cond.notify_all()

    def start(self: _Run) -> _Run:
        """Run :meth:`run` in a background (daemon) thread and return at once.

        The thread runs in a copy of the calling thread's context (:class:`~snnlab.training.threads.ContextThread`):
        in Jupyter, what the run prints or logs appears under the cell that called this."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("this trainer is already running in a background thread")
            self._check_can_run()
            self._claim_run_folder()  # refused here, in the caller's thread, before any state changes
            try:
                # in the caller's context: in Jupyter its output (a failing callback's traceback, "training run ...
                # failed") goes to the cell that started the run, not to the one running when it is written
                self._thread = ContextThread(target=self.run, kwargs={"raise_errors": False},
                                             name=f"snnlab-trainer-{self.run_id}", daemon=True)
                self._state = "running"  # so that pause(wait=True) right after start() waits for the pause
                self._thread.start()
            except BaseException:
                self._state = "idle"
                self._release_run_folder()
                raise
        return self

    def pause(self, wait: bool = False, timeout: float | None = None) -> bool:
        """Ask the run to pause at the next step boundary; with ``wait``, block until it has paused.

        Returns True when the run is (or, without ``wait``, will be) paused. In the training thread (a callback, a
        signal handler) ``wait`` is ignored: it returns at once, and the run pauses at its next step boundary (until
        another thread calls :meth:`resume` or :meth:`stop`).
        """
        with self._cond:
            if self._state in ("finished", "failed", "stopped"):
                return False
            self._pause_req = True
            self._cond.notify_all()
            if not wait or self._in_training_thread():  # (the pause comes after this returns: waiting would hang)
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
        Returns True when the run has ended (with ``wait``) or the request was made. Safe in the training thread (a
        callback, a signal handler): there ``wait`` is ignored, it returns True at once, and the run stops at its
        next step boundary, after the callback returns.
        """
        with self._cond:
            self._stop_req = True
            self._stop_reason = reason if reason is not None else self._stop_reason
            self._pause_req = False
            self._cond.notify_all()
        return self.wait(timeout) if wait and not self._in_training_thread() else True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run ends (or ``timeout`` seconds); returns True when it is no longer running.

        It waits for the run's state, then for its background thread to deliver its last events. (A
        ``Thread.join`` cut short by Ctrl-C marks the thread as ended although it runs on, so the state decides.)
        In the training thread (a callback), where the run cannot end while it waits, it returns at once: False
        while the run is running or paused.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._in_training_thread():
            with self._cond:
                return self._state not in ("running", "paused")
        with self._cond:
            if not self._cond.wait_for(lambda: self._state not in ("running", "paused"), timeout):
                return False
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return True

    def _in_training_thread(self) -> bool:
        """Whether the calling thread is the one training this run (inside :meth:`run`, or :meth:`start`'s thread):
        a wait there for the run to pause or end would never return."""
        current = threading.current_thread()
        return current is self._runner or current is self._thread

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused")

    def _check_can_run(self) -> None:
        if self._state in ("running", "paused") and (self._thread is None or self._thread is not threading.current_thread()):
            raise RuntimeError("this trainer is already running")
        if self._state in ("finished", "failed"):
            raise RuntimeError(f"this run has already {self._state}; create a new Trainer "
                               "(or Trainer.resume_from(checkpoint) to continue from the last checkpoint)")

    def _begin_running(self) -> None:
        """The state "running", unless the run cannot run (already running, finished or failed)."""
        with self._cond:
            self._check_can_run()
            self._state = "running"
            self._runner = threading.current_thread()
            self._cond.notify_all()

    def _end_running(self) -> None:
        """:meth:`run` has returned (or raised) in its thread: no thread is training the run now."""
        with self._cond:
            if self._runner is threading.current_thread():
                self._runner = None

    def _forget_stop_request(self) -> None:
        with self._cond:
            self._stop_req, self._stop_reason = False, None

    def _mark_stopped(self) -> None:
        """The state "stopped", with the stop request that led there answered."""
        with self._cond:
            self._state = "stopped"
            self._stop_req = False
            self._stop_reason = None
            self._cond.notify_all()

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

    # ------------------------------------------------------------------------------ Ctrl-C and interrupts
    def interrupt(self, exc: BaseException | None = None) -> None:
        """Raise ``exc`` (default ``KeyboardInterrupt``) now, from a signal handler of the thread that runs
        :meth:`run`, or, when that thread is inside an optimiser step, just after the step is recorded (an
        optimiser step cut in half could not be resumed). :meth:`run` then saves a checkpoint and re-raises it.
        One that comes while the run saves a checkpoint (:meth:`_interrupts_wait`) waits for the save (a save cut short
        would leave no checkpoint), as one during an epoch's record (history, events, store) does: it is raised after
        the epoch's save, and answered by the run's end after the save of a stop or of the finished run."""
        exc = exc if exc is not None else KeyboardInterrupt()
        if self._in_optimizer_step or self._saving_checkpoint:
            self._pending_interrupt = exc
            return
        raise exc

    @contextlib.contextmanager
    def _interrupts_wait(self, then_raise: bool) -> Iterator[None]:
        """A block that :meth:`interrupt` waits for: a checkpoint's save (a ``KeyboardInterrupt`` inside ``torch.save``
        leaves no checkpoint, and torch turns it into a ``RuntimeError`` that would fail the run). With
        ``then_raise`` an interrupt that came meanwhile is raised once the block has ended (unless the block
        raised); otherwise it is dropped (the block ends the run: a stop, or a finished run's save and report)."""
        before, self._saving_checkpoint = self._saving_checkpoint, True
        pending = None
        try:
            yield
        finally:
            self._saving_checkpoint = before
            if not before:  # (the outermost block answers the interrupts that came meanwhile)
                pending, self._pending_interrupt = self._pending_interrupt, None
        if then_raise and pending is not None:
            raise pending

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
