"""The `sessionpool demo`: a burst of threads on a small pool of SQLite connections, then checks."""

from __future__ import annotations

import math
import os
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

from . import URL, Lease, Pool, PoolInUse, PoolStats, PoolTimeout, create_pool

__all__ = ["DemoSettings", "run_demo"]

QUICK_SECONDS = 2.0
MIN_SIZE = 2  # connections opened up front; the burst makes the pool grow to max_size
BUSY_TIMEOUT = 5.0  # seconds a SQLite connection waits for the database's write lock
POOL_WAIT_TIMEOUT = 5.0  # the pool's default for acquire(); the workers pass their own
REFRESH_TTY = 0.2  # seconds between redraws of the live line on a terminal
REFRESH_LOG = 0.5  # seconds between live lines when the output is a file or a pipe


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs: ``workers`` threads for ``seconds`` over a pool of ``max_size``."""

    workers: int = 16
    seconds: float = 6.0
    max_size: int = 4
    hold: float = 0.002  # seconds each cycle keeps its connection before writing
    acquire_timeout: float = 1.0


@dataclass
class Tally:
    """One worker's counts. Only its own thread writes it; the live line reads it racily."""

    cycles: int = 0
    timeouts: int = 0
    errors: int = 0
    first_error: str | None = None
    waits: list[float] = field(default_factory=list)  # seconds per successful acquire

    def record_error(self, error: Exception) -> None:
        self.errors += 1
        if self.first_error is None:
            self.first_error = f"{type(error).__name__}: {error}"


def run_demo(settings: DemoSettings, out: TextIO | None = None) -> int:
    """Run the demo, print a live line and a summary to ``out`` (default: stdout).

    Returns 0 if every check held, else 1.
    """
    out = sys.stdout if out is None else out
    with tempfile.TemporaryDirectory(prefix="sessionpool-demo-") as directory:
        path = os.path.join(directory, "demo.sqlite3")
        prepare_database(path)
        # The URL names the driver (sqlite3) and passes it arguments: the busy timeout, and
        # BEGIN IMMEDIATE, which takes the write lock up front, waiting up to that timeout;
        # a deferred transaction that reads and then writes can instead fail at once with
        # "database is locked". The pool opens SQLite connections for use by many threads
        # in turn (check_same_thread=False) and lends each to one thread at a time.
        url = URL("sqlite", database=path, query={"timeout": str(BUSY_TIMEOUT)})
        pool = create_pool(
            url,
            connect_args={"isolation_level": "IMMEDIATE"},
            on_connect=relax_fsync,
            min_size=min(MIN_SIZE, settings.max_size),
            max_size=settings.max_size,
            wait_timeout=POOL_WAIT_TIMEOUT,
        )
        print_intro(settings, pool, path, out)
        try:
            tallies, elapsed, stuck = run_burst(pool, settings, out)
            failures = report(pool, settings, tallies, elapsed, stuck, out)
        finally:
            # Normally closed by report(); this covers an error or Ctrl-C on the way there.
            pool.close(force=True)
    if failures:
        print(f"demo FAILED: {'; '.join(failures)}", file=out)
        return 1
    print("demo ok: every committed cycle is in the table and the pool closed empty", file=out)
    return 0


# -- the database ---------------------------------------------------------------------------


def prepare_database(path: str) -> None:
    """Create the demo's tables in a new SQLite file in WAL mode."""
    connection = sqlite3.connect(path)
    try:
        # WAL lets readers run beside the one writer; the mode is stored in the file.
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute(
            "CREATE TABLE events (id INTEGER PRIMARY KEY, worker INTEGER NOT NULL, "
            "cycle INTEGER NOT NULL)"
        )
        connection.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        connection.execute("INSERT INTO counters VALUES ('cycles', 0)")
        connection.commit()
    finally:
        connection.close()


def relax_fsync(connection: sqlite3.Connection) -> None:
    """Per-connection setting, run by the pool on each new connection (``on_connect``)."""
    # In WAL mode NORMAL is still safe from corruption; it skips an fsync per commit, so the
    # demo measures the pool rather than the disk.
    connection.execute("PRAGMA synchronous = NORMAL")


def count_rows(pool: Pool) -> tuple[int, int]:
    """The rows in ``events`` and the value of the cycle counter, read through the pool."""
    with pool.acquire() as connection:
        (rows,) = connection.execute("SELECT count(*) FROM events").fetchone()
        (counter,) = connection.execute(
            "SELECT value FROM counters WHERE name = 'cycles'"
        ).fetchone()
    return int(rows), int(counter)


# -- the burst ------------------------------------------------------------------------------


