"""Core-layer fixes: batch norm statistics under activation checkpointing, Monitor (a str of layers, checkpoint
recomputations, vmap, dtype warnings), TimeDropout under vmap, readouts of T = 0, TimeBatchNorm with one value."""
import copy
import functools
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils.checkpoint import checkpoint

import snnlab as sl
from snnlab.core.readout import READOUTS, logits, predict, prediction_over_time


# ----------------------------------------------------------------------------- checkpointing and batch norm
def _norm_block(momentum=0.1):
    torch.manual_seed(0)
    return sl.Sequential(nn.Linear(4, 8), sl.TimeBatchNorm(8, momentum=momentum), sl.LIF(), nn.Linear(8, 3),
                         sl.TimeBatchNorm(3, momentum=momentum), sl.LI())


def _assert_same_model(plain, ckpt):
    for (name, a), (_, b) in zip(plain.named_buffers(), ckpt.named_buffers()):
        assert a.dtype == b.dtype and torch.equal(a, b), name  # bit for bit
    for (name, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-7, msg=name)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_checkpoint_updates_running_statistics_once(momentum):
    block = _norm_block(momentum)
    plain, ckpt = copy.deepcopy(block), copy.deepcopy(block)
    x = torch.randn(12, 3, 4) * 3 + 1
    plain(x).pow(2).sum().backward()
    sl.activation_checkpoint(ckpt, x).pow(2).sum().backward()
    assert int(ckpt[1].num_batches_tracked) == int(ckpt[4].num_batches_tracked) == 1
    _assert_same_model(plain, ckpt)
    plain.eval(), ckpt.eval()
    assert torch.equal(plain(x), ckpt(x))


def test_checkpoint_keeps_statistics_of_torch_norms_in_any_function_and_over_repeated_backwards():
    torch.manual_seed(1)
    lin, bn, inorm = nn.Linear(4, 6), nn.BatchNorm1d(6), nn.InstanceNorm1d(6, track_running_stats=True)

    def block(x):  # a plain function, not a module
        h = bn(lin(x).flatten(0, 1)).view(x.shape[0], x.shape[1], 6)
        return inorm(h.permute(1, 2, 0)).permute(2, 0, 1)

    x = torch.randn(7, 5, 4)
    block(x).pow(2).sum().backward()
    want = {k: v.clone() for k, v in {**bn.state_dict(prefix="bn."), **inorm.state_dict(prefix="in.")}.items()}
    want_grad = lin.weight.grad.clone()
    bn.reset_running_stats(), inorm.reset_running_stats()  # back to the start
    lin.weight.grad = None
    y = sl.activation_checkpoint(block, x).pow(2).sum()
    y.backward(retain_graph=True)
    y.backward()  # a second backward recomputes again: still one update
    got = {**bn.state_dict(prefix="bn."), **inorm.state_dict(prefix="in.")}
    assert all(torch.equal(got[k], want[k]) for k in want), [k for k in want if not torch.equal(got[k], want[k])]
    torch.testing.assert_close(lin.weight.grad, 2 * want_grad)


def test_seeded_stream_contexts_with_torch_checkpoint_keep_statistics_and_replay_noise():
    block = sl.Sequential(nn.Linear(4, 8), sl.TimeBatchNorm(8), sl.LIF(noise="gaussian", noise_scale=0.3, seed=2))
    plain, ckpt = copy.deepcopy(block), copy.deepcopy(block)
    x = torch.randn(9, 2, 4)
    plain(x).sum().backward()
    checkpoint(ckpt, x, use_reentrant=False, context_fn=sl.seeded_stream_contexts).sum().backward()
    assert int(ckpt[1].num_batches_tracked) == 1
    _assert_same_model(plain, ckpt)


def test_kept_running_stats_leaves_eval_layers_and_puts_back_the_buffers_themselves():
    from snnlab.core.activation_checkpoint import kept_running_stats
    bn = sl.TimeBatchNorm(3)
    mean = bn.running_mean
    with kept_running_stats():
        bn(torch.randn(4, 2, 3) + 5)
        assert not torch.equal(bn.running_mean, torch.zeros(3))  # a scratch copy took the update
    assert bn.running_mean is mean and torch.equal(mean, torch.zeros(3)) and int(bn.num_batches_tracked) == 0
    bn(torch.randn(4, 2, 3) + 5)  # outside: updated as usual
    assert int(bn.num_batches_tracked) == 1


# ----------------------------------------------------------------------------- Monitor
def _six_lif_net():
    layers = []
    for _ in range(6):
        layers += [nn.Linear(3, 3), sl.LIF(threshold=0.2)]
    return sl.Sequential(*layers)  # neuron layers '1', '3', ..., '11'


