"""SynOps of transposed convolutions (nn.ConvTranspose1d/2d/3d): every event times the taps that land inside the
output, checked against a brute-force loop over the scatter definition of the transposed convolution (stride,
padding, output_padding, the forward's output_size, dilation, groups), standalone and through evaluate."""
import itertools
import math

import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.metrics import SynOpsCounter, conv_fanout, conv_ops, evaluate, synops_table
from time_wrappers import PerStep


class TD(nn.Module):
    """A per-frame module on ``[T, B, ...]``: time flattened into the batch, ``[T*B, ...]`` (``output_size``: the
    spatial size passed to the module's forward)."""

    def __init__(self, m, output_size=None):
        super().__init__()
        self.m, self.output_size = m, output_size

    def forward(self, x):
        T, B = x.shape[:2]
        frames = x.flatten(0, 1)
        y = self.m(frames) if self.output_size is None else self.m(frames, output_size=self.output_size)
        return y.unflatten(0, (T, B))


# --------------------------------------------------------------------------- brute force: the scatter definition
def out_size(conv, spatial, output_size=None):
    """Output spatial size: ``(L - 1) * stride - 2 * padding + dilation * (k - 1) + 1 + output_padding``, or the
    forward's ``output_size``."""
    if output_size is not None:
        return tuple(output_size)
    return tuple((n - 1) * s - 2 * p + d * (k - 1) + 1 + op for n, s, p, d, k, op in
                 zip(spatial, conv.stride, conv.padding, conv.dilation, conv.kernel_size, conv.output_padding))


def brute_conv_transpose(conv, frame, size, weight=None):
    """Scatter one frame ``[C, *spatial]``: input (c, i) times tap (j, k) adds to output channel ``g * cout_g + j``
    at ``i * stride + k * dilation - padding`` when that lies in ``[0, size)``. Returns ``(output, reached)``:
    the output for ``weight`` (without bias; None: weights of 1) and the synapses the events reached (each tap that
    lands inside the output delivers ``frame[c, i]`` events)."""
    C, spatial = frame.shape[0], tuple(frame.shape[1:])
    nd = len(spatial)
    cin_g, cout_g = C // conv.groups, conv.out_channels // conv.groups
    out = torch.zeros(conv.out_channels, *size, dtype=torch.float64)
    reached = 0.0
    for c in range(C):
        g = c // cin_g
        for i in itertools.product(*[range(n) for n in spatial]):
            v = float(frame[(c, *i)])
            for k in itertools.product(*[range(ks) for ks in conv.kernel_size]):
                o = tuple(i[d] * conv.stride[d] + k[d] * conv.dilation[d] - conv.padding[d] for d in range(nd))
                if not all(0 <= o[d] < size[d] for d in range(nd)):
                    continue  # cropped by padding, or past the end of the output
                for j in range(cout_g):
                    w = 1.0 if weight is None else float(weight[(c, j, *k)])
                    out[(g * cout_g + j, *o)] += w * v
                    reached += v
    return out, reached


# (name, layer, frame shape [C, *spatial], output_size given to the forward or None)
CASES = [
    ("1d stride 2 pad 1", lambda: nn.ConvTranspose1d(2, 3, 3, stride=2, padding=1), (2, 6), None),
    ("1d stride 3 pad 2 output_padding 2", lambda: nn.ConvTranspose1d(1, 2, 4, stride=3, padding=2, output_padding=2),
     (1, 5), None),
    ("1d output_padding past every tap", lambda: nn.ConvTranspose1d(1, 2, 3, stride=2, output_padding=1), (1, 4), None),
    ("1d dilation 2 output_padding 1", lambda: nn.ConvTranspose1d(2, 2, 3, dilation=2, padding=1, output_padding=1),
     (2, 5), None),
    ("1d groups 2 output_size", lambda: nn.ConvTranspose1d(4, 2, 3, stride=2, padding=2, groups=2), (4, 5), (8,)),
    ("2d stride 2 pad 1 output_padding 1",
     lambda: nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1), (2, 4, 5), None),
    ("2d groups dilation", lambda: nn.ConvTranspose2d(4, 6, (2, 3), stride=(1, 2), padding=(1, 2), dilation=(2, 1),
                                                      groups=2), (4, 4, 5), None),
    ("2d padding wider than the kernel", lambda: nn.ConvTranspose2d(1, 2, 3, padding=(2, 1)), (1, 6, 5), None),
    ("2d output_size", lambda: nn.ConvTranspose2d(2, 2, 3, stride=3, padding=1), (2, 3, 4), (9, 11)),
    ("3d stride output_padding", lambda: nn.ConvTranspose3d(2, 2, (2, 3, 3), stride=(2, 1, 2), padding=(0, 1, 1),
                                                            output_padding=(1, 0, 1)), (2, 3, 4, 3), None),
    ("3d groups dilation output_size", lambda: nn.ConvTranspose3d(2, 4, 2, stride=2, dilation=(1, 2, 1), groups=2),
     (2, 2, 3, 2), (5, 8, 4)),
]
IDS = [c[0] for c in CASES]


