"""MySQL and MariaDB through PyMySQL or mysqlclient: checks, resets and disconnect codes.

PyMySQL's full reset sends COM_RESET_CONNECTION (the server rolls back, clears user and session
variables, temp tables, prepared statements, named and table locks) through PyMySQL's private
command path, then puts back what that command leaves: the role, the current database and
PyMySQL's own autocommit mode. mysqlclient exposes no reset command, so its full reset reopens.
"""

from __future__ import annotations

import inspect
import math
from types import ModuleType
from typing import Any

from ..errors import ConfigError, ConnectionDead
from ..url import URL
from .base import (
    ArgumentKind,
    URLDriver,
    convert_arguments,
    isolation_name,
    point_at_host,
    with_credentials,
)
from .failover import Attempt

__all__ = [
    "MySQLdbDriver",
    "PyMySQLDriver",
    "connect_kinds",
    "is_mysql_disconnect",
    "mysql_arguments_for_host",
    "mysql_url_values",
    "refuse_target_session_attrs",
]

# Error codes after which the session is gone. Client side (20xx): can't connect (2002,
# 2003), server gone away (2006), lost connection (2013, 2055), commands out of sync (2014),
# SSL failure (2026). Server side: shutdown in progress (1053), aborted connection (1152),
# network read/write interrupted (1159, 1161), MariaDB's "connection was killed" (1927),
# MySQL's session killed (3169) and MySQL 8.0.24+'s idle disconnect (4031), the codes the
# peers missed. KILL QUERY (1317) and statement timeouts (1969, 3024) leave it usable.
_DEAD_CODES = frozenset(
    {1053, 1152, 1159, 1161, 1927, 2002, 2003, 2006, 2013, 2014, 2026, 2045, 2055, 3169, 4031}
)
_SERVER_STATUS_IN_TRANS = 0x0001
_COM_RESET_CONNECTION = 0x1F


def is_mysql_disconnect(error: BaseException) -> bool:
    """Whether a PyMySQL/mysqlclient error means the session is dead (not a SQL error)."""
    code = error.args[0] if error.args else None
    if isinstance(code, int):
        if code in _DEAD_CODES:
            return True
        # Both drivers raise InterfaceError(0, '') for a call on a closed connection.
        return code == 0 and type(error).__name__ == "InterfaceError"
    text = str(error).lower()
    return type(error).__name__ in ("InterfaceError", "Error", "OperationalError") and (
        "already closed" in text or "not connected" in text
    )


def connect_kinds(function: Any, overrides: dict[str, ArgumentKind | None]) -> dict[str, Any]:
    """Argument name -> type a URL string converts to, from the driver's own signature."""
    kinds: dict[str, ArgumentKind | None] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            continue
        if name == "self":
            continue
        default = parameter.default
        kinds[name] = type(default) if isinstance(default, (bool, int, float)) else str
    kinds.update(overrides)
    return kinds


def mysql_url_values(url: URL, database_key: str, password_key: str) -> dict[str, Any]:
    """Connect arguments a MySQL/MariaDB URL spells (a host starting with / is a socket)."""
    values: dict[str, Any] = {}
    if url.host is not None and url.host.startswith("/"):
        values["unix_socket"] = url.host
    elif url.host is not None:
        values["host"] = url.host
    if url.port is not None:
        values["port"] = url.port
    if url.database is not None:
        values[database_key] = url.database
    if url.username is not None:
        values["user"] = url.username
    if url.password is not None:
        values[password_key] = url.password
    return values


def refuse_target_session_attrs(values: dict[str, Any]) -> None:
    """Raise `ConfigError` when a MySQL URL asks for ``target_session_attrs``."""
    if "target_session_attrs" in values:
        raise ConfigError(
            "target_session_attrs is a PostgreSQL (libpq) setting; MySQL and MariaDB have "
            "no read-write/standby check on connect: remove it, and list only the hosts that "
            "may serve this pool (they are tried in order)"
        )


