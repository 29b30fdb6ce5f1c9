"""The runs tab with many / long runs, driven through its Python objects (no browser): the comparison sends a
bounded number of points, the selection is kept by run id, a poll patches changed cells instead of re-sending
the whole table, and the table has header filters."""
import numpy as np
import pandas as pd
import pytest

pn = pytest.importorskip("panel")

from bokeh.document import Document  # noqa: E402
from bokeh.document.events import ColumnDataChangedEvent, ColumnsPatchedEvent  # noqa: E402

import snnlab.dashboard.runs as runs_module  # noqa: E402
from snnlab.dashboard.runs import COMPARE_POINTS, RunsPanel  # noqa: E402
from snnlab.experiments import RunStore  # noqa: E402


def _store(tmp_path, n=4, steps=5):
    store = RunStore(tmp_path / "runs.sqlite")
    ids = []
    for i in range(n):
        rid = store.create_run({"seed": i}, name=f"run-{i}")
        for s in range(steps):
            store.log_metrics(rid, step=s, metrics={"loss": 1.0 / (s + 1 + i), "accuracy": 0.1 * s})
        store.set_status(rid, "finished")
        ids.append(rid)
    return store, ids


def _counting_compare(panel):
    calls = []
    compare = panel.compare
    panel.compare = lambda: (calls.append(panel.selected_ids()), compare())
    return calls


def test_selection_is_kept_by_run_id_when_a_run_is_added_and_the_comparison_is_not_redrawn(tmp_path):
    store, ids = _store(tmp_path)
    panel = RunsPanel(store)
    panel.refresh(force=True)
    calls = _counting_compare(panel)
    rows = panel.table.value["run_id"].tolist()
    panel.table.selection = [rows.index(ids[1]), rows.index(ids[2])]
    assert len(calls) == 1 and set(panel.selected_ids()) == {ids[1], ids[2]}
    shown = list(panel.compare_pane.objects)
    new = store.create_run({"seed": 9}, name="newest")  # newest first: every row moves down one
    panel.refresh()
    assert panel.table.value["run_id"].iloc[0] == new
    assert set(panel.selected_ids()) == {ids[1], ids[2]}  # the same runs, at their new rows
    assert sorted(panel.table.selection) == sorted(rows.index(r) + 1 for r in (ids[1], ids[2]))
    assert len(calls) == 1 and panel.compare_pane.objects == shown  # not compared (and sent) again
    panel.table.selection = [0]  # the user's own selection still compares
    assert calls[-1] == [new] and len(calls) == 2
    # a selected run that is gone (deleted from the store) leaves the comparison
    panel.table.selection = [panel.table.value["run_id"].tolist().index(ids[0])]
    with store._conn() as con:
        con.execute("DELETE FROM runs WHERE run_id=?", (ids[0],))
    panel.refresh()
    assert panel.selected_ids() == [] and calls[-1] == [] and ids[0] not in set(panel.table.value["run_id"])


def test_a_poll_patches_changed_cells_and_does_not_resend_the_table(tmp_path, monkeypatch):
    monkeypatch.setattr(runs_module, "_fmt_time", lambda t: repr(float(t)))  # every update shows (sub-second)
    store, ids = _store(tmp_path)
    panel = RunsPanel(store)
    panel.refresh(force=True)
    doc = Document()
    model = panel.table.get_root(doc)
    doc.add_root(model)  # (events of models in a document: what a served page is sent)
    events, replaced = [], []
    doc.callbacks.on_change(lambda event: events.append(event))
    panel.table.param.watch(lambda event: replaced.append(event), "value")
    calls = _counting_compare(panel)
    panel.table.selection = [0]
    n_calls = len(calls)
    events.clear()

    store.log_metrics(ids[0], step=99, metrics={"loss": 0.01})  # a training run: its `updated` time changes
    store.set_status(ids[1], "failed", "diverged")  # another run's status and message
    panel.refresh()
    assert replaced == [] and len(calls) == n_calls  # the table was patched, nothing compared again
    resent = [e for e in events if not isinstance(e, ColumnsPatchedEvent)
              and (getattr(e, "attr", None) == "data" or isinstance(e, ColumnDataChangedEvent))]
    assert resent == [] and any(isinstance(e, ColumnsPatchedEvent) for e in events)
    value = panel.table.value.set_index("run_id")
    assert value.loc[ids[1], "status"] == "failed" and value.loc[ids[1], "message"] == "diverged"
    assert value.loc[ids[0], "updated"] == repr(float(store.get_run(ids[0])["updated"]))
    shown = dict(zip(model.source.data["run_id"], model.source.data["status"]))
    assert shown[ids[1]] == "failed"  # what the browser's table holds
    events.clear()
    panel.refresh()  # nothing changed: nothing sent
    assert events == [] and replaced == []
    store.create_run({"seed": 5}, name="brand-new")  # a new run: the table is sent again, with it
    panel.refresh()
    assert len(replaced) == 1 and "brand-new" in set(panel.table.value["name"]) and len(calls) == n_calls


