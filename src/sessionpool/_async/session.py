"""AsyncSession: a transaction scope over a connection borrowed from an `AsyncPool`;
AsyncScopedSession: one per asyncio task.

The asyncio twin of `session.py`, method for method and with its semantics; what differs
between drivers (cursors or none, implicit transactions or BEGIN, where the modes live) is in
the async drivers' session methods, never here. No pool logic: only acquire, release, drop.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._session_state import Params, SessionState
from ..errors import ForeignSession, TransactionAborted, TransactionLost, UsageError

if TYPE_CHECKING:
    from contextlib import AbstractAsyncContextManager

    from ..drivers.async_base import AsyncDriver
    from .lease import AsyncLease
    from .pool import AsyncPool

__all__ = ["AsyncScopedSession", "AsyncSession"]

#: One round trip of a session: ``work(driver, driver_connection)``.
Work = Callable[["AsyncDriver", Any], Awaitable[Any]]


class AsyncSession(SessionState):
    """One unit of work on one connection at a time, for the asyncio task that created it.

    ``async with pool.session() as s:`` commits when the block succeeds, rolls back when it
    raises, and always gives the connection back; an ``async with s:`` (or
    ``s.savepoint()``) inside it is a savepoint. Writes queued with `add` are sent by
    `flush`, batched, inside the open transaction; `commit` flushes first. Every method that
    talks to the server is a coroutine; parameters are in the driver's own style (``$1``
    for asyncpg, ``%s`` for psycopg and aiomysql, ``?`` for aiosqlite).

    A statement or COMMIT interrupted by cancellation drops its connection (the driver may
    still be busy on it and its state is unknown): inside a transaction that is then lost,
    as if the connection had died (`TransactionLost` until `rollback`); an interrupted
    COMMIT's outcome is unknown.

    Args:
        pool: the `AsyncPool` to borrow from.
        autocommit: set the connection's autocommit mode for this session (put back when
            the connection is returned); None leaves it as the pool's connections are
            (asyncpg's, as sessions see them: transactions, which the session opens).
        isolation_level: "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE" or "READ
            UNCOMMITTED" for this session's transactions (put back on return).
        reconnect: outside a transaction, retry a statement whose connection turned out
            dead once on a fresh connection. Never inside a transaction. Beware a write in
            autocommit mode may have been applied before the connection died.
        **acquire_args: passed to `AsyncPool.acquire` (timeout, tag, user, password, ...).
    """

    def __init__(
        self,
        pool: AsyncPool,
        *,
        autocommit: bool | None = None,
        isolation_level: str | None = None,
        reconnect: bool = False,
        **acquire_args: Any,
    ) -> None:
        super().__init__(
            autocommit=autocommit,
            isolation_level=isolation_level,
            reconnect=reconnect,
            acquire_args=acquire_args,
            server_pooler=pool.config.server_pooler,
        )
        self._pool = pool
        # Weak: a session kept in its task's context (AsyncScopedSession) must not keep the
        # task alive. Made outside any task, it belongs to the first task that uses it.
        task = _current_task()
        self._owner: weakref.ref[asyncio.Task[Any]] | None = None
        if task is not None:
            self._owner = weakref.ref(task)
        self._lease: AsyncLease | None = None
        self._nested: list[AbstractAsyncContextManager[AsyncSession]] = []

    # -- state -----------------------------------------------------------------------------

    async def connection(self) -> AsyncLease:
        """The borrowed connection (borrowed now if the session holds none). A coroutine
        here, where `Session.connection` is a property: borrowing may wait."""
        self._check()
        return await self._borrow()

    # -- statements ------------------------------------------------------------------------

    async def execute(self, sql: str, params: Params = None) -> Any:
        """Run one statement now, inside the session's transaction; returns what the driver
        returns for it: the cursor, or asyncpg's status string ("INSERT 0 1")."""
        self._check()
        if self._checks_sql:  # no coroutine for the check when it is off
            await self._check_sql_borrowing(sql)
        return await self._run(lambda driver, raw: driver.execute(raw, sql, params))

    async def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        """Run one statement for each parameter set, batched by the driver."""
        self._check()
        if self._checks_sql:  # no coroutine for the check when it is off
            await self._check_sql_borrowing(sql)
        rows = list(seq_of_params)
        await self._run(functools.partial(_executemany, sql=sql, rows=rows))

    async def fetch(self, sql: str, params: Params = None) -> list[Any]:
        """Run a query and return all its rows."""
        self._check()
        if self._checks_sql:  # no coroutine for the check when it is off
            await self._check_sql_borrowing(sql)
        rows = await self._run(lambda driver, raw: driver.fetch(raw, sql, params, all_rows=True))
        return list(rows)

    async def fetchone(self, sql: str, params: Params = None) -> Any:
        """Run a query and return its first row, or None."""
        self._check()
        if self._checks_sql:  # no coroutine for the check when it is off
            await self._check_sql_borrowing(sql)
        return await self._run(lambda driver, raw: driver.fetch(raw, sql, params, all_rows=False))

    async def flush(self) -> None:
        """Send every queued write inside the open transaction, consecutive writes of the
        same statement as one `executemany` (a few round trips for a thousand rows). They are
        then visible to this session, and to others only after `commit`."""
        self._check()
        while self._pending:
            sql, rows = self._next_batch()
            await self._run(functools.partial(_executemany, sql=sql, rows=rows))
            del self._pending[: len(rows)]

    # -- ending the transaction ------------------------------------------------------------

    async def commit(self) -> None:
        """Flush, commit, and give the connection back.

        Raises:
            TransactionLost: the connection died inside the transaction, or during the
                commit (its outcome is then unknown). Never retried.
        """
        self._check()
        await self.flush()
        lease = self._lease
        if lease is None:
            return
        if self._driver().in_failed_transaction(lease.driver_connection):
            raise TransactionAborted(
                "a statement failed inside this transaction and the database aborted it: "
                "COMMIT would only roll back. Roll back, then do the work again"
            )
        try:
            await self._driver().commit_transaction(lease.driver_connection)
        except Exception as exc:
            if not self._pool.is_disconnect(exc, lease):
                raise
            await self._drop()
            raise TransactionLost(
                "the connection died during COMMIT: the transaction's outcome is unknown; "
                "check before doing the work again"
            ) from exc
        except BaseException:
            await self._drop()  # interrupted: the outcome and the connection's state unknown
            raise
        self._in_transaction = False
        self._savepoints.clear()
        await self._give_back()

    async def rollback(self) -> None:
        """Discard the transaction and the queued writes, and give the connection back. After
        a `TransactionLost`, this is what makes the session usable again."""
        self._check_owner()
        self._pending.clear()
        self._savepoints.clear()
        self._lost = None
        lease = self._lease
        self._in_transaction = False
        if lease is None:
            return
        try:
            # The pool's own rollback, within reset_timeout: one cut short loses nothing
            # (the connection is dropped, and the server rolls back what it held).
            await self._driver().end_transaction(
                lease.driver_connection, self._pool.config.reset_timeout
            )
        except Exception as exc:
            if not self._pool.is_disconnect(exc, lease):
                raise
            await self._drop()  # dead anyway: nothing of the transaction survives
            return
        except BaseException:
            await self._drop()
            raise
        await self._give_back()

    async def close(self) -> None:
        """Roll back whatever is open, discard queued writes, give the connection back. The
        session may be used again (it borrows anew)."""
        await self.rollback()

    # -- scopes ----------------------------------------------------------------------------

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[AsyncSession]:
        """A nested scope: released on success, rolled back to on error (the enclosing
        transaction goes on)."""
        self._check()
        if self._autocommit or (self._lease is not None and self._is_autocommit()):
            raise UsageError("a savepoint needs a transaction: this session is in autocommit")
        await self.flush()
        name = self._next_savepoint_name()

        async def set_savepoint(driver: AsyncDriver, raw: Any) -> None:
            await driver.begin(raw)
            await driver.run_statement(raw, f"SAVEPOINT {name}")

        await self._run(set_savepoint)
        self._savepoints.append((name, len(self._pending)))
        try:
            yield self
        except BaseException:
            # Unless the transaction ended under the scope (commit, rollback or a lost
            # connection inside it): then its savepoint is gone with it.
            if self._lease is not None and self._lost is None and self._ends_scope(name):
                self._pending.clear()  # queued inside the savepoint: discarded with it
                await self._run(
                    lambda driver, raw: driver.run_statement(raw, f"ROLLBACK TO SAVEPOINT {name}")
                )
            raise
        if self._ends_scope(name):
            await self.flush()
            await self._run(
                lambda driver, raw: driver.run_statement(raw, f"RELEASE SAVEPOINT {name}")
            )

    async def __aenter__(self) -> AsyncSession:
        self._check_owner()
        if self._depth > 0:
            scope = self.savepoint()
            await scope.__aenter__()  # raises before the depth counts it: no exit follows
            self._nested.append(scope)
        self._depth += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth > 0:
            scope = self._nested.pop()
            await scope.__aexit__(exc_type, exc, tb)
            return
        if exc is not None:
            await self.close()
            return
        try:
            await self.commit()
        except BaseException:
            await self.close()
            raise

    # -- internals -------------------------------------------------------------------------

    def _check_owner(self) -> None:
        task = _current_task()
        owner = self._owner
        if owner is None:
            if task is not None:
                self._owner = weakref.ref(task)
            return
        if owner() is not task:
            raise ForeignSession(
                "this session belongs to another asyncio task; give each task its own "
                "(pool.scoped_session() does), never share one (note: before Python 3.12, "
                "asyncio.wait_for runs what it awaits as a task of its own)"
            )

    def _check(self) -> None:
        self._check_owner()
        if self._lost is not None:
            raise TransactionLost(
                f"{self._lost}; roll back (or close) the session before using it again"
            ) from self._lost.__cause__

    def _driver(self) -> AsyncDriver:
        # Looked up each time: a creator's connector learns its driver with the first
        # connection.
        return self._pool._connector.driver

    def _held_connection(self) -> Any:
        return None if self._lease is None else self._lease.driver_connection

    async def _check_sql_borrowing(self, sql: object) -> None:
        """`_check_sql`, borrowing first when composed SQL must be rendered with the
        connection (`add`, which cannot wait, renders with the one held, or None)."""
        if self._renders_with_connection(sql):
            await self._borrow()
        self._check_sql(sql)

    async def _borrow(self) -> AsyncLease:
        lease = self._lease
        if lease is not None:
            return lease
        lease = await self._pool.acquire(**self._acquire_args)
        saved: dict[str, Any] = {}
        try:
            await self._apply_modes(lease.driver_connection, saved)
        except BaseException as exc:
            # A connection whose modes were changed (or may have been: interrupted, dead)
            # must not serve anyone else; one left as it was goes back.
            if saved or not isinstance(exc, Exception) or self._pool.is_disconnect(exc, lease):
                await lease.drop()
            else:
                await lease.release()
            raise
        self._saved_modes = saved
        self._lease = lease
        return lease

    async def _apply_modes(self, raw: Any, saved: dict[str, Any]) -> None:
        """Set the session's modes, recording in ``saved`` what to put back as each is set.
        The isolation level first: a level the driver refuses then changes nothing."""
        driver = self._driver()
        limit = self._pool.config.reset_timeout
        if self._isolation_level is not None:
            current = await driver.isolation_level(raw, limit)
            await driver.set_isolation_level(raw, self._isolation_level, limit)
            saved["isolation_level"] = current
        if self._autocommit is not None and driver.autocommit(raw) != self._autocommit:
            await driver.set_autocommit(raw, self._autocommit, limit)
            saved["autocommit"] = not self._autocommit

    def _is_autocommit(self) -> bool:
        assert self._lease is not None
        return bool(self._driver().autocommit(self._lease.driver_connection))

    async def _run(self, work: Work) -> Any:
        """Run ``work(driver, connection)``; a dead connection inside a transaction is
        `TransactionLost`, outside one it is dropped (and, with ``reconnect``, the work
        retried once on a fresh connection). A driver that opens no transaction by itself
        gets a BEGIN first, outside autocommit."""
        retried = False
        while True:
            lease = await self._borrow()
            driver = self._driver()
            raw = lease.driver_connection
            try:
                if not driver.begins_implicitly and not driver.autocommit(raw):
                    await driver.begin(raw)
                result = await work(driver, raw)
            except Exception as exc:
                if not self._pool.is_disconnect(exc, lease):
                    raise
                lost = await self._drop_connection(exc, "died")
                if lost is not None:
                    raise lost from exc
                if not self._reconnect or retried:
                    raise
                retried = True  # once, on a fresh connection
                continue
            except BaseException as exc:
                # Cancelled mid-round-trip: the driver may still be busy on the connection.
                await self._drop_connection(exc, "was dropped when a statement was cancelled")
                raise
            if not driver.autocommit(raw):
                self._in_transaction = True
            return result

    async def _drop_connection(self, cause: BaseException, what: str) -> TransactionLost | None:
        """Drop the session's connection. When a transaction was open on it, it is lost:
        returns the error, which every use raises until `rollback`."""
        was_in_transaction = self._in_transaction or bool(self._savepoints)
        await self._drop()
        if not was_in_transaction:
            return None
        lost = TransactionLost(
            f"the connection {what} inside this session's transaction: its work is gone; "
            "nothing was retried"
        )
        lost.__cause__ = cause
        self._lost = lost
        return lost

    async def _drop(self) -> None:
        lease, self._lease = self._lease, None
        self._saved_modes = {}
        self._in_transaction = False
        self._savepoints.clear()
        if lease is not None and not lease.is_released:
            await lease.drop()

    async def _give_back(self) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        saved, self._saved_modes = self._saved_modes, {}
        try:
            driver = self._driver()
            raw = lease.driver_connection
            limit = self._pool.config.reset_timeout
            if "autocommit" in saved:
                await driver.set_autocommit(raw, saved["autocommit"], limit)
            if "isolation_level" in saved:
                await driver.set_isolation_level(raw, saved["isolation_level"], limit)
        except BaseException:
            # The connection's modes are unknown now: it must not serve anyone else.
            await lease.drop()
            raise
        await lease.release()


class AsyncScopedSession:
    """A registry giving each asyncio task its own `AsyncSession`, created on first use
    (SQLAlchemy's ``async_scoped_session`` with ``current_task`` as its scope). Call it for
    the current task's session; ``await remove()`` at the end of a request closes and
    forgets it. Session methods called on the registry go to the current task's session.

    The session is kept in a context variable of this registry. A task started by another
    inherits a copy of its context, and with it the other task's session: that one is
    never handed out (it belongs to its task); the new task gets a session of its own.

    Args:
        pool: the `AsyncPool`.
        **session_args: passed to each `AsyncSession`.
    """

    def __init__(self, pool: AsyncPool, **session_args: Any) -> None:
        self._pool = pool
        self._session_args = session_args
        self._current: ContextVar[AsyncSession | None] = ContextVar(
            f"sessionpool_scoped_session_{id(self):x}", default=None
        )

    def __call__(self) -> AsyncSession:
        session = self._current.get()
        if session is None or not _owned_here(session):
            session = AsyncSession(self._pool, **self._session_args)
            self._current.set(session)
        return session

    def has_session(self) -> bool:
        session = self._current.get()
        return session is not None and _owned_here(session)

    async def remove(self) -> None:
        """Close the current task's session (rolling back what is open) and forget it."""
        session = self._current.get()
        self._current.set(None)
        if session is not None and _owned_here(session):
            await session.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not hasattr(AsyncSession, name):
            raise AttributeError(name)
        return getattr(self(), name)


async def _executemany(driver: AsyncDriver, raw: Any, *, sql: str, rows: list[Params]) -> None:
    await driver.executemany(raw, sql, rows)


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no event loop running
        return None


def _owned_here(session: AsyncSession) -> bool:
    owner = session._owner
    return owner is not None and owner() is _current_task()
