"""The connection of the cx_Oracle face, and what each database makes of cx_Oracle's
per-connection words (``current_schema``, the statement cache size).

A `Connection` wraps a sessionpool lease; it forwards everything else to it (and so to the
driver). Translation only: releasing, dropping and every pool decision go to the pool.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .. import errors as pool_errors
from ._cx_oracle_errors import DatabaseError, InterfaceError, NotSupportedError, codes, make_error

if TYPE_CHECKING:
    from .._sync.lease import Lease
    from .cx_oracle import SessionPool

__all__ = ["Backend", "Connection", "backend_for", "check_tag", "from_pool_tag", "to_pool_tag"]

# A cx_Oracle tag is either a plain string ("readonly", as the seed writes it), matched as a
# whole, or properties "k1=v1;k2=v2" (Oracle Client 12.2's multi-property tags), matched in
# any order. sessionpool's tags are properties: a plain tag travels as this key's value.
_PLAIN_KEY = "cx_oracle.tag"
_PLAIN_PREFIX = _PLAIN_KEY + "="


def to_pool_tag(tag: str | None) -> str | None:
    """cx_Oracle's tag as sessionpool's (a plain tag becomes one property)."""
    if tag is None or not isinstance(tag, str) or "=" in tag or ";" in tag or not tag.strip():
        return tag  # properties (checked by the pool), "" (untag), None, or a wrong type
    return _PLAIN_PREFIX + tag


def check_tag(pool_tag: str | None) -> None:
    """Raise ORA-24488, as Oracle Client 12.2+ does, for a property tag with a part that is
    not ``name=value`` (a plain tag has already become one property)."""
    if not pool_tag:
        return
    for part in pool_tag.split(";"):
        name, sep, _ = part.partition("=")
        if part.strip() and (not sep or not name.strip()):
            raise make_error(
                DatabaseError, codes.INVALID_TAG, f"tag {pool_tag!r}: {part!r} is not name=value"
            )


def from_pool_tag(tag: str | None) -> str | None:
    """sessionpool's tag as cx_Oracle's."""
    if tag is not None and tag.startswith(_PLAIN_PREFIX) and ";" not in tag:
        return tag[len(_PLAIN_PREFIX) :]
    return tag


class Connection:
    """A connection acquired from a `SessionPool`: the pool's lease under cx_Oracle's names.

    Everything the driver connection has is reachable on it (``cursor()``, ``commit()``,
    the driver's attributes). ``close()`` and leaving ``with`` give it back to the pool, as
    in cx_Oracle; ``tag`` set before that retags the session; ``current_schema`` is set the
    way the database spells it (see `Backend`). After release, any use raises
    `InterfaceError` ("not connected"), as cx_Oracle does.

    A subclass passed as ``SessionPool(connectiontype=...)`` is what ``acquire()`` returns;
    its ``__init__`` is not called (the pool builds the connection).
    """

    __slots__ = ("_acquired_tag", "_lease", "_owner", "_schema")

    _lease: Lease
    _owner: SessionPool
    _acquired_tag: str | None
    _schema: str | None

    @classmethod
    def _wrap(cls, lease: Lease, owner: SessionPool) -> Connection:
        conn = cls.__new__(cls)
        object.__setattr__(conn, "_lease", lease)
        object.__setattr__(conn, "_owner", owner)
        # cx_Oracle's close() without retagging keeps the tag the session came with.
        object.__setattr__(conn, "_acquired_tag", lease.tag)
        object.__setattr__(conn, "_schema", None)
        return conn

    # -- cx_Oracle's own members ------------------------------------------------------------

    @property
    def tag(self) -> str | None:
        """The session's tag as handed out; set it before release to retag the session."""
        return from_pool_tag(self._lease.tag)

    @tag.setter
    def tag(self, value: str | None) -> None:
        if value is not None and not isinstance(value, str):
            raise TypeError(f"tag must be a string or None, not {type(value).__name__}")
        self._lease.tag = to_pool_tag(value)

    @property
    def current_schema(self) -> str | None:
        """The schema unqualified names resolve in (see `Backend.set_schema` per database)."""
        return self._owner._backend.get_schema(self, self._raw())

    @current_schema.setter
    def current_schema(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"current_schema must be a string, not {type(value).__name__}")
        self._owner._backend.set_schema(self, self._raw(), value)

    def close(self) -> None:
        """Give the connection back to its pool (cx_Oracle's close() of a pooled connection)."""
        self._owner._give_back(self, None, closing=True)

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._owner._exit(self, exc)

    def __repr__(self) -> str:
        state = "released" if self._lease.is_released else f"tag={self.tag!r}"
        return f"<{type(self).__module__}.{type(self).__qualname__} {state}>"

    # -- forwarding -------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)  # copy/pickle probes: not the driver's business
        lease = self._lease
        if lease.is_released:
            raise _not_connected()
        with _translated():
            value = getattr(lease, name)
        if not inspect.ismethod(value):
            return value  # an attribute (a driver connection itself may be callable)

        def call(*args: Any, **kwargs: Any) -> Any:
            # A method fetched before release and called after is refused as cx_Oracle does.
            with _translated():
                return value(*args, **kwargs)

        call.__name__ = name
        return call

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(getattr(type(self), name, None), property) or name in Connection.__slots__:
            object.__setattr__(self, name, value)
            return
        lease = self._lease
        if hasattr(type(lease), name):  # a forwarded driver attribute
            with _translated():
                setattr(lease, name, value)
            return
        object.__setattr__(self, name, value)  # a subclass's own attribute (or AttributeError)

    def _raw(self) -> Any:
        with _translated():
            return self._lease.driver_connection


@contextmanager
def _translated() -> Iterator[None]:
    """cx_Oracle's errors for using a connection released (InterfaceError "not connected")
    or force-closed with its pool (DPI-1010)."""
    try:
        yield
    except pool_errors.LeaseReleased:
        raise _not_connected() from None
    except pool_errors.PoolClosed:
        raise make_error(DatabaseError, codes.NOT_CONNECTED) from None


def _not_connected() -> InterfaceError:
    # What cx_Oracle raises for any use of a connection already closed or released.
    return make_error(InterfaceError, None, "not connected")


class Backend:
    """What one kind of database makes of cx_Oracle's words. The default: a driver sessionpool
    knows nothing more about (a ``creator``), where they cannot apply."""

    name = "this database"
    #: PL/SQL session callbacks and shard routing exist only in Oracle.
    is_oracle = False
    #: Whether an open connection's statement cache size can change (not sqlite3's).
    resizes_stmtcache = True

    def connect_args(
        self,
        stmtcachesize: int,
        edition: str | None,
        events: bool,
        externalauth: bool,
    ) -> dict[str, Any]:
        """Driver arguments for the pool's options, where the driver has them."""
        return {}

    def on_connect(self, raw: Any, stmtcachesize: int) -> None:
        """Set up a new connection (the statement cache where it is a connection attribute)."""

    def apply_stmtcachesize(self, raw: Any, size: int) -> bool:
        """Apply a changed statement cache size to an open connection; False if it cannot."""
        return True  # no statement cache here: nothing to change

    def get_schema(self, conn: Connection, raw: Any) -> str | None:
        return conn._schema

    def set_schema(self, conn: Connection, raw: Any, schema: str) -> None:
        raise make_error(
            NotSupportedError,
            None,
            f"current_schema cannot be set on {self.name}: sessionpool does not know how",
        )


class OracleBackend(Backend):
    """python-oracledb: every word is the driver's own."""

    name = "Oracle"
    is_oracle = True

    def connect_args(
        self, stmtcachesize: int, edition: str | None, events: bool, externalauth: bool
    ) -> dict[str, Any]:
        arguments: dict[str, Any] = {"stmtcachesize": stmtcachesize}
        if edition is not None:
            arguments["edition"] = edition
        if events:
            arguments["events"] = True
        if externalauth:
            arguments["externalauth"] = True
        return arguments

    def apply_stmtcachesize(self, raw: Any, size: int) -> bool:
        if raw.stmtcachesize != size:
            raw.stmtcachesize = size
        return True

    def get_schema(self, conn: Connection, raw: Any) -> str | None:
        return raw.current_schema  # type: ignore[no-any-return]

    def set_schema(self, conn: Connection, raw: Any, schema: str) -> None:
        raw.current_schema = schema


class PostgreSQLBackend(Backend):
    """psycopg 3 and psycopg2: the schema is the ``search_path``; psycopg 3's statement cache
    is its prepared statements (``prepared_max``); psycopg2 has none."""

    name = "PostgreSQL"

    def on_connect(self, raw: Any, stmtcachesize: int) -> None:
        self.apply_stmtcachesize(raw, stmtcachesize)

    def apply_stmtcachesize(self, raw: Any, size: int) -> bool:
        if not hasattr(raw, "prepared_max"):
            return True  # psycopg2 keeps no prepared statements
        if size == 0:
            # A cache of 0 turns statement caching off, as in cx_Oracle: never prepare.
            raw.prepare_threshold = None
        elif raw.prepared_max != size:
            raw.prepared_max = size
        return True

    def get_schema(self, conn: Connection, raw: Any) -> str | None:
        # The first schema of the search_path that exists, as PostgreSQL resolves names.
        idle = _pg_idle(raw)
        cursor = raw.cursor()
        try:
            cursor.execute("SELECT current_schema()")
            row = cursor.fetchone()
        finally:
            cursor.close()
        if idle:
            raw.rollback()  # leave no transaction open for a read of a setting
        return None if row is None else row[0]

    def set_schema(self, conn: Connection, raw: Any, schema: str) -> None:
        # Oracle's ALTER SESSION is not transactional; PostgreSQL's SET is. Outside a
        # transaction the setting is committed at once, so that the rollback on release
        # does not undo it and a tagged session keeps it, as in Oracle.
        idle = _pg_idle(raw)
        cursor = raw.cursor()
        try:
            cursor.execute("SELECT set_config('search_path', %s, false)", (schema,))
        finally:
            cursor.close()
        if idle:
            raw.commit()


def _pg_idle(raw: Any) -> bool:
    """No transaction open on a psycopg or psycopg2 connection (local status, no round trip)."""
    info = getattr(raw, "info", None)
    status = info.transaction_status if info is not None else raw.get_transaction_status()
    return int(status) == 0  # IDLE in both drivers


class MySQLBackend(Backend):
    """PyMySQL and mysqlclient: the schema is the current database (``USE``); neither keeps
    a client-side statement cache."""

    name = "MySQL/MariaDB"

    def get_schema(self, conn: Connection, raw: Any) -> str | None:
        cursor = raw.cursor()
        try:
            cursor.execute("SELECT DATABASE()")
            row = cursor.fetchone()
        finally:
            cursor.close()
        return None if row is None else row[0]

    def set_schema(self, conn: Connection, raw: Any, schema: str) -> None:
        raw.select_db(schema)  # the protocol's USE: not transactional, as in Oracle


class SQLiteBackend(Backend):
    """sqlite3: its statement cache (``cached_statements``) is set when a connection opens.
    SQLite has no current schema to set (attached databases are only ever named)."""

    name = "SQLite"
    resizes_stmtcache = False

    def __init__(self) -> None:
        self.warned_schema = False

    def connect_args(
        self, stmtcachesize: int, edition: str | None, events: bool, externalauth: bool
    ) -> dict[str, Any]:
        return {"cached_statements": stmtcachesize}

    def apply_stmtcachesize(self, raw: Any, size: int) -> bool:
        return False  # sqlite3 fixes it at connect

    def set_schema(self, conn: Connection, raw: Any, schema: str) -> None:
        # Kept, so that reading it back gives what was set, and said once: SQLite resolves
        # unqualified names in main, temp and attached databases, whatever this says.
        object.__setattr__(conn, "_schema", schema)
        if not self.warned_schema:
            self.warned_schema = True
            warnings.warn(
                f"current_schema = {schema!r} has no effect on SQLite, which has no current "
                "schema; qualify names with an attached database's name instead",
                UserWarning,
                stacklevel=3,
            )


def backend_for(dialect: str) -> Backend:
    """The backend for a sessionpool URL's dialect (``oracle`` for an Oracle DSN)."""
    if dialect == "oracle":
        return OracleBackend()
    if dialect in ("postgresql", "postgres", "pgsql"):
        return PostgreSQLBackend()
    if dialect in ("mysql", "mariadb"):
        return MySQLBackend()
    if dialect == "sqlite":
        return SQLiteBackend()
    return Backend()
