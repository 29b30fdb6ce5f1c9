"""snnlab.metrics: spike counts, SynOps, energy, latency, perturbations, robustness, evaluate()."""
import math

import pandas as pd
import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.metrics import (E_AC_J, E_MAC_J, EVALUATE_KEYS, SynOpsCounter, decision_latency, delete_spikes,
                            energy_j, evaluate, gaussian_noise, insert_spikes, jitter_spikes, layer_spike_counts,
                            mean_latency, metrics_table, neuron_spike_table, per_neuron_spike_counts,
                            robustness_curve, synops_table)

# ----------------------------------------------------------------------------- a hand-computed network


def hand_net(**lif_kwargs):
    """Linear(4,5) -> LIF(beta=0, thr=1) -> Linear(5,2) -> LI(beta=0) with known weights.

    Hidden neuron 0 copies input 0, neuron 1 copies input 1, neuron 2 gets 0.5 * input 0 (never
    fires, beta=0), neurons 3-4 get nothing. Output 0 = h0, output 1 = 3 * h1.
    """
    l1, l2 = nn.Linear(4, 5, bias=False), nn.Linear(5, 2, bias=False)
    with torch.no_grad():
        l1.weight.zero_(); l1.weight[0, 0] = 1.0; l1.weight[1, 1] = 1.0; l1.weight[2, 0] = 0.5
        l2.weight.zero_(); l2.weight[0, 0] = 1.0; l2.weight[1, 1] = 3.0
    return sl.Sequential(l1, sl.LIF(beta=0.0, threshold=1.0, **lif_kwargs), l2, sl.LI(beta=0.0))


def hand_batch():
    """Sample 0: 3 input spikes (t0,i0), (t1,i1), (t2,i0), label 1. Sample 1: silent, label 0."""
    x = torch.zeros(4, 2, 4)
    x[0, 0, 0] = x[1, 0, 1] = x[2, 0, 0] = 1.0
    return x, torch.tensor([1, 0])


def test_energy_constants_are_horowitz_45nm():
    assert E_AC_J == pytest.approx(0.9e-12)
    assert E_MAC_J == pytest.approx(4.6e-12)
    assert energy_j(15, 2) == pytest.approx(15 * 0.9e-12 + 2 * 4.6e-12)
    assert energy_j(10, 10, e_ac=1.0, e_mac=2.0) == 30.0
    with pytest.raises(ValueError):
        energy_j(1, 1, e_ac=-1.0)


def test_three_spikes_into_linear_4_5_are_15_synops():
    net = nn.Sequential(nn.Linear(4, 5))
    x = torch.zeros(3, 1, 4)
    x[0, 0, 0] = x[1, 0, 2] = x[2, 0, 2] = 1.0
    with SynOpsCounter(net) as c:
        net(x)
    assert c.acs_per_sample() == 15.0 and c.macs_per_sample() == 0.0
    row = c.table().iloc[0]
    assert row["input_events_per_sample"] == 3.0 and bool(row["binary_input"])


def test_analog_input_counts_dense_macs():
    net = nn.Sequential(nn.Linear(4, 5), sl.LIF())
    x = torch.rand(6, 3, 4) + 0.1  # analog, batch of 3
    with SynOpsCounter(net) as c:
        net(x)
    assert c.acs_per_sample() == 0.0
    assert c.macs_per_sample() == 6 * 4 * 5  # T * in * out per sample


def delay_layer(rounded=True):
    """DelayedLinear(2, 3) with weights 1 and delays d[j, i] = [[0, 1], [2, 3], [3, 3]] (max_delay 4)."""
    layer = sl.DelayedLinear(2, 3, max_delay=4, seed=0, backend="torch")
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.positions.copy_(torch.tensor([[0.0, 1.0], [2.0, 3.0], [3.0, 3.0]]))
    return layer.round_delays() if rounded else layer


def test_delayed_linear_synops():
    layer = delay_layer()
    x = torch.zeros(5, 2, 2)
    x[0, 0, 0] = x[3, 0, 1] = x[4, 1, 0] = x[1, 1, 1] = 1.0  # 4 spikes over 2 samples
    with SynOpsCounter(layer) as c:
        layer(x)
    # delivered (t + d < 5): (t0,i0): d 0,2,3 -> 3; (t3,i1): d 1 -> 1; (t4,i0): d 0 -> 1; (t1,i1): d 1,3,3 -> 3
    assert c.acs_per_sample() == (3 + 1 + 1 + 3) / 2
    assert c.table()["input_events_per_sample"].tolist() == [2.0]


def test_rounded_delays_count_only_events_delivered_inside_the_window():
    # the reviewer's p07: events at (t0, i0) and (t4, i1); the second one's delays 1, 3, 3 carry it past T=5
    x = torch.zeros(5, 1, 2)
    x[0, 0, 0] = 1; x[4, 0, 1] = 1
    for rounded in (False, True):  # the learnable form is counted as the rounded layer it becomes
        layer = delay_layer(rounded)
        with SynOpsCounter(layer) as c:
            y = layer(x)
        assert c.acs_per_sample() == 3.0  # was 2 events * 3 = 6.0
        assert c.table()["input_events_per_sample"].tolist() == [2.0]
    assert int((y[:, 0] != 0).sum()) == 3  # the rounded layer's output indeed shows 3 delivered events
    # brute force on random delays and event counts: sum_{t,b,i,j} x[t,b,i] * [t + d_ji < T]
    g = torch.Generator().manual_seed(0)
    layer = sl.DelayedLinear(5, 7, max_delay=9, learn_delays=False, seed=3)
    x = torch.randint(0, 3, (8, 3, 5), generator=g).float()
    with SynOpsCounter(layer) as c:
        layer(x)
    d = layer.delays
    brute = sum(float(x[t, b, i]) * int(((t + d[:, i]) < 8).sum()) for t in range(8) for b in range(3) for i in range(5))
    assert c.acs_per_sample() == pytest.approx(brute / 3)
    assert brute < float(x.sum()) * 7  # some events are delayed past the window


