"""URL: parsing and rendering of ``dialect[+driver]://user:password@host:port/database?k=v``
(one host, or several: ``host1:port1,host2:port2``).

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
_SECRET_KEYS = frozenset({"password", "passwd", "pwd", "sslpassword", "wallet_password", "token"})


@dataclass(frozen=True, eq=True)
class URL:
    """A parsed database URL. Immutable; its repr and str never show secrets.

    ``host`` may be a unix-socket directory or path (it then starts with ``/``); ``query``
    holds what followed ``?``, percent-decoded, as strings.

    ``hosts`` lists every ``(host, port)`` of a multi-host URL, in order; ``host`` and
    ``port`` are always its first entry (so code that knows one host keeps working). With one
    host, ``host``/``port`` are what counts and ``hosts`` follows them; to change the hosts of
    a URL use `with_hosts`.
    """

    dialect: str
    driver: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    host: str | None = None
    port: int | None = None
    database: str | None = None
    query: Mapping[str, str] = field(default_factory=dict)
    hosts: tuple[tuple[str | None, int | None], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "query", MappingProxyType(dict(self.query)))
        hosts = tuple((host, port) for host, port in self.hosts)
        first = (self.host, self.port)
        if len(hosts) > 1 or (hosts and first == (None, None)):
            if first != (None, None) and first != hosts[0]:
                raise ConfigError(
                    f"URL host/port {first} must be the first entry of hosts {hosts}; "
                    "change the hosts with URL.with_hosts()"
                )
            _check_host_list(hosts)
            object.__setattr__(self, "host", hosts[0][0])
            object.__setattr__(self, "port", hosts[0][1])
        else:
            # One host (or none): host/port are authoritative, so dataclasses.replace(url,
            # host=...) keeps working as it did before host lists existed.
            hosts = () if first == (None, None) else (first,)
        object.__setattr__(self, "hosts", hosts)

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
        text += ",".join(_render_host(host, port) for host, port in self.hosts)
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

    def with_hosts(self, hosts: Iterable[tuple[str | None, int | None]]) -> URL:
        """A copy naming these ``(host, port)`` pairs, in this order.

        Raises:
            ConfigError: a host of a list of several is empty.
        """
        listed = tuple(hosts)
        first = listed[0] if listed else (None, None)
        return replace(self, host=first[0], port=first[1], hosts=listed)

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


@dataclass(frozen=True)
class _Source:
    """The raw text of the URL being parsed, as its error messages may show it."""

    masked: str  # the whole text, userinfo and secret query values masked (_masked_raw)
    trusted: bool  # every "@" is in the authority: pieces after it hold no password

    def error(self, problem: str) -> ConfigError:
        """A `ConfigError` quoting the masked text, then saying what is wrong."""
        hint = ""
        if not self.trusted:
            hint = " (if a user name or password holds '/' or '?', percent-encode it: '%2F', '%3F')"
        return ConfigError(f"url {self.masked!r}: {problem}{hint}")

    def quote(self, piece: str) -> str:
        """``piece`` quoted for a message, or a placeholder when it may hold the password."""
        return repr(piece) if self.trusted else "(not shown: it may be part of a password)"


def parse_url(text: str | URL) -> URL:
    """Parse a database URL.

    Accepted forms: ``dialect[+driver]://[user[:password]@][host][:port][/database][?k=v&...]``
    with percent-encoding anywhere, IPv6 hosts in brackets (``[::1]:5432``), a unix socket as
    a percent-encoded path in the host (``%2Fvar%2Frun%2Fpostgresql``) or in the query
    (``?host=/var/run/postgresql``, ``?unix_socket=...``). Several hosts, tried in order:
    ``h1:5432,h2:5433`` before the path, or libpq's ``?host=h1,h2&port=5432,5433`` (one port
    for all hosts, or one per host; an IPv6 host may be bracketed there too,
    ``?host=[::1],db2``); query ``host`` and ``port`` move into `URL.hosts`. A zone id is
    written ``%25`` in brackets (``[fe80::1%25eth0]``, RFC 6874). A ``/`` or ``?`` in a user
    name or password must be percent-encoded (``%2F``, ``%3F``), and so must an ``@`` after the
    host, in the database name or a query key (``%40``). For SQLite the path follows the third
    slash: ``sqlite:///relative.db``, ``sqlite:////absolute.db``, and ``sqlite://`` or
    ``sqlite:///:memory:`` for an in-memory database.

    Raises:
        ConfigError: the text is not such a URL. The message never shows the password, nor
            any piece of the text that may be part of it (a password holding an unencoded
            ``/`` or ``?`` ends the authority early, so pieces are not quoted then).
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
    before_query, _, query_text = rest.partition("?")
    netloc, slash, path = before_query.partition("/")
    # The authority ends at the first "/" or "?", the credentials at its last "@". An "@"
    # further on means an unencoded "/" or "?" may have cut the password short, and then any
    # piece of the text may be part of it: errors quote no piece (see _Source).
    source = _Source(_masked_raw(text), trusted="@" not in rest[len(netloc) :])
    query = _parse_query(query_text, source)
    if dialect == "sqlite":
        if netloc:
            raise source.error(
                "a SQLite URL has no host; write 'sqlite:///relative.db', "
                "'sqlite:////absolute.db' or 'sqlite://' (memory)"
            )
        database = unquote(path) if slash and path else None
        return URL(dialect, driver or None, database=database, query=query)
    if "@" in path or any("@" in key for key in query):
        # No database name or driver option holds an "@": this is a cut password (or user
        # name), which would otherwise end up in URL.database, shown by str(url).
        raise source.error(
            "an unencoded '@' follows the host (in the database name or a query key); "
            "write a literal '@' there as '%40'"
        )
    userinfo, at, hostport = netloc.rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if colon else None
    hosts = _parse_hosts(hostport, query, source)
    database = unquote(path) if path else None
    return URL(
        dialect, driver or None, username, password, database=database, query=query, hosts=hosts
    )


