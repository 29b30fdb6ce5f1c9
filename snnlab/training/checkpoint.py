"""Atomic checkpoints that load with ``torch.load(weights_only=True)``.

:func:`save_checkpoint` writes to a temporary file in the destination folder, flushes and
fsyncs it, then ``os.replace``-s it over the old file: a crash or kill mid-write leaves the
previous checkpoint intact (at worst a stray ``.<name>.*.tmp`` file, removed by the next save).
The file gets the usual mode of a new file (``0o666`` less the umask), like any file the user writes.
Only plain types and tensors go in (the config is stored as a JSON string), so loading never
needs to unpickle arbitrary objects.

A training checkpoint's history (one record per optimiser step) is stored as one JSON text under
:data:`HISTORY_KEY` (:func:`encode_history`), not as a list of dicts: the weights-only unpickler is slow on many
small dicts, and one string costs next to nothing to save and load. :func:`load_checkpoint` gives it back decoded, as
the list ``ckpt["history"]`` that checkpoints of earlier versions hold (and still load with), or, with
``history=False`` for readers of the metadata only, leaves the text undecoded.

Example:
    >>> import tempfile, os, torch
    >>> d = tempfile.mkdtemp()
    >>> p = save_checkpoint(os.path.join(d, "ckpt.pt"), {"epoch": 3, "w": torch.ones(2)})
    >>> load_checkpoint(p)["epoch"]
    3
    >>> p = save_checkpoint(os.path.join(d, "run.pt"), {"epoch": 1, HISTORY_KEY: encode_history([{"loss": 0.5}])})
    >>> load_checkpoint(p)["history"], load_checkpoint(p, history=False)[HISTORY_KEY]
    ([{'loss': 0.5}], '[{"loss":0.5}]')
"""
from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .run_folder import CHECKPOINT_NAME

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "check_checkpoint_run", "to_plain", "HISTORY_KEY",
           "encode_history", "decode_history"]

#: The key of a checkpoint file's history as one JSON text (:func:`encode_history`); earlier versions stored the list
#: of records under ``"history"``.
HISTORY_KEY = "history_json"


class CheckpointError(RuntimeError):
    """A checkpoint file that exists but cannot be read (truncated, corrupt, or not a checkpoint)."""


def to_plain(obj: Any) -> Any:
    """Convert numpy scalars/arrays and 0-d tensors in nested dicts/lists to plain Python (tensors stay tensors)."""
    if isinstance(obj, dict):
        return {str(k) if not isinstance(k, (int, str)) else k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        t = [to_plain(v) for v in obj]
        return t if isinstance(obj, list) else tuple(t)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    return obj


def _json_value(obj: Any) -> Any:
    """``json.dumps``'s hook for what it cannot write itself: numpy scalars as plain numbers, tensors and arrays as
    (nested) lists of them (a callback's ``record["x"] = tensor`` saved before histories were JSON); anything else
    refused."""
    if isinstance(obj, (torch.Tensor, np.ndarray)):
        return (obj.detach().cpu() if isinstance(obj, torch.Tensor) else obj).tolist()
    if isinstance(obj, np.generic):
        value = obj.item()
        # (np.longdouble / np.clongdouble give themselves back: returned, json would call this hook on them forever)
        if not isinstance(value, np.generic):
            return value
    text = repr(obj)
    raise TypeError(f"encode_history: a history record holds a {type(obj).__name__} "
                    f"({text if len(text) <= 60 else text[:57] + '...'}), which a checkpoint's history cannot store: "
                    "records take plain numbers, strings, None, lists and dicts (float(x) for a tensor)")


def encode_history(records: Sequence[Mapping[str, Any]]) -> str:
    """A run's history (its list of records) as the one compact JSON text a checkpoint stores under
    :data:`HISTORY_KEY`; :func:`decode_history` reads it back.

    The round trip is exact for what records hold: ints stay ints, floats keep every bit (NaN and +-inf included),
    strings, None, bools, nested lists and dicts; numpy scalars become plain numbers (as :func:`to_plain` makes
    them), tensors and arrays lists of them (a 0-d one a number). As in any JSON, tuples read back as lists and dict
    keys as strings. Raises ``TypeError`` for a value JSON cannot hold (an object, a complex number).

    Example:
        >>> text = encode_history([{"kind": "step", "step": 1, "loss": float("nan"), "lr": float("inf")}])
        >>> text
        '[{"kind":"step","step":1,"loss":NaN,"lr":Infinity}]'
        >>> decode_history(text)
        [{'kind': 'step', 'step': 1, 'loss': nan, 'lr': inf}]
    """
    if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Sequence):
        raise TypeError(f"encode_history expects a list of records (dicts), got {type(records).__name__}")
    try:
        return json.dumps(list(records), allow_nan=True, separators=(",", ":"), default=_json_value)
    except TypeError as e:  # (json's own: a key that is not a string or number)
        if str(e).startswith("encode_history"):
            raise
        raise TypeError(f"encode_history: the history cannot be written as JSON: {e}") from e
    except ValueError as e:  # (a record that holds itself)
        raise ValueError(f"encode_history: the history cannot be written as JSON: {e}") from e


