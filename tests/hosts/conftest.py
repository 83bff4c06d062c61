"""Fixtures of the multi-host tests: throwaway PostgreSQL clusters (one writable pair, one
read-only), a dead port and a silent port, and a uniform handle on sync and async pools."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import sessionpool
from tests.faults.pgcluster import ThrowawayPostgres, free_port

#: The pools under test: threaded pools over psycopg and psycopg2, asyncio pools over asyncpg
#: and psycopg's AsyncConnection; the MySQL file adds its own.
SYNC_KINDS = {
    "psycopg": "psycopg",
    "psycopg2": "psycopg2",
    "pymysql": "pymysql",
    "mysqlclient": "mysqldb",
}
ASYNC_KINDS = {
    "asyncpg": "asyncpg",
    "psycopg-async": "psycopg",
    "aiomysql": "aiomysql",
    # PyMySQL under an AsyncPool: its connects (and the host walk) on the pool's threads
    "pymysql-async": "pymysql",
}
#: Most seconds the test waits for a connection (a bound on the test, not a claim on speed).
ACQUIRE_BOUND = 60.0


def _cluster(read_only: bool = False) -> Iterator[ThrowawayPostgres]:
    cluster = ThrowawayPostgres()
    try:
        if read_only:
            with open(cluster.data / "postgresql.conf", "a") as conf:
                conf.write("default_transaction_read_only = on\n")
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="module")
def first() -> Iterator[ThrowawayPostgres]:
    """The preferred host; a test may stop it, and starts it again after."""
    yield from _cluster()


@pytest.fixture(scope="module")
def second() -> Iterator[ThrowawayPostgres]:
    yield from _cluster()


@pytest.fixture(scope="module")
def read_only() -> Iterator[ThrowawayPostgres]:
    """A cluster whose sessions are read-only (default_transaction_read_only = on), which
    libpq 14+ and asyncpg treat as not read-write."""
    yield from _cluster(read_only=True)


@pytest.fixture(scope="module")
def dead_port() -> int:
    """A port nothing listens on: a connect is refused at once."""
    return free_port()


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (the kernel's backlog) and never says a word: a
    connect hangs until the driver's connect timeout, as with a server that froze."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


class PoolHandle:
    """One pool of any kind, driven from a synchronous test."""

    def __init__(self, kind: str, url: str, **settings: Any) -> None:
        self.kind = kind
        settings = {"min_size": 1, "max_size": 2, "wait_timeout": ACQUIRE_BOUND, **settings}
        self.loop: asyncio.AbstractEventLoop | None = None
        if kind in SYNC_KINDS:
            self.pool: Any = sessionpool.create_pool(url, **settings)
        else:
            self.loop = asyncio.new_event_loop()
            try:
                self.pool = self.loop.run_until_complete(
                    sessionpool.create_async_pool(url, **settings)
                )
            except BaseException:
                self.loop.close()
                raise

    def server_port(self) -> int:
        """The port of the server a borrowed connection is talking to."""
        if self.loop is None:
            with self.pool.acquire() as lease:
                cursor = lease.cursor()
                cursor.execute(_PORT_QUERY[self.kind])
                return int(cursor.fetchone()[0])
        return int(self.loop.run_until_complete(self._server_port()))

    async def _server_port(self) -> Any:
        async with self.pool.acquire() as conn:
            if self.kind == "asyncpg":
                return await conn.fetchval(_PORT_QUERY[self.kind])
            if self.kind == "pymysql-async":  # a blocking connection: one quick query
                cursor = conn.cursor()
                cursor.execute(_PORT_QUERY[self.kind])
                return cursor.fetchone()[0]
            if self.kind == "aiomysql":
                async with conn.cursor() as cursor:
                    await cursor.execute(_PORT_QUERY[self.kind])
                    return (await cursor.fetchone())[0]
            cursor = await conn.execute(_PORT_QUERY[self.kind])
            return (await cursor.fetchone())[0]

    def close(self) -> None:
        if self.loop is None:
            self.pool.close(force=True)
            return
        try:
            self.loop.run_until_complete(self.pool.close(force=True))
        finally:
            self.loop.close()


_PG_PORT = "SELECT current_setting('port')"
_MY_PORT = "SELECT @@port"
_PORT_QUERY = {
    "psycopg": _PG_PORT,
    "psycopg2": _PG_PORT,
    "asyncpg": _PG_PORT,
    "psycopg-async": _PG_PORT,
    "pymysql": _MY_PORT,
    "mysqlclient": _MY_PORT,
    "aiomysql": _MY_PORT,
    "pymysql-async": _MY_PORT,
}


def scheme(kind: str, dialect: str) -> str:
    """``dialect+driver`` for a pool kind."""
    return f"{dialect}+{SYNC_KINDS.get(kind) or ASYNC_KINDS[kind]}"


@contextlib.contextmanager
def pool_of(kind: str, url: str, **settings: Any) -> Iterator[PoolHandle]:
    handle = PoolHandle(kind, url, **settings)
    try:
        yield handle
    finally:
        handle.close()


def open_error(kind: str, url: str, **settings: Any) -> BaseException:
    """The error opening a pool of this kind raises (the test fails if none is raised)."""
    try:
        PoolHandle(kind, url, **settings).close()
    except Exception as exc:
        return exc
    raise AssertionError(f"a {kind} pool on {url} opened")


def chain_texts(error: BaseException) -> str:
    """str() and repr() of an error and of every error chained to it, joined."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), *(repr(arg) for arg in current.args)]
        current = current.__cause__ or current.__context__
    return "\n".join(texts)
