"""The MySQL/MariaDB adapters (PyMySQL, mysqlclient) against the real MariaDB server.

Needs MariaDB at 127.0.0.1:3306 (root, no password, database ``test``) and its socket at
/run/mysqld/mysqld.sock; a server that is down makes these tests fail, never skip.

What is checked:
* the second-borrower leak matrix: borrower A dirties one kind of session state and gives the
  connection back; borrower B must see what a brand-new connection sees (full reset, and the
  default reset with ``purity="new"``);
* what the default reset ("rollback") leaves behind, kind by kind, as documentation;
* disconnect classification (KILL, KILL QUERY, idle timeout, SQL errors, constructed errors);
* time-bounded liveness calls against a live, a killed and a hung (blackholed) server;
* the unix-socket URL and the ``mariadb://`` alias.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import MySQLdb
import pymysql
import pytest

import sessionpool
from sessionpool import Pool
from sessionpool.drivers.mysql import MySQLdbDriver, PyMySQLDriver, is_mysql_disconnect
from sessionpool.factory import connector_for
from tests.drivers.proxy import Proxy

HOST = "127.0.0.1"
PORT = 3306
SOCKET = "/run/mysqld/mysqld.sock"
#: How long a check may wait on a lock that a leak would keep held.
LOCK_WAIT = 2
#: Slack allowed beyond a time limit given to the driver adapter.
MARGIN = 1.0


# -- drivers under test ---------------------------------------------------------------------


@dataclass(frozen=True)
class Flavor:
    """One driver: its URL, its module and how its full reset works."""

    name: str
    scheme: str
    module: ModuleType
    #: The full reset reopens (a new CONNECTION_ID) instead of resetting in place.
    reopens: bool

    @property
    def url(self) -> str:
        return f"{self.scheme}://root@{HOST}/test"

    def connect(self, **kwargs: Any) -> Any:
        """A brand-new connection opened directly with the driver, as the pool opens it."""
        arguments: dict[str, Any] = {"host": HOST, "user": "root", "database": "test"}
        arguments.update(kwargs)
        return self.module.connect(**arguments)


FLAVORS = {
    "pymysql": Flavor("pymysql", "mysql+pymysql", pymysql, reopens=False),
    "mysqlclient": Flavor("mysqlclient", "mysql+mysqldb", MySQLdb, reopens=True),
}


@pytest.fixture(params=sorted(FLAVORS))
def flavor(request: pytest.FixtureRequest) -> Flavor:
    return FLAVORS[request.param]


# -- SQL helpers ----------------------------------------------------------------------------


def run(conn: Any, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
    """Execute on a driver connection or a lease; every row of the result (none: [])."""
    with conn.cursor() as cursor:
        cursor.execute(sql, args)
        return [tuple(row) for row in (cursor.fetchall() or ())]


def one(conn: Any, sql: str, args: Any = None) -> Any:
    """The single value a query returns."""
    rows = run(conn, sql, args)
    assert len(rows) == 1, f"{sql!r} returned {rows!r}"
    return rows[0][0]


def outcome(conn: Any, sql: str, args: Any = None) -> object:
    """The rows, or the server's error code when the statement fails."""
    try:
        return run(conn, sql, args)
    except (pymysql.MySQLError, MySQLdb.MySQLError) as exc:
        return ("error", exc.args[0])


def connection_id(conn: Any) -> int:
    return int(one(conn, "SELECT CONNECTION_ID()"))


def poll(check: Callable[[], object], want: object, timeout: float = LOCK_WAIT) -> object:
    """Re-run check until it returns want (the server may still be closing a dropped
    session); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value == want or time.monotonic() >= deadline:
            return value
        time.sleep(0.05)


# -- server resources -----------------------------------------------------------------------


@dataclass
class Server:
    """Throwaway objects on the server, shared by this module's tests, dropped at the end."""

    admin: Any  # PyMySQL connection, autocommit, short lock waits
    table: str  # (id auto_increment, tag): rows are told apart by tag
    other_table: str
    database: str
    role: str
    sequence: str


@dataclass
class Env:
    """A server plus names unique to one test."""

    server: Server
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    @property
    def admin(self) -> Any:
        return self.server.admin

    @property
    def table(self) -> str:
        return self.server.table

    @property
    def lock_name(self) -> str:
        return f"sp_lock_{self.token}"

    @property
    def xid(self) -> str:
        return f"sp_xa_{self.token}"

    @property
    def temp_table(self) -> str:
        return f"sp_tmp_{self.token}"


