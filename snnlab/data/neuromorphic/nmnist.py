"""N-MNIST (``.bin`` files, 5 bytes per event): the reader, :func:`load_nmnist` and :func:`write_nmnist_bin`."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...extras import require
from ..cache import files_cache_params
from .frames import XYTP_DTYPE, EventFrameDataset, _default_bins, _sorted_by_time
from .roots import NEUROMORPHIC_DATASETS, _missing, _split_folder


def _whole_numbers(a: object, name: str) -> np.ndarray:
    """``a`` as a 1-D int64 array; ``ValueError`` for fractional or non-finite values (a cast would truncate them)."""
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"write_nmnist_bin: {name} must be a 1-D array (one value per event), got shape {arr.shape}")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise ValueError(f"write_nmnist_bin: {name} must hold whole numbers, got {arr[arr != np.round(arr)][:4]}")
    if arr.dtype.kind not in "biuf" and len(arr):
        raise ValueError(f"write_nmnist_bin: {name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def write_nmnist_bin(path: str | os.PathLike, x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> None:
    """Write events in the N-MNIST binary format (for tests and tools).

    Each event is 5 bytes: ``x`` (8 bit), ``y`` (8 bit), then 24 bits with polarity in the top bit
    and a 23-bit timestamp in microseconds (big-endian). Timestamps beyond ``2**23 - 1`` are not
    representable (N-MNIST recordings last ~300 ms). Values the format cannot hold are refused with a ``ValueError``
    (not wrapped or truncated): ``x`` outside 0..255, ``y`` outside 0..239 (240 marks the reader's overflow events),
    ``t`` outside ``0..2**23 - 1``, ``p`` other than 0 / 1, fractional values, arrays of different lengths.

    Example:
        >>> import tempfile, tonic
        >>> f = tempfile.mktemp(suffix=".bin")
        >>> write_nmnist_bin(f, np.array([3]), np.array([4]), np.array([1000]), np.array([1]))
        >>> ev = tonic.io.read_mnist_file(f, dtype=XYTP_DTYPE)
        >>> [int(ev[k][0]) for k in "xytp"]
        [3, 4, 1000, 1]
    """
    x, y, t, p = (_whole_numbers(a, name) for a, name in ((x, "x"), (y, "y"), (t, "t"), (p, "p")))
    if not len(x) == len(y) == len(t) == len(p):
        raise ValueError(f"write_nmnist_bin: x, y, t and p must have one value per event, got lengths {len(x)}, "
                         f"{len(y)}, {len(t)} and {len(p)}")
    if len(t) and (t.min() < 0 or t.max() >= 2**23):
        raise ValueError("write_nmnist_bin: timestamps must be in [0, 2**23) microseconds")
    if len(x) and (x.min() < 0 or x.max() > 255 or y.min() < 0 or y.max() > 239):
        raise ValueError("write_nmnist_bin: x must be in [0, 255] and y in [0, 239] (240 marks overflow events)")
    if len(p) and not np.isin(p, (0, 1)).all():
        raise ValueError(f"write_nmnist_bin: polarities must be 0 or 1 (one bit), got {np.unique(p).tolist()[:8]}")
    raw = np.empty((len(t), 5), dtype=np.uint8)
    raw[:, 0] = x
    raw[:, 1] = y
    raw[:, 2] = ((p & 1) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3] = (t >> 8) & 0xFF
    raw[:, 4] = t & 0xFF
    Path(path).write_bytes(raw.tobytes())


class _NMNISTReader:
    """Read an N-MNIST ``.bin`` file; its events come back sorted by time (as the SHD and ``.npy`` readers' do): the
    frames start at the first event and end at the last, so out-of-order timestamps would misplace them."""

    def __init__(self, first_saccade_only: bool) -> None:
        self.first_saccade_only = first_saccade_only

    def __call__(self, path: str) -> np.ndarray:
        read_mnist_file = require("tonic.io", extra="data", feature="reading N-MNIST files").read_mnist_file

        size = os.path.getsize(path)
        if size % 5:
            raise ValueError(f"{path}: {size} bytes is not a whole number of 5-byte N-MNIST events: the file is "
                             "truncated or not an N-MNIST .bin")
        ev = read_mnist_file(path, dtype=XYTP_DTYPE)
        if self.first_saccade_only:
            ev = ev[ev["t"] < 100_000]
        return _sorted_by_time(ev)


def load_nmnist(
    root: str | os.PathLike,
    split: str = "train",
    n_time_bins: int | None = None,
    time_window: float | None = None,
    duration: float | None = None,
    first_saccade_only: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> EventFrameDataset:
    """N-MNIST from ``root/[NMNIST/]{Train,Test}/<digit>/<id>.bin``: items ``([T, 2, 34, 34], digit)``.

    Any subset of the recordings works (e.g. a few hundred files); at least one ``.bin`` is needed.
    Give ``n_time_bins`` (default 30) or ``time_window`` (microseconds), and optionally ``duration``
    (microseconds): frames then start at t=0 in every sample (see :class:`EventFrameDataset`).

    Example:
        >>> ds = load_nmnist(shared_data_root() / "nmnist_small", "test", n_time_bins=10)  # doctest: +SKIP
        >>> ds[0][0].shape  # doctest: +SKIP
        torch.Size([10, 2, 34, 34])
    """
    n_time_bins = _default_bins(n_time_bins, time_window, 30)
    base = _split_folder("nmnist", root, split)
    files, labels = [], []
    for d in sorted(base.iterdir()):
        # strip(): some copies carry stray whitespace/CR in the digit folder names (e.g. "0\r")
        if d.is_dir() and d.name.strip().isdigit() and len(d.name.strip()) == 1:
            for f in sorted(d.glob("*.bin")):
                files.append(str(f))
                labels.append(int(d.name.strip()))
    if not files:
        raise _missing("nmnist", Path(root), f"no <digit>/<id>.bin files in {base}")
    return EventFrameDataset(
        "nmnist", files, labels, _NMNISTReader(first_saccade_only), NEUROMORPHIC_DATASETS["nmnist"].sensor_size,
        n_time_bins=n_time_bins, time_window=time_window, duration=duration, cache_dir=cache_dir,
        # events_sorted: frames cached before the reader sorted events by time are not reused
        cache_params=files_cache_params(files, cache_dir, first_saccade_only=first_saccade_only, events_sorted=True),
    )
