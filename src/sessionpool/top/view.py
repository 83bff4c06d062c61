"""Draws `sessionpool top` frames as rich tables: pool figures from a metrics endpoint, or a
database server's view. Formatting only; no scraping, no clock reads of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .metrics import PoolFigures
from .server import ServerView

__all__ = ["metrics_frame", "server_frame"]

POOL_COLUMNS = (
    "pool",
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
)

# Server-view columns that hold names (left-aligned); the others hold figures.
TEXT_COLUMNS = frozenset({"application", "state", "user", "command", "users", "databases"})


def metrics_frame(
    endpoint: str, rows: Sequence[PoolFigures], stamp: str, plain: bool, problem: str = ""
) -> RenderableType:
    """One frame of pool figures.

    Args:
        endpoint: the metrics URL, for the caption.
        rows: one per pool.
        stamp: the wall-clock time of the scrape, for the caption.
        plain: a Markdown-style table without colour (stdout is not a terminal).
        problem: a scrape failure to show under the last good figures.
    """
    table = Table(*POOL_COLUMNS, box=box.MARKDOWN if plain else box.SIMPLE_HEAVY)
    for column in table.columns[1:]:
        column.justify = "right"
    for row in rows:
        saturated = row.waiting > 0 or (row.max_size > 0 and row.used >= row.max_size)
        table.add_row(
            Text(row.pool, style="" if plain else "bold"),
            _count(row.used, "red" if saturated and not plain else ""),
            _count(row.idle),
            _count(row.opening),
            _count(row.max_size),
            _count(row.waiting, "red" if row.waiting and not plain else ""),
            _count(row.busy_peak),
            Text("-" if row.acquires_per_s is None else f"{row.acquires_per_s:,.1f}"),
            _with_increase(row.timeouts, row.new_timeouts, plain),
            _with_increase(row.errors, row.new_errors, plain),
            Text(_duration(row.wait_p50)),
            Text(_duration(row.wait_p99)),
            Text(_duration(row.use_mean)),
        )
    if not rows:
        table.add_row("(no sessionpool_* series at this endpoint)", *[""] * 12)
    lines: list[RenderableType] = [
        _heading(f"sessionpool top: {endpoint}", plain),
        table,
        Text(_caption(rows, stamp)),
    ]
    if problem:
        lines.append(Text(problem, style="" if plain else "bold red"))
    return Group(*lines)


def server_frame(view: ServerView, stamp: str, plain: bool, problem: str = "") -> RenderableType:
    """One frame of a database server's sessions, with its notes under the table."""
    table = Table(*view.columns, box=box.MARKDOWN if plain else box.SIMPLE_HEAVY)
    for column in table.columns:
        if column.header in TEXT_COLUMNS:
            continue
        column.justify = "right"
    for row in view.rows:
        table.add_row(*row)
    if not view.rows:
        table.add_row("(no other session)", *[""] * (len(view.columns) - 1))
    lines: list[RenderableType] = [_heading(view.title, plain), table, Text(f"at {stamp}")]
    lines += [Text(note) for note in view.notes]
    if problem:
        lines.append(Text(problem, style="" if plain else "bold red"))
    return Group(*lines)


def _heading(text: str, plain: bool) -> Text:
    return Text(text, style="" if plain else "bold")


def _caption(rows: Sequence[PoolFigures], stamp: str) -> str:
    window = next((r.window for r in rows if r.window), None)
    span = (
        f"rates and percentiles over the last {window:.1f} s"
        if window
        else "percentiles over each pool's life (rates from the next refresh)"
    )
    return f"{len(rows)} pool(s) at {stamp}; {span}"


def _count(value: float, style: str = "") -> Text:
    if math.isnan(value):
        return Text("-")
    return Text(f"{value:,.0f}", style=style)


def _with_increase(total: float, new: float, plain: bool) -> Text:
    text = f"{total:,.0f}"
    if new > 0:
        return Text(f"{text} (+{new:,.0f})", style="" if plain else "bold red")
    return Text(text)


def _duration(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 1.0:
        return f"{seconds * 1e3:,.2f} ms"
    return f"{seconds:,.2f} s"