def admin_connection() -> Any:
    conn = pymysql.connect(host=HOST, user="root", database="test", autocommit=True)
    run(conn, f"SET SESSION lock_wait_timeout = {LOCK_WAIT}")
    run(conn, f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT}")
    return conn


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    suffix = uuid.uuid4().hex[:12]
    admin = admin_connection()
    made = Server(
        admin=admin,
        table=f"sp_t_{suffix}",
        other_table=f"sp_o_{suffix}",
        database=f"sp_db_{suffix}",
        role=f"sp_role_{suffix}",
        sequence=f"sp_seq_{suffix}",
    )
    try:
        run(
            admin,
            f"CREATE TABLE {made.table} (id INT AUTO_INCREMENT PRIMARY KEY, "
            "tag VARCHAR(64) NOT NULL) ENGINE=InnoDB",
        )
        run(admin, f"CREATE TABLE {made.other_table} (i INT) ENGINE=InnoDB")
        run(admin, f"CREATE DATABASE {made.database}")
        # MariaDB grants a new role to its creator (root@127.0.0.1, the CURRENT_USER() of
        # every TCP connection here) WITH ADMIN OPTION, so SET ROLE works at once.
        run(admin, f"CREATE ROLE {made.role}")
        run(admin, f"CREATE SEQUENCE {made.sequence}")
        yield made
    finally:
        admin.close()
        cleanup = admin_connection()
        try:
            run(cleanup, f"DROP TABLE IF EXISTS {made.table}, {made.other_table}")
            run(cleanup, f"DROP SEQUENCE IF EXISTS {made.sequence}")
            run(cleanup, f"DROP DATABASE IF EXISTS {made.database}")
            run(cleanup, f"DROP ROLE IF EXISTS {made.role}")
        finally:
            cleanup.close()


@pytest.fixture
def env(server: Server) -> Env:
    return Env(server)


@pytest.fixture
def make_pool() -> Iterator[Callable[..., Pool]]:
    pools: list[Pool] = []

    def make(url: str, **settings: Any) -> Pool:
        pool = sessionpool.create_pool(url, **settings)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close(force=True)


# -- what a session looks like ----------------------------------------------------------------

_FINGERPRINT = {
    "@x": "@x",
    "sql_mode": "@@session.sql_mode",
    "time_zone": "@@session.time_zone",
    "character_set_client": "@@session.character_set_client",
    "character_set_connection": "@@session.character_set_connection",
    "character_set_results": "@@session.character_set_results",
    "collation_connection": "@@session.collation_connection",
    "max_statement_time": "@@session.max_statement_time",
    "foreign_key_checks": "@@session.foreign_key_checks",
    "unique_checks": "@@session.unique_checks",
    "wait_timeout": "@@session.wait_timeout",
    "group_concat_max_len": "@@session.group_concat_max_len",
    "sql_select_limit": "@@session.sql_select_limit",
    "autocommit": "@@session.autocommit",
    "tx_isolation": "@@session.tx_isolation",
    "tx_read_only": "@@session.tx_read_only",
    "database": "DATABASE()",
    "role": "CURRENT_ROLE()",
    "last_insert_id": "LAST_INSERT_ID()",
}


def fingerprint(conn: Any) -> dict[str, object]:
    """Every session setting and variable a borrower can change, as the session reports it,
    plus the driver's own view of autocommit (it must agree with the server's)."""
    row = run(conn, "SELECT " + ", ".join(_FINGERPRINT.values()))[0]
    seen: dict[str, object] = dict(zip(_FINGERPRINT, row, strict=True))
    # transaction_isolation exists from MariaDB 11.1 on; 10.11 knows only tx_isolation.
    seen["transaction_isolation"] = outcome(conn, "SELECT @@session.transaction_isolation")
    seen["client autocommit"] = bool(conn.get_autocommit())
    return seen


@dataclass(frozen=True)
class Kind:
    """One kind of session state: how borrower A leaves it, how B and others observe it."""

    name: str
    dirty: Callable[[Any, Env], None]
    #: What the borrower's own session shows; compared with a brand-new connection's.
    probe: Callable[[Any, Env], object]
    #: What another session shows (locks held, rows committed); None: nothing to see.
    outside: Callable[[Env], object] | None = None

    def __str__(self) -> str:
        return self.name


