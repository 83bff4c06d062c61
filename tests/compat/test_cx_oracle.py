"""The cx_Oracle face (sessionpool.compat.cx_oracle): cx_Oracle 8's SessionPool defaults, get
modes, run-time changes, tags, callbacks, purity, users, partitions and error codes, over
sqlite3 and the real PostgreSQL and MariaDB."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pymysql
import pytest

import sessionpool
from sessionpool.compat import cx_oracle as cx_Oracle
from tests.fakes.polling import PATIENCE, eventually

PG_URL = "postgresql://127.0.0.1:5432/test"
MARIADB_URL = "mariadb://root@127.0.0.1:3306/test"
CANARY = "s3cr3t-canary"

Factory = Callable[..., cx_Oracle.SessionPool]


@pytest.fixture
def make_pool() -> Iterator[Factory]:
    """SessionPools closed (force) at the end of the test, whatever it left borrowed."""
    pools: list[cx_Oracle.SessionPool] = []

    def make(*args: Any, **kwargs: Any) -> cx_Oracle.SessionPool:
        pool = cx_Oracle.SessionPool(*args, **kwargs)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.sessionpool.close(force=True)


def error_of(caught: pytest.ExceptionInfo[BaseException]) -> Any:
    """cx_Oracle's idiom: ``error_obj, = e.args``."""
    (error_obj,) = caught.value.args
    return error_obj


