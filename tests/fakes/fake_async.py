"""Scriptable asyncio fake of a database driver, built on `fake_dbapi.FakeDatabase`.

``AsyncFakeDatabase(db).connect`` is a coroutine function returning an `AsyncFakeConnection`
that wraps one `FakeConnection` of ``db``: every knob of ``db`` (``connect_delay``,
``fail_next_connects``, ``fail_all_connects``, ``hang_connects``, ``kill``, ``fail_commit``,
``fail_rollback``, ``close_raises``, ``set_result``, ``set_error``...) applies, and its counters
(``connects``, ``connections``, ``open_connections``, ``statements``) count these connections.
Delays of ``db`` are slept with ``asyncio.sleep``, never ``time.sleep``; a connect while
``db.hang_connects()`` is active runs on a worker thread, so the event loop never blocks.

The asyncio knobs of its own: ``hang_connects()`` / ``release_hangs()`` (connects await an
``asyncio.Event``), and ``connect_delay``, ``rollback_delay``, ``commit_delay``,
``close_delay``, ``execute_delay`` (seconds of ``asyncio.sleep`` before the operation).

The module is named so that sessionpool recognises no known driver in it (``tests.fakes``):
an AsyncPool treats these connections with its generic AsyncDriver (a ``rollback()``
coroutine on return, a ``close()`` coroutine to close). It must not import sessionpool.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from tests.fakes.fake_dbapi import (
    Description,
    FakeConnection,
    FakeCursor,
    FakeDatabase,
    OperationalError,
    Row,
    Statement,
)

__all__ = ["AsyncFakeConnection", "AsyncFakeCursor", "AsyncFakeDatabase"]


@contextlib.contextmanager
def _zero_query_delay(db: FakeDatabase) -> Iterator[None]:
    """Run a FakeDatabase call without its blocking ``time.sleep(query_delay)``.

    No await happens inside, so no other task of the loop sees the zeroed value.
    """
    saved = db.query_delay
    db.query_delay = 0.0
    try:
        yield
    finally:
        db.query_delay = saved


class AsyncFakeDatabase:
    """The asyncio face of one `FakeDatabase`. Use ``adb.connect`` as an AsyncPool creator."""

    def __init__(self, db: FakeDatabase | None = None) -> None:
        self.db = db if db is not None else FakeDatabase()
        self.connect_delay = 0.0
        self.rollback_delay = 0.0
        self.commit_delay = 0.0
        self.close_delay = 0.0
        self.execute_delay = 0.0
        #: Every AsyncFakeConnection made, in order (parallel to ``db.connections``).
        self.connections: list[AsyncFakeConnection] = []
        #: Connect coroutines started (counted before any hang or delay).
        self.attempts = 0
        self._hang: asyncio.Event | None = None
        self._hang_max_wait = 10.0
        self._hanging = 0

    def __repr__(self) -> str:
        return f"<AsyncFakeDatabase over {self.db!r} hanging={self._hanging}>"

    # -- connecting ----------------------------------------------------------------------

    async def connect(self, **kwargs: Any) -> AsyncFakeConnection:
        """Open a connection. Order: count the attempt, await while hung (asyncio knob),
        sleep ``connect_delay`` (this object's, then ``db``'s), then ``db.connect()``, which
        raises if a connect failure is scripted there."""
        self.attempts += 1
        event = self._hang
        if event is not None:
            self._hanging += 1
            try:
                await asyncio.wait_for(event.wait(), self._hang_max_wait)
            except asyncio.TimeoutError:
                raise OperationalError(
                    f"hung connect was not released within {self._hang_max_wait} s"
                ) from None
            finally:
                self._hanging -= 1
        if self.connect_delay > 0:
            await asyncio.sleep(self.connect_delay)
        db = self.db
        if db._hang_event is not None:
            # FakeDatabase's own (threading) hang: block a worker thread, not the loop.
            raw = await asyncio.to_thread(db.connect, **kwargs)
        else:
            delay = db.connect_delay
            if delay > 0:
                await asyncio.sleep(delay)
            saved = db.connect_delay
            db.connect_delay = 0.0
            try:
                raw = db.connect(**kwargs)
            finally:
                db.connect_delay = saved
        conn = AsyncFakeConnection(self, raw)
        self.connections.append(conn)
        return conn

    def hang_connects(self, max_wait: float = 10.0) -> None:
        """Make connects await until ``release_hangs()`` (at most ``max_wait`` seconds, then
        they raise ``OperationalError``)."""
        if self._hang is None:
            self._hang = asyncio.Event()
        self._hang_max_wait = max_wait

    def release_hangs(self) -> None:
        """Let every hung connect go on, and stop hanging new ones (also ``db``'s hangs)."""
        event, self._hang = self._hang, None
        if event is not None:
            event.set()
        self.db.release_hangs()

    @property
    def hanging(self) -> int:
        """Connects awaiting ``release_hangs()`` now."""
        return self._hanging

    async def wait_for_hanging(self, n: int = 1, timeout: float = 1.0) -> bool:
        """Wait until at least ``n`` connects hang; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._hanging < n:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.002)
        return True

    # -- what the wrapped database knows -------------------------------------------------

    @property
    def open_connections(self) -> int:
        return self.db.open_connections

    def wrapper_of(self, raw: FakeConnection) -> AsyncFakeConnection:
        for conn in self.connections:
            if conn.raw is raw:
                return conn
        raise LookupError(f"{raw!r} was not opened through {self!r}")


class AsyncFakeConnection:
    """An asyncio connection wrapping one `FakeConnection` (``raw``).

    Coroutines: ``cursor()``, ``execute(sql, params)`` (a shortcut returning the cursor),
    ``commit()``, ``rollback()``, ``close()``. The raw connection's test attributes are
    readable here too (``id``, ``closed``, ``dead``, ``in_transaction``, ``commits``,
    ``rollbacks``, ``close_calls``, ``statements``, ``kwargs``, ``user``).
    """

    def __init__(self, database: AsyncFakeDatabase, raw: FakeConnection) -> None:
        self.database = database
        self.raw = raw

    def __repr__(self) -> str:
        return f"<AsyncFakeConnection of {self.raw!r}>"

    # -- the raw connection's state, read-only -------------------------------------------

    @property
    def id(self) -> int:
        return self.raw.id

    @property
    def closed(self) -> bool:
        return self.raw.closed

    @property
    def dead(self) -> bool:
        return self.raw.dead

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    @property
    def commits(self) -> int:
        return self.raw.commits

    @property
    def rollbacks(self) -> int:
        return self.raw.rollbacks

    @property
    def close_calls(self) -> int:
        return self.raw.close_calls

    @property
    def statements(self) -> list[Statement]:
        return self.raw.statements

    @property
    def kwargs(self) -> dict[str, Any]:
        return self.raw.kwargs

    @property
    def user(self) -> Any:
        return self.raw.user

    # -- the driver API, as coroutines ---------------------------------------------------

    async def cursor(self) -> AsyncFakeCursor:
        return AsyncFakeCursor(self, self.raw.cursor())

    async def execute(self, sql: str, params: Any = None) -> AsyncFakeCursor:
        cursor = await self.cursor()
        await cursor.execute(sql, params)
        return cursor

    async def commit(self) -> None:
        if self.database.commit_delay > 0:
            await asyncio.sleep(self.database.commit_delay)
        self.raw.commit()

    async def rollback(self) -> None:
        if self.database.rollback_delay > 0:
            await asyncio.sleep(self.database.rollback_delay)
        self.raw.rollback()

    async def close(self) -> None:
        if self.database.close_delay > 0:
            await asyncio.sleep(self.database.close_delay)
        self.raw.close()


class AsyncFakeCursor:
    """A cursor of an `AsyncFakeConnection`; ``execute``/``fetch*``/``close`` are coroutines."""

    def __init__(self, connection: AsyncFakeConnection, raw: FakeCursor) -> None:
        self.connection = connection
        self.raw = raw

    @property
    def description(self) -> Description | None:
        return self.raw.description

    @property
    def rowcount(self) -> int:
        return self.raw.rowcount

    async def _delay(self) -> None:
        database = self.connection.database
        delay = database.execute_delay + database.db.query_delay
        if delay > 0:
            await asyncio.sleep(delay)

    async def execute(self, sql: str, params: Any = None) -> AsyncFakeCursor:
        await self._delay()
        with _zero_query_delay(self.connection.database.db):
            self.raw.execute(sql, params)
        return self

    async def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> AsyncFakeCursor:
        await self._delay()
        with _zero_query_delay(self.connection.database.db):
            self.raw.executemany(sql, seq_of_params)
        return self

    async def fetchone(self) -> Row | None:
        return self.raw.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Row]:
        return self.raw.fetchmany(size)

    async def fetchall(self) -> list[Row]:
        return self.raw.fetchall()

    async def close(self) -> None:
        self.raw.close()
