"""A notebook's plots render in JupyterLab with every request off this machine blocked.

``snnlab.widgets.notebook_setup()`` embeds Bokeh's JavaScript when offline (forced here with
``SNNLAB_OFFLINE=1``, so the test means the same on a machine with internet access): a HoloViews plot and
a :class:`~snnlab.widgets.HoloViewsWidget` (a live Bokeh ipywidget) must both draw their canvases, and no
script may be fetched from outside. (Panel's theme stylesheets are still requested from its CDN; blocked,
they change nothing visible.)
"""
import os
import subprocess
import sys
import time

import nbformat
import pytest

from .conftest import free_port, is_local_url, stop_server, sync_api, wait_for_http

pytestmark = pytest.mark.slow

CELLS = [
    "from snnlab.widgets import HoloViewsWidget, notebook_setup\nimport holoviews as hv\n"
    "assert notebook_setup() is True",
    "hv.Curve([1, 3, 2]).opts(width=300, height=200)",
    "HoloViewsWidget(hv.Scatter([(0, 1), (1, 0)]).opts(width=300, height=200)).widget",
]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, root / "offline.ipynb")
    port = free_port()
    env = {**os.environ, "SNNLAB_OFFLINE": "1", "JUPYTER_CONFIG_DIR": str(root / ".config"),
           "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces")}
    log = open(root / "lab.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/lab", proc, root / "lab.log", "jupyter lab")
    yield {"url": url, "log": root / "lab.log"}
    stop_server(proc)
    log.close()


def run_all_cells(page, attempts: int = 6) -> None:
    """Run > Run All Cells; a dialog that JupyterLab opens meanwhile (the kernel choice) takes its default."""
    for _ in range(attempts):
        if page.locator(".jp-Dialog").count():
            page.get_by_role("button", name="Select", exact=True).click()
            time.sleep(1)
        try:
            page.get_by_role("menuitem", name="Run", exact=True).click(timeout=5_000)
            page.get_by_text("Run All Cells", exact=True).click(timeout=5_000)
            return
        except sync_api.TimeoutError:
            page.keyboard.press("Escape")
    pytest.fail("could not run the notebook's cells from JupyterLab's Run menu")


def test_plots_and_widgets_render_with_external_requests_blocked(jupyterlab, browser, artifacts):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked = []

    def route(r):
        if is_local_url(r.request.url) or r.request.url.startswith("ws://127.0.0.1"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()
    try:
        page = ctx.new_page()
        page.set_default_timeout(90_000)
        page.route("**/*", route)
        page.goto(f"{jupyterlab['url']}/lab/tree/offline.ipynb?reset")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()  # the notebook's kernel started
        run_all_cells(page)
        canvases = page.locator(".jp-OutputArea canvas")
        deadline = time.time() + 120
        while canvases.count() < 2 and time.time() < deadline:
            time.sleep(1)
        page.screenshot(path=str(artifacts / "notebook-offline.png"))
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, errors.all_inner_texts()
        assert canvases.count() >= 2, f"plots did not render; blocked requests: {blocked}"
        scripts = [u for u in blocked if u.split("?")[0].endswith((".js", ".mjs"))]
        assert scripts == [], f"scripts fetched from outside: {scripts}"
    finally:
        ctx.close()
