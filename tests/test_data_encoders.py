import math

import pytest
import torch

from snnlab.data.encoders import (
    DirectEncoder, LatencyEncoder, RateEncoder, direct_encode, latency_encode, rate_encode, spike_times_to_dense,
)


def test_latency_linear_order_and_single_spike():
    x = torch.tensor([[1.0, 0.75, 0.5, 0.25, 0.0]])
    s = latency_encode(x, num_steps=9)
    assert s.shape == (9, 1, 5)
    counts = s.sum(0)[0]
    assert counts.tolist() == [1, 1, 1, 1, 0]  # below threshold -> silent
    t = s[:, 0, :4].argmax(0)
    assert t.tolist() == [0, 2, 4, 6]  # brighter -> earlier
    assert set(s.unique().tolist()) <= {0.0, 1.0}


def test_latency_threshold_and_rc():
    x = torch.rand(8, 30)
    s = latency_encode(x, 20, threshold=0.3, linear=False, tau=4.0)
    assert (s.sum(0) <= 1).all()
    assert (s.sum(0)[x <= 0.3] == 0).all()
    # RC times are monotone non-increasing in x among spiking features
    fired = s.sum(0) > 0
    t = s.argmax(0).float()
    xs, ts = x[fired], t[fired]
    order = xs.argsort()
    assert (ts[order].diff() <= 0).all()
    # a value just above threshold needs tau*ln(x/(x-thr)) steps -> beyond window -> dropped
    s2 = latency_encode(torch.tensor([[0.3001]]), 20, threshold=0.3, linear=False, tau=4.0)
    assert s2.sum() == 0
    expected = round(4.0 * math.log(0.9 / 0.6))
    assert latency_encode(torch.tensor([[0.9]]), 20, threshold=0.3, linear=False, tau=4.0)[:, 0, 0].argmax() == expected


def test_rate_reproducible_and_mean():
    x = torch.rand(16, 32)
    a = rate_encode(x, 200, generator=torch.Generator().manual_seed(3))
    b = rate_encode(x, 200, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert (a.mean(0) - x).abs().mean() < 0.05
    half = rate_encode(x, 200, gain=0.5, generator=torch.Generator().manual_seed(3))
    assert abs(float(half.mean()) - 0.5 * float(x.mean())) < 0.03
    assert rate_encode(torch.zeros(2, 3), 10).sum() == 0
    assert rate_encode(torch.ones(2, 3), 10).sum() == 60


def test_direct_encode():
    x = torch.tensor([[0.2, 2.5]])
    d = direct_encode(x, 4)
    assert d.shape == (4, 1, 2) and torch.equal(d[3], x)


def test_multidim_input():
    x = torch.rand(2, 1, 8, 8)
    assert latency_encode(x, 5).shape == (5, 2, 1, 8, 8)
    assert rate_encode(x, 5).shape == (5, 2, 1, 8, 8)


@pytest.mark.parametrize("fn", [latency_encode, rate_encode, direct_encode])
def test_errors(fn):
    with pytest.raises(ValueError, match="num_steps"):
        fn(torch.rand(2, 3), 0)
    with pytest.raises(ValueError, match="NaN"):
        fn(torch.tensor([[float("nan"), 0.1]]), 3)
    with pytest.raises(ValueError, match="unsqueeze"):
        fn(torch.rand(3), 3)
    with pytest.raises(TypeError):
        fn([[0.1]], 3)


def test_range_errors():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        rate_encode(torch.tensor([[1.5]]), 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        latency_encode(torch.tensor([[-0.1]]), 3)
    direct_encode(torch.tensor([[1.5]]), 3)  # currents may be any finite value


def test_transform_classes():
    x = torch.rand(4, 10)
    assert LatencyEncoder(7)(x).shape == (7, 4, 10)
    assert torch.equal(RateEncoder(7, seed=1)(x), RateEncoder(7, seed=1)(x))
    assert DirectEncoder(3)(x).shape == (3, 4, 10)
    assert "num_steps=7" in repr(LatencyEncoder(7))


def test_spike_times_to_dense():
    d = spike_times_to_dense(torch.tensor([[0, 4, -1, 9]]), 5)
    assert d.shape == (5, 1, 4)
    assert d.sum(0).tolist() == [[1, 1, 0, 0]]


def test_rate_encoder_in_loader_workers_draws_new_spikes_per_worker_and_epoch_reproducibly():
    from torch.utils.data import DataLoader, TensorDataset

    from snnlab.data.collate import EncodeCollate

    data = TensorDataset(torch.full((8, 50), 0.5), torch.zeros(8, dtype=torch.long))

    def epochs(n=2):
        dl = DataLoader(data, batch_size=2, num_workers=2, generator=torch.Generator().manual_seed(0),
                        collate_fn=EncodeCollate(RateEncoder(5, seed=0)))
        return [[x for x, _ in dl] for _ in range(n)]

    first, second = epochs()
    flat = first + second
    assert all(not torch.equal(a, b) for i, a in enumerate(flat) for b in flat[i + 1:])
    assert all(torch.equal(a, b) for a, b in zip(first + second, sum(epochs(), [])))
