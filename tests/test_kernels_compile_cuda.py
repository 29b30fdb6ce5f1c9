"""The Triton kernels compile for an NVIDIA H100/H200 (sm_90), checked on a machine without a GPU.

The kernel tests run the kernels (LIF, adaptive LIF, DelayedLinear) through Triton's CPU interpreter, which checks
what they compute but not that Triton's GPU compiler accepts them; tests/triton_cuda_compile.py compiles every launch
those tests make down to a cubin, with the compile options of the launch (see its docstring). Both run in subprocesses
without TRITON_INTERPRET.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("triton")
TESTS = Path(__file__).resolve().parent
PTXAS = Path(__import__("triton").__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
pytestmark = pytest.mark.skipif(not PTXAS.exists(), reason="this Triton wheel has no CUDA backend (ptxas)")


def _run(args, cwd=TESTS):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900, env=env, cwd=cwd)


def test_every_kernel_launch_compiles_for_sm90():
    proc = _run([str(TESTS / "triton_cuda_compile.py")])
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["failed"] == {} and proc.returncode == 0
    # every option of the LIF and adaptive LIF kernels and both delay paths: hundreds of distinct specialisations
    # (283 when written: 90 LIF, 111 adaptive LIF)
    assert report["compiled"] >= 200 and "arch=90" in report["target"]
    per_kernel = report["launches"]
    assert sum(per_kernel.values()) == report["compiled"]
    assert per_kernel["_lif_fwd_kernel"] + per_kernel["_lif_bwd_kernel"] >= 60
    assert per_kernel["_alif_fwd_kernel"] + per_kernel["_alif_bwd_kernel"] >= 60
    # in layers of full blocks (M a multiple of 16) the LIF and adaptive LIF kernels move 128 bits per load: what
    # their bandwidth on the GPU rests on
    vector = report["vector_loads_when_M_divisible_by_16"]
    assert set(vector) == {"_lif_fwd_kernel", "_lif_bwd_kernel", "_alif_fwd_kernel", "_alif_bwd_kernel"}
    for launches, with_vector_loads in vector.values():
        assert launches >= 4 and with_vector_loads == launches
    # the DelayedLinear "mma" and "taps" kernels run their TF32 and bfloat16 products on the tensor cores, the
    # full-size tiles of real layers (recorded at the SHD layer's size) with Hopper's wgmma; the "taps" ones,
    # every operand loaded from memory, keep a wgmma in flight while the loop goes on (the "mma" forward
    # builds its kernel tiles in registers and waits for each product)
    tensor_cores = report["tensor_cores"]
    assert set(tensor_cores) == {"_delay_mma_apply_kernel", "_delay_mma_grad_kernel", "_shifted_taps_kernel",
                                 "_tap_correlation_kernel"}
    for launches, on_tensor_cores, full_tiles, with_wgmma, _ in tensor_cores.values():
        assert launches >= 4 and on_tensor_cores == launches and with_wgmma == full_tiles >= 3
    for name in ("_shifted_taps_kernel", "_tap_correlation_kernel"):
        _, _, full_tiles, _, overlapped = tensor_cores[name]
        assert overlapped == full_tiles, tensor_cores
    # the adaptive LIF kernels are launched without floating-point contraction (their threshold k * a + thr rounded
    # twice, as the PyTorch path): compiled so, every launch keeps a float32 product apart from its sum
    adaptive = ("_alif_fwd_kernel", "_alif_bwd_kernel")
    assert report["without_fp_fusion"] == {name: [per_kernel[name]] * 2 for name in adaptive}
    # registers spilled to local memory: none in the LIF and adaptive LIF kernels, at most a few words elsewhere (the
    # SHD-size DelayedLinear tiles spilled up to 1.1 KB before the kernels kept less per-synapse state and ran 8 warps)
    spills = [(json.loads(k)[1], b) for k, b in report["spill_bytes"].items()]
    assert not [n for n, _ in spills if "lif" in n] and max([b for _, b in spills], default=0) <= 128, spills
    # the LIF kernels' queues of loads in flight (up to 4 steps of membrane, spikes and output gradient)
    # leave registers to spare: at most 160 of the 255 a thread may have (139 were seen, in one-warp
    # programs of layers whose width is not a multiple of 16; 48 to 97 at the benchmark's sizes)
    assert set(report["registers"]) >= {"_lif_fwd_kernel", "_lif_bwd_kernel"}
    assert 0 < report["registers"]["_lif_fwd_kernel"] <= 160 and 0 < report["registers"]["_lif_bwd_kernel"] <= 160
    # the adaptive LIF's carry a trace (and its gradient) more: at most 200 (142 forward, 176 backward were seen, in
    # one-warp programs of 128 neurons with 4 steps in flight)
    assert 0 < report["registers"]["_alif_fwd_kernel"] <= 200 and 0 < report["registers"]["_alif_bwd_kernel"] <= 200


def test_a_kernel_the_interpreter_runs_but_the_gpu_compiler_rejects_is_reported(tmp_path):
    # a loop-carried value that changes type: the interpreter runs it, the GPU compiler refuses it
    (tmp_path / "broken_kernel.py").write_text(textwrap.dedent("""
        import triton
        import triton.language as tl

        @triton.jit
        def broken(x_ptr, T, BLOCK: tl.constexpr):
            offs = tl.arange(0, BLOCK)
            acc = tl.zeros([BLOCK], dtype=tl.int32)
            for t in range(T):
                acc = acc + tl.load(x_ptr + offs)
            tl.store(x_ptr + offs, acc)
    """))
    code = textwrap.dedent(f"""
        import json, sys
        sys.path[:0] = [{str(tmp_path)!r}, {str(TESTS)!r}]
        from broken_kernel import broken
        from triton_cuda_compile import compile_kernel
        sig = {{"x_ptr": "*fp32", "T": "i32", "BLOCK": "constexpr"}}
        print(json.dumps(compile_kernel(broken, sig, {{"BLOCK": 16}}, 4)[0]))
    """)
    proc = _run(["-c", code], cwd=tmp_path)
    error = json.loads(proc.stdout.strip().splitlines()[-1])
    assert error and "type" in error.lower(), proc.stderr[-2000:]


def test_a_launch_is_compiled_with_its_compile_options(tmp_path):
    # enable_fp_fusion=False at the launch: recorded with the launch and passed to the compiler, so a * b + c stays a
    # product rounded on its own and a sum (with contraction, the default, one fma); a keyword that is neither an
    # argument nor a compile option is refused
    (tmp_path / "madd_kernel.py").write_text(textwrap.dedent("""
        import triton
        import triton.language as tl

        @triton.jit
        def madd(a_ptr, b_ptr, c_ptr, BLOCK: tl.constexpr):
            offs = tl.arange(0, BLOCK)
            a = tl.load(a_ptr + offs)
            tl.store(c_ptr + offs, a * tl.load(b_ptr + offs) + a)
    """))
    code = textwrap.dedent(f"""
        import json, sys
        sys.path[:0] = [{str(tmp_path)!r}, {str(TESTS)!r}]
        import torch
        from madd_kernel import madd
        from triton_cuda_compile import LaunchRecorder, compile_kernel
        launches, t = {{}}, torch.ones(16)
        rec = LaunchRecorder("madd_kernel", "madd", madd, launches)
        rec[(1,)](t, t, t, BLOCK=16, num_warps=1, enable_fp_fusion=False)
        rec[(1,)](t, t, t, BLOCK=16, num_warps=1)
        try:
            rec[(1,)](t, t, t, BLOCK=16, num_wraps=1)
        except TypeError as exc:
            refused = str(exc)
        out = []
        for key in launches:
            _, _, sig, consts, options, aligned = json.loads(key)
            err, uses = compile_kernel(madd, sig, consts, options.pop("num_warps"), tuple(aligned), options)
            out.append([options, err, uses.get("mul_rn")])
        print(json.dumps([refused, out]))
    """)
    proc = _run(["-c", code], cwd=tmp_path)
    assert proc.stdout.strip(), proc.stderr[-2000:]
    refused, compiled = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "madd" in refused and "num_wraps" in refused
    assert compiled == [[{"enable_fp_fusion": False}, None, True], [{}, None, False]]
