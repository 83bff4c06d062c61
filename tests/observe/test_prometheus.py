"""The Prometheus exporter, tested by scraping: real pools (SQLite files, PostgreSQL, an
AsyncPool over aiosqlite) are driven by threads, /metrics is fetched over HTTP and parsed with
prometheus_client's own parser, and the figures are checked against pool.stats() and against
what the test itself counted (acquires that succeeded, PoolTimeout raised).
"""

from __future__ import annotations

import asyncio
import gc
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import sessionpool
from sessionpool.observe.prometheus import MetricsServer, PoolCollector, register, serve
from tests.fakes.polling import eventually
from tests.observe.workload import Tally, drive_async, drive_threads, force_wait_and_timeout

HISTOGRAMS = ("wait", "use", "connect", "reset")


class Scrape:
    """One GET of /metrics, parsed: sample values by name and labels."""

    def __init__(self, url: str) -> None:
        with urllib.request.urlopen(url, timeout=30.0) as response:
            assert response.status == 200
            self.text = response.read().decode()
        parsed = text_string_to_metric_families(self.text)
        self.families = {family.name: family for family in parsed}
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in self.families.values():
            for sample in family.samples:
                self.samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def pools(self) -> set[str]:
        return {dict(labels)["pool"] for _, labels in self.samples}

    def buckets(self, histogram: str, pool: str) -> list[tuple[float, float]]:
        pairs = [
            (float(dict(labels)["le"]), value)
            for (name, labels), value in self.samples.items()
            if name == f"{histogram}_bucket" and dict(labels)["pool"] == pool
        ]
        return sorted(pairs)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def server(registry: CollectorRegistry) -> Iterator[MetricsServer]:
    with serve(0, registry=registry) as running:
        yield running


@pytest.fixture
def pools() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for pool in opened:
        pool.close(force=True)


def sqlite_pool(pools: list[Any], path: Path, **settings: Any) -> Any:
    pool = sessionpool.create_pool(f"sqlite:///{path}", **settings)
    pools.append(pool)
    return pool


def check_consistent(scrape: Scrape, pool: str, max_size: int) -> None:
    """What must hold in any scrape, even one taken mid-load."""
    idle = scrape.value("sessionpool_connections", pool=pool, state="idle")
    used = scrape.value("sessionpool_connections", pool=pool, state="used")
    opening = scrape.value("sessionpool_connections", pool=pool, state="opening")
    assert min(idle, used, opening) >= 0
    assert idle + used + opening <= max_size
    assert scrape.value("sessionpool_connections_max", pool=pool) == max_size
    assert scrape.value("sessionpool_pending_requests", pool=pool) >= 0
    for kind in HISTOGRAMS:
        buckets = scrape.buckets(f"sessionpool_{kind}_seconds", pool)
        counts = [count for _, count in buckets]
        assert counts == sorted(counts), f"{kind} buckets not cumulative: {buckets}"
        assert buckets[-1][0] == float("inf")
        assert buckets[-1][1] == scrape.value(f"sessionpool_{kind}_seconds_count", pool=pool)


def check_matches_stats(scrape: Scrape, pool: Any, tally: Tally) -> None:
    """A scrape taken with the pool at rest against its stats() and the work done."""
    name = pool.name
    stats = pool.stats()
    assert scrape.value("sessionpool_connections", pool=name, state="idle") == stats.idle
    assert scrape.value("sessionpool_connections", pool=name, state="used") == 0 == stats.busy
    assert scrape.value("sessionpool_connections_min", pool=name) == stats.min_size
    assert scrape.value("sessionpool_pending_requests", pool=name) == 0
    assert scrape.value("sessionpool_busy_peak", pool=name) == stats.busy_peak == pool.max_size
    assert scrape.value("sessionpool_acquires_total", pool=name) == tally.acquired
    assert stats.acquires == tally.acquired
    assert scrape.value("sessionpool_timeouts_total", pool=name) == tally.timeouts >= 1
    assert scrape.value("sessionpool_errors_total", pool=name, kind="timeout") == tally.timeouts
    for kind, count in stats.errors.items():
        assert scrape.value("sessionpool_errors_total", pool=name, kind=kind) == count
    opened = scrape.value("sessionpool_connections_opened_total", pool=name)
    assert opened == stats.connections_opened >= 1
    # Every acquire that got a connection is one wait value (0 s when served at once), and
    # with detailed statistics on (registering turns them on) every return one use value.
    assert scrape.value("sessionpool_wait_seconds_count", pool=name) == tally.acquired
    assert scrape.value("sessionpool_use_seconds_count", pool=name) == tally.acquired
    assert scrape.value("sessionpool_wait_seconds_sum", pool=name) == pytest.approx(
        stats.wait_time.sum
    )
    assert scrape.value("sessionpool_wait_seconds_sum", pool=name) > 0  # one caller waited
    assert scrape.value("sessionpool_connect_seconds_count", pool=name) == opened
    for bound, count in scrape.buckets("sessionpool_wait_seconds", name):
        assert count == dict(stats.wait_time.cumulative())[bound]


