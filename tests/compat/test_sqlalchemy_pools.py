"""sessionpool.compat.sqlalchemy's pool classes used standalone (from a creator), as the seed
shows: SQLAlchemy's figures, errors, events, recycle, invalidation and dispose, and
sessionpool's FIFO queueing underneath. Fake DB-API driver and SQLite; no server needed.
"""

from __future__ import annotations

import gc
import importlib
import logging
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.pool
from sqlalchemy import event, exc

import sessionpool
from sessionpool.compat import sqlalchemy as face
from tests.fakes.fake_dbapi import FakeConnection, FakeDatabase, OperationalError
from tests.fakes.polling import eventually

# A wait that must end at once when the behaviour under test is right, but may be scheduled
# late on this 2-core machine: generous against the 0.2 s timeouts, yet a hang fails fast.
JOIN = 10.0
STATUS = re.compile(
    r"^Pool size: (-?\d+)  Connections in pool: (\d+) Current Overflow: (-?\d+) "
    r"Current Checked out connections: (\d+)$"
)


@pytest.fixture
def db() -> Iterator[FakeDatabase]:
    with FakeDatabase() as database:
        yield database


def figures(pool: Any) -> tuple[int, int, int, int]:
    """SQLAlchemy's four figures, as its own tests read them."""
    return pool.size(), pool.checkedin(), pool.overflow(), pool.checkedout()


def open_count(db: FakeDatabase) -> int:
    return db.open_connections


# -- what the classes are ------------------------------------------------------------------


@pytest.mark.parametrize("name", face.__all__[:5])
def test_each_pool_is_a_real_sqlalchemy_pool(name: str) -> None:
    cls = getattr(face, name)
    assert issubclass(cls, sqlalchemy.pool.Pool), cls.__mro__
    assert cls.__module__ == "sessionpool.compat.sqlalchemy"
    assert cls is not getattr(sqlalchemy.pool, name)  # ours, not stock's under that name


def test_sessionpool_is_underneath(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=2)
    conn = pool.connect()
    inner = pool.sessionpool
    assert isinstance(inner, sessionpool.Pool)
    assert (inner.busy, inner.idle, inner.opened) == (1, 0, 1)
    conn.close()
    assert (inner.busy, inner.idle, inner.opened) == (0, 1, 1)
    assert inner.stats().acquires == 1


