"""Interrupted runs resume exactly: Ctrl-C (one, two, inside the optimiser step), KeyboardInterrupt inside a step or
an evaluation, run() again after a stop, wait() after an interrupted wait; each resumed run is compared bit for bit
with one uninterrupted run of the same configuration."""

import pytest
import torch

import snnlab as sl
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.lr_schedule import lr_factor


def _steps(trainer):
    return [h for h in trainer.history if h["kind"] == "step"]


def _interrupt_cfg():
    return ExperimentConfig(hidden=[10], epochs=3, max_batches_per_epoch=3, num_steps=8, batch_size=16,
                            batch_norm=True, dropout=0.3, lr_schedule="one_cycle")


@pytest.fixture(scope="module")
def uninterrupted():
    """The reference: :func:`_interrupt_cfg` trained without interruption (the same whatever ran before: the
    trainer seeds everything)."""
    trainer = Trainer(_interrupt_cfg(), progress=False)
    trainer.run()
    return trainer


def _assert_same_run(a, b):
    assert [(h["epoch"], h["batch"], h["loss"]) for h in _steps(a)] == [(h["epoch"], h["batch"], h["loss"])
                                                                        for h in _steps(b)]
    for (k, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), k


@pytest.mark.parametrize("at_step", [2, 3])  # inside an epoch, and at the first batch of the next one
def test_a_keyboard_interrupt_inside_a_step_rolls_back_to_its_start(tmp_path, at_step, uninterrupted):
    whole = uninterrupted
    first = Trainer(_interrupt_cfg(), run_dir=tmp_path, progress=False)
    calls = []

    def interrupt(module, inputs, output):  # in the batch norm's forward: its statistics are already updated
        calls.append(1)
        if first.step == at_step and module.training:
            raise KeyboardInterrupt

    first.model[1].register_forward_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert first.state == "stopped"
    rest = Trainer.resume_from(tmp_path, progress=False)
    rest.run()
    _assert_same_run(whole, rest)


