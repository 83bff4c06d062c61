"""Speed benchmark of the threaded sessionpool against a floor, a fair floor and peer pools.

The logic of ``benchmarks/bench_threaded.py`` and of ``sessionpool bench``; peers that are
not installed (or a PostgreSQL that does not answer) are skipped with the reason. Writes no
file of its own: the callers decide where tables and charts go.
"""

from __future__ import annotations

import argparse
import collections
import faulthandler
import gc
import json
import platform
import random
import statistics
import sys
import threading
import time
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from .. import create_pool
from .common import (
    ChartPanel,
    FakeCursor,
    Progress,
    fmt,
    markdown_table,
    median_or_nan,
    module_missing,
    percentile,
    print_progress,
    without_nan,
)

POOL_SIZE = 4
THREADS = 16
HOLD_S = 0.001
NOMINAL_OPS_PER_S = POOL_SIZE / HOLD_S
STARVED_FRACTION = 0.10  # a worker below 10 % of total/THREADS counts as starved
MAX_BATCH_CYCLES = 200_000
WATCHDOG_S = 600  # a contestant that deadlocks must not hang the run: dump stacks and exit
PG_CONNINFO = "dbname=test user=postgres host=127.0.0.1 port=5432"

FLOOR = "floor"
EXPLICIT_FLOOR = "floor-explicit"
FAIR_FLOOR = "fair-floor"
REFERENCE_A = FLOOR
REFERENCE_B = FAIR_FLOOR


# --------------------------------------------------------------------------- fake DB-API driver


class FakeConnection:
    """A DB-API connection whose methods do nothing, so only pool overhead is measured."""

    def cursor(self) -> FakeCursor:
        return FakeCursor()

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        return None

    def close(self) -> None:
        return None


def make_fake_connection() -> FakeConnection:
    return FakeConnection()


class FakeError(Exception):
    pass


def fake_dbapi_module() -> types.ModuleType:
    """A tiny DB-API module: DBUtils wants a module (threadsafety, error classes, connect)."""
    module = types.ModuleType("fakedb")
    module.connect = make_fake_connection  # type: ignore[attr-defined]
    module.threadsafety = 1  # type: ignore[attr-defined]
    module.apilevel = "2.0"  # type: ignore[attr-defined]
    for name in ("Error", "OperationalError", "InterfaceError", "InternalError"):
        setattr(module, name, FakeError)
    return module


# --------------------------------------------------------------------------- reference pools


class FloorPool:
    """The cheapest thing that can be called a pool: a lock and a deque, no blocking."""

    def __init__(self, creator: Callable[[], Any], size: int) -> None:
        self._lock = threading.Lock()
        self._idle = collections.deque(creator() for _ in range(size))

    def acquire(self) -> Any:
        with self._lock:
            return self._idle.pop()

    def release(self, conn: Any) -> None:
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        self._idle.clear()


class ExplicitFloorPool(FloorPool):
    """The same floor with explicit lock calls: on CPython 3.11 a `with` block costs about
    twice an acquire()/release() pair, so this is the lowest a lock-and-deque pool goes."""

    def acquire(self) -> Any:
        lock = self._lock
        lock.acquire()
        conn = self._idle.pop()
        lock.release()
        return conn

    def release(self, conn: Any) -> None:
        lock = self._lock
        lock.acquire()
        self._idle.append(conn)
        lock.release()


class _Waiter:
    __slots__ = ("conn", "gate")

    def __init__(self) -> None:
        self.conn: Any = None
        # A plain Lock used as a binary semaphore: created held, released by the hand-off.
        self.gate = threading.Lock()
        self.gate.acquire()


