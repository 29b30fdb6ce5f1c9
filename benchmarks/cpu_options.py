"""CPU benchmark: forward+backward of one LIF layer for each surrogate and noise, compiled loop vs PyTorch path.

    python benchmarks/cpu_options.py [--steps 200 --batch 16 --neurons 4096 --threads 2]

``sl.LIF(backend="auto")`` (the compiled CPU loop where a C compiler built it) against
``backend="torch"`` (the pure-PyTorch path), in one process and one run, alternating the two for
each option over several rounds; the table gives the medians and the ratio. Hidden-layer setting:
the input needs a gradient, the loss is ``spikes.sum()``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import snnlab as sl

OPTIONS = {
    "atan (default)": dict(surrogate="atan"),
    "fast_sigmoid": dict(surrogate="fast_sigmoid"),
    "triangle": dict(surrogate="triangle"),
    "sigmoid": dict(surrogate="sigmoid"),
    "max_spikes=1 (TTFS)": dict(max_spikes=1),
    "noise gaussian (NSNN)": dict(noise="gaussian", noise_scale=0.3),
    "noise logistic (NSNN)": dict(noise="logistic", noise_scale=0.3),
}


def step_time(lif: torch.nn.Module, x: torch.Tensor) -> float:
    xi = x.clone().requires_grad_(True)
    t0 = time.perf_counter()
    lif(xi).sum().backward()
    return time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--neurons", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    x = torch.randn(args.steps, args.batch, args.neurons, generator=torch.Generator().manual_seed(0)) * 0.6
    print(f"T={args.steps}, B={args.batch}, N={args.neurons}, {args.threads} threads, median of {args.rounds}\n")
    print("| option | compiled loop (auto) ms | PyTorch path ms | PyTorch / compiled |")
    print("| --- | ---: | ---: | ---: |")
    for name, kw in OPTIONS.items():
        layers = {b: sl.LIF(beta=0.9, backend=b, **kw).train() for b in ("auto", "torch")}
        times = {b: [] for b in layers}
        for b, lif in layers.items():  # warm-up (and the first-use build of the compiled loop)
            step_time(lif, x)
        for _ in range(args.rounds):
            for b, lif in layers.items():
                times[b].append(step_time(lif, x))
        auto, torch_path = (statistics.median(times[b]) for b in ("auto", "torch"))
        print(f"| {name} | {auto * 1e3:.1f} | {torch_path * 1e3:.1f} | {torch_path / auto:.2f}x |")


if __name__ == "__main__":
    main()
