"""OpenTelemetry exporter: a pool's figures as the db.client.connection.* instruments.

Needs the ``otel`` extra (opentelemetry-api; an SDK to export). Figures of the moment are
observed from ``stats()`` when a reader collects; the three times are recorded from pool
events. It never acquires a connection or changes a pool beyond adding event listeners.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import (
        CallbackOptions,
        Histogram,
        Meter,
        MeterProvider,
        Observation,
    )
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(
        "sessionpool.observe.otel needs opentelemetry-api: pip install 'sessionpool[otel]'"
    ) from exc

from ..errors import ConfigError, UsageError
from .events import PoolEvent
from .histogram import BOUNDS
from .labels import pool_label
from .stats import PoolStats

__all__ = ["STABILITY_MODES", "Instrumentation", "instrument", "stability_from_environment"]

#: "database": the semantic-convention names of v1.26 and later, times in seconds.
#: "database/dup": those and the names up to v1.25 (db.client.connections.*, times in ms).
STABILITY_MODES = ("database", "database/dup")
_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"


@dataclass(frozen=True)
class _Scheme:
    """One generation of the semantic conventions: names, attribute keys, time unit."""

    prefix: str
    count: str
    pool_key: str
    state_key: str
    time_unit: str
    scale: float  # seconds -> time_unit


_CURRENT = _Scheme(
    "db.client.connection.",
    "count",
    "db.client.connection.pool.name",
    "db.client.connection.state",
    "s",
    1.0,
)
_LEGACY = _Scheme("db.client.connections.", "usage", "pool.name", "state", "ms", 1000.0)

# (instrument, unit, description, what of PoolStats it observes)
_GAUGES: tuple[tuple[str, str, str, Callable[[PoolStats], int]], ...] = (
    ("idle.max", "{connection}", "Most idle connections the pool keeps.", lambda s: s.max_size),
    ("idle.min", "{connection}", "Fewest idle connections the pool keeps.", lambda s: s.min_size),
    ("max", "{connection}", "Most connections the pool may open.", lambda s: _most_open(s)),
    ("pending_requests", "{request}", "Acquires waiting for a connection.", lambda s: s.waiting),
)
# (instrument, event kind whose duration it records, description)
_TIMES = (
    ("create_time", "connect", "Time it took to open a connection."),
    ("wait_time", "checkout", "Time an acquire waited for a connection."),
    ("use_time", "checkin", "Time between lending a connection and getting it back."),
)


def _most_open(stats: PoolStats) -> int:
    # With max_overflow the cap is above max_size; unbounded overflow has none, and then
    # max_size is the size the pool returns to. Either can be exceeded (no cap, or
    # when_exhausted="force"): then the connections open now are the most there are, which
    # keeps count{idle} + count{used} <= max true, as the conventions expect.
    limit = stats.max_size if stats.hard_cap is None else stats.hard_cap
    return max(limit, stats.opened)


class _Watch:
    """One instrumented pool as an instrument set sees it: held weakly, with its attributes."""

    __slots__ = ("attributes", "pool_ref")

    def __init__(self, pool: Any, attributes: dict[str, str]) -> None:
        self.pool_ref = weakref.ref(pool)
        self.attributes = attributes

    def stats(self) -> PoolStats | None:
        pool = self.pool_ref()
        if pool is None or pool.closed:
            return None
        stats: PoolStats = pool.stats()
        return stats


class _InstrumentSet:
    """The instruments of one scheme on one meter, shared by every pool instrumented there
    (an SDK reports two instruments of one name as two clashing streams)."""

    def __init__(self, meter: Meter, scheme: _Scheme) -> None:
        self.scheme = scheme
        self._lock = threading.Lock()
        self._watches: dict[int, _Watch] = {}
        meter.create_observable_up_down_counter(
            scheme.prefix + scheme.count,
            [self._observe_count],
            "{connection}",
            "Connections by state: idle in the pool, or used by a borrower.",
        )
        for name, unit, description, read in _GAUGES:
            meter.create_observable_up_down_counter(
                scheme.prefix + name, [self._observer(read)], unit, description
            )
        meter.create_observable_counter(
            scheme.prefix + "timeouts",
            [self._observer(lambda stats: stats.timeouts)],
            "{timeout}",
            "Acquires that gave up waiting for a connection.",
        )
        bounds = [bound * scheme.scale for bound in BOUNDS]
        self.histograms: dict[str, Histogram] = {
            kind: meter.create_histogram(
                scheme.prefix + name,
                scheme.time_unit,
                description,
                explicit_bucket_boundaries_advisory=bounds,
            )
            for name, kind, description in _TIMES
        }

    def watch(self, key: int, pool: Any, label: str) -> dict[str, str]:
        attributes = {self.scheme.pool_key: label}
        with self._lock:
            self._watches[key] = _Watch(pool, attributes)
        return attributes

    def unwatch(self, key: int) -> None:
        with self._lock:
            self._watches.pop(key, None)

    def _readings(self) -> list[tuple[_Watch, PoolStats]]:
        with self._lock:
            watches = list(self._watches.items())
        readings = []
        for key, watch in watches:
            stats = watch.stats()
            if stats is not None:
                readings.append((watch, stats))
            elif watch.pool_ref() is None:
                self.unwatch(key)  # the pool was collected without uninstrument()
        return readings

    def _observe_count(self, options: CallbackOptions) -> Iterable[Observation]:
        state_key = self.scheme.state_key
        observations = []
        for watch, stats in self._readings():
            # Both states from one snapshot, so that idle + used never exceeds the max.
            observations.append(Observation(stats.idle, {**watch.attributes, state_key: "idle"}))
            observations.append(Observation(stats.busy, {**watch.attributes, state_key: "used"}))
        return observations

    def _observer(
        self, read: Callable[[PoolStats], int]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(read(stats), watch.attributes) for watch, stats in self._readings()]

        return observe


# Instrument sets per meter provider and scheme. Keyed weakly: a provider shut down and
# dropped (as tests do) takes its instruments with it.
_sets: weakref.WeakKeyDictionary[Any, dict[str, _InstrumentSet]] = weakref.WeakKeyDictionary()
_sets_lock = threading.Lock()


def _instrument_sets(provider: MeterProvider, schemes: Iterable[_Scheme]) -> list[_InstrumentSet]:
    from .. import __version__

    with _sets_lock:
        per_scheme = _sets.setdefault(provider, {})
        found = []
        for scheme in schemes:
            if scheme.prefix not in per_scheme:
                meter = provider.get_meter("sessionpool", __version__)
                per_scheme[scheme.prefix] = _InstrumentSet(meter, scheme)
            found.append(per_scheme[scheme.prefix])
        return found


class Instrumentation:
    """What `instrument` set up on one pool; `uninstrument` takes it down.

    Attributes:
        pool_name: the ``db.client.connection.pool.name`` reported.
        stability: "database" or "database/dup".
    """

    def __init__(self, pool: Any, sets: list[_InstrumentSet], stability: str, times: bool) -> None:
        self.stability = stability
        self.pool_name = pool_label(pool)
        self._pool_ref = weakref.ref(pool)
        self._sets = sets
        self._lock = threading.Lock()
        self._active = True
        targets: dict[str, list[tuple[Histogram, float, dict[str, str]]]] = {
            kind: [] for _, kind, _ in _TIMES
        }
        for instrument_set in sets:
            attributes = instrument_set.watch(id(self), pool, self.pool_name)
            for kind, histogram in instrument_set.histograms.items():
                targets[kind].append((histogram, instrument_set.scheme.scale, attributes))
        self._listeners = (
            {kind: _recorder(records) for kind, records in targets.items()} if times else {}
        )
        for kind, listener in self._listeners.items():
            pool.add_listener(kind, listener)

    @property
    def active(self) -> bool:
        """True until `uninstrument`."""
        return self._active

    def uninstrument(self) -> None:
        """Remove the listeners and stop reporting this pool (a second call does nothing)."""
        with self._lock:
            if not self._active:
                return
            self._active = False
        for instrument_set in self._sets:
            instrument_set.unwatch(id(self))
        pool = self._pool_ref()
        if pool is not None:
            for kind, listener in self._listeners.items():
                pool.remove_listener(kind, listener)
            with _instrumented_lock:
                _instrumented.pop(pool, None)

    def __repr__(self) -> str:
        state = "active" if self._active else "removed"
        return f"<Instrumentation pool={self.pool_name!r} {self.stability} {state}>"


def _recorder(
    records: list[tuple[Histogram, float, dict[str, str]]],
) -> Callable[[PoolEvent], None]:
    def record(event: PoolEvent) -> None:
        seconds = event.duration
        if seconds is None:
            return
        for histogram, scale, attributes in records:
            histogram.record(seconds * scale, attributes)

    return record


# Pools instrumented now, so that a second `instrument` of one pool is refused, not doubled.
_instrumented: weakref.WeakKeyDictionary[Any, Instrumentation] = weakref.WeakKeyDictionary()
_instrumented_lock = threading.Lock()


def stability_from_environment() -> str:
    """The mode ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for (a comma-separated list):
    "database/dup" if listed, else "database" (the current names, whether listed or not)."""
    wanted = {item.strip() for item in os.environ.get(_ENV, "").split(",")}
    return "database/dup" if "database/dup" in wanted else "database"


def instrument(
    pool: Any,
    meter_provider: MeterProvider | None = None,
    *,
    stability: str | None = None,
    times: bool = True,
) -> Instrumentation:
    """Report ``pool`` (Pool or AsyncPool) through OpenTelemetry's database client connection
    instruments: ``db.client.connection.count`` (state idle/used), ``.idle.max``,
    ``.idle.min``, ``.max``, ``.pending_requests``, ``.timeouts``, and the histograms
    ``.create_time``, ``.wait_time``, ``.use_time`` in seconds.

    The histograms are fed by "connect", "checkout" and "checkin" listeners: each acquire
    and release then leaves the pool's fast lane and makes two OpenTelemetry SDK records,
    tens of microseconds per cycle (see docs/metrics.md); ``times=False`` keeps the pool's
    fast lane and reports the other six instruments only.

    Args:
        pool: the pool to report; its name is the ``db.client.connection.pool.name``.
        meter_provider: where to create the instruments; the global provider if None.
        stability: "database" for the current names, "database/dup" to also emit the names
            of semantic conventions up to v1.25 (``db.client.connections.*``, ``pool.name``
            and ``state`` attributes, times in ms). None: as ``OTEL_SEMCONV_STABILITY_OPT_IN``
            says.
        times: record the three time histograms.

    Raises:
        ConfigError: an unknown stability, times not a bool, or something other than a pool.
        UsageError: the pool is already instrumented (uninstrument it first).
    """
    if stability is None:
        stability = stability_from_environment()
    if stability not in STABILITY_MODES:
        modes = ", ".join(STABILITY_MODES)
        raise ConfigError(f"stability must be one of {modes}; got {stability!r}")
    if not isinstance(times, bool):
        raise ConfigError(f"times must be True or False, not {times!r}")
    if not callable(getattr(pool, "add_listener", None)) or not callable(
        getattr(pool, "stats", None)
    ):
        raise ConfigError(f"pool must be a sessionpool pool, not {type(pool).__name__}")
    provider = metrics.get_meter_provider() if meter_provider is None else meter_provider
    schemes = [_CURRENT, _LEGACY] if stability == "database/dup" else [_CURRENT]
    with _instrumented_lock:
        if pool in _instrumented:
            raise UsageError(
                f"pool {pool_label(pool)!r} is already instrumented; call uninstrument() on "
                "the handle instrument() returned before instrumenting it again"
            )
        handle = Instrumentation(pool, _instrument_sets(provider, schemes), stability, times)
        _instrumented[pool] = handle
        return handle
