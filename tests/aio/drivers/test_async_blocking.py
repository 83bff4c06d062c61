"""AsyncPool over blocking DB-API drivers, run on the pool's bounded thread pool.

psycopg2, PyMySQL and sqlite3 named in a URL, and a psycopg2 ``blocking_creator``: borrow,
query with the driver's own (synchronous) calls on the lease, return; the full reset and
purity="new" leave nothing to the next borrower; the pool's own connects never block the loop.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.extensions
import pymysql
import pytest

from sessionpool import AsyncLease, AsyncPool
from tests.aio.drivers.conftest import HOST, MY_PORT, PG_PORT, PoolOpener


def query(conn: Any, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` with the driver's blocking calls (on a lease or a driver connection)."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        if cursor.description is None:
            return []
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def outcome(conn: Any, sql: str) -> object:
    """The rows, or the error's type name when the statement fails (then rolled back)."""
    try:
        return query(conn, sql)
    except (psycopg2.Error, pymysql.MySQLError, sqlite3.Error) as exc:
        conn.rollback()
        return ("error", type(exc).__name__)


@dataclass
class Env:
    tmp_path: Path
    pg_role: str
    my_role: str

    @property
    def sqlite_path(self) -> Path:
        return self.tmp_path / "blocking.db"


@dataclass(frozen=True)
class Case:
    """One blocking driver: how the pool is made, how to open a fresh connection directly,
    what borrower A leaves, what B and a fresh connection are asked."""

    name: str
    driver_type: type
    pool_args: Callable[[Env], dict[str, Any]]
    fresh: Callable[[Env], Any]
    dirty: Callable[[Any, Env], None]
    probe: Callable[[Any], object]
    #: The session's identity (backend pid, CONNECTION_ID, the sqlite3 object).
    ident: Callable[[Any], object]


def _pg_connect() -> Any:
    return psycopg2.connect(host=HOST, port=PG_PORT, dbname="test")


def _pg_dirty(conn: Any, env: Env) -> None:
    query(conn, f'SET ROLE "{env.pg_role}"')
    query(conn, "CREATE TEMP TABLE sp_blocking_tmp (x int)")
    query(conn, "SELECT set_config('app.x', 'tenant-7', false)")
    conn.commit()
    assert query(conn, "SELECT current_user")[0][0] == env.pg_role
    conn.rollback()


def _pg_probe(conn: Any) -> object:
    seen = query(
        conn,
        "SELECT current_user::text, coalesce(current_setting('app.x', true), ''), "
        "(SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())::int",
    )
    conn.rollback()
    return seen


def _pg_ident(conn: Any) -> object:
    raw = conn.driver_connection if isinstance(conn, AsyncLease) else conn
    return raw.get_backend_pid()


def _my_connect() -> Any:
    return pymysql.connect(host=HOST, port=MY_PORT, user="root", database="test")


def _my_dirty(conn: Any, env: Env) -> None:
    query(conn, f"SET ROLE {env.my_role}")
    query(conn, "CREATE TEMPORARY TABLE sp_blocking_tmp (i INT)")
    query(conn, "SET @x = 42")
    assert query(conn, "SELECT CURRENT_ROLE()")[0][0] == env.my_role


def _my_probe(conn: Any) -> object:
    return (
        query(conn, "SELECT CURRENT_ROLE(), @x, @@session.autocommit"),
        outcome(conn, "SELECT COUNT(*) FROM sp_blocking_tmp"),
    )


def _my_ident(conn: Any) -> object:
    return query(conn, "SELECT CONNECTION_ID()")[0][0]


def _sqlite_connect(env: Env) -> Any:
    return sqlite3.connect(env.sqlite_path)


def _sqlite_dirty(conn: Any, env: Env) -> None:
    conn.execute("CREATE TEMP TABLE scratch (y)")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("INSERT INTO t VALUES (99)")  # left open


def _sqlite_probe(conn: Any) -> object:
    return (
        query(conn, "SELECT type, name FROM temp.sqlite_master ORDER BY 1, 2"),
        query(conn, "PRAGMA foreign_keys"),
        query(conn, "SELECT x FROM t ORDER BY x"),
        conn.in_transaction,
    )


def _sqlite_ident(conn: Any) -> object:
    return id(conn.driver_connection if isinstance(conn, AsyncLease) else conn)


CASES = {
    "psycopg2_url": Case(
        "psycopg2_url",
        psycopg2.extensions.connection,
        lambda env: {"url": f"postgresql+psycopg2://{HOST}:{PG_PORT}/test"},
        lambda env: _pg_connect(),
        _pg_dirty,
        _pg_probe,
        _pg_ident,
    ),
    "psycopg2_blocking_creator": Case(
        "psycopg2_blocking_creator",
        psycopg2.extensions.connection,
        lambda env: {"blocking_creator": _pg_connect},
        lambda env: _pg_connect(),
        _pg_dirty,
        _pg_probe,
        _pg_ident,
    ),
    "pymysql_url": Case(
        "pymysql_url",
        pymysql.connections.Connection,
        lambda env: {"url": f"mysql+pymysql://root@{HOST}:{MY_PORT}/test"},
        lambda env: _my_connect(),
        _my_dirty,
        _my_probe,
        _my_ident,
    ),
    "sqlite3_url": Case(
        "sqlite3_url",
        sqlite3.Connection,
        lambda env: {"url": f"sqlite+sqlite3:///{env.sqlite_path}"},
        _sqlite_connect,
        _sqlite_dirty,
        _sqlite_probe,
        _sqlite_ident,
    ),
}