def _set(sql: str) -> Callable[[Any, Env], None]:
    def dirty(conn: Any, env: Env) -> None:
        run(conn, sql)

    return dirty


def _value(expression: str) -> Callable[[Any, Env], object]:
    def probe(conn: Any, env: Env) -> object:
        return one(conn, f"SELECT {expression}")

    return probe


def _charset_probe(conn: Any, env: Env) -> object:
    # Three bytes of UTF-8 make one character only when the session reads UTF-8.
    return (
        run(
            conn,
            "SELECT @@character_set_client, @@character_set_connection, "
            "@@character_set_results, @@collation_connection",
        ),
        one(conn, "SELECT CHAR_LENGTH(%s)", ("\u20ac",)),
    )


def _autocommit_probe(conn: Any, env: Env) -> object:
    """Server and driver views of autocommit, and what a rolled-back insert leaves."""
    tag = f"{env.token}-ac"
    run(conn, f"INSERT INTO {env.table} (tag) VALUES (%s)", (tag,))
    conn.rollback()
    kept = one(env.admin, f"SELECT COUNT(*) FROM {env.table} WHERE tag = %s", (tag,))
    state = one(conn, "SELECT @@autocommit")
    return {"server": state, "driver": bool(conn.get_autocommit()), "kept": kept}


def _temp_table_dirty(conn: Any, env: Env) -> None:
    run(conn, f"CREATE TEMPORARY TABLE {env.temp_table} (i INT)")


def _temp_table_probe(conn: Any, env: Env) -> object:
    return outcome(conn, f"SELECT COUNT(*) FROM {env.temp_table}")


def _named_lock_dirty(conn: Any, env: Env) -> None:
    assert one(conn, "SELECT GET_LOCK(%s, 0)", (env.lock_name,)) == 1


def _named_lock_probe(conn: Any, env: Env) -> object:
    return one(conn, "SELECT IS_USED_LOCK(%s)", (env.lock_name,))


def _named_lock_outside(env: Env) -> object:
    return poll(lambda: one(env.admin, "SELECT IS_FREE_LOCK(%s)", (env.lock_name,)), 1)


def _table_lock_probe(conn: Any, env: Env) -> object:
    # Under LOCK TABLES a session may touch no other table (error 1100).
    return outcome(conn, f"SELECT COUNT(*) FROM {env.server.other_table}")


def _table_lock_outside(env: Env) -> object:
    # Waits up to lock_wait_timeout, then fails with 1205, if the write lock is still held.
    return outcome(env.admin, f"INSERT INTO {env.table} (tag) VALUES (%s)", (f"{env.token}-w",))


def _use_dirty(conn: Any, env: Env) -> None:
    run(conn, f"USE {env.server.database}")


def _role_dirty(conn: Any, env: Env) -> None:
    run(conn, f"SET ROLE {env.server.role}")
    assert one(conn, "SELECT CURRENT_ROLE()") == env.server.role


def _insert_dirty(conn: Any, env: Env) -> None:
    # The pool's connections have autocommit off: this opens a transaction left open.
    run(conn, f"INSERT INTO {env.table} (tag) VALUES (%s)", (env.token,))


def _rows_probe(conn: Any, env: Env) -> object:
    return one(conn, f"SELECT COUNT(*) FROM {env.table} WHERE tag = %s", (env.token,))


def _rows_outside(env: Env) -> object:
    return one(env.admin, f"SELECT COUNT(*) FROM {env.table} WHERE tag = %s", (env.token,))


def _xa_dirty(conn: Any, env: Env) -> None:
    run(conn, f"XA START '{env.xid}'")
    _insert_dirty(conn, env)


def _xa_probe(conn: Any, env: Env) -> object:
    # In an XA transaction left ACTIVE, START TRANSACTION fails with XAER_RMFAIL (1399).
    began = outcome(conn, "START TRANSACTION")
    outcome(conn, "ROLLBACK")
    recovered = [row for row in run(conn, "XA RECOVER") if env.xid in str(row[3])]
    return {"begin": began, "recovered": recovered, "rows": _rows_probe(conn, env)}


def _xa_outside(env: Env) -> object:
    recovered = [row for row in run(env.admin, "XA RECOVER") if env.xid in str(row[3])]
    return {"recovered": recovered, "rows": _rows_outside(env)}


def _last_insert_dirty(conn: Any, env: Env) -> None:
    _insert_dirty(conn, env)
    assert one(conn, "SELECT LAST_INSERT_ID()") > 0


