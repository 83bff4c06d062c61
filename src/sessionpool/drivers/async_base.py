"""The asyncio driver seam: what `AsyncPool` needs from an async driver, and the executor
bridge that lets it use any blocking DB-API driver too.

Mirrors `drivers.base`: an `AsyncDriver` knows one driver's connections (closed? alive?
end the transaction, reset the session, is this error a disconnect), an `AsyncConnector`
opens them. Round trips are awaited under a deadline; local checks stay synchronous.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import sys
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import ConfigError, ConnectionDead, UsageError
from ..url import URL
from . import failover
from .base import (
    Connector,
    Driver,
    applied_connect_limit,
    count_attempts,
    failover_plan,
    point_at_host,
    scrub_error,
    with_pooler_arguments,
)
from .failover import Attempt

__all__ = [
    "AsyncConnector",
    "AsyncCreatorConnector",
    "AsyncDriver",
    "AsyncURLConnector",
    "AsyncURLDriver",
    "ExecutorConnector",
    "finish_detached",
    "within",
]

T = TypeVar("T")


async def within(timeout: float, awaitable: Awaitable[T], *, quick_cancel: bool = False) -> T:
    """Await ``awaitable`` for at most ``timeout`` seconds, raising `ConnectionDead` after.

    By default the work runs as a task of its own and is abandoned (cancelled, not awaited)
    when the time is up: a driver's own cancellation handling may take long (psycopg sends a
    cancel request over a new connection, which a hung server never answers), and the
    caller's deadline must not wait for it. A connection whose call was abandoned is dropped
    by the pool. If the caller itself is cancelled, the work is cancelled too.

    ``quick_cancel=True`` is for drivers whose cancellation returns at once (asyncpg,
    aiomysql, aiosqlite): the work is awaited in place under a timeout, which costs a
    quarter of a task and a wait on Python 3.11+.
    """
    if quick_cancel and sys.version_info >= (3, 11):
        try:
            async with asyncio.timeout(timeout):
                return await awaitable
        except TimeoutError as exc:
            raise ConnectionDead(f"no answer within {timeout} s") from exc
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait((task,), timeout=timeout)
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        task.add_done_callback(_consume_result)
        raise ConnectionDead(f"no answer within {timeout} s")
    return task.result()


# Work left to finish in the background (see finish_detached): referenced until done.
_detached: set[asyncio.Future[Any]] = set()


async def finish_detached(timeout: float, awaitable: Awaitable[Any]) -> None:
    """Run ``awaitable`` to its end as a task of its own, waiting at most ``timeout`` for it.

    Past the limit, or if the caller is cancelled, the work goes on in the background rather
    than being cancelled: for a close that must wait until an abandoned command lets go of
    the connection, cancelling it would leak the server session instead.
    Raises:
        ConnectionDead: it did not finish within ``timeout``.
    """
    task = asyncio.ensure_future(awaitable)
    _detached.add(task)
    task.add_done_callback(_detached.discard)
    task.add_done_callback(_consume_result)
    done, _ = await asyncio.wait((task,), timeout=timeout)
    if not done:
        raise ConnectionDead(f"not finished within {timeout} s; left to finish in the background")
    task.result()


def _consume_result(task: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned task's outcome so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


class AsyncDriver:
    """Knowledge of one async driver. The defaults suit any connection with ``rollback()``
    and ``close()`` coroutines and nothing else known."""

    name = "generic-async"
    extra = ""
    #: Whether `full_reset` works in place (else a reset means a new connection).
    full_reset_in_place = False
    #: Whether the driver's own cancellation returns at once (see `within`). A driver
    #: sessionpool does not know is trusted to: abandoning each call costs a task.
    quick_cancel = True

    def __init__(self, module: Any = None) -> None:
        self.module = module

    async def opened(self, connection: Any) -> None:
        """Called once with each new connection, before the pool's ``on_connect``."""

    async def adapt_to_pooler(self, connection: Any) -> None:
        """As `Driver.adapt_to_pooler`: make a new connection safe behind a
        transaction-mode pooler, or raise `ConfigError` when it cannot be."""

    async def pooler_in_front(self, connection: Any, timeout: float) -> tuple[int, int] | None:
        """As `Driver.pooler_in_front`: (protocol pid, server pid) when they differ."""
        return None

    def is_closed(self, connection: Any) -> bool:
        """True when the driver already knows the connection is closed or broken."""
        return False

    def in_transaction(self, connection: Any) -> bool:
        """Whether a transaction may be open; True when the driver cannot tell."""
        return True

    def fileno(self, connection: Any) -> int | None:
        """The connection's socket descriptor, where the driver exposes it (fork safety)."""
        return None

    def is_clean(self, connection: Any) -> bool:
        """True when the driver knows locally that the connection is open with no
        transaction: the cheap reset then has nothing to do."""
        return not self.is_closed(connection) and not self.in_transaction(connection)

    async def ping(self, connection: Any, timeout: float) -> None:
        """Check the connection is alive within ``timeout``; raises when it is not."""
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")

    async def end_transaction(self, connection: Any, timeout: float) -> None:
        """The cheap reset on return: roll back whatever the borrower left open."""
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        if self.in_transaction(connection):
            await within(timeout, connection.rollback(), quick_cancel=self.quick_cancel)

    async def full_reset(self, connection: Any, timeout: float) -> bool:
        """Clear all session state; False when only a reopen can (the pool then reopens)."""
        return False

    async def commit(self, connection: Any, timeout: float) -> None:
        """Commit what the borrower left (``reset_on_return="commit"``)."""
        await within(timeout, connection.commit(), quick_cancel=self.quick_cancel)

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        if isinstance(error, ConnectionDead):
            return True
        return connection is not None and self.is_closed(connection)

    async def close(self, connection: Any, timeout: float) -> None:
        """Close a connection within ``timeout``; abort it when that runs out."""
        await within(timeout, connection.close(), quick_cancel=self.quick_cancel)

    # -- sessions: statements and transaction modes (`AsyncSession` runs them) -------------
    #
    # The defaults suit cursor-based drivers whose calls are coroutines or return awaitables
    # (psycopg's AsyncConnection, aiomysql, aiosqlite). Statements, BEGIN and COMMIT carry no
    # time limit: they are the borrower's work, which may rightly take long (a server's
    # statement_timeout bounds it), and a COMMIT cut short would make a transaction that may
    # have committed look lost. The mode round trips are the session's own housekeeping and
    # are bounded like the pool's resets.

    #: False for a driver that opens no transaction by itself (asyncpg): outside autocommit,
    #: a session then calls `begin` before each statement.
    begins_implicitly = True

    async def execute(self, connection: Any, sql: str, params: Any) -> Any:
        """Run one statement; returns what the driver returns for it (the cursor here)."""
        cursor = await _awaited(connection.cursor())
        if params is None:
            await _awaited(cursor.execute(sql))
        else:
            await _awaited(cursor.execute(sql, params))
        return cursor

    async def executemany(self, connection: Any, sql: str, rows: list[Any]) -> None:
        """Run ``sql`` for every parameter set in ``rows``, batched as the driver allows."""
        cursor = await _awaited(connection.cursor())
        try:
            await _awaited(cursor.executemany(sql, rows))
        finally:
            await _awaited(cursor.close())

    async def fetch(self, connection: Any, sql: str, params: Any, *, all_rows: bool) -> Any:
        """Run a query and return all its rows, or (``all_rows=False``) the first or None."""
        cursor = await self.execute(connection, sql, params)
        try:
            return await _awaited(cursor.fetchall() if all_rows else cursor.fetchone())
        finally:
            await _awaited(cursor.close())

    async def run_statement(self, connection: Any, sql: str) -> None:
        """Run a statement of the session's own (SAVEPOINT...), leaving no cursor open."""
        cursor = await self.execute(connection, sql, None)
        await _awaited(cursor.close())

    async def begin(self, connection: Any) -> None:
        """Make sure a transaction is open (before a savepoint, and before every statement
        where `begins_implicitly` is False)."""

    async def commit_transaction(self, connection: Any) -> None:
        """Commit the borrower's transaction (no time limit: see above)."""
        await _awaited(connection.commit())

    def in_failed_transaction(self, connection: Any) -> bool:
        """Whether the open transaction was aborted by an error (see `Driver`)."""
        return False

    def autocommit(self, connection: Any) -> bool:
        """Whether each statement commits by itself (local, no round trip)."""
        getter = getattr(connection, "get_autocommit", None)
        if callable(getter):
            return bool(getter())
        value = getattr(connection, "autocommit", False)
        return False if callable(value) else bool(value)

    async def set_autocommit(self, connection: Any, on: bool, timeout: float) -> None:
        """Switch autocommit on or off within ``timeout``."""
        setter = getattr(connection, "set_autocommit", None)  # psycopg's spelling
        if not callable(setter):
            setter = getattr(connection, "autocommit", None)  # aiomysql's
        if not callable(setter):
            raise UsageError(f"the {self.name} driver has no autocommit mode sessionpool can set")
        await within(timeout, _awaited(setter(on)), quick_cancel=self.quick_cancel)

    async def isolation_level(self, connection: Any, timeout: float) -> str | None:
        """The isolation level of the next transactions ("READ COMMITTED"...), None for the
        server's default or when the driver cannot tell."""
        return None

    async def set_isolation_level(self, connection: Any, level: str | None, timeout: float) -> None:
        """Set the level of the next transactions; None: the server's default."""
        raise UsageError(f"sessionpool cannot set the isolation level of {self.name} connections")


