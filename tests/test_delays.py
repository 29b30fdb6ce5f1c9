"""DelayedLinear (DCLS-style learnable delays) and DelaySchedule against plain references."""
import math
import warnings

import pytest
import torch
from torch import nn

from snnlab.core import delays as delays_mod
from snnlab.core.delays import (
    DelayedLinear,
    DelaySchedule,
    delayed_linear,
    delayed_linear_reference,
)

D64 = torch.float64


def _layer(I=5, O=4, K=7, seed=0, **kw):
    return DelayedLinear(I, O, K, seed=seed, dtype=D64, **kw)


def _x(T=11, B=3, I=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, B, I, generator=g, dtype=D64)


def _loop_rounded(x, W, D, bias=None):
    """y[t, j] = sum_i W_ij x[t - d_ij, i], one time step and synapse at a time."""
    T, B, I = x.shape
    O = W.shape[0]
    y = torch.zeros(T, B, O, dtype=x.dtype)
    for t in range(T):
        for j in range(O):
            for i in range(I):
                d = int(D[j, i])
                if t - d >= 0:
                    y[t, :, j] += W[j, i] * x[t - d, :, i]
    if bias is not None:
        y = y + bias
    return y


# ----------------------------------------------------------------------------- forward


@pytest.mark.parametrize("sigma", [1e-3, 0.3, 0.5, 1.7, 3.5, 12.0])
@pytest.mark.parametrize("shape", [(11, 3, 5, 4, 7), (4, 2, 3, 6, 9), (20, 1, 2, 3, 1), (9, 2, 6, 2, 3)])
def test_forward_matches_reference(sigma, shape):
    T, B, I, O, K = shape
    layer = _layer(I, O, K, seed=sum(shape))
    layer.sigma = sigma
    x = _x(T, B, I, seed=T + K)
    ref = delayed_linear_reference(x, layer.weight, layer.positions, sigma, K)
    torch.testing.assert_close(layer(x), ref, rtol=1e-10, atol=1e-10)
    for method in ("fft", "taps"):
        y = delayed_linear(x, layer.weight, layer.positions, sigma, K, method=method)
        torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)


def test_bias_and_extra_batch_dims():
    layer = _layer(bias=True)
    x = _x()
    ref = delayed_linear_reference(x, layer.weight, layer.positions, layer.sigma, 7) + layer.bias
    torch.testing.assert_close(layer(x), ref)
    x4 = x.reshape(11, 3, 1, 5).expand(11, 3, 2, 5)
    y4 = layer(x4)
    assert y4.shape == (11, 3, 2, 4)
    torch.testing.assert_close(y4[:, :, 1], ref)


def test_positions_are_clamped_in_forward():
    layer = _layer(K=6)
    with torch.no_grad():
        layer.positions[0, 0] = -3.0
        layer.positions[1, 1] = 40.0
    x = _x()
    clamped = layer.positions.detach().clamp(0, 5)
    ref = delayed_linear_reference(x, layer.weight, clamped, layer.sigma, 6)
    torch.testing.assert_close(layer(x), ref)
    layer.clamp_positions_()
    assert layer.positions.min() >= 0 and layer.positions.max() <= 5
    assert isinstance(layer.positions, nn.Parameter)


def test_single_synapse_tiny_sigma_is_pure_shift():
    layer = DelayedLinear(1, 1, 10, dtype=D64, sigma=1e-3)
    with torch.no_grad():
        layer.weight.fill_(2.0)
        layer.positions.fill_(3.0)
    x = torch.arange(1, 9, dtype=D64).reshape(8, 1, 1)
    y = layer(x).flatten()
    expected = torch.tensor([0, 0, 0, 2, 4, 6, 8, 10], dtype=D64)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("tap_dim", [0, 1, 2, -1, -2, -3])
