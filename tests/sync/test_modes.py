"""Acquisition modes of the threaded Pool: wait, fail, force, timed waits and FIFO service."""

from __future__ import annotations

import functools
import itertools
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
    assert pool.opened == 1  # at once; the driver close follows on the maintenance thread
    eventually(lambda: extra_driver.closed, "the forced connection closed on release")
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


# -- failed connects (rule 6: recovery without a connect storm) ----------------------------

#: The pool's delays between connect attempts during an outage: 50 ms doubling up to 0.5 s.
RETRY_DELAYS = [0.05, 0.1, 0.2, 0.4, 0.5]
#: Slack for comparing two monotonic() readings taken on different threads around a timer.
#: Delays can only come out longer on a loaded machine, never shorter, so this stays tiny.
CLOCK_SLACK = 0.002


class RecordingConnect:
    """A creator over db.connect that records when each attempt started and ended, and how."""

    def __init__(self, db: FakeDatabase) -> None:
        self._db = db
        self._guard = threading.Lock()
        self.attempts: list[tuple[float, float, bool]] = []  # (started, ended, succeeded)

    def __call__(self, *args: object, **kwargs: object) -> object:
        started = time.monotonic()
        try:
            connection = self._db.connect(*args, **kwargs)
        except BaseException:
            with self._guard:
                self.attempts.append((started, time.monotonic(), False))
            raise
        with self._guard:
            self.attempts.append((started, time.monotonic(), True))
        return connection

    def forget(self) -> None:
        """Drop what was recorded so far (the opens at creation)."""
        with self._guard:
            self.attempts.clear()

    def by_start(self) -> list[tuple[float, float, bool]]:
        with self._guard:
            return sorted(self.attempts)


def test_a_failed_first_connect_fails_the_oldest_waiter_at_once(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    # Nothing has ever opened for the pool's user: a failure most likely means a mistake (a
    # wrong password), so the oldest waiter gets the driver's error at once, not a timeout.
    pool = make_pool(min_size=0, max_size=1)
    refused = OperationalError("refused")
    db.hang_connects()
    try:
        first = start_waiter(pool, "first", timeout=5.0)
        assert db.wait_for_hanging(1)
        second = start_waiter(pool, "second", timeout=5.0)  # max_size=1: no second connect
        db.fail_next_connects(1, refused)
        released_at = time.monotonic()
    finally:
        db.release_hangs()
    assert first.exception() is refused
    assert first.finished_at is not None
    # "At once" against a 5 s timeout: 1 s leaves room for a stalled thread on 2 noisy cores.
    assert first.finished_at - released_at < 1.0, first.finished_at - released_at
    # The younger waiter is not failed by that connect: the retry (50 ms later) serves it.
    served = second.result()
    assert isinstance(served, Lease)
    assert served.driver_connection is db.connections[0]
    assert (db.connects, db.failed_connects) == (2, 1), "one connect, one retry, no storm"
    stats = pool.stats()
    assert (stats.connect_errors, stats.timeouts) == (1, 0), stats
    served.release()
    assert_consistent(pool, db)


def test_after_a_success_a_failed_connect_fails_nobody_and_waiters_time_out_with_its_cause(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    recorder = RecordingConnect(db)
    pool = make_pool(recorder, min_size=1, max_size=2)  # the pool's user has opened once
    held = pool.acquire()
    recorder.forget()
    refused = OperationalError("refused")
    db.fail_all_connects(refused)
    started = time.monotonic()
    waiter = start_waiter(pool, timeout=1.0)
    # It waits out its whole deadline through the outage (bounded: 1 s + 2 s of slack for a
    # stalled thread), then gets a PoolTimeout chained to the driver's error.
    error = waiter.exception(timeout=3.0)
    assert isinstance(error, sessionpool.PoolTimeout), repr(error)
    assert error.__cause__ is refused, repr(error.__cause__)
    assert "refused" in str(error)
    assert waiter.finished_at is not None and waiter.finished_at - started >= 1.0
    # Retries came one at a time after growing delays: within 1 s at most the first
    # attempt and four retries (0, 0.05, 0.15, 0.35, 0.75 s).
    attempts = recorder.by_start()
    assert 2 <= len(attempts) <= 5, attempts
    assert not any(succeeded for _, _, succeeded in attempts), attempts
    for index, (before, after) in enumerate(itertools.pairwise(attempts)):
        gap = after[0] - before[1]
        assert gap >= RETRY_DELAYS[index] - CLOCK_SLACK, (index, gap, attempts)
    stats = pool.stats()
    assert stats.connect_errors == len(attempts) == db.failed_connects, stats
    assert (stats.timeouts, stats.waiting, stats.opened, stats.busy) == (1, 0, 1, 1), stats
    # The server is back: the next acquire that needs a connection gets one (within the
    # longest retry delay, 0.5 s, and slack).
    db.accept_connects()
    lease = pool.acquire(timeout=2.0)
    lease.release()
    held.release()
    assert_consistent(pool, db)


def test_after_an_outage_the_first_connection_serves_the_oldest_waiter(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    recorder = RecordingConnect(db)
    pool = make_pool(recorder, min_size=1, max_size=4)
    held = pool.acquire()
    recorder.forget()
    refused = OperationalError("refused")
    db.fail_all_connects(refused)
    first = start_waiter(pool, "first", timeout=5.0)
    # Queue the others once the outage has begun, so every later attempt is a retry.
    eventually(lambda: pool.stats().connect_errors >= 1, "the first connect failed")
    others = [start_waiter(pool, f"waiter-{i}", timeout=5.0) for i in (2, 3)]
    # 4 failed attempts take at least 0.35 s of retry delays; nobody is failed by them.
    eventually(lambda: db.failed_connects >= 4, "connects retried during the outage")
    assert first.is_alive() and all(other.is_alive() for other in others)
    assert pool.waiting == 3
    db.accept_connects()
    # The next retry is at most 0.4 s away here (0.5 s at most in any outage).
    leases = [first.result(), *(other.result() for other in others)]
    assert leases[0].driver_connection is db.connections[1], "the first one opened, FIFO"
    assert len({lease.id for lease in leases}) == 3
    attempts = recorder.by_start()
    recovery = next(i for i, attempt in enumerate(attempts) if attempt[2])
    chain = attempts[: recovery + 1]
    assert len(chain) == db.failed_connects + 1 >= 5, chain
    # Until the first success, one attempt at a time, each after its delay.
    for index, (before, after) in enumerate(itertools.pairwise(chain)):
        gap = after[0] - before[1]
        delay = RETRY_DELAYS[min(index, len(RETRY_DELAYS) - 1)]
        assert gap >= delay - CLOCK_SLACK, (index, gap, chain)
    stats = pool.stats()
    assert (stats.connect_errors, stats.timeouts) == (db.failed_connects, 0), stats
    for lease in leases:
        lease.release()
    held.release()
    assert_consistent(pool, db)