def test_delivered_fanout_hand_case():
    from snnlab.metrics import delivered_fanout

    # input 0 has delays {0, 2, 3}, input 1 {1, 3, 3}; T = 5: count of d <= 4 - t
    fan = delivered_fanout(torch.tensor([[0, 1], [2, 3], [3, 3]]), 5)
    assert fan.T.tolist() == [[3, 3, 2, 1, 1], [3, 3, 1, 1, 0]]
    assert delivered_fanout(torch.tensor([[7]]), 5).flatten().tolist() == [0, 0, 0, 0, 0]  # d >= T: never


def test_event_count_inputs_are_events_whatever_the_batch():
    from snnlab.metrics import event_samples, is_event_input

    T = 5
    a = torch.zeros(T, 4); a[0, 1] = a[1, 2] = a[3, 3] = 1.0          # 3 single events
    b = a.clone(); b[0, 1] = 2.0                                      # the same + a 2nd event in one bin: 4
    c = torch.full((T, 4), 0.3)                                       # analog
    net = nn.Sequential(nn.Linear(4, 100, bias=False))

    def ops(*samples):
        with SynOpsCounter(net) as cnt:
            net(torch.stack(samples, 1))
        return cnt.acs_per_sample(), cnt.macs_per_sample()

    assert ops(a) == (300.0, 0.0)
    assert ops(b) == (400.0, 0.0)                  # was (0, T * 4 * 100 = 2000): dense MACs
    assert ops(a, b) == (350.0, 0.0)               # was (0, 2000)
    assert ops(a, c) == (150.0, T * 4 * 100 / 2)   # a keeps its 300 ACs, c alone runs dense
    with SynOpsCounter(net) as cnt:
        net(torch.stack([a, b, c], 1))
    row = cnt.table().iloc[0]
    assert row["input_events_per_sample"] == pytest.approx(7 / 3) and not bool(row["binary_input"])
    assert event_samples(torch.stack([a, b, c], 1)).tolist() == [True, True, False]
    assert is_event_input(b) and not is_event_input(c) and not is_event_input(-a)
    assert not is_event_input(torch.tensor([float("inf")])) and is_event_input(torch.tensor([True, False]))


def test_evaluate_energy_of_event_frames_does_not_depend_on_the_batch():
    # the reviewer's p13: tonic-style frames with an event count of 2 in one bin
    torch.manual_seed(0)
    net = sl.Sequential(nn.Linear(4, 100, bias=False), sl.LIF(backend="torch"), nn.Linear(100, 2, bias=False), sl.LI())
    x = torch.zeros(5, 2, 4)
    x[0, :, 1] = 1.0; x[1, :, 2] = 1.0; x[4, :, 3] = 1.0; x[0, 1, 1] = 2.0
    y = torch.tensor([0, 0])
    alone = [evaluate(net, [(x[:, i:i + 1], y[i:i + 1])]) for i in range(2)]
    both = evaluate(net, [(x, y)])
    assert both["macs_per_sample"] == 0.0 and all(r["macs_per_sample"] == 0.0 for r in alone)
    assert both["synops_per_sample"] == pytest.approx((alone[0]["synops_per_sample"] + alone[1]["synops_per_sample"]) / 2)
    assert alone[1]["synops_per_sample"] - alone[0]["synops_per_sample"] >= 100  # one more input event


def test_spike_counts_and_neuron_table():
    s = torch.zeros(4, 2, 3)
    s[0, 0, 1] = s[3, 0, 2] = s[1, 1, 0] = s[2, 1, 0] = 1
    assert layer_spike_counts({"a": s})["a"].tolist() == [2.0, 2.0]
    df = neuron_spike_table({"a": s})
    assert list(df.columns) == ["layer", "neuron", "spikes_per_sample"]
    assert df["spikes_per_sample"].tolist() == [1.0, 0.5, 0.5]


def test_evaluate_hand_computed():
    net = hand_net()
    net.train()
    x, y = hand_batch()
    res = evaluate(net, [(x, y)])
    assert tuple(res) == EVALUATE_KEYS
    assert net.training and all(m.training for m in net.modules())  # mode restored
    # logits: sample 0 -> (2, 3) (class 1, correct); sample 1 -> (0, 0) (a tie: no decision, wrong)
    assert res["accuracy"] == 0.5
    assert res["loss"] == pytest.approx((math.log1p(math.exp(-1.0)) + math.log(2.0)) / 2)
    # hidden spikes: neuron 0 at t0, t2; neuron 1 at t1 -> 3 spikes in 2 samples
    assert res["spikes_per_layer"] == {"1": 1.5}
    assert res["spikes_per_sample"] == 1.5
    # SynOps: 3 inputs * 5 + 3 hidden spikes * 2 = 21 over 2 samples
    assert res["synops_per_sample"] == 10.5 and res["macs_per_sample"] == 0.0
    assert res["energy_per_sample_j"] == pytest.approx(10.5 * 0.9e-12)
    # running predictions sample 0: t0 -> 0, t1.. -> 1 (final, correct): latency 1; sample 1 silent:
    # never decides -> T = 4
    assert res["latency_steps"] == pytest.approx(2.5)
    assert res["n_samples"] == 2
    # a wrong label: the sample never decides correctly -> latency T = 4
    res_wrong = evaluate(net, [(x, torch.tensor([0, 0]))])
    assert res_wrong["accuracy"] == 0.0 and res_wrong["latency_steps"] == pytest.approx(4.0)


def test_evaluate_max_batches_and_errors():
    x, y = hand_batch()
    res = evaluate(hand_net(), [(x, y), (x, y), (x, y)], max_batches=2)
    assert res["n_samples"] == 4 and res["synops_per_sample"] == 10.5
    with pytest.raises(ValueError):
        evaluate(hand_net(), [])
    with pytest.raises(ValueError):
        evaluate(hand_net(), [(x, y)], readout="nope")


def test_max_spikes_and_noisy_neurons_share_the_accounting():
    x, y = hand_batch()
    res1 = evaluate(hand_net(max_spikes=1), [(x, y)])
    assert res1["spikes_per_layer"] == {"1": 1.0}  # neuron 0 fires once only
    assert res1["synops_per_sample"] == (15 + 2 * 2) / 2
    # noisy neurons are deterministic in eval mode: same counts as the plain LIF
    noisy = evaluate(hand_net(noise="gaussian", noise_scale=0.1, seed=0), [(x, y)])
    assert noisy["spikes_per_layer"] == {"1": 1.5} and noisy["synops_per_sample"] == 10.5


