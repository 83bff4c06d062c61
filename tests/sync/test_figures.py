"""Figures of the threaded Pool: counts, stats() counters and SQLAlchemy's status names."""

from __future__ import annotations

import pytest

import sessionpool
from tests.fakes.fake_dbapi import FakeDatabase
from tests.sync.conftest import PoolFactory, eventually, start_waiter


def test_counts_follow_borrowing(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=2, max_size=3)
    assert (pool.min_size, pool.max_size) == (2, 3)
    assert (pool.busy, pool.idle, pool.opened, pool.waiting) == (0, 2, 2, 0)
    first = pool.acquire()
    assert (pool.busy, pool.idle, pool.opened) == (1, 1, 2)
    second = pool.acquire()
    third = pool.acquire(timeout=2.0)
    assert (pool.busy, pool.idle, pool.opened) == (3, 0, 3)
    waiter = start_waiter(pool, timeout=2.0)
    assert pool.waiting == 1
    first.release()
    served = waiter.result()
    assert (pool.busy, pool.idle, pool.waiting) == (3, 0, 0)
    for lease in (second, third, served):
        lease.release()
    assert (pool.busy, pool.idle, pool.opened) == (0, 3, 3)


def test_stats_counters(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=1)
    stats = pool.stats()
    assert isinstance(stats, sessionpool.PoolStats)
    assert (stats.acquires, stats.waits, stats.connections_opened) == (0, 0, 1)
    assert stats.hard_cap == 1 and stats.min_size == 1 and stats.max_size == 1

    pool.acquire().release()  # 1 acquire, no wait
    held = pool.acquire()  # 2
    waiter = start_waiter(pool, timeout=2.0)  # 1 wait
    held.release()  # 1 handoff
    held = waiter.result()  # 3
    with pytest.raises(sessionpool.PoolExhausted):  # 1 exhausted
        pool.acquire(when_exhausted="fail")
    with pytest.raises(sessionpool.PoolTimeout):  # 2 waits, 1 timeout
        pool.acquire(timeout=0.05)
    db.fail_next_connects(1)
    held.drop()  # 1 closed; reopening to min_size fails: 1 connect error
    # The pool retries 50 ms after the failure (rule 6) and that connect succeeds: wait for
    # it, so the snapshot below does not race with the retry.
    eventually(lambda: pool.idle == 1 and pool.opening == 0, "min_size reopened by the retry")

    stats = pool.stats()
    assert stats.acquires == 3
    assert stats.waits == 2
    assert stats.handoffs == 1
    assert stats.exhausted == 1
    assert stats.timeouts == 1
    assert stats.connections_opened == 2
    assert stats.connections_closed == 1
    assert stats.connect_errors == 1
    assert (stats.opened, stats.busy, stats.idle, stats.waiting) == (1, 0, 1, 0)
    assert db.connects == 3, "the first open, the failed one, and a single retry"
    assert stats.as_dict()["acquires"] == 3


def test_stats_count_forced_and_overflow_connections(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=0, max_size=1, max_overflow=1)
    a = pool.acquire(timeout=2.0)
    b = pool.acquire(timeout=2.0)
    c = pool.acquire(when_exhausted="force", timeout=2.0)
    stats = pool.stats()
    assert (stats.opened, stats.busy, stats.connections_opened) == (3, 3, 3)
    for lease in (a, b, c):
        lease.release()
    stats = pool.stats()
    assert (stats.opened, stats.idle, stats.connections_closed) == (1, 1, 2)


def test_sqlalchemy_status_format(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=2, max_size=5)
    lease = pool.acquire()
    assert pool.size() == 5
    assert pool.checkedin() == 1
    assert pool.checkedout() == 1
    assert pool.overflow() == -3
    assert pool.status() == (
        "Pool size: 5  Connections in pool: 1 Current Overflow: -3 "
        "Current Checked out connections: 1"
    )
    lease.release()
    assert pool.status() == (
        "Pool size: 5  Connections in pool: 2 Current Overflow: -3 "
        "Current Checked out connections: 0"
    )


def test_sqlalchemy_overflow_is_positive_beyond_max_size(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=0, max_size=2, max_overflow=3)
    leases = [pool.acquire(timeout=2.0) for _ in range(4)]
    assert pool.overflow() == 2
    assert pool.checkedout() == 4
    assert pool.checkedin() == 0
    assert pool.status() == (
        "Pool size: 2  Connections in pool: 0 Current Overflow: 2 "
        "Current Checked out connections: 4"
    )
    for lease in leases:
        lease.release()
    assert pool.overflow() == 0


def test_pool_repr_shows_the_figures(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=2, max_size=4, name="orders")
    lease = pool.acquire()
    text = repr(pool)
    assert "orders" in text and "busy=1" in text and "idle=1" in text and "max_size=4" in text
    lease.release()
    pool.close()
    assert "closed" in repr(pool)
