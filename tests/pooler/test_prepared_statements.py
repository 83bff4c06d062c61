"""Server-side prepared statements behind a transaction-mode PgBouncer, per driver.

With ``server_pooler="transaction"`` the same parameterised query runs thousands of times over
many transactions, from a pool of several client connections sharing 2 server connections,
with no error and every answer right. The controls show the setting is what makes it so: the
same drivers with their default prepared statements fail there.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import asyncpg
import psycopg
import pytest

import sessionpool
from sessionpool import AsyncPool, Pool
from tests.faults.pgbouncer import PgBouncer

THREADS = 6
ROUNDS = 150  # per thread or task: 900 transactions per driver
QUERY = {"psycopg": "SELECT %s::int + 1", "psycopg2": "SELECT %s::int + 1"}
ASYNC_QUERY = {"asyncpg": "SELECT $1::int + 1", "psycopg": "SELECT %s::int + 1"}
PREPARED_ERROR = ("prepared statement", "does not exist", "already exists")


def is_prepared_statement_error(error: BaseException) -> bool:
    text = str(error)
    return PREPARED_ERROR[0] in text and any(marker in text for marker in PREPARED_ERROR[1:])


def run_threads(pool: Pool, driver: str) -> tuple[int, Counter[str]]:
    """THREADS threads, each ROUNDS transactions of the same query on a borrowed connection;
    returns the right answers and the errors by kind."""
    right = 0
    errors: Counter[str] = Counter()
    guard = threading.Lock()

    def work(seed: int) -> None:
        nonlocal right
        for round_ in range(ROUNDS):
            value = seed * 1000 + round_
            try:
                with pool.acquire() as conn:
                    cursor = conn.cursor()
                    cursor.execute(QUERY[driver], (value,))
                    answer = cursor.fetchone()[0]
                    conn.commit()
            except Exception as exc:
                with guard:
                    errors[f"{type(exc).__name__}: {str(exc).splitlines()[0]}"] += 1
                continue
            with guard:
                if answer == value + 1:
                    right += 1
                else:
                    errors[f"wrong answer {answer} for {value}"] += 1

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    return right, errors


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_threaded_pool_in_transaction_mode(pgbouncer_transaction: PgBouncer, driver: str) -> None:
    with sessionpool.create_pool(
        pgbouncer_transaction.url(driver),
        min_size=4,
        max_size=4,
        server_pooler="transaction",
        wait_timeout=60,
    ) as pool:
        right, errors = run_threads(pool, driver)
        if driver == "psycopg":
            with pool.acquire() as conn:
                assert conn.prepare_threshold is None
    assert errors == Counter()
    assert right == THREADS * ROUNDS


async def run_tasks(pool: AsyncPool, driver: str) -> tuple[int, Counter[str]]:
    right = 0
    errors: Counter[str] = Counter()

    async def work(seed: int) -> None:
        nonlocal right
        for round_ in range(ROUNDS):
            value = seed * 1000 + round_
            try:
                async with pool.acquire() as conn:
                    if driver == "asyncpg":
                        answer = await conn.fetchval(ASYNC_QUERY[driver], value)
                    else:
                        cursor = await conn.execute(ASYNC_QUERY[driver], (value,))
                        answer = (await cursor.fetchone())[0]
                        await conn.commit()
            except Exception as exc:
                errors[f"{type(exc).__name__}: {str(exc).splitlines()[0]}"] += 1
                continue
            if answer == value + 1:
                right += 1
            else:
                errors[f"wrong answer {answer} for {value}"] += 1

    await asyncio.wait_for(asyncio.gather(*(work(seed) for seed in range(THREADS))), 120)
    return right, errors


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_async_pool_in_transaction_mode(
    pgbouncer_transaction: PgBouncer, driver: str
) -> None:
    async with sessionpool.create_async_pool(
        pgbouncer_transaction.url(driver),
        min_size=4,
        max_size=4,
        server_pooler="transaction",
        wait_timeout=60,
    ) as pool:
        right, errors = await run_tasks(pool, driver)
    assert errors == Counter()
    assert right == THREADS * ROUNDS


# -- the controls: without the setting the same drivers fail behind transaction mode --------


def alternate(first: Any, second: Any, run: Any) -> list[BaseException]:
    """Run the query on two client connections in turn, each statement its own transaction,
    so PgBouncer gives both the same server session; the errors raised."""
    errors: list[BaseException] = []
    for round_ in range(12):
        for conn in (first, second):
            try:
                run(conn, round_)
            except Exception as exc:
                errors.append(exc)
    return errors


def test_control_psycopg_prepares_fail_without_the_setting(
    pgbouncer_transaction: PgBouncer,
) -> None:
    with sessionpool.create_pool(pgbouncer_transaction.url("psycopg"), min_size=2) as pool:
        assert pool.config.server_pooler is None
        first, second = pool.acquire(), pool.acquire()
        first.autocommit = second.autocommit = True
        assert first.prepare_threshold == 5  # psycopg's default: prepares from the 6th run

        def run(conn: Any, round_: int) -> None:
            assert conn.execute(QUERY["psycopg"], (round_,)).fetchone()[0] == round_ + 1

        errors = alternate(first, second, run)
        first.release()
        second.release()
    assert errors, "psycopg's automatic prepares did not fail behind transaction mode"
    assert all(isinstance(error, psycopg.Error) for error in errors), errors
    assert any(is_prepared_statement_error(error) for error in errors), errors


async def test_control_asyncpg_cache_fails_without_the_setting(
    pgbouncer_transaction: PgBouncer,
) -> None:
    # asyncpg names each cached statement uniquely, so two clients taking turns on one server
    # session do not collide; it fails when the server session its statement was prepared
    # on is busy with another client's transaction and PgBouncer hands it the other one.
    query = "SELECT $1::int + 1, pg_backend_pid()"
    async with sessionpool.create_async_pool(
        pgbouncer_transaction.url("asyncpg"), min_size=2
    ) as pool:
        first, second = await pool.acquire(), await pool.acquire()
        errors: list[BaseException] = []
        row = await first.fetchrow(query, 0)  # prepared (named, cached) on this session
        prepared_on = row[1]
        for round_ in range(10):
            transaction = second.transaction()
            await transaction.start()
            held = await second.fetchval("SELECT pg_backend_pid()")
            try:
                await first.fetchrow(query, round_)
            except asyncpg.PostgresError as exc:
                errors.append(exc)
            await transaction.rollback()
            if held == prepared_on and errors:
                break
        await first.release()
        await second.release()
    assert errors, "asyncpg's statement cache did not fail behind transaction mode"
    assert any(is_prepared_statement_error(error) for error in errors), errors


def test_control_psycopg_with_the_setting_in_the_same_pattern(
    pgbouncer_transaction: PgBouncer,
) -> None:
    # The same alternation as the control, with the setting: no error.
    with sessionpool.create_pool(
        pgbouncer_transaction.url("psycopg"), min_size=2, server_pooler="transaction"
    ) as pool:
        first, second = pool.acquire(), pool.acquire()
        first.autocommit = second.autocommit = True

        def run(conn: Any, round_: int) -> None:
            assert conn.execute(QUERY["psycopg"], (round_,)).fetchone()[0] == round_ + 1

        errors = alternate(first, second, run)
        first.release()
        second.release()
    assert errors == []


def test_psycopg2_never_prepares_so_needs_nothing(pgbouncer_transaction: PgBouncer) -> None:
    # psycopg2 binds on the client and sends simple queries: fine even without the setting.
    with sessionpool.create_pool(
        pgbouncer_transaction.url("psycopg2"), min_size=4, max_size=4, wait_timeout=60
    ) as pool:
        right, errors = run_threads(pool, "psycopg2")
    assert errors == Counter()
    assert right == THREADS * ROUNDS


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_session_batches_in_transaction_mode(pgbouncer_transaction: PgBouncer, driver: str) -> None:
    # A session's queued writes go as one executemany (psycopg: a pipeline) inside one
    # transaction, which PgBouncer keeps on one server session.
    with sessionpool.create_pool(
        pgbouncer_transaction.url(driver), max_size=3, server_pooler="transaction"
    ) as pool:
        for _ in range(5):
            with pool.session() as session:
                session.execute("CREATE TEMP TABLE batch (x int) ON COMMIT DROP")
                for value in range(300):
                    session.add("INSERT INTO batch VALUES (%s)", (value,))
                session.flush()
                assert session.fetchone("SELECT count(*), sum(x) FROM batch") == (300, 44850)


async def test_async_session_batches_in_transaction_mode(
    pgbouncer_transaction: PgBouncer,
) -> None:
    async with sessionpool.create_async_pool(
        pgbouncer_transaction.url("asyncpg"), max_size=3, server_pooler="transaction"
    ) as pool:
        for _ in range(5):
            async with pool.session() as session:
                await session.execute("CREATE TEMP TABLE batch (x int) ON COMMIT DROP")
                for value in range(300):
                    session.add("INSERT INTO batch VALUES ($1)", (value,))
                await session.flush()
                row = await session.fetchone("SELECT count(*), sum(x) FROM batch")
                assert tuple(row) == (300, 44850)