def _parse_hosts(
    hostport: str, query: dict[str, str], source: _Source
) -> tuple[tuple[str | None, int | None], ...]:
    """Every (host, port) of the URL: from the authority (``h1:p1,h2:p2``) or libpq's query
    form (``?host=h1,h2&port=p1,p2``, whose keys are taken out of ``query``)."""
    hosts = [_parse_host_port(item, source) for item in hostport.split(",")] if hostport else []
    if len(hosts) > 1:
        for index, (host, _) in enumerate(hosts, 1):
            if host is None:
                raise source.error(
                    f"host {index} of {len(hosts)} in the host list is empty; "
                    "write 'host1:port1,host2:port2'"
                )
    if "host" in query:
        if hosts and any(host is not None for host, _ in hosts):
            raise source.error("the host is given both before the path and as ?host=; give it once")
        ports = [port for _, port in hosts]
        hosts = [(_query_host(item, source), None) for item in query.pop("host").split(",")]
        if len(hosts) > 1 and any(host is None for host, _ in hosts):
            raise source.error("?host= lists an empty host; write '?host=host1,host2'")
        if any(port is not None for port in ports):
            # 'postgresql://:5433/db?host=/tmp': the authority's port goes with the query host
            hosts = _with_ports(hosts, ports, source)
    if "port" in query:
        if any(port is not None for _, port in hosts):
            raise source.error(
                "the port is given both in the host list and as ?port=; give it once"
            )
        port_texts = query.pop("port").split(",")
        ports = [_parse_port(item, source) if item else None for item in port_texts]
        hosts = _with_ports(hosts or [(None, None)], ports, source)
    return tuple(hosts)


def _query_host(item: str, source: _Source) -> str | None:
    """One host of libpq's ``?host=`` list, already percent-decoded with the query; an IPv6
    address may come in brackets (``?host=[::1],db2``), which are not part of the host."""
    if item.startswith("[") or item.endswith("]"):
        inner = item[1:-1]
        if not (item.startswith("[") and item.endswith("]")) or "[" in inner or "]" in inner:
            raise source.error(
                "?host= holds a bracket that does not enclose a whole host; write "
                "'?host=[::1],db2' and give the ports in ?port="
            )
        item = inner
    return item or None


def _with_ports(
    hosts: list[tuple[str | None, int | None]], ports: list[int | None], source: _Source
) -> list[tuple[str | None, int | None]]:
    """Hosts with these ports: one port for all of them, or one per host (libpq's rule)."""
    if len(ports) == 1:
        ports = ports * len(hosts)
    if len(ports) != len(hosts):
        raise source.error(
            f"{len(hosts)} host(s) but {len(ports)} ports; give one port for every host, "
            "or a single port for all"
        )
    return [(host, port) for (host, _), port in zip(hosts, ports, strict=True)]


