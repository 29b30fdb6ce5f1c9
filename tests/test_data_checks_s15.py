"""Input checks of the data layer: reader dtypes of EventFrameDataset, SpikeTimesDataset's arguments, encoder
flags / gains / complex inputs, spikes_to_events and EncodeCollate's errors."""
import numpy as np
import pytest
import torch

from snnlab.data import DirectEncoder, EncodeCollate, SpikeTimesDataset, time_major_collate
from snnlab.data.audio import Cochlea, spikes_to_events
from snnlab.data.encoders import LatencyEncoder, direct_encode, latency_encode, rate_encode
from snnlab.data.neuromorphic import AUDIO_DTYPE, XYTP_DTYPE, EventFrameDataset


def _events(t_dtype=np.int64, x_dtype=np.int64):
    dt = np.dtype([("t", t_dtype), ("x", x_dtype), ("p", np.int64)])
    ev = np.zeros(3, dtype=dt)
    ev["t"] = [0, 10, 20]
    ev["x"] = [0, 1, 2]
    return ev


# ---- EventFrameDataset: the reader's field dtypes -------------------------------------------------------------
def test_float_times_are_a_type_error_naming_the_field_and_microseconds():
    ev = _events(t_dtype=np.float64)
    ev["t"] = [0.0, 0.25, 0.5]  # seconds
    ds = EventFrameDataset("toy", [0], [0], lambda i: ev, (4, 1, 1), n_time_bins=4)
    with pytest.raises(TypeError, match=r"toy: .*field 't' has dtype float64, expected int64.*microseconds"):
        ds[0]


def test_float_coordinates_are_a_type_error():
    ds = EventFrameDataset("toy", [0], [0], lambda i: _events(x_dtype=np.float32), (4, 1, 1), n_time_bins=1)
    with pytest.raises(TypeError, match=r"field 'x' has dtype float32"):
        ds[0]


def test_float_y_of_a_2d_sensor_is_a_type_error():
    dt = np.dtype([("x", np.int64), ("y", np.float64), ("t", np.int64), ("p", np.int64)])
    ev = np.zeros(2, dtype=dt)
    ds = EventFrameDataset("toy", [0], [0], lambda i: ev, (2, 2, 1), n_time_bins=1)
    with pytest.raises(TypeError, match=r"field 'y' has dtype float64"):
        ds[0]


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.int64])
def test_integer_fields_of_any_width_still_bin(dtype):
    ds = EventFrameDataset("toy", [0], [0], lambda i: _events(t_dtype=dtype, x_dtype=dtype), (4, 1, 1), n_time_bins=1)
    assert ds[0][0].tolist() == [[1.0, 1.0, 1.0, 0.0]]


def test_stock_dtypes_still_bin():
    ev = np.zeros(2, dtype=XYTP_DTYPE)
    ev["t"] = [0, 5]
    assert EventFrameDataset("toy", [0], [0], lambda i: ev, (2, 2, 1), n_time_bins=2)[0][0].sum() == 2
    ev = np.zeros(2, dtype=AUDIO_DTYPE)
    ev["t"] = [0, 5]
    # the documented n_time_bins rule: windows of ceil((5 - 0 + 1) / 4) = 2 us from the first event
    assert EventFrameDataset("toy", [0], [0], lambda i: ev, (1, 1, 1), n_time_bins=4)[0][0][:, 0].tolist() == \
        [1.0, 0.0, 1.0, 0.0]


# ---- SpikeTimesDataset ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [2.7, 0, -1, True])
def test_spike_times_dataset_refuses_bad_num_steps_at_construction(steps):
    with pytest.raises(ValueError, match="SpikeTimesDataset: num_steps must be an int >= 1"):
        SpikeTimesDataset(torch.tensor([[0, 1]]), torch.tensor([0]), steps)


def test_spike_times_dataset_refuses_fractional_labels():
    with pytest.raises(ValueError, match="SpikeTimesDataset: label 0 is 1.7, not a whole number"):
        SpikeTimesDataset(torch.tensor([[0, 1]]), torch.tensor([1.7]), 3)


def test_spike_times_dataset_takes_list_and_numpy_labels():
    for labels in ([2], np.array([2]), torch.tensor([2.0])):
        ds = SpikeTimesDataset(torch.tensor([[0, 1]]), labels, 3)
        assert ds.labels.dtype == torch.long and ds[0][1].item() == 2


