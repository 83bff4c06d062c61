"""Tuning advice: a pool's statistics, settings and server limits turned into sentences with
numbers and the settings to change.

Pure: reads a `PoolStats`, a `PoolConfig` and optionally `ServerFacts`; no I/O, clock or
logging. Sizing comes from Little's law on measured figures (L = lambda * W: connections busy
on average = acquires per second * seconds each is held), never from rules of thumb about
cores or spindles. Each rule returns at most one `Advice`; `advise` runs them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ..config import PoolConfig
from ..errors import ConfigError
from .stats import PoolStats

__all__ = [
    "MIN_ACQUIRES",
    "MIN_ELAPSED",
    "OVERSIZED_ACQUIRES",
    "OVERSIZED_ELAPSED",
    "TARGET_UTILISATION",
    "Advice",
    "Load",
    "ServerFacts",
    "advise",
    "format_duration",
    "measure_load",
]

#: Share of the pool that may be busy on average: above it, arrivals that come together
#: queue often (queueing delay grows as 1 / (1 - utilisation)), so sizes aim below it.
TARGET_UTILISATION = 0.8
#: Evidence needed before the pool's size is judged at all: an average over a few acquires
#: or a few seconds says nothing about the next minute.
MIN_ELAPSED = 60.0
MIN_ACQUIRES = 100
#: Evidence needed before calling a pool too large: the quiet part of a traffic cycle must
#: not make it shrink below what its busy part needs.
OVERSIZED_ELAPSED = 600.0
OVERSIZED_ACQUIRES = 1000
#: A 95th percentile wait at or above this is a queue a caller feels.
NOTICEABLE_WAIT = 0.01
#: A connect this slow (95th percentile) is worth keeping connections open for.
SLOW_CONNECT = 0.05
#: Reasons (`PoolStats.closed_by_reason` keys) for closing a connection found dead.
DEAD_REASONS = {
    "failed its keepalive check": "failed keepalive checks",
    "the check before hand-out failed": "failed the check before hand-out",
    "reset on return failed": "failed the reset on return",
}

Severity = Literal["info", "warning"]


@dataclass(frozen=True, slots=True)
class Advice:
    """One finding: what it is about (``kind``: "saturated", "near_capacity", "oversized",
    "dying_young", "idle_limit", "slow_connects", "connect_errors", "timeouts", "leaks",
    "server_limit", "idle_in_transaction", "not_enough_data", "ok"), how much it matters,
    the finding in a sentence with its numbers, and the settings it suggests (empty when
    there is nothing to set)."""

    kind: str
    severity: Severity
    sentence: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    def __str__(self) -> str:
        return self.sentence

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "sentence": self.sentence,
            "settings": dict(self.settings),
        }


@dataclass(frozen=True, slots=True)
class ServerFacts:
    """What the server says about its limits (read by ``sessionpool check``), and what was
    measured from here. Durations in seconds; None when unknown or the limit is off.

    Attributes:
        product: "PostgreSQL", "MariaDB", "MySQL", "SQLite"...
        version: as the server reports it.
        max_connections: connections the server accepts in all.
        reserved_connections: of those, kept for superusers (PostgreSQL).
        connections: client connections open now, from every client.
        idle_session_timeout: the server closes a session idle this long (PostgreSQL
            ``idle_session_timeout``, MySQL/MariaDB ``wait_timeout``).
        idle_in_transaction_timeout: the server closes a session idle this long inside a
            transaction (PostgreSQL ``idle_in_transaction_session_timeout``).
        tcp_keepalives_idle: seconds of silence before the server's TCP keepalives start.
        statement_timeout: the server cancels a statement running this long.
        connect_time: the median time to open a connection, measured.
        round_trip: the median time of one ``SELECT 1``, measured.
    """

    product: str
    version: str = ""
    max_connections: int | None = None
    reserved_connections: int = 0
    connections: int | None = None
    idle_session_timeout: float | None = None
    idle_in_transaction_timeout: float | None = None
    tcp_keepalives_idle: float | None = None
    statement_timeout: float | None = None
    connect_time: float | None = None
    round_trip: float | None = None

    @property
    def usable_connections(self) -> int | None:
        """Connections an ordinary client may open (max_connections less the reserved)."""
        if self.max_connections is None:
            return None
        return max(0, self.max_connections - self.reserved_connections)


@dataclass(frozen=True, slots=True)
class Load:
    """The pool's load by Little's law: ``busy`` (L) = ``arrival_rate`` (lambda, acquires
    per second) * ``hold_time`` (W, seconds a borrower keeps a connection)."""

    arrival_rate: float
    hold_time: float
    busy: float
    hold_measured: bool  # W from use_time (detailed statistics), not derived from busy_mean

    @property
    def needed(self) -> int:
        """Connections that keep utilisation at `TARGET_UTILISATION` (at least 1)."""
        return max(1, math.ceil(self.busy / TARGET_UTILISATION - 1e-9))

    def describe(self) -> str:
        how = "measured" if self.hold_measured else "from the mean busy count"
        return (
            f"lambda = {self.arrival_rate:.3g} acquires/s x W = {format_duration(self.hold_time)} "
            f"held ({how}) = L = {self.busy:.2f} connections busy on average"
        )


def measure_load(stats: PoolStats) -> Load | None:
    """The load over ``stats.elapsed``; None before any acquire."""
    rate = stats.arrival_rate
    if rate <= 0:
        return None
    if stats.use_time_recorded and stats.use_time.count:
        hold = stats.use_time.mean
        return Load(rate, hold, rate * hold, hold_measured=True)
    # Without measured hold times, the time-weighted mean of borrowed connections is L
    # itself, and W follows from it.
    return Load(rate, stats.busy_mean / rate, stats.busy_mean, hold_measured=False)


def advise(
    stats: PoolStats | None,
    config: PoolConfig,
    server: ServerFacts | None = None,
    *,
    processes: int = 1,
) -> list[Advice]:
    """Advice for a pool with these statistics, settings and server: warnings first.

    Args:
        stats: the pool's figures (``pool.stats()``, or an interval from
            ``stats(reset=True)``); None judges only the settings against the server.
        config: the pool's settings.
        server: the server's limits (see `ServerFacts`), when known.
        processes: how many processes run a pool with these settings against the server
            (worker processes of a web server...): their connections add up.
    Raises:
        ConfigError: ``processes`` is not a whole number >= 1.
    """
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError(f"processes must be a whole number >= 1 (got {processes!r})")
    context = _Context(stats, config, server, processes)
    found = [advice for rule in _RULES if (advice := rule(context)) is not None]
    if not found:
        found.append(_all_clear(context))
    elif (
        stats is not None
        and not context.enough_data
        and not any(advice.kind in _SIZING_KINDS for advice in found)
    ):
        # Other findings stand on their own evidence (a timeout, a leak), but the reader must
        # still learn why nothing is said about the size.
        found.append(_all_clear(context))
    # A stable sort keeps each severity's findings in the order of the rules.
    return sorted(found, key=lambda advice: advice.severity != "warning")


@dataclass(frozen=True, slots=True)
class _Context:
    stats: PoolStats | None
    config: PoolConfig
    server: ServerFacts | None
    processes: int

    @property
    def load(self) -> Load | None:
        return None if self.stats is None else measure_load(self.stats)

    @property
    def enough_data(self) -> bool:
        stats = self.stats
        return stats is not None and stats.elapsed >= MIN_ELAPSED and stats.acquires >= MIN_ACQUIRES

    @property
    def cap(self) -> int | None:
        return self.config.hard_cap

    def stats_peak(self) -> int:
        return 0 if self.stats is None else self.stats.busy_peak

    def keep_open(self) -> tuple[int, str]:
        """How many connections to keep open (min_size) for the load seen, and why: the
        busy peak, or Little's law's need at the target utilisation if that is more."""
        peak = self.stats_peak()
        load = self.load
        needed = min(load.needed, self.config.max_size) if load is not None else 0
        if needed > peak:
            return needed, f"L / {TARGET_UTILISATION:g} rounded up"
        return max(1, min(peak, self.config.max_size)), "the busy peak"

    def at_cap(self) -> bool:
        return self.stats is not None and self.cap is not None and self.stats.busy_peak >= self.cap

    def cap_setting(self, connections: int) -> dict[str, int]:
        """The setting that lets the pool hold ``connections`` at once: max_overflow when
        the pool uses one, else max_size."""
        if self.config.max_overflow > 0:
            return {"max_overflow": max(0, connections - self.config.max_size)}
        return {"max_size": connections}


# -- the rules: each looks at one question and answers at most once ---------------------------


def _saturated(context: _Context) -> Advice | None:
    """Callers queue because every connection is busy."""
    stats, cap = context.stats, context.cap
    if stats is None or cap is None or not context.at_cap():
        return None
    p99 = stats.wait_time.quantile(0.99)
    refused = stats.timeouts + stats.exhausted
    if not refused and not (stats.waits and p99 >= NOTICEABLE_WAIT):
        return None
    # Acquires served at once count as 0 s: the sum is that of the callers who waited.
    waited = stats.wait_time.sum / stats.waits if stats.waits else 0.0
    parts = [
        f"The pool is saturated: busy reached its cap of {cap}, {stats.waits} of "
        f"{stats.acquires} acquires waited ({format_duration(waited)} on average, p99 of all "
        f"acquires {format_duration(p99)})"
    ]
    if stats.timeouts:
        parts.append(
            f", {stats.timeouts} timed out after wait_timeout={context.config.wait_timeout} s"
        )
    if stats.exhausted:
        parts.append(f", {stats.exhausted} were refused at once (when_exhausted='fail')")
    parts.append(". ")
    load = context.load
    wanted = cap + 1
    if load is not None:
        parts.append(f"Little's law: {load.describe()}; ")
        if load.needed > cap:
            wanted = load.needed
            parts.append(
                f"at {TARGET_UTILISATION:.0%} utilisation that needs {load.needed} connections, "
                f"more than {cap}. "
            )
        else:
            # The full pool frees a connection every W / cap seconds, so a caller that waited
            # had about waited * cap / W callers ahead of it: as many more connections would
            # have served that queue at once (Little's law on the queue).
            queue = max(1, math.ceil(waited * cap / load.hold_time - 1e-9))
            wanted = cap + queue
            parts.append(
                f"the mean fits in {cap}, so demand comes in bursts: a caller that waited had "
                f"about {queue} callers queued ahead of it. "
            )
    parts.append(f"Allow {wanted} connections")
    usable = context.server.usable_connections if context.server else None
    if usable is not None and wanted * context.processes > usable:
        parts.append(
            f" if the server can take them ({wanted} x {context.processes} process(es) > "
            f"{usable} usable connections); otherwise shorten how long borrowers hold them"
        )
    parts.append(".")
    return Advice("saturated", "warning", "".join(parts), context.cap_setting(wanted))


def _near_capacity(context: _Context) -> Advice | None:
    """Busy on average close to the cap, though nobody queued (yet)."""
    load, cap = context.load, context.cap
    if load is None or cap is None or not context.enough_data or _saturated(context) is not None:
        return None
    if load.busy < TARGET_UTILISATION * cap:
        return None
    return Advice(
        "near_capacity",
        "warning",
        f"The pool runs at {load.busy / cap:.0%} of its cap of {cap} on average "
        f"({load.describe()}); above {TARGET_UTILISATION:.0%} callers start to queue in bursts. "
        f"Allow {load.needed} connections.",
        context.cap_setting(load.needed),
    )


def _timeouts(context: _Context) -> Advice | None:
    """Acquires gave up though the pool never filled: connections could not be opened."""
    stats = context.stats
    if stats is None or not stats.timeouts or context.at_cap():
        return None
    connect_p99 = stats.connect_time.quantile(0.99)
    sentence = (
        f"{stats.timeouts} acquires timed out after wait_timeout={context.config.wait_timeout} s "
        f"though busy peaked at {stats.busy_peak}, below the cap of {context.cap}: the pool "
        f"could not open connections in time ({stats.connect_errors} connects failed, "
        f"connect p99 {format_duration(connect_p99)})."
    )
    settings: dict[str, Any] = {}
    wait_timeout = context.config.wait_timeout
    if wait_timeout is not None and connect_p99 >= wait_timeout:
        settings["wait_timeout"] = _round_up(2 * connect_p99)
        sentence += " A wait shorter than a connect cannot succeed on an empty pool."
    keep, why = context.keep_open()
    if context.config.min_size < keep:
        settings["min_size"] = keep
        sentence += f" Keep {keep} open ahead of demand (min_size={keep}, {why})."
    return Advice("timeouts", "warning", sentence, settings)


def _connect_errors(context: _Context) -> Advice | None:
    stats = context.stats
    if stats is None or not stats.connect_errors:
        return None
    attempts = stats.connect_errors + stats.connections_opened
    return Advice(
        "connect_errors",
        "warning",
        f"{stats.connect_errors} of {attempts} connects failed; the pool's log (logger "
        f"sessionpool.pool.<name>) has each error. Check the server's reachability and "
        f"max_connections.",
    )


def _slow_connects(context: _Context) -> Advice | None:
    """Opening connections costs callers time: keep them open instead."""
    stats, config, server = context.stats, context.config, context.server
    if stats is not None and stats.connect_time.count:
        connect_p95 = stats.connect_time.quantile(0.95)
        if connect_p95 < SLOW_CONNECT:
            return None
        # Acquires served at once count as 0 s, so the sum over those that waited is theirs.
        waited_mean = stats.wait_time.sum / stats.waits if stats.waits else 0.0
        reopened = stats.retired_idle + stats.retired_expired
        sentence = (
            f"Connects are slow: p95 {format_duration(connect_p95)} over "
            f"{stats.connect_time.count} connects"
        )
        if reopened:
            sentence += (
                f" ({reopened} connections were retired by max_idle or max_lifetime and reopened)"
            )
        sentence += "."
        # Callers wait on connects when the pool grows under them: their waits are then
        # of the order of a connect.
        felt = waited_mean >= connect_p95 / 2
        if felt:
            sentence += (
                f" Callers felt them: the {stats.waits} acquires that waited took "
                f"{format_duration(waited_mean)} on average."
            )
        settings: dict[str, Any] = {}
        keep, why = context.keep_open()
        if keep > config.min_size:
            settings["min_size"] = keep
            sentence += f" Keep {keep} open (min_size={keep}, {why})."
        if stats.retired_idle and config.max_idle is not None:
            settings["max_idle"] = _round_up(config.max_idle * 4)
            sentence += " Close idle connections later (a longer max_idle)."
        if stats.retired_expired and config.max_lifetime is not None:
            settings["max_lifetime"] = _round_up(config.max_lifetime * 4)
            sentence += " Retire connections less often (a longer max_lifetime)."
        if not settings and not felt:
            return None
        return Advice("slow_connects", "warning" if felt else "info", sentence, settings)
    if server is not None and server.connect_time is not None:
        slow = server.connect_time >= SLOW_CONNECT
        if server.round_trip and server.round_trip > 0:
            trips = server.connect_time / server.round_trip
            # Many round trips' worth, and enough to matter: an in-process database's
            # 50-microsecond open is not worth keeping connections for.
            slow = slow or (trips >= 20 and server.connect_time >= 1e-3)
            cost = f"{format_duration(server.connect_time)}, {trips:.0f} times a SELECT 1"
        else:
            cost = format_duration(server.connect_time)
        if not slow:
            return None
        sentence = (
            f"Opening a connection costs {cost}: keep min_size at the number of connections "
            f"busy in normal traffic so requests do not pay it"
        )
        if config.max_idle is not None:
            sentence += f", and keep max_idle ({config.max_idle} s) long"
        return Advice("slow_connects", "info", sentence + ".")
    return None


def _dying_young(context: _Context) -> Advice | None:
    """Connections found dead: something closes them while they sit idle."""
    stats, server, config = context.stats, context.server, context.config
    if stats is None:
        return None
    died = {
        label: stats.closed_by_reason.get(reason, 0)
        for reason, label in DEAD_REASONS.items()
        if stats.closed_by_reason.get(reason, 0)
    }
    if not died and not stats.disconnects:
        return None
    counted = ", ".join(f"{count} {label}" for label, count in died.items())
    sentence = (
        f"Connections are dying young: {sum(died.values())} were found dead"
        f"{' (' + counted + ')' if counted else ''}, {stats.disconnects} disconnects seen. "
    )
    limit = server.idle_session_timeout if server is not None else None
    if limit is not None:
        assert server is not None
        settings = _idle_settings(limit, config)
        sentence += (
            f"The {server.product} server closes sessions idle for {format_duration(limit)} "
            f"({_idle_limit_name(server)}); {_idle_remedy(settings)}."
        )
        return Advice("dying_young", "warning", sentence, settings)
    if server is not None:
        keepalives = (
            f"; its TCP keepalives start after {format_duration(server.tcp_keepalives_idle)}"
            if server.tcp_keepalives_idle
            else ""
        )
        sentence += (
            f"The server has no idle timeout{keepalives}, so something in between (a proxy, "
            f"a firewall, NAT) closes quiet connections: set keepalive_interval below its "
            f"idle limit."
        )
    else:
        sentence += (
            "A server idle timeout, proxy or firewall closes quiet connections: run "
            "'sessionpool check URL' to read the server's limits, and set keepalive_interval "
            "and max_idle below the shortest idle limit on the way."
        )
    return Advice("dying_young", "warning", sentence)


def _idle_limit(context: _Context) -> Advice | None:
    """The server closes idle sessions sooner than this pool lets them idle."""
    server, config = context.server, context.config
    if server is None or server.idle_session_timeout is None:
        return None
    if _dying_young(context) is not None:
        return None  # that finding already says it, with the deaths it caused
    settings = _idle_settings(server.idle_session_timeout, config)
    if not settings:
        return None
    sentence = (
        f"The {server.product} server closes sessions idle for "
        f"{format_duration(server.idle_session_timeout)} ({_idle_limit_name(server)}) but this "
        f"pool lets connections idle longer; {_idle_remedy(settings)}."
    )
    if config.ping_interval >= 0:
        # The check before hand-out finds the dead ones, so borrowers are safe: what is lost
        # is a check and a connect on some acquires.
        severity: Severity = "info"
        sentence += " Until then the check before hand-out replaces the ones it closed."
    else:
        severity = "warning"
        sentence += " With ping_interval < 0, borrowers would get the dead ones."
    return Advice("idle_limit", severity, sentence, settings)


def _idle_in_transaction(context: _Context) -> Advice | None:
    """Borrowers hold connections nearly as long as the server lets a transaction idle."""
    stats, server = context.stats, context.server
    if stats is None or server is None or server.idle_in_transaction_timeout is None:
        return None
    if not stats.use_time_recorded or not stats.use_time.count:
        return None
    limit = server.idle_in_transaction_timeout
    longest = stats.use_time.quantile(0.99)
    if longest < limit / 2:
        return None
    settings: dict[str, Any] = {}
    if context.config.leak_threshold is None or context.config.leak_threshold >= limit:
        settings["leak_threshold"] = _round_down(limit / 2)
    return Advice(
        "idle_in_transaction",
        "warning",
        f"Borrowers hold connections up to {format_duration(longest)} (p99) and the server ends a "
        f"session left idle in a transaction after {format_duration(limit)} "
        f"(idle_in_transaction_session_timeout): a borrower that pauses inside a "
        f"transaction loses its connection. Commit before slow work; leak_threshold reports "
        f"who holds connections that long.",
        settings,
    )


def _leaks(context: _Context) -> Advice | None:
    stats, config = context.stats, context.config
    if stats is None or not (stats.leaks_reported or stats.reclaimed):
        return None
    parts = []
    if stats.leaks_reported:
        parts.append(
            f"{stats.leaks_reported} connections were held longer than leak_threshold="
            f"{config.leak_threshold} s; the warnings logged under sessionpool.pool.<name> "
            f"give the stack where each was acquired"
        )
    if stats.reclaimed:
        parts.append(
            f"{stats.reclaimed} were garbage-collected without being released (use "
            f"'with pool.acquire() as conn:' so every path gives them back)"
        )
    settings: dict[str, Any] = {}
    if config.leak_threshold is None:
        # Report holds well beyond the usual ones; a minute when hold times are not measured.
        p99 = stats.use_time.quantile(0.99) if stats.use_time_recorded else 0.0
        settings["leak_threshold"] = _round_up(max(1.0, 10 * p99)) if p99 else 60.0
        parts.append(
            f"set leak_threshold={settings['leak_threshold']:g} to log where they were acquired"
        )
    sentence = "Leaks: " + "; ".join(parts) + "."
    return Advice("leaks", "warning", sentence, settings)


def _server_limit(context: _Context) -> Advice | None:
    """This pool's connections, in every process, against what the server accepts."""
    server, config, processes = context.server, context.config, context.processes
    usable = server.usable_connections if server is not None else None
    if server is None or usable is None:
        return None
    limit_text = (
        f"the server's {usable} usable connections (max_connections {server.max_connections}"
    )
    limit_text += (
        f" less {server.reserved_connections} reserved)" if server.reserved_connections else ")"
    )
    per_process = f" x {processes} processes" if processes > 1 else ""
    # Leave a fifth of the server's connections for everything else (other applications,
    # administrators, migrations, monitoring).
    fair = max(1, math.floor(usable * TARGET_UTILISATION / processes))
    cap = context.cap
    if config.server_pooler == "transaction":
        # Behind a transaction pooler the pool's connections end at the pooler: the server's
        # limit bounds the pooler's server pools, which this pool cannot see.
        clients = "any number of" if cap is None else f"{cap}{per_process} = {cap * processes}"
        return Advice(
            "server_limit",
            "info",
            f"Behind a transaction-mode pooler this pool's {clients} connections are client "
            f"connections to the pooler (its max_client_conn must allow them); {limit_text} "
            f"bound the pooler's server side instead: default_pool_size x (database, user) "
            f"pairs x poolers, with room left for other clients (about {fair * processes}).",
        )
    if cap is None:
        return Advice(
            "server_limit",
            "warning",
            f"max_overflow=-1 lets this pool open any number of connections, but "
            f"{limit_text} bound them; cap it.",
            {"max_overflow": max(0, fair - config.max_size)},
        )
    budget = cap * processes
    if budget > usable:
        return Advice(
            "server_limit",
            "warning",
            f"This pool may open {cap}{per_process} = {budget} connections, more than "
            f"{limit_text}. Lower it to {fair} per process or raise max_connections.",
            context.cap_setting(fair),
        )
    if server.connections is not None and server.connections + budget > usable:
        return Advice(
            "server_limit",
            "warning",
            f"The server has {server.connections} connections open now; with this pool's "
            f"{budget} more it would exceed {limit_text}.",
        )
    if budget > TARGET_UTILISATION * usable:
        return Advice(
            "server_limit",
            "info",
            f"This pool may open {cap}{per_process} = {budget} connections, "
            f"{budget / usable:.0%} of {limit_text}: little is left for other clients.",
        )
    return None


