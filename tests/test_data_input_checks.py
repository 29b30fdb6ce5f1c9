"""Bad input to the data layer gets a clear error naming the function (and the file), not a silent misreading or
a raw error from deep inside NumPy / torch / the ``wave`` module; valid input behaves as before."""
import hashlib
import math
import struct
import warnings
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")
pytest.importorskip("tonic")

from shd_files import write_shd_events  # noqa: E402

from snnlab.data import neuromorphic as nm  # noqa: E402
from snnlab.data.neuromorphic.frames import _sorted_by_time  # noqa: E402
from snnlab.data.audio import Cochlea, audio_to_spikes, load_fsdd, read_wav  # noqa: E402
from snnlab.data.collate import EncodeCollate, time_major_collate  # noqa: E402
from snnlab.data.encoders import DirectEncoder, LatencyEncoder, RateEncoder  # noqa: E402
from snnlab.data.synthetic import make_delay_task, make_randman  # noqa: E402


# ---------------------------------------------------------------------------------------------- 1: N-MNIST order
def _nmnist_root(root: Path, t: list[int]) -> Path:
    d = root / "Train" / "3"
    d.mkdir(parents=True)
    nm.write_nmnist_bin(d / "1.bin", np.array([1, 2, 3]), np.array([4, 5, 6]), np.array(t), np.array([1, 0, 1]))
    return root


@pytest.mark.parametrize("kwargs", [{"n_time_bins": 5}, {"time_window": 100}, {"time_window": 100, "duration": 1000}])
def test_nmnist_events_out_of_time_order_give_the_frames_of_the_sorted_events(tmp_path, kwargs):
    unsorted = nm.load_nmnist(_nmnist_root(tmp_path / "u", [500, 100, 300]), **kwargs)[0][0]
    # the same events written in time order: x=2 at 100 us, x=3 at 300 us, x=1 at 500 us
    d = tmp_path / "s" / "Train" / "3"
    d.mkdir(parents=True)
    nm.write_nmnist_bin(d / "1.bin", np.array([2, 3, 1]), np.array([5, 6, 4]), np.array([100, 300, 500]),
                        np.array([0, 1, 1]))
    ordered = nm.load_nmnist(tmp_path / "s", **kwargs)[0][0]
    assert unsorted.sum() == 3 and torch.equal(unsorted, ordered)
    frames = {(int(i), int(x)) for i, _, _, x in torch.nonzero(unsorted)}
    width = 81 if "n_time_bins" in kwargs else 100  # n_time_bins=5: ceil((500 - 100 + 1) / 5) = 81 us
    start = 100 if "duration" not in kwargs else 0  # frames from the first event, or from 0 with a duration
    assert frames == {((t - start) // width, x) for t, x in ((100, 2), (300, 3), (500, 1))}


def test_sorted_events_are_returned_without_a_copy():
    ev = np.array([(0, 0, 1, 0), (1, 0, 1, 1), (2, 0, 4, 0)], dtype=nm.XYTP_DTYPE)
    assert _sorted_by_time(ev) is ev
    assert _sorted_by_time(ev[::-1])["x"].tolist() == [1, 0, 2]  # stable: equal times keep their order


# ---------------------------------------------------------------------------------------------- 2: delay task docs
def test_delay_task_docstring_states_the_edge_cue_of_b_times_and_the_data_is_unchanged():
    doc = make_delay_task.__doc__
    assert "any readout of *when* a single" not in doc  # the old, wrong claim
    assert "(max(delays) - min(delays)) / (n_steps - max(delays))" in doc and "60 %" in doc
    ds = make_delay_task(n_samples=20_000)  # defaults: n_steps=100, delays=(10, 25)
    b, y = ds.times[:, 1].numpy(), ds.labels.numpy()
    lo, hi = 10 + 100 - 25, 25  # class 0's B times are [10, 85), class 1's [25, 100)
    only_one = (b < hi) | (b >= lo)  # a B time inside one class's range only
    assert abs(only_one.mean() - 15 / 75) < 0.01
    assert (y[b < hi] == 0).all() and (y[b >= lo] == 1).all()
    bayes = (only_one.sum() + 0.5 * (~only_one).sum()) / len(b)  # the best a reader of B's time alone does
    assert abs(bayes - (1 + 15 / 75) / 2) < 0.01
    # the generated data is the data docs/results.md was produced with
    d = make_delay_task()
    digest = hashlib.sha256(d.times.numpy().tobytes() + d.labels.numpy().tobytes()).hexdigest()
    assert digest == "7a4e3b71fa46ad64537ebfb73d3175c6de0e17d6726a2a1efb0cb166fc53f715"


# ---------------------------------------------------------------------------------------------- 3: bad WAV files
def _wav(path: Path, data: bytes, width: int = 2, channels: int = 1, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data)
    return path


def _float_wav(path: Path) -> Path:
    data = np.zeros(800, "<f4").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 3, 1, 8000, 32000, 4, 32)  # format 3: IEEE float
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + fmt + b"data"
                     + struct.pack("<I", len(data)) + data)
    return path


