"""A run's store row appears when the run starts, the run folder is locked once, its file names live in one place,
and a sweep rerun with other threads says so (run-folder leftovers of session 15: a Trainer built and never run left
an "idle" row for ever; a refused trainer's row read "idle", then "failed"; ``snnlab train --run-dir`` took the
folder's lock up to four times, and a probe holding it for a moment could refuse another process's claim; a sweep
rerun with another --threads reused results silently)."""
import ast
import fcntl
import inspect
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import snnlab.training.run_folder as run_folder
from snnlab.cli import main
from snnlab.experiments import RunStore, sweep
from snnlab.experiments import run_files
from snnlab.training import ExperimentConfig, Trainer, load_checkpoint
from snnlab.training.run_folder import RunFolderBusy, run_folder_lock

TINY = dict(hidden=[8], num_steps=5, batch_size=16, epochs=1, max_batches_per_epoch=2, eval_max_batches=1,
            device="cpu")
TRAIN = ["train", "--hidden", "8", "--epochs", "1", "--num-steps", "5", "--batch-size", "16",
         "--max-batches-per-epoch", "2", "--eval-max-batches", "1", "--quiet", "--no-store"]


class StatusLog(RunStore):
    """A RunStore that records every status written, in order, per run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.written: list[tuple[str, str]] = []

    def create_run(self, config, name=None, run_id=None):
        run_id = super().create_run(config, name, run_id=run_id)
        self.written.append((run_id, "created"))
        return run_id

    def set_status(self, run_id, status, message=None, only_if=None):
        self.written.append((run_id, status))
        return super().set_status(run_id, status, message, **({} if only_if is None else {"only_if": only_if}))

    def of(self, run_id: str) -> list[str]:
        return [status for run, status in self.written if run == run_id]


# ------------------------------------------------------------------------------ 2. no row before the run starts
def test_a_trainer_built_and_never_run_leaves_no_row_and_no_folder(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    trainer = Trainer(ExperimentConfig(**TINY), tmp_path / "run", store, progress=False, name="never")
    assert store.list_runs().empty and not (tmp_path / "run").exists()
    del trainer
    assert store.list_runs().empty


def test_the_row_appears_when_the_run_starts_and_never_reads_idle(tmp_path):
    store = StatusLog(tmp_path / "s.sqlite")
    trainer = Trainer(ExperimentConfig(**TINY), tmp_path / "run", store, progress=False, name="A")
    seen = []
    trainer.events.subscribe(lambda e: seen.append(store.get_run(trainer.run_id)["status"]), kinds=["step"])
    trainer.run()
    assert seen[0] == "running" and "idle" not in store.of(trainer.run_id)
    row = store.get_run(trainer.run_id)
    assert (row["name"], row["status"], row["config"]["hidden"]) == ("A", "finished", [8])
    assert trainer.registered_run


def test_a_resumed_run_the_store_never_saw_is_registered_when_it_starts(tmp_path):
    first = Trainer(ExperimentConfig(**{**TINY, "epochs": 2}), tmp_path / "run", progress=False, name="mine")
    first.events.subscribe(lambda e: first.stop() if e.kind == "epoch" else None)
    first.run()
    store = StatusLog(tmp_path / "s.sqlite")
    resumed = Trainer.resume_from(tmp_path / "run", store=store, progress=False)
    assert store.list_runs().empty and resumed.run_id == first.run_id
    resumed.run()
    row = store.get_run(first.run_id)
    assert (row["name"], row["status"]) == ("mine", "finished") and "idle" not in store.of(first.run_id)


# ------------------------------------------------------------------------------ 3. the refused trainer's row
def test_a_refused_new_run_gets_one_failed_row_never_idle_first(tmp_path):
    store = StatusLog(tmp_path / "s.sqlite")
    trainer = Trainer(ExperimentConfig(**TINY), tmp_path / "run", store, progress=False, name="B")
    with run_folder_lock(tmp_path / "run"), pytest.raises(RunFolderBusy):
        trainer.run()
    assert store.of(trainer.run_id) == ["created", "failed"]
    row = store.get_run(trainer.run_id)
    assert row["status"] == "failed" and row["message"].startswith("not started: RunFolderBusy: run_dir")


def test_a_refused_resume_of_a_run_the_store_never_saw_writes_no_row(tmp_path):
    """The run's id is its checkpoint's: the trainer holding the folder (another process resuming it) registers and
    writes that row; the refused one registering it "failed" meanwhile showed the run failed while it trained."""
    first = Trainer(ExperimentConfig(**{**TINY, "epochs": 2}), tmp_path / "run", progress=False)
    first.events.subscribe(lambda e: first.stop() if e.kind == "epoch" else None)
    first.run()
    store = StatusLog(tmp_path / "s.sqlite")
    refused = Trainer.resume_from(tmp_path / "run", store=store, progress=False)
    with run_folder_lock(tmp_path / "run"), pytest.raises(RunFolderBusy):
        refused.run()
    assert store.list_runs().empty and store.written == []
    refused.run()  # the folder is free again: it registers and trains
    assert store.get_run(first.run_id)["status"] == "finished"


# ------------------------------------------------------------------------------ 1. the lock taken once
def _count_exclusive_locks(monkeypatch) -> list[int]:
    taken: list[int] = []

    class Counting:
        LOCK_EX, LOCK_NB, LOCK_UN, LOCK_SH = fcntl.LOCK_EX, fcntl.LOCK_NB, fcntl.LOCK_UN, fcntl.LOCK_SH

        @staticmethod
        def flock(fd, op):
            if op & fcntl.LOCK_EX:
                taken.append(fd)
            return fcntl.flock(fd, op)

    monkeypatch.setattr(run_folder, "fcntl", Counting)
    return taken


def test_cli_train_takes_the_run_folders_lock_once_and_probes_only_an_existing_one(tmp_path, monkeypatch):
    taken = _count_exclusive_locks(monkeypatch)
    run = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "2", "--run-dir", str(run)]) == 0
    assert len(taken) == 1  # (was 2: the trainer's construction, then its run)
    taken.clear()
    ck = load_checkpoint(run / "checkpoint.pt")
    assert main([*TRAIN, "--epochs", "3", "--resume", "--run-dir", str(run)]) == 0
    assert len(taken) == 3  # the CLI's probe, the trainer's probe, its run (was 4: also the trainer's construction)
    assert load_checkpoint(run / "checkpoint.pt")["run_id"] == ck["run_id"]


def test_the_probe_refuses_a_held_folder_and_leaves_a_free_one_free(tmp_path):
    (tmp_path / run_folder.LOCK_NAME).write_text("")
    run_folder.refuse_busy_run_folder(tmp_path)
    with run_folder_lock(tmp_path):
        with pytest.raises(RunFolderBusy, match="in use by another training"):
            run_folder.refuse_busy_run_folder(tmp_path)
    run_folder.refuse_busy_run_folder(tmp_path)


# ------------------------------------------------------------------------------ 4. the file names in one place
def _literals(module) -> set[str]:
    """The string constants of ``module``'s code, without its docstrings."""
    tree = ast.parse(inspect.getsource(module))
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs}


