"""A run's store record says which evaluation its summary is (``delays_rounded``) and how the run ran (``runtime``):
in its summary, in ``RunStore.summaries()`` (``runs compare``) and in ``snnlab train``'s end-of-run printout."""
import torch

import snnlab
from snnlab.cli import main
from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig, Trainer

TINY = dict(hidden=[16], num_steps=8, batch_size=32, epochs=1, max_batches_per_epoch=2, eval_max_batches=1)


def _runtime(device: str) -> dict:
    return {"device": device, "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
            "snnlab_version": snnlab.__version__}


def test_a_learned_delays_runs_summary_is_marked_rounded_and_says_how_it_ran(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    tr = Trainer(ExperimentConfig(**TINY, delays=True, max_delay=4, device="cpu"), store=store, progress=False)
    result = tr.run()
    summary = store.get_run(tr.run_id)["summary"]
    assert result["rounded"] is not None
    assert summary == {**result["rounded"], "delays_rounded": True, "runtime": _runtime("cpu")}
    row = store.summaries().iloc[0]
    assert row["delays_rounded"] == True  # noqa: E712 (a numpy bool)
    columns = ["runtime/device", "runtime/torch_threads", "runtime/torch_version", "runtime/snnlab_version"]
    assert row[columns].tolist() == ["cpu", float(torch.get_num_threads()), torch.__version__, snnlab.__version__]


def test_a_run_without_delays_has_no_rounded_marker_and_records_the_resolved_device(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    tr = Trainer(ExperimentConfig(**TINY, device="auto"), store=store, progress=False)
    result = tr.run()
    summary = store.get_run(tr.run_id)["summary"]
    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    assert result["rounded"] is None
    assert summary == {**result["final"], "runtime": _runtime(device)}  # "auto" resolved, no delays_rounded
    assert "delays_rounded" not in store.summaries().columns


def test_train_prints_both_evaluations_of_a_learned_delays_run_labelled(tmp_path, capsys):
    store = str(tmp_path / "s.sqlite")
    flags = ["--hidden", "16", "--epochs", "1", "--num-steps", "8", "--batch-size", "32", "--max-batches-per-epoch",
             "2", "--eval-max-batches", "1", "--device", "cpu", "--quiet", "--delays", "--max-delay", "4"]
    assert main(["train", *flags, "--store", store]) == 0
    out = capsys.readouterr().out
    learned = out.index("\ntest results with the learned (fractional) delays\n")
    rounded = out.index("\ntest results with integer (rounded) delays: the run's summary in the store "
                        "(delays_rounded)\n")
    assert learned < rounded
    summary = RunStore(store).summaries().iloc[0]
    accuracy = out[rounded:].split("accuracy", 1)[1].split()[0]
    assert accuracy == f"{summary['accuracy']:.4g}" and summary["delays_rounded"] == True  # noqa: E712
