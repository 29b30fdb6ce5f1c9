"""The compiled CPU feed-forward adaptive LIF (:mod:`snnlab.kernels.adaptive_lif_cpu`) against the PyTorch path
:func:`snnlab.kernels.adaptive_lif.adaptive_lif` (``w=None``): spikes identical, membrane and threshold bit for bit,
the input gradient bit for bit for the atan / fast-sigmoid / triangle surrogates and every gradient (x, beta,
threshold, rho, strength) within float32 tolerance, for every option (resets, detach_reset, max_spikes, surrogates,
noise, spike masking), scalar / per-neuron / broadcast parameters, odd step sizes, sequences across the 32-step
checkpoints, several neuron blocks and threads, T = 0 and T = 1; and the errors."""
import pytest
import torch

from adaptive_cases import (NOISES, Backend, adaptive_inputs as _inputs, check_every_option,
                            check_noise_without_sampling, check_noisy_spikes_for_each_seed,
                            check_one_step_and_empty_sequence, check_random_shapes_and_parameter_layouts,
                            check_sum_loss_gradient_of_one_value)
from lif_cases import CASES
from snnlab.kernels import lif_cpu as lif_cpu_mod
from snnlab.kernels.adaptive_lif import adaptive_lif
from snnlab.kernels.adaptive_lif_cpu import adaptive_lif_cpu
from snnlab.kernels.lif_cpu import cpu_kernel_available, cpu_kernel_error

pytestmark = pytest.mark.skipif(not cpu_kernel_available(), reason=f"CPU kernel not built: {cpu_kernel_error()}")

EXACT_SURROGATES = ("atan", "fast_sigmoid", "triangle")  # the PyTorch path's operations, no exp / erf
T = 40  # two checkpoints: the backward re-runs the forward from each
F32 = dict(atol=1e-5, rtol=1e-4)       # the input gradient
F32_SUMS = dict(atol=1e-4, rtol=1e-3)  # the parameter gradients (sums over batch and time)


def _run(compiled, x, params, grad, grad_params=True, sum_loss=False, **kw):
    """Forward and backward of ``sum(o * grad)`` (or ``o.sum()``): ``(o, h, theta, [gradients of x, beta, threshold,
    rho, strength])``."""
    leaves = [x.clone().requires_grad_()] + [p.clone().requires_grad_(grad_params) for p in params]
    if compiled:
        o, h, theta = adaptive_lif_cpu(*leaves, **kw)
    else:
        o, h, theta = adaptive_lif(leaves[0], None, *leaves[1:], **kw)
    (o.sum() if sum_loss else (o * grad).sum()).backward()
    return o.detach(), h, theta, [t.grad for t in leaves]


def _assert_match(ref, got, exact_grad_x=False):
    """Spikes, membrane and threshold identical; the gradients within float32 tolerance (``exact_grad_x``: the input
    gradient bit for bit), the same ones None, of the same shapes and dtypes."""
    o_r, h_r, th_r, g_r = ref
    o, h, th, g = got
    assert torch.equal(o, o_r) and torch.equal(h, h_r) and torch.equal(th, th_r)
    for name, a, b in zip(("x", "beta", "threshold", "rho", "strength"), g, g_r):
        assert (a is None) == (b is None), name
        if b is not None:
            assert a.shape == b.shape and a.dtype == b.dtype, name
            torch.testing.assert_close(a, b, **(F32 if name == "x" else F32_SUMS), msg=name)
    if exact_grad_x:
        assert torch.equal(g[0], g_r[0])


BACKEND = Backend(_run, _assert_match, T)


# CASES: every reset / detach_reset / max_spikes / surrogate (and noise) value, scalar and per-neuron parameters, step
# sizes of 37, 74 and 130 neurons; each with and without spike masking
@pytest.mark.parametrize("mask_p", [0.0, 0.3])
@pytest.mark.parametrize("reset,detach,max_spikes,surrogate,param,per_neuron,shape", CASES)
def test_every_option_matches_pytorch(reset, detach, max_spikes, surrogate, param, per_neuron, shape, mask_p):
    ref, got = check_every_option(BACKEND, reset, detach, max_spikes, surrogate, param, per_neuron, shape, mask_p)
    if surrogate in EXACT_SURROGATES:  # the input gradient bit for bit
        assert torch.equal(got[3][0], ref[3][0])


