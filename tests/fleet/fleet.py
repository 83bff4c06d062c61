"""The parent side of a fleet run: a database of its own, worker processes released together,
the server's backends sampled while they run, their reports collected and the rows counted.

Shared by tests/fleet/test_fleet.py and benchmarks/bench_fleet.py; it asserts nothing.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

import sessionpool
from tests.fleet.sampler import SERVER_DSN, BackendSampler
from tests.fleet.worker import START_PATIENCE, TABLE, Plan, Report, forked_worker, spawned_worker

__all__ = [
    "FleetResult",
    "create_fleet_database",
    "drop_fleet_database",
    "rows_per_worker",
    "run_fleet",
]


def create_fleet_database() -> str:
    """Create a fresh database with the fleet table on the real server; returns its name.

    A database of its own lets the sampler count the fleet's backends and nothing else (other
    tests may be using ``test`` at the same time).
    """
    name = f"sp_fleet_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
        # template0 accepts no connections, so nobody else's session can block the copy.
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    dsn = SERVER_DSN.replace("dbname=postgres", f"dbname={name}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {TABLE} (run_id text NOT NULL, worker int NOT NULL,"
            " lane int NOT NULL, seq int NOT NULL)"
        )
        conn.execute(f"CREATE INDEX ON {TABLE} (run_id, worker, lane)")
    return name


def drop_fleet_database(name: str) -> None:
    """Drop a database made by `create_fleet_database`, ending any session still on it."""
    with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def rows_per_worker(database: str, run_id: str) -> dict[int, int]:
    """Rows committed by each worker of one run, counted straight on the server."""
    dsn = SERVER_DSN.replace("dbname=postgres", f"dbname={database}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT worker, count(*) FROM {TABLE} WHERE run_id = %s GROUP BY worker", (run_id,)
        ).fetchall()
    return {int(worker): int(count) for worker, count in rows}


@dataclass
class FleetResult:
    """The reports of one run (sorted by worker) and what the sampler saw of the server."""

    reports: list[Report]
    peak_server_connections: int
    samples: int
    elapsed: float  # seconds from go to the last report
    go_at: float  # time.monotonic() when the workers were released

    @property
    def committed(self) -> int:
        return sum(report.total_committed for report in self.reports)

    @property
    def error_count(self) -> int:
        return sum(report.error_count for report in self.reports)

    @property
    def connections_opened(self) -> int:
        return sum(report.connections_opened for report in self.reports)

    @property
    def connect_errors(self) -> int:
        return sum(report.connect_errors for report in self.reports)

    @property
    def errors(self) -> list[str]:
        return [text for report in self.reports for text in report.errors]

    @property
    def fatal(self) -> list[str]:
        return [f"worker {r.worker}: {r.fatal}" for r in self.reports if r.fatal]


def run_fleet(
    plan: Plan,
    processes: int,
    database: str,
    *,
    start_method: str = "spawn",
    pool: sessionpool.Pool | None = None,
    during: Callable[[float], None] | None = None,
) -> FleetResult:
    """Run ``processes`` workers on ``plan`` at once and gather what they did.

    Args:
        plan: what each worker does.
        processes: how many worker processes.
        database: the fleet's database, whose backends the sampler counts.
        start_method: multiprocessing start method; ``"fork"`` when ``pool`` is given.
        pool: a pool created in this process, used by forked workers (the pre-fork
            pattern); None: each worker creates its own from ``plan``.
        during: called in this process with the go time while the workers run (a fault to
            inject); it must return before the workers are expected to finish.
    Raises:
        RuntimeError: a worker did not start or report within the time limits.
    """
    if pool is not None and start_method != "fork":
        raise ValueError("a pool created before the workers can only reach them by fork")
    context: Any = multiprocessing.get_context(start_method)
    ready, results, go = context.Queue(), context.Queue(), context.Event()
    workers = []
    for index in range(processes):
        if pool is None:
            args: tuple[Any, ...] = (plan, index, ready, go, results)
            target: Callable[..., None] = spawned_worker
        else:
            args, target = (pool, plan, index, ready, go, results), forked_worker
        workers.append(context.Process(target=target, args=args, daemon=True))
    try:
        for process in workers:
            process.start()
        _wait_ready(ready, processes)
        with BackendSampler(database) as sampler:
            go_at = time.monotonic()
            go.set()
            if during is not None:
                during(go_at)
            reports = _collect(results, workers, deadline=go_at + plan.duration + 180)
            elapsed = time.monotonic() - go_at
        for process in workers:
            process.join(60)
    finally:
        for process in workers:
            if process.is_alive():
                process.kill()
                process.join(10)
    return FleetResult(
        sorted(reports, key=lambda report: report.worker),
        sampler.peak,
        sampler.samples,
        elapsed,
        go_at,
    )


def _wait_ready(ready: Any, processes: int) -> None:
    seen: set[int] = set()
    deadline = time.monotonic() + START_PATIENCE
    while len(seen) < processes:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RuntimeError(f"only {len(seen)} of {processes} workers started in time")
        try:
            seen.add(ready.get(timeout=left))
        except queue.Empty:
            continue


def _collect(results: Any, workers: list[Any], deadline: float) -> list[Report]:
    reports: list[Report] = []
    while len(reports) < len(workers):
        try:
            reports.append(results.get(timeout=0.5))
            continue
        except queue.Empty:
            pass
        dead = [p.exitcode for p in workers if not p.is_alive()]
        if len(dead) == len(workers) and results.empty():
            raise RuntimeError(f"workers exited without reporting (exit codes {dead})")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(reports)} of {len(workers)} workers reported in time")
    return reports
