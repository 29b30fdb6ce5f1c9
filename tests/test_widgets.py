"""ipywidgets front ends, driven without a browser: set traits / click buttons, assert on the plots' data."""
import time

import holoviews as hv
import numpy as np
import pandas as pd
import pytest
import torch

import snnlab as sl
from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig
from snnlab.training.config import ConfigError
from snnlab.widgets import (ConfigForm, DelayViewer, HoloViewsWidget, RasterExplorer, TradeoffExplorer, TrainerWidget,
                            TrainingSession, config_form)

TINY = dict(dataset="digits", hidden=[16], epochs=1, num_steps=8, batch_size=16, max_batches_per_epoch=3,
            eval_max_batches=1)


def _wait(pred, timeout=60.0):
    deadline = time.time() + timeout
    while not pred() and time.time() < deadline:
        time.sleep(0.05)
    return pred()


# ---------------------------------------------------------------------------------------------- config form
def test_config_form_is_generated_from_the_schema_and_round_trips():
    form = config_form()
    assert isinstance(form, ConfigForm)
    schema = ExperimentConfig.schema()
    assert list(form.widgets) == list(schema)  # every field, in order: nothing hand-written
    kinds = {k: type(w).__name__ for k, w in form.widgets.items()}
    assert kinds["dataset"] == "Dropdown" and list(form.widgets["dataset"].options) == schema["dataset"]["objects"]
    # numbers are typed as text (number boxes clamp/truncate in the browser), the range in the placeholder
    assert kinds["delays"] == "Checkbox" and kinds["epochs"] == "NumberText" and kinds["lr"] == "NumberText"
    assert kinds["hidden"] == "Text" and kinds["data_kwargs"] == "Textarea" and kinds["max_spikes"] == "NumberText"
    assert form.widgets["epochs"].placeholder == "an integer in [1, 100000]"
    assert form.widgets["mask_p"].placeholder == "a number in [0.0, 1.0)"  # 1.0 excluded
    assert form.widgets["lr"].placeholder == "a number in (0, 100.0]"  # 0 excluded

    cfg = ExperimentConfig(hidden=[32, 16], epochs=3, neuron="noisy", max_spikes=2, surrogate_alpha=2.5, lr=0.01,
                           data_kwargs={"threshold": 0.05}, data_root="/somewhere", delays=True, max_delay=5,
                           max_batches_per_epoch=7)
    form.set_config(cfg)
    assert form.widgets["hidden"].value == "32,16"
    assert form.config().to_dict() == cfg.to_dict() and form.error is None and form.message.value == ""
    form.set_config({"epochs": 4})  # a dict: missing keys take their defaults
    assert form.config().to_dict() == ExperimentConfig(epochs=4).to_dict()


def test_config_form_reports_invalid_values_without_raising():
    form = config_form(cfg=ExperimentConfig(**TINY))
    form.widgets["hidden"].value = "16,abc"
    assert form.config() is None and "hidden" in form.error and "hidden" in form.message.value
    assert "Traceback" not in form.message.value
    with pytest.raises(ConfigError, match="hidden"):
        form.config(raise_errors=True)
    form.widgets["hidden"].value = "16"
    assert form.config() is not None and form.message.value == ""
    form.widgets["delays"].value = True
    form.widgets["max_delay"].value = 50  # > num_steps: a cross-field error from validate()
    assert form.config() is None and "max_delay" in form.message.value
    form.widgets["max_delay"].value = 4
    form.widgets["data_kwargs"].value = "{not json"
    assert form.config() is None and "data_kwargs" in form.error
    form.widgets["data_kwargs"].value = "{}"
    form.widgets["lr"].value = 0.0  # bounds are exclusive at 0: param's message
    assert form.config() is None and "lr" in form.error


