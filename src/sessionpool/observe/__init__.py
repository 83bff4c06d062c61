"""Observability: events, statistics, logging, and (as optional extras) metrics exporters."""

from .advice import Advice, ServerFacts, advise
from .events import EVENT_KINDS, PoolEvent
from .histogram import BOUNDS, HistogramSnapshot
from .stats import PoolStats

__all__ = [
    "BOUNDS",
    "EVENT_KINDS",
    "Advice",
    "HistogramSnapshot",
    "PoolEvent",
    "PoolStats",
    "ServerFacts",
    "advise",
]
