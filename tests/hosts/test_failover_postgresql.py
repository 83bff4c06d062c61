"""Multi-host PostgreSQL URLs against real servers (throwaway clusters, never the shared one):
failover past a dead or silent first host, past a first host stopped mid-life, and
target_session_attrs picking the writable (or the read-only) server whatever the order.

psycopg and psycopg2 (threaded pools) and psycopg's AsyncConnection hand libpq the list;
asyncpg is walked host by host by the connector. Each must end up on the right server.
"""

from __future__ import annotations

import pytest

from sessionpool import AllHostsFailed
from tests.faults.pgcluster import ThrowawayPostgres, free_port
from tests.hosts.conftest import chain_texts, open_error, pool_of, scheme

KINDS = ["psycopg", "psycopg2", "asyncpg", "psycopg-async"]
PASSWORD = "pw-c4n4ry"


def url_for(kind: str, *ports: int, query: str = "") -> str:
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return f"{scheme(kind, 'postgresql')}://postgres@{hosts}/postgres{query}"


@pytest.mark.parametrize("kind", KINDS)
def test_a_dead_first_host_is_skipped(kind: str, dead_port: int, first: ThrowawayPostgres) -> None:
    with pool_of(kind, url_for(kind, dead_port, first.port), connect_timeout=5.0) as pool:
        assert pool.server_port() == first.port


@pytest.mark.parametrize("kind", KINDS)
def test_a_silent_first_host_costs_one_connect_timeout_not_all(
    kind: str, silent_port: int, first: ThrowawayPostgres
) -> None:
    # The silent host holds the connect until the timeout (2 s, libpq's least); were the
    # timeout one budget for both hosts, nothing would be left for the second one.
    with pool_of(kind, url_for(kind, silent_port, first.port), connect_timeout=2.0) as pool:
        assert pool.server_port() == first.port


@pytest.mark.parametrize("kind", ["psycopg", "asyncpg"])
def test_libpqs_query_form(kind: str, dead_port: int, first: ThrowawayPostgres) -> None:
    url = (
        f"{scheme(kind, 'postgresql')}://postgres@/postgres"
        f"?host=127.0.0.1,127.0.0.1&port={dead_port},{first.port}"
    )
    with pool_of(kind, url, connect_timeout=5.0) as pool:
        assert pool.server_port() == first.port


@pytest.mark.parametrize("kind", KINDS)
def test_every_host_down_names_them_all_and_never_the_password(kind: str) -> None:
    ports = (free_port(), free_port())
    url = url_for(kind, *ports).replace("postgres@", f"postgres:{PASSWORD}@")
    error = open_error(kind, url, connect_timeout=5.0)
    texts = chain_texts(error)
    for port in ports:
        assert str(port) in texts, f"{port} not named in {texts}"
    assert PASSWORD not in texts
    if kind == "asyncpg":  # walked by the connector: its error, the driver's chained
        while not isinstance(error, AllHostsFailed):
            assert error.__cause__ is not None, texts
            error = error.__cause__
        assert error.hosts == tuple(f"127.0.0.1:{port}" for port in ports)
        assert isinstance(error.__cause__, OSError)


@pytest.mark.parametrize("kind", KINDS)
def test_a_first_host_stopped_mid_life_hands_over_to_the_second(
    kind: str, first: ThrowawayPostgres, second: ThrowawayPostgres
) -> None:
    # ping_interval=0: every checkout checks its connection, so the pool finds the dead ones
    # and opens new ones, which must go to the second host.
    url = url_for(kind, first.port, second.port)
    with pool_of(kind, url, connect_timeout=5.0, ping_interval=0.0) as pool:
        assert pool.server_port() == first.port
        first.stop()
        try:
            assert pool.server_port() == second.port
            assert pool.server_port() == second.port
        finally:
            first.start()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("read_only_first", [True, False], ids=["ro-first", "rw-first"])
def test_read_write_target_lands_on_the_writable_server(
    kind: str, read_only_first: bool, read_only: ThrowawayPostgres, second: ThrowawayPostgres
) -> None:
    ports = (read_only.port, second.port) if read_only_first else (second.port, read_only.port)
    url = url_for(kind, *ports, query="?target_session_attrs=read-write")
    with pool_of(kind, url, connect_timeout=5.0) as pool:
        assert pool.server_port() == second.port


@pytest.mark.parametrize("kind", KINDS)
def test_read_only_target_lands_on_the_read_only_server(
    kind: str, read_only: ThrowawayPostgres, second: ThrowawayPostgres
) -> None:
    url = url_for(kind, second.port, read_only.port, query="?target_session_attrs=read-only")
    with pool_of(kind, url, connect_timeout=5.0) as pool:
        assert pool.server_port() == read_only.port


@pytest.mark.parametrize("kind", KINDS)
def test_without_a_target_the_read_only_first_host_serves(
    kind: str, read_only: ThrowawayPostgres, second: ThrowawayPostgres
) -> None:
    # The control for the two tests above: the read-only server is up and is chosen first
    # when no session kind is asked for, so only target_session_attrs moved them.
    with pool_of(kind, url_for(kind, read_only.port, second.port), connect_timeout=5.0) as pool:
        assert pool.server_port() == read_only.port


@pytest.mark.parametrize("kind", KINDS)
def test_no_writable_server_is_an_error(kind: str, read_only: ThrowawayPostgres) -> None:
    url = url_for(kind, read_only.port, read_only.port, query="?target_session_attrs=read-write")
    error = open_error(kind, url, connect_timeout=5.0)
    if kind == "asyncpg":
        assert isinstance(error, AllHostsFailed), repr(error)
        assert "is a read-write server" in str(error)
        assert type(error.__cause__).__name__ == "TargetServerAttributeNotMatched"
    else:  # libpq's own verdict on each host
        assert str(error).count("session is read-only") >= 2, chain_texts(error)
