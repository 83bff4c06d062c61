"""server_pooler='session' behaves like a direct connection: a lease keeps one server session.

Behind a session-mode PgBouncer, session state set in one transaction is there in the next on
the same lease, and the pool's own resets (including the full one) work as they do directly.
"""

from __future__ import annotations

import sessionpool
from tests.faults.pgbouncer import PgBouncer


def test_session_state_survives_transactions_on_one_lease(pgbouncer_session: PgBouncer) -> None:
    with sessionpool.create_pool(
        pgbouncer_session.url("psycopg"), min_size=2, server_pooler="session"
    ) as pool:
        with pool.acquire() as conn:
            assert conn.prepare_threshold == 5  # psycopg's prepares stay on: they hold here
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            conn.execute("SET application_name = 'kept'")
            conn.execute("CREATE TEMP TABLE notes (x int)")
            conn.commit()
            for round_ in range(10):  # past psycopg's prepare threshold, across transactions
                conn.execute("INSERT INTO notes VALUES (%s)", (round_,))
                conn.commit()
            assert conn.execute("SHOW application_name").fetchone()[0] == "kept"
            assert conn.execute("SELECT count(*) FROM notes").fetchone()[0] == 10
            assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
            conn.commit()
        with pool.session(tag=None) as session:
            session.execute("SET search_path TO public")  # not refused in session mode
            session.execute("LISTEN jobs")


def test_full_reset_and_tags_work_in_session_mode(pgbouncer_session: PgBouncer) -> None:
    with sessionpool.create_pool(
        pgbouncer_session.url("psycopg2"),
        min_size=1,
        max_size=1,
        server_pooler="session",
        reset_on_return="full",
    ) as pool:
        conn = pool.acquire()
        cursor = conn.cursor()
        cursor.execute("SET application_name = 'borrower'")
        conn.commit()
        pool.release(conn, tag="app=a")
        with pool.acquire(tag="app=a") as conn:
            cursor = conn.cursor()
            cursor.execute("SHOW application_name")
            assert cursor.fetchone()[0] == ""  # DISCARD ALL cleared it
            assert conn.tag == "app=a"


async def test_asyncpg_in_session_mode_keeps_its_statement_cache(
    pgbouncer_session: PgBouncer,
) -> None:
    async with sessionpool.create_async_pool(
        pgbouncer_session.url("asyncpg"), min_size=2, server_pooler="session"
    ) as pool:
        for round_ in range(20):
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT $1::int * 2", round_) == 2 * round_
        async with pool.acquire() as conn:
            # Named, cached statements on this server session: fine when it is kept.
            named = "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE '__asyncpg%'"
            assert await conn.fetchval(named) >= 1
