"""Trainer: learning, events, thread control, checkpoints/resume, NaN handling, seeding, run store."""
import math
import time
import warnings

import pytest
import torch

import snnlab as sl
from snnlab.training import (ExperimentConfig, RunStoreProtocol, Trainer, TrainingDiverged, load_checkpoint)


def tiny(**kw):
    base = dict(hidden=[32], num_steps=10, batch_size=32, epochs=1, max_batches_per_epoch=4, eval_max_batches=2,
                device="cpu")
    base.update(kw)
    return ExperimentConfig(**base)


class FakeStore:
    def __init__(self):
        self.calls = []

    def create_run(self, config, name=None):
        self.calls.append(("create_run", name))
        return "run-42"

    def log_metrics(self, run_id, step, epoch, metrics):
        self.calls.append(("log_metrics", run_id, step, epoch, dict(metrics)))

    def set_status(self, run_id, status, message=None):
        self.calls.append(("set_status", run_id, status, message))

    def set_checkpoint(self, run_id, path):
        self.calls.append(("set_checkpoint", run_id, path))


def test_short_training_on_digits_beats_chance(tmp_path):
    cfg = tiny(hidden=[64], num_steps=20, epochs=2, max_batches_per_epoch=12, eval_max_batches=4, lr=5e-3)
    tr = Trainer(cfg, run_dir=tmp_path, progress=False)
    result = tr.run()
    assert tr.state == "finished"
    assert result["final"]["accuracy"] > 0.3  # chance is 0.1
    assert result["rounded"] is None
    steps = tr.history_frame("step")
    assert len(steps) == 24 and steps.loss.iloc[-4:].mean() < steps.loss.iloc[:4].mean()
    epochs = tr.history_frame("epoch")
    assert list(epochs.epoch) == [0, 1] and "test_accuracy" in epochs
    assert (tmp_path / "checkpoint.pt").exists() and (tmp_path / "config.json").exists()
    assert ExperimentConfig.from_json((tmp_path / "config.json").read_text()).to_dict() == cfg.to_dict()


def test_events_arrive_in_order_and_store_is_called():
    store = FakeStore()
    assert isinstance(store, RunStoreProtocol)
    kinds = []
    bad_calls = []

    def broken(e):
        bad_calls.append(e.kind)
        raise RuntimeError("subscriber bug must not stop training")

    tr = Trainer(tiny(epochs=2, max_batches_per_epoch=3), store=store, callbacks=[lambda e: kinds.append(e), broken],
                 progress=False)
    tr.run()
    names = [e.kind for e in kinds]
    assert names == (["started"] + ["step"] * 3 + ["epoch", "evaluation"]) * 1 + ["step"] * 3 + \
        ["epoch", "evaluation", "finished"]
    assert len(bad_calls) == len(names)
    assert all(e.run_id == "run-42" for e in kinds)
    assert [e.step for e in kinds if e.kind == "step"] == [1, 2, 3, 4, 5, 6]
    step = next(e for e in kinds if e.kind == "step")
    assert {"loss", "accuracy", "spikes_per_sample"} <= set(step.data)
    ev = next(e for e in kinds if e.kind == "evaluation")
    assert {"accuracy", "loss", "spikes_per_sample", "n_samples"} <= set(ev.data)
    assert "result" in kinds[-1].data
    statuses = [c[2] for c in store.calls if c[0] == "set_status"]
    assert statuses[0] == "idle" and "running" in statuses and statuses[-1] == "finished"
    assert store.calls[0] == ("create_run", tr.cfg.label())
    logged = [c for c in store.calls if c[0] == "log_metrics"]
    assert any("loss" in c[4] for c in logged) and any("test_accuracy" in c[4] for c in logged)
    assert not any(c[0] == "set_checkpoint" for c in store.calls)  # no run_dir -> no checkpoints


