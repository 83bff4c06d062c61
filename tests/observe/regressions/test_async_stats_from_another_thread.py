"""docs/metrics.md: both exporters work for AsyncPool; a Prometheus scrape reads stats() on
the HTTP server's thread while the pool's loop runs on another. `snapshot()` iterates the
core's set of slots (for `acquires`) and its closed_by_reason dict: a loop that opens and
closes connections meanwhile makes the scrape raise RuntimeError ("changed size during
iteration"); AsyncPool._counts' retry loop only handles torn values, not this."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path

import sessionpool


def test_stats_from_a_scrape_thread_never_raises(tmp_path: Path) -> None:
    stop = threading.Event()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def churn() -> None:
        pool = await sessionpool.create_async_pool(
            f"sqlite:///{tmp_path / 'c.db'}", min_size=0, max_size=8, max_uses=1
        )
        holder["pool"] = pool
        ready.set()

        async def one() -> None:
            async with pool.acquire(timeout=30) as conn:
                await conn.execute("select 1")

        while not stop.is_set():
            await asyncio.gather(*(one() for _ in range(8)))
        await pool.close(force=True)

    loop_thread = threading.Thread(target=lambda: asyncio.run(churn()), daemon=True)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # thread switches as often as a busy process may see them
    errors: list[BaseException] = []
    try:
        loop_thread.start()
        assert ready.wait(30)
        pool = holder["pool"]
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not errors:
            try:
                pool.stats()  # type: ignore[attr-defined]
            except RuntimeError as exc:
                errors.append(exc)
    finally:
        sys.setswitchinterval(old)
        stop.set()
        loop_thread.join(30)
    assert not errors, repr(errors[0])
