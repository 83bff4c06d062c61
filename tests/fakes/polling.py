"""Bounded polling for tests: wait for a condition another thread brings about (a close on the
pool's maintenance thread, a connect finishing). Standard library only; never waits unbounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["PATIENCE", "eventually", "wait_until"]

#: Seconds a test waits for something that should happen almost at once. Generous because
#: the test machine has 2 noisy cores: a background thread may not be scheduled for a good
#: part of a second, yet a real hang still fails the test quickly.
PATIENCE = 2.0
#: Seconds between two looks: short against PATIENCE, long enough not to starve the thread
#: being waited for of the GIL.
POLL_INTERVAL = 0.002


def wait_until(predicate: Callable[[], object], timeout: float = PATIENCE) -> bool:
    """Poll predicate until it is true or timeout seconds have passed; return its last truth."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(POLL_INTERVAL)


def eventually(predicate: Callable[[], object], what: str, timeout: float = PATIENCE) -> None:
    """Assert that predicate becomes true within timeout seconds; the failure names ``what``."""
    assert wait_until(predicate, timeout), f"not within {timeout} s: {what}"
