"""snnlab: the interactive lab for spiking neural networks.

Time-major tensors ``[T, B, ...]`` throughout. Entry points::

    import snnlab as sl
    net = sl.Sequential(sl.DelayedLinear(140, 256, max_delay=25), sl.LIF(),
                        sl.DelayedLinear(256, 20, max_delay=25), sl.LI())
    with sl.Monitor(net) as mon:
        out = net(x)
"""
from snnlab.core import surrogates
from snnlab.core.delays import DelayedLinear, DelaySchedule
from snnlab.core.masking import SpikeMask
from snnlab.core.network import Monitor, Sequential
from snnlab.core.neurons import LI, LIF

__version__ = "0.1.0"

__all__ = ["LIF", "LI", "DelayedLinear", "DelaySchedule", "SpikeMask", "Sequential", "Monitor", "surrogates",
           "__version__"]
