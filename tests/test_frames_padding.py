"""Frame counts without binning (``max_sample_steps`` of ``time_window`` alone reads each recording's first and last
event time, or a cached entry's header) and the experiment config's ``data_kwargs`` ``pad_to``: the Trainer's event
batches padded to one length, so a sample's input does not depend on the batch it lands in."""
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, Subset

from snnlab.data import max_sample_steps
from snnlab.data.cache import write_entry
from snnlab.data.neuromorphic import AUDIO_DTYPE, MAX_FRAMES, EventFrameDataset
from snnlab.data.neuromorphic import frames as fr
from snnlab.training import ConfigError, ExperimentConfig, build_data
from snnlab.training.config import PAD_TO_LONGEST, data_options, event_pad_to, frames_per_sample


def _ev(*times: int) -> np.ndarray:
    return np.array([(t, i % 4, 0) for i, t in enumerate(times)], dtype=AUDIO_DTYPE)


# recordings whose frame counts sit on every side of a window edge (time_window=100): empty, one event, a span of
# exactly 100 us (t_last - t_first = 99: one frame) and of 101 us (two), an event exactly at a frame's start
# (t_first + 100: two frames), not starting at 0, and the longest
RECORDINGS = [_ev(), _ev(0), _ev(730), _ev(0, 99), _ev(0, 100), _ev(5, 105), _ev(5, 104), _ev(50, 60, 1049),
              _ev(0, 200, 300), _ev(12, 1211), _ev(0, 0, 0)]


def _dataset(recordings=RECORDINGS, reader=None, **kwargs) -> EventFrameDataset:
    kwargs = kwargs or {"time_window": 100}
    items = list(range(len(recordings)))
    return EventFrameDataset("toy", items, [0] * len(items), reader or (lambda i: recordings[i]), (4, 1, 1), **kwargs)


def _binned(ds, indices=None) -> list[int]:
    """Frames of each sample, by binning it (what max_sample_steps gave before it counted without binning)."""
    return [int(ds[i][0].shape[0]) for i in (range(len(ds)) if indices is None else indices)]


def _no_binning(monkeypatch):
    def refuse(self, index):
        raise AssertionError(f"sample {index} was binned")

    monkeypatch.setattr(EventFrameDataset, "_bin", refuse)


# ----------------------------------------------------------------------------------------- counting without binning
@pytest.mark.parametrize("time_window", [100, 99.5, 1_000_000 / 300, 1, 1211])
def test_the_counts_are_the_binned_frame_counts_at_every_window_edge(time_window, monkeypatch):
    binned = _binned(_dataset(time_window=time_window))
    if time_window == 100:
        assert binned == [1, 1, 1, 1, 2, 2, 1, 10, 4, 12, 1]
    ds = _dataset(time_window=time_window)
    _no_binning(monkeypatch)
    assert [ds._steps_of(i) for i in range(len(ds))] == binned
    assert max_sample_steps(ds) == max(binned)
    for i in range(len(ds)):  # each one-sample Subset finds that sample's count
        assert max_sample_steps(Subset(ds, [i])) == binned[i]


def test_random_recordings_count_as_they_bin():
    rng = np.random.default_rng(0)
    recordings = []
    for _ in range(40):
        n = int(rng.integers(0, 4))
        recordings.append(_ev(*np.sort(rng.integers(0, 3_000, n)).tolist()))
    for tw in (1, 7, 100, 333.3, 1000):
        ds = _dataset(recordings, time_window=tw)
        assert [ds._steps_of(i) for i in range(len(ds))] == _binned(ds), tw


