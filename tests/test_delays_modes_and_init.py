"""DelayedLinear: loads under inference_mode, seeded draws independent of the default dtype, reset_parameters."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.core.delays import DelayedLinear


def _same_layer(a: DelayedLinear, b: DelayedLinear) -> None:
    """Same form, same tensors (values, dtypes, Parameter or buffer)."""
    assert a.rounded == b.rounded
    assert isinstance(a.positions, nn.Parameter) == isinstance(b.positions, nn.Parameter)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if isinstance(sa[k], torch.Tensor):
            assert sa[k].dtype == sb[k].dtype, k
            assert torch.equal(sa[k], sb[k]), k


def _train_step_moves_positions(layer: DelayedLinear) -> None:
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    before = layer.positions.detach().clone()
    y = layer(torch.rand(6, 2, layer.in_features))
    (y * torch.randn_like(y)).sum().backward()
    assert layer.positions.grad is not None
    assert layer.positions.grad.abs().sum() > 0
    opt.step()
    assert not torch.equal(before, layer.positions.detach())


# ----------------------------------------------------------------------------- loads under inference_mode


@pytest.mark.parametrize("how", ["learn_delays_false", "rounded"])
def test_learnable_state_loaded_under_inference_mode_still_trains(how):
    src = DelayedLinear(4, 3, max_delay=5, seed=0)
    if how == "rounded":
        dst = DelayedLinear(4, 3, max_delay=5, seed=1).round_delays()
    else:
        dst = DelayedLinear(4, 3, max_delay=5, learn_delays=False, seed=1)
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        dst.load_state_dict(src.state_dict())
    assert isinstance(dst.positions, nn.Parameter) and dst.positions.requires_grad
    assert not dst.positions.is_inference()
    assert torch.equal(dst.positions.detach(), src.positions.detach())
    _train_step_moves_positions(dst)


def test_round_delays_under_inference_mode_keeps_a_normal_buffer():
    layer = DelayedLinear(4, 3, max_delay=5, seed=0)
    with torch.inference_mode():
        layer.round_delays()
    assert layer.rounded and not layer.positions.is_inference() and not layer._is_rounded.is_inference()
    with pytest.warns(UserWarning, match="new Parameter"):  # a learnable state: positions become a Parameter again
        layer.load_state_dict(DelayedLinear(4, 3, max_delay=5, seed=2).state_dict())
    _train_step_moves_positions(layer)


def test_half_precision_assign_load_under_inference_mode_keeps_normal_positions():
    src = DelayedLinear(4, 3, max_delay=5, seed=0)
    state = {k: (v.to(torch.bfloat16) if v.is_floating_point() and v.dim() else v) for k, v in src.state_dict().items()}
    dst = DelayedLinear(4, 3, max_delay=5, seed=1, dtype=torch.bfloat16)
    with torch.inference_mode():
        dst.load_state_dict(state, assign=True)
    assert dst.positions.dtype == torch.float32 and isinstance(dst.positions, nn.Parameter)
    assert not dst.positions.is_inference()


# ----------------------------------------------------------------------------- seeded draws and the default dtype


@pytest.mark.parametrize("learn_delays", [True, False])
@pytest.mark.parametrize("init_delay", ["uniform", "center"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_seed_gives_the_same_layer_under_any_default_dtype(learn_delays, init_delay, dtype):
    kw = dict(learn_delays=learn_delays, init_delay=init_delay, bias=True, seed=0, dtype=dtype)
    a = DelayedLinear(6, 4, 5, **kw)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        b = DelayedLinear(6, 4, 5, **kw)
    finally:
        torch.set_default_dtype(old)
    _same_layer(a, b)


def test_seeded_values_are_the_float32_draws():
    # the numbers a seed has always given (float32 draws, in this order): weight, bias, positions
    g = torch.Generator().manual_seed(3)
    bound = 1.0 / math.sqrt(5)
    w = torch.empty(4, 5, dtype=torch.float32).uniform_(-bound, bound, generator=g)
    b = torch.empty(4, dtype=torch.float32).uniform_(-bound, bound, generator=g)
    p = torch.rand(4, 5, generator=g, dtype=torch.float32) * 5.0
    d = torch.randint(0, 6, (4, 5), generator=g)
    learn = DelayedLinear(5, 4, 6, bias=True, seed=3)
    assert torch.equal(learn.weight, w) and torch.equal(learn.bias, b) and torch.equal(learn.positions, p)
    fixed = DelayedLinear(5, 4, 6, bias=True, seed=3, learn_delays=False)
    assert torch.equal(fixed.delays, d) and torch.equal(fixed.weight, w)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:  # a float64 layer (the default dtype): the same draws, cast
        wide = DelayedLinear(5, 4, 6, bias=True, seed=3)
    finally:
        torch.set_default_dtype(old)
    assert wide.weight.dtype == torch.float64 and torch.equal(wide.weight, w.double())
    assert torch.equal(wide.positions, p.double())


# ----------------------------------------------------------------------------- reset_parameters


@pytest.mark.parametrize("learn_delays", [True, False])
@pytest.mark.parametrize("bias", [False, True])
def test_meta_build_to_empty_reset_parameters_equals_fresh_seeded_layer(learn_delays, bias):
    kw = dict(learn_delays=learn_delays, bias=bias, seed=4)
    fresh = DelayedLinear(8, 3, max_delay=4, **kw)
    with torch.device("meta"):
        layer = DelayedLinear(8, 3, max_delay=4, **kw)
    assert layer.weight.is_meta and layer.positions.is_meta
    layer.to_empty(device="cpu")
    layer.reset_parameters()
    _same_layer(layer, fresh)
    assert bool(layer._is_rounded) == (not learn_delays)
    x = (torch.rand(7, 2, 8) < 0.5).float()
    torch.testing.assert_close(layer(x), fresh(x), rtol=0, atol=0)


def test_meta_model_reinitialised_module_by_module_runs():
    def build():
        torch.manual_seed(0)
        return sl.Sequential(nn.Linear(4, 8), DelayedLinear(8, 3, max_delay=4, learn_delays=False, seed=1))

    fresh = build()
    with torch.device("meta"):
        net = build()
    net.to_empty(device="cpu")
    torch.manual_seed(0)
    for m in net.modules():
        if callable(getattr(m, "reset_parameters", None)):
            m.reset_parameters()
    _same_layer(net[1], fresh[1])
    x = torch.rand(5, 2, 4)
    assert torch.equal(net(x), fresh(x))


def test_reset_parameters_is_in_place_and_restores_the_constructed_state():
    layer = DelayedLinear(5, 4, max_delay=6, bias=True, seed=7)
    fresh = DelayedLinear(5, 4, max_delay=6, bias=True, seed=7)
    weight, positions = layer.weight, layer.positions
    with torch.no_grad():
        layer.weight.add_(1.0)
        layer.bias.zero_()
        layer.positions.fill_(2.3)
    layer.reset_parameters()
    assert layer.weight is weight and layer.positions is positions  # (an optimiser keeps training them)
    _same_layer(layer, fresh)
    layer.round_delays()  # rounded: reset gives the constructed (learnable) form back, with a warning
    with pytest.warns(UserWarning, match="new Parameter"):
        layer.reset_parameters()
    assert not layer.rounded and not bool(layer._is_rounded)
    _same_layer(layer, fresh)


def test_reset_parameters_generator_and_unseeded_layers():
    a = DelayedLinear(5, 4, max_delay=6, generator=torch.Generator().manual_seed(9))
    b = DelayedLinear(5, 4, max_delay=6, seed=1)
    b.reset_parameters(torch.Generator().manual_seed(9))  # a given generator wins over the layer's seed
    _same_layer(a, b)
    torch.manual_seed(11)
    c = DelayedLinear(5, 4, max_delay=6)
    torch.manual_seed(11)
    c2 = DelayedLinear(5, 4, max_delay=6)
    c2.reset_parameters()  # unseeded: torch's global generator, as the constructor
    assert not torch.equal(c.weight, c2.weight)
    torch.manual_seed(11)
    c2.reset_parameters()
    _same_layer(c, c2)
    with pytest.raises(TypeError, match="reset_parameters: generator"):
        b.reset_parameters(3)