def test_gaussian_kernel_tap_axis_anywhere_is_the_same_kernel_contiguous(tap_dim):
    p = torch.rand(3, 4, generator=torch.Generator().manual_seed(5), dtype=D64) * 8 - 0.5  # some clamped
    last = delays_mod.gaussian_delay_kernel(p, 1.3, 7)  # [3, 4, K]
    g = delays_mod.gaussian_delay_kernel(p, 1.3, 7, tap_dim=tap_dim)
    assert g.is_contiguous() and g.shape[tap_dim] == 7
    torch.testing.assert_close(g, last.movedim(-1, tap_dim), rtol=1e-14, atol=1e-15)  # a softmax over another axis
    torch.testing.assert_close(last.sum(-1), torch.ones(3, 4, dtype=D64))


@pytest.mark.parametrize("tap_dim", [3, -4])
def test_gaussian_kernel_bad_tap_dim(tap_dim):
    with pytest.raises(ValueError, match=r"tap_dim must be in \[-3, 2\].*\(3, 4\).*got"):
        delays_mod.gaussian_delay_kernel(torch.zeros(3, 4), 1.0, 5, tap_dim=tap_dim)


def test_causal_no_lookahead():
    layer = _layer(K=5)
    layer.sigma = 2.0
    x = _x(T=12)
    y1 = layer(x)
    x2 = x.clone()
    x2[7:] = torch.randn(5, 3, 5, dtype=D64)
    y2 = layer(x2)
    torch.testing.assert_close(y1[:7], y2[:7], rtol=0, atol=1e-12)
    assert not torch.allclose(y1[7:], y2[7:])


def test_float32_and_spike_inputs():
    layer = DelayedLinear(6, 3, 8, seed=0)
    x = (torch.rand(15, 2, 6, generator=torch.Generator().manual_seed(0)) < 0.3)
    y = layer(x)  # bool spikes are cast to the weight dtype
    assert y.dtype == torch.float32 and y.shape == (15, 2, 3)
    ref = delayed_linear_reference(x.double(), layer.weight.double(), layer.positions.double(), layer.sigma, 8)
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("method", ["fft", "taps"])
@pytest.mark.parametrize("sigma", [0.6, 4.0])
def test_gradcheck(method, sigma):
    g = torch.Generator().manual_seed(3)
    K = 6
    x = torch.randn(7, 2, 3, generator=g, dtype=D64, requires_grad=True)
    W = torch.randn(2, 3, generator=g, dtype=D64, requires_grad=True)
    p = (0.3 + torch.rand(2, 3, generator=g, dtype=D64) * (K - 1.6)).requires_grad_()
    fn = lambda x, W, p: delayed_linear(x, W, p, sigma, K, method=method)
    assert torch.autograd.gradcheck(fn, (x, W, p))


