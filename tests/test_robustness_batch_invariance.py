"""robustness_curve's input perturbations depend on (seed, kind, level, the sample's position in the stream) only, not
on the batch size (they were drawn per batch from one generator: deletion at 0.5 gave 0.9375 / 0.875 / 0.8906 / 0.875 at
batch sizes 1 / 7 / 16 / 64 on the same 64 samples); evaluate(seed=s) is level 0 of robustness_curve(seed=s) for a
noisy model; the per-batch perturbation functions keep their documented generator streams."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.metrics import (delete_spikes, evaluate, gaussian_noise, insert_spikes, jitter_spikes, perturb,
                            robustness_curve)

KINDS = ["jitter", "deletion", "insertion", "gaussian"]


def data(n=64, T=12, F=10, seed=3):
    """Class c: a sparse spike pattern of its own; enough spikes that every perturbation moves the accuracy."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    proto = (torch.rand(4, F, generator=g) < 0.4).float()
    x = (torch.rand(T, n, F, generator=g) < 0.5).float() * proto[y]
    return x, y


def template_net(x, y):
    """A linear readout of the class templates (well above chance, so the perturbations change the accuracy)."""
    F = x.shape[-1]
    lin = nn.Linear(F, 4, bias=False)
    with torch.no_grad():
        means = torch.stack([x[:, y == c].mean((0, 1)) for c in range(4)])
        lin.weight.copy_(means - means.mean(0))
    return sl.Sequential(lin, sl.LI(beta=0.0))


def batched(x, y, bs):
    return [(x[:, i:i + bs], y[i:i + bs]) for i in range(0, y.numel(), bs)]


def test_robustness_curve_is_the_same_at_every_batch_size():
    x, y = data(n=40)
    net = template_net(x, y)
    levels = [0.0, 0.5, 0.9]
    curves = [robustness_curve(net, batched(x, y, bs), KINDS, levels, seed=7) for bs in (6, 40)]
    for other in curves[1:]:
        pd.testing.assert_frame_equal(curves[0], other)  # (differed: one generator drew for the whole batch)
    acc = curves[0].set_index(["perturbation", "level"])["accuracy"]
    assert (acc.xs(0.0, level="level") > 0.7).all()
    for kind in ["deletion", "insertion", "gaussian"]:  # they act (a jittered membrane sum barely moves)
        assert acc[(kind, 0.9)] < acc[(kind, 0.0)]
    # batches of 16 with an empty one among them (it takes no position in the stream)
    empty = (torch.zeros(12, 0, 10), torch.zeros(0, dtype=torch.long))
    with_empty = robustness_curve(net, [*batched(x, y, 16)[:1], empty, *batched(x, y, 16)[1:]], KINDS, levels, seed=7)
    pd.testing.assert_frame_equal(curves[0], with_empty)
    assert not robustness_curve(net, batched(x, y, 40), KINDS, levels, seed=8).equals(curves[0])  # the seed matters


def test_max_batches_counts_the_positions_of_the_samples_it_keeps():
    x, y = data()
    net = template_net(x, y)
    first = robustness_curve(net, batched(x, y, 8), KINDS, [0.5], max_batches=4, seed=1)
    alone = robustness_curve(net, [(x[:, :32], y[:32])], KINDS, [0.5], seed=1)
    pd.testing.assert_frame_equal(first, alone)


@pytest.mark.parametrize("kind,level", [("jitter", 1.5), ("deletion", 0.4), ("insertion", 0.3), ("gaussian", 0.5)])
def test_perturb_samples_gives_each_sample_its_own_draws(kind, level):
    from snnlab.metrics.robustness import perturb_samples

    x, _ = data(n=10)
    whole = perturb_samples(x, kind, level, seed=5)
    pieces = torch.cat([perturb_samples(x[:, :3], kind, level, seed=5),
                        perturb_samples(x[:, 3:4], kind, level, seed=5, start=3),
                        perturb_samples(x[:, 4:], kind, level, seed=5, start=4)], 1)
    assert torch.equal(whole, pieces)
    assert not torch.equal(whole, x)  # it perturbs
    assert not torch.equal(whole[:, 0], perturb_samples(x[:, :1], kind, level, seed=5, start=1)[:, 0])  # position
    assert not torch.equal(whole, perturb_samples(x, kind, level, seed=6))  # seed
    torch.manual_seed(0)
    state = torch.get_rng_state()
    assert torch.equal(perturb_samples(x, kind, level, seed=5), whole)  # not torch's global generator...
    assert torch.equal(torch.get_rng_state(), state)  # ...nor moved
    assert torch.equal(perturb_samples(x, kind, 0.0, seed=5), x)  # level 0: the input itself


@pytest.mark.parametrize("kind,level", [("jitter", 1.5), ("deletion", 0.4), ("insertion", 0.3), ("gaussian", 0.5)])
def test_perturb_samples_is_perturb_of_each_sample_with_its_own_generator(kind, level):
    from snnlab.metrics.robustness import perturb_samples, sample_seed

    x, _ = data(n=6)
    out = perturb_samples(x, kind, level, seed=11, start=20)
    for b in range(6):
        g = torch.Generator().manual_seed(sample_seed(11, kind, 20 + b))
        assert torch.equal(out[:, b:b + 1], perturb(x[:, b:b + 1], kind, level, g)), b


