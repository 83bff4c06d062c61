"""``sessionpool check URL``: open a connection, time connect, ping, a round trip and the reset,
read the server's limits, and advise on the URL's pool settings.

Holds at most two connections at once and closes them all before returning. Everything shown
(the URL, driver errors) has the password masked. Printing is `format_report`'s job; the CLI
only parses arguments and chooses text or JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import PoolConfig
from .drivers.async_registry import is_async_only
from .drivers.base import URLConnector
from .errors import Error, UsageError
from .factory import connector_for, split_settings
from .observe.advice import Advice, ServerFacts, advise, format_duration
from .url import URL, scrub_secrets

__all__ = ["CannotConnect", "CheckReport", "Timing", "format_report", "run_check"]

#: Async-only driver names a URL may carry: check uses the dialect's blocking driver instead
#: (the server answers the same).


class CannotConnect(Error):
    """The check could not open a connection; the message says where and why (no password)."""


@dataclass(frozen=True, slots=True)
class Timing:
    """Durations of one operation, in seconds."""

    samples: tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def max(self) -> float:
        return max(self.samples)

    def as_dict(self) -> dict[str, Any]:
        return {"min": self.min, "median": self.median, "max": self.max, "samples": self.samples}


@dataclass(frozen=True, slots=True)
class CheckReport:
    """What ``check`` found: where it connected (password masked), with which driver, the
    timings, the server's facts and settings as reported, and the advice for ``config``."""

    url: str
    driver: str
    config: PoolConfig
    processes: int
    timings: dict[str, Timing]
    server: ServerFacts
    settings: dict[str, str] = field(default_factory=dict)
    advice: list[Advice] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "driver": self.driver,
            "note": self.note,
            "pool_settings": {
                "min_size": self.config.min_size,
                "max_size": self.config.max_size,
                "max_overflow": self.config.max_overflow,
                "max_idle": self.config.max_idle,
                "keepalive_interval": self.config.keepalive_interval,
                "processes": self.processes,
            },
            "timings": {name: timing.as_dict() for name, timing in self.timings.items()},
            "server": dataclasses.asdict(self.server),
            "server_settings": dict(self.settings),
            "advice": [advice.as_dict() for advice in self.advice],
        }


def run_check(url: str | URL, samples: int = 5, processes: int = 1) -> CheckReport:
    """Connect to ``url`` and measure: ``samples`` connects, pings, ``SELECT 1`` round trips
    and resets (a rollback after a statement), then read the server's limits and advise on
    the pool settings in the URL's query (``?max_size=20``; the defaults otherwise).

    Args:
        url: a database URL, as `create_pool` takes (an async driver's URL is checked with
            the blocking driver of the same database).
        samples: how many times each operation is timed (1 to 1000).
        processes: how many processes will run a pool with these settings (for the
            max_connections comparison).
    Raises:
        ConfigError: the URL or a setting in it is invalid.
        DriverNotInstalled: the URL's driver is missing.
        CannotConnect: no connection could be opened, or it failed during the check.
        UsageError: ``samples`` is not a whole number from 1 to 1000.
    """
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= 1000:
        raise UsageError(f"samples must be a whole number from 1 to 1000 (got {samples!r})")
    parsed, config = split_settings(url)
    note = ""
    if is_async_only(parsed.dialect, parsed.driver):
        note = f"checked with the blocking driver for {parsed.dialect} instead of {parsed.driver}"
        parsed = dataclasses.replace(parsed, driver=None)
    connector = connector_for(parsed)
    connector.limit_connects(config.connect_timeout)
    shown = parsed.render()
    timings: dict[str, Timing] = {}
    with _Connections(connector, shown) as connections:
        connection = connections.open_timed(samples, timings)
        driver = connector.driver
        try:
            timings["ping"] = _timed(samples, lambda: driver.ping(connection, config.ping_timeout))
            # Statements of its own get the connect time limit, so a server that hangs
            # after accepting the connection ends the check instead of blocking it for ever
            # (ping and reset keep their own limits, as in the pool).
            with driver.time_limit(connection, config.connect_timeout):
                timings["select 1"] = _round_trips(connection, samples)
            timings["reset"] = _resets(connector, connection, samples, config.reset_timeout)
            with driver.time_limit(connection, config.connect_timeout):
                facts, server_settings = read_server_facts(driver.name, connection)
            driver.end_transaction(connection, config.reset_timeout)
        except Exception as exc:
            raise CannotConnect(_failure(shown, "the check failed", exc, parsed)) from None
    facts = dataclasses.replace(
        facts, connect_time=timings["connect"].median, round_trip=timings["select 1"].median
    )
    return CheckReport(
        url=shown,
        driver=_driver_label(connector),
        config=config,
        processes=processes,
        timings=timings,
        server=facts,
        settings=server_settings,
        advice=advise(None, config, facts, processes=processes),
        note=note,
    )