def mask_net(fused, p=0.5):
    """Linear(1, 4) weights 2 -> LIF(beta 0): every hidden neuron fires every step -> mask -> Linear(4, 2) -> LI."""
    l1, l2 = nn.Linear(1, 4, bias=False), nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        l1.weight.fill_(2.0); l2.weight.fill_(1.0)
    if fused:
        return sl.Sequential(l1, sl.LIF(beta=0.0, mask_p=p, mask_at_inference=True, seed=0, backend="torch"), l2,
                             sl.LI(beta=0.5))
    return sl.Sequential(l1, sl.LIF(beta=0.0, backend="torch"), sl.SpikeMask(p, mask_at_inference=True, seed=0), l2,
                         sl.LI(beta=0.5))


def test_spike_accounting_fused_mask_vs_separate_mask():
    from snnlab.metrics import spike_accounting_table

    x, y = torch.ones(10, 4, 1), torch.zeros(4, dtype=torch.long)  # 4 neurons * 10 steps = 40 fired per sample
    # transmitted spikes are what the next layer receives, in both forms; the fired ones only show unfused
    for fused_form in (True, False):
        net = mask_net(fused_form)
        tab = spike_accounting_table(net, [(x, y)]).iloc[0]
        received = synops_table(net, [(x, y)])["input_events_per_sample"].iloc[1]
        assert tab["transmitted_spikes_per_sample"] == received and 10 < received < 30
        if fused_form:
            assert tab["masking"] == "fused" and math.isnan(tab["fired_spikes_per_sample"])
            assert tab["output_spikes_per_sample"] == received
        else:
            assert tab[["layer", "masking", "output_spikes_per_sample", "fired_spikes_per_sample"]].tolist() == \
                ["1", "SpikeMask 2", 40.0, 40.0]
        r = evaluate(net, [(x, y)])
        assert r["spikes_per_sample"] == (received if fused_form else 40.0)
        assert r["synops_per_sample"] == 10 * 4 + received * 2
    plain = spike_accounting_table(hand_net(), [hand_batch()]).iloc[0]
    assert plain.tolist() == ["1", "none", 1.5, 1.5, 1.5]


def test_spike_accounting_finds_a_spike_mask_in_another_container_than_its_lif():
    """Probe: Sequential(Sequential(lin, LIF), SpikeMask, ...) reported no masking and the fired spikes as transmitted
    (20.0 per sample, the flat layout: 7.0)."""
    from snnlab.metrics import spike_accounting_table

    x, y = torch.ones(5, 2, 4), torch.tensor([0, 1])
    tables = []
    for nested in (False, True):
        torch.manual_seed(0)
        lin, lif = nn.Linear(4, 4), sl.LIF(beta=0.0)
        nn.init.constant_(lin.weight, 0.5), nn.init.zeros_(lin.bias)
        mask = sl.SpikeMask(0.5, mask_at_inference=True, seed=0)
        head = (nn.Linear(4, 2), sl.LI())
        net = sl.Sequential(sl.Sequential(lin, lif), mask, *head) if nested else sl.Sequential(lin, lif, mask, *head)
        tables.append(spike_accounting_table(net, [(x, y)]).iloc[0])
    flat, nested = tables
    assert nested["masking"] == "SpikeMask 1" and flat["masking"] == "SpikeMask 2"
    assert nested["transmitted_spikes_per_sample"] == flat["transmitted_spikes_per_sample"] < 20.0
    rec = sl.Sequential(nn.Linear(4, 4), sl.ALIF(n_neurons=4, recurrent=True), sl.SpikeMask(0.5, mask_at_inference=True,
                                                                                           seed=0), nn.Linear(4, 2))
    assert spike_accounting_table(rec, [(x, y)]).iloc[0]["masking"] == "SpikeMask 2"  # its own synapses skipped


def test_masked_network_counts_masked_spikes_for_synops():
    torch.manual_seed(0)
    l1 = nn.Linear(3, 8, bias=False)
    nn.init.constant_(l1.weight, 1.0)
    mask = sl.SpikeMask(0.5, mask_at_inference=True, seed=0)
    net = sl.Sequential(l1, sl.LIF(beta=0.0), mask, nn.Linear(8, 2), sl.LI())
    x = torch.ones(20, 2, 3)  # every hidden neuron fires at every step: 20 * 8 per sample
    seen = {}
    mask.register_forward_hook(lambda m, i, o: seen.update(out=o.detach().clone()))
    res = evaluate(net, [(x, torch.tensor([0, 1]))])
    transmitted = float(seen["out"].count_nonzero())
    assert res["spikes_per_layer"] == {"1": 160.0}  # emitted spikes
    assert 0 < transmitted < 320
    assert res["synops_per_sample"] == pytest.approx((20 * 3 * 8 * 2 + transmitted * 2) / 2)
    df = synops_table(sl.Sequential(l1, sl.LIF(beta=0.0), sl.SpikeMask(0.5, True, seed=0), nn.Linear(8, 2), sl.LI()),
                      [(x, torch.tensor([0, 1]))])
    assert list(df["layer"]) == ["0", "3"] and df["input_events_per_sample"].iloc[1] == transmitted / 2


def test_per_neuron_spike_counts_dataframe():
    x, y = hand_batch()
    df = per_neuron_spike_counts(hand_net(), [(x, y)])
    assert list(df.columns) == ["layer", "neuron", "spikes_per_sample"] and len(df) == 5
    assert df["spikes_per_sample"].tolist() == [1.0, 0.5, 0.0, 0.0, 0.0]


def test_metrics_table():
    x, y = hand_batch()
    r = evaluate(hand_net(), [(x, y)])
    df = metrics_table([r, r], names=["a", "b"])
    assert len(df) == 2 and df["model"].tolist() == ["a", "b"]
    assert {"accuracy", "synops_per_sample", "spikes_per_layer[1]"} <= set(df.columns)
    assert metrics_table({"a": r}).shape[0] == 1


# ----------------------------------------------------------------------------- latency


