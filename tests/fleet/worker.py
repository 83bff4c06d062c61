"""What one fleet worker process runs: lanes (threads or asyncio tasks) committing short
transactions through a sessionpool pool until a deadline, then one `Report` to the parent.

It never judges what it saw: failures are counted and described, and test_fleet.py asserts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import sessionpool

__all__ = [
    "DRIVERS",
    "TABLE",
    "Plan",
    "Report",
    "forked_worker",
    "local_port",
    "spawned_worker",
    "url_driver",
]

TABLE = "fleet_events"
# "psycopg-async" is psycopg 3's AsyncConnection in an AsyncPool; the others name URL drivers.
DRIVERS = ("psycopg", "psycopg2", "asyncpg", "psycopg-async")
ASYNC_DRIVERS = ("asyncpg", "psycopg-async")
_URL_DRIVER = {
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "asyncpg": "asyncpg",
    "psycopg-async": "psycopg",
}
MAX_ERROR_TEXTS = 20
# Seconds a child waits for the parent's go signal (others may still be importing).
START_PATIENCE = 120.0

_INSERT = "INSERT INTO fleet_events (run_id, worker, lane, seq) VALUES (%s, %s, %s, %s)"
# The transaction reads its own insert back: a count off by one means the two statements did
# not run in one transaction on one server session (what a transaction pooler must keep).
_COUNT = "SELECT count(*) FROM fleet_events WHERE run_id = %s AND worker = %s AND lane = %s"
# Server-side time inside the transaction, as a real query would spend (benchmark only).
_HOLD = "SELECT pg_sleep(%s)"


def url_driver(driver: str) -> str:
    """The ``+driver`` part of a URL for one of `DRIVERS`."""
    return _URL_DRIVER[driver]


def _numbered(sql: str) -> str:
    """asyncpg's $n placeholders for the %s ones above."""
    parts = sql.split("%s")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


@dataclass(frozen=True)
class Plan:
    """One fleet run, as every worker process receives it (picklable for spawn).

    Args:
        url: where the pools connect (the PgBouncer or the server), its ``+driver`` part
            from `url_driver`.
        driver: one of `DRIVERS`.
        run_id: tags this run's rows in `TABLE`.
        lanes: threads (sync drivers) or tasks (async ones) per process.
        duration: seconds of load once the parent says go.
        settings: keyword settings for create_pool / create_async_pool.
        record_ports: note the local port of each connection used (pre-fork test).
        hold: seconds each transaction also spends in ``pg_sleep`` on the server (0: none).
    """

    url: str
    driver: str
    run_id: str
    lanes: int = 4
    duration: float = 3.0
    settings: dict[str, Any] = field(default_factory=dict)
    record_ports: bool = False
    hold: float = 0.0


@dataclass
class Report:
    """What one worker process did: per-lane commits, its failures, and when it last committed."""

    worker: int
    pid: int
    committed: list[int]
    last_commit: list[float]  # time.monotonic() per lane (system-wide on Linux); 0.0 = never
    error_count: int = 0
    errors: list[str] = field(default_factory=list)
    client_ports: list[int] = field(default_factory=list)
    connections_opened: int = 0  # by this process's pool (client connections to a pooler)
    connect_errors: int = 0  # failed connects of the pool (retried by it, never a caller's)
    fatal: str | None = None  # the worker could not run at all (pool creation failed...)

    @property
    def total_committed(self) -> int:
        return sum(self.committed)


class _Tally:
    """Per-process counters, shared by the lanes; the lock makes error bookkeeping atomic."""

    def __init__(self, worker: int, lanes: int) -> None:
        self.report = Report(worker, os.getpid(), [0] * lanes, [0.0] * lanes)
        self.ports: set[int] = set()
        self._lock = threading.Lock()

    def committed(self, lane: int) -> None:
        self.report.committed[lane] += 1  # one writer per lane: no lock needed
        self.report.last_commit[lane] = time.monotonic()

    def failed(self, lane: int, error: BaseException) -> None:
        text = f"lane {lane}: {type(error).__module__}.{type(error).__name__}: {error}"
        with self._lock:
            self.report.error_count += 1
            if len(self.report.errors) < MAX_ERROR_TEXTS:
                self.report.errors.append(text.strip())

    def pool_figures(self, stats: sessionpool.PoolStats) -> None:
        self.report.connections_opened = stats.connections_opened
        self.report.connect_errors = stats.connect_errors

    def finish(self) -> Report:
        self.report.client_ports = sorted(self.ports)
        return self.report


