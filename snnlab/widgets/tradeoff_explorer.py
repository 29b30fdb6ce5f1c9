"""Compare runs: scatter of two metrics (accuracy, spikes, synops, energy, latency, robustness) with the Pareto front.

Rows come from a :class:`~snnlab.experiments.RunStore` (``summaries()``: one row per finished run,
``config.<field>`` columns next to the metrics; **Refresh** re-reads it) or from a DataFrame of the
same shape. ``x`` / ``y`` offer the metric columns present and any numeric column passed by name as
``x=`` / ``y=``, a ``config.<field>`` one included (``x="lr"`` finds ``config.lr``: accuracy over a swept
hyper-parameter); ``color`` any ``config.<field>`` column (or none) and any other column passed by name as
``color=`` (e.g. ``"model"``, or ``"mask_p"`` in a :func:`~snnlab.metrics.metrics_table`); a name that
matches no column (or, for ``x`` / ``y``, no numeric one: text, True/False, only missing values) is reported
in the message and the current choice (at first the default) is shown instead; so is an axis column that a
**Refresh** no longer finds. Whether higher or lower is better on each
axis is read from the column name (:func:`snnlab.viz.pareto.better_direction`: accuracy and
robustness columns up, costs down) unless chosen in ``x better`` / ``y better`` (or ``maximize_x`` /
``maximize_y``); for a column whose name does not tell, and for any ``config.<field>`` column (a setting, not
an outcome: ``config.time_limit`` is no cost), no front is drawn and the message asks for the direction (never
a silent guess).
The plot is :func:`snnlab.viz.tradeoff_scatter`; the front rows are in ``.front``.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"name": ["a", "b"], "config.lr": [1e-3, 1e-2],
    ...                    "accuracy": [0.8, 0.9], "spikes_per_sample": [100.0, 300.0]})
    >>> ex = TradeoffExplorer(df)
    >>> ex.x.value, ex.y.value, len(ex.front)
    ('spikes_per_sample', 'accuracy', 2)
    >>> TradeoffExplorer(df, x="lr").x.value
    'config.lr'
"""
from __future__ import annotations

import html
import numbers
from typing import Any

import ipywidgets as W
import numpy as np
import pandas as pd

from snnlab.experiments.store import varying_columns
from snnlab.viz import pareto_front, tradeoff_scatter
from snnlab.viz.pareto import METRICS, known_direction as _direction, metric_columns

from ._hv import HoloViewsWidget
from ._lifecycle import close_descendants

__all__ = ["TradeoffExplorer", "METRICS", "metric_columns"]

NO_COLOR = "(none)"
#: Choices of the ``x better`` / ``y better`` controls: from the column name, or set by the user.
DIRECTIONS = (("auto (from the name)", "auto"), ("higher is better", "max"), ("lower is better", "min"))


