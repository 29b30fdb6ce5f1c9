"""RecurrentLIF: with W_rec = 0 exactly the LIF (spikes and gradients), with W_rec != 0 a float64 reference loop,
a hand-computed dL/dW_rec, the fused Function (backend "torch") against the layer's autograd loop (backend
"reference") for every option, and its use in networks (Monitor, evaluate, SynOps, state dicts, training)."""
import io
import math

import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.kernels.counter_rng import keep_mask, mask_key
from snnlab.metrics import SynOpsCounter, evaluate, synops_table
from snnlab.metrics.synops import layer_ops

from lif_cases import CASES, MASK_CASES, make_inputs
from reference import lif_reference

NOISES = ("gaussian", "logistic")


def _options(reset, detach, max_spikes, surrogate, param, **extra):
    """LIF keyword options of one ``lif_cases.CASES`` row (a noise name there is a noisy neuron)."""
    kw = dict(reset=reset, detach_reset=detach, max_spikes=max_spikes, **extra)
    if surrogate in NOISES:
        kw.update(noise=surrogate, noise_scale=param)
    else:
        kw.update(surrogate=sl.surrogates.get(surrogate, alpha=param))
    return kw


def _pair(n, beta, thr, per_neuron, **kw):
    """A RecurrentLIF with W_rec = 0 and an LIF (backend="torch") of the same options, learnable tau and threshold
    set to ``beta`` / ``thr`` (per neuron, or one value per layer for the LIF)."""
    rnn = sl.RecurrentLIF(n, learn_tau=True, learn_threshold=True, recurrent_init="zeros", **kw)
    lif = sl.LIF(learn_tau=True, learn_threshold=True, n_neurons=n if per_neuron else None, backend="torch", **kw)
    with torch.no_grad():
        for layer in (rnn, lif):
            layer.tau_mem.copy_((1.0 / (1.0 - beta)).expand_as(layer.tau_mem))
            layer.threshold.copy_(thr.expand_as(layer.threshold))
    return rnn, lif


def _run(layer, x, grad):
    """Spikes and the gradients of ``sum(spikes * grad)`` w.r.t. input, tau and threshold."""
    x = x.clone().requires_grad_()
    s = layer(x)
    (s * grad).sum().backward()
    return s.detach(), x.grad, layer.tau_mem.grad, layer.threshold.grad


