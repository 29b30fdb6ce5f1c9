"""Runs from the run store: a live table, curve comparison, the trade-off explorer and robustness curves.

Everything is read from the :class:`~snnlab.experiments.RunStore` (SQLite, WAL), so runs started
from the CLI, a notebook or a sweep appear while they train. Checkpoints are read with
:func:`snnlab.training.load_checkpoint` (``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import datetime as _dt
import warnings
from typing import Any

import holoviews as hv
import pandas as pd
import panel as pn

from snnlab.viz import learning_curves, robustness_plot, tradeoff_scatter
from snnlab.viz.pareto import metric_columns

__all__ = ["RunsPanel", "load_model_from_checkpoint", "TABLE_COLUMNS"]

TABLE_COLUMNS = ["name", "status", "run_id", "created", "updated", "message", "checkpoint"]
COMPARE_METRICS = ["loss", "accuracy", "spikes_per_sample", "test_accuracy", "test_spikes_per_sample",
                   "rounded_test_accuracy"]
TRADEOFF_DEFAULTS = ("spikes_per_sample", "accuracy")


def _fmt_time(t: Any) -> str:
    try:
        return _dt.datetime.fromtimestamp(float(t)).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def load_model_from_checkpoint(path: str):
    """``(model, test_loader, cfg)`` from a training checkpoint (loaded with ``weights_only=True``)."""
    from snnlab.core.delays import DelayedLinear
    from snnlab.training import ExperimentConfig, build_data, build_model, load_checkpoint
    from snnlab.training.model import load_model_state

    ckpt = load_checkpoint(path)
    cfg = ExperimentConfig.from_saved(ckpt["config_json"])
    _, test_loader, n_in, n_cls = build_data(cfg)
    model = build_model(cfg, n_in, n_cls)
    if ckpt.get("delays_rounded"):
        for m in model.modules():
            if isinstance(m, DelayedLinear):
                m.round_delays()
    load_model_state(model, ckpt["model"])
    model.eval()
    return model, test_loader, cfg


def _panes(obj: Any) -> list[pn.pane.HoloViews]:
    """One pane per plot of ``obj`` (the panels of an ``hv.Layout``), for a wrapping ``pn.FlexBox``.

    A Bokeh grid (what an ``hv.Layout`` becomes) in a stretching pane of this page drew its plots at
    zero size: axis stubs and legends only.
    """
    items = list(obj) if isinstance(obj, hv.Layout) else [obj]
    return [pn.pane.HoloViews(item, backend="bokeh", sizing_mode="stretch_width", min_height=300) for item in items]


def _empty(text: str) -> hv.Div:
    return hv.Div(f"<p style='color:#666'>{text}</p>")


class RunsPanel:
    """The run store's runs: ``refresh()`` re-reads the store (cheap; called periodically)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=TABLE_COLUMNS), selectable="checkbox", disabled=True, show_index=False,
            hidden_columns=["checkpoint"], height=320, sizing_mode="stretch_width", pagination=None,
            layout="fit_data_stretch")
        self.refresh_button = pn.widgets.Button(label="Refresh", width=100)
        self.refresh_button.on_click(lambda event: self.refresh(force=True))
        self.info = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.compare_pane = pn.GridBox(*_panes(_empty("Select runs in the table to compare their curves.")),
                                       ncols=2, sizing_mode="stretch_width")
        self.table.param.watch(lambda event: self.compare(), "selection")

        self.x_select = pn.widgets.Select(label="x", options=[TRADEOFF_DEFAULTS[0]], value=TRADEOFF_DEFAULTS[0],
                                          width=200)
        self.y_select = pn.widgets.Select(label="y", options=[TRADEOFF_DEFAULTS[1]], value=TRADEOFF_DEFAULTS[1],
                                          width=200)
        self.color_select = pn.widgets.Select(label="colour by", options=["(none)"], value="(none)", width=200)
        for w in (self.x_select, self.y_select, self.color_select):
            w.param.watch(lambda event: self.update_tradeoff(), "value")
        self.tradeoff_pane = pn.pane.HoloViews(_empty("Finished runs appear here."), sizing_mode="stretch_width")

        from snnlab.metrics import PERTURBATIONS

        self.perturbation = pn.widgets.Select(label="perturbation", options=list(PERTURBATIONS), width=160)
        self.levels = pn.widgets.TextInput(label="levels (comma separated)", value="0, 0.1, 0.2, 0.3", width=220)
        self.robust_button = pn.widgets.Button(label="Robustness of selected runs", color="primary")
        self.robust_button.on_click(lambda event: self.robustness())
        self.robust_pane = pn.GridBox(*_panes(_empty("Select finished runs with a checkpoint and press the button.")),
                                      ncols=2, sizing_mode="stretch_width")
        self._runs = pd.DataFrame(columns=TABLE_COLUMNS)
        self._n_summaries = -1
        self._summaries = pd.DataFrame()

        self.runs_view = pn.Column(pn.Row(self.refresh_button, self.info), self.alert, self.table,
                                   pn.pane.Markdown("### Compare selected runs"), self.compare_pane,
                                   sizing_mode="stretch_width")
        self.tradeoff_view = pn.Column(pn.Row(self.x_select, self.y_select, self.color_select), self.tradeoff_pane,
                                       pn.pane.Markdown("### Robustness"),
                                       pn.Row(self.perturbation, self.levels, self.robust_button), self.robust_pane,
                                       sizing_mode="stretch_width")

    # ------------------------------------------------------------------ table
    def selected_ids(self) -> list[str]:
        sel = [i for i in (self.table.selection or []) if 0 <= i < len(self._runs)]
        return self._runs.iloc[sel]["run_id"].tolist()

    def refresh(self, force: bool = False) -> None:
        """Re-read the run list (and the summaries when their number changed)."""
        try:
            runs = self.store.list_runs()
        except Exception as e:  # noqa: BLE001 - a locked or missing store must not break the page
            self.info.object = f"cannot read the run store: {e}"
            return
        runs = runs.assign(created=runs["created"].map(_fmt_time), updated=runs["updated"].map(_fmt_time),
                           message=runs["message"].fillna("").astype(str).str.slice(0, 200))[TABLE_COLUMNS]
        runs = runs.iloc[::-1].reset_index(drop=True)  # newest first
        if force or not runs.equals(self._runs):
            keep = set(self.selected_ids())
            self._runs = runs
            self.table.value = runs
            self.table.selection = [i for i, r in enumerate(runs["run_id"]) if r in keep]
        self.info.object = f"{len(runs)} runs in `{self.store.path}`"
        n_sum = int((runs["status"] == "finished").sum())
        if force or n_sum != self._n_summaries:
            self._n_summaries = n_sum
            self.update_tradeoff(reload=True)

    # ------------------------------------------------------------------ comparison
    def compare(self) -> None:
        ids = self.selected_ids()
        if not ids:
            self.compare_pane.objects = _panes(_empty("Select runs in the table to compare their curves."))
            return
        df = self.store.metrics(ids)
        names = [n for n in COMPARE_METRICS if n in set(df["name"])]
        if not names:
            self.compare_pane.objects = _panes(_empty("The selected runs have no metrics yet."))
            return
        labels = dict(zip(self._runs["run_id"], self._runs["name"] + " (" + self._runs["run_id"] + ")"))
        self.compare_pane.objects = _panes(learning_curves(df, names=names, labels=labels))

    # ------------------------------------------------------------------ trade-offs
    def update_tradeoff(self, reload: bool = False) -> None:
        if reload:
            try:
                self._summaries = self.store.summaries()
            except Exception as e:  # noqa: BLE001
                self.tradeoff_pane.object = _empty(f"cannot read summaries: {e}")
                return
            df = self._summaries
            metrics = metric_columns(df)  # the numeric columns whose better direction is known
            configs = [c[len("config."):] for c in df.columns if str(c).startswith("config.")]
            for w, default in ((self.x_select, TRADEOFF_DEFAULTS[0]), (self.y_select, TRADEOFF_DEFAULTS[1])):
                if metrics and list(w.options) != metrics:
                    value = w.value if w.value in metrics else (default if default in metrics else metrics[0])
                    w.param.update(options=metrics, value=value)
            opts = ["(none)"] + configs
            if list(self.color_select.options) != opts:
                self.color_select.param.update(options=opts, value=self.color_select.value
                                               if self.color_select.value in opts else "(none)")
        df = self._summaries
        x, y = self.x_select.value, self.y_select.value
        if df.empty or x not in df.columns or y not in df.columns:
            self.tradeoff_pane.object = _empty("Finished runs appear here (trade-off of their final metrics).")
            return
        color = None if self.color_select.value in (None, "(none)") else self.color_select.value
        try:
            plot = tradeoff_scatter(df.dropna(subset=[x, y]), x, y, color=color)
            self.tradeoff_pane.object = plot.opts(width=820, height=380, title=f"{y} vs {x}", backend="bokeh")
        except Exception as e:  # noqa: BLE001
            self.tradeoff_pane.object = _empty(f"cannot draw the trade-off: {e}")

    # ------------------------------------------------------------------ robustness
    def robustness(self) -> None:
        from snnlab.metrics import robustness_curve

        self.alert.visible = False
        try:
            levels = [float(t) for t in self.levels.value.replace(";", ",").split(",") if t.strip()]
        except ValueError as e:
            self.robust_pane.objects = _panes(_empty(f"levels: {e}"))
            return
        ids = self.selected_ids()
        rows = self._runs.set_index("run_id").loc[ids] if ids else self._runs.iloc[:0]
        with_ckpt = [(r, row) for r, row in rows.iterrows() if row["checkpoint"]]
        if not with_ckpt or not levels:
            self.robust_pane.objects = _panes(_empty("Select runs that have a checkpoint, and give at least one level."))
            return
        tables, notes = [], []
        for run_id, row in with_ckpt:
            try:
                with warnings.catch_warnings(record=True) as caught:  # shown on the page, not only in the server log
                    warnings.simplefilter("always")
                    model, loader, cfg = load_model_from_checkpoint(row["checkpoint"])
                notes += [f"run {run_id}: {w.message}" for w in caught]
                curve = robustness_curve(model, loader, self.perturbation.value, levels, readout=cfg.readout,
                                         max_batches=cfg.eval_max_batches or 10, device="cpu")
            except Exception as e:  # noqa: BLE001
                self.robust_pane.objects = _panes(_empty(f"run {run_id}: {type(e).__name__}: {e}"))
                return
            tables.append(curve.assign(name=f"{row['name']} ({run_id})"))
        plot = _panes(robustness_plot(pd.concat(tables, ignore_index=True), by="name"))
        warning = [pn.pane.Alert("\n\n".join(notes), alert_type="warning", sizing_mode="stretch_width")]
        self.robust_pane.objects = (warning if notes else []) + list(plot)
