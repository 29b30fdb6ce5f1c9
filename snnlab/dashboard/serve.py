"""Start the dashboard server: ``python -m panel serve <snnlab/dashboard/served/app.py>`` in a subprocess.

``panel.command.main`` reads ``sys.argv`` itself, so the server runs as its own process; this
module only builds its command line and environment, and checks the settings first
(:func:`check_serve_settings`: the port, the address, the run store's folder, ``$SNNLAB_DASHBOARD_DEFAULTS``).
It binds to ``127.0.0.1`` by default and only accepts websocket connections from the address it serves.
"""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = ["serve_dashboard", "build_serve_command", "check_serve_settings", "served_store_path", "startup_line",
           "env_defaults", "check_default_keys", "page_url", "APP_FILE", "DEFAULTS_ENV"]

#: the script handed to ``panel serve`` (page ``/app``): it only imports :func:`snnlab.dashboard.app.build_app`.
#: (Not app.py itself: Bokeh clears a served script's globals before the session-destroyed callbacks run, so a
#: DashboardApp defined there could not stop a closed tab's training.)
APP_FILE = Path(__file__).resolve().parent / "served" / "app.py"

#: environment variable with a JSON object of the form's starting values (set by ``serve_dashboard(defaults=...)``)
DEFAULTS_ENV = "SNNLAB_DASHBOARD_DEFAULTS"

#: addresses whose page a browser on this machine opens as ``localhost`` (the websocket origins always allowed)
_LOCAL_ADDRESSES = ("127.0.0.1", "localhost", "0.0.0.0", "::", "::1", "")


def require_panel() -> None:
    """Raise a clear :class:`ImportError` when the dashboard's packages (the ``lab`` extra) are missing (found,
    not imported: the server runs in its own process).

    Example:
        >>> require_panel()   # installed here: nothing happens
    """
    from snnlab.extras import check_installed

    for dependency in ("panel", "holoviews", "bokeh"):
        check_installed(dependency, extra="lab", feature="the snnlab dashboard")


def check_default_keys(values: dict[str, Any], where: str = "dashboard defaults") -> None:
    """Raise :class:`~snnlab.training.config.UnknownKeyError` (a ``ValueError``) when a key of the form's starting
    values is not a configuration field, with the configuration's own "did you mean" hint (a misspelt field is
    refused as on every other surface, not dropped); and a ``ValueError`` for an on/off field (``delays``...) set
    to anything but true or false, which the form's checkbox cannot show (the page would not load). Other bad
    values reach the form's boxes, which say what is wrong when the run starts.

    Example:
        >>> check_default_keys({"epochs": 3})   # fine: nothing happens
        >>> check_default_keys({"epoch": 3}, "serve_dashboard: defaults")
        Traceback (most recent call last):
        ...
        snnlab.training.config.UnknownKeyError: serve_dashboard: defaults: unknown configuration key(s): 'epoch' (did you mean 'epochs'?); ...
        >>> check_default_keys({"delays": 1})
        Traceback (most recent call last):
        ...
        ValueError: dashboard defaults: 'delays' must be true or false, got 1
    """
    from snnlab.training.config import ExperimentConfig, unknown_keys_error  # (here: torch only when needed)

    known = ExperimentConfig.fields()
    unknown = [k for k in values if k not in known]
    if unknown:
        raise unknown_keys_error(unknown, known, f"{where}: unknown configuration key(s)")
    schema = ExperimentConfig.schema()
    for k, v in values.items():
        if schema[k]["type"] == "Boolean" and not isinstance(v, bool):
            raise ValueError(f"{where}: {k!r} must be true or false, got {v!r}")


