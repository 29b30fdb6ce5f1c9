"""GPU benchmark: forward+backward of LIF, Linear+LIF and DelayedLinear for snnlab and its peers.

    bash benchmarks/run_gpu.sh                 # on a GPU machine: GPU tests, then this script
    python benchmarks/gpu_bench.py --quick     # small sizes (also runs on a CPU, to check the script)

Cases (the Open Neuromorphic SNN library benchmark's sizes where it has them):

* LIF alone, ``T=500, B=16, N=16384`` and ``T=32, B=64, N=65536``;
* Linear+LIF, ``T=500, B=16, N=4096 / 8192 / 16384``;
* DelayedLinear in the SHD configuration, ``140 -> 256, max_delay=25, T=100, B=256``, against the
  dcls package's ``Dcls1d`` (which builds a dense ``[out, in, max_delay]`` kernel and runs a conv1d),
  with PyTorch's defaults (cuDNN may compute float32 convolutions in TF32) and with TF32 off; snnlab's
  Triton "mma" path (float32 accuracy: on the spike input, three bfloat16 products), the same with
  three TF32 products, its "gather" path, the "mma" path in single TF32, and the torch path. Each row
  gives the function's error against float64: compare at equal accuracy.
* spike masking (``p = 0.3``) fused into snnlab's Triton LIF against the LIF followed by a
  ``SpikeMask`` layer, at the LIF sizes (run last);
* a profile of snnlab's Triton steps (``torch.profiler``): per case, the kernels' device time per step,
  their share of it, and the step's time beside the device's busy time (the rest is launch overhead and
  host syncs), to show where a gap to a target comes from.

Every step is a forward, ``out.sum().backward()`` (LIF: gradient to the input; Linear+LIF and delays:
to the weights), timed with CUDA events; the tables give the median over ``--reps`` steps after
``--warmup`` steps. Each library variant runs in its own subprocess (a crash, an out-of-memory or a
``torch.compile`` that takes too long costs only its own rows; ``--timeout`` seconds each), all in one
run of this script, so the ratios compare numbers taken minutes apart on the same device. They run in
the order of ``VARIANTS``: the rows the comparison needs first, the settings that tune snnlab last.

Bandwidth: the device's copy bandwidth is measured first (bytes read + written by a device-to-device
copy of a 1 GiB tensor). A LIF step with snnlab's kernels moves 6 tensors of ``T*B*N`` float32 (forward:
read x, write spikes and membrane; ``sum()`` reads the spikes; backward: read the membrane, write
grad_x; the gradient of ``sum()`` is one number); the table gives the achieved bandwidth as a fraction
of the copy bandwidth. Gradients are reset before every step (none accumulate).

Rows are appended to ``rows.jsonl`` in ``--out`` as each variant finishes and the tables rewritten, so a
run cut short keeps what it measured; ``--deadline`` bounds the whole run (a variant gets what is left
when that is under ``--timeout``, and none starts with under ``--min-start`` seconds left).

Peers missing from the environment are reported as such, not silently dropped.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # snnlab from this checkout, however it is run

LIF_CASES = [(500, 16, 16384), (32, 64, 65536)]
LINEAR_CASES = [(500, 16, 4096), (500, 16, 8192), (500, 16, 16384)]
DELAY_CASE = dict(T=100, B=256, inp=140, out=256, K=25)
QUICK_LIF = [(50, 4, 1024), (8, 8, 4096)]
QUICK_LINEAR = [(50, 4, 512)]
QUICK_DELAY = dict(T=20, B=8, inp=14, out=16, K=5)
BETA, THRESHOLD = 0.9, 1.0
LIF_TENSORS_MOVED = 6  # see the module docstring

# variant name -> (kind of cases, environment for its subprocess), in the order they run: what the issue's
# table needs first (snnlab's defaults, each peer, DelayedLinear against Dcls1d), then the torch paths
# and torch.compile'd peers (slower to start), then the settings that choose snnlab's defaults, so that
# a run cut short by --deadline loses the least needed rows
VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "snnlab triton": ("neuron", {}),
    # SpikingJelly picks its CUDA implementation itself (the PyPI wheel has no native one: triton);
    # each row records which one ran
    "spikingjelly": ("neuron", {}),
    "snntorch": ("neuron", {}),
    "norse": ("neuron", {}),
    # DelayedLinear: snnlab's Triton "mma" path (float32 accuracy; bfloat16 x3 on spikes) and its torch
    # path; Dcls1d with PyTorch's defaults (cuDNN may use TF32) and in float32 (TF32 off), for equal accuracy
    "snnlab DelayedLinear": ("delay", {}),
    "dcls Dcls1d": ("delay", {}),
    "dcls Dcls1d fp32": ("delay", {}),
    # the "taps" algorithm: the dense tap tensor written once per call, then pipelined tensor-core products
    # (no kernel tiles built in registers): a candidate for the default, so before the slower peers
    "snnlab DelayedLinear taps": ("delay", {"SNNLAB_TRITON_DELAY_ALGO": "taps"}),
    "snnlab torch": ("neuron", {}),
    "snntorch compiled step": ("neuron", {}),
    "norse compiled step": ("neuron", {}),
    # where snnlab's Triton steps spend their time, kernel by kernel (explains a target missed)
    "snnlab triton profile": ("profile", {}),
    # the Triton "gather" path, the "mma" path with three TF32 products where the default ("auto") takes
    # three bfloat16 ones on spikes, and with single TF32 products, to choose the defaults
    "snnlab DelayedLinear gather": ("delay", {"SNNLAB_TRITON_DELAY_ALGO": "gather"}),
    "snnlab DelayedLinear tf32x3": ("delay", {"SNNLAB_TRITON_DELAY_PRECISION": "tf32x3"}),
    "snnlab DelayedLinear tf32": ("delay", {"SNNLAB_TRITON_DELAY_PRECISION": "tf32"}),
    # the LIF kernels' settings, to choose their defaults: loads in flight (default 4 steps), and a fixed
    # block of 1024 neurons (the default shrinks it while programs < multiprocessors)
    "snnlab triton prefetch=1": ("neuron", {"SNNLAB_TRITON_LIF_PREFETCH": "1"}),
    "snnlab triton prefetch=2": ("neuron", {"SNNLAB_TRITON_LIF_PREFETCH": "2"}),
    "snnlab triton block=1024": ("neuron", {"SNNLAB_TRITON_LIF_BLOCK": "1024"}),
    # spike masking (p = MASK_P) fused into the Triton LIF against the LIF followed by a SpikeMask layer
    "snnlab masked: fused": ("mask", {}),
    "snnlab masked: LIF + SpikeMask": ("mask", {}),
    # adaptive LIF (sl.ALIF, feed-forward): its Triton kernels against its fused PyTorch Function
    "snnlab ALIF triton": ("neuron", {}),
    "snnlab ALIF torch": ("neuron", {}),
}
MASK_P = 0.3
ALIF_ADAPTATION, ALIF_TAU_ADAPT = 0.2, 50.0
clock = time.perf_counter  # the driver's clock for --deadline (a test replaces it)


# ----------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step, device: torch.device, warmup: int, reps: int) -> list[float]:
    """Seconds per call of ``step()``: CUDA events on a GPU, ``perf_counter`` on a CPU."""
    for _ in range(warmup):
        step()
    sync(device)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return times


def copy_bandwidth(device: torch.device, nbytes: int, reps: int = 10) -> float:
    """Bytes read + written per second by a device-to-device copy of ``nbytes``."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    times = time_steps(lambda: dst.copy_(src), device, warmup=3, reps=reps)
    return 2 * nbytes / statistics.median(times)


