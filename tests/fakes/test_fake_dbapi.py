"""Tests of the fake DB-API driver itself (tests/fakes/fake_dbapi.py); no sessionpool code."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from tests.fakes import fake_dbapi as dbapi
from tests.fakes.fake_dbapi import (
    DatabaseError,
    Error,
    FakeConnection,
    FakeCursor,
    FakeDatabase,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    Statement,
)


@pytest.fixture
def db() -> Iterator[FakeDatabase]:
    with FakeDatabase() as database:  # releases hangs even if a test fails
        yield database


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    """Run fn in a daemon thread; the list receives its result or the exception it raised."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


# --- module attributes ----------------------------------------------------------------------


def test_module_globals() -> None:
    assert dbapi.apilevel == "2.0"
    assert dbapi.threadsafety == 2
    assert dbapi.paramstyle == "qmark"


@pytest.mark.parametrize(
    ("name", "parent"),
    [
        ("Warning", Exception),
        ("Error", Exception),
        ("InterfaceError", Error),
        ("DatabaseError", Error),
        ("DataError", DatabaseError),
        ("OperationalError", DatabaseError),
        ("IntegrityError", DatabaseError),
        ("InternalError", DatabaseError),
        ("ProgrammingError", DatabaseError),
        ("NotSupportedError", DatabaseError),
    ],
)
def test_exception_tree(name: str, parent: type[BaseException]) -> None:
    cls = getattr(dbapi, name)
    assert cls.__bases__ == (parent,)
    assert getattr(FakeConnection, name) is cls
    assert not issubclass(dbapi.Warning, Error)


# --- connecting -----------------------------------------------------------------------------


def test_connect_records_kwargs_ids_and_counters(db: FakeDatabase) -> None:
    first = db.connect(user="alice", dbname="x")
    second = db.connect()
    assert isinstance(first, FakeConnection)
    assert (first.id, second.id) == (1, 2)
    assert first.user == "alice"
    assert first.kwargs == {"user": "alice", "dbname": "x"}
    assert second.user is None and second.kwargs == {}
    assert first.database is db
    assert db.connects == 2
    assert db.connections == [first, second]
    assert db.open_connections == 2
    first.close()
    assert db.open_connections == 1


def test_creator_is_the_bound_connect(db: FakeDatabase) -> None:
    creator = db.connect
    conn = creator(user="bob")
    assert db.connections == [conn] and conn.user == "bob"


def test_connect_delay(db: FakeDatabase) -> None:
    db.connect_delay = 0.03
    start = time.monotonic()
    db.connect()
    assert time.monotonic() - start >= 0.025
    assert db.connects == 1


def test_fail_next_connects_default_is_operational_error(db: FakeDatabase) -> None:
    db.fail_next_connects(2)
    for _ in range(2):
        with pytest.raises(OperationalError):
            db.connect()
    conn = db.connect()
    assert conn.id == 1  # failed attempts make no connection
    assert db.connects == 3
    assert db.failed_connects == 2
    assert db.connections == [conn]


def test_fail_next_connects_with_class_and_instance(db: FakeDatabase) -> None:
    db.fail_next_connects(1, InterfaceError)
    with pytest.raises(InterfaceError):
        db.connect()
    boom = RuntimeError("boom")
    db.fail_next_connects(1, boom)
    with pytest.raises(RuntimeError) as info:
        db.connect()
    assert info.value is boom
    db.connect()


def test_fail_next_connects_rejects_negative(db: FakeDatabase) -> None:
    with pytest.raises(ValueError):
        db.fail_next_connects(-1)


def test_server_down_and_up(db: FakeDatabase) -> None:
    alive = db.connect()
    db.fail_all_connects()
    for _ in range(3):
        with pytest.raises(OperationalError):
            db.connect()
    assert not alive.dead  # existing connections are untouched
    db.accept_connects()
    db.connect()
    assert db.connects == 5
    assert db.failed_connects == 3


def test_fail_all_connects_custom_exception_and_accept_clears_pending(db: FakeDatabase) -> None:
    db.fail_all_connects(ConnectionRefusedError)
    with pytest.raises(ConnectionRefusedError):
        db.connect()
    db.fail_next_connects(5)  # replaces "all"
    db.accept_connects()  # and forgets the pending ones too
    db.connect()


def test_hang_connects_blocks_until_released(db: FakeDatabase) -> None:
    db.hang_connects()
    thread, out = in_thread(db.connect)
    try:
        assert db.wait_for_hanging(1, timeout=1.0)
        assert db.hanging == 1
        assert out == []
        assert db.connects == 1
    finally:
        db.release_hangs()
        thread.join(1.0)
    assert not thread.is_alive()
    assert len(out) == 1 and isinstance(out[0], FakeConnection)
    assert db.hanging == 0
    db.connect()  # no longer hangs


