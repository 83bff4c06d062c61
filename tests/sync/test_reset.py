"""Reset on return and on_connect of the threaded Pool: rollback, commit, None, callables."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import sessionpool
from tests.fakes.fake_dbapi import FakeConnection, FakeDatabase, OperationalError
from tests.sync.conftest import PoolFactory, assert_consistent, eventually, start_waiter


def use(lease: sessionpool.Lease) -> None:
    lease.cursor().execute("insert into t values (1)")


def warm_up(pool: sessionpool.Pool) -> FakeConnection:
    """One borrow-and-use cycle so the single connection has been reset once."""
    lease = pool.acquire()
    driver: FakeConnection = lease.driver_connection
    use(lease)
    lease.release()
    return driver


def test_rollback_is_the_default_reset(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    driver = warm_up(pool)
    before = driver.rollbacks
    lease = pool.acquire()
    use(lease)
    assert driver.in_transaction
    lease.release()
    assert driver.rollbacks == before + 1
    assert not driver.in_transaction
    assert driver.commits == 0


def test_an_untouched_lease_skips_the_reset(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    driver = warm_up(pool)
    before = driver.rollbacks
    for _ in range(3):
        pool.acquire().release()
        with pool.acquire():
            pass
    assert driver.rollbacks == before


def test_attribute_access_counts_as_use(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    driver = warm_up(pool)
    before = driver.rollbacks
    lease = pool.acquire()
    _ = lease.in_transaction
    lease.release()
    assert driver.rollbacks == before + 1


def test_commit_reset(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1, reset_on_return="commit")
    driver = warm_up(pool)
    before = driver.commits
    lease = pool.acquire()
    use(lease)
    lease.release()
    assert driver.commits == before + 1
    assert driver.rollbacks == 0
    assert not driver.in_transaction


def test_no_reset(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1, reset_on_return=None)
    lease = pool.acquire()
    driver = lease.driver_connection
    use(lease)
    lease.release()
    assert (driver.rollbacks, driver.commits) == (0, 0)
    assert driver.in_transaction


def test_callable_reset_gets_the_driver_connection(make_pool: PoolFactory) -> None:
    seen: list[Any] = []
    pool = make_pool(min_size=1, max_size=1, reset_on_return=seen.append)
    lease = pool.acquire()
    driver = lease.driver_connection
    use(lease)
    lease.release()
    assert seen and all(conn is driver for conn in seen)
    count = len(seen)
    lease = pool.acquire()
    use(lease)
    lease.release()
    assert len(seen) == count + 1
    assert (driver.rollbacks, driver.commits) == (0, 0)


@pytest.mark.parametrize("reset", ["rollback", "commit", "callable"])
def test_failing_reset_drops_the_connection(
    make_pool: PoolFactory, db: FakeDatabase, reset: str
) -> None:
    def broken(conn: Any) -> None:
        raise OperationalError("reset failed")

    setting: Any = broken if reset == "callable" else reset
    pool = make_pool(min_size=0, max_size=2, reset_on_return=setting)
    lease = pool.acquire(timeout=2.0)
    driver = lease.driver_connection
    use(lease)
    if reset == "rollback":
        db.fail_rollback(1)
    elif reset == "commit":
        db.fail_commit(1)
    lease.release()
    assert lease.is_released
    # Forgotten by the pool at once; closed on the maintenance thread a moment later.
    assert (pool.opened, pool.busy, pool.idle) == (0, 0, 0)
    eventually(lambda: driver.closed, "the connection whose reset failed closed")
    assert_consistent(pool, db)
    again = pool.acquire(timeout=2.0)
    assert again.driver_connection is not driver
    again.release()
    if reset != "callable":
        assert (pool.opened, pool.idle) == (1, 1), "a reset that succeeds keeps the connection"


def test_failing_reset_with_a_waiter_serves_it_a_new_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1)
    lease = pool.acquire()
    use(lease)
    waiter = start_waiter(pool, timeout=2.0)
    db.fail_rollback(1)
    lease.release()
    served = waiter.result()
    assert served.id == 2
    eventually(lambda: db.connections[0].closed, "the connection whose reset failed closed")
    served.release()
    assert_consistent(pool, db)


def test_on_connect_runs_once_per_new_connection(make_pool: PoolFactory, db: FakeDatabase) -> None:
    seen: list[Any] = []
    guard = threading.Lock()

    def on_connect(conn: Any) -> None:
        with guard:
            seen.append(conn)

    pool = make_pool(min_size=2, max_size=4, on_connect=on_connect)
    assert seen == db.connections[:2]
    leases = [pool.acquire(timeout=2.0) for _ in range(4)]
    for lease in leases:
        lease.release()
    for _ in range(5):
        pool.acquire().release()
    assert len(db.connections) == 4
    assert sorted(conn.id for conn in seen) == [1, 2, 3, 4]
    assert all(isinstance(conn, FakeConnection) for conn in seen)


def test_failing_on_connect_is_a_failed_open_for_the_waiter(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    calls = []

    def on_connect(conn: Any) -> None:
        calls.append(conn)
        if len(calls) == 1:
            raise ValueError("cannot set session state")

    pool = make_pool(min_size=0, max_size=2, on_connect=on_connect)
    with pytest.raises(ValueError, match="session state"):
        pool.acquire(timeout=2.0)
    assert db.connections[0].closed
    stats = pool.stats()
    assert stats.connect_errors == 1
    assert stats.opened == 0 and stats.connections_opened == 0
    lease = pool.acquire(timeout=2.0)
    assert lease.id == 2
    lease.release()
    assert_consistent(pool, db)


def test_failing_on_connect_fails_create_pool(db: FakeDatabase) -> None:
    def on_connect(conn: Any) -> None:
        raise ValueError("cannot set session state")

    with pytest.raises(ValueError, match="session state"):
        sessionpool.create_pool(db.connect, min_size=2, max_size=2, on_connect=on_connect)
    assert db.open_connections == 0


def test_failed_connect_reaches_the_waiter(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=0, max_size=2)
    db.fail_next_connects(1, OperationalError("no route to host"))
    with pytest.raises(OperationalError, match="no route"):
        pool.acquire(timeout=2.0)
    assert pool.stats().connect_errors == 1
    lease = pool.acquire(timeout=2.0)
    lease.release()
    assert_consistent(pool, db)


# -- full reset and purity (generic driver: a full reset reopens) ----------------------------


def test_full_reset_reopens_a_used_connection_for_a_generic_driver(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    setups: list[Any] = []
    pool = make_pool(min_size=1, max_size=1, reset_on_return="full", on_connect=setups.append)
    first = warm_up(pool)
    # Its replacement takes its slot at once; the old one is closed off the borrower's path.
    eventually(lambda: first.closed, "the used connection closed")
    lease = pool.acquire()
    second = lease.driver_connection
    assert second is not first and not second.closed
    assert setups == [first, second], "on_connect runs again on the replacement"
    lease.release()
    assert (pool.opened, pool.idle, pool.busy) == (1, 1, 0)
    assert_consistent(pool, db)


def test_full_reset_skips_an_untouched_lease(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=1, reset_on_return="full")
    first = warm_up(pool)
    connects = db.connects
    for _ in range(3):
        with pool.acquire():
            pass
    assert db.connects == connects
    eventually(lambda: first.closed, "the used connection closed")


def test_purity_new_gets_a_session_no_borrower_used(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1)
    lease = pool.acquire(purity="new")  # never used: no reset needed
    first = lease._slot.connection  # (read without touching the lease, which counts as use)
    lease.release()
    connects = db.connects
    with pool.acquire(purity="new") as again:
        assert again._slot.connection is first, "untouched by its borrower: still fresh"
    assert db.connects == connects
    used = warm_up(pool)
    with pool.acquire(purity="self") as reused:
        assert reused.driver_connection is used, "purity self takes the reused session"
    with pool.acquire(purity="new") as fresh:
        assert fresh.driver_connection is not used
        eventually(lambda: used.closed, "the used session dropped for purity='new' closed")
    assert_consistent(pool, db)


def test_purity_new_with_a_generic_driver_waits_for_a_new_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1)
    used = warm_up(pool)
    db.connect_delay = 0.2  # the new connection is opened on an opener thread, not inline
    with pytest.raises(sessionpool.PoolTimeout):
        pool.acquire(purity="new", timeout=0.05)
    eventually(lambda: used.closed, "the used connection was dropped: only a new one is fresh")
    with pool.acquire(purity="new", timeout=2.0) as lease:
        assert lease.driver_connection is not used
    db.connect_delay = 0.0
    warm_up(pool)
    refused = OperationalError("refused")
    db.fail_all_connects(refused)
    # No new connection can be opened, and the pool's user has opened before, so this is an
    # outage (rule 6): the acquire waits out its timeout and gets a PoolTimeout chained to
    # the connect error; it never falls back to the used session.
    with pytest.raises(sessionpool.PoolTimeout) as timed_out:
        pool.acquire(purity="new", timeout=0.5)
    assert timed_out.value.__cause__ is refused, repr(timed_out.value.__cause__)
    db.accept_connects()
    with pool.acquire(purity="new", timeout=2.0) as lease:
        assert not lease.driver_connection.closed
    assert (pool.opened, pool.busy) == (1, 0)
    assert_consistent(pool, db)


def test_purity_is_checked(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=0)
    with pytest.raises(sessionpool.UsageError, match="purity"):
        pool.acquire(purity="NEW-ish")
    assert (pool.opened, pool.busy) == (0, 0)


def test_leaving_with_a_disconnect_error_drops_the_connection(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pytest.raises(sessionpool.ConnectionDead), pool.acquire() as lease:
        dead: FakeConnection = lease.driver_connection
        raise sessionpool.ConnectionDead("the server went away")
    # Let go at once (its replacement for min_size may already be open, so count closes).
    assert pool.busy == 0 and pool.stats().connections_closed == 1, pool.stats()
    eventually(lambda: dead.closed, "the dead connection closed")
    with pool.acquire() as lease:
        assert lease.driver_connection is not dead


def test_leaving_with_an_ordinary_error_returns_the_connection(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pytest.raises(ZeroDivisionError), pool.acquire() as lease:
        kept: FakeConnection = lease.driver_connection
        use(lease)
        raise ZeroDivisionError
    assert not kept.closed
    assert (pool.opened, pool.idle) == (1, 1)
    assert not kept.in_transaction, "returned and rolled back"


@pytest.mark.parametrize("name", ["reset_timeout", "ping_timeout"])
@pytest.mark.parametrize("value", [0, -1, None, "5"])
def test_time_limits_must_be_positive_seconds(
    make_pool: PoolFactory, name: str, value: Any
) -> None:
    with pytest.raises(sessionpool.ConfigError, match=name):
        make_pool(**{name: value})


def test_ping_reports_a_dead_connection(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pool.acquire() as lease:
        assert pool.ping(lease, timeout=1.0) is True
    # sqlite3 knows locally when a connection is closed; the fake driver is generic, so
    # its liveness check is what DB-API allows: nothing without a driver adapter.
    sqlite_pool = sessionpool.create_pool("sqlite://", min_size=1, max_size=1)
    try:
        lease = sqlite_pool.acquire()
        assert sqlite_pool.ping(lease) is True
        lease.driver_connection.close()
        assert sqlite_pool.ping(lease) is False
        lease.drop()
        with pytest.raises(sessionpool.LeaseReleased):
            sqlite_pool.ping(lease)
        with sqlite_pool.acquire() as fresh:
            assert sqlite_pool.ping(fresh) is True
    finally:
        sqlite_pool.close()
