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
    (["train", "--resume", "--epochs", "3"], "--resume needs --run-dir"),
    (["train", "--threads", "0"], "must be at least 1"),
    (["sweep", "--grid", "seed=0,1", "--workers", "0"], "must be at least 1"),
])
def test_bad_input_gives_a_clear_error_and_exit_code(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_errors_raised_while_running_are_one_line_not_a_traceback(capsys):
    code = main(["train", *TINY, "--device", "cuda", "--no-store"]) if not __import__("torch").cuda.is_available() \
        else main(["train", *TINY, "--dataset", "shd", "--data-root", "/nonexistent", "--no-store"])
    err = capsys.readouterr().err
    assert code in (1, 2) and err.startswith("snnlab train: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    # an unknown data_kwargs key is refused before anything runs (it failed inside an encoder, with a TypeError)
    code = main(["train", *TINY, "--dataset", "randman", "--data-kwargs", '{"n_unit": 5}', "--no-store"])
    err = capsys.readouterr().err
    assert code == 2 and "data_kwargs ['n_unit'] are not options of dataset='randman'" in err and "Traceback" not in err


def test_run_dir_with_a_checkpoint_needs_resume_or_overwrite(tmp_path, capsys):
    run_dir, store = str(tmp_path / "run"), str(tmp_path / "runs.sqlite")
    flags = [*TINY, "--run-dir", run_dir, "--store", store]
    assert main(["train", *flags]) == 0
    first = RunStore(store).list_runs()["run_id"].tolist()
    capsys.readouterr()
    assert main(["train", *flags]) == 2  # would silently replace the run
    assert "--resume continues it" in capsys.readouterr().err
    assert main(["train", "--resume", "--epochs", "2", "--run-dir", run_dir, "--store", store, "--quiet"]) == 0
    assert "resumed after 1 of 2 epochs (step 2)" in capsys.readouterr().out
    runs = RunStore(store).list_runs()
    assert runs["run_id"].tolist() == first and RunStore(store).get_run(first[0])["status"] == "finished"
    assert main(["train", *flags, "--overwrite"]) == 0
    assert len(RunStore(store).list_runs()) == 2


def test_runs_compare_on_a_store_without_results(tmp_path, capsys):
    store = RunStore(tmp_path / "empty.sqlite")
    run = store.create_run({}, name="unfinished")
    assert main(["runs", "compare", run, "--store", str(tmp_path / "empty.sqlite")]) == 1  # nothing to compare
    out, err = capsys.readouterr()
    assert f"no finished runs with results among {run}" in out and f"without results: {run} (created)" in err
    assert main(["runs", "compare", "--store", str(tmp_path / "empty.sqlite")]) == 0  # no runs asked for: no error


def test_runs_show_and_compare_refuse_unknown_or_missing_ids(tmp_path, capsys):
    store = RunStore(tmp_path / "s.sqlite")
    run = store.create_run({}, name="known")
    flags = ["--store", str(tmp_path / "s.sqlite")]
    assert main(["runs", "compare", run, "typo123", *flags]) == 2
    assert "no run(s) typo123" in capsys.readouterr().err
    assert main(["runs", "show", *flags]) == 2
    assert "needs one or more run ids" in capsys.readouterr().err
    assert main(["runs", "show", run, "nope", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no run 'nope'" in captured.err  # nothing printed before the error


def test_runs_never_creates_a_store(tmp_path, capsys, monkeypatch):
    assert main(["runs", "--store", str(tmp_path / "typo.sqlite")]) == 2
    assert "no run store at" in capsys.readouterr().err and not (tmp_path / "typo.sqlite").exists()
    monkeypatch.setenv("SNNLAB_STORE", str(tmp_path / "default.sqlite"))
    assert main(["runs"]) == 0
    assert "no runs yet" in capsys.readouterr().out and not (tmp_path / "default.sqlite").exists()
    for action in ("show", "compare"):  # runs asked for by id in no store: an error, as for unknown ids
        assert main(["runs", action, "abc123"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and "no run(s) abc123: there is no run store at" in err
    assert main(["runs", "--status", "died"]) == 0 and not (tmp_path / "default.sqlite").exists()


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
    import socket

    with socket.socket() as probe:  # a free port: the command binds it once to check it before printing the line
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    store = str(tmp_path / "runs.sqlite")
    assert main(["dashboard", "--port", str(port), "--store", store]) == 0
    assert f"http://localhost:{port}/app" in capsys.readouterr().out
    assert calls["address"] == "127.0.0.1" and calls["port"] == port and calls["store_path"] == store


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


def test_a_config_file_holding_a_list_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(["train", "--config", str(tmp_path / "list.json"), *TINY, "--no-store"]) == 2
    assert "holds a JSON list, not an object" in capsys.readouterr().err


def test_a_grid_field_given_twice_keeps_all_its_values():
    from snnlab.config_args import parse_grid

    assert parse_grid(["seed=0", "neuron=ttfs", "seed=1,2"]) == {"seed": [0, 1, 2], "neuron": ["ttfs"]}


@pytest.mark.parametrize("items", [["seed=0,0"], ["seed=0,1", "seed=1"], ["delays=true,True"], ["mask_p=0,0.0"],
                                   ["hidden=64;64"]])
def test_a_grid_value_given_twice_is_kept_with_a_warning(items):
    """Tester: ``--grid seed=0,0`` trained the same configuration twice, silently (same seed, same result); repeats
    stay possible (timing, nondeterministic runs: test_sigterm_to_a_sweep... uses epochs=1000,1000), with a word."""
    from snnlab.config_args import parse_grid

    with pytest.warns(UserWarning, match=r"is given twice .*the same configuration runs twice.*vary the seed"):
        grid = parse_grid(items)
    assert sum(len(v) for v in grid.values()) == sum(len(i.split("=")[1].split(";" if "hidden" in i else ","))
                                                     for i in items)


def test_dask_local_defaults_to_one_worker_per_cpu_at_most_one_per_run(monkeypatch, capsys):
    distributed = pytest.importorskip("dask.distributed")
    seen = {}

    class Stop(Exception):
        pass

    def fake_cluster(n_workers=None, **kwargs):
        seen["n_workers"] = n_workers
        raise Stop

    monkeypatch.setattr(distributed, "LocalCluster", fake_cluster)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    with pytest.raises(Stop):
        main(["sweep", "--grid", "seed=0,1,2", "--dask", "local", *TINY, "--no-store"])
    assert seen["n_workers"] == 3  # the help: [CPU count, at most one per run]


def test_store_problems_are_one_line_errors(tmp_path, capsys, monkeypatch):
    import sqlite3

    old = tmp_path / "old.sqlite"
    con = sqlite3.connect(old)
    con.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, name TEXT, status TEXT NOT NULL)")
    con.commit()
    con.close()
    notdb = tmp_path / "notdb.sqlite"
    notdb.write_text("x\n")
    for argv in (["runs", "--store", str(old)], ["runs", "show", "a", "--store", str(old)],
                 ["train", *TINY, "--store", str(old)], ["runs", "--store", str(notdb)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "not" in err and "run store" in err and "Traceback" not in err and len(err.splitlines()) == 1
    good = tmp_path / "good.sqlite"
    RunStore(good)

    def locked(self):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(RunStore, "list_runs", locked)
    assert main(["runs", "--store", str(good)]) == 1
    assert capsys.readouterr().err.strip() == (f"snnlab runs: error: run store {good}: OperationalError: database is "
                                               "locked; another process holds the store: try again when it is done")


@pytest.mark.parametrize("signame,code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_or_sigterm_stops_train_with_a_checkpoint_and_a_resume_hint(tmp_path, capsys, monkeypatch, signame,
                                                                            code):
    import signal

    import snnlab.training
    from snnlab.training import load_checkpoint

    real = snnlab.training.Trainer
    sig = getattr(signal, signame)

    class Signalled(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.events.subscribe(lambda e: signal.raise_signal(sig) if e.step == 3 else None, kinds=["step"])

    monkeypatch.setattr(snnlab.training, "Trainer", Signalled)
    run_dir, store = str(tmp_path / "run"), str(tmp_path / "s.sqlite")
    before = signal.getsignal(signal.SIGTERM)
    assert main(["train", *TINY, "--epochs", "5", "--run-dir", run_dir, "--store", store]) == code
    err = capsys.readouterr().err
    assert f"resume with: snnlab train --resume --run-dir {run_dir} --store {store}" in err
    assert load_checkpoint(run_dir)["step"] == 3  # stopped at the step boundary, not mid-step
    run = RunStore(store).list_runs().iloc[0]
    assert (run["status"], run["message"]) == ("stopped", f"interrupted ({signame})")
    assert signal.getsignal(signal.SIGTERM) is before  # handlers restored
    monkeypatch.setattr(snnlab.training, "Trainer", real)
    assert main(["train", "--resume", "--run-dir", run_dir, "--store", store, "--quiet"]) == 0
    assert RunStore(store).list_runs()["status"].tolist() == ["finished"]
    if signame == "SIGINT":  # a run without a store is resumed without one (probe: the hint left --no-store out)
        monkeypatch.setattr(snnlab.training, "Trainer", Signalled)
        other = str(tmp_path / "other")
        assert main(["train", *TINY, "--epochs", "5", "--run-dir", other, "--no-store"]) == code
        assert f"resume with: snnlab train --resume --run-dir {other} --no-store --quiet\n" in capsys.readouterr().err
        # the hint keeps --threads (bit-for-bit resumes need the same thread count) and --quiet (TINY's)
        third = str(tmp_path / "third")
        assert main(["train", *TINY, "--epochs", "5", "--run-dir", third, "--no-store", "--threads", "1"]) == code
        assert (f"resume with: snnlab train --resume --run-dir {third} --no-store --threads 1 --quiet\n"
                in capsys.readouterr().err)


def test_sigterm_to_a_sweep_keeps_its_rows_and_stops_its_runs(tmp_path):
    """SIGTERM (SLURM, docker stop) to the sweep process only: the queued run is cancelled, the running one
    stops with a checkpoint, the finished row is printed and in the CSV, the exit status is 143."""
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    store, out = tmp_path / "s.sqlite", tmp_path / "t.csv"
    proc = subprocess.Popen([sys.executable, "-m", "snnlab.cli", "sweep", "--grid", "epochs=1,1000,1000", *TINY,
                             "--workers", "1", "--store", str(store), "--run-root", str(tmp_path / "runs"),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240

    def count(status):
        try:
            with sqlite3.connect(store) as con:
                return con.execute("SELECT count(*) FROM runs WHERE status=?", (status,)).fetchone()[0]
        except sqlite3.Error:
            return 0

    while not (count("finished") >= 1 and count("running") >= 1) and time.time() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "Pareto front" in stdout and "sweep interrupted" in stderr
    import pandas as pd

    assert pd.read_csv(out)["status"].tolist() == ["finished", "stopped", "cancelled"]
    runs = RunStore(store).list_runs()
    assert runs["status"].tolist() == ["finished", "stopped"]


def test_runs_compare_takes_ids_after_the_store_option(tmp_path, capsys):
    from snnlab.cli import main
    from snnlab.experiments import RunStore
    from snnlab.training import ExperimentConfig

    store = RunStore(tmp_path / "s.sqlite")
    ids = [store.create_run(ExperimentConfig(seed=s).to_dict(), f"run{s}") for s in (0, 1, 2)]
    for i in ids:
        store.set_summary(i, {"accuracy": 0.5, "spikes_per_sample": 3.0})
        store.set_status(i, "finished")
    assert main(["runs", "compare", "--store", str(tmp_path / "s.sqlite"), *ids[:2]]) == 0
    out = capsys.readouterr().out
    assert "seed" in out and "run0" in out and "run1" in out and "run2" not in out  # the ids given, not all runs
    assert main(["runs", "list", "--store", str(tmp_path / "s.sqlite"), "typo"]) == 2  # list takes no ids
    assert "unrecognized arguments: typo" in capsys.readouterr().err
    assert main(["runs", "list", "--store", str(tmp_path / "s.sqlite"), "--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_flags_on_a_resume_merge_data_kwargs_into_the_checkpoints():
    """Probe: --resume --data-kwargs '{"num_workers": 0}' dropped the run's channel_bin and time_window (a crash on
    the weights' shape, or a run silently continued on other frames)."""
    from snnlab.cli import build_parser
    from snnlab.config_args import config_from_args
    from snnlab.training.presets import preset_fields

    saved = preset_fields("dcls_shd")
    args = build_parser().parse_args(["train", "--resume", "--run-dir", "r", "--epochs", "2",
                                      "--data-kwargs", '{"num_workers": 0, "channel_bin": null}'])
    cfg = config_from_args(args, base=saved)
    assert cfg.data_kwargs == {"time_window": 10000, "num_workers": 0} and cfg.epochs == 2
    assert {k: cfg.to_dict()[k] for k in saved} == {**saved, "epochs": 2, "data_kwargs": cfg.data_kwargs}


def test_a_config_file_and_data_kwargs_flags_merge_key_by_key(tmp_path):
    """Review: --config FILE --data-kwargs '{"num_workers": 2}' replaced the file's data_kwargs (frames, bins)."""
    from snnlab.cli import build_parser
    from snnlab.config_args import config_from_args
    from snnlab.training import preset

    saved = tmp_path / "c.json"
    saved.write_text(preset("dcls_shd").to_json())
    args = build_parser().parse_args(["train", "--config", str(saved), "--data-kwargs", '{"num_workers": 2}'])
    assert config_from_args(args).data_kwargs == {"time_window": 10000, "channel_bin": 5, "num_workers": 2}
    args = build_parser().parse_args(["train", "--preset", "dcls_shd", "--config", str(saved), "--epochs", "3"])
    cfg = config_from_args(args)
    assert cfg.epochs == 3 and cfg.data_kwargs == {"time_window": 10000, "channel_bin": 5}


def test_python_m_snnlab_is_the_command_line(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "snnlab", "--help"], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "usage: snnlab" in r.stdout and "examples:" in r.stdout
    r = subprocess.run([sys.executable, "-m", "snnlab", "runs", "--store", str(tmp_path / "none.sqlite")],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2 and "no run store at" in r.stderr  # main's exit status is the process's


def test_demo_points_at_commands_an_installed_package_has(monkeypatch, capsys):
    import snnlab.cli as cli

    monkeypatch.setattr(cli, "cmd_train", lambda ns: 0)
    assert main(["demo", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "`snnlab dashboard`" in out and "run.sh" not in out


def test_dashboard_help_documents_every_option(capsys):
    assert main(["dashboard", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--port PORT port to serve on [5006]" in " ".join(text.split())


@pytest.mark.parametrize("where", ["cwd", "env"])
def test_train_where_the_run_store_cannot_be_created_says_store_or_no_store(tmp_path, capsys, monkeypatch, where):
    monkeypatch.delenv("SNNLAB_STORE", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file where the default store folder would go")  # as a read-only folder
    if where == "env":
        monkeypatch.setenv("SNNLAB_STORE", str(tmp_path / "runs" / "store.sqlite"))
    assert main(["train", *TINY]) == 1
    err = capsys.readouterr().err
    assert err.startswith("snnlab train: error: ") and len(err.splitlines()) == 1 and "Traceback" not in err
    assert "--store PATH" in err and "--no-store" in err and "runs" in err
    assert main(["sweep", "--grid", "neuron=ttfs", *TINY]) == 1
    err = capsys.readouterr().err
    assert "--store PATH" in err and "--no-store" in err
    assert main(["train", *TINY, "--no-store"]) == 0  # the way out the message gives


def _many_runs(path, n, name=lambda i: f"run {i}", message=lambda i: None, status=lambda i: "finished"):
    """A store of ``n`` runs written in one transaction (the store's API commits one run at a time)."""
    import sqlite3

    RunStore(path).close()
    con = sqlite3.connect(path)
    with con:
        con.executemany("INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                        [(f"id{i:08d}", name(i), status(i), message(i), json.dumps({"seed": i % 3}), 1e9 + i,
                          1e9 + i, None, json.dumps({"accuracy": 0.5 + i / (4 * n), "loss": 1.0 / (i + 1)}))
                         for i in range(n)])
    con.close()
    return str(path)


def test_runs_list_is_newest_first_cut_to_the_terminal_and_filtered(tmp_path, capsys, monkeypatch):
    """Scale probe: at 2,000 runs the list was 2,004 lines ~1,690 characters wide (a 400-character name and
    one-line tracebacks padded every column), oldest first, with no way to filter or limit it."""
    from snnlab.cli import NAME_WIDTH, RUNS_LIMIT

    traceback = "Traceback (most recent call last):\n" + '  File "x.py", line 1, in f\n' * 40 + "RuntimeError: diverged"
    store = _many_runs(tmp_path / "s.sqlite", 120, name=lambda i: "x" * 400 if i == 119 else f"run\t{i}",
                       message=lambda i: traceback if i % 10 == 0 else None,
                       status=lambda i: "failed" if i % 10 == 0 else "finished")
    monkeypatch.setenv("COLUMNS", "100")
    assert main(["runs", "--store", store]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 1 + RUNS_LIMIT and max(map(len, lines)) <= 100
    assert lines[1].startswith("id00000119  " + "x" * 10) and "\u2026" in lines[1] and "x" * NAME_WIDTH not in out
    assert lines[2].startswith("id00000118  run 118")  # newest first; a tab is shown as a space
    assert f"the newest {RUNS_LIMIT} of 120 runs" in err and "--limit 0" in err
    assert main(["runs", "list", "--store", store, "--status", "failed", "--limit", "3"]) == 0
    out, err = capsys.readouterr()
    rows = out.splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["id00000110", "id00000100", "id00000090"]
    assert all(r.rstrip().endswith("RuntimeError: diverged") and "Traceback" not in r for r in rows)
    assert "the newest 3 of 12 runs with status failed" in err
    assert main(["runs", "--store", store, "--status", "failed,finished", "--limit", "0"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 121 and err == ""
    assert main(["runs", "--store", store, "--status", "stopped"]) == 0
    assert "no runs with status stopped" in capsys.readouterr().out
    assert main(["runs", "--store", store, "--status", "exploded"]) == 2
    assert "unknown status 'exploded'" in capsys.readouterr().err
    monkeypatch.setenv("COLUMNS", "60")
    assert main(["runs", "--store", store, "--limit", "5"]) == 0
    assert max(map(len, capsys.readouterr().out.splitlines())) <= 60


def test_runs_compare_without_ids_fits_the_terminal_and_says_what_it_left_out(tmp_path, capsys, monkeypatch):
    from snnlab.experiments import RunStore

    path = tmp_path / "s.sqlite"
    store = RunStore(path)
    for i in range(4):
        run = store.create_run({f"knob_{k}": i * k for k in range(12)} | {"seed": i}, name="n" * 300 + str(i))
        store.set_summary(run, {"accuracy": 0.5 + i / 10, "loss": 1.0 / (i + 1), "spikes_per_sample": 10.0 * i})
        store.set_status(run, "finished")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["runs", "compare", "--store", str(path), "--limit", "3"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 4 and max(map(len, lines)) <= 80 and "accuracy" in lines[0]
    assert lines[1].split()[1].endswith("\u2026") and "column(s) left out at width 80" in err and "--wide" in err
    assert "the newest 3 of 4 runs with results" in err
    assert main(["runs", "compare", "--store", str(path), "--wide"]) == 0
    out, err = capsys.readouterr()
    assert "config.knob_11" in out.splitlines()[0] and "left out" not in err and len(out.splitlines()) == 5


def test_runs_into_a_reader_that_stops_early_exits_quietly(tmp_path):
    """Scale probe: `snnlab runs | head` ended with "snnlab runs: error: BrokenPipeError" and exit status 1."""
    import subprocess
    import sys

    store = _many_runs(tmp_path / "s.sqlite", 3000)  # far more output than a pipe holds
    proc = subprocess.Popen([sys.executable, "-m", "snnlab", "runs", "--store", store, "--limit", "0", "--wide"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("run_id")
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0 and "Error" not in err and "Traceback" not in err


def test_runs_on_a_locked_store_is_a_named_error_within_the_timeout(tmp_path, capsys):
    import sqlite3
    import time

    store = _many_runs(tmp_path / "s.sqlite", 3)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # a writer mid-transaction: in WAL mode `runs` reads past it
    assert main(["runs", "--store", store, "--timeout", "0.5"]) == 0
    assert "run 2" in capsys.readouterr().out
    holder.execute("ROLLBACK")
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")  # a lock that does stop readers
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("SELECT count(*) FROM runs").fetchone()
    try:
        start = time.monotonic()
        assert main(["runs", "--store", store, "--timeout", "0.5"]) == 1
        assert time.monotonic() - start < 10
        err = capsys.readouterr().err
        assert err.startswith("snnlab runs: error: ") and "is locked by another process" in err
        assert len(err.splitlines()) == 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_runs_lists_a_read_only_store_and_train_says_read_only(tmp_path, capsys):
    import os
    import shutil
    import subprocess

    folder = tmp_path / "shared"
    folder.mkdir()
    store = _many_runs(folder / "s.sqlite", 3)
    if os.geteuid() == 0:
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)],
                                                            capture_output=True).returncode != 0:
            pytest.skip("cannot make a folder read-only as root here (chattr +i)")
        thaw = ["chattr", "-i", str(folder)]
    else:
        os.chmod(store, 0o444)
        folder.chmod(0o555)
        thaw = None
    try:
        assert main(["runs", "--store", store]) == 0
        out, err = capsys.readouterr()
        assert "run 2" in out and err == ""
        assert main(["runs", "compare", "--store", store]) == 0
        assert "accuracy" in capsys.readouterr().out
        assert main(["train", *TINY, "--store", store]) == 2
        err = capsys.readouterr().err
        assert "read-only" in err and "--no-store" in err and "not a usable" not in err
        assert sorted(p.name for p in folder.iterdir()) == ["s.sqlite"]
    finally:
        if thaw:
            subprocess.run(thaw, check=False)
        else:
            folder.chmod(0o755)


def test_export_writes_a_runs_network_as_nir_that_reads_back_as_the_same_network(tmp_path, capsys):
    nir = pytest.importorskip("nir")
    import torch

    from snnlab.interop.nir import from_nir
    from snnlab.training import ExperimentConfig
    from snnlab.training import Trainer
    from snnlab.training.model import model_from_checkpoint

    cfg = ExperimentConfig(hidden=[8], epochs=1, max_batches_per_epoch=2, eval_max_batches=1, reset="zero",
                           recurrent=True, device="cpu")
    Trainer(cfg, run_dir=tmp_path / "run", progress=False).run()
    assert main(["export", str(tmp_path / "run"), "--nir", str(tmp_path / "a.nir"), "--dt", "1e-4"]) == 0
    assert "wrote" in capsys.readouterr().out
    graph = nir.read(str(tmp_path / "a.nir"))
    model, _ = model_from_checkpoint(tmp_path / "run")
    x = torch.rand(20, 3, 64)
    assert torch.equal(from_nir(graph)(x), model(x))
    # the default subtract reset exports too (a sub-graph with a reset loop) and reads back as the same network
    Trainer(cfg.copy(reset="subtract"), run_dir=tmp_path / "sub", progress=False).run()
    assert main(["export", str(tmp_path / "sub"), "--nir", str(tmp_path / "b.nir"), "--dt", "1e-4"]) == 0
    capsys.readouterr()
    model, _ = model_from_checkpoint(tmp_path / "sub")
    assert torch.equal(from_nir(nir.read(str(tmp_path / "b.nir")))(x), model(x))
    # a TTFS neuron (at most one spike) has no NIR node: a clear error, nothing written
    Trainer(cfg.copy(neuron="ttfs", recurrent=False), run_dir=tmp_path / "ttfs", progress=False).run()
    assert main(["export", str(tmp_path / "ttfs"), "--nir", str(tmp_path / "t.nir")]) == 2
    assert "max_spikes" in capsys.readouterr().err and not (tmp_path / "t.nir").exists()
    assert main(["export", str(tmp_path / "nowhere"), "--nir", str(tmp_path / "c.nir")]) == 2
    assert main(["export", str(tmp_path / "run"), "--nir", str(tmp_path / "no" / "d.nir")]) == 2
    assert "the folder" in capsys.readouterr().err
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert main(["export", str(tmp_path / "junk.pt"), "--nir", str(tmp_path / "e.nir")]) == 1
    err = capsys.readouterr().err
    assert "unreadable" in err and "weights_only" not in err and len(err.strip().splitlines()) == 1


def test_runs_compare_shows_a_setting_unset_in_one_run_and_set_in_another(tmp_path, capsys):
    """Probe: an optional field (tau_syn, max_spikes...) None in one run and set in another was hidden (pandas counts
    NaN as no value), so the runs looked alike."""
    store = RunStore(tmp_path / "s.sqlite")
    for tau_syn in (None, 5.0):
        run = store.create_run({"hidden": [8], "tau_syn": tau_syn}, name=f"syn {tau_syn}")
        store.set_summary(run, {"accuracy": 0.5, "spikes_per_sample": 3.0})
        store.set_status(run, "finished")
    assert main(["runs", "compare", "--store", str(tmp_path / "s.sqlite"), "--wide"]) == 0
    out = capsys.readouterr().out
    assert "config.tau_syn" in out and "config.hidden" not in out


def test_sweep_refuses_an_unknown_objective_before_training(tmp_path):
    from snnlab.experiments.sweeps import sweep
    from snnlab.training import ExperimentConfig

    with pytest.raises(ValueError, match=r"objective 'sparsity' is not a column of the sweep table.*activation_sparsity"):
        sweep(ExperimentConfig(hidden=[8]), {"seed": [0, 1]}, objectives={"sparsity": "max"}, progress=False)
    with pytest.raises(ValueError, match=r"must be 'max' or 'min'"):
        sweep(ExperimentConfig(hidden=[8]), {"seed": [0, 1]}, objectives={"accuracy": "up"}, progress=False)


def test_runs_wide_shows_whole_names(tmp_path, capsys):
    """Probe: --wide still cut names at 40 characters, hiding the label's last words (rec, syn5, reg0.1)."""
    store = RunStore(tmp_path / "s.sqlite")
    name = "randman 100-32-10 multi_spike atan T20 syn5 rec reg0.1"
    store.create_run({}, name=name)
    assert main(["runs", "--store", str(tmp_path / "s.sqlite"), "--wide"]) == 0
    assert name in capsys.readouterr().out
    assert main(["runs", "--store", str(tmp_path / "s.sqlite")]) == 0
    assert name not in capsys.readouterr().out  # cut at 40 without --wide


def test_sweep_takes_threads_per_run(tmp_path, monkeypatch):
    """Probe: `snnlab sweep --threads 1` was an unrecognized argument though `train` takes it."""
    import concurrent.futures

    import torch

    import snnlab.cli as cli
    from snnlab.experiments import sweep as run_sweep
    from snnlab.training import ExperimentConfig

    seen = {}

    def fake(cfg, grid, **kw):
        seen.update(kw)
        raise SystemExit(0)

    monkeypatch.setattr("snnlab.experiments.sweep", fake)
    with pytest.raises(SystemExit):
        cli.main(["sweep", "--grid", "seed=0,1", *TINY, "--threads", "3", "--no-store"])
    assert seen["threads"] == 3
    from snnlab.training.trainer import Trainer

    during, real_run = [], Trainer.run

    def run(self, *args, **kwargs):
        during.append(torch.get_num_threads())
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "run", run)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            run_sweep(ExperimentConfig(hidden=[4], epochs=1, max_batches_per_epoch=1, num_steps=4, device="cpu"),
                      {"seed": [0]}, executor=pool, progress=False, threads=2)
        assert during == [2]  # the run (in this process) used its threads
        assert torch.get_num_threads() == 3  # and left the caller's setting as it was
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads must be a positive int"):
        run_sweep(ExperimentConfig(), {"seed": [0]}, threads=0)


def test_runs_lists_creation_times_in_local_time(tmp_path, capsys, monkeypatch):
    """Store probe: `snnlab runs` printed UTC times with no zone, where the dashboard shows local time."""
    import time

    from snnlab.cli import main
    from snnlab.experiments import RunStore

    store = RunStore(tmp_path / "s.sqlite")
    run = store.create_run({"a": 1}, name="tz")
    created = store.get_run(run)["created"]
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        assert main(["runs", "--store", str(tmp_path / "s.sqlite")]) == 0
        out = capsys.readouterr().out
        assert time.strftime("%Y-%m-%d %H:%M", time.localtime(created)) in out
    finally:
        monkeypatch.undo()  # TZ as it was (CI may set one), then the C library told
        time.tzset()


def test_a_sweep_rerun_with_robustness_says_why_it_reopens_finished_runs(tmp_path, capsys):
    """Tester: a rerun with --robustness counted the finished runs as "resumed" without saying why (the help says
    finished runs are reused)."""
    argv = ["sweep", "--grid", "seed=0", *TINY, "--workers", "1", "--no-store", "--run-root", str(tmp_path / "r")]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0
    assert "1 finished run(s) reused, 0 resumed from their checkpoints\n" in capsys.readouterr().err
    assert main([*argv, "--robustness", "deletion:0.5"]) == 0
    err = capsys.readouterr().err
    assert ("0 finished run(s) reused, 1 resumed from their checkpoints (with --robustness a finished run is reopened "
            "to measure it, without training)") in err