def _put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


_BAD_WAVS = {
    "not a wav": lambda p: _put(p, b"not a wav at all"),
    "empty": lambda p: _put(p, b""),
    "24-bit": lambda p: _wav(p, b"\x00\x00\x00" * 100, width=3),
    "float": _float_wav,
    "truncated header": lambda p: _put(p, _float_wav(p).read_bytes()[:30]),
    "odd-byte data": lambda p: _put(p, _wav(p, b"\x01\x00" * 500).read_bytes()[:1001]),
    "stereo, half a frame": lambda p: _put(p, _wav(p, b"\x01\x00" * 500, channels=2).read_bytes()[:1002]),
}


@pytest.mark.parametrize("case", sorted(_BAD_WAVS))
def test_bad_wav_files_raise_a_value_error_naming_the_file(tmp_path, case):
    rec = tmp_path / "recordings"
    rec.mkdir()
    path = _BAD_WAVS[case](rec / "3_a_7.wav")
    with pytest.raises(ValueError, match=r"read_wav: .*3_a_7\.wav.*(8, 16 or 32-bit|8, 16 or 32-bit PCM)"):
        read_wav(path)
    _wav(rec / "0_a_5.wav", (np.arange(4000) % 100 * 100).astype("<i2").tobytes())
    with pytest.raises(ValueError, match=r"3_a_7\.wav"):  # through load_fsdd's conversion too
        load_fsdd(tmp_path, "train", n_channels=8, num_steps=10)


def test_good_wav_files_read_as_before(tmp_path):
    samples = (np.arange(-2000, 2000) * 8).astype("<i2")
    x, sr = read_wav(_wav(tmp_path / "a.wav", samples.tobytes()))
    assert sr == 8000 and x.dtype == np.float32 and np.array_equal(x, samples.astype(np.float32) / 32768.0)
    x2, _ = read_wav(_wav(tmp_path / "b.wav", np.repeat(samples, 2).tobytes(), channels=2))
    assert np.array_equal(x2, x)
    with pytest.raises(FileNotFoundError):
        read_wav(tmp_path / "missing.wav")


# ---------------------------------------------------------------------------------------------- 4: Cochlea
@pytest.mark.parametrize("kwargs,match", [
    ({"num_steps": 0}, "num_steps must be an int >= 1"),
    ({"num_steps": 2.5}, r"num_steps must be an int >= 1, got 2\.5"),
    ({"n_channels": 2.5}, r"n_channels must be an int >= 1, got 2\.5"),
    ({"n_channels": True}, "n_channels must be an int"),
    ({"gain": -1.0}, "gain must be a finite number >= 0"),
    ({"gain": float("nan")}, "gain must be a finite number >= 0"),
    ({"duration": 0.01}, r"duration=0\.01 s is 80 samples .* needs more than 128"),
])
def test_cochlea_refuses_bad_settings_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=f"Cochlea: {match}"):
        Cochlea(**{"n_channels": 8, "num_steps": 10, "duration": 0.1, **kwargs})


def test_short_recordings_give_a_clear_error_or_pad_to_a_longer_duration():
    with pytest.raises(ValueError, match="lengthen duration"):
        audio_to_spikes(np.random.default_rng(0).normal(size=100), 8000, n_channels=8, num_steps=5)
    s = audio_to_spikes(np.random.default_rng(0).normal(size=100), 8000, n_channels=8, num_steps=5, duration=0.1)
    assert s.shape == (5, 8)
    # the shortest duration that works (129 samples > 128 = n_fft // 2), and numpy ints for the sizes
    assert Cochlea(n_channels=np.int64(8), num_steps=np.int32(3), duration=129 / 8000)(torch.randn(1, 129)).shape \
        == (3, 1, 8)
    assert Cochlea(n_channels=8, num_steps=10, duration=0.1, gain=0.0)(torch.randn(1, 800)).sum() == 0


