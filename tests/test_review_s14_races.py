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


def test_a_failed_row_a_worker_returned_leaves_another_live_processs_run_as_it_is(tmp_path):
    """Before: the sweep's end-of-run cleanup marked a run "failed" that the store showed "running" (the same run
    resumed and training in another process), because its own worker returned a failed row for it."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from snnlab.experiments import RunStore, sweep
    from snnlab.training import ExperimentConfig

    store_path = tmp_path / "runs.sqlite"
    cfg = ExperimentConfig(dataset="digits", hidden=[16], epochs=1, num_steps=8, batch_size=32,
                           max_batches_per_epoch=2, eval_max_batches=1)
    store = RunStore(store_path)
    live = store.create_run(cfg.to_dict(), run_id="live0123")
    store.set_status(live, "running")  # trained by another process

    class Returning(ThreadPoolExecutor):
        def submit(self, fn, *args, **kwargs):
            fut = Future()
            fut.set_result({"run_id": live, "label": "x", "status": "failed", "error": "OSError: its own failure"})
            return fut

    with Returning(1) as pool:
        result = sweep(cfg, {"seed": [0]}, executor=pool, store_path=store_path, progress=False)
    assert result.table["status"].tolist() == ["failed"]
    assert RunStore(store_path).get_run(live)["status"] == "running"
