"""The SQLite run store: round trips, errors, and one writer with concurrent readers."""
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from snnlab.experiments import RunStore


def test_round_trip_of_runs_configs_metrics_and_checkpoints(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    a = store.create_run({"neuron": "ttfs", "hidden": [64]}, name="a")
    b = store.create_run({"neuron": "multi_spike"})
    store.log_metrics(a, step=1, epoch=0, metrics={"loss": 2.0, "acc": 0.1, "nested": {"x": 3}})
    store.log_metrics(a, step=2, epoch=0, metrics={"loss": float("nan"), "note": "text is skipped"})
    store.log_metrics(a, step=2, epoch=0, metrics={"accuracy": 0.5}, kind="eval")
    store.set_status(a, "finished")
    store.set_checkpoint(a, tmp_path / "ckpt.pt")
    store.set_summary(a, {"accuracy": 0.5, "spikes_per_layer": {"1": 12.0}})
    runs = store.list_runs()
    assert runs["run_id"].tolist() == [a, b] and runs["status"].tolist() == ["finished", "created"]
    assert store.get_config(a) == {"neuron": "ttfs", "hidden": [64]}
    assert store.get_run(a)["checkpoint"].endswith("ckpt.pt")
    m = store.metrics(a)
    assert set(m["name"]) == {"loss", "acc", "nested/x", "accuracy"}
    assert m[(m.name == "loss") & (m.step == 2)]["value"].isna().all()  # NaN kept as missing
    assert store.metrics(a, kind="eval")["value"].tolist() == [0.5]
    assert len(store.metrics(a, since_step=1)) == 2
    summ = store.summaries()
    assert summ.loc[0, "config.neuron"] == "ttfs" and summ.loc[0, "spikes_per_layer/1"] == 12.0


def test_errors(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="status"):
        store.set_status(store.create_run({}), "exploded")
    with pytest.raises(KeyError):
        store.get_run("nope")
    with pytest.raises(KeyError):
        store.set_status("nope", "failed")
    with pytest.raises(ValueError, match="folder"):
        RunStore(tmp_path)


WRITER = """
import sys
from snnlab.experiments import RunStore
store = RunStore(sys.argv[1])
run = store.create_run({"writer": True}, name="w")
for step in range(300):
    store.log_metrics(run, step=step, epoch=0, metrics={"loss": 1.0 / (step + 1)})
store.set_status(run, "finished")
"""


def test_one_writer_process_and_concurrent_reader_threads(tmp_path):
    path = tmp_path / "shared.sqlite"
    RunStore(path)  # create the schema
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    seen, errors = {0: [], 1: []}, []

    def reader(i):
        store = RunStore(path)
        try:
            while proc.poll() is None:
                seen[i].append(len(store.metrics()))
            seen[i].append(len(store.metrics()))
        except Exception as exc:  # pragma: no cover - the failure we test for
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    assert proc.wait(timeout=120) == 0
    for t in threads:
        t.join(timeout=60)
    assert not errors
    for counts in seen.values():  # each reader only ever sees committed, growing data
        assert counts == sorted(counts) and counts[-1] == 300
    final = RunStore(path)
    assert len(final.metrics()) == 300 and final.list_runs()["status"].tolist() == ["finished"]


def test_the_store_has_a_schema_version_and_refuses_foreign_files(tmp_path):
    import sqlite3

    from snnlab.experiments import StoreError
    from snnlab.experiments.store import SCHEMA_VERSION

    store = RunStore(tmp_path / "new.sqlite")
    assert store._raw().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    unversioned = tmp_path / "unversioned.sqlite"  # a store written before versioning: same layout, adopted
    RunStore(unversioned)._raw().execute("PRAGMA user_version=0")
    assert RunStore(unversioned).list_runs().empty
    cases = {"old": "CREATE TABLE runs (run_id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL)",
             "foreign": "CREATE TABLE users (id INTEGER)", "newer": f"PRAGMA user_version={SCHEMA_VERSION + 1}"}
    messages = {"old": "lacks column", "foreign": "another program", "newer": "newer than this snnlab"}
    for name, sql in cases.items():
        con = sqlite3.connect(tmp_path / f"{name}.sqlite")
        con.execute(sql)
        con.commit()
        con.close()
        with pytest.raises(StoreError, match=messages[name]):
            RunStore(tmp_path / f"{name}.sqlite")
    (tmp_path / "text.sqlite").write_text("not a database\n")
    with pytest.raises(StoreError, match="not a usable SQLite"):
        RunStore(tmp_path / "text.sqlite")
    con = sqlite3.connect(tmp_path / "foreign.sqlite")  # nothing was added to the other program's file
    assert [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["users"]


def test_resume_helpers_and_absolute_checkpoint_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = RunStore(tmp_path / "s.sqlite")
    run = store.create_run({"epochs": 1})
    for step in (1, 2, 3, 4):
        store.log_metrics(run, step=step, metrics={"loss": 1.0})
    assert store.delete_metrics_after(run, 2) == 2 and store.metrics(run)["step"].tolist() == [1, 2]
    store.set_config(run, {"epochs": 3})
    assert store.get_config(run) == {"epochs": 3}
    with pytest.raises(KeyError):
        store.set_config("nope", {})
    store.set_checkpoint(run, "run/checkpoint.pt")
    assert store.get_run(run)["checkpoint"] == str(tmp_path / "run" / "checkpoint.pt")


def test_workers_opening_a_new_store_at_once_all_get_it(tmp_path):
    """SQLite refuses a switch to write-ahead logging at once ("database is locked") while another connection
    switches the same new file: a sweep's workers opening one store used to fail their runs now and then."""
    import threading

    failures = []
    for trial in range(60):
        path = tmp_path / f"s{trial}.sqlite"
        start = threading.Barrier(6)

        def open_store():
            start.wait()
            try:
                RunStore(path).create_run({"seed": trial}, "r")
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                failures.append(repr(exc))

        threads = [threading.Thread(target=open_store) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
    assert len(RunStore(tmp_path / "s59.sqlite").list_runs()) == 6


READER_HOLDING_A_SNAPSHOT = """
import sys
from snnlab.experiments import RunStore
store = RunStore(sys.argv[1])
with store.snapshot():
    print(len(store.metrics()), flush=True)  # the read transaction is open from here
    sys.stdin.readline()  # the writer has written meanwhile
    print(len(store.metrics()), flush=True)  # the same snapshot: the write is not seen yet
print(len(store.metrics()), flush=True)
"""


def test_a_reader_holding_a_read_transaction_does_not_block_a_writer(tmp_path):
    """Scale probe: reads ran in BEGIN IMMEDIATE (a write lock), so a reader pulling a big run made a training
    run's log_metrics wait (p99 0.4 ms -> 338 ms). Reads are deferred now: in WAL mode they take no write lock."""
    import time

    path = tmp_path / "s.sqlite"
    writer = RunStore(path, timeout=3.0)
    run = writer.create_run({}, name="w")
    writer.log_metrics(run, step=1, metrics={"loss": 1.0})
    reader = subprocess.Popen([sys.executable, "-c", READER_HOLDING_A_SNAPSHOT, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert reader.stdout.readline().strip() == "1"  # the reader now holds its read transaction
        start = time.monotonic()
        for step in range(2, 12):
            writer.log_metrics(run, step=step, metrics={"loss": 1.0})
        writer.set_status(run, "finished")
        assert time.monotonic() - start < 2.5  # generous: a write lock held by the reader would take >= 3 s, then fail
        reader.stdin.write("go\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "1"  # one snapshot: several reads agree
        assert reader.stdout.readline().strip() == "11"
        assert reader.wait(timeout=60) == 0
    finally:
        reader.kill() if reader.poll() is None else None


def test_readers_do_not_wait_for_a_writer_and_a_locked_store_is_a_named_error_within_the_read_timeout(tmp_path):
    import sqlite3
    import time

    from snnlab.experiments.store import StoreLocked

    path = tmp_path / "s.sqlite"
    store = RunStore(path, read_timeout=0.5)
    store.create_run({}, name="a")
    holder = sqlite3.connect(path, isolation_level=None)  # another writer in the middle of a transaction
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO runs VALUES ('x','x','created',NULL,'{}',0,0,NULL,NULL)")
    start = time.monotonic()
    assert store.list_runs()["name"].tolist() == ["a"]  # the last commit, at once
    other = RunStore(path, read_only=True)
    assert other.list_runs()["name"].tolist() == ["a"]
    assert time.monotonic() - start < 5
    holder.execute("ROLLBACK")
    store.close()
    other.close()
    # a lock outside WAL's rules (exclusive locking mode) does stop readers: they give up after read_timeout
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("SELECT count(*) FROM runs").fetchone()
    try:
        for read in (store.list_runs, lambda: RunStore(path, read_only=True, read_timeout=0.5)):
            start = time.monotonic()
            with pytest.raises(StoreLocked, match="locked by another process"):
                read()
            assert time.monotonic() - start < 5  # the read timeout (0.5 s), not the write timeout (30 s)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.list_runs()["name"].tolist() == ["a"]


@pytest.fixture
def frozen_folder(tmp_path):
    """A folder that cannot be written (``chattr +i`` as root, where permissions do not bind; else chmod)."""
    import os
    import shutil

    folder = tmp_path / "shared"
    folder.mkdir()
    yield_paths = []

    def freeze():
        if os.geteuid() == 0:
            if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)],
                                                                capture_output=True).returncode != 0:
                pytest.skip("cannot make a folder read-only as root here (chattr +i)")
            yield_paths.append("chattr")
        else:
            for f in folder.iterdir():
                f.chmod(0o444)
            folder.chmod(0o555)
            yield_paths.append("chmod")

    yield folder, freeze
    if "chattr" in yield_paths:
        subprocess.run(["chattr", "-i", str(folder)], check=False)
    elif "chmod" in yield_paths:
        folder.chmod(0o755)
        for f in folder.iterdir():
            f.chmod(0o644)


def test_a_store_in_a_read_only_folder_is_read_and_a_write_says_read_only(frozen_folder):
    """Scale probe: such a store failed with "... is not a usable SQLite run store (unable to open database
    file)", which reads like a damaged file."""
    from snnlab.experiments.store import StoreReadOnly

    folder, freeze = frozen_folder
    path = folder / "runs.sqlite"
    store = RunStore(path)
    run = store.create_run({"seed": 1}, name="kept")
    store.log_metrics(run, step=1, metrics={"loss": 0.5})
    store.set_summary(run, {"accuracy": 0.9})
    store.close()
    freeze()
    store = RunStore(path)
    assert store.read_only
    assert store.list_runs()["name"].tolist() == ["kept"] and store.metrics(run)["value"].tolist() == [0.5]
    assert store.summaries()["accuracy"].tolist() == [0.9] and store.get_config(run) == {"seed": 1}
    with pytest.raises(StoreReadOnly, match="read-only"):
        store.create_run({})
    with pytest.raises(StoreReadOnly, match="read-only"):
        RunStore(path, read_only=False)
    with pytest.raises(StoreReadOnly, match="read-only"):
        RunStore(folder / "new.sqlite")
    assert RunStore(path, read_only=True).list_runs()["name"].tolist() == ["kept"]
    assert sorted(p.name for p in folder.iterdir()) == ["runs.sqlite"]  # nothing was written


def test_read_only_mode_never_writes_or_creates(tmp_path):
    from snnlab.experiments.store import StoreReadOnly

    with pytest.raises(FileNotFoundError):
        RunStore(tmp_path / "missing.sqlite", read_only=True)
    assert not (tmp_path / "missing.sqlite").exists()
    RunStore(tmp_path / "s.sqlite").create_run({}, name="a")
    store = RunStore(tmp_path / "s.sqlite", read_only=True)
    with pytest.raises(StoreReadOnly, match="read-only"):
        store.set_status(store.list_runs()["run_id"][0], "failed")
    assert store.list_runs()["status"].tolist() == ["created"]


def test_metric_series_gives_each_series_as_arrays_in_step_then_logging_order(tmp_path):
    import numpy as np

    store = RunStore(tmp_path / "s.sqlite")
    a, b = store.create_run({}, name="a"), store.create_run({}, name="b")
    for step, loss in [(3, 0.3), (1, 0.1), (2, float("nan")), (3, 0.33)]:  # out of order; step 3 twice (epoch end)
        store.log_metrics(a, step=step, metrics={"loss": loss, "lr": 0.01})
    store.log_metrics(a, step=3, metrics={"loss": 0.9}, kind="eval")
    store.log_metrics(b, step=5, metrics={"loss": 0.5})
    series = store.metric_series([a, b, "no-such-run"], names=["loss"])
    assert set(series) == {(a, "train", "loss"), (a, "eval", "loss"), (b, "train", "loss")}  # no lr
    steps, values = series[(a, "train", "loss")]
    assert steps.dtype == np.int64 and values.dtype == np.float64
    assert steps.tolist() == [1, 2, 3, 3] and np.isnan(values[1])  # a missing value is NaN
    assert values[[0, 2, 3]].tolist() == [0.1, 0.3, 0.33]  # the rows of one step in the order they were logged
    table = store.metrics([a, b], names=["loss"])  # the same rows, as a table
    assert set(table["name"]) == {"loss"} and table[(table.run_id == a) & (table.kind == "train")]["value"].tolist()[2:] \
        == [0.3, 0.33]
    assert list(store.metric_series(a, kind="eval")) == [(a, "eval", "loss")]
    assert store.metric_series([]) == {}
    with pytest.raises(TypeError, match="names must be a list"):
        store.metric_series(a, names="loss")


def _sqlite_error(message, code):
    import sqlite3

    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    return exc


def _read_only_opens_fail(monkeypatch, error):
    """``sqlite3.connect`` whose ``mode=ro`` connections (not the ``immutable=1`` fallback) raise ``error`` at their
    first statement, as SQLite does where a WAL file's index (-shm) cannot be made."""
    import sqlite3

    real_connect = sqlite3.connect

    class Failing:
        def execute(self, *args):
            raise error

        def close(self):
            pass

    def connect(database, *args, **kwargs):
        if "mode=ro" in str(database) and "immutable=1" not in str(database):
            return Failing()
        return real_connect(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)


def test_store_errors_are_told_apart_by_sqlite_error_codes_not_by_their_wording(tmp_path):
    import sqlite3

    from snnlab.experiments.store import StoreLocked, StoreReadOnly

    store = RunStore(tmp_path / "s.sqlite")
    with pytest.raises(sqlite3.OperationalError) as info:
        store._raw().execute("SELECT * FROM locked_readonly_table")  # "no such table: locked...": not a lock
    assert store._translate(info.value, write=False) is info.value
    assert isinstance(store._translate(_sqlite_error("busy in other words", sqlite3.SQLITE_BUSY), False), StoreLocked)
    extended = sqlite3.SQLITE_READONLY | (4 << 8)  # SQLITE_READONLY_DBMOVED: an extended code of the same kind
    assert isinstance(store._translate(_sqlite_error("cannot write", extended), True), StoreReadOnly)


def test_a_read_only_store_without_a_wal_index_falls_back_to_immutable_by_error_code(tmp_path, monkeypatch):
    """The fallback matched the text "unable to open": a differently worded message (another SQLite) failed."""
    import sqlite3

    writer = RunStore(tmp_path / "s.sqlite")
    writer.create_run({}, name="kept")
    writer.close()  # (the last connection writes the WAL into the file: an immutable reader sees it)
    # what a mode=ro connection gives where the -shm file cannot be created
    _read_only_opens_fail(monkeypatch, _sqlite_error("cannot open the shared-memory index (reworded)",
                                                     sqlite3.SQLITE_CANTOPEN))
    store = RunStore(tmp_path / "s.sqlite", read_only=True)
    assert store._immutable and store.list_runs()["name"].tolist() == ["kept"]


@pytest.mark.parametrize("extended", [6, 5, 3])  # SQLITE_READONLY_DIRECTORY, _CANTINIT; _ROLLBACK: no fallback
def test_a_wal_store_in_a_folder_that_cannot_be_written_is_read_as_it_is(tmp_path, monkeypatch, extended):
    """SQLite 3.40 opens a WAL file without its -shm in such a folder with SQLITE_READONLY_DIRECTORY (not
    "unable to open"): `snnlab runs` and the dashboard failed with "is read-only ... runs cannot be recorded". A hot
    journal that cannot be rolled back is not read past (the file may hold half a write)."""
    import sqlite3

    writer = RunStore(tmp_path / "s.sqlite")
    writer.create_run({}, name="kept")
    writer.close()
    # what a mode=ro connection gives on a WAL file whose folder cannot be written
    _read_only_opens_fail(monkeypatch, _sqlite_error("attempt to write a readonly database",
                                                     sqlite3.SQLITE_READONLY | (extended << 8)))
    if extended == 3:
        with pytest.raises(sqlite3.OperationalError, match="read-only"):
            RunStore(tmp_path / "s.sqlite", read_only=True)
        return
    store = RunStore(tmp_path / "s.sqlite", read_only=True)
    assert store._immutable and store.list_runs()["name"].tolist() == ["kept"]


def test_a_long_lived_store_follows_its_file_when_it_is_replaced(tmp_path):
    """Review: the dashboard's shared store kept reading (and writing into) the old file after `rm runs.sqlite*` and a
    new run recreated it; its connections now reopen on the file at the path."""
    import glob
    import os

    path = tmp_path / "runs.sqlite"
    old = RunStore(path, follow_file=True)
    old.create_run({}, name="old-run")
    assert old.list_runs()["name"].tolist() == ["old-run"]
    for f in glob.glob(str(path) + "*"):
        os.remove(f)
    RunStore(path).create_run({}, name="cli-run")
    assert old.list_runs()["name"].tolist() == ["cli-run"]
    old.create_run({}, name="from-page")
    assert sorted(RunStore(path).list_runs()["name"]) == ["cli-run", "from-page"]
    for f in glob.glob(str(path) + "*"):
        os.remove(f)
    assert old.list_runs().empty  # removed and not recreated: a new, empty store (its tables made again)
    assert path.exists()


def test_a_store_opened_with_a_relative_path_keeps_its_file_after_chdir(tmp_path, monkeypatch):
    """Review: following a replaced file, a relative path named another file after os.chdir (a new, empty store)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    store = RunStore("runs.sqlite")
    store.create_run({}, name="in-a")
    monkeypatch.chdir(tmp_path / "b")
    assert store.list_runs()["name"].tolist() == ["in-a"] and not list((tmp_path / "b").iterdir())
    assert store.path == tmp_path / "a" / "runs.sqlite"


def test_a_folder_that_cannot_be_created_is_a_store_error_naming_it(tmp_path):
    """Leftover: RunStore raised the raw OSError of mkdir (only the CLI explained it)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError, match=r"cannot create the folder .*a_file/sub for the run store runs.sqlite \(Not a "
                                         r"directory\)"):
        RunStore(blocker / "sub" / "runs.sqlite")


def test_a_column_added_by_the_user_does_not_break_writes(tmp_path):
    """Store probe: the inserts were positional, so a column a user added (e.g. notes) failed every write."""
    import sqlite3

    path = tmp_path / "runs.sqlite"
    RunStore(path).create_run({"a": 1}, name="before")
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE runs ADD COLUMN notes TEXT")
    con.execute("ALTER TABLE metrics ADD COLUMN tag TEXT")
    con.commit()
    con.close()
    store = RunStore(path)
    run = store.create_run({"a": 2}, name="after")
    store.log_metrics(run, step=1, metrics={"loss": 0.5})
    assert store.metrics(run)["value"].tolist() == [0.5]
    assert set(store.list_runs()["name"]) == {"before", "after"}


def test_a_damaged_store_says_how_to_recover_it(tmp_path):
    """Store probe: 'database disk image is malformed' came without the file or any advice."""
    import sqlite3

    from snnlab.cli import main

    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    for i in range(40):
        store.log_metrics(store.create_run({"i": i}), step=1, metrics={"loss": 0.5})
    con = sqlite3.connect(path)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(path.read_bytes())
    page = 4096
    data[page:4 * page] = b"\xff" * (3 * page)  # the pages after the header overwritten
    path.write_bytes(bytes(data))
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = main(["runs", "--store", str(path)])
    assert status != 0
    assert str(path) in err.getvalue() and ".recover" in err.getvalue(), err.getvalue()


def test_default_store_path_reads_snnlab_store_and_takes_an_empty_one_as_unset(monkeypatch):
    from snnlab.experiments.store import default_store_path

    monkeypatch.setenv("SNNLAB_STORE", "/tmp/elsewhere.sqlite")
    assert default_store_path() == Path("/tmp/elsewhere.sqlite")
    monkeypatch.setenv("SNNLAB_STORE", "")  # (was Path(""): the current folder, which no store can open)
    assert default_store_path() == Path("runs") / "snnlab.sqlite"
