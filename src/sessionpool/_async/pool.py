"""AsyncPool: the asyncio shell around the decision core.

Sync and async share everything but waiting and I/O: the core (`_core`), the settings,
identities, figures and error words (`_pool_base.PoolBase`) and the proxy classes (`_proxy`)
are written once. This module and `_sync/pool.py` each hold only how their world waits (a
future per waiter here, a lock per waiter there) and runs the core's effects (tasks here,
threads there); the two are kept parallel by hand, method for method, because generating one
from the other would cost the threaded hot path its explicit lock calls and this one its
lock-free fast lane. `tests/aio/test_surface.py` holds their public surfaces equal.

One event loop runs the pool, so the core needs no lock here: each call into it runs to
completion between two awaits. Every await that follows a decision of the core (waiting,
resetting, connecting) is written so that a cancellation at that point leaves the counts
exact and no connection lost: a cancelled waiter gives back what it was granted, an
interrupted reset drops its connection, an interrupted connect is reported as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import weakref
from collections.abc import Generator, Hashable
from threading import get_ident
from time import monotonic
from types import TracebackType
from typing import Any

from .._core.counts import CoreCounts, snapshot
from .._core.effects import CloseConnection, Effect, OpenConnections, RetryOpens, Wake
from .._core.records import BUSY, CLOSED, IDLE, Request, Slot
from .._leaks import record_where
from .._pool_base import DEFAULT, PoolBase
from ..config import PoolConfig, check_timeout
from ..drivers.async_base import AsyncConnector, within
from ..errors import ConnectionDead, LeaseReleased, PoolClosed, UsageError
from .lease import AsyncLease, async_lease_class_for
from .session import AsyncScopedSession, AsyncSession

__all__ = ["AsyncPool"]

_new_lease = object.__new__


class _NoGuard:
    """One event loop serializes the core; reads of several figures need no lock."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_GUARD = _NoGuard()


