"""AsyncPool against the fake async driver: the semantics tests/sync checks for the threaded Pool.

Sizing, lazy start, when_exhausted modes, deadlines, FIFO service, tags, per-user connections,
reset on return, purity, drop, misuse of leases, close, the factory, figures, one loop per pool.
The fake driver is unknown to sessionpool, so the generic AsyncDriver handles it: a rollback
coroutine on return (always, since it cannot tell whether a transaction is open), close() to
close, and a full reset is a reopen.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Callable
from typing import Any

import pytest

import sessionpool
from sessionpool import AsyncLease, AsyncPool
from tests.aio.conftest import (
    CANARY,
    AsyncPoolFactory,
    assert_consistent,
    eventually,
    settle,
    start_waiter,
    wait_for_waiting,
    wait_until,
)
from tests.fakes.fake_async import AsyncFakeConnection, AsyncFakeDatabase
from tests.fakes.fake_dbapi import FakeDatabase, OperationalError

#: Slack allowed past a deadline (the brief: within timeout + 50 ms).
SLACK = 0.05


async def use(lease: AsyncLease) -> None:
    """Run a statement on the lease (opens a transaction on the fake connection)."""
    await lease.execute("insert into t values (1)")


def raw_of(lease: AsyncLease) -> AsyncFakeConnection:
    """The lease's driver connection, read without marking the session used."""
    slot = lease._slot
    assert slot is not None
    connection: AsyncFakeConnection = slot.connection
    return connection


async def warm_up(pool: AsyncPool) -> AsyncFakeConnection:
    """One borrow-and-use cycle; returns the driver connection used."""
    lease = await pool.acquire()
    driver: AsyncFakeConnection = lease.driver_connection
    await use(lease)
    await lease.release()
    return driver


async def tagged_connection(pool: AsyncPool, tag: str) -> int:
    """Borrow a connection, give it back tagged, and return its id."""
    lease = await pool.acquire()
    conn_id: int = raw_of(lease).id
    await lease.release(tag=tag)
    return conn_id


# == sizing ==================================================================================


async def test_min_size_is_opened_at_creation(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=3, max_size=5)
    assert db.connects == 3
    assert (pool.opened, pool.idle, pool.busy) == (3, 3, 0)
    await assert_consistent(pool, db, leases_out=0)


async def test_initial_fill_opens_concurrently(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase
) -> None:
    adb.connect_delay = 0.2
    started = time.monotonic()
    pool = await make_async_pool(min_size=4, max_size=4)
    elapsed = time.monotonic() - started
    assert pool.opened == 4
    assert 0.2 <= elapsed < 0.4, elapsed  # one after another would take 0.8 s


async def test_initial_fill_opens_min_size_not_a_whole_increment(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=8, increment=4)
    await settle(pool)
    assert db.connects == 1
    assert pool.opened == 1


async def test_acquiring_beyond_min_size_opens_more(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=3)
    leases = [await pool.acquire(timeout=2.0) for _ in range(3)]
    assert len({raw_of(lease).id for lease in leases}) == 3
    assert (pool.opened, pool.busy, pool.idle) == (3, 3, 0)
    await assert_consistent(pool, db, leases_out=3)
    for lease in leases:
        await lease.release()
    assert (pool.opened, pool.busy, pool.idle) == (3, 0, 3)
    await assert_consistent(pool, db, leases_out=0)


async def test_max_size_is_never_exceeded_without_overflow(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=2, when_exhausted="fail")
    first, second = await pool.acquire(timeout=2.0), await pool.acquire(timeout=2.0)
    with pytest.raises(sessionpool.PoolExhausted):
        await pool.acquire()
    assert pool.opened == 2 and db.connects == 2
    await first.release()
    await second.release()
    await assert_consistent(pool, db, leases_out=0)


async def test_increment_opens_its_connections_concurrently(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=8, increment=4)
    adb.connect_delay = 0.2
    started = time.monotonic()
    lease = await pool.acquire(timeout=2.0)
    await eventually(lambda: pool.opened == 4, "an increment of 4 connections opened")
    elapsed = time.monotonic() - started
    assert db.connects == 4
    assert elapsed < 0.4, elapsed  # one after another would take 0.8 s
    assert (pool.busy, pool.idle) == (1, 3)
    await lease.release()
    await assert_consistent(pool, db, leases_out=0)


async def test_increment_is_clipped_to_max_size(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=3, increment=5)
    lease = await pool.acquire(timeout=2.0)
    await settle(pool)
    assert pool.opened == 3
    assert db.connects == 3
    await lease.release()


async def test_no_growth_while_idle_connections_serve(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=2, max_size=10, increment=2)
    for _ in range(20):
        await (await pool.acquire(timeout=2.0)).release()
    assert db.connects == 2
    assert pool.opened == 2


async def test_overflow_opens_beyond_max_size_and_closes_on_release(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=2, max_overflow=2, when_exhausted="fail")
    leases = [await pool.acquire(timeout=2.0) for _ in range(4)]
    assert pool.opened == 4
    assert pool.overflow() == 2
    with pytest.raises(sessionpool.PoolExhausted):
        await pool.acquire()
    drivers = [raw_of(lease) for lease in leases]
    await leases[0].release()
    await settle(pool)
    assert drivers[0].closed, "an overflow connection returned with nobody waiting is closed"
    assert pool.opened == 3
    await leases[1].release()
    await settle(pool)
    assert drivers[1].closed
    assert (pool.opened, pool.idle) == (2, 0)
    await leases[2].release()
    await leases[3].release()
    assert not drivers[2].closed and not drivers[3].closed
    assert (pool.opened, pool.idle) == (2, 2)
    await assert_consistent(pool, db, leases_out=0)


async def test_overflow_connection_goes_to_a_waiter_instead_of_closing(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=1, max_overflow=1)
    first, second = await pool.acquire(timeout=2.0), await pool.acquire(timeout=2.0)
    waiter = await start_waiter(pool, timeout=2.0)
    second_driver = raw_of(second)
    await second.release()
    served = await asyncio.wait_for(waiter, 2.0)
    assert raw_of(served) is second_driver
    assert not second_driver.closed
    await served.release()
    await first.release()
    assert pool.opened == 1
    await assert_consistent(pool, db, leases_out=0)


async def test_unbounded_overflow(make_async_pool: AsyncPoolFactory, db: FakeDatabase) -> None:
    pool = await make_async_pool(min_size=0, max_size=2, max_overflow=-1, when_exhausted="fail")
    leases = [await pool.acquire(timeout=2.0) for _ in range(25)]
    assert pool.opened == 25
    assert pool.stats().hard_cap is None
    for lease in leases:
        await lease.release()
    assert pool.opened == 2
    await assert_consistent(pool, db, leases_out=0)
    assert db.open_connections == 2