# ---------------------------------------------------------------------------------------------- 5: EventFrameDataset
_EV = np.array([(0, 1, 0), (500, 2, 0)], dtype=nm.AUDIO_DTYPE)


def _reader_a(i):
    return _EV


def _reader_b(i):
    return _EV[:1]


def test_labels_must_match_the_items():
    with pytest.raises(ValueError, match=r"toy: 2 items but labels of shape \(1,\)"):
        nm.EventFrameDataset("toy", [0, 1], [0], _reader_a, (4, 1, 1), n_time_bins=2)
    with pytest.raises(ValueError, match="one label per item"):
        nm.EventFrameDataset("toy", [0], [[0]], _reader_a, (4, 1, 1), n_time_bins=2)


@pytest.mark.parametrize("events,sensor,got", [
    (np.zeros((3, 3)), (4, 1, 1), r"a plain array of dtype float64 and shape \(3, 3\)"),
    ([(0, 1, 0)], (4, 1, 1), "a list"),
    (np.zeros(2, nm.AUDIO_DTYPE), (4, 4, 2), r"a structured array with fields \['t', 'x', 'p'\]"),
])
def test_a_reader_returning_no_event_fields_is_a_type_error_naming_them(events, sensor, got):
    ds = nm.EventFrameDataset("toy", [7], [0], lambda i: events, sensor, n_time_bins=2)
    fields = "t, x, y, p" if sensor[1] > 1 else "t, x, p"
    with pytest.raises(TypeError, match=f"toy: sample 0 \\(7\\): the reader returned {got}, not a structured numpy "
                                        f"array with fields {fields}"):
        ds[0]


def test_cache_without_cache_params_warns_and_tells_named_readers_apart(tmp_path):
    with pytest.warns(UserWarning, match="cache_dir without cache_params"):
        a = nm.EventFrameDataset("toy", [0], [0], _reader_a, (4, 1, 1), n_time_bins=2, cache_dir=tmp_path)
    with pytest.warns(UserWarning, match="stale"):
        b = nm.EventFrameDataset("toy", [0], [0], _reader_b, (4, 1, 1), n_time_bins=2, cache_dir=tmp_path)
    assert a[0][0].sum() == 2 and b[0][0].sum() == 1  # not b's cache hit on a's frames
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c = nm.EventFrameDataset("toy", [0], [0], _reader_b, (4, 1, 1), n_time_bins=2, cache_dir=tmp_path,
                                 cache_params={"files": "x"})
    assert c[0][0].sum() == 1


# ---------------------------------------------------------------------------------------------- 6: SHD overflow
def test_shd_times_past_int64_microseconds_are_refused_naming_file_and_sample(tmp_path):
    write_shd_events(tmp_path / "shd_train.h5", [([0.1], [3]), ([0.1, 1e13], [3, 4])], [0, 1], time_dtype=np.float64)
    ds = nm.load_shd(tmp_path, "train", n_time_bins=4)
    assert ds[0][0].sum() == 1
    with pytest.raises(ValueError, match=r"shd_train\.h5: sample 1 has spike times up to 1e\+13 s, past the int64"):
        ds[1]


# ---------------------------------------------------------------------------------------------- 7: .npy reader
def _dvs(root: Path, events: list) -> nm.EventFrameDataset:
    d = root / "ibmGestureTrain" / "user01_led"
    d.mkdir(parents=True)
    np.save(d / "4.npy", np.array(events, dtype=np.float64))  # x, y, p, t[ms]
    return nm.load_dvs_gesture(root, n_time_bins=2)


