"""Closing ipywidgets for good: a widget's children, layout and style are widgets of their own.

``Widget.close()`` closes one widget: the ``Layout`` and ``Style`` it made and the children of a box stay
registered in ``ipywidgets.Widget.widgets`` and keep everything they reference (observers, plots, tensors)
alive. The widgets of :mod:`snnlab.widgets` close their whole tree with :func:`close_descendants`.
"""
from __future__ import annotations

from typing import Iterator

import ipywidgets as W

__all__ = ["close_descendants", "close_one", "registered_widgets"]


def _descendants(widget: W.Widget) -> Iterator[W.Widget]:
    """Every widget below ``widget`` (children, layout, style, ... recursively), deepest first, each once."""
    seen = {id(widget)}
    stack: list[tuple[W.Widget, bool]] = [(widget, False)]
    while stack:
        w, expanded = stack.pop()
        if expanded:
            if w is not widget:
                yield w
            continue
        stack.append((w, True))
        for name in w.keys:
            value = getattr(w, name, None)
            for v in value if isinstance(value, (list, tuple)) else (value,):
                if isinstance(v, W.Widget) and id(v) not in seen:
                    seen.add(id(v))
                    stack.append((v, False))


def close_descendants(widget: W.Widget) -> None:
    """Close every ipywidget below ``widget`` (its children, their layouts and styles, recursively).

    ``Widget.close()`` closes one widget only: its ``Layout``, ``Style`` and children stay registered in
    ``ipywidgets.Widget.widgets`` (and keep everything they reference alive) until closed as well.

    Example:
        >>> import ipywidgets as W
        >>> box = W.VBox([W.Button(), W.HBox([W.IntSlider()])])
        >>> before = registered_widgets()
        >>> close_descendants(box); box.close()
        >>> before - registered_widgets()   # box, 2 children, 1 grandchild, 4 layouts, 2 styles
        10
    """
    for w in list(_descendants(widget)):
        close_one(w)


def close_one(widget: W.Widget) -> None:
    """Close one widget; closing it again does nothing (a widget whose comm is closed is left alone).

    (The plots of :mod:`snnlab.widgets` are ``jupyter_bokeh.BokehModel`` s of the class
    :func:`snnlab.widgets._hv.closable_bokeh_model`: their own close can be called again too, as
    ``Widget.__del__`` does when the widget is collected.)

    Example:
        >>> import ipywidgets as W
        >>> before = registered_widgets()
        >>> b = W.Button(); close_one(b); close_one(b)
        >>> b.comm is None, registered_widgets() - before  # its ButtonStyle and Layout are still open
        (True, 2)
    """
    if getattr(widget, "comm", None) is not None:
        widget.close()


def registered_widgets() -> int:
    """How many ipywidgets are open (registered in ipywidgets' table of live widgets, ``Widget.widgets``).

    Example:
        >>> import ipywidgets as W
        >>> before = registered_widgets(); w = W.HTML()   # the HTML and its Layout and Style
        >>> registered_widgets() - before
        3
    """
    from ipywidgets.widgets import widget

    table = getattr(widget, "_instances", None)  # ``Widget.widgets`` without its DeprecationWarning
    return len(table if table is not None else W.Widget.widgets)
