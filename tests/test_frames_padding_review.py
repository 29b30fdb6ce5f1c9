"""Review of the frame counting without binning and of ``data_kwargs`` ``pad_to``: wrappers that change their
samples are loaded, not looked through; empty parts add no frames; the config's messages and labels say what sets
the steps."""
import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, Subset

from snnlab.data import max_sample_steps
from snnlab.data.neuromorphic import AUDIO_DTYPE, EventFrameDataset, make_neuromorphic_loader
from snnlab.training import ConfigError, ExperimentConfig
from snnlab.training.config import frames_per_sample


def _ev(*times: int) -> np.ndarray:
    return np.array([(t, i % 4, 0) for i, t in enumerate(times)], dtype=AUDIO_DTYPE)


RECORDINGS = [_ev(0, 1000), _ev(0, 100), _ev()]  # 11, 2 and 1 frames of 100 us


def _dataset(cls=EventFrameDataset, **kwargs) -> EventFrameDataset:
    kwargs = kwargs or {"time_window": 100}
    return cls("toy", [0, 1, 2], [0, 1, 2], lambda i: RECORDINGS[i], (4, 1, 1), **kwargs)


class _CropSubset(Subset):
    """A Subset that keeps the first 3 steps of each sample."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x[:3], y

    def __getitems__(self, indices):
        return [self[i] for i in indices]


class _CropFrames(EventFrameDataset):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x[:4], y


@pytest.mark.parametrize("kwargs", [{"time_window": 100}, {"n_time_bins": 9}])
def test_a_wrapper_that_changes_its_samples_is_counted_by_loading_them(kwargs):
    ds = _dataset(**kwargs)
    cropped = _CropSubset(ds, [0, 1])
    assert max_sample_steps(cropped) == max(cropped[i][0].shape[0] for i in range(2)) == 3
    assert max_sample_steps(ConcatDataset([cropped])) == 3
    own = _dataset(_CropFrames, **kwargs)
    assert max_sample_steps(own) == max(own[i][0].shape[0] for i in range(3)) == 4
    assert max_sample_steps(Subset(own, [0])) == 4
    # and a loader padded to that length takes them (the settings' 9 frames are not what the samples have)
    x, _ = next(iter(make_neuromorphic_loader(cropped, batch_size=2, n_steps=3)))
    assert x.shape[0] == 3


def test_an_empty_part_of_a_concat_dataset_adds_no_frames():
    long_but_empty = Subset(_dataset(n_time_bins=50), [])
    short = _dataset(n_time_bins=6)
    both = ConcatDataset([long_but_empty, short])
    assert max_sample_steps(both) == max(both[i][0].shape[0] for i in range(len(both))) == 6
    mixed = ConcatDataset([long_but_empty, _dataset()])  # (time_window alone: counted sample by sample)
    assert max_sample_steps(mixed) == 11
    next(iter(make_neuromorphic_loader(both, batch_size=3, n_steps=6)))  # not refused for the empty part's 50


@pytest.mark.parametrize("pad_to", [0, 2_000_000, 10])
def test_a_bad_pad_to_is_not_reported_as_the_length_a_delay_exceeds(pad_to):
    with pytest.raises(ConfigError) as e:
        ExperimentConfig.from_dict({"dataset": "shd", "num_steps": 20, "delays": True, "max_delay": 25,
                                    "data_kwargs": {"pad_to": pad_to}})
    assert "'pad_to'" in str(e.value)
    assert "max_delay=25 exceeds num_steps=20" in str(e.value)
    assert "exceeds data_kwargs pad_to" not in str(e.value)


def test_a_short_pad_to_names_what_sets_the_frames():
    def refused(**kw):
        with pytest.raises(ConfigError) as e:
            ExperimentConfig.from_dict({"dataset": "shd", "num_steps": 50, "data_kwargs": kw})
        return str(e.value)

    assert "(num_steps=50: without a time_window" in refused(pad_to=40)
    assert "(data_kwargs n_time_bins)" in refused(n_time_bins=60, pad_to=40)
    assert "(duration / time_window)" in refused(time_window=10_000, duration=1_000_000, pad_to=40)
    assert frames_per_sample(ExperimentConfig(dataset="shd", num_steps=50, data_kwargs={"pad_to": 50})) == (50, True)


def test_labels_tell_pad_to_and_the_frame_length_apart():
    def label(**kw):
        return ExperimentConfig.from_dict({"dataset": "shd", "data_kwargs": kw}).label()

    labels = [label(time_window=5_000, pad_to=300), label(time_window=10_000, pad_to=300),
              label(time_window=10_000), label(time_window=10_000, pad_to="longest")]
    assert len(set(labels)) == 4, labels
    assert labels[1].endswith(" dt10ms pad300")
    # where every sample has the same frames: 'longest' pads nothing, an int pads past them
    assert label(n_time_bins=50, pad_to="longest") == label(n_time_bins=50)
    assert label(n_time_bins=50, pad_to=60).endswith(" T50 pad60")
    # configurations without pad_to keep their labels (run lists, stores)
    assert label(time_window=10_000).endswith(" dt10ms")
    assert ExperimentConfig(dataset="shd", num_steps=50).label().endswith(" T50")


def test_counts_match_the_binned_frames_through_tensor_and_numpy_subset_indices():
    ds = _dataset()
    binned = [int(ds[i][0].shape[0]) for i in range(len(ds))]
    assert max_sample_steps(Subset(ds, torch.tensor([1, 2]))) == max(binned[1:]) == 2
    assert max_sample_steps(Subset(ds, np.array([1, -3]))) == 11
    assert max_sample_steps(Subset(ConcatDataset([ds, ds]), torch.tensor([-1, 4]))) == 2