# ----------------------------------------------------------------------------- neuron models


def neuron_step_fn(variant: str, n: int, linear: bool, device: torch.device):
    """``(run, parameters, info)`` for one library variant: ``run(x [T, B, N]) -> spikes [T, B, N]`` (layers
    built once), the parameters whose gradients a step produces, and notes for the table."""
    fc = torch.nn.Linear(n, n, device=device) if linear else None
    params = list(fc.parameters()) if fc is not None else []

    def pre(x):
        return fc(x) if fc is not None else x

    if variant.startswith("snnlab masked"):
        import snnlab as sl

        fused = variant.endswith("fused")
        lif = sl.LIF(beta=BETA, threshold=THRESHOLD, surrogate="atan", backend="triton", seed=0,
                     mask_p=MASK_P if fused else 0.0).to(device)
        model = lif if fused else torch.nn.Sequential(lif, sl.SpikeMask(MASK_P, seed=0))
        return (lambda x: model(pre(x))), params, f"mask_p={MASK_P:g}"
    if variant.startswith("snnlab ALIF"):
        import snnlab as sl

        alif = sl.ALIF(beta=BETA, threshold=THRESHOLD, surrogate="atan", adaptation=ALIF_ADAPTATION,
                       tau_adapt=ALIF_TAU_ADAPT, backend=variant.split()[2]).to(device)
        return (lambda x: alif(pre(x))), params, f"adaptation={ALIF_ADAPTATION:g}, tau_adapt={ALIF_TAU_ADAPT:g}"
    if variant.startswith("snnlab"):
        import snnlab as sl

        lif = sl.LIF(beta=BETA, threshold=THRESHOLD, surrogate="atan", backend=variant.split()[1]).to(device)
        return (lambda x: lif(pre(x))), params, ""
    if variant.startswith("spikingjelly"):
        from spikingjelly.activation_based import functional, neuron, surrogate

        # decay_input=False, tau=1/(1-beta): h = beta * v + x, as snnlab; v_reset=None: subtract reset
        lif = neuron.LIFNode(tau=1.0 / (1.0 - BETA), decay_input=False, v_threshold=THRESHOLD, v_reset=None,
                             surrogate_function=surrogate.ATan(), step_mode="m").to(device)

        def run(x):
            functional.reset_net(lif)
            return lif(pre(x))
        try:
            info = str(functional.neuron_implementation("lif", device))
        except Exception as exc:  # an older or newer SpikingJelly without this query
            info = f"implementation unknown ({type(exc).__name__})"
        return run, params, info
    if variant.startswith("snntorch"):
        import snntorch as snn
        from snntorch import surrogate

        lif = snn.Leaky(beta=BETA, threshold=THRESHOLD, spike_grad=surrogate.atan()).to(device)
        cell = torch.compile(lif) if "compiled" in variant else lif

        def run(x):  # the Linear over all steps at once, then the step loop (snnTorch's kindest form)
            mem = lif.init_leaky()
            out = []
            for xt in pre(x).unbind(0):
                spk, mem = cell(xt, mem)
                out.append(spk)
            return torch.stack(out)
        return run, params, ""
    if variant.startswith("norse"):
        import norse.torch as norse

        # norse's LIF integrates a synaptic current too; dt * tau_mem_inv = 1 - beta
        p = norse.LIFParameters(tau_mem_inv=torch.as_tensor((1.0 - BETA) / 1e-3), v_th=torch.as_tensor(THRESHOLD),
                                method="super")
        if "compiled" in variant:
            cell = torch.compile(norse.LIFCell(p).to(device))

            def run(x):
                state, out = None, []
                for xt in pre(x).unbind(0):
                    spk, state = cell(xt, state)
                    out.append(spk)
                return torch.stack(out)
            return run, params, ""
        layer = norse.LIF(p).to(device)
        return (lambda x: layer(pre(x))[0]), params, ""
    raise ValueError(f"unknown variant {variant!r}")


