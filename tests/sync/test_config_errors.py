"""Configuration validation and the error hierarchy of the threaded Pool."""

from __future__ import annotations

import math
from typing import Any

import pytest

import sessionpool
from sessionpool import PoolConfig
from tests.fakes.fake_dbapi import FakeDatabase
from tests.sync.conftest import PoolFactory

INVALID: list[tuple[dict[str, Any], str]] = [
    ({"min_size": 3, "max_size": 2}, "min_size"),
    ({"min_size": -1}, "min_size"),
    ({"max_size": 0}, "max_size"),
    ({"max_size": -5}, "max_size"),
    ({"max_overflow": -2}, "max_overflow"),
    ({"increment": 0}, "increment"),
    ({"increment": -1}, "increment"),
    ({"min_size": "1"}, "min_size"),
    ({"min_size": 1.0}, "min_size"),
    ({"max_size": 2.5}, "max_size"),
    ({"min_size": True}, "min_size"),
    ({"max_size": True}, "max_size"),
    ({"max_overflow": False}, "max_overflow"),
    ({"increment": True}, "increment"),
    ({"max_size": None}, "max_size"),
    ({"when_exhausted": "block"}, "when_exhausted"),
    ({"when_exhausted": None}, "when_exhausted"),
    ({"idle_order": "random"}, "idle_order"),
    ({"idle_order": "LIFO "}, "idle_order"),
    ({"reset_on_return": "truncate"}, "reset_on_return"),
    ({"reset_on_return": True}, "reset_on_return"),
    ({"wait_timeout": math.nan}, "wait_timeout"),
    ({"wait_timeout": -1}, "wait_timeout"),
    ({"wait_timeout": -0.001}, "wait_timeout"),
    ({"wait_timeout": math.inf}, "wait_timeout"),
    ({"wait_timeout": "5"}, "wait_timeout"),
    ({"wait_timeout": True}, "wait_timeout"),
    ({"lazy": "yes"}, "lazy"),
    ({"lazy": 1}, "lazy"),
    ({"homogeneous": 0}, "homogeneous"),
    ({"on_connect": 5}, "on_connect"),
    ({"on_connect": "setup"}, "on_connect"),
    ({"session_callback": "fix"}, "session_callback"),
    ({"name": 5}, "name"),
    ({"max_sise": 3}, "max_sise"),
    ({"pool_size": 5, "timeout": 3}, "pool_size"),
]


@pytest.mark.parametrize(("settings", "parameter"), INVALID, ids=[repr(s) for s, _ in INVALID])
def test_invalid_settings_fail_at_construction(
    db: FakeDatabase, settings: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(sessionpool.ConfigError) as caught:
        sessionpool.create_pool(db.connect, **settings)
    assert parameter in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert db.connects == 0, "nothing is opened for an invalid configuration"


@pytest.mark.parametrize(("settings", "parameter"), INVALID[:-2])
def test_pool_config_validates_on_its_own(settings: dict[str, Any], parameter: str) -> None:
    with pytest.raises(sessionpool.ConfigError, match=parameter):
        PoolConfig(**settings)


def test_valid_edge_settings_are_accepted(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=0, max_size=1, max_overflow=-1, wait_timeout=0, increment=1)
    assert pool.config.wait_timeout == 0
    pool = make_pool(min_size=1, max_size=1, wait_timeout=None, reset_on_return=None)
    assert pool.config.wait_timeout is None


@pytest.mark.parametrize("creator", [42, "sqlite3.connect", None])
def test_creator_must_be_callable(creator: Any) -> None:
    with pytest.raises(sessionpool.ConfigError, match="creator"):
        sessionpool.create_pool(creator=creator, min_size=0)


@pytest.mark.parametrize("url", [42, b"sqlite://", "sqlite3.connect"])
def test_url_must_be_a_database_url(url: Any) -> None:
    with pytest.raises(sessionpool.ConfigError, match="url"):
        sessionpool.create_pool(url, min_size=0)


def test_create_pool_rejects_positional_settings(db: FakeDatabase) -> None:
    with pytest.raises(TypeError):
        sessionpool.create_pool(db.connect, 1, 5)  # type: ignore[call-arg]


def test_open_timeout_is_validated(db: FakeDatabase) -> None:
    with pytest.raises(sessionpool.ConfigError, match="timeout"):
        sessionpool.create_pool(db.connect, open_timeout=-1)


def test_config_is_frozen(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=2)
    with pytest.raises(AttributeError):
        pool.config.max_size = 5  # type: ignore[misc]


@pytest.mark.parametrize("timeout", [-1, math.nan, math.inf, "1", True])
def test_acquire_timeout_is_validated_when_the_pool_is_exhausted(
    make_pool: PoolFactory, timeout: Any
) -> None:
    pool = make_pool(min_size=1, max_size=1)
    held = pool.acquire()
    with pytest.raises(sessionpool.ConfigError, match="timeout"):
        pool.acquire(timeout=timeout)
    assert pool.waiting == 0
    held.release()


def test_acquire_timeout_is_validated_when_a_connection_is_idle(make_pool: PoolFactory) -> None:
    # The same bad argument must be refused whether or not the call would have to wait.
    pool = make_pool(min_size=1, max_size=1)
    for timeout in (-1, math.nan, "1"):
        with pytest.raises(sessionpool.ConfigError, match="timeout"):
            pool.acquire(timeout=timeout)  # type: ignore[arg-type]
        assert pool.busy == 0


def test_acquire_when_exhausted_is_validated(make_pool: PoolFactory) -> None:
    pool = make_pool(min_size=1, max_size=1)
    with pytest.raises(sessionpool.ConfigError, match="when_exhausted"):
        pool.acquire(when_exhausted="sometimes")
    assert pool.busy == 0


def test_every_error_derives_from_the_base() -> None:
    classes = [
        getattr(sessionpool, name)
        for name in sessionpool.__all__
        if isinstance(getattr(sessionpool, name), type)
        and issubclass(getattr(sessionpool, name), BaseException)
    ]
    assert len(classes) >= 9
    for cls in classes:
        assert issubclass(cls, sessionpool.Error), cls
        assert cls.__module__ == "sessionpool"
    assert issubclass(sessionpool.PoolTimeout, TimeoutError)
    assert issubclass(sessionpool.ConfigError, ValueError)
    assert issubclass(sessionpool.LeaseReleased, sessionpool.UsageError)
    assert issubclass(sessionpool.ForeignLease, sessionpool.UsageError)