def _check_host_list(hosts: tuple[tuple[str | None, int | None], ...]) -> None:
    """Raise `ConfigError` when a list of several hosts has an empty one."""
    if len(hosts) < 2:
        return
    for index, (host, _) in enumerate(hosts, 1):
        if not host:
            raise ConfigError(f"hosts: host {index} of {len(hosts)} is empty")


def _render_host(host: str | None, port: int | None) -> str:
    if host is None:
        text = ""
    elif ":" in host and not host.startswith("/"):
        # An IPv6 address, in brackets; "%" (a zone id, 'fe80::1%eth0') becomes "%25" as
        # RFC 6874 says, and nothing in it can end the authority.
        text = "[" + quote(host, safe=":") + "]"
    else:
        text = quote(host, safe="")  # a name, an IPv4 address, a socket path ('%2Ftmp')
    return text if port is None else f"{text}:{port}"


def _parse_host_port(hostport: str, source: _Source) -> tuple[str | None, int | None]:
    bracketed = _BRACKETED_HOST.match(hostport)
    if bracketed is not None:
        host = unquote(bracketed["host"]) or None  # '%25' is a zone id's '%' (RFC 6874)
        port_text = bracketed["port"]
    elif hostport.startswith("["):
        raise source.error("write an IPv6 host as '[address]' or '[address]:port'")
    elif hostport.count(":") > 1:
        raise source.error("put an IPv6 host in brackets, e.g. '[::1]:5432'")
    else:
        host_text, _, port_text = hostport.partition(":")
        host = unquote(host_text) or None
    if not port_text:
        return host, None
    return host, _parse_port(port_text, source)


def _parse_port(port_text: str, source: _Source) -> int:
    # isascii: str.isdigit() also accepts '²' (which int() refuses) and other scripts' digits
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise source.error(f"port must be a number from 1 to 65535 (got {source.quote(port_text)})")
    return int(port_text)


def _parse_query(query_text: str, source: _Source) -> dict[str, str]:
    query: dict[str, str] = {}
    if not query_text:
        return query
    for pair in query_text.split("&"):
        if not pair:
            continue
        key_text, _, value_text = pair.partition("=")
        key = _decode_query_part(key_text)
        if key in query:
            raise source.error(f"query key {source.quote(key)} is given twice")
        query[key] = _decode_query_part(value_text)
    return query


def _decode_query_part(text: str) -> str:
    return unquote(text.replace("+", " "))


def _masked_raw(text: str) -> str:
    """Unparsed URL text with anything that may be a password masked, for error messages."""
    if not isinstance(text, str):
        return f"<{type(text).__name__}>"
    # Hide the whole userinfo, up to the last "@": with a malformed scheme or a password
    # holding "/", "#" or "?", nothing else tells where the password ends.
    text = re.sub(r"^([A-Za-z][A-Za-z0-9_.+-]*:/{0,2})?.*@", rf"\1{MASK}@", text, flags=re.DOTALL)
    head, mark, query_text = text.partition("?")
    # A libpq or ODBC string given for a URL ('host=db password=pw') is no URL, but is shown.
    head = _CONNINFO_SECRET.sub(rf"\1{MASK}", head)
    if mark:
        pairs = []
        for pair in query_text.split("&"):
            key_text, equals, _ = pair.partition("=")
            # tested as parse_url reads the key: 'pass%77ord' and 'PASSWORD' are secrets too
            if equals and _decode_query_part(key_text).strip().lower() in _SECRET_KEYS:
                pair = f"{key_text}={MASK}"
            pairs.append(pair)
        head += "?" + "&".join(pairs)
    return head


_CONNINFO_SECRET = re.compile(
    r"((?:^|[\s;])(?:password|passwd|pwd|sslpassword|wallet_password|token)\s*=\s*)"
    r"(?:'(?:[^'\\]|\\.)*'?|\{[^}]*\}?|[^\s;]*)",  # libpq 'quoted', ODBC {braced}, bare
    re.IGNORECASE,
)


def scrub_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every occurrence of each secret (raw or percent-encoded) masked."""
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe="")}:
            text = text.replace(form, MASK)
    return text
