"""PostgreSQL through psycopg 3 or psycopg2: status checks, resets and disconnect codes.

The cheap reset reads libpq's transaction status locally and rolls back only when a
transaction is open. The full reset is ``DISCARD ALL`` (role, session authorization, settings,
temp objects, prepared statements, cursors, LISTEN, advisory locks, plans, sequences) then
``RESET ROLE`` (back to the login role's own default role), plus the driver's client-side
state. Every round trip runs under the watchdog's time limit.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any, ClassVar

from ..errors import ConnectionDead
from ..url import URL
from .base import (
    ArgumentKind,
    URLDriver,
    convert_arguments,
    isolation_name,
    with_credentials,
)

__all__ = [
    "Psycopg2Driver",
    "PsycopgDriver",
    "is_postgresql_disconnect",
    "libpq_arguments",
    "libpq_host_values",
]

# libpq connection keywords (PostgreSQL 15-17); strings, parsed by libpq itself.
_LIBPQ_KEYWORDS = [
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslmode",
    "requiressl",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslpassword",
    "sslcertmode",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
    "target_session_attrs",
    "load_balance_hosts",
    "sslnegotiation",
    "require_auth",
]
# A connect that hangs would hold an opener for ever; libpq waits without limit by default.
_DEFAULT_CONNECT_TIMEOUT = "10"

# SQLSTATEs after which the session is gone: class 08 (connection exception) and the
# server's "terminating connection" family (admin shutdown, crash shutdown, cannot connect
# now, idle-session and idle-in-transaction timeouts, which are FATAL).
_DEAD_STATES = frozenset({"57P01", "57P02", "57P03", "57P05", "25P03"})
# Client-side failures carry no SQLSTATE; libpq and the drivers word them so.
_DEAD_MESSAGES = (
    "server closed the connection",
    "connection already closed",
    "connection is closed",
    "connection is lost",
    "the connection is closed",
    "terminating connection",
    "could not receive data from server",
    "could not send data to server",
    "consuming input failed",
    "ssl syscall error",
    "ssl connection has been closed",
    "no connection to the server",
    "lost synchronization with server",
    "connection not open",
    "bad connection",
)
# libpq PQtransactionStatus values, both drivers
_IDLE, _ACTIVE, _INERROR, _UNKNOWN = 0, 1, 3, 4


def libpq_arguments(
    url: URL,
    connect_args: dict[str, Any],
    extra_kinds: dict[str, ArgumentKind | None],
    driver_name: str,
) -> dict[str, Any]:
    """libpq connect keywords for ``url`` (psycopg, psycopg2, psycopg's AsyncConnection),
    checked by name; ``extra_kinds`` are the driver's own arguments beside libpq's."""
    values: dict[str, Any] = libpq_host_values(url)
    if url.database is not None:
        values["dbname"] = url.database
    if url.username is not None:
        values["user"] = url.username
    if url.password is not None:
        values["password"] = url.password
    values.update(url.query)
    values.update(connect_args)
    values.setdefault("connect_timeout", _DEFAULT_CONNECT_TIMEOUT)
    kinds: dict[str, ArgumentKind | None] = dict.fromkeys(_LIBPQ_KEYWORDS, None)
    kinds.update(extra_kinds)
    return convert_arguments(values, kinds, driver_name)


def libpq_host_values(url: URL) -> dict[str, str]:
    """libpq's ``host`` and ``port`` for the URL's hosts: ``host=a,b port=5432,5433``, the
    form in which libpq tries each host in turn (``connect_timeout`` applying to each) and
    checks ``target_session_attrs`` on each. A path is a unix-socket directory; an empty
    port in the list is libpq's default port."""
    values: dict[str, str] = {}
    if any(host is not None for host, _ in url.hosts):
        values["host"] = ",".join(host or "" for host, _ in url.hosts)
    if any(port is not None for _, port in url.hosts):
        values["port"] = ",".join("" if port is None else str(port) for _, port in url.hosts)
    return values


def libpq_connect_timeout(seconds: float) -> str:
    """libpq's connect_timeout for ``seconds``: whole seconds, rounded up, and at least 2
    (libpq takes 1 as 2)."""
    return str(max(2, math.ceil(seconds)))


def is_postgresql_disconnect(error: BaseException) -> bool:
    """Whether a psycopg/psycopg2 error means the session is dead (not a SQL error)."""
    state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if state:
        return bool(state.startswith("08") or state in _DEAD_STATES)
    kind = type(error).__name__
    if kind not in ("OperationalError", "InterfaceError", "DatabaseError", "Error"):
        return False
    text = str(error).lower()
    return any(marker in text for marker in _DEAD_MESSAGES)


class _PostgreSQLDriver(URLDriver):
    """What psycopg and psycopg2 share."""

    full_reset_in_place = True
    connect_timeout_argument = "connect_timeout"
    handles_host_lists = True  # libpq's own host=a,b

    def connect_timeout_value(self, seconds: float) -> Any:
        return libpq_connect_timeout(seconds)

    extra_arguments: ClassVar[dict[str, ArgumentKind | None]] = {}

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        return libpq_arguments(url, connect_args, self.extra_arguments, self.name)

    def fileno(self, connection: Any) -> int | None:
        try:
            return int(connection.fileno())
        except Exception:
            return None

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        return super().is_disconnect(error, connection) or is_postgresql_disconnect(error)

    def end_transaction(self, connection: Any, timeout: float) -> None:
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        status = self.transaction_status(connection)
        if status == _IDLE:
            return  # nothing open: no round trip
        if status in (_ACTIVE, _UNKNOWN):
            # A command still running (or a lost protocol state) cannot be rolled back.
            raise ConnectionDead("a command is still running on this connection")
        self.call_within(connection, timeout, connection.rollback)

    def in_transaction(self, connection: Any) -> bool:
        return self.transaction_status(connection) != _IDLE

    def in_failed_transaction(self, connection: Any) -> bool:
        return self.transaction_status(connection) == _INERROR

    def transaction_status(self, connection: Any) -> int:
        return int(connection.info.transaction_status)

    def _ping_query(self, connection: Any) -> None:
        raise NotImplementedError

    def ping(self, connection: Any, timeout: float) -> None:
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        status = self.transaction_status(connection)
        if status in (_ACTIVE, _UNKNOWN):
            raise ConnectionDead("a command is still running on this connection")
        with self.time_limit(connection, timeout):
            if connection.autocommit or status != _IDLE:
                self._ping_query(connection)
            else:
                # Autocommit for the probe only (a local switch while idle), so it opens
                # no transaction the borrower would inherit.
                connection.autocommit = True
                try:
                    self._ping_query(connection)
                finally:
                    connection.autocommit = False

    def _discard_all(self, connection: Any, timeout: float) -> None:
        self.end_transaction(connection, timeout)
        with self.time_limit(connection, timeout):
            connection.autocommit = True  # DISCARD ALL refuses to run in a transaction
            self._execute(connection, "DISCARD ALL")
            self._execute(connection, "RESET ROLE")

    def _execute(self, connection: Any, sql: str) -> None:
        raise NotImplementedError

    def _server_pid(self, connection: Any) -> int:
        raise NotImplementedError

    def _protocol_pid(self, connection: Any) -> int:
        raise NotImplementedError

    def pooler_in_front(self, connection: Any, timeout: float) -> tuple[int, int] | None:
        """PgBouncer (and other poolers) answer the startup with a backend pid of their own
        (the key for cancel requests), not the server's: a mismatch with the server's
        ``pg_backend_pid()`` means a pooler is in between. The query runs in autocommit,
        so it leaves no transaction open."""
        protocol_pid = self._protocol_pid(connection)
        with self.time_limit(connection, timeout):
            if connection.autocommit:
                server_pid = self._server_pid(connection)
            else:
                connection.autocommit = True  # a local switch while idle, as in `ping`
                try:
                    server_pid = self._server_pid(connection)
                finally:
                    connection.autocommit = False
        return None if protocol_pid == server_pid else (protocol_pid, server_pid)

    def isolation_level(self, connection: Any) -> str | None:
        level = connection.isolation_level  # None: the server's default
        if level is None:
            return None
        name = getattr(level, "name", None) or _PSYCOPG2_LEVELS.get(level)
        return None if name is None else str(name).replace("_", " ")

    def set_isolation_level(self, connection: Any, level: str | None) -> None:
        if level is None:  # back to the server's default
            connection.isolation_level = None
            return
        name = isolation_name(level)
        if self.module is not None and hasattr(self.module, "IsolationLevel"):
            connection.isolation_level = self.module.IsolationLevel[name.replace(" ", "_")]
        else:
            connection.isolation_level = name  # psycopg2 takes the SQL spelling


# psycopg2 reports its level as the ISOLATION_LEVEL_* number.
_PSYCOPG2_LEVELS = {
    4: "READ UNCOMMITTED",
    1: "READ COMMITTED",
    2: "REPEATABLE READ",
    3: "SERIALIZABLE",
}


class PsycopgDriver(_PostgreSQLDriver):
    """psycopg 3 (``postgresql://``, ``postgresql+psycopg://``)."""

    name = "psycopg"
    extra = "postgresql"
    extra_arguments: ClassVar[dict[str, ArgumentKind | None]] = {
        "autocommit": bool,
        "prepare_threshold": int,
    }
    _CLIENT_ATTRIBUTES = (
        "autocommit",
        "isolation_level",
        "read_only",
        "deferrable",
        "prepare_threshold",
        "prepared_max",
        "row_factory",
        "cursor_factory",
        "server_cursor_factory",
    )

    def __init__(self, module: ModuleType | None = None) -> None:
        super().__init__(module)
        self._baseline: dict[str, Any] | None = None

    def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        assert self.module is not None
        return self.module.connect(**with_credentials(arguments, user, password))

    def opened(self, connection: Any) -> None:
        if self._baseline is None:
            self._baseline = {
                name: getattr(connection, name)
                for name in self._CLIENT_ATTRIBUTES
                if hasattr(connection, name)
            }

    def is_closed(self, connection: Any) -> bool:
        return bool(connection.closed or connection.broken)

    def transaction_status(self, connection: Any) -> int:
        # libpq's own status, read from the PGconn: a twentieth of connection.info's cost.
        return int(connection.pgconn.transaction_status)

    # prepare=False: a borrower may have left prepare_threshold=0, and a statement the pool
    # runs after DISCARD ALL must not become a prepared statement the next borrower sees.
    def _ping_query(self, connection: Any) -> None:
        connection.execute("", prepare=False)

    def _execute(self, connection: Any, sql: str) -> None:
        connection.execute(sql, prepare=False)

    def _server_pid(self, connection: Any) -> int:
        row = connection.execute("SELECT pg_backend_pid()", prepare=False).fetchone()
        return int(row[0])

    def _protocol_pid(self, connection: Any) -> int:
        return int(connection.info.backend_pid)

    def pooler_arguments(self, mode: str) -> dict[str, Any]:
        """Behind a transaction-mode pooler, no automatic server-side prepared statements:
        psycopg names them per client connection (``_pg3_0``...), and the pooler runs the
        next transaction on a server session that lacks them (or has another client's)."""
        return {"prepare_threshold": None} if mode == "transaction" else {}

    def adapt_to_pooler(self, connection: Any) -> None:
        # The same for a creator's connections, which `pooler_arguments` never reaches.
        connection.prepare_threshold = None

    def full_reset(self, connection: Any, timeout: float) -> bool:
        """``DISCARD ALL`` + ``RESET ROLE``, then psycopg's client side: its prepared-statement
        cache (psycopg clears it on seeing DISCARD ALL), queued notifications, notice and
        notify handlers, and the connection attributes as they were when it opened."""
        self._discard_all(connection, timeout)
        backlog = getattr(connection, "_notifies_backlog", None)
        if backlog is not None:
            backlog.clear()  # notifications received for the previous borrower
        while connection.pgconn.notifies() is not None:
            pass
        for handlers in ("_notice_handlers", "_notify_handlers"):
            registered = getattr(connection, handlers, None)
            if isinstance(registered, list):
                registered.clear()
        for name, value in (self._baseline or {"autocommit": False}).items():
            if getattr(connection, name) != value:
                setattr(connection, name, value)
        return True


class Psycopg2Driver(_PostgreSQLDriver):
    """psycopg2 (``postgresql+psycopg2://``)."""

    name = "psycopg2"
    extra = "psycopg2"
    _CLIENT_ATTRIBUTES = (
        "autocommit",
        "isolation_level",
        "readonly",
        "deferrable",
        "cursor_factory",
    )

    def executemany(self, cursor: Any, sql: str, rows: list[Any]) -> None:
        # psycopg2's executemany is a round trip per row; execute_batch sends pages of them.
        from psycopg2.extras import execute_batch  # type: ignore[import-untyped]

        execute_batch(cursor, sql, rows, page_size=200)

    def __init__(self, module: ModuleType | None = None) -> None:
        super().__init__(module)
        self._baseline: dict[str, Any] | None = None

    def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        assert self.module is not None
        return self.module.connect(**with_credentials(arguments, user, password))

    def opened(self, connection: Any) -> None:
        if self._baseline is None:
            self._baseline = {name: getattr(connection, name) for name in self._CLIENT_ATTRIBUTES}

    def is_closed(self, connection: Any) -> bool:
        return bool(connection.closed)

    def _ping_query(self, connection: Any) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    def _execute(self, connection: Any, sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql)

    def _server_pid(self, connection: Any) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return int(cursor.fetchone()[0])

    def _protocol_pid(self, connection: Any) -> int:
        return int(connection.get_backend_pid())

    # adapt_to_pooler: nothing to do. psycopg2 binds parameters on the client and sends
    # every statement with the simple query protocol: it never prepares server-side.

    def full_reset(self, connection: Any, timeout: float) -> bool:
        """``DISCARD ALL`` + ``RESET ROLE``, queued notifications and notices, and the
        connection attributes as they were when it opened."""
        self._discard_all(connection, timeout)
        del connection.notifies[:]
        del connection.notices[:]
        for name, value in (self._baseline or {"autocommit": False}).items():
            if getattr(connection, name) != value:
                setattr(connection, name, value)
        return True
