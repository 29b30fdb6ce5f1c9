import pytest
import torch

from snnlab.data.collate import time_major_collate
from snnlab.data.synthetic import make_delay_task, make_randman


def test_randman_shapes_one_spike_reproducible():
    ds = make_randman(n_classes=4, n_units=30, n_steps=40, samples_per_class=25, seed=2)
    assert len(ds) == 100
    x, y = ds[3]
    assert x.shape == (40, 30) and (x.sum(0) == 1).all()
    assert torch.equal(ds.times, make_randman(n_classes=4, n_units=30, n_steps=40, samples_per_class=25, seed=2).times)
    assert not torch.equal(ds.times, make_randman(n_classes=4, n_units=30, n_steps=40, samples_per_class=25, seed=3).times)
    assert torch.bincount(ds.labels).tolist() == [25] * 4
    xb, yb = next(iter(ds.loader(batch_size=8)))
    assert xb.shape == (40, 8, 30) and yb.shape == (8,)
    assert ds.dense().shape == (40, 100, 30)


def test_randman_smooth_and_learnable():
    # 1-D manifold: nearby intrinsic points give nearby spike times (smoothness) and classes are separable
    from sklearn.linear_model import LogisticRegression

    ds = make_randman(n_classes=3, n_units=20, n_steps=50, dim_manifold=1, samples_per_class=100, seed=0)
    t = ds.times.numpy().astype(float)
    y = ds.labels.numpy()
    clf = LogisticRegression(max_iter=500).fit(t[:200], y[:200])
    assert clf.score(t[200:], y[200:]) > 0.6  # chance = 0.33
    assert t.min() >= 0 and t.max() <= 49 and t.std() > 5  # spread over the window


def test_randman_validation():
    with pytest.raises(ValueError, match="n_units"):
        make_randman(n_units=0)


def test_delay_task_counts_carry_no_information():
    ds = make_delay_task(n_samples=400, n_steps=60, delays=(10, 25), n_per_channel=2, n_distractors=3, seed=0)
    x = ds.dense()  # [T, N, F]
    assert x.shape == (60, 400, 7)
    counts = x.sum(0)
    assert (counts == 1).all()  # identical counts in every class
    y = ds.labels
    assert torch.bincount(y).tolist() == [200, 200]
    ta = x[:, :, 0].argmax(0)
    tb = x[:, :, 2].argmax(0)
    assert torch.equal(tb - ta, torch.tensor([10, 25])[y])
    # onset distribution is the same for both classes (no absolute-time cue)
    assert abs(float(ta[y == 0].float().mean() - ta[y == 1].float().mean())) < 3.0
    # a coincidence detector with a class-specific delay on A solves it
    for c, d in enumerate((10, 25)):
        shifted = torch.roll(x[:, :, 0], d, 0)
        coinc = (shifted * x[:, :, 2]).sum(0) > 0
        assert torch.equal(coinc, y == c)


def test_delay_task_jitter_and_errors():
    ds = make_delay_task(n_samples=50, n_steps=50, delays=(5, 20, 30), jitter=2, seed=1)
    x, _ = time_major_collate([ds[i] for i in range(5)])
    assert x.shape == (50, 5, 2)
    with pytest.raises(ValueError, match="n_steps"):
        make_delay_task(n_steps=20, delays=(5, 25))
    with pytest.raises(ValueError, match="distinct"):
        make_delay_task(delays=(5, 5))
