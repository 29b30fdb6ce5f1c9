"""Runs from the run store: a live table, curve comparison, the trade-off explorer and robustness curves; selected
runs can be deleted (after a confirmation; their files too when asked).

Everything is read from the :class:`~snnlab.experiments.RunStore` (SQLite, WAL), so runs started
from the CLI, a notebook or a sweep appear while they train. Checkpoints are read with
:func:`snnlab.training.load_checkpoint` (``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import html
import re
import threading
import warnings
from typing import Any

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import torch

from snnlab.experiments.run_files import ERROR, remove_run_files
from snnlab.experiments.store import gc_paused
from snnlab.training.precision import forward_precision
from snnlab.viz import robustness_plot, series_curves, tradeoff_scatter
from snnlab.viz.pareto import metric_columns

__all__ = ["RunsPanel", "load_model_from_checkpoint", "TABLE_COLUMNS", "DELETE_FILES_LABEL"]

TABLE_COLUMNS = ["name", "status", "run_id", "created", "updated", "message", "checkpoint"]
COMPARE_METRICS = ["loss", "accuracy", "spikes_per_sample", "test_accuracy", "test_spikes_per_sample",
                   "rounded_test_accuracy"]
TRADEOFF_DEFAULTS = ("spikes_per_sample", "accuracy")
#: points drawn per compared curve at most (:func:`snnlab.viz.curves.downsample_minmax`: the min and max of a
#: bucket per pixel column of a ~600 px plot); 20 runs of 20k-200k steps sent 41.7 MB to the browser
COMPARE_POINTS = 1000
#: a served page compares the selected runs once their selection has not changed for this long (ms): the
#: browser's table clears its checkboxes on every patch of its cells and restores them a moment later
#: (Panel 1.9's tabulator.ts), which would redraw (and re-send) the comparison at every poll while a run trains
SELECTION_SETTLE_MS = 300
#: header filters of the runs table: find a run among thousands by (part of) its name or by status
HEADER_FILTERS = {"name": {"type": "input", "func": "like", "placeholder": "filter by name"},
                  "status": {"type": "input", "func": "like", "placeholder": "status"}}
#: the confirmation's checkbox (off at each confirmation): also remove the deleted runs' files
#: (:func:`snnlab.experiments.run_files.remove_run_files`, what ``snnlab runs delete --files`` does)
DELETE_FILES_LABEL = ("also remove their files: each checkpoint that still holds its run, and each run folder that "
                      "holds nothing but snnlab's files")
#: runs named in the confirmation at most (the others are counted)
DELETE_NAMES_SHOWN = 10


def _md(text: str) -> str:
    """``text`` shown as it is in a Markdown pane (run names, paths and messages: no markup, no HTML), on one line
    (a line break in a run name would end the sentence's paragraph and start a list or a heading)."""
    one_line = re.sub(r"\s*[\r\n]+\s*", " ", str(text))
    return re.sub(r"([\\`*_\[\]#|~])", r"\\\1", html.escape(one_line, quote=False))


def _fmt_time(t: Any) -> str:
    try:
        return _dt.datetime.fromtimestamp(float(t)).strftime("%Y-%m-%d %H:%M:%S")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def load_model_from_checkpoint(path: str, run_id: str | None = None):
    """``(model, test_loader, cfg)`` from a training checkpoint (loaded with ``weights_only=True``); ``run_id``: the
    stored run it is loaded for, refused (``ValueError``, :func:`~snnlab.training.checkpoint.check_checkpoint_run`)
    when the file now holds another run's checkpoint.

    Only runs whose network and data both come from their configuration can be rebuilt: a run trained with a model
    or data passed to the Trainer (:func:`~snnlab.training.model.custom_parts`) raises
    :class:`~snnlab.training.model.CustomRunError` (its ``cfg.dataset`` is not the data it was trained and tested
    on: evaluating on it would fail on the shapes, or measure the wrong data where they fit).
    """
    from snnlab.training import build_data
    from snnlab.training.model import CustomRunError, custom_parts, model_and_checkpoint

    model, cfg, ckpt = model_and_checkpoint(path, run_id)  # (refuses a model of the user's own)
    if "data" in custom_parts(ckpt):
        raise CustomRunError(
            f"load_model_from_checkpoint: {path} holds a run trained on data of your own (passed to "
            f"Trainer(cfg, train_loader=..., test_loader=...)), not on its configuration's dataset {cfg.dataset!r}, "
            "so it cannot be evaluated here; evaluate it in Python on your test loader, e.g. "
            "snnlab.metrics.robustness_curve(model, test_loader, ...) with "
            "model, cfg = snnlab.training.model_from_checkpoint(path)")
    _, test_loader, _, _ = build_data(cfg)
    return model, test_loader, cfg


def _panes(obj: Any) -> list[pn.pane.HoloViews]:
    """One pane per plot of ``obj`` (the panels of an ``hv.Layout``), for a wrapping ``pn.FlexBox``.

    A Bokeh grid (what an ``hv.Layout`` becomes) in a stretching pane of this page drew its plots at
    zero size: axis stubs and legends only.
    """
    items = list(obj) if isinstance(obj, hv.Layout) else [obj]
    return [pn.pane.HoloViews(item, backend="bokeh", sizing_mode="stretch_width", min_height=300) for item in items]


def in_server_session() -> bool:
    """Whether this runs in a ``panel serve`` session (not a notebook or a test)."""
    doc = pn.state.curdoc
    return doc is not None and getattr(doc, "session_context", None) is not None


def _fingerprint(series: dict[tuple[str, str, str], tuple[Any, Any]], names: list[str],
                 labels: dict[str, str]) -> tuple:
    """What a comparison shows, in a few bytes: the metrics, each run's label and a digest of every series' points
    (equal fingerprints: the same plots)."""
    digest = hashlib.blake2b(digest_size=16)
    for key in sorted(series):
        xs, ys = (np.ascontiguousarray(a) for a in series[key])
        digest.update(repr((key, xs.shape, xs.dtype.str, ys.shape, ys.dtype.str)).encode())
        digest.update(xs)
        digest.update(ys)
    runs = sorted({run for run, _, _ in series})
    return tuple(names), tuple((r, labels.get(r, r)) for r in runs), digest.hexdigest()


def _empty(text: str) -> hv.Div:
    return hv.Div(f"<p style='color:#666'>{text}</p>")


class RunsPanel:
    """The run store's runs: ``refresh()`` re-reads the store (cheap; called periodically).

    The selection is kept by run id: a refresh that adds runs (newest first, so the rows move) selects the same
    runs again and does not re-draw the comparison; only cells that changed (``updated``, ``status``, ...) of
    rows already shown are sent to the browser (``Tabulator.patch``), the whole table only when runs come or go.

    Deleting runs: ``delete_button`` (disabled with no selection, and for a read-only store) asks first
    (:meth:`ask_delete`: the runs it names, and ``delete_files``, off); ``confirm_button`` deletes exactly those
    (:meth:`confirm_delete`), ``cancel_button`` nothing (:meth:`cancel_delete`). ``delete_alert`` says what was
    deleted, or why nothing was (a live run: :meth:`RunStore.delete_runs <snnlab.experiments.RunStore.delete_runs>`).
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=TABLE_COLUMNS), selectable="checkbox", disabled=True, show_index=False,
            hidden_columns=["checkpoint"], height=320, sizing_mode="stretch_width", pagination=None,
            layout="fit_data_stretch", header_filters=HEADER_FILTERS)
        self.refresh_button = pn.widgets.Button(label="Refresh", width=100)
        self.refresh_button.on_click(lambda event: self.refresh(force=True))
        self.info = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.alert = pn.pane.Alert("", alert_type="danger", visible=False, sizing_mode="stretch_width")
        self.compare_pane = pn.GridBox(*_panes(_empty("Select runs in the table to compare their curves.")),
                                       ncols=2, sizing_mode="stretch_width")
        self._compared: list[str] = []  # the run ids the comparison shows (in table order)
        self._shown: tuple | None = None  # the _fingerprint of the plots shown (None: no plots)
        self._remapping = False  # refresh() re-selects the same runs at their new rows: no comparison
        self._settle_lock = threading.Lock()  # (a served page handles its events on a thread pool)
        self._settling = False
        self.table.param.watch(self._on_selection, "selection")

        self.read_only = bool(getattr(store, "read_only", False))
        self.delete_button = pn.widgets.Button(
            label="Delete selected runs", color="danger", width=170, disabled=True,
            description=("The run store is read-only: runs cannot be deleted from this page" if self.read_only
                         else "Asks first; live runs are refused"))
        self.delete_button.on_click(lambda event: self.ask_delete())
        self.delete_question = pn.pane.Markdown("", sizing_mode="stretch_width")
        self.delete_files = pn.widgets.Checkbox(label=DELETE_FILES_LABEL, value=False)
        self.confirm_button = pn.widgets.Button(label="Confirm delete", color="danger", width=130)
        self.confirm_button.on_click(lambda event: self.confirm_delete())
        self.cancel_button = pn.widgets.Button(label="Cancel", width=100)
        self.cancel_button.on_click(lambda event: self.cancel_delete())
        self.delete_confirm = pn.Column(self.delete_question, self.delete_files,
                                        pn.Row(self.confirm_button, self.cancel_button), visible=False,
                                        sizing_mode="stretch_width", styles={"border": "1px solid #dc3545",
                                                                             "border-radius": "4px"})
        self.delete_alert = pn.pane.Alert("", alert_type="success", visible=False, sizing_mode="stretch_width")
        self._pending: dict[str, str] = {}  # run id -> its label: the runs the confirmation names

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
        self._finished: frozenset | None = None  # the finished runs' ids the trade-off was loaded for
        self._summaries = pd.DataFrame()

        self.runs_view = pn.Column(pn.Row(self.refresh_button, self.delete_button, self.info), self.delete_confirm,
                                   self.delete_alert, self.alert, self.table,
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

    def _on_selection(self, event: Any) -> None:
        if self._remapping:
            return
        if not in_server_session():  # a notebook, a test: at once
            self._compare_if_changed()
            return
        with self._settle_lock:  # served: once the selection settles (see SELECTION_SETTLE_MS)
            if self._settling:
                return
            self._settling = True
        pn.state.add_periodic_callback(self._settled, period=SELECTION_SETTLE_MS, count=1)

    def _settled(self) -> None:
        with self._settle_lock:
            self._settling = False
        self._compare_if_changed()

    def _compare_if_changed(self) -> None:
        self._sync_delete_button()
        if set(self.selected_ids()) != set(self._compared):
            self.compare()

    def _changed_cells(self, runs: pd.DataFrame) -> dict[str, list[tuple[int, Any]]] | None:
        """``{column: [(row, new value), ...]}`` of the cells that differ from the table shown, or ``None`` when
        the rows themselves differ (runs added or removed): then the whole table is sent again."""
        old = self._runs
        if len(old) != len(runs) or list(old.columns) != list(runs.columns) or not old["run_id"].equals(runs["run_id"]):
            return None
        differ = ~((old == runs) | (old.isna() & runs.isna()))
        return {c: [(int(i), runs[c].iat[i]) for i in differ.index[differ[c]]] for c in runs.columns if differ[c].any()}

    def refresh(self, force: bool = False) -> None:
        """Re-read the run list (and the summaries when the finished runs changed)."""
        try:
            runs = self.store.list_runs()
        except Exception as e:  # noqa: BLE001 - a locked or missing store must not break the page
            self.info.object = f"cannot read the run store: {e}"
            return
        runs = runs.assign(created=runs["created"].map(_fmt_time), updated=runs["updated"].map(_fmt_time),
                           message=runs["message"].fillna("").astype(str).str.slice(0, 200))[TABLE_COLUMNS]
        runs = runs.iloc[::-1].reset_index(drop=True)  # newest first
        patch = None if force else self._changed_cells(runs)
        if patch:  # the same runs: only the cells that changed (the `updated` time of a training run...)
            self._runs = runs
            self.table.patch(patch)
        elif patch is None:  # runs came or went: the whole table, the same runs selected at their new rows
            keep = self.selected_ids()
            self._runs = runs
            self._remapping = True
            try:
                self.table.value = runs
                position = {r: i for i, r in enumerate(runs["run_id"])}
                self.table.selection = sorted(position[r] for r in keep if r in position)
            finally:
                self._remapping = False
            if (force and keep) or set(self.selected_ids()) != set(self._compared):  # Refresh, or a selected run gone
                self.compare()
            self._sync_delete_button()
        self.info.object = f"{len(runs)} runs in `{self.store.path}`" + (
            " (read-only: runs cannot be deleted here)" if self.read_only else "")
        # the finished runs themselves, not their number: one deleted (another page, `snnlab runs delete`) while
        # another finishes leaves the number as it was, and the trade-off would keep the deleted run's point
        finished = frozenset(runs.loc[runs["status"] == "finished", "run_id"])
        if force or finished != self._finished:
            self._finished = finished
            self.update_tradeoff(reload=True)

    # ------------------------------------------------------------------ deleting runs
    def _sync_delete_button(self) -> None:
        self.delete_button.disabled = self.read_only or not self.selected_ids()

    def _say(self, text: str, alert_type: str) -> None:
        self.delete_alert.param.update(object=text, alert_type=alert_type, visible=True)

    def ask_delete(self) -> None:
        """The delete button: re-read the store (runs deleted elsewhere leave the selection), then ask to confirm
        the deletion of the selected runs (nothing is deleted here)."""
        self.delete_alert.visible = False
        before = self.selected_ids()
        self.refresh()
        ids = self.selected_ids()
        gone = [r for r in before if r not in ids]
        note = f" ({len(gone)} of the selected runs were deleted elsewhere meanwhile)" if gone else ""
        if self.read_only:
            self._say("The run store is read-only: runs cannot be deleted from this page.", "warning")
            return
        if not ids:
            self._pending = {}
            self.delete_confirm.visible = False
            self._say(f"Select the runs to delete in the table{note}.", "warning")
            return
        rows = self._runs.set_index("run_id").loc[ids]
        self._pending = {r: _md(f"{row['name']} ({r})") for r, row in rows.iterrows()}
        shown = list(self._pending.values())[:DELETE_NAMES_SHOWN]
        more = f" and {len(ids) - len(shown)} more" if len(ids) > len(shown) else ""
        self.delete_files.value = False
        self.delete_question.object = (
            f"**Delete {len(ids)} run{'s' if len(ids) != 1 else ''}** ({', '.join(shown)}{more})?{note} "
            "They leave the run store with their metrics; their files stay on disk unless the box is ticked.")
        self.delete_confirm.visible = True

    def cancel_delete(self) -> None:
        """The confirmation's Cancel: nothing is deleted."""
        self._pending = {}
        self.delete_confirm.visible = False
        self._say("Nothing deleted.", "info")

    def confirm_delete(self) -> dict[str, str | None]:
        """The confirmation's Confirm: delete the runs it named (:meth:`RunStore.delete_runs`; their files too when
        ``delete_files`` is ticked), clear the selection, re-read the table and say what was deleted. Runs deleted
        elsewhere meanwhile are left out; a refused deletion (a live run) deletes nothing and shows the store's
        message. Returns the store's ``{run id: checkpoint path or None}`` of the runs deleted."""
        pending, self._pending = self._pending, {}
        self.delete_confirm.visible = False
        if not pending:
            return {}
        try:
            present = set(self.store.list_runs()["run_id"])
        except Exception as e:  # noqa: BLE001 - a locked or missing store must not break the page
            self._say(f"Nothing deleted: cannot read the run store: {_md(e)}", "danger")
            return {}
        gone = [r for r in pending if r not in present]
        ids = [r for r in pending if r in present]
        try:
            deleted = self.store.delete_runs(ids) if ids else {}
        except ValueError as e:  # unknown (deleted meanwhile) or live runs: nothing deleted
            self._say(_md(e), "danger")
            self.refresh()
            return {}
        except Exception as e:  # noqa: BLE001 - read-only, locked: said on the page
            self._say(f"Nothing deleted: {type(e).__name__}: {_md(e)}", "danger")
            self.refresh()
            return {}
        lines, files, failed = [], [], False
        if deleted:
            lines.append(f"Deleted {len(deleted)} run{'s' if len(deleted) != 1 else ''}: "
                         + ", ".join(pending[r] for r in deleted) + ".")
        if gone:
            lines.append("Already deleted elsewhere: " + ", ".join(pending[r] for r in gone) + ".")
        if self.delete_files.value:
            for run_id, checkpoint in deleted.items():
                result = remove_run_files(run_id, checkpoint)
                failed = failed or not result.ok
                files += [f"- {'error: ' if kind == ERROR else ''}{_md(text)}" for kind, text in result.lines]
        elif any(deleted.values()):
            lines.append("Their files stay on disk.")
        self._say("\n\n".join(lines + ["\n".join(files)] if files else lines), "warning" if failed else "success")
        self._remapping = True  # (the refresh below compares once, with nothing selected)
        try:
            self.table.selection = []
        finally:
            self._remapping = False
        self.refresh(force=True)  # (redraws the table and the comparison for the cleared selection)
        self._sync_delete_button()  # (also when that read failed and left the table as it was)
        return deleted

    # ------------------------------------------------------------------ comparison
    def compare(self) -> None:
        """Draw the selected runs' curves (:data:`COMPARE_METRICS`, thinned to :data:`COMPARE_POINTS` per curve).

        Plots with the very points and labels of those shown (a Refresh with nothing new) are not drawn and sent
        again. The drawing's cost is HoloViews' and Bokeh's per curve (a plot and ~16 models for each run and
        metric: ``benchmarks/dashboard_compare.py``).
        """
        ids = self.selected_ids()
        self._compared = ids
        if not ids:
            self._show(_empty("Select runs in the table to compare their curves."))
            return
        # only the compared metrics, as arrays per series: a table of every row of 20 long runs (1.4 M rows) took
        # longer to build than the plots
        series = self.store.metric_series(ids, names=COMPARE_METRICS)
        present = {name for _, _, name in series}
        names = [n for n in COMPARE_METRICS if n in present]
        if not names:
            self._show(_empty("The selected runs have no metrics yet."))
            return
        labels = dict(zip(self._runs["run_id"], self._runs["name"] + " (" + self._runs["run_id"] + ")"))
        shown = _fingerprint(series, names, labels)
        if shown == self._shown:
            return
        # paused: the ~1,600 Bokeh models set off full collections of the server heap (0.2-0.5 s); setting the panes
        # draws them for every open page of this session
        with gc_paused():
            self._show(series_curves(series, names=names, labels=labels, max_points=COMPARE_POINTS), shown)

    def _show(self, obj: Any, fingerprint: tuple | None = None) -> None:
        self.compare_pane.objects = _panes(obj)
        self._shown = fingerprint

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
            both = df.dropna(subset=[x, y])  # (none: the whole table, which the plot says has no run with both)
            plot = tradeoff_scatter(both if len(both) else df, x, y, color=color)
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
        from snnlab.training.model import CustomRunError

        tables, notes = [], []
        for run_id, row in with_ckpt:
            try:
                with warnings.catch_warnings(record=True) as caught:  # shown on the page, not only in the server log
                    warnings.simplefilter("always")
                    try:
                        model, loader, cfg = load_model_from_checkpoint(row["checkpoint"], run_id)
                    except CustomRunError as e:  # a model or data of the user's own: said, the other runs measured
                        notes.append(f"run {_md(row['name'])} ({run_id}) left out: {_md(e)}")
                        continue
                notes += [f"run {run_id}: {w.message}" for w in caught]
                with forward_precision(cfg.precision, torch.device("cpu")):  # as the run evaluated
                    curve = robustness_curve(model, loader, self.perturbation.value, levels, readout=cfg.readout,
                                             max_batches=cfg.eval_max_batches or 10, device="cpu")
            except Exception as e:  # noqa: BLE001
                self.robust_pane.objects = _panes(_empty(f"run {run_id}: {type(e).__name__}: {e}"))
                return
            tables.append(curve.assign(name=f"{row['name']} ({run_id})"))
        warning = [pn.pane.Alert("\n\n".join(notes), alert_type="warning", sizing_mode="stretch_width")]
        if not tables:  # every selected run left out: why, and no empty plot
            self.robust_pane.objects = warning
            return
        plot = _panes(robustness_plot(pd.concat(tables, ignore_index=True), by="name"))
        self.robust_pane.objects = (warning if notes else []) + list(plot)
