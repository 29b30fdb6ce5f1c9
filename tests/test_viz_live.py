"""Live plots shown again: a LiveCurves (or PipedPlot) drawn once and drawn again after data arrived (a notebook cell
run again, a second output, a new Panel page) must show the data, not the frame cached when it was first shown."""
from __future__ import annotations

import holoviews as hv
import numpy as np
import pandas as pd
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource
from bokeh.plotting import figure

import snnlab.viz.curves as curves
from snnlab.viz import LiveCurves, PipedPlot
from snnlab.viz.piped import live_dmap


def render(obj):
    return hv.render(obj, backend="bokeh")


def drawn_values(model) -> list[float]:
    """Every ``value`` drawn by the Bokeh figures under ``model`` (lines and markers; batched lines hold arrays)."""
    out: list[float] = []
    for source in model.references():
        if isinstance(source, ColumnDataSource) and "value" in source.data:
            for v in source.data["value"]:
                out.extend(np.ravel(np.asarray(v, dtype=float)).tolist())
    return sorted(out)


def titles(model) -> list[str]:
    return sorted(f.title.text for f in model.references() if isinstance(f, figure))


SHAPES = {
    "one overlay": dict(metrics=["loss", "accuracy"]),
    "without metrics": dict(),
    "panels": dict(groups={"loss": ["loss", "test_loss"], "accuracy": ["accuracy"]}),
}
EXPECTED_TITLES = {"one overlay": [""], "without metrics": [""], "panels": ["accuracy", "loss"]}


def send_rows(live: LiveCurves) -> None:
    live.send(1, {"loss": 0.9, "accuracy": 0.25})
    live.send_many([(2, {"loss": 0.7, "accuracy": 0.5}), (3, {"loss": 0.6})])


@pytest.mark.parametrize("shape", SHAPES)
def test_live_curves_drawn_again_show_the_rows_sent_since_the_first_draw(shape):
    live = LiveCurves(**SHAPES[shape])
    first = render(live.plot)
    assert all("no data yet" in t for t in titles(first)) and drawn_values(first) == []
    send_rows(live)
    second = render(live.plot)  # before the fix: the cached empty frame, titled "no data yet"
    assert drawn_values(second) == [0.25, 0.5, 0.6, 0.7, 0.9]
    assert titles(second) == EXPECTED_TITLES[shape]
    assert drawn_values(first) == drawn_values(second) and titles(first) == titles(second)  # updated in place
    live.send(4, {"loss": 0.5})  # both figures stream the next rows in place
    assert drawn_values(first) == drawn_values(second) == [0.25, 0.5, 0.5, 0.6, 0.7, 0.9]


def test_each_panel_of_live_curves_drawn_again_on_its_own_shows_its_rows():
    live = LiveCurves(groups={"loss": ["loss", "test_loss"], "accuracy": ["accuracy"]})
    render(live.plot)
    send_rows(live)
    loss, accuracy = render(live.plots["loss"]), render(live.plots["accuracy"])
    assert (loss.title.text, drawn_values(loss)) == ("loss", [0.6, 0.7, 0.9])
    assert (accuracy.title.text, drawn_values(accuracy)) == ("accuracy", [0.25, 0.5])


def test_live_curves_drawn_again_after_clear_say_no_data_yet():
    live = LiveCurves(metrics=["loss"])
    render(live.plot)
    live.send(1, {"loss": 0.5})
    assert drawn_values(render(live.plot)) == [0.5]
    live.clear()
    again = render(live.plot)
    assert (titles(again), drawn_values(again)) == (["no data yet"], [])
    live.replace_table(pd.DataFrame({"step": [7.0], "name": ["loss"], "value": [0.3]}))  # a new run
    assert drawn_values(render(live.plot)) == [0.3]


