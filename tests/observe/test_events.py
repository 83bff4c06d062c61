"""Pool events on real SQLite pools, threaded and asyncio: order, payloads, isolation of a
failing listener, and the fast lanes untouched while nobody listens."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

import sessionpool
from sessionpool import ConfigError, PoolTimeout
from sessionpool.observe import EVENT_KINDS, PoolEvent
from tests.fakes.polling import eventually


class Recorder:
    """Collects events (from any thread) in arrival order."""

    def __init__(self) -> None:
        self.events: list[PoolEvent] = []
        self._lock = threading.Lock()

    def __call__(self, event: PoolEvent) -> None:
        with self._lock:
            self.events.append(event)

    def kinds(self) -> list[str]:
        with self._lock:
            return [event.kind for event in self.events]

    def of(self, kind: str) -> list[PoolEvent]:
        with self._lock:
            return [event for event in self.events if event.kind == kind]


def listen_all(pool: Any) -> Recorder:
    recorder = Recorder()
    for kind in EVENT_KINDS:
        pool.add_listener(kind, recorder)
    return recorder


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


def test_a_connections_life_in_order(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=0, max_size=1, max_uses=2, lazy=True)
    seen = listen_all(pool)
    for _ in range(2):
        with pool.acquire() as conn:
            conn.execute("create table if not exists t (x)")
            conn.execute("insert into t values (1)")  # left open: the reset rolls it back
    pool.close()
    eventually(lambda: "close" in seen.kinds(), "the retired connection closed")
    assert seen.kinds() == [
        "connect",
        "checkout",
        "checkin",
        "reset",
        "checkout",
        "checkin",  # its second use: max_uses reached, so dropped instead of reset
        "drop",
        "close",
    ]
    connect, checkout = seen.of("connect")[0], seen.of("checkout")[0]
    assert isinstance(connect.connection, sqlite3.Connection)
    assert {event.connection for event in seen.events} == {connect.connection}
    assert connect.duration is not None and connect.duration > 0
    assert checkout.duration is not None and checkout.duration >= 0
    assert all(event.pool == pool.name for event in seen.events)
    assert seen.of("drop")[0].reason == "max_uses reached"
    assert seen.of("close")[0].reason == "max_uses reached"
    held = seen.of("checkin")[0].duration
    assert held is not None and held >= 0


def test_no_reset_is_reported_when_nothing_was_left_open(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=1)
    seen = listen_all(pool)
    with pool.acquire() as conn:
        conn.execute("select 1")  # no transaction: the driver knows, nothing to reset
    assert "reset" not in seen.kinds()
    assert pool.stats().resets == 0
    pool.close()


def test_fast_lane_checkouts_are_reported_with_no_wait(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=1)
    pool.wait(5)
    seen = Recorder()
    pool.add_listener("checkout", seen)
    for _ in range(5):
        pool.acquire().release()
    checkouts = seen.of("checkout")
    assert len(checkouts) == 5
    assert [event.duration for event in checkouts] == [0.0] * 5
    pool.close()


def test_timeout_and_connect_error_events(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=1)
    seen = listen_all(pool)
    held = pool.acquire()
    with pytest.raises(PoolTimeout):
        pool.acquire(timeout=0.05)
    held.release()
    assert [event.duration for event in seen.of("timeout")] == [0.05]
    pool.close()

    def refuse() -> Any:
        raise sqlite3.OperationalError("unable to open database file")

    failing = sessionpool.create_pool(creator=refuse, min_size=0, max_size=1)
    errors = Recorder()
    failing.add_listener("connect_error", errors)
    with pytest.raises(sqlite3.OperationalError):  # never opened: the error at once
        failing.acquire(timeout=0.3)
    assert errors.of("connect_error")
    error = errors.of("connect_error")[0].error
    assert isinstance(error, sqlite3.OperationalError)
    failing.close()


def test_a_failed_reset_is_reported_then_the_connection_dropped(url: str) -> None:
    def broken_reset(connection: Any) -> None:
        raise sqlite3.OperationalError("reset refused")

    pool = sessionpool.create_pool(url, min_size=0, max_size=1, reset_on_return=broken_reset)
    seen = listen_all(pool)
    with pool.acquire() as conn:
        conn.execute("select 1")
    eventually(lambda: "close" in seen.kinds(), "the connection closed")
    assert seen.kinds()[-4:] == ["checkin", "reset", "drop", "close"]
    reset = seen.of("reset")[0]
    assert isinstance(reset.error, sqlite3.OperationalError)
    assert seen.of("drop")[0].reason == "reset on return failed"
    assert pool.stats().reset_failures == 1
    pool.close()


def test_a_listener_that_raises_is_logged_and_the_pool_carries_on(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=1)

    def broken(event: PoolEvent) -> None:
        raise RuntimeError("listener bug")

    after = Recorder()
    pool.add_listener("checkout", broken)
    pool.add_listener("checkout", after)
    with pool.acquire() as conn:
        assert conn.execute("select 7").fetchone() == (7,)
    assert len(after.of("checkout")) == 1  # the next listener still ran
    assert any("listener raised" in record.getMessage() for record in caplog.records)
    pool.close()


def test_listeners_come_and_go_and_the_fast_lanes_follow(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=1, max_size=1)
    assert not pool._lend_hooks and not pool._return_hooks  # nothing to do: fast lanes
    seen = Recorder()
    pool.add_listener("checkout", seen)
    assert pool._lend_hooks and not pool._return_hooks
    pool.add_listener("checkin", seen)
    assert pool._return_hooks and pool.detailed_stats
    pool.remove_listener("checkout", seen)
    pool.remove_listener("checkin", seen)
    assert not pool._lend_hooks and not pool._return_hooks and not pool.detailed_stats
    pool.acquire().release()
    assert seen.events == []
    with pytest.raises(ConfigError, match="not listening"):
        pool.remove_listener("checkin", seen)
    with pytest.raises(ConfigError, match="event kind must be one of"):
        pool.add_listener("checkot", seen)
    with pytest.raises(ConfigError, match="callable"):
        pool.add_listener("checkout", "print")  # type: ignore[arg-type]
    pool.close()


def test_listens_for_decorator(url: str) -> None:
    pool = sessionpool.create_pool(url, min_size=0, max_size=1)
    opened = []

    @pool.listens_for("connect")
    def on_connect(event: PoolEvent) -> None:
        opened.append(event.connection)

    pool.acquire().release()
    assert len(opened) == 1
    pool.close()


async def test_async_pool_reports_the_same_life(url: str) -> None:
    pool = await sessionpool.create_async_pool(
        url.replace("sqlite://", "sqlite+aiosqlite://"), min_size=0, max_size=1, max_uses=2
    )
    seen = listen_all(pool)
    for _ in range(2):
        async with pool.acquire() as conn:
            await conn.execute("create table if not exists t (x)")
            await conn.execute("insert into t values (1)")  # left open: rolled back
    with pytest.raises(PoolTimeout):
        async with pool.acquire():
            await pool.acquire(timeout=0.05)
    await pool.close()
    for _ in range(200):
        if seen.of("close"):
            break
        await asyncio.sleep(0.01)
    kinds = seen.kinds()
    assert kinds[:6] == ["connect", "checkout", "checkin", "reset", "checkout", "checkin"]
    assert "timeout" in kinds and "drop" in kinds and "close" in kinds
    assert seen.of("drop")[0].reason == "max_uses reached"
