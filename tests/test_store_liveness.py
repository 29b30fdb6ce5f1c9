"""A "running" run whose process is gone shows "died" where runs are listed (store probe: a run killed with SIGKILL
showed "running" forever in `snnlab runs` and the dashboard), without the row being rewritten on read; runs of
another host or of a live process stay "running"."""
import json
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from snnlab.cli import main
from snnlab.experiments import RunStore
from snnlab.experiments.store import DIED, process_gone, this_process
from snnlab.training import ExperimentConfig, Trainer, load_checkpoint
from store_cases import ended_pid

pytestmark = pytest.mark.skipif(os.name == "nt", reason="process liveness is not told on Windows")

TINY = dict(hidden=[8], num_steps=5, batch_size=16, epochs=3, max_batches_per_epoch=3, eval_max_batches=1,
            device="cpu")

KILLED_WHILE_TRAINING = """
import os, signal, sys
from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig, Trainer
tr = Trainer(ExperimentConfig(**{tiny}), run_dir=sys.argv[2], store=RunStore(sys.argv[1]), progress=False,
             name="victim")
# killed in its second epoch, after the first epoch's checkpoint
tr.events.subscribe(lambda e: os.kill(os.getpid(), signal.SIGKILL) if e.kind == "step" and e.step == 5 else None)
tr.run()
"""


def _stored_status(path, run_id: str) -> str:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()[0]
    finally:
        con.close()




def _set_owners(path, owners: dict) -> None:
    """Record ``{run_id: owner}`` in the store's ``run_owners`` table, as if those processes had run the runs."""
    con = sqlite3.connect(path)
    with con:
        for run_id, owner in owners.items():
            con.execute("UPDATE run_owners SET owner=? WHERE run_id=?", (json.dumps(owner), run_id))
    con.close()


