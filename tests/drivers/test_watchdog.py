"""The watchdog: a deadline that shuts a blocked socket down, and disarming it in time."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from sessionpool.drivers import watchdog

#: Allowance for thread scheduling on a loaded machine.
MARGIN = 0.5


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def heap() -> list[object]:
    return watchdog._watchdog._heap  # type: ignore[return-value]


def blocked_recv(sock: socket.socket) -> tuple[threading.Thread, dict[str, object]]:
    """Start a thread blocked in sock.recv; the dict gets its outcome and when it ended."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["data"] = sock.recv(1)
        except OSError as exc:
            outcome["error"] = exc
        outcome["at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_armed_deadline_cuts_a_blocked_recv(pair: tuple[socket.socket, socket.socket]) -> None:
    left, _right = pair
    thread, outcome = blocked_recv(left)
    time.sleep(0.05)
    assert thread.is_alive(), "recv should be blocked"
    armed_at = time.monotonic()
    watch = watchdog.arm(left.fileno(), 0.2)
    thread.join(0.2 + MARGIN + 1.0)
    assert not thread.is_alive(), "the watchdog did not cut the socket"
    elapsed = float(outcome["at"]) - armed_at  # type: ignore[arg-type]
    assert 0.15 <= elapsed <= 0.2 + MARGIN, elapsed
    assert outcome.get("data") == b"" or "error" in outcome, outcome
    assert watchdog.disarm(watch) is True
    assert left.fileno() >= 0  # shut down, never closed: the driver owns the descriptor
    assert heap() == []


def test_disarm_before_the_deadline_leaves_the_socket_alone(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    watch = watchdog.arm(left.fileno(), 0.2)
    assert watchdog.disarm(watch) is False
    time.sleep(0.4)  # well past the deadline
    right.sendall(b"x")
    left.settimeout(2.0)
    assert left.recv(1) == b"x"
    left.sendall(b"y")
    right.settimeout(2.0)
    assert right.recv(1) == b"y"
    assert watchdog.disarm(watch) is False  # disarming twice is harmless
    assert heap() == []


def test_disarm_while_blocked_then_the_call_completes(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    thread, outcome = blocked_recv(left)
    watch = watchdog.arm(left.fileno(), 0.3)
    time.sleep(0.05)
    assert watchdog.disarm(watch) is False
    right.sendall(b"z")
    thread.join(2.0)
    assert outcome.get("data") == b"z"
    time.sleep(0.4)
    right.sendall(b"w")
    left.settimeout(2.0)
    assert left.recv(1) == b"w"  # still usable after the old deadline


def test_only_the_expired_watch_fires(pair: tuple[socket.socket, socket.socket]) -> None:
    left, _right = pair
    other_left, other_right = socket.socketpair()
    try:
        short = watchdog.arm(left.fileno(), 0.1)
        long = watchdog.arm(other_left.fileno(), 30.0)
        deadline = time.monotonic() + 0.1 + MARGIN + 1.0
        while not short.fired and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watchdog.disarm(short) is True
        assert watchdog.disarm(long) is False
        other_right.sendall(b"k")
        other_left.settimeout(2.0)
        assert other_left.recv(1) == b"k"
        assert heap() == []
    finally:
        other_left.close()
        other_right.close()


def test_earlier_deadline_armed_later_still_fires_on_time(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, _right = pair
    other_left, other_right = socket.socketpair()
    try:
        late = watchdog.arm(other_left.fileno(), 30.0)  # the thread now sleeps for 30 s
        time.sleep(0.05)
        thread, outcome = blocked_recv(left)
        armed_at = time.monotonic()
        early = watchdog.arm(left.fileno(), 0.2)
        thread.join(0.2 + MARGIN + 1.0)
        assert not thread.is_alive(), "the earlier deadline did not wake the watchdog"
        assert float(outcome["at"]) - armed_at <= 0.2 + MARGIN  # type: ignore[arg-type]
        assert watchdog.disarm(early) is True
        assert watchdog.disarm(late) is False
        assert heap() == []
    finally:
        other_left.close()
        other_right.close()


def test_many_arms_and_disarms_leave_the_heap_empty(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, right = pair
    fd = left.fileno()
    # one at a time
    for _ in range(10_000):
        assert watchdog.disarm(watchdog.arm(fd, 60.0)) is False
    assert heap() == []
    # all armed, then disarmed in random order
    watches = [watchdog.arm(fd, random.uniform(30.0, 60.0)) for _ in range(10_000)]
    assert len(heap()) == 10_000
    random.shuffle(watches)
    assert not any(watchdog.disarm(watch) for watch in watches)
    assert heap() == []
    # the socket was never cut
    right.sendall(b"!")
    left.settimeout(2.0)
    assert left.recv(1) == b"!"


def test_concurrent_arms_and_disarms_leave_the_heap_empty(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    left, _right = pair
    fd = left.fileno()
    fired: list[bool] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(2_500):
                fired.append(watchdog.disarm(watchdog.arm(fd, 60.0)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(fired) == 10_000 and not any(fired)
    assert heap() == []


def test_cut_on_a_closed_descriptor_is_harmless() -> None:
    left, right = socket.socketpair()
    fd = left.fileno()
    left.close()
    right.close()
    watch = watchdog.arm(fd, 0.05)
    deadline = time.monotonic() + 2.0
    while not watch.fired and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watchdog.disarm(watch) is True  # fired, and the watchdog thread survived
    # the watchdog still works afterwards
    a, b = socket.socketpair()
    try:
        thread, _outcome = blocked_recv(a)
        watch = watchdog.arm(a.fileno(), 0.1)
        thread.join(0.1 + MARGIN + 1.0)
        assert not thread.is_alive()
        assert watchdog.disarm(watch) is True
    finally:
        a.close()
        b.close()
