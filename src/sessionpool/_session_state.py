"""SessionState: what the threaded Session and the AsyncSession keep and decide alike, with
no I/O: the settings, the transaction flags, the queue of writes and its batches, and the
savepoint names. Each session adds how it borrows and runs statements (sync or async).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._server_pooler import check_statement
from .errors import TransactionLost, UsageError

__all__ = ["Params", "SessionState"]

Params = Sequence[Any] | dict[str, Any] | None


class SessionState:
    """The state a session keeps between statements (see `session.Session`)."""

    def __init__(
        self,
        *,
        autocommit: bool | None,
        isolation_level: str | None,
        reconnect: bool,
        acquire_args: dict[str, Any],
        server_pooler: str | None = None,
    ) -> None:
        if autocommit is not None and not isinstance(autocommit, bool):
            raise UsageError(f"autocommit must be True, False or None, not {autocommit!r}")
        self._autocommit = autocommit
        self._isolation_level = isolation_level
        self._reconnect = reconnect
        self._acquire_args = acquire_args
        self._saved_modes: dict[str, Any] = {}
        self._in_transaction = False
        self._lost: TransactionLost | None = None
        self._pending: list[tuple[str, Params]] = []
        self._savepoints: list[tuple[str, int]] = []  # (name, pending writes when set)
        self._depth = 0  # nesting of `with session:` / `async with session:`
        # Behind a transaction-mode pooler, statements needing a lasting server session
        # are refused before they run (see `_check_sql`).
        self._checks_sql = server_pooler == "transaction"

    @property
    def in_transaction(self) -> bool:
        """Whether statements have run since the last commit or rollback."""
        return self._in_transaction

    @property
    def pending(self) -> int:
        """Writes queued by `add` and not yet flushed."""
        return len(self._pending)

    def add(self, sql: str, params: Params = None) -> None:
        """Queue a write; `flush` (or `commit`) sends the queue, batched per statement."""
        self._check()
        if self._checks_sql:
            self._check_sql(sql)
        self._pending.append((sql, params))

    def _check(self) -> None:
        raise NotImplementedError

    def _check_sql(self, sql: object) -> None:
        """Refuse, with `UsageError`, SQL that needs a server session outliving the
        transaction (LISTEN, PREPARE, SET, session advisory locks...) when the pool runs
        behind ``server_pooler='transaction'``; nothing otherwise. Composed SQL is rendered
        with the held connection (see `_renders_with_connection`)."""
        if self._checks_sql:
            check_statement(sql, self._held_connection())

    def _renders_with_connection(self, sql: object) -> bool:
        """Whether the check must render ``sql`` (a driver's composed SQL) with a driver
        connection: the sessions borrow one first, as the statement is about to need it."""
        return self._checks_sql and hasattr(sql, "as_string")

    def _held_connection(self) -> Any:
        """The driver connection of the lease held, or None."""
        raise NotImplementedError

    def _next_batch(self) -> tuple[str, list[Params]]:
        """The statement at the head of the queue and the parameters of its consecutive
        writes: one `executemany`. The caller removes them (``del _pending[:len(rows)]``)
        once sent, so a failed send leaves the queue as it was."""
        sql = self._pending[0][0]
        count = 1
        while count < len(self._pending) and self._pending[count][0] == sql:
            count += 1
        return sql, [params for _, params in self._pending[:count]]

    def _next_savepoint_name(self) -> str:
        return f"sessionpool_sp{len(self._savepoints) + 1}"

    def _ends_scope(self, name: str) -> bool:
        """Forget the savepoint ``name`` and those set inside it; False if the transaction
        that held it has ended meanwhile (a commit or rollback inside the scope)."""
        names = [saved for saved, _ in self._savepoints]
        if name not in names:
            return False
        del self._savepoints[names.index(name) :]
        return True
