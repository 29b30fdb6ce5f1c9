"""Low-level time loops: the pure-PyTorch reference, the compiled CPU loop (C) and the fused Triton kernels.

This layer imports nothing else from snnlab (but ``snnlab._lazy``, the helper below every layer). Its modules are
imported on first access (``import snnlab; snnlab.kernels.dispatch`` works as it did when ``import snnlab`` imported
them through the core).
"""
from snnlab._lazy import module_attributes as _module_attributes

__getattr__, __dir__ = _module_attributes(__name__, __path__, lambda: globals())
