"""Run-store leftovers (store probe): a listing that changed an old store's journal mode, `runs compare` dropping runs
without a word, a resume into a fresh store losing the run's name, a refused resume rewriting the stored config, a
sweep rerun into another store leaving its reused runs out, and store retries that stalled training for the store's
whole lock timeout."""
import os
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from snnlab.cli import main
from snnlab.experiments import RunStore, sweep
from snnlab.training import ExperimentConfig, Trainer, records
from snnlab.training.checkpoint import load_checkpoint, save_checkpoint

TINY = dict(hidden=[8], num_steps=5, batch_size=16, epochs=1, max_batches_per_epoch=2, eval_max_batches=1,
            device="cpu")


def _journal_mode(path) -> str:
    con = sqlite3.connect(path)
    try:
        return con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()


def test_runs_leaves_an_old_stores_journal_mode_and_files_as_they_were(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    store = RunStore(path)
    run = store.create_run({"seed": 0}, name="old")
    store.set_summary(run, {"accuracy": 0.5})
    store.set_status(run, "finished")
    store.close()
    del store
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=DELETE")  # as a store of an older snnlab (or copied without its -wal)
    con.close()
    for argv in (["runs"], ["runs", "show", run], ["runs", "compare"]):
        assert main([*argv, "--store", str(path)]) == 0
        assert "old" in capsys.readouterr().out
    assert _journal_mode(path) == "delete" and sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]


def test_runs_compare_says_which_runs_it_left_out_and_why(tmp_path, capsys):
    path = str(tmp_path / "s.sqlite")
    store = RunStore(path)
    done = store.create_run({"seed": 0}, name="done")
    store.set_summary(done, {"accuracy": 0.5, "spikes_per_sample": 3.0})
    store.set_status(done, "finished")
    broke = store.create_run({"seed": 1}, name="broke")
    store.set_status(broke, "failed", "boom")
    going = store.create_run({"seed": 2}, name="going")
    store.set_status(going, "running")
    assert main(["runs", "compare", done, broke, going, "--store", path]) == 0
    out, err = capsys.readouterr()
    assert "done" in out and "broke" not in out
    assert f"left out 2 run(s) without results: {broke} (failed), {going} (running)" in err
    assert main(["runs", "compare", "--store", path]) == 0
    out, err = capsys.readouterr()
    assert "done" in out and "2 run(s) without results left out: 1 failed, 1 running" in err
    assert main(["runs", "compare", "--store", path, "--status", "failed"]) == 0
    assert "1 run(s) without results left out: 1 failed;" in capsys.readouterr().err
    assert main(["runs", "compare", broke, "--store", path]) == 1  # none of the runs asked for can be compared
    out, err = capsys.readouterr()
    assert f"no finished runs with results among {broke}" in out and f"{broke} (failed)" in err


def test_a_resume_into_a_fresh_store_keeps_the_runs_name(tmp_path):
    run_dir = tmp_path / "run"
    first = Trainer(ExperimentConfig(**TINY), run_dir=run_dir, store=RunStore(tmp_path / "a.sqlite"),
                    progress=False, name="my run")
    first.run()
    fresh = RunStore(tmp_path / "b.sqlite")
    resumed = Trainer.resume_from(run_dir, ExperimentConfig(**{**TINY, "epochs": 2}), store=fresh, progress=False)
    assert resumed.name == "my run"
    resumed.run()
    assert fresh.get_run(first.run_id)["name"] == "my run"
    assert fresh.list_runs()["name"].tolist() == ["my run"]
    # a checkpoint written before names were saved: the run's label, as before
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    del ckpt["name"]
    save_checkpoint(tmp_path / "old.pt", ckpt)
    old = RunStore(tmp_path / "c.sqlite")
    Trainer.resume_from(tmp_path / "old.pt", store=old, run_dir=tmp_path / "again", progress=False).run()
    assert old.get_run(first.run_id)["name"] == first.label