def test_hang_many_then_fail_on_release(db: FakeDatabase) -> None:
    db.hang_connects()
    started = [in_thread(db.connect) for _ in range(3)]
    try:
        assert db.wait_for_hanging(3, timeout=1.0)
        db.fail_all_connects()  # released connects then hit the "server down" check
    finally:
        db.release_hangs()
        for thread, _ in started:
            thread.join(1.0)
    for thread, out in started:
        assert not thread.is_alive()
        assert len(out) == 1 and isinstance(out[0], OperationalError)
    assert db.failed_connects == 3 and db.connections == []


def test_hang_max_wait_caps_a_forgotten_hang(db: FakeDatabase) -> None:
    db.hang_connects(max_wait=0.02)
    with pytest.raises(OperationalError, match="not released"):
        db.connect()
    assert db.hanging == 0
    assert db.failed_connects == 1


def test_wait_for_hanging_times_out(db: FakeDatabase) -> None:
    assert db.wait_for_hanging(1, timeout=0.01) is False


def test_context_manager_releases_hangs() -> None:
    with FakeDatabase() as database:
        database.hang_connects()
        thread, out = in_thread(database.connect)
        assert database.wait_for_hanging(1, timeout=1.0)
    thread.join(1.0)
    assert not thread.is_alive() and isinstance(out[0], FakeConnection)


def test_concurrent_connects_get_unique_ids(db: FakeDatabase) -> None:
    def worker() -> None:
        for _ in range(50):
            db.connect()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2.0)
    assert db.connects == 400
    assert sorted(conn.id for conn in db.connections) == list(range(1, 401))
    assert db.open_connections == 400


# --- transactions -----------------------------------------------------------------------------


def test_in_transaction_commit_rollback(db: FakeDatabase) -> None:
    conn = db.connect()
    assert not conn.in_transaction
    conn.cursor().execute("select 1")
    assert conn.in_transaction
    conn.commit()
    assert not conn.in_transaction and conn.commits == 1
    conn.cursor().execute("update t set x = ?", (1,))
    assert conn.in_transaction
    conn.rollback()
    assert not conn.in_transaction and conn.rollbacks == 1


def test_fail_commit_next_n(db: FakeDatabase) -> None:
    conn = db.connect()
    conn.cursor().execute("select 1")
    db.fail_commit(1)
    with pytest.raises(OperationalError, match="commit failed"):
        conn.commit()
    assert conn.in_transaction and conn.commits == 1
    conn.commit()
    assert not conn.in_transaction and conn.commits == 2


def test_fail_commit_all_until_reset(db: FakeDatabase) -> None:
    a, b = db.connect(), db.connect()
    db.fail_commit()
    for conn in (a, b, a):
        with pytest.raises(OperationalError):
            conn.commit()
    db.fail_commit(0)
    a.commit()
    b.commit()


def test_fail_rollback_next_n_and_all(db: FakeDatabase) -> None:
    conn = db.connect()
    conn.cursor().execute("select 1")
    db.fail_rollback(2, IndexError)
    for _ in range(2):
        with pytest.raises(IndexError):
            conn.rollback()
    assert conn.in_transaction
    conn.rollback()
    assert not conn.in_transaction and conn.rollbacks == 3
    db.fail_rollback()
    with pytest.raises(OperationalError, match="rollback failed"):
        conn.rollback()
    db.fail_rollback(0)
    conn.rollback()


# --- closing --------------------------------------------------------------------------------


def test_close_is_idempotent_but_counted(db: FakeDatabase) -> None:
    conn = db.connect()
    conn.close()
    conn.close()
    assert conn.closed and conn.close_calls == 2
    assert db.open_connections == 0


@pytest.mark.parametrize("method", ["cursor", "commit", "rollback"])
def test_methods_on_closed_connection_raise_interface_error(db: FakeDatabase, method: str) -> None:
    conn = db.connect()
    conn.close()
    with pytest.raises(InterfaceError, match="connection already closed"):
        getattr(conn, method)()
    assert conn.commits == 0 and conn.rollbacks == 0


def test_cursor_of_closed_connection_raises(db: FakeDatabase) -> None:
    conn = db.connect()
    cur = conn.cursor().execute("select 1")
    conn.close()
    with pytest.raises(InterfaceError, match="connection already closed"):
        cur.execute("select 1")
    with pytest.raises(InterfaceError):
        cur.fetchall()


def test_close_raises_true_marks_closed_then_raises(db: FakeDatabase) -> None:
    conn = db.connect()
    db.close_raises = True
    with pytest.raises(OperationalError):
        conn.close()
    assert conn.closed and db.open_connections == 0
    conn.close()  # second close is still a no-op
    assert conn.close_calls == 2


