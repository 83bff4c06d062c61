"""Shared fixtures and helpers of the AsyncPool tests: fake databases, pool factory, polling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

import sessionpool
from sessionpool import AsyncLease, AsyncPool
from tests.fakes.fake_async import AsyncFakeDatabase
from tests.fakes.fake_dbapi import FakeDatabase

#: Seconds any helper waits for something that should happen almost at once.
PATIENCE = 2.0
#: A password no message or repr may ever show.
CANARY = "s3cr3t-canary"


async def wait_until(predicate: Callable[[], object], timeout: float = PATIENCE) -> bool:
    """Poll predicate (yielding to the loop) until true or timeout seconds passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if predicate():
            return True
        if loop.time() >= deadline:
            return bool(predicate())
        await asyncio.sleep(0.002)


async def eventually(predicate: Callable[[], object], what: str, timeout: float = PATIENCE) -> None:
    """Assert that predicate becomes true within timeout seconds."""
    assert await wait_until(predicate, timeout), f"not within {timeout} s: {what}"


async def start_waiter(pool: AsyncPool, **acquire_args: Any) -> asyncio.Task[AsyncLease]:
    """Start a task awaiting pool.acquire(**acquire_args) and return once it is queued."""
    acquire_args.setdefault("timeout", 5.0)
    before = pool.waiting

    async def acquire() -> AsyncLease:
        return await pool.acquire(**acquire_args)

    task = asyncio.ensure_future(acquire())
    await eventually(lambda: pool.waiting > before or task.done(), "the waiter queued")
    assert not task.done(), f"the waiter did not wait: {task!r}"
    return task


async def wait_for_waiting(pool: AsyncPool, count: int) -> None:
    await eventually(lambda: pool.waiting == count, f"{count} waiting (now {pool.waiting})")


async def settle(pool: AsyncPool) -> None:
    """Wait until no open, reset or close the pool started is still running."""
    await eventually(
        lambda: pool.opening == 0 and not pool._tasks, "the pool's background tasks finished"
    )


async def assert_consistent(
    pool: AsyncPool, db: FakeDatabase, leases_out: int | None = None
) -> None:
    """Check the pool's figures agree with each other and with the connections really open.

    Call it when nobody waits. ``leases_out``: the leases the test holds (busy must equal it).
    """
    await settle(pool)
    core = pool._core
    stats = pool.stats()
    assert core.busy >= 0 and core.idle >= 0 and core.opening >= 0, stats
    assert core.busy + core.idle == core.opened == stats.opened, stats
    if core.cap is not None:
        assert core.busy + core.idle + core.opening <= core.cap, stats
    if leases_out is not None:
        assert core.busy == leases_out, (stats, leases_out)
    assert core.waiting == 0, stats
    assert stats.connections_opened - stats.connections_closed == stats.opened, stats
    await eventually(
        lambda: db.open_connections == pool.opened,
        f"driver connections open ({db.open_connections}) == pool.opened ({pool.opened})",
    )


AsyncPoolFactory = Callable[..., Awaitable[AsyncPool]]


@pytest.fixture
def db() -> Iterator[FakeDatabase]:
    with FakeDatabase() as database:  # releases any (threading) hang, even on failure
        yield database


@pytest.fixture
def adb(db: FakeDatabase) -> Iterator[AsyncFakeDatabase]:
    fake = AsyncFakeDatabase(db)
    yield fake
    fake.release_hangs()


@pytest.fixture
async def make_async_pool(
    adb: AsyncFakeDatabase,
) -> AsyncIterator[AsyncPoolFactory]:
    """``await make_async_pool(**settings)``: create_async_pool over adb.connect (or the
    creator given), force-closed after the test. wait_timeout defaults to 5 s here."""
    pools: list[AsyncPool] = []

    async def factory(creator: Any = None, **settings: Any) -> AsyncPool:
        settings.setdefault("wait_timeout", 5.0)
        opening = sessionpool.create_async_pool(
            creator if creator is not None else adb.connect, **settings
        )
        pools.append(opening._pool)  # closed at teardown even if opening fails half-way
        return await opening

    yield factory
    adb.release_hangs()
    for pool in pools:
        await pool.close(force=True)
