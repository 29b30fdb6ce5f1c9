"""A plot that is redrawn in place: new elements go through a ``Pipe`` into one ``DynamicMap``.

Replacing a shown HoloViews object builds a new Bokeh figure each time, and the browser keeps every
old one (BokehJS registers a window listener per figure that is never removed): a plot refreshed every
few seconds grows the page without bound. Sending the new element through a ``Pipe`` updates the
figure's data sources, ranges and title instead. A ``DynamicMap`` holds one structure, so an element
of another structure (other element types, overlay keys or dimensions) starts a new ``DynamicMap``.

A plot shown again (a notebook cell run again, a second output, a new page) starts from the frame its
``DynamicMap`` cached when first shown: :func:`live_dmap` makes one that draws that frame afresh once its
streams have sent data.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import holoviews as hv

from ._util import ensure_bokeh

__all__ = ["PipedPlot", "LiveDynamicMap", "live_dmap", "structure"]


def structure(obj: Any) -> tuple:
    """What a ``DynamicMap`` must keep the same between frames: element types, keys and dimensions.

    Example:
        >>> structure(hv.Curve([1, 2])) == structure(hv.Curve([3, 4, 5]))
        True
        >>> structure(hv.Curve([1, 2])) == structure(hv.Scatter([1, 2]))
        False
    """
    if isinstance(obj, (hv.Overlay, hv.NdOverlay, hv.Layout, hv.NdLayout, hv.GridSpace, hv.HoloMap)):
        return (type(obj).__name__, tuple(obj.keys()), tuple(structure(v) for v in obj.values()))
    dims = tuple(d.name for d in getattr(obj, "kdims", [])), tuple(d.name for d in getattr(obj, "vdims", []))
    return (type(obj).__name__, *dims, getattr(obj, "group", None), getattr(obj, "label", None))


class LiveDynamicMap(hv.DynamicMap):
    """An ``hv.DynamicMap`` that, shown again after its streams sent data, shows that data (made by :func:`live_dmap`).

    HoloViews starts a new plot of a ``DynamicMap`` (a notebook cell run again, a second output, a new Panel page)
    from the frame the map cached when first shown, while a plot already showing redraws into a copy of the map
    (whenever its frames are overlays): that cached frame stayed the first one, so a live plot shown before its
    data and shown again later drew no data. Here a stream event only marks the cached frame stale (nothing is
    drawn), and the next look at the cache (HoloViews takes its length before it plots) draws it afresh, in the
    thread that plots: once per new plot, never per event. Copies made by HoloViews are not marked by any stream.

    Example:
        >>> pipe = hv.streams.Pipe(data=[1, 2])
        >>> dmap = live_dmap(lambda data: hv.Curve(data), [pipe])
        >>> isinstance(dmap, hv.DynamicMap), dmap.group
        (True, 'DynamicMap')
    """

    __pos_params = ["callback"]  # (as in hv.DynamicMap: HoloViews' clone() looks it up by the class's name)
    _stale = False

    def _mark_stale(self, **_contents: Any) -> None:
        """Stream subscriber: the cached frame no longer shows the streams' data."""
        self._stale = True

    def __len__(self) -> int:
        if self._stale and self.data:
            self._stale = False
            try:
                for key in list(self.data):  # (dimensionless streams: always drawn afresh, cached in its place)
                    self[key]
            except Exception:
                self._stale = True  # (the next plot tries again; this one raises as a first draw would)
                raise
        return super().__len__()


def live_dmap(callback: Callable[..., Any], streams: Sequence[hv.streams.Stream]) -> LiveDynamicMap:
    """A :class:`LiveDynamicMap` of ``callback`` driven by ``streams``: updated in place where shown, and drawn with
    the streams' latest data where shown again later.

    Example:
        >>> pipe = hv.streams.Pipe(data=[1, 2])
        >>> dmap = live_dmap(lambda data: hv.Curve(data), [pipe])
        >>> len(dmap[()]), len(dmap)  # the first frame, cached
        (2, 1)
        >>> pipe.send([3, 2, 1]); len(dmap.data[()])  # stale, not redrawn...
        2
        >>> len(dmap), len(dmap.data[()])  # ...until a new plot looks at it
        (1, 3)
    """
    dmap = LiveDynamicMap(callback, streams=list(streams), group="DynamicMap")  # (a layout's paths: .DynamicMap.I)
    for stream in streams:
        stream.add_subscriber(dmap._mark_stale, precedence=0.5)  # (users' range: before HoloViews' own, >= 1)
    return dmap


def _framewise(data: Any) -> Any:
    """``data`` with ``framewise`` on every element: set on an overlay alone, its axes kept the first frame's."""
    return data.map(lambda e: e.opts(framewise=True, backend="bokeh"), hv.Element).opts(framewise=True,
                                                                                         backend="bokeh")


class PipedPlot:
    """Show a stream of HoloViews elements as one plot updated in place (see the module docstring).

    ``dmap`` is the ``DynamicMap`` to display; :meth:`update` sends an element and returns True when it
    needed a new ``dmap`` (display that one instead). ``framewise`` is on, so axes follow the data.

    Example:
        >>> live = PipedPlot(hv.Curve([1, 2, 3]))
        >>> first = live.dmap
        >>> live.update(hv.Curve([3, 2, 1])), live.dmap is first      # same structure: in place
        (False, True)
        >>> live.update(hv.Scatter([3, 2, 1])), live.dmap is first    # another element type: a new dmap
        (True, False)
    """

    def __init__(self, element: Any) -> None:
        ensure_bokeh()
        self.element = element
        self._structure = structure(element)
        self._new_dmap(element)

    def _new_dmap(self, element: Any) -> None:
        self.pipe = hv.streams.Pipe(data=element)
        self.dmap = live_dmap(_framewise, [self.pipe])

    def update(self, element: Any) -> bool:
        """Show ``element`` (kept in ``.element``); True when ``dmap`` was replaced by a new one."""
        self.element = element
        shape = structure(element)
        if shape == self._structure:
            self.pipe.send(element)
            return False
        self._structure = shape
        self._new_dmap(element)
        return True
