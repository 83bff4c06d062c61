"""URL: parsing and rendering of ``dialect[+driver]://user:password@host:port/database?k=v``.

Pure string handling: no driver import, no I/O. The password is kept out of every repr, str
and message built here; `scrub_secrets` removes it from text that came from elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, unquote

from .errors import ConfigError

__all__ = ["URL", "parse_url", "scrub_secrets"]

MASK = "***"
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9_.+-]*)://(?P<rest>.*)$", re.DOTALL)
_BRACKETED_HOST = re.compile(r"^\[(?P<host>[^\]]*)\](?::(?P<port>[^:]*))?$")
# Query keys whose values are secrets as well (libpq's sslpassword, oracledb's
# wallet_password, tokens): masked like the password.
_SECRET_KEYS = frozenset({"password", "passwd", "sslpassword", "wallet_password", "token"})


@dataclass(frozen=True, eq=True)
class URL:
    """A parsed database URL. Immutable; its repr and str never show secrets.

    ``host`` may be a unix-socket directory or path (it then starts with ``/``); ``query``
    holds what followed ``?``, percent-decoded, as strings.
    """

    dialect: str
    driver: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "query", MappingProxyType(dict(self.query)))

    @property
    def drivername(self) -> str:
        """``dialect`` or ``dialect+driver``, as written before ``://``."""
        return self.dialect if self.driver is None else f"{self.dialect}+{self.driver}"

    def render(self, *, hide_secrets: bool = True) -> str:
        """The URL as text; secrets are replaced by ``***`` unless ``hide_secrets=False``."""
        text = f"{self.drivername}://"
        if self.username is not None or self.password is not None:
            text += quote(self.username or "", safe="")
            if self.password is not None:
                text += ":" + (MASK if hide_secrets else quote(self.password, safe=""))
            text += "@"
        if self.host is not None:
            text += f"[{self.host}]" if ":" in self.host else quote(self.host, safe="")
        if self.port is not None:
            text += f":{self.port}"
        if self.database is not None:
            text += "/" + quote(self.database, safe="/:")
        if self.query:
            pairs = []
            for key, value in self.query.items():
                if hide_secrets and key.lower() in _SECRET_KEYS:
                    shown = MASK
                else:
                    shown = quote(value, safe="/:")
                pairs.append(f"{quote(key, safe='')}={shown}")
            text += "?" + "&".join(pairs)
        return text

    def without_query(self, names: Iterable[str]) -> URL:
        """A copy without these query keys."""
        drop = set(names)
        return replace(self, query={k: v for k, v in self.query.items() if k not in drop})

    def secrets(self) -> list[str]:
        """Every secret this URL carries (the password and secret query values)."""
        found = [self.password] if self.password else []
        found += [v for k, v in self.query.items() if k.lower() in _SECRET_KEYS and v]
        return found

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"URL({self.render()!r})"

    def __reduce__(self) -> Any:
        # Pickles end up in caches, queues and logs; a URL carries a password.
        raise TypeError("a sessionpool URL holds credentials and cannot be pickled")


def parse_url(text: str | URL) -> URL:
    """Parse a database URL.

    Accepted forms: ``dialect[+driver]://[user[:password]@][host][:port][/database][?k=v&...]``
    with percent-encoding anywhere, IPv6 hosts in brackets (``[::1]:5432``), a unix socket as
    a percent-encoded path in the host (``%2Fvar%2Frun%2Fpostgresql``) or in the query
    (``?host=/var/run/postgresql``, ``?unix_socket=...``). For SQLite the path follows the
    third slash: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, and ``sqlite://`` or
    ``sqlite:///:memory:`` for an in-memory database.

    Raises:
        ConfigError: the text is not such a URL (the message never shows the password).
    """
    if isinstance(text, URL):
        return text
    if not isinstance(text, str):
        raise ConfigError(f"url must be a string, not {type(text).__name__}")
    match = _SCHEME.match(text.strip())
    if match is None:
        raise ConfigError(
            f"url {_masked_raw(text)!r} is not a database URL; expected "
            "'dialect[+driver]://user:password@host:port/database', e.g. "
            "'postgresql://app@localhost/app' or 'sqlite:///app.db'"
        )
    dialect, _, driver = match["scheme"].lower().partition("+")
    rest = match["rest"]
    rest, _, query_text = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    query = _parse_query(query_text, text)
    if dialect == "sqlite":
        if netloc:
            raise ConfigError(
                f"url {_masked_raw(text)!r}: a SQLite URL has no host; write "
                "'sqlite:///relative.db', 'sqlite:////absolute.db' or 'sqlite://' (memory)"
            )
        database = unquote(path) if slash and path else None
        return URL(dialect, driver or None, database=database, query=query)
    userinfo, at, hostport = netloc.rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if colon else None
    host, port = _parse_host_port(hostport, text)
    database = unquote(path) if path else None
    return URL(dialect, driver or None, username, password, host, port, database, query)


def _parse_host_port(hostport: str, text: str) -> tuple[str | None, int | None]:
    bracketed = _BRACKETED_HOST.match(hostport)
    if bracketed is not None:
        host: str | None = bracketed["host"]
        port_text = bracketed["port"]
    elif hostport.count(":") > 1:
        raise ConfigError(
            f"url {_masked_raw(text)!r}: put an IPv6 host in brackets, e.g. '[::1]:5432'"
        )
    else:
        host_text, _, port_text = hostport.partition(":")
        host = unquote(host_text) or None
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(
            f"url {_masked_raw(text)!r}: port must be a number from 1 to 65535 (got {port_text!r})"
        )
    return host, int(port_text)


def _parse_query(query_text: str, text: str) -> dict[str, str]:
    query: dict[str, str] = {}
    if not query_text:
        return query
    for pair in query_text.split("&"):
        if not pair:
            continue
        key_text, _, value_text = pair.partition("=")
        key = unquote(key_text.replace("+", " "))
        if key in query:
            raise ConfigError(f"url {_masked_raw(text)!r}: query key {key!r} is given twice")
        query[key] = unquote(value_text.replace("+", " "))
    return query


def _masked_raw(text: str) -> str:
    """Unparsed URL text with anything that may be a password masked, for error messages."""
    if not isinstance(text, str):
        return f"<{type(text).__name__}>"
    # Hide the whole userinfo, up to the last "@": with a malformed scheme or a password
    # holding "/", "#" or "?", nothing else tells where the password ends.
    text = re.sub(r"^([A-Za-z][A-Za-z0-9_.+-]*:/{0,2})?.*@", rf"\1{MASK}@", text, flags=re.DOTALL)
    return re.sub(
        r"((?:^|[?&])(?:password|passwd|sslpassword|wallet_password|token)=)[^&]*",
        rf"\1{MASK}",
        text,
        flags=re.IGNORECASE,
    )


def scrub_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret (raw or percent-encoded) masked."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, MASK)
    return text
