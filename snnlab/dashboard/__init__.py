"""The snnlab dashboard: a Panel app built from library calls (config form, live training, runs, sweeps).

Example:
    >>> from snnlab.dashboard import build_app
    >>> page = build_app(store_path="runs/snnlab.sqlite")       # doctest: +SKIP
    >>> page.dashboard.live.start()                              # doctest: +SKIP

Serve it with ``snnlab dashboard`` (or ``python -m snnlab dashboard``; works from an installed package) or
:func:`serve_dashboard`; from a source checkout also ``panel serve dashboards/lab.py --address 127.0.0.1``.
"""
from .serve import build_serve_command, require_panel, serve_dashboard


def __getattr__(name):  # the Panel app is imported lazily: serve_dashboard needs no Panel in this process
    if name in ("build_app", "DashboardApp", "app_path"):
        require_panel()
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module 'snnlab.dashboard' has no attribute {name!r}")


__all__ = ["build_app", "DashboardApp", "serve_dashboard", "build_serve_command", "app_path"]
