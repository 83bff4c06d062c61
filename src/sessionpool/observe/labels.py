"""labels: the pool name the metrics exporters put on every series, with no secret in it.

A default name is built from host, port and database only (see naming.py); a name chosen by
the user could still hold a DSN, so the exporters scrub it here. Pure text work, no I/O.
"""

from __future__ import annotations

import re
from typing import Any

from ..url import MASK, scrub_secrets

__all__ = ["mask_secrets", "pool_label"]

# A password in userinfo, after a scheme ("scheme://user:pw@host") or, with no scheme, at the
# start ("user:pw@host"); up to the last "@", as a password may hold "/" or "@".
_URL_USERINFO = re.compile(r"(://[^/@\s:]*):[^\s]*@")
_BARE_USERINFO = re.compile(r"^([^/@\s:]*):[^\s]*@")
# key=value secrets in a query string or a libpq/ODBC connection string: a 'quoted' or
# {braced} value whole (as url.py's masking of connection strings), else up to & ; or space.
_SECRET_PAIR = re.compile(
    r"((?:^|[?&;\s])(?:password|passwd|pwd|sslpassword|wallet_password|token)\s*=\s*)"
    r"(?:'(?:[^'\\]|\\.)*'?|\{[^}]*\}?|[^&;\s]*)",
    re.IGNORECASE,
)


def pool_label(pool: Any) -> str:
    """``pool.name`` fit for a metric label: the pool URL's secrets, any userinfo and any
    ``password=`` style pair masked."""
    name = str(pool.name)
    url = getattr(getattr(pool, "_connector", None), "url", None)
    if url is not None:
        name = scrub_secrets(name, url.secrets())
    return mask_secrets(name)


def mask_secrets(text: str) -> str:
    """``text`` (a name, a URL, a connection string) with any userinfo password and any
    ``password=``/``token=`` style value replaced by the mask."""
    userinfo = _URL_USERINFO if "://" in text else _BARE_USERINFO
    text = userinfo.sub(lambda match: f"{match.group(1)}:{MASK}@", text)
    return _SECRET_PAIR.sub(lambda match: f"{match.group(1)}{MASK}", text)
