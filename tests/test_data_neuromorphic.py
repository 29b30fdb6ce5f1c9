from pathlib import Path

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")
tonic = pytest.importorskip("tonic")

from shd_files import write_shd_events, write_unit_700_file  # noqa: E402

from snnlab.data import neuromorphic as nm  # noqa: E402
from snnlab.data.neuromorphic import roots  # noqa: E402
from snnlab.data.neuromorphic.frames import _frame_counts  # noqa: E402


def _write_shd_like(path: Path, n: int, n_classes: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """Write an SHD/SSC-layout HDF5 file: ragged float times (s), ragged uint16 units, labels."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        k = int(rng.integers(20, 60))
        t = np.sort(rng.uniform(0.0, 0.9, k)).astype(np.float16)
        u = rng.integers(0, 700, k).astype(np.uint16)
        samples.append((t, u, i % n_classes))
    write_shd_events(path, [(t, u) for t, u, _ in samples], np.array([c for _, _, c in samples], np.uint16))
    return samples


def test_shd_layout_roundtrip(tmp_path):
    samples = _write_shd_like(tmp_path / "shd_train.h5", 6, 20)
    _write_shd_like(tmp_path / "shd_test.h5", 3, 20, seed=1)
    ds = nm.load_shd(tmp_path, "train", n_time_bins=50)
    assert len(ds) == 6
    x, y = ds[2]
    assert x.shape == (50, 700) and x.dtype == torch.float32 and int(y) == 2
    t, u, _ = samples[2]
    assert int(x.sum()) == len(t)  # every spike is counted once
    assert torch.equal(x.sum(0), torch.bincount(torch.from_numpy(u.astype(np.int64)), minlength=700).float())
    assert len(nm.load_shd(tmp_path, "test")) == 3
    # fixed window aligned at t=0: 10 ms bins over 1 s -> 100 frames
    xw, _ = nm.load_shd(tmp_path, "train", n_time_bins=None, time_window=10_000, duration=1_000_000)[2]
    assert xw.shape == (100, 700) and int(xw.sum()) == len(t)
    first = int(np.round(float(t[0]) * 1e6)) // 10_000
    assert xw[first, int(u[0])] >= 1
    xb, yb = next(iter(nm.make_neuromorphic_loader(ds, batch_size=4, shuffle=False)))
    assert xb.shape == (50, 4, 700) and yb.tolist() == [0, 1, 2, 3]


def test_ssc_layout_in_tonic_subfolder(tmp_path):
    (tmp_path / "SSC").mkdir()
    _write_shd_like(tmp_path / "SSC" / "ssc_valid.h5", 4, 35)
    ds = nm.load_neuromorphic("ssc", tmp_path, "valid", n_time_bins=10)
    assert ds[3][0].shape == (10, 700) and int(ds[3][1]) == 3
    with pytest.raises(ValueError, match="split"):
        nm.load_ssc(tmp_path, "dev")


def test_disk_cache_skips_rebinning(tmp_path):
    _write_shd_like(tmp_path / "shd_train.h5", 3, 20)
    ds = nm.load_shd(tmp_path, "train", n_time_bins=20, cache_dir=tmp_path / "cache")
    first = [ds[i][0] for i in range(3)]
    files = list((tmp_path / "cache").rglob("*.pt"))
    assert len(files) == 3

    def boom(_):
        raise AssertionError("re-binned despite the cache")

    ds.reader = boom
    assert all(torch.equal(a, ds[i][0]) for i, a in enumerate(first))
    # other binning parameters -> separate cache folder
    nm.load_shd(tmp_path, "train", n_time_bins=7, cache_dir=tmp_path / "cache")[0]
    assert len({p.parent for p in (tmp_path / "cache").rglob("*.pt")}) == 2


def _toy_events(times_us, units):
    ev = np.empty(len(times_us), dtype=nm.AUDIO_DTYPE)
    ev["t"], ev["x"], ev["p"] = times_us, units, 0
    return ev


@pytest.mark.parametrize("times,window,frames", [
    ([0, 10_000, 20_000], 10_000, 3),           # last event exactly one window after the previous
    ([100_000, 200_000, 300_000], 10_000, 21),  # frames start at the first event
    ([5, 6, 29_999], 10_000, 3),
    ([0, 1_000, 2_000, 2_999], 1000.5, 3),      # a window that is not a whole microsecond
    ([7], 10_000, 1),
])
def test_time_window_without_duration_counts_every_event(times, window, frames):
    ev = _toy_events(times, np.arange(len(times)) % 4)
    ds = nm.EventFrameDataset("toy", [0], [1], lambda _: ev, (4, 1, 1), n_time_bins=None, time_window=window)
    x, _ = ds[0]
    assert x.shape == (frames, 4) and int(x.sum()) == len(times)
    first = int((times[-1] - times[0]) // window)
    assert x[first, (len(times) - 1) % 4] >= 1  # the last event lands in its own window


def test_duration_gives_the_same_frames_to_every_sample_and_window_edges_are_exact():
    evs = [_toy_events([0, 999, 1000, 2500, 2999, 3000], [0, 0, 1, 2, 2, 3]), _toy_events([], [])]
    ds = nm.EventFrameDataset("toy", [0, 1], [0, 0], lambda i: evs[i], (4, 1, 1), n_time_bins=None,
                              time_window=1000, duration=3000)
    x, _ = ds[0]
    assert x.shape == (3, 4) and ds[1][0].shape == (3, 4)
    assert x.tolist() == [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 2, 0]]  # t = 3000 is past the duration


@pytest.mark.parametrize("kwargs,match", [
    (dict(n_time_bins=2.7), "n_time_bins"),
    (dict(n_time_bins=None, time_window=float("inf")), "time_window"),
    (dict(n_time_bins=None, time_window=-3), "time_window"),
    (dict(n_time_bins=10, duration=float("nan")), "duration"),
    (dict(n_time_bins=10, duration=0), "duration"),
    (dict(n_time_bins=None, time_window=10_000, duration=5_000), "shorter than one time_window"),
])
def test_impossible_binning_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nm.EventFrameDataset("toy", [0], [0], lambda _: _toy_events([0], [0]), (4, 1, 1), **kwargs)


def test_index_out_of_range_raises():
    ds = nm.EventFrameDataset("toy", [0, 1], [0, 1], lambda _: _toy_events([0], [0]), (4, 1, 1), n_time_bins=2)
    assert int(ds[-2][1]) == 0
    for bad in (2, -3):
        with pytest.raises(IndexError, match="out of range"):
            ds[bad]


def _write_gesture(base: Path, user_dir: str, label: int, x_column: int) -> None:
    d = base / "ibmGestureTrain" / user_dir
    d.mkdir(parents=True, exist_ok=True)
    ev = np.array([[x_column, 3, 1, 1.0], [x_column, 3, 1, 2.0]])  # x, y, p, t[ms]
    np.save(d / f"{label}.npy", ev)


def test_event_file_cache_follows_the_files_not_only_their_number(tmp_path):
    import shutil

    def frames_and_labels():
        ds = nm.load_dvs_gesture(tmp_path, n_time_bins=1, cache_dir=tmp_path / "cache")
        return [(int(ds[i][1]), int(ds[i][0][0, 1, 3].nonzero().flatten()[0])) for i in range(len(ds))]

    _write_gesture(tmp_path, "user01_led", 0, x_column=1)
    _write_gesture(tmp_path, "user01_led", 5, x_column=2)
    assert frames_and_labels() == [(0, 1), (5, 2)]
    shutil.rmtree(tmp_path / "ibmGestureTrain" / "user01_led")  # same number of files, other recordings
    _write_gesture(tmp_path, "user01_led", 3, x_column=7)
    _write_gesture(tmp_path, "user02_led", 9, x_column=9)
    assert frames_and_labels() == [(3, 7), (9, 9)]


def test_nmnist_bin_format_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    expected = {}
    for split in ("Train", "Test"):
        for digit in (3, 7):
            d = tmp_path / "NMNIST" / split / str(digit)
            d.mkdir(parents=True)
            n = 200
            x, y = rng.integers(0, 34, n), rng.integers(0, 34, n)
            t, p = np.sort(rng.integers(0, 300_000, n)), rng.integers(0, 2, n)
            nm.write_nmnist_bin(d / "00001.bin", x, y, t, p)
            expected[(split, digit)] = (x, y, t, p)
    raw = (tmp_path / "NMNIST/Train/3/00001.bin").read_bytes()
    assert len(raw) == 5 * 200
    ev = tonic.io.read_mnist_file(str(tmp_path / "NMNIST/Train/3/00001.bin"), dtype=nm.XYTP_DTYPE)
    x, y, t, p = expected[("Train", 3)]
    assert np.array_equal(ev["x"], x) and np.array_equal(ev["y"], y)
    assert np.array_equal(ev["t"], t) and np.array_equal(ev["p"], p)
    ds = nm.load_nmnist(tmp_path, "train", n_time_bins=5)
    assert len(ds) == 2 and ds.labels.tolist() == [3, 7]
    frames, label = ds[0]
    assert frames.shape == (5, 2, 34, 34) and int(label) == 3 and int(frames.sum()) == 200
    pol_counts = frames.sum(dim=(0, 2, 3))
    assert pol_counts.tolist() == [float((p == 0).sum()), float((p == 1).sum())]
    assert float(frames[:, int(p[0]), int(y[0]), int(x[0])].sum()) >= 1  # frames are [T, P, H(y), W(x)]
    assert len(nm.load_nmnist(tmp_path / "NMNIST", "test")) == 2  # root may also be the NMNIST folder


def test_dvs_gesture_layout(tmp_path):
    rng = np.random.default_rng(0)
    base = tmp_path / "DVSGesture" / "ibmGestureTrain"
    for user, light in ((1, "fluorescent"), (2, "led")):
        d = base / f"user{user:02d}_{light}"
        d.mkdir(parents=True)
        for label in (0, 10):
            n = 500
            ev = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n),
                           np.sort(rng.uniform(0, 6000, n))], 1)  # x, y, p, t[ms]
            np.save(d / f"{label}.npy", ev)
    ds = nm.load_dvs_gesture(tmp_path, "train", n_time_bins=None, time_window=1_000_000, duration=6_000_000)
    assert len(ds) == 4 and sorted(ds.labels.tolist()) == [0, 0, 10, 10]
    x, y = ds[0]
    assert x.shape == (6, 2, 128, 128) and int(x.sum()) == 500
    with pytest.raises(FileNotFoundError, match="ibmGestureTest"):
        nm.load_dvs_gesture(tmp_path, "test")


def test_pokerdvs_layout(tmp_path):
    rng = np.random.default_rng(0)
    base = tmp_path / "POKERDVS" / "pips_train"
    for cls in ("cl", "he", "di", "sp"):
        (base / cls).mkdir(parents=True)
        n = 100
        ev = np.stack([np.sort(rng.integers(0, 20_000, n)), rng.integers(0, 35, n), rng.integers(0, 35, n),
                       rng.integers(0, 2, n)], 1)  # t[us], x, y, p
        np.save(base / cls / "0.npy", ev)
    ds = nm.load_pokerdvs(tmp_path, "train", n_time_bins=4)
    assert ds.labels.tolist() == [0, 2, 1, 3]  # sorted folders cl, di, he, sp -> clubs 0, diamonds 2, hearts 1, spades 3
    x, y = ds[1]
    assert x.shape == (4, 2, 35, 35) and int(x.sum()) == 100


@pytest.mark.parametrize("name", ["shd", "ssc", "nmnist", "dvsgesture", "pokerdvs"])
def test_missing_folder_helpful_error(tmp_path, name):
    with pytest.raises(FileNotFoundError) as e:
        nm.load_neuromorphic(name, tmp_path / "nothing", "train" if name != "ssc" else "valid")
    msg = str(e.value)
    assert "never downloads" in msg and str(tmp_path / "nothing") in msg
    assert ("http" in msg) or ("tonic" in msg)


def test_incomplete_files_error(tmp_path):
    with h5py.File(tmp_path / "shd_train.h5", "w") as f:
        f.create_dataset("labels", data=np.zeros(3, np.uint16))
    with pytest.raises(FileNotFoundError, match="incomplete") as e:
        nm.load_shd(tmp_path)
    assert "not a readable HDF5" not in str(e.value)  # readable, only incomplete: no gunzip advice
    (tmp_path / "shd_test.h5").write_bytes(b"\x1f\x8b gzip not hdf5")
    with pytest.raises(FileNotFoundError, match="gunzip"):
        nm.load_shd(tmp_path, "test")
    (tmp_path / "NMNIST" / "Train" / "3").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no <digit>"):
        nm.load_nmnist(tmp_path)


def test_no_download_is_ever_attempted(tmp_path, monkeypatch):
    import tonic.dataset

    def no_download(*a, **k):
        raise AssertionError("download attempted")

    monkeypatch.setattr(tonic.dataset.Dataset, "download", no_download)
    for name in ("shd", "nmnist", "dvsgesture", "pokerdvs"):
        with pytest.raises(FileNotFoundError):
            nm.load_neuromorphic(name, tmp_path)


def _shared_nmnist() -> Path:
    return nm.shared_data_root() / "nmnist_small"


@pytest.mark.skipif(not (_shared_nmnist() / "NMNIST").exists(), reason="shared N-MNIST subset not available")
def test_real_nmnist_recordings(tmp_path):
    root = _shared_nmnist()
    ds = nm.load_nmnist(root, "test", n_time_bins=10, cache_dir=tmp_path)
    assert len(ds) == 100
    # labels from the folders agree with the label list kept beside the data
    lines = [ln.split() for ln in (root / "test100.txt").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    by_id = {int(a): int(b) for a, b in lines}
    for path, label in zip(ds.items, ds.labels.tolist()):
        assert by_id[int(Path(path).stem)] == label
    x, y = ds[0]
    assert x.shape == (10, 2, 34, 34) and x.sum() > 1000
    assert (x.sum(0) > 0).float().mean() > 0.2  # saccades sweep over a good part of the sensor
    xb, yb = next(iter(nm.make_neuromorphic_loader(ds, batch_size=8)))
    assert xb.shape == (10, 8, 2, 34, 34)
    assert len(nm.load_nmnist(root, "train", n_time_bins=10)) == 1000


@pytest.mark.parametrize("loader,name,folder", [(nm.load_nmnist, "nmnist", "Test"),
                                                (nm.load_dvs_gesture, "dvsgesture", "ibmGestureTest"),
                                                (nm.load_pokerdvs, "pokerdvs", "pips_test")])
def test_event_loaders_refuse_unknown_splits_and_name_the_missing_folder(tmp_path, loader, name, folder):
    with pytest.raises(ValueError, match=f"{name}: unknown split 'val'"):
        loader(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match=f"folder {folder}/ not found"):
        loader(tmp_path, "test")


# ----------------------------------------------------------------------------------------------
# time_window alone, units, frame counts
# ----------------------------------------------------------------------------------------------
def _write_every_layout(root: Path) -> None:
    """One small, format-faithful sample of every dataset under ``root`` (train split; SSC valid)."""
    _write_shd_like(root / "shd_train.h5", 2, 20)
    _write_shd_like(root / "ssc_valid.h5", 2, 35)
    d = root / "NMNIST" / "Train" / "3"
    d.mkdir(parents=True)
    nm.write_nmnist_bin(d / "00001.bin", np.array([1, 2]), np.array([3, 4]), np.array([0, 4_500]), np.array([0, 1]))
    d = root / "DVSGesture" / "ibmGestureTrain" / "user01_led"
    d.mkdir(parents=True)
    np.save(d / "4.npy", np.array([[1, 2, 1, 0.0], [5, 6, 0, 4.5]]))  # x, y, p, t[ms]
    d = root / "POKERDVS" / "pips_train" / "xcl"
    d.mkdir(parents=True)
    np.save(d / "0.npy", np.array([[0, 1, 2, 1], [4_500, 5, 6, 0]]))  # t[us], x, y, p


@pytest.mark.parametrize("name,split", [("shd", "train"), ("ssc", "valid"), ("nmnist", "train"),
                                        ("dvsgesture", "train"), ("pokerdvs", "train")])
def test_every_loader_takes_time_window_alone(tmp_path, name, split):
    _write_every_layout(tmp_path)
    ds = nm.load_neuromorphic(name, tmp_path, split, time_window=1000)
    assert ds.n_time_bins is None and ds.time_window == 1000
    x, _ = ds[0]
    assert x.shape[1:] == (700,) if name in ("shd", "ssc") else x.ndim == 4
    if name not in ("shd", "ssc"):
        assert x.shape[0] == 5 and int(x.sum()) == 2  # events at 0 and 4.5 ms
    default = {"shd": 100, "ssc": 100, "nmnist": 30, "dvsgesture": 50, "pokerdvs": 20}[name]
    assert nm.load_neuromorphic(name, tmp_path, split)[0][0].shape[0] == default  # n_time_bins still defaults


def test_load_ssc_docstring_example(tmp_path):
    # the (skipped, it needs the SSC files) docstring example of load_ssc, on a small SSC-layout file
    _write_shd_like(tmp_path / "ssc_valid.h5", 2, 35)
    ds = nm.load_ssc(tmp_path, "valid", time_window=10_000, duration=1_000_000)
    assert ds[0][0].shape == torch.Size([100, 700])


@pytest.mark.parametrize("kwargs", [dict(time_window=0.01, duration=1.4), dict(time_window=0.001)])  # meant seconds
def test_times_in_seconds_are_refused_with_a_units_message(tmp_path, kwargs):
    _write_shd_like(tmp_path / "shd_train.h5", 1, 20)
    with pytest.raises(ValueError, match="in microseconds"):
        nm.load_shd(tmp_path, n_time_bins=None, **kwargs)  # refused before any sample is binned


def test_absurd_frame_counts_are_refused_before_allocating(tmp_path):
    _write_shd_like(tmp_path / "shd_train.h5", 1, 20)
    with pytest.raises(ValueError, match=r"shd: every sample: .* 2000000 frames per sample .*in microseconds"):
        nm.load_shd(tmp_path, n_time_bins=None, time_window=1, duration=2_000_000)
    with pytest.raises(ValueError, match=r"40000 frames per sample \(4.88 GiB\)"):  # the memory limit
        nm.EventFrameDataset("dvs", [0], [0], lambda _: np.zeros(0, nm.XYTP_DTYPE), (128, 128, 2), n_time_bins=40_000)
    # without a duration the number of frames depends on the sample: refused when it is binned
    big = _toy_events([0, 1_500_000], [0, 1])
    ds = nm.EventFrameDataset("toy", ["rec.bin"], [0], lambda _: big, (4, 1, 1), n_time_bins=None, time_window=1)
    with pytest.raises(ValueError, match=r"toy: rec\.bin: time_window=1 us gives 1500001 frames .*in microseconds"):
        ds[0]


def test_duration_that_drops_every_event_warns(tmp_path):
    samples = _write_shd_like(tmp_path / "shd_train.h5", 1, 20)
    ds = nm.load_shd(tmp_path, n_time_bins=None, time_window=1, duration=2)  # meant 1 s and 2 s, given as microseconds
    with pytest.warns(RuntimeWarning, match=rf"shd_train.h5 \(sample 0\): all {len(samples[0][0])} events .*microseconds"):
        x, _ = ds[0]
    assert x.shape == (2, 700) and int(x.sum()) == 0


@pytest.mark.parametrize("duration,window,frames", [(1_000_000, 1_000_000 / 300, 300), (300_000, 300_000 / 7, 7),
                                                    (1_000_000, 1_000_000 / 3, 3), (3_500, 1_000, 3)])
def test_non_integer_windows_keep_every_whole_frame(duration, window, frames):
    ev = _toy_events([0, int(duration) - 1], [1, 2])
    ds = nm.EventFrameDataset("toy", [0], [0], lambda _: ev, (4, 1, 1), n_time_bins=None, time_window=window,
                              duration=duration)
    x, _ = ds[0]
    assert x.shape == (frames, 4)
    in_frames = int(frames * window) > int(duration) - 1  # the last event lies in the last whole frame
    assert int(x.sum()) == 1 + in_frames and (x[-1, 2] == 1) == in_frames
    assert nm.whole_frames(duration, window) == frames


# ----------------------------------------------------------------------------------------------
# bad files
# ----------------------------------------------------------------------------------------------
def test_truncated_nmnist_bin_names_the_file(tmp_path):
    d = tmp_path / "Train" / "3"
    d.mkdir(parents=True)
    nm.write_nmnist_bin(d / "a.bin", np.arange(4), np.arange(4), np.arange(4) * 10, np.zeros(4, int))
    data = (d / "a.bin").read_bytes()
    (d / "a.bin").write_bytes(data[:-2])  # cut mid-event
    ds = nm.load_nmnist(tmp_path, n_time_bins=2)
    with pytest.raises(ValueError, match=r"a\.bin: 18 bytes is not a whole number of 5-byte N-MNIST events"):
        ds[0]


def _write_oob(root: Path, name: str) -> None:
    if name == "shd":
        write_unit_700_file(root)
    elif name == "nmnist":
        (root / "Train" / "5").mkdir(parents=True)
        nm.write_nmnist_bin(root / "Train/5/oob.bin", np.array([1, 40]), np.array([1, 2]), np.array([10, 20]),
                            np.array([0, 1]))
    else:
        d = root / "ibmGestureTrain" / "user01_led"
        d.mkdir(parents=True)
        x = {"dvs_x-1": -1, "dvs_x128": 128}[name]
        np.save(d / "0.npy", np.array([[x, 5, 1, 10], [3, 5, 0, 20]], dtype=np.int64))


@pytest.mark.parametrize("name,match", [("shd", r"shd_train\.h5 \(sample 0\): .*unit=700, outside the sensor's 0\.\.699"),
                                        ("nmnist", r"oob\.bin: .*x=40, outside the sensor's 0\.\.33"),
                                        ("dvs_x-1", r"0\.npy: .*x=-1, outside the sensor's 0\.\.127"),
                                        ("dvs_x128", r"0\.npy: .*x=128, outside the sensor's 0\.\.127")])
def test_events_off_the_sensor_are_refused_naming_the_file(tmp_path, name, match):
    _write_oob(tmp_path, name)
    key = "dvsgesture" if name.startswith("dvs") else name
    ds = nm.load_neuromorphic(key, tmp_path, "train", n_time_bins=1)
    with pytest.raises(ValueError, match=match):
        ds[0]


def test_reader_errors_name_the_file(tmp_path):
    d = tmp_path / "ibmGestureTrain" / "user01_led"
    d.mkdir(parents=True)
    np.save(d / "0.npy", np.zeros((2, 4)))
    ds = nm.load_dvs_gesture(tmp_path, n_time_bins=1)
    (d / "0.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"dvsgesture: .*0\.npy: cannot read it"):
        ds[0]
    (d / "0.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"0\.npy"):
        ds[0]


def test_ibm_original_dvs_gesture_layout_is_refused_clearly(tmp_path):
    d = tmp_path / "DvsGesture"
    d.mkdir()
    (d / "user01_fluorescent.aedat").write_bytes(b"#!AER-DAT3.1\r\n#End Of ASCII Header\r\n")
    (d / "user01_fluorescent_labels.csv").write_text("class,startTime_usec,endTime_usec\n1,80048239,85092709\n")
    (d / "trials_to_train.txt").write_text("user01_fluorescent.aedat\n")
    for root in (tmp_path, d):
        with pytest.raises(FileNotFoundError, match="IBM's original DVS Gesture release") as e:
            nm.load_dvs_gesture(root)
        msg = str(e.value)
        assert str(d) in msg and "ibmGestureTrain.tar.gz" in msg and "userNN_<lighting>/<label>.npy" in msg


def test_labels_outside_the_classes_are_refused_naming_the_file(tmp_path):
    write_shd_events(tmp_path / "shd_train.h5", [([0.1], [3])] * 2, np.array([3, 25], np.uint8))
    with pytest.raises(ValueError, match=r"shd_train\.h5 \(sample 1\) has label 25, outside 0\.\.19"):
        nm.load_shd(tmp_path)
    d = tmp_path / "ibmGestureTrain" / "user01_led"
    d.mkdir(parents=True)
    np.save(d / "11.npy", np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"11\.npy has label 11, outside 0\.\.10"):
        nm.load_dvs_gesture(tmp_path)


# ----------------------------------------------------------------------------------------------
# data roots
# ----------------------------------------------------------------------------------------------
def test_the_shared_data_folder_layout_is_a_root_for_nmnist(tmp_path, monkeypatch):
    d = tmp_path / "nmnist_small" / "NMNIST" / "Test" / "7"  # the layout of <shared data>/README.md
    d.mkdir(parents=True)
    nm.write_nmnist_bin(d / "1.bin", np.array([1]), np.array([2]), np.array([0]), np.array([1]))
    (tmp_path / "nmnist_small" / "NMNIST" / "Train" / "7").mkdir(parents=True)
    nm.write_nmnist_bin(tmp_path / "nmnist_small/NMNIST/Train/7/2.bin", np.array([1]), np.array([2]), np.array([0]),
                        np.array([1]))
    assert nm.load_nmnist(tmp_path, "test").labels.tolist() == [7]
    from snnlab.training.config import ExperimentConfig
    from snnlab.training.model import build_data

    monkeypatch.setenv("SNNLAB_SHARED_DATA", str(tmp_path))  # the default data root of a config
    train, test, n_in, n_cls = build_data(ExperimentConfig(dataset="nmnist", num_steps=4))
    assert (n_in, n_cls) == (2 * 34 * 34, 10) and next(iter(test))[0].shape == (4, 1, 2 * 34 * 34)


def test_n_time_bins_with_duration_bins_from_zero_and_drops_later_events():
    """duration cuts the recording; the n bins are duration / n long from t=0 (here 200 us each)."""
    ev = np.zeros(4, dtype=nm.AUDIO_DTYPE)
    ev["t"] = [0, 250, 500, 900]
    ev["x"] = [0, 1, 2, 3]
    ds = nm.EventFrameDataset("toy", [0], [0], lambda i: ev, (4, 1, 1), n_time_bins=3, duration=600)
    frames = ds[0][0]
    assert frames.sum(1).tolist() == [1.0, 1.0, 1.0] and frames[:, 3].sum() == 0


@pytest.mark.parametrize("case,match", [
    ("empty", r"shd_train\.h5 holds no samples"),
    ("float labels", r"labels holds float64, not integers"),
    ("string labels", r"labels holds \|S1, not integers"),
    ("2-D labels", r"labels is a dataset of shape \(1, 1\), not the SHD/SSC layout's 1-D dataset"),
    ("scalar units", r"spikes/units is a dataset of shape \(\), not the SHD/SSC layout's 1-D dataset"),
    ("times group", r"spikes/times is a group, not the SHD/SSC layout's 1-D dataset"),
    ("float units", r"spikes/units holds float32 entries, not integer units of variable length per sample"),
])
def test_shd_files_out_of_layout_are_refused_at_load_naming_the_file(tmp_path, case, match):
    """Probes: an empty file failed at the first item (training) or after a whole epoch (test split); float labels
    and units were truncated; strings, scalars and groups gave raw h5py or int() errors."""
    import h5py

    good = [([0.1, 0.2], [3, 4])]
    if case == "empty":
        write_shd_events(tmp_path / "shd_train.h5", [], np.zeros(0, np.uint8))
    elif case == "float units":
        write_shd_events(tmp_path / "shd_train.h5", good, [1])
        with h5py.File(tmp_path / "shd_train.h5", "a") as f:
            del f["spikes/units"]
            d = f.create_dataset("spikes/units", (1,), dtype=h5py.vlen_dtype(np.dtype("float32")))
            d[0] = np.array([3.0, 4.0], np.float32)
    else:
        write_shd_events(tmp_path / "shd_train.h5", good, [1])
        with h5py.File(tmp_path / "shd_train.h5", "a") as f:
            replace = {"float labels": ("labels", np.array([1.7])), "string labels": ("labels", np.array([b"a"])),
                       "2-D labels": ("labels", np.array([[1]])), "scalar units": ("spikes/units", np.uint16(3)),
                       "times group": ("spikes/times", None)}[case]
            key, value = replace
            del f[key]
            if value is None:
                f.create_group(key).create_dataset("x", data=[1])
            else:
                f.create_dataset(key, data=value)
    with pytest.raises(ValueError, match=match):
        nm.load_shd(tmp_path, "train", n_time_bins=4)


def test_negative_shd_times_and_non_finite_npy_times_are_refused(tmp_path):
    write_shd_events(tmp_path / "shd_train.h5", [([-0.1, 0.2], [3, 4])], [1])
    with pytest.raises(ValueError, match=r"sample 0 has negative spike times \(min -0\.09"):
        nm.load_shd(tmp_path, "train", n_time_bins=4)[0]
    d = tmp_path / "ibmGestureTrain" / "user01_led"
    d.mkdir(parents=True)
    np.save(d / "0.npy", np.array([[1, 2, 1, 0.0], [5, 6, 0, np.nan], [5, 6, 0, 2.0]]))  # x, y, p, t[ms]
    ds = nm.load_dvs_gesture(tmp_path, n_time_bins=4)
    with pytest.raises(ValueError, match=r"0\.npy: 1 events have NaN or infinite values \(in t\)"):
        ds[0]


def test_default_data_root_outside_a_checkout_is_a_user_folder_and_errors_say_how_to_choose(tmp_path, monkeypatch):
    monkeypatch.delenv("SNNLAB_SHARED_DATA", raising=False)
    checkout = Path(roots.__file__).resolve().parents[3]
    if (checkout.parent / "shared" / "data").is_dir():  # a source checkout with its data folder beside it
        assert nm.shared_data_root() == checkout.parent / "shared" / "data"
    # an installed package: .../site-packages/snnlab/data/neuromorphic/roots.py (with a shared/data beside lib/)
    installed = (tmp_path / "venv" / "lib" / "python3.11" / "site-packages" / "snnlab" / "data" / "neuromorphic"
                 / "roots.py")
    (tmp_path / "venv" / "lib" / "python3.11" / "shared" / "data").mkdir(parents=True)
    monkeypatch.setattr(roots, "__file__", str(installed))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert nm.shared_data_root() == tmp_path / "xdg" / "snnlab"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert nm.shared_data_root() == tmp_path / "home" / ".local" / "share" / "snnlab"
    assert "site-packages" not in str(nm.shared_data_root())
    monkeypatch.setenv("SNNLAB_SHARED_DATA", str(tmp_path / "mine"))
    assert nm.shared_data_root() == tmp_path / "mine"
    with pytest.raises(FileNotFoundError, match=r"data_root=.*--data-root.*SNNLAB_SHARED_DATA"):
        nm.load_shd(tmp_path / "empty", "train")
    with pytest.raises(FileNotFoundError, match=r"--data-root.*SNNLAB_SHARED_DATA"):
        nm.load_nmnist(tmp_path / "empty", "test")


# ----------------------------------------------------------------------------------------------
# the np.bincount binning gives tonic's ToFrame frames, bit for bit
# ----------------------------------------------------------------------------------------------
# (W, H, P) of N-MNIST, POKER-DVS, DVS Gesture, SHD/SSC, SHD/SSC with channel_bin 5 / 7, and a small odd camera
_SENSORS = [(34, 34, 2), (35, 35, 2), (128, 128, 2), (700, 1, 1), (140, 1, 1), (100, 1, 1), (5, 3, 1)]
_TIMES = ["sorted", "edges", "same", "negative", "unsorted", "one"]


def _random_events(rng: np.random.Generator, sensor: tuple[int, int, int], times: str) -> np.ndarray:
    w, h, p = sensor
    n = 1 if times == "one" else int(rng.integers(1, 400))
    ev = np.zeros(n, nm.AUDIO_DTYPE if h == 1 and p == 1 else nm.XYTP_DTYPE)
    ev["x"] = rng.integers(0, w, n)
    if "y" in ev.dtype.names:
        ev["y"] = rng.integers(0, h, n)
    ev["p"] = rng.integers(0, p, n)
    span = int(rng.choice([1, 10, 1000, 300_000]))
    t = rng.integers(0, span, n)
    if times == "edges":  # most events exactly on the edges of windows of 1, 7 or 1000 us
        t = rng.integers(0, 8, n) * int(rng.choice([1, 7, 1000]))
    elif times == "same":
        t[:] = int(rng.integers(0, 10**6))
    elif times == "negative":
        t = t - span // 2 - int(rng.integers(0, 3))
    ev["t"] = t if times == "unsorted" else np.sort(t)
    return ev


def _tonic_frames(ev: np.ndarray, sensor, **kw) -> np.ndarray:
    return tonic.transforms.ToFrame(sensor_size=sensor, **kw)(ev.copy())  # (tonic zeroes p in place for P = 1)


def _time_window_frames(events: np.ndarray, sensor_size: tuple[int, int, int], time_window: float, start_time=None,
                        end_time=None, overlap: float = 0.0, include_incomplete: bool = False) -> np.ndarray:
    """The library's counts (_frame_counts) in the format of tonic's ToFrame(time_window=...): int16, which wraps
    past 32767 events in one cell as tonic's np.add.at does; float64 zeros [1, P, W, H] for no events."""
    if len(events) == 0:
        return np.zeros((1, sensor_size[2], sensor_size[0], sensor_size[1]))
    y = events["y"] if "y" in events.dtype.names else None
    return _frame_counts(events["t"], events["x"], y, events["p"], sensor_size, time_window, start_time, end_time,
                            overlap, include_incomplete).astype(np.int16)


def test_time_window_frames_are_tonics_toframe_bit_for_bit():
    """Property test over seeded random recordings: every sensor layout, times on window edges, all at one time,
    negative, unsorted, a single event; whole, non-integer and tiny windows; start/end as snnlab passes them (and
    none, and arbitrary ones); include_incomplete both ways; overlaps."""
    rng = np.random.default_rng(1234)
    checked = 0
    for case in range(900):
        sensor = _SENSORS[case % len(_SENSORS)]
        ev = _random_events(rng, sensor, _TIMES[(case // len(_SENSORS)) % len(_TIMES)])
        t = ev["t"]
        extent = max(int(t.max()) - int(t.min()), 1)
        window = float(rng.choice([extent / rng.integers(1, 40), extent / 3, 1000.5, 7, 1000, 1e6 / 300]))
        if extent / window > 300:  # keep tonic's frames small
            window = extent / 300
        kw = dict(time_window=window, include_incomplete=bool(rng.integers(0, 2)))
        how = case % 4
        if how == 1:  # snnlab's own call: n windows from a start, end half a window short of start + n windows
            start = float(t.min()) if rng.integers(0, 2) else 0.0
            n = int(rng.integers(1, 60))
            kw.update(start_time=start, end_time=start + (n - 0.5) * window, include_incomplete=True)
        elif how == 2:  # any start and end, the last window partial
            kw.update(start_time=float(t.min() - rng.integers(0, 50)), end_time=float(t.max() + rng.uniform(0, window)))
        elif how == 3:
            kw["overlap"] = float(rng.choice([0.0, window / 3, window / 2]))
        ours = _time_window_frames(ev, sensor, **kw)
        ref = _tonic_frames(ev, sensor, **kw)
        assert ours.dtype == ref.dtype == np.int16 and ours.shape == ref.shape, (case, kw)
        assert np.array_equal(ours, ref), (case, kw, ev)
        checked += int(ref.sum())
    assert checked > 10_000  # the cases do bin events
    empty = np.zeros(0, nm.XYTP_DTYPE)
    for sensor in ((34, 34, 2), (700, 1, 1)):
        ours, ref = _time_window_frames(empty, sensor, 1000), _tonic_frames(empty, sensor, time_window=1000)
        assert ours.dtype == ref.dtype and ours.shape == ref.shape and np.array_equal(ours, ref)


def test_time_window_frames_wrap_past_32767_events_in_a_cell_as_tonic_does():
    ev = np.zeros(40_000, nm.AUDIO_DTYPE)
    ev["x"] = 3
    for kw in (dict(time_window=10), dict(time_window=10, start_time=0.0, end_time=15.0, include_incomplete=True)):
        ours, ref = _time_window_frames(ev, (700, 1, 1), **kw), _tonic_frames(ev, (700, 1, 1), **kw)
        assert ours.dtype == ref.dtype and np.array_equal(ours, ref) and ref[0, 0, 3] == 40_000 - 2**16


def _reference_bin(ds: nm.EventFrameDataset, events: np.ndarray) -> torch.Tensor:
    """EventFrameDataset._bin as it was with tonic's ToFrame (before the np.bincount binning), after the reader."""
    events = events[np.argsort(events["t"], kind="stable")]  # (a copy) the dataset sorts a reader's events by time
    if ds.channel_bin != 1:
        events["x"] //= ds.channel_bin
    if ds.duration is not None and len(events):
        limit = float(ds.duration)
        if ds.time_window is not None:
            limit = min(limit, nm.whole_frames(ds.duration, ds.time_window) * float(ds.time_window))
        events = events[events["t"] < limit]
    start, width, n = ds._frames_of(events)
    if len(events) == 0:
        return torch.zeros((n,) + ds._frame_shape())
    to_frame = tonic.transforms.ToFrame(sensor_size=ds.sensor_size, time_window=width, start_time=start,
                                        end_time=start + (n - 0.5) * width, include_incomplete=True)
    frames = np.asarray(to_frame(events), dtype=np.float32)
    return torch.from_numpy(frames.reshape((frames.shape[0],) + ds._frame_shape()))


def _assert_same_frames(ds: nm.EventFrameDataset, events_of) -> int:
    import warnings

    total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # samples whose events all lie past duration
        for i in range(len(ds)):
            ours, ref = ds[i][0], _reference_bin(ds, events_of(i))
            assert ours.dtype == ref.dtype == torch.float32 and ours.shape == ref.shape, (i, ours.shape, ref.shape)
            assert torch.equal(ours, ref), i
            total += int(ref.sum())
    return total


_BINNINGS = [dict(n_time_bins=1), dict(n_time_bins=3), dict(n_time_bins=30), dict(n_time_bins=100),
             dict(n_time_bins=None, time_window=1000), dict(n_time_bins=None, time_window=1000.5),
             dict(n_time_bins=None, time_window=10_000), dict(n_time_bins=None, time_window=1e6 / 300),
             dict(n_time_bins=None, time_window=10_000, duration=1_000_000),
             dict(n_time_bins=None, time_window=1e6 / 300, duration=300_000),
             dict(n_time_bins=None, time_window=3_000, duration=3_500), dict(n_time_bins=20, duration=300_000)]


_DATASET_SENSORS = [((700, 1, 1), 1), ((700, 1, 1), 5), ((700, 1, 1), 7), ((700, 1, 1), 700), ((34, 34, 2), 1),
                    ((35, 35, 2), 1), ((128, 128, 2), 1)]  # (sensor, channel_bin)


def _fast(sensor, binning: int) -> bool:
    """All but thousands of 128x128 frames (windows under 10 ms: slow, and covered by the other sensors)."""
    window = _BINNINGS[binning].get("time_window")
    return not (sensor == (128, 128, 2) and window is not None and window < 10_000)


@pytest.mark.parametrize("sensor,channel_bin,binning", [(s, c, b) for s, c in _DATASET_SENSORS for b in range(len(_BINNINGS))
                                                        if _fast(s, b)])
def test_event_frame_dataset_gives_the_frames_tonic_gave(sensor, channel_bin, binning):
    kwargs = _BINNINGS[binning]
    rng = np.random.default_rng(binning * 100 + channel_bin + sensor[0])
    samples = []
    for times in _TIMES + ["sorted"] * 6:
        ev = _random_events(rng, sensor, times)
        if times in ("sorted", "edges") and rng.integers(0, 2):  # long recordings: 4k-12k events over up to 1.4 s
            k = int(rng.integers(4000, 12_000))
            ev = np.resize(ev, k)
            ev["x"] = rng.integers(0, sensor[0], k)
            ev["t"] = np.sort(rng.integers(0, int(rng.choice([300_000, 1_400_000])), k))
        if times == "negative":
            ev = ev[np.argsort(ev["t"], kind="stable")]  # as the .npy readers give them (SHD refuses t < 0)
        samples.append(ev)
    samples.append(np.zeros(0, samples[0].dtype))  # an empty recording
    ds = nm.EventFrameDataset("toy", list(range(len(samples))), [0] * len(samples), lambda i: samples[i], sensor,
                              channel_bin=channel_bin, **kwargs)
    assert _assert_same_frames(ds, samples.__getitem__) > 0


def test_event_frame_dataset_counts_past_tonics_int16_and_leaves_the_readers_array_alone():
    """tonic's ToFrame keeps int16 frames, whose cells wrap past 32767 events (40000 became -25536); the dataset
    counts them: the same frames as tonic's below that, the true count above."""
    ev = np.zeros(40_000, nm.AUDIO_DTYPE)
    ev["x"] = np.arange(40_000) % 2 + 10  # units 10 and 11: 20000 events each, 40000 in one channel_bin=5 channel
    before = ev.copy()
    ds = nm.EventFrameDataset("toy", [0], [0], lambda _: ev, (700, 1, 1), n_time_bins=1)
    assert _assert_same_frames(ds, lambda _: ev) != 0  # 20000 per cell: tonic's frames
    ds = nm.EventFrameDataset("toy", [0], [0], lambda _: ev, (700, 1, 1), n_time_bins=1, channel_bin=5)
    assert ds[0][0][0, 2] == 40_000 and ds[0][0].sum() == 40_000
    assert _time_window_frames_of_tonic(ev, 5)[0, 0, 2] == 40_000 - 2**16  # what tonic's int16 frame holds
    assert np.array_equal(ev, before)


def _time_window_frames_of_tonic(ev: np.ndarray, channel_bin: int) -> np.ndarray:
    from tonic.transforms import ToFrame

    binned = ev.copy()
    binned["x"] //= channel_bin
    return ToFrame(sensor_size=(700 // channel_bin, 1, 1), time_window=1000, include_incomplete=True)(binned)


@pytest.mark.skipif(not (_shared_nmnist() / "NMNIST").exists(), reason="shared N-MNIST subset not available")
@pytest.mark.parametrize("kwargs", [dict(n_time_bins=30), dict(n_time_bins=None, time_window=10_000),
                                    dict(n_time_bins=None, time_window=5_000, duration=300_000),
                                    dict(n_time_bins=10, duration=100_000), dict(n_time_bins=7, first_saccade_only=True)])
def test_real_nmnist_frames_are_the_frames_tonic_gave(kwargs):
    ds = nm.load_nmnist(_shared_nmnist(), "test", **kwargs)
    assert _assert_same_frames(ds, lambda i: ds.reader(ds.items[i])) > 100 * 1000


@pytest.mark.skipif(not (_shared_nmnist() / "NMNIST").exists(), reason="shared N-MNIST subset not available")
def test_real_nmnist_cached_frames_are_the_uncached_frames(tmp_path):
    plain = nm.load_nmnist(_shared_nmnist(), "test", n_time_bins=30)
    cached = nm.load_nmnist(_shared_nmnist(), "test", n_time_bins=30, cache_dir=tmp_path)
    for _ in range(2):  # computed (and stored), then read back from the files
        for i in range(len(plain)):
            a, b = plain[i][0], cached[i][0]
            assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape and torch.equal(a, b)
    files = list(tmp_path.rglob("*.pt"))
    assert len(files) == 100 and sum(f.stat().st_size for f in files) < 100 * 30 * 2 * 34 * 34 * 4 / 3.5  # uint8


def test_cached_frames_with_counts_past_255_and_32767_are_the_uncached_frames(tmp_path):
    """uint8 (N-MNIST-like), uint16 (a pixel with 300, or 40000, events in a frame)."""
    rng = np.random.default_rng(0)
    cam = np.zeros(900, nm.XYTP_DTYPE)
    cam["x"], cam["y"], cam["p"] = rng.integers(0, 34, 900), rng.integers(0, 34, 900), rng.integers(0, 2, 900)
    cam["t"] = np.sort(rng.integers(0, 300_000, 900))
    hot = cam.copy()
    hot["x"][:300], hot["y"][:300], hot["p"][:300], hot["t"][:300] = 5, 6, 1, 0  # 300 events, one pixel and time
    wrapped = np.zeros(40_000, nm.XYTP_DTYPE)
    for events, top in ((cam, 255), (hot, 300), (wrapped, 40_000)):
        ds = [nm.EventFrameDataset("toy", [0], [0], lambda _: events, (34, 34, 2), n_time_bins=5, cache_dir=c,
                                   cache_params={"events": top})
              for c in (None, tmp_path / f"c{top}")][::-1]
        assert ds[0].cache is not None and ds[1].cache is None
        for _ in range(2):
            a, b = ds[0][0][0], ds[1][0][0]
            assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)
        if top != 255:
            assert b.max() == top


def test_cache_keys_name_readers_as_before_the_package_split():
    """A reader's name enters the cache key when cache_params is absent: the modules of the package count as the old
    single module, so caches written before the split stay valid."""
    from snnlab.data.neuromorphic.frames import _qualified_name
    from snnlab.data.neuromorphic.heidelberg import _H5Reader
    from snnlab.data.neuromorphic.nmnist import _NMNISTReader

    assert _qualified_name(_H5Reader.__new__(_H5Reader)) == "snnlab.data.neuromorphic._H5Reader"
    assert _qualified_name(_NMNISTReader.__new__(_NMNISTReader)) == "snnlab.data.neuromorphic._NMNISTReader"
    assert _qualified_name(np.mean) == "numpy.mean"


def test_frames_cached_before_a_custom_readers_events_were_sorted_are_not_reused(tmp_path):
    """The dataset now sorts a reader's events by time (before, events out of order were lost or misplaced); a cache
    written then, under the same key, would keep serving those frames. A reader of one's own gets a new key; this
    package's readers, which always sorted, keep theirs (their caches stay valid)."""
    import json

    from snnlab.data.cache import DiskCache
    from snnlab.data.neuromorphic.heidelberg import _H5Reader

    events = np.zeros(4, nm.AUDIO_DTYPE)
    events["t"], events["x"] = [300, 0, 200, 100], [3, 0, 2, 1]  # one event per channel, out of time order
    ds = nm.EventFrameDataset("toy", [0], [0], lambda _: events, (4, 1, 1), n_time_bins=4, cache_dir=tmp_path,
                              cache_params={"recording": 1})
    params = json.loads((ds.cache.folder / "params.json").read_text())
    assert params.pop("events_sorted") is True
    DiskCache(tmp_path, "toy", params).get_or_compute(0, lambda: torch.full((4, 4), 7.0))  # the key before
    frames = ds[0][0]
    assert torch.equal(frames, torch.eye(4))  # binned anew, channel i in frame i
    builtin = nm.EventFrameDataset("toy", [0], [0], _H5Reader.__new__(_H5Reader), (4, 1, 1), n_time_bins=4,
                                   cache_dir=tmp_path, cache_params={"recording": 1})
    assert "events_sorted" not in json.loads((builtin.cache.folder / "params.json").read_text())
