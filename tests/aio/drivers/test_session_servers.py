"""AsyncSession against the real PostgreSQL (asyncpg, psycopg async) and MariaDB (aiomysql): a
backend killed inside a transaction, reconnect outside one, cancellation, modes put back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]
import pytest

import sessionpool
from sessionpool import AsyncPool, AsyncSession
from tests.aio.drivers.conftest import PoolOpener

URLS = {
    "asyncpg": "postgresql+asyncpg://127.0.0.1:5432/test",
    "psycopg": "postgresql+psycopg://127.0.0.1:5432/test",
    "aiomysql": "mysql+aiomysql://root@127.0.0.1:3306/test",
    # Blocking drivers, run on the pool's thread pool.
    "psycopg2-threads": "postgresql+psycopg2://127.0.0.1:5432/test",
    "pymysql-threads": "mysql+pymysql://root@127.0.0.1:3306/test",
}
PG = ("asyncpg", "psycopg", "psycopg2-threads")
#: How long a killed backend may take to be gone from the server's list. Locally it takes
#: milliseconds; 5 s only fires on a real failure, even on this noisy 2-core machine.
GONE_WITHIN = 5.0
#: "At once" for the next transaction after a kill: a local connect takes 10-50 ms here; 2 s
#: leaves room for a noisy machine and is still far below wait_timeout (5 s), which is what
#: a pool stuck on a dead connection would cost.
AT_ONCE = 2.0


@dataclass
class Setup:
    driver: str
    pool: AsyncPool
    table: str
    admin: Any  # a blocking autocommit connection of the same server (conftest's)

    def param(self, number: int) -> str:
        """The driver's placeholder for the number-th parameter."""
        return f"${number}" if self.driver == "asyncpg" else "%s"

    async def backend_id(self, session: AsyncSession) -> int:
        sql = "SELECT pg_backend_pid()" if self.driver in PG else "SELECT CONNECTION_ID()"
        return int((await session.fetchone(sql))[0])

    def admin_query(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if self.driver in PG:
            return self.admin.execute(sql, params).fetchone()
        with self.admin.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    async def kill(self, backend: int) -> None:
        """End the backend from the server side (if it is still there), and return once it
        is gone."""
        if self.driver in PG:
            # With a timeout, pg_terminate_backend waits until the backend has exited.
            self.admin_query(
                "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity WHERE pid = %s",
                (int(GONE_WITHIN * 1000), backend),
            )
            listed = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
        else:
            try:
                self.admin_query(f"KILL {int(backend)}")
            except pymysql.err.OperationalError as exc:
                if exc.args[0] != 1094:  # "Unknown thread id": gone already
                    raise
            listed = "SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID = %s"
        deadline = time.monotonic() + GONE_WITHIN
        while self.admin_query(listed, (backend,))[0]:
            assert time.monotonic() < deadline, f"backend {backend} alive {GONE_WITHIN} s on"
            await asyncio.sleep(0.01)

    def count(self) -> int:
        """Committed rows, seen by the admin connection (not through the pool under test)."""
        return int(self.admin_query(f"SELECT count(*) FROM {self.table}")[0])


@pytest.fixture(params=sorted(URLS))
def driver(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def admin(driver: str, request: pytest.FixtureRequest) -> Any:
    return request.getfixturevalue("pg_admin" if driver in PG else "my_admin")


@pytest.fixture
def table(driver: str, admin: Any) -> Iterator[str]:
    name = f"sp_async_session_{uuid.uuid4().hex[:12]}"
    ddl = f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, name VARCHAR(40))"
    if driver in PG:
        admin.execute(ddl)
        yield name
        admin.execute(f"DROP TABLE IF EXISTS {name}")
    else:
        with admin.cursor() as cursor:
            cursor.execute(ddl)
        yield name
        with admin.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
async def setup(driver: str, admin: Any, table: str, open_pool: PoolOpener) -> AsyncIterator[Setup]:
    pool = await open_pool(URLS[driver], min_size=1, max_size=2, wait_timeout=5)
    yield Setup(driver, pool, table, admin)


# -- a connection that dies -------------------------------------------------------------------


async def test_a_backend_killed_inside_a_transaction_is_transaction_lost(setup: Setup) -> None:
    pool, table = setup.pool, setup.table
    session = pool.session()
    await session.execute(f"INSERT INTO {table} VALUES (1, 'first')")
    await setup.kill(await setup.backend_id(session))
    with pytest.raises(sessionpool.TransactionLost) as caught:
        await session.execute(f"INSERT INTO {table} VALUES (2, 'second')")
    cause = caught.value.__cause__
    assert cause is not None and pool.is_disconnect(cause), repr(cause)
    # Every further use says so too, commit included: never a commit that looks successful.
    with pytest.raises(sessionpool.TransactionLost):
        await session.commit()
    with pytest.raises(sessionpool.TransactionLost):
        await session.fetch("SELECT 1")
    with pytest.raises(sessionpool.TransactionLost):
        session.add(f"INSERT INTO {table} VALUES (4, 'queued')")
    assert pool.busy == 0, pool.stats()  # the dead connection was dropped
    await session.rollback()
    # The very next use gets a fresh connection at once, and nothing was half-applied.
    started = time.monotonic()
    async with pool.session() as other:
        assert (await other.fetchone(f"SELECT count(*) FROM {table}"))[0] == 0
    await session.execute(f"INSERT INTO {table} VALUES (3, 'third')")
    await session.commit()
    elapsed = time.monotonic() - started
    assert elapsed < AT_ONCE, f"the next transaction took {elapsed:.2f} s"
    assert setup.count() == 1


async def test_a_backend_killed_before_commit_makes_commit_raise(setup: Setup) -> None:
    pool, table = setup.pool, setup.table
    session = pool.session()
    insert = f"INSERT INTO {table} VALUES ({setup.param(1)}, 'x')"
    for index in range(5):
        session.add(insert, (index,))
    await session.flush()  # one executemany, inside the transaction
    assert session.pending == 0 and session.in_transaction
    await setup.kill(await setup.backend_id(session))
    with pytest.raises(sessionpool.TransactionLost):
        await session.commit()
    assert pool.busy == 0, pool.stats()
    await session.rollback()
    assert setup.count() == 0


async def test_a_transaction_aborted_by_an_error_refuses_to_commit(setup: Setup) -> None:
    """PostgreSQL aborts the transaction at the first error and answers COMMIT with ROLLBACK
    (psycopg reports success, asyncpg a status string): the session refuses. MySQL undoes
    only the statement, so the rest commits."""
    pool, table = setup.pool, setup.table
    session = pool.session()
    await session.execute(f"INSERT INTO {table} VALUES (1, 'before the error')")
    with pytest.raises(Exception) as caught:
        await session.execute("SELECT * FROM sp_no_such_table")
    assert not pool.is_disconnect(caught.value)
    if setup.driver in PG:
        with pytest.raises(sessionpool.TransactionAborted):
            await session.commit()
        await session.rollback()
        assert setup.count() == 0
    else:
        await session.commit()
        assert setup.count() == 1


async def test_reconnect_outside_a_transaction_retries_once_on_a_fresh_connection(
    setup: Setup,
) -> None:
    pool = setup.pool
    session = pool.session(autocommit=True, reconnect=True)
    first = await setup.backend_id(session)
    await setup.kill(first)
    second = await setup.backend_id(session)  # no error: retried on a fresh connection
    assert second != first
    await session.close()
    # Without reconnect the driver's disconnect error reaches the caller (and the dead
    # connection is dropped, so the next statement works).
    plain = pool.session(autocommit=True)
    killed = await setup.backend_id(plain)
    await setup.kill(killed)
    with pytest.raises(Exception) as caught:
        await setup.backend_id(plain)
    assert not isinstance(caught.value, sessionpool.TransactionLost)
    assert pool.is_disconnect(caught.value), repr(caught.value)
    assert pool.busy == 0
    assert await setup.backend_id(plain) not in (first, second, killed)
    await plain.close()


async def test_a_statement_cancelled_inside_a_transaction_loses_it(setup: Setup) -> None:
    """A cancelled statement may leave the driver busy on the connection (asyncpg's cancel
    request, psycopg's, aiomysql's unread reply): the session drops it, and the transaction
    on it is lost, as when the connection dies."""
    pool, table = setup.pool, setup.table
    session = pool.session()
    await session.execute(f"INSERT INTO {table} VALUES (1, 'before')")
    backend = await setup.backend_id(session)
    sleep = "SELECT pg_sleep(10)" if setup.driver in PG else "SELECT SLEEP(10)"
    task = asyncio.current_task()
    assert task is not None
    # Cancelled from a callback, not asyncio.wait_for: before Python 3.12 wait_for runs
    # what it awaits as a task of its own, which the session refuses (ForeignSession).
    asyncio.get_running_loop().call_later(0.3, task.cancel)
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await session.execute(sleep)
    if hasattr(task, "uncancel"):  # 3.11+: this task goes on, as if never cancelled
        task.uncancel()
    # A cancellation ends the wait at once (asyncpg and psycopg cancel on the server;
    # aiomysql just stops reading); 3 s is far below the 10 s sleep.
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"the cancellation took {elapsed:.2f} s"
    assert pool.busy == 0, pool.stats()  # dropped, not given back mid-command
    with pytest.raises(sessionpool.TransactionLost) as caught:
        await session.execute("SELECT 1")
    assert isinstance(caught.value.__cause__, asyncio.CancelledError)
    await session.rollback()
    # MariaDB goes on sleeping on the abandoned connection, holding the row's locks (and so
    # does PostgreSQL under a blocking driver, whose thread cannot be interrupted).
    await setup.kill(backend)
    assert await setup.backend_id(session) != backend
    await session.commit()
    assert setup.count() == 0


# -- scopes and modes on each driver ----------------------------------------------------------


async def test_scopes_roll_back_on_error_and_nest_as_savepoints(setup: Setup) -> None:
    """asyncpg opens no transaction by itself: the session sends BEGIN, so the scope's
    rollback and the savepoints work there as with the DB-API drivers."""
    pool, table = setup.pool, setup.table
    with pytest.raises(RuntimeError):
        async with pool.session() as session:
            await session.execute(f"INSERT INTO {table} VALUES (1, 'undone')")
            raise RuntimeError("boom")
    assert setup.count() == 0
    async with pool.session() as session:
        await session.execute(f"INSERT INTO {table} VALUES (2, 'outer')")
        with pytest.raises(ValueError):
            async with session:
                await session.execute(f"INSERT INTO {table} VALUES (3, 'inner, undone')")
                raise ValueError
        async with session.savepoint():
            session.add(f"INSERT INTO {table} VALUES ({setup.param(1)}, 'kept')", (4,))
        rows = await session.fetch(f"SELECT id FROM {table} ORDER BY id")
        assert [row[0] for row in rows] == [2, 4]
        assert setup.count() == 0  # not committed yet
    assert setup.count() == 2 and pool.busy == 0


async def isolation(setup: Setup, session: AsyncSession) -> str:
    sql = "SHOW transaction_isolation" if setup.driver in PG else "SELECT @@SESSION.tx_isolation"
    return str((await session.fetchone(sql))[0]).replace("-", " ").lower()


async def test_isolation_and_autocommit_are_put_back_on_return(setup: Setup) -> None:
    pool, table = setup.pool, setup.table
    await pool.resize(min_size=1, max_size=1)  # the next borrower gets the same connection
    async with pool.session() as session:
        default = await isolation(setup, session)
        connection_id = await setup.backend_id(session)
    async with pool.session(isolation_level="serializable", autocommit=False) as session:
        assert await isolation(setup, session) == "serializable"
    async with pool.session() as session:
        assert await isolation(setup, session) == default
    async with pool.session(autocommit=True) as session:
        await session.execute(f"INSERT INTO {table} VALUES (7, 'auto')")
        assert not session.in_transaction
        assert setup.count() == 1  # committed by itself
    # The next plain session is transactional again: its failed scope leaves nothing.
    with pytest.raises(RuntimeError):
        async with pool.session() as session:
            await session.execute(f"INSERT INTO {table} VALUES (8, 'undone')")
            assert session.in_transaction
            assert await setup.backend_id(session) == connection_id  # the same connection
            raise RuntimeError
    assert setup.count() == 1, "autocommit leaked to the next session"
    if setup.driver != "asyncpg":  # asyncpg has no autocommit switch to look at
        async with pool.acquire() as conn:
            raw: Any = conn.driver_connection
            getter = getattr(raw, "get_autocommit", None)
            assert not (getter() if getter else raw.autocommit), "autocommit leaked"


async def test_fetch_returns_rows_and_execute_what_the_driver_returns(setup: Setup) -> None:
    pool, table = setup.pool, setup.table
    async with pool.session() as session:
        await session.executemany(
            f"INSERT INTO {table} VALUES ({setup.param(1)}, {setup.param(2)})",
            [(1, "a"), (2, "b")],
        )
        rows = await session.fetch(f"SELECT id, name FROM {table} ORDER BY id")
        assert isinstance(rows, list) and [tuple(row) for row in rows] == [(1, "a"), (2, "b")]
        row = await session.fetchone(f"SELECT name FROM {table} WHERE id = {setup.param(1)}", (2,))
        assert row is not None and row[0] == "b"
        assert await session.fetchone(f"SELECT name FROM {table} WHERE id = 99") is None
        result = await session.execute(f"UPDATE {table} SET name = 'c' WHERE id = 1")
        if setup.driver == "asyncpg":
            assert result == "UPDATE 1"  # asyncpg's status: it has no cursors
        else:
            assert result.rowcount == 1
    assert setup.count() == 2


async def test_asyncpg_refuses_named_parameters(open_pool: PoolOpener) -> None:
    pool = await open_pool(URLS["asyncpg"], min_size=1, max_size=1)
    session = pool.session()
    with pytest.raises(sessionpool.UsageError, match=r"positional parameters \(\$1"):
        await session.execute("SELECT $1", {"x": 1})
    await session.rollback()
    assert pool.busy == 0
