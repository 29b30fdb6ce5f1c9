"""Clear errors for checkpoint files that cannot be written or read, and for a run folder another training holds.

Before: a full disk during a save raised torch's ``RuntimeError: [enforce fail at inline_container.cc:672] .
unexpected pos ...`` (the ``OSError`` only in its chain); an empty or random-bytes ``checkpoint.pt`` gave torch's
advice to save with ``_use_new_zipfile_serialization=True``; ``snnlab train --run-dir D`` while another process trained
in ``D`` advised ``--resume`` / ``--overwrite``, which were then refused as the folder was busy.
"""
import errno
import os

import pytest
import torch

from snnlab.cli import main
from snnlab.training import CheckpointError, load_checkpoint, save_checkpoint
from snnlab.training.run_folder import LOCK_NAME, run_folder_lock

TINY = ["--hidden", "16", "--epochs", "1", "--num-steps", "8", "--batch-size", "32", "--max-batches-per-epoch", "2",
        "--eval-max-batches", "1", "--quiet", "--threads", "1", "--no-store"]


def _disk_full_save(obj, f, *args, **kwargs):
    """torch.save on a full disk: part of the file written, the OSError turned into torch's RuntimeError."""
    f.write(b"PK\x03\x04partial")
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 10240 vs 10134")


def _left_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_raises_the_os_error_naming_the_checkpoint_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1, "w": torch.arange(3.0)})
    monkeypatch.setattr(torch, "save", _disk_full_save)
    with pytest.raises(OSError) as info:
        save_checkpoint(path, {"step": 2, "w": torch.zeros(3)})
    exc = info.value
    assert exc.errno == errno.ENOSPC and type(exc) is OSError
    assert str(exc).endswith(f"No space left on device writing {path}; the previous checkpoint is kept")
    assert "unexpected pos" not in str(exc) and isinstance(exc.__cause__, RuntimeError)  # the original, chained
    assert _left_files(tmp_path) == ["checkpoint.pt"]  # the temporary file removed
    monkeypatch.undo()
    kept = load_checkpoint(path)
    assert kept["step"] == 1 and torch.equal(kept["w"], torch.arange(3.0))


def test_a_full_disk_on_a_first_save_says_nothing_was_written(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _disk_full_save)
    with pytest.raises(OSError, match=r"No space left on device writing .*new\.pt; no checkpoint was written"):
        save_checkpoint(tmp_path / "new.pt", {"step": 1})
    assert _left_files(tmp_path) == []


def test_an_os_error_of_the_save_itself_names_the_checkpoint_and_keeps_its_errno_class(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})

    def refused(fd):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(os, "fsync", refused)
    with pytest.raises(PermissionError, match="Permission denied writing .*checkpoint.pt; the previous checkpoint "
                                              "is kept") as info:
        save_checkpoint(path, {"step": 2})
    assert info.value.errno == errno.EACCES and isinstance(info.value.__cause__, PermissionError)
    monkeypatch.undo()
    assert _left_files(tmp_path) == ["checkpoint.pt"] and load_checkpoint(path)["step"] == 1


def test_a_failure_that_is_no_os_error_is_raised_as_it_was(tmp_path, monkeypatch):
    def broken(obj, f, *args, **kwargs):
        raise RuntimeError("some other failure")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(RuntimeError, match="^some other failure$"):
        save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    assert _left_files(tmp_path) == []


@pytest.mark.parametrize("mmap", [False, True])
def test_an_empty_or_foreign_file_says_what_it_is(tmp_path, mmap):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(empty, mmap=mmap)
    assert str(info.value) == (f"checkpoint {empty} is unreadable: it is empty (0 bytes): a save was interrupted or "
                               "the file was truncated")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 12)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(garbage, mmap=mmap)
    assert str(info.value) == f"checkpoint {garbage} is unreadable: it is not a snnlab checkpoint (not a torch zip file)"
    assert "_use_new_zipfile_serialization" not in str(info.value)


def test_a_truncated_checkpoint_keeps_its_message(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"w": torch.arange(1000.0)})
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"is unreadable \(truncated, corrupt, or not written by snnlab\)"):
        load_checkpoint(path, mmap=True)


def test_cli_empty_or_foreign_checkpoint_names_it_and_overwrite_starts_a_new_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoint.pt").write_bytes(b"")
    assert main(["train", *TINY, "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "is empty (0 bytes)" in err and "--overwrite starts a new run there" in err
    assert "mmap" not in err and len(err.strip().splitlines()) == 1
    (run_dir / "checkpoint.pt").write_bytes(bytes(range(256)) * 12)
    assert main(["train", *TINY, "--run-dir", str(run_dir), "--resume"]) == 1
    err = capsys.readouterr().err
    assert "is not a snnlab checkpoint (not a torch zip file)" in err and "mmap" not in err
    assert "--overwrite (without --resume) starts a new run there" in err
    assert main(["train", *TINY, "--run-dir", str(run_dir), "--overwrite"]) == 0  # the advice works
    assert load_checkpoint(run_dir / "checkpoint.pt", history=False)["finished"]


def test_cli_refuses_a_busy_run_dir_before_reading_its_checkpoint(tmp_path, capsys):
    run_dir = tmp_path / "run"
    save_checkpoint(run_dir / "checkpoint.pt", {"run_id": "abc", "step": 7})
    with run_folder_lock(run_dir):  # another training holds it
        for extra in ([], ["--resume"], ["--overwrite"]):
            assert main(["train", *TINY, "--run-dir", str(run_dir), *extra]) == 1
            err = capsys.readouterr().err
            assert f"is in use by another training (process {os.getpid()})" in err, extra
            assert "already holds" not in err and "--resume continues it" not in err
    assert load_checkpoint(run_dir / "checkpoint.pt")["step"] == 7  # untouched


def test_cli_probe_leaves_a_folder_without_a_lock_as_it_was(tmp_path, capsys):
    run_dir = tmp_path / "run"
    save_checkpoint(run_dir / "checkpoint.pt", {"run_id": "abc", "step": 7})
    assert main(["train", *TINY, "--run-dir", str(run_dir)]) == 2
    assert "already holds the checkpoint of run abc (stopped after 7 steps)" in capsys.readouterr().err
    assert not (run_dir / LOCK_NAME).exists()
    (run_dir / LOCK_NAME).write_text("12345")  # a lock file no one holds (its training ended)
    assert main(["train", *TINY, "--run-dir", str(run_dir)]) == 2
    assert "already holds the checkpoint of run abc" in capsys.readouterr().err
