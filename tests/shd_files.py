"""Small files in the real SHD/SSC HDF5 layout, written by tests (the real datasets cannot be downloaded here)."""
from pathlib import Path

import h5py
import numpy as np

# units every sample holds: both ends, both sides of the channel_bin edges test_data_channel_bin checks, and 350
_EDGE_UNITS = np.array([0, 1, 4, 5, 349, 350, 351, 695, 696, 697, 698, 699, 699])


def write_shd_layout(path: Path, n: int, n_classes: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """SHD/SSC HDF5 layout: variable-length float16 ``spikes/times`` (s), uint16 ``spikes/units``, ``labels``."""
    rng = np.random.default_rng(seed)
    samples = []
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.dtype("float16")))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype("uint16")))
        f.create_dataset("labels", data=np.arange(n, dtype=np.uint8) % n_classes)
        f.create_dataset("extra/speaker", data=np.arange(n, dtype=np.uint16))
        for i in range(n):
            k = int(rng.integers(150, 400))
            u = np.concatenate([_EDGE_UNITS, rng.integers(0, 700, k)]).astype(np.uint16)
            t = np.sort(rng.uniform(0.0, 0.95, len(u))).astype(np.float16)
            times[i], units[i] = t, u
            samples.append((t, u))
    return samples


