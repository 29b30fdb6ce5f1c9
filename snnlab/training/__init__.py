"""Training: one configuration class, model/data builders, a controllable trainer, events and checkpoints.

Example:
    >>> from snnlab.training import ExperimentConfig, Trainer
    >>> cfg = ExperimentConfig(dataset="digits", hidden=[64], epochs=2, max_batches_per_epoch=5)
    >>> trainer = Trainer(cfg, run_dir=None, progress=False)   # doctest: +SKIP
    >>> trainer.start(); trainer.wait()                        # doctest: +SKIP
"""
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, ExperimentConfig, UnknownKeyError, estimate_memory_bytes
from .events import EVENT_KINDS, Event, EventBus, EventQueue
from .model import build_data, build_model, model_from_checkpoint
from .presets import PRESETS, preset, preset_fields
from .trainer import STATES, History, RunStoreProtocol, Trainer, TrainingDiverged, seed_everything

__all__ = [
    "ExperimentConfig", "ConfigError", "UnknownKeyError", "estimate_memory_bytes",
    "build_model", "build_data", "model_from_checkpoint", "PRESETS", "preset", "preset_fields",
    "Trainer", "TrainingDiverged", "RunStoreProtocol", "History", "STATES", "seed_everything",
    "Event", "EventBus", "EventQueue", "EVENT_KINDS",
    "save_checkpoint", "load_checkpoint", "CheckpointError",
]
