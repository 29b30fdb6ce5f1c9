"""A sample's SynOps / MACs / energy never depend on its batch-mates, whatever layout feeds a synaptic layer (time-major
``[T, B, F]``, time flattened into the batch ``[T*B, F]``, one step ``[B, F]`` per call); robustness_curve's argument
checks match evaluate's (spike readout of an LI membrane, empty kinds, a seed that must be an int)."""
import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.core.validation import as_seed
from snnlab.metrics import evaluate, layer_ops, robustness_curve, synops_table
from time_wrappers import PerStep

PER_SAMPLE = ("synops_per_sample", "macs_per_sample", "energy_per_sample_j", "spikes_per_sample")


def _net(first: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    net = sl.Sequential(first, sl.LIF(), nn.Linear(4, 3), sl.LI())
    with torch.no_grad():
        first = next(m for m in net.modules() if isinstance(m, nn.Linear))  # (built before the seed: fixed here)
        first.weight.copy_(torch.linspace(-1.0, 1.5, 20).reshape(4, 5))
        first.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    return net


def _mixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """3 event samples and 1 analog sample, T = 6, F = 5."""
    g = torch.Generator().manual_seed(0)
    xe = (torch.rand(6, 3, 5, generator=g) < 0.4).float()
    xa = torch.rand(6, 1, 5, generator=g) * 0.9 + 0.05        # no entry is an integer
    return torch.cat([xe, xa], 1), torch.tensor([0, 1, 2, 0])


def _batch_and_singles(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[dict, dict]:
    return evaluate(net, [(x, y)]), evaluate(net, [(x[:, i:i + 1], y[i:i + 1]) for i in range(x.shape[1])])


@pytest.mark.parametrize("wrap", [sl.TimeDistributed, PerStep])
def test_a_mixed_batch_gives_the_per_sample_counts_of_its_samples_alone(wrap):
    """Tester e4: TimeDistributed(Linear) on a batch with one analog sample gave 9.75 SynOps and 120 MACs per sample
    (every row dense) instead of the 46.75 and 30.0 of the samples one at a time."""
    x, y = _mixed_batch()
    net = _net(wrap(nn.Linear(5, 4)))
    batch, singles = _batch_and_singles(net, x, y)
    for key in PER_SAMPLE:
        assert batch[key] == pytest.approx(singles[key], rel=1e-12), key
    # the same weights, time-major: each sample is all-event or all-analog, so it bills exactly as the rows do
    plain = _net(nn.Linear(5, 4))
    tm = evaluate(plain, [(x, y)])
    assert batch["synops_per_sample"] == tm["synops_per_sample"] and batch["macs_per_sample"] == tm["macs_per_sample"]
    first = synops_table(net, [(x, y)]).iloc[0]
    assert first["macs_per_sample"] == 6 * 5 * 4 / 4          # the analog sample's 6 rows, dense, over 4 samples
    assert first["acs_per_sample"] == float(x[:, :3].sum()) * 4 / 4


def test_a_per_step_loop_bills_silent_rows_of_an_analog_batch_as_events():
    """Tester e5: analog input, sample 1 silent, sample 2 silent from step 3: 120 MACs per sample at B=4, 75 alone."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 4, 5, generator=g) * 0.9 + 0.05
    x[:, 1] = 0.0
    x[3:, 2] = 0.0
    y = torch.tensor([0, 1, 2, 0])
    net = _net(PerStep(nn.Linear(5, 4)))
    batch, singles = _batch_and_singles(net, x, y)
    for key in PER_SAMPLE:
        assert batch[key] == pytest.approx(singles[key], rel=1e-12), key
    first = synops_table(net, [(x, y)]).iloc[0]
    assert first["macs_per_sample"] == (6 + 0 + 3 + 6) * 5 * 4 / 4 and first["acs_per_sample"] == 0.0


def test_layer_ops_tests_2d_rows_one_by_one_and_time_major_samples_whole():
    x = torch.zeros(3, 2, 4)
    x[:, 0] = 1.0                      # sample 0: 12 events
    x[1, 1, 2] = 0.5                   # sample 1: one analog step, silent otherwise
    # time-major: sample 1 is analog for all of its 3 steps (unchanged)
    assert layer_ops(x, 5) == (12 * 5.0, 3 * 4 * 5.0, False, 12.0)
    # flattened [T*B, F]: only the analog row runs dense, whatever the batch around it
    assert layer_ops(x.flatten(0, 1), 5) == (12 * 5.0, 4 * 5.0, False, 12.0)
    singles = [layer_ops(x[:, b], 5) for b in range(2)]
    assert layer_ops(x.flatten(0, 1), 5)[:2] == tuple(sum(s[i] for s in singles) for i in range(2))
    # per step [B, F]: the step's analog row does not make the event row dense
    assert layer_ops(x[1], 5) == (4 * 5.0, 4 * 5.0, False, 4.0)
    assert layer_ops(torch.tensor([1.0, 0.0, 2.0]), 2) == (6.0, 0.0, True, 3.0)        # 1-D: one row
    assert layer_ops(torch.tensor([1.0, 0.5, 2.0]), 2) == (0.0, 6.0, False, 0.0)


def test_robustness_curve_refuses_a_spike_readout_of_an_li_membrane_as_evaluate_does():
    torch.manual_seed(0)
    net = sl.Sequential(nn.Linear(6, 10), sl.LIF(), nn.Linear(10, 3), sl.LI())
    x, y = (torch.rand(8, 5, 6) < 0.4).float(), torch.randint(0, 3, (5,))
    for readout in ("spike_count", "first_spike"):
        with pytest.raises(ValueError, match="reads spikes") as from_evaluate:
            evaluate(net, [(x, y)], readout=readout)
        with pytest.raises(ValueError, match="reads spikes") as from_curve:
            robustness_curve(net, [(x, y)], "deletion", [0.0, 0.3], readout=readout)
        assert str(from_curve.value) == str(from_evaluate.value)
    assert len(robustness_curve(net, [(x, y)], "deletion", [0.0, 0.3], readout="membrane_max")) == 2
    spiking = sl.Sequential(nn.Linear(6, 3), sl.LIF())          # a spiking output: spike readouts pass
    assert len(robustness_curve(spiking, [(x, y)], ["deletion", "jitter"], [0.0], readout="spike_count")) == 2


def test_robustness_curve_refuses_empty_kinds_and_a_none_seed_with_a_plain_message():
    net = sl.Sequential(nn.Linear(6, 3), sl.LI())
    data = [(torch.zeros(4, 2, 6), torch.tensor([0, 1]))]
    with pytest.raises(ValueError, match="robustness_curve: give at least one perturbation kind"):
        robustness_curve(net, data, [], [0.1, 0.2])
    with pytest.raises(ValueError, match="give at least one level"):
        robustness_curve(net, data, "deletion", [])
    with pytest.raises(TypeError) as err:
        robustness_curve(net, data, "deletion", [0.5], seed=None)
    assert str(err.value) == "robustness_curve: seed must be an int, got NoneType None"
    with pytest.raises(TypeError, match=r"LIF: seed must be an int \(or None for an unseeded stream\), got str 'a'"):
        as_seed("a", "LIF")                                      # callers that take None still offer it