def run_burst(pool: Pool, settings: DemoSettings, out: TextIO) -> tuple[list[Tally], float, int]:
    """Run the workers for ``settings.seconds`` while showing the pool's state.

    Returns the tallies, the seconds from start to the last worker's end, and how many
    workers were still running when the time to stop ran out.
    """
    start, stop = threading.Event(), threading.Event()
    tallies = [Tally() for _ in range(settings.workers)]
    threads = [
        threading.Thread(
            target=work,
            args=(pool, settings, number, tally, start, stop),
            name=f"demo-worker-{number}",
            daemon=True,  # a worker stuck in a broken pool must not keep the process alive
        )
        for number, tally in enumerate(tallies)
    ]
    for thread in threads:
        thread.start()
    # All workers are parked on `start`, so the burst hits the pool at once.
    began = time.monotonic()
    start.set()
    try:
        watch(pool, tallies, began, began + settings.seconds, out)
    finally:
        # Also on Ctrl-C: the pool must not be closed under workers still in a cycle.
        stuck = stop_workers(threads, stop, settings)
    return tallies, time.monotonic() - began, stuck


def stop_workers(
    threads: Sequence[threading.Thread], stop: threading.Event, settings: DemoSettings
) -> int:
    """Tell the workers to stop and wait for them; return how many did not end in time."""
    stop.set()
    # A cycle in flight ends within its acquire timeout plus SQLite's busy timeout.
    deadline = time.monotonic() + settings.acquire_timeout + BUSY_TIMEOUT + 5.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return sum(thread.is_alive() for thread in threads)


def work(
    pool: Pool,
    settings: DemoSettings,
    number: int,
    tally: Tally,
    start: threading.Event,
    stop: threading.Event,
) -> None:
    """One worker: acquire, run one transaction, release; until told to stop."""
    start.wait()
    while not stop.is_set():
        asked = time.perf_counter()
        try:
            lease = pool.acquire(timeout=settings.acquire_timeout)
        except PoolTimeout:
            tally.timeouts += 1
            continue
        except Exception as exc:  # any other failure is shown in the summary, not lost
            tally.record_error(exc)
            continue
        tally.waits.append(time.perf_counter() - asked)
        try:
            with lease:  # released on exit; the pool rolls back what was not committed
                run_cycle(lease, number, tally.cycles, settings.hold)
        except Exception as exc:
            tally.record_error(exc)
            continue
        tally.cycles += 1


def run_cycle(connection: Lease, worker: int, cycle: int, hold: float) -> None:
    """Insert a row, bump the counter, read it back, commit."""
    # The hold stands for the application's own work while it keeps the connection; this is
    # what makes other workers queue in the pool. It comes before the write because SQLite
    # has a single writer: sleeping inside the write transaction would make the workers
    # queue on SQLite's lock instead of in the pool.
    time.sleep(hold)
    connection.execute("INSERT INTO events (worker, cycle) VALUES (?, ?)", (worker, cycle))
    connection.execute("UPDATE counters SET value = value + 1 WHERE name = 'cycles'")
    connection.execute("SELECT value FROM counters WHERE name = 'cycles'").fetchone()
    connection.commit()


# -- the live line --------------------------------------------------------------------------


def watch(pool: Pool, tallies: Sequence[Tally], began: float, until: float, out: TextIO) -> None:
    """Show the pool's state until ``until``: one redrawn line on a terminal, else a log."""
    on_terminal = out.isatty()
    interval = REFRESH_TTY if on_terminal else REFRESH_LOG
    shown_cycles, shown_at, width = 0, began, 0
    try:
        while (now := time.monotonic()) < until:
            time.sleep(min(interval, until - now))
            now = time.monotonic()
            cycles = sum(tally.cycles for tally in tallies)
            rate = (cycles - shown_cycles) / max(now - shown_at, 1e-9)
            line = live_line(pool.stats(), now - began, cycles, rate)
            if on_terminal:
                # Pad to the previous width so a shorter line leaves no stale characters.
                out.write("\r" + line.ljust(width))
                width = len(line)
            else:
                out.write(line + "\n")
            out.flush()
            shown_cycles, shown_at = cycles, now
    finally:
        if width:  # end the redrawn line, also when Ctrl-C cut the loop short
            out.write("\n")


def live_line(stats: PoolStats, elapsed: float, cycles: int, rate: float) -> str:
    return (
        f"{elapsed:5.1f} s  busy {stats.busy}  idle {stats.idle}  waiting {stats.waiting:>3}  "
        f"opened {stats.opened}  cycles {cycles:>8,}  {rate:>7,.0f} ops/s"
    )


# -- the summary ----------------------------------------------------------------------------


