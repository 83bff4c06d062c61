"""README "Events": each connection's life is `connect` ... `drop` then `close`, and
`connect_time`/`connections_opened` count the connects. reset_on_return="full" on a driver
that cannot reset in place opens a new connection into the slot: it gets no "connect" event,
no connect_time, and the replaced one is closed with no "drop" before it."""

from __future__ import annotations

import contextlib
from typing import Any

import sessionpool
from tests.fakes.fake_dbapi import FakeDatabase
from tests.fakes.polling import eventually


def test_every_driver_connection_gets_a_connect_event() -> None:
    with FakeDatabase() as db:
        pool = sessionpool.create_pool(
            db.connect, min_size=0, max_size=1, reset_on_return="full", wait_timeout=5
        )
        events: list[tuple[str, Any]] = []
        for kind in ("connect", "drop", "close"):
            pool.add_listener(kind, lambda event: events.append((event.kind, event.connection)))
        try:
            for _ in range(3):
                with pool.acquire(timeout=5) as lease:
                    lease.cursor().execute("select 1")
            eventually(lambda: db.connects == 4, "one connect and three reopens")
            stats = pool.stats()
            connected = {id(c) for kind, c in events if kind == "connect"}
            closed = [c for kind, c in events if kind == "close"]
            dropped = {id(c) for kind, c in events if kind == "drop"}
            # Every connection the pool opened is announced and timed.
            assert stats.connections_opened == db.connects, (stats.connections_opened, db.connects)
            assert stats.connect_time.count == db.connects
            # Every connection closed was announced when it opened, and dropped first.
            assert all(id(c) in connected for c in closed)
            assert all(id(c) in dropped for c in closed)
        finally:
            pool.close(force=True)


def test_failed_on_connect_reports_connect_error_only() -> None:
    """A connection whose on_connect fails is closed with a "close" event that no "connect"
    (nor "drop") preceded, and before its "connect_error"."""

    def on_connect(connection: Any) -> None:
        raise RuntimeError("set-up failed")

    with FakeDatabase() as db:
        pool = sessionpool.create_pool(
            db.connect, min_size=0, max_size=1, lazy=True, on_connect=on_connect, wait_timeout=5
        )
        events: list[tuple[str, Any]] = []
        for kind in ("connect", "connect_error", "drop", "close"):
            pool.add_listener(kind, lambda event: events.append((event.kind, event.connection)))
        try:
            with contextlib.suppress(Exception):
                pool.acquire(timeout=1)
            eventually(lambda: any(kind == "connect_error" for kind, _ in events), "failure")
            connected = {id(c) for kind, c in events if kind == "connect"}
            closed = [c for kind, c in events if kind == "close"]
            assert all(id(c) in connected for c in closed), [k for k, _ in events]
        finally:
            pool.close(force=True)
