"""Pool events: what a listener is told, and the registry that costs nothing when empty.

No I/O and no locking on the read side: listeners are kept per kind in tuples replaced as a
whole, so the shells read them without a lock and a listener added or removed meanwhile is
seen by the next event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["EVENT_KINDS", "Listener", "Listeners", "PoolEvent"]

#: Every kind of event, in the order they happen to one connection: opened (or failed to
#: open), lent, given back, reset, and dropped from the pool then closed; "timeout" is an
#: acquire that gave up.
EVENT_KINDS = (
    "connect",
    "connect_error",
    "checkout",
    "checkin",
    "reset",
    "drop",
    "close",
    "timeout",
)

_log = logging.getLogger("sessionpool.events")


@dataclass(frozen=True, slots=True)
class PoolEvent:
    """One thing that happened in a pool.

    Attributes:
        kind: one of `EVENT_KINDS`.
        pool: the pool's name.
        connection: the driver's connection it happened to (None for "timeout" and
            "connect_error"). Listeners must not keep it or use it after returning.
        duration: seconds it took: connect time ("connect"), wait ("checkout"; 0.0 when
            served at once), use ("checkin"), the reset ("reset"), the wait given up
            ("timeout"); None for the others.
        reason: why a connection was dropped or closed ("max_idle reached", "reset on return
            failed"...), or None.
        error: the exception, for "connect_error" and a failed "reset", else None.
    """

    kind: str
    pool: str
    connection: Any = None
    duration: float | None = None
    reason: str | None = None
    error: BaseException | None = None


Listener = Callable[[PoolEvent], object]


class Listeners:
    """Listeners per event kind. ``any_for(kind)`` is how a shell asks before it builds an
    event; ``emit`` calls each listener, and one that raises is logged and skipped (a
    listener never breaks the pool's work)."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._by_kind: dict[str, tuple[Listener, ...]] = {kind: () for kind in EVENT_KINDS}
        self._lock = threading.Lock()
        self._on_change = on_change

    def add(self, kind: str, listener: Listener) -> None:
        _check_kind(kind)
        if not callable(listener):
            raise ConfigError(f"listener must be callable, not {type(listener).__name__}")
        with self._lock:
            self._by_kind[kind] = (*self._by_kind[kind], listener)
        self._on_change()

    def remove(self, kind: str, listener: Listener) -> None:
        _check_kind(kind)
        with self._lock:
            current = self._by_kind[kind]
            if listener not in current:
                raise ConfigError(f"{listener!r} is not listening to {kind!r} events")
            kept = list(current)
            kept.remove(listener)
            self._by_kind[kind] = tuple(kept)
        self._on_change()

    def after_fork(self) -> None:
        """In a forked child: a new lock (the parent's may have been held at the fork)."""
        self._lock = threading.Lock()

    def any_for(self, kind: str) -> bool:
        return bool(self._by_kind[kind])

    def __bool__(self) -> bool:
        return any(self._by_kind.values())

    def emit(self, event: PoolEvent) -> None:
        for listener in self._by_kind[event.kind]:
            try:
                listener(event)
            except Exception:
                _log.exception("pool %r: a %r listener raised; ignored", event.pool, event.kind)


def _check_kind(kind: str) -> None:
    if kind not in EVENT_KINDS:
        raise ConfigError(f"event kind must be one of {', '.join(EVENT_KINDS)}; got {kind!r}")