def test_missing_sqlalchemy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SQLAlchemy the face does not import, and says which extra installs it."""
    for name in list(sys.modules):
        if name.startswith(("sessionpool.compat.sqlalchemy", "sessionpool.compat._sqlalchemy")):
            monkeypatch.delitem(sys.modules, name)  # restored after the test
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)  # what a missing package looks like
    with pytest.raises(sessionpool.DriverNotInstalled, match=r"sessionpool\[sqlalchemy\]"):
        importlib.import_module("sessionpool.compat.sqlalchemy")


# -- the seeds' examples ---------------------------------------------------------------------


def test_seed_singleton_thread_pool_example(tmp_path: Path) -> None:
    """The seed's SingletonThreadPool example: sqlite3 for the seed's `sqlite` module, a
    temporary file for 'myfile.db'."""
    import sqlite3 as sqlite

    from sessionpool.compat import sqlalchemy as pool  # was: import sqlalchemy.pool as pool

    database = str(tmp_path / "myfile.db")

    def getconn() -> sqlite.Connection:
        return sqlite.connect(database=database)

    # SQLite connections require the SingletonThreadPool
    p = pool.SingletonThreadPool(getconn)

    first = p.connect()
    first.cursor().execute("create table t (x)")
    first.commit()
    ours = first.dbapi_connection
    again = p.connect()  # the same thread: the same DB-API connection (threadlocal)
    assert again.dbapi_connection is ours
    again.close()
    first.close()
    mine = p.connect()
    assert mine.dbapi_connection is ours  # kept for this thread
    mine.close()

    seen: list[Any] = []

    def other_thread() -> None:
        conn = p.connect()
        # check_same_thread is on: it only works because the connection was made here.
        conn.cursor().execute("insert into t values (1)")
        conn.commit()
        seen.append(conn.dbapi_connection)
        conn.close()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(JOIN)
    assert not thread.is_alive()
    assert len(seen) == 1 and seen[0] is not ours
    assert re.fullmatch(r"SingletonThreadPool id:\d+ size: [12]", p.status()), p.status()
    p.dispose()


# -- figures and status() ----------------------------------------------------------------------


def test_status_matches_stock_queuepool_step_by_step(db: FakeDatabase) -> None:
    """The same checkouts and checkins on stock QueuePool and ours give the same status()
    string at every step (a sequence where their overflow policies agree: see
    test_overflow_connection_is_closed_on_return for where they differ)."""
    stock = sqlalchemy.pool.QueuePool(db.connect, pool_size=3, max_overflow=2, timeout=5)
    ours = face.QueuePool(db.connect, pool_size=3, max_overflow=2, timeout=5)
    steps: list[tuple[str, str]] = []

    def record(what: str) -> None:
        steps.append((what, stock.status()))
        assert ours.status() == stock.status(), f"after {what}: {ours.status()!r}"
        assert figures(ours) == figures(stock), f"after {what}"

    record("start")
    held = {pool: [pool.connect(), pool.connect()] for pool in (stock, ours)}
    record("2 out")
    for pool in (stock, ours):
        held[pool][0].close()
    record("1 back")
    for pool in (stock, ours):
        held[pool][1:] += [pool.connect(), pool.connect(), pool.connect(), pool.connect()]
    record("5 out (2 overflow)")
    for pool in (stock, ours):
        for conn in held[pool][1:]:
            conn.close()
    record("all back")
    for pool in (stock, ours):
        pool.dispose()
    record("disposed")
    assert STATUS.match(ours.status()), ours.status()
    assert steps[3][1] == (
        "Pool size: 3  Connections in pool: 0 Current Overflow: 2 "
        "Current Checked out connections: 5"
    )


def test_status_format_and_figures(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=2, max_overflow=1)
    assert pool.status() == (
        "Pool size: 2  Connections in pool: 0 Current Overflow: -2 "
        "Current Checked out connections: 0"
    )
    conns = [pool.connect() for _ in range(3)]
    assert figures(pool) == (2, 0, 1, 3)
    assert pool.timeout() == 30.0
    conns[0].close()  # kept: pool_size bounds the idle connections, as in stock
    assert figures(pool) == (2, 1, 1, 2)
    conns[1].close()
    assert figures(pool) == (2, 2, 1, 1)
    conns[2].close()  # two idle already: this one is closed
    assert pool.status() == (
        "Pool size: 2  Connections in pool: 2 Current Overflow: 0 "
        "Current Checked out connections: 0"
    )


def test_pool_size_zero_keeps_any_number(db: FakeDatabase) -> None:
    """As stock: pool_size=0 means no limit, and overflow() stays 0."""
    pool = face.QueuePool(db.connect, pool_size=0, max_overflow=3)
    conns = [pool.connect() for _ in range(8)]
    assert figures(pool) == (0, 0, 0, 8)
    for conn in conns:
        conn.close()
    assert pool.checkedin() == 8 and open_count(db) == 8


def test_overflow_connection_is_closed_on_return(db: FakeDatabase) -> None:
    """A connection that comes back when pool_size connections are idle already is closed at
    once, on the returning thread, with its close event, as in stock (sessionpool's
    max_size_bounds="idle")."""
    pool = face.QueuePool(db.connect, pool_size=1, max_overflow=1)
    closed: list[tuple[str, Any]] = []
    event.listen(pool, "close", lambda dbapi_conn, rec: closed.append(("close", dbapi_conn)))
    first, second = pool.connect(), pool.connect()
    first.close()  # the idle queue (size 1) was empty: kept
    assert closed == [] and figures(pool) == (1, 1, 1, 1)
    overflow_conn = second.dbapi_connection
    second.close()
    # Synchronously: the event fired and the driver connection is closed before close()
    # returned, as in stock SQLAlchemy.
    assert closed == [("close", overflow_conn)]
    assert overflow_conn.closed and open_count(db) == 1
    assert figures(pool) == (1, 1, 0, 0)


# -- waiting, timeouts and fairness ------------------------------------------------------------


def test_timeout_error_in_sqlalchemy_words(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=1, max_overflow=1, timeout=0.2)
    held = [pool.connect(), pool.connect()]
    started = time.monotonic()
    with pytest.raises(exc.TimeoutError) as caught:
        pool.connect()
    waited = time.monotonic() - started
    assert str(caught.value).startswith(
        "QueuePool limit of size 1 overflow 1 reached, connection timed out, timeout 0.20"
    ), str(caught.value)
    assert caught.value.code == "3o7r"
    # sessionpool's own error, with its figures, is the cause.
    assert isinstance(caught.value.__cause__, sessionpool.PoolTimeout)
    assert "2 busy" in str(caught.value.__cause__)
    # A deadline, not a hope: 0.2 s, plus scheduling noise on a busy 2-core machine.
    assert 0.2 <= waited < 0.2 + 1.0, waited
    for conn in held:
        conn.close()


def test_waiter_gets_the_connection_released_to_it(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=1, max_overflow=0, timeout=JOIN)
    held = pool.connect()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.connect()))
    waiter.start()
    eventually(lambda: pool.sessionpool.waiting == 1, "the second caller waits")
    dbapi_conn = held.dbapi_connection
    held.close()
    waiter.join(JOIN)
    assert not waiter.is_alive() and got[0].dbapi_connection is dbapi_conn
    got[0].close()


def test_fifo_fairness_under_contention() -> None:
    """16 threads on 4 connections, each holding 1 ms: every thread is served, and about
    equally (stock QueuePool lets a returning thread take its connection straight back: in
    this setting 12 of 16 threads get one checkout in the whole run)."""
    pool = face.QueuePool(
        lambda: sqlite3.connect(":memory:", check_same_thread=False),
        pool_size=4,
        max_overflow=0,
        timeout=JOIN,
    )
    counts = [0] * 16
    errors: list[BaseException] = []
    stop = time.monotonic() + 1.5

    def work(index: int) -> None:
        try:
            while time.monotonic() < stop:
                conn = pool.connect()
                time.sleep(0.001)
                conn.close()
                counts[index] += 1
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN)
    assert not any(thread.is_alive() for thread in threads)
    assert not errors, errors
    mean = sum(counts) / len(counts)
    # FIFO hand-off: each thread waits behind at most the 15 others, so shares are nearly
    # equal. Half the mean leaves room for a thread descheduled for a while on 2 cores.
    assert min(counts) >= mean / 2, f"per-thread checkouts {sorted(counts)} (mean {mean:.0f})"
    assert pool.sessionpool.stats().handoffs > 0  # they really queued


@pytest.mark.parametrize(("use_lifo", "expected"), [(False, [1, 2, 3]), (True, [3, 2, 1])])
def test_use_lifo_orders_idle_connections(
    db: FakeDatabase, use_lifo: bool, expected: list[int]
) -> None:
    pool = face.QueuePool(db.connect, pool_size=3, use_lifo=use_lifo)
    conns = [pool.connect() for _ in range(3)]
    for conn in conns:  # returned 1, 2, 3
        conn.close()
    again = [pool.connect() for _ in range(3)]
    assert [conn.dbapi_connection.id for conn in again] == expected
    for conn in again:
        conn.close()


# -- connecting, invalidation, recycle ----------------------------------------------------------


def test_connect_error_reaches_the_caller_at_once(db: FakeDatabase) -> None:
    """As stock: a failing connect raises in the caller at once (not after the timeout), and
    the failed connection is not counted."""
    pool = face.QueuePool(db.connect, pool_size=2, max_overflow=0, timeout=30)
    first = pool.connect()
    db.fail_next_connects(1)
    started = time.monotonic()
    with pytest.raises(OperationalError):
        pool.connect()
    assert time.monotonic() - started < 1.0  # at once, against a 30 s timeout
    assert figures(pool) == (2, 0, -1, 1)
    second = pool.connect()  # the server is back: works, within the limit
    assert figures(pool) == (2, 0, 0, 2)
    first.close()
    second.close()


def test_invalidated_connection_is_reopened_in_the_same_slot(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=1, max_overflow=0)
    conn = pool.connect()
    record = conn._connection_record
    old = conn.dbapi_connection
    conn.invalidate()
    assert old.closed and record.dbapi_connection is None
    assert figures(pool) == (1, 1, 0, 0)  # the record came back, without a connection
    conn = pool.connect()
    assert conn._connection_record is record and conn.dbapi_connection is not old
    assert pool.sessionpool.opened == 1 and db.connects == 2
    conn.close()


def test_failed_reconnect_keeps_the_slot(db: FakeDatabase) -> None:
    """As stock: a record that cannot reconnect goes back to the pool (nothing leaks, the
    next checkout tries again)."""
    pool = face.QueuePool(db.connect, pool_size=1, max_overflow=0, timeout=1)
    conn = pool.connect()
    conn.invalidate()
    db.fail_next_connects(1)
    with pytest.raises(OperationalError):
        pool.connect()
    assert figures(pool) == (1, 1, 0, 0)
    conn = pool.connect()  # not a timeout: the slot was given back
    assert not conn.dbapi_connection.closed
    conn.close()


def test_recycle_replaces_an_old_connection(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=1, max_overflow=0, recycle=1)
    conn = pool.connect()
    old = conn.dbapi_connection
    conn.close()
    conn = pool.connect()
    assert conn.dbapi_connection is old  # young enough
    conn.close()
    # SQLAlchemy compares wall-clock seconds since connect (time.time()): let 1 s pass.
    time.sleep(1.1)
    conn = pool.connect()
    assert conn.dbapi_connection is not old and old.closed
    assert pool.sessionpool.opened == 1
    conn.close()


def test_pool_events_fire(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=1, max_overflow=0)
    seen: list[str] = []
    for name in ("connect", "first_connect", "checkout", "checkin", "close", "detach"):
        event.listen(pool, name, lambda *args, name=name: seen.append(name))
    event.listen(pool, "reset", lambda dbapi_conn, rec, state: seen.append("reset"))
    event.listen(pool, "invalidate", lambda dbapi_conn, rec, err: seen.append("invalidate"))
    conn = pool.connect()
    conn.close()
    assert seen == ["first_connect", "connect", "checkout", "reset", "checkin"]
    seen.clear()
    conn = pool.connect()
    conn.invalidate()
    assert seen == ["checkout", "invalidate", "close", "checkin"]
    seen.clear()
    conn = pool.connect()
    conn.close()
    assert seen == ["connect", "checkout", "reset", "checkin"]


def test_reset_on_return_commit_and_none(db: FakeDatabase) -> None:
    commit = face.QueuePool(db.connect, pool_size=1, reset_on_return="commit")
    conn = commit.connect()
    dbapi_conn = conn.dbapi_connection
    conn.close()
    assert (dbapi_conn.commits, dbapi_conn.rollbacks) == (1, 0)
    plain = face.QueuePool(db.connect, pool_size=1, reset_on_return=None)
    conn = plain.connect()
    dbapi_conn = conn.dbapi_connection
    conn.close()
    assert (dbapi_conn.commits, dbapi_conn.rollbacks) == (0, 0)


def test_garbage_collected_connection_comes_back(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=1, max_overflow=0, timeout=0.5)
    conn = pool.connect()
    dbapi_conn = conn.dbapi_connection
    del conn  # never closed: SQLAlchemy's finalizer returns it, at once
    assert figures(pool) == (1, 1, 0, 0)
    assert dbapi_conn.rollbacks == 1  # reset on the way back
    pool.connect().close()


def test_return_from_a_collection_under_the_pool_lock_does_not_deadlock(
    db: FakeDatabase,
) -> None:
    """A fairy in a reference cycle is returned by the cyclic collector, on whatever thread
    triggered it, possibly one holding the pool's (non-reentrant) lock. The face defers such
    returns to another thread instead of deadlocking."""
    pool = face.QueuePool(db.connect, pool_size=1, max_overflow=0, timeout=0.5)
    outcome: list[str] = []

    def collect_while_holding_the_lock() -> None:
        conn = pool.connect()
        cycle: list[Any] = [conn]
        cycle.append(cycle)  # only the cyclic collector can free it now
        del conn, cycle
        lock = pool.sessionpool._lock  # what an allocation under the lock would hold
        with lock:
            gc.collect()
        outcome.append("collected")

    worker = threading.Thread(target=collect_while_holding_the_lock, daemon=True)
    worker.start()
    worker.join(JOIN)
    assert outcome == ["collected"], "the collection deadlocked on the pool's lock"
    eventually(lambda: pool.checkedin() == 1, "the collected connection is back")
    pool.connect().close()


def test_use_threadlocal(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=2, max_overflow=0, use_threadlocal=True)
    outer = pool.connect()
    inner = pool.connect()  # same thread, still checked out: the same connection
    assert inner is outer and pool.checkedout() == 1
    others: list[Any] = []
    thread = threading.Thread(target=lambda: others.append(pool.connect().dbapi_connection))
    thread.start()
    thread.join(JOIN)
    assert others and others[0] is not outer.dbapi_connection
    inner.close()
    assert pool.checkedout() == 1  # the outer connect() still holds it
    outer.close()
    assert pool.checkedout() == 0
    fresh = pool.connect()
    assert fresh is not outer
    fresh.close()


def test_use_threadlocal_is_accepted_by_every_class(db: FakeDatabase) -> None:
    for pool in (
        face.NullPool(db.connect, use_threadlocal=True),
        face.StaticPool(db.connect, use_threadlocal=True),
        face.AssertionPool(db.connect, use_threadlocal=True),
        face.SingletonThreadPool(db.connect, use_threadlocal=True),
    ):
        outer = pool.connect()
        assert pool.connect() is outer, type(pool).__name__  # AssertionPool raises otherwise
        outer.close()
        outer.close()
        assert pool.recreate()._use_threadlocal is pool._use_threadlocal
        pool.dispose()


# -- dispose() and recreate() ---------------------------------------------------------------------


def test_dispose_closes_idle_now_and_keeps_checked_out_ones(db: FakeDatabase) -> None:
    """As stock: dispose() closes the idle connections; one checked out at the time goes
    back to the pool when it comes back, and is handed out next."""
    pool = face.QueuePool(db.connect, pool_size=2, max_overflow=0)
    idle, held = pool.connect(), pool.connect()
    idle_conn, held_conn = idle.dbapi_connection, held.dbapi_connection
    idle.close()
    pool.dispose()
    assert idle_conn.closed and not held_conn.closed  # synchronously, in dispose()
    assert held.cursor() is not None  # a checked-out connection stays usable
    held.close()
    assert not held_conn.closed and open_count(db) == 1  # back in the pool
    conn = pool.connect()  # the pool is still usable, and hands that one out
    assert conn.dbapi_connection is held_conn
    conn.close()


def test_recreate_keeps_every_setting(db: FakeDatabase) -> None:
    dialect_stub = sqlalchemy.pool.base._ConnDialect()
    pool = face.QueuePool(
        db.connect,
        pool_size=3,
        max_overflow=4,
        timeout=7,
        use_lifo=True,
        use_threadlocal=True,
        max_lifetime=100,
        recycle=35,
        pre_ping=True,
        reset_on_return="commit",
        logging_name="app",
        echo="debug",
        dialect=dialect_stub,
    )
    seen: list[str] = []
    event.listen(pool, "checkout", lambda *args: seen.append("checkout"))
    again = pool.recreate()
    assert type(again) is face.QueuePool and again is not pool
    assert (again.size(), again._max_overflow, again.timeout()) == (3, 4, 7)
    assert again._pool.use_lifo and again._use_threadlocal and again._extras == pool._extras
    assert (again._recycle, again._pre_ping, again._reset_on_return) == (
        35,
        True,
        pool._reset_on_return,
    )
    assert again.logging_name == "app" and again.echo == "debug"
    assert again._dialect is dialect_stub
    assert again.sessionpool is not pool.sessionpool
    assert again.sessionpool.config.max_lifetime == 100
    again._pre_ping = False  # the stub dialect cannot ping; the events are what is checked
    again.connect().close()
    assert seen == ["checkout"]  # listeners carried over


# -- sessionpool's extras ----------------------------------------------------------------------


def test_extras_min_size_and_max_idle(db: FakeDatabase) -> None:
    pool = face.QueuePool(db.connect, pool_size=3, max_overflow=0, min_size=1, max_idle=0.3)
    # min_size is opened ahead of need, in the background.
    eventually(lambda: open_count(db) == 1, "min_size connection opened ahead of need")
    conns = [pool.connect() for _ in range(3)]
    for conn in conns:
        conn.close()
    assert open_count(db) == 3
    # max_idle retires the idle ones back down to min_size (maintenance tick: 0.3/4 s).
    eventually(lambda: open_count(db) == 1, "idle connections retired down to min_size")
    assert pool.checkedin() == 1


def test_extras_ping_interval_without_a_dialect() -> None:
    """sessionpool's check before hand-out works with no SQLAlchemy dialect (stock pre_ping
    needs one): a connection found dead is replaced, the caller sees no error."""
    pool = face.QueuePool(
        lambda: sqlite3.connect(":memory:", check_same_thread=False),
        pool_size=1,
        max_overflow=0,
        ping_interval=0,
    )
    conn = pool.connect()
    dead = conn.dbapi_connection
    conn.close()
    dead.close()  # sessionpool's sqlite3 check sees a closed connection as dead
    conn = pool.connect()
    assert conn.dbapi_connection is not dead
    assert conn.cursor().execute("select 1").fetchone() == (1,)
    conn.close()
    assert pool.sessionpool.opened == 1


def test_extras_keepalive_interval_replaces_a_dead_idle_connection() -> None:
    """sessionpool's keepalive checks idle connections in the background (through the
    connection's own sessionpool driver): a dead one is closed before a borrower meets it."""
    pool = face.QueuePool(
        lambda: sqlite3.connect(":memory:", check_same_thread=False),
        pool_size=2,
        keepalive_interval=0.1,
    )
    conn = pool.connect()
    dead = conn.dbapi_connection
    conn.close()
    dead.close()  # dies while idle in the pool
    eventually(lambda: pool.checkedin() == 0, "the dead idle connection retired")
    assert pool.sessionpool.stats().keepalive_failures == 1
    conn = pool.connect()
    assert conn.cursor().execute("select 1").fetchone() == (1,)
    conn.close()


