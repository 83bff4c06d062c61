"""The OpenTelemetry exporter, read back through the SDK's InMemoryMetricReader (pull): the
checks O1-O3 of reliability.md 8.3 on real pools (PostgreSQL under threads, SQLite files, an
AsyncPool over aiosqlite), against pool.stats() and what the test itself counted.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import sessionpool
from sessionpool.observe.histogram import BOUNDS
from sessionpool.observe.otel import instrument, stability_from_environment
from tests.fakes.polling import eventually
from tests.observe.workload import Tally, drive_async, drive_threads, force_wait_and_timeout

POOL = "db.client.connection.pool.name"
STATE = "db.client.connection.state"
#: The nine instruments of semantic conventions v1.26+ and their units (reliability.md 4.1).
UNITS = {
    "db.client.connection.count": "{connection}",
    "db.client.connection.idle.max": "{connection}",
    "db.client.connection.idle.min": "{connection}",
    "db.client.connection.max": "{connection}",
    "db.client.connection.pending_requests": "{request}",
    "db.client.connection.timeouts": "{timeout}",
    "db.client.connection.create_time": "s",
    "db.client.connection.wait_time": "s",
    "db.client.connection.use_time": "s",
}
#: The same up to v1.25: other names, "pool.name" and "state", times in milliseconds.
LEGACY_UNITS = {
    "db.client.connections.usage": "{connection}",
    "db.client.connections.idle.max": "{connection}",
    "db.client.connections.idle.min": "{connection}",
    "db.client.connections.max": "{connection}",
    "db.client.connections.pending_requests": "{request}",
    "db.client.connections.timeouts": "{timeout}",
    "db.client.connections.create_time": "ms",
    "db.client.connections.wait_time": "ms",
    "db.client.connections.use_time": "ms",
}


class Reading:
    """One collection: the metrics by name (each name must appear once)."""

    def __init__(self, reader: InMemoryMetricReader) -> None:
        data = reader.get_metrics_data()
        self.metrics: dict[str, Any] = {}
        if data is None:
            return
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                assert scope_metrics.scope.name == "sessionpool"
                for metric in scope_metrics.metrics:
                    assert metric.name not in self.metrics, f"{metric.name} reported twice"
                    self.metrics[metric.name] = metric

    def point(self, name: str, **attributes: str) -> Any:
        """The one data point of ``name`` with exactly these attributes."""
        found = [
            point
            for point in self.metrics[name].data.data_points
            if dict(point.attributes) == attributes
        ]
        assert len(found) == 1, (name, attributes, self.metrics[name].data.data_points)
        return found[0]

    def value(self, name: str, **attributes: str) -> float:
        return float(self.point(name, **attributes).value)

    def pools(self, name: str, key: str = POOL) -> set[str]:
        return {point.attributes[key] for point in self.metrics[name].data.data_points}


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    memory.provider = provider  # type: ignore[attr-defined]
    yield memory
    provider.shutdown()


@pytest.fixture
def pools() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for pool in opened:
        pool.close(force=True)


def open_pool(pools: list[Any], url: str, **settings: Any) -> Any:
    pool = sessionpool.create_pool(url, **settings)
    pools.append(pool)
    return pool


def check_counts(reading: Reading, pool: str, most: int, key: str = POOL) -> None:
    """count{idle} + count{used} <= max, at any collection."""
    prefix, count, state = (
        ("db.client.connection.", "count", STATE)
        if key == POOL
        else ("db.client.connections.", "usage", "state")
    )
    idle = reading.value(prefix + count, **{key: pool, state: "idle"})
    used = reading.value(prefix + count, **{key: pool, state: "used"})
    assert idle >= 0 and used >= 0
    assert idle + used <= reading.value(prefix + "max", **{key: pool}) == most
    assert reading.value(prefix + "pending_requests", **{key: pool}) >= 0


def check_after_load(reading: Reading, pool: Any, tally: Tally) -> None:
    """O1 with the pool at rest: everything present, and the figures the work implies."""
    name = pool.name
    stats = pool.stats()
    for metric, unit in UNITS.items():
        assert metric in reading.metrics, f"{metric} missing"
        assert reading.metrics[metric].unit == unit, metric
    check_counts(reading, name, pool.max_size)
    assert reading.value("db.client.connection.count", **{POOL: name, STATE: "used"}) == 0
    assert reading.value("db.client.connection.count", **{POOL: name, STATE: "idle"}) == stats.idle
    assert reading.value("db.client.connection.idle.max", **{POOL: name}) == pool.max_size
    assert reading.value("db.client.connection.idle.min", **{POOL: name}) == pool.min_size
    assert reading.value("db.client.connection.pending_requests", **{POOL: name}) == 0
    assert reading.value("db.client.connection.timeouts", **{POOL: name}) == tally.timeouts >= 1
    wait = reading.point("db.client.connection.wait_time", **{POOL: name})
    assert wait.count == tally.acquired == stats.acquires
    assert wait.sum == pytest.approx(stats.wait_time.sum)
    assert wait.sum > 0  # one caller waited for a connection another held
    assert tuple(wait.explicit_bounds) == BOUNDS  # the bucket advice was taken
    assert list(wait.bucket_counts) == list(stats.wait_time.counts)
    use = reading.point("db.client.connection.use_time", **{POOL: name})
    assert use.count == tally.acquired
    create = reading.point("db.client.connection.create_time", **{POOL: name})
    assert create.count == stats.connections_opened >= 1


def test_o1_all_instruments_under_threads_on_postgresql(
    reader: InMemoryMetricReader, pools: list[Any]
) -> None:
    # min_size=0: every connection is opened after instrument(), so create_time sees them all.
    pool = open_pool(pools, "postgresql://127.0.0.1/test", min_size=0, max_size=3)
    handle = instrument(pool, reader.provider, stability="database")  # type: ignore[attr-defined]
    assert handle.pool_name == pool.name
    tally = Tally()
    force_wait_and_timeout(pool, tally)

    load = threading.Thread(target=drive_threads, args=(pool, tally), kwargs={"threads": 8})
    load.start()
    collections = 0
    while load.is_alive() or collections == 0:  # collections taken during the load
        check_counts(Reading(reader), pool.name, most=3)
        collections += 1
    load.join()

    eventually(lambda: pool.busy == 0 and pool.opening == 0, "the pool at rest")
    check_after_load(Reading(reader), pool, tally)


def test_o2_database_dup_emits_both_name_sets(
    tmp_path: Path, reader: InMemoryMetricReader, pools: list[Any]
) -> None:
    pool = open_pool(pools, f"sqlite:///{tmp_path / 'dup.db'}", min_size=0, max_size=2)
    instrument(pool, reader.provider, stability="database/dup")  # type: ignore[attr-defined]
    tally = Tally()
    force_wait_and_timeout(pool, tally)
    drive_threads(pool, tally, threads=4, rounds=10)

    reading = Reading(reader)
    check_after_load(reading, pool, tally)
    for metric, unit in LEGACY_UNITS.items():
        assert metric in reading.metrics, f"{metric} missing"
        assert reading.metrics[metric].unit == unit, metric
    name = pool.name
    check_counts(reading, name, pool.max_size, key="pool.name")
    assert reading.value("db.client.connections.timeouts", **{"pool.name": name}) == tally.timeouts
    for kind in ("create_time", "wait_time", "use_time"):
        current = reading.point(f"db.client.connection.{kind}", **{POOL: name})
        legacy = reading.point(f"db.client.connections.{kind}", **{"pool.name": name})
        assert legacy.count == current.count > 0
        assert legacy.sum == pytest.approx(current.sum * 1000.0)  # milliseconds
        assert list(legacy.bucket_counts) == list(current.bucket_counts)
        assert tuple(legacy.explicit_bounds) == pytest.approx([b * 1000.0 for b in BOUNDS])


def test_stability_defaults_to_the_environment(
    tmp_path: Path, reader: InMemoryMetricReader, pools: list[Any], monkeypatch: Any
) -> None:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    assert stability_from_environment() == "database"
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, database")
    assert stability_from_environment() == "database"
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database/dup")
    pool = open_pool(pools, f"sqlite:///{tmp_path / 'env.db'}", max_size=2)
    handle = instrument(pool, reader.provider)  # type: ignore[attr-defined]
    assert handle.stability == "database/dup"
    reading = Reading(reader)
    assert reading.value("db.client.connections.max", **{"pool.name": pool.name}) == 2
    assert reading.value("db.client.connection.max", **{POOL: pool.name}) == 2

    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN")
    other = open_pool(pools, f"sqlite:///{tmp_path / 'env2.db'}", max_size=2)
    assert instrument(other, reader.provider).stability == "database"  # type: ignore[attr-defined]
    reading = Reading(reader)
    assert reading.pools("db.client.connection.max") == {pool.name, other.name}
    assert reading.pools("db.client.connections.max", "pool.name") == {pool.name}


def test_o3_pool_name_never_holds_credentials(
    reader: InMemoryMetricReader, pools: list[Any]
) -> None:
    url = "postgresql://postgres:secret@127.0.0.1:5432/test?application_name=o3"
    default_named = open_pool(pools, url, max_size=2)
    dsn_named = open_pool(pools, url, max_size=2, name=url)  # a careless name, masked
    provider = reader.provider  # type: ignore[attr-defined]
    for pool in (default_named, dsn_named):
        instrument(pool, provider, stability="database/dup")
        with pool.acquire(timeout=30.0) as connection:
            cursor = connection.cursor()
            cursor.execute("select current_setting('application_name')")
            assert cursor.fetchone()[0] == "o3"

    reading = Reading(reader)
    # The default is OpenTelemetry's server.address:server.port/db.namespace.
    assert default_named.name.split("#")[0] == "127.0.0.1:5432/test"
    names = reading.pools("db.client.connection.count")
    assert names == {
        default_named.name,
        "postgresql://postgres:***@127.0.0.1:5432/test?application_name=o3",
    }
    for metric in reading.metrics.values():
        for point in metric.data.data_points:
            for value in point.attributes.values():
                assert "secret" not in value, (metric.name, value)


def test_uninstrument_and_bad_use(
    tmp_path: Path, reader: InMemoryMetricReader, pools: list[Any]
) -> None:
    provider = reader.provider  # type: ignore[attr-defined]
    kept = open_pool(pools, f"sqlite:///{tmp_path / 'kept.db'}", max_size=2, name="kept")
    gone = open_pool(pools, f"sqlite:///{tmp_path / 'gone.db'}", max_size=2, name="gone")
    instrument(kept, provider)
    handle = instrument(gone, provider)
    assert gone.detailed_stats  # the "checkin" listener records use times
    with pytest.raises(sessionpool.UsageError, match="already instrumented"):
        instrument(gone, provider)
    for pool in (kept, gone):
        pool.acquire().release()
    assert Reading(reader).pools("db.client.connection.max") == {"kept", "gone"}

    handle.uninstrument()
    handle.uninstrument()  # again: nothing more to do
    assert not handle.active and not gone.detailed_stats
    for pool in (kept, gone):
        pool.acquire().release()
    reading = Reading(reader)
    assert reading.pools("db.client.connection.max") == {"kept"}
    assert reading.point("db.client.connection.wait_time", **{POOL: "gone"}).count == 1
    assert reading.point("db.client.connection.wait_time", **{POOL: "kept"}).count == 2
    instrument(gone, provider).uninstrument()  # may be instrumented again once taken down

    # times=False: the six observed instruments, no listener, the fast lane kept.
    light = instrument(gone, provider, times=False)
    assert not gone.detailed_stats
    gone.acquire().release()
    reading = Reading(reader)
    assert reading.pools("db.client.connection.max") == {"kept", "gone"}
    assert reading.point("db.client.connection.wait_time", **{POOL: "gone"}).count == 1
    light.uninstrument()

    with pytest.raises(sessionpool.ConfigError, match="stability"):
        instrument(kept, provider, stability="dup")
    with pytest.raises(sessionpool.ConfigError, match="times"):
        instrument(gone, provider, times=1)  # type: ignore[arg-type]
    with pytest.raises(sessionpool.ConfigError, match="pool must be"):
        instrument(object(), provider)


async def test_async_pool(tmp_path: Path, reader: InMemoryMetricReader) -> None:
    pool = await sessionpool.create_async_pool(
        f"sqlite:///{tmp_path / 'async.db'}", min_size=0, max_size=2, name="async-orders"
    )
    try:
        instrument(pool, reader.provider)  # type: ignore[attr-defined]
        tally = Tally()
        load = asyncio.ensure_future(drive_async(pool, tally))
        while not load.done():  # collections between the borrowers' steps
            check_counts(Reading(reader), "async-orders", most=2)
            await asyncio.sleep(0.001)
        await load
        check_after_load(Reading(reader), pool, tally)
    finally:
        await pool.close(force=True)