def _run(conv, x, output_size):
    return conv(x) if output_size is None else conv(x, output_size=output_size)


@pytest.mark.parametrize("name,make,shape,output_size", CASES, ids=IDS)
def test_the_brute_force_scatter_is_the_transposed_convolution(name, make, shape, output_size):
    """The reference loop reproduces PyTorch's output (random weights, analog frame): it is the right definition."""
    torch.manual_seed(0)
    conv = make().double()
    frame = torch.randn(*shape, dtype=torch.float64)
    size = out_size(conv, shape[1:], output_size)
    expected, _ = brute_conv_transpose(conv, frame, size, conv.weight.detach())
    got = _run(conv, frame.unsqueeze(0), output_size)[0] - conv.bias.detach().view(-1, *[1] * len(size))
    assert tuple(got.shape[1:]) == size
    torch.testing.assert_close(got.detach(), expected)


@pytest.mark.parametrize("name,make,shape,output_size", CASES, ids=IDS)
def test_transposed_conv_synops_match_the_brute_force_scatter(name, make, shape, output_size):
    torch.manual_seed(0)
    conv = make()
    frames = torch.randint(0, 3, (3, *shape)).float()  # event counts 0..2 (a 2 is two events)
    size = out_size(conv, shape[1:], output_size)
    brute = [brute_conv_transpose(conv, f, size)[1] for f in frames]
    acs, macs, binary, events = conv_ops(frames, conv, output_size=output_size)
    assert acs == sum(brute) and macs == 0.0 and binary and events == float(frames.sum())
    every_tap = float(frames.sum()) * (conv.out_channels // conv.groups) * math.prod(conv.kernel_size)
    assert acs < every_tap if any(conv.padding) else acs == every_tap  # padding crops the edges' taps, nothing else
    # the same as summing the output of the layer with all-ones weights (each synapse delivers its events)
    ones = make()
    with torch.no_grad():
        ones.weight.fill_(1.0)
        ones.bias.zero_()
        assert acs == pytest.approx(float(_run(ones, frames, output_size).sum()), rel=1e-6)
    # analog frames run dense: every input element times every weight it meets, cropped taps included
    dense = math.prod(shape) * (conv.out_channels // conv.groups) * math.prod(conv.kernel_size)
    mixed = frames.clone()
    mixed[1] += 0.5
    acs2, macs2, binary2, events2 = conv_ops(mixed, conv, output_size=output_size)
    assert not binary2 and macs2 == dense and acs2 == brute[0] + brute[2]
    assert events2 == float(frames[0].sum() + frames[2].sum())
    assert conv_ops(frames[0], conv, output_size=output_size)[0] == brute[0]  # one unbatched frame [C, *spatial]
    # the counter reads the output size from the output: output_padding or the forward's output_size alike
    with SynOpsCounter(conv) as c:
        _run(conv, frames, output_size)
    assert c.ops[""].acs == acs and c.ops[""].input_events == events and c.ops[""].n_samples == 3


def test_transposed_conv_fanout_hand_cases():
    """ConvTranspose1d(k 3, stride 2, padding 1) on 3 inputs: input i lands on 2i - 1, 2i, 2i + 1 of an output of 5
    (0..4): fan-outs 2, 3, 2; an output of 6 (output_padding 1 or output_size 6) keeps the last input's tap at 5."""
    up = nn.ConvTranspose1d(1, 1, 3, stride=2, padding=1)
    assert conv_fanout(up, (3,)) == (pytest.approx(torch.tensor([2.0, 3.0, 2.0], dtype=torch.float64)), (5,))
    fan, out = conv_fanout(up, (3,), output_size=(6,))
    assert fan.tolist() == [2.0, 3.0, 3.0] and out == (6,)
    fan_op, out_op = conv_fanout(nn.ConvTranspose1d(1, 1, 3, stride=2, padding=1, output_padding=1), (3,))
    assert fan_op.tolist() == [2.0, 3.0, 3.0] and out_op == (6,)
    assert conv_fanout(up, (3,), output_size=[1, 1, 6])[0].tolist() == [2.0, 3.0, 3.0]  # (N, C, L) form too
    # 2-D, 2 output channels per group, no padding: every tap lands, 2 * 9 each
    fan2, out2 = conv_fanout(nn.ConvTranspose2d(4, 4, 3, stride=2, groups=2), (2, 3))
    assert out2 == (5, 7) and fan2.tolist() == [[18.0] * 3] * 2


def test_conv_fanout_refuses_an_output_size_it_cannot_give():
    up = nn.ConvTranspose1d(1, 1, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match=r"conv_fanout: output_size \(7,\) is not an output size of ConvTranspose1d"):
        conv_fanout(up, (3,), output_size=(7,))
    with pytest.raises(ValueError, match=r"conv_fanout: output_size \(4,\) is not"):
        conv_fanout(up, (3,), output_size=(4,))
    with pytest.raises(ValueError, match="output_size is for transposed convolutions, not Conv1d"):
        conv_fanout(nn.Conv1d(1, 1, 3), (5,), output_size=(3,))


def test_the_counter_sees_the_output_size_given_to_the_forward():
    """An event at the last input reaches one more output when output_size extends the output under padding."""
    up = nn.ConvTranspose1d(1, 2, 3, stride=2, padding=1)
    x = torch.zeros(1, 1, 3)
    x[0, 0, 2] = 1.0
    counts = []
    for call in (lambda: up(x), lambda: up(x, output_size=[6]), lambda: up(x, [1, 2, 6])):
        with SynOpsCounter(up) as c:
            call()
        counts.append(c.ops[""].acs)
    assert counts == [2 * 2.0, 2 * 3.0, 2 * 3.0]


@pytest.mark.parametrize("wrap", [TD, PerStep], ids=["time in batch [T*B,C,H,W]", "per step [B,C,H,W]"])
def test_evaluate_counts_transposed_conv_synops_per_sample(wrap):
    torch.manual_seed(1)
    T, B = 4, 3
    up = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1, bias=False)  # 3x3 -> 6x6
    net = nn.Sequential(wrap(up), sl.LIF(threshold=0.5), TD(nn.Flatten()), nn.Linear(3 * 6 * 6, 2), sl.LI())
    x = (torch.rand(T, B, 2, 3, 3) < 0.4).float()
    y = torch.tensor([0, 1, 0])
    brute = sum(brute_conv_transpose(up, x[t, b], (6, 6))[1] for t in range(T) for b in range(B))
    assert brute > 0
    table = synops_table(net, [(x, y)]).set_index("layer")
    assert list(table.index) == ["0.m", "3"]
    assert table.loc["0.m", "acs_per_sample"] == pytest.approx(brute / B) and table.loc["0.m", "binary_input"]
    assert (table.loc["0.m", "in_features"], table.loc["0.m", "out_features"]) == (2, 3)  # the layer's channels
    with torch.no_grad():
        spikes = net[1](net[0](x))
    lin = float((spikes != 0).sum()) * 2
    r = evaluate(net, [(x, y)])
    assert r["synops_per_sample"] == pytest.approx((brute + lin) / B) and r["macs_per_sample"] == 0.0
    # analog input: T dense frames per sample, 2 * 9 inputs * 3 outputs * 9 taps each
    assert evaluate(net, [(x + 0.25, y)])["macs_per_sample"] == T * 2 * 9 * 3 * 9  # (the LIF's spikes: no MACs)


def test_evaluate_counts_a_transposed_conv_given_an_output_size():
    torch.manual_seed(2)
    T, B = 3, 2
    up = nn.ConvTranspose1d(1, 2, 3, stride=2, padding=1, bias=False)
    net = nn.Sequential(TD(up, output_size=[6]), sl.LIF(), TD(nn.Flatten()), nn.Linear(2 * 6, 2), sl.LI())
    x = torch.zeros(T, B, 1, 3)
    x[0, 0, 0, 2] = x[1, 1, 0, 0] = x[2, 1, 0, 1] = 1.0  # last input (3 taps land in 6), first (2), middle (3)
    table = synops_table(net, [(x, torch.tensor([0, 1]))]).set_index("layer")
    assert table.loc["0.m", "acs_per_sample"] == 2 * (3 + 2 + 3) / B


def test_a_transposed_conv_with_an_empty_output_delivers_nothing():
    """padding=(0, 2) crops the 4 columns of a 1-wide kernel to an output of width 4 - 4 = 0: torch returns an empty
    tensor, the events reach no synapse (the unit convolution of the counter must not be run on it)."""
    torch.manual_seed(3)
    up = nn.ConvTranspose2d(2, 3, kernel_size=(2, 1), stride=1, dilation=(2, 1), padding=(0, 2))
    x = (torch.rand(3, 2, 5, 4) < 0.5).float()
    assert up(x).shape == (3, 3, 7, 0) and brute_conv_transpose(up, x[0], (7, 0))[1] == 0.0
    fan, out = conv_fanout(up, (5, 4))
    assert out == (7, 0) and fan.shape == (5, 4) and not fan.any()
    with SynOpsCounter(up) as c:
        up(x)
    assert c.ops[""].acs == 0.0 and c.ops[""].input_events == float(x.sum()) and c.ops[""].binary
    assert conv_fanout(nn.ConvTranspose1d(1, 2, 1, padding=2), (4,))[1] == (0,)  # 1-D: the same shape rule
