"""pytest plugin loaded with `-p` into SQLAlchemy's own suite: swaps QueuePool before collection
and records every test's outcome. Runs inside the suite's venv; must not edit the suite's files.

Configured by environment (set by harness.py):
  SESSIONPOOL_SQLA_SWAP  "module:Class" to swap in, "probe" (a stock subclass under another
                         identity, to prove the mechanism), or empty for the stock baseline.
  SESSIONPOOL_SQLA_OUT   directory for outcomes.jsonl (one line per test phase, written as it
                         happens so a run killed at its deadline still says what ran) and
                         swap.json (what was swapped and where).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import pytest

SWAP_ENV = "SESSIONPOOL_SQLA_SWAP"
OUT_ENV = "SESSIONPOOL_SQLA_OUT"
PROBE = "probe"

# Module prefixes whose globals and classes may hold the stock class: SQLAlchemy itself
# (sqlalchemy.QueuePool, sqlalchemy.testing.requirements binds it at import) and the suite's
# own modules. sessionpool's modules are never touched: the face may keep the stock class.
_REBIND_PREFIXES = ("sqlalchemy", "test")


class _State:
    """What this run swapped; written to swap.json at the end of collection and of the run."""

    def __init__(self) -> None:
        self.out_dir = Path(os.environ.get(OUT_ENV) or tempfile.mkdtemp(prefix="sqla-suite-"))
        self.spec = os.environ.get(SWAP_ENV, "")
        self.stock: type | None = None
        self.target: type | None = None
        self.report: dict[str, Any] = {"swap": self.spec or None}
        self.outcomes = (self.out_dir / "outcomes.jsonl").open("a", encoding="utf-8")

    def write_report(self) -> None:
        text = json.dumps(self.report, indent=2, sort_keys=True)
        (self.out_dir / "swap.json").write_text(text + "\n", encoding="utf-8")


_state: _State | None = None
_probe_instances = 0


def _make_probe(stock: type) -> type:
    """A subclass that behaves exactly as stock QueuePool but is not it, and counts instances."""

    class ProbeQueuePool(stock):  # type: ignore[misc]
        """Stock QueuePool under a new identity: if the swap missed a path, counts show it."""

        # **kw (not a copied signature) so create_engine's get_cls_kwargs follows to the base.
        def __init__(self, *args: Any, **kw: Any) -> None:
            global _probe_instances
            _probe_instances += 1
            super().__init__(*args, **kw)

    ProbeQueuePool.__module__ = __name__
    return ProbeQueuePool


def _references_to(stock: type) -> list[tuple[object, str, str]]:
    """Every module global and class attribute in SQLAlchemy or the suite that is `stock`."""
    found: list[tuple[object, str, str]] = []
    for module_name, module in list(sys.modules.items()):
        # The top-level name, not a prefix: "sqlalchemy_suite" or "testfixtures" are not ours.
        if module is None or module_name.split(".")[0] not in _REBIND_PREFIXES:
            continue
        namespace = getattr(module, "__dict__", {})
        for name, value in list(namespace.items()):
            if value is stock:
                found.append((module, name, f"{module_name}.{name}"))
            elif isinstance(value, type) and value.__module__ == module_name:
                # Class attributes such as a dialect's `poolclass = pool.QueuePool`.
                for attr, attr_value in list(vars(value).items()):
                    if attr_value is stock:
                        where = f"{module_name}.{value.__qualname__}.{attr}"
                        found.append((value, attr, where))
    return found


def _swap(state: _State) -> None:
    import sqlalchemy
    import sqlalchemy.pool
    import sqlalchemy.pool.impl

    state.report["sqlalchemy_version"] = sqlalchemy.__version__
    state.report["sqlalchemy_file"] = sqlalchemy.__file__
    stock = sqlalchemy.pool.impl.QueuePool
    state.stock = stock
    if not state.spec:
        state.report["swapped_class"] = None
        return
    if state.spec == PROBE:
        target = _make_probe(stock)
    else:
        module_name, _, class_name = state.spec.partition(":")
        target = getattr(importlib.import_module(module_name), class_name)
    if not (isinstance(target, type) and issubclass(target, sqlalchemy.pool.Pool)):
        raise pytest.UsageError(f"{state.spec} is not a sqlalchemy.pool.Pool subclass: {target!r}")
    state.target = target
    rebound = []
    for owner, name, where in _references_to(stock):
        setattr(owner, name, target)
        rebound.append(where)
    state.report["swapped_class"] = f"{target.__module__}.{target.__qualname__}"
    state.report["rebound"] = sorted(rebound)
    # The brief's proof: the names the suite uses are the swapped class itself.
    identity = {
        "sqlalchemy.pool.QueuePool": sqlalchemy.pool.QueuePool is target,
        "sqlalchemy.pool.impl.QueuePool": sqlalchemy.pool.impl.QueuePool is target,
        "sqlalchemy.QueuePool": sqlalchemy.QueuePool is target,
    }
    state.report["identity"] = identity
    if not all(identity.values()):
        raise pytest.UsageError(f"swap of QueuePool incomplete: {identity}")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: before SQLAlchemy's own pytest_configure and long before any test module is
    # imported, so `from sqlalchemy.pool import QueuePool` in a test binds the swapped class.
    global _state
    _state = _State()
    try:
        _swap(_state)
    except BaseException as error:
        _state.report["error"] = "".join(traceback.format_exception(error))
        _state.write_report()
        if isinstance(error, pytest.UsageError):
            raise
        raise pytest.UsageError(f"could not swap in {_state.spec}: {error!r}") from error
    _state.write_report()


def pytest_collection_finish(session: pytest.Session) -> None:
    # After every test module is imported: nothing may still hold the stock class, and the
    # engine path (create_engine -> dialect.get_pool_class) must build the swapped class.
    state = _state
    if state is None or state.stock is None:
        return
    if state.target is not None:
        state.report["stale_references"] = sorted(
            where for _owner, _name, where in _references_to(state.stock)
        )
        from sqlalchemy import create_engine

        with tempfile.TemporaryDirectory() as directory:
            # A file database: SQLite's dialect picks QueuePool for it (memory: singleton).
            engine = create_engine(f"sqlite:///{directory}/probe.db")
            try:
                state.report["engine_pool_class_is_swapped"] = type(engine.pool) is state.target
            finally:
                engine.dispose()
    state.report["collected"] = len(session.items)
    state.write_report()


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed and _state is not None:
        _write_outcome(
            {"nodeid": report.nodeid, "when": "collect", "outcome": "error"}, report.longreprtext
        )


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _state is None:
        return
    record: dict[str, Any] = {
        "nodeid": report.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "duration": round(report.duration, 3),
    }
    if hasattr(report, "wasxfail"):
        record["xfail"] = True
    crash = getattr(report.longrepr, "reprcrash", None)
    if report.failed and crash is not None:
        # Where it failed and the exception's message, without pluggy's frames around it.
        record["crash"] = f"{crash.path}:{crash.lineno}: {crash.message}"[:1500]
    _write_outcome(record, report.longreprtext if report.failed else "")


def _write_outcome(record: dict[str, Any], detail: str) -> None:
    assert _state is not None
    if detail:
        # The end of a traceback says what failed; keep files small for 200+ tests.
        record["detail"] = detail[-3000:]
    _state.outcomes.write(json.dumps(record) + "\n")
    _state.outcomes.flush()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _state is None:
        return
    if _state.spec == PROBE:
        _state.report["probe_instances"] = _probe_instances
    _state.report["exitstatus"] = int(session.exitstatus)
    _state.write_report()
    _state.outcomes.close()
