"""CoreCounts: a consistent, immutable copy of the core's figures and counters.

Built from a PoolState by the shell under its lock; pure data, no I/O. The public `PoolStats`
(observe/stats.py) adds the shells' timings to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .state import PoolState

__all__ = ["CoreCounts", "snapshot"]


@dataclass(frozen=True, slots=True)
class CoreCounts:
    """Figures now (``busy`` ... ``waiting``) and counters since the core was created."""

    min_size: int
    max_size: int
    hard_cap: int | None
    opened: int
    busy: int
    idle: int
    opening: int
    waiting: int
    acquires: int
    waits: int
    handoffs: int
    timeouts: int
    exhausted: int
    connections_opened: int
    connections_closed: int
    connect_errors: int
    retired_idle: int
    retired_expired: int
    keepalive_failures: int
    leaks_reported: int
    reclaimed: int
    closed_by_reason: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def snapshot(state: PoolState) -> CoreCounts:
    return CoreCounts(
        min_size=state.min_size,
        max_size=state.max_size,
        hard_cap=state.cap,
        opened=state.opened,
        busy=state.busy,
        idle=state.idle,
        opening=state.opening,
        waiting=state.waiting,
        acquires=state.acquires,
        waits=state.waits,
        handoffs=state.handoffs,
        timeouts=state.timeouts,
        exhausted=state.exhausted,
        connections_opened=state.connections_opened,
        connections_closed=state.connections_closed,
        connect_errors=state.connect_errors,
        retired_idle=state.retired_idle,
        retired_expired=state.retired_expired,
        keepalive_failures=state.keepalive_failures,
        leaks_reported=state.leaks_reported,
        reclaimed=state.reclaimed,
        closed_by_reason=dict(state.closed_by_reason),
    )
