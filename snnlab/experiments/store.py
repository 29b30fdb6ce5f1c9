"""The run store: runs, their configs, per-step metrics and checkpoint paths in one SQLite file.

SQLite in WAL mode: one writer (a training run) and several readers (the dashboard, a notebook)
work at once. A store in another journal mode (an older snnlab's, a copy without its ``-wal``) is switched to WAL,
and given the tables added since it was made, at its first write: a store that is only read (a notebook, the
dashboard) is left as it was. Each thread gets its own connection, so a store object can be shared between the
training thread and the UI thread. Writes are ``BEGIN IMMEDIATE`` transactions (one writer at a
time, each write atomic); reads are deferred transactions, which in WAL mode neither wait for a
writer nor make one wait: a reader sees the last commit before its read began (:meth:`RunStore.snapshot`
keeps one such view over several reads). Reads wait at most ``read_timeout`` seconds for a store
that another process holds locked (possible only outside WAL's rules, e.g. ``locking_mode=EXCLUSIVE``),
then raise :class:`StoreLocked`.

A store whose file or folder cannot be written (a read-only mount, a shared results folder) is
opened for reading (``read_only=None``, the default, decides by itself; ``True`` never writes,
``False`` insists on writing); a write to it raises :class:`StoreReadOnly`.

A run set "running" or "paused" records the process that runs it (host, process id, start time; table
``run_owners``). Where runs are read for users (:meth:`RunStore.list_runs`, :meth:`RunStore.get_run`,
:meth:`RunStore.summaries`), such a run whose process is gone (killed, crashed) shows the status ``"died"``
(:data:`DIED`), decided at each read and never written into the row; a run of another host (a shared store) or of
another process namespace (another container) is never declared dead from here. Hosts are told apart by their name
and, where both sides know one (Linux), their machine id (recorded as a hash of it, never the id itself): two
machines of one name sharing a store are told apart unless they share a machine id too (a cloned image with one
baked in). The boot id recorded with it tells a restart: a run recorded on this machine (same name and machine id)
and in this pid namespace in an earlier boot has surely died. An owner recorded before these were (no machine or
boot id) is told by the host name alone, as then.

A read-only session leaves no empty ``-wal`` and ``-shm`` files beside the store (reading a WAL store makes them):
at :meth:`RunStore.close` SQLite removes them where no other connection uses them, holding the store locked for that
moment; a read-only session opening in that moment waits for it (at least a second, even with ``timeout=0``), so
that read-only sessions (``snnlab runs --timeout 0`` run side by side) never refuse each other.

The file carries its layout version in ``PRAGMA user_version`` (:data:`SCHEMA_VERSION`): a file of
another program, a store of a newer snnlab, or a file that is not SQLite is refused with a
:class:`StoreError` instead of failing later with a raw ``sqlite3`` error.

Example:
    >>> import tempfile, os
    >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
    >>> run = store.create_run({"epochs": 1}, name="demo")
    >>> store.log_metrics(run, step=1, epoch=0, metrics={"loss": 0.5})
    >>> store.set_status(run, "finished")
    True
    >>> store.list_runs()[["name", "status"]].values.tolist()
    [['demo', 'finished']]
"""
from __future__ import annotations

import gc
import hashlib
import hmac
import json
import math
import os
import random
import socket
import sqlite3
import threading
import time
import urllib.parse
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

STATUSES = ("created", "idle", "running", "paused", "finished", "failed", "stopped")
SCHEMA_VERSION = 1  # PRAGMA user_version of a store; 0 = a store written before versioning (same layout)
#: the status shown (never stored) for a "running" or "paused" run whose process on this host is gone
DIED = "died"
#: every status a listing can show: the stored ones and :data:`DIED`
SHOWN_STATUSES = STATUSES + (DIED,)
_LIVE = ("running", "paused")  # stored statuses of a run whose process must be alive


class StoreError(ValueError):
    """The file is not a run store this snnlab can use (not SQLite, another layout, a newer version)."""


class StoreReadOnly(StoreError, sqlite3.OperationalError):
    """A write to a store opened read-only, or one whose file or folder cannot be written."""


class StoreLocked(sqlite3.OperationalError):
    """Another process held the store locked for longer than the timeout of the read or write."""


def _flag(value: object, name: str, caller: str) -> bool:
    """:func:`snnlab.core.validation.as_flag`, imported only for a value other than a plain bool (that module imports
    torch, which the run store and the ``snnlab runs`` commands do without)."""
    if isinstance(value, bool):
        return value
    from snnlab.core.validation import as_flag

    return as_flag(value, name, caller)


def _primary_code(exc: BaseException) -> int | None:
    """SQLite's primary result code of ``exc`` (``sqlite3.SQLITE_BUSY``, ...; extended codes folded), or ``None``
    for an error that did not come from SQLite. Decided by code, not by the message's text (which SQLite may
    word differently from one version to the next)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


_LOCK_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
#: what a read-only connection to a WAL file gets where its WAL index (-shm) cannot be made (a folder that cannot be
#: written); not a hot journal to roll back (SQLITE_READONLY_ROLLBACK): reading past that one could see half a write
_NO_WAL_INDEX = (sqlite3.SQLITE_READONLY | (6 << 8), sqlite3.SQLITE_READONLY | (5 << 8))  # _DIRECTORY, _CANTINIT
#: seconds a read-only session's opening waits at least for a lock, whatever its timeout (even 0): the close of
#: another session (:meth:`RunStore._remove_empty_wal`, or any last connection's close) holds the store locked for a
#: moment while SQLite removes the ``-wal`` and ``-shm``; an opening in that moment waits for it instead of failing
_READ_ONLY_OPEN_WAIT = 1.0


def _pause(seconds: float) -> None:
    """Sleep between two tries of a read-only opening (one function: tests hook it to end a lock between the tries)."""
    time.sleep(seconds)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL, message TEXT,
    config TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, checkpoint TEXT, summary TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id), step INTEGER NOT NULL, epoch INTEGER,
    kind TEXT NOT NULL, name TEXT NOT NULL, value REAL, time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS metrics_run ON metrics(run_id, step);
CREATE TABLE IF NOT EXISTS run_owners (run_id TEXT PRIMARY KEY REFERENCES runs(run_id), owner TEXT NOT NULL);
"""