def neuron_input(kind: str, T: int, B: int, N: int, device, params: list) -> tuple[torch.Tensor, list]:
    """The input of a neuron case, and the tensors whose gradients a step produces (LIF: the input too)."""
    x = torch.rand(T, B, N, device=device) * (0.6 if kind == "LIF" else 1.0)
    if kind == "LIF":
        x.requires_grad_(True)
        params = params + [x]
    return x, params


def grad_step(forward, params: list):
    """One training step: fresh gradients (none accumulate into ``.grad``), ``forward().sum().backward()``."""
    def step():
        for p in params:
            p.grad = None
        forward().sum().backward()
    return step


def run_neuron_variant(variant: str, lif_cases, linear_cases, device, warmup, reps) -> None:
    for kind, cases in (("LIF", lif_cases), ("Linear+LIF", linear_cases)):
        for T, B, N in cases:
            row = dict(variant=variant, kind=kind, T=T, B=B, N=N)
            try:
                run, params, info = neuron_step_fn(variant, N, kind == "Linear+LIF", device)
                if info:
                    row["info"] = info
                x, params = neuron_input(kind, T, B, N, device, params)
                step = grad_step(lambda: run(x), params)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                times = time_steps(step, device, warmup, reps)
                row.update(median_s=statistics.median(times), times=times)
                if device.type == "cuda":
                    row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
            except Exception as exc:  # one case failing (e.g. out of memory) keeps the others
                row["error"] = error_text(exc)
            emit(row)
            if device.type == "cuda":
                torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- delays


