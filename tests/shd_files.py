"""Small files in the real SHD/SSC HDF5 layout, written by tests (the real datasets cannot be downloaded here)."""
from pathlib import Path

import h5py
import numpy as np

# units every sample holds: both ends, both sides of the channel_bin edges test_data_channel_bin checks, and 350
_EDGE_UNITS = np.array([0, 1, 4, 5, 349, 350, 351, 695, 696, 697, 698, 699, 699])


def write_shd_events(path: Path, samples: list[tuple], labels, time_dtype=np.float16) -> None:
    """The SHD/SSC HDF5 layout: variable-length ``spikes/times`` (seconds, ``time_dtype``), uint16 ``spikes/units``
    and ``labels``, from ``samples = [(times, units), ...]``."""
    n = len(samples)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype(time_dtype)))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype("uint16")))
        for i, (t, u) in enumerate(samples):
            times[i], units[i] = np.asarray(t, time_dtype), np.asarray(u, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels))
        f.create_dataset("extra/speaker", data=np.arange(n, dtype=np.uint16))


def write_shd_recordings(root: Path, splits: dict[str, list[tuple]], unit_step: int = 1) -> Path:
    """``root/shd_<split>.h5`` for each ``{split: [event times of a recording (s), ...]}``, in float32 seconds; the
    label is the recording's index (plus 10 in the test split), the units ``(unit_step * index + k) % 700``."""
    for split, recs in splits.items():
        samples = [(list(t), [(unit_step * i + k) % 700 for k in range(len(t))]) for i, t in enumerate(recs)]
        write_shd_events(root / f"shd_{split}.h5", samples, np.arange(len(recs)) + (10 if split == "test" else 0),
                         time_dtype=np.float32)
    return root


def write_unit_700_file(root: Path) -> None:
    """``root/shd_train.h5`` with one sample whose second spike has unit 700, one past SHD's last channel."""
    write_shd_events(root / "shd_train.h5", [([0.1, 0.2], [3, 700])], np.zeros(1, np.uint8))


def write_shd_layout(path: Path, n: int, n_classes: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """SHD/SSC HDF5 layout: variable-length float16 ``spikes/times`` (s), uint16 ``spikes/units``, ``labels``."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n):
        k = int(rng.integers(150, 400))
        u = np.concatenate([_EDGE_UNITS, rng.integers(0, 700, k)]).astype(np.uint16)
        t = np.sort(rng.uniform(0.0, 0.95, len(u))).astype(np.float16)
        samples.append((t, u))
    write_shd_events(path, samples, np.arange(n, dtype=np.uint8) % n_classes)
    return samples
