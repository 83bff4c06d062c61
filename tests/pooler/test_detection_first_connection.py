"""The pooler detection (pools created without server_pooler) must not break a pool's first
connection: it "runs once per pool, on its first connection, outside any transaction, and
leaves none open" (drivers/base.py), and is a warning, never an error."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import psycopg2

import sessionpool

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def _psycopg_in_transaction() -> Any:
    # A creator that sets something up with a query and leaves the implicit transaction
    # open (psycopg's default is not autocommit): the pool's reset handles that.
    connection = psycopg.connect(DSN)
    connection.execute("SELECT 1")
    return connection


def _psycopg2_in_transaction() -> Any:
    connection = psycopg2.connect(DSN)
    connection.cursor().execute("SELECT 1")
    return connection


def test_psycopg_creator_leaving_a_transaction_open_still_gives_a_pool() -> None:
    with (
        sessionpool.create_pool(
            creator=_psycopg_in_transaction, min_size=1, max_size=1, open_timeout=30
        ) as pool,
        pool.acquire() as conn,
    ):
        cursor = conn.cursor()
        cursor.execute("SELECT 2")
        assert cursor.fetchone()[0] == 2


def test_psycopg2_creator_leaving_a_transaction_open_still_gives_a_pool() -> None:
    with (
        sessionpool.create_pool(
            creator=_psycopg2_in_transaction, min_size=1, max_size=1, open_timeout=30
        ) as pool,
        pool.acquire() as conn,
    ):
        cursor = conn.cursor()
        cursor.execute("SELECT 2")
        assert cursor.fetchone()[0] == 2


def test_psycopg_creator_with_a_transaction_open_under_server_pooler_session() -> None:
    """The control: the same creator with the check off (server_pooler set) works."""
    with (
        sessionpool.create_pool(
            creator=_psycopg_in_transaction,
            min_size=1,
            max_size=1,
            open_timeout=30,
            server_pooler="session",
        ) as pool,
        pool.acquire() as conn,
    ):
        cursor = conn.cursor()
        cursor.execute("SELECT 2")
        assert cursor.fetchone()[0] == 2


def test_async_psycopg_creator_leaving_a_transaction_open_still_gives_a_pool() -> None:
    async def creator() -> Any:
        connection = await psycopg.AsyncConnection.connect(DSN)
        await connection.execute("SELECT 1")
        return connection

    async def main() -> int:
        async with (
            sessionpool.create_async_pool(
                creator=creator, min_size=1, max_size=1, open_timeout=30
            ) as pool,
            pool.acquire() as conn,
        ):
            cursor = await conn.execute("SELECT 2")
            return int((await cursor.fetchone())[0])

    assert asyncio.run(main()) == 2
