"""Options and dtypes the core layers took silently (tester reports, /tmp/tester1/bug_*.py):

- ``DelayedLinear`` cast ``x`` to its weight's dtype first: a float64 input to a float32 layer came back float32
  (rounded), bfloat16 input came back float32, a float16 layer rounded float32 input to float16; its docstring and
  the functional form keep ``x``'s dtype;
- ``DelayedLinear(seed=..., generator=...)`` ignored ``seed``; a ``backend`` set after construction was never checked;
- ``LIF`` (and ``ALIF`` / ``RecurrentLIF``) options set after construction skipped the constructor's checks:
  ``max_spikes = 0`` ran as unlimited, ``noise_scale = -1`` sampled, ``surrogate = "triangle"`` failed deep in forward.
"""
from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

import snnlab as sl
from snnlab.core.delays import DelayedLinear, delayed_linear, delayed_linear_rounded

D64 = torch.float64


def _rounded_reference(x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor) -> torch.Tensor:
    """``y[t, b, j] = sum_i W_ji x[t - d_ji, b, i]`` in float64, by loops (x ``[T, B, in]``)."""
    x, weight = x.double(), weight.double()
    T, B, _ = x.shape
    y = torch.zeros(T, B, weight.shape[0], dtype=D64)
    for j in range(weight.shape[0]):
        for i in range(weight.shape[1]):
            d = int(delays[j, i])
            if d < T:
                y[d:, :, j] += weight[j, i] * x[: T - d, :, i]
    return y


# ----------------------------------------------------------------------------------------- DelayedLinear dtypes


@pytest.mark.parametrize("T", [7, 60])  # the per-delay products and (CPU, many rows: no) the conv1d
def test_float64_input_to_a_float32_layer_is_computed_and_returned_in_float64(T):
    layer = DelayedLinear(3, 2, max_delay=5, seed=0).round_delays()
    x = torch.rand(T, 2, 3, dtype=D64, generator=torch.Generator().manual_seed(1)) + 1e-9  # not float32 numbers
    y = layer(x)
    assert y.dtype == D64
    ref = _rounded_reference(x, layer.weight, layer.delays)
    torch.testing.assert_close(y, ref, rtol=1e-13, atol=1e-13)  # float32-rounded x would be ~1e-8 off
    assert (layer(x.float()).double() - ref).abs().max() > 1e-10  # (the test tells the two apart)


@pytest.mark.parametrize("rounded", [False, True])
def test_every_torch_path_returns_the_inputs_dtype(rounded):
    layer = DelayedLinear(4, 3, max_delay=6, seed=2, bias=True)
    if rounded:
        layer.round_delays()
    x = torch.randn(9, 2, 4, generator=torch.Generator().manual_seed(3))
    for dtype in (D64, torch.float32, torch.bfloat16, torch.float16):
        y = layer(x.to(dtype))
        assert y.dtype == dtype, dtype
        ref = layer.double()(x.to(dtype).double())  # the same numbers in float64
        layer.float()
        tol = 1e-6 if dtype in (D64, torch.float32) else torch.finfo(dtype).eps * (ref.abs().max().item() + 1)
        torch.testing.assert_close(y.double(), ref, rtol=0, atol=tol)


def test_float32_input_to_a_float16_layer_is_not_rounded_to_float16():
    layer = DelayedLinear(3, 2, max_delay=4, seed=0, dtype=torch.float16).round_delays()
    x = torch.full((5, 1, 3), 1.0 + 2**-12)  # exact in float32, not in float16
    y = layer(x)
    assert y.dtype == torch.float32
    ref = _rounded_reference(x, layer.weight, layer.delays)
    torch.testing.assert_close(y.double(), ref, rtol=1e-6, atol=1e-6)
    assert (_rounded_reference(x.half(), layer.weight, layer.delays) - ref).abs().max() > 1e-4


def test_the_functional_forms_keep_the_inputs_dtype_with_a_wider_bias():
    g = torch.Generator().manual_seed(5)
    w, b = torch.randn(2, 3, generator=g), torch.randn(2, generator=g)
    p = torch.rand(2, 3, generator=g) * 3
    x = torch.randn(6, 2, 3, generator=g).bfloat16()
    for method in ("fft", "taps"):
        y = delayed_linear(x, w, p, 1.0, 4, bias=b, method=method)
        assert y.dtype == torch.bfloat16
        torch.testing.assert_close(y.float(), delayed_linear(x.float(), w, p, 1.0, 4, bias=b, method=method),
                                   rtol=2**-7, atol=1e-2)
    assert delayed_linear_rounded(x, w, p.round().long(), bias=b).dtype == torch.bfloat16


