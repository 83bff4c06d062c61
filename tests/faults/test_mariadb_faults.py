"""Faults on a throwaway MariaDB: KILLed idle connections (threads and asyncio) and a restart
under 8-thread load. The application must see no error (or one, with checks by age off), no
thread may hang, and a closed pool must leave no session on the server.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import sessionpool
from tests.faults.mariadbserver import ThrowawayMariaDB

SIZE = 4
BORROWS = 20
# mysqlclient is the second blocking driver the README names; both must behave alike.
BLOCKING_DRIVERS = ["pymysql", "mysqldb"]

THREADS = 8
LOAD_SECONDS = 5.0
RESTART_AT = 1.5
ACQUIRE_TIMEOUT = 1.0
# How long after the restart the load may take to succeed again. Recovery needs one failed
# borrow, checks of the suspect connections and a few connects (milliseconds here); 10 s is
# for a 2-core machine shared with other test runs, where a thread can wait seconds for a CPU.
RECOVERY_BOUND = 10.0
# An iteration's legitimate worst case: the acquire timeout plus the pool's own limits on a
# check and a reset (ping_timeout and reset_timeout, 5 s each). A thread alive after that
# (plus a margin for the noisy machine) is hung.
JOIN_BOUND = ACQUIRE_TIMEOUT + 5.0 + 5.0 + 4.0
# Sessions end on the server a moment after their client says goodbye (or KILL); 5 s is
# generous for a loopback server whose clean shutdown takes 30 ms here.
SESSION_GONE_BOUND = 5.0


@pytest.fixture(scope="module")
def server() -> Iterator[ThrowawayMariaDB]:
    server = ThrowawayMariaDB()
    try:
        seconds = server.start()
        print(f"\nthrowaway MariaDB: install {server.install_seconds:.2f} s, start {seconds:.2f} s")
        yield server
    finally:
        server.destroy()


# -- helpers -------------------------------------------------------------------------------


def pool_sessions(server: ThrowawayMariaDB) -> set[int]:
    """Server sessions the pools opened: root from 127.0.0.1 in database ``test``. The admin
    connection asking has no database and excludes itself by id."""
    with server.connect() as admin, admin.cursor() as cursor:
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'root' AND DB = 'test' "
            "AND HOST LIKE '127.0.0.1:%' AND ID <> CONNECTION_ID()"
        )
        return {int(row[0]) for row in cursor.fetchall()}


def wait_for_sessions(server: ThrowawayMariaDB, condition: Any) -> set[int]:
    """Poll the process list until ``condition(ids)`` holds or SESSION_GONE_BOUND passes."""
    deadline = time.monotonic() + SESSION_GONE_BOUND
    while True:
        ids = pool_sessions(server)
        if condition(ids) or time.monotonic() > deadline:
            return ids
        time.sleep(0.02)


def kill_sessions(server: ThrowawayMariaDB, ids: set[int]) -> None:
    """KILL each session from an admin connection, then wait until the server has ended them
    (a killed thread leaves the process list when it has closed its socket)."""
    with server.connect() as admin, admin.cursor() as cursor:
        for session in ids:
            cursor.execute(f"KILL CONNECTION {int(session)}")
    left = wait_for_sessions(server, lambda found: not found & ids)
    assert not left & ids, f"killed sessions {sorted(left & ids)} still on the server"


def query_one(conn: Any, sql: str) -> Any:
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return cursor.fetchone()[0]
    finally:
        cursor.close()


def use_every_connection(pool: sessionpool.Pool) -> set[int]:
    """The session id of each of the pool's connections (all borrowed at once)."""
    leases = [pool.acquire(timeout=5) for _ in range(SIZE)]
    try:
        return {int(query_one(lease, "SELECT CONNECTION_ID()")) for lease in leases}
    finally:
        for lease in leases:
            lease.release()


