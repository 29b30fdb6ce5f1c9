"""Input checks of the core layers and the delay plots: bad input gets a clear error naming the layer and argument,
NumPy numbers are taken like Python ones, and a failed load changes nothing."""
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.core.delays import DelayedLinear, DelaySchedule
from snnlab.core import validation
from snnlab.kernels.lif_common import check_mask_p
from snnlab.kernels.lif_torch import lif_torch


# ----------------------------------------------------------------------------- DelayedLinear: failed loads


def _trained_looking(layer: DelayedLinear) -> DelayedLinear:
    """Move the sigma off its default so that a change shows."""
    layer.sigma = 1.25
    return layer


def _state(layer: nn.Module) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in layer.state_dict().items()}


def _assert_unchanged(layer: DelayedLinear, positions: nn.Parameter, before: dict) -> None:
    assert layer.positions is positions  # the very Parameter an optimiser holds
    assert [n for n, _ in layer.named_parameters()] == ["weight", "positions"]
    assert "positions" not in dict(layer.named_buffers())
    assert not layer.rounded and layer.sigma == 1.25
    after = layer.state_dict()
    assert list(after) == list(before)
    for k, v in before.items():
        assert torch.equal(after[k], v), k


def test_failed_load_of_a_rounded_layer_of_another_shape_leaves_the_layer_as_it_was():
    layer = _trained_looking(DelayedLinear(3, 2, max_delay=4, seed=0))
    opt = torch.optim.Adam(layer.parameters())
    positions, before = layer.positions, _state(layer)
    other = DelayedLinear(3, 5, max_delay=8, learn_delays=False, seed=1)
    with pytest.raises(RuntimeError, match="size mismatch"):
        layer.load_state_dict(other.state_dict())
    _assert_unchanged(layer, positions, before)
    assert any(p is layer.positions for p in opt.param_groups[0]["params"])


def test_failed_load_keeps_the_values_that_would_have_loaded():
    # positions and the flag fit, the weight does not: the rounded positions must not stay behind
    layer = _trained_looking(DelayedLinear(3, 2, max_delay=4, seed=0))
    positions, before = layer.positions, _state(layer)
    state = DelayedLinear(3, 2, max_delay=4, learn_delays=False, seed=1).state_dict()
    state["weight"] = torch.zeros(7, 7)
    with pytest.raises(RuntimeError, match="size mismatch for weight"):
        layer.load_state_dict(state)
    _assert_unchanged(layer, positions, before)
    state["weight"] = "not a tensor"
    with pytest.raises(RuntimeError, match="weight"):
        layer.load_state_dict(state)
    _assert_unchanged(layer, positions, before)


def test_failed_load_in_a_model_leaves_the_layer_as_it_was():
    # load_state_dict collects the errors of every module and raises after all of them ran
    layer = _trained_looking(DelayedLinear(3, 2, max_delay=4, seed=0))
    model = nn.Sequential(layer, sl.LIF(), DelayedLinear(2, 2, max_delay=4))
    positions, before = layer.positions, _state(layer)
    state = nn.Sequential(DelayedLinear(3, 4, max_delay=4, learn_delays=False, seed=1), sl.LIF(),
                          DelayedLinear(2, 2, max_delay=4)).state_dict()
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
        model.load_state_dict(state, strict=False)
    _assert_unchanged(layer, positions, before)
    with pytest.raises(RuntimeError, match="size mismatch for 0.positions"):
        model.load_state_dict(state, assign=True)
    _assert_unchanged(layer, positions, before)


def test_load_with_a_bad_sigma_raises_and_leaves_the_layer_as_it_was():
    layer = _trained_looking(DelayedLinear(3, 2, max_delay=4, seed=0))
    positions, before = layer.positions, _state(layer)
    state = DelayedLinear(3, 2, max_delay=4, learn_delays=False, seed=1).state_dict()
    state["_extra_state"] = torch.tensor(0.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="DelayedLinear: sigma"):
        layer.load_state_dict(state)
    _assert_unchanged(layer, positions, before)


def test_good_loads_still_take_the_saved_form():
    layer = DelayedLinear(3, 2, max_delay=4, seed=0)
    rounded = DelayedLinear(3, 2, max_delay=4, learn_delays=False, seed=1)
    rounded.sigma = 0.5
    layer.load_state_dict(rounded.state_dict())
    assert layer.rounded and layer.sigma == 0.5 and [n for n, _ in layer.named_parameters()] == ["weight"]
    assert torch.equal(layer.positions, rounded.positions)
    # not strict: a key left out is no error, the rest loads
    fresh = DelayedLinear(3, 2, max_delay=4, seed=2)
    partial = {k: v for k, v in rounded.state_dict().items() if k != "weight"}
    result = fresh.load_state_dict(partial, strict=False)
    assert result.missing_keys == ["weight"] and fresh.rounded and torch.equal(fresh.positions, rounded.positions)