def test_integer_and_bool_input_is_taken_in_the_layers_dtype():
    layer = DelayedLinear(3, 2, max_delay=4, seed=0, dtype=D64)
    spikes = torch.rand(6, 2, 3, generator=torch.Generator().manual_seed(0)) < 0.5
    for x in (spikes, spikes.long()):
        y = layer(x)
        assert y.dtype == D64
        torch.testing.assert_close(y, layer(spikes.double()), rtol=0, atol=0)


def test_a_float64_layer_returns_a_float32_inputs_dtype_computed_in_float64():
    layer = DelayedLinear(3, 2, max_delay=4, seed=1, dtype=D64).round_delays()
    x = torch.rand(6, 2, 3, generator=torch.Generator().manual_seed(2))
    y = layer(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, _rounded_reference(x, layer.weight, layer.delays).float(), rtol=0, atol=0)


def test_autocast_still_gives_its_dtype():
    layer = DelayedLinear(3, 2, max_delay=4, seed=1, bias=True)
    x = torch.rand(6, 2, 3, dtype=D64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert layer(x).dtype == torch.bfloat16 and layer(x.float()).dtype == torch.bfloat16
        assert DelayedLinear(3, 2, max_delay=4, dtype=D64)(x.float()).dtype == torch.float32  # float64 layer: off


def test_the_triton_backend_keeps_the_inputs_dtype_and_refuses_float64():
    triton_device = pytest.importorskip("triton_device")
    tl = pytest.importorskip("triton.language")
    ready, why = triton_device.kernel_module_ready(tl, "snnlab.kernels.delays_triton")
    if not ready:
        pytest.skip(why)
    device = triton_device.DEVICE
    x = torch.randn(6, 2, 3, generator=torch.Generator().manual_seed(0)).to(device)
    for kw in (dict(), dict(dtype=torch.float16)):
        fused = DelayedLinear(3, 2, max_delay=4, seed=0, bias=True, backend="triton", **kw).to(device)
        plain = DelayedLinear(3, 2, max_delay=4, seed=0, bias=True, backend="torch", **kw).to(device)
        for dtype in (torch.float32, torch.bfloat16):
            y = fused(x.to(dtype))
            assert y.dtype == dtype
            torch.testing.assert_close(y.float(), plain(x.to(dtype)).float(), rtol=1e-2, atol=1e-2)
    with pytest.raises(TypeError, match=r"DelayedLinear: backend='triton' .* got the input in torch.float64"):
        DelayedLinear(3, 2, max_delay=4, backend="triton").to(device)(x.double())
    with pytest.raises(TypeError, match=r"DelayedLinear: backend='triton' .* got the weight in torch.float64"):
        DelayedLinear(3, 2, max_delay=4, backend="triton", dtype=D64).to(device)(x)


def test_auto_takes_triton_only_where_every_operand_has_a_dtype_it_runs(monkeypatch):
    import types

    from snnlab.core import delays as delays_mod

    monkeypatch.setattr(delays_mod, "_triton_impl", lambda: object())
    on_cuda = types.SimpleNamespace(is_cuda=True, dtype=torch.float32)
    assert DelayedLinear(3, 2, max_delay=4)._use_triton(on_cuda)
    assert not DelayedLinear(3, 2, max_delay=4, dtype=D64)._use_triton(on_cuda)  # x is not cast to float64 now


# -------------------------------------------------------------------------------- DelayedLinear arguments


def test_seed_and_generator_together_are_refused():
    with pytest.raises(ValueError, match="DelayedLinear: give seed or generator, not both"):
        DelayedLinear(3, 2, max_delay=4, seed=1, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match="DelayedLinear: generator must be a torch.Generator"):
        DelayedLinear(3, 2, max_delay=4, generator=0)
    a, b = (DelayedLinear(3, 2, max_delay=4, seed=1) for _ in range(2))
    c, d = (DelayedLinear(3, 2, max_delay=4, generator=torch.Generator().manual_seed(1)) for _ in range(2))
    assert torch.equal(a.weight, b.weight) and torch.equal(a.positions, b.positions)
    assert torch.equal(c.weight, d.weight) and torch.equal(a.weight, c.weight)
    assert not torch.equal(a.weight, DelayedLinear(3, 2, max_delay=4, seed=2).weight)


def test_a_backend_set_after_construction_is_checked_at_the_next_call():
    layer = DelayedLinear(3, 2, max_delay=4)
    layer.backend = "bogus"
    with pytest.raises(ValueError, match=r"DelayedLinear: unknown backend 'bogus'; choose one of"):
        layer(torch.rand(4, 1, 3))
    layer.backend = "torch"
    assert layer(torch.rand(4, 1, 3)).shape == (4, 1, 2)


# ----------------------------------------------------------------------------- LIF options set after construction

LAYERS = {
    "LIF": lambda **kw: sl.LIF(**kw),
    "ALIF": lambda **kw: sl.ALIF(adaptation=0.2, **kw),
    "RecurrentLIF": lambda **kw: sl.RecurrentLIF(3, **kw),
}


@pytest.fixture(params=sorted(LAYERS))
def make(request):
    return request.param, LAYERS[request.param]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "2"])
