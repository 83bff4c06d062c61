"""A pool created without server_pooler finds a PgBouncer in front and says so, once.

Behind PgBouncer the backend pid the protocol announces is PgBouncer's own cancel key, not
the server's ``pg_backend_pid()``: each driver adapter compares the two on the pool's first
connection only. A direct connection, or a pool that names its pooler, gets no warning.
"""

from __future__ import annotations

import logging

import pytest

import sessionpool
from tests.faults.pgbouncer import PgBouncer

DIRECT = "postgresql+{driver}://postgres@127.0.0.1:5432/test"
FIX = "server_pooler='transaction'"


def pooler_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "connection pooler" in r.getMessage()]


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="sessionpool.pool")
    return caplog


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_threaded_pool_warns_once_behind_pgbouncer(
    pgbouncer_transaction: PgBouncer, warnings: pytest.LogCaptureFixture, driver: str
) -> None:
    with sessionpool.create_pool(
        pgbouncer_transaction.url(driver), min_size=3, max_size=5, name="app"
    ) as pool:
        leases = [pool.acquire() for _ in range(5)]  # two more connects: no more warnings
        for lease in leases:
            lease.release()
        assert pool.opened == 5
    found = pooler_warnings(warnings)
    assert len(found) == 1, found
    assert "pool 'app'" in found[0] and FIX in found[0] and "PgBouncer" in found[0]


# psycopg2 under an AsyncPool runs on the thread pool: the blocking adapter's check, there.
@pytest.mark.parametrize("driver", ["asyncpg", "psycopg", "psycopg2"])
async def test_async_pool_warns_once_behind_pgbouncer(
    pgbouncer_transaction: PgBouncer, warnings: pytest.LogCaptureFixture, driver: str
) -> None:
    async with sessionpool.create_async_pool(
        pgbouncer_transaction.url(driver), min_size=3, name="app"
    ) as pool:
        assert pool.opened == 3
        # The check left no transaction open and nothing prepared behind: the pool works.
        async with pool.acquire() as conn:
            if driver == "asyncpg":
                assert not conn.is_in_transaction()
            else:
                assert conn.info.transaction_status == 0  # idle (both psycopgs)
    found = pooler_warnings(warnings)
    assert len(found) == 1, found
    assert FIX in found[0]


def test_session_mode_is_found_too(
    pgbouncer_session: PgBouncer, warnings: pytest.LogCaptureFixture
) -> None:
    with sessionpool.create_pool(pgbouncer_session.url("psycopg")):
        pass
    assert len(pooler_warnings(warnings)) == 1


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_no_warning_on_a_direct_connection(warnings: pytest.LogCaptureFixture, driver: str) -> None:
    with (
        sessionpool.create_pool(DIRECT.format(driver=driver), min_size=2) as pool,
        pool.acquire() as conn,
    ):
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
    assert pooler_warnings(warnings) == []
    assert warnings.records == []


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_no_warning_on_a_direct_async_connection(
    warnings: pytest.LogCaptureFixture, driver: str
) -> None:
    async with sessionpool.create_async_pool(DIRECT.format(driver=driver), min_size=2):
        pass
    assert warnings.records == []


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_no_warning_when_the_pooler_is_named(
    pgbouncer_transaction: PgBouncer, warnings: pytest.LogCaptureFixture, mode: str
) -> None:
    with sessionpool.create_pool(pgbouncer_transaction.url("psycopg"), server_pooler=mode):
        pass
    assert pooler_warnings(warnings) == []
