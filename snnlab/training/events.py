"""A small thread-safe event bus for training progress.

The trainer publishes :class:`Event` objects; consumers either register a callback (called in
the trainer's thread -- keep it quick) or take an :class:`EventQueue` and read it from their own
thread (a dashboard, a notebook cell). A failing callback is logged and never stops training;
a slow queue reader never blocks training (a bounded queue drops its oldest events).

Example:
    >>> bus = EventBus()
    >>> seen = []
    >>> unsubscribe = bus.subscribe(lambda e: seen.append(e.kind))
    >>> _ = bus.emit("started", run_id="r1")
    >>> unsubscribe()
    >>> _ = bus.emit("finished", run_id="r1")
    >>> seen
    ['started']
"""
from __future__ import annotations

import collections
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["EVENT_KINDS", "TERMINAL_KINDS", "Event", "EventBus", "EventQueue"]

log = logging.getLogger(__name__)

EVENT_KINDS = ("started", "step", "epoch", "evaluation", "paused", "resumed", "finished", "failed", "stopped")
TERMINAL_KINDS = ("finished", "failed", "stopped")


@dataclass(frozen=True)
class Event:
    """One training event: ``kind`` (see ``EVENT_KINDS``), the run, global ``step``, ``epoch`` and a data dict."""

    kind: str
    run_id: str | None = None
    step: int = 0
    epoch: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)

    @property
    def terminal(self) -> bool:
        """True for the last event of a run ("finished", "failed" or "stopped")."""
        return self.kind in TERMINAL_KINDS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EventQueue:
    """A subscription read from another thread: ``get(timeout)`` or iterate.

    Iteration ends after a terminal event (unless ``stop_at_terminal=False``) or :meth:`close`.
    With ``maxsize`` the oldest events are dropped when the reader falls behind (``dropped`` counts them),
    so the publisher never blocks.
    """

    def __init__(self, bus: "EventBus", kinds: Iterable[str] | None, maxsize: int | None,
                 stop_at_terminal: bool) -> None:
        self._bus = bus
        self.kinds = None if kinds is None else frozenset(kinds)
        self._items: collections.deque[Event] = collections.deque(maxlen=maxsize or None)
        self._cond = threading.Condition()
        self._closed = False
        self.stop_at_terminal = stop_at_terminal
        self.dropped = 0

    def _put(self, event: Event) -> None:
        if self.kinds is not None and event.kind not in self.kinds and not event.terminal:
            return
        with self._cond:
            if self._closed:
                return
            if self._items.maxlen is not None and len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(event)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Event:
        """Next event; raises ``queue.Empty`` after ``timeout`` seconds (or at once when closed and empty)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise queue.Empty
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._cond.wait(remaining)
            return self._items.popleft()

    def get_nowait(self) -> Event:
        return self.get(timeout=0)

    def drain(self) -> list[Event]:
        """All events waiting now (without blocking)."""
        with self._cond:
            items = list(self._items)
            self._items.clear()
        return items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def __iter__(self) -> Iterator[Event]:
        while True:
            try:
                ev = self.get()
            except queue.Empty:
                return
            yield ev
            if self.stop_at_terminal and ev.terminal:
                return

    def close(self) -> None:
        """Unsubscribe; a waiting reader wakes up and iteration ends once the queue is empty."""
        self._bus._remove_queue(self)
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __enter__(self) -> "EventQueue":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _checked_kinds(kinds: Iterable[str] | None) -> frozenset[str] | None:
    """``kinds`` as a frozenset; ``ValueError`` naming any that is not an event kind (a typo would never fire)."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = [kinds]
    kinds = frozenset(kinds)
    bad = sorted(kinds - set(EVENT_KINDS))
    if bad:
        raise ValueError(f"unknown event kind(s) {bad}; kinds are {list(EVENT_KINDS)}")
    return kinds


class EventBus:
    """Publish/subscribe of :class:`Event` objects, safe to use from several threads.

    ``keep`` recent events are remembered (:meth:`recent`) for consumers that connect late.
    """

    def __init__(self, keep: int = 1000) -> None:
        self._lock = threading.RLock()
        self._callbacks: dict[int, tuple[Callable[[Event], Any], frozenset[str] | None]] = {}
        self._queues: list[EventQueue] = []
        self._ids = itertools.count()
        self._recent: collections.deque[Event] = collections.deque(maxlen=keep or None)
        self.callback_errors = 0

    def subscribe(self, callback: Callable[[Event], Any], kinds: Iterable[str] | None = None) -> Callable[[], None]:
        """Call ``callback(event)`` for every event (or only ``kinds``); returns a function that unsubscribes."""
        if not callable(callback):
            raise TypeError(f"subscribe expects a callable, got {type(callback).__name__}")
        kinds = _checked_kinds(kinds)
        with self._lock:
            key = next(self._ids)
            self._callbacks[key] = (callback, kinds)

        def unsubscribe() -> None:
            with self._lock:
                self._callbacks.pop(key, None)

        return unsubscribe

    def queue(self, kinds: Iterable[str] | None = None, maxsize: int | None = 10_000,
              stop_at_terminal: bool = True, replay: bool = False) -> EventQueue:
        """A queue subscription for a consumer in another thread (``replay`` first adds the recent events)."""
        q = EventQueue(self, _checked_kinds(kinds), maxsize, stop_at_terminal)
        with self._lock:
            if replay:
                for ev in self._recent:
                    q._put(ev)
            self._queues.append(q)
        return q

    subscribe_queue = queue

    def _remove_queue(self, q: EventQueue) -> None:
        with self._lock:
            if q in self._queues:
                self._queues.remove(q)

    def publish(self, event: Event) -> Event:
        """Deliver ``event`` to every subscriber; subscriber exceptions are logged and swallowed."""
        if event.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {event.kind!r}; kinds are {list(EVENT_KINDS)}")
        with self._lock:
            self._recent.append(event)
            callbacks = list(self._callbacks.values())
            queues = list(self._queues)
        for q in queues:
            q._put(event)
        for cb, kinds in callbacks:
            if kinds is not None and event.kind not in kinds:
                continue
            try:
                cb(event)
            except Exception:  # a broken subscriber must never kill training
                self.callback_errors += 1
                log.exception("event subscriber %r failed on a %r event; training continues", cb, event.kind)
        return event

    def emit(self, kind: str, run_id: str | None = None, step: int = 0, epoch: int = 0, **data: Any) -> Event:
        """Build and publish an :class:`Event`."""
        return self.publish(Event(kind=kind, run_id=run_id, step=int(step), epoch=int(epoch), data=data))

    def recent(self, n: int | None = None, kinds: Iterable[str] | None = None) -> list[Event]:
        """The last ``n`` remembered events (all when ``n`` is None), optionally of some kinds only."""
        with self._lock:
            evs = list(self._recent)
        if kinds is not None:
            kinds = set(kinds)
            evs = [e for e in evs if e.kind in kinds]
        return evs if n is None else evs[-n:]
