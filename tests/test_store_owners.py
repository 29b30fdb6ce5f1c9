"""Who runs a run (store probe): machines of one host name told apart by their machine id, a restart told by the boot
id, the start time without /proc (psutil, where installed), and an owner decoded once by get_run."""
import json
import os

import pytest

import snnlab.experiments.store as store_mod
from snnlab.experiments import RunStore
from snnlab.experiments.store import DIED, process_gone, this_process
from store_cases import ended_pid, pretend_machine

pytestmark = pytest.mark.skipif(os.name == "nt", reason="process liveness is not told on Windows")






def test_the_owner_records_the_machine_and_boot_ids(monkeypatch):
    pretend_machine(monkeypatch, "m-1", "b-1")
    me = this_process()
    assert (me["machine"], me["boot"], me["pid"]) == ("m-1", "b-1", os.getpid()) and not process_gone(me)


def test_machine_and_boot_ids_are_read_from_their_files(tmp_path):
    files = {name: tmp_path / name for name in ("empty", "unset", "id", "other")}
    files["empty"].write_text("\n")
    files["unset"].write_text("uninitialized\n")
    files["id"].write_text("0123abcd\n")
    files["other"].write_text("ffff\n")
    read = store_mod._read_id
    assert read(str(tmp_path / "missing"), str(files["empty"]), str(files["unset"]), str(files["id"]),
                str(files["other"])) == "0123abcd"
    assert read(str(tmp_path / "missing"), str(files["empty"])) is None
    if os.path.exists("/proc/sys/kernel/random/boot_id"):  # (Linux: the real readers find an id)
        assert store_mod._read_boot_id()


def test_a_run_of_another_machine_of_this_host_name_is_never_declared_dead(monkeypatch):
    pretend_machine(monkeypatch, "ours", "boot-1")
    dead = {**this_process(), "pid": ended_pid()}
    assert process_gone(dead)  # (this machine's: its process has ended)
    assert not process_gone({**dead, "machine": "theirs"})
    assert not process_gone({**dead, "machine": "theirs", "boot": "boot-2"})
    assert not process_gone({**dead, "machine": None})  # (theirs could not be read: not known to be this one)
    pretend_machine(monkeypatch, None, "boot-1")  # (ours cannot be read)
    assert not process_gone({**dead, "machine": "ours"})


def test_a_run_of_this_machine_before_a_restart_is_dead_even_if_its_pid_runs_now(monkeypatch):
    pretend_machine(monkeypatch, "ours", "boot-2")
    before = {**this_process(), "boot": "boot-1"}  # this very pid, alive, but recorded in the earlier boot
    assert process_gone(before)
    # (another pid namespace: another container, perhaps on another machine whose image baked in the same machine id)
    assert not process_gone({**before, "pidns": "pid:[1]"})
    # a boot id alone cannot tell a restart from another machine of this host name
    assert not process_gone({**before, "machine": None})
    pretend_machine(monkeypatch, None, "boot-2")
    assert not process_gone({**before, "machine": None})
    pretend_machine(monkeypatch, "ours", None)  # (our boot id cannot be read)
    assert not process_gone(before)


def test_an_owner_recorded_before_machine_ids_is_told_by_its_host_name_as_before(monkeypatch):
    pretend_machine(monkeypatch, "ours", "boot-1")
    me = this_process()
    old = {key: me[key] for key in ("host", "pid", "start", "pidns")}  # (an older snnlab's record)
    assert not process_gone(old)
    assert process_gone({**old, "pid": ended_pid()})
    assert not process_gone({**old, "host": "elsewhere", "pid": ended_pid()})
    if me["start"] is not None:
        assert process_gone({**old, "start": me["start"] + 1})


def test_listings_show_died_for_this_machines_runs_only(tmp_path, monkeypatch):
    pretend_machine(monkeypatch, "ours", "boot-2")
    store = RunStore(tmp_path / "s.sqlite")
    runs = {name: store.create_run({}, name=name) for name in ("alive", "other machine", "restarted", "old record")}
    for run in runs.values():
        store.set_status(run, "running")
    me, gone = this_process(), ended_pid()
    owners = {"other machine": {**me, "pid": gone, "machine": "theirs"}, "restarted": {**me, "boot": "boot-1"},
              "old record": {key: me[key] for key in ("host", "start", "pidns")} | {"pid": gone}}
    con = store._raw()
    for name, owner in owners.items():
        con.execute("UPDATE run_owners SET owner=? WHERE run_id=?", (json.dumps(owner), runs[name]))
    listed = store.list_runs().set_index("name")
    assert listed["status"].to_dict() == {"alive": "running", "other machine": "running", "restarted": DIED,
                                          "old record": DIED}
    assert "the machine has restarted since" in listed.loc["restarted", "message"]
    assert "(killed, crashed or closed)" in listed.loc["old record", "message"]
    run = store.get_run(runs["restarted"])
    assert run["status"] == DIED and run["owner"] == owners["restarted"]


def test_get_run_decodes_the_owner_once(tmp_path, monkeypatch):
    store = RunStore(tmp_path / "s.sqlite")
    running, ended = store.create_run({}, name="running"), store.create_run({}, name="ended")
    store.set_status(running, "running")
    store.set_status(ended, "running")
    store.set_status(ended, "finished")
    owner_text = store._raw().execute("SELECT owner FROM run_owners WHERE run_id=?", (running,)).fetchone()[0]
    loads, decoded = json.loads, []

    def counting(text, *args, **kwargs):
        decoded.append(text)
        return loads(text, *args, **kwargs)

    monkeypatch.setattr(json, "loads", counting)
    for run in (running, ended):
        decoded.clear()
        got = store.get_run(run)
        assert got["owner"]["pid"] == os.getpid() and got["status"] in ("running", "finished")
        assert sum(isinstance(t, str) and t.startswith('{"host"') for t in decoded) == 1, decoded
    assert owner_text.startswith('{"host"')


def test_without_proc_the_start_time_comes_from_psutil_where_installed(monkeypatch):
    """Where /proc is missing (macOS, BSD) a reused pid showed "running" for ever: psutil, where installed, gives the
    process's creation time (not a dependency: without it, as before)."""
    psutil = pytest.importorskip("psutil")
    monkeypatch.setattr(store_mod, "_proc_stat", lambda pid: None)  # (no /proc)
    me = this_process()
    assert me["start"] is None and me["created"] == pytest.approx(psutil.Process().create_time())
    assert not process_gone(me)
    assert process_gone({**me, "created": me["created"] - 3600})  # the pid is another process's now
    assert not process_gone({key: v for key, v in me.items() if key != "created"})  # (nothing to compare: as before)
    monkeypatch.setattr(store_mod, "_PSUTIL", [None])  # (psutil not installed)
    assert "created" not in this_process() and not process_gone({**me, "created": me["created"] - 3600})
