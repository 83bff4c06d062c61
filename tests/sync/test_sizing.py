"""Sizing of the threaded Pool: min_size, max_size, increment, max_overflow, and the hard cap."""

from __future__ import annotations

import threading
import time

import pytest

import sessionpool
from tests.fakes.fake_dbapi import FakeDatabase
from tests.sync.conftest import PoolFactory, assert_consistent, eventually, start, start_waiter


def test_min_size_is_opened_at_creation(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=3, max_size=5)
    assert db.connects == 3
    assert (pool.opened, pool.idle, pool.busy) == (3, 3, 0)
    assert_consistent(pool, db)


def test_initial_fill_opens_concurrently(make_pool: PoolFactory, db: FakeDatabase) -> None:
    db.connect_delay = 0.2
    started = time.monotonic()
    pool = make_pool(min_size=4, max_size=4)
    elapsed = time.monotonic() - started
    assert pool.opened == 4
    # One after another would take 0.8 s.
    assert 0.2 <= elapsed < 0.55, elapsed


def test_initial_fill_opens_min_size_not_a_whole_increment(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=8, increment=4)
    eventually(lambda: pool.opening == 0, "initial opens finished")
    assert db.connects == 1
    assert pool.opened == 1


def test_acquiring_beyond_min_size_opens_more(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=3)
    leases = [pool.acquire(timeout=2.0) for _ in range(3)]
    assert len({lease.id for lease in leases}) == 3
    assert (pool.opened, pool.busy, pool.idle) == (3, 3, 0)
    for lease in leases:
        lease.release()
    assert (pool.opened, pool.busy, pool.idle) == (3, 0, 3)
    assert_consistent(pool, db)


def test_max_size_is_never_exceeded_without_overflow(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=2, when_exhausted="fail")
    first, second = pool.acquire(timeout=2.0), pool.acquire(timeout=2.0)
    with pytest.raises(sessionpool.PoolExhausted):
        pool.acquire()
    assert pool.opened == 2 and db.connects == 2
    first.release()
    second.release()


def test_increment_opens_its_connections_concurrently(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=8, increment=4)
    db.connect_delay = 0.2
    started = time.monotonic()
    lease = pool.acquire(timeout=2.0)
    eventually(lambda: pool.opened == 4, "an increment of 4 connections opened")
    elapsed = time.monotonic() - started
    assert db.connects == 4
    # One after another would take 0.8 s.
    assert elapsed < 0.55, elapsed
    assert (pool.busy, pool.idle) == (1, 3)
    lease.release()


def test_increment_is_clipped_to_max_size(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=0, max_size=3, increment=5)
    lease = pool.acquire(timeout=2.0)
    eventually(lambda: pool.opening == 0, "opens finished")
    assert pool.opened == 3
    assert db.connects == 3
    lease.release()


def test_no_growth_while_idle_connections_serve(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=2, max_size=10, increment=2)
    for _ in range(20):
        pool.acquire(timeout=2.0).release()
    assert db.connects == 2
    assert pool.opened == 2


def test_overflow_opens_beyond_max_size_and_closes_on_release(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=2, max_overflow=2, when_exhausted="fail")
    leases = [pool.acquire(timeout=2.0) for _ in range(4)]
    assert pool.opened == 4
    assert pool.overflow() == 2
    with pytest.raises(sessionpool.PoolExhausted):
        pool.acquire()
    drivers = [lease.driver_connection for lease in leases]
    # The figures change at once; the driver-level close follows on the maintenance thread.
    leases[0].release()
    assert pool.opened == 3
    eventually(
        lambda: drivers[0].closed,
        "an overflow connection returned with nobody waiting is closed",
    )
    leases[1].release()
    assert (pool.opened, pool.idle) == (2, 0)
    eventually(lambda: drivers[1].closed, "the second overflow connection closed")
    leases[2].release()
    leases[3].release()
    assert (pool.opened, pool.idle) == (2, 2)
    # Counted when decided, so this also says no close of the last two is on its way.
    assert pool.stats().connections_closed == 2, pool.stats()
    assert not drivers[2].closed and not drivers[3].closed
    assert_consistent(pool, db)


def test_overflow_connection_goes_to_a_waiter_instead_of_closing(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=1, max_overflow=1)
    first, second = pool.acquire(timeout=2.0), pool.acquire(timeout=2.0)
    waiter = start_waiter(pool, timeout=2.0)
    second_driver = second.driver_connection
    second.release()
    served = waiter.result()
    assert served.driver_connection is second_driver
    assert not second_driver.closed
    served.release()
    first.release()
    assert pool.opened == 1
    assert_consistent(pool, db)


def test_unbounded_overflow(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=0, max_size=2, max_overflow=-1, when_exhausted="fail")
    leases = [pool.acquire(timeout=2.0) for _ in range(25)]
    assert pool.opened == 25
    assert pool.stats().hard_cap is None
    for lease in leases:
        lease.release()
    # The first 23 came back above max_size and were let go (counted at once); the last two
    # are kept idle.
    assert (pool.opened, pool.idle) == (2, 2)
    assert pool.stats().connections_closed == 23, pool.stats()
    eventually(
        lambda: [conn.closed for conn in db.connections] == [True] * 23 + [False] * 2,
        "the 23 connections beyond max_size closed, the last two kept",
    )


def test_opened_never_exceeds_the_cap_under_contention(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    cap = 4
    db.connect_delay = 0.005
    pool = make_pool(min_size=0, max_size=3, max_overflow=1, increment=2)
    highest = [0]
    guard = threading.Lock()
    failures: list[BaseException] = []

    def borrower() -> None:
        for _ in range(15):
            try:
                with pool.acquire(timeout=2.0) as conn:
                    with guard:
                        highest[0] = max(highest[0], db.open_connections, pool.opened)
                    conn.cursor().execute("select 1")
                    time.sleep(0.001)
            except BaseException as exc:
                failures.append(exc)

    def sampler() -> None:
        while any(worker.is_alive() for worker in workers):
            with guard:
                highest[0] = max(highest[0], pool.opened + pool.opening)
            time.sleep(0.0005)

    workers = [start(borrower, f"borrower-{i}") for i in range(10)]
    watcher = start(sampler, "sampler")
    for worker in workers:
        worker.finish(10.0)
    watcher.finish()
    assert failures == []
    assert 1 <= highest[0] <= cap, highest[0]
    assert_consistent(pool, db)
    assert pool.busy == 0


def test_max_size_bounds_idle_keeps_returned_connections_while_overflow_is_out(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    """SQLAlchemy's QueuePool: pool_size bounds the idle queue, so with overflow out, the
    first returned connections are kept (up to max_size idle), not closed."""
    pool = make_pool(min_size=0, max_size=3, max_overflow=-1, max_size_bounds="idle")
    leases = [pool.acquire() for _ in range(6)]
    for lease in leases[:3]:
        lease.release()
    assert (pool.idle, pool.busy, pool.opened) == (3, 3, 6)
    for lease in leases[3:]:
        lease.release()  # the idle queue is full now: these are closed
    assert (pool.idle, pool.busy, pool.opened) == (3, 0, 3)
    assert_consistent(pool, db)
