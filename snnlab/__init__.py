"""snnlab: the interactive lab for spiking neural networks.

Time-major tensors ``[T, B, ...]`` throughout. Entry points::

    import snnlab as sl
    net = sl.Sequential(sl.DelayedLinear(140, 256, max_delay=25), sl.LIF(),
                        sl.DelayedLinear(256, 20, max_delay=25), sl.LI())
    with sl.Monitor(net) as mon:
        out = net(x)
"""
import os as _os

# Large CPU tensors on transparent huge pages: a fresh [T, B, N] buffer is otherwise paid for in
# page faults (several times slower to allocate and fill on the reference machine). PyTorch reads
# this variable at allocation time; set THP_MEM_ALLOC_ENABLE=0 before importing snnlab to opt out.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from snnlab.core import surrogates  # noqa: E402
from snnlab.core.activation_checkpoint import activation_checkpoint, seeded_stream_contexts  # noqa: E402
from snnlab.core.adaptive import ALIF  # noqa: E402
from snnlab.core.delays import DelayedLinear, DelaySchedule  # noqa: E402
from snnlab.core.dropout import TimeDropout  # noqa: E402
from snnlab.core.masking import SpikeMask  # noqa: E402
from snnlab.core.network import Monitor, Sequential  # noqa: E402
from snnlab.core.normalization import TimeBatchNorm  # noqa: E402
from snnlab.core.recurrent import RecurrentLIF  # noqa: E402
from snnlab.core.time_distributed import TimeDistributed  # noqa: E402
from snnlab.core.neurons import LI, LIF  # noqa: E402

__version__ = "0.1.0"  # the one place of the version: pyproject.toml reads this literal

__all__ = ["LIF", "LI", "ALIF", "RecurrentLIF", "DelayedLinear", "DelaySchedule", "SpikeMask", "TimeBatchNorm", "TimeDropout", "TimeDistributed", "Sequential", "Monitor", "surrogates",
           "activation_checkpoint", "seeded_stream_contexts", "__version__"]
