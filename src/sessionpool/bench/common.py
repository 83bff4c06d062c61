"""Helpers both benchmark suites share: statistics, number formatting, Markdown tables, the
progress callback, chart data, the fakes' cursor and the check that a peer is installed. No
pool and no timing here.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ChartPanel",
    "FakeCursor",
    "Progress",
    "fmt",
    "markdown_table",
    "median_or_nan",
    "min_med_max",
    "module_missing",
    "percentile",
    "print_progress",
    "without_nan",
]

#: Called once per finished round with a line such as ``"  (a) round 2/5 done"``.
Progress = Callable[[str], None]


def print_progress(message: str) -> None:
    """The scripts' progress: one line per round on stderr, so stdout keeps only tables."""
    print(message, file=sys.stderr)


@dataclass(frozen=True)
class ChartPanel:
    """One bar chart of a run: a figure per contestant (NaN figures are left out)."""

    title: str
    axis: str  # what the bars measure, with its unit or "x reference"
    values: dict[str, float] = field(default_factory=dict)
    reference: float | None = None  # a line drawn across, e.g. 1.0 for "x floor"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(q / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median_or_nan(values: Iterable[float]) -> float:
    items = [v for v in values if v == v]  # drop NaN
    return statistics.median(items) if items else float("nan")


def without_nan(value: Any) -> Any:
    """NaN is not valid JSON; write null instead."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(v) for v in value]
    return value


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def min_med_max(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    return "/".join(f"{v:g}" for v in (ordered[0], statistics.median(ordered), ordered[-1]))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    align = ["-" * w if i == 0 else "-" * (w - 1) + ":" for i, w in enumerate(widths)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    return "\n".join([line(headers), "| " + " | ".join(align) + " |", *map(line, rows)])


class FakeCursor:
    """The cursor of the suites' do-nothing connections: only pool overhead is measured."""

    def execute(self, *args: Any, **kwargs: Any) -> None:
        return None

    def close(self) -> None:
        return None


def module_missing(name: str) -> str:
    """Why the peer package ``name`` cannot be measured (not installed), or "" if it can."""
    try:
        __import__(name)
    except ImportError as exc:
        return f"{name} not installed: {exc}"
    return ""