async def test_opened_never_exceeds_the_cap_under_contention(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    cap = 4
    adb.connect_delay = 0.005
    pool = await make_async_pool(min_size=0, max_size=3, max_overflow=1, increment=2)
    highest = 0
    failures: list[BaseException] = []
    running = True

    def sample() -> None:
        nonlocal highest
        highest = max(highest, pool.opened + pool.opening, db.open_connections)

    async def borrower() -> None:
        for _ in range(15):
            try:
                async with pool.acquire(timeout=2.0) as conn:
                    sample()
                    await conn.execute("select 1")
                    await asyncio.sleep(0.001)
            except BaseException as exc:
                failures.append(exc)

    async def sampler() -> None:
        while running:
            sample()
            await asyncio.sleep(0)

    watcher = asyncio.ensure_future(sampler())
    await asyncio.wait_for(asyncio.gather(*(borrower() for _ in range(10))), 10.0)
    running = False
    await watcher
    assert failures == []
    assert 1 <= highest <= cap, highest
    await assert_consistent(pool, db, leases_out=0)


# == lazy start ==============================================================================


async def test_lazy_pool_opens_nothing_until_first_acquire(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=2, max_size=4, lazy=True)
    await asyncio.sleep(0.02)
    assert db.connects == 0
    assert (pool.opened, pool.idle, pool.opening) == (0, 0, 0)
    lease = await pool.acquire(timeout=2.0)
    assert db.connects >= 1
    await eventually(lambda: pool.opened == 2, "min_size kept once started")
    await lease.release()
    await assert_consistent(pool, db, leases_out=0)


# == when_exhausted and deadlines ============================================================


async def test_timeout_none_waits_past_the_configured_wait_timeout(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, wait_timeout=0.05)
    held = await pool.acquire()
    waiter = await start_waiter(pool, timeout=None)
    assert not await wait_until(waiter.done, timeout=0.3)
    assert pool.waiting == 1
    held_driver = raw_of(held)
    await held.release()
    served = await asyncio.wait_for(waiter, 2.0)
    assert raw_of(served) is held_driver
    await served.release()


async def test_wait_is_the_default_mode(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    held = await pool.acquire()
    waiter = await start_waiter(pool, timeout=2.0)
    await held.release()
    await (await asyncio.wait_for(waiter, 2.0)).release()
    assert pool.stats().waits == 1


async def test_fail_mode_raises_pool_exhausted_at_once(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=0, max_size=2, when_exhausted="fail")
    held = [await pool.acquire(timeout=2.0), await pool.acquire(timeout=2.0)]
    started = time.monotonic()
    with pytest.raises(sessionpool.PoolExhausted) as caught:
        await pool.acquire()
    assert time.monotonic() - started < SLACK
    message = str(caught.value)
    assert "2 busy" in message and "max_size 2" in message, message
    assert pool.stats().exhausted == 1
    assert pool.waiting == 0
    for lease in held:
        await lease.release()


async def test_fail_mode_per_call(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    held = await pool.acquire()
    with pytest.raises(sessionpool.PoolExhausted):
        await pool.acquire(when_exhausted="fail")
    await held.release()


async def test_fail_mode_still_opens_below_the_cap(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2, when_exhausted="fail")
    first = await pool.acquire()
    second = await pool.acquire(timeout=2.0)
    assert raw_of(first) is not raw_of(second)
    assert db.connects == 2
    await first.release()
    await second.release()


async def test_force_opens_beyond_the_cap_and_closes_it_on_release(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, when_exhausted="force")
    held = await pool.acquire()
    extra = await pool.acquire(timeout=2.0)
    assert raw_of(extra) is not raw_of(held)
    assert pool.opened == 2 and pool.busy == 2
    extra_driver = raw_of(extra)
    await extra.release()
    await settle(pool)
    assert extra_driver.closed
    assert pool.opened == 1
    await held.release()
    assert (pool.opened, pool.idle) == (1, 1)
    await assert_consistent(pool, db, leases_out=0)


async def test_force_per_call(make_async_pool: AsyncPoolFactory, db: FakeDatabase) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    held = await pool.acquire()
    extra = await pool.acquire(when_exhausted="force", timeout=2.0)
    assert pool.opened == 2
    await held.release()
    await extra.release()
    assert pool.opened == 1
    await assert_consistent(pool, db, leases_out=0)


async def test_configured_wait_timeout_raises_pool_timeout_on_time(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, wait_timeout=0.2)
    held = await pool.acquire()
    started = time.monotonic()
    with pytest.raises(sessionpool.PoolTimeout) as caught:
        await pool.acquire()
    elapsed = time.monotonic() - started
    assert 0.2 - 0.005 <= elapsed < 0.2 + SLACK, elapsed
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, sessionpool.Error)
    assert "0.2" in str(caught.value) and "max_size 1" in str(caught.value)
    assert caught.value.__cause__ is None, "no connect failed: nothing to chain"
    assert pool.stats().timeouts == 1
    assert pool.waiting == 0
    await held.release()


async def test_per_call_timeout_overrides_wait_timeout(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, wait_timeout=5.0)
    held = await pool.acquire()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await pool.acquire(timeout=0.15)
    elapsed = time.monotonic() - started
    assert 0.15 - 0.005 <= elapsed < 0.15 + SLACK, elapsed
    await held.release()


async def test_zero_timeout_does_not_wait(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    held = await pool.acquire()
    started = time.monotonic()
    with pytest.raises(sessionpool.PoolTimeout):
        await pool.acquire(timeout=0)
    assert time.monotonic() - started < SLACK
    assert pool.waiting == 0
    await held.release()


@pytest.mark.parametrize("hang", ["async hang", "slow connect", "threaded hang"])
async def test_timeout_is_a_deadline_while_connects_hang(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase, hang: str
) -> None:
    pool = await make_async_pool(min_size=0, max_size=2)
    if hang == "async hang":
        adb.hang_connects()
    elif hang == "slow connect":
        adb.connect_delay = 1.0
    else:
        db.hang_connects()
    try:
        started = time.monotonic()
        with pytest.raises(sessionpool.PoolTimeout) as caught:
            await pool.acquire(timeout=0.3)
        elapsed = time.monotonic() - started
        assert 0.3 - 0.005 <= elapsed < 0.3 + 0.1, elapsed
        assert caught.value.__cause__ is None
        assert pool.waiting == 0
    finally:
        adb.release_hangs()
    await eventually(lambda: pool.opening == 0, "the late connect finished")
    # Nobody wants the late connection any more: it is kept idle, not lent.
    assert (pool.busy, pool.idle, pool.opened) == (0, 1, 1)
    await assert_consistent(pool, db, leases_out=0)


async def test_timeout_is_chained_to_the_last_connect_error(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    held = await pool.acquire()
    db.fail_all_connects(OperationalError("server is down"))
    adb.connect_delay = 0.15
    # The pool has opened before, so a failing server is an outage: no waiter is failed by
    # a failed connect; each times out at its own deadline, chained to the connect error,
    # while the pool retries one connect at a time.
    first = await start_waiter(pool, timeout=0.6)
    started = time.monotonic()
    with pytest.raises(sessionpool.PoolTimeout) as caught:
        await pool.acquire(timeout=0.25)
    elapsed = time.monotonic() - started
    assert 0.25 - 0.005 <= elapsed < 0.25 + SLACK, elapsed
    cause = caught.value.__cause__
    assert isinstance(cause, OperationalError), repr(cause)
    assert "server is down" in str(cause)
    assert "does not accept connections" in str(caught.value)
    with pytest.raises(sessionpool.PoolTimeout) as caught_first:
        await asyncio.wait_for(first, 2.0)
    assert isinstance(caught_first.value.__cause__, OperationalError)
    db.accept_connects()
    adb.connect_delay = 0.0
    await settle(pool)
    await held.release()
    await assert_consistent(pool, db, leases_out=0)


async def test_purity_new_acquire_keeps_its_deadline_while_the_reopen_hangs(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    await warm_up(pool)  # used: purity="new" must reopen it (generic driver)
    adb.hang_connects(max_wait=2.0)
    try:
        started = time.monotonic()
        with pytest.raises(sessionpool.PoolTimeout):
            await pool.acquire(purity="new", timeout=0.3)
        elapsed = time.monotonic() - started
        assert elapsed < 0.3 + 0.1, elapsed
    finally:
        adb.release_hangs()
    await settle(pool)
    assert pool.busy == 0
    await assert_consistent(pool, db, leases_out=0)


async def test_waiters_are_served_in_fifo_order(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    held = await pool.acquire()
    served: asyncio.Queue[tuple[int, AsyncLease]] = asyncio.Queue()

    async def waiter(index: int) -> None:
        served.put_nowait((index, await pool.acquire(timeout=5.0)))

    tasks = []
    for index in range(6):
        tasks.append(asyncio.ensure_future(waiter(index)))
        await wait_for_waiting(pool, index + 1)
    order = []
    current = held
    for _ in range(6):
        await current.release()
        # The connection went straight to the oldest waiter: none left idle for a barger.
        assert pool.idle == 0
        index, current = await asyncio.wait_for(served.get(), 2.0)
        order.append(index)
    await current.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 2.0)
    assert order == list(range(6))
    assert pool.stats().handoffs == 6


async def test_tasks_started_together_are_served_in_the_order_they_queued(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=2, max_size=2)
    held = [await pool.acquire(), await pool.acquire()]
    order: list[int] = []

    async def waiter(index: int) -> None:
        async with pool.acquire(timeout=5.0):
            order.append(index)
            await asyncio.sleep(0.001)

    # Created in one go: tasks start, and so queue, in creation order.
    tasks = [asyncio.ensure_future(waiter(index)) for index in range(10)]
    await wait_for_waiting(pool, 10)
    for lease in held:
        await lease.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 5.0)
    assert order == list(range(10))


async def test_fifo_with_several_connections(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=3, max_size=3)
    held = [await pool.acquire() for _ in range(3)]
    served: asyncio.Queue[tuple[int, AsyncLease]] = asyncio.Queue()

    async def waiter(index: int) -> None:
        served.put_nowait((index, await pool.acquire(timeout=5.0)))

    tasks = []
    for index in range(5):
        tasks.append(asyncio.ensure_future(waiter(index)))
        await wait_for_waiting(pool, index + 1)
    order = []
    for lease in held:
        await lease.release()
        order.append(await asyncio.wait_for(served.get(), 2.0))
    assert [index for index, _ in order] == [0, 1, 2]
    assert pool.waiting == 2
    for _, lease in order[:2]:
        await lease.release()
        order.append(await asyncio.wait_for(served.get(), 2.0))
    assert [index for index, _ in order] == [0, 1, 2, 3, 4]
    for _, lease in order[2:]:
        await lease.release()
    await asyncio.gather(*tasks)


async def test_a_barging_caller_does_not_overtake_a_waiter(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    held = await pool.acquire()
    waiter = await start_waiter(pool, timeout=2.0)
    await held.release()
    assert not waiter.done(), "granted, but not yet resumed"
    with pytest.raises(sessionpool.PoolExhausted):
        await pool.acquire(when_exhausted="fail")
    await (await asyncio.wait_for(waiter, 2.0)).release()


async def test_timed_out_waiters_receive_and_leak_nothing(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=2, max_size=2)
    held = [await pool.acquire(), await pool.acquire()]
    waiters = [await start_waiter(pool, timeout=0.15) for _ in range(3)]
    for waiter in waiters:
        with pytest.raises(sessionpool.PoolTimeout):
            await asyncio.wait_for(waiter, 2.0)
    assert (pool.busy, pool.idle, pool.opened, pool.waiting) == (2, 0, 2, 0)
    assert pool.stats().timeouts == 3
    for lease in held:
        await lease.release()
    assert (pool.busy, pool.idle, pool.opened) == (0, 2, 2)
    assert len(db.connections) == 2
    await assert_consistent(pool, db, leases_out=0)
    again = [
        await pool.acquire(when_exhausted="fail"),
        await pool.acquire(when_exhausted="fail"),
    ]
    assert {raw_of(lease).id for lease in again} == {1, 2}
    for lease in again:
        await lease.release()


@pytest.mark.parametrize("when", ["while waiting", "just after being served"])
async def test_a_cancelled_waiter_keeps_nothing(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase, when: str
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    held = await pool.acquire()
    waiter = await start_waiter(pool, timeout=5.0)
    if when == "just after being served":
        await held.release()  # granted to the waiter, which has not resumed yet
        assert pool.busy == 1 and not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert pool.waiting == 0
    if when == "while waiting":
        assert pool.busy == 1
        await held.release()
    assert (pool.busy, pool.idle, pool.opened) == (0, 1, 1)
    lease = await pool.acquire(when_exhausted="fail")
    await lease.release()
    await assert_consistent(pool, db, leases_out=0)


ATTEMPTS = 300


async def test_timed_out_waiters_racing_releases_never_lose_a_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=2, max_size=2)
    stop = False
    outcomes = {"served": 0, "timed_out": 0}
    problems: list[BaseException] = []

    async def releaser(me: str) -> None:
        while not stop:
            try:
                lease = await pool.acquire(timeout=2.0)
                raw = raw_of(lease).raw
                raw.enter_borrow(me)
                await asyncio.sleep(0.0005)
                raw.exit_borrow(me)
                await lease.release()
            except BaseException as exc:
                problems.append(exc)
                return

    async def impatient(me: str) -> None:
        for attempt in range(ATTEMPTS):
            try:
                lease = await pool.acquire(timeout=0.0005 * (attempt % 4))
            except sessionpool.PoolTimeout:
                outcomes["timed_out"] += 1
                continue
            except BaseException as exc:
                problems.append(exc)
                return
            try:
                raw = raw_of(lease).raw
                raw.enter_borrow(me)
                await asyncio.sleep(0)
                raw.exit_borrow(me)
                await lease.release()
            except BaseException as exc:
                problems.append(exc)
                return
            outcomes["served"] += 1

    releasers = [asyncio.ensure_future(releaser(f"releaser-{i}")) for i in range(2)]
    await asyncio.wait_for(asyncio.gather(*(impatient(f"impatient-{i}") for i in range(6))), 20.0)
    stop = True
    await asyncio.wait_for(asyncio.gather(*releasers), 5.0)
    assert problems == []
    assert outcomes["served"] + outcomes["timed_out"] == 6 * ATTEMPTS
    assert outcomes["timed_out"] > 0, "the race was not exercised"
    stats = pool.stats()
    assert stats.waits == stats.handoffs + stats.timeouts, stats
    assert (pool.busy, pool.idle, pool.opened, pool.waiting) == (0, 2, 2, 0)
    assert len(db.connections) == 2
    await assert_consistent(pool, db, leases_out=0)


async def test_forced_open_that_fails_reaches_the_caller(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, when_exhausted="force")
    held = await pool.acquire()
    db.fail_next_connects(1, OperationalError("too many connections"))
    with pytest.raises(OperationalError, match="too many"):
        await pool.acquire(timeout=2.0)
    assert (pool.opened, pool.busy, pool.waiting) == (1, 1, 0)
    await held.release()
    await assert_consistent(pool, db, leases_out=0)


async def test_forced_waiter_that_times_out_leaks_nothing(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, when_exhausted="force")
    held = await pool.acquire()
    adb.hang_connects()
    try:
        with pytest.raises(sessionpool.PoolTimeout):
            await pool.acquire(timeout=0.1)
        assert await adb.wait_for_hanging(1)
    finally:
        adb.release_hangs()
    await eventually(lambda: len(db.connections) == 2 and pool.opening == 0, "forced open done")
    # Nobody wants the late connection, and it is beyond the cap: it is closed.
    await eventually(lambda: db.connections[1].closed, "the late forced connection closed")
    assert (pool.opened, pool.busy, pool.idle, pool.waiting) == (1, 1, 0, 0)
    await held.release()
    await assert_consistent(pool, db, leases_out=0)


async def test_failed_connect_after_success_fails_no_waiter_and_all_are_served(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=3)
    held = await pool.acquire()
    adb.hang_connects()
    try:
        first = await start_waiter(pool, timeout=2.0)
        second = await start_waiter(pool, timeout=2.0)
        assert await adb.wait_for_hanging(2)
        db.fail_next_connects(1, OperationalError("refused"))
    finally:
        adb.release_hangs()
    # The pool has opened before: the refused connect is an outage, not the waiter's error.
    # The retry (50 ms later) serves whoever still waits.
    outcomes = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 2.0)
    served = [outcome for outcome in outcomes if isinstance(outcome, AsyncLease)]
    assert len(served) == 2, outcomes
    assert pool.stats().connect_errors == 1
    for lease in served:
        await lease.release()
    await held.release()
    await assert_consistent(pool, db, leases_out=0)


async def test_failed_connect_reaches_the_waiter(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=2)
    db.fail_next_connects(1, OperationalError("no route to host"))
    with pytest.raises(OperationalError, match="no route"):
        await pool.acquire(timeout=2.0)
    assert pool.stats().connect_errors == 1
    lease = await pool.acquire(timeout=2.0)
    await lease.release()
    await assert_consistent(pool, db, leases_out=0)


# == tags ====================================================================================


async def test_acquire_by_tag_returns_the_tagged_connection(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=2, max_size=4)
    plain = await pool.acquire()
    tagged_id = await tagged_connection(pool, "k1=v1;k2=v2")
    lease = await pool.acquire(tag="k1=v1;k2=v2")
    assert raw_of(lease).id == tagged_id
    assert lease.tag == "k1=v1;k2=v2"
    await lease.release()
    await plain.release()


async def test_tag_pair_order_and_spacing_do_not_matter(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=2, max_size=4)
    tagged_id = await tagged_connection(pool, "k1=v1;k2=v2")
    lease = await pool.acquire(tag=" k2=v2 ; k1=v1 ")
    assert raw_of(lease).id == tagged_id
    assert lease.tag == "k1=v1;k2=v2"
    await lease.release()


async def test_untagged_connection_is_preferred_over_a_new_one(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=2, max_size=4)
    held = await pool.acquire()
    other_id = await tagged_connection(pool, "a=1")
    held_id = raw_of(held).id
    await held.release()
    lease = await pool.acquire(tag="b=2")
    assert raw_of(lease).id == held_id, "an untagged connection serves a request for a tag"
    assert lease.tag is None
    assert db.connects == 2
    await lease.release()
    assert other_id != held_id


async def test_without_matchanytag_a_new_connection_is_opened(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=4)
    tagged_id = await tagged_connection(pool, "a=1")
    lease = await pool.acquire(tag="b=2", timeout=2.0)
    assert raw_of(lease).id != tagged_id
    assert lease.tag is None
    assert db.connects == 2
    assert pool.idle == 1  # the "a=1" connection is still there
    await lease.release()


async def test_matchanytag_falls_back_to_another_tag(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=4)
    tagged_id = await tagged_connection(pool, "a=1")
    lease = await pool.acquire(tag="b=2", matchanytag=True)
    assert raw_of(lease).id == tagged_id
    assert lease.tag == "a=1"
    assert db.connects == 1
    await lease.release()


async def test_matchanytag_still_prefers_the_exact_tag(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=3, max_size=3)
    leases = [await pool.acquire() for _ in range(3)]
    ids = [raw_of(lease).id for lease in leases]
    await leases[0].release(tag="a=1")
    await leases[1].release(tag="b=2")
    await leases[2].release()
    lease = await pool.acquire(tag="b=2", matchanytag=True)
    assert raw_of(lease).id == ids[1]
    await lease.release()


async def test_tagged_request_at_the_cap_replaces_a_connection_of_another_tag(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    tagged_id = await tagged_connection(pool, "a=1")
    lease = await pool.acquire(tag="b=2", timeout=2.0)
    assert raw_of(lease).id != tagged_id
    await settle(pool)
    assert db.connections[0].closed
    assert pool.opened == 1
    await lease.release()
    await assert_consistent(pool, db, leases_out=0)


async def test_untagged_request_accepts_a_tagged_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=4)
    tagged_id = await tagged_connection(pool, "a=1")
    lease = await pool.acquire()
    assert raw_of(lease).id == tagged_id
    assert lease.tag == "a=1"
    assert db.connects == 1
    await lease.release()


async def test_release_keeps_the_tag_unless_told_otherwise(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    tagged_id = await tagged_connection(pool, "a=1")
    lease = await pool.acquire(tag="a=1")
    await lease.release()
    again = await pool.acquire(tag="a=1")
    assert raw_of(again).id == tagged_id and again.tag == "a=1"
    again.tag = None
    await again.release()
    plain = await pool.acquire()
    assert plain.tag is None
    await plain.release()


@pytest.mark.parametrize("how", ["pool.release", "lease.release", "lease.tag", "lease.close"])
async def test_retag_on_release(make_async_pool: AsyncPoolFactory, how: str) -> None:
    pool = await make_async_pool(min_size=2, max_size=2)
    other = await pool.acquire()
    lease = await pool.acquire()
    conn_id = raw_of(lease).id
    if how == "pool.release":
        await pool.release(lease, tag="b=2;a=1")
    elif how == "lease.release":
        await lease.release(tag="b=2;a=1")
    elif how == "lease.close":
        await lease.close(tag="b=2;a=1")
    else:
        lease.tag = "b=2;a=1"
        await lease.release()
    await other.release()
    again = await pool.acquire(tag="a=1;b=2")
    assert raw_of(again).id == conn_id
    assert again.tag == "a=1;b=2"
    await again.release()


async def test_retagging_a_tagged_connection(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    conn_id = await tagged_connection(pool, "a=1")
    lease = await pool.acquire(tag="a=1")
    await lease.release(tag="a=2")
    fresh = await pool.acquire(tag="a=1", timeout=2.0)
    assert raw_of(fresh).id != conn_id, "the connection no longer carries a=1"
    again = await pool.acquire(tag="a=2")
    assert raw_of(again).id == conn_id
    await fresh.release()
    await again.release()


async def test_malformed_tag_is_a_usage_error(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    with pytest.raises(sessionpool.UsageError, match="tag"):
        await pool.acquire(tag="novalue")
    with pytest.raises(sessionpool.UsageError, match="tag"):
        await pool.acquire(tag=5)  # type: ignore[arg-type]
    assert pool.busy == 0


@pytest.mark.parametrize("how", ["pool.release", "lease.release", "lease.tag"])
async def test_malformed_tag_on_release_loses_no_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase, how: str
) -> None:
    bad_tag = "novalue"
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire()
    await use(lease)
    with pytest.raises(sessionpool.UsageError, match="tag"):
        if how == "pool.release":
            await pool.release(lease, tag=bad_tag)
        elif how == "lease.release":
            await lease.release(tag=bad_tag)
        else:
            lease.tag = bad_tag
            await lease.release()
    if not lease.is_released:
        lease.tag = None
        await lease.release()
    assert (pool.busy, pool.idle, pool.opened) == (0, 1, 1)
    again = await pool.acquire(timeout=0.5)
    await again.release()
    await assert_consistent(pool, db, leases_out=0)


class CallbackRecorder:
    """A session_callback, plain or coroutine, that records its calls."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, str | None, str | None]] = []
        self.fail = fail

    def record(self, conn: Any, requested: str | None, actual: str | None) -> None:
        self.calls.append((conn, requested, actual))
        if self.fail:
            raise RuntimeError("session state could not be set")

    def sync(self, conn: Any, requested: str | None, actual: str | None) -> None:
        self.record(conn, requested, actual)

    async def coroutine(self, conn: Any, requested: str | None, actual: str | None) -> None:
        await asyncio.sleep(0.001)
        if requested is not None:
            await conn.execute(f"set session tag {requested}")
        self.record(conn, requested, actual)

    def callback(self, kind: str) -> Callable[..., Any]:
        return self.sync if kind == "sync" else self.coroutine


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_session_callback_runs_when_the_tag_differs(
    make_async_pool: AsyncPoolFactory, kind: str
) -> None:
    recorder = CallbackRecorder()
    pool = await make_async_pool(min_size=1, max_size=2, session_callback=recorder.callback(kind))
    lease = await pool.acquire(tag="b=2;a=1")
    assert len(recorder.calls) == 1
    conn, requested, actual = recorder.calls[0]
    assert conn is lease
    assert (requested, actual) == ("a=1;b=2", None)
    if kind == "async":
        assert raw_of(lease).statements[-1].sql == "set session tag a=1;b=2"
    await lease.release(tag="a=1;b=2")

    await (await pool.acquire(tag="a=1;b=2")).release()
    assert len(recorder.calls) == 1, "no callback when the tag matches"

    lease = await pool.acquire(tag="c=3", matchanytag=True)
    assert recorder.calls[-1][1:] == ("c=3", "a=1;b=2")
    await lease.release(tag="")  # untag
    await (await pool.acquire()).release()
    assert len(recorder.calls) == 2, "no callback for an untagged request of an untagged one"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_session_callback_is_called_for_an_untagged_request_given_a_tagged_session(
    make_async_pool: AsyncPoolFactory, kind: str
) -> None:
    recorder = CallbackRecorder()
    pool = await make_async_pool(min_size=1, max_size=2, session_callback=recorder.callback(kind))
    await tagged_connection(pool, "a=1")
    recorder.calls.clear()
    lease = await pool.acquire()
    assert [call[1:] for call in recorder.calls] == [(None, "a=1")]
    await lease.release()


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_raising_session_callback_drops_the_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase, kind: str
) -> None:
    recorder = CallbackRecorder(fail=True)
    pool = await make_async_pool(min_size=1, max_size=2, session_callback=recorder.callback(kind))
    with pytest.raises(RuntimeError, match="session state"):
        await pool.acquire(tag="a=1")
    assert len(recorder.calls) == 1
    await settle(pool)
    assert db.connections[0].closed
    recorder.fail = False
    lease = await pool.acquire(tag="a=1", timeout=2.0)
    assert raw_of(lease).id != 1
    await lease.release()
    assert pool.busy == 0
    await assert_consistent(pool, db, leases_out=0)


# == per-user connections ====================================================================


async def test_homogeneous_pool_refuses_credentials(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    attempts: list[dict[str, Any]] = [
        {"user": "a", "password": CANARY},
        {"user": "a"},
        {"password": CANARY},
    ]
    for kwargs in attempts:
        with pytest.raises(sessionpool.UsageError) as caught:
            await pool.acquire(**kwargs)
        assert "homogeneous" in str(caught.value)
        assert CANARY not in str(caught.value)
    assert pool.busy == 0
    assert db.connects == 1


async def test_per_user_acquire_opens_for_that_user(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=4, homogeneous=False)
    assert db.connections[0].kwargs == {}, "the pool's own connections get no credentials"
    lease = await pool.acquire(user="a", password="pa", timeout=2.0)
    assert raw_of(lease).kwargs == {"user": "a", "password": "pa"}
    assert lease.user == "a"
    conn_id = raw_of(lease).id
    await lease.release()
    again = await pool.acquire(user="a", password="pa")
    assert raw_of(again).id == conn_id, "the idle connection of user a is reused"
    await again.release()
    assert db.connects == 2


async def test_a_user_never_gets_another_users_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=6, homogeneous=False)
    for user in ("a", "b", "a", "c", "b"):
        lease = await pool.acquire(user=user, password=f"p{user}", timeout=2.0)
        assert lease.user == user
        assert raw_of(lease).kwargs["password"] == f"p{user}"
        await lease.release()
    assert sorted(conn.user for conn in db.connections) == ["a", "b", "c"]
    plain = await pool.acquire(timeout=2.0)
    assert plain.user is None, "a plain acquire never gets a per-user connection"
    await plain.release()
    assert db.connects == 4


async def test_password_without_user_is_refused(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=0, max_size=2, homogeneous=False)
    with pytest.raises(sessionpool.UsageError) as caught:
        await pool.acquire(password=CANARY)
    assert CANARY not in str(caught.value)


async def test_a_new_password_never_reuses_the_old_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=4, homogeneous=False)
    old = await pool.acquire(user="a", password="old", timeout=2.0)
    old_id = raw_of(old).id
    await old.release()
    new = await pool.acquire(user="a", password="new", timeout=2.0)
    assert raw_of(new).id != old_id
    assert raw_of(new).kwargs == {"user": "a", "password": "new"}
    await new.release()
    assert db.connects == 2


async def test_limits_apply_to_the_whole_pool(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=2, homogeneous=False)
    held = [
        await pool.acquire(user="a", password="pa", timeout=2.0),
        await pool.acquire(user="b", password="pb", timeout=2.0),
    ]
    with pytest.raises(sessionpool.PoolExhausted):
        await pool.acquire(user="c", password="pc", when_exhausted="fail")
    with pytest.raises(sessionpool.PoolTimeout):
        await pool.acquire(user="a", password="pa", timeout=0.1)
    with pytest.raises(sessionpool.PoolTimeout):
        await pool.acquire(timeout=0.1)
    assert pool.opened == 2 and db.connects == 2
    for lease in held:
        await lease.release()


async def test_a_waiter_for_one_user_is_served_by_eviction_when_another_returns(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=1, homogeneous=False)
    held = await pool.acquire(user="a", password="pa", timeout=2.0)
    waiter = await start_waiter(pool, user="b", password="pb", timeout=2.0)
    await held.release()
    served = await asyncio.wait_for(waiter, 2.0)
    assert served.user == "b"
    await settle(pool)
    assert db.connections[0].closed
    assert pool.opened == 1
    await served.release()
    await assert_consistent(pool, db, leases_out=0)


# == reset on return, on_connect, purity =====================================================


async def test_rollback_is_the_default_reset(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    driver = await warm_up(pool)
    before = driver.rollbacks
    lease = await pool.acquire()
    await use(lease)
    assert driver.in_transaction
    await lease.release()
    assert driver.rollbacks == before + 1
    assert not driver.in_transaction
    assert driver.commits == 0


async def test_an_untouched_lease_skips_the_reset(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    driver = await warm_up(pool)
    before = driver.rollbacks
    adb.rollback_delay = 1.0  # a reset would show in the time as well
    started = time.monotonic()
    for _ in range(3):
        await (await pool.acquire()).release()
        async with pool.acquire():
            pass
        async with pool.acquire(tag="a=1") as lease:
            lease.tag = None
    assert time.monotonic() - started < 0.5
    assert driver.rollbacks == before


async def test_attribute_access_counts_as_use(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    driver = await warm_up(pool)
    before = driver.rollbacks
    lease = await pool.acquire()
    _ = lease.in_transaction
    await lease.release()
    assert driver.rollbacks == before + 1


async def test_commit_reset(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, reset_on_return="commit")
    driver = await warm_up(pool)
    before = driver.commits
    lease = await pool.acquire()
    await use(lease)
    await lease.release()
    assert driver.commits == before + 1
    assert driver.rollbacks == 0
    assert not driver.in_transaction


async def test_no_reset(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, reset_on_return=None)
    lease = await pool.acquire()
    driver = raw_of(lease)
    await use(lease)
    await lease.release()
    assert (driver.rollbacks, driver.commits) == (0, 0)
    assert driver.in_transaction


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_callable_reset_gets_the_driver_connection(
    make_async_pool: AsyncPoolFactory, kind: str
) -> None:
    seen: list[Any] = []

    async def async_reset(conn: Any) -> None:
        await asyncio.sleep(0.001)
        seen.append(conn)

    reset: Any = seen.append if kind == "sync" else async_reset
    pool = await make_async_pool(min_size=1, max_size=1, reset_on_return=reset)
    lease = await pool.acquire()
    driver = raw_of(lease)
    await use(lease)
    await lease.release()
    assert seen == [driver]
    lease = await pool.acquire()
    await use(lease)
    await lease.release()
    assert seen == [driver, driver]
    assert (driver.rollbacks, driver.commits) == (0, 0)
    assert pool.idle == 1


@pytest.mark.parametrize("reset", ["rollback", "commit", "callable", "async callable"])
async def test_failing_reset_drops_the_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase, reset: str
) -> None:
    def broken(conn: Any) -> None:
        raise OperationalError("reset failed")

    async def async_broken(conn: Any) -> None:
        await asyncio.sleep(0)
        raise OperationalError("reset failed")

    setting: Any = {"callable": broken, "async callable": async_broken}.get(reset, reset)
    pool = await make_async_pool(min_size=0, max_size=2, reset_on_return=setting)
    lease = await pool.acquire(timeout=2.0)
    driver = raw_of(lease)
    await use(lease)
    if reset == "rollback":
        db.fail_rollback(1)
    elif reset == "commit":
        db.fail_commit(1)
    await lease.release()
    assert lease.is_released
    await settle(pool)
    assert driver.closed
    assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
    await assert_consistent(pool, db, leases_out=0)
    again = await pool.acquire(timeout=2.0)
    assert raw_of(again) is not driver
    await again.release()


@pytest.mark.parametrize("kind", ["rollback", "async callable"])
async def test_a_reset_overrunning_reset_timeout_drops_the_connection(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase, kind: str
) -> None:
    async def slow_reset(conn: Any) -> None:
        await asyncio.sleep(5.0)

    setting: Any = slow_reset if kind == "async callable" else "rollback"
    pool = await make_async_pool(min_size=0, max_size=1, reset_on_return=setting, reset_timeout=0.2)
    lease = await pool.acquire(timeout=2.0)
    driver = raw_of(lease)
    await use(lease)
    adb.rollback_delay = 5.0
    started = time.monotonic()
    await lease.release()
    assert time.monotonic() - started < 0.2 + SLACK
    adb.rollback_delay = 0.0
    await settle(pool)
    assert driver.closed
    assert pool.opened == 0
    await assert_consistent(pool, db, leases_out=0)


async def test_a_killed_connection_is_dropped_when_its_reset_fails(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire()
    driver = raw_of(lease)
    db.kill(driver.raw)
    with pytest.raises(OperationalError, match="connection lost"):
        await use(lease)
    await lease.release()  # the rollback fails on the dead connection: dropped
    await eventually(lambda: pool.opened == 1 and pool.opening == 0, "min_size restored")
    assert driver.closed
    async with pool.acquire() as fresh:
        assert raw_of(fresh) is not driver
        await use(fresh)
    await assert_consistent(pool, db, leases_out=0)


async def test_failing_reset_with_a_waiter_serves_it_a_new_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire()
    await use(lease)
    waiter = await start_waiter(pool, timeout=2.0)
    db.fail_rollback(1)
    await lease.release()
    served = await asyncio.wait_for(waiter, 2.0)
    assert raw_of(served).id == 2
    await settle(pool)
    assert db.connections[0].closed
    await served.release()
    await assert_consistent(pool, db, leases_out=0)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_on_connect_runs_once_per_new_connection(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, kind: str
) -> None:
    seen: list[Any] = []

    def sync_on_connect(conn: Any) -> None:
        seen.append(conn)

    async def async_on_connect(conn: Any) -> None:
        await conn.execute("set search_path to app")
        seen.append(conn)

    on_connect = sync_on_connect if kind == "sync" else async_on_connect
    pool = await make_async_pool(min_size=2, max_size=4, on_connect=on_connect)
    assert seen == adb.connections[:2]
    leases = [await pool.acquire(timeout=2.0) for _ in range(4)]
    for lease in leases:
        await lease.release()
    for _ in range(5):
        await (await pool.acquire()).release()
    assert len(adb.connections) == 4
    assert sorted(conn.id for conn in seen) == [1, 2, 3, 4]
    assert all(isinstance(conn, AsyncFakeConnection) for conn in seen)
    if kind == "async":
        # What on_connect left open was ended before the connection was lent.
        assert all(not conn.in_transaction and conn.rollbacks >= 1 for conn in seen)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_failing_on_connect_is_a_failed_open_for_the_waiter(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase, kind: str
) -> None:
    calls: list[Any] = []

    def sync_on_connect(conn: Any) -> None:
        calls.append(conn)
        if len(calls) == 1:
            raise ValueError("cannot set session state")

    async def async_on_connect(conn: Any) -> None:
        await asyncio.sleep(0)
        sync_on_connect(conn)

    on_connect = sync_on_connect if kind == "sync" else async_on_connect
    pool = await make_async_pool(min_size=0, max_size=2, on_connect=on_connect)
    with pytest.raises(ValueError, match="session state"):
        await pool.acquire(timeout=2.0)
    await settle(pool)
    assert db.connections[0].closed
    stats = pool.stats()
    assert stats.connect_errors == 1
    assert stats.opened == 0 and stats.connections_opened == 0
    lease = await pool.acquire(timeout=2.0)
    assert raw_of(lease).id == 2
    await lease.release()
    await assert_consistent(pool, db, leases_out=0)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_failing_on_connect_fails_create_async_pool(
    adb: AsyncFakeDatabase, db: FakeDatabase, kind: str
) -> None:
    def sync_on_connect(conn: Any) -> None:
        raise ValueError("cannot set session state")

    async def async_on_connect(conn: Any) -> None:
        await asyncio.sleep(0)
        raise ValueError("cannot set session state")

    on_connect = sync_on_connect if kind == "sync" else async_on_connect
    with pytest.raises(ValueError, match="session state"):
        await sessionpool.create_async_pool(
            adb.connect, min_size=2, max_size=2, on_connect=on_connect
        )
    assert len(db.connections) == 2
    assert db.open_connections == 0


async def test_full_reset_reopens_a_used_connection_for_the_generic_driver(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    setups: list[Any] = []
    pool = await make_async_pool(
        min_size=1, max_size=1, reset_on_return="full", on_connect=setups.append
    )
    first = await warm_up(pool)
    await settle(pool)
    assert first.closed, "the used connection is closed, its replacement takes its slot"
    lease = await pool.acquire()
    second = raw_of(lease)
    assert second is not first and not second.closed
    assert setups == [first, second], "on_connect runs again on the replacement"
    await lease.release()
    assert (pool.opened, pool.idle, pool.busy) == (1, 1, 0)
    await assert_consistent(pool, db, leases_out=0)


async def test_full_reset_skips_an_untouched_lease(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, reset_on_return="full")
    await warm_up(pool)
    connects = db.connects
    for _ in range(3):
        async with pool.acquire():
            pass
    assert db.connects == connects


async def test_purity_new_gets_a_session_no_borrower_used(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire(purity="new")  # never used: no reset needed
    first = raw_of(lease)
    await lease.release()
    connects = db.connects
    async with pool.acquire(purity="new") as again:
        assert raw_of(again) is first, "untouched by its borrower: still fresh"
    assert db.connects == connects
    used = await warm_up(pool)
    async with pool.acquire(purity="self") as reused:
        assert reused.driver_connection is used, "purity self takes the reused session"
    async with pool.acquire(purity="new") as fresh:
        assert fresh.driver_connection is not used
        await settle(pool)
        assert used.closed
    await assert_consistent(pool, db, leases_out=0)


async def test_purity_new_retries_when_the_reset_fails(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    used = await warm_up(pool)
    # A generic driver has no in-place reset: the used connection is dropped and the core
    # opens a new one. While opens fail the acquire fails; once they work, it succeeds.
    db.fail_all_connects()
    with pytest.raises((OperationalError, sessionpool.PoolTimeout)):
        await pool.acquire(purity="new", timeout=0.5)
    db.accept_connects()
    async with pool.acquire(purity="new", timeout=2.0) as lease:
        assert lease.driver_connection is not used
        assert not lease.driver_connection.closed
    await settle(pool)
    assert used.closed
    assert (pool.opened, pool.busy) == (1, 0)
    await assert_consistent(pool, db, leases_out=0)


async def test_purity_is_checked(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=0)
    with pytest.raises(sessionpool.UsageError, match="purity"):
        await pool.acquire(purity="NEW-ish")
    assert (pool.opened, pool.busy) == (0, 0)


async def test_leaving_with_a_disconnect_error_drops_the_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    with pytest.raises(sessionpool.ConnectionDead):
        async with pool.acquire() as lease:
            dead = raw_of(lease)
            raise sessionpool.ConnectionDead("the server went away")
    await settle(pool)
    assert dead.closed
    assert pool.busy == 0
    async with pool.acquire(timeout=2.0) as lease:
        assert raw_of(lease) is not dead
    await assert_consistent(pool, db, leases_out=0)


async def test_leaving_with_an_ordinary_error_returns_the_connection(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    with pytest.raises(ZeroDivisionError):
        async with pool.acquire() as lease:
            kept = raw_of(lease)
            await use(lease)
            raise ZeroDivisionError
    assert not kept.closed
    assert (pool.opened, pool.idle) == (1, 1)
    assert not kept.in_transaction, "returned and rolled back"


async def test_ping(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, name="first")
    other = await make_async_pool(min_size=0, max_size=1, name="second")
    async with pool.acquire() as lease:
        assert await pool.ping(lease) is True
        assert await pool.ping(lease, timeout=1.0) is True
        with pytest.raises(sessionpool.ForeignLease):
            await other.ping(lease)
    with pytest.raises(sessionpool.LeaseReleased):
        await pool.ping(lease)


# == release, drop, misuse ===================================================================


async def test_release_returns_the_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    lease = await pool.acquire()
    assert isinstance(lease, AsyncLease)
    assert (pool.busy, pool.idle) == (1, 0)
    assert not lease.is_released
    assert lease.pool is pool
    await pool.release(lease)
    assert lease.is_released
    assert (pool.busy, pool.idle) == (0, 1)
    await assert_consistent(pool, db, leases_out=0)


async def test_async_with_releases_on_exit_and_on_exception(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    async with pool.acquire() as conn:
        assert isinstance(conn, AsyncLease)
        assert pool.busy == 1
        driver = raw_of(conn)
    assert conn.is_released
    assert (pool.busy, pool.idle) == (0, 1)
    assert not driver.closed
    with pytest.raises(ZeroDivisionError):
        async with pool.acquire() as conn:
            await conn.execute("select 1")
            _ = 1 / 0
    assert conn.is_released
    assert (pool.busy, pool.idle) == (0, 1)
    async with pool.acquire() as conn:
        await conn.release()  # an explicit release inside the block is fine
    assert (pool.busy, pool.idle) == (0, 1)
    # An awaited lease is an async context manager as well.
    async with await pool.acquire() as conn:
        assert pool.busy == 1
    assert conn.is_released and pool.busy == 0


async def test_close_returns_the_connection_without_closing_it(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    lease = await pool.acquire()
    driver = lease.driver_connection
    await lease.close()
    assert lease.is_released
    assert not driver.closed
    assert (pool.busy, pool.idle, pool.opened) == (0, 1, 1)
    again = await pool.acquire()
    assert again.driver_connection is driver
    await again.release()


@pytest.mark.parametrize("how", ["pool.drop", "lease.drop"])
async def test_drop_closes_and_forgets_the_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase, how: str
) -> None:
    pool = await make_async_pool(min_size=0, max_size=2)
    lease = await pool.acquire(timeout=2.0)
    driver = raw_of(lease)
    assert pool.opened == 1
    if how == "pool.drop":
        await pool.drop(lease)
    else:
        await lease.drop()
    await settle(pool)
    assert driver.closed
    assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
    assert lease.is_released
    with pytest.raises(sessionpool.LeaseReleased):
        await lease.cursor()
    with pytest.raises(sessionpool.LeaseReleased):
        await pool.drop(lease)
    with pytest.raises(sessionpool.LeaseReleased):
        await lease.drop()
    with pytest.raises(sessionpool.LeaseReleased):
        await lease.release()
    assert pool.stats().connections_closed == 1
    await assert_consistent(pool, db, leases_out=0)


async def test_drop_below_min_size_is_replaced(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=2, max_size=3)
    lease = await pool.acquire()
    await lease.drop()
    await eventually(lambda: pool.opened == 2 and pool.opening == 0, "min_size restored")
    assert db.connects == 3
    await assert_consistent(pool, db, leases_out=0)


async def test_drop_serves_a_waiter_with_a_new_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    held = await pool.acquire()
    waiter = await start_waiter(pool, timeout=2.0)
    await held.drop()
    served = await asyncio.wait_for(waiter, 2.0)
    assert raw_of(served).id == 2
    await served.release()
    await assert_consistent(pool, db, leases_out=0)


async def test_drop_with_a_raising_close_keeps_the_pool_consistent(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=2)
    lease = await pool.acquire(timeout=2.0)
    db.close_raises = True
    await lease.drop()
    await settle(pool)
    assert db.connections[0].closed
    assert (pool.opened, pool.busy) == (0, 0)
    await assert_consistent(pool, db, leases_out=0)


USES: dict[str, Callable[[AsyncLease], object]] = {
    "method call": lambda lease: lease.cursor(),
    "commit": lambda lease: lease.commit(),
    "attribute read": lambda lease: lease.in_transaction,
    "attribute write": lambda lease: setattr(lease, "in_transaction", True),
    "driver_connection": lambda lease: lease.driver_connection,
}


@pytest.mark.parametrize("use_kind", list(USES))
async def test_released_lease_raises_on_any_use(
    make_async_pool: AsyncPoolFactory, use_kind: str
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire()
    driver = raw_of(lease)
    await lease.release()
    with pytest.raises(sessionpool.LeaseReleased):
        USES[use_kind](lease)
    assert not driver.in_transaction, "nothing reached the driver connection"
    assert driver.commits == 0


async def test_released_lease_cannot_reach_a_connection_lent_to_someone_else(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    stale = await pool.acquire()
    await stale.release()
    current = await pool.acquire()
    with pytest.raises(sessionpool.LeaseReleased):
        await stale.execute("select 1")
    assert raw_of(current).statements == []
    await current.release()


@pytest.mark.parametrize("how", ["lease.release", "lease.close", "pool.release", "tagged"])
async def test_double_release_raises(make_async_pool: AsyncPoolFactory, how: str) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    lease = await pool.acquire()
    await lease.release()
    with pytest.raises(sessionpool.LeaseReleased):
        if how == "lease.release":
            await lease.release()
        elif how == "lease.close":
            await lease.close()
        elif how == "pool.release":
            await pool.release(lease)
        else:
            await pool.release(lease, tag="a=1")
    assert (pool.busy, pool.idle, pool.opened) == (0, 1, 1)


async def test_release_in_another_pool_raises_foreign_lease(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, name="first")
    other = await make_async_pool(min_size=1, max_size=1, name="second")
    lease = await pool.acquire()
    with pytest.raises(sessionpool.ForeignLease) as caught:
        await other.release(lease)
    assert "first" in str(caught.value) and "second" in str(caught.value)
    with pytest.raises(sessionpool.ForeignLease):
        await other.drop(lease)
    assert (other.busy, other.idle) == (0, 1)
    assert not lease.is_released
    await lease.execute("select 1")
    await pool.release(lease)
    assert (pool.busy, pool.idle) == (0, 1)


async def test_a_threaded_lease_is_refused(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    threaded = sessionpool.create_pool(db.connect, min_size=1, max_size=1)
    try:
        lease = threaded.acquire()
        with pytest.raises(sessionpool.UsageError):
            await pool.release(lease)  # type: ignore[arg-type]
        lease.release()
    finally:
        threaded.close(force=True)


async def test_releasing_something_else_than_a_lease_is_a_usage_error(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire()
    with pytest.raises(sessionpool.UsageError):
        await pool.release(raw_of(lease))  # type: ignore[arg-type]
    with pytest.raises(sessionpool.UsageError):
        await pool.drop(raw_of(lease))  # type: ignore[arg-type]
    assert not raw_of(lease).closed
    assert pool.busy == 1
    await lease.release()


async def test_lease_repr(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire()
    assert "AsyncFakeConnection" in repr(lease)
    await lease.release()
    assert "released" in repr(lease)


# == close ===================================================================================


async def test_close_refuses_while_leases_are_out(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=2, max_size=2)
    lease = await pool.acquire()
    with pytest.raises(sessionpool.PoolInUse) as caught:
        await pool.close()
    assert "1" in str(caught.value)
    assert not pool.closed
    assert db.open_connections == 2
    await lease.execute("select 1")  # still usable
    await lease.release()
    await pool.close()
    assert pool.closed
    assert db.open_connections == 0
    assert pool.opened == 0


async def test_close_force_closes_everything(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=3, max_size=3)
    lease = await pool.acquire()
    await use(lease)
    await pool.close(force=True)
    assert pool.closed
    assert db.open_connections == 0
    assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
    # Giving it back afterwards neither fails with a foreign error nor revives it.
    with contextlib.suppress(sessionpool.Error):
        await lease.release()
    assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
    assert db.open_connections == 0


@pytest.mark.parametrize(
    "use_kind", ["method call", "attribute read", "attribute write", "driver_connection"]
)
async def test_leases_of_a_force_closed_pool_are_unusable(
    make_async_pool: AsyncPoolFactory, use_kind: str
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire()
    await pool.close(force=True)
    with pytest.raises(sessionpool.PoolClosed):
        USES[use_kind](lease)


async def test_close_force_fails_waiters_with_pool_closed(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    held = await pool.acquire()
    waiters = [await start_waiter(pool, timeout=5.0) for _ in range(3)]
    started = time.monotonic()
    await pool.close(force=True)
    outcomes = await asyncio.wait_for(asyncio.gather(*waiters, return_exceptions=True), 2.0)
    assert time.monotonic() - started < SLACK
    assert all(isinstance(outcome, sessionpool.PoolClosed) for outcome in outcomes), outcomes
    assert pool.waiting == 0
    with pytest.raises(sessionpool.PoolClosed):
        await held.execute("select 1")


async def test_acquire_after_close_raises_pool_closed(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=2, max_size=2)
    await pool.close()
    for kwargs in ({}, {"tag": "a=1"}, {"timeout": 0.1}, {"when_exhausted": "force"}):
        with pytest.raises(sessionpool.PoolClosed):
            await pool.acquire(**kwargs)


async def test_close_twice_is_harmless(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    await pool.close()
    await pool.close()
    await pool.close(force=True)
    assert pool.closed


async def test_close_cancels_connects_under_way(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=0, max_size=2)
    adb.hang_connects()
    try:
        waiter = await start_waiter(pool, timeout=5.0)
        assert await adb.wait_for_hanging(1)
        await pool.close(force=True)
        with pytest.raises(sessionpool.PoolClosed):
            await asyncio.wait_for(waiter, 2.0)
    finally:
        adb.release_hangs()
    # close() cancelled the connect under way: nothing is opened for a closed pool.
    await eventually(lambda: pool.opening == 0, "the cancelled connect was counted off")
    await asyncio.sleep(0.05)
    assert db.open_connections == 0
    assert pool.opened == 0


# == create_async_pool =======================================================================


async def test_create_async_pool_awaited(adb: AsyncFakeDatabase, db: FakeDatabase) -> None:
    pool = await sessionpool.create_async_pool(adb.connect, min_size=2, max_size=3)
    try:
        assert isinstance(pool, AsyncPool)
        assert (pool.opened, pool.idle) == (2, 2)
        async with pool.acquire() as lease:
            await lease.execute("select 1")
    finally:
        await pool.close()
    assert db.open_connections == 0


async def test_create_async_pool_with_creator_keyword(
    adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    async with sessionpool.create_async_pool(creator=adb.connect, min_size=1) as pool:
        assert pool.opened == 1
    assert pool.closed and db.open_connections == 0


async def test_create_async_pool_as_async_context_manager_force_closes(
    adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    async with sessionpool.create_async_pool(adb.connect, min_size=2, max_size=2) as pool:
        assert isinstance(pool, AsyncPool)
        lease = await pool.acquire()
        assert db.open_connections == 2
    assert pool.closed
    assert db.open_connections == 0
    with pytest.raises(sessionpool.PoolClosed):
        await lease.execute("select 1")


async def test_pool_is_an_async_context_manager(adb: AsyncFakeDatabase, db: FakeDatabase) -> None:
    async with await sessionpool.create_async_pool(adb.connect, min_size=1) as pool:
        await (await pool.acquire()).release()
    assert pool.closed and db.open_connections == 0


@pytest.mark.parametrize("form", ["await", "async with"])
async def test_failed_initial_fill_raises_the_driver_error_and_leaves_nothing_open(
    adb: AsyncFakeDatabase, db: FakeDatabase, form: str
) -> None:
    db.fail_next_connects(1, OperationalError("server is down"))
    with pytest.raises(OperationalError, match="server is down"):
        if form == "await":
            await sessionpool.create_async_pool(adb.connect, min_size=3, max_size=3)
        else:
            async with sessionpool.create_async_pool(adb.connect, min_size=3, max_size=3):
                pytest.fail("the block must not run")
    # A retry 50 ms after the failure may have started before the pool was closed; what it
    # opens is closed when it arrives.
    assert db.connects >= 3
    await eventually(lambda: db.open_connections == 0, "nothing left open")


async def test_create_async_pool_raises_when_every_connect_fails(
    adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    db.fail_all_connects()
    with pytest.raises(OperationalError):
        await sessionpool.create_async_pool(adb.connect, min_size=2, max_size=2)
    assert db.open_connections == 0


async def test_open_timeout_bounds_creation_and_leaves_nothing_open(
    adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    adb.hang_connects()
    try:
        started = time.monotonic()
        with pytest.raises(sessionpool.PoolTimeout):
            await sessionpool.create_async_pool(
                adb.connect, min_size=2, max_size=2, open_timeout=0.2
            )
        elapsed = time.monotonic() - started
        assert 0.2 - 0.005 <= elapsed < 0.2 + 0.1, elapsed
        assert await adb.wait_for_hanging(2)
    finally:
        adb.release_hangs()
    await asyncio.sleep(0.05)
    assert db.open_connections == 0, "the connects under way were cancelled with the pool"


async def test_create_async_pool_argument_errors(adb: AsyncFakeDatabase) -> None:
    with pytest.raises(sessionpool.ConfigError):
        sessionpool.create_async_pool()
    with pytest.raises(sessionpool.ConfigError):
        sessionpool.create_async_pool(adb.connect, creator=adb.connect)
    with pytest.raises(sessionpool.ConfigError, match="unknown pool setting"):
        sessionpool.create_async_pool(adb.connect, max_sizes=3)
    with pytest.raises(sessionpool.ConfigError):
        sessionpool.create_async_pool(adb.connect, min_size=3, max_size=2)
    with pytest.raises(sessionpool.ConfigError):
        sessionpool.create_async_pool(adb.connect, password=CANARY)


# == figures =================================================================================


async def test_counts_follow_borrowing(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=2, max_size=3)
    assert (pool.min_size, pool.max_size) == (2, 3)
    assert (pool.busy, pool.idle, pool.opened, pool.waiting) == (0, 2, 2, 0)
    first = await pool.acquire()
    assert (pool.busy, pool.idle, pool.opened) == (1, 1, 2)
    second = await pool.acquire()
    third = await pool.acquire(timeout=2.0)
    assert (pool.busy, pool.idle, pool.opened) == (3, 0, 3)
    waiter = await start_waiter(pool, timeout=2.0)
    assert pool.waiting == 1
    await first.release()
    served = await asyncio.wait_for(waiter, 2.0)
    assert (pool.busy, pool.idle, pool.waiting) == (3, 0, 0)
    for lease in (second, third, served):
        await lease.release()
    assert (pool.busy, pool.idle, pool.opened) == (0, 3, 3)


async def test_stats_counters(make_async_pool: AsyncPoolFactory, db: FakeDatabase) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    stats = pool.stats()
    assert isinstance(stats, sessionpool.PoolStats)
    assert (stats.acquires, stats.waits, stats.connections_opened) == (0, 0, 1)
    assert stats.hard_cap == 1 and stats.min_size == 1 and stats.max_size == 1

    await (await pool.acquire()).release()  # 1 acquire, no wait
    held = await pool.acquire()  # 2
    waiter = await start_waiter(pool, timeout=2.0)  # 1 wait
    await held.release()  # 1 handoff
    held = await asyncio.wait_for(waiter, 2.0)  # 3
    with pytest.raises(sessionpool.PoolExhausted):  # 1 exhausted
        await pool.acquire(when_exhausted="fail")
    with pytest.raises(sessionpool.PoolTimeout):  # 2 waits, 1 timeout
        await pool.acquire(timeout=0.05)
    db.fail_next_connects(1)
    await held.drop()  # 1 closed; reopening to min_size fails: 1 connect error
    await settle(pool)

    stats = pool.stats()
    assert stats.acquires == 3
    assert stats.waits == 2
    assert stats.handoffs == 1
    assert stats.exhausted == 1
    assert stats.timeouts == 1
    assert stats.connections_opened == 1
    assert stats.connections_closed == 1
    assert stats.connect_errors == 1
    assert (stats.opened, stats.busy, stats.idle, stats.waiting) == (0, 0, 0, 0)
    assert stats.as_dict()["acquires"] == 3


async def test_stats_count_forced_and_overflow_connections(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=0, max_size=1, max_overflow=1)
    a = await pool.acquire(timeout=2.0)
    b = await pool.acquire(timeout=2.0)
    c = await pool.acquire(when_exhausted="force", timeout=2.0)
    stats = pool.stats()
    assert (stats.opened, stats.busy, stats.connections_opened) == (3, 3, 3)
    for lease in (a, b, c):
        await lease.release()
    stats = pool.stats()
    assert (stats.opened, stats.idle, stats.connections_closed) == (1, 1, 2)


async def test_sqlalchemy_status_format(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=2, max_size=5)
    lease = await pool.acquire()
    assert pool.size() == 5
    assert pool.checkedin() == 1
    assert pool.checkedout() == 1
    assert pool.overflow() == -3
    assert pool.status() == (
        "Pool size: 5  Connections in pool: 1 Current Overflow: -3 "
        "Current Checked out connections: 1"
    )
    await lease.release()
    assert pool.status() == (
        "Pool size: 5  Connections in pool: 2 Current Overflow: -3 "
        "Current Checked out connections: 0"
    )


async def test_sqlalchemy_overflow_is_positive_beyond_max_size(
    make_async_pool: AsyncPoolFactory,
) -> None:
    pool = await make_async_pool(min_size=0, max_size=2, max_overflow=3)
    leases = [await pool.acquire(timeout=2.0) for _ in range(4)]
    assert pool.overflow() == 2
    assert (pool.checkedout(), pool.checkedin()) == (4, 0)
    for lease in leases:
        await lease.release()
    assert pool.overflow() == 0


async def test_pool_repr_shows_the_figures(make_async_pool: AsyncPoolFactory) -> None:
    pool = await make_async_pool(min_size=2, max_size=4, name="orders")
    lease = await pool.acquire()
    text = repr(pool)
    assert "AsyncPool" in text
    assert "orders" in text and "busy=1" in text and "idle=1" in text and "max_size=4" in text
    await lease.release()
    await pool.close()
    assert "closed" in repr(pool)


def assert_clean(*texts: object) -> None:
    for text in texts:
        assert CANARY not in str(text), text
        assert CANARY not in repr(text), repr(text)


async def test_repr_and_errors_never_show_a_password(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase
) -> None:
    creator = functools.partial(adb.connect, user="app", password=CANARY)
    pool = await make_async_pool(creator, min_size=1, max_size=1)
    lease = await pool.acquire()
    assert raw_of(lease).kwargs["password"] == CANARY
    assert_clean(pool, lease, pool.config, pool.stats(), pool.status())

    per_user = await make_async_pool(min_size=0, max_size=1, homogeneous=False)
    held = await per_user.acquire(user="app", password=CANARY, timeout=2.0)
    with pytest.raises(sessionpool.PoolTimeout) as timed_out:
        await per_user.acquire(user="app", password=CANARY, timeout=0.05)
    with pytest.raises(sessionpool.PoolExhausted) as exhausted:
        await per_user.acquire(user="app", password=CANARY, when_exhausted="fail")
    waiter = await start_waiter(per_user, user="app", password=CANARY, timeout=5.0)
    assert_clean(timed_out.value, exhausted.value, held, per_user, per_user.stats())
    await per_user.close(force=True)
    with pytest.raises(sessionpool.PoolClosed) as closed:
        await asyncio.wait_for(waiter, 2.0)
    assert_clean(closed.value, per_user)

    url_pool = await sessionpool.create_async_pool(
        f"postgresql://app:{CANARY}@127.0.0.1:1/test", lazy=True
    )
    try:
        assert_clean(url_pool)
    finally:
        await url_pool.close()


# == one event loop per pool =================================================================


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"timeout": 1.0}, {"tag": "a=1"}, {"when_exhausted": "fail"}],
    ids=["plain", "timeout", "tag", "fail"],
)
async def test_acquire_from_a_second_event_loop_is_a_usage_error(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase, kwargs: dict[str, Any]
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)

    async def borrow() -> None:
        async with pool.acquire(**kwargs) as lease:
            await lease.execute("select 1")

    with pytest.raises(sessionpool.UsageError, match="event loop"):
        await asyncio.to_thread(asyncio.run, borrow())
    assert (pool.busy, pool.idle, pool.opened) == (0, 1, 1)
    assert db.connections[0].statements == []
    async with pool.acquire() as lease:  # still fine in its own loop
        await lease.execute("select 1")
    await assert_consistent(pool, db, leases_out=0)


@pytest.mark.parametrize("waiting", [False, True], ids=["nobody waiting", "a waiter"])
async def test_release_from_a_second_event_loop_is_a_usage_error(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase, waiting: bool
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire()
    waiter = await start_waiter(pool, timeout=5.0) if waiting else None
    with pytest.raises(sessionpool.UsageError, match="event loop"):
        await asyncio.to_thread(asyncio.run, lease.release())
    assert not lease.is_released and pool.busy == 1
    await lease.release()  # from its own loop: fine
    if waiter is not None:
        await (await asyncio.wait_for(waiter, 2.0)).release()
    await assert_consistent(pool, db, leases_out=0)


async def test_a_pool_opened_in_another_loop_refuses_this_one(
    adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    holder: list[AsyncPool] = []

    async def open_elsewhere() -> None:
        holder.append(await sessionpool.create_async_pool(adb.connect, min_size=0, max_size=1))

    await asyncio.to_thread(asyncio.run, open_elsewhere())
    pool = holder[0]
    with pytest.raises(sessionpool.UsageError, match="event loop"):
        await pool.acquire(timeout=1.0)
    assert (pool.busy, pool.opened, pool.waiting) == (0, 0, 0)


# == many tasks ==============================================================================

ROUNDS = 100


async def test_mixed_traffic_keeps_one_borrower_per_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=3, max_overflow=1, homogeneous=False)
    problems: list[BaseException] = []
    counts = {"served": 0, "timed_out": 0, "dropped": 0}

    async def borrower(seed: int) -> None:
        rng = random.Random(seed)
        me = f"borrower-{seed}"
        for _ in range(ROUNDS):
            kind = rng.randrange(4)
            try:
                if kind == 0:
                    lease = await pool.acquire(timeout=0.002)
                elif kind == 1:
                    lease = await pool.acquire(tag=rng.choice(["a=1", "b=2"]), timeout=1.0)
                elif kind == 2:
                    user = rng.choice(["u", "v"])
                    lease = await pool.acquire(user=user, password="p", timeout=1.0)
                else:
                    lease = await pool.acquire(timeout=1.0)
            except sessionpool.PoolTimeout:
                counts["timed_out"] += 1
                continue
            except BaseException as exc:
                problems.append(exc)
                return
            try:
                raw = raw_of(lease).raw
                raw.enter_borrow(me)
                await lease.execute("select 1")
                await asyncio.sleep(0)
                raw.exit_borrow(me)
                if rng.random() < 0.05:
                    await lease.drop()
                    counts["dropped"] += 1
                elif kind == 1 and rng.random() < 0.5:
                    await lease.release(tag=rng.choice(["a=1", "b=2", ""]))
                else:
                    await lease.release()
            except BaseException as exc:
                problems.append(exc)
                return
            counts["served"] += 1

    await asyncio.wait_for(asyncio.gather(*(borrower(seed) for seed in range(8))), 20.0)
    assert problems == []
    assert counts["served"] + counts["timed_out"] == 8 * ROUNDS
    assert counts["served"] > 8 * ROUNDS // 2
    assert pool.busy == 0 and pool.waiting == 0
    await assert_consistent(pool, db, leases_out=0)
    assert pool.opened <= 4
    assert all(conn.borrower is None for conn in db.connections)
    stats = pool.stats()
    assert stats.connect_errors == 0
    assert stats.waits == stats.handoffs + stats.timeouts, stats


async def test_assert_consistent_sees_the_leases_out(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=2)
    lease = await pool.acquire()
    await assert_consistent(pool, db, leases_out=1)
    with pytest.raises(AssertionError):
        await assert_consistent(pool, db, leases_out=0)
    await lease.release()
    await assert_consistent(pool, db, leases_out=0)


# == close(timeout=...) and drain() ==========================================================


async def test_close_with_timeout_waits_for_borrowed_connections(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=2, max_size=2)
    lease = await pool.acquire()
    other = await pool.acquire()
    waiter = await start_waiter(pool, timeout=5.0)
    closer = asyncio.ensure_future(pool.close(timeout=5.0))
    with pytest.raises(sessionpool.PoolClosed):
        await asyncio.wait_for(waiter, 1.0)  # waiters are refused at once
    with pytest.raises(sessionpool.PoolClosed):
        await pool.acquire(timeout=0)
    await lease.cursor()  # borrowed connections stay usable meanwhile
    await lease.release()
    await asyncio.sleep(0.05)
    assert not closer.done(), "still waiting for the second one"
    started = time.monotonic()
    await other.release()
    await asyncio.wait_for(closer, 1.0)
    assert time.monotonic() - started < 1.0
    await settle(pool)
    assert db.open_connections == 0
    assert (pool.opened, pool.busy, pool.closed) == (0, 0, True)


async def test_close_with_timeout_forces_what_is_still_out(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1)
    lease = await pool.acquire()
    started = time.monotonic()
    await pool.close(timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 1.0
    await settle(pool)
    assert db.open_connections == 0
    with pytest.raises(sessionpool.PoolClosed):
        lease.cursor()
    assert (pool.opened, pool.busy) == (0, 0)


async def test_drain_replaces_every_connection(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase
) -> None:
    pool = await make_async_pool(min_size=2, max_size=3)
    borrowed = await pool.acquire()
    old_busy = borrowed._slot.connection
    old_idle = [slot.connection for slot in pool._core.slots() if slot.connection is not old_busy]
    await pool.drain()
    await settle(pool)
    assert all(conn.closed for conn in old_idle), "idle connections closed at once"
    assert not old_busy.closed, "a borrowed one is left to its borrower"
    await eventually(lambda: pool.idle == 1 and pool.opened == 2, "a replacement opened")
    await borrowed.release()
    await settle(pool)
    assert old_busy.closed, "closed when it came back"
    await eventually(lambda: pool.idle == 2, "min_size opened afresh")
    await assert_consistent(pool, db, leases_out=0)
    await pool.close()
    with pytest.raises(sessionpool.PoolClosed):
        await pool.drain()


# == lifetimes ===============================================================================


@pytest.mark.parametrize("form", ["async with", "release"])
async def test_max_uses_and_lifetime_retire_on_return(
    make_async_pool: AsyncPoolFactory, db: FakeDatabase, form: str
) -> None:
    pool = await make_async_pool(min_size=1, max_size=1, max_uses=2, max_lifetime=0.2)
    seen = []
    for _ in range(2):
        if form == "async with":
            async with pool.acquire() as lease:
                seen.append(lease._slot.connection)
        else:
            lease = await pool.acquire()
            seen.append(lease._slot.connection)
            await lease.release()
    await settle(pool)
    assert seen[0] is seen[1] and seen[0].closed, "retired on its second return"
    await eventually(lambda: pool.idle == 1, "replaced")
    if form == "async with":
        async with pool.acquire() as lease:
            conn = lease._slot.connection
            await asyncio.sleep(0.25)
            assert not conn.closed, "never closed for age while borrowed"
    else:
        lease = await pool.acquire()
        conn = lease._slot.connection
        await asyncio.sleep(0.25)
        assert not conn.closed, "never closed for age while borrowed"
        await lease.release()
    await settle(pool)
    assert conn.closed, "its lifetime was spent: retired when it came back"
    await assert_consistent(pool, db, leases_out=0)
