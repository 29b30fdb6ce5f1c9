"""A package's modules as attributes, imported on first access (PEP 562): ``snnlab.core`` and ``snnlab.kernels``
use it, so ``import snnlab; snnlab.core.neurons`` works as it did when ``import snnlab`` imported the whole core.

(In the lowest layer so that every package may use it; it imports nothing from snnlab.)
"""
from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from pkgutil import iter_modules
from typing import Any, Callable


def module_attributes(package: str, path: list[str], names: Callable[[], dict[str, Any]]
                      ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` (its ``__name__``, ``__path__`` and ``globals``): an attribute that
    names one of its public modules imports it; ``dir()`` lists them without importing any.

    Example:
        >>> import snnlab.kernels as k
        >>> "dispatch" in dir(k) and k.dispatch.__name__
        'snnlab.kernels.dispatch'
    """
    def __getattr__(name: str) -> Any:
        # (an identifier only: find_spec of "a.b" imports "a", or raises ModuleNotFoundError where hasattr wants False)
        if name.isidentifier() and not name.startswith("_") and find_spec(f"{package}.{name}") is not None:
            return import_module(f"{package}.{name}")  # (the import sets it as the package's attribute)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(names()) | {m.name for m in iter_modules(path) if not m.name.startswith("_")})

    return __getattr__, __dir__
