"""The oracledb adapter without an Oracle server: URL mapping, disconnect codes, resets on fakes."""

from __future__ import annotations

import time
from typing import Any

import oracledb
import pytest

import sessionpool
from sessionpool import ConfigError, Connector
from sessionpool.drivers.oracle import OracleDriver, is_oracle_disconnect
from sessionpool.factory import connector_for
from tests.fakes.polling import eventually

CANARY = "s3cr3t-canary"

# -- URL -> connect arguments ------------------------------------------------------------------


def test_url_maps_to_oracledb_connect_arguments() -> None:
    connector = connector_for(
        "oracle://scott:tiger@dbhost:1521/orclpdb?tcp_connect_timeout=3&stmtcachesize=40"
    )
    assert isinstance(connector.driver, OracleDriver)
    assert connector.driver.module is oracledb
    arguments = connector.arguments
    assert arguments == {
        "host": "dbhost",
        "port": 1521,
        "service_name": "orclpdb",
        "user": "scott",
        "password": "tiger",
        "tcp_connect_timeout": 3.0,
        "stmtcachesize": 40,
    }
    assert type(arguments["port"]) is int
    assert type(arguments["tcp_connect_timeout"]) is float
    assert type(arguments["stmtcachesize"]) is int


def test_more_typed_arguments_from_the_query() -> None:
    arguments = connector_for(
        "oracle://u@h/s?expire_time=2&retry_count=3&retry_delay=1&sdu=8192"
        "&ssl_server_dn_match=false&disable_oob=yes&program=app&protocol=tcps"
    ).arguments
    assert arguments["expire_time"] == 2
    assert arguments["retry_count"] == 3
    assert arguments["retry_delay"] == 1
    assert arguments["sdu"] == 8192
    assert arguments["ssl_server_dn_match"] is False
    assert arguments["disable_oob"] is True
    assert arguments["program"] == "app"
    assert arguments["protocol"] == "tcps"


def test_connect_args_keyword_is_merged_and_wins() -> None:
    connector = connector_for("oracle://u:pw@h:1521/s?stmtcachesize=5", {"stmtcachesize": 9})
    assert connector.arguments["stmtcachesize"] == 9
    assert connector.arguments["host"] == "h"


def test_dsn_in_the_query() -> None:
    arguments = connector_for("oracle://scott:tiger@/?dsn=dbhost:1521/orclpdb").arguments
    assert arguments == {"user": "scott", "password": "tiger", "dsn": "dbhost:1521/orclpdb"}


def test_ipv6_host() -> None:
    arguments = connector_for("oracle://u@[::1]:1522/svc").arguments
    assert (arguments["host"], arguments["port"]) == ("::1", 1522)


@pytest.mark.parametrize(
    "text",
    ["oracle://h/s", "oracle+oracledb://h/s", "oracle+cx_oracle://h/s", "ORACLE+CX_Oracle://h/s"],
)
def test_every_oracle_url_form_maps_to_the_same_driver(text: str) -> None:
    connector = connector_for(text)
    assert type(connector.driver) is OracleDriver
    assert connector.driver.module is oracledb
    assert connector.arguments == {"host": "h", "service_name": "s"}


def test_unknown_query_key_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="bogus_option") as caught:
        connector_for(f"oracle://scott:{CANARY}@dbhost/orclpdb?bogus_option=1")
    assert CANARY not in str(caught.value)
    with pytest.raises(ConfigError, match="bogus_option"):
        sessionpool.create_pool("oracle://scott@dbhost/orclpdb?bogus_option=1&lazy=true")


@pytest.mark.parametrize("name", ["pool", "pool_alias", "conn_class", "params"])
def test_pool_level_oracledb_arguments_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        connector_for(f"oracle://u@h/s?{name}=x")


