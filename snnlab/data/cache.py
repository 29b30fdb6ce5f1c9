"""A tiny on-disk cache for preprocessed samples (e.g. time-binned event frames).

Entries live in ``<cache_dir>/<namespace>-<hash of the parameters>/<index>.pt`` so changing any
preprocessing parameter (bins, window, files) automatically uses a fresh cache folder.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import torch

__all__ = ["DiskCache", "params_key", "files_cache_params"]


def params_key(params: dict[str, object]) -> str:
    """Stable short hash of a JSON-serialisable parameter dict.

    Example:
        >>> params_key({"n_time_bins": 10}) == params_key({"n_time_bins": 10})
        True
    """
    blob = json.dumps(params, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def files_cache_params(files: list[str], cache_dir: str | os.PathLike | None, **extra: object) -> dict | None:
    """Cache-key parameters that change when a file is added, removed, replaced or rewritten (path, size, mtime);
    ``None`` without a ``cache_dir``.

    Example:
        >>> files_cache_params([__file__], None) is None, sorted(files_cache_params([__file__], "c", n=1))
        (True, ['files', 'n'])
    """
    if cache_dir is None:
        return None
    stats = []
    for f in files:
        st = os.stat(f)
        stats.append((f, st.st_size, st.st_mtime_ns))
    return {"files": params_key({"f": stats}), **extra}


class DiskCache:
    """Cache tensors per integer index under a folder keyed by ``params``.

    Writes are atomic (temp file + rename) so concurrent DataLoader workers are safe.

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
            meta.write_text(json.dumps(params, sort_keys=True, default=str, indent=1))

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
                return torch.load(p, weights_only=True)
            except Exception:  # corrupt/partial file: recompute
                pass
        value = compute()
        tmp = p.with_suffix(f".tmp{os.getpid()}")
        torch.save(value, tmp)
        os.replace(tmp, p)
        return value