# ---------------------------------------------------------------------------------------------- trainer
def test_trainer_widget_trains_and_shows_curves_progress_and_raster(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    tw = TrainerWidget(ExperimentConfig(**TINY), store=store, poll_interval=None, probe_every=1, probe_samples=3)
    assert tw.session is None and not tw.start_button.disabled and tw.stop_button.disabled and tw.pause_button.disabled
    tw.start_button.click()
    assert isinstance(tw.session, TrainingSession)
    assert tw.session.wait(120)
    tw.refresh()
    assert tw.state == "finished" and tw.progress.value == tw.progress.max
    data = tw.session.curves.buffer.data
    assert (data["name"] == "loss").sum() == 3 and "test_accuracy" in set(data["name"])
    # the widget's curves: one panel per scale, fed with the session's rows; the one test point is a marker
    assert list(tw.curves.plots) == ["loss", "accuracy", "spikes per sample"]
    assert [v.object for v in tw.curve_views] == list(tw.curves.plots.values())
    shown = tw.curves.buffer.data
    assert shown.reset_index(drop=True).equals(data.reset_index(drop=True).astype({"step": "float64"}))
    accuracy = tw.curves.plots["accuracy"][()]
    assert set(accuracy.get(0).keys()) == {"accuracy", "test_accuracy", "rounded_test_accuracy"}
    assert len(accuracy.get(1)["test_accuracy"]) == 1 and len(accuracy.get(0)["accuracy"]) == 3
    snap = tw.session.snapshot
    pts = tw.raster.object
    assert isinstance(pts, hv.Points)
    t, n = np.nonzero(snap["spikes"]["1"][:, 0].numpy())
    assert np.array_equal(pts.data["time"].to_numpy(), t) and np.array_equal(pts.data["neuron"].to_numpy(), n)
    tw.sample.value = 2
    t, n = np.nonzero(snap["spikes"]["1"][:, 2].numpy())
    assert np.array_equal(tw.raster.object.data["neuron"].to_numpy(), n)
    assert not tw.start_button.disabled and tw.stop_button.disabled and not tw.form.disabled
    assert "finished" in tw.status.value
    assert store.list_runs()["status"].tolist() == ["finished"]
    tw.close()


def test_trainer_widget_pause_resume_stop_buttons_and_poll_thread():
    tw = TrainerWidget(ExperimentConfig(**{**TINY, "epochs": 200}), poll_interval=0.1, probe_every=50)
    tw.start_button.click()
    assert tw.state == "running" and tw.start_button.disabled and not tw.pause_button.disabled
    assert tw.form.disabled
    assert _wait(lambda: tw.session.step >= 2 and tw.progress.value > 0)  # the poll thread refreshes
    tw.pause_button.click()
    assert _wait(lambda: tw.state == "paused")
    tw.refresh()
    assert tw.pause_button.disabled and not tw.resume_button.disabled and not tw.stop_button.disabled
    tw.resume_button.click()
    assert tw.state == "running" and tw.resume_button.disabled and not tw.pause_button.disabled
    tw.stop_button.click()
    assert _wait(lambda: tw.state == "stopped")
    assert _wait(lambda: not tw.start_button.disabled, 10)  # the poll thread's final refresh
    assert tw.stop_button.disabled and tw.pause_button.disabled
    assert tw.stop_button.button_style == "" and tw.start_button.button_style == "success"  # no red when disabled
    tw.close()


def test_trainer_widget_handles_browser_messages_to_its_plots_under_the_redraw_lock():
    """Reviewer: "Set changed size during iteration": jupyter_bokeh applied the browser's plot messages (in a
    kernel subshell thread) while the poll thread redrew the same data source."""
    import threading

    tw = TrainerWidget(ExperimentConfig(**TINY), poll_interval=None, plot_mode="bokeh")
    views = [*tw.curve_views, tw.raster]
    handled = []
    for view in views:  # besides jupyter_bokeh's own handler (which ignores this message)
        view.widget.on_msg(lambda widget, content, buffers, view=view: handled.append(view))
    msg = {"content": {"data": {"method": "custom", "content": {"event": "test"}}}, "buffers": []}
    threads = []
    with tw._render_lock:  # a redraw in progress
        for view in views:
            t = threading.Thread(target=view.widget.comm.handle_msg, args=(msg,))
            t.start()
            threads.append(t)
        time.sleep(0.3)
        assert handled == []  # the browser's messages wait for the redraw
    for t in threads:
        t.join(10)
    assert sorted(map(id, handled)) == sorted(map(id, views))
    tw.close()


def test_trainer_widget_restores_its_buttons_after_stop_even_when_refresh_fails(monkeypatch):
    """Reviewer: after Stop every button stayed disabled (the poll thread's last refresh raised, unguarded)."""
    tw = TrainerWidget(ExperimentConfig(**{**TINY, "epochs": 200}), poll_interval=0.05, probe_every=1000)
    tw.start()
    assert _wait(lambda: tw.session.step >= 1)

    def broken():
        raise RuntimeError("Set changed size during iteration")

    monkeypatch.setattr(tw.session, "poll", broken)
    tw.stop_button.click()
    assert tw.start_button.disabled and tw.stop_button.disabled  # stopping ...
    assert _wait(lambda: tw.state == "stopped" and not tw.start_button.disabled, 30)
    assert tw.stop_button.disabled and tw.pause_button.disabled and not tw.form.disabled
    # (the buttons come back when the run stops; the poll thread's failed last refresh is reported just after)
    assert _wait(lambda: "display error" in tw.status.value, 10), tw.status.value
    assert "Set changed size" in tw.display_error
    assert _wait(lambda: not tw._poll_thread or not tw._poll_thread.is_alive(), 10)
    tw.close()


def test_a_new_trainer_widget_stops_the_run_of_the_earlier_one():
    """Reviewer: running the widget's cell again left the old run training invisibly, with no way to stop it."""
    first = TrainerWidget(ExperimentConfig(**{**TINY, "epochs": 200}), poll_interval=None, probe_every=1000)
    first.start()
    assert first.state == "running"
    second = TrainerWidget(ExperimentConfig(**TINY), poll_interval=None)
    assert first.session.wait(30) and first.state == "stopped"
    assert "stopped the run of an earlier TrainerWidget" in second.status.value
    keep = TrainerWidget(ExperimentConfig(**{**TINY, "epochs": 200}), poll_interval=None, probe_every=1000)
    keep.start()
    other = TrainerWidget(ExperimentConfig(**TINY), poll_interval=None, stop_others=False)
    assert keep.state == "running"
    keep.close()  # close() stops its run
    assert keep.state == "stopped"
    for w in (first, second, other):
        w.close()


def test_trainer_widget_shows_the_new_run_only_and_keeps_the_old_curves_until_it_has_rows():
    tw = TrainerWidget(ExperimentConfig(**TINY), poll_interval=None, probe_every=1000)
    assert tw.stop_button.disabled and tw.stop_button.button_style == "" and tw.start_button.button_style == "success"
    tw.start()
    assert tw.stop_button.button_style == "danger" and tw.start_button.button_style == ""
    assert tw.session.wait(120)
    tw.refresh()
    first = tw.session
    assert len(tw.curves.buffer.data) == len(first.curves.buffer.data) > 0
    tw.form.widgets["epochs"].value = 2
    tw.start()
    second = tw.session
    if not len(second.curves.buffer.data):  # no rows yet: still the first run's curves (no empty frame)
        assert len(tw.curves.buffer.data) == len(first.curves.buffer.data)
    assert second.wait(120)
    tw.refresh()
    shown = tw.curves.buffer.data
    assert len(shown) == len(second.curves.buffer.data) and (shown["name"] == "loss").sum() == 6
    tw.close()


def test_trainer_widget_invalid_settings_start_nothing(tmp_path):
    tw = TrainerWidget(ExperimentConfig(**TINY), poll_interval=None)
    tw.form.widgets["hidden"].value = "-3"
    tw.start_button.click()
    assert tw.session is None and tw.state == "idle" and "hidden" in tw.status.value
    tw.form.set_config(ExperimentConfig(**{**TINY, "dataset": "nmnist", "data_root": str(tmp_path)}))
    assert tw.start() is False  # the data error from TrainingSession.start(), shown as text
    assert tw.session is None and "not started" in tw.status.value and "Traceback" not in tw.status.value
    assert not tw.start_button.disabled
    tw.close()


# ---------------------------------------------------------------------------------------------- raster explorer
@pytest.fixture(scope="module")
def net_and_batch():
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 6), sl.LIF(), torch.nn.Linear(6, 3),
                        sl.LI())
    return net, (torch.rand(20, 5, 4) * 3, torch.arange(5))


