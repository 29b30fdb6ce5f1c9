"""DiskCache with several writers in one process (threads): each writes its own temporary file, renames it over the
entry, and leaves nothing behind when it fails."""
import threading

import pytest
import torch

import snnlab.data.cache as cache_mod
from snnlab.data.cache import DiskCache, read_entry


def _leftovers(cache: DiskCache) -> list[str]:
    """Files in the cache folder other than its entries and params.json (temporary files)."""
    return sorted(p.name for p in cache.folder.iterdir() if p.name != "params.json" and not p.name.endswith(".pt"))


def test_two_threads_writing_one_entry_at_once_both_succeed(tmp_path, monkeypatch):
    """Both writers have written their file before either renames it: with one temporary name per process, the
    second rename found the file gone (FileNotFoundError)."""
    real_write = cache_mod.write_entry
    both_written = threading.Barrier(2, timeout=10)

    def write_then_wait(path, value):
        real_write(path, value)
        both_written.wait()

    monkeypatch.setattr(cache_mod, "write_entry", write_then_wait)
    value = torch.arange(1000, dtype=torch.float32) % 7
    results, errors = [], []

    def fill(cache: DiskCache) -> None:
        try:
            results.append(cache.get_or_compute(0, lambda: value.clone()))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    caches = [DiskCache(tmp_path, "toy", {"n": 1}) for _ in range(2)]
    threads = [threading.Thread(target=fill, args=(c,)) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and len(results) == 2
    assert all(torch.equal(r, value) for r in results)
    assert torch.equal(read_entry(caches[0].path(0)), value) and _leftovers(caches[0]) == []


def test_many_threads_filling_the_same_entries_get_the_frames_and_leave_no_temporary_files(tmp_path):
    """Eight threads miss the same entries together (a barrier in compute), then all write them."""
    n_threads, n_entries = 8, 3
    start = threading.Barrier(n_threads, timeout=10)
    errors = []

    def frames(i: int) -> torch.Tensor:
        start.wait()  # every thread has missed entry i (none can store it before all are here)
        return torch.full((50_000,), float(i))

    def fill() -> None:
        cache = DiskCache(tmp_path, "toy", {"n": 2})
        try:
            for i in range(n_entries):
                got = cache.get_or_compute(i, lambda i=i: frames(i))
                assert torch.equal(got, torch.full((50_000,), float(i)))
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)
            start.abort()

    threads = [threading.Thread(target=fill) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    cache = DiskCache(tmp_path, "toy", {"n": 2})
    assert errors == []
    assert [read_entry(cache.path(i))[0].item() for i in range(n_entries)] == [0.0, 1.0, 2.0]
    assert _leftovers(cache) == []


def test_a_failed_write_leaves_no_temporary_file_and_the_entry_is_computed_again(tmp_path, monkeypatch):
    real_write = cache_mod.write_entry

    def write_half_then_fail(path, value):
        real_write(path, value)
        with open(path, "r+b") as f:
            f.truncate(20)
        raise OSError(28, "No space left on device")

    cache = DiskCache(tmp_path, "toy", {"n": 3})
    monkeypatch.setattr(cache_mod, "write_entry", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        cache.get_or_compute(0, lambda: torch.ones(10))
    assert 0 not in cache and _leftovers(cache) == []
    monkeypatch.setattr(cache_mod, "write_entry", real_write)
    calls = []
    assert torch.equal(cache.get_or_compute(0, lambda: calls.append(1) or torch.ones(10)), torch.ones(10))
    assert calls == [1] and _leftovers(cache) == []


def test_temporary_files_of_killed_writers_are_not_entries(tmp_path):
    """A writer killed mid-write leaves ``.<index>.pt.<id>.tmp`` (or, from earlier versions, ``<index>.tmp<pid>``):
    neither is taken for entry ``index``, which is computed and stored as usual."""
    cache = DiskCache(tmp_path, "toy", {"n": 4})
    (cache.folder / ".0.pt.0123456789abcdef0123456789abcdef.tmp").write_bytes(b"snnlab-cache 2 float32\n\x93NUM")
    (cache.folder / "0.tmp4242").write_bytes(b"")
    assert 0 not in cache
    assert torch.equal(cache.get_or_compute(0, lambda: torch.full((3,), 5.0)), torch.full((3,), 5.0))
    assert 0 in cache and torch.equal(read_entry(cache.path(0)), torch.full((3,), 5.0))
    assert sorted(p.name for p in cache.folder.glob("*.pt")) == ["0.pt"]