def borrow_many(pool: sessionpool.Pool) -> tuple[list[str], set[int]]:
    """BORROWS borrow-and-query cycles: (the disconnect errors seen, session ids served).
    Any other error is not a fault the pool may pass on, so it propagates."""
    errors: list[str] = []
    served: set[int] = set()
    for _ in range(BORROWS):
        try:
            with pool.acquire(timeout=5) as conn:
                served.add(int(query_one(conn, "SELECT CONNECTION_ID()")))
        except Exception as exc:
            if not pool.is_disconnect(exc):
                raise
            errors.append(repr(exc))
    return errors, served


# -- (a) KILL every idle connection, blocking drivers --------------------------------------


@pytest.mark.parametrize("driver", BLOCKING_DRIVERS)
@pytest.mark.parametrize(
    "ping_interval, most_errors", [(0.0, 0), (-1.0, 1)], ids=["checked", "unchecked"]
)
def test_killed_idle_connections(
    server: ThrowawayMariaDB, driver: str, ping_interval: float, most_errors: int
) -> None:
    # ping_interval=0 checks every hand-out, so no killed connection reaches the borrower;
    # -1 checks none by age, so the first borrower meets a dead one, and from then on every
    # connection last used before that error is suspect and checked.
    pool = sessionpool.create_pool(
        server.url(driver), min_size=SIZE, max_size=SIZE, ping_interval=ping_interval
    )
    try:
        before = use_every_connection(pool)
        assert len(before) == SIZE, before
        kill_sessions(server, before)
        errors, served = borrow_many(pool)
        successes = BORROWS - len(errors)
        print(f"\n{driver} ping_interval={ping_interval}: {len(errors)} errors, {successes} ok")
        assert len(errors) <= most_errors, (
            f"{len(errors)} of {BORROWS} borrowers saw a killed connection "
            f"(at most {most_errors} allowed): {errors}"
        )
        assert not served & before, f"killed sessions {sorted(served & before)} served a query"
        assert served, "no borrower was served"
        assert pool.opened <= SIZE, pool.status()
    finally:
        pool.close(force=True)
    left = wait_for_sessions(server, lambda found: not found)
    assert not left, f"{len(left)} sessions left on the server after close: {sorted(left)}"


# -- (b) restart under load ----------------------------------------------------------------


@dataclass
class LoadRecord:
    successes: list[float] = field(default_factory=list)  # monotonic time of each success
    failures: list[tuple[float, str]] = field(default_factory=list)  # expected outage errors
    unexpected: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def successes_after(self, moment: float) -> int:
        with self.lock:
            return sum(1 for at in self.successes if at > moment)


