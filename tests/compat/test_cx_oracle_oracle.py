"""The cx_Oracle face over python-oracledb without an Oracle server: an Oracle DSN (or an
oracle:// URL) reaches oracledb.connect with the right arguments, and cx_Oracle's Oracle-only
words (stmtcachesize, edition, current_schema, PL/SQL callbacks, error codes) reach the driver."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from typing import Any

import oracledb
import pytest
from oracledb.errors import _Error as OracleErrorDetail  # what oracledb puts in args[0]

from sessionpool.compat import cx_oracle as cx_Oracle
from tests.drivers.test_oracle import FakeOracleConnection

CANARY = "s3cr3t-canary"


class FakeCursor:
    def __init__(self, conn: FakeSessionConnection) -> None:
        self._conn = conn

    def callproc(self, name: str, parameters: list[Any]) -> None:
        self._conn.procedures.append((name, parameters))

    def close(self) -> None:
        pass


class FakeSessionConnection(FakeOracleConnection):
    """An oracledb.Connection as far as the face uses it: the driver adapter's needs, plus the
    session attributes cx_Oracle code sets."""

    def __init__(self, arguments: dict[str, Any]) -> None:
        super().__init__()
        self.arguments = arguments
        self.stmtcachesize = arguments.get("stmtcachesize", 20)
        self.current_schema: str | None = None
        self.procedures: list[tuple[str, list[Any]]] = []

    def cursor(self) -> Any:
        return FakeCursor(self)


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeSessionConnection]]:
    """oracledb.connect replaced by a fake with its signature (the adapter checks argument
    names against it), recording each connection it makes."""
    made: list[FakeSessionConnection] = []
    real = oracledb.connect

    @functools.wraps(real)
    def fake_connect(**arguments: Any) -> FakeSessionConnection:
        conn = FakeSessionConnection(arguments)
        made.append(conn)
        return conn

    monkeypatch.setattr(oracledb, "connect", fake_connect)
    yield made


@pytest.fixture
def pools() -> Iterator[list[cx_Oracle.SessionPool]]:
    made: list[cx_Oracle.SessionPool] = []
    yield made
    for pool in made:
        pool.sessionpool.close(force=True)


def test_an_oracle_dsn_reaches_oracledb_connect(
    connects: list[FakeSessionConnection], pools: list[cx_Oracle.SessionPool]
) -> None:
    pool = cx_Oracle.SessionPool(
        "scott",
        CANARY,
        "dbhost:1521/orclpdb",
        min=2,
        max=4,
        increment=1,
        edition="APP_V2",
        events=True,
        stmtcachesize=50,
    )
    pools.append(pool)
    assert len(connects) == 2
    assert connects[0].arguments == {
        "dsn": "dbhost:1521/orclpdb",
        "user": "scott",
        "password": CANARY,
        "stmtcachesize": 50,
        "edition": "APP_V2",
        "events": True,
        "tcp_connect_timeout": 10.0,  # sessionpool's connect_timeout, in oracledb's name
    }
    assert pool.dsn == pool.tnsentry == "dbhost:1521/orclpdb"
    assert pool.username == "scott"
    assert CANARY not in repr(pool) and CANARY not in repr(pool.sessionpool)
    with pool.acquire() as conn:
        assert conn.driver_connection in connects


@pytest.mark.parametrize(
    "dsn",
    [
        "tcps://dbhost:2484/orclpdb?wallet_location=/w",  # Easy Connect Plus, not a URL
        "tcp://dbhost/orclpdb",
        "salesdb_high",  # a tnsnames.ora alias
        "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=h)(PORT=1521))(CONNECT_DATA=(SERVICE_NAME=s)))",
    ],
)
def test_every_oracle_dsn_form_passes_unchanged(
    dsn: str, connects: list[FakeSessionConnection], pools: list[cx_Oracle.SessionPool]
) -> None:
    pools.append(cx_Oracle.SessionPool("scott", "tiger", dsn, min=1, max=1))
    assert connects[0].arguments["dsn"] == dsn


def test_an_oracle_url_maps_to_oracledb_arguments(
    connects: list[FakeSessionConnection], pools: list[cx_Oracle.SessionPool]
) -> None:
    # The URL names no user: the constructor's credentials fill it in.
    pools.append(
        cx_Oracle.SessionPool("scott", "tiger", "oracle://dbhost:1521/orclpdb", min=1, max=1)
    )
    assert connects[0].arguments == {
        "host": "dbhost",
        "port": 1521,
        "service_name": "orclpdb",
        "user": "scott",
        "password": "tiger",
        "stmtcachesize": 20,
        "tcp_connect_timeout": 10.0,
    }
    assert pools[0].username == "scott"


def test_heterogeneous_acquire_connects_as_that_user(
    connects: list[FakeSessionConnection], pools: list[cx_Oracle.SessionPool]
) -> None:
    pool = cx_Oracle.SessionPool(
        None, None, "dbhost/orclpdb", 0, 4, 1, homogeneous=False, externalauth=True
    )
    pools.append(pool)
    hr_conn = pool.acquire(user="hr", password="hr_pass")
    sales_conn = pool.acquire("sales", "sales_pass")
    by_user = {conn.arguments["user"]: conn.arguments for conn in connects}
    assert by_user["hr"]["password"] == "hr_pass"
    assert by_user["sales"]["password"] == "sales_pass"
    assert by_user["hr"]["externalauth"] is True
    assert hr_conn.driver_connection is not sales_conn.driver_connection


def test_stmtcachesize_change_reaches_each_acquired_connection(
    connects: list[FakeSessionConnection], pools: list[cx_Oracle.SessionPool]
) -> None:
    pool = cx_Oracle.SessionPool("scott", "tiger", "dbhost/orclpdb", min=1, max=1)
    pools.append(pool)
    assert connects[0].stmtcachesize == 20
    pool.stmtcachesize = 40
    with pool.acquire() as conn:
        assert conn.stmtcachesize == 40
    assert connects[0].stmtcachesize == 40


def test_current_schema_is_oracledbs_own(
    connects: list[FakeSessionConnection], pools: list[cx_Oracle.SessionPool]
) -> None:
    pool = cx_Oracle.SessionPool("scott", "tiger", "dbhost/orclpdb", min=1, max=1)
    pools.append(pool)
    with pool.acquire() as conn:
        conn.current_schema = "HR"
        assert conn.current_schema == "HR"
    assert connects[0].current_schema == "HR"


def test_plsql_session_callback_runs_on_a_tag_mismatch(
    connects: list[FakeSessionConnection], pools: list[cx_Oracle.SessionPool]
) -> None:
    pool = cx_Oracle.SessionPool(
        "scott",
        "tiger",
        "dbhost/orclpdb",
        min=1,
        max=1,
        session_callback="pkg_SessionCallback.TheCallback",
    )
    pools.append(pool)
    pool.acquire().close()
    assert connects[0].procedures == [], "no tag asked for: PL/SQL fix-ups run on mismatches"
    conn = pool.acquire(tag="NLS_DATE_FORMAT=SIMPLE")
    assert connects[0].procedures == [
        ("pkg_SessionCallback.TheCallback", ["NLS_DATE_FORMAT=SIMPLE", None])
    ]
    assert conn.tag == "NLS_DATE_FORMAT=SIMPLE", "left tagged as requested"
    conn.close()
    with pool.acquire(tag="NLS_DATE_FORMAT=SIMPLE") as conn:
        assert len(connects[0].procedures) == 1, "the tag matched: no fix-up"


def test_sharding_keys_cannot_be_routed_yet(
    connects: list[FakeSessionConnection], pools: list[cx_Oracle.SessionPool]
) -> None:
    pool = cx_Oracle.SessionPool("scott", "tiger", "dbhost/orclpdb", min=0, max=2)
    pools.append(pool)
    with pytest.raises(cx_Oracle.NotSupportedError, match="shard"):
        pool.acquire(shardingkey=[42])
    with pool.acquire(cclass="MYAPP"):  # a connection class isolates, without routing
        assert pool.busy == 1


def test_an_oracle_error_keeps_its_code(
    monkeypatch: pytest.MonkeyPatch, pools: list[cx_Oracle.SessionPool]
) -> None:
    real = oracledb.connect

    @functools.wraps(real)
    def refusing_connect(**arguments: Any) -> Any:
        detail = OracleErrorDetail(
            "ORA-01017: invalid credential or not authorized; logon denied", code=1017
        )
        raise oracledb.DatabaseError(detail)

    monkeypatch.setattr(oracledb, "connect", refusing_connect)
    with pytest.raises(cx_Oracle.DatabaseError) as caught:
        cx_Oracle.SessionPool("scott", CANARY, "dbhost/orclpdb", min=1, max=1)
    (error_obj,) = caught.value.args
    assert (error_obj.code, error_obj.full_code) == (1017, "ORA-01017")
    assert error_obj.message.startswith("ORA-01017: invalid credential")
    assert isinstance(caught.value.__cause__, oracledb.DatabaseError)


def test_nothing_listening_is_an_operational_error_with_oracledbs_code() -> None:
    # The real driver, against a port where nothing listens: refused at once (the 2 s limit
    # is a guard only); oracledb's DPY-6005 comes through with its code.
    began = time.monotonic()
    with pytest.raises(cx_Oracle.OperationalError) as caught:
        cx_Oracle.SessionPool(
            "scott", CANARY, "127.0.0.1:1/orclpdb", min=1, max=1, connect_timeout=2.0
        )
    assert time.monotonic() - began < 6.0
    (error_obj,) = caught.value.args
    assert error_obj.full_code == "DPY-6005"
    assert CANARY not in error_obj.message
    assert isinstance(caught.value.__cause__, oracledb.OperationalError)
