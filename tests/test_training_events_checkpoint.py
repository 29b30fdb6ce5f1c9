"""Event bus (threads, failing subscribers) and atomic checkpoints (crash mid-write)."""
import os
import queue
import subprocess
import sys
import textwrap
import threading

import pytest
import torch

from snnlab.training import CheckpointError, Event, EventBus, load_checkpoint, save_checkpoint
from snnlab.training import checkpoint as ckpt_mod


def test_subscribe_unsubscribe_and_kinds():
    bus = EventBus()
    seen, only_steps = [], []
    unsub = bus.subscribe(lambda e: seen.append((e.kind, e.step)))
    bus.subscribe(lambda e: only_steps.append(e.kind), kinds=["step"])
    bus.emit("started", run_id="r")
    bus.emit("step", run_id="r", step=1, loss=0.5)
    unsub()
    bus.emit("finished", run_id="r", step=1)
    assert seen == [("started", 0), ("step", 1)]
    assert only_steps == ["step"]
    assert [e.kind for e in bus.recent()] == ["started", "step", "finished"]
    assert bus.recent(1)[0].terminal
    with pytest.raises(ValueError, match="unknown event kind"):
        bus.emit("exploded")
    with pytest.raises(ValueError):
        bus.subscribe(print, kinds=["nope"])
    with pytest.raises(ValueError, match="'stpe'"):  # a typo in a queue's kinds would never deliver anything
        bus.queue(kinds=["stpe"])
    one = []
    bus.subscribe(lambda e: one.append(e.kind), kinds="step")  # one kind as a plain string
    bus.emit("step", run_id="r", step=2)
    assert one == ["step"]


def test_failing_subscriber_is_logged_not_raised(caplog):
    bus = EventBus()
    got = []

    def broken(e):
        raise RuntimeError("subscriber bug")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    with caplog.at_level("ERROR"):
        bus.emit("step", step=3)
    assert len(got) == 1 and bus.callback_errors == 1
    assert "subscriber" in caplog.text


def test_queue_consumer_in_another_thread():
    bus = EventBus()
    q = bus.queue()
    received = []
    t = threading.Thread(target=lambda: received.extend(e.kind for e in q))
    t.start()
    for k in ["started", "step", "step", "epoch", "finished", "step"]:
        bus.emit(k)
    t.join(5)
    assert not t.is_alive()
    assert received == ["started", "step", "step", "epoch", "finished"]  # iteration ends at a terminal event
    q.close()
    with pytest.raises(queue.Empty):
        bus.queue().get(timeout=0.01)


def test_bounded_queue_drops_oldest_and_never_blocks():
    bus = EventBus()
    q = bus.queue(maxsize=3, kinds=["step"])
    for i in range(10):
        bus.emit("step", step=i)
    bus.emit("epoch")  # filtered out
    assert [e.step for e in q.drain()] == [7, 8, 9] and q.dropped == 7
    late = bus.queue(replay=True, maxsize=None)
    assert len(late) == 11
    assert isinstance(late.get_nowait(), Event)


# ------------------------------------------------------------------------------- checkpoints


def test_save_load_round_trip(tmp_path):
    p = tmp_path / "sub" / "ckpt.pt"
    save_checkpoint(p, {"epoch": 2, "w": torch.arange(3.0), "cfg": '{"a": 1}', "hist": [{"loss": 1.5}]})
    s = load_checkpoint(p)
    assert s["epoch"] == 2 and torch.equal(s["w"], torch.arange(3.0)) and s["hist"][0]["loss"] == 1.5
    assert load_checkpoint(tmp_path / "sub" / "ckpt.pt")["cfg"] == '{"a": 1}'
    assert [f.name for f in p.parent.iterdir()] == ["ckpt.pt"]  # no temp files left


