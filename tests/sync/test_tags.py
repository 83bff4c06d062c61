"""Session tags of the threaded Pool: matching, matchanytag, retagging and session_callback."""

from __future__ import annotations

from typing import Any

import pytest

import sessionpool
from tests.fakes.fake_dbapi import FakeDatabase
from tests.sync.conftest import PoolFactory, assert_consistent, eventually


def tagged_connection(pool: sessionpool.Pool, tag: str) -> int:
    """Borrow a connection, give it back tagged, and return its id."""
    lease = pool.acquire()
    conn_id: int = lease.id
    lease.release(tag=tag)
    return conn_id


def test_acquire_by_tag_returns_the_tagged_connection(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=2, max_size=4)
    plain = pool.acquire()
    tagged_id = tagged_connection(pool, "k1=v1;k2=v2")
    lease = pool.acquire(tag="k1=v1;k2=v2")
    assert lease.id == tagged_id
    assert lease.tag == "k1=v1;k2=v2"
    lease.release()
    plain.release()


def test_tag_pair_order_and_spacing_do_not_matter(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=2, max_size=4)
    tagged_id = tagged_connection(pool, "k1=v1;k2=v2")
    lease = pool.acquire(tag=" k2=v2 ; k1=v1 ")
    assert lease.id == tagged_id
    assert lease.tag == "k1=v1;k2=v2"
    lease.release()


def test_untagged_connection_is_preferred_over_a_new_one(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=2, max_size=4)
    held = pool.acquire()
    other_id = tagged_connection(pool, "a=1")
    held_id = held.id
    held.release()
    lease = pool.acquire(tag="b=2")
    assert lease.id == held_id, "an untagged connection serves a request for another tag"
    assert lease.tag is None
    assert db.connects == 2
    lease.release()
    assert other_id != held_id


def test_without_matchanytag_a_new_connection_is_opened(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=4)
    tagged_id = tagged_connection(pool, "a=1")
    lease = pool.acquire(tag="b=2", timeout=2.0)
    assert lease.id != tagged_id
    assert lease.tag is None
    assert db.connects == 2
    assert pool.idle == 1  # the "a=1" connection is still there
    lease.release()


def test_matchanytag_falls_back_to_another_tag(make_pool: PoolFactory, db: FakeDatabase) -> None:
    pool = make_pool(min_size=1, max_size=4)
    tagged_id = tagged_connection(pool, "a=1")
    lease = pool.acquire(tag="b=2", matchanytag=True)
    assert lease.id == tagged_id
    assert lease.tag == "a=1"
    assert db.connects == 1
    lease.release()


def test_matchanytag_still_prefers_the_exact_tag(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=3, max_size=3)
    leases = [pool.acquire() for _ in range(3)]
    ids = [lease.id for lease in leases]
    leases[0].release(tag="a=1")
    leases[1].release(tag="b=2")
    leases[2].release()
    lease = pool.acquire(tag="b=2", matchanytag=True)
    assert lease.id == ids[1]
    lease.release()


def test_tagged_request_at_the_cap_replaces_a_connection_of_another_tag(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=1)
    tagged_id = tagged_connection(pool, "a=1")
    lease = pool.acquire(tag="b=2", timeout=2.0)
    assert lease.id != tagged_id
    assert pool.opened == 1
    eventually(lambda: db.connections[0].closed, "the connection of the other tag closed")
    lease.release()
    assert_consistent(pool, db)


def test_untagged_request_accepts_a_tagged_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    pool = make_pool(min_size=1, max_size=4)
    tagged_id = tagged_connection(pool, "a=1")
    lease = pool.acquire()
    assert lease.id == tagged_id
    assert lease.tag == "a=1"
    assert db.connects == 1
    lease.release()


def test_release_keeps_the_tag_unless_told_otherwise(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=2)
    tagged_id = tagged_connection(pool, "a=1")
    lease = pool.acquire(tag="a=1")
    lease.release()
    again = pool.acquire(tag="a=1")
    assert again.id == tagged_id and again.tag == "a=1"
    again.tag = None
    again.release()
    plain = pool.acquire()
    assert plain.tag is None
    plain.release()