def test_masking_drops_transmitted_spikes_only():
    x, params, grad = _inputs((2, 37), T, per_neuron=True, seed=3)
    masked = _run(True, x, params, grad, mask_p=0.4, mask_seed=2)
    plain = _run(True, x, params, grad)
    # the own spikes (and so the membrane and threshold) are unchanged; the transmitted ones are a strict subset
    assert torch.equal(masked[1], plain[1]) and torch.equal(masked[2], plain[2])
    assert 0 < masked[0].sum() < plain[0].sum() and torch.equal(masked[0] * plain[0], masked[0])
    assert not torch.equal(masked[0], _run(True, x, params, grad, mask_p=0.4, mask_seed=3)[0])


@pytest.mark.parametrize("noise", NOISES)
def test_noise_without_sampling_is_deterministic_with_density_surrogate(noise):
    check_noise_without_sampling(BACKEND, noise)


@pytest.mark.parametrize("noise,reset,max_spikes", [("gaussian", "subtract", None), ("logistic", "zero", 2)])
def test_noisy_spikes_identical_for_each_seed(noise, reset, max_spikes):
    check_noisy_spikes_for_each_seed(BACKEND, noise, reset, max_spikes)


@pytest.mark.parametrize("threads", [1, 2])
def test_blocks_threads_and_long_sequences(threads):
    # M = 4101 neurons: several forward (2048) and backward (512) blocks, the last partial; 130 steps (> 0.5M
    # elements, so two threads are used; checkpoints at 0, 32, ..., 128); masks and noise at their counters t * M + m
    x, params, grad = _inputs((3, 1367), 130, per_neuron=True, seed=2)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for kw in (dict(max_spikes=20, mask_p=0.25, mask_seed=3),
                   dict(reset="zero", noise="logistic", noise_scale=0.3, seed=8, surrogate="triangle")):
            got = _run(True, x, params, grad, **kw)
            _assert_match(_run(False, x, params, grad, **kw), got)
            torch.set_num_threads(3 - threads)   # the other split gives the same bits
            other = _run(True, x, params, grad, **kw)
            torch.set_num_threads(threads)
            assert all(torch.equal(a, b) for a, b in zip(got[:3] + tuple(got[3]), other[:3] + tuple(other[3])))
    finally:
        torch.set_num_threads(before)


def test_random_shapes_and_parameter_layouts():
    for ref, got in check_random_shapes_and_parameter_layouts(BACKEND, caps=(None, 1, 2, 0), max_steps=40):
        assert torch.equal(got[3][0], ref[3][0])  # the input gradient bit for bit


def test_max_spikes_zero_is_silent():
    x, params, grad = _inputs((2, 37), T, per_neuron=True, seed=8)
    ref, got = _run(False, x, params, grad, max_spikes=0), _run(True, x, params, grad, max_spikes=0)
    _assert_match(ref, got)
    assert got[0].sum() == 0 and not got[3][0].any()


def test_python_float_and_double_parameters_and_partial_gradients():
    x, params, grad = _inputs((2, 37), T, per_neuron=False, seed=2)
    o, h, theta = adaptive_lif_cpu(x, *[float(p) for p in params], max_spikes=2)
    o_r, h_r, th_r = adaptive_lif(x, None, *params, max_spikes=2)
    assert torch.equal(o, o_r) and torch.equal(h, h_r) and torch.equal(theta, th_r)
    # parameters that do not require gradients get none; the input's still match
    _assert_match(_run(False, x, params, grad, grad_params=False, mask_p=0.3),
                  _run(True, x, params, grad, grad_params=False, mask_p=0.3), exact_grad_x=True)
    # float64 parameters: computed in float32, their gradients in float64 (as the PyTorch path)
    doubles = tuple(p.double() for p in params)
    ref, got = _run(False, x, doubles, grad), _run(True, x, doubles, grad)
    _assert_match(ref, got)
    assert got[3][4].dtype == torch.float64
    # only the trace's parameters learn
    leaves = [x.clone().requires_grad_(False), params[0], params[1], params[2].clone().requires_grad_(),
              params[3].clone().requires_grad_()]
    (adaptive_lif_cpu(*leaves)[0] * grad).sum().backward()
    ref = _run(False, x, params, grad)
    torch.testing.assert_close(leaves[3].grad, ref[3][3], **F32_SUMS)
    torch.testing.assert_close(leaves[4].grad, ref[3][4], **F32_SUMS)


