"""Neuromorphic datasets (SHD, SSC, N-MNIST, DVS Gesture, POKER-DVS) from a LOCAL folder only.

The files are read directly (``h5py`` for SHD/SSC, :func:`tonic.io.read_mnist_file` for
N-MNIST, ``numpy.load`` for tonic's preprocessed DVS Gesture / POKER-DVS arrays) and binned into
the frames of :class:`tonic.transforms.ToFrame` (a vectorised ``np.bincount`` over tonic's own slices,
:func:`_frame_counts`; float32 counts, which do not wrap past 32767 events per cell as tonic's int16 frames do). tonic's dataset classes are never constructed, so no download
or checksum step can ever run. A missing or incomplete folder raises ``FileNotFoundError`` that
says which files to put where and where to get them.

Samples are time-major frames ``[T, C...]`` (``[T, 700]`` for SHD/SSC, ``[T, ceil(700 / channel_bin)]``
with ``channel_bin`` adjacent channels summed, ``[T, 2, H, W]`` for the cameras);
:func:`make_neuromorphic_loader` yields batches ``[T, B, C...]``. With ``cache_dir``
each binned sample is stored once on disk (keyed by every binning parameter), so later epochs
skip re-binning.

Expected layouts (``root`` is the folder you pass; the tonic sub-folder name is optional)::

    root/[SHD/]shd_train.h5, shd_test.h5                 (zenkelab.org/datasets, gunzip the .h5.gz)
    root/[SSC/]ssc_train.h5, ssc_valid.h5, ssc_test.h5   (same site)
    root/[NMNIST/]{Train,Test}/<digit>/<id>.bin          (Orchard et al., Train.zip / Test.zip)
    root/[DVSGesture/]ibmGestureTrain|ibmGestureTest/userNN_<lighting>/<label>.npy
                                                        (tonic's preprocessed ibmGesture*.tar.gz)
    root/[POKERDVS/]pips_train|pips_test/<folder ending in cl|he|di|sp>/<id>.npy
                                                        (tonic's pips_train.tar.gz / pips_test.tar.gz)
"""
from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .cache import DiskCache, files_cache_params
from ..core.validation import is_integer
from ..extras import require
from .collate import time_major_collate

__all__ = [
    "NEUROMORPHIC_DATASETS",
    "EventFrameDataset",
    "load_shd",
    "load_ssc",
    "load_nmnist",
    "load_dvs_gesture",
    "load_pokerdvs",
    "load_neuromorphic",
    "make_neuromorphic_loader",
    "shared_data_root",
    "write_nmnist_bin",
    "whole_frames",
    "MAX_FRAMES",
    "check_frame_settings",
    "MAX_SAMPLE_BYTES",
]

AUDIO_DTYPE = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])
XYTP_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


BINNING_VERSION = 5  # part of every cache key: raise it when the binning of a sample changes (5: counts past 32767)

MAX_FRAMES = 1_000_000  # frames per sample; more means the times were almost surely not in microseconds
MAX_SAMPLE_BYTES = 4 * 2**30  # float32 frames of one sample
_UNITS_HINT = ("time_window and duration are in microseconds (SHD/SSC files store seconds, but the loaders "
               "convert them: 10 ms frames over 1 s are time_window=10_000, duration=1_000_000)")


def _qualified_name(obj: object) -> str:
    """``module.qualname`` of a function, or of an object's class (a reader instance).

    Example:
        >>> _qualified_name(whole_frames)
        'snnlab.data.neuromorphic.whole_frames'
    """
    target = obj if hasattr(obj, "__qualname__") else type(obj)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(obj).__name__)}"


def whole_frames(duration: float, time_window: float) -> int:
    """Number of whole ``time_window`` frames in ``duration``: ``floor(duration / time_window)``, but a quotient
    within a relative 1e-9 of an integer counts as that integer (``1e6 / (1e6 / 300)`` is 300 frames, not 299).

    Example:
        >>> whole_frames(1_000_000, 1_000_000 / 300), whole_frames(3_500, 1_000), whole_frames(999, 1_000)
        (300, 3, 0)
    """
    q = float(duration) / float(time_window)
    n = round(q)
    return int(n) if abs(q - n) <= 1e-9 * max(1.0, q) else int(math.floor(q))


def check_frame_settings(name: str, n_time_bins: int | None, time_window: float | None,
                         duration: float | None) -> None:
    """``ValueError`` (its message starting with ``name``) unless the frame settings of an event dataset can cut a
    recording into frames: exactly one of ``n_time_bins`` (an int >= 1) and ``time_window`` (microseconds, >= 1),
    ``duration`` a finite number of microseconds > 0 holding at least one whole ``time_window``. Used by
    :class:`EventFrameDataset` and by the experiment config's ``validate()`` before anything is loaded.

    Example:
        >>> check_frame_settings("shd", None, 10_000, 1_000_000)        # 100 frames of 10 ms
        >>> check_frame_settings("shd", None, 0.01, None)
        Traceback (most recent call last):
        ...
        ValueError: shd: time_window=0.01 us is shorter than the 1 us resolution of the event times; time_window and duration are in microseconds (SHD/SSC files store seconds, but the loaders convert them: 10 ms frames over 1 s are time_window=10_000, duration=1_000_000)
    """
    if n_time_bins is not None and time_window is not None:
        raise ValueError(f"{name}: give exactly one of n_time_bins or time_window (microseconds), "
                         f"got n_time_bins={n_time_bins!r} and time_window={time_window!r}")
    if n_time_bins is None and time_window is None:
        raise ValueError(f"{name}: give n_time_bins or time_window (microseconds)")
    if n_time_bins is not None and (isinstance(n_time_bins, bool) or not isinstance(n_time_bins, (int, np.integer))
                                    or n_time_bins < 1):
        raise ValueError(f"{name}: n_time_bins must be an int >= 1, got {n_time_bins!r}")
    for arg, value in (("time_window", time_window), ("duration", duration)):
        if value is not None and not (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
                                      and 0 < float(value) < math.inf):
            raise ValueError(f"{name}: {arg} must be a finite number of microseconds > 0, got {value!r}")
    if time_window is not None and float(time_window) < 1:
        raise ValueError(f"{name}: time_window={time_window!r} us is shorter than the 1 us resolution of the event "
                         f"times; {_UNITS_HINT}")
    if time_window is not None and duration is not None and whole_frames(duration, time_window) < 1:
        raise ValueError(f"{name}: duration ({duration!r} us) is shorter than one time_window ({time_window!r} us): "
                         f"no whole frame fits; lengthen duration or shorten time_window")


