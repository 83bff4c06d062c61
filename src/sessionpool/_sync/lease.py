"""Lease: the per-checkout handle a borrower holds, a transparent proxy of the DB-API connection.

Any use after release raises at once, and the driver connection is no longer reachable from it.
Part of the threaded shell: its release runs the return hot path under the pool's lock and
leaves every other decision to the pool and its core.
"""

from __future__ import annotations

from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._core.records import CLOSED, IDLE
from .._pool_base import mark_hand_outs
from .._proxy import proxy_class_for, unusable
from ..errors import LeaseReleased

if TYPE_CHECKING:
    from .._core.records import Slot
    from .pool import Pool

__all__ = ["Lease", "lease_class_for"]

# What a release that left no effects runs: empty, and never the core's own list.
_NO_EFFECTS: list[Any] = []


class Lease:
    """A borrowed connection. Use it as the DB-API connection it wraps.

    Only a pool creates leases (it fills the three fields itself, see `Pool.acquire`).

    ``close()``, ``release()`` and leaving a ``with`` block give it back to the pool. After
    that every attribute access raises `LeaseReleased`. ``tag`` is the session's tag as
    handed out; set it before release to retag the session (cx_Oracle's ``conn.tag``).
    """

    # Three fields only: a lease is allocated on every acquire, so it is kept small.
    __slots__ = ("_pool", "_slot", "tag")

    _pool: Pool
    _slot: Slot | None
    tag: str | None

    if TYPE_CHECKING:
        # For type checkers only: at run time the driver's attributes are forwarded by
        # members generated per connection class (see lease_class_for); a real __getattr__
        # would make every attribute read of a lease slower, its own fields included.
        def __getattr__(self, name: str) -> Any: ...

    @property
    def driver_connection(self) -> Any:
        """The driver's own connection object, for what the proxy cannot forward."""
        slot = self._checked_slot()
        slot.dirty = True
        return slot.connection

    @property
    def is_released(self) -> bool:
        return self._slot is None

    @property
    def pool(self) -> Pool:
        return self._pool

    def release(self, tag: str | None = None) -> None:
        """Give the connection back to its pool, optionally retagged.

        The session is reset first (the pool's ``reset_on_return``) if the borrower used it;
        a reset that fails drops the connection instead.
        Raises:
            LeaseReleased: it was already given back.
        """
        # The return hot path lives here, one call deep, rather than in Pool: a Python call
        # costs as much as the rest of the path. It runs the core's fast lane inline (see
        # _core/state.py) and hands anything unusual to the pool.
        slot = self._slot
        if slot is None:
            raise LeaseReleased("this connection was already returned to the pool")
        pool = self._pool
        if tag is None:
            tag = self.tag
        if tag is not None and tag is not slot.tag:
            # Checked while the lease is still out: a malformed tag raises and loses nothing.
            tag = pool._normalize_tag(tag)
        self._slot = None
        now = monotonic()
        if (
            pool._return_hooks
            and (pool._observing_returns or now >= slot.expires_at or slot.uses >= pool._max_uses)
            and pool._returning(slot, now)
        ):
            # Tested inline first: a call costs as much as the rest of this path, and a pool
            # that retires connections would otherwise make it on every return.
            return  # its lifetime or its uses are spent: retired, not reset
        if slot.dirty and not pool._after_use(slot):
            return
        core = pool._core
        lock = pool._lock
        lock.acquire()
        try:
            # The core's fast lane. `calm` implies the slot is still BUSY: only
            # close(force=True) closes a borrowed slot, and a closed pool is never calm.
            if (
                tag is None
                and core.calm
                and slot.key is None
                and slot.generation == core.generation
            ):
                slot.last_used = now
                slot.tag = None
                slot.state = IDLE
                core.fast_idle.append(slot)
                return
            core.release(slot, now, tag)
            # Detached under the lock, never the core's own list (see PoolBase._take_effects).
            effects = core.effects
            if effects:
                core.effects = []
                mark_hand_outs(effects)
            else:
                effects = _NO_EFFECTS
        finally:
            lock.release()
        if effects:
            pool._run(effects)

    # DB-API close() returns the connection to the pool instead of closing it.
    close = release

    def drop(self) -> None:
        """Close the underlying connection and remove it from the pool (it is broken)."""
        self._pool.drop(self)

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        slot = self._slot
        if slot is None:
            return
        if exc is not None and self._pool.is_disconnect(exc, slot.connection):
            # The block failed because the connection died: it must not go back, and the
            # others last used before now may be dead too (checked at their next hand-out).
            self._pool._saw_disconnect(monotonic())
            self.drop()
            return
        self.release()

    def __repr__(self) -> str:
        slot = self._slot
        if slot is None:
            return "<Lease released>"
        return f"<Lease of {type(slot.connection).__name__} tag={self.tag!r}>"

    def _checked_slot(self) -> Slot:
        slot = self._slot
        if slot is None or slot.state == CLOSED:
            raise unusable(slot, "driver_connection")
        return slot


def lease_class_for(connection: Any) -> type[Lease]:
    """The Lease subclass that proxies connections of this one's class (see `_proxy`)."""
    return proxy_class_for(connection, Lease)
