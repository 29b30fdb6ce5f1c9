"""Rough edges of the command line and the configuration that a tester found: NaN / inf values, resuming with another
architecture, `runs` ids (order, prefixes, names, `list` with ids), empty list entries, the dashboard's help, option
typos, and a Monitor on a network without neuron layers."""
import json
import re
import warnings

import pytest
import torch

import snnlab as sl
from snnlab.cli import main
from snnlab.experiments import RunStore
from snnlab.training import ConfigError, ExperimentConfig

TINY = ["--hidden", "16", "--epochs", "1", "--num-steps", "8", "--batch-size", "32", "--max-batches-per-epoch", "2",
        "--eval-max-batches", "1", "--quiet"]
FLOAT_FIELDS = [k for k, spec in ExperimentConfig.schema().items() if spec["type"] == "Number"]


# ------------------------------------------------------------------------------------------------ 1. NaN and inf
@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_inf_are_said_to_be_not_finite_for_every_number_field(field, value):
    """Probe: --lr nan said "must be at most 100.0, not nan"."""
    for build in (lambda: ExperimentConfig.from_dict({field: value}), lambda: ExperimentConfig(**{field: value})):
        with pytest.raises(ConfigError, match=f"{field} must be a finite number, got {value!r}"):
            build()


def test_train_lr_nan_and_a_config_file_with_infinity_say_finite(tmp_path, capsys):
    assert main(["train", "--lr", "nan", "--no-store"]) == 2
    err = capsys.readouterr().err
    assert "lr must be a finite number, got nan" in err and "at most" not in err
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"weight_gain": float("inf")}))  # (JSON's Infinity, as Python writes it)
    assert main(["train", "--config", str(cfg_file), "--no-store"]) == 2
    assert "weight_gain must be a finite number, got inf" in capsys.readouterr().err


# ------------------------------------------------------------------------------- 2. resuming another architecture
def _layout(cfg: ExperimentConfig) -> tuple:
    """What a checkpoint must fit: each stateful layer's state (names, shapes, parameter or buffer) in order (stateless
    layers such as dropout are paired away by load_model_state), and the optimiser."""
    from snnlab.core.random_stream import RNG_STATE_KEY
    from snnlab.training.config import dataset_shape
    from snnlab.training.model import build_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build_model(cfg, *dataset_shape(cfg))
    layers = []
    for module in model:
        params = {n for n, _ in module.named_parameters()}
        state = sorted((k, tuple(v.shape), k in params) for k, v in module.state_dict().items()
                       if not k.endswith(RNG_STATE_KEY))
        if state:
            layers.append(tuple(state))
    return tuple(layers), cfg.optimizer


VARIANTS = dict(hidden=[[8, 8], [9]], neuron=["ttfs", "noisy"], max_spikes=[2], surrogate=["sigmoid"],
                surrogate_alpha=[2.0], tau_mem=[5.0], tau_mem_cv=[0.2], tau_syn=[5.0], threshold=[2.0], reset=["zero"],
                detach_reset=[True], learn_threshold=[True], learn_tau=[True], mask_p=[0.2], spike_reg=[0.1],
                dropout=[0.2], batch_norm=[True], recurrent=[True], adaptation=[0.5, 0.7], tau_adapt=[50.0],
                delays=[True], max_delay=[5], weight_gain=[1.0], readout_gain=[1.0], epochs=[20], lr=[0.01],
                readout=["membrane_max", "softmax_sum", "spike_count", "first_spike"], encoding=["rate", "direct"],
                num_steps=[30], optimizer=["sgd"], batch_size=[16], dataset=["randman", "fsdd"],
                data_kwargs=[{"test_fraction": 0.3}])


@pytest.mark.parametrize("base", [dict(hidden=[8]), dict(hidden=[8], recurrent=True, adaptation=0.5),
                                  dict(hidden=[8], delays=True, tau_mem_cv=0.2, readout="spike_count")])
