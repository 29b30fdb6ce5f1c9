"""Train from a notebook: a config form, Start / Pause / Resume / Stop, progress, live curves and a live raster.

All training logic lives in :class:`~snnlab.widgets.TrainingSession` (the run happens in its
background thread). This widget only turns its state into widget values:

* :meth:`TrainerWidget.refresh` does one ``session.poll()`` and redraws (progress, status, buttons,
  and the raster when a new snapshot arrived). The live curves need no redraw: the session's
  :class:`~snnlab.viz.LiveCurves` buffer is streamed into its plot by ``poll()`` itself (the plot is
  re-attached only when a new metric appears, e.g. the first test accuracy).
* While a run is active, a daemon *poll thread* calls :meth:`refresh` every ``poll_interval`` seconds
  (``None``: no thread; call :meth:`refresh` yourself). Setting ipywidget values and sending on
  HoloViews streams from a thread is safe with ``ipykernel>=7.0.1``, so the kernel stays free for
  other cells while the run trains.

Example:
    >>> from snnlab.training import ExperimentConfig
    >>> tw = TrainerWidget(ExperimentConfig(hidden=[16], epochs=1, max_batches_per_epoch=3))
    >>> # show it (last line of a cell), then press Start -- or start it from code:
    >>> tw                                   # doctest: +SKIP
    >>> tw.start_button.click()              # doctest: +SKIP
"""
from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as W

from snnlab.training.config import ExperimentConfig
from snnlab.viz import monitor_raster

from ._hv import HoloViewsWidget
from .config_form import ConfigForm
from .session import TrainingSession

__all__ = ["TrainerWidget"]

ACTIVE = ("running", "paused")


