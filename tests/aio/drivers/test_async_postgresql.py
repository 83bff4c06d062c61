"""AsyncPool over PostgreSQL: asyncpg and psycopg 3's AsyncConnection, on the real server.

Borrowing and the default reset; the second-borrower leak matrix (reset_on_return="full" and
purity="new"), each "fresh" reference measured on a brand-new connection opened directly with
the driver; disconnect classification and dropping; time limits against a hung peer (through
tests/drivers/proxy.py); credentials kept out of errors and reprs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import psycopg
import psycopg.rows
import pytest

from sessionpool import AsyncLease, AsyncPool, LeaseReleased, PoolTimeout
from tests.aio.drivers.common import (
    CANARY,
    INSTANT,
    LIMIT,
    MARGIN,
    differences,
    error_texts,
    timed,
)
from tests.aio.drivers.conftest import HOST, PG_PORT, PoolOpener, ProxyMaker

# libpq PQtransactionStatus values.
_IDLE, _INTRANS, _INERROR = 0, 2, 3


# -- the two drivers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Flavor:
    """One async PostgreSQL driver: its URL scheme and how to talk to its connections.

    ``conn`` arguments are a raw driver connection or a lease (which forwards the same calls).
    """

    name: str
    scheme: str
    connection_type: type

    def url(self, port: int = PG_PORT, userinfo: str = "") -> str:
        return f"{self.scheme}://{userinfo}{HOST}:{port}/test"

    @property
    def is_asyncpg(self) -> bool:
        return self.name == "asyncpg"

    async def connect(self) -> Any:
        """A brand-new connection made directly with the driver, as an application would."""
        if self.is_asyncpg:
            return await asyncpg.connect(host=HOST, port=PG_PORT, database="test")
        return await psycopg.AsyncConnection.connect(host=HOST, port=PG_PORT, dbname="test")

    def pid(self, conn: Any) -> int:
        """The backend's process id, known locally by both drivers (no round trip)."""
        if self.is_asyncpg:
            return int(conn.get_server_pid())
        return int(conn.info.backend_pid)

    def in_transaction(self, conn: Any) -> bool:
        """The driver's local view of the transaction status."""
        if self.is_asyncpg:
            return bool(conn.is_in_transaction())
        return int(conn.info.transaction_status) != _IDLE

    async def run(self, conn: Any, sql: str, *, commit: bool = True) -> None:
        """Execute; for psycopg (not autocommit) commit afterwards unless told not to.
        asyncpg runs each statement outside BEGIN in its own transaction."""
        await conn.execute(sql)
        if not self.is_asyncpg and commit and not conn.autocommit:
            await conn.commit()

    async def begin(self, conn: Any) -> None:
        """Open a transaction (psycopg opens one with the first statement anyway)."""
        if self.is_asyncpg:
            await conn.execute("BEGIN")

    async def row(self, conn: Any, sql: str) -> tuple[Any, ...]:
        """The first row, leaving the transaction status as found when that was idle."""
        if self.is_asyncpg:
            record = await conn.fetchrow(sql)
            return tuple(record)
        idle = int(conn.info.transaction_status) == _IDLE
        cursor = await conn.execute(sql)
        fetched = await cursor.fetchone()
        if idle and int(conn.info.transaction_status) != _IDLE:
            await conn.rollback()
        return tuple(fetched.values()) if isinstance(fetched, dict) else tuple(fetched)

    async def value(self, conn: Any, sql: str) -> Any:
        return (await self.row(conn, sql))[0]


FLAVORS = {
    "asyncpg": Flavor("asyncpg", "postgresql+asyncpg", asyncpg.Connection),
    "psycopg": Flavor("psycopg", "postgresql+psycopg", psycopg.AsyncConnection),
}


@pytest.fixture(params=sorted(FLAVORS))
def flavor(request: pytest.FixtureRequest) -> Flavor:
    return FLAVORS[request.param]


#: What the drivers raise for a failed statement or a lost connection.
DRIVER_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, psycopg.Error, OSError)


