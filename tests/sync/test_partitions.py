"""Partitions (acquire(partition=...)): sessions lent only within their partition, and
max_per_partition capping each (cx_Oracle's connection classes and shard keys map here)."""

from __future__ import annotations

import pytest

import sessionpool
from tests.fakes.fake_dbapi import FakeDatabase
from tests.sync.conftest import PoolFactory, assert_consistent


def test_a_session_is_lent_only_within_its_partition(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=4)
    with pool.acquire(partition="shard-1") as conn:
        first = conn.driver_connection
    with pool.acquire(partition="shard-2") as conn:
        assert conn.driver_connection is not first, "lent across partitions"
    with pool.acquire() as conn:
        assert conn.driver_connection is not first, "a partition's session lent to no partition"
    with pool.acquire(partition="shard-1") as conn:
        assert conn.driver_connection is first, "the partition's own idle session is reused"
    assert pool.opened == 3
    assert_consistent(pool, db)


def test_max_per_partition_caps_each_partition(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=0, max_size=6, max_per_partition=2)
    held = [pool.acquire(partition=("orders", 7)) for _ in range(2)]
    with pytest.raises(sessionpool.PoolTimeout):
        pool.acquire(partition=("orders", 7), timeout=0.1)
    with pytest.raises(sessionpool.PoolExhausted):
        pool.acquire(partition=("orders", 7), when_exhausted="fail")
    # Other partitions, and the pool's own unpartitioned sessions, still open.
    other = pool.acquire(partition=("orders", 8), timeout=1.0)
    plain = pool.acquire(timeout=1.0)
    assert pool.opened == 4
    held[0].release()
    again = pool.acquire(partition=("orders", 7), timeout=1.0)  # the released one
    for lease in (held[1], other, plain, again):
        lease.release()
    assert_consistent(pool, db)


def test_a_partition_at_its_cap_evicts_its_own_idle_session_of_another_tag(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=4, max_per_partition=1)
    with pool.acquire(partition="p") as conn:
        conn.tag = "a=1"
    # The partition's only session carries another tag: it is replaced, not waited for.
    with pool.acquire(partition="p", tag="b=2", timeout=1.0) as conn:
        assert conn.tag is None
    assert pool.opened == 1
    assert_consistent(pool, db)


def test_partition_must_be_hashable(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=0, max_size=1)
    with pytest.raises(sessionpool.UsageError, match="partition must be hashable"):
        pool.acquire(partition=["shard", 1])


def test_max_per_partition_is_validated() -> None:
    with pytest.raises(sessionpool.ConfigError, match="max_per_partition"):
        sessionpool.PoolConfig(max_per_partition=0)