def test_close_raises_custom_exception(db: FakeDatabase) -> None:
    conn = db.connect()
    boom = KeyError("close")
    db.close_raises = boom
    with pytest.raises(KeyError) as info:
        conn.close()
    assert info.value is boom
    db.close_raises = False
    other = db.connect()
    other.close()
    assert other.closed


# --- killing --------------------------------------------------------------------------------


def test_kill_makes_execute_commit_rollback_fail(db: FakeDatabase) -> None:
    victim, bystander = db.connect(), db.connect()
    cur = victim.cursor()
    db.kill(victim)
    assert victim.dead and not bystander.dead
    with pytest.raises(OperationalError, match="connection lost"):
        cur.execute("select 1")
    with pytest.raises(OperationalError, match="connection lost"):
        victim.cursor().execute("select 1")
    with pytest.raises(OperationalError, match="connection lost"):
        victim.commit()
    with pytest.raises(OperationalError, match="connection lost"):
        victim.rollback()
    assert victim.statements == []
    bystander.cursor().execute("select 1")
    victim.close()  # closing a dead connection works
    assert victim.closed


def test_kill_rejects_foreign_connection(db: FakeDatabase) -> None:
    other = FakeDatabase().connect()
    with pytest.raises(ValueError):
        db.kill(other)


def test_kill_all(db: FakeDatabase) -> None:
    conns = [db.connect() for _ in range(3)]
    conns[0].close()
    assert db.kill_all() == 2
    assert [c.dead for c in conns] == [False, True, True]
    fresh = db.connect()
    assert not fresh.dead
    fresh.cursor().execute("select 1")


# --- cursors and results --------------------------------------------------------------------


def test_select_1(db: FakeDatabase) -> None:
    cur = db.connect().cursor()
    assert isinstance(cur, FakeCursor)
    assert cur.execute("  SELECT   1 ; ") is cur
    assert cur.rowcount == 1
    assert cur.description is not None and len(cur.description) == 1
    assert len(cur.description[0]) == 7
    assert cur.fetchone() == (1,)
    assert cur.fetchone() is None


def test_set_result_and_fetch_methods(db: FakeDatabase) -> None:
    db.set_result("select id, name from users", [(1, "a"), (2, "b"), (3, "c")], ["id", "name"])
    cur = db.connect().cursor()
    cur.execute("SELECT id, name FROM users")
    assert cur.rowcount == 3
    assert cur.description is not None
    assert [col[0] for col in cur.description] == ["id", "name"]
    assert cur.arraysize == 1
    assert cur.fetchmany() == [(1, "a")]
    cur.arraysize = 5
    assert cur.fetchmany(1) == [(2, "b")]
    assert cur.fetchall() == [(3, "c")]
    assert cur.fetchall() == []
    assert cur.fetchmany() == []
    cur.execute("select id, name from users")
    assert list(cur) == [(1, "a"), (2, "b"), (3, "c")]


def test_set_result_default_columns_empty_and_clear(db: FakeDatabase) -> None:
    db.set_result("select a, b", [[1, 2]])
    db.set_result("select nothing", [])
    db.set_result("select 1", [(42,)])  # overrides the built-in
    cur = db.connect().cursor()
    cur.execute("select a, b")
    assert cur.description is not None
    assert [col[0] for col in cur.description] == ["column1", "column2"]
    assert cur.fetchall() == [(1, 2)]
    cur.execute("select nothing")
    assert cur.fetchall() == [] and cur.rowcount == 0 and cur.description == ()
    assert cur.execute("select 1").fetchall() == [(42,)]
    db.clear_result("select 1")
    assert cur.execute("select 1").fetchall() == [(1,)]
    db.clear_result("select a, b")
    cur.execute("select a, b")
    assert cur.description is None


def test_statement_without_result_set(db: FakeDatabase) -> None:
    cur = db.connect().cursor()
    with pytest.raises(ProgrammingError):
        cur.fetchone()  # nothing executed yet
    cur.execute("insert into t values (?)", (1,))
    assert cur.description is None and cur.rowcount == -1
    for fetch in (cur.fetchone, cur.fetchall, cur.fetchmany):
        with pytest.raises(ProgrammingError, match="no results"):
            fetch()


def test_set_error(db: FakeDatabase) -> None:
    db.set_error("select broken", ProgrammingError)
    db.set_result("select broken", [(1,)])  # the error wins
    conn = db.connect()
    cur = conn.cursor()
    with pytest.raises(ProgrammingError, match="SELECT broken"):
        cur.execute("SELECT broken")
    assert conn.statements == [("SELECT broken", None)]
    assert conn.in_transaction
    with pytest.raises(ProgrammingError):
        cur.fetchall()  # no result set left from the failed execute
    db.set_error("select broken", None)
    assert cur.execute("select broken").fetchall() == [(1,)]


