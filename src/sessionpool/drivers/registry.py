"""Which driver a URL names, and which one made a given connection; imports drivers lazily.

A URL's ``dialect[+driver]`` picks the adapter; a missing driver package raises
`DriverNotInstalled` naming the extra that installs it. Holds no connection.
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from ..errors import ConfigError, DriverNotInstalled
from .base import Driver, GenericDriver, URLDriver
from .mysql import MySQLdbDriver, PyMySQLDriver
from .oracle import OracleDriver
from .postgresql import Psycopg2Driver, PsycopgDriver
from .sqlite import SQLiteDriver

__all__ = ["driver_for_connection", "driver_for_url", "known_drivers"]


class _Entry(NamedTuple):
    module: str  # what to import
    package: str  # what pip installs it as
    adapter: type[URLDriver]


_ENTRIES = {
    "sqlite3": _Entry("sqlite3", "", SQLiteDriver),
    "psycopg": _Entry("psycopg", "psycopg", PsycopgDriver),
    "psycopg2": _Entry("psycopg2", "psycopg2-binary", Psycopg2Driver),
    "pymysql": _Entry("pymysql", "PyMySQL", PyMySQLDriver),
    "mysqlclient": _Entry("MySQLdb", "mysqlclient", MySQLdbDriver),
    "oracledb": _Entry("oracledb", "oracledb", OracleDriver),
}
# dialect -> (default driver, {accepted driver names -> driver})
_DIALECTS: dict[str, tuple[str, dict[str, str]]] = {
    "sqlite": ("sqlite3", {"sqlite3": "sqlite3", "pysqlite": "sqlite3"}),
    "postgresql": (
        "psycopg",
        {"psycopg": "psycopg", "psycopg3": "psycopg", "psycopg2": "psycopg2"},
    ),
    "mysql": (
        "pymysql",
        {"pymysql": "pymysql", "mysqldb": "mysqlclient", "mysqlclient": "mysqlclient"},
    ),
    "oracle": ("oracledb", {"oracledb": "oracledb", "cx_oracle": "oracledb"}),
}
_DIALECT_ALIASES = {"postgres": "postgresql", "pgsql": "postgresql", "mariadb": "mysql"}
# A connection's class module (first component) -> driver, for creator-made connections.
_BY_MODULE = {
    "sqlite3": "sqlite3",
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "pymysql": "pymysql",
    "MySQLdb": "mysqlclient",
    "oracledb": "oracledb",
}


def canonical_dialect(dialect: str) -> str:
    """The dialect a URL's scheme stands for: ``postgres`` and ``pgsql`` are
    ``postgresql``, ``mariadb`` is ``mysql``; others as given (lower-cased)."""
    dialect = dialect.lower()
    return _DIALECT_ALIASES.get(dialect, dialect)


def has_blocking_driver(dialect: str, driver: str | None) -> bool:
    """Whether ``dialect[+driver]`` names a blocking driver known here (None: the
    dialect's default); False for an async-only one such as asyncpg."""
    known = _DIALECTS.get(canonical_dialect(dialect))
    return known is not None and (driver is None or driver.lower() in known[1])


def known_drivers() -> dict[str, list[str]]:
    """Each dialect with the driver names a URL may give after ``+`` (default first)."""
    return {
        dialect: [default, *sorted(set(names) - {default})]
        for dialect, (default, names) in _DIALECTS.items()
    }


def driver_for_url(dialect: str, driver: str | None) -> URLDriver:
    """A fresh adapter for ``dialect[+driver]``, its driver module imported.

    Raises:
        ConfigError: the dialect or driver is not one sessionpool knows.
        DriverNotInstalled: the driver package is missing; the message names the extra.
    """
    dialect = _DIALECT_ALIASES.get(dialect, dialect)
    if dialect not in _DIALECTS:
        raise ConfigError(
            f"unknown database {dialect!r} in the URL; known: {', '.join(sorted(_DIALECTS))} "
            "(or pass creator= for any other DB-API driver)"
        )
    default, names = _DIALECTS[dialect]
    if driver is None:
        driver = default
    if driver.lower() not in names:
        raise ConfigError(
            f"unknown driver {driver!r} for {dialect}; known: {', '.join(sorted(names))}"
        )
    entry = _ENTRIES[names[driver.lower()]]
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        extra = entry.adapter.extra
        raise DriverNotInstalled(
            f"{dialect} URLs with driver {entry.adapter.name} need the {entry.package} "
            f"package: pip install 'sessionpool[{extra}]'"
        ) from exc
    return entry.adapter(module)


def known_module_of(connection: Any, by_module: dict[str, str]) -> str | None:
    """The registry name of the driver whose class ``connection`` is, or derives from (an
    application's own ``psycopg.Connection`` subclass is still psycopg's); None if none."""
    for kind in type(connection).__mro__:
        name = by_module.get(kind.__module__.partition(".")[0])
        if name is not None:
            return name
    return None


def driver_for_connection(connection: Any) -> Driver:
    """The adapter for the driver that made ``connection``; generic when unknown."""
    name = known_module_of(connection, _BY_MODULE)
    if name is None:
        return GenericDriver()
    entry = _ENTRIES[name]
    return entry.adapter(importlib.import_module(entry.module))
