"""Runs SQLAlchemy's own pool tests from its pinned sdist, stock and with QueuePool swapped, and
compares them test by test. Everything it fetches or builds lives under .venv/, never the repo.

Steps: fetch the sdist (pinned version and sha256) from PyPI; unpack only test/, the testing
plugin files test/conftest.py loads by path, setup.cfg and pyproject.toml; build a venv with the
same SQLAlchemy release and a pinned pytest; run the two test files in subprocesses with
swap_plugin.py loaded by `-p`; read the per-test outcomes it wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = ROOT / "tools"
SRC_DIR = ROOT / "src"
# Under .venv so `make clean` removes it with everything else built, and ruff and pytest
# (which skip .venv) never see the unpacked suite.
CACHE_DIR = ROOT / ".venv" / "sqlalchemy-suite"


@dataclass(frozen=True)
class Release:
    """One SQLAlchemy source distribution, pinned by its index URL and digest."""

    version: str
    url: str
    sha256: str
    size: int


RELEASES = {
    release.version: release
    for release in (
        # The issue names the 2.0 suite; 2.0.58 is the latest 2.0 patch release on PyPI.
        Release(
            "2.0.58",
            "https://files.pythonhosted.org/packages/74/9a/"
            "8d798711d1e56fa5f51152c228c2e0a8f03c95f3d59c969dd720ed492b83/"
            "sqlalchemy-2.0.58.tar.gz",
            "2acdcec9836b7c1514a9ad426e7731669a1186d96481a2e82c50bf2aebb49061",
            10031998,
        ),
        # The release the project's own venv runs; not part of `make test` (see the Makefile).
        Release(
            "2.1.9",
            "https://files.pythonhosted.org/packages/3f/69/"
            "b87a540f6888ebc1f63a6e6138e8dc0827331a9be7c5eb15e3bd40a76281/"
            "sqlalchemy-2.1.9.tar.gz",
            "d700a8b2edfb26282a470333d6bc4a454c4acda4d201a3bea7b72fa76c217d28",
            10657094,
        ),
    )
}
DEFAULT_VERSION = "2.0.58"
SUITE_FILES = ("test/engine/test_pool.py", "test/engine/test_reconnect.py")
# SQLAlchemy 2.0 supports pytest >= 7, < 10; these are the releases the project's venv runs.
RUNNER_REQUIREMENTS = ("pytest==9.2.0", "pytest-timeout==2.4.0")
FACE = "sessionpool.compat.sqlalchemy:QueuePool"
PROBE = "probe"

#: Seconds one test of the suite may take. The slowest stock test takes 5 s (it sleeps);
#: 45 s leaves 9x for this noisy 2-core machine, yet a deadlocked test is cut within a minute.
PER_TEST_TIMEOUT = 45.0
#: Seconds one whole run may take. A stock run takes about 30 s, mostly sleeping; 360 s leaves
#: room for the machine's 2x swings and for a few tests that hang until PER_TEST_TIMEOUT.
RUN_TIMEOUT = 360.0
FETCH_TIMEOUT = 60.0
INSTALL_TIMEOUT = 300.0
#: Fewer tests than this collected means the suite did not really run (plugin or path broken).
MIN_COLLECTED = 150


class HarnessError(Exception):
    """The harness could not produce a valid run (bad pin, failed install, broken swap)."""


class SdistUnreachable(HarnessError):
    """The package index could not be reached: the one reason a caller may skip."""


@dataclass
class Suite:
    """A prepared suite: unpacked sources and the interpreter that runs them."""

    release: Release
    source_dir: Path
    python: Path
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class TestOutcome:
    nodeid: str
    outcome: str  # passed, failed, error, skipped, xfailed, xpassed, incomplete
    duration: float = 0.0
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome in ("passed", "xfailed")


@dataclass
class Run:
    """One subprocess run of the suite."""

    label: str
    swap: str | None
    returncode: int | None
    timed_out: bool
    seconds: float
    outcomes: dict[str, TestOutcome]
    swap_report: dict[str, Any]
    log_path: Path

    def counts(self) -> Counter[str]:
        return Counter(outcome.outcome for outcome in self.outcomes.values())

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{counts[name]} {name}" for name in sorted(counts)]
        state = "timed out" if self.timed_out else f"exit {self.returncode}"
        return f"{self.label}: {', '.join(parts) or 'nothing ran'} ({state}, {self.seconds:.1f} s)"

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def _cache_lock() -> Iterator[None]:
    # Two pytest processes (the lead's and a helper's) may prepare the cache at once.
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with (CACHE_DIR / ".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_sdist(release: Release) -> Path:
    """Return the verified sdist, downloading it once from the index.

    Raises:
        SdistUnreachable: the index could not be reached (DNS, refused, timed out).
        HarnessError: it answered with an error, or the file's digest is not the pinned one.
    """
    target = CACHE_DIR / f"sqlalchemy-{release.version}.tar.gz"
    if target.exists() and _sha256(target) == release.sha256:
        return target
    partial = target.with_suffix(".partial")
    try:
        with (
            urllib.request.urlopen(release.url, timeout=FETCH_TIMEOUT) as response,
            partial.open("wb") as handle,
        ):
            shutil.copyfileobj(response, handle)
    except urllib.error.HTTPError as error:
        # The index answered: a wrong pin, not an unreachable network.
        raise HarnessError(f"GET {release.url} answered HTTP {error.code}") from error
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise SdistUnreachable(f"cannot reach the package index for {release.url}: {error}") from (
            error
        )
    digest = _sha256(partial)
    if digest != release.sha256:
        partial.unlink()
        raise HarnessError(
            f"sqlalchemy-{release.version}.tar.gz has sha256 {digest}, pinned {release.sha256}"
        )
    partial.replace(target)
    return target


def _wanted(relative: str) -> bool:
    # test/ (the suite, its conftest, requirements and fixtures), the plugin modules that
    # test/conftest.py loads by path from ../lib, and the two files holding the suite's
    # configuration ([tool.pytest.ini_options]; [sqla_testing] and [db] in setup.cfg). The
    # rest of lib/ is not unpacked: the suite imports the SQLAlchemy installed in its venv.
    return (
        relative.startswith("test/")
        or relative.startswith("lib/sqlalchemy/testing/plugin/")
        or relative in ("setup.cfg", "pyproject.toml")
    )


def unpack(release: Release, sdist: Path) -> Path:
    """Unpack the suite's files once; return the directory that stands for the sdist's root."""
    target = CACHE_DIR / f"source-{release.version}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    prefix = f"sqlalchemy-{release.version}/"
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as scratch, tarfile.open(sdist) as archive:
        members = [
            member
            for member in archive.getmembers()
            if member.name.startswith(prefix) and _wanted(member.name[len(prefix) :])
        ]
        if hasattr(tarfile, "data_filter"):
            archive.extractall(scratch, members=members, filter="data")
        else:  # pragma: no cover - Python without the 3.12 extraction filters
            archive.extractall(scratch, members=members)
        os.replace(Path(scratch) / prefix, target)
    for required in (
        *SUITE_FILES,
        "test/conftest.py",
        "lib/sqlalchemy/testing/plugin/bootstrap.py",
    ):
        if not (target / required).is_file():
            raise HarnessError(f"sdist {release.version} has no {required}")
    # The plugin dir must not turn lib/ into an importable SQLAlchemy: without lib/sqlalchemy/
    # __init__.py it is at most a namespace portion, and the installed package wins.
    if (target / "lib" / "sqlalchemy" / "__init__.py").exists():
        raise HarnessError("unpacked lib/sqlalchemy/__init__.py would shadow the installed one")
    (target / ".complete").write_text(release.sha256 + "\n")
    return target


def ensure_venv(release: Release) -> Path:
    """A venv holding SQLAlchemy `release.version` and the pinned runner; built once."""
    venv = CACHE_DIR / f"venv-{release.version}"
    python = venv / "bin" / "python"
    requirements = [f"SQLAlchemy=={release.version}", *RUNNER_REQUIREMENTS]
    wanted = {"base_python": sys.version, "requirements": requirements}
    stamp = venv / "sessionpool-suite.json"
    with contextlib.suppress(OSError, ValueError):
        if json.loads(stamp.read_text()) == wanted and python.exists():
            return python
    shutil.rmtree(venv, ignore_errors=True)
    _check_call([sys.executable, "-m", "venv", "--without-pip", str(venv)], timeout=120)
    # The project venv's pip installs into the suite venv (pip >= 22.3 has --python).
    _check_call(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", *requirements],
        timeout=INSTALL_TIMEOUT,
    )
    stamp.write_text(json.dumps(wanted, indent=2) + "\n")
    return python


def _check_call(command: list[str], timeout: float) -> None:
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise HarnessError(f"{' '.join(command)} took over {timeout:.0f} s") from error
    if completed.returncode != 0:
        raise HarnessError(
            f"{' '.join(command)} exited {completed.returncode}:\n"
            f"{completed.stdout[-2000:]}{completed.stderr[-4000:]}"
        )


def prepare(version: str = DEFAULT_VERSION) -> Suite:
    """Fetch, verify, unpack and install what a run of `version`'s suite needs.

    Raises:
        SdistUnreachable: the sdist is not cached and the index cannot be reached.
        HarnessError: anything else went wrong.
    """
    try:
        release = RELEASES[version]
    except KeyError:
        raise HarnessError(f"no pin for SQLAlchemy {version}; pinned: {sorted(RELEASES)}") from None
    timings: dict[str, float] = {}
    with _cache_lock():
        started = time.monotonic()
        sdist = fetch_sdist(release)
        timings["fetch"] = time.monotonic() - started
        started = time.monotonic()
        source_dir = unpack(release, sdist)
        timings["unpack"] = time.monotonic() - started
        started = time.monotonic()
        python = ensure_venv(release)
        timings["venv"] = time.monotonic() - started
    return Suite(release, source_dir, python, timings)


@dataclass
class _Pending:
    label: str
    swap: str | None
    process: subprocess.Popen[bytes]
    out_dir: Path
    log_path: Path
    started: float


#: Run directories kept (about 150 kB each): enough to read the last few comparisons' logs.
KEPT_RUNS = 20


def _prune_runs(runs_dir: Path) -> None:
    # Oldest first; a concurrent harness may be removing the same ones, hence ignore_errors.
    entries = sorted(runs_dir.iterdir(), key=lambda entry: entry.stat().st_mtime)
    for entry in entries[: max(0, len(entries) - KEPT_RUNS)]:
        shutil.rmtree(entry, ignore_errors=True)


def _start(suite: Suite, label: str, swap: str | None) -> _Pending:
    runs_dir = CACHE_DIR / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        _prune_runs(runs_dir)
    # A directory per run, also its working directory: concurrent runs share nothing they write.
    out_dir = Path(tempfile.mkdtemp(prefix=f"{suite.release.version}-{label}-", dir=runs_dir))
    env = {
        name: value
        for name, value in os.environ.items()
        # The outer pytest's settings must not leak into the suite's own run.
        if not name.startswith(("PYTEST_", "PYTHON", "COV_", "SESSIONPOOL_", "VIRTUAL_ENV"))
    }
    env["PYTHONPATH"] = os.pathsep.join([str(TOOLS_DIR), str(SRC_DIR)])
    env["SESSIONPOOL_SQLA_SWAP"] = swap or ""
    env["SESSIONPOOL_SQLA_OUT"] = str(out_dir)
    command = [
        str(suite.python),
        "-m",
        "pytest",
        *(str(suite.source_dir / name) for name in SUITE_FILES),
        "--rootdir",
        str(suite.source_dir),
        "-p",
        "no:cacheprovider",
        "-p",
        "sqlalchemy_suite.swap_plugin",
        f"--timeout={PER_TEST_TIMEOUT:g}",
    ]
    log_path = out_dir / "pytest.log"
    with log_path.open("wb") as log:
        log.write((" ".join(command) + "\n").encode())
        log.flush()
        process = subprocess.Popen(
            command,
            cwd=out_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout ends all of it
        )
    return _Pending(label, swap, process, out_dir, log_path, time.monotonic())


def _finish(pending: _Pending, deadline: float) -> Run:
    timed_out = False
    try:
        pending.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
        # The group is the one this harness started (start_new_session), nothing broader.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pending.process.pid, signal.SIGKILL)
        pending.process.wait(timeout=30)
    seconds = time.monotonic() - pending.started
    report_path = pending.out_dir / "swap.json"
    try:
        swap_report: dict[str, Any] = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        swap_report = {}
    return Run(
        label=pending.label,
        swap=pending.swap,
        returncode=None if timed_out else pending.process.returncode,
        timed_out=timed_out,
        seconds=seconds,
        outcomes=_read_outcomes(pending.out_dir / "outcomes.jsonl"),
        swap_report=swap_report,
        log_path=pending.log_path,
    )


def _read_outcomes(path: Path) -> dict[str, TestOutcome]:
    """Fold the per-phase records into one outcome per test."""
    phases: dict[str, dict[str, dict[str, Any]]] = {}
    with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = json.loads(line)
                phases.setdefault(record["nodeid"], {})[record["when"]] = record
    outcomes = {}
    for nodeid, by_phase in phases.items():
        outcome = "incomplete"  # setup ran but the run ended (deadline) before the call
        detail = ""
        failed = [record for record in by_phase.values() if record["outcome"] == "failed"]
        call = by_phase.get("call")
        setup = by_phase.get("setup")
        if "collect" in by_phase:
            outcome, detail = "error", by_phase["collect"].get("detail", "")
        elif failed:
            first = failed[0]
            outcome = "failed" if first["when"] == "call" else "error"
            detail = _essence(first)
        elif setup is not None and setup["outcome"] == "skipped":
            outcome = "xfailed" if setup.get("xfail") else "skipped"
        elif call is not None:
            if call["outcome"] == "skipped":
                outcome = "xfailed" if call.get("xfail") else "skipped"
            elif call.get("xfail"):
                outcome = "xpassed"
            elif "teardown" in by_phase:
                outcome = "passed"
        duration = sum(record.get("duration", 0.0) for record in by_phase.values())
        outcomes[nodeid] = TestOutcome(nodeid, outcome, duration, detail)
    return outcomes


def run_suite(
    suite: Suite,
    runs: list[tuple[str, str | None]],
    concurrent: bool = True,
    timeout: float = RUN_TIMEOUT,
) -> list[Run]:
    """Run the suite once per (label, swap) and return the runs, each bounded by `timeout`.

    Concurrent runs are the default: a run spends about 90% of its time asleep in the tests'
    own waits, so two side by side on 2 cores barely slow each other and halve the wall time.
    """
    results: list[Run] = []
    if concurrent:
        pending = [_start(suite, label, swap) for label, swap in runs]
        deadline = time.monotonic() + timeout
        results = [_finish(item, deadline) for item in pending]
    else:
        for label, swap in runs:
            item = _start(suite, label, swap)
            results.append(_finish(item, time.monotonic() + timeout))
    for result in results:
        _validate(suite, result)
    return results


def _validate(suite: Suite, run: Run) -> None:
    """A run that did not test the installed, pinned SQLAlchemy with the intended class is void."""
    report = run.swap_report
    problems = []
    if "error" in report:
        problems.append(f"the swap plugin failed:\n{report['error']}")
    else:
        if report.get("sqlalchemy_version") != suite.release.version:
            problems.append(f"ran SQLAlchemy {report.get('sqlalchemy_version')}")
        location = str(report.get("sqlalchemy_file", ""))
        if not location.startswith(str(suite.python.parent.parent)):
            problems.append(f"imported SQLAlchemy from {location or '?'}, not the suite venv")
        if (report.get("collected") or 0) < MIN_COLLECTED:
            problems.append(f"collected {report.get('collected')} tests (< {MIN_COLLECTED})")
        if run.swap:
            if report.get("stale_references"):
                problems.append(f"stock QueuePool still referenced: {report['stale_references']}")
            if report.get("engine_pool_class_is_swapped") is not True:
                problems.append("create_engine('sqlite:///file') did not build the swapped class")
    if problems:
        raise HarnessError(
            f"{run.label} run is not valid: " + "; ".join(problems) + f"\n{run.log_tail()}"
        )


def normalize(nodeid: str) -> str:
    """Drop the SQLite library version SQLAlchemy writes into backend test class names."""
    return re.sub(r"_sqlite\+pysqlite_[0-9_]+", "_sqlite+pysqlite", nodeid)


@dataclass
class Comparison:
    lost: dict[str, tuple[TestOutcome, TestOutcome | None]]  # passed stock, not swapped
    gained: dict[str, tuple[TestOutcome, TestOutcome]]  # failed stock, passed swapped
    changed: dict[str, tuple[TestOutcome | None, TestOutcome | None]]  # any other change

    def describe(self, expected: Mapping[str, str] | None = None) -> str:
        """One line per difference (LOST, GAINED, OTHER) and why a lost test failed."""
        expected = expected or {}
        lines = []
        for nodeid, (before, after) in sorted(self.lost.items()):
            now = after.outcome if after else "missing"
            note = " (expected)" if nodeid in expected else ""
            lines.append(f"LOST   {nodeid}: stock {before.outcome}, swapped {now}{note}")
            if after and after.detail:
                lines.append(_indent(after.detail))
        for nodeid, (before, after) in sorted(self.gained.items()):
            lines.append(f"GAINED {nodeid}: stock {before.outcome}, swapped {after.outcome}")
        for nodeid, (old, new) in sorted(self.changed.items()):
            was = old.outcome if old else "missing"
            now = new.outcome if new else "missing"
            lines.append(f"OTHER  {nodeid}: stock {was}, swapped {now}")
        return "\n".join(lines) or "no per-test differences"


_SUITE_FRAME = re.compile(r'File "[^"]*/(test/[^"]+)", line (\d+), in (\w+)')


def _essence(record: dict[str, Any]) -> str:
    """The failing phase, the last frame in the suite's own files, and the exception."""
    text = record.get("detail", "")
    lines = text.splitlines()
    where = ""
    for index, line in enumerate(lines):
        match = _SUITE_FRAME.search(line)
        if match:
            source = lines[index + 1].strip() if index + 1 < len(lines) else ""
            where = f"{match[1]}:{match[2]} in {match[3]}: {source}"
    # The message's first lines; pytest's assertion diff after them repeats it at length.
    crash = "\n".join((record.get("crash") or (lines[-1] if lines else "")).splitlines()[:2])
    return "\n".join(part for part in (f"[{record['when']}] {where}", crash) if part)