def test_subset_and_concat_wrappers_count_the_samples_they_hold(monkeypatch):
    ds = _dataset()
    binned = _binned(ds)  # [1, 1, 1, 1, 2, 2, 1, 10, 4, 12, 1]
    fixed = _dataset(n_time_bins=6)
    _no_binning(monkeypatch)
    assert max_sample_steps(Subset(ds, [0, 1, 2])) == 1
    assert max_sample_steps(Subset(ds, [-2, 3])) == 12  # negative indices count from the end, as ds[-2]
    assert max_sample_steps(Subset(Subset(ds, [7, 8, 9]), [0, 1])) == 10
    assert max_sample_steps(ConcatDataset([Subset(ds, [4, 5]), fixed])) == 6  # a fixed part counts without reading
    assert max_sample_steps(ConcatDataset([fixed, Subset(ds, [9])])) == 12
    both = ConcatDataset([Subset(ds, [0, 8]), ds])
    assert max_sample_steps(Subset(both, [1, 2])) == 4  # [8] of the first part, [0] of the second
    assert max_sample_steps(Subset(both, [-1, 0])) == binned[-1]
    # an empty part, and samples that are not an EventFrameDataset's, count as before
    plain = [(torch.ones(13, 4), 0)]
    assert max_sample_steps(ConcatDataset([Subset(ds, []), ds, plain])) == 13
    with pytest.raises(ValueError, match="max_sample_steps: the dataset is empty"):
        max_sample_steps(Subset(ds, []))


def test_counting_reads_events_but_neither_bins_nor_fills_the_cache(tmp_path, monkeypatch):
    ds = _dataset(time_window=100, cache_dir=tmp_path, cache_params={"v": 1})
    _no_binning(monkeypatch)
    assert max_sample_steps(ds) == 12
    assert not any(ds.cache.folder.glob("*.pt"))


def test_cached_entries_are_counted_from_their_header(tmp_path):
    reads: list[int] = []

    def reader(i):
        reads.append(i)
        return RECORDINGS[i]

    first = _dataset(reader=reader, time_window=100, cache_dir=tmp_path, cache_params={"v": 1})
    for i in (7, 9):
        first[i]  # binned and cached
    write_entry(first.cache.path(7), torch.zeros(40, 4))  # (a stand-in whose length tells it was read from the cache)
    torch.save(torch.zeros(50, 4), first.cache.path(8))  # an earlier version's entry: read the recording instead
    first.cache.path(3).write_bytes(b"snnlab-cache 2 float32\nnot an npy file")  # corrupt: read the recording
    reads.clear()
    ds = _dataset(reader=reader, time_window=100, cache_dir=tmp_path, cache_params={"v": 1})
    assert [ds._steps_of(i) for i in range(len(ds))] == [1, 1, 1, 1, 2, 2, 1, 40, 4, 12, 1]
    assert sorted(reads) == [i for i in range(len(RECORDINGS)) if i not in (7, 9)]
    assert ds[7][0].shape[0] == 40  # what the dataset gives for it, so what binning-based counting gave too
    assert max_sample_steps(ds) == 40


def test_counting_raises_what_binning_raises():
    off_sensor = _dataset([_ev(0, 10), np.array([(0, 9, 0)], dtype=AUDIO_DTYPE)], time_window=100)
    with pytest.raises(ValueError, match="toy: sample 1 .*unit=9, outside the sensor's 0..3"):
        max_sample_steps(off_sensor)
    too_long = _dataset([_ev(0, MAX_FRAMES * 10)], time_window=1)
    with pytest.raises(ValueError, match=r"gives \d+ frames per sample .* more than the 1000000 frames"):
        max_sample_steps(too_long)

    def broken(i):
        raise OSError("disk gone")

    with pytest.raises(OSError, match=r"toy: sample 0 \(0\): cannot read it: OSError: disk gone"):
        max_sample_steps(_dataset(reader=broken, time_window=100))
    wrong = _dataset([np.zeros(3)], time_window=100)
    with pytest.raises(TypeError, match="not a structured numpy array"):
        max_sample_steps(wrong)


def test_one_frame_count_rule_for_fixed_and_varying_frames():
    for kwargs, n in (({"n_time_bins": 7}, 7), ({"time_window": 100, "duration": 950}, 9),
                      ({"time_window": 1_000_000 / 300, "duration": 1_000_000}, 300), ({"time_window": 100}, None)):
        ds = _dataset(**kwargs)
        assert fr._fixed_frames(ds) == ds._n_frames() == n
        for i in range(len(ds)):  # the binning's count is the rule's
            events = RECORDINGS[i]
            if ds.duration is not None:
                events = events[events["t"] < ds.duration]
            assert ds._frames_of(events)[2] == ds[i][0].shape[0] == fr._frame_count(
                ds.n_time_bins, ds.time_window, ds.duration, events["t"])


