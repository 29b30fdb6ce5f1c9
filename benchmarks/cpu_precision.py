"""Benchmark: one training step (forward, loss, backward) of an SHD-sized network in float32 against bfloat16
(``precision="bfloat16"``: ``torch.autocast``), on the CPU, measured in one run with the variants interleaved.

    python benchmarks/cpu_precision.py [--repeats 15] [--batch 64] [--steps 100] [--delays]

Prints the median step time of each variant and their ratio. bfloat16 matrix products are fast where the CPU has
bfloat16 instructions (AVX512-BF16, AMX) and slow elsewhere; the LIF's compiled C loop takes float32 only, so under
autocast the neurons run the PyTorch loop.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import snnlab as sl
from snnlab.training.precision import forward_precision


def build(delays: bool, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if delays:
        return sl.Sequential(sl.DelayedLinear(140, 256, max_delay=25), sl.LIF(), sl.DelayedLinear(256, 256, max_delay=25),
                             sl.LIF(), sl.DelayedLinear(256, 20, max_delay=25), sl.LI())
    return sl.Sequential(torch.nn.Linear(700, 256), sl.LIF(), torch.nn.Linear(256, 256), sl.LIF(),
                         torch.nn.Linear(256, 20), sl.LI())


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str) -> float:
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    with forward_precision(precision, x.device):
        out = model(x)
        loss = F.cross_entropy(out.float().sum(0), y)
    loss.backward()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--delays", action="store_true", help="DelayedLinear synapses (140 inputs, max_delay 25)")
    args = ap.parse_args()
    model = build(args.delays)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(args.steps, args.batch, 140 if args.delays else 700, generator=g) < 0.05).float()
    y = torch.randint(0, 20, (args.batch,), generator=g)
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for precision in times:  # warm-up (the C loop's build, oneDNN's kernels)
        step_time(model, x, y, precision)
    for _ in range(args.repeats):
        for precision in times:
            times[precision].append(step_time(model, x, y, precision))
    med = {p: statistics.median(t) for p, t in times.items()}
    what = "DelayedLinear 140-256-256-20" if args.delays else "Linear 700-256-256-20"
    print(f"{what}, LIF, T={args.steps}, B={args.batch}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    for p, m in med.items():
        print(f"  {p:9s} {m * 1e3:8.1f} ms")
    print(f"  bfloat16 / float32 time: {med['bfloat16'] / med['float32']:.2f}")


if __name__ == "__main__":
    main()