def test_the_resume_rule_refuses_exactly_the_changes_a_checkpoint_cannot_fit(base):
    """FIXED_ON_RESUME, the one rule of what a resume may change, against the models and optimisers the configurations
    build: a change is refused if and only if the checkpoint's state would not fit."""
    from snnlab.training.resume import resume_conflicts

    saved = ExperimentConfig(**base)
    for field, values in VARIANTS.items():
        for value in values:
            try:
                cfg = ExperimentConfig.from_dict({**base, field: value}, validate=False)
            except ConfigError:
                continue
            refused = resume_conflicts(saved, cfg)
            other_meaning = field == "max_delay" and saved.delays and cfg.max_delay != saved.max_delay
            assert bool(refused) == (_layout(cfg) != _layout(saved) or other_meaning), (field, value, refused)
            assert set(refused) <= {field, "recurrent"}, refused


def test_a_trainer_refuses_a_resume_with_another_architecture_before_loading_data(tmp_path, monkeypatch):
    from snnlab.training import Trainer
    from snnlab.training.checkpoint import CheckpointError
    from snnlab.training.resume import ResumeConfigError

    cfg = ExperimentConfig(hidden=[8], epochs=1, num_steps=8, batch_size=32, max_batches_per_epoch=2,
                           eval_max_batches=1)
    Trainer(cfg, tmp_path, progress=False).run()

    def no_data(self):
        raise AssertionError("data built before the resume was refused")

    monkeypatch.setattr(Trainer, "_build_data", no_data)
    with pytest.raises(ResumeConfigError, match=r"cannot resume with hidden \[8\] -> \[12\], recurrent False -> True"):
        Trainer.resume_from(tmp_path, cfg.copy(hidden=[12], recurrent=True, epochs=2), progress=False)
    assert issubclass(ResumeConfigError, CheckpointError) and issubclass(ResumeConfigError, ConfigError)