# ----------------------------------------------------------------------------------------- config: pad_to
def test_pad_to_is_an_option_of_the_event_datasets_only():
    for name in ("nmnist", "shd", "ssc", "dvs_gesture"):
        assert "pad_to" in data_options(ExperimentConfig(dataset=name))
    for name in ("digits", "randman", "delay_task", "fsdd"):
        assert "pad_to" not in data_options(ExperimentConfig(dataset=name))
    with pytest.raises(ConfigError, match=r"data_kwargs \['pad_to'\] are not options of dataset='randman'"):
        ExperimentConfig.from_dict({"dataset": "randman", "data_kwargs": {"pad_to": 30}})


@pytest.mark.parametrize("value", [0, -3, 2.5, 100.0, True, "max", "Longest", [100], MAX_FRAMES + 1])
def test_bad_pad_to_values_are_refused_before_training(value):
    with pytest.raises(ConfigError, match=r"data_kwargs 'pad_to' must be None .*, an int in 1..1000000 .* or "
                                          r"'longest' .*, got " + repr(value).replace("[", r"\[").replace("]", r"\]")):
        ExperimentConfig.from_dict({"dataset": "shd", "data_kwargs": {"time_window": 10_000, "pad_to": value}})


def test_pad_to_below_the_frames_the_settings_fix_is_refused():
    with pytest.raises(ConfigError, match=r"data_kwargs 'pad_to'=40 is shorter than the 50 frames every sample has "
                                          r"\(num_steps=50: .*\); pass pad_to >= 50"):
        ExperimentConfig.from_dict({"dataset": "shd", "num_steps": 50, "data_kwargs": {"pad_to": 40}})
    with pytest.raises(ConfigError, match=r"'pad_to'=99 is shorter than the 100 frames .*\(duration / time_window\)"):
        ExperimentConfig.from_dict({"dataset": "shd", "data_kwargs": {"time_window": 10_000, "duration": 1_000_000,
                                                                      "pad_to": 99}})
    ok = ExperimentConfig.from_dict({"dataset": "shd", "num_steps": 50, "data_kwargs": {"pad_to": 60}})
    assert frames_per_sample(ok) == (60, True)


def test_frames_per_sample_reports_the_padded_count():
    def cfg(**kw):
        return ExperimentConfig.from_dict({"dataset": "shd", "data_kwargs": {"time_window": 10_000, **kw}})

    assert frames_per_sample(cfg()) == (140, False)
    assert frames_per_sample(cfg(pad_to=PAD_TO_LONGEST)) == (140, False)  # the longest recording's, estimated
    assert frames_per_sample(cfg(pad_to=150)) == (150, True)
    assert frames_per_sample(cfg(pad_to=None)) == (140, False)
    assert event_pad_to(cfg(pad_to=150)) == 150 and event_pad_to(cfg()) is None
    assert cfg(pad_to=150).label().split()[-2:] == ["dt10ms", "pad150"]
    assert cfg(pad_to="longest").label().split()[-2:] == ["dt10ms", "padlongest"]
    with pytest.raises(ConfigError, match=r"max_delay=25 exceeds data_kwargs pad_to=20"):
        ExperimentConfig.from_dict({"dataset": "shd", "delays": True, "max_delay": 25,
                                    "data_kwargs": {"time_window": 10_000, "pad_to": 20}})


# ----------------------------------------------------------------------------------------- build_data with pad_to
# SHD-layout files: train recordings of 3, 1, 7, 5 and 2 frames of 10 ms, test ones of 4 and 9; the label is the
# sample's id, so a batch's labels tell which sample is where
_TRAIN = [(0.0, 0.025), (0.004,), (0.001, 0.0655), (0.010, 0.030, 0.0595), (0.1, 0.1105)]
_TEST = [(0.0, 0.0355), (0.02, 0.05, 0.1085)]


@pytest.fixture
def shd_root(tmp_path):
    pytest.importorskip("h5py")
    from shd_files import write_shd_recordings

    return write_shd_recordings(tmp_path, {"train": _TRAIN, "test": _TEST}, unit_step=3)