def test_a_killed_run_shows_died_everywhere_runs_are_listed_and_resumes(tmp_path, capsys):
    path, run_dir = tmp_path / "s.sqlite", tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILLED_WHILE_TRAINING.format(tiny=TINY), str(path), str(run_dir)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = RunStore(path)
    runs = store.list_runs()
    run_id = runs["run_id"][0]
    assert runs["status"].tolist() == [DIED] and "ended while the run was running" in runs["message"][0]
    run = store.get_run(run_id)
    assert run["status"] == DIED and run["owner"]["host"] and run["owner"]["pid"] != os.getpid()
    assert _stored_status(path, run_id) == "running"  # shown, not written
    assert main(["runs", "--store", str(path), "--status", "died"]) == 0
    out = capsys.readouterr().out
    assert "victim" in out and DIED in out
    assert main(["runs", "show", run_id, "--store", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == DIED

    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 1
    resumed = Trainer.resume_from(run_dir, store=store, progress=False)
    resumed.run()
    assert resumed.run_id == run_id and store.get_run(run_id)["status"] == "finished"
    assert store.list_runs()["name"].tolist() == ["victim"]


def test_a_running_run_of_a_live_process_or_another_host_is_not_declared_dead(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    mine = store.create_run({}, name="mine")
    store.set_status(mine, "running")  # this process: alive
    elsewhere = store.create_run({}, name="elsewhere")
    store.set_status(elsewhere, "paused")
    reused = store.create_run({}, name="reused pid")
    store.set_status(reused, "running")
    ended = store.create_run({}, name="ended")
    store.set_status(ended, "running")
    gone = ended_pid()
    owners = {elsewhere: {"host": "another-host", "pid": gone, "start": None, "pidns": None},
              ended: {**this_process(), "pid": gone}}
    if this_process()["start"] is not None:  # our pid, but a process started at another time: the id was reused
        owners[reused] = {**this_process(), "start": this_process()["start"] + 1}
    _set_owners(store.path, owners)
    shown = dict(zip(store.list_runs()["name"], store.list_runs()["status"]))
    assert shown["mine"] == "running" and shown["elsewhere"] == "paused" and shown["ended"] == DIED
    assert shown["reused pid"] == (DIED if reused in owners else "running")
    store.set_status(ended, "failed", "boom")  # a run that ended is shown as it was stored
    assert store.get_run(ended)["status"] == "failed" and store.get_run(ended)["message"] == "boom"
    assert not process_gone(this_process()) and process_gone(owners[ended])


def test_a_store_of_an_older_snnlab_is_read_as_it_is_and_gets_the_owners_table_when_written(tmp_path):
    path = tmp_path / "old.sqlite"
    store = RunStore(path)
    run = store.create_run({}, name="old")
    store.set_status(run, "running")
    store.close()
    con = sqlite3.connect(path)
    con.execute("DROP TABLE run_owners")  # as a store written before owners were recorded
    con.commit()
    con.close()
    reader = RunStore(path, read_only=True)
    assert reader.list_runs()["status"].tolist() == ["running"] and reader.get_run(run)["owner"] is None
    assert len(reader.summaries()) == 0
    con = sqlite3.connect(path)
    assert "run_owners" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
    writer = RunStore(path)
    writer.set_status(run, "running")
    assert writer.get_run(run)["owner"]["pid"] == os.getpid()
    columns = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(runs)")]
    assert len(columns) == 9  # the runs table keeps its layout (older snnlab and positional inserts work)


def test_a_pid_now_of_another_users_process_is_told_by_its_start_time(monkeypatch):
    """os.kill answers PermissionError for another user's process: the run's process is gone when that one started at
    another time (its id was reused), alive when it started when the owner did."""
    me = this_process()
    if me["start"] is None:
        pytest.skip("no /proc start times here")

    def not_ours(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", not_ours)
    assert process_gone({**me, "start": me["start"] + 1}) and not process_gone(me)


def test_a_corrupt_owner_never_breaks_a_listing_nor_names_a_process_group(tmp_path):
    me = this_process()
    for pid in (0, -1, -999_999, 2**70, "x", None):
        assert not process_gone({**me, "pid": pid}), pid
    store = RunStore(tmp_path / "s.sqlite")
    run = store.create_run({}, name="odd")
    store.set_status(run, "running")
    _set_owners(store.path, {run: {**me, "pid": 2**70}})
    assert store.list_runs()["status"].tolist() == ["running"] and store.get_run(run)["status"] == "running"


def test_status_filters_tell_died_from_running(tmp_path, capsys):
    store = RunStore(tmp_path / "s.sqlite")
    alive = store.create_run({}, name="alive-run")
    store.set_status(alive, "running")
    dead = store.create_run({}, name="dead-run")
    store.set_status(dead, "running")
    store.set_summary(dead, {"accuracy": 0.5})
    _set_owners(store.path, {dead: {**this_process(), "pid": ended_pid()}})
    path = str(store.path)
    assert main(["runs", "--store", path, "--status", "running"]) == 0
    out = capsys.readouterr().out
    assert "alive-run" in out and "dead-run" not in out
    assert main(["runs", "--store", path, "--status", "died"]) == 0
    out = capsys.readouterr().out
    assert "dead-run" in out and "alive-run" not in out
    assert main(["runs", "compare", "--store", path, "--status", "died"]) == 0
    assert "dead-run" in capsys.readouterr().out
    assert main(["runs", "compare", "--store", path, "--status", "running"]) == 0
    assert "no finished runs with results with status running" in capsys.readouterr().out


def test_a_resume_refused_before_it_trains_leaves_the_stored_status_as_it_was(tmp_path, monkeypatch):
    """A resumed run that fails before training (here the check of its schedules) must not mark the finished run it
    resumes "failed": the store keeps its row, as for a refused resume."""
    store = RunStore(tmp_path / "s.sqlite")
    run_dir = tmp_path / "run"
    first = Trainer(ExperimentConfig(**{**TINY, "epochs": 1}), run_dir=run_dir, store=store, progress=False)
    first.run()
    resumed = Trainer.resume_from(run_dir, ExperimentConfig(**{**TINY, "epochs": 2}), store=store, progress=False)

    def refuse():
        raise ValueError("schedules need the number of steps")

    monkeypatch.setattr(resumed, "_check_schedules_can_run", refuse)
    with pytest.raises(ValueError, match="number of steps"):
        resumed.run()
    assert resumed.state == "failed"
    run = store.get_run(first.run_id)
    assert (run["status"], run["message"], run["config"]["epochs"]) == ("finished", None, 1)
