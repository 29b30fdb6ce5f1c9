"""The fused Triton LIF against the PyTorch reference: on CPU through Triton's interpreter (CI), or on
a CUDA GPU with ``SNNLAB_TEST_DEVICE=cuda`` (see tests/triton_device.py).

triton_device must be imported before triton: it sets TRITON_INTERPRET=1 for the CPU run, and
kernels are bound to the interpreter when they are decorated.
"""
from triton_device import DEVICE, ON_GPU, skip_unless_ready  # noqa: I001  (before triton)

import importlib  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

tl = pytest.importorskip("triton.language")
needs_kernels = skip_unless_ready(tl, "snnlab.kernels.lif_triton")

from snnlab.kernels import dispatch  # noqa: E402
from snnlab.kernels.counter_rng import seed_key  # noqa: E402
from snnlab.kernels.dispatch import lif, resolve_backend  # noqa: E402
from snnlab.kernels.lif_torch import lif_torch  # noqa: E402
from snnlab.kernels.lif_triton import lif_triton  # noqa: E402

from lif_cases import CASES, MASK_CASES, assert_sum_loss_grads_match, mask_kwargs  # noqa: E402
from lif_cases import assert_lif_matches as _assert_matches  # noqa: E402
from lif_cases import make_inputs  # noqa: E402
from lif_cases import run_lif as _run  # noqa: E402


def _inputs(*args, **kwargs):
    """The shared LIF test inputs, on the device these tests run on."""
    return make_inputs(*args, device=DEVICE, **kwargs)


@pytest.mark.parametrize("reset,detach,max_spikes,surrogate,param,per_neuron,shape", CASES)
@needs_kernels
def test_matches_torch_reference(reset, detach, max_spikes, surrogate, param, per_neuron, shape):
    x, beta, thr, grad = _inputs(shape, per_neuron, seed=len(reset) * 7 + int(detach) * 3 + (max_spikes or 0))
    kw = dict(reset=reset, detach_reset=detach, max_spikes=max_spikes, surrogate=surrogate,
              surrogate_param=param)
    ref = _run(lif_torch, x, beta, thr, grad, **kw)
    out = _run(lif_triton, x, beta, thr, grad, **kw)
    assert out[0].device.type == DEVICE.type
    assert ref[0].sum() > 0  # the test exercises spikes and resets
    _assert_matches(ref, out)
    if not ON_GPU:  # the kernel's membrane is one fused multiply-add per step, like torch.addcmul on the CPU
        torch.testing.assert_close(out[1], ref[1], atol=0, rtol=0)


@pytest.mark.parametrize("max_spikes,dtype", [(None, torch.float32), (2, torch.float32), (1, torch.bfloat16)])
@needs_kernels
def test_sum_loss_gradient_of_one_value(max_spikes, dtype):
    # sum() hands the backward a gradient expanded from one number (stride 0): passed as that number
    x, beta, thr, _ = _inputs((2, 37), per_neuron=True, seed=21, dtype=dtype)
    grads = []
    for fn in (lif_torch, lif_triton):
        xi, b, t = x.clone().requires_grad_(), beta.clone().requires_grad_(), thr.clone().requires_grad_()
        s, _ = fn(xi, b, t, reset="zero", max_spikes=max_spikes)
        (s.sum() * 0.5).backward()
        grads.append((xi.grad.float(), b.grad, t.grad))
    tol = dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=5e-2, rtol=5e-2)
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, **{k: v * 10 for k, v in tol.items()})
    assert grads[1][0].abs().sum() > 0


@needs_kernels
def test_param_shapes_and_no_param_grad():
    x, beta, thr, grad = _inputs((3, 37), per_neuron=True, seed=7)
    # [1, N]-shaped (broadcast) parameters reduce back to their own shape
    ref = _run(lif_torch, x, beta.view(1, -1), thr.view(1, -1), grad)
    out = _run(lif_triton, x, beta.view(1, -1), thr.view(1, -1), grad)
    _assert_matches(ref, out)
    assert out[3].shape == (1, 37)
    # parameters that do not require grad get none (kernel skips their accumulation)
    ref = _run(lif_torch, x, beta, thr, grad, grad_params=False, max_spikes=1)
    out = _run(lif_triton, x, beta, thr, grad, grad_params=False, max_spikes=1)
    _assert_matches(ref, out)


