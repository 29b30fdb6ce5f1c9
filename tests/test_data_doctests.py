"""Run the docstring examples of snnlab.data (examples that need real data are marked +SKIP)."""
import doctest
import importlib

import pytest

MODULES = ["encoders", "collate", "embedded", "synthetic", "cache", "neuromorphic", "audio"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module(f"snnlab.data.{name}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_package_exports():
    import snnlab.data as d

    for n in d.__all__:
        assert hasattr(d, n), n
    assert "tonic" not in str(getattr(d, "__file__"))