def terminate(admin: psycopg.Connection[Any], pid: int) -> None:
    """Kill a backend and wait (up to 5 s) until it is gone."""
    row = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
    assert row is not None and row[0], f"backend {pid} did not terminate"


def count_rows(admin: psycopg.Connection[Any], table: str, tag: str) -> int:
    row = admin.execute(f"SELECT count(*) FROM {table} WHERE tag = %s", (tag,)).fetchone()
    assert row is not None
    return int(row[0])


def sqlstate(error: BaseException) -> str | None:
    return getattr(error, "sqlstate", None)


# -- 1. borrowing, the default reset, ping ------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://127.0.0.1/test", psycopg.AsyncConnection),
        ("postgresql+psycopg://127.0.0.1/test", psycopg.AsyncConnection),
        ("postgresql+asyncpg://127.0.0.1/test", asyncpg.Connection),
    ],
)
async def test_url_selects_the_async_driver(
    open_pool: PoolOpener, url: str, expected: type
) -> None:
    pool = await open_pool(url, min_size=1, max_size=1)
    async with pool.acquire() as conn:
        assert isinstance(conn.driver_connection, expected)


async def test_open_acquire_query_release(open_pool: PoolOpener, flavor: Flavor) -> None:
    pool = await open_pool(flavor.url(), min_size=1, max_size=2)
    assert (pool.opened, pool.idle, pool.busy) == (1, 1, 0)
    async with pool.acquire() as conn:
        assert isinstance(conn, AsyncLease)
        assert isinstance(conn.driver_connection, flavor.connection_type)
        assert pool.busy == 1
        assert await flavor.value(conn, "SELECT 40 + 2") == 42
    assert (pool.opened, pool.idle, pool.busy) == (1, 1, 0)

    lease = await pool.acquire(timeout=2.0)
    assert await flavor.value(lease, "SELECT current_database()") == "test"
    await lease.release()
    assert (pool.idle, pool.busy) == (1, 0)
    with pytest.raises(LeaseReleased):
        await lease.execute("SELECT 1")  # any use after release raises


async def test_ping_live_connection(open_pool: PoolOpener, flavor: Flavor) -> None:
    pool = await open_pool(flavor.url(), min_size=1, max_size=1)
    async with pool.acquire() as conn:
        assert await pool.ping(conn) is True
        assert await pool.ping(conn, timeout=LIMIT) is True
        # The check leaves no transaction behind (psycopg is not in autocommit mode).
        assert not flavor.in_transaction(conn.driver_connection)
        assert await flavor.value(conn, "SELECT 1") == 1


async def test_untouched_lease_skips_the_reset(open_pool: PoolOpener, flavor: Flavor) -> None:
    calls: list[Any] = []

    async def reset(connection: Any) -> None:
        calls.append(connection)

    pool = await open_pool(flavor.url(), min_size=1, max_size=1, reset_on_return=reset)
    async with pool.acquire():
        pass
    lease = await pool.acquire()
    await lease.release()
    assert calls == [], "a lease nobody used must not be reset"
    async with pool.acquire() as conn:
        await flavor.value(conn, "SELECT 1")
    assert len(calls) == 1 and isinstance(calls[0], flavor.connection_type)


async def test_untouched_lease_makes_no_round_trip_on_return_even_with_full_reset(
    open_pool: PoolOpener, make_proxy: ProxyMaker, flavor: Flavor
) -> None:
    proxy = make_proxy(PG_PORT)
    pool = await open_pool(
        flavor.url(port=proxy.port),
        min_size=1,
        max_size=1,
        reset_on_return="full",
        reset_timeout=2.0,
    )
    lease = await pool.acquire()
    proxy.blackhole()  # any round trip now would hang until reset_timeout
    outcome, elapsed = await timed(lease.release())
    assert outcome is None and elapsed < INSTANT, (outcome, elapsed)
    assert (pool.opened, pool.idle) == (1, 1), "the untouched connection must be kept"
    proxy.resume()
    async with pool.acquire() as conn:
        assert await flavor.value(conn, "SELECT 1") == 1


