"""Helpers shared by the tests of a run interrupted in an epoch's end (evaluation, record): a small delays run and
its history and store rows without the wall-clock fields, to compare with an uninterrupted run's."""
from __future__ import annotations

from snnlab.core.delays import DelayedLinear
from snnlab.experiments.store import RunStore
from snnlab.training import ExperimentConfig

TIMES = ("time", "epoch_time_s")  # wall-clock numbers: the only fields that differ between two runs


def delays_cfg(**kw) -> ExperimentConfig:
    """3 epochs of 2 steps; learned delays with a sigma schedule (3.0, 1.75, 0.5), dropout and rate-encoded inputs
    (the training draws random numbers that a resume must continue); evaluations of 2 batches."""
    base = dict(hidden=[4], num_steps=5, batch_size=8, epochs=3, max_batches_per_epoch=2, eval_max_batches=2,
                delays=True, max_delay=4, lr_delays=0.5, dropout=0.2, encoding="rate", device="cpu")
    base.update(kw)
    return ExperimentConfig(**base)


def first_sigma(trainer) -> float | None:
    """The first delay layer's sigma, or None without one."""
    layers = [m for m in trainer.model.modules() if isinstance(m, DelayedLinear)]
    return float(layers[0].sigma) if layers else None


def history_without_times(trainer) -> list[dict]:
    return [{k: v for k, v in rec.items() if k not in TIMES} for rec in trainer.history]


def store_rows(store: RunStore, run_id: str) -> list[tuple]:
    """A run's metric rows (step, epoch, kind, name, value) without the wall-clock ones."""
    m = store.metrics(run_id)
    m = m[~m["name"].isin(TIMES)]
    return [tuple(r) for r in m[["step", "epoch", "kind", "name", "value"]].itertuples(index=False)]