def test_missing_and_corrupt_checkpoints(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(bad)
    good = save_checkpoint(tmp_path / "good.pt", {"x": torch.arange(4.0), "meta": {"finished": True}})
    calls = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("mmap")) or real_load(*a, **k))
    mapped = load_checkpoint(good, mmap=True)  # tensors mapped from the file, not read: the same content
    assert calls == [True] and load_checkpoint(good)["meta"] == {"finished": True} and calls == [True, False]
    assert torch.equal(mapped["x"], torch.arange(4.0)) and mapped["meta"] == {"finished": True}
    data = good.read_bytes()
    good.write_bytes(data[: len(data) // 2])  # truncated
    for mmap in (False, True):
        with pytest.raises(CheckpointError):
            load_checkpoint(good, mmap=mmap)


def test_crash_mid_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, {"epoch": 1, "w": torch.ones(1000)})
    real_save = torch.save

    def partial_then_crash(obj, f, *a, **k):
        f.write(b"PARTIAL-DATA" * 100)
        raise OSError("disk on fire")

    monkeypatch.setattr(ckpt_mod.torch, "save", partial_then_crash)
    with pytest.raises(OSError, match="disk on fire"):
        save_checkpoint(p, {"epoch": 2, "w": torch.zeros(1000)})
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    s = load_checkpoint(p)
    assert s["epoch"] == 1 and torch.equal(s["w"], torch.ones(1000))
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_killed_process_mid_write_keeps_previous_checkpoint(tmp_path):
    p = tmp_path / "checkpoint.pt"
    save_checkpoint(p, {"epoch": 1, "w": torch.ones(10)})
    script = textwrap.dedent(f"""
        import os, torch
        from snnlab.training import checkpoint as c
        def dying_save(obj, f, *a, **k):
            f.write(b"HALF" * 1000); f.flush()
            os._exit(9)   # like SIGKILL: no cleanup, no exception handlers
        c.torch.save = dying_save
        c.save_checkpoint({str(p)!r}, {{"epoch": 2, "w": torch.zeros(10)}})
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), capture_output=True, timeout=120)
    assert r.returncode == 9, r.stderr.decode()
    assert load_checkpoint(p)["epoch"] == 1
    leftovers = [f.name for f in tmp_path.iterdir() if f.name != "checkpoint.pt"]
    assert leftovers and all(n.endswith(".tmp") for n in leftovers)
    save_checkpoint(p, {"epoch": 3})  # the next save cleans the stale temp file
    assert [f.name for f in tmp_path.iterdir()] == ["checkpoint.pt"] and load_checkpoint(p)["epoch"] == 3


def test_checkpoint_files_get_the_umask_mode_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_checkpoint(tmp_path / "checkpoint.pt", {"epoch": 1})
        os.umask(0o077)
        private = save_checkpoint(tmp_path / "private.pt", {"epoch": 1})
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644  # readable by the group, like any file the user writes
    assert (private.stat().st_mode & 0o777) == 0o600


@pytest.mark.parametrize("damage, words", [
    (lambda c: c.pop("epoch"), "the field 'epoch' is missing"),
    (lambda c: c.update(epoch="x"), "ValueError: invalid literal"),
    (lambda c: c.update(rng={"torch": torch.zeros(3, dtype=torch.uint8)}), "RuntimeError"),
    (lambda c: c.update(history=5), "TypeError"),
])
def test_a_damaged_checkpoint_is_a_checkpoint_error(tmp_path, damage, words):
    """Probe: a checkpoint missing a field or holding one of the wrong type gave a bare KeyError / TypeError."""
    from snnlab.training import ExperimentConfig, Trainer

    cfg = ExperimentConfig(hidden=[8], num_steps=5, batch_size=32, epochs=1, max_batches_per_epoch=2,
                           eval_max_batches=1)
    Trainer(cfg, run_dir=tmp_path / "run", progress=False).run()
    ck = load_checkpoint(tmp_path / "run")
    damage(ck)
    torch.save(ck, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=f"bad.pt is damaged or was not written by this version.*{words}"):
        Trainer(cfg.copy(epochs=2), resume=tmp_path / "bad.pt", run_dir=tmp_path / "again", progress=False)
    ck.pop("config_json")
    torch.save(ck, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="holds no configuration"):
        Trainer(resume=tmp_path / "bad.pt", run_dir=tmp_path / "again", progress=False)
