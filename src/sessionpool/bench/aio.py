"""Speed benchmark of sessionpool's AsyncPool against an asyncio floor, peer pools and the
one-connection-per-task ceiling of each PostgreSQL driver.

The logic of ``benchmarks/bench_async.py`` and of ``sessionpool bench``; peers that are not
installed (or a PostgreSQL that does not answer) are skipped with the reason. Writes no file
of its own: the callers decide where tables and charts go.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import faulthandler
import gc
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from .. import create_async_pool
from .common import (
    ChartPanel,
    FakeCursor,
    Progress,
    fmt,
    markdown_table,
    median_or_nan,
    min_med_max,
    module_missing,
    percentile,
    print_progress,
    without_nan,
)

POOL_SIZE = 4  # (a) and (b)
TASKS = 16  # (b)
HOLD_S = 0.001
NOMINAL_OPS_PER_S = POOL_SIZE / HOLD_S
STARVED_FRACTION = 0.10  # a task below 10 % of total/TASKS counts as starved
QUERY_TASKS = 8  # (c)
QUERY_POOL_SIZE = 8
QUERY = "SELECT 1"
QUERY_WARMUP_S = 0.2  # untimed run before each timed (c) run: statement caches, prepares
MAX_BATCH_CYCLES = 200_000
MIN_BATCH_CYCLES = 100  # the real pools take tens of microseconds per cycle
STOP_GRACE_S = 10.0  # how long tasks get to finish after the stop before they count as hung
WATCHDOG_S = 900  # a contestant that deadlocks must not hang the run: dump stacks and exit

PG_CONNINFO = "dbname=test user=postgres host=127.0.0.1 port=5432"
ASYNCPG_ARGS: dict[str, Any] = {
    "host": "127.0.0.1",
    "port": 5432,
    "database": "test",
    "user": "postgres",
}
SP_ASYNCPG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
# psycopg connections run in autocommit everywhere, so that `SELECT 1` is one round trip for
# every psycopg contestant (otherwise each query opens a transaction the pools roll back).
SP_PSYCOPG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test?autocommit=true"

FLOOR = "floor"
SESSIONPOOL = "sessionpool"
SP_ASYNCPG = "sessionpool+asyncpg"
ASYNCPG_POOL = "asyncpg.Pool"
ASYNCPG_CEILING = "asyncpg-ceiling"
SP_PSYCOPG = "sessionpool+psycopg"
PSYCOPG_POOL = "psycopg_pool"
PSYCOPG_CEILING = "psycopg-ceiling"
REFERENCES = (FLOOR, ASYNCPG_CEILING, PSYCOPG_CEILING)
# (c): each contestant's ratio is to the ceiling of its own driver, from the same round.
CEILING_OF = {
    SP_ASYNCPG: ASYNCPG_CEILING,
    ASYNCPG_POOL: ASYNCPG_CEILING,
    ASYNCPG_CEILING: ASYNCPG_CEILING,
    SP_PSYCOPG: PSYCOPG_CEILING,
    PSYCOPG_POOL: PSYCOPG_CEILING,
    PSYCOPG_CEILING: PSYCOPG_CEILING,
}
TARGET_A = 2.0  # sessionpool (fake connection) within 2x the floor
TARGET_C = 0.9  # sessionpool+asyncpg at least 0.9x the asyncpg ceiling


# --------------------------------------------------------------------------- fake async driver


class FakeAsyncConnection:
    """An async connection whose methods do nothing, so only pool overhead is measured.
    ``cursor()`` is the local call a "touched" cycle makes (no await, like psycopg's)."""

    def cursor(self) -> FakeCursor:
        return FakeCursor()

    async def execute(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def rollback(self) -> None:
        return None

    async def close(self) -> None:
        return None


async def connect_fake() -> FakeAsyncConnection:
    return FakeAsyncConnection()


# The local, I/O-free call a touched cycle makes on each borrowed connection.
def touch_fake(conn: Any) -> None:
    conn.cursor()


def touch_asyncpg(conn: Any) -> None:
    conn.get_server_pid()


def touch_psycopg(conn: Any) -> None:
    conn.cursor()


# --------------------------------------------------------------------------- reference pool


class FloorPool:
    """The simplest correct asyncio pool: a deque of idle connections and a FIFO of futures.

    acquire pops an idle connection, or queues a future and awaits it; release hands the
    connection to the oldest waiter still waiting, or appends it. Waiters exist only while no
    connection is idle, so a newcomer never overtakes a waiter (no barging); a waiter
    cancelled after being served gives the connection back.
    """

    def __init__(self, connections: Iterable[Any]) -> None:
        self._idle = collections.deque(connections)
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()

    async def acquire(self) -> Any:
        if self._idle:
            return self._idle.pop()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                await self.release(waiter.result())
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    async def release(self, conn: Any) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def close(self) -> None:
        self._idle.clear()


# --------------------------------------------------------------------------- contestants


Cycles = Callable[[int, bool], Awaitable[None]]  # (n, touch): n acquire+release cycles
Worker = Callable[[int, asyncio.Event, list[int]], Awaitable[None]]  # (index, stop, ends)
Opener = Callable[[], Awaitable[Any]]


@dataclass
class Subject:
    """One opened pool for (a)/(b), seen through the same operations whatever its API is."""

    acquire: Callable[[], Awaitable[Any]]
    release: Callable[[Any], Awaitable[Any]]
    cycles: Cycles
    close: Callable[[], Awaitable[None]]


@dataclass
class QuerySubject:
    """One opened pool (or set of connections) for (c): a query loop per task."""

    worker: Worker
    close: Callable[[], Awaitable[None]]


@dataclass
class Contestant:
    name: str
    kind: str  # the connections it hands out: "fake", "asyncpg" or "psycopg"
    open_ab: Callable[[], Awaitable[Subject]] | None  # None: not in (a)/(b), or skipped
    open_c: Callable[[], Awaitable[QuerySubject]] | None  # None: not in (c), or skipped
    skip_reason: str = ""
    scenarios: str = ""  # those it takes part in, whether skipped or not


# The loops below are written once per API style, with the callables bound to locals, so that
# scenario (a) pays no adapter call per cycle. A touched cycle calls touch(conn) on each
# borrowed connection: sessionpool resets only connections that were touched.


def _give_back_loop(
    acquire: Callable[[], Awaitable[Any]],
    give_back: Callable[[Any], Awaitable[Any]],
    touch: Callable[[Any], None],
) -> Cycles:
    """For pools whose release takes the connection: await give_back(await acquire())."""

    async def cycles(n: int, touched: bool) -> None:
        if touched:
            for _ in range(n):
                conn = await acquire()
                touch(conn)
                await give_back(conn)
        else:
            for _ in range(n):
                await give_back(await acquire())

    return cycles


def _lease_loop(acquire: Callable[[], Awaitable[Any]], touch: Callable[[Any], None]) -> Cycles:
    """For sessionpool: await (await acquire()).release()."""

    async def cycles(n: int, touched: bool) -> None:
        if touched:
            for _ in range(n):
                lease = await acquire()
                touch(lease)
                await lease.release()
        else:
            for _ in range(n):
                await (await acquire()).release()

    return cycles


async def _release_lease(lease: Any) -> None:
    await lease.release()


async def _floor_subject() -> Subject:
    pool = FloorPool([await connect_fake() for _ in range(POOL_SIZE)])
    cycles = _give_back_loop(pool.acquire, pool.release, touch_fake)
    return Subject(pool.acquire, pool.release, cycles, pool.close)


async def _open_sessionpool(target: Any, size: int) -> Any:
    if callable(target):
        return await create_async_pool(creator=target, min_size=size, max_size=size)
    return await create_async_pool(target, min_size=size, max_size=size)


async def _sessionpool_subject(target: Any, touch: Callable[[Any], None]) -> Subject:
    pool = await _open_sessionpool(target, POOL_SIZE)
    return Subject(
        pool.acquire,
        _release_lease,
        _lease_loop(pool.acquire, touch),
        lambda: pool.close(force=True),
    )


async def _open_asyncpg_pool(size: int) -> Any:
    import asyncpg  # type: ignore[import-untyped]

    # Defaults as a user gets them: release runs conn.reset() (one round trip).
    return await asyncpg.create_pool(min_size=size, max_size=size, **ASYNCPG_ARGS)


async def _close_asyncpg_pool(pool: Any) -> None:
    try:
        await asyncio.wait_for(pool.close(), 10.0)
    except (asyncio.TimeoutError, TimeoutError):
        pool.terminate()


async def _asyncpg_pool_subject() -> Subject:
    pool = await _open_asyncpg_pool(POOL_SIZE)
    return Subject(
        pool.acquire,
        pool.release,
        _give_back_loop(pool.acquire, pool.release, touch_asyncpg),
        lambda: _close_asyncpg_pool(pool),
    )


async def _open_psycopg_pool(size: int) -> Any:
    from psycopg_pool import AsyncConnectionPool

    pool: Any = AsyncConnectionPool(
        PG_CONNINFO, min_size=size, max_size=size, open=False, kwargs={"autocommit": True}
    )
    await pool.open(wait=True, timeout=10.0)  # all min_size connections open before timing
    return pool


async def _psycopg_pool_subject() -> Subject:
    pool = await _open_psycopg_pool(POOL_SIZE)
    return Subject(
        pool.getconn,
        pool.putconn,
        _give_back_loop(pool.getconn, pool.putconn, touch_psycopg),
        lambda: pool.close(timeout=5.0),
    )


# (c) workers: the idiomatic `async with` form of each pool, one query per borrow.


def _fetchval_pooled(acquire: Callable[[], Any]) -> Worker:
    """asyncpg.Pool and sessionpool+asyncpg: async with pool.acquire() as c: c.fetchval()."""

    async def worker(index: int, stop: asyncio.Event, ends: list[int]) -> None:
        clock = time.perf_counter_ns
        while not stop.is_set():
            async with acquire() as conn:
                await conn.fetchval(QUERY)
            ends.append(clock())

    return worker


def _execute_pooled(borrow: Callable[[], Any]) -> Worker:
    """psycopg_pool (pool.connection()) and sessionpool+psycopg (pool.acquire())."""

    async def worker(index: int, stop: asyncio.Event, ends: list[int]) -> None:
        clock = time.perf_counter_ns
        while not stop.is_set():
            async with borrow() as conn:
                cursor = await conn.execute(QUERY)
                await cursor.fetchone()
            ends.append(clock())

    return worker


async def _asyncpg_ceiling() -> QuerySubject:
    import asyncpg

    conns = [await asyncpg.connect(**ASYNCPG_ARGS) for _ in range(QUERY_TASKS)]

    async def worker(index: int, stop: asyncio.Event, ends: list[int]) -> None:
        conn, clock = conns[index], time.perf_counter_ns
        while not stop.is_set():
            await conn.fetchval(QUERY)
            ends.append(clock())

    async def close() -> None:
        for conn in conns:
            await conn.close()

    return QuerySubject(worker, close)


async def _psycopg_ceiling() -> QuerySubject:
    import psycopg

    conns = [
        await psycopg.AsyncConnection.connect(PG_CONNINFO, autocommit=True)
        for _ in range(QUERY_TASKS)
    ]

    async def worker(index: int, stop: asyncio.Event, ends: list[int]) -> None:
        conn, clock = conns[index], time.perf_counter_ns
        while not stop.is_set():
            cursor = await conn.execute(QUERY)
            await cursor.fetchone()
            ends.append(clock())

    async def close() -> None:
        for conn in conns:
            await conn.close()

    return QuerySubject(worker, close)


async def _sessionpool_queries(url: str, style: Callable[[Callable[[], Any]], Worker]) -> Any:
    pool = await _open_sessionpool(url, QUERY_POOL_SIZE)
    return QuerySubject(style(pool.acquire), lambda: pool.close(force=True))


async def _asyncpg_pool_queries() -> QuerySubject:
    pool = await _open_asyncpg_pool(QUERY_POOL_SIZE)
    return QuerySubject(_fetchval_pooled(pool.acquire), lambda: _close_asyncpg_pool(pool))


async def _psycopg_pool_queries() -> QuerySubject:
    pool = await _open_psycopg_pool(QUERY_POOL_SIZE)
    return QuerySubject(_execute_pooled(pool.connection), lambda: pool.close(timeout=5.0))


async def _postgres_missing() -> str:
    """Empty when PostgreSQL answers (asked through whichever driver is installed)."""
    try:
        if not module_missing("asyncpg"):
            import asyncpg

            conn = await asyncpg.connect(timeout=3, **ASYNCPG_ARGS)
            await conn.close()
        elif not module_missing("psycopg"):
            import psycopg

            aconn = await psycopg.AsyncConnection.connect(PG_CONNINFO, connect_timeout=3)
            await aconn.close()
        else:
            return "neither asyncpg nor psycopg is installed"
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"PostgreSQL unreachable ({PG_CONNINFO}): {first}"
    return ""


async def build_contestants() -> list[Contestant]:
    """All contestants in display order; unavailable ones carry the reason they are skipped."""
    sp = ""  # sessionpool itself is always there; kept so every row reads alike
    pg = await _postgres_missing()
    apg = module_missing("asyncpg") or pg
    pcg = module_missing("psycopg") or pg
    pcg_pool = module_missing("psycopg_pool") or pcg
    candidates: list[tuple[str, str, str, Opener | None, Opener | None]] = [
        (FLOOR, "fake", "", _floor_subject, None),
        (SESSIONPOOL, "fake", sp, lambda: _sessionpool_subject(connect_fake, touch_fake), None),
        (
            SP_ASYNCPG,
            "asyncpg",
            sp or apg,
            lambda: _sessionpool_subject(SP_ASYNCPG_URL, touch_asyncpg),
            lambda: _sessionpool_queries(SP_ASYNCPG_URL, _fetchval_pooled),
        ),
        (ASYNCPG_POOL, "asyncpg", apg, _asyncpg_pool_subject, _asyncpg_pool_queries),
        (ASYNCPG_CEILING, "asyncpg", apg, None, _asyncpg_ceiling),
        (
            SP_PSYCOPG,
            "psycopg",
            sp or pcg,
            lambda: _sessionpool_subject(SP_PSYCOPG_URL, touch_psycopg),
            lambda: _sessionpool_queries(SP_PSYCOPG_URL, _execute_pooled),
        ),
        (PSYCOPG_POOL, "psycopg", pcg_pool, _psycopg_pool_subject, _psycopg_pool_queries),
        (PSYCOPG_CEILING, "psycopg", pcg, None, _psycopg_ceiling),
    ]
    contestants = []
    for name, kind, reason, open_ab, open_c in candidates:
        scenarios = ("ab" if open_ab else "") + ("c" if open_c else "")
        contestants.append(
            Contestant(
                name,
                kind,
                None if reason else open_ab,
                None if reason else open_c,
                reason,
                scenarios,
            )
        )
    return contestants


async def try_open(name: str, opener: Callable[[], Awaitable[Any]] | None) -> Any:
    """Open a contestant's pool; a pool that fails to open is reported, not fatal."""
    if opener is None:
        return None
    try:
        return await asyncio.wait_for(opener(), 30.0)
    except Exception as exc:
        print(f"cannot open {name}: {type(exc).__name__}: {exc}")
        return None


async def close_quietly(name: str, close: Callable[[], Awaitable[None]]) -> None:
    try:
        await asyncio.wait_for(close(), 15.0)
    except Exception as exc:
        print(f"closing {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)


# --------------------------------------------------------------------------- task helpers


async def run_tasks(
    body: Callable[[int, asyncio.Event], Awaitable[None]], count: int, duration_s: float
) -> tuple[int, int, int, list[str]]:
    """Run ``count`` tasks of ``body(index, stop)`` that start together and are asked to stop
    after ``duration_s``. Returns (start_ns, stop_ns, hung tasks, errors)."""
    start_gate = asyncio.Event()
    stop = asyncio.Event()
    errors: list[str] = []

    async def run(index: int) -> None:
        await start_gate.wait()
        try:
            await body(index, stop)
        except Exception as exc:  # reported in the table instead of killing the whole run
            errors.append(f"{type(exc).__name__}: {exc}")
            stop.set()

    tasks = [asyncio.create_task(run(i)) for i in range(count)]
    await asyncio.sleep(0)  # every task is now parked on the gate
    start_gate.set()
    start = time.perf_counter_ns()
    with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
        await asyncio.wait_for(stop.wait(), duration_s)  # ends early only if a task failed
    stop.set()
    stop_ns = time.perf_counter_ns()
    _, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=STOP_GRACE_S)
    return start, stop_ns, len(pending), sorted(set(errors))


# --------------------------------------------------------------------------- scenario (a)


async def time_batch(subject: Subject, n: int, touched: bool) -> float:
    """ns per acquire+release cycle over one batch of n cycles, with the GC off."""
    # A batch that never suspends never lets the event loop run. Let it run once before each
    # batch: it then drops the timers cancelled during the previous batch (asyncio.timeout()
    # leaves one per use in the loop's heap), which would otherwise pile up across batches.
    await asyncio.sleep(0)
    # A collection landing inside one batch would add a spike unrelated to the pool.
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        await subject.cycles(n, touched)
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / n


def _batch_for(per_cycle_ns: float, target_s: float) -> int:
    return int(min(MAX_BATCH_CYCLES, max(MIN_BATCH_CYCLES, target_s * 1e9 / per_cycle_ns)))


async def calibrate(subject: Subject, touched: bool, target_s: float) -> int:
    """Cycles per batch so that one batch lasts about target_s (capped at MAX_BATCH_CYCLES)."""
    await time_batch(subject, MIN_BATCH_CYCLES, touched)  # warm-up: first-use allocations
    estimate = _batch_for(await time_batch(subject, MIN_BATCH_CYCLES, touched), target_s)
    return _batch_for(await time_batch(subject, estimate, touched), target_s)


async def run_scenario_a(
    contestants: list[Contestant],
    rounds: int,
    batch_s: float,
    rng: random.Random,
    progress: Progress = print_progress,
) -> dict[str, dict[str, Any]]:
    """Both variants (untouched, touched) of every contestant, interleaved in every round."""
    subjects: dict[str, Subject] = {}
    for c in contestants:
        subject = await try_open(c.name, c.open_ab)
        if subject is not None:
            subjects[c.name] = subject
    entries = [(name, touched) for touched in (False, True) for name in subjects]
    try:
        batch = {(n, t): await calibrate(subjects[n], t, batch_s) for n, t in entries}
        samples: dict[tuple[str, bool], list[float]] = {e: [] for e in entries}
        for round_no in range(rounds):
            order = list(entries)
            rng.shuffle(order)  # interleave, so drift in machine load hits everyone alike
            for name, touched in order:
                per_cycle = await time_batch(subjects[name], batch[name, touched], touched)
                samples[name, touched].append(per_cycle)
            progress(f"  (a) round {round_no + 1}/{rounds} done")
    finally:
        for name, subject in subjects.items():
            await close_quietly(name, subject.close)
    return {
        variant: summary_a(
            {name: samples[name, touched] for name in subjects},
            {name: batch[name, touched] for name in subjects},
        )
        for variant, touched in (("untouched", False), ("touched", True))
    }


def summary_a(samples: dict[str, list[float]], batch: dict[str, int]) -> dict[str, Any]:
    floor_median = median_or_nan(samples.get(FLOOR, []))
    return {
        name: {
            "batch_cycles": batch[name],
            "ns_per_cycle": runs,
            "median_ns": statistics.median(runs),
            "min_ns": min(runs),
            "max_ns": max(runs),
            "ratio_to_floor": statistics.median(runs) / floor_median,
        }
        for name, runs in samples.items()
    }


def table_a(results: dict[str, Any], contestants: list[Contestant]) -> str:
    headers = ["contestant", "conn", "median ns/cycle", "min..max ns", "x floor", "cycles/batch"]
    kinds = {c.name: c.kind for c in contestants}
    rows = [
        [
            name,
            kinds[name],
            fmt(r["median_ns"], 0),
            f"{fmt(r['min_ns'], 0)}..{fmt(r['max_ns'], 0)}",
            fmt(r["ratio_to_floor"], 2),
            f"{r['batch_cycles']:,}",
        ]
        for name, r in results.items()
    ]
    rows += [[c.name, c.kind, "skipped", "", "", ""] for c in contestants if c.open_ab is None]
    return markdown_table(headers, rows)


# --------------------------------------------------------------------------- scenario (b)


@dataclass
class TaskLog:
    waits_ns: list[int] = field(default_factory=list)
    holds_ns: list[int] = field(default_factory=list)
    ends_ns: list[int] = field(default_factory=list)


async def run_contended_once(subject: Subject, duration_s: float) -> dict[str, Any]:
    """One timed run of TASKS tasks sharing POOL_SIZE connections."""
    logs = [TaskLog() for _ in range(TASKS)]

    async def holder(index: int, stop: asyncio.Event) -> None:
        log = logs[index]
        acquire, release = subject.acquire, subject.release
        clock, sleep = time.perf_counter_ns, asyncio.sleep
        while not stop.is_set():
            t0 = clock()
            conn = await acquire()
            t1 = clock()
            await sleep(HOLD_S)
            t2 = clock()  # the actual hold: sleep(0.001) overshoots (the loop's timer rounding)
            await release(conn)
            log.waits_ns.append(t1 - t0)
            log.holds_ns.append(t2 - t1)
            log.ends_ns.append(clock())

    start, stop_ns, hung, errors = await run_tasks(holder, TASKS, duration_s)
    return summarize_contended(logs, start, stop_ns, hung, errors)


def summarize_contended(
    logs: list[TaskLog], start: int, stop_ns: int, hung: int, errors: list[str]
) -> dict[str, Any]:
    elapsed_s = (stop_ns - start) / 1e9
    # Throughput counts cycles finished by the stop; waits keep every acquire begun before it,
    # so a task starved until the end still shows its long wait.
    per_task = [sum(1 for end in log.ends_ns if end <= stop_ns) for log in logs]
    total = sum(per_task)
    waits = sorted(w for log in logs for w in log.waits_ns)
    holds = [h for log in logs for h in log.holds_ns]
    mean_hold_s = statistics.fmean(holds) / 1e9 if holds else float("nan")
    ops_per_s = total / elapsed_s
    fair_share = total / TASKS
    return {
        "elapsed_s": elapsed_s,
        "ops": total,
        "ops_per_s": ops_per_s,
        "of_nominal": ops_per_s / NOMINAL_OPS_PER_S,
        "mean_hold_ms": mean_hold_s * 1e3,
        "of_hold_limit": ops_per_s / (POOL_SIZE / mean_hold_s),
        # Per cycle, how long each connection sat unheld: release (and its reset), the wake-up
        # of the next holder, acquire. With a fair pool this is the hand-off latency.
        "gap_us": (POOL_SIZE / ops_per_s - mean_hold_s) * 1e6 if ops_per_s else float("nan"),
        "per_task_ops": per_task,
        "starved": sum(1 for n in per_task if n < STARVED_FRACTION * fair_share),
        "wait_p50_ms": percentile(waits, 50) / 1e6,
        "wait_p99_ms": percentile(waits, 99) / 1e6,
        "wait_max_ms": (waits[-1] / 1e6) if waits else float("nan"),
        "hung_tasks": hung,
        "errors": errors,
    }


async def prewarm(subject: Subject) -> None:
    """Take every connection once, so pools that open lazily start the run fully open."""
    held = [await subject.acquire() for _ in range(POOL_SIZE)]
    for conn in held:
        await subject.release(conn)


async def run_scenario_b(
    contestants: list[Contestant],
    rounds: int,
    duration_s: float,
    rng: random.Random,
    progress: Progress = print_progress,
) -> dict[str, Any]:
    runnable = [c for c in contestants if c.open_ab is not None]
    per_round: dict[str, list[dict[str, Any]]] = {c.name: [] for c in runnable}
    broken: set[str] = set()
    for round_no in range(rounds):
        order = list(runnable)
        rng.shuffle(order)
        for c in order:
            if c.name in broken:
                continue
            subject = await try_open(c.name, c.open_ab)  # a fresh pool per run
            if subject is None:
                broken.add(c.name)
                continue
            await prewarm(subject)
            gc.collect()
            result = await run_contended_once(subject, duration_s)
            if result["hung_tasks"]:
                broken.add(c.name)  # cancelled, but its state is suspect: never run it again
            await close_quietly(c.name, subject.close)
            per_round[c.name].append(result)
        add_p99_ratios(per_round, round_no)
        progress(f"  (b) round {round_no + 1}/{rounds} done")
    return {name: {"rounds": runs, **summary_b(runs)} for name, runs in per_round.items()}


def add_p99_ratios(per_round: dict[str, list[dict[str, Any]]], round_no: int) -> None:
    """p99 wait divided by the floor's p99 from the same round."""
    ref_runs = per_round.get(FLOOR, [])
    ref = ref_runs[round_no]["wait_p99_ms"] if len(ref_runs) > round_no else float("nan")
    for runs in per_round.values():
        if len(runs) > round_no:
            runs[round_no]["p99_vs_floor"] = runs[round_no]["wait_p99_ms"] / ref


def summary_b(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds; starvation and worst cases are kept per round, not averaged away."""
    keys = [
        "ops_per_s",
        "of_nominal",
        "of_hold_limit",
        "mean_hold_ms",
        "gap_us",
        "wait_p50_ms",
        "wait_p99_ms",
        "wait_max_ms",
        "p99_vs_floor",
    ]
    summary: dict[str, Any] = {
        f"median_{k}": median_or_nan(r.get(k, float("nan")) for r in runs) for k in keys
    }
    summary["task_ops"] = [n for r in runs for n in r["per_task_ops"]]
    summary["starved_per_round"] = [r["starved"] for r in runs]
    summary["problems"] = sorted(
        {e for r in runs for e in r["errors"]}
        | {f"{r['hung_tasks']} tasks hung" for r in runs if r["hung_tasks"]}
    )
    return summary


def table_b(results: dict[str, Any], contestants: list[Contestant]) -> str:
    headers = [
        "contestant",
        "conn",
        "ops/s",
        f"% of {NOMINAL_OPS_PER_S:g}",
        "% of 4/hold",
        "mean hold ms",
        "gap us",
        "ops/task min/med/max",
        "starved",
        "wait p50 ms",
        "wait p99 ms",
        "wait max ms",
        "p99 x floor",
    ]
    kinds = {c.name: c.kind for c in contestants}
    rows = []
    for name, r in results.items():
        rows.append(
            [
                name + (" (!)" if r["problems"] else ""),
                kinds[name],
                fmt(r["median_ops_per_s"], 0),
                fmt(100 * r["median_of_nominal"], 1),
                fmt(100 * r["median_of_hold_limit"], 1),
                fmt(r["median_mean_hold_ms"], 3),
                fmt(r["median_gap_us"], 0),
                min_med_max(r["task_ops"]),
                "/".join(str(n) for n in r["starved_per_round"]),
                fmt(r["median_wait_p50_ms"], 2),
                fmt(r["median_wait_p99_ms"], 2),
                fmt(r["median_wait_max_ms"], 1),
                fmt(r["median_p99_vs_floor"], 2),
            ]
        )
    skipped = [c for c in contestants if c.open_ab is None]
    rows += [[c.name, c.kind, "skipped", *[""] * (len(headers) - 3)] for c in skipped]
    return markdown_table(headers, rows)


# --------------------------------------------------------------------------- scenario (c)


async def run_queries_once(subject: QuerySubject, duration_s: float) -> dict[str, Any]:
    """QUERY_TASKS tasks, each running QUERY in a loop for duration_s."""
    ends: list[list[int]] = [[] for _ in range(QUERY_TASKS)]
    gc.collect()
    cpu0 = time.process_time()
    start, stop_ns, hung, errors = await run_tasks(
        lambda i, stop: subject.worker(i, stop, ends[i]), QUERY_TASKS, duration_s
    )
    cpu_s = time.process_time() - cpu0
    elapsed_s = max(stop_ns - start, 1) / 1e9
    per_task = [sum(1 for end in task_ends if end <= stop_ns) for task_ends in ends]
    total = sum(per_task)
    qps = total / elapsed_s
    return {
        "elapsed_s": elapsed_s,
        "queries": total,
        "qps": qps,
        # Each task's mean time per query (borrow, round trip, return).
        "task_us_per_query": QUERY_TASKS / qps * 1e6 if qps else float("nan"),
        # This process's CPU time per query (the server's is not included): the pool's
        # own cost shows here directly, as long as the client is the bottleneck.
        "cpu_us_per_query": cpu_s / total * 1e6 if total else float("nan"),
        "per_task_queries": per_task,
        "hung_tasks": hung,
        "errors": errors,
    }


async def run_scenario_c(
    contestants: list[Contestant],
    rounds: int,
    slice_s: float,
    rng: random.Random,
    progress: Progress = print_progress,
    warmup_s: float = QUERY_WARMUP_S,
) -> dict[str, Any]:
    """Every contestant opened once; each round runs every one of them for one slice, in a
    shuffled order, so a ceiling and the pools compared with it run seconds apart."""
    subjects: dict[str, QuerySubject] = {}
    for c in contestants:
        subject = await try_open(c.name, c.open_c)
        if subject is not None:
            subjects[c.name] = subject
    per_round: dict[str, list[dict[str, Any]]] = {name: [] for name in subjects}
    broken: set[str] = set()
    warmup_problems: dict[str, list[str]] = {}
    try:
        for name, subject in subjects.items():  # statement caches, prepares, first-use costs
            warmup = await run_queries_once(subject, warmup_s)
            if warmup["hung_tasks"] or warmup["errors"]:
                broken.add(name)
                hung = [f"{warmup['hung_tasks']} tasks hung"] if warmup["hung_tasks"] else []
                warmup_problems[name] = [f"warm-up: {e}" for e in warmup["errors"] + hung]
        for round_no in range(rounds):
            order = [name for name in subjects if name not in broken]
            rng.shuffle(order)
            for name in order:
                result = await run_queries_once(subjects[name], slice_s)
                if result["hung_tasks"] or result["errors"]:
                    broken.add(name)  # never run it again in this process
                per_round[name].append(result)
            add_ceiling_ratios(per_round, round_no)
            progress(f"  (c) round {round_no + 1}/{rounds} done")
    finally:
        for name, subject in subjects.items():
            await close_quietly(name, subject.close)
    results = {name: {"rounds": runs, **summary_c(runs)} for name, runs in per_round.items()}
    for name, problems in warmup_problems.items():
        results[name]["problems"] = problems
    return results


def add_ceiling_ratios(per_round: dict[str, list[dict[str, Any]]], round_no: int) -> None:
    """queries/s divided by the same driver's ceiling from the same round."""
    for name, runs in per_round.items():
        if len(runs) <= round_no:
            continue
        ref_runs = per_round.get(CEILING_OF[name], [])
        ref = ref_runs[round_no]["qps"] if len(ref_runs) > round_no else float("nan")
        runs[round_no]["x_ceiling"] = runs[round_no]["qps"] / ref if ref else float("nan")


def summary_c(runs: list[dict[str, Any]]) -> dict[str, Any]:
    qps = [r["qps"] for r in runs]
    ratios = [x for r in runs if (x := r.get("x_ceiling", float("nan"))) == x]
    return {
        "median_qps": median_or_nan(qps),
        "min_qps": min(qps, default=float("nan")),
        "max_qps": max(qps, default=float("nan")),
        "median_x_ceiling": median_or_nan(ratios),
        "min_x_ceiling": min(ratios, default=float("nan")),
        "max_x_ceiling": max(ratios, default=float("nan")),
        "x_ceiling_per_round": [r.get("x_ceiling", float("nan")) for r in runs],
        "median_task_us_per_query": median_or_nan(r["task_us_per_query"] for r in runs),
        "median_cpu_us_per_query": median_or_nan(r["cpu_us_per_query"] for r in runs),
        "task_queries": [n for r in runs for n in r["per_task_queries"]],
        "problems": sorted(
            {e for r in runs for e in r["errors"]}
            | {f"{r['hung_tasks']} tasks hung" for r in runs if r["hung_tasks"]}
        ),
    }


def table_c(results: dict[str, Any], contestants: list[Contestant]) -> str:
    headers = [
        "contestant",
        "conn",
        "queries/s",
        "min..max q/s",
        "x ceiling",
        "min..max x ceiling",
        "us/query per task",
        "client CPU us/query",
        "queries/task min/med/max",
    ]
    kinds = {c.name: c.kind for c in contestants}
    rows = [
        [
            name + (" (!)" if r["problems"] else ""),
            kinds[name],
            fmt(r["median_qps"], 0),
            f"{fmt(r['min_qps'], 0)}..{fmt(r['max_qps'], 0)}",
            fmt(r["median_x_ceiling"], 2),
            f"{fmt(r['min_x_ceiling'], 2)}..{fmt(r['max_x_ceiling'], 2)}",
            fmt(r["median_task_us_per_query"], 0),
            fmt(r["median_cpu_us_per_query"], 1),
            min_med_max(r["task_queries"]),
        ]
        for name, r in results.items()
    ]
    skipped = [c for c in contestants if c.open_c is None]
    rows += [[c.name, c.kind, "skipped", *[""] * (len(headers) - 3)] for c in skipped]
    return markdown_table(headers, rows)


# --------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class Settings:
    """How long and how often each scenario runs (the script's defaults and --quick)."""

    rounds_a: int = 15
    rounds_b: int = 3
    rounds_c: int = 15
    duration_s: float = 3.0  # seconds per (b) run
    slice_s: float = 1.0  # seconds per (c) run in each round
    batch_s: float = 0.1  # target length of one (a) batch
    warmup_s: float = QUERY_WARMUP_S
    scenario: str = "abc"
    only: str | None = None
    seed: int = 12345
    # Move every object alive at the start (modules, drivers) out of the collector's reach,
    # so the gc.collect() before each batch scans only what the run created: with SQLAlchemy,
    # psycopg and asyncpg loaded, a full collection costs some 30 ms, and a smoke run does
    # more than a hundred of them. Off in full runs, whose GC pauses stay as they were measured.
    freeze_heap: bool = False

    @classmethod
    def quick(cls) -> Settings:
        """The script's --quick: about 40 s."""
        return cls(rounds_a=5, rounds_b=2, rounds_c=5, duration_s=1.0, slice_s=0.5, batch_s=0.03)

    @classmethod
    def smoke(cls) -> Settings:
        """`sessionpool bench --quick`: a few seconds, to see that everything runs."""
        return cls(
            rounds_a=2,
            rounds_b=1,
            rounds_c=1,
            duration_s=0.2,
            slice_s=0.2,
            batch_s=0.005,
            warmup_s=0.05,
            freeze_heap=True,
        )

    @property
    def steps(self) -> int:
        """Progress lines a run reports: one per round of each scenario it runs."""
        rounds = {"a": self.rounds_a, "b": self.rounds_b, "c": self.rounds_c}
        return sum(n for letter, n in rounds.items() if letter in self.scenario)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="short run (about 40 s)")
    p.add_argument(
        "--rounds", type=int, help="rounds per scenario (default a=15 b=3 c=15, quick 5/2/5)"
    )
    p.add_argument("--duration", type=float, help="seconds per (b) run (default 3, quick 1)")
    p.add_argument(
        "--slice", type=float, help="seconds per (c) run in each round (default 1, quick 0.5)"
    )
    p.add_argument("--scenario", default="abc", help="which scenarios: any of a, b, c (abc)")
    p.add_argument("--only", help="comma-separated contestants (references are always run)")
    p.add_argument("--json", metavar="PATH", help="write raw and summary results to PATH")
    p.add_argument("--seed", type=int, default=12345, help="seed of the per-round shuffles")
    args = p.parse_args(argv)
    if not args.scenario or set(args.scenario) - set("abc"):
        p.error("--scenario takes letters among a, b and c")
    return args


def settings_from_args(args: argparse.Namespace) -> Settings:
    base = Settings.quick() if args.quick else Settings()
    return Settings(
        rounds_a=args.rounds or base.rounds_a,
        rounds_b=args.rounds or base.rounds_b,
        rounds_c=args.rounds or base.rounds_c,
        duration_s=args.duration or base.duration_s,
        slice_s=args.slice or base.slice_s,
        batch_s=base.batch_s,
        scenario=args.scenario,
        only=args.only,
        seed=args.seed,
    )


def select(contestants: list[Contestant], only: str | None) -> list[Contestant]:
    if not only:
        return contestants
    wanted = {name.strip() for name in only.split(",") if name.strip()}
    unknown = wanted - {c.name for c in contestants}
    if unknown:
        known = ", ".join(c.name for c in contestants)
        raise SystemExit(f"unknown contestant(s) {sorted(unknown)}; known: {known}")
    # The references stay in: every ratio in the tables is relative to them.
    return [c for c in contestants if c.name in wanted | set(REFERENCES)]


async def server_version() -> str | None:
    try:
        import asyncpg

        conn = await asyncpg.connect(timeout=3, **ASYNCPG_ARGS)
        try:
            return str(await conn.fetchval("SHOW server_version"))
        finally:
            await conn.close()
    except Exception:
        return None


async def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in ("sessionpool", "asyncpg", "psycopg", "psycopg-binary", "psycopg-pool"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    loop = asyncio.get_running_loop()
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "event_loop": f"{type(loop).__module__}.{type(loop).__name__}",
        "versions": versions,
        "postgresql": await server_version(),
    }


def environment_line(env: dict[str, Any]) -> str:
    return (
        f"Python {env['python']} on {env['platform']}, {env['event_loop']};"
        f" PostgreSQL {env['postgresql']}; versions: {env['versions']}"
    )


def target_lines(report: dict[str, Any]) -> list[str]:
    """The issue's targets, read off this run's tables."""
    lines = []
    a = report.get("scenario_a", {}).get("results", {}).get("untouched", {})
    if SESSIONPOOL in a and FLOOR in a:
        ratio = a[SESSIONPOOL]["ratio_to_floor"]
        verdict = "met" if ratio <= TARGET_A else "MISSED"
        lines.append(
            f"- (a) sessionpool {ratio:.2f}x the floor (target <= {TARGET_A:g}x): {verdict}"
        )
    c = report.get("scenario_c", {}).get("results", {})
    for name in (SP_ASYNCPG, ASYNCPG_POOL, SP_PSYCOPG, PSYCOPG_POOL):
        if name in c:
            ratio = c[name]["median_x_ceiling"]
            line = f"- (c) {name} {fmt(ratio, 2)}x {CEILING_OF[name]}"
            if name == SP_ASYNCPG:
                verdict = "met" if ratio >= TARGET_C else "MISSED"
                line += f" (target >= {TARGET_C:g}x): {verdict}"
            lines.append(line)
    return lines


async def run_async(
    settings: Settings, contestants: list[Contestant], progress: Progress = print_progress
) -> dict[str, Any]:
    """Run the scenarios of ``settings`` over ``contestants``; the report holds every result.

    Args:
        settings: rounds and durations.
        contestants: from `build_contestants` (skipped ones are listed as skipped).
        progress: called once per finished round.
    """
    rng = random.Random(settings.seed)
    report: dict[str, Any] = {"environment": await environment(), "settings": vars(settings)}
    if "a" in settings.scenario:
        entrants = [c for c in contestants if "a" in c.scenarios]
        results_a = await run_scenario_a(
            entrants, settings.rounds_a, settings.batch_s, rng, progress
        )
        report["scenario_a"] = {
            "rounds": settings.rounds_a,
            "batch_target_s": settings.batch_s,
            "results": results_a,
        }
    if "b" in settings.scenario:
        entrants = [c for c in contestants if "b" in c.scenarios]
        results_b = await run_scenario_b(
            entrants, settings.rounds_b, settings.duration_s, rng, progress
        )
        report["scenario_b"] = {
            "rounds": settings.rounds_b,
            "duration_s": settings.duration_s,
            "results": results_b,
        }
    if "c" in settings.scenario:
        entrants = [c for c in contestants if "c" in c.scenarios]
        results_c = await run_scenario_c(
            entrants, settings.rounds_c, settings.slice_s, rng, progress, settings.warmup_s
        )
        report["scenario_c"] = {
            "rounds": settings.rounds_c,
            "slice_s": settings.slice_s,
            "results": results_c,
        }
    return report


def run(
    settings: Settings, contestants: list[Contestant], progress: Progress = print_progress
) -> dict[str, Any]:
    """`run_async` in a new event loop (a blocking call, like the threaded suite's `run`)."""
    if settings.freeze_heap:
        gc.collect()
        gc.freeze()
    try:
        return asyncio.run(run_async(settings, contestants, progress))
    finally:
        if settings.freeze_heap:
            gc.unfreeze()


def contestants_for(settings: Settings) -> list[Contestant]:
    """`build_contestants` (which asks PostgreSQL whether it answers) narrowed to ``--only``."""
    return select(asyncio.run(build_contestants()), settings.only)


def format_report(report: dict[str, Any], contestants: list[Contestant]) -> str:
    """The tables as the script prints them: Markdown headings, tables, problems, targets."""
    parts: list[str] = []

    def problems(results: dict[str, Any]) -> None:
        for name, r in results.items():
            parts.extend(f"(!) {name}: {problem}" for problem in r["problems"])

    def entrants(letter: str) -> list[Contestant]:
        return [c for c in contestants if letter in c.scenarios]

    if "scenario_a" in report:
        rounds, results = report["scenario_a"]["rounds"], report["scenario_a"]["results"]
        parts.append(f"\n### (a) uncontended acquire+release, 1 task, {rounds} rounds\n")
        parts.append(table_a(results["untouched"], entrants("a")))
        parts.append(
            f"\n### (a, touched) same, plus a local call on the connection, {rounds} rounds\n"
        )
        parts.append(table_a(results["touched"], entrants("a")))
    if "scenario_b" in report:
        section = report["scenario_b"]
        parts.append(
            f"\n### (b) {TASKS} tasks, {POOL_SIZE} connections, hold {HOLD_S * 1e3:g} ms,"
            f" {section['duration_s']:g} s x {section['rounds']} rounds\n"
        )
        parts.append(table_b(section["results"], entrants("b")))
        problems(section["results"])
    if "scenario_c" in report:
        section = report["scenario_c"]
        parts.append(
            f"\n### (c) {QUERY_TASKS} tasks running `{QUERY}`, pools of {QUERY_POOL_SIZE},"
            f" {section['slice_s']:g} s x {section['rounds']} rounds\n"
        )
        parts.append(table_c(section["results"], entrants("c")))
        problems(section["results"])
    if lines := target_lines(report):
        parts.append("\n### targets\n")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def chart_panels(report: dict[str, Any]) -> list[ChartPanel]:
    """The headline ratio of each scenario, one bar per contestant."""
    panels = []
    if "scenario_a" in report:
        results = report["scenario_a"]["results"]["untouched"]
        panels.append(
            ChartPanel(
                "asyncio (a): uncontended acquire+release",
                "x floor (lower is faster)",
                {name: r["ratio_to_floor"] for name, r in results.items()},
                reference=1.0,
            )
        )
    if "scenario_b" in report:
        results = report["scenario_b"]["results"]
        panels.append(
            ChartPanel(
                f"asyncio (b): {TASKS} tasks, {POOL_SIZE} connections",
                "wait p99 x floor (lower is fairer; read with starved)",
                {name: r["median_p99_vs_floor"] for name, r in results.items()},
                reference=1.0,
            )
        )
    if "scenario_c" in report:
        results = report["scenario_c"]["results"]
        panels.append(
            ChartPanel(
                f"asyncio (c): {QUERY_TASKS} tasks running {QUERY}",
                "x the driver's ceiling (higher is better)",
                {name: r["median_x_ceiling"] for name, r in results.items()},
                reference=1.0,
            )
        )
    return panels


async def main_async(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    contestants = select(await build_contestants(), settings.only)
    for c in contestants:
        if c.skip_reason:
            print(f"skipping {c.name}: {c.skip_reason}")
    print(f"\n{environment_line(await environment())}")
    report = await run_async(settings, contestants)
    print(format_report(report, contestants))
    report["args"] = vars(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(without_nan(report), fh, indent=2, default=str)
        print(f"\nwrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    try:
        return asyncio.run(main_async(args))
    finally:
        faulthandler.cancel_dump_traceback_later()


if __name__ == "__main__":
    sys.exit(main())