@pytest.mark.parametrize("events,match", [
    ([[5.7, 2, 1, 0.0], [5, 6, 0, 2.0]], r"event 0 has x=.*5\.7.*not a whole pixel"),
    ([[5, 2, 1, 0.0], [-0.5, 6, 0, 2.0]], r"event 1 has x=.*-0\.5"),
    ([[5, 2.25, 1, 0.0], [5, 6, 0, 2.0]], r"event 0 has y=.*2\.25"),
    ([[5, 2, 2, 0.0], [5, 6, 0, 2.0]], r"polarities \[0\.0, 2\.0\] are neither all in \{0, 1\} nor all in \{-1, 1\}"),
    ([[5, 2, -1, 0.0], [5, 6, 0, 2.0]], r"polarities \[-1\.0, 0\.0\]"),
    ([[5, 2, 0.5, 0.0], [5, 6, 0, 2.0]], r"polarities \[0\.0, 0\.5\]"),
    ([[5, 2, 1, -3.0], [5, 6, 0, 2.0]], r"event 0 has a negative time t=.*-3\.0"),
])
def test_npy_events_that_a_cast_would_garble_are_refused_naming_the_file(tmp_path, events, match):
    with pytest.raises(ValueError, match=r"4\.npy.*" + match):
        _dvs(tmp_path, events)[0]


def test_npy_polarities_minus_one_one_read_as_zero_one(tmp_path):
    a = _dvs(tmp_path / "a", [[5, 2, -1, 0.0], [5, 6, 1, 2.0], [3, 3, -1, 2.5]])[0][0]
    b = _dvs(tmp_path / "b", [[5, 2, 0, 0.0], [5, 6, 1, 2.0], [3, 3, 0, 2.5]])[0][0]
    assert torch.equal(a, b) and a[:, 0].sum() == 2 and a[:, 1].sum() == 1


# ---------------------------------------------------------------------------------------------- 8: synthetic
@pytest.mark.parametrize("jitter", [float("nan"), -1.0, float("inf"), "1"])
def test_randman_jitter_must_be_a_finite_std_in_steps(jitter):
    with pytest.raises((ValueError, TypeError), match="make_randman: jitter must be a"):
        make_randman(n_classes=2, n_units=3, n_steps=5, samples_per_class=2, jitter=jitter)


def test_randman_jitter_above_one_step_is_valid():
    ds = make_randman(n_classes=2, n_units=3, n_steps=20, samples_per_class=50, jitter=2.5, seed=1)
    clean = make_randman(n_classes=2, n_units=3, n_steps=20, samples_per_class=50, seed=1)
    assert (ds.times >= 0).all() and (ds.times < 20).all() and not torch.equal(ds.times, clean.times)


@pytest.mark.parametrize("kwargs,match", [
    ({"delays": (5.7, 15)}, r"each of delays must be an int, got 5\.7"),
    ({"n_samples": 4.5}, r"n_samples must be an int, got 4\.5"),
    ({"n_steps": 40.5}, r"n_steps must be an int, got 40\.5"),
    ({"jitter": 1.5}, r"jitter must be an int, got 1\.5"),
    ({"n_distractors": float("nan")}, r"n_distractors must be an int, got nan"),
    ({"n_per_channel": True}, r"n_per_channel must be an int, got True"),
])
def test_delay_task_refuses_fractional_sizes(kwargs, match):
    with pytest.raises(ValueError, match=f"make_delay_task: {match}"):
        make_delay_task(**{"n_samples": 4, "n_steps": 40, **kwargs})


def test_delay_task_whole_floats_and_numpy_ints_give_the_same_data():
    ref = make_delay_task(n_samples=50, n_steps=50, delays=(5, 20, 30), jitter=2, n_distractors=1, seed=1)
    alt = make_delay_task(n_samples=np.int64(50), n_steps=50.0, delays=np.array([5.0, 20, 30]), jitter=np.int32(2),
                          n_distractors=1.0, seed=1)
    assert torch.equal(ref.times, alt.times) and torch.equal(ref.labels, alt.labels)


# ---------------------------------------------------------------------------------------------- 9: collate
def test_collate_promotes_the_dtype_over_every_sample():
    x, _ = time_major_collate([(torch.ones(2, 3, dtype=torch.uint8), 0), (torch.full((3, 3), 0.25), 1)])
    assert x.dtype == torch.float32 and x[:, 1].tolist() == [[0.25] * 3] * 3 and x[2, 0].tolist() == [0.0] * 3
    x, _ = time_major_collate([(torch.ones(2, 1, dtype=torch.int16), 0), (torch.full((1, 1), 300, dtype=torch.int64), 1)])
    assert x.dtype == torch.int64 and x[0, 1, 0] == 300
    same = time_major_collate([(torch.ones(2, 1, dtype=torch.float16), 0), (torch.ones(1, 1, dtype=torch.float16), 1)])
    assert same[0].dtype == torch.float16