@pytest.mark.parametrize(
    ("query", "name"),
    [("stmtcachesize=many", "stmtcachesize"), ("tcp_connect_timeout=soon", "tcp_connect_timeout")],
)
def test_bad_argument_value_is_refused_naming_it(query: str, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        connector_for(f"oracle://u@h/s?{query}")


def test_lazy_pool_repr_hides_the_password() -> None:
    pool = sessionpool.create_pool(f"oracle://scott:{CANARY}@dbhost:1521/orclpdb?lazy=true")
    try:
        assert CANARY not in repr(pool)
        assert "dbhost" in repr(pool)
    finally:
        pool.close()


# -- disconnect classification -----------------------------------------------------------------


class _Detail:
    """Stands for oracledb's _Error: the error object carrying ``full_code``."""

    def __init__(self, full_code: str, message: str = "") -> None:
        self.full_code = full_code
        self.message = message

    def __str__(self) -> str:
        return self.message


DEAD = [
    oracledb.OperationalError("DPY-4011: the database or network closed the connection"),
    oracledb.DatabaseError("ORA-03113: end-of-file on communication channel"),
    oracledb.DatabaseError("ORA-00028: your session has been killed"),
    oracledb.DatabaseError("ORA-02396: exceeded maximum idle time, please connect again"),
    oracledb.InterfaceError("DPY-1001: not connected to database"),
    oracledb.DatabaseError("ORA-03135: connection lost contact"),
    oracledb.DatabaseError("ORA-01012: not logged on"),
    oracledb.OperationalError(_Detail("ORA-03114", "no code in this text")),
    oracledb.OperationalError(_Detail("DPY-4011")),
]
ALIVE = [
    oracledb.DatabaseError("ORA-00942: table or view does not exist"),
    oracledb.OperationalError("ORA-01013: user requested cancel of current operation"),
    oracledb.IntegrityError("ORA-00001: unique constraint (SCOTT.PK) violated"),
    oracledb.DatabaseError("ORA-01722: invalid number"),
    oracledb.DatabaseError(_Detail("ORA-00942", "ORA-03113 mentioned only in the text")),
    oracledb.DatabaseError("no code at all"),
    oracledb.DatabaseError(),
    ValueError("ORA-0311: too short to be a code"),
]


@pytest.mark.parametrize("error", DEAD, ids=repr)
def test_dead_session_codes_are_disconnects(error: BaseException) -> None:
    assert is_oracle_disconnect(error) is True
    assert OracleDriver(oracledb).is_disconnect(error) is True


@pytest.mark.parametrize("error", ALIVE, ids=repr)
def test_sql_errors_are_not_disconnects(error: BaseException) -> None:
    assert is_oracle_disconnect(error) is False
    assert OracleDriver(oracledb).is_disconnect(error) is False


def test_connection_dead_is_a_disconnect() -> None:
    assert OracleDriver(oracledb).is_disconnect(sessionpool.ConnectionDead("cut")) is True


def test_any_error_on_a_closed_connection_is_a_disconnect() -> None:
    conn = FakeOracleConnection()
    conn.healthy = False
    error = oracledb.DatabaseError("ORA-00942: table or view does not exist")
    assert OracleDriver(oracledb).is_disconnect(error, conn) is True
    conn.healthy = True
    assert OracleDriver(oracledb).is_disconnect(error, conn) is False


def test_connect_to_nothing_listening_is_a_disconnect_error() -> None:
    connector = connector_for(f"oracle://scott:{CANARY}@127.0.0.1:1/orclpdb?tcp_connect_timeout=1")
    started = time.monotonic()
    with pytest.raises(oracledb.Error) as caught:
        connector.connect()
    assert time.monotonic() - started < 5.0
    error = caught.value
    assert error.args[0].full_code == "DPY-6005"
    assert is_oracle_disconnect(error) is True
    assert connector.driver.is_disconnect(error) is True
    assert CANARY not in str(error)


def test_create_pool_against_nothing_raises_the_driver_error() -> None:
    with pytest.raises(oracledb.Error) as caught:
        sessionpool.create_pool(
            f"oracle://scott:{CANARY}@127.0.0.1:1/orclpdb?tcp_connect_timeout=1",
            open_timeout=10,
        )
    assert is_oracle_disconnect(caught.value)
    assert CANARY not in str(caught.value)


# -- time limits and resets on a fake connection ------------------------------------------------


class FakeOracleConnection:
    """What OracleDriver uses of an oracledb.Connection, recording each call."""

    def __init__(self) -> None:
        self.call_timeout = 0
        self.healthy = True
        self.transaction_in_progress = False
        self.calls: list[tuple[str, int]] = []
        self.ping_error: BaseException | None = None
        self.closed = False

    def is_healthy(self) -> bool:
        return self.healthy and not self.closed

    def ping(self) -> None:
        self.calls.append(("ping", self.call_timeout))
        if self.ping_error is not None:
            raise self.ping_error

    def rollback(self) -> None:
        self.calls.append(("rollback", self.call_timeout))
        self.transaction_in_progress = False

    def commit(self) -> None:
        self.calls.append(("commit", self.call_timeout))
        self.transaction_in_progress = False

    def cursor(self) -> Any:
        self.transaction_in_progress = True  # as if the borrower ran DML
        return None

    def close(self) -> None:
        self.calls.append(("close", self.call_timeout))
        self.closed = True


@pytest.fixture
def driver() -> OracleDriver:
    return OracleDriver(oracledb)


def test_ping_sets_the_call_timeout_for_the_call_and_restores_it(driver: OracleDriver) -> None:
    conn = FakeOracleConnection()
    conn.call_timeout = 250
    driver.ping(conn, 2.5)
    assert conn.calls == [("ping", 2500)]
    assert conn.call_timeout == 250


def test_tiny_timeout_still_sets_a_limit(driver: OracleDriver) -> None:
    conn = FakeOracleConnection()
    driver.ping(conn, 0.0001)
    assert conn.calls == [("ping", 1)]  # 0 would mean no limit at all
    assert conn.call_timeout == 0


def test_failing_ping_raises_and_restores_the_call_timeout(driver: OracleDriver) -> None:
    conn = FakeOracleConnection()
    conn.call_timeout = 7
    conn.ping_error = oracledb.DatabaseError("ORA-03113: end-of-file on communication channel")
    with pytest.raises(oracledb.DatabaseError) as caught:
        driver.ping(conn, 1.0)
    assert conn.calls == [("ping", 1000)]
    assert conn.call_timeout == 7
    assert driver.is_disconnect(caught.value, conn)


def test_ping_on_an_unhealthy_connection_raises_connection_dead(driver: OracleDriver) -> None:
    conn = FakeOracleConnection()
    conn.healthy = False
    assert driver.is_closed(conn) is True
    with pytest.raises(sessionpool.ConnectionDead):
        driver.ping(conn, 1.0)
    assert conn.calls == []  # no round trip on a connection known dead


def test_end_transaction_rolls_back_only_when_a_transaction_is_open(driver: OracleDriver) -> None:
    conn = FakeOracleConnection()
    conn.call_timeout = 30
    driver.end_transaction(conn, 5.0)
    assert conn.calls == []
    conn.transaction_in_progress = True
    assert driver.in_transaction(conn) is True
    driver.end_transaction(conn, 5.0)
    assert conn.calls == [("rollback", 5000)]
    assert conn.call_timeout == 30
    assert driver.in_transaction(conn) is False


def test_end_transaction_on_a_dead_connection_raises(driver: OracleDriver) -> None:
    conn = FakeOracleConnection()
    conn.transaction_in_progress = True
    conn.healthy = False
    with pytest.raises(sessionpool.ConnectionDead):
        driver.end_transaction(conn, 1.0)


def test_full_reset_asks_for_a_reopen(driver: OracleDriver) -> None:
    conn = FakeOracleConnection()
    conn.transaction_in_progress = True
    assert driver.full_reset(conn, 1.0) is False
    assert conn.calls == []  # nothing done in place


# -- pool-level behaviour with a fake connector -----------------------------------------------


class FakeOracleConnector(Connector):
    def __init__(self) -> None:
        self.driver = OracleDriver(oracledb)
        self.made: list[FakeOracleConnection] = []

    def connect(self, user: str | None = None, password: str | None = None) -> Any:
        conn = FakeOracleConnection()
        self.made.append(conn)
        return conn


def test_pool_full_reset_reopens_the_session() -> None:
    connector = FakeOracleConnector()
    pool = sessionpool.create_pool(connector, min_size=1, max_size=1, reset_on_return="full")
    try:
        with pool.acquire() as conn:
            first = conn.driver_connection
            conn.cursor()
        assert len(connector.made) == 2
        eventually(lambda: first.closed, "the replaced session closed")
        with pool.acquire() as conn:
            second = conn.driver_connection  # touching it counts as use
        assert second is not first
        assert second is connector.made[1]
        assert len(connector.made) == 3  # replaced in turn on return
        eventually(lambda: second.closed, "the second session closed")
        assert not connector.made[2].closed
        assert [c.closed for c in connector.made] == [True, True, False]
    finally:
        pool.close()


def test_pool_default_reset_rolls_back_an_open_transaction() -> None:
    connector = FakeOracleConnector()
    pool = sessionpool.create_pool(connector, min_size=1, max_size=1, reset_timeout=2.0)
    try:
        with pool.acquire() as conn:
            first = conn.driver_connection
            conn.cursor()
        assert first.calls == [("rollback", 2000)]
        with pool.acquire() as conn:
            assert conn.driver_connection is first
            conn.call_timeout = 0  # touch it without opening a transaction
        assert first.calls == [("rollback", 2000)]  # nothing to roll back the second time
    finally:
        pool.close()


def test_pool_drops_a_connection_after_a_disconnect_error() -> None:
    connector = FakeOracleConnector()
    pool = sessionpool.create_pool(connector, min_size=0, max_size=1)
    try:
        with pytest.raises(oracledb.OperationalError), pool.acquire() as conn:
            first = conn.driver_connection
            raise oracledb.OperationalError("DPY-4011: the database or network closed it")
        assert (pool.opened, pool.busy) == (0, 0), "dropped from the pool at once"
        # The driver-level close runs on the pool's maintenance thread, a moment later.
        eventually(lambda: first.closed, "the disconnected session closed")
        with pytest.raises(oracledb.DatabaseError), pool.acquire() as conn:
            second = conn.driver_connection
            raise oracledb.DatabaseError("ORA-00942: table or view does not exist")
        assert second is not first
        assert not second.closed  # an SQL error keeps the session
        with pool.acquire() as conn:
            assert conn.driver_connection is second
    finally:
        pool.close()


def test_pool_purity_new_reopens_a_used_session() -> None:
    connector = FakeOracleConnector()
    pool = sessionpool.create_pool(connector, min_size=1, max_size=1)
    try:
        with pool.acquire() as conn:
            first = conn.driver_connection
            conn.cursor()
        with pool.acquire(purity="new") as conn:
            assert conn.driver_connection is not first
        eventually(lambda: first.closed, "the used session dropped for purity='new' closed")
    finally:
        pool.close()
