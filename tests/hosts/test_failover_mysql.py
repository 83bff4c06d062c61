"""Multi-host MySQL/MariaDB URLs against real servers: the connector walks the hosts (no
MySQL driver does), for PyMySQL, mysqlclient and aiomysql. Past a dead, silent or missing
first host, past a first host stopped mid-life (a throwaway MariaDB, never the shared one,
which only serves as the second host), and one error naming every host when all are down.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sessionpool import AllHostsFailed
from tests.faults.mariadbserver import ThrowawayMariaDB
from tests.faults.pgcluster import free_port
from tests.hosts.conftest import chain_texts, open_error, pool_of, scheme

KINDS = ["pymysql", "mysqlclient", "aiomysql", "pymysql-async"]
#: The machine's shared MariaDB: only connected to, as the host that takes over.
SHARED_PORT = 3306
PASSWORD = "pw-c4n4ry"


def url_for(kind: str, *hosts: str) -> str:
    return f"{scheme(kind, 'mysql')}://root@{','.join(hosts)}/test"


@pytest.fixture(scope="module")
def throwaway() -> Iterator[ThrowawayMariaDB]:
    server = ThrowawayMariaDB()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.mark.parametrize("kind", KINDS)
def test_a_dead_first_host_is_skipped(kind: str, dead_port: int) -> None:
    url = url_for(kind, f"127.0.0.1:{dead_port}", f"127.0.0.1:{SHARED_PORT}")
    with pool_of(kind, url, connect_timeout=5.0) as pool:
        assert pool.server_port() == SHARED_PORT


@pytest.mark.parametrize("kind", KINDS)
def test_a_silent_first_host_costs_one_connect_timeout(kind: str, silent_port: int) -> None:
    # Each host gets the driver's connect_timeout (2 s here) on its own.
    url = url_for(kind, f"127.0.0.1:{silent_port}", f"127.0.0.1:{SHARED_PORT}")
    with pool_of(kind, url, connect_timeout=2.0) as pool:
        assert pool.server_port() == SHARED_PORT


def test_pymysql_gets_its_read_timeout_back_after_the_bounded_greeting() -> None:
    # The greeting was read under connect_timeout (1 s); a query of the borrower's may take
    # longer, as the caller's read_timeout (None: no limit) says.
    url = url_for("pymysql", f"127.0.0.1:{SHARED_PORT}")
    with pool_of("pymysql", url, connect_timeout=1.0) as pool, pool.pool.acquire() as lease:
        cursor = lease.cursor()
        cursor.execute("SELECT SLEEP(1.5), @@port")
        assert cursor.fetchone()[1] == SHARED_PORT


def test_a_missing_unix_socket_first_then_tcp() -> None:
    url = url_for("pymysql", "%2Fnonexistent%2Fmysqld.sock", f"127.0.0.1:{SHARED_PORT}")
    with pool_of("pymysql", url, connect_timeout=5.0) as pool:
        assert pool.server_port() == SHARED_PORT


@pytest.mark.parametrize("kind", KINDS)
def test_every_host_down_names_them_all_and_never_the_password(kind: str) -> None:
    ports = (free_port(), free_port())
    url = url_for(kind, *(f"127.0.0.1:{port}" for port in ports)).replace(
        "root@", f"root:{PASSWORD}@"
    )
    error = open_error(kind, url, connect_timeout=5.0)
    texts = chain_texts(error)
    assert PASSWORD not in texts
    while not isinstance(error, AllHostsFailed):
        assert error.__cause__ is not None, texts
        error = error.__cause__
    assert error.hosts == tuple(f"127.0.0.1:{port}" for port in ports)
    for port in ports:
        assert f"127.0.0.1:{port}: OperationalError" in str(error)
    assert type(error.__cause__).__name__ == "OperationalError"
    assert error.__cause__.args[0] in (2002, 2003)  # the driver's "can't connect", as is


@pytest.mark.parametrize("kind", KINDS)
def test_a_first_host_stopped_mid_life_hands_over_to_the_second(
    kind: str, throwaway: ThrowawayMariaDB
) -> None:
    url = url_for(kind, f"127.0.0.1:{throwaway.port}", f"127.0.0.1:{SHARED_PORT}")
    with pool_of(kind, url, connect_timeout=5.0, ping_interval=0.0) as pool:
        assert pool.server_port() == throwaway.port
        throwaway.stop()
        try:
            # the checkout's ping finds the connection dead; the new one goes to the second
            assert pool.server_port() == SHARED_PORT
            assert pool.server_port() == SHARED_PORT
        finally:
            throwaway.start()
