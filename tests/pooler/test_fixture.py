"""The PgBouncer fixture itself: it pools, its admin console answers, and stop really stops it."""

from __future__ import annotations

import socket

import psycopg

from tests.faults.pgbouncer import PgBouncer


def backend_pid_of_each(bouncer: PgBouncer, clients: int) -> set[int]:
    pids = set()
    for _ in range(clients):
        with psycopg.connect(bouncer.dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            assert row is not None
            pids.add(int(row[0]))
    return pids


def test_transaction_mode_shares_server_connections(pgbouncer_transaction: PgBouncer) -> None:
    # Five clients in turn, one server connection needed: PgBouncer hands each the same one.
    assert len(backend_pid_of_each(pgbouncer_transaction, 5)) == 1
    pools = [row for row in pgbouncer_transaction.admin_dicts("SHOW POOLS")]
    mine = [row for row in pools if row["database"] == "test"]
    assert mine and mine[0]["pool_mode"] == "transaction"
    assert pgbouncer_transaction.admin("SHOW VERSION")[0][0].startswith("PgBouncer")


def test_session_mode_is_reported(pgbouncer_session: PgBouncer) -> None:
    backend_pid_of_each(pgbouncer_session, 1)
    mine = [row for row in pgbouncer_session.admin_dicts("SHOW POOLS") if row["database"] == "test"]
    assert mine and mine[0]["pool_mode"] == "session"


def test_stop_frees_the_port_and_extra_settings_apply() -> None:
    with PgBouncer(pool_mode="session", extra={"max_client_conn": "7"}) as bouncer:
        port = bouncer.port
        config = {row[0]: row[1] for row in bouncer.admin("SHOW CONFIG")}
        assert config["max_client_conn"] == "7"
        assert bouncer.url() == f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
        bouncer.stop()
        assert bouncer.pid() is None
        with socket.socket() as probe:
            probe.settimeout(5)
            assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert not bouncer.root.exists()