@pytest.mark.parametrize("shape", ["one overlay", "panels"])
def test_live_curves_in_a_panel_pane_shown_again_show_the_rows(shape):
    pn = pytest.importorskip("panel")
    live = LiveCurves(**SHAPES[shape])
    pane = pn.pane.HoloViews(live.plot, backend="bokeh")
    first = pane.get_root(Document())
    send_rows(live)
    second = pane.get_root(Document())  # the same pane in a second output / a new page
    other = pn.pane.HoloViews(live.plot, backend="bokeh").get_root(Document())
    for model in (first, second, other):
        assert drawn_values(model) == [0.25, 0.5, 0.6, 0.7, 0.9]
        assert titles(model) == EXPECTED_TITLES[shape]


def test_showing_live_curves_again_costs_one_draw_per_panel_and_sends_no_more_than_before(monkeypatch):
    draws = []
    real = curves.series_overlay
    monkeypatch.setattr(curves, "series_overlay", lambda *a, **k: draws.append(1) or real(*a, **k))
    live = LiveCurves(groups={"loss": ["loss"], "accuracy": ["accuracy"]})
    live.send(0, {"loss": 1.0})
    assert len(draws) == 0  # nothing shown: nothing drawn
    render(live.plot)
    assert len(draws) == 2  # one draw per panel
    for step in range(1, 5):
        live.send(step, {"loss": 1.0 / step})
    assert len(draws) == 2 + 4 * 2  # the shown plot redraws each panel once per send, as before
    render(live.plot)
    assert len(draws) == 10 + 2  # shown again: each panel drawn once, from the buffer
    live.send(5, {"accuracy": 0.5})
    assert len(draws) == 12 + 2 * 2  # two plots shown: each redraws each panel
    render(live.plot)
    render(live.plot)
    assert len(draws) == 16 + 2  # shown twice more after that send: drawn once, then the fresh frame is reused


def test_piped_overlay_drawn_again_shows_the_latest_element():
    def frame(k):
        return (hv.Curve(np.arange(4) * k, vdims="value") * hv.HLine(1.0)).opts(title=f"x{k}", backend="bokeh")

    live = PipedPlot(frame(1))
    first = render(live.dmap)
    assert live.update(frame(10)) is False
    second = render(live.dmap)  # before the fix: the first element, titled "x1"
    assert second.title.text == first.title.text == "x10"
    assert drawn_values(second) == drawn_values(first) == [0.0, 10.0, 20.0, 30.0]


def test_live_dmap_redraws_a_stale_frame_once_and_retries_after_a_drawing_error():
    calls = []

    def draw(data):
        calls.append(data)
        if data == "bad":
            raise ValueError("bad data")
        return hv.Curve(data)

    def shown_once(obj) -> list[float]:
        """The y values of a new plot of ``obj``, closed again (a plot left open redraws on every send)."""
        plot = hv.renderer("bokeh").get_plot(obj)
        try:
            return [float(v) for r in plot.state.renderers for v in r.data_source.data["y"]]
        finally:
            plot.cleanup()

    pipe = hv.streams.Pipe(data=[1, 2])
    dmap = live_dmap(draw, [pipe])
    assert isinstance(dmap, hv.DynamicMap) and len(dmap) == 0 and calls == []
    assert shown_once(dmap) == [1.0, 2.0] and len(calls) == 1 and len(dmap) == 1  # the first frame, cached
    assert shown_once(dmap) == [1.0, 2.0] and len(calls) == 1  # shown again: the cached frame, not drawn again
    pipe.send("bad")  # (nothing shown: nothing drawn)
    assert len(calls) == 1
    with pytest.raises(Exception, match="bad data"):
        shown_once(dmap)
    with pytest.raises(Exception, match="bad data"):
        shown_once(dmap)  # still nothing cached: tried again
    pipe.send([5, 6, 7])
    assert shown_once(dmap) == [5.0, 6.0, 7.0]
    n = len(calls)
    assert shown_once(dmap) == [5.0, 6.0, 7.0] and len(calls) == n  # fresh: not drawn again
