"""Inspect learnt synaptic delays: matrix, histogram, Gaussian kernels of chosen synapses, evolution over training.

Works on a model (every :class:`~snnlab.core.delays.DelayedLinear` in it can be picked) or on one
layer. ``history`` is a delay-history DataFrame (:data:`snnlab.viz.HISTORY_COLUMNS`, e.g.
``TrainingSession.delay_history_frame()``) or a callable returning one (re-read by **Refresh**, so
``DelayViewer(session.trainer.model, history=session.delay_history_frame)`` follows a live run). Its
``layer`` column names the module (``"0"``) or labels it ``"layer 0"`` (:func:`history_names`).

Synapses for the kernel (and evolution) plots are typed as ``"out-in"`` ids, e.g. ``"0-3, 2-5"``
(blank: four synapses spread over the matrix). With live Bokeh plots (``jupyter_bokeh`` installed)
clicking a cell of the delay matrix appends that synapse (a HoloViews ``Tap`` stream).

Example:
    >>> import snnlab as sl
    >>> v = DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0))
    >>> v.matrix.dimension_values("delay", flat=False).shape
    (3, 6)
"""
from __future__ import annotations

import html

from typing import Any, Callable

import holoviews as hv
import ipywidgets as W
import pandas as pd
import torch

from snnlab.core.delays import DelayedLinear
from snnlab.viz import delay_evolution, delay_histogram, delay_matrix, gaussian_kernels

from ._hv import HoloViewsWidget, LivePlot
from ._lifecycle import close_descendants

__all__ = ["DelayViewer", "delay_layers", "history_names"]


def delay_layers(model_or_layer: Any) -> dict[str, Any]:
    """``{name: DelayedLinear}`` of a model (module names), or ``{"delays": layer}`` for a single layer.

    Example:
        >>> import snnlab as sl
        >>> net = sl.Sequential(sl.DelayedLinear(4, 6, max_delay=3), sl.LIF(), sl.DelayedLinear(6, 2, max_delay=3))
        >>> list(delay_layers(net)), list(delay_layers(net[0]))
        (['0', '2'], ['delays'])
    """
    if isinstance(model_or_layer, dict):
        return dict(model_or_layer)
    if hasattr(model_or_layer, "positions") and hasattr(model_or_layer, "max_delay"):
        return {"delays": model_or_layer}
    if isinstance(model_or_layer, torch.nn.Module):
        return {n: m for n, m in model_or_layer.named_modules() if isinstance(m, DelayedLinear)}
    raise TypeError(f"DelayViewer: expected a model, a DelayedLinear or a dict of them, got {type(model_or_layer).__name__}")


def history_names(name: str) -> set[str]:
    """The ``layer`` values of a delay history that belong to the module ``name``: the module name itself
    (``TrainingSession`` records those) or ``"layer <name>"`` (a label for plots, as in notebook 04).

    Example:
        >>> sorted(history_names("0"))
        ['0', 'layer 0']
    """
    name = str(name)
    return {name, f"layer {name}"}