def _points_equal_nonzeros(pts, spikes, sample):
    t, n = np.nonzero(spikes[:, sample].numpy())
    return (np.array_equal(pts.data["time"].to_numpy(), t)
            and np.array_equal(pts.data["neuron"].to_numpy(), n))


def test_raster_explorer_follows_sample_layer_range_and_neuron(net_and_batch):
    net, batch = net_and_batch
    ex = RasterExplorer(net, batch)
    assert list(ex.layer.options) == ["1", "3", "5"] and ex.layer.value == "1"
    assert _points_equal_nonzeros(ex.raster, ex.spikes["1"], 0)
    ex.sample.value = 3
    assert _points_equal_nonzeros(ex.raster, ex.spikes["1"], 3)
    ex.layer.value = "3"
    assert ex.neurons.value == (0, 5) and _points_equal_nonzeros(ex.raster, ex.spikes["3"], 3)
    ex.neurons.value = (2, 4)  # neuron ids stay the real indices
    t, n = np.nonzero(ex.spikes["3"][:, 3, 2:5].numpy())
    assert np.array_equal(ex.raster.data["neuron"].to_numpy(), n + 2)
    ex.neuron.value = 4
    curve = ex.trace_plot.object.NdOverlay.I[4]
    assert np.allclose(curve.dimension_values("v"), ex.membrane["3"][:, 3, 4].numpy())
    ex.tap.event(x=5.0, y=1.2)  # a click on the raster picks neuron 1
    assert ex.neuron.value == 1
    assert np.allclose(ex.trace_plot.object.NdOverlay.I[1].dimension_values("v"), ex.membrane["3"][:, 3, 1].numpy())
    ex.layer.value = "5"  # the LI readout: membrane only, empty raster
    assert len(ex.raster) == 0 and ex.neurons.value == (0, 2)


