"""Low-level time loops: the pure-PyTorch reference, the compiled CPU loop (C) and the fused Triton kernels.

This layer imports nothing else from snnlab.
"""
