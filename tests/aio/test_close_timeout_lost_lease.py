"""AsyncPool.close(timeout=t) with a lease garbage-collected while lent: the worker takes it
back within a tick, so close() returns then instead of waiting the whole grace period."""

from __future__ import annotations

import asyncio
import gc

from tests.aio.conftest import AsyncPoolFactory
from tests.fakes.fake_dbapi import FakeDatabase


async def test_async_close_timeout_takes_back_a_lost_lease(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    await asyncio.sleep(0.3)  # the worker's first round (due at start) is over
    kept = await pool.acquire()
    await pool.acquire()  # lost at once
    gc.collect()
    loop = asyncio.get_running_loop()
    loop.call_later(0.2, lambda: asyncio.ensure_future(kept.release()))
    t0 = loop.time()
    await pool.close(timeout=5.0)
    took = loop.time() - t0
    assert took < 2.0, f"close(timeout=5) took {took:.2f} s; reclaimed={pool.stats().reclaimed}"
