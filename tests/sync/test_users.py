"""Per-user connections of the threaded Pool (homogeneous=False) and their limits."""

from __future__ import annotations

import time
from typing import Any

import pytest

import sessionpool
from tests.fakes.fake_dbapi import FakeDatabase, OperationalError
from tests.sync.conftest import (
    CANARY,
    PoolFactory,
    assert_consistent,
    eventually,
    start_waiter,
)


def test_homogeneous_pool_refuses_credentials(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=2)
    attempts: list[dict[str, Any]] = [
        {"user": "a", "password": CANARY},
        {"user": "a"},
        {"password": CANARY},
    ]
    for kwargs in attempts:
        with pytest.raises(sessionpool.UsageError) as caught:
            pool.acquire(**kwargs)
        assert "homogeneous" in str(caught.value)
        assert CANARY not in str(caught.value)
    assert pool.busy == 0
    assert db.connects == 1


def test_per_user_acquire_opens_for_that_user(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=4, homogeneous=False)
    assert db.connections[0].kwargs == {}, "the pool's own connections get no credentials"
    lease = pool.acquire(user="a", password="pa", timeout=2.0)
    assert lease.driver_connection.kwargs == {"user": "a", "password": "pa"}
    assert lease.user == "a"
    conn_id = lease.id
    lease.release()
    again = pool.acquire(user="a", password="pa")
    assert again.id == conn_id, "the idle connection of user a is reused"
    again.release()
    assert db.connects == 2


def test_a_user_never_gets_another_users_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=6, homogeneous=False)
    for user in ("a", "b", "a", "c", "b"):
        lease = pool.acquire(user=user, password=f"p{user}", timeout=2.0)
        assert lease.user == user
        assert lease.driver_connection.kwargs["password"] == f"p{user}"
        lease.release()
    assert sorted(conn.user for conn in db.connections) == ["a", "b", "c"]
    plain = pool.acquire(timeout=2.0)
    assert plain.user is None, "a plain acquire never gets a per-user connection"
    plain.release()
    assert db.connects == 4


def test_user_without_password(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=0, max_size=2, homogeneous=False)
    lease = pool.acquire(user="a", timeout=2.0)
    assert lease.user == "a"
    assert lease.driver_connection.kwargs.get("password") is None
    lease.release()


def test_password_without_user_is_refused(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=0, max_size=2, homogeneous=False)
    with pytest.raises(sessionpool.UsageError) as caught:
        pool.acquire(password=CANARY)
    assert CANARY not in str(caught.value)


def test_a_new_password_never_reuses_the_old_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=4, homogeneous=False)
    old = pool.acquire(user="a", password="old", timeout=2.0)
    old_id = old.id
    old.release()
    new = pool.acquire(user="a", password="new", timeout=2.0)
    assert new.id != old_id
    assert new.driver_connection.kwargs == {"user": "a", "password": "new"}
    new.release()
    assert db.connects == 2


def test_a_failed_connect_fails_at_once_only_while_that_user_never_connected(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    # Rule 6 goes by key: the pool's own user has opened (min_size=1), "app" has not. A
    # failure for "app" most likely means a mistake (a wrong password): its borrower gets the
    # driver's error at once.
    pool = make_pool(min_size=1, max_size=3, homogeneous=False)
    refused = OperationalError("password authentication failed")
    db.fail_next_connects(1, refused)
    started = time.monotonic()
    with pytest.raises(OperationalError) as caught:
        pool.acquire(user="app", password="pa", timeout=5.0)
    assert caught.value is refused
    # "At once" against a 5 s timeout; 1 s leaves room for a stalled thread on 2 noisy cores.
    assert time.monotonic() - started < 1.0
    # Once "app" has opened a connection, a failure for it is an outage: its borrower waits
    # out its timeout, and the PoolTimeout has the connect error as its cause.
    held = pool.acquire(user="app", password="pa", timeout=2.0)
    db.fail_all_connects(refused)
    started = time.monotonic()
    with pytest.raises(sessionpool.PoolTimeout) as timed_out:
        pool.acquire(user="app", password="pa", timeout=0.3)
    assert time.monotonic() - started >= 0.3
    assert timed_out.value.__cause__ is refused, repr(timed_out.value.__cause__)
    db.accept_connects()
    lease = pool.acquire(user="app", password="pa", timeout=2.0)  # within a 0.5 s retry
    assert lease.user == "app"
    lease.release()
    held.release()
    assert_consistent(pool, db)


def test_limits_apply_to_the_whole_pool(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=0, max_size=2, homogeneous=False)
    held = [
        pool.acquire(user="a", password="pa", timeout=2.0),
        pool.acquire(user="b", password="pb", timeout=2.0),
    ]
    with pytest.raises(sessionpool.PoolExhausted):
        pool.acquire(user="c", password="pc", when_exhausted="fail")
    with pytest.raises(sessionpool.PoolTimeout):
        pool.acquire(user="a", password="pa", timeout=0.1)
    with pytest.raises(sessionpool.PoolTimeout):
        pool.acquire(timeout=0.1)
    assert pool.opened == 2 and db.connects == 2
    for lease in held:
        lease.release()


@pytest.mark.parametrize("mode", ["wait", "fail"])
def test_at_the_cap_idle_connections_of_one_user_are_evicted_for_another(
    make_pool: PoolFactory, db: FakeDatabase, mode: str
) -> None:
    pool = make_pool(min_size=0, max_size=2, homogeneous=False, when_exhausted=mode)
    first = pool.acquire(user="a", password="pa", timeout=2.0)
    second = pool.acquire(user="a", password="pa", timeout=2.0)
    first.release()
    second.release()
    assert (pool.opened, pool.idle) == (2, 2)
    lease = pool.acquire(user="b", password="pb", timeout=2.0)
    assert lease.user == "b"
    assert pool.opened == 2
    # The older idle connection of "a" is evicted, and closed a moment later on
    # the maintenance thread; the other one of "a" and the new one of "b" stay open.
    eventually(lambda: db.connections[0].closed, "the evicted connection of 'a' closed")
    assert [conn.closed for conn in db.connections] == [True, False, False]
    lease.release()
    assert_consistent(pool, db)


def test_a_waiter_for_one_user_is_served_by_eviction_when_another_returns(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=1, homogeneous=False)
    held = pool.acquire(user="a", password="pa", timeout=2.0)
    waiter = start_waiter(pool, user="b", password="pb", timeout=2.0)
    held.release()
    served = waiter.result()
    assert served.user == "b"
    assert pool.opened == 1
    eventually(lambda: db.connections[0].closed, "the evicted connection of 'a' closed")
    served.release()
    assert_consistent(pool, db)
