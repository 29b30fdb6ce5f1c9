"""The library's loops over batches of whole sequences run every batch from rest whatever the layers' carry_state,
and give a stream its carried membrane back: evaluate, robustness_curve, the Trainer's steps, the raster explorer's
recording (snnlab.core.network.carry_suspended). SynOpsCounter counts the chunks of one stream as one set of samples."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import snnlab as sl
from snnlab.data.collate import time_major_collate
from snnlab.metrics import evaluate, robustness_curve
from snnlab.metrics.synops import SynOpsCounter
from snnlab.training import ExperimentConfig, Trainer

T, N, C = 10, 4, 3


def _net(carry: bool, seed: int = 0) -> sl.Sequential:
    torch.manual_seed(seed)
    return sl.Sequential(torch.nn.Linear(N, 8), sl.LIF(carry_state=carry), torch.nn.Linear(8, C),
                         sl.LI(carry_state=carry))


def _batches(sizes=(5, 5, 5), seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.rand(T, b, N, generator=g) * 2, torch.randint(0, C, (b,), generator=g)) for b in sizes]


def _layers(net: torch.nn.Module) -> list:
    return [m for m in net.modules() if isinstance(m, (sl.LIF, sl.LI))]


def _stream_started(net: sl.Sequential, batch: int = 2) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A stream of ``batch`` sequences whose first chunk ran; returns the whole sequence and the carried membranes."""
    x = torch.rand(12, batch, N, generator=torch.Generator().manual_seed(7)) * 2
    net(x[:6])
    return x, [m.carried_membrane.clone() for m in _layers(net)]


def _continues(net: sl.Sequential, x: torch.Tensor, kept: list[torch.Tensor]) -> None:
    """The stream's membranes and flags are as they were, and its second chunk ends as the whole sequence does."""
    layers = _layers(net)
    assert all(m.carry_state for m in layers)
    assert all(torch.equal(m.carried_membrane, k) for m, k in zip(layers, kept, strict=True))
    second = net(x[6:])
    sl.reset_states(net)
    whole = net(x)[6:]
    torch.testing.assert_close(second, whole, rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ evaluate
def test_evaluate_runs_every_batch_from_rest_whatever_carry_state():
    loader = _batches()
    carrying, plain = _net(True), _net(False)
    assert evaluate(carrying, loader) == evaluate(plain, loader)
    assert all(m.carried_membrane is None for m in _layers(carrying))  # (nothing carried before, nothing after)


def test_a_stream_continues_after_an_evaluate_in_between():
    net = _net(True)
    x, kept = _stream_started(net, batch=2)
    evaluate(net, _batches((5, 3)))  # (other batch sizes than the stream's)
    _continues(net, x, kept)


# ------------------------------------------------------------------------------ robustness_curve
def test_robustness_curve_runs_every_batch_from_rest_and_keeps_a_stream():
    loader = [(x.round().clamp(0, 1), y) for x, y in _batches()]
    plain = robustness_curve(_net(False), loader, "deletion", [0.0, 0.3])
    net = _net(True)
    x, kept = _stream_started(net, batch=2)
    curve = robustness_curve(net, loader, "deletion", [0.0, 0.3])
    assert curve.equals(plain)
    _continues(net, x, kept)


# ------------------------------------------------------------------------------ the Trainer
def _loaders(n_train: int, batch_size: int) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(3)
    # (the test batches 4 and 4: with an uneven one the old evaluation crashed before the weights were compared)
    data, test = (TensorDataset((torch.rand(n, T, N, generator=g) < 0.4).float(),
                                torch.randint(0, C, (n,), generator=g)) for n in (n_train, 8))
    return (DataLoader(data, batch_size=batch_size, collate_fn=time_major_collate),
            DataLoader(test, batch_size=4, collate_fn=time_major_collate))


def _trained(carry: bool, n_train: int) -> tuple[sl.Sequential, dict]:
    net = _net(carry)
    train, test = _loaders(n_train, batch_size=4)
    cfg = ExperimentConfig(epochs=2, batch_size=4, hidden=[8], device="cpu", seed=0)
    result = Trainer(cfg, model=net, train_loader=train, test_loader=test, progress=False).run()
    return net, result


@pytest.mark.parametrize("n_train", [12, 14], ids=["equal_batches", "uneven_last_batch"])
def test_the_trainer_trains_a_carrying_model_as_one_without_carry_state(n_train):
    carrying, result = _trained(True, n_train)
    plain, plain_result = _trained(False, n_train)
    assert all(torch.equal(p, q) for p, q in zip(carrying.parameters(), plain.parameters(), strict=True))
    assert result["final"] == plain_result["final"]
    assert all(m.carry_state and m.carried_membrane is None for m in _layers(carrying))


# ------------------------------------------------------------------------------ the helper itself, the widgets
def test_carry_suspended_restores_flags_and_membranes_after_an_error():
    from snnlab.core.network import carry_suspended

    net = _net(True)
    x, kept = _stream_started(net, batch=2)
    with pytest.raises(RuntimeError, match="inside"):
        with carry_suspended(net) as inside:
            assert inside is net and not any(m.carry_state for m in _layers(net))
            net(torch.rand(3, 5, N))  # (another batch size: from rest)
            assert all(m.carried_membrane is None for m in _layers(net))
            raise RuntimeError("inside")
    _continues(net, x, kept)
    with pytest.raises(TypeError, match="carry_suspended: model must be a torch.nn.Module, got list"):
        with carry_suspended([net]):
            pass


def test_carry_suspended_leaves_layers_without_carry_state_alone():
    from snnlab.core.network import carry_suspended

    net = _net(False)
    with carry_suspended(net):
        net[1].carry_state = True  # (switched on inside the block: the block did not change it, keeps it)
    assert net[1].carry_state and not net[3].carry_state


def test_the_raster_explorers_recording_keeps_a_stream():
    from snnlab.widgets.raster_explorer import record_batch

    net = _net(True)
    x, kept = _stream_started(net, batch=2)
    batch = _batches((3,))[0][0]
    mon = record_batch(net, batch)
    with torch.no_grad():
        assert torch.equal(mon.spikes["1"], _net(False)[:2](batch))
    _continues(net, x, kept)


# ------------------------------------------------------------------------------ SynOpsCounter
def test_synops_of_a_stream_fed_in_chunks_count_its_samples_once():
    net = sl.Sequential(torch.nn.Linear(N, 8), sl.LIF(carry_state=True), torch.nn.Linear(8, 2))
    x = (torch.rand(12, 3, N, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    with SynOpsCounter(net) as whole:
        net(x)
    sl.reset_states(net)
    with SynOpsCounter(net) as chunks:
        for chunk in x.split(4):
            net(chunk)
        sl.reset_states(net)
        net(x)  # a new stream: its samples count again
    assert whole.n_samples == 3 and chunks.n_samples == 6
    assert chunks.acs_per_sample() == pytest.approx(whole.acs_per_sample(), rel=1e-12)
    assert whole.acs_per_sample() > 0


def test_synops_of_a_stream_joined_midway_count_its_samples_once():
    net = sl.Sequential(torch.nn.Linear(N, 8), sl.LIF(carry_state=True), torch.nn.Linear(8, 2))
    x = (torch.rand(12, 3, N, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    net(x[:4])
    with SynOpsCounter(net) as counter:
        net(x[4:8])
        net(x[8:])
    assert counter.n_samples == 3
