"""AsyncLease: the per-checkout handle of an `AsyncPool`, a transparent proxy of the driver's
connection (coroutine methods stay coroutines).

Part of the asyncio shell: ``release`` runs the return fast lane inline and leaves every other
decision to the pool. A release interrupted by cancellation never returns a connection in an
unknown state: the pool drops it.
"""

from __future__ import annotations

from threading import get_ident
from time import monotonic
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._core.records import CLOSED, IDLE
from .._proxy import proxy_class_for, unusable
from ..errors import LeaseReleased

if TYPE_CHECKING:
    from .._core.records import Slot
    from .pool import AsyncPool

__all__ = ["AsyncLease", "async_lease_class_for"]


class AsyncLease:
    """A connection borrowed from an `AsyncPool`. Use it as the driver connection it wraps.

    ``await lease.release()`` (or ``await lease.close()``, or leaving ``async with``) gives it
    back; after that every attribute access raises `LeaseReleased`. ``tag`` may be set
    before release to retag the session.
    """

    __slots__ = ("_pool", "_slot", "tag")

    _pool: AsyncPool
    _slot: Slot | None
    tag: str | None

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

    @property
    def driver_connection(self) -> Any:
        """The driver's own connection object, for what the proxy cannot forward."""
        slot = self._slot
        if slot is None or slot.state == CLOSED:
            raise unusable(slot, "driver_connection")
        slot.dirty = True
        return slot.connection

    @property
    def is_released(self) -> bool:
        return self._slot is None

    @property
    def pool(self) -> AsyncPool:
        return self._pool

    async def release(self, tag: str | None = None) -> None:
        """Give the connection back to its pool, optionally retagged (see `Lease.release`).

        Raises:
            LeaseReleased: it was already given back.
        """
        slot = self._slot
        if slot is None:
            raise LeaseReleased("this connection was already returned to the pool")
        pool = self._pool
        if tag is None:
            tag = self.tag
        if tag is not None and tag is not slot.tag:
            tag = pool._normalize_tag(tag)
        if pool._thread != get_ident():
            pool._bind_loop()  # raises UsageError: the pool belongs to another loop
        self._slot = None
        now = monotonic()
        if (
            pool._return_hooks
            and (pool._observing_returns or now >= slot.expires_at or slot.uses >= pool._max_uses)
            and pool._returning(slot, now)
        ):
            return  # its lifetime or its uses are spent: retired, not reset
        if slot.dirty:
            # Settled here when the driver can tell locally that nothing needs resetting
            # (no coroutine for the common case); else the pool resets, or drops on failure.
            if pool._reset_mode == "rollback" and pool._connector.driver.is_clean(slot.connection):
                slot.dirty = slot.fresh = False
            elif not await pool._after_use(slot):
                return
        core = pool._core
        # The core's fast lane (see _core/state.py); no lock: one event loop runs the pool.
        if tag is None and core.calm and slot.key is None and slot.generation == core.generation:
            slot.last_used = monotonic()
            slot.tag = None
            slot.state = IDLE
            core.fast_idle.append(slot)
            return
        pool._give_back(slot, tag)

    close = release

    async def drop(self) -> None:
        """Close the underlying connection and remove it from the pool (it is broken)."""
        await self._pool.drop(self)

    async def __aenter__(self) -> AsyncLease:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        slot = self._slot
        if slot is None:
            return
        if exc is not None and self._pool.is_disconnect(exc, slot.connection):
            self._pool._saw_disconnect(monotonic())  # the others may be dead too
            await self.drop()  # the block failed because the connection died
            return
        await self.release()

    def __repr__(self) -> str:
        slot = self._slot
        if slot is None:
            return "<AsyncLease released>"
        return f"<AsyncLease of {type(slot.connection).__name__} tag={self.tag!r}>"


def async_lease_class_for(connection: Any) -> type[AsyncLease]:
    """The AsyncLease subclass that proxies connections of this one's class."""
    return proxy_class_for(connection, AsyncLease)
