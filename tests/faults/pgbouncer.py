"""A private PgBouncer for tests: its config in a temp dir, a free loopback port, stopped after.

It pools for the machine's PostgreSQL (127.0.0.1:5432, trust), never the Debian package's own
service. It runs as the ``postgres`` OS user when the tests run as root (pgbouncer refuses
root), in the foreground, and is killed on `stop`. Nothing here touches the backend server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import psycopg
import pytest

from tests.faults.pgcluster import free_port

__all__ = [
    "PGBOUNCER",
    "PgBouncer",
    "pgbouncer_available",
    "pgbouncer_session",
    "pgbouncer_transaction",
]

PGBOUNCER = Path("/usr/sbin/pgbouncer")


def pgbouncer_available() -> bool:
    """Whether the pgbouncer binary is installed (tools/ensure_system_packages.sh installs it)."""
    return PGBOUNCER.exists() or shutil.which("pgbouncer") is not None


def _binary() -> str:
    if PGBOUNCER.exists():
        return str(PGBOUNCER)
    found = shutil.which("pgbouncer")
    if found is None:
        raise RuntimeError("pgbouncer is not installed (run tools/ensure_system_packages.sh)")
    return found


class PgBouncer:
    """One private PgBouncer in front of a PostgreSQL server; started by the constructor.

    Args:
        backend_host: The PostgreSQL server's host.
        backend_port: The PostgreSQL server's port.
        dbname: The database clients name; others are routed by name to the backend too.
        pool_mode: ``"transaction"`` or ``"session"`` (``"statement"`` works but no test
            needs it).
        default_pool_size: Server connections per (database, user) pair.
        max_client_conn: Client connections PgBouncer accepts in all.
        extra: More ``[pgbouncer]`` settings, written last (so they override the above).

    Raises:
        RuntimeError: pgbouncer is missing, exits at start, or does not accept connections
            within 30 s (the message carries its log).
    """

    def __init__(
        self,
        backend_host: str = "127.0.0.1",
        backend_port: int = 5432,
        dbname: str = "test",
        pool_mode: Literal["transaction", "session", "statement"] = "transaction",
        default_pool_size: int = 10,
        max_client_conn: int = 500,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.backend_host = backend_host
        self.backend_port = backend_port
        self.dbname = dbname
        self.pool_mode = pool_mode
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sessionpool-pgbouncer-"))
        self.config = self.root / "pgbouncer.ini"
        self.log = self.root / "pgbouncer.log"
        self._process: subprocess.Popen[bytes] | None = None
        # pgbouncer refuses to run as root; run it as postgres, as the OS package does.
        self._as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as_user = {"user": "postgres", "group": "postgres", "extra_groups": []}
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            # A socket in the temp dir, never in /var/run/postgresql where the real server's is.
            "unix_socket_dir": str(self.root),
            "auth_type": "trust",
            "auth_file": str(self.root / "userlist.txt"),
            "admin_users": "postgres",
            "stats_users": "postgres",
            "pool_mode": pool_mode,
            "default_pool_size": str(default_pool_size),
            "max_client_conn": str(max_client_conn),
            "logfile": str(self.log),
            "pidfile": str(self.root / "pgbouncer.pid"),
            # Drivers that send it (asyncpg, JDBC-style clients) would be refused otherwise.
            "ignore_startup_parameters": "extra_float_digits",
            "server_login_retry": "1",
            **(extra or {}),
        }
        backend = f"host={backend_host} port={backend_port}"
        lines = [
            "[databases]",
            f"{dbname} = {backend} dbname={dbname}",
            # Any other database name goes to the same server under its own name.
            f"* = {backend}",
            "",
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in settings.items()),
            "",
        ]
        self.config.write_text("\n".join(lines))
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        if self._as_user:
            for path in (self.config, self.root / "userlist.txt"):
                shutil.chown(path, "postgres", "postgres")
        self.start()

    # -- naming ----------------------------------------------------------------------------

    def url(self, driver: str = "psycopg", database: str | None = None) -> str:
        """A sessionpool URL for ``driver`` through this pooler."""
        return f"postgresql+{driver}://postgres@127.0.0.1:{self.port}/{database or self.dbname}"

    def dsn(self, database: str | None = None) -> str:
        """A libpq connection string through this pooler."""
        return (
            f"host=127.0.0.1 port={self.port} user=postgres dbname={database or self.dbname}"
            " connect_timeout=10"
        )

    # -- control ---------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start pgbouncer (if not running) and return once it accepts connections."""
        if self._process is not None and self._process.poll() is None:
            return
        with open(self.root / "stdout.log", "ab") as out:
            self._process = subprocess.Popen(
                [_binary(), str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                **self._as_user,
            )
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"pgbouncer exited with {self._process.returncode} at start:\n{self.log_text()}"
                )
            try:
                self.admin("SHOW VERSION")
                return
            except psycopg.Error as error:
                last_error = error
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"pgbouncer did not accept connections within {timeout} s ({last_error}):\n"
            f"{self.log_text()}"
        )

    def admin(self, command: str) -> list[tuple[Any, ...]]:
        """Run ``command`` on the admin console (database ``pgbouncer``); its rows, if any.

        E.g. ``SHOW POOLS``, ``SHOW SERVERS``, ``PAUSE``, ``RESUME``, ``RECONNECT``. The console
        speaks only the simple query protocol, hence the client-side-binding cursor.
        """
        with psycopg.connect(
            self.dsn("pgbouncer"), autocommit=True, cursor_factory=psycopg.ClientCursor
        ) as conn:
            cursor = conn.execute(command)
            return list(cursor.fetchall()) if cursor.description is not None else []

    def admin_dicts(self, command: str) -> list[dict[str, Any]]:
        """Like `admin`, each row as a dict keyed by column name (``SHOW POOLS`` has many)."""
        with psycopg.connect(
            self.dsn("pgbouncer"), autocommit=True, cursor_factory=psycopg.ClientCursor
        ) as conn:
            cursor = conn.execute(command)
            if cursor.description is None:
                return []
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def server_connections(self) -> int:
        """Server connections PgBouncer holds to the backend for `dbname` now (any state)."""
        return sum(
            1 for row in self.admin_dicts("SHOW SERVERS") if row.get("database") == self.dbname
        )

    def pid(self) -> int | None:
        """pgbouncer's process id while it runs."""
        if self._process is None or self._process.poll() is not None:
            return None
        return self._process.pid

    def log_text(self) -> str:
        """pgbouncer's log (and anything it printed), for failure messages."""
        parts = []
        for path in (self.log, self.root / "stdout.log"):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace"))
        return "".join(parts)[-4000:]

    def stop(self) -> None:
        """Stop pgbouncer (SIGTERM, SIGKILL after 10 s); idempotent. Keeps the temp dir."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def destroy(self) -> None:
        """Stop it and remove its temp dir."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.destroy()

    def __repr__(self) -> str:
        return f"PgBouncer(port={self.port}, pool_mode={self.pool_mode!r}, pid={self.pid()})"


# -- pytest fixtures: import them into a conftest (``from tests.faults.pgbouncer import ...``) --


@pytest.fixture(scope="module")
def pgbouncer_transaction() -> Iterator[PgBouncer]:
    """A module's PgBouncer in transaction mode, 2 server connections, in front of db test."""
    with PgBouncer(pool_mode="transaction", default_pool_size=2) as bouncer:
        yield bouncer


@pytest.fixture(scope="module")
def pgbouncer_session() -> Iterator[PgBouncer]:
    """A module's PgBouncer in session mode, 10 server connections, in front of db test."""
    with PgBouncer(pool_mode="session", default_pool_size=10) as bouncer:
        yield bouncer
