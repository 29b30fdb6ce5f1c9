"""Hook-based reparametrisations of the recurrent weight (pruning, the hook ``weight_norm`` / ``spectral_norm``) on
the fused paths of RecurrentLIF and ALIF(recurrent=True), zero gradients at T = 1, and ALIF.learn_adaptation fixed at
construction."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import prune

import snnlab as sl
from snnlab.core.recurrent import synapse_weight, zero_tie
from snnlab.kernels.dispatch import triton_available
from snnlab.kernels.lif_cpu import cpu_kernel_available

LAYERS = {
    "RecurrentLIF": lambda backend="auto": sl.RecurrentLIF(6, threshold=0.3, backend=backend),
    "ALIF": lambda backend="auto": sl.ALIF(n_neurons=6, recurrent=True, threshold=0.3, adaptation=0.2,
                                           backend=backend),
}
PRUNINGS = {
    "l1": lambda m: prune.l1_unstructured(m, "weight", amount=0.5),
    "random": lambda m: prune.random_unstructured(m, "weight", amount=0.5),
}


def _x(T=10, seed=0):
    return torch.rand((T, 2, 6), generator=torch.Generator().manual_seed(seed)) * 1.5


def _plain_twin(kind, layer):
    """A new ``kind`` layer holding ``layer``'s state, with a plain recurrent Linear of ``layer``'s effective weight
    now (a pruned / weight-normed module cannot be deep-copied)."""
    state = {k: v for k, v in layer.state_dict().items() if not k.startswith("recurrent.")}
    state["recurrent.weight"] = synapse_weight(layer.recurrent, _x(1)).detach().clone()
    twin = LAYERS[kind]()
    twin.load_state_dict(state)
    return twin


def _reference_twin(kind, layer):
    """A ``backend="reference"`` ``kind`` layer with ``layer``'s state and pruning mask."""
    twin = LAYERS[kind]("reference")
    prune.custom_from_mask(twin.recurrent, "weight", layer.recurrent.weight_mask)
    twin.load_state_dict(layer.state_dict())
    return twin


def _train(layer, x, steps=3):
    """``steps`` SGD steps on ``layer(x).sum()``; returns each step's output."""
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    outs = []
    for _ in range(steps):
        opt.zero_grad()
        y = layer(x)
        (y * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
        opt.step()
        outs.append(y.detach())
    return outs


@pytest.mark.parametrize("how", sorted(PRUNINGS))
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_a_pruned_recurrent_weight_trains_on_the_fused_path_as_on_the_reference(kind, how):
    torch.manual_seed(0)
    fused = LAYERS[kind]()
    PRUNINGS[how](fused.recurrent)
    ref = _reference_twin(kind, fused)   # the same mask
    x = _x()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, want = _train(fused, x), _train(ref, x)   # the old fused path: "backward through the graph a second time"
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert 0 < got[-1].sum() < got[-1].numel()   # spikes, and not everywhere: the weight matters
    torch.testing.assert_close(fused.recurrent.weight_orig, ref.recurrent.weight_orig)
    mask = fused.recurrent.weight_mask
    assert 0 < mask.sum() < mask.numel()
    # the pruned entries never moved the output: the fused layer equals a plain one with the masked weight
    with torch.no_grad():
        y = fused(x)
        assert torch.equal(fused.recurrent.weight, fused.recurrent.weight_orig * mask)
        assert torch.equal(y, _plain_twin(kind, fused)(x))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_a_pruned_checkpoint_loaded_into_a_pruned_layer_runs_its_own_weight(kind):
    torch.manual_seed(1)
    src, dst = LAYERS[kind](), LAYERS[kind]()
    for layer in (src, dst):
        prune.l1_unstructured(layer.recurrent, "weight", amount=0.5)
    dst.load_state_dict(src.state_dict())   # dst.recurrent.weight is the stale one of its own pruning until a call
    x = _x(seed=2)
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))
        assert torch.equal(dst(x), _plain_twin(kind, src)(x))


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_hook_weight_norm_and_spectral_norm_train_on_the_fused_path(kind):
    x = _x(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # (the hook versions are deprecated)
        torch.manual_seed(2)
        layer = LAYERS[kind]()
        ref = LAYERS[kind]("reference")
        ref.load_state_dict(layer.state_dict())
        for m in (layer, ref):
            nn.utils.weight_norm(m.recurrent)
        for g, w in zip(_train(layer, x), _train(ref, x)):
            torch.testing.assert_close(g, w)
        with torch.no_grad():   # the weight of the last g / v, not the one of the previous call
            rec = layer.recurrent
            want = rec.weight_g * rec.weight_v / rec.weight_v.norm(dim=1, keepdim=True)
            torch.testing.assert_close(synapse_weight(rec, x), want)
            assert torch.equal(layer(x), _plain_twin(kind, layer)(x))
        layer = LAYERS[kind]()
        nn.utils.spectral_norm(layer.recurrent)   # its hook sets a weight without gradient until it runs
        outs = _train(layer, x)
        assert all(o.shape == x.shape for o in outs)
        assert layer.recurrent.weight_orig.grad is not None and layer.recurrent.weight_orig.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_parametrized_recurrent_weight_still_trains(kind):
    torch.manual_seed(3)
    layer = LAYERS[kind]()
    nn.utils.parametrizations.weight_norm(layer.recurrent)
    ref = copy.deepcopy(layer)
    ref.backend = "reference"
    x = _x(seed=4)
    for g, w in zip(_train(layer, x), _train(ref, x)):
        torch.testing.assert_close(g, w)


def test_hooks_the_fused_loop_cannot_run_are_named_in_a_warning():
    x = _x(seed=5)
    for kind, make in LAYERS.items():
        layer = make()
        handle = layer.recurrent.register_forward_hook(lambda m, i, o: o * 2.0)
        with pytest.warns(UserWarning, match=f"^{kind}: the recurrent nn.Linear has forward or backward hooks.*"
                                             "backend='reference'"):
            assert layer(x).shape == x.shape
        layer.backend = "reference"      # the per-step loop calls the module: its hooks run
        assert layer(x).shape == x.shape
        handle.remove()
        layer.backend = "torch"
        layer.recurrent.register_full_backward_hook(lambda m, gi, go: None)
        with pytest.warns(UserWarning, match="forward or backward hooks"):
            layer(x)
        layer = make()
        prune.l1_unstructured(layer.recurrent, "weight", amount=0.5)
        layer.recurrent.register_forward_pre_hook(lambda m, args: (args[0] * 2.0,))   # changes the input
        with pytest.raises(ValueError, match=f"^{kind}: the forward pre-hook .* changes the module's input"):
            layer(x)
        # a pre-hook returning its input unchanged (or None) is fine
        layer = make()
        prune.l1_unstructured(layer.recurrent, "weight", amount=0.5)
        seen = []
        layer.recurrent.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape) or args)
        layer.recurrent.register_forward_pre_hook(lambda m, args, kwargs: (args, kwargs), with_kwargs=True)
        with torch.no_grad():
            assert torch.equal(layer(x), _plain_twin(kind, layer)(x))
        assert seen[0] == (0, 2, 6)      # called once per forward, on an empty input of the step's shape


