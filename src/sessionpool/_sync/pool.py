"""Pool: the threaded shell around the decision core.

One lock guards each call into `PoolState`; every I/O the core asks for (connect, reset, close)
and every wake-up happens after the lock is released, so no thread ever connects, rolls back or
closes while holding it. Waiting borrowers block on a private lock of their own, handed off to
in FIFO order by the core. New connections are opened on short-lived threads, never on the
borrower's own path, so a slow connect cannot make an acquire overrun its deadline; closes and
the rest of the background work run on the pool's maintenance thread (`maintenance.py`).
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from time import monotonic
from types import TracebackType
from typing import Any

from .._core.effects import CloseConnection, Effect, OpenConnections, RetryOpens, Wake
from .._core.records import BUSY, CLOSED, Request, Slot
from .._leaks import record_where
from .._pool_base import DEFAULT, PoolBase
from ..config import PoolConfig, check_timeout
from ..drivers.base import Connector
from ..errors import LeaseReleased, PoolClosed
from ..session import ScopedSession, Session
from .lease import Lease, lease_class_for
from .maintenance import Maintainer

__all__ = ["Pool"]

# Leases are built field by field in the caller's frame: no __init__ frame on the hot path.
_new_lease = object.__new__


class Pool(PoolBase):
    """A thread-safe pool of DB-API connections.

    Build one with `sessionpool.create_pool`. Borrow with ``with pool.acquire() as conn:``.

    Args:
        connector: opens and closes driver connections.
        config: the pool's settings.
    """

    _lease_type = Lease

    def __init__(self, connector: Connector, config: PoolConfig) -> None:
        self._lock = threading.Lock()
        super().__init__(connector, config)
        # Notified (under the lock) when a connection opens or fails to: `wait` waits on it.
        self._changed = threading.Condition(self._lock)
        # Set by a close(timeout=...) that waits for borrowed connections to come back.
        self._all_returned: threading.Event | None = None
        self._disposed = False
        self._maintainer = Maintainer(self)

    # -- life cycle ------------------------------------------------------------------------

    def open(self, *, wait: bool = True, timeout: float | None = None) -> None:
        """Open ``min_size`` connections, concurrently.

        Args:
            wait: block until they are open (or failed).
            timeout: most seconds to wait; None waits for the connects to finish.
        Raises:
            PoolTimeout: the connections were not all open within ``timeout``.
            Exception: the driver's connect error if any connection failed to open; the pool
                is closed then.
        """
        check_timeout("timeout", timeout)
        with self._lock:
            errors_before = self._core.connect_errors
            self._core.start()
            effects = self._take_effects()
        threads = self._run(effects)
        self._maintainer.start()
        if not wait:
            return
        deadline = None if timeout is None else monotonic() + timeout
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - monotonic()))
            if thread.is_alive():
                raise self._open_timeout_error(len(threads), timeout)
        with self._lock:
            failed = self._core.connect_errors > errors_before
            error = self._core.last_connect_error
        if failed and error is not None:
            self.close(force=True)
            raise error

    def close(self, force: bool = False, timeout: float | None = None) -> None:
        """Close the pool and every connection it holds.

        Args:
            force: also close connections that are still borrowed; their leases become
                unusable. Without it (and without ``timeout``), closing with borrowed
                connections is refused.
            timeout: instead, close now for new borrowers (acquires and waiters get
                `PoolClosed`), wait up to this many seconds for borrowed connections to come
                back (each is closed as it does), then close what is still out as ``force``.
        Raises:
            PoolInUse: connections are still borrowed, and neither ``force`` nor ``timeout``
                was given.
        """
        check_timeout("timeout", timeout)
        returned = None
        with self._lock:
            core = self._core
            if core.closed and not core.busy:
                return
            if force or timeout is None:
                if not core.close(force=force):
                    raise self._in_use_error()
            else:
                core.close(force=False, keep_lent=True)
                if core.busy:
                    returned = self._all_returned = threading.Event()
            effects = self._take_effects()
            self._changed.notify_all()  # wait() callers: the pool is closed now
        self._run(effects, close_now=True)
        if returned is not None and not returned.wait(timeout):
            self.close(force=True)  # what is still out after the grace period
            return
        # Closes handed to the maintenance thread before now (and a keepalive check it may be
        # running) are finished before we return.
        config = self._config
        self._maintainer.stop(max(config.reset_timeout, config.ping_timeout) + 1.0)
        with self._lock:
            disposable = core.opened == 0 and core.opening == 0 and not self._disposed
            self._disposed = self._disposed or disposable
        if disposable:
            self._connector.dispose()

    def drain(self) -> None:
        """Replace every connection: idle ones are closed now and ``min_size`` is opened
        afresh; borrowed ones are closed when they come back. For a server failover, a
        credential rotation or new session settings.
        Raises:
            PoolClosed: the pool is closed.
        """
        with self._lock:
            if self._core.closed:
                raise self._closed_error()
            self._core.drain()
            effects = self._take_effects()
        self._run(effects)

    def close_idle(self) -> None:
        """Close the idle connections now, keeping ``min_size`` open; borrowed ones are
        untouched and come back as usual (SQLAlchemy's ``dispose()``).
        Raises:
            PoolClosed: the pool is closed.
        """
        with self._lock:
            if self._core.closed:
                raise self._closed_error()
            self._core.close_idle()
            effects = self._take_effects()
        self._run(effects)

    def resize(self, min_size: int | None = None, max_size: int | None = None) -> None:
        """Change the pool's sizes at run time (`reconfigure` with only the sizes).

        Idle connections beyond the new ``max_size`` are closed now, borrowed ones when they
        come back; what a larger ``min_size`` needs is opened in the background.
        Raises:
            ConfigError: the new sizes are invalid (min_size > max_size, negative...).
        """
        sizes = {"min_size": min_size, "max_size": max_size}
        self.reconfigure(**{name: value for name, value in sizes.items() if value is not None})

    def reconfigure(self, **settings: Any) -> None:
        """Change settings of the live pool: any `PoolConfig` field but ``homogeneous``,
        ``idle_order`` and ``lazy``. Limits apply to the current connections too (a shorter
        ``max_lifetime`` retires them sooner); new connections get the new ``on_connect``
        and ``connect_timeout``.

        Raises:
            ConfigError: an unknown, fixed or invalid setting; nothing is changed then.
            PoolClosed: the pool is closed.
        """
        with self._lock:
            if self._core.closed:
                raise self._closed_error()
            self._settings_changed(settings)
            effects = self._take_effects()
        self._run(effects)
        self._maintainer.wake()  # its tick may have changed

    def wait(self, timeout: float | None = None) -> None:
        """Block until ``min_size`` connections are open (starting a lazy pool).

        Fails fast: if a connect fails meanwhile, that error is raised at once, chained to a
        `PoolTimeout`, rather than after the whole timeout.
        Args:
            timeout: most seconds to wait; None waits as long as connects keep succeeding.
        Raises:
            PoolTimeout: not ready in time, or a connect failed (its error is the cause).
            PoolClosed: the pool is closed.
        """
        check_timeout("timeout", timeout)
        deadline = None if timeout is None else monotonic() + timeout
        with self._lock:
            core = self._core
            core.start()
            effects = self._take_effects()
        self._run(effects)
        self._maintainer.start()
        with self._changed:
            errors_before = core.connect_errors
            while core.opened < core.min_size:
                if core.closed:
                    raise self._closed_error()
                if core.connect_errors > errors_before:
                    raise self._not_ready_error(core.last_connect_error)
                remaining = None if deadline is None else deadline - monotonic()
                if remaining is not None and remaining <= 0:
                    raise self._not_ready_error(None, timeout)
                self._changed.wait(remaining)

    def __enter__(self) -> Pool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(force=True)

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
    ) -> Lease:
        """Borrow a connection.

        Args:
            timeout: seconds to wait for one (default: the pool's ``wait_timeout``;
                None waits forever).
            tag: ask for a session tagged "k1=v1;k2=v2" (order of pairs does not matter).
                Without it an untagged session is preferred.
            matchanytag: accept a session with another tag when none has this one.
            user, password: a connection opened for this user (heterogeneous pools only).
            when_exhausted: override the pool's ``when_exhausted`` for this call.
            purity: ``"new"`` hands out a session no borrower has used since it was opened
                or fully reset (cx_Oracle's PURITY_NEW: the full reset runs first if
                needed); ``"self"`` or ``"default"`` (the default) accept a reused one.
            partition: a hashable naming a partition of the pool's sessions (a connection
                class, a shard key): a session opened for one partition is only ever lent to
                the same partition, and ``max_per_partition`` caps each. The driver is not
                told (a session is not routed anywhere by it).
        Returns:
            A `Lease`: the DB-API connection, returned on ``close()``/``release()``/exit.
        Raises:
            PoolTimeout: nothing became free in time.
            PoolExhausted: none free and ``when_exhausted="fail"``.
            PoolClosed: the pool is closed.
            UsageError: per-user credentials on a homogeneous pool, or a malformed tag.
        """
        if timeout is not DEFAULT:
            check_timeout("timeout", timeout)
        if (
            tag is None
            and user is None
            and password is None
            and when_exhausted is None
            and purity is None
            and partition is None
        ):
            # Hot path, the core's fast lane run inline (see _core/state.py): lock, pop,
            # compare generation, unlock, check age, wrap. Explicit acquire/release rather
            # than `with`: on CPython 3.11 the `with` form costs twice as much here.
            core = self._core
            self._lock.acquire()
            if core.fast_idle:
                slot = core.pop_fast_idle()
                if slot.generation == core.generation:
                    slot.state = BUSY
                    slot.uses += 1
                    self._lock.release()
                    last_used = slot.last_used
                    slot.lent_at = now = monotonic()
                    if (
                        last_used < self._suspect_before
                        or now - last_used > self._ping_interval
                        or self._lend_hooks
                    ):
                        return self._acquire_checked(slot, timeout, now)
                    lease: Lease = _new_lease(slot.lease_class)
                    lease._slot = slot
                    lease._pool = self
                    lease.tag = None
                    return lease
                core.unpop_fast_idle(slot)
            self._lock.release()
        return self._acquire_slow(
            timeout, tag, matchanytag, user, password, when_exhausted, purity, partition
        )

    def session(self, **session_args: Any) -> Session:
        """A transaction scope over a connection of this pool (see `Session`):
        ``with pool.session() as s: s.execute(...)`` commits on success, rolls back on error
        and always gives the connection back."""
        return Session(self, **session_args)

    def scoped_session(self, **session_args: Any) -> ScopedSession:
        """A registry giving each thread its own `Session` (see `ScopedSession`)."""
        return ScopedSession(self, **session_args)

    def release(self, lease: Lease, tag: str | None = None) -> None:
        """Give a borrowed connection back, optionally retagged.

        The session is reset first (``reset_on_return``) if the borrower used it; a reset that
        fails drops the connection instead.
        Raises:
            LeaseReleased: it was already given back.
            ForeignLease: it belongs to another pool.
        """
        self._check_owner(lease)
        lease.release(tag)

    def drop(self, lease: Lease) -> None:
        """Close a borrowed connection and remove it from the pool (it is broken).

        Raises:
            LeaseReleased: it was already given back.
            ForeignLease: it belongs to another pool.
        """
        self._check_owner(lease)
        slot = lease._slot
        if slot is None:
            raise LeaseReleased("this connection was already returned to the pool")
        lease._slot = None
        self._discard(slot, "dropped by the borrower")

    def ping(self, lease: Lease, timeout: float | None = None) -> bool:
        """Check that a borrowed connection is alive, with the driver's cheapest correct
        check (a local status check where it suffices, else a round trip), within
        ``timeout`` (default: the pool's ``ping_timeout``) even if the server hangs.

        Returns False when it is dead; the caller should then `drop` it.
        Raises:
            LeaseReleased: it was already given back.
            ForeignLease: it belongs to another pool.
        """
        self._check_owner(lease)
        slot = lease._slot
        if slot is None:
            raise LeaseReleased("this connection was already returned to the pool")
        if timeout is None:
            timeout = self._config.ping_timeout
        else:
            check_timeout("timeout", timeout)
        driver = self._connector.driver
        slot.dirty = True  # a ping cut short leaves the connection for the return path to judge
        try:
            driver.ping(slot.connection, timeout)
        except Exception as exc:
            if driver.is_disconnect(exc, slot.connection):
                self._saw_disconnect(monotonic())
                return False
            raise
        return True

    # -- internals: acquiring --------------------------------------------------------------

    def _acquire_slow(
        self,
        timeout: float | None,
        tag: str | None,
        matchanytag: bool,
        user: str | None,
        password: str | None,
        when_exhausted: str | None,
        purity: str | None,
        partition: Hashable = None,
    ) -> Lease:
        key, wanted_tag, mode, timeout, purity = self._request(
            timeout, tag, user, password, when_exhausted, purity, partition
        )
        started = monotonic()
        deadline = None if timeout is None else started + timeout
        while True:
            slot = self._obtain(key, wanted_tag, matchanytag, mode, deadline, timeout)
            if self._needs_check(slot, monotonic()) and not self._check_or_drop(slot, deadline):
                if deadline is not None and monotonic() >= deadline:
                    self._count_timeout()  # the core counts only the waits it ended
                    raise self._timeout_error(timeout, self._figures())
                continue  # that one was dead: try the next, within the same deadline
            if purity != "new" or slot.fresh:
                break
            if not self._connector.driver.full_reset_in_place:
                # Only a new connection is a fresh session here: drop this one and wait for
                # the core to open one (on an opener thread), within the same deadline.
                self._discard(slot, "purity='new' needs a new session")
                continue
            limit = self._config.reset_timeout
            if deadline is not None:
                limit = max(0.001, min(limit, deadline - monotonic()))
            if self._refresh_or_drop(slot, limit):
                break
            if deadline is not None and monotonic() >= deadline:
                raise self._no_fresh_session_error(timeout)
        slot.lent_at = now = monotonic()
        if self._tracking:
            slot.lent_where = record_where()
        lease: Lease = _new_lease(slot.lease_class)
        lease._slot = slot
        lease._pool = self
        lease.tag = slot.tag
        if slot.tag != wanted_tag and self._session_callback is not None:
            self._run_session_callback(lease, wanted_tag)
        self._handed_out(slot, now - started)
        return lease

    def _obtain(
        self,
        key: Hashable,
        wanted_tag: str | None,
        matchanytag: bool,
        mode: str,
        deadline: float | None,
        timeout: float | None,
    ) -> Slot:
        request = None
        refusal = None
        with self._lock:
            core = self._core
            if core.closed:
                raise self._closed_error()
            slot = core.acquire(key, wanted_tag, matchanytag)
            if slot is not None:
                slot.handing_out = True  # until the borrower has it (see Slot.handing_out)
            if slot is None:
                handle = threading.Lock()
                handle.acquire()
                request = Request(key, wanted_tag, matchanytag, handle)
                outcome = core.enqueue(request, mode)
                if outcome == "exhausted":
                    refusal = self._exhausted_error()
            errors_before = core.connect_errors
            effects = self._take_effects()
        self._run(effects)
        if refusal is not None:
            raise refusal
        if slot is None:
            assert request is not None
            slot = self._wait(request, deadline, timeout, errors_before)
        return slot

    def _wait(
        self, request: Request, deadline: float | None, timeout: float | None, errors_before: int
    ) -> Slot:
        handle = request.handle
        try:
            if deadline is None:
                woken = handle.acquire()
            else:
                woken = handle.acquire(timeout=max(0.0, deadline - monotonic()))
        except BaseException:
            # Interrupted while blocked (KeyboardInterrupt): leave the queue, keep nothing.
            self._withdraw(request)
            raise
        if not woken:
            with self._lock:
                slot = self._core.cancel(request, timed_out=True)
                figures = self._figures(holders=True)
                # Chained while connects fail: during this wait, or in the outage still on
                # (a wait may fall between two retries).
                core = self._core
                connect_failed = core.connect_errors > errors_before or core.in_outage(request.key)
                last_error = core.last_connect_error if connect_failed else None
            if slot is not None:
                # Served at the very moment the deadline passed: it is ours, not lost.
                return slot
            if request.error is None:
                raise self._timeout_error(timeout, figures, last_error)
        if request.error is not None:
            if isinstance(request.error, PoolClosed):
                # One PoolClosed is shared by all waiters: raise a fresh one per thread.
                raise self._closed_error(while_waiting=True)
            raise request.error
        assert request.slot is not None
        return request.slot

    def _acquire_checked(self, slot: Slot, timeout: float | None, now: float) -> Lease:
        """The fast lane's slot may need a liveness check first (it has been idle a while,
        unless a keepalive check saw it alive since) or leak tracking: check it, and if it is
        dead go the slow way for another, within the caller's deadline."""
        if self._tracking:
            slot.lent_where = record_where()
        slot.handing_out = True  # until the check passes (see Slot.handing_out)
        if timeout is DEFAULT:
            timeout = self._config.wait_timeout
        deadline = None if timeout is None else now + timeout
        if not self._needs_check(slot, now) or self._check_or_drop(slot, deadline):
            slot.handing_out = False
            if self._lend_hooks:
                self._lent(slot, 0.0)
            lease: Lease = _new_lease(slot.lease_class)
            lease._slot = slot
            lease._pool = self
            lease.tag = None
            return lease
        remaining = None if deadline is None else max(0.0, deadline - monotonic())
        return self._acquire_slow(remaining, None, False, None, None, None, None)

    def _check_or_drop(self, slot: Slot, deadline: float | None) -> bool:
        """Check a lent slot's connection is alive, within ``ping_timeout`` and the
        deadline. A dead one is dropped (False), and every connection last used before now
        becomes suspect."""
        limit = self._config.ping_timeout
        if deadline is not None:
            limit = max(0.001, min(limit, deadline - monotonic()))
        try:
            self._connector.driver.ping(slot.connection, limit)
        except BaseException as exc:
            self._recorder.record_ping(ok=False)
            self._drop_failed(slot, exc, "the check before hand-out", suspect=True)
            return False
        self._recorder.record_ping(ok=True)
        slot.checked_at = monotonic()
        return True

    def _withdraw(self, request: Request) -> None:
        with self._lock:
            slot = self._core.cancel(request, timed_out=False)
            if slot is not None:
                self._core.release(slot, monotonic(), slot.tag)
            effects = self._take_effects()
        self._run(effects)

    def _run_session_callback(self, lease: Lease, requested_tag: str | None) -> None:
        slot = lease._slot
        assert self._session_callback is not None and slot is not None
        slot.dirty = True
        try:
            self._session_callback(lease, requested_tag, slot.tag)
        except BaseException:
            # The session's state is unknown now: it must not go back to the pool.
            lease._slot = None
            self._discard(slot, "session_callback failed")
            raise

    # -- internals: returning --------------------------------------------------------------

    def _after_use(self, slot: Slot) -> bool:
        """Reset a connection a borrower used, as ``reset_on_return`` says.

        Returns False when the reset failed and the connection was dropped instead.
        """
        slot.fresh = False
        mode = self._reset_mode
        if mode is None:
            slot.dirty = False
            return True
        driver = self._connector.driver
        connection = slot.connection
        if mode == "rollback" and driver.is_clean(connection):
            # Nothing to roll back, as the driver knows locally: no reset happens (and none
            # is counted or told, as in AsyncPool).
            slot.dirty = False
            return True
        limit = self._config.reset_timeout
        started = monotonic()
        try:
            if mode == "rollback":
                driver.end_transaction(connection, limit)
            elif mode == "full":
                self._refresh(slot, limit)
            elif mode == "commit":
                driver.call_within(connection, limit, connection.commit)
            else:
                mode(connection)
        except BaseException as exc:
            self._recorder.record_reset(monotonic() - started, ok=False)
            self._emit("reset", connection, monotonic() - started, error=exc)
            if slot.state == CLOSED:  # closed under it by close(force=True): nothing to do
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

    def _refresh_or_drop(self, slot: Slot, limit: float) -> bool:
        """Fully reset a slot for a purity="new" borrower; False when it was dropped."""
        try:
            self._refresh(slot, limit)
        except BaseException as exc:
            self._drop_failed(slot, exc, "full reset for purity='new'", suspect=False)
            return False
        slot.dirty = False
        return True

    def _refresh(self, slot: Slot, limit: float) -> None:
        """Clear every kind of session state: the driver's full reset in place (within
        ``limit`` seconds), or a new connection in the same slot where the driver has none
        (on the return path only: an acquire waits for the core's openers instead). Then the
        pool's own ``on_connect`` runs again, since the reset undid what it set."""
        driver = self._connector.driver
        connection = slot.connection
        if not driver.full_reset(connection, limit):
            user, password = self._credentials.get(slot.key, (None, None))
            started = monotonic()
            connection = self._connector.connect(user, password)
            try:
                driver.opened(connection)
            except BaseException:
                self._close_quietly(connection, "set-up failed", announced=False)
                raise
            old, slot.connection = slot.connection, connection
            slot.lease_class = lease_class_for(connection)
            slot.created_at = monotonic()
            slot.expires_at = self._lifetime_from(slot.created_at)
            self._replaced(old, connection, slot.created_at - started)
            if not self._maintainer.close_later(old, "replaced by a full reset"):
                self._close_quietly(old, "replaced by a full reset")
            if slot.state == CLOSED:  # the pool was force-closed meanwhile
                self._close_quietly(connection, "pool closed")
                return
        if self._on_connect is not None:
            self._on_connect(connection)
        slot.fresh = True

    def _look_for_pooler(self, connection: Any) -> None:
        """Warn if a pooler is in front (see `_warn_if_pooled`). Best effort: skipped when
        the connection is inside a transaction (a creator left one open), and a check that
        fails is let go unless it broke the connection."""
        driver = self._connector.driver
        if driver.in_transaction(connection):
            return
        try:
            pids = driver.pooler_in_front(connection, self._config.ping_timeout)
        except Exception as exc:
            if driver.is_closed(connection):
                raise
            self._log.debug("pool %r: looking for a pooler in front failed: %r", self.name, exc)
            return
        self._warn_if_pooled(pids)

    def _claim_pooler_check_locked(self) -> bool:
        with self._lock:
            return self._claim_pooler_check()

    def _discard(self, slot: Slot, reason: str) -> None:
        with self._lock:
            self._core.discard(slot, reason)
            effects = self._take_effects()
        self._run(effects)

    # -- internals: effects ----------------------------------------------------------------

    def _run(self, effects: list[Effect], close_now: bool = False) -> list[threading.Thread]:
        """Carry out effects outside the lock; returns the opener threads started. Closes go
        to the maintenance thread (a borrower never waits behind one) unless ``close_now``."""
        openers: list[threading.Thread] = []
        for effect in effects:
            if isinstance(effect, Wake):
                effect.request.handle.release()
            elif isinstance(effect, CloseConnection):
                connection = effect.slot.connection
                if self._listeners.any_for("drop"):
                    self._emit("drop", connection, reason=effect.reason)
                if close_now or not self._maintainer.close_later(connection, effect.reason):
                    self._close_quietly(connection, effect.reason)
            elif isinstance(effect, OpenConnections):
                openers.extend(self._start_openers(effect))
                # A pool that opens is in use: its worker must run (a lazy pool's first
                # acquire, a forked child's pool).
                self._maintainer.start()
            elif isinstance(effect, RetryOpens):
                self._maintainer.retry_at(effect.delay, effect.token)
        returned = self._all_returned
        if returned is not None and self._core.busy == 0:
            returned.set()  # the last borrowed connection came back to a closing pool
        return openers

    def _start_openers(self, effect: OpenConnections) -> list[threading.Thread]:
        threads = []
        for index in range(effect.number):
            thread = threading.Thread(
                target=self._open_one,
                args=(effect.key, effect.request),
                name=f"sessionpool-{self.name}-open",
                daemon=True,
            )
            try:
                thread.start()
            except RuntimeError as exc:  # the interpreter cannot start more threads
                for _ in range(effect.number - index):
                    self._report_open_failure(effect.key, exc, effect.request)
                break
            threads.append(thread)
        return threads

    def _open_one(self, key: Hashable, request: Request | None) -> None:
        user, password = self._credentials.get(key, (None, None))
        started = monotonic()
        try:
            connection = self._connector.connect(user, password)
        except BaseException as exc:
            self._report_open_failure(key, exc, request)
            return
        driver = self._connector.driver
        try:
            if self._server_pooler == "transaction":
                driver.adapt_to_pooler(connection)
            driver.opened(connection)
            if self._pooler_unchecked and self._claim_pooler_check_locked():
                self._look_for_pooler(connection)
        except BaseException as exc:
            self._close_quietly(connection, "driver set-up failed", announced=False)
            self._report_open_failure(key, exc, request)
            return
        if self._on_connect is not None:
            try:
                self._on_connect(connection)
                # It may have opened a transaction: end it so the slot starts clean.
                driver.end_transaction(connection, self._config.reset_timeout)
            except BaseException as exc:
                self._close_quietly(connection, "on_connect failed", announced=False)
                self._report_open_failure(key, exc, request)
                return
        lease_class = lease_class_for(connection)
        opened_at = monotonic()
        self._recorder.record_connect(opened_at - started)
        self._emit("connect", connection, opened_at - started)
        expires_at = self._lifetime_from(opened_at)
        with self._lock:
            slot = self._core.opened_connection(key, connection, monotonic(), request)
            slot.lease_class = lease_class
            slot.expires_at = expires_at
            effects = self._take_effects()
            self._changed.notify_all()
        self._run(effects)

    def _report_open_failure(
        self, key: Hashable, error: BaseException, request: Request | None
    ) -> None:
        self._log.warning(
            "pool %r: opening a connection failed: %s: %s", self.name, type(error).__name__, error
        )
        self._emit("connect_error", error=error)
        with self._lock:
            self._core.open_failed(key, error, request)
            effects = self._take_effects()
            self._changed.notify_all()
        self._run(effects)

    def _close_quietly(self, connection: Any, reason: str, announced: bool = True) -> None:
        """Close a driver connection, never raising; "close" listeners are told unless the
        connection was never ``announced`` to them (it failed its set-up)."""
        try:
            self._connector.close(connection)
        except Exception as exc:
            # The connection is gone from the pool either way; a failing close must not
            # disturb the caller that happened to trigger it.
            self._log.debug("pool %r: closing a connection (%s) raised %r", self.name, reason, exc)
        if announced and self._listeners.any_for("close"):
            self._emit("close", connection, reason=reason)

    # -- internals: background work (on the maintenance thread) -----------------------------

    def _retry_opens(self, token: int) -> None:
        with self._lock:
            self._core.retry_opens(token)
            effects = self._take_effects()
        self._run(effects)

    def _maintain(self, now: float) -> None:
        """One round of the maintenance thread: give back the connections of leases
        collected while lent, report leases held too long, retire idle and expired
        connections (keeping ``min_size``), and check the idle ones due for keepalive."""
        with self._lock:
            lost = self._lost_slots()  # also once closed: close(timeout=...) waits for them
        for slot in lost:
            self._reclaim(slot)
        with self._lock:
            if self._core.closed:
                return
            leaks = self._leaks_to_report(now)
            busy = self._core.busy
            self._core.retire_idle(now, self._idle_before(now))
            effects = self._take_effects()
            due = self._due_for_keepalive(now)
        # Outside the pool's lock: it folds a round's returns (with detailed statistics, up
        # to a second's worth), which must not hold up borrowers.
        self._recorder.sample_busy(busy, now)
        self._run(effects, close_now=True)  # this is the background thread: close here
        for slot, held in leaks:
            self._report_leak(slot, held)
        for slot in due:
            self._keep_alive(slot)

    def _keep_alive(self, slot: Slot) -> None:
        with self._lock:
            if not self._core.take_for_check(slot):
                return  # lent or closed meanwhile
        try:
            self._connector.driver.ping(slot.connection, self._config.ping_timeout)
            alive = True
        except Exception as exc:
            self._log.info(
                "pool %r: an idle connection failed its keepalive check: %r", self.name, exc
            )
            self._saw_disconnect(monotonic())
            alive = False
        self._recorder.record_ping(alive)
        if alive:
            slot.checked_at = monotonic()
        with self._lock:
            self._core.checked(slot, alive)
            effects = self._take_effects()
        self._run(effects, close_now=True)

    def _reclaim(self, slot: Slot) -> None:
        """A lease was collected while lent: reset its connection and take it back."""
        if slot.state != BUSY:
            return  # closed by close(force=True), or inherited across a fork
        with self._lock:
            self._core.reclaimed += 1
        self._report_orphan(slot)
        slot.dirty = True  # whatever the borrower did is unknown
        if self._return_hooks and self._returning(slot, monotonic()):
            return  # retired
        if self._after_use(slot):
            with self._lock:
                self._core.release(slot, monotonic())
                effects = self._take_effects()
            self._run(effects, close_now=True)

    def _guard(self) -> threading.Lock:
        return self._lock

    def _reset_after_fork(self) -> None:
        # The parent's lock may have been held at the fork by a thread the child lacks, and
        # its maintenance thread does not exist here: renew both (the thread starts lazily).
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._maintainer = Maintainer(self)
