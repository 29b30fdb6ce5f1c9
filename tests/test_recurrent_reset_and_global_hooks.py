"""``reset_recurrent`` on a pruned / reparametrised recurrent weight (it re-initialises the parameter the weight is
computed from, or refuses), global module hooks on the fused recurrent path (named once in a warning), and the shared
``loop_weight`` helper of RecurrentLIF and the recurrent ALIF."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize, prune

import snnlab as sl
from snnlab.core.recurrent import init_recurrent_weight, loop_weight

N = 5
LAYERS = {
    "RecurrentLIF": lambda backend="auto": sl.RecurrentLIF(N, threshold=0.3, backend=backend),
    "ALIF": lambda backend="auto": sl.ALIF(n_neurons=N, recurrent=True, threshold=0.3, adaptation=0.2,
                                           backend=backend),
}
KINDS = sorted(LAYERS)


def _x(T=8, seed=0):
    return torch.rand((T, 2, N), generator=torch.Generator().manual_seed(seed)) * 1.5


def _drawn(init, seed):
    """The weight ``reset_recurrent(init)`` draws after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    w = torch.empty(N, N)
    init_recurrent_weight(w, init)
    return w


def _reset(layer, init, seed):
    torch.manual_seed(seed)
    layer.reset_recurrent(init)


