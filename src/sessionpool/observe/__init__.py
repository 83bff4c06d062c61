"""Observability: events, statistics, logging, and (as optional extras) metrics exporters."""

from .events import EVENT_KINDS, PoolEvent
from .histogram import BOUNDS, HistogramSnapshot
from .stats import PoolStats

__all__ = ["BOUNDS", "EVENT_KINDS", "HistogramSnapshot", "PoolEvent", "PoolStats"]