def test_collate_refuses_mismatched_shapes_fractional_labels_and_empty_batches():
    with pytest.raises(ValueError, match=r"sample 1 has shape \(2, 4\) but sample 0 has \(2, 3\)"):
        time_major_collate([(torch.ones(2, 3), 0), (torch.ones(2, 4), 1)])
    with pytest.raises(ValueError, match=r"time_major_collate: sample 0 has label 2\.7, not a whole number"):
        time_major_collate([(torch.ones(2, 3), 2.7)])
    with pytest.raises(ValueError, match=r"sample 1 has label tensor\(0\.5000\)"):
        time_major_collate([(torch.ones(2, 3), 1), (torch.ones(2, 3), torch.tensor(0.5))])
    with pytest.raises(ValueError, match="time_major_collate: empty batch"):
        time_major_collate([])
    with pytest.raises(ValueError, match="EncodeCollate: sample 0 has label 1.5"):
        EncodeCollate(DirectEncoder(2))([(torch.ones(3), 1.5)])
    with pytest.raises(ValueError, match="EncodeCollate: empty batch"):
        EncodeCollate(DirectEncoder(2))([])


def test_collate_whole_number_labels_of_any_kind_still_work():
    batch = [(torch.ones(1, 2), 3), (torch.ones(1, 2), np.int64(4)), (torch.ones(1, 2), torch.tensor([5])),
             (torch.ones(1, 2), 6.0), (torch.ones(1, 2), torch.tensor(7.0)), (torch.ones(1, 2), np.float32(8))]
    assert time_major_collate(batch)[1].tolist() == [3, 4, 5, 6, 7, 8]


# ---------------------------------------------------------------------------------------------- 10: write_nmnist_bin
@pytest.mark.parametrize("x,y,t,p,match", [
    ([0], [0], [5], [2], r"polarities must be 0 or 1"),
    ([0], [0], [5], [-1], r"polarities must be 0 or 1"),
    ([0, 1], [0], [5], [0], r"one value per event, got lengths 2, 1, 1 and 1"),
    ([5.7], [0], [5], [0], r"x must hold whole numbers"),
    ([0], [0], [2.5], [0], r"t must hold whole numbers"),
    ([256], [0], [5], [0], r"x must be in \[0, 255\]"),
    ([0], [240], [5], [0], r"y in \[0, 239\]"),
    ([0], [0], [2**23], [0], r"\[0, 2\*\*23\)"),
    ([[0]], [[0]], [[5]], [[0]], r"x must be a 1-D array"),
])
def test_write_nmnist_bin_refuses_what_the_format_cannot_hold(tmp_path, x, y, t, p, match):
    with pytest.raises(ValueError, match=f"write_nmnist_bin: .*{match}"):
        nm.write_nmnist_bin(tmp_path / "o.bin", x, y, t, p)
    assert not (tmp_path / "o.bin").exists()


def test_write_nmnist_bin_roundtrips_whole_floats_and_bool_polarities(tmp_path):
    import tonic

    nm.write_nmnist_bin(tmp_path / "o.bin", [3.0, 255], np.array([4, 239]), [1000, 2**23 - 1], np.array([True, False]))
    ev = tonic.io.read_mnist_file(str(tmp_path / "o.bin"), dtype=nm.XYTP_DTYPE)
    assert [ev[k].tolist() for k in "xytp"] == [[3, 255], [4, 239], [1000, 2**23 - 1], [1, 0]]


