"""``channel_bin`` of the SHD/SSC loaders: sum groups of adjacent cochlea channels (700 -> 140 with 5, as in the
DCLS learnable-delays paper, Hammouamri et al. 2023)."""
import math
import pickle

import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")
pytest.importorskip("tonic")

from shd_files import write_shd_layout as _write_shd_layout  # noqa: E402
from shd_files import write_unit_700_file  # noqa: E402

from snnlab.data import neuromorphic as nm  # noqa: E402

def _group_sum(x: torch.Tensor, k: int) -> torch.Tensor:
    """``[T, 700]`` frames summed over each group of ``k`` adjacent channels (last group zero-padded)."""
    n = math.ceil(x.shape[1] / k)
    padded = torch.zeros(x.shape[0], n * k, dtype=x.dtype)
    padded[:, : x.shape[1]] = x
    return padded.reshape(x.shape[0], n, k).sum(-1)


TIMINGS = [dict(n_time_bins=25), dict(n_time_bins=None, time_window=10_000, duration=1_000_000),
           dict(n_time_bins=None, time_window=50_000)]


@pytest.fixture
def shd(tmp_path):
    samples = _write_shd_layout(tmp_path / "shd_train.h5", 4, 20)
    _write_shd_layout(tmp_path / "shd_test.h5", 2, 20, seed=1)
    return tmp_path, samples


