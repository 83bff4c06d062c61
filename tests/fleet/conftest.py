"""Fixtures of the fleet tests: the fleet's own database on the real server, and a PgBouncer
in transaction mode in front of it (default_pool_size 10, no reserve pool)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.pgbouncer import PgBouncer
from tests.fleet.fleet import create_fleet_database, drop_fleet_database

#: Server connections PgBouncer may hold for the fleet: its whole budget on the server.
SERVER_POOL_SIZE = 10


@pytest.fixture(scope="module")
def fleet_database() -> Iterator[str]:
    name = create_fleet_database()
    yield name
    drop_fleet_database(name)


@pytest.fixture(scope="module")
def bouncer(fleet_database: str) -> Iterator[PgBouncer]:
    # reserve_pool_size 0: PgBouncer may never go beyond default_pool_size, whatever waits.
    with PgBouncer(
        dbname=fleet_database,
        pool_mode="transaction",
        default_pool_size=SERVER_POOL_SIZE,
        max_client_conn=500,
        extra={"reserve_pool_size": "0"},
    ) as pgbouncer:
        yield pgbouncer