# ---------------------------------------------------------------------------------------------- 11: encoders
@pytest.mark.parametrize("make,match", [
    (lambda: RateEncoder(10, gain=-1), "RateEncoder: gain must be a finite number >= 0"),
    (lambda: RateEncoder(10, gain=float("nan")), "RateEncoder: gain must be a finite number >= 0"),
    (lambda: LatencyEncoder(10, threshold=5), r"LatencyEncoder: threshold must be in \[0, 1\), got 5"),
    (lambda: LatencyEncoder(10, threshold=float("nan")), r"LatencyEncoder: threshold must be in \[0, 1\)"),
    (lambda: LatencyEncoder(10, tau=0, linear=False), "LatencyEncoder: tau must be a finite number > 0"),
])
def test_encoder_classes_check_their_settings_at_construction(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_encoder_classes_keep_settings_the_functions_accept():
    assert RateEncoder(4, gain=2, seed=0).gain == 2 and repr(RateEncoder(4, gain=2)) == \
        "RateEncoder(num_steps=4, gain=2, seed=None)"
    assert LatencyEncoder(4, tau=0, threshold=0.0)(torch.ones(1, 2)).sum() == 2  # tau is unused by the linear code
    assert math.isclose(float(LatencyEncoder(5, tau=1.0, linear=False)(torch.full((1, 1), 0.5)).argmax()), 0.0)


# ---------------------------------------------------------------------------------------------- 12: Cochlea ranges
_TONE = torch.sin(2 * math.pi * 1000 * torch.arange(800) / 8000)[None]


@pytest.mark.parametrize("kwargs,match", [
    ({"dynamic_range_db": 0.0}, r"dynamic_range_db must be a finite number > 0, got 0\.0"),
    ({"dynamic_range_db": -10.0}, r"dynamic_range_db must be a finite number > 0, got -10\.0"),
    ({"dynamic_range_db": float("nan")}, r"dynamic_range_db must be a finite number > 0, got nan"),
    ({"dynamic_range_db": float("inf")}, r"dynamic_range_db must be a finite number > 0, got inf"),
    ({"threshold": float("nan")}, r"threshold must be a finite number > 0, got nan"),
    ({"threshold": float("inf"), "encoding": "delta"}, r"threshold must be a finite number > 0, got inf"),
    ({"threshold": 0.0}, r"threshold must be a finite number > 0, got 0\.0"),
    ({"duration": float("nan")}, r"duration must be a finite number > 0, got nan"),
    ({"duration": float("inf")}, r"duration must be a finite number > 0, got inf"),
    ({"sample_rate": 0}, r"sample_rate must be a finite number > 0, got 0"),
    ({"sample_rate": float("nan")}, r"sample_rate must be a finite number > 0, got nan"),
    ({"win_ms": 0.0}, r"win_ms must be a finite number > 0, got 0\.0"),
    ({"win_ms": float("nan")}, r"win_ms must be a finite number > 0, got nan"),
    ({"f_min": float("nan")}, r"f_min must be a finite number > 0, got nan"),
    ({"f_min": 0.0}, r"f_min must be a finite number > 0, got 0\.0"),
    ({"f_min": 5000.0}, r"f_min=5000\.0 Hz must be below the default f_max 0\.95 \* sample_rate / 2 = 3800 Hz"),
    ({"f_max": float("nan")}, r"f_max must be a finite frequency <= sample_rate / 2 = 4000 Hz .*got nan"),
    ({"f_max": 5000.0}, r"f_max must be a finite frequency <= sample_rate / 2 = 4000 Hz .*got 5000\.0"),
    ({"f_min": 300.0, "f_max": 200.0}, r"f_min=300\.0 Hz must be below f_max=200\.0 Hz"),
])
def test_cochlea_refuses_non_finite_and_out_of_range_settings_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=f"Cochlea: {match}"):
        Cochlea(**{"n_channels": 8, "num_steps": 10, "duration": 0.1, **kwargs})


def test_cochlea_edge_settings_that_stay_valid_give_finite_spikes():
    for kwargs in ({"dynamic_range_db": 1e-3}, {"f_max": 4000.0}, {"f_min": 1.0, "f_max": 2.0}, {"win_ms": 1e-3},
                   {"threshold": 5.0, "encoding": "delta"}, {"sample_rate": np.int64(8000), "gain": np.float32(0.5)}):
        s = Cochlea(**{"n_channels": 8, "num_steps": 10, "duration": 0.1, **kwargs})(_TONE)
        assert s.shape == (10, 1, 8) and bool(torch.isfinite(s).all()) and bool(((s == 0) | (s == 1)).all())


def test_load_fsdd_refuses_a_nan_setting_before_converting_or_caching(tmp_path):
    rec = tmp_path / "recordings"
    rec.mkdir()
    _wav(rec / "0_a_5.wav", (np.sin(np.arange(4000) * 0.8) * 8000).astype("<i2").tobytes())
    with pytest.raises(ValueError, match="Cochlea: dynamic_range_db must be a finite number > 0, got 0"):
        load_fsdd(tmp_path, "train", n_channels=8, num_steps=10, dynamic_range_db=0, cache_dir=tmp_path / "c")
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("*.pt"))
    assert load_fsdd(tmp_path, "train", n_channels=8, num_steps=10).spikes.sum() > 0


