"""Metrics on models written by hand (not an sl.Sequential of Linear / LIF): convolutions, layers called per step in
a loop, time flattened into the batch, other dtypes, neurons that are not snnlab.LIF. Every number is checked against
a hand count or a brute-force loop."""
import itertools
import math
import warnings

import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.metrics import SynOpsCounter, evaluate, robustness_curve, synops_table
from snnlab.metrics.synops import conv_fanout, conv_ops
from time_wrappers import PerStep


TD = sl.TimeDistributed  # time flattened into the batch, [T*B, ...]


# ------------------------------------------------------------------------------------ brute-force conv count
def _pads(conv, L, dim):
    k, d = conv.kernel_size[dim], conv.dilation[dim]
    if conv.padding == "valid":
        return 0, 0
    if conv.padding == "same":
        total = d * (k - 1)
        return total // 2, total - total // 2
    return conv.padding[dim], conv.padding[dim]


def _source(q, L, mode):
    """Input index a padded coordinate ``q - left`` reads, or None (a zero of the padding)."""
    if 0 <= q < L:
        return q
    if mode == "zeros":
        return None
    if mode == "reflect":
        return -q if q < 0 else 2 * (L - 1) - q
    if mode == "replicate":
        return min(max(q, 0), L - 1)
    return q % L  # circular


def brute_conv_acs(conv, frame):
    """Synapses reached by the events of one frame ``[C, *spatial]``: loop over output channel, output position,
    kernel tap and input channel of the group; a tap that reads input position p delivers ``frame[c, p]`` events."""
    C, spatial = frame.shape[0], frame.shape[1:]
    nd = len(spatial)
    ranges, pads = [], []
    for i in range(nd):
        lo, hi = _pads(conv, spatial[i], i)
        pads.append(lo)
        n_out = (spatial[i] + lo + hi - conv.dilation[i] * (conv.kernel_size[i] - 1) - 1) // conv.stride[i] + 1
        ranges.append(range(n_out))
    cin_g, cout_g = C // conv.groups, conv.out_channels // conv.groups
    total = 0.0
    for oc in range(conv.out_channels):
        g = oc // cout_g
        for o in itertools.product(*ranges):
            for k in itertools.product(*[range(ks) for ks in conv.kernel_size]):
                idx = []
                for i in range(nd):
                    q = o[i] * conv.stride[i] + k[i] * conv.dilation[i] - pads[i]
                    idx.append(_source(q, spatial[i], conv.padding_mode))
                if None in idx:
                    continue
                for c in range(g * cin_g, (g + 1) * cin_g):
                    total += float(frame[(c, *idx)])
    return total


