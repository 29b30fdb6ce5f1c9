"""Background runs and the caller's context; evaluations of a model that a run trains in another thread.

1. ``Trainer.start()``'s thread runs in a copy of the starting thread's context (``contextvars``): in Jupyter
   (ipykernel 7 keeps the current cell in a ContextVar) its output and log records land under the cell that
   started the run, not the one running when they are written.
2. An evaluation from another thread sets the shared ``model.training`` flag: the run puts its model in train mode
   before each step (so such an evaluation affects at most the steps it overlaps), and ``eval_mode`` warns while
   a run trains the model in another thread (not in the run's own thread, not while it is paused).
"""
from __future__ import annotations

import contextvars
import copy
import logging
import threading
import warnings

import pytest
import torch

from snnlab.metrics import evaluate
from snnlab.metrics._common import eval_mode, warn_concurrent_training
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.threads import ContextThread, start_thread, training_model, training_thread

CELL = contextvars.ContextVar("cell", default=None)
WAIT = 60  # seconds: only a safety net against a hang (never reached when the code works)


def tiny(**kw) -> ExperimentConfig:
    base = dict(hidden=[16], num_steps=6, batch_size=16, epochs=1, max_batches_per_epoch=3, eval_max_batches=1,
                device="cpu", seed=0)
    base.update(kw)
    return ExperimentConfig(**base)


def concurrency_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "Trainer is training right now" in str(w.message)]


# ------------------------------------------------------------------------------------------------ 1. the context
def test_start_runs_callbacks_and_log_records_in_the_starting_threads_context():
    token = CELL.set("cell A")
    seen, logged = [], []

    class Record(logging.Handler):  # what ipykernel's stream does: read the current cell when the record is written
        def emit(self, record):
            logged.append((record.getMessage().split(" ")[0], CELL.get()))

    def callback(event):
        if event.kind == "step":
            seen.append(CELL.get())
            if event.step == 2:
                raise ValueError("bug in my callback")

    handler = Record(level=logging.ERROR)
    logger = logging.getLogger("snnlab.training")
    logger.addHandler(handler)
    try:
        tr = Trainer(tiny(), callbacks=[callback], progress=False)
        CELL.set("cell B")  # (the start's context is taken when start() is called, not when the Trainer is built)
        CELL.set("cell A")
        tr.start()
        CELL.set("cell B")  # another cell runs while the run trains: the run's thread still writes under cell A
        assert tr.wait(WAIT) and tr.state == "finished"
    finally:
        logger.removeHandler(handler)
        CELL.reset(token)
    assert seen == ["cell A"] * 3
    assert ("event", "cell A") in logged  # "event subscriber ... failed" with its traceback


def test_a_failed_background_run_is_logged_under_the_starting_context():
    token = CELL.set("cell A")
    logged = []

    class Record(logging.Handler):
        def emit(self, record):
            logged.append((record.getMessage()[:12], CELL.get()))

    def broken_epoch(epoch):
        raise RuntimeError("broken epoch")

    handler = Record(level=logging.ERROR)
    logger = logging.getLogger("snnlab.training")
    logger.addHandler(handler)
    try:
        tr = Trainer(tiny(), progress=False)
        tr._train_epoch = broken_epoch  # (the run fails in its thread: "training run ... failed" is logged)
        tr.start()
        CELL.set("cell B")
        tr.wait(WAIT)
    finally:
        logger.removeHandler(handler)
        CELL.reset(token)
    assert tr.state == "failed"
    assert ("training run", "cell A") in logged


def test_context_thread_copies_the_context_at_start_and_keeps_its_own_changes():
    var = contextvars.ContextVar("var", default="unset")
    token = var.set("built")
    got = []

    def body():
        got.append(var.get())
        var.set("changed in the thread")
        got.append(var.get())

    t = ContextThread(target=body, name="t")
    var.set("started")
    t.start()
    t.join(WAIT)
    assert got == ["started", "changed in the thread"] and var.get() == "started"
    var.reset(token)
    t2 = start_thread(lambda x, y=0: got.append((x, y, var.get())), name="snnlab-x", daemon=False, args=(1,),
                      kwargs={"y": 2})
    t2.join(WAIT)
    assert got[-1] == (1, 2, "unset") and t2.name == "snnlab-x" and not t2.daemon
    with pytest.raises(TypeError, match="start_thread: target must be callable"):
        start_thread(None, name="x")


# ------------------------------------------------------------------------------- 2. evaluations from another thread
def test_a_foreign_evaluation_puts_at_most_the_steps_it_overlaps_in_eval_mode():
    """Another thread enters eval_mode while the run evaluates (flag False, which the evaluation restores at its
    end) and leaves it during the next epoch's first step: only that step may see eval mode (the old code trained
    the rest of that epoch in eval mode)."""
    tr = Trainer(tiny(epochs=2, max_batches_per_epoch=5), progress=False)
    leaf = list(tr.model.modules())[-1]
    run_evaluating, user_entered, stepped, user_left = (threading.Event() for _ in range(4))
    modes: list[bool] = []  # the flag each training step's last layer saw
    state = {"entered": False, "overlapped": 0}

    def pre(module, args):
        if not torch.is_grad_enabled():  # the run's end-of-epoch evaluation (the user's evaluation is elsewhere)
            if not run_evaluating.is_set():
                run_evaluating.set()
                assert user_entered.wait(WAIT)
            return
        modes.append(module.training)
        if state["entered"] and not user_left.is_set():  # the step that overlaps the user's evaluation
            state["overlapped"] += 1
            stepped.set()
            assert user_left.wait(WAIT)

    leaf.register_forward_pre_hook(pre)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr.start()
        assert run_evaluating.wait(WAIT)
        with eval_mode(tr.model):  # the flag is False here (the run evaluates): the old code restored False
            state["entered"] = True
            user_entered.set()
            assert stepped.wait(WAIT)
        user_left.set()
        assert tr.wait(WAIT) and tr.state == "finished"
    assert state["overlapped"] == 1 and len(modes) == 10
    assert modes.count(False) <= state["overlapped"], modes
    assert modes[:5] == [True] * 5 and modes[6:] == [True] * 4
    assert len(concurrency_warnings(caught)) == 1  # the user's evaluation, from this thread: warned once
    assert tr.model.training


