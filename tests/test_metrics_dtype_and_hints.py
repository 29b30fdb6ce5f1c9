"""input_dtype for models that start with neuron layers (kept in float32 in half precision), the transposed-input
hint of check_time_major, and the degenerate inputs of pareto_front / pareto_mask (tester1 reports)."""
from __future__ import annotations

import re

import pandas as pd
import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.metrics import evaluate, input_dtype, robustness_curve
from snnlab.metrics.pareto import pareto_front, pareto_mask


# ------------------------------------------------------------------------------------------------ input_dtype
def _neurons_first(dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return sl.Sequential(sl.LIF(learn_threshold=True), nn.Linear(4, 3), sl.LI()).to(dtype)


@pytest.mark.parametrize("model,expected", [
    # a learnable threshold / tau first: float32 parameters in a half-precision model
    (lambda: _neurons_first(torch.bfloat16), torch.bfloat16),
    (lambda: _neurons_first(torch.float16), torch.float16),
    (lambda: sl.Sequential(sl.LIF(learn_tau=True, learn_threshold=True), nn.Linear(4, 3)).bfloat16(), torch.bfloat16),
    (lambda: sl.Sequential(sl.ALIF(learn_adaptation=True), nn.Linear(4, 3)).half(), torch.float16),
    # fixed constants (buffers) first, then a layer's parameters
    (lambda: sl.Sequential(sl.LIF(), nn.Linear(4, 3), sl.LI()).bfloat16(), torch.bfloat16),
    (lambda: _neurons_first(torch.float64), torch.float64),
    (lambda: _neurons_first(torch.float32), torch.float32),
    # neuron layers only: the dtype they keep and compute in
    (lambda: sl.Sequential(sl.LIF(learn_threshold=True), sl.LI()).bfloat16(), torch.float32),
    (lambda: sl.Sequential(sl.LIF(), sl.LI()).double(), torch.float64),
    # a mixed model: the first layer that is not a neuron layer decides, as before
    (lambda: sl.Sequential(sl.LIF(learn_threshold=True).double(), nn.Linear(4, 3), sl.LI()), torch.float32),
    (lambda: sl.Sequential(nn.Linear(4, 3).double(), nn.Linear(3, 3).bfloat16()), torch.float64),
    # nothing floating
    (lambda: sl.Sequential(nn.ReLU()), None),
])
def test_input_dtype_skips_the_full_precision_neuron_constants(model, expected):
    assert input_dtype(model()) == expected


def test_input_dtype_buffers_of_other_layers_before_neuron_constants():
    """A model whose only floating tensors besides the neurons' are buffers (a BatchNorm without affine)."""
    net = sl.Sequential(sl.LIF(learn_threshold=True), nn.BatchNorm1d(4, affine=False)).bfloat16()
    assert net[0].threshold.dtype == torch.float32 and input_dtype(net) == torch.bfloat16


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_evaluate_and_robustness_run_a_half_model_that_starts_with_neurons(dtype):
    """Probe bug_eval_input_dtype: 'mat1 and mat2 must have the same dtype, but got Float and BFloat16'."""
    x = torch.rand(5, 4, 4, generator=torch.Generator().manual_seed(0)) * 3
    y = torch.tensor([0, 1, 2, 0])
    net = _neurons_first(dtype)
    direct = net(x.to(dtype)).sum(0).argmax(-1)
    got = evaluate(net, [(x, y)])
    assert got["n_samples"] == 4
    assert got["accuracy"] == pytest.approx(float((direct == y).float().mean()))
    assert got["accuracy"] == evaluate(net, [(x.to(dtype), y)])["accuracy"]  # float32 data as the model's own
    curve = robustness_curve(net, [(x, y)], "deletion", [0.0, 0.5])
    assert curve["accuracy"].tolist()[0] == pytest.approx(got["accuracy"])
    assert len(curve) == 2


def test_trainer_trains_a_bfloat16_model_that_starts_with_neurons():
    from snnlab.training import ExperimentConfig, Trainer

    x = torch.rand(5, 4, 4, generator=torch.Generator().manual_seed(0)) * 3
    y = torch.tensor([0, 1, 2, 0])
    tr = Trainer(ExperimentConfig(epochs=1, max_batches_per_epoch=1, device="cpu"), model=_neurons_first(torch.bfloat16),
                 train_loader=[(x, y)], test_loader=[(x, y)], progress=False)
    res = tr.run()
    assert tr.state == "finished" and res["final"]["n_samples"] == 4


def test_raster_explorer_runs_a_bfloat16_model_that_starts_with_neurons():
    pytest.importorskip("ipywidgets")
    from snnlab.widgets import RasterExplorer

    x = torch.rand(5, 2, 4, generator=torch.Generator().manual_seed(0)) * 3
    spikes = RasterExplorer(_neurons_first(torch.bfloat16), x).spikes
    assert spikes["0"].shape == (5, 2, 4)


# --------------------------------------------------------------------------------------- transposed-input hint
_ADVICE = re.compile(r"for x laid out \[(\w), (\w), (\w)\][^;.]*? use x\.permute\((\d), (\d), (\d)\)")

# (the layout x is in, the permutation of a [T, B, N] tensor that gives it)
LAYOUTS = {"TNB": (0, 2, 1), "BNT": (1, 2, 0), "NTB": (2, 0, 1), "NBT": (2, 1, 0)}


def _layers():
    torch.manual_seed(0)
    return {"LIF": sl.LIF(n_neurons=5), "LI": sl.LI(n_neurons=5), "ALIF": sl.ALIF(n_neurons=5),
            "DelayedLinear": sl.DelayedLinear(5, 3, max_delay=2)}


@pytest.mark.parametrize("name", ["LIF", "LI", "ALIF", "DelayedLinear"])
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_the_advised_permutation_gives_a_tensor_the_layer_runs(name, layout):
    """Probe bug_transposed_hint: the hint said x.permute(1, 0, 2) for features in dimension 1, which left them
    out of the last dimension (the same error again)."""
    layer = _layers()[name]
    good = torch.rand(7, 3, 5, generator=torch.Generator().manual_seed(1)) * 2  # [T=7, B=3, N=5]
    x = good.permute(*LAYOUTS[layout])
    with pytest.raises(ValueError) as err:
        layer(x)
    advice = {"".join(m[:3]): tuple(int(d) for d in m[3:]) for m in _ADVICE.findall(str(err.value))}
    assert layout in advice, str(err.value)
    assert len(advice) == 2 and all(sorted(p) == [0, 1, 2] for p in advice.values())
    fixed = x.permute(*advice[layout])
    assert fixed.shape == good.shape and torch.equal(fixed, good)
    assert torch.equal(layer(fixed), layer(good))
    for other in advice.values():  # both choices put the features last: the layer runs on either
        assert x.permute(*other).shape[-1] == 5
        layer(x.permute(*other))


@pytest.mark.parametrize("shape", [(5, 5, 2), (3, 2, 4), (2, 3, 4), (6, 2, 5, 3)])
def test_no_permute_hint_when_where_the_features_are_is_a_guess(shape):
    """Features in both leading dimensions, or none, or a 4-D tensor: no advice that might be wrong."""
    with pytest.raises(ValueError, match="expects 5") as err:
        sl.LIF(n_neurons=5)(torch.rand(*shape))
    assert "permute" not in str(err.value)


# ------------------------------------------------------------------------------------------------ pareto
DF = pd.DataFrame({"accuracy": [0.9, 0.8, 0.85], "spikes": [100, 20, 150], "name": ["a", "b", "c"]})


def test_pareto_front_without_objectives_is_a_clear_error():
    """Probe bug_pareto_empty: pareto_front(df, {}) raised a bare IndexError."""
    with pytest.raises(ValueError, match=r"pareto_front: objectives is empty"):
        pareto_front(DF, {})
    with pytest.raises(ValueError, match=r"pareto_front: objectives is empty"):
        pareto_front(DF.iloc[:0], {})


def test_pareto_mask_without_objectives_is_a_clear_error():
    with pytest.raises(ValueError, match=r"pareto_mask: give at least one objective"):
        pareto_mask([[1.0], [2.0]], [])


@pytest.mark.parametrize("df,objectives,exc,match", [
    (DF, ["accuracy"], TypeError, r"pareto_front: objectives must be a dict"),
    (DF, "accuracy", TypeError, r"pareto_front: objectives must be a dict"),
    (DF.to_dict("list"), {"accuracy": "max"}, TypeError, r"pareto_front: df must be a pandas DataFrame"),
    (DF, {"name": "max"}, ValueError, r"pareto_front: the objective columns \['name'\] must hold numbers"),
    (DF.set_axis(["accuracy", "accuracy", "name"], axis=1), {"accuracy": "max"}, ValueError, r"appears 2 times"),
    # what already worked
    (DF, {"nope": "max"}, ValueError, r"pareto_front: no column 'nope'"),
    (DF, {"accuracy": "up"}, ValueError, r"pareto_front: objective 'accuracy' must be 'max' or 'min', got 'up'"),
    (DF, {"accuracy": "MAX"}, ValueError, r"must be 'max' or 'min'"),
])
def test_pareto_front_bad_inputs(df, objectives, exc, match):
    with pytest.raises(exc, match=match):
        pareto_front(df, objectives)


def test_pareto_front_still_works():
    assert pareto_front(DF, {"accuracy": "max", "spikes": "min"})["accuracy"].tolist() == [0.8, 0.9]
    assert pareto_front(DF, {"spikes": "min"})["name"].tolist() == ["b"]
    empty = pareto_front(DF.iloc[:0], {"accuracy": "max"})
    assert empty.empty and list(empty.columns) == list(DF.columns)
    assert pareto_mask([[0.9, 100], [0.8, 20], [0.85, 150]], [True, False]).tolist() == [True, True, False]
