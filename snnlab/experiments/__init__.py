"""Experiments: the run store (SQLite), sweeps over configurations and their trade-off tables."""
from .run_files import RunFilesRemoval, remove_run_files
from .store import RunStore, StoreError, default_store_path
from .sweeps import SweepInterrupted, SweepResult, expand_grid, process_pool, run_one, sweep, thread_pool

__all__ = ["RunStore", "StoreError", "default_store_path", "sweep", "expand_grid", "run_one", "SweepResult",
           "SweepInterrupted", "process_pool", "thread_pool", "RunFilesRemoval", "remove_run_files"]
