"""create_pool: builds a Pool from a creator callable and keyword settings, and opens it.

Only assembly lives here; pool behaviour is in `_sync` and `_core`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._sync.pool import Pool
from .config import PoolConfig
from .drivers.base import Connector, CreatorConnector
from .errors import ConfigError

__all__ = ["create_pool"]


def create_pool(
    creator: Callable[..., Any] | Connector | None = None,
    *,
    open_timeout: float | None = None,
    **settings: Any,
) -> Pool:
    """Create a threaded pool and, unless ``lazy=True``, open ``min_size`` connections.

    Args:
        creator: a callable returning a new DB-API connection (called with ``user=`` and
            ``password=`` for per-user acquires of a heterogeneous pool), or a `Connector`.
        open_timeout: most seconds to wait for the first ``min_size`` connections.
        **settings: any `PoolConfig` field (``min_size``, ``max_size``, ``wait_timeout``...).
    Raises:
        ConfigError: a setting is invalid or unknown (the message names it).
        Exception: the driver's error when the first connections cannot be opened.
    """
    unknown = sorted(set(settings) - PoolConfig.parameter_names())
    if unknown:
        known = ", ".join(sorted(PoolConfig.parameter_names()))
        raise ConfigError(f"unknown pool setting(s) {', '.join(unknown)}; known: {known}")
    if creator is None:
        raise ConfigError("creator is required: a callable returning a DB-API connection")
    connector = creator if isinstance(creator, Connector) else CreatorConnector(creator)
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
