"""A throwaway MariaDB server for fault tests: mariadb-install-db in a temp dir, its own port.

Fault tests restart, pause and kill this server, never the machine's shared one. It runs as
the ``mysql`` OS user when the tests run as root, has the real grant tables (root with an empty
password on 127.0.0.1), a database ``test``, and is removed on `destroy`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped, unused-ignore]

from tests.faults.freezing import Freezable
from tests.faults.pgcluster import free_port

__all__ = ["ThrowawayMariaDB"]

SERVER = Path("/usr/sbin/mariadbd")
INSTALL_DB = "mariadb-install-db"

# Small InnoDB files and no durability: the server holds nothing worth keeping, and a
# throwaway instance must start (and crash-recover after SIGKILL) in well under a second.
_SMALL_AND_FAST = [
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=8M",
    "--innodb-data-file-path=ibdata1:4M:autoextend",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--skip-name-resolve",
]


class ThrowawayMariaDB(Freezable):
    """One private MariaDB server. ``url(driver)`` names it; the helpers below fault it."""

    def __init__(self, port: int | None = None) -> None:
        if not SERVER.exists() or shutil.which(INSTALL_DB) is None:
            raise RuntimeError(f"MariaDB server binaries not found ({SERVER}, {INSTALL_DB})")
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="sessionpool-mariadb-"))
        self.data = self.root / "data"
        self.socket = self.root / "mariadb.sock"
        self.pid_file = self.root / "mariadb.pid"
        self.log = self.root / "server.log"
        self._process: subprocess.Popen[bytes] | None = None
        # Measured durations, for reports: the last install and the last start.
        self.install_seconds = 0.0
        self.start_seconds = 0.0
        # mariadbd refuses to run as root without --user; run it as mysql, as the OS does.
        self._as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            shutil.chown(self.root, "mysql", "mysql")
            self._as_user = {"user": "mysql", "group": "mysql", "extra_groups": []}
        started = time.monotonic()
        result = subprocess.run(
            [
                INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *_SMALL_AND_FAST,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.root,
            **self._as_user,
        )
        self.install_seconds = time.monotonic() - started
        if result.returncode != 0:
            shutil.rmtree(self.root, ignore_errors=True)
            raise RuntimeError(
                f"{INSTALL_DB} failed after {self.install_seconds:.1f} s: "
                f"{result.stdout}\n{result.stderr}"
            )

    def url(self, driver: str = "pymysql", database: str = "test") -> str:
        return f"mysql+{driver}://root@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str | None = None, timeout: float = 5.0) -> Any:
        """A PyMySQL connection as root, in autocommit: the tests' admin connection."""
        return pymysql.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            database=database,
            autocommit=True,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
        )

    # -- control ---------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> float:
        """Start the server and wait until it accepts a login; returns the seconds it took.

        Raises:
            RuntimeError: it exited, or did not accept a login within ``timeout``.
        """
        if self.is_running():
            raise RuntimeError(f"the throwaway MariaDB on port {self.port} is already running")
        started = time.monotonic()
        with open(self.log, "ab") as log:
            self._process = subprocess.Popen(
                [
                    str(SERVER),
                    "--no-defaults",
                    f"--datadir={self.data}",
                    f"--port={self.port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={self.socket}",
                    f"--pid-file={self.pid_file}",
                    f"--log-error={self.log}",
                    "--max-connections=200",
                    *_SMALL_AND_FAST,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,  # a Ctrl-C meant for pytest must not reach it
                **self._as_user,
            )
        deadline = started + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited with {self._process.returncode} while starting: "
                    f"{self._log_tail()}"
                )
            try:
                admin = self.connect(timeout=1.0)
            except pymysql.err.OperationalError as exc:
                last_error = exc
                time.sleep(0.02)  # nothing to wait on but the port: poll it
                continue
            with admin, admin.cursor() as cursor:
                cursor.execute("CREATE DATABASE IF NOT EXISTS test")
            self.start_seconds = time.monotonic() - started
            return self.start_seconds
        self.stop("immediate")
        raise RuntimeError(
            f"mariadbd did not accept a login within {timeout} s ({last_error!r}): "
            f"{self._log_tail()}"
        )

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Stop the server: ``fast`` (clean shutdown, SIGTERM) or ``immediate`` (SIGKILL: a
        crash, as far as clients see). Waits until the process is gone."""
        if mode not in ("fast", "immediate"):
            raise ValueError(f"mode must be 'fast' or 'immediate', not {mode!r}")
        process = self._process
        if process is None or process.poll() is not None:
            return
        # A stopped (paused) server cannot handle SIGTERM: wake it first.
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGCONT)
        process.send_signal(signal.SIGTERM if mode == "fast" else signal.SIGKILL)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise RuntimeError(
                f"mariadbd did not stop ({mode}) within {timeout} s; killed it"
            ) from None

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def pids(self) -> list[int]:
        """The server process (MariaDB serves every session on a thread of it)."""
        return [self._process.pid] if self.is_running() and self._process is not None else []

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no log: {exc})"
