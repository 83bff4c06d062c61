"""Fixtures of the AsyncPool driver tests against the real servers.

PostgreSQL 15 at 127.0.0.1:5432 (trust), MariaDB 10.11 at 127.0.0.1:3306 (root, no password).
A server that is down makes these tests fail, never skip. Everything created on a server has a
uuid name and is dropped at the end of the module that created it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import psycopg
import pymysql
import pytest

import sessionpool
from sessionpool import AsyncPool
from tests.drivers.proxy import Proxy

HOST = "127.0.0.1"
PG_PORT = 5432
MY_PORT = 3306

PoolOpener = Callable[..., Awaitable[AsyncPool]]
ProxyMaker = Callable[[int], Proxy]


@pytest.fixture
async def open_pool() -> AsyncIterator[PoolOpener]:
    """``await open_pool(url, **settings)`` (or ``open_pool(blocking_creator=...)``): the
    pool, force-closed after the test. wait_timeout defaults to 5 s here."""
    pools: list[AsyncPool] = []

    async def factory(url: Any = None, **settings: Any) -> AsyncPool:
        settings.setdefault("wait_timeout", 5.0)
        opening = sessionpool.create_async_pool(url, **settings)
        pools.append(opening._pool)  # closed at teardown even if opening fails half-way
        return await opening

    yield factory
    for pool in pools:
        await pool.close(force=True)


@pytest.fixture
def make_proxy(open_pool: PoolOpener) -> Iterator[ProxyMaker]:
    """``make_proxy(port)``: a Proxy to 127.0.0.1:port. Depends on open_pool so that the
    proxies close first at teardown: a connect or reset hung in a blackhole then ends at
    once and the pools close quickly."""
    proxies: list[Proxy] = []

    def factory(port: int) -> Proxy:
        proxy = Proxy(HOST, port)
        proxies.append(proxy)
        return proxy

    yield factory
    for proxy in proxies:
        proxy.close()


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_admin() -> Iterator[psycopg.Connection[Any]]:
    """A separate autocommit connection: kills backends, sends NOTIFYs, counts rows."""
    conn = psycopg.connect(host=HOST, port=PG_PORT, dbname="test", autocommit=True)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def pg_role(pg_admin: psycopg.Connection[Any]) -> Iterator[str]:
    """A throwaway role granted to the login user."""
    name = f"sp_async_role_{uuid.uuid4().hex[:12]}"
    pg_admin.execute(f'CREATE ROLE "{name}" NOLOGIN')
    pg_admin.execute(f'GRANT "{name}" TO CURRENT_USER')
    yield name
    pg_admin.execute(f'DROP OWNED BY "{name}"')
    pg_admin.execute(f'DROP ROLE "{name}"')


@pytest.fixture(scope="module")
def pg_table(pg_admin: psycopg.Connection[Any], pg_role: str) -> Iterator[str]:
    """A table (id serial, tag text UNIQUE); rows are told apart by tag."""
    name = f"sp_async_t_{uuid.uuid4().hex[:12]}"
    pg_admin.execute(f"CREATE TABLE {name} (id serial PRIMARY KEY, tag text NOT NULL UNIQUE)")
    pg_admin.execute(f'GRANT ALL ON {name} TO "{pg_role}"')
    yield name
    pg_admin.execute(f"DROP TABLE IF EXISTS {name}")


# -- MariaDB ------------------------------------------------------------------------------------


def my_admin_connection() -> Any:
    conn = pymysql.connect(host=HOST, port=MY_PORT, user="root", database="test", autocommit=True)
    with conn.cursor() as cursor:
        cursor.execute("SET SESSION lock_wait_timeout = 2")
        cursor.execute("SET SESSION innodb_lock_wait_timeout = 2")
    return conn


@pytest.fixture(scope="module")
def my_admin() -> Iterator[Any]:
    """A separate PyMySQL autocommit connection with 2 s lock waits."""
    conn = my_admin_connection()
    yield conn
    conn.close()
