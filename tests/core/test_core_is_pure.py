"""Proves `sessionpool._core` is sans-I/O: it imports no threads, asyncio, clock, logging or driver.

Two independent checks, each shown able to fail on a planted import: a static one (every
import statement in the source, lazy ones included) and a run-time one (a fresh interpreter
that loads the core alone and records every import statement the core's code executes).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib.util import resolve_name
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "src" / "sessionpool"
CORE_DIR = PACKAGE_DIR / "_core"

# Top-level modules the core must never import: concurrency, clocks, logging, network, and
# every DB driver (importlib/__import__ too, so nothing sneaks in by name at run time).
FORBIDDEN_TOP_LEVEL = frozenset(
    {
        "_thread",
        "asyncio",
        "concurrent",
        "datetime",
        "importlib",
        "logging",
        "multiprocessing",
        "queue",
        "selectors",
        "signal",
        "socket",
        "ssl",
        "subprocess",
        "threading",
        "time",
        # drivers
        "MySQLdb",
        "aiomysql",
        "aiosqlite",
        "asyncmy",
        "asyncpg",
        "cx_Oracle",
        "ibm_db",
        "mariadb",
        "mysql",
        "oracledb",
        "psycopg",
        "psycopg2",
        "psycopg_pool",
        "pymssql",
        "pymysql",
        "pyodbc",
        "sqlite3",
    }
)
# Parts of the package that do I/O or wait: the core may depend on none of them.
FORBIDDEN_SUBPACKAGES = frozenset(
    {"_async", "_sync", "cli", "compat", "drivers", "factory", "observe", "session"}
)
DYNAMIC_IMPORT = "<__import__ call>"
# The standard library loads importlib for itself (dataclasses -> inspect): it is forbidden to
# the core's own code only, not among the modules loaded on its behalf.
LOADED_BY_STDLIB = frozenset({"importlib"})


def is_forbidden(module: str, package: str = "sessionpool") -> bool:
    """Whether importing ``module`` (absolute dotted name) breaks the core's purity."""
    parts = module.split(".")
    if module == DYNAMIC_IMPORT or parts[0] in FORBIDDEN_TOP_LEVEL:
        return True
    return parts[0] == package and len(parts) > 1 and parts[1] in FORBIDDEN_SUBPACKAGES


