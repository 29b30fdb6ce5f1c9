"""The delays' sigma schedule and the per-epoch evaluation: each epoch is evaluated with the sigma it trained with
(the one its record gives), and a run stopped anywhere in an epoch's end (in or after its evaluation, before or
after the schedule's step) resumes with the sigma of the epoch it trains, bit for bit as a run never stopped."""

import pytest
import torch

from snnlab.core.delays import DelayedLinear
from snnlab.training import ExperimentConfig, Trainer


def _cfg(**kw) -> ExperimentConfig:
    # 4 epochs, linear schedule over round(0.75 * 3) = 2 epochs: sigma 3.0, 1.75, 0.5, 0.5 (each epoch's differs from
    # the next one's until the end); dropout: the training draws random numbers that a resume must continue
    base = dict(hidden=[4], num_steps=6, batch_size=8, epochs=4, max_batches_per_epoch=2, eval_max_batches=1,
                delays=True, max_delay=6, lr_delays=0.5, dropout=0.2, device="cpu")
    base.update(kw)
    return ExperimentConfig(**base)


def _delay_layers(trainer) -> list[DelayedLinear]:
    return [m for m in trainer.model.modules() if isinstance(m, DelayedLinear)]


def _watch_sigma(trainer) -> tuple[list[float], list[float]]:
    """Lists filled as ``trainer`` runs: the first delay layer's sigma in each training step's forward, and at each
    ``evaluate()`` call."""
    layer = _delay_layers(trainer)[0]
    trained: list[float] = []
    evaluated: list[float] = []
    layer.register_forward_pre_hook(lambda m, args: trained.append(m.sigma) if m.training else None)
    real = trainer.evaluate

    def evaluate(*args, **kwargs):
        evaluated.append(layer.sigma)
        return real(*args, **kwargs)

    trainer.evaluate = evaluate
    return trained, evaluated


def _epochs(trainer) -> list[dict]:
    return [h for h in trainer.history if h["kind"] == "epoch"]


@pytest.fixture(scope="module")
def whole():
    """The reference: :func:`_cfg` trained without a stop, with the sigma of each step and evaluation."""
    trainer = Trainer(_cfg(), progress=False)
    trained, evaluated = _watch_sigma(trainer)
    trainer.run()
    return trainer, trained, evaluated


def test_each_epoch_is_evaluated_with_the_sigma_it_trained_with(whole):
    """The epoch's test accuracy was measured after the schedule's step, with the next epoch's sigma (a kernel the
    model never trained with: 1.75, 0.5, 0.5, 0.5 for epochs trained at 3.0, 1.75, 0.5, 0.5)."""
    trainer, trained, evaluated = whole
    epochs = _epochs(trainer)
    recorded = [h["sigma"] for h in epochs]
    assert recorded == pytest.approx([3.0, 1.75, 0.5, 0.5])
    per_epoch = [trained[i:i + 2] for i in range(0, len(trained), 2)]  # 2 steps an epoch
    assert [set(s) for s in per_epoch] == [{s} for s in recorded]  # the record's sigma is the one trained with
    assert evaluated[:4] == recorded  # each epoch's evaluation (then the rounded one) with its sigma
    assert all("test_accuracy" in h for h in epochs) and len(evaluated) == 5


def test_epochs_left_unevaluated_do_not_shift_the_sigma_of_the_others():
    trainer = Trainer(_cfg(eval_every=2), progress=False)
    _, evaluated = _watch_sigma(trainer)
    trainer.run()
    epochs = _epochs(trainer)
    assert ["test_accuracy" in h for h in epochs] == [False, True, False, True]
    assert evaluated[:2] == [epochs[1]["sigma"], epochs[3]["sigma"]] == pytest.approx([1.75, 0.5])


