"""snnlab: the interactive lab for spiking neural networks.

Time-major tensors ``[T, B, ...]`` throughout. Entry points::

    import snnlab as sl
    net = sl.Sequential(sl.DelayedLinear(140, 256, max_delay=25), sl.LIF(),
                        sl.DelayedLinear(256, 20, max_delay=25), sl.LI())
    with sl.Monitor(net) as mon:
        out = net(x)

The names below are imported on first use (PEP 562), so ``import snnlab`` and the ``snnlab`` command's store
commands start without importing torch; ``snnlab.LIF`` is ``snnlab.core.neurons.LIF``.
"""
import os as _os
from typing import TYPE_CHECKING

# Large CPU tensors on transparent huge pages: a fresh [T, B, N] buffer is otherwise paid for in
# page faults (several times slower to allocate and fill on the reference machine). PyTorch reads
# this variable at allocation time; set THP_MEM_ALLOC_ENABLE=0 before importing snnlab to opt out.
# (Every snnlab module imports this package first, so this runs before snnlab imports torch.)
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from snnlab._lazy import module_attributes as _module_attributes  # noqa: E402 (imports no torch)

__version__ = "0.1.0"  # the one place of the version: pyproject.toml reads this literal

__all__ = ["LIF", "LI", "ALIF", "RecurrentLIF", "DelayedLinear", "DelaySchedule", "SpikeMask", "TimeBatchNorm", "TimeDropout", "TimeDistributed", "Sequential", "Monitor", "surrogates",
           "activation_checkpoint", "seeded_stream_contexts", "carrying_state", "carry_suspended", "reset_states", "__version__"]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports each name on first use
    from snnlab.core import surrogates
    from snnlab.core.activation_checkpoint import activation_checkpoint, seeded_stream_contexts
    from snnlab.core.adaptive import ALIF
    from snnlab.core.delays import DelayedLinear, DelaySchedule
    from snnlab.core.dropout import TimeDropout
    from snnlab.core.masking import SpikeMask
    from snnlab.core.network import Monitor, Sequential, carry_suspended, carrying_state, reset_states
    from snnlab.core.normalization import TimeBatchNorm
    from snnlab.core.recurrent import RecurrentLIF
    from snnlab.core.time_distributed import TimeDistributed
    from snnlab.core.neurons import LI, LIF

#: the public names, imported on first access: each -> the module that holds it
_LAZY = {
    "activation_checkpoint": "snnlab.core.activation_checkpoint",
    "seeded_stream_contexts": "snnlab.core.activation_checkpoint",
    "ALIF": "snnlab.core.adaptive",
    "DelayedLinear": "snnlab.core.delays",
    "DelaySchedule": "snnlab.core.delays",
    "TimeDropout": "snnlab.core.dropout",
    "SpikeMask": "snnlab.core.masking",
    "Monitor": "snnlab.core.network",
    "Sequential": "snnlab.core.network",
    "carrying_state": "snnlab.core.network",
    "carry_suspended": "snnlab.core.network",
    "reset_states": "snnlab.core.network",
    "TimeBatchNorm": "snnlab.core.normalization",
    "RecurrentLIF": "snnlab.core.recurrent",
    "TimeDistributed": "snnlab.core.time_distributed",
    "LI": "snnlab.core.neurons",
    "LIF": "snnlab.core.neurons",
    "surrogates": "snnlab.core",  # (the module snnlab.core.surrogates)
}
# the subpackages and modules (``snnlab.core.neurons`` works after ``import snnlab``, as when ``import snnlab``
# imported the whole core) are imported on first access too
__getattr__, __dir__ = _module_attributes(__name__, __path__, lambda: globals(), _LAZY)
