"""Validation on checkout and pool-wide suspicion, against the real PostgreSQL.

The server kills every idle connection of the pool (pg_terminate_backend on its own
sessions only). With ping_interval=0 the application sees no error; with checks by age off
it sees at most one, after which every connection used before it is checked at its next
hand-out. A hung server cannot make a checked acquire overrun its deadline.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

import sessionpool
from tests.drivers.proxy import Proxy

SIZE = 4
BORROWS = 20


@pytest.fixture
def app_name() -> str:
    return f"sp_validate_{uuid.uuid4().hex[:10]}"


def terminate_all(app_name: str) -> int:
    with psycopg.connect("host=127.0.0.1 dbname=test", autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (app_name,),
        ).fetchall()
    time.sleep(0.1)  # let the backends exit
    return len(rows)


def use_every_connection(pool: sessionpool.Pool) -> set[int]:
    leases = [pool.acquire() for _ in range(SIZE)]
    pids = {lease.execute("SELECT pg_backend_pid()").fetchone()[0] for lease in leases}
    for lease in leases:
        lease.release()
    return pids


def borrow_many(pool: sessionpool.Pool) -> tuple[int, set[int]]:
    """BORROWS borrow-and-query cycles; returns (errors, backend pids seen)."""
    errors, pids = 0, set()
    for _ in range(BORROWS):
        try:
            with pool.acquire(timeout=5) as conn:
                pids.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        except psycopg.OperationalError:
            errors += 1
    return errors, pids


@pytest.fixture
def make_pool(app_name: str) -> Iterator[object]:
    pools: list[sessionpool.Pool] = []

    def factory(**settings: object) -> sessionpool.Pool:
        pool = sessionpool.create_pool(
            f"postgresql://127.0.0.1/test?application_name={app_name}",
            min_size=SIZE,
            max_size=SIZE,
            **settings,
        )
        pools.append(pool)
        return pool

    yield factory
    for pool in pools:
        pool.close(force=True)


def test_validation_on_every_checkout_hides_killed_connections(
    make_pool: object, app_name: str
) -> None:
    pool = make_pool(ping_interval=0)  # type: ignore[operator]
    before = use_every_connection(pool)
    assert terminate_all(app_name) == SIZE
    errors, pids = borrow_many(pool)
    assert errors == 0, "every killed connection was caught by the check, none handed out"
    assert not pids & before
    assert pool.opened <= SIZE


@pytest.mark.parametrize("ping_interval", [60.0, -1.0])
def test_one_disconnect_makes_every_older_connection_suspect(
    make_pool: object, app_name: str, ping_interval: float
) -> None:
    pool = make_pool(ping_interval=ping_interval)  # type: ignore[operator]
    before = use_every_connection(pool)
    assert terminate_all(app_name) == SIZE
    errors, pids = borrow_many(pool)
    assert errors == 1, "only the first borrower meets a dead connection"
    assert not pids & before, "after it, the other three were checked and dropped"


def test_a_checked_acquire_keeps_its_deadline_while_the_server_hangs(app_name: str) -> None:
    with Proxy("127.0.0.1", 5432) as proxy:
        pool = sessionpool.create_pool(
            f"postgresql://127.0.0.1:{proxy.port}/test?application_name={app_name}",
            min_size=1,
            max_size=1,
            ping_interval=0,
            ping_timeout=5,
        )
        try:
            with pool.acquire() as conn:
                conn.execute("SELECT 1")
            proxy.blackhole()
            started = time.monotonic()
            with pytest.raises(sessionpool.PoolTimeout):
                pool.acquire(timeout=0.5)
            elapsed = time.monotonic() - started
            assert elapsed < 0.5 + 0.3, elapsed
        finally:
            proxy.resume()
            pool.close(force=True)


def test_async_pool_validation_and_suspicion(app_name: str) -> None:
    async def scenario(ping_interval: float) -> int:
        pool = await sessionpool.create_async_pool(
            f"postgresql+asyncpg://127.0.0.1/test?application_name={app_name}",
            min_size=SIZE,
            max_size=SIZE,
            ping_interval=ping_interval,
        )
        try:
            leases = [await pool.acquire() for _ in range(SIZE)]
            for lease in leases:
                await lease.fetchval("SELECT 1")
                await lease.release()
            await asyncio.to_thread(terminate_all, app_name)
            errors = 0
            for _ in range(BORROWS):
                try:
                    async with pool.acquire(timeout=5) as conn:
                        await conn.fetchval("SELECT 1")
                except Exception as exc:
                    assert pool.is_disconnect(exc), repr(exc)
                    errors += 1
            return errors
        finally:
            await pool.close(force=True)

    assert asyncio.run(scenario(0)) == 0
    assert asyncio.run(scenario(-1)) == 1
