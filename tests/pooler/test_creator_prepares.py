"""server_pooler='transaction' and connections from a creator (docs/server_pooler.md:
psycopg 3 "sets it [prepare_threshold] to None on connections from a creator").

psycopg documents subclassing Connection (psycopg_pool takes a connection_class for it).
A creator returning such a subclass from the application's own module is not recognised
as psycopg (the registry looks at the class's module only), gets the generic driver, and
the setting silently does nothing: psycopg prepares server-side from a query's 6th run."""

from __future__ import annotations

import psycopg

import sessionpool
from sessionpool import ConfigError

DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


class AppConnection(psycopg.Connection):  # type: ignore[type-arg]
    """An application's connection class (e.g. with helpers of its own)."""


def test_a_psycopg_connection_subclass_from_a_creator_has_prepares_off() -> None:
    try:
        pool = sessionpool.create_pool(
            creator=lambda: AppConnection.connect(DSN),
            min_size=1,
            max_size=1,
            server_pooler="transaction",
            open_timeout=30,
        )
    except ConfigError:
        return  # refusing what it cannot adapt would keep the promise too
    with pool:
        with pool.acquire() as conn:
            for _ in range(8):  # psycopg's default prepare_threshold is 5
                conn.execute("SELECT 1 + %s", (1,)).fetchone()
            prepared = conn.execute(
                "SELECT count(*) FROM pg_prepared_statements", prepare=False
            ).fetchone()[0]
            threshold = conn.driver_connection.prepare_threshold
            conn.rollback()
        assert threshold is None
        assert prepared == 0, "a server-side prepared statement was made in transaction mode"