@needs_kernels
def test_multi_block_and_tiny_shapes():
    # M = 1100 spans two programs of BLOCK = 1024; T = 1, M = 1 exercises the scalar edge case
    for shape, t in (((1100,), 3), ((1,), 1)):
        x, beta, thr, grad = _inputs(shape, per_neuron=True, seed=3)
        x, grad = x[:t], grad[:t]
        _assert_matches(_run(lif_torch, x, beta, thr, grad, reset="zero"),
                        _run(lif_triton, x, beta, thr, grad, reset="zero"))


@pytest.mark.parametrize("noise,reset,max_spikes", [("gaussian", "subtract", None), ("logistic", "zero", 2)])
@needs_kernels
def test_noisy_spikes_identical_to_torch(noise, reset, max_spikes):
    x, beta, thr, grad = _inputs((2, 65), per_neuron=True, seed=11)
    kw = dict(noise=noise, noise_scale=0.4, reset=reset, max_spikes=max_spikes)
    seeds = [0, 1, 12345]
    assert any(seed_key(s) >= 2 ** 31 for s in seeds) and any(seed_key(s) < 2 ** 31 for s in seeds)
    spikes = {}
    for seed in seeds:
        ref = _run(lif_torch, x, beta, thr, grad, seed=seed, **kw)
        out = _run(lif_triton, x, beta, thr, grad, seed=seed, **kw)
        _assert_matches(ref, out)
        spikes[seed] = out[0]
    again = lif_triton(x, beta, thr, seed=seeds[0], **kw)[0]
    assert torch.equal(again, spikes[seeds[0]])
    assert not torch.equal(spikes[0], spikes[1])
    assert not torch.equal(spikes[0], spikes[12345])
    # the noise makes spikes differ from the deterministic threshold crossing
    det = lif_triton(x, beta, thr, reset=reset, max_spikes=max_spikes)[0]
    assert not torch.equal(det, spikes[0])


@pytest.mark.parametrize("reset,max_spikes,noise,shape", MASK_CASES)
@needs_kernels
def test_fused_spike_masking_matches_torch(reset, max_spikes, noise, shape):
    x, beta, thr, grad = _inputs(shape, per_neuron=True, seed=23)
    kw = mask_kwargs(reset, max_spikes, noise)
    ref = _run(lif_torch, x, beta, thr, grad, **kw)
    out = _run(lif_triton, x, beta, thr, grad, **kw)
    unmasked = lif_torch(x, beta, thr, **dict(kw, mask_p=0.0))[0]
    assert 0 < ref[0].sum() < unmasked.sum()
    _assert_matches(ref, out)
    assert_sum_loss_grads_match(lif_torch, lif_triton, x, beta, thr, **kw)  # masked per element in the kernel


@needs_kernels
def test_fused_spike_masking_over_many_programs(monkeypatch):
    # 32 neurons per program over M = 130 (five programs, the last partial), 37 steps
    monkeypatch.setattr(sys.modules["snnlab.kernels.lif_triton"], "_MAX_BLOCK", 32)
    x, beta, thr, grad = _inputs((2, 65), per_neuron=True, seed=31, steps=37)
    for noise in (None, "logistic"):
        kw = mask_kwargs("zero", 3, noise, mask_p=0.25, mask_seed=11)
        _assert_matches(_run(lif_torch, x, beta, thr, grad, **kw), _run(lif_triton, x, beta, thr, grad, **kw))


@needs_kernels
def test_fused_spike_masking_cutoff_on_a_drawn_value():
    # p exactly on a drawn uniform keeps that element (uniform >= p in float32), as the PyTorch path
    from snnlab.kernels.counter_rng import mask_key, uniform_from_counter

    u = uniform_from_counter(torch.arange(4 * 50), mask_key(3))
    p = float(u[int(torch.argmin((u - 0.3).abs()))])
    x = torch.full((4, 1, 50), 2.0, device=DEVICE)  # every neuron fires at every step
    beta, thr = torch.tensor(0.0, device=DEVICE), torch.tensor(1.0, device=DEVICE)
    out = lif_triton(x, beta, thr, mask_p=p, mask_seed=3)[0]
    assert torch.equal(out.reshape(-1).cpu(), (u >= torch.tensor(p)).float())


