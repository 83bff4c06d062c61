"""The one error hierarchy of sessionpool: everything the pool raises derives from `Error`.

Driver errors (a failed connect, a failed query) pass through unwrapped; messages here never
carry credentials.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ConnectionDead",
    "DriverNotInstalled",
    "Error",
    "ForeignLease",
    "LeaseReleased",
    "PoolClosed",
    "PoolExhausted",
    "PoolInUse",
    "PoolTimeout",
    "UsageError",
]


class Error(Exception):
    """Base class of every error sessionpool raises itself."""


class ConfigError(Error, ValueError):
    """A configuration value is invalid; the message names the parameter."""


class DriverNotInstalled(ConfigError, ImportError):
    """The URL names a driver that is not installed; the message names the extra to install."""


class ConnectionDead(Error):
    """A connection failed its liveness check or did not answer within the pool's limit."""


class PoolClosed(Error):
    """The pool was closed; it hands out no more connections."""


class PoolTimeout(Error, TimeoutError):
    """No connection became free within the caller's deadline."""


class PoolExhausted(Error):
    """No connection is free and the caller asked not to wait (``when_exhausted="fail"``)."""


class PoolInUse(Error):
    """``close(force=False)`` was refused because connections are still borrowed."""


class UsageError(Error):
    """The API was used in a way it does not allow."""


class LeaseReleased(UsageError):
    """A lease was used, or released again, after it went back to the pool."""


class ForeignLease(UsageError):
    """A lease was handed to a pool that did not lend it."""


for _cls in (
    Error,
    ConfigError,
    DriverNotInstalled,
    ConnectionDead,
    PoolClosed,
    PoolTimeout,
    PoolExhausted,
    PoolInUse,
    UsageError,
    LeaseReleased,
    ForeignLease,
):
    # Show the public path in tracebacks, not the private module.
    _cls.__module__ = "sessionpool"
del _cls
