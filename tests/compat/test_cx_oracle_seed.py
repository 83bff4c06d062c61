"""Every usage example of the cx_Oracle SessionPool seed (seeds/004_*.txt) runs through the
cx_Oracle face on SQLite, the real PostgreSQL and the real MariaDB: the seed's code unchanged
but for the import, the DSN, and Oracle-only SQL (ALTER SESSION) given in each database's
words."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from sessionpool.compat import cx_oracle as cx_Oracle
from tests.fakes.polling import eventually

PG_ADMIN = "host=127.0.0.1 dbname=test"
MARIADB_ADMIN = {"host": "127.0.0.1", "port": 3306, "user": "root"}
# The schemas the seed's callbacks set current_schema to: on MariaDB a database must exist
# for USE; PostgreSQL accepts any name in the search_path; SQLite has none (it warns).
SEED_SCHEMAS = ("HR", "HR_READONLY", "APP_SCHEMA")
EMPLOYEES = [(1, "King"), (2, "Kochhar"), (3, "De Haan")]


@dataclass
class Database:
    """One database the examples run against: the DSN to use and the pools made on it."""

    name: str
    dsn: str
    # The seed's "ALTER SESSION SET NLS_DATE_FORMAT = 'YYYY-MM-DD'", in this database's words.
    alter_session: str
    users_exist: bool = False
    pools: list[cx_Oracle.SessionPool] = field(default_factory=list)

    def keep(self, *pools: Any) -> None:
        self.pools.extend(pools)


def _sqlite(tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "hr.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table employees (id integer primary key, name text)")
        conn.executemany("insert into employees values (?, ?)", EMPLOYEES)
    conn.close()
    yield Database("sqlite", f"sqlite:///{path}", "PRAGMA foreign_keys = ON")


def _postgresql() -> Iterator[Database]:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute("DROP SCHEMA IF EXISTS cx_seed CASCADE")
        admin.execute("CREATE SCHEMA cx_seed")
        admin.execute("CREATE TABLE cx_seed.employees (id int primary key, name text)")
        with admin.cursor() as cursor:
            cursor.executemany("INSERT INTO cx_seed.employees VALUES (%s, %s)", EMPLOYEES)
        made = []
        for role in ("hr", "sales"):  # trust auth: any password logs in
            if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                admin.execute(f"CREATE ROLE {role} LOGIN")
                made.append(role)
        try:
            yield Database(
                "postgresql",
                "postgresql://root@127.0.0.1:5432/test?options=-csearch_path%3Dcx_seed",
                "SET datestyle = 'ISO, YMD'",
                users_exist=True,
            )
        finally:
            admin.execute("DROP SCHEMA IF EXISTS cx_seed CASCADE")
            for role in made:
                admin.execute(f"DROP ROLE IF EXISTS {role}")


def _mariadb() -> Iterator[Database]:
    admin = pymysql.connect(**MARIADB_ADMIN, autocommit=True)
    made: list[str] = []
    try:
        with admin.cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS cx_seed")
            cursor.execute("CREATE DATABASE cx_seed")
            cursor.execute("CREATE TABLE cx_seed.employees (id INT PRIMARY KEY, name TEXT)")
            cursor.executemany("INSERT INTO cx_seed.employees VALUES (%s, %s)", EMPLOYEES)
            for schema in SEED_SCHEMAS:
                if not cursor.execute("SHOW DATABASES LIKE %s", (schema,)):
                    cursor.execute(f"CREATE DATABASE `{schema}`")
                    made.append(schema)
            for user in ("hr", "sales"):
                cursor.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
                cursor.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{user}_pass'")
                cursor.execute(f"GRANT SELECT ON cx_seed.* TO '{user}'@'127.0.0.1'")
        yield Database(
            "mariadb",
            "mariadb://root@127.0.0.1:3306/cx_seed",
            "SET SESSION time_zone = '+00:00'",
            users_exist=True,
        )
    finally:
        with admin.cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS cx_seed")
            for schema in made:
                cursor.execute(f"DROP DATABASE IF EXISTS `{schema}`")
            for user in ("hr", "sales"):
                cursor.execute(f"DROP USER IF EXISTS '{user}'@'127.0.0.1'")
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    makers = {
        "sqlite": lambda: _sqlite(tmp_path),
        "postgresql": _postgresql,
        "mariadb": _mariadb,
    }
    for database in makers[request.param]():
        try:
            yield database
        finally:
            for pool in database.pools:
                pool.sessionpool.close(force=True)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


# -- the seed's examples, as written there (DSN and Oracle-only SQL aside) ------------------


def test_pool_creation_examples(
    db: Database, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    DSN = db.dsn

    # Basic pool creation
    pool = cx_Oracle.SessionPool("scott", "tiger", DSN,
                                 min=2, max=10, increment=2)  # fmt: skip
    db.keep(pool)
    assert (pool.min, pool.max, pool.increment, pool.opened) == (2, 10, 2, 2)

    # Pool with custom configuration
    pool = cx_Oracle.SessionPool(
        user="hr",
        password="password",
        dsn=DSN,
        min=5,
        max=50,
        increment=5,
        timeout=300,  # 5 minute session timeout
        waitTimeout=10,  # 10 second wait for connection
        stmtcachesize=50,  # Larger statement cache
        ping_interval=30,  # Ping every 30 seconds
    )
    db.keep(pool)
    assert pool.opened == 5
    assert (pool.timeout, pool.stmtcachesize, pool.ping_interval) == (300, 50, 30)
    # cx_Oracle's waitTimeout is in milliseconds (the seed's comment says seconds).
    assert pool.wait_timeout == 10
    assert pool.sessionpool.config.max_idle == 300.0

    # Pool with session callback
    def session_callback(connection, requestedTag, actualTag):  # type: ignore[no-untyped-def]
        """Called when session acquired from pool"""
        print(f"Session acquired with tag: {actualTag}")
        connection.current_schema = "HR"

    pool = cx_Oracle.SessionPool("user", "pass", DSN, 2, 10, 2,
                                 sessionCallback=session_callback)  # fmt: skip
    db.keep(pool)

    assert lines(capsys) == [], "no session handed out yet: no callback"
    with pool.acquire() as conn:
        assert conn.current_schema in ("HR", "hr", None)  # PostgreSQL: HR does not exist
    assert lines(capsys) == ["Session acquired with tag: None"]


def test_connection_management_examples(
    db: Database, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    pool = cx_Oracle.SessionPool("scott", "tiger", db.dsn, min=1, max=2, increment=1)
    db.keep(pool)

    # Basic connection acquisition
    conn = pool.acquire()
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT * FROM employees")
        # Use connection...
        assert len(cursor.fetchall()) == 3
    finally:
        pool.release(conn)
    assert pool.busy == 0

    # Context manager (automatic release)
    with pool.acquire() as conn:
        cursor = conn.cursor()
        cursor.execute("SELECT COUNT(*) FROM employees")
        count = cursor.fetchone()[0]
        print(f"Employee count: {count}")
    assert pool.busy == 0
    assert lines(capsys) == ["Employee count: 3"]

    # Tagged session management
    with pool.acquire(tag="readonly") as conn:
        conn.current_schema = "HR_READONLY"
        # Connection returned with "readonly" tag
        first = conn.driver_connection

    # Acquire tagged session (reuses previous session if available)
    with pool.acquire(tag="readonly") as conn:
        # Gets same session configuration as above
        assert conn.driver_connection is first, "the same session: LIFO reuse"
        # As in cx_Oracle, a session is tagged only if conn.tag is set before release (the
        # seed's comment notwithstanding): it came back untagged.
        assert conn.tag is None
        pass

    # Drop problematic connection
    conn = pool.acquire()
    try:
        # If connection has issues...
        pool.drop(conn)  # Permanently remove from pool
    except:  # noqa: E722
        # Don't release back to pool
        pool.drop(conn)
    assert pool.busy == 0


def test_monitoring_examples(db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    pool = cx_Oracle.SessionPool("scott", "tiger", db.dsn, min=2, max=10, increment=2)
    db.keep(pool)
    held = pool.acquire()

    # Monitor pool status
    print(f"Pool status: {pool.busy}/{pool.opened}/{pool.max} (busy/opened/max)")
    print(f"Pool efficiency: {(pool.busy / pool.opened) * 100:.1f}%")

    # Pool configuration info
    print(f"Min connections: {pool.min}")
    print(f"Max connections: {pool.max}")
    print(f"Increment: {pool.increment}")
    print(f"Timeout: {pool.timeout} seconds")

    # Check if pool needs tuning
    if pool.busy == pool.max:
        print("Warning: Pool at maximum capacity")
    elif pool.opened > pool.min and pool.busy < pool.min:
        print("Info: Pool may be oversized")

    assert lines(capsys) == [
        "Pool status: 1/2/10 (busy/opened/max)",
        "Pool efficiency: 50.0%",
        "Min connections: 2",
        "Max connections: 10",
        "Increment: 2",
        "Timeout: 0 seconds",
    ]
    held.close()


def test_acquisition_mode_examples(db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    DSN = db.dsn

    # Pool that waits for connections
    wait_pool = cx_Oracle.SessionPool("user", "pass", DSN, 2, 5, 1,
                                      getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT)  # fmt: skip

    # Pool that fails immediately if no connections available
    nowait_pool = cx_Oracle.SessionPool("user", "pass", DSN, 2, 5, 1,
                                        getmode=cx_Oracle.SPOOL_ATTRVAL_NOWAIT)  # fmt: skip
    db.keep(wait_pool, nowait_pool)

    def try_to_acquire() -> Any:
        conn = None
        # Try to acquire with specific behavior
        try:
            conn = nowait_pool.acquire()
        except cx_Oracle.DatabaseError:
            print("No connections immediately available")
        return conn

    held = [try_to_acquire()]
    assert held[0] is not None
    assert lines(capsys) == []
    held += [try_to_acquire() for _ in range(4)]  # 5, the max
    assert try_to_acquire() is None
    assert lines(capsys) == ["No connections immediately available"]
    assert wait_pool.getmode == cx_Oracle.SPOOL_ATTRVAL_WAIT
    for conn in held:
        conn.close()


def test_purity_examples(db: Database) -> None:
    pool = cx_Oracle.SessionPool("scott", "tiger", db.dsn, min=2, max=10, increment=2)
    db.keep(pool)

    # Require fresh session (no previous state)
    conn = pool.acquire(purity=cx_Oracle.ATTR_PURITY_NEW)

    # Self-contained session (cleaned up automatically)
    conn = pool.acquire(purity=cx_Oracle.ATTR_PURITY_SELF)

    assert pool.busy == 2
    conn.close()


def test_heterogeneous_pool_example(db: Database) -> None:
    DSN = db.dsn

    # Create heterogeneous pool
    hetero_pool = cx_Oracle.SessionPool(None, None, DSN, 2, 10, 2,
                                        homogeneous=False,
                                        externalauth=True)  # fmt: skip
    db.keep(hetero_pool)

    if not db.users_exist:
        # SQLite has no users: the per-user acquire is refused, naming why.
        with pytest.raises(cx_Oracle.ProgrammingError, match="SQLite has no users"):
            hetero_pool.acquire(user="hr", password="hr_pass")
        return

    # Acquire connections with different credentials
    hr_conn = hetero_pool.acquire(user="hr", password="hr_pass")
    sales_conn = hetero_pool.acquire(user="sales", password="sales_pass")

    for conn, user in ((hr_conn, "hr"), (sales_conn, "sales")):
        cursor = conn.cursor()
        cursor.execute("SELECT current_user" if db.name == "postgresql" else "SELECT USER()")
        assert cursor.fetchone()[0].split("@")[0] == user
    assert hetero_pool.busy == 2


def test_drcp_example(db: Database) -> None:
    # Connect to DRCP-enabled service
    drcp_dsn = db.dsn  # was "hostname:1521/service_name:POOLED"
    pool = cx_Oracle.SessionPool("user", "pass", drcp_dsn, 0, 5, 1)
    db.keep(pool)

    # Use connection class for better pooling
    conn = pool.acquire(cclass="MYAPP")

    assert (pool.opened, pool.busy) == (1, 1)
    conn.close()
    other = pool.acquire(cclass="OTHER")
    assert pool.opened == 2, "a session of class MYAPP is not lent to class OTHER"
    other.close()


def test_session_callback_example(
    db: Database, capsys: pytest.CaptureFixture[str], recwarn: pytest.WarningsRecorder
) -> None:
    DSN = db.dsn

    def init_session(connection, requestedTag, actualTag):  # type: ignore[no-untyped-def]
        """Initialize session when acquired from pool"""
        # Set session-specific configuration
        connection.current_schema = "APP_SCHEMA"

        # Set session parameters
        cursor = connection.cursor()
        cursor.execute(db.alter_session)  # "ALTER SESSION SET NLS_DATE_FORMAT = 'YYYY-MM-DD'"
        cursor.close()

        # Log session acquisition
        print(f"Session initialized with tag: {actualTag}")

    pool = cx_Oracle.SessionPool("user", "pass", DSN, 2, 10, 2,
                                 sessionCallback=init_session)  # fmt: skip
    db.keep(pool)

    first = pool.acquire()
    second = pool.acquire()
    assert lines(capsys) == ["Session initialized with tag: None"] * 2, "two new sessions"
    pool.release(first)
    pool.release(second)
    pool.acquire().close()
    assert lines(capsys) == [], "a session already set up is not set up again"


def test_pool_sizing_examples(db: Database) -> None:
    DSN = db.dsn

    # Conservative pool for low-traffic applications
    small_pool = cx_Oracle.SessionPool("user", "pass", DSN,
                                       min=2, max=10, increment=2)  # fmt: skip

    # Aggressive pool for high-traffic applications
    large_pool = cx_Oracle.SessionPool("user", "pass", DSN,
                                       min=10, max=100, increment=10)  # fmt: skip

    # Web application pool (typical sizing)
    web_pool = cx_Oracle.SessionPool("user", "pass", DSN,
                                     min=5,  # Always keep 5 connections
                                     max=50,  # Scale up to 50 under load
                                     increment=5,  # Add 5 at a time
                                     timeout=300,  # 5 minute session timeout
                                     waitTimeout=30)  # Wait up to 30s for connection  # fmt: skip
    db.keep(small_pool, large_pool, web_pool)

    assert (small_pool.opened, large_pool.opened, web_pool.opened) == (2, 10, 5)
    assert (web_pool.timeout, web_pool.wait_timeout) == (300, 30)  # ms, as cx_Oracle


def error_handling_example(pool: cx_Oracle.SessionPool) -> None:
    try:
        conn = pool.acquire()
    except cx_Oracle.DatabaseError as e:
        (error_obj,) = e.args
        if error_obj.code == 24496:  # Pool exhausted
            print("Connection pool exhausted")
        elif error_obj.code == 24457:  # Pool closed
            print("Connection pool has been closed")
        else:
            print(f"Database error: {error_obj.message}")

    # Always release connections, even on error
    conn = None
    try:
        conn = pool.acquire()
        # Use connection...
    except Exception as e:
        print(f"Error: {e}")
    finally:
        if conn:
            pool.release(conn)


def test_error_handling_example_takes_the_branch_of_each_situation(
    db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    pool = cx_Oracle.SessionPool("user", "pass", db.dsn, 1, 2, 1)
    db.keep(pool)

    # A session free: no branch at all. The seed's first acquire is never released: its
    # connection, dropped, goes back to the pool (cx_Oracle releases it on collection too).
    error_handling_example(pool)
    assert lines(capsys) == []
    eventually(lambda: pool.busy == 0, "the dropped connection came back")

    # NOWAIT (the default) with every session busy: ORA-24418, "Cannot open further
    # sessions", so the generic branch, whose message says so.
    held = [pool.acquire(), pool.acquire()]
    error_handling_example(pool)
    out = lines(capsys)
    assert out[0] == "Database error: ORA-24418: Cannot open further sessions.", out
    assert "Error: ORA-24418: Cannot open further sessions." in out, out

    # TIMEDWAIT timing out with every session busy: ORA-24496, the "exhausted" branch.
    pool.getmode = cx_Oracle.SPOOL_ATTRVAL_TIMEDWAIT
    pool.wait_timeout = 100
    error_handling_example(pool)
    out = lines(capsys)
    assert out[0] == "Connection pool exhausted", out
    assert out[1].startswith("Error: ORA-24496: OCISessionGet() timed out waiting for a free")

    # A closed pool: DPI-1010 "not connected" (cx_Oracle's code; ORA-24457 is a timeout,
    # whatever the seed's comment says), so the generic branch.
    for conn in held:
        conn.close()
    pool.close()
    error_handling_example(pool)
    assert lines(capsys) == [
        "Database error: DPI-1010: not connected",
        "Error: DPI-1010: not connected",
    ]


def test_error_handling_example_when_the_database_is_unreachable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Nothing listens on port 1: the driver's connect error, translated, in the generic branch.
    pool = cx_Oracle.SessionPool(None, None, "postgresql://127.0.0.1:1/test", 0, 2, 1)
    try:
        error_handling_example(pool)
        out = lines(capsys)
        assert out[0].startswith("Database error: connection failed"), out
        assert any(line.startswith("Error: connection failed") for line in out), out
    finally:
        pool.close(force=True)


def test_pool_cleanup_example(db: Database) -> None:
    DSN = db.dsn
    try:
        # Use pool for application lifetime
        pool = cx_Oracle.SessionPool("user", "pass", DSN, 5, 50, 5)

        # Application logic using pool...
        conn = pool.acquire()
        assert pool.opened == 5

    finally:
        # Clean shutdown
        if pool:
            pool.close(force=True)  # Close all connections

    assert pool.sessionpool.closed
    eventually(lambda: pool.sessionpool.opened == 0, "every session closed")
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        conn.cursor()  # force-closed with its pool: cx_Oracle's DPI-1010
    assert caught.value.args[0].full_code == "DPI-1010"
