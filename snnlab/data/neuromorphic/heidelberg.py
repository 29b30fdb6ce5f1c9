"""SHD and SSC (the Heidelberg spiking audio datasets): the HDF5 reader and layout checks, :func:`load_shd`,
:func:`load_ssc`."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...extras import require
from ..cache import files_cache_params
from .frames import AUDIO_DTYPE, EventFrameDataset, _default_bins, check_channel_bin
from .roots import NEUROMORPHIC_DATASETS, _check_labels, _h5_file, _missing, _resolve


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
        return ev  # (EventFrameDataset._read puts the events in time order)


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
    fname = _h5_file(name, split)
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
    aligned at t=0). ``n_time_bins`` alone stretches its bins from each sample's first to last spike; with
    ``duration`` they are ``duration / n_time_bins`` long from t=0 in every sample (``n_time_bins=100,
    duration=1_000_000`` gives the same 10 ms frames as above); see :class:`EventFrameDataset`.
    ``channel_bin`` (1..700, default 1) sums each group of that many adjacent channels (unit ``c`` counts in
    channel ``c // channel_bin``), so items are ``[T, ceil(700 / channel_bin)]``: ``channel_bin=5`` gives the 140
    inputs of Hammouamri et al. (2023, DCLS delays).

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

    Give ``n_time_bins`` (default 100) or ``time_window``, and optionally ``duration`` (frames from t=0); times are
    in microseconds and ``channel_bin`` sums adjacent channels (items ``[T, ceil(700 / channel_bin)]``) as for
    :func:`load_shd`.

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
