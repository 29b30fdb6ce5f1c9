"""The SQLite run store: round trips, errors, and one writer with concurrent readers."""
import subprocess
import sys
import threading

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
