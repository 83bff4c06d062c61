"""create_pool: builds a Pool from a URL or a creator and keyword settings, and opens it.

Only assembly lives here: splitting a URL's query into pool settings and driver arguments,
choosing the connector. Pool behaviour is in `_sync` and `_core`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ._sync.pool import Pool
from .config import PoolConfig
from .drivers.base import Connector, CreatorConnector, URLConnector
from .drivers.registry import driver_for_url
from .errors import ConfigError
from .url import URL, parse_url

__all__ = ["create_pool", "connector_for"]

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
        settings = {**from_url, **settings}
        connector: Connector = connector_for(
            parsed.without_query(query_settings), dict(connect_args or {})
        )
    else:
        if connect_args:
            raise ConfigError("connect_args applies to a url; a creator opens its own connections")
        assert creator is not None
        connector = creator if isinstance(creator, Connector) else CreatorConnector(creator)
    unknown = sorted(set(settings) - PoolConfig.parameter_names())
    if unknown:
        known = ", ".join(sorted(PoolConfig.parameter_names()))
        raise ConfigError(f"unknown pool setting(s) {', '.join(unknown)}; known: {known}")
    try:
        config = PoolConfig(**settings)
    except TypeError as exc:  # e.g. a positional misuse the dataclass reports as TypeError
        raise ConfigError(str(exc)) from None
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
