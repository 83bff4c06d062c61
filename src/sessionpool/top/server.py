"""The database server's own view of its sessions, for `sessionpool top postgresql://...`:
PostgreSQL's pg_stat_activity by application and state, MariaDB/MySQL's processlist by user
and command. Reads through a one-connection sessionpool; never shows the URL's password or
any session's query text (which may carry secrets of its own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..drivers.registry import canonical_dialect
from ..errors import ConfigError
from ..observe.echo import pool_logger
from ..url import URL, parse_url, scrub_secrets
from .errors import EndpointError

__all__ = ["ServerView", "ServerWatcher", "is_database_url"]

POOL_NAME = "sessionpool-top"
CONNECT_TIMEOUT = 5.0  # seconds; top is a diagnostic, it must not sit on a dead server


@dataclass(frozen=True)
class ServerView:
    """One frame of the server's view: a heading, a table and notes under it."""

    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]
    notes: list[str]


def is_database_url(endpoint: str) -> bool:
    """Whether ``endpoint`` names a database this view can read (not an http(s) URL)."""
    scheme = endpoint.split("://", 1)[0].lower() if "://" in endpoint else ""
    dialect = scheme.split("+", 1)[0]
    return canonical_dialect(dialect) in ("postgresql", "mysql")


class ServerWatcher:
    """Holds one connection to the server and reads a `ServerView` from it on demand.

    Args:
        endpoint: ``postgresql[+driver]://...`` or ``mysql[+driver]://...`` (``mariadb://``).
    Raises:
        ConfigError: the URL is malformed or names another database.
    """

    def __init__(self, endpoint: str) -> None:
        self._url: URL = parse_url(endpoint)
        dialect = canonical_dialect(self._url.dialect)
        if dialect == "postgresql":
            self._read: Callable[[Any], ServerView] = self._postgresql
        elif dialect == "mysql":
            self._read = self._mysql
        else:
            raise ConfigError(f"endpoint: no server view for {self._url.dialect!r} URLs")
        self.label = self._url.render()  # the password masked
        self._pool: Any = None

    def open(self) -> None:
        """Connect (once).

        Raises:
            EndpointError: the server cannot be reached; the message names the URL without
                its password.
        """
        from ..factory import create_pool

        # top reports a failed connect itself, in one line naming the URL; the pool's own
        # warning would say it a second time (through logging's last-resort stderr handler).
        quiet = pool_logger(POOL_NAME)
        quiet.propagate = False
        if not quiet.handlers:
            quiet.addHandler(logging.NullHandler())
        try:
            self._pool = create_pool(
                self._url,
                min_size=1,
                max_size=1,
                connect_timeout=CONNECT_TIMEOUT,
                wait_timeout=CONNECT_TIMEOUT,
                name=POOL_NAME,
            )
        except ConfigError:
            raise
        except Exception as exc:
            raise EndpointError(f"cannot connect to {self.label}: {self._scrub(exc)}") from None

    def read(self) -> ServerView:
        """The server's sessions now.

        Raises:
            EndpointError: the query failed (server gone, permission denied).
        """
        if self._pool is None:
            self.open()
        try:
            with self._pool.acquire() as conn:
                # A server that accepts and then hangs must not freeze top: the reads get
                # the connect's time limit, as the driver can enforce it.
                driver = self._pool._connector.driver
                with driver.time_limit(conn.driver_connection, CONNECT_TIMEOUT):
                    return self._read(conn)
        except Exception as exc:
            raise EndpointError(f"cannot read {self.label}: {self._scrub(exc)}") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close(force=True)
            self._pool = None

    def _scrub(self, exc: BaseException) -> str:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return scrub_secrets(first_line, self._url.secrets())

    def _postgresql(self, conn: Any) -> ServerView:
        version = _one(conn, "SHOW server_version")
        max_connections = _one(conn, "SHOW max_connections")
        idle_tx_limit = _one(conn, "SHOW idle_in_transaction_session_timeout")
        rows = _all(
            conn,
            """
            SELECT coalesce(nullif(application_name, ''), '(none)'),
                   coalesce(state, '(none)'),
                   count(*),
                   string_agg(DISTINCT usename::text, ','),
                   string_agg(DISTINCT datname::text, ','),
                   max(extract(epoch FROM clock_timestamp() - state_change))
            FROM pg_stat_activity
            WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
            GROUP BY 1, 2
            ORDER BY 1, 2
            """,
        )
        oldest = _all(
            conn,
            """
            SELECT pid, usename, coalesce(nullif(application_name, ''), '(none)'), datname,
                   extract(epoch FROM clock_timestamp() - state_change)
            FROM pg_stat_activity
            WHERE state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()
            ORDER BY state_change
            LIMIT 1
            """,
        )
        sessions = sum(int(r[2]) for r in rows)
        notes = [f"idle_in_transaction_session_timeout = {idle_tx_limit}"]
        if oldest:
            pid, user, app, db, age = oldest[0]
            notes.insert(
                0,
                f"longest idle in transaction: pid {pid} (user {user}, application {app}, "
                f"database {db}) for {_seconds(age)}",
            )
        else:
            notes.insert(0, "no session is idle in transaction")
        return ServerView(
            title=f"PostgreSQL {version} at {self.label}: {sessions} other client sessions "
            f"of max_connections {max_connections}",
            columns=("application", "state", "sessions", "users", "databases", "longest in state"),
            rows=[(a, s, str(n), u or "", d or "", _seconds(t)) for a, s, n, u, d, t in rows],
            notes=notes,
        )

    def _mysql(self, conn: Any) -> ServerView:
        version = _one(conn, "SELECT @@version")
        max_connections = _one(conn, "SELECT @@max_connections")
        wait_timeout = _one(conn, "SELECT @@wait_timeout")
        rows = _all(
            conn,
            """
            SELECT user, command, count(*), group_concat(DISTINCT coalesce(db, '') SEPARATOR ','),
                   max(time)
            FROM information_schema.processlist
            WHERE id <> connection_id()
            GROUP BY user, command
            ORDER BY user, command
            """,
        )
        oldest = _all(
            conn,
            """
            SELECT t.trx_mysql_thread_id, p.user, p.command,
                   timestampdiff(SECOND, t.trx_started, now())
            FROM information_schema.innodb_trx t
            JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id
            WHERE t.trx_mysql_thread_id <> connection_id()
            ORDER BY t.trx_started
            LIMIT 1
            """,
        )
        sessions = sum(int(r[2]) for r in rows)
        notes = [f"wait_timeout = {wait_timeout} s"]
        if oldest:
            thread, user, command, age = oldest[0]
            notes.insert(
                0,
                f"longest open transaction: thread {thread} (user {user}, command {command}) "
                f"for {_seconds(age)}",
            )
        else:
            notes.insert(0, "no other session has an open InnoDB transaction")
        return ServerView(
            title=f"MariaDB/MySQL {version} at {self.label}: {sessions} other sessions "
            f"of max_connections {max_connections}",
            columns=("user", "command", "sessions", "databases", "longest (time)"),
            rows=[(str(u), str(c), str(n), str(d or ""), _seconds(t)) for u, c, n, d, t in rows],
            notes=notes,
        )


def _one(conn: Any, sql: str) -> str:
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        row = cursor.fetchone()
    finally:
        cursor.close()
    return "" if row is None else str(row[0])


def _all(conn: Any, sql: str) -> Sequence[tuple[Any, ...]]:
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _seconds(value: Any) -> str:
    if value is None:
        return "-"
    return f"{float(value):,.1f} s"
