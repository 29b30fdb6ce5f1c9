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

__all__ = ["PipedPlot", "live_dmap", "structure"]


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


def live_dmap(callback: Callable[..., Any], streams: Sequence[hv.streams.Stream]) -> hv.DynamicMap:
    """An ``hv.DynamicMap`` of ``callback`` driven by ``streams``: updated in place where shown, and drawn with the
    streams' latest data where shown again later.

    A ``DynamicMap`` keeps the frames it drew (``.data``), and a new plot of it (a notebook cell run again, a second
    output, a new Panel page) starts from that cache. A plot already showing redraws into a copy of the map whenever
    its frames are overlays, so the map's own cache kept the first frame: a live plot shown before its data and shown
    again later drew no data. Here each stream event empties the cache first (:meth:`hv.DynamicMap.reset`, a stream
    subscriber; nothing is drawn), and a new plot finds the map empty and draws it, as on its first display: once
    per new plot, never more per event. Only public HoloViews API is used; ``test_viz_live.py`` checks the behaviour.

    Example:
        >>> pipe = hv.streams.Pipe(data=[1, 2])
        >>> dmap = live_dmap(lambda data: hv.Curve(data), [pipe])
        >>> len(dmap[()]), len(dmap)  # the first frame, cached
        (2, 1)
        >>> pipe.send([3, 2, 1]); len(dmap)  # forgotten, not redrawn...
        0
        >>> len(hv.render(dmap, backend="bokeh").renderers[0].data_source.data["y"])  # ...until a new plot draws it
        3
    """
    dmap = hv.DynamicMap(callback, streams=list(streams))

    def forget_frames(**_contents: Any) -> None:
        dmap.reset()

    for stream in streams:
        stream.add_subscriber(forget_frames, precedence=0.5)  # (users' range, 0 to 1: before HoloViews' own)
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
