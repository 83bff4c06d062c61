"""SQLAlchemy's pool classes (and the seed-era ``manage()``) on sessionpool's core.

``QueuePool``, ``NullPool``, ``StaticPool``, ``SingletonThreadPool`` and ``AssertionPool`` are
real `sqlalchemy.pool.Pool` subclasses: ``create_engine(url, poolclass=QueuePool, ...)`` and
the ORM work on them unchanged. SQLAlchemy's own connection records and fairies still do what
they do in SQLAlchemy (connect and its events, pre-ping, recycle, reset on return,
invalidation, return on garbage collection); sessionpool's `Pool` decides which caller gets
which record, first come first served. This face translates names and errors; it adds no pool
logic (DESIGN rule 7).

Needs SQLAlchemy 2.0 or 2.1: ``pip install 'sessionpool[sqlalchemy]'``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from ..errors import DriverNotInstalled

try:
    import sqlalchemy
except ImportError as _error:  # pragma: no cover - exercised in an environment without it
    raise DriverNotInstalled(
        "sessionpool.compat.sqlalchemy needs SQLAlchemy 2.0 or 2.1: "
        "pip install 'sessionpool[sqlalchemy]'"
    ) from _error
if not sqlalchemy.__version__.startswith(("2.0.", "2.1.")):  # pragma: no cover
    raise DriverNotInstalled(
        f"sessionpool.compat.sqlalchemy needs SQLAlchemy 2.0 or 2.1, found "
        f"{sqlalchemy.__version__}: pip install 'sessionpool[sqlalchemy]'"
    )

from sqlalchemy import pool as sa_pool
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.pool.base import _ConnectionRecord
from sqlalchemy.util import chop_traceback

from .._sync.lease import Lease
from ..config import check_timeout
from ..errors import ConfigError, LeaseReleased, PoolExhausted, PoolTimeout
from ._sqlalchemy_manage import clear_managers, manage
from ._sqlalchemy_records import LEASE, Face, give_back, lend, timeout_error

__all__ = [
    "AssertionPool",
    "NullPool",
    "QueuePool",
    "SingletonThreadPool",
    "StaticPool",
    "clear_managers",
    "manage",
]


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {type(value).__name__} {value!r}")
    return value


class QueuePool(Face):
    """SQLAlchemy's QueuePool, queued by sessionpool: waiters are served first come, first
    served (stock QueuePool lets a returning thread take its connection straight back and
    starve the others).

    Args:
        creator: returns a DB-API connection (or takes the connection record, as in
            SQLAlchemy).
        pool_size: connections kept (sessionpool ``max_size``); 0 keeps any number.
        max_overflow: connections beyond ``pool_size`` under load, closed when they come back
            with nobody waiting; -1 for no limit.
        timeout: seconds a caller waits for a connection (None: forever), then
            `sqlalchemy.exc.TimeoutError`.
        use_lifo: reuse the most recently returned connection first.
        use_threadlocal: SQLAlchemy 1.x's option: ``connect()`` in a thread that already has
            a connection checked out returns that one (closed when every such ``connect()``
            has been closed).
        min_size, max_idle, keepalive_interval, max_lifetime, max_uses, leak_threshold,
            ping_interval, ping_timeout: sessionpool's settings of those names (see
            `sessionpool.PoolConfig`). ``min_size`` connections are opened in the background
            at creation and kept; ``ping_interval`` (off by default) checks a connection idle
            that long before it is handed out, without needing a dialect.
        **kw: `sqlalchemy.pool.Pool`'s arguments: ``recycle``, ``echo``, ``logging_name``,
            ``reset_on_return``, ``events``, ``dialect``, ``pre_ping``.
    Raises:
        ConfigError: an invalid setting (named).
    """

    _sqla_logger_namespace = "sqlalchemy.pool.impl.QueuePool"

    def __init__(
        self,
        creator: Callable[..., Any],
        pool_size: int = 5,
        max_overflow: int = 10,
        timeout: float | None = 30.0,
        use_lifo: bool = False,
        use_threadlocal: bool = False,
        min_size: int = 0,
        max_idle: float | None = None,
        keepalive_interval: float | None = None,
        max_lifetime: float | None = None,
        max_uses: int | None = None,
        leak_threshold: float | None = None,
        ping_interval: float = -1.0,
        ping_timeout: float = 5.0,
        **kw: Any,
    ) -> None:
        sa_pool.Pool.__init__(self, creator, **kw)
        pool_size = _check_size("pool_size", pool_size)
        max_overflow = _check_size("max_overflow", max_overflow)
        check_timeout("timeout", timeout)
        self._timeout = timeout
        # As stock: pool_size 0 (here also below 0) keeps any number, and overflow is moot.
        self._max_overflow = -1 if pool_size <= 0 else max_overflow
        self._keep_per_thread(use_threadlocal)
        self._extras: dict[str, Any] = {
            "min_size": min_size,
            "max_idle": max_idle,
            "keepalive_interval": keepalive_interval,
            "max_lifetime": max_lifetime,
            "max_uses": max_uses,
            "leak_threshold": leak_threshold,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
        }
        unbounded = pool_size <= 0
        self._pool = self._backing(
            pool_size,
            use_lifo,
            max_size=sys.maxsize if unbounded else pool_size,
            max_overflow=0 if unbounded else max(max_overflow, -1),
            wait_timeout=timeout,
            **self._extras,
        )

    # -- checkout and checkin (called by SQLAlchemy's record machinery) -------------------------

    def _do_get(self) -> ConnectionPoolEntry:
        try:
            lease = self._pool.pool.acquire()
        except PoolTimeout as error:
            raise timeout_error("QueuePool", self.size(), self.overflow(), self._timeout) from error
        return lend(lease)

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._give_back_record(record)

    # -- the rest of the QueuePool API ------------------------------------------------------------

    def recreate(self) -> QueuePool:
        self.logger.info("Pool recreating")
        return self.__class__(
            self._creator,
            pool_size=self._pool.maxsize,
            max_overflow=self._max_overflow,
            timeout=self._timeout,
            use_lifo=self._pool.use_lifo,
            use_threadlocal=self._use_threadlocal,
            **self._extras,
            pre_ping=self._pre_ping,
            recycle=self._recycle,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def dispose(self) -> None:
        """Close the idle connections now; checked-out ones go back to the pool when they
        come back, as in stock. The pool stays usable and opens new connections on demand."""
        self._pool.pool.close_idle()
        self.logger.info("Pool disposed. %s", self.status())

    def status(self) -> str:
        stats = self._pool.pool.stats()  # one consistent snapshot
        size = self._pool.maxsize
        overflow = stats.opened + stats.opening - size if size > 0 else 0
        return (
            f"Pool size: {size}  Connections in pool: {stats.idle} "
            f"Current Overflow: {overflow} "
            f"Current Checked out connections: {stats.busy + stats.opening}"
        )

    def size(self) -> int:
        return self._pool.maxsize

    def timeout(self) -> float | None:
        return self._timeout

    def checkedin(self) -> int:
        return self._pool.pool.idle

    def checkedout(self) -> int:
        # As stock: connections being opened for a caller count as checked out.
        pool = self._pool.pool
        return pool.busy + pool.opening

    def overflow(self) -> int:
        return self._overflow if self._pool.maxsize > 0 else 0

    @property
    def _overflow(self) -> int:
        """Stock QueuePool's counter: connections open or opening, less ``pool_size``."""
        pool = self._pool.pool
        return pool.opened + pool.opening - self._pool.maxsize


