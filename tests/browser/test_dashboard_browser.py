"""The served dashboard in headless chromium: offline load, live training, controls, runs, errors, two sessions.

Assertions are on plot data (rows of the Bokeh ColumnDataSources in ``window.Bokeh.documents``) and on the
page's ``#snnlab-live`` data attributes, not on status labels.
"""
import time
from contextlib import contextmanager

import pytest

from snnlab.experiments import RunStore

from .conftest import is_local_url, python_cli_run

pytestmark = pytest.mark.slow

PLOT_ROWS_JS = """() => {
  const out = {curve: 0, raster: 0, tradeoff: 0, sources: 0};
  for (const doc of ((window.Bokeh && window.Bokeh.documents) || [])) {
    for (const m of doc.all_models) {
      const kind = (m.constructor && m.constructor.__name__) || m.type;
      if (kind !== 'ColumnDataSource' || !m.data) continue;
      out.sources += 1;
      const d = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
      const keys = Object.keys(d);
      let n = 0;
      for (const k of keys) { n = Math.max(n, (d[k] && d[k].length) || 0); }
      if (keys.includes('step') && keys.includes('value')) out.curve += n;
      if (keys.includes('time') && keys.includes('neuron') && !keys.includes('v')) out.raster += n;
      if (keys.includes('spikes_per_sample') && keys.includes('accuracy')) out.tradeoff += n;
    }
  }
  return out;
}"""

LIVE = "#snnlab-live"


