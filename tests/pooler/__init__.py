"""Tests of sessionpool behind a real PgBouncer (transaction and session pool modes)."""
