"""The driver seam: what the pool needs from a driver, independent of any one of them.

A `Driver` knows one DB-API driver's connections: is this one closed, is it alive (within a
time limit), end its transaction, reset its whole session, does this error mean it is dead.
A `Connector` opens connections (from a URL or a user's creator) and owns a Driver. Neither
keeps pool state; both do I/O only when the pool asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any, TypeVar

from ..errors import ConfigError, ConnectionDead, UsageError
from ..url import URL, scrub_secrets
from . import failover, watchdog
from .failover import Attempt

T = TypeVar("T")

__all__ = [
    "Connector",
    "CreatorConnector",
    "Driver",
    "GenericDriver",
    "URLConnector",
    "URLDriver",
    "convert_arguments",
    "with_credentials",
    "with_pooler_arguments",
]


class Driver:
    """Knowledge of one DB-API driver. Subclasses override what their driver allows.

    The defaults are what any DB-API 2.0 driver supports: ``rollback()`` ends a transaction,
    nothing can tell a dead connection from a live one without a round trip, and a full
    reset means reopening.
    """

    #: Name used in URLs after ``+`` and in messages.
    name = "generic"
    #: The pip extra that installs it, for the "install ..." error.
    extra = ""
    #: Whether `full_reset` works in place (else the pool reopens the connection).
    full_reset_in_place = False

    def __init__(self, module: ModuleType | None = None) -> None:
        self.module = module

    @property
    def threadsafety(self) -> int:
        """DB-API threadsafety level of the driver module (1 when unknown)."""
        level = getattr(self.module, "threadsafety", 1)
        return level if isinstance(level, int) else 1

    def opened(self, connection: Any) -> None:
        """Called once with each new connection, before the pool's ``on_connect``."""

    # -- behind a server-side pooler (PoolConfig.server_pooler) ----------------------------

    def adapt_to_pooler(self, connection: Any) -> None:
        """Make a new connection safe behind a transaction-mode pooler: turn off what keeps
        state in the server session across transactions (server-side prepared statements).
        Called once per connection, before `opened`; raises `ConfigError` when the
        connection was made in a way that cannot work there."""

    def pooler_in_front(self, connection: Any, timeout: float) -> tuple[int, int] | None:
        """Look for a pooler between this new connection and the server, within ``timeout``.

        Returns (the backend pid the protocol announced, the server's own backend pid) when
        they differ, which a pooler such as PgBouncer causes; None when they agree or the
        driver cannot tell. Runs once per pool, on its first connection, outside any
        transaction, and leaves none open.
        """
        return None

    # -- local checks (no round trip) ------------------------------------------------------

    def is_closed(self, connection: Any) -> bool:
        """True when the driver already knows the connection is closed or broken."""
        return False

    def in_transaction(self, connection: Any) -> bool:
        """Whether a transaction may be open; True when the driver cannot tell."""
        return True

    def is_clean(self, connection: Any) -> bool:
        """True when the driver knows locally that the connection is open with no
        transaction: the cheap reset then has nothing to do."""
        return not self.is_closed(connection) and not self.in_transaction(connection)

    def fileno(self, connection: Any) -> int | None:
        """The connection's socket, so a hung call can be cut off; None when it has none."""
        return None

    # -- round trips, each within a time limit ---------------------------------------------

    def ping(self, connection: Any, timeout: float) -> None:
        """Check the connection is alive. Raises `ConnectionDead` (or the driver's error)."""
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")

    def end_transaction(self, connection: Any, timeout: float) -> None:
        """The cheap reset on return: roll back whatever the borrower left open."""
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        if self.in_transaction(connection):
            self.call_within(connection, timeout, connection.rollback)

    def full_reset(self, connection: Any, timeout: float) -> bool:
        """Clear every kind of session state the borrower may have left.

        Returns False when this driver cannot do it in place; the pool then reopens the
        connection instead. Raises when the reset failed (the pool drops the connection).
        """
        return False

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        """True when ``error`` means the connection is dead rather than the SQL was wrong."""
        if isinstance(error, ConnectionDead):
            return True
        return connection is not None and self.is_closed(connection)

    def close(self, connection: Any) -> None:
        """Close a driver connection. Errors propagate; the pool ignores them."""
        connection.close()

    # -- transaction modes (sessions set them per session and put them back) ---------------

    def autocommit(self, connection: Any) -> bool:
        """Whether the connection is in autocommit mode (an attribute in most drivers, a
        method pair in the MySQL ones)."""
        getter = getattr(connection, "get_autocommit", None)
        if callable(getter):
            return bool(getter())
        return bool(getattr(connection, "autocommit", False))

    def set_autocommit(self, connection: Any, on: bool) -> None:
        current = getattr(connection, "autocommit", None)
        if callable(current):
            current(on)
        elif current is None:
            raise UsageError(f"the {self.name} driver has no autocommit mode to set")
        else:
            connection.autocommit = on

    def isolation_level(self, connection: Any) -> str | None:
        """The isolation level of the next transaction ("READ COMMITTED"...), None when the
        driver cannot tell."""
        return None

    def set_isolation_level(self, connection: Any, level: str | None) -> None:
        """Set the level of the next transactions; None: the server's default (only where
        `isolation_level` can return None)."""
        raise UsageError(f"sessionpool cannot set the isolation level of {self.name} connections")

    def executemany(self, cursor: Any, sql: str, rows: list[Any]) -> None:
        """Run ``sql`` for every parameter set in ``rows`` in as few round trips as the
        driver allows (psycopg pipelines, PyMySQL folds INSERTs into one statement)."""
        cursor.executemany(sql, rows)

    def in_failed_transaction(self, connection: Any) -> bool:
        """Whether the open transaction was aborted by an error (a commit would only roll
        it back). False where the driver cannot tell, or errors undo only the statement."""
        return False

    def begin(self, connection: Any) -> None:
        """Make sure a transaction is open (before a savepoint). DB-API drivers open one
        implicitly with the first statement; those that do not override this."""

    def call_within(self, connection: Any, timeout: float, function: Callable[[], T]) -> T:
        """``function()`` with the connection's socket cut after ``timeout`` seconds.

        The same contract as `time_limit`, for one call, without a context manager's cost
        (this runs on the return path whenever a transaction was left open).
        """
        fd = self.fileno(connection)
        if fd is None or fd < 0:
            return function()
        watch = watchdog.arm(fd, timeout)
        try:
            result = function()
        except Exception as exc:
            if watchdog.disarm(watch):
                raise ConnectionDead(f"no answer within {timeout} s; connection cut") from exc
            raise
        if watchdog.disarm(watch):
            raise ConnectionDead(f"no answer within {timeout} s; connection cut")
        return result

    @contextmanager
    def time_limit(self, connection: Any, timeout: float) -> Iterator[None]:
        """Run the block with the connection's socket cut after ``timeout`` seconds.

        The cut makes the driver raise its own connection-lost error; it is re-raised as
        `ConnectionDead` naming the limit, chained to the driver's error.
        """
        fd = self.fileno(connection)
        if fd is None or fd < 0:
            yield
            return
        watch = watchdog.arm(fd, timeout)
        try:
            yield
        except Exception as exc:
            if watchdog.disarm(watch):
                raise ConnectionDead(f"no answer within {timeout} s; connection cut") from exc
            raise
        if watchdog.disarm(watch):
            raise ConnectionDead(f"no answer within {timeout} s; connection cut")


