"""What lets an interrupted run resume exactly: the global random states, step-boundary snapshots, and Ctrl-C.

* :func:`global_rng_state` / :func:`set_global_rng_state`: torch's, NumPy's, Python's (and CUDA's) random states
  as checkpointable types.
* :func:`step_boundary` / :func:`roll_back`: what a training step changes before its optimiser step (the random
  states, batch-norm statistics), saved at the step's start and put back when the step is cut short.
* :func:`first_ctrl_c_stops`: in the main thread, the first Ctrl-C asks for a graceful stop, a later one
  interrupts.

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

__all__ = ["global_rng_state", "set_global_rng_state", "step_boundary", "roll_back", "first_ctrl_c_stops"]


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


def step_boundary(model: nn.Module, cuda: bool) -> dict[str, Any]:
    """The random states and the batch-norm statistics of ``model``: what a step changes before its optimiser step."""
    buffers = {name: b.detach().clone() for name, m in model.named_modules()
               if isinstance(m, nn.modules.batchnorm._BatchNorm) for name, b in m.named_buffers(prefix=name)}
    return {"rng": global_rng_state(cuda), "buffers": buffers}


def roll_back(model: nn.Module, boundary: dict[str, Any], cuda: bool) -> None:
    """Put ``model``'s batch-norm statistics and the random states back to a :func:`step_boundary`."""
    own = dict(model.named_buffers())
    with torch.no_grad():
        for name, value in boundary["buffers"].items():
            own[name].copy_(value)
    set_global_rng_state(boundary["rng"], cuda)


@contextlib.contextmanager
def first_ctrl_c_stops(stop: Callable[[], None], later: Callable[[], None], message: str,
                       enabled: bool = True) -> Iterator[list[int]]:
    """Within the block, in the main thread where Ctrl-C would raise ``KeyboardInterrupt``: the first Ctrl-C calls
    ``stop()`` (and prints ``message``), every later one ``later()``. Yields the list of Ctrl-Cs received.
    Elsewhere (not ``enabled``, a thread, a program with its own handler) nothing changes."""
    asked: list[int] = []
    if (not enabled or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield asked
        return

    def handler(signum, frame):
        if asked:
            later()
            return
        asked.append(signum)
        stop()
        try:
            print(message, file=sys.stderr, flush=True)
        except (OSError, RuntimeError):  # stderr busy (a reentrant write): the stop is asked all the same
            pass

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield asked
    finally:
        signal.signal(signal.SIGINT, previous)