def test_monitor_takes_a_str_as_one_layer_name():
    net, x = _six_lif_net(), torch.rand(4, 2, 3)
    with sl.Monitor(net, layers="11") as mon:
        net(x)
    assert list(mon.spikes) == ["11"]
    with pytest.raises(ValueError, match=r"Monitor: no neuron layer named \['13'\]"):
        sl.Monitor(net, layers="13")


def test_monitor_takes_any_iterable_of_layer_names_and_refuses_other_layers_clearly():
    """Before: a generator of names was read up by the check, so the Monitor recorded nothing without a word;
    layers=1 gave Python's "'int' object is not iterable" and layers=[1] "no neuron layer named [1]"."""
    net, x = _six_lif_net(), torch.rand(4, 2, 3)
    for layers in ((n for n in ("3", "11")), iter(["3", "11"]), ("3", "11"), {"3": None, "11": None}.keys()):
        with sl.Monitor(net, layers=layers) as mon:
            net(x)
        assert sorted(mon.spikes) == ["11", "3"] and mon.spikes["3"].shape == (4, 2, 3)
    with pytest.raises(TypeError, match=r"Monitor: layers must be a layer name, an iterable of names or None, got "
                                        r"int 1"):
        sl.Monitor(net, layers=1)
    with pytest.raises(TypeError, match=r"Monitor: layers must be names \(str, as in net.named_modules\(\)\), "
                                        r"got \[3\]"):
        sl.Monitor(net, layers=["1", 3])


class _StepLoop(nn.Module):
    def __init__(self, ckpt):
        super().__init__()
        torch.manual_seed(0)
        self.block = nn.Sequential(nn.Linear(3, 4), sl.LIF(threshold=0.3), nn.Linear(4, 2))
        self.ckpt = ckpt

    def forward(self, x):
        run = functools.partial(sl.activation_checkpoint, self.block) if self.ckpt else self.block
        return torch.cat([run(x[t:t + 1]) for t in range(x.shape[0])])


def test_monitor_records_stay_those_of_the_forward_when_backward_recomputes():
    x = torch.rand(6, 2, 3)
    records = []
    for ckpt in (False, True):
        net = _StepLoop(ckpt)
        with sl.Monitor(net) as mon:
            net(x).pow(2).sum().backward()
        records.append((mon.spikes["block.1"], mon.membrane["block.1"]))
    assert records[1][0].shape == (6, 2, 4)
    assert torch.equal(records[0][0], records[1][0]) and torch.equal(records[0][1], records[1][1])
    net = sl.Sequential(nn.Linear(3, 4), sl.LIF(threshold=0.3), nn.Linear(4, 2), sl.LI())
    with sl.Monitor(net) as mon:  # a whole-net checkpoint: the record is the forward's tensor, not replaced
        y = sl.activation_checkpoint(net, x)
        rec = mon.spikes["1"]
        y.pow(2).sum().backward()
        assert mon.spikes["1"] is rec


def test_monitor_refuses_recording_under_vmap():
    net = sl.Sequential(nn.Linear(3, 4), sl.LIF(threshold=0.3), nn.Linear(4, 2), sl.LI())
    x = torch.rand(5, 6, 1, 3)
    with sl.Monitor(net):
        with pytest.raises(RuntimeError, match=r"Monitor: layer '1' was called under torch.func.vmap"):
            vmap(net, in_dims=1, out_dims=1)(x)
    with sl.Monitor(net) as mon:  # the same net without vmap records
        net(x[:, :, 0])
    assert mon.spikes["1"].shape == (5, 6, 4)


def test_monitor_warning_names_different_dtypes_not_shapes():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lif = sl.LIF()

        def forward(self, x):
            return self.lif(x), self.lif(x.double())

    net = Two()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with sl.Monitor(net) as mon:
            net(torch.rand(4, 2, 3))
    messages = [str(w.message) for w in caught if "Monitor" in str(w.message)]
    assert len(messages) == 2 and all("different dtypes ['torch.float32', 'torch.float64']" in m for m in messages)
    assert not any("shapes" in m for m in messages)
    assert mon.spikes["lif"].dtype == torch.float64