def test_latency_spike_readouts_first_output_spike():
    out = torch.zeros(5, 3, 2)
    out[2, 0, 1] = 1; out[4, 0, 0] = 1; out[0, 1, 0] = 1  # sample 2 silent
    assert decision_latency(out, "first_spike").tolist() == [2.0, 0.0, 5.0]
    # by count, sample 0 ends 1:1 (neuron 0 catches up at step 4): no final decision, so undecided
    assert decision_latency(out, "spike_count").tolist() == [5.0, 0.0, 5.0]
    lat = decision_latency(out, "first_spike", never=float("nan"))
    assert math.isnan(lat[2]) and mean_latency(lat) == 1.0


def test_latency_has_one_definition_for_spike_and_membrane_readouts():
    """Science audit: a wrong first spike counted as decided at its step (1, where membrane_sum gives T), and
    spike_count took the first step any neuron led (1) although the scored winner only leads from step 5."""
    out = torch.zeros(10, 1, 2)
    out[1, 0, 0] = 1.0                      # class 0 fires first ...
    out[[5, 6, 7], 0, 1] = 1.0              # ... class 1 fires more, leading for good from step 6
    y = torch.tensor([1])
    assert decision_latency(out, "first_spike", y).tolist() == [10.0]  # wrong final decision: never (was 1)
    assert decision_latency(out, "first_spike", torch.tensor([0])).tolist() == [1.0]
    assert decision_latency(out, "spike_count", y).tolist() == [6.0]   # was 1; tie 1:1 at step 5
    assert decision_latency(out.cumsum(0), "membrane_max", y).tolist() == [6.0]  # same counts as membranes
    assert decision_latency(out, "spike_count", torch.tensor([0])).tolist() == [10.0]


def test_latency_membrane_readout_stable_and_correct():
    out = torch.zeros(4, 2, 2)
    out[0, 0] = torch.tensor([1.0, 0.0]); out[1, 0] = torch.tensor([0.0, 3.0])   # pred 0,1,1,1
    out[:, 1] = torch.tensor([0.0, 1.0])                                          # pred 1 from t0
    assert decision_latency(out, "membrane_sum", torch.tensor([1, 1])).tolist() == [1.0, 0.0]
    assert decision_latency(out, "membrane_sum", torch.tensor([0, 1])).tolist() == [4.0, 0.0]
    assert decision_latency(out, "membrane_sum").tolist() == [1.0, 0.0]  # stability only
    assert decision_latency(out, "membrane_max", torch.tensor([1, 1])).tolist() == [1.0, 0.0]


def test_ties_and_silent_outputs_are_no_decision():
    from snnlab.core.readout import decide, predict, prediction_over_time

    assert decide(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 1.0], [float("nan"), 1.0]])).tolist() == [-1, -1, 0, -1]
    # the reviewer's p04: zero weights, no output activity at all, for every readout
    T = 6
    x = torch.zeros(T, 4, 3); x[0] = 1
    y = torch.tensor([0, 0, 1, 2])
    for readout, spiking in (("membrane_sum", False), ("membrane_max", False), ("spike_count", True),
                             ("first_spike", True)):
        l1, l2 = nn.Linear(3, 5, bias=False), nn.Linear(5, 3, bias=False)
        nn.init.zeros_(l1.weight); nn.init.zeros_(l2.weight)
        net = sl.Sequential(l1, sl.LIF(backend="torch"), l2,
                            sl.LIF(backend="torch", max_spikes=1) if spiking else sl.LI())
        r = evaluate(net, [(x, y)], readout=readout)
        assert r["accuracy"] == 0.0 and r["latency_steps"] == T, readout  # was 0.5 and 3.0 (membrane)
        assert r["loss"] == pytest.approx(math.log(3))                       # the loss is the plain logits'
        assert predict(net(x), readout).tolist() == [-1] * 4
    # neurons firing first together: no first-spike decision ever
    out = torch.zeros(4, 2, 3); out[1, 0, [0, 2]] = 1; out[2, 1, 1] = 1
    assert prediction_over_time(out, "first_spike").T.tolist() == [[-1, -1, -1, -1], [-1, -1, 1, 1]]
    assert decision_latency(out, "first_spike").tolist() == [4.0, 2.0]


def test_membrane_latency_does_not_count_a_tied_readout_as_class_0():
    # the reviewer's p05: both samples silent for t = 0..2, their class leads from t = 3
    out = torch.zeros(6, 2, 3)
    out[3:, 0, 0] = 1.0; out[3:, 1, 1] = 1.0
    y = torch.tensor([0, 1])
    for readout in ("membrane_sum", "membrane_max"):
        assert decision_latency(out, readout, y).tolist() == [3.0, 3.0]  # was [0.0, 3.0]
        assert decision_latency(out, readout).tolist() == [3.0, 3.0]


# ----------------------------------------------------------------------------- perturbations


def spikes(T=50, B=4, N=6, p=0.2, seed=1234):  # seed != the perturbation seeds
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, N, generator=g) < p).float()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_delete_spikes():
    x = spikes()
    assert torch.equal(delete_spikes(x, 0.0, gen()), x)
    assert delete_spikes(x, 1.0, gen()).sum() == 0
    kept = delete_spikes(x, 0.3, gen())
    assert ((kept == 1) <= (x == 1)).all()  # only removes
    assert kept.sum() / x.sum() == pytest.approx(0.7, abs=0.08)
    assert torch.equal(kept, delete_spikes(x, 0.3, gen()))  # seeded
    with pytest.raises(ValueError):
        delete_spikes(x, 1.5)


def test_insert_spikes():
    x = spikes()
    assert torch.equal(insert_spikes(x, 0.0, gen()), x)
    y = insert_spikes(x, 0.1, gen())
    assert ((y == 0) | (y == 1)).all() and (y >= x).all()
    empty = (x == 0).sum()
    assert (y.sum() - x.sum()) / empty == pytest.approx(0.1, abs=0.03)
    assert insert_spikes(x, 1.0, gen()).eq(1).all()
    assert torch.equal(y, insert_spikes(x, 0.1, gen()))