async def test_default_reset_rolls_back_an_open_transaction(
    open_pool: PoolOpener, flavor: Flavor, pg_admin: psycopg.Connection[Any], pg_table: str
) -> None:
    tag = uuid.uuid4().hex
    pool = await open_pool(flavor.url(), min_size=1, max_size=1)  # reset_on_return="rollback"
    async with pool.acquire() as a:
        pid_a = flavor.pid(a)
        await flavor.begin(a)
        await flavor.run(a, f"INSERT INTO {pg_table} (tag) VALUES ('{tag}')", commit=False)
        assert flavor.in_transaction(a.driver_connection)
    async with pool.acquire() as b:
        assert flavor.pid(b) == pid_a, "B must get A's connection"
        assert not flavor.in_transaction(b.driver_connection)
        assert await flavor.value(b, f"SELECT count(*) FROM {pg_table} WHERE tag = '{tag}'") == 0
    assert count_rows(pg_admin, pg_table, tag) == 0


async def test_commit_reset_commits_what_the_borrower_left_open(
    open_pool: PoolOpener, flavor: Flavor, pg_admin: psycopg.Connection[Any], pg_table: str
) -> None:
    """reset_on_return="commit": asyncpg connections have no commit(); the driver commits by
    SQL, and the connection stays in the pool."""
    tag = uuid.uuid4().hex
    pool = await open_pool(flavor.url(), min_size=1, max_size=1, reset_on_return="commit")
    async with pool.acquire() as a:
        pid_a = flavor.pid(a)
        await flavor.begin(a)
        await flavor.run(a, f"INSERT INTO {pg_table} (tag) VALUES ('{tag}')", commit=False)
    async with pool.acquire() as b:
        assert flavor.pid(b) == pid_a, "the connection was dropped instead of committed"
        assert not flavor.in_transaction(b.driver_connection)
    assert count_rows(pg_admin, pg_table, tag) == 1


async def test_default_reset_makes_no_round_trip_without_a_transaction(
    open_pool: PoolOpener, make_proxy: ProxyMaker, flavor: Flavor
) -> None:
    proxy = make_proxy(PG_PORT)
    pool = await open_pool(flavor.url(port=proxy.port), min_size=1, max_size=1, reset_timeout=2.0)
    lease = await pool.acquire()
    pid = flavor.pid(lease)
    assert await flavor.value(lease, "SELECT 1") == 1  # used: the lease is dirty
    assert not flavor.in_transaction(lease.driver_connection)
    proxy.blackhole()  # a ROLLBACK sent now would hang until reset_timeout
    outcome, elapsed = await timed(lease.release())
    assert outcome is None and elapsed < INSTANT, (outcome, elapsed)
    assert (pool.opened, pool.idle) == (1, 1)
    proxy.resume()
    async with pool.acquire() as conn:
        assert flavor.pid(conn) == pid
        assert await flavor.value(conn, "SELECT 2") == 2


# -- 2. the second-borrower leak matrix ---------------------------------------------------------


@dataclass
class Context:
    flavor: Flavor
    role: str
    admin: psycopg.Connection[Any]
    table: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    #: Payloads delivered to callbacks borrower A registered.
    notified: list[str] = field(default_factory=list)

    @property
    def channel(self) -> str:
        return f"sp_chan_{self.token}"


@pytest.fixture
def ctx(flavor: Flavor, pg_role: str, pg_admin: psycopg.Connection[Any], pg_table: str) -> Context:
    return Context(flavor, pg_role, pg_admin, pg_table)


