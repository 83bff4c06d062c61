"""Shared fixtures and helpers of the threaded-pool tests: fake database, pool factory, polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import sessionpool
from sessionpool import Pool
from tests.fakes.fake_dbapi import FakeDatabase
from tests.fakes.polling import PATIENCE, eventually, wait_until

#: A password no message, repr or log record may ever show.
CANARY = "s3cr3t-canary"

# The polling helpers live in tests/fakes so the driver tests can use them too; they are
# re-exported here for the tests of this package.
__all__ = [
    "CANARY",
    "PATIENCE",
    "PoolFactory",
    "Worker",
    "assert_consistent",
    "db",
    "eventually",
    "make_pool",
    "start",
    "start_waiter",
    "wait_for_waiting",
    "wait_until",
]


class Worker(threading.Thread):
    """A daemon thread running fn once and keeping its result or the exception it raised."""

    def __init__(self, fn: Callable[[], Any], name: str = "test-worker") -> None:
        super().__init__(name=name, daemon=True)
        self._fn = fn
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished_at: float | None = None

    def run(self) -> None:
        try:
            self.value = self._fn()
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished_at = time.monotonic()

    def finish(self, timeout: float = PATIENCE) -> None:
        """Join, failing the test if the thread is still running after timeout seconds."""
        self.join(timeout)
        assert not self.is_alive(), f"{self.name} still blocked after {timeout} s"

    def result(self, timeout: float = PATIENCE) -> Any:
        """Join and return fn's result, re-raising what fn raised."""
        self.finish(timeout)
        if self.error is not None:
            raise self.error
        return self.value

    def exception(self, timeout: float = PATIENCE) -> BaseException | None:
        """Join and return what fn raised (None if it returned)."""
        self.finish(timeout)
        return self.error


def start(fn: Callable[[], Any], name: str = "test-worker") -> Worker:
    worker = Worker(fn, name)
    worker.start()
    return worker


def start_waiter(pool: Pool, name: str = "waiter", **acquire_args: Any) -> Worker:
    """Start a thread calling pool.acquire(**acquire_args) and return once it is queued."""
    acquire_args.setdefault("timeout", 5.0)
    before = pool.waiting
    worker = start(lambda: pool.acquire(**acquire_args), name)
    eventually(lambda: pool.waiting > before or not worker.is_alive(), f"{name} queued in the pool")
    assert worker.is_alive(), f"{name} did not wait: {worker.error!r} / {worker.value!r}"
    return worker


def wait_for_waiting(pool: Pool, count: int) -> None:
    """Assert that exactly count callers are queued in the pool within PATIENCE seconds."""
    eventually(lambda: pool.waiting == count, f"{count} caller(s) waiting (now {pool.waiting})")


def assert_consistent(pool: Pool, db: FakeDatabase) -> None:
    """Check the pool's figures agree with each other and with the connections really open.

    Call it when nothing is in flight (no connect running, nobody waiting).
    """
    eventually(lambda: pool.opening == 0, "no connection being opened")
    stats = pool.stats()
    assert stats.busy + stats.idle == stats.opened, stats
    assert stats.busy >= 0 and stats.idle >= 0, stats
    assert stats.waiting == 0, stats
    assert stats.connections_opened - stats.connections_closed == stats.opened, stats
    eventually(
        lambda: db.open_connections == pool.opened,
        f"driver connections open ({db.open_connections}) == pool.opened ({pool.opened})",
    )


PoolFactory = Callable[..., Pool]


@pytest.fixture
def db() -> Iterator[FakeDatabase]:
    with FakeDatabase() as database:  # releases any hang, even when the test fails
        yield database


@pytest.fixture
def make_pool(db: FakeDatabase) -> Iterator[PoolFactory]:
    """create_pool over db.connect (or the creator given), closed after the test.

    Tests get wait_timeout=5.0 unless they set it, so no acquire can block for the default 30 s.
    """
    pools: list[Pool] = []

    def factory(creator: Any = None, **settings: Any) -> Pool:
        settings.setdefault("wait_timeout", 5.0)
        pool = sessionpool.create_pool(creator if creator is not None else db.connect, **settings)
        pools.append(pool)
        return pool

    yield factory
    db.release_hangs()
    for pool in pools:
        pool.close(force=True)