class FairFloorPool:
    """The simplest correct FIFO hand-off pool: release gives the conn to the oldest waiter.

    Invariant: waiters exist only while no connection is idle, so a newcomer can never
    overtake a waiter (no barging).
    """

    def __init__(self, creator: Callable[[], Any], size: int) -> None:
        self._lock = threading.Lock()
        self._idle = collections.deque(creator() for _ in range(size))
        self._waiters: collections.deque[_Waiter] = collections.deque()

    def acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            waiter = _Waiter()
            self._waiters.append(waiter)
        waiter.gate.acquire()
        return waiter.conn

    def release(self, conn: Any) -> None:
        with self._lock:
            if self._waiters:
                waiter = self._waiters.popleft()
                waiter.conn = conn
                waiter.gate.release()
            else:
                self._idle.append(conn)

    def close(self) -> None:
        self._idle.clear()


# --------------------------------------------------------------------------- contestants


Cycles = Callable[[int, bool], None]  # (n, touch): n acquire+release cycles in the pool's API


@dataclass
class Subject:
    """One opened pool, seen through the same four operations whatever its own API is."""

    acquire: Callable[[], Any]
    release: Callable[[Any], None]
    cycles: Cycles
    close: Callable[[], None]


@dataclass
class Contestant:
    name: str
    scenarios: str  # subset of "ab"
    open: Callable[[], Subject] | None  # None when skipped
    skip_reason: str = ""


# The loops below are written once per API style, with the callables bound to locals, so that
# scenario (a) pays no adapter call per cycle. `touch` calls cursor() on each borrowed
# connection: pools that track use (sessionpool) reset only connections that were touched.


def _give_back_loop(acquire: Callable[[], Any], give_back: Callable[[Any], None]) -> Cycles:
    """For pools whose release takes the connection: give_back(acquire())."""

    def cycles(n: int, touch: bool) -> None:
        if touch:
            for _ in range(n):
                conn = acquire()
                conn.cursor()
                give_back(conn)
        else:
            for _ in range(n):
                give_back(acquire())

    return cycles


def _close_loop(acquire: Callable[[], Any]) -> Cycles:
    """For pools whose proxies go back on close(): acquire().close()."""

    def cycles(n: int, touch: bool) -> None:
        if touch:
            for _ in range(n):
                conn = acquire()
                conn.cursor()
                conn.close()
        else:
            for _ in range(n):
                acquire().close()

    return cycles


def _reference_subject(pool: FloorPool | FairFloorPool) -> Subject:
    return Subject(
        pool.acquire, pool.release, _give_back_loop(pool.acquire, pool.release), pool.close
    )


def _sessionpool_subject(creator: Callable[[], Any]) -> Subject:
    pool = create_pool(creator=creator, min_size=POOL_SIZE, max_size=POOL_SIZE)

    def cycles(n: int, touch: bool) -> None:
        acquire = pool.acquire
        if touch:
            for _ in range(n):
                lease = acquire()
                lease.cursor()
                lease.release()
        else:
            for _ in range(n):
                acquire().release()

    return Subject(pool.acquire, lambda lease: lease.release(), cycles, pool.close)


def _sqlalchemy_subject() -> Subject:
    from sqlalchemy.pool import QueuePool

    # Default reset_on_return="rollback", as a user gets it.
    creator: Any = make_fake_connection  # SQLAlchemy types creators as returning its DBAPI type
    pool = QueuePool(creator, pool_size=POOL_SIZE, max_overflow=0)
    cycles = _close_loop(pool.connect)
    return Subject(pool.connect, lambda conn: conn.close(), cycles, pool.dispose)


def _dbutils_subject() -> Subject:
    from dbutils.pooled_db import PooledDB

    pool = PooledDB(
        creator=fake_dbapi_module(),
        mincached=POOL_SIZE,
        maxconnections=POOL_SIZE,
        blocking=True,
    )
    cycles = _close_loop(pool.connection)
    return Subject(pool.connection, lambda conn: conn.close(), cycles, pool.close)


def _psycopg_pool_subject() -> Subject:
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(PG_CONNINFO, min_size=POOL_SIZE, max_size=POOL_SIZE, open=True)
    pool.wait(timeout=10.0)  # all min_size connections open before any timing
    cycles = _give_back_loop(pool.getconn, pool.putconn)
    return Subject(pool.getconn, pool.putconn, cycles, pool.close)


