"""Review of the live view (s15): a watched run records what an unwatched one does also when its layers have random
generators of their own; live-curve followers stay in step with a source that trims both of its buffers.

Was: the session's snapshots (eval mode, between optimiser steps) put back the global random states only, so a
seeded layer drawing in eval mode (noise with ``noisy_eval``, masks with ``mask_at_inference``) had its training
stream moved by every snapshot: other losses and test accuracies than the same run without a session.
"""
from __future__ import annotations

import random
import warnings

import torch

import snnlab as sl
from snnlab.training import ExperimentConfig, Trainer
from snnlab.viz import LiveCurves
from snnlab.widgets import session as session_module
from snnlab.widgets.session import TrainingSession

NOISY = dict(dataset="digits", hidden=[8], num_steps=5, batch_size=16, epochs=2, max_batches_per_epoch=3,
             eval_max_batches=1, device="cpu", neuron="noisy")
CLOCK = ("time", "epoch_time_s")


class _SeededNoiseTrainer(Trainer):
    """A trainer whose noisy hidden layers draw from a generator of their own, in eval mode too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for m in self.model.modules():
            if isinstance(m, sl.LIF) and m.noise is not None:
                m.noisy_eval = True
                m._generator = torch.Generator().manual_seed(3)


def _metrics(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in CLOCK} for r in history]


def test_snapshots_leave_the_models_own_generators_as_they_were(monkeypatch):
    plain = _SeededNoiseTrainer(ExperimentConfig(**NOISY), progress=False)
    plain.run()
    monkeypatch.setattr(session_module, "Trainer", _SeededNoiseTrainer)
    s = TrainingSession(NOISY, probe_every=1)  # a snapshot before training and after every step
    s.start()
    assert s.wait(120) and s.state == "finished"
    assert any(m._generator is not None for m in s.trainer.model.modules() if isinstance(m, sl.LIF))
    assert _metrics(s.trainer.history) == _metrics(plain.history)
    assert s.snapshot is not None and s.snapshot["step"] == s.trainer.step


def _follow_at_random(seed: int) -> None:
    """A source sent random step / test rows (both buffers trimmed) and a page following it at random times."""
    r = random.Random(seed)
    lengths = dict(buffer_length=r.randint(1, 10), eval_length=r.randint(1, 6))
    src, page, step = LiveCurves(**lengths), LiveCurves(**lengths), 0
    for _ in range(40):
        if r.random() < 0.6:
            items = []
            for _ in range(r.randint(1, 6)):
                step += 1
                m = {k: r.random() for k, p in (("loss", 0.7), ("test_loss", 0.3), ("accuracy", 0.2))
                     if r.random() < p} or {"loss": 0.1}
                items.append((step, m))
            src.send_many(items)
        else:
            page.follow(src)
            assert page.buffer.data.reset_index(drop=True).equals(src.buffer.data.reset_index(drop=True)), seed


def test_a_follower_shows_what_its_source_holds_whatever_the_trimming():
    with warnings.catch_warnings():  # (curves first drawn with other metrics: not this test's subject)
        warnings.simplefilter("ignore")
        for seed in range(20):
            _follow_at_random(seed)