def static_imports(source: str, module: str, *, is_package: bool = False) -> list[str]:
    """Absolute names of everything ``source`` (module ``module``) imports, anywhere in it."""
    package = module if is_package else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            relative = "." * node.level + (node.module or "")
            base = resolve_name(relative, package) if node.level else relative
            names.append(base)
            # `from .. import drivers` names a module in the fromlist, not in `module`.
            names.extend(f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            names.append(DYNAMIC_IMPORT)
    return names


def static_violations(package_dir: Path, package: str) -> list[tuple[str, str]]:
    """(module, import) pairs of forbidden imports in every .py file of ``package_dir/_core``."""
    found = []
    for path in sorted((package_dir / "_core").rglob("*.py")):
        relative = path.relative_to(package_dir).with_suffix("")
        is_package = relative.name == "__init__"
        parts = relative.parts[:-1] if is_package else relative.parts
        module = ".".join((package, *parts))
        for name in static_imports(path.read_text(), module, is_package=is_package):
            if is_forbidden(name, package):
                found.append((module, name))
    return found


# Run in a fresh interpreter (-I -S: no site, no user paths). The parent package is replaced
# by a bare stub so that its __init__ (which pulls in the threaded shell) never runs: only the
# core and what the core itself imports get loaded. builtins.__import__ is wrapped because it
# sees every executed import statement, even of modules loaded already at start-up (`time` is
# one of those, so a sys.modules diff alone could never catch `import time`).
PROBE = r"""
import builtins, json, os, sys, types

package, package_dir = sys.argv[1], sys.argv[2]
preloaded = sorted(sys.modules)
stub = types.ModuleType(package)
stub.__path__ = [package_dir]
sys.modules[package] = stub

def absolute(name, globals_, level):
    if not level:
        return name
    base = globals_.get("__package__") or globals_["__name__"].rpartition(".")[0]
    if level > 1:
        base = base.rsplit(".", level - 1)[0]
    return f"{base}.{name}" if name else base

executed = []
real_import = builtins.__import__

def recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if importer == package or importer.startswith(package + "."):
        base = absolute(name, globals or {}, level)
        executed.append([importer, base])
        executed.extend([importer, f"{base}.{item}"] for item in fromlist or ())
    return real_import(name, globals, locals, fromlist, level)

core_dir = os.path.join(package_dir, "_core")
modules = [package + "._core"] + [
    f"{package}._core.{file[:-3]}"
    for file in sorted(os.listdir(core_dir))
    if file.endswith(".py") and file != "__init__.py"
]
before = set(sys.modules)
builtins.__import__ = recording_import
try:
    for module in modules:
        real_import(module)
finally:
    builtins.__import__ = real_import
json.dump(
    {
        "preloaded": preloaded,
        "loaded": sorted(set(sys.modules) - before),
        "executed": executed,
        "modules": modules,
    },
    sys.stdout,
)
"""


def run_probe(package_dir: Path, package: str) -> dict[str, list[object]]:
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE, package, str(package_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, list[object]] = json.loads(completed.stdout)
    return result


def runtime_violations(package_dir: Path, package: str) -> tuple[list[object], list[str]]:
    """Forbidden imports the core's code executed, and forbidden modules its loading pulled in
    (transitively, through the standard library too)."""
    probe = run_probe(package_dir, package)
    executed = [pair for pair in probe["executed"] if is_forbidden(pair[1], package)]  # type: ignore[index]
    loaded = [
        str(name)
        for name in probe["loaded"]
        if is_forbidden(str(name), package) and str(name).split(".")[0] not in LOADED_BY_STDLIB
    ]
    return executed, loaded


# -- the real core ---------------------------------------------------------------------------


def test_core_source_imports_nothing_forbidden() -> None:
    files = sorted(CORE_DIR.rglob("*.py"))
    assert {path.name for path in files} >= {"state.py", "records.py", "effects.py", "tags.py"}
    assert static_violations(PACKAGE_DIR, "sessionpool") == []


def test_loading_the_core_executes_no_forbidden_import() -> None:
    probe = run_probe(PACKAGE_DIR, "sessionpool")
    # The probe did load the core on its own, without the package's __init__ (the shell).
    assert "sessionpool._core.state" in probe["loaded"]
    assert "sessionpool.errors" in probe["loaded"]
    assert "sessionpool._sync.pool" not in probe["loaded"]
    importers = {pair[0] for pair in probe["executed"]}  # type: ignore[index]
    assert "sessionpool._core.state" in importers  # the recorder saw the core's imports
    executed, loaded = runtime_violations(PACKAGE_DIR, "sessionpool")
    assert executed == []
    assert loaded == []


# -- the checkers can fail -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        pytest.param("import time", ["time"], id="import-time"),
        pytest.param("from threading import Lock", ["threading"], id="from-threading"),
        pytest.param("import asyncio.locks", ["asyncio.locks"], id="asyncio-submodule"),
        pytest.param("import logging as log", ["logging"], id="aliased-logging"),
        pytest.param("from concurrent import futures", ["concurrent"], id="concurrent"),
        pytest.param("import socket, selectors", ["socket", "selectors"], id="network"),
        pytest.param("import sqlite3", ["sqlite3"], id="driver-sqlite3"),
        pytest.param("import psycopg", ["psycopg"], id="driver-psycopg"),
        pytest.param("from .. import drivers", ["sessionpool.drivers"], id="relative-drivers"),
        pytest.param("from .._sync.pool import Pool", ["sessionpool._sync.pool"], id="shell"),
        pytest.param("def later():\n    import time\n", ["time"], id="lazy-import"),
        pytest.param("__import__('time')", [DYNAMIC_IMPORT], id="dynamic-import"),
        pytest.param("import importlib", ["importlib"], id="importlib"),
    ],
)
def test_static_checker_flags_forbidden_imports(snippet: str, expected: list[str]) -> None:
    names = static_imports(snippet, "sessionpool._core.planted")
    flagged = sorted({name for name in names if is_forbidden(name)})
    assert set(expected) <= set(flagged)


