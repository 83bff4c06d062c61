"""One connection per thread (DBUtils' PersistentDB), and one connection shared by threads for
autocommit reads, for drivers that allow it (DB-API threadsafety 2 or more).

Both hold ordinary leases of a `Pool`: no pool logic here, only who holds which lease.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:
    from ._sync.lease import Lease
    from ._sync.pool import Pool

__all__ = ["SharedReader", "ThreadConnections"]


class ThreadConnections:
    """Each thread gets one connection of the pool and keeps it (SQLAlchemy's
    SingletonThreadPool, DBUtils' PersistentDB): `connection()` returns the calling thread's
    lease, borrowing it on first call. `release()` gives it back; a thread that ends
    without releasing leaves its lease to be collected, and the pool takes the connection
    back within a tick of its maintenance worker.
    """

    def __init__(self, pool: Pool, **acquire_args: Any) -> None:
        self._pool = pool
        self._acquire_args = acquire_args
        self._local = threading.local()

    def connection(self) -> Lease:
        lease: Lease | None = getattr(self._local, "lease", None)
        if lease is None or lease.is_released:
            lease = self._local.lease = self._pool.acquire(**self._acquire_args)
        return lease

    def release(self) -> None:
        """Give the calling thread's connection back (a no-op if it holds none)."""
        lease: Lease | None = getattr(self._local, "lease", None)
        self._local.lease = None
        if lease is not None and not lease.is_released:
            lease.release()


class SharedReader:
    """One connection, in autocommit, shared by every thread for reads; calls are serialized
    by a lock, so two threads never talk over one connection at once.

    Only for drivers whose DB-API ``threadsafety`` is 2 or more (threads may share
    connections): others are refused at construction with `UsageError`.
    """

    def __init__(self, pool: Pool, **acquire_args: Any) -> None:
        driver = pool._connector.driver
        if driver.threadsafety < 2:
            raise UsageError(
                f"the {driver.name} driver does not allow threads to share a connection "
                f"(DB-API threadsafety {driver.threadsafety}); give each thread its own "
                "(pool.session(), or ThreadConnections)"
            )
        self._pool = pool
        self._acquire_args = acquire_args
        self._lock = threading.Lock()
        self._lease: Lease | None = None
        self._saved_autocommit: bool | None = None

    def fetch(self, sql: str, params: Any = None) -> list[Any]:
        """Run a read and return its rows (serialized with every other thread's)."""
        with self._lock:
            lease = self._borrow()
            try:
                cursor = lease.cursor()
                try:
                    if params is None:
                        cursor.execute(sql)
                    else:
                        cursor.execute(sql, params)
                    return list(cursor.fetchall())
                finally:
                    cursor.close()
            except Exception as exc:
                if self._pool.is_disconnect(exc, lease):
                    self._lease = None  # the next read borrows a fresh connection
                    lease.drop()
                raise

    def close(self) -> None:
        """Give the shared connection back, in the autocommit mode it was lent in."""
        with self._lock:
            lease, self._lease = self._lease, None
            if lease is None:
                return
            if self._saved_autocommit is not None:
                driver = self._pool._connector.driver
                try:
                    driver.set_autocommit(lease.driver_connection, self._saved_autocommit)
                except BaseException:
                    lease.drop()  # its mode is unknown: it must not serve anyone else
                    raise
            lease.release()

    def _borrow(self) -> Lease:
        if self._lease is None:
            lease = self._pool.acquire(**self._acquire_args)
            driver = self._pool._connector.driver
            raw = lease.driver_connection
            self._saved_autocommit = None
            if not driver.autocommit(raw):
                try:
                    driver.set_autocommit(raw, True)  # reads only: no transaction to hold
                except BaseException:
                    lease.drop()
                    raise
                self._saved_autocommit = False
            self._lease = lease
        return self._lease
