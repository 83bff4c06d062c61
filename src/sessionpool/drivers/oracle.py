"""Oracle through python-oracledb in thin mode (``oracle://``, ``oracle+oracledb://`` and the
cx_Oracle name ``oracle+cx_oracle://``): call-timeout-bounded checks and disconnect codes.

Oracle keeps session state across release on purpose (NLS settings, package state); a full
reset is a new session, which is what cx_Oracle's ``purity=NEW`` asks of the database.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from ..errors import ConnectionDead
from ..url import URL
from .base import ArgumentKind, URLDriver, convert_arguments, with_credentials

__all__ = ["OracleDriver", "is_oracle_disconnect"]

T = TypeVar("T")

# Codes after which the session is gone: not connected (DPY-1001, DPI-1010), closed by the
# database or network (DPY-4011, DPI-1080), cannot connect (DPY-6005), session killed
# (ORA-00028), not logged on (ORA-01012), instance down or starting (ORA-01033, 01034, 01089,
# 01090, 01092), idle time exceeded (ORA-02396, the idle-kill), end-of-file on the channel
# and lost contact (ORA-03113, 03114, 03135), TNS failures (ORA-12153, 12537, 12547, 12570,
# 12571), and DRCP/replay failures (ORA-25408). A cancelled call (ORA-01013) keeps it usable.
_DEAD_CODES = frozenset(
    [
        "DPY-1001",
        "DPY-4011",
        "DPY-6005",
        "DPI-1010",
        "DPI-1080",
        "ORA-00028",
        "ORA-01012",
        "ORA-01033",
        "ORA-01034",
        "ORA-01089",
        "ORA-01090",
        "ORA-01092",
        "ORA-02396",
        "ORA-03113",
        "ORA-03114",
        "ORA-03135",
        "ORA-12153",
        "ORA-12537",
        "ORA-12547",
        "ORA-12570",
        "ORA-12571",
        "ORA-25408",
    ]
)
_CODE = re.compile(r"\b((?:ORA|DPY|DPI)-\d{4,5})\b")
# URL query keys that may be written as strings and need another type.
_KINDS: dict[str, ArgumentKind | None] = {
    "port": int,
    "https_proxy_port": int,
    "expire_time": int,
    "retry_count": int,
    "retry_delay": int,
    "tcp_connect_timeout": float,
    "stmtcachesize": int,
    "sdu": int,
    "ssl_server_dn_match": bool,
    "events": bool,
    "externalauth": bool,
    "disable_oob": bool,
    "use_tcp_fast_open": bool,
    "use_sni": bool,
}


def is_oracle_disconnect(error: BaseException) -> bool:
    """Whether an oracledb error means the session is dead (not a SQL error)."""
    detail = error.args[0] if error.args else None
    code = getattr(detail, "full_code", None)
    if not code:
        match = _CODE.search(str(error))
        code = match.group(1) if match else None
    return code in _DEAD_CODES


class OracleDriver(URLDriver):
    """python-oracledb connections."""

    name = "oracledb"
    extra = "oracle"
    connect_timeout_argument = "tcp_connect_timeout"

    def arguments_from_url(self, url: URL, connect_args: dict[str, Any]) -> dict[str, Any]:
        assert self.module is not None
        values: dict[str, Any] = {}
        if url.host is not None:
            values["host"] = url.host
        if url.port is not None:
            values["port"] = url.port
        if url.database is not None:
            values["service_name"] = url.database
        if url.username is not None:
            values["user"] = url.username
        if url.password is not None:
            values["password"] = url.password
        values.update(url.query)
        values.update(connect_args)
        kinds: dict[str, ArgumentKind | None] = {
            name: str
            for name in _parameter_names(self.module.connect)
            if name not in ("pool", "pool_alias", "conn_class", "params")
        }
        kinds.update({name: kind for name, kind in _KINDS.items() if name in kinds})
        kinds["dsn"] = str
        return convert_arguments(values, kinds, self.name)

    def open(self, arguments: dict[str, Any], user: str | None, password: str | None) -> Any:
        assert self.module is not None
        return self.module.connect(**with_credentials(arguments, user, password))

    def is_closed(self, connection: Any) -> bool:
        return not connection.is_healthy()

    def in_transaction(self, connection: Any) -> bool:
        return bool(getattr(connection, "transaction_in_progress", True))

    @contextmanager
    def time_limit(self, connection: Any, timeout: float) -> Iterator[None]:
        # oracledb has its own per-round-trip limit; no socket to cut.
        previous = connection.call_timeout
        connection.call_timeout = max(1, int(timeout * 1000))
        try:
            yield
        finally:
            if not self.is_closed(connection):
                connection.call_timeout = previous

    def call_within(self, connection: Any, timeout: float, function: Callable[[], T]) -> T:
        with self.time_limit(connection, timeout):
            return function()

    def ping(self, connection: Any, timeout: float) -> None:
        if self.is_closed(connection):
            raise ConnectionDead("the driver reports the connection closed")
        with self.time_limit(connection, timeout):
            connection.ping()

    def is_disconnect(self, error: BaseException, connection: Any = None) -> bool:
        return super().is_disconnect(error, connection) or is_oracle_disconnect(error)


def _parameter_names(function: Any) -> list[str]:
    return [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
    ]