def mysql_arguments_for_host(arguments: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
    """``arguments`` aimed at one host: a path is a unix socket, anything else a TCP host."""
    aimed = point_at_host(arguments, attempt)
    if attempt.host is not None and attempt.host.startswith("/"):
        aimed.pop("host", None)
        aimed["unix_socket"] = attempt.host
    else:
        aimed.pop("unix_socket", None)
    return aimed


class _MySQLDriver(URLDriver):
    """What PyMySQL and mysqlclient share."""

    connect_timeout_argument = "connect_timeout"

    def connect_timeout_value(self, seconds: float) -> Any:
        return max(1, math.ceil(seconds))  # both drivers take whole seconds, at least 1

    _password_argument = "password"

    def _kinds(self) -> dict[str, ArgumentKind | None]:
        raise NotImplementedError

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        values = mysql_url_values(url, "database", self._password_argument)
        values.update(url.query)
        values.update(connect_args)
        refuse_target_session_attrs(values)
        return convert_arguments(values, self._kinds(), self.name)

    def arguments_for_host(self, arguments: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        return mysql_arguments_for_host(arguments, attempt)

    def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        assert self.module is not None
        arguments = with_credentials(arguments, user, password, self._password_argument)
        return self.module.connect(**arguments)

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        return super().is_disconnect(error, connection) or is_mysql_disconnect(error)

    def ping(self, connection: Any, timeout: float) -> None:
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        with self.time_limit(connection, timeout):
            connection.ping(False)  # PyMySQL: never reconnect behind the pool's back

    def isolation_level(self, connection: Any) -> str | None:
        cursor = connection.cursor()
        try:
            # MariaDB 10 names it tx_isolation, MySQL 8 transaction_isolation (MariaDB 11.1+
            # knows both).
            try:
                cursor.execute("SELECT @@SESSION.tx_isolation")
            except self.module.Error:  # type: ignore[union-attr]
                cursor.execute("SELECT @@SESSION.transaction_isolation")
            (value,) = cursor.fetchone()
        finally:
            cursor.close()
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text.replace("-", " ")

    def set_isolation_level(self, connection: Any, level: str | None) -> None:
        cursor = connection.cursor()
        try:
            name = isolation_name(level or "REPEATABLE READ")  # InnoDB's default
            cursor.execute(f"SET SESSION TRANSACTION ISOLATION LEVEL {name}")
        finally:
            cursor.close()


class PyMySQLDriver(_MySQLDriver):
    """PyMySQL (``mysql://``, ``mariadb://``, ``mysql+pymysql://``)."""

    name = "pymysql"
    extra = "mysql"
    full_reset_in_place = True

    def __init__(self, module: ModuleType | None = None) -> None:
        super().__init__(module)
        self._fresh_role: tuple[str | None] | None = None
        self._fresh_autocommit: bool | None = None

    def _kinds(self) -> dict[str, ArgumentKind | None]:
        assert self.module is not None
        return connect_kinds(
            self.module.connections.Connection.__init__,
            {
                "read_timeout": float,
                "write_timeout": float,
                "max_allowed_packet": int,
                "autocommit": bool,
                "ssl": None,
                "conv": None,
                "cursorclass": None,
                "defer_connect": bool,
            },
        )

    def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        """Open one connection, the server's greeting and login bounded as well.

        PyMySQL's connect_timeout covers only the TCP connect; it then reads the greeting
        with read_timeout, None by default: a server that accepts and never answers (frozen,
        or its backlog still open) would hold the connect for ever, and a host list would
        never reach its next host. So the connect runs with read_timeout = connect_timeout,
        and the connection gets the caller's read_timeout back (PyMySQL applies it at the
        next read)."""
        assert self.module is not None
        arguments = with_credentials(arguments, user, password, self._password_argument)
        read_timeout = arguments.get("read_timeout")
        limit = arguments.get("connect_timeout")
        if limit is None or (read_timeout is not None and read_timeout <= limit):
            return self.module.connect(**arguments)
        connection = self.module.connect(**{**arguments, "read_timeout": limit})
        connection._read_timeout = read_timeout
        return connection

    def opened(self, connection: Any) -> None:
        if self._fresh_autocommit is None:
            # As opened: a borrower's conn.autocommit(True) rewrites autocommit_mode.
            self._fresh_autocommit = connection.autocommit_mode
        if self._fresh_role is None:
            self._fresh_role = (_query_one(connection, "SELECT CURRENT_ROLE()"),)
            if self.in_transaction(connection):  # autocommit off: the probe opened one
                connection.rollback()

    def is_closed(self, connection: Any) -> bool:
        return not connection.open

    def in_transaction(self, connection: Any) -> bool:
        # The server reports it in every OK/EOF packet; PyMySQL keeps the last one.
        return bool(connection.server_status & _SERVER_STATUS_IN_TRANS)

    def fileno(self, connection: Any) -> int | None:
        sock = getattr(connection, "_sock", None)
        return None if sock is None else int(sock.fileno())

    def full_reset(self, connection: Any, timeout: float) -> bool:
        """COM_RESET_CONNECTION, then the role, database and autocommit mode it leaves.

        Returns False (reopen) when the borrower changed the current database of a
        connection opened without one: nothing can unselect a database.
        """
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        with self.time_limit(connection, timeout):
            connection._execute_command(_COM_RESET_CONNECTION, b"")
            connection._read_ok_packet()
            role, database = _query_row(connection, "SELECT CURRENT_ROLE(), DATABASE()")
            fresh_role = (self._fresh_role or (None,))[0]
            if role != fresh_role:
                # The reset keeps SET ROLE (seen on MariaDB 10.11): put the fresh one back.
                target = "NONE" if fresh_role is None else _quote_role(fresh_role)
                _execute(connection, f"SET ROLE {target}")
            initial = connection.db
            if isinstance(initial, bytes):
                initial = initial.decode()
            if initial and database != initial:
                connection.select_db(initial)
            elif not initial and database is not None:
                return False
            # The reset restored the server's global autocommit; PyMySQL still believes
            # in its own mode. Its autocommit() re-sends the mode when the two differ.
            connection.autocommit(
                connection.autocommit_mode
                if self._fresh_autocommit is None
                else self._fresh_autocommit
            )
            if connection.sql_mode is not None:
                _execute(connection, f"SET sql_mode = {connection.escape(connection.sql_mode)}")
            if connection.init_command is not None:
                _execute(connection, connection.init_command)
        return True


class MySQLdbDriver(_MySQLDriver):
    """mysqlclient, imported as MySQLdb (``mysql+mysqldb://``, ``mysql+mysqlclient://``)."""

    name = "mysqlclient"
    extra = "mysqlclient"
    _password_argument = "password"

    def _kinds(self) -> dict[str, ArgumentKind | None]:
        # MySQLdb.connect takes **kwargs; these are the ones its Connection documents.
        kinds: dict[str, ArgumentKind | None] = dict.fromkeys(
            [
                "host",
                "user",
                "password",
                "passwd",
                "database",
                "db",
                "unix_socket",
                "init_command",
                "read_default_file",
                "read_default_group",
                "charset",
                "collation",
                "auth_plugin",
                "sql_mode",
                "ssl_mode",
            ],
            str,
        )
        kinds.update(
            dict.fromkeys(
                ["port", "connect_timeout", "read_timeout", "write_timeout", "client_flag"], int
            )
        )
        kinds.update(
            dict.fromkeys(
                ["compress", "named_pipe", "use_unicode", "local_infile", "autocommit"], bool
            )
        )
        kinds.update(dict.fromkeys(["conv", "cursorclass", "ssl", "binary_prefix"], None))
        return kinds

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        arguments = super().arguments_from_url(url, connect_args)
        # libmariadb waits for ever by default; a hung connect would hold an opener.
        arguments.setdefault("connect_timeout", 10)
        return arguments

    def is_closed(self, connection: Any) -> bool:
        return not connection.open

    def ping(self, connection: Any, timeout: float) -> None:
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        with self.time_limit(connection, timeout):
            # No argument: mysqlclient 2.3 deprecates ``reconnect`` (it warns even for
            # False) and never reconnects unless that option was turned on.
            connection.ping()

    def fileno(self, connection: Any) -> int | None:
        try:
            return int(connection.fileno())
        except Exception:
            return None


def _execute(connection: Any, sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def _query_row(connection: Any, sql: str) -> tuple[Any, ...]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return tuple(cursor.fetchone())


def _query_one(connection: Any, sql: str) -> Any:
    return _query_row(connection, sql)[0]


def _quote_role(role: str) -> str:
    return "`" + role.replace("`", "``") + "`"