def _stop_in_the_second_epochs_end(trainer, where: str) -> None:
    """Make ``trainer`` stop (a ``KeyboardInterrupt``, as a second Ctrl-C, or :meth:`Trainer.stop`) at ``where`` in
    the end of its second epoch (epoch 1, trained at sigma 1.75; epoch 2 trains at 0.5)."""
    if where in ("in the evaluation", "after the evaluation"):
        real = trainer.evaluate
        calls = []

        def evaluate(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2 and where == "in the evaluation":
                raise KeyboardInterrupt
            out = real(*args, **kwargs)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return out

        trainer.evaluate = evaluate
    elif where in ("in the epoch's record", "stop control"):
        def on_epoch(event):
            if event.epoch == 1:
                if where == "stop control":
                    trainer.stop()
                else:
                    raise KeyboardInterrupt

        trainer.events.subscribe(on_epoch, kinds=["epoch"])
    else:  # before / after the schedule's step
        schedule = trainer.schedule
        real_step = schedule.step
        steps = []

        def step():
            steps.append(1)
            if len(steps) == 2 and where == "before the schedule's step":
                raise KeyboardInterrupt
            out = real_step()
            if len(steps) == 2:
                raise KeyboardInterrupt
            return out

        schedule.step = step


WHERE = ["in the evaluation", "after the evaluation", "in the epoch's record", "before the schedule's step",
         "after the schedule's step", "stop control"]


@pytest.mark.parametrize("then", ["resume from the checkpoint", "run the same trainer again"])
@pytest.mark.parametrize("where", WHERE)
def test_a_run_stopped_in_an_epochs_end_resumes_with_the_next_epochs_sigma(tmp_path, where, then, whole):
    ref, ref_trained, ref_evaluated = whole
    first = Trainer(_cfg(), run_dir=tmp_path, progress=False)
    _stop_in_the_second_epochs_end(first, where)
    if where == "stop control":
        assert first.run() is None
    else:
        with pytest.raises(KeyboardInterrupt):
            first.run()
    assert first.state == "stopped" and (first.epoch, first.step) == (2, 4)
    rest = Trainer.resume_from(tmp_path, progress=False) if then == "resume from the checkpoint" else first
    trained, evaluated = _watch_sigma(rest)
    result = rest.run()
    assert trained == ref_trained[4:] == [0.5] * 4  # epochs 2 and 3 train at their sigma, not at epoch 1's 1.75
    # an evaluation cut short (or its result lost before the epoch's record) is done again by the resume, with the
    # sigma its epoch trained with (1.75)
    redone = where in ("in the evaluation", "after the evaluation")
    assert evaluated == ref_evaluated[1 if redone else 2:]
    assert [(h["epoch"], h["batch"], h["loss"]) for h in rest.history if h["kind"] == "step"] == \
        [(h["epoch"], h["batch"], h["loss"]) for h in ref.history if h["kind"] == "step"]
    for (k, a), b in zip(ref.model.state_dict().items(), rest.model.state_dict().values(), strict=True):
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, k
    assert result == ref.result
    epochs, ref_epochs = _epochs(rest), _epochs(ref)
    assert [h["sigma"] for h in epochs] == [h["sigma"] for h in ref_epochs]
    assert [h.get("test_accuracy") for h in epochs] == [h["test_accuracy"] for h in ref_epochs]


@pytest.mark.parametrize("where", ["after the evaluation", "before the schedule's step"])
def test_a_resumed_trainer_holds_the_next_epochs_sigma_before_it_runs(tmp_path, where):
    """A checkpoint saved between an epoch's evaluation and the schedule's step holds the schedule one epoch behind
    its epoch count: the resumed trainer's delay layers already hold the sigma of the epoch it trains next (0.5),
    not the stopped epoch's (1.75), before run() (a user evaluating or inspecting the kernels sees the right one)."""
    first = Trainer(_cfg(), run_dir=tmp_path, progress=False)
    _stop_in_the_second_epochs_end(first, where)
    with pytest.raises(KeyboardInterrupt):
        first.run()
    rest = Trainer.resume_from(tmp_path, progress=False)
    assert rest.epoch == 2 and rest.schedule.epoch == 2
    assert [m.sigma for m in _delay_layers(rest)] == pytest.approx([0.5] * len(_delay_layers(rest)))