# Every piece of server-side session state a borrower can leave behind, read in one round trip.
_FINGERPRINT = {
    "current_user": "current_user::text",
    "session_user": "session_user::text",
    "search_path": "current_setting('search_path')",
    "statement_timeout": "current_setting('statement_timeout')",
    "lock_timeout": "current_setting('lock_timeout')",
    "TimeZone": "current_setting('TimeZone')",
    "DateStyle": "current_setting('DateStyle')",
    "application_name": "current_setting('application_name')",
    "work_mem": "current_setting('work_mem')",
    "default_transaction_isolation": "current_setting('default_transaction_isolation')",
    "default_transaction_read_only": "current_setting('default_transaction_read_only')",
    "default_transaction_deferrable": "current_setting('default_transaction_deferrable')",
    "transaction_isolation": "current_setting('transaction_isolation')",
    "transaction_read_only": "current_setting('transaction_read_only')",
    # A custom GUC stays defined (as '') after RESET ALL / DISCARD ALL; a fresh session does
    # not know it (NULL with missing_ok). Both mean "not set": compare as ''.
    "app.x": "coalesce(current_setting('app.x', true), '')",
    "temp_objects": "(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())::int",
    "sql_prepared_statements": "(SELECT coalesce(string_agg(name, ',' ORDER BY name), '') "
    "FROM pg_prepared_statements WHERE from_sql)",
    # Statements the driver prepared under its own names: asyncpg's statement cache (kept
    # on purpose, not compared) or psycopg's automatic preparation (compared).
    "driver_prepared_statements": "(SELECT count(*) FROM pg_prepared_statements "
    "WHERE NOT from_sql)::int",
    "cursors": "(SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_cursors)",
    "listening_channels": "(SELECT coalesce(string_agg(c, ',' ORDER BY c), '') "
    "FROM pg_listening_channels() AS c)",
    "advisory_locks": "(SELECT count(*) FROM pg_locks "
    "WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int",
}
_FINGERPRINT_SQL = "SELECT " + ", ".join(
    f'{expression} AS "{key}"' for key, expression in _FINGERPRINT.items()
)
_PSYCOPG_CLIENT = ("autocommit", "isolation_level", "read_only", "deferrable", "row_factory")


def _client_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value if not hasattr(value, "name") else f"{type(value).__name__}.{value.name}"
    return getattr(value, "__qualname__", None) or repr(value)


async def fingerprint(flavor: Flavor, conn: Any) -> dict[str, Any]:
    """Every kind of session state a borrower could leave, server and client side.

    The transaction status is read first. A transaction found open is left open (so a probe
    run next still sees what it holds); one the fingerprint's own query opened is rolled back.
    Client-side listener and handler registries are private attributes of the drivers.
    """
    raw = conn.driver_connection if isinstance(conn, AsyncLease) else conn
    state: dict[str, Any] = {"in_transaction": flavor.in_transaction(raw)}
    if flavor.is_asyncpg:
        state["client.listeners"] = sorted(raw._listeners)
    else:
        status = int(raw.info.transaction_status)
        state["transaction_status"] = status
        state["client.notify_handlers"] = len(raw._notify_handlers)
        state.update({f"client.{n}": _client_value(getattr(raw, n)) for n in _PSYCOPG_CLIENT})
        if status == _INERROR:
            await raw.rollback()  # only to read the rest; the status is recorded already
    try:
        row = await flavor.row(raw, _FINGERPRINT_SQL)
    except asyncpg.InFailedSQLTransactionError:
        # asyncpg cannot tell a failed transaction locally: record it, then read the rest.
        state["failed_transaction"] = True
        await raw.execute("ROLLBACK")
        row = await flavor.row(raw, _FINGERPRINT_SQL)
    state.update(zip(_FINGERPRINT, row, strict=True))
    if flavor.is_asyncpg:
        del state["driver_prepared_statements"]
    return state


Dirty = Callable[[Any, Context], Awaitable[None]]
Probe = Callable[[Any, Context], Awaitable[object]]


def _sql(*statements: str) -> Dirty:
    async def dirty(conn: Any, ctx: Context) -> None:
        for sql in statements:
            await ctx.flavor.run(conn, sql)

    return dirty


async def _set_role(conn: Any, ctx: Context) -> None:
    await ctx.flavor.run(conn, f'SET ROLE "{ctx.role}"')


