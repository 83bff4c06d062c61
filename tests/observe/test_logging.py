"""Per-pool loggers, echo, and pool names that never carry credentials."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import sessionpool
from sessionpool import ConfigError

SECRET = "s3cr3t-canary"


def pool_records(caplog: pytest.LogCaptureFixture, pool: sessionpool.Pool) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == f"sessionpool.pool.{pool.name}"
    ]


def test_echo_logs_connects_and_closes_at_info(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # capture everything the pool's logger lets through
    pool = sessionpool.create_pool(f"sqlite:///{tmp_path / 'a.db'}", min_size=1, echo=True)
    pool.wait(5)
    pool.acquire().release()
    pool.close()
    messages = pool_records(caplog, pool)
    assert any(message.startswith("opened sqlite3.Connection@") for message in messages)
    assert any(message.startswith("closed sqlite3.Connection@") for message in messages)
    assert not any(message.startswith("lent ") for message in messages)  # DEBUG only


def test_echo_debug_also_logs_checkouts_checkins_and_resets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pool = sessionpool.create_pool(f"sqlite:///{tmp_path / 'b.db'}", min_size=1, echo="debug")
    pool.wait(5)
    with pool.acquire() as conn:
        conn.execute("create table t (x)")
        conn.execute("insert into t values (1)")  # a transaction left open: reset ends it
    pool.close()
    messages = pool_records(caplog, pool)
    assert any(message.startswith("lent ") for message in messages), messages
    assert any("given back, held" in message for message in messages), messages
    assert any(message.startswith("reset ") for message in messages), messages


def test_without_echo_a_quiet_logger_registers_no_listener(tmp_path: Path) -> None:
    pool = sessionpool.create_pool(f"sqlite:///{tmp_path / 'c.db'}", min_size=0)
    assert not pool._listeners
    assert not pool._lend_hooks and not pool._return_hooks
    pool.close()


def test_echo_is_validated_and_accepted_in_a_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="echo must be True, False or 'debug'"):
        sessionpool.create_pool(f"sqlite:///{tmp_path / 'd.db'}", echo="loud")
    pool = sessionpool.create_pool(f"sqlite:///{tmp_path / 'd.db'}?echo=debug&min_size=0")
    assert pool.config.echo == "debug"
    pool.close()
    logging.getLogger(f"sessionpool.pool.{pool.name}").setLevel(logging.NOTSET)


def test_default_names_are_host_port_database_and_unique() -> None:
    url = f"postgresql://postgres:{SECRET}@127.0.0.1:5432/test"
    first = sessionpool.create_pool(url, min_size=0, lazy=True)
    second = sessionpool.create_pool(url, min_size=0, lazy=True)
    named = sessionpool.create_pool(url, min_size=0, lazy=True, name="orders")
    assert first.name == "127.0.0.1:5432/test"
    assert second.name == "127.0.0.1:5432/test#2"
    assert named.name == "orders"
    for pool in (first, second, named):
        assert SECRET not in pool.name and "postgres@" not in pool.name
        pool.close()
    mysql = sessionpool.create_pool("mysql://root@localhost/test", min_size=0, lazy=True)
    assert mysql.name == "localhost:3306/test"
    mysql.close()


def test_a_pool_of_several_hosts_is_named_after_all_of_them() -> None:
    pool = sessionpool.create_pool(
        f"postgresql://postgres:{SECRET}@db1:5432,db2/app", min_size=0, lazy=True
    )
    assert pool.name == "db1:5432,db2:5432/app"
    pool.close()