def _schema_columns() -> dict[str, set[str]]:
    """``{table: column names}`` of :data:`_SCHEMA`, read from an in-memory database built with it."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(_SCHEMA)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: {r[1] for r in con.execute(f"PRAGMA table_info({t})")} for t in tables}
    finally:
        con.close()


_COLUMNS = _schema_columns()  # what a store must have; the schema above is the one source of truth
#: tables added to the layout since version 1 without a new version (older snnlab ignores them; the ``runs`` table
#: stays as it was): a store gets them at its first write; until then (and read-only) it is read without them
_ADDED_TABLES = ("run_owners",)


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, start time in clock ticks since boot)`` of process ``pid`` from ``/proc`` (Linux), else None."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


_PID_NAMESPACE: dict[int, str | None] = {}  # {this process's id: its pid namespace}: fixed for a process's life


def _pid_namespace() -> str | None:
    """This process's pid namespace (Linux: ``pid:[inode]``; containers have their own), else None (read once per
    process: a listing asks for it at every run whose process it checks)."""
    pid = os.getpid()
    if pid in _PID_NAMESPACE:
        return _PID_NAMESPACE[pid]
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = None
    _PID_NAMESPACE.clear()  # (a forked child: its parent's entry goes)
    _PID_NAMESPACE[pid] = namespace
    return namespace


def _read_id(*paths: str) -> str | None:
    """The first non-empty line of the first of ``paths`` that can be read (an unset machine id, systemd's
    "uninitialized", counts as none), else None."""
    for path in paths:
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                text = f.readline().strip()
        except OSError:
            continue
        if text and text != "uninitialized":
            return text
    return None


def _read_machine_id() -> str | None:
    """This machine's stable identity as a store records it (Linux: a hash of systemd's or D-Bus's machine id, keyed by
    it, for snnlab alone: the id itself is to be kept confidential, ``man machine-id``, and a store is shared and
    copied), else None."""
    machine = _read_id("/etc/machine-id", "/var/lib/dbus/machine-id")
    if machine is None:
        return None
    return hmac.new(machine.encode(), b"snnlab run store: machine", hashlib.sha256).hexdigest()[:32]


def _read_boot_id() -> str | None:
    """The identity of this boot of the machine's kernel (Linux: new at each boot), else None."""
    return _read_id("/proc/sys/kernel/random/boot_id")


_MACHINE: dict[str, str | None] = {}  # {"machine": ..., "boot": ...}: fixed for a process's life (a fork's too)


def _machine() -> dict[str, str | None]:
    """This machine's id and boot id (read once per process: a listing asks at every run whose process it checks)."""
    if not _MACHINE:
        _MACHINE.update(machine=_read_machine_id(), boot=_read_boot_id())
    return _MACHINE


_PSUTIL: list = []  # [psutil module or None], imported at the first need (never on Linux, where /proc answers)


def _created(pid: int) -> tuple[bool, float] | None:
    """``(zombie, creation time in seconds since the epoch)`` of process ``pid`` from ``psutil`` where it is
    installed (not a dependency: the start time where ``/proc`` is missing, e.g. macOS), else None."""
    if not _PSUTIL:
        try:
            import psutil
        except ImportError:
            psutil = None
        _PSUTIL.append(psutil)
    psutil = _PSUTIL[0]
    if psutil is None:
        return None
    try:
        proc = psutil.Process(int(pid))
        return proc.status() == psutil.STATUS_ZOMBIE, float(proc.create_time())
    except Exception:  # (no such process, no access, a platform psutil does not cover): not known
        return None


def this_process() -> dict:
    """Who runs a run (a run's ``owner``): this host, process id, its start time and pid namespace, and (where
    known) the machine's id and boot id. The start time is ``start`` (Linux: clock ticks since boot, from ``/proc``)
    or, without ``/proc``, ``created`` (seconds since the epoch, where ``psutil`` is installed).

    Example:
        >>> me = this_process()
        >>> me["pid"] == os.getpid(), process_gone(me)
        (True, False)
    """
    stat = _proc_stat(os.getpid())
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "start": stat[1] if stat else None,
             "pidns": _pid_namespace(), **_machine()}
    if stat is None:
        created = _created(os.getpid())
        if created is not None:
            owner["created"] = created[1]
    return owner


def _gone(owner: dict | None) -> str | None:
    """How the process ``owner`` has surely ended: ``"ended"``, ``"restarted"`` (its machine has restarted since), or
    None when it may still run (see :func:`process_gone`)."""
    if not isinstance(owner, dict) or os.name == "nt" or owner.get("host") != socket.gethostname():
        return None
    mine = _machine()
    # machine identity (owners recorded by an older snnlab have neither key: told by the host name alone, as then)
    if "machine" in owner and owner["machine"] != mine["machine"]:
        return None  # another machine of this name (or one whose id is not known on one side)
    ours = _pid_namespace()
    if owner.get("pidns") and ours and owner["pidns"] != ours:
        # another container (first: containers of one image can share a machine id baked into it, on other machines
        # of their own boot ids; a host's own namespace is the same in every boot)
        return None
    if "boot" in owner and owner["boot"] != mine["boot"]:
        # another boot of this machine's kernel: every process of that boot has ended; but only the machine id says
        # it is this machine (a boot id alone cannot tell a restart from another machine of this host name)
        return "restarted" if owner["boot"] and mine["boot"] and owner.get("machine") else None
    try:
        pid = int(owner["pid"])
        if pid <= 0:  # (not a process: 0 and negative ids name process groups)
            return None
        os.kill(pid, 0)  # (signal 0: only asks whether the process exists)
    except ProcessLookupError:
        return "ended"
    except PermissionError:  # another user's process has the id now: the start time tells whether it is the owner
        pass
    except (KeyError, TypeError, ValueError, OverflowError, OSError):  # no usable pid
        return None
    stat = _proc_stat(pid)
    if stat is not None:
        state, start = stat
        return "ended" if state in ("Z", "X") or (owner.get("start") is not None and start != owner["start"]) else None
    created = owner.get("created")
    if not isinstance(created, (int, float)) or isinstance(created, bool):
        return None
    now = _created(pid)
    # (a reused id: the process with it now started at another time; half a second allows for rounding)
    return "ended" if now is not None and (now[0] or abs(now[1] - created) > 0.5) else None


def process_gone(owner: dict | None) -> bool:
    """Whether the process ``owner`` (:func:`this_process` of the process that ran a run) has surely ended: it ran on
    this machine (its host name, and its machine id where both sides know one), in this pid namespace, and either in an
    earlier boot of it or no process has its id now (or one that started at another time, or a zombie).
    False whenever that cannot be told (another host or machine, no owner recorded, Windows).

    Example:
        >>> process_gone({"host": "elsewhere", "pid": 1}), process_gone(None)
        (False, False)
    """
    return _gone(owner) is not None


def _decode_owner(owner: str | None):
    """A stored owner decoded (None for none, or for text that is not JSON)."""
    if not owner:
        return None
    try:
        return json.loads(owner)
    except ValueError:
        return None


def _shown(status: str, message: str | None, owner: str | None, gone: dict,
           checkpoint: str | None = None) -> tuple[str, str | None]:
    """A run's status and message as shown: :data:`DIED` for a live status whose process is gone (``gone``: a cache
    ``{owner text: (decoded owner, how it ended or None)}``, filled here for the live runs' owners)."""
    if status not in _LIVE or not owner:
        return status, message
    if owner not in gone:
        who = _decode_owner(owner)
        gone[owner] = who, _gone(who)
    who, how = gone[owner]
    if how is None:
        return status, message
    pid, host = who.get("pid"), who.get("host")
    if how == "restarted":
        why = f"its process (pid {pid} on {host}) ended while the run was {status}: the machine has restarted since"
    else:
        why = f"its process (pid {pid} on {host}) ended while the run was {status} (killed, crashed or closed)"
    return DIED, message or why + ("; resume it from its checkpoint" if checkpoint else "")


#: the folder of the default run store, relative to the current folder (created when the store is opened)
DEFAULT_STORE_FOLDER = Path("runs")


