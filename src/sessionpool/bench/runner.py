"""`sessionpool bench`: runs the threaded and asyncio suites behind a progress bar, then writes
``bench.md`` and ``bench.png``. The suites measure; this module only sequences and reports.
"""

from __future__ import annotations

import faulthandler
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .._optional import require
from ..errors import UsageError
from . import aio, threaded
from .report import SuiteResult, write_chart, write_markdown

if TYPE_CHECKING:  # rich is an optional extra ([cli]); imported when the command runs
    from rich.progress import Progress as Bar

__all__ = ["SUITES", "BenchOptions", "run_bench"]

SUITES = ("threaded", "async")
MARKDOWN_NAME = "bench.md"
CHART_NAME = "bench.png"


@dataclass(frozen=True)
class BenchOptions:
    """What `sessionpool bench` was asked for.

    ``quick`` is a smoke run of a few seconds (shorter than the scripts' own ``--quick``):
    enough to see every contestant run and the files written, too short for figures to trust.

    Raises:
        UsageError: ``suites`` is empty or names an unknown suite.
    """

    out: Path
    quick: bool = False
    suites: Sequence[str] = SUITES

    def __post_init__(self) -> None:
        unknown = [s for s in self.suites if s not in SUITES]
        if unknown or not self.suites:
            raise UsageError(f"suites must be among {', '.join(SUITES)} (got {unknown or 'none'})")

    @property
    def command(self) -> str:
        words = ["sessionpool bench"]
        if self.quick:
            words.append("--quick")
        if tuple(self.suites) != SUITES:
            words.append(f"--only {','.join(self.suites)}")
        return " ".join(words)


def run_bench(options: BenchOptions, stdout: TextIO | None = None) -> int:
    """Run the chosen suites and write DIR/bench.md and DIR/bench.png; returns the exit status.

    Args:
        options: the suites, their length and the output directory (created if missing).
        stdout: where the summary goes (default ``sys.stdout``); the bar goes to stderr.
    Raises:
        UsageError: the output directory cannot be created.
        MissingExtra: rich or matplotlib is not installed (the [cli] extra).
    """
    require("sessionpool bench", "cli", "rich", "matplotlib")
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    out = stdout if stdout is not None else sys.stdout
    try:
        options.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {str(options.out)!r}: cannot create it ({exc.strerror})") from None
    # A contestant that deadlocks must not hang the command: dump every stack and exit.
    faulthandler.dump_traceback_later(threaded.WATCHDOG_S + aio.WATCHDOG_S, exit=True)
    columns = (
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    results: list[SuiteResult] = []
    try:
        with Progress(*columns, console=Console(stderr=True)) as bar:
            if "threaded" in options.suites:
                results.append(_run_threaded(options.quick, bar))
            if "async" in options.suites:
                results.append(_run_async(options.quick, bar))
    finally:
        faulthandler.cancel_dump_traceback_later()
    markdown, chart = options.out / MARKDOWN_NAME, options.out / CHART_NAME
    write_markdown(markdown, options.command, results, CHART_NAME)
    write_chart(chart, [panel for suite in results for panel in suite.panels])
    for suite in results:
        for name, why in suite.skipped:
            print(f"skipped {name} ({suite.title}): {why}", file=out)
    print(f"wrote {markdown}", file=out)
    print(f"wrote {chart}", file=out)
    return 0


def _run_threaded(quick: bool, bar: Bar) -> SuiteResult:
    settings = threaded.Settings.smoke() if quick else threaded.Settings()
    return _run_suite(
        threaded,
        settings,
        lambda: threaded.build_contestants(),
        ("threads", "Threads", "benchmarks/bench_threaded.py"),
        bar,
    )


def _run_async(quick: bool, bar: Bar) -> SuiteResult:
    settings = aio.Settings.smoke() if quick else aio.Settings()
    return _run_suite(
        aio,
        settings,
        lambda: aio.contestants_for(settings),
        ("asyncio", "asyncio", "benchmarks/bench_async.py"),
        bar,
    )


def _run_suite(
    suite: Any,
    settings: Any,
    find_contestants: Callable[[], list[Any]],
    names: tuple[str, str, str],
    bar: Bar,
) -> SuiteResult:
    """Run one suite module (`threaded` or `aio`: the same functions by the same names)
    behind its own progress bar. ``names``: the bar's label, the title, the script."""
    label, title, script = names
    task = bar.add_task(f"{label}: checking peers", total=settings.steps)
    contestants = find_contestants()
    skipped = [(c.name, c.skip_reason) for c in contestants if c.skip_reason]
    for name, why in skipped:
        bar.console.print(f"{label}: skipping {name}: {why}")

    def step(message: str) -> None:
        bar.update(task, advance=1, description=f"{label} {message.strip()}")

    bar.update(task, description=f"{label}: opening pools")
    report = suite.run(settings, contestants, step)
    return SuiteResult(
        title=title,
        script=script,
        environment=suite.environment_line(report["environment"]),
        skipped=skipped,
        tables=suite.format_report(report, contestants),
        panels=suite.chart_panels(report),
    )
