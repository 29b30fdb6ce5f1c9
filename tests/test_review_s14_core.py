"""Review of the s14 core changes (recurrent synapse hooks): regressions found by the attacking review."""
from __future__ import annotations

import warnings

import pytest
import torch

import snnlab as sl


def _layers():
    return {"RecurrentLIF": lambda: sl.RecurrentLIF(tau_mem=5.0, n_neurons=4),
            "ALIF": lambda: sl.ALIF(tau_mem=5.0, n_neurons=4, recurrent=True)}


@pytest.mark.parametrize("kind", ["RecurrentLIF", "ALIF"])
def test_an_input_changing_pre_hook_on_a_registered_weight_is_not_dropped_silently(kind):
    """The fused loop never calls the recurrent nn.Linear: a forward pre-hook on a plain (registered) weight, e.g.
    one that scales the fed-back spikes, does not run there. It was ignored without a word (other outputs than
    backend='reference' gives); it is now named in a UserWarning pointing at the caller's line."""
    torch.manual_seed(0)
    layer = _layers()[kind]()
    layer.recurrent.register_forward_pre_hook(lambda m, args: (args[0] * 0.0,))
    x = torch.rand(6, 2, 4) * 2
    with pytest.warns(UserWarning, match=f"^{kind}: the recurrent nn.Linear has forward pre-hooks.*backend='reference'") as rec:
        layer(x)
    assert rec[0].filename == __file__
    layer.backend = "reference"   # runs them: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(x)


def test_the_forward_hook_warning_points_at_the_callers_line():
    layer = sl.RecurrentLIF(tau_mem=5.0, n_neurons=4)
    layer.recurrent.register_forward_hook(lambda m, i, o: None)
    with pytest.warns(UserWarning, match="forward or backward hooks") as rec:
        layer(torch.rand(5, 2, 4))
    assert rec[0].filename == __file__   # (stacklevel=4 named torch's nn/modules/module.py)
