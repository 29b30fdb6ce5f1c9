"""The run store: runs, their configs, per-step metrics and checkpoint paths in one SQLite file.

SQLite in WAL mode: one writer (a training run) and several readers (the dashboard, a notebook)
work at once. Each thread gets its own connection, so a store object can be shared between the
training thread and the UI thread.

The file carries its layout version in ``PRAGMA user_version`` (:data:`SCHEMA_VERSION`): a file of
another program, a store of a newer snnlab, or a file that is not SQLite is refused with a
:class:`StoreError` instead of failing later with a raw ``sqlite3`` error.

Example:
    >>> import tempfile, os
    >>> store = RunStore(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
    >>> run = store.create_run({"epochs": 1}, name="demo")
    >>> store.log_metrics(run, step=1, epoch=0, metrics={"loss": 0.5})
    >>> store.set_status(run, "finished")
    >>> store.list_runs()[["name", "status"]].values.tolist()
    [['demo', 'finished']]
"""
from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path

import pandas as pd

STATUSES = ("created", "idle", "running", "paused", "finished", "failed", "stopped")
SCHEMA_VERSION = 1  # PRAGMA user_version of a store; 0 = a store written before versioning (same layout)


class StoreError(ValueError):
    """The file is not a run store this snnlab can use (not SQLite, another layout, a newer version)."""

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


def default_store_path() -> Path:
    """``$SNNLAB_STORE`` or ``./runs/snnlab.sqlite``."""
    return Path(os.environ.get("SNNLAB_STORE", Path("runs") / "snnlab.sqlite"))


