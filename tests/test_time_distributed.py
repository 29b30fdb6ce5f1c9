"""TimeDistributed: frame-by-frame modules (convolutions, pooling, batch norm) on time-major tensors."""
import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.core.time_distributed import TimeDistributed
from snnlab.metrics import evaluate
from snnlab.metrics.synops import conv_fanout


def test_each_time_step_is_the_module_on_that_frame():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(4, 5, 2, 6, 7)
    y = TimeDistributed(conv)(x)
    assert y.shape == (4, 5, 3, 6, 7)
    for t in range(4):
        torch.testing.assert_close(y[t], conv(x[t]), rtol=0, atol=1e-6)


def test_gradients_equal_a_loop_over_time():
    torch.manual_seed(1)
    conv = nn.Conv1d(3, 2, 2, stride=2)
    x = torch.randn(3, 2, 3, 8, requires_grad=True)
    TimeDistributed(conv)(x).square().sum().backward()
    gx, gw = x.grad.clone(), conv.weight.grad.clone()
    x.grad = None
    conv.weight.grad = None
    sum(conv(x[t]).square().sum() for t in range(3)).backward()
    torch.testing.assert_close(x.grad, gx)
    torch.testing.assert_close(conv.weight.grad, gw)


def test_non_contiguous_input_and_empty_time_or_batch():
    pool = TimeDistributed(nn.MaxPool2d(2))
    x = torch.randn(2, 4, 3, 6, 6).transpose(0, 1)  # [4, 2, ...], not contiguous
    assert not x.is_contiguous()
    torch.testing.assert_close(pool(x)[1], nn.functional.max_pool2d(x[1], 2))
    assert pool(torch.randn(0, 4, 3, 6, 6)).shape == (0, 4, 3, 3, 3)
    assert pool(torch.randn(5, 0, 3, 6, 6)).shape == (5, 0, 3, 3, 3)


def test_a_convolutional_snn_trains_on_event_frames():
    torch.manual_seed(2)
    net = sl.Sequential(TimeDistributed(nn.Conv2d(2, 4, 3, stride=2)), sl.LIF(), nn.Flatten(start_dim=2),
                        nn.Linear(4 * 3 * 3, 2), sl.LI())
    x = (torch.rand(6, 8, 2, 7, 7) < 0.3).float()
    y = torch.arange(8) % 2
    x[:, y == 1, 0] *= 3  # class 1: more ON events
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(net(x).sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_evaluate_counts_the_wrapped_convolutions_synops_per_sample():
    """A Conv2d(1 -> 2, k 3, pad 1) on 4x4 frames: each event reaches its fan-out (conv_fanout) of synapses."""
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    net = sl.Sequential(TimeDistributed(conv), sl.LIF(threshold=1e9), nn.Flatten(start_dim=2),
                        nn.Linear(2 * 16, 2, bias=False), sl.LI())
    x = torch.zeros(3, 2, 1, 4, 4)
    x[0, 0, 0, 1, 1] = x[2, 0, 0, 0, 0] = x[1, 1, 0, 3, 2] = 1  # three events over two samples
    fan = conv_fanout(conv, (4, 4))[0]
    r = evaluate(net, [(x, torch.tensor([0, 1]))])
    assert r["spikes_per_sample"] == 0  # the LIF never fires: only the convolution's synapses count
    assert r["synops_per_sample"] == pytest.approx(float(fan[1, 1] + fan[0, 0] + fan[3, 2]) / 2)


def test_with_monitor_the_neurons_after_it_are_recorded():
    net = sl.Sequential(TimeDistributed(nn.Conv2d(1, 2, 3)), sl.LIF(), nn.Flatten(start_dim=2))
    with sl.Monitor(net) as mon:
        net(torch.rand(5, 3, 1, 6, 6))
    assert mon.spikes["1"].shape == (5, 3, 2, 4, 4)


@pytest.mark.parametrize("module", [sl.LIF(), nn.Sequential(nn.Conv2d(1, 1, 3), sl.LI()), nn.LSTM(4, 4),
                                    nn.GRUCell(4, 4)])
def test_neuron_and_recurrent_layers_inside_are_refused(module):
    with pytest.raises(ValueError, match=r"keep a state across time.*put the neurons between"):
        TimeDistributed(module)


@pytest.mark.parametrize("bad, exc, match", [
    ("conv", TypeError, "wraps an nn.Module"),
])
def test_bad_module(bad, exc, match):
    with pytest.raises(exc, match=match):
        TimeDistributed(bad)


def test_bad_input_names_the_module_and_the_shape():
    td = TimeDistributed(nn.Conv2d(1, 1, 3))
    with pytest.raises(ValueError, match=r"TimeDistributed\(Conv2d\).*at least 3 dimensions.*\(4, 6\)"):
        td(torch.rand(4, 6))
    with pytest.raises(TypeError, match=r"TimeDistributed\(Conv2d\).*got list"):
        td([1, 2])
    with pytest.raises(ValueError, match=r"\[6, \.\.\.\] to one output per frame, got \(24,\)"):
        TimeDistributed(nn.Flatten(0))(torch.rand(2, 3, 4))


@pytest.mark.parametrize("module, listed", [
    (sl.TimeDropout(0.5), r"\['TimeDropout'\]"),
    (sl.DelayedLinear(4, 3, max_delay=3, seed=0), r"\['DelayedLinear'\]"),
    (sl.TimeBatchNorm(4), r"\['TimeBatchNorm'\]"),
    (TimeDistributed(nn.Conv2d(1, 1, 3)), r"\['TimeDistributed'\]"),
    (sl.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), sl.TimeDropout(0.2)), r"\['2 \(TimeDropout\)'\]"),
    (nn.Sequential(nn.Linear(4, 4), nn.Sequential(sl.TimeBatchNorm(4), sl.DelayedLinear(4, 2, max_delay=2))),
     r"\['1.0 \(TimeBatchNorm\)', '1.1 \(DelayedLinear\)'\]"),
])
def test_time_major_snnlab_layers_inside_are_refused(module, listed):
    """They take [T, B, ...] themselves: folded, TimeDropout would draw one mask for all T * B frames instead of
    one per sample, DelayedLinear would delay along the batch, TimeBatchNorm and TimeDistributed refuse 2-D input."""
    with pytest.raises(ValueError, match=rf"TimeDistributed: {type(module).__name__} holds the time-major "
                                         rf"layer\(s\) {listed}, which take \[T, B, \.\.\.\] themselves.*use them "
                                         rf"outside the wrapper"):
        TimeDistributed(module)


def test_spike_mask_inside_draws_the_same_masks_as_on_the_time_major_tensor():
    """SpikeMask drops each element independently: folding time into the batch changes nothing, the same seed
    gives the same masks (one per element, different across samples and steps)."""
    x = torch.ones(6, 4, 8)
    folded = TimeDistributed(sl.SpikeMask(0.5, seed=3)).train()(x)
    direct = sl.SpikeMask(0.5, seed=3).train()(x)
    assert torch.equal(folded, direct)
    assert not torch.equal(folded[0, 0], folded[0, 1]) and not torch.equal(folded[0, 0], folded[1, 0])
