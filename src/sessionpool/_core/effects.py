"""What the core asks its shell to do once the lock is released.

Each effect is a small immutable record; the shell runs them in the order given. NamedTuples
rather than frozen dataclasses: a Wake is built on every hand-off to a waiter, and a frozen
dataclass costs several times more to build.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import NamedTuple

from .records import Request, Slot

__all__ = ["CloseConnection", "Effect", "OpenConnections", "RetryOpens", "Wake"]


class OpenConnections(NamedTuple):
    """Open ``number`` connections for ``key`` concurrently and report each with
    `PoolState.opened_connection` or `PoolState.open_failed`.

    ``request`` is set for a forced open, whose connection belongs to that borrower alone.
    """

    key: Hashable
    number: int
    request: Request | None = None


class CloseConnection(NamedTuple):
    """Close this slot's driver connection; the core has already forgotten it."""

    slot: Slot
    reason: str


class Wake(NamedTuple):
    """Unblock this waiting borrower: its ``slot`` or ``error`` is now set."""

    request: Request


class RetryOpens(NamedTuple):
    """Opening failed: call ``PoolState.retry_opens(token)`` after ``delay`` seconds. Until
    then the core opens nothing for the shared pool (a down server sees no connect storm)."""

    delay: float
    token: int


Effect = OpenConnections | CloseConnection | Wake | RetryOpens
