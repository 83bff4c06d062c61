"""sessionpool: a session/connection pool for every DB-API driver.

pool = sessionpool.create_pool("postgresql://app@localhost/app", min_size=2, max_size=10)
with pool.acquire() as conn:
    conn.cursor().execute("select 1")
"""

from ._async.lease import AsyncLease
from ._async.pool import AsyncPool
from ._async.session import AsyncScopedSession, AsyncSession
from ._sync.lease import Lease
from ._sync.pool import Pool
from .config import PoolConfig
from .drivers.base import Connector, CreatorConnector, Driver
from .errors import (
    AllHostsFailed,
    ConfigError,
    ConnectionDead,
    DriverNotInstalled,
    Error,
    ForeignLease,
    ForeignSession,
    LeaseReleased,
    PoolClosed,
    PoolExhausted,
    PoolInUse,
    PoolTimeout,
    TransactionAborted,
    TransactionLost,
    UsageError,
)
from .factory import create_async_pool, create_pool
from .observe.stats import PoolStats
from .session import ScopedSession, Session
from .sharing import SharedReader, ThreadConnections
from .url import URL, parse_url

__all__ = [
    "URL",
    "AllHostsFailed",
    "AsyncLease",
    "AsyncPool",
    "AsyncScopedSession",
    "AsyncSession",
    "ConfigError",
    "ConnectionDead",
    "Connector",
    "CreatorConnector",
    "Driver",
    "DriverNotInstalled",
    "Error",
    "ForeignLease",
    "ForeignSession",
    "Lease",
    "LeaseReleased",
    "Pool",
    "PoolClosed",
    "PoolConfig",
    "PoolExhausted",
    "PoolInUse",
    "PoolStats",
    "PoolTimeout",
    "ScopedSession",
    "Session",
    "SharedReader",
    "ThreadConnections",
    "TransactionAborted",
    "TransactionLost",
    "UsageError",
    "create_async_pool",
    "create_pool",
    "parse_url",
]

__version__ = "0.1.0"
