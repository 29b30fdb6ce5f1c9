"""Low-level time loops: the pure-PyTorch reference and the fused Triton kernels.

This layer imports nothing else from snnlab.
"""
