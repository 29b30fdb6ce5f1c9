"""Rebuilding a run from its checkpoint refuses what its configuration does not describe.

Was: a run trained with a model of the user's own (``Trainer(cfg, model=...)``) whose layer sizes fit its
configuration was rebuilt from the configuration by ``model_from_checkpoint`` / ``snnlab export`` / the dashboard
(another neuron: ``reset='subtract'`` for the trained ``'zero'``, other outputs), export exiting 0 and describing
"digits 64-16-10"; a configured model trained on the user's own loaders had its robustness measured on the configured
dataset (a shape error, or the wrong data where the shapes fit); ``snnlab train --resume`` rebuilt both too. The
config form's ``set_config`` with a registered custom surrogate raised ``TraitError: Invalid selection``.
"""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import snnlab as sl
from snnlab.cli import main
from snnlab.data.collate import time_major_collate
from snnlab.training import ExperimentConfig, Trainer, model_from_checkpoint
from snnlab.training.model import CustomRunError, custom_parts

T, N, C = 6, 12, 3
CFG = dict(epochs=1, batch_size=8, hidden=[16], num_steps=T)


def _loaders(n_in: int = N, n_classes: int = C) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(16, T, n_in, generator=g) < 0.3).float()
    y = torch.arange(16) % n_classes
    ds = TensorDataset(x, y)
    ds.num_classes = n_classes  # (the class count of the model the Trainer builds for it)
    return (DataLoader(ds, batch_size=8, collate_fn=time_major_collate),
            DataLoader(ds, batch_size=8, collate_fn=time_major_collate))