# ----------------------------------------------------------------------------- TimeDropout
def test_time_dropout_draws_the_same_masks_as_before():
    """One uniform number per sample and neuron compared with 1 - p: on the CPU the very masks of the former
    in-place bernoulli_(1 - p) for a given seed."""
    for dtype, p in ((torch.float32, 0.3), (torch.float64, 0.5), (torch.bfloat16, 0.25)):
        torch.manual_seed(5)
        keep = torch.empty(1, 16, 9, dtype=dtype).bernoulli_(1 - p)
        torch.manual_seed(5)
        y = sl.TimeDropout(p)(torch.ones(7, 16, 9, dtype=dtype))
        assert y.dtype == dtype and torch.equal(y, (torch.ones(7, 16, 9, dtype=dtype) * keep / (1 - p)))


def test_time_dropout_runs_under_vmap_with_different_randomness():
    torch.manual_seed(0)
    net = sl.Sequential(nn.Linear(4, 8), sl.LIF(), sl.TimeDropout(0.3), nn.Linear(8, 2), sl.LI())
    params = {k: v.detach() for k, v in net.named_parameters()}
    x, y = torch.rand(10, 3, 4), torch.tensor([0, 1, 0])

    def loss(p, xb, yb):
        out = functional_call(net, p, (xb.unsqueeze(1),))
        return nn.functional.cross_entropy(out.sum(0), yb.unsqueeze(0))

    g = vmap(grad(loss), in_dims=(None, 1, 0), randomness="different")(params, x, y)
    assert g["0.weight"].shape == (3, 8, 4) and bool(torch.isfinite(g["0.weight"]).all())
    drop = sl.TimeDropout(0.5)
    masks = vmap(drop, in_dims=1, out_dims=1, randomness="different")(torch.ones(6, 32, 1, 20))
    assert torch.equal(masks, masks[:1].expand_as(masks))  # one mask per sample, over every step
    assert set(masks.unique().tolist()) <= {0.0, 2.0}
    assert not all(torch.equal(masks[0, 0], masks[0, i]) for i in range(1, 32))  # samples differ
    same = vmap(drop, in_dims=1, out_dims=1, randomness="same")(torch.ones(6, 32, 1, 20))
    assert all(torch.equal(same[:, 0], same[:, i]) for i in range(1, 32))
    torch.manual_seed(4)
    plain = drop(torch.ones(6, 32, 20))
    torch.manual_seed(4)  # under torch.func (the out-of-place draw): the same masks for the same seed
    assert torch.equal(grad(lambda x: drop(x).sum())(torch.ones(6, 32, 20)), plain)


# ----------------------------------------------------------------------------- readouts and TimeBatchNorm
@pytest.mark.parametrize("readout", READOUTS)
def test_readouts_refuse_an_output_without_time_steps(readout):
    out = torch.zeros(0, 2, 3)
    for fn in (logits, predict, prediction_over_time):
        with pytest.raises(ValueError, match=rf"readout '{readout}': .* has no time steps .*T = 0"):
            fn(out, readout)
    assert logits(torch.zeros(1, 2, 3), readout).shape == (2, 3)  # one step is enough


def test_time_batch_norm_with_one_value_per_feature_names_itself():
    bn = sl.TimeBatchNorm(5)
    with pytest.raises(ValueError, match=r"TimeBatchNorm: .*\[T, B, F\].*\(1, 1, 5\)"):
        bn(torch.randn(1, 1, 5))
    with pytest.raises(ValueError, match=r"TimeBatchNorm: "):
        sl.TimeBatchNorm(5, track_running_stats=False).eval()(torch.randn(1, 1, 5))
    assert int(bn.num_batches_tracked) == 0
    assert bn.eval()(torch.randn(1, 1, 5)).shape == (1, 1, 5)  # the running statistics take one value
    assert sl.TimeBatchNorm(5)(torch.randn(2, 1, 5)).shape == (2, 1, 5)


@pytest.mark.parametrize("flag", ["detach_reset", "noisy_eval", "mask_at_inference", "learn_threshold", "learn_tau"])
def test_neuron_flags_must_be_true_or_false(flag):
    """Tester: ``LIF(detach_reset="no")`` was taken as True (any truthy value was)."""
    with pytest.raises(TypeError, match=rf"LIF: {flag} must be True or False, got str 'no'"):
        sl.LIF(**{flag: "no"})
    for good, expected in ((True, True), (np.bool_(False), False), (1, True), (0, False)):
        assert getattr(sl.LIF(**{flag: good}), flag) is expected
    if flag in ("detach_reset", "noisy_eval", "mask_at_inference"):  # also when assigned later
        layer = sl.LIF()
        with pytest.raises(TypeError, match=rf"LIF: {flag} must be True or False, got NoneType None"):
            setattr(layer, flag, None)
        assert getattr(layer, flag) is False
