"""Optional dependencies: import them with a message that names the extra to install.

``pip install snnlab`` brings the core (neurons, delays, kernels' PyTorch paths, training, metrics);
plots, widgets, the dashboard, event data and clusters need extras (``pip install "snnlab[lab]"`` ...).

Example:
    >>> require("math", extra="lab", feature="snnlab.viz").__name__
    'math'
    >>> require("no_such_module_xyz", extra="lab", feature="snnlab.viz")
    Traceback (most recent call last):
    ...
    ImportError: snnlab.viz needs no_such_module_xyz, which is not installed: pip install "snnlab[lab]"
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

__all__ = ["require", "check_installed", "EXTRAS"]

#: what each extra of ``pyproject.toml`` is for (shown in messages)
EXTRAS = {
    "lab": "plots, widgets, notebooks and the dashboard",
    "data": "event datasets (SHD/SSC, N-MNIST, DVS Gesture), audio and the MNIST digits",
    "gpu": "the Triton kernels",
    "cluster": "sweeps on a dask cluster",
    "bigdata": "datashader rasters",
    "interop": "NIR export and import (snnlab.interop.nir)",
}


def _missing(module: str, extra: str, feature: str) -> ImportError:
    if extra not in EXTRAS:
        raise ValueError(f"require: unknown extra {extra!r}; one of {sorted(EXTRAS)}")
    return ImportError(f'{feature} needs {module}, which is not installed: pip install "snnlab[{extra}]"')


def check_installed(module: str, extra: str, feature: str) -> None:
    """Raise the :func:`require` error unless the top-level package ``module`` is installed, without importing it
    (for a process that only starts another one, such as the dashboard's server)."""
    if importlib.util.find_spec(module) is None:
        raise _missing(module, extra, feature)


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`ImportError` saying that ``feature`` needs ``snnlab[extra]``."""
    error = _missing(module, extra, feature)  # (checks the extra's name first)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module != exc.name and not module.startswith(exc.name + "."):
            raise  # the module exists but one of its own imports is broken: show that error as it is
        raise error from exc
