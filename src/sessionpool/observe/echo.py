"""echo: the pool's events written to its logger, for ``echo=True`` and a logger set to log.

Registered as ordinary event listeners, so a pool that logs nothing pays nothing. Connections
are named by class and id, never by their repr (some drivers put the DSN there).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from .events import Listeners, PoolEvent

__all__ = ["attach", "describe_connection", "pool_logger"]

#: Events logged at INFO (the rest are DEBUG): what changes the set of connections.
_INFO_KINDS = ("connect", "connect_error", "drop", "close", "timeout")
_DEBUG_KINDS = ("checkout", "checkin", "reset")


def pool_logger(name: str | None) -> logging.Logger:
    """The logger of the pool named ``name``: ``sessionpool.pool.<name>``; for a pool with
    no name of its own (a creator's), the shared ``sessionpool.pool``."""
    return logging.getLogger("sessionpool.pool" if name is None else f"sessionpool.pool.{name}")


def attach(listeners: Listeners, logger: logging.Logger, echo: bool | str) -> None:
    """Log events at the level ``echo`` asks for, or, without echo, at what the logger is
    already enabled for when the pool is created (as SQLAlchemy decides once per pool)."""
    if echo:
        logger.setLevel(logging.DEBUG if echo == "debug" else logging.INFO)
        if not logger.hasHandlers():
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
            )
            logger.addHandler(handler)
    if logger.isEnabledFor(logging.INFO):
        for kind in _INFO_KINDS:
            listeners.add(kind, _writer(logger, logging.INFO))
    if logger.isEnabledFor(logging.DEBUG):
        for kind in _DEBUG_KINDS:
            listeners.add(kind, _writer(logger, logging.DEBUG))


def describe_connection(connection: Any) -> str:
    if connection is None:
        return "-"
    kind = type(connection)
    return f"{kind.__module__.split('.')[0]}.{kind.__qualname__}@{id(connection):x}"


def _writer(logger: logging.Logger, level: int) -> Any:
    def write(event: PoolEvent) -> None:
        logger.log(level, "%s", _sentence(event))

    return write


def _sentence(event: PoolEvent) -> str:
    connection = describe_connection(event.connection)
    took = "" if event.duration is None else f" ({event.duration * 1e3:.2f} ms)"
    kind = event.kind
    if kind == "connect":
        return f"opened {connection}{took}"
    if kind == "connect_error":
        return f"opening a connection failed: {type(event.error).__name__}: {event.error}"
    if kind == "checkout":
        return f"lent {connection}, waited{took or ' 0 ms'}"
    if kind == "checkin":
        return f"{connection} given back, held{took}"
    if kind == "reset":
        if event.error is not None:
            return f"reset of {connection} failed: {type(event.error).__name__}: {event.error}"
        return f"reset {connection}{took}"
    if kind == "drop":
        return f"dropping {connection}: {event.reason}"
    if kind == "close":
        return f"closed {connection} ({event.reason})"
    return f"an acquire gave up after {event.duration or 0.0:.3g} s"