def test_raster_explorer_accepts_a_loader_and_static_output_mode(net_and_batch):
    net, (x, y) = net_and_batch
    loader = [(x, y)]
    ex = RasterExplorer(net, loader, plot_mode="output")
    assert ex.raster_plot.view.mode == "output"
    ex.sample.value = 1
    assert _points_equal_nonzeros(ex.raster, ex.spikes["1"], 1)
    assert ex.raster_plot.view.object is ex.raster


def test_live_plot_gets_a_new_dynamic_map_when_the_element_type_changes():
    from snnlab.widgets._hv import LivePlot

    live = LivePlot(hv.Points([(0, 1)]), mode="bokeh")
    live.view._pane.get_root()  # a rendered plot, as in a notebook
    first, seen = live.dmap, []
    live.on_new_dmap.append(seen.append)
    live.update(hv.Points([(1, 2)]))  # same type: the same DynamicMap, fed through its pipe
    assert live.dmap is first and seen == [] and live.pipe.data.data.shape[0] == 1
    image = hv.Image(np.eye(3))
    live.update(image)  # a DynamicMap holds one element type: Points -> Image needs a new one
    assert live.dmap is not first and seen == [live.dmap] and live.view.object is live.dmap
    assert live.pipe.data is image and isinstance(live.dmap[()], hv.Image)


def test_raster_explorer_switches_between_points_and_image_and_keeps_its_tap():
    lin = torch.nn.Linear(4, 300)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.zero_()
    x = torch.ones(400, 2, 4) * 5
    x[:, 0] = 0.0  # sample 0 silent, sample 1 fires 120 000 spikes (image above theme.MAX_POINTS)
    ex = RasterExplorer(sl.Sequential(lin, sl.LIF()), x, plot_mode="bokeh")
    assert isinstance(ex.raster, hv.Points) and len(ex.raster) == 0
    ex.sample.value = 1
    assert isinstance(ex.raster, hv.Image) and float(ex.raster.dimension_values(2).sum()) == 120_000
    assert isinstance(ex.raster_plot.dmap[()], hv.Image) and ex.tap.source is ex.raster_plot.dmap
    ex.tap.event(x=3.0, y=7.2)
    assert ex.neuron.value == 7
    ex.sample.value = 0
    assert isinstance(ex.raster_plot.dmap[()], hv.Points) and ex.tap.source is ex.raster_plot.dmap


