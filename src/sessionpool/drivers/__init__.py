"""Driver adapters: what the pools need from each driver (checks, resets, disconnect codes),
one module per database, threaded and asyncio; `registry`/`async_registry` pick them by URL."""

from .base import Connector, CreatorConnector, Driver

__all__ = ["Connector", "CreatorConnector", "Driver"]