def test_the_runs_table_has_header_filters_on_name_and_status(tmp_path):
    store, ids = _store(tmp_path, n=3)
    store.set_status(ids[2], "failed")
    panel = RunsPanel(store)
    panel.refresh(force=True)
    assert set(panel.table.header_filters) == {"name", "status"}
    panel.table.filters = [{"field": "status", "type": "like", "value": "fail"}]
    assert panel.table.current_view["name"].tolist() == ["run-2"]
    panel.table.filters = [{"field": "name", "type": "like", "value": "run-1"}]
    assert panel.table.current_view["run_id"].tolist() == [ids[1]]


def _log_rows(store, run, steps, values, name, kind="train"):
    """Rows of one metric series written in one transaction (what a long run logs step by step)."""
    values = [None if np.isnan(v) else float(v) for v in values]
    with store._conn() as con:
        con.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?,?)",
                        [(run, int(s), 0, kind, name, v, 0.0) for s, v in zip(steps, values)])


def test_compare_of_a_200k_step_run_among_many_reads_the_names_once_and_sends_bounded_points(tmp_path, monkeypatch):
    import holoviews as hv

    store, ids = _store(tmp_path, n=3)
    panel = RunsPanel(store)
    panel.refresh(force=True)
    n = 200_000
    store.delete_metrics_after(ids[0], -1)
    for name in ("loss", "accuracy", "spikes_per_sample"):
        values = np.linspace(2, 0, n)
        values[50_000] = 40.0 if name == "loss" else values[50_000]  # a loss spike
        _log_rows(store, ids[0], np.arange(n), values, name)
    _log_rows(store, ids[0], np.arange(n), np.ones(n), "lr")  # not compared: not read
    read = []
    real_series = store.metric_series
    monkeypatch.setattr(store, "metric_series", lambda *a, **k: read.append(real_series(*a, **k)) or read[-1])
    iterated = []
    it = pd.Series.__iter__
    monkeypatch.setattr(pd.Series, "__iter__", lambda s: (iterated.append(len(s)), it(s))[1])
    rows = panel.table.value["run_id"].tolist()
    panel.table.selection = [rows.index(r) for r in ids]
    # no Python iteration over every row (it built a set of all names once per metric: 2.5 s of 5.2 s)
    assert [k for k in iterated if k >= n] == []
    monkeypatch.setattr(pd.Series, "__iter__", it)
    assert len(read) == 1 and {name for _, _, name in read[0]} == {"loss", "accuracy", "spikes_per_sample"}
    plots = [pane.object for pane in panel.compare_pane.objects]
    titles = [p.opts.get().kwargs["title"] for p in plots]
    assert titles == ["loss", "accuracy", "spikes_per_sample"]
    points = [len(el) for p in plots for el in p.traverse(lambda e: e, [hv.Curve])]
    # the long run's 3 curves thinned, the two short runs' loss and accuracy (5 steps) whole
    assert len(points) == 7 and max(points) <= COMPARE_POINTS and points.count(5) == 4
    loss = plots[0]
    assert max(el.dimension_values("value").max() for el in loss) == 40.0
    fig = hv.render(loss, backend="bokeh")
    assert {k for r in fig.renderers for k in r.data_source.data} == {"step", "value"}  # no per-point run id


def _curves(layout):
    """``{(panel title, curve key): (steps, values)}`` of a comparison's layout."""
    import holoviews as hv

    out = {}
    for plot in layout:
        title = plot.opts.get().kwargs["title"]
        overlay = plot if isinstance(plot, hv.NdOverlay) else plot.get(0)
        for key, curve in overlay.items():
            out[(title, key)] = (curve.dimension_values(0), curve.dimension_values(1))
    return out