def test_max_spikes_set_afterwards_is_checked_as_in_the_constructor(make, bad):
    name, build = make
    layer = build()
    with pytest.raises(ValueError, match=f"^{name}: max_spikes must be a positive int"):
        layer.max_spikes = bad
    assert layer.max_spikes is None  # unchanged
    with pytest.raises(ValueError, match=f"^{name}: max_spikes must be a positive int"):
        build(max_spikes=bad)


def test_max_spikes_set_afterwards_acts_as_the_constructors(make):
    _, build = make
    torch.manual_seed(0)
    x = torch.rand(20, 2, 3) * 2
    layer = build(backend="torch")
    if hasattr(layer, "recurrent") and isinstance(layer.recurrent, torch.nn.Linear):
        torch.nn.init.zeros_(layer.recurrent.weight)
    layer.max_spikes = np.int64(1)
    assert type(layer.max_spikes) is int and layer.max_spikes == 1
    y = layer(x)
    assert y.sum(0).max() <= 1 and y.sum() > 0


def test_noise_and_noise_scale_set_afterwards_are_checked(make):
    name, build = make
    layer = build(noise="gaussian")
    for bad in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"^{name}: noise_scale must be a finite number > 0"):
            layer.noise_scale = bad
    assert layer.noise_scale == 0.3
    with pytest.raises(TypeError, match=f"^{name}: noise_scale must be a number"):
        layer.noise_scale = "big"
    with pytest.raises(ValueError, match=f"^{name}: unknown noise 'gauss'"):
        layer.noise = "gauss"
    quiet = build()
    quiet.noise_scale = -1.0  # no noise: unused, as the constructor takes it
    with pytest.raises(ValueError, match=f"^{name}: noise_scale must be a finite number > 0, got -1.0"):
        quiet.noise = "logistic"  # now it would sample with it
    assert quiet.noise is None
    quiet.noise_scale = np.float32(0.5)
    quiet.noise = "logistic"
    assert type(quiet.noise_scale) is float and quiet.noise == "logistic"


def test_a_surrogate_name_set_afterwards_is_resolved(make):
    name, build = make
    x = torch.rand(10, 2, 3) * 2
    layer, built = build(backend="torch"), build(backend="torch", surrogate="triangle")
    layer.load_state_dict(built.state_dict())
    layer.surrogate = "triangle"
    assert layer.surrogate.name == "triangle" and layer.surrogate.param == built.surrogate.param
    grads = []
    for net in (layer, built):
        x_ = x.clone().requires_grad_()
        net(x_).sum().backward()
        grads.append(x_.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
    with pytest.raises(ValueError, match=f"^{name}: unknown surrogate 'nope'"):
        layer.surrogate = "nope"
    with pytest.raises(TypeError, match=f"^{name}: surrogate must be a name or a Surrogate"):
        layer.surrogate = 3
    assert layer.surrogate.name == "triangle"


def test_reset_and_mask_p_set_afterwards_are_checked(make):
    name, build = make
    layer = build()
    with pytest.raises(ValueError, match=f"^{name}: unknown reset 'hard'"):
        layer.reset = "hard"
    with pytest.raises(ValueError, match=f"^{name}: mask_p is the probability of dropping a spike"):
        layer.mask_p = 1.5
    layer.reset, layer.mask_p = "zero", np.float64(0.25)
    assert layer.reset == "zero" and type(layer.mask_p) is float and layer.mask_p == 0.25


def test_checked_layers_still_copy_and_pickle():
    layer = sl.LIF(max_spikes=2, surrogate="sigmoid", noise="logistic", noise_scale=0.4, mask_p=0.1, seed=3)
    for other in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        assert (other.max_spikes, other.surrogate.name, other.noise, other.noise_scale, other.mask_p) == \
            (2, "sigmoid", "logistic", 0.4, 0.1)