def test_pause_resume_stop_from_another_thread(tmp_path):
    cfg = tiny(epochs=10_000, eval_every=10_000, max_batches_per_epoch=2)
    tr = Trainer(cfg, run_dir=tmp_path, progress=False)
    q = tr.events.queue(kinds=["paused", "resumed", "stopped"])
    tr.start()
    deadline = time.time() + 30
    while tr.step < 3 and time.time() < deadline:
        time.sleep(0.01)
    assert tr.pause(wait=True, timeout=30)
    assert tr.state == "paused"
    frozen = tr.step
    time.sleep(0.3)
    assert tr.step == frozen and tr.state == "paused"  # no steps while paused
    tr.resume()
    assert tr.state == "running"  # at once, not at the next step boundary
    while tr.step < frozen + 3 and time.time() < deadline:
        time.sleep(0.01)
    assert tr.step >= frozen + 3
    assert tr.stop(wait=True, timeout=30)
    assert tr.state == "stopped"
    assert [e.kind for e in q.drain()] == ["paused", "resumed", "stopped"]
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["step"] == tr.step and ck["partial_epoch"]
    with pytest.raises(RuntimeError, match="already running"):
        tr2 = Trainer(tiny(epochs=10_000, eval_every=10_000), progress=False).start()
        try:
            tr2.start()
        finally:
            tr2.stop(wait=True, timeout=30)


def test_stop_while_paused_and_wait():
    tr = Trainer(tiny(epochs=10_000, eval_every=10_000, max_batches_per_epoch=2), progress=False)
    tr.start()
    assert tr.pause(wait=True, timeout=30)
    assert tr.stop(wait=True, timeout=30) and tr.state == "stopped"
    assert tr.wait(0.1)


def test_resume_continues_from_the_saved_epoch_and_matches_uninterrupted(tmp_path):
    cfg = tiny(epochs=3, max_batches_per_epoch=3, neuron="noisy", mask_p=0.1, encoding="rate")
    full = Trainer(cfg, progress=False)
    full.run()
    full_losses = [r["loss"] for r in full.history.steps()]

    first = Trainer(cfg, run_dir=tmp_path, progress=False)
    first.events.subscribe(lambda e: first.stop(), kinds=["epoch"])
    first.run()
    assert first.state == "stopped" and first.epoch == 1 and first.step == 3

    resumed = Trainer.resume_from(tmp_path / "checkpoint.pt", progress=False)
    assert resumed.epoch == 1 and resumed.step == 3 and resumed.run_id == first.run_id
    started = []
    resumed.events.subscribe(started.append, kinds=["started", "step"])
    resumed.run()
    assert resumed.state == "finished" and resumed.epoch == 3
    assert started[0].data["start_epoch"] == 1 and started[1].epoch == 1 and started[1].step == 4
    losses = [r["loss"] for r in resumed.history.steps()]
    assert len(losses) == 9
    assert losses == pytest.approx(full_losses, rel=1e-5, abs=1e-6)

    # a finished run can be extended by resuming with more epochs
    more = Trainer(cfg.copy(epochs=4), resume=tmp_path, progress=False)
    more.run()
    assert more.epoch == 4 and len(more.history.steps()) == 12


@pytest.mark.parametrize("extra", [dict(neuron="noisy", mask_p=0.1, encoding="rate"),
                                   dict(delays=True, max_delay=4, lr_delays=0.5)])
def test_a_run_stopped_inside_an_epoch_resumes_with_the_next_batch(tmp_path, extra):
    cfg = tiny(epochs=2, max_batches_per_epoch=4, **extra)
    full = Trainer(cfg, progress=False)
    full.run()

    first = Trainer(cfg, run_dir=tmp_path, progress=False)
    first.events.subscribe(lambda e: first.stop() if e.step == 6 else None, kinds=["step"])
    first.run()
    assert first.state == "stopped" and first.epoch == 1 and first.step == 6
    ck = load_checkpoint(tmp_path)
    assert ck["partial_epoch"] and ck["epoch_progress"]["batches_done"] == 2

    resumed = Trainer.resume_from(tmp_path, progress=False)
    steps = []
    resumed.events.subscribe(steps.append, kinds=["step"])
    resumed.run()
    assert [(e.step, e.data["batch"]) for e in steps] == [(7, 2), (8, 3)]  # no batch is trained twice
    assert [r["loss"] for r in resumed.history.steps()] == [r["loss"] for r in full.history.steps()]
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    epochs = lambda t: [(r["epoch"], r["train_loss"], r["train_samples"]) for r in t.history if r["kind"] == "epoch"]
    assert epochs(resumed) == epochs(full)
    assert resumed.result["final"] == full.result["final"]