ISOLATION_LEVELS = ("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")


def isolation_name(level: str) -> str:
    """``level`` in the SQL standard's spelling ("read_committed" -> "READ COMMITTED");
    raises `UsageError` for anything else."""
    name = str(level).replace("_", " ").replace("-", " ").upper().strip()
    if name not in ISOLATION_LEVELS:
        allowed = ", ".join(repr(level) for level in ISOLATION_LEVELS)
        raise UsageError(f"isolation_level must be one of {allowed} (got {level!r})")
    return name


class GenericDriver(Driver):
    """Any DB-API driver sessionpool has no adapter for."""

    def end_transaction(self, connection: Any, timeout: float) -> None:
        # Nothing to check locally and no socket to watch: the bare rollback, the cheapest
        # return path for drivers sessionpool does not know.
        connection.rollback()


class Connector:
    """Opens driver connections for a pool and owns the `Driver` that knows them."""

    driver: Driver = GenericDriver()

    def connect(self, user: str | None = None, password: str | None = None) -> Any:
        """Open a new driver connection, for ``user`` when given (heterogeneous pools)."""
        raise NotImplementedError

    def close(self, connection: Any) -> None:
        """Close a driver connection. Errors propagate; the pool ignores them."""
        self.driver.close(connection)

    def limit_connects(self, seconds: float) -> None:
        """Bound each connect to ``seconds`` where the connector can (see `URLConnector`)."""

    def connect_attempts(self) -> int:
        """How many connect time limits one `connect` may take in a row: the number of hosts
        it may try (an `AsyncPool` bounds a connect by ``connect_timeout`` times this)."""
        return 1

    def connect_limit(self, seconds: float) -> float:
        """How long one connect attempt may take when the pool asks for ``seconds``: more
        when the driver rounds its timeout up (libpq takes whole seconds, at least 2)."""
        return seconds

    def use_server_pooler(self, mode: str | None) -> None:
        """Open connections fit for a server pooler in pool ``mode`` (see
        `URLConnector.use_server_pooler`); connections from a creator are adapted after
        they open (`Driver.adapt_to_pooler`)."""

    def dispose(self) -> None:
        """Release what the connector itself holds; the pool calls it when it closes."""

    def describe(self) -> str:
        """A label for messages; never contains credentials."""
        return type(self).__name__


