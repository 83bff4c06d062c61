"""create_pool / create_async_pool: build a pool from a URL or a creator and keyword
settings, and open it.

Only assembly lives here: splitting a URL's query into pool settings and driver arguments,
choosing the connector. Pool behaviour is in `_sync` and `_core`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from typing import Any

from ._async.pool import AsyncPool
from ._sync.pool import Pool
from .config import PoolConfig
from .drivers.async_base import (
    AsyncConnector,
    AsyncCreatorConnector,
    AsyncURLConnector,
    ExecutorConnector,
)
from .drivers.async_registry import async_driver_for_url
from .drivers.base import Connector, CreatorConnector, URLConnector
from .drivers.registry import driver_for_url
from .errors import ConfigError
from .url import URL, parse_url

__all__ = ["OpeningPool", "connector_for", "create_async_pool", "create_pool", "split_settings"]

# Settings of create_pool itself, accepted in a URL query beside PoolConfig's.
_FACTORY_SETTINGS = frozenset({"open_timeout"})


def create_pool(
    url: str | URL | Callable[..., Any] | Connector | None = None,
    *,
    creator: Callable[..., Any] | Connector | None = None,
    connect_args: Mapping[str, Any] | None = None,
    open_timeout: float | None = None,
    **settings: Any,
) -> Pool:
    """Create a threaded pool and, unless ``lazy=True``, open ``min_size`` connections.

    Args:
        url: ``dialect[+driver]://user:password@host:port/database?key=value``. Query keys
            that are pool settings (``?max_size=20&wait_timeout=5``) configure the pool;
            the others go to the driver. A callable or `Connector` here is taken as
            ``creator``.
        creator: instead of a URL, a callable returning a new DB-API connection (called with
            ``user=`` and ``password=`` for per-user acquires of a heterogeneous pool), or
            a `Connector`.
        connect_args: more driver arguments, as keywords (for values a URL cannot spell).
        open_timeout: most seconds to wait for the first ``min_size`` connections.
        **settings: any `PoolConfig` field (``min_size``, ``max_size``, ``wait_timeout``...);
            a keyword wins over the same setting in the URL.
    Raises:
        ConfigError: a setting, URL part or driver argument is invalid or unknown (the
            message names it; it never shows a password).
        DriverNotInstalled: the URL's driver is missing; the message names the extra.
        Exception: the driver's error when the first connections cannot be opened.
    """
    if url is not None and (callable(url) or isinstance(url, Connector)):
        if creator is not None:
            raise ConfigError("pass either a url or creator=, not both")
        url, creator = None, url
    if url is None and creator is None:
        raise ConfigError(
            "a url (e.g. 'sqlite:///app.db') or creator= (a callable returning a DB-API "
            "connection) is required"
        )
    if url is not None and creator is not None:
        raise ConfigError("pass either a url or creator=, not both")
    if url is not None:
        parsed, settings, open_timeout = _split_query(url, settings, open_timeout)
        connector: Connector = connector_for(parsed, dict(connect_args or {}))
    else:
        if connect_args:
            raise ConfigError("connect_args applies to a url; a creator opens its own connections")
        assert creator is not None
        connector = creator if isinstance(creator, Connector) else CreatorConnector(creator)
    config = _config(settings)
    pool = Pool(connector, config)
    if not config.lazy:
        try:
            pool.open(wait=True, timeout=open_timeout)
        except BaseException:
            # The caller never gets this pool: close it, so connects still under way are
            # closed when they complete instead of leaking.
            pool.close(force=True)
            raise
    return pool


def create_async_pool(
    url: str | URL | Callable[..., Any] | AsyncConnector | None = None,
    *,
    creator: Callable[..., Any] | AsyncConnector | None = None,
    blocking_creator: Callable[..., Any] | None = None,
    connect_args: Mapping[str, Any] | None = None,
    open_timeout: float | None = None,
    **settings: Any,
) -> OpeningPool:
    """Create an `AsyncPool`: ``pool = await create_async_pool(...)``, or
    ``async with create_async_pool(...) as pool:`` to close it on exit as well.

    Args:
        url: as `create_pool`. ``postgresql://`` uses psycopg's AsyncConnection,
            ``postgresql+asyncpg://`` asyncpg, ``mysql://``/``mariadb://`` aiomysql,
            ``sqlite://`` aiosqlite. A URL naming a blocking driver (``+psycopg2``,
            ``+pymysql``, ``+mysqldb``, ``+sqlite3``, ``oracle://``) runs that driver's
            connects, resets and closes on a bounded thread pool.
        creator: a coroutine function returning a new connection (called with ``user=``
            and ``password=`` for per-user acquires), or an `AsyncConnector`.
        blocking_creator: instead, a plain function returning a blocking DB-API
            connection; it runs on the bounded thread pool.
        connect_args, open_timeout, **settings: as `create_pool`.
    Raises:
        ConfigError, DriverNotInstalled: at once, before anything is awaited.
    """
    if url is not None and (callable(url) or isinstance(url, AsyncConnector)):
        if creator is not None:
            raise ConfigError("pass either a url or creator=, not both")
        url, creator = None, url
    given = [name for name, value in (("url", url), ("creator", creator)) if value is not None]
    if blocking_creator is not None:
        given.append("blocking_creator")
    if len(given) != 1:
        raise ConfigError(
            "pass exactly one of a url (e.g. 'postgresql+asyncpg://app@db/app'), creator= "
            f"(a coroutine function) or blocking_creator= (got {', '.join(given) or 'none'})"
        )
    if connect_args and url is None:
        raise ConfigError("connect_args applies to a url; a creator opens its own connections")
    if url is not None:
        parsed, settings, open_timeout = _split_query(url, settings, open_timeout)
        config = _config(settings)
        driver = async_driver_for_url(parsed.dialect, parsed.driver)
        connector: AsyncConnector
        if driver is not None:
            connector = AsyncURLConnector(parsed, driver, dict(connect_args or {}))
        else:
            blocking = connector_for(parsed, dict(connect_args or {}))
            connector = ExecutorConnector(blocking, _io_threads(config))
    elif blocking_creator is not None:
        config = _config(settings)
        connector = ExecutorConnector(CreatorConnector(blocking_creator), _io_threads(config))
    else:
        config = _config(settings)
        assert creator is not None
        if isinstance(creator, AsyncConnector):
            connector = creator
        else:
            connector = AsyncCreatorConnector(creator)
    return OpeningPool(AsyncPool(connector, config), open_timeout)


class OpeningPool:
    """An `AsyncPool` being opened: await it for the pool, or use it with ``async with``."""

    __slots__ = ("_open_timeout", "_pool")

    def __init__(self, pool: AsyncPool, open_timeout: float | None) -> None:
        self._pool = pool
        self._open_timeout = open_timeout

    def __await__(self) -> Generator[Any, None, AsyncPool]:
        return self._open().__await__()

    async def _open(self) -> AsyncPool:
        pool = self._pool
        if not pool.config.lazy:
            try:
                await pool.open(wait=True, timeout=self._open_timeout)
            except BaseException:
                await pool.close(force=True)
                raise
        return pool

    async def __aenter__(self) -> AsyncPool:
        return await self._open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._pool.close(force=True)


def connector_for(url: str | URL, connect_args: dict[str, Any] | None = None) -> URLConnector:
    """The connector for a URL (no pool settings in its query): the driver it names,
    its arguments checked. Raises `ConfigError` or `DriverNotInstalled`."""
    parsed = parse_url(url)
    driver = driver_for_url(parsed.dialect, parsed.driver)
    return URLConnector(parsed, driver, connect_args or {})


def _seconds(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds (got {text!r})") from None


def _split_query(
    url: Any, settings: dict[str, Any], open_timeout: float | None
) -> tuple[URL, dict[str, Any], float | None]:
    """The URL without its pool settings, the settings (keywords win over the query), and
    open_timeout."""
    if not isinstance(url, (str, URL)):
        raise ConfigError(
            f"url must be a database URL string such as 'sqlite:///app.db' (or pass "
            f"creator=, a callable returning a DB-API connection), not {type(url).__name__}"
        )
    parsed = parse_url(url)
    query_settings = {
        k: v
        for k, v in parsed.query.items()
        if k in PoolConfig.parameter_names() or k in _FACTORY_SETTINGS
    }
    from_url = PoolConfig.settings_from_text(
        {k: v for k, v in query_settings.items() if k not in _FACTORY_SETTINGS}
    )
    if open_timeout is None and "open_timeout" in query_settings:
        open_timeout = _seconds("open_timeout", query_settings["open_timeout"])
    return parsed.without_query(query_settings), {**from_url, **settings}, open_timeout


def split_settings(url: str | URL) -> tuple[URL, PoolConfig]:
    """A URL's pool settings, as `create_pool` reads them, apart from the URL that remains
    (``sessionpool check`` advises on them without creating a pool).

    Raises:
        ConfigError: the URL or a setting in its query is invalid.
    """
    parsed, settings, _ = _split_query(url, {}, None)
    return parsed, _config(settings)


def _config(settings: dict[str, Any]) -> PoolConfig:
    unknown = sorted(set(settings) - PoolConfig.parameter_names())
    if unknown:
        known = ", ".join(sorted(PoolConfig.parameter_names()))
        raise ConfigError(f"unknown pool setting(s) {', '.join(unknown)}; known: {known}")
    try:
        return PoolConfig(**settings)
    except TypeError as exc:  # e.g. a positional misuse the dataclass reports as TypeError
        raise ConfigError(str(exc)) from None


def _io_threads(config: PoolConfig) -> int:
    """Threads for a blocking driver under an AsyncPool: one per connection it may hold at
    once, plus two for closes, at most 32."""
    return min(32, (config.hard_cap or config.max_size) + 2)