def test_train_resume_with_another_hidden_names_the_flags_and_what_cannot_change(tmp_path, capsys):
    """Probe: `--resume --hidden 64` on a run with hidden 32 ended in a raw `CheckpointError ... size mismatch`."""
    run_dir, store = str(tmp_path / "a"), str(tmp_path / "s.sqlite")
    assert main(["train", *TINY, "--run-dir", run_dir, "--store", store]) == 0
    checkpoint = (tmp_path / "a" / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(["train", "--resume", "--run-dir", run_dir, "--store", store, "--hidden", "24", "--batch-norm",
                 "--epochs", "2", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("snnlab train: error: checkpoint") and "Traceback" not in err and out == ""
    assert "--hidden 24 (the checkpoint's: --hidden 16), --batch-norm (the checkpoint's: --no-batch-norm)" in err
    assert "--recurrent" in err and "--optimizer" in err and "size mismatch" not in err
    assert (tmp_path / "a" / "checkpoint.pt").read_bytes() == checkpoint  # nothing ran
    assert RunStore(store).list_runs()["status"].tolist() == ["finished"]
    # what may change still does
    assert main(["train", "--resume", "--run-dir", run_dir, "--store", store, "--epochs", "2", "--tau-mem", "5",
                 "--quiet"]) == 0


def test_resume_help_says_what_can_and_cannot_change(capsys):
    from snnlab.training.resume import FIXED_ON_RESUME

    assert main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    resume = text[text.index("--resume continue"):text.index("--overwrite start")]
    assert "--epochs" in resume and "--tau-mem" in resume and "refused" in resume
    for fields in FIXED_ON_RESUME.values():
        for field in fields:
            assert "--" + field.replace("_", "-") in resume.replace("- ", "-"), field


# ---------------------------------------------------------------------------------------------------- 3./4. runs
def _store_with_runs(tmp_path, ids_names):
    store = RunStore(tmp_path / "s.sqlite")
    for seed, (run_id, name) in enumerate(ids_names):
        store.create_run(ExperimentConfig(seed=seed).to_dict(), name, run_id=run_id)
        store.set_summary(run_id, {"accuracy": 0.5 + seed / 10, "spikes_per_sample": 3.0})
        store.set_status(run_id, "finished")
    return ["--store", str(tmp_path / "s.sqlite")]


def test_runs_compare_lists_the_runs_in_the_order_given(tmp_path, capsys):
    """Probe: `runs compare ID1 ID2 ID3` showed them oldest first."""
    flags = _store_with_runs(tmp_path, [("aaa111", "first"), ("bbb222", "second"), ("ccc333", "third")])
    assert main(["runs", "compare", "ccc333", "aaa111", "bbb222", *flags, "--wide"]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == ["ccc333", "aaa111", "bbb222"]


def test_runs_show_and_compare_take_unique_prefixes_and_names(tmp_path, capsys):
    flags = _store_with_runs(tmp_path, [("be89aaaa", "alpha"), ("be12bbbb", "beta"), ("0f3dcccc", "beta")])
    assert main(["runs", "show", "be8", *flags]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "be89aaaa"
    assert main(["runs", "show", "alpha", *flags]) == 0  # a name only one run has
    assert json.loads(capsys.readouterr().out)["run_id"] == "be89aaaa"
    assert main(["runs", "compare", "0f", "be8", *flags, "--wide"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["0f3dcccc", "be89aaaa"]
    for action in ("show", "compare"):
        assert main(["runs", action, "be", *flags]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "run id prefix 'be' fits 2 runs: be89aaaa (alpha, finished), be12bbbb (beta, " in err
        assert main(["runs", action, "beta", *flags]) == 2  # a name two runs have
        assert "run name 'beta' fits 2 runs" in capsys.readouterr().err
    assert main(["runs", "show", "zz", *flags]) == 2
    assert "no run 'zz'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["runs", "list", "someid"], ["runs", "list", "someid", "--status", "finished"],
                                  ["runs", "list", "--store", "STORE", "someid"]])
def test_runs_list_refuses_run_ids(tmp_path, capsys, argv):
    """Probe: `runs list someid` ignored the id."""
    flags = _store_with_runs(tmp_path, [("aaa111", "first")])
    argv = [flags[1] if a == "STORE" else a for a in argv] + ([] if "--store" in argv else flags)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: snnlab runs")
    assert "unrecognized arguments: someid: `runs list` takes no run ids" in err


# ------------------------------------------------------------------------------------------ 5. empty list entries
@pytest.mark.parametrize("text", ["32,,16", "32,", ",32"])
def test_an_empty_hidden_entry_is_an_error(text, capsys):
    """Probe: --hidden 32,,16 was read as [32, 16]."""
    assert main(["train", "--hidden", text, "--no-store"]) == 2
    assert "argument --hidden: expected comma-separated integers" in capsys.readouterr().err


def test_an_empty_grid_value_is_an_error():
    from snnlab.config_args import parse_grid

    for item in ("seed=0,,1", "max_spikes=1,", "hidden=64;;32", "hidden=64,,32"):
        with pytest.raises(ConfigError, match="empty"):
            parse_grid([item])


# ------------------------------------------------------------------------------------------- 6. dashboard --help
def test_dashboard_help_describes_the_command(capsys):
    assert main(["dashboard", "--help"]) == 0
    out = capsys.readouterr().out
    description = " ".join(out.split("options:")[0].split("\n", 2)[-1].split())
    assert "Panel" in description and "--store" in description and "127.0.0.1" in description
    assert "5006" in description and "closing a tab stops its training" in description


# ------------------------------------------------------------------------------------------------ 7. option typos
def test_an_option_typo_gets_the_subcommands_usage_and_a_suggestion(capsys):
    """Probe: `train --hiden 32` printed the top-level usage `snnlab [-h] COMMAND ...`."""
    assert main(["train", "--hiden", "32"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: snnlab train") and "usage: snnlab [-h] COMMAND" not in err
    assert "snnlab train: error: unrecognized arguments: --hiden 32 (did you mean --hidden?)" in err
    assert main(["sweep", "--grid", "seed=0", "--epoks=2", "--nueron", "ttfs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: snnlab sweep") and "(did you mean --epochs for --epoks, --neuron for --nueron?)" in err
    assert main(["runs", "--bogus"]) == 2  # nothing close: no suggestion
    err = capsys.readouterr().err
    assert re.search(r"snnlab runs: error: unrecognized arguments: --bogus\n$", err)


# -------------------------------------------------------------------------------------- 8. Monitor without neurons
def test_a_monitor_on_a_network_without_neuron_layers_warns():
    net = sl.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    with pytest.warns(UserWarning, match=r"Monitor: Sequential has no neuron layer \(snnlab\.LIF or snnlab\.LI"):
        mon = sl.Monitor(net)
    with mon:
        net(torch.rand(5, 2, 4))
    assert mon.spikes == {} and mon.membrane == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sl.Monitor(net, layers=[])  # nothing asked for: no warning
        sl.Monitor(sl.Sequential(torch.nn.Linear(4, 3), sl.LIF()))
