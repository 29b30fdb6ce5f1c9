"""Review of the run-folder probe and the store races of session 14 (attacking review G)."""
import pytest

from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.run_folder import RunFolderBusy, run_folder_lock

TINY = dict(dataset="digits", hidden=[16], epochs=1, num_steps=8, batch_size=32, max_batches_per_epoch=2,
            eval_max_batches=1)


@pytest.mark.parametrize("target", ["folder", "file"])
def test_resume_from_a_folder_another_training_holds_is_busy_before_data_is_built(tmp_path, monkeypatch, target):
    """Before: only a given run_dir was probed; ``Trainer.resume_from(folder)`` (run_dir from the checkpoint) read
    the checkpoint and built the data and the model, and only then did the lock refuse the folder."""
    folder = tmp_path / "run"
    Trainer(ExperimentConfig(**TINY), run_dir=folder, progress=False).run()
    built = []
    build = Trainer._build_data

    def counted(self):
        built.append(True)
        return build(self)

    monkeypatch.setattr(Trainer, "_build_data", counted)
    with run_folder_lock(folder):  # (another open of the lock file: refused as another process would be)
        with pytest.raises(RunFolderBusy, match="in use by another training"):
            Trainer.resume_from(folder if target == "folder" else folder / "checkpoint.pt", progress=False)
    assert not built
    resumed = Trainer.resume_from(folder, progress=False)  # free again: it resumes
    assert resumed.step > 0 and built
