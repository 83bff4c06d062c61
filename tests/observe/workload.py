"""Workloads for the exporter tests: real borrowing on real pools, with what was done counted
by the test itself (acquires that succeeded, PoolTimeout raised) so that scraped figures can
be checked against it. No timing thresholds: waits and timeouts are forced by holding every
connection, never by hoping the machine is slow or fast.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import sessionpool
from tests.fakes.polling import PATIENCE, eventually

__all__ = ["Tally", "drive_async", "drive_threads", "force_wait_and_timeout"]


@dataclass
class Tally:
    """What a workload did: acquires that got a connection, timeouts raised."""

    acquired: int = 0
    timeouts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, acquired: int = 0, timeouts: int = 0) -> None:
        with self._lock:
            self.acquired += acquired
            self.timeouts += timeouts


def _use(connection: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("select 1")
    assert cursor.fetchone()[0] == 1
    cursor.close()


def force_wait_and_timeout(pool: Any, tally: Tally) -> None:
    """Hold every connection, have one caller wait (then served) and one give up: at least
    one acquire that waited and exactly one PoolTimeout, whatever the machine's speed."""
    held = [pool.acquire(timeout=30.0) for _ in range(pool.max_size)]
    tally.add(acquired=len(held))
    served: list[Any] = []
    waiter = threading.Thread(target=lambda: served.append(pool.acquire(timeout=30.0)))
    waiter.start()
    eventually(lambda: pool.waiting == 1, "a caller waiting for a connection")
    try:
        pool.acquire(timeout=0.05)
    except sessionpool.PoolTimeout:
        tally.add(timeouts=1)
    else:  # pragma: no cover - every connection is held: it cannot succeed
        raise AssertionError("an acquire succeeded with every connection held")
    held.pop().release()
    waiter.join(timeout=30.0)
    assert served, "the waiter was not served"
    tally.add(acquired=1)
    for lease in (*held, *served):
        lease.release()


def drive_threads(
    pool: Any, tally: Tally, *, threads: int = 6, rounds: int = 25, hold: float = 0.002
) -> None:
    """``threads`` borrowers, more than the pool has connections, each ``rounds`` times:
    acquire, run a query, hold a moment, give back. Timeouts are counted, not failures."""
    errors: list[BaseException] = []

    def borrower() -> None:
        try:
            for _ in range(rounds):
                try:
                    lease = pool.acquire(timeout=30.0)
                except sessionpool.PoolTimeout:
                    tally.add(timeouts=1)
                    continue
                tally.add(acquired=1)
                with lease:
                    _use(lease)
                    time.sleep(hold)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=borrower) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120.0)
    assert not errors, errors
    assert not any(worker.is_alive() for worker in workers), "a borrower hung"


async def drive_async(
    pool: Any, tally: Tally, *, tasks: int = 6, rounds: int = 15, hold: float = 0.002
) -> None:
    """`drive_threads` for an AsyncPool, plus one forced wait and one forced timeout."""
    held = [await pool.acquire(timeout=30.0) for _ in range(pool.max_size)]
    tally.add(acquired=len(held))
    waiter = asyncio.ensure_future(pool.acquire(timeout=30.0))
    deadline = time.monotonic() + PATIENCE
    while pool.waiting == 0:
        assert time.monotonic() < deadline, "the waiter never queued"
        await asyncio.sleep(0.001)
    try:
        await pool.acquire(timeout=0.05)
    except sessionpool.PoolTimeout:
        tally.add(timeouts=1)
    await held.pop().release()
    held.append(await asyncio.wait_for(waiter, 30.0))
    tally.add(acquired=1)
    for lease in held:
        await lease.release()

    async def borrower() -> None:
        for _ in range(rounds):
            try:
                lease = await pool.acquire(timeout=30.0)
            except sessionpool.PoolTimeout:
                tally.add(timeouts=1)
                continue
            tally.add(acquired=1)
            async with lease:
                cursor = await lease.execute("select 1")
                assert (await cursor.fetchone())[0] == 1
                await asyncio.sleep(hold)

    await asyncio.wait_for(asyncio.gather(*(borrower() for _ in range(tasks))), 120.0)
