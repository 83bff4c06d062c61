"""Helpers shared by the AsyncPool driver tests (no fixtures here: see conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from time import monotonic
from typing import Any

#: The time limit under test, and the slack allowed on top of it (task wake-ups, CI noise).
LIMIT, MARGIN = 0.5, 0.5
#: A password no message or repr may ever show.
CANARY = "s3cr3t-canary"
#: A release, ping or connect that should take no round trip completes well within this.
INSTANT = 0.2


async def timed(awaitable: Awaitable[Any], guard: float = 15.0) -> tuple[Any, float]:
    """(result, or the exception raised; seconds taken). ``guard`` keeps a library bug from
    hanging the suite: past it the call is cancelled and its TimeoutError is the outcome."""
    started = monotonic()
    try:
        outcome: Any = await asyncio.wait_for(awaitable, guard)
    except Exception as exc:
        outcome = exc
    return outcome, monotonic() - started


def error_texts(error: BaseException) -> list[str]:
    """str() and repr() of an error, its args and of every error chained to it."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), *(repr(arg) for arg in current.args)]
        current = current.__cause__ or current.__context__
    return texts


def differences(seen: dict[str, Any], fresh: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{key: (fresh value, value seen)} for every key where they differ."""
    keys = set(fresh) | set(seen)
    return {
        key: (fresh.get(key), seen.get(key))
        for key in sorted(keys)
        if seen.get(key) != fresh.get(key)
    }
