"""Cancellation safety of AsyncPool against a real PostgreSQL server.

The requirement: a task cancelled at any point (waiting for a connection, during connect, ping,
reset or release, or while holding a lease inside ``async with``) leaves the pool's counts
exact and no connection lost or stuck. The storms cancel thousands of tasks at random points
and then compare the pool's figures with the server's own view of its sessions
(pg_stat_activity, by a per-pool ``application_name``); the targeted tests pin each await
where a cancellation can land.

Each storm runs in a process of its own (this module run with ``-m``) under a watchdog: a
driver left deadlocked by the pool (seen with psycopg: libpq used after the pool closed a
connection an abandoned task was still using) then fails its test with every thread's stack
instead of hanging the run.

These tests need PostgreSQL at 127.0.0.1:5432 (trust auth, database ``test``); they fail when
it is down. Fixtures are local to this module on purpose.
"""

from __future__ import annotations

import asyncio
import faulthandler
import json
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

import sessionpool
from sessionpool import AsyncLease, AsyncPool, PoolTimeout
from sessionpool.drivers.async_base import AsyncCreatorConnector

ROOT = str(Path(__file__).resolve().parents[2])
HOST = "127.0.0.1"
DATABASE = "test"
#: Seconds a helper waits for the server to catch up with something that already happened.
SERVER_PATIENCE = 10.0  # polled: only a slow, loaded server uses it up

# -- server side: who is connected, as PostgreSQL sees it ---------------------------------------


def new_app() -> str:
    return f"sp_storm_{uuid.uuid4().hex[:16]}"


async def sessions(monitor: asyncpg.Connection, app: str) -> dict[int, str]:
    """pid -> state of every server session whose application_name is ``app``."""
    rows = await monitor.fetch(
        "SELECT pid, state FROM pg_stat_activity WHERE application_name = $1", app
    )
    return {int(row["pid"]): str(row["state"]) for row in rows}


async def wait_sessions(
    monitor: asyncpg.Connection,
    app: str,
    good: Callable[[dict[int, str]], bool],
    timeout: float = SERVER_PATIENCE,
) -> dict[int, str]:
    """Poll the server until ``good(sessions)`` holds or ``timeout`` passes; return the last."""
    deadline = time.monotonic() + timeout
    while True:
        seen = await sessions(monitor, app)
        if good(seen) or time.monotonic() >= deadline:
            return seen
        await asyncio.sleep(0.02)


async def assert_server_drops_to_zero(monitor: asyncpg.Connection, app: str) -> None:
    # Polled: returns as soon as the server shows none. The bound is generous because a
    # loaded server (CI shares the machine) may register backend exits late.
    left = await wait_sessions(monitor, app, lambda s: not s, timeout=10.0)
    assert left == {}, f"server sessions of {app} still there 10 s after close: {left}"


def all_idle(expected: set[int]) -> Callable[[dict[int, str]], bool]:
    return lambda seen: set(seen) == expected and all(s == "idle" for s in seen.values())


def backend_pid(connection: Any) -> int:
    """The server pid of a driver connection (asyncpg or psycopg)."""
    if isinstance(connection, asyncpg.Connection):
        return int(connection.get_server_pid())
    return int(connection.info.backend_pid)


def pool_pids(pool: AsyncPool) -> set[int]:
    return {backend_pid(slot.connection) for slot in pool._core.slots()}


async def drain(pool: AsyncPool, timeout: float = 10.0) -> None:
    """Wait for the opens and closes the pool started (pool._tasks) to finish."""
    deadline = time.monotonic() + timeout
    while pool._tasks and time.monotonic() < deadline:
        await asyncio.wait(set(pool._tasks), timeout=max(0.0, deadline - time.monotonic()))
    assert not pool._tasks, f"pool tasks still running after {timeout} s: {pool._tasks}"


async def until(predicate: Callable[[], object], what: str, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.002)


def assert_settled(pool: AsyncPool, *, busy: int = 0) -> None:
    core = pool._core
    figures = pool.stats()
    assert core.busy == busy, figures
    assert core.waiting == 0, figures
    assert core.opening == 0, figures
    assert core.idle == core.opened - busy, figures
    if core.cap is not None:
        assert core.opened + core.opening <= core.cap, figures


@pytest.fixture
async def monitor() -> AsyncIterator[asyncpg.Connection]:
    """A plain asyncpg connection outside any pool, to ask the server about sessions."""
    connection = await asyncpg.connect(host=HOST, database=DATABASE)
    yield connection
    await connection.close()


@pytest.fixture
async def apps(monitor: asyncpg.Connection) -> AsyncIterator[list[str]]:
    """application_names used by a test; their sessions are terminated at teardown (a failed
    test must not leave sessions behind)."""
    names: list[str] = []
    yield names
    if names:
        await monitor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = ANY($1::text[])",
            names,
        )


@pytest.fixture
async def pools() -> AsyncIterator[list[AsyncPool]]:
    """Pools a test opened; force-closed at teardown."""
    opened: list[AsyncPool] = []
    yield opened
    for pool in opened:
        await pool.close(force=True)
        await drain(pool)


@pytest.fixture
async def table(monitor: asyncpg.Connection) -> AsyncIterator[str]:
    """A real (not temporary) table, dropped at teardown."""
    name = f"sp_cancel_{uuid.uuid4().hex[:12]}"
    await monitor.execute(f"CREATE TABLE {name} (v int)")
    yield name
    await monitor.execute(f"DROP TABLE IF EXISTS {name}")


def asyncpg_url(app: str) -> str:
    return f"postgresql+asyncpg://{HOST}/{DATABASE}?application_name={app}"