def _connect_psycopg() -> Any:
    import psycopg

    return psycopg.connect(PG_CONNINFO)


def _postgres_missing() -> str:
    if reason := module_missing("psycopg"):
        return reason
    import psycopg

    try:
        psycopg.connect(PG_CONNINFO, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL unreachable ({PG_CONNINFO}): {str(exc).strip().splitlines()[0]}"
    return ""


def build_contestants() -> list[Contestant]:
    """All contestants in display order; unavailable ones carry the reason they are skipped."""
    pg_missing = _postgres_missing()
    pgpool_missing = module_missing("psycopg_pool") or pg_missing
    candidates: list[tuple[str, str, str, Callable[[], Subject]]] = [
        (FLOOR, "a", "", lambda: _reference_subject(FloorPool(make_fake_connection, POOL_SIZE))),
        (
            EXPLICIT_FLOOR,
            "a",
            "",
            lambda: _reference_subject(ExplicitFloorPool(make_fake_connection, POOL_SIZE)),
        ),
        (
            FAIR_FLOOR,
            "ab",
            "",
            lambda: _reference_subject(FairFloorPool(make_fake_connection, POOL_SIZE)),
        ),
        ("sessionpool", "ab", "", lambda: _sessionpool_subject(make_fake_connection)),
        ("sqlalchemy", "ab", module_missing("sqlalchemy"), _sqlalchemy_subject),
        ("dbutils", "ab", module_missing("dbutils"), _dbutils_subject),
        ("psycopg_pool", "ab", pgpool_missing, _psycopg_pool_subject),
        (
            "sessionpool+psycopg",
            "ab",
            pg_missing,
            lambda: _sessionpool_subject(_connect_psycopg),
        ),
    ]
    return [
        Contestant(name, scen, None if reason else opener, reason)
        for name, scen, reason, opener in candidates
    ]


def try_open(contestant: Contestant) -> Subject | None:
    """Open the contestant's pool; a pool that fails to open is reported, not fatal."""
    if contestant.open is None:
        return None
    try:
        return contestant.open()
    except Exception as exc:
        print(f"cannot open {contestant.name}: {type(exc).__name__}: {exc}")
        return None


# --------------------------------------------------------------------------- scenario (a)


def time_batch(subject: Subject, n: int, touch: bool) -> float:
    """ns per acquire+release cycle over one batch of n cycles, with the GC off."""
    # A collection landing inside one batch would add a spike unrelated to the pool.
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        subject.cycles(n, touch)
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / n


def calibrate(subject: Subject, touch: bool, target_s: float) -> int:
    """Cycles per batch so that one batch lasts about target_s (capped at MAX_BATCH_CYCLES)."""
    time_batch(subject, 2_000, touch)  # warm-up: first-use allocations, lazy connections
    per_cycle_ns = time_batch(subject, 2_000, touch)
    return int(min(MAX_BATCH_CYCLES, max(1_000, target_s * 1e9 / per_cycle_ns)))


def run_scenario_a(
    contestants: list[Contestant],
    rounds: int,
    batch_s: float,
    rng: random.Random,
    progress: Progress = print_progress,
) -> dict[str, dict[str, Any]]:
    """Both variants (untouched, touched) of every contestant, interleaved in every round."""
    opened = {c.name: try_open(c) for c in contestants}
    subjects = {name: s for name, s in opened.items() if s is not None}
    entries = [(name, touch) for touch in (False, True) for name in subjects]
    try:
        batch = {(name, t): calibrate(subjects[name], t, batch_s) for name, t in entries}
        samples: dict[tuple[str, bool], list[float]] = {e: [] for e in entries}
        for round_no in range(rounds):
            order = list(entries)
            rng.shuffle(order)  # interleave, so drift in machine load hits everyone alike
            for name, touch in order:
                samples[name, touch].append(time_batch(subjects[name], batch[name, touch], touch))
            progress(f"  (a) round {round_no + 1}/{rounds} done")
    finally:
        for subject in subjects.values():
            subject.close()
    return {
        variant: summary_a(
            {name: samples[name, touch] for name in subjects},
            {name: batch[name, touch] for name in subjects},
        )
        for variant, touch in (("untouched", False), ("touched", True))
    }


def summary_a(samples: dict[str, list[float]], batch: dict[str, int]) -> dict[str, Any]:
    floor_median = median_or_nan(samples.get(REFERENCE_A, []))
    explicit_median = median_or_nan(samples.get(EXPLICIT_FLOOR, []))
    return {
        name: {
            "batch_cycles": batch[name],
            "ns_per_cycle": runs,
            "median_ns": statistics.median(runs),
            "min_ns": min(runs),
            "max_ns": max(runs),
            "ratio_to_floor": statistics.median(runs) / floor_median,
            "ratio_to_explicit_floor": statistics.median(runs) / explicit_median,
        }
        for name, runs in samples.items()
    }


def table_a(results: dict[str, Any], skipped: list[Contestant]) -> str:
    headers = [
        "contestant",
        "median ns/cycle",
        "min..max ns",
        "x floor",
        "x floor-explicit",
        "cycles/batch",
    ]
    rows = [
        [
            name,
            fmt(r["median_ns"], 0),
            f"{fmt(r['min_ns'], 0)}..{fmt(r['max_ns'], 0)}",
            fmt(r["ratio_to_floor"], 2),
            fmt(r["ratio_to_explicit_floor"], 2),
            f"{r['batch_cycles']:,}",
        ]
        for name, r in results.items()
    ]
    rows += [[c.name, "skipped", "", "", "", ""] for c in skipped]
    return markdown_table(headers, rows)


# --------------------------------------------------------------------------- scenario (b)


@dataclass
class WorkerLog:
    waits_ns: list[int] = field(default_factory=list)
    holds_ns: list[int] = field(default_factory=list)
    ends_ns: list[int] = field(default_factory=list)
    error: str = ""


def _worker(
    subject: Subject, barrier: threading.Barrier, stop: threading.Event, log: WorkerLog
) -> None:
    acquire, release, clock = subject.acquire, subject.release, time.perf_counter_ns
    try:
        barrier.wait()
        while not stop.is_set():
            t0 = clock()
            conn = acquire()
            t1 = clock()
            time.sleep(HOLD_S)
            t2 = clock()  # the actual hold: sleep(0.001) overshoots by tens of microseconds
            release(conn)
            log.waits_ns.append(t1 - t0)
            log.holds_ns.append(t2 - t1)
            log.ends_ns.append(clock())
    except Exception as exc:  # reported in the table instead of killing the whole run
        log.error = f"{type(exc).__name__}: {exc}"
        stop.set()


def run_contended_once(subject: Subject, duration_s: float) -> dict[str, Any]:
    """One timed run of THREADS workers sharing POOL_SIZE connections."""
    logs = [WorkerLog() for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1, timeout=30.0)
    stop = threading.Event()
    threads = [
        threading.Thread(target=_worker, args=(subject, barrier, stop, log), daemon=True)
        for log in logs
    ]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter_ns()
    stop.wait(duration_s)  # returns early only if a worker failed
    stop.set()
    stop_ns = time.perf_counter_ns()
    join_deadline = time.monotonic() + 10.0
    for t in threads:
        t.join(max(0.0, join_deadline - time.monotonic()))
    hung = sum(t.is_alive() for t in threads)
    return summarize_contended(logs, start, stop_ns, hung)


def summarize_contended(
    logs: list[WorkerLog], start: int, stop_ns: int, hung: int
) -> dict[str, Any]:
    elapsed_s = (stop_ns - start) / 1e9
    # Throughput counts cycles finished by the stop; waits keep every acquire begun before it,
    # so a worker starved until the end still shows its long wait.
    per_worker = [sum(1 for end in log.ends_ns if end <= stop_ns) for log in logs]
    total = sum(per_worker)
    waits = sorted(w for log in logs for w in log.waits_ns)
    holds = [h for log in logs for h in log.holds_ns]
    mean_hold_s = statistics.fmean(holds) / 1e9 if holds else float("nan")
    ops_per_s = total / elapsed_s
    fair_share = total / THREADS
    return {
        "elapsed_s": elapsed_s,
        "ops": total,
        "ops_per_s": ops_per_s,
        "of_nominal": ops_per_s / NOMINAL_OPS_PER_S,
        "mean_hold_ms": mean_hold_s * 1e3,
        "of_hold_limit": ops_per_s / (POOL_SIZE / mean_hold_s),
        # Per cycle, how long each connection sat unheld: release, wake-up of the next holder,
        # acquire. With a fair pool this is the hand-off latency.
        "gap_us": (POOL_SIZE / ops_per_s - mean_hold_s) * 1e6,
        "per_worker_ops": per_worker,
        "starved": sum(1 for n in per_worker if n < STARVED_FRACTION * fair_share),
        "wait_p50_ms": percentile(waits, 50) / 1e6,
        "wait_p99_ms": percentile(waits, 99) / 1e6,
        "wait_max_ms": (waits[-1] / 1e6) if waits else float("nan"),
        "hung_threads": hung,
        "errors": sorted({log.error for log in logs if log.error}),
    }


def run_scenario_b(
    contestants: list[Contestant],
    rounds: int,
    duration_s: float,
    rng: random.Random,
    progress: Progress = print_progress,
) -> dict[str, Any]:
    runnable = [c for c in contestants if c.open is not None]
    per_round: dict[str, list[dict[str, Any]]] = {c.name: [] for c in runnable}
    broken: set[str] = set()
    for round_no in range(rounds):
        order = list(runnable)
        rng.shuffle(order)
        for c in order:
            if c.name in broken:
                continue
            subject = try_open(c)  # a fresh pool per run: no run inherits another's state
            if subject is None:
                broken.add(c.name)
                continue
            prewarm(subject)
            gc.collect()
            result = run_contended_once(subject, duration_s)
            if result["hung_threads"]:
                broken.add(c.name)  # its threads are stuck; never run it again in this process
            else:
                subject.close()
            per_round[c.name].append(result)
        add_p99_ratios(per_round, round_no)
        progress(f"  (b) round {round_no + 1}/{rounds} done")
    return {name: {"rounds": runs, **summary_b(runs)} for name, runs in per_round.items()}


def prewarm(subject: Subject) -> None:
    """Take every connection once, so pools that open lazily start the run fully open."""
    held = [subject.acquire() for _ in range(POOL_SIZE)]
    for conn in held:
        subject.release(conn)


def add_p99_ratios(per_round: dict[str, list[dict[str, Any]]], round_no: int) -> None:
    """p99 wait divided by the fair floor's p99 from the same round."""
    ref_runs = per_round.get(REFERENCE_B, [])
    ref = ref_runs[round_no]["wait_p99_ms"] if len(ref_runs) > round_no else float("nan")
    for runs in per_round.values():
        if len(runs) > round_no:
            runs[round_no]["p99_vs_fair_floor"] = runs[round_no]["wait_p99_ms"] / ref


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
        "p99_vs_fair_floor",
    ]
    summary: dict[str, Any] = {
        f"median_{k}": median_or_nan(r.get(k, float("nan")) for r in runs) for k in keys
    }
    all_counts = sorted(n for r in runs for n in r["per_worker_ops"])
    summary["worker_ops_min_med_max"] = (
        [all_counts[0], statistics.median(all_counts), all_counts[-1]] if all_counts else []
    )
    summary["starved_per_round"] = [r["starved"] for r in runs]
    summary["problems"] = sorted(
        {e for r in runs for e in r["errors"]}
        | {f"{r['hung_threads']} threads hung" for r in runs if r["hung_threads"]}
    )
    return summary