def test_a_keyboard_interrupt_in_the_epochs_evaluation_resumes_with_the_next_epoch(tmp_path, monkeypatch, uninterrupted):
    whole = uninterrupted
    first = Trainer(_interrupt_cfg(), run_dir=tmp_path, progress=False)

    def interrupted_evaluation(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(first, "evaluate", interrupted_evaluation)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    rest = Trainer.resume_from(tmp_path, progress=False)
    assert (rest.epoch, rest.step) == (1, 3)
    rest.run()
    _assert_same_run(whole, rest)  # no epoch skipped, none trained twice
    epochs = [h for h in rest.history if h["kind"] == "epoch"]
    assert [h["epoch"] for h in epochs] == [0, 1, 2]
    # the evaluation cut short is done by the resume, with the results of the run never interrupted
    assert [h["test_accuracy"] for h in epochs] == [h["test_accuracy"] for h in whole.history if h["kind"] == "epoch"]


def _sigint(times: int) -> None:
    import os
    import signal

    for _ in range(times):
        os.kill(os.getpid(), signal.SIGINT)


def _interrupted_then_resumed(tmp_path, where: str, times: int, at_step: int):
    """Send ``times`` SIGINTs from inside step ``at_step + 1`` (its forward pass, or its optimiser step), then
    resume from the checkpoint. Returns (the interrupted trainer, the resumed one)."""
    first = Trainer(_interrupt_cfg(), run_dir=tmp_path, progress=False)
    sent = []

    def fire(*args):
        if first.step == at_step and not sent and torch.is_grad_enabled():
            sent.append(1)
            _sigint(times)

    if where == "forward":
        first.model[1].register_forward_hook(fire)
    else:
        first.optimizer.register_step_post_hook(fire)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    assert sent and first.state == "stopped"
    rest = Trainer.resume_from(tmp_path, progress=False)
    rest.run()
    return first, rest


@pytest.mark.parametrize("where,times,steps_done", [
    ("forward", 1, 5),    # the first Ctrl-C: the step in progress finishes, the run stops before the next
    ("forward", 2, 4),    # a second one: at once, the step in progress rolled back
    ("optimizer", 2, 5),  # a second one inside the optimiser step: raised once the step is recorded
])
def test_ctrl_c_stops_the_run_and_the_checkpoint_resumes_exactly(tmp_path, where, times, steps_done, uninterrupted):
    import signal

    whole = uninterrupted
    first, rest = _interrupted_then_resumed(tmp_path, where, times, at_step=4)
    assert first.step == steps_done
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    _assert_same_run(whole, rest)


def _resumed_after_an_interrupted_evaluation(tmp_path, monkeypatch, cfg, when) -> dict:
    """Train ``cfg`` with a KeyboardInterrupt in the first evaluation for which ``when(trainer)`` holds, then
    resume from the checkpoint and return the resumed run's result."""
    first = Trainer(cfg, run_dir=tmp_path, progress=False)
    real_evaluate = first.evaluate

    def evaluate(*args, **kwargs):
        if when(first):
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(first, "evaluate", evaluate)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    return Trainer.resume_from(tmp_path, progress=False).run()


def test_ctrl_c_in_the_last_evaluation_leaves_the_final_result_to_the_resume(tmp_path, monkeypatch, uninterrupted):
    expected = uninterrupted.result
    result = _resumed_after_an_interrupted_evaluation(tmp_path, monkeypatch, _interrupt_cfg(),
                                                      lambda t: t.epoch == 3)  # the last epoch's evaluation
    assert result["final"] == expected["final"]  # not epoch 2's evaluation


def test_run_again_after_a_stop_continues_exactly(uninterrupted):
    whole = uninterrupted
    t = Trainer(_interrupt_cfg(), progress=False,
                callbacks=[lambda ev: t.stop() if ev.kind == "step" and ev.step in (2, 4) else None])
    assert t.run() is None and t.step == 2
    assert t.run() is None and t.step == 4  # the same trainer, as a notebook would run it again
    t.run()
    _assert_same_run(whole, t)


def test_ctrl_c_is_left_alone_with_loader_worker_processes():
    import signal

    t = Trainer(_interrupt_cfg().copy(data_kwargs={"num_workers": 1}, epochs=1, max_batches_per_epoch=1),
                progress=False)
    assert t.train_loader.num_workers == 1
    seen = []
    t.events.subscribe(lambda ev: seen.append(signal.getsignal(signal.SIGINT)), kinds=["step"])
    t.run()
    assert seen == [signal.default_int_handler]  # Ctrl-C reaches the workers too: plain KeyboardInterrupt


def test_a_finished_run_is_returned_even_when_ctrl_c_came_during_its_last_evaluation(monkeypatch):
    t = Trainer(_interrupt_cfg().copy(epochs=1), progress=False)
    real_evaluate = t.evaluate

    def evaluate(*args, **kwargs):
        _sigint(1)  # the first Ctrl-C asks for a stop, but no training step is left
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(t, "evaluate", evaluate)
    result = t.run()
    assert t.state == "finished" and result is t.result and not t._stop_req


def test_a_resume_takes_the_configured_rate_and_schedule(tmp_path):
    cfg = ExperimentConfig(hidden=[8], epochs=1, max_batches_per_epoch=2, num_steps=5, lr=5e-3,
                           lr_schedule="one_cycle")
    Trainer(cfg, run_dir=tmp_path, progress=False).run()
    longer = Trainer.resume_from(tmp_path, cfg.copy(epochs=2, lr=1e-4, lr_schedule="constant"), progress=False)
    longer.run()
    rates = [h["lr"] for h in _steps(longer)]
    assert rates[:2] == pytest.approx([5e-3 * lr_factor("one_cycle", k, 2) for k in range(2)])
    assert rates[2:] == [1e-4, 1e-4]  # not the 2e-8 where the one-cycle schedule ended
    assert longer.optimizer.param_groups[0]["betas"] == (0.9, 0.999)



def test_a_step_finished_under_a_deferred_ctrl_c_reaches_the_events_and_the_store(tmp_path):
    from snnlab.experiments import RunStore

    store = RunStore(tmp_path / "s.sqlite")
    events = []
    t = Trainer(_interrupt_cfg(), progress=False, store=store, log_every=1,
                callbacks=[lambda ev: events.append(ev.step) if ev.kind == "step" else None])
    t.optimizer.register_step_post_hook(lambda *a: _sigint(2) if t.step == 3 else None)
    with pytest.raises(KeyboardInterrupt):
        t.run()
    assert t.step == 4 and events == [1, 2, 3, 4]
    assert [h["step"] for h in _steps(t)] == [1, 2, 3, 4]
    logged = store.metrics(t.run_id)
    assert sorted(set(logged.loc[logged["name"] == "loss", "step"])) == [1, 2, 3, 4]


def test_ctrl_c_in_the_rounded_evaluation_leaves_it_to_the_resume(tmp_path, monkeypatch):
    cfg = _interrupt_cfg().copy(epochs=2, delays=True, max_delay=4)
    expected = Trainer(cfg, progress=False).run()
    result = _resumed_after_an_interrupted_evaluation(
        tmp_path, monkeypatch, cfg, lambda t: all(m.rounded for m in t.model if isinstance(m, sl.DelayedLinear)))
    assert result["final"] == expected["final"] and result["rounded"] == expected["rounded"]
    assert result["rounded"] != result["final"]  # the rounded model was evaluated, not the final numbers copied


def test_wait_after_a_wait_cut_short_by_ctrl_c_still_waits_for_the_run():
    """Ctrl-C in Thread.join marks a still-running thread as ended (CPython 3.11): wait() goes by the state."""
    t = Trainer(_interrupt_cfg().copy(epochs=30), progress=False,  # Ctrl-C reaches the main thread, in wait()
                callbacks=[lambda ev: _sigint(1) if ev.kind == "step" and ev.step == 5 else None])
    t.start()
    with pytest.raises(KeyboardInterrupt):
        t.wait(60)
    assert t.state == "running"  # the background run goes on
    assert t.wait(120) and t.state == "finished" and t.step == 90


class _AugmentedDigits(torch.utils.data.Dataset):
    """Digits with augmentation noise drawn from the dataset's own generator (a common pattern in user code)."""

    def __init__(self, base):
        self.base, self.g = base, torch.Generator().manual_seed(1234)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        x, y = self.base[i]
        return (x + 0.2 * torch.randn(x.shape, generator=self.g)).clamp(0, 1).expand(8, -1).clone(), y


def _augmented_loaders():
    from torch.utils.data import DataLoader

    from snnlab.data.collate import time_major_collate
    from snnlab.data.embedded import load_digits_dataset

    train, test = load_digits_dataset("digits", seed=0)
    direct = lambda b: (torch.stack([x for x, _ in b]).expand(8, -1, -1).clone(), torch.tensor([int(y) for _, y in b]))
    return (DataLoader(_AugmentedDigits(train), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0),
                       collate_fn=time_major_collate), DataLoader(test, batch_size=64, collate_fn=direct))


