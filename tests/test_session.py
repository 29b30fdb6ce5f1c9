"""TrainingSession: background run, polled curves and progress, snapshots, control, close."""
import time

import pytest

from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig
from snnlab.widgets import TrainingSession

TINY = dict(dataset="digits", hidden=[16], epochs=2, num_steps=8, batch_size=32, max_batches_per_epoch=4,
            eval_max_batches=1)


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
