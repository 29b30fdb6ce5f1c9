"""Event-to-frame binning: the event dtypes, frame-setting checks and limits, tonic's ``ToFrame`` frames by
``np.bincount``, :class:`EventFrameDataset`, :func:`max_sample_steps` and :func:`make_neuromorphic_loader`."""
from __future__ import annotations

import bisect
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset

from ...core.validation import is_integer
from ..cache import DiskCache, entry_shape
from ..collate import PadCollate, _as_labels, _check_n_steps, time_major_collate

AUDIO_DTYPE = np.dtype([("t", np.int64), ("x", np.int64), ("p", np.int64)])
XYTP_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


BINNING_VERSION = 5  # part of every cache key: raise it when the binning of a sample changes (5: counts past 32767)

MAX_FRAMES = 1_000_000  # frames per sample; more means the times were almost surely not in microseconds
MAX_SAMPLE_BYTES = 4 * 2**30  # float32 frames of one sample
_UNITS_HINT = ("time_window and duration are in microseconds (SHD/SSC files store seconds, but the loaders "
               "convert them: 10 ms frames over 1 s are time_window=10_000, duration=1_000_000)")


def _qualified_name(obj: object) -> str:
    """``module.qualname`` of a function, or of an object's class (a reader instance). The modules of this package
    count as the package (``snnlab.data.neuromorphic``, the one module they were split from), so cache keys that
    hold a reader's name (see :class:`EventFrameDataset`) are those earlier versions wrote.

    Example:
        >>> _qualified_name(whole_frames)
        'snnlab.data.neuromorphic.whole_frames'
    """
    target = obj if hasattr(obj, "__qualname__") else type(obj)
    module = getattr(target, "__module__", "?")
    if isinstance(module, str) and module.startswith(f"{__package__}."):
        module = __package__
    return f"{module}.{getattr(target, '__qualname__', type(obj).__name__)}"


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
    ``duration`` a finite number of microseconds > 0 holding at least one whole ``time_window``, or, with
    ``n_time_bins``, bins ``duration / n_time_bins`` of at least 1 us. Used by
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
    if n_time_bins is not None and duration is not None and float(duration) / int(n_time_bins) < 1:
        raise ValueError(f"{name}: duration={duration!r} us in n_time_bins={n_time_bins!r} bins gives bins of "
                         f"{float(duration) / int(n_time_bins):.3g} us, shorter than the 1 us resolution of the event "
                         f"times; {_UNITS_HINT}")
    if time_window is not None and duration is not None and whole_frames(duration, time_window) < 1:
        raise ValueError(f"{name}: duration ({duration!r} us) is shorter than one time_window ({time_window!r} us): "
                         f"no whole frame fits; lengthen duration or shorten time_window")


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


def _frame_count(n_time_bins: int | None, time_window: float | None, duration: float | None,
                 t: np.ndarray | None = None) -> int | None:
    """Frames of one sample: the one rule :class:`EventFrameDataset` bins by and :func:`max_sample_steps` counts by.

    ``n_time_bins`` when given; with ``time_window`` and ``duration``, ``whole_frames(duration, time_window)``; with
    ``time_window`` alone, from the sample's sorted event times ``t`` (those left after any ``duration`` cut): 1
    without events, else ``ceil((t[-1] - t[0] + 1) / time_window)`` (at least 1), so frames from the first event
    until the last is counted. ``t=None`` asks for the count the settings fix alone: ``None`` when they don't.

    Example:
        >>> _frame_count(7, None, None), _frame_count(None, 100, 950), _frame_count(None, 100, None)
        (7, 9, None)
        >>> t = np.array([0, 200])
        >>> _frame_count(None, 100, None, t), _frame_count(None, 100, None, t[:0]), _frame_count(None, 201, None, t)
        (3, 1, 1)
    """
    if n_time_bins is not None:
        return int(n_time_bins)
    if duration is not None:
        return whole_frames(duration, time_window)
    if t is None:
        return None
    if len(t) == 0:
        return 1
    return max(1, math.ceil((int(t[-1]) - int(t[0]) + 1) / float(time_window)))


