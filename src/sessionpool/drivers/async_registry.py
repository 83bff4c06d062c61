"""Which async driver a URL names for an `AsyncPool`, and which one made a given connection.

A URL that names a blocking driver (``+psycopg2``, ``+pymysql``, ``+sqlite3``, oracledb...) is
served through the threaded adapter on a bounded thread pool (see `async_base`).
"""

from __future__ import annotations

import importlib
from typing import Any, NamedTuple

from ..errors import ConfigError, DriverNotInstalled
from .async_base import AsyncDriver, AsyncURLDriver
from .async_mysql import AiomysqlDriver
from .async_postgresql import AsyncpgDriver, AsyncPsycopgDriver
from .async_sqlite import AiosqliteDriver
from .registry import canonical_dialect, has_blocking_driver, known_module_of

__all__ = ["async_driver_for_connection", "async_driver_for_url"]


class _Entry(NamedTuple):
    module: str
    package: str
    adapter: type[AsyncURLDriver]


_ENTRIES = {
    "asyncpg": _Entry("asyncpg", "asyncpg", AsyncpgDriver),
    "psycopg": _Entry("psycopg", "psycopg", AsyncPsycopgDriver),
    "aiomysql": _Entry("aiomysql", "aiomysql", AiomysqlDriver),
    "aiosqlite": _Entry("aiosqlite", "aiosqlite", AiosqliteDriver),
}
# dialect -> (default async driver, {driver name in a URL -> async driver})
_DIALECTS = {
    "postgresql": (
        "psycopg",
        {
            "asyncpg": "asyncpg",
            "psycopg": "psycopg",
            "psycopg3": "psycopg",
            "psycopg_async": "psycopg",
        },
    ),
    "mysql": ("aiomysql", {"aiomysql": "aiomysql"}),
    "sqlite": ("aiosqlite", {"aiosqlite": "aiosqlite"}),
}
_BY_MODULE = {
    "asyncpg": "asyncpg",
    "psycopg": "psycopg",
    "aiomysql": "aiomysql",
    "aiosqlite": "aiosqlite",
}


def is_async_only(dialect: str, driver: str | None) -> bool:
    """Whether ``dialect+driver`` names an async driver that has no blocking form here
    (asyncpg, aiomysql, aiosqlite, psycopg_async)."""
    known = _DIALECTS.get(canonical_dialect(dialect))
    return (
        driver is not None
        and known is not None
        and driver.lower() in known[1]
        and not has_blocking_driver(dialect, driver)
    )


def async_driver_for_url(dialect: str, driver: str | None) -> AsyncURLDriver | None:
    """The async adapter for ``dialect[+driver]``, or None when the URL names a blocking
    driver (or a database with no async one here), which then runs on a thread pool.

    Raises:
        DriverNotInstalled: the async driver package is missing; the message names the extra.
    """
    dialect = canonical_dialect(dialect)
    if dialect not in _DIALECTS:
        return None
    default, names = _DIALECTS[dialect]
    name = names.get((driver or default).lower())
    if name is None:
        return None
    entry = _ENTRIES[name]
    try:
        module = importlib.import_module(entry.module)
    except ImportError as exc:
        raise DriverNotInstalled(
            f"{dialect} URLs in an AsyncPool with driver {entry.adapter.name} need the "
            f"{entry.package} package: pip install 'sessionpool[{entry.adapter.extra}]'"
        ) from exc
    if name == "psycopg" and not hasattr(module, "AsyncConnection"):
        raise ConfigError("this psycopg has no AsyncConnection; install psycopg 3.1 or later")
    return entry.adapter(module)


def async_driver_for_connection(connection: Any) -> AsyncDriver:
    """The async adapter for the driver that made ``connection``; generic when unknown."""
    name = known_module_of(connection, _BY_MODULE)
    if name is None:
        return AsyncDriver()
    entry = _ENTRIES[name]
    return entry.adapter(importlib.import_module(entry.module))
