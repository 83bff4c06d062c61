"""Driver adapters: one small Connector per driver (connect, close; more in later issues)."""

from .base import Connector, CreatorConnector

__all__ = ["Connector", "CreatorConnector"]
