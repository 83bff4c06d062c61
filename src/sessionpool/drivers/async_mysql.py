"""MySQL and MariaDB for `AsyncPool` through aiomysql (PyMySQL's protocol code on asyncio).

The same contract as `mysql.py`'s PyMySQL adapter: the transaction status comes from the
server's last status flags, the full reset is COM_RESET_CONNECTION plus what it leaves (role,
database, autocommit mode), errors are classified by the same codes.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConnectionDead
from ..url import URL
from .async_base import AsyncURLDriver, within
from .base import convert_arguments, isolation_name, with_credentials
from .failover import Attempt
from .mysql import (
    connect_kinds,
    is_mysql_disconnect,
    mysql_arguments_for_host,
    mysql_url_values,
    refuse_target_session_attrs,
)

__all__ = ["AiomysqlDriver"]

_SERVER_STATUS_IN_TRANS = 0x0001
_COM_RESET_CONNECTION = 0x1F


class AiomysqlDriver(AsyncURLDriver):
    """aiomysql (``mysql+aiomysql://``; ``mysql://`` and ``mariadb://`` in an AsyncPool)."""

    name = "aiomysql"
    extra = "aiomysql"
    full_reset_in_place = True
    connect_timeout_argument = "connect_timeout"
    quick_cancel = True

    def __init__(self, module: Any = None) -> None:
        super().__init__(module)
        self._fresh_role: tuple[str | None] | None = None
        self._fresh_autocommit: bool | None = None

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        assert self.module is not None
        values = mysql_url_values(url, "db", "password")
        values.update(url.query)
        values.update(connect_args)
        refuse_target_session_attrs(values)
        if "database" in values:  # accept the PyMySQL spelling too
            values["db"] = values.pop("database")
        kinds = connect_kinds(
            self.module.connect,
            {
                "ssl": None,
                "conv": None,
                "cursorclass": None,
                "loop": None,
                "connect_timeout": float,
                "autocommit": bool,
                "local_infile": bool,
            },
        )
        return convert_arguments(values, kinds, self.name)

    def arguments_for_host(self, arguments: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        return mysql_arguments_for_host(arguments, attempt)

    async def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        assert self.module is not None
        return await self.module.connect(**with_credentials(arguments, user, password))

    async def opened(self, connection: Any) -> None:
        if self._fresh_autocommit is None:
            # As opened: a borrower's autocommit(True) rewrites autocommit_mode.
            self._fresh_autocommit = connection.autocommit_mode
        if self._fresh_role is None:
            self._fresh_role = (await _query_one(connection, "SELECT CURRENT_ROLE()"),)
            if self.in_transaction(connection):
                await connection.rollback()

    def is_closed(self, connection: Any) -> bool:
        return bool(connection.closed)

    def fileno(self, connection: Any) -> int | None:
        writer = getattr(connection, "_writer", None)
        sock = None if writer is None else writer.transport.get_extra_info("socket")
        return None if sock is None else int(sock.fileno())

    def in_transaction(self, connection: Any) -> bool:
        return bool((connection.server_status or 0) & _SERVER_STATUS_IN_TRANS)

    async def ping(self, connection: Any, timeout: float) -> None:
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        await within(timeout, connection.ping(reconnect=False), quick_cancel=True)

    async def full_reset(self, connection: Any, timeout: float) -> bool:
        """COM_RESET_CONNECTION, then the role, database and autocommit mode it leaves;
        False (reopen) when a connection opened without a database has one selected."""
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")

        async def reset() -> bool:
            await connection._execute_command(_COM_RESET_CONNECTION, b"")
            await connection._read_ok_packet()
            role, database = await _query_row(connection, "SELECT CURRENT_ROLE(), DATABASE()")
            fresh_role = (self._fresh_role or (None,))[0]
            if role != fresh_role:
                target = "NONE" if fresh_role is None else _quote_role(fresh_role)
                await _execute(connection, f"SET ROLE {target}")
            initial = connection.db
            if isinstance(initial, bytes):
                initial = initial.decode()
            if initial and database != initial:
                await connection.select_db(initial)
            elif not initial and database is not None:
                return False
            fresh = self._fresh_autocommit
            await connection.autocommit(connection.autocommit_mode if fresh is None else fresh)
            return True

        return await within(timeout, reset(), quick_cancel=True)

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        return super().is_disconnect(error, connection) or is_mysql_disconnect(error)

    async def close(self, connection: Any, timeout: float) -> None:
        try:
            await within(timeout, connection.ensure_closed(), quick_cancel=True)
        finally:
            connection.close()  # drops the transport if the goodbye did not get through

    # -- sessions: statements are `AsyncDriver`'s (cursors); the modes are round trips,
    # bounded as the resets are.

    def autocommit(self, connection: Any) -> bool:
        return bool(connection.get_autocommit())  # the server's last status flags

    async def set_autocommit(self, connection: Any, on: bool, timeout: float) -> None:
        await within(timeout, connection.autocommit(on), quick_cancel=True)

    async def isolation_level(self, connection: Any, timeout: float) -> str | None:
        assert self.module is not None
        module = self.module

        async def read() -> Any:
            # MariaDB 10 names it tx_isolation, MySQL 8 transaction_isolation.
            try:
                return await _query_one(connection, "SELECT @@SESSION.tx_isolation")
            except module.Error:
                return await _query_one(connection, "SELECT @@SESSION.transaction_isolation")

        value = await within(timeout, read(), quick_cancel=True)
        text = value.decode() if isinstance(value, bytes) else str(value)
        return text.replace("-", " ")

    async def set_isolation_level(self, connection: Any, level: str | None, timeout: float) -> None:
        name = isolation_name(level or "REPEATABLE READ")  # InnoDB's default
        statement = f"SET SESSION TRANSACTION ISOLATION LEVEL {name}"
        await within(timeout, _execute(connection, statement), quick_cancel=True)


async def _execute(connection: Any, sql: str) -> None:
    async with connection.cursor() as cursor:
        await cursor.execute(sql)


async def _query_row(connection: Any, sql: str) -> tuple[Any, ...]:
    async with connection.cursor() as cursor:
        await cursor.execute(sql)
        return tuple(await cursor.fetchone())


async def _query_one(connection: Any, sql: str) -> Any:
    return (await _query_row(connection, sql))[0]


def _quote_role(role: str) -> str:
    return "`" + role.replace("`", "``") + "`"