@pytest.mark.parametrize("timing", TIMINGS, ids=["n_time_bins", "time_window+duration", "time_window"])
@pytest.mark.parametrize("k,n_out", [(5, 140), (3, 234), (7, 100), (351, 2), (700, 1)])
def test_binned_frames_are_the_unbinned_frames_summed_over_channel_groups(shd, k, n_out, timing):
    root, samples = shd
    plain = nm.load_shd(root, "train", **timing)
    binned = nm.load_shd(root, "train", channel_bin=k, **timing)
    assert binned.sensor_size == (n_out, 1, 1) and binned.event_sensor_size == (700, 1, 1)
    assert binned.channel_bin == k and plain.sensor_size == (700, 1, 1)
    for i, (t, u) in enumerate(samples):
        x, y = binned[i]
        ref, y_ref = plain[i]
        assert x.shape == (ref.shape[0], n_out) and x.dtype == torch.float32 and int(y) == int(y_ref)
        assert torch.equal(x, _group_sum(ref, k))
        # independently of the unbinned path: every spike counted once, in channel unit // k
        assert torch.equal(x.sum(0), torch.bincount(torch.from_numpy(u.astype(np.int64) // k), minlength=n_out).float())
    if k == 3:  # the partial last bin holds unit 699 alone (two per sample in _EDGE_UNITS, plus random ones)
        assert torch.equal(binned[0][0][:, 233], plain[0][0][:, 699])


def test_ssc_and_the_loader_batches_are_binned(tmp_path):
    _write_shd_layout(tmp_path / "ssc_valid.h5", 3, 35)
    plain = nm.load_ssc(tmp_path, "valid", n_time_bins=10)
    ds = nm.load_ssc(tmp_path, "valid", n_time_bins=10, channel_bin=5)
    assert all(torch.equal(ds[i][0], _group_sum(plain[i][0], 5)) for i in range(3))
    xb, yb = next(iter(nm.make_neuromorphic_loader(ds, batch_size=3, shuffle=False)))
    assert xb.shape == (10, 3, 140) and yb.tolist() == [0, 1, 2]
    again = pickle.loads(pickle.dumps(ds))  # DataLoader workers get a pickled copy
    assert again.channel_bin == 5 and torch.equal(again[1][0], ds[1][0])


@pytest.mark.parametrize("timing", TIMINGS[:2], ids=["n_time_bins", "time_window+duration"])
def test_channel_bin_1_is_the_default_bit_for_bit(shd, timing):
    root, samples = shd
    default, one = nm.load_shd(root, "train", **timing), nm.load_shd(root, "train", channel_bin=1, **timing)
    assert one.sensor_size == default.sensor_size == (700, 1, 1)
    for i in range(len(samples)):
        assert torch.equal(default[i][0], one[i][0]) and default[i][0].shape[1] == 700


def test_cache_keeps_binned_and_unbinned_frames_apart(shd):
    root, _ = shd
    cache = root / "cache"
    plain = [nm.load_shd(root, "train", n_time_bins=20)[i][0] for i in range(4)]
    unbinned = nm.load_shd(root, "train", n_time_bins=20, cache_dir=cache)
    assert all(torch.equal(unbinned[i][0], plain[i]) for i in range(4))  # cached unbinned frames first
    binned = nm.load_shd(root, "train", n_time_bins=20, cache_dir=cache, channel_bin=5)
    assert all(torch.equal(binned[i][0], _group_sum(plain[i], 5)) for i in range(4))
    assert len({p.parent for p in cache.rglob("*.pt")}) == 2
    # served from the cache now: a second binned dataset never reads the file
    again = nm.load_shd(root, "train", n_time_bins=20, cache_dir=cache, channel_bin=5)
    again.reader = lambda _: (_ for _ in ()).throw(AssertionError("re-binned despite the cache"))
    assert all(torch.equal(again[i][0], _group_sum(plain[i], 5)) for i in range(4))
    # and the unbinned cache entries are still the unbinned frames
    assert all(torch.equal(nm.load_shd(root, "train", n_time_bins=20, cache_dir=cache)[i][0], plain[i])
               for i in range(4))
    # channel_bin=1 is the unbinned cache (entries written before channel_bin existed stay valid)
    one = nm.load_shd(root, "train", n_time_bins=20, cache_dir=cache, channel_bin=1)
    assert one.cache.folder == unbinned.cache.folder


def test_cache_keys_on_channel_bin_not_only_on_the_binned_size(shd):
    root, samples = shd
    cache = root / "cache"
    # 350 and 351 both give 2 channels, but unit 350 lands in channel 1 with the first and channel 0 with the second
    a = nm.load_shd(root, "train", n_time_bins=5, cache_dir=cache, channel_bin=350)
    b = nm.load_shd(root, "train", n_time_bins=5, cache_dir=cache, channel_bin=351)
    assert a.sensor_size == b.sensor_size == (2, 1, 1) and a.cache.folder != b.cache.folder
    u = samples[0][1].astype(np.int64)
    xa, xb = a[0][0], b[0][0]
    assert xa.sum(0).tolist() == [float((u < 350).sum()), float((u >= 350).sum())]
    assert xb.sum(0).tolist() == [float((u < 351).sum()), float((u >= 351).sum())]
    assert not torch.equal(xa, xb)


BAD = [(True, TypeError), (False, TypeError), (5.0, TypeError), ("5", TypeError), (None, TypeError),
       (0, ValueError), (-5, ValueError), (701, ValueError), (10_000, ValueError)]


@pytest.mark.parametrize("value,error", BAD, ids=[repr(v) for v, _ in BAD])
def test_bad_channel_bin_values_are_refused_naming_it_and_the_fix(shd, value, error):
    root, _ = shd
    with pytest.raises(error, match=r"channel_bin must be .*1\.\.700.*channel_bin=5: 700 -> 140"):
        nm.load_shd(root, "train", channel_bin=value)
    with pytest.raises(error, match=r"^ssc: channel_bin"):  # refused before the (missing) files are looked for
        nm.load_ssc(root / "nowhere", "valid", channel_bin=value)
    with pytest.raises(error, match=r"^toy: channel_bin must be .*1\.\.4"):
        nm.EventFrameDataset("toy", [0], [0], lambda i: None, (4, 1, 1), n_time_bins=1, channel_bin=value)


def test_numpy_ints_are_accepted(shd):
    root, _ = shd
    assert nm.load_shd(root, "train", n_time_bins=3, channel_bin=np.int64(5))[0][0].shape == (3, 140)


def test_channel_bin_on_a_2d_sensor_is_refused():
    with pytest.raises(ValueError, match=r"channel_bin=2 applies to 1-D sensors"):
        nm.EventFrameDataset("cam", [0], [0], lambda i: None, (34, 34, 2), n_time_bins=1, channel_bin=2)


def test_units_past_699_are_refused_before_binning(tmp_path):
    # with channel_bin=3, unit 700 would fall in the last channel (700 // 3 == 233) if binned before the check
    write_unit_700_file(tmp_path)
    ds = nm.load_shd(tmp_path, n_time_bins=1, channel_bin=3)
    with pytest.raises(ValueError, match=r"shd_train\.h5 \(sample 0\): .*unit=700, outside the sensor's 0\.\.699"):
        ds[0]


def test_load_neuromorphic_passes_channel_bin_to_shd_and_ssc_only(shd):
    root, _ = shd
    _write_shd_layout(root / "ssc_test.h5", 2, 35)
    ds = nm.load_neuromorphic("shd", root, "train", n_time_bins=8, channel_bin=5)
    assert ds[0][0].shape == (8, 140) and ds.sensor_size == (140, 1, 1)
    assert torch.equal(ds[1][0], _group_sum(nm.load_shd(root, "train", n_time_bins=8)[1][0], 5))
    assert nm.load_neuromorphic("SSC", root, "test", n_time_bins=8, channel_bin=3)[0][0].shape == (8, 234)
    for name in ("nmnist", "dvsgesture", "pokerdvs", "dvs-gesture"):
        with pytest.raises(TypeError, match=r"channel_bin .*'shd' and 'ssc' only"):
            nm.load_neuromorphic(name, root, "train", channel_bin=5)
    with pytest.raises(TypeError, match="channel_bin"):  # their own loaders do not take it at all
        nm.load_nmnist(root, "train", channel_bin=5)


def test_build_data_counts_the_binned_inputs(shd):
    from snnlab.training.config import ExperimentConfig
    from snnlab.training.model import build_data

    root, _ = shd
    cfg = ExperimentConfig(dataset="shd", data_root=str(root), data_kwargs={"channel_bin": 5}, batch_size=2)
    train, _, n_in, n_classes = build_data(cfg)
    x, _ = next(iter(train))
    assert n_in == 140 and n_classes == 20 and x.shape[1:] == (2, 140)