class NullPool(Face):
    """SQLAlchemy's NullPool: a new DB-API connection for every checkout, closed at checkin.

    sessionpool's settings say it: no limit on connections (``max_overflow=-1``) and each one
    retired after one use (``max_uses=1``), so nothing is kept.
    """

    _sqla_logger_namespace = "sqlalchemy.pool.impl.NullPool"

    def __init__(
        self, creator: Callable[..., Any], use_threadlocal: bool = False, **kw: Any
    ) -> None:
        sa_pool.Pool.__init__(self, creator, **kw)
        self._keep_per_thread(use_threadlocal)
        self._pool = self._backing(0, max_size=1, max_overflow=-1, max_uses=1, wait_timeout=None)

    def _do_get(self) -> ConnectionPoolEntry:
        return lend(self._pool.pool.acquire())

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        self._give_back_record(record)

    def status(self) -> str:
        return "NullPool"

    def recreate(self) -> NullPool:
        self.logger.info("Pool recreating")
        return self.__class__(
            self._creator,
            use_threadlocal=self._use_threadlocal,
            recycle=self._recycle,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            pre_ping=self._pre_ping,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )

    def dispose(self) -> None:
        """Nothing is kept, so there is nothing to close (as stock)."""


class AssertionPool(Face):
    """SQLAlchemy's AssertionPool: at most one connection checked out at a time, else
    AssertionError (naming where the first was checked out).

    sessionpool's settings say it: one connection (``max_size=1``, no overflow) and
    ``when_exhausted="fail"``; `PoolExhausted` becomes the AssertionError.
    """

    _sqla_logger_namespace = "sqlalchemy.pool.impl.AssertionPool"

    def __init__(self, *args: Any, **kw: Any) -> None:
        self._checkout_traceback: list[str] | None = None
        self._store_traceback = kw.pop("store_traceback", True)
        use_threadlocal = kw.pop("use_threadlocal", False)
        sa_pool.Pool.__init__(self, *args, **kw)
        self._keep_per_thread(use_threadlocal)
        self._pool = self._backing(1, max_size=1, max_overflow=0, when_exhausted="fail")

    def _do_get(self) -> ConnectionPoolEntry:
        try:
            lease = self._pool.pool.acquire()
        except PoolExhausted:
            suffix = ""
            if self._checkout_traceback:
                suffix = " at:\n" + "".join(chop_traceback(self._checkout_traceback))
            raise AssertionError("connection is already checked out" + suffix) from None
        if self._store_traceback:
            self._checkout_traceback = traceback.format_stack()
        return lend(lease)

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        if LEASE not in record.__dict__:
            raise AssertionError("connection is not checked out")
        self._give_back_record(record)

    def status(self) -> str:
        return "AssertionPool"

    def dispose(self) -> None:
        """Close the connection if it is idle; a checked-out one goes back to the pool when
        it comes back."""
        self._pool.pool.close_idle()

    def recreate(self) -> AssertionPool:
        self.logger.info("Pool recreating")
        return self.__class__(
            self._creator,
            use_threadlocal=self._use_threadlocal,
            echo=self.echo,
            pre_ping=self._pre_ping,
            recycle=self._recycle,
            reset_on_return=self._reset_on_return,
            logging_name=self._orig_logging_name,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )


