"""Read-only sessions side by side with ``timeout=0`` (``snnlab runs --timeout 0`` run by several processes at once):
a session's close removes the empty -wal and -shm (SQLite does, holding the store locked for that moment), and a
session opening in that moment was refused with StoreLocked (up to half of 900 sessions in a stress run). It now
waits for that moment; a lock held for longer still refuses it."""
import os
import sqlite3
import subprocess
import sys
import time
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


class _Clock:
    """``time`` for the store module, with a ``monotonic`` that moves only when told."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_a_read_only_opening_waits_in_all_as_long_as_it_says_and_its_reads_wait_their_timeout(tmp_path, monkeypatch):
    """Each try's own wait for the lock (SQLite's busy timeout) is cut to the time left: with a timeout under the
    opening's least wait (0.9 s against 1 s) the second try waited 0.9 s more (1.8 s in all, saying 'waited 1 s').
    Deterministic: a clock that moves by the waits (SQLite's, the pauses) alone."""
    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    clock, tries = _Clock(), []
    real_open = RunStore._open_read_only

    def open_read_only(self, *waits):  # (the lock is held for the first ``busy`` tries; SQLite waits out each one's)
        tries.append(waits[-1])
        if len(tries) > busy:
            return real_open(self, *waits)
        clock.now += waits[-1]
        exc = sqlite3.OperationalError("database is locked")
        exc.sqlite_errorcode = sqlite3.SQLITE_BUSY
        raise exc

    monkeypatch.setattr(store_mod, "time", clock)
    monkeypatch.setattr(store_mod, "_pause", lambda seconds: setattr(clock, "now", clock.now + seconds))
    monkeypatch.setattr(RunStore, "_open_read_only", open_read_only)
    busy = 10**6
    with pytest.raises(StoreLocked, match=r"\(waited 1 s\)"):
        RunStore(path, read_only=True, timeout=0.9)
    assert tries[0] == 0.9 and clock.now <= 1.0 + 1e-9  # (before: tries [0.9, 0.9], 1.8 s)
    clock.now, tries[:], busy = 0.0, [], 1  # the lock goes after the first try: the second, its wait cut, opens
    reader = RunStore(path, read_only=True, timeout=0.9)
    assert len(tries) == 2 and tries[1] < 0.9 and clock.now <= 1.0 + 1e-9
    assert reader._raw().execute("PRAGMA busy_timeout").fetchone() == (900,)  # its reads wait 0.9 s, as asked
    assert reader.list_runs()["name"].tolist() == ["listed"]
    reader.close()


@pytest.mark.parametrize("kwargs", [{"timeout": float("nan")}, {"read_timeout": float("nan")}, {"timeout": -1}])
def test_a_timeout_that_is_not_0_or_more_seconds_is_refused(tmp_path, kwargs):
    """A NaN timeout made a read-only opening that met a lock wait forever (its deadline NaN: never passed)."""
    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    with pytest.raises(ValueError, match=rf"RunStore: {next(iter(kwargs))} must be 0 or more seconds, got"):
        RunStore(path, read_only=True, **kwargs)
    assert _names(tmp_path) == ["s.sqlite"]


SESSIONS = """
import importlib.util, os, sys, traceback
spec = importlib.util.spec_from_file_location("store", sys.argv[1])  # (store.py alone: no torch to import)
store_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(store_mod)
path, n, procs = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
go_r, go_w = os.pipe()
children = []
for _ in range(procs):  # (forked after the imports, done once: a second each on a loaded machine)
    pid = os.fork()
    if pid == 0:
        os.close(go_w)
        os.read(go_r, 1)  # (all processes start at once: when the parent closes the pipe)
        try:
            locked = 0
            for _ in range(n):
                try:
                    store = store_mod.RunStore(path, read_only=True, timeout=0)
                except store_mod.StoreLocked:
                    locked += 1
                    continue
                assert store.list_runs()["name"].tolist() == ["listed"]
                store.close()
            code = min(locked, 100)
        except BaseException:
            traceback.print_exc()
            code = 101
        os._exit(code)
    children.append(pid)
os.close(go_r)
os.close(go_w)
print(*[os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children], flush=True)
"""


@pytest.mark.skipif(os.name == "nt" or not hasattr(os, "fork"),
                    reason="SQLite's file locks (and the removal of -wal files) differ on Windows")
def test_read_only_sessions_of_several_processes_with_timeout_0_never_refuse_each_other(tmp_path):
    """The stress that found it, small (3 processes, 100 sessions each): before, dozens of them got StoreLocked."""
    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # (no thread pools to fork)
    done = subprocess.run([sys.executable, "-c", SESSIONS, store_mod.__file__, str(path), "100", "3"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0", "0"], done.stderr  # (StoreLocked per process; 101: an error)
    assert _names(tmp_path) == ["s.sqlite"]
