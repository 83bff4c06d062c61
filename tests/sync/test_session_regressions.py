"""Sessions, regressions from review: commit or rollback inside a nested scope, and the
sqlite begin mode an autocommit session puts back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import sessionpool


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[sessionpool.Pool]:
    pool = sessionpool.create_pool(f"sqlite:///{tmp_path / 'app.db'}", min_size=1, max_size=2)
    with pool.session() as session:
        session.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    yield pool
    pool.close(force=True)


def test_commit_inside_a_nested_scope_does_not_raise_indexerror(pool: sessionpool.Pool) -> None:
    """commit() inside `with s:` nested in `with pool.session() as s:` commits the work; the
    inner scope's exit then pops an empty savepoint list: IndexError, an internal error."""
    with pool.session() as s, s:
        s.execute("INSERT INTO items (name) VALUES ('a')")
        s.commit()
    assert pool.busy == 0


def test_rollback_inside_a_nested_scope_does_not_raise_indexerror(pool: sessionpool.Pool) -> None:
    with pool.session() as s, s:
        s.execute("INSERT INTO items (name) VALUES ('a')")
        s.rollback()
    assert pool.busy == 0


def test_sqlite_autocommit_session_puts_back_the_connections_own_begin_mode(
    tmp_path: Path,
) -> None:
    """A pool whose sqlite3 connections use BEGIN IMMEDIATE (isolation_level='IMMEDIATE'):
    a session with autocommit=True must put that mode back, not sqlite3's default ''."""
    pool = sessionpool.create_pool(
        f"sqlite:///{tmp_path / 'i.db'}",
        min_size=1,
        max_size=1,
        connect_args={"isolation_level": "IMMEDIATE"},
    )
    try:
        with pool.acquire() as conn:
            before = conn.driver_connection.isolation_level
        assert before == "IMMEDIATE"
        with pool.session(autocommit=True) as s:
            s.execute("SELECT 1")
        with pool.acquire() as conn:
            after = conn.driver_connection.isolation_level
        assert after == before, f"autocommit session leaked begin mode {after!r}"
    finally:
        pool.close(force=True)
