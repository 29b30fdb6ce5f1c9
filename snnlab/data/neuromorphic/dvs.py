"""DVS Gesture and POKER-DVS from tonic's preprocessed ``.npy`` event arrays: the reader, :func:`load_dvs_gesture`,
:func:`load_pokerdvs`."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..cache import files_cache_params
from .frames import XYTP_DTYPE, EventFrameDataset, _default_bins
from .roots import _LAYOUT, NEUROMORPHIC_DATASETS, _check_labels, _missing, _split_folder


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
        return ev  # (EventFrameDataset._read puts the events in time order)

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
    ``n_time_bins`` (default 50) or ``time_window`` (microseconds), and optionally ``duration`` (microseconds):
    frames then start at t=0 in every sample (see :class:`EventFrameDataset`). IBM's original release
    (``*.aedat`` with ``*_labels.csv``) is not read: a clear error says so.

    Example:
        >>> ds = load_dvs_gesture("/data", "test", n_time_bins=20)  # doctest: +SKIP
        >>> ds[0][0].shape  # doctest: +SKIP
        torch.Size([20, 2, 128, 128])
    """
    n_time_bins = _default_bins(n_time_bins, time_window, 50)
    try:
        base = _split_folder("dvsgesture", root, split)
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
    ``t, x, y, p`` (``t`` in microseconds). Give ``n_time_bins`` (default 20) or ``time_window`` (microseconds),
    and optionally ``duration`` (microseconds): frames then start at t=0 in every sample (see
    :class:`EventFrameDataset`).

    Example:
        >>> ds = load_pokerdvs("/data", "train", n_time_bins=10)  # doctest: +SKIP
        >>> ds[0][0].shape  # doctest: +SKIP
        torch.Size([10, 2, 35, 35])
    """
    n_time_bins = _default_bins(n_time_bins, time_window, 20)
    base = _split_folder("pokerdvs", root, split)
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
