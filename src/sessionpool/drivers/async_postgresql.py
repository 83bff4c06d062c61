"""PostgreSQL for `AsyncPool`: asyncpg and psycopg 3's AsyncConnection.

Same contract as the threaded adapters in `postgresql.py`: the cheap reset rolls back only when
the driver reports a transaction open (both know it locally); the full reset clears the whole
session; errors are classified by SQLSTATE and the drivers' connection-lost exceptions.
"""

from __future__ import annotations

import inspect
import weakref
from typing import Any, ClassVar

from ..errors import ConfigError, ConnectionDead, TransactionAborted, UsageError
from ..url import URL
from .async_base import AsyncURLDriver, finish_detached, within
from .base import ArgumentKind, convert_arguments, isolation_name, with_credentials
from .postgresql import (
    PsycopgDriver,
    is_postgresql_disconnect,
    libpq_arguments,
    libpq_connect_timeout,
)

__all__ = ["AsyncpgDriver", "AsyncPsycopgDriver"]

_IDLE, _ACTIVE, _INERROR, _UNKNOWN = 0, 1, 3, 4
# asyncpg keeps its own prepared statements (its statement cache, harmless to the next
# borrower and costly to lose), so its full reset spells out DISCARD ALL without the
# DEALLOCATE ALL and drops only the SQL-level statements a borrower PREPAREd.
_ASYNCPG_RESET = (
    "SET SESSION AUTHORIZATION DEFAULT; RESET ROLE; RESET ALL; DISCARD TEMP; "
    "DISCARD SEQUENCES; DISCARD PLANS"
)


