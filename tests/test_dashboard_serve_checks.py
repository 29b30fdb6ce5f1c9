"""``snnlab dashboard`` checks its settings before it announces a server: the port, the run store's folder and
``$SNNLAB_DASHBOARD_DEFAULTS`` (which the served page also reports when it is not a JSON object)."""
from __future__ import annotations

import logging
import socket

import pytest

from snnlab.cli import main
from snnlab.dashboard import serve as serve_module
from snnlab.dashboard.serve import DEFAULTS_ENV, check_serve_settings, env_defaults, startup_line


@pytest.fixture
def served(monkeypatch):
    """Replace the server by a recorder: ``served`` lists the keyword arguments of each serve_dashboard call."""
    calls = []

    def fake_serve(**kwargs):
        calls.append(kwargs)
        return 0

    monkeypatch.setattr(serve_module, "serve_dashboard", fake_serve)
    monkeypatch.delenv("SNNLAB_STORE", raising=False)
    monkeypatch.delenv(DEFAULTS_ENV, raising=False)
    return calls


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_port_out_of_range_is_an_error_and_nothing_is_announced(served, capsys):
    assert main(["dashboard", "--port", "70000"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "port must be in 1..65535, got 70000" in err and served == []


def test_a_port_in_use_is_an_error_and_nothing_is_announced(served, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["dashboard", "--port", str(port)]) == 1
    out, err = capsys.readouterr()
    assert out == "" and f"port {port} is already in use" in err and served == []


def test_a_free_port_is_announced_then_served(served, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default store runs/snnlab.sqlite: its folder is created by the app
    port = _free_port()
    assert main(["dashboard", "--port", str(port)]) == 0
    out = capsys.readouterr().out
    assert f"open http://localhost:{port}/app in your browser" in out and out.rstrip().endswith("(new)")
    assert len(served) == 1 and served[0]["port"] == port


def test_a_store_in_a_missing_folder_is_refused_and_nothing_is_created(served, capsys, tmp_path):
    store = tmp_path / "typo" / "dir" / "x.db"
    assert main(["dashboard", "--port", str(_free_port()), "--store", str(store)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and served == [] and not (tmp_path / "typo").exists()
    assert f"the run store {store} is in a folder that does not exist ({store.parent})" in err
    assert main(["dashboard", "--port", str(_free_port()), "--store", str(tmp_path)]) == 2  # a folder, not a file
    assert "is a folder, not a SQLite file" in capsys.readouterr().err and served == []


def test_a_store_named_by_the_environment_in_a_missing_folder_is_refused(served, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SNNLAB_STORE", str(tmp_path / "nope" / "x.db"))
    assert main(["dashboard", "--port", str(_free_port())]) == 2
    err = capsys.readouterr().err
    assert "(named by $SNNLAB_STORE) is in a folder that does not exist" in err and served == []


def test_a_new_store_file_in_an_existing_folder_is_served_and_said_new(served, capsys, tmp_path):
    store = tmp_path / "new.sqlite"
    assert main(["dashboard", "--port", str(_free_port()), "--store", str(store)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(f"run store: {store} (new)")
    assert served[0]["store_path"] == str(store)
    store.write_bytes(b"")  # an existing store is not called new
    assert not startup_line(5077, store_path=store, check=False).endswith("(new)")


@pytest.mark.parametrize("text", ['{"epochs": 7,', "[1, 2]", '"epochs"'])
def test_bad_dashboard_defaults_in_the_environment_are_an_error_naming_the_variable(served, capsys, monkeypatch,
                                                                                      text):
    monkeypatch.setenv(DEFAULTS_ENV, text)
    assert main(["dashboard", "--port", str(_free_port())]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "$SNNLAB_DASHBOARD_DEFAULTS" in err and served == []
    with pytest.raises(ValueError, match=r"\$SNNLAB_DASHBOARD_DEFAULTS"):
        env_defaults()


def test_serve_dashboard_checks_before_starting_a_server(monkeypatch, tmp_path):
    started = []
    monkeypatch.setattr(serve_module.subprocess, "Popen", lambda cmd, **kw: started.append((cmd, kw)) or "proc")
    monkeypatch.setenv(DEFAULTS_ENV, "{bad")
    with pytest.raises(FileNotFoundError, match="folder that does not exist"):
        serve_module.serve_dashboard(port=_free_port(), store_path=tmp_path / "no" / "x.db", wait=False)
    with pytest.raises(ValueError, match=r"\$SNNLAB_DASHBOARD_DEFAULTS"):
        serve_module.serve_dashboard(port=_free_port(), store_path=tmp_path / "x.db", wait=False)
    assert started == []
    # defaults given replace the variable for the server: its old text does not matter
    assert serve_module.serve_dashboard(port=_free_port(), store_path=tmp_path / "x.db", wait=False,
                                        defaults={"epochs": 2}) == "proc"
    assert started[0][1]["env"][DEFAULTS_ENV] == '{"epochs": 2}'
    with pytest.raises(ValueError, match="port must be in 1..65535"):
        check_serve_settings(0, bind=False)


def test_the_page_warns_about_bad_defaults_in_the_environment(tmp_path, monkeypatch, caplog):
    pytest.importorskip("panel")
    from snnlab.dashboard.app import DashboardApp

    monkeypatch.setenv(DEFAULTS_ENV, '{"epochs": 7,')
    with caplog.at_level(logging.WARNING, logger="snnlab.dashboard.app"):
        app = DashboardApp(store_path=tmp_path / "runs.sqlite", defaults={"hidden": [16]})
    try:
        assert app.warning is not None and "$SNNLAB_DASHBOARD_DEFAULTS is not valid JSON" in app.warning
        assert app.warning_pane.visible and "$SNNLAB_DASHBOARD_DEFAULTS" in app.warning_pane.object
        assert app.warning_pane in app.view.objects
        assert any("$SNNLAB_DASHBOARD_DEFAULTS" in r.getMessage() for r in caplog.records)
        assert app.form.config().epochs == 5 and app.form.config().hidden == [16]  # the form's own defaults
    finally:
        app.close()
    monkeypatch.setenv(DEFAULTS_ENV, '{"epochs": 7}')
    app = DashboardApp(store_path=tmp_path / "runs.sqlite")
    try:
        assert app.warning is None and not app.warning_pane.visible and app.form.config().epochs == 7
    finally:
        app.close()


@pytest.mark.parametrize("how", ["--store", "SNNLAB_STORE"])
@pytest.mark.parametrize("name", ["runs/snnlab.sqlite", "runs/lab.sqlite"])
def test_a_store_named_in_the_default_runs_folder_of_a_fresh_folder_is_served(served, capsys, tmp_path, monkeypatch,
                                                                             how, name):
    """Review of the missing-folder check: the default store spelled out (``--store runs/snnlab.sqlite``, or
    ``$SNNLAB_STORE``) or another store in ``runs/`` was refused in a fresh folder, where the default is served and
    its ``runs/`` folder created (serve_dashboard's own example names ``runs/lab.sqlite``)."""
    monkeypatch.chdir(tmp_path)
    args = ["dashboard", "--port", str(_free_port())]
    if how == "--store":
        args += ["--store", name]
    else:
        monkeypatch.setenv("SNNLAB_STORE", name)
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert out.rstrip().endswith(f"run store: {tmp_path / name} (new)") and err == ""
    assert len(served) == 1
    check_serve_settings(5077, store_path=name, bind=False)
    with pytest.raises(FileNotFoundError, match="folder that does not exist"):  # other missing folders: refused
        check_serve_settings(5077, store_path="runz/snnlab.sqlite", bind=False)
    with pytest.raises(FileNotFoundError, match="folder that does not exist"):
        check_serve_settings(5077, store_path="runs/sub/snnlab.sqlite", bind=False)


def test_an_address_with_nothing_to_bind_is_an_error_and_nothing_is_announced(served, capsys, tmp_path, monkeypatch):
    """Review of the bind check: Tornado skips the addresses of a family the machine lacks (``::`` with IPv6 turned
    off) and binds nothing, without an error; Bokeh then fails (an AssertionError) after the line was printed."""
    import tornado.netutil

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tornado.netutil, "bind_sockets", lambda port, address=None, **kw: [])
    assert main(["dashboard", "--port", str(_free_port()), "--address", "::"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "cannot listen on :: port" in err and served == []