class DelayViewer(W.VBox):
    """Delay matrix / histogram / kernels / evolution browser (see the module docstring).

    Example:
        >>> import snnlab as sl
        >>> from snnlab.viz import delay_snapshot
        >>> layer = sl.DelayedLinear(6, 3, max_delay=5, seed=0)
        >>> v = DelayViewer(layer, history=delay_snapshot(layer, step=0, name="delays"))
        >>> v.synapses.value = "0-3, 2-5"; sorted(v.kernel_plot.object.keys())
        ['0-3', '2-5']
        >>> v.synapses.value = "9-9"; v.message.value
        "<span style='color:#b00020'>synapse '9-9' is outside the 3 x 6 layer (out x in)</span>"

    Attributes:
        layer, rounded, synapses, weighted, refresh_button: the controls; ``message``: errors.
        matrix_plot (``.element``), histogram_plot, kernel_plot, evolution_plot (``.object``): the plots.
        tap: the ``hv.streams.Tap`` on the matrix.

    Raises:
        TypeError: ``history`` is not a DataFrame, a callable or None (a callable that returns anything but
        a DataFrame or None is reported in ``message``).
    """

    def __init__(self, model_or_layer: Any, history: pd.DataFrame | Callable[[], pd.DataFrame] | None = None,
                 plot_mode: str = "auto", **kwargs: Any) -> None:
        if history is not None and not isinstance(history, pd.DataFrame) and not callable(history):
            raise TypeError(f"DelayViewer: history must be a DataFrame, a callable returning one, or None, "
                            f"got {type(history).__name__}")
        self.layers = delay_layers(model_or_layer)
        if not self.layers:
            raise ValueError("DelayViewer: the model has no DelayedLinear layer (train with delays=True)")
        self.history_source = history
        self.layer = W.Dropdown(options=list(self.layers), description="layer")
        self.rounded = W.Checkbox(value=True, description="rounded delays", tooltip="integer delays (off: real positions)")
        self.synapses = W.Text(value="", description="synapses", placeholder="out-in, e.g. 0-3, 2-5 (blank: 4 spread)",
                               layout=W.Layout(width="420px"))
        self.weighted = W.Checkbox(value=False, description="weighted kernels", tooltip="multiply kernels by W_ij")
        self.refresh_button = W.Button(description="Refresh", icon="refresh",
                                       tooltip="re-read the layer and the history (e.g. while training)")
        self.message = W.HTML()
        # the Tap goes on before the first render (HoloViews adds the Bokeh TapTool only then)
        self.matrix_plot = LivePlot(delay_matrix(self.current_layer, rounded=True), mode=plot_mode,
                                    on_new_dmap=[self._attach_tap])
        self.histogram_plot = HoloViewsWidget(None, mode=plot_mode)
        self.kernel_plot = HoloViewsWidget(None, mode=plot_mode)
        self.evolution_plot = HoloViewsWidget(None, mode=plot_mode)
        self.history: pd.DataFrame = pd.DataFrame()
        self._history_error = ""
        self.refresh()
        self.layer.observe(lambda _: self.refresh(reload_history=False), names="value")
        self.rounded.observe(lambda _: self._draw_layer(), names="value")
        self.synapses.observe(lambda _: self._draw_synapses(), names="value")
        self.weighted.observe(lambda _: self._draw_synapses(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        controls = W.HBox([W.VBox([self.layer, self.rounded]), W.VBox([self.synapses, self.weighted]),
                           self.refresh_button])
        super().__init__(children=[controls, self.message, W.HBox([self.matrix_plot.widget, self.histogram_plot.widget]),
                                   self.kernel_plot.widget, self.evolution_plot.widget], **kwargs)

    # ------------------------------------------------------------------ state
    @property
    def current_layer(self) -> Any:
        """The selected ``DelayedLinear``.

        Example:
            >>> import snnlab as sl
            >>> net = sl.Sequential(sl.DelayedLinear(4, 6, max_delay=3), sl.LIF(), sl.DelayedLinear(6, 2, max_delay=3))
            >>> v = DelayViewer(net); v.layer.value = "2"
            >>> v.current_layer is net[2], tuple(v.current_layer.positions.shape)
            (True, (2, 6))
            >>> v.close()
        """
        return self.layers[self.layer.value]

    @property
    def matrix(self) -> hv.Image:
        """The delay-matrix image shown now.

        Example:
            >>> import snnlab as sl
            >>> v = DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0))
            >>> type(v.matrix).__name__, v.matrix.dimension_values("delay", flat=False).shape
            ('Image', (3, 6))
            >>> v.rounded.value = False; v.matrix is v.matrix_plot.element     # redrawn from the real positions
            True
            >>> v.close()
        """
        return self.matrix_plot.element

    def parse_synapses(self) -> list[tuple[int, int]] | None:
        """The ``(out, in)`` pairs typed in ``synapses`` (None when blank); raises ``ValueError`` on bad text,
        including text with separators but no pair (``","``), which would otherwise ask for no kernel at all.

        Example:
            >>> import snnlab as sl
            >>> v = DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0))
            >>> v.synapses.value = "0-3; 2-5"; v.parse_synapses()
            [(0, 3), (2, 5)]
            >>> v.synapses.value = "3"; v.parse_synapses()
            Traceback (most recent call last):
            ...
            ValueError: synapse '3': write it as out-in, e.g. 0-3
            >>> v.synapses.value = " ; "; v.parse_synapses()
            Traceback (most recent call last):
            ...
            ValueError: synapses ' ; ' names no synapse: write out-in pairs, e.g. 0-3, 2-5 (blank: 4 spread)
        """
        text = self.synapses.value.strip()
        if not text:
            return None
        out_n, in_n = tuple(self.current_layer.positions.shape)
        pairs = []
        for part in text.replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            try:
                j, i = (int(v) for v in part.split("-"))
            except ValueError:
                raise ValueError(f"synapse {part!r}: write it as out-in, e.g. 0-3") from None
            if not (0 <= j < out_n and 0 <= i < in_n):
                raise ValueError(f"synapse {part!r} is outside the {out_n} x {in_n} layer (out x in)")
            pairs.append((j, i))
        if not pairs:  # only separators: an error here, not an empty list that gaussian_kernels refuses
            raise ValueError(f"synapses {self.synapses.value!r} names no synapse: write out-in pairs, e.g. 0-3, 2-5 "
                             f"(blank: 4 spread)")
        return pairs

    # ------------------------------------------------------------------ drawing
    def refresh(self, reload_history: bool = True) -> None:
        """Redraw everything from the layer's current state (and re-read the history).

        A history source that fails is reported in ``message`` (``"could not read the delay history: ..."``);
        the last history read stays shown.

        Example:
            >>> import snnlab as sl
            >>> def locked(): raise RuntimeError("store locked")
            >>> v = DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0), history=locked)
            >>> v.message.value
            "<span style='color:#b00020'>could not read the delay history: RuntimeError: store locked</span>"
        """
        if reload_history:
            self._history_error = ""
            src = self.history_source
            try:
                h = src() if callable(src) else src
            except Exception as e:  # a locked store, a finished session: say so, keep the last history
                self._history_error = f"could not read the delay history: {type(e).__name__}: {e}"
            else:
                if h is not None and not isinstance(h, pd.DataFrame):  # not a silent blank
                    self._history_error = (f"could not read the delay history: expected a DataFrame, "
                                           f"got {type(h).__name__}")
                else:
                    self.history = pd.DataFrame() if h is None else h
        self._draw_layer()
        self._draw_synapses()

    def _draw_layer(self) -> None:
        layer, name = self.current_layer, self.layer.value
        self.matrix_plot.update(delay_matrix(layer, rounded=self.rounded.value).opts(
            title=f"delays of {name} ({'rounded' if self.rounded.value else 'positions'}); click: add synapse",
            backend="bokeh"))
        self.histogram_plot.object = delay_histogram(layer, rounded=self.rounded.value).opts(
            title=f"delay histogram of {name}", backend="bokeh")

    def _layer_history(self) -> pd.DataFrame:
        h = self.history
        if h.empty or "layer" not in h.columns:
            return h
        mine = h[h["layer"].astype(str).isin(history_names(self.layer.value))]
        if len(mine) or len(self.layers) > 1 or h["layer"].nunique() > 1:
            return mine
        return h  # one layer, one history recorded under another name

    def _set_message(self, error: str = "") -> None:
        """Show ``error`` and a failed history read (if any) in ``message``."""
        text = "; ".join(html.escape(t, quote=False) for t in (error, self._history_error) if t)
        self.message.value = f"<span style='color:#b00020'>{text}</span>" if text else ""

    def _draw_synapses(self) -> None:
        try:
            syn = self.parse_synapses()
        except ValueError as e:
            self._set_message(str(e))
            blank = hv.Div(f"<i>no kernels: {html.escape(str(e))}</i>")  # not the last layer's plots
            self.kernel_plot.object = blank
            self.evolution_plot.object = blank
            return
        self._set_message()
        self.kernel_plot.object = gaussian_kernels(self.current_layer, synapses=syn, weighted=self.weighted.value)
        h = self._layer_history()
        if h.empty:
            self.evolution_plot.object = hv.Div("<i>no delay history (pass history=..., e.g. "
                                                "session.delay_history_frame)</i>")
        else:
            ids = [f"{j}-{i}" for j, i in syn] if syn else None
            self.evolution_plot.object = delay_evolution(h, synapses=ids)

    def close(self) -> None:
        """Close the controls and plots (every child ipywidget, the Panel panes) and drop the Tap's callback
        and the history source, so that the viewer can be freed.

        Example:
            >>> import snnlab as sl
            >>> from snnlab.widgets._lifecycle import registered_widgets
            >>> before = registered_widgets()
            >>> v = DelayViewer(sl.DelayedLinear(6, 3, max_delay=5, seed=0)); v.close()
            >>> registered_widgets() == before
            True
        """
        tap = getattr(self, "tap", None)
        if tap is not None:
            tap.clear()  # the Tap's subscriber is a bound method of this viewer
            tap.source = None
        self.history_source = None  # e.g. a bound method of a live TrainingSession
        for name in ("matrix_plot", "histogram_plot", "kernel_plot", "evolution_plot"):  # (after a failed __init__ too)
            plot = getattr(self, name, None)
            if plot is not None:
                plot.close()
        close_descendants(self)
        super().close()

    def _attach_tap(self, dmap: hv.DynamicMap) -> None:
        self.tap = hv.streams.Tap(source=dmap, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)

    def _on_tap(self, x: Any = None, y: Any = None, **_: Any) -> None:
        if x is None or y is None:
            return
        sid = f"{int(round(float(y)))}-{int(round(float(x)))}"
        current = [s.strip() for s in self.synapses.value.split(",") if s.strip()]
        if sid not in current:
            self.synapses.value = ", ".join(current + [sid])
