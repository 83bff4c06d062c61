"""Life cycle of the threaded Pool and its leases: start, release, drop, close, misuse."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest

import sessionpool
from sessionpool import Lease
from tests.fakes.fake_dbapi import FakeDatabase, OperationalError
from tests.sync.conftest import (
    PoolFactory,
    assert_consistent,
    eventually,
    start,
    start_waiter,
    wait_until,
)

# -- start -------------------------------------------------------------------------------


def test_lazy_pool_opens_nothing_until_first_acquire(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=2, max_size=4, lazy=True)
    assert db.connects == 0
    assert (pool.opened, pool.idle, pool.opening) == (0, 0, 0)
    lease = pool.acquire(timeout=2.0)
    assert db.connects >= 1
    eventually(lambda: pool.opened == 2, "min_size kept once started")
    lease.release()
    assert_consistent(pool, db)


def test_create_pool_raises_the_connect_error_and_leaves_nothing_open(db: FakeDatabase) -> None:
    db.fail_next_connects(1, OperationalError("server is down"))
    with pytest.raises(OperationalError, match="server is down"):
        sessionpool.create_pool(db.connect, min_size=3, max_size=3)
    # A retry 50 ms after the failure may have started before the pool was closed; what it
    # opens is closed as soon as it arrives.
    assert db.connects >= 3
    deadline = time.monotonic() + 2.0
    while db.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert db.open_connections == 0


def test_create_pool_raises_when_every_connect_fails(db: FakeDatabase) -> None:
    db.fail_all_connects()
    with pytest.raises(OperationalError):
        sessionpool.create_pool(db.connect, min_size=2, max_size=2)
    assert db.open_connections == 0


def test_open_timeout_bounds_creation_and_leaves_nothing_open(db: FakeDatabase) -> None:
    db.hang_connects()
    try:
        started = time.monotonic()
        with pytest.raises(sessionpool.PoolTimeout):
            sessionpool.create_pool(db.connect, min_size=2, max_size=2, open_timeout=0.2)
        elapsed = time.monotonic() - started
        assert 0.2 <= elapsed < 0.7, elapsed
        assert db.wait_for_hanging(2)
    finally:
        db.release_hangs()
    eventually(lambda: db.hanging == 0 and len(db.connections) == 2, "hung connects finished")
    # create_pool raised, so the caller holds no pool to close: the connections that arrive
    # after the timeout must not stay open behind its back.
    eventually(lambda: db.open_connections == 0, "late connections closed", timeout=1.0)


# -- release and the context manager -----------------------------------------------------


def test_release_returns_the_connection(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=2)
    lease = pool.acquire()
    assert (pool.busy, pool.idle) == (1, 0)
    assert not lease.is_released
    pool.release(lease)
    assert lease.is_released
    assert (pool.busy, pool.idle) == (0, 1)
    assert_consistent(pool, db)


def test_with_block_releases_on_exit(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=2)
    with pool.acquire() as conn:
        assert isinstance(conn, Lease)
        assert pool.busy == 1
        driver = conn.driver_connection
    assert conn.is_released
    assert (pool.busy, pool.idle) == (0, 1)
    assert not driver.closed


def test_with_block_releases_on_exception(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=2)
    with pytest.raises(ZeroDivisionError), pool.acquire() as conn:
        conn.cursor().execute("select 1")
        _ = 1 / 0
    assert conn.is_released
    assert (pool.busy, pool.idle) == (0, 1)


def test_with_block_after_explicit_release_is_fine(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=2)
    with pool.acquire() as conn:
        conn.release()
    assert (pool.busy, pool.idle) == (0, 1)


def test_close_returns_the_connection_without_closing_it(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=2)
    lease = pool.acquire()
    driver = lease.driver_connection
    lease.close()
    assert lease.is_released
    assert not driver.closed
    assert (pool.busy, pool.idle, pool.opened) == (0, 1, 1)
    again = pool.acquire()
    assert again.driver_connection is driver
    again.release()


# -- drop --------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["pool.drop", "lease.drop"])
def test_drop_closes_and_forgets_the_connection(
    make_pool: PoolFactory, db: FakeDatabase, how: str
) -> None:
    pool = make_pool(min_size=0, max_size=2)
    lease = pool.acquire(timeout=2.0)
    driver = lease.driver_connection
    assert pool.opened == 1
    if how == "pool.drop":
        pool.drop(lease)
    else:
        lease.drop()
    # The pool forgets it at once; the driver-level close runs on the maintenance thread.
    assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
    eventually(lambda: driver.closed, "the dropped connection closed")
    assert driver.close_calls == 1, driver.close_calls
    assert lease.is_released
    with pytest.raises(sessionpool.LeaseReleased):
        lease.cursor()
    with pytest.raises(sessionpool.LeaseReleased):
        pool.drop(lease)
    with pytest.raises(sessionpool.LeaseReleased):
        lease.release()
    assert pool.stats().connections_closed == 1
    assert_consistent(pool, db)


def test_drop_below_min_size_is_replaced(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=2, max_size=3)
    lease = pool.acquire()
    lease.drop()
    eventually(lambda: pool.opened == 2 and pool.opening == 0, "min_size restored")
    assert db.connects == 3
    assert_consistent(pool, db)


def test_drop_serves_a_waiter_with_a_new_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    waiter = start_waiter(pool, timeout=2.0)
    held.drop()
    served = waiter.result()
    assert served.id == 2
    served.release()
    assert_consistent(pool, db)


def test_drop_with_a_raising_close_keeps_the_pool_consistent(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=0, max_size=2)
    lease = pool.acquire(timeout=2.0)
    db.close_raises = True
    lease.drop()
    assert (pool.opened, pool.busy) == (0, 0)
    eventually(lambda: db.connections[0].closed, "the dropped connection closed")
    # The close raised on the maintenance thread: that thread must still be there for the
    # next close, and the pool still usable.
    db.close_raises = False
    again = pool.acquire(timeout=2.0)
    assert again.driver_connection is db.connections[1]
    again.drop()
    eventually(lambda: db.connections[1].closed, "a later drop still closed")
    assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
    assert_consistent(pool, db)


# -- close -------------------------------------------------------------------------------


def test_close_refuses_while_leases_are_out(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=2, max_size=2)
    lease = pool.acquire()
    with pytest.raises(sessionpool.PoolInUse) as caught:
        pool.close()
    assert "1" in str(caught.value)
    assert not pool.closed
    assert db.open_connections == 2
    lease.cursor().execute("select 1")  # still usable
    lease.release()
    pool.close()
    assert pool.closed
    assert db.open_connections == 0
    assert pool.opened == 0


def test_close_force_closes_everything(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=3, max_size=3)
    lease = pool.acquire()
    pool.close(force=True)
    assert pool.closed
    assert db.open_connections == 0
    assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
    # Giving it back afterwards neither fails with a foreign error nor revives it.
    with contextlib.suppress(sessionpool.Error):
        lease.release()
    assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
    assert db.open_connections == 0


@pytest.mark.parametrize(
    "use", ["method call", "attribute read", "attribute write", "driver_connection"]
)
def test_leases_of_a_force_closed_pool_are_unusable(make_pool: PoolFactory, use: str) -> None:
    pool = make_pool(min_size=1, max_size=1)
    lease = pool.acquire()
    pool.close(force=True)
    with pytest.raises(sessionpool.PoolClosed):
        USES[use](lease)


def test_close_fails_waiters_with_pool_closed(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    waiters = [start_waiter(pool, f"waiter-{i}", timeout=5.0) for i in range(3)]
    pool.close(force=True)
    for waiter in waiters:
        assert isinstance(waiter.exception(), sessionpool.PoolClosed)
    assert pool.waiting == 0
    del held


def test_acquire_after_close_raises_pool_closed(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=2, max_size=2)
    pool.close()
    for kwargs in ({}, {"tag": "a=1"}, {"timeout": 0.1}, {"when_exhausted": "force"}):
        with pytest.raises(sessionpool.PoolClosed):
            pool.acquire(**kwargs)


def test_close_twice_is_harmless(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    pool.close()
    pool.close()
    pool.close(force=True)
    assert pool.closed


def test_pool_as_context_manager_closes_it(db: FakeDatabase) -> None:
    with sessionpool.create_pool(db.connect, min_size=2, max_size=2) as pool:
        lease = pool.acquire()
        assert db.open_connections == 2
    assert pool.closed
    assert db.open_connections == 0
    del lease


def test_connection_opened_after_close_is_closed(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=0, max_size=2)
    db.hang_connects()
    try:
        waiter = start_waiter(pool, timeout=5.0)
        assert db.wait_for_hanging(1)
        pool.close(force=True)
        assert isinstance(waiter.exception(), sessionpool.PoolClosed)
    finally:
        db.release_hangs()
    eventually(lambda: len(db.connections) == 1, "the hung connect completed")
    eventually(lambda: db.open_connections == 0, "the late connection closed")
    assert pool.opened == 0


# -- misuse of leases --------------------------------------------------------------------

USES: dict[str, Callable[[Lease], object]] = {
    "method call": lambda lease: lease.cursor(),
    "commit": lambda lease: lease.commit(),
    "attribute read": lambda lease: lease.in_transaction,
    "attribute write": lambda lease: setattr(lease, "in_transaction", True),
    "driver_connection": lambda lease: lease.driver_connection,
}


@pytest.mark.parametrize("use", list(USES), ids=list(USES))
def test_released_lease_raises_on_any_use(make_pool: PoolFactory, use: str) -> None:
    pool = make_pool(min_size=1, max_size=1)
    lease = pool.acquire()
    driver = lease.driver_connection
    lease.release()
    with pytest.raises(sessionpool.LeaseReleased):
        USES[use](lease)
    assert not driver.in_transaction, "nothing reached the driver connection"
    assert driver.commits == 0


def test_released_lease_cannot_reach_a_connection_lent_to_someone_else(
    make_pool: PoolFactory,
) -> None:
    pool = make_pool(min_size=1, max_size=1)
    stale = pool.acquire()
    stale.release()
    current = pool.acquire()
    with pytest.raises(sessionpool.LeaseReleased):
        stale.cursor().execute("select 1")
    assert current.driver_connection.statements == []
    current.release()


@pytest.mark.parametrize("how", ["lease.release", "lease.close", "pool.release", "with"])
def test_double_release_raises(make_pool: PoolFactory, how: str) -> None:
    pool = make_pool(min_size=1, max_size=2)
    lease = pool.acquire()
    lease.release()
    with pytest.raises(sessionpool.LeaseReleased):
        if how == "lease.release":
            lease.release()
        elif how == "lease.close":
            lease.close()
        elif how == "pool.release":
            pool.release(lease)
        else:
            pool.release(lease, tag="a=1")
    assert (pool.busy, pool.idle, pool.opened) == (0, 1, 1)


def test_release_in_another_pool_raises_foreign_lease(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1, name="first")
    other = make_pool(min_size=1, max_size=1, name="second")
    lease = pool.acquire()
    with pytest.raises(sessionpool.ForeignLease) as caught:
        other.release(lease)
    assert "first" in str(caught.value) and "second" in str(caught.value)
    with pytest.raises(sessionpool.ForeignLease):
        other.drop(lease)
    assert (other.busy, other.idle) == (0, 1)
    assert not lease.is_released
    lease.cursor().execute("select 1")
    pool.release(lease)
    assert (pool.busy, pool.idle) == (0, 1)
    assert lease.pool is pool


def test_releasing_something_else_than_a_lease_is_a_usage_error(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    lease = pool.acquire()
    with pytest.raises(sessionpool.UsageError):
        pool.release(lease.driver_connection)
    with pytest.raises(sessionpool.UsageError):
        pool.drop(lease.driver_connection)
    assert not lease.driver_connection.closed
    assert pool.busy == 1
    lease.release()


def test_released_lease_repr(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    lease = pool.acquire()
    assert "FakeConnection" in repr(lease)
    lease.release()
    assert "released" in repr(lease)


def test_no_wait_after_all_waiters_left(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    waiter = start_waiter(pool, timeout=0.1)
    assert isinstance(waiter.exception(), sessionpool.PoolTimeout)
    assert wait_until(lambda: pool.waiting == 0)
    held.release()
    again = pool.acquire(when_exhausted="fail")
    again.release()


# -- close(timeout=...) and drain() --------------------------------------------------------


def test_close_with_timeout_waits_for_borrowed_connections(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=2, max_size=2)
    lease = pool.acquire()
    other = pool.acquire()
    waiter = start_waiter(pool, timeout=5.0)  # one more caller, queued behind the busy pair
    closer = start(lambda: pool.close(timeout=5.0), "closer")
    waiter.finish()
    assert isinstance(waiter.error, sessionpool.PoolClosed), "waiters are refused at once"
    with pytest.raises(sessionpool.PoolClosed):
        pool.acquire(timeout=0)
    lease.cursor().execute("select 1")  # borrowed connections stay usable meanwhile
    lease.release()
    assert closer.is_alive(), "still waiting for the second one"
    started = time.monotonic()
    other.release()
    closer.finish()
    assert closer.error is None
    assert time.monotonic() - started < 1.0
    assert db.open_connections == 0
    assert (pool.opened, pool.busy, pool.closed) == (0, 0, True)


def test_close_with_timeout_forces_what_is_still_out(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1)
    lease = pool.acquire()
    started = time.monotonic()
    pool.close(timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 1.0
    assert db.open_connections == 0
    with pytest.raises(sessionpool.PoolClosed):
        lease.cursor()
    lease.release()  # giving back a force-closed lease is harmless, as after close(force)
    assert (pool.opened, pool.busy) == (0, 0)


def test_close_with_timeout_and_nothing_borrowed_returns_at_once(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=2, max_size=2)
    started = time.monotonic()
    pool.close(timeout=5.0)
    assert time.monotonic() - started < 0.5
    assert db.open_connections == 0


def test_drain_replaces_every_connection(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=2, max_size=3)
    borrowed = pool.acquire()
    old_busy = borrowed.driver_connection
    old_idle = [slot.connection for slot in pool._core.slots() if slot.connection is not old_busy]
    pool.drain()
    # Counted closed at once (not the idle figure: the replacement for min_size may already
    # be idle), closed by the driver on the maintenance thread a moment later.
    assert pool.stats().connections_closed == len(old_idle) == 1, pool.stats()
    eventually(lambda: all(conn.closed for conn in old_idle), "the idle connection closed")
    assert not old_busy.closed, "a borrowed one is left to its borrower"
    # min_size counts the borrowed one until it comes back: one new connection for now.
    eventually(lambda: pool.idle == 1 and pool.opened == 2, "a replacement opened")
    borrowed.cursor().execute("select 1")
    borrowed.release()
    eventually(lambda: old_busy.closed, "closed when it came back")
    eventually(lambda: pool.idle == 2, "min_size opened afresh")
    leases = [pool.acquire() for _ in range(2)]
    assert not {lease.driver_connection for lease in leases} & {old_busy, *old_idle}
    for lease in leases:
        lease.release()
    assert_consistent(pool, db)
    pool.close()
    with pytest.raises(sessionpool.PoolClosed):
        pool.drain()


# -- lifetimes ------------------------------------------------------------------------------


def test_max_uses_retires_a_connection_when_it_comes_back(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1, max_uses=3)
    first = None
    for _ in range(3):
        with pool.acquire() as lease:
            first = first or lease._slot.connection
    eventually(lambda: first.closed, "retired on its third return")
    eventually(lambda: pool.idle == 1, "min_size opened afresh")
    with pool.acquire() as lease:
        assert lease._slot.connection is not first
    assert_consistent(pool, db)


def test_max_lifetime_never_closes_a_borrowed_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1, max_lifetime=0.2)
    lease = pool.acquire()
    conn = lease.driver_connection
    time.sleep(0.25)
    lease.cursor().execute("select 1")  # past its lifetime, still the borrower's
    assert not conn.closed
    lease.release()
    eventually(lambda: conn.closed, "retired when it came back")
    eventually(lambda: pool.idle == 1, "replaced")
    with pool.acquire() as again:
        assert again.driver_connection is not conn
    assert_consistent(pool, db)


def test_max_lifetime_is_jittered_so_connections_do_not_expire_together(
    make_pool: PoolFactory,
) -> None:
    pool = make_pool(min_size=20, max_size=20, max_lifetime=100.0)
    ages = [slot.expires_at - slot.created_at for slot in pool._core.slots()]
    assert all(97.5 <= age <= 100.0 for age in ages), ages
    assert len(set(ages)) == len(ages), "no two connections expire at the same moment"


@pytest.mark.parametrize(
    ("setting", "value"), [("max_lifetime", 0), ("max_lifetime", -1), ("max_uses", 0)]
)
def test_lifetime_settings_are_checked(make_pool: PoolFactory, setting: str, value: int) -> None:
    with pytest.raises(sessionpool.ConfigError, match=setting):
        make_pool(**{setting: value})


def test_effects_taken_are_never_the_cores_own_list(make_pool: PoolFactory) -> None:
    """A caller runs the effects it took after releasing the lock; had it got the core's own
    (empty) list, effects another thread adds meanwhile would run twice: a waiter woken twice
    ("release unlocked lock", seen once in the 32-thread stress test)."""
    pool = make_pool(min_size=0, max_size=1)
    with pool._lock:
        taken = pool._take_effects()
        assert taken == [] and taken is not pool._core.effects