def test_synapse_weight_without_hooks_is_the_parameter_itself():
    lin = nn.Linear(4, 4, bias=False)
    calls = []
    lin.register_forward_pre_hook(lambda m, args: calls.append(1))   # an observer of the input
    assert synapse_weight(lin, torch.zeros(3, 1, 4)) is lin.weight
    assert calls == []   # a registered weight: no hook runs (the fused loop does not call the module)


def test_zero_tie_is_zero_and_gives_zero_gradients():
    w = torch.tensor([[float("nan"), 1.0], [2.0, float("inf")]], requires_grad=True)
    tau = torch.tensor(3.0, requires_grad=True)
    tie = zero_tie(w, tau)
    assert tie.item() == 0.0
    gw, gt = torch.autograd.grad(tie, (w, tau))
    assert torch.equal(gw, torch.zeros(2, 2)) and torch.equal(gt, torch.tensor(0.0))


BACKENDS_T1 = [
    ("RecurrentLIF", "torch"), ("RecurrentLIF", "reference"), ("ALIF-rec", "torch"), ("ALIF-rec", "reference"),
    ("ALIF-learn", "torch"), ("ALIF-learn", "reference"),
    pytest.param("ALIF-learn", "cpu", marks=pytest.mark.skipif(not cpu_kernel_available(), reason="no C kernel")),
    pytest.param("ALIF-learn", "triton", marks=pytest.mark.skipif(not triton_available(), reason="no Triton")),
]


def _t1_layer(kind, backend):
    if kind == "RecurrentLIF":
        return sl.RecurrentLIF(4, backend=backend), ("recurrent.weight",)
    if kind == "ALIF-rec":
        return sl.ALIF(n_neurons=4, recurrent=True, backend=backend), ("recurrent.weight",)
    return sl.ALIF(n_neurons=4, learn_adaptation=True, backend=backend), ("adaptation", "tau_adapt")


@pytest.mark.parametrize("kind,backend", BACKENDS_T1)
@pytest.mark.parametrize("T", [0, 1, 2])
def test_every_parameter_gets_a_gradient_tensor_at_any_length(kind, backend, T):
    torch.manual_seed(4)
    layer, names = _t1_layer(kind, backend)
    x = torch.rand((T, 2, 4), generator=torch.Generator().manual_seed(T)) * 3
    with torch.no_grad():
        plain = layer(x)
    y = layer(x)
    assert torch.equal(y, plain)          # the tie changes no value
    (y * torch.arange(1.0, 5.0)).sum().backward()
    params = dict(layer.named_parameters())
    for name in names:
        g = params[name].grad
        assert g is not None and g.shape == params[name].shape, (name, g)   # the old code: None at T = 1
        if T < 2 and name != "adaptation":
            assert torch.equal(g, torch.zeros_like(g))


def test_learn_adaptation_is_fixed_at_construction():
    alif = sl.ALIF(n_neurons=4)
    with pytest.raises(AttributeError, match=r"^ALIF: learn_adaptation is fixed at construction .*"
                                             r"ALIF\(\.\.\., learn_adaptation=True\)"):
        alif.learn_adaptation = True
    assert alif.learn_adaptation is False and [n for n, _ in alif.named_parameters()] == []
    assert "adaptation=0.5" in repr(alif)
    alif.learn_adaptation = False          # the current value: allowed, nothing changes
    alif.learn_adaptation = 0
    assert alif.learn_adaptation is False
    with pytest.raises(TypeError, match="ALIF: learn_adaptation must be True or False"):
        alif.learn_adaptation = "no"
    learned = sl.ALIF(n_neurons=4, learn_adaptation=True)
    with pytest.raises(AttributeError, match="learn_adaptation=False"):
        learned.learn_adaptation = False
    learned.learn_adaptation = True
    assert sorted(n for n, _ in learned.named_parameters()) == ["adaptation", "tau_adapt"]
    assert copy.deepcopy(learned).learn_adaptation is True   # copies (no __setattr__ on restore) keep the flag