def _oversized(context: _Context) -> Advice | None:
    """Far more connections open than were ever busy, over a long enough time."""
    stats, config = context.stats, context.config
    if stats is None or stats.waits or stats.timeouts:
        return None
    peak = stats.busy_peak
    if stats.opened < peak + max(2, peak):  # "far above": at least twice the peak, plus two
        return None
    if stats.elapsed < OVERSIZED_ELAPSED or stats.acquires < OVERSIZED_ACQUIRES:
        return Advice(
            "not_enough_data",
            "info",
            f"{stats.opened} connections are open and at most {peak} were busy, but "
            f"{stats.acquires} acquires over {format_duration(stats.elapsed)} are too few to call "
            f"the pool oversized: ask again after at least {OVERSIZED_ACQUIRES} acquires and "
            f"{format_duration(OVERSIZED_ELAPSED)}.",
        )
    load = context.load
    keep, why = context.keep_open()
    sentence = (
        f"The pool is oversized: {stats.opened} connections are open but at most {peak} were "
        f"busy over {format_duration(stats.elapsed)}"
    )
    if load is not None:
        sentence += f" ({load.describe()})"
    if not stats.use_time_recorded:
        sentence += (
            " (the peak is sampled about once a second; detailed_stats=True records it exactly)"
        )
    settings: dict[str, Any] = {}
    if config.min_size > keep:
        settings["min_size"] = keep
        sentence += f". Keep {keep} open (min_size={keep}, {why})"
    if config.max_idle is None:
        settings["max_idle"] = 300.0
        sentence += ". Close connections idle for five minutes (max_idle=300)"
    sentence += "; each idle connection holds server memory."
    return Advice("oversized", "info", sentence, settings)


