"""AsyncPool over SQLite through aiosqlite: ``sqlite://`` (one in-memory database shared by the
pool's connections) and a file URL.

Borrowing and the default reset, the second-borrower leak matrix (reset_on_return="full" and
purity="new") against a brand-new aiosqlite connection to the same file, a closed connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from sessionpool import AsyncLease, AsyncPool
from tests.aio.drivers.common import differences
from tests.aio.drivers.conftest import PoolOpener


def file_url(path: Path) -> str:
    assert path.is_absolute()
    return f"sqlite:///{path}"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    """A file database with table t holding one row (x = 1)."""
    path = tmp_path / "async.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    return path


def raw(conn: Any) -> Any:
    return conn.driver_connection if isinstance(conn, AsyncLease) else conn


async def rows(conn: Any, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with conn.execute(sql, args) as cursor:
        return [tuple(row) for row in await cursor.fetchall()]


async def value(conn: Any, sql: str, *args: Any) -> Any:
    found = await rows(conn, sql, *args)
    assert len(found) == 1, found
    return found[0][0]


# -- 1. borrowing, the default reset, ping ------------------------------------------------------


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite"])
async def test_url_selects_aiosqlite(open_pool: PoolOpener, database: Path, scheme: str) -> None:
    for url in (f"{scheme}://", f"{scheme}:///{database}"):
        pool = await open_pool(url, min_size=1, max_size=1)
        async with pool.acquire() as conn:
            assert isinstance(conn.driver_connection, aiosqlite.Connection)


async def test_memory_database_is_shared_by_the_pools_connections(open_pool: PoolOpener) -> None:
    pool = await open_pool("sqlite://", min_size=2, max_size=2)
    assert pool.opened == 2
    async with pool.acquire() as a, pool.acquire() as b:
        assert raw(a) is not raw(b)
        await a.execute("CREATE TABLE shared (x INTEGER)")
        await a.execute("INSERT INTO shared VALUES (7)")
        await a.commit()
        assert await value(b, "SELECT x FROM shared") == 7
        assert pool.busy == 2
    assert (pool.idle, pool.busy) == (2, 0)


async def test_file_database_open_acquire_query_release(
    open_pool: PoolOpener, database: Path
) -> None:
    pool = await open_pool(file_url(database), min_size=1, max_size=2)
    assert (pool.opened, pool.idle) == (1, 1)
    async with pool.acquire() as conn:
        assert await value(conn, "SELECT x FROM t") == 1
        await conn.execute("INSERT INTO t VALUES (2)")
        await conn.commit()
    lease = await pool.acquire()
    assert await value(lease, "SELECT count(*) FROM t") == 2
    assert await pool.ping(lease) is True
    await lease.release()
    assert (pool.opened, pool.idle, pool.busy) == (1, 1, 0)
    check = sqlite3.connect(database)
    try:
        assert check.execute("SELECT count(*) FROM t").fetchone() == (2,)
    finally:
        check.close()


async def test_untouched_lease_skips_the_reset(open_pool: PoolOpener, database: Path) -> None:
    calls: list[Any] = []

    async def reset(connection: Any) -> None:
        calls.append(connection)

    pool = await open_pool(file_url(database), min_size=1, max_size=1, reset_on_return=reset)
    async with pool.acquire():
        pass
    lease = await pool.acquire()
    await lease.release()
    assert calls == []
    async with pool.acquire() as conn:
        await value(conn, "SELECT 1")
    assert len(calls) == 1 and isinstance(calls[0], aiosqlite.Connection)


class RollbackSpy:
    """Counts rollback() calls on one aiosqlite connection (then does the real one)."""

    def __init__(self, connection: Any) -> None:
        self.calls = 0
        self._real = connection.rollback
        connection.rollback = self

    async def __call__(self) -> None:
        self.calls += 1
        await self._real()


@pytest.mark.parametrize("where", ["memory", "file"])
async def test_default_reset_rolls_back_only_an_open_transaction(
    open_pool: PoolOpener, database: Path, where: str
) -> None:
    url = "sqlite://" if where == "memory" else file_url(database)
    pool = await open_pool(url, min_size=1, max_size=1)
    if where == "memory":
        async with pool.acquire() as setup:
            await setup.execute("CREATE TABLE t (x INTEGER)")
            await setup.execute("INSERT INTO t VALUES (1)")
            await setup.commit()
    async with pool.acquire() as a:
        connection = raw(a)
        spy = RollbackSpy(connection)
        assert await value(a, "SELECT count(*) FROM t") == 1  # used, no transaction open
        assert not a.in_transaction
    assert spy.calls == 0, "no transaction open: the default reset must not roll back"
    async with pool.acquire() as a:
        assert raw(a) is connection
        await a.execute("INSERT INTO t VALUES (99)")  # opens a transaction, left open
        assert a.in_transaction
    assert spy.calls == 1
    async with pool.acquire() as b:
        assert raw(b) is connection
        assert not b.in_transaction
        assert await rows(b, "SELECT x FROM t ORDER BY x") == [(1,)]


async def test_closed_connection_is_a_disconnect_and_is_dropped(
    open_pool: PoolOpener, database: Path
) -> None:
    pool = await open_pool(file_url(database), min_size=1, max_size=1)
    seen: list[tuple[BaseException, bool]] = []
    with pytest.raises(ValueError, match="no active connection"):
        async with pool.acquire() as conn:
            await raw(conn).close()
            try:
                await conn.execute("SELECT 1")
            except Exception as exc:
                seen.append((exc, pool.is_disconnect(exc, conn)))
                raise
    assert seen and seen[0][1], seen
    assert pool.opened == 0
    async with pool.acquire(timeout=5.0) as conn:
        assert await value(conn, "SELECT x FROM t") == 1


async def test_sql_error_is_not_a_disconnect(open_pool: PoolOpener, database: Path) -> None:
    pool = await open_pool(file_url(database), min_size=1, max_size=1)
    seen: list[tuple[BaseException, bool]] = []
    with pytest.raises(sqlite3.OperationalError):
        async with pool.acquire() as conn:
            connection = raw(conn)
            try:
                await conn.execute("SELEC 1")
            except Exception as exc:
                seen.append((exc, pool.is_disconnect(exc, conn)))
                raise
    assert seen and not seen[0][1], seen
    assert (pool.opened, pool.idle) == (1, 1)
    async with pool.acquire() as conn:
        assert raw(conn) is connection
        assert await value(conn, "SELECT 1") == 1


# -- 2. the second-borrower leak matrix ---------------------------------------------------------

PRAGMAS = (
    "foreign_keys",
    "query_only",
    "busy_timeout",
    "recursive_triggers",
    "synchronous",
    "cache_size",
    "journal_mode",
)


async def fingerprint(conn: Any) -> dict[str, Any]:
    """Everything about a session the next borrower could notice."""
    connection = raw(conn)
    state: dict[str, Any] = {
        "in_transaction": connection.in_transaction,
        "isolation_level": connection.isolation_level,
        "row_factory": connection.row_factory,
    }

    async def query(sql: str) -> Any:
        try:
            return await rows(connection, sql)
        except sqlite3.Error as exc:
            return f"error: {exc}"

    state["temp_objects"] = await query("SELECT type, name FROM temp.sqlite_master ORDER BY 1, 2")
    state["databases"] = await query("SELECT name FROM pragma_database_list ORDER BY 1")
    for pragma in PRAGMAS:
        state[pragma] = await query(f"PRAGMA {pragma}")
    state["rows"] = await query("SELECT x FROM t ORDER BY x")
    return state


Dirty = Callable[[Any, Path], Awaitable[None]]


def _sql(*statements: str) -> Dirty:
    async def dirty(conn: Any, tmp_path: Path) -> None:
        for sql in statements:
            await conn.execute(sql)
            if conn.in_transaction and "INSERT" not in sql:
                await conn.commit()

    return dirty


async def _attach(conn: Any, tmp_path: Path) -> None:
    await conn.execute("ATTACH DATABASE ? AS other", (str(tmp_path / "other.db"),))
    await conn.execute("CREATE TABLE other.o (y)")
    await conn.commit()


async def _row_factory(conn: Any, tmp_path: Path) -> None:
    conn.row_factory = sqlite3.Row


async def _isolation_level(conn: Any, tmp_path: Path) -> None:
    conn.isolation_level = None


async def _everything(conn: Any, tmp_path: Path) -> None:
    await _attach(conn, tmp_path)
    await _sql(
        "CREATE TEMP TABLE scratch (y)", "PRAGMA foreign_keys = ON", "PRAGMA busy_timeout = 1234"
    )(conn, tmp_path)
    await conn.execute("INSERT INTO t VALUES (99)")  # left open, then writes are refused
    await conn.execute("PRAGMA query_only = ON")
    assert conn.in_transaction


LEAKS: dict[str, Dirty] = {
    "temp_table": _sql("CREATE TEMP TABLE scratch (y)", "INSERT INTO scratch VALUES (1)"),
    "temp_view": _sql("CREATE TEMP VIEW v AS SELECT 1 AS one"),
    "attach": _attach,
    "foreign_keys": _sql("PRAGMA foreign_keys = ON"),
    "query_only": _sql("PRAGMA query_only = ON"),
    "busy_timeout": _sql("PRAGMA busy_timeout = 1234"),
    "recursive_triggers": _sql("PRAGMA recursive_triggers = ON"),
    "open_transaction": _sql("INSERT INTO t VALUES (99)"),
    "row_factory": _row_factory,
    "isolation_level": _isolation_level,
    "everything": _everything,
}


async def second_borrower_sees(
    pool: AsyncPool, tmp_path: Path, name: str, purity: str | None = None
) -> dict[str, Any]:
    """A leaves ``name`` behind; B's fingerprint of the same connection."""
    async with pool.acquire() as a:
        first = raw(a)
        await LEAKS[name](a, tmp_path)
    async with pool.acquire(purity=purity) as b:
        assert raw(b) is first, "B did not get A's connection"
        return await fingerprint(b)


