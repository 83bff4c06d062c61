"""cx_Oracle 8's ``SessionPool`` as a face of sessionpool, on any database sessionpool knows.
It translates names, units, defaults and errors; every pool decision is sessionpool's core's
(DESIGN rule 7), so nothing here waits, counts or chooses a connection.

    from sessionpool.compat import cx_oracle as cx_Oracle

    pool = cx_Oracle.SessionPool("scott", "tiger", "postgresql://127.0.0.1/test",
                                 min=2, max=10, increment=2,
                                 getmode=cx_Oracle.SPOOL_ATTRVAL_WAIT)
    with pool.acquire() as conn:
        conn.cursor().execute("select 1")

**dsn.** Anything with ``://`` is a sessionpool URL (``sqlite://``, ``postgresql://...``,
``mariadb://...``, ``oracle://...``); when it names no user, ``user`` and ``password`` are
filled in from the arguments (a URL's own credentials win; SQLite has no users, so they are
ignored there). Anything else is an Oracle DSN (Easy Connect, Easy Connect Plus such as
``tcps://host/service``, a TNS alias or a connect descriptor), passed unchanged as
python-oracledb's ``dsn`` (thin mode; ``pip install 'sessionpool[oracle]'``).

**Sizes and modes** (cx_Oracle's defaults: ``min=1, max=2, increment=1``, getmode NOWAIT):
``min``/``max``/``increment`` are ``min_size``/``max_size``/``increment`` (an increment of 0
grows by one; ``pool.increment`` still says 0). ``getmode``: ``SPOOL_ATTRVAL_WAIT`` waits
as long as it takes; ``SPOOL_ATTRVAL_NOWAIT`` raises at once when the pool is at ``max``
(below it, the caller waits for the session opened for it, as OCI does, for at most the
pool's ``connect_timeout`` plus a second); ``SPOOL_ATTRVAL_FORCEGET`` opens beyond ``max``
(closed again on release); ``SPOOL_ATTRVAL_TIMEDWAIT`` waits ``wait_timeout`` milliseconds.
``wait_timeout`` of 0 (the default) reads, and waits, 5000 ms: what cx_Oracle reports for a
pool created without it (python-cx_Oracle test/test_2400_session_pool.py, tests 2415 and
2416). ``timeout`` (seconds idle, 0 = never) is ``max_idle``; ``max_lifetime_session``
(seconds, 0 = none) is ``max_lifetime``; ``ping_interval`` (seconds, 60; 0 = always,
negative = never) is sessionpool's own. Setting ``getmode``, ``wait_timeout``, ``timeout``,
``max_lifetime_session``, ``max_sessions_per_shard``, ``ping_interval`` or calling
``reconfigure()`` takes effect at once (``Pool.reconfigure``); ``min``, ``max`` and
``increment`` change only through ``reconfigure()``, as in cx_Oracle. Both spellings of the
renamed arguments are accepted (``waitTimeout``/``wait_timeout``, ``maxLifetimeSession``,
``sessionCallback``, ``maxSessionsPerShard``); giving both is a `ProgrammingError`, as in
cx_Oracle 8.2.

**Errors** are this module's PEP 249 classes; ``e.args[0]`` has ``code``, ``message``,
``full_code``, ``context``, ``isrecoverable`` and ``offset``. The codes are cx_Oracle 8's for
the same situations (cx_Oracle is ODPI-C over the Oracle Client; sessionpool's own message,
with its figures, follows on a second line):

* pool at ``max`` with NOWAIT: ORA-24418 "Cannot open further sessions." (ODPI-C's tests
  dpiTest_1408_getModeNoWait and _1406 expect ORA-24418, or ORA-24496 from newer clients;
  node-oracledb issues 184 and 224 show it from the default NOWAIT pool);
* TIMEDWAIT timed out with every session busy at ``max``: ORA-24496 "OCISessionGet() timed
  out waiting for a free connection." (its documented cause is exactly that; godror issue
  220 and its pool tests show ODPI-C session pools raising it); timed out while sessions
  were still being opened: ORA-24459; timed out at a shard's ``max_sessions_per_shard``:
  ORA-24458 (Oracle's error reference for both). Older Oracle Clients raised ORA-24457
  ("could not find a free session in the specified timeout period") for the same timeout
  (python-oracledb's release notes, on DPY-4005); whatever the seed's comment says, ORA-24457
  never meant a closed pool, and with 24496 the seed's example takes its "exhausted" branch;
* a closed pool (acquire, release, figures, a second close): DPI-1010 "not connected",
  ``code`` 0 (ODPI-C's dpiTest_1412_callWithClosedPool; cx_Oracle raises DPI errors as
  DatabaseError with code 0); the seed's example then takes its generic branch;
* ``close()`` while connections are out: ORA-24422 "error occurred while trying to destroy
  the Session Pool" (python-oracledb's errors.py maps it to DPY-1005, "connection pool
  cannot be closed because connections are busy");
* ``acquire(user=...)`` on a homogeneous pool: DPI-1012 (python-oracledb's test 2401);
  ``min > max`` or ``max < 1``: ORA-24413; a property tag with a part that is not
  ``name=value``: ORA-24488 (ODPI-C's dpiTest_3901); ``pool.release()`` of a connection already
  given back: DPI-1002; any use of a released connection: InterfaceError "not connected"
  (cx_Oracle's cxoConnection_isConnected), of one force-closed with its pool: DPI-1010;
* a driver's error (a failed connect) becomes this module's class of the same DB-API name,
  chained to it, with python-oracledb's ``code``/``full_code`` when it has them. Errors of
  statements run on a connection are the driver's own, unchanged.

**Sessions.** ``session_callback`` is called as cx_Oracle calls it, ``callback(connection,
requested_tag)``, for a brand-new session and when the session handed out carries another
tag than requested; a callable that takes three arguments (as the seed's examples are
written) also gets the actual tag. A string names a PL/SQL procedure (Oracle only), called
with the requested and actual tags on a mismatch, after which the session carries the
requested tag. A tag is a plain string (``"readonly"``, as the seed writes it), matched as a
whole, or properties ``"k1=v1;k2=v2"``, matched in any order; ``matchanytag`` is
sessionpool's. ``conn.tag = ...`` before ``close()`` retags, ``release(conn, tag="")``
untags, and a session released without a tag keeps the one it came with (cx_Oracle's release
without RETAG).
``ATTR_PURITY_NEW`` is ``purity="new"`` (a session no borrower has used since it was opened or
fully reset), ``ATTR_PURITY_SELF`` and ``ATTR_PURITY_DEFAULT`` accept a reused one.
``homogeneous=False`` pools take ``acquire(user, password)``; a user equal to the pool's is
the pool's own session, as in cx_Oracle.

**Partitions.** ``cclass``, ``shardingkey`` and ``supershardingkey`` together name a partition
(``Pool.acquire(partition=...)``): a session is only ever lent to the same class and keys, and
``max_sessions_per_shard`` is ``max_per_partition`` (sessions acquired without any of them
count as one partition; a class counts as a partition of its own). On other databases this is
all they can mean. On Oracle, the keys would have to reach the connect to route the session to
its shard, which the pool does not do yet: sharding keys raise `NotSupportedError` there, and
``cclass`` isolates sessions without being sent as the DRCP connection class.

**Per database.** ``stmtcachesize`` (20) is python-oracledb's ``stmtcachesize``, sqlite3's
``cached_statements`` (fixed when a connection opens: changing it later only warns), psycopg
3's ``prepared_max`` (0 turns preparing off); psycopg2, PyMySQL and mysqlclient keep no
statement cache, so it has no effect there. ``conn.current_schema`` is Oracle's own, the
``search_path`` on PostgreSQL (committed at once outside a transaction: Oracle's is not
transactional), the current database (``USE``) on MySQL/MariaDB; SQLite has none, so it is
only remembered, with a warning. ``edition``, ``events`` and ``externalauth`` go to
python-oracledb; elsewhere, like ``threaded`` (sessionpool is always thread-safe),
``encoding``/``nencoding`` (strings are str), ``soda_metadata_cache`` (no SODA) and
``connectiontype``'s ``__init__`` (not called: the pool builds connections), they are accepted
and have no effect. Keyword arguments that are sessionpool settings cx_Oracle has no word for
(``connect_timeout``, ``reset_on_return``, ``keepalive_interval``, ``on_connect``, ``name``...)
and ``connect_args`` pass through; ``pool.sessionpool`` is the `Pool` underneath.

**Where it differs from cx_Oracle**, and why. Plain tags: Oracle Clients 12.2 and later
refuse them with ORA-24488 (ODPI-C's test_3900_sess_tags.c), older ones match them whole, as
here, so that the seed's ``acquire(tag="readonly")`` runs. ``min`` is kept: a dropped or
retired session is replaced at once, where OCI reopens at the next acquire. A WAIT acquire
waits through a database outage until a connection opens (sessionpool's recovery; OCI would
raise the connect error); NOWAIT, FORCEGET and TIMEDWAIT acquires get the driver's connect
error, translated, within their bound.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import errors as pool_errors
from ..config import PoolConfig
from ..factory import create_pool
from ._cx_oracle_args import (
    ATTR_PURITY_DEFAULT,
    ATTR_PURITY_NEW,
    ATTR_PURITY_SELF,
    DEFAULT_WAIT_TIMEOUT_MS,
    PURITIES,
    SPOOL_ATTRVAL_FORCEGET,
    SPOOL_ATTRVAL_NOWAIT,
    SPOOL_ATTRVAL_TIMEDWAIT,
    SPOOL_ATTRVAL_WAIT,
    WHEN_EXHAUSTED,
    check_bool,
    check_getmode,
    check_int,
    check_sizes,
    non_negative,
    one_of,
    takes_three,
    target,
)
from ._cx_oracle_connection import Backend, Connection, check_tag, from_pool_tag, to_pool_tag
from ._cx_oracle_errors import (
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Warning,
    codes,
    from_driver_error,
    is_driver_error,
    make_error,
)

if TYPE_CHECKING:
    from .._sync.lease import Lease
    from .._sync.pool import Pool

__all__ = [
    "ATTR_PURITY_DEFAULT",
    "ATTR_PURITY_NEW",
    "ATTR_PURITY_SELF",
    "SPOOL_ATTRVAL_FORCEGET",
    "SPOOL_ATTRVAL_NOWAIT",
    "SPOOL_ATTRVAL_TIMEDWAIT",
    "SPOOL_ATTRVAL_WAIT",
    "Connection",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "SessionPool",
    "Warning",
]

# sessionpool settings this face sets from cx_Oracle's arguments: not accepted as extras.
_FACE_SETTINGS = frozenset(
    {
        "min_size",
        "max_size",
        "increment",
        "max_overflow",
        "lazy",
        "when_exhausted",
        "wait_timeout",
        "ping_interval",
        "max_idle",
        "max_lifetime",
        "homogeneous",
        "max_per_partition",
        "session_callback",
    }
)
_CONNECT_TIMEOUT_DEFAULT = float(PoolConfig().connect_timeout)
# A NOWAIT or FORCEGET caller waits only for the connect made for it; this much longer than
# that connect's own limit, so that its outcome (or its error) arrives first.
_CONNECT_MARGIN = 1.0


def _runtime_setting(name: str, doc: str) -> Any:
    """A read-write SessionPool attribute kept in ``_<name>``: read while the pool is open,
    set through ``reconfigure`` (so a change applies at once, as in cx_Oracle)."""

    def read(pool: SessionPool) -> Any:
        pool._check_open()
        return getattr(pool, f"_{name}")

    def write(pool: SessionPool, value: Any) -> None:
        pool._reconfigure(**{name: value})

    return property(read, write, doc=doc)


class SessionPool:
    """cx_Oracle 8's SessionPool over a sessionpool `Pool` (see the module docstring).

    Args (cx_Oracle's):
        user, password: the pool's credentials (``None`` for a heterogeneous pool).
        dsn: a sessionpool URL or an Oracle DSN.
        min, max, increment: sessions kept open, the most open, sessions opened together.
        connectiontype: a `Connection` subclass for ``acquire()`` to return.
        getmode: ``SPOOL_ATTRVAL_NOWAIT`` (default), ``_WAIT``, ``_FORCEGET``, ``_TIMEDWAIT``.
        homogeneous: False lets ``acquire(user, password)`` ask for other users' sessions.
        timeout: seconds a session may stay idle (0: for ever).
        wait_timeout / waitTimeout: milliseconds a TIMEDWAIT acquire waits (0: 5000).
        max_lifetime_session / maxLifetimeSession: seconds a session may live (0: for ever).
        session_callback / sessionCallback: see the module docstring.
        max_sessions_per_shard / maxSessionsPerShard: sessions per partition (0: no limit).
        stmtcachesize: the driver's statement cache size, where it has one.
        ping_interval: seconds idle after which a session is checked before hand-out.
        threaded, events, externalauth, encoding, nencoding, edition,
            soda_metadata_cache: accepted; see the module docstring for their effect.
        connect_args: more driver arguments; **settings: other sessionpool settings.
    Raises:
        DatabaseError: ORA-24413 for impossible sizes; a driver's connect error, translated.
        ProgrammingError: an invalid argument (the message names it).
        NotSupportedError: a PL/SQL session callback on a database other than Oracle.
        DriverNotInstalled: the database's driver is missing (names the extra to install).
    """

    def __init__(
        self,
        user: str | None = None,
        password: str | None = None,
        dsn: str | None = None,
        min: int = 1,
        max: int = 2,
        increment: int = 1,
        connectiontype: type[Connection] = Connection,
        threaded: bool = True,
        getmode: int = SPOOL_ATTRVAL_NOWAIT,
        events: bool = False,
        homogeneous: bool = True,
        externalauth: bool = False,
        encoding: str | None = None,
        nencoding: str | None = None,
        edition: str | None = None,
        timeout: int = 0,
        wait_timeout: int | None = None,
        max_lifetime_session: int | None = None,
        session_callback: Callable[..., object] | str | None = None,
        max_sessions_per_shard: int | None = None,
        soda_metadata_cache: bool = False,
        stmtcachesize: int = 20,
        ping_interval: int = 60,
        waitTimeout: int | None = None,
        maxLifetimeSession: int | None = None,
        sessionCallback: Callable[..., object] | str | None = None,
        maxSessionsPerShard: int | None = None,
        *,
        connect_args: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        wait_ms = one_of("waitTimeout", waitTimeout, "wait_timeout", wait_timeout)
        lifetime = one_of(
            "maxLifetimeSession", maxLifetimeSession, "max_lifetime_session", max_lifetime_session
        )
        callback = one_of("sessionCallback", sessionCallback, "session_callback", session_callback)
        per_shard = one_of(
            "maxSessionsPerShard",
            maxSessionsPerShard,
            "max_sessions_per_shard",
            max_sessions_per_shard,
        )
        for name, value in (("min", min), ("max", max), ("increment", increment)):
            check_int(name, value)
        check_sizes(min, max, increment)
        if not (isinstance(connectiontype, type) and issubclass(connectiontype, Connection)):
            raise make_error(
                ProgrammingError, None, "connectiontype must be a subclass of Connection"
            )
        if callback is not None and not (callable(callback) or isinstance(callback, str)):
            raise make_error(
                ProgrammingError, None, "session_callback must be callable or a PL/SQL name"
            )
        clash = sorted(set(settings) & _FACE_SETTINGS)
        if clash:
            raise TypeError(
                f"{', '.join(clash)}: set by cx_Oracle's own arguments (min, max, increment, "
                "getmode, wait_timeout, timeout, max_lifetime_session, ping_interval, "
                "homogeneous, max_sessions_per_shard, session_callback)"
            )
        unknown = sorted(set(settings) - PoolConfig.parameter_names() - {"open_timeout"})
        if unknown:
            raise TypeError(f"SessionPool() got unexpected keyword argument(s) {unknown}")

        self._getmode = check_getmode(getmode)
        self._wait_timeout = non_negative("wait_timeout", wait_ms or 0)
        self._timeout = non_negative("timeout", timeout)
        self._max_lifetime_session = non_negative("max_lifetime_session", lifetime or 0)
        self._max_sessions_per_shard = non_negative("max_sessions_per_shard", per_shard or 0)
        self._stmtcachesize = non_negative("stmtcachesize", stmtcachesize)
        check_int("ping_interval", ping_interval)
        self._ping_interval = ping_interval
        self._soda_metadata_cache = check_bool("soda_metadata_cache", soda_metadata_cache)
        self._min, self._max, self._increment = min, max, increment
        self._homogeneous = bool(homogeneous)
        self._connectiontype = connectiontype
        connect_timeout = settings.get("connect_timeout", _CONNECT_TIMEOUT_DEFAULT)
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)):
            raise make_error(ProgrammingError, None, "connect_timeout must be a number of seconds")
        self._connect_timeout = float(connect_timeout)
        # Accepted for cx_Oracle's sake (see the module docstring for what each does).
        self._threaded, self._encoding, self._nencoding = threaded, encoding, nencoding

        backend, url, shown_dsn, username, dsn_args = target(user, password, dsn)
        self._backend: Backend = backend
        self._dsn = shown_dsn
        self._username = username
        if isinstance(callback, str) and not backend.is_oracle:
            raise make_error(
                NotSupportedError,
                None,
                f"a PL/SQL session callback ({callback!r}) runs only in Oracle, not {backend.name}",
            )
        self._callback = callback
        self._callback_takes_actual = callable(callback) and takes_three(callback)
        # Sessions opened and not yet handed out: cx_Oracle calls the callback for each new
        # one. Identities of driver connections (some cannot hold attributes or weak refs).
        self._fresh: set[int] = set()
        self._track_fresh = callable(callback)
        self._stmtcache_changed = False
        self._local = threading.local()
        self._user_on_connect: Callable[[Any], object] | None = settings.pop("on_connect", None)

        arguments = backend.connect_args(self._stmtcachesize, edition, events, externalauth)
        arguments.update(dsn_args)
        arguments.update(connect_args or {})
        when_exhausted, pool_wait = self._exhausted_settings(self._getmode, self._wait_timeout)
        try:
            self._pool: Pool = create_pool(
                url,
                connect_args=arguments,
                min_size=min,
                max_size=max,
                increment=increment or 1,
                max_overflow=0,
                lazy=False,
                when_exhausted=when_exhausted,
                wait_timeout=pool_wait,
                ping_interval=float(ping_interval),
                max_idle=float(self._timeout) or None,
                max_lifetime=float(self._max_lifetime_session) or None,
                homogeneous=self._homogeneous,
                max_per_partition=self._max_sessions_per_shard or None,
                session_callback=self._on_tag_mismatch if callback is not None else None,
                on_connect=self._on_connect,
                **settings,
            )
        except pool_errors.DriverNotInstalled:
            raise
        except pool_errors.ConfigError as exc:
            raise make_error(ProgrammingError, None, str(exc)) from exc
        except pool_errors.Error as exc:
            raise self._translate(exc) from exc
        except Exception as exc:
            if is_driver_error(exc):
                raise from_driver_error(exc) from exc
            raise

    @property
    def sessionpool(self) -> Pool:
        """The sessionpool `Pool` underneath: its figures, ``stats()`` and settings."""
        return self._pool

    # -- cx_Oracle's attributes ----------------------------------------------------------------

    @property
    def username(self) -> str | None:
        return self._username

    @property
    def dsn(self) -> str:
        """The dsn as given (a URL's password masked)."""
        return self._dsn

    tnsentry = dsn

    @property
    def name(self) -> str:
        return self._pool.name

    @property
    def homogeneous(self) -> bool:
        return self._homogeneous

    @property
    def min(self) -> int:
        return self._min

    @property
    def max(self) -> int:
        return self._max

    @property
    def increment(self) -> int:
        return self._increment

    @property
    def opened(self) -> int:
        """Sessions open now, busy or idle."""
        self._check_open()
        return self._pool.opened

    @property
    def busy(self) -> int:
        """Sessions acquired and not yet released."""
        self._check_open()
        return self._pool.busy

    # cx_Oracle's read-write attributes: read while the pool is open, set through
    # `reconfigure`, so a change takes effect at once.
    getmode = _runtime_setting("getmode", "The get mode (an SPOOL_ATTRVAL_* constant).")
    timeout = _runtime_setting(
        "timeout", "Seconds a session may stay idle before it is closed (0: for ever)."
    )
    max_lifetime_session = _runtime_setting(
        "max_lifetime_session", "Seconds a session may live (0: for ever)."
    )
    max_sessions_per_shard = _runtime_setting(
        "max_sessions_per_shard", "Most sessions per shard key and class (0: no limit)."
    )
    ping_interval = _runtime_setting(
        "ping_interval", "Seconds idle after which a session is checked before hand-out."
    )
    stmtcachesize = _runtime_setting("stmtcachesize", "The driver's statement cache size.")
    soda_metadata_cache = _runtime_setting(
        "soda_metadata_cache", "Accepted for cx_Oracle's sake (no SODA here)."
    )

    @property
    def wait_timeout(self) -> int:
        """Milliseconds a TIMEDWAIT acquire waits."""
        self._check_open()
        return self._wait_timeout or DEFAULT_WAIT_TIMEOUT_MS

    @wait_timeout.setter
    def wait_timeout(self, value: int) -> None:
        self._reconfigure(wait_timeout=value)

    # -- cx_Oracle's methods ---------------------------------------------------------------

    def acquire(
        self,
        user: str | None = None,
        password: str | None = None,
        cclass: str | None = None,
        purity: int | None = None,
        tag: str | None = None,
        matchanytag: bool = False,
        shardingkey: Sequence[Any] | None = None,
        supershardingkey: Sequence[Any] | None = None,
    ) -> Connection:
        """Acquire a session (see the module docstring for each argument's meaning).

        Raises:
            DatabaseError: ORA-24418 (NOWAIT, none free), ORA-24496/24459/24458 (TIMEDWAIT
                timed out), DPI-1010 (pool closed), DPI-1012 (user on a homogeneous pool),
                or a driver's connect error, translated.
            NotSupportedError: sharding keys on Oracle (see the module docstring).
        """
        self._check_open()
        if user == "":
            user = None
        if password == "":
            password = None
        if user is not None or password is not None:
            if self._homogeneous:
                raise make_error(DatabaseError, codes.PROXY_HOMOGENEOUS)
            if user is not None and user == self._username:
                user = password = None  # the pool's own credentials, as cx_Oracle takes them
        if tag is not None and not isinstance(tag, str):
            raise TypeError(f"tag must be a string or None, not {type(tag).__name__}")
        check_tag(to_pool_tag(tag))
        if purity is not None and purity not in PURITIES:
            raise make_error(ProgrammingError, None, f"invalid purity {purity!r}")
        partition = self._partition(cclass, shardingkey, supershardingkey)
        local = self._local
        local.requested = tag
        local.conn = None
        try:
            lease = self._pool.acquire(
                tag=to_pool_tag(tag),
                matchanytag=bool(matchanytag),
                user=user,
                password=password,
                purity=None if purity is None else PURITIES[purity],
                partition=partition,
            )
        except pool_errors.Error as exc:
            raise self._translate(exc, partition) from exc
        except Exception as exc:
            if is_driver_error(exc):
                raise from_driver_error(exc) from exc
            raise
        finally:
            wrapped: Connection | None = local.conn
            local.conn = local.requested = None
        if wrapped is None or wrapped._lease is not lease:
            wrapped = self._connectiontype._wrap(lease, self)
        try:
            if self._fresh:
                self._after_new_session(wrapped, tag)
            if self._stmtcache_changed:
                self._backend.apply_stmtcachesize(wrapped._raw(), self._stmtcachesize)
        except BaseException as exc:
            # The session's state is unknown now: it must not go back to the pool.
            self._drop_quietly(lease)
            if isinstance(exc, Exception) and is_driver_error(exc):
                raise from_driver_error(exc) from exc
            raise
        return wrapped

    def release(self, connection: Connection, tag: str | None = None) -> None:
        """Give a connection back, retagged with ``tag`` if given (``""`` untags).

        Raises:
            DatabaseError: DPI-1002 when it was already given back; DPI-1010 pool closed.
            TypeError: ``tag`` is not a string.
        """
        self._give_back(self._own(connection), tag, closing=False)

    def drop(self, connection: Connection) -> None:
        """Close a connection and remove it from the pool (it is broken)."""
        self._check_open()
        lease = self._own(connection)._lease
        try:
            self._pool.drop(lease)
        except pool_errors.Error as exc:
            raise self._translate(exc) from exc

    def close(self, force: bool = False) -> None:
        """Close the pool and its sessions.

        Raises:
            DatabaseError: ORA-24422 while sessions are acquired and ``force`` is False;
                DPI-1010 if the pool is already closed.
        """
        self._check_open()
        try:
            self._pool.close(force=bool(force))
        except pool_errors.Error as exc:
            raise self._translate(exc) from exc

    def reconfigure(
        self,
        min: int | None = None,
        max: int | None = None,
        increment: int | None = None,
        getmode: int | None = None,
        timeout: int | None = None,
        wait_timeout: int | None = None,
        max_lifetime_session: int | None = None,
        max_sessions_per_shard: int | None = None,
        soda_metadata_cache: bool | None = None,
        stmtcachesize: int | None = None,
        ping_interval: int | None = None,
    ) -> None:
        """Change the pool's settings at once, as cx_Oracle 8.2's reconfigure(); None keeps
        a setting. Validated first: an invalid value changes nothing."""
        self._reconfigure(
            min=min,
            max=max,
            increment=increment,
            getmode=getmode,
            timeout=timeout,
            wait_timeout=wait_timeout,
            max_lifetime_session=max_lifetime_session,
            max_sessions_per_shard=max_sessions_per_shard,
            soda_metadata_cache=soda_metadata_cache,
            stmtcachesize=stmtcachesize,
            ping_interval=ping_interval,
        )

    def _reconfigure(
        self,
        min: int | None = None,
        max: int | None = None,
        increment: int | None = None,
        getmode: int | None = None,
        timeout: int | None = None,
        wait_timeout: int | None = None,
        max_lifetime_session: int | None = None,
        max_sessions_per_shard: int | None = None,
        soda_metadata_cache: bool | None = None,
        stmtcachesize: int | None = None,
        ping_interval: int | None = None,
    ) -> None:
        # Called by reconfigure() and by each setter: either way the caller is two frames up.
        self._check_open()
        sizes = (
            self._min if min is None else min,
            self._max if max is None else max,
            self._increment if increment is None else increment,
        )
        for name, value in zip(("min", "max", "increment"), sizes, strict=True):
            check_int(name, value)
        check_sizes(*sizes)
        new_getmode = self._getmode if getmode is None else check_getmode(getmode)
        new_wait = self._wait_timeout if wait_timeout is None else wait_timeout
        new_wait = non_negative("wait_timeout", new_wait)
        new_timeout = self._timeout if timeout is None else non_negative("timeout", timeout)
        new_lifetime = self._max_lifetime_session
        if max_lifetime_session is not None:
            new_lifetime = non_negative("max_lifetime_session", max_lifetime_session)
        new_per_shard = self._max_sessions_per_shard
        if max_sessions_per_shard is not None:
            new_per_shard = non_negative("max_sessions_per_shard", max_sessions_per_shard)
        new_ping = self._ping_interval
        if ping_interval is not None:
            check_int("ping_interval", ping_interval)
            new_ping = ping_interval
        new_cache = self._stmtcachesize
        if stmtcachesize is not None:
            new_cache = non_negative("stmtcachesize", stmtcachesize)
        new_soda = self._soda_metadata_cache
        if soda_metadata_cache is not None:
            new_soda = check_bool("soda_metadata_cache", soda_metadata_cache)
        when_exhausted, pool_wait = self._exhausted_settings(new_getmode, new_wait)
        try:
            self._pool.reconfigure(
                min_size=sizes[0],
                max_size=sizes[1],
                increment=sizes[2] or 1,
                when_exhausted=when_exhausted,
                wait_timeout=pool_wait,
                max_idle=float(new_timeout) or None,
                max_lifetime=float(new_lifetime) or None,
                max_per_partition=new_per_shard or None,
                ping_interval=float(new_ping),
            )
        except pool_errors.ConfigError as exc:
            raise make_error(ProgrammingError, None, str(exc)) from exc
        except pool_errors.Error as exc:
            raise self._translate(exc) from exc
        self._min, self._max, self._increment = sizes
        self._getmode, self._wait_timeout, self._timeout = new_getmode, new_wait, new_timeout
        self._max_lifetime_session, self._max_sessions_per_shard = new_lifetime, new_per_shard
        self._ping_interval, self._soda_metadata_cache = new_ping, new_soda
        if new_cache != self._stmtcachesize:
            self._stmtcachesize = new_cache
            self._stmtcache_changed = True  # applied to each connection as it is acquired
            if not self._backend.resizes_stmtcache:
                warnings.warn(
                    f"stmtcachesize = {new_cache}: {self._backend.name} fixes a connection's "
                    "statement cache when it opens, so this changes no connection of this pool",
                    UserWarning,
                    stacklevel=3,
                )

    def __repr__(self) -> str:
        user = f"{self._username}@" if self._username else ""
        return f"<{__name__}.SessionPool {user}{self._dsn} min={self._min} max={self._max}>"

    # -- internals -------------------------------------------------------------------------

    def _exhausted_settings(self, getmode: int, wait_ms: int) -> tuple[str, float | None]:
        """``when_exhausted`` and ``wait_timeout`` (seconds) for a getmode."""
        if getmode == SPOOL_ATTRVAL_TIMEDWAIT:
            return "wait", (wait_ms or DEFAULT_WAIT_TIMEOUT_MS) / 1000.0
        if getmode == SPOOL_ATTRVAL_WAIT:
            return "wait", None
        return WHEN_EXHAUSTED[getmode], self._connect_timeout + _CONNECT_MARGIN

    def _check_open(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is None or pool.closed:
            raise make_error(DatabaseError, codes.NOT_CONNECTED)

    def _own(self, connection: Any) -> Connection:
        if not isinstance(connection, Connection):
            kind = type(connection).__name__
            raise TypeError(f"expected a Connection acquired from a SessionPool, got {kind}")
        if connection._owner is not self:
            raise make_error(
                ProgrammingError, None, "this connection was acquired from another SessionPool"
            )
        return connection

    def _partition(
        self,
        cclass: str | None,
        shardingkey: Sequence[Any] | None,
        supershardingkey: Sequence[Any] | None,
    ) -> Hashable:
        keys = tuple(shardingkey or ())
        super_keys = tuple(supershardingkey or ())
        if cclass is not None and not isinstance(cclass, str):
            raise TypeError(f"cclass must be a string, not {type(cclass).__name__}")
        if (keys or super_keys) and self._backend.is_oracle:
            raise make_error(
                NotSupportedError,
                None,
                "sharding keys: sessionpool isolates sessions by shard key but cannot yet "
                "route a session to its Oracle shard (the key does not reach the connect)",
            )
        if cclass is None and not keys and not super_keys:
            return None
        return (cclass, keys, super_keys)

    def _give_back(self, conn: Connection, tag: str | None, *, closing: bool) -> None:
        self._check_open()  # the pool was closed (force) while this was out: DPI-1010
        lease = conn._lease
        if lease.is_released:
            if closing:  # conn.close() twice: cx_Oracle's "not connected"
                raise make_error(InterfaceError, None, "not connected")
            raise make_error(DatabaseError, codes.INVALID_CONN_HANDLE)
        if tag is not None and not isinstance(tag, str):
            raise TypeError(f"tag must be a string or None, not {type(tag).__name__}")
        if tag is None:
            # Without a tag cx_Oracle releases without retagging: the session keeps its tag.
            pool_tag = lease.tag if lease.tag is not None else conn._acquired_tag
        else:
            pool_tag = to_pool_tag(tag)
        check_tag(pool_tag)  # refused while the connection is still out: nothing is lost
        try:
            lease.release(pool_tag)
        except pool_errors.LeaseReleased as exc:
            raise make_error(DatabaseError, codes.INVALID_CONN_HANDLE) from exc
        except pool_errors.Error as exc:
            raise self._translate(exc) from exc

    def _exit(self, conn: Connection, exc: BaseException | None) -> None:
        lease = conn._lease
        if lease.is_released:
            return
        if lease.tag is None and conn._acquired_tag is not None:
            lease.tag = conn._acquired_tag
        check_tag(lease.tag)
        try:
            lease.__exit__(None if exc is None else type(exc), exc, None)
        except pool_errors.Error as error:
            raise self._translate(error) from error

    def _drop_quietly(self, lease: Lease) -> None:
        with contextlib.suppress(pool_errors.Error):  # released or force-closed already
            self._pool.drop(lease)

    # -- sessions: callbacks and set-up ------------------------------------------------------

    def _on_connect(self, raw: Any) -> None:
        """Every new connection (and every one a full reset renewed: a new session)."""
        if self._track_fresh:
            self._fresh.add(id(raw))
        self._backend.on_connect(raw, self._stmtcachesize)
        if self._user_on_connect is not None:
            self._user_on_connect(raw)

    def _on_tag_mismatch(self, lease: Lease, requested: str | None, actual: str | None) -> None:
        """sessionpool's session_callback: the session handed out carries another tag."""
        conn = self._connectiontype._wrap(lease, self)
        self._local.conn = conn  # the one acquire() returns
        if self._track_fresh:
            self._fresh.discard(id(lease.driver_connection))
        raw_requested = getattr(self._local, "requested", None)
        if raw_requested is None:
            raw_requested = from_pool_tag(requested)
        self._run_callback(conn, raw_requested, from_pool_tag(actual))

    def _after_new_session(self, conn: Connection, requested: str | None) -> None:
        """cx_Oracle also calls the callback for a brand-new session whose tag matched (no
        tag asked for): sessionpool's session_callback covers only mismatches."""
        raw_id = id(conn._lease.driver_connection)
        if raw_id in self._fresh:
            self._fresh.discard(raw_id)
            self._run_callback(conn, requested, conn.tag)

    def _run_callback(self, conn: Connection, requested: str | None, actual: str | None) -> None:
        callback = self._callback
        if isinstance(callback, str):
            cursor = conn._raw().cursor()
            try:
                cursor.callproc(callback, [requested, actual])
            finally:
                cursor.close()
            conn.tag = requested  # the PL/SQL fix-up leaves the session so tagged
        elif callback is not None:
            if self._callback_takes_actual:
                callback(conn, requested, actual)
            else:
                callback(conn, requested)

    # -- errors ------------------------------------------------------------------------------

    def _translate(self, error: pool_errors.Error, partition: Hashable = None) -> Error:
        """cx_Oracle's error for what the pool raised (codes: see the module docstring)."""
        detail = str(error)
        if isinstance(error, pool_errors.PoolExhausted):
            return make_error(DatabaseError, codes.CANNOT_OPEN_FURTHER, detail)
        if isinstance(error, pool_errors.PoolTimeout):
            cause = error.__cause__
            if cause is not None and is_driver_error(cause):
                return from_driver_error(cause, detail)  # connects failed while it waited
            return make_error(DatabaseError, self._timeout_code(partition), detail)
        if isinstance(error, pool_errors.PoolClosed):
            return make_error(DatabaseError, codes.NOT_CONNECTED, detail)
        if isinstance(error, pool_errors.PoolInUse):
            return make_error(DatabaseError, codes.DESTROY_FAILED, detail)
        if isinstance(error, pool_errors.LeaseReleased):
            return make_error(DatabaseError, codes.INVALID_CONN_HANDLE, detail)
        if isinstance(error, pool_errors.ConnectionDead):
            return make_error(OperationalError, None, detail)
        if isinstance(error, (pool_errors.UsageError, pool_errors.ConfigError)):
            return make_error(ProgrammingError, None, detail)
        return make_error(DatabaseError, None, detail)

    def _timeout_code(self, partition: Hashable) -> Any:
        if self._getmode != SPOOL_ATTRVAL_TIMEDWAIT:
            return codes.TIMED_OUT_CREATING  # NOWAIT/FORCEGET wait only for their own connect
        opened = self._pool.opened
        if partition is not None and self._max_sessions_per_shard and opened < self._max:
            return codes.TIMED_OUT_SHARD
        if opened < self._max:
            return codes.TIMED_OUT_CREATING
        return codes.TIMED_OUT_FREE
