"""Pool and AsyncPool, Lease and AsyncLease: the same public surface, sync vs async as expected.

The two shells are kept parallel by hand (see _async/pool.py); this is what holds them equal.
Documented differences:

* Context-manager protocol: Pool/Lease have ``__enter__``/``__exit__``, AsyncPool/AsyncLease
  ``__aenter__``/``__aexit__`` (dunders, outside the compared names anyway).
* ``AsyncPool.acquire`` is a plain method, like ``Pool.acquire``, but returns an object that
  is both awaitable (giving the lease) and an async context manager, so that both
  ``await pool.acquire()`` and ``async with pool.acquire()`` work.
* Parameter annotations name ``Lease`` vs ``AsyncLease``: only names, kinds and defaults are
  compared.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from sessionpool import AsyncLease, AsyncPool, Lease, Pool

#: Pool methods that do I/O: coroutine functions on AsyncPool.
POOL_IO = {
    "close",
    "open",
    "release",
    "drop",
    "ping",
    "drain",
    "close_idle",
    "reconfigure",
    "resize",
    "wait",
}
#: Pool methods compared parameter by parameter.
POOL_SIGNATURES = [
    "acquire",
    "release",
    "drop",
    "ping",
    "close",
    "open",
    "drain",
    "is_disconnect",
    "resize",
    "reconfigure",
    "wait",
    "close_idle",
    "session",
    "scoped_session",
]
#: Lease members compared (methods and properties).
LEASE_MEMBERS = {"release", "close", "drop", "driver_connection", "is_released", "pool", "tag"}
LEASE_IO = {"release", "close", "drop"}


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def kind_of(cls: type, name: str) -> str:
    """'property', 'attribute' (a slot or plain class attribute) or 'method'."""
    member = inspect.getattr_static(cls, name)
    if isinstance(member, property):
        return "property"
    if inspect.isfunction(member):
        return "method"
    if isinstance(member, (staticmethod, classmethod)):
        return "method"
    return "attribute"


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of each parameter: what a caller sees, annotations aside."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


# -- pools -----------------------------------------------------------------------------------


def test_pools_expose_the_same_public_names() -> None:
    assert public_names(Pool) == public_names(AsyncPool)


def test_pool_public_names_are_what_is_documented() -> None:
    expected = {
        "acquire",
        "release",
        "drop",
        "ping",
        "close",
        "open",
        "is_disconnect",
        "busy",
        "idle",
        "opened",
        "opening",
        "waiting",
        "closed",
        "config",
        "min_size",
        "max_size",
        "max_overflow",
        "increment",
        "stats",
        "status",
        "size",
        "checkedin",
        "checkedout",
        "overflow",
    }
    assert expected <= public_names(AsyncPool), expected - public_names(AsyncPool)


@pytest.mark.parametrize("name", sorted(public_names(Pool)))
def test_pool_members_are_of_the_same_kind(name: str) -> None:
    assert kind_of(Pool, name) == kind_of(AsyncPool, name)


@pytest.mark.parametrize("name", POOL_SIGNATURES)
def test_pool_methods_take_the_same_parameters(name: str) -> None:
    sync, asynchronous = getattr(Pool, name), getattr(AsyncPool, name)
    assert parameters(sync) == parameters(asynchronous)


@pytest.mark.parametrize("name", sorted(public_names(Pool)))
def test_pool_methods_are_sync_or_async_as_expected(name: str) -> None:
    if kind_of(Pool, name) != "method":
        return
    sync, asynchronous = getattr(Pool, name), getattr(AsyncPool, name)
    assert not inspect.iscoroutinefunction(sync), f"Pool.{name} must be a plain function"
    if name in POOL_IO:
        assert inspect.iscoroutinefunction(asynchronous), f"AsyncPool.{name} must be async"
    else:
        # acquire included: a plain method returning an awaitable async context manager.
        assert not inspect.iscoroutinefunction(asynchronous), f"AsyncPool.{name} must be sync"


def test_async_acquire_returns_an_awaitable_async_context_manager() -> None:
    returned = inspect.signature(AsyncPool.acquire).return_annotation
    acquire_type = AsyncPool.acquire.__globals__[returned.strip("'")]
    assert hasattr(acquire_type, "__await__")
    assert inspect.iscoroutinefunction(acquire_type.__aenter__)
    assert inspect.iscoroutinefunction(acquire_type.__aexit__)


def test_pools_context_manager_protocols() -> None:
    assert callable(Pool.__enter__) and callable(Pool.__exit__)
    assert inspect.iscoroutinefunction(AsyncPool.__aenter__)
    assert inspect.iscoroutinefunction(AsyncPool.__aexit__)
    assert not hasattr(AsyncPool, "__enter__"), "a sync `with` on an AsyncPool must fail"
    assert not hasattr(Pool, "__aenter__")


# -- leases ----------------------------------------------------------------------------------


def test_leases_expose_the_same_public_names() -> None:
    assert public_names(Lease) == public_names(AsyncLease)
    assert public_names(AsyncLease) == LEASE_MEMBERS


@pytest.mark.parametrize("name", sorted(LEASE_MEMBERS))
def test_lease_members_are_of_the_same_kind(name: str) -> None:
    assert kind_of(Lease, name) == kind_of(AsyncLease, name)


@pytest.mark.parametrize("name", sorted(LEASE_MEMBERS))
def test_lease_methods_match_and_are_sync_or_async_as_expected(name: str) -> None:
    if kind_of(Lease, name) != "method":
        assert name in {"driver_connection", "is_released", "pool", "tag"}
        return
    sync, asynchronous = getattr(Lease, name), getattr(AsyncLease, name)
    assert parameters(sync) == parameters(asynchronous)
    assert not inspect.iscoroutinefunction(sync)
    assert name in LEASE_IO
    assert inspect.iscoroutinefunction(asynchronous), f"AsyncLease.{name} must be async"


def test_lease_close_is_release() -> None:
    assert Lease.close is Lease.release
    assert AsyncLease.close is AsyncLease.release


def test_leases_context_manager_protocols() -> None:
    assert callable(Lease.__enter__) and callable(Lease.__exit__)
    assert inspect.iscoroutinefunction(AsyncLease.__aenter__)
    assert inspect.iscoroutinefunction(AsyncLease.__aexit__)
    assert not hasattr(AsyncLease, "__enter__")
    assert not hasattr(Lease, "__aenter__")
