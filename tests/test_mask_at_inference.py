"""``ExperimentConfig.mask_at_inference``: spike masking (MST) measured at inference from a configuration, on every
surface built from the configuration (the command line, both forms, the run label, build_model, resume, export),
while the sweep folders of every existing configuration keep their names."""
from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch

from snnlab.cli import main
from snnlab.config_args import add_config_arguments, config_from_args
from snnlab.core.adaptive import ALIF
from snnlab.core.neurons import LIF
from snnlab.core.recurrent import RecurrentLIF
from snnlab.data.cache import params_key
from snnlab.experiments.sweeps import folder_identity, run_folder_names
from snnlab.training import ConfigError, ExperimentConfig, Trainer, build_model
from snnlab.training.model import model_from_checkpoint
from snnlab.training.resume import FIXED_ON_RESUME, resume_conflicts

#: folder names of these configurations as the code before mask_at_inference gave them (computed with a
#: ``git archive`` copy of that code: run_folder_names([ExperimentConfig(**kw)]))
OLD_FOLDERS = {"{}": "cadff18ce4df", '{"mask_p": 0.3}': "d468a3da3a84",
               '{"hidden": [16], "epochs": 1, "mask_p": 0.5}': "99b43e9854ed"}


def tiny(**kw) -> ExperimentConfig:
    base = dict(hidden=[16], num_steps=10, batch_size=64, epochs=2, max_batches_per_epoch=4, eval_max_batches=3,
                device="cpu", mask_p=0.5, seed=3)
    return ExperimentConfig(**{**base, **kw})