def test_a_resume_refused_or_never_run_leaves_the_stored_run_as_it_was(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    run_dir = tmp_path / "run"
    first = Trainer(ExperimentConfig(**TINY), run_dir=run_dir, store=store, progress=False)
    first.run()
    before = store.get_run(first.run_id)
    n_metrics = len(store.metrics(first.run_id))
    late = Trainer.resume_from(run_dir, ExperimentConfig(**{**TINY, "epochs": 5}), store=store, progress=False)
    never = Trainer.resume_from(run_dir, ExperimentConfig(**{**TINY, "epochs": 7}), store=store, progress=False)
    assert never.epoch == 1
    after = store.get_run(first.run_id)
    assert (after["config"], after["status"]) == (before["config"], "finished")  # built, not run: nothing changed
    other = Trainer.resume_from(run_dir, ExperimentConfig(**{**TINY, "epochs": 2}), store=store, progress=False)
    other.run()  # trains on, and saves a later checkpoint
    with pytest.raises(FileExistsError, match="later save"):
        late.run()  # refused: the store keeps the config of the run that trained
    run = store.get_run(first.run_id)
    assert run["config"]["epochs"] == 2 and run["status"] == "finished"
    assert len(store.metrics(first.run_id)) > n_metrics


def test_a_sweep_rerun_into_another_store_registers_the_finished_runs_it_reuses(tmp_path):
    base = ExperimentConfig(**TINY)
    root = tmp_path / "root"
    with ThreadPoolExecutor(1) as pool:
        first = sweep(base, {"seed": [0, 1]}, executor=pool, store_path=tmp_path / "a.sqlite", run_root=root,
                      progress=False)
    with ThreadPoolExecutor(1) as pool:
        again = sweep(base, {"seed": [0, 1]}, executor=pool, store_path=tmp_path / "b.sqlite", run_root=root,
                      progress=False)
    assert again.reused == (0, 1)
    a, b = RunStore(tmp_path / "a.sqlite"), RunStore(tmp_path / "b.sqlite")
    cols = ["run_id", "name", "status"]
    assert b.list_runs()[cols].values.tolist() == a.list_runs()[cols].values.tolist()
    assert b.list_runs()["run_id"].tolist() == first.table["run_id"].tolist()
    for run_id in first.table["run_id"]:
        got, want = b.get_run(run_id), a.get_run(run_id)
        assert got["summary"] == want["summary"] and got["config"] == want["config"]
        assert got["checkpoint"] == want["checkpoint"]
    with ThreadPoolExecutor(1) as pool:  # a third run into the same store adds nothing twice
        sweep(base, {"seed": [0, 1]}, executor=pool, store_path=tmp_path / "b.sqlite", run_root=root, progress=False)
    assert len(b.list_runs()) == 2


class LockedStore(RunStore):
    """A store whose metric writes fail as a locked one's do while ``locked``, recording how long each would wait."""

    locked = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.waits: list[float] = []

    def log_metrics(self, *args, **kwargs):
        self.waits.append(self._write_wait())
        if self.locked:
            raise sqlite3.OperationalError("database is locked")
        return super().log_metrics(*args, **kwargs)


def test_retries_of_store_writes_wait_briefly_and_the_last_one_waits_the_stores_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "STORE_RETRY_S", 0.0)
    store = LockedStore(tmp_path / "s.sqlite", timeout=7.0)
    tr = Trainer(ExperimentConfig(**{**TINY, "max_batches_per_epoch": 3}), store=store, progress=False)
    with pytest.warns(RuntimeWarning, match="writes to the run store failed"):
        tr.run()
    first, *retries, last = store.waits
    assert first == 7.0 and last == 7.0  # the first try, and the run's last flush
    assert len(retries) >= 3 and set(retries) == {records.STORE_RETRY_WAIT_S}
    assert store._write_wait() == 7.0


def test_write_timeout_is_this_threads_only(tmp_path):
    store = RunStore(tmp_path / "s.sqlite", timeout=5.0)
    seen = []
    with store.write_timeout(0.25):
        thread = threading.Thread(target=lambda: seen.append(store._write_wait()))
        thread.start()
        thread.join()
        run = store.create_run({}, name="short wait")
        seen.append(store._write_wait())
    assert seen == [5.0, 0.25] and store._write_wait() == 5.0 and store.get_run(run)["name"] == "short wait"
    with pytest.raises(ValueError, match="write_timeout"):
        with store.write_timeout(-1):
            pass