def _assert_same_as_lif(rnn, lif, x, grad):
    s_r, gx_r, gtau_r, gthr_r = _run(rnn, x, grad)
    s_l, gx_l, gtau_l, gthr_l = _run(lif, x, grad)
    assert torch.equal(s_r, s_l)
    assert s_l.sum() > 0
    torch.testing.assert_close(gx_r, gx_l, rtol=1e-5, atol=1e-5)
    # the LIF's parameters may be one per layer: its gradient is the sum of the per-neuron ones
    torch.testing.assert_close(gtau_r.sum_to_size(gtau_l.shape), gtau_l, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gthr_r.sum_to_size(gthr_l.shape), gthr_l, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reset,detach,max_spikes,surrogate,param,per_neuron,shape", CASES)
def test_without_recurrence_it_is_exactly_the_lif(reset, detach, max_spikes, surrogate, param, per_neuron, shape):
    """W_rec = 0: the spikes of an LIF with the same options and seed (noise draws included), and its gradients."""
    shape = shape if len(shape) > 1 else (1,) + shape
    x, beta, thr, grad = make_inputs(shape, per_neuron, seed=3, steps=12)
    kw = _options(reset, detach, max_spikes, surrogate, param, seed=11)
    _assert_same_as_lif(*_pair(shape[-1], beta, thr, per_neuron, **kw), x, grad)


@pytest.mark.parametrize("reset,max_spikes,noise,shape", MASK_CASES)
def test_without_recurrence_masked_spikes_are_the_lifs(reset, max_spikes, noise, shape):
    """Spike masking: the same keep masks (counter indices t * numel + i) as the fused LIF."""
    shape = shape if len(shape) > 1 else (1,) + shape
    x, beta, thr, grad = make_inputs(shape, True, seed=4, steps=12)
    kw = dict(reset=reset, max_spikes=max_spikes, mask_p=0.4, seed=5)
    if noise is not None:
        kw.update(noise=noise, noise_scale=0.4)
    rnn, lif = _pair(shape[-1], beta, thr, True, **kw)
    _assert_same_as_lif(rnn, lif, x, grad)
    _assert_same_as_lif(rnn, lif, x, grad)  # the second call: the next seeds of both layers' streams


def test_without_recurrence_eval_mode_and_noisy_eval_are_the_lifs():
    x, beta, thr, grad = make_inputs((3, 20), True, seed=6, steps=15)
    for kw in (dict(noise="gaussian", noise_scale=0.3), dict(noise="logistic", noise_scale=0.3, noisy_eval=True),
               dict(mask_p=0.3, mask_at_inference=True), dict(mask_p=0.3)):
        rnn, lif = _pair(20, beta, thr, True, seed=2, **kw)
        rnn.eval(), lif.eval()
        _assert_same_as_lif(rnn, lif, x, grad)


# ------------------------------------------------------------------------------ with recurrence: a reference


def _layer_seeds(seed, sampling, masking):
    """The noise and mask seeds a layer built with ``seed`` draws in its first call (noise first, as LIF)."""
    g = torch.Generator().manual_seed(seed)
    draw = lambda: int(torch.randint(0, 2**31 - 1, (1,), generator=g).item())  # noqa: E731
    return (draw() if sampling else None), (draw() if masking else None)


def rlif_reference(x, beta, thr, w, reset="subtract", detach_reset=False, max_spikes=None, surrogate="atan",
                   param=2.0, noise=None, noise_scale=0.3, noise_seed=None, mask_p=0.0, mask_seed=None):
    """Straightforward recurrent LIF loop (autograd does the backward): ``(o, h)`` for ``x [T, B, N]``."""
    keep = keep_mask(0, x.shape, mask_key(mask_seed), mask_p, dtype=x.dtype) if mask_seed is not None else None
    return lif_reference(x, beta, thr, reset, detach_reset, max_spikes, surrogate, param, noise, noise_scale,
                         seed=noise_seed if noise_seed is not None else 0, sample=noise_seed is not None, w_rec=w,
                         keep=keep)


REC_CASES = [  # reset, detach_reset, max_spikes, surrogate, param, mask_p
    ("subtract", False, None, "atan", 2.0, 0.0),
    ("zero", False, None, "fast_sigmoid", 3.0, 0.0),
    ("subtract", True, 2, "sigmoid", 4.0, 0.0),
    ("zero", True, 1, "triangle", 1.0, 0.0),
    ("subtract", False, 1, "gaussian", 0.4, 0.0),
    ("zero", False, None, "logistic", 0.3, 0.3),
    ("subtract", False, None, "atan", 2.0, 0.4),
    ("subtract", True, 3, "logistic", 0.4, 0.25),
]


def _recurrent_setup(N=9, B=3, T=25, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, B, N, generator=g, dtype=torch.float64) * 0.6 + 0.3
    tau = torch.rand(N, generator=g, dtype=torch.float64) * 8 + 2
    thr = torch.rand(N, generator=g, dtype=torch.float64) * 0.5 + 0.7
    w = torch.randn(N, N, generator=g, dtype=torch.float64) * 1.5 / math.sqrt(N)
    grad = torch.randn(T, B, N, generator=g, dtype=torch.float64)
    return x, tau, thr, w, grad


@pytest.mark.parametrize("reset,detach,max_spikes,surrogate,param,mask_p", REC_CASES)
def test_recurrent_spikes_and_gradients_match_the_reference(reset, detach, max_spikes, surrogate, param, mask_p):
    x, tau, thr, w, grad = _recurrent_setup()
    kw = _options(reset, detach, max_spikes, surrogate, param, mask_p=mask_p, seed=21)
    layer = sl.RecurrentLIF(9, learn_tau=True, learn_threshold=True, **kw).double()
    with torch.no_grad():
        layer.tau_mem.copy_(tau), layer.threshold.copy_(thr), layer.recurrent.weight.copy_(w)
    xs = x.clone().requires_grad_()
    with sl.Monitor(layer) as mon:
        out = layer(xs)
    (out * grad).sum().backward()

    noise = kw.get("noise")
    n_seed, m_seed = _layer_seeds(21, noise is not None, mask_p > 0)
    ref_x, ref_tau, ref_thr, ref_w = (t.clone().requires_grad_() for t in (x, tau, thr, w))
    ref_out, ref_h = rlif_reference(ref_x, 1 - 1 / ref_tau, ref_thr, ref_w, reset, detach, max_spikes, surrogate, param,
                                    noise, kw.get("noise_scale", 0.3), n_seed, mask_p, m_seed)
    (ref_out * grad).sum().backward()

    assert out.dtype == torch.float64 and torch.equal(out, ref_out.detach())
    torch.testing.assert_close(mon.membrane[""], ref_h.detach())
    no_feedback = sl.RecurrentLIF(9, learn_tau=True, learn_threshold=True, recurrent_init="zeros", **kw).double()
    with torch.no_grad():
        no_feedback.tau_mem.copy_(tau), no_feedback.threshold.copy_(thr)
    assert not torch.equal(out, no_feedback(x))  # the recurrence matters here
    for got, want in ((xs.grad, ref_x.grad), (layer.tau_mem.grad, ref_tau.grad),
                      (layer.threshold.grad, ref_thr.grad), (layer.recurrent.weight.grad, ref_w.grad)):
        assert got.shape == want.shape and want.abs().sum() > 0
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_the_gradient_of_the_recurrent_weight_by_hand():
    """Two steps, two neurons: neuron 0 fires at t=0 (x = 2), neuron 1 does not; at t=1 only the feedback
    W[:, 0] * o_0[0] reaches the neurons, so dL/dW[i, j] = g_i * sg(h_i[1] - thr) * o_j[0] with the atan surrogate
    sg(u) = (a/2) / (1 + (pi/2 a u)^2): column 0 only, and no gradient through the surrogate at t=0 (L reads t=1)."""
    layer = sl.RecurrentLIF(2, beta=0.5, threshold=1.0, surrogate="atan", recurrent_init="zeros").double()
    w = torch.tensor([[0.3, -0.2], [1.5, 0.7]], dtype=torch.float64)
    with torch.no_grad():
        layer.recurrent.weight.copy_(w)
    x = torch.tensor([[[2.0, 0.4]], [[0.0, 0.0]]], dtype=torch.float64)
    out = layer(x)
    g = torch.tensor([0.7, -1.3], dtype=torch.float64)
    (out[1, 0] * g).sum().backward()
    # t=0: h = (2, 0.4), o = (1, 0), v = (1, 0.4); t=1: h = 0.5 v + W[:, 0] = (0.8, 1.7)
    assert out[:, 0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    u = torch.tensor([0.8, 1.7], dtype=torch.float64) - 1.0
    sg_u = 1.0 / (1.0 + (math.pi / 2 * 2.0 * u) ** 2)
    expected = torch.zeros(2, 2, dtype=torch.float64)
    expected[:, 0] = g * sg_u
    torch.testing.assert_close(layer.recurrent.weight.grad, expected, rtol=1e-12, atol=1e-14)


def test_masked_spikes_are_not_fed_back():
    """With mask_p close to 1 nearly nothing is transmitted: the feedback sees o, not the neuron's own spikes."""
    x = torch.rand(30, 2, 6, generator=torch.Generator().manual_seed(0)) + 0.5
    layer = sl.RecurrentLIF(6, mask_p=0.999999, seed=0, recurrent_init="zeros")
    with torch.no_grad():
        layer.recurrent.weight.fill_(100.0)  # a transmitted spike would make every neuron fire
    assert layer(x).sum() == 0
    with sl.Monitor(layer) as mon:
        layer(x)
    lif = sl.LIF(n_neurons=6, backend="torch")  # unmasked, without feedback: the membrane the layer had
    with sl.Monitor(lif) as ref:
        lif(x)
    torch.testing.assert_close(mon.membrane[""], ref.membrane[""])


# ------------------------------------------------------------------ the fused Function against the autograd loop


def _twin_runs(n, x, tau, thr, w, grad, dtype, frozen_w=False, **kw):
    """The fused path (backend "torch") and the autograd reference loop (backend "reference") on the same
    parameters, options and seed: ``[(spikes, membrane, grad x, grad tau, grad threshold, grad W)]`` for each."""
    runs = []
    for backend in ("torch", "reference"):
        layer = sl.RecurrentLIF(n, learn_tau=True, learn_threshold=True, backend=backend, **kw).to(dtype)
        with torch.no_grad():
            layer.tau_mem.copy_(tau), layer.threshold.copy_(thr), layer.recurrent.weight.copy_(w)
        layer.recurrent.weight.requires_grad_(not frozen_w)
        xs = x.to(dtype).clone().requires_grad_()
        with sl.Monitor(layer) as mon:
            out = layer(xs)
        (out * grad.to(dtype)).sum().backward()
        runs.append((out.detach(), mon.membrane[""], xs.grad, layer.tau_mem.grad, layer.threshold.grad,
                     layer.recurrent.weight.grad))
    return runs


def _scale(t):
    """The largest magnitude in ``t``, at least 1 (the absolute tolerance's scale)."""
    return max(1.0, float(t.abs().max())) if t.numel() else 1.0


def _assert_twins_agree(runs, dtype, need_spikes=True):
    """Spikes identical; membrane and gradients to 1e-10 (float64) or 1e-5 relative to the largest (float32)."""
    (s_f, h_f, *grads_f), (s_r, h_r, *grads_r) = runs
    assert torch.equal(s_f, s_r)
    assert not need_spikes or s_r.sum() > 0
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(h_f, h_r, rtol=tol, atol=tol * _scale(h_r))
    for got, want in zip(grads_f, grads_r):
        if want is None:  # (the recurrent weight at T = 1: no step feeds back, no gradient in either path)
            assert got is None
            continue
        assert got.shape == want.shape and got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=tol, atol=tol * _scale(want))


def _weights(n, seed, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n, generator=g, dtype=torch.float64) * scale / math.sqrt(n)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("reset,detach,max_spikes,surrogate,param,mask_p", REC_CASES)
def test_fused_matches_the_reference_loop(reset, detach, max_spikes, surrogate, param, mask_p, dtype):
    x, tau, thr, w, grad = _recurrent_setup()
    kw = _options(reset, detach, max_spikes, surrogate, param, mask_p=mask_p, seed=21)
    runs = _twin_runs(9, x, tau, thr, w, grad, dtype, **kw)
    _assert_twins_agree(runs, dtype)
    assert runs[0][5].abs().sum() > 0 and runs[0][3].abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("reset,detach,max_spikes,surrogate,param,per_neuron,shape", CASES)
def test_fused_matches_the_reference_loop_for_every_lif_case(reset, detach, max_spikes, surrogate, param, per_neuron,
                                                             shape, dtype):
    shape = shape if len(shape) > 1 else (1,) + shape
    x, beta, thr, grad = make_inputs(shape, per_neuron, seed=3, steps=12, dtype=torch.float64)
    n = shape[-1]
    kw = _options(reset, detach, max_spikes, surrogate, param, seed=11)
    tau = (1.0 / (1.0 - beta)).double().expand(n)
    _assert_twins_agree(_twin_runs(n, x, tau, thr.double().expand(n), _weights(n, 1), grad, dtype, **kw), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("reset,max_spikes,noise,shape", MASK_CASES)
def test_fused_matches_the_reference_loop_with_masks(reset, max_spikes, noise, shape, dtype):
    shape = shape if len(shape) > 1 else (1,) + shape
    x, beta, thr, grad = make_inputs(shape, True, seed=4, steps=12, dtype=torch.float64)
    kw = dict(reset=reset, max_spikes=max_spikes, mask_p=0.4, seed=5)
    if noise is not None:
        kw.update(noise=noise, noise_scale=0.4)
    n = shape[-1]
    runs = _twin_runs(n, x, 1.0 / (1.0 - beta.double()), thr.double(), _weights(n, 2), grad, dtype, **kw)
    _assert_twins_agree(runs, dtype)


@pytest.mark.parametrize("seed", range(6))
def test_fused_matches_the_reference_on_random_shapes(seed):
    """Random T (0 and 1 included), batch, extra middle dimensions and width; options drawn at random; the
    recurrent weight frozen in some draws (no gradient for it)."""
    g = torch.Generator().manual_seed(100 + seed)
    pick = lambda seq: seq[int(torch.randint(len(seq), (1,), generator=g))]  # noqa: E731
    T = (0, 1, 2, 17, 40)[seed % 5]
    shape = (T, 1 + seed % 3) + ((2, 3), (), (4,))[seed % 3] + (int(torch.randint(1, 20, (1,), generator=g)),)
    n = shape[-1]
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 0.8 + 0.4
    grad = torch.randn(shape, generator=g, dtype=torch.float64)
    tau = torch.rand(n, generator=g, dtype=torch.float64) * 8 + 2
    thr = torch.rand(n, generator=g, dtype=torch.float64) * 0.5 + 0.6
    kw = dict(reset=pick(("subtract", "zero")), detach_reset=bool(seed % 2), max_spikes=pick((None, 1, 3)),
              mask_p=pick((0.0, 0.3)), seed=seed)
    if seed % 3 == 1:
        kw.update(noise=pick(NOISES), noise_scale=0.3)
    else:
        kw.update(surrogate=pick(("atan", "fast_sigmoid", "triangle", "sigmoid")))
    for dtype in (torch.float64, torch.float32):
        runs = _twin_runs(n, x, tau, thr, _weights(n, seed, 2.0), grad, dtype, frozen_w=seed == 3, **kw)
        _assert_twins_agree(runs, dtype, need_spikes=T > 1)
        assert runs[0][0].shape == shape and runs[0][2].shape == shape
        assert (runs[0][5] is None) == (seed == 3)  # T = 1: a zero gradient (not None), as T = 0


def test_custom_surrogates_work_in_both_paths():
    """A surrogate registered with sl.surrogates.register: the fused backward computes it as the reference does,
    and it is the one used (the gradients differ from the built-in atan's)."""
    sl.surrogates.register("test_rectangle", lambda u, a: (u.abs() < 0.5 / a).to(u.dtype) * a, 1.0)
    try:
        x, tau, thr, w, grad = _recurrent_setup()
        for detach, max_spikes in ((False, None), (True, 2)):
            kw = dict(surrogate="test_rectangle", detach_reset=detach, max_spikes=max_spikes)
            runs = _twin_runs(9, x, tau, thr, w, grad, torch.float64, **kw)
            _assert_twins_agree(runs, torch.float64)
            atan = _twin_runs(9, x, tau, thr, w, grad, torch.float64, surrogate="atan", detach_reset=detach,
                              max_spikes=max_spikes)
            assert torch.equal(runs[0][0], atan[0][0]) and not torch.allclose(runs[0][2], atan[0][2])
    finally:
        sl.surrogates.unregister("test_rectangle")


def test_the_backward_refuses_second_order_gradients():
    layer = sl.RecurrentLIF(4)
    x = (torch.rand(6, 2, 4) * 2).requires_grad_()
    (g,) = torch.autograd.grad(layer(x).sum(), x)  # first order: fine
    assert g.abs().sum() > 0
    with pytest.raises(RuntimeError, match="RecurrentLIF: second-order gradients"):
        torch.autograd.grad(layer(x).sum(), x, create_graph=True)
    assert torch.func.grad(lambda x: layer(x).sum())(x.detach()).abs().sum() > 0  # torch.func runs the backward,
    with pytest.raises(RuntimeError, match="RecurrentLIF: second-order gradients"):  # ... not its derivative
        torch.func.grad(lambda x: torch.func.grad(lambda y: layer(y).sum())(x).sum())(x.detach())


def _count_per_step(layer, totals):
    """Hook the child Linear of ``layer`` (a reference-loop RecurrentLIF, which calls it at steps 1..T-1) as the
    SynOps counter did before the fused path: ``layer_ops`` of each call, ``[calls, input events, ACs]`` summed into
    ``totals``."""
    def hook(module, inputs):
        acs, _, binary, events = layer_ops(inputs[0].detach(), module.out_features)
        assert binary
        totals[0] += 1
        totals[1] += events
        totals[2] += acs
    return layer.recurrent.register_forward_pre_hook(hook)


@pytest.mark.parametrize("mask_p,shape", [(0.0, (25, 6, 4)), (0.3, (25, 3, 2, 4)), (0.0, (1, 2, 4))])
def test_synops_count_the_recurrent_synapses_without_per_step_hooks(mask_p, shape):
    """The counter hooks the layer, not the child Linear per step: the fused layer never calls the child, and the
    row counts what the per-step calls of the autograd loop received (spikes of steps 0..T-2, masked ones
    excluded), on random inputs; both backends give the same table."""
    torch.manual_seed(0)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(3)) * 2
    tables = {}
    for backend in ("torch", "reference"):
        torch.manual_seed(0)
        net = sl.Sequential(nn.Linear(4, 12), sl.RecurrentLIF(12, tau_mem=10.0, mask_p=mask_p, mask_at_inference=True,
                                                              seed=1, backend=backend), nn.Linear(12, 3))
        totals = [0, 0.0, 0.0]
        _count_per_step(net[1], totals)
        with torch.no_grad(), SynOpsCounter(net) as counter:
            net(x)
        tables[backend] = counter.table().set_index("layer")
        if backend == "torch":
            assert totals[0] == 0  # no call of the recurrent Linear: no per-step hook to run
        else:
            assert totals[0] == shape[0] - 1
            events, acs = totals[1:]
    row = tables["torch"].loc["1.recurrent"]
    B = shape[1]
    assert row["input_events_per_sample"] == pytest.approx(events / B)
    assert row["acs_per_sample"] == pytest.approx(acs / B) and row["macs_per_sample"] == 0
    assert bool(row["binary_input"]) and (shape[0] == 1 or acs > 0)
    assert tables["torch"].equals(tables["reference"])


# ------------------------------------------------------------------------------------------- options, inputs


def test_backends_and_bad_options_raise_clear_errors():
    for backend in ("cpu", "triton"):
        with pytest.raises(ValueError, match="RecurrentLIF: .*only the PyTorch loop"):
            sl.RecurrentLIF(4, backend=backend)
    with pytest.raises(ValueError, match="RecurrentLIF: unknown backend"):
        sl.RecurrentLIF(4, backend="cuda")
    layer = sl.RecurrentLIF(4)
    layer.backend = "triton"
    with pytest.raises(ValueError, match="only the PyTorch loop"):
        layer(torch.rand(3, 1, 4))
    for n in (0, -2, 2.5, None, True):
        with pytest.raises(ValueError, match="RecurrentLIF: n_neurons must be a positive int"):
            sl.RecurrentLIF(n)
    with pytest.raises(ValueError, match="RecurrentLIF: unknown recurrent_init 'normal'"):
        sl.RecurrentLIF(4, recurrent_init="normal")
    with pytest.raises(ValueError, match="^RecurrentLIF: unknown reset 'hard'"):
        sl.RecurrentLIF(4, reset="hard")
    with pytest.raises(ValueError, match="^RecurrentLIF: max_spikes must be a positive int"):
        sl.RecurrentLIF(4, max_spikes=0)
    with pytest.raises(ValueError, match="^RecurrentLIF: give tau_mem or beta, not both"):
        sl.RecurrentLIF(4, tau_mem=5.0, beta=0.8)
    with pytest.raises(TypeError, match="positional"):
        sl.RecurrentLIF(4, 10.0)  # the options are keyword-only
    for backend in ("torch", "reference"):
        assert sl.RecurrentLIF(3, backend=backend)(torch.rand(5, 2, 3)).shape == (5, 2, 3)


def test_bad_inputs_raise_clear_errors():
    layer = sl.RecurrentLIF(4)
    with pytest.raises(ValueError, match="RecurrentLIF: input has 5 features .* expects 4"):
        layer(torch.rand(6, 2, 5))
    with pytest.raises(ValueError, match="RecurrentLIF: input must be time-major"):
        layer(torch.rand(6, 4))
    with pytest.raises(TypeError, match="RecurrentLIF: input must be a torch.Tensor"):
        layer([[0.0] * 4])
    for bad in (float("nan"), float("inf"), -float("inf")):
        for t in (0, 4, 9):
            x = torch.rand(10, 2, 4)
            x[t, 1, 2] = bad
            with pytest.raises(ValueError, match="RecurrentLIF: input contains NaN or inf"):
                layer(x)
    with torch.no_grad():
        layer.recurrent.weight[0, 1] = float("nan")
    with pytest.raises(ValueError, match="parameter recurrent weight is NaN or inf"):
        layer(torch.rand(10, 2, 4))
    ints = torch.randint(0, 3, (10, 2, 4))  # integer event counts: computed in the default float dtype
    assert sl.RecurrentLIF(4)(ints).dtype == torch.get_default_dtype()


def test_empty_single_step_and_single_sample_inputs():
    layer = sl.RecurrentLIF(5, learn_tau=True, learn_threshold=True)
    x = torch.zeros(0, 2, 5, requires_grad=True)
    out = layer(x)
    assert out.shape == (0, 2, 5)
    out.sum().backward()
    assert x.grad.shape == (0, 2, 5) and not layer.threshold.grad.any() and not layer.tau_mem.grad.any()
    assert layer.recurrent.weight.grad is not None and not layer.recurrent.weight.grad.any()
    with sl.Monitor(layer) as mon:
        layer(torch.zeros(0, 2, 5))
    assert mon.spikes[""].shape == mon.membrane[""].shape == (0, 2, 5)

    x1 = torch.rand(1, 3, 5) * 2  # one step: no feedback yet, the LIF's step
    assert torch.equal(layer(x1), sl.LIF(n_neurons=5, backend="torch")(x1))

    x = torch.rand(20, 4, 5, generator=torch.Generator().manual_seed(1)) * 1.5  # samples are independent
    full = layer(x)
    assert full.sum() > 0
    for b in range(4):
        assert torch.equal(layer(x[:, b:b + 1]), full[:, b:b + 1])
    extra = torch.rand(20, 2, 3, 5) * 1.5  # a dimension between batch and neurons acts as more batch
    assert torch.equal(layer(extra), layer(extra.flatten(1, 2)).view(20, 2, 3, 5))


def test_learn_tau_and_threshold_get_per_neuron_gradients():
    layer = sl.RecurrentLIF(6, learn_tau=True, learn_threshold=True, tau_mem=5.0, threshold=0.8)
    assert layer.tau_mem.shape == layer.threshold.shape == (6,)
    assert {n for n, _ in layer.named_parameters()} == {"tau_mem", "threshold", "recurrent.weight"}
    layer(torch.rand(30, 4, 6) * 1.2).sum().backward()
    for p in (layer.tau_mem, layer.threshold):
        assert p.grad.shape == (6,) and p.grad.abs().min() > 0 and len(set(p.grad.tolist())) > 1
    fixed = sl.RecurrentLIF(6, tau_mem=5.0)
    assert {n for n, _ in fixed.named_parameters()} == {"recurrent.weight"}
    assert {n for n, _ in fixed.named_buffers()} == {"beta_const", "threshold"}


def test_initialisations():
    torch.manual_seed(0)
    w = sl.RecurrentLIF(64).recurrent.weight.detach()
    assert w.abs().max() <= 1 / 8 and 0.9 / 8 < w.abs().max() and abs(float(w.mean())) < 0.01
    w = sl.RecurrentLIF(16, recurrent_init="orthogonal").recurrent.weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(16), atol=1e-5, rtol=0)
    assert not sl.RecurrentLIF(16, recurrent_init="zeros").recurrent.weight.any()
    layer = sl.RecurrentLIF(4)
    layer.reset_recurrent("zeros")
    assert not layer.recurrent.weight.any()
    # a fresh layer driven at a moderate rate neither falls silent nor fires at every step
    torch.manual_seed(1)
    layer = sl.RecurrentLIF(128)
    rate = float(layer(torch.rand(100, 8, 128) * 0.3).detach().mean())
    assert 0.01 < rate < 0.5