def _cfg(root, batch_size, **data_kwargs) -> ExperimentConfig:
    return ExperimentConfig.from_dict({"dataset": "shd", "data_root": str(root), "batch_size": batch_size, "seed": 3,
                                       "data_kwargs": {"time_window": 10_000, **data_kwargs}})


def _by_sample(loader) -> tuple[dict[int, torch.Tensor], set[int]]:
    """``({label: x [T, F]}, {T of each batch})`` over one pass of ``loader``."""
    out, lengths = {}, set()
    for x, y in loader:
        lengths.add(x.shape[0])
        for b, label in enumerate(y.tolist()):
            out[label] = x[:, b]
    return out, lengths


def test_with_pad_to_a_sample_gets_the_same_input_in_any_batch(shd_root):
    from snnlab.data.neuromorphic import load_shd

    frames = {int(ds[i][1]): ds[i][0].shape[0] for split in ("train", "test")
              for ds in [load_shd(shd_root, split, time_window=10_000)] for i in range(len(ds))}
    assert frames == {0: 3, 1: 1, 2: 7, 3: 5, 4: 2, 10: 4, 11: 9}
    plain = [_by_sample(build_data(_cfg(shd_root, bs))[0]) for bs in (1, 2)]
    assert plain[0][1] != plain[1][1]  # without pad_to the length follows the batch: sample 1 alone has 1 step
    for pad_to, steps in ((12, 12), (PAD_TO_LONGEST, 9)):
        runs = []
        for bs in (1, 2, 5):
            train, test, n_in, _ = build_data(_cfg(shd_root, bs, pad_to=pad_to))
            assert n_in == 700
            for loader in (train, test):
                assert loader.collate_fn.collate.n_steps == steps
            a, a_len = _by_sample(train)
            b, b_len = _by_sample(train)  # another epoch: other batches (shuffled)
            t, t_len = _by_sample(test)
            assert a_len == b_len == t_len == {steps}
            assert all(torch.equal(a[k], b[k]) for k in a)
            runs.append({**a, **t})
        for run in runs[1:]:
            assert run.keys() == runs[0].keys() == frames.keys()
            assert all(torch.equal(run[k], runs[0][k]) for k in run)
        for k, n in frames.items():  # each sample's frames, then zeros
            assert runs[0][k][n:].abs().sum() == 0 and runs[0][k][n - 1].sum() > 0


def test_pad_to_longest_is_max_sample_steps_of_train_and_test(shd_root):
    from snnlab.data.neuromorphic import load_shd

    train, test, _, _ = build_data(_cfg(shd_root, 2, pad_to="longest"))
    tr, te = (load_shd(shd_root, split, time_window=10_000) for split in ("train", "test"))
    assert max_sample_steps(tr) == 7 and max_sample_steps(te) == 9
    assert train.collate_fn.collate.n_steps == test.collate_fn.collate.n_steps == 9
    # the loaders' collate survives pickling (num_workers > 0)
    collate = pickle.loads(pickle.dumps(train.collate_fn))
    x, _ = collate([tr[0], tr[1]])
    assert x.shape == (9, 2, 700) and x.dtype == torch.float32


def test_a_sample_longer_than_pad_to_is_a_clear_error(shd_root):
    with pytest.raises(ValueError, match=r"build_data: data_kwargs 'pad_to'=6 is shorter than the longest sample "
                                         r"of dataset 'shd': 9 frames \(in the test set.*pad_to >= 9"):
        build_data(_cfg(shd_root, 7, pad_to=6))
    with pytest.raises(ValueError, match=r"data_kwargs 'pad_to'=3 is shorter than the 5 frames"):
        build_data(ExperimentConfig(dataset="shd", data_root=str(shd_root), num_steps=5, data_kwargs={"pad_to": 3}))
    fixed = build_data(ExperimentConfig(dataset="shd", data_root=str(shd_root), num_steps=5,
                                        data_kwargs={"pad_to": 8}))[0]
    assert {x.shape[0] for x, _ in fixed} == {8}