def test_spike_times_dataset_refuses_1d_times_and_bad_label_shapes():
    with pytest.raises(ValueError, match=r"SpikeTimesDataset: times must be \[N, F\].*shape \(2,\)"):
        SpikeTimesDataset(torch.tensor([0, 1]), torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match=r"SpikeTimesDataset: labels must be one class index per sample"):
        SpikeTimesDataset(torch.tensor([[0, 1]]), torch.tensor([[0]]), 3)
    with pytest.raises(TypeError, match="SpikeTimesDataset: labels must be integer"):
        SpikeTimesDataset(torch.tensor([[0, 1]]), torch.tensor([True]), 3)


def test_spike_times_dataset_length_mismatch_names_the_class():
    with pytest.raises(ValueError, match="SpikeTimesDataset: times has 1 samples but labels has 2"):
        SpikeTimesDataset(torch.tensor([[0, 1]]), torch.tensor([0, 1]), 3)


# ---- encoders ------------------------------------------------------------------------------------------------
def test_flags_refuse_truthy_strings():
    with pytest.raises(TypeError, match="LatencyEncoder: linear must be True or False"):
        LatencyEncoder(5, linear="no")
    with pytest.raises(TypeError, match="latency_encode: linear must be True or False"):
        latency_encode(torch.tensor([[0.5]]), 5, linear="no")
    with pytest.raises(TypeError, match="Cochlea: binary must be True or False"):
        Cochlea(binary="no")
    assert LatencyEncoder(5, linear=0).linear is False and Cochlea(binary=np.bool_(False)).binary is False


def test_latency_threshold_zero_keeps_zero_silent():  # the documented (unchanged) rule
    s = latency_encode(torch.tensor([[0.0, 0.5]]), 5, threshold=0.0)
    assert s[:, 0, 0].sum() == 0 and s[:, 0, 1].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]


def test_rate_encode_gain_past_float32():
    x = torch.tensor([[0.0, 1e-30, 0.5]])
    s = rate_encode(x, 3, gain=1e39)
    assert s[:, 0].tolist() == [[0.0, 1.0, 1.0]] * 3 and s.dtype == torch.float32
    # normal gains: the same draws as before
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
    expected = torch.bernoulli((x * 2.5).clamp(0, 1).unsqueeze(0).expand(7, 4, 6), generator=g2)
    assert torch.equal(rate_encode(x, 7, gain=2.5, generator=g1), expected)


@pytest.mark.parametrize("enc", [lambda x: direct_encode(x, 2), lambda x: rate_encode(x, 2),
                                 lambda x: latency_encode(x, 2)])
def test_encoders_refuse_complex_input(enc):
    with pytest.raises(TypeError, match="must be real, got dtype torch.complex64"):
        enc(torch.tensor([[0.5 + 0.5j]]))


# ---- spikes_to_events ----------------------------------------------------------------------------------------
def test_spikes_to_events_checks():
    with pytest.raises(ValueError, match="spikes_to_events: spikes has 65537 channels"):
        spikes_to_events(torch.ones(1, 65537), 0.1)
    for dt in (-0.5, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="spikes_to_events: dt must be a finite number > 0"):
            spikes_to_events(torch.ones(2, 1), dt)
    with pytest.raises(ValueError, match=r"spikes_to_events: spikes must be a raster \[T, C\]"):
        spikes_to_events(torch.ones(2, 2, 2), 0.1)
    with pytest.raises(ValueError, match="spikes_to_events: spikes contains NaN"):
        spikes_to_events(torch.tensor([[float("nan")]]), 0.1)
    times, units = spikes_to_events(torch.zeros(1, 65536).index_fill_(1, torch.tensor([65535]), 1), 0.1)
    assert units.tolist() == [65535]


# ---- EncodeCollate / time_major_collate ----------------------------------------------------------------------
def test_encode_collate_names_itself_and_the_sample():
    collate = EncodeCollate(DirectEncoder(3))
    with pytest.raises(ValueError, match=r"EncodeCollate: sample 1 has shape \(3,\) but sample 0 has \(2,\)"):
        collate([(torch.rand(2), 0), (torch.rand(3), 1)])
    with pytest.raises(ValueError, match=r"EncodeCollate: sample 0 has a label of shape \(2,\)"):
        collate([(torch.rand(2), torch.tensor([1, 2]))])
    with pytest.raises(ValueError, match=r"time_major_collate: sample 1 has a label of shape \(2,\)"):
        time_major_collate([(torch.ones(2, 1), 0), (torch.ones(2, 1), [1, 2])])
    x, y = collate([(torch.rand(2), torch.tensor(1)), (torch.rand(2), torch.tensor([0]))])
    assert x.shape == (3, 2, 2) and y.tolist() == [1, 0]
