"""The PostgreSQL adapters (psycopg 3 and psycopg2) against the real server at 127.0.0.1:5432.

What a second borrower inherits from the first (full reset, purity="new", and what the default
"rollback" reset leaves), disconnect classification and dropping, time-bounded liveness checks
against a hung peer (through tests/drivers/proxy.py), reset failures, unix-socket URLs.

Every "fresh" reference is measured on a brand-new connection opened directly with the driver,
never hard-coded (a login role may carry its own defaults, see reliability.md 2.1).
These tests need the server: when it is down they fail, they do not skip.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import psycopg.rows
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import pytest

import sessionpool
from sessionpool import Pool
from sessionpool.factory import connector_for
from tests.drivers.proxy import Proxy

DRIVERS = ("psycopg", "psycopg2")
URLS = {
    "psycopg": "postgresql+psycopg://127.0.0.1/test",
    "psycopg2": "postgresql+psycopg2://127.0.0.1/test",
}
HOST, PORT, DBNAME = "127.0.0.1", 5432, "test"
#: Time limit under test, and the margin allowed on top of it (thread wake-ups, CI noise).
LIMIT, MARGIN = 0.5, 0.5

# libpq PQtransactionStatus values (both drivers report them as ints).
_STATUS_NAMES = {0: "idle", 1: "active", 2: "intrans", 3: "inerror", 4: "unknown"}

# One round trip reads every piece of server-side session state a borrower can leave behind.
_FINGERPRINT_SQL = """
SELECT current_user::text AS current_user_,
       session_user::text AS session_user_,
       current_setting('search_path') AS search_path,
       current_setting('statement_timeout') AS statement_timeout,
       current_setting('lock_timeout') AS lock_timeout,
       current_setting('idle_in_transaction_session_timeout')
         AS idle_in_transaction_session_timeout,
       current_setting('TimeZone') AS timezone,
       current_setting('DateStyle') AS datestyle,
       current_setting('IntervalStyle') AS intervalstyle,
       current_setting('application_name') AS application_name,
       current_setting('work_mem') AS work_mem,
       current_setting('row_security') AS row_security,
       current_setting('default_transaction_isolation') AS default_transaction_isolation,
       current_setting('default_transaction_read_only') AS default_transaction_read_only,
       current_setting('default_transaction_deferrable') AS default_transaction_deferrable,
       current_setting('transaction_isolation') AS transaction_isolation,
       current_setting('transaction_read_only') AS transaction_read_only,
       -- A custom placeholder GUC stays *defined* after RESET ALL / DISCARD ALL, with the
       -- value '' (reliability.md 2.1), while on a fresh connection it is undefined (NULL
       -- with missing_ok). Both mean "no tenant": compare them as ''.
       coalesce(current_setting('app.tenant_id', true), '') AS tenant_id,
       (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema())::int
         AS temp_objects,
       (SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_prepared_statements)
         AS prepared_statements,
       (SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM pg_cursors) AS cursors,
       (SELECT coalesce(string_agg(c, ',' ORDER BY c), '') FROM pg_listening_channels() AS c)
         AS listening_channels,
       (SELECT count(*) FROM pg_locks
         WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int AS advisory_locks
"""
_FINGERPRINT_KEYS = (
    "current_user",
    "session_user",
    "search_path",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "TimeZone",
    "DateStyle",
    "IntervalStyle",
    "application_name",
    "work_mem",
    "row_security",
    "default_transaction_isolation",
    "default_transaction_read_only",
    "default_transaction_deferrable",
    "transaction_isolation",
    "transaction_read_only",
    "app.tenant_id",
    "temp_objects",
    "prepared_statements",
    "cursors",
    "listening_channels",
    "advisory_locks",
)
# Client-side attributes of the driver connection the next borrower would see.
_CLIENT_ATTRIBUTES = {
    "psycopg": (
        "autocommit",
        "isolation_level",
        "read_only",
        "deferrable",
        "prepare_threshold",
        "prepared_max",
        "row_factory",
        "cursor_factory",
        "server_cursor_factory",
    ),
    "psycopg2": ("autocommit", "isolation_level", "readonly", "deferrable", "cursor_factory"),
}


# -- helpers ------------------------------------------------------------------------------------


def raw_connect(driver: str) -> Any:
    """A brand-new connection opened directly with the driver, as an application would."""
    if driver == "psycopg":
        return psycopg.connect(host=HOST, port=PORT, dbname=DBNAME)
    return psycopg2.connect(host=HOST, port=PORT, dbname=DBNAME)


def as_tuple(row: Any) -> tuple[Any, ...]:
    """A row as a tuple, whatever row factory a previous borrower may have left."""
    if isinstance(row, dict):
        return tuple(row.values())
    return tuple(row)


def query_one(conn: Any, sql: str) -> tuple[Any, ...]:
    """Run ``sql`` on a driver connection or lease and return its first row."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return as_tuple(cursor.fetchone())
    finally:
        cursor.close()


def execute(conn: Any, *statements: str, commit: bool = True) -> None:
    """Run statements on a driver connection or lease, then commit unless told not to."""
    cursor = conn.cursor()
    try:
        for sql in statements:
            cursor.execute(sql)
    finally:
        cursor.close()
    if commit:
        conn.commit()


def backend_pid(conn: Any) -> int:
    """The server process id of the connection (a lease or a driver connection); leaves the
    transaction status as it found it when that was idle."""
    raw = conn.driver_connection if isinstance(conn, sessionpool.Lease) else conn
    idle = int(raw.info.transaction_status) == 0
    (pid,) = query_one(raw, "SELECT pg_backend_pid()")
    if idle:
        raw.rollback()
    return int(pid)


def _client_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value if not hasattr(value, "name") else f"{type(value).__name__}.{value.name}"
    return getattr(value, "__qualname__", None) or repr(value)


def queued_notifications(raw: Any, driver: str) -> list[str]:
    """Payloads of notifications waiting for this connection's reader (consumes them)."""
    if driver == "psycopg":
        return [n.payload for n in raw.notifies(timeout=0.05)]
    raw.poll()
    payloads = [n.payload for n in raw.notifies]
    del raw.notifies[:]
    return payloads


def fingerprint(conn: Any, driver: str) -> dict[str, Any]:
    """Every kind of session state a borrower could leave, server and client side.

    ``conn`` is a raw driver connection or a lease. The transaction status is read before the
    fingerprint's own query; that query's transaction is rolled back afterwards.
    """
    raw = conn.driver_connection if isinstance(conn, sessionpool.Lease) else conn
    state: dict[str, Any] = {
        "transaction_status": _STATUS_NAMES.get(int(raw.info.transaction_status), "?"),
        "queued_notifications": queued_notifications(raw, driver),
    }
    state.update(
        {f"client.{name}": _client_value(getattr(raw, name)) for name in _CLIENT_ATTRIBUTES[driver]}
    )
    if state["transaction_status"] == "inerror":
        raw.rollback()  # only to be able to read the rest; the status is recorded already
    state.update(zip(_FINGERPRINT_KEYS, query_one(raw, _FINGERPRINT_SQL), strict=True))
    raw.rollback()
    return state


def fresh_fingerprint(driver: str) -> dict[str, Any]:
    conn = raw_connect(driver)
    try:
        return fingerprint(conn, driver)
    finally:
        conn.close()


def differences(seen: dict[str, Any], fresh: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (fresh value, value seen)} for every key where they differ."""
    return {key: (fresh[key], seen.get(key)) for key in fresh if seen.get(key) != fresh[key]}


def terminate(admin: Any, pid: int) -> None:
    """Kill a backend from the admin connection and wait (up to 5 s) until it is gone."""
    (done,) = admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
    assert done, f"backend {pid} did not terminate"


def sqlstate(error: BaseException) -> str | None:
    return getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)


def make_pool(driver: str, **settings: Any) -> Pool:
    settings.setdefault("min_size", 1)
    settings.setdefault("max_size", 1)
    settings.setdefault("wait_timeout", 5.0)
    return sessionpool.create_pool(URLS[driver], **settings)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def admin() -> Iterator[psycopg.Connection[Any]]:
    """A separate autocommit connection to kill backends, NOTIFY, create roles."""
    conn = psycopg.connect(host=HOST, port=PORT, dbname=DBNAME, autocommit=True)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def role(admin: psycopg.Connection[Any]) -> Iterator[str]:
    """A throwaway role granted to the login user, dropped at the end."""
    name = f"sp_leak_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE ROLE "{name}" NOLOGIN')
    admin.execute(f'GRANT "{name}" TO CURRENT_USER')
    yield name
    admin.execute(f'DROP OWNED BY "{name}"')
    admin.execute(f'DROP ROLE "{name}"')


@dataclass
class Context:
    driver: str
    role: str
    admin: psycopg.Connection[Any]


# -- the kinds of state a borrower can leave ----------------------------------------------------

Dirty = Callable[[Any, Context], None]


def _sql(*statements: str) -> Dirty:
    def dirty(lease: Any, ctx: Context) -> None:
        execute(lease, *statements)

    return dirty


def _set_role(lease: Any, ctx: Context) -> None:
    execute(lease, f'SET ROLE "{ctx.role}"')


def _session_authorization(lease: Any, ctx: Context) -> None:
    execute(lease, f'SET SESSION AUTHORIZATION "{ctx.role}"')


def _advisory_lock(lease: Any, ctx: Context) -> None:
    key = uuid.uuid4().int % 2**62
    execute(lease, f"SELECT pg_advisory_lock({key})")


def _listen(lease: Any, ctx: Context) -> None:
    execute(lease, f"LISTEN sp_chan_{uuid.uuid4().hex[:12]}")


def _open_transaction(lease: Any, ctx: Context) -> None:
    execute(lease, "SELECT 1", commit=False)  # left open: status INTRANS
    assert lease.info.transaction_status == 2


def _failed_transaction(lease: Any, ctx: Context) -> None:
    with pytest.raises(Exception) as caught:
        execute(lease, "SELECT 1/0", commit=False)
    assert sqlstate(caught.value) == "22012"
    assert lease.info.transaction_status == 3  # INERROR


def _queued_notification(lease: Any, ctx: Context) -> None:
    """A LISTENs; a NOTIFY arrives and is read into the driver's queue; A never consumes it."""
    channel = f"sp_chan_{uuid.uuid4().hex[:12]}"
    execute(lease, f"LISTEN {channel}")
    ctx.admin.execute(f"NOTIFY {channel}, 'for-borrower-A'")
    raw = lease.driver_connection
    deadline = time.monotonic() + 3.0
    while True:
        if ctx.driver == "psycopg":
            # Received during a query, psycopg keeps it for a later notifies() call.
            execute(lease, "SELECT 1")
            queued = len(raw._notifies_backlog or ())
        else:
            raw.poll()
            queued = len(raw.notifies)
        if queued or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert queued == 1, "precondition: the notification should be queued client-side"


def _client_attribute(name: str, value: Callable[[], Any], then_query: bool = False) -> Dirty:
    def dirty(lease: Any, ctx: Context) -> None:
        setattr(lease, name, value())
        if then_query:
            execute(lease, "SELECT 1")

    return dirty


@dataclass(frozen=True)
class Kind:
    name: str
    dirty: Dirty
    drivers: tuple[str, ...] = DRIVERS


KINDS = [
    Kind("set_role", _set_role),
    Kind("session_authorization", _session_authorization),
    Kind("search_path", _sql("SET search_path TO pg_catalog")),
    Kind("statement_timeout", _sql("SET statement_timeout = 123456")),
    Kind("lock_timeout", _sql("SET lock_timeout = 4321")),
    Kind("idle_in_transaction_timeout", _sql("SET idle_in_transaction_session_timeout = 987654")),
    Kind("timezone", _sql("SET TIME ZONE 'Asia/Tokyo'")),
    Kind("datestyle", _sql("SET DateStyle = 'SQL, DMY'")),
    Kind("intervalstyle", _sql("SET IntervalStyle = 'sql_standard'")),
    Kind("application_name", _sql("SET application_name = 'borrower-A'")),
    Kind("work_mem", _sql("SET work_mem = '7777kB'")),
    Kind("row_security", _sql("SET row_security = off")),
    Kind("custom_guc", _sql("SELECT set_config('app.tenant_id', '42', false)")),
    Kind(
        "characteristics_serializable",
        _sql("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
    ),
    Kind("characteristics_read_only", _sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")),
    Kind(
        "characteristics_deferrable",
        _sql("SET SESSION CHARACTERISTICS AS TRANSACTION DEFERRABLE"),
    ),
    Kind("temp_table", _sql("CREATE TEMP TABLE sp_leak_tmp (x int)")),
    Kind("prepared_statement", _sql("PREPARE sp_leak_stmt AS SELECT 1")),
    Kind("cursor_with_hold", _sql("DECLARE sp_leak_cur CURSOR WITH HOLD FOR SELECT 1")),
    Kind("listen", _listen),
    Kind("advisory_lock", _advisory_lock),
    Kind("open_transaction", _open_transaction),
    Kind("failed_transaction", _failed_transaction),
    Kind("queued_notification", _queued_notification),
    # Client-side state of the driver connection.
    Kind("client_autocommit", _client_attribute("autocommit", lambda: True)),
    Kind("client_read_only", _client_attribute("read_only", lambda: True), ("psycopg",)),
    Kind("client_readonly", _client_attribute("readonly", lambda: True), ("psycopg2",)),
    Kind(
        "client_isolation_level",
        _client_attribute("isolation_level", lambda: psycopg.IsolationLevel.SERIALIZABLE),
        ("psycopg",),
    ),
    Kind(
        "client_isolation_level_pg2",
        _client_attribute(
            "isolation_level", lambda: psycopg2.extensions.ISOLATION_LEVEL_SERIALIZABLE
        ),
        ("psycopg2",),
    ),
    Kind("client_deferrable", _client_attribute("deferrable", lambda: True)),
    Kind(
        "client_prepare_threshold",
        _client_attribute("prepare_threshold", lambda: 0, then_query=True),
        ("psycopg",),
    ),
    Kind(
        "client_row_factory",
        _client_attribute("row_factory", lambda: psycopg.rows.dict_row),
        ("psycopg",),
    ),
    Kind(
        "client_cursor_factory",
        _client_attribute("cursor_factory", lambda: psycopg2.extras.DictCursor),
        ("psycopg2",),
    ),
]
KINDS_BY_NAME = {kind.name: kind for kind in KINDS}
MATRIX = [
    pytest.param(driver, kind.name, id=f"{driver}-{kind.name}")
    for driver in DRIVERS
    for kind in KINDS
    if driver in kind.drivers
]


def borrow_dirty_then_fingerprint(
    pool: Pool, driver: str, kind: str, ctx: Context, purity: str | None = None
) -> tuple[int, int, dict[str, Any]]:
    """Borrower A dirties one kind of state and releases; borrower B fingerprints the session.
    Returns (A's backend pid, B's backend pid, B's fingerprint)."""
    lease_a = pool.acquire()
    pid_a = backend_pid(lease_a)
    KINDS_BY_NAME[kind].dirty(lease_a, ctx)
    lease_a.release()
    lease_b = pool.acquire(purity=purity)
    try:
        seen = fingerprint(lease_b, driver)
        pid_b = backend_pid(lease_b)
    finally:
        lease_b.release()
    return pid_a, pid_b, seen


# -- 1. second-borrower leak matrix -------------------------------------------------------------


@pytest.mark.parametrize(("driver", "kind"), MATRIX)
def test_full_reset_leaves_nothing_to_second_borrower(
    driver: str, kind: str, admin: psycopg.Connection[Any], role: str
) -> None:
    fresh = fresh_fingerprint(driver)
    pool = make_pool(driver, reset_on_return="full")
    try:
        pid_a, pid_b, seen = borrow_dirty_then_fingerprint(
            pool, driver, kind, Context(driver, role, admin)
        )
    finally:
        pool.close()
    assert pid_b == pid_a, "B must get the same physical connection as A"
    assert differences(seen, fresh) == {}


@pytest.mark.parametrize(("driver", "kind"), MATRIX)
def test_purity_new_gives_fresh_session_under_default_reset(
    driver: str, kind: str, admin: psycopg.Connection[Any], role: str
) -> None:
    fresh = fresh_fingerprint(driver)
    pool = make_pool(driver)  # reset_on_return="rollback", the default
    try:
        pid_a, pid_b, seen = borrow_dirty_then_fingerprint(
            pool, driver, kind, Context(driver, role, admin), purity="new"
        )
    finally:
        pool.close()
    assert pid_b == pid_a, "the full reset runs in place for PostgreSQL: same backend"
    assert differences(seen, fresh) == {}


# -- 2. what the default reset leaves (documentation) --------------------------------------------


def test_default_reset_leaves_everything_but_the_transaction(
    driver: str, admin: psycopg.Connection[Any], role: str
) -> None:
    """reset_on_return="rollback" (the default) only ends the transaction: every other kind of
    state the first borrower set is seen by the second. True = B sees it (leaks)."""
    expected_leaks = {
        "set_role": True,
        "session_authorization": True,
        "search_path": True,
        "statement_timeout": True,
        "lock_timeout": True,
        "idle_in_transaction_timeout": True,
        "timezone": True,
        "datestyle": True,
        "intervalstyle": True,
        "application_name": True,
        "work_mem": True,
        "row_security": True,
        "custom_guc": True,
        "characteristics_serializable": True,
        "characteristics_read_only": True,
        "characteristics_deferrable": True,
        "temp_table": True,
        "prepared_statement": True,
        "cursor_with_hold": True,
        "listen": True,
        "advisory_lock": True,
        "open_transaction": False,  # rolled back: the only thing the default cleans
        "failed_transaction": False,  # likewise
        "queued_notification": True,
        "client_autocommit": True,
        "client_read_only": True,
        "client_readonly": True,
        "client_isolation_level": True,
        "client_isolation_level_pg2": True,
        "client_deferrable": True,
        "client_prepare_threshold": True,
        "client_row_factory": True,
        "client_cursor_factory": True,
    }
    assert set(expected_leaks) == set(KINDS_BY_NAME)
    fresh = fresh_fingerprint(driver)
    ctx = Context(driver, role, admin)
    observed: dict[str, bool] = {}
    for kind in KINDS:
        if driver not in kind.drivers:
            continue
        pool = make_pool(driver)
        try:
            pid_a, pid_b, seen = borrow_dirty_then_fingerprint(pool, driver, kind.name, ctx)
        finally:
            pool.close()
        assert pid_b == pid_a
        observed[kind.name] = bool(differences(seen, fresh))
    assert observed == {name: expected_leaks[name] for name in observed}


# -- 3. disconnects -----------------------------------------------------------------------------


def test_terminated_backend_is_a_disconnect_and_is_dropped(
    driver: str, admin: psycopg.Connection[Any]
) -> None:
    pool = make_pool(driver)
    try:
        before = pool.stats()
        classified: bool | None = None
        with pytest.raises(Exception) as caught, pool.acquire() as lease:
            pid = backend_pid(lease)
            terminate(admin, pid)
            try:
                execute(lease, "SELECT 1")
            except Exception as exc:
                classified = pool.is_disconnect(exc, lease)
                raise
        assert classified is True, f"not classed a disconnect: {caught.value!r}"
        after = pool.stats()
        assert after.connections_closed == before.connections_closed + 1, "not dropped"
        # Dropped: fewer open, unless the pool already opened the replacement for min_size.
        assert after.opened < before.opened or (
            after.connections_opened > before.connections_opened
        )
        with pool.acquire() as lease:
            assert backend_pid(lease) != pid
            assert query_one(lease, "SELECT 41 + 1") == (42,)
    finally:
        pool.close()


ORDINARY_ERRORS = {
    "syntax_error": (["SELEC 1"], "42601"),
    "division_by_zero": (["SELECT 1/0"], "22012"),
    "statement_timeout": (["SET LOCAL statement_timeout = 50", "SELECT pg_sleep(5)"], "57014"),
    "unique_violation": (
        [
            "CREATE TEMP TABLE sp_uniq (id int PRIMARY KEY)",
            "INSERT INTO sp_uniq VALUES (1)",
            "INSERT INTO sp_uniq VALUES (1)",
        ],
        "23505",
    ),
}


@pytest.mark.parametrize("error", sorted(ORDINARY_ERRORS))
def test_ordinary_sql_error_is_not_a_disconnect(driver: str, error: str) -> None:
    statements, expected_state = ORDINARY_ERRORS[error]
    pool = make_pool(driver)
    try:
        before = pool.stats()
        classified: bool | None = None
        with pytest.raises(Exception) as caught, pool.acquire() as lease:
            pid = backend_pid(lease)
            try:
                execute(lease, *statements, commit=False)
            except Exception as exc:
                classified = pool.is_disconnect(exc, lease)
                raise
        assert sqlstate(caught.value) == expected_state
        assert classified is False
        after = pool.stats()
        assert after.connections_closed == before.connections_closed, "dropped a live one"
        assert after.opened == before.opened == 1
        with pool.acquire() as lease:
            assert backend_pid(lease) == pid, "the connection should have been returned"
            assert query_one(lease, "SELECT 41 + 1") == (42,)
            assert lease.info.transaction_status != 3
    finally:
        pool.close()


def test_killed_idle_pooled_connection_fails_ping(
    driver: str, admin: psycopg.Connection[Any]
) -> None:
    pool = make_pool(driver)
    try:
        adapter = pool._connector.driver
        lease = pool.acquire()
        conn = lease.driver_connection
        pid = backend_pid(lease)
        lease.release()  # idle in the pool now
        terminate(admin, pid)
        with pytest.raises(Exception) as caught:
            adapter.ping(conn, 1.0)
        assert adapter.is_disconnect(caught.value, conn)
        assert adapter.is_closed(conn)
    finally:
        pool.close()


def test_is_closed_becomes_true_after_failed_query(
    driver: str, admin: psycopg.Connection[Any]
) -> None:
    connector = connector_for(URLS[driver])
    adapter = connector.driver
    conn = connector.connect()
    try:
        pid = backend_pid(conn)
        terminate(admin, pid)
        assert not adapter.is_closed(conn), "a local check cannot know yet"
        with pytest.raises(Exception) as caught:
            execute(conn, "SELECT 1")
        assert adapter.is_disconnect(caught.value, conn)
        assert adapter.is_disconnect(caught.value)  # by its codes/message alone too
        assert adapter.is_closed(conn)
    finally:
        conn.close()


# -- 4. liveness ------------------------------------------------------------------------------


@pytest.mark.parametrize("autocommit", [False, True])
def test_ping_live_connection_leaves_it_idle(driver: str, autocommit: bool) -> None:
    connector = connector_for(URLS[driver])
    adapter = connector.driver
    conn = connector.connect()
    try:
        conn.autocommit = autocommit
        adapter.ping(conn, 1.0)
        assert int(conn.info.transaction_status) == 0
        assert conn.autocommit is autocommit
        assert not adapter.is_closed(conn)
        assert not adapter.in_transaction(conn)
    finally:
        conn.close()


@pytest.fixture
def proxied(driver: str) -> Iterator[tuple[Proxy, Any, Any]]:
    """(proxy, adapter, connection through the proxy)."""
    with Proxy(HOST, PORT) as proxy:
        connector = connector_for(f"postgresql+{driver}://{HOST}:{proxy.port}/{DBNAME}")
        conn = connector.connect()
        try:
            assert query_one(conn, "SELECT 1") == (1,)
            conn.rollback()
            yield proxy, connector.driver, conn
        finally:
            proxy.resume()
            with contextlib.suppress(Exception):
                conn.close()


def assert_bounded(call: Callable[[], object], adapter: Any, conn: Any) -> None:
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        call()
    elapsed = time.monotonic() - started
    assert elapsed < LIMIT + MARGIN, f"took {elapsed:.2f} s against a {LIMIT} s limit"
    assert elapsed >= LIMIT * 0.8, f"gave up after {elapsed:.2f} s, before the limit"
    assert isinstance(caught.value, sessionpool.ConnectionDead) or adapter.is_disconnect(
        caught.value, conn
    ), repr(caught.value)


def test_proxy_blackhole_hangs_then_resume_delivers(proxied: tuple[Proxy, Any, Any]) -> None:
    """The fault injector itself: a blackhole is a hang, not a disconnect."""
    proxy, _adapter, conn = proxied
    result: list[tuple[Any, ...]] = []
    proxy.blackhole()
    worker = threading.Thread(target=lambda: result.append(query_one(conn, "SELECT 7")))
    worker.start()
    worker.join(0.3)
    assert worker.is_alive() and not result, "the query should hang while blackholed"
    proxy.resume()
    worker.join(5.0)
    assert result == [(7,)]


def test_ping_is_time_bounded_on_hung_peer(proxied: tuple[Proxy, Any, Any]) -> None:
    proxy, adapter, conn = proxied
    proxy.blackhole()
    assert_bounded(lambda: adapter.ping(conn, LIMIT), adapter, conn)


def test_end_transaction_is_time_bounded_on_hung_peer(proxied: tuple[Proxy, Any, Any]) -> None:
    proxy, adapter, conn = proxied
    execute(conn, "SELECT 1", commit=False)
    assert adapter.in_transaction(conn)
    proxy.blackhole()
    assert_bounded(lambda: adapter.end_transaction(conn, LIMIT), adapter, conn)


@pytest.mark.parametrize("in_transaction", [False, True])
def test_full_reset_is_time_bounded_on_hung_peer(
    proxied: tuple[Proxy, Any, Any], in_transaction: bool
) -> None:
    proxy, adapter, conn = proxied
    if in_transaction:
        execute(conn, "SELECT 1", commit=False)
    proxy.blackhole()
    assert_bounded(lambda: adapter.full_reset(conn, LIMIT), adapter, conn)


# -- 5. a reset that fails drops the connection ------------------------------------------------


@pytest.mark.parametrize(
    ("reset", "left"),
    [("full", "idle"), ("full", "in_transaction"), ("rollback", "in_transaction")],
)
def test_reset_failure_on_killed_connection_drops_it(
    driver: str, reset: str, left: str, admin: psycopg.Connection[Any]
) -> None:
    pool = make_pool(driver, reset_on_return=reset)
    try:
        before = pool.stats()
        lease = pool.acquire()
        pid = backend_pid(lease)
        if left == "in_transaction":
            execute(lease, "SELECT 1", commit=False)
        terminate(admin, pid)
        lease.release()  # no query after the kill; must not raise
        after = pool.stats()
        assert after.connections_closed == before.connections_closed + 1, "not dropped"
        assert after.busy == 0
        assert after.opened < before.opened or (
            after.connections_opened > before.connections_opened
        )
        with pool.acquire() as next_lease:
            assert backend_pid(next_lease) != pid
            assert query_one(next_lease, "SELECT 41 + 1") == (42,)
    finally:
        pool.close()


# -- 7. unix socket -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql:///test?host=/var/run/postgresql",
        "postgresql+psycopg://%2Fvar%2Frun%2Fpostgresql/test",
        "postgresql+psycopg2:///test?host=/var/run/postgresql",
    ],
)
def test_unix_socket_url(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=1, wait_timeout=5.0)
    try:
        with pool.acquire() as lease:
            over_socket, database = query_one(
                lease, "SELECT inet_server_addr() IS NULL, current_database()"
            )
            assert over_socket is True, "expected a unix-socket session"
            assert database == "test"
    finally:
        pool.close()