def test_another_batch_size_resumes_only_at_an_epoch_boundary_and_without_a_rate_schedule(tmp_path):
    """Probe: a resume inside an epoch with batch_size 8 instead of 2 skipped 6 batches of 8 (12 of 16 samples
    trained), and the one-cycle schedule, its length now counted in the new batches, jumped to its end."""
    from snnlab.training import CheckpointError

    cfg = tiny(epochs=2, max_batches_per_epoch=4, batch_size=4)
    first = Trainer(cfg, run_dir=tmp_path / "a", progress=False)
    first.events.subscribe(lambda e: first.stop() if e.step == 6 else None, kinds=["step"])
    first.run()
    with pytest.raises(CheckpointError, match=r"inside epoch 2 after 2 batches of 4: resume it with batch_size=4"):
        Trainer.resume_from(tmp_path / "a", cfg=cfg.copy(batch_size=8), progress=False)
    # at an epoch boundary it may change, unless a schedule counts the steps
    Trainer(cfg.copy(epochs=1), run_dir=tmp_path / "b", progress=False).run()
    resumed = Trainer.resume_from(tmp_path / "b", cfg=cfg.copy(batch_size=8), progress=False)
    resumed.run()
    assert resumed.epoch == 2 and resumed.history.steps()[-1]["step"] == 8
    cycled = cfg.copy(epochs=1, lr_schedule="one_cycle")
    Trainer(cycled, run_dir=tmp_path / "c", progress=False).run()
    with pytest.raises(CheckpointError, match="learning-rate schedule"):
        Trainer.resume_from(tmp_path / "c", cfg=cycled.copy(epochs=2, batch_size=8), progress=False)


def test_resuming_a_finished_delays_run_keeps_its_rounded_result(tmp_path):
    store = FakeStore()
    store.set_summary = lambda run_id, summary: store.calls.append(("set_summary", dict(summary)))
    cfg = tiny(epochs=2, max_batches_per_epoch=2, delays=True, max_delay=4)
    result = Trainer(cfg, run_dir=tmp_path, store=store, progress=False).run()
    again = Trainer.resume_from(tmp_path, store=store, progress=False)
    assert again.run() == result and result["rounded"] is not None
    summaries = [c[1] for c in store.calls if c[0] == "set_summary"]
    # the stored summary is not overwritten with other numbers: the resume writes the rounded result again (a store
    # that missed it gets it)
    assert summaries == [result["rounded"] | {"delays_rounded": True, "runtime": summaries[0]["runtime"]}] * 2
    assert again.evaluate() == result["rounded"]  # the model is the rounded one
    longer = Trainer.resume_from(tmp_path, cfg=cfg.copy(epochs=3), progress=False).run()
    assert longer["rounded"] == longer["final"]  # trained on with integer delays: final is the rounded model


def test_nan_loss_fails_clearly_and_keeps_last_good_checkpoint(tmp_path):
    tr = Trainer(tiny(epochs=3, max_batches_per_epoch=2), run_dir=tmp_path, progress=False)
    real = tr.loss_fn

    def poisoned(lg, y):
        loss = real(lg, y)
        return loss * float("nan") if tr.epoch >= 1 else loss

    tr.loss_fn = poisoned
    failed = []
    tr.events.subscribe(failed.append, kinds=["failed"])
    with pytest.raises(TrainingDiverged, match=r"loss became NaN at epoch 2/3 step 3; lower the learning rate"):
        tr.run()
    assert tr.state == "failed" and "lower the learning rate" in tr.error
    assert failed and "loss became NaN" in failed[0].data["message"]
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["epoch"] == 1 and ck["step"] == 2
    assert all(torch.isfinite(v).all() for v in ck["model"].values() if v.is_floating_point())
    resumed = Trainer.resume_from(tmp_path, progress=False)  # the good checkpoint is usable
    assert resumed.epoch == 1
    with pytest.raises(RuntimeError, match="already failed"):
        tr.run()


