"""parse_url and URL: parsing, masking of secrets, round trips; create_pool's use of a URL."""

from __future__ import annotations

import pickle
from typing import Any

import psycopg
import pytest

import sessionpool
from sessionpool import ConfigError
from sessionpool.url import URL, parse_url

CANARY = "s3cr3t-canary"
# A password full of characters that mean something in a URL, percent-encoded where needed.
SPECIAL = "p@ss:w/rd%#?&=+ x"
SPECIAL_ENCODED = "p%40ss%3Aw%2Frd%25%23%3F%26%3D%2B%20x"


def assert_no_secret(*texts: object, secret: str = CANARY) -> None:
    for text in texts:
        assert secret not in str(text), str(text)
        assert secret not in repr(text), repr(text)


# -- dialect, driver, credentials ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dialect", "driver"),
    [
        ("postgresql://h/db", "postgresql", None),
        ("PostgreSQL+Psycopg2://h/db", "postgresql", "psycopg2"),
        ("MYSQL+PyMySQL://h/db", "mysql", "pymysql"),
        ("oracle+cx_oracle://h/svc", "oracle", "cx_oracle"),
        ("SQLite://", "sqlite", None),
        ("sqlite+pysqlite:///x.db", "sqlite", "pysqlite"),
    ],
)
def test_dialect_and_driver_are_split_and_lowercased(
    text: str, dialect: str, driver: str | None
) -> None:
    url = parse_url(text)
    assert (url.dialect, url.driver) == (dialect, driver)
    assert url.drivername == (dialect if driver is None else f"{dialect}+{driver}")


def test_full_url_is_split_into_its_parts() -> None:
    url = parse_url("postgresql://app:pw@db.example.com:6432/appdb?sslmode=require")
    assert url == URL(
        "postgresql", None, "app", "pw", "db.example.com", 6432, "appdb", {"sslmode": "require"}
    )
    assert isinstance(url.port, int)


def test_user_and_password_are_percent_decoded() -> None:
    url = parse_url(f"postgresql://us%40er%3Aname:{SPECIAL_ENCODED}@host/db")
    assert url.username == "us@er:name"
    assert url.password == SPECIAL
    assert url.host == "host"
    assert url.database == "db"


@pytest.mark.parametrize(
    ("text", "password"),
    [
        ("postgresql://u:p%40ss@h/db", "p@ss"),
        ("postgresql://u:p%3Ass@h/db", "p:ss"),
        ("postgresql://u:p%2Fss@h/db", "p/ss"),
        ("postgresql://u:p%25ss@h/db", "p%ss"),
        ("postgresql://u:50%2541@h/db", "50%41"),  # decoded once only
        # Unencoded '@' and ':' in a password: the last '@' ends the credentials.
        ("postgresql://u:p@ss@h/db", "p@ss"),
        ("postgresql://u:p:ss@h/db", "p:ss"),
    ],
)
def test_password_with_special_characters(text: str, password: str) -> None:
    url = parse_url(text)
    assert url.username == "u"
    assert url.password == password
    assert url.host == "h"


def test_user_without_password_and_empty_password() -> None:
    assert parse_url("postgresql://app@h/db").password is None
    url = parse_url("postgresql://app:@h/db")
    assert (url.username, url.password) == ("app", "")
    assert parse_url("postgresql://h/db").username is None


# -- hosts and ports ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("postgresql://u@[::1]:5432/db", "::1", 5432),
        ("postgresql://u@[::1]/db", "::1", None),
        ("postgresql://[2001:db8::42]:6543/db", "2001:db8::42", 6543),
        ("postgresql://[2001:db8::42]/db", "2001:db8::42", None),
        ("mysql://root@127.0.0.1:3306/test", "127.0.0.1", 3306),
        ("mysql://root@localhost/test", "localhost", None),
        ("postgresql://u@:5433/db", None, 5433),
    ],
)
def test_hosts_and_ports(text: str, host: str | None, port: int | None) -> None:
    url = parse_url(text)
    assert url.host == host
    assert url.port == port


