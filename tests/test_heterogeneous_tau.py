"""Heterogeneous membrane time constants: LIF/LI.spread_tau_ and the config field tau_mem_cv."""
import math

import pytest
import torch

import snnlab as sl
from snnlab.training import ExperimentConfig
from snnlab.training.model import build_model


@pytest.mark.parametrize("learn", [False, True])
def test_spread_keeps_the_mean_and_gives_the_coefficient_of_variation(learn):
    lif = sl.LIF(tau_mem=15.0, n_neurons=40_000, learn_tau=learn)
    out = lif.spread_tau_(0.4, torch.Generator().manual_seed(1))
    assert out is lif
    tau = (1 / (1 - lif.beta())).detach().double()
    assert tau.mean().item() == pytest.approx(15.0, rel=0.01)
    assert (tau.std() / tau.mean()).item() == pytest.approx(0.4, rel=0.03)
    assert tau.min() >= 1.0 and len(tau.unique()) > 39_000
    if learn:
        assert lif.tau_mem.requires_grad and torch.allclose(lif.tau_mem.detach().double(), tau, rtol=1e-5)


def test_a_short_time_constant_keeps_its_mean_above_one_step():
    """Probe: clamping the draws at 1 step raised the mean of tau_mem=2 to 2.28 at cv=2 and put 54 % of the neurons at
    exactly 1 step (no memory). The part above 1 step is spread instead: the mean stays, nothing is clamped."""
    wide = sl.LI(tau_mem=2.0, n_neurons=200_000).spread_tau_(2.0, torch.Generator().manual_seed(0))
    tau = (1 / (1 - wide.beta())).double()
    assert tau.mean().item() == pytest.approx(2.0, rel=0.01) and float(tau.min()) > 1.0
    assert float((tau == 1.0).float().mean()) == 0.0 and 1.5 < float(tau.std() / tau.mean()) < 2.1
    stuck = sl.LIF(beta=0.0, n_neurons=4).spread_tau_(1.0)   # 1 step leaves no room: it stays
    assert torch.equal(stuck.beta(), torch.zeros(4))


def test_spread_is_seeded_and_zero_changes_nothing():
    a = sl.LIF(n_neurons=7).spread_tau_(0.5, torch.Generator().manual_seed(3))
    b = sl.LIF(n_neurons=7).spread_tau_(0.5, torch.Generator().manual_seed(3))
    assert torch.equal(a.beta(), b.beta())
    same = sl.LIF(tau_mem=8.0, n_neurons=7).spread_tau_(0.0)
    assert torch.allclose(same.beta(), torch.full((7,), 1 - 1 / 8.0))


def test_spread_refuses_what_it_cannot_do():
    with pytest.raises(ValueError, match="LIF: spread_tau_ needs one time constant per neuron"):
        sl.LIF().spread_tau_(0.3)
    with pytest.raises(ValueError, match="LIF: cv"):
        sl.LIF(n_neurons=3).spread_tau_(-0.1)
    with pytest.raises(ValueError, match="LIF: cv must be a finite number >= 0"):
        sl.LIF(n_neurons=3).spread_tau_(math.inf)
    with pytest.raises(ValueError, match="LIF: cv must be at most 10"):
        sl.LIF(n_neurons=3).spread_tau_(1e200)
    with pytest.raises(ValueError, match="needs finite time constants"):
        sl.LIF(beta=1.0, n_neurons=3).spread_tau_(0.3)


@pytest.mark.parametrize("extra", [{}, {"recurrent": True}, {"adaptation": 0.3}, {"learn_tau": True}])
def test_configs_spread_the_hidden_layers(extra):
    torch.manual_seed(0)
    net = build_model(ExperimentConfig(hidden=[300, 200], tau_mem=10.0, tau_mem_cv=0.5, **extra), 5, 3)
    hidden = [m for m in net if isinstance(m, sl.LIF)]
    assert [m.n_neurons for m in hidden] == [300, 200]
    for m in hidden:
        tau = 1 / (1 - m.beta().detach())
        assert 0.3 < float(tau.std() / tau.mean()) < 0.7 and 8 < float(tau.mean()) < 12
    readout = net[-1]
    assert isinstance(readout, sl.LI) and readout.n_neurons is None  # the readout keeps one tau
    out = net(torch.rand(6, 2, 5))
    assert out.shape == (6, 2, 3)


def test_the_field_is_off_by_default_and_named_in_the_label():
    assert "tau_mem_cv" not in ExperimentConfig().identity_dict()  # older run folders keep their names
    assert "taucv0.3" in ExperimentConfig(tau_mem_cv=0.3).label().split()
    plain = build_model(ExperimentConfig(hidden=[4]), 5, 3)
    assert plain[1].n_neurons is None
