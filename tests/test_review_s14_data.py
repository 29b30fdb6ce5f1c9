"""Review of the event-frame changes (n_time_bins with duration from t=0; per-writer cache temporary files)."""
from fractions import Fraction

import numpy as np
import pytest

from snnlab.data import neuromorphic as nm


def _events(t) -> np.ndarray:
    ev = np.zeros(len(t), dtype=nm.AUDIO_DTYPE)
    ev["t"] = t
    ev["x"] = np.arange(len(t)) % 4
    return ev


@pytest.mark.parametrize("duration,n", [(1000, 30), (1000, 15), (1_000_000, 300), (1_000_000, 70), (1_000, 300),
                                        (1_400_000, 7)])
def test_n_time_bins_with_duration_count_every_event_on_a_bin_edge_exactly_once(duration, n):
    """Bin i is [i duration / n, (i + 1) duration / n): an event at a whole-microsecond edge counts once, in the later
    bin. With the float edges of time_window=duration / n, 1000 us in 30 bins lost an event at 500 us and 1 s in 300
    bins counted one at 40 ms twice (bins 11 and 12)."""
    edges = sorted({int(Fraction(i * duration, n)) for i in range(n + 1)
                    if Fraction(i * duration, n).denominator == 1 and i * duration // n < duration})
    t = sorted(set(edges) | {e + 1 for e in edges if e + 1 < duration} | {e - 1 for e in edges if e > 0})
    ev = _events(t)
    ds = nm.EventFrameDataset("toy", [0], [0], lambda _: ev, (4, 1, 1), n_time_bins=n, duration=duration)
    frames = ds[0][0]
    expected = np.zeros((n, 4), np.float32)
    for k, ti in enumerate(t):
        expected[int(Fraction(ti * n, duration)), k % 4] += 1  # floor(t n / duration), exactly
    assert frames.shape == (n, 4) and float(frames.sum()) == len(t)
    assert np.array_equal(frames.numpy(), expected)


def test_frames_cached_with_the_float_bin_edges_are_not_reused(tmp_path):
    """Caches written while n_time_bins with duration binned by the float edges of time_window=duration / n (key
    ``bins_from_zero: True``) may hold an edge event twice or not at all: the key changed, so they are recomputed."""
    import torch

    from snnlab.data.cache import DiskCache

    ev = _events([400])
    ds = nm.EventFrameDataset("toy", [0], [0], lambda _: ev, (4, 1, 1), n_time_bins=15, duration=1000,
                              cache_dir=tmp_path, cache_params={"data": 1})
    earlier = {"name": "toy", "n": 1, "sensor_size": (4, 1, 1), "binning": nm.frames.BINNING_VERSION,
               "n_time_bins": 15, "time_window": None, "duration": 1000, "data": 1, "bins_from_zero": True}
    stale = DiskCache(tmp_path, "toy", earlier)
    doubled = torch.zeros(15, 4)
    doubled[5, 0] = doubled[6, 0] = 1
    stale.get_or_compute(0, lambda: doubled)
    assert ds.cache.folder != stale.folder
    assert ds[0][0].sum() == 1 and ds[0][0][6, 0] == 1


def test_a_frame_settings_error_says_n_time_bins_came_from_num_steps():
    """The count the user never set in data_kwargs is named as num_steps's."""
    from snnlab.training.config import ExperimentConfig
    with pytest.raises(ValueError, match=r"n_time_bins is num_steps, 100\): duration=50 us in n_time_bins=100 bins"):
        ExperimentConfig(dataset="shd", num_steps=100, data_kwargs={"duration": 50}).validate()
