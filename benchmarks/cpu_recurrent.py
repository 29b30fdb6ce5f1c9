"""CPU benchmark of :class:`snnlab.RecurrentLIF`: its fused Function against its autograd reference loop and a
feed-forward :class:`snnlab.LIF` of the same width, for a training step and for :func:`snnlab.metrics.evaluate`.

The network is ``Linear(2 -> N) -> neurons(N) -> Linear(N -> 4) -> LI``; a training step is a forward, a
cross-entropy backward and an SGD step on one batch ``[T, B, 2]``; ``evaluate`` runs one batch (Monitor and
SynOps counter attached). One thread (``torch.set_num_threads(1)``), the variants timed in alternating order
over ``--repeats`` rounds after a warm-up, medians reported with the ratios to the fused layer.

    python benchmarks/cpu_recurrent.py            # T=50, B=32, N=32 and T=100, B=32, N=256
    python benchmarks/cpu_recurrent.py --repeats 5

The variants: ``lif`` (a feed-forward ``sl.LIF``, backend "auto"), ``rlif:torch`` (the fused Function, what
"auto" takes) and ``rlif:reference`` (the per-step autograd loop); a backend the installed snnlab does not know
is skipped.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import snnlab as sl
from snnlab.metrics import evaluate

SIZES = ((50, 32, 32), (100, 32, 256))  # (T, B, N)
N_IN, N_OUT = 2, 4


def make_net(variant: str, n: int) -> nn.Module | None:
    """The network of ``variant`` (``"lif"`` or ``"rlif:<backend>"``), None if this snnlab lacks the backend."""
    torch.manual_seed(0)
    if variant == "lif":
        neurons = sl.LIF(tau_mem=10.0, n_neurons=n)
    else:
        try:
            neurons = sl.RecurrentLIF(n, tau_mem=10.0, backend=variant.split(":")[1])
        except ValueError:
            return None
    return sl.Sequential(nn.Linear(N_IN, n), neurons, nn.Linear(n, N_OUT), sl.LI(tau_mem=10.0))


def train_step(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        loss = nn.functional.cross_entropy(net(x).sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(T: int, B: int, N: int, repeats: int) -> dict[str, dict[str, float]]:
    """``{variant: {"train": median seconds, "evaluate": median seconds}}`` for one size."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(T, B, N_IN, generator=g) * 2.0
    y = torch.randint(0, N_OUT, (B,), generator=g)
    nets = {v: make_net(v, N) for v in ("lif", "rlif:torch", "rlif:reference")}
    nets = {v: n for v, n in nets.items() if n is not None}
    jobs = {}
    for v, net in nets.items():
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        jobs[(v, "train")] = train_step(net, opt, x, y)
        jobs[(v, "evaluate")] = lambda net=net: evaluate(net, [(x, y)])
    for fn in jobs.values():  # warm-up
        fn(), fn()
    times: dict[tuple[str, str], list[float]] = {k: [] for k in jobs}
    for _ in range(repeats):
        for k, fn in jobs.items():
            times[k].append(timed(fn))
    out: dict[str, dict[str, float]] = {}
    for (v, what), ts in times.items():
        out.setdefault(v, {})[what] = statistics.median(ts)
    return out


def report(T: int, B: int, N: int, res: dict[str, dict[str, float]]) -> None:
    print(f"\nT={T}, B={B}, N={N} (medians, ms; ratio = time / rlif:torch)")
    base = res.get("rlif:torch")
    for what in ("train", "evaluate"):
        for v, r in res.items():
            ratio = f"{r[what] / base[what]:6.2f}x" if base else ""
            print(f"  {what:9s} {v:16s} {r[what] * 1e3:9.2f} ms  {ratio}")


def main() -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    torch.set_num_threads(1)
    for T, B, N in SIZES:
        report(T, B, N, bench(T, B, N, args.repeats))


if __name__ == "__main__":
    main()
