"""Resuming a model of your own whose fixed neuron constants differ from the checkpoint's (a ``UserWarning`` and
``Trainer(neuron_constants=...)``), and a model saved with a custom surrogate used where it is not registered (the
same helpful message on every backend)."""
from __future__ import annotations

import io
import logging
import warnings

import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.kernels.dispatch import resolve_backend
from snnlab.kernels.surrogate_math import check_builtin_surrogate, surrogate_grad
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.model import build_model, keep_neuron_constants

CFG = dict(dataset="randman", num_steps=6, data_kwargs={"samples_per_class": 4, "n_units": 6, "n_classes": 3},
           batch_size=8, epochs=1, max_batches_per_epoch=1, eval_max_batches=1)


def _custom_net(seed: int) -> sl.Sequential:
    """A model of one's own whose per-neuron time constants are drawn (by ``seed``), as spread_tau_ does."""
    g = torch.Generator().manual_seed(seed)
    return sl.Sequential(nn.Linear(6, 8), sl.LIF(n_neurons=8, tau_mem=10.0, threshold=0.5).spread_tau_(0.5, g),
                         nn.Linear(8, 3), sl.LI())


@pytest.fixture
def trained_custom(tmp_path):
    """``(run folder, trained beta_const, config with one more epoch)`` of a custom model trained one epoch."""
    cfg = ExperimentConfig(**CFG)
    t = Trainer(cfg, model=_custom_net(1), run_dir=tmp_path / "run", progress=False)
    t.run()
    return tmp_path / "run", t.model[1].beta_const.detach().clone(), cfg.copy(epochs=2)


def _constant_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, UserWarning) and "neuron constants" in
            str(w.message)]


def test_custom_model_other_constants_warn_and_name_the_buffer(trained_custom):
    run, trained_beta, cfg = trained_custom
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = Trainer(cfg, model=_custom_net(2), resume=run, progress=False)  # the taus drawn again, otherwise
    msgs = _constant_warnings(caught)
    assert len(msgs) == 1, [str(w.message) for w in caught]
    assert "1.beta_const" in msgs[0] and "neuron_constants='checkpoint'" in msgs[0]
    assert not torch.equal(t.model[1].beta_const, trained_beta)  # the default still keeps the model's own


def test_custom_model_keeps_the_checkpoints_constants_when_asked(trained_custom):
    run, trained_beta, cfg = trained_custom
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = Trainer(cfg, model=_custom_net(2), resume=run, progress=False, neuron_constants="checkpoint")
        t.run()  # and trains on with them
    assert _constant_warnings(caught) == []
    assert torch.equal(t.model[1].beta_const, trained_beta)
    assert t.epoch == 2


def test_custom_model_keeps_its_own_constants_quietly_when_asked(trained_custom):
    run, trained_beta, cfg = trained_custom
    net = _custom_net(2)
    own = net[1].beta_const.clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = Trainer(cfg, model=net, resume=run, progress=False, neuron_constants="model")
    assert _constant_warnings(caught) == []
    assert torch.equal(t.model[1].beta_const, own)


def test_custom_model_with_the_same_constants_resumes_without_a_warning(trained_custom):
    run, trained_beta, cfg = trained_custom
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = Trainer(cfg, model=_custom_net(1), resume=run, progress=False)
    assert _constant_warnings(caught) == []
    assert torch.equal(t.model[1].beta_const, trained_beta)


def test_preset_model_takes_the_new_configuration_without_a_warning(tmp_path, caplog):
    cfg = ExperimentConfig(**{**CFG, "hidden": [8], "threshold": 1.0})
    Trainer(cfg, run_dir=tmp_path / "run", progress=False).run()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO, "snnlab.training.trainer"):
        warnings.simplefilter("always")
        t = Trainer(cfg.copy(epochs=2, threshold=0.7), resume=tmp_path / "run", progress=False)
    assert _constant_warnings(caught) == []
    assert torch.allclose(t.model[1].threshold, torch.tensor(0.7))  # the configuration wins, as before
    assert any("1.threshold" in r.getMessage() and "configuration" in r.getMessage() for r in caplog.records)


def test_neuron_constants_bad_values_are_refused_before_anything_is_written(tmp_path, trained_custom):
    run, _, cfg = trained_custom
    with pytest.raises(ValueError, match="Trainer: neuron_constants must be None, 'model' or 'checkpoint', got 'ckpt'"):
        Trainer(cfg, model=_custom_net(2), resume=run, progress=False, neuron_constants="ckpt")
    with pytest.raises(ValueError, match="give resume="):
        Trainer(cfg, model=_custom_net(2), run_dir=tmp_path / "new", progress=False, neuron_constants="checkpoint")
    assert not (tmp_path / "new").exists()
    with pytest.raises(ValueError, match=r"for a model passed in \(model=...\)"):
        Trainer(cfg, resume=run, progress=False, neuron_constants="checkpoint")


