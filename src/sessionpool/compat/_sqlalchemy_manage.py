"""``manage()``: the seed-era transparent pooling proxy of a DB-API module (SQLAlchemy 0.x
``pool.manage``, removed in SQLAlchemy 2), over one sessionpool `Pool` per argument set.

Translates SQLAlchemy's pool arguments into `PoolConfig` settings and sessionpool's errors into
SQLAlchemy's; the pooling, resets and waiting are sessionpool's. What the face adds is the
proxy objects the seed describes: connections that go back to the pool on ``close()`` or when
garbage-collected (with their cursors), and the thread-local reuse of ``use_threadlocal``.
"""

from __future__ import annotations

import functools
import sys
import threading
import weakref
from collections.abc import Hashable
from types import TracebackType
from typing import Any

from sqlalchemy import exc as sa_exc

from .._sync.lease import Lease
from .._sync.pool import Pool
from ..config import PoolConfig
from ..errors import ConfigError, PoolInUse, PoolTimeout
from ..factory import create_pool
from ._sqlalchemy_records import give_back, timeout_error

__all__ = ["DBProxy", "ProxiedConnection", "ProxiedCursor", "clear_managers", "manage"]

# Proxies by module identity (a module object need not be hashable); each proxy holds its
# module, so an id here is never reused while its entry lives.
_managers: dict[int, DBProxy] = {}
_managers_guard = threading.Lock()

# SQLAlchemy's name -> the sessionpool setting it becomes (for the "not both" check).
_SAME_SETTING = {
    "pool_size": "max_size",
    "timeout": "wait_timeout",
    "recycle": "max_lifetime",
    "use_lifo": "idle_order",
    "pre_ping": "ping_interval",
    "logging_name": "name",
}
_RESETS: dict[Any, str | None] = {
    True: "rollback",
    "rollback": "rollback",
    "commit": "commit",
    None: None,
    False: None,
    "none": None,
}


def manage(module: Any, **params: Any) -> DBProxy:
    """Pool a DB-API module transparently: ``psycopg = manage(psycopg)``, then
    ``psycopg.connect(...)`` as before.

    Returns the module's one proxy (as SQLAlchemy did, a second ``manage()`` of the same
    module returns the first proxy and ignores its arguments).

    Args:
        module: the DB-API module (anything with ``connect()``).
        **params: SQLAlchemy's pool arguments (``pool_size=5``, ``max_overflow=10``,
            ``timeout=30``, ``recycle=-1``, ``use_lifo``, ``reset_on_return``, ``pre_ping``,
            ``use_threadlocal=True``, ``echo``, ``logging_name``, ``poolclass`` =
            `QueuePool` or `NullPool`) and any sessionpool setting (``min_size``,
            ``max_idle``, ``keepalive_interval``...).
    Raises:
        ConfigError: an invalid or unknown argument (named).
    """
    with _managers_guard:
        proxy = _managers.get(id(module))
        if proxy is None:
            proxy = _managers[id(module)] = DBProxy(module, **params)
    return proxy


def clear_managers() -> None:
    """Dispose of every proxy ``manage()`` made, and forget them."""
    with _managers_guard:
        proxies = list(_managers.values())
        _managers.clear()
    for proxy in proxies:
        proxy.close()


