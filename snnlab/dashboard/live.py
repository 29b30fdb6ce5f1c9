"""The live-training panel: start / pause / resume / stop one :class:`TrainingSession` and watch it.

All training logic lives in :class:`snnlab.widgets.TrainingSession`; this module only turns its
polled state into Panel objects: learning curves fed by the session's ``hv.streams.Buffer``, a
progress bar, a spike raster and membrane traces of the probe batch, and the delay kernels.
:meth:`LivePanel.poll` is called by the app's periodic callback (or directly in tests).
"""
from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any, Callable

import holoviews as hv
import panel as pn

from snnlab.training.config import ConfigError
from snnlab.viz import LiveCurves, PipedPlot, delay_evolution, gaussian_kernels, membrane_traces, monitor_raster
from snnlab.widgets import TrainingSession
from snnlab.widgets.session import CURVE_GROUPS  # one live panel per group of metrics (their scales differ)
from snnlab.widgets.session import LIVE_BUFFER_LENGTH

__all__ = ["LivePanel", "CURVE_GROUPS"]


def _message(kind: str, text: str) -> str:
    return f"**{kind}**\n\n```\n{text}\n```"


class LivePanel:
    """Controls and live plots of one training session (one per browser session).

    Args:
        get_config: returns the validated ``ExperimentConfig`` to train (raises ``ConfigError``).
        store: the :class:`RunStore` runs log into (or None).
        run_root: folder for the checkpoints of runs started here (``run_root/<id>``), or None.
        probe_every: network snapshot (raster, membranes, delays) every this many steps.
        render_interval_s: re-draw the raster / membrane / delay plots at most this often.

    The learning curves show the latest :data:`~snnlab.widgets.session.LIVE_BUFFER_LENGTH` step rows (~6,600 steps
    of three metrics; the run's store keeps every step) and the test points of the whole run.
    """

    def __init__(self, get_config: Callable[[], Any], store: Any = None, run_root: str | Path | None = None,
                 probe_every: int = 10, render_interval_s: float = 3.0) -> None:
        self.get_config = get_config
        self.store = store
        self.run_root = Path(run_root) if run_root is not None else None
        self.probe_every = probe_every
        self.render_interval_s = render_interval_s
        self.session: TrainingSession | None = None
        self._shown_step: int | None = None
        self._ended_drawn: TrainingSession | None = None  # the ended session whose last snapshot is drawn
        self._piped: dict[int, PipedPlot] = {}  # id(pane) -> the plot it shows, updated in place
        self._last_render = 0.0
        self._raster_spikes = 0
        self._polling = threading.Lock()  # polls run on Panel's thread pool: a slow one is not overlapped
        self._closing = threading.Lock()  # close() and the end of start() decide in turn whether a run is stopped
        self.closed = False

        self.start_button = pn.widgets.Button(label="Start", color="primary", width=90)
        self.pause_button = pn.widgets.Button(label="Pause", color="warning", width=90, disabled=True)
        self.resume_button = pn.widgets.Button(label="Resume", color="success", width=90, disabled=True)
        self.stop_button = pn.widgets.Button(label="Stop", color="danger", width=90, disabled=True)
        self.start_button.on_click(lambda event: self.start())
        self.pause_button.on_click(lambda event: self.pause())
        self.resume_button.on_click(lambda event: self.resume())
        self.stop_button.on_click(lambda event: self.stop())
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.status = pn.pane.Markdown("**idle**: configure an experiment and press Start.",
                                       sizing_mode="stretch_width")
        self.progress = pn.indicators.Progress(value=0, max=100, width=320, bar_color="primary")

        # the page's curves: fed once per poll with the session's new rows (one redraw per poll, not per step)
        # (one panel per group of metrics, legends below: the plot areas line up at 260 px whatever the entries)
        self.curves = LiveCurves(groups=CURVE_GROUPS, buffer_length=LIVE_BUFFER_LENGTH, width=330, height=260)
        self._rows_seen = 0
        # one pane per metric group: a Bokeh grid of three live plots in one pane clips its axes
        self.curve_panes = [pn.pane.HoloViews(plot, linked_axes=False) for plot in self.curves.plots.values()]
        self.curves_pane = pn.Row(*self.curve_panes)
        self.sample = pn.widgets.IntInput(label="probe sample", value=0, start=0, width=120)
        self.layer = pn.widgets.Select(label="membrane of layer", options=[], width=160)
        self.neurons = pn.widgets.TextInput(label="neurons (comma separated)", value="0, 1, 2", width=200)
        for w in (self.sample, self.layer, self.neurons):
            w.param.watch(lambda event: self.render_snapshot(force=True), "value")
        self.raster_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", min_height=300)
        self.membrane_pane = pn.pane.HoloViews(None, sizing_mode="stretch_width", min_height=300)
        # the kernels, positions and sigma plots: panes made with the page and shown when there is data (a plot
        # pane added later to a hidden tab kept the width it got there; a Bokeh grid there drew at zero size)
        self.delay_note = pn.pane.Markdown("Delay kernels appear here when `delays` is on.")
        self._delay_panes = [pn.pane.HoloViews(None, backend="bokeh", sizing_mode="stretch_width", min_height=320,
                                               visible=False) for _ in range(3)]
        self.delay_pane = pn.Column(self.delay_note, *self._delay_panes, sizing_mode="stretch_width")
        self.debug = pn.pane.HTML(self._debug_html(), margin=0, sizing_mode="stretch_width")

        self.panel = pn.Column(
            pn.Row(self.start_button, self.pause_button, self.resume_button, self.stop_button, self.progress),
            self.status, self.alert, self.debug,
            pn.pane.Markdown("### Learning curves"), self.curves_pane,
            pn.Row(self.sample, self.layer, self.neurons),
            pn.Tabs(("Spike raster", self.raster_pane), ("Membrane", self.membrane_pane),
                    ("Delays", self.delay_pane), dynamic=False, sizing_mode="stretch_width"),
            sizing_mode="stretch_width")

    # ------------------------------------------------------------------ messages
    def show_error(self, text: str, kind: str = "danger") -> None:
        self.alert.alert_type = kind
        self.alert.object = text
        self.alert.visible = True

    def clear_error(self) -> None:
        self.alert.visible = False
        self.alert.object = ""

    # ------------------------------------------------------------------ control
    def start(self) -> bool:
        """Validate the form and start a new session; on a bad setting show it and return False."""
        if self.closed:
            self.show_error("This panel is closed (its page went away): open a new one to train.", "warning")
            return False
        if self.session is not None and self.session.state in ("running", "paused"):
            self.show_error("A run is in progress: stop it before starting another.", "warning")
            return False
        try:
            cfg = self.get_config()
        except (ConfigError, ValueError, TypeError) as e:
            self.show_error(_message("Invalid settings", str(e)))
            return False
        try:
            session = TrainingSession(cfg, store=self.store, run_root=self.run_root, probe_every=self.probe_every)
            session.start()
        except (ConfigError, FileNotFoundError, ValueError, TypeError) as e:
            self.show_error(_message("Cannot start", f"{type(e).__name__}: {e}" if not isinstance(e, ConfigError)
                                     else str(e)))
            return False
        except Exception as e:  # noqa: BLE001 - anything else becomes a message, never a traceback page
            self.show_error(_message("Cannot start", f"{type(e).__name__}: {e}"))
            return False
        with self._closing:
            closed = self.closed
            if not closed:
                previous, self.session = self.session, session
        if closed:  # the page went away while the run was being built: nobody would ever stop it
            session.close()
            return False
        if previous is not None:
            previous.close()
        self.clear_error()
        for pane in self._delay_panes:  # the last run's delay plots go until this run has its own
            pane.visible = False
        self.delay_note.param.update(object="Delay kernels appear here when `delays` is on.", visible=True)
        self._shown_step = None
        self._last_render = 0.0
        self.curves.clear()
        self.poll()
        return True

    def _control(self, action: str) -> None:
        """Pass ``pause`` / ``resume`` / ``stop`` to the running session (if any) and refresh the view."""
        if self.session is not None:
            getattr(self.session, action)()
            self.poll()

    def pause(self) -> None:
        self._control("pause")

    def resume(self) -> None:
        self._control("resume")

    def stop(self) -> None:
        self._control("stop")

    def close(self) -> None:
        """Stop the run (a checkpoint is kept) and detach from it; a :meth:`start` still building its run when
        this is called stops that run as soon as it exists."""
        with self._closing:
            self.closed = True
            session = self.session
        if session is not None:
            session.close()

    # ------------------------------------------------------------------ polling
    def poll(self) -> None:
        """Drain the session's events into the curves and refresh status, progress and snapshot plots (a poll
        that comes while the previous one still runs returns at once: the next one catches up)."""
        if not self._polling.acquire(blocking=False):
            return
        try:
            self._poll()
        finally:
            self._polling.release()

    def _poll(self) -> None:
        s = self.session
        if s is None:
            self._set_buttons("idle")
            return
        # the state first, then the events: a run that is paused (or ended) now has already queued the
        # events of every step it made, so the step shown with a "paused" state is final
        state = s.state
        s.poll()
        self._forward_curves()
        self._set_buttons(state)
        self.progress.value = int(round(100 * s.progress))
        parts = [f"**{state}**", f"step {s.step}", f"{100 * s.progress:.0f} %"]
        if s.trainer is not None:
            parts.insert(1, f"run `{s.trainer.run_id}` ({html.escape(s.cfg.label())})")
        if s.last_eval and s.last_eval.get("accuracy") is not None:
            parts.append(f"test accuracy {s.last_eval['accuracy']:.3f}")
        self.status.object = " · ".join(parts)
        error = s.error or (s.trainer.error if state == "failed" and s.trainer is not None else None)
        if error and not self.alert.visible:
            self.show_error(_message("Training failed", error or "unknown error") +
                            "\n\nThe run's metrics stay in the run store (and its last checkpoint, if any).")
        ended = state in ("finished", "stopped", "failed")
        # an ended run's last snapshot is drawn once, at once; re-drawing it at every poll piled up plots
        # in the browser until the page froze
        self.render_snapshot(force=ended and self._ended_drawn is not s)
        if ended and self._shown_step is not None:
            self._ended_drawn = s
        self.debug.object = self._debug_html(state)

    def _forward_curves(self) -> None:
        """Send the rows the session's LiveCurves received since the last poll to the page's LiveCurves."""
        self.curves.follow(self.session.curves)

    def _set_buttons(self, state: str) -> None:
        active = state in ("running", "paused")
        self.start_button.disabled = active
        self.pause_button.disabled = state != "running"
        self.resume_button.disabled = state != "paused"
        self.stop_button.disabled = not active

    def render_snapshot(self, force: bool = False) -> None:
        """Redraw raster, membranes and delays from the latest snapshot (throttled unless ``force``)."""
        s = self.session
        snap = s.snapshot if s is not None else None
        if snap is None:
            return
        now = time.monotonic()
        if not force and (snap["step"] == self._shown_step or now - self._last_render < self.render_interval_s):
            return
        self._shown_step, self._last_render = snap["step"], now
        batch = int(snap["labels"].shape[0])
        sample = min(max(0, int(self.sample.value or 0)), batch - 1)
        label = int(snap["labels"][sample])
        try:
            raster = monitor_raster(snap["spikes"], sample=sample)
            self._raster_spikes = int(sum(float(v[:, sample].sum()) for v in snap["spikes"].values()))
            self._show(self.raster_pane, raster.opts(
                title=f"spikes of probe sample {sample} (class {label}) at step {snap['step']}", width=820,
                height=300, backend="bokeh"))
        except Exception as e:  # noqa: BLE001
            self.raster_pane.object = hv.Div(f"<pre>raster unavailable: {html.escape(str(e))}</pre>")
        layers = list(snap["membrane"])
        if layers and list(self.layer.options) != layers:
            value = self.layer.value if self.layer.value in layers else layers[0]  # shown, not a blank choice
            self.layer.param.update(options=layers, value=value)
        if layers:
            layer = self.layer.value if self.layer.value in layers else layers[0]
            try:
                neurons = [int(t) for t in str(self.neurons.value).replace(";", ",").split(",") if t.strip()]
                mem = snap["membrane"][layer]
                n = int(mem.shape[-1])
                neurons = [i for i in neurons if -n <= i < n] or [0]
                plot = membrane_traces(mem, snap["spikes"].get(layer), neurons=neurons,
                                       threshold=snap["thresholds"].get(layer), sample=sample)
                self._show(self.membrane_pane, plot.opts(title=f"membrane of layer {layer}, step {snap['step']}",
                                                         width=820, height=300, backend="bokeh"))
            except ValueError as e:
                self.membrane_pane.object = hv.Div(f"<pre>{html.escape(str(e))}</pre>")
        delays = snap.get("delay_layers") or {}
        if delays:
            name, layer = next(iter(delays.items()))
            try:
                kind = "integer delays (rounded)" if layer.rounded else f"Gaussian delay kernels (sigma {layer.sigma:.3g})"
                kernels = gaussian_kernels(layer).opts(title=f"{kind} of layer {name}, step {snap['step']}",
                                                       backend="bokeh")
                hist = s.delay_history_frame()
                plots = [kernels, *delay_evolution(hist)] if len(hist) and hist["step"].nunique() > 1 else [kernels]
                self.delay_note.visible = False
                for pane, plot in zip(self._delay_panes, plots):
                    # the raster's and membranes' width: drawn in a hidden tab, a plot keeps the width it asks for
                    self._show(pane, plot.opts(width=820, height=300, backend="bokeh"))
                    pane.visible = True
            except Exception as e:  # noqa: BLE001
                self.delay_note.object = f"delay plots unavailable: {e}"
                self.delay_note.visible = True

    def _show(self, pane: pn.pane.HoloViews, element: Any) -> None:
        """Show ``element`` in ``pane``, updating its plot in place while the structure stays the same.

        Replacing the pane's object at every snapshot built a new figure each time, and the browser keeps
        every old one: about 20 MB a minute while a run trained (see :class:`~snnlab.viz.PipedPlot`).
        """
        piped = self._piped.get(id(pane))
        if piped is None:
            piped = self._piped[id(pane)] = PipedPlot(element)
        else:
            piped.update(element)
        if pane.object is not piped.dmap:
            pane.object = piped.dmap

    # ------------------------------------------------------------------ introspection
    def shown(self, pane: pn.pane.HoloViews) -> Any:
        """The HoloViews element ``pane`` shows now (its ``.object`` is a ``DynamicMap`` fed in place)."""
        piped = self._piped.get(id(pane))
        return piped.element if piped is not None and pane.object is piped.dmap else pane.object

    def curve_rows(self) -> int:
        """Rows in the page's live-curve buffer (what the plots show)."""
        return len(self.curves.buffer.data)

    def _debug_html(self, state: str | None = None) -> str:
        """Machine-readable page state for browser tests; ``state`` as read at the start of the poll."""
        s = self.session
        if state is None:
            state = "idle" if s is None else s.state
        step = 0 if s is None else s.step
        run = "" if s is None or s.trainer is None else s.trainer.run_id
        return (f'<div id="snnlab-live" data-state="{state}" data-step="{step}" data-run-id="{run}" '
                f'data-curve-rows="{self.curve_rows()}" '
                f'data-snapshot-step="{self._shown_step if self._shown_step is not None else -1}" '
                f'data-raster-spikes="{self._raster_spikes}"></div>')