class StaticPool(Face):
    """SQLAlchemy's StaticPool: exactly one connection, shared by every checkout at once.

    Sharing one connection among several borrowers is what StaticPool is and what a
    sessionpool slot never allows, so the face keeps one lease for as long as the connection
    is valid, and lends its record to everyone (as stock lends its one record). An
    invalidated record is dropped and another lease taken, as stock replaces it.
    """

    _sqla_logger_namespace = "sqlalchemy.pool.impl.StaticPool"

    def __init__(
        self, creator: Callable[..., Any], use_threadlocal: bool = False, **kw: Any
    ) -> None:
        sa_pool.Pool.__init__(self, creator, **kw)
        self._keep_per_thread(use_threadlocal)
        self._lock = threading.RLock()  # reentrant: a finalizer may run while it is held
        self._shared: Lease | None = None
        self._pool = self._backing(1, max_size=1, max_overflow=0, wait_timeout=None)

    @property
    def connection(self) -> ConnectionPoolEntry:
        """The one connection record (opened on first use)."""
        with self._lock:
            lease = self._shared
            if lease is not None and not lease.is_released:
                record: _ConnectionRecord = lease.driver_connection
                if not record._is_hard_or_soft_invalidated():
                    return record
                self._shared = None
                lease.drop()  # stock lets go of an invalidated record the same way
            lease = self._pool.pool.acquire()
            shared = lend(lease)
            self._shared = lease
            return shared

    def _do_get(self) -> ConnectionPoolEntry:
        return self.connection

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        """Shared: nothing to give back."""

    def _transfer_from(self, other_static_pool: StaticPool) -> None:
        # Used by SQLAlchemy's test suite: a new pool on the same :memory: connection.
        def creator(rec: ConnectionPoolEntry) -> Any:
            return other_static_pool.connection.dbapi_connection

        self._invoke_creator = creator

    def status(self) -> str:
        return "StaticPool"

    def dispose(self) -> None:
        """Close the one connection (even while in use, as stock); the next checkout opens
        another."""
        with self._lock:
            lease, self._shared = self._shared, None
        if lease is not None:
            with contextlib.suppress(LeaseReleased):
                lease.drop()

    def recreate(self) -> StaticPool:
        self.logger.info("Pool recreating")
        return self.__class__(
            creator=self._creator,
            use_threadlocal=self._use_threadlocal,
            recycle=self._recycle,
            reset_on_return=self._reset_on_return,
            pre_ping=self._pre_ping,
            echo=self.echo,
            logging_name=self._orig_logging_name,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )


