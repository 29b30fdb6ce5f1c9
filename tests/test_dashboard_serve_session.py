"""The dashboard really served (``serve_dashboard``, what ``snnlab dashboard`` runs): a session opened with Bokeh's
client starts a training, is closed, and the server's session-destroyed callback stops that training.

Bug it guards: ``snnlab dashboard`` served snnlab/dashboard/app.py itself, so ``DashboardApp`` lived in Bokeh's
per-session module, whose globals Bokeh clears *before* the session-destroyed callbacks run:
``close_in_background`` failed with ``NameError: name 'threading' is not defined`` (a WARNING in the server's log)
and a closed tab's training went on for nobody.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

pn = pytest.importorskip("panel")
pytest.importorskip("bokeh.client")

import panel.models  # noqa: E402
from bokeh.client import pull_session  # noqa: E402
from bokeh.events import ButtonClick  # noqa: E402
from bokeh.models import Button  # noqa: E402

from snnlab.dashboard import serve_dashboard  # noqa: E402
from snnlab.dashboard.serve import APP_FILE  # noqa: E402
from snnlab.experiments import RunStore  # noqa: E402

#: tiny runs that never finish by themselves during the test
DEFAULTS = {"hidden": [16], "num_steps": 8, "batch_size": 32, "max_batches_per_epoch": 3, "eval_max_batches": 1,
            "epochs": 500}
CALLBACK_FAILED = "failed with following error"  # panel.io.application's warning when a lifecycle callback raises


def _load_panel_models() -> None:
    """Register every Panel Bokeh model in this process: the client must decode the page's document."""
    for info in pkgutil.iter_modules(panel.models.__path__, "panel.models."):
        try:
            importlib.import_module(info.name)
        except ImportError:  # a model of an optional package the page does not use
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, log: Path, what: str, timeout: float) -> None:
    """Wait until ``predicate()``; fail at once when the server logged a failed lifecycle callback."""
    deadline = time.time() + timeout
    while not predicate():
        text = log.read_text(errors="replace")
        if CALLBACK_FAILED in text or time.time() > deadline:
            pytest.fail(f"{what}: not reached; server log:\n{text[-3000:]}")
        time.sleep(0.3)


def _runs(store: Path) -> list[str]:
    if not store.exists():
        return []
    s = RunStore(store, read_only=True)
    try:
        runs = s.list_runs()
        return runs["status"].tolist() if len(runs) else []
    finally:
        s.close()


def test_a_closed_served_session_stops_its_training_without_callback_errors(tmp_path):
    assert APP_FILE.name == "app.py"  # the page stays /app
    _load_panel_models()
    store, log_path, port = tmp_path / "runs.sqlite", tmp_path / "server.log", _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log:
        proc = serve_dashboard(port=port, store_path=store, defaults=DEFAULTS, wait=False, env=env, num_threads=2,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            assert proc.poll() is None, log_path.read_text(errors="replace")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return True
            except OSError:
                return False

        _wait_for(up, log_path, "the server listening", 90)
        session = pull_session(url=f"http://127.0.0.1:{port}/app")
        try:
            starts = [m for m in session.document.models if isinstance(m, Button) and m.label == "Start"]
            assert len(starts) == 1
            session.document.callbacks.send_event(ButtonClick(starts[0]))  # what a click in the browser sends
            session.force_roundtrip()
            _wait_for(lambda: _runs(store) == ["running"], log_path, "a training started from the session", 90)
        finally:
            session.close()  # the tab closes: the server destroys the session a few seconds later
        _wait_for(lambda: _runs(store) == ["stopped"], log_path, "the closed session's training stopped", 90)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log_path.read_text(errors="replace")
    assert CALLBACK_FAILED not in text and "NameError" not in text, text[-3000:]
    assert "Bokeh app running at" in text and f"127.0.0.1:{port}/app" in text
