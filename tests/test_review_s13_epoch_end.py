"""Review of the epoch end's state machine (Trainer._end_epoch): an interrupt() during an epoch's record, a stale
result left by a rounded evaluation cut short, and the sigma of a pending end resumed with other epochs."""

import warnings

import pytest

from snnlab.experiments.store import RunStore
from snnlab.training import Trainer

from epoch_end_cases import delays_cfg as _cfg, first_sigma as _sigma
from epoch_end_cases import history_without_times as _history, store_rows as _rows


def _cut_evaluation(trainer, when) -> None:
    """A KeyboardInterrupt at the second batch of the first evaluation where ``when(trainer)`` holds."""
    state = {"n": 0, "done": False}

    def hook(module, args):
        if not module.training and not state["done"] and when(trainer):
            state["n"] += 1
            if state["n"] == 2:
                state["done"] = True
                raise KeyboardInterrupt

    trainer.model.register_forward_pre_hook(hook)


def test_an_interrupt_during_the_epoch_record_waits_for_it(tmp_path):
    """A second Ctrl-C (the handler calls interrupt()) while the epoch's record writes to the store: the record and
    the checkpoint are finished first, so the resumed run's history and store rows are the uninterrupted run's (the
    epoch's evaluation record and its eval rows were lost)."""
    ref_store = RunStore(tmp_path / "ref.sqlite")
    ref = Trainer(_cfg(), store=ref_store, progress=False)
    ref.run()

    class Store(RunStore):
        trainer = None

        def log_metrics(self, run_id, step, epoch=None, metrics=None, kind="train"):
            super().log_metrics(run_id, step, epoch, metrics, kind)
            if self.trainer is not None and epoch == 1 and "train_loss" in (metrics or {}):
                trainer, self.trainer = self.trainer, None
                trainer.interrupt()  # as the trainer's (and the CLI's) handler of a second signal

    store = Store(tmp_path / "s.sqlite")
    first = Trainer(_cfg(), run_dir=tmp_path / "run", store=store, progress=False)
    store.trainer = first
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert first.state == "stopped" and first.epoch == 2
    rest = Trainer.resume_from(tmp_path / "run", store=store, progress=False)
    rest.run()
    assert _history(rest) == _history(ref)
    assert _rows(store, rest.run_id) == _rows(ref_store, ref.run_id)
    assert rest.result == ref.result


def test_a_pending_end_after_a_cut_rounded_evaluation_finishes_with_its_own_evaluation(tmp_path):
    """Cut in the rounded evaluation (result {"final": old, "rounded": None}), resumed with more epochs and cut in the
    last epoch's evaluation: the resume's result is that epoch's evaluation, not the first end's final one."""
    first = Trainer(_cfg(), run_dir=tmp_path, progress=False)
    _cut_evaluation(first, lambda t: t._delays_rounded)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        second = Trainer.resume_from(tmp_path, _cfg(epochs=4), progress=False)
    _cut_evaluation(second, lambda t: t.epoch == 4)
    with pytest.raises(KeyboardInterrupt):
        second.run()
    third = Trainer.resume_from(tmp_path, _cfg(epochs=4), progress=False)
    result = third.run()
    last = [r for r in third.history if r["kind"] == "evaluation" and r["epoch"] == 3][-1]
    assert last["phase"] == "epoch"  # (no second rounded evaluation: the model trained on rounded)
    assert result["final"] == {k: v for k, v in last.items() if k not in ("kind", "epoch", "step", "phase")}
    assert result["rounded"] == result["final"]


def test_a_pending_end_resumed_with_other_epochs_is_evaluated_with_its_own_sigma(tmp_path):
    first = Trainer(_cfg(), run_dir=tmp_path, progress=False)
    _cut_evaluation(first, lambda t: t.epoch == 2)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rest = Trainer.resume_from(tmp_path, _cfg(epochs=6), progress=False)
    seen = []
    rest.model.register_forward_pre_hook(lambda m, a: None if m.training else seen.append((rest.epoch, _sigma(rest))))
    rest.run()
    record = [r for r in rest.history if r["kind"] == "epoch" and r["epoch"] == 1][0]
    assert seen[0] == (2, record["sigma"])
