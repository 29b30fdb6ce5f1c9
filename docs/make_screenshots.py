"""Render the main views of snnlab headless and save them as PNGs in ``docs/img/`` (linked from the README).

Each view is a HoloViews object from :mod:`snnlab.viz` on real runs: a small network trained here on the
embedded digits (rasters, membranes, curves, robustness), the delay task (delay kernels), the results
table of ``docs/results`` (trade-offs) and N-MNIST recordings when the shared data folder has them. Each
is saved as a standalone HTML page with inline resources and photographed with headless Debian chromium
through Playwright (no download, no CDN). The dashboard screenshots come from the browser tests
(``tests/browser``), which this script runs last unless ``--no-dashboard``.

    .venv/bin/python docs/make_screenshots.py
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import holoviews as hv
import pandas as pd
import torch
from bokeh.resources import INLINE

import snnlab as sl
from snnlab import viz
from snnlab.metrics import robustness_curve
from snnlab.training import ExperimentConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-unsafe-swiftshader"]


def train(cfg: dict) -> Trainer:
    tr = Trainer(ExperimentConfig(**cfg), progress=False)
    tr.run()
    return tr


def views() -> dict[str, hv.Element]:
    torch.manual_seed(0)
    out: dict[str, hv.Element] = {}
    digits = train(dict(dataset="digits", hidden=[64], num_steps=20, epochs=3, seed=0))
    x, y = next(iter(digits.test_loader))
    with sl.Monitor(digits.model) as mon:
        digits.model(x)
    layer = next(iter(mon.spikes))
    out["raster"] = viz.monitor_raster(mon, sample=0).opts(title=f"spike raster, test digit {int(y[0])}",
                                                           width=900, height=350)
    out["membrane"] = viz.monitor_traces(mon, layer, sample=0, max_neurons=4).opts(
        title="membrane of four hidden neurons, threshold and spikes", width=900, height=330)
    names = ["loss", "accuracy", "test_accuracy", "spikes_per_sample"]
    tidy = digits.history_frame().melt(id_vars=["step"], value_vars=names, var_name="name").dropna()
    out["curves"] = viz.learning_curves(tidy, names=names, cols=2)
    rob = pd.concat([robustness_curve(digits.model, digits.test_loader, k, levels, max_batches=4).assign(model="digits 64")
                     for k, levels in (("deletion", [0, 0.2, 0.4, 0.6]), ("gaussian", [0, 0.2, 0.4, 0.8]))])
    out["robustness"] = viz.robustness_plot(rob)

    delays = train(dict(dataset="delay_task", num_steps=60, hidden=[32], delays=True, max_delay=30, tau_mem=2.0,
                        epochs=12, lr=5e-3, lr_delays=0.5,
                        seed=0))
    layer = next(m for m in delays.model.modules() if isinstance(m, sl.DelayedLinear))
    out["delays"] = (viz.delay_histogram(layer).opts(width=420, height=300, title="rounded delays")
                     + viz.delay_matrix(layer).opts(width=420, height=300, title="delay matrix (in x out)")
                     + viz.gaussian_kernels(layer).opts(width=860, height=280, title="Gaussian kernels of a few synapses")
                     ).cols(2)

    table = pd.read_csv(ROOT / "docs" / "results" / "ttfs_vs_multispike.csv")
    out["tradeoff"] = viz.tradeoff_scatter(table, x="spikes_per_sample", y="accuracy", color="neuron",
                                           hover=["label", "seed", "latency_steps"]).opts(
        title="accuracy vs spikes per sample, embedded MNIST (3 seeds each)", width=700, height=420)

    from snnlab.data import load_nmnist, shared_data_root

    root = shared_data_root() / "nmnist_small"
    if root.exists():
        data = load_nmnist(root, "test", n_time_bins=10)
        frames, label = data[0]
        out["events"] = hv.Layout([viz.event_frame(frames[t], label=f"bin {t}").opts(width=200, height=200)
                                   for t in range(0, 10, 2)]).cols(5).opts(title=f"N-MNIST digit {label}, 5 of 10 bins")
    return out


def photograph(objs: dict[str, hv.Element]) -> None:
    from playwright.sync_api import sync_playwright

    IMG.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 960, "height": 600})
        for name, obj in objs.items():
            html = Path(tmp) / f"{name}.html"
            hv.save(obj, html, backend="bokeh", resources=INLINE)
            page.goto(html.as_uri())
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0")
            page.wait_for_timeout(800)
            page.screenshot(path=str(IMG / f"{name}.png"), full_page=True)
            print("wrote", IMG / f"{name}.png")
        browser.close()


def dashboard_shots() -> None:
    """Run the browser tests (they save screenshots in test-artifacts/) and keep the main ones."""
    subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/browser", "-p", "no:cacheprovider"], cwd=ROOT,
                   check=True)
    for name in ("dashboard-training", "dashboard-runs", "dashboard-tradeoffs"):
        src = ROOT / "test-artifacts" / f"{name}.png"
        if src.exists():
            shutil.copy(src, IMG / f"{name}.png")
            print("wrote", IMG / f"{name}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--no-dashboard", action="store_true", help="skip the dashboard (browser test) screenshots")
    args = ap.parse_args()
    hv.extension("bokeh")
    torch.set_num_threads(1)
    photograph(views())
    if not args.no_dashboard:
        dashboard_shots()


if __name__ == "__main__":
    main()
