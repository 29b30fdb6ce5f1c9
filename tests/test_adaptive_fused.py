"""The fused adaptive LIF (:mod:`snnlab.kernels.adaptive_lif`) against its definition, the per-step autograd loop
:func:`snnlab.core.step_loop.lif_step_loop` with a recurrent feedback ``o @ W^T`` (or none) and threshold adaptation:
spikes and thresholds identical, the membrane and every gradient (input, recurrent weight, beta, threshold, rho,
strength) within 1e-10 in float64, for every option (resets, detach_reset, max_spikes, surrogates, noise, spike
masking), scalar and per-neuron parameters, odd step shapes, T = 0 and T = 1; float32 and half precision; the no-grad
forward that keeps one step; second-order gradients and torch.func refused."""
import math

import pytest
import torch

import snnlab as sl
from snnlab.core.step_loop import Adaptation, lif_step_loop
from snnlab.kernels.adaptive_lif import AdaptiveLIFFunction, adaptive_lif

from adaptive_cases import adaptive_options
from lif_cases import CASES

PARAMS = ("beta", "threshold", "rho", "strength")


def _inputs(shape, T, per_neuron, seed=0, dtype=torch.float64):
    """``x [T, *shape]``, the four parameters (per neuron ``[N]`` or scalars), ``w [N, N]`` and an output gradient.
    The trace's decay and strength are drawn so that adaptation changes the spikes."""
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    x = torch.randn((T,) + tuple(shape), generator=g, dtype=torch.float64) * 0.8 + 0.5
    if per_neuron:
        params = (torch.rand(n, generator=g, dtype=torch.float64) * 0.5 + 0.4,
                  torch.rand(n, generator=g, dtype=torch.float64) * 0.5 + 0.7,
                  torch.rand(n, generator=g, dtype=torch.float64) * 0.3 + 0.65,
                  torch.rand(n, generator=g, dtype=torch.float64) * 0.6 + 0.1)
    else:
        params = tuple(torch.tensor(v, dtype=torch.float64) for v in (0.8, 0.9, 0.85, 0.4))
    w = torch.randn(n, n, generator=g, dtype=torch.float64) * 1.2 / math.sqrt(n)
    grad = torch.randn((T,) + tuple(shape), generator=g, dtype=torch.float64)
    return tuple(t.to(dtype) for t in (x, *params, w, grad))


def _layer(kw):
    """The ALIF whose options the step loop reads, recording (membrane and thresholds)."""
    opts = dict(reset=kw["reset"], detach_reset=kw["detach_reset"], max_spikes=kw["max_spikes"], mask_p=kw["mask_p"])
    if "noise" in kw:
        opts.update(noise=kw["noise"], noise_scale=kw["noise_scale"])
    else:
        opts.update(surrogate=sl.surrogates.get(kw["surrogate"], alpha=kw["surrogate_param"]))
    layer = sl.ALIF(**opts).double()
    layer.record = True
    return layer


def _leaves(x, params, w, recurrent):
    return [t.clone().requires_grad_() for t in (x, *params)] + ([w.clone().requires_grad_()] if recurrent else [])


def _run_reference(x, params, w, grad, recurrent, kw):
    """The step loop: ``(spikes, membrane, theta, gradients of x, beta, threshold, rho, strength[, w])``."""
    leaves = _leaves(x, params, w, recurrent)
    xl, beta, thr, rho, strength = leaves[:5]
    feedback = (lambda o: o @ leaves[5].T) if recurrent else None
    noise_seed = kw["seed"] if "noise" in kw and kw["sample"] else None
    mask_seed = kw["mask_seed"] if kw["mask_p"] > 0 else None
    run = lif_step_loop(_layer(kw), xl, beta, thr, noise_seed, mask_seed, feedback=feedback,
                        adaptation=Adaptation(rho, strength))
    (run.out * grad).sum().backward()
    return run.out.detach(), run.membrane, run.theta, [t.grad for t in leaves]


def _run_fused(x, params, w, grad, recurrent, kw):
    leaves = _leaves(x, params, w, recurrent)
    o, h, theta = adaptive_lif(leaves[0], leaves[5] if recurrent else None, *leaves[1:5], **kw)
    (o * grad.to(o.dtype)).sum().backward()
    return o.detach(), h, theta, [t.grad for t in leaves]


