"""PoolBase: what the threaded `Pool` and the asyncio `AsyncPool` share, written once.

Settings, identities (user keys, tags), figures, SQLAlchemy's names for them, and the words of
every error a pool raises. Nothing here waits, locks for long or does I/O: the two shells
differ exactly in how they wait and how they run the core's effects, and only that is written
twice (see `_sync/pool.py` and `_async/pool.py`; a test holds their public surfaces equal).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
from collections.abc import Hashable
from time import monotonic
from typing import Any, NamedTuple

from . import _fork
from ._core.effects import Effect
from ._core.records import CLOSED
from ._core.state import PoolState
from ._core.stats import PoolStats, snapshot
from ._core.tags import normalize_tag
from .config import PoolConfig, check_timeout, check_when_exhausted
from .errors import ForeignLease, PoolClosed, PoolExhausted, PoolInUse, PoolTimeout, UsageError

__all__ = ["DEFAULT", "PoolBase", "UserKey"]

logger = logging.getLogger("sessionpool.pool")


class _Default:
    """Marks an argument the caller left out (None is a meaningful timeout: wait forever)."""

    def __repr__(self) -> str:
        return "<default>"


DEFAULT: Any = _Default()
_PURITIES = (None, "new", "self", "default")


class UserKey(NamedTuple):
    """Identity of a per-user connection: the user and a salted digest of the password, so a
    connection opened with one password is never lent to a caller presenting another."""

    user: str
    secret: bytes

    def __repr__(self) -> str:
        return f"UserKey({self.user!r})"


class AcquireArguments(NamedTuple):
    """One acquire's arguments, checked and normalized."""

    key: Hashable
    tag: str | None
    mode: str
    timeout: float | None
    purity: str | None


class PoolBase:
    """Shared state and figures of a pool. Subclasses add waiting and I/O."""

    #: The lease class this pool hands out (checked by `_check_owner`).
    _lease_type: type[Any] = object
    _connector: Any

    def __init__(self, connector: Any, config: PoolConfig) -> None:
        self._connector = connector
        self._config = config
        self._core = PoolState(
            min_size=config.min_size,
            max_size=config.max_size,
            max_overflow=config.max_overflow,
            increment=config.increment,
            lifo=config.idle_order == "lifo",
            lazy=config.lazy,
        )
        self._reset_mode = config.reset_on_return
        self._session_callback = config.session_callback
        self._on_connect = config.on_connect
        self._credentials: dict[Hashable, tuple[str | None, str | None]] = {None: (None, None)}
        self._salt = os.urandom(16)
        self.name = config.name or f"pool-{id(self):x}"
        # Validation on checkout: a slot last used before this moment is checked before it is
        # handed out. `_ping_interval` is infinite when checks by age are off; the shells
        # compare against it on their fast lanes, so it is a plain float.
        self._ping_interval = config.ping_interval if config.ping_interval >= 0 else math.inf
        self._check_age = config.ping_interval >= 0  # False: the fast lanes read no clock
        # Retirement on return; infinite limits keep the return path's two comparisons cheap.
        self._max_uses: float = math.inf if config.max_uses is None else config.max_uses
        self._max_lifetime = config.max_lifetime
        self._retiring = config.max_uses is not None or config.max_lifetime is not None
        # Set to "now" when a disconnect is seen: every connection last used before it is
        # suspect (pool-wide invalidation, O(1)); each is checked lazily, at its next hand-out.
        self._suspect_before = -math.inf
        _fork.track(self)

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

    def stats(self) -> PoolStats:
        """A consistent snapshot of the figures and counters."""
        with self._guard():
            return snapshot(self._core)

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
        """Whether a slot must pass a liveness check before it is handed out."""
        last_used: float = slot.last_used
        return last_used < self._suspect_before or (
            self._check_age and now - last_used > self._ping_interval
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
        suspect. What is not an Exception (a cancellation, an interrupt) is raised again."""
        if suspect:
            self._saw_disconnect(monotonic())
        logger.warning(
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
        config = self._config
        self._core = PoolState(
            min_size=config.min_size,
            max_size=config.max_size,
            max_overflow=config.max_overflow,
            increment=config.increment,
            lifo=config.idle_order == "lifo",
            lazy=True,
        )
        if old.closed:
            self._core.close(force=True)
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
        key = None if user is None and password is None else self._key_for(user, password)
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
        try:
            return normalize_tag(tag)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"tag: {exc}") from None

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
        """Detach the core's pending effects (call with the core guarded)."""
        effects = self._core.effects
        if effects:
            self._core.effects = []
        return effects

    def _figures(self) -> str:
        core = self._core
        cap = "no cap" if core.cap is None else f"cap {core.cap}"
        return (
            f"{core.busy} busy of max_size {core.max_size} ({cap}), {core.idle} idle, "
            f"{core.opening} opening, {core.waiting} waiting"
        )

    # -- the words of the errors -----------------------------------------------------------

    def _closed_error(self, while_waiting: bool = False) -> PoolClosed:
        suffix = " while waiting" if while_waiting else ""
        return PoolClosed(f"pool {self.name!r} {'was' if while_waiting else 'is'} closed{suffix}")

    def _exhausted_error(self) -> PoolExhausted:
        return PoolExhausted(
            f"pool {self.name!r}: no connection free and the pool is at its cap "
            f"({self._figures()}); raise max_size/max_overflow or use when_exhausted='wait'"
        )

    def _timeout_error(self, timeout: float | None, figures: str) -> PoolTimeout:
        return PoolTimeout(
            f"pool {self.name!r}: no connection free within {timeout} s ({figures}); raise "
            "max_size or wait_timeout, or release connections sooner"
        )

    def _no_fresh_session_error(self, timeout: float | None) -> PoolTimeout:
        return PoolTimeout(
            f"pool {self.name!r}: no fresh session within {timeout} s: resetting the ones "
            "found failed (see the log)"
        )

    def _in_use_error(self) -> PoolInUse:
        return PoolInUse(
            f"pool {self.name!r}: {self._core.busy} connection(s) still borrowed; release "
            "them first or call close(force=True)"
        )

    def _open_timeout_error(self, count: int, timeout: float | None) -> PoolTimeout:
        return PoolTimeout(
            f"pool {self.name!r}: opening {count} connection(s) took more than {timeout} s; "
            "check that the database is reachable"
        )