def test_errors_in_background_thread_fail_without_raising(tmp_path):
    import snnlab as sl

    x = torch.rand(5, 8, 3)
    y = torch.randint(0, 2, (8,))
    bad = x.clone()
    bad[2, 0, 1] = float("nan")
    loader = [(x, y), (bad, y)]
    net = sl.Sequential(torch.nn.Linear(3, 6), sl.LIF(), torch.nn.Linear(6, 2), sl.LI())
    tr = Trainer(tiny(epochs=2), model=net, train_loader=loader, test_loader=loader[:1], run_dir=tmp_path,
                 progress=False)
    events = []
    tr.events.subscribe(events.append)
    tr.start()
    assert tr.wait(60)
    assert tr.state == "failed" and tr.step == 1
    assert tr.error.startswith("ValueError: LIF: input contains NaN")  # the core layers reject NaN inputs
    assert [e.kind for e in events] == ["started", "step", "failed"]
    assert "Traceback" in events[-1].data["traceback"] and events[-1].data["error_type"] == "ValueError"
    assert not (tmp_path / "checkpoint.pt").exists()  # nothing good to keep yet, and nothing bad written

    # a NaN loss in the background thread: failed state with the divergence message, no exception
    tr = Trainer(tiny(epochs=2), model=sl.Sequential(torch.nn.Linear(3, 6), sl.LIF(), torch.nn.Linear(6, 2), sl.LI()),
                 train_loader=loader[:1], test_loader=loader[:1], progress=False)
    tr.loss_fn = lambda lg, y: torch.nn.functional.cross_entropy(lg, y) + (float("inf") if tr.step >= 1 else 0.0)
    tr.start()
    assert tr.wait(60) and tr.state == "failed"
    assert tr.error.startswith("loss became infinite at epoch 2/2 step 2; lower the learning rate")


def test_seeded_runs_reproduce():
    cfg = tiny(epochs=1, max_batches_per_epoch=3, neuron="noisy", mask_p=0.2, encoding="rate", seed=7)
    a = Trainer(cfg, progress=False)
    a.run()
    b = Trainer(cfg, progress=False)
    b.run()
    la = [r["loss"] for r in a.history.steps()]
    assert la == [r["loss"] for r in b.history.steps()]
    c = Trainer(cfg.copy(seed=8), progress=False)
    c.run()
    assert la != [r["loss"] for r in c.history.steps()]


def test_delays_rounded_after_training_and_both_evaluations_reported(tmp_path):
    cfg = tiny(epochs=2, max_batches_per_epoch=2, delays=True, max_delay=4, lr_delays=0.5)
    tr = Trainer(cfg, run_dir=tmp_path, progress=False)
    groups = {g["name"]: g["lr"] for g in tr.optimizer.param_groups}
    assert groups == {"weights": cfg.lr, "delays": 0.5}
    sigmas = []
    tr.events.subscribe(lambda e: sigmas.append(e.data["sigma"]), kinds=["epoch"])
    evals = []
    tr.events.subscribe(lambda e: evals.append(e.data["phase"]), kinds=["evaluation"])
    result = tr.run()
    assert sigmas[0] > sigmas[1]
    assert evals == ["epoch", "epoch", "rounded"]
    assert result["final"] is not None and result["rounded"] is not None
    assert all(m.rounded for m in tr.model.modules() if hasattr(m, "round_delays"))
    for m in tr.model.modules():
        if hasattr(m, "positions"):
            assert float(m.positions.min()) >= 0 and float(m.positions.max()) <= 3
    ck = load_checkpoint(tmp_path)
    assert ck["delays_rounded"] and ck["finished"]


def test_injected_model_and_loaders():
    import snnlab as sl

    x = torch.rand(5, 8, 3)
    y = torch.randint(0, 2, (8,))
    loader = [(x, y)] * 2
    net = sl.Sequential(torch.nn.Linear(3, 6), sl.LIF(), torch.nn.Linear(6, 2), sl.LI())
    tr = Trainer(tiny(), model=net, train_loader=loader, test_loader=loader, progress=False)
    tr.run()
    assert tr.model is net and tr.step == 2 and tr.state == "finished"
    assert not math.isnan(tr.result["final"]["loss"])


