"""AsyncSession over AsyncPool on SQLite files (aiosqlite, and sqlite3 on the thread pool):
scopes, savepoints, flush, modes, ownership by task, scoped sessions; its surface vs Session."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import sessionpool
from sessionpool import AsyncPool, AsyncScopedSession, AsyncSession, ScopedSession, Session

#: Upper bound on any one wait for another task here: they do a few local SQLite statements
#: (milliseconds), so 10 s only fires on a hang, even on this noisy 2-core machine.
BOUND = 10.0


@pytest.fixture(params=["sqlite", "sqlite+sqlite3"], ids=["aiosqlite", "sqlite3-thread-pool"])
async def pool(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncPool]:
    url = f"{request.param}:///{tmp_path / 'app.db'}"
    pool = await sessionpool.create_async_pool(url, min_size=1, max_size=2, wait_timeout=5)
    async with pool.session() as session:
        await session.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    yield pool
    await pool.close(force=True)


async def names(pool: AsyncPool) -> list[str]:
    """The committed names, read by a session of their own (on another connection)."""
    async with pool.session() as session:
        return [row[0] for row in await session.fetch("SELECT name FROM items ORDER BY id")]


# -- scopes --------------------------------------------------------------------------------------


async def test_the_scope_commits_on_success_and_gives_the_connection_back(
    pool: AsyncPool,
) -> None:
    async with pool.session() as session:
        await session.execute("INSERT INTO items (name) VALUES (?)", ("a",))
        assert pool.busy == 1 and session.in_transaction, (pool.busy, session.in_transaction)
    assert pool.busy == 0
    assert await names(pool) == ["a"]


async def test_the_scope_rolls_back_on_error(pool: AsyncPool) -> None:
    with pytest.raises(RuntimeError):
        async with pool.session() as session:
            await session.execute("INSERT INTO items (name) VALUES (?)", ("lost",))
            raise RuntimeError("boom")
    assert pool.busy == 0
    assert await names(pool) == []


async def test_commit_and_rollback_give_the_connection_back_and_the_session_goes_on(
    pool: AsyncPool,
) -> None:
    session = pool.session()
    await session.execute("INSERT INTO items (name) VALUES ('one')")
    await session.commit()
    assert pool.busy == 0 and not session.in_transaction
    await session.execute("INSERT INTO items (name) VALUES ('two')")
    await session.rollback()
    assert pool.busy == 0
    assert await session.fetch("SELECT name FROM items") == [("one",)]
    await session.close()
    assert await names(pool) == ["one"]


async def test_nested_scopes_are_savepoints(pool: AsyncPool) -> None:
    async with pool.session() as session:
        await session.execute("INSERT INTO items (name) VALUES ('outer')")
        with pytest.raises(ValueError):
            async with session:
                await session.execute("INSERT INTO items (name) VALUES ('inner, undone')")
                raise ValueError
        async with session.savepoint():
            await session.execute("INSERT INTO items (name) VALUES ('inner, kept')")
        assert await session.fetchone("SELECT count(*) FROM items") == (2,)
    assert await names(pool) == ["outer", "inner, kept"]


async def test_a_savepoint_as_the_first_statement_does_not_commit_on_release(
    pool: AsyncPool,
) -> None:
    """sqlite3 opens no transaction for SAVEPOINT: the driver's begin() must, or releasing
    the savepoint would commit, and the outer rollback would undo nothing."""
    with pytest.raises(KeyError):
        async with pool.session() as session:
            async with session.savepoint():
                await session.execute("INSERT INTO items (name) VALUES ('x')")
            raise KeyError
    assert await names(pool) == []


async def test_a_refused_nested_scope_leaves_the_outer_scope_intact(pool: AsyncPool) -> None:
    """A savepoint refused on entry (autocommit) must not count as a level of nesting: the
    outer scope then exits as the outer scope, giving the connection back."""
    with pytest.raises(sessionpool.UsageError, match="autocommit"):
        async with pool.session(autocommit=True) as session:
            await session.execute("INSERT INTO items (name) VALUES ('auto')")
            async with session:
                pass  # never reached
    assert pool.busy == 0
    assert await names(pool) == ["auto"]


# -- flush and the queue -------------------------------------------------------------------------


async def test_flush_sends_queued_writes_in_batches_inside_the_transaction(
    pool: AsyncPool,
) -> None:
    session = pool.session()
    for index in range(100):
        session.add("INSERT INTO items (name) VALUES (?)", (f"n{index}",))
    session.add("UPDATE items SET name = upper(name) WHERE id <= ?", (3,))
    assert session.pending == 101 and pool.busy == 0  # nothing sent, nothing borrowed yet
    await session.flush()
    assert session.pending == 0
    assert await session.fetchone("SELECT count(*) FROM items") == (100,)  # this session's
    assert await names(pool) == []  # not by others before the commit
    await session.commit()
    assert (await names(pool))[:4] == ["N0", "N1", "N2", "n3"]


async def test_closing_discards_queued_writes(pool: AsyncPool) -> None:
    session = pool.session()
    session.add("INSERT INTO items (name) VALUES ('never')")
    await session.close()
    assert session.pending == 0 and await names(pool) == []


# -- modes ---------------------------------------------------------------------------------------


async def test_autocommit_per_session_is_put_back_on_return(pool: AsyncPool) -> None:
    async with pool.session(autocommit=True) as session:
        await session.execute("INSERT INTO items (name) VALUES ('auto')")
        assert not session.in_transaction
        with pytest.raises(sessionpool.UsageError, match="autocommit"):
            async with session.savepoint():
                pass
    async with pool.acquire() as conn:
        assert conn.isolation_level == ""  # sqlite3's default mode again
    assert await names(pool) == ["auto"]


async def test_a_weaker_isolation_level_than_sqlite_has_is_refused(pool: AsyncPool) -> None:
    with pytest.raises(sessionpool.UsageError, match="SERIALIZABLE"):
        await pool.session(isolation_level="read committed").execute("SELECT 1")
    assert pool.busy == 0
    with pytest.raises(sessionpool.UsageError, match="isolation_level must be one of"):
        await pool.session(isolation_level="chaos").execute("SELECT 1")
    assert pool.busy == 0


async def test_a_refused_isolation_level_does_not_leak_the_autocommit_mode(
    pool: AsyncPool,
) -> None:
    """The level is refused before anything is changed, so the connection goes back to the
    pool as it was (not dropped, and not left in autocommit)."""
    opened = pool.stats().connections_opened
    with pytest.raises(sessionpool.UsageError, match="SERIALIZABLE"):
        await pool.session(autocommit=True, isolation_level="read committed").execute("SELECT 1")
    assert pool.busy == 0
    async with pool.acquire() as conn:
        assert conn.isolation_level == "", "autocommit leaked to the next borrower"
    assert pool.stats().connections_opened == opened, "the connection was replaced"


# -- ownership -----------------------------------------------------------------------------------


async def test_a_session_used_from_another_task_raises(pool: AsyncPool) -> None:
    session = pool.session()
    await session.execute("INSERT INTO items (name) VALUES ('mine')")

    async def intruder() -> list[str]:
        refused = []
        for attempt in (
            lambda: session.execute("INSERT INTO items (name) VALUES ('theirs')"),
            session.commit,
            session.rollback,
        ):
            try:
                await attempt()
            except sessionpool.ForeignSession:
                refused.append("refused")
        try:
            session.add("INSERT INTO items (name) VALUES ('queued by another')")
        except sessionpool.ForeignSession:
            refused.append("refused")
        return refused

    refused = await asyncio.wait_for(asyncio.ensure_future(intruder()), BOUND)
    assert refused == ["refused"] * 4, refused
    assert session.pending == 0 and session.in_transaction
    await session.commit()
    assert await names(pool) == ["mine"]


async def test_a_session_made_outside_any_task_belongs_to_the_first_task_using_it(
    pool: AsyncPool,
) -> None:
    made: asyncio.Future[AsyncSession] = asyncio.get_running_loop().create_future()
    # A loop callback runs outside any task (asyncio.current_task() is None there).
    asyncio.get_running_loop().call_soon(lambda: made.set_result(pool.session()))
    session = await asyncio.wait_for(made, BOUND)
    await session.execute("INSERT INTO items (name) VALUES ('first user')")

    async def second_user() -> None:
        await session.execute("INSERT INTO items (name) VALUES ('second user')")

    with pytest.raises(sessionpool.ForeignSession):
        await asyncio.wait_for(asyncio.ensure_future(second_user()), BOUND)
    await session.commit()
    assert await names(pool) == ["first user"]


async def test_scoped_sessions_give_each_task_its_own(pool: AsyncPool) -> None:
    scoped = pool.scoped_session()
    seen: dict[str, AsyncSession] = {}

    async def request(name: str) -> None:
        session = scoped()
        assert scoped() is session  # the same within the task
        seen[name] = session
        await scoped.execute("INSERT INTO items (name) VALUES (?)", (name,))
        await scoped.commit()
        await scoped.remove()
        assert not scoped.has_session()

    await asyncio.wait_for(asyncio.gather(*(request(f"t{i}") for i in range(4))), BOUND)
    assert len({id(session) for session in seen.values()}) == 4
    assert sorted(await names(pool)) == ["t0", "t1", "t2", "t3"]
    assert pool.busy == 0


async def test_a_task_started_by_another_gets_its_own_scoped_session(pool: AsyncPool) -> None:
    """A new task inherits a copy of its creator's context, the creator's session with it:
    the registry must not hand that one out (it belongs to the creator), and removing the
    child's session must leave the creator's alone."""
    scoped = pool.scoped_session()
    parent = scoped()
    await parent.execute("INSERT INTO items (name) VALUES ('parent')")

    async def child() -> AsyncSession:
        assert not scoped.has_session()  # the inherited one is not this task's
        session = scoped()
        await session.execute("SELECT 1")  # usable here: it is this task's own
        await scoped.remove()
        return session

    child_session = await asyncio.wait_for(asyncio.ensure_future(child()), BOUND)
    assert child_session is not parent
    assert scoped() is parent and parent.in_transaction
    await scoped.commit()
    await scoped.remove()
    assert await names(pool) == ["parent"] and pool.busy == 0


# -- the surface ---------------------------------------------------------------------------------

#: Session members that are coroutine functions on AsyncSession (`connection` is a property
#: on Session: borrowing may wait here). `add` stays plain: it only queues.
SESSION_IO = {
    "connection",
    "execute",
    "executemany",
    "fetch",
    "fetchone",
    "flush",
    "commit",
    "rollback",
    "close",
}


def public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def parameters(function: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_sessions_expose_the_same_public_names() -> None:
    assert public(Session) == public(AsyncSession)
    assert public(ScopedSession) == public(AsyncScopedSession)
    assert public(AsyncScopedSession) == {"has_session", "remove"}


@pytest.mark.parametrize("name", sorted(public(Session)))
def test_session_members_are_sync_or_async_as_expected(name: str) -> None:
    sync, asynchronous = inspect.getattr_static(Session, name), getattr(AsyncSession, name)
    if name in SESSION_IO:
        assert inspect.iscoroutinefunction(asynchronous), f"AsyncSession.{name} must be async"
    elif isinstance(sync, property):
        assert isinstance(inspect.getattr_static(AsyncSession, name), property), name
        return
    else:
        assert not inspect.iscoroutinefunction(asynchronous), f"AsyncSession.{name} is async"
    if isinstance(sync, property):
        return
    assert parameters(getattr(Session, name)) == parameters(asynchronous)


def test_savepoint_and_nesting_are_async_context_managers() -> None:
    assert inspect.iscoroutinefunction(AsyncSession.__aenter__)
    assert inspect.iscoroutinefunction(AsyncSession.__aexit__)
    assert not hasattr(AsyncSession, "__enter__"), "a sync `with` on an AsyncSession must fail"
    assert parameters(Session.__init__) == parameters(AsyncSession.__init__)


async def test_savepoint_returns_an_async_context_manager(pool: AsyncPool) -> None:
    async with pool.session() as session:
        scope = session.savepoint()
        assert hasattr(scope, "__aenter__") and not hasattr(scope, "__enter__")
        async with scope as entered:
            assert entered is session


def test_scoped_remove_is_a_coroutine_and_has_session_is_not() -> None:
    assert inspect.iscoroutinefunction(AsyncScopedSession.remove)
    assert not inspect.iscoroutinefunction(AsyncScopedSession.has_session)
    assert parameters(ScopedSession.__init__) == parameters(AsyncScopedSession.__init__)
