"""Arguments of the cx_Oracle face: cx_Oracle's constants, the dsn and credentials, and the
checks cx_Oracle makes (its TypeErrors, ORA-24413). No pool state; nothing here connects."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from .. import errors as pool_errors
from ..url import URL, parse_url
from ._cx_oracle_connection import Backend, OracleBackend, backend_for
from ._cx_oracle_errors import DatabaseError, ProgrammingError, codes, make_error

__all__ = [
    "ATTR_PURITY_DEFAULT",
    "ATTR_PURITY_NEW",
    "ATTR_PURITY_SELF",
    "DEFAULT_WAIT_TIMEOUT_MS",
    "PURITIES",
    "SPOOL_ATTRVAL_FORCEGET",
    "SPOOL_ATTRVAL_NOWAIT",
    "SPOOL_ATTRVAL_TIMEDWAIT",
    "SPOOL_ATTRVAL_WAIT",
    "WHEN_EXHAUSTED",
    "check_bool",
    "check_getmode",
    "check_int",
    "check_sizes",
    "non_negative",
    "one_of",
    "takes_three",
    "target",
]

# cx_Oracle's values (ODPI-C's dpiPoolGetMode and dpiPurity, as python-oracledb has them).
SPOOL_ATTRVAL_WAIT = 0
SPOOL_ATTRVAL_NOWAIT = 1
SPOOL_ATTRVAL_FORCEGET = 2
SPOOL_ATTRVAL_TIMEDWAIT = 3
ATTR_PURITY_DEFAULT = 0
ATTR_PURITY_NEW = 1
ATTR_PURITY_SELF = 2

WHEN_EXHAUSTED = {
    SPOOL_ATTRVAL_WAIT: "wait",
    SPOOL_ATTRVAL_NOWAIT: "fail",
    SPOOL_ATTRVAL_FORCEGET: "force",
    SPOOL_ATTRVAL_TIMEDWAIT: "wait",
}
PURITIES: dict[int, str | None] = {
    ATTR_PURITY_DEFAULT: None,
    ATTR_PURITY_NEW: "new",
    ATTR_PURITY_SELF: "self",
}
#: What cx_Oracle reports, and OCI waits, for a TIMEDWAIT pool whose wait_timeout is 0.
DEFAULT_WAIT_TIMEOUT_MS = 5000
# Easy Connect Plus protocols: "tcps://host/service" is an Oracle DSN, not a sessionpool URL.
EASY_CONNECT_PROTOCOLS = frozenset({"tcp", "tcps"})


def target(
    user: str | None, password: str | None, dsn: str | None
) -> tuple[Backend, URL, str, str | None, dict[str, Any]]:
    """The backend, the URL to open, the dsn to show, the username, and dsn arguments."""
    if not isinstance(dsn, str) or not dsn.strip():
        raise make_error(
            ProgrammingError, None, "dsn must be a sessionpool URL or an Oracle DSN string"
        )
    user = user or None
    password = password or None
    scheme, found, _ = dsn.partition("://")
    if found and scheme.lower() not in EASY_CONNECT_PROTOCOLS:
        try:
            url = parse_url(dsn)
        except pool_errors.ConfigError as exc:
            raise make_error(ProgrammingError, None, str(exc)) from exc
        if url.dialect == "sqlite":
            return backend_for("sqlite"), url, url.render(), user, {}
        if url.username is None:
            url = dataclasses.replace(url, username=user, password=password)
        elif url.password is None and password is not None and user in (None, url.username):
            url = dataclasses.replace(url, password=password)
        return backend_for(url.dialect), url, url.render(), url.username, {}
    url = URL("oracle", "oracledb", username=user, password=password)
    return OracleBackend(), url, dsn, user, {"dsn": dsn}


def one_of(old_name: str, old: Any, new_name: str, new: Any) -> Any:
    if old is not None and new is not None:
        raise make_error(
            ProgrammingError, None, f"{old_name} and {new_name} cannot both be specified"
        )
    return new if new is not None else old


def check_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")


def non_negative(name: str, value: object) -> int:
    check_int(name, value)
    assert isinstance(value, int)
    if value < 0:
        raise make_error(ProgrammingError, None, f"{name} must be >= 0 (got {value})")
    return value


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a boolean, not {type(value).__name__}")
    return value


def check_sizes(min_sessions: int, max_sessions: int, increment: int) -> None:
    if min_sessions < 0 or max_sessions < 1 or increment < 0 or min_sessions > max_sessions:
        raise make_error(
            DatabaseError,
            codes.INVALID_SESSIONS,
            f"min={min_sessions}, max={max_sessions}, increment={increment}: need "
            "0 <= min <= max, max >= 1, increment >= 0",
        )


def check_getmode(value: object) -> int:
    check_int("getmode", value)
    if value not in WHEN_EXHAUSTED:
        raise make_error(
            ProgrammingError,
            None,
            f"getmode must be one of SPOOL_ATTRVAL_WAIT, _NOWAIT, _FORCEGET or _TIMEDWAIT "
            f"(0-3), not {value!r}",
        )
    return int(value)


def takes_three(callback: Callable[..., object]) -> bool:
    """Whether a session callback takes (connection, requested_tag, actual_tag), as the
    seed's examples are written, rather than cx_Oracle's (connection, requested_tag)."""
    try:
        inspect.signature(callback).bind(None, None, None)
    except TypeError:
        return False
    except ValueError:  # no signature to inspect (a builtin): cx_Oracle's two arguments
        return False
    return True