class _Exploit:
    """Unpickling this would run code (it calls open() on a marker file) unless weights_only refuses it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_checkpoint_refuses_pickled_code(tmp_path):
    from snnlab.training import CheckpointError, load_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(path)
    assert not marker.exists()  # nothing in the file was executed


def _as_separate_mask_layout(state, n_hidden):
    """A state dict renumbered as build_model laid models out when SpikeMask followed each hidden LIF."""
    def old(i):
        return 3 * (i // 2) + i % 2 if i < 2 * n_hidden else i + n_hidden
    return {f"{old(int(k.split('.', 1)[0]))}.{k.split('.', 1)[1]}": v for k, v in state.items()}


def test_checkpoints_from_before_fused_masking_still_load(tmp_path):
    from snnlab.dashboard.runs import load_model_from_checkpoint
    from snnlab.training import CheckpointError, save_checkpoint

    cfg = tiny(epochs=1, max_batches_per_epoch=2, mask_p=0.2, hidden=[12, 10], learn_threshold=True)
    Trainer(cfg, run_dir=tmp_path, progress=False).run()
    ckpt = load_checkpoint(tmp_path / "checkpoint.pt")
    new_state = ckpt["model"]
    ckpt["model"] = _as_separate_mask_layout(new_state, 2)
    assert set(ckpt["model"]) != set(new_state) and "7.beta_const" in ckpt["model"]  # the old numbering
    save_checkpoint(tmp_path / "checkpoint.pt", ckpt)
    resumed = Trainer.resume_from(tmp_path / "checkpoint.pt", progress=False)
    model, _, _ = load_model_from_checkpoint(str(tmp_path / "checkpoint.pt"))
    for net in (resumed.model, model):
        for k, v in net.state_dict().items():
            assert torch.equal(v.cpu(), new_state[k].cpu()), k
    # a state that fits neither layout is still refused
    ckpt["model"] = {k: v for k, v in ckpt["model"].items() if not k.startswith("3.")}
    save_checkpoint(tmp_path / "checkpoint.pt", ckpt)
    with pytest.raises(CheckpointError, match="does not match"):
        Trainer.resume_from(tmp_path / "checkpoint.pt", progress=False)


def test_resuming_into_a_store_that_never_saw_the_run_registers_it(tmp_path):
    from snnlab.experiments import RunStore

    cfg = tiny(epochs=2, max_batches_per_epoch=2)
    first = Trainer(cfg, run_dir=tmp_path / "run", store=RunStore(tmp_path / "a.sqlite"), progress=False)
    first.events.subscribe(lambda e: first.stop(), kinds=["epoch"])
    first.run()
    other = RunStore(tmp_path / "b.sqlite")
    resumed = Trainer.resume_from(tmp_path / "run", store=other, progress=False)
    resumed.run()
    runs = other.list_runs()
    assert runs["run_id"].tolist() == [first.run_id] and runs["status"].tolist() == ["finished"]
    assert other.get_run(first.run_id)["config"] == cfg.to_dict() and len(other.metrics(first.run_id)) > 0


def test_a_run_dir_holding_another_runs_checkpoint_is_refused(tmp_path, monkeypatch):
    from snnlab.experiments import RunStore

    monkeypatch.chdir(tmp_path)
    store = RunStore(tmp_path / "s.sqlite")
    cfg = tiny(max_batches_per_epoch=2)
    first = Trainer(cfg, run_dir="run", store=store, progress=False)
    first.run()
    with pytest.raises(FileExistsError, match="already holds the checkpoint"):
        Trainer(cfg.copy(hidden=[8]), run_dir="run", store=store, progress=False)
    assert load_checkpoint(tmp_path / "run")["run_id"] == first.run_id  # untouched
    Trainer.resume_from("run", progress=False)  # continuing that checkpoint is fine
    second = Trainer(cfg, run_dir="run", store=store, progress=False, overwrite=True)
    second.run()
    assert load_checkpoint(tmp_path / "run")["run_id"] == second.run_id
    runs = store.list_runs().set_index("run_id")
    assert runs.loc[second.run_id, "checkpoint"] == str(tmp_path / "run" / "checkpoint.pt")  # absolute: from any cwd
    assert not isinstance(runs.loc[first.run_id, "checkpoint"], str)  # replaced (None: NaN in the frame)
    assert runs.loc[first.run_id, "message"] == f"checkpoint replaced by run {second.run_id}"


def test_resume_after_a_crash_does_not_log_the_redone_steps_twice(tmp_path):
    import shutil

    from snnlab.experiments import RunStore

    store = RunStore(tmp_path / "s.sqlite")
    cfg = tiny(epochs=2, max_batches_per_epoch=3)
    first = Trainer(cfg, run_dir=tmp_path / "run", store=store, progress=False)
    first.events.subscribe(lambda e: first.stop(), kinds=["epoch"])
    first.run()
    shutil.copy(tmp_path / "run" / "checkpoint.pt", tmp_path / "at_step_3.pt")
    Trainer.resume_from(tmp_path / "run", store=store, progress=False).run()  # logs steps 4..6
    # as if that attempt had died (kill -9) before saving: its checkpoint is the one at step 3 again
    shutil.copy(tmp_path / "at_step_3.pt", tmp_path / "run" / "checkpoint.pt")
    again = Trainer.resume_from(tmp_path / "run", store=store, progress=False)
    again.run()
    loss = store.metrics(first.run_id).query("name == 'loss'")
    assert loss["step"].tolist() == [1, 2, 3, 4, 5, 6]


def test_resume_with_changed_settings_updates_the_stored_config(tmp_path):
    from snnlab.experiments import RunStore

    store = RunStore(tmp_path / "s.sqlite")
    cfg = tiny(epochs=1, max_batches_per_epoch=2)
    first = Trainer(cfg, run_dir=tmp_path, store=store, progress=False)
    first.run()
    Trainer.resume_from(tmp_path, cfg=cfg.copy(epochs=2, lr=0.01), store=store, progress=False).run()
    stored = store.get_config(first.run_id)
    assert (stored["epochs"], stored["lr"]) == (2, 0.01)
    assert ExperimentConfig.from_json(load_checkpoint(tmp_path)["config_json"]).to_dict() == stored


def test_resume_with_another_threshold_or_tau_uses_the_configured_values(tmp_path):
    """Probe: fixed thresholds and taus are buffers, so the checkpoint's overwrote the configured ones on resume
    (config, store and label said threshold=2 while the network kept 1)."""
    cfg = tiny(epochs=1, max_batches_per_epoch=2, hidden=[8, 8])
    Trainer(cfg, run_dir=tmp_path, progress=False).run()
    changed = cfg.copy(epochs=2, threshold=2.0, tau_mem=50.0)
    resumed = Trainer.resume_from(tmp_path, cfg=changed, progress=False)
    lifs = [m for m in resumed.model if isinstance(m, sl.LIF)]
    assert len(lifs) == 2 and all(float(m.threshold) == 2.0 for m in lifs)
    assert all(float(m.beta()) == pytest.approx(1 - 1 / 50) for m in resumed.model if isinstance(m, (sl.LIF, sl.LI)))
    # the weights are still the checkpoint's, and the learned values of a learned threshold too
    saved = load_checkpoint(tmp_path)["model"]
    assert torch.equal(resumed.model[0].weight, saved["0.weight"])
    learned = tiny(epochs=1, max_batches_per_epoch=2, hidden=[8], learn_threshold=True)
    Trainer(learned, run_dir=tmp_path / "learned", progress=False).run()
    ck = load_checkpoint(tmp_path / "learned")["model"]["1.threshold"]
    again = Trainer.resume_from(tmp_path / "learned", cfg=learned.copy(epochs=2, threshold=3.0), progress=False)
    assert torch.equal(again.model[1].threshold.detach(), ck) and float(ck) != 3.0


def test_test_set_metrics_go_to_the_store_as_eval(tmp_path):
    """Probe: test_* and rounded_test_* metrics were filed with kind "train", so store.metrics(kind="eval") was empty;
    a store whose log_metrics takes no kind (the protocol's) still gets them."""
    from snnlab.experiments import RunStore

    store = RunStore(tmp_path / "s.sqlite")
    tr = Trainer(tiny(delays=True, max_delay=4, max_batches_per_epoch=2), store=store, progress=False)
    tr.run()
    kinds = store.metrics(tr.run_id).groupby("kind")["name"].agg(set)
    assert kinds["eval"] and all(n.startswith(("test_", "rounded_test_")) for n in kinds["eval"])
    assert "rounded_test_accuracy" in kinds["eval"] and not any("test_" in n for n in kinds["train"])
    plain = FakeStore()
    Trainer(tiny(max_batches_per_epoch=2), store=plain, progress=False).run()
    assert any("test_accuracy" in str(c) for c in plain.calls)


def test_ctrl_c_saves_a_checkpoint_and_is_re_raised(tmp_path):
    tr = Trainer(tiny(epochs=3, max_batches_per_epoch=3), run_dir=tmp_path, progress=False)

    def interrupt(event):
        if event.step == 4:
            raise KeyboardInterrupt  # what Ctrl-C does in the training thread

    tr.events.subscribe(interrupt, kinds=["step"])
    with pytest.raises(KeyboardInterrupt):
        tr.run(raise_errors=False)  # not swallowed: a loop over runs ends too
    ck = load_checkpoint(tmp_path)
    assert tr.state == "stopped" and ck["step"] == 4 and ck["partial_epoch"]


def test_stop_with_a_reason_reports_it(tmp_path):
    events = []
    tr = Trainer(tiny(epochs=2, max_batches_per_epoch=2), progress=False)
    tr.events.subscribe(lambda e: tr.stop(reason="interrupted (SIGTERM)"), kinds=["step"])
    tr.events.subscribe(events.append, kinds=["stopped"])
    assert tr.run() is None and tr.state == "stopped" and events[0].data["reason"] == "interrupted (SIGTERM)"


def test_evaluate_caps_only_the_test_loader_at_eval_max_batches():
    """Probe: Trainer.evaluate(my_loader) on an 8-sample split reported n_samples=4 (the test set's cap)."""
    tr = Trainer(tiny(eval_max_batches=1, batch_size=4), progress=False)
    assert tr.evaluate()["n_samples"] == 4
    mine = [(x, y) for x, y in tr.train_loader][:3]
    assert tr.evaluate(mine)["n_samples"] == 12 and tr.evaluate(mine, max_batches=2)["n_samples"] == 8


def test_own_model_and_data_get_their_own_label_and_clear_errors(tmp_path):
    """Extensibility probe: a run of a custom model was stored as 'digits 64-128-10 multi_spike atan T20'; a
    batch-first loader failed with torch's 'Expected input batch_size (12) to match target batch_size (4)'; a model
    returning (out, extras), which evaluate() takes, was refused by the Trainer."""
    from snnlab.experiments import RunStore

    class Pair(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = sl.Sequential(torch.nn.Linear(3, 6), sl.LIF(), torch.nn.Linear(6, 2), sl.LI())

        def forward(self, x):
            return self.net(x), {"extra": 1}

    x, y = torch.rand(12, 4, 3), torch.randint(0, 2, (4,))
    store = RunStore(tmp_path / "runs.sqlite")
    tr = Trainer(tiny(epochs=1), model=Pair(), train_loader=[(x, y)], test_loader=[(x, y)], store=store,
                 progress=False)
    assert tr.label == "Pair (custom model) on custom data" and tr.name == tr.label
    tr.run()
    assert tr.state == "finished" and store.list_runs()["name"].tolist() == [tr.label]
    own_data = Trainer(tiny(epochs=1), train_loader=[(x, y)], test_loader=[(x, y)], progress=False)
    assert own_data.label == "3-32-10 multi_spike atan (custom data)"  # (the sizes built, no dataset named)
    with pytest.raises(ValueError, match="Trainer: train_loader was given without test_loader"):  # the test loader
        Trainer(tiny(epochs=1), train_loader=[(torch.rand(12, 4, 64), y)], progress=False)  # would be the digits'
    with pytest.raises(TypeError, match="x must be a tensor .*got tuple"):
        Trainer(tiny(epochs=1), model=Pair(), train_loader=[((x, None), y)], test_loader=[(x, y)], progress=False).run()
    batch_first = Trainer(tiny(epochs=1), model=Pair(), train_loader=[(x.transpose(0, 1), y)],
                          test_loader=[(x, y)], progress=False)
    with pytest.raises(ValueError, match=r"Trainer: batch 0 has 4 labels but x of shape \(4, 12, 3\) has batch size 12: x must be "
                                         r"time-major .*x.transpose\(0, 1\)"):
        batch_first.run()


def test_a_float64_model_trains_on_float32_and_integer_data():
    """The Trainer cast only integer batches (to float32): a float64 model on float32 data failed in its first layer
    ('mat1 and mat2 must have the same dtype'), as evaluate() did before it cast to the model's dtype."""
    net = sl.Sequential(torch.nn.Linear(3, 6), sl.LIF(backend="torch"), torch.nn.Linear(6, 2), sl.LI()).double()
    x, y = (torch.rand(8, 4, 3) * 3).floor(), torch.randint(0, 2, (4,))
    for data in (x, x.to(torch.uint8)):
        tr = Trainer(tiny(epochs=1), model=net, train_loader=[(data, y)], test_loader=[(data, y)], progress=False)
        tr.run()
        assert tr.state == "finished" and math.isfinite(tr.history.steps()[-1]["loss"])


def test_a_trainers_model_can_be_copied_pickled_and_saved():
    """Probe: the trainer's spike-count hook (a bound method) on every LIF dragged the Trainer and its lock into
    copies of the model: deepcopy, pickle and torch.save raised "cannot pickle '_thread.RLock' object"."""
    import copy
    import io
    import pickle

    tr = Trainer(ExperimentConfig(hidden=[8], epochs=1, max_batches_per_epoch=1, num_steps=5, device="cpu"),
                 progress=False, store=None)
    x = torch.rand(5, 2, 64)
    want = tr.model(x)
    for clone in (copy.deepcopy(tr.model), pickle.loads(pickle.dumps(tr.model))):
        assert torch.equal(clone(x), want)
        assert not any(clone[1]._forward_hooks.values())  # the trainer stays behind
    buf = io.BytesIO()
    torch.save(tr.model, buf)
    assert torch.equal(torch.load(io.BytesIO(buf.getvalue()), weights_only=False)(x), want)
    tr.run()                                              # the trainer itself still counts spikes
    assert tr.history.frame("step")["spikes_per_sample"].notna().all()


def test_training_batches_get_evaluates_checks():
    """Leftover: the trainer restated two of evaluate's batch checks; float labels reached the loss (and a batch
    without time steps the model). Both now share metrics.check_batch."""
    x, y = torch.rand(6, 4, 64), torch.tensor([0, 1, 2, 3])
    with pytest.raises(TypeError, match="Trainer: y must be integer class indices"):
        Trainer(tiny(epochs=1), train_loader=[(x, y.float())], test_loader=[(x, y)], progress=False).run()
    with pytest.raises(ValueError, match="Trainer: batch 1 has no time steps"):
        Trainer(tiny(epochs=1), train_loader=[(x, y), (x[:0], y)], test_loader=[(x, y)], progress=False).run()
    with pytest.raises(ValueError, match="Trainer: the loader must yield"):
        Trainer(tiny(epochs=1), train_loader=[x], test_loader=[(x, y)], progress=False).run()
    empty_too = Trainer(tiny(epochs=1), train_loader=[(x[:, :0], y[:0]), (x, y)], test_loader=[(x, y)],
                        progress=False)
    empty_too.run()                                        # an empty batch is skipped, as evaluate skips it
    assert empty_too.state == "finished" and empty_too.step == 1


def test_empty_training_batches_warn_once_and_an_epoch_of_them_is_refused():
    """Review: a loader of empty batches 'finished' with train_loss 0.0, and empty batches shortened the schedules
    without a word; dead hooks of dropped trainers piled up on a reused model."""
    import gc

    x, y = torch.rand(6, 4, 64), torch.tensor([0, 1, 2, 3])
    empty = (x[:, :0], y[:0])
    with pytest.raises(ValueError, match="epoch 1 trained on no samples: every batch of it was empty"):
        Trainer(tiny(epochs=1), train_loader=[empty, empty], test_loader=[(x, y)], progress=False).run()
    with pytest.raises(ValueError, match="epoch 1 trained on no samples: the training loader yielded no batches"):
        Trainer(tiny(epochs=1), model=Trainer(tiny(), progress=False).model, train_loader=[],
                test_loader=[(x, y)], progress=False).run()
    with pytest.warns(RuntimeWarning, match="batch 0 of epoch 1 is empty .* skipped; the learning-rate schedules") as rec:
        Trainer(tiny(epochs=2, lr_schedule="cosine"), train_loader=[empty, (x, y)], test_loader=[(x, y)],
                progress=False).run()
    assert sum("is empty" in str(w.message) for w in rec) == 1  # once per run
    with warnings.catch_warnings():  # no schedule: nothing to warn about
        warnings.simplefilter("error", RuntimeWarning)
        Trainer(tiny(epochs=1), train_loader=[empty, (x, y)], test_loader=[(x, y)], progress=False).run()
    model = Trainer(tiny(epochs=1), progress=False).model
    for _ in range(5):
        Trainer(tiny(epochs=1), model=model, progress=False)
    gc.collect()
    assert len(model[1]._forward_hooks) == 0  # the dropped trainers took their hooks along