@pytest.mark.parametrize(
    "text", ["postgresql://u@::1/db", "postgresql://u@::1:5432/db", "postgresql://fe80::1/db"]
)
def test_unbracketed_ipv6_host_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="IPv6"):
        parse_url(text)


@pytest.mark.parametrize("port", ["0", "70000", "65536", "abc", "-1", "5432x", " 5432"])
def test_bad_port_is_refused_naming_the_port(port: str) -> None:
    with pytest.raises(ConfigError, match="port") as caught:
        parse_url(f"postgresql://u:{CANARY}@host:{port}/db")
    assert repr(port) in str(caught.value)
    assert_no_secret(caught.value)


def test_bad_port_in_brackets_is_refused() -> None:
    with pytest.raises(ConfigError, match="port"):
        parse_url("postgresql://[::1]:99999/db")


@pytest.mark.parametrize("port", ["1", "65535"])
def test_port_limits_are_accepted(port: str) -> None:
    assert parse_url(f"postgresql://h:{port}/db").port == int(port)


def test_unix_socket_as_percent_encoded_host() -> None:
    url = parse_url("postgresql://app@%2Fvar%2Frun%2Fpostgresql/test")
    assert url.host == "/var/run/postgresql"
    assert url.port is None
    assert url.database == "test"
    url = parse_url("postgresql://%2Fvar%2Frun%2Fpostgresql:5433/test")
    assert (url.host, url.port) == ("/var/run/postgresql", 5433)


def test_unix_socket_in_the_query_becomes_the_host() -> None:
    # libpq's ?host= form: the query's host moves into URL.host/hosts, so one attribute
    # names the host whichever form the URL used (multi-host URLs rely on it).
    url = parse_url("postgresql:///test?host=/var/run/postgresql")
    assert url.host == "/var/run/postgresql"
    assert url.hosts == (("/var/run/postgresql", None),)
    assert url.database == "test"
    assert dict(url.query) == {}
    assert parse_url(url.render()) == url


# -- query -------------------------------------------------------------------------------------


def test_query_is_percent_decoded() -> None:
    url = parse_url(
        "postgresql://h/db?application_name=my%20app&options=-c%20search_path%3Dx%2Cy"
        "&plus=a+b&empty=&flag&k%26y=v%3Dw"
    )
    assert dict(url.query) == {
        "application_name": "my app",
        "options": "-c search_path=x,y",
        "plus": "a b",
        "empty": "",
        "flag": "",
        "k&y": "v=w",
    }


def test_query_is_read_only() -> None:
    url = parse_url("postgresql://h/db?a=1")
    with pytest.raises(TypeError):
        url.query["a"] = "2"  # type: ignore[index]


def test_repeated_query_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="sslmode") as caught:
        parse_url(f"postgresql://u:{CANARY}@h/db?sslmode=require&sslmode=disable")
    assert_no_secret(caught.value)
    with pytest.raises(ConfigError, match="password") as caught:
        parse_url(f"postgresql://h/db?password={CANARY}&password={CANARY}")
    assert_no_secret(caught.value)


# -- SQLite ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "database"),
    [
        ("sqlite://", None),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:///sub/dir/relative.db", "sub/dir/relative.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite:////abs/with%20space.db", "/abs/with space.db"),
        ("sqlite:///x.db?timeout=3", "x.db"),
    ],
)
def test_sqlite_forms(text: str, database: str | None) -> None:
    url = parse_url(text)
    assert url.dialect == "sqlite"
    assert url.database == database
    assert url.host is None
    assert url.port is None
    assert url.username is None


def test_sqlite_query_is_kept() -> None:
    assert dict(parse_url("sqlite:///x.db?timeout=3&mode=ro").query) == {
        "timeout": "3",
        "mode": "ro",
    }


@pytest.mark.parametrize(
    "text", ["sqlite://host/x", "sqlite://host", f"sqlite://u:{CANARY}@host/x.db"]
)
def test_sqlite_with_a_host_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="SQLite") as caught:
        parse_url(text)
    assert_no_secret(caught.value)


# -- malformed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["", "localhost:5432", "postgresql:/h/db", "://h/db", "1pg://h/db", "just words"]
)
def test_not_a_url_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="not a database URL"):
        parse_url(text)


