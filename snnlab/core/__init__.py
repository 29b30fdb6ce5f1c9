"""The SNN core: neurons, synapses (delays), masking and networks, in plain PyTorch.

Its modules are imported on first access (``import snnlab; snnlab.core.neurons.LIF`` works without importing
``snnlab.core.neurons`` first, as it did when ``import snnlab`` imported the whole core).
"""
from snnlab._lazy import module_attributes as _module_attributes

__getattr__, __dir__ = _module_attributes(__name__, __path__, lambda: globals())