class TradeoffExplorer(W.VBox):
    """Interactive trade-off scatter of runs (see the module docstring).

    Example:
        >>> df = pd.DataFrame({"accuracy": [0.9, 0.8, 0.7], "energy_per_sample_j": [3e-6, 1e-6, 2e-6]})
        >>> ex = TradeoffExplorer(df)
        >>> ex.x.value, ex.front.index.tolist()        # run 2 is worse than run 1 on both axes
        ('energy_per_sample_j', [1, 0])
        >>> ex.x_better.value = "max"; ex.front.index.tolist()   # now more energy counts as better
        [0]

    Args:
        source: a ``RunStore`` (anything with ``summaries()``) or a DataFrame.
        x, y, color: initial choices (default: the first cost metric on x, accuracy on y, no colour); a
            column asked for by name stays offered on **Refresh**.
        maximize_x, maximize_y: whether larger is better on each axis (``True`` / ``False``; default ``None``:
            from the column name).

    Raises:
        TypeError: ``maximize_x`` / ``maximize_y`` is not a bool or None.

    Attributes:
        x, y, color, show_front, refresh_button: the controls; ``x_better`` / ``y_better``: the
        direction of each axis (``"auto"``, ``"max"``, ``"min"``); ``message``: problems as text.
        df: the rows shown; ``plot``: the plot slot (``plot.object`` is the ``hv.Overlay``);
        front: the Pareto-front rows of the current axes.
    """

    def __init__(self, source: Any, x: str | None = None, y: str | None = None, color: str | None = None,
                 plot_mode: str = "auto", maximize_x: bool | None = None, maximize_y: bool | None = None,
                 **kwargs: Any) -> None:
        for name, value in (("maximize_x", maximize_x), ("maximize_y", maximize_y)):
            if value is not None and not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"TradeoffExplorer: {name} must be True, False or None (from the column name), "
                                f"got {value!r}")
        self.source = source
        self.df = pd.DataFrame()
        self._asked: dict[Any, None] = {}  # numeric columns named as x= / y=: offered while they are in the runs
        self.front = pd.DataFrame()
        self.x = W.Dropdown(description="x")
        self.y = W.Dropdown(description="y")
        self.color = W.Dropdown(description="colour", options=[NO_COLOR])
        self.x_better = W.Dropdown(description="x better", options=DIRECTIONS, value=_choice(maximize_x))
        self.y_better = W.Dropdown(description="y better", options=DIRECTIONS, value=_choice(maximize_y))
        self.show_front = W.Checkbox(value=True, description="Pareto front")
        self.refresh_button = W.Button(description="Refresh", icon="refresh", tooltip="re-read the run store")
        self.message = W.HTML()
        self._note = ""  # a problem with the arguments, shown with every message
        self.plot = HoloViewsWidget(None, mode=plot_mode)
        self._busy = False
        self.refresh(x=x, y=y, color=color)
        for column, better in ((self.x, self.x_better), (self.y, self.y_better)):
            # a direction chosen for one column is not carried over to the next one
            column.observe(lambda _, better=better: self._reset_direction(better), names="value")
        for w in (self.x, self.y, self.x_better, self.y_better, self.color, self.show_front):
            w.observe(lambda _: self._draw(), names="value")
        self.refresh_button.on_click(lambda _: self.refresh())
        controls = W.HBox([W.VBox([self.x, self.y]), W.VBox([self.x_better, self.y_better]),
                           W.VBox([self.color, self.show_front]), self.refresh_button])
        super().__init__(children=[controls, self.message, self.plot.widget], **kwargs)

    # ------------------------------------------------------------------ data
    def _read(self) -> pd.DataFrame:
        src = self.source
        if isinstance(src, pd.DataFrame):
            return src.copy()
        if hasattr(src, "summaries"):
            return src.summaries()
        if callable(src):
            return src()
        raise TypeError(f"TradeoffExplorer: expected a RunStore or a DataFrame, got {type(src).__name__}")

    def refresh(self, x: str | None = None, y: str | None = None, color: str | None = None) -> None:
        """Re-read the rows, update the choices (keeping the current ones where possible) and redraw.

        Example:
            >>> rows = {"df": pd.DataFrame({"accuracy": [0.9], "spikes_per_sample": [120.0]})}
            >>> ex = TradeoffExplorer(lambda: rows["df"])
            >>> rows["df"] = pd.DataFrame({"accuracy": [0.9, 0.95], "spikes_per_sample": [120.0, 80.0]})
            >>> ex.refresh(); len(ex.df), ex.front.index.tolist()
            (2, [1])
        """
        try:
            df = self._read()
        except Exception as e:  # a locked or missing store: say so, keep the old rows
            self._set_message(f"could not read the runs: {type(e).__name__}: {e}")
            return
        self.df = df.reset_index(drop=True)
        numeric = [c for c in self.df.columns if _plottable(self.df[c])]
        notes: list[str] = []
        x, y = self._axis_column("x", x, numeric, notes), self._axis_column("y", y, numeric, notes)
        self._asked.update(dict.fromkeys(c for c in (x, y) if c is not None))
        # columns asked for by name stay choosable even where their direction is unknown (config ones too)
        asked = [c for c in self._asked if c in numeric]
        metrics = [c for c in metric_columns(self.df) if c in numeric]  # (True/False columns: no axis)
        metrics = metrics + [c for c in asked if c not in metrics]
        configs = [c for c in self.df.columns if str(c).startswith("config.")]
        varying = varying_columns(self.df, configs)
        colors = [NO_COLOR] + varying + [c for c in configs if c not in varying]
        gone = [(axis, old) for axis, new, old in (("x", x, self.x.value), ("y", y, self.y.value))
                if new is None and old is not None and old not in metrics and not self.df.empty]
        x = x or (self.x.value if self.x.value in metrics else None)
        y = y or (self.y.value if self.y.value in metrics else None)
        asked_color = color
        color = color if color is not None else self.color.value
        if color not in colors and color not in self.df.columns and f"config.{color}" in colors:
            color = f"config.{color}"
        if color not in colors and color in self.df.columns:  # any column asked for by name (kept on refresh)
            colors.append(color)
        if asked_color is not None and asked_color not in colors and asked_color != NO_COLOR and color not in colors:
            notes.append(f"no column {asked_color!r} to colour by (neither {asked_color!r} nor "
                         f"'config.{asked_color}' is in the runs)")
        costs = [m for m in metrics if _axis_direction(m) is False]
        gains = [m for m in metrics if _axis_direction(m) is True]
        x = x if x in metrics else (costs[0] if costs else (metrics[0] if metrics else None))
        others = [m for m in gains if m != x] + [m for m in metrics if m != x and m not in gains]
        y = y if y in metrics else (others[0] if others else None)  # never x again: one metric plots nothing
        for axis, old in gone:  # the column shown before is not in the re-read runs (or no longer numeric)
            notes.append(f"column {old!r} (on {axis}) is no longer a numeric column of the runs: showing "
                         f"{(x if axis == 'x' else y)!r} instead")
        self._note = "; ".join(notes)
        self._busy = True
        try:
            self.x.options, self.y.options, self.color.options = metrics, metrics, colors
            self.x.value, self.y.value = x, y
            self.color.value = color if color in colors else NO_COLOR
        finally:
            self._busy = False
        self._draw()

    def _axis_column(self, axis: str, name: Any, numeric: list, notes: list[str]) -> Any:
        """The numeric column ``name`` (or ``config.<name>``) asked for as ``axis``; None, with a note saying
        why, when the runs have no such numeric column (None when nothing was asked for)."""
        if name is None:
            return None
        if name in numeric:
            return name
        if name not in self.df.columns and f"config.{name}" in numeric:
            return f"config.{name}"
        column = name if name in self.df.columns else f"config.{name}"
        if column not in self.df.columns:
            notes.append(f"no column {name!r} to plot on {axis} (neither {name!r} nor 'config.{name}' is in the runs)")
        elif _is_bool(self.df[column]):
            notes.append(f"column {column!r} is True/False, not numbers to plot on {axis} (colour by it instead)")
        else:
            values = self.df[column].dropna()
            n = sum(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in values)
            notes.append(f"column {column!r} has no numbers to plot on {axis}" if not n else
                         f"column {column!r} is not numeric in every run ({n} of {len(values)} values are numbers): "
                         f"cannot plot it on {axis}" if n < len(values) else
                         f"column {column!r} is not a numeric column (dtype {self.df[column].dtype}): cannot plot "
                         f"it on {axis}")
        return None

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        if self._busy:
            return
        x, y = self.x.value, self.y.value
        color = None if self.color.value in (None, NO_COLOR) else self.color.value
        if self.df.empty or x is None or y is None:
            self._clear("no runs with results yet" if self.df.empty else "need two numeric metric columns")
            return
        if x == y:
            self._clear(f"x and y are both {x!r}: choose two different columns")
            return
        mx, my = self.direction("x"), self.direction("y")
        unknown = [f"{c!r} (choose it in '{axis} better')" for axis, c, m in (("x", x, mx), ("y", y, my)) if m is None]
        try:
            if unknown:  # no silent guess: plot the runs without a front until the user says
                self.front = pd.DataFrame()
                self.plot.object = tradeoff_scatter(self.df, x, y, color=color, front=False)
            else:
                self.front = pareto_front(self.df, x, y, mx, my)
                self.plot.object = tradeoff_scatter(self.df, x, y, color=color, front=self.show_front.value,
                                                    maximize_x=mx, maximize_y=my)
        except Exception as e:  # not the last axes' plot and front
            self._clear(f"cannot plot {y} over {x}: {type(e).__name__}: {e}")
            return
        n_ok = int((self.df[x].notna() & self.df[y].notna()).sum())
        if unknown:
            self._set_message(f"{n_ok} runs; no Pareto front: don't know whether higher or lower is better for "
                              + " and ".join(unknown))
            return
        self._set_message(f"{n_ok} runs, {len(self.front)} on the Pareto front "
                          f"({'higher' if mx else 'lower'} {x} and {'higher' if my else 'lower'} {y} are better)",
                          error=False)

    def _clear(self, message: str) -> None:
        """No plot and no front, with ``message`` saying why."""
        self.front = pd.DataFrame()
        self.plot.object = None
        self._set_message(message)

    def _reset_direction(self, better: W.Dropdown) -> None:
        busy, self._busy = self._busy, True
        try:
            better.value = "auto"
        finally:
            self._busy = busy

    def direction(self, axis: str) -> bool | None:
        """Whether larger is better on ``axis`` (``"x"`` or ``"y"``): the user's choice, else the column
        name's (:func:`snnlab.viz.pareto.known_direction`); ``None`` when neither tells.

        Example:
            >>> df = pd.DataFrame({"accuracy": [0.9, 0.8], "spikes_per_sample": [1.0, 2.0], "score": [3.0, 4.0]})
            >>> ex = TradeoffExplorer(df)
            >>> ex.direction("x"), ex.direction("y")
            (False, True)
            >>> ex = TradeoffExplorer(df, x="score"); ex.direction("x") is None     # the name does not tell
            True
            >>> TradeoffExplorer(df.assign(**{"config.time_limit": [5.0, 9.0]}), x="time_limit").direction("x") is None
            True
            >>> ex.x_better.value = "max"; ex.direction("x")
            True
        """
        choice = (self.x_better if axis == "x" else self.y_better).value
        if choice != "auto":
            return choice == "max"
        column = (self.x if axis == "x" else self.y).value
        return _axis_direction(column)

    def _set_message(self, text: str, error: bool = True) -> None:
        if self._note:
            text, error = f"{text}; {self._note}", True
        style = "color:#b00020" if error else "color:#555"
        self.message.value = f"<span style='{style}'>{html.escape(text)}</span>"

    def close(self) -> None:
        """Close the controls and the plot (every child ipywidget, the Panel pane) and drop the source.

        Example:
            >>> from snnlab.widgets._lifecycle import registered_widgets
            >>> before = registered_widgets()
            >>> ex = TradeoffExplorer(pd.DataFrame({"accuracy": [0.9], "spikes_per_sample": [1.0]})); ex.close()
            >>> registered_widgets() == before
            True
        """
        self.source = None  # e.g. a RunStore
        plot = getattr(self, "plot", None)  # (none when Widget.__del__ closes after a failed __init__)
        if plot is not None:
            plot.close()
        close_descendants(self)
        super().close()

    @property
    def scatter(self) -> Any:
        """The ``hv.Scatter`` of the runs shown now (None without a plot).

        Example:
            >>> ex = TradeoffExplorer(pd.DataFrame({"accuracy": [0.9, 0.8], "spikes_per_sample": [10.0, 5.0]}))
            >>> len(ex.scatter), ex.scatter.kdims[0].name
            (2, 'spikes_per_sample')
            >>> ex.y.value = ex.x.value; ex.scatter is None      # x = y: nothing is plotted
            True
            >>> ex.close()
        """
        obj = self.plot.object
        if obj is None:
            return None
        return next((e for e in obj if type(e).__name__ == "Scatter"), None)


def _axis_direction(column: Any) -> bool | None:
    """Whether larger is better on ``column`` from its name; ``None`` where the name does not tell (a
    ``config.<field>`` column among them: a setting, not an outcome)."""
    return None if column is None else _direction(str(column))


def _is_bool(values: pd.Series) -> bool:
    """Whether ``values`` is a True/False column (numeric to pandas, but no axis: Bokeh cannot range it)."""
    return pd.api.types.is_bool_dtype(values)


def _plottable(values: pd.Series) -> bool:
    """Whether ``values`` can be an axis: a numeric, not True/False, column with at least one value."""
    return pd.api.types.is_numeric_dtype(values) and not _is_bool(values) and bool(values.notna().any())


def _choice(maximize: bool | None) -> str:
    return "auto" if maximize is None else ("max" if maximize else "min")