@pytest.mark.parametrize("value", [None, 42, b"postgresql://h/db"])
def test_non_string_is_refused(value: Any) -> None:
    with pytest.raises(ConfigError, match="string"):
        parse_url(value)


def test_url_instance_is_returned_as_is() -> None:
    url = parse_url("postgresql://h/db")
    assert parse_url(url) is url


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://u:{CANARY}@host:abc/db",
        f"postgresql://u:{CANARY}@host:0/db",
        f"postgresql://u:{CANARY}@::1/db",
        f"postgresql://u:{CANARY}@[::1]:70000/db",
        f"postgresql://u:{CANARY}@h/db?a=1&a=2",
        f"postgresql://h:abc/db?password={CANARY}",
        f"postgresql://h:abc/db?sslpassword={CANARY}",
        f"postgresql://h:abc/db?token={CANARY}",
        f"postgresql://h:abc/db?PASSWORD={CANARY}",
        f"postgresql://u:{CANARY}%40x@host:abc/db",
        f"postgresql://u:{CANARY}@x@host:abc/db",
        f"sqlite://u:{CANARY}@host/x.db",
        # Typos in the scheme: the text is still obviously a URL with a password.
        f"postgresql:/u:{CANARY}@host/db",
        f"postgresql//u:{CANARY}@host/db",
        f"postgresql:u:{CANARY}@host/db",
        # A raw '#' in a password: parse_url takes it as part of the password (no fragments).
        f"postgresql://u:{CANARY}#1@host:abc/db",
    ],
)
def test_config_error_for_a_malformed_url_never_shows_the_password(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_url(text)
    assert_no_secret(caught.value, *caught.value.args)


def test_raw_hash_in_a_password_is_part_of_the_password() -> None:
    # The premise of the last case above: '#' is no fragment marker for parse_url.
    url = parse_url(f"postgresql://u:{CANARY}#1@host/db")
    assert url.password == f"{CANARY}#1"
    assert url.host == "host"


# Two pieces of a password, either side of a character that ends the authority when left
# unencoded: no error may show either piece (nor the whole).
PIECE1, PIECE2 = "Pw1kanary", "Pw2kanary"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://app:{PIECE1}/{PIECE2}@db1:5432,db2:5432/app",  # '/' left unencoded
        f"postgresql://app:{PIECE1}?{PIECE2}@db1,db2/app",  # '?' left unencoded
        f"postgresql://app:{PIECE1}?{PIECE2}=1@h/db",  # '?' then '=': a query pair
        f"postgresql://app:{PIECE1}?{PIECE2}&{PIECE2}&x@h/db",  # a repeated "query key"
        f"postgresql://app:{PIECE1}?a=1&a=2&{PIECE2}@h/db",
        f"postgresql://app:{PIECE1}/x?{PIECE2}@h:abc/db",
        f"postgresql://app:{PIECE1}[/{PIECE2}@h/db",
        f"postgresql://[::1:{PIECE1}/{PIECE2}@h/db",
        f"postgresql://app:²{PIECE1}/{PIECE2}@h/db",  # '²'.isdigit() but int() refuses it
        f"postgresql://{PIECE1},{PIECE2}:x?y@h/db",
        f"postgresql://app:{PIECE1}/{PIECE2}@h/db?host=[::1",
        f"postgresql://app:{PIECE1}#{PIECE2}/x@h:0/db",
        f"sqlite://app:{PIECE1}/{PIECE2}@h/x.db",
        f"postgresql:/app:{PIECE1}/{PIECE2}@h/db",  # and a typo in the scheme
        # no URL at all but a libpq string, or a secret query key spelt in percent-encoding
        f"host=db password={PIECE1} dbname=app",
        f"host=db password='{PIECE1} {PIECE2}' dbname=app",
        f"DRIVER={{x}};SERVER=db;PWD={{{PIECE1};{PIECE2}}};UID=app",  # an ODBC string
        f"postgresql://h:abc/db?pass%77ord={PIECE1}&sslPassword={PIECE2}",
    ],
)
def test_no_error_shows_any_piece_of_a_password_even_in_a_malformed_url(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_url(text)
    for piece in (PIECE1, PIECE2):
        assert_no_secret(caught.value, *caught.value.args, secret=piece)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        # A '/' or '?' after a password's digits used to parse: port 5432, the rest of the
        # password in the database name or the query (so in str(url)), or a host list.
        (f"postgresql://app:5432/{PIECE2}@h/db", PIECE2),
        (f"postgresql://app:5432?{PIECE2}@h/db", PIECE2),
        (f"postgresql://app:5,{PIECE2}/x@h/db", PIECE2),
        (f"postgresql://us/er:{PIECE1}@h/db", PIECE1),  # a '/' in the user name
    ],
)
def test_a_password_cut_short_by_slash_or_question_mark_is_refused(text: str, secret: str) -> None:
    with pytest.raises(ConfigError, match="percent-encode") as caught:
        parse_url(text)
    assert_no_secret(caught.value, secret=secret)
    assert "'%2F', '%3F'" in str(caught.value)  # says how to write it instead


