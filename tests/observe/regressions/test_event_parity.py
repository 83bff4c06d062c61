"""Pool and AsyncPool tell the same story of the same workload: a review found the asyncio
shell skipping the "reset" event (and the `resets` counter) when the driver knew the connection
was clean while the threaded shell reported one; now neither reports a reset that did not
happen."""

from __future__ import annotations

from pathlib import Path

import sessionpool

KINDS = ("connect", "checkout", "checkin", "reset", "drop")


def test_pool_and_async_pool_report_the_same_events(tmp_path: Path) -> None:
    pool = sessionpool.create_pool(
        f"sqlite:///{tmp_path / 's.db'}", min_size=0, max_size=1, max_uses=2
    )
    seen: list[str] = []
    for kind in KINDS:
        pool.add_listener(kind, lambda event: seen.append(event.kind))
    for _ in range(2):
        with pool.acquire() as conn:
            conn.execute("select 1")
    sync_resets = pool.stats().resets
    pool.close()

    async def run() -> tuple[list[str], int]:
        apool = await sessionpool.create_async_pool(
            f"sqlite:///{tmp_path / 'a.db'}", min_size=0, max_size=1, max_uses=2
        )
        aseen: list[str] = []
        for kind in KINDS:
            apool.add_listener(kind, lambda event: aseen.append(event.kind))
        for _ in range(2):
            async with apool.acquire() as conn:
                await conn.execute("select 1")
        resets = apool.stats().resets
        await apool.close()
        return aseen, resets

    import asyncio

    async_seen, async_resets = asyncio.run(run())
    assert seen == [
        "connect",
        "checkout",
        "checkin",
        "checkout",
        "checkin",
        "drop",
    ]  # no reset: nothing left open
    assert async_seen == seen
    assert async_resets == sync_resets
