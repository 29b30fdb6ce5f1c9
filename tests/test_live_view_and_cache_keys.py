"""A watched run records what an unwatched one does; live curves keep a run's test points; one cache per dataset
whatever the spelling of its path."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from snnlab.data.cache import DiskCache, files_cache_params, params_key
from snnlab.data.loader_rng import loader_states
from snnlab.training import ExperimentConfig, Trainer
from snnlab.viz import LiveCurves
from snnlab.widgets import session as session_module
from snnlab.widgets.session import LIVE_BUFFER_LENGTH, TrainingSession

RATE = dict(dataset="digits", hidden=[8], num_steps=5, batch_size=16, epochs=2, max_batches_per_epoch=3,
            eval_max_batches=2, device="cpu", encoding="rate")
CLOCK = ("time", "epoch_time_s")


def _metrics(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in CLOCK} for r in history]


# ----------------------------------------------------------------------------------------- the probe batch
def test_a_session_records_the_metrics_of_the_plain_trainer_with_rate_encoding():
    plain = Trainer(ExperimentConfig(**RATE), progress=False)
    plain.run()
    s = TrainingSession(RATE, probe_every=1)  # a snapshot at every step too
    s.start()
    assert s.wait(120) and s.state == "finished"
    assert _metrics(s.trainer.history) == _metrics(plain.history)  # bit-exact (the probe moved the test spikes)
    assert [r["test_accuracy"] for r in s.trainer.history if r["kind"] == "epoch"] == \
        [r["test_accuracy"] for r in plain.history if r["kind"] == "epoch"]


def test_the_probe_draw_leaves_the_loader_and_global_random_states_as_they_were(monkeypatch):
    seen = {}

    class NotStarting(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.test_loader.generator = None  # a loader without one draws its seed from the global generator
            seen["before"] = (torch.get_rng_state(), loader_states(self.test_loader))

        def start(self):  # what training would start from
            seen["after"] = (torch.get_rng_state(), loader_states(self.test_loader))

    monkeypatch.setattr(session_module, "Trainer", NotStarting)
    s = TrainingSession(RATE, probe_samples=3)
    s.start()
    (rng0, loaders0), (rng1, loaders1) = seen["before"], seen["after"]
    assert torch.equal(rng0, rng1)
    assert loaders0.keys() == loaders1.keys() and loaders0  # (the rate encoder's generator at least)
    assert all(torch.equal(loaders0[k], loaders1[k]) for k in loaders0)
    assert s._probe[0].shape[1] == 3 and s.snapshot["step"] == 0  # the probe and the first snapshot are there


# ----------------------------------------------------------------------------------------- live curves
def test_live_curves_keep_every_test_point_and_bound_the_step_rows():
    live = LiveCurves(buffer_length=30, eval_length=8)
    for s0 in range(0, 100, 10):  # 300 step rows, 10 test points
        rows = [(s, {"loss": 1.0, "accuracy": 0.5, "spikes_per_sample": 3.0}) for s in range(s0, s0 + 10)]
        rows[-1][1]["test_accuracy"] = s0 / 100
        live.send_many(rows)
    d = live.buffer.data
    steps, tests = d[d["name"] != "test_accuracy"], d[d["name"] == "test_accuracy"]
    assert len(steps) == 30 and steps["step"].min() == 90  # the latest 10 steps of three metrics
    assert tests["step"].tolist() == [29.0, 39.0, 49.0, 59.0, 69.0, 79.0, 89.0, 99.0]  # eval_length: the last 8
    assert live.total_rows == 310
    # on the plot too
    panel = live.plot[()].get(1)["test_accuracy"]
    assert len(panel) == 8


def test_a_follower_that_fell_behind_gets_the_kept_test_points():
    src, page = LiveCurves(buffer_length=6), LiveCurves(buffer_length=6)
    src.send(0, {"loss": 1.0, "test_loss": 0.9})
    assert page.follow(src) and len(page.buffer.data) == 2
    src.send_many([(s, {"loss": 1.0 / s}) for s in range(1, 10)])  # more than the source keeps: a gap
    rows, total, gap = src.rows_since(2)
    assert gap and total == 11 and rows["name"].tolist().count("test_loss") == 1
    page.follow(src)
    shown = page.buffer.data
    assert shown["name"].tolist() == ["test_loss"] + ["loss"] * 6 and shown["step"].tolist()[1:] == [4, 5, 6, 7, 8, 9]
    src.send(10, {"loss": 0.1, "test_loss": 0.2})  # no gap now: just the new rows
    rows, total, gap = src.rows_since(11)
    assert not gap and len(rows) == 2
    page.follow(src)
    assert page.buffer.data["name"].tolist().count("test_loss") == 2


def test_rows_since_sees_a_gap_inside_a_buffer_that_kept_old_test_points():
    live = LiveCurves(buffer_length=2)
    live.send(0, {"test_loss": 0.5})
    live.send_many([(s, {"loss": float(s)}) for s in (1, 2, 3)])  # step 1 leaves; the test point stays
    rows, total, gap = live.rows_since(1)  # rows 1..3 were sent after the first; row 1 is gone
    assert gap and total == 4 and len(rows) == 3  # (the whole buffer: the page replaces what it shows)
    rows, _, gap = live.rows_since(2)
    assert not gap and rows["step"].tolist() == [2.0, 3.0]


def test_a_big_table_replaced_at_once_is_trimmed_the_same_way():
    live = LiveCurves(buffer_length=3, eval_length=2)
    table = pd.DataFrame({"step": np.arange(10.0), "name": ["loss", "test_loss"] * 5, "value": np.ones(10)})
    live.replace_table(table)
    assert live.buffer.data["step"].tolist() == [4.0, 6.0, 7.0, 8.0, 9.0]  # loss: the last 3; test_loss: 2
    live.clear()
    live.send(1, {"loss": 1.0})
    assert len(live.buffer.data) == 1


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_live_curves_refuse_a_bad_length(bad):
    with pytest.raises(ValueError, match="buffer_length"):
        LiveCurves(buffer_length=bad)


def test_a_session_keeps_its_test_points_over_its_buffer():
    cfg = dict(dataset="digits", hidden=[8], num_steps=5, batch_size=16, epochs=4, max_batches_per_epoch=5,
               eval_max_batches=1, device="cpu")
    s = TrainingSession(cfg, buffer_length=40)
    s.start()
    assert s.wait(120)
    s.poll()
    d = s.curves.buffer.data
    evals = sum(1 for r in s.trainer.history if r["kind"] == "epoch")
    assert evals == 4 and int((d["name"] == "test_accuracy").sum()) == 4  # (1 of 4 with one shared buffer)
    assert int((~d["name"].str.startswith("test_")).sum()) == 40


def test_the_pages_use_the_sessions_buffer_length():
    from snnlab.dashboard.live import LivePanel
    from snnlab.widgets import TrainerWidget

    tw = TrainerWidget({"hidden": [8], "epochs": 1}, poll_interval=None)
    try:
        assert tw.curves.buffer_length == LIVE_BUFFER_LENGTH == TrainingSession(RATE).curves.buffer_length
    finally:
        tw.close()
    assert LivePanel(lambda: ExperimentConfig(**RATE)).curves.buffer_length == LIVE_BUFFER_LENGTH


# ----------------------------------------------------------------------------------------- cache keys
def _files(root):
    folder = root / "data" / "0"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"{i}.bin").write_bytes(bytes([i]) * (i + 5))
    return sorted(str(p) for p in folder.glob("*.bin"))


def test_the_same_files_under_another_spelling_share_a_cache(tmp_path, monkeypatch):
    real = os.path.realpath(tmp_path)
    files = _files(tmp_path)
    cache = tmp_path / "cache"
    key = files_cache_params([os.path.realpath(f) for f in files], cache, bins=5)
    monkeypatch.chdir(tmp_path)
    relative = [os.path.relpath(f) for f in files]
    assert not os.path.isabs(relative[0])
    (tmp_path / "link").symlink_to(tmp_path / "data", target_is_directory=True)
    linked = [str(tmp_path / "link" / "0" / os.path.basename(f)) for f in files]
    dotted = [os.path.join(real, "data", "..", "data", "0", os.path.basename(f)) for f in files]
    for spelling in (relative, linked, dotted):
        assert files_cache_params(spelling, cache, bins=5) == key
    folders = {DiskCache(cache, "nmnist", files_cache_params(sp, cache, bins=5)).folder
               for sp in (files, relative, linked)}
    assert len(folders) == 1
    # a different file set still gets its own key
    assert files_cache_params(relative[:2], cache, bins=5) != key


def test_an_absolute_resolved_path_keeps_the_key_earlier_versions_gave_it(tmp_path):
    files = [os.path.realpath(f) for f in _files(tmp_path)]
    stats = [(f, os.stat(f).st_size, os.stat(f).st_mtime_ns) for f in files]
    old_key = {"files": params_key({"f": stats}), "n": 1}  # the key as earlier versions formed it
    assert files_cache_params(files, tmp_path, n=1) == old_key
    from pathlib import Path

    assert files_cache_params([Path(f) for f in files], tmp_path, n=1) == old_key  # (Paths: their str)
