"""The lease as a transparent proxy of the driver connection, with sqlite3 as a real driver."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sessionpool
from sessionpool import Pool
from tests.sync.conftest import PoolFactory


@pytest.fixture
def sqlite_pool(make_pool: PoolFactory, tmp_path: Path) -> Iterator[Pool]:
    path = tmp_path / "test.db"

    def connect() -> sqlite3.Connection:
        # Opened on the pool's opener threads, used on the test's: allow that.
        return sqlite3.connect(path, check_same_thread=False)

    pool = make_pool(connect, min_size=1, max_size=2)
    with pool.acquire() as conn:
        conn.execute("create table t (x integer)")
        conn.commit()
    yield pool


def count_rows(pool: Pool) -> int:
    with pool.acquire() as conn:
        (count,) = conn.execute("select count(*) from t").fetchone()
    return int(count)


def test_methods_forward(sqlite_pool: Pool) -> None:
    with sqlite_pool.acquire() as conn:
        conn.execute("insert into t values (?)", (7,))
        cursor = conn.cursor()
        cursor.execute("select x from t")
        assert cursor.fetchall() == [(7,)]
        conn.commit()
    assert count_rows(sqlite_pool) == 1


def test_attributes_forward_both_ways(sqlite_pool: Pool) -> None:
    with sqlite_pool.acquire() as conn:
        assert isinstance(conn.driver_connection, sqlite3.Connection)
        driver: Any = conn.driver_connection
        assert conn.isolation_level == ""
        assert driver.isolation_level == ""
        assert conn.in_transaction is False
        conn.execute("insert into t values (1)")
        assert conn.in_transaction is True
        conn.rollback()
        conn.isolation_level = None  # autocommit
        assert driver.isolation_level is None
        conn.execute("insert into t values (2)")
        assert conn.in_transaction is False
        conn.isolation_level = ""
        assert conn.total_changes >= 1
    assert count_rows(sqlite_pool) == 1


def test_uncommitted_work_is_rolled_back_on_return(sqlite_pool: Pool) -> None:
    with sqlite_pool.acquire() as conn:
        conn.execute("insert into t values (1)")
        assert conn.in_transaction
    assert count_rows(sqlite_pool) == 0


def test_close_returns_the_sqlite_connection_open(sqlite_pool: Pool) -> None:
    conn = sqlite_pool.acquire()
    driver = conn.driver_connection
    conn.close()
    assert driver.execute("select 1").fetchone() == (1,)  # the driver connection is open


def test_driver_errors_pass_through_unwrapped(sqlite_pool: Pool) -> None:
    with sqlite_pool.acquire() as conn, pytest.raises(sqlite3.OperationalError):
        conn.execute("select * from no_such_table")
    assert sqlite_pool.busy == 0


def test_released_sqlite_lease_raises(sqlite_pool: Pool) -> None:
    conn = sqlite_pool.acquire()
    conn.release()
    with pytest.raises(sessionpool.LeaseReleased):
        conn.execute("select 1")
    with pytest.raises(sessionpool.LeaseReleased):
        _ = conn.isolation_level
    with pytest.raises(sessionpool.LeaseReleased):
        conn.isolation_level = None  # type: ignore[attr-defined]


def test_lease_repr(sqlite_pool: Pool) -> None:
    conn = sqlite_pool.acquire(tag="a=1")
    text = repr(conn)
    assert text.startswith("<Lease")
    assert "Connection" in text
    conn.release()
    assert repr(conn) == "<Lease released>"
    assert isinstance(conn, sessionpool.Lease)
