"""TrainingSession: background run, polled curves and progress, snapshots, control, close."""
import time

import pytest

from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig
from snnlab.widgets import TrainingSession

TINY = dict(dataset="digits", hidden=[16], epochs=2, num_steps=8, batch_size=32, max_batches_per_epoch=4,
            eval_max_batches=1)
ONE_EPOCH = {**TINY, "epochs": 1}


def test_session_streams_curves_progress_and_snapshots(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    s = TrainingSession(ExperimentConfig(**TINY), store=store, probe_every=2, probe_samples=3)
    assert s.state == "idle" and s.poll() == []
    s.start()
    assert s.wait(120)
    events = s.poll()
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished" and kinds.count("step") == 8
    assert s.state == "finished" and s.progress == 1.0 and s.last_eval["accuracy"] >= 0
    data = s.curves.buffer.data
    assert set(data["name"]) >= {"loss", "accuracy", "spikes_per_sample", "test_accuracy"}
    assert (data["name"] == "loss").sum() == 8
    snap = s.snapshot
    assert snap["step"] == 8 and snap["spikes"]["1"].shape == (8, 3, 16) and snap["labels"].shape == (3,)
    assert store.list_runs()["status"].tolist() == ["finished"]
    s.close()


def test_session_delay_history_and_pause_stop():
    s = TrainingSession(ExperimentConfig(**{**TINY, "delays": True, "max_delay": 4, "epochs": 50}), probe_every=1)
    s.start()
    deadline = time.time() + 60
    while s.step < 3 and time.time() < deadline:
        s.poll()
        time.sleep(0.05)
    s.pause()
    assert s.trainer.pause(wait=True, timeout=30)
    s.poll()
    paused_at = s.trainer.step
    time.sleep(0.5)
    assert s.trainer.step == paused_at and s.state == "paused"
    hist = s.delay_history_frame()
    assert {"step", "position", "sigma"} <= set(hist.columns) and hist["step"].nunique() >= 2
    s.close()
    assert s.state == "stopped"


def test_session_reports_bad_settings_before_starting(tmp_path):
    with pytest.raises(Exception, match="max_delay"):
        TrainingSession(ExperimentConfig(**{**TINY, "delays": True, "max_delay": 100}))
    s = TrainingSession(ExperimentConfig(**{**TINY, "dataset": "nmnist", "data_root": str(tmp_path)}))
    with pytest.raises(FileNotFoundError, match="NMNIST"):
        s.start()
    with pytest.raises(RuntimeError):
        s.take_snapshot(0)


# ------------------------------------------------------------------- poll(), fed with queued events
class _FakeQueue:
    def __init__(self, events):
        self.events = list(events)

    def drain(self):
        out, self.events = self.events, []
        return out

    def close(self):
        pass


def _step_events(n, start=1):
    from snnlab.training import Event

    return [Event("step", step=i, epoch=0, data={"batch": i - 1, "n_batches": 100, "loss": 1.0 / i,
                                                  "accuracy": 0.5, "spikes_per_sample": 40.0})
            for i in range(start, start + n)]


def test_session_poll_sends_all_queued_events_in_one_batch():
    """Reviewer: 74 events were sent (and redrawn) one by one: a 3 s replay of a finished run."""
    from snnlab.training import Event

    s = TrainingSession(ExperimentConfig(**ONE_EPOCH))
    redraws = []
    s.curves.buffer.add_subscriber(lambda **kw: redraws.append(len(kw["data"])))
    s._queue = _FakeQueue(_step_events(74) + [Event("evaluation", step=74, data={"phase": "epoch", "accuracy": 0.8,
                                                                                   "loss": 0.3})])
    events = s.poll()
    assert len(events) == 75 and redraws == [74 * 3 + 2]  # one send, one redraw
    assert s.step == 74 and s.progress == pytest.approx(0.74) and s.last_eval["accuracy"] == 0.8
    assert s.poll() == [] and len(redraws) == 1


def test_session_poll_loses_no_event_when_processing_or_drawing_fails(monkeypatch):
    from snnlab.training import Event

    s = TrainingSession(ExperimentConfig(**ONE_EPOCH))
    calls = []

    def draw_fails_once(**kw):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Set changed size during iteration")

    s.curves.buffer.add_subscriber(draw_fails_once)
    s._queue = _FakeQueue(_step_events(10))
    with pytest.raises(RuntimeError, match="Set changed"):
        s.poll()
    assert (s.curves.buffer.data["name"] == "loss").sum() == 10 and s.step == 10  # all kept, nothing re-queued
    assert s.curves.total_rows == 30
    # an event that cannot be processed stays queued (with those after it) for the next poll
    fails = [1]

    def snapshot(step):
        if fails:
            fails.pop()
            raise RuntimeError("snapshot failed")

    monkeypatch.setattr(s, "take_snapshot", snapshot)
    s._queue = _FakeQueue(_step_events(2, start=11) + [Event("finished", step=12),
                                                       Event("evaluation", step=12, data={"phase": "rounded",
                                                                                           "accuracy": 0.7})])
    with pytest.raises(RuntimeError, match="snapshot failed"):
        s.poll()
    assert s.step == 12 and s.progress < 1.0 and (s.curves.buffer.data["name"] == "loss").sum() == 12
    assert [e.kind for e in s.poll()] == ["finished", "evaluation"]
    assert s.progress == 1.0 and "rounded_test_accuracy" in set(s.curves.buffer.data["name"])
    # an event that always fails is skipped after a few tries: it cannot stall the view
    monkeypatch.setattr(s, "take_snapshot", lambda step: 1 / 0)
    s._queue = _FakeQueue([Event("finished", step=13)] + _step_events(1, start=13))
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            s.poll()
    with pytest.raises(RuntimeError, match="skipped a 'finished' event"):
        s.poll()
    assert s.step == 13 and s.poll() == []


def test_delay_history_stays_bounded_over_a_long_run(monkeypatch):
    """Leak probe: the delay history grew by one snapshot per probe for the whole run (dcls_shd: ~1,000 snapshots
    of ~3,000 synapses in one session); it is thinned past MAX_DELAY_SNAPSHOTS, keeping the newest."""
    import snnlab.widgets.session as session_module

    monkeypatch.setattr(session_module, "MAX_DELAY_SNAPSHOTS", 6)
    s = TrainingSession(ExperimentConfig(**{**TINY, "delays": True, "max_delay": 4, "epochs": 50}), probe_every=1)
    s.start()
    try:
        s.trainer.pause(wait=True)  # (its own snapshots stop: only these below)
        s.delay_history.clear()
        for step in range(1, 21):
            s.take_snapshot(step)
        steps = [int(h["step"].iloc[0]) for h in s.delay_history]
        assert len(steps) <= 6 and steps[-1] == 20 and steps == sorted(steps)
        assert s.delay_history_frame()["step"].nunique() == len(steps)
    finally:
        s.close()


def test_snapshots_keep_an_adaptive_layers_moving_threshold():
    s = TrainingSession(ExperimentConfig(**{**TINY, "adaptation": 0.3}), store=None)
    s.start()
    try:
        snap = s.take_snapshot(0)
    finally:
        s.close()
    thr, mem = snap["thresholds"]["1"], snap["membrane"]["1"]
    assert thr.shape == mem.shape and thr.min() >= 1.0  # [T, B, N], from the threshold up