def env_defaults(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The form's starting values in ``$SNNLAB_DASHBOARD_DEFAULTS`` (``{}`` when unset or blank); a ``ValueError``
    naming the variable when it holds anything but a JSON object, a key that is not a configuration field
    (:class:`~snnlab.training.config.UnknownKeyError`, with a "did you mean" hint) or an on/off field set to
    anything but true or false (:func:`check_default_keys`).

    Example:
        >>> env_defaults({"SNNLAB_DASHBOARD_DEFAULTS": '{"epochs": 7}'}), env_defaults({})
        ({'epochs': 7}, {})
        >>> env_defaults({"SNNLAB_DASHBOARD_DEFAULTS": '{"epochs": 7,'})
        Traceback (most recent call last):
        ...
        ValueError: $SNNLAB_DASHBOARD_DEFAULTS is not valid JSON (...): '{"epochs": 7,'
        >>> env_defaults({"SNNLAB_DASHBOARD_DEFAULTS": '{"epoch": 7}'})
        Traceback (most recent call last):
        ...
        snnlab.training.config.UnknownKeyError: $SNNLAB_DASHBOARD_DEFAULTS: unknown configuration key(s): 'epoch' (did you mean 'epochs'?); ...
    """
    text = (os.environ if environ is None else environ).get(DEFAULTS_ENV, "").strip()
    if not text:
        return {}
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"${DEFAULTS_ENV} is not valid JSON ({exc}): {text[:200]!r}") from None
    if not isinstance(values, dict):
        raise ValueError(f"${DEFAULTS_ENV} must be a JSON object of form values like "
                         f"{{\"epochs\": 3}}, got a {type(values).__name__}: {text[:200]!r}")
    check_default_keys(values, f"${DEFAULTS_ENV}")
    return values


def _check_address(address: str) -> None:
    """``ValueError`` for a bind address whose page Bokeh cannot accept: an IPv6 one other than ``::`` / ``::1``
    (its allowlist reads ``host:port`` with one colon)."""
    if ":" in address and address not in _LOCAL_ADDRESSES:
        raise ValueError(f"serve_dashboard: the IPv6 address {address!r} cannot be a websocket origin the server "
                         "accepts (Bokeh reads 'host:port' with one colon); bind to '::' (every interface) or "
                         "'::1' (this machine), or give the machine's host name or IPv4 address")


def build_serve_command(port: int = 5006, address: str = "127.0.0.1", show: bool = False, num_threads: int = 2,
                        app: str | os.PathLike | None = None, extra_args: Sequence[str] = ()) -> list[str]:
    """The ``python -m panel serve ...`` argument list :func:`serve_dashboard` runs. The page is accepted from
    ``localhost`` and ``127.0.0.1`` and, for another bind address, from that address (an IPv6 one other than ``::``
    and ``::1`` is a ``ValueError``: Bokeh cannot allow it as an origin).

    Example:
        >>> cmd = build_serve_command(port=5077)
        >>> cmd[1:4], cmd[cmd.index("--port") + 1], "--allow-websocket-origin=localhost:5077" in cmd
        (['-m', 'panel', 'serve'], '5077', True)
    """
    port = _check_port(port)
    if int(num_threads) < 0:
        raise ValueError(f"serve_dashboard: num_threads must be >= 0, got {num_threads}")
    _check_address(address)
    origins = [f"127.0.0.1:{port}", f"localhost:{port}"]
    if address not in _LOCAL_ADDRESSES:
        origins.append(f"{address}:{port}")
    cmd = [sys.executable, "-m", "panel", "serve", str(app or APP_FILE), "--address", address, "--port", str(port)]
    cmd += [f"--allow-websocket-origin={o}" for o in origins]
    # forget closed tabs quickly: their trainings stop (on_session_destroyed) within seconds
    cmd += ["--check-unused-sessions", "2000", "--unused-session-lifetime", "3000"]
    if int(num_threads) > 0:
        cmd += ["--num-threads", str(int(num_threads))]
    if show:
        cmd.append("--show")
    return cmd + [str(a) for a in extra_args]


def _store_given(store_path: str | os.PathLike | None) -> bool:
    """Whether ``store_path`` names a store (None and "" mean the default, as an empty ``SNNLAB_STORE``)."""
    return store_path is not None and str(store_path) != ""


def served_store_path(store_path: str | os.PathLike | None = None) -> Path:
    """The absolute path of the run store the served app opens: ``store_path`` (what :func:`serve_dashboard` hands
    the server as ``SNNLAB_STORE``), else :func:`snnlab.experiments.store.default_store_path` (``$SNNLAB_STORE`` or
    ``runs/snnlab.sqlite``, from the current folder), resolved as the app resolves it.

    Example:
        >>> import os
        >>> served_store_path("runs/x.sqlite") == Path("runs/x.sqlite").resolve()
        True
        >>> from snnlab.experiments.store import default_store_path
        >>> served_store_path() == Path(os.path.abspath(default_store_path()))
        True
    """
    from snnlab.experiments.store import default_store_path

    if _store_given(store_path):
        return Path(store_path).resolve()
    return Path(os.path.abspath(default_store_path()))  # the app's shared_store(): os.path.abspath


def _check_port(port: int) -> int:
    port = int(port)
    if not 0 < port < 65536:
        raise ValueError(f"serve_dashboard: port must be in 1..65535, got {port}")
    return port


def _check_store_folder(store_path: str | os.PathLike | None, environ: dict[str, str]) -> None:
    """``FileNotFoundError`` when a store named by ``store_path`` or ``$SNNLAB_STORE`` lies in a folder that does
    not exist (a typo would start a new empty store in new folders); the default ``runs/`` folder is created, also
    for a store named there (``--store runs/snnlab.sqlite``, the default spelled out, or ``runs/lab.sqlite``)."""
    named = store_path if _store_given(store_path) else (environ.get("SNNLAB_STORE") or None)
    if named is None:
        return
    where = "" if _store_given(store_path) else " (named by $SNNLAB_STORE)"
    path = Path(named).resolve()  # (as served_store_path resolves it)
    if path.is_dir():
        raise FileNotFoundError(f"serve_dashboard: the run store {path}{where} is a folder, not a SQLite file")
    from snnlab.experiments.store import DEFAULT_STORE_FOLDER

    if not path.parent.is_dir() and path.parent != DEFAULT_STORE_FOLDER.resolve():
        raise FileNotFoundError(f"serve_dashboard: the run store {path}{where} is in a folder that does not exist "
                                f"({path.parent}); a typo? To start a new store there, create the folder first")


def _check_bindable(port: int, address: str) -> None:
    """An ``OSError`` saying so when the server could not listen on ``address:port`` (in use, say): bound and
    released at once, as Tornado binds (same sockets, same options)."""
    from tornado.netutil import bind_sockets  # (Bokeh's server: installed with the lab extra)

    try:
        sockets = bind_sockets(port, address or None)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise OSError(f"serve_dashboard: port {port} is already in use on {address or 'every interface'} "
                          "(another dashboard or server?); give another port") from None
        raise OSError(f"serve_dashboard: cannot listen on {address or 'every interface'} port {port}: "
                      f"{exc.strerror or exc}") from None
    for sock in sockets:
        sock.close()
    if not sockets:  # every address of a family this machine lacks (IPv6 turned off, say): Bokeh fails on it too
        raise OSError(f"serve_dashboard: cannot listen on {address or 'every interface'} port {port}: no address of "
                      "it can be bound on this machine (is IPv6 turned off?)")


def check_serve_settings(port: int = 5006, address: str = "127.0.0.1", store_path: str | os.PathLike | None = None,
                         bind: bool = True, environ: dict[str, str] | None = None) -> None:
    """Raise before any server starts when it could not serve: a port outside 1..65535 or an IPv6 address Bokeh
    cannot accept (``ValueError``), a run store named by ``store_path`` or ``$SNNLAB_STORE`` in a folder that does
    not exist (``FileNotFoundError``; a store *file* that does not exist yet is a new store, and the default store's
    folder ``runs/`` is created), a
    ``$SNNLAB_DASHBOARD_DEFAULTS`` that is not a JSON object of configuration fields (``ValueError``; a misspelt
    field is an :class:`~snnlab.training.config.UnknownKeyError`) and, with ``bind``, a port this machine
    cannot listen on, e.g. one in use (``OSError``). ``environ``: the server's environment (default this process's).

    Example:
        >>> check_serve_settings(5077, bind=False)   # fine: nothing happens
        >>> check_serve_settings(70000)
        Traceback (most recent call last):
        ...
        ValueError: serve_dashboard: port must be in 1..65535, got 70000
    """
    environ = os.environ if environ is None else environ
    port = _check_port(port)
    _check_address(address)
    _check_store_folder(store_path, environ)
    env_defaults(environ)
    if bind:
        _check_bindable(port, address)


def page_url(port: int = 5006, address: str = "127.0.0.1") -> str:
    """The URL of the served page, one whose websocket the server accepts (:func:`build_serve_command`'s origins):
    ``localhost`` for the local and the all-interfaces addresses (``0.0.0.0``, ``::``), else the address itself.

    Example:
        >>> page_url(8000, "0.0.0.0"), page_url(8000, "10.0.0.5")
        ('http://localhost:8000/app', 'http://10.0.0.5:8000/app')
    """
    _check_address(address)
    host = "localhost" if address in _LOCAL_ADDRESSES else address
    return f"http://{host}:{int(port)}/{APP_FILE.stem}"


def startup_line(port: int = 5006, address: str = "127.0.0.1", store_path: str | os.PathLike | None = None,
                 check: bool = True) -> str:
    """What ``snnlab dashboard`` prints when it starts the server: the page's URL (:func:`page_url`) and the run
    store (:func:`served_store_path`; "new" when its file does not exist yet).

    With ``check`` (the default) the settings are checked first (:func:`check_serve_settings`, the port bound and
    released): what cannot be served raises here, so the line never announces a server that does not start.

    Example:
        >>> line = startup_line(5077, store_path="runs/x.sqlite", check=False)
        >>> line.startswith("snnlab dashboard: open http://localhost:5077/app in your browser (Ctrl-C stops it); ")
        True
        >>> line.endswith(f"run store: {served_store_path('runs/x.sqlite')} (new)")
        True
        >>> startup_line(70000)
        Traceback (most recent call last):
        ...
        ValueError: serve_dashboard: port must be in 1..65535, got 70000
    """
    if check:
        check_serve_settings(port, address, store_path)
    store = served_store_path(store_path)
    return (f"snnlab dashboard: open {page_url(port, address)} in your browser (Ctrl-C stops it); "
            f"run store: {store}" + ("" if store.exists() else " (new)"))


def serve_dashboard(port: int = 5006, address: str = "127.0.0.1", show: bool = False, num_threads: int = 2,
                    store_path: str | os.PathLike | None = None, defaults: dict[str, Any] | None = None,
                    app: str | os.PathLike | None = None, extra_args: Sequence[str] = (), wait: bool = True,
                    env: dict[str, str] | None = None, torch_threads: int = 1,
                    **popen_kwargs: Any) -> int | subprocess.Popen:
    """Serve the dashboard with ``panel serve`` in a subprocess.

    Args:
        port, address: where to listen (default: localhost only).
        show: open a browser tab.
        num_threads: Panel's thread pool for callbacks (keep it small on small machines; 0 = none).
        store_path: the run store (``SNNLAB_STORE`` for the server; default: its current value). Its folder must
            exist (a ``FileNotFoundError`` otherwise; ``runs/`` is created); a file that does not exist yet is a new
            store.
        defaults: starting values of the form, e.g. ``{"hidden": [32], "epochs": 3}`` (a key that is not a
            configuration field raises :class:`~snnlab.training.config.UnknownKeyError`).
        app: serve another app file instead of the packaged one.
        wait: block until the server exits (Ctrl-C stops it) and return its exit code; False returns
            the ``subprocess.Popen`` (stop it with ``.terminate()``).
        torch_threads: ``torch.set_num_threads`` in the server (each training runs in its own thread).
        env: the server's environment (default: this process's).
        popen_kwargs: passed to ``subprocess.Popen`` (e.g. ``stdout=`` for a log file).

    Settings that cannot be served raise before the server starts (:func:`check_serve_settings`).

    Example:
        >>> proc = serve_dashboard(port=5077, store_path="runs/lab.sqlite", wait=False)   # doctest: +SKIP
        >>> proc.terminate(); proc.wait()                                                # doctest: +SKIP
    """
    require_panel()  # here, not as a failing server process
    cmd = build_serve_command(port=port, address=address, show=show, num_threads=num_threads, app=app,
                              extra_args=extra_args)
    child_env = dict(os.environ if env is None else env)
    if defaults:
        check_default_keys(defaults, "serve_dashboard: defaults")
        child_env[DEFAULTS_ENV] = json.dumps(defaults)
    # (the port is not bound here: snnlab dashboard's startup_line did; a direct caller sees Bokeh's own error)
    check_serve_settings(port, address, store_path, bind=False, environ=child_env)
    if _store_given(store_path):
        child_env["SNNLAB_STORE"] = str(served_store_path(store_path))
    child_env["SNNLAB_TORCH_THREADS"] = str(max(1, int(torch_threads)))
    proc = subprocess.Popen(cmd, env=child_env, **popen_kwargs)
    if not wait:
        return proc
    restore = _stop_on_sigterm()
    try:
        return proc.wait()
    except (KeyboardInterrupt, _Terminated):  # Ctrl-C, or a SIGTERM (a service manager, kill): stop the server too
        proc.terminate()
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        restore()


class _Terminated(Exception):
    """Raised in the waiting process by SIGTERM."""


def _stop_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into :class:`_Terminated` while the server runs (main thread only); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)
