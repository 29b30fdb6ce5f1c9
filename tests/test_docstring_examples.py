"""Run the docstring examples of every snnlab module (examples that need real data or a GPU are +SKIP)."""
import doctest
import importlib
import pkgutil

import pytest

import snnlab

MODULES = sorted(m.name for m in pkgutil.walk_packages(snnlab.__path__, "snnlab."))


def test_walk_finds_every_layer():
    for layer in ("kernels", "core", "data", "training", "metrics", "viz", "widgets"):
        assert any(name.startswith(f"snnlab.{layer}.") for name in MODULES), layer


@pytest.mark.parametrize("name", ["snnlab"] + MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(name)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
