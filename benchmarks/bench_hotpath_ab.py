"""A/B of the uncontended acquire+release cycle: this tree against an earlier revision, and
this tree with observability switched on, interleaved in one run.

The machine is noisy, so the two revisions run alternately in fresh subprocesses, round after
round, and each figure is the median of the rounds' best batches; read the ratios. The base
revision is checked out into a temporary git worktree (removed afterwards).

    .venv/bin/python benchmarks/bench_hotpath_ab.py --base 5c8d19e --rounds 9
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Run in a subprocess with the revision's src first on sys.path; prints ns per cycle.
_CYCLE = r"""
import sqlite3, sys, time
sys.path.insert(0, sys.argv[1])
import sessionpool
setup = sys.argv[2]
settings = {"detailed_stats": True} if setup == "detailed_stats" else {}
pool = sessionpool.create_pool(
    creator=lambda: sqlite3.connect(":memory:", check_same_thread=False),
    min_size=1, max_size=1, ping_interval=-1, **settings,
)
pool.wait(5)
if setup == "listeners":
    pool.add_listener("checkout", lambda event: None)
    pool.add_listener("checkin", lambda event: None)
acquire = pool.acquire
best = float("inf")
for _ in range(5):
    started = time.perf_counter()
    for _ in range(50_000):
        acquire().release()
    best = min(best, (time.perf_counter() - started) / 50_000)
pool.close()
print(best * 1e9)
"""


def cycle_ns(src: Path, setup: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _CYCLE, str(src), setup], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD~1", help="the revision to compare with")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sessionpool-ab-") as scratch:
        base_tree = Path(scratch) / "base"
        git = ["git", "-C", str(ROOT), "worktree"]
        subprocess.run([*git, "add", "-q", "--detach", str(base_tree), args.base], check=True)
        try:
            runs = {
                ("base", "plain"): base_tree / "src",
                ("this tree", "plain"): ROOT / "src",
                ("this tree", "detailed_stats"): ROOT / "src",
                ("this tree", "listeners"): ROOT / "src",
            }
            samples: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
            for number in range(args.rounds):
                print(f"round {number + 1}/{args.rounds}", file=sys.stderr)
                for (tree, setup), src in runs.items():
                    samples[tree, setup].append(cycle_ns(src, setup))
        finally:
            subprocess.run([*git, "remove", "--force", str(base_tree)], check=False)
    base = statistics.median(samples["base", "plain"])
    print(f"| tree | setup | ns per acquire+release (median of {args.rounds}) | x base |")
    print("| --- | --- | ---: | ---: |")
    for (tree, setup), values in samples.items():
        label = f"{tree} ({args.base})" if tree == "base" else tree
        middle = statistics.median(values)
        print(f"| {label} | {setup} | {middle:.0f} | {middle / base:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
