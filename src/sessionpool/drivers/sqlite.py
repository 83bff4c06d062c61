"""SQLite through the standard library's sqlite3: the embedded default.

Connections are opened with ``check_same_thread=False``: the pool lends each connection to one
borrower at a time, which is what SQLite needs from threads; its same-thread check would
otherwise refuse a connection returned by one thread and borrowed by another. ``sqlite://``
names one in-memory database shared by every connection of the pool (SQLite's memdb VFS),
kept alive for the pool's lifetime.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError, ConnectionDead, UsageError
from ..url import URL
from .base import ArgumentKind, URLDriver, convert_arguments, isolation_name

__all__ = ["SQLiteDriver"]

# sqlite3.connect() keyword arguments a URL may set.
_CONNECT_KINDS: dict[str, ArgumentKind | None] = {
    "timeout": float,
    "detect_types": int,
    "isolation_level": str,
    "cached_statements": int,
}
# SQLite's own URI parameters (https://sqlite.org/uri.html): passed in a file: URI.
_URI_PARAMETERS = frozenset({"mode", "cache", "immutable", "nolock", "vfs", "psow", "modeof"})
# Connection-level pragmas a borrower may change and the next one would notice.
_RESET_PRAGMAS = (
    "foreign_keys",
    "recursive_triggers",
    "query_only",
    "busy_timeout",
    "synchronous",
    "temp_store",
    "cache_size",
    "automatic_index",
    "reverse_unordered_selects",
    "defer_foreign_keys",
    "ignore_check_constraints",
    "cell_size_check",
    "trusted_schema",
    "journal_mode",
    "locking_mode",
)
_memory_names = itertools.count(1)


class SQLiteDriver(URLDriver):
    """sqlite3 connections: local status checks, an in-place full reset."""

    name = "sqlite3"
    extra = ""
    full_reset_in_place = True

    def __init__(self, module: Any = sqlite3) -> None:
        super().__init__(module)
        self._keeper: sqlite3.Connection | None = None
        self._keeper_lock = threading.Lock()
        self._baseline: dict[str, Any] | None = None

    # -- opening ---------------------------------------------------------------------------

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {**url.query, **connect_args}
        if "check_same_thread" in values:
            raise ConfigError(
                "check_same_thread cannot be set: the pool opens SQLite connections with "
                "check_same_thread=False and lends each to one thread at a time"
            )
        uri_parameters = {k: str(v) for k, v in values.items() if k in _URI_PARAMETERS}
        arguments = convert_arguments(
            {k: v for k, v in values.items() if k not in _URI_PARAMETERS},
            _CONNECT_KINDS,
            "sqlite3",
        )
        if arguments.get("isolation_level") in ("none", "None", "autocommit"):
            arguments["isolation_level"] = None
        database = url.database
        if database in (None, "", ":memory:"):
            # One memdb database per pool, shared by its connections (a plain ":memory:"
            # would give each connection a private, empty database).
            name = f"/sessionpool-{os.getpid()}-{next(_memory_names)}"
            arguments["database"] = f"file:{quote(name)}?vfs=memdb"
            arguments["uri"] = True
        elif uri_parameters:
            query = "&".join(f"{k}={quote(v)}" for k, v in uri_parameters.items())
            arguments["database"] = f"file:{quote(database)}?{query}"
            arguments["uri"] = True
        else:
            arguments["database"] = database
        arguments["check_same_thread"] = False
        return arguments

    def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        if user is not None or password is not None:
            raise ConfigError("SQLite has no users: acquire() takes no user or password here")
        if arguments.get("uri") and "vfs=memdb" in arguments["database"]:
            self.keep_memory_database(arguments)
        return sqlite3.connect(**arguments)

    def keep_memory_database(self, arguments: dict[str, Any]) -> None:
        """Hold one connection to the pool's memdb database: it lives while one is open."""
        with self._keeper_lock:  # openers run concurrently: keep exactly one
            if self._keeper is None:
                self._keeper = sqlite3.connect(**arguments)

    def dispose(self) -> None:
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.close()

    def opened(self, connection: Any) -> None:
        if self._baseline is None:
            self._baseline = _fingerprint(connection)

    # -- checks ----------------------------------------------------------------------------

    def is_closed(self, connection: Any) -> bool:
        try:
            connection.total_changes  # noqa: B018 - raises ProgrammingError once closed
        except sqlite3.ProgrammingError:
            return True
        return False

    def in_transaction(self, connection: Any) -> bool:
        return bool(connection.in_transaction)

    def ping(self, connection: Any, timeout: float) -> None:
        # An in-process database has no peer to lose: the local check is the whole check.
        if self.is_closed(connection):
            raise ConnectionDead("the SQLite connection is closed")

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        if super().is_disconnect(error, connection):
            return True
        return isinstance(error, sqlite3.ProgrammingError) and "closed" in str(error)

    # -- transaction modes -----------------------------------------------------------------

    def autocommit(self, connection: Any) -> bool:
        # sqlite3 before 3.12 (and its legacy mode after): isolation_level None is autocommit.
        return connection.isolation_level is None

    def set_autocommit(self, connection: Any, on: bool) -> None:
        if on:
            connection.isolation_level = None
            return
        # Back to the begin mode the pool's connections are opened with (DEFERRED, IMMEDIATE
        # or EXCLUSIVE), not to a fixed one; "" (DEFERRED) if they are opened in autocommit.
        opened_with = (self._baseline or {}).get("isolation_level")
        connection.isolation_level = opened_with if opened_with is not None else ""

    def isolation_level(self, connection: Any) -> str | None:
        return "SERIALIZABLE"  # SQLite's only level

    def set_isolation_level(self, connection: Any, level: str | None) -> None:
        if level is not None and isolation_name(level) != "SERIALIZABLE":
            # SQLite transactions are always serializable (read_uncommitted only matters in
            # shared-cache mode); asking for a weaker level is not an error in SQL terms,
            # but silently granting a different one would be wrong: refuse.
            raise UsageError(f"SQLite transactions are SERIALIZABLE only (asked for {level!r})")

    def begin(self, connection: Any) -> None:
        # sqlite3's legacy mode opens a transaction only before INSERT/UPDATE/DELETE; a
        # savepoint outside one would start (and its release commit) a transaction of its own.
        if not connection.in_transaction:
            connection.execute("BEGIN")

    # -- reset -----------------------------------------------------------------------------

    def full_reset(self, connection: Any, timeout: float) -> bool:
        """Roll back, detach, drop temp objects, restore pragmas and connection attributes.

        Left as they are (SQLite cannot list them): user-defined functions, aggregates and
        collations registered on the connection.
        """
        if self.is_closed(connection):
            raise ConnectionDead("the SQLite connection is closed")
        baseline = self._baseline or {}
        # Handlers first: a borrower's authorizer or progress handler could veto or
        # interrupt every statement below, the rollback included.
        connection.set_authorizer(None)
        connection.set_progress_handler(None, 0)
        connection.set_trace_callback(None)
        if connection.in_transaction:
            connection.rollback()
        connection.isolation_level = baseline.get("isolation_level", "")
        connection.row_factory = None
        connection.text_factory = str
        if "query_only" in baseline:  # before the drops below, which write
            connection.execute(f"PRAGMA query_only = {int(baseline['query_only'])}")
        for (name,) in _rows(connection, "SELECT name FROM pragma_database_list"):
            if name not in ("main", "temp"):
                connection.execute(f"DETACH DATABASE {_quote(name)}")
        temp_objects = _rows(
            connection,
            "SELECT type, name FROM temp.sqlite_master "
            "WHERE type IN ('trigger', 'view', 'table') "
            "ORDER BY CASE type WHEN 'trigger' THEN 0 WHEN 'view' THEN 1 ELSE 2 END",
        )
        for kind, name in temp_objects:
            connection.execute(f"DROP {kind.upper()} IF EXISTS temp.{_quote(name)}")
        current = _fingerprint(connection)
        for pragma in _RESET_PRAGMAS:
            value = baseline.get(pragma)
            if value is None or current.get(pragma) == value:
                continue
            if isinstance(value, str):  # journal_mode, locking_mode: a keyword
                connection.execute(f"PRAGMA {pragma} = {_keyword(value)}")
            else:
                connection.execute(f"PRAGMA {pragma} = {int(value)}")
        # Write-only, so it cannot be compared: put back SQLite's default.
        connection.execute("PRAGMA case_sensitive_like = 0")
        if connection.in_transaction:  # DDL above may have opened one under legacy mode
            connection.commit()
        return True


def _rows(connection: Any, sql: str) -> list[tuple[Any, ...]]:
    cursor = connection.execute(sql)
    try:
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _fingerprint(connection: Any) -> dict[str, Any]:
    """The connection-level settings a borrower can change, as a fresh connection has them."""
    values: dict[str, Any] = {"isolation_level": connection.isolation_level}
    for pragma in _RESET_PRAGMAS:
        row = _rows(connection, f"PRAGMA {pragma}")
        if row:
            values[pragma] = row[0][0]
    return values


def _keyword(value: str) -> str:
    if not value.isalpha():
        raise ValueError(f"unexpected pragma value {value!r}")
    return value


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