def local_port(fd: int) -> int:
    """The local TCP port of the socket behind ``fd`` (through a duplicate, closed at once)."""
    with socket.fromfd(fd, socket.AF_INET, socket.SOCK_STREAM) as sock:
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- sync lanes


def _sync_lane(pool: sessionpool.Pool, plan: Plan, tally: _Tally, lane: int, end: float) -> None:
    worker = tally.report.worker
    seq = 0
    while time.monotonic() < end:
        try:
            with pool.session() as session:
                session.execute(_INSERT, (plan.run_id, worker, lane, seq))
                (count,) = session.fetchone(_COUNT, (plan.run_id, worker, lane))
                if plan.hold:
                    session.execute(_HOLD, (plan.hold,))
                if plan.record_ports:
                    raw = session.connection.driver_connection
                    tally.ports.add(local_port(raw.fileno()))
                if count != seq + 1:
                    raise AssertionError(f"transaction saw {count} own rows, expected {seq + 1}")
        except Exception as error:
            tally.failed(lane, error)
            time.sleep(0.01)  # a failing pooler must not turn this lane into a busy loop
            continue
        seq += 1
        tally.committed(lane)


def _drive_sync(pool: sessionpool.Pool, plan: Plan, tally: _Tally) -> None:
    end = time.monotonic() + plan.duration
    threads = [
        threading.Thread(target=_sync_lane, args=(pool, plan, tally, lane, end), daemon=True)
        for lane in range(plan.lanes)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(plan.duration + 120)


# --------------------------------------------------------------------------- async lanes


async def _async_lane(
    pool: sessionpool.AsyncPool, plan: Plan, tally: _Tally, lane: int, end: float
) -> None:
    numbered = plan.driver == "asyncpg"
    insert, count_sql, hold_sql = (
        (_numbered(_INSERT), _numbered(_COUNT), _numbered(_HOLD))
        if numbered
        else (_INSERT, _COUNT, _HOLD)
    )
    worker = tally.report.worker
    seq = 0
    while time.monotonic() < end:
        try:
            async with pool.session() as session:
                await session.execute(insert, (plan.run_id, worker, lane, seq))
                (count,) = await session.fetchone(count_sql, (plan.run_id, worker, lane))
                if plan.hold:
                    await session.execute(hold_sql, (plan.hold,))
                if count != seq + 1:
                    raise AssertionError(f"transaction saw {count} own rows, expected {seq + 1}")
        except Exception as error:
            tally.failed(lane, error)
            await asyncio.sleep(0.01)
            continue
        seq += 1
        tally.committed(lane)


async def _run_async(plan: Plan, tally: _Tally, go: Any, ready: Any) -> None:
    async with sessionpool.create_async_pool(plan.url, **plan.settings) as pool:
        ready.put(tally.report.worker)
        # The go signal is a multiprocessing Event: wait for it off the loop.
        if not await asyncio.to_thread(go.wait, START_PATIENCE):
            raise TimeoutError("no go signal from the parent")
        end = time.monotonic() + plan.duration
        lanes = [_async_lane(pool, plan, tally, lane, end) for lane in range(plan.lanes)]
        await asyncio.gather(*lanes)
        tally.pool_figures(pool.stats())


# --------------------------------------------------------------------------- process entries


def spawned_worker(plan: Plan, worker: int, ready: Any, go: Any, results: Any) -> None:
    """Entry of a worker process with a pool of its own: create it, say ready, wait for go,
    drive load, put a `Report` on ``results`` (also when something fails)."""
    tally = _Tally(worker, plan.lanes)
    try:
        if plan.driver in ASYNC_DRIVERS:
            asyncio.run(_run_async(plan, tally, go, ready))
        else:
            with sessionpool.create_pool(plan.url, **plan.settings) as pool:
                ready.put(worker)
                if not go.wait(START_PATIENCE):
                    raise TimeoutError("no go signal from the parent")
                _drive_sync(pool, plan, tally)
                tally.pool_figures(pool.stats())
    except BaseException:
        tally.report.fatal = traceback.format_exc()
        ready.put(worker)  # never leave the parent waiting for a worker that died
    results.put(tally.finish())


def forked_worker(
    pool: sessionpool.Pool, plan: Plan, worker: int, ready: Any, go: Any, results: Any
) -> None:
    """Entry of a forked worker that uses the pool its parent created before the fork."""
    tally = _Tally(worker, plan.lanes)
    try:
        ready.put(worker)
        if not go.wait(START_PATIENCE):
            raise TimeoutError("no go signal from the parent")
        _drive_sync(pool, plan, tally)
        tally.pool_figures(pool.stats())
    except BaseException:
        tally.report.fatal = traceback.format_exc()
    results.put(tally.finish())
