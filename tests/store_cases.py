"""Helpers shared by the run store's liveness tests (owners, machine and boot ids)."""
from __future__ import annotations

import subprocess
import sys

import snnlab.experiments.store as store_mod


def ended_pid() -> int:
    """The id of a process that has ended (and been reaped: no process has its id now)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def pretend_machine(monkeypatch, machine: str | None, boot: str | None) -> None:
    """This process reads ``machine`` and ``boot`` as its machine id and boot id."""
    monkeypatch.setattr(store_mod, "_read_machine_id", lambda: machine)
    monkeypatch.setattr(store_mod, "_read_boot_id", lambda: boot)
    monkeypatch.setattr(store_mod, "_MACHINE", {})
