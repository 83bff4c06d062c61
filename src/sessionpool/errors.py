"""The one error hierarchy of sessionpool: everything the pool raises derives from `Error`.

Driver errors (a failed connect, a failed query) pass through unwrapped; messages here never
carry credentials.
"""

from __future__ import annotations

__all__ = [
    "AllHostsFailed",
    "ConfigError",
    "ConnectionDead",
    "DriverNotInstalled",
    "Error",
    "ForeignLease",
    "ForeignSession",
    "LeaseReleased",
    "PoolClosed",
    "PoolExhausted",
    "PoolInUse",
    "PoolTimeout",
    "TransactionAborted",
    "TransactionLost",
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


class AllHostsFailed(Error):
    """No host of a multi-host URL accepted a connection (where the pool, not the driver,
    tries them in turn). The message names every host tried with its error; the last
    driver error is the ``__cause__``; ``hosts`` lists the ``host:port`` labels tried."""

    def __init__(self, message: str, hosts: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.hosts = hosts


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


class ForeignSession(UsageError):
    """A session was used from a thread or task other than the one that owns it."""


class TransactionAborted(Error):
    """A statement failed inside the transaction and the database aborted it (PostgreSQL
    does; MySQL and SQLite undo only the statement): a commit would only roll back, so it
    is refused. Roll back, then do the work again."""


class TransactionLost(Error):
    """The connection died while a session's transaction was open: what the transaction
    did is gone (or, at commit, its outcome is unknown). Nothing was retried; roll back
    (or close) the session and do the work again in a new transaction."""


for _cls in (
    Error,
    AllHostsFailed,
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
    ForeignSession,
    TransactionAborted,
    TransactionLost,
):
    # Show the public path in tracebacks, not the private module.
    _cls.__module__ = "sessionpool"
del _cls
