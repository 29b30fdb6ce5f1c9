"""A package's public names and modules as attributes, imported on first access (PEP 562): ``snnlab``,
``snnlab.kernels``, ``snnlab.core``, ``snnlab.training`` and ``snnlab.experiments`` use it, so ``import snnlab`` and
``from snnlab.training import ExperimentConfig`` start without torch while ``snnlab.LIF``, ``snnlab.core.neurons``
and ``snnlab.training.Trainer`` work as they did when each package imported its modules.

(Below every layer, so that every package may use it: it imports nothing from snnlab.)
"""
from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec
from pkgutil import iter_modules
from typing import Any, Callable, Mapping


def module_attributes(package: str, path: list[str], names: Callable[[], dict[str, Any]],
                      lazy: Mapping[str, str] | None = None
                      ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` (its ``__name__``, ``__path__`` and ``globals``).

    An attribute in ``lazy`` (public name -> the module that holds it) is that module's attribute of the same name,
    imported on first access and then kept in the package's globals as an ordinary import would keep it (its
    ``ImportError``, a missing dependency, propagates). Any other attribute that names one of the package's modules
    imports it; a module whose import fails (an optional extra missing) is an ``AttributeError`` naming the cause,
    which ``hasattr``, ``inspect.getmembers`` and ``help`` take as "no such attribute" (``import package.module``
    still raises the ``ImportError`` itself). ``dir()`` lists the globals, the lazy names and the public modules
    without importing any.

    Example:
        >>> import snnlab.kernels as k
        >>> "dispatch" in dir(k) and k.dispatch.__name__
        'snnlab.kernels.dispatch'
    """
    table = dict(lazy or {})

    def __getattr__(name: str) -> Any:
        if name in table:
            value = getattr(import_module(table[name]), name)
            names()[name] = value
            return value
        # (an identifier only: find_spec of "a.b" imports "a", or raises ModuleNotFoundError where hasattr wants False)
        if name.isidentifier() and not name.startswith("_") and find_spec(f"{package}.{name}") is not None:
            try:
                return import_module(f"{package}.{name}")  # (the import sets it as the package's attribute)
            except ImportError as exc:  # (snnlab.viz without holoviews, ...)
                raise AttributeError(f"module {package!r} has no attribute {name!r} ({exc})") from exc
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        modules = {m.name for m in iter_modules(path) if not m.name.startswith("_")}
        return sorted(set(names()) | set(table) | modules)

    return __getattr__, __dir__
