"""One training at a time in a run folder (store probe: two trainers on one run_dir both finished, and one run's
checkpoint and config silently replaced the other's)."""
import subprocess
import sys
import textwrap

import pytest

from snnlab.training import ExperimentConfig, Trainer, load_checkpoint
from snnlab.training.run_folder import LOCK_NAME, RunFolderBusy, run_folder_lock

TINY = dict(hidden=[8], num_steps=5, batch_size=16, epochs=1, max_batches_per_epoch=2, eval_max_batches=1,
            device="cpu")


def test_a_second_trainer_is_refused_while_the_first_trains(tmp_path):
    first = Trainer(ExperimentConfig(**TINY), run_dir=tmp_path, progress=False)
    second = Trainer(ExperimentConfig(**TINY, seed=5), run_dir=tmp_path, progress=False)
    seen = []

    def on_step(event):
        if event.kind == "step" and not seen:  # while the first trains, the second tries
            with pytest.raises(RunFolderBusy, match="in use by another training"):
                second.run()
            seen.append(second.state)

    first.events.subscribe(on_step)
    first.run()
    assert seen == ["idle"] and first.state == "finished"  # refused before anything changed: it can run later
    assert load_checkpoint(tmp_path / "checkpoint.pt")["run_id"] == first.run_id


def test_a_trainer_built_into_a_folder_in_training_is_refused_before_it_writes_there(tmp_path):
    first = Trainer(ExperimentConfig(**TINY), run_dir=tmp_path, progress=False)
    refused = []

    def on_step(event):
        if event.kind == "step" and not refused:
            with pytest.raises(RunFolderBusy):
                Trainer(ExperimentConfig(**TINY, seed=5), run_dir=tmp_path, progress=False)
            refused.append(True)

    first.events.subscribe(on_step)
    first.run()
    assert refused and ExperimentConfig.from_json((tmp_path / "config.json").read_text()).seed == 0


def test_an_older_trainer_of_the_run_does_not_train_over_a_later_save(tmp_path):
    """Review: a trainer stopped after epoch 1 (kept by a dashboard or a notebook) ran again over the checkpoint a
    resumed trainer had finished, and the finished result was lost."""
    old = Trainer(ExperimentConfig(**{**TINY, "epochs": 2}), run_dir=tmp_path, progress=False)
    old.events.subscribe(lambda e: old.stop() if e.kind == "epoch" else None)
    old.run()
    Trainer.resume_from(tmp_path, progress=False).run()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["finished"]
    with pytest.raises(FileExistsError, match="a later save of this run's checkpoint"):
        old.run()
    assert old.state == "stopped" and load_checkpoint(tmp_path / "checkpoint.pt")["finished"]


def test_a_trainer_built_before_another_run_saved_there_is_refused(tmp_path):
    first = Trainer(ExperimentConfig(**TINY), run_dir=tmp_path, progress=False)
    second = Trainer(ExperimentConfig(**TINY, seed=5), run_dir=tmp_path, progress=False)  # (no checkpoint yet)
    first.run()
    with pytest.raises(FileExistsError, match=f"now holds another run's checkpoint \\(run {first.run_id}"):
        second.run()
    assert load_checkpoint(tmp_path / "checkpoint.pt")["run_id"] == first.run_id
    third = Trainer(ExperimentConfig(**TINY, seed=6), run_dir=tmp_path, progress=False, overwrite=True)
    third.run()  # asked to replace it
    assert load_checkpoint(tmp_path / "checkpoint.pt")["run_id"] == third.run_id


def test_a_trainer_runs_again_into_its_own_folder(tmp_path):
    tr = Trainer(ExperimentConfig(**{**TINY, "epochs": 2}), run_dir=tmp_path, progress=False)
    tr.events.subscribe(lambda e: tr.stop() if e.kind == "epoch" else None)
    tr.run()
    assert tr.state == "stopped"
    tr.run()  # its own checkpoint: continues
    assert tr.state == "finished"


def test_the_lock_holds_across_processes_and_goes_with_its_process(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from snnlab.training.run_folder import run_folder_lock
        with run_folder_lock({str(tmp_path)!r}):
            print("held", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderBusy, match=f"process {proc.pid}"):
            with run_folder_lock(tmp_path):
                pass
    finally:
        proc.kill()
        proc.wait()
    with run_folder_lock(tmp_path):  # a killed holder leaves no stale lock
        assert (tmp_path / LOCK_NAME).exists()


def test_a_file_system_without_locks_trains_unlocked_with_a_warning(tmp_path, monkeypatch):
    import errno

    from snnlab.training import run_folder

    def refuse(*args):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_folder.fcntl, "flock", refuse)
    with pytest.warns(RuntimeWarning, match="refuses locks"):
        with run_folder_lock(tmp_path):
            pass
