"""DelayedLinear's memory and its compiled rounded form:

* a sequence shorter than ``max_delay`` builds only the taps that reach inside it (the Gaussian normalised over all
  ``max_delay`` taps, summed by chunks): 1024 -> 1024 with ``max_delay=100`` and ``T=1`` held ~2 GB for a step;
* a rounded layer under plain ``torch.compile`` computes only the delay values that occur (it took every tap
  below T: 17-39x eager's step time with 4 of 100 delays, now about eager's), checked in the graph so delays
  changed in place stay exact;
* ``estimate_memory_bytes`` counts the delay layers with the memory model the layer chooses its method by;
* half precision is costed as the float32 it is computed in, so a layer and its bfloat16 copy choose alike.
"""
import copy
import json
import operator
import os
import subprocess
import sys

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import snnlab as sl
from snnlab.core import delays as D
from snnlab.kernels import delay_math
from snnlab.kernels.delay_math import gaussian_delay_kernel

D64 = torch.float64
EPS32 = torch.finfo(torch.float32).eps


class _LargestTensor(TorchDispatchMode):
    """Records the most elements of any tensor an operation returns."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


# The peak resident memory a step adds, in a fresh process: Linux's VmHWM after resetting it to the current VmRSS
# (ru_maxrss would not do: Linux carries the parent's peak across fork and exec, which hid most of a step run from
# a large pytest process).
_PEAK = r'''
import re
def _status(key):
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
def peak_from_here(step):
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status("VmRSS")
    step()
    return _status("VmHWM") - base
'''
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="measures Linux's VmHWM")


def _run_child(code: str, *args) -> dict:
    out = subprocess.run([sys.executable, "-c", _PEAK + code, *map(str, args)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- 1. short sequences


@pytest.mark.parametrize("method", ["taps", "fft"])
def test_short_sequence_never_builds_the_full_kernel(method, monkeypatch):
    """T=3 of max_delay=400 on a 48-synapse layer, chunks of 10 taps: no tensor of a training step reaches the
    [out, in, max_delay] kernel's 19 200 elements (it did: the full Gaussian, then the first T taps); outputs and
    gradients stay the float64 reference's."""
    monkeypatch.setattr(delay_math, "_TAP_CHUNK_ELEMENTS", 480, raising=False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 8, generator=g, dtype=D64)
    w = torch.randn(6, 8, generator=g, dtype=D64, requires_grad=True)
    p = (torch.rand(6, 8, generator=g, dtype=D64) * 12).requires_grad_(True)
    with _LargestTensor() as seen:
        y = D.delayed_linear(x, w, p, 5.0, 400, method=method)
        gw, gp = torch.autograd.grad(y.square().sum(), (w, p))
    assert seen.largest <= 2 * 480, seen.largest  # (a chunk and its taps' index; [out, in, 400] = 19 200)
    ref = D.delayed_linear_reference(x, w, p, 5.0, 400)
    gw_r, gp_r = torch.autograd.grad(ref.square().sum(), (w, p))
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(gw, gw_r, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gp, gp_r, rtol=1e-10, atol=1e-12)


_ONE_STEP_CHILD = r'''
import json
import torch
torch.set_num_threads(1)
import snnlab as sl
layer = sl.DelayedLinear(1024, 1024, max_delay=100, seed=0, backend="torch")
x = torch.rand(1, 1, 1024)
sl.DelayedLinear(3, 2, max_delay=100, seed=0)(torch.rand(1, 1, 3)).sum().backward()  # (the code paths loaded)
print(json.dumps({"mib": peak_from_here(lambda: layer(x).sum().backward()) / 2**20}))
'''


@needs_proc
def test_one_step_of_a_large_layer_holds_less_than_one_full_kernel():
    """1024 -> 1024, max_delay=100, T=1: a training step held +2 GiB (five copies of the 400 MiB [out, in,
    max_delay] kernel); now about +150 MiB (the first tap, chunks of the normaliser's sum)."""
    assert _run_child(_ONE_STEP_CHILD)["mib"] < 400