class Worker(threading.Thread):
    """Runs fn once on a daemon thread, keeping its result or what it raised."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self._fn = fn
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self._fn()
        except BaseException as exc:
            self.error = exc

    def result(self, timeout: float = PATIENCE) -> Any:
        self.join(timeout)
        assert not self.is_alive(), f"worker still blocked after {timeout} s"
        if self.error is not None:
            raise self.error
        return self.value


def started(fn: Callable[[], Any]) -> Worker:
    worker = Worker(fn)
    worker.start()
    return worker


def timed(fn: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """Seconds fn took, and what it raised."""
    began = time.monotonic()
    try:
        fn()
    except BaseException as exc:
        return time.monotonic() - began, exc
    return time.monotonic() - began, None


# -- constants and defaults -------------------------------------------------------------------


def test_constants_have_cx_oracles_values() -> None:
    # ODPI-C's dpiPoolGetMode and dpiPurity, which cx_Oracle exports unchanged.
    assert cx_Oracle.SPOOL_ATTRVAL_WAIT == 0
    assert cx_Oracle.SPOOL_ATTRVAL_NOWAIT == 1
    assert cx_Oracle.SPOOL_ATTRVAL_FORCEGET == 2
    assert cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT == 3
    assert cx_Oracle.ATTR_PURITY_DEFAULT == 0
    assert cx_Oracle.ATTR_PURITY_NEW == 1
    assert cx_Oracle.ATTR_PURITY_SELF == 2


def test_exception_hierarchy_is_pep_249s() -> None:
    for name in (
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        assert issubclass(getattr(cx_Oracle, name), cx_Oracle.DatabaseError), name
    assert issubclass(cx_Oracle.DatabaseError, cx_Oracle.Error)
    assert issubclass(cx_Oracle.InterfaceError, cx_Oracle.Error)
    assert issubclass(cx_Oracle.Error, Exception)
    assert issubclass(cx_Oracle.Warning, Exception)
    assert not issubclass(cx_Oracle.Error, sessionpool.Error)


def test_defaults_are_cx_oracle_8s(make_pool: Factory) -> None:
    pool = make_pool("scott", "tiger", "sqlite://")
    # cx_Oracle's constructor: min=1, max=2, increment=1, getmode NOWAIT; the attributes as
    # its own test suite reads them (test_2400_session_pool.py, 2415/2416: wait_timeout 5000).
    assert (pool.min, pool.max, pool.increment) == (1, 2, 1)
    assert pool.getmode == cx_Oracle.SPOOL_ATTRVAL_NOWAIT
    assert pool.timeout == 0
    assert pool.wait_timeout == 5000
    assert pool.max_lifetime_session == 0
    assert pool.max_sessions_per_shard == 0
    assert pool.stmtcachesize == 20
    assert pool.ping_interval == 60
    assert pool.soda_metadata_cache is False
    assert pool.homogeneous is True
    assert pool.opened == 1, "min sessions are open when the constructor returns"
    assert pool.busy == 0
    assert pool.dsn == pool.tnsentry == "sqlite://"
    assert pool.username == "scott"
    assert pool.name == pool.sessionpool.name
    config = pool.sessionpool.config
    assert (config.min_size, config.max_size, config.increment) == (1, 2, 1)
    assert (config.max_idle, config.max_lifetime, config.max_per_partition) == (None, None, None)
    assert config.ping_interval == 60.0


def test_figures_are_the_pools(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=2, max=8, increment=3)
    assert (pool.min, pool.max, pool.increment, pool.busy, pool.opened) == (2, 8, 3, 0, 2)
    first, second = pool.acquire(), pool.acquire()
    assert (pool.busy, pool.opened) == (2, 2)
    third = pool.acquire()
    assert pool.busy == 3
    # A third session past min grows the pool by increment (3), all opened together.
    eventually(lambda: pool.opened == 5, f"grown by increment: opened {pool.opened}")
    pool.release(third)
    assert pool.busy == 2
    pool.release(first)
    second.close()
    assert pool.busy == 0
    assert pool.opened == pool.sessionpool.opened == 5


def test_camel_case_and_snake_case_spellings_both_work(make_pool: Factory) -> None:
    calls: list[Any] = []
    camel = make_pool(
        "u",
        "p",
        "sqlite://",
        getmode=cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT,
        waitTimeout=150,
        maxLifetimeSession=30,
        sessionCallback=lambda conn, tag: calls.append(tag),
        maxSessionsPerShard=3,
    )
    snake = make_pool(
        "u",
        "p",
        "sqlite://",
        getmode=cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT,
        wait_timeout=150,
        max_lifetime_session=30,
        session_callback=lambda conn, tag: calls.append(tag),
        max_sessions_per_shard=3,
    )
    for pool in (camel, snake):
        assert pool.wait_timeout == 150
        assert pool.max_lifetime_session == 30
        assert pool.max_sessions_per_shard == 3
        assert pool.sessionpool.config.wait_timeout == 0.15
        assert pool.sessionpool.config.max_lifetime == 30.0
        assert pool.sessionpool.config.max_per_partition == 3
        pool.acquire().close()
    assert calls == [None, None], "each pool's callback ran for its brand-new session"


@pytest.mark.parametrize(
    ("camel", "snake"),
    [
        ("waitTimeout", "wait_timeout"),
        ("maxLifetimeSession", "max_lifetime_session"),
        ("sessionCallback", "session_callback"),
        ("maxSessionsPerShard", "max_sessions_per_shard"),
    ],
)
def test_both_spellings_at_once_is_a_programming_error(camel: str, snake: str) -> None:
    value: Any = print if "Callback" in camel else 5
    with pytest.raises(cx_Oracle.ProgrammingError, match=f"{camel} and {snake}"):
        cx_Oracle.SessionPool("u", "p", "sqlite://", **{camel: value, snake: value})


@pytest.mark.parametrize(("low", "high"), [(3, 2), (0, 0), (-1, 2)])
def test_impossible_sizes_raise_ora_24413(low: int, high: int) -> None:
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        cx_Oracle.SessionPool("u", "p", "sqlite://", min=low, max=high)
    assert error_of(caught).code == 24413
    assert error_of(caught).full_code == "ORA-24413"


def test_bad_arguments_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match="min must be an integer"):
        cx_Oracle.SessionPool("u", "p", "sqlite://", min="2")  # type: ignore[arg-type]
    with pytest.raises(cx_Oracle.ProgrammingError, match="getmode"):
        cx_Oracle.SessionPool("u", "p", "sqlite://", getmode=7)
    with pytest.raises(cx_Oracle.ProgrammingError, match="connectiontype"):
        cx_Oracle.SessionPool("u", "p", "sqlite://", connectiontype=dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="set by cx_Oracle's own arguments"):
        cx_Oracle.SessionPool("u", "p", "sqlite://", max_size=5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        cx_Oracle.SessionPool("u", "p", "sqlite://", bogus=1)
    with pytest.raises(cx_Oracle.ProgrammingError, match="dsn"):
        cx_Oracle.SessionPool("u", "p", None)


def test_increment_zero_grows_by_one_and_reads_zero(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=3, increment=0)
    assert pool.increment == 0
    assert pool.sessionpool.config.increment == 1
    held = [pool.acquire(), pool.acquire()]
    assert pool.opened == 2
    for conn in held:
        conn.close()


def test_sessionpool_settings_pass_through(make_pool: Factory) -> None:
    seen: list[Any] = []
    pool = make_pool(
        "u",
        "p",
        "sqlite://",
        connect_timeout=3.0,
        reset_on_return="full",
        name="cx-face",
        on_connect=seen.append,
    )
    config = pool.sessionpool.config
    assert (config.connect_timeout, config.reset_on_return, config.name) == (3.0, "full", "cx-face")
    assert pool.name == "cx-face"
    assert len(seen) == 1, "the user's on_connect still runs for each new connection"


def test_a_url_password_never_shows(make_pool: Factory) -> None:
    pool = make_pool(None, None, f"postgresql://root:{CANARY}@127.0.0.1:5432/test")
    assert CANARY not in pool.dsn
    assert CANARY not in repr(pool)
    assert pool.username == "root"


# -- get modes ----------------------------------------------------------------------------------


def test_nowait_raises_ora_24418_at_once(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=2)
    held = [pool.acquire(), pool.acquire()]
    elapsed, raised = timed(pool.acquire)
    assert isinstance(raised, cx_Oracle.DatabaseError), raised
    error_obj = raised.args[0]
    assert (error_obj.code, error_obj.full_code) == (24418, "ORA-24418")
    assert error_obj.message.startswith("ORA-24418: Cannot open further sessions.")
    assert "2 busy of max_size 2" in error_obj.message, "the pool's figures follow"
    assert isinstance(raised.__cause__, sessionpool.PoolExhausted)
    # "At once": no wait at all; 0.5 s is slack for a noisy 2-core machine only.
    assert elapsed < 0.5, f"NOWAIT took {elapsed:.3f} s"
    for conn in held:
        conn.close()


def test_nowait_below_max_opens_a_session(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=0, max=2)
    assert pool.opened == 0
    with pool.acquire(), pool.acquire():
        assert pool.opened == 2


def test_timedwait_raises_after_wait_timeout_ms(make_pool: Factory) -> None:
    pool = make_pool(
        "u",
        "p",
        "sqlite://",
        min=1,
        max=1,
        getmode=cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT,
        wait_timeout=300,
    )
    held = pool.acquire()
    elapsed, raised = timed(pool.acquire)
    assert isinstance(raised, cx_Oracle.DatabaseError), raised
    error_obj = raised.args[0]
    # Every session busy at max: ORA-24496, "timed out waiting for a free connection".
    assert (error_obj.code, error_obj.full_code) == (24496, "ORA-24496")
    assert "within 0.3 s" in error_obj.message
    # Milliseconds, as cx_Oracle: 300 ms, not 300 s. The upper slack covers a thread not
    # scheduled for a while on this noisy machine; a wrong unit would be off by 1000x.
    assert 0.29 <= elapsed <= 1.8, f"TIMEDWAIT 300 ms took {elapsed:.3f} s"
    held.close()


def test_wait_blocks_until_a_session_comes_back(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=1, getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT)
    assert pool.sessionpool.config.wait_timeout is None, "WAIT waits as long as it takes"
    held = pool.acquire()
    waiter = started(pool.acquire)
    eventually(lambda: pool.sessionpool.waiting == 1, "the second acquire waits")
    assert waiter.is_alive()
    held.close()
    conn = waiter.result()
    assert isinstance(conn, cx_Oracle.Connection)
    assert pool.busy == 1
    conn.close()


def test_forceget_opens_beyond_max(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=1, getmode=cx_Oracle.SPOOL_ATTRVAL_FORCEGET)
    held = pool.acquire()
    extra = pool.acquire()
    assert (pool.busy, pool.opened) == (2, 2), "opened beyond max"
    extra.close()
    assert (pool.busy, pool.opened) == (1, 1), "the session beyond max is closed on release"
    held.close()


def test_getmode_change_takes_effect_at_once(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=1)
    held = pool.acquire()
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        pool.acquire()
    assert error_of(caught).code == 24418

    pool.getmode = cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT
    pool.wait_timeout = 200
    assert (pool.getmode, pool.wait_timeout) == (cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT, 200)
    elapsed, raised = timed(pool.acquire)
    assert isinstance(raised, cx_Oracle.DatabaseError) and raised.args[0].code == 24496
    assert 0.19 <= elapsed <= 1.7, f"TIMEDWAIT 200 ms took {elapsed:.3f} s"

    pool.wait_timeout = 0  # cx_Oracle reads (and OCI waits) its default then
    assert pool.wait_timeout == 5000
    assert pool.sessionpool.config.wait_timeout == 5.0

    pool.getmode = cx_Oracle.SPOOL_ATTRVAL_FORCEGET
    extra = pool.acquire()
    assert pool.opened == 2
    extra.close()

    pool.getmode = cx_Oracle.SPOOL_ATTRVAL_WAIT
    waiter = started(pool.acquire)
    eventually(lambda: pool.sessionpool.waiting == 1, "WAIT now waits")
    held.close()
    waiter.result().close()


def test_run_time_changes_reach_the_pool_at_once(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=3)
    conns = [pool.acquire() for _ in range(3)]
    for conn in conns:
        conn.close()
    assert pool.opened == 3
    first = pool.sessionpool.stats().retired_expired

    pool.timeout = 1  # idle seconds: the two sessions beyond min go
    assert pool.timeout == 1 and pool.sessionpool.config.max_idle == 1.0
    # The maintenance worker checks every quarter of max_idle; 4 s covers the 1 s limit, a
    # tick and a slow scheduler.
    eventually(lambda: pool.opened == 1, f"idle sessions closed: opened {pool.opened}", 4.0)

    pool.max_lifetime_session = 1
    assert pool.sessionpool.config.max_lifetime == 1.0
    eventually(
        lambda: pool.sessionpool.stats().retired_expired > first,
        "the session past its lifetime retired",
        4.0,
    )

    pool.ping_interval = 0
    assert pool.ping_interval == 0 and pool.sessionpool.config.ping_interval == 0.0
    pool.ping_interval = -1
    assert pool.sessionpool.config.ping_interval == -1.0

    pool.max_sessions_per_shard = 2
    assert pool.sessionpool.config.max_per_partition == 2
    pool.max_sessions_per_shard = 0
    assert pool.sessionpool.config.max_per_partition is None

    pool.soda_metadata_cache = True
    assert pool.soda_metadata_cache is True
    with pytest.raises(TypeError):
        pool.timeout = "soon"  # type: ignore[assignment]
    with pytest.raises(AttributeError):
        pool.max = 10  # type: ignore[misc]  # read-only in cx_Oracle too: use reconfigure()


def test_reconfigure_as_cx_oracle_8_2(make_pool: Factory) -> None:
    # cx_Oracle's test 2415, in our units.
    pool = make_pool(
        "u", "p", "sqlite://", min=1, max=2, increment=1, getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT
    )
    # sqlite3 fixes its statement cache at connect: the new size is said not to apply.
    with pytest.warns(UserWarning, match="statement cache"):
        pool.reconfigure(
            min=2,
            max=5,
            increment=2,
            timeout=30,
            getmode=cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT,
            wait_timeout=3000,
            max_lifetime_session=20,
            max_sessions_per_shard=2,
            stmtcachesize=30,
            ping_interval=30,
        )
    assert (pool.min, pool.max, pool.increment) == (2, 5, 2)
    assert pool.getmode == cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT
    assert (pool.timeout, pool.wait_timeout, pool.max_lifetime_session) == (30, 3000, 20)
    assert (pool.max_sessions_per_shard, pool.stmtcachesize, pool.ping_interval) == (2, 30, 30)
    config = pool.sessionpool.config
    assert (config.min_size, config.max_size, config.increment) == (2, 5, 2)
    assert (config.when_exhausted, config.wait_timeout) == ("wait", 3.0)
    eventually(lambda: pool.opened == 2, "the larger min is opened")
    # Unspecified settings are kept (test 2416), and an invalid one changes nothing.
    pool.reconfigure(min=1)
    assert (pool.min, pool.max, pool.timeout, pool.wait_timeout) == (1, 5, 30, 3000)
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        pool.reconfigure(min=9)
    assert error_of(caught).code == 24413
    assert (pool.min, pool.max, pool.sessionpool.config.min_size) == (1, 5, 1)


# -- connections: with, close, release, drop ---------------------------------------------------


def test_with_block_and_close_release_the_session(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=2)
    with pool.acquire() as conn:
        assert pool.busy == 1
        cursor = conn.cursor()
        cursor.execute("select 1 + 1")
        assert cursor.fetchone() == (2,)
    assert pool.busy == 0
    conn = pool.acquire()
    conn.close()
    assert pool.busy == 0
    with pytest.raises(cx_Oracle.InterfaceError, match="not connected"):
        conn.cursor()
    with pytest.raises(cx_Oracle.InterfaceError, match="not connected"):
        conn.close()
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        pool.release(conn)
    assert error_of(caught).full_code == "DPI-1002"


def test_connection_forwards_the_drivers_attributes(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://")
    with pool.acquire() as conn:
        assert conn.isolation_level == ""
        conn.isolation_level = None  # a driver attribute, set through the face
        assert conn.driver_connection.isolation_level is None
        conn.execute("create table t (x)")
        assert conn.in_transaction is False
        with pytest.raises(AttributeError):
            conn.no_such_attribute = 1


def test_drop_removes_the_session(make_pool: Factory) -> None:
    # cx_Oracle's test 2413, but for one thing: the pool keeps min open, so the dropped
    # session is replaced in the background (OCI reopens it at the next acquire instead).
    pool = make_pool(
        "u", "p", "sqlite://", min=1, max=8, increment=1, getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT
    )
    conn = pool.acquire()
    dropped = conn.driver_connection
    assert (pool.busy, pool.opened) == (1, 1)
    pool.drop(conn)
    assert pool.busy == 0
    assert pool.opened + pool.sessionpool.opening == 1, "gone, and min being restored"
    eventually(
        lambda: pool.sessionpool.stats().connections_closed == 1, "the dropped session closed"
    )
    conn = pool.acquire()
    assert conn.driver_connection is not dropped
    assert (pool.busy, pool.opened) == (1, 1)
    conn.close()
    assert (pool.busy, pool.opened) == (0, 1)
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        pool.drop(conn)
    assert error_of(caught).full_code == "DPI-1002"


def test_foreign_connections_are_refused(make_pool: Factory) -> None:
    one = make_pool("u", "p", "sqlite://")
    other = make_pool("u", "p", "sqlite://")
    conn = one.acquire()
    with pytest.raises(cx_Oracle.ProgrammingError, match="another SessionPool"):
        other.release(conn)
    with pytest.raises(TypeError, match="Connection"):
        one.release(object())  # type: ignore[arg-type]
    assert one.busy == 1, "nothing was released"
    conn.close()


def test_close_refuses_while_busy_then_force_closes(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=2)
    conn = pool.acquire()
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        pool.close()
    assert (error_of(caught).code, error_of(caught).full_code) == (24422, "ORA-24422")
    assert pool.busy == 1, "the refused close changed nothing"
    pool.close(force=True)
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        conn.cursor()
    assert error_of(caught).full_code == "DPI-1010"
    for use in (
        pool.acquire,
        lambda: pool.busy,
        lambda: pool.opened,
        pool.close,
        conn.close,
        lambda: pool.release(conn),
        lambda: pool.drop(conn),
    ):
        with pytest.raises(cx_Oracle.DatabaseError) as caught:
            use()
        assert (error_of(caught).code, error_of(caught).full_code) == (0, "DPI-1010")
        assert error_of(caught).message == "DPI-1010: not connected"


def test_close_without_force_when_all_returned(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=2, max=2)
    pool.acquire().close()
    pool.close()
    assert pool.sessionpool.closed
    assert pool.sessionpool.opened == 0


def test_connectiontype_subclass_is_what_acquire_returns(make_pool: Factory) -> None:
    class Tracing(cx_Oracle.Connection):
        def run(self, sql: str) -> Any:
            cursor = self.cursor()
            cursor.execute(sql)
            self.note = sql  # a subclass's own attribute
            return cursor.fetchone()

    pool = make_pool("u", "p", "sqlite://", connectiontype=Tracing)
    with pool.acquire() as conn:
        assert isinstance(conn, Tracing)
        assert conn.run("select 40 + 2") == (42,)
        assert conn.note == "select 40 + 2"


def test_threads_share_the_pool(make_pool: Factory) -> None:
    # cx_Oracle's tests 2404 and 2405: 20 threads on a WAIT pool, half failing a statement
    # (an SQL error keeps the session; the release rolls it back).
    pool = make_pool(
        None, None, PG_URL, min=5, max=20, increment=2, getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT
    )

    def work(fail: bool) -> Any:
        with pool.acquire() as conn:
            cursor = conn.cursor()
            if fail:
                with pytest.raises(psycopg.errors.DivisionByZero):
                    cursor.execute("select 1 / 0")
                return None
            cursor.execute("select 1")
            return cursor.fetchone()[0]

    workers = [started(lambda i=i: work(i % 2 == 1)) for i in range(20)]
    # 20 connects to a local server: seconds at most even on this machine; 30 s is a guard.
    results = [worker.result(timeout=30.0) for worker in workers]
    assert results == [1, None] * 10
    assert pool.busy == 0
    assert 5 <= pool.opened <= 20


# -- tags and session callbacks ------------------------------------------------------------------


def test_tagging_as_cx_oracle_test_2410(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=2, max=8, increment=3)
    tag_mst, tag_utc = "TIME_ZONE=MST", "TIME_ZONE=UTC"
    conn = pool.acquire()
    assert conn.tag is None
    pool.release(conn, tag=tag_mst)
    conn = pool.acquire()
    assert conn.tag is None, "an untagged acquire prefers an untagged session"
    conn.tag = tag_utc
    conn.close()
    conn = pool.acquire(tag=tag_mst)
    assert conn.tag == tag_mst
    conn.close()
    conn = pool.acquire(tag=tag_utc)
    assert conn.tag == tag_utc
    conn.close()


def test_tag_lookup_reuses_the_tagged_session(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=2, max=3)
    with pool.acquire(tag="a=1;b=2") as conn:
        assert conn.tag is None
        first = conn.driver_connection
        conn.tag = "a=1;b=2"
    other = pool.acquire()  # an untagged acquire prefers the untagged idle session
    assert other.driver_connection is not first
    assert other.tag is None
    with pool.acquire(tag="b=2; a=1") as conn:  # pair order does not matter
        assert conn.driver_connection is first
        assert conn.tag == "a=1;b=2"
    other.close()


def test_release_without_tag_keeps_the_sessions_tag(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=1)
    conn = pool.acquire()
    pool.release(conn, tag="k=v")
    conn = pool.acquire(tag="k=v")
    assert conn.tag == "k=v"
    conn.tag = None  # cx_Oracle: no retag on close, the session keeps its tag
    conn.close()
    conn = pool.acquire(tag="k=v")
    assert conn.tag == "k=v"
    pool.release(conn, tag="")  # an empty tag untags
    conn = pool.acquire(tag="k=v")
    assert conn.tag is None
    with pytest.raises(TypeError):
        pool.release(conn, tag=12345)  # type: ignore[arg-type]
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        pool.release(conn, tag="a=1;INVALID_TAG")  # properties, one of them malformed
    assert error_of(caught).full_code == "ORA-24488"
    assert pool.busy == 1, "a refused release keeps the connection borrowed"
    conn.close()


def test_plain_tags_match_as_a_whole(make_pool: Factory) -> None:
    # cx_Oracle takes any string as a tag ("readonly" in the seed), besides properties.
    pool = make_pool("u", "p", "sqlite://", min=2, max=2)
    conn = pool.acquire(tag="readonly")
    assert conn.tag is None
    conn.tag = "readonly"
    first = conn.driver_connection
    conn.close()
    with pool.acquire(tag="readonly") as conn:
        assert conn.tag == "readonly"
        assert conn.driver_connection is first
    with pool.acquire(tag="readwrite") as conn:
        assert conn.tag is None, "another plain tag is another tag"
        assert conn.driver_connection is not first


def test_matchanytag(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=1, max=1, getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT)
    conn = pool.acquire()
    pool.release(conn, tag="x=1")
    conn = pool.acquire(tag="y=2", matchanytag=True)
    assert conn.tag == "x=1", "another tag's session, rather than a new one"
    assert pool.opened == 1
    conn.close()


def test_session_callback_runs_as_cx_oracles(make_pool: Factory) -> None:
    calls: list[tuple[Any, ...]] = []

    def callback(connection: Any, requested_tag: str | None) -> None:
        assert isinstance(connection, cx_Oracle.Connection)
        calls.append((requested_tag, connection.tag))
        connection.tag = requested_tag

    pool = make_pool("u", "p", "sqlite://", min=1, max=2, session_callback=callback)
    assert calls == [], "not at creation: when a session is handed out"
    pool.acquire().close()
    assert calls == [(None, None)], "a brand-new session"
    pool.acquire().close()
    assert calls == [(None, None)], "neither new nor another tag: no call"
    pool.acquire(tag="NLS=fr").close()
    assert calls[-1] == ("NLS=fr", None), "the tag asked for differs from the session's"
    conn = pool.acquire(tag="NLS=fr")
    assert conn.tag == "NLS=fr" and len(calls) == 2, "set by the callback, matched now"
    conn.close()


def test_a_three_argument_callback_also_gets_the_actual_tag(make_pool: Factory) -> None:
    calls: list[tuple[Any, ...]] = []
    pool = make_pool(
        "u",
        "p",
        "sqlite://",
        min=1,
        max=1,
        sessionCallback=lambda conn, requested, actual: calls.append((requested, actual)),
    )
    conn = pool.acquire()
    pool.release(conn, tag="a=1")
    pool.acquire(tag="b=2", matchanytag=True).close()
    assert calls == [(None, None), ("b=2", "a=1")]


def test_a_failing_callback_drops_the_session(make_pool: Factory) -> None:
    def callback(connection: Any, requested_tag: str | None) -> None:
        raise RuntimeError("set-up failed")

    pool = make_pool("u", "p", "sqlite://", min=0, max=2, session_callback=callback)
    with pytest.raises(RuntimeError, match="set-up failed"):
        pool.acquire()
    assert (pool.busy, pool.opened) == (0, 0), "a session in an unknown state is not kept"
    with pytest.raises(RuntimeError, match="set-up failed"):
        pool.acquire(tag="x=1")
    assert (pool.busy, pool.opened) == (0, 0)


def test_plsql_callback_is_refused_outside_oracle() -> None:
    with pytest.raises(cx_Oracle.NotSupportedError, match="PL/SQL"):
        cx_Oracle.SessionPool("u", "p", "sqlite://", session_callback="pkg.fixup")


# -- purity -------------------------------------------------------------------------------------


def test_purity_new_hands_out_a_fresh_session(make_pool: Factory) -> None:
    # cx_Oracle's test 2406 with a temp table as the session state.
    pool = make_pool("u", "p", "sqlite://", min=1, max=8, getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT)
    conn = pool.acquire()
    conn.execute("create temp table scratch (x)")
    pool.release(conn)
    assert pool.opened == 1
    conn = pool.acquire(purity=cx_Oracle.ATTR_PURITY_SELF)
    assert conn.execute("select count(*) from temp.sqlite_master").fetchone() == (1,)
    pool.release(conn)
    conn = pool.acquire(purity=cx_Oracle.ATTR_PURITY_NEW)
    assert conn.execute("select count(*) from temp.sqlite_master").fetchone() == (0,)
    pool.release(conn)
    # Test 2414: a fresh session does not cost another connection (reset in place).
    assert pool.opened == 1
    with pytest.raises(cx_Oracle.ProgrammingError, match="purity"):
        pool.acquire(purity=9)


def test_purity_new_on_postgresql_clears_session_state(make_pool: Factory) -> None:
    pool = make_pool(None, None, PG_URL, min=1, max=2, getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT)
    with pool.acquire() as conn:
        cursor = conn.cursor()
        cursor.execute("select set_config('application_name', 'TEST_ACTION', false)")
        conn.commit()
    with pool.acquire() as conn:
        cursor = conn.cursor()
        cursor.execute("show application_name")
        assert cursor.fetchone() == ("TEST_ACTION",), "ATTR_PURITY_DEFAULT keeps the state"
    with pool.acquire(purity=cx_Oracle.ATTR_PURITY_NEW) as conn:
        cursor = conn.cursor()
        cursor.execute("show application_name")
        assert cursor.fetchone() != ("TEST_ACTION",), "ATTR_PURITY_NEW: a fresh session"
    assert pool.opened == 1


# -- heterogeneous pools -------------------------------------------------------------------------


@pytest.fixture
def pg_users() -> Iterator[list[str]]:
    """Login roles hr and sales on the local PostgreSQL (trust auth), dropped afterwards."""
    made: list[str] = []
    with psycopg.connect("host=127.0.0.1 dbname=test", autocommit=True) as admin:
        for role in ("hr", "sales"):
            if admin.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone():
                continue
            admin.execute(f"CREATE ROLE {role} LOGIN")
            made.append(role)
        yield ["hr", "sales"]
        for role in made:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


def test_heterogeneous_acquire_opens_per_user_sessions(
    make_pool: Factory, pg_users: list[str]
) -> None:
    pool = make_pool(
        None, None, PG_URL, min=1, max=4, homogeneous=False, getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT
    )
    assert pool.homogeneous is False
    for user in pg_users:
        with pool.acquire(user, f"{user}_pass") as conn:
            cursor = conn.cursor()
            cursor.execute("select current_user")
            assert cursor.fetchone() == (user,)
    with pool.acquire() as conn:
        cursor = conn.cursor()
        cursor.execute("select current_user")
        assert cursor.fetchone() == ("root",), "no user: the pool's own session"
    assert pool.opened == 3


def test_acquire_with_the_pools_own_user_is_the_pools_session(make_pool: Factory) -> None:
    pool = make_pool("root", None, PG_URL, min=1, max=2, homogeneous=False)
    with pool.acquire("root", "whatever") as conn:
        cursor = conn.cursor()
        cursor.execute("select current_user")
        assert cursor.fetchone() == ("root",)
    assert pool.opened == 1, "the idle pool session was used, as cx_Oracle does"


def test_user_on_a_homogeneous_pool_raises_dpi_1012(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://")
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        pool.acquire(user="missing_proxyuser")
    assert (error_of(caught).code, error_of(caught).full_code) == (0, "DPI-1012")


def test_sqlite_has_no_users_to_acquire_for(make_pool: Factory) -> None:
    pool = make_pool(None, None, "sqlite://", homogeneous=False)
    with pytest.raises(cx_Oracle.ProgrammingError, match="SQLite has no users"):
        pool.acquire("hr", "hr_pass")


# -- connection classes, shards --------------------------------------------------------------


def test_cclass_and_shard_keys_isolate_sessions(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://", min=0, max=6)
    with pool.acquire(cclass="MYAPP") as conn:
        myapp = conn.driver_connection
    with pool.acquire(cclass="OTHER") as conn:
        assert conn.driver_connection is not myapp, "lent across connection classes"
    with pool.acquire() as conn:
        assert conn.driver_connection is not myapp, "a class's session lent to no class"
    with pool.acquire(cclass="MYAPP") as conn:
        assert conn.driver_connection is myapp
    with pool.acquire(shardingkey=[1, "a"]) as conn:
        shard = conn.driver_connection
    with pool.acquire(shardingkey=[2, "a"]) as conn:
        assert conn.driver_connection is not shard, "lent across shard keys"
    with pool.acquire(shardingkey=[1, "a"], supershardingkey=["eu"]) as conn:
        assert conn.driver_connection is not shard, "lent across super shard keys"
    with pool.acquire(shardingkey=(1, "a")) as conn:
        assert conn.driver_connection is shard


def test_max_sessions_per_shard_is_enforced(make_pool: Factory) -> None:
    pool = make_pool(
        "u",
        "p",
        "sqlite://",
        min=0,
        max=6,
        max_sessions_per_shard=1,
        getmode=cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT,
        wait_timeout=200,
    )
    held = pool.acquire(shardingkey=[7])
    elapsed, raised = timed(lambda: pool.acquire(shardingkey=[7]))
    assert isinstance(raised, cx_Oracle.DatabaseError), raised
    assert (raised.args[0].code, raised.args[0].full_code) == (24458, "ORA-24458")
    assert 0.19 <= elapsed <= 1.7, f"TIMEDWAIT 200 ms took {elapsed:.3f} s"
    pool.getmode = cx_Oracle.SPOOL_ATTRVAL_NOWAIT
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        pool.acquire(shardingkey=[7])
    assert error_of(caught).code == 24418
    with pool.acquire(shardingkey=[8]):  # another shard still opens
        assert pool.opened == 2
    held.close()


# -- statement cache ------------------------------------------------------------------------------


def test_stmtcachesize_reaches_sqlite3(make_pool: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    real_connect = sqlite3.connect

    def recording_connect(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("cached_statements"))
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", recording_connect)
    pool = make_pool("u", "p", "sqlite://", min=2, max=2, stmtcachesize=50)
    assert seen and set(seen) == {50}, f"cached_statements given: {seen}"
    with pytest.warns(UserWarning, match="fixes a connection's statement cache"):
        pool.stmtcachesize = 60
    assert pool.stmtcachesize == 60


def test_stmtcachesize_reaches_psycopg(make_pool: Factory) -> None:
    pool = make_pool(None, None, PG_URL, min=1, max=1)
    with pool.acquire() as conn:
        assert conn.prepared_max == 20, "cx_Oracle's default cache size"
    pool.stmtcachesize = 50
    with pool.acquire() as conn:
        assert conn.prepared_max == 50, "a changed size applies to the next acquire"
    pool.stmtcachesize = 0
    with pool.acquire() as conn:
        assert conn.prepare_threshold is None, "a cache of 0: statements are never prepared"


# -- current_schema ---------------------------------------------------------------------------


def test_current_schema_on_postgresql_is_the_search_path(make_pool: Factory) -> None:
    with psycopg.connect("host=127.0.0.1 dbname=test", autocommit=True) as admin:
        admin.execute("CREATE SCHEMA IF NOT EXISTS cx_face_hr")
    pool = make_pool(None, None, PG_URL, min=1, max=1, getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT)
    with pool.acquire() as conn:
        conn.current_schema = "cx_face_hr"
        assert conn.current_schema == "cx_face_hr"
        conn.tag = "schema=hr"
    with pool.acquire(tag="schema=hr") as conn:
        # Not transactional, as Oracle's: the rollback on release did not undo it.
        cursor = conn.cursor()
        cursor.execute("show search_path")
        assert cursor.fetchone() == ("cx_face_hr",)
        cursor.execute("begin")
        conn.current_schema = "public"  # inside a transaction it is the transaction's
        conn.rollback()
        assert conn.current_schema == "cx_face_hr"


def test_current_schema_on_mariadb_is_the_current_database(make_pool: Factory) -> None:
    pool = make_pool(None, None, MARIADB_URL, min=1, max=1)
    with pool.acquire() as conn:
        assert conn.current_schema == "test"
        conn.current_schema = "mysql"
        assert conn.current_schema == "mysql"
        with pytest.raises(pymysql.err.OperationalError):
            conn.current_schema = "cx_face_no_such_database"


def test_current_schema_on_sqlite_warns_and_is_remembered(make_pool: Factory) -> None:
    pool = make_pool("u", "p", "sqlite://")
    with pool.acquire() as conn:
        with pytest.warns(UserWarning, match="no effect on SQLite"):
            conn.current_schema = "HR"
        assert conn.current_schema == "HR"


# -- driver errors ----------------------------------------------------------------------------


def test_a_failed_connect_is_a_database_error(make_pool: Factory) -> None:
    with pytest.raises(cx_Oracle.OperationalError) as caught:
        cx_Oracle.SessionPool(None, None, "postgresql://127.0.0.1:1/test?connect_timeout=2")
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    assert "127.0.0.1" in error_of(caught).message
    assert error_of(caught).code == 0


def test_an_acquire_during_an_outage_fails_with_the_connect_error(
    make_pool: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Connects start failing once the pool has worked: the NOWAIT caller below max waits for
    # the connect made for it (at most connect_timeout + 1 s) and gets the driver's error.
    pool = make_pool("u", "p", "sqlite://", min=1, max=2, connect_timeout=1.0)
    held = pool.acquire()

    def refusing_connect(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(sqlite3, "connect", refusing_connect)
    elapsed, raised = timed(pool.acquire)
    assert isinstance(raised, cx_Oracle.OperationalError), raised
    assert "unable to open database file" in raised.args[0].message
    assert isinstance(raised.__cause__, sessionpool.PoolTimeout)
    # connect_timeout (1 s) + the 1 s margin, plus slack for the noisy machine.
    assert elapsed < 3.5, f"took {elapsed:.3f} s"
    held.close()
