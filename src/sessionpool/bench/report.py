"""Writes a benchmark run to disk: ``bench.md`` (the scripts' Markdown tables) and
``bench.png`` (a bar chart per scenario, drawn by matplotlib off-screen). Runs nothing itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .common import ChartPanel

__all__ = ["SuiteResult", "write_chart", "write_markdown"]

OURS = "#dd8452"  # sessionpool's bars stand out from the peers' and references'
PEER = "#4c72b0"
LOG_SCALE_SPREAD = 30.0  # largest / smallest bar above which the axis turns logarithmic


@dataclass(frozen=True)
class SuiteResult:
    """One suite's part of the files: its heading, environment, tables and chart panels."""

    title: str
    script: str  # the benchmarks/ script that prints the same tables
    environment: str
    skipped: Sequence[tuple[str, str]]  # (contestant, why)
    tables: str
    panels: Sequence[ChartPanel]


def write_markdown(path: Path, command: str, suites: Sequence[SuiteResult], chart: str) -> None:
    """Write the tables of every suite under one heading each.

    Args:
        path: the file to write (replaced if it exists).
        command: the command line that produced the run, quoted at the top.
        suites: what each suite measured.
        chart: the chart's file name, linked from the page (relative to ``path``).
    """
    lines = [
        "# sessionpool bench",
        "",
        f"Produced by `{command}`. Read the ratios, not the nanoseconds: they compare pools "
        "measured in the same rounds on the same machine.",
    ]
    for suite in suites:
        lines += ["", f"## {suite.title}", "", f"Same tables as `{suite.script}`.", ""]
        lines.append(suite.environment)
        if suite.skipped:
            lines += ["", "Skipped:", ""]
            lines += [f"- `{name}`: {why}" for name, why in suite.skipped]
        lines.append(suite.tables)
    lines += ["", f"![bar chart of the headline ratios]({chart})", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_chart(path: Path, panels: Sequence[ChartPanel]) -> None:
    """Draw one horizontal bar chart per panel, stacked, into a PNG file.

    Args:
        path: the PNG file to write (replaced if it exists).
        panels: the figures to draw; contestants with no figure (NaN) are left out.
    """
    # The object API, not pyplot: no global figure state and no display backend, so it runs on
    # a headless machine and inside a process that uses matplotlib for something else.
    from matplotlib.figure import Figure

    drawable = [p for p in panels if any(math.isfinite(v) for v in p.values.values())]
    heights = [0.6 + 0.35 * max(1, len(p.values)) for p in drawable] or [1.0]
    figure = Figure(figsize=(9.0, 1.0 + sum(heights)), layout="constrained")
    if not drawable:
        figure.text(0.5, 0.5, "no contestant produced a figure", ha="center", va="center")
        figure.savefig(path, format="png", dpi=100)
        return
    axes = figure.subplots(len(drawable), 1, squeeze=False, height_ratios=heights)[:, 0]
    for ax, panel in zip(axes, drawable, strict=True):
        shown = {name: v for name, v in panel.values.items() if math.isfinite(v)}
        names = list(shown)[::-1]  # first contestant on top
        values = [shown[name] for name in names]
        colors = [OURS if name.startswith("sessionpool") else PEER for name in names]
        bars = ax.barh(names, values, color=colors)
        ax.bar_label(bars, labels=[f"{v:,.2f}" for v in values], padding=3, fontsize=8)
        if panel.reference is not None:
            ax.axvline(panel.reference, color="#888888", linestyle="--", linewidth=1)
        ax.set_title(panel.title, fontsize=10, loc="left")
        ax.set_xlabel(panel.axis, fontsize=9)
        ax.tick_params(labelsize=8)
        positive = [v for v in values if v > 0]
        # Ratios can span three orders of magnitude (asyncpg.Pool at ~600x the floor); on a
        # linear axis every other bar would be a sliver.
        if positive and max(positive) / min(positive) > LOG_SCALE_SPREAD:
            ax.set_xscale("log")
            ax.margins(x=0.25)
        else:
            ax.margins(x=0.15)  # room for the value labels
    figure.savefig(path, format="png", dpi=100)
