"""The sweep launcher: a grid over the form's configuration, run in the background by :func:`snnlab.experiments.sweep`.

Every run logs into the dashboard's run store, so results show up in the runs table and the
trade-off explorer while the sweep goes on. The grid is JSON (``json.loads``), never evaluated.
"processes" runs ``workers`` runs side by side in worker processes; "threads" runs them one at a time in
the server's process (runs in parallel threads would share the global random state, so ``workers`` must
be 1 there; a live training in the Train tab still shares it: use processes for reproducible sweeps).
"""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import panel as pn

from snnlab.experiments.sweeps import cancel_event, expand_grid, process_pool, sweep, thread_pool
from snnlab.training.config import ConfigError

__all__ = ["SweepPanel", "MAX_SWEEP_RUNS"]

MAX_SWEEP_RUNS = 64


class SweepPanel:
    """Launch one sweep at a time from this browser session and follow it."""

    def __init__(self, get_config: Callable[[], Any], store_path: str | Path, run_root: str | Path | None = None,
                 default_executor: str = "processes", max_workers: int = 2) -> None:
        self.get_config = get_config
        self.store_path = Path(store_path)
        self.run_root = Path(run_root) if run_root is not None else None
        self.grid = pn.widgets.TextAreaInput(
            label="grid (JSON: field -> list of values)", value='{"neuron": ["multi_spike", "ttfs"]}', height=80,
            sizing_mode="stretch_width")
        self.executor = pn.widgets.RadioButtonGroup(label="run in", options=["processes", "threads"],
                                                    value=default_executor)
        self.workers = pn.widgets.IntInput(label="workers", value=max_workers, start=1, end=16, width=100)
        self.launch_button = pn.widgets.Button(label="Launch sweep", color="primary")
        self.launch_button.on_click(lambda event: self.launch())
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.status = pn.pane.Markdown("No sweep launched from this page yet. The form's settings are the base "
                                       "configuration.", sizing_mode="stretch_width")
        self.results = pn.widgets.Tabulator(pd.DataFrame(), disabled=True, show_index=False, height=250,
                                            sizing_mode="stretch_width", visible=False)
        self.panel = pn.Column(self.grid, pn.Row(self.executor, self.workers, self.launch_button), self.alert,
                               self.status, self.results, sizing_mode="stretch_width")
        self._thread: threading.Thread | None = None
        self._pool: Executor | None = None
        self._cancel: Any = None  # the pool's cancel event
        self._n_runs = 0
        self._started = 0.0
        self._result = None
        self._error: str | None = None
        self._shown = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def launch(self) -> bool:
        """Validate the grid and start the sweep in a background thread; False (with a message) if refused."""
        self.alert.visible = False
        if self.running:
            self._refuse("A sweep from this page is still running.")
            return False
        try:
            grid = json.loads(self.grid.value or "")
        except ValueError as e:
            self._refuse(f"The grid is not valid JSON: {e}")
            return False
        try:
            cfg = self.get_config()
            configs = expand_grid(cfg, grid)
        except (ConfigError, ValueError, TypeError) as e:
            self._refuse(str(e))
            return False
        if len(configs) > MAX_SWEEP_RUNS:
            self._refuse(f"The grid has {len(configs)} runs; at most {MAX_SWEEP_RUNS} per sweep from the dashboard.")
            return False
        workers = max(1, min(int(self.workers.value or 1), len(configs)))
        if self.executor.value == "threads":
            if workers > 1:
                self._refuse("Threads run one run at a time (parallel threads would share the random state, so "
                             "results would not be reproducible): set workers to 1, or run in processes.")
                return False
            self._cancel = threading.Event()  # (also reaches a run whose trainer is being built)
            self._pool = thread_pool(cancel=self._cancel)
        else:  # the event reaches runs the pool has already handed to its workers, which shutdown cannot cancel
            self._cancel = cancel_event()
            self._pool = process_pool(workers, cancel=self._cancel)
        run_root = self.run_root / time.strftime("%Y%m%d-%H%M%S") if self.run_root is not None else None
        self._n_runs, self._started, self._result, self._error, self._shown = len(configs), time.time(), None, None, False
        self._thread = threading.Thread(target=self._work, args=(cfg, grid, self._pool, run_root),
                                        name="snnlab-dashboard-sweep", daemon=True)
        self._thread.start()
        self.launch_button.disabled = True
        self.poll()
        return True

    def _refuse(self, text: str) -> None:
        self.alert.object = f"**Sweep refused**\n\n```\n{text}\n```"
        self.alert.visible = True

    def _work(self, cfg, grid, pool, run_root) -> None:
        try:
            self._result = sweep(cfg, grid, executor=pool, store_path=self.store_path, run_root=run_root,
                                 progress=False)
        except Exception as e:  # noqa: BLE001 - reported in the page
            self._error = f"{type(e).__name__}: {e}"
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def poll(self) -> None:
        """Refresh the status line and, once done, the results table (call from the UI thread)."""
        if self._thread is None:
            return
        if self.running:
            self.status.object = (f"**sweep running**: {self._n_runs} runs, {time.time() - self._started:.0f} s; "
                                  "results arrive in the Runs and Trade-offs tabs.")
            return
        if self._shown:
            return
        self._shown = True
        self.launch_button.disabled = False
        if self._error:
            self.status.object = "**sweep failed**"
            self._refuse(self._error)
        elif self._result is not None:
            table = self._result.table.copy()
            for c in table.columns:
                if table[c].dtype == object:
                    table[c] = table[c].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
            self.results.value = table
            self.results.visible = True
            self.status.object = (f"**sweep finished**: {len(table)} runs, {len(self._result.front)} on the Pareto "
                                  f"front, {time.time() - self._started:.0f} s.")

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def close(self) -> None:
        """Cancel the sweep's pending runs (runs already training finish in their workers): none of them starts
        training, not even one the process pool already queued for a worker; their rows say "cancelled"."""
        if self._cancel is not None:
            self._cancel.set()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
