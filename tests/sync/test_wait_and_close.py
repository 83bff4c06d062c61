"""close() wakes a thread blocked in Pool.wait() (it raises PoolClosed), even during an
outage's retry pause or while a connect hangs; close(timeout=...) takes back a lease lost
while it waits."""

from __future__ import annotations

import gc
import time

from sessionpool.errors import PoolClosed
from tests.fakes.fake_dbapi import FakeDatabase
from tests.sync.conftest import PoolFactory, start


def test_wait_is_woken_by_close_while_a_connect_hangs(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1, lazy=True)
    db.hang_connects(max_wait=6.0)
    waiter = start(lambda: pool.wait(timeout=None), "wait")
    assert db.wait_for_hanging(1, 2.0)
    time.sleep(0.1)  # wait() is blocked on its condition now
    t0 = time.monotonic()
    pool.close(force=True)
    waiter.join(2.0)
    blocked = time.monotonic() - t0
    assert not waiter.is_alive(), f"wait() still blocked {blocked:.1f} s after close()"
    assert isinstance(waiter.error, PoolClosed), repr(waiter.error)


def test_wait_during_outage_pause_is_woken_by_close(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=2, max_size=2)
    lease = pool.acquire()
    lease.drop()  # one of two gone, its replacement must be opened ...
    db.fail_all_connects()  # ... but the server is down: outage, retries every <= 0.5 s
    pool.acquire().drop()
    time.sleep(2.0)  # the retry delay has grown to its 0.5 s maximum
    errors = pool.stats().connect_errors
    # Start wait() right after a failed retry, so the next one is ~0.5 s away, and close at once.
    deadline = time.monotonic() + 2.0
    while pool.stats().connect_errors == errors and time.monotonic() < deadline:
        time.sleep(0.001)
    waiter = start(lambda: pool.wait(timeout=None), "wait")
    time.sleep(0.05)
    pool.close(force=True)
    waiter.join(3.0)
    assert not waiter.is_alive(), "wait(timeout=None) blocked forever after close() in an outage"
    assert isinstance(waiter.error, PoolClosed), repr(waiter.error)


def test_sync_close_timeout_takes_back_a_lost_lease(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=2)
    time.sleep(0.3)  # the worker's first round (due at start) is over
    kept = pool.acquire()
    pool.acquire()  # lost at once: nobody holds it
    gc.collect()
    closer_started = time.monotonic()
    returner = __import__("threading").Timer(0.2, kept.release)
    returner.start()
    pool.close(timeout=5.0)
    took = time.monotonic() - closer_started
    assert took < 2.0, f"close(timeout=5) took {took:.2f} s; reclaimed={pool.stats().reclaimed}"
    assert pool.stats().reclaimed == 1, pool.stats()