def _assert_match(ref, got, atol=1e-10, rtol=1e-10, empty_w_zeros=False):
    o_r, h_r, th_r, g_r = ref
    o, h, th, g = got
    assert torch.equal(o, o_r)
    assert torch.equal(th, th_r)
    torch.testing.assert_close(h, h_r, atol=atol, rtol=rtol)
    assert len(g) == len(g_r)
    for name, a, b in zip(["x", *PARAMS, "w"], g, g_r):
        if b is None and empty_w_zeros and name == "w":  # the step loop never uses w at T = 0: zeros here
            assert a is not None and not a.any()
            continue
        assert (a is None) == (b is None), name
        if b is not None:
            assert a.shape == b.shape and a.dtype == b.dtype, name
            torch.testing.assert_close(a, b, atol=atol, rtol=rtol, msg=name)


# CASES: every reset / detach_reset / max_spikes / surrogate (and noise) value, scalar and per-neuron parameters and
# step sizes that are multiples of nothing, crossed with recurrent or not and masked or not
@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("mask_p", [0.0, 0.3])
@pytest.mark.parametrize("reset,detach,max_spikes,surrogate,param,per_neuron,shape", CASES)
def test_every_option_matches_the_step_loop_in_float64(reset, detach, max_spikes, surrogate, param, per_neuron, shape,
                                                       recurrent, mask_p):
    x, *params, w, grad = _inputs(shape, 23, per_neuron, seed=len(shape) + shape[-1])
    kw = adaptive_options(reset, detach, max_spikes, surrogate, param, mask_p)
    ref = _run_reference(x, params, w, grad, recurrent, kw)
    got = _run_fused(x, params, w, grad, recurrent, kw)
    _assert_match(ref, got)
    assert ref[0].sum() > 0 and got[3][0].abs().sum() > 0
    if max_spikes != 1:  # (one spike allowed: the neuron is silent once its threshold has moved, no gradient)
        assert all(g.abs().sum() > 0 for g in got[3])


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("reset,detach", [("subtract", False), ("subtract", True), ("zero", False), ("zero", True)])
def test_adaptation_changes_the_spikes_and_the_gradients_still_match(reset, detach, recurrent):
    """Long sequences where the trace carries far (rho near 1, a strong adaptation): the adaptation silences
    spikes a plain LIF would fire, and the two-state backward matches the loop."""
    x, beta, thr, _, _, w, grad = _inputs((4, 3, 11), 80, True, seed=4)
    rho, strength = torch.full((11,), 0.97, dtype=torch.float64), torch.full((11,), 0.8, dtype=torch.float64)
    kw = adaptive_options(reset, detach, None, "atan", 2.0, 0.0)
    ref = _run_reference(x, (beta, thr, rho, strength), w, grad, recurrent, kw)
    _assert_match(ref, _run_fused(x, (beta, thr, rho, strength), w, grad, recurrent, kw))
    plain = _run_fused(x, (beta, thr, rho, strength * 0), w, grad, recurrent, kw)
    assert ref[0].sum() < plain[0].sum()


