"""Session 16: a resume refuses the fields that would give the checkpoint's parameters another meaning (max_delay of
a delay run, seed), and sweep run folders hash ints and floats of real-valued fields alike, still finding the folders
an older snnlab named by the old hash."""
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from snnlab.cli import main
from snnlab.config_args import parse_grid
from snnlab.core.delays import DelayedLinear
from snnlab.data.cache import params_key
from snnlab.experiments import sweep
from snnlab.experiments.sweeps import expand_grid, folder_identity, run_folder_names, run_folders
from snnlab.training import ExperimentConfig, Trainer, load_checkpoint
from snnlab.training.resume import ResumeConfigError, load_resume, resume_conflicts

TINY = dict(hidden=[8], num_steps=8, batch_size=32, epochs=1, max_batches_per_epoch=1, eval_max_batches=1,
            device="cpu")
TINY_FLAGS = ["--hidden", "8", "--num-steps", "8", "--batch-size", "32", "--max-batches-per-epoch", "1",
              "--eval-max-batches", "1", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def delay_run(tmp_path_factory):
    """A finished one-epoch run with learned delays (max_delay 6) and fixed per-neuron time constants."""
    run_dir = tmp_path_factory.mktemp("delay_run")
    cfg = ExperimentConfig(**TINY, delays=True, max_delay=6, tau_mem_cv=0.3)
    Trainer(cfg, run_dir=run_dir, progress=False).run()
    return run_dir, cfg


# ------------------------------------------------------------------------------------------- resume: max_delay, seed


@pytest.mark.parametrize("change, field", [({"max_delay": 3}, "max_delay"), ({"seed": 1}, "seed")])
def test_trainer_refuses_a_resume_that_changes_max_delay_or_seed(delay_run, change, field):
    run_dir, cfg = delay_run
    with pytest.raises(ResumeConfigError, match=rf"cannot resume with {field} \d+ -> \d+") as info:
        Trainer(cfg.copy(epochs=2, **change), run_dir=run_dir, resume=run_dir, progress=False)
    assert f"{field} (" in str(info.value)  # named in the list of what a resume keeps, too


@pytest.mark.parametrize("flags, flag", [(["--max-delay", "3"], "--max-delay 3"), (["--seed", "1"], "--seed 1")])
def test_cli_refuses_a_resume_that_changes_max_delay_or_seed(delay_run, capsys, flags, flag):
    run_dir, _ = delay_run
    before = (run_dir / "checkpoint.pt").read_bytes()
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--epochs", "2", "--no-store", "--quiet",
                 *flags]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume with {flag} (the checkpoint's: " in err
    assert (run_dir / "checkpoint.pt").read_bytes() == before  # refused before anything was written


def test_a_resume_may_still_change_the_fields_left_free(delay_run):
    """tau_mem, threshold, dropout... may change; max_delay of a run without delays sets nothing and may too."""
    run_dir, cfg = delay_run
    resumed = Trainer(cfg.copy(epochs=2, tau_mem=5.0, threshold=1.5, dropout=0.1, lr=0.01), run_dir=run_dir,
                      resume=run_dir, progress=False)
    layer = next(m for m in resumed.model.modules() if isinstance(m, DelayedLinear))
    assert layer.max_delay == 6 and resumed.epoch == 1
    plain = ExperimentConfig(**TINY, max_delay=6)
    assert resume_conflicts(plain, plain.copy(max_delay=3, tau_mem=5.0, epochs=2)) == {}
    assert resume_conflicts(plain, plain.copy(delays=True)) == {"delays": (False, True)}  # (not max_delay too)


def test_cli_accepts_a_resume_that_changes_a_free_field(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--epochs", "1", "--run-dir", str(run_dir), "--no-store"]) == 0
    assert main(["train", "--resume", "--run-dir", str(run_dir), "--epochs", "2", "--tau-mem", "5", "--no-store",
                 "--quiet"]) == 0
    ckpt = load_checkpoint(run_dir)
    assert ckpt["epoch"] == 2 and ExperimentConfig.from_json(ckpt["config_json"]).tau_mem == 5.0


def test_a_model_passed_in_frees_the_model_fields_but_not_the_seed(delay_run):
    """A model passed in is not described by the configuration (max_delay free), but the seed still splits the data."""
    run_dir, cfg = delay_run
    load_resume(run_dir, cfg.copy(epochs=2, max_delay=3), run_dir, own_model=True)
    for own_model, own_data in ((True, False), (False, True)):
        with pytest.raises(ResumeConfigError, match="seed 0 -> 1"):
            load_resume(run_dir, cfg.copy(epochs=2, seed=1), run_dir, own_model=own_model, own_data=own_data)


def test_a_model_and_data_both_passed_in_free_the_seed(delay_run):
    """With the model and the data passed in, the seed draws neither the split nor the model's constants (the random
    states come from the checkpoint): changing it is no reason to refuse the resume (it was refused)."""
    run_dir, cfg = delay_run
    ckpt, new, _ = load_resume(run_dir, cfg.copy(epochs=2, seed=1), run_dir, own_model=True, own_data=True)
    assert new.seed == 1 and ckpt["epoch"] == 1
    with pytest.raises(ResumeConfigError, match="optimizer 'adam' -> 'sgd'"):  # the optimiser is still checked
        load_resume(run_dir, cfg.copy(epochs=2, seed=1, optimizer="sgd"), run_dir, own_model=True, own_data=True)


# ------------------------------------------------------------------------------------------- sweep folder names


def _old_run_folder_names(configs):
    """run_folder_names as snnlab wrote it before folder_identity (copied here: the names older run roots hold)."""
    names, seen = [], {}
    for cfg in configs:
        digest = params_key(cfg.identity_dict())[:12]
        k = seen[digest] = seen.get(digest, -1) + 1
        names.append(digest if k == 0 else f"{digest}.{k}")
    return names


def test_ints_and_floats_of_real_valued_fields_name_one_folder():
    assert run_folder_names([ExperimentConfig(tau_mem=20)]) == run_folder_names([ExperimentConfig(tau_mem=20.0)])
    assert run_folder_names([ExperimentConfig(tau_mem=10)]) == run_folder_names([ExperimentConfig()])  # the default
    python = expand_grid(ExperimentConfig(), {"tau_mem": [10, 20], "threshold": [1, 2]})
    cli = expand_grid(ExperimentConfig(), parse_grid(["tau_mem=10,20", "threshold=1,2"]))
    assert run_folder_names(python) == run_folder_names(cli) and len(set(run_folder_names(python))) == 4
    # Integer fields stay ints; other configurations keep apart; a float config keeps the name it always had
    ident = folder_identity(ExperimentConfig(epochs=3, tau_mem=20, surrogate_alpha=None))
    assert type(ident["epochs"]) is int and type(ident["tau_mem"]) is float and ident["surrogate_alpha"] is None
    assert run_folder_names([ExperimentConfig(tau_mem=20)]) != run_folder_names([ExperimentConfig(tau_mem=21)])
    floats = [ExperimentConfig(tau_mem=20.0), ExperimentConfig(seed=3)]
    assert run_folder_names(floats) == _old_run_folder_names(floats)


def test_run_folders_find_old_named_folders_and_never_share_one(tmp_path):
    ints = [ExperimentConfig(tau_mem=20), ExperimentConfig(tau_mem=20.0)]  # one config twice: name, name.1
    new, old = run_folder_names(ints), _old_run_folder_names(ints)
    assert new[1] == new[0] + ".1" and old[0] != new[0] and old[1] == new[0]
    assert [p.name for p in run_folders(tmp_path, ints)] == new  # nothing there yet: the new names
    (tmp_path / old[0]).mkdir()
    (tmp_path / old[1]).mkdir()  # (== new[0]: point 0 takes it, point 1 must not)
    got = [p.name for p in run_folders(tmp_path, ints)]
    assert got[0] == new[0] and got[1] != got[0] and got[1] in (old[0], new[1])


def test_a_grid_holding_20_and_20_0_keeps_both_folders_an_older_snnlab_made(tmp_path):
    """Probe: an older sweep of tau_mem=[20, 20.0] left two folders (one per spelling); the new names took the
    float's folder for point 0 and gave point 1 a new one, so its run trained again and the int's folder was left
    unused. Both are one configuration: point 1 takes the other old folder."""
    points = [ExperimentConfig(tau_mem=20), ExperimentConfig(tau_mem=20.0)]
    old = _old_run_folder_names(points)
    for name in old:
        (tmp_path / name).mkdir()
    got = [p.name for p in run_folders(tmp_path, points)]
    assert sorted(got) == sorted(old)
    assert len(set(got)) == 2


def test_a_sweep_reuses_and_resumes_the_folders_an_older_snnlab_named(tmp_path):
    root = tmp_path / "runs"
    base = ExperimentConfig(**{**TINY, "epochs": 2})
    grid = {"tau_mem": [20, 30]}  # ints, as a Python grid gives them: the old hash named them apart from floats
    configs = expand_grid(base, grid)
    old = _old_run_folder_names(configs)
    assert set(old).isdisjoint(run_folder_names(configs))
    finished = Trainer(configs[0], run_dir=root / old[0], progress=False)
    finished.run()
    stopped = Trainer(configs[1], run_dir=root / old[1], progress=False)
    stopped.events.subscribe(lambda e: stopped.stop(), kinds=["epoch"])
    stopped.run()
    assert stopped.state == "stopped" and load_checkpoint(root / old[1])["epoch"] == 1
    with ThreadPoolExecutor(1) as pool:
        result = sweep(base, grid, executor=pool, run_root=root, progress=False, threads=torch.get_num_threads())
    assert result.reused == (0,) and result.resumed == (1,)
    assert result.table["run_id"].tolist() == [finished.run_id, stopped.run_id]
    assert (result.table["status"] == "finished").all()
    assert sorted(p.name for p in root.iterdir()) == sorted(old)  # no new folder: nothing trained anew
    assert load_checkpoint(root / old[1])["epoch"] == 2
