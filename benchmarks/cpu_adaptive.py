"""CPU benchmark of the fused adaptive LIF (:func:`snnlab.kernels.adaptive_lif.adaptive_lif`) against the per-step
autograd loop it replaces (:func:`snnlab.core.step_loop.lif_step_loop`, the time loop of :class:`snnlab.ALIF`) and, for
feed-forward neurons, the compiled C loop (:func:`snnlab.kernels.adaptive_lif_cpu.adaptive_lif_cpu`).

One forward and backward of ``sum(spikes * g)`` over ``x [T, B, N]`` in float32, per-neuron parameters that learn
(beta, threshold, rho, strength and the input, plus the recurrent weight ``W`` when there is one), feed-forward
(``w=None``) and recurrent (feedback ``o @ W^T``). Two threads (``torch.set_num_threads(2)``), the two variants
timed in alternating order over ``--repeats`` rounds after a warm-up; medians, and the ratios step loop / fused and
fused / C loop measured in the same run (``-`` where the C loop does not apply: recurrent neurons, or no C compiler).

    python benchmarks/cpu_adaptive.py               # T=100, B=32, N=256 and T=50, B=32, N=32
    python benchmarks/cpu_adaptive.py --repeats 21
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import snnlab as sl
from snnlab.core.step_loop import Adaptation, lif_step_loop
from snnlab.kernels.adaptive_lif import adaptive_lif
from snnlab.kernels.adaptive_lif_cpu import adaptive_lif_cpu
from snnlab.kernels.lif_cpu import cpu_kernel_available

SIZES = ((100, 32, 256), (50, 32, 32))  # (T, B, N)


def make_case(T: int, B: int, N: int, recurrent: bool) -> dict[str, Callable[[], None]]:
    """``{"step loop": fn, "fused": fn[, "C loop": fn]}``: one forward + backward each, on the same inputs (the C
    loop for feed-forward neurons, where the kernel builds)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, N, generator=g) * 0.6 + 0.4
    params = [torch.rand(N, generator=g) * 0.3 + lo for lo in (0.6, 0.8, 0.9, 0.2)]  # beta, thr, rho, strength
    w = torch.randn(N, N, generator=g) * 0.5 / N ** 0.5
    grad = torch.randn(T, B, N, generator=g)
    layer = sl.ALIF(n_neurons=N)  # its options: subtract reset, atan surrogate

    def leaves() -> list[torch.Tensor]:
        return [t.clone().requires_grad_() for t in (x, *params, w)]

    def step_loop() -> None:
        xl, beta, thr, rho, strength, wl = leaves()
        feedback = (lambda o: o @ wl.T) if recurrent else None
        run = lif_step_loop(layer, xl, beta, thr, None, None, feedback=feedback, adaptation=Adaptation(rho, strength))
        (run.out * grad).sum().backward()

    def fused() -> None:
        xl, beta, thr, rho, strength, wl = leaves()
        o = adaptive_lif(xl, wl if recurrent else None, beta, thr, rho, strength)[0]
        (o * grad).sum().backward()

    def c_loop() -> None:
        xl, beta, thr, rho, strength, _ = leaves()
        o = adaptive_lif_cpu(xl, beta, thr, rho, strength, keep_membrane=False)[0]   # as a layer not recording
        (o * grad).sum().backward()
    jobs = {"step loop": step_loop, "fused": fused}
    if not recurrent and cpu_kernel_available():
        jobs["C loop"] = c_loop
    return jobs


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(jobs: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per job, timed in alternating order after two warm-up calls each."""
    for fn in jobs.values():
        fn(), fn()
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(repeats):
        for k, fn in jobs.items():
            times[k].append(timed(fn))
    return {k: statistics.median(ts) for k, ts in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--repeats", type=int, default=11)
    args = p.parse_args()
    torch.set_num_threads(2)
    print(f"forward + backward, float32, {torch.get_num_threads()} threads, medians of {args.repeats}")
    print(f"{'T':>4} {'B':>4} {'N':>4} {'W':>5} {'step loop ms':>13} {'fused ms':>9} {'ratio':>7} {'C loop ms':>10} "
          f"{'fused / C':>10}")
    for T, B, N in SIZES:
        for recurrent in (False, True):
            res = bench(make_case(T, B, N, recurrent), args.repeats)
            loop, fused, c = res["step loop"], res["fused"], res.get("C loop")
            c_cols = f"{c * 1e3:10.2f} {fused / c:9.2f}x" if c is not None else f"{'-':>10} {'-':>10}"
            print(f"{T:4d} {B:4d} {N:4d} {'yes' if recurrent else 'no':>5} {loop * 1e3:13.2f} {fused * 1e3:9.2f} "
                  f"{loop / fused:6.2f}x {c_cols}")


if __name__ == "__main__":
    main()
