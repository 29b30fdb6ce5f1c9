"""What lets an interrupted run resume exactly: the global random states, step-boundary snapshots, and Ctrl-C.

* :func:`global_rng_state` / :func:`set_global_rng_state`: torch's, NumPy's, Python's (and CUDA's) random states
  as checkpointable types.
* :func:`step_boundary` / :func:`roll_back`: what a training step changes before its optimiser step (the random
  states, batch-norm statistics), saved at the step's start and put back when the step is cut short.
* :func:`handle_signals`: in the main thread, the first signal can ask for a graceful stop, later ones
  interrupt (the trainer's Ctrl-C and the CLI's SIGINT / SIGTERM).

Example:
    >>> state = global_rng_state(cuda=False)
    >>> a = torch.rand(1); set_global_rng_state(state); bool(torch.rand(1) == a)
    True
"""
from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["global_rng_state", "set_global_rng_state", "batch_norm_buffers", "step_boundary", "roll_back",
           "handle_signals", "hangup_signal", "tell"]


def global_rng_state(cuda: bool) -> dict[str, Any]:
    """torch's, NumPy's, Python's (and, with ``cuda``, every CUDA device's) global random states."""
    np_state = np.random.get_state()
    rng: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": random.getstate(),
    }
    if cuda and torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def set_global_rng_state(rng: dict[str, Any], cuda: bool = True) -> None:
    """Put back what :func:`global_rng_state` returned (the parts it holds; CUDA's only with ``cuda``)."""
    if "torch" in rng:
        torch.set_rng_state(rng["torch"])
    if "numpy" in rng:
        n = rng["numpy"]
        np.random.set_state((n[0], n[1].numpy().astype(np.uint32), int(n[2]), int(n[3]), float(n[4])))
    if "python" in rng:
        v, st, g = rng["python"]
        random.setstate((v, tuple(st), g))
    if "cuda" in rng and cuda:
        torch.cuda.set_rng_state_all(rng["cuda"])


def batch_norm_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """``{name: buffer}`` of ``model``'s batch-norm statistics: the buffers a training forward changes."""
    return {name: b for prefix, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
            for name, b in m.named_buffers(prefix=prefix)}


def step_boundary(buffers: dict[str, torch.Tensor], cuda: bool) -> dict[str, Any]:
    """The random states and a copy of ``buffers`` (:func:`batch_norm_buffers`): what a step changes before its
    optimiser step."""
    return {"rng": global_rng_state(cuda), "buffers": {name: b.detach().clone() for name, b in buffers.items()}}


def roll_back(model: nn.Module, boundary: dict[str, Any], cuda: bool) -> None:
    """Put ``model``'s batch-norm statistics and the random states back to a :func:`step_boundary`."""
    own = dict(model.named_buffers())
    with torch.no_grad():
        for name, value in boundary["buffers"].items():
            own[name].copy_(value)
    set_global_rng_state(boundary["rng"], cuda)


def hangup_signal() -> int | None:
    """SIGHUP (the terminal or ssh session closing), for a run to stop on, unless it is ignored (``nohup``: the run
    goes on) or the platform has none (Windows): then None.

    Example:
        >>> hangup_signal() in (None, getattr(signal, "SIGHUP", None))
        True
    """
    hup = getattr(signal, "SIGHUP", None)
    return None if hup is None or signal.getsignal(hup) is signal.SIG_IGN else hup


@contextlib.contextmanager
def handle_signals(first: Callable[[int], bool], later: Callable[[int], None],
                   signals: tuple[int, ...] = (signal.SIGINT,), only_over_default: bool = True) -> Iterator[list[int]]:
    """Within the block, the first of ``signals`` calls ``first(signum)``; when that returns False, and for every
    later signal, ``later(signum)`` is called (it may raise). Yields the list of signals received.

    Only in the main thread (where signals arrive); with ``only_over_default``, only where SIGINT still has
    Python's own handler (a program or kernel with its own handler keeps it).
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread() or (
            only_over_default and signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield received
        return

    def handler(signum, frame):
        received.append(signum)
        if len(received) == 1 and first(signum):
            return
        later(signum)

    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield received
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def tell(message: str) -> None:
    """Print ``message`` on stderr from a signal handler (a write it interrupts must not fail the handler)."""
    try:
        print(message, file=sys.stderr, flush=True)
    except (OSError, RuntimeError):  # stderr busy (a reentrant write)
        pass