def asyncpg_creator(app: str, delay: float = 0.0) -> Callable[..., Awaitable[Any]]:
    async def connect(**_: Any) -> Any:
        if delay:
            await asyncio.sleep(delay)
        return await asyncpg.connect(
            host=HOST, database=DATABASE, server_settings={"application_name": app}
        )

    return connect


async def open_pool(
    pools: list[AsyncPool], apps: list[str], app: str, source: Any, **settings: Any
) -> AsyncPool:
    apps.append(app)
    settings.setdefault("wait_timeout", 5.0)
    opening = sessionpool.create_async_pool(source, **settings)
    pools.append(opening._pool)
    return await opening


# -- what a borrower does, per driver -----------------------------------------------------------

TEMP_DDL = "CREATE TEMP TABLE IF NOT EXISTS sp_storm_t (v int)"


class AsyncpgOps:
    """Borrower actions on an asyncpg connection (through the lease proxy)."""

    async def sleep_query(self, conn: Any, seconds: float) -> None:
        await conn.execute(f"SELECT pg_sleep({seconds})")

    async def transaction_insert(self, conn: Any, value: int) -> None:
        async with conn.transaction():
            await conn.execute(TEMP_DDL)
            await conn.execute("INSERT INTO sp_storm_t VALUES ($1)", value)

    async def leave_open(self, conn: Any, value: int, rng: random.Random) -> None:
        if rng.random() < 0.5:
            await conn.execute("BEGIN")
        else:
            await conn.transaction().start()  # asyncpg's own API, never committed
        await conn.execute(TEMP_DDL)
        await conn.execute("INSERT INTO sp_storm_t VALUES ($1)", value)

    async def outside_transaction(self, conn: Any) -> bool:
        """True when the session is not inside a transaction a previous borrower left: two
        statements get two transaction ids only outside a transaction block (the server's
        view, not the driver's)."""
        if conn.is_in_transaction():
            return False
        first = await conn.fetchval("SELECT pg_current_xact_id()::text")
        second = await conn.fetchval("SELECT pg_current_xact_id()::text")
        return bool(first != second)

    def handed_out_state(self, raw: Any) -> str:
        """What the driver knows locally of a connection just handed out ("ok" if usable)."""
        if raw.is_closed():
            return "closed"
        if raw.is_in_transaction():
            return "inside a transaction"
        return "ok"


class PsycopgOps:
    """Borrower actions on a psycopg AsyncConnection (not autocommit: each first statement
    opens a transaction that the pool's reset must end)."""

    async def sleep_query(self, conn: Any, seconds: float) -> None:
        await conn.execute(f"SELECT pg_sleep({seconds})")

    async def transaction_insert(self, conn: Any, value: int) -> None:
        async with conn.transaction():
            await conn.execute(TEMP_DDL)
            await conn.execute("INSERT INTO sp_storm_t VALUES (%s)", (value,))

    async def leave_open(self, conn: Any, value: int, rng: random.Random) -> None:
        await conn.execute(TEMP_DDL)
        await conn.execute("INSERT INTO sp_storm_t VALUES (%s)", (value,))

    async def outside_transaction(self, conn: Any) -> bool:
        # psycopg learns the status from the server's ReadyForQuery and waits for a
        # cancelled command to end, so its local status is the server's.
        return int(conn.info.transaction_status) == 0  # IDLE

    def handed_out_state(self, raw: Any) -> str:
        if raw.closed or raw.broken:
            return "closed"
        status = int(raw.pgconn.transaction_status)
        if status == 1:  # ACTIVE
            return "a command still running on it (another task uses it)"
        if status != 0:
            return f"inside a transaction (status {status})"
        return "ok"


# -- the storm ----------------------------------------------------------------------------------

WORKERS = 200
ROUNDS = 25
CANCELS = 2_000
# The storm ends when CANCELS cancellations have landed (a few seconds here); this bound only
# matters on a loaded machine, where 15 s once let just 1,664 land.
STORM_SECONDS = 45.0
ACQUIRE_TIMEOUTS = (0.002, 0.01, 0.05, 0.2)
PG_SLEEPS = (0.001, 0.002, 0.005)


@dataclass
class Variant:
    source: str  # "asyncpg", "psycopg" or "creator" (asyncpg through AsyncCreatorConnector)
    seed: int
    max_overflow: int = 0
    reset_on_return: str = "rollback"