def test_the_warning_comes_from_another_thread_only_while_the_run_trains():
    tr = Trainer(tiny(epochs=1, max_batches_per_epoch=4), progress=False)
    at_step, go_on = threading.Event(), threading.Event()
    in_thread: list[list[str]] = []

    def callback(event):
        if event.kind == "step" and event.step == 1:
            with warnings.catch_warnings(record=True) as caught:  # (in the training thread: its own evaluations)
                warnings.simplefilter("always")
                evaluate(tr.model, tr.test_loader, max_batches=1)
                tr.evaluate(max_batches=1)
            in_thread.append(concurrency_warnings(caught))
            at_step.set()
            assert go_on.wait(WAIT)

    tr.events.subscribe(callback)
    with warnings.catch_warnings(record=True) as before:
        warnings.simplefilter("always")
        evaluate(tr.model, tr.test_loader, max_batches=1)  # no run trains it yet
    assert concurrency_warnings(before) == []
    tr.start()
    try:
        assert at_step.wait(WAIT)
        assert training_thread(tr.model) is tr._thread and training_thread(tr.model[0]) is tr._thread
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            evaluate(tr.model, tr.test_loader, max_batches=2)  # from this thread while the run trains: warned, once
            evaluate(copy.deepcopy(tr.model), tr.test_loader, max_batches=1)  # a copy: not the run's model
        messages = concurrency_warnings(caught)
        assert len(messages) == 1 and tr._thread.name in messages[0]
        assert "pause" in messages[0] and "copy.deepcopy" in messages[0] and "eval mode" in messages[0]
        assert [w.filename for w in caught if "Trainer is training" in str(w.message)] == [__file__]
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            assert warn_concurrent_training(torch.nn.Sequential(tr.model))  # a model containing the trained one
    finally:
        go_on.set()
    assert tr.wait(WAIT) and tr.state == "finished"
    assert in_thread == [[]]  # not in the training thread (its callbacks, Trainer.evaluate)
    assert training_thread(tr.model) is None and not warn_concurrent_training(tr.model)  # the run has ended


def test_no_warning_while_the_run_is_paused():
    tr = Trainer(tiny(epochs=1, max_batches_per_epoch=4), progress=False)
    paused_at = threading.Event()

    def callback(event):
        if event.kind == "step" and event.step == 1:
            tr.pause()
            paused_at.set()

    tr.events.subscribe(callback)
    tr.start()
    try:
        assert paused_at.wait(WAIT) and tr.pause(wait=True, timeout=WAIT)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            evaluate(tr.model, tr.test_loader, max_batches=1)
        assert concurrency_warnings(caught) == []
        assert training_thread(tr.model) is None
    finally:
        tr.resume()
    assert tr.wait(WAIT) and tr.state == "finished"


def test_training_model_marks_nest_and_end():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
    assert training_thread(net) is None
    with training_model(net):
        assert training_thread(net[1]) is threading.current_thread()
        assert not warn_concurrent_training(net)  # the marking thread itself
        seen = []
        t = threading.Thread(target=lambda: seen.append(training_thread(net)))
        t.start(); t.join(WAIT)
        assert seen == [threading.current_thread()]
    assert training_thread(net) is None
    with training_model(net, active=lambda: False):
        assert training_thread(net) is None


def test_an_earlier_mark_whose_block_has_ended_is_not_put_back_nor_keeps_the_model_alive():
    """(Attack review) Thread A marks a model, thread B marks it while A's block is open, A's block ends, then B's:
    B put A's mark back because A's thread was still alive, so the model read as trained by A for good (and A's
    ``active``, which holds the model, kept it alive: the registry's weak keys never let go)."""
    import gc
    import weakref

    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    ref = weakref.ref(model)
    inside, release = threading.Event(), threading.Event()

    def other():
        with training_model(model):
            inside.set()
            release.wait(WAIT)

    with training_model(model, active=lambda: model.training):  # (an `active` that holds the model, as the Trainer's)
        thread = threading.Thread(target=other)
        thread.start()
        assert inside.wait(WAIT)
    release.set()
    thread.join(WAIT)
    assert training_thread(model) is None  # neither block is open
    del model
    gc.collect()
    assert ref() is None


def test_a_finished_context_thread_keeps_nothing_of_the_starting_context():
    """(Attack review) A ContextThread kept its copied context after its run (a trainer's last thread lives on in
    ``trainer._thread``): what the starting cell's context variables held stayed alive."""
    import gc
    import weakref

    class Big:
        pass

    big = Big()
    ref = weakref.ref(big)
    token = CELL.set(big)
    try:
        thread = start_thread(lambda: None, name="snnlab-test")  # (kept, as a trainer keeps its last thread)
        thread.join(WAIT)
    finally:
        CELL.reset(token)
    del big
    gc.collect()
    assert ref() is None and not thread.is_alive()