class CreatorConnector(Connector):
    """Connections from a user's callable returning any DB-API connection.

    For a per-user acquire in a heterogeneous pool, the callable is called with ``user=`` and
    ``password=`` keyword arguments; otherwise with none. The driver is recognised from the
    first connection's class, so a creator returning psycopg, PyMySQL, sqlite3... connections
    gets that driver's checks and resets.
    """

    def __init__(self, creator: Callable[..., Any]) -> None:
        if not callable(creator):
            raise ConfigError(
                f"creator must be a callable returning a DB-API connection, "
                f"not {type(creator).__name__}"
            )
        self.creator = creator
        self.driver = GenericDriver()
        self._recognised = False

    def connect(self, user: str | None = None, password: str | None = None) -> Any:
        connection = self.creator() if user is None else self.creator(user=user, password=password)
        if not self._recognised:
            from .registry import driver_for_connection  # the registry imports this module

            self.driver = driver_for_connection(connection)
            self._recognised = True
        return connection

    def describe(self) -> str:
        name = getattr(self.creator, "__qualname__", None) or type(self.creator).__name__
        return f"creator {name}"


# Kinds a URL query value can be converted to for a driver argument.
ArgumentKind = type[str] | type[int] | type[float] | type[bool]


def convert_arguments(
    values: dict[str, Any], kinds: dict[str, ArgumentKind | None], driver_name: str
) -> dict[str, Any]:
    """Driver arguments from URL query strings (or keyword values), checked by name.

    ``kinds`` lists every argument the driver takes, with the type a string value converts
    to (None keeps it as it is). A name not listed raises `ConfigError` naming it.
    """
    unknown = sorted(set(values) - set(kinds))
    if unknown:
        raise ConfigError(
            f"unknown {driver_name} argument(s) {', '.join(unknown)} in the URL query or "
            f"connect_args; known: {', '.join(sorted(kinds))}"
        )
    converted: dict[str, Any] = {}
    for name, value in values.items():
        kind = kinds[name]
        if kind is None or not isinstance(value, str):
            converted[name] = value
        else:
            converted[name] = convert_text(name, value, kind)
    return converted


def with_credentials(
    arguments: dict[str, Any],
    user: str | None,
    password: str | None,
    password_key: str = "password",
) -> dict[str, Any]:
    """Connect arguments for a per-user connection: ``arguments`` with this user and password
    (a copy; unchanged when neither is given)."""
    if user is None and password is None:
        return arguments
    merged = dict(arguments)
    if user is not None:
        merged["user"] = user
    if password is not None:
        merged[password_key] = password
    return merged


def convert_text(name: str, text: str, kind: ArgumentKind) -> Any:
    """``text`` as ``kind``; raises `ConfigError` naming ``name`` when it does not convert."""
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false (got {text!r})")
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{name} must be a {kind.__name__} (got {text!r})") from None