class DBProxy:
    """A DB-API module whose ``connect()`` draws from pools, one per distinct argument set.

    Any other attribute is the module's (``proxy.Error``, ``proxy.paramstyle``...).
    """

    def __init__(self, module: Any, **params: Any) -> None:
        self.module = module
        self._use_threadlocal = bool(params.pop("use_threadlocal", True))
        self._pool_size = params.get("pool_size", 5)
        self._timeout = params.get("timeout", 30.0)
        self._settings = _settings_from(params)
        PoolConfig(**self._settings)  # every argument checked now, not at the first connect
        self._pools: dict[Hashable, Pool] = {}
        self._guard = threading.Lock()
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)

    def connect(self, *args: Any, **kwargs: Any) -> ProxiedConnection:
        """A pooled connection for these ``module.connect()`` arguments.

        With ``use_threadlocal`` (the default), a thread that already has a connection for
        these arguments checked out gets that one again; it goes back when every such
        ``connect()`` has been closed. ``sa_pool_key=`` names the pool instead of the
        arguments (and is not passed to the driver).
        Raises:
            sqlalchemy.exc.TimeoutError: none free within ``timeout``.
            Exception: the driver's connect error.
        """
        key = _key(args, kwargs)
        mine: dict[Hashable, weakref.ref[ProxiedConnection]] | None = None
        if self._use_threadlocal:
            mine = getattr(self._local, "connections", None)
            if mine is None:
                mine = self._local.connections = {}
            ref = mine.get(key)
            current = None if ref is None else ref()
            if current is not None and current._lease is not None:
                current._checkouts += 1
                return current
        pool = self._pool_for(key, args, kwargs)
        try:
            lease = pool.acquire()
        except PoolTimeout as error:
            raise timeout_error(
                "QueuePool", self._pool_size, pool.overflow(), self._timeout
            ) from error
        connection = ProxiedConnection(lease)
        if mine is not None:
            mine[key] = weakref.ref(connection)
        return connection

    def get_pool(self, *args: Any, **kwargs: Any) -> Pool:
        """The sessionpool `Pool` behind these ``connect()`` arguments (``stats()``...)."""
        return self._pool_for(_key(args, kwargs), args, kwargs)

    def dispose(self, *args: Any, **kwargs: Any) -> None:
        """Retire the pool for these ``connect()`` arguments: idle connections are closed
        now, checked-out ones when they come back; the next ``connect()`` starts afresh."""
        with self._guard:
            pool = self._pools.pop(_key(args, kwargs), None)
        if pool is not None:
            _retire(pool)

    def close(self) -> None:
        """Retire every pool of this proxy (as `dispose`, for all argument sets)."""
        with self._guard:
            pools = list(self._pools.values())
            self._pools.clear()
        for pool in pools:
            _retire(pool)

    def _pool_for(self, key: Hashable, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Pool:
        pool = self._pools.get(key)
        if pool is not None:
            return pool
        with self._guard:
            pool = self._pools.get(key)
            if pool is None:
                arguments = {k: v for k, v in kwargs.items() if k != "sa_pool_key"}
                settings = dict(self._settings)
                settings.setdefault(
                    "name", f"manage-{_module_name(self.module)}-{len(self._pools)}"
                )
                # Lazy: opens nothing here (min_size, if set, fills on first use).
                pool = create_pool(
                    creator=functools.partial(self.module.connect, *args, **arguments),
                    **settings,
                )
                self._pools[key] = pool
        return pool

    def __repr__(self) -> str:
        return f"<DBProxy of {_module_name(self.module)}: {len(self._pools)} pool(s)>"


class ProxiedConnection:
    """A pooled DB-API connection: every method and attribute of the driver's connection;
    ``close()`` gives it back (rolled back), as does garbage collection once it and its
    cursors are gone. Any use after it went back raises `ResourceClosedError`.

    ``with`` runs the driver's own context protocol on it (a transaction scope in sqlite3
    and psycopg2; psycopg 3 also closes the connection, which then leaves the pool when it
    comes back).
    """

    __slots__ = ("__weakref__", "_checkouts", "_finalizer", "_lease")

    _lease: Lease | None
    _checkouts: int

    def __init__(self, lease: Lease) -> None:
        object.__setattr__(self, "_lease", lease)
        object.__setattr__(self, "_checkouts", 1)
        # Garbage collection gives the connection back (the seed's __del__), at once.
        object.__setattr__(self, "_finalizer", weakref.finalize(self, give_back, lease))

    def _live(self) -> Lease:
        lease = self._lease
        if lease is None:
            raise sa_exc.ResourceClosedError("This connection is closed")
        return lease

    @property
    def dbapi_connection(self) -> Any:
        """The driver's own connection."""
        return self._live().driver_connection

    connection = dbapi_connection  # the seed era's name

    def cursor(self, *args: Any, **kwargs: Any) -> ProxiedCursor:
        return ProxiedCursor(self._live().cursor(*args, **kwargs), self)

    def close(self) -> None:
        """Give the connection back (rolled back), once every ``connect()`` that returned
        it has been closed. Closing it again does nothing."""
        if self._lease is None:
            return
        self._checkouts -= 1
        if self._checkouts <= 0:
            lease = self._lease
            self._lease = None
            self._finalizer.detach()
            lease.release()

    def invalidate(self, e: BaseException | None = None) -> None:
        """Close the driver connection and drop it from the pool (it is broken)."""
        lease = self._live()
        self._lease = None
        self._finalizer.detach()
        lease.drop()

    @property
    def is_valid(self) -> bool:
        return self._lease is not None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._live(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _CONNECTION_FIELDS:
            object.__setattr__(self, name, value)
        else:
            setattr(self._live(), name, value)  # e.g. conn.autocommit = True

    def __enter__(self) -> ProxiedConnection:
        self._live().driver_connection.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return self._live().driver_connection.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<ProxiedConnection {self._lease!r}>"


_CONNECTION_FIELDS = frozenset(ProxiedConnection.__slots__)


class ProxiedCursor:
    """A driver cursor that keeps its connection checked out while it lives. Any use after
    its connection went back raises `ResourceClosedError`."""

    __slots__ = ("_connection", "_cursor")

    _connection: ProxiedConnection
    _cursor: Any

    def __init__(self, cursor: Any, connection: ProxiedConnection) -> None:
        object.__setattr__(self, "_cursor", cursor)
        object.__setattr__(self, "_connection", connection)

    def _live(self) -> Any:
        if self._connection._lease is None:
            raise sa_exc.ResourceClosedError("This cursor's connection is closed")
        return self._cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._live(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._live(), name, value)

    def __iter__(self) -> Any:
        return iter(self._live())

    def __enter__(self) -> ProxiedCursor:
        self._live().__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return self._cursor.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        return f"<ProxiedCursor {self._cursor!r}>"


def _key(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Hashable:
    """The pool key of a ``connect()`` call: ``sa_pool_key`` when given, else the arguments
    (as SQLAlchemy's DBProxy). Raises TypeError for unhashable arguments."""
    if "sa_pool_key" in kwargs:
        key: Hashable = kwargs["sa_pool_key"]
        return key
    key = (*args, *((name, kwargs[name]) for name in sorted(kwargs)))
    try:
        hash(key)
    except TypeError:
        raise TypeError(
            "connect() arguments must be hashable to choose a pool; pass sa_pool_key= to "
            "name the pool instead"
        ) from None
    return key


def _settings_from(params: dict[str, Any]) -> dict[str, Any]:
    """sessionpool settings for SQLAlchemy's pool arguments (and sessionpool's own)."""
    for sqlalchemy_name, own_name in _SAME_SETTING.items():
        if sqlalchemy_name in params and own_name in params:
            raise ConfigError(f"pass {sqlalchemy_name} or {own_name}, not both")
    poolclass = params.pop("poolclass", None)
    params.pop("echo", None)  # sessionpool logs to the "sessionpool" loggers instead
    settings: dict[str, Any] = {"lazy": True, "min_size": 0}
    names = {cls.__name__ for cls in getattr(poolclass, "__mro__", ())}
    if poolclass is not None and "NullPool" in names:
        # A new connection for every connect(), closed when it comes back.
        settings.update(max_size=1, max_overflow=-1, max_uses=1)
        params.pop("max_overflow", None)
    elif poolclass is not None and "QueuePool" not in names:
        raise ConfigError(
            f"poolclass must be QueuePool or NullPool for manage(), not {poolclass!r}"
        )
    pool_size = params.pop("pool_size", 5)
    if "max_size" not in params and "max_uses" not in settings:
        settings["max_size"] = pool_size if pool_size > 0 else sys.maxsize
        settings["max_overflow"] = params.pop("max_overflow", 10) if pool_size > 0 else 0
    if "timeout" in params:
        settings["wait_timeout"] = params.pop("timeout")
    recycle = params.pop("recycle", -1)
    if recycle == 0:
        settings["max_uses"] = 1  # recycled at every checkout
    elif recycle > 0:
        settings["max_lifetime"] = recycle
    if "use_lifo" in params:
        settings["idle_order"] = "lifo" if params.pop("use_lifo") else "fifo"
    if "reset_on_return" in params:
        reset = params.pop("reset_on_return")
        if reset not in _RESETS:
            raise ConfigError(
                f"reset_on_return must be 'rollback', 'commit', None, True or False (got {reset!r})"
            )
        settings["reset_on_return"] = _RESETS[reset]
    if params.pop("pre_ping", False):
        settings["ping_interval"] = 0.0  # sessionpool's check before every hand-out
    if "logging_name" in params:
        settings["name"] = params.pop("logging_name")
    unknown = sorted(set(params) - PoolConfig.parameter_names())
    if unknown:
        raise ConfigError(f"unknown manage() argument(s) {', '.join(unknown)}")
    settings.update(params)
    return settings


def _retire(pool: Pool) -> None:
    """Close a pool nobody borrows from now; with connections still out, close its idle ones
    now and each borrowed one when it comes back (the pool goes when they have)."""
    try:
        pool.close()
    except PoolInUse:
        pool.drain()


def _module_name(module: Any) -> str:
    return str(getattr(module, "__name__", type(module).__name__))
