"""`sessionpool top`: figures read from a Prometheus endpoint (a fake one serving what
prometheus_client renders for the sessionpool_* names), the database servers' own views, and
the failures a user meets (unreachable endpoint, malformed ENDPOINT)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg
import pymysql
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

import sessionpool
from sessionpool.cli import main
from sessionpool.top.metrics import Histogram, figures, histogram_quantile, parse
from tests.fakes.polling import eventually

PG_URL = "postgresql://postgres:top-secret-pw@127.0.0.1:5432/test"
MARIADB_URL = "mysql://root@127.0.0.1:3306/test"  # root has no password here
BOUNDS = (0.001, 0.01, 0.1, 1.0)


# -- a fake metrics endpoint ------------------------------------------------------------------


class FakePool:
    """The figures one pool exposes; every scrape adds one window of activity:
    100 acquires whose waits are 50 under 1 ms and 50 between 1 and 10 ms, 100 uses of
    20 ms each, one timeout and one connect error."""

    def __init__(self, name: str, used: int, idle: int, max_size: int, waiting: int) -> None:
        self.name, self.used, self.idle, self.max_size, self.waiting = (
            name,
            used,
            idle,
            max_size,
            waiting,
        )
        self.windows = 0

    def families(self) -> Iterator[Metric]:
        self.windows += 1
        n, pool = self.windows, [self.name]
        connections = GaugeMetricFamily(
            "sessionpool_connections", "connections by state", labels=["pool", "state"]
        )
        for state, value in (("idle", self.idle), ("used", self.used), ("opening", 1)):
            connections.add_metric([self.name, state], value)
        yield connections
        for name, value in (
            ("sessionpool_connections_max", self.max_size),
            ("sessionpool_connections_min", 1),
            ("sessionpool_pending_requests", self.waiting),
            ("sessionpool_busy_peak", self.used + 2),
        ):
            gauge = GaugeMetricFamily(name, name, labels=["pool"])
            gauge.add_metric(pool, value)
            yield gauge
        for name, value in (
            ("sessionpool_acquires", 100 * n),
            ("sessionpool_timeouts", n),
            ("sessionpool_connections_opened", 5),
        ):
            counter = CounterMetricFamily(name, name, labels=["pool"])
            counter.add_metric(pool, value)
            yield counter
        errors = CounterMetricFamily("sessionpool_errors", "errors", labels=["pool", "kind"])
        errors.add_metric([self.name, "connect"], n)
        errors.add_metric([self.name, "reset"], 2)
        yield errors
        closed = CounterMetricFamily(
            "sessionpool_connections_closed", "closed", labels=["pool", "reason"]
        )
        closed.add_metric([self.name, "idle"], 3)
        yield closed
        wait = HistogramMetricFamily("sessionpool_wait_seconds", "wait", labels=["pool"])
        wait.add_metric(pool, self._buckets([50 * n, 100 * n, 100 * n, 100 * n]), 0.3 * n)
        yield wait
        use = HistogramMetricFamily("sessionpool_use_seconds", "use", labels=["pool"])
        use.add_metric(pool, self._buckets([0, 100 * n, 100 * n, 100 * n]), 2.0 * n)
        yield use
        for name in ("sessionpool_connect_seconds", "sessionpool_reset_seconds"):
            empty = HistogramMetricFamily(name, name, labels=["pool"])
            empty.add_metric(pool, self._buckets([0, 0, 0, 0]), 0.0)
            yield empty

    @staticmethod
    def _buckets(cumulative: list[int]) -> list[tuple[str, float]]:
        pairs = [(str(bound), float(n)) for bound, n in zip(BOUNDS, cumulative, strict=True)]
        return [*pairs, ("+Inf", float(cumulative[-1]))]


class FakeCollector:
    def __init__(self, *pools: FakePool) -> None:
        self.pools = pools

    def collect(self) -> Iterator[Metric]:
        # One family per name holding every pool, as a real exporter renders it.
        merged: dict[str, Metric] = {}
        for pool in self.pools:
            for family in pool.families():
                if family.name in merged:
                    merged[family.name].samples.extend(family.samples)
                else:
                    merged[family.name] = family
        yield from merged.values()


@contextlib.contextmanager
def serve(registry: CollectorRegistry | None, status: int = 200) -> Iterator[str]:
    """An HTTP server on a free loopback port serving /metrics; yields its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry) if registry is not None else b"not here"
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def endpoint() -> Iterator[str]:
    registry = CollectorRegistry()
    registry.register(
        FakeCollector(
            FakePool("127.0.0.1:5432/orders", used=3, idle=1, max_size=10, waiting=2),
            FakePool("127.0.0.1:3306/users", used=0, idle=4, max_size=4, waiting=0),
        )
    )
    with serve(registry) as url:
        yield url


