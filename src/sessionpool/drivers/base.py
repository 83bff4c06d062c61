"""The driver seam: how the pool opens and closes connections, independent of any driver.

A Connector does I/O only when the pool asks; it keeps no pool state. This module holds the
generic one built from a creator callable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError

__all__ = ["Connector", "CreatorConnector"]


class Connector:
    """Opens and closes driver connections for a pool. Subclasses adapt one driver."""

    def connect(self, user: str | None = None, password: str | None = None) -> Any:
        """Open a new driver connection, for ``user`` when given (heterogeneous pools)."""
        raise NotImplementedError

    def close(self, connection: Any) -> None:
        """Close a driver connection. Errors propagate; the pool ignores them."""
        connection.close()

    def describe(self) -> str:
        """A label for messages; never contains credentials."""
        return type(self).__name__


class CreatorConnector(Connector):
    """Connections from a user's callable returning any DB-API connection.

    For a per-user acquire in a heterogeneous pool, the callable is called with ``user=`` and
    ``password=`` keyword arguments; otherwise with none.
    """

    def __init__(self, creator: Callable[..., Any]) -> None:
        if not callable(creator):
            raise ConfigError(
                f"creator must be a callable returning a DB-API connection, "
                f"not {type(creator).__name__}"
            )
        self.creator = creator

    def connect(self, user: str | None = None, password: str | None = None) -> Any:
        if user is None:
            return self.creator()
        return self.creator(user=user, password=password)

    def describe(self) -> str:
        name = getattr(self.creator, "__qualname__", None) or type(self.creator).__name__
        return f"creator {name}"