async def fresh_fingerprint(database: Path) -> dict[str, Any]:
    conn = await aiosqlite.connect(database)
    try:
        return await fingerprint(conn)
    finally:
        await conn.close()


@pytest.mark.parametrize("name", list(LEAKS))
async def test_full_reset_leaves_nothing_to_the_second_borrower(
    open_pool: PoolOpener, database: Path, tmp_path: Path, name: str
) -> None:
    fresh = await fresh_fingerprint(database)
    pool = await open_pool(file_url(database), min_size=1, max_size=1, reset_on_return="full")
    seen = await second_borrower_sees(pool, tmp_path, name)
    assert differences(seen, fresh) == {}


@pytest.mark.parametrize("name", list(LEAKS))
async def test_purity_new_gives_a_fresh_session_under_the_default_reset(
    open_pool: PoolOpener, database: Path, tmp_path: Path, name: str
) -> None:
    fresh = await fresh_fingerprint(database)
    pool = await open_pool(file_url(database), min_size=1, max_size=1)
    seen = await second_borrower_sees(pool, tmp_path, name, purity="new")
    assert differences(seen, fresh) == {}


async def test_full_reset_on_the_shared_memory_database(
    open_pool: PoolOpener, tmp_path: Path
) -> None:
    """sqlite://: the full reset cleans the session; the shared tables stay."""
    pool = await open_pool("sqlite://", min_size=1, max_size=1, reset_on_return="full")
    async with pool.acquire() as setup:
        await setup.execute("CREATE TABLE t (x INTEGER)")
        await setup.execute("INSERT INTO t VALUES (1)")
        await setup.commit()
        before = await fingerprint(setup)
    seen = await second_borrower_sees(pool, tmp_path, "everything")
    assert differences(seen, before) == {}