# ---------------------------------------------------------------------------------------------- delay viewer
def test_delay_viewer_matrix_histogram_kernels_and_history():
    torch.manual_seed(0)
    net = sl.Sequential(sl.DelayedLinear(5, 4, max_delay=6, seed=0), sl.LIF(), sl.DelayedLinear(4, 3, max_delay=6, seed=1),
                        sl.LIF())
    layers = {n: m for n, m in net.named_modules() if isinstance(m, sl.DelayedLinear)}
    hist = pd.concat([sl.viz.delay_snapshot(m, step=s, name=n) for s in range(3) for n, m in layers.items()])
    v = DelayViewer(net, history=lambda: hist, plot_mode="output")  # static plots: fast; bokeh below
    assert list(v.layer.options) == ["0", "2"]
    assert np.array_equal(v.matrix.dimension_values("delay", flat=False), layers["0"].delays.numpy())
    assert int(v.histogram_plot.object.dimension_values("synapses").sum()) == 20
    v.layer.value = "2"
    assert np.array_equal(v.matrix.dimension_values("delay", flat=False), layers["2"].delays.numpy())
    v.synapses.value = "0-1, 2-3"
    assert sorted(v.kernel_plot.object.keys()) == ["0-1", "2-3"]
    evo = v.evolution_plot.object
    assert isinstance(evo, hv.Layout) and any("0-1" in str(e.label) for e in evo[0])
    v.synapses.value = "9-9"
    assert "outside" in v.message.value
    assert all(isinstance(p.object, hv.Div) and "outside" in p.object.data for p in (v.kernel_plot, v.evolution_plot))
    v.synapses.value = ""
    v.tap.event(x=3.0, y=1.0)  # click on input 3, output 1
    assert v.synapses.value == "1-3" and sorted(v.kernel_plot.object.keys()) == ["1-3"]
    with torch.no_grad():  # training moved the delays: Refresh redraws
        layers["2"].positions.fill_(2.0)
    v.refresh_button.click()
    assert (v.matrix.dimension_values("delay", flat=False) == 2).all()
    only_first = DelayViewer(net, history=hist[hist["layer"] == "0"], plot_mode="output")
    only_first.layer.value = "2"  # no rows for this layer: not the other layer's evolution
    assert "no delay history" in str(only_first.evolution_plot.object.data)
    single = DelayViewer(layers["0"])  # live Bokeh plots render too
    assert single.matrix_plot.view.mode == "bokeh"
    assert list(single.layer.options) == ["delays"] and "no delay history" in str(single.evolution_plot.object.data)
    with pytest.raises(ValueError, match="DelayedLinear"):
        DelayViewer(sl.Sequential(torch.nn.Linear(2, 2), sl.LIF()))