def test_set_error_instance_default_operational(db: FakeDatabase) -> None:
    boom = dbapi.IntegrityError("dup")
    db.set_error("insert x", boom)
    cur = db.connect().cursor()
    with pytest.raises(dbapi.IntegrityError) as info:
        cur.execute("insert x")
    assert info.value is boom


def test_statements_are_recorded_per_connection_and_database(db: FakeDatabase) -> None:
    a, b = db.connect(), db.connect()
    a.cursor().execute("select 1")
    b.cursor().execute("select ?", (2,))
    a.cursor().executemany("insert into t values (?)", [(1,), (2,)])
    assert a.statements == [
        ("select 1", None),
        ("insert into t values (?)", (1,)),
        ("insert into t values (?)", (2,)),
    ]
    assert b.statements == [Statement("select ?", (2,))]
    assert db.statements == [
        ("select 1", None),
        ("select ?", (2,)),
        ("insert into t values (?)", (1,)),
        ("insert into t values (?)", (2,)),
    ]
    assert all(isinstance(s, Statement) for s in db.statements)


def test_executemany_has_no_result_set(db: FakeDatabase) -> None:
    conn = db.connect()
    cur = conn.cursor().execute("select 1")
    cur.executemany("insert into t values (?)", [(1,), (2,), (3,)])
    assert cur.description is None and cur.rowcount == -1
    assert conn.in_transaction
    with pytest.raises(ProgrammingError):
        cur.fetchall()


def test_query_delay(db: FakeDatabase) -> None:
    db.query_delay = 0.03
    cur = db.connect().cursor()
    start = time.monotonic()
    cur.execute("select 1")
    assert time.monotonic() - start >= 0.025


def test_cursor_close(db: FakeDatabase) -> None:
    cur = db.connect().cursor()
    cur.execute("select 1")
    cur.setinputsizes([None])
    cur.setoutputsize(10)
    cur.close()
    cur.close()  # no-op
    assert cur.closed
    with pytest.raises(InterfaceError, match="cursor already closed"):
        cur.execute("select 1")
    with pytest.raises(InterfaceError, match="cursor already closed"):
        cur.fetchone()
    with pytest.raises(InterfaceError):
        cur.setinputsizes([None])


# --- borrower guard -------------------------------------------------------------------------


def test_borrow_guard_detects_double_borrow(db: FakeDatabase) -> None:
    conn = db.connect()
    conn.enter_borrow("a")
    assert conn.borrower == "a"
    with pytest.raises(AssertionError, match="while still held by 'a'"):
        conn.enter_borrow("b")
    with pytest.raises(AssertionError):
        conn.enter_borrow("a")  # re-entry by the same owner is a bug too
    with pytest.raises(AssertionError):
        conn.exit_borrow("b")  # wrong owner
    conn.exit_borrow("a")
    assert conn.borrower is None
    with pytest.raises(AssertionError):
        conn.exit_borrow("a")  # not held
    with conn.borrowed("b") as same:
        assert same is conn and conn.borrower == "b"
    assert conn.borrower is None
    assert conn.borrows == 2


def test_borrow_guard_across_threads(db: FakeDatabase) -> None:
    conn = db.connect()
    conn.enter_borrow("main")
    thread, out = in_thread(lambda: conn.enter_borrow("other"))
    thread.join(1.0)
    assert isinstance(out[0], AssertionError)
    conn.exit_borrow("main")
    thread, out = in_thread(lambda: conn.enter_borrow("other"))
    thread.join(1.0)
    assert out == [None] and conn.borrower == "other"
    conn.exit_borrow("other")


def test_borrow_guard_properly_serialized_users_never_trip(db: FakeDatabase) -> None:
    conn = db.connect()
    mutex = threading.Lock()
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        for _ in range(200):
            with mutex:
                try:
                    with conn.borrowed(name):
                        pass
                except AssertionError as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(2.0)
    assert errors == []
    assert conn.borrows == 800


def test_borrow_guard_catches_unserialized_users(db: FakeDatabase) -> None:
    conn = db.connect()
    inside = threading.Event()
    leave = threading.Event()

    def holder() -> None:
        with conn.borrowed("holder"):
            inside.set()
            leave.wait(1.0)

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert inside.wait(1.0)
        with pytest.raises(AssertionError, match="held by 'holder'"):
            conn.enter_borrow("intruder")
    finally:
        leave.set()
        thread.join(1.0)
    assert conn.borrower is None
