"""A KeyboardInterrupt inside an epoch's test evaluation (a second Ctrl-C; any Ctrl-C with loader worker processes or a
program's own SIGINT handler): the epoch's training is kept and counted, its end (evaluation, record) stays pending
in the checkpoint, and the resumed run (Trainer.resume_from, or run() again on the same trainer) does it first, so
the run's history, events, run-store rows, result and weights are those of the run never interrupted, bit for bit."""

import numpy as np
import pytest
import torch

from snnlab.experiments.store import RunStore
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from snnlab.training.interrupts import global_rng_state
from snnlab.data.loader_rng import loader_states

from epoch_end_cases import delays_cfg as _cfg, first_sigma as _sigma
from epoch_end_cases import history_without_times as _history, store_rows as _rows


def _watch(trainer, seen: list, cut_epoch: int | None = None) -> None:
    """Record ``(epochs counted, sigma)`` at each evaluation forward of ``trainer`` into ``seen``; with ``cut_epoch``,
    raise one KeyboardInterrupt at the second batch of that epoch's evaluation (after its first batch ran)."""
    state = {"n": 0, "cut": False}

    def hook(module, args):
        if module.training:
            return
        if cut_epoch is not None and not state["cut"] and trainer.epoch == cut_epoch + 1:
            state["n"] += 1
            if state["n"] == 2:
                state["cut"] = True
                raise KeyboardInterrupt
        seen.append((trainer.epoch, _sigma(trainer)))

    trainer.model.register_forward_pre_hook(hook)


def _events(out: list):
    return lambda ev: out.append((ev.kind, ev.epoch)) if ev.kind in ("epoch", "evaluation") else None