def test_repr_shows_the_width_and_the_lif_options():
    assert sl.RecurrentLIF(8, tau_mem=20.0, threshold=0.5, max_spikes=2, backend="torch").extra_repr() == (
        "n_neurons=8, tau_mem=20, threshold=0.5, reset='subtract', surrogate=atan(2), max_spikes=2, backend='torch'")
    r = repr(sl.RecurrentLIF(3, learn_tau=True, noise="gaussian", mask_p=0.1))
    assert r.startswith("RecurrentLIF(\n  n_neurons=3, tau_mem=10, learn_tau=True, threshold=1, reset='subtract', "
                        "noise='gaussian', noise_scale=0.3, mask_p=0.1, mask_at_inference=False")
    assert "(recurrent): Linear(in_features=3, out_features=3, bias=False)" in r


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_input_computes_in_float32(dtype):
    x = torch.rand(40, 3, 16, generator=torch.Generator().manual_seed(0)) * 0.4
    layer = sl.RecurrentLIF(16, tau_mem=50.0, learn_threshold=True)
    x_low = x.to(dtype).requires_grad_()
    out = layer(x_low)
    assert out.dtype == dtype and out.sum() > 0
    assert torch.equal(out.float(), layer(x_low.detach().float()))
    out.float().sum().backward()
    assert x_low.grad.dtype == dtype and layer.threshold.grad.dtype == torch.float32
    layer.to(dtype)  # the time constant and threshold stay float32, the recurrent weight is cast as any Linear
    assert layer.beta_const.dtype == layer.threshold.dtype == torch.float32
    assert layer.recurrent.weight.dtype == dtype
    assert layer(x_low.detach()).dtype == dtype


