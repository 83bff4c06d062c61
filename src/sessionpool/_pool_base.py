"""PoolBase: what the threaded `Pool` and the asyncio `AsyncPool` share, written once.

Settings, identities (user keys, tags), figures, SQLAlchemy's names for them, and the words of
every error a pool raises. Nothing here waits, locks for long or does I/O: the two shells
differ exactly in how they wait and how they run the core's effects, and only that is written
twice (see `_sync/pool.py` and `_async/pool.py`; a test holds their public surfaces equal).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import random
import sys
from collections.abc import Hashable
from time import monotonic
from typing import Any, NamedTuple

from . import _fork, _server_pooler
from ._core.counts import CoreCounts, snapshot
from ._core.effects import Effect, Wake
from ._core.records import CLOSED
from ._core.state import PoolState
from ._core.tags import normalize_tag
from ._leaks import format_where, short_where
from .config import PoolConfig, check_timeout, check_when_exhausted
from .errors import (
    ConfigError,
    ForeignLease,
    PoolClosed,
    PoolExhausted,
    PoolInUse,
    PoolTimeout,
    UsageError,
)
from .observe import echo
from .observe.advice import Advice, ServerFacts, advise
from .observe.events import Listener, Listeners, PoolEvent
from .observe.naming import default_name, unique_name
from .observe.recorder import Recorder
from .observe.stats import PoolStats

__all__ = ["DEFAULT", "PoolBase", "UserKey", "mark_hand_outs"]


def mark_hand_outs(effects: list[Effect]) -> None:
    """Slots the core just handed to waiters are being handed out until their borrowers
    take them (see `Slot.handing_out`); marked while the core is still guarded, so that no
    reading sees them as acquires and then, should the hand-out fail, as not."""
    for effect in effects:
        if isinstance(effect, Wake) and effect.request.slot is not None:
            effect.request.slot.handing_out = True


class _Default:
    """Marks an argument the caller left out (None is a meaningful timeout: wait forever)."""

    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _Default()
_PURITIES = (None, "new", "self", "default")
# Settings reconfigure() cannot change on a live pool: they decide how connections were
# identified or ordered, or how the pool was started.
_FIXED_SETTINGS = ("homogeneous", "idle_order", "lazy", "max_size_bounds", "server_pooler")
# The maintenance worker wakes at least this often (orphaned leases, retries) and at most
# this often (whatever the limits it enforces); a wake with nothing to do costs microseconds.
_SLOWEST_TICK = 1.0
_FASTEST_TICK = 0.05


class UserKey(NamedTuple):
    """Identity of a per-user connection: the user and a salted digest of the password, so a
    connection opened with one password is never lent to a caller presenting another."""

    user: str
    secret: bytes

    def __repr__(self) -> str:
        return f"UserKey({self.user!r})"


class PartitionKey(NamedTuple):
    """Identity of a connection acquired with ``partition=``: the user's key (None for the
    pool's own credentials) and the partition. Lent only to the same pair."""

    user_key: Hashable
    partition: Hashable


class AcquireArguments(NamedTuple):
    """One acquire's arguments, checked and normalized."""

    key: Hashable
    tag: str | None
    mode: str
    timeout: float | None
    purity: str | None


def _core_for(config: PoolConfig, *, lazy: bool) -> PoolState:
    """A new decision core with ``config``'s sizes and policies (at creation, and afresh in
    a forked child, which opens lazily)."""
    return PoolState(
        min_size=config.min_size,
        max_size=config.max_size,
        max_overflow=config.max_overflow,
        increment=config.increment,
        lifo=config.idle_order == "lifo",
        lazy=lazy,
        key_cap=config.max_per_partition,
        max_size_bounds=config.max_size_bounds,
    )


