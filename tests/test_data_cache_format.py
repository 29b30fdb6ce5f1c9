"""DiskCache's compact file format: exact round trips, the smallest dtype, earlier versions' files."""
from pathlib import Path

import numpy as np
import pytest
import torch

from snnlab.data.cache import DiskCache, params_key, read_entry, write_entry


def _bits(x: torch.Tensor) -> bytes:
    x = x.contiguous()
    return x.view(torch.uint8).numpy().tobytes() if x.dtype in (torch.bfloat16,) else x.numpy().tobytes()


def _stored_dtype(path: Path) -> np.dtype | None:
    """The dtype of the .npy array in a cache file (None for a torch.save file)."""
    with open(path, "rb") as f:
        if not f.readline(64).startswith(b"snnlab-cache 2 "):
            return None
        return np.lib.format.read_array(f).dtype


CASES = {
    "counts": (torch.tensor([[0.0, 1.0, 9.0], [255.0, 0.0, 3.0]]), np.uint8),
    "count 256": (torch.tensor([0.0, 256.0, 2.0]), np.uint16),
    "count 65535": (torch.tensor([65535.0, 1.0]), np.uint16),
    "count 65536": (torch.tensor([65536.0, 1.0]), np.int32),
    "negative (tonic's int16 wrap)": (torch.tensor([-25536.0, 4.0]), np.int32),
    "2**24 + 2 (float32 exact)": (torch.tensor([2.0**24 + 2, 0.0]), np.int32),
    "2**31": (torch.tensor([2.0**31, 0.0]), np.float32),
    "fraction": (torch.tensor([0.5, 1.0]), np.float32),
    "tiny fraction": (torch.tensor([1.0 + 2**-23, 0.0]), np.float32),
    "minus zero": (torch.tensor([-0.0, 1.0]), np.float32),
    "nan": (torch.tensor([float("nan"), 1.0]), np.float32),
    "inf": (torch.tensor([float("inf"), 1.0]), np.float32),
    "all zeros": (torch.zeros(3, 2, 4), np.uint8),
    "empty": (torch.zeros(0, 5), np.float32),
    "float64 counts": (torch.tensor([3.0, 300.0], dtype=torch.float64), np.uint16),
    "float16 counts": (torch.tensor([3.0, 7.0], dtype=torch.float16), np.uint8),
    "uint8 (FSDD spikes)": (torch.tensor([[0, 3], [255, 1]], dtype=torch.uint8), np.uint8),
    "int64": (torch.tensor([-1, 2**40]), np.int64),
    "bool": (torch.tensor([True, False]), np.bool_),
    "non-contiguous": (torch.arange(12.0).reshape(3, 4).t(), np.uint8),
    "bfloat16 (torch.save)": (torch.tensor([1.0, 2.5], dtype=torch.bfloat16), None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_entries_come_back_bit_for_bit_in_the_smallest_exact_dtype(tmp_path, case):
    value, stored = CASES[case]
    write_entry(tmp_path / "0.pt", value)
    back = read_entry(tmp_path / "0.pt")
    assert back.dtype == value.dtype and back.shape == value.shape and _bits(back) == _bits(value)
    assert _stored_dtype(tmp_path / "0.pt") == (None if stored is None else np.dtype(stored))


def test_tensors_that_need_grad_and_other_values_are_stored_with_torch_save(tmp_path):
    g = torch.ones(3, requires_grad=True)
    write_entry(tmp_path / "g.pt", g)
    assert _stored_dtype(tmp_path / "g.pt") is None and read_entry(tmp_path / "g.pt").requires_grad
    write_entry(tmp_path / "d.pt", {"a": torch.ones(2)})
    assert torch.equal(read_entry(tmp_path / "d.pt")["a"], torch.ones(2))


def test_cached_frames_are_the_computed_frames_and_small(tmp_path):
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.poisson(0.05, (30, 2, 34, 34)).astype(np.float32))  # N-MNIST-like counts
    frames[3, 1, 5, 6] = 300.0  # a count past 255
    cache = DiskCache(tmp_path, "nmnist", {"n_time_bins": 30})
    first = cache.get_or_compute(0, lambda: frames.clone())
    again = cache.get_or_compute(0, lambda: pytest.fail("recomputed despite the cache"))
    for x in (first, again):
        assert x.dtype == torch.float32 and x.shape == frames.shape and _bits(x) == _bits(frames)
    assert _stored_dtype(cache.path(0)) == np.uint16
    assert cache.path(0).stat().st_size < frames.numel() * 2 + 300
    small = frames.clamp(max=9)
    cache.get_or_compute(1, lambda: small)
    assert _stored_dtype(cache.path(1)) == np.uint8 and cache.path(1).stat().st_size < frames.numel() + 300
    assert torch.equal(cache.get_or_compute(1, lambda: pytest.fail("recomputed")), small)


def test_earlier_versions_files_are_still_read_and_the_key_is_unchanged(tmp_path):
    params = {"name": "nmnist", "n_time_bins": 30}
    cache = DiskCache(tmp_path, "nmnist", params)
    assert cache.folder.name == "nmnist-33dfe677417c6efe" == f"nmnist-{params_key(params)}"  # the same folders
    old = torch.rand(4, 2, 3, 3) * 5  # earlier versions: torch.save of the float32 tensor, as <index>.pt
    torch.save(old, cache.path(7))
    got = cache.get_or_compute(7, lambda: pytest.fail("an earlier version's file was not read"))
    assert got.dtype == torch.float32 and _bits(got) == _bits(old)


def test_earlier_versions_cannot_misread_the_new_files(tmp_path):
    cache = DiskCache(tmp_path, "toy", {"n": 1})
    cache.get_or_compute(0, lambda: torch.tensor([1.0, 2.0]))
    with pytest.raises(Exception):  # what earlier versions do (then they recompute the entry)
        torch.load(cache.path(0), weights_only=True)


@pytest.mark.parametrize("cut", [0, 10, 30, 100, -1, -20])
def test_a_partial_file_is_recomputed(tmp_path, cut):
    cache = DiskCache(tmp_path, "toy", {"n": 1})
    x = torch.arange(50.0)
    cache.get_or_compute(0, lambda: x)
    data = cache.path(0).read_bytes()
    assert len(data) <= 210 and _stored_dtype(cache.path(0)) == np.uint8  # 50 bytes of counts after the headers
    cache.path(0).write_bytes(data[:cut])
    calls = []
    got = cache.get_or_compute(0, lambda: calls.append(1) or x)
    assert calls == [1] and torch.equal(got, x) and torch.equal(read_entry(cache.path(0)), x)