def _cached_steps(path: Path) -> int | None:
    """Time steps ``T`` of the frames ``[T, ...]`` cached at ``path``, from the file's headers alone
    (:func:`~snnlab.data.cache.entry_shape`); ``None`` when it cannot tell this way."""
    shape = entry_shape(path)
    return shape[0] if shape else None


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
                  include_incomplete: bool = False, edges: np.ndarray | None = None) -> np.ndarray:
    """Event counts (int64) per frame and cell: ``[n, P, H, W]``, or ``[n, P, W]`` without ``y``, for the frames of
    ``tonic.transforms.ToFrame(sensor_size, time_window, overlap=, include_incomplete=, start_time=, end_time=)``:
    event ``k`` counts in frame ``i`` for every ``i`` with ``first[i] <= k < stop[i]`` (tonic's ``events[first:stop]``
    slices), with one ``np.bincount`` instead of tonic's per-frame ``np.add.at``. ``t`` is not empty and the
    coordinates lie on the sensor (``0 <= x < W``, ``0 <= y < H``, ``0 <= p < P``). ``edges`` (``n + 1`` increasing
    times) gives the frames ``[edges[i], edges[i + 1])`` instead, each event in at most one of them (tonic's float
    edges ``i w`` and ``(i - 1) w + w`` can differ by a rounding, counting an event on the edge twice or not at all)."""
    w, h, n_pol = (int(v) for v in sensor_size)
    if n_pol == 1 and len(p) and (p != p[0]).any():  # tonic's check; it then sets every polarity to 0
        raise ValueError("Single polarity sensor, but events contain both polarities.")
    if edges is None:
        first, stop = _time_window_slices(t, time_window, start_time, end_time, overlap, include_incomplete)
    else:
        bounds = np.searchsorted(t, edges)
        first, stop = bounds[:-1], bounds[1:]
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


def _sorted_by_time(events: np.ndarray) -> np.ndarray:
    """``events`` stably sorted by ``t`` (every field moves with its event); ``events`` itself, not a copy, when
    they are in time order already: the usual case costs one comparison per event.

    Example:
        >>> ev = np.array([(300, 2, 0), (100, 0, 0), (100, 1, 0)], dtype=AUDIO_DTYPE)
        >>> _sorted_by_time(ev)["x"].tolist()
        [0, 1, 2]
        >>> ordered = ev[1:]
        >>> _sorted_by_time(ordered) is ordered
        True
    """
    t = events["t"]
    if len(t) > 1 and bool((t[1:] < t[:-1]).any()):
        return events[np.argsort(t, kind="stable")]
    return events


