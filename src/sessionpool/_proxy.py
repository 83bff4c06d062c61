"""Proxy classes: per driver connection class, a lease subclass that forwards its members.

Shared by the threaded `Lease` and the asyncio `AsyncLease`; the forwarding members read only
the lease's ``_slot``. No pool logic here.
"""

from __future__ import annotations

from typing import Any, TypeVar

from ._core.records import CLOSED, Slot
from .errors import Error, LeaseReleased, PoolClosed

__all__ = ["proxy_class_for", "unusable"]

L = TypeVar("L")


def unusable(slot: Slot | None, name: str) -> Error:
    """The error for using a lease that was released, or whose pool was force-closed."""
    if slot is None:
        return LeaseReleased(
            f"this connection was returned to the pool; cannot use .{name} any more "
            "(acquire a new one)"
        )
    return PoolClosed(f"the pool was closed with force=True; cannot use .{name} any more")


def _forwarding_method(name: str) -> Any:
    def forward(lease: Any, *args: Any, **kwargs: Any) -> Any:
        slot = lease._slot
        if slot is None or slot.state == CLOSED:
            raise unusable(slot, name)
        slot.dirty = True
        return getattr(slot.connection, name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    forward.__doc__ = f"Forwarded to the driver connection's {name}()."
    return forward


def _forwarding_property(name: str) -> property:
    def get(lease: Any) -> Any:
        slot = lease._slot
        if slot is None or slot.state == CLOSED:
            raise unusable(slot, name)
        slot.dirty = True
        return getattr(slot.connection, name)

    def set_(lease: Any, value: Any) -> None:
        slot = lease._slot
        if slot is None or slot.state == CLOSED:
            raise unusable(slot, name)
        slot.dirty = True
        setattr(slot.connection, name, value)

    return property(get, set_, doc=f"Forwarded to the driver connection's {name!r}.")


_proxy_classes: dict[tuple[type, type], type] = {}


def proxy_class_for(connection: Any, base: type[L]) -> type[L]:
    """The subclass of ``base`` (a lease class) that proxies connections of this one's class.

    It forwards every public method and attribute the driver class declares (methods as
    methods; properties and C-level descriptors such as sqlite3's ``isolation_level`` or
    psycopg's ``autocommit`` as read-write properties) plus the instance attributes this
    first connection carries. Built once per driver class and cached; forwarding through
    generated members instead of ``__getattr__``/``__setattr__`` hooks keeps both the
    pool's hot path and every forwarded call fast. Any forwarded use marks the session
    dirty, so an untouched lease skips the reset on return.
    """
    connection_type = type(connection)
    cls = _proxy_classes.get((base, connection_type))
    if cls is not None:
        return cls
    names: dict[str, Any] = {}
    for klass in reversed(connection_type.__mro__):
        if klass is object:
            continue
        names.update(vars(klass))
    for name in getattr(connection, "__dict__", {}):
        names.setdefault(name, None)
    namespace: dict[str, Any] = {"__slots__": ()}
    for name, value in names.items():
        if name.startswith("_") or hasattr(base, name):
            continue
        if callable(value) and not isinstance(value, (staticmethod, classmethod, type)):
            namespace[name] = _forwarding_method(name)
        else:
            namespace[name] = _forwarding_property(name)
    cls = type(f"{base.__name__}[{connection_type.__name__}]", (base,), namespace)
    _proxy_classes[(base, connection_type)] = cls
    return cls