def dcls_layer(inp: int, out: int, K: int, weight, positions, sigma: float, device):
    """``Dcls1d`` holding the same function as snnlab's DelayedLinear(weight, positions, sigma).

    Dcls1d is a cross-correlation over an input padded by ``K - 1`` steps on the left, so its tap
    ``k`` is the delay ``K - 1 - k``; its Gaussian is centred at ``P + K // 2`` with width
    ``|SIG| + 0.27``.
    """
    from DCLS.construct.modules import Dcls1d

    layer = Dcls1d(inp, out, kernel_count=1, dilated_kernel_size=K, bias=False, version="gauss").to(device)
    with torch.no_grad():
        layer.weight.copy_(weight.view(out, inp, 1))
        layer.P.copy_((K - 1 - positions - K // 2).view(1, out, inp, 1))
        layer.SIG.fill_(sigma - 0.27)
    return layer


def dcls_forward(layer, x: torch.Tensor, K: int) -> torch.Tensor:
    """``x [T, B, in] -> [T, B, out]`` through Dcls1d (``[B, C, T]`` layout, causal left padding)."""
    xb = torch.nn.functional.pad(x.permute(1, 2, 0), (K - 1, 0))
    return layer(xb).permute(2, 0, 1)


def spike_input(case: dict, device) -> torch.Tensor:
    """Seeded spikes ``[T, B, in]`` at 10 % density, as SHD's input layer sees."""
    g = torch.Generator().manual_seed(0)
    return (torch.rand(case["T"], case["B"], case["inp"], generator=g) < 0.1).float().to(device)


def snnlab_delay_layer(case: dict, sigma: float | None, backend: str, device):
    """snnlab's DelayedLinear of ``case`` (seeded) at ``sigma``, or rounded when ``sigma`` is None."""
    import snnlab as sl

    layer = sl.DelayedLinear(case["inp"], case["out"], case["K"], seed=1, backend=backend).to(device)
    layer.sigma = sigma if sigma is not None else 0.5
    if sigma is None:
        layer.round_delays()
    return layer


def run_delay_variant(variant: str, case: dict, device, warmup, reps) -> None:
    from snnlab.core.delays import delayed_linear_reference, delayed_linear_rounded

    T, B, inp, out, K = (case[k] for k in ("T", "B", "inp", "out", "K"))
    x = spike_input(case, device)
    settings = [(f"sigma={K / 2:g}", K / 2.0), ("sigma=0.5", 0.5)]
    if variant.startswith("snnlab"):
        settings.append(("rounded", None))
    backends = ["triton", "torch"] if variant == "snnlab DelayedLinear" else [
        "triton"] if variant.startswith("snnlab") else [None]
    if variant == "dcls Dcls1d fp32":
        torch.backends.cudnn.allow_tf32 = False
    name = variant.replace("snnlab DelayedLinear", "snnlab DelayedLinear {}") if backends[0] else variant
    for backend in backends:
        for label, sigma in settings:
            row = dict(variant=name.format(backend), kind="DelayedLinear",
                       setting=label, T=T, B=B, N=f"{inp}->{out}, K={K}")
            try:
                layer = snnlab_delay_layer(case, sigma, backend or "torch", device)
                if backend is None:  # the dcls layer, holding the same function as the snnlab one
                    ref_layer = layer
                    layer = dcls_layer(inp, out, K, ref_layer.weight.detach(), ref_layer.positions.detach(),
                                       sigma, device)
                    fwd = lambda: dcls_forward(layer, x, K)  # noqa: E731
                else:
                    ref_layer = layer
                    fwd = lambda: layer(x)  # noqa: E731
                # accuracy of the function: max error / max |y| vs float64
                if sigma is not None:
                    ref = delayed_linear_reference(x.double(), ref_layer.weight.detach().double(),
                                                   ref_layer.positions.detach().double(), sigma, K)
                else:
                    ref = delayed_linear_rounded(x.double(), ref_layer.weight.detach().double(), ref_layer.delays)
                with torch.no_grad():
                    err = (fwd().double() - ref).abs().max() / ref.abs().max()
                row["rel_error"] = float(err)

                times = time_steps(grad_step(fwd, list(layer.parameters())), device, warmup, reps)
                row.update(median_s=statistics.median(times), times=times)
            except Exception as exc:
                row["error"] = error_text(exc)
            emit(row)


# ----------------------------------------------------------------------------- profile

PROFILE_STEPS = 3
PROFILE_TOP = 8


def kernel_times(step, device: torch.device, steps: int = PROFILE_STEPS) -> list[tuple[str, float, float]]:
    """``(name, calls per step, seconds per step)`` of what ran in ``steps`` profiled calls of ``step()``,
    most time first: on a GPU the device's kernels, copies and memsets; on a CPU the operators' self time."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync(device)
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        sync(device)
    events = prof.key_averages()
    if cuda:
        picked = [(e.key, e.count, e.self_device_time_total) for e in events if e.device_type == DeviceType.CUDA]
        if not picked:  # a profiler that attributes device time to operators only
            picked = [(e.key, e.count, e.self_device_time_total) for e in events if e.self_device_time_total > 0]
    else:
        picked = [(e.key, e.count, e.self_cpu_time_total) for e in events if e.self_cpu_time_total > 0]
    return sorted(((k, c / steps, us * 1e-6 / steps) for k, c, us in picked), key=lambda r: -r[2])


def profile_cases(quick: bool) -> list[tuple[str, str, dict]]:
    """``(kind, label, case)`` of the profiled steps: the LIF and largest Linear+LIF cases, DelayedLinear
    with ``sigma = max_delay / 2`` and rounded."""
    lif, linear, delay = (QUICK_LIF, QUICK_LINEAR, QUICK_DELAY) if quick else (LIF_CASES, LINEAR_CASES, DELAY_CASE)
    cases = [("LIF", f"T={T}, B={B}, N={N}", dict(T=T, B=B, N=N)) for T, B, N in lif]
    T, B, N = linear[-1]
    cases.append(("Linear+LIF", f"T={T}, B={B}, N={N}", dict(T=T, B=B, N=N)))
    size = f"T={delay['T']}, B={delay['B']}, {delay['inp']}->{delay['out']}, K={delay['K']}"
    cases += [("DelayedLinear", f"{size}, sigma={delay['K'] / 2:g}", dict(delay, sigma=delay["K"] / 2.0)),
              ("DelayedLinear", f"{size}, rounded", dict(delay, sigma=None))]
    return cases


def run_profile_variant(variant: str, quick: bool, device, warmup: int, reps: int) -> None:
    for kind, label, case in profile_cases(quick):
        row = dict(variant=variant, kind="profile", case=f"{kind}, {label}")
        try:
            if kind == "DelayedLinear":
                layer = snnlab_delay_layer(case, case["sigma"], "triton", device)
                x = spike_input(case, device)
                step = grad_step(lambda: layer(x), list(layer.parameters()))
            else:
                run, params, _ = neuron_step_fn("snnlab triton", case["N"], kind == "Linear+LIF", device)
                x, params = neuron_input(kind, case["T"], case["B"], case["N"], device, params)
                step = grad_step(lambda: run(x), params)
            row["median_s"] = statistics.median(time_steps(step, device, warmup, reps))
            kernels = kernel_times(step, device, steps=1 if quick else PROFILE_STEPS)
            row["timed"] = "device" if device.type == "cuda" else "cpu"
            row["busy_s"] = sum(s for _, _, s in kernels)
            row["kernels"] = [dict(name=k[:90], calls=c, seconds=s) for k, c, s in kernels[:PROFILE_TOP]]
        except Exception as exc:
            row["error"] = error_text(exc)
        emit(row)
        if device.type == "cuda":
            torch.cuda.empty_cache()


def profile_markdown(rows: list[dict]) -> list[str]:
    """One table per profiled case: the kernels' time per step and their share of the device's busy time."""
    lines = []
    for r in rows:
        lines += ["", f"### Profile: snnlab triton, {r['case']}", ""]
        if "error" in r:
            lines.append(f"Failed: {r['error']}")
            continue
        busy, step = r["busy_s"], r["median_s"]
        if r.get("timed") == "device":
            busy_line = (f"the device is busy {busy * 1e3:.3f} ms of it ({busy / step:.0%}; the rest is launch "
                         "overhead and host syncs)")
        else:
            busy_line = f"the operators' self time on the CPU is {busy * 1e3:.3f} ms ({busy / step:.0%} of it)"
        lines += [f"Step {step * 1e3:.3f} ms (median, unprofiled); {busy_line}.", "",
                  "| kernel | calls / step | ms / step | share of busy |", "| --- | ---: | ---: | ---: |"]
        for k in r["kernels"]:
            name = k["name"].replace("|", "\\|")
            share = f"{k['seconds'] / busy:.0%}" if busy else "-"
            lines.append(f"| `{name}` | {k['calls']:g} | {k['seconds'] * 1e3:.3f} | {share} |")
    return lines


# ----------------------------------------------------------------------------- worker / driver


def error_text(exc: BaseException) -> str:
    """An exception as one short line for the table: its type and the first line of its message."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def emit(row: dict) -> None:
    print("ROW " + json.dumps(row), flush=True)


def worker(args) -> None:
    device = torch.device(args.device)
    kind, _ = VARIANTS[args.worker]
    if kind in ("neuron", "mask"):  # masking: the LIF cases only
        run_neuron_variant(args.worker, QUICK_LIF if args.quick else LIF_CASES,
                           [] if kind == "mask" else QUICK_LINEAR if args.quick else LINEAR_CASES, device,
                           args.warmup, args.reps)
    elif kind == "profile":
        run_profile_variant(args.worker, args.quick, device, args.warmup, args.reps)
    else:
        run_delay_variant(args.worker, QUICK_DELAY if args.quick else DELAY_CASE, device, args.warmup, args.reps)


def run_worker(variant: str, args, timeout: float) -> tuple[list[dict], str]:
    """Run one variant in a subprocess (killed after ``timeout`` seconds); its rows, and a note when it
    failed or timed out (the rows it printed before are kept)."""
    cmd = [sys.executable, __file__, "--worker", variant, "--device", args.device,
           "--warmup", str(args.warmup), "--reps", str(args.reps)] + (["--quick"] if args.quick else [])
    env = dict(os.environ, **VARIANTS[variant][1])
    rows, note = [], ""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err, rc = "", None
        note = f"timed out after {timeout:.0f} s"
    for line in out.splitlines():
        if line.startswith("ROW "):
            rows.append(json.loads(line[4:]))
    if rc not in (0, None):
        last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or ["(no message)"]
        note = f"exit {rc}: {last[0][:200]}"
    return rows, note


def markdown(rows: list[dict], bandwidth: float | None, device_name: str, notes: dict[str, str]) -> str:
    """The result tables: time per step, each peer's time / snnlab triton's, bandwidth fractions."""
    lines = [f"Device: {device_name}. Copy bandwidth: "
             + (f"{bandwidth / 1e9:.0f} GB/s (read + write)." if bandwidth else "not measured.")]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["kind"] == "profile":
            continue
        groups.setdefault((r["kind"], r["T"], r["B"], str(r["N"])), []).append(r)
    for (kind, T, B, N), rs in groups.items():
        lines += ["", f"### {kind}, T={T}, B={B}, N={N}", "",
                  "| library | setting | median ms | time / snnlab triton | peak GiB | notes |",
                  "| --- | --- | ---: | ---: | ---: | --- |"]
        base = {r.get("setting"): r["median_s"] for r in rs
                if r["variant"] in ("snnlab triton", "snnlab DelayedLinear triton") and "median_s" in r}
        for r in rs:
            note = r.get("error", "")
            if "rel_error" in r:
                note = (note + " " if note else "") + f"rel. error {r['rel_error']:.1e}"
            if "info" in r:
                note = (note + " " if note else "") + r["info"]
            if "median_s" in r and kind == "LIF" and r["variant"].startswith("snnlab triton") and bandwidth:
                moved = LIF_TENSORS_MOVED * T * B * int(N) * 4
                note = (note + " " if note else "") + (
                    f"{moved / r['median_s'] / 1e9:.0f} GB/s = {moved / r['median_s'] / bandwidth:.0%} of copy")
            ms = f"{r['median_s'] * 1e3:.3f}" if "median_s" in r else "-"
            b = base.get(r.get("setting"))
            ratio = f"{r['median_s'] / b:.2f}" if "median_s" in r and b else "-"
            peak = f"{r['peak_gib']:.2f}" if "peak_gib" in r else "-"
            lines.append(f"| {r['variant']} | {r.get('setting', '')} | {ms} | {ratio} | {peak} | {note} |")
    lines += profile_markdown([r for r in rows if r["kind"] == "profile"])
    if notes:
        lines += ["", "Variants that did not finish:"] + [f"- {v}: {n}" for v, n in notes.items()]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="small sizes (a check of the script)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--timeout", type=int, default=120, help="seconds per library variant")
    ap.add_argument("--deadline", type=float, default=540,
                    help="seconds for the whole run: each variant gets --timeout or what is left, whichever is "
                         "less, and is not started with under --min-start left")
    ap.add_argument("--min-start", type=float, default=30, help="seconds a variant needs left to be started")
    ap.add_argument("--only", nargs="*", default=None, help="variants to run (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="folder for results.json and results.md")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    unknown = set(args.only or []) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    device = torch.device(args.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    started = clock()
    bandwidth = copy_bandwidth(device, 2 ** 30 if not args.quick else 2 ** 26)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the copy's buffers go back before the workers need the memory
    print(f"{device_name}: copy bandwidth {bandwidth / 1e9:.0f} GB/s", flush=True)
    meta = dict(device=device_name, bandwidth=bandwidth, torch=torch.__version__,
                args={k: str(v) for k, v in vars(args).items()})
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "rows.jsonl").write_text("")
    rows, notes = [], {}
    for variant in args.only or VARIANTS:
        left = args.deadline - (clock() - started)
        if left < args.min_start:
            notes[variant] = f"not started: under {args.min_start:g} s left of --deadline {args.deadline:g} s"
            continue
        t0 = clock()
        got, note = run_worker(variant, args, timeout=min(args.timeout, left))
        rows += got
        if note:
            notes[variant] = note
        print(f"{variant}: {len(got)} rows in {clock() - t0:.0f} s {note}", flush=True)
        if args.out:  # after each variant, so that a run cut short keeps what it measured
            with open(args.out / "rows.jsonl", "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in got)
            write_results(args.out, meta, rows, notes)
    table = markdown(rows, bandwidth, device_name, notes)
    print(table)
    if args.out:
        write_results(args.out, meta, rows, notes)
    return 0


def write_results(out: Path, meta: dict, rows: list[dict], notes: dict[str, str]) -> None:
    (out / "results.json").write_text(json.dumps(dict(meta=meta, rows=rows, notes=notes), indent=1))
    (out / "results.md").write_text(markdown(rows, meta["bandwidth"], meta["device"], notes))


if __name__ == "__main__":
    sys.exit(main())
