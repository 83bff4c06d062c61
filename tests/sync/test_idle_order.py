"""Idle order of the threaded Pool: LIFO (default) reuses the newest return, FIFO the oldest."""

from __future__ import annotations

import pytest

from sessionpool import Lease
from tests.sync.conftest import PoolFactory


def release_in_order(leases: list[Lease]) -> list[int]:
    """Release the leases first to last and return their connection ids in that order."""
    ids: list[int] = [lease.id for lease in leases]
    for lease in leases:
        lease.release()
    return ids


def test_lifo_is_the_default(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=3, max_size=3)
    assert pool.config.idle_order == "lifo"
    ids = release_in_order([pool.acquire() for _ in range(3)])
    lease = pool.acquire()
    assert lease.id == ids[-1], "the most recently released connection comes back first"
    lease.release()
    again = pool.acquire()
    assert again.id == ids[-1]
    again.release()


def test_fifo_rotates_through_every_connection(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=3, max_size=3, idle_order="fifo")
    ids = release_in_order([pool.acquire() for _ in range(3)])
    served = []
    for _ in range(6):
        lease = pool.acquire()
        served.append(lease.id)
        lease.release()
    assert served == ids + ids


@pytest.mark.parametrize(("order", "expected"), [("lifo", -1), ("fifo", 0)])
def test_idle_order_applies_to_tagged_connections(
    make_pool: PoolFactory, order: str, expected: int
) -> None:
    pool = make_pool(min_size=3, max_size=3, idle_order=order)
    leases = [pool.acquire() for _ in range(3)]
    ids = [lease.id for lease in leases]
    for lease in leases:
        lease.release(tag="a=1")
    lease = pool.acquire(tag="a=1")
    assert lease.id == ids[expected]
    lease.release()


@pytest.mark.parametrize(("order", "expected"), [("lifo", -1), ("fifo", 0)])
def test_idle_order_applies_to_per_user_connections(
    make_pool: PoolFactory, order: str, expected: int
) -> None:
    pool = make_pool(min_size=0, max_size=3, idle_order=order, homogeneous=False)
    leases = [pool.acquire(user="a", password="pa", timeout=2.0) for _ in range(3)]
    ids = [lease.id for lease in leases]
    for lease in leases:
        lease.release()
    lease = pool.acquire(user="a", password="pa")
    assert lease.id == ids[expected]
    lease.release()
