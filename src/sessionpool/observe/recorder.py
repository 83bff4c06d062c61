"""Recorder: the timings and counters the shells measure around the core's decisions.

Wait, use, connect and reset times, checks and resets done or failed, disconnects seen, and
the number of borrowed connections over time. Every method takes its own small lock (they run
on borrowers', openers' and the worker's threads); none runs on the acquire/release fast lane.
Returns, when detailed statistics are on, only append to ``returns`` (a deque: appending is
atomic and costs tens of nanoseconds); the samples are folded in by the maintenance worker's
rounds and by every reading.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque

from .._core.counts import CoreCounts
from .histogram import Histogram
from .stats import PoolStats

__all__ = ["Recorder"]


class Recorder:
    """Measurements of one pool (see module doc). ``now`` is the pool's monotonic clock."""

    def __init__(self, now: float) -> None:
        self._lock = threading.Lock()
        self.wait = Histogram()  # acquires that left the fast lane; the rest waited 0 s
        self.use = Histogram()  # only while detailed statistics are on
        # (seconds held, connections borrowed just before the return), appended by returns.
        self.returns: deque[tuple[float, int]] = deque()
        self.connect = Histogram()
        self.reset = Histogram()
        self.pings = 0
        self.ping_failures = 0
        self.resets = 0
        self.reset_failures = 0
        self.disconnects = 0
        # Borrowed connections over time, sampled (see `sample_busy`): the highest seen (ever,
        # and in the current interval) and the area under the curve (connection-seconds).
        self._busy = 0
        self._busy_since = now
        self._busy_area = 0.0
        self._peak_ever = 0
        self._peak_interval = 0
        self._created_at = now
        # The last reading that reset the figures: intervals are reported against it.
        self._baseline: PoolStats | None = None
        self._baseline_at = now
        self._baseline_area = 0.0

    def record_wait(self, seconds: float, busy: int) -> None:
        """An acquire that left the fast lane got its connection after ``seconds``, with
        ``busy`` lent now: a candidate for the peak. (Not a sample of the mean: taken just
        after a lending, it would weigh busy moments more than quiet ones.)"""
        with self._lock:
            self.wait.record(seconds)
            self._raise_peak(busy)

    def _fold_returns(self) -> None:
        """Fold the returns appended since the last fold into the use histogram and the
        peaks. Their busy counts include the returning connection, so the peak is exact:
        every peak is followed by a return. (Call with the lock held.) Done in bulk, with
        the per-item work in C: at a million returns a second this runs on the worker."""
        returns = self.returns
        count = len(returns)  # appends may go on meanwhile: they wait for the next fold
        if not count:
            return
        pop = returns.popleft
        batch = [pop() for _ in range(count)]
        held, busy = zip(*batch, strict=True)
        self.use.record_many(held)
        peak = max(busy)
        self._raise_peak(peak)

    def record_connect(self, seconds: float) -> None:
        with self._lock:
            self.connect.record(seconds)

    def record_reset(self, seconds: float, ok: bool) -> None:
        with self._lock:
            self.resets += 1
            if ok:
                self.reset.record(seconds)
            else:
                self.reset_failures += 1

    def record_ping(self, ok: bool) -> None:
        with self._lock:
            self.pings += 1
            if not ok:
                self.ping_failures += 1

    def record_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1

    def sample_busy(self, busy: int, now: float) -> None:
        """Note how many connections are borrowed at ``now``: the maintenance worker does at
        every round (at least once a second, at moments unrelated to the load, so the mean
        is not biased), and every reading does."""
        with self._lock:
            self._fold_returns()
            self._sample(busy, now)

    def stats(self, counts: CoreCounts, now: float, detailed: bool, reset: bool) -> PoolStats:
        """The public snapshot: ``counts`` (taken under the pool's guard just before) with
        the timings. Since creation, or with ``reset`` since the previous resetting reading
        (which this one then becomes)."""
        with self._lock:
            self._fold_returns()
            self._sample(counts.busy, now)
            served_at_once = counts.acquires - sum(self.wait.counts)
            total = PoolStats(
                **{item.name: getattr(counts, item.name) for item in dataclasses.fields(counts)},
                pings=self.pings,
                ping_failures=self.ping_failures,
                resets=self.resets,
                reset_failures=self.reset_failures,
                disconnects=self.disconnects,
                wait_time=self.wait.snapshot(served_at_once, since_peak=reset),
                use_time=self.use.snapshot(since_peak=reset),
                connect_time=self.connect.snapshot(since_peak=reset),
                reset_time=self.reset.snapshot(since_peak=reset),
                use_time_recorded=detailed,
                busy_peak=self._peak_ever,
                busy_mean=self._busy_mean(
                    self.use.sum, self._busy_area, now - self._created_at, detailed
                ),
                elapsed=now - self._created_at,
            )
            if not reset:
                return total
            interval = total if self._baseline is None else total.since(self._baseline)
            elapsed = now - self._baseline_at
            interval = dataclasses.replace(
                interval,
                busy_peak=self._peak_interval,
                busy_mean=self._busy_mean(
                    interval.use_time.sum, self._busy_area - self._baseline_area, elapsed, detailed
                ),
                elapsed=elapsed,
            )
            self._baseline = total
            self._baseline_at = now
            self._baseline_area = self._busy_area
            self._peak_interval = self._busy
            for histogram in (self.wait, self.use, self.connect, self.reset):
                histogram.reset_peak()
            return interval

    @staticmethod
    def _busy_mean(held: float, area: float, elapsed: float, detailed: bool) -> float:
        """Connections lent on average: with use times recorded, exactly the seconds held
        over the seconds elapsed (each held second is one connection busy for a second),
        else the area under the sampled busy counts."""
        if elapsed <= 0:
            return 0.0
        return (held if detailed else area) / elapsed

    def _sample(self, busy: int, now: float) -> None:
        # The count since the last sample is taken as the one seen then: a step function
        # through the samples.
        self._busy_area += self._busy * max(0.0, now - self._busy_since)
        self._busy = busy
        self._busy_since = now
        self._raise_peak(busy)

    def _raise_peak(self, busy: int) -> None:
        """A count of borrowed connections seen: the peaks follow it up. (Lock held.)"""
        if busy > self._peak_interval:
            self._peak_interval = busy
            if busy > self._peak_ever:
                self._peak_ever = busy
