"""Plots for spiking networks, built on HoloViews: every function takes plain tensors / arrays /
DataFrames (or a :class:`snnlab.Monitor` / :class:`snnlab.DelayedLinear` in the convenience
wrappers) and returns a HoloViews object -- nothing is shown and nothing blocks.

Options are registered for the Bokeh backend; load the notebook extension yourself
(``hv.extension("bokeh")`` or ``pn.extension()``) or render with ``hv.render(obj, backend="bokeh")``.
Colours and sizes live in :mod:`snnlab.viz.theme`.

=====================  ==========================================================================
spikes                 :func:`spike_raster`, :func:`monitor_raster`, :func:`rate_histogram`,
                       :func:`spike_count_histogram`
membranes              :func:`membrane_traces`, :func:`monitor_traces`
delays                 :func:`delay_histogram`, :func:`delay_matrix`, :func:`gaussian_kernels`,
                       :func:`delay_snapshot`, :func:`delay_evolution`
training               :func:`learning_curves`, :class:`LiveCurves`, :func:`live_learning_curves`
refreshing a plot      :class:`PipedPlot` (new data into the same figure)
comparing runs         :func:`tradeoff_scatter`, :func:`pareto_front`, :func:`robustness_plot`
event data             :func:`event_frame`, :func:`event_animation`
=====================  ==========================================================================

Example:
    >>> import torch, holoviews as hv
    >>> from snnlab.viz import spike_raster
    >>> plot = spike_raster((torch.rand(100, 64) < 0.05).float())
    >>> fig = hv.render(plot, backend="bokeh")
"""
from snnlab.extras import require

require("holoviews", extra="lab", feature="snnlab.viz (plots)")
require("bokeh", extra="lab", feature="snnlab.viz (plots)")

from . import theme  # noqa: E402
from .curves import LiveCurves, flatten_metrics, learning_curves, live_learning_curves, series_curves
from .delays import (HISTORY_COLUMNS, delay_evolution, delay_histogram, delay_matrix, delay_snapshot,
                     gaussian_kernels)
from .events import event_animation, event_frame
from .pareto import better_direction, pareto_front
from .piped import PipedPlot
from .raster import monitor_raster, spike_coordinates, spike_raster
from .robustness import robustness_plot
from .tradeoff import tradeoff_scatter
from .traces import membrane_traces, monitor_traces, rate_histogram, spike_count_histogram

__all__ = [
    "theme",
    "spike_raster", "monitor_raster", "spike_coordinates",
    "membrane_traces", "monitor_traces", "rate_histogram", "spike_count_histogram",
    "delay_histogram", "delay_matrix", "gaussian_kernels", "delay_snapshot", "delay_evolution", "HISTORY_COLUMNS",
    "learning_curves", "series_curves", "LiveCurves", "live_learning_curves", "flatten_metrics", "PipedPlot",
    "tradeoff_scatter", "pareto_front", "better_direction",
    "robustness_plot",
    "event_frame", "event_animation",
]
