"""The threads snnlab starts on the user's behalf, and which thread trains which model right now.

:class:`ContextThread` (and :func:`start_thread`, which starts one) runs its target in a copy of the context
(:mod:`contextvars`) of the thread that starts it. A plain ``threading.Thread`` starts in an empty context: in
Jupyter (ipykernel 7 keeps the cell being run in a ``ContextVar``) its output and log records (a failing callback's
traceback, "training run ... failed") land under whatever cell runs at that moment; a ``ContextThread`` started
by a cell writes under that cell.

:func:`training_model` marks a model (and its submodules) as trained by the calling thread for a block (the
:class:`~snnlab.training.Trainer` marks its model while it runs); :func:`training_thread` tells which thread that
is, so that an evaluation from another thread (which flips the shared ``model.training`` flag) can warn.

Example:
    >>> import contextvars
    >>> cell = contextvars.ContextVar("cell", default=None)
    >>> token = cell.set("cell A")
    >>> seen = []
    >>> start_thread(lambda: seen.append(cell.get()), name="demo").join()
    >>> seen
    ['cell A']
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> with training_model(net):
    ...     training_thread(net[0]) is threading.current_thread()
    True
    >>> training_thread(net) is None
    True
"""
from __future__ import annotations

import contextlib
import contextvars
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["ContextThread", "start_thread", "training_model", "training_thread"]


class ContextThread(threading.Thread):
    """A ``threading.Thread`` whose target runs in a copy of the context of the thread that calls :meth:`start`
    (``contextvars.copy_context().run``): the context variables set there (Jupyter's current cell, ...) are
    seen in the thread, and the thread's own changes to them stay in it."""

    _context: contextvars.Context | None = None

    def start(self) -> None:
        self._context = contextvars.copy_context()
        super().start()

    def run(self) -> None:
        # (dropped here, as Thread.run drops its target: a finished thread object, e.g. a trainer's last one, keeps
        # no reference to what the starting context held)
        context, self._context = self._context if self._context is not None else contextvars.copy_context(), None
        context.run(super().run)


def start_thread(target: Callable[..., Any], name: str, daemon: bool = True, args: Iterable[Any] = (),
                 kwargs: Mapping[str, Any] | None = None) -> ContextThread:
    """Start and return a :class:`ContextThread` that calls ``target(*args, **kwargs)`` in a copy of the calling
    thread's context (in Jupyter: its output goes to the cell that started it).

    Example:
        >>> t = start_thread(print, name="snnlab-demo", args=("from the thread",)); t.join()
        from the thread
        >>> t.name, t.daemon
        ('snnlab-demo', True)
    """
    if not callable(target):
        raise TypeError(f"start_thread: target must be callable, got {type(target).__name__}")
    thread = ContextThread(target=target, name=name, args=tuple(args), kwargs=dict(kwargs or {}), daemon=daemon)
    thread.start()
    return thread


_lock = threading.Lock()
#: module -> (the thread training it, whether it trains now); weak keys: a mark keeps no model alive once its block ends
_trained: weakref.WeakKeyDictionary[nn.Module, tuple[threading.Thread, Callable[[], bool]]] = weakref.WeakKeyDictionary()
#: id -> mark of the training_model blocks open now (an earlier mark is put back only while its block is open)
_open: dict[int, tuple[threading.Thread, Callable[[], bool]]] = {}


def _always() -> bool:
    return True


@contextlib.contextmanager
def training_model(model: nn.Module, active: Callable[[], bool] | None = None) -> Iterator[None]:
    """Mark ``model`` and its submodules as trained by the calling thread for the block (see
    :func:`training_thread`); ``active`` (if given) tells whether it trains right now (the Trainer's: not while
    paused). A ``copy.deepcopy(model)`` is not marked."""
    me = threading.current_thread()
    mark = (me, active if active is not None else _always)
    modules = list(model.modules())
    with _lock:
        before = {m: _trained.get(m) for m in modules}
        for m in modules:
            _trained[m] = mark
        _open[id(mark)] = mark
    try:
        yield
    finally:
        with _lock:
            del _open[id(mark)]
            for m in modules:
                if _trained.get(m) is mark:  # (not a mark another thread made since)
                    earlier = before[m]
                    # (an earlier block that has ended since, e.g. in another thread, is not put back: it would mark
                    # the model as trained by that thread for good, and its `active` keep the model alive)
                    if earlier is not None and _open.get(id(earlier)) is earlier:
                        _trained[m] = earlier
                    else:
                        del _trained[m]


def training_thread(model: nn.Module) -> threading.Thread | None:
    """The live thread that trains ``model``, one of its submodules or a model containing it right now
    (:func:`training_model`, not while its ``active`` says otherwise: a paused run), else None."""
    with _lock:
        if not _trained:
            return None
        marks = {id(mark): mark for mark in (_trained.get(m) for m in model.modules()) if mark is not None}
    for thread, active in marks.values():  # (outside the lock: active may take the trainer's)
        if thread.is_alive() and active():
            return thread
    return None
