"""manage(): the seed-era transparent pooling of a DB-API module, on sessionpool pools: one pool
per argument set, close() and garbage collection give connections back (rolled back), proxied
cursors keep theirs out, use_threadlocal, dispose(). The seed's example runs against the real
PostgreSQL (psycopg2, as the seed); the rest uses the fake driver and SQLite.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg2
import pytest
from sqlalchemy import exc

import sessionpool
from sessionpool.compat import sqlalchemy as face
from tests.fakes import fake_dbapi
from tests.fakes.fake_dbapi import FakeDatabase
from tests.fakes.polling import eventually

JOIN = 10.0  # bound on thread joins: the work they do takes well under a second


@pytest.fixture(autouse=True)
def no_managers_left() -> Iterator[None]:
    """manage() keeps one proxy per module for the process: start and end each test clean."""
    face.clear_managers()
    yield
    face.clear_managers()


@pytest.fixture
def db() -> Iterator[FakeDatabase]:
    with FakeDatabase() as database:
        yield database


def fake_module(db: FakeDatabase) -> Any:
    """A DB-API 'module' whose connect() is the fake database's."""
    return SimpleNamespace(
        __name__="fakedb",
        connect=db.connect,
        Error=fake_dbapi.Error,
        paramstyle=fake_dbapi.paramstyle,
    )


def test_seed_example_runs_unchanged_but_for_imports_and_arguments() -> None:
    """The seed's "Establishing a Transparent Connection Pool", with the connect arguments of
    the local server (the seed's username/password are for its own)."""
    import psycopg2 as psycopg

    from sessionpool.compat import sqlalchemy as pool  # was: import sqlalchemy.pool as pool

    psycopg = pool.manage(psycopg)

    # then connect normally
    connection = psycopg.connect(database="test", host="127.0.0.1", user="root")

    cursor = connection.cursor()
    cursor.execute("select 1 + 1")
    assert cursor.fetchone() == (2,)
    pid = connection.get_backend_pid()
    connection.close()
    again = psycopg.connect(database="test", host="127.0.0.1", user="root")
    assert again.get_backend_pid() == pid  # the same pooled connection
    assert psycopg.Error is psycopg2.Error  # the rest of the module shows through
    again.close()


def test_close_gives_back_rolled_back(tmp_path: Path) -> None:
    path = str(tmp_path / "app.db")
    setup = sqlite3.connect(path)
    setup.execute("create table t (x)")
    setup.commit()
    setup.close()
    proxy = face.manage(sqlite3, pool_size=1, max_overflow=0)
    conn = proxy.connect(path, check_same_thread=False)
    raw = conn.dbapi_connection
    conn.execute("insert into t values (1)")  # a transaction left open
    assert raw.in_transaction
    conn.close()
    assert not raw.in_transaction  # rolled back on the way back
    again = proxy.connect(path, check_same_thread=False)
    assert again.dbapi_connection is raw
    assert again.execute("select count(*) from t").fetchone() == (0,)
    again.close()


def test_one_pool_per_argument_set(db: FakeDatabase) -> None:
    proxy = face.manage(fake_module(db))
    a1 = proxy.connect(user="a")
    b1 = proxy.connect(user="b")
    assert proxy.get_pool(user="a") is not proxy.get_pool(user="b")
    assert a1.dbapi_connection.kwargs == {"user": "a"}
    assert b1.dbapi_connection.kwargs == {"user": "b"}
    assert proxy.get_pool(user="a").busy == 1 and proxy.get_pool(user="b").busy == 1
    # sa_pool_key names the pool instead of the arguments, and never reaches the driver.
    keyed = proxy.connect(user="c", sa_pool_key="shared")
    assert keyed.dbapi_connection.kwargs == {"user": "c"}
    assert proxy.get_pool(sa_pool_key="shared").busy == 1
    for conn in (a1, b1, keyed):
        conn.close()
    assert isinstance(proxy.get_pool(user="a"), sessionpool.Pool)
    assert face.manage(fake_module(db)) is not proxy  # another module object, another proxy
    assert repr(proxy) == "<DBProxy of fakedb: 3 pool(s)>"


def test_manage_returns_the_same_proxy_for_a_module(db: FakeDatabase) -> None:
    module = fake_module(db)
    first = face.manage(module, pool_size=2)
    assert face.manage(module, pool_size=9) is first  # as SQLAlchemy: the first one stays


def test_garbage_collection_gives_back_at_once(db: FakeDatabase) -> None:
    proxy = face.manage(fake_module(db), use_threadlocal=False)
    conn = proxy.connect()
    pool = proxy.get_pool()
    raw = conn.dbapi_connection
    conn.cursor().execute("select 1")  # used: the way back rolls it back
    del conn
    # At once (the seed's __del__), not at the pool's next maintenance tick.
    assert pool.busy == 0 and pool.idle == 1
    assert raw.rollbacks == 1 and not raw.closed
    assert pool.stats().reclaimed == 0  # returned by the face, not reclaimed as a leak


def test_a_cursor_keeps_its_connection_out(db: FakeDatabase) -> None:
    proxy = face.manage(fake_module(db), use_threadlocal=False)
    conn = proxy.connect()
    pool = proxy.get_pool()
    cursor = conn.cursor()
    del conn
    assert pool.busy == 1  # the cursor still needs the connection
    cursor.execute("select 1")
    del cursor
    assert pool.busy == 0 and pool.idle == 1


