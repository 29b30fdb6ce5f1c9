"""Show a HoloViews object inside an ipywidgets layout, and replace it later (also from a thread).

:class:`HoloViewsWidget` keeps the current HoloViews object in ``.object`` (what the tests look at)
and shows it in ``.widget``, an ipywidget, in one of two ways:

* ``"bokeh"`` (default when ``jupyter_bokeh`` is installed): a Panel ``HoloViews`` pane wrapped with
  :func:`panel.ipywidget` (a ``jupyter_bokeh.BokehModel``). The Bokeh plot is a live widget: stream
  updates (a :class:`~snnlab.viz.LiveCurves` buffer, a ``Pipe``) patch its data in place, and
  HoloViews streams that come *from* the browser (``Tap``, ``Selection1D``) reach Python. Setting
  ``.object`` swaps the plot in place.
* ``"output"`` (fallback): an ``ipywidgets.Output`` that is cleared and re-displayed on every change
  (``append_display_data``, thread-safe per ipywidgets). Static snapshots only -- no browser-to-Python
  streams -- and the notebook must have loaded ``hv.extension("bokeh")``.

Example:
    >>> import holoviews as hv
    >>> w = HoloViewsWidget(hv.Curve([1, 2, 3]))
    >>> w.object = hv.Curve([3, 2, 1]); w.object.dimension_values(1).tolist()
    [3, 2, 1]
"""
from __future__ import annotations

import importlib.util
import threading
from typing import Any

import holoviews as hv
import ipywidgets as W

from snnlab.viz._util import ensure_bokeh

__all__ = ["HoloViewsWidget", "LivePlot", "default_mode"]


def default_mode() -> str:
    """``"bokeh"`` when ``jupyter_bokeh`` (needed by :func:`panel.ipywidget`) is importable, else ``"output"``."""
    return "bokeh" if importlib.util.find_spec("jupyter_bokeh") is not None else "output"


class HoloViewsWidget:
    """A slot in an ipywidgets layout that shows one HoloViews object (see the module docstring).

    Args:
        obj: the initial object (``None``: an empty placeholder).
        mode: ``"bokeh"``, ``"output"`` or ``"auto"`` (:func:`default_mode`).
    """

    def __init__(self, obj: Any = None, mode: str = "auto") -> None:
        if mode == "auto":
            mode = default_mode()
        if mode not in ("bokeh", "output"):
            raise ValueError(f"HoloViewsWidget: mode must be 'auto', 'bokeh' or 'output', got {mode!r}")
        ensure_bokeh()
        self.mode = mode
        self._lock = threading.RLock()
        self._object = obj
        if mode == "bokeh":
            import panel as pn

            self._pane = pn.pane.HoloViews(self._placeholder(obj), backend="bokeh")
            self.widget: W.Widget = pn.ipywidget(self._pane)
        else:
            self._pane = None
            self.widget = W.Output()
            self._show(obj)

    @staticmethod
    def _placeholder(obj: Any) -> Any:
        return obj if obj is not None else hv.Div("<i>nothing to show yet</i>")

    def _show(self, obj: Any) -> None:
        if self._pane is not None:
            new = self._placeholder(obj)
            if self._pane.object is new:  # the same object again: re-render it (e.g. a DynamicMap with new keys)
                self._pane.param.trigger("object")
            else:
                self._pane.object = new
        else:
            self.widget.clear_output(wait=True)
            if obj is not None:
                self.widget.append_display_data(obj)

    @property
    def object(self) -> Any:
        """The HoloViews object shown now; assign to replace it."""
        return self._object

    @object.setter
    def object(self, obj: Any) -> None:
        with self._lock:
            self._object = obj
            self._show(obj)


class LivePlot:
    """A plot that is redrawn in place: a ``DynamicMap`` fed by a ``Pipe``, shown in a :class:`HoloViewsWidget`.

    ``update(element)`` stores the element in ``.element`` and sends it through the pipe, so the Bokeh
    plot keeps its identity (and e.g. a ``Tap`` stream attached with ``source=live.dmap`` keeps working).
    A ``DynamicMap`` holds one element type, so an element of another type (an ``hv.Image`` after
    ``hv.Points``) gets a new pipe and ``DynamicMap`` in the same slot; ``on_new_dmap`` callbacks are then
    called with the new ``dmap`` (to attach streams such as a ``Tap`` again). ``framewise`` is on so axis
    ranges follow the data. In ``"output"`` mode the element is simply re-displayed.
    """

    def __init__(self, element: Any, mode: str = "auto") -> None:
        ensure_bokeh()
        self.element = element
        self.on_new_dmap: list[Any] = []
        self._new_dmap(element)
        self.view = HoloViewsWidget(self.dmap, mode=mode)
        if self.view.mode == "output":  # a static output cannot follow the pipe: show the element itself
            self.view.object = element
        self.widget = self.view.widget

    def _new_dmap(self, element: Any) -> None:
        self.pipe = hv.streams.Pipe(data=element)
        self.dmap = hv.DynamicMap(lambda data: data.opts(framewise=True, backend="bokeh"), streams=[self.pipe])

    def update(self, element: Any) -> None:
        """Show ``element`` (kept in ``.element``)."""
        same_type = type(element) is type(self.element)
        self.element = element
        if self.view.mode == "output":
            self.view.object = element
        elif same_type:
            self.pipe.send(element)
        else:
            self._new_dmap(element)
            self.view.object = self.dmap
            for callback in self.on_new_dmap:
                callback(self.dmap)
