"""Widgets given bad input, used out of order and closed: clear errors, no silent misreadings, nothing kept alive."""
import gc
import threading
import weakref

import holoviews as hv
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import snnlab as sl
from snnlab.training import ExperimentConfig
from snnlab.widgets import DelayViewer, RasterExplorer, TradeoffExplorer, TrainerWidget, config_form
from snnlab.widgets._lifecycle import registered_widgets

RUNS = pd.DataFrame({"name": list("abc"), "accuracy": [0.9, 0.9, 0.8], "spikes_per_sample": [100.0, 120.0, 50.0]})


def _net():
    return sl.Sequential(torch.nn.Linear(4, 8), sl.LIF())


# ---------------------------------------------------------------------------------------------- RasterExplorer
def test_raster_explorer_refuses_a_batch_major_loader_instead_of_swapping_time_and_batch():
    loader = DataLoader(TensorDataset(torch.rand(4, 10, 4), torch.arange(4)), batch_size=2)  # x: [B=2, T=10, F]
    with pytest.raises(ValueError, match=r"RasterExplorer: the labels have length 2 but the batch has 10 samples"
                                         r".*time-major \[T, B, \.\.\.\]"):
        RasterExplorer(_net(), loader)


def test_raster_explorer_refuses_labels_that_do_not_match_the_batch():
    with pytest.raises(ValueError, match="RasterExplorer: the labels have length 1 but the batch has 4 samples"):
        RasterExplorer(_net(), (torch.rand(10, 4, 4), torch.tensor([7])))
    ex = RasterExplorer(_net(), (torch.rand(10, 4, 4), [3, 1, 4, 1]))  # one label per sample: fine
    ex.sample.value = 2
    assert "(label 4)" in ex.info.value
    ex.close()


@pytest.mark.parametrize("shape, words", [((0, 2, 4), "no time steps"), ((5, 0, 4), "no samples")])
def test_raster_explorer_says_what_is_missing_in_an_empty_input(shape, words):
    with pytest.raises(ValueError, match=f"RasterExplorer: .*{words}"):
        RasterExplorer(_net(), torch.rand(*shape))


def test_raster_explorer_ignores_a_tap_outside_the_data():
    ex = RasterExplorer(_net(), torch.rand(10, 2, 4) * 3)
    ex.neuron.value = 3
    for y in (float("nan"), float("inf"), None):
        ex._on_tap(x=1.0, y=y)
        assert ex.neuron.value == 3
    ex._on_tap(x=1.0, y=5.2)
    assert ex.neuron.value == 5
    ex.close()


# ---------------------------------------------------------------------------------------------- close()
MAKERS = {
    "TrainerWidget": lambda: TrainerWidget(ExperimentConfig(dataset="digits", hidden=[16]), poll_interval=None,
                                           stop_others=False),
    "RasterExplorer": lambda: RasterExplorer(_net(), torch.rand(10, 2, 4)),
    "DelayViewer": lambda: DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0)),
    "TradeoffExplorer": lambda: TradeoffExplorer(RUNS),
    "ConfigForm": lambda: config_form(),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_close_releases_every_child_widget_and_the_widget_itself(name):
    make = MAKERS[name]
    make().close()  # the first one builds caches (Panel, HoloViews) that stay by design
    gc.collect()
    before = registered_widgets()
    refs = []
    for _ in range(2):  # a cell run again, its old widget closed
        w = make()
        assert registered_widgets() > before
        refs.append(weakref.ref(w))
        w.close()
        del w
    gc.collect()
    assert registered_widgets() == before
    assert all(r() is None for r in refs), f"a closed {name} is still referenced"


def test_holoviews_slot_close_is_idempotent_and_frees_the_bokeh_widget():
    from snnlab.widgets import HoloViewsWidget

    before = registered_widgets()
    slot = HoloViewsWidget(hv.Curve([1, 2, 3]))
    ref = weakref.ref(slot.widget)
    slot.close()
    slot.close()
    del slot
    gc.collect()
    assert registered_widgets() == before and ref() is None


# ---------------------------------------------------------------------------------------------- TrainerWidget
def test_trainer_widget_refuses_to_start_after_close():
    tw = TrainerWidget(ExperimentConfig(dataset="digits", hidden=[16], epochs=1, max_batches_per_epoch=1),
                       poll_interval=0.1, stop_others=False)
    tw.close()
    threads = {t.ident for t in threading.enumerate()}
    assert tw.start() is False
    assert tw.session is None and tw.state == "idle"
    assert "closed" in tw.status.value
    assert {t.ident for t in threading.enumerate()} <= threads  # no training or poll thread