class _ThreadConnection:
    """One thread's connection in a SingletonThreadPool: its lease and record. Referenced only
    by the thread's local storage, so it goes when the thread ends, and its finalizer then
    closes the connection."""

    __slots__ = ("__weakref__", "lease", "record")

    def __init__(self, lease: Lease, record: ConnectionPoolEntry) -> None:
        self.lease = lease
        self.record = record


class SingletonThreadPool(Face):
    """SQLAlchemy's SingletonThreadPool: one connection per thread, never used by another.

    Each thread holds a lease on its own connection for as long as it lives (or until
    ``dispose()``); when the thread ends, the connection is closed. ``pool_size`` is kept for
    SQLAlchemy's API but is not a limit: stock closes arbitrary connections, even ones in
    use, once more threads than ``pool_size`` have one; here a thread's connection is never
    closed under it.
    """

    _sqla_logger_namespace = "sqlalchemy.pool.impl.SingletonThreadPool"
    _use_threadlocal = True  # as stock: connect() in a thread reuses its checked-out one
    size: int  # stock SingletonThreadPool's attribute, not QueuePool's method

    def __init__(
        self,
        creator: Callable[..., Any],
        pool_size: int = 5,
        use_threadlocal: bool = True,
        **kw: Any,
    ) -> None:
        # use_threadlocal is accepted for 1.x code; this pool is always per thread.
        sa_pool.Pool.__init__(self, creator, **kw)
        self._conn = threading.local()
        self._fairy = threading.local()
        self._all_conns: weakref.WeakSet[_ThreadConnection] = weakref.WeakSet()
        self.size = pool_size
        self._pool = self._backing(
            pool_size, max_size=max(pool_size, 1), max_overflow=-1, wait_timeout=None
        )

    def _do_get(self) -> ConnectionPoolEntry:
        mine: _ThreadConnection | None = getattr(self._conn, "current", None)
        if mine is not None and not mine.lease.is_released:
            return mine.record
        lease = self._pool.pool.acquire()
        record = lend(lease)
        mine = _ThreadConnection(lease, record)
        # The thread's end frees `mine` (its local storage goes): the finalizer then closes
        # the connection, on the ending thread itself, so a driver that checks threads
        # (sqlite3) lets it close its own connection.
        weakref.finalize(mine, give_back, _Dropping(lease))
        self._conn.current = mine
        self._all_conns.add(mine)
        return record

    def _do_return_conn(self, record: ConnectionPoolEntry) -> None:
        """The thread keeps its connection (`Face._return_conn` forgot the checkout)."""

    def _transfer_from(self, other_singleton_pool: SingletonThreadPool) -> None:
        # Used by SQLAlchemy's test suite: a new pool on the same :memory: connections.
        self._conn = other_singleton_pool._conn
        self._all_conns = other_singleton_pool._all_conns

    def dispose(self) -> None:
        """Close every thread's connection, even in use (as stock)."""
        for mine in list(self._all_conns):
            with contextlib.suppress(LeaseReleased):
                mine.lease.drop()
        self._all_conns.clear()

    def status(self) -> str:
        return f"SingletonThreadPool id:{id(self)} size: {len(self._all_conns)}"

    def recreate(self) -> SingletonThreadPool:
        self.logger.info("Pool recreating")
        return self.__class__(
            self._creator,
            pool_size=self.size,
            recycle=self._recycle,
            echo=self.echo,
            pre_ping=self._pre_ping,
            logging_name=self._orig_logging_name,
            reset_on_return=self._reset_on_return,
            _dispatch=self.dispatch,
            dialect=self._dialect,
        )


class _Dropping:
    """A lease to drop rather than release, in `give_back`'s hands."""

    __slots__ = ("lease",)

    def __init__(self, lease: Lease) -> None:
        self.lease = lease

    def release(self) -> None:
        with contextlib.suppress(LeaseReleased):  # dispose() dropped it already
            self.lease.drop()


for _cls in (QueuePool, NullPool, StaticPool, SingletonThreadPool, AssertionPool):
    _cls.__module__ = __name__
del _cls