class PoolBase:
    """Shared state and figures of a pool. Subclasses add waiting and I/O."""

    #: The lease class this pool hands out (checked by `_check_owner`).
    _lease_type: type[Any] = object
    _connector: Any

    def __init__(self, connector: Any, config: PoolConfig) -> None:
        self._connector = connector
        self._config = config
        self._core = _core_for(config, lazy=config.lazy)
        self._credentials: dict[Hashable, tuple[str | None, str | None]] = {None: (None, None)}
        self._salt = os.urandom(16)
        from_url = None if config.name else default_name(getattr(connector, "url", None))
        if config.name:
            self.name: str = config.name
        elif from_url:
            self.name = unique_name(from_url, self)
        else:
            self.name = f"pool-{id(self):x}"  # unique while the pool lives
        # A logger lives as long as the process: one per named pool (a set of names that
        # does not grow with every pool created), the shared one for unnamed creator pools.
        self._log = echo.pool_logger(self.name if config.name or from_url else None)
        # Set to "now" when a disconnect is seen: every connection last used before it is
        # suspect (pool-wide invalidation, O(1)); each is checked lazily, at its next hand-out.
        self._suspect_before = -math.inf
        self._recorder = Recorder(monotonic())
        self._listeners = Listeners(self._hooks_changed)
        # Detailed statistics turned on at run time (an exporter, `detailed_stats = True`):
        # kept across reconfigure(), whose config says only what was asked at creation.
        self._detailed_on = False
        # Behind a server pooler (server_pooler, fixed for the pool's life): the connector
        # sets its driver's arguments for it, and the first connection opened without the
        # setting is checked for a pooler in front (once per pool, never per connect).
        self._server_pooler = config.server_pooler
        self._pooler_unchecked = config.server_pooler is None
        connector.use_server_pooler(config.server_pooler)
        if config.server_pooler == "transaction" and config.on_connect is not None:
            self._log.warning(_server_pooler.on_connect_warning(self.name))
        self._apply_settings(config)
        echo.attach(self._listeners, self._log, config.echo)
        _fork.track(self)

    def _apply_settings(self, config: PoolConfig) -> None:
        """Derive the working fields from ``config`` (at creation and on reconfigure)."""
        self._config = config
        self._reset_mode = config.reset_on_return
        self._session_callback = config.session_callback
        self._on_connect = config.on_connect
        # Validation on checkout: a slot idle longer than this is checked before it is
        # handed out. Infinite when checks by age are off; the fast lanes compare against
        # it, so it is a plain float.
        self._ping_interval = config.ping_interval if config.ping_interval >= 0 else math.inf
        # Retirement on return; infinite limits keep the return path's two comparisons cheap.
        self._max_uses: float = math.inf if config.max_uses is None else config.max_uses
        self._max_lifetime = config.max_lifetime
        self._retiring = config.max_uses is not None or config.max_lifetime is not None
        # Leak tracking: acquires leave the fast lane to record where they happened.
        self._tracking = config.leak_threshold is not None
        self._detailed = config.detailed_stats or self._detailed_on
        self._hooks_changed()
        self._connector.limit_connects(config.connect_timeout)

    def _hooks_changed(self) -> None:
        """Recompute the two flags the fast lanes test, so that work nobody asked for costs
        one attribute read: ``_lend_hooks`` sends acquires through `_acquire_checked` (leak
        tracking, "checkout" listeners), ``_return_hooks`` sends returns through
        `_returning` (retirement, detailed statistics, "checkin" listeners)."""
        listeners = self._listeners
        self._checkin_listened = listeners.any_for("checkin")
        self._observing_returns = self._detailed or self._checkin_listened
        self._lend_hooks = self._tracking or listeners.any_for("checkout")
        self._return_hooks = self._retiring or self._observing_returns

    # -- figures ---------------------------------------------------------------------------

    @property
    def config(self) -> PoolConfig:
        return self._config

    @property
    def busy(self) -> int:
        """Connections borrowed now."""
        return self._core.busy

    @property
    def idle(self) -> int:
        """Connections open and free now."""
        return self._core.idle

    @property
    def opened(self) -> int:
        """Connections open now (busy + idle)."""
        return self._core.opened

    @property
    def opening(self) -> int:
        """Connections being opened now."""
        return self._core.opening

    @property
    def waiting(self) -> int:
        """Callers waiting for a connection now."""
        return self._core.waiting

    @property
    def min_size(self) -> int:
        return self._config.min_size

    @property
    def max_size(self) -> int:
        return self._config.max_size

    @property
    def max_overflow(self) -> int:
        return self._config.max_overflow

    @property
    def increment(self) -> int:
        return self._config.increment

    @property
    def closed(self) -> bool:
        return self._core.closed

    def stats(self, reset: bool = False) -> PoolStats:
        """A consistent snapshot of the figures, counters and timing histograms.

        Args:
            reset: report the interval since the previous ``stats(reset=True)`` (or since
                the pool was created) instead of the totals, and start a new interval. The
                totals are not changed by it: other readers still see them.
        """
        now = monotonic()
        return self._recorder.stats(self._counts(), now, self._observing_returns, reset)

    def _counts(self) -> CoreCounts:
        """The core's counts, read consistently (each shell knows how)."""
        with self._guard():
            return snapshot(self._core)

    def advise(self, server: ServerFacts | None = None, *, processes: int = 1) -> list[Advice]:
        """Tuning advice from this pool's figures since it was created, warnings first: each
        `Advice` has a sentence with the numbers and the settings it suggests. Sizing uses
        Little's law on measured acquire rates and hold times (``detailed_stats=True``
        measures hold times; without it they are derived from the mean busy count).

        Args:
            server: the server's limits (``sessionpool check URL`` reads them), to compare
                idle timeouts and max_connections with this pool's settings.
            processes: how many processes run a pool like this one against the server.
        Raises:
            ConfigError: ``processes`` is not a whole number >= 1.
        """
        return advise(self.stats(), self._config, server, processes=processes)

    # -- events ----------------------------------------------------------------------------

    def add_listener(self, kind: str, listener: Listener) -> None:
        """Call ``listener(event)`` for every event of ``kind`` (see `PoolEvent`).

        Kinds, in the order they happen to a connection: "connect" (opened; duration is the
        connect time) or "connect_error", "checkout" (lent; the wait), "checkin" (given back;
        the time held), "reset" (after a reset on return; its time, or the error), "drop"
        (taken out of the pool; the reason) then "close" (the driver connection closed), and
        "timeout" (an acquire gave up). Listeners run on the thread (or event loop) where the
        thing happened, outside the pool's lock; they must be quick and must not block. One
        that raises is logged and skipped. With no listener an event costs nothing; a
        "checkin" listener turns on detailed statistics (see ``detailed_stats``).
        Raises:
            ConfigError: an unknown kind, or a listener that is not callable.
        """
        self._listeners.add(kind, listener)

    def remove_listener(self, kind: str, listener: Listener) -> None:
        """Stop calling ``listener`` for ``kind``.

        Raises:
            ConfigError: it was not listening to that kind.
        """
        self._listeners.remove(kind, listener)

    def listens_for(self, kind: str) -> Any:
        """`add_listener` as a decorator: ``@pool.listens_for("checkout")``."""

        def register(listener: Listener) -> Listener:
            self._listeners.add(kind, listener)
            return listener

        return register

    @property
    def detailed_stats(self) -> bool:
        """Whether use times and the exact busy peak are recorded (see `PoolConfig`)."""
        return self._observing_returns

    @detailed_stats.setter
    def detailed_stats(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"detailed_stats must be True or False, not {value!r}")
        self._detailed_on = value
        self._detailed = value
        self._hooks_changed()

    def _emit(
        self,
        kind: str,
        connection: Any = None,
        duration: float | None = None,
        reason: str | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Tell the listeners of ``kind``, if any (callers on busy paths ask `any_for`
        first, so that not even this call is made)."""
        listeners = self._listeners
        if listeners.any_for(kind):
            listeners.emit(PoolEvent(kind, self.name, connection, duration, reason, error))

    def _handed_out(self, slot: Any, waited: float) -> None:
        """An acquire that left the fast lane is done: its wait is recorded, then (in this
        order, so that a reading in between never counts it twice) it becomes an acquire,
        and "checkout" listeners are told."""
        self._recorder.record_wait(waited, self._core.busy)
        slot.handing_out = False
        if self._lend_hooks:
            self._lent(slot, waited)

    def _replaced(self, old: Any, new: Any, took: float) -> None:
        """A full reset put a new connection in a slot (the driver cannot reset in place):
        counted and told as the old one dropped and the new one opened."""
        reason = "replaced by a full reset"
        with self._guard():
            core = self._core
            core.connections_opened += 1
            core.connections_closed += 1
            core.closed_by_reason[reason] = core.closed_by_reason.get(reason, 0) + 1
        self._recorder.record_connect(took)
        self._emit("drop", old, reason=reason)
        self._emit("connect", new, took)

    def _lent(self, slot: Any, waited: float) -> None:
        """After a hand-out that left the fast lane: the "checkout" event."""
        if self._listeners.any_for("checkout"):
            self._listeners.emit(PoolEvent("checkout", self.name, slot.connection, waited))

    def _returning(self, slot: Any, now: float) -> bool:
        """A lent slot is coming back (the lease already let it go): record its use, tell
        "checkin" listeners, and retire it if its lifetime or uses are spent. True when it
        was retired (the caller is done)."""
        if self._observing_returns:
            held = now - slot.lent_at
            self._recorder.returns.append((held, self._core.busy))
            if self._checkin_listened:
                self._listeners.emit(PoolEvent("checkin", self.name, slot.connection, held))
        if self._retiring:
            if now >= slot.expires_at:
                self._discard(slot, "max_lifetime reached")
                return True
            if slot.uses >= self._max_uses:
                self._discard(slot, "max_uses reached")
                return True
        return False

    # SQLAlchemy's names for the same figures (pool_size = max_size).
    def size(self) -> int:
        return self._config.max_size

    def checkedin(self) -> int:
        return self._core.idle

    def checkedout(self) -> int:
        return self._core.busy

    def overflow(self) -> int:
        """Connections open beyond ``max_size`` (negative while below it), as SQLAlchemy."""
        return self._core.opened - self._config.max_size

    def status(self) -> str:
        """SQLAlchemy's one-line status."""
        with self._guard():
            idle, opened, busy = self._core.idle, self._core.opened, self._core.busy
        return (
            f"Pool size: {self._config.max_size}  Connections in pool: {idle} "
            f"Current Overflow: {opened - self._config.max_size} "
            f"Current Checked out connections: {busy}"
        )

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        """Whether ``error`` (raised by the driver) means the connection is dead, by the
        driver's own codes, as opposed to an ordinary SQL error."""
        if isinstance(connection, self._lease_type):
            slot = connection._slot
            connection = None if slot is None else slot.connection
        return bool(self._connector.driver.is_disconnect(error, connection))

    def __repr__(self) -> str:
        core = self._core
        state = "closed" if core.closed else "open"
        return (
            f"<{type(self).__name__} {self.name!r} {state} busy={core.busy} idle={core.idle} "
            f"opened={core.opened} max_size={self._config.max_size} waiting={core.waiting} "
            f"via {self._connector.describe()}>"
        )

    # -- internals shared by both shells ---------------------------------------------------

    def _needs_check(self, slot: Any, now: float) -> bool:
        """Whether a slot must pass a liveness check before it is handed out: it was last
        known alive (used, or checked by keepalive) before a disconnect was seen, or longer
        ago than ``ping_interval``."""
        known_alive: float = max(slot.last_used, slot.checked_at)
        return known_alive < self._suspect_before or now - known_alive > self._ping_interval

    # -- maintenance shared by both shells (call with the core guarded) ------------------------

    def _tick(self) -> float:
        """Seconds between two rounds of the maintenance worker: a fraction of the shortest
        limit it enforces, so each is kept to within that fraction."""
        config = self._config
        limits = [
            limit / 4
            for limit in (
                config.max_idle,
                config.max_lifetime,
                config.keepalive_interval,
                config.leak_threshold,
            )
            if limit is not None
        ]
        return max(_FASTEST_TICK, min([_SLOWEST_TICK, *limits]))

    def _idle_before(self, now: float) -> float | None:
        """Idle since before this moment means past ``max_idle`` (None: no limit)."""
        max_idle = self._config.max_idle
        return None if max_idle is None else now - max_idle

    def _due_for_keepalive(self, now: float) -> list[Any]:
        """Idle slots not known alive for ``keepalive_interval`` seconds, longest first."""
        interval = self._config.keepalive_interval
        if interval is None:
            return []
        due = [
            slot
            for slot in self._core.idle_slots()
            if now - max(slot.last_used, slot.checked_at) >= interval
        ]
        due.sort(key=lambda slot: max(slot.last_used, slot.checked_at))
        return due

    def _lost_slots(self) -> list[Any]:
        """Lent slots whose lease is gone: collected without being released.

        Found by reference count, so that leases cost nothing for this on the hot path (a
        ``__del__`` on every lease would cost about a tenth of an acquire and release). A lent
        slot is referenced by the core and, while anyone holds it, by its lease (or by the
        frame or request handing it out). Only the core's reference left means lost. The
        count of "only the core's" is measured on a probe held exactly the same way, in the
        same loop, so it does not depend on the interpreter's way of counting.
        """
        candidates = [object(), *self._core.lent_slots()]  # the probe first
        held_like_the_core = {candidates[0]}  # noqa: F841 (as the core's set holds a slot)
        lost = []
        unheld = 0
        for index, slot in enumerate(candidates):
            count = sys.getrefcount(slot)
            if index == 0:
                unheld = count
            elif count <= unheld:
                lost.append(slot)
        return lost

    def _leaks_to_report(self, now: float) -> list[tuple[Any, float]]:
        """Lent slots held past ``leak_threshold`` and not yet reported for this lending;
        marks them reported."""
        threshold = self._config.leak_threshold
        if threshold is None:
            return []
        found = []
        for slot in self._core.lent_slots():
            held = now - slot.lent_at
            if held > threshold and slot.reported_use != slot.uses:
                slot.reported_use = slot.uses
                found.append((slot, held))
        self._core.leaks_reported += len(found)
        return found

    def _report_leak(self, slot: Any, held: float) -> None:
        self._log.warning(
            "pool %r: a connection has been borrowed for %.1f s (leak_threshold %s s); "
            "acquired at:\n%s",
            self.name,
            held,
            self._config.leak_threshold,
            format_where(slot.lent_where),
        )

    def _report_orphan(self, slot: Any) -> None:
        self._log.warning(
            "pool %r: a borrowed connection was garbage-collected without being released; "
            "it is reset and returned to the pool. Acquired at:\n%s",
            self.name,
            format_where(slot.lent_where),
        )

    def _settings_changed(self, settings: dict[str, Any]) -> None:
        """Validate ``settings`` against the current config and apply them (call with the
        core guarded; the shell then runs the effects)."""
        fixed = sorted(set(settings) & set(_FIXED_SETTINGS))
        if fixed:
            raise ConfigError(
                f"{', '.join(fixed)} cannot change on a live pool; create a new pool instead"
            )
        unknown = sorted(set(settings) - PoolConfig.parameter_names())
        if unknown:
            raise ConfigError(f"unknown pool setting(s) {', '.join(unknown)}")
        config = dataclasses.replace(self._config, **settings)  # validates
        lifetime_changed = config.max_lifetime != self._config.max_lifetime
        self._apply_settings(config)
        core = self._core
        core.increment = config.increment
        core.key_cap = config.max_per_partition
        if lifetime_changed:
            for slot in core.slots():
                slot.expires_at = self._lifetime_from(slot.created_at)
        core.resize(config.min_size, config.max_size, config.max_overflow)

    def _holders(self, now: float) -> str:
        """Who holds the connections, for a timeout error: how many, for how long, and
        where the longest-held one was acquired (when leak tracking records it)."""
        lent = sorted(self._core.lent_slots(), key=lambda slot: slot.lent_at)
        if not lent:
            return ""
        shown = ", ".join(f"{now - slot.lent_at:.1f} s" for slot in lent[:5])
        more = f" and {len(lent) - 5} more" if len(lent) > 5 else ""
        return (
            f"; {len(lent)} held for {shown}{more}; the longest acquired at "
            f"{short_where(lent[0].lent_where)}"
        )

    def _lifetime_from(self, now: float) -> float:
        """When a connection opened ``now`` expires: ``max_lifetime`` less 0-2.5% jitter."""
        lifetime = self._max_lifetime
        if lifetime is None:
            return math.inf
        return now + lifetime * (1.0 - random.uniform(0.0, 0.025))

    def _drop_failed(self, slot: Any, error: BaseException, what: str, suspect: bool) -> None:
        """A reset or check on a lent slot failed: its session state is unknown, so drop the
        connection and say why. ``suspect`` also makes every connection used before now
        suspect. A slot still being handed out is not counted as an acquire (see
        `PoolState._forget`). What is not an Exception (a cancellation, an interrupt) is
        raised again."""
        if suspect:
            self._saw_disconnect(monotonic())
        self._log.warning(
            "pool %r: %s failed (%s: %s); dropping that connection",
            self.name,
            what,
            type(error).__name__,
            error,
        )
        self._discard(slot, f"{what} failed")
        if not isinstance(error, Exception):
            raise error

    def _discard(self, slot: Any, reason: str) -> None:
        """Forget a lent slot and close its connection (each shell runs the effects)."""
        raise NotImplementedError

    def _saw_disconnect(self, now: float) -> None:
        """A connection turned out dead: suspect every one last used before ``now``."""
        self._recorder.record_disconnect()
        self._suspect_before = max(self._suspect_before, now)

    def _forget_after_fork(self) -> None:
        """In a forked child: leave every inherited connection alone for good (see `_fork`)
        and start again empty, opening on demand. Leases the child inherited are unusable."""
        old = self._core
        driver = self._connector.driver
        for slot in old.slots():
            fileno = getattr(driver, "fileno", None)
            try:
                fd = fileno(slot.connection) if fileno is not None else None
            except Exception:
                fd = None
            _fork.bury(slot.connection, fd)
            slot.state = CLOSED
        self._core = _core_for(self._config, lazy=True)
        if old.closed:
            self._core.close(force=True)
        # The child's figures start again with its core; the recorder's and the listeners'
        # locks may have been held at the fork by a thread the child does not have.
        self._recorder = Recorder(monotonic())
        self._listeners.after_fork()
        self._reset_after_fork()

    def _reset_after_fork(self) -> None:
        """What the shell itself must renew in a forked child (locks, loop bindings)."""
        raise NotImplementedError

    def _guard(self) -> Any:
        """The context that makes a read of several figures consistent."""
        raise NotImplementedError

    def _request(
        self,
        timeout: float | None,
        tag: str | None,
        user: str | None,
        password: str | None,
        when_exhausted: str | None,
        purity: str | None,
        partition: Hashable = None,
    ) -> AcquireArguments:
        """Check and normalize an acquire's arguments (the slow path's first step)."""
        if timeout is DEFAULT:
            timeout = self._config.wait_timeout
        else:
            check_timeout("timeout", timeout)
        mode = self._config.when_exhausted if when_exhausted is None else when_exhausted
        check_when_exhausted(mode)
        if purity not in _PURITIES:
            raise UsageError(f"purity must be 'new', 'self' or 'default' (got {purity!r})")
        if purity in ("new", "self") and self._server_pooler == "transaction":
            raise UsageError(
                f"purity={purity!r} asks for a particular server session, which "
                "server_pooler='transaction' cannot give: the pooler picks the server session "
                "per transaction; leave purity out (or 'default')"
            )
        key = None if user is None and password is None else self._key_for(user, password)
        if partition is not None:
            try:
                hash(partition)
            except TypeError:
                raise UsageError(
                    f"partition must be hashable (a string, number or tuple), "
                    f"not {type(partition).__name__}"
                ) from None
            user_key, key = key, PartitionKey(key, partition)
            self._credentials.setdefault(key, self._credentials.get(user_key, (None, None)))
        wanted_tag = None if tag is None else self._normalize_tag(tag)
        return AcquireArguments(key, wanted_tag, mode, timeout, purity)

    def _key_for(self, user: str | None, password: str | None) -> Hashable:
        if user is None and password is None:
            return None
        if self._config.homogeneous:
            raise UsageError(
                f"pool {self.name!r} is homogeneous: acquire() takes no user or password; "
                "create the pool with homogeneous=False for per-user connections"
            )
        if not isinstance(user, str) or not user:
            raise UsageError("user must be a non-empty string when a password is given")
        secret = (password or "").encode()
        key = UserKey(user, hashlib.blake2b(secret, key=self._salt, digest_size=16).digest())
        self._credentials[key] = (user, password)
        return key

    def _normalize_tag(self, tag: str | None) -> str | None:
        if self._server_pooler == "transaction":
            # Only ever called with a tag (acquire or release): off the hot path.
            raise UsageError(
                f"pool {self.name!r}: session tags cannot work with server_pooler='transaction': "
                "the session state a tag names does not outlive the transaction it was set in "
                "(the pooler hands the next one another server session); set it per "
                "transaction (SET LOCAL) instead"
            )
        try:
            return normalize_tag(tag)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"tag: {exc}") from None

    def _claim_pooler_check(self) -> bool:
        """Whether the connection just opened should be checked for a pooler in front: only
        the pool's first, and only without ``server_pooler`` (call with the core guarded)."""
        claimed = self._pooler_unchecked
        self._pooler_unchecked = False
        return claimed

    def _warn_if_pooled(self, pids: tuple[int, int] | None) -> None:
        """Log the warning for a pooler found in front (``pids``: the protocol's backend pid
        and the server's, as the driver's `pooler_in_front` returns them)."""
        if pids is not None:
            self._log.warning(_server_pooler.detected_warning(self.name, *pids))

    def _check_owner(self, lease: Any) -> None:
        if not isinstance(lease, self._lease_type):
            raise UsageError(
                f"expected a connection returned by acquire(), got {type(lease).__name__}"
            )
        if lease._pool is not self:
            raise ForeignLease(
                f"this connection belongs to pool {lease._pool.name!r}, not {self.name!r}"
            )

    def _take_effects(self) -> list[Effect]:
        """Detach the core's pending effects (call with the core guarded).

        Never the core's own list, even empty: the caller runs what it gets after the lock
        is released, when another thread may be adding to the core's list (it would then
        run that thread's effects too, waking a waiter twice)."""
        effects = self._core.effects
        if effects:
            self._core.effects = []
            mark_hand_outs(effects)
            return effects
        return []

    def _figures(self, holders: bool = False) -> str:
        """The figures for an error message (call with the core guarded); ``holders`` adds
        who holds the busy connections."""
        core = self._core
        cap = "no cap" if core.cap is None else f"cap {core.cap}"
        checking = f"{core.checking} being checked, " if core.checking else ""
        figures = (
            f"{core.busy} busy of max_size {core.max_size} ({cap}), {core.idle} idle, "
            f"{checking}{core.opening} opening, {core.waiting} waiting"
        )
        return figures + self._holders(monotonic()) if holders else figures

    # -- the words of the errors -----------------------------------------------------------

    def _closed_error(self, while_waiting: bool = False) -> PoolClosed:
        suffix = " while waiting" if while_waiting else ""
        return PoolClosed(f"pool {self.name!r} {'was' if while_waiting else 'is'} closed{suffix}")

    def _exhausted_error(self) -> PoolExhausted:
        return PoolExhausted(
            f"pool {self.name!r}: no connection free and the pool is at its cap "
            f"({self._figures()}); raise max_size/max_overflow or use when_exhausted='wait'"
        )

    def _timeout_error(
        self, timeout: float | None, figures: str, connect_error: BaseException | None = None
    ) -> PoolTimeout:
        """``figures`` is `_figures()` plus `_holders()`, read under the guard. With a
        ``connect_error`` (connects failed while the caller waited), that is the cause.
        Tells the "timeout" listeners (as `_no_fresh_session_error` does for the other
        kind of acquire timeout)."""
        self._emit("timeout", duration=timeout)
        if connect_error is not None:
            error = PoolTimeout(
                f"pool {self.name!r}: no connection within {timeout} s: the database does not "
                f"accept connections ({type(connect_error).__name__}: {connect_error}) "
                f"({figures}); the pool retries at most every 0.5 s"
            )
            error.__cause__ = connect_error
            return error
        return PoolTimeout(
            f"pool {self.name!r}: no connection free within {timeout} s ({figures}); raise "
            "max_size or wait_timeout, or release connections sooner"
        )

    def _count_timeout(self) -> None:
        """An acquire timed out after the core had served it (its connection failed a check
        or a reset): the core did not see that timeout, so it is counted here."""
        with self._guard():
            self._core.timeouts += 1

    def _no_fresh_session_error(self, timeout: float | None) -> PoolTimeout:
        self._count_timeout()
        self._emit("timeout", duration=timeout)
        return PoolTimeout(
            f"pool {self.name!r}: no fresh session within {timeout} s: resetting the ones "
            "found failed (see the log)"
        )

    def _in_use_error(self) -> PoolInUse:
        return PoolInUse(
            f"pool {self.name!r}: {self._core.busy} connection(s) still borrowed; release "
            "them first or call close(force=True)"
        )

    def _not_ready_error(
        self, connect_error: BaseException | None, timeout: float | None = None
    ) -> PoolTimeout:
        core = self._core
        if connect_error is not None:
            error = PoolTimeout(
                f"pool {self.name!r} is not ready: a connect failed "
                f"({type(connect_error).__name__}: {connect_error}); "
                f"{core.opened} of min_size {core.min_size} open"
            )
            error.__cause__ = connect_error
            return error
        return PoolTimeout(
            f"pool {self.name!r} is not ready within {timeout} s: {core.opened} of min_size "
            f"{core.min_size} open, {core.opening} opening"
        )

    def _open_timeout_error(self, count: int, timeout: float | None) -> PoolTimeout:
        return PoolTimeout(
            f"pool {self.name!r}: opening {count} connection(s) took more than {timeout} s; "
            "check that the database is reachable"
        )
