"""Freezing a throwaway server's processes (SIGSTOP/SIGCONT): what both servers share."""

from __future__ import annotations

import contextlib
import os
import signal

__all__ = ["Freezable"]


class Freezable:
    """A server whose processes `pids` lists can be frozen and thawed."""

    def pids(self) -> list[int]:
        raise NotImplementedError

    def pause(self) -> list[int]:
        """Freeze the server (SIGSTOP): sockets stay open, nothing answers. Returns the pids."""
        pids = self.pids()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    def resume(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