@pytest.mark.parametrize("recurrent", [False, True])
def test_mixed_parameter_shapes_and_a_noisy_neuron_in_eval_mode(recurrent):
    # beta per neuron, threshold scalar, rho [1, N], strength scalar; noise without sampling: deterministic spikes
    # with the noise density as the surrogate
    x, beta, _, rho, _, w, grad = _inputs((5, 9), 17, True, seed=8)
    params = (beta, torch.tensor(0.85, dtype=torch.float64), rho.view(1, 9), torch.tensor(0.5, dtype=torch.float64))
    for kw in (adaptive_options("subtract", False, 2, "gaussian", 0.4, 0.0, sample=False),
               adaptive_options("zero", True, None, "logistic", 0.3, 0.2, sample=False)):
        _assert_match(_run_reference(x, params, w, grad, recurrent, kw), _run_fused(x, params, w, grad, recurrent, kw))


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("T", [0, 1, 2])
def test_short_sequences(T, recurrent):
    """T = 0: zeros for every gradient (the recurrent weight too); T = 1: no feedback and no trace read, so the
    recurrent weight and rho get no gradient (None) as in the step loop."""
    x, *params, w, grad = _inputs((3, 6), T, True, seed=T)
    kw = adaptive_options("subtract", False, 1, "gaussian", 0.4, 0.25)
    ref = _run_reference(x, params, w, grad, recurrent, kw)
    got = _run_fused(x, params, w, grad, recurrent, kw)
    _assert_match(ref, got, empty_w_zeros=T == 0)
    assert got[0].shape == got[1].shape == got[2].shape == (T, 3, 6)
    if T == 0:
        assert all(g is not None and not g.any() for g in got[3])
    if T == 1:
        assert got[3][3] is None and (not recurrent or got[3][5] is None)


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("case", [CASES[0], CASES[6], CASES[4]])
def test_float32_matches_the_step_loop_within_float32_tolerance(case, recurrent):
    reset, detach, max_spikes, surrogate, param, per_neuron, shape = case
    x, *params, w, grad = _inputs(shape, 19, per_neuron, seed=11, dtype=torch.float32)
    kw = adaptive_options(reset, detach, max_spikes, surrogate, param, 0.3)
    _assert_match(_run_reference(x, params, w, grad, recurrent, kw), _run_fused(x, params, w, grad, recurrent, kw),
                  atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(dtype):
    x, *params, w, grad = _inputs((3, 10), 15, True, seed=5)
    x_h = x.to(dtype)
    leaves = [x_h.clone().requires_grad_()] + [p.float().requires_grad_() for p in params]
    o, h, theta = adaptive_lif(leaves[0], w.float(), *leaves[1:], max_spikes=3, mask_p=0.2)
    assert o.dtype == h.dtype == theta.dtype == dtype
    (o.float() * grad.float()).sum().backward()
    ref = [x_h.float().requires_grad_()] + [p.float().requires_grad_() for p in params]
    o_r, h_r, th_r = adaptive_lif(ref[0], w.float(), *ref[1:], max_spikes=3, mask_p=0.2)
    (o_r.to(dtype).float() * grad.float()).sum().backward()   # (the half output rounds its gradient to half)
    assert torch.equal(o.float(), o_r) and torch.equal(h, h_r.to(dtype)) and torch.equal(theta, th_r.to(dtype))
    assert leaves[0].grad.dtype == dtype
    torch.testing.assert_close(leaves[0].grad, ref[0].grad.to(dtype))
    for a, b in zip(leaves[1:], ref[1:]):
        torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("mask_p", [0.0, 0.3])
def test_the_no_grad_forward_keeps_only_the_last_step(recurrent, mask_p):
    x, *params, w, _ = _inputs((3, 2, 7), 20, True, seed=2)
    wr = w if recurrent else None
    kw = dict(mask_p=mask_p, mask_seed=3, max_spikes=4, noise="logistic", noise_scale=0.3, seed=5)
    o_full, h_full, th_full = adaptive_lif(x, wr, *params, **kw)
    with torch.no_grad():
        o, h, theta = adaptive_lif(x, wr, *params, keep_membrane=False, **kw)
    assert o_full.sum() > 0 and torch.equal(o, o_full)
    assert h.shape == theta.shape == (1, 3, 2, 7)
    assert torch.equal(h, h_full[-1:]) and torch.equal(theta, th_full[-1:])
    xg = x.clone().requires_grad_()  # a gradient to record: every step, whatever keep_membrane says
    assert adaptive_lif(xg, wr, *params, keep_membrane=False, **kw)[1].shape == x.shape
    with torch.no_grad():
        assert adaptive_lif(x[:0], wr, *params, keep_membrane=False)[2].shape == (0, 3, 2, 7)


def test_it_is_the_alif_layers_function():
    # the layer's own run (its step loop, seeds and casts) gives the spikes and gradients of the kernel
    torch.manual_seed(0)
    layer = sl.ALIF(n_neurons=8, recurrent=True, learn_tau=True, learn_threshold=True, learn_adaptation=True,
                    adaptation=0.6, tau_adapt=12.0, max_spikes=5).double()
    x = torch.rand(25, 4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 1.5
    with sl.Monitor(layer) as mon:
        out = layer(x)
    out.pow(2).sum().backward()
    beta, rho = layer.beta().detach(), layer.rho().detach()
    leaves = [t.clone().requires_grad_() for t in (layer.recurrent.weight.detach(), beta, layer.threshold.detach(),
                                                   rho, layer.adaptation.detach())]
    o, h, theta = adaptive_lif(x, *leaves, max_spikes=5)
    o.pow(2).sum().backward()
    assert torch.equal(o, out) and torch.equal(theta, mon.thresholds[""]) and out.sum() > 0
    torch.testing.assert_close(leaves[0].grad, layer.recurrent.weight.grad, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(leaves[4].grad, layer.adaptation.grad, atol=1e-10, rtol=1e-10)


def test_second_order_gradients_are_refused():
    x, *params, w, _ = _inputs((2, 5), 6, True)
    xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
    o = adaptive_lif(xs, ws, *params)[0]
    assert o.sum() > 0
    with pytest.raises(RuntimeError, match="second-order gradients"):
        torch.autograd.grad(o.sum(), (xs, ws), create_graph=True)
    (g,) = torch.autograd.grad(adaptive_lif(xs, ws, *params)[0].sum(), xs)  # first order: fine
    assert g.shape == x.shape


def test_torch_func_transforms_are_refused():
    x, *params, w, _ = _inputs((2, 5), 6, True)
    with pytest.raises(RuntimeError, match="adaptive_lif: torch.func transforms"):
        torch.func.grad(lambda x: adaptive_lif(x, w, *params)[0].sum())(x)
    with pytest.raises(RuntimeError, match="adaptive_lif: torch.func transforms"):
        torch.func.vmap(lambda x: adaptive_lif(x, None, *params)[0])(x.unsqueeze(0))
    with pytest.raises(RuntimeError, match="adaptive_lif: torch.func transforms"):
        torch.func.grad(lambda x: AdaptiveLIFFunction.apply(x, None, *params, _opts())[0].sum())(x)


def _opts():
    from snnlab.kernels.lif_common import LIFOptions
    return LIFOptions("subtract", False, None, "atan", 2.0, None, 0.3, 0, True, 0.0, 0)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(reset="hard"), ValueError, "unknown reset 'hard'"),
    (dict(noise="uniform"), ValueError, "unknown noise 'uniform'"),
    (dict(mask_p=1.0), ValueError, "mask_p"),
    (dict(max_spikes=-1), ValueError, "max_spikes"),
    (dict(w=torch.zeros(4, 5)), ValueError, "recurrent weight must be \\[N, N\\] = \\[5, 5\\]"),
    (dict(x=torch.zeros(5)), ValueError, "time-major"),
    (dict(x=torch.zeros(3, 2, 5, dtype=torch.int64)), TypeError, "floating-point"),
])
def test_bad_arguments_are_named(kwargs, error, match):
    args = dict(x=torch.zeros(3, 2, 5), w=None)
    args.update({k: kwargs.pop(k) for k in ("x", "w") if k in kwargs})
    with pytest.raises(error, match=match):
        adaptive_lif(args["x"], args["w"], *(torch.tensor(v) for v in (0.9, 1.0, 0.9, 0.5)), **kwargs)