@pytest.mark.parametrize("max_spikes,mask_p", [(None, 0.0), (2, 0.3)])
def test_sum_loss_gradient_of_one_value(max_spikes, mask_p):
    check_sum_loss_gradient_of_one_value(BACKEND, max_spikes, mask_p)


def test_gradient_of_the_membrane_only_is_zero():
    # h and theta are not differentiable: a loss on them alone gives no gradient through the spikes
    x, params, _ = _inputs((2, 5), 4, per_neuron=True)
    xl = x.clone().requires_grad_()
    o, h, theta = adaptive_lif_cpu(xl, *params)
    assert not h.requires_grad and not theta.requires_grad
    (o.sum() * 0).backward()
    assert torch.equal(xl.grad, torch.zeros_like(x))


def test_one_step_and_empty_sequence():
    ref, got = check_one_step_and_empty_sequence(BACKEND)
    assert torch.equal(got[3][0], ref[3][0])  # one step: the input gradient bit for bit


def test_keep_membrane_false_returns_the_last_step():
    x, params, grad = _inputs((2, 37), 70, per_neuron=True, seed=6)
    kw = dict(noise="logistic", seed=4, mask_p=0.3, max_spikes=5)
    full = _run(True, x, params, grad, **kw)
    last = _run(True, x, params, grad, keep_membrane=False, **kw)   # with a backward: the same gradients
    assert last[1].shape == (1, 2, 37) and torch.equal(last[1][0], full[1][-1]) and torch.equal(last[2][0],
                                                                                               full[2][-1])
    assert torch.equal(last[0], full[0]) and all(torch.equal(a, b) for a, b in zip(last[3], full[3]))
    with torch.no_grad():
        fast = adaptive_lif_cpu(x, *params, keep_membrane=False, **kw)
        kept = adaptive_lif_cpu(x, *params, **kw)
    assert torch.equal(fast[0], full[0]) and torch.equal(fast[1], last[1]) and torch.equal(fast[2], last[2])
    assert all(torch.equal(a, b) for a, b in zip(kept, full[:3]))


def test_errors():
    x, params, _ = _inputs((2, 5), 3, per_neuron=True)
    with pytest.raises(TypeError, match="adaptive_lif_cpu.*float32"):
        adaptive_lif_cpu(x.double(), *params)
    with pytest.raises(TypeError, match="adaptive_lif_cpu"):
        adaptive_lif_cpu(x.long(), *params)
    with pytest.raises(RuntimeError, match="adaptive_lif_cpu.*'meta'.*CPU tensors"):
        adaptive_lif_cpu(x.to("meta"), *(p.to("meta") for p in params))
    with pytest.raises(ValueError, match="adaptive_lif_cpu: unknown reset 'hard'"):
        adaptive_lif_cpu(x, *params, reset="hard")
    with pytest.raises(ValueError, match="adaptive_lif_cpu: unknown surrogate 'box'"):
        adaptive_lif_cpu(x, *params, surrogate="box")
    with pytest.raises(ValueError, match="adaptive_lif_cpu: unknown noise 'uniform'"):
        adaptive_lif_cpu(x, *params, noise="uniform")
    with pytest.raises(ValueError, match="max_spikes"):
        adaptive_lif_cpu(x, *params, max_spikes=-1)
    with pytest.raises(ValueError, match="rho of shape \\(4,\\)"):
        adaptive_lif_cpu(x, params[0], params[1], torch.ones(4), params[3])
    with pytest.raises(ValueError, match="time-major"):
        adaptive_lif_cpu(x[:, 0, 0], *(p[0] for p in params))
    with pytest.raises(ValueError, match="mask_p"):
        adaptive_lif_cpu(x, *params, mask_p=1.0)
    import snnlab as sl

    sl.surrogates.register("adaptive_cpu_test_box", lambda u, a: (u.abs() < a).float() / (2 * a), 0.5)
    try:  # the kernel computes the built-in surrogates only
        with pytest.raises(ValueError, match="adaptive_lif_cpu: surrogate 'adaptive_cpu_test_box'"):
            adaptive_lif_cpu(x, *params, surrogate="adaptive_cpu_test_box")
    finally:
        sl.surrogates.unregister("adaptive_cpu_test_box")


