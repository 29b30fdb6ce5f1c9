"""Compile snnlab's Triton kernels for an NVIDIA GPU (sm_90, the H100/H200) on a machine without one.

Run as a script (``python tests/triton_cuda_compile.py``, TRITON_INTERPRET unset): the LIF, adaptive LIF and
DelayedLinear wrappers are called on small CPU tensors for every option the kernel tests cover, with
each kernel replaced by a recorder of its launches (nothing runs); every distinct launch (argument
types, compile-time constants, compile options: warps, floating-point contraction) is then compiled by Triton's CUDA
backend down to a cubin with the ptxas in Triton's wheel, with the options it was launched with. The CPU interpreter
that runs the kernel tests in CI checks what the kernels compute; this checks that they compile for the GPU (types,
casts, constexpr branches), which the interpreter does not. Prints one JSON line: ``{"compiled": n, "failed":
{launch: error}, ..., "launches": {kernel: launches compiled}, "vector_loads_when_M_divisible_by_16": {kernel:
[launches, of which with 128-bit loads]}, "tensor_cores": {kernel: [TF32 or bfloat16 launches, of which on the tensor
cores, of 64-row tiles, of which with wgmma, of which with a wgmma in flight across loop iterations]},
"without_fp_fusion": {kernel: [launches with enable_fp_fusion=False, of which with a float32 product rounded on its
own]}, "spill_bytes": {launch: bytes of registers spilled, where any}, "registers": {kernel: most registers a thread
of any of its launches uses}}``.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

if os.environ.get("TRITON_INTERPRET"):
    sys.exit("unset TRITON_INTERPRET: the kernels must be decorated for the GPU backend")
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton's default on the GPU today, said explicitly

sys.path.insert(0, str(Path(__file__).resolve().parent))  # lif_cases
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # snnlab from this checkout

import torch  # noqa: E402
import triton  # noqa: E402
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.backends.nvidia.compiler import CUDAOptions  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

from snnlab.kernels import adaptive_lif_triton, delay_taps_triton, delays_triton, lif_triton  # noqa: E402

TARGET = GPUTarget("cuda", 90, 32)
_TYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16", torch.int64: "i64",
          torch.int32: "i32", torch.uint8: "u8", torch.bool: "i1"}
MODULES = (lif_triton, adaptive_lif_triton, delays_triton, delay_taps_triton)
H200_SMS = 132
# module functions replaced while the launches are recorded on CPU tensors
STAND_INS = {"_check_device": lambda *tensors: None, "_gpu_sms": lambda x: H200_SMS}


class LaunchRecorder:
    """Stands in for a ``@triton.jit`` kernel: ``kernel[grid](*args, **kwargs)`` records the launch."""

    def __init__(self, module: str, name: str, kernel, launches: dict) -> None:
        self.module, self.name, self.kernel, self.launches = module, name, kernel, launches

    def __getitem__(self, grid):
        return self.record

    def record(self, *args, **kwargs) -> None:
        names = self.kernel.arg_names
        # keywords that are not the kernel's arguments are compile options (num_warps, enable_fp_fusion, ...): they
        # change the binary, so they are part of the launch and passed on to the compiler
        options = {"num_warps": 4, **{k: kwargs.pop(k) for k in list(kwargs) if k not in names}}
        unknown = set(options) - set(CUDAOptions.__dataclass_fields__)
        if unknown:
            raise TypeError(f"{self.name}: keyword arguments {sorted(unknown)} are neither its arguments nor compile "
                            "options")
        values = dict(zip(names, args), **kwargs)
        const_names = {names[i] for i in self.kernel.constexprs}
        fixed = set(self.kernel.do_not_specialize)
        signature, constexprs, aligned = {}, {}, []
        for n in names:
            v = values[n]
            if n in const_names:
                signature[n], constexprs[n] = "constexpr", v
            elif isinstance(v, torch.Tensor):
                signature[n] = "*" + _TYPES[v.dtype]
                if v.data_ptr() % 16 == 0:
                    aligned.append(n)
            elif isinstance(v, bool):
                signature[n] = "i1"
            elif isinstance(v, int) and v == 1 and n not in fixed:
                signature[n], constexprs[n] = "constexpr", 1  # as Triton's launcher specialises a 1
            elif isinstance(v, int):
                signature[n] = "i32" if -2 ** 31 <= v < 2 ** 31 else "i64"
                if v % 16 == 0 and v != 0 and n not in fixed:
                    aligned.append(n)
            elif isinstance(v, float):
                signature[n] = "fp32"
            else:
                raise TypeError(f"{self.name}: argument {n} of type {type(v).__name__}")
        # as Triton specialises a launch on the GPU: pointers and integers divisible by 16 are marked so
        # (that is what lets it use 128-bit loads and stores)
        key = json.dumps([self.module, self.name, signature, constexprs, options, aligned], sort_keys=True)
        self.launches[key] = None


def record_launches() -> list[str]:
    """Every distinct kernel launch of the wrappers over the options the kernel tests cover."""
    launches: dict[str, None] = {}
    saved = [(mod, name, obj) for mod in MODULES for name, obj in list(vars(mod).items())
             if name in STAND_INS or isinstance(obj, triton.runtime.jit.JITFunction)]
    try:
        for mod, name, obj in saved:
            # CPU tensors stand in for CUDA ones (no device check, an H200's multiprocessors), and nothing
            # is launched
            stand_in = STAND_INS[name] if name in STAND_INS else LaunchRecorder(
                mod.__name__.rsplit(".", 1)[1], name, obj, launches)
            setattr(mod, name, stand_in)
        run_wrappers()
    finally:  # the kernels back in place: compiling one resolves the helpers it calls by name
        for mod, name, obj in saved:
            setattr(mod, name, obj)
    return list(launches)


def run_wrappers() -> None:
    """Forward and backward of the wrappers over every option of the kernel tests."""
    from lif_cases import CASES, MASK_CASES, make_inputs, mask_kwargs

    def lif(x, beta, thr, grad, params=True, sum_loss=False, **kw):
        x = x.clone().requires_grad_()
        beta, thr = beta.clone().requires_grad_(params), thr.clone().requires_grad_(params)
        s, _ = lif_triton.lif_triton(x, beta, thr, **kw)
        (s.sum() if sum_loss else (s * grad.to(s.dtype)).sum()).backward()

    for reset, detach, max_spikes, surrogate, param, per_neuron, shape in CASES:
        args = make_inputs(shape, per_neuron)
        kw = dict(reset=reset, detach_reset=detach, max_spikes=max_spikes, surrogate=surrogate, surrogate_param=param)
        lif(*args, **kw)
        lif(*args, params=False, sum_loss=True, **kw)
    for reset, max_spikes, noise, shape in MASK_CASES:
        lif(*make_inputs(shape, True), **mask_kwargs(reset, max_spikes, noise))
        lif(*make_inputs(shape, True, dtype=torch.bfloat16), **mask_kwargs(reset, max_spikes, noise))
    for noise, reset, max_spikes in (("gaussian", "subtract", None), ("logistic", "zero", 2)):
        lif(*make_inputs((2, 65), True), noise=noise, noise_scale=0.4, reset=reset, max_spikes=max_spikes)
    lif(*make_inputs((2, 65), True, dtype=torch.bfloat16), max_spikes=2)
    # M = 2048, a multiple of 16 (as in real layers), full 1024-neuron blocks: loads should be 128 bits wide
    for kw in (dict(), dict(max_spikes=1, reset="zero"), dict(noise="gaussian"), dict(mask_p=0.3)):
        lif(*make_inputs((2, 1024), True), **kw)
        lif(*make_inputs((2, 1024), True), params=False, sum_loss=True, **kw)
    lif(*make_inputs((2, 65), True, dtype=torch.float16), reset="zero")
    # the GPU benchmark's layers (M = 16 * 4096 and 16 * 16384: blocks of 256 and 1024 on an H200)
    for n in (4096, 16384):
        lif(*make_inputs((16, n), False), params=False, sum_loss=True)
        lif(*make_inputs((16, n), True), mask_p=0.3)
    for depth in range(1, 5):  # each depth of the loads in flight
        with lif_setting("_PREFETCH", depth):
            lif(*make_inputs((2, 1024), True), max_spikes=1)
            lif(*make_inputs((2, 1024), True, dtype=torch.bfloat16), noise="gaussian")
    run_adaptive_wrappers()

    def delays(shape, out, dtype, analog=False, **options):
        x = (torch.randn(*shape) if analog else torch.rand(*shape).round()).to(dtype).requires_grad_()
        w = torch.randn(out, shape[-1], requires_grad=True)
        p = (torch.rand(out, shape[-1]) * 4).requires_grad_()
        delays_triton.delayed_linear_triton(x, w, p, 1.5, 5, False, **options).sum().backward()
        delays_triton.delayed_linear_triton(x, w, p.detach().round().long(), 1.0, 5, True, **options).sum().backward()

    for algorithm in delays_triton.ALGORITHMS:
        for dtype in (torch.float32, torch.bfloat16):
            delays((6, 3, 14), 16, dtype, algorithm=algorithm)
            delays((4, 64, 140), 256, dtype, algorithm=algorithm)  # the SHD layer: the full-size tiles
    for algorithm in ("mma", "taps"):  # the tensor-core paths: every precision, spikes and analog inputs
        for precision in delays_triton.PRECISIONS:
            delays((4, 64, 140), 256, torch.float32, algorithm=algorithm, precision=precision)
        delays((4, 64, 140), 256, torch.float32, analog=True, algorithm=algorithm)


def run_adaptive_wrappers() -> None:
    """Forward and backward of the fused adaptive LIF over every option of tests/test_kernels_adaptive_triton.py."""
    from adaptive_cases import NOISES, adaptive_inputs, adaptive_options
    from lif_cases import CASES

    def alif(shape, per_neuron=True, dtype=torch.float32, grad_params=True, sum_loss=False, steps=5, **kw):
        x, params, grad = adaptive_inputs(shape, steps, per_neuron, dtype=dtype)
        leaves = [x.requires_grad_()] + [p.requires_grad_(grad_params) for p in params]
        o = adaptive_lif_triton.adaptive_lif_triton(*leaves, **kw)[0]
        (o.float().sum() if sum_loss else (o.float() * grad).sum()).backward()

    # every reset / detach_reset / max_spikes / surrogate / noise, scalar and per-neuron parameters, with and without
    # masks; without parameter gradients, the output gradient of a sum (one value expanded)
    for reset, detach, max_spikes, surrogate, param, per_neuron, shape in CASES:
        for mask_p in (0.0, 0.3):
            alif(shape, per_neuron, **adaptive_options(reset, detach, max_spikes, surrogate, param, mask_p))
        alif(shape, per_neuron, grad_params=False, sum_loss=True,
             **adaptive_options(reset, detach, max_spikes, surrogate, param))
    for noise in NOISES:  # noise without sampling: the noise density as the surrogate
        alif((2, 37), noise=noise, sample=False)
    for max_spikes, mask_p in ((None, 0.0), (2, 0.3)):
        alif((2, 37), sum_loss=True, reset="zero", max_spikes=max_spikes, mask_p=mask_p)
        alif((2, 37), grad_params=False, max_spikes=max_spikes, mask_p=mask_p)
    for dtype in (torch.float16, torch.bfloat16):  # half input: the membrane and trace kept in float32
        for noise, mask_p in ((None, 0.0), (None, 0.3), ("gaussian", 0.3)):
            alif((2, 37), dtype=dtype, max_spikes=3, mask_p=mask_p, noise=noise)
    with torch.no_grad():  # no backward: the trace not stored
        x, params, _ = adaptive_inputs((2, 37), 5, True)
        adaptive_lif_triton.adaptive_lif_triton(x, *params, keep_membrane=False, noise="logistic", mask_p=0.3,
                                                max_spikes=2)
    # full blocks (M a multiple of 16, 128-bit loads), the GPU benchmark's layer sizes, one program of 16 neurons
    for shape in ((1,), (2, 1024), (16, 4096), (16, 16384)):
        alif(shape)
        alif(shape, max_spikes=2, mask_p=0.3, noise="logistic")
    alif((2, 1024), dtype=torch.bfloat16, reset="zero", detach_reset=True, max_spikes=4, surrogate="triangle")
    for depth in range(1, 5):  # each depth of the loads in flight
        with lif_setting("_PREFETCH", depth):
            alif((2, 1024), max_spikes=2, mask_p=0.3)
            alif((2, 1024), noise="gaussian", reset="zero")
    with lif_setting("_MAX_BLOCK", 32):  # several programs of 32 neurons, the last partial (as in the kernel tests)
        alif((3, 43), reset="zero", max_spikes=2, mask_p=0.25)


@contextmanager
def lif_setting(name: str, value: int) -> Iterator[None]:
    """:mod:`snnlab.kernels.lif_triton`'s module setting ``name`` (``_PREFETCH``, ``_MAX_BLOCK``) set to ``value``
    inside the block (the adaptive LIF's launches read them too)."""
    saved = getattr(lif_triton, name)
    setattr(lif_triton, name, value)
    try:
        yield
    finally:
        setattr(lif_triton, name, saved)

def compile_kernel(kernel, signature: dict, constexprs: dict, num_warps: int, aligned: tuple[str, ...] = (),
                   options: dict | None = None) -> tuple[str | None, dict]:
    """Compile ``kernel`` (a ``@triton.jit`` function) for :data:`TARGET` with ``num_warps`` and the other compile
    ``options`` of its launch (``{"enable_fp_fusion": False}``, ...), the arguments in ``aligned`` marked divisible by
    16; ``(None or the error, what the PTX uses)``: ``{"v4": 128-bit global loads,
    "wgmma": Hopper's warpgroup matrix products, "mma": the older warp-level ones, "overlapped": a wgmma kept
    in flight across loop iterations, "mul_rn": a float32 product rounded on its own (``mul.rn.f32``, which ptxas does
    not contract into an fma; with contraction on, a product feeding a sum becomes one fma), "spill_bytes": registers
    spilled, "registers": registers a thread uses}``."""
    names = kernel.arg_names
    try:
        src = ASTSource(fn=kernel, signature=signature,
                        constexprs={(names.index(n),): v for n, v in constexprs.items()},
                        attrs={(names.index(n),): [["tt.divisibility", 16]] for n in aligned})
        compiled = triton.compile(src, target=TARGET, options={**(options or {}), "num_warps": num_warps})
        if not compiled.asm.get("cubin"):
            return "no cubin", {}
    except Exception as exc:  # reported, not raised: one failing launch does not hide the others
        return f"{type(exc).__name__}: {str(exc)[-2000:]}", {}
    ptx = compiled.asm["ptx"]
    # a wgmma left in flight while the loop goes on (Triton waits with pendings >= 1): products overlapped
    # with the next iteration's loads and address arithmetic, not waited for at once
    overlapped = re.search(r"warp_group_dot_wait[^\n]*pendings = [1-9]", compiled.asm.get("ttgir", "")) is not None
    return None, {"v4": "ld.global.v4" in ptx, "wgmma": "wgmma.mma_async" in ptx, "mma": "mma.sync" in ptx,
                  "overlapped": overlapped, "mul_rn": "mul.rn.f32" in ptx, **ptxas_usage(ptx)}


def ptxas_usage(ptx: str) -> dict:
    """``{"spill_bytes": registers spilled to local memory (stores), "registers": registers a thread uses}``
    when the ptxas Triton uses assembles ``ptx``."""
    from triton.backends.nvidia.compiler import get_ptxas

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kernel.ptx"
        path.write_text(ptx)
        log = subprocess.run([get_ptxas(TARGET.arch).path, f"-arch=sm_{TARGET.arch}a", "-v", str(path),
                              "-o", str(path.with_suffix(".cubin"))], capture_output=True, text=True).stderr
    spills = re.findall(r"(\d+) bytes spill stores", log)
    registers = re.findall(r"Used (\d+) registers", log)
    if not spills or not registers:
        raise RuntimeError(f"ptxas -v printed no spill or register count: {log[-500:]}")
    return {"spill_bytes": sum(int(n) for n in spills), "registers": max(int(n) for n in registers)}


def compile_launch(key: str) -> tuple[str | None, dict]:
    """Compile one launch recorded by :func:`record_launches` (see :func:`compile_kernel`)."""
    module, name, signature, constexprs, options, aligned = json.loads(key)
    kernel = getattr({m.__name__.rsplit(".", 1)[1]: m for m in MODULES}[module], name)
    return compile_kernel(kernel, signature, constexprs, options.pop("num_warps"), tuple(aligned), options)


def summarize(results: dict[str, dict]) -> dict:
    """Per kernel, what its compiled launches (``{launch: what compile_kernel found}``) use (see the module's
    docstring)."""
    counts, vector, tensor_cores, spills, registers, unfused = {}, {}, {}, {}, {}, {}
    for key, uses in results.items():
        _, name, _, constexprs, options, aligned = json.loads(key)
        counts[name] = counts.get(name, 0) + 1
        if uses["spill_bytes"]:
            spills[key] = uses["spill_bytes"]
        registers[name] = max(registers.get(name, 0), uses["registers"])
        # launches with M divisible by 16 (all pointers aligned): how many load 128 bits at a time
        if "M" in aligned:
            n, k = vector.get(name, (0, 0))
            vector[name] = (n + 1, k + int(uses["v4"]))
        if str(constexprs.get("PRECISION", "")) in ("tf32", "tf32x3", "bf16x3"):
            full = constexprs.get("BI", constexprs.get("BR")) >= 64  # the rows of the products' tiles
            n, k, f, w, o = tensor_cores.get(name, (0, 0, 0, 0, 0))
            tensor_cores[name] = (n + 1, k + int(uses["wgmma"] or uses["mma"]), f + int(full),
                                  w + int(full and uses["wgmma"]), o + int(full and uses["overlapped"]))
        if options.get("enable_fp_fusion") is False:
            n, k = unfused.get(name, (0, 0))
            unfused[name] = (n + 1, k + int(uses["mul_rn"]))
    return {"launches": counts, "vector_loads_when_M_divisible_by_16": vector, "tensor_cores": tensor_cores,
            "without_fp_fusion": unfused, "spill_bytes": spills, "registers": registers}


def main() -> int:
    launches = record_launches()
    with tempfile.TemporaryDirectory() as cache:
        # a fresh cache, so that every launch is compiled (not found compiled by an earlier run);
        # the workers are spawned (not forked from a process that has run torch's thread pools)
        os.environ["TRITON_CACHE_DIR"] = cache
        with ProcessPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            results = dict(zip(launches, pool.map(compile_launch, launches)))
    failed = {k: e for k, (e, _) in results.items() if e}
    print(json.dumps({"compiled": len(launches) - len(failed), "failed": failed, "target": str(TARGET),
                      **summarize({k: uses for k, (err, uses) in results.items() if not err})}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