# ---------------------------------------------------------------------------------------------- trade-offs
def test_tradeoff_explorer_axes_colour_front_and_refresh(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    rows = [(1e-3, 0.80, 100.0, 1e3), (1e-2, 0.90, 300.0, 2e3), (1e-1, 0.70, 200.0, 5e2)]
    for lr, acc, spk, syn in rows:
        rid = store.create_run(ExperimentConfig(lr=lr).to_dict(), name=f"lr{lr}")
        store.set_summary(rid, {"accuracy": acc, "spikes_per_sample": spk, "synops_per_sample": syn,
                                "robustness_noise": acc - 0.1})
    ex = TradeoffExplorer(store, color="lr", plot_mode="output")
    assert ex.x.value == "spikes_per_sample" and ex.y.value == "accuracy" and ex.color.value == "config.lr"
    assert set(ex.x.options) >= {"accuracy", "spikes_per_sample", "synops_per_sample", "robustness_noise"}
    sc = ex.scatter
    assert sc.dimension_values("spikes_per_sample").tolist() == [100.0, 300.0, 200.0]
    assert ex.front["spikes_per_sample"].tolist() == [100.0, 300.0]
    front_curve = ex.plot.object.Curve.Pareto_front
    assert front_curve.dimension_values("accuracy").tolist() == [0.8, 0.9]
    ex.x.value = "synops_per_sample"
    assert ex.scatter.kdims[0].name == "synops_per_sample"
    assert ex.scatter.dimension_values("synops_per_sample").tolist() == [1e3, 2e3, 5e2]
    assert sorted(ex.front["synops_per_sample"].tolist()) == [5e2, 1e3, 2e3]
    ex.y.value = "robustness_noise"
    assert np.allclose(ex.scatter.dimension_values("robustness_noise"), [0.7, 0.8, 0.6])
    ex.show_front.value = False
    assert len(ex.plot.object) == 1
    rid = store.create_run(ExperimentConfig(lr=0.5).to_dict(), name="new")
    store.set_summary(rid, {"accuracy": 0.95, "spikes_per_sample": 50.0, "synops_per_sample": 100.0,
                            "robustness_noise": 0.9})
    ex.refresh_button.click()
    assert len(ex.scatter) == 4 and ex.x.value == "synops_per_sample" and ex.front.index.tolist() == [3]


def test_tradeoff_explorer_from_dataframe_and_empty():
    df = pd.DataFrame({"name": ["a", "b"], "config.neuron": ["ttfs", "noisy"], "accuracy": [0.8, 0.9],
                       "energy_per_sample_j": [1e-6, 3e-6], "latency_steps": [5.0, 3.0]})
    ex = TradeoffExplorer(df, x="latency_steps", color="neuron")
    assert ex.x.value == "latency_steps" and ex.color.value == "config.neuron"
    assert ex.scatter.dimension_values("latency_steps").tolist() == [5.0, 3.0]
    assert ex.front.index.tolist() == [1]  # b: faster and more accurate
    empty = TradeoffExplorer(pd.DataFrame())
    assert empty.plot.object is None and "no runs" in empty.message.value


def test_tradeoff_explorer_maximises_robustness_and_asks_for_unknown_directions():
    # the reviewer's p10: robustness on x was minimised (front: the 0.5 row)
    df = pd.DataFrame({"robust_accuracy_deletion_0.3": [0.5, 0.8, 0.6], "spikes_per_sample": [10.0, 20.0, 30.0],
                       "accuracy": [0.9, 0.9, 0.9], "score": [3.0, 1.0, 2.0]})
    ex = TradeoffExplorer(df, x="robust_accuracy_deletion_0.3", y="accuracy", plot_mode="output")
    assert ex.front["robust_accuracy_deletion_0.3"].tolist() == [0.8]
    assert "higher robust_accuracy_deletion_0.3" in ex.message.value
    # a column whose name does not tell: offered when asked for, no silent guess, no front until chosen
    ex = TradeoffExplorer(df, x="score", y="accuracy", plot_mode="output")
    assert ex.x.value == "score" and ex.direction("x") is None
    assert ex.front.empty and ex.scatter is not None and len(ex.plot.object) == 1
    assert "no Pareto front" in ex.message.value and "x better" in ex.message.value
    ex.x_better.value = "min"   # lower score better, higher accuracy better (all tie): the 1.0 row
    assert ex.front["score"].tolist() == [1.0] and "lower score" in ex.message.value
    ex.x_better.value = "max"
    assert ex.front["score"].tolist() == [3.0]
    ex.x.value = "spikes_per_sample"   # another column: back to its name's direction (lower spikes)
    assert ex.x_better.value == "auto" and ex.front["spikes_per_sample"].tolist() == [10.0]
    # the user's choice overrides the name's direction, also given to the constructor
    ex = TradeoffExplorer(df, x="spikes_per_sample", y="accuracy", maximize_x=True, plot_mode="output")
    assert ex.x_better.value == "max" and ex.front["spikes_per_sample"].tolist() == [30.0]


def test_holoviews_widget_modes():
    w = HoloViewsWidget(hv.Curve([1, 2]), mode="bokeh")
    assert type(w.widget).__name__ == "BokehModel"
    w.object = hv.Curve([3, 4])
    assert w.object.dimension_values(1).tolist() == [3.0, 4.0]
    o = HoloViewsWidget(None, mode="output")
    assert type(o.widget).__name__ == "Output" and o.object is None
    with pytest.raises(ValueError):
        HoloViewsWidget(None, mode="nope")


# ---------------------------------------------------------------- notebook set-up (offline plots)


def test_notebook_setup_embeds_javascript_when_offline(monkeypatch):
    import socket

    import holoviews as hv

    from snnlab.widgets import notebook
    from snnlab.widgets.notebook import cdn_reachable, notebook_setup

    calls = []
    monkeypatch.setattr(hv, "extension", lambda *a, **k: calls.append((a, k)))
    monkeypatch.delenv("SNNLAB_OFFLINE", raising=False)
    for reachable, expected in ((True, False), (False, True)):
        monkeypatch.setattr(notebook, "cdn_reachable", lambda reachable=reachable: reachable)
        assert notebook_setup() is expected
        assert calls[-1] == (("bokeh",), {"inline": expected})
    monkeypatch.setattr(notebook, "cdn_reachable", lambda: True)
    monkeypatch.setenv("SNNLAB_OFFLINE", "1")
    assert notebook_setup() is True  # forced, whatever the network says
    assert notebook_setup(inline=False) is False and calls[-1][1] == {"inline": False}
    # the probe itself: a listening local socket is reachable, a closed port is not
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        port = srv.getsockname()[1]
        assert cdn_reachable(("127.0.0.1", port), timeout=2.0)
    assert not cdn_reachable(("127.0.0.1", port), timeout=2.0)


def test_config_form_keeps_integers_past_two_to_the_53():
    form = ConfigForm()
    form.set_config(ExperimentConfig(seed=2**60 + 1))
    assert form.config().seed == 2**60 + 1
    form.widgets["seed"].value = "12"
    assert form.config().seed == 12
    form.widgets["seed"].value = "twelve"
    assert form.config() is None and "seed: expected an integer" in form.error
    assert form.widgets["seed"].placeholder == f"an integer in [0, {2**63 - 1}]"


# ------------------------------------------------------------- plots before display, taps, history names, form
def _bundle(hvw) -> str:
    """The state a jupyter_bokeh widget's first view is drawn from (later changes travel as patches)."""
    import json

    return json.dumps(hvw.widget.render_bundle)


def test_plots_set_before_display_are_in_the_widgets_initial_state():
    # HoloViewsWidget(None) then .object = plot, all before display: the view showed "nothing to show yet"
    df = pd.DataFrame({"name": list("abc"), "accuracy": [0.8, 0.9, 0.7], "spikes_per_sample": [100.0, 300.0, 200.0]})
    ex = TradeoffExplorer(df, plot_mode="bokeh")
    state = _bundle(ex.plot)
    assert "nothing to show yet" not in state and '"Scatter"' in state and "Pareto front" in state
    net = sl.Sequential(sl.DelayedLinear(5, 4, max_delay=6, seed=0), sl.LIF())
    v = DelayViewer(net, plot_mode="bokeh")
    assert "click: add synapse" in _bundle(v.matrix_plot.view)  # a LivePlot update sent through its pipe
    assert "delay histogram of 0" in _bundle(v.histogram_plot)
    assert "no delay history" in _bundle(v.evolution_plot)
    # a stream sending from elsewhere (e.g. a training thread) reaches the initial state soon after
    v.matrix_plot.pipe.send(v.matrix.opts(title="sent from outside", backend="bokeh"))
    assert _wait(lambda: "sent from outside" in _bundle(v.matrix_plot.view), timeout=10)
    # once a view shows it, changes go as patches: the initial state is left alone (no full re-render)
    ex.plot.widget._view_count = 1
    ex.y.value = "spikes_per_sample"
    ex.x.value = "accuracy"
    assert _bundle(ex.plot) == state


def _subscribes_tap(hvw) -> bool:
    from bokeh.models import Plot

    return any("tap" in p.subscribed_events for p in hvw.widget._model.select({"type": Plot}))


def test_tap_streams_are_wired_into_the_rendered_plots(net_and_batch):
    # a Tap attached after the first render never fired in the browser (the plot did not send taps)
    net, batch = net_and_batch
    ex = RasterExplorer(net, batch, plot_mode="bokeh")
    assert _subscribes_tap(ex.raster_plot.view)
    v = DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0), plot_mode="bokeh")
    assert _subscribes_tap(v.matrix_plot.view)
    # a new DynamicMap (points -> image) gets its Tap before it is rendered too
    from snnlab.widgets._hv import LivePlot

    taps = []
    live = LivePlot(hv.Points([(0, 1)]), mode="bokeh",
                    on_new_dmap=[lambda dm: taps.append(hv.streams.Tap(source=dm, x=None, y=None))])
    live.update(hv.Image(np.eye(3)))
    assert len(taps) == 2 and taps[-1].source is live.dmap and _subscribes_tap(live.view)


