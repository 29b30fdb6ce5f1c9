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

from snnlab.viz import PipedPlot
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
    """A plot that is redrawn in place: a :class:`~snnlab.viz.PipedPlot` shown in a :class:`HoloViewsWidget`.

    ``update(element)`` stores the element in ``.element`` and sends it through the pipe, so the Bokeh
    plot keeps its identity (and e.g. a ``Tap`` stream attached with ``source=live.dmap`` keeps working).
    An element of another structure (an ``hv.Image`` after ``hv.Points``) gets a new ``DynamicMap`` in the
    same slot; ``on_new_dmap`` callbacks are then called with it (to attach streams such as a ``Tap``
    again). In ``"output"`` mode the element is simply re-displayed.
    """

    def __init__(self, element: Any, mode: str = "auto") -> None:
        self.on_new_dmap: list[Any] = []
        self._piped = PipedPlot(element)
        self.view = HoloViewsWidget(self.dmap, mode=mode)
        if self.view.mode == "output":  # a static output cannot follow the pipe: show the element itself
            self.view.object = element
        self.widget = self.view.widget

    @property
    def element(self) -> Any:
        """The element shown now."""
        return self._piped.element

    @property
    def dmap(self) -> hv.DynamicMap:
        return self._piped.dmap

    @property
    def pipe(self) -> hv.streams.Pipe:
        return self._piped.pipe

    def update(self, element: Any) -> None:
        """Show ``element`` (kept in ``.element``)."""
        replaced = self._piped.update(element)
        if self.view.mode == "output":
            self.view.object = element
        elif replaced:
            self.view.object = self.dmap
            for callback in self.on_new_dmap:
                callback(self.dmap)