@pytest.fixture(scope="module")
def my_role(my_admin: Any) -> Iterator[str]:
    name = f"sp_async_brole_{uuid.uuid4().hex[:12]}"
    with my_admin.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name}")
    yield name
    with my_admin.cursor() as cursor:
        cursor.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture
def env(tmp_path: Path, pg_role: str, my_role: str) -> Env:
    made = Env(tmp_path, pg_role, my_role)
    conn = sqlite3.connect(made.sqlite_path)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    conn.close()
    return made


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


async def make(open_pool: PoolOpener, case: Case, env: Env, **settings: Any) -> AsyncPool:
    arguments = case.pool_args(env)
    url = arguments.pop("url", None)
    return await open_pool(url, **arguments, **settings)


async def test_acquire_query_release_with_blocking_calls(
    open_pool: PoolOpener, case: Case, env: Env
) -> None:
    pool = await make(open_pool, case, env, min_size=1, max_size=2)
    assert (pool.opened, pool.idle) == (1, 1)
    assert "thread pool" in repr(pool)
    async with pool.acquire() as conn:
        assert isinstance(conn, AsyncLease)
        assert isinstance(conn.driver_connection, case.driver_type)
        assert query(conn, "SELECT 40 + 2") == [(42,)]
        assert pool.busy == 1
        assert await pool.ping(conn) is True
    assert (pool.opened, pool.idle, pool.busy) == (1, 1, 0)
    lease = await pool.acquire(timeout=2.0)
    assert query(lease, "SELECT 7") == [(7,)]
    await lease.release()
    assert (pool.idle, pool.busy) == (1, 0)


async def _second_borrower(
    pool: AsyncPool, case: Case, env: Env, purity: str | None
) -> tuple[object, object, object, object]:
    """(A's session, B's session, what B sees, what a fresh connection sees)."""
    fresh_conn = case.fresh(env)
    try:
        fresh = case.probe(fresh_conn)
    finally:
        fresh_conn.close()
    async with pool.acquire() as a:
        ident_a = case.ident(a)
        case.dirty(a, env)
    async with pool.acquire(purity=purity) as b:
        ident_b = case.ident(b)
        seen = case.probe(b)
    return ident_a, ident_b, seen, fresh


async def test_full_reset_leaves_nothing_to_the_second_borrower(
    open_pool: PoolOpener, case: Case, env: Env
) -> None:
    pool = await make(open_pool, case, env, min_size=1, max_size=1, reset_on_return="full")
    ident_a, ident_b, seen, fresh = await _second_borrower(pool, case, env, None)
    assert ident_b == ident_a, "the full reset is in place for these drivers"
    assert seen == fresh


async def test_purity_new_gives_a_fresh_session_under_the_default_reset(
    open_pool: PoolOpener, case: Case, env: Env
) -> None:
    pool = await make(open_pool, case, env, min_size=1, max_size=1)
    ident_a, ident_b, seen, fresh = await _second_borrower(pool, case, env, "new")
    assert ident_b == ident_a, "the full reset is in place for these drivers"
    assert seen == fresh


# -- the event loop is never blocked by the pool's own connects ---------------------------------

CONNECT_DELAY = 0.3


def _slow_connect() -> Any:
    time.sleep(CONNECT_DELAY)  # a connect that blocks its thread, as a slow network would
    return psycopg2.connect(host=HOST, port=PG_PORT, dbname="test")


async def test_opening_with_a_slow_blocking_creator_does_not_block_the_loop(
    open_pool: PoolOpener,
) -> None:
    loop = asyncio.get_running_loop()
    napped: list[float] = []

    async def nap() -> None:
        await asyncio.sleep(0.01)  # let the pool's opening start first
        started = loop.time()
        await asyncio.sleep(0.05)
        napped.append(loop.time() - started)

    napper = asyncio.ensure_future(nap())
    started = loop.time()
    pool = await open_pool(blocking_creator=_slow_connect, min_size=4, max_size=4)
    opened_in = loop.time() - started
    await napper
    assert pool.opened == 4
    assert opened_in >= CONNECT_DELAY, "the creator was not called while opening"
    assert napped[0] < 0.2, f"a 0.05 s sleep took {napped[0]:.3f} s while the pool opened"
    # The four connects ran side by side on the thread pool, not one after the other.
    assert opened_in < 3 * CONNECT_DELAY, f"opening 4 took {opened_in:.2f} s"


async def test_acquire_that_opens_with_a_slow_blocking_creator_does_not_block_the_loop(
    open_pool: PoolOpener,
) -> None:
    pool = await open_pool(blocking_creator=_slow_connect, lazy=True, min_size=0, max_size=1)
    loop = asyncio.get_running_loop()
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(loop.time())
            await asyncio.sleep(0.01)

    ticking = asyncio.ensure_future(ticker())
    try:
        async with pool.acquire(timeout=5.0) as conn:
            assert query(conn, "SELECT 1") == [(1,)]
    finally:
        ticking.cancel()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) >= 10, f"only {len(ticks)} ticks during a {CONNECT_DELAY} s connect"
    assert max(gaps) < 0.1, f"the loop stalled for {max(gaps):.3f} s"
