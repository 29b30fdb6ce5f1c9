"""LIF / LI numerics and gradients against the step-by-step reference, and every bad input."""
import itertools

import pytest
import torch

import snnlab as sl
from snnlab.kernels.lif_cpu import cpu_kernel_available
from snnlab.kernels.lif_torch import li_torch, lif_torch

from reference import li_reference, lif_reference



@pytest.fixture(autouse=True)
def float64_default():
    """Compare in float64 so gradients match the reference tightly; restore afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)

CASES = list(itertools.product(["subtract", "zero"], [False, True], [None, 1, 2]))


def _inputs(T=12, B=3, N=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, N, generator=g) * 0.8 + 0.4


@pytest.mark.parametrize("reset,detach,max_spikes", CASES)
@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid", "triangle", "sigmoid"])
@pytest.mark.parametrize("per_neuron", [False, True])
@pytest.mark.parametrize("learn_params,chunk_steps", [(True, None), (False, None), (True, 5), (False, 5)])
def test_lif_matches_reference_values_and_gradients(reset, detach, max_spikes, surrogate, per_neuron,
                                                    learn_params, chunk_steps, monkeypatch):
    """Both backward paths (with and without threshold/beta gradients), in one chunk and across chunks."""
    if chunk_steps is not None:  # T=12 in chunks of 5, 5 and 2 steps: the recurrence crosses chunk edges
        monkeypatch.setattr("snnlab.kernels.lif_torch._time_chunk", lambda step_numel: chunk_steps)
    x = _inputs()
    shape = (5,) if per_neuron else ()
    beta = torch.full(shape, 0.8) + (torch.linspace(-0.1, 0.1, 5) if per_neuron else 0)
    thr = torch.full(shape, 0.9) + (torch.linspace(-0.2, 0.2, 5) if per_neuron else 0)
    args = dict(reset=reset, detach_reset=detach, max_spikes=max_spikes)

    xs = [x.clone().requires_grad_() for _ in range(2)]
    bs = [beta.clone().requires_grad_(learn_params) for _ in range(2)]
    ts = [thr.clone().requires_grad_(learn_params) for _ in range(2)]
    s1, h1 = lif_torch(xs[0], bs[0], ts[0], surrogate=surrogate, surrogate_param=2.0, **args)
    s2, h2 = lif_reference(xs[1], bs[1], ts[1], surrogate=surrogate, param=2.0, **args)
    assert torch.equal(s1, s2)
    torch.testing.assert_close(h1, h2)
    assert s1.sum() > 0, "test input should make neurons fire"
    w = torch.randn_like(s1)
    (s1 * w).sum().backward()
    (s2 * w).sum().backward()
    torch.testing.assert_close(xs[0].grad, xs[1].grad)
    if learn_params:
        torch.testing.assert_close(bs[0].grad, bs[1].grad)
        torch.testing.assert_close(ts[0].grad, ts[1].grad)
    else:
        assert bs[0].grad is None and ts[0].grad is None


@pytest.mark.parametrize("k", [1, 2, 3])
def test_max_spikes_caps_spike_count_per_sample(k):
    x = torch.full((40, 2, 3), 2.0)  # drives a spike every step when unconstrained
    s = sl.LIF(tau_mem=5.0, max_spikes=k)(x)
    assert torch.equal(s.sum(0), torch.full((2, 3), float(k)))
    assert torch.equal(s[:k], torch.ones(k, 2, 3))  # first k spikes happen, then silence
    assert sl.LIF(tau_mem=5.0)(x).sum(0).min() == 40


def test_ttfs_gradient_flows_only_to_spikes_that_happened():
    x = torch.full((10, 1, 1), 2.0, requires_grad=True)
    s = sl.LIF(beta=0.0, max_spikes=1, surrogate="atan")(x)
    s.sum().backward()
    assert x.grad[0].item() != 0.0            # the one spike that happened gets gradient
    assert torch.all(x.grad[1:] == 0.0)       # silenced steps get none


@pytest.mark.parametrize("noise", ["gaussian", "logistic"])
@pytest.mark.parametrize("max_spikes", [None, 1])
def test_noisy_neurons_match_reference_and_gradient_is_noise_density(noise, max_spikes):
    x = _inputs()
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    beta, thr = torch.tensor(0.7), torch.tensor(1.0)
    s1, _ = lif_torch(xa, beta, thr, noise=noise, noise_scale=0.4, seed=7, max_spikes=max_spikes)
    s2, _ = lif_reference(xb, beta, thr, noise=noise, noise_scale=0.4, seed=7, max_spikes=max_spikes)
    assert torch.equal(s1, s2)
    s1.sum().backward()
    s2.sum().backward()
    torch.testing.assert_close(xa.grad, xb.grad)


def test_noisy_firing_probability_follows_the_noise_cdf():
    # beta=0 and reset irrelevant: each step fires independently with P = F((x - thr)/sigma).
    x = torch.full((4000, 1, 3), 1.0) + torch.tensor([-0.3, 0.0, 0.3])
    s, _ = lif_torch(x, torch.tensor(0.0), torch.tensor(1.0), noise="gaussian", noise_scale=0.3, seed=1)
    rate = s.mean(dim=(0, 1))
    expected = torch.tensor([0.1587, 0.5, 0.8413])
    assert torch.allclose(rate, expected, atol=0.03)


def test_noise_is_seeded_and_reproducible():
    x = _inputs(T=30)
    a = sl.LIF(noise="gaussian", noise_scale=0.5, seed=3)
    b = sl.LIF(noise="gaussian", noise_scale=0.5, seed=3)
    c = sl.LIF(noise="gaussian", noise_scale=0.5, seed=4)
    sa, sb, sc = a(x), b(x), c(x)
    assert torch.equal(sa, sb) and not torch.equal(sa, sc)
    assert not torch.equal(a(x), sa)  # a fresh draw on the next call
    torch.manual_seed(0)
    g1 = sl.LIF(noise="logistic")(x)
    torch.manual_seed(0)
    assert torch.equal(sl.LIF(noise="logistic")(x), g1)


def test_noisy_eval_is_deterministic_unless_asked():
    x = _inputs(T=30)
    lif = sl.LIF(noise="gaussian", noise_scale=0.5, seed=0).eval()
    det = lif(x)
    assert torch.equal(det, sl.LIF(noise=None)(x))
    lif.noisy_eval = True
    assert not torch.equal(lif(x), det)


def test_learnable_threshold_and_tau_receive_reference_gradients():
    x = _inputs()
    lif = sl.LIF(tau_mem=4.0, threshold=0.8, learn_threshold=True, learn_tau=True, n_neurons=5)
    s = lif(x)
    (s * torch.arange(5.0)).sum().backward()
    tau = torch.full((5,), 4.0, requires_grad=True)
    thr = torch.full((5,), 0.8, requires_grad=True)
    s_ref, _ = lif_reference(x, 1 - 1 / tau, thr)
    (s_ref * torch.arange(5.0)).sum().backward()
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(lif.tau_mem.grad, tau.grad)
    torch.testing.assert_close(lif.threshold.grad, thr.grad)
    assert lif.tau_mem.grad.abs().sum() > 0 and lif.threshold.grad.abs().sum() > 0


def test_beta_and_tau_are_equivalent_and_documented_formula_holds():
    x = torch.full((6, 1, 1), 0.5)
    s_tau, s_beta = sl.LIF(tau_mem=2.0)(x), sl.LIF(beta=0.5)(x)
    assert torch.equal(s_tau, s_beta)
    # h: 0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375 -> never reaches 1.0
    assert s_tau.sum() == 0
    s = sl.LIF(beta=0.5, threshold=0.9)(x)
    assert s[:, 0, 0].tolist() == [0, 0, 0, 1, 0, 0]


def test_li_matches_reference_and_gradients():
    x = _inputs().requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    b1 = torch.tensor([0.5, 0.6, 0.7, 0.8, 0.9], requires_grad=True)
    b2 = b1.detach().clone().requires_grad_()
    out1, out2 = li_torch(x, b1), li_reference(x2, b2)
    torch.testing.assert_close(out1, out2)
    w = torch.randn_like(out1)
    (out1 * w).sum().backward()
    (out2 * w).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad)
    torch.testing.assert_close(b1.grad, b2.grad)


def test_float32_and_bfloat16_inputs_run():
    x = _inputs().to(torch.float32)
    assert sl.LIF()(x).dtype == torch.float32
    assert sl.LIF()(x.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("kwargs,match", [
    (dict(tau_mem=0.0), "tau_mem"),
    (dict(tau_mem=-3.0), "tau_mem"),
    (dict(tau_mem=0.5), "tau_mem"),
    (dict(beta=1.5), "beta"),
    (dict(threshold=0.0), "threshold"),
    (dict(reset="soft"), "reset"),
    (dict(surrogate="relu"), "surrogate"),
    (dict(max_spikes=0), "max_spikes"),
    (dict(max_spikes=1.5), "max_spikes"),
    (dict(noise="uniform"), "noise"),
    (dict(noise="gaussian", noise_scale=0), "noise_scale"),
    (dict(backend="cuda"), "backend"),
    (dict(n_neurons=0), "n_neurons"),
    (dict(beta=0.5, tau_mem=3.0), "not both"),
    (dict(beta=float("nan")), "beta"),
])
def test_bad_settings_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sl.LIF(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    (dict(tau_mem="10"), "tau_mem must be a number"),
    (dict(threshold=None), "threshold must be a number"),
    (dict(beta=[0.5]), "beta must be a number"),
    (dict(threshold=torch.ones(4)), "n_neurons"),
    (dict(tau_mem=torch.full((3,), 5.0), learn_tau=True), "n_neurons"),
])
def test_settings_of_the_wrong_type_raise_type_errors(kwargs, match):
    with pytest.raises(TypeError, match=match):
        sl.LIF(**kwargs)


def test_tau_mem_defaults_to_ten_steps_unless_beta_is_given():
    assert sl.LIF().beta().item() == pytest.approx(0.9)
    assert sl.LI().beta().item() == pytest.approx(0.9)
    assert sl.LIF(beta=0.25).beta().item() == 0.25
    assert sl.LIF(tau_mem=torch.tensor(4.0)).beta().item() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="not both"):
        sl.LI(tau_mem=5.0, beta=0.8)


def test_bad_inputs_raise_clear_errors():
    lif = sl.LIF(n_neurons=5)
    with pytest.raises(TypeError, match="torch.Tensor"):
        lif([[1.0]])
    with pytest.raises(ValueError, match="time-major"):
        lif(torch.rand(3, 5))
    with pytest.raises(ValueError, match="batch-first"):
        lif(torch.rand(7, 5, 3))  # [T, N, B] by mistake: N in the batch position
    bad = torch.rand(4, 2, 5)
    bad[1, 0, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        lif(bad)
    bad[1, 0, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or inf"):
        sl.LI()(bad)


def test_all_finite_is_exact_even_when_the_sum_overflows():
    from snnlab.core.validation import all_finite

    assert all_finite(torch.ones(3, 2, 4)) and all_finite(torch.empty(0, 2, 3))
    huge = torch.full((4, 1, 2), 3e38)  # finite values whose sum overflows float32
    assert all_finite(huge)
    for bad in (float("nan"), float("inf"), -float("inf")):
        x = torch.zeros(4, 1, 2)
        x[2, 0, 1] = bad
        assert not all_finite(x)
    both = torch.tensor([float("inf"), -float("inf")]).view(2, 1, 1)
    assert not all_finite(both)
    assert not all_finite(torch.tensor([1.0, float("nan")], dtype=torch.bfloat16).view(2, 1, 1))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("t", [0, 3, 7])
@pytest.mark.parametrize("kwargs", [dict(reset="subtract"), dict(reset="zero"), dict(max_spikes=1),
                                    dict(beta=0.0), dict(beta=0.0, reset="zero"), dict(noise="gaussian")])
def test_a_non_finite_value_anywhere_is_caught_by_the_final_membrane_check(bad, t, kwargs):
    """The LIF checks membrane[-1] instead of all of x: a NaN/inf at any step must still be caught."""
    x = torch.rand(8, 2, 3) * 2
    x[t, 1, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        sl.LIF(**kwargs)(x)
    with pytest.raises(ValueError, match="NaN or inf"):
        sl.LI(beta=kwargs.get("beta", 0.9))(x)
    x[t, 1, 2] = 1e3  # large finite values are fine
    sl.LIF(**kwargs)(x)


def test_a_non_finite_error_names_its_cause():
    """A finite input whose membrane overflows, or a learned parameter gone NaN, is not blamed on the input;
    a NaN threshold with reset="zero" (finite membrane, no spike ever) is caught too."""
    torch.set_default_dtype(torch.float32)  # (the autouse fixture restores float64)
    huge = torch.full((20, 1, 2), -1e38)
    with pytest.raises(ValueError, match="membrane overflowed"):
        sl.LIF()(huge)
    with pytest.raises(ValueError, match="membrane overflowed"):
        sl.LI()(-huge)
    for reset in ("subtract", "zero"):
        for name in ("threshold", "tau_mem"):
            lif = sl.LIF(reset=reset, learn_threshold=True, learn_tau=True)
            with torch.no_grad():
                getattr(lif, name).fill_(float("nan"))
            with pytest.raises(ValueError, match="parameter .*(threshold|beta).* is NaN or inf"):
                lif(torch.rand(20, 1, 2) * 3)
    li = sl.LI(learn_tau=True)
    with torch.no_grad():
        li.tau_mem.fill_(float("inf"))
    li(torch.rand(5, 1, 2))  # tau = inf is beta = 1: a perfect integrator, finite
    x = torch.rand(8, 2, 3)
    x[3, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="input contains NaN"):
        sl.LIF(learn_threshold=True)(x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_casting_a_model_to_half_precision_keeps_its_time_constants(dtype):
    """bfloat16 would round tau_mem=100 to 85.3 and 200 to 256: the time constants and thresholds stay float32."""
    torch.set_default_dtype(torch.float32)
    net = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(tau_mem=100.0, threshold=0.7, learn_tau=True, n_neurons=4),
                        torch.nn.Linear(4, 2), sl.LI(tau_mem=200.0))
    ref = {k: v.clone() for k, v in net.state_dict().items() if "weight" not in k and "bias" not in k}
    net.to(dtype)
    assert net[0].weight.dtype == dtype
    for k, v in net.state_dict().items():
        if k in ref:
            assert v.dtype == torch.float32 and torch.equal(v, ref[k]), k
    assert isinstance(net[1].tau_mem, torch.nn.Parameter)
    out = net(torch.rand(6, 2, 3, dtype=dtype))
    out.float().sum().backward()
    assert out.dtype == dtype and net[1].tau_mem.grad.dtype == torch.float32
    net.float()
    assert net[3].beta_const.item() == pytest.approx(1 - 1 / 200, abs=1e-7)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_second_order_gradients_are_refused_not_silently_wrong(backend):
    if backend == "cpu" and not cpu_kernel_available():
        pytest.skip("no C compiler")
    x = torch.rand(6, 2, 3, dtype=torch.float32, requires_grad=True)
    with pytest.raises(RuntimeError, match="second-order gradients"):
        torch.autograd.grad(sl.LIF(backend=backend)(x * 2).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="second-order gradients"):
        torch.autograd.grad(sl.LI()(x).sum(), x, create_graph=True)
    sl.LIF(backend=backend)(x * 2).sum().backward()  # first order as ever
    assert x.grad.abs().sum() > 0


def test_a_surrogate_keyword_that_does_not_apply_is_refused():
    with pytest.raises(ValueError, match="takes alpha"):
        sl.surrogates.get("atan", sigma=5.0)
    with pytest.raises(ValueError, match="takes sigma"):
        sl.surrogates.get("gaussian", alpha=1.0)
    assert sl.surrogates.get("gaussian", sigma=0.5).param == 0.5 and sl.surrogates.get("atan", alpha=3.0).param == 3.0


def test_repr_shows_the_settings_that_define_the_dynamics():
    assert repr(sl.LIF(tau_mem=20.0, threshold=0.5, detach_reset=True, backend="torch")) == (
        "LIF(tau_mem=20, threshold=0.5, reset='subtract', surrogate=atan(2), detach_reset=True, backend='torch')")
    assert repr(sl.LIF(beta=1.0, learn_threshold=True, max_spikes=1)) == (
        "LIF(tau_mem=inf, threshold=1, learn_threshold=True, reset='subtract', surrogate=atan(2), max_spikes=1)")
    assert repr(sl.LI(learn_tau=True, n_neurons=3)) == "LI(tau_mem=10, learn_tau=True, n_neurons=3)"
    # a noisy neuron's surrogate is its noise density: the unused atan(2) is not shown (nn-conventions probe)
    assert repr(sl.LIF(noise="logistic", noise_scale=0.5)) == (
        "LIF(tau_mem=10, threshold=1, reset='subtract', noise='logistic', noise_scale=0.5)")
    lif = sl.LIF(n_neurons=2)
    lif.threshold.copy_(torch.tensor([0.5, 2.0]))  # e.g. loaded from a trained model
    assert "threshold=0.5..2" in repr(lif)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_input_computes_in_float32_on_the_pytorch_path(dtype):
    """nn-conventions probe: the PyTorch path kept a bfloat16 membrane (tau 100, T 200: 69 of 32 768 spikes moved),
    while the fused kernels accumulate in float32; now both give the spikes of the float32 computation."""
    torch.set_default_dtype(torch.float32)  # float32 parameters, as in use (the autouse fixture restores float64)
    x = torch.rand(200, 4, 64, generator=torch.Generator().manual_seed(0)) * 0.05
    x_low = x.to(dtype)
    lif = sl.LIF(tau_mem=100.0, backend="torch", learn_threshold=True)
    out = lif(x_low.requires_grad_())
    assert out.dtype == dtype and torch.equal(out.float(), lif(x_low.detach().float()))
    out.float().sum().backward()
    assert x_low.grad.dtype == dtype and lif.threshold.grad.dtype == torch.float32
    li = sl.LI(tau_mem=100.0)
    y = li(x_low.detach())
    assert y.dtype == dtype and torch.equal(y, li(x_low.detach().float()).to(dtype))


def test_casting_to_half_keeps_parameters_and_their_gradients_in_one_dtype():
    """nn-conventions probe: .half() after a backward kept tau and threshold in float32 but cast their .grad to
    float16, and Adam's step then failed (expected dtype float for 'end' but got Half)."""
    torch.set_default_dtype(torch.float32)
    lif = sl.LIF(learn_tau=True, learn_threshold=True, backend="torch")
    lif(torch.rand(10, 2, 3) * 2).sum().backward()
    grads = {n: p.grad.clone() for n, p in lif.named_parameters()}
    lif.half()
    for name, p in lif.named_parameters():
        assert p.dtype == p.grad.dtype == torch.float32 and torch.equal(p.grad, grads[name]), name
    torch.optim.Adam(lif.parameters(), lr=0.1).step()
    lif(torch.rand(10, 2, 3, dtype=torch.float16)).float().sum().backward()  # accumulates into float32 grads
    assert all(p.grad.dtype == torch.float32 for p in lif.parameters())
