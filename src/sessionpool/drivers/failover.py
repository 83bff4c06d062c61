"""Host failover for drivers that take one host per connect: try a URL's hosts in order.

The order of attempts, the error naming every host tried, and one small loop for threads and
one for asyncio around a caller's connect-to-this-host function. No driver import, no pool
state, no clock: each attempt is bounded by the driver's own connect timeout. libpq drivers
walk a host list themselves: for them only `plan` is used, to count the attempts a connect
may take (an AsyncPool's time budget).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import NamedTuple, TypeVar

from ..errors import AllHostsFailed

__all__ = ["Attempt", "all_hosts_failed", "connect_first", "connect_first_async", "host_label"]

T = TypeVar("T")
# Longest part of a driver's message quoted per host: enough for the reason, short enough
# that ten hosts still make a readable error.
_SUMMARY_CHARS = 160


class Attempt(NamedTuple):
    """One connect to try: a host, its port, and (asyncpg) the session kind to require."""

    host: str | None
    port: int | None
    target_session_attrs: str | None = None

    @property
    def label(self) -> str:
        """``host:port`` (IPv6 in brackets), with the session kind when one is required."""
        text = host_label(self.host, self.port)
        if self.target_session_attrs not in (None, "any"):
            text += f" ({self.target_session_attrs})"
        return text


def host_label(host: str | None, port: int | None) -> str:
    """``host:port`` for messages; ``[::1]:5432`` for IPv6, ``default`` for no host."""
    text = "default" if host is None else f"[{host}]" if ":" in host else host
    return text if port is None else f"{text}:{port}"


def plan(
    hosts: Iterable[tuple[str | None, int | None]], target_session_attrs: str | None = None
) -> list[Attempt]:
    """The attempts for ``hosts``, always in the URL's order (no round robin: the first host
    is the preferred one, as in libpq without ``load_balance_hosts``).

    ``prefer-standby`` becomes two passes, as libpq does it: every host as a standby first,
    then every host accepting any session. Other kinds are checked per host by the driver.
    """
    listed = list(hosts)
    if target_session_attrs == "prefer-standby":
        return [Attempt(h, p, "standby") for h, p in listed] + [
            Attempt(h, p, "any") for h, p in listed
        ]
    return [Attempt(h, p, target_session_attrs) for h, p in listed]


def connect_first(attempts: list[Attempt], connect_one: Callable[[Attempt], T]) -> T:
    """``connect_one(attempt)`` for each attempt in turn; the first connection wins.

    Raises:
        AllHostsFailed: every attempt raised; it names each host with its error and chains
            the last one. (Errors must already be free of passwords: the caller scrubs them.)
    """
    failures: list[tuple[Attempt, Exception]] = []
    for attempt in attempts:
        try:
            return connect_one(attempt)
        except Exception as exc:
            failures.append((attempt, exc))
    raise all_hosts_failed(failures) from failures[-1][1] if failures else None


async def connect_first_async(
    attempts: list[Attempt], connect_one: Callable[[Attempt], Awaitable[T]]
) -> T:
    """As `connect_first`, awaiting each ``connect_one(attempt)``. A cancellation (the pool's
    time limit) stops the walk at once and propagates."""
    failures: list[tuple[Attempt, Exception]] = []
    for attempt in attempts:
        try:
            return await connect_one(attempt)
        except Exception as exc:
            failures.append((attempt, exc))
    raise all_hosts_failed(failures) from failures[-1][1] if failures else None


def all_hosts_failed(failures: list[tuple[Attempt, Exception]]) -> AllHostsFailed:
    """The error for a walk where every attempt failed (an empty walk says so)."""
    if not failures:
        return AllHostsFailed("no host to connect to: the URL names none")
    tried = "; ".join(f"{attempt.label}: {_summary(error)}" for attempt, error in failures)
    count = len({(attempt.host, attempt.port) for attempt, _ in failures})
    kinds = sorted(
        {
            str(attempt.target_session_attrs)
            for attempt, _ in failures
            if attempt.target_session_attrs not in (None, "any")
        }
    )
    wanted = f", and is a {' or '.join(kinds)} server" if kinds else ""
    return AllHostsFailed(
        f"could not connect to any of {count} host(s), tried in order: {tried}. Check that "
        f"one of them is up, answers within the pool's connect_timeout{wanted}; the last "
        "error is the cause",
        tuple(attempt.label for attempt, _ in failures),
    )


def _summary(error: BaseException) -> str:
    """The error's type and the first line of its message, shortened."""
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if len(text) > _SUMMARY_CHARS:
        text = text[: _SUMMARY_CHARS - 3] + "..."
    name = type(error).__name__
    return f"{name}: {text}" if text else name
