"""Deleting runs: ``RunStore.delete_runs`` and ``snnlab runs delete`` (store probe: the store could only grow, at
~255 B per logged step, with no way to delete a run)."""
import io
import json
import os
import sqlite3

import pytest

from snnlab.cli import main
from snnlab.experiments import RunStore
from snnlab.experiments.store import DIED, StoreReadOnly
from snnlab.training.checkpoint import save_checkpoint
from store_cases import ended_pid


def _rows(path, table: str, run_id: str) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT count(*) FROM {table} WHERE run_id=?", (run_id,)).fetchone()[0]
    finally:
        con.close()


def _set_owner(path, run_id: str, **changes) -> None:
    """Rewrite the recorded owner of ``run_id`` (as if another process, or another host, ran it)."""
    con = sqlite3.connect(path)
    with con:
        owner = json.loads(con.execute("SELECT owner FROM run_owners WHERE run_id=?", (run_id,)).fetchone()[0])
        con.execute("UPDATE run_owners SET owner=? WHERE run_id=?", (json.dumps({**owner, **changes}), run_id))
    con.close()


def _store_with_two_runs(path):
    store = RunStore(path)
    keep, old = store.create_run({"seed": 0}, name="keep"), store.create_run({"seed": 1}, name="old")
    for run in (keep, old):
        for step in (1, 2, 3):
            store.log_metrics(run, step=step, epoch=0, metrics={"loss": 1.0 / step})
        store.set_status(run, "running")  # (records this process as the owner)
        store.set_status(run, "finished")
    return store, keep, old


def test_delete_runs_removes_every_row_of_the_run_and_nothing_of_the_other(tmp_path):
    path = tmp_path / "s.sqlite"
    store, keep, old = _store_with_two_runs(path)
    store.set_checkpoint(old, tmp_path / "old" / "checkpoint.pt")
    before = store.metrics(keep)
    assert _rows(path, "run_owners", old) == 1
    assert store.delete_runs([old]) == {old: str((tmp_path / "old" / "checkpoint.pt").resolve())}
    assert store.list_runs()["run_id"].tolist() == [keep]
    for table in ("runs", "metrics", "run_owners"):
        assert _rows(path, table, old) == 0
    assert store.metrics(keep).equals(before) and _rows(path, "run_owners", keep) == 1
    with pytest.raises(KeyError):
        store.get_run(old)
    assert store.delete_runs(keep) == {keep: None} and store.list_runs().empty  # one id as a string
    assert store.delete_runs([]) == {}


def test_delete_runs_refuses_unknown_ids_and_deletes_nothing(tmp_path):
    store, keep, old = _store_with_two_runs(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match=r"delete_runs: no run\(s\) 'nope'.*nothing deleted"):
        store.delete_runs([old, "nope"])
    with pytest.raises(ValueError, match="no run"):
        store.delete_runs([old[:4]])  # whole ids only (the command line resolves prefixes)
    with pytest.raises(TypeError, match="delete_runs: run ids must be strings"):
        store.delete_runs([old, 3])
    assert sorted(store.list_runs()["run_id"]) == sorted([keep, old]) and len(store.metrics(old)) == 3


@pytest.mark.skipif(os.name == "nt", reason="process liveness is not told on Windows")
@pytest.mark.parametrize("status", ["running", "paused"])
def test_a_live_run_is_refused_and_one_whose_process_is_gone_is_deleted(tmp_path, status):
    path = tmp_path / "s.sqlite"
    store, keep, old = _store_with_two_runs(path)
    store.set_status(old, status)  # this (live) process runs it
    with pytest.raises(ValueError, match=rf"run\(s\) {old} \({status}, process {os.getpid()} on .*nothing deleted"):
        store.delete_runs([keep, old])
    _set_owner(path, old, host="another-machine")  # a process elsewhere: cannot be told dead, so refused
    with pytest.raises(ValueError, match="may still be running"):
        store.delete_runs([old])
    assert len(store.list_runs()) == 2 and len(store.metrics(keep)) == 3
    _set_owner(path, old, host=__import__("socket").gethostname(), pid=ended_pid())  # crashed: its process is gone
    assert store.get_run(old)["status"] == DIED
    assert store.delete_runs([old]) == {old: None}
    assert store.list_runs()["run_id"].tolist() == [keep] and _rows(path, "run_owners", old) == 0


