"""Passwords never show in the threaded Pool's reprs, errors or log records."""

from __future__ import annotations

import functools
import logging
from typing import Any

import pytest

import sessionpool
from tests.fakes.fake_dbapi import FakeDatabase, OperationalError
from tests.sync.conftest import CANARY, PoolFactory, eventually, start_waiter


def assert_clean(*texts: object) -> None:
    for text in texts:
        assert CANARY not in str(text), text
        assert CANARY not in repr(text), repr(text)


def test_pool_timeout_in_a_heterogeneous_pool_hides_the_password(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=0, max_size=1, homogeneous=False)
    held = pool.acquire(user="app", password=CANARY, timeout=2.0)
    with pytest.raises(sessionpool.PoolTimeout) as timed_out:
        pool.acquire(user="app", password=CANARY, timeout=0.05)
    with pytest.raises(sessionpool.PoolExhausted) as exhausted:
        pool.acquire(user="app", password=CANARY, when_exhausted="fail")
    waiter = start_waiter(pool, user="app", password=CANARY, timeout=5.0)
    assert_clean(timed_out.value, exhausted.value, held, pool, pool.stats(), pool.status())
    pool.close(force=True)
    closed = waiter.exception()
    assert isinstance(closed, sessionpool.PoolClosed)
    assert_clean(closed, held, pool)
    with pytest.raises(sessionpool.PoolClosed) as after:
        pool.acquire(user="app", password=CANARY)
    assert_clean(after.value)


def test_creator_carrying_the_password_is_not_shown(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    creator = functools.partial(db.connect, user="app", password=CANARY)
    pool = make_pool(creator, min_size=1, max_size=1)
    lease = pool.acquire()
    assert lease.driver_connection.kwargs["password"] == CANARY
    assert_clean(pool, lease, pool.config)


def test_password_passed_as_a_setting_is_not_echoed(db: FakeDatabase) -> None:
    with pytest.raises(sessionpool.ConfigError) as caught:
        sessionpool.create_pool(db.connect, password=CANARY)
    assert "password" in str(caught.value)
    assert_clean(caught.value)


def test_no_log_record_carries_the_password(
    make_pool: PoolFactory, db: FakeDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    def reset(conn: Any) -> None:
        raise RuntimeError("reset refused")

    pool = make_pool(min_size=0, max_size=2, homogeneous=False, reset_on_return=reset)
    lease = pool.acquire(user="app", password=CANARY, timeout=2.0)
    lease.cursor().execute("select 1")
    lease.release()  # failing reset: logged, connection dropped
    # Both ways a failed open reaches a borrower (rule 6), each logged:
    # a user that has never opened a connection gets the driver's error at once...
    db.fail_next_connects(1)
    with pytest.raises(OperationalError, match="could not connect") as first_failure:
        pool.acquire(user="newcomer", password=CANARY, timeout=2.0)
    # ...a user that has opened before waits out an outage, then gets a PoolTimeout whose
    # message quotes the driver's error and whose cause is that error.
    db.fail_all_connects()
    with pytest.raises(sessionpool.PoolTimeout, match="could not connect") as timed_out:
        pool.acquire(user="app", password=CANARY, timeout=0.3)
    assert isinstance(timed_out.value.__cause__, OperationalError)
    assert_clean(first_failure.value, timed_out.value, timed_out.value.__cause__)
    db.accept_connects()
    lease = pool.acquire(user="app", password=CANARY, timeout=2.0)
    db.close_raises = True
    lease.drop()  # failing close (on the maintenance thread): logged
    with pytest.raises(sessionpool.UsageError) as usage:
        pool.acquire(password=CANARY)
    assert_clean(usage.value)
    other = pool.acquire(user="other", password=CANARY, timeout=2.0)
    pool.close(force=True)
    eventually(lambda: db.open_connections == 0, "everything closed")
    del other
    messages = [record.getMessage() for record in caplog.records]
    for failure in (
        "reset on return failed",
        "opening a connection failed",
        "closing a connection",
    ):
        assert any(failure in message for message in messages), (failure, messages)
    for record in caplog.records:
        assert CANARY not in record.getMessage(), record.getMessage()
        assert CANARY not in repr(record.args)
        if record.exc_info:
            assert CANARY not in repr(record.exc_info[1])
    assert CANARY not in caplog.text