async def _session_authorization(conn: Any, ctx: Context) -> None:
    await ctx.flavor.run(conn, f'SET SESSION AUTHORIZATION "{ctx.role}"')


async def _listen(conn: Any, ctx: Context) -> None:
    await ctx.flavor.run(conn, f"LISTEN {ctx.channel}")


async def _advisory_lock(conn: Any, ctx: Context) -> None:
    key = uuid.uuid4().int % 2**62
    await ctx.flavor.run(conn, f"SELECT pg_advisory_lock({key})")


async def _open_transaction(conn: Any, ctx: Context) -> None:
    await ctx.flavor.begin(conn)
    sql = f"INSERT INTO {ctx.table} (tag) VALUES ('{ctx.token}')"
    await ctx.flavor.run(conn, sql, commit=False)
    assert ctx.flavor.in_transaction(conn.driver_connection)


async def _rows_probe(conn: Any, ctx: Context) -> object:
    return await ctx.flavor.value(
        conn, f"SELECT count(*) FROM {ctx.table} WHERE tag = '{ctx.token}'"
    )


def _rows_outside(ctx: Context) -> object:
    return count_rows(ctx.admin, ctx.table, ctx.token)


async def _failed_transaction(conn: Any, ctx: Context) -> None:
    await ctx.flavor.begin(conn)
    with pytest.raises((asyncpg.PostgresError, psycopg.Error)) as caught:
        await conn.execute("SELECT 1/0")
    assert sqlstate(caught.value) == "22012"


async def _add_listener(conn: Any, ctx: Context) -> None:
    """asyncpg: a callback A registers (it LISTENs on the channel)."""

    def callback(connection: Any, pid: int, channel: str, payload: str) -> None:
        ctx.notified.append(payload)

    await conn.add_listener(ctx.channel, callback)


async def _notify_handler(conn: Any, ctx: Context) -> None:
    """psycopg: a notify handler A registers, LISTENing on the channel."""
    conn.add_notify_handler(lambda notify: ctx.notified.append(notify.payload))
    await ctx.flavor.run(conn, f"LISTEN {ctx.channel}")


async def _callback_probe(conn: Any, ctx: Context) -> object:
    """A NOTIFY on A's channel, then a query that gives the driver time to read it: did any
    callback of A's run?"""
    ctx.admin.execute(f"NOTIFY {ctx.channel}, 'for-borrower-A'")
    await ctx.flavor.value(conn, "SELECT pg_sleep(0.2)::text")
    await ctx.flavor.value(conn, "SELECT 1")
    await asyncio.sleep(0.05)
    return list(ctx.notified)


async def _auto_prepared(conn: Any, ctx: Context) -> None:
    """psycopg: a statement prepared server-side under psycopg's own name (its cache)."""
    await conn.execute("SELECT 42", prepare=True)
    await conn.commit()


async def _prepared_probe(conn: Any, ctx: Context) -> object:
    """Running the same statement prepared again must work (psycopg's cache must not name a
    server statement the reset deallocated)."""
    try:
        cursor = await conn.execute("SELECT 42", prepare=True)
        row = await cursor.fetchone()
        return tuple(row.values()) if isinstance(row, dict) else tuple(row)
    except psycopg.Error as exc:
        return ("error", exc.sqlstate, str(exc))
    finally:
        await conn.rollback()


async def _set_autocommit(conn: Any, ctx: Context) -> None:
    await conn.set_autocommit(True)


async def _set_read_only(conn: Any, ctx: Context) -> None:
    await conn.set_read_only(True)


async def _set_isolation(conn: Any, ctx: Context) -> None:
    await conn.set_isolation_level(psycopg.IsolationLevel.SERIALIZABLE)


async def _row_factory(conn: Any, ctx: Context) -> None:
    conn.row_factory = psycopg.rows.dict_row


@dataclass(frozen=True)
class Kind:
    name: str
    dirty: Dirty
    #: Run on a fresh connection and on B's; the results must be equal.
    probe: Probe | None = None
    #: What another session sees after B (must equal what it saw before A).
    outside: Callable[[Context], object] | None = None
    flavors: tuple[str, ...] = ("asyncpg", "psycopg")


