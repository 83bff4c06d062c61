"""AsyncPool over MariaDB through aiomysql, on the real server at 127.0.0.1:3306.

Borrowing and the default reset; the second-borrower leak matrix (reset_on_return="full" and
purity="new") against a brand-new aiomysql connection's view; KILL and ordinary SQL errors;
time limits against a hung server (tests/drivers/proxy.py); credentials kept out of errors.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiomysql
import pymysql
import pytest

from sessionpool import AsyncLease, AsyncPool, PoolTimeout
from tests.aio.drivers.common import (
    CANARY,
    INSTANT,
    LIMIT,
    MARGIN,
    differences,
    error_texts,
    timed,
)
from tests.aio.drivers.conftest import HOST, MY_PORT, PoolOpener, ProxyMaker, my_admin_connection

_SERVER_STATUS_IN_TRANS = 0x0001


def url(port: int = MY_PORT, userinfo: str = "root@", scheme: str = "mysql+aiomysql") -> str:
    return f"{scheme}://{userinfo}{HOST}:{port}/test"


async def fresh_connection() -> Any:
    """A brand-new connection made directly with aiomysql, as an application would."""
    return await aiomysql.connect(host=HOST, port=MY_PORT, user="root", db="test")


def raw(conn: Any) -> Any:
    return conn.driver_connection if isinstance(conn, AsyncLease) else conn


def in_transaction(conn: Any) -> bool:
    """The driver's local view: the IN_TRANS flag of the server's last status."""
    return bool((raw(conn).server_status or 0) & _SERVER_STATUS_IN_TRANS)


def thread_id(conn: Any) -> int:
    """The server's connection id, from the handshake (no round trip)."""
    return int(conn.thread_id())


