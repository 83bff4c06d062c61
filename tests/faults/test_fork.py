"""Fork safety against the real PostgreSQL: children never touch the parent's sessions.

A parent pool holds live connections; forked children (os.fork and multiprocessing's fork
start method) use the same pool object. No child may see a parent backend pid, and no child,
however it exits, may end one of the parent's sessions.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

import sessionpool

PG = "postgresql://127.0.0.1:5432/test"
CHILDREN = 10
QUERIES_PER_CHILD = 100

pytestmark = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


@pytest.fixture
def app_name() -> str:
    return f"sp_fork_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pool(app_name: str) -> Iterator[sessionpool.Pool]:
    pool = sessionpool.create_pool(
        f"{PG}?application_name={app_name}", min_size=4, max_size=4, wait_timeout=5
    )
    yield pool
    pool.close(force=True)


def backend_pids(pool: sessionpool.Pool) -> set[int]:
    """The backend pid of each of the pool's connections (borrowing all of them at once)."""
    leases = [pool.acquire() for _ in range(pool.max_size)]
    try:
        return {lease.execute("SELECT pg_backend_pid()").fetchone()[0] for lease in leases}
    finally:
        for lease in leases:
            lease.release()


def server_pids(app_name: str) -> set[int]:
    with psycopg.connect("host=127.0.0.1 dbname=test", autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app_name,)
        ).fetchall()
    return {row[0] for row in rows}


def child_queries(pool: sessionpool.Pool, forbidden: set[int], how_to_exit: str) -> int:
    """Run in a child: QUERIES_PER_CHILD borrows; returns an exit status (0 = all good)."""
    status = 0
    try:
        for _ in range(QUERIES_PER_CHILD):
            with pool.acquire() as conn:
                pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            if pid in forbidden:
                status = 3
        if how_to_exit == "close":
            pool.close()
        gc.collect()  # finalizers of whatever the child dropped run now, in the child
    except BaseException:
        status = 4
    return status


def test_forked_children_never_use_or_end_the_parents_sessions(
    pool: sessionpool.Pool, app_name: str
) -> None:
    parent = backend_pids(pool)
    assert len(parent) == 4
    held = pool.acquire()  # one borrowed across the fork: the child must not touch it either
    children = []
    for index in range(CHILDREN):
        pid = os.fork()
        if pid == 0:  # child
            how = ("close", "exit", "abandon")[index % 3]
            os._exit(child_queries(pool, parent, how))
        children.append(pid)
    statuses = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    assert statuses == [0] * CHILDREN, "a child saw a parent backend pid (3) or failed (4)"
    held.execute("SELECT 1")  # the borrowed session survived every child
    held.release()
    assert backend_pids(pool) == parent, "the parent still has the same four sessions"
    assert parent <= server_pids(app_name)


def _multiprocessing_child(pool: sessionpool.Pool, forbidden: set[int]) -> None:
    status = child_queries(pool, forbidden, "exit")
    if status:
        raise SystemExit(status)


def test_multiprocessing_fork_start_method(pool: sessionpool.Pool) -> None:
    parent = backend_pids(pool)
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_multiprocessing_child, args=(pool, parent)) for _ in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert [process.exitcode for process in processes] == [0, 0, 0]
    assert backend_pids(pool) == parent


def test_async_pool_in_a_forked_child(app_name: str) -> None:
    async def parent_side() -> tuple[sessionpool.AsyncPool, set[int]]:
        pool = await sessionpool.create_async_pool(
            f"postgresql+asyncpg://127.0.0.1/test?application_name={app_name}",
            min_size=2,
            max_size=2,
        )
        leases = [await pool.acquire() for _ in range(2)]
        pids = {await lease.fetchval("SELECT pg_backend_pid()") for lease in leases}
        for lease in leases:
            await lease.release()
        return pool, pids

    loop = asyncio.new_event_loop()
    try:
        pool, parent = loop.run_until_complete(parent_side())

        async def child_side() -> int:
            seen = set()
            for _ in range(20):
                async with pool.acquire() as conn:
                    seen.add(await conn.fetchval("SELECT pg_backend_pid()"))
            await pool.close()
            return 3 if seen & parent else 0

        pid = os.fork()
        if pid == 0:
            try:
                code = asyncio.run(child_side())  # the child's own loop
            except BaseException:
                code = 4
            os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0

        async def parent_again() -> set[int]:
            leases = [await pool.acquire() for _ in range(2)]
            pids = {await lease.fetchval("SELECT pg_backend_pid()") for lease in leases}
            for lease in leases:
                await lease.release()
            await pool.close()
            return pids

        assert loop.run_until_complete(parent_again()) == parent
    finally:
        loop.close()


def test_the_maintenance_worker_runs_again_in_a_forked_child(app_name: str) -> None:
    """The parent's maintenance thread does not exist in a child: the child's pool starts its
    own, which then retires the child's idle connections (max_idle) down to min_size."""
    pool = sessionpool.create_pool(
        f"{PG}?application_name={app_name}", min_size=1, max_size=3, max_idle=0.2
    )
    try:
        parent = backend_pids(pool)  # three connections, in use once each
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                leases = [pool.acquire() for _ in range(3)]  # the child opens its own three
                for lease in leases:
                    lease.release()
                deadline = time.monotonic() + 3.0
                while pool.opened > 1 and time.monotonic() < deadline:
                    time.sleep(0.02)
                if pool.opened != 1 or pool.stats().retired_idle != 2:
                    code = 5
                with pool.acquire() as conn:
                    if conn.execute("SELECT pg_backend_pid()").fetchone()[0] in parent:
                        code = 3
                pool.close()
            except BaseException:
                code = 4
            os._exit(code)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        assert code == 0, "child: 5 = idle connections not retired, 3 = parent backend, 4 = error"
        # The parent's worker kept working too: its idle connections went down to min_size.
        deadline = time.monotonic() + 3.0
        while pool.opened > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pool.opened == 1
    finally:
        pool.close(force=True)
