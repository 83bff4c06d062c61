"""Sessions against the real PostgreSQL and MariaDB: a backend killed inside a transaction,
reconnect outside one, and per-session modes put back on return."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped, unused-ignore]
import pytest

import sessionpool

SERVERS = {
    "psycopg": "postgresql+psycopg://127.0.0.1:5432/test",
    "psycopg2": "postgresql+psycopg2://127.0.0.1:5432/test",
    "pymysql": "mysql+pymysql://root@127.0.0.1:3306/test",
    "mysqldb": "mysql+mysqldb://root@127.0.0.1:3306/test",
}
PG = ("psycopg", "psycopg2")


def backend_id(session: sessionpool.Session, driver: str) -> int:
    sql = "SELECT pg_backend_pid()" if driver in PG else "SELECT CONNECTION_ID()"
    return int(session.fetchone(sql)[0])


def kill(driver: str, backend: int) -> None:
    if driver in PG:
        with psycopg.connect("host=127.0.0.1 dbname=test", autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    else:
        admin = pymysql.connect(host="127.0.0.1", user="root", database="test", autocommit=True)
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"KILL {backend}")
        finally:
            admin.close()
    time.sleep(0.1)  # let the server end the session


@pytest.fixture(params=sorted(SERVERS))
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[str, sessionpool.Pool, str]]:
    driver: str = request.param
    table = f"sp_session_{uuid.uuid4().hex[:8]}"
    pool = sessionpool.create_pool(SERVERS[driver], min_size=1, max_size=2, wait_timeout=5)
    with pool.session() as session:
        session.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40))")
    yield driver, pool, table
    with pool.session() as session:
        session.execute(f"DROP TABLE {table}")
    pool.close(force=True)


def count(pool: sessionpool.Pool, table: str) -> int:
    with pool.session() as session:
        return int(session.fetchone(f"SELECT count(*) FROM {table}")[0])


def test_a_backend_killed_inside_a_transaction_is_transaction_lost(
    setup: tuple[str, sessionpool.Pool, str],
) -> None:
    driver, pool, table = setup
    session = pool.session()
    session.execute(f"INSERT INTO {table} VALUES (1, 'first')")
    kill(driver, backend_id(session, driver))
    with pytest.raises(sessionpool.TransactionLost) as caught:
        session.execute(f"INSERT INTO {table} VALUES (2, 'second')")
    assert pool.is_disconnect(caught.value.__cause__)  # type: ignore[arg-type]
    # Every further use says so too, commit included: never a commit that looks successful.
    with pytest.raises(sessionpool.TransactionLost):
        session.commit()
    with pytest.raises(sessionpool.TransactionLost):
        session.fetch("SELECT 1")
    assert pool.busy == 0  # the dead connection was dropped
    session.rollback()
    # The very next use gets a fresh connection at once, and nothing was half-applied.
    started = time.monotonic()
    assert count(pool, table) == 0
    session.execute(f"INSERT INTO {table} VALUES (3, 'third')")
    session.commit()
    assert time.monotonic() - started < 1.0
    assert count(pool, table) == 1


def test_a_backend_killed_before_commit_makes_commit_raise(
    setup: tuple[str, sessionpool.Pool, str],
) -> None:
    driver, pool, table = setup
    session = pool.session()
    for index in range(5):
        session.add(f"INSERT INTO {table} VALUES (%s, 'x')", (index,))  # both use %s
    session.flush()
    kill(driver, backend_id(session, driver))
    with pytest.raises(sessionpool.TransactionLost):
        session.commit()
    session.rollback()
    assert count(pool, table) == 0


def test_reconnect_outside_a_transaction_retries_once_on_a_fresh_connection(
    setup: tuple[str, sessionpool.Pool, str],
) -> None:
    driver, pool, _ = setup
    session = pool.session(autocommit=True, reconnect=True)
    first = backend_id(session, driver)
    kill(driver, first)
    second = backend_id(session, driver)  # no error: retried on a fresh connection
    assert second != first
    session.close()
    # Without reconnect the driver's disconnect error reaches the caller (and the dead
    # connection is dropped, so the next statement works).
    plain = pool.session(autocommit=True)
    kill(driver, backend_id(plain, driver))
    with pytest.raises(Exception) as caught:
        backend_id(plain, driver)
    assert pool.is_disconnect(caught.value)
    assert backend_id(plain, driver) not in (first, second)
    plain.close()


def isolation(session: sessionpool.Session, driver: str) -> str:
    sql = "SHOW transaction_isolation" if driver in PG else "SELECT @@SESSION.tx_isolation"
    return str(session.fetchone(sql)[0]).replace("-", " ").lower()


def test_isolation_and_autocommit_are_put_back_on_return(
    setup: tuple[str, sessionpool.Pool, str],
) -> None:
    driver, pool, table = setup
    pool.resize(min_size=1, max_size=1)  # the next borrower gets the same connection
    with pool.session() as session:
        default = isolation(session, driver)
    with pool.session(isolation_level="serializable", autocommit=False) as session:
        assert isolation(session, driver) == "serializable"
    with pool.session() as session:
        assert isolation(session, driver) == default
    with pool.session(autocommit=True) as session:
        session.execute(f"INSERT INTO {table} VALUES (7, 'auto')")
        assert not session.in_transaction
    with pool.acquire() as conn:
        raw: Any = conn.driver_connection
        getter: Callable[[], Any] | None = getattr(raw, "get_autocommit", None)
        assert not (getter() if getter else raw.autocommit), "autocommit leaked to a borrower"
    assert count(pool, table) == 1


def test_a_transaction_aborted_by_an_error_refuses_to_commit(
    setup: tuple[str, sessionpool.Pool, str],
) -> None:
    """PostgreSQL aborts the transaction at the first error, and COMMIT then rolls back while
    the driver reports success: the session refuses. MySQL undoes only the statement, so the
    rest of the transaction commits."""
    driver, pool, table = setup
    session = pool.session()
    session.execute(f"INSERT INTO {table} VALUES (1, 'before the error')")
    with pytest.raises(Exception) as caught:
        session.execute("SELECT * FROM sp_no_such_table")
    assert not pool.is_disconnect(caught.value)
    if driver in PG:
        with pytest.raises(sessionpool.TransactionAborted):
            session.commit()
        session.rollback()
        assert count(pool, table) == 0
    else:
        session.commit()
        assert count(pool, table) == 1