def _flatten(metrics: dict, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (nested) metrics dict, keys joined with '/'."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
        elif hasattr(value, "item") and getattr(value, "numel", lambda: 2)() == 1:
            flat[name] = float(value.item())
    return flat


class RunStore:
    """A SQLite-backed store of training runs (see the module docstring)."""

    def __init__(self, path: str | os.PathLike | None = None, timeout: float = 30.0) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        if self.path.exists() and self.path.is_dir():
            raise ValueError(f"RunStore: {self.path} is a folder; give the path of a .sqlite file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        self._local = threading.local()
        try:
            self._check_schema()
        except sqlite3.DatabaseError as exc:  # "file is not a database", a corrupt file
            self.close()
            raise StoreError(f"RunStore: {self.path} is not a usable SQLite run store ({exc})") from exc
        except StoreError:
            self.close()
            raise

    def _check_schema(self) -> None:
        """Create the tables in a new file; refuse a foreign layout or a newer version (:class:`StoreError`)."""
        con = self._raw()
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"RunStore: {self.path} has store version {version}, newer than this snnlab's "
                             f"({SCHEMA_VERSION}); upgrade snnlab to open it")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, needed in _COLUMNS.items():
            if table not in tables:
                if tables - set(_COLUMNS):
                    raise StoreError(f"RunStore: {self.path} is an SQLite file of another program (tables "
                                     f"{sorted(tables)}), not an snnlab run store")
                continue
            have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            if needed - have:
                raise StoreError(f"RunStore: {self.path} is not an snnlab run store of this version: table {table!r} "
                                 f"lacks column(s) {sorted(needed - have)}")
        if version < SCHEMA_VERSION:
            con.executescript(_SCHEMA + f"PRAGMA user_version={SCHEMA_VERSION};")

    def _raw(self) -> sqlite3.Connection:
        """This thread's connection (autocommit mode)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True)
            try:
                self._wal_mode(con)
                con.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error:
                con.close()
                raise
            self._local.con = con
        return con

    def _wal_mode(self, con: sqlite3.Connection) -> None:
        """Switch to write-ahead logging. SQLite answers "database is locked" at once, without waiting, when
        another connection switches a new file at the same moment (a sweep's workers opening one store), so retry
        for up to ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                con.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _conn(self) -> "_Tx":
        """A transaction on this thread's connection."""
        return _Tx(self._raw())

    # ---------------------------------------------------------------- writing
    def create_run(self, config: dict, name: str | None = None, run_id: str | None = None) -> str:
        """Register a run with its full config; returns its id (``run_id``: register under that id, e.g. a
        run resumed from its checkpoint into another store)."""
        run_id = uuid.uuid4().hex[:12] if run_id is None else str(run_id)
        now = time.time()
        with self._conn() as con:
            con.execute("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                        (run_id, name or run_id, "created", None, json.dumps(config, default=str), now, now, None, None))
        return run_id

    def log_metrics(self, run_id: str, step: int, epoch: int | None = None, metrics: dict | None = None,
                    kind: str = "train") -> None:
        """Append the numeric metrics of one step (``kind``: "train", "eval", ...)."""
        now = time.time()
        rows = [(run_id, int(step), epoch, kind, k, v if math.isfinite(v) else None, now)
                for k, v in _flatten(metrics or {}).items()]
        with self._conn() as con:
            con.executemany("INSERT INTO metrics VALUES (?,?,?,?,?,?,?)", rows)
            con.execute("UPDATE runs SET updated=? WHERE run_id=?", (now, run_id))

    def set_status(self, run_id: str, status: str, message: str | None = None) -> None:
        """Set a run's status (one of ``STATUSES``) and an optional message (e.g. the error)."""
        if status not in STATUSES:
            raise ValueError(f"RunStore: unknown status {status!r}; choose one of {list(STATUSES)}")
        with self._conn() as con:
            cur = con.execute("UPDATE runs SET status=?, message=?, updated=? WHERE run_id=?",
                              (status, message, time.time(), run_id))
            if cur.rowcount == 0:
                raise KeyError(f"RunStore: no run {run_id!r}")

    def set_checkpoint(self, run_id: str, path: str | os.PathLike) -> None:
        """Record the path of a run's latest checkpoint (made absolute: readers may run elsewhere)."""
        with self._conn() as con:
            con.execute("UPDATE runs SET checkpoint=?, updated=? WHERE run_id=?",
                        (str(Path(path).resolve()), time.time(), run_id))

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

    def set_summary(self, run_id: str, summary: dict) -> None:
        """Store a run's final results (e.g. the evaluate() dict) as JSON."""
        with self._conn() as con:
            con.execute("UPDATE runs SET summary=?, updated=? WHERE run_id=?",
                        (json.dumps(summary, default=float), time.time(), run_id))

    # ---------------------------------------------------------------- reading
    def list_runs(self) -> pd.DataFrame:
        """One row per run: id, name, status, message, created, updated, checkpoint."""
        with self._conn() as con:
            rows = con.execute("SELECT run_id, name, status, message, created, updated, checkpoint "
                               "FROM runs ORDER BY created").fetchall()
        return pd.DataFrame(rows, columns=["run_id", "name", "status", "message", "created", "updated", "checkpoint"])

    def get_run(self, run_id: str) -> dict:
        """A run's row with its config and summary decoded."""
        with self._conn() as con:
            row = con.execute("SELECT run_id, name, status, message, config, created, updated, checkpoint, summary "
                              "FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"RunStore: no run {run_id!r}")
        keys = ["run_id", "name", "status", "message", "config", "created", "updated", "checkpoint", "summary"]
        run = dict(zip(keys, row))
        run["config"] = json.loads(run["config"])
        run["summary"] = json.loads(run["summary"]) if run["summary"] else None
        return run

    def get_config(self, run_id: str) -> dict:
        """The config a run was started with."""
        return self.get_run(run_id)["config"]

    def metrics(self, run_id: str | list[str] | None = None, kind: str | None = None,
                since_step: int | None = None) -> pd.DataFrame:
        """Tidy metrics: columns run_id, step, epoch, kind, name, value, time (optionally filtered)."""
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
        with self._conn() as con:
            rows = con.execute(query + " ORDER BY run_id, step", args).fetchall()
        return pd.DataFrame(rows, columns=["run_id", "step", "epoch", "kind", "name", "value", "time"])

    def summaries(self) -> pd.DataFrame:
        """One row per run that has a summary: config fields and summary metrics side by side."""
        with self._conn() as con:
            rows = con.execute("SELECT run_id, name, status, config, summary FROM runs "
                               "WHERE summary IS NOT NULL ORDER BY created").fetchall()
        records = []
        for run_id, name, status, config, summary in rows:
            rec = {"run_id": run_id, "name": name, "status": status}
            rec.update({f"config.{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                        for k, v in json.loads(config).items()})
            rec.update(_flatten(json.loads(summary)))
            records.append(rec)
        return pd.DataFrame.from_records(records)

    def close(self) -> None:
        """Close this thread's connection."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


class _Tx:
    """Context manager: one IMMEDIATE transaction on a connection (autocommit outside it)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Connection:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, exc_type, *exc) -> None:
        self.con.execute("ROLLBACK" if exc_type else "COMMIT")
