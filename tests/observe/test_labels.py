"""pool_label: the pool name the exporters put on every series, with any secret masked."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sessionpool.observe.labels import pool_label
from sessionpool.url import parse_url


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("127.0.0.1:5432/test", "127.0.0.1:5432/test"),  # the default form: kept as is
        ("sqlite:/var/lib/app.db", "sqlite:/var/lib/app.db"),
        ("orders@eu", "orders@eu"),  # an "@" without a password is not userinfo
        ("postgresql://app:s3cr/t@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("pool of mysql://root:pw@db/x", "pool of mysql://root:***@db/x"),
        ("app:pw@db:5432/app", "app:***@db:5432/app"),
        ("host=db password=pw dbname=app", "host=db password=*** dbname=app"),
        ("db/app?sslpassword=pw&x=1", "db/app?sslpassword=***&x=1"),
        ("dsn password='se cret' x", "dsn password=*** x"),
        ("odbc PWD={a;b} x", "odbc PWD=*** x"),
    ],
)
def test_userinfo_and_password_pairs_are_masked(name: str, label: str) -> None:
    assert pool_label(SimpleNamespace(name=name)) == label


def test_the_pools_own_secrets_are_masked_wherever_they_appear() -> None:
    url = parse_url("postgresql://app:p%40ss word@db/app")
    pool = SimpleNamespace(
        name="app (p@ss word, p%40ss%20word)", _connector=SimpleNamespace(url=url)
    )
    assert pool_label(pool) == "app (***, ***)"
