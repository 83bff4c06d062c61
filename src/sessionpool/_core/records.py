"""Records the core keeps: a Slot per physical connection and a Request per waiting borrower.

Plain data with __slots__; the core changes them, shells read them. No behaviour beyond that.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

__all__ = ["BUSY", "CHECKING", "CLOSED", "IDLE", "Request", "Slot"]

_FOREVER = float("inf")

# Slot states. Ints, not an Enum: they are compared on the acquire/release hot path.
IDLE = 0
BUSY = 1
CLOSED = 2
CHECKING = 3  # out of the idle lists for a keepalive check by the maintenance worker


class Slot:
    """One physical connection the pool owns, from its opening to its closing.

    ``key`` is the identity a borrower must ask for to get it (None for the pool's own
    credentials, else whatever the shell uses for a user); ``tag`` the normalized session tag.
    ``dirty`` is set by the shell when a borrower touched the driver connection, so a return
    can skip the reset when nothing was done. ``fresh`` is kept by the shell too: no borrower
    has used the session since it was opened or fully reset (cx_Oracle's purity NEW).
    """

    __slots__ = (
        "checked_at",
        "connection",
        "created_at",
        "dirty",
        "expires_at",
        "fresh",
        "generation",
        "handing_out",
        "key",
        "last_used",
        "lease_class",
        "lent_at",
        "lent_where",
        "reported_use",
        "state",
        "tag",
        "uses",
    )

    def __init__(self, connection: Any, key: Hashable, generation: int, now: float) -> None:
        self.connection = connection
        self.key = key
        self.tag: str | None = None
        self.generation = generation
        self.created_at = now
        self.last_used = now
        self.uses = 0
        # Set by the shell, under its guard, when the core lends the slot on a slow path
        # (`acquire`, or a hand-off to a waiter) and cleared once the borrower has it (the
        # shell may check or reset it first): counted in ``uses`` but not yet an acquire.
        self.handing_out = False
        self.state = IDLE
        # The shell hands over a new connection already reset (after its on_connect).
        self.dirty = False
        self.fresh = True
        # Owned by the shell: when the connection is retired on its next return (its
        # lifetime, jittered); infinite when lifetimes are off.
        self.expires_at = _FOREVER
        # Owned by the shell: the handle class it wraps this connection in, chosen once
        # from the driver connection's type so the acquire path does no lookup.
        self.lease_class: Any = None
        # Owned by the shell: when a check last found the connection alive (a keepalive
        # check leaves ``last_used``, the start of its idle time, as it was).
        self.checked_at = now
        # Owned by the shell: when the current borrower got it, where (a stack summary, when
        # leak tracking is on), and which use a leak warning was last given for.
        self.lent_at = now
        self.lent_where: Any = None
        self.reported_use = 0

    def __repr__(self) -> str:
        state = ("idle", "busy", "closed", "checking")[self.state]
        return f"<Slot key={self.key!r} tag={self.tag!r} {state} uses={self.uses}>"


class Request:
    """One borrower waiting for a connection, in FIFO order.

    The core fills exactly one of ``slot`` (granted) or ``error`` (failed) and then emits a
    `Wake` effect; ``handle`` belongs to the shell (whatever it blocks on).
    """

    __slots__ = ("error", "forced", "handle", "key", "matchanytag", "slot", "tag")

    def __init__(
        self, key: Hashable, tag: str | None, matchanytag: bool, handle: Any = None
    ) -> None:
        self.key = key
        self.tag = tag
        self.matchanytag = matchanytag
        self.handle = handle
        self.slot: Slot | None = None
        self.error: BaseException | None = None
        # Waits for a connection opened for it alone, beyond the cap (when_exhausted="force").
        self.forced = False

    @property
    def is_settled(self) -> bool:
        return self.slot is not None or self.error is not None

    def accepts(self, slot: Slot) -> bool:
        """Whether this borrower may be handed that idle slot.

        Same key always; then the cx_Oracle tag rules: an untagged request takes any tag, a
        tagged one takes its own tag or an untagged session, and any tag with matchanytag.
        """
        if slot.key != self.key:
            return False
        return self.tag is None or slot.tag is None or slot.tag == self.tag or self.matchanytag
