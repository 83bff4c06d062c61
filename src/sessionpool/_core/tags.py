"""Session tags in cx_Oracle's "k1=v1;k2=v2" form, normalized so pair order does not matter.

Pure string handling; no pool state.
"""

from __future__ import annotations

__all__ = ["normalize_tag"]

_cache: dict[str, str | None] = {}
_CACHE_LIMIT = 4096


def normalize_tag(tag: str | None) -> str | None:
    """Return the canonical form of a tag: pairs stripped and sorted, empty parts dropped.

    "b=2; a=1" and "a=1;b=2" both become "a=1;b=2"; "" and None become None (untagged).
    Raises TypeError for a non-string and ValueError for a part without "=".
    """
    if tag is None:
        return None
    if not isinstance(tag, str):
        kind = type(tag).__name__
        raise TypeError(f"tag must be a string like 'k1=v1;k2=v2' or None, not {kind}")
    cached = _cache.get(tag)
    if cached is not None or tag in _cache:
        return cached
    pairs = []
    for part in tag.split(";"):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"tag part {part!r} is not of the form name=value (tag {tag!r})")
        pairs.append(f"{name.strip()}={value.strip()}")
    result = ";".join(sorted(pairs)) or None
    if len(_cache) < _CACHE_LIMIT:
        # Tags come from a small vocabulary in practice; the bound keeps a hostile caller
        # from growing the cache without limit.
        _cache[tag] = result
    return result