def test_a_retry_on_a_locked_store_gives_up_after_the_short_wait(tmp_path, monkeypatch):
    """The real lock: a retry with a short wait raises StoreLocked saying how long it waited."""
    from snnlab.experiments.store import StoreLocked

    path = tmp_path / "s.sqlite"
    store = RunStore(path, timeout=30.0)
    run = store.create_run({})
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with store.write_timeout(0.05), pytest.raises(StoreLocked, match=r"waited 0.05 s"):
            store.log_metrics(run, step=1, metrics={"loss": 1.0})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.log_metrics(run, step=1, metrics={"loss": 1.0})
    assert len(store.metrics(run)) == 1 and os.path.exists(path)


def _old_store(path, version: int = 0) -> str:
    """A store as an older snnlab left it: DELETE journal, no run_owners table, ``user_version`` ``version``; one
    finished run with a summary and a metric. Returns the run's id."""
    store = RunStore(path)
    run = store.create_run({"seed": 0}, name="old")
    store.log_metrics(run, step=1, metrics={"loss": 0.5})
    store.set_summary(run, {"accuracy": 0.5})
    store.set_status(run, "finished")
    store.close()
    del store
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("DROP TABLE run_owners")
    con.execute(f"PRAGMA user_version={version}")
    con.execute("PRAGMA journal_mode=DELETE")
    con.close()
    return run


def _layout(path) -> tuple[str, int, bool]:
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        return (con.execute("PRAGMA journal_mode").fetchone()[0], con.execute("PRAGMA user_version").fetchone()[0],
                "run_owners" in tables)
    finally:
        con.close()


@pytest.mark.parametrize("follow_file", [False, True])
def test_a_read_write_store_that_only_reads_leaves_an_old_store_as_it_was_until_its_first_write(tmp_path,
                                                                                               follow_file):
    """A notebook's or the dashboard's RunStore(path) switched an old store to WAL (and added its tables) when opened;
    now the first write does it."""
    path = tmp_path / "s.sqlite"
    run = _old_store(path)
    store = RunStore(path, follow_file=follow_file)
    assert not store.read_only
    with store.snapshot():
        assert store.list_runs()["status"].tolist() == ["finished"] and store.summaries()["accuracy"].tolist() == [0.5]
    assert store.get_run(run)["owner"] is None and len(store.metrics(run)) == 1 and store.metric_series(run)
    assert _layout(path) == ("delete", 0, False) and sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]
    thread = threading.Thread(target=store.list_runs)  # (another thread's connection: read-only too)
    thread.start()
    thread.join()
    assert _layout(path) == ("delete", 0, False)
    store.set_status(run, "running")  # the first write: WAL, the added table, the version
    assert _layout(path) == ("wal", 1, True) and store.get_run(run)["owner"]["pid"] == os.getpid()
    other = threading.Thread(target=lambda: store.set_status(run, "finished"))  # (its own connection: writes too)
    other.start()
    other.join()
    assert store.get_run(run)["status"] == "finished"


def test_a_new_store_gets_its_tables_and_wal_when_created(tmp_path):
    path = tmp_path / "new.sqlite"
    RunStore(path).close()
    assert _layout(path) == ("wal", 1, True)
    assert RunStore(path, read_only=True).list_runs().empty


def test_a_reader_of_an_old_store_sees_the_owners_a_writer_adds_later(tmp_path):
    """A long-lived reader (the dashboard on a read-only folder, a notebook) opened before the first writer of this
    snnlab added the owners table: a run whose process is gone shows "died" in it too."""
    import json
    import subprocess
    import sys

    from snnlab.experiments.store import DIED, this_process

    path = tmp_path / "s.sqlite"
    run = _old_store(path)
    readers = [RunStore(path, read_only=True), RunStore(path)]
    assert [r.list_runs()["status"].tolist() for r in readers] == [["finished"]] * 2
    writer = RunStore(path)
    writer.set_status(run, "running")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # (reaped: no process has its id now)
    con = sqlite3.connect(path)
    with con:
        con.execute("UPDATE run_owners SET owner=? WHERE run_id=?", (json.dumps({**this_process(), "pid": child.pid}),
                                                                      run))
    con.close()
    for reader in readers:
        assert reader.list_runs()["status"].tolist() == [DIED] and reader.get_run(run)["status"] == DIED
        assert reader.summaries()["status"].tolist() == [DIED]


