"""One connection per thread, and one connection shared by threads for reads, against the
real PostgreSQL (psycopg and psycopg2 allow sharing) and MariaDB (PyMySQL does not)."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import pytest

import sessionpool

PG = {
    "psycopg": "postgresql+psycopg://127.0.0.1:5432/test",
    "psycopg2": "postgresql+psycopg2://127.0.0.1:5432/test",
}


@pytest.fixture(params=sorted(PG))
def pool(request: pytest.FixtureRequest) -> Iterator[sessionpool.Pool]:
    pool = sessionpool.create_pool(PG[request.param], min_size=0, max_size=8, max_idle=5)
    yield pool
    pool.close(force=True)


def backend(lease: sessionpool.Lease) -> int:
    cursor = lease.cursor()
    cursor.execute("SELECT pg_backend_pid()")
    (pid,) = cursor.fetchone()
    cursor.close()
    return int(pid)


def test_each_thread_keeps_its_own_connection(pool: sessionpool.Pool) -> None:
    per_thread = sessionpool.ThreadConnections(pool)
    seen: dict[int, set[int]] = {}

    def work(index: int) -> None:
        seen[index] = {backend(per_thread.connection()) for _ in range(3)}
        per_thread.release()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert all(len(pids) == 1 for pids in seen.values()), seen  # one connection per thread
    assert pool.busy == 0


def test_a_thread_that_ends_without_releasing_gives_its_connection_back(
    pool: sessionpool.Pool,
) -> None:
    per_thread = sessionpool.ThreadConnections(pool)
    thread = threading.Thread(target=lambda: backend(per_thread.connection()))
    thread.start()
    thread.join(10)
    gc.collect()
    deadline = time.monotonic() + 3.0
    while pool.busy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert pool.busy == 0 and pool.stats().reclaimed == 1


def test_threads_share_one_connection_for_reads(pool: sessionpool.Pool) -> None:
    shared = sessionpool.SharedReader(pool)
    failures: list[BaseException] = []
    pids: set[int] = set()

    def reader(index: int) -> None:
        try:
            for round_ in range(50):
                rows = shared.fetch("SELECT %s::int + %s::int, pg_backend_pid()", (index, round_))
                assert rows[0][0] == index + round_
                pids.add(rows[0][1])
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert failures == [] and len(pids) == 1
    assert pool.busy == 1  # one connection for all eight threads
    shared.close()
    assert pool.busy == 0
    with pool.acquire() as conn:
        assert not conn.driver_connection.autocommit, "autocommit leaked to the next borrower"


def test_drivers_that_cannot_share_are_refused() -> None:
    pool = sessionpool.create_pool("mysql+pymysql://root@127.0.0.1:3306/test", lazy=True)
    try:
        with pytest.raises(sessionpool.UsageError, match="threadsafety 1"):
            sessionpool.SharedReader(pool)
    finally:
        pool.close()
