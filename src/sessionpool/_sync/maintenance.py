"""Maintainer: the one background thread of a threaded pool.

It closes connections the borrowers' paths let go (so no borrower waits behind a slow
close), fires the core's retry timers during an outage, and once per tick runs the pool's
round (`Pool._maintain`: orphaned leases, leak reports, idle and expired connections,
keepalive checks). It holds the pool only weakly between rounds: a pool dropped without
close() is collected, and the thread then ends.
"""

from __future__ import annotations

import heapq
import threading
import weakref
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pool import Pool

__all__ = ["Maintainer"]


class Maintainer:
    """Runs a pool's background work on one daemon thread, started on first need."""

    def __init__(self, pool: Pool) -> None:
        self._pool = weakref.ref(pool)
        self._name = f"sessionpool-{pool.name}-maintain"
        self._wakeup = threading.Condition(threading.Lock())
        self._closes: deque[tuple[Any, str]] = deque()
        self._timers: list[tuple[float, int]] = []  # (due, retry token), a heap
        self._round_due = True
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- called by the pool (never while holding the pool's lock for long) --------------------

    def start(self) -> None:
        """Start the thread if it is not running (again in a forked child)."""
        if self._thread is not None:
            return  # already running: skip the lock (opens call this each time)
        with self._wakeup:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def close_later(self, connection: Any, reason: str) -> bool:
        """Hand a connection over to be closed; False once stopped (close it yourself)."""
        with self._wakeup:
            if self._stopping:
                return False
            self._closes.append((connection, reason))
            self._wakeup.notify()
        if self._thread is None:
            self.start()
        return True

    def retry_at(self, delay: float, token: int) -> None:
        with self._wakeup:
            heapq.heappush(self._timers, (monotonic() + delay, token))
            self._wakeup.notify()
        if self._thread is None:
            self.start()

    def wake(self) -> None:
        """Run a round now (a lease was orphaned, a setting changed)."""
        with self._wakeup:
            self._round_due = True
            self._wakeup.notify()

    def stop(self, timeout: float) -> None:
        """Finish the closes already handed over, then end the thread (within ``timeout``)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        next_round = monotonic()
        while True:
            with self._wakeup:
                while True:
                    now = monotonic()
                    timers_due = bool(self._timers) and self._timers[0][0] <= now
                    if self._closes or timers_due or self._stopping:
                        break
                    if self._round_due or now >= next_round:
                        break
                    wake_at = next_round
                    if self._timers:
                        wake_at = min(wake_at, self._timers[0][0])
                    self._wakeup.wait(wake_at - now)
                closes = list(self._closes)
                self._closes.clear()
                tokens = []
                while self._timers and self._timers[0][0] <= now:
                    tokens.append(heapq.heappop(self._timers)[1])
                run_round = self._round_due or now >= next_round
                self._round_due = False
                stopping = self._stopping
            pool = self._pool()
            if pool is None:
                return  # the pool was collected: nothing left to look after
            for connection, reason in closes:
                pool._close_quietly(connection, reason)
            if stopping:
                return
            try:
                for token in tokens:
                    pool._retry_opens(token)
                if run_round:
                    pool._maintain(monotonic())
            except Exception:  # a failed round must not end the worker
                pool._log.exception("pool %r: maintenance round failed", pool.name)
            if run_round:
                next_round = monotonic() + pool._tick()
            del pool  # hold it only weakly while waiting
