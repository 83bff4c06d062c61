"""Command line: run SQLAlchemy's pool suite stock and swapped, print per-test differences.

    .venv/bin/python tools/sqlalchemy_suite [--version 2.0.58] [--swap face|probe|mod:Class]

Exits 1 when a test that passes stock does not pass swapped (the test in tests/compat also
allows its named exceptions; this command lists every difference).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    # Run as a directory (`python tools/sqlalchemy_suite`): make the package importable.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy_suite import harness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sqlalchemy_suite", description=__doc__.splitlines()[0])
    parser.add_argument("--version", default=harness.DEFAULT_VERSION, choices=harness.RELEASES)
    parser.add_argument(
        "--swap",
        default="face",
        help="face (sessionpool.compat.sqlalchemy:QueuePool), probe (a stock subclass, to "
        "prove the swap reaches every use), or module:Class",
    )
    parser.add_argument("--sequential", action="store_true", help="one run after the other")
    args = parser.parse_args(argv)
    swap = {"face": harness.FACE, "probe": harness.PROBE}.get(args.swap, args.swap)

    started = time.monotonic()
    suite = harness.prepare(args.version)
    setup = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in suite.timings.items())
    print(f"SQLAlchemy {args.version} suite ready in {suite.source_dir} ({setup})")
    baseline, swapped = harness.run_suite(
        suite, [("stock", None), ("swapped", swap)], concurrent=not args.sequential
    )
    for run in (baseline, swapped):
        print(run.summary())
        print(f"  log: {run.log_path}")
    report = swapped.swap_report
    print(f"swapped in: {report.get('swapped_class')}; rebound: {report.get('rebound')}")
    if "probe_instances" in report:
        print(f"probe QueuePool instances created: {report['probe_instances']}")
    comparison = harness.compare(baseline, swapped)
    print(comparison.describe())
    summary_path = harness.CACHE_DIR / f"last-{args.version}.json"
    harness.write_summary(suite, [baseline, swapped], summary_path)
    print(f"summary: {summary_path}; total {time.monotonic() - started:.1f} s")
    return 1 if comparison.lost or swapped.timed_out else 0


if __name__ == "__main__":
    sys.exit(main())
