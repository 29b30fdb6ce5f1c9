"""Training: one configuration class, model/data builders, a controllable trainer, events and checkpoints.

The names below are imported on first access (PEP 562): the configuration (:class:`ExperimentConfig`, the presets)
imports no torch, so ``snnlab train --help`` starts without it; the trainer, the model builders and the checkpoints
import it.

Example:
    >>> from snnlab.training import ExperimentConfig, Trainer
    >>> cfg = ExperimentConfig(dataset="digits", hidden=[64], epochs=2, max_batches_per_epoch=5)
    >>> trainer = Trainer(cfg, run_dir=None, progress=False)   # doctest: +SKIP
    >>> trainer.start(); trainer.wait()                        # doctest: +SKIP
"""
from typing import TYPE_CHECKING

from snnlab._lazy import module_attributes as _module_attributes

__all__ = [
    "ExperimentConfig", "ConfigError", "UnknownKeyError", "estimate_memory_bytes",
    "build_model", "build_data", "model_from_checkpoint", "PRESETS", "preset", "preset_fields",
    "Trainer", "TrainingDiverged", "RunStoreProtocol", "History", "STATES", "seed_everything",
    "Event", "EventBus", "EventQueue", "EVENT_KINDS",
    "save_checkpoint", "load_checkpoint", "CheckpointError",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports each name on first use
    from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
    from .config import ConfigError, ExperimentConfig, UnknownKeyError, estimate_memory_bytes
    from .events import EVENT_KINDS, Event, EventBus, EventQueue
    from .model import build_data, build_model, model_from_checkpoint
    from .presets import PRESETS, preset, preset_fields
    from .trainer import STATES, History, RunStoreProtocol, Trainer, TrainingDiverged, seed_everything

#: the public names, imported on first access: each -> the module that holds it
_LAZY = {
    "CheckpointError": "snnlab.training.checkpoint",
    "load_checkpoint": "snnlab.training.checkpoint",
    "save_checkpoint": "snnlab.training.checkpoint",
    "ConfigError": "snnlab.training.config",
    "ExperimentConfig": "snnlab.training.config",
    "UnknownKeyError": "snnlab.training.config",
    "estimate_memory_bytes": "snnlab.training.config",
    "EVENT_KINDS": "snnlab.training.events",
    "Event": "snnlab.training.events",
    "EventBus": "snnlab.training.events",
    "EventQueue": "snnlab.training.events",
    "build_data": "snnlab.training.model",
    "build_model": "snnlab.training.model",
    "model_from_checkpoint": "snnlab.training.model",
    "PRESETS": "snnlab.training.presets",
    "preset": "snnlab.training.presets",
    "preset_fields": "snnlab.training.presets",
    "STATES": "snnlab.training.trainer",
    "History": "snnlab.training.trainer",
    "RunStoreProtocol": "snnlab.training.trainer",
    "Trainer": "snnlab.training.trainer",
    "TrainingDiverged": "snnlab.training.trainer",
    "seed_everything": "snnlab.training.trainer",
}
# the package's modules (``snnlab.training.trainer`` works after ``import snnlab.training``, as when the package
# imported them) are imported on first access too
__getattr__, __dir__ = _module_attributes(__name__, __path__, lambda: globals(), _LAZY)
