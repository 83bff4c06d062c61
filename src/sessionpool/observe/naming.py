"""Pool names: OpenTelemetry's default (``server.address:server.port/db.namespace``), made
unique within the process. Built from the URL's host, port and database only, so a name never
carries credentials or query settings."""

from __future__ import annotations

import threading
import weakref
from typing import Any

__all__ = ["default_name", "unique_name"]

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "oracle": 1521}
_taken: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_lock = threading.Lock()


def default_name(url: Any) -> str | None:
    """``host:port/database`` for a URL (``sqlite:/path`` for SQLite); None without one."""
    if url is None:
        return None
    dialect = getattr(url, "dialect", None)
    if dialect == "sqlite":
        return f"sqlite:{url.database or ':memory:'}"
    default_port = _DEFAULT_PORTS.get(dialect or "", "")
    addresses = []
    for host, port in getattr(url, "hosts", None) or ((url.host, url.port),):
        host = host or "localhost"
        if ":" in host:
            host = f"[{host}]"  # an IPv6 address
        addresses.append(f"{host}:{port or default_port}")
    return f"{','.join(addresses)}/{url.database or ''}"


def unique_name(wanted: str, owner: object) -> str:
    """``wanted``, or ``wanted#2``, ``#3``... if a live pool already has it."""
    with _lock:
        name = wanted
        number = 1
        while name in _taken and _taken[name] is not owner:
            number += 1
            name = f"{wanted}#{number}"
        _taken[name] = owner
        return name
