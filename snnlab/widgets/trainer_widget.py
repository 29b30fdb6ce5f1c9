"""Train from a notebook: a config form, Start / Pause / Resume / Stop, progress, live curves and a live raster.

All training logic lives in :class:`~snnlab.widgets.TrainingSession` (the run happens in its
background thread). This widget only turns its state into widget values:

* :meth:`TrainerWidget.refresh` does one ``session.poll()`` (all the events since the last one, in one
  batch) and updates progress, status and buttons, then redraws the plots: the rows the session's
  curves received since the last draw go to the widget's own :class:`~snnlab.viz.LiveCurves` in one
  send (``curves``: one panel per metric scale -- loss, accuracy, spikes per sample -- each with its
  test metrics as markers), and the raster when a new snapshot arrived.
* While a run is active, a daemon *poll thread* calls :meth:`refresh` every ``poll_interval`` seconds
  (``None``: no thread; call :meth:`refresh` yourself), so the kernel stays free for other cells.
  Setting ipywidget values from a thread is safe (``ipykernel>=7.0.1``); a Bokeh document is not: the
  kernel handles the browser's messages to the plots in other threads (JupyterLab's kernel subshells),
  and ``jupyter_bokeh`` applying them while a redraw changes the same data source fails ("Set changed
  size during iteration"). So every redraw, and every message from the browser to these plots, holds
  one lock. After the run ends the thread does a last refresh and always restores the buttons.
* Only one run trains at a time: a new ``TrainerWidget`` (e.g. the cell run again) stops the runs of the
  earlier ones (``stop_others=False`` keeps them) and waits until they have stopped: both widgets name the step
  each run stopped at, and the old widget keeps saying why it stopped. :meth:`close` stops its own run.
* The poll thread runs in a copy of the context of the thread that started it
  (:func:`snnlab.training.threads.start_thread`): in Jupyter, what it writes goes to the cell that started it.

Example:
    >>> from snnlab.training import ExperimentConfig
    >>> tw = TrainerWidget(ExperimentConfig(hidden=[16], epochs=1, max_batches_per_epoch=3))
    >>> # show it (last line of a cell), then press Start -- or start it from code:
    >>> tw                                   # doctest: +SKIP
    >>> tw.start_button.click()              # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import html
import threading
import weakref
from typing import Any, ClassVar

import ipywidgets as W

from snnlab.training.config import ExperimentConfig
from snnlab.training.threads import start_thread
from snnlab.viz import LiveCurves, monitor_raster

from ._hv import HoloViewsWidget
from ._lifecycle import close_descendants
from .config_form import ConfigForm
from .session import CURVE_GROUPS, LIVE_BUFFER_LENGTH, TrainingSession

__all__ = ["TrainerWidget"]

ACTIVE = ("running", "paused")
#: seconds a new TrainerWidget waits for the runs it stops to reach their next step boundary
STOP_OTHERS_TIMEOUT = 30.0


def _serialise_browser_messages(view: HoloViewsWidget, lock: Any) -> None:
    """Handle the browser's messages to ``view``'s widget (``jupyter_bokeh`` applying plot changes, view
    counts) while holding ``lock``, the lock every redraw of the plot holds."""
    widget, comm = view.widget, getattr(view.widget, "comm", None)
    handle = getattr(widget, "_handle_msg", None)
    if comm is None or handle is None or not hasattr(comm, "on_msg"):
        return

    def locked(msg: Any) -> None:
        with lock:
            handle(msg)

    comm.on_msg(locked)


class TrainerWidget(W.VBox):
    """Live training controller for JupyterLab (see the module docstring).

    Args:
        cfg: initial settings for the form (``ExperimentConfig`` or dict; default: the defaults).
        store: a :class:`~snnlab.experiments.RunStore` each run logs into (optional).
        run_dir: a folder for checkpoints (optional): each Start trains in a new ``run_dir/<id>`` (as the
            dashboard's runs do), so a second run never meets the first one's checkpoint.
        poll_interval: seconds between background refreshes; ``None`` disables the poll thread.
        probe_every, probe_samples: passed to :class:`TrainingSession` (snapshot cadence and size).
        plot_mode: how plots are shown (:class:`~snnlab.widgets._hv.HoloViewsWidget`: ``"auto"``,
            ``"bokeh"`` or ``"output"``).
        stop_others: stop the runs of earlier ``TrainerWidget`` instances (a notebook cell run again
            leaves its old widget training invisibly otherwise).

    Attributes:
        session: the current :class:`TrainingSession` (``None`` before the first Start).
        form: the :class:`~snnlab.widgets.config_form.ConfigForm`.
        start_button, pause_button, resume_button, stop_button, progress, status: the controls.
        curves: the widget's :class:`~snnlab.viz.LiveCurves` (one panel per entry of
            :data:`~snnlab.widgets.session.CURVE_GROUPS` in ``curves.plots``), fed from the session's: the
            latest :data:`~snnlab.widgets.session.LIVE_BUFFER_LENGTH` step rows (~6,600 steps of three metrics;
            the ``store`` keeps every step) and the test points of the whole run.
        curve_views: the slots showing ``curves.plots`` (one :class:`HoloViewsWidget` per panel).
        raster: the raster slot (``raster.object`` is the latest snapshot's raster).
        display_error: the last drawing error (``None`` if none).

    Example:
        >>> tw = TrainerWidget({"hidden": [32], "epochs": 3}, poll_interval=None)
        >>> tw.form.widgets["epochs"].value, tw.state, tw.start_button.disabled, tw.stop_button.disabled
        ('3', 'idle', False, True)
        >>> list(tw.curves.plots)       # one live panel per metric scale
        ['loss', 'accuracy', 'spikes per sample']
        >>> tw.close()
    """

    _instances: ClassVar[weakref.WeakSet] = weakref.WeakSet()

    def __init__(self, cfg: ExperimentConfig | dict | None = None, store: Any = None, run_dir: str | None = None,
                 poll_interval: float | None = 0.5, probe_every: int = 5, probe_samples: int = 4,
                 plot_mode: str = "auto", stop_others: bool = True, **kwargs: Any) -> None:
        self.store, self.run_dir = store, run_dir
        self.poll_interval = poll_interval
        self.probe_every, self.probe_samples = probe_every, probe_samples
        self.session: TrainingSession | None = None
        self.display_error: str | None = None
        self._status_note: str | None = None  # a status no refresh replaces (a newer widget stopped the run)
        self._closed = False
        # first, before any plot of this widget is built: a redraw in another widget's poll thread while this one
        # renders its Bokeh plots could fail ("'str' object has no attribute 'update'" from HoloViews)
        stopped = self._stop_other_runs() if stop_others else []
        self.form = ConfigForm(cfg=cfg)
        self.start_button = W.Button(description="Start", icon="play")
        self.pause_button = W.Button(description="Pause", icon="pause")
        self.resume_button = W.Button(description="Resume", icon="play")
        self.stop_button = W.Button(description="Stop", icon="stop")
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress")
        self.status = W.HTML(value="idle")
        self.sample = W.IntSlider(value=0, min=0, max=max(0, probe_samples - 1), description="raster sample",
                                  style={"description_width": "100px"})
        self.curves = LiveCurves(groups=CURVE_GROUPS, buffer_length=LIVE_BUFFER_LENGTH)
        self.curve_views = [HoloViewsWidget(plot, mode=plot_mode) for plot in self.curves.plots.values()]
        self.raster = HoloViewsWidget(None, mode=plot_mode)
        self._snapshot_step: int | None = None
        self._lock = threading.RLock()  # one refresh at a time
        self._render_lock = threading.RLock()  # the plots' Bokeh documents: redraws and browser messages
        for view in (*self.curve_views, self.raster):
            _serialise_browser_messages(view, self._render_lock)
        self._poll_thread: threading.Thread | None = None
        self._poll_stop = threading.Event()
        self.start_button.on_click(lambda _: self.start())
        self.pause_button.on_click(lambda _: self.pause())
        self.resume_button.on_click(lambda _: self.resume())
        self.stop_button.on_click(lambda _: self.stop())
        self.sample.observe(lambda _: self._redraw_raster(), names="value")
        controls = W.HBox([self.start_button, self.pause_button, self.resume_button, self.stop_button, self.progress])
        curves = W.HBox([v.widget for v in self.curve_views], layout=W.Layout(flex_flow="row wrap"))
        plots = W.Tab(children=[curves, W.VBox([self.sample, self.raster.widget])])
        plots.set_title(0, "learning curves")
        plots.set_title(1, "spike raster")
        settings = W.Accordion(children=[self.form], selected_index=0)
        settings.set_title(0, "settings")
        super().__init__(children=[settings, controls, self.status, plots], **kwargs)
        TrainerWidget._instances.add(self)
        self._update_controls()
        if stopped:
            self._set_status("; ".join(stopped))

    def _stop_other_runs(self) -> list[str]:
        """Stop the active runs of the other instances (all asked at once, then each waited for, up to
        :data:`STOP_OTHERS_TIMEOUT` seconds); returns what became of each, for this widget's status: the step it
        stopped at (read once it has stopped), or that it was still running then (it stops at its next step boundary).

        Each stopped widget says so in its status, and keeps saying it. Its poll thread is ended once the run has
        stopped (the last events are drawn here, in the calling thread), and a later refresh leaves that status alone
        (a run still stopping when the wait ended: its status says "stopping" until it has, then the step it stopped
        at).
        """
        others = [o for o in list(TrainerWidget._instances) if o is not self and o.state in ACTIVE]
        for other in others:
            other.stop()
        steps = []
        for other in others:
            session = other.session
            stopped = session.wait(STOP_OTHERS_TIMEOUT)
            if stopped and session.state != "stopped":  # it finished (or failed) on its own meanwhile: its own story
                continue
            step = session.trainer.step if session.trainer is not None else session.step
            note = other._stopped_by_newer_note()
            with other._lock:  # (a refresh of its poll thread is done or waits: it cannot write over the note)
                other._status_note = note
            if stopped:
                other._stop_polling()  # no redraw of it runs on while the caller builds its plots
            with contextlib.suppress(Exception):  # its last events drawn, its buttons back
                other.refresh()
            other._set_status(note)
            steps.append(f"stopped the run of an earlier TrainerWidget at step {step}" if stopped else
                         f"asked the run of an earlier TrainerWidget to stop: still running at step {step} after "
                         f"{STOP_OTHERS_TIMEOUT:g} s (it stops at its next step boundary)")
        return steps

    def _stopped_by_newer_note(self) -> str:
        """The status of a widget whose run a newer TrainerWidget stopped: "stopping" while the run has not yet, then
        the step it stopped at."""
        s = self.session
        step = s.trainer.step if s.trainer is not None else s.step
        if s.state in ACTIVE:
            return f"stopping (at step {step} after {STOP_OTHERS_TIMEOUT:g} s): a newer TrainerWidget was created"
        return f"stopped at step {step}: a newer TrainerWidget was created"

    # ------------------------------------------------------------------ control
    @property
    def state(self) -> str:
        """The session's state (``"idle"`` without one).

        Example:
            >>> tw = TrainerWidget(poll_interval=None); tw.state          # (the run's: see start())
            'idle'
            >>> tw.close()
        """
        return self.session.state if self.session is not None else "idle"

    def start(self) -> bool:
        """Start a new run from the form's settings; False (and a message) when the settings are invalid, a run
        is active or the widget is closed.

        Example:
            >>> tw = TrainerWidget(dict(hidden=[16], num_steps=8, batch_size=16, max_batches_per_epoch=2,
            ...                    eval_max_batches=1, epochs=1), poll_interval=None)
            >>> tw.start(), tw.session.wait(60)
            (True, True)
            >>> _ = tw.refresh(); tw.state, tw.progress.value, tw.raster.object is not None
            ('finished', 1.0, True)
            >>> tw.form.widgets["epochs"].value = "0"; tw.start(), "epochs" in tw.form.error   # shown in the status
            (False, True)
            >>> tw.close()
        """
        if self._closed:
            self._set_status("closed: create a new TrainerWidget to train", error=True)
            return False
        if self.state in ACTIVE:
            self._set_status("a run is active: stop it before starting another", error=True)
            return False
        cfg = self.form.config()
        if cfg is None:
            self._set_status(f"not started: {self.form.error}", error=True)
            return False
        self._stop_polling()
        if self.session is not None:
            self.session.close()
        self.session, self._snapshot_step, self._status_note = None, None, None
        try:
            session = TrainingSession(cfg, store=self.store, run_root=self.run_dir, probe_every=self.probe_every,
                                      probe_samples=self.probe_samples)
            session.start()
        except Exception as e:  # bad data folder, config problem: show it, start nothing
            self._set_status(f"not started: {type(e).__name__}: {e}", error=True)
            self._update_controls()
            return False
        self.session = session  # the plots keep the last run's curves until this one has rows (no empty frame)
        self.display_error = None
        self.progress.value = 0.0
        self.sample.max = max(0, int(session.snapshot["labels"].shape[0]) - 1) if session.snapshot else 0
        self.refresh()
        if self.poll_interval is not None:
            self._start_polling()
        return True

    def pause(self) -> None:
        """Pause the run at the next step boundary (nothing to do, and the status stays, unless a run is running).

        Example:
            >>> tw = TrainerWidget(dict(hidden=[16], num_steps=8, batch_size=16, max_batches_per_epoch=2,
            ...                    eval_max_batches=1, epochs=10_000), poll_interval=None)
            >>> tw.start(); tw.pause(); tw.status.value
            True
            'pausing ...'
            >>> tw.session.trainer.pause(wait=True, timeout=30)     # (the trainer's pause can wait)
            True
            >>> _ = tw.refresh(); tw.state, tw.pause_button.disabled, tw.resume_button.disabled
            ('paused', True, False)
            >>> tw.close()
        """
        if self.state != "running":
            self._update_controls()
            return
        if self.session is not None:
            self.session.pause()
            self._set_status("pausing ...")
            self.pause_button.disabled = True

    def resume(self) -> None:
        """Resume a paused run.

        Example:
            >>> tw = TrainerWidget(dict(hidden=[16], num_steps=8, batch_size=16, max_batches_per_epoch=2,
            ...                    eval_max_batches=1, epochs=10_000), poll_interval=None)
            >>> tw.start(); tw.pause(); tw.session.trainer.pause(wait=True, timeout=30)
            True
            True
            >>> tw.resume(); tw.state, tw.pause_button.disabled
            ('running', False)
            >>> tw.close()
        """
        if self.session is not None and not self._closed:
            self.session.resume()
            self.refresh()
            if self.poll_interval is not None:
                self._start_polling()

    def stop(self, wait: bool = False) -> None:
        """Stop the run at the next step boundary (``wait=True``: until it has stopped).

        The buttons come back when the run has stopped: the poll thread's last refresh (or, without one,
        the next :meth:`refresh`).

        Example:
            >>> tw = TrainerWidget(dict(hidden=[16], num_steps=8, batch_size=16, max_batches_per_epoch=2,
            ...                    eval_max_batches=1, epochs=10_000), poll_interval=None)
            >>> tw.start(); tw.stop(wait=True); tw.state, tw.start_button.disabled
            True
            ('stopped', False)
            >>> tw.close()
        """
        if self.session is None or self.session.state not in ACTIVE:
            self._update_controls()
            return
        self.session.stop(wait=wait)
        if wait:
            self.refresh()
            return
        self._set_status("stopping ...")
        for b in (self.start_button, self.pause_button, self.resume_button, self.stop_button):
            self._enable(b, False)
        if self.poll_interval is not None:
            self._start_polling()  # (again, if it ended) so that a last refresh restores the buttons

    def close(self) -> None:
        """Stop the run and the poll thread, then close the widgets: every child ipywidget (the form, the
        controls, the plots' Panel panes), so that the widget can be freed. :meth:`start` refuses afterwards;
        ``session`` (closed) stays readable. A step that fails does not keep the others from running; its error is
        raised and ``close()`` may be called again; once a close succeeded, another does nothing.

        Example:
            >>> tw = TrainerWidget(poll_interval=None); tw.close()
            >>> tw.start(), tw.status.value
            (False, "<span style='color:#b00020'>closed: create a new TrainerWidget to train</span>")
        """
        if getattr(self, "_close_done", False):  # a second close (Widget.__del__ after close(), maybe at exit)
            return
        self._closed = True  # start() refuses from now on, even if closing fails below
        errors: list[Exception] = []

        def attempt(step: Any, *args: Any) -> None:
            try:
                step(*args)
            except Exception as e:  # noqa: BLE001 -- the other steps still run; the first error is raised
                errors.append(e)

        if hasattr(self, "_render_lock"):  # (not after a failed __init__, via Widget.__del__: nothing started)
            attempt(self._stop_polling)
            if self.session is not None:
                attempt(self.session.close)
            if not errors:  # (a run that may still be active stays stoppable by a newer TrainerWidget)
                TrainerWidget._instances.discard(self)
            with self._render_lock:
                for view in (*self.curve_views, self.raster):
                    attempt(view.close)
        attempt(close_descendants, self)
        attempt(super().close)
        if errors:  # nothing marked done: close() can be called again and retries what failed
            raise errors[0]
        self._close_done = True

    # ------------------------------------------------------------------ display
    def refresh(self) -> list:
        """One poll of the session (all events since the last, in one batch), then progress, status, buttons
        and a redraw of the plots that changed; returns the polled events.

        Example:
            >>> tw = TrainerWidget(dict(hidden=[16], num_steps=8, batch_size=16, max_batches_per_epoch=2,
            ...                    eval_max_batches=1, epochs=1), poll_interval=None)
            >>> tw.refresh()                  # no run yet
            []
            >>> tw.start(); tw.session.wait(60)
            True
            True
            >>> [e.kind for e in tw.refresh()][-3:], tw.status.value.startswith("finished &middot; step 2")
            (['epoch', 'evaluation', 'finished'], True)
            >>> tw.close()
        """
        with self._lock:
            s = self.session
            if s is None:
                self._update_controls()
                return []
            state = s.state  # before draining: a paused/ended run has queued all its step events by now
            try:
                return s.poll()
            finally:  # even if processing an event failed: what was processed shows, the buttons follow
                self.progress.value = float(s.progress)
                self._update_status(state)
                self._update_controls()
                self._render()

    def _render(self) -> None:
        """Redraw the curves (the new rows, one send) and the raster; a drawing error is shown, never raised."""
        with self._render_lock:
            try:
                self._draw_curves()
                self._draw_raster()
            except Exception as e:  # noqa: BLE001 -- the rows are kept: the next redraw shows them
                self.display_error = f"{type(e).__name__}: {e}"
                self._set_status(f"display error: {self.display_error}", error=True)

    def _redraw_raster(self) -> None:
        with self._render_lock:
            self._draw_raster(force=True)

    def _draw_curves(self) -> None:
        s = self.session
        if s is None:
            return
        with self._batch():  # a new run replaces the last run's curves once it has rows
            changed = self.curves.follow(s.curves, keep_until_rows=s.state in ACTIVE)
        if not changed:
            return
        for view in self.curve_views:
            if view.mode == "output":  # a static output does not follow the stream: show it again
                view.object = view.object

    @contextlib.contextmanager
    def _batch(self):
        with contextlib.ExitStack() as stack:
            for view in self.curve_views:
                if hasattr(view, "batch"):
                    stack.enter_context(view.batch())
            yield

    def _draw_raster(self, force: bool = False) -> None:
        s = self.session
        snap = s.snapshot if s is not None else None
        if snap is None or not snap["spikes"] or (not force and snap["step"] == self._snapshot_step):
            return
        sample = min(int(self.sample.value), int(snap["labels"].shape[0]) - 1)
        self._snapshot_step = snap["step"]
        plot = monitor_raster(snap["spikes"], sample=sample)
        label = int(snap["labels"][sample])
        self.raster.object = plot.opts(title=f"step {snap['step']}, sample {sample} (label {label})",
                                       backend="bokeh")

    def _update_status(self, state: str | None = None) -> None:
        s = self.session
        if s is None:
            return
        if self._status_note is not None and s.state in (*ACTIVE, "stopped"):  # a newer TrainerWidget stopped the run
            if self._status_note.startswith("stopping"):  # (still stopping when the newer one stopped waiting)
                self._status_note = self._stopped_by_newer_note()
            self._set_status(self._status_note)  # that stays the story
            return
        state = s.state if state is None else state
        if s.error:
            self._set_status(f"{state}: {s.error}", error=True)
            return
        text = f"{state} &middot; step {s.step} &middot; {100 * s.progress:.0f}%"
        if s.last_eval:
            acc = s.last_eval.get("accuracy")
            if acc is not None:
                text += f" &middot; test accuracy {float(acc):.3f}"
        self.status.value = text

    def _set_status(self, text: str, error: bool = False) -> None:
        if error:
            self.status.value = f"<span style='color:#b00020'>{html.escape(text)}</span>"
        else:
            self.status.value = html.escape(text)

    _STYLES = {"Start": "success", "Stop": "danger"}

    def _enable(self, button: W.Button, enabled: bool) -> None:
        # a disabled button loses its colour too: a red "Stop" looks clickable even when greyed
        button.disabled = not enabled
        button.button_style = self._STYLES.get(button.description, "") if enabled else ""

    def _update_controls(self) -> None:
        state = self.state
        self._enable(self.start_button, state not in ACTIVE)
        self._enable(self.pause_button, state == "running")
        self._enable(self.resume_button, state == "paused")
        self._enable(self.stop_button, state in ACTIVE)
        self.form.disabled = state in ACTIVE

    # ------------------------------------------------------------------ poll thread
    def _start_polling(self) -> None:
        if self._poll_thread is not None and self._poll_thread.is_alive():
            return
        self._poll_stop.clear()
        # in a copy of the caller's context: in Jupyter what the thread writes goes to the cell that started it
        self._poll_thread = start_thread(self._poll_loop, name="snnlab-trainer-widget-poll")

    def _stop_polling(self) -> None:
        self._poll_stop.set()
        t = self._poll_thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)
        self._poll_thread = None

    def _safe_refresh(self) -> None:
        try:
            self.refresh()
        except Exception as e:  # noqa: BLE001 -- never let a problem kill the thread silently
            self.display_error = f"{type(e).__name__}: {e}"
            self._set_status(f"display error: {self.display_error}", error=True)

    def _poll_loop(self) -> None:
        interval = max(0.05, float(self.poll_interval or 0.5))
        try:
            while not self._poll_stop.wait(interval):
                self._safe_refresh()
                if self.state not in ACTIVE:
                    self._safe_refresh()  # the final events (evaluation, finished snapshot)
                    break
        finally:  # whatever happened above: the buttons follow the run's state
            with contextlib.suppress(Exception):
                self._update_controls()