class Storm:
    """WORKERS borrower tasks doing random things while a chaos task cancels random ones.

    Every cancelled (or finished) worker is replaced until CANCELS cancellations have landed;
    then the workers finish their current round and stop. Problems are collected, not raised,
    so one failing run reports every invariant it broke.
    """

    def __init__(self, pool: AsyncPool, ops: AsyncpgOps | PsycopgOps, seed: int) -> None:
        self.pool = pool
        self.ops = ops
        self.seed = seed
        core = pool._core
        assert core.cap is not None
        self.cap = core.cap
        self.live: set[asyncio.Task[None]] = set()
        self.phase: dict[asyncio.Task[None], str] = {}
        self.spawned = 0
        self.stopping = False
        self.checking = True
        self.cancel_requests = 0
        self.cancelled = 0
        self.landings: Counter[str] = Counter()
        self.timeouts = 0
        self.rounds = 0
        self.checks = 0
        self.errors: Counter[str] = Counter()
        self.problems: Counter[str] = Counter()
        self.violations: Counter[str] = Counter()
        self.landed: dict[asyncio.Task[None], str] = {}
        self.loop_errors: Counter[str] = Counter()

    # bookkeeping

    def problem(self, text: str) -> None:
        self.problems[text] += 1

    def error(self, where: str, exc: BaseException) -> None:
        key = f"{where}: {type(exc).__name__}: {str(exc)[:120]}"
        self.errors[key] += 1

    def check(self) -> None:
        """The core invariant, read between two steps of the loop."""
        core = self.pool._core
        busy, idle, opening, waiting = core.busy, core.idle, core.opening, core.waiting
        self.checks += 1
        if busy + idle + opening > self.cap:
            self.violations[f"busy {busy} + idle {idle} + opening {opening} > cap {self.cap}"] += 1
        if min(busy, idle, opening, waiting) < 0:
            self.violations[f"negative figure: {busy=} {idle=} {opening=} {waiting=}"] += 1
        if idle and waiting:
            # Every request here accepts every slot: an idle slot beside a waiter is stuck.
            self.violations["an idle connection beside a waiting borrower"] += 1

    def spawn(self) -> None:
        self.spawned += 1
        task = asyncio.get_running_loop().create_task(self.worker(self.spawned))
        self.live.add(task)
        self.phase[task] = "not started"
        task.add_done_callback(self.finished)

    def finished(self, task: asyncio.Task[None]) -> None:
        self.live.discard(task)
        self.phase.pop(task, None)
        self.landed.pop(task, None)
        if task.cancelled():
            self.cancelled += 1
        elif task.exception() is not None:
            self.error("worker died", task.exception())  # type: ignore[arg-type]
        if not self.stopping:
            self.spawn()

    def landing(self, task: asyncio.Task[None]) -> str:
        """Where a cancel delivered now lands: from the awaited coroutine chain."""
        phase = self.phase.get(task, "?")
        names: set[str] = set()
        coroutine: Any = task.get_coro()
        while coroutine is not None:
            code = getattr(coroutine, "cr_code", None)
            if code is not None:
                names.add(code.co_name)
            coroutine = getattr(coroutine, "cr_await", None)
        waiter = getattr(task, "_fut_waiter", None)
        handles = {id(request.handle) for request in self.pool._core.waiters()}
        if "_wait" in names or (phase == "acquire" and waiter is not None):
            if waiter is not None and waiter.done() and id(waiter) not in handles:
                return "granted, not yet resumed"
            if id(waiter) in handles:
                return "waiting, a connect running" if self.pool.opening else "waiting"
        if "_after_use" in names:
            return "reset on release"
        if "_refresh_or_drop" in names:
            return "purity='new' reset"
        if "ping" in names:
            return "ping"
        return phase

    # the tasks

    async def worker(self, number: int) -> None:
        task = asyncio.current_task()
        assert task is not None
        rng = random.Random(self.seed * 1_000_003 + number)
        for _ in range(ROUNDS):
            if self.stopping:
                return
            self.phase[task] = "between rounds"
            await asyncio.sleep(rng.choice((0.0, 0.0, 0.0005, 0.002)))
            try:
                await self.one_round(task, rng)
            except PoolTimeout:
                self.timeouts += 1
            except Exception as exc:
                self.error(self.phase.get(task, "?"), exc)
            if task.cancelling():
                # A cancellation was delivered but did not end the task: something
                # swallowed it or turned it into another error.
                self.problem(
                    f"a cancelled worker went on (cancel landed at: {self.landed.get(task)})"
                )
                return
            self.rounds += 1

    async def one_round(self, task: asyncio.Task[None], rng: random.Random) -> None:
        timeout = rng.choice(ACQUIRE_TIMEOUTS)
        purity = "new" if rng.random() < 0.08 else None
        self.phase[task] = "acquire"
        if rng.random() < 0.3:
            conn = await self.pool.acquire(timeout=timeout, purity=purity)
            try:
                await self.use(task, conn, rng)
            finally:
                if not conn.is_released:
                    where = self.phase[task]
                    self.phase[task] = "release"
                    await conn.release()
                    self.phase[task] = where  # errors of the body keep their label
        else:
            async with self.pool.acquire(timeout=timeout, purity=purity) as conn:
                await self.use(task, conn, rng)
                self.phase[task] = "release"

    async def use(self, task: asyncio.Task[None], conn: AsyncLease, rng: random.Random) -> None:
        self.check()
        slot = conn._slot
        assert slot is not None
        state = self.ops.handed_out_state(slot.connection)
        if state != "ok":  # then used as any borrower would, which its reset must survive
            self.problem(f"a borrower was handed a connection: {state}")
        if rng.random() < 0.2:
            self.phase[task] = "inside: clean check"
            if not await self.ops.outside_transaction(conn):
                self.problem("a new borrower got a session inside a transaction left open")
        choice = rng.random()
        value = rng.randrange(1_000_000)
        if choice < 0.35:
            self.phase[task] = "inside: query"
            await self.ops.sleep_query(conn, rng.choice(PG_SLEEPS))
        elif choice < 0.6:
            self.phase[task] = "inside: transaction"
            await self.ops.transaction_insert(conn, value)
        elif choice < 0.75:
            self.phase[task] = "inside: leave a transaction open"
            await self.ops.leave_open(conn, value, rng)
        elif choice < 0.85:
            self.phase[task] = "ping"
            if not await self.pool.ping(conn, timeout=2.0):
                state = self.ops.handed_out_state(slot.connection)
                self.problem(f"ping() returned False (the driver's view now: {state})")
        elif choice < 0.98:
            self.phase[task] = "inside: holding"
            await asyncio.sleep(rng.choice((0.0, 0.001, 0.003)))
        else:
            self.phase[task] = "drop"
            await conn.drop()

    async def checker(self) -> None:
        while self.checking:
            self.check()
            await asyncio.sleep(0)

    async def chaos(self, rng: random.Random, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while self.cancelled < CANCELS and loop.time() < deadline:
            await asyncio.sleep(rng.choice((0.0, 0.0, 0.0002, 0.0005, 0.001)))
            live = [task for task in self.live if not task.done()]
            if not live:
                continue
            if rng.random() < 0.6:
                # Favour borrowers holding a connection (most workers just queue).
                holding = [
                    t for t in live if self.phase.get(t) not in ("acquire", "between rounds")
                ]
                live = holding or live
            target = rng.choice(live)
            if target.cancelling() and rng.random() < 0.9:
                continue  # mostly one cancel per task; sometimes a second one mid-cleanup
            where = self.landing(target)
            self.landings[where] += 1
            self.landed.setdefault(target, where)
            target.cancel()
            self.cancel_requests += 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        rng = random.Random(self.seed)
        previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self.loop_error)
        checker = loop.create_task(self.checker())
        for _ in range(WORKERS):
            self.spawn()
        await self.chaos(rng, loop.time() + STORM_SECONDS)
        self.stopping = True
        if self.live:
            _, stuck = await asyncio.wait(set(self.live), timeout=10.0)
            if stuck:
                self.problem(f"{len(stuck)} workers still running 10 s after the storm")
                for task in stuck:
                    task.cancel()
                await asyncio.wait(stuck, timeout=5.0)
        self.checking = False
        await checker
        loop.set_exception_handler(previous_handler)

    def loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Errors reported to the loop (asyncpg reports resetting a connection with an active
        transaction there); counted into the report instead of printed."""
        error = context.get("exception")
        what = str(context.get("message", ""))[:60]
        if error is not None:
            what += f" ({type(error).__name__}: {str(error)[:80]})"
        self.loop_errors[what] += 1

    def report(self) -> str:
        core = self.pool._core
        lines = [
            f"cancel requests {self.cancel_requests}, cancelled tasks {self.cancelled}, "
            f"rounds {self.rounds}, timeouts {self.timeouts}, invariant checks {self.checks}",
            f"pool: busy {core.busy} idle {core.idle} opened {core.opened} "
            f"opening {core.opening} waiting {core.waiting} cap {self.cap}",
            f"landings: {dict(self.landings)}",
        ]
        lines += [f"violation x{n}: {what}" for what, n in self.violations.items()]
        lines += [f"loop error x{n}: {what}" for what, n in self.loop_errors.items()]
        lines += [f"error x{n}: {what}" for what, n in self.errors.most_common(12)]
        lines += [f"problem x{n}: {what}" for what, n in self.problems.items()]
        return "\n".join(lines)


VARIANTS = [
    pytest.param(Variant("asyncpg", 11), id="asyncpg"),
    pytest.param(Variant("asyncpg", 12, max_overflow=2), id="asyncpg-overflow"),
    pytest.param(Variant("asyncpg", 13, reset_on_return="full"), id="asyncpg-full"),
    pytest.param(Variant("psycopg", 21), id="psycopg"),
    pytest.param(Variant("psycopg", 22, max_overflow=2), id="psycopg-overflow"),
    pytest.param(Variant("psycopg", 23, reset_on_return="full"), id="psycopg-full"),
    pytest.param(Variant("creator", 31), id="creator-asyncpg"),
    pytest.param(Variant("creator", 32, max_overflow=2), id="creator-asyncpg-overflow"),
]


VARIANT_BY_ID = {param.id: param.values[0] for param in VARIANTS}
#: Seconds a storm process may run before its watchdog dumps every thread's stack and exits.
STORM_PROCESS_LIMIT = 90.0
RESULT_MARK = "STORM-RESULT "


async def storm_and_check(variant: Variant, app: str) -> dict[str, Any]:
    """Run one storm and check the pool against the server; the problems found and a report."""
    settings: dict[str, Any] = {
        "min_size": 2,
        "max_size": 4,
        "max_overflow": variant.max_overflow,
        "reset_on_return": variant.reset_on_return,
        "reset_timeout": 5.0,
        "wait_timeout": 5.0,
    }
    source: Any
    ops: AsyncpgOps | PsycopgOps
    if variant.source == "asyncpg":
        source, ops = asyncpg_url(app), AsyncpgOps()
    elif variant.source == "psycopg":
        source, ops = f"postgresql+psycopg://{HOST}/{DATABASE}?application_name={app}", PsycopgOps()
    else:
        source, ops = asyncpg_creator(app), AsyncpgOps()
    problems: list[str] = []
    report = f"{variant}: the storm did not finish"
    monitor = await asyncpg.connect(host=HOST, database=DATABASE)
    pool = await sessionpool.create_async_pool(source, **settings)
    try:
        if variant.source == "creator" and not isinstance(pool._connector, AsyncCreatorConnector):
            problems.append(f"creator= did not give an AsyncCreatorConnector: {pool._connector}")
        # application_name reaches the server (asyncpg: server_settings; psycopg: libpq keyword)
        if set(await sessions(monitor, app)) != pool_pids(pool):
            problems.append("application_name did not reach the server")

        started = time.monotonic()
        storm = Storm(pool, ops, variant.seed)
        await storm.run()
        await drain(pool)
        elapsed = time.monotonic() - started
        report = f"{variant} after {elapsed:.1f} s\n{storm.report()}"

        core = pool._core
        if storm.cancelled < CANCELS:
            problems.append(f"only {storm.cancelled} cancellations landed (want {CANCELS})")
        if storm.violations:
            problems.append("invariant violated during the storm")
        for where in ("waiting", "waiting, a connect running", "reset on release", "ping"):
            if storm.landings[where] < 3:
                problems.append(f"too few cancellations landed at {where!r} (test coverage)")
        if core.busy or core.waiting or core.opening or core.idle != core.opened:
            problems.append("pool figures not settled after the storm")
        if core.opened > storm.cap:
            problems.append("more connections than the cap")
        expected = pool_pids(pool)
        seen = await wait_sessions(monitor, app, all_idle(expected))
        if set(seen) != expected or len(expected) != core.opened:
            problems.append(
                f"server sessions {sorted(seen)} != pool's {sorted(expected)} "
                f"(pool.opened {core.opened}): lost {sorted(set(seen) - expected)}, "
                f"missing {sorted(expected - set(seen))}"
            )
        not_idle = {pid: state for pid, state in seen.items() if state != "idle"}
        if not_idle:
            problems.append(f"server sessions not idle: {not_idle}")
        if storm.errors or storm.problems:
            problems.append("borrowers saw errors or broken sessions (only PoolTimeout expected)")

        await pool.close(force=bool(core.busy))
        await drain(pool)
        left = await wait_sessions(monitor, app, lambda s: not s, timeout=10.0)
        if left:
            problems.append(f"server sessions left 10 s after close: {left}")
    finally:
        await pool.close(force=True)
        await monitor.close()
    return {"problems": problems, "report": report}


def storm_process(variant_id: str, app: str) -> None:
    """Entry point of the storm's own process (``python -m tests.aio.test_cancellation``): a
    driver left in a deadlock (seen: libpq inside psycopg, after the pool closed a connection
    an abandoned task still used) cannot hang the test run; the watchdog prints the stacks."""
    faulthandler.dump_traceback_later(STORM_PROCESS_LIMIT, exit=True)
    result = asyncio.run(storm_and_check(VARIANT_BY_ID[variant_id], app))
    faulthandler.cancel_dump_traceback_later()
    print(RESULT_MARK + json.dumps(result), flush=True)


@pytest.mark.parametrize("variant_id", list(VARIANT_BY_ID))
async def test_cancellation_storm(
    variant_id: str, monitor: asyncpg.Connection, apps: list[str]
) -> None:
    app = new_app()
    apps.append(app)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.aio.test_cancellation",
        variant_id,
        app,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(), STORM_PROCESS_LIMIT + 15.0)
    except TimeoutError:
        child.kill()
        out, err = await child.communicate()
    lines = [line for line in out.decode().splitlines() if line.startswith(RESULT_MARK)]
    tail = err.decode(errors="replace")[-6000:]
    assert lines, (
        f"the storm process ended without a result (exit code {child.returncode}); "
        f"it hung or crashed. End of its stderr:\n{tail}"
    )
    result = json.loads(lines[-1][len(RESULT_MARK) :])
    # The process is gone: whatever it held is closed, as the server must confirm.
    await assert_server_drops_to_zero(monitor, app)
    assert not result["problems"], "\n".join(result["problems"]) + "\n" + result["report"]


# -- targeted, deterministic cancellations (asyncpg) ---------------------------------------------


async def start_acquire(pool: AsyncPool, **arguments: Any) -> asyncio.Task[AsyncLease]:
    """A task awaiting pool.acquire(...); returns once it waits in the queue."""
    before = pool.waiting

    async def acquire() -> AsyncLease:
        return await pool.acquire(**arguments)

    task = asyncio.get_running_loop().create_task(acquire())
    await until(lambda: pool.waiting > before or task.done(), "the waiter queued")
    assert not task.done(), task
    return task


async def test_cancel_while_waiting_in_queue(
    monitor: asyncpg.Connection, apps: list[str], pools: list[AsyncPool]
) -> None:
    app = new_app()
    pool = await open_pool(pools, apps, app, asyncpg_url(app), min_size=1, max_size=1)
    holder = await pool.acquire()
    holder_pid = holder.get_server_pid()
    first = await start_acquire(pool, timeout=5.0)
    middle = await start_acquire(pool, timeout=5.0)
    last = await start_acquire(pool, timeout=5.0)
    assert pool.waiting == 3
    handoffs = pool.stats().handoffs

    middle.cancel()
    with pytest.raises(asyncio.CancelledError):
        await middle
    assert pool.waiting == 2 and pool.busy == 1 and pool.idle == 0 and pool.opening == 0
    assert pool.stats().handoffs == handoffs  # nothing was granted to it

    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert pool.waiting == 1

    await holder.release()  # FIFO among those left: the last waiter gets it
    lease = await asyncio.wait_for(last, 2.0)
    assert lease.get_server_pid() == holder_pid
    assert pool.waiting == 0 and pool.busy == 1 and pool.idle == 0
    await lease.release()
    assert_settled(pool)
    assert pool.opened == 1
    assert await wait_sessions(monitor, app, all_idle({holder_pid})) == {holder_pid: "idle"}
    await pool.close()
    await assert_server_drops_to_zero(monitor, app)


@pytest.mark.parametrize("next_waiter", [True, False], ids=["to-next-waiter", "to-idle"])
async def test_cancel_just_after_being_granted(
    next_waiter: bool, monitor: asyncpg.Connection, apps: list[str], pools: list[AsyncPool]
) -> None:
    app = new_app()
    pool = await open_pool(pools, apps, app, asyncpg_url(app), min_size=1, max_size=1)
    holder = await pool.acquire()  # untouched: its release awaits nothing
    pid = holder.get_server_pid()
    granted = await start_acquire(pool, timeout=5.0)
    second = await start_acquire(pool, timeout=5.0) if next_waiter else None

    await holder.release()
    # The Wake landed: the first waiter was dequeued and handed the slot, but has not run.
    assert not granted.done()
    assert pool.busy == 1 and pool.waiting == (1 if next_waiter else 0)
    assert pool.stats().handoffs >= 1
    granted.cancel()
    with pytest.raises(asyncio.CancelledError):
        await granted

    if second is not None:
        lease = await asyncio.wait_for(second, 2.0)
        assert lease.get_server_pid() == pid
        assert pool.busy == 1 and pool.idle == 0 and pool.waiting == 0
        await lease.release()
    assert_settled(pool)
    assert pool.opened == 1 and pool.idle == 1
    assert await wait_sessions(monitor, app, all_idle({pid})) == {pid: "idle"}
    await pool.close()
    await assert_server_drops_to_zero(monitor, app)


async def test_cancel_during_a_slow_reset_drops_the_connection(
    monitor: asyncpg.Connection, apps: list[str], pools: list[AsyncPool]
) -> None:
    app = new_app()
    in_reset = asyncio.Event()

    async def slow_reset(connection: Any) -> None:
        in_reset.set()
        await asyncio.sleep(1.0)

    pool = await open_pool(
        pools, apps, app, asyncpg_url(app), min_size=0, max_size=2, reset_on_return=slow_reset
    )
    pids: list[int] = []

    async def borrower() -> None:
        async with pool.acquire() as conn:
            pids.append(await conn.fetchval("SELECT pg_backend_pid()"))

    task = asyncio.get_running_loop().create_task(borrower())
    await asyncio.wait_for(in_reset.wait(), 2.0)
    assert pool.opened == 1 and pool.busy == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert pool.opened == 0 and pool.busy == 0 and pool.idle == 0 and pool.waiting == 0
    await drain(pool)
    assert_settled(pool)
    assert await wait_sessions(monitor, app, lambda s: not s) == {}, "dropped session still on"
    async with pool.acquire() as conn:  # a new connection, not the one cancelled in reset
        assert conn.get_server_pid() != pids[0]
    await pool.close()
    await assert_server_drops_to_zero(monitor, app)


@pytest.mark.parametrize("outcome", ["connects", "fails"])
async def test_cancel_while_the_connect_runs(
    outcome: str, monitor: asyncpg.Connection, apps: list[str], pools: list[AsyncPool]
) -> None:
    app = new_app()
    connecting = asyncio.Event()
    real_connect = asyncpg_creator(app)

    async def slow_creator(**_: Any) -> Any:
        connecting.set()
        await asyncio.sleep(0.6)
        if outcome == "fails":
            raise OSError("no route (test)")
        return await real_connect()

    pool = await open_pool(pools, apps, app, slow_creator, lazy=True, min_size=0, max_size=2)
    errors_before = pool.stats().connect_errors
    task = await start_acquire(pool, timeout=5.0)
    await asyncio.wait_for(connecting.wait(), 2.0)
    assert pool.opening == 1 and pool.waiting == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.waiting == 0 and pool.busy == 0 and pool.opened == 0
    # The connect goes on, unaffected: it is counted until it finishes or fails.
    assert pool.opening == 1
    await asyncio.sleep(0.2)
    assert pool.opening == 1
    await drain(pool)
    assert pool.opening == 0 and pool.busy == 0 and pool.waiting == 0
    if outcome == "connects":
        assert pool.opened == 1 and pool.idle == 1
        expected = pool_pids(pool)
        assert await wait_sessions(monitor, app, all_idle(expected)) == dict.fromkeys(
            expected, "idle"
        )
    else:
        assert pool.opened == 0 and pool.idle == 0
        assert pool.stats().connect_errors == errors_before + 1
    await pool.close()
    await drain(pool)
    await assert_server_drops_to_zero(monitor, app)


@pytest.mark.parametrize(
    "how",
    ["plain", "managed-transaction", "raw-begin", "asyncpg-transaction-start"],
)
async def test_cancel_inside_async_with_during_a_query(
    how: str,
    monitor: asyncpg.Connection,
    apps: list[str],
    pools: list[AsyncPool],
    table: str,
) -> None:
    app = new_app()
    pool = await open_pool(pools, apps, app, asyncpg_url(app), min_size=1, max_size=1)
    pids: list[int] = []

    async def victim() -> None:
        async with pool.acquire() as conn:
            pids.append(conn.get_server_pid())
            if how == "plain":
                await conn.execute("SELECT pg_sleep(1)")
            elif how == "managed-transaction":
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {table} VALUES (1)")
                    await conn.execute("SELECT pg_sleep(1)")
            elif how == "raw-begin":
                await conn.execute("BEGIN")
                await conn.execute(f"INSERT INTO {table} VALUES (1)")
                await conn.execute("SELECT pg_sleep(1)")
            else:
                await conn.transaction().start()
                await conn.execute(f"INSERT INTO {table} VALUES (1)")
                await conn.execute("SELECT pg_sleep(1)")

    task = asyncio.get_running_loop().create_task(victim())
    await until(lambda: bool(pids), "the victim borrowed")
    running = await wait_sessions(monitor, app, lambda s: s.get(pids[0]) == "active", 2.0)
    assert running.get(pids[0]) == "active", running
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.busy == 0 and pool.waiting == 0

    # The next borrower gets a working session outside any transaction, and its own
    # transaction really commits.
    async with pool.acquire(timeout=5.0) as conn:
        assert await conn.fetchval("SELECT 41 + 1") == 42
        assert await AsyncpgOps().outside_transaction(conn)
        async with conn.transaction():
            await conn.execute(f"INSERT INTO {table} VALUES (2)")
    assert await monitor.fetch(f"SELECT v FROM {table} ORDER BY v") == [(2,)]
    await drain(pool)
    assert_settled(pool)
    expected = pool_pids(pool)
    assert len(expected) == pool.opened == 1
    assert await wait_sessions(monitor, app, all_idle(expected)) == dict.fromkeys(expected, "idle")
    await pool.close()
    await assert_server_drops_to_zero(monitor, app)


@pytest.mark.parametrize("reset", ["rollback", "full"])
@pytest.mark.parametrize(
    ("driver", "begin"),
    [
        ("asyncpg", "raw BEGIN"),
        ("asyncpg", "Transaction.start"),
        ("asyncpg", "async with transaction"),
        ("psycopg", "implicit BEGIN"),
        ("psycopg", "async with transaction"),
    ],
)
async def test_cancel_while_begin_is_in_flight(
    driver: str,
    begin: str,
    reset: str,
    monitor: asyncpg.Connection,
    apps: list[str],
    pools: list[AsyncPool],
    table: str,
) -> None:
    """The cancel lands after the borrower sent BEGIN and before the server's answer was
    read: the server opens the transaction anyway (a cancel request reaching an idle
    backend does nothing). The reset on return must still end it: the next borrower's
    transaction must really commit."""
    app = new_app()
    url = f"postgresql+{driver}://{HOST}/{DATABASE}?application_name={app}"
    pool = await open_pool(pools, apps, app, url, min_size=1, max_size=1, reset_on_return=reset)
    loop = asyncio.get_running_loop()
    loop_errors: list[str] = []
    loop.set_exception_handler(lambda _, context: loop_errors.append(str(context["message"])))
    began: list[bool] = []

    async def victim() -> None:
        async with pool.acquire() as conn:
            if begin == "raw BEGIN":
                await conn.execute("BEGIN")
            elif begin == "Transaction.start":
                await conn.transaction().start()
            elif begin == "implicit BEGIN":
                await conn.execute("SELECT 1")
            else:
                async with conn.transaction():
                    await conn.execute("SELECT 1")
            began.append(True)
            await asyncio.sleep(10)

    task = loop.create_task(victim())
    await asyncio.sleep(0)  # the victim sends BEGIN and waits for the answer
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not began, "the cancel was meant to land while BEGIN was in flight"
    await drain(pool)
    assert_settled(pool)

    ops: AsyncpgOps | PsycopgOps = AsyncpgOps() if driver == "asyncpg" else PsycopgOps()
    error = None
    async with pool.acquire(timeout=5.0) as conn:
        inherited = not await ops.outside_transaction(conn)
        try:
            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES (2)")
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    await drain(pool)
    committed = [tuple(row) for row in await monitor.fetch(f"SELECT v FROM {table}")]
    assert (inherited, error, committed) == (False, None, [(2,)]), (
        "next borrower: (got the session inside the cancelled BEGIN's transaction?, error of "
        f"its own transaction, rows committed); loop errors: {loop_errors}"
    )
    expected = pool_pids(pool)
    seen = await wait_sessions(monitor, app, all_idle(expected))
    assert seen == dict.fromkeys(expected, "idle"), seen
    await pool.close()
    await assert_server_drops_to_zero(monitor, app)


@pytest.mark.parametrize("cancels", [1, 2], ids=["cancelled", "cancelled-twice"])
@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
async def test_cancel_during_ping(
    driver: str,
    cancels: int,
    monitor: asyncpg.Connection,
    apps: list[str],
    pools: list[AsyncPool],
) -> None:
    """pool.ping() cancelled while its probe is on the wire (and, the second time, while the
    driver cleans up: psycopg then closes the connection). The caller must see the
    cancellation, and the next borrower must get a usable connection: not closed, no
    command of the interrupted probe still running on it."""
    app = new_app()
    url = f"postgresql+{driver}://{HOST}/{DATABASE}?application_name={app}"
    pool = await open_pool(pools, apps, app, url, min_size=1, max_size=1)
    driver_of = pool._connector.driver
    loop = asyncio.get_running_loop()
    outcomes: list[str] = []
    handed_out: list[str] = []

    def check_handed_out(raw: Any) -> None:
        if driver_of.is_closed(raw):
            handed_out.append("closed")
        elif driver == "psycopg" and int(raw.info.transaction_status) != 0:
            handed_out.append(f"transaction_status {int(raw.info.transaction_status)}")
        else:
            handed_out.append("ok")

    answered: list[bool] = []  # pings that completed before the cancel could land
    for _ in range(6):
        lease = await pool.acquire(timeout=5.0)
        assert lease._slot is not None
        raw = lease._slot.connection
        check_handed_out(raw)
        task = loop.create_task(pool.ping(lease, timeout=5.0))
        await asyncio.sleep(0)
        if driver == "psycopg":  # step until the probe was sent: psycopg must cancel it
            for _ in range(200):
                if task.done() or int(raw.pgconn.transaction_status) == 1:  # ACTIVE
                    break
                await asyncio.sleep(0)
        if task.done():  # answered before the cancel could land
            answered.append(await task)
            await lease.release()
            continue
        for _ in range(cancels):
            task.cancel()
            await asyncio.sleep(0)
        try:
            outcomes.append(f"ping returned {await task}")
        except asyncio.CancelledError:
            outcomes.append("cancelled")
        await lease.release()
        await drain(pool)
        assert_settled(pool)
    assert outcomes, f"no cancel landed during a probe (pings answered: {answered})"
    async with pool.acquire(timeout=5.0) as conn:
        assert conn._slot is not None
        check_handed_out(conn._slot.connection)
        await conn.execute("SELECT 1")
    assert (outcomes, handed_out, answered) == (
        ["cancelled"] * len(outcomes),
        ["ok"] * len(handed_out),
        [True] * len(answered),
    ), (
        "(outcome of each cancelled ping, state of each connection handed out, result of "
        "each ping the cancel did not reach)"
    )
    await pool.close()
    await assert_server_drops_to_zero(monitor, app)


async def test_cancel_during_reset_after_a_forced_close(
    monitor: asyncpg.Connection, apps: list[str], pools: list[AsyncPool]
) -> None:
    """close(force=True) while a borrower's reset runs, then the borrower is cancelled: the
    cancellation must still end the borrower's task."""
    app = new_app()
    in_reset = asyncio.Event()

    async def slow_reset(connection: Any) -> None:
        in_reset.set()
        await asyncio.sleep(1.0)

    pool = await open_pool(
        pools, apps, app, asyncpg_url(app), min_size=1, max_size=1, reset_on_return=slow_reset
    )

    async def borrower() -> str:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        return "finished normally"

    task = asyncio.get_running_loop().create_task(borrower())
    await asyncio.wait_for(in_reset.wait(), 2.0)
    await pool.close(force=True)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.opened == 0 and pool.busy == 0
    await drain(pool)
    await assert_server_drops_to_zero(monitor, app)