def test_double_and_a_saved_state_round_trip():
    layer = sl.RecurrentLIF(7, learn_tau=True, learn_threshold=True, seed=3, noise="logistic")
    with torch.no_grad():
        layer.tau_mem.uniform_(2, 10), layer.threshold.uniform_(0.5, 1.5)
    x = torch.rand(20, 2, 7) * 1.5
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    assert {"tau_mem", "threshold", "recurrent.weight"} <= set(state)
    layer.eval()
    expected = layer(x)
    buf = io.BytesIO()
    torch.save(layer.state_dict(), buf)
    buf.seek(0)
    other = sl.RecurrentLIF(7, learn_tau=True, learn_threshold=True, seed=3, noise="logistic").eval()
    other.load_state_dict(torch.load(buf))
    assert torch.equal(other(x), expected)
    whole = io.BytesIO()  # the whole module pickled
    torch.save(layer, whole)
    whole.seek(0)
    assert torch.equal(torch.load(whole, weights_only=False)(x), expected)

    d = layer.double()
    assert d.recurrent.weight.dtype == d.tau_mem.dtype == torch.float64
    out = d(x.double())
    assert out.dtype == torch.float64 and torch.equal(out, expected.double())


# ------------------------------------------------------------------------------------------- in networks


def _net(T_in=4, hidden=12, out=3):
    return sl.Sequential(nn.Linear(T_in, hidden), sl.RecurrentLIF(hidden, tau_mem=10.0), nn.Linear(hidden, out),
                         sl.LI())


