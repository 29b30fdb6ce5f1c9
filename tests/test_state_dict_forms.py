"""State dicts that load across the forms a layer can take, and refuse what would compute another function:
a DelayedLinear keeps its max_delay in its state (a load into another max_delay is refused), and a neuron's time
constant loads across its learned (``tau_mem``) and fixed (``beta_const``) forms, as the threshold does."""
import warnings

import pytest
import torch

import snnlab as sl

torch.set_num_threads(1)


def _x(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(40, 2, n, generator=torch.Generator().manual_seed(seed))


def _without_max_delay(state: dict) -> dict:
    """``state`` as an snnlab that kept sigma but not max_delay saved it (``_extra_state`` the scalar sigma)."""
    return {**state, "_extra_state": state["_extra_state"].reshape(-1)[0].clone()}


# ----------------------------------------------------------------------------- DelayedLinear: max_delay


def test_the_state_dict_holds_sigma_and_max_delay():
    layer = sl.DelayedLinear(3, 4, max_delay=25, seed=0)
    layer.sigma = 0.75
    extra = layer.state_dict()["_extra_state"]
    assert extra.dtype == torch.float64 and extra.tolist() == [0.75, 25.0]


@pytest.mark.parametrize("saved,own", [(25, 10), (10, 25)])
@pytest.mark.parametrize("rounded", [False, True])
def test_a_state_from_another_max_delay_is_refused_naming_both_and_the_fix(saved, own, rounded):
    src = sl.DelayedLinear(3, 4, max_delay=saved, seed=0)
    if rounded:
        src.round_delays()
    dst = sl.Sequential(sl.DelayedLinear(3, 4, max_delay=own, seed=1), sl.LIF())
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    state = sl.Sequential(src, sl.LIF()).state_dict()
    for strict in (True, False):
        with pytest.raises(RuntimeError) as info:
            dst.load_state_dict(state, strict=strict)
        message = str(info.value)
        assert f"DelayedLinear 0: max_delay mismatch: the state dict was saved from a layer with max_delay={saved}, " \
               f"and this layer has max_delay={own}" in message
        assert f"build the layer with DelayedLinear(..., max_delay={saved}) to load it" in message
    after = dst.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing loaded, the form kept
    assert not dst[0].rounded
    same = sl.Sequential(sl.DelayedLinear(3, 4, max_delay=saved, seed=1), sl.LIF())
    same.load_state_dict(state)  # the saved max_delay: loads, the same function
    assert same[0].rounded == rounded and torch.equal(same(_x()), sl.Sequential(src, sl.LIF())(_x()))


def test_set_extra_state_refuses_another_max_delay():
    layer = sl.DelayedLinear(3, 4, max_delay=10)
    with pytest.raises(ValueError, match=r"max_delay=25, and this layer has max_delay=10"):
        layer.set_extra_state(torch.tensor([2.0, 25.0], dtype=torch.float64))
    layer.set_extra_state(torch.tensor([2.0, 10.0], dtype=torch.float64))
    assert layer.sigma == 2.0
    with pytest.raises(ValueError, match=r"\[sigma, max_delay\]"):
        layer.set_extra_state(torch.tensor([2.0, 10.5], dtype=torch.float64))


def test_older_states_load_as_before_unless_their_rounded_delays_are_out_of_range():
    """Saved with sigma alone (a scalar _extra_state), or before sigma was kept (none): those of this layer's
    max_delay load, silently; rounded delays past it are refused."""
    learnable = sl.DelayedLinear(3, 4, max_delay=10, seed=0)
    for src in (learnable, sl.DelayedLinear(3, 4, max_delay=10, seed=0).round_delays()):
        for old in (_without_max_delay(src.state_dict()),
                    {k: v for k, v in src.state_dict().items() if k != "_extra_state"}):
            dst = sl.DelayedLinear(3, 4, max_delay=10, seed=1)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                dst.load_state_dict(old)
            assert dst.rounded == src.rounded and torch.equal(src(_x()), dst(_x()))
    src = sl.DelayedLinear(3, 4, max_delay=25, seed=0).round_delays()
    high = int(src.delays.max())
    assert high > 9
    dst = sl.DelayedLinear(3, 4, max_delay=10, seed=1)
    before = dst.positions.detach().clone()
    with pytest.raises(RuntimeError, match=rf"delays out of range for positions: the saved rounded delays span "
                                           rf"\d+\.\.{high}, but this layer \(max_delay=10\) holds delays 0\.\.9"
                                           rf".*max_delay >= {high + 1}"):
        dst.load_state_dict(_without_max_delay(src.state_dict()))
    assert not dst.rounded and torch.equal(dst.positions.detach(), before)
    negative = _without_max_delay(sl.DelayedLinear(3, 4, max_delay=10, seed=0).round_delays().state_dict())
    negative["positions"][0, 0] = -1.0
    with pytest.raises(RuntimeError, match=r"span -1\.\.\d, but this layer \(max_delay=10\) holds delays 0\.\.9"):
        sl.DelayedLinear(3, 4, max_delay=10).load_state_dict(negative)


def test_older_learnable_positions_past_the_range_load_with_a_warning():
    """They may come from a longer layer or from one of this max_delay whose positions were never clamped (its
    forward clamps them): the state cannot tell, so they load, with a warning naming the fix."""
    src = sl.DelayedLinear(3, 4, max_delay=25, seed=0)
    dst = sl.DelayedLinear(3, 4, max_delay=10, seed=1)
    with pytest.warns(UserWarning, match=r"saved positions reach 2\d\.\d+, past this layer's longest delay 9 "
                                         r"\(max_delay=10\).*DelayedLinear\(\.\.\., max_delay=<the saved layer's>\)"):
        dst.load_state_dict(_without_max_delay(src.state_dict()))
    assert torch.equal(dst.positions, src.positions)


# ----------------------------------------------------------------------------- the time constant's two forms


def _layers():
    return [("LIF", lambda **k: sl.LIF(n_neurons=4, **k)), ("LI", lambda **k: sl.LI(n_neurons=4, **k)),
            ("ALIF", lambda **k: sl.ALIF(n_neurons=4, **k)),
            ("RecurrentLIF", lambda **k: sl.RecurrentLIF(4, **k))]


def _same_synapses(a, b):
    if getattr(a, "recurrent", None) is not None:
        b.recurrent.load_state_dict(a.recurrent.state_dict())


@pytest.mark.parametrize("name,make", _layers(), ids=[n for n, _ in _layers()])
def test_a_learned_tau_loads_into_the_fixed_form_and_computes_the_same(name, make):
    threshold = {} if name == "LI" else {"learn_threshold": True}  # (a learned threshold loads into a fixed one)
    trained = make(tau_mem=5.0, learn_tau=True, **threshold)
    with torch.no_grad():
        trained.tau_mem.copy_(torch.tensor([0.5, 3.0, 8.0, 13.7]))  # 0.5: left unclamped, the forward uses 1
    frozen = make(tau_mem=5.0)
    _same_synapses(trained, frozen)
    result = frozen.load_state_dict(trained.state_dict())  # strict
    assert not result.missing_keys and not result.unexpected_keys
    assert "tau_mem" not in dict(frozen.named_parameters()) and "beta_const" in dict(frozen.named_buffers())
    expected = 1.0 - 1.0 / torch.tensor([1.0, 3.0, 8.0, 13.7])  # what the learned layer's forward computes with
    assert torch.equal(frozen.beta_const, expected)
    x = _x(4) * 0.8
    assert torch.equal(frozen(x), trained(x))


@pytest.mark.parametrize("name,make", _layers(), ids=[n for n, _ in _layers()])
def test_a_fixed_tau_loads_into_the_learned_form(name, make):
    fixed = make(tau_mem=5.0)
    with torch.no_grad():
        fixed.beta_const.copy_(torch.tensor([0.0, 0.5, 0.875, 0.9]))
    learned = make(tau_mem=20.0, learn_tau=True)
    _same_synapses(fixed, learned)
    tau = learned.tau_mem
    result = learned.load_state_dict(fixed.state_dict())
    assert not result.missing_keys and not result.unexpected_keys
    assert learned.tau_mem is tau  # (in place: an optimiser holding it still trains it)
    expected = (1.0 / (1.0 - torch.tensor([0.0, 0.5, 0.875, 0.9]).double())).float()  # as the constructor converts
    assert torch.equal(learned.tau_mem.detach(), expected)
    x = _x(4) * 0.8
    torch.testing.assert_close(learned(x), fixed(x), rtol=0, atol=1e-6)


def test_a_decay_factor_of_one_is_refused_by_a_learned_tau_and_changes_nothing():
    layer = sl.Sequential(torch.nn.Linear(3, 3), sl.LIF(learn_tau=True, learn_threshold=True))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    state = sl.Sequential(torch.nn.Linear(3, 3), sl.LIF(beta=1.0, learn_threshold=True)).state_dict()
    with pytest.raises(RuntimeError, match=r"LIF 1: the saved 1\.beta_const holds a decay factor of 1 .*build the "
                                           r"layer with learn_tau=False"):
        layer.load_state_dict(state)
    assert torch.equal(layer[1].tau_mem.detach(), before["1.tau_mem"])
    assert torch.equal(layer[1].threshold.detach(), before["1.threshold"])


def test_a_seeded_layer_converts_its_tau_and_continues_the_saved_stream():
    trained = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(tau_mem=4.0, learn_tau=True, noise="gaussian", seed=3))
    frozen = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(tau_mem=9.0, noise="gaussian", seed=8))
    frozen.load_state_dict(trained.state_dict())
    assert torch.equal(frozen(_x()), trained(_x()))  # the same tau, the same noise stream
    for kwargs in ({"learn_tau": True}, {}):  # states of the layer's own form load as before
        a, b = sl.LIF(tau_mem=3.0, **kwargs), sl.LIF(tau_mem=7.0, **kwargs)
        b.load_state_dict(a.state_dict())
        assert torch.equal(b.beta(), a.beta())


@pytest.mark.parametrize("learned_saved", [True, False])
def test_a_converted_time_constant_of_another_shape_is_refused_naming_the_key_the_checkpoint_holds(learned_saved):
    """PyTorch named it by this layer's form only (``size mismatch for 1.beta_const``), a key the checkpoint lacks."""
    saved = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(n_neurons=4, learn_tau=learned_saved))
    dst = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(learn_tau=not learned_saved))
    own, other = ("beta_const", "tau_mem") if learned_saved else ("tau_mem", "beta_const")
    with pytest.raises(RuntimeError) as info:
        dst.load_state_dict(saved.state_dict())
    assert (f"size mismatch for 1.{own}: copying a param with shape torch.Size([4]) from checkpoint, the shape in "
            f"current model is torch.Size([]). (saved as 1.{other}, the {'learned' if learned_saved else 'fixed'} "
            "form of the time constant; build the layer with the saved n_neurons)") in str(info.value)
    same_form = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(learn_tau=learned_saved))
    with pytest.raises(RuntimeError) as info:  # (not converted: PyTorch's message as it is)
        same_form.load_state_dict(saved.state_dict())
    assert "form of the time constant" not in str(info.value)