async def run(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    """Execute on a driver connection or a lease; every row of the result (none: [])."""
    async with conn.cursor() as cursor:
        await cursor.execute(sql, args)
        return [tuple(row) for row in (await cursor.fetchall() or ())]


async def one(conn: Any, sql: str, args: Any = None) -> Any:
    rows = await run(conn, sql, args)
    assert len(rows) == 1, f"{sql!r} returned {rows!r}"
    return rows[0][0]


async def outcome(conn: Any, sql: str, args: Any = None) -> object:
    """The rows, or ("error", code) when the statement fails."""
    try:
        return await run(conn, sql, args)
    except pymysql.MySQLError as exc:
        return ("error", exc.args[0])


def admin_run(admin: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    with admin.cursor() as cursor:
        cursor.execute(sql, args)
        return [tuple(row) for row in (cursor.fetchall() or ())]


def admin_outcome(admin: Any, sql: str, args: Any = None) -> object:
    try:
        return admin_run(admin, sql, args)
    except pymysql.MySQLError as exc:
        return ("error", exc.args[0])


# -- server resources ---------------------------------------------------------------------------


@dataclass
class Server:
    admin: Any
    table: str  # (id auto_increment, tag UNIQUE)
    other_table: str
    database: str
    role: str


@pytest.fixture(scope="module")
def server(my_admin: Any) -> Iterator[Server]:
    suffix = uuid.uuid4().hex[:12]
    made = Server(
        admin=my_admin,
        table=f"sp_async_t_{suffix}",
        other_table=f"sp_async_o_{suffix}",
        database=f"sp_async_db_{suffix}",
        role=f"sp_async_role_{suffix}",
    )
    try:
        admin_run(
            my_admin,
            f"CREATE TABLE {made.table} (id INT AUTO_INCREMENT PRIMARY KEY, "
            "tag VARCHAR(64) NOT NULL UNIQUE) ENGINE=InnoDB",
        )
        admin_run(my_admin, f"CREATE TABLE {made.other_table} (i INT) ENGINE=InnoDB")
        admin_run(my_admin, f"CREATE DATABASE {made.database}")
        # MariaDB grants a new role to its creator (root@127.0.0.1 here) WITH ADMIN OPTION.
        admin_run(my_admin, f"CREATE ROLE {made.role}")
        yield made
    finally:
        cleanup = my_admin_connection()
        try:
            admin_run(cleanup, f"DROP TABLE IF EXISTS {made.table}, {made.other_table}")
            admin_run(cleanup, f"DROP DATABASE IF EXISTS {made.database}")
            admin_run(cleanup, f"DROP ROLE IF EXISTS {made.role}")
        finally:
            cleanup.close()


def count_rows(server: Server, tag: str) -> int:
    return int(
        admin_run(server.admin, f"SELECT COUNT(*) FROM {server.table} WHERE tag = %s", (tag,))[0][0]
    )


# -- 1. borrowing, the default reset, ping ------------------------------------------------------


@pytest.mark.parametrize("scheme", ["mysql", "mariadb", "mysql+aiomysql", "mariadb+aiomysql"])
async def test_url_selects_aiomysql(open_pool: PoolOpener, scheme: str) -> None:
    pool = await open_pool(url(scheme=scheme), min_size=1, max_size=1)
    async with pool.acquire() as conn:
        assert isinstance(conn.driver_connection, aiomysql.Connection)


async def test_open_acquire_query_release(open_pool: PoolOpener) -> None:
    pool = await open_pool(url(), min_size=1, max_size=2)
    assert (pool.opened, pool.idle, pool.busy) == (1, 1, 0)
    async with pool.acquire() as conn:
        assert pool.busy == 1
        assert await one(conn, "SELECT 40 + 2") == 42
        assert await one(conn, "SELECT CONNECTION_ID()") == thread_id(conn)
    assert (pool.opened, pool.idle, pool.busy) == (1, 1, 0)
    lease = await pool.acquire(timeout=2.0)
    assert await one(lease, "SELECT DATABASE()") == "test"
    await lease.release()
    assert (pool.idle, pool.busy) == (1, 0)


async def test_ping_live_connection(open_pool: PoolOpener) -> None:
    pool = await open_pool(url(), min_size=1, max_size=1)
    async with pool.acquire() as conn:
        assert await pool.ping(conn) is True
        assert await pool.ping(conn, timeout=LIMIT) is True
        assert await one(conn, "SELECT 1") == 1


async def test_untouched_lease_skips_the_reset(open_pool: PoolOpener) -> None:
    calls: list[Any] = []

    async def reset(connection: Any) -> None:
        calls.append(connection)

    pool = await open_pool(url(), min_size=1, max_size=1, reset_on_return=reset)
    async with pool.acquire():
        pass
    lease = await pool.acquire()
    await lease.release()
    assert calls == []
    async with pool.acquire() as conn:
        await one(conn, "SELECT 1")
    assert len(calls) == 1 and isinstance(calls[0], aiomysql.Connection)


async def test_untouched_lease_makes_no_round_trip_on_return_even_with_full_reset(
    open_pool: PoolOpener, make_proxy: ProxyMaker
) -> None:
    proxy = make_proxy(MY_PORT)
    pool = await open_pool(
        url(port=proxy.port), min_size=1, max_size=1, reset_on_return="full", reset_timeout=2.0
    )
    lease = await pool.acquire()
    proxy.blackhole()
    result, elapsed = await timed(lease.release())
    assert result is None and elapsed < INSTANT, (result, elapsed)
    assert (pool.opened, pool.idle) == (1, 1)
    proxy.resume()
    async with pool.acquire() as conn:
        assert await one(conn, "SELECT 1") == 1


async def test_default_reset_rolls_back_an_open_transaction(
    open_pool: PoolOpener, server: Server
) -> None:
    tag = uuid.uuid4().hex
    pool = await open_pool(url(), min_size=1, max_size=1)  # autocommit off, "rollback" reset
    async with pool.acquire() as a:
        id_a = thread_id(a)
        await run(a, f"INSERT INTO {server.table} (tag) VALUES (%s)", (tag,))
        assert in_transaction(a)
    async with pool.acquire() as b:
        assert thread_id(b) == id_a
        assert not in_transaction(b)
        assert await one(b, f"SELECT COUNT(*) FROM {server.table} WHERE tag = %s", (tag,)) == 0
        await b.rollback()
    assert count_rows(server, tag) == 0


async def test_default_reset_makes_no_round_trip_without_a_transaction(
    open_pool: PoolOpener, make_proxy: ProxyMaker
) -> None:
    proxy = make_proxy(MY_PORT)
    pool = await open_pool(url(port=proxy.port), min_size=1, max_size=1, reset_timeout=2.0)
    lease = await pool.acquire()
    ident = thread_id(lease)
    assert await one(lease, "SELECT 1") == 1
    await lease.commit()
    assert not in_transaction(lease)
    proxy.blackhole()
    result, elapsed = await timed(lease.release())
    assert result is None and elapsed < INSTANT, (result, elapsed)
    assert (pool.opened, pool.idle) == (1, 1)
    proxy.resume()
    async with pool.acquire() as conn:
        assert thread_id(conn) == ident
        assert await one(conn, "SELECT 2") == 2


# -- 2. the second-borrower leak matrix ---------------------------------------------------------


@dataclass
class Context:
    server: Server
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def admin(self) -> Any:
        return self.server.admin

    @property
    def lock_name(self) -> str:
        return f"sp_lock_{self.token}"

    @property
    def temp_table(self) -> str:
        return f"sp_tmp_{self.token}"


@pytest.fixture
def ctx(server: Server) -> Context:
    return Context(server)


_FINGERPRINT = {
    "@x": "@x",
    "sql_mode": "@@session.sql_mode",
    "time_zone": "@@session.time_zone",
    "character_set_client": "@@session.character_set_client",
    "character_set_connection": "@@session.character_set_connection",
    "character_set_results": "@@session.character_set_results",
    "collation_connection": "@@session.collation_connection",
    "autocommit": "@@session.autocommit",
    "tx_isolation": "@@session.tx_isolation",
    "tx_read_only": "@@session.tx_read_only",
    "database": "DATABASE()",
    "role": "CURRENT_ROLE()",
}


async def fingerprint(conn: Any) -> dict[str, Any]:
    """The session's settings and variables, and the driver's local state."""
    state: dict[str, Any] = {
        "in_transaction": in_transaction(conn),
        "client autocommit": bool(raw(conn).get_autocommit()),
    }
    row = (await run(conn, "SELECT " + ", ".join(_FINGERPRINT.values())))[0]
    state.update(zip(_FINGERPRINT, row, strict=True))
    return state


Dirty = Callable[[Any, Context], Awaitable[None]]
Probe = Callable[[Any, Context], Awaitable[object]]


def _set(*statements: str) -> Dirty:
    async def dirty(conn: Any, ctx: Context) -> None:
        for sql in statements:
            await run(conn, sql)

    return dirty


async def _charset_probe(conn: Any, ctx: Context) -> object:
    # Three bytes of UTF-8 make one character only when the session reads UTF-8.
    return await one(conn, "SELECT CHAR_LENGTH(%s)", ("\u20ac",))


async def _temp_table_dirty(conn: Any, ctx: Context) -> None:
    await run(conn, f"CREATE TEMPORARY TABLE {ctx.temp_table} (i INT)")


async def _temp_table_probe(conn: Any, ctx: Context) -> object:
    return await outcome(conn, f"SELECT COUNT(*) FROM {ctx.temp_table}")


async def _prepared_probe(conn: Any, ctx: Context) -> object:
    return await outcome(conn, "EXECUTE sp_stmt")


async def _named_lock_dirty(conn: Any, ctx: Context) -> None:
    assert await one(conn, "SELECT GET_LOCK(%s, 0)", (ctx.lock_name,)) == 1


async def _named_lock_probe(conn: Any, ctx: Context) -> object:
    return await one(conn, "SELECT IS_USED_LOCK(%s)", (ctx.lock_name,))


def _named_lock_outside(ctx: Context) -> object:
    return admin_run(ctx.admin, "SELECT IS_FREE_LOCK(%s)", (ctx.lock_name,))


async def _table_lock_dirty(conn: Any, ctx: Context) -> None:
    await run(conn, f"LOCK TABLES {ctx.server.table} WRITE")


async def _table_lock_probe(conn: Any, ctx: Context) -> object:
    # Under LOCK TABLES a session may touch no other table (error 1100).
    return await outcome(conn, f"SELECT COUNT(*) FROM {ctx.server.other_table}")


def _table_lock_outside(ctx: Context) -> object:
    # Fails with 1205 after lock_wait_timeout (2 s) while the write lock is held.
    return admin_outcome(ctx.admin, f"SELECT COUNT(*) FROM {ctx.server.table} FOR UPDATE")


async def _use_dirty(conn: Any, ctx: Context) -> None:
    await run(conn, f"USE {ctx.server.database}")


async def _role_dirty(conn: Any, ctx: Context) -> None:
    await run(conn, f"SET ROLE {ctx.server.role}")
    assert await one(conn, "SELECT CURRENT_ROLE()") == ctx.server.role


async def _client_autocommit_dirty(conn: Any, ctx: Context) -> None:
    await conn.autocommit(True)


async def _autocommit_probe(conn: Any, ctx: Context) -> object:
    """What a rolled-back insert leaves (kept only under autocommit)."""
    tag = f"{ctx.token}-ac"
    await run(conn, f"INSERT INTO {ctx.server.table} (tag) VALUES (%s)", (tag,))
    await conn.rollback()
    kept = count_rows(ctx.server, tag)
    admin_run(ctx.admin, f"DELETE FROM {ctx.server.table} WHERE tag = %s", (tag,))
    return kept


async def _insert_dirty(conn: Any, ctx: Context) -> None:
    await run(conn, f"INSERT INTO {ctx.server.table} (tag) VALUES (%s)", (ctx.token,))
    assert in_transaction(conn)


async def _rows_probe(conn: Any, ctx: Context) -> object:
    return await one(conn, f"SELECT COUNT(*) FROM {ctx.server.table} WHERE tag = %s", (ctx.token,))


def _rows_outside(ctx: Context) -> object:
    return count_rows(ctx.server, ctx.token)


@dataclass(frozen=True)
class Kind:
    name: str
    dirty: Dirty
    probe: Probe | None = None
    outside: Callable[[Context], object] | None = None


KINDS = [
    Kind("user_variable", _set("SET @x = 42")),
    Kind("sql_mode", _set("SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'")),
    Kind("time_zone", _set("SET time_zone = '+05:00'")),
    Kind("set_names_latin1", _set("SET NAMES latin1"), _charset_probe),
    Kind("isolation_level", _set("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE")),
    Kind("temporary_table", _temp_table_dirty, _temp_table_probe),
    Kind("prepared_statement", _set("PREPARE sp_stmt FROM 'SELECT 1'"), _prepared_probe),
    Kind("named_lock", _named_lock_dirty, _named_lock_probe, _named_lock_outside),
    Kind("table_lock", _table_lock_dirty, _table_lock_probe, _table_lock_outside),
    Kind("use_database", _use_dirty),
    Kind("role", _role_dirty),
    Kind("autocommit_sql", _set("SET autocommit = 1"), _autocommit_probe),
    Kind("autocommit_client", _client_autocommit_dirty, _autocommit_probe),
    Kind("open_transaction", _insert_dirty, _rows_probe, _rows_outside),
    Kind(
        "several",
        _set("SET @x = 'tenant-7'", "SET time_zone = '+03:00'", "SET NAMES latin1"),
        _charset_probe,
    ),
]
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}


@dataclass
class Observation:
    id_a: int
    id_b: int
    fresh: dict[str, Any]
    seen: dict[str, Any]

    def leaks(self) -> dict[str, tuple[Any, Any]]:
        return differences(self.seen, self.fresh)


async def second_borrower(
    pool: AsyncPool, kind: Kind, ctx: Context, purity: str | None = None
) -> Observation:
    """A dirties one kind of state and leaves; B (the only connection) looks at the session."""
    conn = await fresh_connection()
    try:
        fresh = await fingerprint(conn)
        if kind.probe is not None:
            fresh["probe"] = await kind.probe(conn, ctx)
        await conn.rollback()
    finally:
        conn.close()
    if kind.outside is not None:
        fresh["outside"] = kind.outside(ctx)

    async with pool.acquire(timeout=5.0) as a:
        id_a = thread_id(a)
        await kind.dirty(a, ctx)
    async with pool.acquire(timeout=5.0, purity=purity) as b:
        id_b = thread_id(b)
        assert await one(b, "SELECT CONNECTION_ID()") == id_b
        seen = await fingerprint(b)
        if kind.probe is not None:
            seen["probe"] = await kind.probe(b, ctx)
    if kind.outside is not None:
        seen["outside"] = kind.outside(ctx)
    return Observation(id_a, id_b, fresh, seen)


@pytest.mark.parametrize("kind", list(KINDS_BY_NAME))
async def test_full_reset_leaves_nothing_to_the_second_borrower(
    open_pool: PoolOpener, ctx: Context, kind: str
) -> None:
    pool = await open_pool(url(), min_size=1, max_size=1, reset_on_return="full")
    seen = await second_borrower(pool, KINDS_BY_NAME[kind], ctx)
    assert seen.id_b == seen.id_a, "the full reset is in place: B gets A's session"
    assert seen.leaks() == {}


@pytest.mark.parametrize("kind", list(KINDS_BY_NAME))
async def test_purity_new_gives_a_fresh_session_under_the_default_reset(
    open_pool: PoolOpener, ctx: Context, kind: str
) -> None:
    pool = await open_pool(url(), min_size=1, max_size=1)
    seen = await second_borrower(pool, KINDS_BY_NAME[kind], ctx, purity="new")
    assert seen.id_b == seen.id_a, "the full reset is in place: B gets A's session"
    assert seen.leaks() == {}


# -- 3. disconnects -----------------------------------------------------------------------------


async def test_killed_session_is_a_disconnect_and_is_dropped(
    open_pool: PoolOpener, server: Server
) -> None:
    pool = await open_pool(url(), min_size=1, max_size=1)
    seen: list[tuple[BaseException, bool]] = []
    with pytest.raises(pymysql.MySQLError) as left:
        async with pool.acquire() as conn:
            ident = thread_id(conn)
            admin_run(server.admin, f"KILL {ident}")
            await asyncio.sleep(0.1)
            try:
                await one(conn, "SELECT 1")
            except Exception as exc:
                seen.append((exc, pool.is_disconnect(exc, conn)))
                raise
    assert seen, "a query on a killed session did not fail"
    error, classified = seen[0]
    assert left.value is error
    assert classified, f"not classed a disconnect: {error!r}"
    assert pool.opened == 0, "leaving `async with` with a disconnect must drop the connection"
    async with pool.acquire(timeout=5.0) as conn:
        assert thread_id(conn) != ident
        assert await one(conn, "SELECT 1") == 1


ERRORS = {
    "syntax": (1064, ["SELEC 1"]),
    "duplicate_key": (
        1062,
        [
            "INSERT INTO {table} (tag) VALUES ('{tag}')",
            "INSERT INTO {table} (tag) VALUES ('{tag}')",
        ],
    ),
    "max_statement_time": (1969, ["SET STATEMENT max_statement_time = 0.05 FOR SELECT SLEEP(2)"]),
}


@pytest.mark.parametrize("error", sorted(ERRORS))
async def test_ordinary_sql_error_is_not_a_disconnect(
    open_pool: PoolOpener, server: Server, error: str
) -> None:
    code, statements = ERRORS[error]
    tag = uuid.uuid4().hex
    pool = await open_pool(url(), min_size=1, max_size=1)
    seen: list[tuple[BaseException, bool]] = []
    with pytest.raises(pymysql.MySQLError):
        async with pool.acquire() as conn:
            ident = thread_id(conn)
            try:
                for sql in statements:
                    await run(conn, sql.format(table=server.table, tag=tag))
            except Exception as exc:
                seen.append((exc, pool.is_disconnect(exc, conn)))
                raise
    assert seen, "the statement did not fail"
    exc, classified = seen[0]
    assert exc.args[0] == code, repr(exc)
    assert not classified, f"{exc!r} classed a disconnect"
    assert (pool.opened, pool.idle) == (1, 1), "the connection must be kept"
    async with pool.acquire() as conn:
        assert thread_id(conn) == ident
        assert not in_transaction(conn)
        assert await one(conn, "SELECT 1") == 1
    assert count_rows(server, tag) == 0


# -- 4. time limits against a hung server -------------------------------------------------------


async def test_ping_is_time_bounded_on_a_hung_peer(
    open_pool: PoolOpener, make_proxy: ProxyMaker
) -> None:
    proxy = make_proxy(MY_PORT)
    pool = await open_pool(url(port=proxy.port), min_size=1, max_size=1, reset_timeout=LIMIT)
    lease = await pool.acquire()
    assert await pool.ping(lease, timeout=LIMIT) is True
    proxy.blackhole()
    result, elapsed = await timed(pool.ping(lease, timeout=LIMIT))
    assert elapsed < LIMIT + MARGIN, f"ping took {elapsed:.2f} s"
    assert result is False or isinstance(result, Exception), result
    await lease.drop()


async def test_release_with_open_transaction_is_time_bounded_and_drops(
    open_pool: PoolOpener, make_proxy: ProxyMaker, server: Server
) -> None:
    proxy = make_proxy(MY_PORT)
    pool = await open_pool(url(port=proxy.port), min_size=1, max_size=1, reset_timeout=LIMIT)
    lease = await pool.acquire()
    await run(lease, f"INSERT INTO {server.table} (tag) VALUES (%s)", (uuid.uuid4().hex,))
    assert in_transaction(lease)
    proxy.blackhole()
    result, elapsed = await timed(lease.release())
    assert result is None, repr(result)
    assert elapsed < LIMIT + MARGIN, f"release took {elapsed:.2f} s"
    assert pool.opened == 0, "a connection whose reset timed out must be dropped"


async def test_acquire_times_out_while_connects_hang(
    open_pool: PoolOpener, make_proxy: ProxyMaker
) -> None:
    proxy = make_proxy(MY_PORT)
    proxy.blackhole()  # before any connection exists: every connect hangs in the handshake
    pool = await open_pool(url(port=proxy.port), lazy=True, min_size=1, max_size=1)
    result, elapsed = await timed(pool.acquire(timeout=LIMIT))
    assert isinstance(result, PoolTimeout), repr(result)
    assert elapsed < LIMIT + 0.2, f"acquire(timeout={LIMIT}) took {elapsed:.2f} s"
    assert pool.opened == 0 and pool.busy == 0


# -- 6. credentials -----------------------------------------------------------------------------


async def test_wrong_credentials_error_does_not_show_the_password(open_pool: PoolOpener) -> None:
    with pytest.raises(pymysql.MySQLError) as caught:
        await open_pool(url(userinfo=f"nosuchuser:{CANARY}@"), min_size=1, max_size=1)
    assert caught.value.args[0] == 1045, repr(caught.value)  # access denied
    for text in error_texts(caught.value):
        assert CANARY not in text


async def test_repr_of_a_pool_does_not_show_the_password(open_pool: PoolOpener) -> None:
    pool = await open_pool(url(userinfo=f"app:{CANARY}@"), lazy=True, max_size=1)
    for text in (repr(pool), str(pool), pool.status(), repr(pool.stats())):
        assert CANARY not in text