def table_b(results: dict[str, Any], skipped: list[Contestant]) -> str:
    headers = [
        "contestant",
        "ops/s",
        "% of 4000",
        "% of 4/hold",
        "mean hold ms",
        "gap us",
        "ops/worker min/med/max",
        "starved",
        "wait p50 ms",
        "wait p99 ms",
        "wait max ms",
        "p99 x fair-floor",
    ]
    rows = []
    for name, r in results.items():
        lo_med_hi = r["worker_ops_min_med_max"]
        rows.append(
            [
                name + (" (!)" if r["problems"] else ""),
                fmt(r["median_ops_per_s"], 0),
                fmt(100 * r["median_of_nominal"], 1),
                fmt(100 * r["median_of_hold_limit"], 1),
                fmt(r["median_mean_hold_ms"], 3),
                fmt(r["median_gap_us"], 0),
                "/".join(f"{v:g}" for v in lo_med_hi) if lo_med_hi else "n/a",
                "/".join(str(n) for n in r["starved_per_round"]),
                fmt(r["median_wait_p50_ms"], 2),
                fmt(r["median_wait_p99_ms"], 2),
                fmt(r["median_wait_max_ms"], 1),
                fmt(r["median_p99_vs_fair_floor"], 2),
            ]
        )
    rows += [[c.name, "skipped", *[""] * (len(headers) - 2)] for c in skipped]
    return markdown_table(headers, rows)


