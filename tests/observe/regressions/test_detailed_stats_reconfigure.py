"""docs/metrics.md: "Registering a pool turns its detailed_stats on, so that use times are
recorded". `pool.detailed_stats = True` (what the exporter does) is forgotten by the next
`reconfigure()` of any unrelated setting: use times silently stop while Prometheus still
scrapes `sessionpool_use_seconds`."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

import sessionpool
from sessionpool.observe import prometheus


def test_reconfigure_keeps_detailed_stats_turned_on_by_prometheus(tmp_path: Path) -> None:
    pool = sessionpool.create_pool(f"sqlite:///{tmp_path / 'r.db'}", min_size=1, max_size=2)
    try:
        prometheus.register(pool, registry=CollectorRegistry())
        assert pool.detailed_stats
        pool.reconfigure(max_size=3)
        for _ in range(5):
            with pool.acquire(timeout=5) as lease:
                lease.execute("select 1")
        assert pool.detailed_stats
        assert pool.stats().use_time.count == 5
    finally:
        pool.close(force=True)


def test_reconfigure_keeps_detailed_stats_set_by_property(tmp_path: Path) -> None:
    pool = sessionpool.create_pool(f"sqlite:///{tmp_path / 'p.db'}", min_size=1, max_size=2)
    try:
        pool.detailed_stats = True
        pool.resize(max_size=4)
        assert pool.detailed_stats
    finally:
        pool.close(force=True)
