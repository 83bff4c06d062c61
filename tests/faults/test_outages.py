"""Outages of a real PostgreSQL under the pool: a restart under load, a hung server, and the
server down for 5 s and for 20 s; threaded and asyncio pools. Every fault hits a throwaway
server (tests/faults/pgcluster.py), never the shared one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psycopg
import pytest

import sessionpool
from tests.faults.pgcluster import ThrowawayPostgres

# The pools under test: the threaded pool over psycopg, the asyncio pool over asyncpg and over
# psycopg's AsyncConnection.
THREADED, ASYNCPG, PSYCOPG_ASYNC = "threaded", "asyncpg", "psycopg-async"
KINDS = (THREADED, ASYNCPG, PSYCOPG_ASYNC)
_DRIVER = {THREADED: "psycopg", ASYNCPG: "asyncpg", PSYCOPG_ASYNC: "psycopg"}
# What each driver raises when it cannot connect: refused, "the database system is shutting
# down / starting up", or a connect timeout.
CONNECT_ERRORS: dict[str, tuple[type[BaseException], ...]] = {
    THREADED: (psycopg.OperationalError,),
    PSYCOPG_ASYNC: (psycopg.OperationalError,),
    ASYNCPG: (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError),
}

# Bounds on the test's own plumbing (not guarantees of the library): how long opening a pool,
# a set-up step or the serve-again probe may take before the test gives up on it.
OPEN_BOUND = 15.0
SETUP_BOUND = 10.0


def app_name(label: str) -> str:
    return f"sp_outage_{label}_{uuid.uuid4().hex[:8]}".replace("-", "_")


def sleep_until(moment: float) -> None:
    """Hold a fault for its planned duration (a schedule, not a synchronisation)."""
    time.sleep(max(0.0, moment - time.monotonic()))


def wait_until(condition: Callable[[], bool], bound: float, what: str) -> None:
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not so within {bound} s")
        time.sleep(0.01)


def describe(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    cause = error.__cause__
    suffix = f" <- {type(cause).__name__}: {cause}" if cause is not None else ""
    return f"{type(error).__name__}: {error}{suffix}"


# -- one borrow: acquire, query, release ---------------------------------------------------


@dataclass
class Round:
    """One borrow, timed: acquire, query, release."""

    started: float
    acquired: float | None  # when acquire returned a connection (None: it raised)
    queried: float | None  # when the query returned (None: it did not)
    ended: float  # after the release, or when the error surfaced
    error: BaseException | None

    @property
    def acquire_seconds(self) -> float:
        """The acquire call alone: until it returned a connection or raised."""
        return (self.acquired if self.acquired is not None else self.ended) - self.started

    @property
    def query_seconds(self) -> float:
        """Acquire plus the (bounded) query, release excluded."""
        return (self.queried if self.queried is not None else self.ended) - self.started

    @property
    def ok(self) -> bool:
        return self.error is None


@contextlib.contextmanager
def cut_after(conn: Any, seconds: float | None) -> Iterator[None]:
    """Bound a blocking psycopg call: past ``seconds`` the connection's socket is shut down,
    so the call fails at once instead of waiting on a server that never answers (a frozen
    server's kernel still ACKs, so no TCP timeout fires)."""
    if seconds is None:
        yield
        return
    fd = conn.pgconn.socket
    lock = threading.Lock()
    finished = threading.Event()

    def cut() -> None:
        with lock:
            if finished.is_set():  # the call ended: the connection may be someone else's now
                return
            with contextlib.suppress(OSError):
                sock = socket.socket(fileno=os.dup(fd))
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                finally:
                    sock.close()

    timer = threading.Timer(seconds, cut)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            finished.set()
        timer.cancel()


def sync_round(pool: Any, acquire_timeout: float | None, query_limit: float | None) -> Round:
    """A borrow on the threaded pool; ``acquire_timeout=None`` uses the pool's wait_timeout."""
    started = time.monotonic()
    acquired = queried = None
    error: BaseException | None = None
    try:
        lease = pool.acquire() if acquire_timeout is None else pool.acquire(timeout=acquire_timeout)
        with lease as conn:
            acquired = time.monotonic()
            with cut_after(conn, query_limit):
                conn.execute("SELECT pg_backend_pid()").fetchone()
            queried = time.monotonic()
    except Exception as exc:
        error = exc
    return Round(started, acquired, queried, time.monotonic(), error)


async def within_seconds(awaitable: Awaitable[Any], seconds: float | None) -> Any:
    """Bound an async query; past the limit it is abandoned (cancelled, not awaited: psycopg's
    cancellation itself waits on the hung server)."""
    if seconds is None:
        return await awaitable
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        raise TimeoutError(f"the query gave no answer within {seconds} s")
    return task.result()


async def select_one(kind: str, conn: Any) -> Any:
    if kind == ASYNCPG:
        return await conn.fetchval("SELECT pg_backend_pid()")
    cursor = await conn.execute("SELECT pg_backend_pid()")
    return await cursor.fetchone()


async def async_round(
    kind: str, pool: Any, acquire_timeout: float, query_limit: float | None
) -> Round:
    started = time.monotonic()
    acquired = queried = None
    error: BaseException | None = None
    try:
        async with pool.acquire(timeout=acquire_timeout) as conn:
            acquired = time.monotonic()
            await within_seconds(select_one(kind, conn), query_limit)
            queried = time.monotonic()
    except Exception as exc:
        error = exc
    return Round(started, acquired, queried, time.monotonic(), error)


# -- a pool and its borrowers, threaded or on an event loop of its own ----------------------


class Subject:
    """One pool under a fault, with its borrowers: threads for the threaded pool; for an
    asyncio pool, tasks on an event loop running in a thread of its own, so that a blocked
    loop shows up as a bounded wait that failed instead of hanging the test."""

    def __init__(self, kind: str, url: str, **settings: Any) -> None:
        self.kind = kind
        self.url = url
        self.settings = settings
        self.pool: Any = None
        self.logs: list[list[Round]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._tasks: list[concurrent.futures.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None

    def open(self) -> None:
        if self.kind == THREADED:
            self.pool = sessionpool.create_pool(self.url, **self.settings)
            return
        loop = self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=loop.run_forever, name=f"loop-{self.kind}", daemon=True
        )
        self._loop_thread.start()

        async def create() -> Any:
            return await sessionpool.create_async_pool(self.url, **self.settings)

        self.pool = self.call(create, OPEN_BOUND, "opening the pool")

    def call(self, function: Callable[[], Any], bound: float, what: str) -> Any:
        """``function()`` on the pool's side: directly, or (async) as a coroutine on its loop."""
        if self._loop is None:
            return function()
        future = asyncio.run_coroutine_threadsafe(function(), self._loop)
        try:
            return future.result(bound)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AssertionError(f"{self.kind}: {what} did not finish within {bound} s") from None

    def run_round(self, acquire_timeout: float, query_limit: float | None) -> Round:
        if self.kind == THREADED:
            return sync_round(self.pool, acquire_timeout, query_limit)
        bound = acquire_timeout + (query_limit or 0.0) + SETUP_BOUND
        result: Round = self.call(
            lambda: async_round(self.kind, self.pool, acquire_timeout, query_limit),
            bound,
            "a round",
        )
        return result

    def connect_errors(self) -> int:
        if self._loop is None:
            return int(self.pool.stats().connect_errors)

        async def read() -> int:  # on the loop: a consistent read
            return int(self.pool.stats().connect_errors)

        return int(self.call(read, SETUP_BOUND, "reading stats()"))

    def start_workers(
        self,
        count: int,
        acquire_timeout: float | None,
        query_limit: float | None,
        *,
        error_cadence: float = 0.0,
        success_gap: float = 0.0,
    ) -> None:
        """``count`` borrowers looping rounds until `signal_stop`. After a failed round a
        borrower waits until ``error_cadence`` after that round began (so a failure returned
        at once does not turn into a connect storm of the test's own making); after a
        successful one, ``success_gap``."""
        self._stop.clear()
        self.logs = [[] for _ in range(count)]
        for index, log in enumerate(self.logs):
            if self._loop is None:
                thread = threading.Thread(
                    target=self._sync_worker,
                    args=(log, acquire_timeout, query_limit, error_cadence, success_gap),
                    name=f"{self.kind}-worker-{index}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
            else:
                assert acquire_timeout is not None
                worker = self._async_worker(
                    log, acquire_timeout, query_limit, error_cadence, success_gap
                )
                self._tasks.append(asyncio.run_coroutine_threadsafe(worker, self._loop))

    def _sync_worker(
        self,
        log: list[Round],
        acquire_timeout: float | None,
        query_limit: float | None,
        error_cadence: float,
        success_gap: float,
    ) -> None:
        while not self._stop.is_set():
            result = sync_round(self.pool, acquire_timeout, query_limit)
            log.append(result)
            pause = success_gap if result.ok else result.started + error_cadence - time.monotonic()
            if pause > 0:
                self._stop.wait(pause)

    async def _async_worker(
        self,
        log: list[Round],
        acquire_timeout: float,
        query_limit: float | None,
        error_cadence: float,
        success_gap: float,
    ) -> None:
        while not self._stop.is_set():
            result = await async_round(self.kind, self.pool, acquire_timeout, query_limit)
            log.append(result)
            pause = success_gap if result.ok else result.started + error_cadence - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)  # at most error_cadence: the stop flag is read after

    def signal_stop(self) -> None:
        self._stop.set()

    def join_workers(self, deadline: float) -> list[str]:
        """Wait for the borrowers until ``deadline``; returns the ones still running."""
        self._stop.set()
        hung = []
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                hung.append(thread.name)
        for index, task in enumerate(self._tasks):
            try:
                task.result(max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                hung.append(f"{self.kind}-task-{index}")
        self._threads, self._tasks = [], []
        return hung

    def close(self, force: bool = False) -> None:
        self.join_workers(time.monotonic() + 1.0)  # normally done already; never left looping
        pool, self.pool = self.pool, None  # closed once, even if closing fails
        try:
            if pool is not None:
                self.call(lambda: pool.close(force=force), SETUP_BOUND, "closing the pool")
        finally:
            if self._loop is not None and self._loop_thread is not None:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._loop_thread.join(5.0)
                if not self._loop_thread.is_alive():
                    self._loop.close()
                self._loop = None

    def close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.close(force=True)


def set_up(
    subjects: list[Subject], failures: dict[str, BaseException], warm: Callable[[Subject], None]
) -> list[Subject]:
    """Open each pool and see it serve (``warm``). One that cannot is left out, its error kept
    for its own tests, so that one broken pool does not cost the others their measurements."""
    ready = []
    for subject in subjects:
        try:
            subject.open()
            warm(subject)
        except Exception as exc:
            failures[subject.kind] = exc
            subject.close_quietly()
        else:
            ready.append(subject)
    return ready


def subject_for(server: ThrowawayPostgres, kind: str, label: str, **settings: Any) -> Subject:
    name = app_name(f"{label}_{kind}")
    subject = Subject(kind, f"{server.url(_DRIVER[kind])}?application_name={name}", **settings)
    subject.settings.setdefault("name", name)
    return subject


# -- the server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg(server: ThrowawayPostgres) -> ThrowawayPostgres:
    """The module's server, running (a test that failed mid-outage must not break the next)."""
    if not server.is_running():
        server.start()
    return server


# -- 1. restart under load -------------------------------------------------------------------

RESTART_THREADS = 16
RESTART_AT = 2.0  # seconds into the run
RUN_FOR = 6.0
RUN_AFTER_BACK = 3.0  # the run goes on at least this long once the server is back
# A round begun before the stop signal lasts at most wait_timeout (2 s) plus a query and a
# reset against a running server (milliseconds); 8 s leaves room for this 2-core machine's
# stalls without letting a real hang pass.
RESTART_JOIN = 8.0
# Once the server is back, the pool needs one successful connect (retries at most every
# 0.5 s) and a free connection; a round begun 1 s after that must not fail.
SETTLED_AFTER = 1.0
RESTART_ALLOWED = (sessionpool.PoolTimeout, psycopg.OperationalError)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_under_load(pg: ThrowawayPostgres, mode: str) -> None:
    subject = subject_for(
        pg, THREADED, f"restart_{mode}", min_size=4, max_size=8, wait_timeout=2, ping_interval=0
    )
    name = subject.settings["name"]
    subject.open()
    try:
        began = time.monotonic()
        subject.start_workers(RESTART_THREADS, None, None, error_cadence=0.02)
        sleep_until(began + RESTART_AT)
        down_at = time.monotonic()
        pg.restart(mode)
        back = time.monotonic()
        sleep_until(max(began + RUN_FOR, back + RUN_AFTER_BACK))
        hung = subject.join_workers(time.monotonic() + RESTART_JOIN)
        assert not hung, f"{len(hung)} threads still running {RESTART_JOIN} s after stop: {hung}"
        subject.close()  # not forced: every borrower is back
    finally:
        subject.close_quietly()

    rounds = [r for log in subject.logs for r in log]
    failures = [r for r in rounds if not r.ok]
    served_after = [sum(r.ok and r.started >= back for r in log) for log in subject.logs]
    first_after = [
        min((r.ended for r in log if r.ok and r.started >= back), default=None)
        for log in subject.logs
    ]
    latest_first = max((t - back for t in first_after if t is not None), default=float("nan"))
    print(
        f"\n[restart {mode}] down->back {back - down_at:.2f} s; {len(rounds)} rounds, "
        f"{len(failures)} failed ({sorted({type(r.error).__name__ for r in failures})}); "
        f"every thread served again within {latest_first:.3f} s of the server being back; "
        f"successes after back per thread: {served_after}"
    )
    assert all(count >= 1 for count in served_after), (
        f"threads with no success after the server was back: {served_after}"
    )
    unexpected = [describe(r.error) for r in failures if not isinstance(r.error, RESTART_ALLOWED)]
    assert not unexpected, f"{len(unexpected)} unexpected errors, e.g. {unexpected[:3]}"
    late = [
        f"+{r.started - back:.2f} s: {describe(r.error)}"
        for r in failures
        if r.started >= back + SETTLED_AFTER
    ]
    assert not late, (
        f"{len(late)} rounds begun {SETTLED_AFTER} s or more after the server was back failed: "
        f"{late[:5]}"
    )

    # The server ends a session when its client's goodbye arrives: poll, up to 2 s.
    deadline = time.monotonic() + 2.0
    left = pg.backend_count(name)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = pg.backend_count(name)
    assert left == 0, f"{left} server sessions of {name!r} still there 2 s after pool.close()"


# -- 2. hung server --------------------------------------------------------------------------

HANG_FOR = 8.0
HANG_WORKERS = 4
ACQUIRE_TIMEOUT = 2.0
# The deadline plus 0.1 s: the pool cuts a check or gives up a wait at the deadline; 0.1 s is
# for waking the thread and raising on this 2-core machine, and no more, so that a check
# allowed its own ping_timeout (5 s) would show.
ACQUIRE_BOUND = ACQUIRE_TIMEOUT + 0.1
QUERY_LIMIT = 1.0  # the test's own bound on a query that meets the frozen server
# A round begun before the stop signal: acquire (2.1 s) + query (1 s) + a release whose reset
# is cut at reset_timeout (5 s), with 2 s of slack for the machine.
HANG_JOIN = 10.0
SERVE_AGAIN_WITHIN = 2.0
SERVE_PROBE_FOR = 6.0  # keep trying past the bound so the report has the real figure


@dataclass
class HangRun:
    rounds: dict[str, list[Round]] = field(default_factory=dict)
    hung: dict[str, list[str]] = field(default_factory=dict)
    served_after: dict[str, float | None] = field(default_factory=dict)
    serve_errors: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, BaseException] = field(default_factory=dict)  # per pool, at set-up
    failure: BaseException | None = None  # of the scenario itself

    def error_of(self, kind: str) -> BaseException | None:
        return self.failures.get(kind) or self.failure


def serve_again(subject: Subject, since: float, limit: float) -> tuple[float | None, list[str]]:
    """Seconds from ``since`` to the first round served through the pool (None: none within
    ``limit``), and the errors met before it."""
    deadline = since + limit
    errors: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        result = subject.run_round(max(0.05, left), max(0.05, left))
        if result.ok and result.queried is not None:
            return result.queried - since, errors
        errors.append(describe(result.error))
        time.sleep(0.02)  # a failure returned at once: do not spin
    return None, errors


def run_hang(server: ThrowawayPostgres) -> HangRun:
    """Freeze the server for HANG_FOR seconds under all three pools at once (each its own
    application_name), borrowing from HANG_WORKERS borrowers per pool; then resume it."""
    run = HangRun()
    settings: dict[str, Any] = {
        "min_size": 2,
        "max_size": 4,
        "wait_timeout": ACQUIRE_TIMEOUT,
        "ping_interval": 0,
        # Larger than the acquire timeout on purpose: the caller's deadline must win.
        "ping_timeout": 5,
        "connect_timeout": 2,
    }
    subjects = [subject_for(server, kind, "hang", **settings) for kind in KINDS]

    def warm(subject: Subject) -> None:
        result = subject.run_round(ACQUIRE_TIMEOUT, QUERY_LIMIT)
        assert result.ok, f"{subject.kind}: not serving before the hang: {describe(result.error)}"

    try:
        subjects = set_up(subjects, run.failures, warm)
        pids = server.pause()
        try:
            paused_at = time.monotonic()
            for subject in subjects:
                subject.start_workers(HANG_WORKERS, ACQUIRE_TIMEOUT, QUERY_LIMIT)
            sleep_until(paused_at + HANG_FOR)
            for subject in subjects:
                subject.signal_stop()
            deadline = time.monotonic() + HANG_JOIN
            for subject in subjects:
                run.hung[subject.kind] = subject.join_workers(deadline)
                run.rounds[subject.kind] = [r for log in subject.logs for r in log]
        finally:
            server.resume(pids)
            resumed_at = time.monotonic()
        # All three at once: measured one after another, the later ones would wait for the
        # earlier ones.
        with concurrent.futures.ThreadPoolExecutor(max(1, len(subjects))) as executor:
            futures = {
                subject.kind: executor.submit(serve_again, subject, resumed_at, SERVE_PROBE_FOR)
                for subject in subjects
            }
            for kind, future in futures.items():
                run.served_after[kind], run.serve_errors[kind] = future.result(
                    SERVE_PROBE_FOR + SETUP_BOUND
                )
    except Exception as exc:
        run.failure = exc
    finally:
        for subject in subjects:
            subject.close_quietly()
    return run


@pytest.fixture(scope="module")
def hang(server: ThrowawayPostgres) -> HangRun:
    if not server.is_running():
        server.start()
    return run_hang(server)


@pytest.mark.parametrize("kind", KINDS)
def test_hung_server_acquire_keeps_its_deadline(hang: HangRun, kind: str) -> None:
    error = hang.error_of(kind)
    if error is not None:
        raise AssertionError(f"the hang scenario failed: {describe(error)}") from error
    rounds = hang.rounds[kind]
    acquire_max = max((r.acquire_seconds for r in rounds), default=float("nan"))
    query_max = max((r.query_seconds for r in rounds), default=float("nan"))
    outcomes: dict[str, int] = {}
    for r in rounds:
        key = "ok" if r.ok else type(r.error).__name__
        outcomes[key] = outcomes.get(key, 0) + 1
    causes = sorted({type(r.error.__cause__).__name__ for r in rounds if r.error is not None})
    served = hang.served_after[kind]
    print(
        f"\n[hang {kind}] {len(rounds)} acquires in {HANG_FOR} s; max acquire "
        f"{acquire_max:.3f} s, max acquire+query {query_max:.3f} s; outcomes {outcomes}, "
        f"causes {causes}; served again {served if served is None else round(served, 3)} s "
        f"after resume (errors before: {hang.serve_errors[kind][:3]})"
    )
    assert not hang.hung[kind], f"borrowers still running after {HANG_JOIN} s: {hang.hung[kind]}"
    # 4 borrowers, each round at most ~2.1 s: at least two rounds each unless something stalls.
    assert len(rounds) >= 2 * HANG_WORKERS, f"only {len(rounds)} acquires in {HANG_FOR} s"
    slow = sorted(r.acquire_seconds for r in rounds if r.acquire_seconds > ACQUIRE_BOUND)
    assert not slow, (
        f"{len(slow)} of {len(rounds)} acquires overran {ACQUIRE_BOUND} s (timeout "
        f"{ACQUIRE_TIMEOUT} s): {[round(s, 3) for s in slow[-5:]]}"
    )
    assert served is not None and served <= SERVE_AGAIN_WITHIN, (
        f"not served again within {SERVE_AGAIN_WITHIN} s of resume (first success after "
        f"{served} s; errors: {hang.serve_errors[kind][:5]})"
    )


# -- 3. outages of 5 s and 20 s --------------------------------------------------------------

PROBE_TIMEOUT = 0.5
# The deadline plus 0.1 s, as for the hang (ACQUIRE_BOUND).
PROBE_BOUND = PROBE_TIMEOUT + 0.1
FIRST_SUCCESS_WITHIN = 1.0
# The library retries at most every 0.5 s (after a backoff from 50 ms) plus one connect per
# probe at most: about 3 per second. The constant covers the backoff's first quick steps
# (50, 100, 200, 400 ms: 4 attempts in 0.75 s where the steady rate allows about 2).
ATTEMPTS_PER_SECOND = 3.0
ATTEMPTS_SLACK = 2
PROBE_JOIN = PROBE_TIMEOUT + 5.0  # a probe's round, plus room for this machine's stalls


@dataclass
class OutageRun:
    seconds: float
    stopped_at: float = 0.0  # stop("fast") returned: down from here
    ready_at: float = 0.0  # start() (pg_ctl -w) returned
    errors_at_stop: dict[str, int] = field(default_factory=dict)
    errors_at_ready: dict[str, int] = field(default_factory=dict)
    rounds: dict[str, list[Round]] = field(default_factory=dict)
    hung: dict[str, list[str]] = field(default_factory=dict)
    failures: dict[str, BaseException] = field(default_factory=dict)  # per pool, at set-up
    failure: BaseException | None = None  # of the scenario itself

    def error_of(self, kind: str) -> BaseException | None:
        return self.failures.get(kind) or self.failure


def run_outage(server: ThrowawayPostgres, seconds: float) -> OutageRun:
    """Stop the server for ``seconds`` under all three pools at once, each probed by one
    borrower in a loop (acquire timeout 0.5 s), then start it again."""
    run = OutageRun(seconds)
    # ping_interval=0: an idle connection the stop killed is caught by its check and never
    # handed out, so every failure while down is the acquire's own.
    settings = {"min_size": 2, "max_size": 4, "wait_timeout": PROBE_TIMEOUT, "ping_interval": 0}
    subjects = [subject_for(server, kind, f"down{int(seconds)}", **settings) for kind in KINDS]

    def warm(subject: Subject) -> None:
        result = subject.run_round(ACQUIRE_TIMEOUT, None)
        assert result.ok, f"{subject.kind}: not serving before the outage: {describe(result.error)}"
        subject.start_workers(1, PROBE_TIMEOUT, None, error_cadence=PROBE_TIMEOUT, success_gap=0.01)
        wait_until(
            lambda: any(r.ok for r in subject.logs[0]),
            SETUP_BOUND,
            f"{subject.kind}'s prober served before the outage",
        )

    try:
        subjects = set_up(subjects, run.failures, warm)
        server.stop("fast")
        run.stopped_at = time.monotonic()
        run.errors_at_stop = {s.kind: s.connect_errors() for s in subjects}
        sleep_until(run.stopped_at + seconds)
        server.start()
        run.ready_at = time.monotonic()
        run.errors_at_ready = {s.kind: s.connect_errors() for s in subjects}
        with contextlib.suppress(AssertionError):  # the tests judge the figure, not this wait
            wait_until(
                lambda: all(
                    any(r.ok and r.ended > run.ready_at for r in s.logs[0]) for s in subjects
                ),
                FIRST_SUCCESS_WITHIN + 4.0,
                "every pool serving after the outage",
            )
        for subject in subjects:
            subject.signal_stop()
        deadline = time.monotonic() + PROBE_JOIN
        for subject in subjects:
            run.hung[subject.kind] = subject.join_workers(deadline)
            run.rounds[subject.kind] = list(subject.logs[0])
    except Exception as exc:
        run.failure = exc
    finally:
        if not server.is_running():
            server.start()
        for subject in subjects:
            subject.close_quietly()
    return run


@pytest.fixture(scope="module")
def outages(server: ThrowawayPostgres) -> Iterator[Callable[[float], OutageRun]]:
    """Each outage runs once, under all three pools; its tests read the measurements."""
    done: dict[float, OutageRun] = {}

    def outage(seconds: float) -> OutageRun:
        if seconds not in done:
            if not server.is_running():
                server.start()
            done[seconds] = run_outage(server, seconds)
        return done[seconds]

    yield outage


def names_connect_error(kind: str, error: BaseException) -> bool:
    cause = error.__cause__
    if cause is not None:
        return isinstance(cause, CONNECT_ERRORS[kind])
    text = str(error).lower()
    return any(
        words in text
        for words in ("connection refused", "connect call failed", "could not connect")
    )


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seconds", [5.0, 20.0])
def test_outage_fails_fast_and_recovers(
    outages: Callable[[float], OutageRun], seconds: float, kind: str
) -> None:
    run = outages(seconds)
    error = run.error_of(kind)
    if error is not None:
        raise AssertionError(f"the outage scenario failed: {describe(error)}") from error
    rounds = run.rounds[kind]
    down = [r for r in rounds if r.started >= run.stopped_at and r.ended <= run.ready_at]
    first = min((r.ended for r in rounds if r.ok and r.ended > run.stopped_at), default=None)
    to_first = None if first is None else first - run.ready_at
    window = run.ready_at - run.stopped_at
    attempts = run.errors_at_ready[kind] - run.errors_at_stop[kind]
    slowest = max((r.acquire_seconds for r in down), default=float("nan"))
    kinds_down = sorted({describe(r.error).split(":")[0] for r in down})
    causes = sorted({type(r.error.__cause__).__name__ for r in down if r.error is not None})
    print(
        f"\n[outage {seconds:.0f} s {kind}] down {window:.2f} s: {len(down)} probes failed "
        f"({kinds_down}, causes {causes}), slowest {slowest:.3f} s; {attempts} connect "
        f"attempts = {attempts / window:.2f}/s; first success "
        f"{'none' if to_first is None else f'{to_first:+.3f} s'} after start() returned"
    )
    assert not run.hung[kind], f"probe still running after {PROBE_JOIN} s: {run.hung[kind]}"
    # A probe every 0.5 s: at least one per second of outage unless something stalls.
    assert len(down) >= seconds, f"only {len(down)} probes while down for {window:.1f} s"
    wrong = [
        f"+{r.started - run.stopped_at:.2f} s, {r.acquire_seconds:.3f} s: {describe(r.error)}"
        for r in down
        if not (
            isinstance(r.error, sessionpool.PoolTimeout)
            and r.acquire_seconds <= PROBE_BOUND
            and names_connect_error(kind, r.error)
        )
    ]
    assert not wrong, (
        f"{len(wrong)} of {len(down)} failures while down were not a PoolTimeout within "
        f"{PROBE_BOUND} s naming the connect error: {wrong[:4]}"
    )
    assert to_first is not None and to_first <= FIRST_SUCCESS_WITHIN, (
        f"first success {to_first} s after the server was ready (bound {FIRST_SUCCESS_WITHIN} s)"
    )
    allowed = ATTEMPTS_PER_SECOND * window + ATTEMPTS_SLACK
    assert attempts <= allowed, (
        f"{attempts} connect attempts in {window:.1f} s down ({attempts / window:.2f}/s); "
        f"at most {allowed:.0f} expected"
    )
