"""What the core asks its shell to do once the lock is released.

Each effect is a small immutable record; the shell runs them in the order given.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from .records import Request, Slot

__all__ = ["CloseConnection", "Effect", "OpenConnections", "Wake"]


@dataclass(frozen=True, slots=True)
class OpenConnections:
    """Open ``count`` connections for ``key`` concurrently and report each with
    `PoolState.opened` or `PoolState.open_failed`.

    ``request`` is set for a forced open, whose connection belongs to that borrower alone.
    """

    key: Hashable
    count: int
    request: Request | None = None


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close this slot's driver connection; the core has already forgotten it."""

    slot: Slot
    reason: str


@dataclass(frozen=True, slots=True)
class Wake:
    """Unblock this waiting borrower: its ``slot`` or ``error`` is now set."""

    request: Request


Effect = OpenConnections | CloseConnection | Wake