#: Findings that already judge the pool's size.
_SIZING_KINDS = frozenset({"saturated", "near_capacity", "oversized", "not_enough_data"})

_RULES: tuple[Callable[[_Context], Advice | None], ...] = (
    _saturated,
    _near_capacity,
    _timeouts,
    _connect_errors,
    _dying_young,
    _idle_limit,
    _idle_in_transaction,
    _leaks,
    _server_limit,
    _slow_connects,
    _oversized,
)


def _all_clear(context: _Context) -> Advice:
    """Nothing to change, or not enough seen to say."""
    stats, load = context.stats, context.load
    if stats is None:
        return Advice("ok", "info", "Nothing in the server's limits conflicts with these settings.")
    if not context.enough_data:
        return Advice(
            "not_enough_data",
            "info",
            f"{stats.acquires} acquires over {format_duration(stats.elapsed)} are too few to judge "
            f"the pool's size: ask again after at least {MIN_ACQUIRES} acquires and "
            f"{format_duration(MIN_ELAPSED)}.",
        )
    cap = context.cap
    sentence = "No change needed"
    if load is not None:
        sentence += f": {load.describe()}, so {load.needed} connections suffice"
        sentence += f" and the cap is {cap}" if cap is not None else " and the pool has no cap"
    p95 = stats.wait_time.quantile(0.95)
    sentence += f"; busy peaked at {stats.busy_peak}, p95 wait {format_duration(p95)}."
    return Advice("ok", "info", sentence)


