"""Run the docstring examples of snnlab.viz and check the package exports."""
import doctest
import importlib

import pytest

MODULES = ["__init__", "theme", "raster", "traces", "delays", "curves", "pareto", "tradeoff", "robustness", "events"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    mod = importlib.import_module("snnlab.viz" if name == "__init__" else f"snnlab.viz.{name}")
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_package_exports_and_no_ui_imports():
    from pathlib import Path

    import snnlab.viz as v

    for n in v.__all__:
        assert hasattr(v, n), n
    for f in Path(v.__file__).parent.glob("*.py"):  # the viz layer never depends on widgets / dashboards / panel
        src = f.read_text()
        for banned in ("snnlab.widgets", "snnlab.dashboard", "import panel", "from panel", "hv.extension("):
            assert banned not in src.replace('``hv.extension("bokeh")``', ""), (f.name, banned)
