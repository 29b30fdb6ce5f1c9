"""The SNN core: neurons, synapses (delays), masking and networks, in plain PyTorch.

Its modules are imported on first access (``import snnlab; snnlab.core.neurons.LIF`` works without importing
``snnlab.core.neurons`` first, as it did when ``import snnlab`` imported the whole core).
"""
from importlib import import_module as _import_module
from importlib.util import find_spec as _find_spec


def __getattr__(name: str):
    """``snnlab.core.<module>``: the core module of that name, imported on first access."""
    if not name.startswith("_") and _find_spec(f"{__name__}.{name}") is not None:
        return _import_module(f"{__name__}.{name}")  # (the import sets it as this package's attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