def test_extras_leak_threshold_reports_where(
    db: FakeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    pool = face.QueuePool(db.connect, pool_size=1, leak_threshold=0.1)
    caplog.set_level(logging.WARNING, logger="sessionpool.pool")
    conn = pool.connect()  # the line the report must name
    eventually(
        lambda: any("has been borrowed for" in r.getMessage() for r in caplog.records),
        "a leak report",
    )
    report = next(r.getMessage() for r in caplog.records if "borrowed for" in r.getMessage())
    assert "test_extras_leak_threshold_reports_where" in report, report
    conn.close()


def test_bad_settings_are_named(db: FakeDatabase) -> None:
    with pytest.raises(sessionpool.ConfigError, match="pool_size"):
        face.QueuePool(db.connect, pool_size="5")  # type: ignore[arg-type]
    with pytest.raises(sessionpool.ConfigError, match="timeout"):
        face.QueuePool(db.connect, timeout=-1)
    with pytest.raises(sessionpool.ConfigError, match="min_size"):
        face.QueuePool(db.connect, pool_size=2, min_size=3)


# -- the other pool classes ----------------------------------------------------------------------


def test_null_pool_opens_and_closes_every_time(db: FakeDatabase) -> None:
    pool = face.NullPool(db.connect)
    closed: list[Any] = []
    event.listen(pool, "close", lambda dbapi_conn, rec: closed.append(dbapi_conn))
    first = pool.connect()
    second = pool.connect()
    assert first.dbapi_connection is not second.dbapi_connection
    first_conn = first.dbapi_connection
    first.close()
    assert closed == [first_conn] and first_conn.closed  # at checkin, on this thread
    second.close()
    assert open_count(db) == 0 and pool.sessionpool.opened == 0
    assert pool.status() == "NullPool"


def test_assertion_pool_allows_one_checkout(db: FakeDatabase) -> None:
    pool = face.AssertionPool(db.connect)
    conn = pool.connect()
    with pytest.raises(AssertionError, match=r"connection is already checked out at:\n"):
        pool.connect()
    dbapi_conn = conn.dbapi_connection
    conn.close()
    conn = pool.connect()
    assert conn.dbapi_connection is dbapi_conn  # the one connection is kept
    conn.close()
    assert pool.status() == "AssertionPool"


def test_static_pool_shares_one_connection(db: FakeDatabase) -> None:
    pool = face.StaticPool(db.connect)
    first, second = pool.connect(), pool.connect()
    assert first.dbapi_connection is second.dbapi_connection
    first.close()
    second.close()
    conn = pool.connect()
    shared = conn.dbapi_connection
    conn.invalidate()  # stock replaces an invalidated connection
    conn = pool.connect()
    assert conn.dbapi_connection is not shared and shared.closed
    conn.close()
    pool.dispose()
    assert open_count(db) == 0
    assert pool.status() == "StaticPool"


def test_singleton_thread_pool_closes_a_thread_connection_when_the_thread_ends(
    db: FakeDatabase,
) -> None:
    pool = face.SingletonThreadPool(db.connect, pool_size=2)
    theirs: list[FakeConnection] = []

    def borrow() -> None:
        conn = pool.connect()
        theirs.append(conn.dbapi_connection)
        conn.close()

    threads = [threading.Thread(target=borrow) for _ in range(3)]
    for thread in threads:
        thread.start()
        thread.join(JOIN)
    assert len({id(conn) for conn in theirs}) == 3  # one per thread, none moved
    eventually(lambda: all(conn.closed for conn in theirs), "connections of ended threads closed")
    mine = pool.connect()
    my_connection = mine.dbapi_connection
    mine.close()
    pool.dispose()
    assert my_connection.closed and open_count(db) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda connect: face.QueuePool(connect, pool_size=1),
        lambda connect: face.NullPool(connect),
        lambda connect: face.StaticPool(connect),
        lambda connect: face.SingletonThreadPool(connect),
        lambda connect: face.AssertionPool(connect),
    ],
    ids=["QueuePool", "NullPool", "StaticPool", "SingletonThreadPool", "AssertionPool"],
)
def test_every_pool_recreates_as_its_class(
    db: FakeDatabase, make: Callable[[Callable[..., Any]], Any]
) -> None:
    pool = make(db.connect)
    pool.connect().close()
    again = pool.recreate()
    assert type(again) is type(pool)
    again.connect().close()
    pool.dispose()
    again.dispose()
    assert open_count(db) == 0, db.connections
