"""Reads a pool's Prometheus exposition (the ``sessionpool_*`` names of
`sessionpool.observe.prometheus`) into per-pool figures for `sessionpool top`.

Fetching is one HTTP GET; parsing is prometheus_client's own text parser. Rates and
percentiles come from the difference of two scrapes. Draws nothing.
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..observe.labels import mask_secrets
from .errors import EndpointError

if TYPE_CHECKING:  # prometheus_client is an optional extra ([cli]); imported when parsing
    from prometheus_client.samples import Sample

__all__ = [
    "PoolFigures",
    "Scrape",
    "fetch",
    "figures",
    "histogram_quantile",
    "parse",
    "shown_url",
]

PREFIX = "sessionpool_"
HISTOGRAMS = ("wait_seconds", "use_seconds", "connect_seconds", "reset_seconds")
FETCH_TIMEOUT = 5.0  # seconds; a scrape that takes longer than this counts as unreachable


@dataclass
class Histogram:
    """One pool's histogram as exposed: cumulative counts per upper bound, sum and count."""

    buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    total: float = 0.0  # _sum
    count: float = 0.0  # _count

    def minus(self, earlier: Histogram | None) -> Histogram:
        """What happened between ``earlier`` and this one (all of it if there is no earlier,
        or the pool restarted and its counters went back)."""
        if earlier is None or self.count < earlier.count:
            return self
        return Histogram(
            {le: n - earlier.buckets.get(le, 0.0) for le, n in self.buckets.items()},
            self.total - earlier.total,
            self.count - earlier.count,
        )


@dataclass
class PoolSeries:
    """Every ``sessionpool_*`` sample of one pool, by name (without the prefix)."""

    gauges: dict[str, float] = field(default_factory=dict)  # e.g. "connections:idle", "busy_peak"
    counters: dict[str, float] = field(default_factory=dict)  # e.g. "acquires", "errors:connect"
    histograms: dict[str, Histogram] = field(default_factory=lambda: defaultdict(Histogram))


@dataclass(frozen=True)
class Scrape:
    """One read of the endpoint: the series of every pool, and when it was taken."""

    at: float  # time.monotonic()
    pools: Mapping[str, PoolSeries]


@dataclass(frozen=True)
class PoolFigures:
    """What a row of `sessionpool top` shows for one pool; None where it cannot be known yet."""

    pool: str
    used: float
    idle: float
    opening: float
    max_size: float
    waiting: float
    busy_peak: float
    acquires: float  # total since the pool started
    acquires_per_s: float | None  # over the window between two scrapes
    timeouts: float
    new_timeouts: float  # in the window
    errors: float
    new_errors: float
    wait_p50: float | None  # seconds, over the window (or the pool's life on a single scrape)
    wait_p99: float | None
    use_mean: float | None
    window: float | None  # seconds between the two scrapes


def shown_url(url: str) -> str:
    """``url`` as top prints it: a password in its user part and secrets in its query
    (``?token=...``, ``password=...``) replaced by ``***``."""
    return mask_secrets(url)