# -- helpers ----------------------------------------------------------------------------------


def _idle_settings(limit: float, config: PoolConfig) -> dict[str, Any]:
    """Settings that keep connections from idling past the server's ``limit``: close the
    surplus before it does (max_idle) and, since max_idle never closes below min_size, ping
    the ones kept (a keepalive check is a command, which restarts the server's idle clock)."""
    settings: dict[str, Any] = {}
    if config.max_idle is None or config.max_idle >= limit:
        settings["max_idle"] = _round_down(limit * 0.8)
    if config.min_size > 0 and (
        config.keepalive_interval is None or config.keepalive_interval >= limit
    ):
        settings["keepalive_interval"] = _round_down(limit / 2)
    return settings


def _idle_remedy(settings: Mapping[str, Any]) -> str:
    if not settings:
        return "this pool's max_idle and keepalive_interval are already below it"
    said = " and ".join(f"{name}={value:g}" for name, value in settings.items())
    return f"set {said} so the pool closes or pings them first"


def _idle_limit_name(server: ServerFacts) -> str:
    return "idle_session_timeout" if server.product == "PostgreSQL" else "wait_timeout"


def format_duration(seconds: float | None) -> str:
    """Seconds as a person reads them: "310 us", "42 ms", "2.5 s", "5 min", "2 h"."""
    if seconds is None:
        return "?"
    if seconds == 0:
        return "0 s"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


def _round_up(seconds: float) -> float:
    """A setting a person would write: two significant figures, rounded up."""
    if seconds <= 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(seconds)) - 1)
    return round(math.ceil(seconds / scale - 1e-9) * scale, 6)


def _round_down(seconds: float) -> float:
    """Two significant figures, rounded down (for limits that must stay below another)."""
    if seconds <= 0:
        return 0.0
    scale = 10.0 ** (math.floor(math.log10(seconds)) - 1)
    return round(math.floor(seconds / scale + 1e-9) * scale, 6)
