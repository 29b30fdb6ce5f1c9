"""Review of the run store's read-only close and owner records: a store opened through a symbolic link leaves no
-wal/-shm beside the file it points to; a read-only session never harms a writer that opens and closes the store
meanwhile (its rows, the file's integrity) nor another thread's connection; an owner records no raw machine id; a run
of another pid namespace is never declared dead for a boot id that differs (containers of one image on other
machines)."""
import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

import snnlab.experiments.store as store_mod
from snnlab.experiments import RunStore
from snnlab.experiments.store import process_gone, this_process
from store_cases import pretend_machine

posix_only = pytest.mark.skipif(os.name == "nt", reason="process liveness is not told on Windows")


def _store_with_a_run(path) -> str:
    store = RunStore(path)
    run = store.create_run({"seed": 0}, name="listed")
    store.set_status(run, "finished")
    store.close()
    return run


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.skipif(not hasattr(os, "symlink") or os.name == "nt", reason="symbolic links")
def test_a_read_only_close_through_a_symbolic_link_leaves_no_wal_files_beside_the_real_store(tmp_path):
    """SQLite puts the -wal and -shm beside the file a link points to: the close looked for them beside the link."""
    real, links = tmp_path / "real", tmp_path / "links"
    real.mkdir()
    links.mkdir()
    _store_with_a_run(real / "s.sqlite")
    (links / "s.sqlite").symlink_to(real / "s.sqlite")
    before = (real / "s.sqlite").read_bytes()
    reader = RunStore(links / "s.sqlite", read_only=True)
    assert reader.list_runs()["name"].tolist() == ["listed"]
    assert {"s.sqlite-wal", "s.sqlite-shm"} <= set(_names(real))  # (reading made them, there)
    reader.close()
    assert _names(real) == ["s.sqlite"] and _names(links) == ["s.sqlite"]
    assert (real / "s.sqlite").read_bytes() == before


WRITER = """
import sqlite3, sys
path, n = sys.argv[1], int(sys.argv[2])
for i in range(n):  # (a writer that opens and closes the store: each close may be the last connection's)
    con = sqlite3.connect(path, timeout=30, isolation_level=None)
    con.execute("INSERT INTO metrics (run_id, step, epoch, kind, name, value, time) VALUES ('r', ?, 0, 'train', 'loss', 1, 0)",
                (i,))
    con.close()
print("done", flush=True)
"""


def test_read_only_sessions_while_a_writer_opens_and_closes_the_store_lose_nothing(tmp_path):
    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "150"], stdout=subprocess.PIPE, text=True)
    sessions = 0
    try:
        while writer.poll() is None or sessions < 5:
            reader = RunStore(path, read_only=True)
            assert reader.list_runs()["name"].tolist() == ["listed"]
            reader.close()
            sessions += 1
        out, _ = writer.communicate(timeout=120)
    finally:
        writer.kill()
    assert writer.returncode == 0 and out.strip() == "done"
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT count(*), count(DISTINCT step) FROM metrics").fetchone() == (150, 150)
    con.close()
    assert _names(tmp_path) == ["s.sqlite"]


def test_a_thread_closing_a_shared_read_only_store_leaves_another_threads_connection_working(tmp_path):
    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    reader = RunStore(path, read_only=True)
    assert len(reader.list_runs()) == 1  # (this thread's connection)
    opened, closed, seen = threading.Event(), threading.Event(), []

    def other():
        with reader.snapshot():  # (a read transaction held open while the main thread closes its connection)
            seen.append(len(reader.list_runs()))
            opened.set()
            closed.wait(60)
            seen.append(len(reader.list_runs()))
        writer = RunStore(path)  # (and a write meanwhile, from this thread's own store)
        writer.create_run({}, name="later")
        writer.close()
        seen.append(len(reader.list_runs()))
        reader.close()

    thread = threading.Thread(target=other)
    thread.start()
    assert opened.wait(60)
    reader.close()
    assert {"s.sqlite-wal", "s.sqlite-shm"} <= set(_names(tmp_path))  # (the other thread's connection uses them)
    closed.set()
    thread.join(60)
    assert seen == [1, 1, 2]
    con = sqlite3.connect(path)  # (the -wal holds the write, never checkpointed by a read-only close: left as it is)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    con.close()
    assert _names(tmp_path) == ["s.sqlite"]  # (that connection was the last: SQLite checkpointed and removed them)






def test_an_owner_records_a_hash_of_the_machine_id_never_the_id(monkeypatch):
    """``man machine-id``: the id is confidential; a store's owners are shared and copied with it."""
    raw = "0123456789abcdef0123456789abcdef"
    monkeypatch.setattr(store_mod, "_read_id", lambda *paths: raw if "machine-id" in paths[0] else "boot-1")
    monkeypatch.setattr(store_mod, "_MACHINE", {})
    me = this_process()
    assert me["machine"] and raw not in json.dumps(me)
    assert len(me["machine"]) == 32 and int(me["machine"], 16) >= 0
    monkeypatch.setattr(store_mod, "_MACHINE", {})
    assert this_process()["machine"] == me["machine"]  # (stable: the same machine reads the same)
    monkeypatch.setattr(store_mod, "_read_id", lambda *paths: "fedcba9876543210fedcba9876543210"
                        if "machine-id" in paths[0] else "boot-1")
    monkeypatch.setattr(store_mod, "_MACHINE", {})
    assert this_process()["machine"] != me["machine"]  # (another machine: another hash)
    monkeypatch.setattr(store_mod, "_read_id", lambda *paths: None)
    monkeypatch.setattr(store_mod, "_MACHINE", {})
    assert this_process()["machine"] is None


@posix_only
def test_a_run_of_another_pid_namespace_is_never_declared_dead_for_another_boot_id(monkeypatch):
    """Containers of one image (a machine id baked into it) of one host name on two machines: the boot ids differ; the
    pid namespace, checked before, keeps the other machine's live runs "running"."""
    pretend_machine(monkeypatch, "baked-into-the-image", "boot-here")
    me = this_process()
    theirs = {**me, "boot": "boot-of-the-other-machine", "pidns": "pid:[4026532999]"}
    if me["pidns"] is None:
        pytest.skip("no pid namespace to tell")
    assert not process_gone(theirs)
    assert process_gone({**theirs, "pidns": me["pidns"]})  # (this namespace: a restart of this machine)
