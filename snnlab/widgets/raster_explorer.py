"""Browse a network's spikes: pick a sample, a layer and a neuron range; see the raster and one neuron's membrane.

The model runs once on the given batch under a :class:`~snnlab.core.network.Monitor`; the widgets
then only slice the recorded ``[T, B, N]`` tensors (``sample`` slider, ``layer`` dropdown,
``neurons`` range slider) and redraw with :func:`snnlab.viz.spike_raster` and
:func:`snnlab.viz.membrane_traces`.

Choosing the neuron whose membrane is shown: type it in ``neuron`` (an ``IntText``) or, when the
plots are live Bokeh widgets (``jupyter_bokeh`` installed, the default), click a spike in the raster:
a HoloViews ``Tap`` stream on the raster sets ``neuron`` to the clicked row. Without
``jupyter_bokeh`` the plots are static and only the ``IntText`` works.

Example:
    >>> import torch, snnlab as sl
    >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 3), sl.LI())
    >>> ex = RasterExplorer(net, (torch.rand(20, 5, 4) * 3, torch.zeros(5)))
    >>> ex.sample.value = 2; ex.layer.value
    '1'
"""
from __future__ import annotations

import numbers
from typing import Any

import holoviews as hv
import ipywidgets as W
import numpy as np
import torch

from snnlab.core.network import Monitor, carry_suspended
from snnlab.metrics import input_dtype, model_input
from snnlab.viz import membrane_traces, spike_raster, theme
from snnlab.viz._util import to_numpy

from ._hv import HoloViewsWidget, LivePlot
from ._lifecycle import close_descendants

__all__ = ["RasterExplorer", "record_batch"]


def _first_batch(data: Any) -> tuple[torch.Tensor, Any]:
    """``(x, labels)`` of ``data``: a tensor, an ``(x, labels)`` pair, or the first batch of a loader.

    Example:
        >>> _first_batch([])
        Traceback (most recent call last):
        ...
        ValueError: RasterExplorer: the data (list) has no batch: give a tensor [T, B, ...], (x, labels) or ...
    """
    if isinstance(data, torch.Tensor):
        return data, None
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return data[0], data[1]
    try:
        batches = iter(data)  # a DataLoader (or any iterable of (x, y))
    except TypeError:
        raise TypeError(f"RasterExplorer: expected a tensor [T, B, ...], (x, labels) or a loader, "
                        f"got {type(data).__name__}") from None
    try:
        batch = next(batches)
    except StopIteration:  # an empty loader (e.g. a filtered dataset): not a bare StopIteration('')
        raise ValueError(f"RasterExplorer: the data ({type(data).__name__}) has no batch: give a tensor [T, B, ...], "
                         "(x, labels) or a loader that yields at least one batch") from None
    return (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)


