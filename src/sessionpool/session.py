"""Session: a transaction scope over a borrowed connection; ScopedSession: one per thread.

A session borrows a connection on first use and gives it back on commit, rollback or close,
so a connection is held only while a transaction is open. It never reconnects behind a
transaction: a connection that dies inside one raises `TransactionLost`. No pool logic here:
the session only calls the pool's public acquire, release and drop.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._session_state import Params, SessionState
from .errors import ForeignSession, TransactionAborted, TransactionLost, UsageError

if TYPE_CHECKING:
    from ._sync.lease import Lease
    from ._sync.pool import Pool

__all__ = ["ScopedSession", "Session"]


class Session(SessionState):
    """One unit of work on one connection at a time, for the thread that created it.

    ``with pool.session() as s:`` commits when the block succeeds, rolls back when it
    raises, and always gives the connection back; a ``with s:`` (or ``s.savepoint()``)
    inside it is a savepoint. Writes queued with `add` are sent by `flush`, batched, inside
    the open transaction; `commit` flushes first.

    Args:
        pool: the `Pool` to borrow from.
        autocommit: set the connection's autocommit mode for this session (put back when
            the connection is returned); None leaves it as the pool's connections are.
        isolation_level: "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE" or "READ
            UNCOMMITTED" for this session's transactions (put back on return).
        reconnect: outside a transaction, retry a statement whose connection turned out
            dead once on a fresh connection (DBUtils' "steady" connections). Never inside
            a transaction. Beware a write in autocommit mode may have been applied before
            the connection died.
        **acquire_args: passed to `Pool.acquire` (timeout, tag, user, password, ...).
    """

    def __init__(
        self,
        pool: Pool,
        *,
        autocommit: bool | None = None,
        isolation_level: str | None = None,
        reconnect: bool = False,
        **acquire_args: Any,
    ) -> None:
        super().__init__(
            autocommit=autocommit,
            isolation_level=isolation_level,
            reconnect=reconnect,
            acquire_args=acquire_args,
            server_pooler=pool.config.server_pooler,
        )
        self._pool = pool
        self._owner = threading.get_ident()
        self._lease: Lease | None = None
        self._nested: list[Any] = []  # the savepoint scopes of nested `with session:`

    # -- state -----------------------------------------------------------------------------

    @property
    def connection(self) -> Lease:
        """The borrowed connection (borrowed now if the session holds none)."""
        self._check()
        return self._borrow()

    # -- statements ------------------------------------------------------------------------

    def execute(self, sql: str, params: Params = None) -> Any:
        """Run one statement now, inside the session's transaction; returns the cursor."""
        self._check()
        if self._checks_sql:
            self._check_sql_borrowing(sql)
        return self._run(lambda connection: _execute(connection.cursor(), sql, params))

    def executemany(self, sql: str, seq_of_params: Iterable[Params]) -> None:
        """Run one statement for each parameter set, batched by the driver."""
        self._check()
        if self._checks_sql:
            self._check_sql_borrowing(sql)
        rows = list(seq_of_params)
        self._run(functools.partial(_executemany, sql=sql, rows=rows))

    def fetch(self, sql: str, params: Params = None) -> list[Any]:
        """Run a query and return all its rows."""
        self._check()
        if self._checks_sql:
            self._check_sql_borrowing(sql)
        rows: list[Any] = self._run(
            lambda connection: _fetch(connection, sql, params, all_rows=True)
        )
        return rows

    def fetchone(self, sql: str, params: Params = None) -> Any:
        """Run a query and return its first row, or None."""
        self._check()
        if self._checks_sql:
            self._check_sql_borrowing(sql)
        return self._run(lambda connection: _fetch(connection, sql, params, all_rows=False))

    def flush(self) -> None:
        """Send every queued write inside the open transaction, consecutive writes of the
        same statement as one `executemany` (a few round trips for a thousand rows). They are
        then visible to this session, and to others only after `commit`."""
        self._check()
        while self._pending:
            sql, rows = self._next_batch()
            self._run(functools.partial(_executemany, sql=sql, rows=rows))
            del self._pending[: len(rows)]

    # -- ending the transaction ------------------------------------------------------------

    def commit(self) -> None:
        """Flush, commit, and give the connection back.

        Raises:
            TransactionLost: the connection died inside the transaction, or during the
                commit (its outcome is then unknown). Never retried.
            TransactionAborted: a statement failed and the database aborted the transaction
                (PostgreSQL): a commit would only roll back.
        """
        self._check()
        self.flush()
        lease = self._lease
        if lease is None:
            return
        if self._pool._connector.driver.in_failed_transaction(lease.driver_connection):
            raise TransactionAborted(
                "a statement failed inside this transaction and the database aborted it: "
                "COMMIT would only roll back. Roll back, then do the work again"
            )
        try:
            lease.commit()
        except Exception as exc:
            if not self._pool.is_disconnect(exc, lease):
                raise
            self._drop()
            raise TransactionLost(
                "the connection died during COMMIT: the transaction's outcome is unknown; "
                "check before doing the work again"
            ) from exc
        self._in_transaction = False
        self._savepoints.clear()
        self._give_back()

    def rollback(self) -> None:
        """Discard the transaction and the queued writes, and give the connection back. After
        a `TransactionLost`, this is what makes the session usable again."""
        self._check_owner()
        self._pending.clear()
        self._savepoints.clear()
        self._lost = None
        lease = self._lease
        self._in_transaction = False
        if lease is None:
            return
        try:
            lease.rollback()
        except Exception as exc:
            if not self._pool.is_disconnect(exc, lease):
                raise
            self._drop()  # dead anyway: nothing of the transaction survives
            return
        self._give_back()

    def close(self) -> None:
        """Roll back whatever is open, discard queued writes, give the connection back. The
        session may be used again (it borrows anew)."""
        self.rollback()

    # -- scopes ----------------------------------------------------------------------------

    @contextmanager
    def savepoint(self) -> Iterator[Session]:
        """A nested scope: released on success, rolled back to on error (the enclosing
        transaction goes on)."""
        self._check()
        if self._autocommit or (self._lease is not None and self._is_autocommit()):
            raise UsageError("a savepoint needs a transaction: this session is in autocommit")
        self.flush()
        name = self._next_savepoint_name()

        def set_savepoint(connection: Lease) -> None:
            self._pool._connector.driver.begin(connection.driver_connection)
            _execute(connection.cursor(), f"SAVEPOINT {name}", None).close()

        self._run(set_savepoint)
        self._savepoints.append((name, len(self._pending)))
        try:
            yield self
        except BaseException:
            # Unless the transaction ended under the scope (commit, rollback or a lost
            # connection inside it): then its savepoint is gone with it.
            if self._lease is not None and self._lost is None and self._ends_scope(name):
                self._pending.clear()  # queued inside the savepoint: discarded with it
                self._run(lambda c: _execute(c.cursor(), f"ROLLBACK TO SAVEPOINT {name}", None))
            raise
        if self._ends_scope(name):
            self.flush()
            self._run(lambda c: _execute(c.cursor(), f"RELEASE SAVEPOINT {name}", None))

    def __enter__(self) -> Session:
        self._check_owner()
        if self._depth > 0:
            scope = self.savepoint()
            scope.__enter__()  # raises (autocommit, a dead connection): no level is added
            self._nested.append(scope)
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        if self._depth > 0:
            scope = self._nested.pop()
            scope.__exit__(exc_type, exc, tb)
            return
        if exc is not None:
            self.close()
            return
        try:
            self.commit()
        except BaseException:
            self.close()
            raise

    # -- internals -------------------------------------------------------------------------

    def _check_owner(self) -> None:
        if threading.get_ident() != self._owner:
            raise ForeignSession(
                "this session belongs to another thread; give each thread its own "
                "(pool.scoped_session() does), never share one"
            )

    def _check(self) -> None:
        self._check_owner()
        if self._lost is not None:
            raise TransactionLost(
                "the connection died inside this session's transaction: roll back (or close) "
                "the session, then do the work again"
            ) from self._lost.__cause__

    def _held_connection(self) -> Any:
        return None if self._lease is None else self._lease.driver_connection

    def _check_sql_borrowing(self, sql: object) -> None:
        """`_check_sql`, borrowing first when composed SQL must be rendered with the
        connection (psycopg2's renders only with one); `add` renders with the one held."""
        if self._renders_with_connection(sql):
            self._borrow()
        self._check_sql(sql)

    def _borrow(self) -> Lease:
        lease = self._lease
        if lease is not None:
            return lease
        lease = self._pool.acquire(**self._acquire_args)
        saved: dict[str, Any] = {}
        try:
            self._apply_modes(lease.driver_connection, saved)
        except BaseException as exc:
            # A connection whose modes were changed (or may have been: interrupted, dead)
            # must not serve anyone else; one left as it was goes back.
            if saved or not isinstance(exc, Exception) or self._pool.is_disconnect(exc, lease):
                lease.drop()
            else:
                lease.release()
            raise
        self._saved_modes = saved
        self._lease = lease
        return lease

    def _apply_modes(self, raw: Any, saved: dict[str, Any]) -> None:
        """Set the session's modes, recording in ``saved`` what to put back as each is set.
        The isolation level first: a level the driver refuses then changes nothing."""
        driver = self._pool._connector.driver
        if self._isolation_level is not None:
            current = driver.isolation_level(raw)
            driver.set_isolation_level(raw, self._isolation_level)
            saved["isolation_level"] = current
        if self._autocommit is not None and driver.autocommit(raw) != self._autocommit:
            driver.set_autocommit(raw, self._autocommit)
            saved["autocommit"] = not self._autocommit

    def _is_autocommit(self) -> bool:
        assert self._lease is not None
        return bool(self._pool._connector.driver.autocommit(self._lease.driver_connection))

    def _run(self, work: Any) -> Any:
        """Run ``work(lease)``; a dead connection inside a transaction is `TransactionLost`,
        outside one it is dropped (and, with ``reconnect``, the work retried once)."""
        lease = self._borrow()
        try:
            result = work(lease)
        except Exception as exc:
            if not self._pool.is_disconnect(exc, lease):
                raise
            was_in_transaction = self._in_transaction or bool(self._savepoints)
            self._drop()
            if was_in_transaction:
                self._lost = TransactionLost(
                    "the connection died inside this session's transaction: its work is "
                    "gone; nothing was retried. Roll back, then do it again"
                )
                self._lost.__cause__ = exc
                raise self._lost from exc
            if not self._reconnect:
                raise
            result = work(self._borrow())  # once, on a fresh connection
        if not self._is_autocommit():
            self._in_transaction = True
        return result

    def _drop(self) -> None:
        lease, self._lease = self._lease, None
        self._saved_modes = {}
        self._in_transaction = False
        self._savepoints.clear()
        if lease is not None and not lease.is_released:
            lease.drop()

    def _give_back(self) -> None:
        lease, self._lease = self._lease, None
        if lease is None:
            return
        saved, self._saved_modes = self._saved_modes, {}
        try:
            driver = self._pool._connector.driver
            raw = lease.driver_connection
            if "isolation_level" in saved:
                driver.set_isolation_level(raw, saved["isolation_level"])
            if "autocommit" in saved:
                driver.set_autocommit(raw, saved["autocommit"])
        except Exception:
            # The connection's modes are unknown now: it must not serve anyone else.
            lease.drop()
            raise
        lease.release()


class ScopedSession:
    """A registry giving each thread its own `Session`, created on first use (SQLAlchemy's
    ``scoped_session``). Call it for the current thread's session; `remove` at the end of a
    request closes and forgets it. Session methods called on the registry go to the
    current thread's session.

    Args:
        pool: the `Pool`.
        **session_args: passed to each `Session`.
    """

    def __init__(self, pool: Pool, **session_args: Any) -> None:
        self._pool = pool
        self._session_args = session_args
        self._local = threading.local()

    def __call__(self) -> Session:
        session: Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = Session(self._pool, **self._session_args)
        return session

    def has_session(self) -> bool:
        return getattr(self._local, "session", None) is not None

    def remove(self) -> None:
        """Close the current thread's session (rolling back what is open) and forget it."""
        session: Session | None = getattr(self._local, "session", None)
        self._local.session = None
        if session is not None:
            session.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not hasattr(Session, name):
            raise AttributeError(name)
        return getattr(self(), name)


def _execute(cursor: Any, sql: str, params: Params) -> Any:
    if params is None:
        cursor.execute(sql)
    else:
        cursor.execute(sql, params)
    return cursor


def _executemany(connection: Any, *, sql: str, rows: list[Params]) -> None:
    cursor = connection.cursor()
    try:
        connection.pool._connector.driver.executemany(cursor, sql, rows)
    finally:
        cursor.close()


def _fetch(connection: Any, sql: str, params: Params, *, all_rows: bool) -> Any:
    cursor = _execute(connection.cursor(), sql, params)
    try:
        return cursor.fetchall() if all_rows else cursor.fetchone()
    finally:
        cursor.close()
