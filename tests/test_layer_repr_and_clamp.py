"""Layer reprs show every setting that changes what the layer computes (learned values included), one
``clamp_parameters_()`` loop over a model's modules clamps every layer (DelayedLinear too), and ``ALIF(64,
recurrent=True)`` says that 64 went to tau_mem."""
import pytest
import torch

import snnlab as sl

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- repr


def test_noisy_eval_is_shown():
    assert repr(sl.LIF(noise="gaussian", noisy_eval=True)) == (
        "LIF(tau_mem=10, threshold=1, reset='subtract', noise='gaussian', noise_scale=0.3, noisy_eval=True)")
    assert "noisy_eval=True" in repr(sl.ALIF(noise="gaussian", noisy_eval=True))
    assert "noisy_eval" not in repr(sl.LIF(noise="gaussian"))


def test_a_learned_tau_shows_its_value_as_the_fixed_form_does():
    assert repr(sl.LI(tau_mem=2.0, learn_tau=True)) == "LI(tau_mem=2, learn_tau=True)"
    assert repr(sl.LI(tau_mem=200.0, learn_tau=True)) == "LI(tau_mem=200, learn_tau=True)"
    lif = sl.LIF(tau_mem=5.0, learn_tau=True, n_neurons=3)
    assert repr(lif) == "LIF(tau_mem=5, learn_tau=True, threshold=1, reset='subtract', surrogate=atan(2), n_neurons=3)"
    with torch.no_grad():
        lif.tau_mem.copy_(torch.tensor([0.5, 3.0, 13.0]))  # 0.5: unclamped, the forward uses 1 step
    assert repr(lif).startswith("LIF(tau_mem=1..13, learn_tau=True,")
    fixed = sl.LIF(tau_mem=5.0, n_neurons=3)
    fixed.load_state_dict(lif.state_dict())
    assert repr(fixed).startswith("LIF(tau_mem=1..13, threshold=1,")


def test_learned_thresholds_and_adaptation_show_their_values():
    lif = sl.LIF(threshold=0.5, learn_threshold=True)
    assert repr(lif) == "LIF(tau_mem=10, threshold=0.5, learn_threshold=True, reset='subtract', surrogate=atan(2))"
    alif = sl.ALIF(adaptation=0.3, tau_adapt=40.0, learn_adaptation=True)
    assert "adaptation=0.3, tau_adapt=40, learn_adaptation=True" in repr(alif)
    assert repr(sl.ALIF(adaptation=0.3, tau_adapt=40.0, learn_adaptation=True)) != repr(
        sl.ALIF(adaptation=0.1, tau_adapt=40.0, learn_adaptation=True))


def test_mask_at_inference_is_shown_also_before_mask_p_is_set():
    layer = sl.LIF(mask_at_inference=True)
    assert repr(layer).endswith("surrogate=atan(2), mask_at_inference=True)")
    layer.mask_p = 0.2  # from now on it masks in eval mode too
    assert repr(layer).endswith("mask_p=0.2, mask_at_inference=True)")


def test_recurrent_init_is_shown_when_not_the_default():
    assert "recurrent_init='orthogonal'" in sl.RecurrentLIF(4, recurrent_init="orthogonal").extra_repr()
    assert "recurrent_init" not in sl.RecurrentLIF(4).extra_repr()
    assert sl.ALIF(n_neurons=4, recurrent=True, recurrent_init="zeros").extra_repr().endswith(
        "recurrent=True, recurrent_init='zeros'")


def test_a_layer_on_the_meta_device_has_a_repr():
    with torch.device("meta"):
        lif, li = sl.LIF(learn_tau=True), sl.LI()
    assert repr(lif).startswith("LIF(tau_mem=<meta>, learn_tau=True, threshold=<meta>,")
    assert repr(li) == "LI(tau_mem=<meta>)"


# ----------------------------------------------------------------------------- clamp_parameters_


def test_delayed_linear_clamp_parameters_is_clamp_positions():
    layer = sl.DelayedLinear(3, 4, max_delay=5, seed=0)
    with torch.no_grad():
        layer.positions.add_(100.0)
        layer.positions[0, 0] = -3.0
    assert layer.clamp_parameters_() is layer
    assert float(layer.positions.detach().max()) == 4.0 and float(layer.positions.detach().min()) == 0.0
    rounded = sl.DelayedLinear(3, 4, max_delay=5, learn_delays=False, seed=0)
    before = rounded.positions.clone()
    assert torch.equal(rounded.clamp_parameters_().positions, before)


def test_one_generic_loop_clamps_every_layer_of_a_model():
    net = sl.Sequential(sl.DelayedLinear(3, 4, max_delay=5), sl.LIF(learn_tau=True, learn_threshold=True),
                        sl.DelayedLinear(4, 2, max_delay=3), sl.LI(learn_tau=True))
    with torch.no_grad():  # an optimiser step overshot
        net[0].positions.add_(100.0)
        net[2].positions.sub_(100.0)
        net[1].tau_mem.fill_(0.2)
        net[1].threshold.fill_(-1.0)
        net[3].tau_mem.fill_(0.5)
    for m in net.modules():
        if hasattr(m, "clamp_parameters_"):
            m.clamp_parameters_()
    assert float(net[0].positions.detach().max()) == 4.0 and float(net[2].positions.detach().min()) == 0.0
    assert float(net[1].tau_mem.detach()) == 1.0 and float(net[1].threshold.detach()) > 0
    assert float(net[3].tau_mem.detach()) == 1.0


# ----------------------------------------------------------------------------- ALIF(64, recurrent=True)


def test_alif_with_the_width_first_hints_at_n_neurons():
    with pytest.raises(ValueError, match=r"got n_neurons=None; did you mean n_neurons=64\? the first argument of "
                                         r"ALIF is tau_mem$"):
        sl.ALIF(64, recurrent=True)
    for kwargs in ({"tau_mem": 20.0}, {"tau_mem": 1}, {}):  # a float time constant, 1 step, none: no such hint
        with pytest.raises(ValueError, match=r"got n_neurons=None$"):
            sl.ALIF(recurrent=True, **kwargs)
    assert sl.ALIF(64, recurrent=True, n_neurons=8).n_neurons == 8  # both given: a valid layer
