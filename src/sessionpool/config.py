"""PoolConfig: every pool setting in one frozen, keyword-only object, validated once.

Validation happens here, at construction, and names the offending parameter; nothing else in
the library re-checks these values. Holds no connection and does no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

from .errors import ConfigError

__all__ = ["PoolConfig", "ResetOnReturn", "ServerPooler", "SessionCallback", "WhenExhausted"]

WhenExhausted = Literal["wait", "fail", "force"]
# The pool mode of a server-side pooler (PgBouncer) between the pool and the database.
ServerPooler = Literal["transaction", "session"]
IdleOrder = Literal["lifo", "fifo"]
# "rollback" ends the borrower's transaction (a round trip only when one is open, where the
# driver can tell); "commit" commits it; "full" also clears all session state (the driver's
# full reset, or a reopen); None does nothing; a callable receives the driver connection and
# must leave it ready for the next borrower.
ResetOnReturn = Literal["rollback", "commit", "full"] | None | Callable[[Any], object]
# Called as session_callback(connection, requested_tag, actual_tag) when the session handed
# out does not carry the tag that was asked for.
SessionCallback = Callable[[Any, str | None, str | None], object]

_WHEN_EXHAUSTED = ("wait", "fail", "force")
_IDLE_ORDERS = ("lifo", "fifo")
_RESET_NAMES = ("rollback", "commit", "full")
_SERVER_POOLERS = ("transaction", "session")


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolConfig:
    """Settings of one pool.

    Sizing, in one model that both seed vocabularies map onto:

    * ``min_size``: connections kept open at all times once the pool has started
      (cx_Oracle ``min``). SQLAlchemy keeps no minimum: its pools map to ``min_size=0``.
    * ``max_size``: connections the pool keeps (cx_Oracle ``max``, SQLAlchemy ``pool_size``).
    * ``max_overflow``: extra connections opened beyond ``max_size`` while demand lasts and
      closed when they come back with nobody waiting (SQLAlchemy ``max_overflow``);
      ``-1`` means no limit. The hard cap is ``max_size + max_overflow``.
    * ``increment``: how many connections are opened together when the pool must grow
      (cx_Oracle ``increment``); they are opened concurrently.

    Args:
        min_size: connections opened at start (unless ``lazy``) and kept open.
        max_size: connections kept by the pool.
        max_overflow: temporary connections allowed beyond ``max_size``; -1 = unbounded.
        increment: connections opened together when the pool grows.
        lazy: open nothing until the first acquire (SQLAlchemy) instead of filling
            ``min_size`` at creation (cx_Oracle).
        when_exhausted: what an acquire does when no connection is free and the cap is
            reached: ``"wait"`` (up to ``wait_timeout``), ``"fail"`` (raise
            `PoolExhausted` at once) or ``"force"`` (open one beyond the cap; it is closed
            when released).
        wait_timeout: seconds an acquire may wait; ``None`` waits forever.
        idle_order: ``"lifo"`` reuses the most recently returned connection (fewer
            connections stay warm), ``"fifo"`` rotates through all of them.
        reset_on_return: what a used connection gets when it comes back: ``"rollback"``
            (end the transaction; the default), ``"commit"``, ``"full"`` (clear every kind of
            session state: see the README's per-driver table), ``None``, or a callable run on
            the driver connection. A reset that raises or overruns ``reset_timeout`` drops
            the connection.
        reset_timeout: most seconds a reset on return may take.
        ping_interval: validation on checkout, as cx_Oracle defines it: a connection idle
            longer than this many seconds is checked (the driver's cheapest correct check)
            before it is handed out; 0 checks every time, a negative value never. A dead
            one is dropped and another tried, within the caller's deadline. Whatever this
            says, once a disconnect has been seen every connection last used before it is
            checked before its next hand-out.
        ping_timeout: most seconds a liveness check may take.
        max_lifetime: seconds after which a connection is retired (SQLAlchemy's
            ``recycle``, cx_Oracle's ``max_lifetime_session``), less a random 0-2.5% so
            that connections opened together do not all expire together. A borrowed one is
            never closed for age: it is retired when it comes back. None: no limit.
        max_uses: borrows after which a connection is retired when it comes back. None: no
            limit.
        max_idle: seconds a connection may stay idle before the maintenance worker closes
            it (cx_Oracle's ``timeout``), never shrinking the pool below ``min_size``. None:
            idle connections are kept.
        keepalive_interval: the maintenance worker checks a connection that has been idle
            this many seconds (and again every as many seconds), so that a server or
            firewall that kills idle sessions is noticed by the pool, not by a borrower. A
            dead one is replaced. None: no keepalive checks.
        connect_timeout: most seconds opening one connection may take: the driver's own
            connect timeout, where it has one, and in an `AsyncPool` a time limit around the
            connect too. Connects never run on a borrower's path, so an acquire keeps its
            deadline whatever this is.
        leak_threshold: a connection borrowed for longer than this many seconds is
            reported once, in a warning with the stack where it was acquired (recording
            that stack costs a few microseconds per acquire, so this is off by default).
            None: no reports.
        on_connect: called once with each new driver connection before first use.
        session_callback: called as ``(connection, requested_tag, actual_tag)`` when the
            session handed out carries another tag than the one asked for.
        homogeneous: when False, ``acquire(user=..., password=...)`` may ask for a
            connection opened for another user.
        max_size_bounds: what ``max_size`` bounds when a connection comes back with nobody
            waiting: ``"open"`` (the default, cx_Oracle's way) closes it while more than
            ``max_size`` are open; ``"idle"`` (SQLAlchemy QueuePool's way, whose pool_size is
            the size of its idle queue) keeps it unless ``max_size`` are idle already.
        max_per_partition: most connections open at once for one partition (see
            ``acquire(partition=...)``; cx_Oracle's ``max_sessions_per_shard``) and user. The
            connections acquired without a partition count as one partition. None: only the
            pool's own limits.
        server_pooler: the pool mode of a server-side pooler (PgBouncer) the connections go
            through: ``"transaction"`` (each transaction may run on another server session:
            the pool keeps no session state across transactions, turns off the drivers'
            server-side prepared statements, and refuses what needs a lasting session; see
            docs/server_pooler.md) or ``"session"`` (a server session per connection: like a
            direct connection). None: connected directly (a pooler found in front is
            reported once, in a warning).
        name: a label for logs, errors and metrics; never derived from credentials.
            `create_pool` names a URL's pool ``host:port/database`` (OpenTelemetry's
            default pool name), with ``#2``, ``#3``... for a second and third such pool.
        echo: log what the pool does, as SQLAlchemy's ``echo_pool``: True logs connects,
            closes and timeouts at INFO, ``"debug"`` also every checkout, checkin and reset,
            under the logger ``sessionpool.pool.<name>`` (``sessionpool.pool`` for a
            creator's pool given no name; a stderr handler is added when logging is not
            configured). Off, it costs nothing.
        detailed_stats: also record how long each borrower holds its connection (the
            ``use_time`` histogram) and the exact peak of borrowed connections, on every
            return. Off by default: it adds about half a microsecond to each return (the
            uncontended cycle is about one). Exporters and "checkin" listeners turn it on.
    """

    min_size: int = 1
    max_size: int = 10
    max_overflow: int = 0
    increment: int = 1
    lazy: bool = False
    when_exhausted: WhenExhausted = "wait"
    wait_timeout: float | None = 30.0
    idle_order: IdleOrder = "lifo"
    reset_on_return: ResetOnReturn = "rollback"
    reset_timeout: float = 5.0
    ping_interval: float = 60.0
    ping_timeout: float = 5.0
    max_lifetime: float | None = None
    max_uses: int | None = None
    max_idle: float | None = None
    keepalive_interval: float | None = None
    connect_timeout: float = 10.0
    leak_threshold: float | None = None
    on_connect: Callable[[Any], object] | None = None
    session_callback: SessionCallback | None = None
    homogeneous: bool = True
    max_size_bounds: Literal["open", "idle"] = "open"
    max_per_partition: int | None = None
    server_pooler: ServerPooler | None = None
    name: str | None = None
    echo: bool | Literal["debug"] = False
    detailed_stats: bool = False

    def __post_init__(self) -> None:
        _check_int("min_size", self.min_size, lowest=0)
        _check_int("max_size", self.max_size, lowest=1)
        _check_int("max_overflow", self.max_overflow, lowest=-1)
        _check_int("increment", self.increment, lowest=1)
        if self.min_size > self.max_size:
            raise ConfigError(
                f"min_size must not exceed max_size (got min_size={self.min_size}, "
                f"max_size={self.max_size}); lower min_size or raise max_size"
            )
        _check_bool("lazy", self.lazy)
        _check_bool("homogeneous", self.homogeneous)
        check_when_exhausted(self.when_exhausted)
        _check_choice("max_size_bounds", self.max_size_bounds, ("open", "idle"))
        _check_choice("idle_order", self.idle_order, _IDLE_ORDERS)
        check_timeout("wait_timeout", self.wait_timeout)
        _check_limit("reset_timeout", self.reset_timeout)
        _check_limit("ping_timeout", self.ping_timeout)
        if isinstance(self.ping_interval, bool) or not isinstance(self.ping_interval, (int, float)):
            raise ConfigError(
                f"ping_interval must be a number of seconds (negative: never), "
                f"not {type(self.ping_interval).__name__} {self.ping_interval!r}"
            )
        if math.isnan(self.ping_interval):
            raise ConfigError("ping_interval must be a number of seconds, not nan")
        if self.max_lifetime is not None:
            _check_limit("max_lifetime", self.max_lifetime)
        if self.max_uses is not None:
            _check_int("max_uses", self.max_uses, lowest=1)
        if self.max_per_partition is not None:
            _check_int("max_per_partition", self.max_per_partition, lowest=1)
        for name in ("max_idle", "keepalive_interval", "leak_threshold"):
            if getattr(self, name) is not None:
                _check_limit(name, getattr(self, name))
        _check_limit("connect_timeout", self.connect_timeout)
        reset = self.reset_on_return
        if reset is not None and not callable(reset):
            _check_choice("reset_on_return", reset, _RESET_NAMES, extra="None or a callable")
        _check_callable("on_connect", self.on_connect)
        _check_callable("session_callback", self.session_callback)
        _check_server_pooler(self)
        if self.name is not None and not isinstance(self.name, str):
            raise ConfigError(f"name must be a string or None, not {type(self.name).__name__}")
        if self.echo not in (True, False, "debug"):
            raise ConfigError(f"echo must be True, False or 'debug' (got {self.echo!r})")
        _check_bool("detailed_stats", self.detailed_stats)

    @property
    def hard_cap(self) -> int | None:
        """Most connections open at once outside ``when_exhausted="force"``; None = no cap."""
        if self.max_overflow < 0:
            return None
        return self.max_size + self.max_overflow

    @classmethod
    def parameter_names(cls) -> frozenset[str]:
        """Names accepted as keyword arguments and as URL query settings."""
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def settings_from_text(cls, values: Mapping[str, str]) -> dict[str, Any]:
        """Pool settings written as text (a URL query), converted to their types.

        ``none``/``null`` stand for None where a setting takes it. Callables cannot be given
        as text. Raises `ConfigError` naming the setting that does not convert.
        """
        settings: dict[str, Any] = {}
        for name, text in values.items():
            kind = _TEXT_KINDS.get(name)
            if kind is None:
                raise ConfigError(f"{name} cannot be given in a URL; pass it as a keyword")
            lowered = text.strip().lower()
            if name in _NONE_ALLOWED and lowered in ("none", "null"):
                settings[name] = None
            elif name == "echo":  # true/false, or "debug"
                settings[name] = _BOOL_WORDS.get(lowered, lowered)
            elif kind is bool:
                if lowered not in _BOOL_WORDS:
                    raise ConfigError(f"{name} must be true or false (got {text!r})")
                settings[name] = _BOOL_WORDS[lowered]
            else:
                try:
                    settings[name] = kind(text)
                except ValueError:
                    raise ConfigError(f"{name} must be a {kind.__name__} (got {text!r})") from None
        return settings


def _check_server_pooler(config: PoolConfig) -> None:
    """``server_pooler`` is a pool mode sessionpool can work under, and the settings that
    need a lasting server session are not asked of a transaction-mode pooler."""
    mode: object = config.server_pooler
    if mode is None:
        return
    if mode == "statement":
        raise ConfigError(
            "server_pooler='statement' is not supported: a statement-mode pooler runs every "
            "statement on any server session, so no transaction can span two statements and "
            "the pool's rollback on return means nothing; run the pooler in transaction mode "
            "and use server_pooler='transaction'"
        )
    _check_choice("server_pooler", mode, _SERVER_POOLERS, extra="None")
    if mode != "transaction":
        return
    if config.reset_on_return == "full":
        raise ConfigError(
            "reset_on_return='full' cannot work with server_pooler='transaction': the pooler "
            "hands each transaction whichever server session is free, so there is no session "
            "of this connection to clear; use reset_on_return='rollback' (the default)"
        )
    if config.session_callback is not None:
        raise ConfigError(
            "session_callback cannot work with server_pooler='transaction': the session state "
            "it sets for a tag does not outlive the transaction it was set in (the pooler "
            "hands the next one another server session); set it per transaction (SET LOCAL) "
            "instead"
        )


def _check_int(name: str, value: object, *, lowest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be an integer, not {type(value).__name__} {value!r}")
    if value < lowest:
        raise ConfigError(f"{name} must be >= {lowest} (got {value})")


_TEXT_KINDS: dict[str, type] = {
    "min_size": int,
    "max_size": int,
    "max_overflow": int,
    "increment": int,
    "lazy": bool,
    "homogeneous": bool,
    "when_exhausted": str,
    "idle_order": str,
    "max_size_bounds": str,
    "wait_timeout": float,
    "reset_timeout": float,
    "ping_timeout": float,
    "ping_interval": float,
    "max_lifetime": float,
    "max_uses": int,
    "max_per_partition": int,
    "max_idle": float,
    "keepalive_interval": float,
    "connect_timeout": float,
    "leak_threshold": float,
    "reset_on_return": str,
    "server_pooler": str,
    "name": str,
    "echo": str,
    "detailed_stats": bool,
}
_NONE_ALLOWED = frozenset(
    {
        "wait_timeout",
        "reset_on_return",
        "name",
        "max_lifetime",
        "max_uses",
        "max_per_partition",
        "max_idle",
        "keepalive_interval",
        "leak_threshold",
        "server_pooler",
    }
)
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True}
_BOOL_WORDS.update({"0": False, "false": False, "no": False, "off": False})


def _check_limit(name: str, value: object) -> None:
    check_timeout(name, value)
    if value is None or value == 0:
        raise ConfigError(f"{name} must be a number of seconds > 0 (got {value!r})")


def _check_bool(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, not {type(value).__name__} {value!r}")


def _check_choice(name: str, value: object, choices: tuple[str, ...], extra: str = "") -> None:
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices) + (f" or {extra}" if extra else "")
        raise ConfigError(f"{name} must be one of {allowed} (got {value!r})")


def _check_callable(name: str, value: object) -> None:
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be callable or None, not {type(value).__name__}")


def check_when_exhausted(value: object) -> None:
    """Raise ConfigError unless value is one of the ``when_exhausted`` modes."""
    _check_choice("when_exhausted", value, _WHEN_EXHAUSTED)


def check_timeout(name: str, value: object) -> None:
    """Raise ConfigError unless value is None or a finite number of seconds >= 0."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(
            f"{name} must be a number of seconds or None, not {type(value).__name__} {value!r}"
        )
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number of seconds >= 0 (got {value!r})")