def _sequence_dirty(conn: Any, env: Env) -> None:
    run(conn, f"SELECT NEXTVAL({env.server.sequence})")


def _sequence_probe(conn: Any, env: Env) -> object:
    return one(conn, f"SELECT LASTVAL({env.server.sequence})")


KINDS = [
    Kind("user_variable", _set("SET @x = 42"), _value("@x")),
    Kind(
        "sql_mode",
        _set("SET SESSION sql_mode = 'ANSI_QUOTES,NO_BACKSLASH_ESCAPES'"),
        _value("@@session.sql_mode"),
    ),
    Kind("time_zone", _set("SET time_zone = '+05:00'"), _value("@@session.time_zone")),
    Kind("set_names_latin1", _set("SET NAMES latin1"), _charset_probe),
    Kind(
        "max_statement_time",
        _set("SET SESSION max_statement_time = 0.25"),
        _value("@@session.max_statement_time"),
    ),
    Kind(
        "foreign_key_checks",
        _set("SET SESSION foreign_key_checks = 0"),
        _value("@@session.foreign_key_checks"),
    ),
    Kind("unique_checks", _set("SET SESSION unique_checks = 0"), _value("@@unique_checks")),
    Kind("wait_timeout", _set("SET SESSION wait_timeout = 3333"), _value("@@wait_timeout")),
    Kind(
        "group_concat_max_len",
        _set("SET SESSION group_concat_max_len = 7"),
        _value("@@session.group_concat_max_len"),
    ),
    Kind(
        "sql_select_limit", _set("SET SESSION sql_select_limit = 1"), _value("@@sql_select_limit")
    ),
    Kind("autocommit_on", _set("SET autocommit = 1"), _autocommit_probe),
    Kind(
        "isolation_level",
        _set("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
        _value("@@session.tx_isolation"),
    ),
    Kind("read_only", _set("SET SESSION TRANSACTION READ ONLY"), _value("@@session.tx_read_only")),
    Kind("temporary_table", _temp_table_dirty, _temp_table_probe),
    Kind(
        "prepared_statement",
        _set("PREPARE stmt FROM 'SELECT 1'"),
        lambda conn, env: outcome(conn, "EXECUTE stmt"),
    ),
    Kind("named_lock", _named_lock_dirty, _named_lock_probe, _named_lock_outside),
    Kind(
        "table_lock",
        lambda conn, env: run(conn, f"LOCK TABLES {env.table} WRITE"),
        _table_lock_probe,
        _table_lock_outside,
    ),
    Kind(
        "handler",
        lambda conn, env: run(conn, f"HANDLER {env.table} OPEN"),
        lambda conn, env: outcome(conn, f"HANDLER {env.table} READ FIRST"),
    ),
    Kind("use_database", _use_dirty, _value("DATABASE()")),
    Kind("role", _role_dirty, _value("CURRENT_ROLE()")),
    Kind("open_transaction", _insert_dirty, _rows_probe, _rows_outside),
    Kind("xa_transaction", _xa_dirty, _xa_probe, _xa_outside),
    Kind("last_insert_id", _last_insert_dirty, _value("LAST_INSERT_ID()")),
    Kind("sequence_lastval", _sequence_dirty, _sequence_probe),
]
KIND_NAMES = [kind.name for kind in KINDS]


@dataclass
class Observation:
    """Borrower B's view next to a brand-new connection's."""

    kind: Kind
    a_id: int
    b_id: int
    fresh_fingerprint: dict[str, object]
    b_fingerprint: dict[str, object]
    fresh_probe: object
    b_probe: object
    fresh_outside: object
    after_outside: object
    b_driver_autocommit: bool | None = None

    @property
    def leaked(self) -> bool:
        """Whether B's own probe or another session's view differs from a fresh session."""
        return self.b_probe != self.fresh_probe or self.after_outside != self.fresh_outside

    def differences(self) -> dict[str, tuple[object, object]]:
        """(fresh, B) for everything B sees differently; empty when nothing leaked."""
        found = {
            key: (value, self.b_fingerprint.get(key))
            for key, value in self.fresh_fingerprint.items()
            if self.b_fingerprint.get(key) != value
        }
        if self.b_probe != self.fresh_probe:
            found[f"probe:{self.kind}"] = (self.fresh_probe, self.b_probe)
        if self.after_outside != self.fresh_outside:
            found[f"outside:{self.kind}"] = (self.fresh_outside, self.after_outside)
        return found


def second_borrower(
    flavor: Flavor, env: Env, kind: Kind, pool: Pool, purity: str | None = None
) -> Observation:
    """A dirties one kind of state and releases; B borrows (the only connection) and looks."""
    fresh = flavor.connect()
    try:
        fresh_fingerprint = fingerprint(fresh)
        fresh_probe = kind.probe(fresh, env)
    finally:
        fresh.close()
    fresh_outside = None if kind.outside is None else kind.outside(env)

    with pool.acquire(timeout=5.0) as a:
        a_id = connection_id(a)
        kind.dirty(a, env)
    with pool.acquire(timeout=5.0, purity=purity) as b:
        b_id = connection_id(b)
        b_fingerprint = fingerprint(b)
        b_probe = kind.probe(b, env)
        driver_conn = b.driver_connection
        b_driver_autocommit = (
            bool(driver_conn.autocommit_mode)
            if isinstance(driver_conn, pymysql.Connection)
            else None
        )
        after_outside = None if kind.outside is None else kind.outside(env)
    return Observation(
        kind,
        a_id,
        b_id,
        fresh_fingerprint,
        b_fingerprint,
        fresh_probe,
        b_probe,
        fresh_outside,
        after_outside,
        b_driver_autocommit,
    )


# -- 1. second-borrower leak matrix ----------------------------------------------------------

RESETS = {
    # reset on return, purity of B's acquire
    "full_reset": ("full", None),
    "default_reset_purity_new": ("rollback", "new"),
}


@pytest.mark.parametrize("reset", sorted(RESETS))
@pytest.mark.parametrize("kind", KINDS, ids=KIND_NAMES)
def test_second_borrower_sees_a_fresh_session(
    flavor: Flavor, env: Env, kind: Kind, reset: str, make_pool: Callable[..., Pool]
) -> None:
    reset_on_return, purity = RESETS[reset]
    pool = make_pool(flavor.url, min_size=1, max_size=1, reset_on_return=reset_on_return)
    seen = second_borrower(flavor, env, kind, pool, purity)

    assert seen.differences() == {}, f"{kind} leaked from borrower A to borrower B"
    assert seen.b_fingerprint["client autocommit"] == bool(seen.b_fingerprint["autocommit"])
    if seen.b_driver_autocommit is not None:  # PyMySQL's cached mode agrees with the server
        assert seen.b_driver_autocommit == bool(seen.b_fingerprint["autocommit"])
    if flavor.reopens:
        # mysqlclient has no reset command: its full reset is a new connection.
        assert seen.b_id != seen.a_id
    elif reset_on_return == "rollback" and kind.name == "xa_transaction":
        # ROLLBACK is refused inside an XA transaction (1399): the default reset on return
        # failed, so the pool dropped that connection and B got a new one.
        assert seen.b_id != seen.a_id
    else:
        assert seen.b_id == seen.a_id, "PyMySQL's full reset must reset in place"


def test_full_reset_restores_connect_arguments(
    flavor: Flavor, env: Env, make_pool: Callable[..., Pool]
) -> None:
    """After a full reset B sees the session the pool's own connect arguments made (charset,
    sql_mode, init_command, autocommit on), not the server's global defaults."""
    arguments = {
        "charset": "latin1",
        "sql_mode": "ANSI_QUOTES",
        "init_command": "SET time_zone = '+03:00'",
        "autocommit": True,
    }
    pool = make_pool(
        flavor.url, min_size=1, max_size=1, reset_on_return="full", connect_args=arguments
    )
    fresh = flavor.connect(**arguments)
    try:
        expected = fingerprint(fresh)
    finally:
        fresh.close()
    assert expected["character_set_client"] == "latin1"
    assert expected["time_zone"] == "+03:00"
    assert expected["autocommit"] == 1

    with pool.acquire() as a:
        a_id = connection_id(a)
        with a.cursor() as cursor:
            for sql in (
                "SET NAMES utf8mb4",
                "SET sql_mode = 'TRADITIONAL'",
                "SET time_zone = '+00:00'",
                "SET autocommit = 0",
            ):
                cursor.execute(sql)
    with pool.acquire() as b:
        assert fingerprint(b) == expected
        assert (connection_id(b) != a_id) is flavor.reopens


def test_full_reset_of_a_connection_opened_without_database(
    flavor: Flavor, env: Env, make_pool: Callable[..., Pool]
) -> None:
    """Nothing can unselect a database: the reset must reopen rather than leave B in A's."""
    pool = make_pool(
        f"{flavor.scheme}://root@{HOST}/", min_size=1, max_size=1, reset_on_return="full"
    )
    with pool.acquire() as a:
        assert one(a, "SELECT DATABASE()") is None
        run(a, "USE test")
    with pool.acquire() as b:
        assert one(b, "SELECT DATABASE()") is None


# -- 2. what the default reset leaves -----------------------------------------------------------

#: The default reset ("rollback") only ends the transaction: every other kind of state goes
#: to the next borrower. An XA transaction does not (ROLLBACK is refused while it is ACTIVE,
#: the reset fails and the pool drops the connection).
DEFAULT_RESET_LEAKS = {name: True for name in KIND_NAMES} | {
    "open_transaction": False,
    "xa_transaction": False,
}


def test_default_reset_leaves_session_state(
    flavor: Flavor, env: Env, make_pool: Callable[..., Pool]
) -> None:
    leaked: dict[str, bool] = {}
    same_session: dict[str, bool] = {}
    for kind in KINDS:
        pool = make_pool(flavor.url, min_size=1, max_size=1, reset_on_return="rollback")
        seen = second_borrower(flavor, env, kind, pool)
        leaked[kind.name] = seen.leaked
        same_session[kind.name] = seen.a_id == seen.b_id
        pool.close(force=True)
    assert leaked == DEFAULT_RESET_LEAKS
    assert same_session == {name: name != "xa_transaction" for name in KIND_NAMES}


# -- 3. disconnects ------------------------------------------------------------------------------


def test_killed_connection_is_a_disconnect_and_is_dropped(
    flavor: Flavor, env: Env, make_pool: Callable[..., Pool]
) -> None:
    pool = make_pool(flavor.url, min_size=0, max_size=1)
    classified: list[bool] = []
    with (
        pytest.raises((pymysql.MySQLError, MySQLdb.MySQLError)) as info,
        pool.acquire() as lease,
    ):
        victim = connection_id(lease)
        assert pool.opened == 1
        run(env.admin, f"KILL {victim}")
        try:
            run(lease, "SELECT 1")
        except Exception as exc:
            classified.append(pool.is_disconnect(exc, lease))
            raise
    assert classified == [True], f"{info.value!r} not classed as a disconnect"
    assert pool.opened == 0, "a dead connection went back to the pool"
    with pool.acquire() as lease:
        assert connection_id(lease) != victim
        assert one(lease, "SELECT 1") == 1


def test_kill_query_is_not_a_disconnect(
    flavor: Flavor, env: Env, make_pool: Callable[..., Pool]
) -> None:
    pool = make_pool(flavor.url, min_size=1, max_size=1)
    with pool.acquire() as lease:
        session = connection_id(lease)

        def interrupt() -> None:
            time.sleep(0.5)
            killer = admin_connection()
            try:
                run(killer, f"KILL QUERY {session}")
            finally:
                killer.close()

        thread = threading.Thread(target=interrupt, daemon=True)
        thread.start()
        started = time.monotonic()
        with pytest.raises((pymysql.MySQLError, MySQLdb.MySQLError)) as info:
            run(lease, "SELECT SLEEP(5)")
        thread.join(5.0)
        assert time.monotonic() - started < 4.0
        assert info.value.args[0] == 1317
        assert not pool.is_disconnect(info.value, lease)
        assert connection_id(lease) == session, "the session must survive KILL QUERY"

    with pytest.raises((pymysql.MySQLError, MySQLdb.MySQLError)), pool.acquire() as lease:
        assert connection_id(lease) == session
        raise info.value  # leaving with a 1317 must give the connection back
    assert pool.opened == 1
    with pool.acquire() as lease:
        assert connection_id(lease) == session


def test_sql_errors_are_not_disconnects(
    flavor: Flavor, env: Env, make_pool: Callable[..., Pool]
) -> None:
    pool = make_pool(flavor.url, min_size=1, max_size=1)
    with pool.acquire() as lease:
        session = connection_id(lease)
    for sql, args, code in [
        ("SELEKT 1", None, 1064),
        (f"INSERT INTO {env.table} (id, tag) VALUES (1, %s), (1, %s)", ("d", "d"), 1062),
    ]:
        with (
            pytest.raises((pymysql.MySQLError, MySQLdb.MySQLError)) as info,
            pool.acquire() as lease,
        ):
            try:
                run(lease, sql, args)
            except Exception as exc:
                assert not pool.is_disconnect(exc, lease)
                raise
        assert info.value.args[0] == code
        assert pool.opened == 1, f"error {code} dropped the connection"
        with pool.acquire() as lease:
            assert connection_id(lease) == session
            assert one(lease, "SELECT 1") == 1


def test_idle_timeout_kill_is_a_disconnect(
    flavor: Flavor, env: Env, make_pool: Callable[..., Pool]
) -> None:
    """MariaDB closes a session idle for longer than its wait_timeout."""
    pool = make_pool(flavor.url, min_size=0, max_size=1)
    classified: list[bool] = []
    with pytest.raises((pymysql.MySQLError, MySQLdb.MySQLError)), pool.acquire() as lease:
        run(lease, "SET SESSION wait_timeout = 1")
        time.sleep(2.0)
        try:
            run(lease, "SELECT 1")
        except Exception as exc:
            classified.append(pool.is_disconnect(exc, lease))
            raise
    assert classified == [True]
    assert pool.opened == 0


DEAD = [
    (2013, "Lost connection to MySQL server during query"),
    (2006, "MySQL server has gone away"),
    (4031, "The client was disconnected by the server because of inactivity"),
    (1927, "Connection was killed"),
]
ALIVE = [
    (1317, "Query execution was interrupted"),
    (1062, "Duplicate entry '1' for key 'PRIMARY'"),
    (1064, "You have an error in your SQL syntax"),
    (1969, "Query execution was interrupted (max_statement_time exceeded)"),
    (1205, "Lock wait timeout exceeded; try restarting transaction"),
    (1213, "Deadlock found when trying to get lock; try restarting transaction"),
]


@pytest.mark.parametrize("module", [pymysql, MySQLdb], ids=["pymysql", "mysqlclient"])
def test_is_mysql_disconnect_on_constructed_errors(module: ModuleType) -> None:
    driver = PyMySQLDriver(pymysql) if module is pymysql else MySQLdbDriver(MySQLdb)
    for code, message in DEAD:
        error = module.OperationalError(code, message)
        assert is_mysql_disconnect(error), (code, message)
        assert driver.is_disconnect(error)
    closed = module.InterfaceError(0, "")
    assert is_mysql_disconnect(closed)
    assert driver.is_disconnect(closed)
    for code, message in ALIVE:
        for cls in (module.OperationalError, module.IntegrityError, module.ProgrammingError):
            error = cls(code, message)
            assert not is_mysql_disconnect(error), (cls.__name__, code)
            assert not driver.is_disconnect(error)
    assert driver.is_disconnect(sessionpool.ConnectionDead("cut"))


# -- 4. liveness -----------------------------------------------------------------------------------


def test_ping_live_connection(flavor: Flavor) -> None:
    connector = connector_for(flavor.url)
    conn = connector.connect()
    try:
        started = time.monotonic()
        connector.driver.ping(conn, 1.0)
        assert time.monotonic() - started < 1.0
        assert not connector.driver.is_closed(conn)
        assert one(conn, "SELECT 1") == 1
    finally:
        conn.close()


def test_ping_fails_after_kill_of_idle_pooled_connection(
    flavor: Flavor, env: Env, make_pool: Callable[..., Pool]
) -> None:
    pool = make_pool(flavor.url, min_size=1, max_size=1)
    with pool.acquire() as lease:
        victim = connection_id(lease)
    run(env.admin, f"KILL {victim}")  # idle in the pool now
    driver = pool._connector.driver
    lease = pool.acquire()
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        driver.ping(lease.driver_connection, 1.0)
    assert time.monotonic() - started < 1.0 + MARGIN
    assert driver.is_disconnect(info.value, lease.driver_connection), repr(info.value)
    assert pool.is_disconnect(info.value, lease)
    lease.drop()
    with pool.acquire() as fresh:
        assert connection_id(fresh) != victim


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    with Proxy(HOST, PORT) as running:
        yield running


def _ping(driver: Any, conn: Any, timeout: float) -> object:
    return driver.ping(conn, timeout)


def _end_transaction(driver: Any, conn: Any, timeout: float) -> object:
    return driver.end_transaction(conn, timeout)


def _full_reset(driver: Any, conn: Any, timeout: float) -> object:
    return driver.full_reset(conn, timeout)


@pytest.mark.parametrize(
    "operation",
    [_ping, _end_transaction, _full_reset],
    ids=["ping", "end_transaction", "full_reset"],
)
def test_calls_are_time_bounded_against_a_hung_server(
    flavor: Flavor, env: Env, proxy: Proxy, operation: Callable[[Any, Any, float], object]
) -> None:
    connector = connector_for(f"{flavor.scheme}://root@{HOST}:{proxy.port}/test")
    driver = connector.driver
    conn = connector.connect()
    driver.opened(conn)
    try:
        # An open transaction, so that end_transaction has a ROLLBACK to send.
        run(conn, f"INSERT INTO {env.table} (tag) VALUES (%s)", (env.token,))
        assert driver.in_transaction(conn)
        proxy.blackhole()
        started = time.monotonic()
        result: object = None
        error: BaseException | None = None
        try:
            result = operation(driver, conn, 0.5)
        except Exception as exc:
            error = exc
        elapsed = time.monotonic() - started
        assert elapsed < 0.5 + MARGIN, f"{operation.__name__} took {elapsed:.2f} s"
        if error is not None:
            assert driver.is_disconnect(error, conn), repr(error)
        else:
            # Only a call that needs no round trip may come back: mysqlclient's full reset
            # answers False (reopen) at once.
            assert operation is _full_reset and flavor.reopens and result is False
    finally:
        proxy.resume()
        with contextlib.suppress(Exception):
            conn.close()
    assert _rows_outside(env) == 0


# -- 5. URL forms ------------------------------------------------------------------------------


def test_unix_socket_url(flavor: Flavor, make_pool: Callable[..., Pool]) -> None:
    scheme = "mysql" if flavor.name == "pymysql" else flavor.scheme
    pool = make_pool(f"{scheme}://root@localhost/test?unix_socket={SOCKET}", min_size=1, max_size=1)
    assert isinstance(pool._connector.driver, type(driver_of(flavor)))
    with pool.acquire() as lease:
        # The server names socket clients "localhost" and TCP clients "host:port".
        host = one(
            lease,
            "SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()",
        )
        assert host == "localhost"
        assert one(lease, "SELECT DATABASE()") == "test"
        assert one(lease, "SELECT 1") == 1


def driver_of(flavor: Flavor) -> Any:
    return PyMySQLDriver(pymysql) if flavor.module is pymysql else MySQLdbDriver(MySQLdb)


@pytest.mark.parametrize(
    ("url", "driver_class"),
    [
        (f"mariadb://root@{HOST}/test", PyMySQLDriver),
        (f"mariadb+pymysql://root@{HOST}/test", PyMySQLDriver),
        (f"mariadb+mysqldb://root@{HOST}/test", MySQLdbDriver),
        (f"mariadb+mysqlclient://root@{HOST}/test", MySQLdbDriver),
    ],
)
def test_mariadb_alias(url: str, driver_class: type, make_pool: Callable[..., Pool]) -> None:
    pool = make_pool(url, min_size=1, max_size=1)
    assert type(pool._connector.driver) is driver_class
    with pool.acquire() as lease:
        assert "MariaDB" in one(lease, "SELECT VERSION()")
        assert one(lease, "SELECT DATABASE()") == "test"


def test_ping_emits_no_deprecation_warning(flavor: Flavor) -> None:
    """A ping runs on every validation: it must not warn (nor break under ``-W error``).
    mysqlclient 2.3 deprecates passing ``reconnect`` to ping() at all, even False."""
    connector = connector_for(flavor.url)
    conn = connector.connect()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            connector.driver.ping(conn, 1.0)
    finally:
        conn.close()


def test_full_reset_restores_pymysql_autocommit_mode_set_by_the_borrower() -> None:
    """A borrower's conn.autocommit(True) rewrites PyMySQL's own autocommit_mode; the full
    reset must put back the mode the connection was opened with, on both sides."""
    pool = sessionpool.create_pool(
        "mysql+pymysql://root@127.0.0.1/test", min_size=1, max_size=1, reset_on_return="full"
    )
    try:
        with pool.acquire() as lease:
            first_id = lease.thread_id()
            lease.autocommit(True)
            assert lease.get_autocommit() is True
        with pool.acquire() as lease:
            assert lease.thread_id() == first_id, "the reset is in place"
            cursor = lease.cursor()
            cursor.execute("SELECT @@autocommit")
            assert cursor.fetchone()[0] == 0
            assert lease.get_autocommit() is False
            lease.rollback()
    finally:
        pool.close(force=True)