def print_intro(settings: DemoSettings, pool: Pool, path: str, out: TextIO) -> None:
    print(
        f"sessionpool demo: {settings.workers} threads share one pool of SQLite connections "
        f"(min_size {pool.min_size}, max_size {pool.max_size}) "
        f"for {settings.seconds:g} s",
        file=out,
    )
    print(f"  database  {path} (WAL, busy timeout {BUSY_TIMEOUT:g} s)", file=out)
    print(
        f"  cycle     acquire (timeout {settings.acquire_timeout:g} s), hold "
        f"{settings.hold * 1e3:g} ms, insert + update + select, commit, release",
        file=out,
        flush=True,
    )


@dataclass(frozen=True)
class Totals:
    """The workers' tallies added up."""

    cycles: int
    timeouts: int
    errors: int
    first_error: str | None
    waits: list[float]  # ascending

    @classmethod
    def of(cls, tallies: Sequence[Tally]) -> Totals:
        return cls(
            cycles=sum(tally.cycles for tally in tallies),
            timeouts=sum(tally.timeouts for tally in tallies),
            errors=sum(tally.errors for tally in tallies),
            first_error=next((t.first_error for t in tallies if t.first_error), None),
            waits=sorted(wait for tally in tallies for wait in tally.waits),
        )


def report(
    pool: Pool,
    settings: DemoSettings,
    tallies: Sequence[Tally],
    elapsed: float,
    stuck: int,
    out: TextIO,
) -> list[str]:
    """Print the summary, close the pool, and return what went wrong (empty when all held)."""
    totals = Totals.of(tallies)
    rows, counter = count_rows(pool)
    counters = pool.stats()  # taken after count_rows, whose acquire the pool counts too

    print("summary", file=out)
    row(out, "workers", f"{settings.workers} threads, pool max_size {settings.max_size}")
    row(out, "duration", f"{elapsed:.2f} s")
    row(out, "cycles", f"{totals.cycles:,} committed ({totals.cycles / elapsed:,.0f} cycles/s)")
    row(out, "acquire wait", wait_percentiles(totals.waits))
    row(out, "timeouts", f"{totals.timeouts:,} (acquire timeout {settings.acquire_timeout:g} s)")
    first = f" (first: {totals.first_error})" if totals.first_error else ""
    row(out, "errors", f"{totals.errors}{first}")
    row(out, "rows in table", f"{rows:,} (counter {counter:,})")
    row(
        out,
        "pool counters",
        f"acquires {counters.acquires:,}, waited {counters.waits:,}, "
        f"handed off {counters.handoffs:,}, timeouts {counters.timeouts:,}",
    )
    row(out, "status()", pool.status())

    failures = check_totals(totals, rows, counter, counters)
    if stuck:
        failures.append(f"{stuck} worker(s) still running after stop; the pool or SQLite hung")
    failures.extend(close_and_check(pool, out))
    return failures


def check_totals(totals: Totals, rows: int, counter: int, counters: PoolStats) -> list[str]:
    """What the workers saw, the table holds and the pool counted must all agree."""
    failures = []
    if totals.errors:
        failures.append(f"{totals.errors} cycle(s) failed")
    if rows != totals.cycles or counter != totals.cycles:
        failures.append(f"{rows} rows and counter {counter} for {totals.cycles} committed cycles")
    # Every successful acquire is a lease the pool lent: the workers' plus count_rows' one.
    acquired = len(totals.waits) + 1
    if counters.acquires != acquired:
        failures.append(f"pool counted {counters.acquires} acquires, workers made {acquired}")
    if counters.timeouts != totals.timeouts:
        failures.append(f"pool counted {counters.timeouts} timeouts, workers saw {totals.timeouts}")
    return failures


def close_and_check(pool: Pool, out: TextIO) -> list[str]:
    """Close the pool without force, so it refuses if a connection is still out, and verify."""
    failures = []
    try:
        pool.close()
    except PoolInUse as exc:
        failures.append(f"close refused: {exc}")
        pool.close(force=True)
    after = pool.stats()
    row(
        out,
        "connections",
        f"opened {after.connections_opened}, closed {after.connections_closed}",
    )
    row(
        out,
        "pool closed",
        f"{after.opened} open, {after.opening} opening, {after.busy} busy, {after.waiting} waiting",
    )
    left = after.opened + after.opening + after.busy + after.waiting
    if left or after.connections_opened != after.connections_closed:
        failures.append(f"connections left after close: {after}")
    return failures


def wait_percentiles(waits: Sequence[float]) -> str:
    """p50/p95/p99/max of sorted waits, in milliseconds."""
    if not waits:
        return "no successful acquire"
    parts = [f"p{q} {percentile(waits, q / 100) * 1e3:.2f} ms" for q in (50, 95, 99)]
    return ", ".join([*parts, f"max {waits[-1] * 1e3:.2f} ms"])


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def row(out: TextIO, label: str, value: str) -> None:
    print(f"  {label:<15}{value}", file=out)
