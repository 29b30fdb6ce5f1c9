"""Read-only sessions side by side with ``timeout=0`` (``snnlab runs --timeout 0`` run by several processes at once):
a session's close removes the empty -wal and -shm (SQLite does, holding the store locked for that moment), and a
session opening in that moment was refused with StoreLocked (up to half of 900 sessions in a stress run). It now
waits for that moment; a lock held for longer still refuses it."""
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import snnlab.experiments.store as store_mod
from snnlab.experiments import RunStore
from snnlab.experiments.store import StoreLocked


def _store_with_a_run(path: Path) -> None:
    """A WAL store with one run, closed by its writer (no -wal or -shm beside it)."""
    store = RunStore(path)
    store.set_status(store.create_run({"seed": 0}, name="listed"), "finished")
    store.close()
    assert _names(path.parent) == [path.name]


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _lock_as_a_close_does(path: Path) -> sqlite3.Connection:
    """A connection holding the store's exclusive lock, as the last connection's close holds it while SQLite removes
    the -wal and -shm (a connection in exclusive locking mode: its close, the last one, removes them too)."""
    holder = sqlite3.connect(path, timeout=0, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("SELECT count(*) FROM runs").fetchone()
    return holder


def test_a_read_only_session_opening_while_another_close_holds_the_store_waits_for_it(tmp_path, monkeypatch):
    """Deterministic: the lock is held when the session opens with timeout 0, and let go (the holder closes, removing
    the files) at the session's first pause between tries."""
    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    holder = _lock_as_a_close_does(path)
    pauses = []

    def pause(seconds):
        if not pauses:
            holder.execute("ROLLBACK")
            holder.close()
        pauses.append(seconds)

    monkeypatch.setattr(store_mod, "_pause", pause, raising=False)
    try:
        reader = RunStore(path, read_only=True, timeout=0)  # (before: StoreLocked at once)
        assert reader.list_runs()["name"].tolist() == ["listed"]
        reader.close()
    finally:
        holder.close()  # (no-op when the pause closed it)
    assert len(pauses) == 1  # (it did meet the lock, and tried once more)
    assert _names(tmp_path) == ["s.sqlite"]  # (the last session's close removed the files)
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()


def test_a_lock_held_longer_still_refuses_a_read_only_session_saying_how_long_it_waited(tmp_path, monkeypatch):
    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    monkeypatch.setattr(store_mod, "_READ_ONLY_OPEN_WAIT", 0.05, raising=False)
    holder = _lock_as_a_close_does(path)
    try:
        for timeout, waited in ((0, "0.05"), (0.2, "0.2")):
            with pytest.raises(StoreLocked, match=rf"locked by another process \(waited {waited} s\)"):
                RunStore(path, read_only=True, timeout=timeout)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert RunStore(path, read_only=True, timeout=0).list_runs()["name"].tolist() == ["listed"]


SESSIONS = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("store", sys.argv[1])  # (store.py alone: no torch to import)
store_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(store_mod)
path, n = sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()  # (all processes start at once)
locked = 0
for _ in range(n):
    try:
        store = store_mod.RunStore(path, read_only=True, timeout=0)
    except store_mod.StoreLocked:
        locked += 1
        continue
    assert store.list_runs()["name"].tolist() == ["listed"]
    store.close()
print(locked, flush=True)
"""


@pytest.mark.skipif(os.name == "nt", reason="SQLite's file locks (and the removal of -wal files) differ on Windows")
def test_read_only_sessions_of_several_processes_with_timeout_0_never_refuse_each_other(tmp_path):
    """The stress that found it, small (3 processes, 150 sessions each): before, dozens of them got StoreLocked."""
    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    procs = [subprocess.Popen([sys.executable, "-c", SESSIONS, store_mod.__file__, str(path), "150"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        assert [proc.stdout.readline().strip() for proc in procs] == ["ready"] * 3
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill() if proc.poll() is None else None
    assert [proc.returncode for proc in procs] == [0, 0, 0]
    assert [out.strip() for out in outs] == ["0", "0", "0"]  # (StoreLocked per process)
    assert _names(tmp_path) == ["s.sqlite"]
