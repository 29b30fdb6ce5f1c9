"""Show a HoloViews object inside an ipywidgets layout, and replace it later (also from a thread).

:class:`HoloViewsWidget` keeps the current HoloViews object in ``.object`` (what the tests look at)
and shows it in ``.widget``, an ipywidget, in one of two ways:

* ``"bokeh"`` (default when ``jupyter_bokeh`` is installed): a Panel ``HoloViews`` pane wrapped with
  :func:`panel.ipywidget` (a ``jupyter_bokeh.BokehModel``). The Bokeh plot is a live widget: stream
  updates (a :class:`~snnlab.viz.LiveCurves` buffer, a ``Pipe``) patch its data in place, and
  HoloViews streams that come *from* the browser (``Tap``, ``Selection1D``) reach Python. Setting
  ``.object`` swaps the plot in place. Changes made *before* the widget is displayed (no view in the
  browser yet: ``jupyter_bokeh`` sends them as patches that nobody receives) are written into the
  widget's initial state instead, so a plot set or updated before display shows on display.
* ``"output"`` (fallback): an ``ipywidgets.Output`` whose content is replaced on every change
  (:func:`replace_output`: one assignment of its ``outputs``, safe from a thread). Static snapshots only -- no
  browser-to-Python streams -- and the notebook must have loaded ``hv.extension("bokeh")``.

Example:
    >>> import holoviews as hv
    >>> w = HoloViewsWidget(hv.Curve([1, 2, 3]))
    >>> w.object = hv.Curve([3, 2, 1]); w.object.dimension_values(1).tolist()
    [3, 2, 1]
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib.util
import threading
import weakref
from typing import Any, Callable, Iterator

import holoviews as hv
import ipywidgets as W

from snnlab.viz import PipedPlot
from snnlab.viz._util import ensure_bokeh

from ._lifecycle import close_descendants, close_one

__all__ = ["HoloViewsWidget", "LivePlot", "closable_bokeh_model", "default_mode", "replace_output"]


def default_mode() -> str:
    """``"bokeh"`` when ``jupyter_bokeh`` (needed by :func:`panel.ipywidget`) is importable, else ``"output"``.

    Example:
        >>> default_mode() in ("bokeh", "output")
        True
        >>> HoloViewsWidget(mode="auto").mode == default_mode()
        True
    """
    return "bokeh" if importlib.util.find_spec("jupyter_bokeh") is not None else "output"


def replace_output(out: W.Output, obj: Any = None) -> None:
    """Make ``obj`` (any displayable object; ``None``: nothing) the whole content of the ``Output`` widget ``out``.

    One assignment of ``out.outputs``, safe from any thread. ``out.clear_output()`` and ``with out:`` are not:
    they set ``out.msg_id`` to the cell being run, and until it is reset the front end moves everything that
    cell prints into ``out`` (where the next clear erases it). One assignment also replaces the content in one
    message (a clear and an append flicker).

    Example:
        >>> out = W.Output(); replace_output(out, "first"); replace_output(out, "second")
        >>> [o["data"]["text/plain"] for o in out.outputs], out.msg_id
        (["'second'"], '')
        >>> replace_output(out); out.outputs
        ()
    """
    if obj is None:
        out.outputs = ()
        return
    from IPython.core.interactiveshell import InteractiveShell

    data, metadata = InteractiveShell.instance().display_formatter.format(obj)
    out.outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)


@functools.cache
def closable_bokeh_model() -> type:
    """``jupyter_bokeh.BokehModel`` (what :func:`panel.ipywidget` returns) with a ``close`` that can be called again.

    ``BokehModel.close`` unregisters the widget from its Bokeh document and raises ``KeyError`` when called a
    second time, as ``Widget.__del__`` does when a closed widget is collected. :class:`HoloViewsWidget` gives its
    ``pn.ipywidget`` this class (no new trait, the same ``_model_name`` and view: Jupyter renders it as before);
    ``BokehModel`` itself, used by other code, stays as it is.

    Example:
        >>> import panel as pn
        >>> w = pn.ipywidget(pn.pane.HTML("<b>hi</b>")); w.__class__ = closable_bokeh_model()
        >>> w.close(); w.close(); w.comm is None, type(w).__name__
        (True, 'BokehModel')
    """
    from jupyter_bokeh import widgets

    class BokehModel(widgets.BokehModel):  # the same name: its repr and type name stay those of a BokehModel
        """A ``BokehModel`` whose second ``close`` does nothing (the first one closes the comm and unregisters
        the widget from its document)."""

        def close(self) -> None:
            if self.__dict__.get("_snnlab_closed"):
                return
            self.__dict__["_snnlab_closed"] = True
            super().close()

    BokehModel.__qualname__ = "BokehModel"
    return BokehModel


def _root_recorder(refs: set[str], documents: weakref.WeakSet,
                   on_old_roots: Callable[[Any, set[str], list[Any]], None] | None = None) -> Any:
    """A ``_view_count`` observer for a :func:`panel.ipywidget` that adds the id of the root it shows to ``refs``
    and its Bokeh document to ``documents``.

    Registered after Panel's own observer, which renders a new root (in a new document) when the widget is displayed
    again after its last view went away. The roots and documents recorded before then have no view left (Panel
    cleaned the last one up when it was hidden): they leave ``refs`` and ``documents`` and go to
    ``on_old_roots(widget, old_refs, old_documents)``, which drops them (:func:`_drop_roots`). Otherwise
    :meth:`HoloViewsWidget.close` finds every root Panel recorded for the widget, and every document (Panel's shared
    stylesheet models keep a document, and its whole plot, alive until it is cleared). A second view of a shown
    widget (a second output) shows the same root: nothing is dropped. The observer keeps no reference to the widget:
    the change names it.

    Example:
        >>> import panel as pn
        >>> refs, docs, dropped = set(), weakref.WeakSet(), []
        >>> w = pn.ipywidget(pn.pane.HTML("<b>hi</b>")); first = w._model.ref["id"]
        >>> w.observe(_root_recorder(refs, docs, lambda w, r, d: dropped.extend(r)), "_view_count")
        >>> w._view_count = 1; w._view_count = 2; refs == {first}, dropped    # shown, in two outputs: one root
        (True, [])
        >>> w._view_count = 0; w._view_count = 1          # hidden, shown again: a new root, the first one dropped
        >>> refs == {w._model.ref["id"]}, dropped == [first], w._document in docs, len(docs)
        (True, True, True, 1)
        >>> w.close()
    """

    def record(change: dict[str, Any]) -> None:
        widget = change["owner"]
        model = getattr(widget, "_model", None)
        if model is None:
            return
        ref = model.ref["id"]
        if on_old_roots is not None and change["old"] == 0 and change["new"] > 0 and refs and ref not in refs:
            old_refs, old_documents = set(refs), [d for d in documents if d is not model.document]
            refs.clear()
            for doc in old_documents:
                documents.discard(doc)
            on_old_roots(widget, old_refs, old_documents)
        refs.add(ref)
        if model.document is not None:
            documents.add(model.document)

    return record


def _drop_roots(refs: set[str], documents: list[Any], *receivers: Any) -> None:
    """Drop the roots ``refs`` from ``pn.state._views`` (Panel's cleanup of each first) and clear ``documents``,
    after removing ``receivers`` (the ipywidget, whose views would be sent the removal, and any callbacks) from
    their change callbacks.

    Panel registers each root it renders in ``pn.state._views`` and removes it only when a *server* session ends:
    a notebook widget displayed again and again kept every earlier root, and its whole Bokeh plot.

    Example:
        >>> import panel as pn
        >>> from bokeh.document import Document
        >>> doc = Document(); root = pn.pane.HTML("<b>hi</b>").get_root(doc); doc.add_root(root)
        >>> ref = root.ref["id"]; ref in pn.state._views, root.document is doc
        (True, True)
        >>> _drop_roots({ref}, [root.document]); ref in pn.state._views, root.document
        (False, None)
    """
    import panel as pn

    for ref in refs:
        entry = pn.state._views.pop(ref, None)
        if entry is not None:
            view, root = entry[:2]
            with contextlib.suppress(Exception):
                view._cleanup(root)
    for doc in documents:
        for receiver in receivers:
            with contextlib.suppress(KeyError):
                doc.remove_on_change(receiver)
        with contextlib.suppress(Exception):
            doc.clear()


class HoloViewsWidget:
    """A slot in an ipywidgets layout that shows one HoloViews object (see the module docstring).

    Args:
        obj: the initial object (``None``: an empty placeholder).
        mode: ``"bokeh"``, ``"output"`` or ``"auto"`` (:func:`default_mode`).

    Example:
        >>> import ipywidgets as W
        >>> slot = HoloViewsWidget(hv.Curve([1, 2, 3]))
        >>> box = W.VBox([W.HTML("a plot:"), slot.widget])    # the slot's ipywidget goes in any layout
        >>> slot.object = hv.Scatter([(0, 1)]); type(slot.object).__name__
        'Scatter'
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
            self.widget.__class__ = closable_bokeh_model()  # a BokehModel whose close can be called twice
            # the roots Panel registers in pn.state._views and their documents (a new one per re-display)
            self._root_refs: set[str] = {self.widget._model.ref["id"]}
            self._documents: weakref.WeakSet = weakref.WeakSet([self.widget._document])
            self.widget.observe(_root_recorder(self._root_refs, self._documents, self._drop_old_roots),
                                names="_view_count")
            self._batch = 0
            self._stale = False
            self._timer: threading.Timer | None = None
            # jupyter_bokeh sends every later change as a patch to the views in the browser; before the
            # first view exists those patches are lost and the view would show the state of this moment
            self.widget._document.on_change(self._on_document_change)
        else:
            self._pane = None
            self.widget = W.Output()
            self._show(obj)

    @staticmethod
    def _placeholder(obj: Any) -> Any:
        return obj if obj is not None else hv.Div("<i>nothing to show yet</i>")

    # ------------------------------------------------------------------ changes before display
    #: attempts to write a change made before display before giving up (the error stays in ``sync_error``)
    MAX_SYNC_RETRIES = 5
    sync_error: str | None = None

    def _hidden(self) -> bool:
        """True while no browser view shows the widget (Panel counts them in ``_view_count``)."""
        return not getattr(self.widget, "_view_count", None)

    def _on_document_change(self, event: Any) -> None:
        if self._pane is None or not self._hidden():
            return
        self._stale = True
        if self._batch == 0:  # a change from outside (a stream sending from a thread): write it out soon
            self._schedule_sync()

    def _schedule_sync(self, delay: float = 0.2) -> None:
        with self._lock:
            if self._timer is None:
                # in a copy of the caller's context (in Jupyter: the cell that made the change)
                self._timer = threading.Timer(delay, contextvars.copy_context().run, args=(self._sync_from_timer,))
                self._timer.daemon = True
                self._timer.start()

    def _sync_from_timer(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.sync()
            self._sync_failures = 0
        except Exception as e:  # typically the document changed while it was serialised: try again, a few times
            self._sync_failures = getattr(self, "_sync_failures", 0) + 1
            self.sync_error = f"{type(e).__name__}: {e}"
            if self._sync_failures < self.MAX_SYNC_RETRIES:
                self._stale = True
                self._schedule_sync()

    def sync(self) -> None:
        """Write the current plot into the widget's initial state if it changed while no view showed it.

        Called after every change made through this class; changes from elsewhere (a stream sending data)
        are written within 0.2 s. Nothing to do once the widget is displayed (changes then reach the
        browser as patches) or in ``"output"`` mode.

        Example:
            >>> live = LivePlot(hv.Curve([1, 2]), mode="bokeh"); bundle = live.widget.render_bundle
            >>> live.pipe.send(hv.Curve([7, 8, 9]))      # a change from outside this class, before display ...
            >>> live.view.sync(); live.widget.render_bundle is not bundle     # ... written into the state now
            True
            >>> live.close()
        """
        if self._pane is None:
            return
        with self._lock:
            if not self._stale:
                return
            self._stale = False
            model = self.widget._model
            if not self._hidden() or model.ref["id"] not in self._pane._models:
                return  # displayed (patches reach it), or Panel has dropped the model and renders anew
            self.widget.update_from_model(model)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Make several changes, then :meth:`sync` once (instead of re-serialising after each event).

        Example:
            >>> slot = HoloViewsWidget(hv.Curve([1, 2]))
            >>> with slot.batch():
            ...     slot.object = hv.Curve([3, 4])
            ...     slot.object = hv.Scatter([(0, 1)])
            >>> type(slot.object).__name__
            'Scatter'
            >>> slot.close()
        """
        with self._lock:
            if self._pane is None:
                yield
                return
            self._batch += 1
            try:
                yield
            finally:
                self._batch -= 1
            if self._batch == 0:
                self.sync()

    def _show(self, obj: Any) -> None:
        if self._pane is not None:
            new = self._placeholder(obj)
            with self.batch():
                if self._pane.object is new:  # the same object again: re-render it (e.g. a DynamicMap with new keys)
                    self._pane.param.trigger("object")
                else:
                    self._pane.object = new
        else:  # (never clear_output / `with widget:` here: this runs in poll threads too, see replace_output)
            replace_output(self.widget, obj)

    @property
    def object(self) -> Any:
        """The HoloViews object shown now; assign to replace it.

        Example:
            >>> slot = HoloViewsWidget()
            >>> slot.object is None                          # an empty placeholder
            True
            >>> slot.object = hv.Curve([1, 2, 3]); slot.object.dimension_values(1).tolist()
            [1, 2, 3]
            >>> slot.close(); slot.object is None
            True
        """
        return self._object

    @object.setter
    def object(self, obj: Any) -> None:
        with self._lock:
            self._object = obj
            self._show(obj)

    def _drop_old_roots(self, widget: Any, refs: set[str], documents: list[Any]) -> None:
        """The widget is displayed again after its last view went away (Panel rendered a new root): the roots shown
        before, and their documents, have no view left; drop them now rather than at :meth:`close` (each kept its
        whole Bokeh plot: 0.4 MB per re-display of a 2000-point curve-and-scatter overlay)."""
        with self._lock:
            _drop_roots(refs, documents, widget, self._on_document_change)

    def _forget_panel_views(self) -> None:
        """Drop this widget's entries from ``pn.state._views``: the roots rendered from its own pane.

        Panel registers every root it renders there (``get_root``: the first one when :func:`panel.ipywidget`
        builds the widget, a new one each time the widget is displayed again after its last view went away) and
        removes them only when a *server* session ends: in a notebook each entry kept its whole Bokeh plot alive
        after ``close()`` (0.7 MB per closed :class:`~snnlab.widgets.RasterExplorer`, 1.9 MB per
        :class:`~snnlab.widgets.TrainerWidget`). Entries are this widget's when their viewable is its pane or the
        pane's layout, or their root one it showed (:func:`_root_recorder`; the roots shown before the last
        re-display went then, :meth:`_drop_old_roots`); the views of other widgets and of server sessions stay.
        """
        import panel as pn

        model = getattr(self.widget, "_model", None)
        refs = set(self._root_refs) | ({model.ref["id"]} if model is not None else set())
        own = [self._pane, getattr(self._pane, "layout", None)]  # Panel's root view: the pane or its layout
        for ref, (view, root, _doc, _comm) in list(pn.state._views.items()):
            if any(view is v for v in own) or ref in refs:
                with contextlib.suppress(Exception):
                    view._cleanup(root)
                pn.state._views.pop(ref, None)

    def close(self) -> None:
        """Release the slot: cancel a pending :meth:`sync`, drop the Panel pane's Bokeh models and close the
        ipywidget (with its layout and children); Panel's record of the rendered plot goes too. The slot shows
        nothing afterwards. The ipywidget is closed even when an earlier step raised; such a close can be called
        again, and after one that succeeded another does nothing.

        Example:
            >>> import panel as pn
            >>> from snnlab.widgets._lifecycle import registered_widgets
            >>> before, views = registered_widgets(), len(pn.state._views)
            >>> w = HoloViewsWidget(hv.Curve([1, 2, 3])); w.close()
            >>> registered_widgets() == before, len(pn.state._views) == views
            (True, True)
        """
        with self._lock:
            if getattr(self, "_closed", False):  # a second close does nothing (one from Widget.__del__ may come at
                return                           # interpreter exit, when imports fail)
            try:
                if self._pane is not None:
                    if self._timer is not None:
                        self._timer.cancel()
                        self._timer = None
                    for doc in list(self._documents):
                        with contextlib.suppress(Exception):
                            doc.remove_on_change(self._on_document_change)
                    model = getattr(self.widget, "_model", None)
                    with contextlib.suppress(Exception):  # Panel forgets the plot (and its HoloViews streams)
                        self._pane._cleanup(model)
                    self._forget_panel_views()
                    self._pane.object = None
            finally:  # the ipywidget and the documents go even when dropping the pane's views failed
                document = getattr(self.widget, "_document", None)
                documents = [*getattr(self, "_documents", ()), *([document] if document is not None else [])]
                close_descendants(self.widget)
                close_one(self.widget)
                for doc in dict.fromkeys(documents):  # detach the plots' models (shared stylesheets keep them alive)
                    with contextlib.suppress(Exception):
                        doc.clear()
                self._object = None
            self._closed = True  # only once everything went: a close that raised half-way can be called again


class LivePlot:
    """A plot that is redrawn in place: a :class:`~snnlab.viz.PipedPlot` shown in a :class:`HoloViewsWidget`.

    ``update(element)`` stores the element in ``.element`` and sends it through the pipe, so the Bokeh
    plot keeps its identity (and e.g. a ``Tap`` stream attached with ``source=live.dmap`` keeps working).
    An element of another structure (an ``hv.Image`` after ``hv.Points``) gets a new ``DynamicMap`` in the
    same slot. The ``on_new_dmap`` callbacks are called with every ``DynamicMap`` *before* it is rendered
    (the first one included), to attach streams such as a ``Tap``: HoloViews subscribes the Bokeh plot
    to the browser events a stream needs only when it builds the plot, so a stream attached after
    rendering never fires. In
    ``"output"`` mode the element is simply re-displayed.

    Example:
        >>> taps = []
        >>> live = LivePlot(hv.Points([(0, 1)]), on_new_dmap=[lambda dm: taps.append(hv.streams.Tap(source=dm))])
        >>> taps[0].source is live.dmap
        True
    """

    def __init__(self, element: Any, mode: str = "auto", on_new_dmap: list[Any] | tuple = ()) -> None:
        self.on_new_dmap: list[Any] = list(on_new_dmap)
        self._piped = PipedPlot(element)
        for callback in self.on_new_dmap:  # streams first: the plot is rendered just below
            callback(self.dmap)
        self.view = HoloViewsWidget(self.dmap, mode=mode)
        if self.view.mode == "output":  # a static output cannot follow the pipe: show the element itself
            self.view.object = element
        self.widget = self.view.widget

    @property
    def element(self) -> Any:
        """The element shown now.

        Example:
            >>> live = LivePlot(hv.Points([(0, 1)])); live.update(hv.Points([(2, 3), (4, 5)]))
            >>> len(live.element)
            2
            >>> live.close()
        """
        return self._piped.element

    @property
    def dmap(self) -> hv.DynamicMap:
        """The ``DynamicMap`` shown (a new one when an element of another structure arrives).

        Example:
            >>> live = LivePlot(hv.Points([(0, 1)])); first = live.dmap
            >>> live.update(hv.Points([(1, 2)])); live.dmap is first       # same structure: the same DynamicMap
            True
            >>> live.update(hv.Curve([1, 2])); live.dmap is first           # a Curve after Points: a new one
            False
            >>> live.close()
        """
        return self._piped.dmap

    @property
    def pipe(self) -> hv.streams.Pipe:
        """The ``hv.streams.Pipe`` feeding :attr:`dmap` (each :meth:`update` sends through it).

        Example:
            >>> live = LivePlot(hv.Points([(0, 1)])); live.update(hv.Points([(1, 2)]))
            >>> live.pipe.data is live.element
            True
            >>> live.close()
        """
        return self._piped.pipe

    def close(self) -> None:
        """Close the slot (:meth:`HoloViewsWidget.close`) and forget the ``on_new_dmap`` callbacks.

        Example:
            >>> live = LivePlot(hv.Points([(0, 1)])); live.close()
            >>> live.widget.comm is None, live.on_new_dmap
            (True, [])
        """
        self.on_new_dmap = []
        self.view.close()

    def update(self, element: Any) -> None:
        """Show ``element`` (kept in ``.element``).

        Example:
            >>> live = LivePlot(hv.Curve([1, 2]))
            >>> live.update(hv.Curve([3, 2, 1])); live.element.dimension_values(1).tolist()
            [3, 2, 1]
            >>> live.close()
        """
        with self.view.batch():
            replaced = self._piped.update(element)
            if self.view.mode == "output":
                self.view.object = element
            elif replaced:
                for callback in self.on_new_dmap:  # before the new DynamicMap is rendered
                    callback(self.dmap)
                self.view.object = self.dmap
