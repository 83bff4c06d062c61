"""docs/metrics.md: "count{idle} + count{used} <= max holds in every collection"."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import sessionpool
from sessionpool.observe.otel import instrument


def _points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, str], float]]]:
    data = reader.get_metrics_data()
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    if hasattr(point, "value"):
                        found.setdefault(metric.name, []).append(
                            (dict(point.attributes), float(point.value))
                        )
    return found


def _check(pool: sessionpool.Pool, reader: InMemoryMetricReader) -> None:
    points = _points(reader)
    counts = {a["db.client.connection.state"]: v for a, v in points["db.client.connection.count"]}
    (most,) = [v for _, v in points["db.client.connection.max"]]
    assert counts["idle"] + counts["used"] <= most, (counts, most)


def test_unbounded_overflow_count_exceeds_max(tmp_path: Path) -> None:
    """max_overflow=-1: `max` reports max_size, yet the pool lends more than that."""
    pool = sessionpool.create_pool(
        f"sqlite:///{tmp_path / 'a.db'}", min_size=0, max_size=1, max_overflow=-1, lazy=True
    )
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    handle = instrument(pool, provider, times=False)
    try:
        leases = [pool.acquire(timeout=5) for _ in range(3)]
        _check(pool, reader)
        for lease in leases:
            lease.release()
    finally:
        handle.uninstrument()
        pool.close(force=True)
        provider.shutdown()


def test_forced_open_count_exceeds_max(tmp_path: Path) -> None:
    """when_exhausted="force" opens beyond the hard cap; `max` still says the cap."""
    pool = sessionpool.create_pool(
        f"sqlite:///{tmp_path / 'b.db'}", min_size=0, max_size=1, lazy=True
    )
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    handle = instrument(pool, provider, times=False)
    try:
        first = pool.acquire(timeout=5)
        second = pool.acquire(timeout=5, when_exhausted="force")
        _check(pool, reader)
        first.release()
        second.release()
    finally:
        handle.uninstrument()
        pool.close(force=True)
        provider.shutdown()
