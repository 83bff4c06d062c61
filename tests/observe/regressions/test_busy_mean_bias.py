"""README: `busy_mean` is the time-weighted mean of borrowed connections; without detailed
statistics advise() takes Little's L from it (W = L / lambda). The busy count is sampled on
every acquire that leaves the fast lane (right after it lent a connection, so at a local
maximum) and held as a step until the next sample, while returns are never sampled: a pool
whose acquires leave the fast lane (tags, users, partitions, a checkout listener...) reports
itself busy nearly all the time though it is almost always idle."""

from __future__ import annotations

import time
from pathlib import Path

import sessionpool


def test_busy_mean_follows_the_time_connections_are_held(tmp_path: Path) -> None:
    pool = sessionpool.create_pool(f"sqlite:///{tmp_path / 'b.db'}", min_size=1, max_size=2)
    try:
        pool.wait(timeout=10)
        pool.stats(reset=True)  # the interval starts now
        started = time.monotonic()
        held = 0.0
        for _ in range(40):
            taken = time.monotonic()
            lease = pool.acquire(timeout=5, tag="app=reports")  # a tagged acquire: slow path
            lease.release(tag="app=reports")
            held += time.monotonic() - taken
            time.sleep(0.02)  # idle between requests
        interval = pool.stats(reset=True)
        elapsed = time.monotonic() - started
        real_mean = held / elapsed  # an upper bound on the real mean busy count
        assert interval.busy_mean <= 2 * real_mean + 0.1, (interval.busy_mean, real_mean)
    finally:
        pool.close(force=True)
