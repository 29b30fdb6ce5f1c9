"""Experiments: the run store (SQLite), sweeps over configurations and their trade-off tables."""
from .store import RunStore, default_store_path

__all__ = ["RunStore", "default_store_path"]