def test_second_order_and_torch_func_refused():
    x, params, _ = _inputs((2, 5), 3, per_neuron=True)
    xl = x.clone().requires_grad_()
    o, _, _ = adaptive_lif_cpu(xl, *params)
    with pytest.raises(RuntimeError, match="second-order"):
        torch.autograd.grad((o * 2).sum(), xl, create_graph=True)
    with pytest.raises(RuntimeError, match="torch.func"):
        torch.func.grad(lambda xi: adaptive_lif_cpu(xi, *params)[0].sum())(x)
    with pytest.raises(RuntimeError, match="torch.func"):
        torch.func.vmap(lambda xi: adaptive_lif_cpu(xi, *params)[0])(x[None])


def test_missing_compiler_is_a_clear_error(monkeypatch, tmp_path):
    from snnlab.kernels import c_build

    monkeypatch.setenv("SNNLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(c_build, "find_compiler", lambda: None)
    monkeypatch.setattr(lif_cpu_mod, "_library", lif_cpu_mod._library.__wrapped__)  # no cached build
    x, params, _ = _inputs((2, 5), 3, per_neuron=True)
    with pytest.raises(RuntimeError, match="no C compiler"):
        adaptive_lif_cpu(x, *params)


def test_the_layer_takes_the_c_loop_and_matches_its_pytorch_path():
    """sl.ALIF picks the C loop for feed-forward float32 CPU input ("auto", or "cpu"), the fused PyTorch Function for
    a recurrent layer, float64 or a custom surrogate; with the C loop it fires the PyTorch path's spikes and thresholds
    and gets its gradients."""
    import snnlab as sl

    x32 = torch.rand(40, 3, 11) * 1.5
    assert sl.ALIF()._path(x32) == "cpu" and sl.ALIF(backend="cpu")._path(x32) == "cpu"
    assert sl.ALIF(n_neurons=11, recurrent=True)._path(x32) == "torch" and sl.ALIF()._path(x32.double()) == "torch"
    kw = dict(n_neurons=11, learn_tau=True, learn_threshold=True, learn_adaptation=True, adaptation=0.3,
              tau_adapt=12.0, noise="logistic", mask_p=0.2, seed=4)
    ref, fused = sl.ALIF(backend="torch", **kw), sl.ALIF(backend="cpu", **kw)
    fused.load_state_dict(ref.state_dict())
    runs = []
    for layer in (ref, fused):
        xs = x32.clone().requires_grad_()
        with sl.Monitor(layer) as mon:
            out = layer(xs)
        (out * torch.arange(out.numel()).view_as(out).remainder(5)).sum().backward()
        runs.append((out.detach(), mon.thresholds[""], xs.grad, [p.grad for p in layer.parameters()]))
    assert torch.equal(runs[0][0], runs[1][0]) and runs[0][0].sum() > 0
    assert torch.equal(runs[0][1], runs[1][1])
    torch.testing.assert_close(runs[1][2], runs[0][2], atol=1e-5, rtol=1e-4)
    for a, b in zip(runs[1][3], runs[0][3]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)
    sl.surrogates.register("adaptive_test_box", lambda u, a: (u.abs() < a).float() / (2 * a), 0.5)
    try:
        assert sl.ALIF(surrogate="adaptive_test_box")._path(x32) == "torch"  # "auto" keeps it on PyTorch
        with pytest.raises(ValueError, match="ALIF\\(backend='cpu'\\)"):
            sl.ALIF(backend="cpu", surrogate="adaptive_test_box")
    finally:
        sl.surrogates.unregister("adaptive_test_box")


def test_a_spike_cap_past_32_bits_is_no_cap():
    """Review: max_spikes = 2**32 was cut to the C loops' 32-bit int (0: no spikes at all; 2**32 + 1: one)."""
    import snnlab as sl

    x = torch.full((6, 1, 3), 2.0)
    for cap in (2**32, 2**32 + 1, 2**40):
        assert torch.equal(sl.ALIF(max_spikes=cap)(x), sl.ALIF(max_spikes=cap, backend="torch")(x))
        assert torch.equal(sl.LIF(max_spikes=cap, backend="cpu")(x), sl.LIF(max_spikes=cap, backend="torch")(x))
    assert sl.ALIF(max_spikes=2**32)(x).sum() > 6
