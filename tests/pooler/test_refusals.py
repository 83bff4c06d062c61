"""What server_pooler='transaction' refuses or warns about, each with the message it gives.

Settings that need a lasting server session are ConfigErrors at creation; per-call features
(tags, purity) are UsageErrors at the call; SQL needing session state is refused by sessions
before it is sent; ``on_connect`` is allowed with a warning.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import pytest

import sessionpool
from sessionpool import ConfigError, PoolConfig, UsageError
from tests.faults.pgbouncer import PgBouncer

DIRECT = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("statement", "server_pooler='statement' is not supported"),
        ("transactions", "server_pooler must be one of 'transaction', 'session' or None"),
        (1, "server_pooler must be one of"),
    ],
)
def test_unknown_modes_are_config_errors(value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        PoolConfig(server_pooler=value)  # type: ignore[arg-type]


def test_settings_needing_a_session_are_refused_in_transaction_mode() -> None:
    with pytest.raises(ConfigError, match="reset_on_return='full' cannot work with server_pool"):
        PoolConfig(server_pooler="transaction", reset_on_return="full")
    with pytest.raises(ConfigError, match="session_callback cannot work with server_pooler"):
        PoolConfig(server_pooler="transaction", session_callback=lambda *args: None)
    # Session mode is a direct connection as far as the pool can tell: all allowed.
    PoolConfig(server_pooler="session", reset_on_return="full", session_callback=print)
    # The other resets stay the borrower's choice.
    for reset in ("rollback", "commit", None, lambda conn: None):
        PoolConfig(server_pooler="transaction", reset_on_return=reset)


def test_the_setting_from_a_url_query_and_fixed_for_the_pool_life() -> None:
    with sessionpool.create_pool(f"{DIRECT}?server_pooler=transaction", min_size=0) as pool:
        assert pool.config.server_pooler == "transaction"
        with pytest.raises(ConfigError, match="server_pooler cannot change on a live pool"):
            pool.reconfigure(server_pooler=None)
        with pytest.raises(ConfigError, match="reset_on_return='full' cannot work"):
            pool.reconfigure(reset_on_return="full")
        assert pool.config.reset_on_return == "rollback"
    with pytest.raises(ConfigError, match="server_pooler='statement' is not supported"):
        sessionpool.create_pool(f"{DIRECT}?server_pooler=statement")


def test_driver_arguments_that_keep_prepares_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"prepare_threshold=5 .* server_pooler='transaction'"):
        sessionpool.create_pool(f"{DIRECT}?prepare_threshold=5", server_pooler="transaction")
    with pytest.raises(ConfigError, match=r"statement_cache_size=100 .* cannot work"):
        sessionpool.create_async_pool(
            "postgresql+asyncpg://postgres@127.0.0.1:5432/test",
            connect_args={"statement_cache_size": 100},
            server_pooler="transaction",
        )
    # Session mode takes anything.
    with (
        sessionpool.create_pool(
            f"{DIRECT}?prepare_threshold=5", server_pooler="session", min_size=1
        ) as pool,
        pool.acquire() as conn,
    ):
        assert conn.prepare_threshold == 5


async def test_asyncpg_statement_cache_size_zero_may_be_given(
    pgbouncer_transaction: PgBouncer,
) -> None:
    url = pgbouncer_transaction.url("asyncpg") + "?statement_cache_size=0"
    async with (
        sessionpool.create_async_pool(url, server_pooler="transaction") as pool,
        pool.acquire() as conn,
    ):
        assert await conn.fetchval("SELECT 41 + $1::int", 1) == 42


async def test_an_asyncpg_creator_with_a_statement_cache_is_refused(
    pgbouncer_transaction: PgBouncer,
) -> None:
    async def cached() -> Any:
        return await asyncpg.connect(pgbouncer_transaction.url("asyncpg").replace("+asyncpg", ""))

    with pytest.raises(ConfigError, match="statement_cache_size=100, which cannot work"):
        await sessionpool.create_async_pool(creator=cached, server_pooler="transaction")

    async def uncached() -> Any:
        url = pgbouncer_transaction.url("asyncpg").replace("+asyncpg", "")
        return await asyncpg.connect(url, statement_cache_size=0)

    async with (
        sessionpool.create_async_pool(creator=uncached, server_pooler="transaction") as pool,
        pool.acquire() as conn,
    ):
        assert await conn.fetchval("SELECT 41 + $1::int", 1) == 42


def test_a_psycopg_creator_has_its_prepares_turned_off(pgbouncer_transaction: PgBouncer) -> None:
    import psycopg

    with (
        sessionpool.create_pool(
            creator=lambda: psycopg.connect(pgbouncer_transaction.dsn()),
            server_pooler="transaction",
        ) as pool,
        pool.acquire() as conn,
    ):
        assert conn.prepare_threshold is None


def test_tags_and_purity_are_usage_errors(pgbouncer_transaction: PgBouncer) -> None:
    with sessionpool.create_pool(
        pgbouncer_transaction.url("psycopg"), server_pooler="transaction"
    ) as pool:
        with pytest.raises(UsageError, match="session tags cannot work with server_pooler"):
            pool.acquire(tag="TZ=UTC")
        for purity in ("new", "self"):
            with pytest.raises(UsageError, match=f"purity='{purity}' asks for a particular"):
                pool.acquire(purity=purity)
        lease = pool.acquire(purity="default")
        with pytest.raises(UsageError, match="session tags cannot work"):
            lease.release(tag="TZ=UTC")
        assert not lease.is_released  # refused before anything was given back: nothing lost
        lease.release()
        assert pool.busy == 0


async def test_async_tags_and_purity_are_usage_errors(pgbouncer_transaction: PgBouncer) -> None:
    async with sessionpool.create_async_pool(
        pgbouncer_transaction.url("asyncpg"), server_pooler="transaction"
    ) as pool:
        with pytest.raises(UsageError, match="session tags cannot work"):
            await pool.acquire(tag="TZ=UTC")
        with pytest.raises(UsageError, match="purity='self' asks for a particular"):
            await pool.acquire(purity="self")
        lease = await pool.acquire()
        with pytest.raises(UsageError, match="session tags cannot work"):
            await lease.release(tag="TZ=UTC")
        await lease.release()


def test_on_connect_is_allowed_with_one_warning(
    pgbouncer_transaction: PgBouncer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sessionpool.pool")
    calls = []
    with sessionpool.create_pool(
        pgbouncer_transaction.url("psycopg"),
        min_size=3,
        server_pooler="transaction",
        on_connect=calls.append,
    ):
        pass
    assert len(calls) == 3
    warnings = [r.getMessage() for r in caplog.records if "on_connect runs once" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "SET LOCAL" in warnings[0]
    caplog.clear()
    with sessionpool.create_pool(
        pgbouncer_transaction.url("psycopg"), server_pooler="session", on_connect=calls.append
    ):
        pass
    assert not [r for r in caplog.records if "on_connect" in r.getMessage()]