# --------------------------------------------------------------------------- driver


@dataclass(frozen=True)
class Settings:
    """How long and how often each scenario runs (the script's defaults and --quick)."""

    rounds_a: int = 15
    rounds_b: int = 3
    duration_s: float = 3.0  # seconds per (b) run
    batch_s: float = 0.1  # target length of one (a) batch
    scenario: str = "ab"
    only: str | None = None
    seed: int = 12345
    # Move every object alive at the start (modules, drivers) out of the collector's reach,
    # so the gc.collect() before each batch scans only what the run created: with SQLAlchemy,
    # psycopg and asyncpg loaded, a full collection costs some 30 ms, and a smoke run does
    # more than a hundred of them. Off in full runs, whose GC pauses stay as they were measured.
    freeze_heap: bool = False

    @classmethod
    def quick(cls) -> Settings:
        """The script's --quick: about 20 s."""
        return cls(rounds_a=5, rounds_b=2, duration_s=1.0, batch_s=0.03)

    @classmethod
    def smoke(cls) -> Settings:
        """`sessionpool bench --quick`: a few seconds, to see that everything runs."""
        return cls(rounds_a=2, rounds_b=1, duration_s=0.2, batch_s=0.005, freeze_heap=True)

    @property
    def steps(self) -> int:
        """Progress lines a run reports: one per round of each scenario it runs."""
        return self.rounds_a * ("a" in self.scenario) + self.rounds_b * ("b" in self.scenario)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="short run (about 20 s)")
    p.add_argument("--rounds", type=int, help="rounds per scenario (default a=15 b=3, quick 5/2)")
    p.add_argument("--duration", type=float, help="seconds per (b) run (default 3, quick 1)")
    p.add_argument("--scenario", choices=["a", "b", "ab"], default="ab", help="which scenarios")
    p.add_argument("--only", help="comma-separated contestants (references are always run)")
    p.add_argument("--json", metavar="PATH", help="write raw and summary results to PATH")
    p.add_argument("--seed", type=int, default=12345, help="seed of the per-round shuffles")
    return p.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    base = Settings.quick() if args.quick else Settings()
    return Settings(
        rounds_a=args.rounds or base.rounds_a,
        rounds_b=args.rounds or base.rounds_b,
        duration_s=args.duration or base.duration_s,
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
    return [c for c in contestants if c.name in wanted | {REFERENCE_A, EXPLICIT_FLOOR, REFERENCE_B}]


def environment() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for dist in ("sessionpool", "SQLAlchemy", "DBUtils", "psycopg", "psycopg-pool"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "versions": versions,
        "switch_interval_s": sys.getswitchinterval(),
    }


def environment_line(env: dict[str, Any]) -> str:
    return f"Python {env['python']} on {env['platform']}; versions: {env['versions']}"


def run(
    settings: Settings, contestants: list[Contestant], progress: Progress = print_progress
) -> dict[str, Any]:
    """Run the scenarios of ``settings`` over ``contestants``; the report holds every result.

    Args:
        settings: rounds and durations.
        contestants: from `build_contestants` (skipped ones are listed as skipped).
        progress: called once per finished round.
    """
    if settings.freeze_heap:
        gc.collect()
        gc.freeze()
    try:
        return _run(settings, contestants, progress)
    finally:
        if settings.freeze_heap:
            gc.unfreeze()


def _run(settings: Settings, contestants: list[Contestant], progress: Progress) -> dict[str, Any]:
    rng = random.Random(settings.seed)
    report: dict[str, Any] = {"environment": environment(), "settings": vars(settings)}
    if "a" in settings.scenario:
        entrants = [c for c in contestants if "a" in c.scenarios]
        results_a = run_scenario_a(entrants, settings.rounds_a, settings.batch_s, rng, progress)
        report["scenario_a"] = {
            "rounds": settings.rounds_a,
            "batch_target_s": settings.batch_s,
            "results": results_a,
        }
    if "b" in settings.scenario:
        entrants = [c for c in contestants if "b" in c.scenarios]
        results_b = run_scenario_b(entrants, settings.rounds_b, settings.duration_s, rng, progress)
        report["scenario_b"] = {
            "rounds": settings.rounds_b,
            "duration_s": settings.duration_s,
            "results": results_b,
        }
    return report


def format_report(report: dict[str, Any], contestants: list[Contestant]) -> str:
    """The tables as the script prints them: Markdown headings, tables and problem lines."""
    parts: list[str] = []
    if "scenario_a" in report:
        rounds, results = report["scenario_a"]["rounds"], report["scenario_a"]["results"]
        skipped = [c for c in contestants if "a" in c.scenarios and c.open is None]
        parts.append(f"\n### (a) uncontended acquire+release, 1 thread, {rounds} rounds\n")
        parts.append(table_a(results["untouched"], skipped))
        parts.append(f"\n### (a, touched) same, plus conn.cursor() per cycle, {rounds} rounds\n")
        parts.append(table_a(results["touched"], skipped))
    if "scenario_b" in report:
        section = report["scenario_b"]
        results = section["results"]
        skipped = [c for c in contestants if "b" in c.scenarios and c.open is None]
        parts.append(
            f"\n### (b) {THREADS} threads, {POOL_SIZE} connections, hold {HOLD_S * 1e3:g} ms,"
            f" {section['duration_s']:g} s x {section['rounds']} rounds\n"
        )
        parts.append(table_b(results, skipped))
        for name, r in results.items():
            parts.extend(f"(!) {name}: {problem}" for problem in r["problems"])
    return "\n".join(parts)


def chart_panels(report: dict[str, Any]) -> list[ChartPanel]:
    """The headline ratio of each scenario, one bar per contestant."""
    panels = []
    if "scenario_a" in report:
        results = report["scenario_a"]["results"]["untouched"]
        panels.append(
            ChartPanel(
                "threads (a): uncontended acquire+release",
                "x floor (lower is faster)",
                {name: r["ratio_to_floor"] for name, r in results.items()},
                reference=1.0,
            )
        )
    if "scenario_b" in report:
        results = report["scenario_b"]["results"]
        panels.append(
            ChartPanel(
                f"threads (b): {THREADS} threads, {POOL_SIZE} connections",
                "wait p99 x fair-floor (lower is fairer; read with starved)",
                {name: r["median_p99_vs_fair_floor"] for name, r in results.items()},
                reference=1.0,
            )
        )
    return panels


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from_args(args)
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    contestants = select(build_contestants(), settings.only)
    for c in contestants:
        if c.open is None:
            print(f"skipping {c.name}: {c.skip_reason}")
    print(f"\n{environment_line(environment())}")
    report = run(settings, contestants)
    print(format_report(report, contestants))
    report["args"] = vars(args)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(without_nan(report), fh, indent=2, default=str)
        print(f"\nwrote {args.json}")
    faulthandler.cancel_dump_traceback_later()
    return 0


if __name__ == "__main__":
    sys.exit(main())
