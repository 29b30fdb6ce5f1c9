"""Experiments: the run store (SQLite), sweeps over configurations and their trade-off tables.

The names are imported on first access (PEP 562): the run store's commands start without importing torch,
which only the sweeps need.
"""
from typing import TYPE_CHECKING

from snnlab._lazy import module_attributes as _module_attributes

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
# the package's modules (``snnlab.experiments.sweeps.process_pool`` works after ``import snnlab.experiments``, as
# when the package imported them) are imported on first access too
__getattr__, __dir__ = _module_attributes(__name__, __path__, lambda: globals(), _LAZY)
