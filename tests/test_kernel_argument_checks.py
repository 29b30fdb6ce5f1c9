"""The LIF kernels' argument checks and caps, the same on every backend (PyTorch, compiled CPU, Triton), and the
float32 range of the neuron layers' parameters.

triton_device must be imported before triton: it sets TRITON_INTERPRET=1 for the CPU run.
"""
from triton_device import DEVICE, triton_kernels_ready  # noqa: I001  (before triton)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import snnlab as sl  # noqa: E402
from snnlab.kernels.dispatch import lif  # noqa: E402
from snnlab.kernels.lif_cpu import cpu_kernel_available, cpu_kernel_error, lif_cpu  # noqa: E402
from snnlab.kernels.lif_torch import lif_torch  # noqa: E402

TRITON_READY, TRITON_REASON = triton_kernels_ready("snnlab.kernels.lif_triton")
needs_cpu = pytest.mark.skipif(not cpu_kernel_available(), reason=f"CPU kernel not built: {cpu_kernel_error()}")
needs_triton = pytest.mark.skipif(not TRITON_READY, reason=TRITON_REASON)

CPU = pytest.param("cpu", marks=needs_cpu)
TRITON = pytest.param("triton", marks=needs_triton)
FUSED = [CPU, TRITON]
ALL = ["torch", CPU, TRITON]


def _function(backend):
    if backend == "torch":
        return lif_torch
    if backend == "cpu":
        return lif_cpu
    from snnlab.kernels.lif_triton import lif_triton
    return lif_triton


def _device(backend):
    return DEVICE if backend == "triton" else torch.device("cpu")


def _run(fn, x, beta, thr, grad, **kw):
    """Spikes, membrane and the gradients of x, beta and the threshold for the loss ``sum(spikes * grad)``."""
    x, beta, thr = (t.clone().requires_grad_() for t in (x, beta, thr))
    s, h = fn(x, beta, thr, **kw)
    (s * grad).sum().backward()
    return s.detach(), h.detach(), x.grad, beta.grad, thr.grad


