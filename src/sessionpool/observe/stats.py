"""PoolStats: the public snapshot of a pool's figures, counters and timing histograms.

Built by a shell from the core's counts and its recorder; pure data. ``since`` takes one
snapshot apart from an earlier one, which is how ``stats(reset=True)`` reports an interval
without ever zeroing a counter the pool itself relies on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .._core.counts import CoreCounts
from .histogram import HistogramSnapshot

__all__ = ["COUNTERS", "PoolStats"]

_EMPTY = HistogramSnapshot.empty()

#: The fields that count events (they add up over time); the other whole-number fields are
#: figures of the moment.
COUNTERS = (
    "acquires",
    "waits",
    "handoffs",
    "timeouts",
    "exhausted",
    "connections_opened",
    "connections_closed",
    "connect_errors",
    "retired_idle",
    "retired_expired",
    "keepalive_failures",
    "leaks_reported",
    "reclaimed",
    "pings",
    "ping_failures",
    "resets",
    "reset_failures",
    "disconnects",
)
_HISTOGRAMS = ("wait_time", "use_time", "connect_time", "reset_time")


@dataclass(frozen=True, slots=True)
class PoolStats(CoreCounts):
    """A consistent snapshot: the core's figures and counters (`CoreCounts`: ``busy`` ...
    ``waiting`` now, ``acquires`` ... since creation), the shells' counters, and timing
    histograms in seconds, since the pool was created (or, from ``stats(reset=True)``, since
    the previous such reading; ``elapsed`` says how long that is).

    ``wait_time`` has one value per acquire that got a connection (acquires served at once
    count as 0 s). ``use_time`` (how long borrowers held connections) and an exact
    ``busy_peak`` are recorded only with detailed statistics on (``detailed_stats=True``, an
    event listener, or an exporter); otherwise ``busy_peak`` and ``busy_mean`` come from
    samples taken at least once a second (the peak also at every acquire that waits).
    """

    pings: int = 0
    ping_failures: int = 0
    resets: int = 0
    reset_failures: int = 0
    disconnects: int = 0
    wait_time: HistogramSnapshot = _EMPTY
    use_time: HistogramSnapshot = _EMPTY
    connect_time: HistogramSnapshot = _EMPTY
    reset_time: HistogramSnapshot = _EMPTY
    use_time_recorded: bool = False
    busy_peak: int = 0
    busy_mean: float = 0.0
    elapsed: float = 0.0

    @property
    def errors(self) -> dict[str, int]:
        """Failures by kind: connects, acquire timeouts, refusals at the cap, failed checks
        before hand-out and keepalive checks, failed resets, and disconnects seen."""
        return {
            "connect": self.connect_errors,
            "timeout": self.timeouts,
            "exhausted": self.exhausted,
            "ping": self.ping_failures,
            "keepalive": self.keepalive_failures,
            "reset": self.reset_failures,
            "disconnect": self.disconnects,
        }

    @property
    def arrival_rate(self) -> float:
        """Acquires per second over ``elapsed`` (0.0 before any time has passed)."""
        return self.acquires / self.elapsed if self.elapsed > 0 else 0.0

    def since(self, earlier: PoolStats) -> PoolStats:
        """What happened between ``earlier`` and this snapshot: counters and histograms as
        differences, figures of the moment as now; ``busy_peak``, ``busy_mean`` and
        ``elapsed`` are left as this snapshot gives them (the caller knows the interval)."""
        changes: dict[str, Any] = {
            name: getattr(self, name) - getattr(earlier, name) for name in COUNTERS
        }
        for name in _HISTOGRAMS:
            changes[name] = getattr(self, name) - getattr(earlier, name)
        changes["closed_by_reason"] = {
            reason: count - earlier.closed_by_reason.get(reason, 0)
            for reason, count in self.closed_by_reason.items()
            if count != earlier.closed_by_reason.get(reason, 0)
        }
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (histograms as dicts with ``counts``, ``sum``, ``max``)."""
        data = asdict(self)
        data["closed_by_reason"] = dict(self.closed_by_reason)
        return data
