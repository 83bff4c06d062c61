"""A throwaway PostgreSQL cluster for fault tests: initdb in a temp dir, its own port.

Fault tests restart, pause and kill this server, never the machine's shared one. It runs as
the ``postgres`` OS user when the tests run as root (initdb refuses root), trusts local
connections, and is removed on `destroy`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.faults.freezing import Freezable

__all__ = ["ThrowawayPostgres", "free_port"]


def _bin_dir() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not versions:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
    return versions[-1].parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres(Freezable):
    """One private PostgreSQL server. ``url(driver)`` names it; the helpers below fault it."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="sessionpool-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ]
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
            )

    def url(self, driver: str = "psycopg", database: str = "postgres") -> str:
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    # -- control ---------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        self._run(
            [
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(int(timeout)),
                "start",
            ]
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` (clean) or ``immediate`` (a crash, as far as clients see)."""
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def restart(self, mode: str = "fast") -> None:
        """Stop (``mode`` as in `stop`) and start again; returns once connections are accepted."""
        self.stop(mode)
        self.start()

    def backend_count(self, application_name: str) -> int:
        """Sessions the server has with this ``application_name`` now (this query's excluded)."""
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE application_name = %s AND pid <> pg_backend_pid()",
                (application_name,),
            ).fetchone()
        assert row is not None
        return int(row[0])

    def is_running(self) -> bool:
        result = subprocess.run(
            [*self._as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "status"],
            capture_output=True,
        )
        return result.returncode == 0

    def pids(self) -> list[int]:
        """The postmaster and every backend: what `pause` stops."""
        master = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(
            ["pgrep", "-P", str(master)], capture_output=True, text=True
        ).stdout.split()
        return [master, *map(int, children)]

    def destroy(self) -> None:
        try:
            if self.is_running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, command: list[str]) -> None:
        started = time.monotonic()
        result = subprocess.run([*self._as_user, *command], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed after {time.monotonic() - started:.1f} s: "
                f"{result.stdout}\n{result.stderr}"
            )
