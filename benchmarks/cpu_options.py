"""CPU benchmark: forward+backward of one LIF layer for each surrogate and noise, compiled loop vs PyTorch path.

    python benchmarks/cpu_options.py [--steps 200 --batch 16 --neurons 4096 --threads 2]

``sl.LIF(backend="auto")`` (the compiled CPU loop where a C compiler built it) against
``backend="torch"`` (the pure-PyTorch path), in one process and one run, alternating the two for
each option over several rounds; the table gives the medians and the ratio. Hidden-layer setting:
the input needs a gradient, the loss is ``spikes.sum()``. A second table times spike masking fused
into the LIF (``mask_p``) against the LIF followed by a ``SpikeMask`` layer, on each backend.
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
    "spike mask p=0.3 (fused)": dict(mask_p=0.3, seed=0),
}
MASK_P = 0.3


def step_time(lif: torch.nn.Module, x: torch.Tensor) -> float:
    xi = x.clone().requires_grad_(True)
    t0 = time.perf_counter()
    lif(xi).sum().backward()
    return time.perf_counter() - t0


def median_times(models: dict[str, torch.nn.Module], x: torch.Tensor, rounds: int) -> dict[str, float]:
    """Median forward+backward seconds of each model, alternating them round by round after a warm-up."""
    times: dict[str, list[float]] = {k: [] for k in models}
    for m in models.values():  # warm-up (and the first-use build of the compiled loop)
        step_time(m, x)
    for _ in range(rounds):
        for k, m in models.items():
            times[k].append(step_time(m, x))
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
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
        med = median_times({b: sl.LIF(beta=0.9, backend=b, **kw).train() for b in ("auto", "torch")}, x, args.rounds)
        auto, torch_path = med["auto"], med["torch"]
        print(f"| {name} | {auto * 1e3:.1f} | {torch_path * 1e3:.1f} | {torch_path / auto:.2f}x |")
    print(f"\n| backend | LIF + SpikeMask({MASK_P:g}) ms | LIF(mask_p={MASK_P:g}) ms | separate / fused |")
    print("| --- | ---: | ---: | ---: |")
    for backend in ("auto", "torch"):
        med = median_times({
            "separate": torch.nn.Sequential(sl.LIF(beta=0.9, backend=backend), sl.SpikeMask(MASK_P, seed=0)).train(),
            "fused": sl.LIF(beta=0.9, backend=backend, mask_p=MASK_P, seed=0).train()}, x, args.rounds)
        print(f"| {backend} | {med['separate'] * 1e3:.1f} | {med['fused'] * 1e3:.1f} | "
              f"{med['separate'] / med['fused']:.2f}x |")


if __name__ == "__main__":
    main()