def test_a_read_only_store_refuses_to_delete(tmp_path):
    path = tmp_path / "s.sqlite"
    store, keep, old = _store_with_two_runs(path)
    store.close()
    reader = RunStore(path, read_only=True)
    try:
        with pytest.raises(StoreReadOnly, match="read-only"):
            reader.delete_runs([old])
    finally:
        reader.close()
    assert len(RunStore(path).list_runs()) == 2


class _Terminal(io.StringIO):
    """A stdin that is a terminal; its text is what the user types."""

    def isatty(self) -> bool:
        return True


def test_cli_runs_delete_with_yes_by_id_prefix(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.sqlite"
    store, keep, old = _store_with_two_runs(path)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    flags = ["--store", str(path)]
    assert main(["runs", "delete", old[:5], "--yes", *flags]) == 0
    out, err = capsys.readouterr()
    assert out == f"deleted run {old} (old, finished)\n" and err == ""
    assert store.list_runs()["run_id"].tolist() == [keep] and len(store.metrics(old)) == 0
    assert main(["runs", "delete", "--yes", *flags, "nope", keep]) == 2  # ids after the options too
    err = capsys.readouterr().err
    assert "no run(s) nope" in err and "nothing deleted" in err and len(store.list_runs()) == 1
    other = store.create_run({}, name="other", run_id=keep[:3] + "fff")  # two ids start with keep[:3]
    assert main(["runs", "delete", keep[:3], "--yes", *flags]) == 2
    assert "fits 2 runs" in capsys.readouterr().err and len(store.list_runs()) == 2
    assert main(["runs", "delete", "--yes", *flags]) == 2
    assert "needs one or more run ids" in capsys.readouterr().err
    assert main(["runs", "delete", other, "--yes", "--store", str(tmp_path / "typo.sqlite")]) == 2
    assert "no run store at" in capsys.readouterr().err and not (tmp_path / "typo.sqlite").exists()
    assert main(["runs", "show", other, "--yes", *flags]) == 2  # --yes is delete's
    assert "options of `snnlab runs delete`" in capsys.readouterr().err


def test_cli_runs_delete_asks_on_a_terminal_and_refuses_without_one(tmp_path, capsys, monkeypatch):
    path = tmp_path / "s.sqlite"
    store, keep, old = _store_with_two_runs(path)
    flags = ["--store", str(path)]
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # a script's pipe: it must say --yes
    assert main(["runs", "delete", old, *flags]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "stdin is not a terminal: pass --yes" in err and len(store.list_runs()) == 2
    monkeypatch.setattr("sys.stdin", _Terminal("n\n"))
    assert main(["runs", "delete", old, *flags]) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"  {old} (old, finished)" in err and "[y/N]" in err and "nothing deleted" in err
    assert len(store.list_runs()) == 2
    monkeypatch.setattr("sys.stdin", _Terminal("y\n"))
    assert main(["runs", "delete", old, *flags]) == 0
    assert capsys.readouterr().out == f"deleted run {old} (old, finished)\n"
    assert store.list_runs()["run_id"].tolist() == [keep]


def test_cli_runs_delete_refuses_a_running_run(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    store, keep, old = _store_with_two_runs(path)
    store.set_status(old, "running")
    assert main(["runs", "delete", keep, old, "--yes", "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{old} (running) may still be running" in err and "nothing deleted" in err
    assert len(store.list_runs()) == 2


def _run_folder(folder, run_id: str, *extra: str):
    """A run folder as a training leaves it (checkpoint of ``run_id``, config.json, lock) plus ``extra`` files."""
    folder.mkdir()
    save_checkpoint(folder / "checkpoint.pt", {"run_id": run_id})
    for name in ("config.json", ".snnlab-lock", *extra):
        (folder / name).write_text("{}")
    return folder / "checkpoint.pt"


def test_cli_runs_delete_files_removes_only_snnlab_files_and_folders(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    store = RunStore(path)
    own, mixed, reused, bare = (store.create_run({}, name=n) for n in ("own", "mixed", "reused", "bare"))
    store.set_checkpoint(own, _run_folder(tmp_path / "own", own))
    store.set_checkpoint(mixed, _run_folder(tmp_path / "mixed", mixed, "notes.txt"))
    store.set_checkpoint(reused, _run_folder(tmp_path / "reused", "someone-else"))  # another run saved over it
    (tmp_path / "loose").mkdir()
    store.set_checkpoint(bare, save_checkpoint(tmp_path / "loose" / "mine.pt", {"run_id": bare}))  # not a run folder
    (tmp_path / "loose" / "other.pt").write_text("x")
    assert main(["runs", "delete", own, mixed, reused, bare, "--yes", "--files", "--store", str(path)]) == 0
    out, err = capsys.readouterr()
    assert not (tmp_path / "own").exists() and f"removed {tmp_path / 'own'}\n" in out
    assert sorted(p.name for p in (tmp_path / "mixed").iterdir()) == [".snnlab-lock", "config.json", "notes.txt"]
    assert f"kept the folder {tmp_path / 'mixed'}: it holds other files too (notes.txt)" in err
    assert sorted(p.name for p in (tmp_path / "reused").iterdir()) == [".snnlab-lock", "checkpoint.pt", "config.json"]
    assert "holds the checkpoint of run 'someone-else'" in err
    assert sorted(p.name for p in (tmp_path / "loose").iterdir()) == ["other.pt"]
    assert store.list_runs().empty


def test_cli_runs_delete_files_leaves_a_kept_folder_without_a_new_lock_file(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    store = RunStore(path)
    run = store.create_run({}, name="r")
    ckpt = _run_folder(tmp_path / "r", run, "plot.png")
    os.remove(tmp_path / "r" / ".snnlab-lock")  # (a folder trained where locks do not exist)
    store.set_checkpoint(run, ckpt)
    assert main(["runs", "delete", run, "--yes", "--files", "--store", str(path)]) == 0
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["config.json", "plot.png"]
    assert "kept the folder" in capsys.readouterr().err


def test_force_deletes_a_run_the_store_cannot_tell_has_stopped(tmp_path, capsys):
    """A "running" run that died on another host (or an older store's, with no process recorded) was refused for
    good: force=True (--force) deletes it, and nothing else changes."""
    path = tmp_path / "s.sqlite"
    store, keep, old = _store_with_two_runs(path)
    store.set_status(old, "running")
    _set_owner(path, old, host="another-machine")
    with pytest.raises(ValueError, match="force=True"):
        store.delete_runs([old])
    with pytest.raises(TypeError, match="force must be True or False"):
        store.delete_runs([old], force="yes")
    assert main(["runs", "delete", old, "--yes", "--store", str(path)]) == 2
    assert "--force" in capsys.readouterr().err and len(store.list_runs()) == 2
    assert main(["runs", "delete", old[:6], "--yes", "--force", "--store", str(path)]) == 0
    assert f"deleted run {old}" in capsys.readouterr().out
    assert store.list_runs()["run_id"].tolist() == [keep] and _rows(path, "run_owners", old) == 0
    assert main(["runs", "list", "--force", "--store", str(path)]) == 2  # delete's option only


def test_cli_runs_delete_refuses_a_status_filter_it_would_ignore(tmp_path, capsys):
    path = tmp_path / "s.sqlite"
    store, keep, old = _store_with_two_runs(path)
    assert main(["runs", "delete", keep, "--status", "failed", "--yes", "--store", str(path)]) == 2
    assert "takes no --status" in capsys.readouterr().err and len(store.list_runs()) == 2