@pytest.mark.parametrize(
    "snippet",
    [
        pytest.param("from __future__ import annotations", id="future"),
        pytest.param("from ..errors import PoolClosed", id="errors"),
        pytest.param("from .records import Slot", id="sibling"),
        pytest.param("from . import records", id="package-relative"),
        pytest.param("from collections import deque", id="collections"),
        pytest.param("from dataclasses import dataclass", id="dataclasses"),
        pytest.param("from typing import Any", id="typing"),
    ],
)
def test_static_checker_accepts_pure_imports(snippet: str) -> None:
    names = static_imports(snippet, "sessionpool._core.planted")
    assert names  # the import was seen
    assert [name for name in names if is_forbidden(name)] == []


def _plant_package(root: Path, name: str, core_files: dict[str, str]) -> Path:
    package_dir = root / name
    (package_dir / "_core").mkdir(parents=True)
    (package_dir / "__init__.py").write_text("raise RuntimeError('the probe must not run me')\n")
    (package_dir / "drivers").mkdir()
    (package_dir / "drivers" / "__init__.py").write_text("")
    (package_dir / "drivers" / "base.py").write_text("CONNECT = None\n")
    (package_dir / "errors.py").write_text("import logging\n")
    (package_dir / "_core" / "__init__.py").write_text("")
    for file, source in core_files.items():
        (package_dir / "_core" / file).write_text(source)
    return package_dir


def test_checkers_catch_a_planted_core(tmp_path: Path) -> None:
    package_dir = _plant_package(
        tmp_path,
        "plantedpool",
        {
            "clock.py": "from __future__ import annotations\nimport time\n",
            "waiting.py": "from queue import SimpleQueue\n",  # threading, transitively
            "layering.py": "from ..drivers import base\n",
            "errorsuser.py": "from ..errors import *\n",  # logging, one module away
            "fine.py": "from collections import deque\n",
        },
    )
    assert sorted(static_violations(package_dir, "plantedpool")) == [
        ("plantedpool._core.clock", "time"),
        ("plantedpool._core.layering", "plantedpool.drivers"),
        ("plantedpool._core.layering", "plantedpool.drivers.base"),
        ("plantedpool._core.waiting", "queue"),
        ("plantedpool._core.waiting", "queue.SimpleQueue"),
    ]
    executed, loaded = runtime_violations(package_dir, "plantedpool")
    # `time` is loaded at interpreter start-up: only the import recorder can see it.
    assert ["plantedpool._core.clock", "time"] in executed
    assert ["plantedpool._core.waiting", "queue"] in executed
    assert ["plantedpool._core.layering", "plantedpool.drivers"] in executed
    assert ["plantedpool.errors", "logging"] in executed  # what the core pulls in counts too
    assert "threading" in loaded  # via queue: only the sys.modules diff sees this one
    assert "logging" in loaded
    assert not any(pair[0] == "plantedpool._core.fine" for pair in executed)


def test_checkers_pass_a_clean_planted_core(tmp_path: Path) -> None:
    package_dir = _plant_package(
        tmp_path, "cleanpool", {"only.py": "from collections import deque\nimport math\n"}
    )
    (package_dir / "errors.py").write_text("class Error(Exception):\n    pass\n")
    assert static_violations(package_dir, "cleanpool") == []
    assert runtime_violations(package_dir, "cleanpool") == ([], [])
