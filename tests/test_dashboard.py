"""The Panel dashboard driven through its Python objects (no browser): form, live training, runs, sweeps."""
import time

import holoviews as hv
import pytest

pn = pytest.importorskip("panel")

from snnlab.dashboard import build_app, build_serve_command  # noqa: E402
from snnlab.dashboard.forms import FORM_GROUPS  # noqa: E402
from snnlab.dashboard.serve import APP_FILE  # noqa: E402
from snnlab.experiments import RunStore  # noqa: E402
from snnlab.training import ExperimentConfig, Trainer  # noqa: E402

TINY = dict(dataset="digits", hidden=[16], num_steps=8, batch_size=32, max_batches_per_epoch=3, eval_max_batches=1,
            epochs=2)


def make_app(tmp_path, **defaults):
    view = build_app(store_path=tmp_path / "runs.sqlite", defaults={**TINY, **defaults}, sweep_executor="threads")
    return view, view.dashboard


def click(button):
    button.clicks += 1  # what a browser click does: on_click callbacks run


def poll_until(app, predicate, timeout=90.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        app.poll()
        if predicate():
            return True
        time.sleep(0.05)
    app.poll()
    return predicate()


def test_build_app_returns_a_viewable_with_a_form_from_the_config_class(tmp_path):
    view, app = make_app(tmp_path)
    assert isinstance(view, pn.viewable.Viewable)
    schema = ExperimentConfig.schema()
    for fields in FORM_GROUPS.values():
        for f in fields:
            w = app.form.widgets[f]
            if "objects" in schema[f]:
                assert list(w.options) == schema[f]["objects"]
    assert app.form.widgets["hidden"].value == "[16]"
    assert app.form.config().to_dict() == ExperimentConfig(**TINY).to_dict()
    app.close()


def test_start_streams_curves_raster_and_progress_then_stop(tmp_path):
    view, app = make_app(tmp_path, epochs=200)
    app.form.widgets["neuron"].value = "ttfs"
    click(app.live.start_button)
    s = app.live.session
    assert s is not None and not app.live.alert.visible
    assert s.cfg.neuron == "ttfs" and s.cfg.hidden == [16]
    assert poll_until(app, lambda: app.live.curve_rows() >= 9 and app.live.raster_pane.object is not None)
    assert set(app.live.curves.buffer.data["name"]) >= {"loss", "accuracy", "spikes_per_sample"}
    assert app.live.progress.value >= 0 and "running" in app.live.status.object
    assert app.live.start_button.disabled and not app.live.stop_button.disabled
    assert isinstance(app.live.shown(app.live.membrane_pane), hv.Overlay)
    rows = app.live.curve_rows()
    assert poll_until(app, lambda: app.live.curve_rows() > rows)  # keeps growing
    click(app.live.pause_button)
    assert s.trainer.pause(wait=True, timeout=30)
    app.poll()
    assert s.state == "paused" and not app.live.resume_button.disabled
    click(app.live.resume_button)
    assert poll_until(app, lambda: s.state == "running")
    click(app.live.stop_button)
    assert s.wait(30)
    app.poll()
    assert s.state == "stopped" and not app.live.start_button.disabled
    assert 'data-state="stopped"' in app.live.debug.object
    assert app.store.list_runs()["status"].tolist() == ["stopped"]
    app.close()


@pytest.mark.parametrize("field,value,message", [
    ("hidden", "[-5]", "every hidden-layer width must be an int"),
    ("hidden", "[1000000, 1000000]", "above the limit"),
    ("hidden", "__import__('os').system('echo pwned')", "hidden: cannot read"),
    ("max_spikes", "two", "max_spikes: cannot read"),
])
def test_invalid_settings_show_an_alert_and_start_nothing(tmp_path, field, value, message):
    view, app = make_app(tmp_path)
    app.form.widgets[field].value = value
    click(app.live.start_button)
    assert app.live.session is None
    assert app.live.alert.visible and message in app.live.alert.object
    assert app.store.list_runs().empty
    app.close()


def test_missing_dataset_folder_is_refused_with_a_message(tmp_path):
    view, app = make_app(tmp_path)
    app.form.widgets["dataset"].value = "nmnist"
    app.form.widgets["data_root"].value = str(tmp_path / "nowhere")
    click(app.live.start_button)
    assert app.live.session is None
    assert app.live.alert.visible and "FileNotFoundError" in app.live.alert.object


def test_two_apps_have_independent_sessions_and_close_stops_training(tmp_path):
    _, a = make_app(tmp_path, epochs=200)
    _, b = make_app(tmp_path, epochs=200, seed=1)
    click(a.live.start_button)
    click(b.live.start_button)
    sa, sb = a.live.session, b.live.session
    assert sa is not sb and sa.trainer.run_id != sb.trainer.run_id
    assert poll_until(a, lambda: a.live.curve_rows() > 0) and poll_until(b, lambda: b.live.curve_rows() > 0)
    a.close()  # what on_session_destroyed does when the tab closes
    assert a.closed and sa.state == "stopped"
    step = sb.step
    assert poll_until(b, lambda: sb.step > step) and sb.state == "running"
    b.close()
    assert sb.state == "stopped"
    status = dict(zip(a.store.list_runs()["run_id"], a.store.list_runs()["status"]))
    assert status == {sa.trainer.run_id: "stopped", sb.trainer.run_id: "stopped"}


def test_a_crash_in_training_shows_the_error_and_keeps_the_run(tmp_path):
    _, app = make_app(tmp_path, epochs=200)
    click(app.live.start_button)
    s = app.live.session
    assert poll_until(app, lambda: s.step >= 2)

    def broken(*args, **kwargs):
        raise RuntimeError("simulated crash in the model")

    s.trainer.model.forward = broken
    # the training thread flips the state; the page shows the error at its next poll: wait for both
    assert poll_until(app, lambda: s.state == "failed" and app.live.alert.visible)
    assert "simulated crash" in app.live.alert.object
    assert app.live.curve_rows() > 0  # the curves stay
    run = app.store.get_run(s.trainer.run_id)
    assert run["status"] == "failed" and "simulated crash" in run["message"]
    assert len(app.store.metrics(s.trainer.run_id)) > 0
    app.close()


def test_runs_table_compare_tradeoff_and_robustness(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    for seed in (0, 1):
        Trainer(ExperimentConfig(**TINY, seed=seed), run_dir=tmp_path / f"run{seed}", store=store, progress=False,
                name=f"cli-run-{seed}").run()
    _, app = make_app(tmp_path)
    assert set(app.runs.table.value["name"]) == {"cli-run-0", "cli-run-1"}
    # a run appearing later shows up on the next refresh
    Trainer(ExperimentConfig(**TINY, seed=2), store=store, progress=False, name="late-run").run()
    app.runs.refresh()
    assert "late-run" in set(app.runs.table.value["name"])
    names = app.runs.table.value["name"].tolist()
    app.runs.table.selection = [names.index("cli-run-0"), names.index("cli-run-1")]
    # one pane per metric, one plot each (a Bokeh grid in this page drew its plots at zero size)
    compared = [pane.object for pane in app.runs.compare_pane.objects]
    assert len(compared) >= 3 and all(isinstance(p, hv.NdOverlay) for p in compared)
    assert {p.opts.get().kwargs["title"] for p in compared} >= {"loss", "accuracy", "spikes_per_sample"}
    assert isinstance(app.runs.tradeoff_pane.object, hv.Overlay)
    assert app.runs.x_select.value == "spikes_per_sample" and app.runs.y_select.value == "accuracy"
    assert "n_samples" not in app.runs.x_select.options  # a count, no objective
    for cost in ("macs_per_sample", "synops_per_sample"):  # every offered column can be drawn
        assert cost in app.runs.x_select.options
        app.runs.x_select.value = cost
        assert isinstance(app.runs.tradeoff_pane.object, hv.Overlay), cost
    app.runs.levels.value = "0, 0.5"
    click(app.runs.robust_button)
    robust = [pane.object for pane in app.runs.robust_pane.objects]
    assert len(robust) == 1 and isinstance(robust[0], hv.NdOverlay) and len(robust[0]) == 2  # a curve per run
    # a run saved with data_kwargs its dataset ignored (older versions let it be saved): the warning is on the page
    import json

    import torch

    path = tmp_path / "run0" / "checkpoint.pt"
    ck = torch.load(path, weights_only=False)
    ck["config_json"] = json.dumps({**json.loads(ck["config_json"]), "data_kwargs": {"n_units": 5}})
    torch.save(ck, path)
    click(app.runs.robust_button)
    panes = app.runs.robust_pane.objects
    assert isinstance(panes[0], pn.pane.Alert) and "data_kwargs ['n_units'] are not options" in panes[0].object
    app.close()


def test_robustness_of_a_bfloat16_run_is_measured_in_bfloat16(tmp_path, monkeypatch):
    import torch

    import snnlab.metrics

    store = RunStore(tmp_path / "runs.sqlite")
    Trainer(ExperimentConfig(**TINY, precision="bfloat16"), run_dir=tmp_path / "run", store=store,
            progress=False).run()
    real, seen = snnlab.metrics.robustness_curve, []

    def spy(*args, **kwargs):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return real(*args, **kwargs)

    monkeypatch.setattr(snnlab.metrics, "robustness_curve", spy)
    _, app = make_app(tmp_path)
    app.runs.table.selection = [0]
    app.runs.levels.value = "0"
    click(app.runs.robust_button)
    assert seen == [(True, torch.bfloat16)]
    assert isinstance(app.runs.robust_pane.objects[0].object, hv.NdOverlay)
    app.close()


def test_sweep_launcher_runs_in_the_background_and_logs_to_the_store(tmp_path):
    _, app = make_app(tmp_path, epochs=1)
    app.sweeps.grid.value = "{'seed': [0]}"  # not JSON (Python syntax is never evaluated)
    click(app.sweeps.launch_button)
    assert app.sweeps.alert.visible and "not valid JSON" in app.sweeps.alert.object
    app.sweeps.grid.value = '{"bogus": [1]}'
    click(app.sweeps.launch_button)
    assert "unknown field" in app.sweeps.alert.object
    app.sweeps.grid.value = '{"seed": [0, 1]}'
    app.sweeps.executor.value = "threads"
    app.sweeps.workers.value = 1
    click(app.sweeps.launch_button)
    assert not app.sweeps.alert.visible
    assert app.sweeps.wait(180)
    app.poll()
    assert "finished" in app.sweeps.status.object and len(app.sweeps.results.value) == 2
    app.runs.refresh()
    assert len(app.runs.table.value) == 2 and set(app.runs.table.value["status"]) == {"finished"}
    app.close()


def test_serve_command_binds_localhost_and_serves_the_packaged_app():
    cmd = build_serve_command(port=5123)
    assert cmd[1:4] == ["-m", "panel", "serve"] and cmd[4] == str(APP_FILE) and APP_FILE.exists()
    assert cmd[cmd.index("--address") + 1] == "127.0.0.1" and cmd[cmd.index("--port") + 1] == "5123"
    assert "--allow-websocket-origin=127.0.0.1:5123" in cmd and "--allow-websocket-origin=localhost:5123" in cmd
    assert "--show" not in cmd and "--num-threads" in cmd
    with pytest.raises(ValueError):
        build_serve_command(port=0)


def test_membrane_plot_draws_each_layers_own_threshold(tmp_path):
    view, app = make_app(tmp_path, epochs=1, learn_threshold=True, lr=0.5)
    click(app.live.start_button)
    s = app.live.session
    assert s.wait(120) and poll_until(app, lambda: s.snapshot is not None)
    model = s.trainer.model
    thresholds = {}
    for layer in app.live.layer.options:
        app.live.layer.value = layer
        app.live.render_snapshot(force=True)
        shown = app.live.shown(app.live.membrane_pane)  # a threshold: a flat curve labelled "threshold"
        thresholds[layer] = sorted({float(v) for e in shown if isinstance(e, hv.Curve) and e.label == "threshold"
                                    for v in e.dimension_values("v")})
    learnt = float(model[1].threshold.detach())
    assert learnt != pytest.approx(1.0, abs=1e-3)  # it did learn: the configured 1.0 would be wrong
    readout = [name for name, m in model.named_modules() if type(m).__name__ == "LI"]
    assert thresholds["1"] == [pytest.approx(learnt)] and readout and thresholds[readout[0]] == []  # LI: none
    app.close()


def test_config_form_set_values_replaces_the_settings_of_the_json_box():
    from snnlab.dashboard.forms import ConfigForm

    first = ExperimentConfig(tau_mem=12.5, optimizer="sgd", learn_threshold=True, data_kwargs={"tau": 3.0},
                             surrogate_alpha=2.5)
    form = ConfigForm(first.to_dict())
    assert form.config().to_dict() == first.to_dict()
    form.set_values(ExperimentConfig(hidden=[8]).to_dict())
    assert form.config().to_dict() == ExperimentConfig(hidden=[8]).to_dict() and form.extra.value == ""
    form.set_values({"tau_mem": 20.0})  # a partial dict changes only what it names
    assert form.config().to_dict() == ExperimentConfig(hidden=[8], tau_mem=20.0).to_dict()


def test_live_curves_forward_only_new_rows_also_once_the_session_buffer_is_full():
    import types

    from snnlab.dashboard.live import LivePanel
    from snnlab.viz import LiveCurves

    panel = LivePanel(lambda: ExperimentConfig(**TINY))
    source = LiveCurves(buffer_length=6)
    panel.session = types.SimpleNamespace(curves=source)
    sent = []
    forward = panel.curves.send_table
    panel.curves.send_table = lambda df: (sent.append(len(df)), forward(df))
    for step in range(4):  # 8 rows: the session keeps the last 6
        source.send(step, {"loss": 1.0 / (step + 1), "accuracy": 0.1 * step})
    panel._forward_curves()
    panel._forward_curves()  # nothing new: nothing sent (it re-sent the whole full buffer at every poll)
    source.send(4, {"loss": 0.2, "accuracy": 0.4})
    panel._forward_curves()
    assert sent == [6, 0, 2]
    shown = panel.curves.buffer.data.reset_index(drop=True)
    assert shown["step"].tolist() == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]


def test_an_ended_run_is_drawn_once_not_at_every_poll(tmp_path):
    view, app = make_app(tmp_path, epochs=1)
    click(app.live.start_button)
    s = app.live.session
    assert s.wait(120) and poll_until(app, lambda: s.state == "finished" and app.live._shown_step is not None)
    redraws = []
    show = app.live._show
    app.live._show = lambda pane, element: (redraws.append(pane), show(pane, element))
    for _ in range(5):
        app.poll()
    assert redraws == []  # every poll re-drew the plots of a finished run, and the page grew until it froze
    app.live.sample.value = 1  # a control the user changes still redraws
    assert redraws == [app.live.raster_pane, app.live.membrane_pane]
    app.close()


def test_snapshots_update_the_shown_plots_in_place(tmp_path):
    view, app = make_app(tmp_path, epochs=1)
    click(app.live.start_button)
    s = app.live.session
    assert s.wait(120) and poll_until(app, lambda: s.state == "finished" and app.live._shown_step is not None)
    assert app.live.layer.value == app.live.layer.options[0]  # the layer drawn is the one the dropdown shows
    panes = (app.live.raster_pane, app.live.membrane_pane)
    before = [pane.object for pane in panes]
    assert all(isinstance(obj, hv.DynamicMap) for obj in before)
    s.take_snapshot(step=10_000)  # a later snapshot of the same network
    app.live.render_snapshot(force=True)
    # the same DynamicMaps, fed the new plots: a new object for every snapshot piled up figures in the browser
    assert [pane.object for pane in panes] == before
    assert "step 10000" in app.live.shown(app.live.raster_pane).opts.get().kwargs["title"]
    assert "step 10000" in before[1][()].opts.get().kwargs["title"]
    app.close()


def test_delay_tab_holds_one_plot_per_pane(tmp_path):
    view, app = make_app(tmp_path, epochs=2, delays=True, max_delay=5)  # max_delay's default fits num_steps too
    click(app.live.start_button)
    s = app.live.session
    assert s.wait(120) and poll_until(app, lambda: s.state == "finished" and app.live._shown_step is not None)
    app.live.render_snapshot(force=True)
    panes = [p for p in app.live.delay_pane.objects if isinstance(p, pn.pane.HoloViews)]
    # a Bokeh grid (hv.Layout) drawn in a hidden tab kept a zero size and showed as axis stubs; panes added
    # to a hidden tab later kept a narrow width: three panes from the start, shown once they have data
    assert panes == app.live._delay_panes and all(p.visible for p in panes) and not app.live.delay_note.visible
    assert not any(isinstance(app.live.shown(p), hv.Layout) for p in panes)
    assert "integer delays (rounded)" in app.live.shown(panes[0]).opts.get().kwargs["title"]
    app.close()


def test_live_curves_show_the_first_test_point_as_a_marker(tmp_path):
    """After one epoch the test accuracy is a single point: drawn as a marker (a line alone shows nothing)."""
    view, app = make_app(tmp_path, epochs=1)
    click(app.live.start_button)
    assert app.live.session.wait(90)
    app.poll()
    accuracy = dict(zip(["loss", "accuracy", "spikes per sample"], app.live.curve_panes))["accuracy"].object
    fig = hv.render(accuracy, backend="bokeh")
    drawn = sorted((type(r.glyph).__name__, len(r.data_source.data["step"])) for r in fig.renderers
                   if len(r.data_source.data.get("step", [])))
    assert ("Scatter", 1) in drawn and ("Line", 1) in drawn  # test_accuracy: its one point, line and marker
    assert sum(kind == "Scatter" for kind, _ in drawn) == 1  # the training accuracy has no markers
    listed = {item.label.value for legend in fig.legend for item in legend.items if item.visible}
    assert listed == {"accuracy", "test_accuracy"}  # no entry for rounded_test_accuracy: no delays, no rounding
    app.close()


def test_sweeps_in_threads_run_one_at_a_time(tmp_path):
    _, app = make_app(tmp_path, epochs=1)
    app.sweeps.grid.value = '{"seed": [0, 1]}'
    app.sweeps.executor.value = "threads"
    app.sweeps.workers.value = 2  # parallel threads would share the global random state
    click(app.sweeps.launch_button)
    assert app.sweeps.alert.visible and "set workers to 1" in app.sweeps.alert.object and not app.sweeps.running
    app.close()


def test_the_preset_selector_fills_the_form_and_keeps_this_machines_settings():
    from snnlab.dashboard.forms import NO_PRESET, ConfigForm
    from snnlab.training import PRESETS, preset

    form = ConfigForm()
    assert form.preset.value == NO_PRESET and list(form.preset.options) == [NO_PRESET, *PRESETS]
    form.widgets["data_root"].value = "/my/data"
    form.widgets["precision"].value = "bfloat16"
    form.widgets["hidden"].value = "[7]"
    for name in ("delays_delay_task", "dcls_shd"):
        form.preset.value = name
        assert form.config().to_dict() == preset(name, data_root="/my/data", precision="bfloat16").to_dict()
    form.preset.value = NO_PRESET  # changes nothing
    assert form.config().to_dict() == preset("dcls_shd", data_root="/my/data", precision="bfloat16").to_dict()


def test_a_tick_that_comes_while_the_last_runs_returns_at_once(tmp_path):
    """Re-read: the overlap guard sat in LivePanel.poll only, while the sweep poll and the store refresh of a tick
    could overlap the next tick's."""
    from snnlab.dashboard.app import DashboardApp

    app = DashboardApp(store_path=tmp_path / "runs.sqlite", runs_every=1)
    calls = []
    app.runs.refresh = lambda *a, **k: calls.append(1)
    assert app._polling.acquire()  # a tick in progress
    app.poll()
    assert calls == [] and app._ticks == 0
    app._polling.release()
    app.poll()
    assert calls == [1] and app._ticks == 1
    app.close()


def test_pages_share_one_store_per_file(tmp_path):
    """Leak probe: a store per page kept ~3 SQLite connections per page, those of closed pages open until the cycle
    collector ran; pages of one server now share the store of a file (connections bounded by threads)."""
    _, a = make_app(tmp_path)
    _, b = make_app(tmp_path)
    other = build_app(store_path=tmp_path / "other.sqlite", defaults=TINY, sweep_executor="threads").dashboard
    assert a.store is b.store and other.store is not a.store
    assert a.store.read_timeout == 2.0  # a locked store is an error on the page after 2 s, not a frozen page
    assert a.store.follow_file  # a store file replaced under a running server is followed
    for app in (a, b, other):
        app.close()


def test_closing_a_tab_stops_its_run_off_the_event_loop(tmp_path, monkeypatch):
    """Leak probe: closing a tab stopped its run on the server's event loop, which waited for the step and the
    checkpoint (seconds for a big model) while every other page froze."""
    import threading

    _, app = make_app(tmp_path, epochs=200)
    click(app.live.start_button)
    session = app.live.session
    assert poll_until(app, lambda: app.live.curve_rows() > 0)
    release, entered = threading.Event(), threading.Event()
    real_close = app.live.close

    def slow_close():  # a run whose step takes long to end
        entered.set()
        release.wait(30)
        real_close()

    monkeypatch.setattr(app.live, "close", slow_close)
    closer = app.close_in_background()  # what on_session_destroyed calls: returns while the run still stops
    assert closer is not None and entered.wait(30) and closer.is_alive() and app.closed
    assert app.close_in_background() is None  # once
    release.set()
    closer.join(30)
    assert not closer.is_alive() and session.state == "stopped"
    assert app.store.list_runs()["status"].tolist() == ["stopped"]


def test_a_tab_closed_while_start_builds_the_run_stops_it(tmp_path, monkeypatch):
    """Leak probe: a page closed while Start was still building the trainer left the run training for nobody."""
    import threading

    from snnlab.widgets.session import TrainingSession

    _, app = make_app(tmp_path, epochs=200)
    real_start = TrainingSession.start

    def start_then_page_closes(self, *args, **kwargs):
        out = real_start(self, *args, **kwargs)
        app.close()  # the session is destroyed before start() has handed the run to the panel
        return out

    monkeypatch.setattr(TrainingSession, "start", start_then_page_closes)
    assert app.live.start() is False and app.live.session is None
    assert not any(t.name.startswith("snnlab-trainer") and t.is_alive() for t in threading.enumerate())
    assert app.store.list_runs()["status"].tolist() == ["stopped"]
    assert app.live.start() is False and "closed" in app.live.alert.object
