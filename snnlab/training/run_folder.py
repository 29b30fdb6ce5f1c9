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
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # (Windows)
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "CHECKPOINT_NAME", "CONFIG_NAME", "CONFIG_TMP_NAME", "RunFolderBusy", "RunFolderTaken", "check_run_folder", "refuse_busy_run_folder",
           "run_folder_lock", "warn_unlocked"]

#: the files a training writes in its run folder (named here only; :func:`snnlab.experiments.run_files.run_folder_file`
#: knows them by these names): the lock, the checkpoint (saved atomically through ``.checkpoint.pt.<id>.tmp``), the
#: configuration and the temporary file it is written through
LOCK_NAME = ".snnlab-lock"
CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
CONFIG_TMP_NAME = f".{CONFIG_NAME}.tmp"


class RunFolderBusy(RuntimeError):
    """Another training holds the run folder; ``holder`` is its process id as the lock file gives it (a text,
    ``"unknown"`` when it is not written yet)."""

    def __init__(self, message: str, holder: str = "unknown") -> None:
        super().__init__(message)
        self.holder = holder


class RunFolderTaken(FileExistsError):
    """The run folder holds the checkpoint of another run (or a later save of this one) that a training would
    replace; ``run_id`` is that checkpoint's run, when it could be read."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


def check_run_folder(run_dir: str | os.PathLike, who: str = "Trainer") -> None:
    """Refuse a run folder that a training could not write into, before anything trains: ``NotADirectoryError``
    when ``run_dir`` (or a folder above it) is a file, ``IsADirectoryError`` when one of the files a run writes there
    (``checkpoint.pt``, ``config.json``, the lock) is a folder; each message names the path and starts with ``who``.
    A folder that does not exist yet is fine (the training creates it).

    Example:
        >>> import os, tempfile
        >>> folder = tempfile.mkdtemp()
        >>> check_run_folder(os.path.join(folder, "new", "run"))          # created when the run starts
        >>> os.mkdir(os.path.join(folder, "checkpoint.pt"))
        >>> try:
        ...     check_run_folder(folder)
        ... except IsADirectoryError as e:
        ...     print(str(e).split(":")[0])
        Trainer
    """
    run_dir = Path(run_dir)
    for path in (run_dir, *run_dir.parents):
        if path.is_dir():
            break
        if os.path.lexists(path):  # a file, or a link to nothing or to a file
            what = "run_dir" if path == run_dir else f"run_dir {str(run_dir)!r}: the path"
            kind = "a link to no folder" if path.is_symlink() else "a file"
            raise NotADirectoryError(f"{who}: {what} {str(path)!r} is {kind}, not a folder; give a folder for the "
                                     "run (it is created when missing)")
    for name in (CHECKPOINT_NAME, CONFIG_NAME, LOCK_NAME):
        path = run_dir / name
        if path.is_dir():
            raise IsADirectoryError(f"{who}: {str(path)!r} is a folder, but a run keeps its {name} file there; "
                                    "move or remove that folder, or give the run another run_dir")


#: frames a lock warning skips to reach the user's line: snnlab's, torch's and contextlib's (a lock entered through
#: a ``with`` statement or an ``ExitStack``)
_SKIPPED_DIRS = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep
                      for m in (sys.modules["snnlab"], sys.modules.get("torch") or sys.modules["snnlab"]))
_SKIPPED_FILES = (os.path.abspath(contextlib.__file__),)


def _user_level() -> int:
    """The ``stacklevel`` of the first caller outside snnlab, torch and ``contextlib``, for a warning raised in the
    caller of this function (as :func:`snnlab.core.validation.user_stacklevel`, which stops at ``contextlib``)."""
    level, frame = 1, sys._getframe(1)
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not (name.startswith(_SKIPPED_DIRS) or name in _SKIPPED_FILES):
            break
        frame, level = frame.f_back, level + 1
    return level


def warn_unlocked(run_dir: str | os.PathLike, exc: OSError) -> None:
    """The ``RuntimeWarning`` for a run folder whose file system refuses locks (what :func:`run_folder_lock` says by
    default), pointing at the user's line.

    Example:
        >>> import errno, warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     warn_unlocked("runs/a", OSError(errno.ENOLCK, "No locks available"))
        >>> "refuses locks" in str(caught[0].message)
        True
    """
    warnings.warn(f"run_dir {run_dir}: its file system refuses locks ({exc}), so a second training into it would not "
                  "be refused", RuntimeWarning, stacklevel=_user_level())


@contextlib.contextmanager
def run_folder_lock(run_dir: str | os.PathLike | None,
                    on_unlocked: Callable[[str | os.PathLike, OSError], None] | None = None) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block (nothing for ``None``); :class:`RunFolderBusy` when another training
    holds it, naming its process id. On a file system that refuses locks the block runs unlocked, after
    ``on_unlocked(run_dir, error)`` (default :func:`warn_unlocked`; a trainer passes its own, to warn once).

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
                                "to end or stop it, or give this run another run_dir", holder=holder) from None
        except OSError as exc:  # a file system without locks (some NFS, CIFS or FUSE mounts): train unlocked
            (on_unlocked or warn_unlocked)(run_dir, exc)
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


def refuse_busy_run_folder(run_dir: str | os.PathLike | None) -> None:
    """:class:`RunFolderBusy` when another training holds ``run_dir``'s lock, checked before anything reads the
    folder's checkpoint (whose state, and what to do with it, would change under that training). Only probes: the
    lock is tried and let go at once (the training takes it when it starts: :func:`run_folder_lock`; the lock table
    of ``/proc/locks`` is not read instead, as a container's leaves out locks held outside it). A folder without a
    lock file is held by no one and is left as it is (nothing created), as is one whose lock
    file cannot be opened or locked (a read-only folder, a file system without locks: the training's own claim says
    so).

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> refuse_busy_run_folder(folder), os.listdir(folder)          # no lock file: nothing to probe, nothing made
        (None, [])
    """
    if run_dir is None or fcntl is None or not (Path(run_dir) / LOCK_NAME).is_file():
        return
    try:
        with run_folder_lock(run_dir, on_unlocked=lambda folder, exc: None):
            pass
    except OSError:
        return
