"""The Trainer's weight decay acts on the weights only: the neuron layers' learned constants (tau_mem, threshold, an
ALIF's adaptation and tau_adapt) get a group of their own without it, as batch norm's scale and shift do; a
RecurrentLIF's recurrent weight stays a weight. A checkpoint saved with the old grouping still resumes, on it."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.training import ExperimentConfig, Trainer

torch.set_num_threads(1)


def _data() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [((torch.rand(12, 8, 3, generator=g) < 0.4).float(), torch.randint(0, 2, (8,), generator=g))
            for _ in range(2)]


def _net() -> nn.Module:
    torch.manual_seed(1)
    return sl.Sequential(nn.Linear(3, 6), sl.LIF(tau_mem=8.0, learn_tau=True, learn_threshold=True, n_neurons=6),
                         nn.Linear(6, 5), sl.RecurrentLIF(5, tau_mem=8.0, learn_tau=True),
                         nn.Linear(5, 4), sl.ALIF(n_neurons=4, learn_adaptation=True, learn_threshold=True),
                         sl.TimeBatchNorm(4), nn.Linear(4, 2), sl.LI(tau_mem=8.0, learn_tau=True))


def _trainer(model: nn.Module, **cfg) -> Trainer:
    data = _data()
    fields = {"epochs": 1, "max_batches_per_epoch": 1, "eval_max_batches": 1, "lr": 0.05, **cfg}
    return Trainer(ExperimentConfig(**fields), model=model, train_loader=data, test_loader=data, progress=False)


def _group_names(tr: Trainer) -> dict[str, list[str]]:
    names = {id(p): n for n, p in tr.model.named_parameters()}
    return {g["name"]: sorted(names[id(p)] for p in g["params"]) for g in tr.optimizer.param_groups}


CONSTANTS = ["1.threshold", "1.tau_mem", "3.tau_mem", "5.adaptation", "5.tau_adapt", "5.threshold", "8.tau_mem"]


def test_neuron_constants_get_a_group_without_weight_decay():
    tr = _trainer(_net(), weight_decay=0.01)
    groups = _group_names(tr)
    assert groups["neurons"] == sorted(CONSTANTS)
    assert groups["weights"] == sorted(["0.weight", "0.bias", "2.weight", "2.bias", "3.recurrent.weight",
                                        "4.weight", "4.bias", "7.weight", "7.bias"])  # W_rec is a weight
    assert groups["norm"] == ["6.bias", "6.weight"]
    decay = {g["name"]: g["weight_decay"] for g in tr.optimizer.param_groups}
    assert decay == {"weights": 0.01, "neurons": 0.0, "norm": 0.0}


def test_one_sgd_step_decays_the_weights_and_not_the_neuron_constants():
    """From the same start and batch, one SGD step with weight decay moves the constants exactly as one without, and
    each weight by lr * weight_decay * its value more."""
    start = {n: p.detach().clone() for n, p in _net().named_parameters()}
    after = {}
    for wd in (0.0, 0.5):
        tr = _trainer(_net(), optimizer="sgd", weight_decay=wd)
        tr.run()
        after[wd] = {n: p.detach().clone() for n, p in tr.model.named_parameters()}
    for name in CONSTANTS:
        assert torch.equal(after[0.5][name], after[0.0][name]), name
    for name in ("0.weight", "3.recurrent.weight", "7.bias"):
        torch.testing.assert_close(after[0.0][name] - after[0.5][name], 0.05 * 0.5 * start[name])


def _old_grouping(tr: Trainer) -> None:
    """The optimiser as snnlab built it before the neuron constants had a group: among the weights, decayed."""
    params = [p for p in tr.model.parameters() if p.requires_grad]
    bn = {id(p) for m in tr.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) for p in m.parameters()}
    wd = float(tr.cfg.weight_decay)
    tr.optimizer = torch.optim.Adam([
        {"params": [p for p in params if id(p) not in bn], "lr": tr.cfg.lr, "weight_decay": wd, "name": "weights"},
        {"params": [p for p in params if id(p) in bn], "lr": tr.cfg.lr, "weight_decay": 0.0, "name": "norm"}],
        lr=tr.cfg.lr, betas=(0.9, 0.999))


def _resume(run_dir, **cfg) -> tuple[Trainer, list]:
    data = _data()
    fields = {"epochs": 2, "max_batches_per_epoch": 1, "eval_max_batches": 1, "lr": 0.05, **cfg}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr = Trainer(ExperimentConfig(**fields), model=_net(), train_loader=data, test_loader=data, progress=False,
                     resume=run_dir, neuron_constants="checkpoint")
    return tr, [str(w.message) for w in caught if "weight_decay" in str(w.message)]


def test_a_checkpoint_of_the_old_grouping_resumes_on_it_and_says_why(tmp_path):
    data = _data()
    fields = {"max_batches_per_epoch": 1, "eval_max_batches": 1, "lr": 0.05, "weight_decay": 0.01}
    straight = Trainer(ExperimentConfig(epochs=2, **fields), model=_net(), train_loader=data, test_loader=data,
                       progress=False)
    _old_grouping(straight)
    straight.run()
    first = Trainer(ExperimentConfig(epochs=1, **fields), model=_net(), train_loader=data, test_loader=data,
                    progress=False, run_dir=tmp_path / "old")
    _old_grouping(first)
    first.run()
    resumed, told = _resume(tmp_path / "old", weight_decay=0.01)
    assert len(told) == 1 and "applied weight_decay=0.01 to the neurons' learned constants" in told[0]
    assert "goes on decaying them" in told[0] and "start a new run" in told[0]
    assert [g["name"] for g in resumed.optimizer.param_groups] == ["weights", "norm"]
    assert set(CONSTANTS) <= set(_group_names(resumed)["weights"])
    _, quiet = _resume(tmp_path / "old", weight_decay=0.0)  # (no decay: nothing to say)
    assert quiet == []
    resumed.run()
    for (name, p), q in zip(resumed.model.named_parameters(), straight.model.parameters(), strict=True):
        assert torch.equal(p, q), name  # the run goes on as it trained: as the run never interrupted


def test_a_checkpoint_of_the_new_grouping_resumes_on_it(tmp_path):
    data = _data()
    first = Trainer(ExperimentConfig(epochs=1, max_batches_per_epoch=1, eval_max_batches=1, lr=0.05,
                                     weight_decay=0.01), model=_net(), train_loader=data, test_loader=data,
                    progress=False, run_dir=tmp_path / "new")
    first.run()
    resumed, told = _resume(tmp_path / "new", weight_decay=0.01)
    assert told == []
    assert [g["name"] for g in resumed.optimizer.param_groups] == ["weights", "neurons", "norm"]
    assert resumed.optimizer.param_groups[1]["weight_decay"] == 0.0
    assert resumed.optimizer.state_dict()["state"].keys() == first.optimizer.state_dict()["state"].keys()
    resumed.run()
    assert resumed.state == "finished" and resumed.step == 2


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_model_built_from_the_config_puts_learned_constants_in_the_neuron_group(optimizer):
    tr = Trainer(ExperimentConfig(hidden=[8], learn_tau=True, learn_threshold=True, weight_decay=1e-3,
                                  optimizer=optimizer), progress=False)
    groups = _group_names(tr)
    assert groups["neurons"] == ["1.tau_mem", "1.threshold", "3.tau_mem"]
    assert groups["weights"] == ["0.weight", "2.weight"]
