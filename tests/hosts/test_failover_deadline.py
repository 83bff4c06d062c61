"""Failover against the caller's time limits: a silent first host and a live second one."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

import sessionpool


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts TCP connections (kernel backlog) and never answers: a frozen server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


def test_async_psycopg_failover_with_subsecond_connect_timeout_reaches_second_host(
    silent_port: int,
) -> None:
    """docs/hosts.md: each host gets connect_timeout, and an AsyncPool gives a connect
    connect_timeout x hosts + 1 s. libpq/psycopg round a per-host timeout up to 2 s, so with
    connect_timeout=0.25 the pool abandons the walk (1.5 s) while psycopg is still waiting on
    the first host: the live second host is never tried and no connection ever opens."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{silent_port},127.0.0.1:5432/test"

    async def main() -> int:
        async with (
            sessionpool.create_async_pool(
                url, min_size=0, max_size=1, lazy=True, connect_timeout=0.25, wait_timeout=30
            ) as pool,
            pool.acquire() as conn,
        ):
            cursor = await conn.execute("SELECT current_setting('port')")
            return int((await cursor.fetchone())[0])

    assert asyncio.run(main()) == 5432


def test_sync_psycopg_failover_with_subsecond_connect_timeout_reaches_second_host(
    silent_port: int,
) -> None:
    """The control: the threaded pool lets libpq walk the list and gets there."""
    url = f"postgresql+psycopg://postgres@127.0.0.1:{silent_port},127.0.0.1:5432/test"
    with (
        sessionpool.create_pool(
            url, min_size=0, max_size=1, lazy=True, connect_timeout=0.25, wait_timeout=30
        ) as pool,
        pool.acquire() as conn,
    ):
        cursor = conn.cursor()
        cursor.execute("SELECT current_setting('port')")
        assert int(cursor.fetchone()[0]) == 5432


def test_async_pool_over_pymysql_failover_past_two_silent_hosts(silent_port: int) -> None:
    """The same budget for a blocking MySQL driver under an AsyncPool: PyMySQL takes whole
    seconds (at least 1) per host, so two silent hosts cost 2 s while the pool allows
    0.25 x 3 + 1 = 1.75 s: the live third host is never reached."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(64)
        second_silent = int(other.getsockname()[1])
        url = (
            f"mysql+pymysql://root@127.0.0.1:{silent_port},127.0.0.1:{second_silent},"
            "127.0.0.1:3306/test"
        )

        async def main() -> int:
            async with (
                sessionpool.create_async_pool(
                    url, min_size=0, max_size=1, lazy=True, connect_timeout=0.25, wait_timeout=30
                ) as pool,
                pool.acquire() as conn,
            ):
                cursor = conn.cursor()
                cursor.execute("SELECT @@port")
                return int(cursor.fetchone()[0])

        assert asyncio.run(main()) == 3306
