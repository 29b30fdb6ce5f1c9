"""The config's precision: bfloat16 forward passes under torch.autocast, float32 weights, exact spike counts."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import snnlab as sl
from snnlab.data.collate import time_major_collate
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.precision import check_precision, forward_precision


def tiny(**kw):
    base = dict(hidden=[32], num_steps=10, batch_size=32, epochs=1, max_batches_per_epoch=4, eval_max_batches=2,
                device="cpu")
    base.update(kw)
    return ExperimentConfig(**base)


def test_the_default_is_float32_and_keeps_the_identity_of_older_runs():
    cfg = ExperimentConfig()
    assert cfg.precision == "float32"
    assert "precision" not in cfg.identity_dict()
    assert ExperimentConfig(precision="bfloat16").identity_dict()["precision"] == "bfloat16"
    with pytest.raises(ValueError):
        ExperimentConfig(precision="float16")


def _record_linear_dtypes(model, seen):
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.register_forward_hook(lambda mod, inp, out: seen.append((mod.training, out.dtype)))


@pytest.mark.parametrize("precision, dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16)])
def test_training_and_evaluation_run_their_forward_in_the_configured_precision(precision, dtype):
    tr = Trainer(tiny(precision=precision, lr=5e-3, epochs=2), progress=False)
    seen = []
    _record_linear_dtypes(tr.model, seen)
    result = tr.run()
    assert {d for _, d in seen} == {dtype}
    assert {training for training, _ in seen} == {True, False}  # training steps and evaluations
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in tr.model.parameters()
               if p.grad is not None)
    steps = tr.history_frame("step")
    assert steps.loss.notna().all() and result["final"]["accuracy"] > 0.15  # chance 0.1
    assert steps.loss.iloc[-2:].mean() < steps.loss.iloc[:2].mean()


def test_bfloat16_spike_counts_are_exact():
    """Every neuron fires at every step: 21 * 63 = 1323 spikes per sample, 10584 per batch of 8, which bfloat16
    cannot hold (a bfloat16 sum said 10560 per batch)."""
    T, B, N = 21, 8, 63
    model = sl.Sequential(torch.nn.Linear(4, N), sl.LIF(threshold=0.5), torch.nn.Linear(N, 3), sl.LI())
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(4.0)
    data = TensorDataset(torch.ones(2 * B, T, 4), torch.zeros(2 * B, dtype=torch.long))
    loader = DataLoader(data, batch_size=B, collate_fn=time_major_collate)
    tr = Trainer(tiny(precision="bfloat16", max_batches_per_epoch=1, eval_max_batches=1), model=model,
                 train_loader=loader, test_loader=loader, progress=False)
    tr.run()
    assert tr.history_frame("step").spikes_per_sample.tolist() == [T * N]


def test_check_precision_refuses_a_gpu_without_bfloat16(monkeypatch):
    """Review: torch.cuda.is_bf16_supported() says yes for a V100 (emulated), and it asked the current device, not
    the one given: the check reads the given device's compute capability."""
    capability = {0: (7, 0), 1: (9, 0)}
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: capability[torch.device(d).index or 0])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Tesla V100")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    with pytest.raises(ValueError, match="Tesla V100 has no bfloat16"):
        check_precision("bfloat16", torch.device("cuda:0"))
    check_precision("bfloat16", torch.device("cuda:1"))  # an H100 beside it
    check_precision("float32", torch.device("cuda:0"))


def test_forward_precision_leaves_float32_alone():
    lin = torch.nn.Linear(3, 2)
    with forward_precision("float32", torch.device("cpu")):
        assert lin(torch.ones(1, 3)).dtype == torch.float32
    with pytest.raises(ValueError, match="precision must be"):
        forward_precision("half", torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (benchmarks/run_gpu.sh runs it on a lent GPU)")
def test_bfloat16_training_on_cuda_feeds_the_neurons_bfloat16_and_learns():
    tr = Trainer(tiny(device="cuda", precision="bfloat16", lr=5e-3, epochs=2), progress=False)
    lif_inputs = []
    for m in tr.model.modules():
        if isinstance(m, sl.LIF):
            m.register_forward_pre_hook(lambda mod, args: lif_inputs.append(args[0].dtype))
    result = tr.run()
    assert set(lif_inputs) == {torch.bfloat16}
    assert result["final"]["accuracy"] > 0.15
