"""Exchange networks with other simulators and neuromorphic toolchains.

:mod:`snnlab.interop.nir`: :func:`~snnlab.interop.nir.to_nir` / :func:`~snnlab.interop.nir.from_nir` convert a
:class:`~snnlab.Sequential` to and from a NIR graph (the Neuromorphic Intermediate Representation, ``pip install
"snnlab[interop]"``). Importing this package does not import ``nir``.
"""
