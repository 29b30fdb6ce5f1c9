"""One training at a time in a run folder: an exclusive lock held while a trainer trains into it.

Two trainers (processes, or two in one process) given the same ``run_dir`` would overwrite each other's checkpoint
and ``config.json``: the second is refused while the first trains. The lock is ``fcntl.flock`` on
``<run_dir>/.snnlab-lock`` (released by the system when its process dies, so a killed run leaves no stale lock);
where ``fcntl`` does not exist (Windows) folders are not locked, and a file system that refuses locks gets a
warning. On NFS, ``flock`` is emulated with per-process locks: two trainers of one process are not told apart there.
Worker processes forked while the lock is held (DataLoader workers) hold it too until they exit.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # (Windows)
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "RunFolderBusy", "run_folder_lock"]

LOCK_NAME = ".snnlab-lock"


class RunFolderBusy(RuntimeError):
    """Another training holds the run folder."""


@contextlib.contextmanager
def run_folder_lock(run_dir: str | os.PathLike | None) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (nothing for ``None``); :class:`RunFolderBusy` when another training
    holds it, naming its process id.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with run_folder_lock(folder):
        ...     try:
        ...         with run_folder_lock(folder):
        ...             pass
        ...     except RunFolderBusy as e:
        ...         print(str(e).split(";")[0].endswith(f"in use by another training (process {os.getpid()})"))
        True
    """
    if run_dir is None or fcntl is None:
        yield
        return
    path = Path(run_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise RunFolderBusy(f"run_dir {run_dir} is in use by another training (process {holder}); wait for it "
                                "to end or stop it, or give this run another run_dir") from None
        except OSError as exc:  # a file system without locks (some NFS, CIFS or FUSE mounts): train unlocked
            warnings.warn(f"run_dir {run_dir}: its file system refuses locks ({exc}), so a second training into it "
                          "would not be refused", RuntimeWarning, stacklevel=3)
            yield
            return
        try:
            f.seek(0)
            f.truncate()
            f.write(str(os.getpid()))
            f.flush()
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
