"""snnlab run from shell scripts on a cluster: closed pipes, a full disk, non-UTF-8 and "~" paths, SIGHUP, XDG."""
from __future__ import annotations

import errno
import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from snnlab import cli
from snnlab.experiments import RunStore, default_store_path
from snnlab.training import ExperimentConfig, Trainer

TINY = dict(dataset="digits", epochs=1, hidden=[8], max_batches_per_epoch=2, eval_max_batches=1)
TINY_FLAGS = ["--dataset", "digits", "--epochs", "1", "--hidden", "8", "--max-batches-per-epoch", "2",
              "--eval-max-batches", "1", "--threads", "1", "--quiet"]


class _ClosedPipe(io.StringIO):
    """A stream whose reader has gone: every write and flush raises BrokenPipeError (no file descriptor)."""

    def write(self, text):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def fileno(self):
        raise io.UnsupportedOperation("fileno")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("s16") / "run"
    Trainer(ExperimentConfig(**TINY), run_dir=run_dir, progress=False).run()
    return run_dir


# ---------------------------------------------------------------- 1. a progress bar whose reader has gone
def test_training_finishes_when_the_progress_bar_cannot_be_written(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "stderr", _ClosedPipe())
    trainer = Trainer(ExperimentConfig(**TINY), run_dir=tmp_path / "r", store=RunStore(tmp_path / "s.sqlite"),
                      progress=True)
    result = trainer.run(raise_errors=False)
    assert trainer.state == "finished", trainer.error
    assert result is not None and (tmp_path / "r" / "checkpoint.pt").is_file()
    assert trainer.store.get_run(trainer.run_id)["status"] == "finished"


def test_sweep_finishes_when_its_progress_bar_cannot_be_written(monkeypatch):
    from snnlab.experiments import sweep

    monkeypatch.setattr(sys, "stderr", _ClosedPipe())
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = sweep(ExperimentConfig(**TINY), {"seed": [1]}, executor=pool, progress=True)
    assert result.table["status"].tolist() == ["finished"]