@pytest.mark.parametrize("n_taps", [1, 3, 7, 11])
@pytest.mark.parametrize("sigma", [0.3, 1.5, 6.0])
def test_first_taps_are_the_full_kernels_with_its_derivatives(n_taps, sigma, monkeypatch):
    """gaussian_delay_kernel(n_taps=n) is the full kernel's first n taps (normalised over all 12), with the full
    kernel's first and second derivatives (gradcheck, gradgradcheck), forward mode and torch.func's hessian / jacfwd,
    also summed by chunks of 2 taps."""
    from torch.autograd import forward_ad
    from torch.func import grad, hessian, jacfwd

    K = 12
    monkeypatch.setattr(delay_math, "_TAP_CHUNK_ELEMENTS", 10, raising=False)  # 5 positions: chunks of 2 taps
    p = torch.tensor([0.2, 3.5 + 1e-3, 5.9, 8.4, 10.6], dtype=D64)
    torch.testing.assert_close(gaussian_delay_kernel(p, sigma, K, n_taps=n_taps),
                               gaussian_delay_kernel(p, sigma, K)[:, :n_taps], rtol=1e-14, atol=1e-15)
    q = p.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda r: gaussian_delay_kernel(r, sigma, K, n_taps=n_taps), (q,), eps=1e-6,
                                    atol=1e-7, rtol=1e-5)
    assert torch.autograd.gradgradcheck(lambda r: gaussian_delay_kernel(r, sigma, K, n_taps=n_taps), (q,), eps=1e-6,
                                        atol=1e-6, rtol=1e-4)
    w = torch.randn(5, n_taps, dtype=D64, generator=torch.Generator().manual_seed(n_taps))

    def head(r):
        return (gaussian_delay_kernel(r, sigma, K, n_taps=n_taps) * w).sum()

    expected = torch.autograd.functional.hessian(lambda r: (gaussian_delay_kernel(r, sigma, K)[:, :n_taps] * w).sum(),
                                                 p)
    torch.testing.assert_close(hessian(head)(p), expected, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(jacfwd(grad(head))(p), expected, rtol=1e-9, atol=1e-10)
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(p.clone().requires_grad_(True), torch.ones_like(p))
        tangent = forward_ad.unpack_dual(gaussian_delay_kernel(dual, sigma, K, n_taps=n_taps)).tangent
    jac = torch.autograd.functional.jacobian(lambda r: gaussian_delay_kernel(r, sigma, K)[:, :n_taps], p)
    torch.testing.assert_close(tangent, jac.sum(-1), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("chunk", [2**22, 300])
def test_first_taps_position_gradient_keeps_float32_accuracy(chunk, monkeypatch):
    """float32 positions' gradients of the first taps within a few float32 units of the float64 full kernel's, with
    an offset of 1e3 on every tap's upstream gradient (summed in one chunk, or by single taps)."""
    monkeypatch.setattr(delay_math, "_TAP_CHUNK_ELEMENTS", chunk, raising=False)
    K = 100
    for sigma in (0.4, 1.5, 6.0, 30.0):
        for n in (1, 5, 20, 60):
            g = torch.Generator().manual_seed(n)
            p = torch.rand(300, generator=g) * (K - 1)
            gy = torch.randn(300, n, generator=g) + 1e3
            q = p.clone().requires_grad_(True)
            got = torch.autograd.grad(gaussian_delay_kernel(q, sigma, K, n_taps=n), q, gy)[0].to(D64)
            q64 = p.to(D64).requires_grad_(True)
            ref = torch.autograd.grad(gaussian_delay_kernel(q64, sigma, K)[:, :n], q64, gy.to(D64))[0]
            err = (got - ref).abs().max().item() / (ref.abs().max().item() * EPS32)
            assert err < 32, f"sigma {sigma}, n_taps {n}: {err:.1f} float32 units"  # (measured: 12 at most)


def test_n_taps_is_checked():
    p = torch.zeros(2)
    with pytest.raises(ValueError, match=r"n_taps must be in \[1, max_delay=4\], got 5"):
        gaussian_delay_kernel(p, 1.0, 4, n_taps=5)
    with pytest.raises(TypeError, match="n_taps must be an int"):
        gaussian_delay_kernel(p, 1.0, 4, n_taps=2.0)


# ----------------------------------------------------------------------------- 2. the rounded layer compiled


class _Graphs:
    """A torch.compile backend keeping every graph it is given (run as aot_eager would not: plainly)."""

    def __init__(self):
        self.graphs = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return gm.forward


def _products(gm: torch.fx.GraphModule) -> tuple[int, int]:
    """``(matrix products, convolutions)`` in ``gm``."""
    targets = [n.target for n in gm.graph.nodes if n.op == "call_function"]
    return (sum(t in (operator.matmul, torch.matmul, torch.mm) for t in targets),
            sum(t in (torch.conv1d, torch.nn.functional.conv1d) for t in targets))


def _cond_branches(gm: torch.fx.GraphModule) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """:func:`_products` of the true and the false branch of each torch.cond in ``gm``."""
    found = []
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target is torch.ops.higher_order.cond:
            true_fn, false_fn = (getattr(gm, a.target) for a in node.args[1:3])
            found.append((_products(true_fn), _products(false_fn)))
    return found


EVERY_TAP = (0, 1)  # the check's fallback: every tap below T, one conv1d on the CPU (else one product per tap)


def _rounded_layer(values, seed=0) -> sl.DelayedLinear:
    layer = sl.DelayedLinear(6, 5, max_delay=12, seed=seed, backend="torch")
    with torch.no_grad():
        pick = torch.randint(0, len(values), (5, 6), generator=torch.Generator().manual_seed(seed))
        layer.positions.copy_(torch.tensor(values, dtype=torch.float32)[pick])
    return layer.round_delays()


@pytest.mark.parametrize("fullgraph", [False, True])
def test_compiled_rounded_layer_computes_only_the_delays_that_occur(fullgraph):
    """Two of 12 delay values: the compiled graph's products are those two (a torch.cond checked on the delays of
    each call, every tap below T only where they changed unseen); exact after an in-place change (no recompile:
    the check takes every tap) and after a load (recompiled for the loaded values); torch.export keeps every tap."""
    torch._dynamo.reset()
    layer = _rounded_layer([2.0, 7.0])
    x = torch.rand(10, 3, 6, generator=torch.Generator().manual_seed(1))
    backend = _Graphs()
    compiled = torch.compile(layer, backend=backend, fullgraph=fullgraph)
    torch.testing.assert_close(compiled(x), copy.deepcopy(layer)(x), rtol=0, atol=0)
    assert len(backend.graphs) == 1 and _cond_branches(backend.graphs[0]) == [((2, 0), EVERY_TAP)]  # (10 before)
    with torch.no_grad():
        layer.positions[0, 0] = 4.0  # unseen by the layer
        layer.positions[1, 1] = 11.0  # past the sequence
    torch.testing.assert_close(compiled(x), copy.deepcopy(layer)(x), rtol=0, atol=1e-6)
    assert len(backend.graphs) == 1
    state = _rounded_layer([1.0, 5.0, 9.0], seed=3).state_dict()
    layer.load_state_dict(state)
    torch.testing.assert_close(compiled(x), copy.deepcopy(layer)(x), rtol=0, atol=0)
    assert len(backend.graphs) == 2 and _cond_branches(backend.graphs[1]) == [((3, 0), EVERY_TAP)]
    exported = torch.export.export(copy.deepcopy(layer), (x,)).module()
    assert "cond" not in exported.code
    other = {k: v for k, v in _rounded_layer([0.0, 3.0], seed=4).state_dict().items() if k != "_extra_state"}
    exported.load_state_dict(other)  # (other delays than traced)
    torch.testing.assert_close(exported(x), _rounded_layer([0.0, 3.0], seed=4)(x), rtol=0, atol=1e-6)
    torch._dynamo.reset()


@pytest.mark.parametrize("change", ["round_delays", "to", "assign"])
def test_compiled_rounded_layer_follows_delays_changed_through_the_layer(change):
    """The layer keeps its delay values when they change through it (round_delays, .to(), assigning the buffer:
    forgotten, then read by the next eager forward); the compiled layer gives eager's outputs, with the gradients,
    and its graph's products are the current values."""
    torch._dynamo.reset()
    layer = _rounded_layer([2.0, 7.0])
    x = torch.rand(10, 3, 6, generator=torch.Generator().manual_seed(1))
    backend = _Graphs()
    compiled = torch.compile(layer, backend=backend)
    compiled(x)
    other = _rounded_layer([1.0, 5.0, 9.0], seed=3)
    if change == "round_delays":
        layer._set_positions_learnable(True)
        with torch.no_grad():
            layer.positions.copy_(other.positions + 0.3)
        layer.round_delays()
    elif change == "to":
        with torch.no_grad():
            layer.positions.copy_(other.positions)
        layer.to(torch.float64)
        x = x.double()
    else:
        layer.positions = other.positions.clone()
        forgotten = getattr(layer, "_occurring", None) is None
        layer(x)  # (eager: reads them)
    xc, xe = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    compiled(xc).square().sum().backward()
    copy.deepcopy(layer)(xe).square().sum().backward()
    torch.testing.assert_close(xc.grad, xe.grad, rtol=1e-6, atol=1e-6)
    assert _cond_branches(backend.graphs[-1]) == [((3, 0), EVERY_TAP)]
    assert layer._occurring == (1, 5, 9) and (change != "assign" or forgotten)
    torch._dynamo.reset()


def test_compiled_branches_agree_where_one_is_a_conv1d():
    """4096 rows: every tap (the check's fallback) runs as one conv1d, the two delays used as two products; the
    branches' outputs must have one layout (torch.cond refused a permuted conv1d output)."""
    torch._dynamo.reset()
    layer = _rounded_layer([2.0, 7.0])
    x = torch.rand(64, 64, 6, generator=torch.Generator().manual_seed(1))
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x), rtol=0, atol=0)
    with torch.no_grad():
        layer.positions[0, 0] = 4.0
    torch.testing.assert_close(compiled(x), copy.deepcopy(layer)(x), rtol=1e-6, atol=1e-6)
    torch._dynamo.reset()


