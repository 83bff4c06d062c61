"""Many threads on one threaded Pool: one borrower per connection, and the books balance after."""

from __future__ import annotations

import functools
import random
import threading

import sessionpool
from tests.fakes.fake_dbapi import FakeDatabase
from tests.sync.conftest import PoolFactory, assert_consistent, start

ROUNDS = 150


def test_mixed_traffic_keeps_one_borrower_per_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=3, max_overflow=1, homogeneous=False)
    problems: list[BaseException] = []
    counts = {"served": 0, "timed_out": 0, "dropped": 0}
    guard = threading.Lock()

    def borrower(seed: int) -> None:
        rng = random.Random(seed)
        me = f"borrower-{seed}"
        for _ in range(ROUNDS):
            kind = rng.randrange(4)
            try:
                if kind == 0:
                    lease = pool.acquire(timeout=0.002)
                elif kind == 1:
                    lease = pool.acquire(tag=rng.choice(["a=1", "b=2"]), timeout=1.0)
                elif kind == 2:
                    lease = pool.acquire(user=rng.choice(["u", "v"]), password="p", timeout=1.0)
                else:
                    lease = pool.acquire(timeout=1.0)
            except sessionpool.PoolTimeout:
                with guard:
                    counts["timed_out"] += 1
                continue
            except BaseException as exc:
                problems.append(exc)
                return
            try:
                driver = lease.driver_connection
                driver.enter_borrow(me)
                lease.cursor().execute("select 1")
                driver.exit_borrow(me)
                if rng.random() < 0.05:
                    lease.drop()
                    with guard:
                        counts["dropped"] += 1
                elif kind == 1 and rng.random() < 0.5:
                    lease.release(tag=rng.choice(["a=1", "b=2", ""]))
                else:
                    lease.release()
            except BaseException as exc:
                problems.append(exc)
                return
            with guard:
                counts["served"] += 1

    workers = [start(functools.partial(borrower, seed), f"borrower-{seed}") for seed in range(8)]
    for worker in workers:
        worker.finish(15.0)
    assert problems == []
    assert counts["served"] + counts["timed_out"] == 8 * ROUNDS
    assert counts["served"] > 8 * ROUNDS // 2
    assert pool.busy == 0 and pool.waiting == 0
    assert pool.opened <= 4
    assert_consistent(pool, db)
    assert all(conn.borrower is None for conn in db.connections)
    stats = pool.stats()
    assert stats.connect_errors == 0
    # Every wait ended in exactly one of: a hand-off or a timeout.
    assert stats.waits == stats.handoffs + stats.timeouts, stats
