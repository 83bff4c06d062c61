"""`sessionpool bench`: the quick run writes a Markdown table with a row per measured pool and
a PNG bar chart; missing peers are skipped and named; the benchmarks/ scripts still run."""

from __future__ import annotations

import io
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sessionpool.bench import aio, threaded
from sessionpool.bench.common import ChartPanel
from sessionpool.bench.report import OURS, write_chart
from sessionpool.bench.runner import BenchOptions, run_bench
from sessionpool.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BENCH_TIMEOUT = 300.0  # seconds; the quick run takes 5 to 10 on this 2-core machine


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    paths = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT,
        env=env,
        cwd=cwd,
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def table_rows(markdown: str, heading: str) -> list[str]:
    """First cells of the rows of the table under ``heading``."""
    lines = markdown.split(heading, 1)[1].splitlines()
    rows, in_table = [], False
    for line in lines:
        if line.startswith("|"):
            in_table = True
            rows.append(line.strip("|").split("|")[0].strip())
        elif in_table:
            break
    return rows[2:]  # minus the header and the alignment row


def bar_pixels(path: Path) -> int:
    """Pixels painted in sessionpool's bar colour."""
    from matplotlib.image import imread

    image = imread(path)
    red, green, blue = (int(OURS[i : i + 2], 16) / 255 for i in (1, 3, 5))
    close = (
        (abs(image[..., 0] - red) < 0.02)
        & (abs(image[..., 1] - green) < 0.02)
        & (abs(image[..., 2] - blue) < 0.02)
    )
    return int(close.sum())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("bench")
    done = run_cli("-m", "sessionpool", "bench", "--quick", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


def test_quick_bench_writes_a_table_row_per_measured_pool(quick_run: tuple[Path, str]) -> None:
    out, stdout = quick_run
    markdown = (out / "bench.md").read_text(encoding="utf-8")
    assert f"wrote {out / 'bench.md'}" in stdout and f"wrote {out / 'bench.png'}" in stdout
    measured_threaded = [c.name for c in threaded.build_contestants() if c.open is not None]
    assert {"floor", "fair-floor", "sessionpool"} <= set(measured_threaded)
    assert table_rows(markdown, "### (a) uncontended acquire+release, 1 thread") == [
        *measured_threaded,
        *[c.name for c in threaded.build_contestants() if c.open is None],
    ]
    b_rows = table_rows(markdown, "### (b) 16 threads, 4 connections")
    assert [r for r in b_rows if r in measured_threaded] == [
        n for n in measured_threaded if n not in ("floor", "floor-explicit")
    ]
    measured_async = [c.name for c in aio.contestants_for(aio.Settings()) if c.open_ab]
    assert {"floor", "sessionpool"} <= set(measured_async)
    a_rows = table_rows(markdown, "### (a) uncontended acquire+release, 1 task")
    assert [r for r in a_rows if r in measured_async] == measured_async
    # Every measured row carries figures, not "skipped".
    for line in markdown.splitlines():
        if line.startswith("| sessionpool "):
            assert "skipped" not in line and "n/a" not in line.split("|")[2], line
    assert "![bar chart of the headline ratios](bench.png)" in markdown


def test_quick_bench_draws_a_bar_chart(quick_run: tuple[Path, str]) -> None:
    out, _ = quick_run
    data = (out / "bench.png").read_bytes()
    width, height = png_size(data)
    assert width >= 600 and height >= 600  # five panels, stacked
    assert len(data) > 30_000  # a real chart with text and bars, not an empty canvas
    # sessionpool's bars are drawn in their own colour: at least one bar's worth of pixels
    # per panel (a bar is some 20 px high and tens of px long even on a log axis).
    assert bar_pixels(out / "bench.png") > 5 * 200


def test_missing_peers_are_skipped_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import dbutils` raise ImportError, as if not installed.
    monkeypatch.setitem(sys.modules, "dbutils", None)
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    stdout = io.StringIO()
    options = BenchOptions(out=tmp_path / "new" / "dir", quick=True, suites=("threaded",))
    assert run_bench(options, stdout=stdout) == 0
    printed = stdout.getvalue()
    assert "skipped dbutils (Threads): dbutils not installed" in printed
    assert "skipped sqlalchemy (Threads): sqlalchemy not installed" in printed
    markdown = (tmp_path / "new" / "dir" / "bench.md").read_text(encoding="utf-8")
    assert "- `dbutils`: dbutils not installed" in markdown
    assert "| dbutils " in markdown and "skipped" in markdown
    assert "## asyncio" not in markdown  # --only threaded
    assert "sessionpool bench --quick --only threaded" in markdown
    assert png_size((tmp_path / "new" / "dir" / "bench.png").read_bytes())[0] >= 600


def test_chart_leaves_out_missing_figures_and_survives_an_empty_run(tmp_path: Path) -> None:
    panels = [
        ChartPanel("a", "x floor", {"floor": 1.0, "sessionpool": 2.5, "gone": math.nan}, 1.0),
        ChartPanel("empty", "x floor", {"gone": math.nan}),
    ]
    write_chart(tmp_path / "one.png", panels)
    assert bar_pixels(tmp_path / "one.png") > 200
    write_chart(tmp_path / "none.png", [])
    assert png_size((tmp_path / "none.png").read_bytes()) > (0, 0)


def test_bad_suite_and_unwritable_out_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="suites must be among threaded, async"):
        BenchOptions(out=tmp_path, suites=("sync",))
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(UsageError, match=r"--out .*cannot create it"):
        run_bench(BenchOptions(out=blocker / "sub", quick=True))


def test_unknown_only_is_rejected_by_the_command_line() -> None:
    done = run_cli("-m", "sessionpool", "bench", "--only", "sync")
    assert done.returncode == 2
    assert "invalid choice: 'sync'" in done.stderr


def test_the_benchmark_scripts_still_print_their_tables(tmp_path: Path) -> None:
    threaded_run = run_cli(
        str(ROOT / "benchmarks" / "bench_threaded.py"),
        "--scenario",
        "a",
        "--rounds",
        "1",
        "--only",
        "sessionpool",
        "--json",
        str(tmp_path / "t.json"),
    )
    assert threaded_run.returncode == 0, threaded_run.stderr
    assert "### (a) uncontended acquire+release, 1 thread, 1 rounds" in threaded_run.stdout
    assert "| sessionpool " in threaded_run.stdout
    assert "(a) round 1/1 done" in threaded_run.stderr
    assert (tmp_path / "t.json").stat().st_size > 0
    async_run = run_cli(
        str(ROOT / "benchmarks" / "bench_async.py"),
        "--scenario",
        "a",
        "--rounds",
        "1",
        "--only",
        "sessionpool",
    )
    assert async_run.returncode == 0, async_run.stderr
    assert "### (a) uncontended acquire+release, 1 task, 1 rounds" in async_run.stdout
    assert "### targets" in async_run.stdout
