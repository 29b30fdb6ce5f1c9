"""Review s15 (core): reset_parameters of a model built on the meta device with a ``recurrent_init="zeros"`` layer,
orthogonal recurrent weights in half precision, the recurrent module check on ``add_module`` / ``register_module``,
and the global-hook warning naming the hooks."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import snnlab as sl

N = 5
LAYERS = {
    "RecurrentLIF": lambda **kw: sl.RecurrentLIF(N, **kw),
    "ALIF": lambda **kw: sl.ALIF(n_neurons=N, recurrent=True, **kw),
}
KINDS = sorted(LAYERS)


def _reset_all(model):
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()


@pytest.mark.parametrize("kind", KINDS)
def test_meta_build_with_zero_recurrent_weight_resets_the_next_layers_as_a_fresh_construction(kind):
    # the construction's nn.Linear draws its default before the weight is zeroed: resetting every module must draw
    # as much, or every layer after it gets other values (the old code: the readout differed)
    def build():
        return nn.Sequential(LAYERS[kind](recurrent_init="zeros"), nn.Linear(N, 3))

    torch.manual_seed(0)
    fresh = build()
    with torch.device("meta"):
        model = build()
    model = model.to_empty(device="cpu")
    torch.manual_seed(0)
    _reset_all(model)
    expected, got = fresh.state_dict(), model.state_dict()
    assert [k for k in expected if not torch.equal(expected[k], got[k])] == []
    assert not bool(model[0].recurrent.weight.count_nonzero())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("kind", KINDS)
def test_orthogonal_recurrent_weight_in_half_precision(kind, dtype):
    # torch's QR has no half-precision kernel: the old code raised NotImplementedError ("geqrf_cpu")
    layer = LAYERS[kind](recurrent_init="orthogonal").to(dtype)
    torch.manual_seed(1)
    layer.reset_recurrent("orthogonal")
    w = layer.recurrent.weight
    assert w.dtype == dtype
    assert torch.allclose(w.float() @ w.float().T, torch.eye(N), atol=2e-2)
    layer.reset_parameters()  # (meta build, .half(), to_empty, reset_parameters: the same path)
    assert torch.allclose(layer.recurrent.weight.float() @ layer.recurrent.weight.float().T, torch.eye(N), atol=2e-2)


def test_orthogonal_construction_under_a_half_precision_default_dtype():
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        layer = sl.RecurrentLIF(N, recurrent_init="orthogonal")
    finally:
        torch.set_default_dtype(before)
    w = layer.recurrent.weight.float()
    assert torch.allclose(w @ w.T, torch.eye(N), atol=2e-2)


def test_orthogonal_float32_draw_unchanged():
    # the float32 path draws as before: the same numbers as nn.init.orthogonal_ for the same seed
    torch.manual_seed(3)
    layer = sl.RecurrentLIF(N)
    torch.manual_seed(4)
    layer.reset_recurrent("orthogonal")
    torch.manual_seed(4)
    expected = nn.init.orthogonal_(torch.empty(N, N))
    assert torch.equal(layer.recurrent.weight, expected)


@pytest.mark.parametrize("how", ["add_module", "register_module"])
@pytest.mark.parametrize("kind", KINDS)
def test_recurrent_module_registered_by_name_is_checked_as_an_assignment(kind, how):
    # the old code took it, and the fused path then named 'backend=reference', which failed on a missing weight
    layer = LAYERS[kind]()
    with pytest.raises(TypeError, match=rf"^{kind}: the recurrent synapses must be an nn.Linear"):
        getattr(layer, how)("recurrent", nn.Sequential())
    assert isinstance(layer.recurrent, nn.Linear)
    with pytest.raises(ValueError, match="in_features = out_features"):
        getattr(layer, how)("recurrent", nn.Linear(N, N + 1, bias=False))
    replacement = nn.Linear(N, N, bias=False)
    getattr(layer, how)("recurrent", replacement)  # a legit replacement still works
    assert layer.recurrent is replacement
    layer(torch.rand(4, 2, N))


def test_feed_forward_alif_add_module_none_is_fine():
    layer = sl.ALIF(n_neurons=N, recurrent=True)
    layer.add_module("recurrent", None)
    assert layer.recurrent is None
    layer(torch.rand(3, 2, N))


def test_global_hook_warning_names_the_hooks():
    def review_s15_probe_hook(module, args, out):
        return None

    handle = nn.modules.module.register_module_forward_hook(review_s15_probe_hook)
    try:
        layer = sl.RecurrentLIF(N)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            layer(torch.rand(3, 2, N))
        named = [str(r.message) for r in rec if "global module hooks" in str(r.message)]
        assert len(named) == 1 and "forward hook" in named[0] and "review_s15_probe_hook" in named[0], named
    finally:
        handle.remove()
