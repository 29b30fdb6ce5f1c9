"""Neuron constants under a half-precision default dtype, reset_parameters after a meta-device build, replaced
recurrent synapses, and a neuron layer returning a tuple under a Monitor."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import snnlab as sl

HALF = [torch.bfloat16, torch.float16]


@pytest.fixture
def default_dtype():
    """Set torch's default dtype for one test, put back after it."""
    before = torch.get_default_dtype()
    yield torch.set_default_dtype
    torch.set_default_dtype(before)


def _constants(layer: nn.Module) -> dict:
    names = ("beta_const", "tau_mem", "threshold", "adaptation", "tau_adapt")
    return {n: getattr(layer, n) for n in names if isinstance(getattr(layer, n, None), torch.Tensor)}


FACTORIES = {
    "LIF": lambda: sl.LIF(tau_mem=100.0, threshold=0.7),
    "LIF learned per neuron": lambda: sl.LIF(tau_mem=100.0, threshold=0.7, learn_tau=True, learn_threshold=True,
                                             n_neurons=3),
    "LI": lambda: sl.LI(tau_mem=100.0),
    "LI learned": lambda: sl.LI(tau_mem=100.0, learn_tau=True),
    "ALIF": lambda: sl.ALIF(tau_mem=100.0, threshold=0.7, adaptation=0.3, tau_adapt=300.0),
    "ALIF learned": lambda: sl.ALIF(tau_mem=100.0, threshold=0.7, adaptation=0.3, tau_adapt=300.0,
                                    learn_adaptation=True, n_neurons=3),
}


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kind", list(FACTORIES))
def test_constants_built_float32_under_half_default_dtype(kind, dtype, default_dtype):
    reference = FACTORIES[kind]()  # float32 default
    default_dtype(dtype)
    layer = FACTORIES[kind]()
    for name, value in _constants(layer).items():
        assert value.dtype == torch.float32, name
        assert torch.equal(value, getattr(reference, name)), name
        assert isinstance(value, nn.Parameter) == isinstance(getattr(reference, name), nn.Parameter)
    assert repr(layer) == repr(reference)


@pytest.mark.parametrize("dtype", HALF)
def test_half_default_dtype_spikes_equal_a_cast_layer(dtype, default_dtype):
    default_dtype(dtype)
    built = sl.LIF(tau_mem=100.0, threshold=0.7)
    alif = sl.ALIF(tau_mem=100.0, threshold=0.7, tau_adapt=300.0)
    default_dtype(torch.float32)
    cast = sl.LIF(tau_mem=100.0, threshold=0.7).to(dtype)
    alif_cast = sl.ALIF(tau_mem=100.0, threshold=0.7, tau_adapt=300.0).to(dtype)
    x = (torch.rand(300, 2, 20, generator=torch.Generator().manual_seed(0)) * 0.05).to(dtype)
    assert torch.equal(built(x), cast(x)) and built(x).sum() > 0
    assert torch.equal(alif(x), alif_cast(x))


def test_float64_default_dtype_keeps_float64_constants(default_dtype):
    default_dtype(torch.float64)
    layer = sl.ALIF(tau_mem=3.0)
    assert all(v.dtype == torch.float64 for v in _constants(layer).values())


META_FACTORIES = {
    **FACTORIES,
    "LIF beta=1": lambda: sl.LIF(beta=1.0, n_neurons=2),
    "RecurrentLIF": lambda: sl.RecurrentLIF(6, tau_mem=5.0, threshold=0.5, learn_tau=True),
    "RecurrentLIF zeros": lambda: sl.RecurrentLIF(6, recurrent_init="zeros"),
    "ALIF recurrent": lambda: sl.ALIF(n_neurons=6, recurrent=True, adaptation=0.2, learn_adaptation=True),
}


def _reset_every_module(net: nn.Module) -> None:
    for module in net.modules():  # the usual recipe after to_empty: parents before their children
        if callable(getattr(module, "reset_parameters", None)):
            module.reset_parameters()


@pytest.mark.parametrize("kind", list(META_FACTORIES))
def test_meta_build_to_empty_reset_equals_fresh_construction(kind):
    factory = META_FACTORIES[kind]
    width = factory().n_neurons or 6
    torch.manual_seed(3)
    fresh = nn.Sequential(nn.Linear(6, width), factory())
    with torch.device("meta"):
        net = nn.Sequential(nn.Linear(6, width), factory())
    net.to_empty(device="cpu")
    with torch.no_grad():  # uninitialised memory made visible: what a missing reset would leave
        for t in list(net.parameters()) + list(net.buffers()):
            if t.is_floating_point():
                t.fill_(float("nan"))
    torch.manual_seed(3)
    _reset_every_module(net)
    got, want = net.state_dict(), fresh.state_dict()
    assert list(got) == list(want)
    for key in want:
        assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key
    assert repr(net) == repr(fresh)
    x = torch.rand(12, 2, 6, generator=torch.Generator().manual_seed(1))
    assert torch.equal(net(x), fresh(x))


@pytest.mark.parametrize("make", [lambda: sl.RecurrentLIF(5, recurrent_init="orthogonal"),
                                  lambda: sl.ALIF(n_neurons=5, recurrent=True, recurrent_init="orthogonal")])
def test_reset_every_module_keeps_an_orthogonal_recurrent_weight(make):
    with torch.device("meta"):
        layer = make()
    layer.to_empty(device="cpu")
    _reset_every_module(layer)  # the child nn.Linear's own reset_parameters comes last: it draws the layer's init
    w = layer.recurrent.weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(5), atol=1e-5)


