"""Widgets whose plot is built before they are displayed show it on first display, and clicks reach Python.

A :class:`~snnlab.widgets.HoloViewsWidget` made empty and given its plot before display used to show
"nothing to show yet" (the update went out as a patch before any view existed), and a ``Tap`` stream
attached after the first render never received a click. Both are checked here in JupyterLab with
headless chromium, on the plot data the browser holds, not on status text.
"""
import time

import pytest

from .conftest import is_local_url, jupyter_lab

pytestmark = pytest.mark.slow

CELLS = [
    "from snnlab.widgets import notebook_setup\nassert notebook_setup() is True",
    "import pandas as pd\nfrom snnlab.widgets import TradeoffExplorer\n"
    "df = pd.DataFrame({'name': list('abcdefg'), 'accuracy': [.5, .6, .7, .8, .9, .65, .55],\n"
    "                   'spikes_per_sample': [10., 20., 30., 40., 50., 35., 45.]})\n"
    "explorer = TradeoffExplorer(df)\nexplorer",
    "import snnlab as sl\nfrom snnlab.widgets import DelayViewer\n"
    "viewer = DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0))\nviewer",
]

#: the number of rows of every ColumnDataSource in the page's Bokeh documents
CDS_ROWS = """() => {
  const out = [];
  for (const doc of (window.Bokeh && window.Bokeh.documents) || [])
    for (const m of doc.all_models)
      if (m.constructor.__name__ === "ColumnDataSource") out.push(m.get_length() || 0);
  return out;
}"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    with jupyter_lab(tmp_path_factory.mktemp("lab"), "widgets.ipynb", CELLS, OMP_NUM_THREADS="1") as lab:
        yield lab


def _wait(pred, timeout=120.0):
    deadline = time.time() + timeout
    while not pred() and time.time() < deadline:
        time.sleep(0.5)
    return pred()


def test_tradeoff_plot_is_drawn_on_first_display_and_delay_matrix_takes_clicks(lab, browser, artifacts):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.route("**/*", lambda r: r.continue_() if is_local_url(r.request.url) else r.abort())
    try:
        page = ctx.new_page()
        page.set_default_timeout(90_000)
        page.goto(f"{lab['url']}/lab/tree/widgets.ipynb?reset")
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
        cells = page.locator(".jp-Notebook .jp-Cell")
        cells.nth(0).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")  # the set-up first: Bokeh's JavaScript must be there for the widgets
        page.wait_for_function("() => window.Bokeh !== undefined && window.Bokeh.version !== undefined")
        page.keyboard.press("Shift+Enter")
        page.keyboard.press("Shift+Enter")
        tradeoff = cells.nth(1).locator(".jp-OutputArea")
        assert _wait(lambda: tradeoff.locator("canvas").count() > 0), "no plot drawn in the TradeoffExplorer"
        assert _wait(lambda: "Pareto front" in tradeoff.inner_text())
        # first display, nothing changed by hand: the runs' scatter (7 rows) is in the browser
        assert _wait(lambda: 7 in page.evaluate(CDS_ROWS)), page.evaluate(CDS_ROWS)
        assert "nothing to show yet" not in tradeoff.inner_text()
        page.screenshot(path=str(artifacts / "tradeoff-first-display.png"))

        viewer = cells.nth(2).locator(".jp-OutputArea")
        assert _wait(lambda: viewer.locator("canvas").count() > 0), "no delay matrix drawn"
        synapses = viewer.locator("input[type='text']").first
        assert synapses.input_value() == ""
        frame = viewer.locator("canvas").first  # the matrix: the first plot in the viewer
        frame.scroll_into_view_if_needed()
        box = frame.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.5)
        assert _wait(lambda: synapses.input_value() != "", timeout=30), "the click on the matrix did not reach Python"
        assert "-" in synapses.input_value()
        page.screenshot(path=str(artifacts / "delay-viewer-after-click.png"))
    finally:
        ctx.close()
