"""The design card's layering, checked on the source: a layer never imports a higher one.

kernels -> core -> data / training / metrics / experiments -> viz -> widgets -> dashboard -> cli (``extras``,
the optional-import helper, and ``_lazy``, the packages' lazy-attribute helper, sit below them all). Every ``import``
counts, including the lazy ones inside functions; ``dashboards/`` (the Panel apps) is never imported by the library.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import snnlab

PACKAGE = Path(snnlab.__file__).parent
RANK = {"extras": 0, "_lazy": 0, "kernels": 0, "core": 1, "data": 2, "training": 2, "metrics": 2, "experiments": 2,
        "interop": 2, "system_info": 2, "viz": 3, "widgets": 4, "dashboard": 5, "config_args": 5, "cli": 6, "__main__": 6}
SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")  # the root re-exports all


def imported_modules(source: str, module: str, is_package: bool = False) -> list[str]:
    """Absolute names of every module imported anywhere in ``source`` (relative imports resolved)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            names.append(".".join(base + ([node.module] if node.module else [])))
    return names


def violations(layer: str, names: list[str]) -> list[str]:
    """The names in ``names`` that a module of ``layer`` may not import."""
    bad = []
    for name in names:
        parts = name.split(".")
        if parts[0] == "dashboards":
            bad.append(name)
        elif parts[0] == "snnlab" and len(parts) > 1 and RANK.get(parts[1], -1) > RANK[layer]:
            bad.append(name)
    return bad


def _layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def test_every_module_has_a_layer():
    assert SOURCES
    assert not [p for p in SOURCES if _layer_of(p) not in RANK]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_of_a_higher_layer(path):
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    names = imported_modules(path.read_text(), module.removesuffix(".__init__"), path.name == "__init__.py")
    assert violations(_layer_of(path), names) == []


def test_the_check_sees_relative_lazy_and_dashboard_imports():
    source = ("from .validation import check\nfrom . import surrogates\n"
              "def f():\n    from ..viz import raster\n    import dashboards.app\n"
              "    import snnlab.kernels.lif_torch\n")
    names = imported_modules(source, "snnlab.core.fake")
    assert sorted(names) == sorted(["snnlab.core.validation", "snnlab.core", "snnlab.viz", "dashboards.app",
                                    "snnlab.kernels.lif_torch"])
    assert sorted(violations("core", names)) == ["dashboards.app", "snnlab.viz"]
    assert imported_modules("from .lif_torch import li_torch\n", "snnlab.kernels", is_package=True) == [
        "snnlab.kernels.lif_torch"]
    assert violations("kernels", ["snnlab.core.delays"]) == ["snnlab.core.delays"]
