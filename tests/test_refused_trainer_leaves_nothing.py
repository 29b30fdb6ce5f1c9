"""A trainer refused its run folder leaves nothing of its own behind (files/concurrency tester: a second trainer
built for one run_dir was refused at run(), but its store row stayed "idle" for ever and the folder's config.json
became its configuration beside the first run's checkpoint), and odd run-folder shapes are refused at construction
with the path named (a run_dir that is a file; a checkpoint.pt that is a folder, which with overwrite trained a
whole epoch before failing)."""
import json

import pytest

from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig, Trainer, load_checkpoint
from snnlab.training.run_folder import RunFolderBusy, RunFolderTaken, check_run_folder

TINY = dict(hidden=[8], num_steps=5, batch_size=16, epochs=1, max_batches_per_epoch=2, eval_max_batches=1,
            device="cpu")


def rows(store: RunStore) -> dict:
    return {r.name: (r.status, r.message if isinstance(r.message, str) else None)
            for r in store.list_runs().itertuples()}


def test_a_trainer_refused_at_run_leaves_the_folder_as_it_was_and_its_row_failed(tmp_path):
    store, run = RunStore(tmp_path / "s.sqlite"), tmp_path / "run"
    a = Trainer(ExperimentConfig(**TINY), run, store, progress=False, name="A")
    b = Trainer(ExperimentConfig(**{**TINY, "hidden": [12]}), run, store, progress=False, name="B")
    a.run()
    with pytest.raises(FileExistsError, match="now holds another run's checkpoint") as info:
        b.run()
    assert b.state == "idle"  # the trainer itself is unchanged
    assert json.loads((run / "config.json").read_text())["hidden"] == [8]  # A's, beside A's checkpoint
    assert load_checkpoint(run / "checkpoint.pt")["run_id"] == a.run_id
    status, message = rows(store)["B"]
    assert status == "failed" and "not started" in message and "now holds another run's checkpoint" in message
    assert rows(store)["A"] == ("finished", None)
    assert isinstance(info.value, RunFolderTaken) and info.value.run_id == a.run_id


def test_a_trainer_refused_while_another_trains_can_run_later(tmp_path):
    store, run = RunStore(tmp_path / "s.sqlite"), tmp_path / "run"
    a = Trainer(ExperimentConfig(**TINY), run, store, progress=False, name="A")
    b = Trainer(ExperimentConfig(**{**TINY, "seed": 3}), run, store, progress=False, name="B", overwrite=True)
    seen = []

    def on_step(event):
        if event.kind == "step" and not seen:
            with pytest.raises(RunFolderBusy, match="in use by another training") as info:
                b.start()
            seen.append((getattr(info.value, "holder", ""), rows(store)["B"]))

    a.events.subscribe(on_step)
    a.run()
    holder, (status, message) = seen[0]
    assert status == "failed" and "in use by another training" in message and holder.isdigit()
    b.run()  # asked to replace A's checkpoint: it trains now, and its row says so
    assert rows(store)["B"] == ("finished", None) and load_checkpoint(run / "checkpoint.pt")["run_id"] == b.run_id
    assert json.loads((run / "config.json").read_text())["seed"] == 3


def test_an_older_trainer_refused_leaves_the_row_of_its_run_alone(tmp_path):
    store, run = RunStore(tmp_path / "s.sqlite"), tmp_path / "run"
    old = Trainer(ExperimentConfig(**{**TINY, "epochs": 2}), run, store, progress=False)
    old.events.subscribe(lambda e: old.stop() if e.kind == "epoch" else None)
    old.run()
    Trainer.resume_from(run, store=store, progress=False).run()
    with pytest.raises(RunFolderTaken, match="a later save of this run's checkpoint"):
        old.run()
    assert store.get_run(old.run_id)["status"] == "finished"  # the run finished by the resume: not marked failed


def test_a_run_dir_that_is_a_file_is_refused_naming_it(tmp_path):
    (tmp_path / "afile").write_text("hi")
    store = RunStore(tmp_path / "s.sqlite")
    with pytest.raises(NotADirectoryError, match=r"run_dir '.*afile' is a file, not a folder"):
        Trainer(ExperimentConfig(**TINY), tmp_path / "afile", store, progress=False)
    with pytest.raises(NotADirectoryError, match=r"the path '.*afile' is a file"):
        Trainer(ExperimentConfig(**TINY), tmp_path / "afile" / "run", store, progress=False)
    assert len(store.list_runs()) == 0 and (tmp_path / "afile").read_text() == "hi"


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_checkpoint_that_is_a_folder_is_refused_before_training(tmp_path, overwrite):
    (tmp_path / "checkpoint.pt").mkdir()
    store = RunStore(tmp_path / "s.sqlite")
    with pytest.raises(IsADirectoryError, match=r"'.*checkpoint\.pt' is a folder, but a run keeps its checkpoint"):
        Trainer(ExperimentConfig(**TINY), tmp_path, store, progress=False, overwrite=overwrite)
    assert len(store.list_runs()) == 0 and not (tmp_path / "config.json").exists()


def test_check_run_folder_accepts_new_and_ordinary_folders(tmp_path):
    check_run_folder(tmp_path)
    check_run_folder(tmp_path / "not" / "yet")
    (tmp_path / "config.json").mkdir()
    with pytest.raises(IsADirectoryError, match="config.json"):
        check_run_folder(tmp_path, who="sweep")
