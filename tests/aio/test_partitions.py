"""Partitions in the AsyncPool: the same rules as the threaded pool's (tests/sync)."""

from __future__ import annotations

import pytest

import sessionpool
from tests.aio.conftest import AsyncPoolFactory


async def test_partitions_isolate_sessions_and_cap_each(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=0, max_size=6, max_per_partition=2)
    async with pool.acquire(partition="a") as conn:
        first = conn.driver_connection
    async with pool.acquire(partition="b") as conn:
        assert conn.driver_connection is not first
    held = [await pool.acquire(partition="a") for _ in range(2)]
    assert first in [lease.driver_connection for lease in held]
    with pytest.raises(sessionpool.PoolTimeout):
        await pool.acquire(partition="a", timeout=0.1)
    with pytest.raises(sessionpool.PoolExhausted):
        await pool.acquire(partition="a", when_exhausted="fail")
    async with pool.acquire(timeout=1.0):
        pass
    for lease in held:
        await lease.release()
    assert pool.opened == 4 and pool.busy == 0