CONV_CASES = [
    ("2d stride 2 pad 1", lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 5, 7)),
    ("2d dilation 2", lambda: nn.Conv2d(2, 2, 3, dilation=2, padding=1), (2, 7, 6)),
    ("2d groups 2", lambda: nn.Conv2d(4, 6, (2, 3), groups=2, padding=(1, 0)), (4, 5, 5)),
    ("2d valid", lambda: nn.Conv2d(1, 2, 3, padding="valid"), (1, 5, 6)),
    ("2d same even kernel", lambda: nn.Conv2d(1, 2, (2, 4), padding="same"), (1, 5, 7)),
    ("2d reflect", lambda: nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect", stride=2), (1, 5, 6)),
    ("2d replicate", lambda: nn.Conv2d(2, 2, 3, padding=2, padding_mode="replicate"), (2, 4, 5)),
    ("2d circular", lambda: nn.Conv2d(1, 3, 3, padding=1, padding_mode="circular", dilation=(1, 2)), (1, 5, 7)),
    ("1d stride 3", lambda: nn.Conv1d(2, 4, 4, stride=3, padding=2, groups=2), (2, 11)),
    ("3d", lambda: nn.Conv3d(1, 2, (2, 3, 3), stride=(1, 2, 1), padding=(0, 1, 1)), (1, 3, 5, 4)),
]


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("name,make,shape", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv_synops_match_a_brute_force_loop(name, make, shape):
    torch.manual_seed(0)
    conv = make()
    frames = torch.randint(0, 3, (3, *shape)).float()  # event counts 0..2 (a 2 is two events)
    acs, macs, binary, events = conv_ops(frames, conv)
    assert acs == sum(brute_conv_acs(conv, f) for f in frames) and macs == 0.0 and binary
    assert events == float(frames.sum())
    # the same as summing the output of the convolution with all-ones weights (each synapse delivers its events)
    ones = make()
    with torch.no_grad():
        ones.weight.fill_(1.0)
        ones.bias.zero_()
        assert acs == pytest.approx(float(ones(frames).sum()), rel=1e-6)
    # analog frames run dense: output elements * (in / groups) * kernel size, per frame
    out = conv(frames)
    per_frame = out[0].numel() * (conv.in_channels // conv.groups) * math.prod(conv.kernel_size)
    mixed = frames.clone()
    mixed[1] += 0.5
    acs2, macs2, binary2, _ = conv_ops(mixed, conv)
    assert not binary2 and macs2 == per_frame
    assert acs2 == brute_conv_acs(conv, frames[0]) + brute_conv_acs(conv, frames[2])
    assert conv_ops(frames[0], conv)[0] == brute_conv_acs(conv, frames[0])  # one unbatched frame [C, *spatial]


def test_conv_fanout_hand_case_and_evaluate_counts_conv_synops():
    """Probe p1b: one interior and one corner event into Conv2d(1 -> 2, k 3, padding 1) on 4x4 reach 2*9 + 2*4 = 26
    synapses; snnlab counted 0 (convolutions were no synaptic layers)."""
    fan, out = conv_fanout(nn.Conv2d(1, 2, 3, padding=1), (4, 4))
    assert out == (4, 4) and fan.tolist() == [[8, 12, 12, 8], [12, 18, 18, 12], [12, 18, 18, 12], [8, 12, 12, 8]]
    torch.manual_seed(0)
    net = nn.Sequential(TD(nn.Conv2d(1, 2, 3, padding=1, bias=False)), sl.LIF(), TD(nn.Flatten()),
                        nn.Linear(2 * 16, 2, bias=False), sl.LI())
    with torch.no_grad():
        net[3].weight.zero_()
    x = torch.zeros(1, 1, 1, 4, 4)
    x[0, 0, 0, 1, 1] = x[0, 0, 0, 0, 0] = 1
    r = evaluate(net, [(x, torch.tensor([0]))])
    silent = r["spikes_per_sample"] == 0  # (the Linear gets no spikes unless the conv's LIF fires)
    assert silent and r["synops_per_sample"] == 26.0 and r["macs_per_sample"] == 0.0
    assert r["energy_per_sample_j"] == pytest.approx(26 * 0.9e-12)
    xa = torch.full((1, 1, 1, 4, 4), 0.5)
    with SynOpsCounter(net) as c:
        net(xa)
    assert c.macs_per_sample() == 2 * 16 * 1 * 9  # dense: output elements * in * kernel (padding taps included)


@pytest.mark.parametrize("wrap", [TD, PerStep], ids=["time in batch [T*B,C,H,W]", "per step [B,C,H,W]"])
def test_conv_synops_per_sample_whatever_the_layout(wrap):
    """evaluate divides by the samples it fed, not by the frames a convolution sees."""
    torch.manual_seed(1)
    T, B = 4, 3
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)
    net = nn.Sequential(wrap(conv), sl.LIF(threshold=0.5), TD(nn.Flatten()), nn.Linear(3 * 3 * 3, 2), sl.LI())
    x = (torch.rand(T, B, 2, 5, 5) < 0.3).float()
    y = torch.tensor([0, 1, 0])
    brute = sum(brute_conv_acs(conv, x[t, b]) for t in range(T) for b in range(B))
    table = synops_table(net, [(x, y)])
    assert table["acs_per_sample"].iloc[0] == pytest.approx(brute / B)
    assert table["in_features"].iloc[0] == 2 and table["out_features"].iloc[0] == 3  # the conv's channels
    with SynOpsCounter(net) as c:
        spikes = net[1](net[0](x))
    assert c.n_samples == 0  # (layers called directly: no forward of net)
    lin = float((spikes != 0).sum()) * 2
    r = evaluate(net, [(x, y)])
    assert r["synops_per_sample"] == pytest.approx((brute + lin) / B) and r["n_samples"] == B
    with SynOpsCounter(net) as c:
        net(x)
    assert c.n_samples == B and c.acs_per_sample() == pytest.approx((brute + lin) / B)


# ------------------------------------------------------------------------------- layers called per step
class RSNN(nn.Module):
    """A recurrent SNN written as a loop over time (probe p2): per step, input + recurrent Linear -> LIF [1, B, N]."""

    def __init__(self, n_in=4, n_h=6, n_out=2):
        super().__init__()
        self.fin, self.rec = nn.Linear(n_in, n_h, bias=False), nn.Linear(n_h, n_h, bias=False)
        self.lif, self.fout, self.li = sl.LIF(beta=0.9), nn.Linear(n_h, n_out, bias=False), sl.LI()

    def forward(self, x):
        spk = torch.zeros(1, x.shape[1], self.rec.in_features, dtype=x.dtype)
        outs = []
        for t in range(x.shape[0]):
            spk = self.lif(self.fin(x[t:t + 1]) + self.rec(spk))
            outs.append(spk)
        return self.li(self.fout(torch.cat(outs)))


def rsnn():
    net = RSNN()
    with torch.no_grad():
        net.fin.weight.fill_(1.0)
        net.rec.weight.zero_()
        net.fout.weight.fill_(0.1)
    return net


def test_a_layer_called_per_step_counts_every_call():
    """Probe p2: evaluate counted 6 spikes per sample (the last of 8 steps) instead of 48, and every per-sample SynOps
    figure was divided by the 8 calls (fin: 24 ACs instead of 8 steps * 4 events * 6 = 192)."""
    T, B = 8, 2
    net = rsnn()
    x = torch.ones(T, B, 4)  # 4 events per step: input 4 >= threshold, every hidden neuron fires every step
    r = evaluate(net, [(x, torch.tensor([0, 1]))])
    assert r["spikes_per_layer"] == {"lif": 48.0} and r["spikes_per_sample"] == 48.0
    table = synops_table(net, [(x, torch.tensor([0, 1]))]).set_index("layer")
    # fin: 32 events * 6; rec: the previous step's 6 spikes * 6, for steps 1..7 (step 0 gets zeros); fout: 48 * 2
    assert table["acs_per_sample"].to_dict() == {"fin": 192.0, "rec": 7 * 6 * 6.0, "fout": 96.0}
    assert table["input_events_per_sample"].to_dict() == {"fin": 32.0, "rec": 42.0, "fout": 48.0}
    assert r["synops_per_sample"] == 192.0 + 252.0 + 96.0
    with SynOpsCounter(net) as c:  # standalone: per forward of net, B samples
        net(x)
    assert c.n_samples == B and c.acs_per_sample() == r["synops_per_sample"]
    assert c.acs_per_sample(n_samples=1) == B * r["synops_per_sample"]


def test_monitor_joins_the_calls_of_one_forward_along_time():
    T, B = 8, 2
    net = rsnn()
    x = torch.ones(T, B, 4)
    x[3] = 0  # a silent step: the per-step LIF restarts from 0 each call, so step 3 does not fire
    with sl.Monitor(net) as mon:
        net(x)
        assert mon.spikes["lif"].shape == (T, B, 6) and mon.membrane["lif"].shape == (T, B, 6)
        expected = torch.cat([net.lif(net.fin(x[t:t + 1])) for t in range(T)]).detach()  # outside net: replaces
        assert mon.spikes["lif"].shape == (1, B, 6)
        net(x)
        assert torch.equal(mon.spikes["lif"], expected) and float(mon.spikes["lif"][3].sum()) == 0.0
        net(x[:5])  # a new forward replaces, it does not append
        assert mon.spikes["lif"].shape == (5, B, 6) and mon.membrane["li"].shape == (5, B, 2)
        mon.reset()
        assert mon.spikes == {} and mon.membrane == {}
    # a layer shared by two places of one forward: both calls, in call order
    lif = sl.LIF()
    shared = sl.Sequential(nn.Linear(3, 3), lif, nn.Linear(3, 3), lif)
    with sl.Monitor(shared) as mon:
        shared(torch.rand(5, 2, 3) * 3)
    assert mon.spikes["1"].shape == (10, 2, 3)


def test_trainer_step_spikes_and_evaluate_agree_on_a_per_step_model():
    """Probe p2b: the Trainer logged 48 spikes per sample, its final evaluate 6."""
    from snnlab.training import ExperimentConfig, Trainer

    torch.manual_seed(0)
    net = rsnn()
    x, y = torch.ones(8, 2, 4), torch.tensor([0, 1])
    tr = Trainer(ExperimentConfig(epochs=1, max_batches_per_epoch=1, device="cpu", lr=1e-12), model=net,
                 train_loader=[(x, y)], test_loader=[(x, y)], progress=False)
    res = tr.run()
    assert tr.history.frame("step")["spikes_per_sample"].tolist() == [48.0]
    assert res["final"]["spikes_per_sample"] == 48.0


# ------------------------------------------------------------------------------ time flattened into the batch
def test_a_linear_fed_time_flattened_into_the_batch_counts_per_sample():
    """Probe p1c: a Linear on [T*B, F] read the whole batch as one [T, F] sample: 4x too many SynOps per sample."""
    T, B = 5, 4
    x = torch.zeros(T, B, 3)
    x[0, :, 0] = 1  # one event per sample -> 7 ACs per sample
    for first in (nn.Linear(3, 7), TD(nn.Linear(3, 7)), PerStep(nn.Linear(3, 7))):
        net = nn.Sequential(first, sl.LIF(), nn.Linear(7, 2), sl.LI())
        with torch.no_grad():
            net[2].weight.zero_()
        with SynOpsCounter(net) as c:
            net(x)
        assert c.table()["acs_per_sample"].iloc[0] == 7.0
        assert synops_table(net, [(x, torch.zeros(B, dtype=torch.long))])["acs_per_sample"].iloc[0] == 7.0
    lin = nn.Linear(3, 7)
    with SynOpsCounter(lin) as c:  # the layer is the model: [T*B, F] is one [T, F] sample unless told
        lin(x.flatten(0, 1))
    assert c.acs_per_sample() == 28.0 and c.acs_per_sample(n_samples=B) == 7.0
    with pytest.raises(ValueError, match="n_samples"):
        c.acs_per_sample(n_samples=-1)


# ----------------------------------------------------------------------------------------------- dtypes
def _mk():
    torch.manual_seed(0)
    return sl.Sequential(nn.Linear(6, 16), sl.LIF(), nn.Linear(16, 3), sl.LI())


KEYS = ("accuracy", "loss", "spikes_per_sample", "synops_per_sample", "macs_per_sample")


@pytest.mark.parametrize("model_dtype,data_dtype", [
    (torch.float32, torch.uint8), (torch.float32, torch.int64), (torch.float32, torch.bool),
    (torch.float32, torch.float64), (torch.float64, torch.float32), (torch.float64, torch.uint8),
    (torch.bfloat16, torch.float32)])
def test_evaluate_and_robustness_cast_the_data_to_the_model_dtype(model_dtype, data_dtype):
    """Probe p8: integer event frames and float32 data for a float64 / bfloat16 model failed with 'mat1 and mat2
    must have the same dtype'."""
    x = (torch.rand(10, 4, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    y = torch.tensor([0, 1, 2, 0])
    ref = evaluate(_mk().to(model_dtype), [(x.to(model_dtype), y)])
    got = evaluate(_mk().to(model_dtype), [(x.to(data_dtype), y)])
    assert {k: got[k] for k in KEYS} == {k: ref[k] for k in KEYS}
    # input events * 16 synapses + hidden spikes * 3 synapses, per sample
    assert ref["synops_per_sample"] == (float(x.sum()) * 16 + ref["spikes_per_sample"] * 4 * 3) / 4
    curve = robustness_curve(_mk().to(model_dtype), [(x.to(data_dtype), y)], "deletion", [0.0, 0.5])
    ref_curve = robustness_curve(_mk().to(model_dtype), [(x.to(model_dtype), y)], "deletion", [0.0, 0.5])
    assert curve["accuracy"].tolist() == ref_curve["accuracy"].tolist()


def test_trainer_final_evaluate_runs_on_integer_event_frames():
    """Probe p8b: the Trainer trained on uint8 frames (it casts them), then its final evaluate failed."""
    from snnlab.training import ExperimentConfig, Trainer

    x = torch.randint(0, 3, (10, 4, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 0])
    tr = Trainer(ExperimentConfig(epochs=1, max_batches_per_epoch=1, device="cpu"), model=_mk(),
                 train_loader=[(x, y)], test_loader=[(x, y)], progress=False)
    res = tr.run()
    assert tr.state == "finished" and res["final"]["n_samples"] == 4


def test_raster_explorer_casts_integer_frames_and_float_data_to_the_model_dtype():
    pytest.importorskip("ipywidgets")
    from snnlab.widgets import RasterExplorer

    x = (torch.rand(10, 2, 6, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    ref = RasterExplorer(_mk(), x).spikes["1"]
    assert torch.equal(RasterExplorer(_mk(), x.to(torch.uint8)).spikes["1"], ref)
    assert torch.equal(RasterExplorer(_mk().double(), x).spikes["1"].float(), ref)


# ------------------------------------------------------------------------------------------ custom neurons
class MyNeuron(nn.Module):
    """A neuron that is not an snnlab.LIF: invisible to the metrics."""

    def forward(self, x):
        v, out = torch.zeros_like(x[0]), []
        for t in range(x.shape[0]):
            v = 0.9 * v + x[t]
            s = (v >= 1.0).to(x.dtype)
            v = v - s
            out.append(s)
        return torch.stack(out)


def test_a_model_without_lif_layers_warns_that_no_spikes_are_counted():
    """Probe p7: evaluate reported 0 spikes for an own neuron module, silently."""
    x, y = (torch.rand(10, 2, 6) < 0.5).float() * 2, torch.tensor([0, 1])
    net = sl.Sequential(nn.Linear(6, 8), MyNeuron(), nn.Linear(8, 2), sl.LI())
    with pytest.warns(UserWarning, match=r"no snnlab\.LIF layer.*subclass snnlab\.LIF") as rec:
        r = evaluate(net, [(x, y), (x, y)])
    assert r["spikes_per_sample"] == 0.0 and len([w for w in rec if "snnlab.LIF" in str(w.message)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate(_mk(), [(torch.ones(3, 2, 6), y)])  # a model with an LIF layer: no warning
    from snnlab.viz import monitor_raster

    with sl.Monitor(net) as mon:
        net(x)
    with pytest.raises(ValueError, match=r"no neuron layer it records \(neuron layers are snnlab\.LIF / LI"):
        monitor_raster(mon)


def test_trainer_refuses_a_spike_readout_of_a_membrane_output_before_training():
    """Probe: a spike readout of an LI model's membranes trained and scored without a word (evaluate refuses it,
    and the trainer at its first step, before any update)."""
    from snnlab.training import ExperimentConfig, Trainer

    torch.manual_seed(0)
    net = sl.Sequential(nn.Linear(4, 3), sl.LI())
    before = net[0].weight.detach().clone()
    x, y = torch.rand(6, 2, 4), torch.tensor([0, 1])
    tr = Trainer(ExperimentConfig(epochs=1, max_batches_per_epoch=1, device="cpu", readout="first_spike"), model=net,
                 train_loader=[(x, y)], test_loader=[(x, y)], store=None, progress=False)
    with pytest.raises(ValueError, match="readout 'first_spike' reads spikes, but the model's output is the membrane"):
        tr.run()
    assert torch.equal(net[0].weight, before) and tr.step == 0  # no step was taken