KINDS = [
    Kind("set_role", _set_role),
    Kind("session_authorization", _session_authorization),
    Kind("search_path", _sql("SET search_path TO pg_catalog")),
    Kind("statement_timeout", _sql("SET statement_timeout = 123456")),
    Kind("lock_timeout", _sql("SET lock_timeout = 4321")),
    Kind("timezone", _sql("SET TIME ZONE 'Asia/Tokyo'")),
    Kind("datestyle", _sql("SET DateStyle = 'SQL, DMY'")),
    Kind("application_name", _sql("SET application_name = 'borrower-A'")),
    Kind("work_mem", _sql("SET work_mem = '7777kB'")),
    Kind("custom_guc", _sql("SELECT set_config('app.x', '42', false)")),
    Kind(
        "characteristics_isolation",
        _sql("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
    ),
    Kind("characteristics_read_only", _sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")),
    Kind("temp_table", _sql("CREATE TEMP TABLE sp_leak_tmp (x int)")),
    Kind("sql_prepare", _sql("PREPARE sp_leak_stmt AS SELECT 1")),
    Kind("cursor_with_hold", _sql("DECLARE sp_leak_cur CURSOR WITH HOLD FOR SELECT 1")),
    Kind("listen", _listen),
    Kind("advisory_lock", _advisory_lock),
    Kind("open_transaction", _open_transaction, _rows_probe, _rows_outside),
    Kind("failed_transaction", _failed_transaction),
    Kind(
        "role_and_temp_table_and_guc",
        _sql(
            "CREATE TEMP TABLE sp_leak_tmp2 (x int)",
            "SELECT set_config('app.x', 'tenant-7', false)",
            "SET search_path TO pg_catalog, public",
        ),
    ),
    Kind("add_listener", _add_listener, _callback_probe, flavors=("asyncpg",)),
    Kind("notify_handler", _notify_handler, _callback_probe, flavors=("psycopg",)),
    Kind("auto_prepared_statement", _auto_prepared, _prepared_probe, flavors=("psycopg",)),
    Kind("client_autocommit", _set_autocommit, flavors=("psycopg",)),
    Kind("client_read_only", _set_read_only, flavors=("psycopg",)),
    Kind("client_isolation_level", _set_isolation, flavors=("psycopg",)),
    Kind("client_row_factory", _row_factory, flavors=("psycopg",)),
]
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}
MATRIX = [
    pytest.param(name, kind.name, id=f"{name}-{kind.name}")
    for name in sorted(FLAVORS)
    for kind in KINDS
    if name in kind.flavors
]


@dataclass
class Observation:
    pid_a: int
    pid_b: int
    fresh: dict[str, Any]
    seen: dict[str, Any]

    def leaks(self) -> dict[str, tuple[Any, Any]]:
        return differences(self.seen, self.fresh)


async def second_borrower(
    pool: AsyncPool, kind: Kind, ctx: Context, purity: str | None = None
) -> Observation:
    """A dirties one kind of state and leaves; B (the only connection) looks at the session."""
    flavor = ctx.flavor
    fresh_conn = await flavor.connect()
    try:
        fresh = await fingerprint(flavor, fresh_conn)
        if kind.probe is not None:
            fresh["probe"] = await kind.probe(fresh_conn, ctx)
    finally:
        await fresh_conn.close()
    if kind.outside is not None:
        fresh["outside"] = kind.outside(ctx)

    async with pool.acquire() as a:
        pid_a = flavor.pid(a)
        await kind.dirty(a, ctx)
    async with pool.acquire(purity=purity) as b:
        pid_b = flavor.pid(b)
        seen = await fingerprint(flavor, b)
        if kind.probe is not None:
            seen["probe"] = await kind.probe(b, ctx)
    if kind.outside is not None:
        seen["outside"] = kind.outside(ctx)
    return Observation(pid_a, pid_b, fresh, seen)


@pytest.mark.parametrize(("flavor", "kind"), MATRIX, indirect=["flavor"])
async def test_full_reset_leaves_nothing_to_the_second_borrower(
    open_pool: PoolOpener, ctx: Context, kind: str
) -> None:
    pool = await open_pool(ctx.flavor.url(), min_size=1, max_size=1, reset_on_return="full")
    seen = await second_borrower(pool, KINDS_BY_NAME[kind], ctx)
    assert seen.pid_b == seen.pid_a, "the full reset is in place: B gets A's backend"
    assert seen.leaks() == {}


@pytest.mark.parametrize(("flavor", "kind"), MATRIX, indirect=["flavor"])
async def test_purity_new_gives_a_fresh_session_under_the_default_reset(
    open_pool: PoolOpener, ctx: Context, kind: str
) -> None:
    pool = await open_pool(ctx.flavor.url(), min_size=1, max_size=1)
    seen = await second_borrower(pool, KINDS_BY_NAME[kind], ctx, purity="new")
    assert seen.pid_b == seen.pid_a, "the full reset is in place: B gets A's backend"
    assert seen.leaks() == {}


# -- 3. disconnects -----------------------------------------------------------------------------


async def test_terminated_backend_is_a_disconnect_and_is_dropped(
    open_pool: PoolOpener, flavor: Flavor, pg_admin: psycopg.Connection[Any]
) -> None:
    pool = await open_pool(flavor.url(), min_size=1, max_size=1)
    assert pool.opened == 1
    seen: list[tuple[BaseException, bool]] = []
    with pytest.raises(DRIVER_ERRORS) as left:
        async with pool.acquire() as conn:
            pid = flavor.pid(conn)
            terminate(pg_admin, pid)
            try:
                await flavor.value(conn, "SELECT 1")
            except Exception as exc:
                seen.append((exc, pool.is_disconnect(exc, conn)))
                raise
    assert seen, f"a query on a terminated backend did not fail: {left.value!r}"
    error, classified = seen[0]
    assert left.value is error
    assert classified, f"not classed a disconnect: {error!r}"
    assert pool.is_disconnect(error)
    assert pool.opened == 0, "leaving `async with` with a disconnect must drop the connection"
    async with pool.acquire(timeout=5.0) as conn:
        assert flavor.pid(conn) != pid
        assert await flavor.value(conn, "SELECT 1") == 1


ERRORS = {
    "syntax": ("42601", ["SELEC 1"]),
    "unique_violation": (
        "23505",
        [
            "INSERT INTO {table} (tag) VALUES ('{tag}')",
            "INSERT INTO {table} (tag) VALUES ('{tag}')",
        ],
    ),
    "statement_timeout": ("57014", ["SET statement_timeout = 50", "SELECT pg_sleep(2)"]),
}


@pytest.mark.parametrize("error", sorted(ERRORS))
async def test_ordinary_sql_error_is_not_a_disconnect(
    open_pool: PoolOpener, flavor: Flavor, pg_table: str, error: str
) -> None:
    state, statements = ERRORS[error]
    tag = uuid.uuid4().hex
    pool = await open_pool(flavor.url(), min_size=1, max_size=1)
    seen: list[tuple[BaseException, bool]] = []
    with pytest.raises(DRIVER_ERRORS):
        async with pool.acquire() as conn:
            pid = flavor.pid(conn)
            try:
                for sql in statements:
                    await conn.execute(sql.format(table=pg_table, tag=tag))
            except Exception as exc:
                seen.append((exc, pool.is_disconnect(exc, conn)))
                raise
    assert seen, "the statement did not fail"
    exc, classified = seen[0]
    assert sqlstate(exc) == state, repr(exc)
    assert not classified, f"{exc!r} classed a disconnect"
    assert (pool.opened, pool.idle) == (1, 1), "the connection must be kept"
    async with pool.acquire() as conn:
        assert flavor.pid(conn) == pid
        assert not flavor.in_transaction(conn.driver_connection)
        assert await flavor.value(conn, "SELECT 1") == 1


# -- 4. time limits against a hung server -------------------------------------------------------


async def test_ping_is_time_bounded_on_a_hung_peer(
    open_pool: PoolOpener, make_proxy: ProxyMaker, flavor: Flavor
) -> None:
    proxy = make_proxy(PG_PORT)
    pool = await open_pool(flavor.url(port=proxy.port), min_size=1, max_size=1, reset_timeout=LIMIT)
    lease = await pool.acquire()
    assert await pool.ping(lease, timeout=LIMIT) is True
    proxy.blackhole()
    outcome, elapsed = await timed(pool.ping(lease, timeout=LIMIT))
    assert elapsed < LIMIT + MARGIN, f"ping took {elapsed:.2f} s"
    assert outcome is False or isinstance(outcome, Exception), outcome
    assert not isinstance(outcome, asyncio.TimeoutError), "only the test's guard stopped it"
    await lease.drop()


async def test_release_with_open_transaction_is_time_bounded_and_drops(
    open_pool: PoolOpener, make_proxy: ProxyMaker, flavor: Flavor
) -> None:
    proxy = make_proxy(PG_PORT)
    pool = await open_pool(flavor.url(port=proxy.port), min_size=1, max_size=1, reset_timeout=LIMIT)
    lease = await pool.acquire()
    await flavor.begin(lease)
    await flavor.run(lease, "SELECT 1", commit=False)
    assert flavor.in_transaction(lease.driver_connection)
    proxy.blackhole()
    outcome, elapsed = await timed(lease.release())
    assert outcome is None, repr(outcome)
    assert elapsed < LIMIT + MARGIN, f"release took {elapsed:.2f} s"
    assert pool.opened == 0, "a connection whose reset timed out must be dropped"
    assert pool.idle == 0 and pool.busy == 0


async def test_acquire_times_out_while_connects_hang(
    open_pool: PoolOpener, make_proxy: ProxyMaker, flavor: Flavor
) -> None:
    proxy = make_proxy(PG_PORT)
    proxy.blackhole()  # before any connection exists: every connect hangs in the handshake
    pool = await open_pool(flavor.url(port=proxy.port), lazy=True, min_size=1, max_size=1)
    outcome, elapsed = await timed(pool.acquire(timeout=LIMIT))
    assert isinstance(outcome, PoolTimeout), repr(outcome)
    assert elapsed < LIMIT + 0.2, f"acquire(timeout={LIMIT}) took {elapsed:.2f} s"
    assert pool.opened == 0 and pool.busy == 0


# -- 6. credentials -----------------------------------------------------------------------------


async def test_wrong_credentials_error_does_not_show_the_password(
    open_pool: PoolOpener, flavor: Flavor
) -> None:
    url = flavor.url(userinfo=f"nosuchuser:{CANARY}@")
    error_type = asyncpg.PostgresError if flavor.is_asyncpg else psycopg.OperationalError
    with pytest.raises(error_type) as caught:
        await open_pool(url, min_size=1, max_size=1)
    assert "nosuchuser" in str(caught.value), "the driver's own message is kept"
    for text in error_texts(caught.value):
        assert CANARY not in text


async def test_wrong_credentials_on_a_lazy_pool_acquire_do_not_show_the_password(
    open_pool: PoolOpener, flavor: Flavor
) -> None:
    pool = await open_pool(flavor.url(userinfo=f"nosuchuser:{CANARY}@"), lazy=True, max_size=1)
    outcome, _ = await timed(pool.acquire(timeout=3.0))
    assert isinstance(outcome, Exception), outcome
    for text in error_texts(outcome):
        assert CANARY not in text


async def test_repr_of_a_pool_does_not_show_the_password(
    open_pool: PoolOpener, flavor: Flavor
) -> None:
    pool = await open_pool(flavor.url(userinfo=f"app:{CANARY}@"), lazy=True, max_size=1)
    for text in (repr(pool), str(pool), pool.status(), repr(pool.stats()), str(pool.name)):
        assert CANARY not in text
    assert "app" in repr(pool)