class _EndedSession:
    """A session whose run has ended (what ``TrainerWidget`` reads of one)."""

    step, progress, error, last_eval, snapshot = 3, 1.0, None, None, None

    def __init__(self, state):
        from snnlab.viz import LiveCurves
        from snnlab.widgets.session import CURVE_GROUPS

        self.state, self.pause_calls = state, 0
        self.curves = LiveCurves(groups=CURVE_GROUPS)
        self.curves.send(1, {"loss": 0.5})

    def pause(self):
        self.pause_calls += 1

    def poll(self):
        return []

    def close(self):
        pass


@pytest.mark.parametrize("state", [None, "stopped", "finished", "paused"])
def test_trainer_widget_pause_without_a_running_run_leaves_the_status_and_buttons(state):
    tw = TrainerWidget(ExperimentConfig(dataset="digits", hidden=[16]), poll_interval=None, stop_others=False)
    if state is not None:
        tw.session = _EndedSession(state)
        tw.refresh()
    status = tw.status.value
    assert "error" not in status
    tw.pause()
    assert tw.status.value == status and "pausing" not in status
    assert tw.pause_button.disabled  # nothing to pause
    assert tw.resume_button.disabled == (state != "paused")
    if state is not None:
        assert tw.session.pause_calls == 0
    tw.close()


# ---------------------------------------------------------------------------------------------- DelayViewer
def test_delay_viewer_reports_a_failing_history_source_and_keeps_the_last_history():
    from snnlab.viz import delay_snapshot

    layer = sl.DelayedLinear(6, 3, max_delay=5, seed=0)
    good = pd.concat([delay_snapshot(layer, s, name="delays") for s in range(2)])

    def broken():
        raise RuntimeError("store locked")

    v = DelayViewer(layer, history=broken)  # no exception
    assert "could not read the delay history: RuntimeError: store locked" in v.message.value
    assert v.matrix is not None and v.history.empty

    source = {"fn": lambda: good}
    v = DelayViewer(layer, history=lambda: source["fn"]())
    assert v.message.value == "" and len(v.history) == len(good)
    source["fn"] = broken
    v.refresh_button.click()  # Refresh: no exception, the error shown, the last history kept
    assert "could not read the delay history" in v.message.value
    assert len(v.history) == len(good)
    v.synapses.value = "9-9"  # a bad synapse and the failed read are both shown
    assert "outside the 3 x 6 layer" in v.message.value and "could not read" in v.message.value
    source["fn"] = lambda: good
    v.synapses.value = ""
    v.refresh()
    assert v.message.value == ""
    v.close()


# ---------------------------------------------------------------------------------------------- TradeoffExplorer
def test_tradeoff_explorer_clears_the_plot_and_front_when_x_equals_y():
    ex = TradeoffExplorer(RUNS)
    assert len(ex.front) == 2 and ex.plot.object is not None
    ex.y.value = ex.x.value
    assert ex.front.empty and ex.plot.object is None
    assert "choose two different columns" in ex.message.value
    ex.y.value = "accuracy"  # back to two columns: drawn again
    assert len(ex.front) == 2 and ex.plot.object is not None
    ex.close()


def test_tradeoff_explorer_clears_the_plot_and_front_after_a_drawing_error(monkeypatch):
    import snnlab.widgets.tradeoff_explorer as te

    ex = TradeoffExplorer(RUNS)
    assert len(ex.front) == 2 and ex.plot.object is not None

    def broken(*args, **kwargs):
        raise RuntimeError("cannot draw")

    monkeypatch.setattr(te, "tradeoff_scatter", broken)
    ex.show_front.value = False
    assert ex.front.empty and ex.plot.object is None
    assert "cannot plot accuracy over spikes_per_sample: RuntimeError: cannot draw" in ex.message.value
    ex.close()


def test_tradeoff_explorer_with_one_metric_column_asks_for_two():
    ex = TradeoffExplorer(pd.DataFrame({"accuracy": [0.1, 0.2]}))
    assert ex.x.value == "accuracy" and ex.y.value is None
    assert ex.front.empty and ex.plot.object is None
    assert "need two numeric metric columns" in ex.message.value
    ex.close()
