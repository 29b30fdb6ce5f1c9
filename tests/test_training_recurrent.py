"""The experiment config's ``recurrent`` option: hidden RecurrentLIF layers, trained, resumed and accounted for."""
import pytest
import torch

import snnlab as sl
from snnlab.metrics import synops_table
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.config import estimate_memory_bytes
from snnlab.training.model import build_model


def tiny(**kw):
    base = dict(hidden=[32], num_steps=10, batch_size=32, epochs=1, max_batches_per_epoch=4, eval_max_batches=2,
                device="cpu", recurrent=True)
    base.update(kw)
    return ExperimentConfig(**base)


def test_the_hidden_layers_become_recurrent_with_the_config_neuron_options():
    cfg = ExperimentConfig(hidden=[16, 8], recurrent=True, neuron="ttfs", tau_mem=5.0, threshold=0.7, mask_p=0.1,
                           reset="zero", detach_reset=True)
    net = build_model(cfg, 4, 3)
    hidden = [m for m in net if isinstance(m, sl.LIF)]
    assert [type(m).__name__ for m in hidden] == ["RecurrentLIF", "RecurrentLIF"]
    assert [m.n_neurons for m in hidden] == [16, 8] and [tuple(m.recurrent.weight.shape) for m in hidden] == [
        (16, 16), (8, 8)]
    for m in hidden:
        assert m.max_spikes == 1 and m.mask_p == 0.1 and m.reset == "zero" and m.detach_reset
        assert torch.allclose(m.threshold, torch.tensor(0.7)) and torch.allclose(m.beta(), torch.tensor(0.8))
    assert not any(isinstance(m, sl.RecurrentLIF) for m in build_model(cfg.copy(recurrent=False), 4, 3))


def test_label_identity_and_memory_estimate():
    assert "rec" in tiny().label().split() and "rec" not in tiny(recurrent=False).label().split()
    assert "recurrent" not in tiny(recurrent=False).identity_dict()  # run folders of older configs keep their names
    assert tiny().identity_dict()["recurrent"] is True
    on, off = estimate_memory_bytes(tiny(), 64, 10), estimate_memory_bytes(tiny(recurrent=False), 64, 10)
    assert on["parameters"] - off["parameters"] == 32 * 32
    assert on["activation_bytes"] == off["activation_bytes"]  # (the fused layer keeps what a LIF keeps)
    masked = estimate_memory_bytes(tiny(mask_p=0.1), 64, 10)["activation_bytes"]
    assert masked > estimate_memory_bytes(tiny(mask_p=0.1, recurrent=False), 64, 10)["activation_bytes"]


def test_a_recurrent_network_trains_resumes_and_counts_its_recurrent_synops(tmp_path):
    cfg = tiny(epochs=2, max_batches_per_epoch=3, neuron="noisy", encoding="rate")
    full = Trainer(cfg, progress=False)
    full.run()
    losses = [r["loss"] for r in full.history.steps()]
    first = Trainer(cfg, run_dir=tmp_path, progress=False)
    first.events.subscribe(lambda e: first.stop(), kinds=["epoch"])
    first.run()
    resumed = Trainer.resume_from(tmp_path / "checkpoint.pt", progress=False)
    resumed.run()
    assert resumed.state == "finished"
    assert [r["loss"] for r in resumed.history.steps()] == pytest.approx(losses, rel=1e-5, abs=1e-6)
    w = resumed.model[1].recurrent.weight
    assert torch.equal(w, full.model[1].recurrent.weight)
    x, y = next(iter(resumed.test_loader))
    table = synops_table(resumed.model.eval(), [(x, y)]).set_index("layer")
    assert "1.recurrent" in table.index and table.loc["1.recurrent", "acs_per_sample"] > 0


def test_tau_syn_puts_a_synaptic_current_before_each_hidden_lif():
    """Current-based (CuBa) LIF neurons: I[t] = (1 - 1/tau_syn) I[t-1] + W x[t], then the LIF on I."""
    cfg = ExperimentConfig(hidden=[6, 5], tau_syn=4.0, batch_norm=True)
    net = build_model(cfg, 3, 2)
    assert [type(m).__name__ for m in net] == ["Linear", "TimeBatchNorm", "LI", "LIF", "Linear", "TimeBatchNorm", "LI",
                                               "LIF", "Linear", "LI"]
    assert torch.allclose(net[2].beta(), torch.tensor(0.75)) and torch.allclose(net[9].beta(), torch.tensor(0.9))
    net.eval()
    x = torch.rand(12, 2, 3)
    current = net[2](net[1](net[0](x)))
    manual = torch.zeros_like(current)
    for t in range(12):
        manual[t] = net[1](net[0](x))[t] + (0.75 * manual[t - 1] if t else 0)
    torch.testing.assert_close(current, manual)
    assert "syn4" in cfg.label().split() and "tau_syn" not in ExperimentConfig().identity_dict()
    trainer = Trainer(tiny(recurrent=False, tau_syn=3.0, epochs=1, max_batches_per_epoch=2), progress=False)
    result = trainer.run()["final"]
    assert result["spikes_per_sample"] > 0 and 0 <= result["accuracy"] <= 1
    with pytest.raises(ValueError, match="tau_syn"):
        ExperimentConfig(tau_syn=0.5)