class TrainerWidget(W.VBox):
    """Live training controller for JupyterLab (see the module docstring).

    Args:
        cfg: initial settings for the form (``ExperimentConfig`` or dict; default: the defaults).
        store: a :class:`~snnlab.experiments.RunStore` each run logs into (optional).
        run_dir: checkpoint folder passed to the session (optional).
        poll_interval: seconds between background refreshes; ``None`` disables the poll thread.
        probe_every, probe_samples: passed to :class:`TrainingSession` (snapshot cadence and size).
        plot_mode: how plots are shown (:class:`~snnlab.widgets._hv.HoloViewsWidget`: ``"auto"``,
            ``"bokeh"`` or ``"output"``).

    Attributes:
        session: the current :class:`TrainingSession` (``None`` before the first Start).
        form: the :class:`~snnlab.widgets.config_form.ConfigForm`.
        start_button, pause_button, resume_button, stop_button, progress, status: the controls.
        curves: the curves slot (``curves.object`` is the session's ``LiveCurves.plot``).
        raster: the raster slot (``raster.object`` is the latest snapshot's raster).
    """

    def __init__(self, cfg: ExperimentConfig | dict | None = None, store: Any = None, run_dir: str | None = None,
                 poll_interval: float | None = 0.5, probe_every: int = 5, probe_samples: int = 4,
                 plot_mode: str = "auto", **kwargs: Any) -> None:
        self.store, self.run_dir = store, run_dir
        self.poll_interval = poll_interval
        self.probe_every, self.probe_samples = probe_every, probe_samples
        self.session: TrainingSession | None = None
        self.form = ConfigForm(cfg=cfg)
        self.start_button = W.Button(description="Start", button_style="success", icon="play")
        self.pause_button = W.Button(description="Pause", icon="pause")
        self.resume_button = W.Button(description="Resume", icon="play")
        self.stop_button = W.Button(description="Stop", button_style="danger", icon="stop")
        self.progress = W.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress")
        self.status = W.HTML(value="idle")
        self.sample = W.IntSlider(value=0, min=0, max=max(0, probe_samples - 1), description="raster sample",
                                  style={"description_width": "100px"})
        self.curves = HoloViewsWidget(None, mode=plot_mode)
        self.raster = HoloViewsWidget(None, mode=plot_mode)
        self._snapshot_step: int | None = None
        self._curve_names: tuple = ()
        self._lock = threading.RLock()
        self._poll_thread: threading.Thread | None = None
        self._poll_stop = threading.Event()
        self.start_button.on_click(lambda _: self.start())
        self.pause_button.on_click(lambda _: self.pause())
        self.resume_button.on_click(lambda _: self.resume())
        self.stop_button.on_click(lambda _: self.stop())
        self.sample.observe(lambda _: self._redraw_raster(), names="value")
        controls = W.HBox([self.start_button, self.pause_button, self.resume_button, self.stop_button, self.progress])
        plots = W.Tab(children=[self.curves.widget, W.VBox([self.sample, self.raster.widget])])
        plots.set_title(0, "learning curves")
        plots.set_title(1, "spike raster")
        settings = W.Accordion(children=[self.form], selected_index=0)
        settings.set_title(0, "settings")
        super().__init__(children=[settings, controls, self.status, plots], **kwargs)
        self._update_controls()

    # ------------------------------------------------------------------ control
    @property
    def state(self) -> str:
        """The session's state (``"idle"`` without one)."""
        return self.session.state if self.session is not None else "idle"

    def start(self) -> bool:
        """Start a new run from the form's settings; False (and a message) when the settings are invalid."""
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
        self.session, self._snapshot_step = None, None
        try:
            session = TrainingSession(cfg, store=self.store, run_dir=self.run_dir, probe_every=self.probe_every,
                                      probe_samples=self.probe_samples)
            session.start()
        except Exception as e:  # bad data folder, config problem: show it, start nothing
            self._set_status(f"not started: {type(e).__name__}: {e}", error=True)
            self._update_controls()
            return False
        self.session = session
        self.progress.value = 0.0
        self._curve_names = ()
        self.curves.object = None
        self.sample.max = max(0, int(session.snapshot["labels"].shape[0]) - 1) if session.snapshot else 0
        self.refresh()
        if self.poll_interval is not None:
            self._start_polling()
        return True

    def pause(self) -> None:
        """Pause the run at the next step boundary."""
        if self.session is not None:
            self.session.pause()
            self._set_status("pausing ...")
            self.pause_button.disabled = True

    def resume(self) -> None:
        """Resume a paused run."""
        if self.session is not None:
            self.session.resume()
            self.refresh()
            if self.poll_interval is not None:
                self._start_polling()

    def stop(self, wait: bool = False) -> None:
        """Stop the run at the next step boundary (``wait=True``: until it has stopped)."""
        if self.session is not None:
            self.session.stop(wait=wait)
            self._set_status("stopping ...")
            self._disable_all_but_start(keep_start=False)
            if wait:
                self.refresh()

    def close(self) -> None:
        """Stop the run and the poll thread, then close the widgets."""
        self._stop_polling()
        if self.session is not None:
            self.session.close()
        super().close()

    # ------------------------------------------------------------------ display
    def refresh(self) -> list:
        """One poll of the session and a redraw of everything that changed; returns the polled events."""
        with self._lock:
            s = self.session
            if s is None:
                self._update_controls()
                return []
            state = s.state  # before draining: a paused/ended run has queued all its step events by now
            events = s.poll()
            self.progress.value = float(s.progress)
            self._draw_curves()
            self._draw_raster()
            self._update_status(state)
            self._update_controls()
            return events

    def _redraw_raster(self) -> None:
        with self._lock:  # the poll thread may be drawing too
            self._draw_raster(force=True)

    def _draw_curves(self) -> None:
        # The LiveCurves plot streams new rows by itself; it is (re)attached only when the set of metrics
        # changes (an empty overlay cannot be drawn, and a live overlay keeps the curves it started with).
        data = self.session.curves.buffer.data
        names = tuple(dict.fromkeys(data["name"])) if len(data) else ()
        if names and names != self._curve_names:
            self._curve_names = names
            self.curves.object = self.session.curves.plot

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

    def _disable_all_but_start(self, keep_start: bool) -> None:
        self.pause_button.disabled = self.resume_button.disabled = self.stop_button.disabled = True
        self.start_button.disabled = not keep_start

    def _update_controls(self) -> None:
        state = self.state
        self.start_button.disabled = state in ACTIVE
        self.pause_button.disabled = state != "running"
        self.resume_button.disabled = state != "paused"
        self.stop_button.disabled = state not in ACTIVE
        self.form.disabled = state in ACTIVE

    # ------------------------------------------------------------------ poll thread
    def _start_polling(self) -> None:
        if self._poll_thread is not None and self._poll_thread.is_alive():
            return
        self._poll_stop.clear()
        self._poll_thread = threading.Thread(target=self._poll_loop, name="snnlab-trainer-widget-poll", daemon=True)
        self._poll_thread.start()

    def _stop_polling(self) -> None:
        self._poll_stop.set()
        t = self._poll_thread
        if t is not None and t is not threading.current_thread():
            t.join(timeout=5.0)
        self._poll_thread = None

    def _poll_loop(self) -> None:
        interval = max(0.05, float(self.poll_interval or 0.5))
        while not self._poll_stop.wait(interval):
            try:
                self.refresh()
            except Exception as e:  # never let a drawing problem kill the thread silently
                self._set_status(f"display error: {type(e).__name__}: {e}", error=True)
            if self.state not in ACTIVE:
                self.refresh()  # the final events (evaluation, finished snapshot)
                break