@pytest.mark.parametrize("shape", [(0, 4), (3, 0), (2, 0, 3)])
def test_empty_batch_or_layer(shape):
    x, *params, w, grad = _inputs((3, 4), 5, False)
    x = torch.zeros((5,) + shape, dtype=torch.float64, requires_grad=True)
    w = torch.zeros(shape[-1], shape[-1], dtype=torch.float64, requires_grad=True)
    o, h, theta = adaptive_lif(x, w, *params)
    assert o.shape == h.shape == theta.shape == x.shape
    o.sum().backward()
    assert x.grad.shape == x.shape and w.grad.shape == w.shape and not w.grad.any()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (benchmarks/run_gpu.sh runs it on a GPU)")
def test_the_fused_alif_on_cuda_matches_the_cpu():
    """The fused ALIF is plain PyTorch: on a GPU (float64, so that no rounding moves a spike) it gives the CPU's
    spikes, thresholds and gradients, with noise and masks from the same counter hash."""
    import copy

    torch.manual_seed(0)
    layer = sl.ALIF(n_neurons=16, recurrent=True, noise="gaussian", mask_p=0.2, seed=3, learn_tau=True,
                    learn_threshold=True, learn_adaptation=True, adaptation=0.4, tau_adapt=15.0).double()
    gpu = copy.deepcopy(layer).cuda()
    x = (torch.rand(40, 8, 16, dtype=torch.float64) * 1.5).requires_grad_()
    xg = x.detach().cuda().requires_grad_()
    with sl.Monitor(layer) as mon, sl.Monitor(gpu) as mon_g:
        out, out_g = layer(x), gpu(xg)
    assert torch.equal(out, out_g.cpu()) and out.sum() > 0
    torch.testing.assert_close(mon_g.thresholds[""].cpu(), mon.thresholds[""])
    out.sum().backward()
    out_g.sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), x.grad)
    for (name, p), q in zip(layer.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(q.grad.cpu(), p.grad, msg=name)