def _inputs(device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(7, 2, 5, generator=g) * 2.0 + 0.2  # most steps cross the threshold
    beta = torch.rand(5, generator=g) * 0.5 + 0.4
    thr = torch.rand(5, generator=g) * 0.4 + 0.6
    grad = torch.randn(7, 2, 5, generator=g)
    return tuple(t.to(device) for t in (x, beta, thr, grad))


# ---------------------------------------------------------------- max_spikes: one meaning on every backend

@pytest.mark.parametrize("backend", FUSED)
@pytest.mark.parametrize("reset,detach,mask_p", [("subtract", False, 0.0), ("zero", True, 0.0),
                                                 ("subtract", False, 0.4)])
def test_max_spikes_zero_never_fires_with_the_reference_gradients(backend, reset, detach, mask_p):
    # the documented cap (m[t] = 1 iff spikes before t < max_spikes): 0 allows no spike at all; the C loop's own
    # "no cap" is 0, so lif_cpu used to fire without limit
    x, beta, thr, grad = _inputs(_device(backend))
    kw = dict(reset=reset, detach_reset=detach, max_spikes=0, mask_p=mask_p, mask_seed=3)
    ref = _run(lif_torch, x, beta, thr, grad, **kw)
    out = _run(_function(backend), x, beta, thr, grad, **kw)
    assert _run(lif_torch, x, beta, thr, grad, reset=reset)[0].sum() > 10  # uncapped, these neurons fire
    assert out[0].sum() == 0 and ref[0].sum() == 0
    torch.testing.assert_close(out[1], ref[1])  # the membrane integrates without reset
    for got, want in zip(out[2:], ref[2:]):
        assert got is not None and got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@needs_cpu
def test_max_spikes_zero_cpu_keeps_the_last_membrane_only_when_asked():
    x = torch.full((6, 1, 3), 2.0)
    s, h = lif_cpu(x, 0.5, 1.0, max_spikes=0, keep_membrane=False)
    assert s.sum() == 0 and h.shape == (1, 1, 3)
    torch.testing.assert_close(h[0], lif_torch(x, 0.5, 1.0, max_spikes=0)[1][-1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_auto_backend_honours_max_spikes_zero_in_every_dtype(dtype):
    # auto took the C loop for float32 (no cap) and PyTorch for float64 (no spikes)
    x = torch.full((6, 1, 3), 2.0, dtype=dtype)
    assert lif(x, torch.tensor(0.5), torch.tensor(1.0), backend="auto", max_spikes=0)[0].sum() == 0


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("max_spikes", [1, 2, 10**12])
def test_positive_caps_agree_with_the_reference(backend, max_spikes):
    x, beta, thr, grad = _inputs(_device(backend), seed=1)
    ref = _run(lif_torch, x, beta, thr, grad, max_spikes=max_spikes)
    out = _run(_function(backend), x, beta, thr, grad, max_spikes=max_spikes)
    assert torch.equal(out[0], ref[0])
    assert int(ref[0].sum(0).max()) == min(max_spikes, 7)
    for got, want in zip(out[2:], ref[2:]):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("max_spikes", [-1, 1.5, 2.0, True, np.float64(2.0), "2"])
def test_bad_max_spikes_is_refused_by_every_backend(backend, max_spikes):
    # -1 ran uncapped on the CPU and silenced the neurons elsewhere; 1.5 was cut to 1 on the CPU only
    x = torch.full((6, 1, 3), 2.0, device=_device(backend))
    pattern = r"max_spikes must be None or an integer >= 0"
    with pytest.raises(ValueError, match=f"lif_{backend}: {pattern}"):
        _function(backend)(x, torch.tensor(0.5), torch.tensor(1.0), max_spikes=max_spikes)
    with pytest.raises(ValueError, match=pattern):
        lif(x, torch.tensor(0.5), torch.tensor(1.0), backend=backend, max_spikes=max_spikes)


def test_the_kernels_refuse_what_the_adaptive_kernels_refuse():
    from snnlab.kernels.adaptive_lif_cpu import adaptive_lif_cpu

    x = torch.rand(4, 2, 3)
    messages = []
    for call in (lambda: lif_torch(x, 0.5, 1.0, max_spikes=-1),
                 lambda: adaptive_lif_cpu(x, 0.5, 1.0, 0.5, 0.1, max_spikes=-1)):
        with pytest.raises(ValueError) as info:
            call()
        messages.append(str(info.value).split(": ", 1)[1])
    assert messages[0] == messages[1]


# ---------------------------------------------------------------- parameters: numbers, shapes

@pytest.mark.parametrize("backend", ALL)
def test_numbers_for_beta_and_threshold_match_tensors(backend):
    # a Python float failed inside each backend (AttributeError, or save_for_backward's TypeError)
    x, _, _, grad = _inputs(_device(backend), seed=2)
    fn = _function(backend)
    xs = x.clone().requires_grad_()
    s, h = fn(xs, 0.75, np.float32(0.9), max_spikes=3)
    (s * grad).sum().backward()
    ref = _run(lif_torch, x, torch.tensor(0.75), torch.tensor(0.9), grad, max_spikes=3)
    assert torch.equal(s, ref[0]) and ref[0].sum() > 0
    torch.testing.assert_close(h, ref[1])
    torch.testing.assert_close(xs.grad, ref[2], atol=1e-5, rtol=1e-4)
    assert torch.equal(lif(x, 0.75, 0.9, backend=backend)[0], fn(x, torch.tensor(0.75), torch.tensor(0.9))[0])


def test_numbers_take_the_compute_dtype_of_the_torch_path():
    x = torch.ones(5, 1, 2, dtype=torch.float64)
    _, h = lif_torch(x, 0.1, 1.5)
    assert h.dtype == torch.float64
    assert h[1, 0, 0].item() == 1.0 + 0.1  # beta in float64, not a float32-rounded 0.1


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("name", ["beta", "threshold"])
def test_parameter_shape_that_does_not_broadcast_to_a_step_is_named(backend, name):
    x = torch.rand(5, 2, 4, device=_device(backend))
    params = {"beta": torch.tensor(0.5), "threshold": torch.tensor(1.0)}
    params[name] = torch.full((3,), 0.5)
    message = rf"lif_{backend}: {name} of shape \(3,\) does not broadcast to a step of x, \(2, 4\)"
    with pytest.raises(ValueError, match=message):
        _function(backend)(x, params["beta"], params["threshold"])
    with pytest.raises(ValueError, match=message):
        lif(x, params["beta"], params["threshold"], backend=backend)


@pytest.mark.parametrize("backend", ALL)
def test_a_parameter_that_broadcasts_only_against_the_batch_is_refused(backend):
    # (2, 1) broadcasts to the step (2, 4); (3, 2, 4) would grow it (broadcasting alone would not fail)
    x = torch.rand(5, 2, 4, device=_device(backend))
    with pytest.raises(ValueError, match=r"beta of shape \(3, 2, 4\) does not broadcast"):
        _function(backend)(x, torch.full((3, 2, 4), 0.5), 1.0)
    s_ref = lif_torch(x, torch.full((2, 1), 0.5), 1.0)[0]
    assert torch.equal(_function(backend)(x, torch.full((2, 1), 0.5), 1.0)[0], s_ref)


@pytest.mark.parametrize("backend", ALL)
@pytest.mark.parametrize("bad", ["0.5", None, True, 1j])
def test_a_parameter_that_is_not_a_number_is_a_type_error(backend, bad):
    x = torch.rand(5, 2, 4, device=_device(backend))
    with pytest.raises(TypeError, match=f"lif_{backend}: beta must be a tensor or a real number"):
        _function(backend)(x, bad, 1.0)


def test_lif_dispatch_refuses_a_non_tensor_input():
    with pytest.raises(TypeError, match="lif: x must be a time-major tensor"):
        lif([[1.0]], 0.5, 1.0)


def test_lif_params_returns_tensors_untouched():
    from snnlab.kernels.lif_common import lif_params

    beta, thr = torch.tensor(0.5, requires_grad=True), torch.ones(4)
    got = lif_params("f", torch.zeros(3, 2, 4), beta, thr, None, torch.float32)
    assert got[0] is beta and got[1] is thr


# ---------------------------------------------------------------- layers: float32 range of the parameters

@pytest.mark.parametrize("make,name", [
    (lambda: sl.LIF(threshold=1e39), "LIF: threshold"),
    (lambda: sl.LIF(threshold=1e39, learn_threshold=True), "LIF: threshold"),
    (lambda: sl.ALIF(threshold=1e39), "ALIF: threshold"),
    (lambda: sl.RecurrentLIF(3, threshold=1e39), "RecurrentLIF: threshold"),
    (lambda: sl.LIF(tau_mem=1e39), "LIF: tau_mem"),
    (lambda: sl.LI(tau_mem=1e39), "LI: tau_mem"),
    (lambda: sl.ALIF(tau_mem=1e39), "ALIF: tau_mem"),
    (lambda: sl.RecurrentLIF(3, tau_mem=1e39), "RecurrentLIF: tau_mem"),
    (lambda: sl.ALIF(adaptation=1e39), "ALIF: adaptation"),
    (lambda: sl.ALIF(tau_adapt=1e39), "ALIF: tau_adapt"),
])
def test_parameters_out_of_float32_range_are_refused_by_name(make, name):
    # threshold raised torch.full's "value cannot be converted to type float without overflow"; tau_mem=1e39
    # was taken silently as beta = 1
    with pytest.raises(ValueError, match=rf"^{name}=1e\+39 does not fit in float32 \(at most 3.4e\+38\)$"):
        make()


def test_parameters_at_the_edge_of_float32_are_kept():
    big = float(torch.finfo(torch.float32).max)
    assert float(sl.LIF(threshold=big).threshold) == big
    assert float(sl.ALIF(tau_adapt=float("inf")).rho()) == 1.0  # inf stays allowed where it was


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_an_integer_input_is_refused_not_computed_with_a_rounded_leak(dtype):
    """Before: lif_torch of an int64 x made beta 0.5 an integer 0 (a membrane without memory), silently."""
    from snnlab.kernels.lif_torch import lif_torch

    x = torch.ones(4, 1, 2, dtype=dtype)
    with pytest.raises(TypeError, match=r"lif_torch: x must be a floating-point tensor, got torch\."):
        lif_torch(x, 0.5, 1.0)


def test_the_hand_written_broadcast_check_agrees_with_torch_broadcast_shapes():
    """Property test of check_cap_and_params' shape test (written out for speed) against torch's rule: a parameter
    is taken exactly when torch.broadcast_shapes(param, step) is the step (sizes 0 and 1, more and fewer dims)."""
    import random

    from snnlab.kernels.lif_common import check_cap_and_params

    rng = random.Random(0)
    for _ in range(3000):
        step = tuple(rng.choice((0, 1, 2, 3)) for _ in range(rng.randint(0, 3)))
        shape = tuple(rng.choice((0, 1, 2, 3)) for _ in range(rng.randint(0, 4)))
        try:
            expected = torch.broadcast_shapes(shape, step) == step
        except RuntimeError:
            expected = False
        x, p = torch.empty((2,) + step), torch.empty(shape)
        if expected:
            check_cap_and_params("f", x, None, {"beta": p})
        else:
            with pytest.raises(ValueError, match=r"f: beta of shape .* does not broadcast to a step of x"):
                check_cap_and_params("f", x, None, {"beta": p})