# ----------------------------------------------------------------------------- 3. the memory estimate

_STEP_CHILD = r'''
import json, sys
import torch
torch.set_num_threads(1)
import snnlab as sl
T, B, K, sizes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), [int(v) for v in sys.argv[4].split(",")]
layers = torch.nn.Sequential(*[sl.DelayedLinear(a, b, max_delay=K, seed=0, backend="torch")
                               for a, b in zip(sizes[:-1], sizes[1:])])
x = torch.rand(T, B, sizes[0]).requires_grad_(True)
warm = sl.DelayedLinear(3, 2, max_delay=K, seed=0)  # (the code paths of both methods loaded)
for n in (1, K + 3):
    warm(torch.rand(n, 2, 3)).sum().backward()
print(json.dumps({"bytes": peak_from_here(lambda: layers(x).sum().backward())}))
'''


_CONFIGS = (  # (ExperimentConfig settings, (inputs, classes))
    (dict(hidden=[256], max_delay=25, num_steps=100, batch_size=256), (140, 20)),  # SHD: the FFT's spectrum
    (dict(hidden=[1024], max_delay=25, num_steps=100, batch_size=8), (1024, 10)),  # a large layer's taps
    (dict(hidden=[256], max_delay=50, num_steps=200, batch_size=128), (256, 10)),  # the FFT, T=200
)