def default_store_path() -> Path:
    """``$SNNLAB_STORE`` (unless empty; a leading ``~`` is the user's home, as for a path typed in a shell) or
    ``./runs/snnlab.sqlite`` (in :data:`DEFAULT_STORE_FOLDER`)."""
    return Path(os.environ.get("SNNLAB_STORE") or DEFAULT_STORE_FOLDER / "snnlab.sqlite").expanduser()  # ("": default)


def _file_uri(path: Path) -> str:
    """An SQLite ``file:`` URI of the absolute ``path``, from its bytes: a name that is not valid UTF-8 (a latin-1
    folder name, or any non-ASCII name under a C locale) is percent-encoded as the bytes the file system holds.

    Example:
        >>> _file_uri(Path("/tmp/r\xe9sultats/a b.sqlite"))
        'file:/tmp/r%C3%A9sultats/a%20b.sqlite'
    """
    return "file:" + urllib.parse.quote(os.fsencode(path))


def _path_value(path: str | os.PathLike) -> str | bytes:
    """A path as the store keeps it: its text, or where that is not valid UTF-8 (a folder named in latin-1 bytes; any
    non-ASCII name under a C locale) its bytes, as a BLOB that :func:`_path_text` reads back.

    Example:
        >>> _path_value("/tmp/runs/a/checkpoint.pt"), _path_value("/tmp/r\\udce9sultats")
        ('/tmp/runs/a/checkpoint.pt', b'/tmp/r\\xe9sultats')
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def _path_text(value: str | bytes | None) -> str | None:
    """A path :func:`_path_value` stored, as a ``str`` (bytes decoded as the file system's names are)."""
    return os.fsdecode(value) if isinstance(value, bytes) else value


def _message_text(message: str | None) -> str | None:
    """A message as the store can keep it: a character UTF-8 cannot hold (an undecodable file name's byte in an
    error) as its escape, ``\\udce9``."""
    return message if message is None else message.encode("utf-8", "backslashreplace").decode("utf-8")


def _flatten(metrics: dict, prefix: str = "", labels: bool = False) -> dict[str, float | bool | str]:
    """Numeric leaves of a (nested) metrics dict, keys joined with '/'; ``labels``: True/False and text leaves too
    (a summary's ``"delays_rounded": True``, ``"runtime": {"device": "cpu", ...}``).

    Example:
        >>> _flatten({"accuracy": 1, "delays_rounded": True, "runtime": {"device": "cpu", "torch_threads": 1}})
        {'accuracy': 1.0, 'runtime/torch_threads': 1.0}
        >>> _flatten({"delays_rounded": True, "runtime": {"device": "cpu"}}, labels=True)
        {'delays_rounded': True, 'runtime/device': 'cpu'}
    """
    flat: dict[str, float | bool | str] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/", labels))
        elif labels and isinstance(value, (bool, str)):
            flat[name] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
        elif hasattr(value, "item") and getattr(value, "numel", lambda: 2)() == 1:
            flat[name] = float(value.item())
    return flat


def _names(names: list[str], caller: str) -> list[str]:
    """``names`` as a list of metric names (a single name is refused: it would be read as its letters)."""
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"RunStore.{caller}: names must be a list of metric names, got {names!r}")
    return list(names)


def sqlite_advice(exc: BaseException) -> str:
    """What to do about a SQLite error of a run store, as ``"; ..."`` to append to its message (empty when there is
    nothing to add).

    Example:
        >>> import sqlite3
        >>> sqlite_advice(sqlite3.OperationalError("database or disk is full"))[:38]
        '; free disk space where the store is ('
    """
    text = str(exc).lower()
    if "disk is full" in text or "disk i/o error" in text:
        return ("; free disk space where the store is (its -wal and -shm files beside it need room too) and check that "
                "they can be written, then try again")
    if "malformed" in text or "not a database" in text:
        return ("; the file is damaged: keep a copy, recover its runs with `sqlite3 FILE .recover | sqlite3 NEW.sqlite`, "
                "or give another --store")
    if "locked" in text:
        return "; another process holds the store: try again when it is done"
    return ""