def _check_batch(x: Any, labels: Any) -> np.ndarray | None:
    """``labels`` as an array after checking that ``x`` is a non-empty time-major ``[T, B, ...]`` tensor with one
    label per sample; ``ValueError`` naming RasterExplorer otherwise (a batch-first ``x`` shows as a count mismatch)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"RasterExplorer: expected a tensor [T, B, ...] (or (x, labels), or a loader), "
                        f"got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.dim() < 2:
        raise ValueError(f"RasterExplorer: expected time-major input [T, B, ...], got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"RasterExplorer: the input has no time steps (shape {shape}, time-major [T, B, ...] with "
                         "T = 0); give it at least one step")
    if shape[1] == 0:
        raise ValueError(f"RasterExplorer: the batch has no samples (shape {shape}, time-major [T, B, ...] with B = 0)")
    if labels is None:
        return None
    labels = to_numpy(labels)
    if labels.ndim > 1:  # e.g. one-hot [B, C]: one scalar label per sample is shown
        # the hint fits the shape: argmax(-1) of a [B, 1] column is all zeros, silently wrong labels
        hint = ("pass labels.reshape(-1)" if labels.size == labels.shape[0]
                else "for one-hot labels pass labels.argmax(-1)")
        raise ValueError(f"RasterExplorer: labels must hold one scalar per sample (shape [B]), got shape "
                         f"{tuple(labels.shape)} ({hint})")
    n = len(labels) if labels.ndim else 1
    if n != shape[1]:
        raise ValueError(f"RasterExplorer: the labels have length {n} but the batch has {shape[1]} samples "
                         f"(input of shape {shape}): inputs are time-major [T, B, ...] (for a batch-first loader, "
                         "pass x.transpose(0, 1))")
    return labels.reshape(1) if not labels.ndim else labels


def _check_max_samples(max_samples: Any) -> None:
    """``TypeError`` / ``ValueError`` naming RasterExplorer unless ``max_samples`` is an int >= 1 or None.

    Example:
        >>> _check_max_samples(0)
        Traceback (most recent call last):
        ...
        ValueError: RasterExplorer: max_samples must be >= 1 (or None for the whole batch), got 0
    """
    if max_samples is None:
        return
    if isinstance(max_samples, (bool, np.bool_)) or not isinstance(max_samples, numbers.Integral):
        raise TypeError(f"RasterExplorer: max_samples must be an int >= 1 (or None for the whole batch), "
                        f"got {max_samples!r} ({type(max_samples).__name__})")
    if max_samples < 1:
        raise ValueError(f"RasterExplorer: max_samples must be >= 1 (or None for the whole batch), got {max_samples}")


def record_batch(model: torch.nn.Module, x: torch.Tensor) -> Monitor:
    """Run ``model`` on ``x`` (time-major) in eval mode under a CPU :class:`Monitor`; returns the monitor. ``x`` holds
    whole sequences: they run from rest whatever the layers' ``carry_state``, and a stream the model carries continues
    afterwards (:func:`snnlab.carry_suspended`).

    Example:
        >>> import snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF())
        >>> mon = record_batch(net, torch.rand(10, 2, 4))
        >>> tuple(mon.spikes["1"].shape), mon.spikes["1"].device.type, net.training
        ((10, 2, 8), 'cpu', True)
    """
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.no_grad(), carry_suspended(model), Monitor(model, to_cpu=True) as mon:
            model(model_input(x, device, input_dtype(model)))  # the model's float dtype: uint8 frames, float64 models
    finally:
        model.train(was_training)
    return mon


class RasterExplorer(W.VBox):
    """Spike raster and membrane trace browser (see the module docstring).

    Example:
        >>> import snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF())
        >>> ex = RasterExplorer(net, (torch.rand(10, 3, 4) * 3, torch.tensor([0, 1, 2])))
        >>> ex.sample.max, ex.neurons.value
        (2, (0, 7))
        >>> ex.neurons.value = (2, 5); ex.raster.opts.get("plot", backend="bokeh").kwargs["ylim"]
        (1.5, 5.5)

    Args:
        model: a spiking network (any ``nn.Module`` with ``LIF`` / ``LI`` layers).
        data: ``x`` (``[T, B, F]`` tensor), ``(x, labels)``, or a loader whose first batch is used.
        max_samples: keep at most this many samples of the batch (an int >= 1; None keeps them all).
        plot_mode: see :class:`~snnlab.widgets._hv.HoloViewsWidget`.

    Attributes:
        sample, layer, neurons, neuron: the controls.
        raster_plot: the raster slot (``raster_plot.element`` is the ``hv.Points`` / ``hv.Image`` shown).
        trace_plot: the membrane slot (``trace_plot.object`` is the ``membrane_traces`` overlay).
        spikes, membrane: ``{layer: [T, B, N]}`` recorded tensors; ``labels``: the batch labels or None.
        tap: the ``hv.streams.Tap`` on the raster.

    Raises:
        TypeError / ValueError: ``max_samples`` is not an int >= 1 (or None), or the batch is not time-major
        ``[T, B, ...]`` with one scalar label per sample (labels of shape ``[B]``), or ``data`` is a loader with
        no batch.
    """

    def __init__(self, model: torch.nn.Module, data: Any, max_samples: int | None = 64, plot_mode: str = "auto",
                 **kwargs: Any) -> None:
        _check_max_samples(max_samples)
        x, labels = _first_batch(data)
        labels = _check_batch(x, labels)
        x = x[:, :max_samples]
        self.model = model
        self.labels = None if labels is None else labels[:max_samples]
        mon = record_batch(model, x)
        self.membrane: dict[str, torch.Tensor] = dict(mon.membrane)
        self.spikes: dict[str, torch.Tensor] = {n: mon.spikes.get(n, torch.zeros_like(v)) for n, v in self.membrane.items()}
        for n, s in mon.spikes.items():  # layers that record spikes but no membrane
            self.spikes.setdefault(n, s)
        # a moving threshold (an ALIF's, [T, B, ...]) as the monitor recorded it, else the layer's own
        self.thresholds = {n: mon.thresholds.get(n, getattr(m, "threshold", None)) for n, m in mon.layers.items()}
        if not self.spikes:
            raise ValueError("RasterExplorer: the model has no LIF/LI layer to record")
        names = list(self.spikes)
        spiking = [n for n in names if n in mon.spikes]
        batch = int(next(iter(self.spikes.values())).shape[1])
        self.sample = W.IntSlider(value=0, min=0, max=batch - 1, description="sample")
        self.layer = W.Dropdown(options=names, value=(spiking or names)[0], description="layer")
        n0 = self._n_neurons(self.layer.value)
        self.neurons = W.IntRangeSlider(value=(0, n0 - 1), min=0, max=n0 - 1, description="neurons")
        self.neuron = W.IntText(value=0, description="neuron", tooltip="neuron whose membrane is shown (or click the raster)")
        self.info = W.HTML()
        self._busy = False
        # the Tap is attached to every DynamicMap (points <-> image makes a new one) before it is rendered:
        # HoloViews adds the Bokeh TapTool only when it builds the plot
        self.raster_plot = LivePlot(self._raster_element(), mode=plot_mode, on_new_dmap=[self._attach_tap])
        self.trace_plot = HoloViewsWidget(self._trace_element(), mode=plot_mode)
        self._update_info()
        self.sample.observe(self._on_sample, names="value")
        self.layer.observe(self._on_layer, names="value")
        self.neurons.observe(self._on_range, names="value")
        self.neuron.observe(self._on_neuron, names="value")
        controls = W.HBox([W.VBox([self.sample, self.layer]), W.VBox([self.neurons, self.neuron]), self.info])
        super().__init__(children=[controls, self.raster_plot.widget, self.trace_plot.widget], **kwargs)

    # ------------------------------------------------------------------ data
    def _n_neurons(self, layer: str) -> int:
        s = self.spikes[layer]
        return int(np.prod(s.shape[2:])) if s.dim() > 2 else 1

    def _matrix(self, store: dict, layer: str) -> np.ndarray:
        a = to_numpy(store[layer])[:, int(self.sample.value)]
        return a.reshape(a.shape[0], -1)

    def _raster_element(self) -> Any:
        lo, hi = self.neurons.value
        a = self._matrix(self.spikes, self.layer.value)[:, lo:hi + 1]
        plot = spike_raster(a, label=f"layer {self.layer.value}")
        T = a.shape[0]
        if isinstance(plot, hv.Points):  # shift the neuron axis to the real indices lo..hi
            df = plot.dframe()
            df["neuron"] = df["neuron"] + lo
            plot = plot.clone(data=df).opts(ylim=(lo - 0.5, hi + 0.5), backend="bokeh")
        elif isinstance(plot, hv.Image):
            l, b, r, t = plot.bounds.lbrt()
            plot = plot.clone(bounds=(l, b + lo, r, t + lo))
        return plot.opts(title=f"layer {self.layer.value}, sample {self.sample.value}{self._label_text()}, "
                               f"neurons {lo}-{hi} ({int(np.count_nonzero(a))} spikes in {T} steps)",
                         backend="bokeh")

    def _label_text(self) -> str:
        if self.labels is None:
            return ""
        return f" (label {self.labels[int(self.sample.value)]})"

    def _trace_element(self) -> hv.Overlay:
        layer = self.layer.value
        n = self._n_neurons(layer)
        j = min(max(int(self.neuron.value), 0), n - 1)
        v = self._matrix(self.membrane, layer) if layer in self.membrane else np.zeros_like(self._matrix(self.spikes, layer))
        s = self._matrix(self.spikes, layer)
        thr = self.thresholds.get(layer)
        if thr is not None and layer in self.membrane and tuple(thr.shape) == tuple(self.membrane[layer].shape):
            thr = self._matrix(self.thresholds, layer)   # moving: this sample's [T, N]
        elif thr is not None:
            thr = to_numpy(thr).astype(float).ravel()
            thr = float(thr[0]) if thr.size == 1 else thr
        return membrane_traces(v, s, neurons=[j], threshold=thr, sample=None).opts(
            title=f"membrane of neuron {j} in layer {layer}", width=theme.WIDTH, backend="bokeh")

    # ------------------------------------------------------------------ callbacks
    def _attach_tap(self, dmap: hv.DynamicMap) -> None:
        self.tap = hv.streams.Tap(source=dmap, x=None, y=None)
        self.tap.add_subscriber(self._on_tap)

    def _on_sample(self, _: Any = None) -> None:
        self.raster_plot.update(self._raster_element())
        self.trace_plot.object = self._trace_element()
        self._update_info()

    def _on_layer(self, _: Any = None) -> None:
        n = self._n_neurons(self.layer.value)
        self._busy = True
        try:  # widen first so that the new range is always inside [min, max]
            self.neurons.max = max(self.neurons.max, n - 1)
            self.neurons.value = (0, n - 1)
            self.neurons.max = n - 1
            if self.neuron.value >= n:
                self.neuron.value = 0
        finally:
            self._busy = False
        self._on_sample()

    def _on_range(self, _: Any = None) -> None:
        if not self._busy:
            self.raster_plot.update(self._raster_element())

    def _on_neuron(self, _: Any = None) -> None:
        n = self._n_neurons(self.layer.value)
        if not 0 <= self.neuron.value < n:
            self.neuron.value = min(max(int(self.neuron.value), 0), n - 1)
            return
        if not self._busy:
            self.trace_plot.object = self._trace_element()

    def _on_tap(self, x: Any = None, y: Any = None, **_: Any) -> None:
        if y is None or not np.isfinite(float(y)):  # a click outside the data (NaN / inf) picks nothing
            return
        self.neuron.value = int(round(float(y)))

    def _update_info(self) -> None:
        layer, b = self.layer.value, int(self.sample.value)
        total = int(np.count_nonzero(to_numpy(self.spikes[layer])[:, b]))
        self.info.value = (f"<b>{layer}</b>: {self._n_neurons(layer)} neurons, {total} spikes in this sample"
                           f"{self._label_text()}")

    @property
    def raster(self) -> Any:
        """The raster element shown now.

        Example:
            >>> import snnlab as sl
            >>> ex = RasterExplorer(sl.Sequential(torch.nn.Linear(4, 8), sl.LIF()), torch.ones(10, 2, 4) * 3)
            >>> type(ex.raster).__name__, ex.raster is ex.raster_plot.element
            ('Points', True)
            >>> ex.neurons.value = (0, 3); sorted(set(ex.raster.dimension_values("neuron")) - {0, 1, 2, 3})
            []
            >>> ex.close()
        """
        return self.raster_plot.element

    def close(self) -> None:
        """Close the controls and plots (every child ipywidget, the Panel panes) and drop the Tap's callback,
        so that the explorer and its recorded tensors can be freed.

        Example:
            >>> import snnlab as sl
            >>> from snnlab.widgets._lifecycle import registered_widgets
            >>> before = registered_widgets()
            >>> ex = RasterExplorer(sl.Sequential(torch.nn.Linear(4, 8), sl.LIF()), torch.rand(10, 2, 4))
            >>> ex.close(); registered_widgets() == before
            True
        """
        tap = getattr(self, "tap", None)
        if tap is not None:
            tap.clear()  # the Tap's subscriber is a bound method of this explorer
            tap.source = None
        for name in ("raster_plot", "trace_plot"):  # (also from Widget.__del__ after a failed __init__)
            plot = getattr(self, name, None)
            if plot is not None:
                plot.close()
        close_descendants(self)
        super().close()
