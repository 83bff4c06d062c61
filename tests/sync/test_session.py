"""Sessions over the threaded pool, on SQLite files: scopes, savepoints, flush, ownership."""

from __future__ import annotations

import threading
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


def names(pool: sessionpool.Pool) -> list[str]:
    with pool.acquire() as conn:
        return [row[0] for row in conn.execute("SELECT name FROM items ORDER BY id")]


def test_the_scope_commits_on_success_and_gives_the_connection_back(
    pool: sessionpool.Pool,
) -> None:
    with pool.session() as session:
        session.execute("INSERT INTO items (name) VALUES (?)", ("a",))
        assert pool.busy == 1 and session.in_transaction
    assert pool.busy == 0
    assert names(pool) == ["a"]


def test_the_scope_rolls_back_on_error(pool: sessionpool.Pool) -> None:
    with pytest.raises(RuntimeError), pool.session() as session:
        session.execute("INSERT INTO items (name) VALUES (?)", ("lost",))
        raise RuntimeError("boom")
    assert pool.busy == 0
    assert names(pool) == []


def test_commit_and_rollback_give_the_connection_back_and_the_session_goes_on(
    pool: sessionpool.Pool,
) -> None:
    session = pool.session()
    session.execute("INSERT INTO items (name) VALUES ('one')")
    session.commit()
    assert pool.busy == 0 and not session.in_transaction
    session.execute("INSERT INTO items (name) VALUES ('two')")
    session.rollback()
    assert pool.busy == 0
    assert session.fetch("SELECT name FROM items") == [("one",)]
    session.close()
    assert names(pool) == ["one"]


def test_nested_scopes_are_savepoints(pool: sessionpool.Pool) -> None:
    with pool.session() as session:
        session.execute("INSERT INTO items (name) VALUES ('outer')")
        with pytest.raises(ValueError), session:
            session.execute("INSERT INTO items (name) VALUES ('inner, undone')")
            raise ValueError
        with session.savepoint():
            session.execute("INSERT INTO items (name) VALUES ('inner, kept')")
        assert session.fetchone("SELECT count(*) FROM items") == (2,)
    assert names(pool) == ["outer", "inner, kept"]


def test_a_savepoint_as_the_first_statement_does_not_commit_on_release(
    pool: sessionpool.Pool,
) -> None:
    """sqlite3 opens no transaction for SAVEPOINT: the driver's begin() must, or releasing
    the savepoint would commit, and the outer rollback would undo nothing."""
    with pytest.raises(KeyError), pool.session() as session:
        with session.savepoint():
            session.execute("INSERT INTO items (name) VALUES ('x')")
        raise KeyError
    assert names(pool) == []


def test_flush_sends_queued_writes_in_batches_inside_the_transaction(
    pool: sessionpool.Pool,
) -> None:
    session = pool.session()
    for index in range(100):
        session.add("INSERT INTO items (name) VALUES (?)", (f"n{index}",))
    session.add("UPDATE items SET name = upper(name) WHERE id <= ?", (3,))
    assert session.pending == 101 and pool.busy == 0  # nothing sent, nothing borrowed yet
    session.flush()
    assert session.pending == 0
    assert session.fetchone("SELECT count(*) FROM items") == (100,)  # seen by this session
    assert names(pool) == []  # not by others before the commit
    session.commit()
    assert names(pool)[:4] == ["N0", "N1", "N2", "n3"]


def test_closing_discards_queued_writes(pool: sessionpool.Pool) -> None:
    session = pool.session()
    session.add("INSERT INTO items (name) VALUES ('never')")
    session.close()
    assert session.pending == 0 and names(pool) == []


def test_autocommit_per_session_is_put_back_on_return(pool: sessionpool.Pool) -> None:
    with pool.session(autocommit=True) as session:
        session.execute("INSERT INTO items (name) VALUES ('auto')")
        assert not session.in_transaction
        with pytest.raises(sessionpool.UsageError, match="autocommit"), session.savepoint():
            pass
    with pool.acquire() as conn:
        assert conn.isolation_level == ""  # sqlite3's default mode again
    assert names(pool) == ["auto"]


def test_a_weaker_isolation_level_than_sqlite_has_is_refused(pool: sessionpool.Pool) -> None:
    with pytest.raises(sessionpool.UsageError, match="SERIALIZABLE"):
        pool.session(isolation_level="read committed").execute("SELECT 1")
    assert pool.busy == 0
    with pytest.raises(sessionpool.UsageError, match="isolation_level must be one of"):
        pool.session(isolation_level="chaos").execute("SELECT 1")
    assert pool.busy == 0


def test_a_session_used_from_another_thread_raises(pool: sessionpool.Pool) -> None:
    session = pool.session()
    session.execute("INSERT INTO items (name) VALUES ('mine')")
    errors: list[BaseException] = []

    def intruder() -> None:
        try:
            session.execute("INSERT INTO items (name) VALUES ('theirs')")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=intruder)
    thread.start()
    thread.join(5)
    assert len(errors) == 1 and isinstance(errors[0], sessionpool.ForeignSession)
    session.commit()
    assert names(pool) == ["mine"]


def test_scoped_sessions_give_each_thread_its_own(pool: sessionpool.Pool) -> None:
    scoped = pool.scoped_session()
    seen: dict[str, sessionpool.Session] = {}

    def request(name: str) -> None:
        session = scoped()
        assert scoped() is session  # the same within the thread
        seen[name] = session
        scoped.execute("INSERT INTO items (name) VALUES (?)", (name,))
        scoped.commit()
        scoped.remove()
        assert not scoped.has_session()

    threads = [threading.Thread(target=request, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len({id(session) for session in seen.values()}) == 4
    assert sorted(names(pool)) == ["t0", "t1", "t2", "t3"]
    assert pool.busy == 0


def test_a_refused_nested_scope_leaves_the_outer_scope_whole(pool: sessionpool.Pool) -> None:
    with pool.session(autocommit=True) as session:
        with pytest.raises(sessionpool.UsageError, match="autocommit"), session:
            pass  # never entered: a savepoint needs a transaction
        session.execute("INSERT INTO items (name) VALUES ('after')")
    assert pool.busy == 0 and names(pool) == ["after"]