class AsyncpgDriver(AsyncURLDriver):
    """asyncpg (``postgresql+asyncpg://``).

    asyncpg takes a host list itself, but its ``timeout`` is one budget for all the hosts
    (0.32 wraps the whole walk in it), so a first host that hangs would use up the time of
    the others. The connector walks a multi-host URL instead, one host per asyncpg connect,
    each within connect_timeout; asyncpg still checks ``target_session_attrs`` on each
    (``prefer-standby`` becomes two passes, see `failover.plan`).
    """

    name = "asyncpg"
    extra = "asyncpg"
    full_reset_in_place = True
    connect_timeout_argument = "timeout"
    quick_cancel = True
    _KINDS: ClassVar[dict[str, ArgumentKind | None]] = {
        "timeout": float,
        "command_timeout": float,
        "statement_cache_size": int,
        "max_cached_statement_lifetime": int,
        "max_cacheable_statement_size": int,
        "port": int,
        "direct_tls": bool,
    }

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        assert self.module is not None
        values: dict[str, Any] = {}
        if url.host is not None:
            values["host"] = url.host
        if url.port is not None:
            values["port"] = url.port
        if url.database is not None:
            values["database"] = url.database
        if url.username is not None:
            values["user"] = url.username
        if url.password is not None:
            values["password"] = url.password
        values.update(url.query)
        values.update(connect_args)
        settings = {}
        if "application_name" in values:  # a server setting, as in a libpq URL
            settings["application_name"] = values.pop("application_name")
        kinds: dict[str, ArgumentKind | None] = {
            name: str
            for name, parameter in inspect.signature(self.module.connect).parameters.items()
            if parameter.kind is parameter.KEYWORD_ONLY and name not in ("loop",)
        }
        kinds.update(self._KINDS)
        kinds["server_settings"] = None
        kinds["ssl"] = None
        arguments = convert_arguments(values, kinds, self.name)
        arguments.setdefault("timeout", 10.0)  # asyncpg's own default connect wait is 60 s
        if settings:
            arguments["server_settings"] = {**arguments.get("server_settings", {}), **settings}
        return arguments

    async def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        assert self.module is not None
        return await self.module.connect(**with_credentials(arguments, user, password))

    def pooler_arguments(self, mode: str) -> dict[str, Any]:
        """Behind a transaction-mode pooler, no statement cache: asyncpg then prepares every
        statement unnamed, in the same exchange that runs it, instead of naming it
        (``__asyncpg_stmt_1__``) on a server session the pooler may not give back."""
        return {"statement_cache_size": 0} if mode == "transaction" else {}

    async def adapt_to_pooler(self, connection: Any) -> None:
        # A creator's connection: its cache size is fixed at connect, so refuse, not adapt.
        size = getattr(getattr(connection, "_config", None), "statement_cache_size", 0)
        if size:
            raise ConfigError(
                f"the creator's asyncpg connection has statement_cache_size={size}, which "
                "cannot work with server_pooler='transaction' (its named prepared statements "
                "live on a server session the pooler may not give back); pass "
                "statement_cache_size=0 to asyncpg.connect"
            )

    async def pooler_in_front(self, connection: Any, timeout: float) -> tuple[int, int] | None:
        """As the psycopg adapters: the pid the protocol announced against the server's
        own. Asked in a transaction (so a pooler keeps one server session for it) through
        an unnamed statement (so nothing named is left on that session)."""
        protocol_pid = int(connection.get_server_pid())

        async def server_pid() -> int:
            async with connection.transaction():
                statement = await connection.prepare("SELECT pg_backend_pid()", name="")
                return int(await statement.fetchval())

        pid = await within(timeout, server_pid(), quick_cancel=True)
        return None if protocol_pid == pid else (protocol_pid, pid)

    def is_closed(self, connection: Any) -> bool:
        return bool(connection.is_closed())

    def fileno(self, connection: Any) -> int | None:
        return _transport_fd(getattr(connection, "_transport", None))

    def in_transaction(self, connection: Any) -> bool:
        # asyncpg's own Transaction object counts too: rolled back behind its back, it
        # would make the next borrower's transaction() a SAVEPOINT in no transaction.
        return bool(
            connection.is_in_transaction() or getattr(connection, "_top_xact", None) is not None
        )

    def is_clean(self, connection: Any) -> bool:
        return not (
            connection.is_closed() or self.in_transaction(connection) or _cancelling(connection)
        )

    async def ping(self, connection: Any, timeout: float) -> None:
        if connection.is_closed():
            raise ConnectionDead("the driver reports the connection closed")
        await within(timeout, connection.execute("SELECT 1"), quick_cancel=True)

    async def end_transaction(self, connection: Any, timeout: float) -> None:
        if connection.is_closed():
            raise ConnectionDead("the driver reports the connection closed")
        if _cancelling(connection):
            # A borrower was cancelled mid-command: until asyncpg's cancel request is
            # settled, the command (a BEGIN, say) may still complete on the server, and
            # the local transaction status means nothing. Wait for it, as asyncpg's own
            # pool does, then look.
            await within(timeout, _settle_cancellation(connection, timeout), quick_cancel=True)
        if self.in_transaction(connection):
            connection._top_xact = None
            await within(timeout, connection.execute("ROLLBACK"), quick_cancel=True)

    async def full_reset(self, connection: Any, timeout: float) -> bool:
        """asyncpg's ``reset()`` (rollback, listeners, advisory locks, cursors, LISTEN,
        settings), then role, session authorization, temp objects, sequences, plans and the
        borrower's own PREPAREd statements."""
        if connection.is_closed():
            raise ConnectionDead("the driver reports the connection closed")

        async def reset() -> None:
            if _cancelling(connection):
                await _settle_cancellation(connection, timeout)
            await connection.reset()
            await connection.execute(_ASYNCPG_RESET)
            names = await connection.fetch("SELECT name FROM pg_prepared_statements WHERE from_sql")
            for row in names:
                await connection.execute(f"DEALLOCATE {_quote(row[0])}")

        await within(timeout, reset(), quick_cancel=True)
        return True

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        if super().is_disconnect(error, connection):
            return True
        if isinstance(error, (ConnectionError, OSError)):
            return True
        if self.module is not None and isinstance(
            error, self.module.exceptions.ConnectionDoesNotExistError
        ):
            return True
        if type(error).__name__ == "InterfaceError" and "closed" in str(error):
            return True
        return is_postgresql_disconnect(error)

    async def close(self, connection: Any, timeout: float) -> None:
        try:
            await within(timeout, connection.close(), quick_cancel=True)
        except BaseException:
            connection.terminate()  # no goodbye: just drop the socket
            raise

    # -- sessions --------------------------------------------------------------------------
    # asyncpg has no cursors and no autocommit switch: outside a transaction every statement
    # commits by itself. A session's transactions are opened here (BEGIN, with its isolation
    # level) and ended by COMMIT or ROLLBACK; the session's modes live in the driver, per
    # connection, since asyncpg has nowhere to keep them. Parameters are positional ($1).

    begins_implicitly = False

    def __init__(self, module: Any = None) -> None:
        super().__init__(module)
        # Only sessions set these, and they put them back when they return the connection.
        self._autocommit: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
        self._isolation: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    async def execute(self, connection: Any, sql: str, params: Any) -> Any:
        """Returns asyncpg's status of the statement ("INSERT 0 1")."""
        return await connection.execute(sql, *_positional(params))

    async def executemany(self, connection: Any, sql: str, rows: list[Any]) -> None:
        await connection.executemany(sql, [_positional(params) for params in rows])

    async def fetch(self, connection: Any, sql: str, params: Any, *, all_rows: bool) -> Any:
        if all_rows:
            return await connection.fetch(sql, *_positional(params))
        return await connection.fetchrow(sql, *_positional(params))

    async def run_statement(self, connection: Any, sql: str) -> None:
        await connection.execute(sql)

    async def begin(self, connection: Any) -> None:
        if not connection.is_in_transaction():
            level = self._isolation.get(connection)
            await connection.execute("BEGIN" if level is None else f"BEGIN ISOLATION LEVEL {level}")

    async def commit(self, connection: Any, timeout: float) -> None:
        # asyncpg connections have no commit(): a transaction left open is ended by SQL.
        await within(timeout, self.commit_transaction(connection), quick_cancel=True)

    async def commit_transaction(self, connection: Any) -> None:
        if connection.is_closed():
            # Its transaction status is stale now: never let a lost one look committed.
            raise ConnectionDead("the driver reports the connection closed")
        # asyncpg cannot tell an aborted transaction locally; the server answers its COMMIT
        # with ROLLBACK, which must not pass for a commit.
        if connection.is_in_transaction() and await connection.execute("COMMIT") == "ROLLBACK":
            raise TransactionAborted(
                "a statement failed inside this transaction and the database aborted "
                "it: COMMIT rolled it back. Do the work again"
            )

    def autocommit(self, connection: Any) -> bool:
        return self._autocommit.get(connection, False)

    async def set_autocommit(self, connection: Any, on: bool, timeout: float) -> None:
        if on:
            self._autocommit[connection] = True
        else:
            self._autocommit.pop(connection, None)

    async def isolation_level(self, connection: Any, timeout: float) -> str | None:
        return self._isolation.get(connection)

    async def set_isolation_level(self, connection: Any, level: str | None, timeout: float) -> None:
        if level is None:
            self._isolation.pop(connection, None)
        else:
            self._isolation[connection] = isolation_name(level)