def test_an_at_after_the_host_is_written_percent_encoded_except_in_query_values() -> None:
    assert parse_url("postgresql://h/my%40db").database == "my@db"
    url = parse_url("postgresql://h/db?application_name=me@laptop")
    assert url.query["application_name"] == "me@laptop"
    with pytest.raises(ConfigError, match="%40"):
        parse_url("postgresql://h/my@db")
    with pytest.raises(ConfigError, match="%40"):
        parse_url("postgresql://h/db?a@b=1")
    # SQLite paths are files: an '@' in them is just a character
    assert parse_url("sqlite:////tmp/me@home.db").database == "/tmp/me@home.db"


def test_pieces_are_quoted_when_no_password_can_hide_in_them() -> None:
    with pytest.raises(ConfigError, match=r"\(got 'abc'\)$"):
        parse_url(f"postgresql://app:{CANARY}@h:abc/db")
    with pytest.raises(ConfigError, match=r"query key 'a' is given twice$"):
        parse_url(f"postgresql://app:{CANARY}@h/db?a=1&a=2")


# -- masking -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"postgresql://app:{CANARY}@db:5432/app", CANARY),
        (f"oracle+oracledb://scott:{CANARY}@[::1]:1521/orclpdb", CANARY),
        (f"postgresql://app:{SPECIAL_ENCODED}@%2Fvar%2Frun%2Fpostgresql/app", SPECIAL),
        (f"mysql://:{CANARY}@h/db", CANARY),
        (f"postgresql://app@db/app?password={CANARY}", CANARY),
        (f"postgresql://app@db/app?sslpassword={CANARY}&sslmode=require", CANARY),
        (f"postgresql://app@db/app?token={CANARY}", CANARY),
        (f"oracle://app@db/svc?wallet_password={CANARY}", CANARY),
        (f"mysql://app@db/app?passwd={CANARY}", CANARY),
        (f"postgresql://app@db/app?Password={CANARY}", CANARY),
    ],
)
def test_repr_str_and_render_never_show_secrets(text: str, secret: str) -> None:
    url = parse_url(text)
    shown = [repr(url), str(url), url.render(), f"{url}", f"{url!r}", [url], {"u": url}]
    for form in shown:
        assert secret not in str(form), form
        # the percent-encoded form must not show either
        assert SPECIAL_ENCODED not in str(form), form
    assert secret in url.secrets()
    # The masked text still parses, with the mask where the secret was.
    masked = parse_url(url.render())
    assert secret not in [masked.password, *masked.query.values()]
    assert "***" in [masked.password, *masked.query.values()]
    assert parse_url(url.render(hide_secrets=False)) == url


def test_masked_render_keeps_everything_else() -> None:
    url = parse_url(f"postgresql+psycopg://app:{CANARY}@db:5432/app?sslmode=require&token=t0k")
    assert url.render().startswith("postgresql+psycopg://app:***@db:5432/app?sslmode=require&")
    assert repr(url) == f"URL({url.render()!r})"
    masked = parse_url(url.render())
    assert masked == URL(
        "postgresql",
        "psycopg",
        "app",
        "***",
        "db",
        5432,
        "app",
        {"sslmode": "require", "token": "***"},
    )


