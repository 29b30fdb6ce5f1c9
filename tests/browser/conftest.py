"""Browser-test fixtures: a served dashboard (``panel serve dashboards/lab.py``) and headless Debian chromium."""
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse
from pathlib import Path
from typing import Iterator

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader"]
#: form values of the served page: tiny runs that never finish by themselves during a test
SERVED_DEFAULTS = {"hidden": [16], "num_steps": 8, "batch_size": 32, "max_batches_per_epoch": 3,
                   "eval_max_batches": 1, "epochs": 500}

sync_api = pytest.importorskip("playwright.sync_api", reason="the Python 'playwright' package is not installed "
                               "(pip install playwright; never 'playwright install': Debian chromium is used)")
if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
    pytest.skip(f"{CHROMIUM} not found (apt-get install -y chromium)", allow_module_level=True)


def is_local_url(url: str) -> bool:
    """Whether a page's request stays on this machine (localhost, or data:/blob: URLs)."""
    if url.startswith(("data:", "blob:", "about:")):
        return True
    return urlparse(url).hostname in ("127.0.0.1", "localhost")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """``panel serve dashboards/lab.py`` on a free localhost port with its own run store."""
    from snnlab.dashboard import serve_dashboard

    tmp = tmp_path_factory.mktemp("dashboard")
    store = tmp / "runs.sqlite"
    port = free_port()
    log = open(tmp / "server.log", "wb")
    env = {**os.environ, "SNNLAB_STORE": str(store), "PYTHONUNBUFFERED": "1"}
    proc = serve_dashboard(port=port, app=ROOT / "dashboards" / "lab.py", store_path=store, defaults=SERVED_DEFAULTS,
                           wait=False, env=env, num_threads=2, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/lab"
    wait_for_http(url, proc, tmp / "server.log", "the dashboard server")
    yield {"url": url, "store": store, "port": port, "log": tmp / "server.log", "proc": proc}
    stop_server(proc)
    log.close()


def wait_for_http(url: str, proc: subprocess.Popen, log: Path, what: str, timeout: float = 90) -> None:
    """Wait until ``url`` answers 200; fail the test with the server's log if it exits or times out."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"{what} did not answer: {log.read_text()[-3000:]}")
        time.sleep(0.5)


@contextlib.contextmanager
def jupyter_lab(root: Path, notebook: str, cells: list[str], **env: str) -> Iterator[dict]:
    """A JupyterLab server (offline: ``SNNLAB_OFFLINE=1``, no token) serving ``root/notebook`` made of ``cells``;
    yields ``{"url", "log"}`` and stops the server afterwards."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, root / notebook)
    port = free_port()
    env = {**os.environ, "SNNLAB_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(root / ".config"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces"), **env}
    with open(root / "lab.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
             "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
             "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/lab", proc, root / "lab.log", "jupyter lab")
            yield {"url": url, "log": root / "lab.log"}
        finally:
            stop_server(proc)


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def python_cli_run(store: Path, name: str, epochs: int = 1) -> subprocess.Popen:
    """A training run started outside the dashboard, with the ``snnlab train`` command line."""
    cli = Path(sys.executable).with_name("snnlab")
    cmd = [str(cli)] if cli.exists() else [sys.executable, "-m", "snnlab.cli"]
    d = SERVED_DEFAULTS
    cmd += ["train", "--hidden", ",".join(map(str, d["hidden"])), "--num-steps", str(d["num_steps"]),
            "--batch-size", str(d["batch_size"]), "--max-batches-per-epoch", str(d["max_batches_per_epoch"]),
            "--eval-max-batches", str(d["eval_max_batches"]), "--epochs", str(epochs),
            "--store", str(store), "--name", name, "--quiet", "--threads", "1"]
    return subprocess.Popen(cmd, cwd=ROOT)


__all__ = ["free_port", "is_local_url", "python_cli_run", "shutil", "stop_server", "wait_for_http"]