def test_quiet_stream_goes_quiet_after_a_closed_pipe_and_raises_other_errors():
    from snnlab.training.progress import QuietStream

    calls = []

    class Once(io.StringIO):
        def write(self, text):
            calls.append(text)
            raise OSError(errno.EPIPE, "Broken pipe")

    out = QuietStream(Once())
    assert out.write("a") == 1 and out.gone and out.write("b") == 1 and calls == ["a"]

    class Full(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        QuietStream(Full()).write("x")


# ---------------------------------------------------------------- 2. stdout closed: one rule for every command
def test_closed_stdout_ends_any_command_quietly_with_status_0(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert cli.main(["info"]) == 0
    assert "error" not in capsys.readouterr().err


def test_closed_pipe_in_a_subprocess_exits_0_without_a_message():
    proc = subprocess.Popen([sys.executable, "-m", "snnlab.cli", "info"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader has gone before the first line (`| true`)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert err.strip() == ""


# ---------------------------------------------------------------- 3. export onto a full disk
def _full_disk(monkeypatch):
    """nir.write into a file writes part of it, then the disk is full; the data of any file refuses to reach the disk
    at its fsync."""
    import nir

    real = nir.write

    def write(target, graph, *args, **kwargs):
        if isinstance(target, (str, os.PathLike)):
            Path(target).write_bytes(b"\x89HDF partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(target, graph, *args, **kwargs)

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nir, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("existing", [False, True])
def test_export_onto_a_full_disk_leaves_no_partial_file_and_keeps_the_old_one(monkeypatch, capsys, tmp_path,
                                                                              trained_run, existing):
    pytest.importorskip("nir")
    target = tmp_path / "a.nir"
    if existing:
        target.write_bytes(b"the good export")
    _full_disk(monkeypatch)
    assert cli.main(["export", str(trained_run), "--nir", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(target) in err and "no space left on device" in err
    if existing:
        assert target.read_bytes() == b"the good export"
    assert sorted(p.name for p in tmp_path.iterdir()) == (["a.nir"] if existing else [])


def test_export_writes_a_readable_file(tmp_path, trained_run, capsys):
    nir = pytest.importorskip("nir")
    target = tmp_path / "a.nir"
    assert cli.main(["export", str(trained_run), "--nir", str(target)]) == 0
    assert "output" in nir.read(str(target)).nodes and sorted(p.name for p in tmp_path.iterdir()) == ["a.nir"]


# ---------------------------------------------------------------- 4. a store path that is not valid UTF-8
def test_runs_reads_a_store_in_a_folder_named_in_latin1_bytes(tmp_path, capsys):
    folder = tmp_path / os.fsdecode(b"r\xe9sultats")
    folder.mkdir()
    store = RunStore(folder / "s.sqlite")
    run = store.create_run({}, name="latin1")
    store.set_checkpoint(run, folder / "run" / "checkpoint.pt")
    store.set_status(run, "failed", f"no file in {folder}")
    store.close()
    assert cli.main(["runs", "--store", str(folder / "s.sqlite"), "--wide"]) == 0
    assert run in capsys.readouterr().out
    assert cli.main(["runs", "show", run, "--store", str(folder / "s.sqlite")]) == 0
    read = RunStore(folder / "s.sqlite", read_only=True)
    assert read.get_run(run)["checkpoint"] == str(folder / "run" / "checkpoint.pt")
    assert read.list_runs()["checkpoint"].tolist() == [str(folder / "run" / "checkpoint.pt")]
    read.close()


# ---------------------------------------------------------------- 5. "~" in output paths
@pytest.fixture
def home(monkeypatch, tmp_path) -> Path:
    home = tmp_path / "home"
    (tmp_path / "cwd").mkdir()
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path / "cwd")
    return home


def test_tilde_in_store_and_run_folder_paths_is_the_home_folder(monkeypatch, home):
    monkeypatch.setenv("SNNLAB_STORE", "~/runs/store.sqlite")
    assert default_store_path() == home / "runs" / "store.sqlite"
    assert RunStore("~/other.sqlite").path == home / "other.sqlite"
    trainer = Trainer(ExperimentConfig(**TINY), run_dir="~/runs/a", progress=False)
    assert trainer.run_dir == home / "runs" / "a"
    assert os.listdir(".") == []


def test_cli_expands_tilde_after_equals_signs(home, capsys):
    assert cli.main(["train", *TINY_FLAGS, "--run-dir=~/runs/a", "--store=~/runs/s.sqlite"]) == 0
    assert (home / "runs" / "a" / "checkpoint.pt").is_file() and (home / "runs" / "s.sqlite").is_file()
    assert cli.main(["runs", "--store=~/runs/s.sqlite"]) == 0
    assert cli.main(["export", "~/runs/a", "--nir=~/a.nir"]) == (0 if _has_nir() else 1)
    assert os.listdir(".") == []


def _has_nir() -> bool:
    try:
        import nir  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------- 6. sweep --out and --run-root checks
def test_write_csv_leaves_no_temporary_file_when_it_fails(tmp_path):
    import pandas as pd

    from snnlab.experiments.sweeps import _write_csv

    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        _write_csv(tmp_path / "adir", pd.DataFrame({"a": [1]}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


def test_sweep_out_in_the_home_folder_fails_before_training_and_leaves_nothing(home, capsys):
    (home / "adir").mkdir()
    assert cli.main(["sweep", "--grid", "seed=1", *TINY_FLAGS, "--no-store", "--out=~/adir"]) == 1
    assert str(home / "adir") in capsys.readouterr().err
    assert sorted(os.listdir(home)) == ["adir"] and os.listdir(".") == []


def test_sweep_refuses_a_run_root_that_is_a_file_before_training(tmp_path):
    from snnlab.experiments import sweep

    (tmp_path / "f").write_text("not a folder")
    with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(ValueError, match="run_root .* is a file"):
        sweep(ExperimentConfig(**TINY), {"seed": [1, 2]}, executor=pool, run_root=tmp_path / "f", progress=False)


# ---------------------------------------------------------------- 7. SIGHUP stops like SIGTERM
def test_sighup_is_a_graceful_stop_unless_ignored(monkeypatch):
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # (the suite itself may run under nohup)
    try:
        assert signal.SIGHUP in cli._stopping_signals()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup: the run goes on
        assert signal.SIGHUP not in cli._stopping_signals()
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_sighup_during_train_checkpoints_and_records_stopped(tmp_path):
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "snnlab.cli", "train", "--dataset", "digits", "--epochs", "50",
                             "--hidden", "8", "--eval-max-batches", "1", "--threads", "1", "--quiet",
                             "--run-dir", str(tmp_path / "r"), "--store", str(store)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # (SIGHUP as a terminal leaves it, also when the suite runs under nohup)
                            preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        line = proc.stdout.readline()
        assert line.startswith("run "), line + proc.stderr.read()
        run_id = line.split()[1].rstrip(":")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a step has run: the store holds a metric row
            with sqlite3.connect(store) as con:
                if con.execute("SELECT count(*) FROM metrics").fetchone()[0]:
                    break
            time.sleep(0.1)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGHUP, err
    assert (tmp_path / "r" / "checkpoint.pt").is_file()
    assert RunStore(store, read_only=True).get_run(run_id)["status"] == "stopped"


# ---------------------------------------------------------------- 8. relative XDG folders are ignored
def test_relative_xdg_folders_are_ignored(monkeypatch, home):
    from snnlab.data.neuromorphic import roots
    from snnlab.kernels.c_build import cache_dir

    monkeypatch.delenv("SNNLAB_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "cache")
    assert cache_dir() == home / ".cache" / "snnlab"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg"))
    assert cache_dir() == home / "xdg" / "snnlab"
    monkeypatch.delenv("SNNLAB_SHARED_DATA", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", "data")
    monkeypatch.setattr(roots, "__file__", str(home / "site-packages" / "snnlab" / "data" / "neuromorphic" / "x.py"))
    assert roots.shared_data_root() == home / ".local" / "share" / "snnlab"


def test_export_writes_through_a_symlink_and_keeps_the_files_permissions(tmp_path):
    """(Attack review) ``_write_atomically`` replaced a symlinked --nir target by a new file (the link's target kept
    the old graph), and a file it replaced lost its permissions (the new one had the umask's)."""
    (tmp_path / "shared").mkdir()
    target = tmp_path / "shared" / "net.nir"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    link = tmp_path / "net.nir"
    link.symlink_to(target)
    old_umask = os.umask(0o077)
    try:
        cli._write_atomically(link, lambda f: f.write(b"new"), who="--nir")
    finally:
        os.umask(old_umask)
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["net.nir"]  # (no temporary file left)


def test_a_run_started_without_stderr_trains(monkeypatch):
    """(Attack review) Started with ``2>&-`` (or by pythonw) Python has no ``sys.stderr``: the progress bar's first
    write failed the run ("'NoneType' object has no attribute 'write'"). Now the bar is left out and the run trains."""
    monkeypatch.setattr(sys, "stderr", None)
    trainer = Trainer(ExperimentConfig(**TINY), progress=True)
    trainer.run(raise_errors=False)
    assert trainer.state == "finished", trainer.error