def test_monitor_evaluate_and_synops_see_the_layer():
    torch.manual_seed(0)
    net = _net()
    x = torch.rand(15, 5, 4) * 2
    with sl.Monitor(net) as mon:
        net(x)
    assert list(mon.spikes) == ["1"] and mon.spikes["1"].shape == mon.membrane["1"].shape == (15, 5, 12)
    assert set(net.neuron_layers()) == {"1", "3"}
    spikes = mon.spikes["1"]
    assert 0 < spikes.sum() < spikes.numel()
    r = evaluate(net, [(x, torch.tensor([0, 1, 2, 0, 1]))])
    assert r["spikes_per_layer"] == {"1": pytest.approx(float(spikes.sum()) / 5)}
    table = synops_table(net, [(x, torch.tensor([0, 1, 2, 0, 1]))]).set_index("layer")
    # the recurrent synapses receive the spikes of steps 0..T-2, each reaching 12 neurons
    assert table.loc["1.recurrent", "input_events_per_sample"] == pytest.approx(float(spikes[:-1].sum()) / 5)
    assert table.loc["1.recurrent", "acs_per_sample"] == pytest.approx(float(spikes[:-1].sum()) * 12 / 5)
    assert table.loc["2", "acs_per_sample"] == pytest.approx(float(spikes.sum()) * 3 / 5)


