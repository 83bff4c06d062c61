"""What running behind a transaction-mode server pooler (PgBouncer) forbids, in words and checks.

Pure text work: which SQL statements need a server session that outlives the transaction, and
the messages the pool logs or raises about the pooler. No I/O, no pool state; the only call out
is rendering a driver's composed SQL (``as_string``), which sends nothing.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import UsageError

__all__ = [
    "check_statement",
    "detected_warning",
    "on_connect_warning",
    "session_state_in",
    "statement_text",
]

# Why a lasting session is needed, said once in every refusal.
_WHY = (
    "server_pooler='transaction' runs each transaction on whichever server session the pooler "
    "has free, so session state set in one transaction is gone (or lands on another client) "
    "in the next"
)

# -- the lexer: strings, quoted identifiers and comments out of the way ----------------------
#
# Keywords are looked for in the SQL with its string literals and comments blanked, so that a
# ';' or 'LISTEN' inside them is not taken for a statement. The lexer follows PostgreSQL's
# (scan.l) where it matters to the checks; it assumes standard_conforming_strings = on (the
# default since 9.1: a backslash escapes only in E'' strings). A string left open is a syntax
# error for the server, which then runs none of the statements: the lexer blanks to the end.
# So is a number run into a dollar quote or an E'' string (1$$...$$, 1E'...'), the one place
# where this lexer and PostgreSQL's part.

_OPENER = re.compile(r"['\"$]|--|/\*")  # where something opaque may start
_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")  # tags follow identifier rules: $q1$ is one
_CLOSERS = {
    "'": re.compile(r"(?:[^']|'')*'"),  # '' is a quote
    "E'": re.compile(r"(?:[^'\\]|''|\\.)*'", re.S),  # \' and '' are quotes
    '"': re.compile(r'(?:[^"]|"")*"'),
    "--": re.compile(r"[^\n\r]*"),
}
_COMMENT_MARK = re.compile(r"/\*|\*/")
# A quoted identifier that is one plain word stays (as "word"): a quoted function name such as
# "pg_advisory_lock"(1) is still a call. Any other becomes "" (its text may hold ; or keywords).
_WORD = re.compile(r'"\w+"')


def _in_word(sql: str, at: int) -> bool:
    """Whether ``sql[at]`` continues an identifier (a$b, xE'..' is x E '..'), opening nothing."""
    return at > 0 and (sql[at - 1].isalnum() or sql[at - 1] in "_$")


def _nested_comment_end(sql: str, start: int) -> int:
    """Where the block comment opened before ``start`` ends: PostgreSQL's nest."""
    depth = 1
    for mark in _COMMENT_MARK.finditer(sql, start):
        depth += 1 if mark.group() == "/*" else -1
        if depth == 0:
            return mark.end()
    return len(sql)


def _code(sql: str) -> str:
    """``sql`` with literals and comments blanked, in lower case, one space between words."""
    parts: list[str] = []
    pos = search_from = 0
    while (found := _OPENER.search(sql, search_from)) is not None:
        opener, start = found.group(), found.start()
        if opener == "$":
            tag = _TAG.match(sql, start)
            if tag is None or _in_word(sql, start):  # $1, a$b: code
                search_from = start + 1
                continue
            opener = tag.group()
            close = sql.find(opener, tag.end())
            end = len(sql) if close < 0 else close + len(opener)
        elif opener == "/*":
            end = _nested_comment_end(sql, found.end())
        else:
            closer = opener
            if (
                opener == "'"
                and start > 0
                and sql[start - 1] in "Ee"
                and not _in_word(sql, start - 1)
            ):
                closer, start = "E'", start - 1
            closed = _CLOSERS[closer].match(sql, found.end())
            end = closed.end() if closed else len(sql)
        parts.append(sql[pos:start])
        if opener != '"':
            parts.append(" ")
        else:
            parts.append(sql[start:end] if _WORD.fullmatch(sql, start, end) else ' "" ')
        pos = search_from = end
    parts.append(sql[pos:])
    return " ".join("".join(parts).split()).lower()


# -- the checks -------------------------------------------------------------------------------
#
# On `_code`'s text: lower case, single spaces (hence the fixed-width look-behinds). Each rule
# is anchored at the start of a statement, so it fails at once on any other: the checks run on
# every session statement once the setting is on (a few microseconds for a typical one).

