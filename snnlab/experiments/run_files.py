"""The files of deleted runs: a run's checkpoint (while it still holds that run) and its run folder (while the folder
holds nothing but snnlab's own files).

:meth:`RunStore.delete_runs <snnlab.experiments.RunStore.delete_runs>` leaves files on disk and returns each deleted
run's checkpoint path; :func:`remove_run_files` removes them. ``snnlab runs delete --files`` and the dashboard's
Runs tab both call it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunFilesRemoval", "remove_run_files", "run_folder_file"]

#: kinds of :attr:`RunFilesRemoval.lines`
REMOVED, KEPT, ERROR = "removed", "kept", "error"


@dataclass(frozen=True)
class RunFilesRemoval:
    """What :func:`remove_run_files` did for one run.

    Attributes:
        run_id: the run.
        removed: the paths removed (the checkpoint, then its folder), in that order.
        lines: ``(kind, text)`` in the order they happened: kind ``"removed"`` (a path removed), ``"kept"`` (what was
            left and why, or that there was nothing to remove) or ``"error"`` (a removal that failed).
    """

    run_id: str
    removed: tuple[Path, ...] = ()
    lines: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """False when a removal failed (an ``OSError``: permissions, a busy file system...)."""
        return all(kind != ERROR for kind, _ in self.lines)


def run_folder_file(name: str) -> bool:
    """Whether ``name`` is a file snnlab writes in a run folder: the checkpoint, ``config.json``, their temporary
    files while being written (``.checkpoint.pt.<id>.tmp``, ``.config.json.tmp``) and the folder's lock.

    Example:
        >>> [run_folder_file(n) for n in ("checkpoint.pt", ".checkpoint.pt.0a1b.tmp", "config.json", "notes.txt")]
        [True, True, True, False]
    """
    if not isinstance(name, str):
        raise TypeError(f"run_folder_file: name must be a file name (str), got {name!r}")
    from snnlab.training.run_folder import CHECKPOINT_NAME, CONFIG_NAME, CONFIG_TMP_NAME, LOCK_NAME

    return (name in (CHECKPOINT_NAME, CONFIG_NAME, CONFIG_TMP_NAME, LOCK_NAME)
            or (name.startswith(f".{CHECKPOINT_NAME}.") and name.endswith(".tmp")))


def remove_run_files(run_id: str, checkpoint: str | os.PathLike | None) -> RunFilesRemoval:
    """Remove a deleted run's files: its checkpoint file when it still holds that run, and its run folder (the
    checkpoint's, when named ``checkpoint.pt``; ``checkpoint`` may also name the run folder itself, and a link to the
    folder stands for the folder it points to) when the folder holds nothing but snnlab's own files
    (:func:`run_folder_file`); never a folder holding anything else, nor one another training holds (its lock), nor
    a checkpoint another run has saved over it since. Never raises for the files: what it removed, kept and failed
    to remove is in the returned :class:`RunFilesRemoval`.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from snnlab.training.checkpoint import save_checkpoint
        >>> folder = Path(tempfile.mkdtemp()) / "run"
        >>> folder.mkdir()
        >>> ckpt = save_checkpoint(folder / "checkpoint.pt", {"run_id": "r1"})
        >>> done = remove_run_files("r1", ckpt)
        >>> done.ok, [p.name for p in done.removed], folder.exists()
        (True, ['checkpoint.pt', 'run'], False)
        >>> remove_run_files("r2", None).lines
        (('kept', 'run r2: no checkpoint recorded, no files to remove'),)
    """
    if not isinstance(run_id, str):
        raise TypeError(f"remove_run_files: run_id must be a str, got {run_id!r}")
    if checkpoint is not None and not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"remove_run_files: checkpoint must be a path or None, got {checkpoint!r}")
    from snnlab.training.checkpoint import CheckpointError, check_checkpoint_run
    from snnlab.training.run_folder import CHECKPOINT_NAME, LOCK_NAME, RunFolderBusy, run_folder_lock

    removed: list[Path] = []
    lines: list[tuple[str, str]] = []

    def done() -> RunFilesRemoval:
        return RunFilesRemoval(run_id, tuple(removed), tuple(lines))

    def gone(path: Path) -> None:
        removed.append(path)
        lines.append((REMOVED, f"removed {path}"))

    if not checkpoint:
        lines.append((KEPT, f"run {run_id}: no checkpoint recorded, no files to remove"))
        return done()
    ckpt = Path(checkpoint)
    if ckpt.is_dir():  # a run folder (or a link to one) recorded as the checkpoint: the checkpoint in it
        ckpt = ckpt / CHECKPOINT_NAME
    if ckpt.name == CHECKPOINT_NAME and ckpt.parent.is_dir():
        # the folder itself, not a link to it (its emptied link could not be removed as a folder); the checkpoint
        # file keeps its name in it (a link named checkpoint.pt goes, not the file it points to)
        ckpt = ckpt.parent.resolve() / ckpt.name
        folder = ckpt.parent
    else:
        folder = None
    lock = None if folder is None else folder / LOCK_NAME
    had_lock = lock is not None and lock.exists()
    try:
        with run_folder_lock(folder):  # (nothing for None: a checkpoint outside a run folder)
            try:
                check_checkpoint_run(ckpt, run_id)
                ckpt.unlink()
                gone(ckpt)
            except FileNotFoundError:
                lines.append((KEPT, f"run {run_id}: its checkpoint {ckpt} is already gone"))
            except (ValueError, CheckpointError) as exc:  # another run's checkpoint now, or not a checkpoint
                lines.append((KEPT, f"kept {ckpt}{'' if folder is None else ' and its folder'}: {exc}"))
                return done()
            if folder is None:
                return done()
            entries = list(folder.iterdir())
            other = sorted(e.name for e in entries
                           if not run_folder_file(e.name) or e.is_symlink() or not e.is_file())
            if other:
                shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
                lines.append((KEPT, f"kept the folder {folder}: it holds other files too ({shown})"))
                return done()
            for entry in entries:
                entry.unlink(missing_ok=True)
            os.rmdir(folder)  # (never a tree: only an emptied folder goes)
            gone(folder)
            return done()
    except RunFolderBusy as exc:
        lines.append((KEPT, f"kept {ckpt} and its folder: {exc}"))
        return done()
    except OSError as exc:
        lines.append((ERROR, f"could not remove the files of run {run_id}: {exc}"))
        return done()
    finally:
        if lock is not None and not had_lock and folder.is_dir():  # (the lock taken here made it: a kept folder
            try:                                                   # is left as it was)
                lock.unlink(missing_ok=True)
            except OSError:
                pass
