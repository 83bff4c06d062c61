"""docs/cli.md / README: `sessionpool top` never prints a password. A metrics endpoint's
secret in its query (``?password=`` / ``?token=``, which observe/labels.py itself treats as
secrets) is printed as is in top's error lines."""

from __future__ import annotations

import pytest

from sessionpool.top.errors import EndpointError
from sessionpool.top.metrics import fetch, shown_url

CANARY = "s3cr3t-canary"


def test_shown_url_masks_a_query_password() -> None:
    assert CANARY not in shown_url(f"http://127.0.0.1:9187/metrics?password={CANARY}")
    assert CANARY not in shown_url(f"http://127.0.0.1:9187/metrics?token={CANARY}")


def test_unreachable_endpoint_error_hides_the_query_secret() -> None:
    with pytest.raises(EndpointError) as caught:
        fetch(f"http://127.0.0.1:1/metrics?token={CANARY}", timeout=5.0)
    assert CANARY not in str(caught.value), str(caught.value)
