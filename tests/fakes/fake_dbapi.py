"""Scriptable in-memory fake of a PEP 249 (DB-API 2.0) driver, used only by sessionpool's tests.

It must not import sessionpool or anything outside the standard library, must do no real I/O,
and must never block a thread for good: every hang can be released and is capped by a timeout.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeAlias

__all__ = [
    "apilevel",
    "threadsafety",
    "paramstyle",
    "Warning",
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
    "Statement",
    "FakeDatabase",
    "FakeConnection",
    "FakeCursor",
]

# --- module globals required by PEP 249 ---------------------------------------------------

apilevel = "2.0"
threadsafety = 2
paramstyle = "qmark"


# --- exception tree (PEP 249 layout) --------------------------------------------------------


class Warning(Exception):  # shadows the builtin on purpose, as PEP 249 asks
    """Important warnings, such as data truncation."""


class Error(Exception):
    """Base class of every other error exception of this module."""


class InterfaceError(Error):
    """Errors of the driver interface rather than of the database (e.g. use after close)."""


class DatabaseError(Error):
    """Errors related to the database."""


class DataError(DatabaseError):
    """Problems with the processed data (division by zero, value out of range, ...)."""


class OperationalError(DatabaseError):
    """Errors in the operation of the database: lost connection, server down, ..."""


class IntegrityError(DatabaseError):
    """The relational integrity of the database is affected."""


class InternalError(DatabaseError):
    """The database hit an internal error."""


class ProgrammingError(DatabaseError):
    """Programming errors: bad SQL, fetching without a result set, ..."""


class NotSupportedError(DatabaseError):
    """A method or database API was used which the database does not support."""


# --- types and helpers ----------------------------------------------------------------------

#: What a failure knob raises: ``None`` means a default ``OperationalError``; an exception class
#: is instantiated with a descriptive message; an exception instance is raised as is.
ExcSpec: TypeAlias = BaseException | type[BaseException] | None
Row: TypeAlias = tuple[Any, ...]
Description: TypeAlias = tuple[tuple[Any, ...], ...]

LOST = "connection lost"
CONN_CLOSED = "connection already closed"
CURSOR_CLOSED = "cursor already closed"


class Statement(NamedTuple):
    """One executed statement, as recorded in ``FakeConnection.statements`` and
    ``FakeDatabase.statements``. Compares equal to a plain ``(sql, params)`` tuple."""

    sql: str
    params: Any


def _make_exc(spec: ExcSpec, message: str) -> BaseException:
    if spec is None:
        return OperationalError(message)
    if isinstance(spec, type):
        return spec(message)
    return spec


def _normalize(sql: str) -> str:
    """Key under which statements are matched: whitespace collapsed, trailing ';' dropped,
    case folded."""
    return " ".join(sql.split()).rstrip(";").strip().casefold()


def _describe(columns: Iterable[str]) -> Description:
    return tuple((name, None, None, None, None, None, None) for name in columns)


_SELECT_1: tuple[list[Row], Description] = ([(1,)], _describe(["?column?"]))


class _FailureSwitch:
    """A "fail the next n calls" / "fail every call" switch. Always used under the db lock."""

    __slots__ = ("_always", "_exc", "_remaining")

    def __init__(self) -> None:
        self._always = False
        self._remaining = 0
        self._exc: ExcSpec = None

    def set(self, times: int | None, exc: ExcSpec) -> None:
        if times is not None and times < 0:
            raise ValueError(f"times must be >= 0 or None, not {times!r}")
        self._always = times is None
        self._remaining = times or 0
        self._exc = exc

    def take(self, message: str) -> BaseException | None:
        """Consume one failure if one is scripted and return the exception to raise."""
        if self._always:
            return _make_exc(self._exc, message)
        if self._remaining > 0:
            self._remaining -= 1
            return _make_exc(self._exc, message)
        return None


# --- the fake server ------------------------------------------------------------------------


class FakeDatabase:
    """One fake database server whose behaviour a test scripts.

    Use ``db.connect`` as the pool's creator: ``db = FakeDatabase(); creator = db.connect``.

    Every method is thread-safe. The plain attributes ``connect_delay``, ``query_delay`` and
    ``close_raises`` may be assigned at any time, from any thread.

    Scripting knobs:

    * ``connect_delay`` -- seconds every ``connect()`` sleeps before it succeeds or fails.
    * ``query_delay`` -- seconds every executed statement sleeps.
    * ``fail_next_connects(n, exc=None)`` -- the next *n* connects raise.
    * ``fail_all_connects(exc=None)`` / ``accept_connects()`` -- server down / up.
    * ``hang_connects(max_wait=10.0)`` / ``release_hangs()`` -- connects block until released.
    * ``fail_commit(times=None, exc=None)`` / ``fail_rollback(times=None, exc=None)``.
    * ``close_raises`` -- ``False``; ``True`` (``OperationalError``) or an exception instance
      raised by the first ``close()`` of every connection, *after* it is marked closed.
    * ``kill(conn)`` / ``kill_all()`` -- the server drops connections.
    * ``set_result(sql, rows, columns=None)`` / ``clear_result(sql)`` / ``set_error(sql, exc)``.

    Wherever ``exc`` is taken, ``None`` means ``OperationalError``, an exception class is
    instantiated with a message, and an exception instance is raised as is (the same object
    each time).

    Counters: ``connects`` (every attempt, failed or not), ``failed_connects``,
    ``connections`` (every ``FakeConnection`` made, in order), ``open_connections`` (those not
    closed), ``statements`` (every executed ``Statement`` on every connection), ``hanging``
    (connects currently blocked by ``hang_connects``).
    """

    def __init__(self, *, connect_delay: float = 0.0, query_delay: float = 0.0) -> None:
        self.connect_delay = connect_delay
        self.query_delay = query_delay
        self.close_raises: bool | BaseException = False
        self.connects = 0
        self.failed_connects = 0
        self.connections: list[FakeConnection] = []
        self.statements: list[Statement] = []
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._last_id = 0
        self._connect_failures = _FailureSwitch()
        self._commit_failures = _FailureSwitch()
        self._rollback_failures = _FailureSwitch()
        self._hang_event: threading.Event | None = None
        self._hang_max_wait = 10.0
        self._hanging = 0
        self._results: dict[str, tuple[list[Row], Description]] = {}
        self._errors: dict[str, BaseException | type[BaseException]] = {}

    def __repr__(self) -> str:
        return (
            f"<FakeDatabase connects={self.connects} open={self.open_connections}"
            f" hanging={self._hanging}>"
        )

    def __enter__(self) -> FakeDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Release any hung connects so that no thread stays blocked after the test."""
        self.release_hangs()

    # -- connecting ----------------------------------------------------------------------

    def connect(self, **kwargs: Any) -> FakeConnection:
        """Open a new ``FakeConnection``; the keyword arguments are kept on it as ``kwargs``.

        Order of events: count the attempt, block while connects hang, sleep
        ``connect_delay``, then raise if a connect failure is scripted.
        """
        with self._lock:
            self.connects += 1
            event = self._hang_event
            max_wait = self._hang_max_wait
            if event is not None:
                self._hanging += 1
                self._changed.notify_all()
        if event is not None:
            try:
                released = event.wait(max_wait)
            finally:
                with self._lock:
                    self._hanging -= 1
                    self._changed.notify_all()
            if not released:
                with self._lock:
                    self.failed_connects += 1
                raise OperationalError(f"hung connect was not released within {max_wait} s")
        delay = self.connect_delay
        if delay > 0:
            time.sleep(delay)
        with self._lock:
            exc = self._connect_failures.take("could not connect to server")
            if exc is not None:
                self.failed_connects += 1
                raise exc
            self._last_id += 1
            conn = FakeConnection(self, self._last_id, kwargs)
            self.connections.append(conn)
            return conn

    def fail_next_connects(self, n: int, exc: ExcSpec = None) -> None:
        """Make the next *n* connects raise *exc* (default ``OperationalError``).

        Replaces any earlier connect-failure setting, including ``fail_all_connects``.
        """
        with self._lock:
            self._connect_failures.set(n, exc)

    def fail_all_connects(self, exc: ExcSpec = None) -> None:
        """Server down: every connect raises *exc* until ``accept_connects()``.

        Existing connections are not touched (use ``kill_all()`` for that).
        """
        with self._lock:
            self._connect_failures.set(None, exc)

    def accept_connects(self) -> None:
        """Server up: forget every scripted connect failure (``fail_next``/``fail_all``)."""
        with self._lock:
            self._connect_failures.set(0, None)

    def hang_connects(self, max_wait: float = 10.0) -> None:
        """Make connects block until ``release_hangs()``.

        A blocked connect that is not released within *max_wait* seconds raises
        ``OperationalError`` so that a forgotten hang cannot block a thread for good.
        Use ``wait_for_hanging()`` to learn when a connect has actually blocked.
        """
        with self._lock:
            if self._hang_event is None:
                self._hang_event = threading.Event()
            self._hang_max_wait = max_wait

    def release_hangs(self) -> None:
        """Unblock every hung connect (they then go on normally) and stop hanging new ones."""
        with self._lock:
            event, self._hang_event = self._hang_event, None
        if event is not None:
            event.set()

    @property
    def hanging(self) -> int:
        """Number of connects currently blocked by ``hang_connects()``."""
        return self._hanging

    def wait_for_hanging(self, n: int = 1, timeout: float = 1.0) -> bool:
        """Wait until at least *n* connects are blocked; return False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._hanging >= n, timeout)

    @property
    def open_connections(self) -> int:
        """Number of connections made and not closed yet."""
        with self._lock:
            return sum(1 for conn in self.connections if not conn.closed)

    # -- transactions and connection loss ------------------------------------------------

    def fail_commit(self, times: int | None = None, exc: ExcSpec = None) -> None:
        """Make commits raise *exc* (default ``OperationalError``) on any connection.

        ``times=None`` fails every commit, ``times=n`` the next *n*; ``fail_commit(0)`` stops.
        A failed commit still counts in ``conn.commits`` and leaves ``in_transaction`` alone.
        """
        with self._lock:
            self._commit_failures.set(times, exc)

    def fail_rollback(self, times: int | None = None, exc: ExcSpec = None) -> None:
        """Make rollbacks raise *exc* (default ``OperationalError``) on any connection.

        ``times=None`` fails every rollback, ``times=n`` the next *n*; ``fail_rollback(0)``
        stops. A failed rollback still counts in ``conn.rollbacks`` and leaves
        ``in_transaction`` alone.
        """
        with self._lock:
            self._rollback_failures.set(times, exc)

    def kill(self, conn: FakeConnection) -> None:
        """Drop *conn* on the server side: from now on its ``cursor().execute()``,
        ``commit()`` and ``rollback()`` raise ``OperationalError("connection lost")``.
        ``close()`` still works."""
        if conn.database is not self:
            raise ValueError(f"{conn!r} does not belong to this database")
        with self._lock:
            conn.dead = True

    def kill_all(self) -> int:
        """``kill()`` every open connection; return how many were killed.
        Connections made afterwards are alive."""
        with self._lock:
            victims = [conn for conn in self.connections if not conn.closed and not conn.dead]
            for conn in victims:
                conn.dead = True
            return len(victims)

    # -- statements ----------------------------------------------------------------------

    def set_result(
        self, sql: str, rows: Iterable[Sequence[Any]], columns: Sequence[str] | None = None
    ) -> None:
        """Make *sql* return *rows* (a result set, even if empty).

        Statements are matched after collapsing whitespace, dropping a trailing ';' and case
        folding. Column names default to ``column1``, ``column2``, ... (by the width of the
        first row; an empty result without *columns* has an empty description).
        ``select 1`` returns ``[(1,)]`` unless overridden here.
        """
        materialized = [tuple(row) for row in rows]
        if columns is None:
            width = len(materialized[0]) if materialized else 0
            columns = [f"column{i}" for i in range(1, width + 1)]
        with self._lock:
            self._results[_normalize(sql)] = (materialized, _describe(columns))

    def clear_result(self, sql: str) -> None:
        """Forget a result registered with ``set_result()``."""
        with self._lock:
            self._results.pop(_normalize(sql), None)

    def set_error(self, sql: str, exc: ExcSpec) -> None:
        """Make executing *sql* raise *exc* (``None`` removes the error again).

        The statement is still recorded and still starts a transaction. An error takes
        precedence over a result registered for the same statement.
        """
        with self._lock:
            if exc is None:
                self._errors.pop(_normalize(sql), None)
            else:
                self._errors[_normalize(sql)] = exc

    def _execute(
        self, conn: FakeConnection, sql: str, params: Any
    ) -> tuple[list[Row], Description] | None:
        """Run one statement for *conn*; return (rows, description) or None (no result set)."""
        key = _normalize(sql)
        with self._lock:
            conn._check_open()
            if conn.dead:
                raise OperationalError(LOST)
            statement = Statement(sql, params)
            conn.statements.append(statement)
            self.statements.append(statement)
            conn.in_transaction = True
            error = self._errors.get(key)
            result = self._results.get(key)
        delay = self.query_delay
        if delay > 0:
            time.sleep(delay)
        if error is not None:
            raise _make_exc(error, f"error executing {sql!r}")
        if result is None and key == "select 1":
            result = _SELECT_1
        if result is None:
            return None
        rows, description = result
        return list(rows), description


# --- connection -----------------------------------------------------------------------------


class FakeConnection:
    """A connection made by ``FakeDatabase.connect()``.

    Attributes for tests: ``database``, ``id`` (1, 2, 3, ... per database), ``kwargs`` (as
    passed to connect), ``user`` (``kwargs.get("user")``), ``closed``, ``dead`` (killed by
    the server), ``in_transaction`` (set by executing a statement, cleared by a successful
    commit/rollback, left as it was by close), ``commits``, ``rollbacks`` (calls made on the
    open connection, failed ones included), ``close_calls`` (every ``close()`` call),
    ``statements``, ``borrows`` (successful ``enter_borrow()`` calls) and ``borrower``.

    Every DB-API method on a closed connection raises ``InterfaceError("connection already
    closed")``, except ``close()`` which is then a counted no-op.
    """

    # Optional PEP 249 extension: the exception classes as connection attributes.
    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, database: FakeDatabase, conn_id: int, kwargs: Mapping[str, Any]) -> None:
        self.database = database
        self.id = conn_id
        self.kwargs: dict[str, Any] = dict(kwargs)
        self.user: Any = self.kwargs.get("user")
        self.closed = False
        self.dead = False
        self.in_transaction = False
        self.commits = 0
        self.rollbacks = 0
        self.close_calls = 0
        self.borrows = 0
        self.statements: list[Statement] = []
        self._borrow_lock = threading.Lock()
        self._borrower: object = None

    def __repr__(self) -> str:
        state = "closed" if self.closed else "dead" if self.dead else "open"
        return f"<FakeConnection id={self.id} {state}>"

    def _check_open(self) -> None:
        if self.closed:
            raise InterfaceError(CONN_CLOSED)

    def cursor(self) -> FakeCursor:
        """Return a new cursor (works on a dead connection; executing on it fails)."""
        self._check_open()
        return FakeCursor(self)

    def commit(self) -> None:
        """Commit; raises ``OperationalError`` if dead or if ``fail_commit`` says so."""
        db = self.database
        with db._lock:
            self._check_open()
            self.commits += 1
            if self.dead:
                raise OperationalError(LOST)
            exc = db._commit_failures.take("commit failed")
            if exc is not None:
                raise exc
            self.in_transaction = False

    def rollback(self) -> None:
        """Roll back; raises ``OperationalError`` if dead or if ``fail_rollback`` says so."""
        db = self.database
        with db._lock:
            self._check_open()
            self.rollbacks += 1
            if self.dead:
                raise OperationalError(LOST)
            exc = db._rollback_failures.take("rollback failed")
            if exc is not None:
                raise exc
            self.in_transaction = False

    def close(self) -> None:
        """Close the connection. A second close is a no-op (but counted in ``close_calls``).

        With ``database.close_raises`` set, the first close marks the connection closed and
        then raises.
        """
        with self.database._lock:
            self.close_calls += 1
            if self.closed:
                return
            self.closed = True
            raises = self.database.close_raises
        if raises is True:
            raise OperationalError("error while closing the connection")
        if isinstance(raises, BaseException):
            raise raises

    # -- borrower guard for stress tests ---------------------------------------------------

    @property
    def borrower(self) -> object:
        """The owner that currently holds this connection via ``enter_borrow``, or None."""
        return self._borrower

    def enter_borrow(self, owner: object) -> None:
        """Record that *owner* now uses this connection exclusively.

        Raises ``AssertionError`` if another owner (or the same one) already holds it. The
        check is a non-blocking lock acquire, so it is race-free.
        """
        if not self._borrow_lock.acquire(blocking=False):
            raise AssertionError(
                f"{self!r} borrowed by {owner!r} while still held by {self._borrower!r}"
            )
        self._borrower = owner
        self.borrows += 1

    def exit_borrow(self, owner: object) -> None:
        """Record that *owner* is done with this connection.

        Raises ``AssertionError`` if the connection is not held, or held by someone else.
        """
        holder = self._borrower
        if not self._borrow_lock.locked() or holder != owner:
            raise AssertionError(f"{self!r} returned by {owner!r} but held by {holder!r}")
        self._borrower = None
        self._borrow_lock.release()

    @contextmanager
    def borrowed(self, owner: object) -> Iterator[FakeConnection]:
        """``with conn.borrowed(owner):`` -- ``enter_borrow`` ... ``exit_borrow``."""
        self.enter_borrow(owner)
        try:
            yield self
        finally:
            self.exit_borrow(owner)


# --- cursor ---------------------------------------------------------------------------------


class FakeCursor:
    """A cursor of a ``FakeConnection``.

    ``execute`` returns the cursor itself. Statements without a registered result (other
    than ``select 1``) produce no result set: ``description`` is None, ``rowcount`` is -1
    and the fetch methods raise ``ProgrammingError``. Use after ``close()`` (of the cursor
    or its connection) raises ``InterfaceError``.
    """

    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection
        self.arraysize = 1
        self.description: Description | None = None
        self.rowcount = -1
        self.closed = False
        self._rows: list[Row] | None = None
        self._pos = 0

    def _check(self) -> None:
        if self.closed:
            raise InterfaceError(CURSOR_CLOSED)
        self.connection._check_open()

    def _reset(self) -> None:
        self.description = None
        self.rowcount = -1
        self._rows = None
        self._pos = 0

    def execute(self, sql: str, params: Any = None) -> FakeCursor:
        """Execute one statement (recorded with *params*) and keep its result set."""
        self._check()
        self._reset()
        result = self.connection.database._execute(self.connection, sql, params)
        if result is not None:
            self._rows, self.description = result
            self.rowcount = len(self._rows)
        return self

    def executemany(self, sql: str, seq_of_params: Iterable[Any]) -> FakeCursor:
        """Execute *sql* once per parameter set (each recorded); results are discarded."""
        self._check()
        self._reset()
        db = self.connection.database
        for params in seq_of_params:
            db._execute(self.connection, sql, params)
        return self

    def _result(self) -> list[Row]:
        self._check()
        if self._rows is None:
            raise ProgrammingError("no results to fetch")
        return self._rows

    def fetchone(self) -> Row | None:
        rows = self._result()
        if self._pos >= len(rows):
            return None
        self._pos += 1
        return rows[self._pos - 1]

    def fetchmany(self, size: int | None = None) -> list[Row]:
        rows = self._result()
        count = self.arraysize if size is None else size
        chunk = rows[self._pos : self._pos + count]
        self._pos += len(chunk)
        return chunk

    def fetchall(self) -> list[Row]:
        rows = self._result()
        rest = rows[self._pos :]
        self._pos = len(rows)
        return rest

    def __iter__(self) -> Iterator[Row]:
        while (row := self.fetchone()) is not None:
            yield row

    def setinputsizes(self, sizes: Any) -> None:
        self._check()

    def setoutputsize(self, size: Any, column: int | None = None) -> None:
        self._check()

    def close(self) -> None:
        """Close the cursor; closing it again is a no-op."""
        self.closed = True
        self._reset()
