"""Where a lease was acquired, recorded cheaply and formatted only when a report needs it.

Used by both shells when ``leak_threshold`` is set; nothing here touches a pool or does I/O.
"""

from __future__ import annotations

import os
import sys
import traceback

__all__ = ["Where", "format_where", "record_where", "short_where"]

# Frames of this package are skipped: a report names the borrower's code, not ours.
_OWN_DIRECTORY = os.path.dirname(os.path.abspath(__file__))
_DEPTH = 12

Where = tuple[tuple[str, int, str], ...]


def record_where() -> Where:
    """The caller's stack (innermost first), without sessionpool's own frames: file names,
    line numbers and function names only, so no frame or local is kept alive."""
    frame = sys._getframe(1)
    found: list[tuple[str, int, str]] = []
    while frame is not None and len(found) < _DEPTH:
        code = frame.f_code
        if not code.co_filename.startswith(_OWN_DIRECTORY):
            found.append((code.co_filename, frame.f_lineno, code.co_name))
        frame = frame.f_back  # type: ignore[assignment]
    return tuple(found)


def short_where(where: Where | None) -> str:
    """``file:line in function`` of the innermost recorded frame."""
    if not where:
        return "an unknown place (set leak_threshold to record where leases are acquired)"
    filename, line, function = where[0]
    return f"{filename}:{line} in {function}"


def format_where(where: Where | None) -> str:
    """The recorded stack as a traceback, outermost call first, with source lines."""
    if not where:
        return "  (not recorded: set leak_threshold to record where leases are acquired)\n"
    summary = traceback.StackSummary.from_list(
        [(filename, line, function, None) for filename, line, function in reversed(where)]
    )
    return "".join(summary.format())
