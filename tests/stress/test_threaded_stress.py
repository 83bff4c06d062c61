"""Bounded threaded stress of Pool: many threads over few connections, invariants after every step.

Short form by default (CI); SESSIONPOOL_STRESS=full runs the issue's 32 threads x 20,000 cycles.
"""

from __future__ import annotations

import os
import random
import threading
import time

import pytest

import sessionpool
from tests.fakes.fake_dbapi import FakeConnection, FakeDatabase

pytestmark = pytest.mark.stress

FULL = os.environ.get("SESSIONPOOL_STRESS") == "full"
THREADS = 32
CYCLES = 20_000 if FULL else 1_500
MAX_SIZE = 4


def _check_step(pool: sessionpool.Pool, cap: int) -> None:
    stats = pool.stats()
    assert stats.opened <= cap, stats
    assert stats.busy + stats.idle == stats.opened, stats
    assert stats.busy >= 1, stats  # the caller itself holds one


@pytest.mark.timeout(600 if FULL else 120)
@pytest.mark.parametrize("max_overflow", [0, 2], ids=["no-overflow", "overflow-2"])
def test_many_threads_few_connections_keep_every_invariant(max_overflow: int) -> None:
    db = FakeDatabase()
    cap = MAX_SIZE + max_overflow
    pool = sessionpool.create_pool(
        db.connect, min_size=2, max_size=MAX_SIZE, max_overflow=max_overflow, wait_timeout=30.0
    )
    failures: list[BaseException] = []
    served = [0] * THREADS
    timeouts = [0] * THREADS
    dropped = [0] * THREADS
    start = threading.Barrier(THREADS)

    def worker(index: int) -> None:
        rng = random.Random(index)
        owner = f"worker-{index}"
        try:
            start.wait()
            for cycle in range(CYCLES):
                short = rng.random() < 0.01
                try:
                    lease = pool.acquire(timeout=0.0005 if short else 30.0)
                except sessionpool.PoolTimeout:
                    timeouts[index] += 1
                    continue
                conn: FakeConnection = lease.driver_connection
                conn.enter_borrow(owner)  # raises if another borrower holds it
                _check_step(pool, cap)
                if cycle % 97 == 0:
                    lease.cursor().execute("select 1")
                conn.exit_borrow(owner)
                if rng.random() < 0.002:
                    lease.drop()
                    dropped[index] += 1
                else:
                    lease.release()
                served[index] += 1
        except BaseException as exc:  # surfaced to the test thread below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(THREADS)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=540 if FULL else 100)
    elapsed = time.monotonic() - began
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert not failures, failures[:3]

    stats = pool.stats()
    assert stats.busy == 0 and stats.waiting == 0 and stats.opening == 0, stats
    assert stats.opened <= cap
    assert sum(served) + sum(timeouts) == THREADS * CYCLES
    # Every worker got served: FIFO hand-off starves nobody.
    assert min(served) > 0.5 * CYCLES, (min(served), elapsed)
    # The pool's own books agree with the driver's: what is open is what the pool holds.
    assert db.open_connections == stats.opened
    assert stats.connections_opened - stats.connections_closed == stats.opened
    assert stats.connections_closed >= sum(dropped)
    assert stats.acquires == sum(served)

    pool.close()
    assert db.open_connections == 0
