"""The names of the core's built-in choices, without torch: the readouts (:mod:`snnlab.core.readout`) and the delay
kernels' sigma schedules (:class:`snnlab.core.delays.DelaySchedule`).

:class:`snnlab.training.ExperimentConfig` takes its allowed values from here, so that it (and ``snnlab train
--help``) needs no torch.

Example:
    >>> READOUTS == MEMBRANE_READOUTS + SPIKE_READOUTS, SIGMA_SCHEDULES
    (True, ('linear', 'cosine', 'exponential'))
"""
from __future__ import annotations

#: Readouts of a non-spiking (``LI``) output layer's membrane, and of a spiking (``LIF``) output layer's spikes.
MEMBRANE_READOUTS = ("membrane_sum", "membrane_max", "softmax_sum")
SPIKE_READOUTS = ("spike_count", "first_spike")
READOUTS = MEMBRANE_READOUTS + SPIKE_READOUTS

#: How :class:`~snnlab.core.delays.DelaySchedule` shrinks the Gaussian width sigma of the delay kernels
#: (its ``KINDS``)
SIGMA_SCHEDULES = ("linear", "cosine", "exponential")