_TEMP = r"(?:(?:global|local) )?temp(?:orary)? "
_PG_TEMP = r'"?pg_temp"? ?\.'  # a name in pg_temp is a temporary object, as with TEMP
_IF_NOT_EXISTS = r"(?:if not exists )?"
# Statements whose effect outlives their transaction. SET LOCAL, SET TRANSACTION and SET
# CONSTRAINTS last only for the transaction: allowed.
_STATEMENTS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^listen\b"), "LISTEN"),
    (
        # PREPARE TRANSACTION 'gid' (two-phase commit) leaves the transaction to COMMIT
        # PREPARED from any session: nothing stays in this one. (`PREPARE transaction AS`
        # prepares a statement named transaction.)
        re.compile(r"^prepare\b(?! transaction ?$)"),
        "PREPARE (a named prepared statement)",
    ),
    (
        re.compile(r"^set\b(?! (?:local|transaction|constraints)\b)"),
        "SET (a session setting; SET LOCAL lasts for the transaction and is allowed)",
    ),
    (
        # HOLD is an option only between CURSOR and FOR: after FOR it is the query's.
        re.compile(
            r"^declare \S+ (?:(?:binary|asensitive|insensitive|no|scroll) )*cursor with hold\b"
        ),
        "a cursor WITH HOLD",
    ),
    (
        re.compile(
            rf"^create (?:{_TEMP}table\b|table {_IF_NOT_EXISTS}{_PG_TEMP})"
            r"(?!.*\bon commit drop\b)"
        ),
        "a temporary table that outlives the transaction (add ON COMMIT DROP)",
    ),
    (
        # No ON COMMIT DROP for these: they live as long as the server session.
        re.compile(
            rf"^create (?:or replace )?(?:{_TEMP}(?:recursive )?(?:view|sequence)\b"
            rf"|(?:materialized |recursive )?(?!table\b)\w+ {_IF_NOT_EXISTS}{_PG_TEMP})"
        ),
        "a temporary view, sequence or other object in pg_temp (it lasts as long as the "
        "server session)",
    ),
]
# SELECT ... INTO TEMP t creates a temporary table, with no ON COMMIT. INSERT INTO and MERGE
# INTO a table named temp (or one in pg_temp) create nothing.
_SELECT_INTO_TEMP = re.compile(
    r"^(?:select|with)\b.*\binto (?<!\binsert into )(?<!\bmerge into )"
    rf"(?:{_TEMP}|(?:table )?{_PG_TEMP})"
)
# Session-level advisory locks anywhere in a statement, the name bare, qualified or quoted;
# the _xact_ forms end with the transaction and are allowed.
_ADVISORY = re.compile(r'\bpg_(?:try_)?advisory_lock(?:_shared)?"? ?\(')


def session_state_in(sql: str) -> str | None:
    """What in ``sql`` needs a server session that outlives the transaction (LISTEN, PREPARE,
    a session SET, a session advisory lock, a cursor WITH HOLD, a lasting temporary table,
    view or sequence), or None. Looks at every statement of a multi-statement string."""
    text = _code(sql)
    # The `in` tests first: a plain substring search is far cheaper than a regex scan.
    if "advisory_lock" in text and _ADVISORY.search(text):
        return "a session-level advisory lock (pg_advisory_xact_lock ends with the transaction)"
    for statement in text.split(";"):
        statement = statement.lstrip(" (")
        for pattern, what in _STATEMENTS:
            if pattern.search(statement):
                return what
        if "into " in statement and _SELECT_INTO_TEMP.search(statement):
            return "SELECT ... INTO TEMP (a temporary table that outlives the transaction)"
    return None


def statement_text(sql: object, connection: Any = None) -> str:
    """The text of ``sql`` as the server will get it, for the checks.

    A str as is; bytes decoded as latin-1 (every byte one character, so the ASCII the checks
    look for is intact whatever the connection's encoding); a driver's composed SQL (psycopg's
    and psycopg2's ``sql.SQL(...).format(...)``) rendered with ``as_string(connection)``.

    Args:
        sql: what the caller passed to the session.
        connection: the driver connection to render composed SQL with (psycopg2's needs one;
            psycopg 3.2+ renders with None).

    Raises:
        UsageError: ``sql`` is of another type, or cannot be rendered. A check that cannot
            read the statement cannot tell it is safe, and the PostgreSQL drivers take
            nothing else anyway, so refusing loses no valid use.
    """
    if isinstance(sql, str):
        return sql
    if isinstance(sql, (bytes, bytearray, memoryview)):
        return bytes(sql).decode("latin-1")
    as_string = getattr(sql, "as_string", None)
    if callable(as_string):
        try:
            text = as_string(connection)
        except Exception as exc:
            raise UsageError(
                f"sql: cannot render {type(sql).__name__} with the session's connection to "
                f"check it ({exc}); server_pooler='transaction' must read every statement "
                f"before it is sent: pass a str"
            ) from exc
        if isinstance(text, str):
            return text
    raise UsageError(
        f"sql must be a str, bytes or a driver's composed SQL (psycopg sql.SQL(...)"
        f".format(...)), not {type(sql).__name__}: server_pooler='transaction' must read "
        f"every statement before it is sent"
    )


def check_statement(sql: object, connection: Any = None) -> None:
    """Refuse ``sql`` when it needs session state a transaction-mode pooler loses.

    Args:
        sql: a str, bytes or a driver's composed SQL (see `statement_text`).
        connection: the driver connection that renders composed SQL, or None.

    Raises:
        UsageError: ``sql`` needs a lasting server session, or cannot be read.
    """
    found = session_state_in(statement_text(sql, connection))
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
