"""Fork safety: in a forked child, every pool forgets the connections it inherited, without a
word to the server, and starts afresh.

A child shares its parent's sockets. Using one would interleave two processes' messages on one
session; closing one, or letting the driver finalize it, would send the server a goodbye that
ends the parent's session. So the child points each inherited socket's descriptor at
/dev/null (the parent's socket is untouched: only the child's reference goes) and keeps the
connection objects referenced until it exits, so no finalizer runs on them early.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Protocol

__all__ = ["track"]


class _Forgetful(Protocol):
    def _forget_after_fork(self) -> None: ...


_pools: weakref.WeakSet[Any] = weakref.WeakSet()
# Inherited connections, kept alive in the child (see the module header).
_graveyard: list[Any] = []


def track(pool: _Forgetful) -> None:
    """Make ``pool`` forget its inherited connections in any child forked from now on."""
    _pools.add(pool)


def bury(connection: Any, fd: int | None) -> None:
    """Cut the child's tie to an inherited connection's socket, and keep the object."""
    if fd is not None and fd >= 0:
        try:
            null = os.open(os.devnull, os.O_RDWR)
        except OSError:
            null = -1
        if null >= 0:
            try:
                os.dup2(null, fd)  # fd now leads to /dev/null; the parent's socket stays
            except OSError:
                pass
            finally:
                os.close(null)
    _graveyard.append(connection)


def _after_fork_in_child() -> None:
    for pool in list(_pools):
        pool._forget_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
