"""Regressions from the review of the server_pooler='transaction' statement checks.

Bypasses (SQL keeping server-session state that went through: composed or bytes SQL, E''
strings, SELECT INTO TEMP, temporary views and sequences, pg_temp objects, a quoted
advisory-lock call) must be refused before anything is sent; false refusals (E'' strings,
$q1$ tags, nested comments, a CTE named hold, PREPARE TRANSACTION, pg_temp tables ON COMMIT
DROP) must run, for real, through a PgBouncer in transaction mode.
"""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2.sql
import pytest
from psycopg import sql

import sessionpool
from sessionpool import Pool, UsageError
from sessionpool._server_pooler import session_state_in
from tests.faults.pgbouncer import PgBouncer

# Temporary objects the refusals must not have created: visible in pg_class from any session.
NAMES = "relname LIKE 'sessionpool_review_%'"


@pytest.fixture(scope="module")
def pool(pgbouncer_transaction: PgBouncer) -> Iterator[Pool]:
    with sessionpool.create_pool(
        pgbouncer_transaction.url("psycopg"),
        min_size=0,
        max_size=2,
        server_pooler="transaction",
        wait_timeout=30,
    ) as pool:
        yield pool


# -- bypasses: refused, and nothing reaches the server -----------------------------------------

REFUSED = [
    pytest.param(sql.SQL("LISTEN {}").format(sql.Identifier("jobs")), "LISTEN", id="composed"),
    pytest.param(sql.SQL("SET search_path TO public"), "SET", id="sql-object"),
    pytest.param(b"SET search_path TO public", "SET", id="bytes"),
    pytest.param(bytearray(b"LISTEN jobs"), "LISTEN", id="bytearray"),
    pytest.param("SELECT E'\\''; LISTEN jobs; SELECT 'x'", "LISTEN", id="e-string-quote"),
    pytest.param("SELECT e'\\\\'; LISTEN jobs", "LISTEN", id="e-string-backslash"),
    pytest.param("SELECT 1 AS a INTO TEMP TABLE sessionpool_review_t1", "SELECT ... INTO TEMP"),
    pytest.param("select 1 as a into temporary sessionpool_review_t2", "SELECT ... INTO TEMP"),
    pytest.param("SELECT 1 AS a INTO pg_temp.sessionpool_review_t3", "SELECT ... INTO TEMP"),
    pytest.param("CREATE TEMP VIEW sessionpool_review_v AS SELECT 1", "a temporary view"),
    pytest.param("CREATE OR REPLACE TEMPORARY VIEW sessionpool_review_v2 AS SELECT 1", "a temp"),
    pytest.param("CREATE TEMP SEQUENCE sessionpool_review_s", "a temporary view, sequence"),
    pytest.param("CREATE TABLE pg_temp.sessionpool_review_t4 (x int)", "a temporary table"),
    pytest.param('CREATE TABLE "pg_temp".sessionpool_review_t5 (x int)', "a temporary table"),
    pytest.param("CREATE SEQUENCE pg_temp.sessionpool_review_s2", "a temporary view, sequence"),
    pytest.param(
        "CREATE FUNCTION pg_temp.sessionpool_review_f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "a temporary view, sequence or other object in pg_temp",
        id="pg_temp-function",
    ),
    pytest.param('SELECT "pg_advisory_lock"(1)', "a session-level advisory lock"),
    pytest.param('SELECT pg_catalog."pg_try_advisory_lock" (1)', "a session-level advisory"),
    # A prepared statement named transaction, not two-phase commit.
    pytest.param("PREPARE transaction AS SELECT 1", "PREPARE (a named prepared statement)"),
    # a$$b is an identifier: no dollar quote hides the LISTEN.
    pytest.param("SELECT 1 AS a$$b; LISTEN jobs", "LISTEN", id="dollar-in-identifier"),
]


@pytest.mark.parametrize(("statement", "what"), REFUSED)
def test_state_keeping_sql_is_refused_before_sending(
    pool: Pool, statement: object, what: str
) -> None:
    with pool.session() as session:
        with pytest.raises(UsageError, match="cannot work behind a transaction-mode pooler") as e:
            session.execute(statement)  # type: ignore[arg-type]
        assert str(e.value).startswith(what)
        # Nothing was sent: the transaction goes on, with no channel, setting or object.
        assert session.fetchone("SELECT count(*) FROM pg_listening_channels()") == (0,)
        assert session.fetchone("SHOW search_path") == ('"$user", public',)
        assert session.fetchone(f"SELECT count(*) FROM pg_class WHERE {NAMES}") == (0,)


