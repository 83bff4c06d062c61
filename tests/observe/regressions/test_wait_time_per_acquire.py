"""README: "`wait_time` has exactly one value per successful acquire" (and `acquires` is
"connections handed out"). A connection that fails its check before hand-out is counted as
an acquire (and as a 0 s wait) though the caller never got it."""

from __future__ import annotations

from pathlib import Path

import pytest

import sessionpool


def _dead_idle_connection(pool: sessionpool.Pool) -> None:
    with pool.acquire(timeout=5) as lease:
        raw = lease.driver_connection
    raw.close()  # the server side went away while it sat idle


def test_threaded_failed_check_counts_an_extra_acquire(tmp_path: Path) -> None:
    pool = sessionpool.create_pool(
        f"sqlite:///{tmp_path / 'w.db'}", min_size=0, max_size=2, lazy=True, ping_interval=0
    )
    try:
        _dead_idle_connection(pool)  # successful acquire no. 1
        with pool.acquire(timeout=5) as lease:  # no. 2: the idle one is dead, a new one opens
            lease.execute("select 1")
        stats = pool.stats()
        assert stats.ping_failures == 1  # the scenario happened
        assert stats.wait_time.count == 2, (stats.acquires, stats.wait_time.count)
        assert stats.acquires == 2
    finally:
        pool.close(force=True)


@pytest.mark.asyncio
async def test_async_failed_check_counts_an_extra_acquire(tmp_path: Path) -> None:
    pool = await sessionpool.create_async_pool(
        f"sqlite:///{tmp_path / 'a.db'}", min_size=0, max_size=2, lazy=True, ping_interval=0
    )
    try:
        async with pool.acquire(timeout=5) as lease:
            raw = lease.driver_connection
        await raw.close()
        async with pool.acquire(timeout=5) as lease:
            await lease.execute("select 1")
        stats = pool.stats()
        assert stats.ping_failures == 1
        assert stats.wait_time.count == 2, (stats.acquires, stats.wait_time.count)
        assert stats.acquires == 2
    finally:
        await pool.close(force=True)