def test_jitter_preserves_spikes_and_is_seeded():
    x = spikes()
    assert torch.equal(jitter_spikes(x, 0.0, gen()), x)
    # one spike per neuron: no collisions possible, so the count is preserved, clipping included
    one = torch.zeros(20, 3, 50)
    one[torch.randint(0, 20, (150,), generator=gen(1)), torch.arange(3).repeat_interleave(50), torch.arange(50).repeat(3)] = 1
    j = jitter_spikes(one, 8.0, gen())
    assert j.sum() == one.sum() and ((j == 0) | (j == 1)).all()
    assert j.sum(0).eq(1).all()  # every neuron still has exactly one spike
    # merge=False keeps the total exactly even with collisions
    assert jitter_spikes(x, 3.0, gen(), merge=False).sum() == x.sum()
    assert jitter_spikes(x, 3.0, gen()).sum() <= x.sum()
    assert torch.equal(jitter_spikes(x, 2.0, gen(5)), jitter_spikes(x, 2.0, gen(5)))
    assert not torch.equal(jitter_spikes(x, 2.0, gen(5)), jitter_spikes(x, 2.0, gen(6)))


def test_jitter_displacement_statistics():
    T, N = 1001, 2000
    x = torch.zeros(T, 1, N)
    x[500, 0, :] = 1  # far from the edges: no clipping
    t_new = jitter_spikes(x, 3.0, gen()).argmax(0).float().flatten()
    d = t_new - 500
    assert d.mean().abs() < 0.3 and d.std() == pytest.approx(3.0, rel=0.08)
    assert torch.equal(d, d.round())  # integer offsets


def test_gaussian_noise():
    x = spikes()
    assert torch.equal(gaussian_noise(x, 0.0, gen()), x)
    n = gaussian_noise(x, 0.5, gen()) - x
    assert n.mean().abs() < 0.05 and n.std() == pytest.approx(0.5, rel=0.1)
    assert torch.equal(gaussian_noise(x, 0.5, gen(3)), gaussian_noise(x, 0.5, gen(3)))


# ----------------------------------------------------------------------------- robustness curve


def perfect_setup():
    """Class c has spikes on channel c at every other step; Linear = identity; membrane_sum readout."""
    T, B = 10, 8
    y = torch.arange(B) % 2
    x = torch.zeros(T, B, 2)
    x[::2, torch.arange(B), y] = 1.0
    lin = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.eye(2))
    return sl.Sequential(lin, sl.LI(beta=0.0)), [(x, y), (x, y)]


def test_robustness_curve_shape_and_clean_accuracy():
    model, loader = perfect_setup()
    model.train()
    df = robustness_curve(model, loader, "deletion", [0.0, 0.5, 1.0])
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["perturbation", "level", "accuracy", "n_samples"]
    assert len(df) == 3 and (df["n_samples"] == 16).all() and model.training
    assert df["accuracy"].iloc[0] == 1.0
    assert df["accuracy"].iloc[2] == 0.0  # all spikes gone: ties -> no decision for everyone (was 0.5)
    kinds = ["jitter", "deletion", "insertion", "gaussian"]
    both = robustness_curve(model, loader, kinds, [0.0, 0.2], max_batches=1)
    assert len(both) == 8 and (both["n_samples"] == 8).all()
    assert (both[both["level"] == 0.0]["accuracy"] == 1.0).all()
    again = robustness_curve(model, loader, kinds, [0.0, 0.2], max_batches=1)
    pd.testing.assert_frame_equal(both, again)  # seeded
    with pytest.raises(ValueError):
        robustness_curve(model, loader, "nope", [0.1])


def test_evaluation_passes_over_a_rate_encoded_loader_see_the_same_spikes():
    from snnlab.data.embedded import make_loaders
    from snnlab.metrics import evaluate, robustness_curve

    _, test = make_loaders("digits", encoding="rate", num_steps=6, batch_size=32)
    torch.manual_seed(0)
    net = sl.Sequential(nn.Linear(64, 16), sl.LIF(tau_mem=4.0, threshold=0.5), nn.Linear(16, 10), sl.LI())
    runs = [evaluate(net, test, max_batches=3) for _ in range(3)]
    assert all(r == runs[0] for r in runs[1:])
    curve = robustness_curve(net, test, "deletion", [0.0, 0.0], max_batches=3)
    assert curve["accuracy"].iloc[0] == curve["accuracy"].iloc[1] == runs[0]["accuracy"]
    first = next(iter(test))[0]  # a pass of the user's own still draws new spikes
    assert not torch.equal(first, next(iter(test))[0])


def noisy_setup(seed):
    """A noisy LIF sampling at inference (noisy_eval) with its own generator (seed) or torch's global one."""
    torch.manual_seed(0)
    l1, l2 = nn.Linear(6, 8, bias=False), nn.Linear(8, 2, bias=False)
    with torch.no_grad():
        l1.weight.copy_(torch.randn(8, 6)); l2.weight.copy_(torch.randn(2, 8))
    net = sl.Sequential(l1, sl.LIF(beta=0.5, noise="gaussian", noise_scale=0.5, noisy_eval=True, seed=seed,
                                   backend="torch"), l2, sl.LI(beta=0.5))
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(8, 256, 6, generator=g) < 0.3).float()
    return net, [(x, torch.randint(0, 2, (256,), generator=g))]


@pytest.mark.parametrize("seed", [123, None])
def test_robustness_curve_and_evaluate_are_reproducible_with_random_layers(seed):
    net, loader = noisy_setup(seed)
    torch.manual_seed(5)
    gen_state = net[1]._generator.get_state() if seed is not None else None
    global_state = torch.get_rng_state()
    c1 = robustness_curve(net, loader, "deletion", [0.0, 0.0, 0.0], seed=0)
    torch.manual_seed(99)  # another global state: an unseeded layer still gets the same noise from seed=0
    c2 = robustness_curve(net, loader, "deletion", [0.0, 0.0, 0.0], seed=0)
    assert c1["accuracy"].nunique() == 1  # common random numbers at every level (they differed)
    pd.testing.assert_frame_equal(c1, c2)
    torch.manual_seed(5)
    runs = [evaluate(net, loader) for _ in range(3)]
    assert all(r == runs[0] for r in runs[1:])  # they differed from pass to pass
    assert torch.equal(torch.get_rng_state(), global_state)  # the streams are left where they were
    if seed is not None:
        assert torch.equal(net[1]._generator.get_state(), gen_state)
    if seed is None:  # the network is random at all: another seed gives unseeded layers other noise
        other = robustness_curve(net, loader, "deletion", [0.0], seed=1)
        assert other["accuracy"].iloc[0] != c1["accuracy"].iloc[0]


