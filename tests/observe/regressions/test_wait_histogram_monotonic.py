"""wait_time's first bucket is made of "implied zeros" (acquires - waits recorded). An
acquire is counted when the core lends the slot, its wait is recorded only after the check /
full reset that follows: a reading in between counts it as a 0 s wait, the next moves it to
its real bucket. So the cumulative bucket le=0.0001 goes *down* between two scrapes (a
Prometheus counter reset), and an interval of stats(reset=True) holds a negative count."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sessionpool


def _blocking_on_connect() -> tuple[Any, threading.Event, threading.Event, threading.Event]:
    armed, entered, go = threading.Event(), threading.Event(), threading.Event()

    def on_connect(connection: Any) -> None:
        if armed.is_set():
            entered.set()
            assert go.wait(30), "test never released the reset"

    return on_connect, armed, entered, go


def test_wait_buckets_never_decrease(tmp_path: Path) -> None:
    on_connect, armed, entered, go = _blocking_on_connect()
    pool = sessionpool.create_pool(
        f"sqlite:///{tmp_path / 'h.db'}", min_size=1, max_size=1, on_connect=on_connect
    )
    try:
        pool.wait(timeout=10)
        with pool.acquire(timeout=5) as lease:
            lease.execute("select 1")  # used: not fresh any more
        armed.set()
        result: list[Any] = []
        worker = threading.Thread(
            target=lambda: result.append(pool.acquire(timeout=30, purity="new")), daemon=True
        )
        worker.start()
        assert entered.wait(10)
        during = pool.stats()  # the purity="new" acquire is lent, its wait not recorded yet
        first = pool.stats(reset=True)
        go.set()
        worker.join(10)
        assert result, "the purity='new' acquire did not finish"
        result[0].release()
        after = pool.stats()
        second = pool.stats(reset=True)
        # Prometheus buckets are counters: le=0.0001 must never go down.
        before_le = during.wait_time.cumulative()[0][1]
        after_le = after.wait_time.cumulative()[0][1]
        assert after_le >= before_le, (during.wait_time.counts, after.wait_time.counts)
        # An interval is a histogram: no bucket below zero.
        assert min(second.wait_time.counts) >= 0, second.wait_time.counts
        assert first.acquires + second.acquires == after.acquires
    finally:
        go.set()
        pool.close(force=True)
