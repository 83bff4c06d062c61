"""The `sessionpool` command line and its demo: run in a subprocess as a user runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sessionpool import PoolStats
from sessionpool import demo as demo_module
from sessionpool.cli import main
from sessionpool.demo import Totals, check_totals, percentile

SRC = Path(__file__).resolve().parent.parent / "src"
DEMO_TIMEOUT = 60.0  # seconds; the quick demo takes about 2


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m sessionpool ARGS`` on this checkout's sources."""
    paths = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(
        [sys.executable, "-m", "sessionpool", *args],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        env=env,
    )


def summary_field(stdout: str, label: str) -> str:
    """The value of one ``  label   value`` line of the demo's summary."""
    found = re.search(rf"^  {re.escape(label)} +(.+)$", stdout, re.MULTILINE)
    assert found, f"no {label!r} line in:\n{stdout}"
    return found.group(1)


def integers(text: str) -> list[int]:
    return [int(number.replace(",", "")) for number in re.findall(r"\d[\d,]*", text)]


def milliseconds(text: str) -> list[float]:
    return [float(number) for number in re.findall(r"(\d+\.\d+) ms", text)]


# -- the quick demo, end to end -------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_demo() -> subprocess.CompletedProcess[str]:
    return run_cli("demo", "--quick")


def test_quick_demo_succeeds_quietly(quick_demo: subprocess.CompletedProcess[str]) -> None:
    assert quick_demo.returncode == 0, quick_demo.stdout + quick_demo.stderr
    assert quick_demo.stderr == ""  # no traceback from a worker thread, no pool warning
    assert "summary" in quick_demo.stdout
    assert "demo ok:" in quick_demo.stdout
    assert "FAILED" not in quick_demo.stdout


def test_quick_demo_rows_equal_committed_cycles(
    quick_demo: subprocess.CompletedProcess[str],
) -> None:
    out = quick_demo.stdout
    cycles = integers(summary_field(out, "cycles"))[0]
    rows, counter = integers(summary_field(out, "rows in table"))
    assert cycles > 0
    assert rows == cycles
    assert counter == cycles
    assert summary_field(out, "errors") == "0"


def test_quick_demo_reports_waits_and_timeouts(
    quick_demo: subprocess.CompletedProcess[str],
) -> None:
    out = quick_demo.stdout
    assert re.fullmatch(r"\d[\d,]* \(acquire timeout 1 s\)", summary_field(out, "timeouts"))
    waits = milliseconds(summary_field(out, "acquire wait"))
    assert len(waits) == 4  # p50, p95, p99, max
    assert waits == sorted(waits)
    # 16 workers on at most 4 connections: most acquires must have queued.
    acquires, waited, handed_off, pool_timeouts = integers(summary_field(out, "pool counters"))
    assert waited > acquires // 2
    assert handed_off <= waited
    assert pool_timeouts == integers(summary_field(out, "timeouts"))[0]


def test_quick_demo_shows_live_state_as_log_lines(
    quick_demo: subprocess.CompletedProcess[str],
) -> None:
    # Not a terminal here, so one line per half second instead of a redrawn line.
    assert "\r" not in quick_demo.stdout
    live = re.findall(
        r"^ *[\d.]+ s  busy (\d+)  idle (\d+)  waiting +(\d+)  opened (\d+)  cycles +([\d,]+)",
        quick_demo.stdout,
        re.MULTILINE,
    )
    assert len(live) >= 2, quick_demo.stdout
    for busy, idle, _waiting, opened, _cycles in live:
        assert int(busy) + int(idle) == int(opened) <= 4
    cycles = [int(line[4].replace(",", "")) for line in live]
    assert cycles == sorted(cycles) and cycles[-1] > 0