def test_masks_at_inference_are_the_same_in_every_evaluation():
    x, y = torch.ones(10, 4, 1), torch.zeros(4, dtype=torch.long)
    for fused in (True, False):
        net = mask_net(fused)
        assert len({evaluate(net, [(x, y)])["synops_per_sample"] for _ in range(3)}) == 1
        curve = robustness_curve(net, [(x, y)], "deletion", [0.0, 0.0], seed=0)
        assert curve["accuracy"].nunique() == 1


def test_a_spike_count_that_ends_in_a_tie_is_undecided_for_latency():
    """Neuron 0 leads from step 1, neuron 1 ties it at step 3: no final decision, so latency is T (never)."""
    out = torch.zeros(5, 2, 2)
    out[1, :, 0] = 1.0
    out[3, 0, 1] = 1.0  # sample 0 ties; sample 1 stays led by neuron 0
    assert decision_latency(out, "spike_count").tolist() == [5.0, 1.0]
    assert decision_latency(out, "spike_count", torch.tensor([0, 0])).tolist() == [5.0, 1.0]


def test_evaluate_draws_other_inference_noise_only_for_another_seed():
    """Docs probe: notebook 05 showed the spread of five noisy evaluations, always zero (each restarts from the same
    random state); a seed gives each its own draw, and the same seed the same numbers."""
    import snnlab as sl

    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(6, 16), sl.LIF(noise="gaussian", noise_scale=0.5, noisy_eval=True),
                        torch.nn.Linear(16, 3), sl.LI())
    g = torch.Generator().manual_seed(1)
    loader = [(torch.rand(12, 40, 6, generator=g) * 2, torch.randint(0, 3, (40,), generator=g))]
    assert evaluate(net, loader) == evaluate(net, loader)
    runs = [evaluate(net, loader, seed=s) for s in (0, 1, 0)]
    assert runs[0] == runs[2] and runs[0]["spikes_per_sample"] != runs[1]["spikes_per_sample"]
    with pytest.raises(TypeError, match="seed must be an int"):
        evaluate(net, loader, seed="a")


def test_per_sample_figures_divide_by_the_samples_evaluate_fed():
    """Batches of different sizes through a convolution fed [T*B, C, L] frames and a Linear called once per step:
    every per-sample figure is the total over the loader divided by its 5 samples (a convolution sees T*B frames per
    batch, the per-step Linear T calls of B), and the standard hand network keeps its numbers."""
    from snnlab.metrics.synops import conv_fanout

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.lif = nn.Conv1d(1, 2, 3, padding=1, bias=False), sl.LIF(threshold=0.5)
            self.out, self.li = nn.Linear(2 * 4, 2, bias=False), sl.LI()

        def forward(self, x):  # x [T, B, 1, 4]
            T, B = x.shape[:2]
            s = self.lif(self.conv(x.flatten(0, 1)).unflatten(0, (T, B)))
            return self.li(torch.cat([self.out(s[t:t + 1].flatten(2)) for t in range(T)]))

    torch.manual_seed(0)
    net = Net()
    g = torch.Generator().manual_seed(1)
    xs = [torch.randint(0, 2, (3, B, 1, 4), generator=g).float() for B in (2, 3)]
    loader = [(x, torch.zeros(x.shape[1], dtype=torch.long)) for x in xs]
    fan, _ = conv_fanout(net.conv, (4,))  # [2, 3, 3, 2] taps * 2 output channels
    assert fan.tolist() == [4.0, 6.0, 6.0, 4.0]
    conv_acs = sum(float((x[..., 0, :] * fan).sum()) for x in xs)
    with torch.no_grad():
        hidden = sum(float((net.lif(net.conv(x.flatten(0, 1)).unflatten(0, x.shape[:2])) != 0).sum()) for x in xs)
    r = evaluate(net, loader)
    assert r["n_samples"] == 5 and r["spikes_per_sample"] == pytest.approx(hidden / 5)
    assert r["synops_per_sample"] == pytest.approx((conv_acs + hidden * 2) / 5)
    # the standard network: per layer, the samples it saw are the samples fed
    x, y = hand_batch()
    r = evaluate(hand_net(), [(x, y)])
    assert r["synops_per_sample"] == (3 * 5 + 3 * 2) / 2 and r["spikes_per_sample"] == 1.5  # 3 in, 3 hidden spikes


def test_evaluate_seed_warns_when_seeded_layers_draw_at_inference():
    """Probe (reproducibility): seed= was silently ignored by layers with their own generator (5 and 6 gave the same
    numbers); it now says so, and only where such a layer draws at inference."""
    import warnings

    x, y = torch.rand(6, 4, 3), torch.tensor([0, 1, 0, 1])

    def net(**lif):
        return sl.Sequential(torch.nn.Linear(3, 5), sl.LIF(**lif), torch.nn.Linear(5, 2), sl.LI())

    seeded = net(noise="gaussian", noisy_eval=True, seed=1)
    with pytest.warns(UserWarning, match=r"evaluate: seed= does not change the draws of the seeded layer\(s\) \[.1.\]"):
        a = evaluate(seeded, [(x, y)], seed=5)
    with pytest.warns(UserWarning):
        b = evaluate(seeded, [(x, y)], seed=6)
    assert a["spikes_per_sample"] == b["spikes_per_sample"]  # (what the warning is about)
    masked = sl.Sequential(torch.nn.Linear(3, 5), sl.SpikeMask(0.5, mask_at_inference=True, seed=0))
    with pytest.warns(UserWarning, match=r"\['1'\]"):
        evaluate(sl.Sequential(*masked, torch.nn.Linear(5, 2), sl.LI()), [(x, y)], seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(net(noise="gaussian", noisy_eval=True), [(x, y)], seed=5)  # unseeded: seed= chooses its draws
        evaluate(net(noise="gaussian", seed=1), [(x, y)], seed=5)  # seeded, but no noise at inference
        evaluate(net(mask_at_inference=True, seed=1), [(x, y)], seed=5)  # mask_p = 0: nothing drawn
        evaluate(seeded, [(x, y)])  # no seed= given


def test_activation_sparsity_is_the_fraction_of_silent_neuron_steps():
    """NeuroBench's activation sparsity: 1 - spikes / (LIF neuron-steps), over every LIF layer and sample."""
    lin = nn.Linear(2, 4, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 2.0], [0.0, 0.0], [2.0, 2.0]]))
    net = sl.Sequential(lin, sl.LIF(beta=0.0), nn.Linear(4, 2), sl.LI())
    x = torch.zeros(5, 3, 2)
    x[0, 0, 0] = x[1, 0, 1] = x[2, 1, 0] = 1.0  # sample 0: neurons 0, 3 then 1, 3 fire; sample 1: neurons 0, 3
    r = evaluate(net, [(x, torch.tensor([0, 1, 0]))])
    assert r["spikes_per_sample"] == pytest.approx(6 / 3)
    assert r["activation_sparsity"] == pytest.approx(1 - 6 / (5 * 3 * 4))
    with pytest.warns(UserWarning, match="no snnlab.LIF layer"):
        assert math.isnan(evaluate(sl.Sequential(nn.Linear(2, 2), sl.LI()), [(x, torch.tensor([0, 1, 0]))])[
            "activation_sparsity"])


