"""Fleet benchmark: the same multi-process load straight at PostgreSQL and through PgBouncer.

Each of --processes worker processes opens its own sessionpool pool (max_size --max-size) and
runs --lanes threads, each committing short transactions (an INSERT, a SELECT that reads it
back and a server-side pg_sleep of --hold seconds) for --duration seconds. Setups:

  direct     the pools connect to PostgreSQL: up to processes x max_size server connections
  pgbouncer  the pools connect to a private PgBouncer in transaction mode (default_pool_size
             --server-pool, no reserve) with server_pooler="transaction"

Each round runs both, in alternating order. The server's backends on the fleet's own database
are sampled every 50 ms. Run from the repository root:
`.venv/bin/python benchmarks/bench_fleet.py` (about a minute). Needs the local PostgreSQL
(127.0.0.1:5432, trust) and the pgbouncer binary (tools/ensure_system_packages.sh).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The fleet machinery lives with the tests; spawned workers inherit this sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults.pgbouncer import PGBOUNCER, PgBouncer
from tests.fleet.fleet import (
    FleetResult,
    create_fleet_database,
    drop_fleet_database,
    rows_per_worker,
    run_fleet,
)
from tests.fleet.sampler import SERVER_DSN
from tests.fleet.worker import DRIVERS, Plan, url_driver

from sessionpool.bench.common import markdown_table

DIRECT = "direct"
BOUNCER = "pgbouncer"


@dataclass
class Runs:
    """Every round's result for one setup."""

    setup: str
    allowed: int  # server connections this setup may open
    results: list[FleetResult] = field(default_factory=list)
    stored_matches: list[bool] = field(default_factory=list)


def table(runs: Sequence[Runs]) -> str:
    headers = [
        "setup",
        "server conns allowed",
        "tx/s (median)",
        "min..max tx/s",
        "peak server conns",
        "errors",
        "connect errors",
        "rows = commits",
        "tx/process min/med/max",
    ]
    rows = []
    for r in runs:
        rates = [res.committed / res.elapsed for res in r.results]
        per_process = sorted(rep.total_committed for res in r.results for rep in res.reports)
        rows.append(
            [
                r.setup,
                str(r.allowed),
                f"{statistics.median(rates):,.0f}",
                f"{min(rates):,.0f}..{max(rates):,.0f}",
                str(max(res.peak_server_connections for res in r.results)),
                str(sum(res.error_count for res in r.results)),
                str(sum(res.connect_errors for res in r.results)),
                "yes" if all(r.stored_matches) else "NO",
                f"{per_process[0]}/{statistics.median(per_process):g}/{per_process[-1]}",
            ]
        )
    return markdown_table(headers, rows)


def versions() -> str:
    import psycopg

    with psycopg.connect(SERVER_DSN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    server = row[0].split()[0] if row else "?"
    binary = str(PGBOUNCER) if PGBOUNCER.exists() else "pgbouncer"
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    bouncer = out.stdout.split("\n")[0].strip() or "?"
    return (
        f"Python {platform.python_version()} on {platform.platform()}; PostgreSQL {server}; "
        f"{bouncer}; psycopg {psycopg.__version__}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--processes", type=int, default=8, help="worker processes (default 8)")
    p.add_argument("--lanes", type=int, default=10, help="threads/tasks per process (10)")
    p.add_argument("--max-size", type=int, default=10, help="max_size of each pool (10)")
    p.add_argument("--server-pool", type=int, default=10, help="PgBouncer default_pool_size")
    p.add_argument("--hold", type=float, default=0.001, help="pg_sleep per transaction (s)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--driver", choices=DRIVERS, default="psycopg", help="driver (psycopg)")
    p.add_argument("--quick", action="store_true", help="1 round of 2 s")
    return p.parse_args(argv)


def run_once(setup: Runs, plan: Plan, processes: int, database: str) -> None:
    result = run_fleet(plan, processes, database, start_method="spawn")
    if result.fatal:
        print("\n".join(result.fatal), file=sys.stderr)
    setup.results.append(result)
    reported = {rep.worker: rep.total_committed for rep in result.reports if rep.total_committed}
    setup.stored_matches.append(rows_per_worker(database, plan.run_id) == reported)
    print(
        f"  {setup.setup}: {result.committed / result.elapsed:,.0f} tx/s, "
        f"peak {result.peak_server_connections} server connections, "
        f"{result.error_count} errors {result.errors[:2]}, "
        f"{result.connect_errors} failed connects (retried by the pools)",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    rounds, duration = (1, 2.0) if args.quick else (args.rounds, args.duration)
    print(versions())
    # One database per setup: the sampler counts a setup's backends and nothing else (PgBouncer
    # keeps its idle server connections between runs).
    databases = {DIRECT: create_fleet_database(), BOUNCER: create_fleet_database()}
    try:
        with PgBouncer(
            dbname=databases[BOUNCER],
            pool_mode="transaction",
            default_pool_size=args.server_pool,
            max_client_conn=max(500, args.processes * args.max_size),
            extra={"reserve_pool_size": "0"},
        ) as bouncer:
            scheme = url_driver(args.driver)
            pool: dict[str, Any] = {"min_size": 1, "max_size": args.max_size, "wait_timeout": 60}
            direct_url = f"postgresql+{scheme}://postgres@127.0.0.1:5432/{databases[DIRECT]}"
            setups = {
                DIRECT: (Runs(DIRECT, args.processes * args.max_size), direct_url, pool),
                BOUNCER: (
                    Runs(BOUNCER, args.server_pool),
                    bouncer.url(scheme),
                    {**pool, "server_pooler": "transaction"},
                ),
            }
            for round_no in range(rounds):
                order = [DIRECT, BOUNCER] if round_no % 2 == 0 else [BOUNCER, DIRECT]
                print(f"round {round_no + 1}/{rounds}", file=sys.stderr)
                for name in order:
                    runs, url, settings = setups[name]
                    plan = Plan(
                        url=url,
                        driver=args.driver,
                        run_id=uuid.uuid4().hex,
                        lanes=args.lanes,
                        duration=duration,
                        settings=settings,
                        hold=args.hold,
                    )
                    run_once(runs, plan, args.processes, databases[name])
    finally:
        for database in databases.values():
            drop_fleet_database(database)
    print(
        f"\n### {args.processes} processes x {args.lanes} {args.driver} lanes, pools of max "
        f"{args.max_size}, hold {args.hold * 1e3:g} ms, {duration:g} s x {rounds} rounds\n"
    )
    print(table([setups[DIRECT][0], setups[BOUNCER][0]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