def test_a_resume_continues_the_random_stream_of_the_users_own_dataset(tmp_path):
    """Probe (reproducibility): the dataset's generator was not checkpointed, so a run stopped in its second epoch
    resumed with the augmentation noise of an earlier point and drifted (weights 1e-2 apart)."""
    from snnlab.data.loader_rng import loader_generators

    cfg = ExperimentConfig(dataset="digits", hidden=[16], num_steps=8, epochs=3, batch_size=32, max_batches_per_epoch=4,
                           eval_max_batches=2, device="cpu", seed=3)
    assert "dataset.g" in loader_generators(_augmented_loaders()[0])
    ref = Trainer(cfg, *(), train_loader=_augmented_loaders()[0], test_loader=_augmented_loaders()[1], progress=False)
    ref.run()
    first = Trainer(cfg, run_dir=tmp_path, train_loader=_augmented_loaders()[0], test_loader=_augmented_loaders()[1],
                    progress=False)
    first.events.subscribe(lambda e: e.step == 6 and first.stop(), kinds=["step"])
    first.run()
    assert first.state == "stopped" and first.step == 6
    train, test = _augmented_loaders()
    resumed = Trainer(cfg, resume=tmp_path, train_loader=train, test_loader=test, progress=False)
    resumed.run()
    assert [r["loss"] for r in resumed.history.steps()] == [r["loss"] for r in ref.history.steps()]
    assert all(torch.equal(a, b) for a, b in zip(ref.model.state_dict().values(), resumed.model.state_dict().values()))


def test_a_resume_with_other_epochs_warns_where_a_schedule_stretches(tmp_path):
    """Probe (reproducibility): a finished run extended by resuming with more epochs silently followed another rate
    (or sigma) curve than a run of that length from the start."""
    import warnings

    base = ExperimentConfig(hidden=[8], epochs=1, max_batches_per_epoch=2, num_steps=5, device="cpu")
    for name, cfg, words in (("cycle", base.copy(lr_schedule="one_cycle"), r"lr_schedule='one_cycle'"),
                             ("delays", base.copy(delays=True, max_delay=3), r"the delays' sigma schedule")):
        first = Trainer(cfg, run_dir=tmp_path / name, progress=False)
        first.events.subscribe(lambda e, t=first: t.stop(), kinds=["step"])  # stop before the delays are rounded
        first.run()
        with pytest.warns(UserWarning, match=rf"epochs=1 and resumes with epochs=3: {words}.*stretch") as rec:
            Trainer.resume_from(tmp_path / name, cfg.copy(epochs=3), progress=False)
        assert rec[0].filename == __file__  # the warning points at the caller's line, not into snnlab
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            Trainer.resume_from(tmp_path / name, cfg, progress=False)  # same length: no warning
    with pytest.warns(UserWarning, match=r"max_batches_per_epoch=2 and resumes with max_batches_per_epoch=5: "
                                         r"lr_schedule='cosine'"):  # (a schedule's steps: epochs x batches)
        Trainer.resume_from(tmp_path / "cycle", base.copy(lr_schedule="cosine", max_batches_per_epoch=5),
                            progress=False)
    Trainer(base, run_dir=tmp_path / "constant", progress=False).run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer.resume_from(tmp_path / "constant", base.copy(epochs=3), progress=False)  # constant rates, no delays
