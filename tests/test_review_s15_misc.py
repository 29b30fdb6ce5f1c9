"""Review (s15) of today's custom-surrogate, robustness and NIR export changes: regressions found and mended."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import snnlab as sl

pytest.importorskip("nir")
from snnlab.interop.nir import to_nir  # noqa: E402


def _weights(graph) -> list[torch.Tensor]:
    out = []
    for node in graph.nodes.values():
        if hasattr(node, "nodes"):
            out += _weights(node)
        elif hasattr(node, "weight"):
            out.append(torch.as_tensor(node.weight))
    return out


def test_to_nir_of_a_train_mode_parametrized_spectral_norm_leaves_the_model_state_and_exports_the_eval_weight():
    # was: reading the parametrized weight in train mode ran a power iteration: the export moved _u / _v (a later
    # training or resume was no longer the same) and exported the weight of one more iteration, not eval mode's
    torch.manual_seed(0)
    model = sl.Sequential(nn.Linear(4, 6), sl.RecurrentLIF(n_neurons=6), nn.Linear(6, 3), sl.LI())
    nn.utils.parametrizations.spectral_norm(model[0], n_power_iterations=1, eps=1e-12)
    nn.utils.parametrizations.spectral_norm(model[1].recurrent, n_power_iterations=1, eps=1e-12)
    with torch.no_grad():  # vectors far from converged, so one more power iteration shows
        for lin in (model[0], model[1].recurrent):
            sn = lin.parametrizations.weight[0]
            sn._u.copy_(torch.nn.functional.normalize(torch.randn_like(sn._u), dim=0))
            sn._v.copy_(torch.nn.functional.normalize(torch.randn_like(sn._v), dim=0))
    model.train()
    expected = copy.deepcopy(model).eval()
    with torch.no_grad():
        want = [expected[0].weight.clone(), expected[1].recurrent.weight.clone()]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph = to_nir(model, dt=1e-3)
    after = model.state_dict()
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    assert model.training and all(p.training for p in model[0].parametrizations.weight.modules())
    got = _weights(graph)
    for w in want:
        assert any(g.shape == w.shape and torch.allclose(g.to(w.dtype), w, atol=1e-6) for g in got), w
