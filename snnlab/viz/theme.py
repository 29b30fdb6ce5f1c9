"""Colours, colour maps and default sizes shared by every :mod:`snnlab.viz` plot (change them here).

Example:
    >>> from snnlab.viz import theme
    >>> theme.CATEGORICAL[0], theme.CMAP_COUNTS
    ('#1f77b4', 'viridis')
"""
from __future__ import annotations

#: Categorical palette (Category10) for layers, classes, runs and metrics.
CATEGORICAL: list[str] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
#: Colour of spikes when nothing else colours them.
SPIKE_COLOR = "#222222"
#: Threshold lines in membrane plots.
THRESHOLD_COLOR = "#d62728"
#: Pareto fronts drawn over trade-off scatters.
FRONT_COLOR = "#d62728"
#: Event polarities (ON = brightness increase, OFF = decrease) as RGB in [0, 1].
ON_RGB = (1.0, 0.25, 0.1)
OFF_RGB = (0.1, 0.55, 1.0)
#: Sequential map for counts / binned rasters / rates.
CMAP_COUNTS = "viridis"
#: Sequential map for delays.
CMAP_DELAYS = "plasma"
#: Diverging map for signed data (ON - OFF events, weights).
CMAP_SIGNED = "RdBu_r"
#: Default plot size in pixels.
WIDTH = 600
HEIGHT = 300
#: Above this many spikes a raster is binned into an image instead of drawn point by point.
MAX_POINTS = 100_000
#: Resolution of binned rasters (time bins, neuron bins) at most.
RASTER_BINS = (800, 400)

#: Text of plots that have no data (yet): an empty table or history.
NO_DATA_COLOR = "#777777"
NO_DATA_FONT = "12pt"
#: Lightest shade (mix of white and the layer's colour, 0 = white) of a layer's colour ramp in binned rasters.
RAMP_START = 0.3

#: Height of one legend row in pixels (legends below a plot add one per entry).
LEGEND_ROW = 22

__all__ = ["CATEGORICAL", "SPIKE_COLOR", "THRESHOLD_COLOR", "FRONT_COLOR", "ON_RGB", "OFF_RGB", "CMAP_COUNTS",
           "CMAP_DELAYS", "CMAP_SIGNED", "WIDTH", "HEIGHT", "MAX_POINTS", "RASTER_BINS", "NO_DATA_COLOR",
           "NO_DATA_FONT", "RAMP_START", "LEGEND_ROW", "legend_below", "ramp"]


def legend_below(entries: int, height: int = HEIGHT) -> dict:
    """Bokeh options for a legend listed below the plot, one entry per row, the plot made taller to hold it
    (no legend for a single entry: Bokeh would show none anyway).

    Long labels (run names with ids) beside a small plot squeeze its data area to nothing; below it they
    take height instead.

    Example:
        >>> legend_below(3)["height"] - HEIGHT   # three entries, the legend's title and its padding
        110
        >>> legend_below(1) == {"show_legend": False, "height": HEIGHT}
        True
    """
    if entries <= 1:
        return dict(show_legend=False, height=int(height))
    return dict(show_legend=True, legend_position="bottom", legend_cols=1,
                height=int(height) + LEGEND_ROW * (int(entries) + 2))


def ramp(color: str, n: int = 64, start: float = RAMP_START) -> list[str]:
    """``n`` hex colours from a light shade of ``color`` (``start`` of the way from white) to ``color`` itself: the
    colour map of one layer in a binned raster, so that its bins keep the layer's colour.

    Example:
        >>> ramp("#1f77b4", 3, start=0.0)
        ['#ffffff', '#8fbbda', '#1f77b4']
    """
    if not (isinstance(color, str) and len(color) == 7 and color.startswith("#")):
        raise ValueError(f"ramp: color must be a hex colour like '#1f77b4', got {color!r}")
    if n < 2:
        raise ValueError(f"ramp: n must be at least 2, got {n}")
    rgb = [int(color[i:i + 2], 16) for i in (1, 3, 5)]
    out = []
    for k in range(n):
        f = start + (1.0 - start) * k / (n - 1)  # 0 = white, 1 = the colour
        out.append("#" + "".join(f"{round(255 + (c - 255) * f):02x}" for c in rgb))
    return out
