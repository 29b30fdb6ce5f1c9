"""A checkpoint's history is one JSON text, not a dict per optimiser step (probe: saves took 8 s and loads 10 s with
200k and 100k step records, as the weights-only unpickler is slow on many small dicts, and a resume loaded the file
2-3 times). The round trip must stay exact, earlier versions' files (a list of dicts) must still resume, and the
readers of the metadata only must not decode the history at all."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from snnlab.training import CheckpointError, ExperimentConfig, Trainer, load_checkpoint, save_checkpoint
from snnlab.training.checkpoint import HISTORY_KEY, check_checkpoint_run, decode_history, encode_history

TINY = dict(hidden=[8], num_steps=5, batch_size=32, epochs=1, max_batches_per_epoch=2, eval_max_batches=1)


def _same(a, b) -> bool:
    """Equal values of equal types, NaN equal to NaN and -0.0 told from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


RECORDS = [
    {"kind": "step", "epoch": 0, "step": 1, "batch": 0, "loss": float("nan"), "accuracy": float("inf"),
     "spikes_per_sample": float("-inf"), "lr": 1e-3, "time": 1767225600.123456789, "zero": -0.0},
    {"kind": "evaluation", "epoch": 0, "step": 2**40 + 1, "phase": "rounded", "n_samples": 10**20,
     "spikes_per_layer": {"h1": 0.1 + 0.2, "h2": 5e-324}, "note": "é \"quoted\" \n line", "flag": True,
     "none": None, "nested": [[1, 2.5], {"a": [None, False]}], "tiny": 1.7976931348623157e308},
]


def test_encode_decode_round_trip_is_exact():
    text = encode_history(RECORDS)
    assert isinstance(text, str)
    back = decode_history(text)
    assert _same(back, RECORDS)  # ints stay ints (big ones too), every float bit, NaN/inf, strings, nesting
    assert type(back[1]["step"]) is int and type(back[1]["flag"]) is bool


def test_numpy_scalars_become_plain_numbers_and_other_objects_are_refused():
    back = decode_history(encode_history([{"a": np.float32(0.5), "b": np.int64(3), "c": np.bool_(True),
                                           "d": np.float64("nan")}]))
    assert type(back[0]["a"]) is float and back[0]["a"] == 0.5 and type(back[0]["b"]) is int and back[0]["b"] == 3
    assert back[0]["c"] is True and math.isnan(back[0]["d"])
    # a callback's tensor or array (saved as such before histories were JSON) becomes numbers, not a failed save
    back = decode_history(encode_history([{"loss": torch.tensor(0.5), "rates": torch.tensor([0.25, 1.0]),
                                           "counts": np.array([[1, 2]])}]))
    assert back == [{"loss": 0.5, "rates": [0.25, 1.0], "counts": [[1, 2]]}]
    with pytest.raises(TypeError, match=r"encode_history: a history record holds a object"):
        encode_history([{"loss": object()}])
    with pytest.raises(TypeError, match=r"encode_history: .*keys must be"):
        encode_history([{(1, 2): 0.5}])
    with pytest.raises(TypeError, match="encode_history expects a list of records"):
        encode_history({"kind": "step"})
    with pytest.raises(TypeError, match="decode_history expects"):
        decode_history([{"kind": "step"}])
    with pytest.raises(ValueError, match="decode_history: the history's JSON holds a dict"):
        decode_history('{"kind": "step"}')


def test_a_trainers_checkpoint_file_holds_the_history_as_one_string(tmp_path):
    tr = Trainer(ExperimentConfig(**TINY), run_dir=tmp_path, progress=False)
    tr.run()
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert "history" not in raw and isinstance(raw[HISTORY_KEY], str)
    loaded = load_checkpoint(tmp_path)  # decoded by default: readers see the list of records, as before
    assert HISTORY_KEY not in loaded and _same(loaded["history"], list(tr.history)) and len(loaded["history"]) > 2
    assert list(loaded).index("history") == list(raw).index(HISTORY_KEY)  # in the same place among the keys
    meta = load_checkpoint(tmp_path, history=False)
    assert "history" not in meta and meta[HISTORY_KEY] == raw[HISTORY_KEY]