@pytest.mark.parametrize("readout", ["membrane_sum", "softmax_sum", "spike_count"])
def test_the_last_prediction_over_time_is_the_prediction_even_at_rounding_ties(readout):
    """Review: a running sum's last value can differ from the sum in its last bits, so near a tie the last row of
    prediction_over_time decided otherwise than predict (about a quarter of such samples), and evaluate's latency
    could belong to another decision than the one accuracy scored."""
    from snnlab.core.readout import predict, prediction_over_time

    torch.manual_seed(0)
    out = torch.randn(300, 2000, 2)
    out[..., 1] = out.flip(0)[..., 0]  # the same values in reverse order: equal sums up to rounding
    if readout == "spike_count":  # spike readouts read spikes
        out = (out > 0.5).float()
    assert torch.equal(prediction_over_time(out, readout)[-1], predict(out, readout))


def test_softmax_sum_ties_are_no_decision_despite_the_softmax_rounding():
    """Probe: softmax([0, 1, 0])[1] and softmax([0, 0, 1])[2] differ in their last bit, so two classes that each got
    one spike had a winner (36 of 130 such symmetric outputs), and decision_latency counted a decision."""
    from snnlab.core.readout import predict, prediction_over_time
    from snnlab.metrics import decision_latency

    out = torch.tensor([[[0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]], [[0.0, 0.0, 0.0]]])
    assert predict(out, "softmax_sum").tolist() == [-1]
    assert prediction_over_time(out, "softmax_sum")[:, 0].tolist() == [1, 1, -1, -1]
    assert decision_latency(out, "softmax_sum").tolist() == [4.0]  # never decided
    decided = 0
    for C in range(2, 11):
        for i in range(C):
            for j in range(i + 1, C):
                sym = torch.zeros(2, 1, C)
                sym[0, 0, i] = sym[1, 0, j] = 1.0
                decided += int(predict(sym, "softmax_sum")[0] != -1)
    assert decided == 0
    assert predict(torch.tensor([[[0.0, 1.0, 0.0]], [[0.0, 0.1, 1.0]]]), "softmax_sum").tolist() == [1]
    # review: an absolute 4 T eps tolerance called real decisions ties in bfloat16 and at long T
    lead = torch.zeros(100, 1, 3)
    lead[:, 0, 1] = 0.05
    assert predict(lead.bfloat16(), "softmax_sum").tolist() == [1] == predict(lead, "softmax_sum").tolist()
    late = torch.zeros(2000, 1, 20)
    late[-50:, 0, 7] = 3e-4                                         # a margin of 7.5e-4 on scores of 100
    assert predict(late, "softmax_sum").tolist() == [7] == predict(late.double(), "softmax_sum").tolist()
    half = torch.randn(150, 200, 5, generator=torch.Generator().manual_seed(0))
    half[..., :2] += 2.0                                            # classes 0 and 1 lead
    tied = torch.stack([half, half[..., [1, 0, 2, 3, 4]]], 1).flatten(0, 1)  # every step again, 0 and 1 swapped
    assert (predict(tied, "softmax_sum") == -1).all()               # equal sums, up to rounding: no decision


@pytest.mark.parametrize("readout", ["spike_count", "first_spike"])
def test_spike_readouts_refuse_an_lis_membrane_as_the_output(readout):
    """Probe: first_spike on an LI model's membranes scored 0.467 (membrane_sum: 0.889) without a word. Reviews: a
    refusal by the output's values also refused legitimate spiking outputs (a population vote pooled after the LIF,
    TimeDropout's scaled spikes), and one by the last LI registered refused two-head models and LI input filters:
    the check is whether the output is the tensor an LI returned."""
    from snnlab.core.readout import predict

    x, y = torch.rand(5, 3, 2), torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match=f"readout '{readout}' reads spikes, but the model's output is the membrane "
                                         "of its LI layer '1'"):
        evaluate(sl.Sequential(nn.Linear(2, 2), sl.LI()), [(x, y)], readout=readout)
    vote = sl.Sequential(nn.Linear(2, 30), sl.LIF(), sl.TimeDistributed(nn.AvgPool1d(10)))   # 3 groups of 10 neurons
    assert evaluate(vote, [(x * 3, y)], readout=readout)["n_samples"] == 3
    dropped = sl.Sequential(nn.Linear(2, 4), sl.LIF(), sl.TimeDropout(0.3)).train()
    assert predict(dropped(x * 3), readout).shape == (3,)   # spikes scaled by 1 / 0.7: still a decision

    class TwoHeads(nn.Module):  # a spiking head returned first, an auxiliary LI head registered after it
        def __init__(self):
            super().__init__()
            self.body, self.spikes, self.aux = nn.Linear(2, 3), sl.LIF(), sl.LI()

        def forward(self, x):
            h = self.body(x)
            return self.spikes(h), self.aux(h)

    class Smoothed(nn.Module):  # an LI input filter registered after the output LIF
        def __init__(self):
            super().__init__()
            self.lin, self.out, self.smooth = nn.Linear(2, 3), sl.LIF(), sl.LI()

        def forward(self, x):
            return self.out(self.lin(self.smooth(x)))

    for model in (TwoHeads(), Smoothed()):
        assert evaluate(model, [(x * 3, y)], readout=readout)["n_samples"] == 3
    assert evaluate(sl.Sequential(nn.Linear(2, 2), sl.LI()), [(x, y)])["n_samples"] == 3  # membrane readout: fine


