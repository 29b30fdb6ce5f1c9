"""Review of the CLI rough edges: a word that is one run's id prefix and another run's name is ambiguous, option typos
that argparse reports as another error still get their did-you-mean (and a top-level one points at the command), no
suggestion for words after ``--``; guards for the resume rule (old checkpoints, harmless data_kwargs changes)."""
import json
import warnings

import pytest

from snnlab.cli import main
from snnlab.experiments import RunStore
from snnlab.training import ExperimentConfig


def _store(tmp_path, ids_names):
    store = RunStore(tmp_path / "s.sqlite")
    for seed, (run_id, name) in enumerate(ids_names):
        store.create_run(ExperimentConfig(seed=seed).to_dict(), name, run_id=run_id)
        store.set_summary(run_id, {"accuracy": 0.5, "spikes_per_sample": 3.0})
        store.set_status(run_id, "finished")
    return ["--store", str(tmp_path / "s.sqlite")]


# ------------------------------------------------------------------------------------------- runs: prefix vs name
@pytest.mark.parametrize("action", ["show", "compare"])
def test_a_word_that_is_one_runs_id_prefix_and_another_runs_name_is_ambiguous(tmp_path, capsys, action):
    """Was: `runs show 1` showed the run whose id starts with 1, silently passing over the run named 1."""
    flags = _store(tmp_path, [("1a2b3c4d", "first"), ("ffee0011", "1")])
    assert main(["runs", action, "1", *flags]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "run id prefix or name '1' fits 2 runs: 1a2b3c4d (first, finished), ffee0011 (1, " in err
    assert "give a whole run id" in err
    assert main(["runs", "show", "ffee0011", *flags]) == 0  # the whole id settles it
    assert json.loads(capsys.readouterr().out)["name"] == "1"


def test_a_name_that_starts_its_own_runs_id_and_sql_wildcards(tmp_path, capsys):
    flags = _store(tmp_path, [("cafe0001", "cafe"), ("beef0002", "other")])
    assert main(["runs", "show", "cafe", *flags]) == 0  # one run, by both: not ambiguous
    assert json.loads(capsys.readouterr().out)["run_id"] == "cafe0001"
    for word in ("%", "_", "caf%", "c_fe"):  # taken literally, not as LIKE patterns
        assert main(["runs", "show", word, *flags]) == 2
        assert f"no run {word!r}" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- option typos
@pytest.mark.parametrize("argv, hint", [
    (["runs", "--stauts", "failed"], "(unrecognized arguments: --stauts; did you mean --status?)"),
    (["sweep", "--gird", "seed=0,1"], "(unrecognized arguments: --gird; did you mean --grid?)"),
    (["export", "--nri", "a.nir", "runs/a"], "(unrecognized arguments: --nri; did you mean --nir?)"),
])
def test_a_typo_that_argparse_reports_as_another_error_still_gets_its_suggestion(capsys, argv, hint):
    """Was: `runs --stauts failed` said "invalid choice: 'failed'", `sweep --gird` that --grid is required."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: snnlab {argv[0]}") and hint in err


def test_a_command_option_before_the_command_points_at_the_command(capsys):
    """Was: `snnlab --hiden` said only "unrecognized arguments: --hiden"."""
    assert main(["--hiden"]) == 2
    err = capsys.readouterr().err
    assert "snnlab: error: unrecognized arguments: --hiden (did you mean snnlab train/sweep --hidden, after the " \
           "command?)" in err
    assert main(["info", "--json", "--jsn"]) == 2  # a known option is no typo of itself; the typo still gets one
    assert "unrecognized arguments: --jsn (did you mean --json?)" in capsys.readouterr().err


def test_no_suggestion_for_the_words_after_a_double_dash(capsys):
    """Was: `train -- --hidden 3` suggested "--hidden for --hidden"."""
    assert main(["train", "--", "--hidden", "3"]) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: -- --hidden 3" in err and "did you mean" not in err


def test_abbreviations_negative_values_and_equals_are_no_typos(capsys):
    from snnlab.cli import _unknown_options, build_parser

    train = build_parser().command_parsers["train"]
    assert _unknown_options(train, ["--hid", "8", "--lr=-1", "--weight-decay", "-0.5", "--", "--bogus"]) == []
    assert _unknown_options(train, ["--hiden=8", "--tau-mem", "-3"]) == ["--hiden"]


# ------------------------------------------------------------------------------------- guards: the resume rule
def test_a_config_from_an_older_checkpoint_without_the_newer_fields_resumes_with_the_defaults():
    from snnlab.training.resume import resume_conflicts

    saved = json.loads(ExperimentConfig(hidden=[8]).to_json())
    for key in ("tau_syn", "readout", "learn_tau", "batch_norm", "tau_mem_cv", "adaptation", "optimizer", "delays",
                "recurrent", "data_kwargs"):
        del saved[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = ExperimentConfig.from_saved(json.dumps(saved))
    assert resume_conflicts(old, ExperimentConfig(hidden=[8], epochs=30, lr=0.01)) == {}


def test_data_kwargs_changes_that_keep_the_input_and_class_counts_may_resume():
    from snnlab.training.resume import resume_conflicts

    saved = ExperimentConfig(dataset="shd", data_kwargs={"channel_bin": 5, "time_window": 10_000})
    same = saved.copy(data_kwargs={"channel_bin": 5, "time_window": 20_000, "pad_to": "longest", "num_workers": 2})
    assert resume_conflicts(saved, same) == {}
    assert set(resume_conflicts(saved, saved.copy(data_kwargs={"channel_bin": 4}))) == {"data_kwargs"}


def test_load_resume_checks_only_what_the_configuration_describes_of_a_model_or_data_passed_in(tmp_path):
    """Was: a Trainer resuming a model passed in (model=...) was refused a change of hidden, which that model ignores.
    (The Trainer passes own_model / own_data: see the review report.)"""
    from snnlab.training import Trainer
    from snnlab.training.resume import ResumeConfigError, load_resume

    cfg = ExperimentConfig(hidden=[8], epochs=1, num_steps=8, batch_size=32, max_batches_per_epoch=1,
                           eval_max_batches=1)
    Trainer(cfg, tmp_path, progress=False).run()
    ckpt, got, run_dir = load_resume(tmp_path, cfg.copy(hidden=[64], recurrent=True), None, own_model=True)
    assert got.hidden == [64] and run_dir == tmp_path and ckpt["format"]
    with pytest.raises(ResumeConfigError, match="optimizer 'adam' -> 'sgd'"):  # its optimiser is still the config's
        load_resume(tmp_path, cfg.copy(optimizer="sgd"), None, own_model=True)
    load_resume(tmp_path, cfg.copy(dataset="randman"), None, own_data=True)  # the data passed in sets the counts
    with pytest.raises(ResumeConfigError, match=r"hidden \[8\] -> \[64\]"):
        load_resume(tmp_path, cfg.copy(hidden=[64]), None, own_data=True)
    with pytest.raises(ResumeConfigError, match="dataset 'digits' -> 'randman'"):  # the default: everything checked
        load_resume(tmp_path, cfg.copy(dataset="randman"), None)


def test_a_trainer_resuming_a_model_passed_in_is_not_refused_a_change_the_model_ignores(tmp_path):
    """Was: Trainer(resume=..., model=net) with a changed ``hidden`` was refused, though ``hidden`` does not describe
    the model passed in (the Trainer now tells load_resume that it has its own model)."""
    from snnlab.training import Trainer
    from snnlab.training.model import model_from_checkpoint

    cfg = ExperimentConfig(hidden=[8], epochs=1, num_steps=8, batch_size=32, max_batches_per_epoch=1,
                           eval_max_batches=1)
    Trainer(cfg, tmp_path, progress=False).run()
    net, _ = model_from_checkpoint(tmp_path)
    resumed = Trainer(cfg.copy(hidden=[64], epochs=2), resume=tmp_path, model=net, progress=False)
    assert resumed.model is net
