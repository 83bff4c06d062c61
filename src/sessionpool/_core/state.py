"""PoolState: every count and list of one pool, and every decision about them.

Pure bookkeeping in the sans-I/O style: no threads, asyncio, clock, logging or driver. Callers
hold their own lock around each call, pass ``now`` where time matters, and afterwards carry out
the effects left in ``state.effects`` (open, close, wake) with the lock released.

Rules kept here (each is checked by tests/core):

1. Accounting: ``opened`` counts live connections (idle + busy); ``opening`` those on their way.
   Outside forced opens, ``opened + opening <= hard cap`` at all times.
2. One borrower per slot: a slot is granted only from IDLE, or straight from its opening or
   release to one waiting request.
3. FIFO: a connection that comes back, or is newly opened, goes to the oldest waiting request
   that accepts it, never to a later caller. Hence an idle slot never sits beside a waiter that
   would accept it, and a new caller taking an idle slot never overtakes anyone.
4. Generations: ``invalidate()`` bumps the generation in O(1); a slot of an older generation is
   never granted again: it is closed when found idle or when it comes back. ``drain()`` does
   the same and closes the idle ones at once. (Suspicion after a disconnect, which checks
   connections instead of replacing them, is the shells' business: it needs a clock and I/O.)
5. A waiter ends with exactly one of a slot or an error; ``cancel`` of a request the core has
   already served returns that slot so the caller can keep it or give it back.
6. Recovery without a connect storm: after a failed open its key (the pool's own
   credentials, a user, a partition) is in an outage; the core opens nothing for that key
   until the shell calls `retry_opens` (after the delay the `RetryOpens` effect names,
   growing from 50 ms to 0.5 s), and then one connection at a time, until one opens. Other
   keys go on opening as usual (one user's rotated password stalls nobody else). Waiters
   are not failed by a failed open: they keep their place and their deadline, so the first
   connection that opens goes to the oldest of them. The exception is a key that has never
   opened a connection: there a failure most likely means a mistake (a wrong password, a
   bad argument), so its oldest waiter gets the error at once; for a per-user key that is
   all, for the pool's own credentials the outage starts too (the database may be down at
   start-up).

Hot-path economy, the fast lane: the acquire and release of an untagged connection of the
pool's own user, with nobody waiting, touch only the slot and one deque, ``fast_idle``. A
shell may run that lane inline under its lock instead of calling `acquire`/`release`:

* acquire: pop from ``fast_idle`` (``pop_fast_idle``); if the slot's generation equals
  ``generation``, set its state to BUSY and add one to its ``uses``; otherwise put it back
  (``unpop_fast_idle``) and call `acquire`, which closes it.
* release: if ``calm`` is true and the slot is untagged, of key None and of the current
  generation, set ``last_used``, ``tag`` = None and state IDLE, and append it to
  ``fast_idle``; otherwise call `release`. (While ``calm``, a lent slot is always BUSY: only
  ``close(force=True)`` closes lent slots, and a closed pool is never calm; a pool closed with
  ``keep_lent`` closes each lent slot when it comes back.)

These are exactly the first branches of `acquire` and `release`, which remain complete on
their own. ``busy`` and ``acquires`` are derived when read instead of counted, and the
conditions for the quick release are folded into ``calm``, recomputed after every call that
can change them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Any, Literal

from ..errors import PoolClosed
from .effects import CloseConnection, Effect, OpenConnections, RetryOpens, Wake
from .records import BUSY, CHECKING, CLOSED, IDLE, Request, Slot

__all__ = ["EnqueueResult", "PoolState"]

EnqueueResult = Literal["queued", "exhausted", "closed"]
_Bucket = deque[Slot]
_EVERY_KEY: Any = object()  # _plan_opens default: plan for every waiting key
# Delays between connect attempts during an outage: the first retry comes quickly (a single
# failed connect is often a blip), later ones at most this far apart, so a server that comes
# back is found within RETRY_DELAY_MAX plus one connect.
RETRY_DELAY_FIRST = 0.05
RETRY_DELAY_MAX = 0.5


class PoolState:
    """The decision core of one pool.

    Args:
        min_size: connections kept open once started.
        max_size: connections kept; more are closed when returned with nobody waiting.
        max_overflow: extra connections allowed under demand; -1 = no cap.
        increment: connections opened together when the pool grows.
        lifo: reuse the most recently returned connection first (else the oldest).
        lazy: open nothing until the first request.
        key_cap: most connections open (or opening) at once for any one key; None: no
            limit beyond the pool's (forced opens are not counted, as for the pool's cap).
        max_size_bounds: what ``max_size`` bounds when a connection comes back with nobody
            waiting: "open" closes it while more than ``max_size`` are open (cx_Oracle);
            "idle" keeps it unless ``max_size`` are idle already (SQLAlchemy's QueuePool,
            whose pool_size is the size of its idle queue).
    """

    def __init__(
        self,
        *,
        min_size: int,
        max_size: int,
        max_overflow: int = 0,
        increment: int = 1,
        lifo: bool = True,
        lazy: bool = False,
        key_cap: int | None = None,
        max_size_bounds: str = "open",
    ) -> None:
        self.min_size = min_size
        self.max_size = max_size
        self.cap: int | None = None if max_overflow < 0 else max_size + max_overflow
        self.increment = increment
        self.key_cap = key_cap
        self.bounds_idle = max_size_bounds == "idle"
        self.lifo = lifo
        self.started = not lazy
        self.closed = False
        self.generation = 0

        self.opened = 0
        self.opening = 0
        self.checking = 0  # idle slots out for a keepalive check (counted in opened)
        # Outages (rule 6), per key: retry rounds since the key's last successful open, and
        # the token of the retry timer running for it (while it runs, the key opens
        # nothing).
        self._failing: dict[Hashable, int] = {}
        self._holding: dict[Hashable, int] = {}
        self._retry_token = 0
        self._opening_for: dict[Hashable, int] = {}
        self._opened_for: dict[Hashable, int] = {}  # kept only while key_cap matters
        self._ever_opened: set[Hashable] = set()  # keys that have opened a connection
        self._all: set[Slot] = set()

        # Every waiting request, oldest first, forced ones included: a returned connection
        # serves them like anyone. _waiting_for counts only those that rely on the shared
        # opens (a forced request has an open reserved for it).
        self._waiters: deque[Request] = deque()
        self._waiting_for: dict[Hashable, int] = {}

        # Idle slots by key, then by tag; each bucket has its newest slot on the right.
        # The (None, None) bucket, untagged connections of the pool's own credentials, is
        # the one nearly every pool uses: it is kept permanently and reached directly.
        self.fast_idle: _Bucket = deque()
        self._idle: dict[Hashable, dict[str | None, _Bucket]] = {None: {None: self.fast_idle}}
        self._idle_elsewhere = 0  # idle slots in buckets other than _plain
        self.pop_fast_idle = self.fast_idle.pop if lifo else self.fast_idle.popleft
        self.unpop_fast_idle = self.fast_idle.append if lifo else self.fast_idle.appendleft
        # True while a release may go straight to _plain: nobody waits, the pool is open and
        # not above max_size. Recomputed by _update_calm() after every slow-path change.
        self.calm = True

        self.effects: list[Effect] = []
        self.last_connect_error: BaseException | None = None

        # Counters for stats(); none of them is touched on the hot path.
        self._retired_uses = 0
        self.waits = 0
        self.timeouts = 0
        self.exhausted = 0
        self.handoffs = 0
        self.connections_opened = 0
        self.connections_closed = 0
        # Connections closed, counted by the reason given to `_forget` (for statistics).
        self.closed_by_reason: dict[str, int] = {}
        self.connect_errors = 0
        self.retired_idle = 0
        self.retired_expired = 0
        self.keepalive_failures = 0
        # Counted by the shells (leak reports, leases collected while lent), kept here so a
        # stats() snapshot reads every counter in one place.
        self.leaks_reported = 0
        self.reclaimed = 0

    # -- figures ---------------------------------------------------------------------------

    @property
    def idle(self) -> int:
        return len(self.fast_idle) + self._idle_elsewhere

    @property
    def busy(self) -> int:
        return self.opened - len(self.fast_idle) - self._idle_elsewhere - self.checking

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def acquires(self) -> int:
        """Connections handed to borrowers since creation (derived from the slots' use
        counts; one still being handed out, or whose hand-out failed, does not count)."""
        return self._retired_uses + sum(slot.uses - slot.handing_out for slot in self._all)

    def slots(self) -> frozenset[Slot]:
        """Every live slot, idle or busy (for diagnostics and tests)."""
        return frozenset(self._all)

    def waiters(self) -> tuple[Request, ...]:
        """Waiting requests, oldest first."""
        return tuple(self._waiters)

    @property
    def outage(self) -> bool:
        """Whether some key is in an outage (its last open failed)."""
        return bool(self._failing)

    @property
    def holding(self) -> bool:
        """Whether some key waits for its retry timer."""
        return bool(self._holding)

    def in_outage(self, key: Hashable) -> bool:
        return key in self._failing

    def idle_slots(self) -> list[Slot]:
        """Every idle slot (for the maintenance worker's scans)."""
        return [slot for buckets in self._idle.values() for b in buckets.values() for slot in b]

    def lent_slots(self) -> list[Slot]:
        """Every slot lent to a borrower now (for leak reports and timeout errors)."""
        return [slot for slot in self._all if slot.state == BUSY]

    # -- borrowing -------------------------------------------------------------------------

    def acquire(self, key: Hashable, tag: str | None, matchanytag: bool) -> Slot | None:
        """Lend an idle slot the caller accepts, or return None if there is none.

        Finding none changes nothing; the caller then queues with `enqueue` under the same
        lock. Stale slots met on the way are closed (effects).
        """
        opened = self.opened
        found = None
        if key is None and tag is None:
            while self.fast_idle:
                slot = self.pop_fast_idle()
                if slot.generation == self.generation:
                    found = slot
                    break
                self._forget(slot, "invalidated")
        if found is None:
            found = self._take_idle(key, tag, matchanytag)
        if found is not None:
            found.state = BUSY
            found.uses += 1
        if self.opened != opened:  # stale slots were closed on the way
            if self._waiters:
                self._plan_opens()  # the room they freed may serve a waiter
            self._update_calm()
        return found

    def enqueue(self, request: Request, when_exhausted: str) -> EnqueueResult:
        """Queue a request that `acquire` could not serve, and plan the opens it needs.

        Returns "closed" if the pool is closed, "exhausted" when ``when_exhausted`` is
        "fail" and nothing is free or on its way, else "queued": the request will be woken
        with a slot or an error. With "force", a connection beyond the cap is opened for
        this request alone when the pool cannot serve it otherwise.
        """
        if self.closed:
            return "closed"
        self.started = True
        key = request.key
        if when_exhausted != "wait" and not self._can_serve_without_release(key):
            if when_exhausted == "fail":
                self.exhausted += 1
                return "exhausted"
            if when_exhausted == "force":
                self.waits += 1
                request.forced = True
                self._waiters.append(request)
                self.opening += 1
                self.effects.append(OpenConnections(key, 1, request))
                self._update_calm()
                return "queued"
        self.waits += 1
        self._waiters.append(request)
        self._waiting_for[key] = self._waiting_for.get(key, 0) + 1
        # Only this key's shortfall changed; every other event replans all keys. With no room
        # and nothing idle to evict there is nothing to plan: the request waits for a release.
        if self._room() > 0 or self.fast_idle or self._idle_elsewhere:
            self._plan_opens(key)
        self.calm = False  # somebody waits now
        return "queued"

    def _can_serve_without_release(self, key: Hashable) -> bool:
        """Whether a new request of ``key`` can be served by a connection on its way, by
        room to open one, or by evicting an idle one (which acquire just found unusable)."""
        on_its_way = self._opening_for.get(key, 0) - self._waiting_for.get(key, 0)
        # Evicting every idle slot frees `idle` places; a forced open beyond the cap may
        # already have taken them (room below zero). The key's own cap counts as well.
        if on_its_way > 0:
            return True
        key_room = self._key_room(key) + self._idle_of(key)
        return self._room() + self.idle > 0 and key_room > 0

    def cancel(self, request: Request, *, timed_out: bool) -> Slot | None:
        """Withdraw a waiting request (deadline passed, or the caller was interrupted).

        Returns the slot if the core granted one before the cancel arrived; the caller then
        owns it and must use it or `release` it. Otherwise the request leaves the queue.
        """
        if request.slot is not None:
            return request.slot
        if request.error is not None:
            return None
        self._dequeue(request)
        if timed_out:
            self.timeouts += 1
        self._update_calm()
        return None

    def release(self, slot: Slot, now: float, tag: str | None = None) -> None:
        """Take back a lent slot, retagged with ``tag``, and decide where it goes.

        A slot closed meanwhile by ``close(force=True)`` is ignored.
        """
        if slot.state != BUSY:
            if slot.state == CLOSED:
                return
            raise RuntimeError(f"release of a slot that is not lent: {slot!r}")
        if slot.handing_out:  # granted to a caller that withdrew: not an acquire after all
            self.unlend(slot)
        slot.last_used = now
        slot.tag = tag
        slot.state = IDLE
        if self.calm and tag is None and slot.key is None and slot.generation == self.generation:
            self.fast_idle.append(slot)
            return
        self._place(slot)
        self._update_calm()

    def unlend(self, slot: Slot) -> None:
        """A lending that never reached its borrower (the check before hand-out failed, the
        caller withdrew): it does not count as a use or an acquire."""
        slot.uses -= 1
        slot.handing_out = False

    def discard(self, slot: Slot, reason: str) -> None:
        """Forget a slot whose connection is unusable (dropped, failed reset) and close it
        (one still being handed out never counts as an acquire: see `_forget`)."""
        if slot.state == CLOSED:
            return
        if slot.state == IDLE:
            self._remove_idle(slot)
        self._forget(slot, reason)
        self._plan_opens()
        self._update_calm()

    # -- opening ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin keeping ``min_size`` open (used by a non-lazy pool at creation)."""
        if not self.closed:
            self.started = True
            self._plan_opens()

    def opened_connection(
        self, key: Hashable, connection: Any, now: float, request: Request | None = None
    ) -> Slot:
        """Record a connection an `OpenConnections` effect produced and place it."""
        self.opening -= 1
        if request is None:
            self._opening_for[key] -= 1
        slot = Slot(connection, key, self.generation, now)
        self.opened += 1
        self.connections_opened += 1
        self._all.add(slot)
        self._ever_opened.add(key)
        self._opened_for[key] = self._opened_for.get(key, 0) + 1
        recovered = self._failing.pop(key, None) is not None
        if recovered:
            # Back: open what the waiters and min_size need, all at once (the retry timer
            # still running finds its token gone and does nothing).
            self._holding.pop(key, None)
        if request is not None and request in self._waiters:
            # A forced open meets its request, unless a returned connection served it first;
            # then this one is placed like any other (and closed if over the cap).
            self._dequeue(request)
            self._grant(request, slot)
        else:
            # Placed exactly as if a borrower had returned it, so FIFO and caps apply.
            self._place(slot)
        if recovered:
            self._plan_opens()
        self._update_calm()
        return slot

    def open_failed(
        self, key: Hashable, error: BaseException, request: Request | None = None
    ) -> None:
        """Record a failed open (rule 6).

        A forced open's borrower gets the error at once: that open was its alone. A shared
        open puts the pool in an outage: waiters keep waiting (until their deadlines), and
        the next attempt comes when the shell calls `retry_opens` after the `RetryOpens`
        delay.
        """
        self.opening -= 1
        self.connect_errors += 1
        self.last_connect_error = error
        if request is not None:
            if request in self._waiters:
                self._dequeue(request)
                self._fail(request, error)
            if self._waiters:
                # The room that open held goes to whoever still waits (within rule 6).
                self._plan_opens(top_up_min=False)
        else:
            self._opening_for[key] -= 1
            if key not in self._ever_opened:
                for waiter in self._waiters:
                    if waiter.key == key and not waiter.forced:
                        self._dequeue(waiter)
                        self._fail(waiter, error)
                        break
                if key is not None:
                    # One user's mistake is not an outage of the pool: the others' opens go
                    # on, and this user's next waiter gets an attempt of its own.
                    if self._waiters:
                        self._plan_opens(top_up_min=False)
                    self._update_calm()
                    return
            if not self.closed:
                # Counted per retry round, not per failed connect: opens started together
                # and failing together are one round.
                rounds = self._failing.setdefault(key, 0)
                if key not in self._holding:
                    self._failing[key] = rounds + 1
                    self._retry_token += 1
                    self._holding[key] = self._retry_token
                    delay = min(RETRY_DELAY_FIRST * 2**rounds, RETRY_DELAY_MAX)
                    self.effects.append(RetryOpens(delay, self._retry_token))
                if self._waiters:
                    # The room the failed open held may serve waiters of other keys.
                    self._plan_opens(top_up_min=False)
        self._update_calm()

    def retry_opens(self, token: int) -> None:
        """The delay of the `RetryOpens` effect carrying ``token`` has passed: try again (one
        connection). A timer of an earlier outage, or one a successful open overtook, finds
        its token stale and does nothing."""
        for key, running in self._holding.items():
            if running == token:
                del self._holding[key]
                self._plan_opens()
                self._update_calm()
                return

    # -- maintenance -----------------------------------------------------------------------

    def retire_idle(self, now: float, idle_before: float | None) -> None:
        """Close idle slots whose lifetime is over (``expires_at``), and those idle since
        before ``idle_before`` as long as more than ``min_size`` stay open (least recently
        used first); then open what ``min_size`` lacks."""
        if self.closed:
            return
        for slot in self.idle_slots():
            if slot.expires_at <= now:
                self._remove_idle(slot)
                self._forget(slot, "max_lifetime reached")
                self.retired_expired += 1
        if idle_before is not None:
            stale = sorted(
                (slot for slot in self.idle_slots() if slot.last_used < idle_before),
                key=lambda slot: slot.last_used,
            )
            for slot in stale:
                if self.opened <= self.min_size:
                    break
                self._remove_idle(slot)
                self._forget(slot, "max_idle reached")
                self.retired_idle += 1
        self._plan_opens()
        self._update_calm()

    def close_idle(self) -> None:
        """Close every idle slot beyond ``min_size`` now (least recently used first); lent
        ones are untouched and come back as usual."""
        if self.closed:
            return
        for slot in sorted(self.idle_slots(), key=lambda slot: slot.last_used):
            if self.opened <= self.min_size:
                break
            self._remove_idle(slot)
            self._forget(slot, "idle connections closed")
        self._update_calm()

    def take_for_check(self, slot: Slot) -> bool:
        """Take an idle slot out of the idle lists for a keepalive check; False if it is no
        longer idle. Give it back with `checked`."""
        if slot.state != IDLE:
            return False
        self._remove_idle(slot)
        slot.state = CHECKING
        self.checking += 1
        self._update_calm()
        return True

    def checked(self, slot: Slot, alive: bool) -> None:
        """A keepalive check ended: a live slot goes back as the least recently used idle
        one (or to a waiter); a dead one is closed and replaced."""
        if slot.state != CHECKING:
            return  # closed meanwhile by close(force=True)
        if not alive:
            self.keepalive_failures += 1
            self._forget(slot, "failed its keepalive check")
            self._plan_opens()
            self._update_calm()
            return
        self.checking -= 1
        slot.state = BUSY  # in transit: _place routes it like a returned connection
        if self.closed or slot.generation != self.generation or self._waiters:
            self._place(slot)
        else:
            slot.state = IDLE
            self._push_idle(slot)
            bucket = self._idle[slot.key][slot.tag]
            bucket.rotate(1)  # from the newest end to the oldest: it has been idle longest
        self._update_calm()

    def resize(self, min_size: int, max_size: int, max_overflow: int) -> None:
        """Change the sizes at run time. Idle connections beyond the new ``max_size`` are
        closed now (least recently used first), lent ones when they come back; what the new
        ``min_size`` lacks is opened."""
        self.min_size = min_size
        self.max_size = max_size
        self.cap = None if max_overflow < 0 else max_size + max_overflow
        if not self._waiters:
            for slot in sorted(self.idle_slots(), key=lambda slot: slot.last_used):
                if self.opened <= max_size:
                    break
                self._remove_idle(slot)
                self._forget(slot, "pool resized")
        self._plan_opens()
        self._update_calm()

    # -- control ---------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Make every current connection stale in O(1): idle ones are closed when next met,
        busy ones when they come back."""
        self.generation += 1

    def drain(self) -> None:
        """Replace every connection: idle ones are closed now and ``min_size`` is opened
        afresh; lent ones are closed when they come back (their generation is old)."""
        self.generation += 1
        for slot in list(self._all):
            if slot.state == IDLE:
                self._remove_idle(slot)
                self._forget(slot, "drained")
        self._plan_opens()
        self._update_calm()

    def close(self, *, force: bool, keep_lent: bool = False) -> bool:
        """Close the pool. Returns False (and changes nothing) if connections are lent and
        neither ``force`` nor ``keep_lent`` is set. With ``force``, lent connections are
        closed too; with ``keep_lent``, each is closed when it comes back. May be called
        again on a closed pool (to force what was kept)."""
        if self.busy and not force and not keep_lent:
            return False
        self.closed = True
        self._holding.clear()
        for slot in list(self._all):
            if slot.state == IDLE:
                self._remove_idle(slot)
            elif not force:
                continue  # lent or being checked: closed by _place when it comes back
            self._forget(slot, "pool closed")
        error = PoolClosed("the pool was closed while this caller waited for a connection")
        for waiter in self._waiters:
            self._fail(waiter, error)
        self._waiters.clear()
        self._waiting_for.clear()
        self._update_calm()
        return True

    # -- internals -------------------------------------------------------------------------

    def _update_calm(self) -> None:
        self.calm = not self._waiters and not self.closed and self.opened <= self.max_size

    def _dequeue(self, request: Request) -> None:
        self._waiters.remove(request)
        if not request.forced:
            self._waiting_for[request.key] -= 1

    def _room(self) -> float:
        if self.cap is None:
            return float("inf")
        return self.cap - self.opened - self.opening

    def _grant(self, request: Request, slot: Slot) -> None:
        slot.state = BUSY
        slot.uses += 1
        self.handoffs += 1
        request.slot = slot
        self.effects.append(Wake(request))

    def _fail(self, request: Request, error: BaseException) -> None:
        request.error = error
        self.effects.append(Wake(request))

    def _place(self, slot: Slot) -> None:
        """Route a slot that just came back or was opened (rules 3 and 4)."""
        if self.closed:
            self._forget(slot, "pool closed")
            return
        if slot.generation != self.generation:
            self._forget(slot, "invalidated")
            self._plan_opens()
            return
        if self.cap is not None and self.opened > self.cap:
            self._forget(slot, "opened beyond the cap")
            self._plan_opens()
            return
        for waiter in self._waiters:
            if waiter.accepts(slot):
                self._dequeue(waiter)
                self._grant(waiter, slot)
                return
        if not self._waiters and (
            self.idle >= self.max_size if self.bounds_idle else self.opened > self.max_size
        ):
            self._forget(slot, "overflow")
            return
        slot.state = IDLE
        self._push_idle(slot)
        if self._waiters:
            # Waiters that cannot use this slot may need it closed to make room (rule 3).
            self._plan_opens()

    def _push_idle(self, slot: Slot) -> None:
        if slot.key is None and slot.tag is None:
            self.fast_idle.append(slot)
            return
        buckets = self._idle.get(slot.key)
        if buckets is None:
            buckets = self._idle[slot.key] = {}
        bucket = buckets.get(slot.tag)
        if bucket is None:
            bucket = buckets[slot.tag] = deque()
        bucket.append(slot)
        self._idle_elsewhere += 1

    def _remove_idle(self, slot: Slot) -> None:
        bucket = self._idle[slot.key][slot.tag]
        bucket.remove(slot)
        if bucket is not self.fast_idle:
            self._idle_elsewhere -= 1
            self._drop_if_empty(slot.key, slot.tag, bucket)

    def _drop_if_empty(self, key: Hashable, tag: str | None, bucket: _Bucket) -> None:
        if bucket or bucket is self.fast_idle:
            return
        buckets = self._idle[key]
        del buckets[tag]
        if not buckets and key is not None:
            del self._idle[key]

    def _pop_current(self, key: Hashable, tag: str | None, bucket: _Bucket) -> Slot | None:
        """Pop the next slot of the current generation, closing stale ones on the way."""
        found = None
        while bucket:
            slot = bucket.pop() if self.lifo else bucket.popleft()
            if bucket is not self.fast_idle:
                self._idle_elsewhere -= 1
            if slot.generation == self.generation:
                found = slot
                break
            self._forget(slot, "invalidated")
        self._drop_if_empty(key, tag, bucket)
        return found

    def _take_idle(self, key: Hashable, tag: str | None, matchanytag: bool) -> Slot | None:
        """Idle lookup in cx_Oracle's order: the exact tag, then untagged, then (for an
        untagged request or with matchanytag) any other tag. O(number of distinct tags)."""
        if (not self.fast_idle and not self._idle_elsewhere) or key not in self._idle:
            return None
        for wanted in (tag, None) if tag is not None else (None,):
            bucket = self._idle.get(key, {}).get(wanted)
            if bucket:
                slot = self._pop_current(key, wanted, bucket)
                if slot is not None:
                    return slot
        if tag is None or matchanytag:
            for other, bucket in list(self._idle.get(key, {}).items()):
                if bucket:
                    slot = self._pop_current(key, other, bucket)
                    if slot is not None:
                        return slot
        return None

    def _forget(self, slot: Slot, reason: str) -> None:
        """Drop a slot that is no longer idle or busy from the accounting and close it."""
        if slot.state == CHECKING:
            self.checking -= 1
        slot.state = CLOSED
        self.opened -= 1
        left = self._opened_for[slot.key] - 1
        if left:
            self._opened_for[slot.key] = left
        else:
            del self._opened_for[slot.key]  # per-user and per-partition keys come and go
        self.connections_closed += 1
        self.closed_by_reason[reason] = self.closed_by_reason.get(reason, 0) + 1
        self._retired_uses += slot.uses - slot.handing_out
        self._all.discard(slot)
        self.effects.append(CloseConnection(slot, reason))

    def _blocked(self, key: Hashable) -> bool:
        """Rule 6: ``key`` is in an outage and its retry timer runs, or its probe is out."""
        return key in self._failing and (key in self._holding or self._opening_for.get(key, 0) > 0)

    def _key_room(self, key: Hashable) -> float:
        """How many more connections ``key`` may open under ``key_cap``."""
        if self.key_cap is None:
            return float("inf")
        return self.key_cap - self._opened_for.get(key, 0) - self._opening_for.get(key, 0)

    def _idle_of(self, key: Hashable) -> int:
        return sum(len(bucket) for bucket in self._idle.get(key, {}).values())

    def _evict_idle(self, key: Hashable = _EVERY_KEY) -> bool:
        """Close the least recently used idle slot (of ``key`` only, when given) to make
        room; False if none is idle.

        Only called while requests wait that no idle slot can serve (rule 3), so no idle slot
        is worth more to them than the room it takes.
        """
        # Each bucket's left end is its least recently used slot, in LIFO and FIFO alike.
        oldest: Slot | None = None
        keys = self._idle.values() if key is _EVERY_KEY else [self._idle.get(key, {})]
        for buckets in keys:
            for bucket in buckets.values():
                if bucket and (oldest is None or bucket[0].last_used < oldest.last_used):
                    oldest = bucket[0]
        if oldest is None:
            return False
        self._remove_idle(oldest)
        self._forget(oldest, "evicted for another user or tag")
        return True

    def _plan_opens(self, only_key: Hashable = _EVERY_KEY, top_up_min: bool = True) -> None:
        """Start the opens that waiting requests and ``min_size`` need, within the cap.

        Waiting keys are served in order of their oldest waiter (or only ``only_key``). A key
        short of connections opens ``max(shortfall, increment)``; at the cap, idle slots of
        other keys or tags are evicted to make room. ``top_up_min`` also opens what
        ``min_size`` lacks.
        """
        if self.closed:
            return
        shortfall: dict[Hashable, int] = {}
        if only_key is not _EVERY_KEY:
            shortfall[only_key] = self._waiting_for[only_key] - self._opening_for.get(only_key, 0)
        else:
            for waiter in self._waiters:
                key = waiter.key
                if key not in shortfall and not waiter.forced:
                    shortfall[key] = self._waiting_for[key] - self._opening_for.get(key, 0)
        for key, short in shortfall.items():
            if short <= 0 or self._blocked(key):
                continue  # rule 6: nothing can be opened for it now, so evict nothing either
            # The key's own cap first: at it, only this key's idle slots (of other tags,
            # which its waiters cannot use) can make room for it.
            key_room = self._key_room(key)
            # Evict only if that yields room to open: a key opened past its cap (forced opens)
            # may lack room even with all its idle slots gone, and then keeps them.
            while key_room < short and key_room + self._idle_of(key) > 0 and self._evict_idle(key):
                key_room += 1
            short = int(min(short, key_room))
            if short <= 0:
                continue  # its waiters wait for one of its own to come back
            room = self._room()
            # Evict only if that yields room to open (a forced open may hold the cap exceeded).
            while room < short and room + self.idle > 0 and self._evict_idle():
                room += 1
            if room > 0:
                self._open(key, int(min(self._growth(short), self._key_room(key))))
        if top_up_min and self.started:
            # Keeping min_size is not growth on demand: open exactly what is missing
            # (cx_Oracle creates a pool with min sessions, whatever its increment).
            short = self.min_size - self.opened - self.opening
            if short > 0 and not self._blocked(None):
                self._open(None, int(min(short, self._room(), self._key_room(None))))

    def _growth(self, short: int) -> int:
        """How many to open for a shortfall: the shortfall rounded up to ``increment`` as long
        as that stays within ``max_size`` (overflow is opened only on demand), never past the
        cap."""
        count = short
        if count < self.increment:
            within_max = self.max_size - self.opened - self.opening
            count = max(count, min(self.increment, within_max))
        return int(min(count, self._room()))

    def _open(self, key: Hashable, count: int) -> None:
        if count <= 0:
            return
        if key in self._failing:
            # Rule 6: nothing while the retry delay runs, then one probe at a time.
            if self._blocked(key):
                return
            count = 1
        self.opening += count
        self._opening_for[key] = self._opening_for.get(key, 0) + count
        self.effects.append(OpenConnections(key, count))