def test_integer_intensities_counted_as_events_warn_at_the_users_line():
    """Probe: raw 0..255 pixels (integers) were billed as pixel-value events: 2,576,640 ACs, 24.6x the energy of
    the same layer run dense, without a word. The accounting rule stays (event counts are integers); it now warns."""
    import warnings

    torch.manual_seed(0)
    img = torch.randint(0, 256, (1, 1, 64)).float().expand(10, 1, 64).contiguous()
    net = sl.Sequential(nn.Linear(64, 32), sl.LIF(), nn.Linear(32, 10), sl.LI())
    from snnlab.metrics import CostlyEventInputWarning

    with pytest.warns(CostlyEventInputWarning, match=r"layer '0' receives integer-valued input, counted as events: "
                                                     r"2\.\d+e\+06 ACs, more energy than the 2\.048e\+04 MACs") as rec:
        synops_table(net, [(img, torch.tensor([0]))])
    assert len(rec) == 1 and rec[0].filename == __file__  # once, at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        synops_table(net, [(img / 255, torch.tensor([0]))])       # intensities in [0, 1]: dense, no warning
        counts = torch.zeros(10, 1, 64)
        counts[::2, 0, :8] = 3.0                                  # sparse event counts: no warning
        synops_table(net, [(counts, torch.tensor([0]))])


def test_decide_refuses_bad_tolerances_and_keeps_infinite_tops_unique():
    from snnlab.core.readout import decide

    for tol in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tol must be a finite number >= 0"):
            decide(torch.tensor([[1.0, 0.5]]), tol=tol)
    assert decide(torch.tensor([[float("inf"), 1.0], [3.0, 3.0]]), tol=1e-6).tolist() == [0, -1]
    assert decide(torch.tensor([[3, 3, 1], [5, 2, 1]]), tol=0.1).tolist() == [-1, 0]   # integer scores: exact


def test_the_costly_event_warning_compares_with_a_convolutions_dense_cost():
    """Review: events per element misjudged a convolution whose border inputs reach fewer synapses (counts of 12 on
    the border of an 8x8 frame: warned, though the ACs cost 6.6e-9 J against 1.5e-8 J dense)."""
    import warnings

    from snnlab.metrics import CostlyEventInputWarning

    conv = sl.Sequential(sl.TimeDistributed(nn.Conv2d(2, 4, 5)), nn.Flatten(2), sl.LIF(), nn.Linear(64, 2))
    border = torch.zeros(1, 1, 2, 8, 8)
    border[..., 0, :] = border[..., -1, :] = border[..., :, 0] = border[..., :, -1] = 12.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", CostlyEventInputWarning)
        synops_table(conv, [(border, torch.tensor([0]))])
    full = torch.full((1, 1, 2, 8, 8), 30.0)   # every input element: 30 events, more than the dense convolution
    with pytest.warns(CostlyEventInputWarning, match="layer '0.module'"):
        synops_table(conv, [(full, torch.tensor([0]))])
    # probe: a strided convolution's dense cost counts its (fewer) output elements: 20 events per pixel cost 3.9x it
    strided = sl.Sequential(sl.TimeDistributed(nn.Conv2d(1, 8, 3, stride=2)), nn.Flatten(2), sl.LIF(),
                            nn.Linear(8 * 13 * 13, 2))
    with pytest.warns(CostlyEventInputWarning, match=r"than the 1\.217e\+04 MACs"):  # 13 * 13 * 8 outputs * 9
        synops_table(strided, [(torch.full((1, 1, 1, 28, 28), 20.0), torch.tensor([0]))])
    # probe: a strided convolution's dense cost counts its (fewer) output elements: 20 events per pixel cost 3.9x it
    strided = sl.Sequential(sl.TimeDistributed(nn.Conv2d(1, 8, 3, stride=2)), nn.Flatten(2), sl.LIF(),
                            nn.Linear(8 * 13 * 13, 2))
    with pytest.warns(CostlyEventInputWarning, match=r"than the 1\.217e\+04 MACs"):  # 13 * 13 * 8 outputs * 9
        synops_table(strided, [(torch.full((1, 1, 1, 28, 28), 20.0), torch.tensor([0]))])



@pytest.mark.parametrize("readout", ["spike_count", "membrane_sum"])
def test_half_precision_outputs_are_counted_and_summed_in_float32(readout):
    """Probe of precision='bfloat16': spike counts past 256 were summed in bfloat16 (301 against 300 read 300 all, a
    tie: no decision, latency never)."""
    from snnlab.core.readout import logits, predict, prediction_over_time

    out = torch.zeros(600, 1, 2, dtype=torch.bfloat16)
    out[:301, 0, 0] = 1.0
    out[:300, 0, 1] = 1.0
    assert logits(out, readout).tolist() == [[301.0, 300.0]] and logits(out, readout).dtype == torch.float32
    assert predict(out, readout).tolist() == [0]
    assert prediction_over_time(out, readout)[-1].tolist() == [0]
    assert decision_latency(out, readout).tolist() == [300.0]  # decided at the 301st spike of class 0


def test_a_model_without_neuron_layers_gets_one_warning_from_evaluate():
    """Review: Monitor now warns on a network without neuron layers; evaluate, which says so itself, names its layers
    for the Monitor so that its caller sees one warning, not two."""
    import warnings

    x = torch.rand(5, 3, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        evaluate(nn.Sequential(nn.Linear(2, 2)), [(x, torch.tensor([0, 1, 0]))])
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert len(messages) == 1 and "no snnlab.LIF layer" in messages[0], messages
