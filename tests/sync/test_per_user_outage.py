"""Rule 6 per key: one user's connect failures after a success (a rotated password) put only
that user in an outage; callers with working credentials are served at once."""

from __future__ import annotations

import time

from tests.fakes.fake_dbapi import FakeDatabase, OperationalError
from tests.sync.conftest import PoolFactory, start, wait_for_waiting


def test_one_users_bad_password_does_not_starve_the_others(
    make_pool: PoolFactory, db: FakeDatabase
) -> None:
    passwords = {"alice": "old"}

    def creator(user: str | None = None, password: str | None = None):
        if user is not None and passwords.get(user) != password:
            raise OperationalError(f"password authentication failed for user {user!r}")
        return db.connect()

    pool = make_pool(creator, min_size=0, max_size=4, homogeneous=False)
    pool.acquire(user="alice", password="old").drop()  # alice has worked before
    passwords["alice"] = "rotated"  # ... and her password is changed on the server
    alice = start(lambda: pool.acquire(user="alice", password="old", timeout=3.0), "alice")
    wait_for_waiting(pool, 1)
    t0 = time.monotonic()
    other = start(lambda: pool.acquire(timeout=1.5), "pool's own user")
    other.join(5)
    error = other.error
    assert error is None, (
        f"the pool's own user (whose connects succeed) failed after "
        f"{other.finished_at - t0:.2f} s: "
        f"{error!r}; cause {error.__cause__!r}; connects attempted: {db.connects}"
    )
    alice.join(5)