def _assert_same_run(ref, ref_store, run, store) -> None:
    assert _history(run) == _history(ref)  # every record: steps, epochs (their test_* metrics), evaluations
    assert _rows(store, run.run_id) == _rows(ref_store, ref.run_id)
    assert store.get_run(run.run_id)["summary"] == ref_store.get_run(ref.run_id)["summary"]
    assert run.result == ref.result and run.state == "finished"
    for (name, a), b in zip(ref.model.state_dict().items(), run.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def _reference(cfg: ExperimentConfig, folder) -> dict:
    store = RunStore(folder / "ref.sqlite")
    events: list = []
    trainer = Trainer(cfg, store=store, progress=False, callbacks=_events(events))
    seen: list = []
    _watch(trainer, seen)
    trainer.run()
    return {"trainer": trainer, "store": store, "events": events, "seen": seen}


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The reference: :func:`_cfg` trained without an interrupt."""
    return _reference(_cfg(), tmp_path_factory.mktemp("whole"))


def _interrupted_then_resumed(cfg: ExperimentConfig, tmp_path, cut_epoch: int, then: str):
    """Train ``cfg`` with a KeyboardInterrupt in epoch ``cut_epoch``'s evaluation, then finish it as ``then`` says;
    returns the trainer that finished, its store, the events of both parts and what the second part evaluated."""
    store = RunStore(tmp_path / "s.sqlite")
    events: list = []
    first = Trainer(cfg, run_dir=tmp_path / "run", store=store, progress=False, callbacks=_events(events))
    _watch(first, [], cut_epoch)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert first.state == "stopped" and first.epoch == cut_epoch + 1  # the epoch's training is kept
    assert not any(r["kind"] in ("epoch", "evaluation") and r["epoch"] == cut_epoch for r in first.history)
    pending = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["pending_epoch_end"]
    assert pending["epoch"] == cut_epoch and "train_loss" in pending["summary"]
    if then == "resume_from":
        rest = Trainer.resume_from(tmp_path / "run", store=store, progress=False, callbacks=_events(events))
    else:  # the same trainer again, as a notebook would run it
        rest = first
    seen: list = []
    _watch(rest, seen)
    rest.run()
    return rest, store, events, seen


@pytest.mark.parametrize("then", ["resume_from", "run_again"])
@pytest.mark.parametrize("cut_epoch", [1, 2], ids=["middle epoch", "last epoch"])
def test_an_evaluation_cut_short_is_done_by_the_resume(tmp_path, whole, cut_epoch, then):
    ref = whole["trainer"]
    rest, store, events, seen = _interrupted_then_resumed(_cfg(), tmp_path, cut_epoch, then)
    _assert_same_run(ref, whole["store"], rest, store)
    assert events == whole["events"]  # each epoch's record and evaluation reported once, in order
    # the cut epoch is evaluated anew with the sigma it trained with (then the next epochs, and the rounded model)
    assert seen == [s for s in whole["seen"] if s[0] >= cut_epoch + 1]
    assert [r["test_accuracy"] for r in rest.history if r["kind"] == "epoch"] == \
        [r["test_accuracy"] for r in ref.history if r["kind"] == "epoch"]


@pytest.mark.parametrize("cut_epoch", [1, 3], ids=["middle epoch", "last epoch"])
def test_an_evaluation_cut_short_with_eval_every(tmp_path, cut_epoch):
    cfg = _cfg(delays=False, hidden=[8], epochs=4, eval_every=2)
    ref = _reference(cfg, tmp_path)
    assert ["test_accuracy" in r for r in ref["trainer"].history if r["kind"] == "epoch"] == [False, True, False, True]
    rest, store, events, _ = _interrupted_then_resumed(cfg, tmp_path, cut_epoch, "resume_from")
    _assert_same_run(ref["trainer"], ref["store"], rest, store)
    assert events == ref["events"]


def test_evaluation_leaves_the_training_random_streams_alone():
    """An evaluation neither draws from the global random streams nor moves the test loader's generators (the rate
    encoder's), and one cut short leaves both as they were before it: the resume's evaluation starts from there."""
    tr = Trainer(_cfg(epochs=1), progress=False)
    torch.rand(3)  # (somewhere along the streams)
    before, gens = global_rng_state(cuda=False), loader_states(tr.test_loader)
    assert gens  # the rate encoder's generator is there to check
    tr.evaluate()
    tr.evaluate()
    after = global_rng_state(cuda=False)
    assert torch.equal(before["torch"], after["torch"]) and before["python"] == after["python"]
    assert all(torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b
               for a, b in zip(before["numpy"], after["numpy"], strict=True))
    assert all(torch.equal(gens[k], v) for k, v in loader_states(tr.test_loader).items())

    calls = {"n": 0}

    def cut(module, args):
        if not module.training:
            calls["n"] += 1
            if calls["n"] == 2:
                np.random.rand(5)  # a draw before the cut (one the evaluation's fork_rng leaves), which is undone
                raise KeyboardInterrupt

    tr.model.register_forward_pre_hook(cut)
    with pytest.raises(KeyboardInterrupt):
        tr._evaluate_epoch()
    cut_at = global_rng_state(cuda=False)
    assert torch.equal(cut_at["torch"], before["torch"]) and torch.equal(cut_at["numpy"][1], before["numpy"][1])
    assert cut_at["numpy"][2] == before["numpy"][2]
    assert all(torch.equal(gens[k], v) for k, v in loader_states(tr.test_loader).items())


def test_a_pending_epoch_end_of_another_epoch_is_refused(tmp_path):
    cfg = _cfg(delays=False, epochs=2)
    first = Trainer(cfg, run_dir=tmp_path, progress=False)
    _watch(first, [], cut_epoch=0)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    path = tmp_path / "checkpoint.pt"
    ckpt = load_checkpoint(path)
    ckpt["pending_epoch_end"] = {**ckpt["pending_epoch_end"], "epoch": 1}  # not the last counted epoch (0)
    save_checkpoint(path, ckpt)
    with pytest.raises(CheckpointError, match="pending_epoch_end"):
        Trainer.resume_from(tmp_path, progress=False)