def _store_with_a_run(path) -> str:
    """A WAL store with one finished run, closed by its writer (which removed its -wal and -shm)."""
    store = RunStore(path)
    run = store.create_run({"seed": 0}, name="listed")
    store.set_summary(run, {"accuracy": 0.5})
    store.set_status(run, "finished")
    store.close()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    return run


def test_a_read_only_session_leaves_no_wal_files_beside_a_store_that_had_none(tmp_path, capsys):
    """`snnlab runs` (a mode=ro connection) made an empty -wal and -shm that stayed after it closed: SQLite removes them
    only at the close of the last connection, and a read-only one cannot."""
    path = tmp_path / "s.sqlite"
    run = _store_with_a_run(path)
    before = path.read_bytes()
    reader = RunStore(path, read_only=True)
    assert reader.list_runs()["name"].tolist() == ["listed"] and reader.get_run(run)["summary"] == {"accuracy": 0.5}
    assert len(reader.summaries()) == 1
    assert {"s.sqlite-wal", "s.sqlite-shm"} <= {p.name for p in tmp_path.iterdir()}  # (reading made them)
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"] and path.read_bytes() == before
    for argv in (["runs"], ["runs", "show", run], ["runs", "compare"]):
        assert main([*argv, "--store", str(path)]) == 0
        assert "listed" in capsys.readouterr().out
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"], argv
    assert RunStore(path, read_only=True).list_runs()["name"].tolist() == ["listed"]  # (the store still reads)


HOLDS_THE_STORE = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)  # (a writer's connection, as RunStore's: no snnlab import)
con.execute("SELECT count(*) FROM runs").fetchone()  # (open, with the WAL and its index)
print("open", flush=True)
sys.stdin.readline()
con.execute("INSERT INTO runs (run_id, name, status, config, created, updated) VALUES ('b', 'b', 'created', '{}', 1, 1)")
print(con.execute("SELECT count(*) FROM runs").fetchone()[0], flush=True)
con.close()
"""


def test_a_read_only_close_leaves_the_wal_files_that_another_connection_uses(tmp_path):
    """Removing them under another connection (another process's, or another of this process) would corrupt the
    store: they stay, and that connection goes on reading and writing."""
    import subprocess
    import sys

    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    child = subprocess.Popen([sys.executable, "-c", HOLDS_THE_STORE, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "open"
        reader = RunStore(path, read_only=True)
        assert len(reader.list_runs()) == 1
        reader.close()
        assert {"s.sqlite-wal", "s.sqlite-shm"} <= {p.name for p in tmp_path.iterdir()}
        out, _ = child.communicate("go\n", timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0 and out.strip() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]  # (the writer closed last: SQLite removed them)
    # another connection of this process
    other = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    assert other.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    reader = RunStore(path, read_only=True)
    assert len(reader.list_runs()) == 2
    reader.close()
    assert {"s.sqlite-wal", "s.sqlite-shm"} <= {p.name for p in tmp_path.iterdir()}
    assert other.execute("SELECT count(*) FROM runs").fetchone() == (2,)
    other.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()


def test_a_read_only_session_never_checkpoints_a_wal_with_commits_into_the_store(tmp_path):
    """A -wal that a writer left with commits in it (it ended without closing) is read, and left as it is with the
    store file unchanged: removing it would need a checkpoint, a write into the store."""
    import subprocess
    import sys

    path = tmp_path / "s.sqlite"
    _store_with_a_run(path)
    crash = ("import os, sqlite3, sys; con = sqlite3.connect(sys.argv[1], isolation_level=None); "
             "con.execute(\"INSERT INTO runs (run_id, name, status, config, created, updated) "
             "VALUES ('late', 'late', 'created', '{}', 1, 1)\"); os._exit(0)")
    subprocess.run([sys.executable, "-c", crash, str(path)], check=True, timeout=120)
    before = path.read_bytes()
    wal = (tmp_path / "s.sqlite-wal").read_bytes()
    assert wal
    reader = RunStore(path, read_only=True)
    assert sorted(reader.list_runs()["name"]) == ["late", "listed"]
    reader.close()
    assert path.read_bytes() == before and (tmp_path / "s.sqlite-wal").read_bytes() == wal