# ----------------------------------------------------------------------------- DelaySchedule


def _schedule():
    layer = DelayedLinear(3, 2, max_delay=9, seed=0)
    return DelaySchedule(layer, total_epochs=5, anneal_fraction=0.5), layer


@pytest.mark.parametrize("change, exc, words", [
    (dict(total_epochs=0), ValueError, "total_epochs must be an int >= 1"),
    (dict(total_epochs=2.5), ValueError, "total_epochs"),
    (dict(total_epochs=True), ValueError, "total_epochs"),
    (dict(sigma_start=-5), ValueError, "sigma_start must be a finite number > 0"),
    (dict(sigma_end=float("nan")), ValueError, "sigma_end"),
    (dict(sigma_end="0.5"), TypeError, "sigma_end must be a number"),
    (dict(kind="bogus"), ValueError, "unknown kind 'bogus'"),
    (dict(anneal_fraction=0.0), ValueError, "anneal_fraction must lie in"),
    (dict(anneal_fraction="a"), TypeError, "anneal_fraction must be a number"),
    (dict(epoch=-1), ValueError, "epoch must be an int >= 0"),
    (dict(epoch="1"), ValueError, "epoch"),
])
def test_schedule_load_state_dict_refuses_bad_states_and_changes_nothing(change, exc, words):
    sched, layer = _schedule()
    sched.step()
    before, sigma = sched.state_dict(), layer.sigma
    with pytest.raises(exc, match=f"DelaySchedule.load_state_dict: {words}"):
        sched.load_state_dict(before | change)
    assert sched.state_dict() == before and layer.sigma == sigma


def test_schedule_load_state_dict_names_missing_keys_and_takes_good_states():
    sched, layer = _schedule()
    with pytest.raises(ValueError, match=r"lacks \['kind'\]"):
        sched.load_state_dict({k: v for k, v in sched.state_dict().items() if k != "kind"})
    with pytest.raises(TypeError, match="state_dict"):
        sched.load_state_dict([1, 2])
    other, _ = _schedule()
    other.step()
    other.step()
    sched.load_state_dict(other.state_dict())
    assert sched.state_dict() == other.state_dict() and layer.sigma == other.sigma_at(2)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(anneal_fraction="a"), TypeError, "DelaySchedule: anneal_fraction must be a number"),
    (dict(anneal_fraction=float("nan")), ValueError, "DelaySchedule: anneal_fraction"),
    (dict(total_epochs=np.float64(3)), ValueError, "DelaySchedule: total_epochs"),
])
def test_schedule_constructor_errors(kwargs, exc, words):
    with pytest.raises(exc, match=words):
        DelaySchedule(DelayedLinear(3, 2, max_delay=4), **({"total_epochs": 3} | kwargs))


def test_schedule_takes_numpy_numbers():
    a = DelaySchedule(DelayedLinear(3, 2, max_delay=9), total_epochs=np.int64(5), sigma_end=np.float32(0.5),
                      anneal_fraction=np.float64(0.5))
    b = DelaySchedule(DelayedLinear(3, 2, max_delay=9), total_epochs=5, sigma_end=0.5, anneal_fraction=0.5)
    assert type(a.total_epochs) is int and a.state_dict() == b.state_dict()
    assert [a.sigma_at(e) for e in range(5)] == [b.sigma_at(e) for e in range(5)]


# ----------------------------------------------------------------------------- NumPy numbers


def test_numpy_mask_p_is_taken_like_a_float():
    x = torch.rand(20, 3, 8, generator=torch.Generator().manual_seed(0)) * 0.8
    a = sl.LIF(mask_p=np.float32(0.3), seed=np.int64(4), backend="torch")
    b = sl.LIF(mask_p=float(np.float32(0.3)), seed=4, backend="torch")
    assert type(a.mask_p) is float and torch.equal(a(x), b(x))
    assert check_mask_p(np.float64(0.25)) == 0.25 and check_mask_p(0) == 0.0
    beta, thr = torch.tensor(0.9), torch.tensor(1.0)
    torch.testing.assert_close(lif_torch(x, beta, thr, mask_p=np.float64(0.5), mask_seed=2)[0],
                               lif_torch(x, beta, thr, mask_p=0.5, mask_seed=2)[0], rtol=0, atol=0)
    s = torch.ones(50, 2, 10)
    m = sl.SpikeMask(np.float64(0.2), seed=np.int64(3))
    assert type(m.p) is float and torch.equal(m(s), sl.SpikeMask(0.2, seed=3)(s))