def _train(cfg: ExperimentConfig, run_dir) -> Trainer:
    t = Trainer(cfg, run_dir=run_dir, progress=False)
    t.run()
    return t


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same masked run trained three times: evaluated without masking, with it, and with it again."""
    root = tmp_path_factory.mktemp("mask_runs")
    off = _train(tiny(), root / "off")
    on = _train(tiny(mask_at_inference=True), root / "on")
    again = _train(tiny(mask_at_inference=True), root / "again")
    return root, off, on, again


# ------------------------------------------------------------------------------------------ the field itself
def test_field_default_doc_and_older_json():
    spec = ExperimentConfig.schema()["mask_at_inference"]
    assert spec["type"] == "Boolean" and spec["default"] is False
    assert "mask_p" in spec["doc"] and "evaluation" in spec["doc"] and "No effect with mask_p=0" in spec["doc"]
    older = ExperimentConfig(mask_p=0.3).to_dict()
    del older["mask_at_inference"]  # a configuration saved before the field existed
    assert ExperimentConfig.from_json(json.dumps(older)).mask_at_inference is False
    assert ExperimentConfig.from_saved(json.dumps(older)).mask_at_inference is False


def test_it_is_accepted_without_mask_p_and_changes_nothing_there():
    """A sweep ``--grid mask_p=0,0.3 --mask-at-inference`` keeps its unmasked baseline: no refusal, no label part,
    and the model built is the unmasked one."""
    cfg = ExperimentConfig.from_dict({"mask_at_inference": True})
    assert cfg.mask_at_inference is True and "maskinf" not in cfg.label().split()
    assert run_folder_names([cfg]) == [OLD_FOLDERS["{}"]]  # the baseline's folder: the same run, reused
    net = build_model(cfg, 4, 2)
    assert all(m.mask_p == 0 for m in net if isinstance(m, LIF))
    assert ExperimentConfig.from_dict({"mask_at_inference": True, "mask_p": 0.2}).mask_at_inference is True


def test_label_part_only_when_on():
    assert "maskinf" not in tiny().label().split()
    assert tiny(mask_at_inference=True).label().split()[-2:] == ["mask0.5", "maskinf"]


def test_sweep_folders_of_existing_configurations_keep_their_names():
    for kw, name in OLD_FOLDERS.items():
        cfg = ExperimentConfig(**json.loads(kw))
        assert run_folder_names([cfg]) == [name] == [params_key(folder_identity(cfg))[:12]]
        assert "mask_at_inference" not in cfg.identity_dict()
    on = ExperimentConfig(mask_p=0.3, mask_at_inference=True)
    assert on.identity_dict()["mask_at_inference"] is True
    assert run_folder_names([on]) != [OLD_FOLDERS['{"mask_p": 0.3}']]  # another run: another folder


# ------------------------------------------------------------------------------------------ the surfaces
def test_command_line_flags():
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    assert config_from_args(parser.parse_args(["--mask-p", "0.3", "--mask-at-inference"])).mask_at_inference is True
    assert config_from_args(parser.parse_args(["--mask-p", "0.3", "--no-mask-at-inference"])).mask_at_inference is False
    assert config_from_args(parser.parse_args([])).mask_at_inference is False


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_help_of_train_and_sweep(command, capsys):
    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--mask-at-inference, --no-mask-at-inference" in text and "as in the MST paper" in text


def test_a_sweep_over_mask_p_with_the_flag_is_accepted():
    """The MST comparison in one command: the flag with a grid over mask_p that includes 0."""
    from snnlab.experiments.sweeps import expand_grid

    base = ExperimentConfig(mask_at_inference=True)
    configs = expand_grid(base, {"mask_p": [0.0, 0.3]})
    assert [c.mask_p for c in configs] == [0.0, 0.3] and all(c.mask_at_inference for c in configs)
    assert [("maskinf" in c.label().split()) for c in configs] == [False, True]


def test_ipywidgets_form_has_a_checkbox_for_it():
    pytest.importorskip("ipywidgets")
    from snnlab.widgets.config_form import ConfigForm

    form = ConfigForm()
    assert type(form.widgets["mask_at_inference"]).__name__ == "Checkbox"
    form.set_config(ExperimentConfig(mask_p=0.2, mask_at_inference=True))
    assert form.widgets["mask_at_inference"].value is True and form.config().mask_at_inference is True


def test_dashboard_form_shows_it_beside_mask_p():
    pn = pytest.importorskip("panel")
    from snnlab.dashboard.forms import FORM_GROUPS, ConfigForm

    network = FORM_GROUPS["Network"]
    assert network.index("mask_at_inference") == network.index("mask_p") + 1
    form = ConfigForm()
    assert isinstance(form.widgets["mask_at_inference"], pn.widgets.Checkbox)
    assert form.tooltips["mask_at_inference"].value == ExperimentConfig.param.mask_at_inference.doc
    form.set_values(ExperimentConfig(mask_p=0.2, mask_at_inference=True).to_dict())
    assert form.widgets["mask_at_inference"].value is True and form.config().mask_at_inference is True


# ------------------------------------------------------------------------------------------ the model
@pytest.mark.parametrize("extra, kind", [({}, LIF), ({"recurrent": True}, RecurrentLIF),
                                         ({"adaptation": 0.3}, ALIF), ({"adaptation": 0.3, "recurrent": True}, ALIF)])
def test_build_model_gives_the_hidden_layers_the_flag(extra, kind):
    for flag in (False, True):
        net = build_model(tiny(hidden=[6, 5], mask_at_inference=flag, readout="spike_count", **extra), 8, 3)
        lifs = [m for m in net if isinstance(m, LIF)]
        assert all(type(m) is kind and m.mask_p == 0.5 and m.mask_at_inference is flag for m in lifs[:2])
        assert lifs[2].mask_p == 0.0 and lifs[2].mask_at_inference is False  # the output layer is never masked


def test_masked_evaluation_has_fewer_spikes_and_the_same_training(runs):
    _, off, on, _ = runs
    r_off, r_on = off.result["final"], on.result["final"]
    assert r_on["spikes_per_sample"] < 0.75 * r_off["spikes_per_sample"]  # p=0.5 drops about half
    assert r_on["synops_per_sample"] < r_off["synops_per_sample"]
    assert r_on["n_samples"] == r_off["n_samples"]
    # evaluation only: the masks drawn in the evaluations after epoch 1 do not move what epoch 2 trains on
    for (k, a), b in zip(off.model.state_dict().items(), on.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_masked_evaluation_is_reproducible(runs):
    _, _, on, again = runs
    first, second = on.evaluate(), on.evaluate()  # the random states are restored after each pass
    assert first == second
    assert on.result["final"] == again.result["final"]  # the same configuration, the same numbers
    assert first["spikes_per_sample"] < runs[1].evaluate()["spikes_per_sample"]


def test_a_saved_run_rebuilds_with_the_flag(runs):
    root, _, _, _ = runs
    model, cfg = model_from_checkpoint(root / "on")
    assert cfg.mask_at_inference is True and "maskinf" in cfg.label().split()
    assert [m.mask_at_inference for m in model if isinstance(m, LIF)] == [True]


# ------------------------------------------------------------------------------------------ resume and export
def test_it_may_change_on_a_resume(runs, tmp_path):
    root, off, _, _ = runs
    assert all("mask_at_inference" not in fields for fields in FIXED_ON_RESUME.values())
    assert resume_conflicts(tiny(), tiny(mask_at_inference=True)) == {}
    run = tmp_path / "run"
    shutil.copytree(root / "off", run)
    resumed = Trainer(tiny(epochs=3, mask_at_inference=True), resume=run, progress=False)
    assert [m.mask_at_inference for m in resumed.model if isinstance(m, LIF)] == [True]
    resumed.run()
    assert resumed.state == "finished" and resumed.epoch == 3
    assert resumed.result["final"]["spikes_per_sample"] < 0.75 * off.result["final"]["spikes_per_sample"]


def test_cli_export_refuses_a_run_masked_at_inference(runs, capsys):
    pytest.importorskip("nir")
    root, _, _, _ = runs
    out = root / "on" / "net.nir"
    assert main(["export", str(root / "on"), "--nir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "mask_p=0.5 with mask_at_inference=True; NIR cannot drop spikes at random" in err
    assert not out.exists()
