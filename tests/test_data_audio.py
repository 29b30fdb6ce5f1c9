import math
import wave

import numpy as np
import pytest
import torch

from snnlab.data.audio import (
    Cochlea, audio_to_spikes, erb_space, fsdd_root, gammatone_filterbank, load_fsdd, read_wav, spikes_to_events,
)

SR = 8000


def _tone(f, seconds=0.5, amp=0.5):
    t = torch.arange(int(seconds * SR)) / SR
    return amp * torch.sin(2 * math.pi * f * t)


def test_filterbank_peaks_at_centre():
    W = gammatone_filterbank(40, SR, 512)
    fc = erb_space(50, 0.95 * SR / 2, 40)
    freqs = np.linspace(0, SR / 2, 257)
    peak = freqs[W.argmax(1).numpy()]
    assert np.all(np.abs(peak - fc) < 2 * (SR / 512) + 1)


def test_tone_activates_matching_channels():
    coch = Cochlea(n_channels=64, sample_rate=SR, num_steps=50, duration=0.5)
    s = coch(torch.stack([_tone(1000), _tone(3000)]))  # [T, 2, C]
    counts = s.sum(0)
    near1k = np.abs(coch.center_frequencies - 1000) < 100
    near3k = np.abs(coch.center_frequencies - 3000) < 250
    assert counts[0, near1k].sum() > 3 * counts[1, near1k].sum()
    assert counts[1, near3k].sum() > 3 * counts[0, near3k].sum()
    assert abs(coch.center_frequencies[int(counts[0].argmax())] - 1000) < 100


def test_shapes_encoders_and_silence():
    for enc in ("integrate", "delta"):
        for comp in ("log", "power"):
            c = Cochlea(n_channels=700, num_steps=40, duration=0.25, encoding=enc, compression=comp)
            s = c(_tone(500, 0.25)[None])
            assert s.shape == (40, 1, 700) and set(s.unique().tolist()) <= {0.0, 1.0} and s.sum() > 0
    assert Cochlea(num_steps=10, duration=0.1)(torch.zeros(1, 800)).sum() == 0
    # a shorter recording is zero-padded: no spikes after it ends
    s = Cochlea(n_channels=16, num_steps=100, duration=1.0)(_tone(800, 0.3)[None])
    assert s[40:].sum() == 0 and s[:30].sum() > 0