def _hooked(make_reparam):
    """Apply a (deprecated) hook-based reparametrisation without its FutureWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make_reparam()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("init", ["orthogonal", "zeros"])
def test_reset_of_a_pruned_weight_writes_weight_orig_and_survives_the_forward(kind, init):
    layer = LAYERS[kind]()
    prune.l1_unstructured(layer.recurrent, "weight", amount=0.5)
    mask = layer.recurrent.weight_mask.clone()
    _reset(layer, init, 3)
    rec = layer.recurrent
    assert torch.equal(rec.weight_orig.detach(), _drawn(init, 3))          # the old code: weight_orig untouched
    assert torch.equal(rec.weight.detach(), _drawn(init, 3) * mask)        # up to date at once
    assert torch.equal(rec.weight_mask, mask)                               # pruned entries stay pruned
    layer(_x())
    assert torch.equal(rec.weight.detach(), _drawn(init, 3) * mask)        # ... and after the next forward


@pytest.mark.parametrize("kind", KINDS)
def test_a_reset_pruned_layer_gives_the_same_spikes_and_gradients_on_both_paths(kind):
    fused, ref = LAYERS[kind](), LAYERS[kind]("reference")
    mask = (torch.rand(N, N, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    for layer in (fused, ref):
        prune.custom_from_mask(layer.recurrent, "weight", mask)
        _reset(layer, "orthogonal", 7)
    x = _x(seed=2)
    outs, grads = [], []
    for layer in (fused, ref):
        y = layer(x)
        (y * torch.linspace(-1, 1, N)).sum().backward()
        outs.append(y.detach())
        grads.append(layer.recurrent.weight_orig.grad.clone())
    assert outs[0].sum() > 0
    assert torch.equal(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("init", ["uniform", "orthogonal"])
def test_reset_of_a_parametrized_weight_norm_goes_through_right_inverse(kind, init):
    layer = LAYERS[kind]()
    nn.utils.parametrizations.weight_norm(layer.recurrent)
    _reset(layer, init, 4)
    torch.testing.assert_close(layer.recurrent.weight.detach(), _drawn(init, 4))   # the old code: the old weight
    layer(_x())
    torch.testing.assert_close(layer.recurrent.weight.detach(), _drawn(init, 4))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reparam", ["weight_norm", "orthogonal", "spectral_norm"])
def test_a_zero_reset_a_parametrization_cannot_represent_raises_and_changes_nothing(kind, reparam):
    layer = LAYERS[kind]()
    getattr(nn.utils.parametrizations, reparam)(layer.recurrent)
    before = {k: v.clone() for k, v in layer.recurrent.state_dict().items()}
    with pytest.raises(ValueError, match=rf"^{kind}\.reset_recurrent\('zeros'\): the parametrization \(_\w+\) of "
                                         "the recurrent weight cannot represent a zero weight"):
        layer.reset_recurrent("zeros")
    after = layer.recurrent.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


class _Symmetric(nn.Module):
    """A parametrization without ``right_inverse``."""

    def forward(self, w):
        return w.triu() + w.triu(1).T


@pytest.mark.parametrize("kind", KINDS)
def test_reset_of_a_parametrization_without_right_inverse_writes_its_original(kind):
    layer = LAYERS[kind]()
    parametrize.register_parametrization(layer.recurrent, "weight", _Symmetric())
    _reset(layer, "uniform", 5)
    drawn = _drawn("uniform", 5)
    assert torch.equal(layer.recurrent.parametrizations.weight.original.detach(), drawn)
    assert torch.equal(layer.recurrent.weight.detach(), _Symmetric()(drawn))
    _reset(layer, "zeros", 5)
    assert torch.equal(layer.recurrent.weight.detach(), torch.zeros(N, N))


@pytest.mark.parametrize("kind", KINDS)
def test_reset_of_a_hook_weight_norm_sets_v_and_g(kind):
    layer = LAYERS[kind]()
    _hooked(lambda: nn.utils.weight_norm(layer.recurrent))
    rec = layer.recurrent
    _reset(layer, "uniform", 6)
    drawn = _drawn("uniform", 6)
    assert torch.equal(rec.weight_v.detach(), drawn)                     # the old code: v and g untouched
    torch.testing.assert_close(rec.weight_g.detach(), drawn.norm(dim=1, keepdim=True))
    layer(_x())
    torch.testing.assert_close(rec.weight.detach(), drawn)
    # "zeros": g = 0, the direction kept: the weight is exactly 0, and g still learns
    _reset(layer, "zeros", 6)
    assert torch.equal(rec.weight_g.detach(), torch.zeros(N, 1)) and torch.equal(rec.weight_v.detach(), drawn)
    y = layer(_x(seed=1))
    assert torch.equal(rec.weight.detach(), torch.zeros(N, N))
    (y * torch.linspace(-1, 1, N)).sum().backward()
    assert torch.isfinite(rec.weight_g.grad).all() and rec.weight_g.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_reset_of_a_hook_spectral_norm_writes_weight_orig_and_refuses_zeros(kind):
    layer = LAYERS[kind]()
    _hooked(lambda: nn.utils.spectral_norm(layer.recurrent))
    rec = layer.recurrent
    _reset(layer, "orthogonal", 8)
    drawn = _drawn("orthogonal", 8)
    assert torch.equal(rec.weight_orig.detach(), drawn)                  # the old code: weight_orig untouched
    layer(_x())
    torch.testing.assert_close(rec.weight.detach(), drawn)               # sigma = 1 for an orthogonal weight
    with pytest.raises(ValueError, match=rf"^{kind}\.reset_recurrent\('zeros'\): a spectral-normed weight cannot "
                                         "be zero"):
        layer.reset_recurrent("zeros")
    assert torch.equal(rec.weight_orig.detach(), drawn)


@pytest.mark.parametrize("kind", KINDS)
def test_reset_of_a_weight_computed_by_an_unknown_hook_raises(kind):
    layer = LAYERS[kind]()
    rec = layer.recurrent
    raw = nn.Parameter(rec.weight.detach().clone())
    del rec._parameters["weight"]
    rec.register_parameter("raw", raw)
    rec.weight = raw * 2.0
    rec.register_forward_pre_hook(lambda m, args: setattr(m, "weight", m.raw * 2.0))
    before = raw.detach().clone()
    with pytest.raises(ValueError, match=rf"^{kind}\.reset_recurrent\('uniform'\): the recurrent nn.Linear's "
                                         "weight is not a registered parameter"):
        layer.reset_recurrent("uniform")
    assert torch.equal(raw.detach(), before)


def _global_hook_warnings(records):
    return [r for r in records if "global module hooks" in str(r.message)]


@pytest.mark.parametrize("kind", KINDS)
def test_global_module_hooks_are_named_once_on_the_fused_path_and_run_on_the_reference(kind):
    calls = []
    handle = nn.modules.module.register_module_forward_hook(
        lambda m, args, out: calls.append(tuple(args[0].shape)) if isinstance(m, nn.Linear) else None)
    try:
        layer = LAYERS[kind]()
        x = _x(T=6)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")          # (not Python's once-per-line filter: the layer's own "once")
            layer(x)
            layer(x)
        named = _global_hook_warnings(rec)
        assert len(named) == 1, [str(r.message) for r in rec]          # the old code: no warning at all
        assert str(named[0].message).startswith(f"{kind}: global module hooks") and "backend='reference'" in str(
            named[0].message)
        assert named[0].filename == __file__                            # points at the caller's line
        assert calls == []                                              # the fused loop never calls the Linear
        layer.backend = "reference"                                     # the per-step loop runs them, no warning
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            layer(x)
        assert _global_hook_warnings(rec) == []
        assert calls == [(1, 2, N)] * (x.shape[0] - 1)
        # another hook registered later is named once more
        layer.backend = "auto"
        second = nn.modules.module.register_module_forward_pre_hook(lambda m, args: None)
        try:
            with warnings.catch_warnings(record=True) as rec:
                warnings.simplefilter("always")
                layer(x)
                layer(x)
            assert len(_global_hook_warnings(rec)) == 1
        finally:
            second.remove()
    finally:
        handle.remove()


def test_snnlabs_own_checkpoint_hook_is_not_named():
    """activation_checkpoint registers a global pre-hook (for norm layers) during each recomputation: a new hook at
    every backward, which must not warn each time."""
    from snnlab.core.activation_checkpoint import activation_checkpoint
    layer = LAYERS["RecurrentLIF"]()
    x = _x().requires_grad_()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(2):
            activation_checkpoint(layer, x).sum().backward()
    assert _global_hook_warnings(rec) == [] and x.grad is not None


def test_loop_weight_reads_the_weight_and_ties_it_at_short_lengths():
    lin = nn.Linear(3, 3, bias=False)
    tau = torch.tensor(2.0, requires_grad=True)
    weight, tie = loop_weight(lin, torch.zeros(4, 2, 3), "ALIF", fused=True)
    assert weight is lin.weight and tie is None
    assert loop_weight(lin, torch.zeros(4, 2, 3), "ALIF", fused=False) == (None, None)   # the step loop calls it
    for fused in (True, False):  # T < 2: the weight is read either way, and tied
        weight, tie = loop_weight(lin, torch.zeros(1, 2, 3), "ALIF", fused=fused, tie_also=(tau,))
        assert weight is lin.weight and tie.item() == 0.0
        gw, gt = torch.autograd.grad(tie, (lin.weight, tau))
        assert torch.equal(gw, torch.zeros(3, 3)) and gt.item() == 0.0
    with torch.no_grad():
        assert loop_weight(lin, torch.zeros(0, 2, 3), "ALIF", fused=True)[1] is None
    weight, tie = loop_weight(None, torch.zeros(1, 2, 3), "ALIF", fused=True, tie_also=(tau,))   # feed-forward ALIF
    assert weight is None and torch.autograd.grad(tie, tau)[0].item() == 0.0
    assert loop_weight(None, torch.zeros(1, 2, 3), "ALIF", fused=True) == (None, None)
