"""Host lists in URLs: parsing (authority and libpq query forms, IPv6), rendering, masking, and
the errors for malformed lists. Pure string handling: no server."""

from __future__ import annotations

import dataclasses

import pytest

from sessionpool import URL, ConfigError, parse_url

PASSWORD = "pw-c4n4ry"


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("postgresql://u@h1:5432,h2:5433/db", (("h1", 5432), ("h2", 5433))),
        ("postgresql://u@h1,h2:5433/db", (("h1", None), ("h2", 5433))),
        (
            "postgresql://u@[::1]:5432,[fe80::2],h3/db",
            (("::1", 5432), ("fe80::2", None), ("h3", None)),
        ),
        ("postgresql:///db?host=h1,h2&port=5432,5433", (("h1", 5432), ("h2", 5433))),
        ("postgresql:///db?host=h1,h2,h3&port=6000", (("h1", 6000), ("h2", 6000), ("h3", 6000))),
        ("postgresql://u@h1,h2/db?port=6000", (("h1", 6000), ("h2", 6000))),
        ("postgresql:///db?host=h1,h2&port=5432,", (("h1", 5432), ("h2", None))),
        (
            "postgresql:///db?host=/tmp,/var/run/postgresql",
            (("/tmp", None), ("/var/run/postgresql", None)),
        ),
        ("postgresql://%2Ftmp,h2:5/db", (("/tmp", None), ("h2", 5))),
        ("mysql://root@127.0.0.1:1,127.0.0.1:3306/test", (("127.0.0.1", 1), ("127.0.0.1", 3306))),
        ("mariadb://root@db1,db2/test", (("db1", None), ("db2", None))),
        ("postgresql://u@h1/db", (("h1", None),)),
        ("postgresql:///db", ()),
    ],
)
def test_host_lists_parse(text: str, hosts: tuple[tuple[str | None, int | None], ...]) -> None:
    url = parse_url(text)
    assert url.hosts == hosts
    # host/port keep meaning the first host, for every caller that knows only one
    assert (url.host, url.port) == (hosts[0] if hosts else (None, None))
    assert "host" not in url.query and "port" not in url.query
    assert parse_url(url.render()) == url  # the rendering keeps every host


def test_rendering_lists_every_host_and_never_the_password() -> None:
    url = parse_url(f"postgresql://app:{PASSWORD}@[::1]:5432,db2:5433/app?sslmode=require")
    for text in (str(url), repr(url), url.render()):
        assert "[::1]:5432,db2:5433" in text
        assert PASSWORD not in text
    assert url.render() == "postgresql://app:***@[::1]:5432,db2:5433/app?sslmode=require"
    assert PASSWORD in url.render(hide_secrets=False)
    assert parse_url(url.render(hide_secrets=False)) == url


