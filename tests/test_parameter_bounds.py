"""Learned time constants and adaptation are clamped back into range after each step, so none gets stuck past its
bound without gradient."""
import torch
from torch.utils.data import DataLoader, TensorDataset

import snnlab as sl
from snnlab.data.collate import time_major_collate
from snnlab.training import ExperimentConfig, Trainer


def test_lif_and_li_clamp_a_learned_tau_to_one_step():
    for layer in (sl.LIF(tau_mem=3.0, learn_tau=True, n_neurons=3), sl.LI(tau_mem=3.0, learn_tau=True, n_neurons=3)):
        with torch.no_grad():
            layer.tau_mem.copy_(torch.tensor([0.2, 1.0, 4.0]))
        assert layer.clamp_parameters_() is layer
        assert layer.tau_mem.tolist() == [1.0, 1.0, 4.0]


def test_a_tau_on_its_bound_still_gets_a_gradient():
    lif = sl.LIF(tau_mem=2.0, learn_tau=True, n_neurons=2)
    with torch.no_grad():
        lif.tau_mem.fill_(0.5)
    x = torch.full((6, 1, 2), 0.4)
    lif(x).sum().backward()
    assert torch.all(lif.tau_mem.grad == 0)  # past the bound: stuck
    lif.tau_mem.grad = None
    lif.clamp_parameters_()
    lif(x).sum().backward()
    assert torch.all(lif.tau_mem.grad != 0)


def test_alif_clamps_learned_adaptation_and_its_time_constant():
    alif = sl.ALIF(adaptation=0.3, tau_adapt=5.0, learn_adaptation=True, n_neurons=2)
    with torch.no_grad():
        alif.adaptation.copy_(torch.tensor([-0.2, 0.4]))
        alif.tau_adapt.copy_(torch.tensor([0.5, 7.0]))
    alif.clamp_parameters_()
    assert torch.equal(alif.adaptation, torch.tensor([0.0, 0.4])) and alif.tau_adapt.tolist() == [1.0, 7.0]


def test_fixed_constants_are_left_alone():
    lif, alif = sl.LIF(tau_mem=0.5 + 1.0), sl.ALIF(adaptation=0.0, tau_adapt=2.0)
    def state():
        return {**lif.state_dict(), **{"a." + k: v.clone() for k, v in alif.state_dict().items()}}

    before = {k: v.clone() for k, v in state().items()}
    lif.clamp_parameters_(), alif.clamp_parameters_()
    after = state()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_trainer_clamps_after_each_step():
    T, B = 8, 4
    model = sl.Sequential(torch.nn.Linear(3, 5), sl.ALIF(tau_mem=2.0, learn_tau=True, adaptation=0.2,
                                                           learn_adaptation=True, n_neurons=5),
                          torch.nn.Linear(5, 2), sl.LI(tau_mem=2.0, learn_tau=True))
    with torch.no_grad():
        model[1].tau_mem.fill_(0.25)
        model[1].adaptation.fill_(-1.0)
        model[3].tau_mem.fill_(0.5)
    data = TensorDataset(torch.rand(2 * B, T, 3), torch.tensor([0, 1] * B))
    loader = DataLoader(data, batch_size=B, collate_fn=time_major_collate)
    cfg = ExperimentConfig(epochs=1, max_batches_per_epoch=1, eval_max_batches=1, device="cpu", lr=1e-3)
    Trainer(cfg, model=model, train_loader=loader, test_loader=loader, progress=False).run()
    assert bool((model[1].tau_mem >= 1.0).all()) and bool((model[1].adaptation >= 0.0).all())
    assert float(model[3].tau_mem) >= 1.0


def test_the_trainer_leaves_a_custom_modules_own_clamp_parameters_alone():
    class Custom(torch.nn.Module):
        calls = 0

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def clamp_parameters_(self, lo, hi):  # the user's own method of that name
            Custom.calls += 1

        def forward(self, x):
            return self.lin(x)

    T, B = 4, 4
    model = sl.Sequential(Custom(), sl.LI())
    data = TensorDataset(torch.rand(2 * B, T, 3), torch.tensor([0, 1] * B))
    loader = DataLoader(data, batch_size=B, collate_fn=time_major_collate)
    cfg = ExperimentConfig(epochs=1, max_batches_per_epoch=2, eval_max_batches=1, device="cpu")
    Trainer(cfg, model=model, train_loader=loader, test_loader=loader, progress=False).run()
    assert Custom.calls == 0