def test_use_after_close_raises(db: FakeDatabase) -> None:
    proxy = face.manage(fake_module(db), use_threadlocal=False)
    conn = proxy.connect()
    cursor = conn.cursor()
    conn.close()
    conn.close()  # a second close does nothing
    with pytest.raises(exc.ResourceClosedError):
        conn.cursor()
    with pytest.raises(exc.ResourceClosedError):
        cursor.execute("select 1")  # its connection went back: not usable through it


def test_use_threadlocal_returns_the_connection_of_this_thread(db: FakeDatabase) -> None:
    proxy = face.manage(fake_module(db))  # use_threadlocal is the seed's default
    outer = proxy.connect(user="a")
    inner = proxy.connect(user="a")
    assert inner is outer
    other_args = proxy.connect(user="b")
    assert other_args is not outer
    other_thread: list[Any] = []
    thread = threading.Thread(target=lambda: other_thread.append(proxy.connect(user="a")))
    thread.start()
    thread.join(JOIN)
    assert other_thread and other_thread[0] is not outer
    pool = proxy.get_pool(user="a")
    inner.close()
    assert pool.busy == 2  # the outer connect() still holds it (and the other thread's)
    outer.close()
    other_thread[0].close()
    assert pool.busy == 0
    assert proxy.connect(user="a") is not outer  # a new checkout now
    other_args.close()


def test_without_threadlocal_each_connect_is_a_checkout(db: FakeDatabase) -> None:
    proxy = face.manage(fake_module(db), use_threadlocal=False)
    first, second = proxy.connect(), proxy.connect()
    assert first is not second and first.dbapi_connection is not second.dbapi_connection
    first.close()
    second.close()


def test_pool_arguments_are_translated(db: FakeDatabase) -> None:
    proxy = face.manage(
        fake_module(db),
        pool_size=2,
        max_overflow=1,
        timeout=0.2,
        recycle=60,
        use_lifo=True,
        pre_ping=True,
        reset_on_return="commit",
        logging_name="app",
        use_threadlocal=False,
        max_idle=30,
    )
    config = proxy.get_pool().config
    assert (config.max_size, config.max_overflow, config.wait_timeout) == (2, 1, 0.2)
    assert (config.max_lifetime, config.idle_order, config.ping_interval) == (60, "lifo", 0.0)
    assert (config.reset_on_return, config.name, config.max_idle) == ("commit", "app", 30)
    held = [proxy.connect() for _ in range(3)]
    started = time.monotonic()
    with pytest.raises(exc.TimeoutError) as caught:
        proxy.connect()
    assert time.monotonic() - started < 0.2 + 1.0  # the deadline, plus scheduling noise
    assert str(caught.value).startswith(
        "QueuePool limit of size 2 overflow 1 reached, connection timed out, timeout 0.20"
    )
    assert isinstance(caught.value.__cause__, sessionpool.PoolTimeout)
    for conn in held:
        conn.close()


def test_null_pool_opens_a_connection_per_connect(db: FakeDatabase) -> None:
    proxy = face.manage(fake_module(db), poolclass=face.NullPool, use_threadlocal=False)
    first = proxy.connect()
    raw = first.dbapi_connection
    first.close()
    # sessionpool closes what it lets go on its maintenance thread, off the caller's path.
    eventually(lambda: raw.closed and db.open_connections == 0, "the connection closed")
    second = proxy.connect()
    assert second.dbapi_connection is not raw
    second.close()


def test_bad_arguments_are_named(db: FakeDatabase) -> None:
    with pytest.raises(sessionpool.ConfigError, match="unknown manage"):
        face.manage(fake_module(db), pool_sise=3)
    with pytest.raises(sessionpool.ConfigError, match="pool_size or max_size"):
        face.manage(fake_module(db), pool_size=3, max_size=3)
    with pytest.raises(sessionpool.ConfigError, match="poolclass"):
        face.manage(fake_module(db), poolclass=face.StaticPool)


def test_dispose_and_close(db: FakeDatabase) -> None:
    proxy = face.manage(fake_module(db), use_threadlocal=False)
    idle, held = proxy.connect(user="a"), proxy.connect(user="a")
    idle_raw, held_raw = idle.dbapi_connection, held.dbapi_connection
    idle.close()
    old_pool = proxy.get_pool(user="a")
    proxy.dispose(user="a")
    # The idle one at once, the checked-out one when it comes back (each closed on the
    # pool's maintenance thread, off the caller's path).
    eventually(lambda: idle_raw.closed, "the idle connection closed")
    assert not held_raw.closed and held.cursor() is not None
    held.close()
    eventually(lambda: held_raw.closed, "the returned connection closed")
    assert old_pool.opened == 0
    fresh = proxy.connect(user="a")
    assert proxy.get_pool(user="a") is not old_pool
    fresh.close()
    other = proxy.connect(user="b")
    other.close()
    proxy.close()  # nothing borrowed: the pools are closed, synchronously
    assert db.open_connections == 0
    assert proxy.get_pool(user="a").opened == 0  # a new, empty pool after close()


def test_clear_managers_closes_every_proxy(db: FakeDatabase) -> None:
    face.manage(fake_module(db)).connect().close()
    assert db.open_connections == 1
    face.clear_managers()
    assert db.open_connections == 0
