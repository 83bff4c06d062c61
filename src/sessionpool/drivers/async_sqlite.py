"""SQLite for `AsyncPool` through aiosqlite (sqlite3 on a thread per connection).

URL handling, the shared in-memory database and the full reset are `sqlite.py`'s, run on the
connection's own aiosqlite thread, where sqlite3 requires them to run.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from ..errors import ConnectionDead
from ..url import URL
from .async_base import AsyncURLDriver, within
from .sqlite import SQLiteDriver

__all__ = ["AiosqliteDriver"]


class AiosqliteDriver(AsyncURLDriver):
    """aiosqlite (``sqlite+aiosqlite://``; ``sqlite://`` in an AsyncPool)."""

    name = "aiosqlite"
    extra = "aiosqlite"
    full_reset_in_place = True
    quick_cancel = True  # a call runs on the connection's thread; awaiting it stops at once

    def __init__(self, module: Any = None) -> None:
        super().__init__(module)
        self.sync = SQLiteDriver()

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        return self.sync.arguments_from_url(url, connect_args)

    async def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        assert self.module is not None
        if user is not None or password is not None:
            self.sync.open(arguments, user, password)  # raises: SQLite has no users
        if arguments.get("uri") and "vfs=memdb" in arguments["database"]:
            self.sync.keep_memory_database(arguments)
        return await self.module.connect(**arguments)

    async def dispose(self) -> None:
        self.sync.dispose()

    async def opened(self, connection: Any) -> None:
        await connection._execute(self.sync.opened, connection._conn)

    def is_closed(self, connection: Any) -> bool:
        return connection._connection is None or self.sync.is_closed(connection._connection)

    def in_transaction(self, connection: Any) -> bool:
        return bool(connection.in_transaction)

    async def ping(self, connection: Any, timeout: float) -> None:
        if self.is_closed(connection):
            raise ConnectionDead("the SQLite connection is closed")

    async def full_reset(self, connection: Any, timeout: float) -> bool:
        if self.is_closed(connection):
            raise ConnectionDead("the SQLite connection is closed")
        # aiosqlite runs each call on the connection's own thread; so must the reset.
        return bool(
            await within(
                timeout, connection._execute(self.sync.full_reset, connection._conn, timeout)
            )
        )

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        if super().is_disconnect(error, connection):
            return True
        if isinstance(error, ValueError) and "no active connection" in str(error):
            return True  # aiosqlite's error for a closed connection
        return isinstance(error, sqlite3.ProgrammingError) and "closed" in str(error)

    # -- sessions: statements are `AsyncDriver`'s (aiosqlite's cursors); the modes are
    # `sqlite.py`'s (sqlite3's legacy mode), run on the connection's own thread where they
    # touch the connection.

    async def begin(self, connection: Any) -> None:
        await connection._execute(self.sync.begin, connection._conn)

    def autocommit(self, connection: Any) -> bool:
        return self.sync.autocommit(connection._conn)

    async def set_autocommit(self, connection: Any, on: bool, timeout: float) -> None:
        change = connection._execute(self.sync.set_autocommit, connection._conn, on)
        await within(timeout, change, quick_cancel=True)

    async def isolation_level(self, connection: Any, timeout: float) -> str | None:
        return self.sync.isolation_level(connection._conn)  # SQLite has one level

    async def set_isolation_level(self, connection: Any, level: str | None, timeout: float) -> None:
        self.sync.set_isolation_level(connection._conn, level)  # checks; there is no other