def _own_model(n_in: int = N, n_out: int = C) -> sl.Sequential:
    torch.manual_seed(0)
    return sl.Sequential(torch.nn.Linear(n_in, 16, bias=False), sl.LIF(threshold=0.3, tau_mem=3.0, reset="zero"),
                         torch.nn.Linear(16, n_out, bias=False), sl.LI(tau_mem=2.0))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run folders: ``model`` (a model of the user's own, on its own data: its layers fit cfg.hidden), ``data``
    (the configured model on the user's data), ``data_fits`` (the same, with the digits' 64 inputs and 10 classes:
    the configured dataset's shapes), ``config`` (configured model and data)."""
    from snnlab.experiments import RunStore

    root = tmp_path_factory.mktemp("custom_runs")
    store = RunStore(root / "runs.sqlite")  # (the runs' store: the dashboard's test reads it)
    out = {"store": root / "runs.sqlite"}
    for name, kw in (("model", dict(model=_own_model())), ("data", {}), ("data_fits", {}), ("config", None)):
        run = root / name
        if kw is None:
            cfg = ExperimentConfig(**CFG, dataset="randman", data_kwargs={"samples_per_class": 2, "n_classes": 2})
            Trainer(cfg, run_dir=run, progress=False, store=store, name=name).run()
        else:
            tr, te = _loaders(64, 10) if name == "data_fits" else _loaders()
            Trainer(ExperimentConfig(**CFG), train_loader=tr, test_loader=te, run_dir=run, progress=False,
                    store=store, name=name, **kw).run()
        out[name] = run
    store.close()
    return out


def _ckpt(run):
    from snnlab.training import load_checkpoint

    return load_checkpoint(run, history=False)


# ------------------------------------------------------------------ which parts a run brought itself
def test_custom_parts_reads_the_trainers_label_and_flags(runs):
    assert custom_parts(_ckpt(runs["model"])) == ("model", "data")
    assert custom_parts(_ckpt(runs["data"])) == ("data",)
    assert custom_parts(_ckpt(runs["config"])) == ()
    assert custom_parts({"label": "MyNet (custom model) on digits"}) == ("model",)
    assert custom_parts({"label": "digits 64-16-10 multi_spike atan T20"}) == ()
    assert custom_parts({}) == ()  # (older checkpoints: no label)
    # explicit flags, where a checkpoint holds them, win over the label
    assert custom_parts({"label": "digits 64-16-10 multi_spike atan T20", "own_data": True}) == ("data",)
    assert custom_parts({"label": "X (custom model) on digits", "own_model": False, "own_data": False}) == ()
    with pytest.raises(TypeError, match="custom_parts"):
        custom_parts("a label")


# ------------------------------------------------------------------ a model of the user's own
def test_model_from_checkpoint_refuses_a_model_of_your_own_whose_shapes_fit(runs):
    with pytest.raises(CustomRunError, match=r"model_from_checkpoint: .* model of your own .*custom model.*"
                                             r"load_state_dict") as info:
        model_from_checkpoint(runs["model"])
    assert isinstance(info.value, ValueError)
    # what the message says works: the user's model takes the weights back
    model = _own_model()
    model.load_state_dict(_ckpt(runs["model"])["model"])


def test_model_from_checkpoint_rebuilds_a_configured_model_on_custom_data(runs):
    model, cfg = model_from_checkpoint(runs["data"])
    assert model[0].in_features == N and cfg.hidden == [16]


def test_export_of_a_model_of_your_own_fails_and_writes_nothing(runs, tmp_path, capsys):
    pytest.importorskip("nir")
    out = tmp_path / "own.nir"
    assert main(["export", str(runs["model"]), "--nir", str(out)]) != 0
    err = capsys.readouterr().err
    assert "model of your own" in err and "load_state_dict" in err and "digits 64" not in err
    assert not out.exists()


def test_export_of_custom_data_describes_the_network_not_the_configured_dataset(runs, tmp_path, capsys):
    pytest.importorskip("nir")
    assert main(["export", str(runs["data"]), "--nir", str(tmp_path / "d.nir")]) == 0
    said = capsys.readouterr().out
    assert "12-16-3 network" in said and "custom data" in said and "digits 64" not in said


# ------------------------------------------------------------------ custom data: no evaluation on cfg.dataset
@pytest.mark.parametrize("name", ["data", "data_fits"])
def test_dashboard_loader_refuses_a_run_on_custom_data(runs, name):
    pytest.importorskip("panel")
    from snnlab.dashboard.runs import load_model_from_checkpoint

    with pytest.raises(CustomRunError, match=r"data of your own.*'digits'.*robustness_curve"):
        load_model_from_checkpoint(str(runs[name]))
    with pytest.raises(CustomRunError, match="model of your own"):
        load_model_from_checkpoint(str(runs["model"]))


def test_dashboard_robustness_says_why_a_custom_run_is_left_out(runs):
    pn = pytest.importorskip("panel")
    import holoviews as hv

    from snnlab.dashboard.runs import RunsPanel
    from snnlab.experiments import RunStore

    store = RunStore(runs["store"])
    panel = RunsPanel(store)
    panel.refresh()
    names = panel.table.value["name"].tolist()
    panel.levels.value = "0, 0.2"
    panel.table.selection = [names.index("data_fits"), names.index("model")]  # nothing to measure
    panel.robustness()
    panes = panel.robust_pane.objects
    assert len(panes) == 1 and isinstance(panes[0], pn.pane.Alert)
    assert "data of your own" in panes[0].object and "model of your own" in panes[0].object
    panel.table.selection = [names.index(n) for n in ("config", "data_fits")]  # the configured run is measured
    panel.robustness()
    panes = panel.robust_pane.objects
    assert isinstance(panes[0], pn.pane.Alert) and "data\\_fits" in panes[0].object
    assert "data of your own" in panes[0].object
    plots = [p.object for p in panes[1:]]
    assert len(plots) == 1 and isinstance(plots[0], hv.NdOverlay) and len(plots[0]) == 1
    store.close()


# ------------------------------------------------------------------ the command line's resume
@pytest.mark.parametrize("name, says", [("model", "model and data were passed"), ("data_fits", "data was passed")])
def test_cli_resume_refuses_a_run_of_your_own(runs, tmp_path, capsys, name, says):
    import shutil

    run = tmp_path / name
    shutil.copytree(runs[name], run)
    before = (run / "checkpoint.pt").read_bytes()
    assert main(["train", "--run-dir", str(run), "--resume", "--epochs", "2", "--no-store", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert says in err and "resume it in Python" in err
    assert (run / "checkpoint.pt").read_bytes() == before


# ------------------------------------------------------------------ the config form and a custom surrogate
def test_config_form_shows_a_registered_custom_surrogate():
    pytest.importorskip("ipywidgets")
    from snnlab.kernels.surrogate_math import SURROGATE_NAMES
    from snnlab.widgets.config_form import ConfigForm

    name = "rebuild_box_test"
    sl.surrogates.register(name, lambda u, a: (u.abs() < 0.5 / a).to(u.dtype) * a, 1.0)
    form = ConfigForm()
    try:
        form.set_config(ExperimentConfig(surrogate=name, hidden=[8]))
        w = form.widgets["surrogate"]
        assert w.value == name and list(w.options) == [*SURROGATE_NAMES, name]
        assert form.error is None and form.config().surrogate == name
        form.set_config({"surrogate": "atan"})  # back to a listed one: the added choice goes
        assert w.value == "atan" and list(w.options) == list(SURROGATE_NAMES)
        other = ConfigForm()  # another form's choices are its own
        assert list(other.widgets["surrogate"].options) == list(SURROGATE_NAMES)
        other.close()
    finally:
        form.close()
        sl.surrogates.unregister(name)


# ------------------------------------------------------------------ a resume passes them again
def test_checkpoints_record_which_parts_the_trainer_was_given(runs):
    flags = {name: (_ckpt(runs[name]).get("own_model"), _ckpt(runs[name]).get("own_data"))
             for name in ("model", "data", "config")}
    assert flags == {"model": (True, True), "data": (False, True), "config": (False, False)}


def test_a_resume_without_the_runs_own_model_or_data_is_refused_before_anything_is_built(runs, tmp_path):
    with pytest.raises(ValueError, match=r"trained a model and data passed to its Trainer.*model=\.\.\., "
                                         r"train_loader=\.\.\., test_loader=\.\.\."):
        Trainer(resume=runs["model"], run_dir=tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match=r"trained data passed to its Trainer.*resume it with the data again"):
        Trainer(resume=runs["data_fits"], run_dir=tmp_path / "b", progress=False)  # (its shapes fit the digits)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    tr, te = _loaders()
    resumed = Trainer(ExperimentConfig(**{**CFG, "epochs": 2}), train_loader=tr, test_loader=te,
                      resume=runs["data"], run_dir=tmp_path / "c", progress=False)
    assert resumed.epoch == 1  # (passed again: it resumes)
