"""Fixtures for the server-pooler tests: a private PgBouncer per module, in either pool mode."""

from tests.faults.pgbouncer import pgbouncer_session, pgbouncer_transaction

__all__ = ["pgbouncer_session", "pgbouncer_transaction"]
