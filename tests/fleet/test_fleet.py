"""Fleet tests: several worker processes, each with its own sessionpool pool (max_size 10),
drive short transactions through one PgBouncer in transaction mode (default_pool_size 10).

Against the real PostgreSQL and a real PgBouncer: no errors (none about prepared statements
with any driver), the server never sees more than PgBouncer's pool, every commit is in the
table, PgBouncer's RECONNECT and PAUSE/RESUME during load cost at most the work in flight, and
a pool created before fork gives each forked worker connections of its own.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import pytest

import sessionpool
from tests.faults.pgbouncer import PgBouncer
from tests.fleet.conftest import SERVER_POOL_SIZE
from tests.fleet.fleet import FleetResult, rows_per_worker, run_fleet
from tests.fleet.worker import DRIVERS, Plan, local_port, url_driver

PROCESSES = 8
LANES = 4  # threads or tasks per process: 32 in all, against 10 server connections
DURATION = 3.0
POOL_SETTINGS = {"min_size": 1, "max_size": 10, "wait_timeout": 60.0}

pytestmark = pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")


def transaction_plan(bouncer: PgBouncer, driver: str, **changes: Any) -> Plan:
    plan = Plan(
        url=bouncer.url(url_driver(driver)),
        driver=driver,
        run_id=uuid.uuid4().hex,
        lanes=LANES,
        duration=DURATION,
        settings={**POOL_SETTINGS, "server_pooler": "transaction"},
    )
    return dataclasses.replace(plan, **changes)


def figures(result: FleetResult) -> str:
    return (
        f"{result.committed} commits in {result.elapsed:.1f} s "
        f"({result.committed / result.elapsed:,.0f}/s), {result.error_count} errors, "
        f"{result.connections_opened} client connections opened "
        f"({result.connect_errors} failed), "
        f"peak {result.peak_server_connections} server connections over {result.samples} samples"
    )


def assert_every_commit_is_stored(result: FleetResult, database: str, run_id: str) -> None:
    stored = rows_per_worker(database, run_id)
    reported = {r.worker: r.total_committed for r in result.reports if r.total_committed}
    assert stored == reported, "rows in the table differ from the commits the workers saw"


def assert_clean_run(result: FleetResult, database: str, plan: Plan) -> None:
    assert not result.fatal, result.fatal
    assert len(result.reports) == PROCESSES
    assert result.error_count == 0, result.errors
    for report in result.reports:
        assert min(report.committed) > 0, f"a lane of worker {report.worker} never committed"
    assert result.samples >= 5, "the sampler barely looked at the server"
    # The pools opened more connections than PgBouncer may open to the server: the cap below
    # is PgBouncer's doing, not a lack of demand.
    assert result.connections_opened > SERVER_POOL_SIZE, figures(result)
    assert 1 <= result.peak_server_connections <= SERVER_POOL_SIZE, figures(result)
    assert_every_commit_is_stored(result, database, plan.run_id)


@pytest.mark.parametrize("driver", DRIVERS)
def test_fleet_through_transaction_pooler(
    bouncer: PgBouncer, fleet_database: str, driver: str
) -> None:
    # psycopg would prepare the repeated statements from their 6th run; asyncpg prepares
    # every one: through a transaction pooler that fails ("prepared statement ... does not
    # exist") unless server_pooler="transaction" turns it off.
    plan = transaction_plan(bouncer, driver)
    result = run_fleet(plan, PROCESSES, fleet_database, start_method="spawn")
    print(f"{driver}: {figures(result)}")
    assert_clean_run(result, fleet_database, plan)


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_reconnect_and_pause_resume_during_load(
    bouncer: PgBouncer, fleet_database: str, driver: str
) -> None:
    servers_before: set[int] = set()
    resumed_at = [0.0]

    def disturb(go_at: float) -> None:
        time.sleep(max(0.0, go_at + 1.0 - time.monotonic()))
        servers_before.update(row["remote_pid"] for row in bouncer.admin_dicts("SHOW SERVERS"))
        bouncer.admin("RECONNECT")  # each server connection is closed once released
        time.sleep(0.5)
        bouncer.admin("PAUSE")  # returns once every transaction in flight has finished
        try:
            time.sleep(0.7)
        finally:
            bouncer.admin("RESUME")
            resumed_at[0] = time.monotonic()

    plan = transaction_plan(bouncer, driver, duration=5.0)
    result = run_fleet(plan, PROCESSES, fleet_database, start_method="spawn", during=disturb)
    print(f"{driver}, RECONNECT + PAUSE/RESUME: {figures(result)}; errors: {result.errors}")
    servers_after = {row["remote_pid"] for row in bouncer.admin_dicts("SHOW SERVERS")}

    assert not result.fatal, result.fatal
    # A closed server connection's backend may linger for a moment next to its replacement.
    assert result.peak_server_connections <= 2 * SERVER_POOL_SIZE, figures(result)
    assert servers_before, "PgBouncer held no server connection during load"
    assert not servers_before & servers_after, "RECONNECT replaced no server connection"
    # Both commands act between transactions, so no transaction should fail; at worst each
    # lane loses the one transaction it had in flight when a command landed.
    assert result.error_count <= PROCESSES * LANES, result.errors
    assert not [e for e in result.errors if "prepared statement" in e], result.errors
    for report in result.reports:
        stalled = [lane for lane, t in enumerate(report.last_commit) if t <= resumed_at[0]]
        assert not stalled, f"worker {report.worker}: lanes {stalled} stopped at the pause"
    # A commit that failed in flight may or may not have reached the server: bounds only.
    stored = rows_per_worker(fleet_database, plan.run_id)
    for report in result.reports:
        got = stored.get(report.worker, 0)
        assert report.total_committed <= got <= report.total_committed + report.error_count


def _client_ports(pool: sessionpool.Pool, count: int) -> set[int]:
    """Local ports of ``count`` of the pool's connections (all borrowed at once)."""
    leases = [pool.acquire() for _ in range(count)]
    try:
        for lease in leases:
            lease.execute("SELECT 1")
        return {local_port(lease.driver_connection.fileno()) for lease in leases}
    finally:
        for lease in leases:
            lease.release()


def _pgbouncer_client_ports(bouncer: PgBouncer) -> set[int]:
    return {int(row["port"]) for row in bouncer.admin_dicts("SHOW CLIENTS")}


def test_pool_created_before_fork_gives_each_worker_its_own_connections(
    bouncer: PgBouncer, fleet_database: str
) -> None:
    plan = transaction_plan(bouncer, "psycopg", record_ports=True)
    parent_size = 4
    pool = sessionpool.create_pool(
        plan.url, **{**plan.settings, "min_size": parent_size}, open_timeout=30.0
    )
    try:
        parent_ports = _client_ports(pool, parent_size)
        assert len(parent_ports) == parent_size
        result = run_fleet(plan, PROCESSES, fleet_database, start_method="fork", pool=pool)
        print(f"pre-fork: {figures(result)}")
        assert_clean_run(result, fleet_database, plan)

        seen: dict[int, set[int]] = {r.worker: set(r.client_ports) for r in result.reports}
        assert all(seen.values()), "a worker recorded no connection"
        for worker, ports in seen.items():
            assert not ports & parent_ports, f"worker {worker} used the parent's connections"
            for other, other_ports in seen.items():
                if other != worker:
                    assert not ports & other_ports, f"workers {worker} and {other} share one"
        # The children neither used nor ended the parent's sessions with PgBouncer.
        assert parent_ports <= _pgbouncer_client_ports(bouncer)
        assert _client_ports(pool, parent_size) == parent_ports
    finally:
        pool.close()
