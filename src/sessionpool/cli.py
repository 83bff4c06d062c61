"""The `sessionpool` command line: one subcommand per task, each a thin front for its module."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .demo import QUICK_SECONDS, DemoSettings, run_demo
from .errors import ConfigError, DriverNotInstalled, Error, UsageError

__all__ = ["EXIT_FAILURE", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # argparse's own code for a usage error
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C

Command = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status instead of exiting.

    Args:
        argv: the arguments after the program name (default: ``sys.argv[1:]``).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits after --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command: Command = args.run
    try:
        return command(args)
    except KeyboardInterrupt:
        print(f"sessionpool {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error of ours. Point stdout at devnull so
        # the interpreter's own flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except DriverNotInstalled as exc:  # a ConfigError too, but the set-up, not the call
        print(f"sessionpool {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (ConfigError, UsageError) as exc:  # a bad URL or setting: a usage error, as argparse's
        print(f"sessionpool {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Error as exc:  # the pool's own errors say what to change; no traceback needed
        print(f"sessionpool {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionpool",
        description="A DB-API connection pool for threads and asyncio: tools and a demo.",
        epilog="exit status: 0 ok, 1 failure, 2 usage error. "
        "Run 'sessionpool COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )
    add_demo(commands)
    add_check(commands)
    add_bench(commands)
    add_top(commands)
    return parser


# -- demo -----------------------------------------------------------------------------------


def add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    defaults = DemoSettings()
    demo = commands.add_parser(
        "demo",
        help="watch threads share a small pool of SQLite connections",
        description=(
            "Start a burst of worker threads that share a small pool of SQLite connections "
            "(a temporary database, deleted afterwards). Each worker loops: acquire a "
            "connection, insert a row and update a counter in one transaction, commit, "
            "release. The pool's state is shown live; the summary gives throughput, acquire "
            "wait percentiles and timeouts, and checks that every committed cycle is in the "
            "table and that the pool closes with no connection left."
        ),
        epilog="exit status: 0 every check held, 1 a check failed, 2 usage error.",
    )
    demo.add_argument(
        "--workers",
        metavar="N",
        type=bounded_int(1, 1000),
        default=defaults.workers,
        help="worker threads (default: %(default)s)",
    )
    duration = demo.add_mutually_exclusive_group()
    duration.add_argument(
        "--seconds",
        metavar="S",
        type=positive_float,
        default=defaults.seconds,
        help="how long the burst lasts (default: %(default)s)",
    )
    duration.add_argument(
        "--quick",
        action="store_const",
        const=QUICK_SECONDS,
        dest="seconds",
        help=f"a short run of {QUICK_SECONDS:g} s",
    )
    demo.add_argument(
        "--max-size",
        metavar="N",
        type=bounded_int(1, 1000),
        default=defaults.max_size,
        help="the pool's max_size; fewer than --workers makes workers wait (default: %(default)s)",
    )
    demo.add_argument(
        "--hold-ms",
        metavar="MS",
        type=non_negative_float,
        default=defaults.hold * 1e3,
        help="milliseconds each worker keeps its connection per cycle (default: %(default)g)",
    )
    demo.add_argument(
        "--acquire-timeout",
        metavar="S",
        type=positive_float,
        default=defaults.acquire_timeout,
        help="seconds an acquire may wait before PoolTimeout (default: %(default)s)",
    )
    demo.set_defaults(run=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    settings = DemoSettings(
        workers=args.workers,
        seconds=args.seconds,
        max_size=args.max_size,
        hold=args.hold_ms / 1e3,
        acquire_timeout=args.acquire_timeout,
    )
    return run_demo(settings)


# -- check ----------------------------------------------------------------------------------


def add_check(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "check",
        help="time connect, ping and reset against a database and advise on pool settings",
        description=(
            "Open connections to the database at URL and time a connect, the pool's liveness "
            "check (ping), a SELECT 1 round trip and the reset on return (a rollback), SAMPLES "
            "times each; read the server's limits (PostgreSQL max_connections and idle "
            "timeouts, MariaDB/MySQL max_connections and wait_timeout, SQLite's journal mode); "
            "and advise on the pool settings given in the URL's query (?max_size=20...; the "
            "defaults otherwise). The password is never shown."
        ),
        epilog="exit status: 0 checked, 1 cannot connect or the check failed, 2 usage error.",
    )
    check.add_argument("url", metavar="URL", help="a database URL, as create_pool takes")
    check.add_argument(
        "--samples",
        metavar="N",
        type=bounded_int(1, 1000),
        default=5,
        help="how many times each operation is timed (default: %(default)s)",
    )
    check.add_argument(
        "--processes",
        metavar="N",
        type=bounded_int(1, 100_000),
        default=1,
        help="processes that will each run such a pool, for the max_connections comparison "
        "(default: %(default)s)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=check_command)


def check_command(args: argparse.Namespace) -> int:
    # Imported here: the check module pulls in the factory and driver registry, which the
    # other commands do not need.
    from .check import CannotConnect, format_report, run_check

    try:
        report = run_check(args.url, samples=args.samples, processes=args.processes)
    except CannotConnect as exc:
        print(f"sessionpool check: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except DriverNotInstalled as exc:
        print(f"sessionpool check: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except ConfigError as exc:  # a malformed URL or pool setting: the caller's to fix
        print(f"sessionpool check: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_report(report))
    return EXIT_OK


# -- bench ----------------------------------------------------------------------------------


def add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure sessionpool against the peer pools that are installed",
        description=(
            "Run the benchmark suite (the scenarios of benchmarks/bench_threaded.py and "
            "benchmarks/bench_async.py) with a progress bar: sessionpool against a bare "
            "lock-and-deque floor and the peers that are installed (SQLAlchemy, DBUtils, "
            "psycopg_pool, asyncpg; install them with the [bench] extra). Peers that are "
            "missing, or need a PostgreSQL at 127.0.0.1:5432 that does not answer, are "
            "skipped and named. Writes DIR/bench.md (the tables of ratios) and DIR/bench.png "
            "(a bar chart). A full run takes about 5 minutes."
        ),
        epilog="exit status: 0 files written, 1 failure, 2 usage error. Needs the [cli] extra.",
    )
    bench.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of a few seconds per suite (too short for figures to trust)",
    )
    bench.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("bench-results"),
        help="directory for bench.md and bench.png, created if missing (default: %(default)s)",
    )
    bench.add_argument(
        "--only",
        choices=["threaded", "async"],
        help="run one suite only (default: both)",
    )
    bench.set_defaults(run=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    from .bench.runner import SUITES, BenchOptions, run_bench

    suites = (args.only,) if args.only else SUITES
    return run_bench(BenchOptions(out=args.out, quick=args.quick, suites=suites))


# -- top ------------------------------------------------------------------------------------


def add_top(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    top = commands.add_parser(
        "top",
        help="watch a running pool's figures live, or a database server's sessions",
        description=(
            "ENDPOINT is either a Prometheus metrics URL (http://host:port/metrics, as served "
            "by sessionpool.observe.prometheus.serve): one row per pool with its connections "
            "(used/idle/opening of max), waiting callers, busy peak, acquires per second, "
            "timeouts, errors, wait p50/p99 and mean use time. Or a database URL "
            "(postgresql://..., mysql://...): the server's own view of its sessions, by "
            "application and state (PostgreSQL) or by user and command (MariaDB/MySQL). "
            "Passwords are never shown."
        ),
        epilog="exit status: 0 ok, 1 endpoint unreachable or unreadable, 2 usage error. "
        "Needs the [cli] extra.",
    )
    top.add_argument("endpoint", metavar="ENDPOINT", help="http(s)://.../metrics or a database URL")
    top.add_argument(
        "--interval",
        metavar="S",
        type=positive_float,
        default=2.0,
        help="seconds between refreshes; rates are taken over one interval (default: %(default)s)",
    )
    top.add_argument(
        "--once",
        action="store_true",
        help="print one frame and exit (plain text when stdout is not a terminal); for a "
        "metrics URL it scrapes twice, --interval apart, to measure rates",
    )
    top.set_defaults(run=top_command)


def top_command(args: argparse.Namespace) -> int:
    from .top import TopOptions, run_top

    try:
        options = TopOptions(endpoint=args.endpoint, interval=args.interval, once=args.once)
    except UsageError as exc:  # a malformed ENDPOINT is a usage error, like argparse's own
        print(f"sessionpool top: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_top(options)


# -- argument types -------------------------------------------------------------------------


def bounded_int(lowest: int, highest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(f"must be {lowest} to {highest} (got {value})")
        return value

    return parse


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 (got {text})")
    return value


def non_negative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more (got {text})")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    # NaN compares false with everything, and inf would make the demo run forever.
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text})")
    return value
