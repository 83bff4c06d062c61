"""A hypothesis state machine drives PoolState like a shell and checks its invariants each step."""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from sessionpool._core.counts import snapshot
from sessionpool._core.effects import CloseConnection, Effect, OpenConnections, RetryOpens, Wake
from sessionpool._core.records import BUSY, CHECKING, CLOSED, IDLE, Request, Slot
from sessionpool._core.state import PoolState
from sessionpool.errors import PoolClosed

# Repeats weight the draws toward the common case (the pool's own user, waiting).
KEYS: list[Hashable] = [None, None, "alice", "bob"]
TAGS: list[str | None] = [None, "a=1", "b=2"]
MODES = ["wait", "wait", "fail", "force"]
CLOSE_AFTER_STEPS = 25  # close() only late in a run, so most runs exercise the open pool


def acceptable(request: Request, slot: Slot) -> bool:
    """The lending rule, stated independently of `Request.accepts`: same key; then an
    untagged request takes any tag, a tagged one its own or an untagged session, and any tag
    with matchanytag."""
    if slot.key != request.key:
        return False
    if request.tag is None or request.matchanytag:
        return True
    return slot.tag in (None, request.tag)


class PoolMachine(RuleBasedStateMachine):
    """Drives one PoolState: carries out its effects (opens, closes, wakes) like a shell, and
    keeps its own account of who holds what, to check the core's against it."""

    def __init__(self) -> None:
        super().__init__()
        self.state = PoolState(min_size=0, max_size=1)
        self.now = 0.0
        self.steps = 0
        self.pending: list[tuple[Hashable, Request | None]] = []  # one entry per open
        self.lent: list[Slot] = []  # held by callers, in the order they got them
        self.orphaned: list[Slot] = []  # lent, then closed by close(force=True)
        self.waiting: list[Request] = []  # queued and not yet woken, oldest first
        self.settled: list[Request] = []  # woken with a slot or an error
        self.closed_slots: set[Slot] = set()
        self.forced_slots: set[Slot] = set()  # opened for a forced request: may exceed the cap
        self.forced_held: set[Slot] = set()  # of those, lent to their request and not back yet
        self.own_open: tuple[Request, Slot] | None = None  # a forced open meeting its request
        self.checking: list[Slot] = []  # out for a keepalive check
        self.ever_opened: set[Hashable] = set()
        self.timers: list[int] = []  # tokens of RetryOpens effects whose delay runs
        # Connections above a cap lowered by resize, on their way out: those open or opening,
        # and those open only (the two checks of hard_cap_holds_outside_forced_opens).
        self.excess_allowed = 0
        self.open_excess_allowed = 0
        self.key_excess = 0  # the same for key_cap (only ever raised here, never lowered)
        # What the core's counters must say.
        self.lendings = 0
        self.handoffs = 0
        self.queued = 0
        self.exhausted = 0
        self.timeouts = 0
        self.connections_opened = 0
        self.connect_errors = 0

    @initialize(
        min_size=st.integers(0, 2),
        extra=st.integers(0, 2),
        max_overflow=st.sampled_from([0, 0, 1, 2, -1]),
        increment=st.integers(1, 3),
        lifo=st.booleans(),
        lazy=st.booleans(),
        key_cap=st.sampled_from([None, None, 1, 2]),
        bounds_idle=st.booleans(),
    )
    def create(
        self,
        min_size: int,
        extra: int,
        max_overflow: int,
        increment: int,
        lifo: bool,
        lazy: bool,
        key_cap: int | None,
        bounds_idle: bool,
    ) -> None:
        self.state = PoolState(
            min_size=min_size,
            max_size=max(1, min_size + extra),
            max_overflow=max_overflow,
            increment=increment,
            lifo=lifo,
            lazy=lazy,
            key_cap=key_cap,
            max_size_bounds="idle" if bounds_idle else "open",
        )
        if not lazy:
            self.state.start()
            self.carry_out()

    # -- the shell's side ----------------------------------------------------------------------

    def tick(self) -> None:
        self.steps += 1
        self.now += 1.0

    def carry_out(self) -> None:
        """Run the effects the last call left, in order, checking each."""
        effects: list[Effect] = self.state.effects
        self.state.effects = []
        if any(isinstance(e, CloseConnection) and e.reason.startswith("evicted") for e in effects):
            # An idle connection is closed to make room only if that room is then used.
            assert any(isinstance(e, OpenConnections) and e.request is None for e in effects)
        for effect in effects:
            if isinstance(effect, OpenConnections):
                assert effect.number >= 1
                if effect.request is not None:
                    assert effect.number == 1 and effect.request.forced
                    assert effect.request in self.waiting
                elif self.state.in_outage(effect.key):
                    # Rule 6: a key in an outage makes one attempt at a time, never while
                    # its retry delay runs.
                    assert effect.number == 1 and effect.key not in self.state._holding
                    assert not any(k == effect.key and r is None for k, r in self.pending)
                self.pending.extend((effect.key, effect.request) for _ in range(effect.number))
            elif isinstance(effect, RetryOpens):
                assert self.state.holding and 0 < effect.delay <= 0.5
                self.timers.append(effect.token)
            elif isinstance(effect, CloseConnection):
                slot = effect.slot
                assert slot.state == CLOSED
                assert slot not in self.closed_slots, "closed twice"
                assert slot not in self.state.slots()
                self.closed_slots.add(slot)
                if slot in self.lent:
                    assert self.state.closed, "a lent connection closed under its borrower"
                    self.lent.remove(slot)
                    self.orphaned.append(slot)
            else:
                assert isinstance(effect, Wake)
                self.woken(effect.request)

    def woken(self, request: Request) -> None:
        assert request in self.waiting, "woken twice, or never queued"
        assert (request.slot is None) != (request.error is None), "exactly one outcome"
        older = self.waiting[: self.waiting.index(request)]
        self.waiting.remove(request)
        self.settled.append(request)
        if request.slot is not None:
            if self.own_open == (request, request.slot):
                # The connection opened beyond the cap for this request alone, whoever waits.
                older = []
                self.forced_held.add(request.slot)
            self.granted(request, request.slot, older=older)
            self.handoffs += 1
        elif self.state.closed:
            assert isinstance(request.error, PoolClosed)

    def granted(self, request: Request, slot: Slot, older: list[Request]) -> None:
        """Check a slot being lent to ``request`` while ``older`` requests wait."""
        assert slot.state == BUSY and slot in self.state.slots()
        assert slot not in self.closed_slots, "a closed connection was lent again"
        assert slot not in self.lent, "a slot lent to two holders"
        assert slot.key == request.key, "a slot lent to another user"
        assert acceptable(request, slot), f"tag {slot.tag!r} for {request.tag!r}"
        assert request.accepts(slot)
        assert slot.generation == self.state.generation, "a stale slot was lent"
        # FIFO among all waiters, forced ones included (they may be served before their own
        # connection arrives).
        overtaken = [w for w in older if acceptable(w, slot)]
        assert overtaken == [], "an older waiter accepting that slot still waits"
        self.lent.append(slot)
        self.lendings += 1

    def pending_for(self, key: Hashable) -> int:
        return sum(1 for k, request in self.pending if k == key and request is None)

    def waiting_for(self, key: Hashable) -> int:
        return sum(1 for request in self.waiting if request.key == key and not request.forced)

    # -- borrowing -----------------------------------------------------------------------------

    def borrow(
        self, key: Hashable, tag: str | None, matchanytag: bool, mode: str, slot: Slot | None
    ) -> None:
        """After an acquire (or the fast lane) gave ``slot``, or None: queue as a shell does."""
        state = self.state
        request = Request(key, tag, matchanytag)
        if slot is not None:
            self.granted(request, slot, older=self.waiting)  # a new caller is the youngest
            self.carry_out()
            return
        self.carry_out()  # stale slots closed on the way
        room = float("inf") if state.cap is None else state.cap - state.opened - state.opening
        on_its_way = self.pending_for(key) - self.waiting_for(key)
        # Evicting every idle slot frees that many places, unless a forced open beyond the cap
        # already took them; and the key's own cap must leave room (its idle slots count).
        key_room = float("inf")
        if state.key_cap is not None:
            of_key = [s for s in state.slots() if s.key == key]
            key_idle = sum(1 for s in of_key if s.state == IDLE)
            key_room = state.key_cap - len(of_key) - self.pending_for(key) + key_idle
        can_serve = on_its_way > 0 or (room + state.idle > 0 and key_room > 0)
        result = state.enqueue(request, mode)
        if state.closed:
            assert result == "closed"
        elif result == "exhausted":
            assert mode == "fail" and not can_serve
            self.exhausted += 1
        else:
            assert result == "queued"
            assert request.forced == (mode == "force" and not can_serve)
            self.queued += 1
            self.waiting.append(request)
        self.carry_out()
        if result == "queued" and mode == "fail":
            # "fail" never leaves a caller waiting on a release: a connection is on its way
            # for every request of that key that relies on the shared opens.
            # (Not during an outage: then the retry timer opens, one at a time.)
            assert self.pending_for(key) >= self.waiting_for(key) or state.in_outage(key)

    @rule(
        key=st.sampled_from(KEYS),
        tag=st.sampled_from(TAGS),
        matchanytag=st.booleans(),
        mode=st.sampled_from(MODES),
    )
    def acquire(self, key: Hashable, tag: str | None, matchanytag: bool, mode: str) -> None:
        self.tick()
        slot = self.state.acquire(key, tag, matchanytag)
        self.borrow(key, tag, matchanytag, mode, slot)

    @rule(mode=st.sampled_from(MODES))
    def acquire_by_the_fast_lane(self, mode: str) -> None:
        """The fast-lane acquire as documented in state.py, run by hand as the shell inlines it."""
        self.tick()
        state = self.state
        slot = None
        if state.fast_idle:
            slot = state.pop_fast_idle()
            if slot.generation == state.generation:
                slot.state = BUSY
                slot.uses += 1
            else:
                state.unpop_fast_idle(slot)
                slot = state.acquire(None, None, False)
        else:
            slot = state.acquire(None, None, False)
        self.borrow(None, None, False, mode, slot)

    @precondition(lambda self: self.lent or self.orphaned)
    @rule(data=st.data(), tag=st.sampled_from(TAGS), fast=st.booleans())
    def release(self, data: st.DataObject, tag: str | None, fast: bool) -> None:
        self.tick()
        state = self.state
        index = data.draw(st.integers(0, len(self.lent) + len(self.orphaned) - 1), label="slot")
        if index >= len(self.lent):
            # A lease of a pool closed with force comes back: ignored, nothing changes.
            before = snapshot(state)
            state.release(self.orphaned.pop(index - len(self.lent)), self.now, tag)
            assert state.effects == [] and snapshot(state) == before
            return
        slot = self.lent.pop(index)
        self.forced_held.discard(slot)
        nobody_waits = not self.waiting
        # What max_size bounds: the open connections, or (SQLAlchemy's way) the idle ones.
        if state.bounds_idle:
            above_max_size = state.idle >= state.max_size
        else:
            above_max_size = state.opened > state.max_size
        if (
            fast
            and tag is None
            and state.calm
            and slot.key is None
            and slot.generation == state.generation
        ):
            # The fast-lane release as documented in state.py.
            slot.last_used = self.now
            slot.tag = None
            slot.state = IDLE
            state.fast_idle.append(slot)
        else:
            state.release(slot, self.now, tag)
        self.carry_out()
        assert slot.state in (IDLE, BUSY, CLOSED)
        if slot.state == BUSY:
            assert slot in self.lent  # handed straight to a waiter
        if nobody_waits and above_max_size:
            assert slot.state == CLOSED, "an overflow connection kept with nobody waiting"

    @precondition(lambda self: self.lent or self.state.idle)
    @rule(data=st.data())
    def discard(self, data: st.DataObject) -> None:
        self.tick()
        idle = sorted(
            (slot for slot in self.state.slots() if slot.state == IDLE),
            key=lambda slot: str(slot.connection),
        )
        candidates = self.lent + idle
        slot = candidates[data.draw(st.integers(0, len(candidates) - 1), label="slot")]
        if slot in self.lent:
            self.lent.remove(slot)
        self.forced_held.discard(slot)
        self.state.discard(slot, "discarded by the test")
        self.carry_out()
        assert slot.state == CLOSED and slot in self.closed_slots

    # -- waiting -------------------------------------------------------------------------------

    @precondition(lambda self: self.waiting or self.settled)
    @rule(data=st.data(), timed_out=st.booleans())
    def cancel(self, data: st.DataObject, timed_out: bool) -> None:
        """Withdraw a waiting request, or one the core served just as its deadline passed
        (it keeps that outcome)."""
        self.tick()
        index = data.draw(st.integers(0, len(self.waiting) + len(self.settled) - 1), label="req")
        if index >= len(self.waiting):
            request = self.settled[index - len(self.waiting)]
            before = snapshot(self.state)
            assert self.state.cancel(request, timed_out=timed_out) is request.slot
            assert self.state.effects == []
            assert snapshot(self.state) == before
            return
        request = self.waiting[index]
        assert self.state.cancel(request, timed_out=timed_out) is None
        self.waiting.remove(request)
        self.timeouts += timed_out
        assert self.state.effects == []
        assert request not in self.state.waiters() and not request.is_settled

    # -- opening -------------------------------------------------------------------------------

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def complete_open(self, data: st.DataObject) -> None:
        self.tick()
        key, request = self.pending.pop(
            data.draw(st.integers(0, len(self.pending) - 1), label="open")
        )
        self.connections_opened += 1
        self.ever_opened.add(key)
        # A forced request still waiting gets its own open; one served meanwhile by a returned
        # connection (FIFO applies to forced requests too) leaves this one to normal placement.
        forced_still_waiting = request is not None and request in self.state.waiters()
        slot = self.state.opened_connection(key, f"c{self.connections_opened}", self.now, request)
        assert slot.key == key and slot.generation == self.state.generation
        if request is not None:
            self.forced_slots.add(slot)
            self.own_open = (request, slot)
        self.carry_out()
        self.own_open = None
        if slot.state == BUSY:
            assert slot in self.lent
        if forced_still_waiting:
            assert request is not None and request.slot is slot

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def fail_open(self, data: st.DataObject) -> None:
        self.tick()
        key, request = self.pending.pop(
            data.draw(st.integers(0, len(self.pending) - 1), label="open")
        )
        error = ConnectionError("refused")
        waiting_before = list(self.waiting)
        self.state.open_failed(key, error, request)
        self.connect_errors += 1
        self.carry_out()
        assert self.state.last_connect_error is error
        failed = [w for w in waiting_before if w.error is error]
        if request is not None:
            # A forced open's failure is its own request's, if that still waits.
            assert failed == ([request] if request in waiting_before else [])
        else:
            # A shared open's failure fails nobody, waiters keep their deadlines (rule 6),
            # unless the key never opened a connection: then its oldest waiter gets the error.
            of_key = [w for w in waiting_before if w.key == key and not w.forced]
            assert failed == ([] if key in self.ever_opened else of_key[:1])
            if key is None or key in self.ever_opened:
                assert self.state.closed or (
                    self.state.in_outage(key) and key in self.state._holding
                )

    @precondition(lambda self: self.timers)
    @rule(data=st.data())
    def retry_opens(self, data: st.DataObject) -> None:
        """A retry timer fires (timers of earlier outages too: those must do nothing)."""
        self.tick()
        token = self.timers.pop(data.draw(st.integers(0, len(self.timers) - 1), label="timer"))
        state = self.state
        current = token in state._holding.values()
        state.retry_opens(token)
        assert token not in state._holding.values()
        if not current:
            assert state.effects == []
        self.carry_out()

    # -- maintenance ---------------------------------------------------------------------------

    @precondition(lambda self: self.state.idle)
    @rule(data=st.data())
    def take_for_check(self, data: st.DataObject) -> None:
        self.tick()
        idle = sorted(self.state.idle_slots(), key=lambda slot: str(slot.connection))
        slot = idle[data.draw(st.integers(0, len(idle) - 1), label="slot")]
        assert self.state.take_for_check(slot)
        assert slot.state == CHECKING and not self.state.take_for_check(slot)
        self.checking.append(slot)
        self.carry_out()

    @precondition(lambda self: self.checking)
    @rule(data=st.data(), alive=st.booleans())
    def finish_check(self, data: st.DataObject, alive: bool) -> None:
        self.tick()
        slot = self.checking.pop(data.draw(st.integers(0, len(self.checking) - 1), label="c"))
        was_closed = slot.state == CLOSED
        self.state.checked(slot, alive)
        self.carry_out()
        if was_closed or not alive:
            assert slot.state == CLOSED
        else:
            assert slot.state in (IDLE, BUSY, CLOSED)
            if slot.state == BUSY:
                assert slot in self.lent

    @rule(expire=st.booleans(), idle_limit=st.sampled_from([None, 0.0, 5.0]))
    def retire_idle(self, expire: bool, idle_limit: float | None) -> None:
        self.tick()
        state = self.state
        idle = state.idle_slots()
        if expire and idle:
            idle[0].expires_at = self.now
        opened_before = state.opened
        idle_before = None if idle_limit is None else self.now - idle_limit
        state.retire_idle(self.now, idle_before)
        self.carry_out()
        for slot in idle:
            if slot.expires_at <= self.now:
                assert slot.state == CLOSED, "an expired idle connection was kept"
        if idle_before is not None and state.opened < opened_before:
            # Replaced up to min_size, unless an outage holds the opens back (rule 6).
            kept = state.opened + state.opening
            floor = min(opened_before, state.min_size, state.key_cap or opened_before)
            assert kept >= floor or state.outage

    @precondition(lambda self: not self.state.closed)
    @rule(
        min_size=st.integers(0, 2),
        extra=st.integers(0, 2),
        max_overflow=st.sampled_from([0, 1, -1]),
    )
    def resize(self, min_size: int, extra: int, max_overflow: int) -> None:
        self.tick()
        state = self.state
        state.resize(min_size, max(1, min_size + extra), max_overflow)
        self.carry_out()
        # Opens on their way and lent connections may exceed a lowered cap for a while.
        if state.cap is not None:
            self.excess_allowed = max(0, state.opened + state.opening - state.cap)
            self.open_excess_allowed = max(0, state.opened - state.cap)
        if not self.waiting:
            idle_kept = state.opened - state.busy - state.checking
            assert state.opened <= state.max_size or idle_kept == 0

    # -- control -------------------------------------------------------------------------------

    @rule()
    def invalidate(self) -> None:
        self.tick()
        generation = self.state.generation
        self.state.invalidate()
        assert self.state.generation == generation + 1
        assert self.state.effects == []

    @precondition(lambda self: self.steps >= CLOSE_AFTER_STEPS and not self.state.closed)
    @rule(force=st.booleans())
    def close(self, force: bool) -> None:
        self.tick()
        state = self.state
        before = snapshot(state)
        waiting = list(self.waiting)
        if state.busy and not force:
            assert state.close(force=False) is False
            assert state.effects == [] and snapshot(state) == before and not state.closed
            return
        assert state.close(force=force) is True
        self.carry_out()
        assert self.waiting == []
        assert all(isinstance(request.error, PoolClosed) for request in waiting)
        assert self.lent == []
        self.forced_held.clear()

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def figures_agree_with_the_slots(self) -> None:
        state = self.state
        slots = state.slots()
        busy = {slot for slot in slots if slot.state == BUSY}
        idle = {slot for slot in slots if slot.state == IDLE}
        checking = {slot for slot in slots if slot.state == CHECKING}
        assert len(busy) + len(idle) + len(checking) == len(slots) == state.opened
        assert state.busy == len(busy) and state.idle == len(idle)
        assert state.checking == len(checking) and checking <= set(self.checking)
        assert state.busy + state.idle + state.checking == state.opened
        # One borrower per slot, and no slot both idle and lent.
        assert len(self.lent) == len(set(self.lent))
        assert busy == set(self.lent)
        assert not slots & self.closed_slots
        assert state.opening == len(self.pending)

    @invariant()
    def counters_agree(self) -> None:
        stats = snapshot(self.state)
        assert stats.acquires == self.lendings
        assert stats.handoffs == self.handoffs
        assert stats.waits == self.queued
        assert stats.exhausted == self.exhausted
        assert stats.timeouts == self.timeouts
        assert stats.connections_opened == self.connections_opened
        assert stats.connections_closed == len(self.closed_slots)
        assert stats.connect_errors == self.connect_errors
        assert (stats.opened, stats.busy, stats.idle, stats.opening, stats.waiting) == (
            self.state.opened,
            self.state.busy,
            self.state.idle,
            self.state.opening,
            self.state.waiting,
        )

    @invariant()
    def hard_cap_holds_outside_forced_opens(self) -> None:
        state = self.state
        if state.cap is None:
            return
        forced = sum(1 for _, request in self.pending if request is not None)
        forced += len(self.forced_slots & state.slots())
        # After a resize lowered the cap, what exceeds it may only shrink.
        excess = state.opened + state.opening - state.cap - forced
        assert excess <= self.excess_allowed
        self.excess_allowed = max(0, excess)
        # Open connections exceed the cap only by those lent to their forced requests (and
        # those left from a lowered cap): any other arriving or returning above it is closed.
        open_excess = state.opened - state.cap - len(self.forced_held)
        assert open_excess <= self.open_excess_allowed
        self.open_excess_allowed = max(0, open_excess)

    @invariant()
    def key_cap_holds_outside_forced_opens(self) -> None:
        state = self.state
        if state.key_cap is None:
            return
        for key in set(KEYS):
            opened = sum(1 for s in state.slots() if s.key == key and s not in self.forced_slots)
            assert opened + self.pending_for(key) <= state.key_cap + self.key_excess, key

    @invariant()
    def queue_is_fifo_and_unsettled(self) -> None:
        waiters = self.state.waiters()
        assert len(waiters) == self.state.waiting == len(self.waiting)
        assert list(waiters) == self.waiting  # arrival order, forced requests included
        assert not any(request.is_settled for request in waiters)

    @invariant()
    def no_idle_slot_beside_a_waiter_that_accepts_it(self) -> None:
        for slot in self.state.slots():
            if slot.state == IDLE and slot.generation == self.state.generation:
                takers = [w for w in self.waiting if acceptable(w, slot)]
                assert takers == [], f"{slot!r} idle while {len(takers)} waiter(s) accept it"

    @invariant()
    def no_waiter_is_stranded(self) -> None:
        """Someone waits only while something can still serve them: a connection on its way
        or one lent that will come back (idle ones they cannot use are evicted for them)."""
        state = self.state
        if self.waiting:
            # A running retry timer counts: it opens when it fires (rule 6).
            assert not state.holding or self.timers
            assert state.opening > 0 or state.busy > 0 or state.checking or state.holding, (
                f"{len(self.waiting)} waiting with nothing lent or opening "
                f"({state.idle} idle, cap {state.cap})"
            )

    @invariant()
    def calm_matches_its_definition(self) -> None:
        """The fast-lane release relies on ``calm`` (never true when it must not be); it is
        also kept exact, so the fast lane is not lost for nothing."""
        state = self.state
        expected = not state.waiters() and not state.closed and state.opened <= state.max_size
        assert state.calm == expected

    @invariant()
    def closed_pool_keeps_nothing(self) -> None:
        if self.state.closed:
            # Only a slot out for a keepalive check may remain: closed when it comes back.
            assert all(slot.state == CHECKING for slot in self.state.slots())
            assert self.state.waiters() == ()


PoolMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    # No "explain" phase: on a failure it costs minutes and the shrunk steps say enough.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
# A pass takes seconds; the time limit only matters while a failure is being shrunk.
TestPoolMachine = pytest.mark.timeout(600)(PoolMachine.TestCase)
