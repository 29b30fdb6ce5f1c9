"""Padding to a fixed length (``time_major_collate(n_steps=)``, ``PadCollate``, ``make_neuromorphic_loader(n_steps=)``,
``max_sample_steps``): a sample's outputs and metrics no longer depend on the batch it lands in."""
import functools
import pickle

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Subset

import snnlab as sl
from snnlab.core.readout import logits
from snnlab.data import PadCollate, max_sample_steps, time_major_collate
from snnlab.data.neuromorphic import AUDIO_DTYPE, EventFrameDataset, make_neuromorphic_loader
from snnlab.metrics.evaluate import evaluate
from snnlab.metrics.latency import decision_latency


def _net() -> sl.Sequential:
    """A tiny LIF network whose hidden layer fires on silent input (a bias), so padding steps change its spikes."""
    torch.manual_seed(0)
    net = sl.Sequential(nn.Linear(3, 8), sl.LIF(), nn.Linear(8, 2), sl.LI())
    with torch.no_grad():
        net[0].bias.fill_(0.3)
    return net.eval()


def _per_sample(net: sl.Sequential, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(readout [B, 2], decision latency [B], hidden spikes [B])`` of one batch."""
    with torch.no_grad(), sl.Monitor(net, membrane=False) as mon:
        out = net(x)
    return logits(out, "membrane_sum"), decision_latency(out, "membrane_sum"), mon.spikes["1"].sum((0, 2))


def _samples() -> dict[str, tuple[torch.Tensor, int]]:
    g = torch.Generator().manual_seed(1)
    return {name: ((torch.rand(t, 3, generator=g) < 0.5).float(), label)
            for name, t, label in (("s", 4, 0), ("short", 3, 1), ("long", 9, 1))}


def _sample_in_two_batches(collate) -> list[tuple[torch.Tensor, ...]]:
    """Sample ``s``'s per-sample numbers when batched with a short sample, and (second place) with a long one."""
    net, d = _net(), _samples()
    a = _per_sample(net, collate([d["s"], d["short"]])[0])
    b = _per_sample(net, collate([d["long"], d["s"]])[0])
    return [tuple(v[0] for v in a), tuple(v[1] for v in b)]


def test_plain_padding_makes_a_sample_depend_on_its_batch():
    (r_a, lat_a, sp_a), (r_b, lat_b, sp_b) = _sample_in_two_batches(time_major_collate)
    assert not torch.allclose(r_a, r_b, atol=1e-3)
    assert sp_b > sp_a  # the hidden layer fires through the 5 extra padding steps


@pytest.mark.parametrize("collate", [PadCollate(9), functools.partial(time_major_collate, n_steps=9),
                                     lambda b: time_major_collate(b, n_steps=12)])
def test_a_fixed_length_gives_a_sample_the_same_numbers_in_any_batch(collate):
    (r_a, lat_a, sp_a), (r_b, lat_b, sp_b) = _sample_in_two_batches(collate)
    assert torch.equal(r_a, r_b) and torch.equal(lat_a, lat_b) and torch.equal(sp_a, sp_b)
    # and those are the numbers of the sample alone, padded to the same length (a batch of another size may round
    # the matrix products differently in the last bits)
    net, s = _net(), _samples()["s"]
    alone = _per_sample(net, collate([s])[0])
    torch.testing.assert_close(alone[0][0], r_a, rtol=1e-6, atol=1e-6)
    assert torch.equal(alone[1][0], lat_a) and torch.equal(alone[2][0], sp_a)


# ---------------------------------------------------------------------------------------------- event loaders
def _events(t_last: int) -> np.ndarray:
    t = np.linspace(0, t_last, 12).astype(np.int64)
    return np.array([(int(v), int(i) % 3, 0) for i, v in enumerate(t)], dtype=AUDIO_DTYPE)


def _varying_dataset() -> EventFrameDataset:
    """Samples of 3, 10, 5 and 8 frames of 100 us (time_window without duration)."""
    recordings = [_events(t) for t in (250, 950, 420, 799)]
    return EventFrameDataset("toy", recordings, [0, 1, 0, 1], lambda e: e, (3, 1, 1), time_window=100)


def test_evaluate_gives_the_same_metrics_for_any_batch_size_with_n_steps():
    ds, net = _varying_dataset(), _net()
    assert [ds[i][0].shape[0] for i in range(len(ds))] == [3, 10, 5, 8]
    n = max_sample_steps(ds)
    assert n == 10

    def run(batch_size: int, n_steps: int | None) -> dict:
        return evaluate(net, make_neuromorphic_loader(ds, batch_size=batch_size, shuffle=False, n_steps=n_steps))

    plain = run(1, None), run(4, None)
    assert plain[0]["spikes_per_sample"] != plain[1]["spikes_per_sample"]
    fixed = run(1, n), run(3, n), run(4, n)
    for r in fixed[1:]:
        assert r["spikes_per_sample"] == fixed[0]["spikes_per_sample"]
        assert r["latency_steps"] == fixed[0]["latency_steps"] and r["accuracy"] == fixed[0]["accuracy"]
        assert r["loss"] == pytest.approx(fixed[0]["loss"], rel=1e-6)


def test_make_neuromorphic_loader_pads_to_n_steps_and_refuses_a_too_short_one_at_once():
    ds = _varying_dataset()
    x, y = next(iter(make_neuromorphic_loader(ds, batch_size=2, shuffle=False, n_steps=12)))
    assert x.shape == (12, 2, 3) and y.tolist() == [0, 1]
    assert torch.equal(x[:3, 0], ds[0][0]) and x[3:, 0].abs().sum() == 0
    with pytest.raises(ValueError, match=r"sample 1 of the batch has 10 steps, more than n_steps=9"):
        next(iter(make_neuromorphic_loader(ds, batch_size=2, shuffle=False, n_steps=9)))
    fixed = EventFrameDataset("toy", [_events(500)], [0], lambda e: e, (3, 1, 1), n_time_bins=20)
    with pytest.raises(ValueError, match=r"make_neuromorphic_loader: the dataset's settings give samples of 20 "
                                         r"frames, more than n_steps=10; pass n_steps >= 20"):
        make_neuromorphic_loader(fixed, n_steps=10)
    with pytest.raises(TypeError, match=r"make_neuromorphic_loader: n_steps must be an int >= 1.*got 10.0"):
        make_neuromorphic_loader(ds, n_steps=10.0)


# ---------------------------------------------------------------------------------------------- max_sample_steps
def _refusing_reader(item: object) -> np.ndarray:
    raise AssertionError("max_sample_steps read a file though the settings fix the frame count")


@pytest.mark.parametrize("kwargs,expected", [({"n_time_bins": 7}, 7), ({"time_window": 100, "duration": 950}, 9),
                                             ({"time_window": 1_000_000 / 300, "duration": 1_000_000}, 300)])
def test_max_sample_steps_reads_nothing_when_the_settings_fix_the_frame_count(kwargs, expected):
    ds = EventFrameDataset("toy", [0, 1, 2], [0, 1, 0], _refusing_reader, (3, 1, 1), **kwargs)
    assert max_sample_steps(ds) == expected
    assert max_sample_steps(Subset(ds, [1])) == expected
    other = EventFrameDataset("toy", [0], [0], _refusing_reader, (3, 1, 1), n_time_bins=expected + 2)
    assert max_sample_steps(ConcatDataset([ds, other])) == expected + 2


def test_max_sample_steps_reads_every_sample_otherwise():
    ds = _varying_dataset()
    assert max_sample_steps(ds) == 10
    assert max_sample_steps(Subset(ds, [0, 2])) == 5
    assert max_sample_steps(ConcatDataset([Subset(ds, [2]), ds])) == 10
    assert max_sample_steps([(torch.ones(4, 2), 0), (torch.ones(6, 2), 1)]) == 6
    with pytest.raises(ValueError, match="max_sample_steps: the dataset is empty"):
        max_sample_steps([])


# ---------------------------------------------------------------------------------------------- checks
def test_fixed_length_promotes_the_dtype_and_checks_labels_as_time_major_collate():
    x, y = PadCollate(5)([(torch.ones(2, 3, dtype=torch.uint8), 0), (torch.full((3, 3), 0.25), np.int64(1))])
    assert x.dtype == torch.float32 and x.shape == (5, 2, 3) and y.tolist() == [0, 1]
    assert x[:2, 0].tolist() == [[1.0] * 3] * 2 and x[2:, 0].abs().sum() == 0 and x[3:, 1].abs().sum() == 0
    x, _ = time_major_collate([(torch.ones(2, 1, dtype=torch.int16), 0), (torch.full((1, 1), 300), 1)], n_steps=4)
    assert x.dtype == torch.int64 and x.shape == (4, 2, 1) and x[0, 1, 0] == 300
    assert PadCollate(3)([(torch.ones(1, 1, dtype=torch.float16), 0)])[0].dtype == torch.float16
    with pytest.raises(ValueError, match=r"PadCollate\(n_steps=5\): sample 1 has label 0\.5, not a whole number"):
        PadCollate(5)([(torch.ones(2, 3), 1), (torch.ones(2, 3), 0.5)])
    with pytest.raises(ValueError, match=r"PadCollate\(n_steps=5\): sample 1 has shape \(2, 4\) but sample 0 has"):
        PadCollate(5)([(torch.ones(2, 3), 0), (torch.ones(2, 4), 1)])
    with pytest.raises(ValueError, match=r"PadCollate\(n_steps=5\): empty batch"):
        PadCollate(5)([])


def test_a_sample_longer_than_n_steps_is_an_error_unless_cropped():
    batch = [(torch.ones(3, 2), 0), (torch.arange(14.0).view(7, 2), 1)]
    with pytest.raises(ValueError, match=r"time_major_collate: sample 1 of the batch has 7 steps, more than "
                                         r"n_steps=5; pass a larger n_steps \(max_sample_steps\(dataset\).*crop=True"):
        time_major_collate(batch, n_steps=5)
    with pytest.raises(ValueError, match=r"PadCollate\(n_steps=6\): sample 1 of the batch has 7 steps"):
        PadCollate(6)(batch)
    x, y = PadCollate(5, crop=True)(batch)
    assert x.shape == (5, 2, 2) and torch.equal(x[:, 1], torch.arange(10.0).view(5, 2)) and y.tolist() == [0, 1]
    assert torch.equal(time_major_collate(batch, n_steps=5, crop=True)[0], x)
    assert time_major_collate(batch, n_steps=7)[0].shape == (7, 2, 2)  # exactly n_steps: no error


@pytest.mark.parametrize("n_steps,error,match", [(0, ValueError, "got 0"), (-3, ValueError, "got -3"),
                                                 (4.0, TypeError, "got 4.0"), (True, TypeError, "got True"),
                                                 ("8", TypeError, "got '8'")])
def test_bad_n_steps_is_refused(n_steps, error, match):
    with pytest.raises(error, match=rf"time_major_collate: n_steps must be an int >= 1.*{match}"):
        time_major_collate([(torch.ones(2, 2), 0)], n_steps=n_steps)
    with pytest.raises(error, match=rf"PadCollate: n_steps must be an int >= 1.*{match}"):
        PadCollate(n_steps)


def test_pad_collate_needs_an_int_and_a_bool_crop():
    with pytest.raises(TypeError, match="PadCollate: n_steps must be an int >= 1 .*got None"):
        PadCollate(None)
    with pytest.raises(TypeError, match="PadCollate: crop must be True or False, got 1"):
        PadCollate(4, crop=1)
    with pytest.raises(TypeError, match="time_major_collate: crop must be True or False"):
        time_major_collate([(torch.ones(2, 2), 0)], n_steps=4, crop="yes")
    assert PadCollate(np.int64(4)).n_steps == 4 and repr(PadCollate(4, crop=True)) == "PadCollate(n_steps=4, crop=True)"


# ---------------------------------------------------------------------------------------------- pickling / workers
def test_pad_collate_pickles():
    for collate in (PadCollate(6, crop=True), functools.partial(time_major_collate, n_steps=6)):
        again = pickle.loads(pickle.dumps(collate))
        batch = [(torch.ones(8, 2), 0), (torch.ones(2, 2), 1)]
        if isinstance(collate, functools.partial):
            batch = batch[1:]
        assert torch.equal(again(batch)[0], collate(batch)[0])


@pytest.mark.parametrize("collate", [PadCollate(6), functools.partial(time_major_collate, n_steps=6)])
def test_pad_collate_works_in_spawned_dataloader_workers(collate):
    g = torch.Generator().manual_seed(0)
    data = [(torch.rand(t, 2, generator=g), t % 2) for t in (2, 6, 3, 5, 1)]
    # spawn pickles the collate_fn for the workers (fork would not)
    loader = DataLoader(data, batch_size=2, num_workers=2, collate_fn=collate, multiprocessing_context="spawn")
    got = list(loader)
    ref = [collate(data[i:i + 2]) for i in range(0, len(data), 2)]
    assert len(got) == 3 and all(x.shape[0] == 6 for x, _ in got)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(got, ref))
