"""The driver registry: which adapter a URL names, which one made a connection."""

from __future__ import annotations

import importlib
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import MySQLdb
import oracledb
import psycopg
import psycopg2
import pymysql
import pytest
import tomllib

import sessionpool
from sessionpool import ConfigError
from sessionpool.drivers.base import CreatorConnector, GenericDriver, URLDriver
from sessionpool.drivers.mysql import MySQLdbDriver, PyMySQLDriver
from sessionpool.drivers.oracle import OracleDriver
from sessionpool.drivers.postgresql import Psycopg2Driver, PsycopgDriver
from sessionpool.drivers.registry import driver_for_connection, driver_for_url, known_drivers
from sessionpool.drivers.sqlite import SQLiteDriver
from sessionpool.factory import connector_for
from tests.fakes.fake_dbapi import FakeDatabase

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

# (dialect, driver) -> adapter class and driver module
EXPECTED: list[tuple[str, str | None, type[URLDriver], ModuleType]] = [
    ("postgresql", None, PsycopgDriver, psycopg),
    ("postgres", None, PsycopgDriver, psycopg),
    ("pgsql", None, PsycopgDriver, psycopg),
    ("postgresql", "psycopg", PsycopgDriver, psycopg),
    ("postgresql", "psycopg3", PsycopgDriver, psycopg),
    ("postgres", "psycopg", PsycopgDriver, psycopg),
    ("postgresql", "psycopg2", Psycopg2Driver, psycopg2),
    ("postgres", "psycopg2", Psycopg2Driver, psycopg2),
    ("pgsql", "psycopg2", Psycopg2Driver, psycopg2),
    ("mysql", None, PyMySQLDriver, pymysql),
    ("mariadb", None, PyMySQLDriver, pymysql),
    ("mysql", "pymysql", PyMySQLDriver, pymysql),
    ("mariadb", "pymysql", PyMySQLDriver, pymysql),
    ("mysql", "mysqldb", MySQLdbDriver, MySQLdb),
    ("mysql", "mysqlclient", MySQLdbDriver, MySQLdb),
    ("mariadb", "mysqldb", MySQLdbDriver, MySQLdb),
    ("mariadb", "mysqlclient", MySQLdbDriver, MySQLdb),
    ("oracle", None, OracleDriver, oracledb),
    ("oracle", "oracledb", OracleDriver, oracledb),
    ("oracle", "cx_oracle", OracleDriver, oracledb),
    ("sqlite", None, SQLiteDriver, sqlite3),
    ("sqlite", "pysqlite", SQLiteDriver, sqlite3),
    ("sqlite", "sqlite3", SQLiteDriver, sqlite3),
]


@pytest.mark.parametrize(
    ("dialect", "driver", "adapter", "module"),
    EXPECTED,
    ids=[f"{d}+{v}" if v else d for d, v, _, _ in EXPECTED],
)
def test_driver_for_url(
    dialect: str, driver: str | None, adapter: type[URLDriver], module: ModuleType
) -> None:
    found = driver_for_url(dialect, driver)
    assert type(found) is adapter
    assert found.module is module


@pytest.mark.parametrize(
    ("dialect", "driver", "adapter", "module"),
    EXPECTED,
    ids=[f"{d}+{v}" if v else d for d, v, _, _ in EXPECTED],
)
def test_url_scheme_picks_the_adapter(
    dialect: str, driver: str | None, adapter: type[URLDriver], module: ModuleType
) -> None:
    scheme = dialect if driver is None else f"{dialect}+{driver}"
    text = f"{scheme.upper()}://" if dialect == "sqlite" else f"{scheme.upper()}://u@h/db"
    assert type(connector_for(text).driver) is adapter


def test_driver_name_is_case_insensitive() -> None:
    assert type(driver_for_url("postgresql", "Psycopg2")) is Psycopg2Driver
    assert type(driver_for_url("mysql", "MySQLdb")) is MySQLdbDriver
    assert type(driver_for_url("oracle", "cx_Oracle")) is OracleDriver