def test_quick_demo_closes_the_pool_empty_and_cleans_up(
    quick_demo: subprocess.CompletedProcess[str],
) -> None:
    out = quick_demo.stdout
    assert summary_field(out, "pool closed") == "0 open, 0 opening, 0 busy, 0 waiting"
    opened, closed = integers(summary_field(out, "connections"))
    assert 2 <= opened <= 4  # min_size 2 at start, grown to at most max_size 4
    assert closed == opened
    assert summary_field(out, "status()").endswith("Current Checked out connections: 0")
    database = re.search(r"database +(\S+) \(WAL", out)
    assert database, out
    assert not Path(database.group(1)).parent.exists()


# -- the command line -----------------------------------------------------------------------


def test_help_lists_the_commands() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: sessionpool")
    assert re.search(r"^ +demo +\S", result.stdout, re.MULTILINE)


def test_unknown_command_is_a_usage_error() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr
    assert result.stdout == ""


def test_demo_help_names_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--workers", "--seconds", "--quick", "--max-size", "--hold-ms"):
        assert option in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "required: COMMAND"),
        (["demo", "--workers", "0"], "--workers: must be 1 to 1000"),
        (["demo", "--max-size", "four"], "--max-size: not a whole number"),
        (["demo", "--seconds", "0"], "--seconds: must be more than 0"),
        (["demo", "--seconds", "nan"], "--seconds: must be a finite number"),
        (["demo", "--hold-ms", "-1"], "--hold-ms: must be 0 or more"),
        (["demo", "--quick", "--seconds", "3"], "not allowed with argument"),
    ],
)
def test_bad_arguments_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_demo_exits_1_when_a_check_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Pretend a committed row went missing: the demo must say so and fail.
    monkeypatch.setattr(demo_module, "count_rows", lambda pool: (-1, -1))
    assert main(["demo", "--seconds", "0.3", "--workers", "3", "--max-size", "2"]) == 1
    out = capsys.readouterr().out
    assert "demo FAILED: -1 rows and counter -1 for" in out


# -- the demo's checks ----------------------------------------------------------------------

AGREEING_STATS = PoolStats(
    min_size=2,
    max_size=4,
    hard_cap=4,
    opened=4,
    busy=0,
    idle=4,
    opening=0,
    waiting=0,
    acquires=4,
    waits=3,
    handoffs=3,
    timeouts=1,
    exhausted=0,
    connections_opened=4,
    connections_closed=0,
    connect_errors=0,
    retired_idle=0,
    retired_expired=0,
    keepalive_failures=0,
    leaks_reported=0,
    reclaimed=0,
)
AGREEING_TOTALS = Totals(cycles=3, timeouts=1, errors=0, first_error=None, waits=[0.1, 0.2, 0.3])


def test_checks_pass_when_everything_agrees() -> None:
    assert check_totals(AGREEING_TOTALS, 3, 3, AGREEING_STATS) == []


@pytest.mark.parametrize(
    ("totals", "rows", "counter", "stats", "expected"),
    [
        (AGREEING_TOTALS, 2, 3, AGREEING_STATS, "2 rows and counter 3 for 3 committed cycles"),
        (AGREEING_TOTALS, 3, 4, AGREEING_STATS, "3 rows and counter 4 for 3 committed cycles"),
        (
            replace(AGREEING_TOTALS, errors=1, first_error="OperationalError: locked"),
            3,
            3,
            AGREEING_STATS,
            "1 cycle(s) failed",
        ),
        (
            AGREEING_TOTALS,
            3,
            3,
            replace(AGREEING_STATS, acquires=5),
            "pool counted 5 acquires, workers made 4",
        ),
        (
            AGREEING_TOTALS,
            3,
            3,
            replace(AGREEING_STATS, timeouts=0),
            "pool counted 0 timeouts, workers saw 1",
        ),
    ],
)
def test_checks_catch_disagreement(
    totals: Totals, rows: int, counter: int, stats: PoolStats, expected: str
) -> None:
    assert check_totals(totals, rows, counter, stats) == [expected]


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([5.0], 0.99, 5.0),
        ([float(n) for n in range(1, 101)], 0.50, 50.0),
        ([float(n) for n in range(1, 101)], 0.95, 95.0),
        ([float(n) for n in range(1, 101)], 1.00, 100.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 0.51, 3.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    assert percentile(values, fraction) == expected
