"""Counts the real server's backends on one database while a fleet runs, from a thread.

It connects straight to PostgreSQL (never through a pooler) and to another database, so its
own session is never counted. It only reads pg_stat_activity.
"""

from __future__ import annotations

import threading
from types import TracebackType

import psycopg

__all__ = ["SERVER_DSN", "BackendSampler"]

SERVER_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=10"


class BackendSampler:
    """Polls the number of client backends connected to ``dbname`` every ``interval`` s.

    Use as a context manager; `peak` is the highest count seen, `samples` how many looks.

    Args:
        dbname: the database whose backends are counted (one the fleet has to itself).
        interval: seconds between two looks.
    """

    def __init__(self, dbname: str, interval: float = 0.05) -> None:
        self.dbname = dbname
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backend-sampler", daemon=True)

    def _run(self) -> None:
        try:
            with psycopg.connect(SERVER_DSN, autocommit=True) as conn:
                while not self._stop.is_set():
                    # autocommit: each look is its own transaction, hence a fresh snapshot
                    # of pg_stat_activity (it is frozen for the length of a transaction).
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = %s AND backend_type = 'client backend'",
                        (self.dbname,),
                    ).fetchone()
                    self.peak = max(self.peak, int(row[0]) if row else 0)
                    self.samples += 1
                    self._stop.wait(self.interval)
        except BaseException as error:  # reported by stop(): a blind sampler proves nothing
            self.error = error

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop polling. Raises: RuntimeError if the sampler failed (its error chained)."""
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise RuntimeError(f"the backend sampler failed: {self.error}") from self.error

    def __enter__(self) -> BackendSampler:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