def load_worker(pool: sessionpool.Pool, stop: threading.Event, record: LoadRecord) -> None:
    while not stop.is_set():
        try:
            with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                value = query_one(conn, "SELECT 1")
            if value != 1:
                raise AssertionError(f"SELECT 1 returned {value!r}")
            with record.lock:
                record.successes.append(time.monotonic())
        except Exception as exc:
            # While the server is down a borrower may meet a dead connection (a disconnect
            # error) or find none to open within its timeout (PoolTimeout). Nothing else.
            expected = isinstance(exc, sessionpool.PoolTimeout) or pool.is_disconnect(exc)
            with record.lock:
                if expected:
                    record.failures.append((time.monotonic(), repr(exc)))
                else:
                    record.unexpected.append(repr(exc))
            # An application's retry backoff: keeps 8 failing threads from spinning on the
            # 2 cores the restarting server needs.
            stop.wait(0.05)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_restart_under_load(server: ThrowawayMariaDB, mode: str) -> None:
    assert not pool_sessions(server), "a previous test left sessions behind"
    pool = sessionpool.create_pool(
        server.url("pymysql"), min_size=SIZE, max_size=SIZE, wait_timeout=ACQUIRE_TIMEOUT
    )
    record = LoadRecord()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=load_worker, args=(pool, stop, record), name=f"load-{n}", daemon=True
        )
        for n in range(THREADS)
    ]
    started = time.monotonic()
    try:
        for thread in threads:
            thread.start()
        time.sleep(RESTART_AT)  # a point in the schedule, not a wait for anything
        restart_began = time.monotonic()
        successes_before = record.successes_after(0.0)
        server.stop(mode)
        start_seconds = server.start()
        restarted = time.monotonic()
        # Keep the load on until LOAD_SECONDS have passed and it has succeeded after the
        # restart, or RECOVERY_BOUND has passed since the restart.
        while time.monotonic() < started + LOAD_SECONDS or (
            record.successes_after(restarted) == 0 and time.monotonic() < restarted + RECOVERY_BOUND
        ):
            time.sleep(0.05)
    finally:
        stop.set()
        join_deadline = time.monotonic() + JOIN_BOUND
        for thread in threads:
            thread.join(max(0.0, join_deadline - time.monotonic()))
    hung = [thread.name for thread in threads if thread.is_alive()]
    first_success_after = min((at for at in record.successes if at > restarted), default=None)
    recovery = None if first_success_after is None else first_success_after - restarted
    print(
        f"\nrestart ({mode}): down {restarted - restart_began:.2f} s (start {start_seconds:.2f}"
        f" s); {successes_before} ok before, {record.successes_after(restarted)} after; "
        f"{len(record.failures)} outage errors; first success "
        f"{'never' if recovery is None else f'{recovery * 1000:.0f} ms'} after restart"
    )
    try:
        assert not hung, f"threads {hung} still running {JOIN_BOUND} s after the load stopped"
        assert not record.unexpected, f"errors other than outage errors: {record.unexpected}"
        assert successes_before > 0, "the load never succeeded before the restart"
        assert recovery is not None, (
            f"no success within {RECOVERY_BOUND} s after the restart; "
            f"{len(record.failures)} errors, last: {record.failures[-3:]}; {pool.status()}"
        )
        open_sessions = pool_sessions(server)
        assert 0 < len(open_sessions) <= SIZE, (open_sessions, pool.status())
        pool.close()
    finally:
        pool.close(force=True)
    left = wait_for_sessions(server, lambda found: not found)
    assert not left, f"{len(left)} of the pool's sessions left on the server after close"


# -- (c) KILL every idle connection, asyncio -----------------------------------------------


@pytest.mark.parametrize(
    "ping_interval, most_errors", [(0.0, 0), (-1.0, 1)], ids=["checked", "unchecked"]
)
async def test_async_killed_idle_connections(
    server: ThrowawayMariaDB, ping_interval: float, most_errors: int
) -> None:
    pool = await sessionpool.create_async_pool(
        server.url("aiomysql"), min_size=SIZE, max_size=SIZE, ping_interval=ping_interval
    )

    async def session_id(conn: Any) -> int:
        async with conn.cursor() as cursor:
            await cursor.execute("SELECT CONNECTION_ID()")
            return int((await cursor.fetchone())[0])

    try:
        leases = [await pool.acquire(timeout=5) for _ in range(SIZE)]
        before = {await session_id(lease) for lease in leases}
        for lease in leases:
            await lease.release()
        assert len(before) == SIZE, before
        # The admin work is blocking PyMySQL: off the event loop.
        await asyncio.to_thread(kill_sessions, server, before)
        errors: list[str] = []
        served: set[int] = set()
        for _ in range(BORROWS):
            try:
                async with pool.acquire(timeout=5) as conn:
                    served.add(await session_id(conn))
            except Exception as exc:
                if not pool.is_disconnect(exc):
                    raise
                errors.append(repr(exc))
        print(f"\naiomysql ping_interval={ping_interval}: {len(errors)} errors")
        assert len(errors) <= most_errors, (
            f"{len(errors)} of {BORROWS} borrowers saw a killed connection "
            f"(at most {most_errors} allowed): {errors}"
        )
        assert not served & before, f"killed sessions {sorted(served & before)} served a query"
        assert served, "no borrower was served"
        assert pool.opened <= SIZE, pool.status()
    finally:
        await pool.close(force=True)
    left = await asyncio.to_thread(wait_for_sessions, server, lambda found: not found)
    assert not left, f"{len(left)} sessions left on the server after close: {sorted(left)}"