@pytest.mark.parametrize("sigma", [0.5, 1.3, 6.0])
def test_grads_match_reference_autograd(sigma):
    layer = _layer(I=4, O=3, K=8, seed=5)
    layer.sigma = sigma
    with torch.no_grad():  # keep positions away from the clamp boundary
        layer.positions.clamp_(0.2, 6.8)
    x = _x(T=10, B=2, I=4).requires_grad_()
    gy = _x(T=10, B=2, I=3, seed=9)
    (layer(x) * gy).sum().backward()
    got = [x.grad.clone(), layer.weight.grad.clone(), layer.positions.grad.clone()]
    xr = x.detach().clone().requires_grad_()
    Wr = layer.weight.detach().clone().requires_grad_()
    pr = layer.positions.detach().clone().requires_grad_()
    (delayed_linear_reference(xr, Wr, pr, sigma, 8) * gy).sum().backward()
    for a, b in zip(got, [xr.grad, Wr.grad, pr.grad]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    assert layer.positions.grad.abs().sum() > 0


@pytest.mark.parametrize("method", ["taps", "fft", "auto"])
def test_zero_weights_still_get_their_gradient(method):
    """W = 0 makes every tap of W * G zero; the weight gradient lives on G, not on W * G (a zero-initialised
    layer on the taps path used to get a zero weight gradient and never learned)."""
    g = torch.Generator().manual_seed(4)
    x = torch.rand(20, 2, 3, generator=g, dtype=D64)
    W = torch.zeros(2, 3, dtype=D64, requires_grad=True)
    p = torch.tensor([[0.0, 1.0, 2.0], [4.0, 2.0, 0.0]], dtype=D64, requires_grad=True)
    gy = torch.randn(20, 2, 2, generator=g, dtype=D64)
    (delayed_linear(x, W, p, 0.1, 5, method=method) * gy).sum().backward()
    Wr, pr = W.detach().clone().requires_grad_(), p.detach().clone().requires_grad_()
    (delayed_linear_reference(x, Wr, pr, 0.1, 5) * gy).sum().backward()
    torch.testing.assert_close(W.grad, Wr.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(p.grad, pr.grad, rtol=1e-9, atol=1e-12)
    assert (W.grad.abs() > 1e-3).all()


@pytest.mark.parametrize("learn_delays", [True, False])
def test_an_empty_sequence_gives_an_empty_output(learn_delays):
    layer = _layer(I=5, O=4, K=7, learn_delays=learn_delays)
    x = torch.zeros(0, 2, 5, dtype=D64, requires_grad=True)
    y = layer(x)
    assert y.shape == (0, 2, 4)
    y.sum().backward()  # nothing to learn from no steps, but no error either
    assert not layer.weight.grad.any()


# ----------------------------------------------------------------------------- rounded


def test_round_delays_exact_loop():
    layer = _layer(I=5, O=4, K=9, seed=2, bias=True)
    before = layer.delays.clone()
    layer.round_delays()
    assert layer.rounded
    assert not isinstance(layer.positions, nn.Parameter)
    assert all(n != "positions" for n, _ in layer.named_parameters())
    D = layer.delays
    assert D.dtype == torch.long and D.shape == (4, 5)
    assert torch.equal(D, before)
    assert D.min() >= 0 and D.max() <= 8
    x = _x(T=14, I=5)
    y = layer(x)
    torch.testing.assert_close(y, _loop_rounded(x, layer.weight, D, layer.bias), rtol=0, atol=1e-12)
    layer.sigma = 5.0  # sigma no longer matters once rounded
    torch.testing.assert_close(layer(x), y, rtol=0, atol=0)
    y.sum().backward()
    assert layer.weight.grad is not None and layer.positions.grad is None


def test_rounded_delays_are_round_of_clamped_positions():
    layer = _layer(K=6)
    with torch.no_grad():
        layer.positions[0, 0] = 2.4
        layer.positions[0, 1] = 2.6
        layer.positions[1, 0] = -1.0
        layer.positions[1, 1] = 9.0
    layer.round_delays()
    assert layer.delays[0, 0] == 2 and layer.delays[0, 1] == 3
    assert layer.delays[1, 0] == 0 and layer.delays[1, 1] == 5


def test_rounded_impulse_is_delayed_by_d():
    layer = DelayedLinear(3, 2, 6, seed=4, dtype=D64)
    with torch.no_grad():
        layer.positions.copy_(torch.tensor([[0.2, 2.8, 5.0], [4.4, 1.0, 3.6]], dtype=D64))
        layer.weight.fill_(1.0)
    layer.round_delays()
    D = layer.delays
    T, t0 = 12, 2
    for i in range(3):
        x = torch.zeros(T, 1, 3, dtype=D64)
        x[t0, 0, i] = 1.0
        y = layer(x)[:, 0]
        for j in range(2):
            expected = torch.zeros(T, dtype=D64)
            expected[t0 + int(D[j, i])] = 1.0
            assert torch.equal(y[:, j], expected)


def test_round_then_state_dict_roundtrip():
    a = _layer(seed=7)
    a.round_delays()
    b = _layer(seed=8)
    b.load_state_dict(a.state_dict())
    assert b.rounded and torch.equal(a.delays, b.delays)
    x = _x()
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_state_dict_keeps_sigma_so_a_reloaded_layer_computes_the_same_function():
    a = _layer(seed=7)
    a.sigma = 0.7
    b = _layer(seed=8)
    b.load_state_dict(a.state_dict())
    assert b.sigma == 0.7
    x = _x()
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
    assert a.half().state_dict()["_extra_state"].dtype == D64  # not cast with the module


def test_state_dict_saved_before_sigma_was_kept_still_loads():
    old = {k: v for k, v in _layer(seed=7).state_dict().items() if k != "_extra_state"}
    b = _layer(seed=8)
    b.sigma = 2.0
    b.load_state_dict(old)  # strict: no missing key
    assert b.sigma == 2.0 and torch.equal(b.weight, old["weight"])


def test_loading_takes_the_saved_form_rounded_or_learnable():
    rounded, learnable = _layer(seed=7).round_delays(), _layer(seed=9)
    b = _layer(seed=8)
    b.load_state_dict(rounded.state_dict())
    assert b.rounded and "positions" not in dict(b.named_parameters()) and "positions" in dict(b.named_buffers())
    with pytest.warns(UserWarning, match="build the optimiser after loading"):  # nn-conventions probe: silently
        b.load_state_dict(learnable.state_dict())  # e.g. back to an earlier checkpoint   # untrained before
    assert not b.rounded and isinstance(b.positions, nn.Parameter)
    torch.testing.assert_close(b.positions, learnable.positions, rtol=0, atol=0)
    (b(_x()) ** 2).sum().backward()
    assert b.positions.grad is not None and bool(b.positions.grad.abs().sum() > 0)
    fixed = DelayedLinear(5, 4, 7, learn_delays=False, dtype=D64)
    with pytest.warns(UserWarning, match="positions become a new Parameter"):
        fixed.load_state_dict(learnable.state_dict())
    assert fixed.learn_delays and "learn_delays=True, rounded=False" in repr(fixed)
    with warnings.catch_warnings():  # taking the rounded form leaves no Parameter untrained: nothing to say
        warnings.simplefilter("error")
        fixed.load_state_dict(rounded.state_dict())


# ----------------------------------------------------------------------------- fixed delays


def test_fixed_delays_buffer_no_grad():
    layer = DelayedLinear(5, 4, 7, learn_delays=False, seed=0, dtype=D64)
    assert "positions" in dict(layer.named_buffers())
    assert "positions" not in dict(layer.named_parameters())
    assert layer.rounded
    assert torch.equal(layer.positions, layer.positions.round())
    assert layer.positions.min() >= 0 and layer.positions.max() <= 6
    assert len(torch.unique(layer.delays)) > 1
    x = _x()
    y = layer(x)
    torch.testing.assert_close(y, _loop_rounded(x, layer.weight, layer.delays), rtol=0, atol=1e-12)
    y.sum().backward()
    assert not layer.positions.requires_grad and layer.positions.grad is None
    assert layer.weight.grad is not None


def test_seed_is_reproducible_and_init_ranges():
    a, b = DelayedLinear(30, 20, 10, seed=1), DelayedLinear(30, 20, 10, seed=1)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.positions, b.positions)
    assert a.positions.min() >= 0 and a.positions.max() <= 9
    assert a.weight.abs().max() <= 1 / math.sqrt(30)
    assert a.sigma == 5.0
    assert "max_delay=10" in repr(a) and "sigma=5" in repr(a)
    assert torch.all(DelayedLinear(3, 2, 5, init_delay="zero").positions == 0)


# ----------------------------------------------------------------------------- schedule


@pytest.mark.parametrize("kind", ["linear", "cosine", "exponential"])
def test_schedule_values_and_monotone(kind):
    layer = DelayedLinear(3, 2, 20)
    sched = DelaySchedule(layer, total_epochs=10, kind=kind)
    assert layer.sigma == pytest.approx(10.0)
    assert sched.sigma_at(0) == pytest.approx(10.0)
    assert sched.sigma_at(10) == pytest.approx(0.5)
    assert sched.sigma_at(9) == pytest.approx(0.5)  # the last training epoch already runs at sigma_end
    assert sched.sigma_at(6) > 0.5                    # annealing over the first 3/4 of the epochs
    values = [layer.sigma]
    for _ in range(13):
        values.append(sched.step())
        assert layer.sigma == values[-1]
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:]))
    assert values[0] > values[5] > values[10]
    assert values[10:] == pytest.approx([0.5] * 4)