def test_scrape_agrees_with_stats_and_the_work_done(
    tmp_path: Path, pools: list[Any], registry: CollectorRegistry, server: MetricsServer
) -> None:
    pool = sqlite_pool(pools, tmp_path / "app.db", min_size=1, max_size=2, name="orders")
    assert not pool.detailed_stats
    register(pool, registry=registry)
    assert pool.detailed_stats  # so that use times are recorded
    tally = Tally()
    force_wait_and_timeout(pool, tally)

    load = threading.Thread(target=drive_threads, args=(pool, tally))
    load.start()
    seen = []
    while load.is_alive() or not seen:  # scrapes taken during the load
        scrape = Scrape(server.url)
        check_consistent(scrape, "orders", max_size=2)
        seen.append(scrape.value("sessionpool_acquires_total", pool="orders"))
    load.join()
    assert seen == sorted(seen), "a counter went backwards between scrapes"

    eventually(lambda: pool.opening == 0 and pool.busy == 0, "the pool at rest")
    scrape = Scrape(server.url)
    check_consistent(scrape, "orders", max_size=2)
    check_matches_stats(scrape, pool, tally)

    # A connection dropped by its borrower is counted as closed, with its reason.
    pool.acquire(timeout=30.0).drop()
    eventually(lambda: pool.stats().connections_closed == 1, "the dropped connection closed")
    scrape = Scrape(server.url)
    by_reason = pool.stats().closed_by_reason
    assert sum(by_reason.values()) == 1
    for reason, count in by_reason.items():
        assert scrape.value("sessionpool_connections_closed_total", pool="orders", reason=reason)
        assert (
            scrape.value("sessionpool_connections_closed_total", pool="orders", reason=reason)
            == count
        )


def test_two_pools_in_one_registry(
    tmp_path: Path, pools: list[Any], registry: CollectorRegistry, server: MetricsServer
) -> None:
    first = sqlite_pool(pools, tmp_path / "a.db", max_size=2, name="first")
    second = sqlite_pool(pools, tmp_path / "b.db", max_size=3, name="second")
    collector = register(first, registry=registry)
    assert register(second, registry=registry) is collector  # one collector per registry
    register(first, registry=registry)  # again: no second set of series
    for pool, times in ((first, 3), (second, 5)):
        for _ in range(times):
            with pool.acquire(timeout=30.0) as connection:
                connection.cursor().execute("select 1")

    scrape = Scrape(server.url)
    assert scrape.pools() == {"first", "second"}
    assert scrape.value("sessionpool_acquires_total", pool="first") == 3
    assert scrape.value("sessionpool_acquires_total", pool="second") == 5
    assert scrape.value("sessionpool_connections_max", pool="second") == 3
    assert scrape.value("sessionpool_wait_seconds_count", pool="second") == 5
    # Each family once, with one series per pool (no duplicate series in the exposition).
    assert scrape.text.count("# TYPE sessionpool_acquires_total counter") == 1

    first.close()  # a closed pool leaves the scrape
    assert Scrape(server.url).pools() == {"second"}
    # A pool dropped without close() is collected (the collector holds it weakly) and
    # leaves the scrape too.
    pools.remove(second)
    del second, pool, connection
    eventually(lambda: gc.collect() is not None and collector.pools == [], "second collected")
    scrape = Scrape(server.url)
    assert scrape.pools() == set()
    assert scrape.families["sessionpool_acquires"].samples == []


def test_no_password_in_any_label(pools: list[Any], registry: CollectorRegistry) -> None:
    url = "postgresql://postgres:secret@127.0.0.1/test"  # trust auth: any password works
    default_named = sessionpool.create_pool(url, max_size=2)
    pools.append(default_named)
    # A name chosen carelessly, holding the DSN: its password is masked in the label.
    dsn_named = sessionpool.create_pool(url, max_size=2, name=url)
    pools.append(dsn_named)
    register(default_named, dsn_named, registry=registry)
    for pool in (default_named, dsn_named):
        with pool.acquire(timeout=30.0) as connection:
            cursor = connection.cursor()
            cursor.execute("select current_database()")
            assert cursor.fetchone()[0] == "test"
    with serve(0, registry=registry) as server:
        scrape = Scrape(server.url)
    assert "secret" not in scrape.text
    labels = scrape.pools()
    assert default_named.name.startswith("127.0.0.1:5432/test")
    assert default_named.name in labels
    assert "postgresql://postgres:***@127.0.0.1/test" in labels
    for label in labels:
        assert scrape.value("sessionpool_acquires_total", pool=label) == 1


def test_bad_use_is_refused(tmp_path: Path, pools: list[Any]) -> None:
    first = sqlite_pool(pools, tmp_path / "a.db", name="same")
    # Pool names are unique only among default names; two pools named alike by the user
    # would write into each other's series.
    twin = sqlite_pool(pools, tmp_path / "b.db", name="same")
    with pytest.raises(sessionpool.UsageError, match="same"):
        PoolCollector(first, twin)
    with pytest.raises(sessionpool.ConfigError, match="pools must be"):
        PoolCollector(object())
    for port in (-1, 65536, "9100", True):
        with pytest.raises(sessionpool.ConfigError, match="port"):
            serve(port)  # type: ignore[arg-type]
    with pytest.raises(sessionpool.ConfigError, match="addr"):
        serve(0, addr="")


async def test_async_pool_scrape(tmp_path: Path, registry: CollectorRegistry) -> None:
    pool = await sessionpool.create_async_pool(
        f"sqlite:///{tmp_path / 'async.db'}", min_size=1, max_size=2, name="async-orders"
    )
    try:
        register(pool, registry=registry)
        with serve(0, registry=registry) as server:
            tally = Tally()
            load = asyncio.ensure_future(drive_async(pool, tally))
            while not load.done():  # scrapes from another thread while the loop works
                scrape = await asyncio.to_thread(Scrape, server.url)
                check_consistent(scrape, "async-orders", max_size=2)
            await load
            scrape = await asyncio.to_thread(Scrape, server.url)
        check_consistent(scrape, "async-orders", max_size=2)
        check_matches_stats(scrape, pool, tally)
    finally:
        await pool.close(force=True)