@pytest.mark.parametrize("num_steps,duration", [(100, 1.0), (40, 0.25)])
def test_envelope_frames_are_torch_stfts_centred_frames_where_the_steps_divide_the_recording(num_steps, duration):
    c = Cochlea(n_channels=32, num_steps=num_steps, duration=duration, compression="power")
    w = torch.randn(2, c.n_samples, generator=torch.Generator().manual_seed(0))
    spec = torch.stft(w, c.n_fft, hop_length=c.n_samples // num_steps, win_length=c.win, window=c.window,
                      center=True, return_complex=True)
    bands = torch.einsum("cf,bft->tbc", c.weights, spec.abs().square())[:num_steps]
    expected = (bands / bands.amax(dim=(0, 2), keepdim=True)).pow(0.3)
    torch.testing.assert_close(c.envelope(w), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("num_steps", [300, 700, 3000])
def test_steps_cover_the_whole_recording_when_they_do_not_divide_it(num_steps):
    w = torch.zeros(SR)
    w[int(0.9 * SR):] = _tone(1000, 0.1)  # sound only in the last 100 ms
    s = Cochlea(n_channels=16, num_steps=num_steps, duration=1.0)(w[None])[:, 0]
    active = s.sum(1).nonzero().flatten() / num_steps  # step -> fraction of the recording
    assert len(active) > 0 and float(active.min()) > 0.85 and float(active.max()) > 0.98


def _write_wav(path, x):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(SR), w.writeframes((x * 32767).astype("<i2").tobytes())


def test_fsdd_limit_takes_every_digit_in_turn(tmp_path):
    (tmp_path / "recordings").mkdir()
    for digit in range(10):
        for index in range(5, 9):
            _write_wav(tmp_path / "recordings" / f"{digit}_spk_{index}.wav", _tone(300 + 100 * digit, 0.05).numpy())
    ds = load_fsdd(tmp_path, "train", n_channels=8, num_steps=5, duration=0.05, limit=15)
    assert ds.labels.tolist() == list(range(10)) + list(range(5))
    assert ds.files[10].endswith("0_spk_6.wav")
    assert len(load_fsdd(tmp_path, "train", n_channels=8, num_steps=5, duration=0.05, limit=100)) == 40
    with pytest.raises(ValueError, match="limit"):
        load_fsdd(tmp_path, "train", limit=0)


def test_errors():
    with pytest.raises(ValueError, match="encoding"):
        Cochlea(encoding="phase")
    with pytest.raises(ValueError, match="NaN"):
        Cochlea()(torch.full((1, 100), float("nan")))
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_fsdd("/nonexistent/fsdd")


def test_events_and_wav_roundtrip(tmp_path):
    x = (_tone(1000, 0.2).numpy() * 32767).astype("<i2")
    with wave.open(str(tmp_path / "3_test_7.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(SR), w.writeframes(x.tobytes())
    y, sr = read_wav(tmp_path / "3_test_7.wav")
    assert sr == SR and np.allclose(y, _tone(1000, 0.2).numpy(), atol=1e-4)
    s = audio_to_spikes(y, sr, n_channels=700, num_steps=20)
    times, units = spikes_to_events(s, 0.01)
    assert len(times) == int(s.sum()) and units.dtype == np.uint16 and units.max() < 700
    assert np.all(np.diff(times) >= 0)
    # a tiny FSDD-layout folder: index 7 -> train split
    (tmp_path / "recordings").mkdir()
    (tmp_path / "3_test_7.wav").rename(tmp_path / "recordings" / "3_test_7.wav")
    ds = load_fsdd(tmp_path, "train", n_channels=32, num_steps=20, duration=0.2, cache_dir=tmp_path / "c")
    assert len(ds) == 1 and int(ds[0][1]) == 3 and ds.speakers == ["test"]
    assert torch.equal(ds[0][0], load_fsdd(tmp_path, "train", n_channels=32, num_steps=20, duration=0.2,
                                           cache_dir=tmp_path / "c")[0][0])
    with pytest.raises(FileNotFoundError):
        load_fsdd(tmp_path, "test")


@pytest.mark.skipif(not (fsdd_root() / "recordings").is_dir(), reason="FSDD recordings not available")
def test_real_fsdd():
    ds = load_fsdd(split="test", n_channels=64, num_steps=50, limit=40)
    assert len(ds) == 40
    x, y = ds[0]
    assert x.shape == (50, 64) and x.sum() > 50
    for f, label in zip(ds.files, ds.labels.tolist()):
        name = f.split("/")[-1]
        assert int(name.split("_")[0]) == label and int(name.split("_")[2].split(".")[0]) < 5
    # speech energy sits in the lower channels more than in the top ones
    counts = ds.spikes.float().sum(dim=(0, 1))
    assert counts[:32].sum() > counts[32:].sum() * 0.5


def test_delta_threshold_given_by_the_user_is_kept():
    assert Cochlea(encoding="delta").threshold == 0.1 and Cochlea().threshold == 1.0
    assert Cochlea(encoding="delta", threshold=1.0).threshold == 1.0


def _fsdd_folder(rec, digits=(0, 1)):
    rec.mkdir(parents=True)
    for digit in digits:
        _write_wav(rec / f"{digit}_spk_0.wav", _tone(400 + 200 * digit, 0.05).numpy())


def test_fsdd_cache_follows_changed_recordings(tmp_path):
    _fsdd_folder(tmp_path / "recordings")
    kw = dict(split="test", n_channels=8, num_steps=5, duration=0.05, cache_dir=tmp_path / "cache")
    first = load_fsdd(tmp_path, **kw)
    assert first[0][0].sum() > 0
    _write_wav(first.files[0], np.zeros(SR // 10))  # the recording is replaced by silence (same path)
    again = load_fsdd(tmp_path, **kw)
    assert float(again[0][0].sum()) == 0.0  # converted again, not the stale cached spikes
    assert torch.equal(again[1][0], first[1][0])


@pytest.mark.parametrize("sub", ["fsdd", "free-spoken-digit-dataset"])
def test_fsdd_root_may_be_a_data_folder_holding_fsdd(tmp_path, sub):
    _fsdd_folder(tmp_path / sub / "recordings")
    ds = load_fsdd(tmp_path, "test", n_channels=8, num_steps=5, duration=0.05)
    assert ds.labels.tolist() == [0, 1] and f"/{sub}/recordings/" in ds.files[0]
    with pytest.raises(FileNotFoundError, match=r"also looked in .*fsdd[/\\]recordings"):
        load_fsdd(tmp_path / "nothing")


def test_missing_fsdd_says_how_to_choose_the_data_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--data-root.*SNNLAB_SHARED_DATA"):
        load_fsdd(tmp_path / "nothing")