class _Connections:
    """The connections a check opens, all closed on exit whatever happens."""

    def __init__(self, connector: URLConnector, shown: str) -> None:
        self._connector = connector
        self._shown = shown
        self._open: list[Any] = []

    def __enter__(self) -> _Connections:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for connection in self._open:
            # Closing is best effort: the report (or the error being raised) is what matters.
            with contextlib.suppress(Exception):
                self._connector.close(connection)

    def open_timed(self, samples: int, timings: dict[str, Timing]) -> Any:
        """Open ``samples`` connections one after the other, timing each; keep the last."""
        durations = []
        for _ in range(samples):
            started = time.perf_counter()
            try:
                connection = self._connector.connect()
            except Exception as exc:
                raise CannotConnect(
                    _failure(self._shown, "cannot connect", exc, self._connector.url)
                ) from None
            durations.append(time.perf_counter() - started)
            if self._open:
                self._connector.close(self._open.pop())
            self._open.append(connection)
        timings["connect"] = Timing(tuple(durations))
        return self._open[-1]


def _timed(samples: int, operation: Callable[[], object]) -> Timing:
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        operation()
        durations.append(time.perf_counter() - started)
    return Timing(tuple(durations))


def _round_trips(connection: Any, samples: int) -> Timing:
    """``SELECT 1`` and its row, once untimed first: that one may also open the transaction
    (an extra round trip in some drivers)."""
    cursor = connection.cursor()
    try:
        cursor.execute("SELECT 1")
        cursor.fetchall()

        def select_one() -> None:
            cursor.execute("SELECT 1")
            cursor.fetchall()

        return _timed(samples, select_one)
    finally:
        cursor.close()


def _resets(connector: URLConnector, connection: Any, samples: int, timeout: float) -> Timing:
    """The pool's reset on return (``end_transaction``: a rollback where a transaction is
    open), each after a statement that left one open."""
    driver = connector.driver
    durations = []
    cursor = connection.cursor()
    try:
        for _ in range(samples):
            with driver.time_limit(connection, timeout):
                cursor.execute("SELECT 1")
                cursor.fetchall()
            started = time.perf_counter()
            driver.end_transaction(connection, timeout)
            durations.append(time.perf_counter() - started)
    finally:
        cursor.close()
    return Timing(tuple(durations))


# -- server facts ---------------------------------------------------------------------------------


def read_server_facts(driver_name: str, connection: Any) -> tuple[ServerFacts, dict[str, str]]:
    """The server's limits (see `ServerFacts`) and the settings they came from, as text.

    Args:
        driver_name: the sessionpool driver's name ("psycopg", "pymysql", "sqlite3"...).
        connection: an open connection of that driver.
    """
    if driver_name in ("psycopg", "psycopg2"):
        return _postgresql_facts(connection)
    if driver_name in ("pymysql", "mysqlclient"):
        return _mysql_facts(connection)
    if driver_name == "sqlite3":
        return _sqlite_facts(connection)
    version = str(getattr(connection, "version", "") or "")
    return ServerFacts(driver_name, version), {}