def test_query_secrets_are_masked_but_other_keys_shown() -> None:
    url = parse_url(
        f"postgresql://h/db?password={CANARY}&sslpassword={CANARY}x&token={CANARY}y"
        f"&pwd={CANARY}z&user=app"
    )
    rendered = url.render()
    assert CANARY not in rendered
    assert "user=app" in rendered
    assert dict(parse_url(rendered).query) == {
        "password": "***",
        "sslpassword": "***",
        "token": "***",
        "pwd": "***",
        "user": "app",
    }
    assert sorted(url.secrets()) == sorted([CANARY, f"{CANARY}x", f"{CANARY}y", f"{CANARY}z"])


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://h/db",
        f"postgresql+psycopg2://app:{CANARY}@db.example.com:6432/appdb?sslmode=require",
        f"postgresql://us%40er:{SPECIAL_ENCODED}@h/db",
        "postgresql://:pw@h/db",
        "postgresql://u:@h/db",
        "postgresql://u@[::1]:5432/db",
        "postgresql://[2001:db8::1]/db",
        "postgresql://app@%2Fvar%2Frun%2Fpostgresql/test",
        "postgresql://%2Fvar%2Frun%2Fpostgresql:5433/test",
        "postgresql://h/my%20db%3F",
        f"postgresql://h/db?password={SPECIAL_ENCODED}&options=-c%20a%3Db&k%26y=v+w",
        "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4",
        "oracle://scott:tiger@dbhost:1521/orclpdb?tcp_connect_timeout=3",
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///relative.db",
        "sqlite:////abs/x.db",
        "sqlite:///x.db?mode=ro&cache=shared",
        # SQLite paths carrying characters that are special in a URL
        "sqlite:////tmp/with%20space.db",
        "sqlite:////tmp/100%25.db",
        "sqlite:////tmp/%2541.db",
        "sqlite:////tmp/what%3F.db",
    ],
)
def test_render_without_hiding_round_trips(text: str) -> None:
    url = parse_url(text)
    assert parse_url(url.render(hide_secrets=False)) == url


def test_url_cannot_be_pickled() -> None:
    url = parse_url(f"postgresql://app:{CANARY}@db/app")
    with pytest.raises(TypeError) as caught:
        pickle.dumps(url)
    assert_no_secret(caught.value)
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError):
            pickle.dumps(url, protocol=protocol)


# -- create_pool with a URL --------------------------------------------------------------------


def test_pool_settings_in_the_query_land_in_the_config_with_their_types() -> None:
    pool = sessionpool.create_pool(
        "sqlite://?max_size=3&min_size=2&wait_timeout=5&lazy=true&reset_on_return=full"
        "&idle_order=fifo&when_exhausted=fail&max_overflow=-1&increment=2"
        "&reset_timeout=1.5&ping_timeout=2&homogeneous=yes&name=reports"
    )
    try:
        config = pool.config
        assert config.max_size == 3 and type(config.max_size) is int
        assert config.min_size == 2 and type(config.min_size) is int
        assert config.wait_timeout == 5.0 and type(config.wait_timeout) is float
        assert config.lazy is True
        assert config.reset_on_return == "full"
        assert config.idle_order == "fifo"
        assert config.when_exhausted == "fail"
        assert config.max_overflow == -1
        assert config.increment == 2
        assert config.reset_timeout == 1.5
        assert config.ping_timeout == 2.0 and type(config.ping_timeout) is float
        assert config.homogeneous is True
        assert config.name == "reports"
        assert pool.opened == 0  # lazy
        # pool settings are not passed on to the driver
        arguments = pool._connector.arguments  # type: ignore[attr-defined]
        assert not set(arguments) & set(sessionpool.PoolConfig.parameter_names())
    finally:
        pool.close()


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("wait_timeout=none", "wait_timeout"),
        ("wait_timeout=NULL", "wait_timeout"),
        ("reset_on_return=none", "reset_on_return"),
        ("name=None", "name"),
    ],
)
def test_none_in_the_query(query: str, name: str) -> None:
    pool = sessionpool.create_pool(f"sqlite://?lazy=1&{query}")
    try:
        assert getattr(pool.config, name) is None
    finally:
        pool.close()