def test_reset_parameters_undoes_training_and_spread_in_place():
    lif = sl.LIF(tau_mem=20.0, threshold=0.5, n_neurons=8, learn_threshold=True).spread_tau_(0.5)
    param = lif.threshold
    with torch.no_grad():
        lif.threshold.add_(1.0)
    lif.reset_parameters()
    assert lif.threshold is param and torch.equal(lif.threshold, torch.full((8,), 0.5))
    assert torch.equal(lif.beta_const, torch.full((8,), 1.0 - 1.0 / 20.0))
    assert lif.threshold.requires_grad


def test_reset_parameters_keeps_float32_constants_of_a_cast_layer():
    layer = sl.ALIF(tau_mem=100.0, threshold=0.7).bfloat16()
    layer.reset_parameters()
    assert all(v.dtype == torch.float32 for v in _constants(layer).values())
    assert float(layer.beta_const) == pytest.approx(0.99)


class Dale(nn.Linear):
    """A sign constraint: a module whose own forward the fused loop would not run."""

    def forward(self, x):
        return F.linear(x, self.weight.abs())


def _recurrent_layers():
    torch.manual_seed(0)
    return [sl.RecurrentLIF(8, threshold=0.5), sl.ALIF(n_neurons=8, threshold=0.5, recurrent=True)]


@pytest.mark.parametrize("index", [0, 1])
@pytest.mark.parametrize("synapses", ["dale", "bias"])
def test_fused_loop_refuses_what_it_would_ignore_reference_runs_it(index, synapses):
    layer = _recurrent_layers()[index]
    layer.recurrent = Dale(8, 8, bias=False) if synapses == "dale" else nn.Linear(8, 8, bias=True)
    with torch.no_grad():
        layer.recurrent.weight.fill_(0.4 if synapses == "dale" else 0.0)
        if synapses == "dale":
            layer.recurrent.weight[::2] *= -1
        else:
            layer.recurrent.bias.fill_(0.3)
    x = torch.rand(20, 2, 8, generator=torch.Generator().manual_seed(0)) * 0.2
    for backend in ("auto", "torch"):
        layer.backend = backend
        with pytest.raises(ValueError, match="backend='reference'") as info:
            layer(x)
        assert type(layer).__name__ in str(info.value)
        assert ("Dale.forward" if synapses == "dale" else "a bias") in str(info.value)
    layer.backend = "reference"
    out = layer(x)
    # what the module computes is used: rebuild it as a plain bias-free weight + the input, where possible
    plain = copy.deepcopy(layer)
    plain.recurrent = nn.Linear(8, 8, bias=False)
    with torch.no_grad():
        plain.recurrent.weight.copy_(layer.recurrent.weight.abs() if synapses == "dale" else layer.recurrent.weight)
    plain.backend = "auto"
    shifted = x if synapses == "dale" else x + torch.cat([torch.zeros(1, 2, 8), torch.full((19, 2, 8), 0.3)])
    assert torch.equal(out, plain(shifted))


@pytest.mark.parametrize("index", [0, 1])
def test_reference_runs_a_biased_half_precision_recurrent_weight(index):
    layer = _recurrent_layers()[index]
    layer.recurrent = nn.Linear(8, 8, bias=True)
    layer.backend = "reference"
    x = torch.rand(20, 2, 8, generator=torch.Generator().manual_seed(0)) * 0.2
    with torch.no_grad():
        layer.recurrent.weight.zero_()
        layer.recurrent.bias.fill_(0.5)
    full = layer(x)
    assert torch.equal(layer.bfloat16()(x.bfloat16()).float(), full)  # (0.5 and 0 are exact in bfloat16)
    assert full[1:].sum() > 0


@pytest.mark.parametrize("index", [0, 1])
def test_assigning_other_synapses_is_refused_clearly(index):
    layer = _recurrent_layers()[index]
    name = type(layer).__name__
    low_rank = nn.Sequential(nn.Linear(8, 2, bias=False), nn.Linear(2, 8, bias=False))
    with pytest.raises(TypeError, match=f"{name}: the recurrent synapses must be an nn.Linear.*got Sequential"):
        layer.recurrent = low_rank
    with pytest.raises(ValueError, match="in_features=8, out_features=4"):
        layer.recurrent = nn.Linear(8, 4, bias=False)
    assert type(layer.recurrent) is nn.Linear  # unchanged
    layer.recurrent = nn.Linear(8, 8, bias=False)  # a plain one: the fused loop runs it
    assert layer(torch.rand(5, 1, 8)).shape == (5, 1, 8)


def test_parametrized_recurrent_weight_still_runs_fused():
    layer = sl.RecurrentLIF(4)
    torch.nn.utils.parametrize.register_parametrization(layer.recurrent, "weight", _Abs())
    x = torch.rand(10, 2, 4)
    ref = copy.deepcopy(layer)
    ref.backend = "reference"
    assert torch.equal(layer(x), ref(x))


class _Abs(nn.Module):
    def forward(self, w):
        return w.abs()


class TupleLIF(sl.LIF):
    def forward(self, x):
        return super().forward(x), x


def test_monitor_names_a_neuron_layer_returning_a_tuple():
    lif = TupleLIF()
    with sl.Monitor(nn.Sequential(lif)):
        with pytest.raises(TypeError, match=r"layer '0' \(TupleLIF\) returned tuple.*must return its spike tensor"):
            lif(torch.rand(4, 1, 3))
