"""Watchdog: puts a time limit on a blocking driver call by shutting its socket down.

Blocking drivers (libpq, PyMySQL, libmariadb) offer no per-call client timeout, so a ping or
reset against a hung server would block forever. One daemon thread per process keeps a heap
of deadlines; when one passes before the call returned, it shuts the connection's socket down,
which makes the blocked call fail at once with the driver's own "connection lost" error. It
never closes the file descriptor (the driver owns it) and does nothing else.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
from time import monotonic

__all__ = ["arm", "disarm"]


class _Watch:
    """One armed deadline. ``fired`` tells the caller its connection was cut."""

    __slots__ = ("active", "deadline", "fd", "fired", "order")

    def __init__(self, deadline: float, order: int, fd: int) -> None:
        self.deadline = deadline
        self.order = order
        self.fd = fd
        self.active = True
        self.fired = False

    def __lt__(self, other: _Watch) -> bool:
        return (self.deadline, self.order) < (other.deadline, other.order)


class _Watchdog:
    def __init__(self) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._heap: list[_Watch] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, fd: int, timeout: float) -> _Watch:
        watch = _Watch(monotonic() + timeout, next(self._order), fd)
        with self._condition:
            heapq.heappush(self._heap, watch)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="sessionpool-watchdog", daemon=True
                )
                self._thread.start()
            if self._heap[0] is watch:
                self._condition.notify()
        return watch

    def disarm(self, watch: _Watch) -> bool:
        # Under the lock, so that once this returns the socket will not be cut any more:
        # the thread fires only under the same lock and only for active watches.
        with self._condition:
            watch.active = False
            heap = self._heap
            while heap and not heap[0].active:
                heapq.heappop(heap)
        return watch.fired

    def _watch(self) -> None:
        with self._condition:
            while True:
                heap = self._heap
                if not heap:
                    self._condition.wait()
                    continue
                first = heap[0]
                if not first.active:
                    heapq.heappop(heap)
                    continue
                remaining = first.deadline - monotonic()
                if remaining > 0:
                    self._condition.wait(remaining)
                    continue
                heapq.heappop(heap)
                first.active = False
                first.fired = True
                _shut_down(first.fd)

    def forget_after_fork(self) -> None:
        # The thread does not exist in a forked child; start afresh there.
        self._condition = threading.Condition(threading.Lock())
        self._heap = []
        self._thread = None


def _shut_down(fd: int) -> None:
    try:
        duplicate = os.dup(fd)
    except OSError:
        return  # already closed by its driver: nothing is blocked on it
    try:
        sock = socket.socket(fileno=duplicate)
    except OSError:
        os.close(duplicate)
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # not connected any more
    finally:
        sock.close()  # closes the duplicate only; the driver's descriptor stays open


_watchdog = _Watchdog()
os.register_at_fork(after_in_child=_watchdog.forget_after_fork)


def arm(fd: int, timeout: float) -> _Watch:
    """Cut the socket ``fd`` if `disarm` is not called within ``timeout`` seconds."""
    return _watchdog.arm(fd, timeout)


def disarm(watch: _Watch) -> bool:
    """Stop watching; True when the deadline had passed and the socket was cut."""
    return _watchdog.disarm(watch)
