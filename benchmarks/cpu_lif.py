"""CPU benchmark: forward+backward of LIF and Linear+LIF for snnlab, snnTorch and SpikingJelly.

Every (library, case) is timed in fresh subprocesses, in alternating order over several rounds,
all in one run of this script: on a small VM, one library's large allocations fragment memory and
slow down the next one's page faults, so sharing a process would measure the allocation history.
Each process warms up (2 steps) and reports its timings; the tables show medians over all rounds, the
ratios, the machine's memory-bandwidth floor for the LIF layer and, for Linear+LIF, the time of the
Linear layer alone (the same ``torch.nn.Linear`` every library uses), which bounds the ratio any LIF
implementation could reach: snnTorch's time / the Linear's time (Amdahl).

    bash benchmarks/run_cpu.sh            # installs the peers from PyPI, then runs this
    python benchmarks/cpu_lif.py --quick  # smaller sizes

The bandwidth floor: a LIF forward+backward must at least read x, write spikes and the saved
membrane (forward), read grad_spikes, spikes and membrane, and write grad_x (backward): 7 tensors of
T*B*N floats. Floor time = 7 * bytes / (copy bandwidth), the copy bandwidth measured on a warm
buffer of the same size (a copy moves 2 tensors), in the same interleaved rounds as the libraries.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import statistics
import time

import torch

import snnlab as sl


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def snnlab_model(n, linear, backend="auto"):
    """``backend="auto"``: the compiled CPU loop (where a C compiler built it); ``"torch"``: pure PyTorch."""
    lif = sl.LIF(beta=0.9, threshold=1.0, surrogate="atan", backend=backend)
    return torch.nn.Sequential(torch.nn.Linear(n, n), lif) if linear else lif


def snntorch_model(n, linear, style):
    """snnTorch ``Leaky`` driven step by step.

    ``style="tutorial"``: the loop of snnTorch's tutorials, ``fc(x[step])`` / ``lif(x[step], mem)``.
    ``style="batched"``: the kindest form we know: the Linear over all steps at once, then ``unbind``
    (no per-step indexing of a tensor that needs a gradient).
    """
    import snntorch as snn
    from snntorch import surrogate

    lif = snn.Leaky(beta=0.9, threshold=1.0, spike_grad=surrogate.atan())
    fc = torch.nn.Linear(n, n) if linear else None

    def run(x):
        mem = lif.init_leaky()
        out = []
        if style == "tutorial":
            for step in range(x.shape[0]):
                spk, mem = lif(fc(x[step]) if fc is not None else x[step], mem)
                out.append(spk)
        else:
            for cur in (fc(x) if fc is not None else x).unbind(0):
                spk, mem = lif(cur, mem)
                out.append(spk)
        return torch.stack(out)
    return run


def spikingjelly_model(n, linear):
    """SpikingJelly multi-step ``LIFNode`` (its default, torch backend on the CPU), same dynamics."""
    from spikingjelly.activation_based import functional, layer, neuron, surrogate

    lif = neuron.LIFNode(tau=10.0, decay_input=False, v_threshold=1.0, v_reset=None,
                         surrogate_function=surrogate.ATan(), step_mode="m")
    mods = [layer.Linear(n, n, step_mode="m"), lif] if linear else [lif]
    net = torch.nn.Sequential(*mods)

    def run(x):
        functional.reset_net(net)
        return net(x)
    return run


LIBS = {
    "snnlab": lambda n, lin: snnlab_model(n, lin),
    "snnlab (torch path)": lambda n, lin: snnlab_model(n, lin, "torch"),
    "snnTorch (tutorial loop)": lambda n, lin: snntorch_model(n, lin, "tutorial"),
    "snnTorch (batched)": lambda n, lin: snntorch_model(n, lin, "batched"),
    "SpikingJelly": spikingjelly_model,
}


def fwd_bwd(model, input_grad: bool):
    """One training step's work: forward, then backward of the summed output.

    ``input_grad``: the input needs a gradient (a hidden LIF layer) or not (Linear+LIF on data).
    """
    def go(x):
        x = x.detach().requires_grad_(input_grad)
        out = model(x)
        out.sum().backward()
    return go


WARMUP = 2


def measure(lib: str, linear: bool, n: int, T: int, B: int, repeats: int) -> list[float]:
    """In this process: warm up, then time ``repeats`` forward+backward steps (or buffer copies).

    ``lib="copy"``: a warm buffer copy of ``T*B*n`` floats (for the bandwidth floor);
    ``lib="linear"``: the Linear layer alone (forward + weight gradient), shared by every library.
    """
    torch.manual_seed(0)
    numel = T * B * n
    if lib == "copy":
        src, dst = torch.randn(numel), torch.empty(numel)
        dst.copy_(src)
        return [timed(lambda: dst.copy_(src)) for _ in range(repeats)]
    x = (torch.randn(T, B, n) * 0.5 + 0.3) if not linear else torch.rand(T, B, n)
    model = torch.nn.Linear(n, n) if lib == "linear" else LIBS[lib](n, linear)
    step = fwd_bwd(model, input_grad=not linear)
    for _ in range(WARMUP):
        step(x)
    return [timed(lambda: step(x)) for _ in range(repeats)]


def spawn(lib: str, linear: bool, n: int, T: int, B: int, repeats: int, threads: int) -> list[float]:
    cmd = [sys.executable, __file__, "--worker", json.dumps([lib, linear, n, T, B, repeats]), "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        tail = out.stderr.strip().splitlines()[-1:] or ["?"]
        print(f"<!-- {lib} failed: {tail[0]} -->")
        return []
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    ap.add_argument("--rounds", type=int, default=3, help="fresh processes per library and case")
    ap.add_argument("--repeats", type=int, default=2, help="timed steps per process, after the warm-up")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        lib, linear, n, T, B, repeats = json.loads(args.worker)
        print(json.dumps(measure(lib, linear, n, T, B, repeats)))
        return
    T, B = (100, 8) if args.quick else (500, 16)
    sizes = [256, 1024] if args.quick else [256, 4096]
    from snnlab.kernels.dispatch import resolve_backend

    print(f"# CPU benchmark — {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}")
    print(f"snnlab = sl.LIF(backend='auto'), which runs the '{resolve_backend('auto', 'cpu')}' backend here; "
          "'snnlab (torch path)' = backend='torch'")
    print(f"T={T}, B={B}; forward+backward; median over {args.rounds} fresh processes x {args.repeats} timed steps "
          f"(after {WARMUP} warm-up steps), libraries alternating; LIF alone = hidden layer (the input needs a gradient), "
          "Linear+LIF = first layer on data\n")
    names = list(LIBS)
    print("| case | N | " + " | ".join(f"{k} (s)" for k in names) + " | "
          + " | ".join(f"{k} / snnlab" for k in names[1:]) + " |")
    print("|---|---|" + "---|" * (2 * len(names) - 1))
    floors, bounds = [], []
    for linear in (False, True):
        for n in sizes:
            libs = names + (["linear"] if linear else ["copy"])
            samples: dict[str, list[float]] = {k: [] for k in libs}
            for r in range(args.rounds):
                for lib in (libs if r % 2 == 0 else libs[::-1]):
                    samples[lib] += spawn(lib, linear, n, T, B, args.repeats, args.threads)
            times = {k: statistics.median(v) if v else float("nan") for k, v in samples.items()}
            s = times["snnlab"]
            print(f"| {'Linear+LIF' if linear else 'LIF'} | {n} | " + " | ".join(f"{times[k]:.4f}" for k in names)
                  + " | " + " | ".join(f"{times[k] / s:.1f}x" for k in names[1:]) + " |", flush=True)
            if not linear:
                numel = T * B * n
                bw = 2 * numel * 4 / times["copy"]
                floors.append((n, bw, 7 * numel * 4 / bw, s, times["snnlab (torch path)"]))
            else:
                bounds.append((n, times["linear"], s, {k: times[k] for k in names[1:]}))
    print("\n| LIF N | copy bandwidth (GB/s) | floor (s) | snnlab (s) | snnlab / floor | torch path / floor |")
    print("|---|---|---|---|---|---|")
    for n, bw, floor, s, s_torch in floors:
        print(f"| {n} | {bw / 1e9:.1f} | {floor:.4f} | {s:.4f} | {s / floor:.2f}x | {s_torch / floor:.2f}x |")
    peers = [k for k in names if not k.startswith("snnlab")]
    print("\nLinear+LIF: the Linear layer alone, and the highest ratio any LIF could give (peer time / Linear time)\n")
    print("| N | Linear alone (s) | snnlab (s) | snnlab's LIF part (s) | " + " | ".join(f"bound vs {k}" for k in peers) + " |")
    print("|---|---|---|---|" + "---|" * len(peers))
    for n, lin, s, peer_times in bounds:
        print(f"| {n} | {lin:.4f} | {s:.4f} | {s - lin:.4f} | "
              + " | ".join(f"{peer_times[k] / lin:.1f}x" for k in peers) + " |")


if __name__ == "__main__":
    main()