@pytest.mark.parametrize("epochs,expected", [(1, [0.5]), (2, [4.5, 0.5]), (3, [4.5, 2.5, 0.5])])
def test_the_last_epoch_always_trains_at_sigma_end(epochs, expected):
    sched = DelaySchedule(DelayedLinear(2, 2, max_delay=9), total_epochs=epochs)
    assert [sched.sigma_at(e) for e in range(epochs)] == pytest.approx(expected)


def test_schedule_finds_layers_in_sequential_and_state_dict():
    l1, l2 = DelayedLinear(4, 6, 10), DelayedLinear(6, 2, 30)
    model = nn.Sequential(l1, nn.ReLU(), nn.Sequential(l2))
    sched = DelaySchedule(model, total_epochs=4)
    assert sched.layers == [l1, l2]
    assert (l1.sigma, l2.sigma) == (5.0, 15.0)
    sched.step()  # 4 epochs: sigma reaches its end at epoch round(0.75 * 3) = 2
    assert l1.sigma == pytest.approx(2.75) and l2.sigma == pytest.approx(7.75)
    state = sched.state_dict()
    l1.sigma = l2.sigma = 1.0
    other = DelaySchedule(model, total_epochs=4)
    other.load_state_dict(state)
    assert other.epoch == 1 and l1.sigma == pytest.approx(2.75)
    sched.step()
    assert l1.sigma == l2.sigma == pytest.approx(0.5)
    fixed = DelaySchedule([l1, l2], total_epochs=3, sigma_start=3.0, sigma_end=1.0, anneal_fraction=1.0)
    assert l1.sigma == l2.sigma == 3.0
    fixed.step()
    assert l1.sigma == l2.sigma == pytest.approx(2.0)
    with pytest.raises(ValueError, match="anneal_fraction"):
        DelaySchedule(l1, total_epochs=3, anneal_fraction=0.0)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        (dict(in_features=3, out_features=2, max_delay=0), ValueError, "max_delay"),
        (dict(in_features=0, out_features=2, max_delay=3), ValueError, "in_features"),
        (dict(in_features=3, out_features=-1, max_delay=3), ValueError, "out_features"),
        (dict(in_features=3.5, out_features=2, max_delay=3), TypeError, "in_features"),
        (dict(in_features=3, out_features=2, max_delay=3, sigma=0.0), ValueError, "sigma"),
        (dict(in_features=3, out_features=2, max_delay=3, sigma=-1.0), ValueError, "sigma"),
        (dict(in_features=3, out_features=2, max_delay=3, init_delay="gauss"), ValueError, "init_delay"),
        (dict(in_features=3, out_features=2, max_delay=3, backend="cuda"), ValueError, "backend"),
    ],
)
def test_bad_constructor_args(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        DelayedLinear(**kwargs)


def test_bad_sigma_assignment():
    layer = DelayedLinear(3, 2, 4)
    for bad in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma"):
            layer.sigma = bad


def test_bad_forward_inputs():
    layer = DelayedLinear(5, 2, 4)
    with pytest.raises(TypeError, match="torch.Tensor"):
        layer([[1.0]])
    with pytest.raises(ValueError, match="time-major"):
        layer(torch.zeros(10, 5))
    with pytest.raises(ValueError, match="expects 5"):
        layer(torch.zeros(10, 2, 4))
    with pytest.raises(ValueError, match="permute"):
        layer(torch.zeros(8, 5, 10))  # batch-first-looking
    x = torch.zeros(6, 2, 5)
    x[3, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        layer(x)


def test_bad_schedule_args():
    layer = DelayedLinear(3, 2, 4)
    with pytest.raises(ValueError, match="total_epochs"):
        DelaySchedule(layer, total_epochs=0)
    with pytest.raises(ValueError, match="sigma_end"):
        DelaySchedule(layer, total_epochs=3, sigma_end=0)
    with pytest.raises(ValueError, match="sigma_start"):
        DelaySchedule(layer, total_epochs=3, sigma_start=-1)
    with pytest.raises(ValueError, match="kind"):
        DelaySchedule(layer, total_epochs=3, kind="step")
    with pytest.raises(ValueError, match="no DelayedLinear"):
        DelaySchedule(nn.Linear(2, 2), total_epochs=3)
    with pytest.raises(ValueError, match="method"):
        delayed_linear(torch.zeros(3, 1, 3), layer.weight, layer.positions, 1.0, 4, method="conv")


def test_triton_backend_dispatch(monkeypatch):
    monkeypatch.setattr(delays_mod, "_TRITON_IMPL", None)
    monkeypatch.setattr(delays_mod, "_TRITON_ERROR", "ModuleNotFoundError: no module")
    with pytest.raises(RuntimeError, match="triton"):
        DelayedLinear(3, 2, 4, backend="triton")
    layer = DelayedLinear(3, 2, 4, backend="auto")
    assert layer(torch.zeros(5, 1, 3)).shape == (5, 1, 2)  # CPU / no triton: torch path

    calls = []

    def fake(x, weight, pos, sigma, max_delay, rounded, autocast="asked again"):
        calls.append((rounded, autocast))  # autocast=None: the layer cast the operands already
        return torch.zeros(x.shape[0], x.shape[1], weight.shape[0])

    monkeypatch.setattr(delays_mod, "_TRITON_IMPL", fake)
    monkeypatch.setattr(delays_mod, "_TRITON_ERROR", None)
    layer = DelayedLinear(3, 2, 4, backend="triton", bias=True)
    y = layer(torch.ones(5, 1, 3))
    torch.testing.assert_close(y, layer.bias.expand(5, 1, 2))
    layer.round_delays()
    layer(torch.ones(5, 1, 3))
    assert calls == [(False, None), (True, None)]


# ----------------------------------------------------------------------------- learning


def test_single_synapse_learns_target_delay():
    torch.manual_seed(0)
    K, target = 16, 8
    layer = DelayedLinear(1, 1, K, sigma=2.0, init_delay="zero", seed=0)
    sched = DelaySchedule(layer, total_epochs=30, sigma_start=2.0, sigma_end=0.5)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.positions.fill_(2.0)
    x = (torch.rand(60, 4, 1) < 0.3).float()
    teacher = DelayedLinear(1, 1, K, learn_delays=False)
    with torch.no_grad():
        teacher.weight.fill_(1.0)
        teacher.positions.fill_(float(target))
    with torch.no_grad():
        y_target = teacher(x)
    opt = torch.optim.Adam([layer.positions], lr=0.2)
    start = abs(layer.positions.item() - target)
    for _ in range(40):
        opt.zero_grad()
        loss = ((layer(x) - y_target) ** 2).mean()
        loss.backward()
        opt.step()
        layer.clamp_positions_()
        sched.step()
    end = abs(layer.positions.item() - target)
    assert end < 0.25 * start, (start, end)
    layer.round_delays()
    assert int(layer.delays) == target


def test_conv1d_and_per_delay_products_compute_the_same_function_and_gradients(monkeypatch):
    """The CPU's conv1d path (rounded delays, and the taps method) against the shifted products it replaces."""
    from snnlab.core import delays as dm

    g = torch.Generator().manual_seed(3)
    T, B, I, O, K = 40, 128, 6, 5, 9  # 5120 rows: conv1d is taken
    x = (torch.rand(T, B, I, generator=g) < 0.3).double()  # float64: both sums are exact to ~1e-12
    W, P = torch.randn(O, I, generator=g).double(), torch.rand(O, I, generator=g).double() * (K - 1)
    D = torch.randint(0, K, (O, I), generator=g)
    D[0, 0] = T + 5  # past the end of the sequence: delivers nothing
    bias = torch.randn(O, generator=g).double()

    def run(fn):
        ins = [t.clone().requires_grad_(True) for t in (x, W, P, bias)]
        y = fn(*ins)
        return (y, *torch.autograd.grad(y.square().sum(), ins, allow_unused=True))

    rounded = lambda a, b, c, d: dm.delayed_linear_rounded(a, b, D, d)  # noqa: E731
    gauss = lambda a, b, c, d: dm.delayed_linear(a, b, c, 0.7, K, d, method="taps")  # noqa: E731
    assert dm._conv1d_wins(x, K, K, O * I * K)
    fast = [run(rounded), run(gauss)]
    monkeypatch.setattr(dm, "_CONV1D_MIN_ROWS", 10**9)  # the per-delay products
    assert not dm._conv1d_wins(x, K, K, O * I * K)
    slow = [run(rounded), run(gauss)]
    for a_all, b_all in zip(fast, slow):
        for a, b in zip(a_all, b_all):
            if a is None:
                assert b is None
            else:
                torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-9)


def test_conv1d_is_taken_only_where_it_was_measured_to_win():
    from snnlab.core.delays import _conv1d_wins

    shd = torch.zeros(100, 256, 140)
    assert _conv1d_wins(shd, 25, 25, 256 * 140 * 25)
    assert not _conv1d_wins(shd, 5, 25, 256 * 140 * 25)  # few of the taps used
    assert not _conv1d_wins(torch.zeros(100, 2, 140), 25, 25, 256 * 140 * 25)  # 200 rows
    assert not _conv1d_wins(torch.zeros(250, 32, 700), 250, 250, 1024 * 700 * 250)  # a 179M kernel
    assert not _conv1d_wins(shd.half(), 25, 25, 256 * 140 * 25)


def test_auto_counts_the_cpu_conv1d_when_choosing_taps_or_fft():
    """Review: on the CPU taps run as one conv1d, 2-2.5x faster than auto's FFT at batch 64 (23 vs 52 ms at
    max_delay 8, 61 vs 81 ms at 25), while the FFT still wins at batch 256 (the SHD preset)."""
    from snnlab.core.delays import _choose_method

    kernel = 256 * 140 * 25
    assert _choose_method(100, 25, torch.zeros(100, 64, 140), kernel) == "taps"
    assert _choose_method(100, 8, torch.zeros(100, 64, 140), 256 * 140 * 8) == "taps"
    assert _choose_method(100, 25, torch.zeros(100, 256, 140), kernel) == "fft"
    assert _choose_method(100, 25) == "fft"  # without the sizes (and on a GPU): the GEMM count
    # half precision is computed in float32: costed as float32 (it kept the GEMM count, "fft", before)
    assert _choose_method(100, 25, torch.zeros(100, 64, 140).half(), kernel) == "taps"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fft_path_runs_under_autocast(dtype):
    """nn-conventions probe: under torch.autocast the stacked complex matmul came back in bfloat16 (RuntimeError in
    torch.complex) or float16 (MKL FFT refused Half), so the layer failed whenever auto chose the FFT."""
    layer = DelayedLinear(4, 3, max_delay=5)
    x = torch.rand(30, 2, 4)
    args = (layer.weight, layer.positions, layer.sigma, layer.max_delay)
    with torch.autocast("cpu", dtype=dtype):
        y = delayed_linear(x, *args, method="fft")
        y.sum().backward()
        taps = delayed_linear(x, *args, method="taps").detach()
    # autocast's policy for products (tests/test_delays_precision.py): its dtype out, summed in float32 from the cast
    # x and weight, the same on both methods
    assert y.dtype == dtype and taps.dtype == dtype
    torch.testing.assert_close(y, taps, rtol=torch.finfo(dtype).eps, atol=1e-6)
    assert layer.positions.grad is not None and torch.isfinite(layer.positions.grad).all()


def test_functional_call_keeps_the_training_form():
    """Reviewer: with the form read from the positions' kind, torch.func.functional_call (which passes plain tensors
    for parameters) made a training-form layer run the integer-delay path: other outputs, zero position gradient."""
    layer = DelayedLinear(3, 2, max_delay=6, seed=0, dtype=D64)
    x = torch.rand(12, 2, 3, dtype=D64)
    params = {k: v.detach().clone().requires_grad_() for k, v in layer.named_parameters()}
    out = torch.func.functional_call(layer, params, (x,))
    torch.testing.assert_close(out, layer(x), rtol=0, atol=0)
    out.square().sum().backward()
    assert params["positions"].grad.abs().sum() > 0 and not layer.rounded
    import copy
    import pickle

    rounded = copy.deepcopy(layer).round_delays()
    assert rounded.rounded and pickle.loads(pickle.dumps(rounded)).rounded and not copy.deepcopy(layer).rounded


@pytest.mark.parametrize("method", ["fft", "taps"])
def test_an_empty_batch_gives_an_empty_output_and_zero_gradients(method):
    """Differential-fuzz finding: MKL's FFT raised on a batch of 0 samples (the taps path, the rounded form and every
    neuron backend accept it)."""
    layer = DelayedLinear(4, 3, max_delay=8)
    x = torch.rand(20, 0, 4, requires_grad=True)
    y = delayed_linear(x, layer.weight, layer.positions, layer.sigma, 8, method=method)
    assert y.shape == (20, 0, 3)
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x)) and torch.equal(layer.weight.grad, torch.zeros_like(layer.weight))
    assert layer(torch.rand(20, 0, 4)).shape == (20, 0, 3)  # method="auto" takes the FFT here


