"""A bokeh-mode HoloViewsWidget that is never closed and is shown, hidden and shown again (a notebook output cleared
and the cell run again): Panel renders a new root each time; the earlier ones have no view left and must go then
(before the fix each stayed in ``pn.state._views`` with its whole Bokeh plot until ``close()``). A widget shown in
two outputs at once shows one root and keeps it."""
import gc

import holoviews as hv
import panel as pn
from bokeh.document import Document
from bokeh.model import Model

from snnlab.widgets import HoloViewsWidget


def _bokeh_models() -> int:
    return sum(issubclass(type(o), Model) for o in gc.get_objects())


def _show(slot: HoloViewsWidget, *counts: int) -> None:
    """What Jupyter does to the slot's widget: views opened (1, 2: a second output) and closed (0)."""
    for n in counts:
        slot.widget._view_count = n


def _own_refs(slot: HoloViewsWidget) -> set[str]:
    return {ref for ref, (view, *_rest) in pn.state._views.items() if view is slot._pane or view is slot._pane.layout}


def _ys(slot: HoloViewsWidget) -> list[list[float]]:
    """The y columns of the plot the widget shows now (its current document)."""
    return [list(m.data["y"]) for m in slot.widget._document.models
            if type(m).__name__ == "ColumnDataSource" and "y" in m.data]


def _piped_slot() -> tuple[HoloViewsWidget, hv.streams.Pipe]:
    pipe = hv.streams.Pipe(data=[(0, 0), (1, 1)])
    return HoloViewsWidget(hv.DynamicMap(hv.Curve, streams=[pipe]), mode="bokeh"), pipe


def test_a_slot_shown_again_and_again_keeps_only_the_root_it_shows():
    other = HoloViewsWidget(hv.Scatter([(0, 1)]), mode="bokeh")  # another widget, shown: its view stays
    _show(other, 1)
    page = pn.pane.HTML("<b>a served page</b>")  # a root of another viewable (as a server session's): it stays
    page_ref = page.get_root(Document()).ref["id"]
    slot = HoloViewsWidget(hv.Curve([1, 2, 3]) * hv.Scatter([(0, 1), (1, 3)]), mode="bokeh")
    _show(slot, 1, 0, 1)  # caches (themes, option trees) fill on the first re-display
    gc.collect()
    views, models, start = set(pn.state._views), _bokeh_models(), slot.widget._model.ref["id"]  # (ids: no model kept)
    for _ in range(5):
        before = slot.widget._model
        _show(slot, 0, 1)  # hidden, shown again: a new root
        assert slot.widget._model is not before and before.document is None  # the old plot left its document
        assert _own_refs(slot) == {slot.widget._model.ref["id"]} == slot._root_refs
    del before
    gc.collect()
    assert set(pn.state._views) == views - {start} | {slot.widget._model.ref["id"]}
    assert len(pn.state._views) == len(views)  # before the fix: one more entry, and its whole plot, per re-display
    assert _bokeh_models() == models
    assert page_ref in pn.state._views and _own_refs(other) and other.widget._model.document is not None
    slot.close()
    assert not _own_refs(slot) and page_ref in pn.state._views and _own_refs(other)
    pn.state._views.pop(page_ref)
    other.close()


def test_a_slot_shown_again_still_updates_in_place_and_sends_no_patch_for_the_dropped_roots():
    slot, pipe = _piped_slot()
    _show(slot, 1, 0)
    old = slot.widget._model.ref["id"]
    sent = []
    slot.widget.send = lambda msg, buffers=None: sent.append(str(msg))  # the patches to the views in the browser
    _show(slot, 1)  # shown again: the earlier root is dropped without telling the browser (it shows the new one)
    assert old not in slot._root_refs and not [m for m in sent if "RootRemoved" in m or old in m]
    sent.clear()
    pipe.send([(0, 5), (1, 6), (2, 7)])
    assert _ys(slot) == [[5, 6, 7]] and sent  # the new root is patched in place
    slot.close()


def test_a_slot_in_two_outputs_keeps_its_root_and_updates():
    slot, pipe = _piped_slot()
    _show(slot, 1, 2)  # two outputs of one root
    root = slot.widget._model
    assert _own_refs(slot) == {root.ref["id"]} and root.document is slot.widget._document
    sent = []
    slot.widget.send = lambda msg, buffers=None: sent.append(msg)
    pipe.send([(0, 3), (1, 4)])
    assert _ys(slot) == [[3, 4]] and sent
    _show(slot, 1, 2, 1)  # one output closed, another opened, closed again: still the same root
    assert slot.widget._model is root and _own_refs(slot) == {root.ref["id"]}
    _show(slot, 0, 1, 2)  # all closed, then shown in two outputs again: one new root for both
    assert slot.widget._model is not root and root.document is None
    assert _own_refs(slot) == {slot.widget._model.ref["id"]}
    pipe.send([(0, 8), (1, 9)])
    assert _ys(slot) == [[8, 9]]
    slot.close()
    assert not _own_refs(slot)


def test_views_the_browser_reports_through_the_comm_drop_the_old_roots_of_a_trainer_widget_plot():
    """The browser reports views in comm messages (``_view_count`` in an update), which the trainer widget handles
    under its render lock: the same drop as when the count is set in Python, and the new root still updates."""
    from snnlab.widgets import TrainerWidget

    tw = TrainerWidget({"hidden": [8]}, poll_interval=None, plot_mode="bokeh", stop_others=False)
    slot = tw.curve_views[0]

    def views(n: int) -> None:
        slot.widget.comm.handle_msg({"content": {"data": {"method": "update", "state": {"_view_count": n}}},
                                     "buffers": []})

    views(1)
    first = slot.widget._model.ref["id"]
    views(0)
    views(1)
    assert slot.widget._view_count == 1 and slot.widget._model.ref["id"] != first
    assert first not in pn.state._views and _own_refs(slot) == {slot.widget._model.ref["id"]} == slot._root_refs
    tw.curves.send(1, {"loss": 0.25})
    values = [v for m in slot.widget._document.models if type(m).__name__ == "ColumnDataSource"
              for v in m.data.get("value", [])]
    assert values == [0.25]  # the root shown now is updated in place
    tw.close()
    assert not _own_refs(slot)