class AsyncPool(PoolBase):
    """An asyncio pool of connections, with every semantic of the threaded `Pool`.

    Build one with ``await sessionpool.create_async_pool(...)``. Borrow with
    ``async with pool.acquire() as conn:`` or ``conn = await pool.acquire()``.
    It belongs to the event loop it was opened in.
    """

    _lease_type = AsyncLease

    def __init__(self, connector: AsyncConnector, config: PoolConfig) -> None:
        super().__init__(connector, config)
        self._connector: AsyncConnector = connector
        self._loop: asyncio.AbstractEventLoop | None = None
        # The thread running that loop: the fast lanes compare it (a C call) instead of
        # asking asyncio for the running loop, which costs a getpid() system call on 3.11.
        self._thread: int | None = None
        # Tasks the pool started (opens, closes): kept so they are not collected mid-run
        # and so close() can wait for them.
        self._tasks: set[asyncio.Task[Any]] = set()
        self._openers: set[asyncio.Task[Any]] = set()
        self._disposed = False
        self._all_returned: asyncio.Event | None = None
        # The maintenance task (see `_maintenance`), and what wakes it early.
        self._maintainer: asyncio.Task[None] | None = None
        self._wake_maintainer: asyncio.Event | None = None
        # Futures of wait() callers, resolved when a connection opens or fails to.
        self._watchers: list[asyncio.Future[None]] = []

    # -- life cycle ------------------------------------------------------------------------

    async def open(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Open ``min_size`` connections, concurrently (see `Pool.open`)."""
        check_timeout("timeout", timeout)
        self._bind_loop()
        core = self._core
        errors_before = core.connect_errors
        core.start()
        openers = self._run(self._take_effects())
        self._start_maintainer()
        if not wait or not openers:
            return
        _, pending = await asyncio.wait(openers, timeout=timeout)
        if pending:
            raise self._open_timeout_error(len(openers), timeout)
        if core.connect_errors > errors_before and core.last_connect_error is not None:
            error = core.last_connect_error
            await self.close(force=True)
            raise error

    async def close(self, force: bool = False, timeout: float | None = None) -> None:
        """Close the pool and every connection it holds (see `Pool.close`, ``timeout``
        included). Waits, at most ``reset_timeout`` plus a second, for the connections
        being closed.

        Raises:
            PoolInUse: connections are still borrowed, and neither ``force`` nor ``timeout``
                was given.
        """
        check_timeout("timeout", timeout)
        core = self._core
        if core.closed and not core.busy:
            if not self._disposed:  # an earlier close was interrupted: finish its work
                await self._finish_closing()
            return
        returned = None
        if force or timeout is None:
            if not core.close(force=force):
                raise self._in_use_error()
        else:
            core.close(force=False, keep_lent=True)
            if core.busy:
                returned = self._all_returned = asyncio.Event()
        self._run(self._take_effects())
        if returned is not None:
            try:
                await asyncio.wait_for(returned.wait(), timeout)
            except asyncio.TimeoutError:
                await self.close(force=True)  # what is still out after the grace period
                return
        await self._finish_closing()

    async def drain(self) -> None:
        """Replace every connection (see `Pool.drain`)."""
        if self._core.closed:
            raise self._closed_error()
        self._bind_loop()
        self._core.drain()
        self._run(self._take_effects())

    async def _finish_closing(self) -> None:
        core = self._core
        if self._maintainer is not None:
            # Awaited: a keepalive check it was running gives its connection back (closed).
            self._maintainer.cancel()
            await asyncio.wait({self._maintainer}, timeout=self._config.ping_timeout + 1.0)
        for opener in self._openers:
            opener.cancel()  # nobody will borrow what they would open
        closing = self._tasks - self._openers
        if closing:
            # asyncio.wait never cancels what it waits for: a caller cancelled here leaves
            # the closes running to their end.
            await asyncio.wait(closing, timeout=self._config.reset_timeout + 1.0)
        if core.opened == 0 and core.opening == 0 and not self._disposed:
            self._disposed = True
            await self._connector.dispose()

    async def close_idle(self) -> None:
        """Close the idle connections now, keeping ``min_size`` (see `Pool.close_idle`)."""
        if self._core.closed:
            raise self._closed_error()
        self._bind_loop()
        self._core.close_idle()
        self._run(self._take_effects())

    async def resize(self, min_size: int | None = None, max_size: int | None = None) -> None:
        """Change the pool's sizes at run time (see `Pool.resize`)."""
        sizes = {"min_size": min_size, "max_size": max_size}
        await self.reconfigure(**{name: size for name, size in sizes.items() if size is not None})

    async def reconfigure(self, **settings: Any) -> None:
        """Change settings of the live pool (see `Pool.reconfigure`)."""
        if self._core.closed:
            raise self._closed_error()
        self._bind_loop()
        self._settings_changed(settings)
        self._run(self._take_effects())
        if self._wake_maintainer is not None:
            self._wake_maintainer.set()  # its tick may have changed

    async def wait(self, timeout: float | None = None) -> None:
        """Wait until ``min_size`` connections are open (see `Pool.wait`: fails fast when a
        connect fails)."""
        check_timeout("timeout", timeout)
        loop = self._bind_loop()
        core = self._core
        core.start()
        self._run(self._take_effects())
        self._start_maintainer()
        deadline = None if timeout is None else loop.time() + timeout
        errors_before = core.connect_errors
        while core.opened < core.min_size:
            if core.closed:
                raise self._closed_error()
            if core.connect_errors > errors_before:
                raise self._not_ready_error(core.last_connect_error)
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise self._not_ready_error(None, timeout)
            watcher: asyncio.Future[None] = loop.create_future()
            self._watchers.append(watcher)
            try:
                await asyncio.wait_for(asyncio.shield(watcher), remaining)
            except asyncio.TimeoutError:
                pass
            finally:
                if watcher in self._watchers:
                    self._watchers.remove(watcher)

    async def __aenter__(self) -> AsyncPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close(force=True)

    # -- borrowing -------------------------------------------------------------------------

    def acquire(
        self,
        *,
        timeout: float | None = DEFAULT,
        tag: str | None = None,
        matchanytag: bool = False,
        user: str | None = None,
        password: str | None = None,
        when_exhausted: str | None = None,
        purity: str | None = None,
        partition: Hashable = None,
    ) -> _Acquire:
        """Borrow a connection: ``async with pool.acquire() as conn:`` returns it on exit;
        ``conn = await pool.acquire()`` leaves that to ``await conn.release()``.

        The arguments are `Pool.acquire`'s. ``timeout`` is a deadline: the call returns or
        raises within it even while a connect or a ping hangs.
        Raises:
            PoolTimeout, PoolExhausted, PoolClosed, UsageError: as `Pool.acquire`.
        """
        if (
            tag is None
            and not matchanytag
            and user is None
            and password is None
            and when_exhausted is None
            and purity is None
            and partition is None
        ):
            arguments: tuple[Any, ...]
            if timeout is DEFAULT:
                arguments = _DEFAULTS
            else:
                check_timeout("timeout", timeout)
                arguments = (timeout, None, False, None, None, None, None, None)
            fast = True
        else:
            arguments = (
                timeout,
                tag,
                matchanytag,
                user,
                password,
                when_exhausted,
                purity,
                partition,
            )
            fast = False
        # Built field by field, as leases are: no __init__ frame on the hot path.
        handle: _Acquire = _new_lease(_Acquire)
        handle._pool = self
        handle._arguments = arguments
        handle._fast = fast
        handle._lease = None
        return handle

    def session(self, **session_args: Any) -> AsyncSession:
        """A transaction scope over a connection of this pool (see `AsyncSession`):
        ``async with pool.session() as s: await s.execute(...)`` commits on success, rolls
        back on error and always gives the connection back."""
        return AsyncSession(self, **session_args)

    def scoped_session(self, **session_args: Any) -> AsyncScopedSession:
        """A registry giving each asyncio task its own `AsyncSession` (see
        `AsyncScopedSession`)."""
        return AsyncScopedSession(self, **session_args)

    async def release(self, lease: AsyncLease, tag: str | None = None) -> None:
        """Give a borrowed connection back, optionally retagged (see `Pool.release`)."""
        self._check_owner(lease)
        await lease.release(tag)

    async def drop(self, lease: AsyncLease) -> None:
        """Close a borrowed connection and remove it from the pool (see `Pool.drop`)."""
        self._check_owner(lease)
        slot = lease._slot
        if slot is None:
            raise LeaseReleased("this connection was already returned to the pool")
        lease._slot = None
        self._discard(slot, "dropped by the borrower")

    async def ping(self, lease: AsyncLease, timeout: float | None = None) -> bool:
        """Check a borrowed connection is alive within ``timeout`` (see `Pool.ping`)."""
        self._check_owner(lease)
        slot = lease._slot
        if slot is None:
            raise LeaseReleased("this connection was already returned to the pool")
        if timeout is None:
            timeout = self._config.ping_timeout
        else:
            check_timeout("timeout", timeout)
        driver = self._connector.driver
        # A ping cut short (time limit, cancellation) may leave the driver busy on this
        # connection: the return path must look before lending it again.
        slot.dirty = True
        try:
            await driver.ping(slot.connection, timeout)
        except Exception as exc:
            if driver.is_disconnect(exc, slot.connection):
                self._saw_disconnect(monotonic())
                return False
            raise
        return True

    # -- internals: acquiring --------------------------------------------------------------

    async def _acquire(
        self,
        timeout: float | None,
        tag: str | None,
        matchanytag: bool,
        user: str | None,
        password: str | None,
        when_exhausted: str | None,
        purity: str | None,
        partition: Hashable = None,
    ) -> AsyncLease:
        key, wanted_tag, mode, timeout, purity = self._request(
            timeout, tag, user, password, when_exhausted, purity, partition
        )
        loop = self._bind_loop()
        started = monotonic()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            slot = await self._obtain(key, wanted_tag, matchanytag, mode, deadline, timeout)
            if self._needs_check(slot, monotonic()) and not await self._check_or_drop(
                slot, deadline
            ):
                if deadline is not None and loop.time() >= deadline:
                    self._count_timeout()  # the core counts only the waits it ended
                    raise self._timeout_error(timeout, self._figures())
                continue  # that one was dead: try the next, within the same deadline
            if purity != "new" or slot.fresh:
                break
            if not self._connector.driver.full_reset_in_place:
                # Only a new connection is a fresh session here: drop this one and wait
                # for the core to open one, within the same deadline.
                self._discard(slot, "purity='new' needs a new session")
                continue
            limit = self._config.reset_timeout
            if deadline is not None:
                limit = max(0.001, min(limit, deadline - loop.time()))
            if await self._refresh_or_drop(slot, limit):
                break
            if deadline is not None and loop.time() >= deadline:
                raise self._no_fresh_session_error(timeout)
        slot.lent_at = now = monotonic()
        if self._tracking:
            slot.lent_where = record_where()
        lease: AsyncLease = _new_lease(slot.lease_class)
        lease._slot = slot
        lease._pool = self
        lease.tag = slot.tag
        if slot.tag != wanted_tag and self._session_callback is not None:
            await self._run_session_callback(lease, wanted_tag)
        self._handed_out(slot, now - started)
        return lease

    async def _acquire_checked(
        self, slot: Slot, timeout: float | None, now: float, where: Any
    ) -> AsyncLease:
        """The fast lane's slot may need a liveness check first, or leak tracking (see
        `Pool._acquire_checked`); ``where`` was recorded in the caller's frame."""
        slot.lent_where = where
        slot.handing_out = True  # until the check passes (see Slot.handing_out)
        if timeout is DEFAULT:
            timeout = self._config.wait_timeout
        loop = self._bind_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if not self._needs_check(slot, now) or await self._check_or_drop(slot, deadline):
            slot.handing_out = False
            if self._lend_hooks:
                self._lent(slot, 0.0)
            lease: AsyncLease = _new_lease(slot.lease_class)
            lease._slot = slot
            lease._pool = self
            lease.tag = None
            return lease
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        return await self._acquire(remaining, None, False, None, None, None, None)

    async def _check_or_drop(self, slot: Slot, deadline: float | None) -> bool:
        """Check a lent slot's connection is alive within ``ping_timeout`` and the deadline;
        a dead one is dropped (False) and every connection used before now is suspect. A
        cancellation during the check drops the connection too (its state is unknown)."""
        limit = self._config.ping_timeout
        if deadline is not None:
            assert self._loop is not None
            limit = max(0.001, min(limit, deadline - self._loop.time()))
        try:
            await self._connector.driver.ping(slot.connection, limit)
        except BaseException as exc:
            # A cancellation drops the connection too, but says nothing of the others.
            suspect = isinstance(exc, Exception)
            self._recorder.record_ping(ok=False)
            self._drop_failed(slot, exc, "the check before hand-out", suspect)
            return False
        self._recorder.record_ping(ok=True)
        slot.checked_at = monotonic()
        return True

    async def _obtain(
        self,
        key: Hashable,
        wanted_tag: str | None,
        matchanytag: bool,
        mode: str,
        deadline: float | None,
        timeout: float | None,
    ) -> Slot:
        core = self._core
        if core.closed:
            raise self._closed_error()
        slot = core.acquire(key, wanted_tag, matchanytag)
        if slot is not None:
            slot.handing_out = True  # until the borrower has it (see Slot.handing_out)
        if slot is not None:
            self._run(self._take_effects())
            return slot
        assert self._loop is not None
        request = Request(key, wanted_tag, matchanytag, self._loop.create_future())
        outcome = core.enqueue(request, mode)
        refusal = self._exhausted_error() if outcome == "exhausted" else None
        errors_before = core.connect_errors
        self._run(self._take_effects())
        if refusal is not None:
            raise refusal
        return await self._wait(request, deadline, timeout, errors_before)

    async def _wait(
        self, request: Request, deadline: float | None, timeout: float | None, errors_before: int
    ) -> Slot:
        future: asyncio.Future[None] = request.handle
        timer = None
        if deadline is not None:
            assert self._loop is not None
            timer = self._loop.call_at(deadline, self._expire, request, timeout, errors_before)
        try:
            await future
        except asyncio.CancelledError:
            # Cancelled while waiting, or just after being served: give back what the
            # core granted, or leave the queue.
            self._withdraw(request)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if request.error is not None:
            if isinstance(request.error, PoolClosed):
                raise self._closed_error(while_waiting=True)
            raise request.error
        assert request.slot is not None
        return request.slot

    def _expire(self, request: Request, timeout: float | None, errors_before: int) -> None:
        """The deadline of a waiter passed (a loop callback: runs between two awaits)."""
        future: asyncio.Future[None] = request.handle
        if future.done():
            return  # served, failed or cancelled just before: its own path settles it
        core = self._core
        granted = core.cancel(request, timed_out=True)
        if granted is not None:  # cannot happen: a grant resolves the future at once
            core.release(granted, monotonic(), granted.tag)
            self._run(self._take_effects())
        # Chained while connects fail: during this wait, or in the outage still on.
        connect_failed = core.connect_errors > errors_before or core.in_outage(request.key)
        last_error = core.last_connect_error if connect_failed else None
        future.set_exception(self._timeout_error(timeout, self._figures(True), last_error))

    def _withdraw(self, request: Request) -> None:
        future: asyncio.Future[None] = request.handle
        timed_out = future.done() and not future.cancelled() and request.slot is None
        if timed_out and request.error is None:
            return  # _expire already took it out of the queue
        slot = self._core.cancel(request, timed_out=False)
        if slot is not None:
            self._core.release(slot, monotonic(), slot.tag)
        self._run(self._take_effects())

    async def _run_session_callback(self, lease: AsyncLease, requested_tag: str | None) -> None:
        slot = lease._slot
        assert self._session_callback is not None and slot is not None
        slot.dirty = True
        try:
            outcome = self._session_callback(lease, requested_tag, slot.tag)
            if inspect.isawaitable(outcome):
                await outcome
        except BaseException:
            lease._slot = None
            self._discard(slot, "session_callback failed")
            raise

    # -- internals: returning --------------------------------------------------------------

    def _give_back(self, slot: Slot, tag: str | None) -> None:
        """The return path beyond the fast lane (the lease handles the fast lane)."""
        self._bind_loop()
        self._core.release(slot, monotonic(), tag)
        self._run(self._take_effects())

    async def _after_use(self, slot: Slot) -> bool:
        """Reset a used connection as ``reset_on_return`` says; False when it was dropped.

        An error, a time limit or a cancellation during the reset drops the connection: its
        session state is unknown then.
        """
        slot.fresh = False
        mode = self._reset_mode
        if mode is None:
            slot.dirty = False
            return True
        driver = self._connector.driver
        connection = slot.connection
        limit = self._config.reset_timeout
        started = monotonic()
        try:
            if mode == "rollback":
                await driver.end_transaction(connection, limit)
            elif mode == "full":
                await self._refresh(slot, limit)
            elif mode == "commit":
                await driver.commit(connection, limit)
            else:
                outcome = mode(connection)
                if inspect.isawaitable(outcome):
                    await within(limit, outcome)
        except BaseException as exc:
            self._recorder.record_reset(monotonic() - started, ok=False)
            self._emit("reset", connection, monotonic() - started, error=exc)
            if slot.state == CLOSED:  # force-closed meanwhile: nothing to drop
                if not isinstance(exc, Exception):
                    raise
                return False
            self._drop_failed(slot, exc, "reset on return", driver.is_disconnect(exc, connection))
            return False
        took = monotonic() - started
        self._recorder.record_reset(took, ok=True)
        if self._listeners.any_for("reset"):
            self._emit("reset", connection, took)
        slot.dirty = False
        return True

    async def _refresh_or_drop(self, slot: Slot, limit: float) -> bool:
        try:
            await self._refresh(slot, limit)
        except BaseException as exc:
            self._drop_failed(slot, exc, "full reset for purity='new'", suspect=False)
            return False
        slot.dirty = False
        return True

    async def _refresh(self, slot: Slot, limit: float) -> None:
        """The full reset in place, or a new connection in the same slot (see `Pool`), each
        within ``limit`` seconds."""
        driver = self._connector.driver
        connection = slot.connection
        if not await driver.full_reset(connection, limit):
            user, password = self._credentials.get(slot.key, (None, None))
            started = monotonic()
            connection = await within(limit, self._connector.connect(user, password))
            try:
                await driver.opened(connection)
            except BaseException:
                self._spawn(self._close_quietly(connection, "set-up failed", announced=False))
                raise
            old, slot.connection = slot.connection, connection
            slot.lease_class = async_lease_class_for(connection)
            slot.created_at = monotonic()
            slot.expires_at = self._lifetime_from(slot.created_at)
            self._replaced(old, connection, slot.created_at - started)
            self._spawn(self._close_quietly(old, "replaced by a full reset"))
            if slot.state == CLOSED:
                self._spawn(self._close_quietly(connection, "pool closed"))
                return
        await self._call_on_connect(connection)
        slot.fresh = True

    def _discard(self, slot: Slot, reason: str) -> None:
        self._core.discard(slot, reason)
        self._run(self._take_effects())

    # -- internals: effects ----------------------------------------------------------------

    def _run(self, effects: list[Effect]) -> list[asyncio.Task[Any]]:
        """Carry out effects: wake waiters now, open and close on tasks of their own."""
        openers: list[asyncio.Task[Any]] = []
        for effect in effects:
            if isinstance(effect, Wake):
                future: asyncio.Future[None] = effect.request.handle
                if not future.done():
                    future.set_result(None)
                # A cancelled waiter's future is done already; its task's CancelledError
                # handler gives the granted slot back (_withdraw).
            elif isinstance(effect, CloseConnection):
                if self._listeners.any_for("drop"):
                    self._emit("drop", effect.slot.connection, reason=effect.reason)
                self._spawn(self._close_quietly(effect.slot.connection, effect.reason))
            elif isinstance(effect, OpenConnections):
                self._start_maintainer()  # a pool that opens is in use (lazy, forked child)
                for _ in range(effect.number):
                    opener = self._spawn(self._open_one(effect.key, effect.request))
                    self._openers.add(opener)
                    opener.add_done_callback(self._openers.discard)
                    openers.append(opener)
            elif isinstance(effect, RetryOpens):
                self._bind_loop().call_later(effect.delay, self._retry_opens, effect.token)
        returned = self._all_returned
        if returned is not None and self._core.busy == 0:
            returned.set()  # the last borrowed connection came back to a closing pool
        return openers

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = self._bind_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _open_one(self, key: Hashable, request: Request | None) -> None:
        user, password = self._credentials.get(key, (None, None))
        started = monotonic()
        try:
            connection = await self._connect_within(user, password)
        except BaseException as exc:
            self._report_open_failure(key, exc, request)
            if not isinstance(exc, Exception):
                raise
            return
        driver = self._connector.driver
        try:
            if self._server_pooler == "transaction":
                await driver.adapt_to_pooler(connection)
            await driver.opened(connection)
            # One event loop runs the pool: the claim needs no lock.
            if self._pooler_unchecked and self._claim_pooler_check():
                await self._look_for_pooler(connection)
            if self._on_connect is not None:
                await self._call_on_connect(connection)
                await driver.end_transaction(connection, self._config.reset_timeout)
        except BaseException as exc:
            self._spawn(self._close_quietly(connection, "set-up failed", announced=False))
            self._report_open_failure(key, exc, request)
            if not isinstance(exc, Exception):
                raise
            return
        now = monotonic()
        self._recorder.record_connect(now - started)
        self._emit("connect", connection, now - started)
        slot = self._core.opened_connection(key, connection, now, request)
        slot.lease_class = async_lease_class_for(connection)
        slot.expires_at = self._lifetime_from(now)
        self._run(self._take_effects())
        self._notify_watchers()

    async def _look_for_pooler(self, connection: Any) -> None:
        """As `Pool._look_for_pooler`: best effort, never failing a working connection."""
        driver = self._connector.driver
        if driver.in_transaction(connection):
            return
        try:
            pids = await driver.pooler_in_front(connection, self._config.ping_timeout)
        except Exception as exc:
            if driver.is_closed(connection):
                raise
            self._log.debug("pool %r: looking for a pooler in front failed: %r", self.name, exc)
            return
        self._warn_if_pooled(pids)

    async def _connect_within(self, user: str | None, password: str | None) -> Any:
        """Open a connection within ``connect_timeout`` (per host a multi-host URL may try).
        A connect abandoned (time limit, cancellation) that completes anyway has its
        connection closed, never leaked."""
        attempts = self._connector.connect_attempts()
        # Per host as the driver applies it (libpq rounds a timeout up to 2 s at least).
        limit = self._connector.connect_limit(self._config.connect_timeout) * attempts
        if attempts > 1:
            # Each host has its own limit; a second's grace lets a walk whose last host
            # timed out raise its own error, which names every host, instead of this one.
            limit += 1.0
        task = asyncio.ensure_future(self._connector.connect(user, password))
        try:
            done, _ = await asyncio.wait((task,), timeout=limit)
        except BaseException:
            self._abandon_connect(task)
            raise
        if not done:
            self._abandon_connect(task)
            per_host = f" per host, {attempts} hosts" if attempts > 1 else ""
            raise ConnectionDead(
                f"no connection within {limit} s (connect_timeout "
                f"{self._config.connect_timeout} s{per_host})"
            )
        return task.result()

    def _abandon_connect(self, task: asyncio.Future[Any]) -> None:
        task.cancel()

        def close_if_connected(finished: asyncio.Future[Any]) -> None:
            if not finished.cancelled() and finished.exception() is None:
                self._spawn(
                    self._close_quietly(finished.result(), "connect abandoned", announced=False)
                )

        task.add_done_callback(close_if_connected)

    async def _call_on_connect(self, connection: Any) -> None:
        if self._on_connect is not None:
            outcome = self._on_connect(connection)
            if inspect.isawaitable(outcome):
                await outcome

    def _report_open_failure(
        self, key: Hashable, error: BaseException, request: Request | None
    ) -> None:
        self._log.warning(
            "pool %r: opening a connection failed: %s: %s", self.name, type(error).__name__, error
        )
        self._emit("connect_error", error=error)
        self._core.open_failed(key, error, request)
        self._run(self._take_effects())
        self._notify_watchers()

    def _notify_watchers(self) -> None:
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(None)

    async def _close_quietly(self, connection: Any, reason: str, announced: bool = True) -> None:
        """Close a driver connection, never raising; "close" listeners are told unless the
        connection was never ``announced`` to them (it failed its set-up)."""
        try:
            await self._connector.close(connection, self._config.reset_timeout)
        except Exception as exc:
            self._log.debug("pool %r: closing a connection (%s) raised %r", self.name, reason, exc)
        if announced and self._listeners.any_for("close"):
            self._emit("close", connection, reason=reason)

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._thread = get_ident()
        elif self._loop is not loop:
            raise UsageError(
                f"pool {self.name!r} belongs to another event loop; create one pool per loop"
            )
        return loop

    # -- internals: background work (the maintenance task) ---------------------------------

    def _start_maintainer(self) -> None:
        if self._maintainer is None and not self._core.closed:
            self._wake_maintainer = asyncio.Event()
            self._maintainer = self._bind_loop().create_task(
                _maintenance(weakref.ref(self), self._wake_maintainer),
                name=f"sessionpool-{self.name}-maintain",
            )

    def _retry_opens(self, token: int) -> None:
        """A retry timer of the core fired (a loop callback)."""
        self._core.retry_opens(token)
        self._run(self._take_effects())

    async def _maintain(self, now: float) -> None:
        """One round of background work (see `Pool._maintain`)."""
        for slot in self._lost_slots():  # also once closed: close(timeout=...) waits for them
            await self._reclaim(slot)
        core = self._core
        if core.closed:
            return
        leaks = self._leaks_to_report(now)
        self._recorder.sample_busy(core.busy, now)
        core.retire_idle(now, self._idle_before(now))
        self._run(self._take_effects())
        for slot, held in leaks:
            self._report_leak(slot, held)
        for slot in self._due_for_keepalive(now):
            await self._keep_alive(slot)

    async def _keep_alive(self, slot: Slot) -> None:
        if not self._core.take_for_check(slot):
            return
        alive = cancelled = False
        try:
            await self._connector.driver.ping(slot.connection, self._config.ping_timeout)
            alive = True
        except Exception as exc:
            self._log.info(
                "pool %r: an idle connection failed a keepalive check: %r", self.name, exc
            )
            self._saw_disconnect(monotonic())
        except BaseException:
            cancelled = True  # the pool is closing: not a failed check
            raise
        finally:
            # Also on cancellation: the slot must not stay out (a closed pool closes it).
            if alive:
                slot.checked_at = monotonic()
            if not cancelled:
                self._recorder.record_ping(alive)
            self._core.checked(slot, alive or (cancelled and self._core.closed))
            self._run(self._take_effects())

    async def _reclaim(self, slot: Slot) -> None:
        """A lease was collected while lent: reset its connection and take it back."""
        if slot.state != BUSY:
            return
        self._core.reclaimed += 1
        self._report_orphan(slot)
        slot.dirty = True
        if self._return_hooks and self._returning(slot, monotonic()):
            return  # retired
        if await self._after_use(slot):
            self._give_back(slot, None)

    def _guard(self) -> _NoGuard:
        return _NO_GUARD

    def _counts(self) -> CoreCounts:
        """On the loop's own thread a read is consistent by itself. Another thread (a metrics
        scrape) could see the loop change the core halfway through a read, or a set of slots
        change size while it is summed: it reads until two reads in a row agree (a thread
        switch inside both is all but impossible)."""
        if self._thread is None or self._thread == get_ident():
            return snapshot(self._core)
        counts = None
        for _ in range(1000):
            try:
                again = snapshot(self._core)
            except RuntimeError:  # "changed size during iteration": read again
                continue
            if again == counts:
                break
            counts = again
        if counts is None:
            raise RuntimeError(f"pool {self.name!r}: no consistent reading of its figures")
        return counts

    def _reset_after_fork(self) -> None:
        # The parent's loop does not run in the child: bind to the child's own on first use.
        self._loop = None
        self._thread = None
        self._tasks = set()
        self._openers = set()
        self._maintainer = None
        self._wake_maintainer = None
        self._watchers = []


async def _maintenance(pool_ref: weakref.ref[AsyncPool], wake: asyncio.Event) -> None:
    """The maintenance task: a round per tick, or sooner when woken. It holds the pool only
    weakly while it sleeps, so a pool dropped without close() can still be collected."""
    while True:
        pool = pool_ref()
        # A closed pool still waiting for borrowed connections (close(timeout=...)) keeps its
        # worker: a lease lost meanwhile is taken back.
        if pool is None or (pool._core.closed and not pool._core.busy):
            return
        try:
            await pool._maintain(monotonic())
        except Exception:  # a round must never end the task
            pool._log.exception("pool %r: maintenance round failed", pool.name)
        tick = pool._tick()
        del pool
        wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), tick)