def test_query_form_renders_in_the_authority_form() -> None:
    url = parse_url("postgresql://app@/app?host=h1,h2&port=1,2&application_name=x")
    assert url.render() == "postgresql://app@h1:1,h2:2/app?application_name=x"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("postgresql://h1,,h2/db", "host 2 of 3 in the host list is empty"),
        ("postgresql://h1,/db", "host 2 of 2 in the host list is empty"),
        ("postgresql://,h2/db", "host 1 of 2 in the host list is empty"),
        ("postgresql://:5432,h2/db", "host 1 of 2 in the host list is empty"),
        ("postgresql:///db?host=h1,,h2", "?host= lists an empty host"),
        ("postgresql:///db?host=h1,h2,h3&port=1,2", "3 host(s) but 2 ports"),
        ("postgresql:///db?host=h1&port=1,2", "1 host(s) but 2 ports"),
        ("postgresql://h1:1,h2/db?port=3", "port is given both in the host list and as ?port="),
        ("postgresql://h1/db?host=h2", "host is given both before the path and as ?host="),
        ("postgresql://h1:99999,h2/db", "port must be a number from 1 to 65535"),
        ("postgresql:///db?host=h1,h2&port=5432,x", "port must be a number from 1 to 65535"),
        ("postgresql://h1,::1/db", "put an IPv6 host in brackets"),
    ],
)
def test_malformed_host_lists_are_refused_by_name(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_url(text)
    assert message in str(caught.value)


def test_errors_about_host_lists_never_show_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_url(f"postgresql://app:{PASSWORD}@h1,,h2/db")
    assert PASSWORD not in str(caught.value)
    assert "host 2 of 3" in str(caught.value)


def test_with_hosts_and_replace() -> None:
    url = parse_url(f"postgresql://app:{PASSWORD}@h1:1/db")
    several = url.with_hosts([("a", 1), ("b", None)])
    assert (several.host, several.port, several.hosts) == ("a", 1, (("a", 1), ("b", None)))
    assert several.password == PASSWORD and several.database == "db"
    assert several.render() == "postgresql://app:***@a:1,b/db"
    # one host: host/port are authoritative, as before host lists existed
    moved = dataclasses.replace(url, host="h9")
    assert moved.hosts == (("h9", 1),)
    assert url.with_hosts([]).hosts == ()
    with pytest.raises(ConfigError, match="host 2 of 2 is empty"):
        url.with_hosts([("a", 1), (None, 2)])
    with pytest.raises(ConfigError, match="must be the first entry of hosts"):
        URL("postgresql", host="x", hosts=(("a", 1), ("b", 2)))


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("postgresql://app@/app?host=[::1],db2&port=5432", (("::1", 5432), ("db2", 5432))),
        ("postgresql:///db?host=db1,[2001:db8::2]&port=1,2", (("db1", 1), ("2001:db8::2", 2))),
        ("postgresql:///db?host=::1", (("::1", None),)),  # libpq takes it unbracketed as well
        ("postgresql:///db?host=[fe80::1%25eth0]", (("fe80::1%eth0", None),)),
        # the query is percent-decoded once, as the authority is: '%2541' stays '%41'
        ("postgresql:///db?host=[fe80::1%2541]", (("fe80::1%41", None),)),
    ],
)
def test_query_form_takes_bracketed_ipv6_and_renders_it_in_the_first_form(
    text: str, hosts: tuple[tuple[str | None, int | None], ...]
) -> None:
    url = parse_url(text)
    assert url.hosts == hosts
    rendered = str(url)
    assert "?" not in rendered and "[[" not in rendered
    assert parse_url(rendered) == url


@pytest.mark.parametrize(
    "text",
    [
        "postgresql:///db?host=[::1",
        "postgresql:///db?host=::1]",
        "postgresql:///db?host=[::1]:5432",  # the ports go in ?port=
        "postgresql:///db?host=[[::1]]",
    ],
)
def test_query_form_refuses_a_bracket_around_no_whole_host(text: str) -> None:
    with pytest.raises(ConfigError, match=r"\?host= holds a bracket"):
        parse_url(text)


def test_bracketed_zone_id_is_percent_decoded_and_rendered_encoded() -> None:
    """RFC 6874: in brackets, '%25' is the zone separator; drivers get 'fe80::1%eth0'."""
    text = "postgresql://app@[fe80::1%25eth0]:5432,[fe80::2%25ab]/app"
    url = parse_url(text)
    assert url.hosts == (("fe80::1%eth0", 5432), ("fe80::2%ab", None))
    assert str(url) == text
    assert parse_url(str(url)) == url


@pytest.mark.parametrize(
    "hosts",
    [
        (("/tmp/odd:dir", 5432), ("db2", None)),  # a socket path with ':' is no IPv6 address
        (("fe80::1%eth0", None), ("a,b", 1)),
        (("h/1", None), ("x]y:z", 2), ("p?q@r", 3)),
    ],
)
def test_any_host_renders_to_text_that_parses_back(
    hosts: tuple[tuple[str | None, int | None], ...],
) -> None:
    url = parse_url(f"postgresql://app:{PASSWORD}@h/db").with_hosts(hosts)
    assert parse_url(url.render(hide_secrets=False)) == url
    assert parse_url(str(url)).hosts == hosts


@pytest.mark.parametrize(
    "text", ["postgresql://app@[::1/app", "postgresql://app@[::1]x/app", "postgresql://[::1]]/db"]
)
def test_a_broken_bracket_in_the_authority_is_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="IPv6 host"):
        parse_url(text)