def test_keep_neuron_constants_keep_false_leaves_the_loaded_values():
    model = build_model(ExperimentConfig(hidden=[8], threshold=2.0), 4, 2)
    old = build_model(ExperimentConfig(hidden=[8]), 4, 2).state_dict()
    assert keep_neuron_constants(model, lambda: model.load_state_dict(old), keep=False) == ["1.threshold"]
    assert float(model[1].threshold) == 1.0
    with pytest.raises(TypeError, match="keep_neuron_constants: keep must be True or False"):
        keep_neuron_constants(model, lambda: None, keep="no")


# ------------------------------------------------------------------ a custom surrogate where it is not registered

NAME = "rect_not_registered_here"


def _rect(u: torch.Tensor, a: float) -> torch.Tensor:
    return (u.abs() < 0.5 / a).to(u.dtype) * a


@pytest.fixture
def saved_without_registration():
    """Layers built with a custom surrogate, saved and loaded back once it is no longer registered (as in a new
    process that did not register it again)."""
    sl.surrogates.register(NAME, _rect, 1.0)
    try:
        layers = {"LIF": sl.LIF(surrogate=NAME), "ALIF": sl.ALIF(surrogate=NAME, adaptation=0.5),
                  "RLIF_reference": sl.RecurrentLIF(3, surrogate=NAME, backend="reference")}
        buf = io.BytesIO()
        torch.save(layers, buf)
    finally:
        sl.surrogates.unregister(NAME)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


HELP = r"unknown surrogate 'rect_not_registered_here'; choose one of \[.*register it again.*in a new process"


@pytest.mark.parametrize("backend", ["auto", "torch", "cpu", "triton"])
def test_lif_with_an_unregistered_surrogate_says_to_register_it_on_every_backend(saved_without_registration,
                                                                                  backend):
    lif = saved_without_registration["LIF"]
    lif.backend = backend
    with pytest.raises(ValueError, match=HELP):
        lif(torch.rand(4, 2, 3))


@pytest.mark.parametrize("backend", ["auto", "cpu", "triton"])
def test_alif_with_an_unregistered_surrogate_says_to_register_it(saved_without_registration, backend):
    alif = saved_without_registration["ALIF"]
    alif.backend = backend
    with pytest.raises(ValueError, match=HELP):
        alif(torch.rand(4, 2, 3))


def test_reference_loop_with_an_unregistered_surrogate_says_to_register_it(saved_without_registration):
    rnn = saved_without_registration["RLIF_reference"]
    x = (torch.rand(4, 2, 3) * 2).requires_grad_()
    with pytest.raises(ValueError, match=HELP):
        rnn(x).sum().backward()


def test_the_same_message_from_the_backend_choice_the_kernel_check_and_the_formula():
    for raise_it in (lambda: resolve_backend("auto", "cpu", torch.float32, NAME),
                     lambda: check_builtin_surrogate("f", NAME),
                     lambda: surrogate_grad(NAME, torch.zeros(2), 1.0),
                     lambda: sl.LIF(surrogate=NAME)):
        with pytest.raises(ValueError, match=HELP):
            raise_it()


def test_a_typo_gets_the_closest_name_and_a_registered_one_is_still_refused_by_the_fused_kernels():
    with pytest.raises(ValueError, match=r"^unknown surrogate 'atna'; .*\(did you mean 'atan'\?\)"):
        sl.surrogates.get("atna")
    with pytest.raises(ValueError, match="resolve_backend\\('torch'\\): unknown surrogate 'trianlge'.*'triangle'"):
        resolve_backend("torch", "cpu", torch.float32, "trianlge")
    sl.surrogates.register(NAME, _rect, 1.0)
    try:
        with pytest.raises(ValueError, match="the fused kernels compute the built-in surrogates only"):
            check_builtin_surrogate("f", NAME)
        assert resolve_backend("auto", "cpu", torch.float32, NAME) == "torch"
    finally:
        sl.surrogates.unregister(NAME)


@pytest.mark.parametrize("layer, backend", [("ALIF", "torch"), ("RLIF", "auto"), ("RLIF", "torch")])
def test_kernel_option_checks_with_an_unregistered_surrogate_say_to_register_it(layer, backend):
    sl.surrogates.register(NAME, _rect, 1.0)
    try:
        m = sl.ALIF(surrogate=NAME, adaptation=0.5) if layer == "ALIF" else sl.RecurrentLIF(3, surrogate=NAME)
        m.backend = backend
    finally:
        sl.surrogates.unregister(NAME)
    with pytest.raises(ValueError, match=HELP):
        m(torch.rand(4, 2, 3))