# The arguments of an acquire() that asked for nothing in particular.
_DEFAULTS = (DEFAULT, None, False, None, None, None, None, None)


class _Acquire:
    """What `AsyncPool.acquire` returns: awaitable (gives the lease) and an async context
    manager (gives the lease, returns it on exit). Both run the fast lane inline when the
    acquire asked for no tag, user, mode or purity: no coroutine is created then."""

    __slots__ = ("_arguments", "_fast", "_lease", "_pool")

    _pool: AsyncPool
    _arguments: tuple[Any, ...]
    _fast: bool
    _lease: AsyncLease | None

    def __await__(self) -> Generator[Any, None, AsyncLease]:
        pool = self._pool
        if self._fast:
            # The core's fast lane (see _core/state.py), inline: pop, compare generation,
            # wrap. Nothing between pop and return can be interrupted.
            core = pool._core
            if core.fast_idle and pool._thread == get_ident():
                slot = core.pop_fast_idle()
                if slot.generation == core.generation:
                    slot.state = BUSY
                    slot.uses += 1
                    last_used = slot.last_used
                    slot.lent_at = now = monotonic()
                    if (
                        last_used < pool._suspect_before
                        or now - last_used > pool._ping_interval
                        or pool._lend_hooks
                    ):
                        # Where is recorded here: the borrower's frames are still below us.
                        where = record_where() if pool._tracking else None
                        checked = pool._acquire_checked(slot, self._arguments[0], now, where)
                        return (yield from checked.__await__())
                    lease: AsyncLease = _new_lease(slot.lease_class)
                    lease._slot = slot
                    lease._pool = pool
                    lease.tag = None
                    return lease
                core.unpop_fast_idle(slot)
        return (yield from pool._acquire(*self._arguments).__await__())

    async def __aenter__(self) -> AsyncLease:
        lease = await self
        self._lease = lease
        return lease

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        lease = self._lease
        self._lease = None
        if lease is None:
            return
        slot = lease._slot
        if slot is None:
            return
        pool = self._pool
        if exc is not None and pool.is_disconnect(exc, slot.connection):
            pool._saw_disconnect(monotonic())  # the others may be dead too: check them
            await lease.drop()  # the block failed because the connection died
            return
        core = pool._core
        now = monotonic()
        if (
            lease.tag is None
            and not (
                pool._return_hooks
                and (
                    pool._observing_returns or now >= slot.expires_at or slot.uses >= pool._max_uses
                )
            )
            and core.calm
            and slot.key is None
            and slot.generation == core.generation
            and pool._thread == get_ident()
            and (
                not slot.dirty
                or (
                    pool._reset_mode == "rollback"
                    and pool._connector.driver.is_clean(slot.connection)
                )
            )
        ):
            # AsyncLease.release's fast lane, inline: the common return costs no coroutine.
            lease._slot = None
            if slot.dirty:
                slot.dirty = slot.fresh = False
            slot.last_used = now
            slot.state = IDLE
            core.fast_idle.append(slot)
            return
        await lease.release()
