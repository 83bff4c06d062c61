"""`sessionpool check URL` against the real PostgreSQL and MariaDB servers and SQLite files,
through cli.main: what it reports is compared with what the server says when asked directly.

Server limits are varied per session (libpq ``options``, MariaDB ``init_command``) so the
shared servers are never reconfigured. These tests need the servers: they fail, never skip.
"""

from __future__ import annotations

import gc
import json
import re
import sqlite3
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from sessionpool.check import Timing, format_report, run_check
from sessionpool.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from tests.drivers.proxy import Proxy
from tests.fakes.polling import eventually

PASSWORD = "s3cret-Pa55word"  # trust auth / no-password root: the servers ignore it
POSTGRESQL = "postgresql://postgres:{password}@127.0.0.1:5432/test"
MARIADB = "mysql://root@127.0.0.1:3306/test"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["check", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    status, out, err = run(capsys, "--json", *args)
    assert status == EXIT_OK, err
    data: dict[str, Any] = json.loads(out)
    return data


def postgresql_value(sql: str) -> Any:
    with psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test") as conn:
        row = conn.execute(sql).fetchone()
        assert row is not None
        return row[0]


def mariadb_value(sql: str) -> Any:
    conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test")
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
            assert row is not None
            return row[0]
    finally:
        conn.close()


def advice_of(data: dict[str, Any], kind: str) -> dict[str, Any]:
    found = [advice for advice in data["advice"] if advice["kind"] == kind]
    assert len(found) == 1, f"expected one {kind!r} in {data['advice']}"
    return found[0]


# -- PostgreSQL -------------------------------------------------------------------------------


def test_postgresql_report_shows_timings_limits_and_never_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(capsys, POSTGRESQL.format(password=PASSWORD))
    assert status == EXIT_OK, err
    assert PASSWORD not in out + err
    assert out.startswith("sessionpool check postgresql://postgres:***@127.0.0.1:5432/test\n")
    version = postgresql_value("SHOW server_version")
    assert f"server   PostgreSQL {version}" in out
    for row in ("connect", "ping", "select 1", "reset on return"):
        # Each row: label, then min, median and max with their units.
        assert re.search(rf"^  {row} +(\S+ (us|ms|s) *){{3}}$", out, re.MULTILINE), out
    max_connections = postgresql_value("SHOW max_connections")
    assert re.search(rf"^  max_connections +{max_connections}$", out, re.MULTILINE), out
    assert re.search(r"^  idle_session_timeout +", out, re.MULTILINE)
    assert "advice for max_size=10, min_size=1, 1 process" in out


def test_postgresql_facts_are_the_sessions_own(capsys: pytest.CaptureFixture[str]) -> None:
    # Limits set for this session only (libpq options), as a role or database default would.
    options = "-c idle_session_timeout=90s -c statement_timeout=2500"
    url = (
        POSTGRESQL.format(password=PASSWORD) + "?max_size=4&options=" + options.replace(" ", "%20")
    )
    data = run_json(capsys, "--samples", "3", url)
    server = data["server"]
    assert server["product"] == "PostgreSQL"
    assert server["max_connections"] == int(postgresql_value("SHOW max_connections"))
    reserved = int(postgresql_value("SHOW superuser_reserved_connections"))
    assert server["reserved_connections"] == reserved
    assert server["idle_session_timeout"] == 90.0
    assert server["statement_timeout"] == 2.5
    assert server["connections"] >= 1  # at least the check's own connection
    assert data["server_settings"]["idle_session_timeout"] == "90000 ms"
    assert data["pool_settings"]["max_size"] == 4
    for name in ("connect", "ping", "select 1", "reset"):
        timing = data["timings"][name]
        assert len(timing["samples"]) == 3
        assert 0 < timing["min"] <= timing["median"] <= timing["max"]
    assert server["connect_time"] == data["timings"]["connect"]["median"]
    # min_size 1 stays open, so it needs keepalives below the limit; the rest max_idle.
    idle = advice_of(data, "idle_limit")
    assert idle["settings"] == {"max_idle": 72.0, "keepalive_interval": 45.0}
    assert "idle_session_timeout" in idle["sentence"]


def test_postgresql_max_connections_shared_by_processes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = run_json(capsys, "--processes", "50", POSTGRESQL.format(password=PASSWORD))
    usable = int(postgresql_value("SHOW max_connections")) - int(
        postgresql_value("SHOW superuser_reserved_connections")
    )
    limit = advice_of(data, "server_limit")
    assert limit["severity"] == "warning"
    assert (
        f"10 x 50 processes = 500 connections, more than the server's {usable}"
        in (limit["sentence"])
    )
    assert limit["settings"] == {"max_size": max(1, int(usable * 0.8 / 50))}


def test_check_closes_every_connection_it_opened(capsys: pytest.CaptureFixture[str]) -> None:
    name = f"check-{uuid.uuid4().hex[:12]}"
    url = POSTGRESQL.format(password="") + f"?application_name={name}"
    with warnings.catch_warnings(record=True) as caught:
        # psycopg warns when a connection is garbage-collected while still open.
        warnings.simplefilter("always", ResourceWarning)
        status, _, err = run(capsys, "--samples", "4", url)
        gc.collect()
    assert status == EXIT_OK, err
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    count_sql = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{name}'"
    # A closed backend leaves pg_stat_activity a moment after the client hangs up.
    eventually(lambda: postgresql_value(count_sql) == 0, "the check's backends gone", timeout=10)


def test_an_async_driver_url_is_checked_with_the_blocking_driver(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    data = run_json(capsys, "--samples", "1", url)
    assert data["driver"].startswith("psycopg ")
    assert "instead of asyncpg" in data["note"]
    assert data["server"]["product"] == "PostgreSQL"


# -- MariaDB ----------------------------------------------------------------------------------


def test_mariadb_report_and_its_idle_limit(capsys: pytest.CaptureFixture[str]) -> None:
    # wait_timeout for this session only, as a server setting would give it.
    url = MARIADB + "?min_size=0&init_command=SET%20SESSION%20wait_timeout%3D120"
    data = run_json(capsys, "--samples", "2", url)
    server = data["server"]
    assert server["product"] == "MariaDB"
    assert server["version"] == mariadb_value("SELECT VERSION()")
    assert server["max_connections"] == int(mariadb_value("SELECT @@max_connections"))
    assert server["idle_session_timeout"] == 120.0
    assert server["connections"] >= 1
    assert data["server_settings"]["wait_timeout"] == "120 s"
    idle = advice_of(data, "idle_limit")
    assert idle["settings"] == {"max_idle": 96.0}  # min_size 0: nothing kept, no keepalive
    assert "wait_timeout" in idle["sentence"]


def test_mariadb_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "--samples", "2", MARIADB)
    assert status == EXIT_OK, err
    assert "server   MariaDB " in out
    global_wait = mariadb_value("SELECT @@SESSION.wait_timeout")
    assert re.search(rf"^  wait_timeout +{global_wait} s$", out, re.MULTILINE), out
    assert re.search(r"^  client connections now +\d+$", out, re.MULTILINE), out


# -- SQLite -----------------------------------------------------------------------------------


def test_sqlite_reports_version_and_journal_mode(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "check.db"
    direct = sqlite3.connect(path)
    direct.execute("PRAGMA journal_mode=WAL")  # persistent: the check must see it
    direct.close()
    status, out, err = run(capsys, f"sqlite:///{path}")
    assert status == EXIT_OK, err
    assert f"server   SQLite {sqlite3.sqlite_version}" in out
    assert re.search(r"^  journal_mode +wal$", out, re.MULTILINE), out
    # Opening an SQLite file costs microseconds: no advice to keep connections for it.
    assert "Opening a connection costs" not in out
    assert "Nothing in the server's limits conflicts" in out


# -- failures and usage -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        POSTGRESQL.format(password=PASSWORD).replace(":5432", ":1"),
        f"mysql://root:{PASSWORD}@127.0.0.1:1/test",
    ],
)
def test_unreachable_server_exits_1_with_a_clear_message(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    status, out, err = run(capsys, url)
    assert status == EXIT_FAILURE
    assert out == ""
    assert PASSWORD not in err
    masked = url.replace(PASSWORD, "***")
    assert err.startswith(f"sessionpool check: cannot connect to {masked}: "), err
    assert err.count("\n") == 1  # one line, whatever the driver's message looked like


def test_a_hung_server_ends_the_check_within_connect_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results: list[int] = []
    with Proxy("127.0.0.1", 5432) as proxy:
        proxy.blackhole()  # accepts, then never answers: the server looks hung
        url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{proxy.port}/test?connect_timeout=2"
        runner = threading.Thread(target=lambda: results.append(main(["check", url])))
        runner.start()
        runner.join(60)  # generous: the limit under test is 2 s (x samples at worst)
        assert not runner.is_alive(), "check kept waiting on a hung server"
    err = capsys.readouterr().err
    assert results == [EXIT_FAILURE]
    assert err.startswith("sessionpool check: cannot connect to postgresql://postgres:***@"), err
    assert PASSWORD not in err


@pytest.mark.parametrize(
    "args",
    [
        ["not a url"],
        ["nosuchdb://host/db"],
        ["postgresql://127.0.0.1/test?max_size=many"],
        ["--samples", "0", "sqlite://"],
        [],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    status, out, err = run(capsys, *args)
    assert status == EXIT_USAGE
    assert out == ""
    assert err.strip()


# -- the report's own pieces ------------------------------------------------------------------


def test_timing_figures() -> None:
    timing = Timing((0.003, 0.001, 0.002, 0.010))
    assert (timing.min, timing.median, timing.max) == (0.001, 0.0025, 0.010)
    assert timing.as_dict()["samples"] == (0.003, 0.001, 0.002, 0.010)


def test_run_check_and_format_report_in_process(tmp_path: Path) -> None:
    report = run_check(f"sqlite:///{tmp_path / 'direct.db'}?max_size=3", samples=2)
    assert report.config.max_size == 3
    assert set(report.timings) == {"connect", "ping", "select 1", "reset"}
    text = format_report(report)
    assert "advice for max_size=3, min_size=1, 1 process" in text
    assert text.splitlines()[0] == f"sessionpool check sqlite:///{tmp_path / 'direct.db'}"