# ---------------------------------------------------------------------------------------------- 13: audio_to_spikes
def test_audio_to_spikes_refuses_a_stereo_array_saying_how_to_get_one_waveform():
    mono = np.sin(2 * np.pi * 2000 * np.arange(800) / 8000).astype(np.float32)
    with pytest.raises(ValueError, match=r"audio_to_spikes: expected one waveform of shape \[N\], got shape "
                                         r"\(800, 2\).*x\.mean\(axis=1\)"):
        audio_to_spikes(np.stack([mono, mono], axis=1), 8000, n_channels=8, num_steps=5)
    with pytest.raises(ValueError, match=r"got shape \(2, 800\)"):
        audio_to_spikes(torch.from_numpy(np.stack([mono, mono])), 8000, n_channels=8, num_steps=5)
    with pytest.raises(ValueError, match=r"got shape \(\)"):
        audio_to_spikes(np.float32(0.5), 8000, n_channels=8, num_steps=5)
    with pytest.raises(ValueError, match="audio_to_spikes: the waveform is empty"):
        audio_to_spikes(np.zeros(0), 8000, n_channels=8, num_steps=5)
    with pytest.raises(ValueError, match="audio_to_spikes: sample_rate must be a finite number > 0, got 0"):
        audio_to_spikes(mono, 0, n_channels=8, num_steps=5)
    # the advice works: averaging the channels gives the mono result
    a = audio_to_spikes(mono, 8000, n_channels=8, num_steps=5)
    assert torch.equal(audio_to_spikes(np.stack([mono, mono], axis=1).mean(axis=1), 8000, n_channels=8, num_steps=5), a)


def test_a_stereo_wav_file_through_read_wav_still_converts(tmp_path):
    left = (np.sin(np.arange(1600) * 0.9) * 9000).astype("<i2")
    inter = np.stack([left, left], axis=1).reshape(-1)
    x, sr = read_wav(_wav(tmp_path / "st.wav", inter.tobytes(), channels=2))
    mono, _ = read_wav(_wav(tmp_path / "mono.wav", left.tobytes()))
    assert x.ndim == 1 and torch.equal(audio_to_spikes(x, sr, n_channels=8, num_steps=5),
                                       audio_to_spikes(mono, sr, n_channels=8, num_steps=5))


# ---------------------------------------------------------------------------------------------- 14: unsorted readers
_UNSORTED = np.array([(300, 2, 0), (200, 0, 0), (100, 2, 0), (0, 0, 0), (100, 3, 0)], dtype=nm.AUDIO_DTYPE)


@pytest.mark.parametrize("kwargs", [{"n_time_bins": 3}, {"time_window": 100}, {"time_window": 100, "duration": 400}])
def test_a_reader_with_events_out_of_time_order_gives_the_frames_of_the_sorted_events(kwargs):
    ordered = np.sort(_UNSORTED, order="t", kind="stable")
    x = nm.EventFrameDataset("toy", [0], [0], lambda i: _UNSORTED, (4, 1, 1), **kwargs)[0][0]
    ref = nm.EventFrameDataset("toy", [0], [0], lambda i: ordered, (4, 1, 1), **kwargs)[0][0]
    assert x.sum() == 5 and torch.equal(x, ref)
    if "n_time_bins" not in kwargs:  # 100 us frames from t=0: x/y/p moved with their times
        assert x.tolist() == [[1, 0, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 1, 0]]
    if "duration" not in kwargs:
        assert nm.max_sample_steps(nm.EventFrameDataset("toy", [0], [0], lambda i: _UNSORTED, (4, 1, 1),
                                                        **kwargs)) == x.shape[0]


def test_sorted_reader_output_is_not_copied_and_the_reader_array_is_left_alone():
    from snnlab.data.neuromorphic.frames import _sorted_by_time as frames_sorted

    ordered = np.sort(_UNSORTED, order="t", kind="stable")
    assert frames_sorted(ordered) is ordered
    before = _UNSORTED.copy()
    out = frames_sorted(_UNSORTED)
    assert np.array_equal(_UNSORTED, before)  # sorted into a new array
    assert out["t"].tolist() == [0, 100, 100, 200, 300] and out["x"].tolist() == [0, 2, 3, 0, 2]  # stable