def test_a_small_network_trains():
    """Two classes told apart by which half of the inputs is active; a few Adam steps lower the loss."""
    torch.manual_seed(0)
    T, B = 20, 16
    y = torch.arange(B) % 2
    x = torch.rand(T, B, 4) * 0.3
    x[:, y == 0, :2] += 0.6
    x[:, y == 1, 2:] += 0.6
    net = sl.Sequential(nn.Linear(4, 16), sl.RecurrentLIF(16, tau_mem=8.0, learn_tau=True, learn_threshold=True),
                        nn.Linear(16, 2), sl.LI(tau_mem=8.0))
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    losses = []
    for _ in range(25):
        loss = nn.functional.cross_entropy(net(x).sum(0) / T, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert net[1].recurrent.weight.grad.abs().sum() > 0
    assert losses[-1] < 0.7 * losses[0]
    assert sum(losses[-5:]) < sum(losses[:5])


def test_torch_func_grad_gives_the_autograd_gradient():
    torch.manual_seed(0)
    layer = sl.RecurrentLIF(3, max_spikes=2)
    x = torch.rand(8, 2, 3) * 2
    g = torch.func.grad(lambda x: layer(x).sum())(x)
    xs = x.clone().requires_grad_()
    layer(xs).sum().backward()
    assert torch.equal(g, xs.grad) and g.abs().sum() > 0
