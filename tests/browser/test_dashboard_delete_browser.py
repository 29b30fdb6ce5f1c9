"""Deleting runs in the served dashboard's Runs tab, in headless chromium: tick a run's checkbox in the table, press
"Delete selected runs", confirm; the run leaves the store and the table, the other stays."""
import time

import pytest

from snnlab.experiments import RunStore

from .conftest import is_local_url

pytestmark = pytest.mark.slow


def _wait(predicate, timeout=60.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_a_selected_run_is_deleted_after_confirmation(server, browser, artifacts):
    store = RunStore(server["store"])
    doomed, kept = store.create_run({}, name="delete-me-in-browser"), store.create_run({}, name="keep-me-in-browser")
    for run in (doomed, kept):
        store.set_status(run, "finished")
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = ctx.new_page()
        page.set_default_timeout(60_000)
        errors, external = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: None if is_local_url(r.url) else external.append(r.url))
        page.goto(server["url"], timeout=90_000)
        page.wait_for_function("() => window.Bokeh && window.Bokeh.documents.length > 0", timeout=90_000)
        page.get_by_text("Runs", exact=True).first.click()
        delete = page.get_by_role("button", name="Delete selected runs", exact=True)
        assert delete.is_disabled()
        row = page.locator(".tabulator-row", has_text="delete-me-in-browser").first
        row.wait_for(timeout=60_000)
        row.locator("input[type='checkbox']").first.check()
        _wait(lambda: delete.is_enabled(), timeout=30)
        assert delete.is_enabled()
        delete.click()
        page.get_by_text("Delete 1 run", exact=False).first.wait_for(timeout=30_000)
        assert doomed in set(store.list_runs()["run_id"])  # asking deleted nothing
        page.screenshot(path=str(artifacts / "dashboard-delete-confirm.png"))
        page.get_by_role("button", name="Confirm delete", exact=True).click()
        assert _wait(lambda: doomed not in set(store.list_runs()["run_id"]), timeout=30)
        page.get_by_text("Deleted 1 run", exact=False).first.wait_for(timeout=30_000)
        page.locator(".tabulator-row", has_text="delete-me-in-browser").first.wait_for(state="detached",
                                                                                      timeout=30_000)
        assert kept in set(store.list_runs()["run_id"])
        page.screenshot(path=str(artifacts / "dashboard-delete-runs.png"))
        assert errors == [] and external == [], (errors, external)
    finally:
        ctx.close()
        store.close()
