"""The connectors' host walk without servers: order, the first host that answers wins, the
error naming every host (never the password) chained to the last driver error, per-host
arguments, the attempt count the async pool's time limit uses, and the driver choices (libpq
gets the list, MySQL refuses target_session_attrs)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sessionpool import AllHostsFailed, ConfigError
from sessionpool.drivers import failover
from sessionpool.drivers.async_base import AsyncURLConnector, AsyncURLDriver, ExecutorConnector
from sessionpool.drivers.async_registry import async_driver_for_url
from sessionpool.drivers.base import URLConnector, URLDriver
from sessionpool.drivers.failover import Attempt
from sessionpool.drivers.registry import driver_for_url
from sessionpool.factory import connector_for
from sessionpool.url import parse_url

PASSWORD = "pw-c4n4ry"


class Refused(Exception):
    """What the scripted driver raises for a host that is down."""


class ScriptedDriver(URLDriver):
    """Opens a connection (a dict of its arguments) for hosts in ``up``; refuses the others
    with a message echoing the password, as some drivers do."""

    name = "scripted"

    def __init__(self, up: set[str]) -> None:
        super().__init__(None)
        self.up = up
        self.tried: list[tuple[Any, Any, Any]] = []

    def arguments_from_url(self, url: Any, connect_args: dict[str, Any]) -> dict[str, Any]:
        values = {"host": url.host, "port": url.port, "password": url.password}
        values.update(url.query)
        return values

    def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        self.tried.append(
            (arguments.get("host"), arguments.get("port"), arguments.get("target_session_attrs"))
        )
        if arguments.get("host") not in self.up:
            raise Refused(f"connection refused (password={arguments['password']})\nsecond line")
        return dict(arguments)


class AsyncScriptedDriver(AsyncURLDriver):
    name = "scripted-async"

    def __init__(self, up: set[str]) -> None:
        super().__init__(None)
        self.sync = ScriptedDriver(up)

    def arguments_from_url(self, url: Any, connect_args: dict[str, Any]) -> dict[str, Any]:
        return self.sync.arguments_from_url(url, connect_args)

    async def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        await asyncio.sleep(0)
        return self.sync.open(arguments, user, password)


URL3 = f"scripted://app:{PASSWORD}@h1:1,h2:2,h3/db"


def test_the_first_host_that_answers_wins_and_the_rest_are_not_tried() -> None:
    driver = ScriptedDriver(up={"h2", "h3"})
    connector = URLConnector(parse_url(URL3), driver, {})
    connection = connector.connect()
    assert (connection["host"], connection["port"]) == ("h2", 2)
    assert driver.tried == [("h1", 1, None), ("h2", 2, None)]
    # the next connect starts from the first host again (no round robin)
    driver.up.add("h1")
    assert connector.connect()["host"] == "h1"


def test_a_host_without_a_port_gets_the_drivers_default() -> None:
    driver = ScriptedDriver(up={"h3"})
    connection = URLConnector(parse_url(URL3), driver, {}).connect()
    assert connection["host"] == "h3" and "port" not in connection


def test_all_hosts_down_names_each_never_the_password_and_chains_the_last() -> None:
    driver = ScriptedDriver(up=set())
    connector = URLConnector(parse_url(URL3), driver, {})
    with pytest.raises(AllHostsFailed) as caught:
        connector.connect()
    error = caught.value
    text = str(error)
    assert "could not connect to any of 3 host(s)" in text
    for label in ("h1:1: Refused: connection refused", "h2:2: Refused", "h3: Refused"):
        assert label in text
    assert "second line" not in text  # one line per host
    assert error.hosts == ("h1:1", "h2:2", "h3")
    assert isinstance(error.__cause__, Refused)
    assert "h3" in driver.tried[-1]
    for shown in (text, repr(error), str(error.__cause__), repr(error.__cause__.args)):
        assert PASSWORD not in shown


def test_a_single_host_url_raises_the_drivers_own_error() -> None:
    driver = ScriptedDriver(up=set())
    connector = URLConnector(parse_url(f"scripted://app:{PASSWORD}@h1:1/db"), driver, {})
    with pytest.raises(Refused) as caught:
        connector.connect()
    assert PASSWORD not in str(caught.value)
    assert connector.connect_attempts() == 1


async def test_the_async_connector_walks_the_hosts_the_same_way() -> None:
    driver = AsyncScriptedDriver(up={"h3"})
    connector = AsyncURLConnector(parse_url(URL3), driver, {})
    connection = await connector.connect()
    assert connection["host"] == "h3"
    assert [host for host, _, _ in driver.sync.tried] == ["h1", "h2", "h3"]
    driver.sync.up.clear()
    with pytest.raises(AllHostsFailed) as caught:
        await connector.connect()
    assert caught.value.hosts == ("h1:1", "h2:2", "h3")
    assert PASSWORD not in str(caught.value)
    assert connector.connect_attempts() == 3


async def test_an_async_walk_stops_when_cancelled() -> None:
    started = asyncio.Event()
    tried: list[Attempt] = []

    async def hang(attempt: Attempt) -> Any:
        tried.append(attempt)
        started.set()
        await asyncio.sleep(3600)

    walk = asyncio.ensure_future(
        failover.connect_first_async([Attempt("a", 1), Attempt("b", 2)], hang)
    )
    await asyncio.wait_for(started.wait(), 10)
    walk.cancel()
    with pytest.raises(asyncio.CancelledError):
        await walk
    assert [attempt.host for attempt in tried] == ["a"]  # b was never tried


def test_prefer_standby_is_two_passes_in_url_order() -> None:
    hosts = [("a", 1), ("b", None)]
    assert failover.plan(hosts, "prefer-standby") == [
        Attempt("a", 1, "standby"),
        Attempt("b", None, "standby"),
        Attempt("a", 1, "any"),
        Attempt("b", None, "any"),
    ]
    assert failover.plan(hosts, "read-write") == [
        Attempt("a", 1, "read-write"),
        Attempt("b", None, "read-write"),
    ]
    assert [a.label for a in failover.plan([("::1", 5432), (None, 5)], "standby")] == [
        "[::1]:5432 (standby)",
        "default:5 (standby)",
    ]


def test_target_session_attrs_goes_to_each_attempt_and_counts_attempts() -> None:
    driver = ScriptedDriver(up={"h2"})
    url = parse_url("scripted://h1:1,h2:2/db?target_session_attrs=prefer-standby")
    connector = URLConnector(url, driver, {})
    connector.connect()
    assert driver.tried == [("h1", 1, "standby"), ("h2", 2, "standby")]
    assert connector.connect_attempts() == 4


# -- the real drivers' choices (no connection is opened) ---------------------------------------


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_libpq_drivers_get_the_list_in_libpqs_form(driver: str) -> None:
    url = f"postgresql+{driver}://u:{PASSWORD}@h1:5432,[::1],%2Ftmp:5433/db?target_session_attrs=read-write"
    connector = connector_for(url)
    assert connector.arguments["host"] == "h1,::1,/tmp"
    assert connector.arguments["port"] == "5432,,5433"
    assert connector.arguments["target_session_attrs"] == "read-write"
    assert connector._attempts is None  # libpq walks the list itself
    assert connector.connect_attempts() == 3


async def test_async_psycopg_gets_the_list_and_asyncpg_is_walked_by_the_pool() -> None:
    url = parse_url("postgresql://u@h1:1,h2:2/db?target_session_attrs=read-write")
    psycopg_driver = async_driver_for_url("postgresql", "psycopg")
    assert psycopg_driver is not None
    psycopg_connector = AsyncURLConnector(url, psycopg_driver, {})
    assert (psycopg_connector.arguments["host"], psycopg_connector.arguments["port"]) == (
        "h1,h2",
        "1,2",
    )
    asyncpg_driver = async_driver_for_url("postgresql", "asyncpg")
    assert asyncpg_driver is not None
    asyncpg_connector = AsyncURLConnector(url, asyncpg_driver, {})
    aimed = asyncpg_driver.arguments_for_host(
        asyncpg_connector.arguments, Attempt("h2", 2, "read-write")
    )
    assert (aimed["host"], aimed["port"], aimed["target_session_attrs"]) == ("h2", 2, "read-write")
    assert asyncpg_connector.connect_attempts() == 2


@pytest.mark.parametrize("scheme", ["mysql", "mysql+mysqldb", "mariadb+pymysql"])
def test_mysql_refuses_target_session_attrs(scheme: str) -> None:
    url = f"{scheme}://root:{PASSWORD}@h1,h2/test?target_session_attrs=read-write"
    with pytest.raises(ConfigError) as caught:
        connector_for(url)
    assert "target_session_attrs is a PostgreSQL (libpq) setting" in str(caught.value)
    assert PASSWORD not in str(caught.value)
    with pytest.raises(ConfigError, match="target_session_attrs"):
        connector_for(f"{scheme}://root@h1/test", {"target_session_attrs": "read-write"})


def test_aiomysql_refuses_target_session_attrs() -> None:
    driver = async_driver_for_url("mysql", "aiomysql")
    assert driver is not None
    with pytest.raises(ConfigError, match="target_session_attrs is a PostgreSQL"):
        AsyncURLConnector(parse_url("mysql://root@h1,h2/test?target_session_attrs=any"), driver, {})


def test_mysql_aims_a_path_at_the_unix_socket() -> None:
    driver = driver_for_url("mysql", "pymysql")
    arguments = driver.arguments_from_url(
        parse_url("mysql://root@h1:3306,%2Frun%2Fx.sock/test"), {}
    )
    on_socket = driver.arguments_for_host(arguments, Attempt("/run/x.sock", None))
    assert on_socket["unix_socket"] == "/run/x.sock"
    assert "host" not in on_socket and "port" not in on_socket
    on_tcp = driver.arguments_for_host(on_socket, Attempt("h1", 3306))
    assert (on_tcp["host"], on_tcp["port"]) == ("h1", 3306) and "unix_socket" not in on_tcp


def test_a_blocking_driver_under_an_async_pool_counts_its_hosts() -> None:
    connector = ExecutorConnector(connector_for("mysql://root@h1,h2,h3/test"), 2)
    try:
        assert connector.connect_attempts() == 3
    finally:
        connector._executor.shutdown(wait=False)