@contextmanager
def gc_paused():
    """Python's cyclic garbage collector paused (then restored as it was) while many objects are built at once (here a
    row tuple per row; the dashboard's Bokeh models): each collection their allocations trigger otherwise walks every
    object of the process (a dashboard's is large), which made reading 1.4 M rows three times slower. The pause is
    process-wide (other threads too) and only delays collection: cycles made meanwhile are collected after.

    Example:
        >>> import gc
        >>> with gc_paused():
        ...     paused = not gc.isenabled()
        >>> paused, gc.isenabled()
        (True, True)
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _split_series(run: str, rows: list[tuple]) -> dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]:
    """``{(run, kind, name): (steps, values)}`` of one run's ``(name, kind, step, value)`` rows (in step order), split
    in NumPy: a stable sort by series keeps each series' order."""
    name, kind, step, value = zip(*rows)
    name_code, name_of = pd.factorize(np.array(name, dtype=object))
    kind_code, kind_of = pd.factorize(np.array(kind, dtype=object))
    code = name_code * len(kind_of) + kind_code
    order = np.argsort(code, kind="stable")
    steps = np.fromiter(step, dtype=np.int64, count=len(step))[order]
    values = np.array(value, dtype=np.float64)[order]  # (None, a missing value, becomes NaN)
    codes, starts = np.unique(code[order], return_index=True)
    ends = np.append(starts[1:], len(order))
    return {(run, kind_of[c % len(kind_of)], name_of[c // len(kind_of)]): (steps[a:b], values[a:b])
            for c, a, b in zip(codes.tolist(), starts.tolist(), ends.tolist())}


def varying_columns(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    """Those of ``columns`` whose values differ between the rows of ``frame``: numbers compared as numbers
    (``3`` and ``3.0`` are one value), missing values (None, NaN) as one value of their own (a setting unset in one
    run and set in another differs), anything else (lists, strings) by its ``repr``.

    Example:
        >>> df = pd.DataFrame({"a": [3, 3.0], "b": [None, 5.0], "c": [[16], [16]]})
        >>> varying_columns(df, ["a", "b", "c"])
        ['b']
    """
    def key(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "missing"
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        return repr(v)

    return [c for c in columns if frame[c].map(key).nunique() > 1]


class RunStore:
    """A SQLite-backed store of training runs (see the module docstring).

    Args:
        path: the SQLite file (default :func:`default_store_path`); created with its folder when missing
            (unless read-only).
        timeout: seconds (0 or more) a write (and opening the file) waits for another writer before
            :class:`StoreLocked`.
        read_timeout: seconds a read waits for a store locked by another process [``timeout``]; a UI gives a
            short one so that a locked store shows as an error instead of a frozen page. A read-only store's
            opening waits at least :data:`_READ_ONLY_OPEN_WAIT` (1 s): another session's close locks the store for
            a moment.
        read_only: ``None``: read-write, or read-only when the existing file or its folder cannot be written;
            ``True``: open for reading only (never creates or changes anything; the file must exist);
            ``False``: raise :class:`StoreReadOnly` unless the store can be written. Another value (``"no"``) is a
            ``TypeError``, as for ``follow_file`` (True or False).
        follow_file: for a long-lived store (the one dashboard pages share): outside a transaction, a connection to
            a file since replaced or removed at :attr:`path` (``rm runs.sqlite*`` and a new run, a restored copy)
            is reopened on the file there now, its tables created if it is new (one ``os.stat`` per transaction).
    """

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 30.0,
                 read_timeout: float | None = None, read_only: bool | None = None, follow_file: bool = False) -> None:
        self.follow_file = _flag(follow_file, "follow_file", "RunStore")
        read_only = None if read_only is None else _flag(read_only, "read_only", "RunStore")  # (then `is True`)
        # absolute: a relative path would name another file after os.chdir (and a store may follow its file)
        self.path = (Path(path).expanduser() if path is not None else default_store_path()).absolute()  # ("~/...")
        if self.path.exists() and self.path.is_dir():
            raise ValueError(f"RunStore: {self.path} is a folder; give the path of a .sqlite file")
        self.timeout = float(timeout)
        self.read_timeout = self.timeout if read_timeout is None else float(read_timeout)
        for name, value in (("timeout", self.timeout), ("read_timeout", self.read_timeout)):
            if not value >= 0:  # (NaN too: a wait with no end)
                raise ValueError(f"RunStore: {name} must be 0 or more seconds, got {value!r}")
        self._local = threading.local()
        self._immutable = False  # read-only and the WAL index (-shm) cannot be created: read the file as it is
        self.read_only = bool(read_only)
        if read_only is True:
            if not self.path.exists():
                raise FileNotFoundError(f"RunStore: no run store at {self.path}")
        elif self.path.exists() and not self._writable():
            if read_only is False:
                raise StoreReadOnly(f"RunStore: {self.path} is read-only (the file or its folder is not writable): "
                                    "runs cannot be recorded in it")
            self.read_only = True
        else:
            self._make_folder()
        try:
            self._check_schema()
        except (StoreError, StoreLocked):
            self.close()
            raise
        except sqlite3.DatabaseError as exc:  # "file is not a database", a corrupt file, a locked or unwritable one
            self.close()
            error = self._translate(exc, write=not self.read_only)
            if error is not exc:
                raise error from exc
            if not self.read_only and not self.path.exists() and not os.access(self.path.parent, os.W_OK):
                raise StoreReadOnly(f"RunStore: cannot create the run store {self.path}: its folder is read-only "
                                    f"(not writable)") from exc
            raise StoreError(f"RunStore: {self.path} is not a usable SQLite run store ({exc}){sqlite_advice(exc)}") from exc

    def _make_folder(self) -> None:
        """Create the store's folder; mkdir's ``OSError`` comes out as the same type with a message naming the
        folder, the store and the reason (``[Errno 20] Not a directory: 'runs'`` alone does not say what for)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise type(exc)(f"RunStore: cannot create the folder {self.path.parent} for the run store "
                            f"{self.path.name} ({reason})") from exc

    def _writable(self) -> bool:
        """Whether the existing file can be written, and its folder too (WAL creates ``-wal`` and ``-shm`` files
        next to it) unless those exist and can be written."""
        if not os.access(self.path, os.W_OK):
            return False
        if os.access(self.path.parent, os.W_OK | os.X_OK):
            return True
        sides = [Path(f"{self.path}{suffix}") for suffix in ("-wal", "-shm")]
        return all(side.exists() and os.access(side, os.W_OK) for side in sides)

    def _check_schema(self) -> None:
        """Create the tables in a new file; refuse a foreign layout or a newer version (:class:`StoreError`)."""
        con = self._raw(self.read_timeout if self.read_only else self.timeout)
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"RunStore: {self.path} has store version {version}, newer than this snnlab's "
                             f"({SCHEMA_VERSION}); upgrade snnlab to open it")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, needed in _COLUMNS.items():
            if table not in tables:
                if table in _ADDED_TABLES:  # (an older store: added below, or read without it)
                    continue
                if tables - set(_COLUMNS):
                    raise StoreError(f"RunStore: {self.path} is an SQLite file of another program (tables "
                                     f"{sorted(tables)}), not an snnlab run store")
                if self.read_only:
                    raise StoreError(f"RunStore: {self.path} is not an snnlab run store (no table {table!r}) and "
                                     "is opened read-only")
                continue
            have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            if needed - have:
                raise StoreError(f"RunStore: {self.path} is not an snnlab run store of this version: table {table!r} "
                                 f"lacks column(s) {sorted(needed - have)}")
        # an existing store is brought up to date (version, added tables) at its first write (_prepare_write): one
        # that is only read stays as it was; a new (or half-made) one gets its tables now, for its readers
        self._upgrade = not self.read_only and (version < SCHEMA_VERSION or not set(_COLUMNS) <= tables)
        if self._upgrade and not {t for t in _COLUMNS if t not in _ADDED_TABLES} <= tables:
            self._prepare_write(con, self.timeout)

    def _prepare_write(self, con: sqlite3.Connection, wait: float) -> None:
        """Before a connection's first write: write-ahead logging (an old store's journal mode changes when it is
        written, never when it is only read), and the store's first write adds the tables and version it lacks
        (``IF NOT EXISTS``: another process doing the same at once is harmless)."""
        if not getattr(self._local, "wal", False):
            self._wal_mode(con, wait)
            self._local.wal = True
        if self._upgrade:
            con.executescript(_SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")
            self._upgrade = False

    def _file_id(self) -> tuple[int, int] | None:
        """The identity of the file at :attr:`path` (device, inode), None when there is none."""
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _raw(self, wait: float | None = None) -> sqlite3.Connection:
        """This thread's connection (autocommit mode); opening it waits at most ``wait`` seconds [``timeout``]
        for a lock. With ``follow_file``, outside a transaction, a connection to a file since replaced or removed
        is reopened on the file at :attr:`path` now: a long-lived store would otherwise keep reading, and writing
        into, a file nobody else sees."""
        con = getattr(self._local, "con", None)
        reopened = False
        if (con is not None and self.follow_file and not getattr(self._local, "depth", 0)
                and self._local.file != self._file_id()):
            con.close()
            con = self._local.con = None
            reopened = True
        if con is None:
            wait = self.timeout if wait is None else wait
            if self.read_only:
                con = self._connect_read_only(wait)
            else:
                con = sqlite3.connect(self.path, timeout=wait, isolation_level=None, check_same_thread=True)
                try:  # (write-ahead logging at the first write: _prepare_write)
                    con.execute("PRAGMA synchronous=NORMAL")
                except sqlite3.Error:
                    con.close()
                    raise
            self._local.con, self._local.busy, self._local.wal = con, wait, False
            self._local.file = self._file_id() if self.follow_file else None
            if reopened:
                self._check_schema()
        return con

    def _connect_read_only(self, wait: float) -> sqlite3.Connection:
        """A ``mode=ro`` connection (see :meth:`_open_read_only`), whose opening waits ``wait`` seconds for a lock, and
        at least :data:`_READ_ONLY_OPEN_WAIT`: another read-only session's close (:meth:`_remove_empty_wal`) holds the
        store locked for a moment, and sessions with ``timeout=0`` must not refuse each other for it. Tried again
        (short pauses) until then; a lock held longer (another process's exclusive lock) raises :class:`StoreLocked`.
        Once open, in WAL mode, the connection holds its shared lock until it closes: no other close's removal of the
        files can lock its later reads out, which wait ``wait`` as before."""
        waited = max(wait, _READ_ONLY_OPEN_WAIT)
        deadline = time.monotonic() + waited
        delay, left = 0.001, waited
        while True:
            try:  # (each try's own wait for the lock is cut to the time left: in all, ``waited``)
                return self._open_read_only(wait, min(wait, left))
            except sqlite3.OperationalError as exc:
                if _primary_code(exc) not in _LOCK_CODES:
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._locked(waited) from exc
            _pause(min(delay, left))
            delay = min(delay * 2, 0.05)
            left = max(deadline - time.monotonic(), 0.0)

    def _open_read_only(self, wait: float, first: float | None = None) -> sqlite3.Connection:
        """A ``mode=ro`` connection whose reads wait ``wait`` seconds for a lock, its first read done (waiting ``first``
        seconds [``wait``]); ``immutable=1`` where the WAL index (-shm) cannot be created (the folder is not writable:
        SQLite says "unable to open" or, for a WAL file, ``SQLITE_READONLY_DIRECTORY``), which reads the file as it
        is."""
        first = wait if first is None else first
        uri = _file_uri(self.path.absolute()) + "?mode=ro"
        con = sqlite3.connect(uri + ("&immutable=1" if self._immutable else ""), uri=True, timeout=first,
                              isolation_level=None, check_same_thread=True)
        try:
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file and its WAL index
            if first != wait:  # (SQLite's busy timeout is in ms, a C int)
                con.execute(f"PRAGMA busy_timeout={int(min(wait, 2e6) * 1000)}")
        except sqlite3.OperationalError as exc:
            con.close()
            code = getattr(exc, "sqlite_errorcode", None)
            if ((_primary_code(exc) == sqlite3.SQLITE_CANTOPEN or code in _NO_WAL_INDEX) and not self._immutable
                    and self.path.exists()):
                self._immutable = True
                return self._open_read_only(wait, first)
            raise
        except sqlite3.Error:
            con.close()
            raise
        return con

    def _wal_mode(self, con: sqlite3.Connection, wait: float | None = None) -> None:
        """Switch to write-ahead logging. SQLite answers "database is locked" at once, without waiting, when
        another connection switches a new file at the same moment (a sweep's workers opening one store), so retry
        for up to ``wait`` seconds [``timeout``]."""
        deadline = time.monotonic() + (self.timeout if wait is None else wait)
        delay = 0.005
        while True:
            try:
                con.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if _primary_code(exc) not in _LOCK_CODES or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _translate(self, exc: BaseException, write: bool) -> BaseException:
        """:class:`StoreLocked` for a lock held too long, :class:`StoreReadOnly` for a refused write, else ``exc``."""
        if isinstance(exc, (StoreLocked, StoreReadOnly)) or not isinstance(exc, sqlite3.OperationalError):
            return exc
        code = _primary_code(exc)
        if code in _LOCK_CODES:
            return self._locked(self._write_wait() if write else self.read_timeout)
        if code == sqlite3.SQLITE_READONLY:
            return StoreReadOnly(self._read_only_message())
        return exc

    def _locked(self, waited: float) -> StoreLocked:
        """The :class:`StoreLocked` of this store, after ``waited`` seconds."""
        return StoreLocked(f"RunStore: the run store {self.path} is locked by another process (waited {waited:g} s); "
                           "try again when it is released")

    def _read_only_message(self) -> str:
        why = ("opened read-only" if self._writable() or not self.path.exists()
               else "the file or its folder is not writable")
        return f"RunStore: {self.path} is read-only ({why}); runs cannot be recorded in it: give a writable store"

    def _write_wait(self) -> float:
        """Seconds a write of this thread waits for a lock: :meth:`write_timeout`'s, else ``timeout``."""
        wait = getattr(self._local, "write_wait", None)
        return self.timeout if wait is None else wait

    @contextmanager
    def write_timeout(self, seconds: float):
        """Within the block, this thread's writes wait at most ``seconds`` for another writer (instead of
        ``timeout``; other threads keep theirs): a training thread retrying writes to a locked store gives up soon.

        Example:
            >>> import tempfile, os
            >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
            >>> with store.write_timeout(0.5):
            ...     run = store.create_run({})
            >>> store._write_wait()
            30.0
        """
        seconds = float(seconds)
        if not seconds >= 0:
            raise ValueError(f"RunStore.write_timeout: seconds must be >= 0, got {seconds!r}")
        before = getattr(self._local, "write_wait", None)
        self._local.write_wait = seconds
        try:
            yield self
        finally:
            self._local.write_wait = before

    def _conn(self) -> "_Tx":
        """A write transaction (``BEGIN IMMEDIATE``) on this thread's connection."""
        return _Tx(self, write=True)

    def _read(self) -> "_Tx":
        """A read transaction (deferred: takes no write lock) on this thread's connection."""
        return _Tx(self, write=False)

    @contextmanager
    def snapshot(self):
        """Within the block, every read of this thread sees the same state of the store (one read transaction):
        for several reads that must agree. Writes are refused inside it.

        Example:
            >>> import tempfile, os
            >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
            >>> with store.snapshot():
            ...     runs, results = store.list_runs(), store.summaries()
        """
        with self._read():
            yield self

    # ---------------------------------------------------------------- writing
    def create_run(self, config: dict, name: str | None = None, run_id: str | None = None) -> str:
        """Register a run with its full config; returns its id (``run_id``: register under that id, e.g. a
        run resumed from its checkpoint into another store)."""
        run_id = uuid.uuid4().hex[:12] if run_id is None else str(run_id)
        now = time.time()
        with self._conn() as con:
            con.execute("INSERT INTO runs (run_id, name, status, message, config, created, updated, checkpoint, "
                        "summary) VALUES (?,?,?,?,?,?,?,?,?)",  # (named: a column a user added stays NULL)
                        (run_id, name or run_id, "created", None, json.dumps(config, default=str), now, now, None, None))
        return run_id

    def log_metrics(self, run_id: str, step: int, epoch: int | None = None, metrics: dict | None = None,
                    kind: str = "train") -> None:
        """Append the numeric metrics of one step (``kind``: "train", "eval", ...). ``KeyError`` (nothing written) for
        a run the store does not hold, e.g. one deleted (:meth:`delete_runs`) while a trainer still logs to it: its
        rows would otherwise stay behind without their run, and join a run later registered under its id."""
        now = time.time()
        rows = [(run_id, int(step), epoch, kind, k, v if math.isfinite(v) else None, now)
                for k, v in _flatten(metrics or {}).items()]
        with self._conn() as con:
            if con.execute("UPDATE runs SET updated=? WHERE run_id=?", (now, run_id)).rowcount == 0:
                raise KeyError(f"RunStore: no run {run_id!r}")
            con.executemany("INSERT INTO metrics (run_id, step, epoch, kind, name, value, time) VALUES (?,?,?,?,?,?,?)",
                            rows)

    def set_status(self, run_id: str, status: str, message: str | None = None,
                   only_if: tuple[str, ...] | list[str] | None = None) -> bool:
        """Set a run's status (one of ``STATUSES``) and an optional message (e.g. the error); "running" and "paused"
        also record this process as the run's (see :data:`DIED`). Returns whether the row changed.

        ``only_if``: change it only while its stored status is one of these, checked and written in one statement
        (another process setting the run "running" in between cannot be overwritten); False when it is not.
        ``KeyError`` for a run the store does not hold.

        Example:
            >>> import tempfile, os
            >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
            >>> run = store.create_run({})
            >>> store.set_status(run, "running")
            True
            >>> store.set_status(run, "failed", "not started", only_if=("idle",)), store.get_run(run)["status"]
            (False, 'running')
        """
        if status not in STATUSES:
            raise ValueError(f"RunStore: unknown status {status!r}; choose one of {list(STATUSES)}")
        allowed = self._statuses(only_if, "set_status")
        message = _message_text(message)
        with self._conn() as con:
            if allowed is None:
                cur = con.execute("UPDATE runs SET status=?, message=?, updated=? WHERE run_id=?",
                                  (status, message, time.time(), run_id))
            else:
                cur = con.execute(f"UPDATE runs SET status=?, message=?, updated=? WHERE run_id=? AND status IN "
                                  f"({','.join('?' * len(allowed))})", (status, message, time.time(), run_id, *allowed))
            if cur.rowcount == 0:
                if con.execute("SELECT 1 FROM runs WHERE run_id=?", (run_id,)).fetchone() is None:
                    raise KeyError(f"RunStore: no run {run_id!r}")
                return False
            if status in _LIVE:  # the process that says it runs the run is the one to watch
                con.execute("INSERT OR REPLACE INTO run_owners (run_id, owner) VALUES (?,?)",
                            (run_id, json.dumps(this_process())))
        return True

    @staticmethod
    def _statuses(only_if, caller: str) -> tuple[str, ...] | None:
        """``only_if`` (a status or a list of them, of :data:`STATUSES`) as a tuple; ``None`` stays None."""
        if only_if is None:
            return None
        allowed = (only_if,) if isinstance(only_if, str) else tuple(only_if)
        bad = [s for s in allowed if s not in STATUSES]
        if bad or not allowed:
            raise ValueError(f"RunStore.{caller}: only_if must name statuses of {list(STATUSES)}, got {only_if!r}")
        return allowed

    def set_checkpoint(self, run_id: str, path: str | os.PathLike) -> None:
        """Record the path of a run's latest checkpoint (made absolute: readers may run elsewhere).

        A file holds one checkpoint: another run recorded at the same path (its folder reused, e.g. a training
        with ``overwrite``) loses its checkpoint entry, keeps its metrics and results, and its message says
        "checkpoint replaced by run <run_id>".

        Example:
            >>> import tempfile, os
            >>> folder = tempfile.mkdtemp()
            >>> store = RunStore(os.path.join(folder, "runs.sqlite"))
            >>> old, new = store.create_run({}), store.create_run({})
            >>> store.set_checkpoint(old, os.path.join(folder, "checkpoint.pt"))
            >>> store.set_checkpoint(new, os.path.join(folder, "checkpoint.pt"))
            >>> store.get_run(old)["checkpoint"], store.get_run(old)["message"] == f"checkpoint replaced by run {new}"
            (None, True)
        """
        where, now = _path_value(Path(path).expanduser().resolve()), time.time()
        note = f"checkpoint replaced by run {run_id}"
        with self._conn() as con:
            con.execute("UPDATE runs SET checkpoint=NULL, updated=?, message=CASE WHEN message IS NULL OR message='' "
                        "THEN ? ELSE message || '; ' || ? END WHERE checkpoint=? AND run_id<>?",
                        (now, note, note, where, run_id))
            con.execute("UPDATE runs SET checkpoint=?, updated=? WHERE run_id=?", (where, now, run_id))

    def set_config(self, run_id: str, config: dict) -> None:
        """Replace a run's config (a run resumed with changed settings, e.g. more epochs)."""
        with self._conn() as con:
            cur = con.execute("UPDATE runs SET config=?, updated=? WHERE run_id=?",
                              (json.dumps(config, default=str), time.time(), run_id))
            if cur.rowcount == 0:
                raise KeyError(f"RunStore: no run {run_id!r}")

    def delete_metrics_after(self, run_id: str, step: int) -> int:
        """Delete a run's metrics logged after ``step``; returns how many rows went.

        A run resumed from its checkpoint at ``step`` trains the later steps again: the rows a crashed
        attempt logged for them would otherwise appear twice.

        Example:
            >>> import tempfile, os
            >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
            >>> run = store.create_run({})
            >>> for step in (1, 2, 3):
            ...     store.log_metrics(run, step=step, metrics={"loss": 1.0})
            >>> store.delete_metrics_after(run, 1), store.metrics(run)["step"].tolist()
            (2, [1])
        """
        with self._conn() as con:
            cur = con.execute("DELETE FROM metrics WHERE run_id=? AND step>?", (run_id, int(step)))
        return cur.rowcount

    def delete_runs(self, run_ids: str | list[str], force: bool = False) -> dict[str, str | None]:
        """Delete runs (whole ids; one id or a list) with everything the store holds of them (their row, metrics and
        owner: every table with a ``run_id``), in one transaction; returns ``{run id: its checkpoint path or None}``
        of the runs deleted (``len`` of it: how many).

        All or nothing: ``ValueError`` naming them, and nothing deleted, for ids the store does not hold and for live
        runs ("running" or "paused" whose process may still run them: on this host and alive, or on another host,
        which cannot be told from here); a run whose process is gone (shown :data:`DIED`) may be deleted.
        ``force=True`` deletes live runs too: for runs known not to run any more that the store cannot tell from live
        ones (a "running" row of an older store, with no process recorded; a run that died on another host). A run
        still training goes on training; its later writes to the store are refused. :class:`StoreReadOnly` for a
        read-only store.

        Files are not touched: the runs' checkpoints and run folders stay on disk (the paths returned say where the
        checkpoints are; ``snnlab runs delete --files`` removes them). The store file does not shrink: SQLite keeps
        the freed pages and reuses them for later runs' rows; ``sqlite3 STORE 'VACUUM'`` (while no process uses the
        store; it rewrites the whole file) gives the space back to the disk.

        Example:
            >>> import tempfile, os
            >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
            >>> keep, old = store.create_run({}, name="keep"), store.create_run({}, name="old")
            >>> store.log_metrics(old, step=1, metrics={"loss": 1.0})
            >>> store.delete_runs([old]) == {old: None}, store.list_runs()["name"].tolist(), len(store.metrics(old))
            (True, ['keep'], 0)
        """
        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        bad = [r for r in ids if not isinstance(r, str)]
        if bad:
            raise TypeError(f"RunStore.delete_runs: run ids must be strings, got {bad!r}")
        ids = list(dict.fromkeys(ids))
        force = _flag(force, "force", "RunStore.delete_runs")
        if not ids:
            return {}
        with self._conn() as con:
            owner, join = self._owner_sql(con)
            found: dict[str, tuple] = {}
            for start in range(0, len(ids), 500):  # (SQLite's limit on a statement's parameters)
                part = ids[start:start + 500]
                found.update((r[0], r[1:]) for r in con.execute(
                    f"SELECT runs.run_id, status, checkpoint, {owner} FROM runs{join} "
                    f"WHERE runs.run_id IN ({','.join('?' * len(part))})", part))
            unknown = [r for r in ids if r not in found]
            if unknown:
                raise ValueError(f"RunStore.delete_runs: no run(s) {', '.join(map(repr, unknown))} in {self.path}; "
                                 "nothing deleted")
            gone: dict = {}
            live = [] if force else [r for r in ids if _shown(found[r][0], None, found[r][2], gone)[0] in _LIVE]
            if live:
                def who(run: str) -> str:
                    owner = gone.get(found[run][2], (None,))[0]
                    return (f"{run} ({found[run][0]}, process {owner.get('pid')} on {owner.get('host')})"
                            if isinstance(owner, dict)
                            else f"{run} ({found[run][0]}, its process not recorded)")
                raise ValueError(f"RunStore.delete_runs: run(s) {', '.join(map(who, live))} may still be running (its "
                                 "process is alive, or on another host where it cannot be told); stop them first, or "
                                 "force=True for runs known to have stopped; nothing deleted")
            tables = [t for t, columns in _COLUMNS.items() if "run_id" in columns and t != "runs"]
            present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table in [t for t in tables if t in present] + ["runs"]:  # (the rows that refer to runs first)
                con.executemany(f"DELETE FROM {table} WHERE run_id=?", [(r,) for r in ids])
        return {r: _path_text(found[r][1]) for r in ids}

    def delete_unused_run(self, run_id: str, only_if: tuple[str, ...] | list[str] = ("created", "idle", "failed")
                          ) -> bool:
        """Delete run ``run_id`` (its row and owner) only while it never trained: its stored status is one of
        ``only_if``, it has no checkpoint and no metric rows; checked and deleted in one transaction, so a run another
        process has meanwhile set "running", or logged to, stays. Returns whether it was deleted (False also for a run
        the store does not hold). For the row of a run refused its folder before it trained.

        Example:
            >>> import tempfile, os
            >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
            >>> unused, trained = store.create_run({}), store.create_run({})
            >>> store.log_metrics(trained, step=1, metrics={"loss": 1.0})
            >>> store.delete_unused_run(unused), store.delete_unused_run(trained), len(store.list_runs())
            (True, False, 1)
        """
        allowed = self._statuses(only_if, "delete_unused_run")
        with self._conn() as con:
            row = con.execute(f"SELECT 1 FROM runs WHERE run_id=? AND checkpoint IS NULL AND status IN "
                              f"({','.join('?' * len(allowed))}) AND NOT EXISTS (SELECT 1 FROM metrics WHERE "
                              "metrics.run_id=runs.run_id)", (run_id, *allowed)).fetchone()
            if row is None:
                return False
            tables = [t for t, columns in _COLUMNS.items() if "run_id" in columns and t not in ("runs", "metrics")]
            present = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            for table in [t for t in tables if t in present] + ["runs"]:
                con.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
        return True

    def set_summary(self, run_id: str, summary: dict) -> None:
        """Store a run's final results (e.g. the evaluate() dict) as JSON."""
        with self._conn() as con:
            con.execute("UPDATE runs SET summary=?, updated=? WHERE run_id=?",
                        (json.dumps(summary, default=float), time.time(), run_id))

    # ---------------------------------------------------------------- reading
    @staticmethod
    def _owner_sql(con: sqlite3.Connection) -> tuple[str, str]:
        """The select expression of a run's owner and the join that gives it; none in an older store without the
        table (looked up at each read, in its transaction: a writer, maybe another process, may add it meanwhile)."""
        if con.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='run_owners'").fetchone() is None:
            return "NULL", ""
        return "o.owner", " LEFT JOIN run_owners o ON o.run_id = runs.run_id"

    def list_runs(self) -> pd.DataFrame:
        """One row per run: id, name, status, message, created, updated, checkpoint (status :data:`DIED`, with a
        message saying so, for a run whose process on this host is gone)."""
        with self._read() as con:
            owner, join = self._owner_sql(con)
            rows = con.execute("SELECT runs.run_id, name, status, message, created, updated, checkpoint, "
                               f"{owner} FROM runs{join} ORDER BY created").fetchall()
        gone: dict = {}
        rows = [(r[0], r[1], *_shown(r[2], r[3], r[7], gone, r[6]), r[4], r[5], _path_text(r[6])) for r in rows]
        return pd.DataFrame(rows, columns=["run_id", "name", "status", "message", "created", "updated", "checkpoint"])

    def get_run(self, run_id: str) -> dict:
        """A run's row with its config, summary and owner (the process that last ran it) decoded; the status as
        :meth:`list_runs` shows it."""
        with self._read() as con:
            owner, join = self._owner_sql(con)
            row = con.execute("SELECT runs.run_id, name, status, message, config, created, updated, checkpoint, "
                              f"summary, {owner} FROM runs{join} WHERE runs.run_id=?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"RunStore: no run {run_id!r}")
        keys = ["run_id", "name", "status", "message", "config", "created", "updated", "checkpoint", "summary",
                "owner"]
        run = dict(zip(keys, row))
        run["checkpoint"] = _path_text(run["checkpoint"])
        owner, gone = run["owner"], {}
        run["status"], run["message"] = _shown(run["status"], run["message"], owner, gone, run["checkpoint"])
        run["config"] = json.loads(run["config"])
        run["summary"] = json.loads(run["summary"]) if run["summary"] else None
        run["owner"] = gone[owner][0] if owner in gone else _decode_owner(owner)  # (_shown decoded a live run's)
        return run

    def get_config(self, run_id: str) -> dict:
        """The config a run was started with."""
        return self.get_run(run_id)["config"]

    def metrics(self, run_id: str | list[str] | None = None, kind: str | None = None,
                since_step: int | None = None, names: list[str] | None = None) -> pd.DataFrame:
        """Tidy metrics: columns run_id, step, epoch, kind, name, value, time (optionally filtered; ``names``: only
        these metrics). Ordered by run, step, then the order the rows were logged."""
        query, args = "SELECT run_id, step, epoch, kind, name, value, time FROM metrics WHERE 1=1", []
        if run_id is not None:
            ids = [run_id] if isinstance(run_id, str) else list(run_id)
            query += f" AND run_id IN ({','.join('?' * len(ids))})"
            args += ids
        if kind is not None:
            query += " AND kind=?"
            args.append(kind)
        if since_step is not None:
            query += " AND step>?"
            args.append(int(since_step))
        if names is not None:
            names = _names(names, "metrics")
            query += f" AND name IN ({','.join('?' * len(names))})"
            args += names
        with self._read() as con:
            rows = con.execute(query + " ORDER BY run_id, step, rowid", args).fetchall()
        return pd.DataFrame(rows, columns=["run_id", "step", "epoch", "kind", "name", "value", "time"])

    def metric_series(self, run_ids: str | list[str], names: list[str] | None = None,
                      kind: str | None = None) -> dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]:
        """``{(run_id, kind, name): (steps, values)}``: each metric series of the runs as NumPy arrays (int64 steps,
        float64 values, NaN where missing), in step order (rows of one step in the order logged), as
        :meth:`metrics` would give them, read in one snapshot. Much faster than :meth:`metrics` for long runs
        (no table of every row with its run id, kind, epoch and time). ``names``: only these metrics.

        Example:
            >>> import tempfile, os
            >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
            >>> run = store.create_run({})
            >>> for step in (1, 2, 3):
            ...     store.log_metrics(run, step=step, metrics={"loss": 1.0 / step, "acc": 0.5})
            >>> steps, values = store.metric_series(run, names=["loss"])[(run, "train", "loss")]
            >>> steps.tolist(), values.round(2).tolist()
            ([1, 2, 3], [1.0, 0.5, 0.33])
        """
        ids = [run_ids] if isinstance(run_ids, str) else list(run_ids)
        query, args = "SELECT name, kind, step, value FROM metrics WHERE run_id=?", []
        if names is not None:
            names = _names(names, "metric_series")
            query += f" AND name IN ({','.join('?' * len(names))})"
            args += names
        if kind is not None:
            query += " AND kind=?"
            args.append(kind)
        query += " ORDER BY step, rowid"  # (the index metrics_run gives this order: no sort)
        series: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = {}
        with self._read() as con, gc_paused():
            for run in dict.fromkeys(ids):
                rows = con.execute(query, [run] + args).fetchall()
                if rows:
                    series.update(_split_series(run, rows))
                del rows
        return series

    def summaries(self) -> pd.DataFrame:
        """One row per run that has a summary: config fields and summary metrics side by side (with its True/False and
        text fields: ``delays_rounded``, ``runtime/device``...)."""
        with self._read() as con:
            owner, join = self._owner_sql(con)
            rows = con.execute(f"SELECT runs.run_id, name, status, config, summary, {owner} FROM runs{join} "
                               "WHERE summary IS NOT NULL ORDER BY created").fetchall()
        records, gone = [], {}
        for run_id, name, status, config, summary, owner in rows:
            rec = {"run_id": run_id, "name": name, "status": _shown(status, None, owner, gone)[0]}
            rec.update({f"config.{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                        for k, v in json.loads(config).items()})
            rec.update(_flatten(json.loads(summary), labels=True))
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def close(self) -> None:
        """Close this thread's connection (read-only: and remove the empty ``-wal`` and ``-shm`` files that reading
        made beside the store, where no connection uses them any more: see :meth:`_remove_empty_wal`)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
            if self.read_only and not self._immutable:
                self._remove_empty_wal()

    def _remove_empty_wal(self) -> None:
        """Remove an empty ``-wal`` (and its ``-shm``) beside a WAL store where no connection of any process uses it.

        A read-only (``mode=ro``) connection to a WAL store creates both files when they are missing (its reads need
        a WAL index) but cannot remove them at its close: in SQLite only the last connection to close removes them,
        after a checkpoint that a read-only one may not run; a read-only session (``snnlab runs``) therefore left
        them behind. Deleting them from here is unsafe (nothing but SQLite's locks tells whether a connection still
        uses them: a WAL or WAL index removed under one corrupts what it reads and writes), so SQLite removes them:
        a connection that may write opens the store, reads (which opens the WAL) and closes; if it is the last one
        (SQLite holds an exclusive lock on the store while it checks this and removes the files) it removes them, else
        it leaves them as they are. Done only for a store in WAL mode, with no rollback journal beside it (a
        read-write open would roll that back), and a ``-wal`` that is empty (nothing to checkpoint into the store:
        the store file is not written), in a folder that can be written; any error leaves the files (best effort).
        A commit of another process between that check and the close is checkpointed by this close, as by any
        connection that closes last (SQLite's own rule; nothing is lost). The lock held while the files go refuses
        connections that open meanwhile (their first read): a read-only session's opening waits for it however short
        its timeout (:meth:`_connect_read_only`); this connection's own opening does not wait (timeout 0: it
        gives up, leaving the files, when another connection holds the store locked). Two sessions closing at once
        can each see the other's connection, and both leave the files: where the ``-wal`` is still there after the
        close, one more try after a short random pause (2 to 20 ms) removes them when no connection is left."""
        # (SQLite keeps the -wal and -shm beside the file that a symbolic link to the store points to)
        for attempt in range(2):
            if attempt:  # (the -wal is still there: another connection, or another close at this moment)
                time.sleep(random.uniform(0.002, 0.02))
            if not self._close_last_once():
                return

    def _close_last_once(self) -> bool:
        """One try of :meth:`_remove_empty_wal`: whether it opened and closed its connection and the ``-wal`` is still
        there (False: nothing to do, or done)."""
        real = Path(os.path.realpath(self.path))
        wal = Path(f"{real}-wal")
        try:
            if (wal.stat().st_size != 0 or Path(f"{real}-journal").exists()
                    or not os.access(real.parent, os.W_OK | os.X_OK) or not os.access(real, os.W_OK)):
                return False
            with open(real, "rb") as f:
                header = f.read(20)
        except OSError:  # (no -wal: nothing left behind)
            return False
        if len(header) < 20 or header[18] != 2 or header[19] != 2:  # (file format numbers: 2 = WAL)
            return False
        uri = _file_uri(real) + "?mode=rw"  # (rw: never creates it)
        try:
            con = sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None)
        except sqlite3.Error:
            return False
        try:
            con.execute("PRAGMA query_only=1")  # (reads only; the close does the rest)
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.Error:
            pass
        finally:
            con.close()
        return wal.exists()


class _Tx:
    """Context manager: one transaction on the store's connection of this thread (autocommit outside it).

    ``write``: ``BEGIN IMMEDIATE``, waiting up to the store's ``timeout`` for another writer; else a deferred
    ``BEGIN`` (a WAL snapshot at the first read) that waits up to ``read_timeout``. A read inside an open read
    transaction (:meth:`RunStore.snapshot`) joins it. Lock and read-only errors become :class:`StoreLocked` and
    :class:`StoreReadOnly`.
    """

    def __init__(self, store: RunStore, write: bool) -> None:
        self.store, self.write, self.joined = store, write, False

    def __enter__(self) -> sqlite3.Connection:
        store = self.store
        if self.write and store.read_only:
            raise StoreReadOnly(store._read_only_message())
        wait = store._write_wait() if self.write else store.read_timeout
        try:
            con = self.con = store._raw(wait)
            depth = getattr(store._local, "depth", 0)
            if depth:
                if self.write:
                    raise RuntimeError("RunStore: a write inside snapshot(); write before or after the block")
                self.joined = True
            else:
                if store._local.busy != wait:
                    con.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")
                    store._local.busy = wait
                if self.write:
                    store._prepare_write(con, wait)
                con.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
        except sqlite3.Error as exc:
            error = store._translate(exc, self.write)
            if error is exc:
                raise
            raise error from exc
        store._local.depth = depth + 1
        return con

    def __exit__(self, exc_type, exc, tb) -> None:
        store = self.store
        store._local.depth -= 1
        if self.joined:
            return None
        if exc_type is not None:
            if self.con.in_transaction:
                self.con.execute("ROLLBACK")
            error = store._translate(exc, self.write)
            if error is not exc:
                raise error from exc
            return None
        self.con.execute("COMMIT")
        return None