def test_bad_mask_p_says_what_is_wrong():
    with pytest.raises(ValueError, match=r"SpikeMask: p is the probability .* must be a number .* got str '0.5'"):
        sl.SpikeMask("0.5")
    with pytest.raises(ValueError, match=r"SpikeMask: p is the probability .* must lie in \[0, 1\), got 1.0"):
        sl.SpikeMask(1.0)
    with pytest.raises(ValueError, match=r"LIF: mask_p .* must be a number .* got bool True"):
        sl.LIF(mask_p=True)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\), got 10000"):
        check_mask_p(10**400)


def test_numpy_ints_are_taken_where_the_core_takes_ints():
    a = DelayedLinear(np.int64(3), np.int32(2), max_delay=np.int64(4), seed=np.int64(0))
    b = DelayedLinear(3, 2, max_delay=4, seed=0)
    assert (type(a.in_features), type(a.out_features), type(a.max_delay)) == (int, int, int)
    assert torch.equal(a.weight, b.weight) and torch.equal(a.positions, b.positions)
    lif = sl.LIF(n_neurons=np.int64(3), max_spikes=np.int16(1))
    assert type(lif.n_neurons) is int and type(lif.max_spikes) is int and lif.threshold.shape == (3,)
    assert sl.LI(n_neurons=np.uint8(2)).n_neurons == 2
    assert validation.is_integer(np.int64(1)) and not validation.is_integer(True) and not validation.is_integer(np.float64(1.0))


# ----------------------------------------------------------------------------- core constructor arguments


@pytest.mark.parametrize("make, exc, words", [
    (lambda: sl.LIF(n_neurons=True), ValueError, "LIF: n_neurons must be a positive int .* got bool True"),
    (lambda: sl.LI(n_neurons=False), ValueError, "LI: n_neurons must be a positive int .* got bool False"),
    (lambda: sl.LIF(seed=2**70), ValueError, r"LIF: seed must lie in \[-2\*\*63, 2\*\*64\)"),
    (lambda: sl.LIF(seed=2**64), ValueError, r"LIF: seed must lie in \[-2\*\*63, 2\*\*64\)"),
    (lambda: sl.LIF(seed=-(2**63) - 1), ValueError, r"LIF: seed must lie in \[-2\*\*63, 2\*\*64\)"),
    (lambda: sl.LIF(seed=1.5), TypeError, "LIF: seed must be an int .* got float 1.5"),
    (lambda: sl.LIF(seed=True), TypeError, "LIF: seed must be an int"),
    (lambda: sl.SpikeMask(0.5, seed="a"), TypeError, "SpikeMask: seed must be an int .* got str 'a'"),
    (lambda: sl.SpikeMask(0.5, seed=2**64), ValueError, "SpikeMask: seed must lie in"),
    (lambda: DelayedLinear(3, 2, 4, seed="0"), TypeError, "DelayedLinear: seed must be an int"),
    (lambda: DelayedLinear(3, 2, 4, seed=2**70), ValueError, "DelayedLinear: seed must lie in"),
    (lambda: DelayedLinear(True, 2, 4), TypeError, "DelayedLinear: in_features must be an int"),
])
def test_bad_constructor_arguments_name_the_argument(make, exc, words):
    with pytest.raises(exc, match=words):
        make()


def test_every_seed_a_torch_generator_takes_works():
    assert validation.as_seed(2**64 - 1, "LIF") == 2**64 - 1 and validation.as_seed(np.uint64(5)) == 5
    x = torch.rand(3, 2, 2)
    for seed in (2**64 - 1, -(2**63), -1):
        assert sl.LIF(seed=seed, noise="gaussian")(x).shape == x.shape
    assert sl.SpikeMask(0.5, seed=0)(torch.ones(3, 2, 2)).shape == (3, 2, 2)


@pytest.mark.parametrize("layer", [sl.LIF(backend="torch"), sl.LIF(), sl.LI(), DelayedLinear(3, 3, 4)],
                         ids=["LIF-torch", "LIF-auto", "LI", "DelayedLinear"])
def test_complex_inputs_are_refused(layer):
    x = torch.complex(torch.rand(4, 2, 3), torch.rand(4, 2, 3))
    name = type(layer).__name__
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (not the ComplexWarning of a cast that drops the imaginary part)
        with pytest.raises(TypeError, match=f"{name}: .*complex dtype torch.complex64.*x.real"):
            layer(x)


@pytest.mark.parametrize("value", [1 + 0j, np.complex128(1 + 2j), torch.tensor(1 + 2j)],
                         ids=["complex", "numpy", "tensor"])