@pytest.mark.parametrize("rounded", [True, False])
def test_no_tap_inside_the_sequence_still_gives_the_input_a_zero_gradient(rounded):
    """Every delay past the sequence (rounded) or a Gaussian that underflows on the taps < T: the output is zeros,
    and the input's gradient zeros (it was None, while the Triton path gave zeros)."""
    layer = (DelayedLinear(3, 2, max_delay=9, learn_delays=False, init_delay="center") if rounded
             else DelayedLinear(3, 2, max_delay=9, init_delay="center", sigma=0.01))
    x = torch.rand(3, 2, 3, requires_grad=True)  # T = 3 < every delay (4)
    y = layer(x)
    assert torch.equal(y, torch.zeros(3, 2, 2))
    y.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.zeros_like(x))


def test_a_one_tap_layer_takes_a_sequence_of_no_steps():
    """Probe finding: max_delay=1 on T=0 hung (the FFT size search looped forever on 0)."""
    for rounded in (False, True):
        layer = DelayedLinear(3, 4, max_delay=1)
        if rounded:
            layer.round_delays()
        assert layer(torch.rand(0, 2, 3)).shape == (0, 2, 4)


@pytest.mark.parametrize("rounded", [False, True])
def test_stacked_torch_path_layers_run_under_vmap_as_a_loop(rounded):
    """Before: vmap over stacked DelayedLinear layers (batched positions or delays) on the torch path failed in the
    tap selection ("vmap over aten::nonzero" / "aten::_unique2"); the Triton path had rules for it."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    layers = [DelayedLinear(5, 3, max_delay=4, backend="torch", seed=i) for i in range(3)]
    if rounded:
        for layer in layers:
            layer.round_delays()
    x = torch.rand(6, 2, 5, generator=torch.Generator().manual_seed(0))
    params, buffers = stack_module_state(layers)
    base = copy.deepcopy(layers[0]).to("meta")
    y = vmap(lambda p, b: functional_call(base, (p, b), (x,)))(params, buffers)
    # (the batched matrix products may sum in another order than one layer's: equal to float32 rounding, bit for bit
    # only on some CPUs)
    torch.testing.assert_close(y, torch.stack([layer(x) for layer in layers]), rtol=1e-6, atol=1e-7)


def test_per_sample_gradients_of_the_torch_path_match_one_sample_at_a_time():
    from torch.func import functional_call, grad, vmap

    layer = DelayedLinear(5, 3, max_delay=4, backend="torch", seed=0)
    params = {k: v.detach() for k, v in layer.named_parameters()}
    x = torch.rand(6, 2, 5, generator=torch.Generator().manual_seed(1))

    def loss(p, xb):
        return functional_call(layer, p, (xb.unsqueeze(1),)).square().sum()

    per_sample = vmap(grad(loss), in_dims=(None, 1))(params, x)
    for b in range(2):
        one = grad(loss)(params, x[:, b])
        for k in one:
            torch.testing.assert_close(per_sample[k][b], one[k], rtol=1e-6, atol=1e-6)