async def test_asyncpg_transaction_left_open_then_next_borrower_uses_transaction(
    monitor: asyncpg.Connection, apps: list[str], pools: list[AsyncPool], table: str
) -> None:
    """No cancellation: a borrower starts asyncpg's Transaction by hand and returns the
    connection with it open; the default reset must leave a session the next borrower can
    use normally (the storms' "begin a transaction and leave it open" action)."""
    app = new_app()
    pool = await open_pool(pools, apps, app, asyncpg_url(app), min_size=1, max_size=1)
    async with pool.acquire() as conn:
        await conn.transaction().start()
        await conn.execute(f"INSERT INTO {table} VALUES (1)")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"INSERT INTO {table} VALUES (2)")
    assert await monitor.fetch(f"SELECT v FROM {table} ORDER BY v") == [(2,)]
    await pool.close()
    await assert_server_drops_to_zero(monitor, app)


class SlowClosing(AsyncCreatorConnector):
    """Real asyncpg connections whose close takes half a second."""

    async def close(self, connection: Any, timeout: float) -> None:
        await asyncio.sleep(0.5)
        await super().close(connection, timeout)


async def test_cancel_pool_close_half_way(
    monitor: asyncpg.Connection, apps: list[str], pools: list[AsyncPool]
) -> None:
    app = new_app()
    pool = await open_pool(
        pools, apps, app, SlowClosing(asyncpg_creator(app)), min_size=3, max_size=3
    )
    pids = pool_pids(pool)
    assert await wait_sessions(monitor, app, all_idle(pids)) == dict.fromkeys(pids, "idle")
    closing = asyncio.get_running_loop().create_task(pool.close())
    await asyncio.sleep(0.1)
    assert not closing.done()
    closing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await closing
    assert pool.opened == 0 and pool.busy == 0 and pool.idle == 0
    await asyncio.wait_for(pool.close(), 2.0)  # a second close completes
    await assert_server_drops_to_zero(monitor, app)
    await drain(pool)
    assert pool.opening == 0 and pool.opened == 0