# ----------------------------------------------------------------------------------------------
# generic dataset
# ----------------------------------------------------------------------------------------------
class EventFrameDataset(Dataset):
    """Bin event recordings into time-major frames (tonic's ``ToFrame`` frames, by ``np.bincount``), cached on request.

    Args:
        name: dataset name (cache namespace).
        items: one descriptor per sample, passed to ``reader``.
        labels: class index per sample (one per item): a list, NumPy array or tensor of ints, stored as int64;
            whole-number floats (``3.0``) are taken as those ints, a fractional, NaN or infinite one is a
            ``ValueError`` naming the first such label and its index (never truncated), and bools or strings a
            ``TypeError``.
        reader: ``reader(item) -> structured numpy events``: fields ``t`` (microseconds), ``x``, ``p`` and, for a
            2-D sensor (``H > 1``), ``y`` -- as :data:`AUDIO_DTYPE` / :data:`XYTP_DTYPE` (``int64``; any integer or
            bool dtype is accepted); anything else (e.g. float times in seconds) raises ``TypeError`` naming the
            field. Events out of time order are stably sorted by ``t`` (a reader that returns them sorted,
            as recordings usually are, costs one check and no copy).
        sensor_size: ``(W, H, P)``.
        n_time_bins: fixed number of frames per sample ``n``: without ``duration``, ``n`` windows of
            ``w = ceil((t_last - t_first + 1) / n)`` whole microseconds each, the first starting at the sample's first
            event (every event is counted, but the windows may reach past the last event, so for a short span the
            last bins can stay empty: events at t=0 and t=5 with ``n=4`` give ``w=2`` and frames ``[1, 0, 1, 0]``),
            and a frame's time span differs from sample to sample; with
            ``duration``, ``n`` windows of ``duration / n_time_bins`` microseconds from t=0 instead, the same
            in every sample (the frames of ``time_window=duration / n_time_bins`` with that ``duration``, but every
            event kept counts in exactly one bin: one on a bin edge in the later bin, where the float edges of that
            ``time_window`` may count it twice or not at all; events at or after ``duration`` are dropped). The default (``None``) means 100 unless
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
        self.labels = _as_labels(labels, f"EventFrameDataset {name!r}")  # (whole numbers: never truncated)
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
            if n_time_bins is not None and duration is not None:
                # the n bins start at t=0 (they stretched over each sample's kept events before): frames cached the
                # earlier way are not reused; every other setting's cache stays valid. 2: an event on a bin edge counts
                # once (True: the float edges of time_window=duration / n could count it twice or not at all)
                params["bins_from_zero"] = 2
            if not _qualified_name(reader).startswith(f"{__package__}."):
                # a reader of one's own: frames cached before _read sorted its events by time are not reused (events
                # out of order were lost or misplaced); this package's readers always sorted theirs, so their caches
                # stay valid (as nmnist's events_sorted)
                params["events_sorted"] = True
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
        """``TypeError`` naming the sample unless the reader gave a structured array with the fields binning reads,
        each of an integer (or bool) dtype: float ``t`` (seconds?) or coordinates would be binned cut to integers."""
        need = ("t", "x", "y", "p") if self.event_sensor_size[1] > 1 else ("t", "x", "p")
        names = events.dtype.names if isinstance(events, np.ndarray) else None
        if names is not None and all(f in names for f in need):
            for f in need:
                kind = events.dtype.fields[f][0]
                if kind.kind not in "biu" or kind.shape:  # float times (seconds?) or coordinates would be cut
                    hint = (" (event times are whole microseconds: convert seconds with np.round(t * 1e6) first)"
                            if f == "t" else " (coordinates and polarities are whole numbers)")
                    raise TypeError(
                        f"{self.name}: {self._where(index)}: the reader's field {f!r} has dtype {kind}, expected int64 "
                        f"(or another integer dtype) as in snnlab.data.neuromorphic.AUDIO_DTYPE / XYTP_DTYPE{hint}")
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

    def _window_from_zero(self) -> float | None:
        """The frame length (microseconds) when the frames start at t=0, the same in every sample: ``time_window``
        with ``duration``, or ``duration / n_time_bins`` with both of those; ``None`` when the frames start at each
        sample's first event."""
        if self.duration is None:
            return None
        if self.time_window is not None:
            return float(self.time_window)
        return float(self.duration) / int(self.n_time_bins)

    def _frames_of(self, events: np.ndarray) -> tuple[float, float, int]:
        """``(start, frame length, number of frames)`` in microseconds for a sample's sorted events (the number of
        frames by :func:`_frame_count`): from t=0 with ``duration`` (:meth:`_window_from_zero`), else from the first
        event."""
        n = self._n_frames(events)
        width = self._window_from_zero()
        if width is not None:
            return 0.0, width, n
        if len(events) == 0:
            return 0.0, 1.0, n
        t0, t1 = int(events["t"][0]), int(events["t"][-1])
        if self.n_time_bins is not None:
            # tonic's own n_time_bins slicing floors the bin width and drops the last event(s); use
            # n equal whole-microsecond windows that cover [t_first, t_last] completely instead.
            return float(t0), float(max(1, -(-(t1 - t0 + 1) // n))), n
        return float(t0), float(self.time_window), n

    def _n_frames(self, events: np.ndarray | None = None) -> int | None:
        """:func:`_frame_count` of this dataset's settings: of a sample's sorted (and ``duration``-cut) events, or,
        with ``events=None``, the count every sample has when the settings fix it (else ``None``)."""
        return _frame_count(self.n_time_bins, self.time_window, self.duration,
                            None if events is None else events["t"])

    def _read(self, index: int) -> np.ndarray:
        """Sample ``index``'s events from the reader, checked (fields, on the sensor) and sorted by time; errors name
        its file."""
        try:
            events = self.reader(self.items[index])
        except MemoryError:
            raise
        except Exception as e:
            raise self._error(index, "cannot read it", e) from e
        self._check_fields(events, index)
        self._check_events(events, index)
        return _sorted_by_time(events)

    def _steps_of(self, index: int) -> int:
        """The frames ``dataset[index][0]`` has, without binning (or caching) it: from the settings when they fix the
        count, else from a cached entry's header, else from the sample's first and last event times."""
        index = self._index(index)
        n = self._n_frames()
        if n is not None:
            return n
        if self.cache is not None:
            n = _cached_steps(self.cache.path(index))
            if n is not None:
                return n
        n = self._n_frames(self._read(index))  # time_window alone (no duration): nothing to cut
        self._check_frames(n, self._where(index))
        return n

    def _bin(self, index: int) -> torch.Tensor:
        events = self._read(index)
        if self.duration is not None and len(events):
            # frames from 0: events at or after duration are dropped, and with time_window those past its last whole
            # frame (n_time_bins bins of duration / n_time_bins end at duration)
            limit = float(self.duration)
            if self.time_window is not None:
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
        edges = None
        if self.n_time_bins is not None and self.duration is not None:
            # bin i is [i duration / n, (i + 1) duration / n), one edge array for both ends of every bin: an event on
            # an edge (i duration / n a whole microsecond) counts once, in the later bin (the float edges i w and
            # (i - 1) w + w of time_window=w can differ by a rounding and count it twice or not at all)
            edges = np.arange(n + 1) * float(self.duration) / n
        try:
            counts = _frame_counts(events["t"], x, y, events["p"], self.sensor_size, width, start,
                                   start + (n - 0.5) * width, include_incomplete=True, edges=edges)
        except MemoryError:
            raise
        except Exception as e:
            raise self._error(index, "cannot bin its events", e) from e
        # (tonic's int16 frames wrap a cell's count past 32767 events, to negative numbers; these counts do not)
        frames = counts.astype(np.float32)
        return torch.from_numpy(frames.reshape((frames.shape[0],) + self._frame_shape()))

    def _index(self, index: int) -> int:
        """``index`` in ``0..len-1`` (a negative one counts from the end); ``IndexError`` when out of range."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"{self.name}: index {index} is out of range for {len(self)} samples")
        return index + len(self) if index < 0 else index

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self._index(index)
        x = self.cache.get_or_compute(index, lambda: self._bin(index)) if self.cache else self._bin(index)
        return x, self.labels[index]


def _stock(dataset: Dataset, cls: type, *methods: str) -> bool:
    """``dataset`` is a ``cls`` whose ``methods`` are ``cls``'s own: a subclass that overrides them (a ``Subset``
    that crops or transforms its samples) may give other frames than ``cls`` would, so it is not looked through."""
    return isinstance(dataset, cls) and all(getattr(type(dataset), m) is getattr(cls, m) for m in methods)


def _as_subset(dataset: Dataset) -> bool:
    return _stock(dataset, Subset, "__getitem__")


def _as_concat(dataset: Dataset) -> bool:
    return _stock(dataset, ConcatDataset, "__getitem__")


def _as_frames(dataset: Dataset) -> bool:
    """An :class:`EventFrameDataset` whose samples are binned as this module bins them (its counts hold)."""
    return _stock(dataset, EventFrameDataset, "__getitem__", "_bin", "_frames_of", "_n_frames", "_steps_of")


def _fixed_frames(dataset: Dataset) -> int | None:
    """The frame count every sample of ``dataset`` has, when its settings tell it without reading a file: an
    :class:`EventFrameDataset` with ``n_time_bins``, or with ``time_window`` and ``duration`` (a ``Subset`` of one,
    or a ``ConcatDataset`` of such, the longest of its non-empty parts); ``None`` otherwise."""
    if _as_subset(dataset):
        return _fixed_frames(dataset.dataset)
    if _as_concat(dataset):
        parts = [_fixed_frames(d) for d in dataset.datasets if len(d)]  # (an empty part has no sample to count)
        return None if not parts or None in parts else max(parts)
    if not _as_frames(dataset):
        return None
    return dataset._n_frames()


def max_sample_steps(dataset: Dataset) -> int:
    """The most time steps ``T`` any sample ``[T, ...]`` of ``dataset`` has: the ``n_steps`` that pads every batch of
    it to one length (:func:`make_neuromorphic_loader`, :class:`~snnlab.data.collate.PadCollate`).

    Free for an :class:`EventFrameDataset` whose settings fix the frame count (``n_time_bins``, or ``time_window``
    with ``duration``; also through a ``Subset`` or ``ConcatDataset`` of them). With ``time_window`` alone the count
    follows each recording's length: every sample's events are read (not binned, and nothing is cached) and its
    frames counted from its first and last event time, by the rule the binning uses, so the result is the longest
    ``dataset[i][0]`` without making any of them. A sample already in the dataset's ``cache_dir`` is counted from
    its cache file's header instead (a few bytes, where reading the recording may mean a large file). Errors are
    those the binning would raise (unreadable file, events off the sensor, too many frames). Any other dataset
    (also a subclass of these that overrides how it gets a sample, e.g. a ``Subset`` that crops) is loaded sample
    by sample. To skip this pass, pass a known bound as ``n_steps`` yourself: a longer sample is then
    a clear error, not silently cut.

    Example:
        >>> ev = np.array([(0, 1, 0), (500, 2, 0)], dtype=AUDIO_DTYPE)
        >>> max_sample_steps(EventFrameDataset("toy", [0, 1], [0, 1], lambda i: ev, (4, 1, 1), n_time_bins=3))
        3
        >>> short = np.array([(0, 1, 0)], dtype=AUDIO_DTYPE)
        >>> max_sample_steps(EventFrameDataset("toy", [ev, short], [0, 1], lambda e: e, (4, 1, 1), time_window=100))
        6
    """
    fixed = _fixed_frames(dataset)
    if fixed is not None:
        return fixed
    if len(dataset) == 0:
        raise ValueError("max_sample_steps: the dataset is empty; it has no longest sample")
    return _longest(dataset, range(len(dataset)))


def _longest(dataset: Dataset, indices: Sequence[int]) -> int:
    """The most steps among samples ``indices`` of ``dataset`` (0 for none), looking through ``Subset`` and
    ``ConcatDataset`` (not subclasses that override ``__getitem__``) to count :class:`EventFrameDataset` samples
    without binning them."""
    if len(indices) == 0:
        return 0
    if _as_subset(dataset):
        return _longest(dataset.dataset, [dataset.indices[i] for i in indices])
    if _as_concat(dataset):
        n, ends = len(dataset), dataset.cumulative_sizes
        parts: dict[int, list[int]] = {}
        for i in indices:
            if not -n <= i < n:
                raise IndexError(f"max_sample_steps: index {i} is out of range for a ConcatDataset of {n} samples")
            i = i + n if i < 0 else i
            part = bisect.bisect_right(ends, i)
            parts.setdefault(part, []).append(i - (ends[part - 1] if part else 0))
        return max(_longest(dataset.datasets[part], idx) for part, idx in parts.items())
    if _as_frames(dataset):
        fixed = dataset._n_frames()
        return fixed if fixed is not None else max(dataset._steps_of(i) for i in indices)
    return max(int(torch.as_tensor(dataset[i][0]).shape[0]) for i in indices)


def make_neuromorphic_loader(
    dataset: Dataset, batch_size: int = 32, shuffle: bool = True, seed: int = 0, num_workers: int = 0,
    n_steps: int | None = None,
) -> DataLoader:
    """DataLoader yielding time-major ``(x [T, B, C...], y [B])``.

    Samples of different lengths (``time_window`` without ``duration``) are zero-padded to the longest of their
    batch (``n_steps=None``), so their outputs and metrics depend on the batch they land in; ``n_steps`` pads every
    batch to that many steps instead (:class:`~snnlab.data.collate.PadCollate`; :func:`max_sample_steps` gives
    the longest sample, which for ``time_window`` alone means reading every file once). A longer sample is a
    ``ValueError``: at once when the dataset's settings fix its frame count, else when its batch is collated.

    Example:
        >>> ev = np.array([(0, 1, 0), (500, 2, 0)], dtype=AUDIO_DTYPE)
        >>> ds = EventFrameDataset("toy", [0, 1], [0, 1], lambda i: ev, (4, 1, 1), n_time_bins=3)
        >>> next(iter(make_neuromorphic_loader(ds, batch_size=2)))[0].shape
        torch.Size([3, 2, 4])
        >>> next(iter(make_neuromorphic_loader(ds, batch_size=2, n_steps=5)))[0].shape
        torch.Size([5, 2, 4])
    """
    collate: Callable = time_major_collate
    n_steps = _check_n_steps(n_steps, "make_neuromorphic_loader")
    if n_steps is not None:
        collate = PadCollate(n_steps)
        fixed = _fixed_frames(dataset)
        if fixed is not None and fixed > n_steps:
            raise ValueError(f"make_neuromorphic_loader: the dataset's settings give samples of {fixed} frames, more "
                             f"than n_steps={n_steps}; pass n_steps >= {fixed} (or leave it None when every sample has "
                             f"{fixed} frames: its batches all have that many steps anyway)")
    g = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=g,
                      collate_fn=collate, num_workers=num_workers)
