"""Prometheus exporter: a collector that reads pools' stats() at scrape time, and an HTTP server.

Needs the ``prometheus`` extra (prometheus-client). Reads figures only: it never acquires a
connection or changes a pool, apart from turning detailed statistics on so that use times
are recorded. Pools are held weakly: a pool collected or closed leaves the scrape.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

try:
    from prometheus_client.core import (
        REGISTRY,
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import start_http_server
    from prometheus_client.registry import CollectorRegistry
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "sessionpool.observe.prometheus needs prometheus-client: "
        "pip install 'sessionpool[prometheus]'"
    ) from exc

from ..errors import ConfigError, UsageError
from .labels import pool_label
from .stats import PoolStats

__all__ = ["MetricsServer", "PoolCollector", "register", "serve"]

_HISTOGRAMS = (
    ("sessionpool_wait_seconds", "wait_time", "Time an acquire waited for a connection."),
    ("sessionpool_use_seconds", "use_time", "Time a borrower held a connection."),
    ("sessionpool_connect_seconds", "connect_time", "Time to open a connection."),
    ("sessionpool_reset_seconds", "reset_time", "Time to reset a returned connection."),
)


class PoolCollector:
    """A prometheus_client collector for one or more pools (Pool or AsyncPool).

    Each scrape takes one ``stats()`` snapshot per live, open pool and renders the
    ``sessionpool_*`` families, labelled ``pool`` with the pool's name. Adding a pool turns
    its ``detailed_stats`` on, so that ``sessionpool_use_seconds`` is recorded (this sends
    returns off the fast lane; see docs/metrics.md for what that costs).

    Args:
        *pools: the pools to report; more can be added with `add`.

    Raises:
        UsageError: two pools with the same name (their series would collide).
    """

    def __init__(self, *pools: Any) -> None:
        self._lock = threading.Lock()
        self._pools: list[weakref.ref[Any]] = []
        for pool in pools:
            self.add(pool)

    def add(self, pool: Any) -> None:
        """Report ``pool`` too (adding one already reported does nothing).

        Raises:
            UsageError: another pool reported here has the same name.
        """
        if not callable(getattr(pool, "stats", None)):
            raise ConfigError(f"pools must be sessionpool pools, not {type(pool).__name__}")
        with self._lock:
            live = self._live()
            if any(other is pool for other in live):
                return
            label = pool_label(pool)
            if any(pool_label(other) == label for other in live):
                raise UsageError(
                    f"a pool named {label!r} is already reported by this collector; give "
                    "each pool its own name= so that their series stay apart"
                )
            pool.detailed_stats = True
            self._pools.append(weakref.ref(pool))

    def remove(self, pool: Any) -> None:
        """Stop reporting ``pool`` (its detailed statistics stay as they are)."""
        with self._lock:
            self._pools = [ref for ref in self._pools if ref() not in (None, pool)]

    @property
    def pools(self) -> list[Any]:
        """The pools reported now: alive and not closed."""
        with self._lock:
            return [pool for pool in self._live() if not pool.closed]

    def describe(self) -> Iterable[Metric]:
        """The families with no samples, so that a registry can refuse a clash of names."""
        return list(_families([]))

    def collect(self) -> Iterable[Metric]:
        """The families with one sample set per pool (prometheus_client calls this)."""
        return list(_families([(pool_label(pool), pool.stats()) for pool in self.pools]))

    def _live(self) -> list[Any]:
        # Caller holds the lock. Forgets the pools that were collected.
        live = [pool for pool in (ref() for ref in self._pools) if pool is not None]
        if len(live) != len(self._pools):
            self._pools = [weakref.ref(pool) for pool in live]
        return live


def _families(readings: list[tuple[str, PoolStats]]) -> Iterator[Metric]:
    connections = GaugeMetricFamily(
        "sessionpool_connections",
        "Connections by state: idle in the pool, used by a borrower, opening.",
        labels=["pool", "state"],
    )
    for name, stats in readings:
        connections.add_metric([name, "idle"], stats.idle)
        connections.add_metric([name, "used"], stats.busy)
        connections.add_metric([name, "opening"], stats.opening)
    yield connections
    for metric, doc, field in (
        ("sessionpool_connections_max", "Most connections the pool may open.", "max_size"),
        ("sessionpool_connections_min", "Connections the pool keeps open.", "min_size"),
        ("sessionpool_pending_requests", "Acquires waiting for a connection.", "waiting"),
        ("sessionpool_busy_peak", "Most connections lent at once.", "busy_peak"),
    ):
        gauge = GaugeMetricFamily(metric, doc, labels=["pool"])
        for name, stats in readings:
            gauge.add_metric([name], getattr(stats, field))
        yield gauge
    for metric, doc, field in (
        ("sessionpool_acquires", "Connections handed out.", "acquires"),
        ("sessionpool_timeouts", "Acquires that gave up waiting.", "timeouts"),
        ("sessionpool_connections_opened", "Connections opened.", "connections_opened"),
    ):
        counter = CounterMetricFamily(metric, doc, labels=["pool"])
        for name, stats in readings:
            counter.add_metric([name], getattr(stats, field))
        yield counter
    errors = CounterMetricFamily("sessionpool_errors", "Failures by kind.", labels=["pool", "kind"])
    closed = CounterMetricFamily(
        "sessionpool_connections_closed",
        "Connections closed, by reason.",
        labels=["pool", "reason"],
    )
    for name, stats in readings:
        for kind, count in stats.errors.items():
            errors.add_metric([name, kind], count)
        for reason, count in stats.closed_by_reason.items():
            closed.add_metric([name, reason], count)
    yield errors
    yield closed
    for metric, field, doc in _HISTOGRAMS:
        histogram = HistogramMetricFamily(metric, doc, labels=["pool"])
        for name, stats in readings:
            snapshot = getattr(stats, field)
            buckets = [(_le(bound), count) for bound, count in snapshot.cumulative()]
            histogram.add_metric([name], buckets, snapshot.sum)
        yield histogram


def _le(bound: float) -> str:
    # Prometheus's spelling of a bucket bound: "+Inf" for the last, Python's repr otherwise.
    return "+Inf" if math.isinf(bound) else repr(float(bound))


# One collector per registry, so that pools registered one by one share the families.
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, PoolCollector] = (
    weakref.WeakKeyDictionary()
)
_collectors_lock = threading.Lock()


def register(*pools: Any, registry: CollectorRegistry = REGISTRY) -> PoolCollector:
    """Report ``pools`` in ``registry`` (the default one unless told), through the one
    `PoolCollector` this module keeps for that registry.

    Args:
        *pools: Pool or AsyncPool instances.
        registry: the prometheus_client registry to report in.

    Raises:
        UsageError: a pool's name is already reported in that registry by another pool.
    """
    with _collectors_lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = PoolCollector()
            registry.register(collector)
            _collectors[registry] = collector
    for pool in pools:
        collector.add(pool)
    return collector


class MetricsServer:
    """A running /metrics endpoint (prometheus_client's threaded WSGI server).

    Attributes:
        httpd: the server; ``thread``: the daemon thread serving it.
    """

    def __init__(self, httpd: Any, thread: threading.Thread, addr: str) -> None:
        self.httpd = httpd
        self.thread = thread
        self.addr = addr

    @property
    def port(self) -> int:
        """The port served (the one picked by the system when 0 was asked)."""
        return int(self.httpd.server_port)

    @property
    def url(self) -> str:
        """``http://addr:port/metrics``."""
        host = f"[{self.addr}]" if ":" in self.addr else self.addr
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and free the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5.0)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MetricsServer {self.url}>"


def serve(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None
) -> MetricsServer:
    """Serve ``registry`` (the default one unless told) at ``http://addr:port/metrics`` on a
    daemon thread, for Prometheus and ``sessionpool top``. Pools appear once `register`-ed.

    Args:
        port: TCP port; 0 lets the system pick one (see `MetricsServer.port`).
        addr: address or host name to listen on; loopback by default, as a pool's figures
            are not for everyone (pass "0.0.0.0" to be scraped from other hosts).
        registry: what to serve.

    Raises:
        ConfigError: a port outside 0..65535, or an empty addr.
        OSError: the port is taken.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be an int from 0 to 65535, not {port!r}")
    if not isinstance(addr, str) or not addr:
        raise ConfigError(f"addr must be an address such as '127.0.0.1', not {addr!r}")
    httpd, thread = start_http_server(port, addr, REGISTRY if registry is None else registry)
    return MetricsServer(httpd, thread, addr)