@dataclass(frozen=True)
class _Spec:
    sensor_size: tuple[int, int, int]
    n_classes: int
    subfolder: str
    source: str
    longest_us: float | None = None  # about the longest recording (a generous bound): estimates the frames of a
    # time_window alone, for the memory estimate, the label and validate()'s max_delay check


NEUROMORPHIC_DATASETS: dict[str, _Spec] = {
    "shd": _Spec((700, 1, 1), 20, "SHD",
                 "https://zenkelab.org/datasets/ (shd_train.h5.gz, shd_test.h5.gz; gunzip them)", 1.4e6),
    "ssc": _Spec((700, 1, 1), 35, "SSC",
                 "https://zenkelab.org/datasets/ (ssc_train.h5.gz, ssc_valid.h5.gz, ssc_test.h5.gz; gunzip them)",
                 1.0e6),
    "nmnist": _Spec((34, 34, 2), 10, "NMNIST",
                    "https://www.garrickorchard.com/datasets/n-mnist (Train.zip and Test.zip, unzip them)", 0.35e6),
    "dvsgesture": _Spec((128, 128, 2), 11, "DVSGesture",
                        "tonic's preprocessed archives ibmGestureTrain.tar.gz / ibmGestureTest.tar.gz "
                        "(https://figshare.com/ndownloader/files/38022171 and .../38020584), extract them", 7e6),
    "pokerdvs": _Spec((35, 35, 2), 4, "POKERDVS",
                      "tonic's pips_train.tar.gz / pips_test.tar.gz (POKER-DVS, "
                      "http://www2.imse-cnm.csic.es/caviar/POKERDVS.html), extract them"),
}


def shared_data_root() -> Path:
    """Default folder of datasets: ``$SNNLAB_SHARED_DATA``, else ``shared/data`` next to a source checkout
    (``<checkout>/../shared/data``) when that folder exists, else ``$XDG_DATA_HOME/snnlab`` (default
    ``~/.local/share/snnlab``). Loaders and configurations take their own folder too (``data_root=``,
    ``snnlab train --data-root``).

    Example:
        >>> isinstance(shared_data_root(), Path)
        True
    """
    env = os.environ.get("SNNLAB_SHARED_DATA")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[2]  # the repository when snnlab runs from a source tree
    repo_data = checkout.parent / "shared" / "data"
    if (checkout / "pyproject.toml").is_file() and repo_data.is_dir():
        return repo_data
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "snnlab"


_WHERE_DATA_GOES = ("Pass the folder holding it as data_root= (snnlab train --data-root PATH, the dashboard's "
                   "data_root field) or set SNNLAB_SHARED_DATA to it.")


def _missing(name: str, root: Path, what: str) -> FileNotFoundError:
    spec = NEUROMORPHIC_DATASETS[name]
    also = ", ".join(str(b) for b in _bases(name, root)[1:])
    return FileNotFoundError(
        f"{name}: {what} under {root} (also looked in {also}). "
        f"Get the data from {spec.source} and place it as described: {_LAYOUT[name]}. {_WHERE_DATA_GOES} "
        "snnlab never downloads datasets."
    )


_LAYOUT = {
    "shd": "<root>/shd_train.h5 and <root>/shd_test.h5 (HDF5 with spikes/times, spikes/units, labels)",
    "ssc": "<root>/ssc_train.h5, <root>/ssc_valid.h5, <root>/ssc_test.h5 (HDF5 with spikes/times, spikes/units, labels)",
    "nmnist": "<root>/NMNIST/Train/<digit>/<id>.bin and <root>/NMNIST/Test/<digit>/<id>.bin",
    "dvsgesture": "<root>/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy (and ibmGestureTest/...)",
    "pokerdvs": "<root>/POKERDVS/pips_train/<folder ending in cl|he|di|sp>/<id>.npy (and pips_test/...)",
}


# Further folders (relative to root) searched for a dataset: the shared data folder keeps its N-MNIST
# subset in nmnist_small/NMNIST (see shared_data_root()), so that folder works as a root for every dataset.
_ALSO_UNDER: dict[str, tuple[str, ...]] = {"nmnist": ("nmnist_small/NMNIST",)}


def _bases(name: str, root: str | os.PathLike) -> list[Path]:
    """The folders searched for dataset ``name`` under ``root``, in order."""
    root = Path(root).expanduser()
    return [root, root / NEUROMORPHIC_DATASETS[name].subfolder] + [root / r for r in _ALSO_UNDER.get(name, ())]


def _resolve(name: str, root: str | os.PathLike, rel: str) -> Path | None:
    for base in _bases(name, root):
        if (base / rel).exists():
            return base / rel
    return None


def _split_folder(name: str, root: str | os.PathLike, split: str, train: str, test: str) -> Path:
    """The existing folder of ``split`` (``train`` / ``test`` folder names) under ``root``; clear errors otherwise."""
    if split not in ("train", "test"):
        raise ValueError(f"{name}: unknown split {split!r}; choose 'train' or 'test'")
    folder = train if split == "train" else test
    base = _resolve(name, root, folder)
    if base is None:
        raise _missing(name, Path(root), f"folder {folder}/ not found")
    return base


def check_channel_bin(name: str, channel_bin: object, sensor_size: tuple[int, int, int]) -> int:
    """``channel_bin`` as an int in ``1..W`` (``1`` for any sensor, more only for a 1-D ``(W, 1, 1)`` one); a
    ``TypeError`` / ``ValueError`` naming it and the fix otherwise.

    Example:
        >>> check_channel_bin("shd", 5, (700, 1, 1))
        5
    """
    w, h, p = (int(v) for v in sensor_size)
    how = (f"channel_bin=k sums each group of k adjacent channels into one (e.g. channel_bin=5: {w} -> "
           f"{-(-w // 5)} channels); 1 = no binning")
    if not is_integer(channel_bin):
        raise TypeError(f"{name}: channel_bin must be an int in 1..{w}, got {channel_bin!r}; {how}")
    if channel_bin != 1 and not (h == 1 and p == 1):
        raise ValueError(f"{name}: channel_bin={channel_bin!r} applies to 1-D sensors (SHD/SSC) only, not sensor size "
                         f"{tuple(sensor_size)}; leave channel_bin=1")
    if not 1 <= channel_bin <= w:
        raise ValueError(f"{name}: channel_bin must be in 1..{w} (the sensor has {w} channels), got {channel_bin!r}; "
                         f"{how}")
    return int(channel_bin)