def test_delay_viewer_finds_history_recorded_under_layer_labels():
    # notebook 04 records "layer 0" / "layer 2"; the viewer's layers are the module names "0" / "2"
    net = sl.Sequential(sl.DelayedLinear(5, 4, max_delay=6, seed=0), sl.LIF(), sl.DelayedLinear(4, 3, max_delay=6, seed=1),
                        sl.LIF())
    layers = {n: m for n, m in net.named_modules() if isinstance(m, sl.DelayedLinear)}
    hist = pd.concat([sl.viz.delay_snapshot(m, step=s, name=f"layer {n}") for s in range(3) for n, m in layers.items()])
    v = DelayViewer(net, history=hist, plot_mode="output")
    assert isinstance(v.evolution_plot.object, hv.Layout)
    assert {str(c.label) for c in v.evolution_plot.object[0]} >= {"layer 0 mean"}
    v.layer.value = "2"
    assert {str(c.label) for c in v.evolution_plot.object[0]} >= {"layer 2 mean"}


@pytest.mark.parametrize("field, text, words", [("epochs", "0", "at least 1"), ("epochs", "-3", "at least 1"),
                                                ("epochs", "2.5", "expected an integer"),
                                                ("lr", "-1", "greater than 0"), ("lr", "fast", "expected a number"),
                                                ("mask_p", "1.5", "less than 1.0")])