def decode_history(text: str) -> list[Any]:
    """The list of records that :func:`encode_history` wrote as ``text``.

    Raises ``TypeError`` when ``text`` is not a string and ``ValueError`` when it is not the JSON of a list.

    Example:
        >>> decode_history('[{"step":1,"loss":-Infinity}]')
        [{'step': 1, 'loss': -inf}]
    """
    if not isinstance(text, str):
        raise TypeError(f"decode_history expects the history's JSON text (a str), got {type(text).__name__}")
    try:
        records = json.loads(text)
    except ValueError as e:
        raise ValueError(f"decode_history: the history is not valid JSON: {e}") from e
    if not isinstance(records, list):
        raise ValueError(f"decode_history: the history's JSON holds a {type(records).__name__}, expected a list")
    return records


def _decode_history_in(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """``state`` with its :data:`HISTORY_KEY` text replaced by the decoded list ``"history"`` (in its place)."""
    if HISTORY_KEY not in state:
        return state
    try:
        records = decode_history(state[HISTORY_KEY])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {path}: its history ({HISTORY_KEY}) is unreadable: {e}") from e
    return {("history" if k == HISTORY_KEY else k): (records if k == HISTORY_KEY else v)
            for k, v in state.items() if k != "history"}


def _fsync_dir(folder: Path) -> None:
    try:  # make the rename durable; not supported everywhere (e.g. Windows)
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _os_error_in(exc: BaseException, outside: BaseException | None = None) -> OSError | None:
    """The first ``OSError`` in ``exc`` and its chain (``__cause__``, else ``__context__``), or ``None``; the chain
    ends at ``outside`` (the exception the caller was handling when the failing work began: its ``OSError`` is
    not this failure's).

    Example:
        >>> try:
        ...     try:
        ...         raise OSError(28, "No space left on device")
        ...     except OSError:
        ...         raise RuntimeError("unexpected pos 10240 vs 10134")
        ... except RuntimeError as e:
        ...     print(_os_error_in(e))
        [Errno 28] No space left on device
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and current is not outside and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _save_error(os_error: OSError, path: Path) -> OSError:
    """The ``OSError`` that a failed save of ``path`` raises: ``os_error``'s reason and errno (``OSError(errno, ...)``
    gives the errno's subclass: ``PermissionError`` for EACCES, ...), naming ``path`` and whether a previous
    checkpoint is there."""
    reason = os_error.strerror or str(os_error) or type(os_error).__name__
    text = f"{reason} writing {path}; " + ("the previous checkpoint is kept" if path.is_file()
                                             else "no checkpoint was written")
    return OSError(text) if os_error.errno is None else OSError(os_error.errno, text)


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Atomically write ``state`` (plain types and tensors) to ``path``; returns the path.

    The file appears complete or not at all: the data go to a temporary file in the same
    folder, are flushed and fsynced, and the temporary file is then renamed over ``path``.
    A write that fails with an ``OSError`` (a full disk, even where torch reports it as its own
    ``RuntimeError``) raises an ``OSError`` of the same errno naming ``path``, chained from the original;
    the temporary file is removed and a previous checkpoint at ``path`` is left as it was.

    Example:
        >>> import tempfile, os
        >>> save_checkpoint(os.path.join(tempfile.mkdtemp(), "ckpt.pt"), {"step": 1}).name
        'ckpt.pt'
    """
    if not isinstance(state, dict):
        raise TypeError(f"save_checkpoint expects a dict of plain values and tensors, got {type(state).__name__}")
    path = Path(path)
    handled = sys.exc_info()[1]  # (a save inside the caller's `except OSError:` gets it as every error's context)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        # not mkstemp (always 0600): O_EXCL keeps the name ours, and the kernel applies the umask to 0o666
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    except OSError as exc:  # a read-only folder, a full disk (no inode left): named as a failed write below is
        raise _save_error(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(to_plain(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        os_error = _os_error_in(exc, outside=handled) if isinstance(exc, Exception) else None
        if os_error is None:
            raise
        # torch's zip writer reports a failed write (a full disk) as its own RuntimeError ("unexpected pos ...")
        # with the OSError only in the chain: raise the OSError, naming the file
        raise _save_error(os_error, path) from exc
    _fsync_dir(folder)
    for stale in folder.glob(f".{path.name}.*.tmp"):  # left by earlier crashed writers
        try:
            stale.unlink()
        except OSError:
            pass
    return path


def _load_error_detail(exc: Exception) -> str:
    """The cause in ``torch.load``'s error, without its advice to retry with ``weights_only=False`` (which would run
    whatever code the file holds): the unpickler's own reason where it gives one, else the first line."""
    text = str(exc).strip()
    marker = "WeightsUnpickler error:"
    if marker in text:
        reason = [line.strip() for line in text.split(marker, 1)[1].splitlines() if line.strip()]
        return f"not a weights-only file ({reason[0] if reason else 'refused by the weights-only unpickler'})"
    return (text.splitlines() or [""])[0]


_ZIP_MAGIC = b"PK\x03\x04"  # how every file torch.save writes (zip format, the default since torch 1.6) begins
#: how a file of torch's legacy format begins (a pickle: torch before 1.6, or ``_use_new_zipfile_serialization=False``)
_LEGACY_HEAD = b"\x80"


def _file_head(path: Path) -> bytes | None:
    """The first bytes of the file at ``path`` (enough to tell a zip from a legacy pickle), or ``None`` when it cannot
    be read."""
    try:
        with open(path, "rb") as f:
            return f.read(len(_ZIP_MAGIC))
    except OSError:
        return None


def _is_legacy_file(path: Path) -> bool:
    return (_file_head(path) or b"").startswith(_LEGACY_HEAD)


def _not_a_checkpoint_file(path: Path) -> str | None:
    """Why the file at ``path`` cannot be a checkpoint at all, from its first bytes (``None`` when it could be one,
    e.g. a truncated zip file or a file of torch's legacy format, or cannot be read: torch's error says more there).

    Example:
        >>> import tempfile, os
        >>> p = Path(tempfile.mkdtemp()) / "checkpoint.pt"
        >>> _ = p.write_bytes(b"")
        >>> _not_a_checkpoint_file(p)
        'it is empty (0 bytes): a save was interrupted or the file was truncated'
        >>> _ = p.write_bytes(b"hello")
        >>> _not_a_checkpoint_file(p)
        'it is not a snnlab checkpoint (not a torch zip file)'
    """
    head = _file_head(path)
    if head is None:
        return None
    if not head:
        return "it is empty (0 bytes): a save was interrupted or the file was truncated"
    if head != _ZIP_MAGIC and not head.startswith(_LEGACY_HEAD):
        return "it is not a snnlab checkpoint (not a torch zip file)"
    return None


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu", mmap: bool = False,
                    history: bool = True) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``: no arbitrary code).

    ``mmap=True`` maps the tensors from the file instead of reading them: cheap when only the metadata
    (configuration, flags, results) is needed. (A file of torch's legacy, non-zip format, which cannot be mapped, is read
    whole.) A history stored as JSON text (:data:`HISTORY_KEY`) comes back
    decoded as the list ``"history"``, as earlier versions' files hold it; ``history=False`` leaves the text as it is
    (no decoding: for readers of the metadata only; an earlier version's list is returned as it was stored).

    Raises ``FileNotFoundError`` when the file is missing and :class:`CheckpointError` when it is
    truncated, corrupt, empty, not a torch zip file, or holds something other than a checkpoint dict (or, decoding
    it, a history that is not a JSON list); the message names the file and which of these it is.

    Example:
        >>> import tempfile, os
        >>> empty = os.path.join(tempfile.mkdtemp(), "checkpoint.pt")
        >>> open(empty, "wb").close()
        >>> load_checkpoint(empty, mmap=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        snnlab.training.checkpoint.CheckpointError: checkpoint ...checkpoint.pt is unreadable: it is empty (0 bytes): ...
    """
    path = Path(path)
    if path.is_dir():
        candidate = path / CHECKPOINT_NAME
        if not candidate.exists():
            raise FileNotFoundError(f"no {CHECKPOINT_NAME} in folder {path}")
        path = candidate
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        try:
            state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
        except Exception:
            if not (mmap and _is_legacy_file(path)):
                raise
            # torch maps only zip files: a legacy-format file is read whole instead
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        what = _not_a_checkpoint_file(path)  # (torch's own words there: mmap's advice, an empty EOFError)
        raise CheckpointError(f"checkpoint {path} is unreadable: {what}" if what else
                              f"checkpoint {path} is unreadable (truncated, corrupt, or not written by snnlab): "
                              f"{type(e).__name__}: {_load_error_detail(e)}") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return _decode_history_in(state, path) if history else state


def check_checkpoint_run(path: str | os.PathLike, run_id: str) -> dict[str, Any]:
    """The checkpoint at ``path`` (a file or a run folder; tensors memory-mapped, the history left undecoded:
    ``load_checkpoint(..., history=False)``), after checking it holds run
    ``run_id``: a run store's path can outlive its checkpoint (another run saved over it, e.g. a training with
    ``overwrite`` in the same folder), and loading it for the stored run would show another network under its name.

    Raises ``ValueError`` when the file holds another run (or no run id), plus :func:`load_checkpoint`'s errors.

    Example:
        >>> import tempfile, os
        >>> p = save_checkpoint(os.path.join(tempfile.mkdtemp(), "checkpoint.pt"), {"run_id": "abc"})
        >>> check_checkpoint_run(p, "abc")["run_id"]
        'abc'
        >>> check_checkpoint_run(p, "old")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: check_checkpoint_run: ...checkpoint.pt holds the checkpoint of run 'abc', not run 'old' (...
    """
    ckpt = load_checkpoint(path, mmap=True, history=False)
    check_run(ckpt, path, run_id)
    return ckpt


def check_run(ckpt: dict[str, Any], path: str | os.PathLike, run_id: str) -> None:
    """:func:`check_checkpoint_run`'s test on a checkpoint already loaded from ``path`` (one read: the file cannot
    change between the check and its use)."""
    held = ckpt.get("run_id")
    if held is None or str(held) != str(run_id):
        what = "no run id" if held is None else f"the checkpoint of run {held!r}"
        raise ValueError(f"check_checkpoint_run: {path} holds {what}, not run {run_id!r} (another run saved over it, "
                         "e.g. a training with overwrite in that folder): refusing to load it for that run")
