"""Custom surrogates: one rule for configurations, whatever the import order, and register's check of ``grad``.

Was: ``ExperimentConfig.surrogate``'s choices were copied from the registry when ``snnlab.training.config`` was
imported, so a surrogate registered before that import was accepted (and listed as a CLI / dashboard choice) and one
registered after it refused; a run's checkpoint naming an unregistered one failed to load with param's "does not
accept" without the "register it again" hint. ``register`` tried ``grad`` on a 1-D input only and took NaN / inf
results and flattened ones (training then diverged, or backward failed with a bare size mismatch).
"""
from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import pytest
import torch

import snnlab as sl
from snnlab.kernels.surrogate_math import SURROGATE_NAMES
from snnlab.training import ConfigError, ExperimentConfig, build_model
from snnlab.training import config as config_module

NAME = "rect_rules_test"
HINT = r"unknown surrogate 'rect_rules_test'; choose one of \[.*register it again"


def _rect(u: torch.Tensor, a: float) -> torch.Tensor:
    return (u.abs() < 0.5 / a).to(u.dtype) * a


@pytest.fixture
def registered():
    sl.surrogates.register(NAME, _rect, 1.0)
    try:
        yield NAME
    finally:
        if NAME in sl.surrogates.available():
            sl.surrogates.unregister(NAME)


def _fresh_config_module():
    """A fresh copy of snnlab/training/config.py, executed now: as if it were imported after this point."""
    name = "snnlab.training._config_fresh_copy_for_test"
    spec = importlib.util.spec_from_file_location(name, config_module.__file__)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


# ------------------------------------------------------------------ configurations: one rule
def test_config_registered_after_import_is_accepted_and_builds(registered):
    cfg = ExperimentConfig(surrogate=NAME, hidden=[4])  # (snnlab.training was imported before the register)
    assert cfg.validate() is cfg
    assert build_model(cfg, 3, 2)[1].surrogate.name == NAME
    cfg2 = ExperimentConfig()
    cfg2.surrogate = NAME
    assert ExperimentConfig.from_json(cfg.to_json()).surrogate == NAME


def test_config_registered_before_import_same_rule_and_choices_are_builtin(registered):
    fresh = _fresh_config_module()  # (its class is built while NAME is registered)
    schema = fresh.ExperimentConfig.schema()["surrogate"]
    assert schema["objects"] == list(SURROGATE_NAMES) == ExperimentConfig.schema()["surrogate"]["objects"]
    assert schema["type"] == "Selector"  # (the CLI gives Selector fields their choices)
    assert fresh.ExperimentConfig(surrogate=NAME).surrogate == NAME
    sl.surrogates.unregister(NAME)
    with pytest.raises(ValueError, match=HINT):
        fresh.ExperimentConfig(surrogate=NAME)


def test_cli_and_forms_choices_stay_builtin(registered):
    from snnlab.config_args import add_config_arguments
    import argparse
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "surrogate")
    assert list(action.choices) == list(SURROGATE_NAMES)
    assert NAME not in ExperimentConfig.param.surrogate.objects


def test_saved_config_naming_an_unregistered_surrogate_says_register_it_again(registered):
    text = ExperimentConfig(surrogate=NAME).to_json()
    sl.surrogates.unregister(NAME)
    for load in (lambda: ExperimentConfig.from_json(text), lambda: ExperimentConfig.from_saved(text)):
        with pytest.raises(ConfigError, match="bad value for 'surrogate': ExperimentConfig.surrogate: " + HINT):
            load()
    with pytest.raises(ValueError, match="ExperimentConfig.surrogate: unknown surrogate 'atna'.*did you mean 'atan'"):
        ExperimentConfig(surrogate="atna")


def test_validate_refuses_a_surrogate_unregistered_since_it_was_set(registered):
    cfg = ExperimentConfig(surrogate=NAME)
    blob = pickle.dumps(cfg)
    sl.surrogates.unregister(NAME)
    for c in (cfg, pickle.loads(blob)):  # (unpickling does not check the value)
        with pytest.raises(ConfigError, match="surrogate: " + HINT):
            c.validate()


# ------------------------------------------------------------------ register's check of grad
@pytest.mark.parametrize("grad, message", [
    (lambda u, a: a / u.abs().clamp(max=0.0), r"returned inf at 24 of 24 test points"),
    (lambda u, a: u * float("nan"), r"returned NaN at 24 of 24 test points"),
    (lambda u, a: a / u.abs(), r"returned inf at 1 of 24 test points \(u = 0\)"),
    (lambda u, a: torch.ones_like(u).flatten(), r"of u's shape \[2, 3, 4\].*got shape \[24\]"),
    (lambda u, a: torch.ones_like(u).transpose(0, 2), r"got shape \[4, 3, 2\]"),
    (lambda u, a: torch.tensor(1.0), r"got shape \[\]"),
    (lambda u, a: u.abs() < 0.5, r"floating-point tensor .*\.to\(u\.dtype\).*got torch\.bool"),
    (lambda u, a: torch.ones_like(u, dtype=torch.complex64), r"floating-point tensor.*complex64"),
    (lambda u, a: torch.ones_like(u, device="meta"), r"on u's device \(cpu\), got one on meta"),
    (lambda u, a: u.tolist(), r"must return a tensor of u's shape, got list"),
])
def test_register_refuses_a_bad_grad_naming_the_surrogate(grad, message):
    with pytest.raises(ValueError, match=rf"^register: surrogate '{NAME}': grad\(u, param\) with param=1 .*{message}"):
        sl.surrogates.register(NAME, grad, 1.0)
    assert NAME not in sl.surrogates.available()


def test_register_names_the_surrogate_when_grad_raises():
    with pytest.raises(TypeError, match=rf"^register: surrogate '{NAME}': grad\(u, param\) with param=1 raised "
                                        r"TypeError: .*positional argument"):
        sl.surrogates.register(NAME, lambda u: u, 1.0)
    assert NAME not in sl.surrogates.available()


def test_register_refuses_a_non_finite_default():
    for bad in (float("inf"), float("nan"), 0.0):
        with pytest.raises(ValueError, match="default parameter must be a finite number > 0"):
            sl.surrogates.register(NAME, _rect, bad)


@pytest.mark.parametrize("grad", [
    _rect,
    lambda u, a: u.abs_().neg_().add_(1).clamp_(min=0),  # in place
    lambda u, a: torch.ones_like(u, dtype=torch.float64),
    lambda u, a: torch.ones_like(u, dtype=torch.bfloat16),
])
def test_register_keeps_valid_grads_and_layers_train_with_them(grad):
    sl.surrogates.register(NAME, grad, 1.0)
    try:
        x = torch.full((3, 2, 2), 0.9, requires_grad=True)
        sl.LIF(surrogate=NAME, backend="auto")(x).sum().backward()
        assert x.grad.dtype == torch.float32 and x.grad.shape == x.shape and torch.isfinite(x.grad).all()
        assert float(x.grad.abs().sum()) > 0
    finally:
        sl.surrogates.unregister(NAME)