@pytest.mark.parametrize("noise", [None, "gaussian"])
@needs_kernels
def test_fused_spike_masking_bfloat16(noise):
    # half precision: the neuron's own spikes are written apart for the backward (not recomputed)
    x, beta, thr, grad = _inputs((2, 65), per_neuron=True, seed=29, dtype=torch.bfloat16)
    kw = mask_kwargs("subtract", 2, noise)
    ref = _run(lif_torch, x.float(), beta, thr, grad, **kw)
    out = _run(lif_triton, x, beta, thr, grad.to(torch.bfloat16), **kw)
    assert torch.equal(out[0].float(), ref[0]) and ref[0].sum() > 0
    torch.testing.assert_close(out[2].float(), ref[2], atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(out[4], ref[4], atol=0.25, rtol=5e-2)


@needs_kernels
def test_block_and_prefetch_settings(monkeypatch):
    mod = sys.modules["snnlab.kernels.lif_triton"]
    monkeypatch.setenv("SNNLAB_TRITON_LIF_BLOCK", "256")
    assert mod._block_setting() == 256
    monkeypatch.delenv("SNNLAB_TRITON_LIF_BLOCK")
    assert mod._block_setting() is None
    for bad in ("300", "8", "8192", "big"):
        monkeypatch.setenv("SNNLAB_TRITON_LIF_BLOCK", bad)
        with pytest.raises(ValueError, match="SNNLAB_TRITON_LIF_BLOCK must be a power of two"):
            mod._block_setting()
    monkeypatch.setenv("SNNLAB_TRITON_LIF_PREFETCH", "2")
    assert mod._prefetch_setting() == 2
    monkeypatch.delenv("SNNLAB_TRITON_LIF_PREFETCH")
    assert mod._prefetch_setting() == 4
    for bad in ("0", "5", "-1", "two"):
        monkeypatch.setenv("SNNLAB_TRITON_LIF_PREFETCH", bad)
        with pytest.raises(ValueError, match="SNNLAB_TRITON_LIF_PREFETCH must be an integer from 1 to 4"):
            mod._prefetch_setting()
    # small blocks: many programs over M = 130, same results
    monkeypatch.setattr(mod, "_MAX_BLOCK", 32)
    x, beta, thr, grad = _inputs((2, 65), per_neuron=True, seed=17)
    _assert_matches(_run(lif_torch, x, beta, thr, grad, max_spikes=2), _run(lif_triton, x, beta, thr, grad, max_spikes=2))


@needs_kernels
def test_launch_config_fills_the_multiprocessors(monkeypatch):
    mod = sys.modules["snnlab.kernels.lif_triton"]
    cfg = mod.launch_config
    # the benchmark's layers on a 132-SM H200: 1024-neuron blocks where they give 132 programs or more
    assert cfg(16 * 16384, 132) == (1024, 8) and cfg(64 * 65536, 132) == (1024, 8)
    assert cfg(16 * 8192, 132) == (512, 4) and cfg(16 * 4096, 132) == (256, 2)
    # never below 128 neurons (4 per thread of one warp); small layers are one small block
    assert cfg(2048, 132) == (128, 1) and cfg(37, 132) == (64, 1) and cfg(1, 132) == (16, 1)
    # no GPU (the interpreter): the largest block
    assert cfg(16 * 4096, None) == (1024, 8) and cfg(1100, None) == (1024, 8)
    for m, sms in ((16 * 4096, 132), (5000, 108), (3 * 2 ** 20 + 7, 132)):
        block, warps = cfg(m, sms)
        assert warps == max(1, min(8, block // 128))  # 4 neurons a thread, 1 to 8 warps
        assert block == 128 or -(-m // block) >= sms  # at least one program per multiprocessor
        assert block == 1024 or -(-m // (2 * block)) < sms  # the largest block that does so
    # a block set by SNNLAB_TRITON_LIF_BLOCK is taken as it is
    monkeypatch.setattr(mod, "_FIXED_BLOCK", 512)
    monkeypatch.setattr(mod, "_MAX_BLOCK", 512)
    assert cfg(16 * 4096, 132) == (512, 4) and cfg(100, 132) == (128, 1)


@pytest.mark.parametrize("prefetch", [1, 2, 3, 4])
@needs_kernels
def test_every_prefetch_depth_matches_torch(monkeypatch, prefetch):
    # steps loaded 1 to 4 ahead in the forward and behind in the backward, over sequences shorter and
    # longer than the queue (T = 1 .. 9); recomputed spikes (float32) and read ones (noise), beta's
    # gradient (which reads the previous step), max_spikes, masking
    mod = sys.modules["snnlab.kernels.lif_triton"]
    monkeypatch.setattr(mod, "_PREFETCH", prefetch)
    monkeypatch.setattr(mod, "_MAX_BLOCK", 32)  # three programs over M = 74
    for steps in (1, 2, prefetch, prefetch + 1, 9):
        x, beta, thr, grad = _inputs((2, 37), per_neuron=True, seed=40 + steps, steps=steps)
        for kw in (dict(max_spikes=2), dict(reset="zero", noise="logistic", noise_scale=0.4, seed=3),
                   dict(mask_p=0.3, mask_seed=5)):
            ref = _run(lif_torch, x, beta, thr, grad, **kw)
            _assert_matches(ref, _run(lif_triton, x, beta, thr, grad, **kw))
            assert_sum_loss_grads_match(lif_torch, lif_triton, x, beta, thr, **kw)


@needs_kernels
def test_noise_without_sampling_uses_density_surrogate():
    x, beta, thr, grad = _inputs((2, 37), per_neuron=False, seed=5)
    kw = dict(noise="gaussian", noise_scale=0.5, sample=False)
    ref = _run(lif_torch, x, beta, thr, grad, **kw)
    out = _run(lif_triton, x, beta, thr, grad, **kw)
    _assert_matches(ref, out)
    assert torch.equal(out[0], lif_torch(x, beta, thr)[0])


@needs_kernels
def test_bfloat16_input():
    x, beta, thr, grad = _inputs((2, 65), per_neuron=True, seed=13, dtype=torch.bfloat16)
    grad = grad.to(torch.bfloat16)
    kw = dict(reset="subtract", max_spikes=2, surrogate="atan")
    ref = _run(lif_torch, x.float(), beta, thr, grad.float(), **kw)
    out = _run(lif_triton, x, beta, thr, grad, **kw)
    assert out[0].dtype == out[1].dtype == out[2].dtype == torch.bfloat16
    assert out[3].dtype == torch.float32
    assert torch.equal(out[0].float(), ref[0])
    torch.testing.assert_close(out[1].float(), ref[1], atol=2e-2, rtol=1e-2)
    torch.testing.assert_close(out[2].float(), ref[2], atol=5e-2, rtol=5e-2)
    torch.testing.assert_close(out[3], ref[3], atol=0.25, rtol=5e-2)
    torch.testing.assert_close(out[4], ref[4], atol=0.25, rtol=5e-2)


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_input_gradients_match_the_float32_path_with_a_sharp_surrogate(dtype):
    """The backward reads the membrane in float32 for half input: stored in bfloat16, it moved the gradients of a
    sharp surrogate by up to 20 % of their scale (found by a differential fuzz)."""
    import snnlab as sl

    g = torch.Generator().manual_seed(0)
    x = (torch.randn(12, 3, 64, generator=g) * 0.8 + 0.5).to(DEVICE, dtype)
    sur = sl.surrogates.get("fast_sigmoid", alpha=16.0)
    grads = {}
    for backend, inp in (("torch", x.float()), ("triton", x)):
        inp = inp.clone().requires_grad_(True)
        spikes = sl.LIF(tau_mem=20.0, surrogate=sur, backend=backend)(inp)
        spikes.float().sum().backward()
        assert inp.grad.dtype == inp.dtype
        grads[backend] = inp.grad.float()
    scale = grads["torch"].abs().max()
    assert scale > 0
    assert (grads["triton"] - grads["torch"]).abs().max() / scale < 1e-2  # half rounding of the gradient only
    beta, thr = torch.tensor(0.95, device=DEVICE), torch.tensor(1.0, device=DEVICE)
    assert lif_triton(x, beta, thr)[1].dtype == dtype
    assert lif_triton(x, beta, thr, keep_membrane=False)[1].dtype == torch.float32  # the saved one, no copy


@needs_kernels
def test_module_keeps_float32_parameters_for_bfloat16_input():
    # the fused kernel computes in float32: the layer must not round beta = 0.9 to bfloat16 (0.8984)
    import snnlab as sl

    x = (torch.rand(40, 4, 64, generator=torch.Generator().manual_seed(3)) * 0.5).to(DEVICE, torch.bfloat16)
    layer = sl.LIF(beta=0.9, threshold=1.0, backend="triton", learn_threshold=True).to(DEVICE)
    out = layer(x)
    want = lif_triton(x, torch.tensor(0.9, device=DEVICE), torch.tensor(1.0, device=DEVICE))[0]
    rounded = lif_triton(x, torch.tensor(0.9, device=DEVICE).bfloat16(), torch.tensor(1.0, device=DEVICE))[0]
    assert out.dtype == torch.bfloat16 and torch.equal(out, want)
    assert not torch.equal(want, rounded)  # the rounding would show
    out.float().sum().backward()
    assert layer.threshold.grad.dtype == torch.float32 and layer.threshold.grad.abs().sum() > 0


@needs_kernels
def test_empty_sequence_forward_and_backward():
    x = torch.zeros(0, 2, 3, device=DEVICE, requires_grad=True)
    beta = torch.tensor(0.9, device=DEVICE, requires_grad=True)
    thr = torch.ones(3, device=DEVICE, requires_grad=True)
    s, _ = lif_triton(x, beta, thr, max_spikes=1, mask_p=0.3)
    (s.sum() + 0 * beta).backward()
    assert s.shape == (0, 2, 3) and x.grad.shape == (0, 2, 3)
    assert beta.grad.item() == 0 and not thr.grad.any()


@needs_kernels
def test_invalid_options():
    x, beta, thr, _ = _inputs((2, 5), per_neuron=False)
    with pytest.raises(ValueError):
        lif_triton(x, beta, thr, reset="bogus")
    with pytest.raises(ValueError):
        lif_triton(x, beta, thr, surrogate="bogus")
    with pytest.raises(TypeError):
        lif_triton(x.double(), beta, thr)


@needs_kernels
def test_more_neurons_than_int32_indices_raises(monkeypatch):
    mod = sys.modules["snnlab.kernels.lif_triton"]
    monkeypatch.setattr(mod, "_MAX_NEURONS", 9)  # the real limit, 2**31 - 1, needs an 8 GB step
    x, beta, thr, _ = _inputs((2, 5), per_neuron=False)
    assert lif_triton(x[:, :1], beta, thr)[0].shape == (x.shape[0], 1, 5)  # 5 neurons a step: within the limit
    with pytest.raises(ValueError, match="10 neurons per time step.*torch backend"):
        lif_triton(x, beta, thr)


def test_cpu_tensor_without_interpreter_raises(monkeypatch):
    mod = sys.modules["snnlab.kernels.lif_triton"]
    monkeypatch.setattr(mod, "_INTERPRETED", False)
    x, beta, thr, _ = make_inputs((2, 5), per_neuron=False, device="cpu")
    with pytest.raises(RuntimeError, match="CUDA"):
        mod.lif_triton(x, beta, thr)


@pytest.mark.parametrize("version,numpy_refuses,refused", [
    ("3.6.0", True, True), ("3.6.0", False, False), ("3.7.0", True, False), ("3.10.1", True, False)])
def test_interpreter_problem_names_old_triton_with_strict_numpy(monkeypatch, version, numpy_refuses, refused):
    import numpy

    from snnlab.kernels import triton_import

    monkeypatch.setattr(triton_import.triton, "__version__", version)
    if numpy_refuses:  # what NumPy 2.x says to int() of a one-element 1-D array
        def strict_int(arr):
            raise TypeError("only 0-dimensional arrays can be converted to Python scalars")
        monkeypatch.setattr(numpy, "zeros", lambda shape: type("Arr", (), {"__int__": strict_int})())
    else:
        monkeypatch.setattr(numpy, "zeros", lambda shape: 0)
    problem = triton_import.interpreter_problem.__wrapped__()
    assert (problem is not None) == refused
    if refused:
        assert f"Triton {version}" in problem and "triton>=3.7" in problem


def test_kernels_raise_the_interpreter_problem_before_launching(monkeypatch):
    mod = sys.modules["snnlab.kernels.lif_triton"]
    monkeypatch.setattr(mod, "_INTERPRETED", True)
    monkeypatch.setattr(mod, "interpreter_problem", lambda: "Triton 3.6.0's CPU interpreter cannot run")
    x, beta, thr, _ = make_inputs((2, 5), per_neuron=False, device="cpu")
    with pytest.raises(RuntimeError, match="lif_triton: Triton 3.6.0's CPU interpreter"):
        mod.lif_triton(x, beta, thr)


# ---------------------------------------------------------------- dispatch

AUTO_ON_CPU = "cpu" if dispatch.cpu_kernel_usable() else "torch"  # the compiled loop where it builds


def test_resolve_backend_choices(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu) == AUTO_ON_CPU
    assert resolve_backend("torch", cpu) == "torch"
    assert resolve_backend("torch", "cuda") == "torch"
    assert resolve_backend("auto", torch.device("cuda")) == "triton"  # a decision only, nothing launched
    if not ON_GPU:  # Triton reads the flag at run time too: never set it where kernels run compiled
        monkeypatch.setenv("TRITON_INTERPRET", "1")
        assert resolve_backend("triton", cpu) == "triton"
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("cuda", cpu)


def test_resolve_backend_triton_on_cpu_without_interpreter_raises(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        resolve_backend("triton", torch.device("cpu"))
    assert resolve_backend("auto", torch.device("cpu")) == AUTO_ON_CPU


def test_resolve_backend_without_triton_installed(monkeypatch):
    monkeypatch.setattr(dispatch, "triton_available", lambda: False)
    with pytest.raises(RuntimeError, match="not installed"):
        resolve_backend("triton", torch.device("cuda"))
    assert resolve_backend("auto", torch.device("cuda")) == "torch"


@needs_kernels
def test_lif_dispatch_runs_both_backends(monkeypatch):
    if not ON_GPU:
        monkeypatch.setenv("TRITON_INTERPRET", "1")
    x, beta, thr, _ = _inputs((2, 37), per_neuron=True, seed=2)
    s_t, h_t = lif(x, beta, thr, backend="triton", reset="zero", max_spikes=1)
    s_r, h_r = lif(x, beta, thr, backend="torch", reset="zero", max_spikes=1)
    assert torch.equal(s_t, s_r)
    torch.testing.assert_close(h_t, h_r)
    with pytest.raises(ValueError):
        lif(x, beta, thr, backend="nope")


def test_import_without_triton_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)
    monkeypatch.delitem(sys.modules, "snnlab.kernels.lif_triton")
    monkeypatch.delitem(sys.modules, "snnlab.kernels.triton_import", raising=False)  # where the import lives
    with pytest.raises(ImportError, match="triton"):
        importlib.import_module("snnlab.kernels.lif_triton")


def test_auto_sends_float64_on_cuda_to_pytorch(monkeypatch):
    """nn-conventions probe: auto chose Triton for float64 CUDA tensors, whose kernels refuse float64 (a TypeError
    from a default LIF or DelayedLinear, e.g. under gradcheck on a GPU); auto means the fastest path that runs."""
    import types

    import snnlab as sl
    from snnlab.core import delays as delays_mod

    monkeypatch.setattr(dispatch, "triton_available", lambda: True)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        assert dispatch.resolve_backend("auto", "cuda", dtype) == "triton"
    assert dispatch.resolve_backend("auto", "cuda", torch.float64) == "torch"
    monkeypatch.setattr(delays_mod, "_triton_impl", lambda: object())
    layer = sl.DelayedLinear(3, 2, max_delay=4)
    on_cuda = types.SimpleNamespace(is_cuda=True, dtype=torch.float32)
    assert layer._use_triton(on_cuda)
    assert not layer._use_triton(types.SimpleNamespace(is_cuda=True, dtype=torch.float64))