def test_config_form_refuses_out_of_range_numbers_instead_of_changing_them(field, text, words):
    form = config_form(cfg=ExperimentConfig(**TINY))
    form.widgets[field].value = text
    assert form.config() is None and field in form.error and words in form.error
    assert "Invalid settings" in form.message.value
    assert form.widgets[field].value == text  # nothing clamped or rounded behind the user's back
    form.widgets[field].value = "3" if field == "epochs" else "0.5"
    assert form.config() is not None and form.error is None


def test_config_form_labels_and_placeholders_are_readable():
    form = config_form()
    assert max(map(len, form.widgets)) >= len("max_batches_per_epoch")
    # ipywidgets cuts a label at its description width: ~8 px per character of the default font
    for name, widget in form.widgets.items():
        assert int(widget.style.description_width.rstrip("px")) >= 8 * len(name), name
    assert form.widgets["max_batches_per_epoch"].placeholder == "an integer >= 1, or blank for none"
    assert "None" not in form.widgets["data_root"].placeholder
    form.widgets["max_delay"].value = 5  # a number assigned from Python is kept as its text
    assert form.widgets["max_delay"].value == "5" and form.config().max_delay == 5


def test_tradeoff_explorer_colours_by_any_column_asked_for_by_name():
    df = pd.DataFrame({"model": ["p=0", "p=0.2"], "mask_p": [0.0, 0.2], "config.lr": [1e-3, 1e-2],
                       "accuracy": [0.8, 0.9], "energy_per_sample_j": [1e-6, 2e-6]})
    ex = TradeoffExplorer(df, color="mask_p", plot_mode="output")
    assert ex.color.value == "mask_p" and "mask_p" in ex.color.options
    assert ex.scatter is not None and "mask_p" in [d.name for d in ex.scatter.vdims]
    ex.refresh()
    assert ex.color.value == "mask_p"  # kept on refresh
    assert TradeoffExplorer(df, color="lr", plot_mode="output").color.value == "config.lr"
    missing = TradeoffExplorer(df, color="nope", plot_mode="output")
    assert missing.color.value == "(none)" and "no column &#x27;nope&#x27;" in missing.message.value


def test_trainer_widget_with_a_run_dir_starts_twice_each_run_in_its_own_folder(tmp_path):
    """Trainer refuses a run_dir holding another run's checkpoint: every Start gets run_dir/<id>."""
    tw = TrainerWidget(ExperimentConfig(**TINY), run_dir=tmp_path / "runs", poll_interval=None)
    folders = []
    for _ in range(2):
        tw.start_button.click()
        assert tw.session is not None and tw.session.wait(120), tw.status.value
        tw.refresh()
        assert tw.state == "finished", tw.status.value
        folders.append(tw.session.trainer.checkpoint_path.parent)
    assert folders[0] != folders[1] and all(f.parent == tmp_path / "runs" for f in folders)
    assert all((f / "checkpoint.pt").exists() for f in folders)
    tw.close()


def test_a_pre_display_sync_that_keeps_failing_gives_up_and_keeps_the_error(monkeypatch):
    from snnlab.widgets._hv import HoloViewsWidget

    w = HoloViewsWidget(hv.Curve([1, 2, 3]), mode="bokeh")
    calls = []

    def fail():
        calls.append(1)
        raise RuntimeError("boom")

    monkeypatch.setattr(w, "sync", fail)
    monkeypatch.setattr(w, "_schedule_sync", lambda delay=0.2: w._sync_from_timer())  # retry at once
    w._sync_from_timer()
    assert len(calls) == HoloViewsWidget.MAX_SYNC_RETRIES and w.sync_error == "RuntimeError: boom"


def test_raster_explorer_draws_an_adaptive_threshold_for_the_chosen_sample():
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(3, 5), sl.ALIF(adaptation=0.4, tau_adapt=20.0), torch.nn.Linear(5, 2), sl.LI())
    x = torch.rand(25, 4, 3) * 3
    ex = RasterExplorer(net, x)
    ex.sample.value = 2
    busiest = int(ex.spikes["1"][:, 2].sum(0).argmax())
    ex.neuron.value = busiest
    threshold = ex.trace_plot.object.get(1)  # traces, the moving threshold of the one neuron shown, spikes
    want = ex.thresholds["1"][:, 2, busiest].numpy()
    assert threshold.label == "threshold" and set(threshold.dimension_values("threshold of")) == {busiest}
    assert want.max() > 1.0
    np.testing.assert_allclose(threshold.dimension_values("v"), want, rtol=1e-6)
