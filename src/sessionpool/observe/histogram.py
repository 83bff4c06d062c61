"""Histogram: a fixed-bucket record of durations, cheap to add to and to copy.

Pure data and arithmetic: callers serialize `record` themselves (the recorder holds a lock).
The buckets are the same for every histogram, so snapshots can be added, subtracted and
exported without resampling.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

__all__ = ["BOUNDS", "Histogram", "HistogramSnapshot"]

#: Upper bounds (inclusive, seconds) of the buckets; one more bucket takes what is above the
#: last. From 100 us (a connection handed over in-process) to a minute (a stuck borrower).
BOUNDS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

_bucket_of = partial(bisect_left, BOUNDS)


class Histogram:
    """Counts per bucket, the sum and the largest value recorded."""

    __slots__ = ("counts", "max", "peak", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.sum = 0.0
        self.max = 0.0
        self.peak = 0.0  # the largest since the last reading that reset the figures

    def record(self, seconds: float) -> None:
        self.counts[_bucket_of(seconds)] += 1
        self.sum += seconds
        if seconds > self.max:
            self.max = seconds
        if seconds > self.peak:
            self.peak = seconds

    def record_many(self, values: Sequence[float]) -> None:
        """`record` for each of ``values``, with the per-value work done in C."""
        if not values:
            return
        counts = self.counts
        for index, number in Counter(map(_bucket_of, values)).items():
            counts[index] += number
        self.sum += math.fsum(values)
        largest = max(values)
        if largest > self.max:
            self.max = largest
        if largest > self.peak:
            self.peak = largest

    def snapshot(self, implied_zeros: int = 0, *, since_peak: bool = False) -> HistogramSnapshot:
        """A copy; ``implied_zeros`` adds that many values of 0 s (acquires served in the
        fast lane, which does not read the clock twice, are counted this way).
        ``since_peak`` reports the largest value since the last `reset_peak` as the max."""
        counts = list(self.counts)
        counts[0] += max(0, implied_zeros)
        return HistogramSnapshot(tuple(counts), self.sum, self.peak if since_peak else self.max)

    def reset_peak(self) -> None:
        self.peak = 0.0


@dataclass(frozen=True, slots=True)
class HistogramSnapshot:
    """Bucket counts (not cumulative; bucket ``i`` holds values <= ``BOUNDS[i]``, the last
    one the rest), their sum in seconds and the largest value seen."""

    counts: tuple[int, ...]
    sum: float
    max: float

    @staticmethod
    def empty() -> HistogramSnapshot:
        return HistogramSnapshot((0,) * (len(BOUNDS) + 1), 0.0, 0.0)

    @property
    def bounds(self) -> tuple[float, ...]:
        return BOUNDS

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def mean(self) -> float:
        """The mean in seconds (0.0 when empty)."""
        count = self.count
        return self.sum / count if count else 0.0

    def quantile(self, q: float) -> float:
        """An estimate of the ``q`` quantile (0 < q <= 1) in seconds, interpolated within its
        bucket; the top bucket answers with the largest value seen. 0.0 when empty."""
        if not 0.0 < q <= 1.0:
            raise ValueError(f"q must be in (0, 1], not {q!r}")
        total = self.count
        if total == 0:
            return 0.0
        rank = q * total
        seen = 0
        for index, count in enumerate(self.counts):
            if count and seen + count >= rank:
                if index == len(BOUNDS):
                    return self.max
                low = BOUNDS[index - 1] if index else 0.0
                high = min(BOUNDS[index], self.max) if self.max > low else BOUNDS[index]
                return low + (high - low) * (rank - seen) / count
            seen += count
        return self.max

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, values <= it) pairs ending with (+inf, count): Prometheus's form."""
        pairs = []
        running = 0
        for bound, count in zip((*BOUNDS, math.inf), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs

    def __sub__(self, earlier: HistogramSnapshot) -> HistogramSnapshot:
        """What was recorded since ``earlier``; the max is this snapshot's own (take it with
        ``since_peak`` to have the largest of that interval)."""
        counts = tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True))
        return HistogramSnapshot(counts, self.sum - earlier.sum, self.max)