def _indent(text: str) -> str:
    return "\n".join("         " + line for line in text.splitlines())


def compare(baseline: Run, swapped: Run) -> Comparison:
    """Per-test differences, keyed by normalized node id."""
    before = {normalize(key): value for key, value in baseline.outcomes.items()}
    # Parametrized ids carry the class name ("[QueuePool-False]"); a swapped class of another
    # name (the probe) is the same test.
    name = str(swapped.swap_report.get("swapped_class") or "QueuePool").rsplit(".", 1)[-1]
    after = {
        normalize(key).replace(f"[{name}-", "[QueuePool-"): value
        for key, value in swapped.outcomes.items()
    }
    lost: dict[str, tuple[TestOutcome, TestOutcome | None]] = {}
    gained: dict[str, tuple[TestOutcome, TestOutcome]] = {}
    changed: dict[str, tuple[TestOutcome | None, TestOutcome | None]] = {}
    for nodeid in sorted(set(before) | set(after)):
        old, new = before.get(nodeid), after.get(nodeid)
        if old is not None and new is not None and old.outcome == new.outcome:
            continue
        if old is not None and old.passed and not (new is not None and new.passed):
            lost[nodeid] = (old, new)
        elif old is not None and new is not None and new.passed and not old.passed:
            gained[nodeid] = (old, new)
        else:
            changed[nodeid] = (old, new)
    return Comparison(lost, gained, changed)


def write_summary(suite: Suite, runs: list[Run], path: Path) -> None:
    """Keep a machine-readable record of the last comparison beside the cache."""
    data = {
        "version": suite.release.version,
        "sha256": suite.release.sha256,
        "setup_seconds": suite.timings,
        "runs": [
            {
                "label": run.label,
                "swap": run.swap,
                "seconds": round(run.seconds, 2),
                "timed_out": run.timed_out,
                "returncode": run.returncode,
                "counts": dict(run.counts()),
                "swap_report": run.swap_report,
                "log": str(run.log_path),
                "outcomes": {key: value.outcome for key, value in sorted(run.outcomes.items())},
            }
            for run in runs
        ],
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