def test_complex_numbers_are_refused(value):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TypeError, match="LIF: threshold must be a real number, got the complex"):
            sl.LIF(threshold=value)
        with pytest.raises(TypeError, match="beta must be a real number"):
            validation.as_number(value, "beta", "LI")


# ----------------------------------------------------------------------------- delay plots and learning curves


@pytest.fixture
def viz():
    pytest.importorskip("holoviews")
    from snnlab import viz

    return viz


@pytest.mark.parametrize("func", ["delay_matrix", "gaussian_kernels", "delay_snapshot"])
def test_delay_plots_refuse_what_is_not_a_delay_layer(viz, func):
    args = (0,) if func == "delay_snapshot" else ()
    with pytest.raises(TypeError, match=f"{func}: expected a snnlab.DelayedLinear layer .* got Linear"):
        getattr(viz, func)(nn.Linear(2, 2), *args)


def test_delay_histogram_refuses_what_is_neither_a_layer_nor_delays(viz):
    with pytest.raises(TypeError, match="delay_histogram: expected a snnlab.DelayedLinear layer or an array / tensor "
                                        "of delays, got Linear$"):
        viz.delay_histogram(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="got list of <U1"):
        viz.delay_histogram(["a", "b"])
    # what it takes still works
    assert int(viz.delay_histogram([0, 1, 1]).dimension_values("synapses").sum()) == 3
    assert int(viz.delay_histogram(np.array([], dtype=float)).dimension_values("synapses").sum()) == 0
    assert int(viz.delay_histogram(DelayedLinear(3, 2, 4, seed=0)).dimension_values("synapses").sum()) == 6


@pytest.mark.parametrize("value", [[], [1, 2, 3], {"name": [], "value": []}], ids=["empty", "list", "dict"])
def test_learning_curves_say_they_take_a_dataframe(viz, value):
    with pytest.raises(TypeError, match="learning_curves: df must be a pandas DataFrame .* pd.DataFrame"):
        viz.learning_curves(value)


def test_dropout_and_batch_norm_take_numpy_numbers():
    assert sl.TimeDropout(np.float32(0.25)).p == 0.25
    assert sl.TimeBatchNorm(np.int64(3)).num_features == 3 and type(sl.TimeBatchNorm(np.int64(3)).num_features) is int
    with pytest.raises(ValueError, match="TimeDropout: p must be a number in"):
        sl.TimeDropout("0.2")


def test_a_0d_integer_tensor_is_still_a_seed():
    """Review: LIF(seed=torch.tensor(3)) worked through int() before the seed check."""
    x = torch.rand(4, 2, 3)
    lif = lambda seed: sl.LIF(seed=seed, noise="gaussian")(x)  # noqa: E731
    assert torch.equal(lif(torch.tensor(3)), lif(3))
    with pytest.raises(TypeError, match="seed must be an int"):
        sl.LIF(seed=torch.tensor(3.0))
    with pytest.raises(TypeError, match="seed must be an int"):
        sl.LIF(seed=torch.tensor([3]))


def test_modules_infer_shapes_on_meta_tensors():
    """nn-conventions probe: every module but the dropouts failed on meta tensors (Tensor.item() in the finiteness
    checks, the rounded flag, the active taps), which nn.Linear takes for shape inference."""
    import snnlab as sl

    net = sl.Sequential(sl.DelayedLinear(4, 6, max_delay=5), sl.TimeBatchNorm(6), sl.LIF(noise="gaussian", mask_p=0.2),
                        sl.TimeDropout(0.1), sl.DelayedLinear(6, 3, max_delay=5).round_delays(), sl.LI())
    fixed = sl.DelayedLinear(4, 3, max_delay=5, learn_delays=False)
    for T in (10, 200):  # taps and FFT
        x = torch.empty(T, 2, 4, device="meta")
        assert net.to("meta")(x).shape == (T, 2, 3) and fixed.to("meta")(x).shape == (T, 2, 3)
    assert net[0].rounded is False and net[4].rounded and fixed.rounded


def test_a_backend_set_after_construction_is_checked_naming_the_layer():
    lif = sl.LIF()
    lif.backend = "gpu"
    with pytest.raises(ValueError, match=r"LIF: unknown backend 'gpu'; choose one of"):
        lif(torch.rand(3, 1, 2))


def test_a_fused_kernel_refusing_a_dtype_says_which_backends_take_it():
    from snnlab.kernels.lif_common import check_fused_args

    with pytest.raises(TypeError, match=r"lif_triton supports .* got torch.float64: use backend='torch' or 'auto'"):
        check_fused_args("lif_triton", torch.zeros(2, 1, dtype=torch.float64), "subtract", "atan", None,
                         (torch.float32,))
