"""What the SQLAlchemy face puts under a `sqlalchemy.pool.Pool`: a sessionpool `Pool` whose
"connections" are SQLAlchemy's own connection records, and `Face`, the base of the face's five
pool classes.

SQLAlchemy's `_ConnectionRecord` keeps doing what it does in stock SQLAlchemy (connect, connect
events, recycle, invalidation and reconnect, close events); sessionpool's core only decides
which borrower gets which record, and when a record is kept or let go. Holds no pool logic of
its own: no counts, no queue, no decisions.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import queue
import threading
from collections import deque
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.pool import Pool as SAPool
from sqlalchemy.pool.base import _ConnectionFairy, _ConnectionRecord

from .._core.effects import Effect
from .._sync.lease import Lease
from .._sync.pool import Pool
from ..config import PoolConfig
from ..drivers.base import Connector, Driver
from ..drivers.registry import driver_for_connection
from ..errors import ConfigError, ConnectionDead

__all__ = [
    "Backing",
    "Face",
    "InlineClosingPool",
    "RecordConnector",
    "RecordDriver",
    "defer",
    "give_back",
    "lend",
    "timeout_error",
]

logger = logging.getLogger("sessionpool.compat.sqlalchemy")

# Where a lent record keeps its lease (records have a __dict__ for such per-record data). A
# record is lent to one borrower at a time, so one entry is enough.
LEASE = "_sessionpool_lease"


class RecordDriver(Driver):
    """The sessionpool `Driver` for SQLAlchemy connection records.

    Closing a record is `_ConnectionRecord.close()` (its ``close`` event fires). A liveness
    check (keepalive, ``ping_interval``) checks the record's DB-API connection with the
    sessionpool adapter for that connection's driver, so it has the adapter's time limit; a
    record without a connection (invalidated: it reconnects at its next checkout) passes.
    Resets are SQLAlchemy's (``reset_on_return`` runs on the fairy before checkin), so this
    driver's are no-ops.
    """

    name = "sqlalchemy"

    def __init__(self) -> None:
        super().__init__(None)
        self._adapters: dict[type, Driver] = {}

    def _adapter(self, connection: Any) -> Driver:
        kind = type(connection)
        adapter = self._adapters.get(kind)
        if adapter is None:
            adapter = self._adapters[kind] = driver_for_connection(connection)
        return adapter

    def ping(self, connection: Any, timeout: float) -> None:
        dbapi_connection = connection.dbapi_connection
        if dbapi_connection is not None:
            self._adapter(dbapi_connection).ping(dbapi_connection, timeout)

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        dbapi_connection = None if connection is None else connection.dbapi_connection
        if dbapi_connection is None:
            return isinstance(error, ConnectionDead)
        return self._adapter(dbapi_connection).is_disconnect(error, dbapi_connection)

    def fileno(self, connection: Any) -> int | None:
        dbapi_connection = connection.dbapi_connection
        if dbapi_connection is None:
            return None
        return self._adapter(dbapi_connection).fileno(dbapi_connection)

    def end_transaction(self, connection: Any, timeout: float) -> None:
        """SQLAlchemy has reset the connection before checkin; nothing is left to do."""

    def close(self, connection: Any) -> None:
        connection.close()


class RecordConnector(Connector):
    """Opens sessionpool slots as SQLAlchemy connection records of ``owner``.

    A record is made without a DB-API connection: its first borrower connects it (`lend`), on
    the borrower's own thread, as stock SQLAlchemy creates connections, so connect errors
    reach that caller at once and the ``first_connect``/``connect`` events run where
    SQLAlchemy runs them. With ``eager`` (the face was given ``min_size``), the record is
    connected here, on sessionpool's opener thread, so that ``min_size`` connections are open
    ahead of need; if that connect fails the error is logged and the record is handed out
    unconnected, for its borrower to connect (and see the error) itself.
    """

    def __init__(self, owner: SAPool, eager: bool) -> None:
        self.driver = RecordDriver()
        self._owner = owner
        self._eager = eager

    def connect(self, user: str | None = None, password: str | None = None) -> Any:
        record = _ConnectionRecord(self._owner, connect=False)
        if self._eager:
            try:
                record.get_connection()
            except Exception as exc:
                logger.warning(
                    "%s: connecting a connection ahead of need failed (%s: %s); its first "
                    "borrower connects it",
                    type(self._owner).__name__,
                    type(exc).__name__,
                    exc,
                )
                record.starttime = 0  # never connected: lent as a new record (see `lend`)
        return record

    def describe(self) -> str:
        return f"SQLAlchemy {type(self._owner).__name__} records"


class InlineClosingPool(Pool):
    """A sessionpool `Pool` that closes the records it lets go on the thread that lets them go.

    sessionpool's threaded shell hands closes to its maintenance thread, so that no borrower
    waits behind one. SQLAlchemy closes a connection where it is let go: the overflow
    connection on the returning thread, the idle ones inside ``dispose()``, and its ``close``
    event, its tests and asyncio adapters (whose close needs the caller's greenlet) rely on
    that. This subclass only changes where the closes the core decided on run.
    """

    def _run(self, effects: list[Effect], close_now: bool = False) -> list[threading.Thread]:
        return super()._run(effects, close_now=True)


class Backing:
    """The sessionpool pool under a SQLAlchemy pool, kept as that pool's ``_pool``.

    The name and the few queue methods (``maxsize``, ``use_lifo``, ``qsize()``, ``empty()``,
    ``full()``) are those of stock QueuePool's queue, which SQLAlchemy's own tests and some
    applications read.
    """

    __slots__ = ("maxsize", "pool", "use_lifo")

    def __init__(self, pool: Pool, maxsize: int, use_lifo: bool) -> None:
        self.pool = pool
        self.maxsize = maxsize
        self.use_lifo = use_lifo

    def qsize(self) -> int:
        return self.pool.idle

    def empty(self) -> bool:
        return self.pool.idle == 0

    def full(self) -> bool:
        return 0 < self.maxsize <= self.pool.idle

    # Stock QueuePool keeps its idle records in ``_pool.queue``, a deque, and SQLAlchemy's own
    # tests prune it by assigning a filtered copy. Read, it is a snapshot of the idle records
    # (oldest first); assigned, the idle records left out are closed, as the pool would close
    # them. Private on both sides: it exists for those tests, not as an API.

    @property
    def queue(self) -> deque[Any]:
        with self.pool._lock:
            slots = sorted(self.pool._core.idle_slots(), key=lambda slot: slot.last_used)
        return deque(slot.connection for slot in slots)

    @queue.setter
    def queue(self, records: Any) -> None:
        kept = {id(record) for record in records}
        with self.pool._lock:
            dropped = [s for s in self.pool._core.idle_slots() if id(s.connection) not in kept]
        for slot in dropped:
            self.pool._discard(slot, "removed from the idle queue")

    def __repr__(self) -> str:
        return f"<Backing {self.pool!r}>"


class Face(SAPool):
    """What the five pool classes share: the sessionpool pool underneath (``_pool``) and
    giving a lent record back."""

    _pool: Backing
    # For threaded engines only: sessionpool's threaded Pool waits on thread locks, and
    # StaticPool holds one while connecting, which would block an event loop. So
    # create_async_engine() refuses these classes with SQLAlchemy's own "cannot be used with
    # asyncio engine" error rather than run untested (stock NullPool, StaticPool and
    # AssertionPool follow the dialect).
    _is_asyncio = False
    # SQLAlchemy 1.x's use_threadlocal (every class accepts it, as 1.x's Pool did).
    _use_threadlocal = False

    def _keep_per_thread(self, use_threadlocal: bool) -> None:
        self._use_threadlocal = bool(use_threadlocal)
        if use_threadlocal:
            self._fairy = threading.local()

    def connect(self) -> PoolProxiedConnection:
        if not self._use_threadlocal:
            return _ConnectionFairy._checkout(self)
        # SQLAlchemy 1.x's threadlocal checkout (as stock SingletonThreadPool still has it):
        # a thread that has a connection checked out gets the same one again.
        try:
            fairy = self._fairy.current()
        except AttributeError:
            pass
        else:
            if fairy is not None:
                existing: PoolProxiedConnection = fairy._checkout_existing()
                return existing
        return _ConnectionFairy._checkout(self, self._fairy)

    def _return_conn(self, record: ConnectionPoolEntry) -> None:
        if self._use_threadlocal:
            with contextlib.suppress(AttributeError):
                del self._fairy.current
        self._do_return_conn(record)

    @property
    def sessionpool(self) -> Pool:
        """The sessionpool `Pool` underneath: ``stats()``, ``busy``, ``waiting``,
        ``resize()`` and the rest of sessionpool's figures and controls."""
        return self._pool.pool

    def _backing(self, size: int, use_lifo: bool = False, **settings: Any) -> Backing:
        """Build the sessionpool pool: lazy, no reset (SQLAlchemy resets), no checks by age
        unless asked (SQLAlchemy's pre_ping is the fairy's), records as connections."""
        settings.setdefault("ping_interval", -1.0)
        settings.setdefault("min_size", 0)
        name = self._orig_logging_name or f"{type(self).__name__.lower()}-{id(self):x}"
        try:
            config = PoolConfig(
                lazy=True,
                reset_on_return=None,
                # pool_size bounds the idle connections kept, as in stock QueuePool.
                max_size_bounds="idle",
                idle_order="lifo" if use_lifo else "fifo",
                name=name,
                **settings,
            )
        except TypeError as exc:  # an unknown keyword reached PoolConfig
            raise ConfigError(str(exc)) from None
        pool = InlineClosingPool(RecordConnector(self, eager=config.min_size > 0), config)
        if config.min_size:
            pool.open(wait=False)  # fill min_size in the background, as asked
        return Backing(pool, size, use_lifo)

    def _give_back_record(self, record: ConnectionPoolEntry) -> None:
        lease = record.__dict__.pop(LEASE, None)
        if lease is not None:  # None: not lent (a double checkin SQLAlchemy warned about)
            give_back(lease)


def lend(lease: Lease) -> ConnectionPoolEntry:
    """The record of a lease just acquired, connected first if it is new.

    A new record is connected here, on the caller's thread (stock SQLAlchemy's
    ``_create_connection``). If that fails the slot is dropped, as stock QueuePool gives its
    overflow count back, and the error propagates. A record that was connected before and
    lost its connection (invalidated, detached) is reconnected by SQLAlchemy at checkout; if
    that fails it comes back through checkin and stays in the pool, as in stock.
    """
    record: _ConnectionRecord = lease.driver_connection
    if record.dbapi_connection is None and record.starttime == 0:
        try:
            record.get_connection()
        except BaseException:
            lease.drop()
            raise
    record.__dict__[LEASE] = lease
    return record


# -- giving leases back safely from garbage collection -----------------------------------------
#
# SQLAlchemy returns a connection whose fairy was garbage-collected from a weakref finalizer.
# During a cyclic collection that finalizer runs on whatever thread triggered the collection,
# possibly while that thread holds this very pool's lock (any allocation can trigger one), and
# sessionpool's lock is not reentrant: releasing there would deadlock. So releases that happen
# inside a collection are handed to one daemon thread; all others are immediate. Leases of
# sessionpool's own API never meet this (they carry no finalizer).

_collecting = threading.local()


def _note_collection(phase: str, info: dict[str, int]) -> None:
    _collecting.active = phase == "start"


gc.callbacks.append(_note_collection)

# SimpleQueue.put is reentrant: safe from a finalizer that interrupted another put.
_deferred: queue.SimpleQueue[Any] = queue.SimpleQueue()
_returner_guard = threading.RLock()  # reentrant for the same reason
_returner: list[threading.Thread] = []


def give_back(lease: Any) -> None:
    """Release ``lease`` (a `Lease`, or anything with ``release()``), deferred to the returner
    thread when called from inside a garbage collection."""
    if getattr(_collecting, "active", False):
        defer(lease)
    else:
        lease.release()


def defer(lease: Any) -> None:
    """Release ``lease`` (anything with ``release()``) on the returner thread. Safe from any
    finalizer: it takes no lock that the calling thread may hold."""
    _deferred.put(lease)
    _start_returner()


def _start_returner() -> None:
    with _returner_guard:
        if _returner and _returner[0].is_alive():
            return
        thread = threading.Thread(
            target=_return_deferred, name="sessionpool-sqlalchemy-returner", daemon=True
        )
        _returner[:] = [thread]
        thread.start()


def _return_deferred() -> None:
    while True:
        lease = _deferred.get()
        try:
            lease.release()
        except Exception as exc:
            logger.warning("returning a garbage-collected connection failed: %r", exc)


# -- errors ---------------------------------------------------------------------------------


def timeout_error(
    kind: str, size: int, overflow: int, timeout: float | None
) -> sa_exc.TimeoutError:
    """SQLAlchemy's TimeoutError, in its words. Raise it ``from`` sessionpool's PoolTimeout,
    which has the figures (busy, waiting, how long the holders have held their
    connections)."""
    return sa_exc.TimeoutError(
        f"{kind} limit of size {size} overflow {overflow} reached, connection timed out, "
        f"timeout {timeout if timeout is not None else float('inf'):0.2f}",
        code="3o7r",
    )
