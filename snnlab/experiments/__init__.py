"""Experiments: the run store (SQLite), sweeps over configurations and their trade-off tables.

The names are imported on first access (PEP 562): the run store's commands start without importing torch,
which only the sweeps need.
"""
from importlib import import_module as _import_module
from typing import TYPE_CHECKING

__all__ = ["RunStore", "StoreError", "default_store_path", "sweep", "expand_grid", "run_one", "SweepResult",
           "SweepInterrupted", "process_pool", "thread_pool", "RunFilesRemoval", "remove_run_files"]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports each name on first use
    from .run_files import RunFilesRemoval, remove_run_files
    from .store import RunStore, StoreError, default_store_path
    from .sweeps import SweepInterrupted, SweepResult, expand_grid, process_pool, run_one, sweep, thread_pool

#: the public names, imported on first access: each -> the module that holds it
_LAZY = {
    "RunFilesRemoval": "snnlab.experiments.run_files",
    "remove_run_files": "snnlab.experiments.run_files",
    "RunStore": "snnlab.experiments.store",
    "StoreError": "snnlab.experiments.store",
    "default_store_path": "snnlab.experiments.store",
    "SweepInterrupted": "snnlab.experiments.sweeps",
    "SweepResult": "snnlab.experiments.sweeps",
    "expand_grid": "snnlab.experiments.sweeps",
    "process_pool": "snnlab.experiments.sweeps",
    "run_one": "snnlab.experiments.sweeps",
    "sweep": "snnlab.experiments.sweeps",
    "thread_pool": "snnlab.experiments.sweeps",
}
#: the package's modules, imported on first access too (``import snnlab.experiments; snnlab.experiments.sweeps``
#: works as it did when the package imported them)
_MODULES = ("run_files", "store", "sweeps")


def __getattr__(name: str):
    """``snnlab.experiments.RunStore`` and the other public names: imported on first access (``from
    snnlab.experiments import sweep`` too), then kept in the module as an ordinary import would."""
    if name in _MODULES:
        return _import_module(f"snnlab.experiments.{name}")  # (the import sets it as this package's attribute)
    if name not in _LAZY:
        raise AttributeError(f"module 'snnlab.experiments' has no attribute {name!r}")
    value = getattr(_import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_MODULES))