def test_composed_sql_is_refused_by_every_session_method(pool: Pool) -> None:
    statement = sql.SQL("SELECT pg_advisory_lock({})").format(sql.Literal(7))
    with pool.session() as session:
        for method in (session.execute, session.fetch, session.fetchone, session.add):
            with pytest.raises(UsageError, match="advisory lock"):
                method(statement)  # type: ignore[operator]
        with pytest.raises(UsageError, match="advisory lock"):
            session.executemany(statement, [()])  # type: ignore[arg-type]
        assert session.pending == 0
        assert session.fetchone("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == (0,)


def test_sql_that_cannot_be_read_is_refused_with_its_type(pool: Pool) -> None:
    """Neither str, bytes nor composed SQL: the check cannot read it, so it refuses it (the
    PostgreSQL drivers would not take it anyway)."""

    class Query:
        def __str__(self) -> str:
            return "LISTEN jobs"

    with pool.session() as session, pytest.raises(UsageError, match=r"sql must be a str.*Query"):
        session.execute(Query())  # type: ignore[arg-type]


# -- false refusals: valid SQL with no lasting session state runs ------------------------------


def test_e_string_with_escaped_quote_then_a_string_with_set_is_allowed(pool: Pool) -> None:
    with pool.session() as session:
        row = session.fetchone("SELECT E'don\\'t', 'ready; set; go'")
    assert row == ("don't", "ready; set; go")


def test_dollar_quoted_string_with_a_digit_in_its_tag_is_allowed(pool: Pool) -> None:
    with pool.session() as session:
        row = session.fetchone("SELECT $q1$a; LISTEN b$q1$")
    assert row == ("a; LISTEN b",)


def test_nested_block_comment_is_allowed(pool: Pool) -> None:
    with pool.session() as session:
        row = session.fetchone("/* outer /* inner */ ; LISTEN jobs */ SELECT 1")
    assert row == (1,)


def test_a_cursor_over_a_cte_named_hold_is_allowed(pool: Pool) -> None:
    with pool.session() as session:
        session.execute("DECLARE c CURSOR FOR WITH hold AS (SELECT 1 AS x) SELECT x FROM hold")
        assert session.fetchone("FETCH 1 FROM c") == (1,)
        # WITHOUT HOLD is the default, spelled out.
        session.execute("DECLARE d NO SCROLL CURSOR WITHOUT HOLD FOR SELECT 2")
        assert session.fetchone("FETCH 1 FROM d") == (2,)


def test_transaction_scoped_temp_tables_and_a_table_named_temp_are_allowed(pool: Pool) -> None:
    with pool.session() as session:
        session.execute("CREATE TABLE pg_temp.sessionpool_review_ok (x int) ON COMMIT DROP")
        session.execute("CREATE TEMP TABLE temp (x int) ON COMMIT DROP")
        session.execute("INSERT INTO temp VALUES (1)")
        session.execute("WITH v AS (SELECT 2 AS x) INSERT INTO temp SELECT x FROM v")
        session.execute("INSERT INTO pg_temp.sessionpool_review_ok SELECT x FROM temp")
        assert session.fetchone("SELECT sum(x) FROM sessionpool_review_ok") == (3,)
    with pool.session() as session:
        assert session.fetchone(f"SELECT count(*) FROM pg_class WHERE {NAMES}") == (0,)


def test_composed_and_bytes_sql_that_keeps_no_state_runs(pool: Pool) -> None:
    statement = sql.SQL("SELECT {}::text, count(*) FROM {}").format(
        sql.Literal("LISTEN; SET x"), sql.Identifier("pg_class")
    )
    with pool.session() as session:
        text, count = session.fetchone(statement)  # type: ignore[arg-type]
        assert text == "LISTEN; SET x" and count > 0
        assert session.fetchone(b"SELECT 'caf\xc3\xa9'") == ("café",)  # type: ignore[arg-type]


def test_prepare_transaction_is_not_taken_for_a_prepared_statement() -> None:
    # Checked without a server: the test server runs with max_prepared_transactions = 0.
    assert session_state_in("PREPARE TRANSACTION 'order-42'") is None
    assert session_state_in("prepare transaction $$order; 42$$") is None


# -- the other drivers' composed SQL ------------------------------------------------------------


def test_psycopg2_composed_sql_is_rendered_with_the_connection(
    pgbouncer_transaction: PgBouncer,
) -> None:
    """psycopg2 renders an Identifier only with a connection: the session borrows one first."""
    listen = psycopg2.sql.SQL("LISTEN {}").format(psycopg2.sql.Identifier("jobs"))
    count = psycopg2.sql.SQL("SELECT count(*) FROM {}").format(psycopg2.sql.Identifier("pg_class"))
    with sessionpool.create_pool(
        pgbouncer_transaction.url("psycopg2"), max_size=1, server_pooler="transaction"
    ) as pool:
        with pool.session() as session:
            with pytest.raises(UsageError, match="LISTEN cannot work"):
                session.execute(listen)  # type: ignore[arg-type]
            assert session.fetchone(count)[0] > 0  # type: ignore[arg-type]
        assert pool.busy == 0


async def test_async_sessions_check_composed_sql(pgbouncer_transaction: PgBouncer) -> None:
    async with sessionpool.create_async_pool(
        pgbouncer_transaction.url("psycopg"), max_size=1, server_pooler="transaction"
    ) as pool:
        async with pool.session() as session:
            with pytest.raises(UsageError, match="SET \\(a session setting"):
                session.add(sql.SQL("SET search_path TO {}").format(sql.Identifier("x")))  # type: ignore[arg-type]
            with pytest.raises(UsageError, match="LISTEN cannot work"):
                await session.execute(sql.SQL("LISTEN {}").format(sql.Identifier("jobs")))  # type: ignore[arg-type]
            row = await session.fetchone(sql.SQL("SELECT {}").format(sql.Literal(5)))  # type: ignore[arg-type]
            assert row == (5,)
        assert pool.busy == 0


async def test_composed_sql_a_driver_cannot_render_is_refused(
    pgbouncer_transaction: PgBouncer,
) -> None:
    # psycopg's composed SQL cannot be rendered with an asyncpg connection (nor sent by it).
    async with sessionpool.create_async_pool(
        pgbouncer_transaction.url("asyncpg"), max_size=1, server_pooler="transaction"
    ) as pool:
        async with pool.session() as session:
            with pytest.raises(UsageError, match="sql: cannot render Composed"):
                await session.execute(sql.SQL("SELECT {}").format(sql.Identifier("x")))  # type: ignore[arg-type]
            assert await session.fetchone("SELECT 1") == (1,)
        assert pool.busy == 0