def fetch(url: str, timeout: float = FETCH_TIMEOUT) -> str:
    """GET the exposition text.

    Raises:
        EndpointError: the endpoint is unreachable, answers with an error, or too slowly.
    """
    shown = shown_url(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
    except urllib.error.HTTPError as exc:
        raise EndpointError(f"{shown} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise EndpointError(f"cannot reach {shown}: {exc.reason}") from None
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        raise EndpointError(f"cannot read {shown}: {exc}") from None
    return body.decode("utf-8", errors="replace")


def parse(text: str, at: float | None = None) -> Scrape:
    """Group the ``sessionpool_*`` samples of an exposition text by their ``pool`` label.

    Raises:
        EndpointError: the text is not in the Prometheus text format.
    """
    from prometheus_client.parser import text_string_to_metric_families

    pools: dict[str, PoolSeries] = defaultdict(PoolSeries)
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith(PREFIX) and "pool" in sample.labels:
                    _add(pools[sample.labels["pool"]], sample.name[len(PREFIX) :], sample)
    except ValueError as exc:
        raise EndpointError(f"not a Prometheus exposition: {exc}") from None
    return Scrape(time.monotonic() if at is None else at, dict(pools))


def _add(series: PoolSeries, name: str, sample: Sample) -> None:
    labels, value = sample.labels, float(sample.value)
    for base in HISTOGRAMS:
        if name.startswith(base + "_"):
            histogram = series.histograms[base]
            suffix = name[len(base) + 1 :]
            if suffix == "bucket":
                histogram.buckets[float(labels["le"])] = value
            elif suffix == "sum":
                histogram.total = value
            elif suffix == "count":
                histogram.count = value
            return  # _created carries no figure
    if name.endswith("_created"):
        return
    # The second label (state, kind, reason) goes into the key: "connections:idle".
    detail = next((v for k, v in sorted(labels.items()) if k != "pool"), None)
    key = name if detail is None else f"{name.removesuffix('_total')}:{detail}"
    if name.endswith("_total"):
        series.counters[key.removesuffix("_total")] = value
    else:
        series.gauges[key] = value


def histogram_quantile(q: float, histogram: Histogram) -> float | None:
    """The q-quantile (0..1) of a cumulative histogram, interpolated inside its bucket.

    As Prometheus' histogram_quantile: the first bucket starts at 0, and a quantile that falls
    in the +Inf bucket is reported as the largest finite bound. None when there is no sample.
    """
    if histogram.count <= 0:
        return None
    bounds = sorted(histogram.buckets)
    rank = q * histogram.count
    lower, below = 0.0, 0.0
    for bound in bounds:
        cumulative = histogram.buckets[bound]
        if cumulative >= rank:
            if math.isinf(bound):
                return lower
            inside = cumulative - below
            share = (rank - below) / inside if inside > 0 else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, cumulative
    return lower


def figures(now: Scrape, before: Scrape | None = None) -> list[PoolFigures]:
    """One row per pool of ``now``; rates and percentiles over the window since ``before``.

    Args:
        now: the latest scrape.
        before: the previous scrape, or None for the first frame (no rate yet; percentiles
            then cover the pool's whole life).
    """
    window = now.at - before.at if before is not None else None
    rows = []
    for name in sorted(now.pools):
        series = now.pools[name]
        earlier = before.pools.get(name) if before is not None else None
        gauges, counters = series.gauges, series.counters

        acquires = counters.get("acquires", 0.0)
        rate = None
        if window and window > 0 and earlier is not None:
            rate = _increase(series, earlier, "acquires") / window
        error_keys = [k for k in counters if k.startswith("errors:")]
        wait = series.histograms["wait_seconds"].minus(
            earlier.histograms.get("wait_seconds") if earlier is not None else None
        )
        use = series.histograms["use_seconds"].minus(
            earlier.histograms.get("use_seconds") if earlier is not None else None
        )
        rows.append(
            PoolFigures(
                pool=name,
                used=gauges.get("connections:used", 0.0),
                idle=gauges.get("connections:idle", 0.0),
                opening=gauges.get("connections:opening", 0.0),
                max_size=gauges.get("connections_max", math.nan),
                waiting=gauges.get("pending_requests", 0.0),
                busy_peak=gauges.get("busy_peak", math.nan),
                acquires=acquires,
                acquires_per_s=rate,
                timeouts=counters.get("timeouts", 0.0),
                new_timeouts=_increase(series, earlier, "timeouts"),
                errors=sum(counters[k] for k in error_keys),
                new_errors=sum(_increase(series, earlier, k) for k in error_keys),
                wait_p50=histogram_quantile(0.5, wait),
                wait_p99=histogram_quantile(0.99, wait),
                use_mean=use.total / use.count if use.count > 0 else None,
                window=window,
            )
        )
    return rows


def _increase(now: PoolSeries, earlier: PoolSeries | None, key: str) -> float:
    """How much a counter grew since the earlier scrape (0 on the first one)."""
    if earlier is None:
        return 0.0
    value, previous = now.counters.get(key, 0.0), earlier.counters.get(key, 0.0)
    return value - previous if value >= previous else value  # the pool restarted from 0
