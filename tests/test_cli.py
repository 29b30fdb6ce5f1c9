"""The snnlab command line: train, runs, sweep, help and clear errors."""
import json

import pytest

from snnlab.cli import main
from snnlab.experiments import RunStore

TINY = ["--hidden", "16", "--epochs", "1", "--num-steps", "8", "--batch-size", "32", "--max-batches-per-epoch", "2",
        "--eval-max-batches", "1", "--quiet"]


def test_train_records_the_run_and_runs_lists_shows_and_compares_it(tmp_path, capsys):
    store = str(tmp_path / "runs.sqlite")
    cfg_file = tmp_path / "cfg.json"
    assert main(["train", *TINY, "--neuron", "ttfs", "--store", store, "--name", "cli-run",
                 "--save-config", str(cfg_file)]) == 0
    out = capsys.readouterr().out
    assert "test results" in out and "spikes_per_sample" in out
    assert json.loads(cfg_file.read_text())["neuron"] == "ttfs"
    runs = RunStore(store).list_runs()
    assert runs["name"].tolist() == ["cli-run"] and runs["status"].tolist() == ["finished"]
    run_id = runs["run_id"][0]
    assert main(["runs", "--store", store]) == 0
    assert "cli-run" in capsys.readouterr().out
    assert main(["runs", "show", run_id, "--store", store]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["neuron"] == "ttfs"
    # a saved config file is a starting point that flags override
    assert main(["train", "--config", str(cfg_file), "--neuron", "multi_spike", "--store", store, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["runs", "compare", "--store", store]) == 0
    assert "config.neuron" in capsys.readouterr().out


def test_sweep_prints_table_and_front(tmp_path, capsys):
    out_csv = tmp_path / "table.csv"
    code = main(["sweep", "--grid", "max_spikes=1,None", *TINY, "--workers", "2", "--no-store", "--out", str(out_csv),
                 "--robustness", "jitter:1", "--robustness", "deletion:0.5"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Pareto front" in out and out_csv.exists()
    lines = out_csv.read_text().strip().splitlines()
    assert len(lines) == 3 and "robust_accuracy_jitter_1" in lines[0] and "robust_accuracy_deletion_0.5" in lines[0]


@pytest.mark.parametrize("argv,message", [
    (["train", "--hidden=-3"], "hidden"),
    (["train", "--epochs", "many"], "epochs"),
    (["train", "--delays", "--max-delay", "500"], "max_delay"),
    (["train", "--config", "/nonexistent/cfg.json"], "no such file"),
    (["sweep", "--grid", "nerons=ttfs"], "unknown field"),
    (["sweep", "--grid", "max_spikes=one"], "max_spikes"),
    (["sweep", "--grid", "neuron=ttfs", "--robustness", "jitter"], "KIND:LEVEL"),
    (["train", "--dataset", "shd", "--data-root", "/nonexistent", "--no-store"], "SHD"),
    (["sweep", "--grid", "seed=0,1", "--robustness", "bogus:1", "--no-store"], "unknown perturbation"),
    (["train", "--resume", "--run-dir", "/nonexistent/run"], "no checkpoint"),
])
def test_bad_input_gives_a_clear_error_and_exit_code(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_errors_raised_while_running_are_one_line_not_a_traceback(capsys):
    code = main(["train", *TINY, "--dataset", "randman", "--data-kwargs", '{"n_unit": 5}', "--no-store"])
    err = capsys.readouterr().err
    assert code == 1 and "snnlab train: error: TypeError" in err and "n_unit" in err and "Traceback" not in err


def test_run_dir_with_a_checkpoint_needs_resume_or_overwrite(tmp_path, capsys):
    run_dir, store = str(tmp_path / "run"), str(tmp_path / "runs.sqlite")
    flags = [*TINY, "--run-dir", run_dir, "--store", store]
    assert main(["train", *flags]) == 0
    first = RunStore(store).list_runs()["run_id"].tolist()
    capsys.readouterr()
    assert main(["train", *flags]) == 2  # would silently replace the run
    assert "--resume continues it" in capsys.readouterr().err
    assert main(["train", "--resume", "--epochs", "2", "--run-dir", run_dir, "--store", store, "--quiet"]) == 0
    assert "resumed at epoch 1, step 2" in capsys.readouterr().out
    runs = RunStore(store).list_runs()
    assert runs["run_id"].tolist() == first and RunStore(store).get_run(first[0])["status"] == "finished"
    assert main(["train", *flags, "--overwrite"]) == 0
    assert len(RunStore(store).list_runs()) == 2


def test_runs_compare_on_a_store_without_results(tmp_path, capsys):
    RunStore(tmp_path / "empty.sqlite")
    assert main(["runs", "compare", "someid", "--store", str(tmp_path / "empty.sqlite")]) == 0
    assert "no finished runs with results among someid" in capsys.readouterr().out


def test_runs_never_creates_a_store(tmp_path, capsys, monkeypatch):
    assert main(["runs", "--store", str(tmp_path / "typo.sqlite")]) == 2
    assert "no run store at" in capsys.readouterr().err and not (tmp_path / "typo.sqlite").exists()
    monkeypatch.setenv("SNNLAB_STORE", str(tmp_path / "default.sqlite"))
    assert main(["runs"]) == 0
    assert "no runs yet" in capsys.readouterr().out and not (tmp_path / "default.sqlite").exists()


def test_help_teaches(capsys):
    assert main(["train", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--max-spikes" in text and "ttfs" in text and "--delays" in text and "DCLS" in text
    assert main([]) == 0
    assert "examples:" in capsys.readouterr().out


def test_dashboard_command_prints_the_url_and_serves_localhost_with_the_store(tmp_path, capsys, monkeypatch):
    calls = {}

    def fake_serve(**kwargs):
        calls.update(kwargs)
        return 0

    monkeypatch.setattr("snnlab.dashboard.serve.serve_dashboard", fake_serve)
    store = str(tmp_path / "runs.sqlite")
    assert main(["dashboard", "--port", "5077", "--store", store]) == 0
    assert "http://localhost:5077/app" in capsys.readouterr().out
    assert calls["address"] == "127.0.0.1" and calls["port"] == 5077 and calls["store_path"] == store


def test_grid_sweeps_dict_values_separated_by_semicolons():
    from snnlab.config_args import parse_grid

    grid = parse_grid(['data_kwargs={"n_units": 50, "n_classes": 5};{"n_units": 80}', "hidden=64;128,128",
                       "seed=0,1"])
    assert grid == {"data_kwargs": [{"n_units": 50, "n_classes": 5}, {"n_units": 80}], "hidden": [[64], [128, 128]],
                    "seed": [0, 1]}


def test_sigterm_to_the_dashboard_command_stops_its_server_too(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    flag = tmp_path / "server.pid"
    runner = f"""
import sys
import snnlab.dashboard.serve as serve
serve.build_serve_command = lambda **kw: [sys.executable, "-c",
    "import os, time; open({str(flag)!r}, 'w').write(str(os.getpid())); time.sleep(600)"]
sys.exit(serve.serve_dashboard())
"""
    proc = subprocess.Popen([sys.executable, "-c", runner])
    deadline = time.time() + 60
    while not (flag.exists() and flag.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    server = int(flag.read_text())
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            os.kill(server, 0)  # still there? (the runner's exit reparents and reaps it once it ends)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(server, signal.SIGKILL)
        raise AssertionError("the panel server outlived the dashboard command")