def test_perturb_samples_keeps_common_random_numbers_across_levels():
    from snnlab.metrics.robustness import perturb_samples

    x, _ = data(n=6)
    low, high = perturb_samples(x, "deletion", 0.3, seed=2), perturb_samples(x, "deletion", 0.6, seed=2)
    assert bool((high <= low).all()) and high.sum() < low.sum()  # the higher level drops a superset
    low, high = perturb_samples(x, "insertion", 0.1, seed=2), perturb_samples(x, "insertion", 0.3, seed=2)
    assert bool((high >= low).all()) and high.sum() > low.sum()
    a, b = perturb_samples(x, "gaussian", 0.5, seed=2), perturb_samples(x, "gaussian", 1.0, seed=2)
    assert torch.allclose((b - x), 2 * (a - x))
    moved = perturb_samples(x.clone().index_fill_(0, torch.arange(1, 12), 0.0), "jitter", 2.0, seed=2)
    assert moved.sum() == x[0].sum()  # one spike per neuron at most: none merge, none dropped


def test_perturb_samples_refuses_bad_arguments():
    from snnlab.metrics.robustness import perturb_samples

    x = torch.ones(4, 2, 3)
    with pytest.raises(ValueError, match="unknown perturbation 'nope'"):
        perturb_samples(x, "nope", 0.1)
    with pytest.raises(ValueError, match="perturb_samples: start must be an int >= 0"):
        perturb_samples(x, "deletion", 0.1, start=-1)
    with pytest.raises(TypeError, match="perturb_samples: seed must be an int"):
        perturb_samples(x, "deletion", 0.1, seed=None)
    with pytest.raises(ValueError, match="delete_spikes: the probability must lie in"):
        perturb_samples(x, "deletion", 1.5)
    with pytest.raises(ValueError, match="jitter_spikes: std must be a finite number"):
        perturb_samples(x, "jitter", float("inf"))
    with pytest.raises(ValueError, match="jitter_spikes: x must be a time-major tensor"):
        perturb_samples(torch.ones(4), "jitter", 0.1)
    with pytest.raises(ValueError, match="gaussian_noise: x must be a time-major tensor"):
        perturb_samples(torch.ones(4), "gaussian", 0.1)
    assert perturb_samples(torch.ones(4, 2, 3, dtype=torch.int64), "gaussian", 0.1).dtype == torch.float32
    for kind in KINDS:  # an empty batch comes back empty, as from perturb
        assert perturb_samples(torch.ones(4, 0, 3), kind, 0.5).shape == (4, 0, 3)
        assert perturb(torch.ones(4, 0, 3), kind, 0.5, gen()).shape == (4, 0, 3)


def noisy_net():
    torch.manual_seed(0)
    return sl.Sequential(nn.Linear(10, 16), sl.LIF(tau_mem=4.0, threshold=0.5, noise="gaussian", noise_scale=0.5,
                                                  noisy_eval=True, backend="torch"), nn.Linear(16, 4), sl.LI())


@pytest.mark.parametrize("seed", [0, 3])
def test_evaluate_with_a_seed_is_level_zero_of_robustness_curve_with_that_seed(seed):
    x, y = data()
    net, loader = noisy_net(), batched(x, y, 16)
    torch.manual_seed(123)  # evaluate(seed=None) would draw from here; both calls below are seeded
    curve = robustness_curve(net, loader, ["jitter", "insertion"], [0.0], seed=seed)
    acc = evaluate(net, loader, seed=seed)["accuracy"]
    assert (curve["accuracy"] == acc).all()
    others = {evaluate(net, loader, seed=s)["accuracy"] for s in (seed + 1, seed + 2)}
    assert len({acc, *others}) > 1  # the model's noise does matter


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_the_perturbation_functions_keep_their_generator_streams():
    """The public per-batch functions draw as documented (one generator for the batch), positionally too."""
    x, _ = data(n=5)
    assert torch.equal(delete_spikes(x, 0.3, gen()), x * (torch.rand(x.shape, generator=gen()) >= 0.3).float())
    added = (x == 0) & (torch.rand(x.shape, generator=gen()) < 0.2)
    assert torch.equal(insert_spikes(x, 0.2, gen()), x + added.float())
    assert torch.equal(gaussian_noise(x, 0.5, gen()), x + 0.5 * torch.randn(x.shape, generator=gen()))
    flat = x.reshape(x.shape[0], -1)
    t, j = flat.nonzero(as_tuple=True)
    t_new = (t + torch.round(torch.randn(t.shape, generator=gen()) * 2.0).long()).clamp(0, x.shape[0] - 1)
    expect = torch.zeros_like(flat).index_put_((t_new, j), flat[t, j], accumulate=True).view(x.shape)
    assert torch.equal(jitter_spikes(x, 2.0, gen(), False), expect)
    for kind, fn, level in [("jitter", jitter_spikes, 2.0), ("deletion", delete_spikes, 0.3),
                            ("insertion", insert_spikes, 0.2), ("gaussian", gaussian_noise, 0.5)]:
        assert torch.equal(perturb(x, kind, level, gen(4)), fn(x, level, gen(4)))
        torch.manual_seed(9)
        a = fn(x, level)  # no generator: torch's global one
        torch.manual_seed(9)
        assert torch.equal(a, fn(x, level, None))
