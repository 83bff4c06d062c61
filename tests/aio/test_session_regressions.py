"""AsyncSession, regressions from review: commit or rollback inside a nested scope, and
the sqlite begin mode an autocommit session puts back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

import sessionpool
from sessionpool import AsyncPool

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture(
    params=["sqlite", "sqlite+sqlite3"], ids=["aiosqlite", "sqlite3-thread-pool"]
)
async def pool(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncPool]:
    url = f"{request.param}:///{tmp_path / 'app.db'}"
    pool = await sessionpool.create_async_pool(url, min_size=1, max_size=2, wait_timeout=5)
    async with pool.session() as session:
        await session.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    yield pool
    await pool.close(force=True)


async def test_commit_inside_a_nested_scope_does_not_raise_indexerror(pool: AsyncPool) -> None:
    async def body() -> None:
        async with pool.session() as s, s:
            await s.execute("INSERT INTO items (name) VALUES ('a')")
            await s.commit()

    await asyncio.wait_for(body(), 10)
    assert pool.busy == 0


async def test_sqlite_autocommit_session_puts_back_the_connections_own_begin_mode(
    tmp_path: Path,
) -> None:
    pool = await sessionpool.create_async_pool(
        f"sqlite+sqlite3:///{tmp_path / 'i.db'}",
        min_size=1,
        max_size=1,
        connect_args={"isolation_level": "IMMEDIATE"},
    )
    try:
        async with pool.acquire() as conn:
            before = conn.driver_connection.isolation_level
        assert before == "IMMEDIATE"
        async with pool.session(autocommit=True) as s:
            await s.execute("SELECT 1")
        async with pool.acquire() as conn:
            after = conn.driver_connection.isolation_level
        assert after == before, f"autocommit session leaked begin mode {after!r}"
    finally:
        await pool.close(force=True)
