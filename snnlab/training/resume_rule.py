"""The one rule of what a resumed run keeps from its checkpoint (:data:`FIXED_ON_RESUME`), in words too
(:func:`fixed_on_resume_text`), without torch: ``snnlab train --help`` states it.

:mod:`snnlab.training.resume` applies it (and re-exports these names): the Trainer, ``snnlab train --resume`` and
sweeps resuming their runs.

Example:
    >>> FIXED_ON_RESUME["the hidden-layer widths"]
    ('hidden',)
"""
from __future__ import annotations

from collections.abc import Callable

__all__ = ["FIXED_ON_RESUME", "fixed_on_resume_text", "WHERE_IT_RUNS", "INPUT_PART", "OPTIMIZER_PART", "SEED_PART"]

INPUT_PART, OPTIMIZER_PART = "the input and class counts", "the optimiser"  # (two parts of FIXED_ON_RESUME)
SEED_PART = "the random draws of the run: its data split, per-neuron time constants"  # (a part of FIXED_ON_RESUME)

#: What a resumed run keeps from its checkpoint: each part of the model's parameters (their names and shapes) or of
#: the optimiser's state that the configuration sets, with the fields that set it. A checkpoint's weights and
#: optimiser state fit only a model and optimiser built alike. Also the fields that would give the checkpoint's
#: parameters and buffers another meaning with the same names and shapes: ``max_delay`` (with delays: the learned
#: positions are clamped to ``0..max_delay-1`` and the sigma schedule starts at ``max_delay / 2``) and ``seed`` (it
#: draws the data split, which a resume must not mix into the test set, and fixed per-neuron time constants, which
#: the weights were trained with neuron by neuron; the training's random states come from the checkpoint anyway).
#: Every other field may change on a resume (epochs, down to the epochs already trained:
#: :func:`~snnlab.training.resume.check_resume_epochs`; learning rates and their schedules, tau_mem, threshold, the
#: neuron model and surrogate, dropout, mask_p, ...; the batch size at an epoch boundary): a fixed time constant or
#: threshold is taken from the configuration. ``mask_at_inference`` too: it decides only whether evaluations mask
#: spikes, and adds no parameter, buffer or optimiser state (the weights a run trained are the same whichever it holds).
FIXED_ON_RESUME: dict[str, tuple[str, ...]] = {
    INPUT_PART: ("dataset", "data_kwargs"),
    "the hidden-layer widths": ("hidden",),
    "delay synapses": ("delays",),
    "the delays' range, with delays: taps 0..max_delay-1": ("max_delay",),
    "recurrent synapses": ("recurrent",),
    "adaptive neurons: adaptation 0 or > 0": ("adaptation",),
    "per-neuron time constants: tau_mem_cv 0 or > 0, or recurrent": ("tau_mem_cv", "recurrent"),
    "a synaptic current: tau_syn None or set": ("tau_syn",),
    "learned time constants": ("learn_tau",),
    "learned thresholds": ("learn_threshold",),
    "batch norm": ("batch_norm",),
    "a spiking or a membrane output layer": ("readout",),
    OPTIMIZER_PART: ("optimizer",),
    SEED_PART: ("seed",),
}


#: Fields that say where a run finds its data and what it runs on, not what it trains: a finished run resumed with
#: nothing left to train may change them (:func:`~snnlab.training.resume.check_resume_epochs`), as building its
#: trainer needs them to fit the machine (the data folder moved, ``device="cuda"`` on a machine without a GPU).
WHERE_IT_RUNS: tuple[str, ...] = ("data_root", "device")


def fixed_on_resume_text(name: Callable[[str], str] = str) -> str:
    """What a resume cannot change (:data:`FIXED_ON_RESUME`) in words, each field written ``name(field)`` (the command
    line writes its flags), for error messages and help.

    Example:
        >>> fixed_on_resume_text().split("; ")[:2]
        ['dataset/data_kwargs (the input and class counts)', 'hidden (the hidden-layer widths)']
    """
    return "; ".join(f"{'/'.join(map(name, fields))} ({part})" for part, fields in FIXED_ON_RESUME.items())