def table_row(output: str, *first_cells: str) -> list[str]:
    """The cells of the Markdown table row that starts with first_cells."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[: len(first_cells)] == list(first_cells):
            return cells
    raise AssertionError(f"no row for {first_cells!r} in:\n{output}")


# -- metrics endpoint -------------------------------------------------------------------------


def test_once_shows_every_pool_with_its_figures(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["top", endpoint, "--once", "--interval", "0.2"]) == 0
    out = capsys.readouterr().out
    header = table_row(out, "pool")
    assert header[1:] == [
        "used",
        "idle",
        "opening",
        "max",
        "waiting",
        "busy peak",
        "acquires/s",
        "timeouts",
        "errors",
        "wait p50",
        "wait p99",
        "use mean",
    ]
    orders = dict(zip(header, table_row(out, "127.0.0.1:5432/orders"), strict=True))
    assert [orders[k] for k in ("used", "idle", "opening", "max", "waiting", "busy peak")] == [
        "3",
        "1",
        "1",
        "10",
        "2",
        "5",
    ]
    # Two scrapes, one window apart: the second added 100 acquires, one timeout, one error.
    assert float(orders["acquires/s"].replace(",", "")) > 0
    assert orders["timeouts"] == "2 (+1)"
    assert orders["errors"] == "4 (+1)"  # connect 2 + reset 2, of which connect grew by 1
    # The window's waits: 50 in (0, 1 ms], 50 in (1, 10 ms]; p99 interpolates in the second.
    assert orders["wait p50"] == "1.00 ms"
    assert orders["wait p99"] == "9.82 ms"
    assert orders["use mean"] == "20.00 ms"
    users = dict(zip(header, table_row(out, "127.0.0.1:3306/users"), strict=True))
    assert (users["used"], users["idle"], users["max"], users["waiting"]) == ("0", "4", "4", "0")
    assert "2 pool(s)" in out and "over the last" in out


def test_first_scrape_alone_gives_lifetime_percentiles_and_no_rate(endpoint: str) -> None:
    from sessionpool.top.metrics import fetch

    rows = figures(parse(fetch(endpoint)))
    orders = next(r for r in rows if r.pool.endswith("orders"))
    assert orders.acquires == 100 and orders.acquires_per_s is None
    assert orders.new_timeouts == 0 and orders.window is None
    assert orders.wait_p50 == pytest.approx(0.001)


def test_rates_come_from_the_difference_of_two_scrapes() -> None:
    text_before = "\n".join(
        [
            "# TYPE sessionpool_acquires counter",
            'sessionpool_acquires_total{pool="p"} 100.0',
        ]
    )
    text_after = text_before.replace("100.0", "400.0")
    rows = figures(parse(text_after, at=13.0), parse(text_before, at=10.0))
    assert rows[0].acquires_per_s == pytest.approx(100.0)
    # A restarted pool (counter back near 0) counts from zero, never negative.
    restarted = figures(
        parse(text_before.replace("100.0", "30.0"), at=13.0), parse(text_after, at=10.0)
    )
    assert restarted[0].acquires_per_s == pytest.approx(10.0)


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    h = Histogram({0.001: 50.0, 0.01: 100.0, float("inf"): 100.0}, total=0.3, count=100.0)
    assert histogram_quantile(0.5, h) == pytest.approx(0.001)
    assert histogram_quantile(0.99, h) == pytest.approx(0.001 + 0.009 * 49 / 50)
    assert histogram_quantile(0.25, h) == pytest.approx(0.0005)
    # Past the last finite bound: the largest finite bound, as histogram_quantile() does.
    tail = Histogram({0.01: 10.0, float("inf"): 100.0}, total=50.0, count=100.0)
    assert histogram_quantile(0.99, tail) == pytest.approx(0.01)
    assert histogram_quantile(0.5, Histogram()) is None


def test_unreachable_endpoint_exits_1_with_a_clear_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/metrics"
    assert main(["top", url, "--once", "--interval", "0.1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"sessionpool top: cannot reach {url}" in captured.err
    assert "refused" in captured.err.lower()


def test_endpoint_answering_an_error_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with serve(None, status=404) as url:
        assert main(["top", url, "--once", "--interval", "0.1"]) == 1
    assert "answered HTTP 404" in capsys.readouterr().err


def test_malformed_endpoint_is_a_usage_error_that_never_echoes_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["top", "ftp://admin:hunter2@example.com/x", "--once"]) == 2
    err = capsys.readouterr().err
    assert "ENDPOINT must be a metrics URL" in err
    assert "hunter2" not in err


def test_top_reads_a_real_pool_through_the_prometheus_exporter(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """End to end: a pool on the real PostgreSQL, exported by sessionpool.observe.prometheus,
    two connections held and one caller waiting."""
    exporter = pytest.importorskip("sessionpool.observe.prometheus")
    registry = CollectorRegistry()
    pool = sessionpool.create_pool(
        "postgresql://postgres@127.0.0.1:5432/test", min_size=2, max_size=2, name="top-e2e"
    )
    held = [pool.acquire(), pool.acquire()]
    waiter = threading.Thread(target=lambda: pool.acquire(timeout=60).release())
    try:
        exporter.register(pool, registry=registry)
        server = exporter.serve(0, registry=registry)
        waiter.start()
        eventually(lambda: pool.stats().waiting == 1, "the third acquire waits", timeout=30)
        try:
            assert main(["top", server.url, "--once", "--interval", "0.2"]) == 0
        finally:
            server.close()
    finally:
        for lease in held:
            lease.release()
        waiter.join(30)
        pool.close()
    out = capsys.readouterr().out
    header = table_row(out, "pool")
    row = dict(zip(header, table_row(out, "top-e2e"), strict=True))
    assert (row["used"], row["idle"], row["max"], row["waiting"]) == ("2", "0", "2", "1")
    assert row["busy peak"] == "2" and row["timeouts"] == "0"


# -- database servers -------------------------------------------------------------------------


def test_postgresql_view_groups_sessions_and_names_the_longest_idle_transaction(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with psycopg.connect(
        "dbname=test user=postgres host=127.0.0.1", application_name="sp-top-test"
    ) as idle_in_tx:
        idle_in_tx.execute("SELECT 1")  # leaves the session idle in transaction
        assert main(["top", PG_URL, "--once"]) == 0
    out = capsys.readouterr().out
    assert "top-secret-pw" not in out
    assert "postgresql://postgres:***@127.0.0.1:5432/test" in out
    row = table_row(out, "sp-top-test")
    assert row[1] == "idle in transaction" and int(row[2]) >= 1 and row[3] == "postgres"
    # Ours is not necessarily the oldest idle transaction on a shared server, but one is named.
    assert re.search(r"longest idle in transaction: pid \d+ \(user \w+", out), out
    assert re.search(r"other client sessions of max_connections \d+", out)


def test_mariadb_view_groups_sessions_by_user_and_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test")
    try:
        with other.cursor() as cursor:
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        assert main(["top", MARIADB_URL, "--once"]) == 0
    finally:
        other.close()
    out = capsys.readouterr().out
    assert "mysql://root@127.0.0.1:3306/test" in out
    # Other root sessions (other tests on this shared server) may be in other commands.
    row = table_row(out, "root", "Sleep")
    assert int(row[2]) >= 1 and "test" in row[3].split(",")
    assert re.search(r"longest open transaction: thread \d+ \(user \w+", out), out
    assert re.search(r"MariaDB/MySQL 10\.\S+ at", out)


def test_unreachable_database_exits_1_with_one_line_without_the_password() -> None:
    """Run as a user runs it (no pytest log capture): the pool's own connect warning must not
    repeat the message top prints."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:top-secret-pw@127.0.0.1:{port}/test"
    src = str(Path(__file__).resolve().parent.parent / "src")
    done = subprocess.run(
        [sys.executable, "-m", "sessionpool", "top", url, "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith(
        f"sessionpool top: cannot connect to postgresql://postgres:***@127.0.0.1:{port}/test: "
    )
    assert "refused" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "top-secret-pw" not in done.stderr


def test_rejected_login_exits_1_without_the_password(capsys: pytest.CaptureFixture[str]) -> None:
    url = "mysql://root:top-secret-pw@127.0.0.1:3306/test"  # root's real password is empty
    assert main(["top", url, "--once"]) == 1
    err = capsys.readouterr().err
    assert "cannot connect to mysql://root:***@127.0.0.1:3306/test" in err
    assert "Access denied" in err and "top-secret-pw" not in err


# -- the live view ----------------------------------------------------------------------------


def test_live_view_refreshes_on_a_terminal_and_ctrl_c_exits_0(endpoint: str) -> None:
    """In a pseudo-terminal, as a user runs it: frames keep coming (the second one has a
    rate), and Ctrl-C ends the view with status 0."""
    import fcntl
    import os
    import select
    import signal
    import struct
    import subprocess
    import sys
    import termios
    import time
    from pathlib import Path

    src = str(Path(__file__).resolve().parent.parent / "src")
    leader, follower = os.openpty()
    # A wide terminal, so the 13 columns never fold a figure over two lines.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 220, 0, 0))
    env = {**os.environ, "PYTHONPATH": src, "TERM": "xterm-256color", "COLUMNS": "220"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sessionpool", "top", endpoint, "--interval", "0.2"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        # The first frame has no rate yet ("-"); a refreshed one shows acquires per second.
        while not re.search(rb"over the last \d", seen) and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                seen += os.read(leader, 65536)
        assert re.search(rb"over the last \d", seen), seen.decode(errors="replace")[-2000:]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        os.close(leader)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
    assert "127.0.0.1:5432/orders" in text and "127.0.0.1:3306/users" in text
    assert "rates from the next refresh" in text  # the first frame, before any rate


def test_without_the_cli_extra_top_says_what_to_install(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "rich" else real_find_spec(name, *args),
    )
    assert main(["top", endpoint, "--once", "--interval", "0.1"]) == 1
    err = capsys.readouterr().err
    assert "sessionpool top needs rich: pip install 'sessionpool[cli]'" in err


def test_a_password_in_a_metrics_url_is_never_shown(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://scraper:top-secret-pw@127.0.0.1:{port}/metrics"
    assert main(["top", url, "--once", "--interval", "0.1"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach http://scraper:***@127.0.0.1:{port}/metrics" in err
    assert "top-secret-pw" not in err


def test_a_malformed_database_url_is_a_usage_error_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["top", "postgresql://app:hunter2@db:99999/app", "--once"]) == 2
    error = capsys.readouterr().err
    assert "port must be" in error and "hunter2" not in error
