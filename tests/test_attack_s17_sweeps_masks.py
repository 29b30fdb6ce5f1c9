"""Review of the index-folder adoption of sweeps (older run roots) and of ``ExperimentConfig.mask_at_inference``: the
warning about unused index folders shows a field the checkpoint leaves out at its default as that default (it said
``None``), and says why for a few folders only (a root of an earlier, larger sweep made one warning of kilobytes);
the flag's doc says that a sweep over it trains the same network twice."""
import json
import warnings

import torch

from snnlab.experiments.sweeps import expand_grid, run_folder_names, run_folders
from snnlab.training import ExperimentConfig

TINY = dict(hidden=[8], num_steps=8, batch_size=32, epochs=1, max_batches_per_epoch=1, eval_max_batches=1,
            device="cpu")


def _index_folder(folder, cfg: ExperimentConfig) -> None:
    """An index folder (``000``...) as a sweep before 2026-12-06 left it, but for the tensors: its configuration
    without the fields added since (at their defaults), as that version wrote it."""
    folder.mkdir(parents=True)
    text = json.dumps(cfg.identity_dict(), indent=2)
    torch.save({"format": "snnlab-checkpoint-v1", "config_json": text, "run_id": folder.name, "epoch": 0, "step": 0,
                "finished": False, "partial_epoch": False}, folder / "checkpoint.pt")
    (folder / "config.json").write_text(text)


def _unused_warning(root, configs) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_folders(root, configs)
    found = [str(w.message) for w in caught if "named by grid index" in str(w.message)]
    assert len(found) == 1, [str(w.message) for w in caught]
    return found[0]


def test_a_field_left_out_at_its_default_is_shown_as_that_default_not_none(tmp_path):
    _index_folder(tmp_path / "000", ExperimentConfig(**TINY, mask_p=0.3))           # mask_at_inference: left out
    _index_folder(tmp_path / "001", ExperimentConfig(**TINY, mask_p=0.3, dropout=0.2))
    message = _unused_warning(tmp_path, [ExperimentConfig(**TINY, mask_p=0.3, mask_at_inference=True)])
    assert "000: mask_at_inference=False where this sweep has True" in message
    assert "001: dropout=0.2 where this sweep has 0.0, mask_at_inference=False where this sweep has True" in message
    assert "None" not in message


def test_the_warning_says_why_for_five_folders_and_names_the_others(tmp_path):
    for i in range(8):
        _index_folder(tmp_path / f"{i:03d}", ExperimentConfig(**TINY, seed=10 + i))
    message = _unused_warning(tmp_path, [ExperimentConfig(**TINY, seed=1)])
    assert "holds 8 folder(s)" in message
    for i in range(5):
        assert f"{i:03d}: seed={10 + i} where this sweep has 1" in message
    assert "and 3 more: 005, 006, 007)" in message
    assert "005: seed" not in message and "007: seed" not in message


def test_the_flag_doc_says_a_sweep_over_it_trains_each_network_twice():
    doc = " ".join(ExperimentConfig.param.mask_at_inference.doc.split())
    assert "a sweep over mask_at_inference=true,false trains each network twice" in doc
    configs = expand_grid(ExperimentConfig(**TINY, mask_p=0.3), {"mask_at_inference": [True, False]})
    names = run_folder_names(configs)
    assert len(set(names)) == 2 and not any(name.endswith(".1") for name in names)  # two runs, not repeats
