"""``n_time_bins`` with ``duration``: n bins of ``duration / n_time_bins`` from t=0 in every sample (the frames of
``time_window=duration / n_time_bins`` with that ``duration``), not n bins stretched over each sample's events."""
import numpy as np
import pytest
import torch

from snnlab.data import neuromorphic as nm
from snnlab.data.cache import DiskCache


def _events(t: list[int], x: list[int]) -> np.ndarray:
    ev = np.zeros(len(t), dtype=nm.AUDIO_DTYPE)
    ev["t"], ev["x"] = t, x
    return ev


# duration 1000 us in 4 bins of 250 us: [0, 250) [250, 500) [500, 750) [750, 1000); t >= 1000 is dropped
SAMPLES = [_events([100, 260, 499, 500, 999, 1000, 1500], [0, 1, 1, 2, 3, 3, 0]),
           _events([600, 700], [1, 2])]
EXPECTED = [  # [frame][unit], by hand
    [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]],
    [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]],
]


def _dataset(**kwargs) -> nm.EventFrameDataset:
    return nm.EventFrameDataset("toy", [0, 1], [0, 1], SAMPLES.__getitem__, (4, 1, 1), **kwargs)


def test_n_time_bins_with_duration_are_bins_of_duration_over_n_from_zero():
    """Earlier, sample 0's bins were 225 us from its first event at 100 us ([2, 2, 0, 1] events) and sample 1's
    26 us from 600 us (its two events in bins 0 and 3)."""
    ds = _dataset(n_time_bins=4, duration=1000)
    for i, expected in enumerate(EXPECTED):
        frames = ds[i][0]
        assert frames.shape == (4, 4) and frames.tolist() == expected, i
    assert nm.max_sample_steps(ds) == 4


def test_they_are_the_frames_of_time_window_duration_over_n_with_that_duration():
    rng = np.random.default_rng(3)
    samples = [np.sort(rng.integers(0, 1400, 300)) for _ in range(6)] + [np.array([999, 1000]), np.array([5])]
    events = [_events(t.tolist(), rng.integers(0, 4, len(t)).tolist()) for t in samples]
    for n, duration in ((3, 1000), (7, 1000), (4, 1000.5), (300, 1_000)):
        by_bins = nm.EventFrameDataset("toy", events, [0] * len(events), lambda e: e, (4, 1, 1),
                                       n_time_bins=n, duration=duration)
        by_window = nm.EventFrameDataset("toy", events, [0] * len(events), lambda e: e, (4, 1, 1),
                                         time_window=duration / n, duration=duration)
        for i in range(len(events)):
            frames = by_bins[i][0]
            assert frames.shape[0] == n
            kept = events[i][events[i]["t"] < duration]
            exact = np.zeros((n, 4), np.float32)  # bin floor(t n / duration): every kept event exactly once
            np.add.at(exact, (np.floor(kept["t"] * n / duration).astype(int), kept["x"]), 1)
            assert np.array_equal(frames.numpy(), exact), (n, duration, i)
            if n != 300:  # 1000 / 300 us windows: their float edges count some events on whole-us edges twice
                assert torch.equal(frames, by_window[i][0]), (n, duration, i)


def test_shd_spikes_at_the_same_time_land_in_the_same_bin_in_every_sample(tmp_path):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "shd_train.h5", "w") as f:
        times = f.create_dataset("spikes/times", (2,), dtype=h5py.vlen_dtype(np.dtype(np.float32)))
        units = f.create_dataset("spikes/units", (2,), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
        # unit 7 spikes at 0.5 s in both; sample 1 also spans 0.0 s to 0.95 s, sample 0 only 0.45 s to 0.55 s
        for i, (t, u) in enumerate((([0.45, 0.5, 0.55], [1, 7, 1]), ([0.0, 0.5, 0.95], [1, 7, 1]))):
            times[i], units[i] = np.asarray(t, np.float32), np.asarray(u, np.uint16)
        f.create_dataset("labels", data=np.array([0, 1], np.uint16))
    ds = nm.load_shd(tmp_path, n_time_bins=10, duration=1_000_000)  # 100 ms bins from 0
    for i in range(2):
        frames = ds[i][0]
        assert frames.shape == (10, 700) and frames[:, 7].tolist() == [0] * 5 + [1] + [0] * 4, i
    assert ds[0][0][:, 1].nonzero().flatten().tolist() == [4, 5]  # 0.45 s and 0.55 s
    assert ds[1][0][:, 1].nonzero().flatten().tolist() == [0, 9]


def test_frames_cached_by_the_earlier_binning_are_not_reused(tmp_path):
    """The cache key of n_time_bins with duration changed (the earlier key found the stretched frames); the key of
    the other settings did not (their caches stay valid)."""
    def earlier_key(n_time_bins, time_window, duration) -> dict:
        return {"name": "toy", "n": 2, "sensor_size": (4, 1, 1), "binning": nm.frames.BINNING_VERSION,
                "n_time_bins": n_time_bins, "time_window": time_window, "duration": duration, "data": 1,
                "events_sorted": True}  # (a reader of one's own)

    stale = DiskCache(tmp_path, "toy", earlier_key(4, None, 1000))
    stale.get_or_compute(0, lambda: torch.full((4, 4), 9.0))  # as an earlier version left it
    ds = _dataset(n_time_bins=4, duration=1000, cache_dir=tmp_path, cache_params={"data": 1})
    assert ds.cache.folder != stale.folder
    assert ds[0][0].tolist() == EXPECTED[0] and 0 in ds.cache  # computed and stored
    assert ds[0][0].tolist() == EXPECTED[0]  # read back
    for kwargs in (dict(time_window=250, duration=1000), dict(n_time_bins=4)):
        same = _dataset(cache_dir=tmp_path, cache_params={"data": 1}, **kwargs)
        settings = {"n_time_bins": None, "time_window": None, "duration": None, **kwargs}
        assert same.cache.folder == DiskCache(tmp_path, "toy", earlier_key(**settings)).folder


def test_bins_shorter_than_a_microsecond_are_refused():
    with pytest.raises(ValueError, match=r"toy: duration=50 us in n_time_bins=100 bins gives bins of 0\.5 us"):
        _dataset(n_time_bins=100, duration=50)
    with pytest.raises(ValueError, match=r"shd: .*shorter than the 1 us resolution"):
        nm.check_frame_settings("shd", 100, None, 99)
    nm.check_frame_settings("shd", 100, None, 100)  # 1 us bins


def test_n_time_bins_alone_still_stretches_over_each_samples_events():
    ds = _dataset(n_time_bins=2)
    # sample 1: events at 600 and 700 us, bins of ceil(101 / 2) = 51 us from 600
    assert ds[1][0].tolist() == [[0, 1, 0, 0], [0, 0, 1, 0]]
