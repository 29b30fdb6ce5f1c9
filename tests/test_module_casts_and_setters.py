"""torch.nn conventions of the core layers: dtype casts of DelayedLinear's positions, options assigned after
construction (TimeDropout.p, SpikeMask.p, the learnability flags) and SyncBatchNorm conversion of TimeBatchNorm."""
from triton_device import DEVICE, triton_kernels_ready  # noqa: I001  (before triton)

import copy

import pytest
import torch
from torch import nn

import snnlab as sl

HALF = [torch.bfloat16, torch.float16]


def _cast(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    return module.bfloat16() if dtype == torch.bfloat16 else module.half()


# ----------------------------------------------------------------------------- DelayedLinear positions under casts


@pytest.mark.parametrize("dtype", HALF)
def test_half_precision_cast_keeps_integer_delays(dtype):
    """.bfloat16() turned the fixed delays 399, 289, 371 of a max_delay=400 layer into 400 (out of range), 288
    and 372 (float16 likewise above 2048)."""
    max_delay = 400 if dtype == torch.bfloat16 else 3000
    dl = sl.DelayedLinear(4, 4, max_delay=max_delay, learn_delays=False, seed=0)
    with torch.no_grad():
        dl.positions.copy_(torch.arange(max_delay - 16, max_delay, dtype=torch.float32).view(4, 4))
    before = dl.delays.clone()
    _cast(dl, dtype)
    assert dl.weight.dtype == dtype and dl.positions.dtype == torch.float32 and dl.rounded
    assert torch.equal(dl.delays, before)
    assert int(dl.delays.max()) == max_delay - 1


@pytest.mark.parametrize("dtype", HALF)
def test_half_precision_cast_keeps_learned_positions_and_their_gradient(dtype):
    dl = sl.DelayedLinear(3, 2, max_delay=300, sigma=0.5, seed=1)
    with torch.no_grad():
        dl.positions.copy_(torch.tensor([[298.6, 17.3, 0.2], [150.55, 3.0, 255.7]]))
    dl(torch.rand(6, 2, 3)).sum().backward()
    param, values, grad = dl.positions, dl.positions.detach().clone(), dl.positions.grad.clone()
    _cast(dl, dtype)
    assert dl.positions is param and isinstance(param, nn.Parameter)  # (an optimiser holding it still trains it)
    assert param.dtype == torch.float32 and torch.equal(param.detach(), values)
    assert param.grad.dtype == torch.float32 and torch.equal(param.grad, grad)
    assert dl.weight.dtype == dtype and dl.weight.grad.dtype == dtype


def test_half_precision_construction_and_round_trip_through_float64_keep_float32_positions():
    dl = sl.DelayedLinear(4, 4, max_delay=400, learn_delays=False, seed=3, dtype=torch.bfloat16)
    ref = sl.DelayedLinear(4, 4, max_delay=400, learn_delays=False, seed=3)
    assert dl.positions.dtype == torch.float32 and torch.equal(dl.delays, ref.delays)
    learned = sl.DelayedLinear(4, 4, max_delay=400, seed=3)
    values = learned.positions.detach().clone()
    learned.double()
    assert learned.positions.dtype == torch.float64
    learned.bfloat16()
    assert learned.positions.dtype == torch.float32 and torch.equal(learned.positions.detach(), values)
    learned.float()
    assert learned.positions.dtype == torch.float32 and learned.weight.dtype == torch.float32


@pytest.mark.parametrize("rounded", [False, True])
def test_bfloat16_layer_with_float32_positions_computes_the_float32_layer(rounded):
    """A rounded layer whose synapses all sit at the longest delay (399) fired at step 400 after .bfloat16()."""
    dl = sl.DelayedLinear(4, 3, max_delay=400, sigma=0.5, seed=2, backend="torch")
    with torch.no_grad():
        dl.positions.fill_(399.0 if rounded else 398.6)
    if rounded:
        dl.round_delays()
    values = dl.positions.detach().clone()
    ref = copy.deepcopy(dl.bfloat16()).double()  # the bfloat16 weights, the positions from before, in float64
    assert torch.equal(ref.positions.float(), values)
    x = torch.zeros(405, 2, 4)
    x[0] = 1.0
    y = dl(x.bfloat16())
    want = ref(x.double())
    assert y.dtype == torch.bfloat16
    def steps(out):  # the steps that carry signal (not FFT round-off, nor Gaussian tails below float32's range)
        per_step = out.double().abs().sum((1, 2))
        return (per_step > 1e-3 * per_step.max()).nonzero().flatten()

    assert torch.equal(steps(y), steps(want)) and len(steps(want)) > 0
    torch.testing.assert_close(y.double(), want, rtol=2 ** -8, atol=1e-6)


triton_ready, triton_reason = triton_kernels_ready("snnlab.kernels.delays_triton")


@pytest.mark.skipif(not triton_ready, reason=triton_reason)
@pytest.mark.parametrize("rounded", [False, True])
def test_triton_path_takes_float32_positions_with_a_bfloat16_layer(rounded):
    dl = sl.DelayedLinear(3, 2, max_delay=5, sigma=0.7, seed=4, backend="triton").to(DEVICE)
    if rounded:
        dl.round_delays()
    values = dl.positions.detach().clone()
    dl.bfloat16()
    assert dl.positions.dtype == torch.float32 and torch.equal(dl.positions.detach(), values)
    ref = copy.deepcopy(dl).double()  # the bfloat16 weights in float64
    ref.backend = "torch"
    x = (torch.rand(7, 2, 3, generator=torch.Generator().manual_seed(5)) < 0.5).to(DEVICE)
    y = dl(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.double(), ref(x.double()), rtol=2 ** -8, atol=1e-6)


def test_state_dicts_of_half_precision_layers_and_old_bfloat16_positions_load():
    dl = sl.DelayedLinear(4, 4, max_delay=400, learn_delays=False, seed=5).bfloat16()
    state = dl.state_dict()
    assert state["positions"].dtype == torch.float32 and state["weight"].dtype == torch.bfloat16
    back = sl.DelayedLinear(4, 4, max_delay=400, learn_delays=False, seed=6)
    back.load_state_dict(state)
    assert torch.equal(back.delays, dl.delays)
    # a state saved before: bfloat16 positions (its values as they were rounded then)
    old = dict(state, positions=torch.full((4, 4), 288.0, dtype=torch.bfloat16))
    for assign in (False, True):
        layer = sl.DelayedLinear(4, 4, max_delay=400, learn_delays=False, seed=6).bfloat16()
        layer.load_state_dict(old, assign=assign)
        assert layer.positions.dtype == torch.float32 and bool((layer.delays == 288).all())
    learnable = sl.DelayedLinear(4, 4, max_delay=400, seed=6).bfloat16()
    saved = dict(learnable.state_dict(), positions=learnable.positions.detach().bfloat16())
    for assign in (False, True):
        layer = sl.DelayedLinear(4, 4, max_delay=400, seed=7).bfloat16()
        layer.load_state_dict(saved, assign=assign)
        assert isinstance(layer.positions, nn.Parameter) and layer.positions.dtype == torch.float32
        assert torch.equal(layer.positions.detach(), saved["positions"].float())


# ----------------------------------------------------------------------------- probabilities set later


def test_time_dropout_p_is_checked_when_assigned():
    """td.p = 1.0 gave NaN outputs, 1.5 a bernoulli error quoting 1 - p."""
    td = sl.TimeDropout(0.2)
    for bad in (1.0, 1.5, -0.1, "0.3", True):
        with pytest.raises(ValueError, match=r"TimeDropout: p must be a number in \[0, 1\)"):
            td.p = bad
    assert td.p == 0.2
    td.p = 0.5
    y = td(torch.ones(3, 2, 4))
    assert td.p == 0.5 and torch.isfinite(y).all() and set(y.unique().tolist()) <= {0.0, 2.0}


def test_spike_mask_p_is_checked_when_assigned():
    sm = sl.SpikeMask(0.2, seed=0)
    for bad in (-0.5, 1.0, float("nan"), True):
        with pytest.raises(ValueError, match="SpikeMask: p"):
            sm.p = bad
    assert sm.p == 0.2
    sm.p = 0.0
    assert torch.equal(sm(torch.ones(3, 2, 4)), torch.ones(3, 2, 4))


# ----------------------------------------------------------------------------- learnability flags set later


@pytest.mark.parametrize("make,flag", [(lambda: sl.LIF(n_neurons=4), "learn_threshold"),
                                       (lambda: sl.LIF(), "learn_tau"),
                                       (lambda: sl.LI(), "learn_tau"),
                                       (lambda: sl.ALIF(n_neurons=4), "learn_threshold"),
                                       (lambda: sl.LIF(learn_tau=True, learn_threshold=True), "learn_tau")])
def test_neuron_learnability_flags_are_fixed_at_construction(make, flag):
    """lif.learn_threshold = True changed the repr and trained nothing; lif.learn_tau = True broke the forward."""
    layer = make()
    current = getattr(layer, flag)
    params = [name for name, _ in layer.named_parameters()]
    name = type(layer).__name__
    with pytest.raises(AttributeError, match=rf"{name}: {flag} is fixed at construction.*{name}\(\.\.\., "
                                             rf"{flag}={not current}\)"):
        setattr(layer, flag, not current)
    with pytest.raises(TypeError, match=f"{flag} must be True or False"):
        setattr(layer, flag, "no")
    setattr(layer, flag, current)  # the same value: nothing changes
    assert getattr(layer, flag) is current and [n for n, _ in layer.named_parameters()] == params
    layer(torch.rand(5, 2, 4))
    clone = copy.deepcopy(layer)  # (copies set their state without __setattr__)
    assert getattr(clone, flag) is current


def test_delayed_linear_learn_delays_is_fixed_at_construction():
    dl = sl.DelayedLinear(4, 4, 3, seed=0)
    with pytest.raises(AttributeError, match=r"learn_delays is fixed at construction.*round_delays\(\)"):
        dl.learn_delays = False
    with pytest.raises(TypeError, match="learn_delays must be True or False"):
        dl.learn_delays = "no"
    dl.learn_delays = True
    assert dl.learn_delays is True and isinstance(dl.positions, nn.Parameter)
    fixed = sl.DelayedLinear(4, 4, 3, learn_delays=False, seed=0)
    with pytest.raises(AttributeError, match=r"DelayedLinear\(\.\.\., learn_delays=True\)"):
        fixed.learn_delays = True
    assert fixed.learn_delays is False and fixed.rounded


def test_loading_a_learnable_state_still_makes_a_fixed_layer_learnable():
    """The one change of learn_delays the layer makes itself: the loaded state's form."""
    fixed = sl.DelayedLinear(4, 4, 3, learn_delays=False, seed=0)
    with pytest.warns(UserWarning, match="positions become a new Parameter"):
        fixed.load_state_dict(sl.DelayedLinear(4, 4, 3, seed=1).state_dict())
    assert fixed.learn_delays is True and isinstance(fixed.positions, nn.Parameter) and not fixed.rounded


# ----------------------------------------------------------------------------- SyncBatchNorm


def test_convert_sync_batchnorm_keeps_time_major_normalisation():
    """nn.SyncBatchNorm.convert_sync_batchnorm made TimeBatchNorm a plain SyncBatchNorm reading [T, B, F] as
    [N, C, L]: silently wrong where B == F."""
    from snnlab.core.normalization import TimeSyncBatchNorm, convert_sync_batchnorm

    torch.manual_seed(0)
    net = sl.Sequential(nn.Linear(4, 4), sl.TimeBatchNorm(4), sl.LIF(), sl.TimeBatchNorm(4, affine=False))
    aux = nn.Sequential(nn.BatchNorm1d(4))
    ref = copy.deepcopy(net)
    weight = net[1].weight
    x = torch.randn(10, 4, 4)  # B == F
    conv = convert_sync_batchnorm(net)
    assert conv is net and [type(m).__name__ for m in conv] == ["Linear", "TimeSyncBatchNorm", "LIF",
                                                                "TimeSyncBatchNorm"]
    assert isinstance(conv[1], sl.TimeBatchNorm) and isinstance(conv[1], nn.SyncBatchNorm)
    assert conv[1].weight is weight  # (an optimiser built before still trains it)
    assert list(conv.state_dict()) == list(ref.state_dict())
    torch.testing.assert_close(conv(x), ref(x), rtol=0, atol=0)  # training, no process group: the local batch
    torch.testing.assert_close(conv[1].running_mean, ref[1].running_mean, rtol=0, atol=0)
    conv.eval(), ref.eval()
    torch.testing.assert_close(conv(x[:, :3]), ref(x[:, :3]), rtol=0, atol=0)
    assert type(convert_sync_batchnorm(aux)[0]) is nn.SyncBatchNorm
    again = convert_sync_batchnorm(conv)
    assert again[1] is conv[1]  # synchronised already: kept
    single = convert_sync_batchnorm(sl.TimeBatchNorm(3))
    assert type(single) is TimeSyncBatchNorm and single.num_features == 3
    with pytest.raises(TypeError, match="convert_sync_batchnorm: expected an nn.Module"):
        convert_sync_batchnorm("net")
