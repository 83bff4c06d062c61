"""Sessions behind server_pooler='transaction' refuse SQL that needs a lasting server session.

The recognizer is table-tested on its own (what it must catch, what it must let through:
the transaction-scoped forms, keywords inside strings and comments); then real sessions,
threaded and async, refuse before sending and keep working afterwards.
"""

from __future__ import annotations

import pytest

import sessionpool
from sessionpool import UsageError
from sessionpool._server_pooler import session_state_in
from tests.faults.pgbouncer import PgBouncer

REFUSED = [
    ("LISTEN jobs", "LISTEN"),
    ("  listen jobs", "LISTEN"),
    ("PREPARE q AS SELECT 1", "PREPARE"),
    ("SET search_path TO app", "SET (a session setting"),
    ("SET SESSION statement_timeout = 5", "SET (a session setting"),
    ("set role app", "SET (a session setting"),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET (a session setting"),
    ("SELECT pg_advisory_lock(42)", "a session-level advisory lock"),
    ("SELECT pg_try_advisory_lock_shared(1, 2)", "a session-level advisory lock"),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "a cursor WITH HOLD"),
    ("CREATE TEMP TABLE t (x int)", "a temporary table"),
    ("create local temporary table t (x int) on commit preserve rows", "a temporary table"),
    ("SELECT 1; SET search_path TO app", "SET (a session setting"),
    ("/* leading comment */ LISTEN jobs", "LISTEN"),
]
ALLOWED = [
    "SELECT 1",
    "SET LOCAL search_path TO app",
    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
    "SET CONSTRAINTS ALL DEFERRED",
    "SELECT pg_advisory_xact_lock(42)",
    "UPDATE t SET x = 1",
    "DECLARE c CURSOR FOR SELECT 1",
    "CREATE TEMP TABLE t (x int) ON COMMIT DROP",
    "SELECT 'LISTEN jobs; SET x = 1'",
    "SELECT 1 -- SET search_path\n",
    'SELECT "pg_advisory_lock(" FROM t',
    "SELECT $$ PREPARE q $$",
    "INSERT INTO log (note) VALUES ('call pg_advisory_lock(1) later')",
]


@pytest.mark.parametrize(("sql", "what"), REFUSED)
def test_session_state_is_recognized(sql: str, what: str) -> None:
    found = session_state_in(sql)
    assert found is not None and found.startswith(what), (sql, found)


@pytest.mark.parametrize("sql", ALLOWED)
def test_transaction_scoped_sql_passes(sql: str) -> None:
    assert session_state_in(sql) is None


def test_sessions_refuse_before_sending(pgbouncer_transaction: PgBouncer) -> None:
    with sessionpool.create_pool(
        pgbouncer_transaction.url("psycopg"), server_pooler="transaction"
    ) as pool:
        with pool.session() as session:
            for method in (session.execute, session.fetch, session.fetchone, session.add):
                with pytest.raises(UsageError, match="LISTEN cannot work behind a transaction"):
                    method("LISTEN jobs")
            with pytest.raises(UsageError, match="advisory lock"):
                session.executemany("SELECT pg_advisory_lock(%s)", [(1,), (2,)])
            # Refused before sending: the transaction is intact and the session goes on.
            session.execute("SET LOCAL statement_timeout = '5s'")
            assert session.fetchone("SHOW statement_timeout")[0] == "5s"
            assert session.fetchone("SELECT pg_try_advisory_xact_lock(7)")[0] is True
        assert pool.busy == 0


def test_sessions_of_other_pools_are_not_checked(pgbouncer_session: PgBouncer) -> None:
    for server_pooler in ("session", None):
        with (
            sessionpool.create_pool(
                pgbouncer_session.url("psycopg"), server_pooler=server_pooler
            ) as pool,
            pool.session() as session,
        ):
            session.execute("SET application_name = 'not refused'")
            assert session.fetchone("SHOW application_name")[0] == "not refused"


async def test_async_sessions_refuse_before_sending(pgbouncer_transaction: PgBouncer) -> None:
    async with sessionpool.create_async_pool(
        pgbouncer_transaction.url("asyncpg"), server_pooler="transaction"
    ) as pool:
        async with pool.session() as session:
            with pytest.raises(UsageError, match=r"PREPARE .* cannot work behind"):
                await session.execute("PREPARE q AS SELECT 1")
            with pytest.raises(UsageError, match=r"SET \(a session setting"):
                await session.fetch("SET search_path TO public")
            assert await session.fetchone("SELECT 1 + $1::int", (1,)) == (2,)
        assert pool.busy == 0