@needs_proc
def test_memory_estimate_of_delay_layers_follows_the_forward():
    """The delay layers' term of estimate_memory_bytes within 0.25x..4x of what their forward and backward add to the
    peak (maxrss, a fresh process; measured 1.6x, 1.1x, 1.7x). It was 3 float32 copies of [out, in, max_delay]:
    12 MiB for the SHD layers' 340 MiB (0.03x), 39 MiB for 537 MiB at T=200 (0.07x)."""
    from snnlab.training import ExperimentConfig, estimate_memory_bytes
    from snnlab.training.config import frames_per_sample

    for settings, (n_in, n_out) in _CONFIGS:
        config = ExperimentConfig(delays=True, **settings)
        est = estimate_memory_bytes(config, n_in, n_out)
        delay_bytes = est["parameter_bytes"] - 16 * est["parameters"]  # (parameters, gradients, Adam: 4 floats each)
        sizes = [n_in, *config.hidden, n_out]
        measured = _run_child(_STEP_CHILD, frames_per_sample(config)[0], config.batch_size, config.max_delay,
                              ",".join(map(str, sizes)))["bytes"]
        assert 0.25 <= delay_bytes / measured <= 4.0, (settings, delay_bytes / 2**20, measured / 2**20)


def test_memory_estimate_uses_the_layers_model():
    """The delay term is the layer's own memory model (the method "auto" chooses, and its extra memory), per layer."""
    from snnlab.training import ExperimentConfig, estimate_memory_bytes

    config = ExperimentConfig(delays=True, hidden=[64, 32], max_delay=10, num_steps=40, batch_size=16)
    est = estimate_memory_bytes(config, 50, 5)
    want = 4 * sum(D.training_step_floats(40, 10, 16, a, b) for a, b in ((50, 64), (64, 32), (32, 5)))
    assert est["parameter_bytes"] - 16 * est["parameters"] == int(want)
    fft = D.training_step_floats(100, 25, 256, 140, 256)
    assert D._method_for_sizes(100, 25, 256, 140, 256, kernel_size=140 * 256 * 25) == "fft"
    assert fft == 5 * 140 * 256 * 25 + 100 * 256 * (140 + 256) + D._method_costs(100, 25, 256, 140, 256, False)["fft"][1]


