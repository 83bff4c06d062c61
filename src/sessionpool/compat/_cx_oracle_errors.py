"""cx_Oracle's error conventions for the cx_Oracle face: the PEP 249 exception classes, the
error object cx_Oracle puts in ``args[0]``, and the translation of what the pool raises.

Translation only: the codes are chosen from the pool's own error and figures, never by
deciding anything about the pool. The codes and why each was chosen are in `cx_oracle`'s
module docstring.
"""

from __future__ import annotations

from typing import NamedTuple, TypeVar

from .. import errors as pool_errors

__all__ = [
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "Warning",
    "codes",
    "is_driver_error",
    "make_error",
    "from_driver_error",
]

_MODULE = "sessionpool.compat.cx_oracle"


class _Error:
    """What cx_Oracle puts in ``exception.args[0]``: ``error_obj, = e.args``.

    ``code`` is the Oracle error number (0 for errors of the client library itself, the
    ``DPI-`` ones, as in cx_Oracle); ``full_code`` the prefixed code python-oracledb adds
    ("ORA-24418", "DPI-1010", "" when there is none); ``message`` the full text, starting
    with the prefixed code when there is one.
    """

    __slots__ = ("code", "context", "full_code", "isrecoverable", "message", "offset")

    def __init__(
        self,
        message: str,
        code: int = 0,
        full_code: str = "",
        context: str | None = None,
        isrecoverable: bool = False,
    ) -> None:
        self.message = message
        self.code = code
        self.full_code = full_code
        self.context = context
        self.isrecoverable = isrecoverable
        self.offset = 0

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"<_Error {self.full_code or self.code}: {self.message.splitlines()[0]!r}>"


# PEP 249's hierarchy, under cx_Oracle's names.
class Warning(Exception):  # the DB-API name (shadows the builtin here only)
    """Important warnings (DB-API)."""


class Error(Exception):
    """Base class of the errors this face raises (DB-API)."""


class InterfaceError(Error):
    """Misuse of the interface, such as using a connection after it was released."""


class DatabaseError(Error):
    """Errors of the database or the pool; ``args[0]`` carries ``code`` and ``message``."""


class DataError(DatabaseError):
    """Problems with the processed data (DB-API)."""


class OperationalError(DatabaseError):
    """The database's operation failed (lost connection, cannot connect...)."""


class IntegrityError(DatabaseError):
    """A constraint was violated (DB-API)."""


class InternalError(DatabaseError):
    """The database reported an internal error (DB-API)."""


class ProgrammingError(DatabaseError):
    """Wrong arguments or use (DB-API)."""


class NotSupportedError(DatabaseError):
    """What cannot apply to this database or driver."""


for _cls in (
    Warning,
    Error,
    InterfaceError,
    DatabaseError,
    DataError,
    OperationalError,
    IntegrityError,
    InternalError,
    ProgrammingError,
    NotSupportedError,
):
    _cls.__module__ = _MODULE
del _cls


class Code(NamedTuple):
    """An error cx_Oracle raises: its number, prefixed code and text."""

    number: int
    full_code: str
    text: str


class codes:  # a namespace of constants
    """The codes this face raises, each the one cx_Oracle 8 (ODPI-C over the Oracle Client)
    raises for the same situation. Sources are in `cx_oracle`'s docstring."""

    CANNOT_OPEN_FURTHER = Code(24418, "ORA-24418", "Cannot open further sessions.")
    TIMED_OUT_FREE = Code(
        24496, "ORA-24496", "OCISessionGet() timed out waiting for a free connection."
    )
    TIMED_OUT_CREATING = Code(
        24459, "ORA-24459", "OCISessionGet() timed out waiting for pool to create new connections"
    )
    TIMED_OUT_SHARD = Code(
        24458,
        "ORA-24458",
        "OCISessionGet() timed out trying to find a free session to the desired shard and "
        "max connections per shard limit is reached",
    )
    DESTROY_FAILED = Code(
        24422, "ORA-24422", "error occurred while trying to destroy the Session Pool"
    )
    INVALID_SESSIONS = Code(24413, "ORA-24413", "Invalid number of sessions specified")
    INVALID_TAG = Code(
        24488, "ORA-24488", "Invalid properties or values provided for OCISessionGet"
    )
    NOT_CONNECTED = Code(0, "DPI-1010", "not connected")
    INVALID_CONN_HANDLE = Code(0, "DPI-1002", "invalid dpiConn handle")
    PROXY_HOMOGENEOUS = Code(
        0, "DPI-1012", "proxy authentication is not possible with homogeneous pools"
    )


E = TypeVar("E", bound="Error")


def make_error(
    kind: type[E], code: Code | None, detail: str | None = None, context: str | None = None
) -> E:
    """An exception of ``kind`` as cx_Oracle builds it: ``args[0]`` is the error object.

    ``detail`` (sessionpool's own message, with its figures) follows the code's text on a
    second line, as python-oracledb appends its help lines; without a code it is the message.
    """
    if code is None:
        message, number, full_code = detail or "", 0, ""
    else:
        message = f"{code.full_code}: {code.text}"
        if detail:
            message += "\n" + detail
        number, full_code = code.number, code.full_code
    return kind(_Error(message, number, full_code, context))


# DB-API class names, most specific first: a driver error becomes the face's class of the
# same name.
_BY_NAME: dict[str, type[Error]] = {
    "IntegrityError": IntegrityError,
    "DataError": DataError,
    "NotSupportedError": NotSupportedError,
    "ProgrammingError": ProgrammingError,
    "InternalError": InternalError,
    "OperationalError": OperationalError,
    "InterfaceError": InterfaceError,
    "DatabaseError": DatabaseError,
}


def is_driver_error(error: BaseException) -> bool:
    """Whether ``error`` is a DB-API driver's error (some class named ``Error`` outside the
    standard library and sessionpool in its ancestry), as opposed to a bug in a callback."""
    if isinstance(error, (Error, pool_errors.Error)) or not isinstance(error, Exception):
        return False
    for klass in type(error).__mro__:
        module = klass.__module__
        if klass.__name__ == "Error" and module not in ("builtins",):
            return not module.startswith("sessionpool")
    return False


def from_driver_error(error: BaseException, detail: str | None = None) -> Error:
    """The face's error for a driver's error: the DB-API class of the same name, the driver's
    code where it has an Oracle one (python-oracledb's error object), else its message."""
    kind: type[Error] = DatabaseError
    for klass in type(error).__mro__:
        found = _BY_NAME.get(klass.__name__)
        if found is not None:
            kind = found
            break
    inner = error.args[0] if error.args else None
    code = getattr(inner, "code", None)
    full_code = getattr(inner, "full_code", None)
    message = str(error)
    if detail:
        message += "\n" + detail
    if isinstance(code, int) and isinstance(full_code, str):
        recoverable = bool(getattr(inner, "isrecoverable", False))
        return kind(_Error(message, code, full_code, getattr(inner, "context", None), recoverable))
    return kind(_Error(message))