def test_each_call_returns_a_fresh_adapter() -> None:
    # SQLite's adapter holds per-pool state (the in-memory database keeper).
    assert driver_for_url("sqlite", None) is not driver_for_url("sqlite", None)


def test_known_drivers_lists_every_dialect_default_first() -> None:
    known = known_drivers()
    assert known["postgresql"][0] == "psycopg"
    assert known["mysql"][0] == "pymysql"
    assert known["oracle"][0] == "oracledb"
    assert known["sqlite"][0] == "sqlite3"
    assert {"psycopg2", "psycopg3"} <= set(known["postgresql"])
    assert {"mysqldb", "mysqlclient"} <= set(known["mysql"])
    assert "cx_oracle" in known["oracle"]
    for dialect, names in known.items():
        for name in names:
            assert isinstance(driver_for_url(dialect, name), URLDriver)


@pytest.mark.parametrize("dialect", ["foodb", "mssql", "redshift", ""])
def test_unknown_dialect_is_named(dialect: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown database '{dialect}'") as caught:
        driver_for_url(dialect, None)
    assert "creator=" in str(caught.value)


@pytest.mark.parametrize(
    ("dialect", "driver"),
    [
        ("postgresql", "asyncpg"),
        ("postgres", "pg8000"),
        ("mysql", "aiomysql"),
        ("mariadb", "mariadbconnector"),
        ("oracle", "thick"),
        ("sqlite", "apsw"),
    ],
)
def test_unknown_driver_is_named(dialect: str, driver: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown driver '{driver}'"):
        driver_for_url(dialect, driver)


# -- missing driver packages -------------------------------------------------------------------

MISSING = [
    ("mysql", None, "pymysql", "mysql", "PyMySQL"),
    ("mariadb", "pymysql", "pymysql", "mysql", "PyMySQL"),
    ("mysql", "mysqldb", "MySQLdb", "mysqlclient", "mysqlclient"),
    ("postgresql", None, "psycopg", "postgresql", "psycopg"),
    ("postgresql", "psycopg2", "psycopg2", "psycopg2", "psycopg2-binary"),
    ("oracle", "cx_oracle", "oracledb", "oracle", "oracledb"),
]


@pytest.fixture
def block_import(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def block(module: str) -> None:
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError

    yield block


@pytest.mark.parametrize(("dialect", "driver", "module", "extra", "package"), MISSING)
def test_missing_driver_raises_driver_not_installed(
    block_import: Any, dialect: str, driver: str | None, module: str, extra: str, package: str
) -> None:
    block_import(module)
    with pytest.raises(sessionpool.DriverNotInstalled) as caught:
        driver_for_url(dialect, driver)
    error = caught.value
    assert isinstance(error, ImportError)
    assert isinstance(error, ConfigError)
    assert f"pip install 'sessionpool[{extra}]'" in str(error)
    assert package in str(error)
    assert isinstance(error.__cause__, ImportError)


def test_missing_pymysql_through_create_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def fake_import(name: str, package: str | None = None) -> ModuleType:
        if name == "pymysql":
            raise ImportError("No module named 'pymysql'")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    with pytest.raises(sessionpool.DriverNotInstalled, match=r"sessionpool\[mysql\]") as caught:
        sessionpool.create_pool("mysql://root:s3cr3t-canary@127.0.0.1/test")
    assert "s3cr3t-canary" not in str(caught.value)
    # An ImportError handler catches it too.
    with pytest.raises(ImportError):
        sessionpool.create_pool("mariadb://root@127.0.0.1/test")
    # The other drivers are unaffected.
    assert type(driver_for_url("mysql", "mysqldb")) is MySQLdbDriver


@pytest.mark.parametrize(("dialect", "driver", "module", "extra", "package"), MISSING)
def test_named_extra_exists_in_pyproject(
    dialect: str, driver: str | None, module: str, extra: str, package: str
) -> None:
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    assert extra in extras, f"the error tells users to install sessionpool[{extra}]"
    wanted = package.lower().split("-")[0]
    assert any(req.lower().startswith(wanted) for req in extras[extra]), extras[extra]


# -- recognising a creator's connections -------------------------------------------------------


def test_sqlite3_connection_is_recognised() -> None:
    conn = sqlite3.connect(":memory:")
    try:
        driver = driver_for_connection(conn)
        assert type(driver) is SQLiteDriver
        assert driver.module is sqlite3
    finally:
        conn.close()


def test_psycopg_connection_is_recognised() -> None:
    conn = psycopg.connect(host="127.0.0.1", dbname="test", connect_timeout=10)
    try:
        driver = driver_for_connection(conn)
        assert type(driver) is PsycopgDriver
        assert driver.module is psycopg
    finally:
        conn.close()


def test_psycopg2_connection_is_recognised() -> None:
    conn = psycopg2.connect(host="127.0.0.1", dbname="test", connect_timeout=10)
    try:
        driver = driver_for_connection(conn)
        assert type(driver) is Psycopg2Driver
        assert driver.module is psycopg2
    finally:
        conn.close()


def test_pymysql_connection_is_recognised() -> None:
    conn = pymysql.connect(host="127.0.0.1", user="root", database="test", connect_timeout=10)
    try:
        driver = driver_for_connection(conn)
        assert type(driver) is PyMySQLDriver
        assert driver.module is pymysql
    finally:
        conn.close()


def test_mysqldb_connection_is_recognised() -> None:
    conn = MySQLdb.connect(host="127.0.0.1", user="root", database="test", connect_timeout=10)
    try:
        driver = driver_for_connection(conn)
        assert type(driver) is MySQLdbDriver
        assert driver.module is MySQLdb
    finally:
        conn.close()


def test_fake_dbapi_connection_gets_the_generic_driver() -> None:
    with FakeDatabase() as db:
        conn = db.connect()
        assert type(driver_for_connection(conn)) is GenericDriver
        conn.close()


def test_unknown_objects_get_the_generic_driver() -> None:
    class Home:
        pass

    assert type(driver_for_connection(Home())) is GenericDriver
    assert type(driver_for_connection(object())) is GenericDriver


def test_creator_pool_gets_the_sqlite_driver_after_the_first_connect() -> None:
    pool = sessionpool.create_pool(
        creator=lambda: sqlite3.connect(":memory:", check_same_thread=False), lazy=True
    )
    try:
        connector = pool._connector
        assert isinstance(connector, CreatorConnector)
        assert type(connector.driver) is GenericDriver  # nothing opened yet
        with pool.acquire() as conn:
            conn.execute("SELECT 1")
        assert type(connector.driver) is SQLiteDriver
        assert pool.is_disconnect(sqlite3.ProgrammingError("Cannot operate on a closed database."))
    finally:
        pool.close()


def test_creator_pool_opened_eagerly_knows_its_driver() -> None:
    pool = sessionpool.create_pool(
        creator=lambda: sqlite3.connect(":memory:", check_same_thread=False),
        min_size=1,
        reset_on_return="full",
    )
    try:
        assert type(pool._connector.driver) is SQLiteDriver
        with pool.acquire() as conn:
            first = conn.driver_connection
            conn.execute("CREATE TEMP TABLE scratch (x)")
        with pool.acquire() as conn:
            assert conn.driver_connection is first  # full reset in place, by the sqlite driver
            assert conn.execute("SELECT name FROM temp.sqlite_master").fetchall() == []
    finally:
        pool.close()


def test_fake_creator_pool_keeps_the_generic_driver() -> None:
    with FakeDatabase() as db:
        pool = sessionpool.create_pool(db.connect, min_size=1)
        try:
            assert type(pool._connector.driver) is GenericDriver
        finally:
            pool.close()
