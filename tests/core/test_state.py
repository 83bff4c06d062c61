"""Table-driven tests of PoolState, the pool's decision core: no threads, no sleeps, no clock."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import pytest

from sessionpool._core.counts import CoreCounts, snapshot
from sessionpool._core.effects import CloseConnection, Effect, OpenConnections, RetryOpens, Wake
from sessionpool._core.records import BUSY, CLOSED, IDLE, Request, Slot
from sessionpool._core.state import PoolState
from sessionpool._core.tags import normalize_tag
from sessionpool.errors import PoolClosed

A, B = "a=1", "b=2"  # two normalized session tags
ALICE, BOB = "alice", "bob"  # two per-user keys (None is the pool's own user)

# -- helpers: a tiny synchronous "shell" ------------------------------------------------------


def make(**settings: Any) -> PoolState:
    config: dict[str, Any] = {"min_size": 0, "max_size": 2}
    config.update(settings)
    return PoolState(**config)


def take(state: PoolState) -> list[Effect]:
    """Detach the effects the last calls left, as a shell does under its lock."""
    effects, state.effects = state.effects, []
    return effects


def opens(effects: list[Effect]) -> list[OpenConnections]:
    return [effect for effect in effects if isinstance(effect, OpenConnections)]


def closes(effects: list[Effect]) -> list[CloseConnection]:
    return [effect for effect in effects if isinstance(effect, CloseConnection)]


def woken(effects: list[Effect]) -> list[Request]:
    return [effect.request for effect in effects if isinstance(effect, Wake)]


def new_connection(state: PoolState) -> str:
    """A label for the next connection, deterministic per state (c1, c2, ...)."""
    return f"c{state.connections_opened + 1}"


def fulfil(state: PoolState, effects: list[Effect], now: float = 0.0) -> list[Effect]:
    """Open every connection ``effects`` ask for, successfully, and any those opens ask for in
    turn; return the effects produced on the way."""
    produced: list[Effect] = []
    pending = opens(effects)
    while pending:
        effect = pending.pop(0)
        for _ in range(effect.number):
            state.opened_connection(effect.key, new_connection(state), now, effect.request)
            more = take(state)
            produced.extend(more)
            pending.extend(opens(more))
    return produced


def started(now: float = 0.0, **settings: Any) -> PoolState:
    """A pool whose start-up opens all succeeded."""
    state = make(**settings)
    state.start()
    fulfil(state, take(state), now)
    return state


def borrow(
    state: PoolState,
    key: Hashable = None,
    tag: str | None = None,
    matchanytag: bool = False,
    now: float = 0.0,
) -> Slot:
    """Acquire as the shell does: take an idle slot, or queue and let every open succeed."""
    slot = state.acquire(key, tag, matchanytag)
    if slot is not None:
        return slot
    request = Request(key, tag, matchanytag)
    assert state.enqueue(request, "wait") == "queued"
    fulfil(state, take(state), now)
    assert request.slot is not None, "borrow() needs room to open a connection"
    return request.slot


def worked_before(state: PoolState, key: Hashable = None) -> PoolState:
    """Mark ``key`` as having opened a connection before, so that a failure is an outage,
    not the first connect going wrong (rule 6). White-box: opening one for real would leave
    slots and effects that each test would have to account for."""
    state._ever_opened.add(key)
    return state


def borrow_many(state: PoolState, count: int, key: Hashable = None) -> list[Slot]:
    return [borrow(state, key) for _ in range(count)]


def wait(
    state: PoolState,
    key: Hashable = None,
    tag: str | None = None,
    matchanytag: bool = False,
    when_exhausted: str = "wait",
) -> Request:
    """Queue a request after a failed acquire, leaving its effects in ``state.effects``."""
    assert state.acquire(key, tag, matchanytag) is None
    request = Request(key, tag, matchanytag)
    assert state.enqueue(request, when_exhausted) == "queued"
    return request


def idle_slots(state: PoolState) -> list[Slot]:
    return [slot for slot in state.slots() if slot.state == IDLE]


def check_figures(state: PoolState) -> None:
    """The figures agree with each other, with the slots, and with the stats snapshot."""
    slots = state.slots()
    assert state.busy + state.idle == state.opened == len(slots)
    assert state.busy == sum(slot.state == BUSY for slot in slots)
    assert state.idle == sum(slot.state == IDLE for slot in slots)
    assert state.waiting == len(state.waiters())
    stats = snapshot(state)
    assert (stats.opened, stats.busy, stats.idle, stats.opening, stats.waiting) == (
        state.opened,
        state.busy,
        state.idle,
        state.opening,
        state.waiting,
    )
    assert stats.acquires == state.acquires
    assert stats.hard_cap == state.cap


def calm_by_definition(state: PoolState) -> bool:
    return not state.waiters() and not state.closed and state.opened <= state.max_size


# -- start and growth ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected_count"),
    [
        pytest.param({"min_size": 0, "max_size": 3}, 0, id="min-0-opens-nothing"),
        pytest.param({"min_size": 1, "max_size": 3}, 1, id="min-1"),
        pytest.param({"min_size": 3, "max_size": 3}, 3, id="min-3-together"),
        pytest.param({"min_size": 3, "max_size": 4, "increment": 2}, 3, id="above-increment"),
        pytest.param({"min_size": 2, "max_size": 2, "increment": 5}, 2, id="increment-capped"),
        pytest.param({"min_size": 2, "max_size": 6, "increment": 4}, 2, id="exact-not-increment"),
    ],
)
def test_start_fills_to_min_size(settings: dict[str, Any], expected_count: int) -> None:
    state = make(**settings)
    assert take(state) == []  # construction decides nothing: the shell calls start()
    state.start()
    effects = take(state)
    expected = [OpenConnections(None, expected_count)] if expected_count else []
    assert effects == expected
    assert state.opening == expected_count
    assert fulfil(state, effects) == []
    assert (state.opened, state.idle, state.busy, state.opening) == (
        expected_count,
        expected_count,
        0,
        0,
    )
    check_figures(state)


def test_lazy_pool_opens_nothing_until_the_first_enqueue() -> None:
    state = make(min_size=2, max_size=4, lazy=True)
    assert state.acquire(None, None, False) is None
    assert take(state) == []
    request = Request(None, None, False)
    assert state.enqueue(request, "wait") == "queued"
    effects = take(state)
    # One for the request, then the rest of min_size.
    assert effects == [OpenConnections(None, 1), OpenConnections(None, 1)]
    fulfil(state, effects)
    assert request.slot is not None
    assert (state.opened, state.busy, state.idle) == (2, 1, 1)


@pytest.mark.parametrize(
    ("settings", "busy_before", "expected_count"),
    [
        pytest.param({"max_size": 10, "increment": 3}, 0, 3, id="rounded-up-to-increment"),
        pytest.param({"max_size": 2, "increment": 5}, 0, 2, id="rounded-up-only-within-max"),
        pytest.param({"max_size": 4, "increment": 3}, 3, 1, id="one-left-below-max"),
        pytest.param(
            {"max_size": 2, "max_overflow": 3, "increment": 5}, 2, 1, id="overflow-on-demand-only"
        ),
        pytest.param({"max_size": 2, "increment": 5}, 2, 0, id="at-cap-opens-nothing"),
        pytest.param(
            {"max_size": 2, "max_overflow": -1, "increment": 3}, 2, 1, id="no-cap-shortfall-only"
        ),
    ],
)
def test_increment_on_demand(
    settings: dict[str, Any], busy_before: int, expected_count: int
) -> None:
    state = make(**settings)
    for _ in range(busy_before):
        borrow(state)
    assert (state.busy, state.idle, state.opening) == (busy_before, 0, 0)
    wait(state)
    effects = take(state)
    assert effects == ([OpenConnections(None, expected_count)] if expected_count else [])
    assert state.opening == expected_count
    if state.cap is not None:
        assert state.opened + state.opening <= state.cap


def test_waiters_share_one_increment_batch() -> None:
    state = make(max_size=10, increment=3)
    counts = []
    for _ in range(4):
        wait(state)
        counts.append(sum(effect.number for effect in opens(take(state))))
    assert counts == [3, 0, 0, 3]  # the 2nd and 3rd waiters are served by the first batch
    assert state.opening == 6


# -- caps ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "script"),
    [
        pytest.param({"max_size": 2}, "EEEEOOEERRRR", id="cap-2"),
        pytest.param({"max_size": 2, "max_overflow": 1, "increment": 2}, "EEEEEOOORRR", id="cap-3"),
        pytest.param({"min_size": 2, "max_size": 3, "increment": 3}, "EOEOEEEORRROR", id="min"),
        pytest.param({"max_size": 1, "max_overflow": 1}, "EEOEOEROROR", id="overflow"),
    ],
)
def test_hard_cap_is_never_exceeded(settings: dict[str, Any], script: str) -> None:
    """E = enqueue a request, O = complete the oldest pending open, R = release a held slot."""
    state = make(**settings)
    state.start()
    pending: list[OpenConnections] = []
    held: list[Slot] = []
    peak = 0
    assert state.cap is not None

    def run(effects: list[Effect]) -> None:
        pending.extend(
            OpenConnections(effect.key, 1)
            for effect in opens(effects)
            for _ in range(effect.number)
        )
        held.extend(request.slot for request in woken(effects) if request.slot is not None)

    run(take(state))
    for step in script:
        if step == "E":
            slot = state.acquire(None, None, False)
            if slot is not None:
                held.append(slot)
            else:
                assert state.enqueue(Request(None, None, False), "wait") == "queued"
        elif step == "O" and pending:
            effect = pending.pop(0)
            state.opened_connection(effect.key, new_connection(state), 0.0)
        elif step == "R" and held:
            state.release(held.pop(0), 1.0)
        run(take(state))
        assert state.opened + state.opening <= state.cap, step
        assert state.busy == len(held)
        check_figures(state)
        peak = max(peak, state.opened + state.opening)
    assert peak == state.cap  # the script did push against the cap


def test_overflow_connection_is_closed_on_release_when_nobody_waits() -> None:
    state = make(max_size=1, max_overflow=1)
    kept, extra = borrow_many(state, 2)
    assert state.opened == 2 and not state.calm
    state.release(extra, 1.0)
    assert take(state) == [CloseConnection(extra, "overflow")]
    assert extra.state == CLOSED
    assert (state.opened, state.idle, state.busy) == (1, 0, 1)
    state.release(kept, 2.0)
    assert take(state) == []
    assert (state.opened, state.idle) == (1, 1)
    assert state.calm


def test_overflow_connection_goes_to_a_waiter_instead_of_closing() -> None:
    state = make(max_size=1, max_overflow=1)
    _, extra = borrow_many(state, 2)
    request = wait(state)
    assert take(state) == []  # at the cap: it waits for a release
    state.release(extra, 1.0)
    assert take(state) == [Wake(request)]
    assert request.slot is extra and extra.state == BUSY


def test_max_overflow_minus_one_means_no_cap() -> None:
    state = make(max_size=1, max_overflow=-1)
    assert state.cap is None
    slots = borrow_many(state, 6)
    assert (state.opened, state.busy) == (6, 6)
    for now, slot in enumerate(slots):
        state.release(slot, float(now))
    assert len(closes(take(state))) == 5  # back down to max_size with nobody waiting
    assert (state.opened, state.idle) == (1, 1)


# -- when_exhausted --------------------------------------------------------------------------


def _at_cap() -> PoolState:
    state = make(max_size=1)
    borrow(state)
    return state


def _room_left() -> PoolState:
    state = make(max_size=2)
    borrow(state)
    return state


def _open_on_its_way() -> PoolState:
    state = make(min_size=1, max_size=1)
    state.start()
    take(state)
    return state


def _open_on_its_way_claimed() -> PoolState:
    state = _open_on_its_way()
    wait(state)
    take(state)
    return state


def _idle_of_another_user() -> PoolState:
    state = make(max_size=1)
    state.release(borrow(state, ALICE), 1.0)
    return state


def _idle_with_another_tag() -> PoolState:
    state = make(max_size=1)
    state.release(borrow(state), 1.0, A)
    return state


def _closed() -> PoolState:
    state = make(max_size=1)
    state.close(force=False)
    take(state)
    return state


@pytest.mark.parametrize(
    ("build", "key", "tag", "expected", "expected_effects"),
    [
        pytest.param(_at_cap, None, None, "exhausted", [], id="at-cap-nothing-free"),
        pytest.param(_room_left, None, None, "queued", ["open"], id="room-to-open"),
        pytest.param(_open_on_its_way, None, None, "queued", [], id="open-on-its-way"),
        pytest.param(_open_on_its_way_claimed, None, None, "exhausted", [], id="open-claimed"),
        pytest.param(_open_on_its_way, BOB, None, "exhausted", [], id="open-for-other-user"),
        pytest.param(
            _idle_of_another_user, None, None, "queued", ["close", "open"], id="evictable-user"
        ),
        pytest.param(
            _idle_with_another_tag, None, B, "queued", ["close", "open"], id="evictable-tag"
        ),
        pytest.param(_closed, None, None, "closed", [], id="closed"),
    ],
)
def test_when_exhausted_fail(
    build: Callable[[], PoolState],
    key: Hashable,
    tag: str | None,
    expected: str,
    expected_effects: list[str],
) -> None:
    state = build()
    before = snapshot(state)
    assert state.acquire(key, tag, False) is None
    request = Request(key, tag, False)
    assert state.enqueue(request, "fail") == expected
    kinds = {OpenConnections: "open", CloseConnection: "close", Wake: "wake"}
    assert [kinds[type(effect)] for effect in take(state)] == expected_effects
    after = snapshot(state)
    if expected == "queued":
        assert state.waiters()[-1] is request and not request.is_settled
        assert after.waits == before.waits + 1
    else:
        assert request not in state.waiters() and not request.is_settled
        assert after.waits == before.waits
        assert after.exhausted == before.exhausted + (expected == "exhausted")


def test_when_exhausted_wait_queues_without_opening_at_the_cap() -> None:
    state = _at_cap()
    waits = state.waits
    request = wait(state)
    assert take(state) == []
    assert state.waiters() == (request,)
    assert (state.waiting, state.waits - waits, state.exhausted) == (1, 1, 0)
    assert not request.is_settled and not state.calm


# -- when_exhausted="force" ------------------------------------------------------------------


def test_force_opens_beyond_the_cap_for_that_request_alone() -> None:
    state = make(max_size=1)
    held = borrow(state)
    older = wait(state)  # waits for a release
    take(state)
    forced = wait(state, when_exhausted="force")
    assert forced.forced and not older.forced
    assert take(state) == [OpenConnections(None, 1, forced)]
    assert (state.opening, state.waiting) == (1, 2)

    slot = state.opened_connection(None, "extra", 1.0, forced)
    assert take(state) == [Wake(forced)]
    assert forced.slot is slot and slot.state == BUSY
    assert older.slot is None  # the older waiter does not get the forced connection
    assert state.opened == 2 == state.cap + 1

    state.release(slot, 2.0)  # back while over the cap: closed, not handed to `older`
    assert take(state) == [CloseConnection(slot, "opened beyond the cap")]
    assert state.opened == 1 and older.slot is None
    state.release(held, 3.0)
    assert take(state) == [Wake(older)]
    assert older.slot is held


def test_force_with_room_left_is_an_ordinary_wait() -> None:
    state = _room_left()
    request = wait(state, when_exhausted="force")
    assert not request.forced
    assert take(state) == [OpenConnections(None, 1)]


def test_failed_forced_open_fails_only_its_request() -> None:
    state = make(max_size=1)
    borrow(state)
    older = wait(state)
    forced = wait(state, when_exhausted="force")
    take(state)
    error = ConnectionError("refused")
    state.open_failed(None, error, forced)
    assert take(state) == [Wake(forced)]
    assert forced.error is error and forced.slot is None
    assert older.error is None and state.waiters() == (older,)
    assert (state.opening, state.connect_errors) == (0, 1)
    assert state.last_connect_error is error


def test_forced_open_arriving_after_its_request_left_is_closed() -> None:
    state = make(max_size=1)
    borrow(state)
    forced = wait(state, when_exhausted="force")
    take(state)
    assert state.cancel(forced, timed_out=True) is None
    slot = state.opened_connection(None, "late", 1.0, forced)
    assert take(state) == [CloseConnection(slot, "opened beyond the cap")]
    assert forced.slot is None and state.opened == 1 and state.opening == 0


@pytest.mark.parametrize(
    "newer_waiter",
    [
        pytest.param(False, id="alone"),
        pytest.param(True, id="with-a-newer-waiter"),
    ],
)
def test_connection_returned_while_a_forced_request_waits_serves_it(newer_waiter: bool) -> None:
    """Rule 3: a returned connection goes to the oldest waiting request that accepts it, so an
    idle slot never sits beside such a request and a later caller never overtakes it."""
    state = make(max_size=1)
    held = borrow(state)
    forced = wait(state, when_exhausted="force")  # its own open may take long (a slow server)
    newer = wait(state) if newer_waiter else None
    take(state)
    state.release(held, 1.0)
    take(state)
    beside = [slot for slot in idle_slots(state) if any(w.accepts(slot) for w in state.waiters())]
    assert beside == []
    assert forced.slot is held, "the oldest waiting request accepts it"
    if newer is not None:
        assert newer.slot is None
    # Its own open, arriving later, is placed like any connection: over the cap, closed.
    late = state.opened_connection(None, "late", 2.0, forced)
    assert take(state) == [CloseConnection(late, "opened beyond the cap")]
    assert forced.slot is held and state.opened == 1


# -- FIFO ------------------------------------------------------------------------------------


def test_released_connections_serve_waiters_in_arrival_order() -> None:
    state = make(max_size=1)
    slot = borrow(state)
    requests = [wait(state) for _ in range(3)]
    take(state)
    handoffs = state.handoffs
    served = []
    for now in range(3):
        state.release(slot, float(now))
        (request,) = woken(take(state))
        served.append(request)
        assert request.slot is slot
    assert served == requests
    assert state.handoffs - handoffs == 3


@pytest.mark.parametrize(
    ("waiters", "released", "expected"),
    [
        pytest.param([(None, A, False), (None, None, False)], (None, B), 1, id="untagged-takes-b"),
        pytest.param([(None, A, False), (None, A, True)], (None, B), 1, id="matchanytag-takes-b"),
        pytest.param([(None, A, False), (None, None, False)], (None, A), 0, id="exact-tag-oldest"),
        pytest.param([(None, A, False), (None, B, False)], (None, B), 1, id="own-tag-only"),
        pytest.param([(None, B, False), (None, None, False)], (None, None), 0, id="untagged-slot"),
        pytest.param([(ALICE, None, False), (None, None, False)], (None, None), 1, id="other-user"),
        pytest.param([(None, A, True), (ALICE, None, False)], (ALICE, A), 1, id="keys-first"),
        pytest.param([(None, A, False)], (None, B), None, id="nobody-accepts"),
    ],
)
def test_released_connection_goes_to_the_oldest_waiter_that_accepts_it(
    waiters: list[tuple[Hashable, str | None, bool]],
    released: tuple[Hashable, str | None],
    expected: int | None,
) -> None:
    state = make(max_size=1)
    key, tag = released
    slot = borrow(state, key)
    requests = [wait(state, *spec) for spec in waiters]
    assert take(state) == []  # at the cap: everyone waits for a release
    state.release(slot, 1.0, tag)
    effects = take(state)
    if expected is None:
        assert woken(effects) == []
        assert all(request.slot is None for request in requests)
        # Nobody can use it, so it makes room for them: closed, and one opened in its place.
        assert effects == [
            CloseConnection(slot, "evicted for another user or tag"),
            OpenConnections(None, 1),
        ]
    else:
        assert woken(effects) == [requests[expected]]
        assert requests[expected].slot is slot
        assert requests[expected].accepts(slot)
        assert [r for r in state.waiters()] == [r for r in requests if r is not requests[expected]]


def test_a_new_caller_never_takes_a_slot_a_waiter_accepts() -> None:
    state = make(max_size=2)
    first, second = borrow_many(state, 2)
    request = wait(state, tag=A)
    take(state)
    state.release(first, 1.0, B)  # request does not accept b: idle, then evicted for it
    effects = take(state)
    assert closes(effects) == [CloseConnection(first, "evicted for another user or tag")]
    state.release(second, 2.0)  # untagged: request accepts it
    assert take(state) == [Wake(request)]
    assert state.acquire(None, None, False) is None


# -- cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timed_out", "expected_timeouts"),
    [pytest.param(True, 1, id="deadline-passed"), pytest.param(False, 0, id="interrupted")],
)
def test_cancel_of_a_waiting_request(timed_out: bool, expected_timeouts: int) -> None:
    state = _at_cap()
    request = wait(state)
    other = wait(state)
    take(state)
    assert state.cancel(request, timed_out=timed_out) is None
    assert take(state) == []
    assert state.waiters() == (other,)
    assert (state.timeouts, state.waiting) == (expected_timeouts, 1)
    assert not request.is_settled


def test_cancelled_request_is_skipped_by_the_next_release() -> None:
    state = make(max_size=1)
    slot = borrow(state)
    gone, stays = wait(state), wait(state)
    state.cancel(gone, timed_out=True)
    state.release(slot, 1.0)
    assert woken(take(state)) == [stays]
    assert gone.slot is None and stays.slot is slot


def test_cancel_after_the_grant_returns_the_slot() -> None:
    state = make(max_size=1)
    slot = borrow(state)
    request = wait(state)
    state.release(slot, 1.0)
    take(state)
    before = snapshot(state)
    assert state.cancel(request, timed_out=True) is slot
    assert snapshot(state) == before  # nothing counted twice, no timeout recorded
    assert slot.state == BUSY
    state.release(slot, 2.0)  # the caller gives it back
    assert (state.idle, state.busy) == (1, 0)


def test_cancel_after_a_failure_returns_nothing() -> None:
    state = make(max_size=1)
    borrow(state)
    request = wait(state, when_exhausted="force")
    take(state)
    state.open_failed(None, ConnectionError("down"), request)
    assert request.error is not None
    assert state.cancel(request, timed_out=True) is None
    assert state.timeouts == 0


# -- failed opens ----------------------------------------------------------------------------


def test_failed_open_keeps_the_waiters_and_asks_for_a_retry() -> None:
    state = worked_before(make(max_size=3))
    of_alice = wait(state, ALICE)
    first, second = wait(state), wait(state)
    assert take(state) == [OpenConnections(ALICE, 1)] + [OpenConnections(None, 1)] * 2
    error = OSError("connection refused")
    state.open_failed(None, error)
    assert take(state) == [RetryOpens(0.05, 1)]  # nobody failed, nothing opened
    assert state.waiters() == (of_alice, first, second)
    assert not any(request.is_settled for request in state.waiters())
    assert (state.connect_errors, state.last_connect_error, state.opening) == (1, error, 2)
    assert state.outage and state.holding


def test_during_an_outage_attempts_back_off_and_go_one_at_a_time() -> None:
    """Rule 6: a down server sees one connect per retry, the retries 50 ms apart at first
    and at most 0.5 s apart later, whatever the number of waiters."""
    state = worked_before(make(max_size=4))
    requests = [wait(state) for _ in range(4)]
    assert sum(effect.number for effect in opens(take(state))) == 4
    delays = []
    for _ in range(4):
        state.open_failed(None, ConnectionError("down"))
    effects = take(state)
    assert opens(effects) == [] and len(effects) == 1  # one timer for four failures
    for _ in range(6):
        (retry,) = effects
        assert isinstance(retry, RetryOpens)
        delays.append(retry.delay)
        state.retry_opens(retry.token)
        assert take(state) == [OpenConnections(None, 1)]  # a single probe
        state.open_failed(None, ConnectionError("down"))
        effects = take(state)
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    assert state.connect_errors == 4 + 6 and state.waiting == 4
    # The server is back: the probe succeeds and everything else is opened at once.
    (retry,) = effects
    state.retry_opens(retry.token)
    take(state)
    state.opened_connection(None, "back", 1.0)
    effects = take(state)
    assert woken(effects) == requests[:1]
    assert opens(effects) == [OpenConnections(None, 3)]
    assert not state.outage and not state.holding
    state.retry_opens(retry.token)  # a stale timer does nothing
    assert take(state) == []


def test_a_failed_min_size_fill_is_retried_one_probe_at_a_time() -> None:
    state = make(min_size=2, max_size=2)
    state.start()
    assert take(state) == [OpenConnections(None, 2)]
    state.open_failed(None, ConnectionError("down"))
    state.open_failed(None, ConnectionError("down"))
    (retry,) = take(state)
    assert isinstance(retry, RetryOpens)
    state.retry_opens(retry.token)
    assert take(state) == [OpenConnections(None, 1)]
    state.opened_connection(None, "back", 1.0)
    assert take(state) == [OpenConnections(None, 1)]  # the rest of min_size, now
    assert (state.opening, state.opened, state.connect_errors) == (1, 1, 2)


def test_a_waiter_with_an_open_still_on_its_way_keeps_waiting() -> None:
    state = worked_before(make(max_size=4, increment=2))
    request = wait(state)
    assert take(state) == [OpenConnections(None, 2)]
    state.open_failed(None, ConnectionError("one failed"))
    assert take(state) == [RetryOpens(0.05, 1)]
    assert not request.is_settled
    slot = state.opened_connection(None, "ok", 1.0)
    assert take(state) == [Wake(request)]
    assert request.slot is slot


def test_first_connect_failing_fails_the_oldest_waiter_at_once() -> None:
    """Rule 6's exception: a key that never opened a connection is probably misconfigured;
    its oldest waiter learns why now, not at its deadline (the retry still backs off)."""
    state = make(max_size=2)
    first, second = wait(state), wait(state)
    take(state)
    error = OSError("password authentication failed")
    state.open_failed(None, error)
    effects = take(state)
    assert woken(effects) == [first] and first.error is error
    assert [e for e in effects if isinstance(e, RetryOpens)] == [RetryOpens(0.05, 1)]
    assert state.waiters() == (second,)


def test_an_outage_of_one_key_holds_back_no_other_key() -> None:
    """Rule 6 is per key: alice's rotated password puts alice in an outage; the pool's own
    waiters go on opening at once."""
    state = worked_before(worked_before(make(max_size=4)), ALICE)
    of_alice = wait(state, ALICE)
    assert take(state) == [OpenConnections(ALICE, 1)]
    state.open_failed(ALICE, OSError("password authentication failed"))
    assert take(state) == [RetryOpens(0.05, 1)]
    assert state.in_outage(ALICE) and not state.in_outage(None)
    mine = wait(state)
    assert take(state) == [OpenConnections(None, 1)]  # not held back by alice's outage
    state.opened_connection(None, "mine", 1.0)
    assert woken(take(state)) == [mine] and not of_alice.is_settled


def test_close_voids_the_retry() -> None:
    state = worked_before(make(max_size=1))
    request = wait(state)
    take(state)
    state.open_failed(None, ConnectionError("down"))
    (retry,) = take(state)
    state.close(force=False)
    assert woken(take(state)) == [request]
    state.retry_opens(retry.token)
    assert take(state) == [] and state.opening == 0


# -- tags ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idle_tags", "tag", "matchanytag", "expected"),
    [
        pytest.param([None, A, B], A, False, A, id="exact-tag-first"),
        pytest.param([B, None], A, False, None, id="then-untagged"),
        pytest.param([B], A, False, "nothing", id="other-tag-refused"),
        pytest.param([B], A, True, B, id="other-tag-with-matchanytag"),
        pytest.param([A, B, None], None, False, None, id="untagged-prefers-untagged"),
        pytest.param([B], None, False, B, id="untagged-takes-any-tag"),
        pytest.param([None, B], A, True, None, id="matchanytag-still-prefers-untagged"),
        pytest.param([], A, True, "nothing", id="nothing-idle"),
    ],
)
def test_tag_lookup_order(
    idle_tags: list[str | None], tag: str | None, matchanytag: bool, expected: str | None
) -> None:
    state = make(max_size=4)
    slots = borrow_many(state, len(idle_tags))
    for now, (slot, idle_tag) in enumerate(zip(slots, idle_tags, strict=True)):
        state.release(slot, float(now), idle_tag)
    slot = state.acquire(None, tag, matchanytag)
    if expected == "nothing":
        assert slot is None
        assert state.idle == len(idle_tags)
    else:
        assert slot is not None and slot.tag == expected
        assert slot.state == BUSY
        assert Request(None, tag, matchanytag).accepts(slot)
    check_figures(state)


@pytest.mark.parametrize(
    ("request_spec", "slot_spec", "expected"),
    [
        pytest.param((None, None, False), (None, A), True, id="untagged-accepts-tagged"),
        pytest.param((None, A, False), (None, None), True, id="tagged-accepts-untagged"),
        pytest.param((None, A, False), (None, A), True, id="tagged-accepts-same"),
        pytest.param((None, A, False), (None, B), False, id="tagged-refuses-other"),
        pytest.param((None, A, True), (None, B), True, id="matchanytag-accepts-other"),
        pytest.param((ALICE, None, False), (None, None), False, id="other-key-refused"),
        pytest.param((ALICE, None, True), (BOB, None), False, id="matchanytag-not-other-key"),
        pytest.param((ALICE, A, False), (ALICE, A), True, id="same-key-same-tag"),
    ],
)
def test_request_accepts(
    request_spec: tuple[Hashable, str | None, bool],
    slot_spec: tuple[Hashable, str | None],
    expected: bool,
) -> None:
    slot = Slot("c", slot_spec[0], 0, 0.0)
    slot.tag = slot_spec[1]
    assert Request(*request_spec).accepts(slot) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("", None, id="empty"),
        pytest.param(" ; ;", None, id="only-separators"),
        pytest.param("a=1", "a=1", id="one-pair"),
        pytest.param("b=2;a=1", "a=1;b=2", id="sorted"),
        pytest.param(" b = 2 ;  a=1 ", "a=1;b=2", id="whitespace"),
        pytest.param("a=1;;b=2;", "a=1;b=2", id="empty-parts"),
        pytest.param("a=", "a=", id="empty-value"),
        pytest.param("url=x=y", "url=x=y", id="equals-in-value"),
    ],
)
def test_normalize_tag(raw: str | None, expected: str | None) -> None:
    assert normalize_tag(raw) == expected
    assert normalize_tag(raw) == expected  # the cached answer is the same


@pytest.mark.parametrize(
    ("raw", "error", "match"),
    [
        pytest.param("a", ValueError, "not of the form name=value", id="no-equals"),
        pytest.param("a=1;b", ValueError, "'b'", id="second-part"),
        pytest.param("=1", ValueError, "name=value", id="no-name"),
        pytest.param(" =1", ValueError, "name=value", id="blank-name"),
        pytest.param(5, TypeError, "tag must be a string", id="int"),
        pytest.param(b"a=1", TypeError, "tag must be a string", id="bytes"),
        pytest.param(["a=1"], TypeError, "tag must be a string", id="list"),
    ],
)
def test_normalize_tag_rejects_malformed_tags(raw: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        normalize_tag(raw)


def test_order_insensitive_tags_find_each_other() -> None:
    state = make(max_size=2)
    state.release(borrow(state), 1.0, normalize_tag("tz=UTC; nls=fr"))
    slot = state.acquire(None, normalize_tag("nls=fr;tz=UTC"), False)
    assert slot is not None and slot.tag == "nls=fr;tz=UTC"


# -- per-user keys ---------------------------------------------------------------------------


def test_a_slot_of_one_user_is_never_lent_to_another() -> None:
    state = make(max_size=2)
    of_alice = borrow(state, ALICE)
    state.release(of_alice, 1.0)
    assert state.acquire(BOB, None, True) is None
    request = wait(state, BOB)
    assert take(state) == [OpenConnections(BOB, 1)]  # room left: nothing evicted
    fulfil(state, [OpenConnections(BOB, 1)])
    assert request.slot is not None and request.slot.key == BOB
    assert of_alice.state == IDLE


def test_release_of_another_users_slot_does_not_serve_a_waiter() -> None:
    state = make(max_size=1)
    of_alice = borrow(state, ALICE)
    request = wait(state, BOB)
    assert take(state) == []
    state.release(of_alice, 1.0)
    assert take(state) == [
        CloseConnection(of_alice, "evicted for another user or tag"),
        OpenConnections(BOB, 1),
    ]
    assert request.slot is None
    fulfil(state, [OpenConnections(BOB, 1)])
    assert request.slot is not None and request.slot.key == BOB


@pytest.mark.parametrize(
    ("release_order", "evicted"),
    [
        pytest.param([0, 1, 2], 0, id="alice-oldest"),
        pytest.param([1, 2, 0], 1, id="plain-oldest"),
        pytest.param([2, 0, 1], 2, id="tagged-alice-oldest"),
    ],
)
def test_at_the_cap_enqueue_evicts_the_least_recently_used_idle_slot(
    release_order: list[int], evicted: int
) -> None:
    state = make(max_size=3)
    slots = [borrow(state, ALICE), borrow(state, None), borrow(state, ALICE)]
    tags = [None, None, A]
    for now, index in enumerate(release_order):
        state.release(slots[index], float(now), tags[index])
    assert state.idle == 3
    request = wait(state, BOB)
    assert take(state) == [
        CloseConnection(slots[evicted], "evicted for another user or tag"),
        OpenConnections(BOB, 1),
    ]
    assert state.idle == 2 and slots[evicted].state == CLOSED
    fulfil(state, [OpenConnections(BOB, 1)])
    assert request.slot is not None and request.slot.key == BOB
    check_figures(state)


# -- generations -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "tag"),
    [pytest.param(None, None, id="plain"), pytest.param(ALICE, A, id="keyed-tagged")],
)
def test_invalidate_closes_idle_slots_when_met_and_never_lends_them(
    key: Hashable, tag: str | None
) -> None:
    state = make(max_size=3)
    slots = [borrow(state, key) for _ in range(2)]
    for now, slot in enumerate(slots):
        state.release(slot, float(now), tag)
    generation = state.generation
    state.invalidate()
    assert state.generation == generation + 1
    assert take(state) == []  # O(1): nothing happens until the slots are met
    assert state.acquire(key, tag, False) is None
    assert sorted(effect.reason for effect in closes(take(state))) == ["invalidated"] * 2
    assert all(slot.state == CLOSED for slot in slots)
    assert state.opened == 0
    fresh = borrow(state, key, tag)
    assert fresh.generation == state.generation and fresh not in slots


def test_invalidated_busy_slot_is_closed_on_release_and_a_waiter_gets_a_new_one() -> None:
    state = make(max_size=1)
    stale = borrow(state)
    state.invalidate()
    request = wait(state)
    take(state)
    state.release(stale, 1.0)
    assert take(state) == [CloseConnection(stale, "invalidated"), OpenConnections(None, 1)]
    assert request.slot is None
    fulfil(state, [OpenConnections(None, 1)])
    assert request.slot is not None and request.slot.generation == state.generation


def test_invalidated_busy_slot_released_with_nobody_waiting_is_closed() -> None:
    state = make(max_size=2)
    stale = borrow(state)
    state.invalidate()
    state.release(stale, 1.0)
    assert take(state) == [CloseConnection(stale, "invalidated")]
    assert (state.opened, state.idle) == (0, 0)


# -- discard ---------------------------------------------------------------------------------


def test_discard_of_a_lent_slot_closes_it_and_refills_min_size() -> None:
    state = started(min_size=1, max_size=2)
    slot = borrow(state)
    state.discard(slot, "dropped by the borrower")
    assert take(state) == [
        CloseConnection(slot, "dropped by the borrower"),
        OpenConnections(None, 1),
    ]
    assert slot.state == CLOSED and (state.opened, state.busy) == (0, 0)


def test_discard_of_an_idle_tagged_slot_removes_it_from_the_idle_set() -> None:
    state = make(max_size=2)
    slot = borrow(state, ALICE)
    state.release(slot, 1.0, A)
    state.discard(slot, "ping failed")
    assert take(state) == [CloseConnection(slot, "ping failed")]
    assert (state.opened, state.idle) == (0, 0)
    assert state.acquire(ALICE, A, True) is None
    state.discard(slot, "again")  # already closed: nothing to do
    assert take(state) == []


def test_discard_at_the_cap_opens_for_a_waiter() -> None:
    state = make(max_size=1)
    slot = borrow(state)
    request = wait(state)
    take(state)
    state.discard(slot, "broken")
    effects = take(state)
    assert effects == [CloseConnection(slot, "broken"), OpenConnections(None, 1)]
    fulfil(state, effects)
    assert request.slot is not None and request.slot is not slot


# -- close -----------------------------------------------------------------------------------


def test_close_without_force_is_refused_while_connections_are_lent() -> None:
    state = make(max_size=2)
    slot = borrow(state)
    state.release(borrow(state), 1.0)
    before = snapshot(state)
    assert state.close(force=False) is False
    assert take(state) == []
    assert not state.closed and snapshot(state) == before
    state.release(slot, 2.0)
    assert state.close(force=False) is True
    assert len(closes(take(state))) == 2
    assert state.closed and state.opened == 0


def test_close_with_force_closes_everything_and_fails_waiters() -> None:
    state = make(max_size=2)
    lent, idle = borrow_many(state, 2)
    state.release(idle, 1.0, A)
    waiters = [wait(state, tag=B), wait(state, tag=B)]
    pending = opens(take(state))  # b is short: the idle a-slot was evicted for them
    assert pending == [OpenConnections(None, 1)]
    assert state.close(force=True) is True
    effects = take(state)
    assert {effect.slot for effect in closes(effects)} == {lent}
    assert woken(effects) == waiters
    assert all(isinstance(request.error, PoolClosed) for request in waiters)
    assert (state.opened, state.idle, state.busy, state.waiting) == (0, 0, 0, 0)
    assert lent.state == CLOSED and not state.calm

    # After the close: nothing is lent, queued or kept.
    assert state.enqueue(Request(None, None, False), "wait") == "closed"
    state.release(lent, 2.0)  # the forced-closed lease comes back: ignored
    slot = state.opened_connection(None, "late", 3.0)
    assert take(state) == [CloseConnection(slot, "pool closed")]
    assert state.cancel(waiters[0], timed_out=True) is None
    state.start()
    assert take(state) == [] and state.opened == 0 and state.opening == 0


def test_failed_open_after_close_fails_nobody_twice() -> None:
    state = make(max_size=1)
    request = wait(state)
    take(state)
    assert state.close(force=False) is True  # nothing lent: a plain close succeeds
    assert woken(take(state)) == [request]
    state.open_failed(None, ConnectionError("late"))
    assert take(state) == []
    assert isinstance(request.error, PoolClosed)


# -- figures and stats -----------------------------------------------------------------------


def test_figures_and_stats_snapshot() -> None:
    state = started(min_size=1, max_size=2, max_overflow=1)
    check_figures(state)
    first = borrow(state)  # from the idle set
    second = borrow(state)  # opened for a waiter
    third = borrow(state)  # overflow
    check_figures(state)
    assert state.enqueue(Request(None, None, False), "fail") == "exhausted"
    timed_out = wait(state)
    state.cancel(timed_out, timed_out=True)
    state.release(third, 1.0)  # overflow, nobody waiting: closed
    state.release(second, 2.0)
    worked_before(state, ALICE)
    failing = wait(state, ALICE)  # room for one more
    take(state)
    state.open_failed(ALICE, ConnectionError("down"))
    take(state)
    state.cancel(failing, timed_out=True)  # it waited out its deadline
    check_figures(state)
    assert failing.error is None and first.state == BUSY
    assert snapshot(state) == CoreCounts(
        min_size=1,
        max_size=2,
        hard_cap=3,
        opened=2,
        busy=1,
        idle=1,
        opening=0,
        waiting=0,
        acquires=3,  # still counts the closed overflow connection's use
        waits=4,
        handoffs=2,
        timeouts=2,
        exhausted=1,
        connections_opened=3,
        connections_closed=1,
        connect_errors=1,
        retired_idle=0,
        retired_expired=0,
        keepalive_failures=0,
        leaks_reported=0,
        reclaimed=0,
        closed_by_reason={"overflow": 1},
    )
    assert snapshot(state).as_dict()["acquires"] == 3


@pytest.mark.parametrize(
    ("lifo", "key", "tag", "expected"),
    [
        pytest.param(True, None, None, "newest", id="lifo-plain"),
        pytest.param(False, None, None, "oldest", id="fifo-plain"),
        pytest.param(True, ALICE, A, "newest", id="lifo-keyed-tagged"),
        pytest.param(False, ALICE, A, "oldest", id="fifo-keyed-tagged"),
    ],
)
def test_idle_order(lifo: bool, key: Hashable, tag: str | None, expected: str) -> None:
    state = make(max_size=3, lifo=lifo)
    oldest, middle, newest = [borrow(state, key) for _ in range(3)]
    for now, slot in enumerate((oldest, middle, newest)):
        state.release(slot, float(now), tag)
    taken = state.acquire(key, tag, False)
    assert taken is (newest if expected == "newest" else oldest)
    taken_next = state.acquire(key, tag, False)
    assert taken_next is middle


# -- the fast lane and `calm` ----------------------------------------------------------------


def fast_acquire(state: PoolState) -> Slot | None:
    """The documented fast-lane acquire, by hand (as the threaded shell inlines it)."""
    if state.fast_idle:
        slot = state.pop_fast_idle()
        if slot.generation == state.generation:
            slot.state = BUSY
            slot.uses += 1
            return slot
        state.unpop_fast_idle(slot)
    return state.acquire(None, None, False)


def fast_release(state: PoolState, slot: Slot, now: float) -> None:
    """The documented fast-lane release, by hand."""
    if state.calm and slot.key is None and slot.generation == state.generation:
        slot.last_used = now
        slot.tag = None
        slot.state = IDLE
        state.fast_idle.append(slot)
        return
    state.release(slot, now)


def observe(state: PoolState) -> tuple[object, ...]:
    """Everything a caller or a test can see of a state, with slots named by connection."""
    slots = sorted(
        (slot.connection, slot.state, slot.uses, slot.tag, slot.last_used, slot.generation)
        for slot in state.slots()
    )
    effects = [
        (type(effect).__name__, getattr(effect, "slot", None) and effect.slot.connection)  # type: ignore[union-attr]
        for effect in state.effects
    ]
    return (
        snapshot(state),
        state.calm,
        state.generation,
        [slot.connection for slot in state.fast_idle],
        slots,
        effects,
    )


def _three_idle(state: PoolState) -> None:
    state.start()
    fulfil(state, take(state))


def _stale_and_fresh(state: PoolState) -> None:
    # fast_idle ends as [stale, fresh]: LIFO meets the fresh one, FIFO the stale one first.
    _three_idle(state)
    lent = state.acquire(None, None, False)
    assert lent is not None
    state.invalidate()
    state.release(lent, 1.0)  # stale: closed, and min_size refilled with a fresh one
    fulfil(state, take(state))


def _all_stale(state: PoolState) -> None:
    _three_idle(state)
    state.invalidate()


def _tagged_idle(state: PoolState) -> None:
    # An untagged request may take a tagged session; given back untagged, it is plain again.
    state.start()
    fulfil(state, take(state))
    slots = [state.acquire(None, None, False) for _ in range(3)]
    for now, slot in enumerate(slots):
        assert slot is not None
        state.release(slot, float(now), A)


@pytest.mark.parametrize("lifo", [pytest.param(True, id="lifo"), pytest.param(False, id="fifo")])
@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(_three_idle, id="three-idle"),
        pytest.param(_stale_and_fresh, id="stale-and-fresh"),
        pytest.param(_all_stale, id="all-stale"),
        pytest.param(_tagged_idle, id="tagged-idle"),
    ],
)
def test_fast_lane_by_hand_matches_acquire_and_release(
    lifo: bool, prepare: Callable[[PoolState], None]
) -> None:
    by_hand = make(min_size=3, max_size=4, lifo=lifo)
    by_call = make(min_size=3, max_size=4, lifo=lifo)
    prepare(by_hand)
    prepare(by_call)
    assert by_hand.calm and by_call.calm
    assert observe(by_hand) == observe(by_call)

    got_by_hand = fast_acquire(by_hand)
    got_by_call = by_call.acquire(None, None, False)
    assert (got_by_hand and got_by_hand.connection) == (got_by_call and got_by_call.connection)
    assert observe(by_hand) == observe(by_call)
    if got_by_hand is None or got_by_call is None:
        assert got_by_hand is got_by_call is None
        return
    fast_release(by_hand, got_by_hand, 9.0)
    by_call.release(got_by_call, 9.0)
    assert observe(by_hand) == observe(by_call)
    assert got_by_hand.state == IDLE and got_by_hand.tag is None
    check_figures(by_hand)


def _calm_pool() -> PoolState:
    return started(min_size=1, max_size=2)


def _with_waiter() -> PoolState:
    state = _at_cap()
    wait(state)
    return state


def _with_forced_waiter() -> PoolState:
    state = _at_cap()
    wait(state, when_exhausted="force")
    return state


def _above_max_size() -> PoolState:
    state = make(max_size=1, max_overflow=1)
    borrow_many(state, 2)
    return state


def _after_waiters_left() -> PoolState:
    state = _at_cap()
    state.cancel(wait(state), timed_out=True)
    return state


def _closed_idle() -> PoolState:
    state = _calm_pool()
    state.close(force=False)
    return state


@pytest.mark.parametrize(
    ("build", "expected"),
    [
        pytest.param(_calm_pool, True, id="calm"),
        pytest.param(_with_waiter, False, id="waiter"),
        pytest.param(_with_forced_waiter, False, id="forced-waiter"),
        pytest.param(_above_max_size, False, id="above-max-size"),
        pytest.param(_after_waiters_left, True, id="waiters-left"),
        pytest.param(_closed_idle, False, id="closed"),
    ],
)
def test_calm(build: Callable[[], PoolState], expected: bool) -> None:
    state = build()
    assert state.calm is expected
    assert state.calm == calm_by_definition(state)


def test_calm_is_recomputed_when_acquire_closes_stale_slots() -> None:
    """The module promises `calm` is recomputed after every call that can change its inputs;
    `acquire` changes `opened` when it closes stale idle slots."""
    state = make(max_size=1, max_overflow=2)
    borrow(state)
    extra = borrow(state)  # opened 2 > max_size 1: not calm
    request = wait(state, ALICE)  # room: an open for alice goes on its way
    take(state)
    state.release(extra, 1.0)  # alice does not accept it and has an open coming: kept idle
    assert extra.state == IDLE
    state.cancel(request, timed_out=True)
    assert state.calm is False == calm_by_definition(state)
    state.invalidate()
    assert state.acquire(None, None, False) is None  # closes the stale idle `extra`
    assert take(state) == [CloseConnection(extra, "invalidated")]
    assert state.opened == 1 and calm_by_definition(state)
    assert state.calm == calm_by_definition(state)


@pytest.mark.parametrize(
    ("when_exhausted", "expected"),
    [pytest.param("fail", "exhausted", id="fail"), pytest.param("wait", "queued", id="wait")],
)
def test_no_eviction_while_a_forced_open_holds_the_room(when_exhausted: str, expected: str) -> None:
    """Evicting an idle connection only helps if that room can be used. Here the forced open
    beyond the cap takes it: "fail" must refuse at once rather than queue a caller with
    nothing on its way (it would wait out its whole timeout), and neither mode may close a
    connection for nothing."""
    state = make(max_size=2)
    borrow(state)
    alice = wait(state, ALICE)
    assert take(state) == [OpenConnections(ALICE, 1)]
    forced = wait(state, BOB, when_exhausted="force")  # room 0: beyond the cap
    assert take(state) == [OpenConnections(BOB, 1, forced)]
    state.opened_connection(ALICE, "alice-1", 1.0)
    take(state)
    assert alice.slot is not None
    state.release(alice.slot, 2.0)  # idle now; the forced open is still on its way
    assert (state.opened, state.opening, state.idle) == (2, 1, 1)
    request = Request("carol", None, False)
    assert state.acquire("carol", None, False) is None
    result = state.enqueue(request, when_exhausted)
    assert (result, take(state)) == (expected, [])
    assert alice.slot.state == IDLE


def _waiter_behind_a_forced_open(state: PoolState) -> tuple[Request, Request | None]:
    held = borrow(state)
    waiter = wait(state)  # at the cap: waits for a release
    forced = wait(state, when_exhausted="force")
    take(state)
    state.discard(held, "broken")  # room 1 - 0 - 1 (the forced open) = 0: nothing to open
    assert take(state) == [CloseConnection(held, "broken")]
    return waiter, forced


def _waiter_behind_an_orphaned_open(state: PoolState) -> tuple[Request, Request | None]:
    gone = wait(state, ALICE)
    assert take(state) == [OpenConnections(ALICE, 1)]
    state.cancel(gone, timed_out=True)  # alice's open is still on its way, holding the room
    waiter = wait(state)
    assert take(state) == []  # room 1 - 0 - 1 = 0: nothing to open
    return waiter, None


@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(_waiter_behind_a_forced_open, id="forced-open-failed"),
        pytest.param(_waiter_behind_an_orphaned_open, id="other-users-open-failed"),
    ],
)
def test_a_failed_open_leaves_no_waiter_stranded(
    prepare: Callable[[PoolState], tuple[Request, Request | None]],
) -> None:
    """The room a failed open gives back must be planned for whoever still waits, whatever
    key the open was for: otherwise, with nothing lent and nothing opening, nothing can ever
    wake them and each waits out its whole timeout."""
    state = make(max_size=1)
    waiter, forced = prepare(state)
    key = ALICE if forced is None else None
    state.open_failed(key, ConnectionError("refused"), forced)
    effects = take(state)
    assert woken(effects) == ([] if forced is None else [forced])
    assert (state.opened, state.busy, state.waiting) == (0, 0, 1)
    # (Alice never opened a connection: her failure is her mistake, not an outage that
    # would hold the room back until a retry timer.)
    assert not state.outage
    assert opens(effects) == [OpenConnections(None, 1)], "the waiter is stranded"
    fulfil(state, effects)
    assert waiter.slot is not None


def test_close_keeping_lent_slots_closes_each_when_it_comes_back() -> None:
    state = make(max_size=3)
    lent = borrow_many(state, 2)
    state.release(borrow(state), 1.0)  # the third: idle
    assert state.close(force=False, keep_lent=True) is True
    assert len(closes(take(state))) == 1, "the idle one is closed at once"
    assert state.closed and state.busy == 2 and not state.calm
    assert state.enqueue(Request(None, None, False), "wait") == "closed"
    state.release(lent[0], 2.0)
    assert [effect.slot for effect in closes(take(state))] == [lent[0]]
    assert state.busy == 1
    assert state.close(force=True) is True  # what is still out, closed on demand
    assert [effect.slot for effect in closes(take(state))] == [lent[1]]
    assert (state.opened, state.busy) == (0, 0)


def test_close_keeping_lent_slots_fails_waiters() -> None:
    state = make(max_size=1)
    borrow(state)
    waiter = wait(state)
    take(state)
    assert state.close(force=False, keep_lent=True) is True
    assert woken(take(state)) == [waiter]
    assert isinstance(waiter.error, PoolClosed) and state.waiting == 0


def test_drain_closes_idle_slots_now_and_lent_ones_on_return() -> None:
    state = started(min_size=2, max_size=3)
    lent = borrow(state)
    idle = [slot for slot in state.slots() if slot is not lent]
    generation = state.generation
    state.drain()
    effects = take(state)
    assert {effect.slot for effect in closes(effects)} == set(idle)
    assert opens(effects) == [OpenConnections(None, 1)], "min_size counts the lent one"
    assert state.generation == generation + 1
    fulfil(state, effects)
    state.release(lent, 1.0)
    effects = take(state)
    assert [effect.slot for effect in closes(effects)] == [lent], "stale: closed on return"
    fulfil(state, effects)
    assert (state.opened, state.idle) == (2, 2)
    assert all(slot.generation == generation + 1 for slot in state.slots())


def test_no_idle_slot_is_evicted_for_a_key_that_still_could_not_open() -> None:
    # Found by the state machine: a key opened past its cap by a forced open evicted its
    # idle slot for a waiter of another tag, yet the cap still left no room to open.
    state = make(max_size=2, max_overflow=1, key_cap=1)
    borrow(state)
    forced = wait(state, when_exhausted="force")
    fulfil(state, take(state))
    assert forced.slot is not None and state.opened == 2  # one more than key_cap
    tagged = wait(state, tag=normalize_tag("a=1"))
    take(state)
    state.release(forced.slot, 1.0, normalize_tag("b=2"))
    effects = take(state)
    assert not [e for e in effects if isinstance(e, CloseConnection)], effects
    assert opens(effects) == [] and state.idle == 1 and tagged.slot is None
