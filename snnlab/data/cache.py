"""A tiny on-disk cache for preprocessed samples (e.g. time-binned event frames).

Entries live in ``<cache_dir>/<namespace>-<hash of the parameters>/<index>.pt`` so changing any
preprocessing parameter (bins, window, files) automatically uses a fresh cache folder.

File format (see :func:`write_entry`): a first line ``snnlab-cache 2 <dtype>``, then an ``.npy`` array. Whole-number
float frames (event counts) are stored in the smallest integer dtype that holds them exactly (``uint8``, else
``uint16``, else ``int32``) and given back as ``<dtype>`` (``float32``), bit for bit the tensor that was stored: an
N-MNIST sample takes a quarter of the bytes of float32 and loads faster than ``torch.load``. Files of earlier
versions (``torch.save`` of the tensor, same names, same folders) are still read; earlier versions cannot read the
new files (``torch.load`` raises on them), so they recompute such entries instead of misreading them.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

__all__ = ["DiskCache", "params_key", "files_cache_params", "read_entry", "write_entry", "entry_shape", "write_atomically"]


def params_key(params: dict[str, object]) -> str:
    """Stable short hash of a JSON-serialisable parameter dict.

    Example:
        >>> params_key({"n_time_bins": 10}) == params_key({"n_time_bins": 10})
        True
    """
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def files_cache_params(files: list[str | os.PathLike], cache_dir: str | os.PathLike | None,
                       **extra: object) -> dict | None:
    """Cache-key parameters that change when a file is added, removed, replaced or rewritten (path, size, mtime);
    ``None`` without a ``cache_dir``.

    Each path is keyed resolved (``os.path.realpath``: absolute, symlinks followed, ``..`` removed), so the same
    files reached through a relative path or a symlink share one cache. An absolute path that is already resolved
    is its own resolution, so its key is the one earlier versions gave it (their caches stay valid).

    Example:
        >>> files_cache_params([__file__], None) is None, sorted(files_cache_params([__file__], "c", n=1))
        (True, ['files', 'n'])
        >>> rel = os.path.relpath(__file__)              # the same file under another spelling: the same key
        >>> files_cache_params([rel], "c") == files_cache_params([os.path.realpath(__file__)], "c")
        True
    """
    if cache_dir is None:
        return None
    stats = []
    for f in files:
        st = os.stat(f)
        stats.append((os.path.realpath(f), st.st_size, st.st_mtime_ns))
    return {"files": params_key({"f": stats}), **extra}


_MAGIC = b"snnlab-cache 2 "  # then the dtype given back, "\n", and the .npy array
_COMPACT = (np.uint8, np.uint16, np.int32)  # tried in order for whole-number float arrays


def _compact(a: np.ndarray) -> np.ndarray:
    """``a`` in the smallest of ``uint8`` / ``uint16`` / ``int32`` that gives it back bit for bit, or ``a`` itself
    (non-integer, NaN, infinite or ``-0.0`` values, counts beyond ``int32``, non-float arrays)."""
    if a.dtype.kind != "f" or a.size == 0:
        return a
    lo, hi = float(a.min()), float(a.max())  # (python floats compare exactly with the integer bounds; NaN: none fits)
    for dt in _COMPACT:
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            small = a.astype(dt)
            back = small.astype(a.dtype)
            # bitwise, so -0.0 and fractions (truncated by the cast) keep the float array
            return small if np.array_equal(back.view(f"u{a.itemsize}"), a.view(f"u{a.itemsize}")) else a
    return a


def write_entry(path: str | os.PathLike, value: torch.Tensor) -> None:
    """Write ``value`` to ``path`` in the cache's format (``.npy`` after a one-line header; whole-number float tensors
    in the smallest integer dtype that holds them exactly), or with ``torch.save`` for what ``.npy`` cannot hold
    (non-tensors, tensors needing grad, off the CPU, or of dtypes numpy lacks, e.g. bfloat16). Not atomic.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "0.pt"
        >>> write_entry(f, torch.tensor([0.0, 3.0, 300.0]))
        >>> read_entry(f), f.read_bytes()[:22]
        (tensor([  0.,   3., 300.]), b'snnlab-cache 2 float32')
    """
    a = None
    if isinstance(value, torch.Tensor) and value.device.type == "cpu" and not value.requires_grad:
        try:
            a = value.numpy()
        except (TypeError, RuntimeError):  # a dtype numpy lacks
            a = None
    if a is None or a.dtype.hasobject:
        torch.save(value, path)
        return
    with open(path, "wb") as f:
        f.write(_MAGIC + a.dtype.name.encode() + b"\n")
        np.lib.format.write_array(f, _compact(a), allow_pickle=False)


def read_entry(path: str | os.PathLike) -> torch.Tensor:
    """The tensor :func:`write_entry` wrote to ``path`` (in the dtype it had), or what ``torch.save`` wrote there
    (earlier versions' cache files). Raises on a corrupt or partial file."""
    with open(path, "rb") as f:
        line = f.readline(64)
        if line.startswith(_MAGIC) and line.endswith(b"\n"):
            dtype = np.dtype(line[len(_MAGIC):-1].decode("ascii"))
            a = np.lib.format.read_array(f, allow_pickle=False)
            return torch.from_numpy(a.astype(dtype, copy=False))
    return torch.load(path, weights_only=True)


def entry_shape(path: str | os.PathLike) -> tuple[int, ...] | None:
    """The shape of the tensor :func:`write_entry` wrote to ``path``, from the file's headers alone (the array is not
    read); ``None`` when there is no such file or its headers cannot tell (an earlier version's ``torch.save`` entry,
    a corrupt file).

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "0.pt"
        >>> write_entry(f, torch.zeros(7, 2, 3)); entry_shape(f), entry_shape(f.with_name("1.pt"))
        ((7, 2, 3), None)
    """
    fmt = np.lib.format
    try:
        with open(path, "rb") as f:
            line = f.readline(64)
            if not (line.startswith(_MAGIC) and line.endswith(b"\n")):
                return None
            version = fmt.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                return None
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            return tuple(int(n) for n in read_header(f)[0])
    except (OSError, ValueError, SyntaxError, TypeError):
        return None


def write_atomically(path: Path, write: Callable[[Path], object], fsync: bool = False) -> None:
    """``write(tmp)`` to a temporary file of this writer's own in ``path``'s folder, then rename it over ``path``:
    readers see the old file or the new one, never a partial one, and concurrent writers (processes or threads) never
    share a temporary file. The temporary file is removed when ``write`` or the rename fails. ``fsync=True`` flushes
    the data to disk before the rename (a full disk can refuse it only then).

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "a.txt"
        >>> write_atomically(f, lambda tmp: tmp.write_text("hi"))
        >>> f.read_text(), [p.name for p in f.parent.iterdir()]
        ('hi', ['a.txt'])
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    # O_EXCL: the name is this writer's alone; not mkstemp (always 0600): the umask applies to 0o666 as for the entries
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
    try:
        write(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDWR | getattr(os, "O_BINARY", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class DiskCache:
    """Cache tensors per integer index under a folder keyed by ``params``.

    Writes are atomic: each writer (process or thread) writes its own hidden temporary file
    ``.<index>.pt.<random>.tmp`` in the folder and renames it over ``<index>.pt``, so DataLoader workers, and threads
    of one process, may fill the same entries at once (the last rename wins; every copy holds the same frames). A
    failed write removes its temporary file; one left by a writer that was killed is never read as an entry (entries
    are only ``<index>.pt``). Entries are stored compactly and given back bit for bit (:func:`write_entry`,
    :func:`read_entry`); files written by earlier versions (``torch.save``) are read as before.

    Example:
        >>> import tempfile
        >>> c = DiskCache(tempfile.mkdtemp(), "demo", {"bins": 3})
        >>> calls = []
        >>> f = lambda: calls.append(1) or torch.ones(2)
        >>> c.get_or_compute(0, f).tolist(), c.get_or_compute(0, f).tolist(), len(calls)
        ([1.0, 1.0], [1.0, 1.0], 1)
    """

    def __init__(self, cache_dir: str | os.PathLike, namespace: str, params: dict[str, object]) -> None:
        self.folder = Path(cache_dir).expanduser() / f"{namespace}-{params_key(params)}"
        self.folder.mkdir(parents=True, exist_ok=True)
        meta = self.folder / "params.json"
        if not meta.exists():
            text = json.dumps(params, sort_keys=True, default=str, indent=1).encode()
            write_atomically(meta, lambda tmp: tmp.write_bytes(text))

    def path(self, index: int) -> Path:
        """File that holds entry ``index``."""
        return self.folder / f"{int(index)}.pt"

    def __contains__(self, index: int) -> bool:
        return self.path(index).exists()

    def get_or_compute(self, index: int, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Return the cached tensor for ``index``, computing and storing it on a miss."""
        p = self.path(index)
        if p.exists():
            try:
                return read_entry(p)
            except Exception:  # corrupt/partial file: recompute
                pass
        value = compute()
        write_atomically(p, lambda tmp: write_entry(tmp, value))
        return value
