"""What running behind a transaction-mode server pooler (PgBouncer) forbids, in words and checks.

Pure text work: which SQL statements need a server session that outlives the transaction, and
the messages the pool logs or raises about the pooler. No I/O, no driver, no pool state.
"""

from __future__ import annotations

import re

from .errors import UsageError

__all__ = [
    "check_statement",
    "detected_warning",
    "on_connect_warning",
    "session_state_in",
]

# Why a lasting session is needed, said once in every refusal.
_WHY = (
    "server_pooler='transaction' runs each transaction on whichever server session the pooler "
    "has free, so session state set in one transaction is gone (or lands on another client) "
    "in the next"
)

# String literals, quoted identifiers and comments, blanked before looking for keywords so
# that a keyword inside them (a ';' or 'LISTEN' in a string) is not taken for a statement.
_OPAQUE = re.compile(
    r"'(?:[^']|'')*'"  # 'string' ('' escapes a quote)
    r'|"(?:[^"]|"")*"'  # "identifier"
    r"|\$([A-Za-z_]*)\$.*?\$\1\$"  # $tag$ dollar-quoted $tag$
    r"|--[^\n]*"  # -- comment
    r"|/\*.*?\*/",  # /* comment */
    re.DOTALL,
)
# Statements whose effect outlives their transaction, by their first words. SET LOCAL,
# SET TRANSACTION and SET CONSTRAINTS last only for the transaction: allowed.
_STATEMENTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"LISTEN\b", re.I), "LISTEN"),
    (re.compile(r"PREPARE\b", re.I), "PREPARE (a named prepared statement)"),
    (
        re.compile(r"SET\b(?!\s+(?:LOCAL|TRANSACTION|CONSTRAINTS)\b)", re.I),
        "SET (a session setting; SET LOCAL lasts for the transaction and is allowed)",
    ),
    (re.compile(r"DECLARE\b.*\bWITH\s+HOLD\b", re.I | re.S), "a cursor WITH HOLD"),
    (
        re.compile(
            r"CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?TEMP(?:ORARY)?\s+TABLE\b(?!.*\bON\s+COMMIT\s+DROP\b)",
            re.I | re.S,
        ),
        "a temporary table that outlives the transaction (add ON COMMIT DROP)",
    ),
]
# Session-level advisory locks anywhere in a statement; the _xact_ forms end with the
# transaction and are allowed.
_ADVISORY = re.compile(r"\bpg_(?:try_)?advisory_lock(?:_shared)?\s*\(", re.I)


def session_state_in(sql: str) -> str | None:
    """What in ``sql`` needs a server session that outlives the transaction (LISTEN, PREPARE,
    a session SET, a session advisory lock, a cursor WITH HOLD, a lasting temporary table),
    or None. Looks at every statement of a multi-statement string."""
    if not isinstance(sql, str):
        return None
    text = _OPAQUE.sub(" ", sql)
    if _ADVISORY.search(text):
        return "a session-level advisory lock (pg_advisory_xact_lock ends with the transaction)"
    for statement in text.split(";"):
        statement = statement.lstrip(" \t\r\n(")
        for pattern, what in _STATEMENTS:
            if pattern.match(statement):
                return what
    return None


def check_statement(sql: str) -> None:
    """Raise `UsageError` when ``sql`` needs session state a transaction-mode pooler loses."""
    found = session_state_in(sql)
    if found is not None:
        raise UsageError(f"{found} cannot work behind a transaction-mode pooler: {_WHY}")


def on_connect_warning(pool_name: str) -> str:
    """The warning for an ``on_connect`` under ``server_pooler='transaction'``."""
    return (
        f"pool {pool_name!r}: on_connect runs once per client connection, but behind "
        f"server_pooler='transaction' the session state it sets (SET, temporary tables, "
        f"prepared statements) is on one server session only and later transactions run on "
        f"others: set such state per transaction (SET LOCAL) instead; client-side set-up "
        f"(type adapters, row factories) is fine"
    )


def detected_warning(pool_name: str, protocol_pid: int, server_pid: int) -> str:
    """The warning for a pooler found in front of a pool created without ``server_pooler``."""
    return (
        f"pool {pool_name!r}: the connection's backend pid from the protocol ({protocol_pid}) "
        f"is not the server's pg_backend_pid() ({server_pid}): a connection pooler such as "
        f"PgBouncer is between this pool and the database. In transaction pool mode, create "
        f"the pool with server_pooler='transaction' (else server-side prepared statements "
        f"fail with 'prepared statement ... does not exist' and session state leaks between "
        f"clients); in session mode, server_pooler='session' records it and silences this "
        f"warning"
    )