_POSTGRESQL_SETTINGS = (
    "server_version",
    "max_connections",
    "superuser_reserved_connections",
    "reserved_connections",  # PostgreSQL 16 and later
    "idle_session_timeout",  # 14 and later
    "idle_in_transaction_session_timeout",
    "tcp_keepalives_idle",
    "statement_timeout",
)
# pg_settings units, as seconds.
_UNITS = {"ms": 1e-3, "s": 1.0, "min": 60.0}


def _postgresql_facts(connection: Any) -> tuple[ServerFacts, dict[str, str]]:
    names = ", ".join(f"'{name}'" for name in _POSTGRESQL_SETTINGS)
    rows = _rows(connection, f"SELECT name, setting, unit FROM pg_settings WHERE name IN ({names})")
    found = {str(name): (str(setting), unit) for name, setting, unit in rows}
    (count,) = _rows(
        connection,
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'",
    )[0]

    def number(name: str) -> int | None:
        return int(found[name][0]) if name in found else None

    def seconds(name: str) -> float | None:
        if name not in found:
            return None
        setting, unit = found[name]
        value = float(setting) * _UNITS.get(unit or "s", 1.0)
        return value or None  # 0 turns the limit off (or, for keepalives, means the OS's)

    reserved = (number("superuser_reserved_connections") or 0) + (
        number("reserved_connections") or 0
    )
    facts = ServerFacts(
        product="PostgreSQL",
        version=found.get("server_version", ("", None))[0],
        max_connections=number("max_connections"),
        reserved_connections=reserved,
        connections=int(count),
        idle_session_timeout=seconds("idle_session_timeout"),
        idle_in_transaction_timeout=seconds("idle_in_transaction_session_timeout"),
        tcp_keepalives_idle=seconds("tcp_keepalives_idle"),
        statement_timeout=seconds("statement_timeout"),
    )
    shown = {}
    for name in _POSTGRESQL_SETTINGS[1:]:
        if name in found:
            setting, unit = found[name]
            shown[name] = _with_unit(setting, unit, off_word=_OFF_WORDS.get(name))
    shown["client connections now"] = str(count)
    return facts, shown


_OFF_WORDS = {
    "idle_session_timeout": "off",
    "idle_in_transaction_session_timeout": "off",
    "statement_timeout": "off",
    "tcp_keepalives_idle": "the OS default",
    "wait_timeout": "off",
}


def _mysql_facts(connection: Any) -> tuple[ServerFacts, dict[str, str]]:
    ((version,),) = _rows(connection, "SELECT VERSION()")
    # Session values: wait_timeout is copied from the global (or from interactive_timeout for
    # interactive clients) when a session starts; this session was opened as the pool will.
    variables = dict(
        _rows(
            connection,
            "SHOW VARIABLES WHERE Variable_name IN ('max_connections', 'wait_timeout', "
            "'interactive_timeout', 'max_user_connections')",
        )
    )
    status = dict(
        _rows(
            connection,
            "SHOW GLOBAL STATUS WHERE Variable_name IN ('Threads_connected', "
            "'Max_used_connections')",
        )
    )
    text = {str(k): _text(v) for k, v in {**variables, **status}.items()}
    version_text = _text(version)
    product = "MariaDB" if "mariadb" in version_text.lower() else "MySQL"

    def number(name: str) -> int | None:
        return int(text[name]) if text.get(name, "").isdigit() else None

    wait_timeout = number("wait_timeout")
    facts = ServerFacts(
        product=product,
        version=version_text,
        max_connections=number("max_connections"),
        connections=number("Threads_connected"),
        idle_session_timeout=float(wait_timeout) if wait_timeout else None,
    )
    shown = {
        "max_connections": text.get("max_connections", "?"),
        "max_user_connections": _with_unit(text.get("max_user_connections", "0"), None, "none"),
        "wait_timeout": _with_unit(text.get("wait_timeout", "?"), "s", "off"),
        "interactive_timeout": _with_unit(text.get("interactive_timeout", "?"), "s", "off"),
        "client connections now": text.get("Threads_connected", "?"),
        "most connections since start": text.get("Max_used_connections", "?"),
    }
    return facts, shown


