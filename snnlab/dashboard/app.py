"""The snnlab lab dashboard: configure, train live, compare runs, explore trade-offs, launch sweeps.

:func:`build_app` returns the page for one browser session (its own :class:`TrainingSession`,
its own sweep); served with ``panel serve`` it also polls the session every ``poll_ms`` and stops
the training when the tab closes. Serve it with ``snnlab dashboard`` (works from an installed package; it serves
:mod:`snnlab.dashboard.served.app`, a script that only imports :func:`build_app`) or
:func:`snnlab.dashboard.serve_dashboard`; from a source checkout also with
``panel serve dashboards/lab.py --address 127.0.0.1`` (without ``--address`` Panel listens on every interface).
No template and no external resource: the page works offline.

Environment of the server process:

- ``SNNLAB_STORE``: the run store (default ``runs/snnlab.sqlite``).
- ``SNNLAB_DASHBOARD_DEFAULTS`` (:data:`DEFAULTS_ENV`): a JSON object of the form's starting values, e.g.
  ``{"hidden": [32], "epochs": 3}`` (what ``serve_dashboard(defaults=...)`` sets). Text that is not a JSON
  object, or an object with a key that is not a configuration field (``{"epoch": 3}``: "did you mean
  'epochs'?"), is ignored with a warning at the top of the page and in the server's log (``snnlab dashboard``
  refuses to start with it). ``build_app(defaults=...)`` with such a key raises
  :class:`~snnlab.training.config.UnknownKeyError`.
- ``SNNLAB_TORCH_THREADS``: ``torch.set_num_threads`` of the served pages (default 1).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import holoviews as hv
import panel as pn

from snnlab.dashboard.forms import ConfigForm
from snnlab.dashboard.live import LivePanel
from snnlab.dashboard.runs import RunsPanel, in_server_session
from snnlab.dashboard.serve import APP_FILE, DEFAULTS_ENV, env_defaults
from snnlab.dashboard.sweeper import SweepPanel
from snnlab.experiments.store import RunStore, default_store_path

__all__ = ["DashboardApp", "build_app", "DEFAULTS_ENV"]


def _serve_stylesheets_locally() -> None:
    """Make Panel link its components' stylesheets from this server, never from its CDN.

    Panel points a new model's stylesheets at the address its document's page was rendered with, and at
    its CDN when the model has no such document yet (a model built on a callback thread, say): seen
    intermittently in the browser tests as ``cdn.holoviz.org`` stylesheets that an offline browser cannot
    load (missing styles, console errors). The dashboard is served and loads nothing from the internet, so
    that fallback is this server's own copy.
    """
    from panel import reactive
    from panel.io.resources import LOCAL_DIST

    reactive.CDN_DIST = LOCAL_DIST  # reactive.py uses its CDN_DIST only as that fallback


_serve_stylesheets_locally()

_log = logging.getLogger(__name__)


_STORES: dict[str, RunStore] = {}
_STORES_LOCK = threading.Lock()


def shared_store(path: str | os.PathLike) -> RunStore:
    """The one :class:`RunStore` of ``path`` in this process, shared by every dashboard page.

    A store keeps a connection per thread that uses it; a store per page kept ~3 connections per page, and those of
    closed pages stayed open until Python's cycle collector ran. Shared, the connections are bounded by the
    server's threads. Reads give up after 2 s on a store another process holds locked: an error on the page, not a
    frozen one.
    """
    key = os.path.abspath(os.fspath(path))
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:  # (a file replaced or removed since is reopened by the store itself: follow_file)
            store = _STORES[key] = RunStore(key, read_timeout=2.0, follow_file=True)
        return store


class DashboardApp:
    """The objects behind one dashboard page (one per browser session).

    Attributes: ``form`` (:class:`ConfigForm`), ``live`` (:class:`LivePanel`, with ``.session``),
    ``runs`` (:class:`RunsPanel`), ``sweeps`` (:class:`SweepPanel`), ``store``, ``view`` (the page) and ``warning``
    (why ``$SNNLAB_DASHBOARD_DEFAULTS`` was ignored, shown at the top of the page; None when it was not).
    Call :meth:`poll` periodically (``start_polling`` does it in a served session) and :meth:`close`
    when the page goes away.
    """

    def __init__(self, store_path: str | os.PathLike | None = None, defaults: dict[str, Any] | None = None,
                 poll_ms: int = 500, runs_every: int = 6, probe_every: int = 10,
                 sweep_executor: str = "processes") -> None:
        pn.extension("tabulator")
        hv.extension("bokeh")
        # reads give up after 2 s on a store another process holds locked: an error on the page, not a frozen one
        self.store = shared_store(store_path if store_path is not None else default_store_path())
        root = self.store.path.parent
        self.poll_ms = int(poll_ms)
        self.runs_every = max(1, int(runs_every))
        self._ticks = 0
        self._polling = threading.Lock()  # one tick at a time (see poll)
        self._callback = None
        self.closed = False
        try:  # a bad $SNNLAB_DASHBOARD_DEFAULTS: said on the page and in the log, not silently dropped
            env, self.warning = env_defaults(), None
        except ValueError as exc:
            env, self.warning = {}, f"{exc}; the form starts from its own defaults"
            _log.warning("snnlab dashboard: warning: %s", self.warning)
        self.form = ConfigForm({**env, **(defaults or {})})
        self.live = LivePanel(self.form.config, store=self.store, run_root=root / "dashboard-runs",
                              probe_every=probe_every)
        self.runs = RunsPanel(self.store)
        self.sweeps = SweepPanel(self.form.config, store_path=self.store.path, run_root=root / "sweeps",
                                 default_executor=sweep_executor)
        self.tabs = pn.Tabs(("Live training", self.live.panel), ("Runs", self.runs.runs_view),
                            ("Trade-offs", self.runs.tradeoff_view), ("Sweep", self.sweeps.panel),
                            dynamic=False, sizing_mode="stretch_width")
        header = pn.pane.Markdown(
            "## snnlab lab\nTrain spiking networks live, compare runs and explore accuracy/energy trade-offs. "
            f"Run store: `{self.store.path}`", sizing_mode="stretch_width")
        self.warning_pane = pn.pane.Alert(f"**warning**\n\n```\n{self.warning}\n```" if self.warning else "",
                                          alert_type="warning", visible=self.warning is not None,
                                          sizing_mode="stretch_width")
        sidebar = pn.Column(pn.pane.Markdown("### Experiment"), self.form.panel, width=340)
        self.view = pn.Column(header, self.warning_pane, pn.Row(sidebar, self.tabs, sizing_mode="stretch_width"),
                              sizing_mode="stretch_width")
        self.view.dashboard = self  # handle for tests and notebooks
        self.runs.refresh(force=True)

    def poll(self) -> None:
        """One tick: drain the training session, follow the sweep, re-read the run store every few ticks. A tick
        that comes while the previous one still runs (Panel's thread pool, a busy machine) returns at once."""
        if self.closed or not self._polling.acquire(blocking=False):
            return
        try:
            with pn.io.hold():  # one message for all the changes of this tick
                self.live.poll()
                self.sweeps.poll()
                self._ticks += 1
                if self._ticks % self.runs_every == 0:
                    self.runs.refresh()
        finally:
            self._polling.release()

    def start_polling(self) -> None:
        """Poll every ``poll_ms`` on this session's event loop (served sessions only)."""
        if self._callback is None:
            self._callback = pn.state.add_periodic_callback(self.poll, period=self.poll_ms)

    def close(self, *_: Any) -> None:
        """Stop this page's training (a checkpoint is kept), cancel pending sweep runs, stop polling; returns when
        the run has stopped."""
        if self._detach():
            self._stop_work()

    def close_in_background(self, *_: Any) -> threading.Thread | None:
        """:meth:`close` with the run stopped on a thread of its own (returned; None if already closed): what a
        served page does when its tab closes. Stopping a run waits for its step to end and its checkpoint (seconds
        for a big model), which must not hold up the server's event loop that every other page shares."""
        if not self._detach():
            return None
        closer = threading.Thread(target=self._stop_work, name="snnlab-dashboard-close", daemon=True)
        closer.start()
        return closer

    def _detach(self) -> bool:
        """Mark the page closed and stop its polling; False if it was closed already."""
        if self.closed:
            return False
        self.closed = True
        if self._callback is not None:
            try:
                self._callback.stop()
            except Exception:  # noqa: BLE001 - the session may already be gone
                pass
        return True

    def _stop_work(self) -> None:
        try:
            self.live.close()
        finally:
            self.sweeps.close()


def build_app(store_path: str | os.PathLike | None = None, defaults: dict[str, Any] | None = None,
              **kwargs: Any) -> pn.viewable.Viewable:
    """The dashboard page for one browser session (see :class:`DashboardApp` for the arguments).

    In a ``panel serve`` session it starts polling and registers :meth:`DashboardApp.close_in_background` with
    ``pn.state.on_session_destroyed``; the returned layout's ``.dashboard`` is the :class:`DashboardApp`.
    """
    app = DashboardApp(store_path=store_path, defaults=defaults, **kwargs)
    if in_server_session():
        import torch

        torch.set_num_threads(max(1, int(os.environ.get("SNNLAB_TORCH_THREADS", "1"))))
        app.start_polling()
        pn.state.on_session_destroyed(app.close_in_background)
    return app.view


def app_path() -> Path:
    """Path of the script ``serve_dashboard`` hands to ``panel serve`` (:mod:`snnlab.dashboard.served.app`)."""
    return APP_FILE


if __name__.startswith("bokeh_app"):  # `panel serve` of this very file: build the page from the imported module
    # (Bokeh clears a served script's globals before the session-destroyed callbacks run: this copy's DashboardApp
    # could not stop a closed tab's training; the imported module's can)
    from snnlab.dashboard.app import build_app as _build_app

    _build_app().servable(title="snnlab lab")