def _default_bins(n_time_bins: int | None, time_window: float | None, default: int) -> int | None:
    """``n_time_bins``, or the dataset's ``default`` when neither it nor ``time_window`` is given."""
    return default if n_time_bins is None and time_window is None else n_time_bins


# ----------------------------------------------------------------------------------------------
# binning: tonic's ToFrame(time_window=...), vectorised
# ----------------------------------------------------------------------------------------------
def _time_window_slices(t: np.ndarray, time_window: float, start_time=None, end_time=None, overlap: float = 0.0,
                        include_incomplete: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(first, stop)`` event indices of every frame, exactly as ``tonic.slicers.SliceByTime`` computes them
    (same expressions in the same order, so the same floating-point rounding at the window edges; ``t`` need
    not be sorted: the indices are then whatever ``np.searchsorted`` gives, as in tonic)."""
    stride = time_window - overlap
    if not stride > 0:
        raise AssertionError(f"time_window - overlap must be > 0, got {time_window!r} - {overlap!r}")
    start_time = t[0] if start_time is None else start_time
    end_time = t[-1] if end_time is None else end_time
    duration = end_time - start_time
    if include_incomplete:
        n_slices = int(np.ceil((duration - time_window) / stride) + 1)
    else:
        n_slices = int(np.floor((duration - time_window) / stride) + 1)
    n_slices = max(n_slices, 1)
    window_start_times = np.arange(n_slices) * stride + start_time
    window_end_times = window_start_times + time_window
    return np.searchsorted(t, window_start_times), np.searchsorted(t, window_end_times)


def _frame_counts(t: np.ndarray, x: np.ndarray, y: np.ndarray | None, p: np.ndarray, sensor_size: tuple[int, int, int],
                  time_window: float, start_time=None, end_time=None, overlap: float = 0.0,
                  include_incomplete: bool = False) -> np.ndarray:
    """Event counts (int64) per frame and cell: ``[n, P, H, W]``, or ``[n, P, W]`` without ``y``, for the frames of
    ``tonic.transforms.ToFrame(sensor_size, time_window, overlap=, include_incomplete=, start_time=, end_time=)``:
    event ``k`` counts in frame ``i`` for every ``i`` with ``first[i] <= k < stop[i]`` (tonic's ``events[first:stop]``
    slices), with one ``np.bincount`` instead of tonic's per-frame ``np.add.at``. ``t`` is not empty and the
    coordinates lie on the sensor (``0 <= x < W``, ``0 <= y < H``, ``0 <= p < P``)."""
    w, h, n_pol = (int(v) for v in sensor_size)
    if n_pol == 1 and len(p) and (p != p[0]).any():  # tonic's check; it then sets every polarity to 0
        raise ValueError("Single polarity sensor, but events contain both polarities.")
    first, stop = _time_window_slices(t, time_window, start_time, end_time, overlap, include_incomplete)
    n = len(first)
    lengths = np.maximum(stop - first, 0)
    frame = np.repeat(np.arange(n, dtype=np.intp), lengths)
    if n == 1 or (np.array_equal(first[1:], stop[:-1]) and (stop >= first).all()):
        sel = slice(int(first[0]), int(stop[-1]))  # contiguous frames (the usual case): one slice of the events
    else:  # overlapping, gapped or (unsorted times) out-of-order slices: gather every slice's events
        offsets = np.cumsum(lengths) - lengths
        sel = np.arange(int(lengths.sum()), dtype=np.intp) + np.repeat(first - offsets, lengths)
    plane = w if y is None else h * w
    cell = frame * (n_pol * plane)  # flat index of (frame, p, y, x) in intp, whatever the events' dtypes
    cell += x[sel].astype(np.intp, copy=False)
    if y is not None:
        cell += y[sel].astype(np.intp) * w
    if n_pol != 1:
        cell += p[sel].astype(np.intp) * plane
    counts = np.bincount(cell, minlength=n * n_pol * plane)
    return counts.reshape((n, n_pol, w) if y is None else (n, n_pol, h, w))


# ----------------------------------------------------------------------------------------------
# generic dataset
# ----------------------------------------------------------------------------------------------
class EventFrameDataset(Dataset):
    """Bin event recordings into time-major frames (tonic's ``ToFrame`` frames, by ``np.bincount``), cached on request.

    Args:
        name: dataset name (cache namespace).
        items: one descriptor per sample, passed to ``reader``.
        labels: int label per sample (one per item).
        reader: ``reader(item) -> structured numpy events`` sorted by ``t``: fields ``t`` (microseconds), ``x``, ``p``
            and, for a 2-D sensor (``H > 1``), ``y`` -- as :data:`AUDIO_DTYPE` / :data:`XYTP_DTYPE`; anything else
            raises ``TypeError``.
        sensor_size: ``(W, H, P)``.
        n_time_bins: fixed number of frames per sample: ``n`` equal windows covering the first to
            the last event (every event is counted); the default (``None``) means 100 unless
            ``time_window`` is given. Or
        time_window: frame length in microseconds (at least 1: event times are whole microseconds).
            With ``duration`` (microseconds, at least one window) the frames start at 0 and every
            sample has ``duration / time_window`` whole frames (rounded down, see :func:`whole_frames`;
            events past the last whole frame are dropped, with a warning when that drops every event of
            a sample); without it they start at the sample's first event and run until its last event
            is counted, so the number of frames varies.
        cache_dir: folder for the binned-sample cache (``None`` = no cache).
        cache_params: extra parameters that identify the files (part of the cache key). Give them with
            ``cache_dir``: without them the key holds only ``name``, the number of items, the binning settings and
            the reader's qualified name (``module.function``; every ``lambda`` of one function has the same), so
            another reader or changed files under the same ``name`` would get the stale cached frames (a
            ``UserWarning`` says so). :func:`~snnlab.data.cache.files_cache_params` identifies a list of files.
        channel_bin: for a 1-D sensor ``(W, 1, 1)``, sum each group of ``channel_bin`` adjacent channels: unit ``c``
            counts in channel ``c // channel_bin`` of ``ceil(W / channel_bin)`` (the last group may be smaller).
            ``sensor_size`` is then the binned ``(ceil(W / channel_bin), 1, 1)``; events are checked against the
            unbinned ``event_sensor_size`` first. Default 1 (no binning).

    A sample may have at most :data:`MAX_FRAMES` frames and :data:`MAX_SAMPLE_BYTES` bytes (more means the
    times were almost surely not given in microseconds). Events outside the sensor raise ``ValueError``, and
    errors while reading or binning a sample name its file.

    Items are ``(frames float32 [T, P, H, W] or [T, W] for 1-D sensors, label int64)``; with ``channel_bin``,
    ``[T, ceil(W / channel_bin)]``.

    Example:
        >>> ev = np.array([(0, 1, 0), (500, 2, 0)], dtype=AUDIO_DTYPE)
        >>> ds = EventFrameDataset("toy", [0], [3], lambda i: ev, (4, 1, 1), n_time_bins=2)
        >>> x, y = ds[0]
        >>> x.shape, x.sum(0).tolist(), int(y)
        (torch.Size([2, 4]), [0.0, 1.0, 1.0, 0.0], 3)
        >>> EventFrameDataset("toy", [0], [3], lambda i: ev, (4, 1, 1), time_window=250)[0][0].shape
        torch.Size([3, 4])
        >>> xb = EventFrameDataset("toy", [0], [3], lambda i: ev, (4, 1, 1), n_time_bins=2, channel_bin=3)[0][0]
        >>> xb.shape, xb.sum(0).tolist()  # units 0-2 -> channel 0, unit 3 -> channel 1
        (torch.Size([2, 2]), [2.0, 0.0])
    """

    def __init__(
        self,
        name: str,
        items: list,
        labels: list[int] | np.ndarray,
        reader: Callable[[object], np.ndarray],
        sensor_size: tuple[int, int, int],
        n_time_bins: int | None = None,
        time_window: float | None = None,
        duration: float | None = None,
        cache_dir: str | os.PathLike | None = None,
        cache_params: dict[str, object] | None = None,
        channel_bin: int = 1,
    ) -> None:
        channel_bin = check_channel_bin(name, channel_bin, sensor_size)
        if n_time_bins is None and time_window is None:
            n_time_bins = 100
        check_frame_settings(name, n_time_bins, time_window, duration)
        self.name = name
        self.items = list(items)
        self.labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
        if self.labels.dim() != 1 or len(self.labels) != len(self.items):
            raise ValueError(f"{name}: {len(self.items)} items but labels of shape {tuple(self.labels.shape)}; give "
                             "one label per item")
        self.reader = reader
        self.event_sensor_size = tuple(int(s) for s in sensor_size)  # events are checked against this
        self.channel_bin = channel_bin
        w, h, p = self.event_sensor_size
        self.sensor_size = (-(-w // channel_bin), h, p)  # the frames' (binned) size
        self.n_time_bins, self.time_window, self.duration = n_time_bins, time_window, duration
        if n_time_bins is not None:
            self._check_frames(int(n_time_bins), "n_time_bins")
        elif duration is not None:
            self._check_frames(whole_frames(duration, time_window), "every sample")
        self.cache = None
        if cache_dir is not None:
            params = {"name": name, "n": len(self.items), "sensor_size": self.sensor_size, "binning": BINNING_VERSION,
                      "n_time_bins": n_time_bins, "time_window": time_window, "duration": duration,
                      **(cache_params or {})}
            if cache_params is None:
                params["reader"] = _qualified_name(reader)
                warnings.warn(
                    f"{name}: cache_dir without cache_params: the cache key cannot tell this reader's data from other "
                    f"data under the name {name!r} with {len(self.items)} items (only the reader's name "
                    f"{params['reader']!r} is in it), so changed files or another reader would get stale frames; pass "
                    "cache_params identifying the data (e.g. files_cache_params(files, cache_dir)) or a distinct name",
                    UserWarning, stacklevel=2)
            if channel_bin != 1:  # absent at 1, so caches written before channel_bin existed stay valid
                params["channel_bin"] = channel_bin
            self.cache = DiskCache(cache_dir, name, params)

    def __len__(self) -> int:
        return len(self.items)

    def _frame_shape(self) -> tuple[int, ...]:
        w, h, p = self.sensor_size
        return (w,) if (h == 1 and p == 1) else (p, h, w)

    def _check_frames(self, n: int, where: str) -> None:
        """Refuse ``n`` frames per sample when that is more than :data:`MAX_FRAMES` or :data:`MAX_SAMPLE_BYTES`."""
        nbytes = 4 * n * math.prod(self._frame_shape())
        if n > MAX_FRAMES or nbytes > MAX_SAMPLE_BYTES:
            setting = (f"n_time_bins={self.n_time_bins!r}" if self.n_time_bins is not None else
                       f"time_window={self.time_window!r} us" + (f", duration={self.duration!r} us"
                                                                 if self.duration is not None else ""))
            raise ValueError(f"{self.name}: {where}: {setting} gives {n} frames per sample ({nbytes / 2**30:.3g} GiB), "
                             f"more than the {MAX_FRAMES} frames / {MAX_SAMPLE_BYTES / 2**30:g} GiB allowed; "
                             f"{_UNITS_HINT}")

    def _where(self, index: int) -> str:
        """The file (and sample) ``index`` comes from, for error messages."""
        item = self.items[index]
        path = getattr(self.reader, "path", None)
        if path is not None:
            return f"{path} (sample {index})"
        if isinstance(item, (str, os.PathLike)):
            return str(item)
        return f"sample {index} ({item!r})"

    def _error(self, index: int, what: str, e: Exception) -> Exception:
        """``e`` as a ValueError (OSError for I/O problems) whose message names the sample's file."""
        where = self._where(index)
        inner = f"{type(e).__name__}: {e}"
        if where.split(" (sample")[0] in str(e):  # the message names the file already
            where = f"sample {index}"
        msg = f"{self.name}: {where}: {what}: {inner}"
        if isinstance(e, FileNotFoundError):
            return FileNotFoundError(msg)
        return OSError(msg) if isinstance(e, OSError) else ValueError(msg)

    def _check_fields(self, events: object, index: int) -> None:
        """``TypeError`` naming the sample unless the reader gave a structured array with the fields binning reads."""
        need = ("t", "x", "y", "p") if self.event_sensor_size[1] > 1 else ("t", "x", "p")
        names = events.dtype.names if isinstance(events, np.ndarray) else None
        if names is not None and all(f in names for f in need):
            return
        if not isinstance(events, np.ndarray):
            got = f"a {type(events).__name__}"
        elif names is None:
            got = f"a plain array of dtype {events.dtype} and shape {events.shape}"
        else:
            got = f"a structured array with fields {list(names)}"
        raise TypeError(f"{self.name}: {self._where(index)}: the reader returned {got}, not a structured numpy array "
                        f"with fields {', '.join(need)} (t in microseconds), e.g. of dtype "
                        "snnlab.data.neuromorphic.XYTP_DTYPE or AUDIO_DTYPE")

    def _check_events(self, events: np.ndarray, index: int) -> None:
        """Every event must lie on the sensor: ``0 <= x < W``, ``0 <= y < H``, ``0 <= p < P``."""
        if not len(events):
            return
        w, h, p = self.event_sensor_size
        one_d = h == 1 and p == 1
        fields = [("x", w, "unit" if one_d else "x")]
        if "y" in events.dtype.names:
            fields.append(("y", h, "y"))
        fields.append(("p", p, "polarity"))
        for field, size, label in fields:
            v = events[field]
            if v.min() >= 0 and v.max() < size:  # the usual case, without temporary arrays
                continue
            bad = np.flatnonzero((v < 0) | (v >= size))
            if bad.size:
                i = int(bad[0])
                raise ValueError(
                    f"{self.name}: {self._where(index)}: event {i} (t={int(events['t'][i])} us) has "
                    f"{label}={int(v[i])}, "
                    f"outside the sensor's 0..{size - 1} ({bad.size} such events); the file is corrupt or belongs to "
                    f"another dataset (sensor size {self.event_sensor_size})")

    def _frames_of(self, events: np.ndarray) -> tuple[float, float, int]:
        """``(start, frame length, number of frames)`` in microseconds for a sample's sorted events."""
        if self.duration is not None and self.time_window is not None:
            return 0.0, float(self.time_window), whole_frames(self.duration, self.time_window)
        if len(events) == 0:
            return 0.0, 1.0, int(self.n_time_bins) if self.n_time_bins is not None else 1
        t0, t1 = int(events["t"][0]), int(events["t"][-1])
        if self.n_time_bins is not None:
            # tonic's own n_time_bins slicing floors the bin width and drops the last event(s); use
            # n equal whole-microsecond windows that cover [t_first, t_last] completely instead.
            n = int(self.n_time_bins)
            return float(t0), float(max(1, -(-(t1 - t0 + 1) // n))), n
        tw = float(self.time_window)
        return float(t0), tw, max(1, math.ceil((t1 - t0 + 1) / tw))

    def _bin(self, index: int) -> torch.Tensor:
        try:
            events = self.reader(self.items[index])
        except MemoryError:
            raise
        except Exception as e:
            raise self._error(index, "cannot read it", e) from e
        self._check_fields(events, index)
        self._check_events(events, index)
        if self.duration is not None and len(events):  # cut first: n_time_bins bins then cover the kept events
            limit = float(self.duration)
            if self.time_window is not None:  # frames from 0: events past the last whole frame are dropped
                limit = min(limit, whole_frames(self.duration, self.time_window) * float(self.time_window))
            keep = events["t"] < limit
            n_keep = int(np.count_nonzero(keep))
            kept = events  # (all kept: no copy; a leading run, as of sorted times: a view; else the kept events)
            if n_keep < len(events):
                kept = events[:n_keep] if keep[:n_keep].all() else events[keep]
            if len(kept) == 0:
                warnings.warn(
                    f"{self.name}: {self._where(index)}: all {len(events)} events are at or after duration="
                    f"{self.duration!r} us (the first at t={int(events['t'][0])} us), so the sample is all zeros; "
                    f"{_UNITS_HINT}", RuntimeWarning, stacklevel=2)
            events = kept
        start, width, n = self._frames_of(events)
        if self.time_window is not None and self.duration is None:  # the one case where n varies by sample
            self._check_frames(n, self._where(index))
        if len(events) == 0:
            return torch.zeros((n,) + self._frame_shape())

        # The frames of tonic's ToFrame(sensor_size, time_window=width, start_time=start, end_time=...,
        # include_incomplete=True), bit for bit up to 32767 events per cell, by one np.bincount (the tests compare them with tonic's). With
        # include_incomplete, tonic's slicer makes ceil((end - start - width) / width) + 1 windows
        # [start + i width, start + (i + 1) width): an end half a window short of start + n width gives
        # exactly n of them, however the division rounds.
        x = events["x"] if self.channel_bin == 1 else events["x"] // self.channel_bin  # the reader's array stays
        y = events["y"] if "y" in events.dtype.names else None
        try:
            counts = _frame_counts(events["t"], x, y, events["p"], self.sensor_size, width, start,
                                   start + (n - 0.5) * width, include_incomplete=True)
        except MemoryError:
            raise
        except Exception as e:
            raise self._error(index, "cannot bin its events", e) from e
        # (tonic's int16 frames wrap a cell's count past 32767 events, to negative numbers; these counts do not)
        frames = counts.astype(np.float32)
        return torch.from_numpy(frames.reshape((frames.shape[0],) + self._frame_shape()))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} is out of range for {len(self)} samples")
        if index < 0:
            index += len(self)
        x = self.cache.get_or_compute(index, lambda: self._bin(index)) if self.cache else self._bin(index)
        return x, self.labels[index]


def make_neuromorphic_loader(
    dataset: Dataset, batch_size: int = 32, shuffle: bool = True, seed: int = 0, num_workers: int = 0
) -> DataLoader:
    """DataLoader yielding time-major ``(x [T, B, C...], y [B])`` (variable-length samples zero-padded).

    Example:
        >>> ev = np.array([(0, 1, 0), (500, 2, 0)], dtype=AUDIO_DTYPE)
        >>> ds = EventFrameDataset("toy", [0, 1], [0, 1], lambda i: ev, (4, 1, 1), n_time_bins=3)
        >>> next(iter(make_neuromorphic_loader(ds, batch_size=2)))[0].shape
        torch.Size([3, 2, 4])
    """
    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=g,
                      collate_fn=time_major_collate, num_workers=num_workers)


# ----------------------------------------------------------------------------------------------
# SHD / SSC (HDF5)
# ----------------------------------------------------------------------------------------------
class _H5Reader:
    """Picklable lazy reader of one sample from an SHD/SSC HDF5 file (opens the file per process)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._f = None
        self._pid = None

    def __getstate__(self) -> dict:
        return {"path": self.path, "_f": None, "_pid": None}

    def __call__(self, index: int) -> np.ndarray:
        import h5py  # (_load_h5 checked that it is installed)

        if self._f is None or self._pid != os.getpid():
            self._f, self._pid = h5py.File(self.path, "r"), os.getpid()
        times = np.asarray(self._f["spikes/times"][index], dtype=np.float64)
        units = np.asarray(self._f["spikes/units"][index], dtype=np.int64)
        if times.shape != units.shape:
            raise ValueError(f"{self.path}: sample {index} has {times.shape} spikes/times "
                             f"but {units.shape} spikes/units")
        if not np.isfinite(times).all():
            raise ValueError(f"{self.path}: sample {index} has NaN or infinite spike times")
        if len(times) and times.min() < 0:
            raise ValueError(f"{self.path}: sample {index} has negative spike times (min {times.min():g} s)")
        us = np.round(times * 1e6)  # seconds -> microseconds
        if len(us) and us.max() >= 2.0**63:  # past int64: the cast would wrap to garbage
            raise ValueError(f"{self.path}: sample {index} has spike times up to {times.max():g} s, past the int64 "
                             f"microseconds that event times are stored in (about {2.0**63 / 1e6:.3g} s); the file is "
                             "corrupt or its times are not in seconds")
        ev = np.empty(len(times), dtype=AUDIO_DTYPE)
        ev["t"] = us.astype(np.int64)
        ev["x"] = units
        ev["p"] = 0
        return ev[np.argsort(ev["t"], kind="stable")]


def _check_labels(name: str, labels: list[int] | np.ndarray, where: Callable[[int], str]) -> None:
    """Raise ``ValueError`` naming the first sample (``where(i)``) whose label is not in ``0..n_classes - 1``."""
    n = NEUROMORPHIC_DATASETS[name].n_classes
    labels = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= n))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}: {where(i)} has label {int(labels[i])}, outside 0..{n - 1} ({name} has {n} classes; "
                         f"{bad.size} samples have such labels): the file is corrupt or belongs to another dataset")


def _check_h5_layout(name: str, path: Path, f, h5py) -> None:
    """The three datasets of the SHD/SSC layout, one entry per sample: integer labels, variable-length float
    spike times and integer units (a file in another layout would be misread: floats truncated, scalars...)."""
    expected = {"labels": "integers", "spikes/times": "float times", "spikes/units": "integer units"}
    for key, what in expected.items():
        item = f[key]
        if not isinstance(item, h5py.Dataset) or item.ndim != 1:
            got = "a group" if not isinstance(item, h5py.Dataset) else f"a dataset of shape {item.shape}"
            raise ValueError(f"{name}: {path}: {key} is {got}, not the SHD/SSC layout's 1-D dataset of {what} "
                             f"(one per sample); the file is corrupt or in another format")
        base = item.dtype if key == "labels" else h5py.check_vlen_dtype(item.dtype)
        kind = "f" if key == "spikes/times" else "iu"
        if base is None or base.kind not in kind:
            spikes = key != "labels"
            shown = f"{base} entries" if spikes and base is not None else item.dtype
            raise ValueError(f"{name}: {path}: {key} holds {shown}, not {what}"
                             + (" of variable length per sample" if spikes else "")
                             + "; the file is corrupt or in another format")


def _load_h5(name: str, root, split: str, splits: tuple[str, ...], n_time_bins, time_window, duration, cache_dir,
             channel_bin: int = 1):
    check_channel_bin(name, channel_bin, NEUROMORPHIC_DATASETS[name].sensor_size)  # before touching the files
    if split not in splits:
        raise ValueError(f"{name}: unknown split {split!r}; choose one of {list(splits)}")
    fname = f"{name}_{split}.h5"
    path = _resolve(name, root, fname)
    if path is None:
        raise _missing(name, Path(root), f"{fname} not found")
    h5py = require("h5py", extra="data", feature="reading SHD/SSC files")

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise FileNotFoundError(
            f"{name}: {path} is not a readable HDF5 file ({e}); if it ends in .gz, gunzip it first. "
            f"Source: {NEUROMORPHIC_DATASETS[name].source}."
        ) from e
    with f:
        missing = [k for k in ("spikes/times", "spikes/units", "labels") if k not in f]
        if missing:
            raise FileNotFoundError(
                f"{name}: {path} is incomplete: datasets {missing} are missing (expected spikes/times, "
                f"spikes/units, labels). Re-download it from {NEUROMORPHIC_DATASETS[name].source}."
            )
        _check_h5_layout(name, path, f, h5py)
        labels = np.asarray(f["labels"][:], dtype=np.int64)
        if len(f["spikes/times"]) != len(labels) or len(f["spikes/units"]) != len(labels):
            raise FileNotFoundError(f"{name}: {path} is incomplete: spikes and labels have different lengths.")
        if not len(labels):
            raise ValueError(f"{name}: {path} holds no samples (its datasets are empty); re-download it from "
                             f"{NEUROMORPHIC_DATASETS[name].source}.")
    _check_labels(name, labels, lambda i: f"{path} (sample {i})")
    return EventFrameDataset(
        name, list(range(len(labels))), labels, _H5Reader(path), NEUROMORPHIC_DATASETS[name].sensor_size,
        n_time_bins=n_time_bins, time_window=time_window, duration=duration, cache_dir=cache_dir,
        cache_params=files_cache_params([str(path)], cache_dir), channel_bin=channel_bin,
    )


def load_shd(
    root: str | os.PathLike,
    split: str = "train",
    n_time_bins: int | None = None,
    time_window: float | None = None,
    duration: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    channel_bin: int = 1,
) -> EventFrameDataset:
    """Spiking Heidelberg Digits from ``root/shd_{train,test}.h5``: items ``([T, 700], label 0..19)``.

    Give ``n_time_bins`` (default 100) or ``time_window``. ``time_window``/``duration`` are in microseconds,
    although the file stores seconds (e.g. ``time_window=10_000, duration=1_000_000`` gives 100 frames
    aligned at t=0); see :class:`EventFrameDataset`. ``channel_bin`` (1..700, default 1) sums each group of
    that many adjacent channels (unit ``c`` counts in channel ``c // channel_bin``), so items are
    ``[T, ceil(700 / channel_bin)]``: ``channel_bin=5`` gives the 140 inputs of Hammouamri et al. (2023, DCLS delays).

    Example:
        >>> ds = load_shd("/data/shd", "train", n_time_bins=100)  # doctest: +SKIP
        >>> ds[0][0].shape  # doctest: +SKIP
        torch.Size([100, 700])
        >>> load_shd("/data/shd", "train", n_time_bins=100, channel_bin=5)[0][0].shape  # doctest: +SKIP
        torch.Size([100, 140])
    """
    n_time_bins = _default_bins(n_time_bins, time_window, 100)
    return _load_h5("shd", root, split, ("train", "test"), n_time_bins, time_window, duration, cache_dir, channel_bin)


def load_ssc(
    root: str | os.PathLike,
    split: str = "train",
    n_time_bins: int | None = None,
    time_window: float | None = None,
    duration: float | None = None,
    cache_dir: str | os.PathLike | None = None,
    channel_bin: int = 1,
) -> EventFrameDataset:
    """Spiking Speech Commands from ``root/ssc_{train,valid,test}.h5``: items ``([T, 700], label 0..34)``.

    Give ``n_time_bins`` (default 100) or ``time_window``; times are in microseconds and ``channel_bin`` sums
    adjacent channels (items ``[T, ceil(700 / channel_bin)]``) as for :func:`load_shd`.

    Example:
        >>> ds = load_ssc("/data/ssc", "valid", time_window=10_000, duration=1_000_000)  # doctest: +SKIP
        >>> ds[0][0].shape  # doctest: +SKIP
        torch.Size([100, 700])
        >>> load_ssc("/data/ssc", "valid", channel_bin=5)[0][0].shape  # doctest: +SKIP
        torch.Size([100, 140])
    """
    n_time_bins = _default_bins(n_time_bins, time_window, 100)
    return _load_h5("ssc", root, split, ("train", "valid", "test"), n_time_bins, time_window, duration, cache_dir,
                    channel_bin)


# ----------------------------------------------------------------------------------------------
# N-MNIST (.bin, 5 bytes per event)
# ----------------------------------------------------------------------------------------------
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


def _sorted_by_time(ev: np.ndarray) -> np.ndarray:
    """``ev`` stably sorted by ``t``; ``ev`` itself (no copy) when it is sorted already, as recordings usually are.

    Example:
        >>> ev = np.array([(0, 0, 5, 1), (1, 0, 2, 0), (2, 0, 2, 1)], dtype=XYTP_DTYPE)
        >>> _sorted_by_time(ev)["x"].tolist()
        [1, 2, 0]
    """
    if len(ev) > 1 and (np.diff(ev["t"]) < 0).any():
        return ev[np.argsort(ev["t"], kind="stable")]
    return ev


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
    Give ``n_time_bins`` (default 30) or ``time_window`` (microseconds).

    Example:
        >>> ds = load_nmnist(shared_data_root() / "nmnist_small", "test", n_time_bins=10)  # doctest: +SKIP
        >>> ds[0][0].shape  # doctest: +SKIP
        torch.Size([10, 2, 34, 34])
    """
    n_time_bins = _default_bins(n_time_bins, time_window, 30)
    base = _split_folder("nmnist", root, split, "Train", "Test")
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


# ----------------------------------------------------------------------------------------------
# DVS Gesture / POKER-DVS (tonic's preprocessed .npy arrays)
# ----------------------------------------------------------------------------------------------
class _NpyReader:
    """Read an ``[N, 4]`` event array; ``columns`` names its columns; ``t_scale`` converts t to us.

    ``x`` and ``y`` must be whole numbers, ``t`` must be >= 0 and ``p`` in {0, 1} or {-1, 1} (read as 0 / 1);
    anything else is refused with a ``ValueError`` naming the file, as the sensor check refuses events off the
    sensor (truncating 5.7 to 5 or reading p=2 as 1 would bin a corrupt file silently).
    """

    def __init__(self, columns: tuple[str, str, str, str], t_scale: float) -> None:
        self.columns, self.t_scale = columns, t_scale

    def __call__(self, path: str) -> np.ndarray:
        arr = np.load(path)
        if arr.ndim != 2 or arr.shape[1] != 4:
            raise ValueError(f"{path}: expected an [N, 4] event array ({', '.join(self.columns)}), got {arr.shape}")
        if arr.dtype.kind in "fc" and not np.isfinite(arr).all():  # before the cast to integers garbles them
            bad = ~np.isfinite(arr)
            raise ValueError(f"{path}: {int(bad.any(axis=1).sum())} events have NaN or infinite values (in "
                             f"{', '.join(c for i, c in enumerate(self.columns) if bad[:, i].any())})")
        self._check_columns(path, arr)
        ev = np.empty(len(arr), dtype=XYTP_DTYPE)
        for i, c in enumerate(self.columns):
            ev[c] = arr[:, i]
        if self.t_scale != 1:
            ev["t"] = np.round(arr[:, self.columns.index("t")].astype(np.float64) * self.t_scale).astype(np.int64)
        ev["p"] = (ev["p"] > 0).astype(np.int64)
        return ev[np.argsort(ev["t"], kind="stable")]

    def _check_columns(self, path: str, arr: np.ndarray) -> None:
        """``ValueError`` naming ``path`` for fractional x / y, negative t or a polarity outside {0, 1} / {-1, 1}."""
        if not len(arr):
            return
        col = {c: arr[:, i] for i, c in enumerate(self.columns)}
        for c in ("x", "y"):
            v = col[c]
            if v.dtype.kind == "f" and (v != np.round(v)).any():
                k = int(np.flatnonzero(v != np.round(v))[0])
                raise ValueError(f"{path}: event {k} has {c}={v[k]!r}, not a whole pixel coordinate; the file is "
                                 "corrupt or not an event array of this dataset")
        if col["t"].min() < 0:
            k = int(np.argmin(col["t"]))
            raise ValueError(f"{path}: event {k} has a negative time t={col['t'][k]!r}; the file is corrupt or not "
                             "an event array of this dataset")
        p = col["p"]
        lo, hi = p.min(), p.max()  # (min/max passes, not np.unique's sort, on recordings of millions of events)
        if lo < -1 or hi > 1 or (p.dtype.kind == "f" and (p != np.round(p)).any()) or (lo == -1 and (p == 0).any()):
            bad = np.unique(p)
            raise ValueError(f"{path}: polarities {bad.tolist()[:8]} are neither all in {{0, 1}} nor all in {{-1, 1}}; "
                             "the file is corrupt or not an event array of this dataset")


def _refuse_ibm_original_layout(root: str | os.PathLike, cause: FileNotFoundError) -> None:
    """Raise a clear ``FileNotFoundError`` where ``root`` holds IBM's original release (``*.aedat``, ``*_labels.csv``)."""
    root = Path(root).expanduser()
    for base in (root, root / "DvsGesture", root / "DVSGesture"):
        if base.is_dir() and (next(base.glob("*.aedat"), None) or next(base.glob("*_labels.csv"), None)):
            raise FileNotFoundError(
                f"dvsgesture: {base} holds IBM's original DVS Gesture release (userNN_<lighting>.aedat recordings with "
                f"*_labels.csv), which snnlab does not read. load_dvs_gesture reads tonic's preprocessed layout only: "
                f"{_LAYOUT['dvsgesture']}. Get {NEUROMORPHIC_DATASETS['dvsgesture'].source} under {root}. "
                "snnlab never downloads datasets."
            ) from cause


def load_dvs_gesture(
    root: str | os.PathLike,
    split: str = "train",
    n_time_bins: int | None = None,
    time_window: float | None = None,
    duration: float | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> EventFrameDataset:
    """IBM DVS Gesture in tonic's preprocessed layout: items ``([T, 2, 128, 128], label 0..10)``.

    Files are ``ibmGestureTrain/userNN_<lighting>/<label>.npy`` arrays ``[N, 4]`` with columns
    ``x, y, p, t`` and ``t`` in milliseconds (converted to microseconds here, as tonic does). Give
    ``n_time_bins`` (default 50) or ``time_window`` (microseconds). IBM's original release
    (``*.aedat`` with ``*_labels.csv``) is not read: a clear error says so.

    Example:
        >>> ds = load_dvs_gesture("/data", "test", n_time_bins=20)  # doctest: +SKIP
        >>> ds[0][0].shape  # doctest: +SKIP
        torch.Size([20, 2, 128, 128])
    """
    n_time_bins = _default_bins(n_time_bins, time_window, 50)
    try:
        base = _split_folder("dvsgesture", root, split, "ibmGestureTrain", "ibmGestureTest")
    except FileNotFoundError as e:
        _refuse_ibm_original_layout(root, e)
        raise
    files, labels = [], []
    for d in sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("user")):
        for f in sorted(d.glob("*.npy")):
            if f.stem.isdigit():
                files.append(str(f))
                labels.append(int(f.stem))
    if not files:
        nested = (" (it holds a folder of the same name: extracted one level too deep?)"
                  if (base / base.name).is_dir() else "")
        e = _missing("dvsgesture", Path(root), f"no userNN_<lighting>/<label>.npy files in {base}{nested}")
        _refuse_ibm_original_layout(root, e)
        raise e
    _check_labels("dvsgesture", labels, files.__getitem__)
    return EventFrameDataset(
        "dvsgesture", files, labels, _NpyReader(("x", "y", "p", "t"), 1000.0),
        NEUROMORPHIC_DATASETS["dvsgesture"].sensor_size, n_time_bins=n_time_bins, time_window=time_window,
        duration=duration, cache_dir=cache_dir, cache_params=files_cache_params(files, cache_dir),
    )


POKER_CLASSES = ("cl", "he", "di", "sp")


def load_pokerdvs(
    root: str | os.PathLike,
    split: str = "train",
    n_time_bins: int | None = None,
    time_window: float | None = None,
    duration: float | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> EventFrameDataset:
    """POKER-DVS in tonic's layout: items ``([T, 2, 35, 35], label)`` with labels clubs, hearts, diamonds, spades = 0..3.

    Files are ``pips_train/<folder ending in cl|he|di|sp>/<id>.npy`` arrays ``[N, 4]`` with columns
    ``t, x, y, p`` (``t`` in microseconds). Give ``n_time_bins`` (default 20) or ``time_window`` (microseconds).

    Example:
        >>> ds = load_pokerdvs("/data", "train", n_time_bins=10)  # doctest: +SKIP
        >>> ds[0][0].shape  # doctest: +SKIP
        torch.Size([10, 2, 35, 35])
    """
    n_time_bins = _default_bins(n_time_bins, time_window, 20)
    base = _split_folder("pokerdvs", root, split, "pips_train", "pips_test")
    files, labels = [], []
    for d in sorted(p for p in base.iterdir() if p.is_dir() and p.name[-2:] in POKER_CLASSES):
        for f in sorted(d.glob("*.npy")):
            files.append(str(f))
            labels.append(POKER_CLASSES.index(d.name[-2:]))
    if not files:
        raise _missing("pokerdvs", Path(root), f"no <cl|he|di|sp>/<id>.npy files in {base}")
    return EventFrameDataset(
        "pokerdvs", files, labels, _NpyReader(("t", "x", "y", "p"), 1.0),
        NEUROMORPHIC_DATASETS["pokerdvs"].sensor_size, n_time_bins=n_time_bins, time_window=time_window,
        duration=duration, cache_dir=cache_dir, cache_params=files_cache_params(files, cache_dir),
    )


_LOADERS: dict[str, Callable[..., EventFrameDataset]] = {
    "shd": load_shd, "ssc": load_ssc, "nmnist": load_nmnist, "dvsgesture": load_dvs_gesture, "pokerdvs": load_pokerdvs,
}


def load_neuromorphic(name: str, root: str | os.PathLike, split: str = "train", **kwargs: object) -> EventFrameDataset:
    """Dispatch to the loader for ``name`` in ``{"shd", "ssc", "nmnist", "dvsgesture", "pokerdvs"}``.

    ``kwargs`` go to that loader; ``channel_bin`` is for ``"shd"`` / ``"ssc"`` only (``TypeError`` elsewhere).

    Example:
        >>> load_neuromorphic("shd", "/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        FileNotFoundError: shd: shd_train.h5 not found under /nonexistent ...
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in _LOADERS:
        raise ValueError(f"unknown neuromorphic dataset {name!r}; choose one of {sorted(_LOADERS)}")
    if "channel_bin" in kwargs and key not in ("shd", "ssc"):  # as for any keyword its loader does not take
        raise TypeError(f"{key}: channel_bin sums adjacent audio channels and applies to 'shd' and 'ssc' only; "
                        f"drop it for {key}")
    return _LOADERS[key](root, split, **kwargs)
