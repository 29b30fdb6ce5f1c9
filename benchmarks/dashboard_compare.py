"""Benchmark: the dashboard's run comparison (runs tab) of 20 long runs, where its CPU time goes.

    python benchmarks/dashboard_compare.py [--runs 20 --steps 20000 --repeats 7]

Builds a RunStore in a temporary folder (each run: ``loss``, ``accuracy``, ``spikes_per_sample`` at every step and
``test_accuracy``, ``test_spikes_per_sample`` 20 times), opens the runs tab's models in a Bokeh document (what a
served page holds) and times, as process CPU time (median of ``--repeats``; the machine may be shared):

* the parts: reading the series (``RunStore.metric_series``), building the HoloViews layout
  (``series_curves``, curves thinned to ``COMPARE_POINTS``) and rendering its panes to Bokeh models;
* ``RunsPanel.compare()`` as a selection runs it, with the garbage collector paused (now) and not (before), with
  the collector's time and its full (generation 2) collections;
* a Refresh whose data did not change (the plots are not drawn again) against one that draws;
* the same Bokeh models (a figure per metric, a line, legend entry and hover per run) built with Bokeh alone:
  the floor of any HoloViews-level change that keeps one glyph renderer per curve.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from bokeh.document import Document

import snnlab.dashboard.runs as runs_module
from snnlab.dashboard.runs import COMPARE_METRICS, COMPARE_POINTS, RunsPanel, _panes
from snnlab.experiments import RunStore
from snnlab.viz.curves import downsample_minmax, series_curves


def make_store(path: Path, n_runs: int, steps: int) -> tuple[RunStore, list[str]]:
    store, rng, ids = RunStore(path), np.random.default_rng(0), []
    for i in range(n_runs):
        run = store.create_run({"seed": i}, name=f"run-{i}")
        rows = []
        for name in ("loss", "accuracy", "spikes_per_sample"):
            values = np.abs(rng.standard_normal(steps)).cumsum()[::-1] / steps
            rows += [(run, s, 0, "train", name, float(v), 0.0) for s, v in enumerate(values.tolist())]
        for name in ("test_accuracy", "test_spikes_per_sample"):
            rows += [(run, s, 0, "eval", name, float(rng.random()), 0.0) for s in range(0, steps, steps // 20)]
        with store._conn() as con:  # (one transaction per run; log_metrics writes one per step)
            con.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?,?)", rows)
        store.set_status(run, "finished")
        ids.append(run)
    return store, ids


def cpu_ms(fn: Callable[[], object], repeats: int) -> tuple[float, list[float]]:
    fn()  # (warm: imports, option trees)
    times = []
    for _ in range(repeats):
        gc.collect()
        t = time.process_time()
        fn()
        times.append(1000 * (time.process_time() - t))
    return statistics.median(times), times


def bokeh_floor(series: dict, names: list[str]) -> None:
    """The models of the comparison built with Bokeh alone (no HoloViews)."""
    from bokeh.models import HoverTool, Legend, LegendItem
    from bokeh.plotting import figure

    doc = Document()
    for name in names:
        fig, items = figure(width=400, height=300, title=name), []
        for (run, _, n), (xs, ys) in series.items():
            if n == name:
                xs, ys = downsample_minmax(xs, ys, COMPARE_POINTS)
                line = fig.line(xs, ys, muted_alpha=0.2, selection_line_color="red", name=run)
                items.append(LegendItem(label=run, renderers=[line]))
        fig.add_tools(HoverTool(tooltips=[("run", "$name"), ("step", "@x"), ("value", "@y")]))
        fig.add_layout(Legend(items=items), "below")
        doc.add_root(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store, ids = make_store(Path(folder) / "runs.sqlite", args.runs, args.steps)
        panel = RunsPanel(store)
        panel.refresh(force=True)
        doc = Document()
        doc.add_root(panel.runs_view.get_root(doc))
        rows = panel.table.value["run_id"].tolist()
        selection = [rows.index(r) for r in ids]
        series = store.metric_series(ids, names=COMPARE_METRICS)
        names = [n for n in COMPARE_METRICS if n in {name for _, _, name in series}]
        labels = dict(zip(panel._runs["run_id"], panel._runs["name"] + " (" + panel._runs["run_id"] + ")"))
        n_curves = sum(1 for _ in series)
        print(f"{args.runs} runs x {args.steps} steps, {n_curves} curves in {len(names)} panels, "
              f"<= {COMPARE_POINTS} points each; process CPU ms, median of {args.repeats}\n")

        def render() -> None:
            d = Document()
            for pane in _panes(series_curves(series, names=names, labels=labels, max_points=COMPARE_POINTS)):
                pane.get_root(d)

        parts = {
            "read (RunStore.metric_series)": lambda: store.metric_series(ids, names=COMPARE_METRICS),
            "build (series_curves)": lambda: series_curves(series, names=names, labels=labels,
                                                           max_points=COMPARE_POINTS),
            "build + render to Bokeh models": render,
            "Bokeh alone, the same models": lambda: bokeh_floor(series, names),
        }
        for label, fn in parts.items():
            median, _ = cpu_ms(fn, args.repeats)
            print(f"{label:42s} {median:7.0f}")

        collected = {"ms": 0.0, "full": 0}
        started = [0.0]

        def on_gc(phase: str, info: dict) -> None:
            if phase == "start":
                started[0] = time.perf_counter()
            else:
                collected["ms"] += 1000 * (time.perf_counter() - started[0])
                collected["full"] += info["generation"] == 2

        def select() -> None:
            panel.table.selection = []
            collected.update(ms=0.0, full=0)
            t = time.process_time()
            panel.table.selection = selection  # (compare(): read, build, render into the open document)
            times.append((1000 * (time.process_time() - t), collected["ms"], collected["full"]))

        gc.callbacks.append(on_gc)
        paused = runs_module._gc_paused
        print()
        for label, pause in (("compare(), GC paused (now)", paused), ("compare(), GC running (before)",
                                                                      contextlib.nullcontext)):
            runs_module._gc_paused = pause
            times: list[tuple[float, float, int]] = []
            for _ in range(args.repeats + 1):
                select()
            times = times[1:]
            print(f"{label:42s} {statistics.median(t for t, _, _ in times):7.0f}   mean "
                  f"{statistics.mean(t for t, _, _ in times):5.0f}, GC in it: "
                  f"{[round(g) for _, g, _ in times]} ms, full collections {sum(f for _, _, f in times)}")
        runs_module._gc_paused = paused
        gc.callbacks.remove(on_gc)

        panel.table.selection = selection
        print()
        median, _ = cpu_ms(lambda: panel.refresh(force=True), args.repeats)
        print(f"{'Refresh, no new data (not drawn again)':42s} {median:7.0f}")

        def redraw() -> None:
            panel._shown = None
            panel.refresh(force=True)

        median, _ = cpu_ms(redraw, args.repeats)
        print(f"{'Refresh that draws (before)':42s} {median:7.0f}")
        store.close()


if __name__ == "__main__":
    main()
