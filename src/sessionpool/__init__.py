"""sessionpool: a session/connection pool for every DB-API driver.

pool = sessionpool.create_pool(creator=my_connect, min_size=2, max_size=10)
with pool.acquire() as conn:
    conn.cursor().execute("select 1")
"""

from ._core.stats import PoolStats
from ._sync.lease import Lease
from ._sync.pool import Pool
from .config import PoolConfig
from .drivers.base import Connector, CreatorConnector
from .errors import (
    ConfigError,
    Error,
    ForeignLease,
    LeaseReleased,
    PoolClosed,
    PoolExhausted,
    PoolInUse,
    PoolTimeout,
    UsageError,
)
from .factory import create_pool

__all__ = [
    "ConfigError",
    "Connector",
    "CreatorConnector",
    "Error",
    "ForeignLease",
    "Lease",
    "LeaseReleased",
    "Pool",
    "PoolClosed",
    "PoolConfig",
    "PoolExhausted",
    "PoolInUse",
    "PoolStats",
    "PoolTimeout",
    "UsageError",
    "create_pool",
]

__version__ = "0.1.0"