@pytest.mark.parametrize("how", ["pool.release", "lease.release", "lease.tag"])
def test_retag_on_release(make_pool: PoolFactory, how: str) -> None:
    pool = make_pool(min_size=2, max_size=2)
    other = pool.acquire()
    lease = pool.acquire()
    conn_id = lease.id
    if how == "pool.release":
        pool.release(lease, tag="b=2;a=1")
    elif how == "lease.release":
        lease.release(tag="b=2;a=1")
    else:
        lease.tag = "b=2;a=1"
        lease.release()
    other.release()
    again = pool.acquire(tag="a=1;b=2")
    assert again.id == conn_id
    assert again.tag == "a=1;b=2"
    again.release()


def test_retagging_a_tagged_connection(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=2)
    conn_id = tagged_connection(pool, "a=1")
    lease = pool.acquire(tag="a=1")
    lease.release(tag="a=2")
    fresh = pool.acquire(tag="a=1", timeout=2.0)
    assert fresh.id != conn_id, "the connection no longer carries a=1"
    again = pool.acquire(tag="a=2")
    assert again.id == conn_id
    fresh.release()
    again.release()


def test_malformed_tag_is_a_usage_error(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pytest.raises(sessionpool.UsageError, match="tag"):
        pool.acquire(tag="novalue")
    with pytest.raises(sessionpool.UsageError, match="tag"):
        pool.acquire(tag=5)  # type: ignore[arg-type]
    assert pool.busy == 0


@pytest.mark.parametrize("how", ["pool.release", "lease.release", "lease.tag"])
def test_malformed_tag_on_release_loses_no_connection(
    make_pool: PoolFactory, db: FakeDatabase, how: str
) -> None:
    bad_tag = "novalue"
    pool = make_pool(min_size=1, max_size=1)
    lease = pool.acquire()
    lease.cursor().execute("select 1")
    with pytest.raises(sessionpool.UsageError, match="tag"):
        if how == "pool.release":
            pool.release(lease, tag=bad_tag)
        elif how == "lease.release":
            lease.release(tag=bad_tag)
        else:
            lease.tag = bad_tag
            lease.release()
    # Refused or not, the connection must not vanish: either the lease is still out and can
    # be given back properly, or the pool has it back.
    if not lease.is_released:
        lease.tag = None
        lease.release()
    assert pool.busy == 0 and pool.idle == pool.opened == 1, (pool.busy, pool.idle, pool.opened)
    again = pool.acquire(timeout=0.5)
    again.release()
    assert_consistent(pool, db)


class CallbackRecorder:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[Any, str | None, str | None]] = []
        self.fail = fail

    def __call__(self, conn: Any, requested: str | None, actual: str | None) -> None:
        self.calls.append((conn, requested, actual))
        if self.fail:
            raise RuntimeError("session state could not be set")


def test_session_callback_runs_when_the_tag_differs(make_pool: PoolFactory) -> None:
    recorder = CallbackRecorder()
    pool = make_pool(min_size=1, max_size=2, session_callback=recorder)
    lease = pool.acquire(tag="b=2;a=1")
    assert len(recorder.calls) == 1
    conn, requested, actual = recorder.calls[0]
    assert conn is lease
    assert (requested, actual) == ("a=1;b=2", None)
    lease.release(tag="a=1;b=2")

    pool.acquire(tag="a=1;b=2").release()
    assert len(recorder.calls) == 1, "no callback when the tag matches"

    lease = pool.acquire(tag="c=3", matchanytag=True)
    assert recorder.calls[-1][1:] == ("c=3", "a=1;b=2")
    lease.release(tag="")  # untag
    pool.acquire().release()
    assert len(recorder.calls) == 2, "no callback for an untagged request of an untagged one"


def test_session_callback_is_called_for_an_untagged_request_given_a_tagged_session(
    make_pool: PoolFactory,
) -> None:
    recorder = CallbackRecorder()
    pool = make_pool(min_size=1, max_size=2, session_callback=recorder)
    tagged_connection(pool, "a=1")
    recorder.calls.clear()
    lease = pool.acquire()
    assert [call[1:] for call in recorder.calls] == [(None, "a=1")]
    lease.release()


def test_a_raising_session_callback_drops_the_connection(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    recorder = CallbackRecorder(fail=True)
    pool = make_pool(min_size=1, max_size=2, session_callback=recorder)
    with pytest.raises(RuntimeError, match="session state"):
        pool.acquire(tag="a=1")
    assert len(recorder.calls) == 1
    eventually(lambda: db.connections[0].closed, "the connection whose callback raised closed")
    recorder.fail = False
    lease = pool.acquire(tag="a=1", timeout=2.0)
    assert lease.id != 1
    lease.release()
    assert pool.busy == 0
    assert_consistent(pool, db)
