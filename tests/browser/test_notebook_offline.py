"""A notebook's plots render in JupyterLab with every request off this machine blocked.

``snnlab.widgets.notebook_setup()`` embeds Bokeh's JavaScript when offline (forced here with
``SNNLAB_OFFLINE=1``, so the test means the same on a machine with internet access): a HoloViews plot and
a :class:`~snnlab.widgets.HoloViewsWidget` (a live Bokeh ipywidget) must both draw their canvases, and no
script may be fetched from outside. (Panel's theme stylesheets are still requested from its CDN; blocked,
they change nothing visible.)
"""
import time

import pytest

from .conftest import is_local_url, jupyter_lab

pytestmark = pytest.mark.slow

CELLS = [
    "from snnlab.widgets import HoloViewsWidget, notebook_setup\nimport holoviews as hv\n"
    "assert notebook_setup() is True",
    "hv.Curve([1, 3, 2]).opts(width=300, height=200)",
    "HoloViewsWidget(hv.Scatter([(0, 1), (1, 0)]).opts(width=300, height=200)).widget",
]


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    with jupyter_lab(tmp_path_factory.mktemp("lab"), "offline.ipynb", CELLS) as lab:
        yield lab


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
        # run the cells as a user does: the set-up cell, then (once Bokeh's embedded JavaScript has
        # loaded) the plots. Displayed in the same burst as the set-up cell, a Bokeh ipywidget can be
        # created before Bokeh is there (jupyter_bokeh's own race, offline or not).
        page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        page.wait_for_function("() => window.Bokeh !== undefined && window.Bokeh.version !== undefined")
        page.keyboard.press("Shift+Enter")
        page.keyboard.press("Shift+Enter")
        # a canvas in each plotting cell's output (one Bokeh plot draws several canvases)
        cells = [page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".jp-OutputArea canvas") for i in (1, 2)]
        deadline = time.time() + 120
        while min(c.count() for c in cells) == 0 and time.time() < deadline:
            time.sleep(1)
        page.screenshot(path=str(artifacts / "notebook-offline.png"))
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, errors.all_inner_texts()
        drawn = [c.count() > 0 for c in cells]
        assert drawn == [True, True], f"plot, widget drawn: {drawn}; blocked requests: {blocked}"
        scripts = [u for u in blocked if u.split("?")[0].endswith((".js", ".mjs"))]
        assert scripts == [], f"scripts fetched from outside: {scripts}"
    finally:
        ctx.close()