def test_the_run_folders_file_names_are_named_once_in_run_folder():
    from snnlab.training import resume, trainer
    from snnlab.training.run_folder import CHECKPOINT_NAME, CONFIG_NAME, CONFIG_TMP_NAME

    assert resume.CHECKPOINT_NAME is CHECKPOINT_NAME  # (still importable where it was)
    assert (CHECKPOINT_NAME, CONFIG_NAME, CONFIG_TMP_NAME) == ("checkpoint.pt", "config.json", ".config.json.tmp")
    for module in (run_files, resume, trainer):
        assert not _literals(module) & {"checkpoint.pt", "config.json", ".config.json.tmp"}, module.__name__
    assert all(run_files.run_folder_file(n) for n in (CHECKPOINT_NAME, CONFIG_NAME, CONFIG_TMP_NAME))


# ------------------------------------------------------------------------------ 5. a sweep rerun with other threads
def test_a_sweep_rerun_with_other_threads_warns_that_its_reused_results_differ(tmp_path):
    cfg = ExperimentConfig(**TINY)
    with ThreadPoolExecutor(1) as pool:
        first = sweep(cfg, {"seed": [0, 1]}, executor=pool, run_root=tmp_path / "runs", progress=False, threads=1)
    assert first.table["status"].tolist() == ["finished", "finished"]
    with warnings.catch_warnings(record=True) as same:
        warnings.simplefilter("always")
        with ThreadPoolExecutor(1) as pool:
            sweep(cfg, {"seed": [0, 1]}, executor=pool, run_root=tmp_path / "runs", progress=False, threads=1)
    assert not [w for w in same if "thread" in str(w.message)]
    with pytest.warns(RuntimeWarning, match=r"2 grid point\(s\) in run_root .* trained with 1 torch thread\(s\) per "
                                            r"run, this sweep with 2") as said:
        with ThreadPoolExecutor(1) as pool:
            again = sweep(cfg, {"seed": [0, 1]}, executor=pool, run_root=tmp_path / "runs", progress=False, threads=2)
    assert again.reused == (0, 1) and "--threads 1" in str(said[0].message)


def test_a_run_refused_after_its_row_was_registered_ends_failed_not_created(tmp_path):
    # config.json cannot be written (as on a full disk): the claim fails after the row was registered at start
    store = RunStore(tmp_path / "s.sqlite")
    trainer = Trainer(ExperimentConfig(**TINY), tmp_path / "run", store, progress=False, name="A")
    (tmp_path / "run" / ".config.json.tmp").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        trainer.run()
    row = store.get_run(trainer.run_id)
    assert row["status"] == "failed" and row["message"].startswith("not started: IsADirectoryError")
