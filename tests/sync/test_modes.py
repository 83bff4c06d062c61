"""Acquisition modes of the threaded Pool: wait, fail, force, timed waits and FIFO service."""

from __future__ import annotations

import functools
import queue
import threading
import time

import pytest

import sessionpool
from sessionpool import Lease
from tests.fakes.fake_dbapi import FakeDatabase, OperationalError
from tests.sync.conftest import (
    PoolFactory,
    assert_consistent,
    eventually,
    start,
    start_waiter,
    wait_for_waiting,
    wait_until,
)


def test_timeout_none_waits_past_the_configured_wait_timeout(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1, wait_timeout=0.05)
    held = pool.acquire()
    waiter = start_waiter(pool, timeout=None)
    # Several times the configured wait_timeout: a waiter with timeout=None is still there.
    assert not wait_until(lambda: not waiter.is_alive(), timeout=0.3)
    assert pool.waiting == 1
    held_driver = held.driver_connection
    held.release()
    served = waiter.result()
    assert served.driver_connection is held_driver
    served.release()


def test_wait_is_the_default_mode(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    waiter = start_waiter(pool, timeout=2.0)
    held.release()
    waiter.result().release()
    assert pool.stats().waits == 1


def test_fail_mode_raises_pool_exhausted_at_once(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=0, max_size=2, when_exhausted="fail")
    held = [pool.acquire(), pool.acquire()]
    started = time.monotonic()
    with pytest.raises(sessionpool.PoolExhausted) as caught:
        pool.acquire()
    assert time.monotonic() - started < 0.1
    message = str(caught.value)
    assert "2 busy" in message and "max_size 2" in message, message
    assert pool.stats().exhausted == 1
    assert pool.waiting == 0
    for lease in held:
        lease.release()


def test_fail_mode_per_call(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    with pytest.raises(sessionpool.PoolExhausted):
        pool.acquire(when_exhausted="fail")
    held.release()


def test_fail_mode_still_opens_below_the_cap(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=2, when_exhausted="fail")
    first = pool.acquire()
    second = pool.acquire(timeout=2.0)
    assert first.id != second.id
    assert db.connects == 2
    first.release()
    second.release()


def test_force_opens_beyond_the_cap_and_closes_it_on_release(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1, when_exhausted="force")
    held = pool.acquire()
    extra = pool.acquire(timeout=2.0)
    assert extra.id != held.id
    assert pool.opened == 2 and pool.busy == 2
    extra_driver = extra.driver_connection
    extra.release()
    assert extra_driver.closed
    assert pool.opened == 1
    held.release()
    assert (pool.opened, pool.idle) == (1, 1)
    assert_consistent(pool, db)


def test_force_per_call(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    extra = pool.acquire(when_exhausted="force", timeout=2.0)
    assert pool.opened == 2
    held.release()
    extra.release()
    assert pool.opened == 1
    assert_consistent(pool, db)


def test_configured_wait_timeout_raises_pool_timeout(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1, wait_timeout=0.2)
    held = pool.acquire()
    started = time.monotonic()
    with pytest.raises(sessionpool.PoolTimeout) as caught:
        pool.acquire()
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 0.7, elapsed
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, sessionpool.Error)
    assert "0.2" in str(caught.value) and "max_size 1" in str(caught.value)
    assert pool.stats().timeouts == 1
    assert pool.waiting == 0
    held.release()


def test_per_call_timeout_overrides_wait_timeout(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1, wait_timeout=5.0)
    held = pool.acquire()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        pool.acquire(timeout=0.15)
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 0.65, elapsed
    held.release()


def test_zero_timeout_does_not_wait(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    started = time.monotonic()
    with pytest.raises(sessionpool.PoolTimeout):
        pool.acquire(timeout=0)
    assert time.monotonic() - started < 0.2
    held.release()


def test_timeout_bounds_a_hanging_connect(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=0, max_size=2)
    db.hang_connects()
    try:
        started = time.monotonic()
        with pytest.raises(sessionpool.PoolTimeout):
            pool.acquire(timeout=0.2)
        elapsed = time.monotonic() - started
        assert 0.2 <= elapsed < 0.7, elapsed
    finally:
        db.release_hangs()
    eventually(lambda: pool.opening == 0, "the released connect finished")
    assert (pool.busy, pool.idle, pool.opened) == (0, 1, 1)
    assert_consistent(pool, db)


def test_waiters_are_served_in_fifo_order(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    served: queue.Queue[tuple[int, Lease]] = queue.Queue()

    def waiter(index: int) -> None:
        lease = pool.acquire(timeout=5.0)
        served.put((index, lease))

    workers = []
    for index in range(6):
        workers.append(start(functools.partial(waiter, index), f"waiter-{index}"))
        wait_for_waiting(pool, index + 1)

    order = []
    current = held
    for _ in range(6):
        current.release()
        # The connection went straight to the oldest waiter: none was left idle for a barger.
        assert pool.idle == 0
        index, current = served.get(timeout=2.0)
        order.append(index)
    current.release()
    for worker in workers:
        worker.finish()
    assert order == list(range(6))
    assert pool.stats().handoffs == 6


def test_fifo_with_several_connections(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=3, max_size=3)
    held = [pool.acquire() for _ in range(3)]
    served: queue.Queue[tuple[int, Lease]] = queue.Queue()

    def waiter(index: int) -> None:
        served.put((index, pool.acquire(timeout=5.0)))

    workers = []
    for index in range(5):
        workers.append(start(functools.partial(waiter, index), f"waiter-{index}"))
        wait_for_waiting(pool, index + 1)
    order = []
    for lease in held:
        lease.release()
        order.append(served.get(timeout=2.0))
    assert [index for index, _ in order] == [0, 1, 2]
    assert pool.waiting == 2
    for _, lease in order[:2]:
        lease.release()
        order.append(served.get(timeout=2.0))
    assert [index for index, _ in order] == [0, 1, 2, 3, 4]
    for _, lease in order[2:]:
        lease.release()
    for worker in workers:
        worker.finish()


def test_a_barging_caller_does_not_overtake_a_waiter(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    waiter = start_waiter(pool, timeout=2.0)
    held.release()
    with pytest.raises(sessionpool.PoolExhausted):
        pool.acquire(when_exhausted="fail")
    waiter.result().release()


def test_timed_out_waiters_receive_and_leak_nothing(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=2, max_size=2)
    held = [pool.acquire(), pool.acquire()]
    waiters = [start_waiter(pool, f"waiter-{i}", timeout=0.15) for i in range(3)]
    for waiter in waiters:
        assert isinstance(waiter.exception(), sessionpool.PoolTimeout)
    assert (pool.busy, pool.idle, pool.opened, pool.waiting) == (2, 0, 2, 0)
    assert pool.stats().timeouts == 3
    for lease in held:
        lease.release()
    assert (pool.busy, pool.idle, pool.opened) == (0, 2, 2)
    assert len(db.connections) == 2
    assert_consistent(pool, db)
    # Both connections are really free: they can be borrowed without waiting.
    again = [pool.acquire(when_exhausted="fail"), pool.acquire(when_exhausted="fail")]
    assert {lease.id for lease in again} == {1, 2}
    for lease in again:
        lease.release()


ATTEMPTS = 400


def test_timed_out_waiter_racing_releases_never_loses_a_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=2, max_size=2)
    stop = threading.Event()
    outcomes = {"served": 0, "timed_out": 0}
    guard = threading.Lock()
    problems: list[BaseException] = []

    def releaser() -> None:
        while not stop.is_set():
            try:
                lease = pool.acquire(timeout=2.0)
                lease.driver_connection.enter_borrow(threading.get_ident())
                time.sleep(0.0005)
                lease.driver_connection.exit_borrow(threading.get_ident())
                lease.release()
            except BaseException as exc:
                problems.append(exc)
                return

    def impatient() -> None:
        for attempt in range(ATTEMPTS):
            try:
                lease = pool.acquire(timeout=0.0005 * (attempt % 4))
            except sessionpool.PoolTimeout:
                with guard:
                    outcomes["timed_out"] += 1
                continue
            except BaseException as exc:
                problems.append(exc)
                return
            try:
                lease.driver_connection.enter_borrow(threading.get_ident())
                lease.driver_connection.exit_borrow(threading.get_ident())
                lease.release()
            except BaseException as exc:
                problems.append(exc)
                return
            with guard:
                outcomes["served"] += 1

    releasers = [start(releaser, f"releaser-{i}") for i in range(2)]
    impatients = [start(impatient, f"impatient-{i}") for i in range(6)]
    for worker in impatients:
        worker.finish(10.0)
    stop.set()
    for worker in releasers:
        worker.finish()
    assert problems == []
    assert outcomes["served"] + outcomes["timed_out"] == 6 * ATTEMPTS
    assert outcomes["timed_out"] > 0, "the race was not exercised"
    stats = pool.stats()
    # Every wait ended in exactly one of: a hand-off (kept) or a timeout (nothing kept).
    assert stats.waits == stats.handoffs + stats.timeouts, stats
    assert (pool.busy, pool.idle, pool.opened, pool.waiting) == (0, 2, 2, 0)
    assert len(db.connections) == 2
    assert_consistent(pool, db)
    leases = [pool.acquire(when_exhausted="fail") for _ in range(2)]
    for lease in leases:
        lease.release()


def test_forced_open_that_fails_reaches_the_caller(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1, when_exhausted="force")
    held = pool.acquire()
    db.fail_next_connects(1, OperationalError("too many connections"))
    with pytest.raises(OperationalError, match="too many"):
        pool.acquire(timeout=2.0)
    assert (pool.opened, pool.busy, pool.waiting) == (1, 1, 0)
    held.release()
    assert_consistent(pool, db)


def test_forced_waiter_that_times_out_leaks_nothing(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1, when_exhausted="force")
    held = pool.acquire()
    db.hang_connects()
    try:
        with pytest.raises(sessionpool.PoolTimeout):
            pool.acquire(timeout=0.1)
        assert db.wait_for_hanging(1)
    finally:
        db.release_hangs()
    eventually(lambda: len(db.connections) == 2 and pool.opening == 0, "forced open finished")
    # Nobody wants the late connection any more, and it is beyond the cap: it is closed.
    eventually(lambda: db.connections[1].closed, "the late forced connection closed")
    assert (pool.opened, pool.busy, pool.idle, pool.waiting) == (1, 1, 0, 0)
    held.release()
    assert_consistent(pool, db)


def test_failed_connect_fails_one_waiter_and_the_others_are_served(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=3)
    held = pool.acquire()
    db.hang_connects()
    try:
        first = start_waiter(pool, "first", timeout=2.0)
        second = start_waiter(pool, "second", timeout=2.0)
        assert db.wait_for_hanging(2)
        db.fail_next_connects(1, OperationalError("refused"))
    finally:
        db.release_hangs()
    outcomes = [first.exception(), second.exception()]
    failed = [error for error in outcomes if error is not None]
    assert len(failed) == 1 and isinstance(failed[0], OperationalError)
    served = first.value if first.error is None else second.value
    assert isinstance(served, Lease)
    served.release()
    held.release()
    assert_consistent(pool, db)
