"""Review of the checkpoint file errors and the CLI's run-folder lock probe (session 14).

Before: a legacy-format (non-zip) checkpoint read with ``mmap=True`` (as ``snnlab train --run-dir``, ``runs show``
and ``check_checkpoint_run`` read it) was called "not a snnlab checkpoint"; a save that failed inside the caller's
``except OSError:`` block was reported as that OSError (``FileNotFoundError ... writing checkpoint.pt`` for a
pickling error); a temporary file that could not be created (read-only folder, no inode left) was named instead of
the checkpoint; ``snnlab train --run-dir D`` with a lock file it could not open (a read-only folder) failed on the
probe with the raw ``OSError`` instead of saying what D holds.
"""
import builtins
import errno
import os
import pickle

import pytest
import torch

import snnlab.training.run_folder as run_folder
from snnlab.cli import main
from snnlab.training import CheckpointError, load_checkpoint, save_checkpoint
from snnlab.training.checkpoint import check_checkpoint_run, encode_history

TINY = ["--hidden", "16", "--epochs", "1", "--num-steps", "8", "--batch-size", "32", "--max-batches-per-epoch", "2",
        "--eval-max-batches", "1", "--quiet", "--threads", "1", "--no-store"]


def test_a_legacy_format_checkpoint_loads_mapped_or_not(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"run_id": "abc", "step": 3, "w": torch.arange(4.0), "history_json": encode_history([{"loss": 0.5}])},
               path, _use_new_zipfile_serialization=False)
    for mmap in (False, True):
        ck = load_checkpoint(path, mmap=mmap)
        assert ck["step"] == 3 and torch.equal(ck["w"], torch.arange(4.0)) and ck["history"] == [{"loss": 0.5}]
    assert check_checkpoint_run(path, "abc")["step"] == 3


def test_a_truncated_legacy_checkpoint_is_not_called_a_foreign_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"w": torch.arange(1000.0)}, path, _use_new_zipfile_serialization=False)
    path.write_bytes(path.read_bytes()[:300])
    for mmap in (False, True):
        with pytest.raises(CheckpointError, match=r"is unreadable \(truncated, corrupt, or not written by snnlab\)"):
            load_checkpoint(path, mmap=mmap)


def test_a_failed_save_inside_the_callers_os_error_handler_is_raised_as_it_was(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    try:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "data/train.bin")
    except OSError:  # e.g. a save of what is there when the data failed
        with pytest.raises((pickle.PicklingError, AttributeError, TypeError)) as info:
            save_checkpoint(path, {"step": 2, "bad": lambda: 0})
    assert not isinstance(info.value, OSError) and "writing" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"] and load_checkpoint(path)["step"] == 1


def test_a_full_disk_inside_the_callers_os_error_handler_is_still_named(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    try:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT))
    except OSError:
        with pytest.raises(OSError, match="No space left on device writing .*checkpoint.pt; the previous") as info:
            save_checkpoint(path, {"step": 2})
    assert info.value.errno == errno.ENOSPC


def test_a_temporary_file_that_cannot_be_created_names_the_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    real_open = os.open

    def read_only(name, flags, *args):
        if str(name).endswith(".tmp"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(name))
        return real_open(name, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(OSError) as info:
        save_checkpoint(path, {"step": 2})
    assert info.value.errno == errno.EROFS and ".tmp" not in str(info.value)
    assert str(info.value).endswith(f"Read-only file system writing {path}; the previous checkpoint is kept")
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1


def test_cli_probe_of_a_lock_file_it_cannot_open_says_what_the_folder_holds(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    save_checkpoint(run_dir / "checkpoint.pt", {"run_id": "abc", "step": 7})
    (run_dir / run_folder.LOCK_NAME).write_text("12345")
    real_open = builtins.open

    def read_only(file, mode="r", *args, **kwargs):
        if str(file).endswith(run_folder.LOCK_NAME) and any(c in mode for c in "wa+"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(run_folder, "open", read_only, raising=False)
    assert main(["train", *TINY, "--run-dir", str(run_dir)]) == 2
    assert "already holds the checkpoint of run abc (stopped after 7 steps)" in capsys.readouterr().err


def test_cli_train_names_a_folder_named_checkpoint_pt_before_reading_anything(tmp_path, capsys):
    """A folder where the checkpoint file belongs is refused up front (it read as 'no checkpoint.pt in folder')."""
    from snnlab import cli
    (tmp_path / "checkpoint.pt").mkdir()
    code = cli.main(["train", "--run-dir", str(tmp_path), "--no-store", "--quiet", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code != 0 and "--run-dir" in err and "checkpoint.pt" in err and "is a folder" in err, err
    assert "no checkpoint.pt in folder" not in err


def test_cli_words_a_folder_another_run_saved_into_meanwhile_with_its_flags(tmp_path, capsys, monkeypatch):
    """Trainer's RunFolderTaken (another run saved into the folder after the CLI's checks) gets --resume/--overwrite."""
    from snnlab import cli
    from snnlab.training import Trainer
    from snnlab.training.run_folder import RunFolderTaken

    def taken(self, *args, **kwargs):
        raise RunFolderTaken("run_dir x now holds another run's checkpoint; resume it (Trainer.resume_from)", "r1")

    monkeypatch.setattr(Trainer, "_claim_run_folder", taken)
    code = cli.main(["train", "--run-dir", str(tmp_path / "run"), "--no-store", "--quiet", "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "RunFolderTaken" in err and "--resume continues" in err and "--overwrite" in err, err
