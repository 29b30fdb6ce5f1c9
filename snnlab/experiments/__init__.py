"""Experiments: the run store (SQLite), sweeps over configurations and their trade-off tables."""
from .store import RunStore, default_store_path
from .sweeps import SweepResult, expand_grid, run_one, sweep

__all__ = ["RunStore", "default_store_path", "sweep", "expand_grid", "run_one", "SweepResult"]