def test_a_checkpoint_of_the_old_list_form_still_loads_and_resumes(tmp_path):
    """Earlier versions stored ``"history"`` as a list of dicts: such a file resumes with its history."""
    cfg = ExperimentConfig(**TINY)
    Trainer(cfg, run_dir=tmp_path / "new", progress=False).run()
    ck = load_checkpoint(tmp_path / "new")
    old = {k: v for k, v in ck.items()}
    assert isinstance(old["history"], list)
    (tmp_path / "old").mkdir()
    torch.save(old, tmp_path / "old" / "checkpoint.pt")  # written as the old code wrote it: no history_json
    assert HISTORY_KEY not in torch.load(tmp_path / "old" / "checkpoint.pt", weights_only=True)
    assert _same(load_checkpoint(tmp_path / "old")["history"], ck["history"])
    assert load_checkpoint(tmp_path / "old", history=False)["history"] == ck["history"]  # returned as stored
    resumed = Trainer(cfg.copy(epochs=2), resume=tmp_path / "old", progress=False)
    assert _same(list(resumed.history), ck["history"])
    resumed.run()
    assert resumed.epoch == 2 and len(resumed.history) > len(ck["history"])
    assert resumed.history[: len(ck["history"])] == ck["history"]  # the old records kept, the new ones after them
    raw = torch.load(tmp_path / "old" / "checkpoint.pt", weights_only=True)
    assert "history" not in raw and _same(decode_history(raw[HISTORY_KEY]), list(resumed.history))  # new form now


def test_resume_restores_special_values_in_the_history_exactly(tmp_path):
    cfg = ExperimentConfig(**TINY)
    tr = Trainer(cfg, run_dir=tmp_path, progress=False)
    tr.run()
    tr.history.extend(RECORDS)
    tr.save_checkpoint(finished=True)
    resumed = Trainer(cfg, resume=tmp_path, progress=False)
    assert _same(list(resumed.history), list(tr.history))


def _with_broken_history(path) -> dict:
    """The checkpoint at ``path`` written again with a history that cannot be decoded."""
    raw = torch.load(path, weights_only=True)
    raw[HISTORY_KEY] = "[{not json"
    torch.save(raw, path)
    return raw


def test_readers_of_the_metadata_only_do_not_decode_the_history(tmp_path, capsys):
    from snnlab.cli import main
    from snnlab.experiments.sweeps import _plan

    cfg = ExperimentConfig(**TINY)
    tr = Trainer(cfg, run_dir=tmp_path, progress=False)
    tr.run()
    path = tmp_path / "checkpoint.pt"
    raw = _with_broken_history(path)
    with pytest.raises(CheckpointError, match=rf"checkpoint .*checkpoint.pt: its history \({HISTORY_KEY}\) is "
                                              "unreadable: decode_history: the history is not valid JSON"):
        load_checkpoint(path)  # decoding it is what fails ...
    meta = load_checkpoint(path, mmap=True, history=False)  # ... which none of these readers does
    assert meta["run_id"] == tr.run_id and meta[HISTORY_KEY] == "[{not json"
    assert check_checkpoint_run(tmp_path, tr.run_id)["step"] == raw["step"]
    action, run_id, row, ck = _plan(cfg, tmp_path, [])  # a sweep's rerun of this grid point reuses it
    assert (action, run_id, row["status"]) == ("reuse", tr.run_id, "finished") and ck[HISTORY_KEY] == "[{not json"
    assert main(["train", "--run-dir", str(tmp_path), "--no-store", "--quiet"]) != 0
    assert f"already holds the checkpoint of run {tr.run_id} (finished)" in capsys.readouterr().err
    tr._save_id = raw["save_id"]  # the trainer's own last save: its check before training reads the save id only
    tr._refuse_checkpoint_saved_since()
    tr._save_id = "another"
    with pytest.raises(FileExistsError, match="a later save of this run's checkpoint"):
        tr._refuse_checkpoint_saved_since()


def test_cli_resume_reads_the_metadata_without_decoding_the_history(tmp_path, capsys):
    """`snnlab train --resume` checks the flags against the checkpoint's metadata (history undecoded) before the
    trainer loads it: a refused flag is reported even where the history is damaged."""
    from snnlab.cli import main

    Trainer(ExperimentConfig(**TINY), run_dir=tmp_path, progress=False).run()
    _with_broken_history(tmp_path / "checkpoint.pt")
    assert main(["train", "--resume", "--run-dir", str(tmp_path), "--hidden", "16", "--no-store", "--quiet"]) != 0
    assert "cannot resume with --hidden 16 (the checkpoint's: --hidden 8)" in capsys.readouterr().err
    assert main(["train", "--resume", "--run-dir", str(tmp_path), "--epochs", "2", "--no-store", "--quiet"]) != 0
    assert "its history (history_json) is unreadable" in capsys.readouterr().err  # the trainer decodes it to resume


def test_save_checkpoint_of_a_loaded_checkpoint_keeps_working(tmp_path):
    """load_checkpoint then save_checkpoint (as scripts that mend a checkpoint do) gives a file that resumes."""
    cfg = ExperimentConfig(**TINY)
    Trainer(cfg, run_dir=tmp_path, progress=False).run()
    ck = load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "checkpoint.pt", ck)
    assert _same(list(Trainer(cfg, resume=tmp_path, progress=False).history), ck["history"])