class URLDriver(Driver):
    """A Driver that can also open connections from a parsed URL."""

    #: The connect argument that bounds opening a connection, if the driver has one.
    connect_timeout_argument: str | None = None
    #: Whether the driver walks a URL's host list itself (libpq); if not, the connector
    #: tries the hosts in turn (`failover`), pointing the arguments at one host each time.
    handles_host_lists = False

    def arguments_for_host(self, arguments: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        """``arguments`` aimed at one host of a multi-host URL (a copy)."""
        return point_at_host(arguments, attempt)

    def connect_timeout_value(self, seconds: float) -> Any:
        """``seconds`` as the driver wants it in ``connect_timeout_argument``."""
        return seconds

    def pooler_arguments(self, mode: str) -> dict[str, Any]:
        """Connect arguments a connection needs behind a server pooler in pool ``mode``
        (those that cannot be changed once it is open)."""
        return {}

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        """The driver's connect arguments for ``url``, checked; raises `ConfigError`."""
        raise NotImplementedError

    def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        """Open one connection with these arguments, for ``user`` when given."""
        raise NotImplementedError

    def dispose(self) -> None:
        """Release what the driver holds for the pool (sqlite's in-memory database)."""


class URLConnector(Connector):
    """Connections described by a URL, opened through the driver the URL names."""

    driver: URLDriver

    def __init__(self, url: URL, driver: URLDriver, connect_args: dict[str, Any]) -> None:
        self.url = url
        self.driver = driver
        self.arguments = driver.arguments_from_url(url, connect_args)
        self._given = set(url.query) | set(connect_args)
        self._secrets = url.secrets() + [
            str(value)
            for name, value in connect_args.items()
            if "password" in name.lower() and value
        ]
        self._attempts = failover_plan(url, driver.handles_host_lists, self.arguments)

    def limit_connects(self, seconds: float) -> None:
        """Make the driver give up a connect after ``seconds``, unless the URL or
        connect_args set its own timeout."""
        name = self.driver.connect_timeout_argument
        if name is not None and name not in self._given:
            self.arguments[name] = self.driver.connect_timeout_value(seconds)

    def connect_attempts(self) -> int:
        return count_attempts(self.url, self.arguments)

    def connect_limit(self, seconds: float) -> float:
        return applied_connect_limit(self.driver.connect_timeout_value(seconds), seconds)

    def use_server_pooler(self, mode: str | None) -> None:
        """Set the connect arguments the driver needs behind a pooler in pool ``mode``.

        Raises:
            ConfigError: the URL or connect_args set one of them to a value that cannot work
                there (the message names it).
        """
        self.arguments = with_pooler_arguments(
            self.arguments, self._given, self.driver.pooler_arguments(mode) if mode else {}, mode
        )

    def connect(self, user: str | None = None, password: str | None = None) -> Any:
        if self._attempts is None:
            return self._open(self.arguments, user, password)
        return failover.connect_first(
            self._attempts,
            lambda attempt: self._open(
                self.driver.arguments_for_host(self.arguments, attempt), user, password
            ),
        )

    def _open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        try:
            return self.driver.open(arguments, user, password)
        except Exception as exc:
            # Some drivers echo what they were given; never let a password through.
            scrub_error(exc, self._secrets + ([password] if password else []))
            raise

    def dispose(self) -> None:
        self.driver.dispose()

    def describe(self) -> str:
        return self.url.without_query(self.url.query).render()


def point_at_host(arguments: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
    """A copy of ``arguments`` with ``host``/``port`` (and ``target_session_attrs`` when the
    attempt requires one) set for this attempt; a missing port falls back to the driver's."""
    aimed = dict(arguments)
    for name, value in (("host", attempt.host), ("port", attempt.port)):
        if value is None:
            aimed.pop(name, None)
        else:
            aimed[name] = value
    if attempt.target_session_attrs is not None:
        aimed["target_session_attrs"] = attempt.target_session_attrs
    return aimed


def failover_plan(
    url: URL, handles_host_lists: bool, arguments: dict[str, Any]
) -> list[Attempt] | None:
    """The hosts the connector must try itself, or None (one host, or the driver walks the
    list)."""
    if handles_host_lists or len(url.hosts) < 2:
        return None
    return failover.plan(url.hosts, arguments.get("target_session_attrs"))


def applied_connect_limit(value: Any, seconds: float) -> float:
    """Seconds a driver given ``value`` (its form of ``seconds``) may take to connect."""
    try:
        return max(seconds, float(value))
    except (TypeError, ValueError):
        return seconds


def count_attempts(url: URL, arguments: dict[str, Any]) -> int:
    """How many per-host connect limits a connect to ``url`` may use (see `connect_attempts`);
    the same whether the driver or the connector walks the hosts."""
    return max(1, len(failover.plan(url.hosts, arguments.get("target_session_attrs"))))


def with_pooler_arguments(
    arguments: dict[str, Any], given: set[str], needed: dict[str, Any], mode: str | None
) -> dict[str, Any]:
    """``arguments`` with ``needed`` set (a copy). A needed one the user ``given`` with
    another value raises `ConfigError` naming it: a silent override would hide a setting
    that cannot work behind the pooler."""
    merged = dict(arguments)
    for name, value in needed.items():
        if name in given and merged.get(name) != value:
            raise ConfigError(
                f"{name}={merged.get(name)!r} (from the URL or connect_args) cannot work with "
                f"server_pooler={mode!r}: it keeps named prepared statements on a server "
                f"session the pooler may not give back; leave it out (sessionpool sets "
                f"{name}={value!r})"
            )
        merged[name] = value
    return merged


def scrub_error(error: BaseException, secrets: list[str]) -> None:
    """Mask secrets in an exception's args, in place (its type and chain are kept)."""
    if not secrets or not any(secret in str(error) for secret in secrets if secret):
        return
    error.args = tuple(
        scrub_secrets(arg, secrets) if isinstance(arg, str) else arg for arg in error.args
    )