@pytest.mark.parametrize(("word", "value"), [("true", True), ("off", False), ("0", False)])
def test_bool_words_in_the_query(word: str, value: bool) -> None:
    pool = sessionpool.create_pool(f"sqlite://?lazy={word}&min_size=0")
    try:
        assert pool.config.lazy is value
    finally:
        pool.close()


def test_keyword_overrides_the_query_value() -> None:
    pool = sessionpool.create_pool(
        "sqlite://?max_size=3&wait_timeout=5&reset_on_return=full&lazy=true",
        max_size=5,
        wait_timeout=None,
        reset_on_return=None,
    )
    try:
        assert pool.config.max_size == 5
        assert pool.config.wait_timeout is None
        assert pool.config.reset_on_return is None
        assert pool.config.lazy is True  # from the query, not overridden
    finally:
        pool.close()


def test_unknown_query_key_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="bogus"):
        sessionpool.create_pool("sqlite://?bogus=1")
    with pytest.raises(ConfigError, match="bogus_option"):
        sessionpool.create_pool(f"postgresql://u:{CANARY}@127.0.0.1/test?bogus_option=1&lazy=1")


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("max_size=abc", "max_size"),
        ("min_size=1.5", "min_size"),
        ("wait_timeout=soon", "wait_timeout"),
        ("lazy=maybe", "lazy"),
        ("max_size=0", "max_size"),
        ("reset_on_return=sometimes", "reset_on_return"),
        ("idle_order=random", "idle_order"),
        ("max_size=none", "max_size"),
        ("open_timeout=abc", "open_timeout"),
    ],
)
def test_bad_value_in_the_query_is_refused_naming_it(query: str, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        sessionpool.create_pool(f"sqlite://?{query}")


@pytest.mark.parametrize("name", ["on_connect", "session_callback"])
def test_callables_cannot_be_given_in_a_url(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        sessionpool.create_pool(f"sqlite://?{name}=print")


def test_connect_args_with_a_creator_is_refused() -> None:
    with pytest.raises(ConfigError, match="connect_args"):
        sessionpool.create_pool(creator=lambda: None, connect_args={"timeout": 1})


def test_url_and_creator_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="creator"):
        sessionpool.create_pool("sqlite://", creator=lambda: None)
    with pytest.raises(ConfigError, match="creator"):
        sessionpool.create_pool(lambda: None, creator=lambda: None)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("foodb://h/db", "foodb"),
        ("postgresql+asyncpg://h/db", "asyncpg"),
        ("mysql+aiomysql://h/db", "aiomysql"),
        ("sqlite+apsw://", "apsw"),
    ],
)
def test_unknown_dialect_or_driver_is_named(text: str, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        sessionpool.create_pool(text)


def test_pool_repr_never_shows_the_password() -> None:
    pool = sessionpool.create_pool(f"postgresql://u:{CANARY}@127.0.0.1:5432/test?lazy=true")
    try:
        assert pool.opened == 0
        assert "127.0.0.1" in repr(pool)
        assert_no_secret(pool, pool.config, pool.stats(), pool.status(), pool._connector.describe())
    finally:
        pool.close()


def test_secret_query_value_never_shows_in_pool_repr() -> None:
    pool = sessionpool.create_pool(
        f"postgresql://u@127.0.0.1:5432/test?lazy=true&password={CANARY}"
    )
    try:
        assert_no_secret(pool, pool._connector.describe())
    finally:
        pool.close()


def test_failing_connect_error_does_not_show_the_password() -> None:
    with pytest.raises(psycopg.OperationalError) as caught:
        sessionpool.create_pool(
            f"postgresql://nosuchuser:{CANARY}@127.0.0.1/test", wait_timeout=5, open_timeout=10
        )
    assert "nosuchuser" in str(caught.value)  # the real failure, not another one
    assert_no_secret(caught.value, *caught.value.args)