# ----------------------------------------------------------------------------- 4. half precision


def test_half_precision_chooses_as_float32(monkeypatch):
    """A half-precision input is computed in float32, so it is costed so: the same method as float32 (it kept the
    GEMM count: "fft" where float32 takes "taps" at batch 64), and a layer and its bfloat16 copy choose alike."""
    seen = []
    real = D._choose_method
    monkeypatch.setattr(D, "_choose_method", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    for T, B, IN, OUT, K in [(100, 64, 140, 256, 25), (100, 256, 140, 256, 25), (3000, 1, 140, 256, 25),
                             (100, 1, 2048, 2048, 25), (40, 128, 64, 64, 10), (20, 4, 30, 30, 25)]:
        kernel = OUT * IN * min(T, K)
        want = real(T, K, torch.zeros(T, B, IN), kernel, OUT)
        for dtype in (torch.bfloat16, torch.float16):
            assert real(T, K, torch.zeros(T, B, IN, dtype=dtype), kernel, OUT) == want, (T, B, IN, OUT, K, dtype)
        if IN * OUT <= 256 * 140:  # (the layer's choice, for the small ones)
            seen.clear()
            layer = sl.DelayedLinear(IN, OUT, max_delay=K, seed=0, backend="torch")
            x = torch.rand(T, B, IN)
            with torch.no_grad():
                layer(x)
                copy.deepcopy(layer).to(torch.bfloat16)(x.bfloat16())
            assert seen == [want, want], (T, B, IN, OUT, K)


def test_triton_taps_tensor_builds_only_the_taps_it_uses(monkeypatch):
    """The "taps" Triton algorithm's tap tensor (``dense_taps``) asks the Gaussian for its first ``n_taps`` taps only
    (it built all ``max_delay`` and sliced them), with the same values; no tap for an empty sequence."""
    from snnlab.kernels import delay_math, delay_taps_triton

    asked = []
    real = delay_math.gaussian_delay_kernel

    def spy(*args, **kwargs):
        asked.append(kwargs.get("n_taps"))
        return real(*args, **kwargs)

    monkeypatch.setattr(delay_taps_triton, "gaussian_delay_kernel", spy)
    w, p = torch.randn(3, 5), torch.rand(3, 5) * 39
    head = delay_taps_triton.dense_taps(w, p, 2.0, 40, False, 4)
    full = real(p.t(), 2.0, 40, tap_dim=0) * w.t()
    assert asked == [4] and head.shape == (4, 5, 3)
    torch.testing.assert_close(head, full[:4], rtol=1e-6, atol=1e-7)
    assert delay_taps_triton.dense_taps(w, p, 2.0, 40, False, 0).shape == (0, 5, 3)