def _random_runs(store, rng, n_runs, max_points):
    """Runs of random curves: lengths around ``max_points`` (below, at and far above it), non-uniform steps with
    repeats (an epoch's summary logged at its last step), NaN values (stored as missing), ties, eval series."""
    ids = []
    for i in range(n_runs):
        run = store.create_run({"seed": i}, name=f"r{i}")
        length = int(rng.choice([1, 3, max_points - 1, max_points, max_points + 1, 3 * max_points + 7, 20_000]))
        steps = np.sort(rng.integers(0, 4 * length + 1, length))  # non-uniform, with repeated steps
        for name in ("loss", "accuracy"):
            values = rng.choice([0.0, 1.0, 2.0], length) if name == "accuracy" else rng.standard_normal(length)
            values[rng.random(length) < 0.05] = np.nan
            _log_rows(store, run, steps, values, name)
        _log_rows(store, run, steps[:: max(1, length // 7)], rng.random(len(steps[:: max(1, length // 7)])),
                  "test_accuracy", kind="eval")
        ids.append(run)
    return ids


def test_the_comparison_read_as_arrays_draws_exactly_the_points_of_the_table_path(tmp_path):
    """The comparison reads only the compared metrics as arrays (RunStore.metric_series) and builds no table of
    every row: its curves are the very points that learning_curves of RunStore.metrics draws (min-max thinned)."""
    from snnlab.dashboard.runs import COMPARE_METRICS
    from snnlab.viz import learning_curves
    from snnlab.viz.curves import series_curves

    rng = np.random.default_rng(7)
    store = RunStore(tmp_path / "runs.sqlite")
    max_points = 100
    ids = _random_runs(store, rng, 12, max_points)
    labels = {r: f"r{i} ({r})" for i, r in enumerate(ids)}
    for chosen in (ids, ids[:1], ids[3:5]):
        new = _curves(series_curves(store.metric_series(chosen, names=COMPARE_METRICS), names=["loss", "accuracy",
                                    "test_accuracy"], labels=labels, max_points=max_points))
        old = _curves(learning_curves(store.metrics(chosen), names=["loss", "accuracy", "test_accuracy"],
                                      labels=labels, max_points=max_points))
        assert new.keys() == old.keys() and len(new) >= len(chosen)
        for key in old:
            np.testing.assert_array_equal(new[key][0], old[key][0])
            np.testing.assert_array_equal(new[key][1], old[key][1])
            assert len(new[key][0]) <= max_points


def test_the_comparison_of_a_run_still_being_written_is_a_consistent_prefix(tmp_path):
    import threading

    from snnlab.viz import learning_curves
    from snnlab.viz.curves import series_curves

    store = RunStore(tmp_path / "runs.sqlite")
    run = store.create_run({}, name="live")
    stop = threading.Event()

    def train():
        writer, step = RunStore(tmp_path / "runs.sqlite"), 0
        while not stop.is_set() and step < 20_000:
            writer.log_metrics(run, step=step, metrics={"loss": float(np.sin(step / 50.0)),
                                                        "accuracy": float(step % 7)})
            step += 1

    thread = threading.Thread(target=train)
    thread.start()
    try:
        seen = []
        while len(seen) < 5 and thread.is_alive():
            series = store.metric_series([run], names=["loss", "accuracy"])
            if series:
                seen.append(series)
    finally:
        stop.set()
        thread.join()
    assert seen
    table = store.metrics(run)
    for series in seen:
        (loss_steps, _), (acc_steps, _) = series[(run, "train", "loss")], series[(run, "train", "accuracy")]
        assert loss_steps.tolist() == acc_steps.tolist() == list(range(len(loss_steps)))  # whole steps, in order
        last = int(loss_steps[-1])
        new = _curves(series_curves(series, max_points=50))
        old = _curves(learning_curves(table[table["step"] <= last], max_points=50))
        assert new.keys() == old.keys()
        for key in old:
            np.testing.assert_array_equal(new[key][0], old[key][0])
            np.testing.assert_array_equal(new[key][1], old[key][1])


def test_a_served_page_compares_once_the_selection_settles_not_at_each_echo_of_a_patch(tmp_path, monkeypatch):
    """The browser's table clears its checkboxes on every patch of its cells and restores them a moment later:
    each poll while a run trained re-drew and re-sent the comparison (2 x 270 kB per refresh for 5 runs)."""
    store, ids = _store(tmp_path)
    panel = RunsPanel(store)
    panel.refresh(force=True)
    calls = _counting_compare(panel)
    pending = []
    monkeypatch.setattr(runs_module, "in_server_session", lambda: True)
    monkeypatch.setattr(pn.state, "add_periodic_callback", lambda callback, period, count: pending.append(callback))
    panel.table.selection = [0, 1]
    assert calls == [] and len(pending) == 1
    pending.pop()()  # SELECTION_SETTLE_MS later
    assert len(calls) == 1
    panel.table.selection = []  # the echo of a patch...
    panel.table.selection = [0, 1]  # ...restored at once
    assert len(pending) == 1  # one check, not one per event
    pending.pop()()
    assert len(calls) == 1  # the same runs: not compared again
    panel.table.selection = []  # the user clears the selection
    pending.pop()()
    assert calls[-1] == [] and len(calls) == 2


def test_compare_draws_one_labelled_curve_per_run_and_metric_with_the_stored_points(tmp_path):
    from snnlab.viz.curves import downsample_minmax

    store, ids = _store(tmp_path, n=3, steps=5)
    store.delete_metrics_after(ids[0], -1)
    n = 3 * COMPARE_POINTS + 7
    _log_rows(store, ids[0], np.arange(n), np.cos(np.arange(n) / 40.0), "loss")
    panel = RunsPanel(store)
    panel.refresh(force=True)
    rows = panel.table.value["run_id"].tolist()
    panel.table.selection = [rows.index(r) for r in ids]
    curves = _curves([pane.object for pane in panel.compare_pane.objects])
    labels = {r: f"run-{i} ({r})" for i, r in enumerate(ids)}
    assert set(curves) == {("loss", labels[r]) for r in ids} | {("accuracy", labels[r]) for r in ids[1:]}
    for (metric, label), (steps, values) in curves.items():
        run = next(r for r in ids if labels[r] == label)
        want = downsample_minmax(*store.metric_series(run, names=[metric])[(run, "train", metric)], COMPARE_POINTS)
        np.testing.assert_array_equal(steps, want[0])
        np.testing.assert_array_equal(values, want[1])
    assert len(curves[("loss", labels[ids[0]])][0]) <= COMPARE_POINTS


def test_a_refresh_without_new_points_keeps_the_drawn_comparison_and_new_points_redraw_it(tmp_path, monkeypatch):
    import gc

    store, ids = _store(tmp_path, n=3)
    panel = RunsPanel(store)
    panel.refresh(force=True)
    drawn = []
    real = runs_module.series_curves
    monkeypatch.setattr(runs_module, "series_curves", lambda *a, **k: (drawn.append(gc.isenabled()), real(*a, **k))[1])
    rows = panel.table.value["run_id"].tolist()
    panel.table.selection = [rows.index(ids[0]), rows.index(ids[1])]
    shown = list(panel.compare_pane.objects)
    assert drawn == [False] and gc.isenabled()  # drawn with the collector paused, which runs again after
    panel.refresh(force=True)  # the Refresh button: the same points, the same labels
    assert len(drawn) == 1 and panel.compare_pane.objects == shown
    store.log_metrics(ids[1], step=99, metrics={"loss": 0.01})  # a new point of a shown run
    panel.refresh(force=True)
    assert len(drawn) == 2 and panel.compare_pane.objects != shown
    loss = _curves([pane.object for pane in panel.compare_pane.objects])[("loss", f"run-1 ({ids[1]})")]
    assert loss[0][-1] == 99 and loss[1][-1] == 0.01
    shown = list(panel.compare_pane.objects)
    with store._conn() as con:  # a renamed run: its label changes
        con.execute("UPDATE runs SET name='renamed' WHERE run_id=?", (ids[0],))
    panel.refresh(force=True)
    assert len(drawn) == 3
    assert ("loss", f"renamed ({ids[0]})") in _curves([p.object for p in panel.compare_pane.objects])
    panel.table.selection = []
    panel.table.selection = [rows.index(ids[0]), rows.index(ids[1])]  # selected again: drawn again
    assert len(drawn) == 4 and gc.isenabled()
