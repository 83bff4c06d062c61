"""AsyncPool.close() while a keepalive check is in flight: the connection under check is
closed before close() returns, and the connector is disposed after it."""

from __future__ import annotations

import asyncio
from typing import Any

from sessionpool.drivers.async_base import AsyncConnector, AsyncDriver
from tests.aio.conftest import AsyncPoolFactory
from tests.fakes.fake_async import AsyncFakeDatabase
from tests.fakes.fake_dbapi import FakeDatabase

PINGING = asyncio.Event


class SlowPingDriver(AsyncDriver):
    name = "fake-async-slow-ping"
    pinging = 0

    async def ping(self, connection: Any, timeout: float) -> None:
        SlowPingDriver.pinging += 1
        await asyncio.sleep(0.5)  # a slow (but within ping_timeout) round trip


class Connector(AsyncConnector):
    def __init__(self, adb: AsyncFakeDatabase) -> None:
        self.adb = adb
        self.driver = SlowPingDriver()
        self.disposed_with_open = None

    async def connect(self, user: str | None = None, password: str | None = None) -> Any:
        return await self.adb.connect()

    async def dispose(self) -> None:
        self.disposed_with_open = self.adb.db.open_connections


async def test_close_during_keepalive_closes_everything(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    connector = Connector(adb)
    pool = await make_async_pool(connector, min_size=1, max_size=1, keepalive_interval=0.1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3
    while pool._core.checking == 0 and loop.time() < deadline:
        await asyncio.sleep(0.005)
    assert pool._core.checking == 1, "a keepalive check is in flight"
    await pool.close()
    open_after_close = db.open_connections
    stats = pool.stats()
    assert open_after_close == 0, (
        f"{open_after_close} driver connection(s) still open after close() returned; "
        f"opened={stats.opened} checking={pool._core.checking} "
        f"keepalive_failures={stats.keepalive_failures} "
        f"disposed_with_open={connector.disposed_with_open}"
    )


async def test_close_during_keepalive_disposes_connector(
    make_async_pool: AsyncPoolFactory, adb: AsyncFakeDatabase, db: FakeDatabase
) -> None:
    connector = Connector(adb)
    pool = await make_async_pool(connector, min_size=1, max_size=1, keepalive_interval=0.1)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3
    while pool._core.checking == 0 and loop.time() < deadline:
        await asyncio.sleep(0.005)
    assert pool._core.checking == 1
    await pool.close()
    await asyncio.sleep(1.0)  # let anything left behind finish
    assert db.open_connections == 0
    assert connector.disposed_with_open is not None, "the connector was never disposed"