class AsyncPsycopgDriver(AsyncURLDriver):
    """psycopg 3's AsyncConnection (``postgresql://`` and ``postgresql+psycopg://`` in an
    AsyncPool)."""

    name = "psycopg (async)"
    extra = "postgresql"
    full_reset_in_place = True
    connect_timeout_argument = "connect_timeout"
    # psycopg splits libpq's host=a,b into one attempt per host (each within
    # connect_timeout, target_session_attrs checked by libpq on each).
    handles_host_lists = True

    def connect_timeout_value(self, seconds: float) -> Any:
        return libpq_connect_timeout(seconds)

    # psycopg answers a cancellation by sending a cancel request over a new connection and
    # waiting for the query to end: against a hung server, seconds. Abandon instead.
    quick_cancel = False
    _ATTRIBUTES = ("prepare_threshold", "prepared_max", "row_factory", "cursor_factory")
    _SETTERS = ("autocommit", "isolation_level", "read_only", "deferrable")

    def __init__(self, module: Any = None) -> None:
        super().__init__(module)
        self._baseline: dict[str, Any] | None = None

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        return libpq_arguments(url, connect_args, PsycopgDriver.extra_arguments, self.name)

    async def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        assert self.module is not None
        return await self.module.AsyncConnection.connect(
            **with_credentials(arguments, user, password)
        )

    async def opened(self, connection: Any) -> None:
        if self._baseline is None:
            self._baseline = {
                name: getattr(connection, name) for name in self._ATTRIBUTES + self._SETTERS
            }

    def pooler_arguments(self, mode: str) -> dict[str, Any]:
        """As the threaded psycopg adapter: no automatic server-side prepared statements."""
        return {"prepare_threshold": None} if mode == "transaction" else {}

    async def adapt_to_pooler(self, connection: Any) -> None:
        connection.prepare_threshold = None

    async def pooler_in_front(self, connection: Any, timeout: float) -> tuple[int, int] | None:
        """As the threaded psycopg adapter, in autocommit for the query only."""
        protocol_pid = int(connection.info.backend_pid)

        async def server_pid() -> int:
            restore = not connection.autocommit
            if restore:
                await connection.set_autocommit(True)
            try:
                cursor = await connection.execute("SELECT pg_backend_pid()", prepare=False)
                row = await cursor.fetchone()
            finally:
                if restore:
                    await connection.set_autocommit(False)
            return int(row[0])

        pid = await within(timeout, server_pid(), quick_cancel=False)
        return None if protocol_pid == pid else (protocol_pid, pid)

    def is_closed(self, connection: Any) -> bool:
        return bool(connection.closed or connection.broken)

    def fileno(self, connection: Any) -> int | None:
        return int(connection.pgconn.socket)

    def in_transaction(self, connection: Any) -> bool:
        return int(connection.pgconn.transaction_status) != _IDLE

    def in_failed_transaction(self, connection: Any) -> bool:
        return int(connection.pgconn.transaction_status) == _INERROR

    async def ping(self, connection: Any, timeout: float) -> None:
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        status = int(connection.pgconn.transaction_status)
        if status in (_ACTIVE, _UNKNOWN):
            raise ConnectionDead("a command is still running on this connection")

        async def probe() -> None:
            if connection.autocommit or status != _IDLE:
                await connection.execute("", prepare=False)
                return
            await connection.set_autocommit(True)
            try:
                await connection.execute("", prepare=False)
            finally:
                await connection.set_autocommit(False)

        await within(timeout, probe(), quick_cancel=False)

    async def end_transaction(self, connection: Any, timeout: float) -> None:
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        status = int(connection.pgconn.transaction_status)
        if status == _IDLE:
            return
        if status in (_ACTIVE, _UNKNOWN):
            raise ConnectionDead("a command is still running on this connection")
        await within(timeout, connection.rollback(), quick_cancel=False)

    async def full_reset(self, connection: Any, timeout: float) -> bool:
        """As the threaded psycopg adapter: DISCARD ALL + RESET ROLE, then psycopg's client
        side (queued notifications, handlers, connection attributes as opened)."""
        await self.end_transaction(connection, timeout)

        async def reset() -> None:
            await connection.set_autocommit(True)
            await connection.execute("DISCARD ALL", prepare=False)
            await connection.execute("RESET ROLE", prepare=False)
            baseline = self._baseline or {"autocommit": False}
            for name in self._SETTERS:
                if name in baseline and getattr(connection, name) != baseline[name]:
                    await getattr(connection, f"set_{name}")(baseline[name])

        await within(timeout, reset(), quick_cancel=False)
        backlog = getattr(connection, "_notifies_backlog", None)
        if backlog is not None:
            backlog.clear()
        while connection.pgconn.notifies() is not None:
            pass
        for handlers in ("_notice_handlers", "_notify_handlers"):
            registered = getattr(connection, handlers, None)
            if isinstance(registered, list):
                registered.clear()
        for name in self._ATTRIBUTES:
            value = (self._baseline or {}).get(name)
            if name in (self._baseline or {}) and getattr(connection, name) != value:
                setattr(connection, name, value)
        return True

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        return super().is_disconnect(error, connection) or is_postgresql_disconnect(error)

    async def close(self, connection: Any, timeout: float) -> None:
        # An abandoned call (see `within`) may still be running on this connection, in
        # psycopg's own cancel handling; finishing libpq's connection under it crashes
        # libpq. psycopg holds the connection's lock while a command runs: close after it.
        async def close_when_free() -> None:
            async with connection.lock:
                await connection.close()

        await finish_detached(timeout, close_when_free())

    # -- sessions: statements are `AsyncDriver`'s (cursors); the modes are local settings
    # psycopg applies at the next BEGIN, so they need no round trip and no time limit.

    def autocommit(self, connection: Any) -> bool:
        return bool(connection.autocommit)

    async def set_autocommit(self, connection: Any, on: bool, timeout: float) -> None:
        await connection.set_autocommit(on)

    async def isolation_level(self, connection: Any, timeout: float) -> str | None:
        level = connection.isolation_level  # None: the server's default
        return None if level is None else str(level.name).replace("_", " ")

    async def set_isolation_level(self, connection: Any, level: str | None, timeout: float) -> None:
        assert self.module is not None
        value = None
        if level is not None:
            value = self.module.IsolationLevel[isolation_name(level).replace(" ", "_")]
        await connection.set_isolation_level(value)


def _transport_fd(transport: Any) -> int | None:
    """The socket descriptor under an asyncio transport, if any."""
    sock = None if transport is None else transport.get_extra_info("socket")
    return None if sock is None else int(sock.fileno())


def _cancelling(connection: Any) -> bool:
    """Whether asyncpg still has a cancel request of an interrupted command under way."""
    protocol = getattr(connection, "_protocol", None)
    is_cancelling = getattr(protocol, "_is_cancelling", None)
    return bool(is_cancelling is not None and is_cancelling())


async def _settle_cancellation(connection: Any, timeout: float) -> None:
    await connection._protocol._wait_for_cancellation(timeout)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _positional(params: Any) -> Any:
    """A session's parameters as asyncpg's positional arguments."""
    if params is None:
        return ()
    if isinstance(params, dict):
        raise UsageError("asyncpg takes positional parameters ($1, $2...), not a dict")
    return tuple(params)
