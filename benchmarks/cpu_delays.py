"""CPU benchmark: a DelayedLinear training step against the dcls package's ``Dcls1d``, same function.

    python benchmarks/cpu_delays.py [--quick] [--rounds 5] [--threads 2] [--batch B]   # needs dcls (pip install dcls)

The SHD configuration of the GPU benchmark (``140 -> 256, max_delay=25, T=100, B=256``, spikes at 10 %),
at the start of training (``sigma = max_delay / 2``), at its end (``sigma = 0.5``) and after
``round_delays()`` (snnlab only: Dcls1d has no integer-delay path, so those rows are compared with its
``sigma = 0.5`` step, the width DCLS ends its training with). snnlab's PyTorch path is timed with
its own choice of algorithm ("auto") and with each of "fft" and "taps"; Dcls1d holds the same weights,
positions and sigma (:func:`gpu_bench.dcls_layer`). One step: fresh gradients, forward,
``out.sum().backward()`` to the weights and positions. All variants run in one process, alternating
over ``--rounds`` rounds in a new (seeded) order each round (one warm-up step each; a step runs slower right
after another library's large allocations), so the ratios compare numbers taken seconds apart;
each row also gives the function's error against float64, to compare at equal accuracy.
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_bench import DELAY_CASE, QUICK_DELAY, dcls_forward, dcls_layer, grad_step, snnlab_delay_layer, spike_input  # noqa: E402

from snnlab.core.delays import delayed_linear, delayed_linear_reference, delayed_linear_rounded  # noqa: E402


def variants(case: dict, sigma: float | None, x: torch.Tensor) -> dict[str, tuple]:
    """name -> (step function, forward function) for one sigma (None: rounded delays)."""
    cpu = torch.device("cpu")
    K = case["K"]
    layer = snnlab_delay_layer(case, sigma, "torch", cpu)
    out = {"snnlab torch (auto)": (grad_step(lambda: layer(x), list(layer.parameters())), lambda: layer(x))}
    if sigma is None:
        return out
    for method in ("fft", "taps"):
        w, p = layer.weight, layer.positions
        fwd = (lambda m: lambda: delayed_linear(x, w, p, sigma, K, method=m))(method)
        out[f"snnlab torch ({method})"] = (grad_step(fwd, [w, p]), fwd)
    try:
        dcls = dcls_layer(case["inp"], case["out"], K, layer.weight.detach(), layer.positions.detach(), sigma, cpu)
    except ImportError:
        print("dcls is not installed (pip install dcls): its rows are left out", file=sys.stderr)
        return out
    dfwd = lambda: dcls_forward(dcls, x, K)  # noqa: E731
    out["dcls Dcls1d"] = (grad_step(dfwd, list(dcls.parameters())), dfwd)
    return out


def reference(case: dict, sigma: float | None, x: torch.Tensor) -> torch.Tensor:
    layer = snnlab_delay_layer(case, sigma, "torch", torch.device("cpu"))
    if sigma is None:
        return delayed_linear_rounded(x.double(), layer.weight.detach().double(), layer.delays)
    return delayed_linear_reference(x.double(), layer.weight.detach().double(), layer.positions.detach().double(),
                                    sigma, case["K"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--quick", action="store_true", help="small sizes (a check of the script)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch", type=int, default=None, help="another batch size than the case's")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    case = dict(QUICK_DELAY if args.quick else DELAY_CASE)
    if args.batch is not None:
        case["B"] = args.batch
    x = spike_input(case, torch.device("cpu"))
    print(f"# CPU: DelayedLinear vs Dcls1d, {case['inp']}->{case['out']}, max_delay={case['K']}, T={case['T']}, "
          f"B={case['B']}; {platform.processor() or platform.machine()}, {args.threads} threads, torch "
          f"{torch.__version__}, median of {args.rounds} rounds\n")
    print("| setting | variant | median step (ms) | Dcls1d / this | max error / max abs (vs float64) |")
    print("|---|---|---|---|---|")
    base = None
    for label, sigma in ((f"sigma={case['K'] / 2:g}", case["K"] / 2.0), ("sigma=0.5", 0.5), ("rounded", None)):
        runs = variants(case, sigma, x)
        ref = reference(case, sigma, x)
        errors = {}
        with torch.no_grad():
            for name, (_, fwd) in runs.items():
                errors[name] = float((fwd().double() - ref).abs().max() / ref.abs().max())
        times: dict[str, list[float]] = {name: [] for name in runs}
        for name, (step, _) in runs.items():
            step()  # warm-up
        order = random.Random(0)
        for _ in range(args.rounds):  # a new order each round: no variant always follows the same one
            names = list(runs)
            order.shuffle(names)
            for name in names:
                step = runs[name][0]
                t0 = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - t0)
        medians = {name: statistics.median(t) for name, t in times.items()}
        base = medians.get("dcls Dcls1d", base if sigma is None else None)  # rounded: against Dcls1d at sigma=0.5
        for name, m in medians.items():
            ratio = f"{base / m:.2f}x" if base else "n/a"
            print(f"| {label} | {name} | {m * 1e3:.1f} | {ratio} | {errors[name]:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
