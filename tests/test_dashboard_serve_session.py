"""The dashboard really served (``serve_dashboard``, what ``snnlab dashboard`` runs): a session opened with Bokeh's
client starts a training, is closed, and the server's session-destroyed callback stops that training.

The test leaves nothing behind: the server process is stopped, and the client's IOLoop (with its websocket, its
selector and its resolver thread) is closed.

Bug it guards: ``snnlab dashboard`` served snnlab/dashboard/app.py itself, so ``DashboardApp`` lived in Bokeh's
per-session module, whose globals Bokeh clears *before* the session-destroyed callbacks run:
``close_in_background`` failed with ``NameError: name 'threading' is not defined`` (a WARNING in the server's log)
and a closed tab's training went on for nobody.
"""
from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # (a served app and a real session: ~35 s)

pn = pytest.importorskip("panel")
pytest.importorskip("bokeh.client")

import panel.models  # noqa: E402
from bokeh.client import pull_session  # noqa: E402
from bokeh.events import ButtonClick  # noqa: E402
from bokeh.models import Button  # noqa: E402
from tornado.ioloop import IOLoop  # noqa: E402

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


def _open_resources() -> set[str]:
    """This process's sockets and event-loop selectors (``/proc/self/fd``; empty where there is none)."""
    found = set()
    fds = Path("/proc/self/fd")
    for fd in (fds.iterdir() if fds.is_dir() else ()):
        try:
            target = os.readlink(fd)
        except OSError:  # (the listing's own fd, gone)
            continue
        if target.startswith(("socket:", "anon_inode:[eventpoll]")):
            found.add(f"{fd.name} {target}")
    return found


def _close_client(session, io_loop: IOLoop) -> None:
    """Close the client's session and then its IOLoop. Bokeh's ``close()`` only sends the websocket's close frame:
    the handshake ends (and the socket closes) only while that loop runs, and an IOLoop left open keeps its socket,
    its selector and its resolver thread (``asyncio_0``) for the rest of the test run."""
    async def close_and_wait() -> None:  # on the client's loop (outside it, the close makes the thread a loop)
        session.close()
        for _ in range(200):  # (bounded: a socket the server never closes is closed with the loop below)
            if not session.connected:
                return
            await asyncio.sleep(0.05)

    try:
        if session is not None:
            io_loop.run_sync(close_and_wait)
    finally:
        io_loop.close(all_fds=True)


def _runs(store: Path) -> list[str]:
    if not store.exists():
        return []
    s = RunStore(store, read_only=True)
    try:
        runs = s.list_runs()
        return runs["status"].tolist() if len(runs) else []
    finally:
        s.close()


def _start_and_close_a_session(port: int, store: Path, log_path: Path) -> None:
    """Open the page as a browser tab would, click Start, wait for the run, then close the tab."""
    io_loop, session = IOLoop(make_current=False), None  # the client's own loop, closed with it
    try:
        session = pull_session(url=f"http://127.0.0.1:{port}/app", io_loop=io_loop)
        starts = [m for m in session.document.models if isinstance(m, Button) and m.label == "Start"]
        assert len(starts) == 1
        session.document.callbacks.send_event(ButtonClick(starts[0]))  # what a click in the browser sends
        session.force_roundtrip()
        _wait_for(lambda: _runs(store) == ["running"], log_path, "a training started from the session", 90)
    finally:
        _close_client(session, io_loop)  # the tab closes: the server destroys the session a few seconds later


def _in_own_thread(work) -> None:
    """Run ``work`` in a new thread and re-raise what it raised: the client's loop must run in a thread where no
    event loop is marked running (an earlier test of the run may leave one marked so in the main thread)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # (pytest.fail raises a BaseException)
            errors.append(exc)

    thread = threading.Thread(target=run, name="dashboard-client")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def test_a_closed_served_session_stops_its_training_without_callback_errors(tmp_path):
    assert APP_FILE.name == "app.py"  # the page stays /app
    _load_panel_models()
    store, log_path, port = tmp_path / "runs.sqlite", tmp_path / "server.log", _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    threads_before, resources_before = set(threading.enumerate()), _open_resources()
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
        _in_own_thread(lambda: _start_and_close_a_session(port, store, log_path))
        _wait_for(lambda: _runs(store) == ["stopped"], log_path, "the closed session's training stopped", 90)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for thread in set(threading.enumerate()) - threads_before:  # (an executor's worker ends once told to)
        thread.join(timeout=30)
    assert [t.name for t in set(threading.enumerate()) - threads_before] == []
    assert _open_resources() <= resources_before
    text = log_path.read_text(errors="replace")
    assert CALLBACK_FAILED not in text and "NameError" not in text, text[-3000:]
    assert "Bokeh app running at" in text and f"127.0.0.1:{port}/app" in text