def _sqlite_facts(connection: Any) -> tuple[ServerFacts, dict[str, str]]:
    ((version,),) = _rows(connection, "SELECT sqlite_version()")
    ((journal_mode,),) = _rows(connection, "PRAGMA journal_mode")
    ((busy_timeout,),) = _rows(connection, "PRAGMA busy_timeout")
    shown = {"journal_mode": str(journal_mode), "busy_timeout": f"{busy_timeout} ms"}
    return ServerFacts("SQLite", str(version)), shown


def _rows(connection: Any, sql: str) -> list[Any]:
    cursor = connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _with_unit(setting: str, unit: str | None, off_word: str | None = None) -> str:
    if off_word is not None and setting == "0":
        return f"0 ({off_word})"
    return f"{setting} {unit}" if unit else setting


# -- messages -------------------------------------------------------------------------------


def _failure(shown: str, what: str, error: BaseException, url: URL) -> str:
    detail = scrub_secrets(str(error).strip(), url.secrets()) or "no message"
    detail = " ".join(detail.split())  # drivers' messages span lines
    return f"{what} to {shown}: {type(error).__name__}: {detail}"


def _driver_label(connector: URLConnector) -> str:
    driver = connector.driver
    module = driver.module
    version = getattr(module, "__version__", None)
    if version is None and isinstance(getattr(module, "version_info", None), tuple):
        version = ".".join(str(part) for part in module.version_info[:3])  # type: ignore[union-attr]
    if driver.name == "sqlite3":
        version = f"(SQLite library {getattr(module, 'sqlite_version', '?')})"
    return f"{driver.name} {version}" if version else driver.name


def format_report(report: CheckReport, width: int = 100) -> str:
    """The report as text for a terminal: timings, server limits, then the advice."""
    lines = [f"sessionpool check {report.url}"]
    lines.append(f"  driver   {report.driver}")
    if report.note:
        lines.append(f"           ({report.note})")
    version = f" {report.server.version}" if report.server.version else ""
    lines.append(f"  server   {report.server.product}{version}")
    lines.append("")
    samples = len(report.timings["connect"].samples)
    lines.append(f"timings ({samples} samples){'min':>17}{'median':>11}{'max':>11}")
    for name, timing in report.timings.items():
        label = "reset on return" if name == "reset" else name
        lines.append(
            f"  {label:<26}{format_duration(timing.min):>11}{format_duration(timing.median):>11}"
            f"{format_duration(timing.max):>11}"
        )
    if report.settings:
        lines.append("")
        lines.append("server limits")
        column = max(len(name) for name in report.settings) + 2
        for name, value in report.settings.items():
            lines.append(f"  {name:<{column}}{value}")
    lines.append("")
    config = report.config
    scope = f"max_size={config.max_size}"
    if config.max_overflow:
        scope += f", max_overflow={config.max_overflow}"
    scope += f", min_size={config.min_size}, {report.processes} process"
    scope += "es" if report.processes != 1 else ""
    lines.append(f"advice for {scope} (pool settings come from the URL's query)")
    for advice in report.advice:
        marker = "!" if advice.severity == "warning" else "-"
        wrapped = textwrap.wrap(advice.sentence, width - 4)
        lines.append(f"  {marker} {wrapped[0]}")
        lines.extend(f"    {line}" for line in wrapped[1:])
        if advice.settings:
            said = ", ".join(f"{name}={value:g}" for name, value in advice.settings.items())
            lines.append(f"    suggested: {said}")
    return "\n".join(lines)
