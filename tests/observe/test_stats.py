"""stats() and stats(reset=True) on real SQLite pools: counters, timing histograms, causes of
closes, and the interval arithmetic; plus the histogram's own arithmetic."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import pytest

import sessionpool
from sessionpool import PoolTimeout
from sessionpool.observe import BOUNDS, HistogramSnapshot
from sessionpool.observe.histogram import Histogram
from tests.fakes.polling import eventually


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'stats.db'}"


def hold_all(pool: sessionpool.Pool, count: int, seconds: float) -> None:
    """``count`` threads each borrow a connection at once and keep it ``seconds``."""
    barrier = threading.Barrier(count)

    def borrow() -> None:
        with pool.acquire(timeout=10):
            barrier.wait(timeout=10)
            time.sleep(seconds)

    threads = [threading.Thread(target=borrow) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)


def test_every_acquire_has_one_wait_time_and_timeouts_are_counted(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=2)
    pool.wait(5)
    for _ in range(50):  # the fast lane: waits of 0 s
        pool.acquire().release()
    first, second = pool.acquire(), pool.acquire()  # the second one is opened: it waits
    timeouts = 0
    for _ in range(3):
        try:
            pool.acquire(timeout=0.02)
        except PoolTimeout:
            timeouts += 1
    first.release()
    second.release()
    stats = pool.stats()
    assert stats.acquires == 52
    assert stats.wait_time.count == stats.acquires  # timeouts are not successful acquires
    assert stats.timeouts == timeouts == 3
    assert stats.errors["timeout"] == 3
    assert stats.wait_time.max > 0  # the acquire that waited for a connect
    assert stats.connect_time.count == stats.connections_opened == 2
    assert stats.connect_time.sum > 0
    assert not stats.use_time_recorded and stats.use_time.count == 0
    pool.close()


def test_detailed_stats_record_use_time_and_the_exact_peak(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=0, max_size=4, detailed_stats=True)
    hold_all(pool, 3, 0.2)
    stats = pool.stats()
    assert stats.use_time_recorded
    assert stats.use_time.count == 3
    assert 0.2 <= stats.use_time.mean < 5
    assert stats.busy_peak == 3
    assert 0 < stats.busy_mean <= 3
    pool.close()


def test_reset_on_read_reports_intervals_and_leaves_totals_alone(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=3, detailed_stats=True)
    pool.wait(5)
    for _ in range(10):
        pool.acquire().release()
    first = pool.stats(reset=True)
    assert first.acquires == 10 and first.wait_time.count == 10
    hold_all(pool, 2, 0.05)
    second = pool.stats(reset=True)
    assert second.acquires == 2
    assert second.wait_time.count == 2 and second.use_time.count == 2
    assert second.busy_peak == 2
    assert 0 < second.elapsed < first.elapsed + 60
    third = pool.stats(reset=True)
    assert third.acquires == 0 and third.wait_time.count == 0 and third.use_time.count == 0
    assert third.busy_peak == 0
    totals = pool.stats()
    assert totals.acquires == 12 and totals.wait_time.count == 12
    assert totals.busy_peak == 2
    assert totals.opened == third.opened  # figures of the moment are never differences
    pool.close()


def test_closes_are_counted_by_cause(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=0, max_size=2, max_uses=1)
    pool.acquire().release()  # retired on return: max_uses
    with pool.acquire():
        pass
    lease = pool.acquire()
    lease.drop()
    second = pool.acquire()
    pool.release(second)
    eventually(lambda: pool.stats().connections_closed == 4, "four connections closed")
    reasons = pool.stats().closed_by_reason
    assert reasons == {"max_uses reached": 3, "dropped by the borrower": 1}, reasons
    pool.close()


def test_checks_and_resets_are_counted(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=1, ping_interval=0)
    pool.wait(5)
    with pool.acquire() as conn:
        conn.execute("create table t (x)")
        conn.commit()
    for _ in range(3):
        with pool.acquire() as conn:
            conn.execute("insert into t values (1)")  # left open: the reset rolls it back
    stats = pool.stats()
    assert stats.pings == 4 and stats.ping_failures == 0
    # The first borrower committed: nothing to reset. The others left an insert open.
    assert stats.resets == 3 and stats.reset_failures == 0
    assert stats.reset_time.count == 3
    pool.close()


def test_a_disconnect_is_counted(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=1)
    pool.wait(5)
    pool._saw_disconnect(time.monotonic())  # what a borrower's dead-connection error does
    assert pool.stats().disconnects == 1 and pool.stats().errors["disconnect"] == 1
    pool.close()


async def test_async_pool_stats(url: str) -> None:
    pool = await sessionpool.create_async_pool(
        url.replace("sqlite://", "sqlite+aiosqlite://"), min_size=1, max_size=1
    )
    pool.detailed_stats = True
    for _ in range(5):
        async with pool.acquire():
            pass
    held = await pool.acquire()
    with pytest.raises(PoolTimeout):
        await pool.acquire(timeout=0.02)
    await held.release()
    stats = pool.stats(reset=True)
    assert stats.acquires == 6 and stats.wait_time.count == 6
    assert stats.use_time.count == 6 and stats.timeouts == 1
    assert stats.busy_peak == 1
    await pool.close()


# -- the histogram ----------------------------------------------------------------------------


def test_histogram_buckets_quantiles_and_differences() -> None:
    histogram = Histogram()
    for value in (0.0005, 0.0005, 0.003, 0.02, 7.0):
        histogram.record(value)
    snap = histogram.snapshot()
    assert snap.count == 5
    assert snap.sum == pytest.approx(7.024)
    assert snap.max == 7.0
    assert snap.counts[BOUNDS.index(0.0005)] == 2  # bounds are inclusive
    cumulative = snap.cumulative()
    assert cumulative[-1] == (math.inf, 5)
    assert [count for _, count in cumulative] == sorted(count for _, count in cumulative)
    assert snap.quantile(0.4) <= 0.0005
    assert 0.001 < snap.quantile(0.6) <= 0.005
    assert snap.quantile(1.0) == pytest.approx(7.0)
    with pytest.raises(ValueError):
        snap.quantile(0)
    histogram.record(100.0)  # above the last bound: the top bucket answers with the max
    later = histogram.snapshot()
    assert later.quantile(1.0) == 100.0
    interval = later - snap
    assert interval.count == 1 and interval.sum == pytest.approx(100.0)
    assert HistogramSnapshot.empty().quantile(0.5) == 0.0
    assert histogram.snapshot(implied_zeros=4).counts[0] == 4


def test_a_forked_child_starts_its_own_figures(url: str) -> None:
    import os

    pool = sessionpool.create_pool(url, min_size=1, max_size=2)
    pool.wait(5)
    for _ in range(5):
        pool.acquire().release()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its pool opens its own connection and counts from zero
        try:
            pool.acquire().release()
            stats = pool.stats()
            os.write(write, f"{stats.acquires},{stats.wait_time.count}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == "1,1"
    assert pool.stats().acquires == 5
    pool.close()