async def _awaited(value: Any) -> Any:
    """``value``, awaited if it is awaitable (async drivers differ on which calls are)."""
    return await value if inspect.isawaitable(value) else value


class AsyncURLDriver(AsyncDriver):
    """An AsyncDriver that opens connections from a parsed URL."""

    #: The connect argument that bounds opening a connection, if the driver has one (the
    #: pool also awaits each connect under its own time limit).
    connect_timeout_argument: str | None = None
    #: As `URLDriver.handles_host_lists`.
    handles_host_lists = False

    def arguments_for_host(self, arguments: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        """``arguments`` aimed at one host of a multi-host URL (a copy)."""
        return point_at_host(arguments, attempt)

    def connect_timeout_value(self, seconds: float) -> Any:
        return seconds

    def pooler_arguments(self, mode: str) -> dict[str, Any]:
        """As `URLDriver.pooler_arguments`."""
        return {}

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        raise NotImplementedError

    async def dispose(self) -> None:
        """Release what the driver holds for the pool."""


class AsyncConnector:
    """Opens connections for an `AsyncPool` and owns the `AsyncDriver` that knows them."""

    driver: AsyncDriver = AsyncDriver()

    async def connect(self, user: str | None = None, password: str | None = None) -> Any:
        raise NotImplementedError

    async def close(self, connection: Any, timeout: float) -> None:
        await self.driver.close(connection, timeout)

    async def dispose(self) -> None:
        """Release what the connector holds; the pool calls it when it closes."""

    def limit_connects(self, seconds: float) -> None:
        """Bound each connect to ``seconds`` where the driver can (the pool bounds it too)."""

    def connect_attempts(self) -> int:
        """As `Connector.connect_attempts`: the pool bounds a connect by ``connect_timeout``
        times this."""
        return 1

    def connect_limit(self, seconds: float) -> float:
        """As `Connector.connect_limit`."""
        return seconds

    def use_server_pooler(self, mode: str | None) -> None:
        """As `Connector.use_server_pooler`."""

    def describe(self) -> str:
        return type(self).__name__


class AsyncCreatorConnector(AsyncConnector):
    """Connections from a user's coroutine function (``async def connect(): ...``)."""

    def __init__(self, creator: Callable[..., Awaitable[Any]]) -> None:
        if not callable(creator):
            raise ConfigError(
                "creator must be a coroutine function returning a connection, "
                f"not {type(creator).__name__}"
            )
        self.creator = creator
        self.driver = AsyncDriver()
        self._recognised = False

    async def connect(self, user: str | None = None, password: str | None = None) -> Any:
        if user is None:
            connection = await self.creator()
        else:
            connection = await self.creator(user=user, password=password)
        if not self._recognised:
            from .async_registry import async_driver_for_connection

            self.driver = async_driver_for_connection(connection)
            self._recognised = True
        return connection

    def describe(self) -> str:
        name = getattr(self.creator, "__qualname__", None) or type(self.creator).__name__
        return f"creator {name}"


class AsyncURLConnector(AsyncConnector):
    """Connections described by a URL, opened through the async driver it names."""

    driver: AsyncURLDriver

    def __init__(self, url: URL, driver: AsyncURLDriver, connect_args: dict[str, Any]) -> None:
        self.url = url
        self.driver = driver
        self.arguments = driver.arguments_from_url(url, connect_args)
        self._given = set(url.query) | set(connect_args)
        self._secrets = url.secrets() + [
            str(v) for k, v in connect_args.items() if "password" in k.lower() and v
        ]
        self._attempts = failover_plan(url, driver.handles_host_lists, self.arguments)
        self._per_host_limit: float | None = None

    def limit_connects(self, seconds: float) -> None:
        """As `URLConnector.limit_connects`; a multi-host walk also awaits each host within
        ``seconds`` (aiomysql's connect_timeout bounds only the TCP connect, not the
        server's greeting)."""
        self._per_host_limit = seconds
        name = self.driver.connect_timeout_argument
        if name is not None and name not in self._given:
            self.arguments[name] = self.driver.connect_timeout_value(seconds)

    def connect_attempts(self) -> int:
        return count_attempts(self.url, self.arguments)

    def connect_limit(self, seconds: float) -> float:
        return applied_connect_limit(self.driver.connect_timeout_value(seconds), seconds)

    def use_server_pooler(self, mode: str | None) -> None:
        """As `URLConnector.use_server_pooler`."""
        self.arguments = with_pooler_arguments(
            self.arguments, self._given, self.driver.pooler_arguments(mode) if mode else {}, mode
        )

    async def connect(self, user: str | None = None, password: str | None = None) -> Any:
        if self._attempts is None:
            return await self._open(self.arguments, user, password)
        return await failover.connect_first_async(self._attempts, self._host_opener(user, password))

    def _host_opener(
        self, user: str | None, password: str | None
    ) -> Callable[[Attempt], Awaitable[Any]]:
        """Opens one host of the walk, within the per-host limit when the pool set one."""
        limit = self._per_host_limit

        def open_host(attempt: Attempt) -> Awaitable[Any]:
            arguments = self.driver.arguments_for_host(self.arguments, attempt)
            opening = self._open(arguments, user, password)
            if limit is None:
                return opening
            return within(limit, opening, quick_cancel=self.driver.quick_cancel)

        return open_host

    async def _open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        try:
            return await self.driver.open(arguments, user, password)
        except Exception as exc:
            scrub_error(exc, self._secrets + ([password] if password else []))
            raise

    async def dispose(self) -> None:
        await self.driver.dispose()

    def describe(self) -> str:
        return self.url.without_query(self.url.query).render()


class _ExecutorDriver(AsyncDriver):
    """A blocking `Driver` run on a bounded thread pool, so the event loop never blocks.

    Its own time limits (the watchdog) still apply inside the worker thread; the await is
    bounded as well, so a stuck thread cannot hold the caller past its limit.
    """

    def __init__(self, driver: Driver, executor: ThreadPoolExecutor) -> None:
        super().__init__(driver.module)
        self.sync = driver
        self.name = f"{driver.name} (thread pool)"
        self.extra = driver.extra
        self.full_reset_in_place = driver.full_reset_in_place
        self._executor = executor

    async def _run(self, timeout: float, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        # A small margin over the driver's own limit, which cuts the socket first.
        return await within(timeout + 1.0, loop.run_in_executor(self._executor, function, *args))

    async def opened(self, connection: Any) -> None:
        await self._run(60.0, self.sync.opened, connection)

    async def adapt_to_pooler(self, connection: Any) -> None:
        await self._run(60.0, self.sync.adapt_to_pooler, connection)

    async def pooler_in_front(self, connection: Any, timeout: float) -> tuple[int, int] | None:
        return await self._run(timeout, self.sync.pooler_in_front, connection, timeout)

    def is_closed(self, connection: Any) -> bool:
        return self.sync.is_closed(connection)

    def fileno(self, connection: Any) -> int | None:
        return self.sync.fileno(connection)

    def in_transaction(self, connection: Any) -> bool:
        return self.sync.in_transaction(connection)

    async def ping(self, connection: Any, timeout: float) -> None:
        await self._run(timeout, self.sync.ping, connection, timeout)

    async def end_transaction(self, connection: Any, timeout: float) -> None:
        if self.sync.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        if self.sync.in_transaction(connection):
            await self._run(timeout, self.sync.end_transaction, connection, timeout)

    async def full_reset(self, connection: Any, timeout: float) -> bool:
        return await self._run(timeout, self.sync.full_reset, connection, timeout)

    async def commit(self, connection: Any, timeout: float) -> None:
        await self._run(timeout, self.sync.call_within, connection, timeout, connection.commit)

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        return self.sync.is_disconnect(error, connection)

    async def close(self, connection: Any, timeout: float) -> None:
        await self._run(timeout, self.sync.close, connection)

    # Sessions: the blocking driver's statements on the thread pool, without a limit (see
    # `AsyncDriver`); its mode round trips under the watchdog, as its resets.

    async def _call(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def execute(self, connection: Any, sql: str, params: Any) -> Any:
        return await self._call(_execute_blocking, connection, sql, params)

    async def executemany(self, connection: Any, sql: str, rows: list[Any]) -> None:
        await self._call(self._executemany_blocking, connection, sql, rows)

    def _executemany_blocking(self, connection: Any, sql: str, rows: list[Any]) -> None:
        cursor = connection.cursor()
        try:
            self.sync.executemany(cursor, sql, rows)
        finally:
            cursor.close()

    async def fetch(self, connection: Any, sql: str, params: Any, *, all_rows: bool) -> Any:
        return await self._call(_fetch_blocking, connection, sql, params, all_rows)

    async def run_statement(self, connection: Any, sql: str) -> None:
        await self._call(_run_blocking, connection, sql)

    async def begin(self, connection: Any) -> None:
        await self._call(self.sync.begin, connection)

    async def commit_transaction(self, connection: Any) -> None:
        await self._call(connection.commit)

    def in_failed_transaction(self, connection: Any) -> bool:
        return self.sync.in_failed_transaction(connection)

    def autocommit(self, connection: Any) -> bool:
        return self.sync.autocommit(connection)

    async def set_autocommit(self, connection: Any, on: bool, timeout: float) -> None:
        change = functools.partial(self.sync.set_autocommit, connection, on)
        await self._run(timeout, self.sync.call_within, connection, timeout, change)

    async def isolation_level(self, connection: Any, timeout: float) -> str | None:
        read = functools.partial(self.sync.isolation_level, connection)
        return await self._run(timeout, self.sync.call_within, connection, timeout, read)

    async def set_isolation_level(self, connection: Any, level: str | None, timeout: float) -> None:
        change = functools.partial(self.sync.set_isolation_level, connection, level)
        await self._run(timeout, self.sync.call_within, connection, timeout, change)


def _execute_blocking(connection: Any, sql: str, params: Any) -> Any:
    cursor = connection.cursor()
    if params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)
    return cursor


def _run_blocking(connection: Any, sql: str) -> None:
    _execute_blocking(connection, sql, None).close()


def _fetch_blocking(connection: Any, sql: str, params: Any, all_rows: bool) -> Any:
    cursor = _execute_blocking(connection, sql, params)
    try:
        return cursor.fetchall() if all_rows else cursor.fetchone()
    finally:
        cursor.close()


class ExecutorConnector(AsyncConnector):
    """Lets `AsyncPool` use a blocking DB-API driver: connects, resets, checks and closes run
    on a thread pool of at most ``max_workers`` threads. Borrowers get the blocking
    connection itself (run its calls with ``asyncio.to_thread`` or accept the blocking)."""

    driver: _ExecutorDriver

    def __init__(self, connector: Connector, max_workers: int) -> None:
        self.sync = connector
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="sessionpool-io"
        )
        self.driver = _ExecutorDriver(connector.driver, self._executor)

    async def connect(self, user: str | None = None, password: str | None = None) -> Any:
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(self._executor, self.sync.connect, user, password)
        try:
            # Shielded: a caller that gives up (connect_timeout, cancellation) cannot stop
            # the thread, so the connection it still opens is closed when it arrives.
            connection = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(self._close_if_connected)
            raise
        if self.driver.sync is not self.sync.driver:  # a creator recognised its driver
            self.driver = _ExecutorDriver(self.sync.driver, self._executor)
        return connection

    def limit_connects(self, seconds: float) -> None:
        self.sync.limit_connects(seconds)

    def connect_attempts(self) -> int:
        return self.sync.connect_attempts()

    def connect_limit(self, seconds: float) -> float:
        return self.sync.connect_limit(seconds)

    def use_server_pooler(self, mode: str | None) -> None:
        self.sync.use_server_pooler(mode)

    def _close_if_connected(self, opening: asyncio.Future[Any]) -> None:
        if not opening.cancelled() and opening.exception() is None:
            self._executor.submit(self._close_quietly, opening.result())

    def _close_quietly(self, connection: Any) -> None:
        with contextlib.suppress(Exception):  # abandoned: nobody to tell
            self.sync.close(connection)

    async def dispose(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.sync.dispose)
        self._executor.shutdown(wait=False)

    def describe(self) -> str:
        return f"{self.sync.describe()} (thread pool)"