# ---------------------------------------------------------------------------------------------- 15: low-precision steps
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("linear", [True, False])
def test_latency_steps_of_half_precision_inputs_are_those_of_float32(dtype, linear):
    from snnlab.data.encoders import latency_encode

    x = torch.tensor([[0.0996, 0.2, 0.5, 0.013, 0.9]]).to(dtype)
    kw = {"linear": linear} if linear else {"linear": False, "tau": 2000.0}
    s, ref = latency_encode(x, 1000, **kw), latency_encode(x.float(), 1000, **kw)
    assert s.dtype == dtype and torch.equal(s.float(), ref)
    if linear and dtype == torch.bfloat16:
        assert s[:, 0].argmax(0).tolist()[:3] == [899, 799, 500]  # round((1 - x) * 999), x = 0.0996... in bf16


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rate_probabilities_of_half_precision_inputs_are_those_of_float32(dtype):
    from snnlab.data.encoders import rate_encode

    x = torch.rand(4, 64, generator=torch.Generator().manual_seed(0)).to(dtype)
    s = rate_encode(x, 50, gain=1 / 3, generator=torch.Generator().manual_seed(1))
    ref = rate_encode(x.float(), 50, gain=1 / 3, generator=torch.Generator().manual_seed(1))
    assert s.dtype == dtype and torch.equal(s.float(), ref)


# ---------------------------------------------------------------------------------------------- 16: spike times
def test_spike_times_dataset_applies_the_whole_step_rule_of_spike_times_to_dense():
    from snnlab.data.synthetic import SpikeTimesDataset

    with pytest.raises(ValueError, match="SpikeTimesDataset: times must be whole time steps, got fractional values"):
        SpikeTimesDataset(torch.tensor([[1.7, 0.0]]), torch.tensor([0]), num_steps=3)
    ds = SpikeTimesDataset(torch.tensor([[2.0, float("nan"), float("inf"), -1.0, 1e30]]), torch.tensor([0]), 3)
    assert ds.times.dtype == torch.int64 and ds.times.tolist() == [[2, -1, -1, -1, -1]]
    assert ds[0][0].sum(0).tolist() == [1, 0, 0, 0, 0] and ds[0][0][2, 0] == 1
    with pytest.raises(TypeError, match="SpikeTimesDataset: times must be integer time steps, got dtype torch.bool"):
        SpikeTimesDataset(torch.tensor([[True]]), torch.tensor([0]), 3)
    ints = torch.tensor([[0, 2], [1, -1]])
    assert SpikeTimesDataset(ints, torch.tensor([0, 1]), 3).times.tolist() == ints.tolist()


# ---------------------------------------------------------------------------------------------- 17: direct options
def test_direct_encoding_refuses_encoder_options_naming_them():
    from snnlab.data.embedded import make_encoder, make_loaders

    with pytest.raises(TypeError, match=r"make_encoder: the 'direct' encoding takes no encoder options, got gain=2\.0"):
        make_encoder("direct", 10, gain=2.0)
    with pytest.raises(TypeError, match=r"got linear=False, threshold=0\.5"):
        make_loaders("digits", encoding="direct", num_steps=4, linear=False, threshold=0.5)
    assert repr(make_encoder("direct", 10, seed=3)) == "DirectEncoder(num_steps=10)"
    with pytest.raises(TypeError, match="gain"):  # as the latency encoder does
        make_encoder("latency", 10, gain=2.0)


# ---------------------------------------------------------------------------------------------- 18: NumPy sizes
def test_randman_takes_numpy_int_sizes_like_the_delay_task():
    ref = make_randman(n_classes=3, n_units=5, n_steps=10, samples_per_class=2, seed=1)
    alt = make_randman(n_classes=np.int64(3), n_units=np.int32(5), n_steps=np.int64(10), dim_manifold=np.int8(1),
                       samples_per_class=np.int64(2), n_components=np.int64(4), seed=1)
    assert torch.equal(ref.times, alt.times) and torch.equal(ref.labels, alt.labels) and alt.num_steps == 10
    for bad in (True, 3.0, np.float64(3)):
        with pytest.raises(ValueError, match="make_randman: n_classes must be an int >= 1"):
            make_randman(n_classes=bad, n_units=5, n_steps=10, samples_per_class=2)