@contextmanager
def dashboard_page(browser, server):
    """A fresh browser context on the dashboard, loaded and live; closed when the block ends."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield _load(ctx.new_page(), server)
    finally:
        ctx.close()


def _load(page, server):
    page.set_default_timeout(60_000)
    page.errors, page.external = [], []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: None if is_local_url(r.url) else page.external.append(r.url))
    page.goto(server["url"], timeout=90_000)
    page.wait_for_function("() => window.Bokeh && window.Bokeh.documents.length > 0", timeout=90_000)
    page.locator(LIVE).wait_for(state="attached", timeout=90_000)
    return page


def live(page) -> dict:
    loc = page.locator(LIVE)
    return {k: loc.get_attribute(f"data-{k}") for k in ("state", "step", "run-id", "curve-rows", "raster-spikes")}


def wait_live(page, js_condition: str, timeout: float = 90_000) -> None:
    """Wait until ``js_condition`` (on ``d``, the #snnlab-live element's dataset) holds."""
    page.wait_for_function(
        """(cond) => { const find = (root) => { const el = root.querySelector('#snnlab-live'); if (el) return el;
             for (const n of root.querySelectorAll('*')) { if (n.shadowRoot) { const f = find(n.shadowRoot);
             if (f) return f; } } return null; };
           const el = find(document); if (!el) return false; const d = el.dataset;
           return Function('d', 'return (' + cond + ');')(d); }""", arg=js_condition, timeout=timeout)


def button(page, name):
    return page.get_by_role("button", name=name, exact=True)


def test_page_loads_offline_without_console_errors(server, browser, artifacts):
    with dashboard_page(browser, server) as page:
        page.get_by_text("snnlab lab").first.wait_for()
        rows = page.evaluate(PLOT_ROWS_JS)
        assert rows["sources"] >= 3  # the three live-curve plots are there, empty
        assert live(page)["state"] == "idle"
        page.screenshot(path=str(artifacts / "dashboard-loaded.png"))
        assert page.errors == [], (page.errors, page.external)
        assert page.external == [], f"the page requested external resources: {page.external}"


def test_training_updates_curves_and_raster_and_pause_resume_stop_work(server, browser, artifacts):
    with dashboard_page(browser, server) as page:
        before = page.evaluate(PLOT_ROWS_JS)
        button(page, "Start").click()
        page.wait_for_function(f"() => ({PLOT_ROWS_JS})().curve >= 12 && ({PLOT_ROWS_JS})().raster > 0",
                               timeout=120_000)
        grown = page.evaluate(PLOT_ROWS_JS)
        assert grown["curve"] > before["curve"]
        wait_live(page, "d.state === 'running' && Number(d.step) > 0")
        # the curves keep growing while it trains
        page.wait_for_function(f"(n) => ({PLOT_ROWS_JS})().curve > n", arg=grown["curve"], timeout=60_000)
        page.screenshot(path=str(artifacts / "dashboard-training.png"))

        button(page, "Pause").click()
        wait_live(page, "d.state === 'paused'")
        step = live(page)["step"]
        time.sleep(2.0)
        assert live(page)["step"] == step and live(page)["state"] == "paused"
        button(page, "Resume").click()
        wait_live(page, f"d.state === 'running' && Number(d.step) > {step}")
        button(page, "Stop").click()
        wait_live(page, "d.state === 'stopped'")
        run_id = live(page)["run-id"]
        assert RunStore(server["store"]).get_run(run_id)["status"] == "stopped"
        page.screenshot(path=str(artifacts / "dashboard-stopped.png"))
        assert page.errors == [], (page.errors, page.external)


def test_invalid_setting_shows_a_message_and_starts_nothing(server, browser, artifacts):
    with dashboard_page(browser, server) as page:
        hidden = page.locator("input[placeholder='e.g. 128,64 or [128, 64]']")
        hidden.fill("[-3]")
        hidden.press("Tab")
        time.sleep(0.5)
        button(page, "Start").click()
        page.get_by_text("every hidden-layer width must be an int").wait_for(timeout=60_000)
        page.screenshot(path=str(artifacts / "dashboard-invalid.png"))
        assert live(page)["state"] == "idle"
        assert page.errors == [], (page.errors, page.external)


def test_runs_table_lists_a_run_started_from_the_cli(server, browser, artifacts):
    with dashboard_page(browser, server) as page:
        proc = python_cli_run(server["store"], "cli-run-from-python", epochs=2)
        page.get_by_text("Runs", exact=True).first.click()
        page.get_by_text("cli-run-from-python").first.wait_for(timeout=120_000)
        assert proc.wait(timeout=120) == 0
        # the finished CLI run reaches the table (status) and the trade-off explorer (its summary)
        page.get_by_text("finished").first.wait_for(timeout=60_000)
        page.screenshot(path=str(artifacts / "dashboard-runs.png"))
        page.get_by_text("Trade-offs", exact=True).first.click()
        page.wait_for_function(f"() => ({PLOT_ROWS_JS})().tradeoff >= 1", timeout=60_000)
        page.screenshot(path=str(artifacts / "dashboard-tradeoffs.png"))
        assert page.errors == [], (page.errors, page.external)


def test_two_sessions_train_at_once_and_closing_a_tab_stops_its_run(server, browser, artifacts):
    with dashboard_page(browser, server) as a, dashboard_page(browser, server) as b:
        button(a, "Start").click()
        button(b, "Start").click()
        for p in (a, b):
            wait_live(p, "d.state === 'running' && Number(d.step) > 0", timeout=120_000)
        run_a, run_b = live(a)["run-id"], live(b)["run-id"]
        assert run_a and run_b and run_a != run_b
        a.context.close()  # closing the tab: the server destroys the session and stops its training
        store = RunStore(server["store"])
        deadline = time.time() + 60
        while store.get_run(run_a)["status"] != "stopped" and time.time() < deadline:
            time.sleep(0.5)
        assert store.get_run(run_a)["status"] == "stopped"
        step = int(live(b)["step"])
        wait_live(b, f"d.state === 'running' && Number(d.step) > {step}")  # the other session went on
        b.screenshot(path=str(artifacts / "dashboard-second-session.png"))
        button(b, "Stop").click()
        wait_live(b, "d.state === 'stopped'")
        assert store.get_run(run_b)["status"] == "stopped"
