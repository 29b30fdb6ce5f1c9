"""Habits brought from other SNN libraries (per-step calls, a decay factor as the first argument, 2-D steps, an own
training loop) meet docs and errors that say what snnlab does instead."""
import importlib
import re

import pytest
import torch

import snnlab as sl
from snnlab.core import neurons
from snnlab.metrics import EVALUATE_KEYS


def _words(text: str) -> str:
    return " ".join(text.split())


def test_the_neuron_docstrings_say_each_call_is_a_whole_sequence_from_rest():
    x = torch.rand(12, 2, 3) * 0.6
    lif = sl.LIF(tau_mem=5.0, threshold=0.5)
    per_step = torch.cat([lif(x[t:t + 1]) for t in range(x.shape[0])])
    assert not torch.equal(per_step, lif(x))  # the behaviour the docs describe: no membrane carried between calls
    lif.carry_state = True  # unless asked for
    assert torch.equal(torch.cat([lif(x[t:t + 1]) for t in range(x.shape[0])]), sl.LIF(tau_mem=5.0, threshold=0.5)(x))
    for layer in (sl.LIF, sl.LI, sl.ALIF):
        doc = _words(layer.__doc__)
        assert "whole sequence from rest" in doc and "no state is carried between calls" in doc, layer.__name__
    for layer in (sl.LIF, sl.LI):
        assert "no state is carried between calls unless ``carry_state=True``" in _words(layer.__doc__)
    monitor = _words(sl.Monitor.__doc__)
    assert "gives ``[T, B, N]``" not in monitor and "whole sequence from rest" in monitor


@pytest.mark.parametrize("layer,value,equivalent", [(sl.LIF, 0.9, "10"), (sl.LI, 0.5, "2"), (sl.ALIF, 0.99, "100")])
def test_a_decay_factor_given_as_tau_mem_gets_the_equivalent_tau_mem(layer, value, equivalent):
    with pytest.raises(ValueError, match=r"tau_mem must be >= 1 time step") as err:
        layer(value)
    message = str(err.value)
    assert "tau_mem is in time steps, not a decay factor" in message
    assert f"tau_mem={equivalent}," in message and f"beta={value!r} by keyword" in message
    # the relation the hint states is the layers' own
    beta = float(layer(tau_mem=float(equivalent)).beta())
    assert beta == pytest.approx(value, rel=1e-6)
    with pytest.raises(ValueError) as err:  # outside (0, 1): the message as it was
        layer(tau_mem=0.0)
    assert str(err.value) == f"{layer.__name__}: tau_mem must be a finite number > 0, got 0.0"


def test_a_2d_input_error_names_both_readings():
    with pytest.raises(ValueError) as err:
        sl.LIF()(torch.rand(4, 3))
    message = str(err.value)
    assert "[T, F] use x.unsqueeze(1)" in message and "[B, F] use x.unsqueeze(0)" in message
    assert "whole sequence from rest" in message


def test_the_evaluate_module_docstring_lists_exactly_the_evaluate_keys():
    module = importlib.import_module("snnlab.metrics.evaluate")  # (snnlab.metrics.evaluate: the function)
    block = re.search(r"::\s*\{(.*?)\}", module.__doc__, re.S)
    assert block is not None
    assert tuple(re.findall(r'"(\w+)"', block.group(1))) == EVALUATE_KEYS


@pytest.mark.parametrize("make", [
    lambda: sl.LIF(learn_threshold=True, n_neurons=3),
    lambda: sl.ALIF(learn_threshold=True, n_neurons=3),
    lambda: sl.RecurrentLIF(3, learn_threshold=True),
], ids=["LIF", "ALIF", "RecurrentLIF"])
def test_clamp_parameters_keeps_a_learned_threshold_above_zero(make):
    floor = float(torch.finfo(torch.float32).tiny)  # the documented floor: the smallest normal float32
    layer = make()
    with torch.no_grad():
        layer.threshold.copy_(torch.tensor([-0.5, 0.0, 0.7]))
    assert layer.clamp_parameters_() is layer
    assert layer.threshold.detach().tolist() == [floor, floor, pytest.approx(0.7)]
    assert float(layer.threshold.detach()[2]) == float(torch.tensor(0.7))  # in range: untouched
    assert float(layer(torch.zeros(5, 1, 3)).detach().sum()) == 0.0  # no spikes on zero input
    assert neurons.MIN_LEARNED_THRESHOLD == floor
    tiny = sl.LIF(threshold=1e-30, learn_threshold=True)  # tiny, but what the constructor accepts: left alone
    before = tiny.threshold.detach().clone()
    assert torch.equal(tiny.clamp_parameters_().threshold.detach(), before)