# -- a BaseException (KeyboardInterrupt-like) leaving async with, 1,000 times -------------------


class Interrupt(BaseException):
    """Neither Exception nor CancelledError, like KeyboardInterrupt or SystemExit."""


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_base_exception_inside_async_with(
    driver: str, monitor: asyncpg.Connection, apps: list[str], pools: list[AsyncPool]
) -> None:
    app = new_app()
    url = f"postgresql+{driver}://{HOST}/{DATABASE}?application_name={app}"
    ops: AsyncpgOps | PsycopgOps = AsyncpgOps() if driver == "asyncpg" else PsycopgOps()
    pool = await open_pool(pools, apps, app, url, min_size=2, max_size=2)
    rng = random.Random(4)
    for i in range(1_000):
        kind = i % 5
        with pytest.raises(Interrupt):
            async with pool.acquire(timeout=5.0) as conn:
                if kind == 1:
                    await ops.sleep_query(conn, 0)
                elif kind == 2:
                    await ops.leave_open(conn, i, rng)
                elif kind == 3:
                    async with conn.transaction():
                        await conn.execute(TEMP_DDL)
                        raise Interrupt
                elif kind == 4:
                    await conn.execute(TEMP_DDL)
                raise Interrupt
        assert pool.busy == 0 and pool.waiting == 0, (i, pool.stats())
    await drain(pool)
    assert_settled(pool)
    assert pool.opened == 2 and pool.idle == 2
    expected = pool_pids(pool)
    seen = await wait_sessions(monitor, app, all_idle(expected))
    assert seen == dict.fromkeys(expected, "idle"), seen
    # Every insert was rolled back, and both sessions work normally.
    first = await pool.acquire()
    second = await pool.acquire()
    for conn in (first, second):
        assert await ops.outside_transaction(conn)
        await ops.transaction_insert(conn, -1)  # creates the temp table if needed
        if driver == "asyncpg":
            count = await conn.fetchval("SELECT count(*) FROM sp_storm_t WHERE v >= 0")
        else:
            cursor = await conn.execute("SELECT count(*) FROM sp_storm_t WHERE v >= 0")
            count = (await cursor.fetchone())[0]
        assert count == 0
        await conn.release()
    await pool.close()
    await assert_server_drops_to_zero(monitor, app)


if __name__ == "__main__":
    storm_process(sys.argv[1], sys.argv[2])
