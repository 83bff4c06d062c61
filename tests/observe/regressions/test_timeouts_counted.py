"""Promise: the `timeouts` counter (and "timeout" events, and OTel/Prometheus timeouts) equal
the PoolTimeout errors acquire() raised. The purity="new" path raises a PoolTimeout of its own
("no fresh session within ...") that is neither counted nor announced."""

from __future__ import annotations

from pathlib import Path

import pytest

import sessionpool
from sessionpool import PoolTimeout


def test_threaded_no_fresh_session_timeout_is_counted(tmp_path: Path) -> None:
    pool = sessionpool.create_pool(f"sqlite:///{tmp_path / 't.db'}", min_size=1, max_size=1)
    events: list[str] = []
    pool.add_listener("timeout", lambda event: events.append(event.kind))
    try:
        with pool.acquire(timeout=5) as lease:
            raw = lease.driver_connection  # used: no longer a fresh session
        raw.close()  # so its full reset for purity="new" fails
        with pytest.raises(PoolTimeout):
            pool.acquire(timeout=0, purity="new")
        assert pool.stats().timeouts == 1
        assert events == ["timeout"]
    finally:
        pool.close(force=True)


@pytest.mark.asyncio
async def test_async_no_fresh_session_timeout_is_counted(tmp_path: Path) -> None:
    pool = await sessionpool.create_async_pool(
        f"sqlite:///{tmp_path / 'a.db'}", min_size=1, max_size=1
    )
    events: list[str] = []
    pool.add_listener("timeout", lambda event: events.append(event.kind))
    try:
        async with pool.acquire(timeout=5) as lease:
            raw = lease.driver_connection
        await raw.close()
        with pytest.raises(PoolTimeout):
            await pool.acquire(timeout=0, purity="new")
        assert pool.stats().timeouts == 1
        assert events == ["timeout"]
    finally:
        await pool.close(force=True)
