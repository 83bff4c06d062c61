"""Speed benchmark of sessionpool's AsyncPool against an asyncio floor, peer pools and the
one-connection-per-task ceiling of each PostgreSQL driver.

A thin front: the benchmark lives in `sessionpool.bench.aio`, which `sessionpool bench` runs
too. See benchmarks/README.md for the scenarios and their columns.
"""

import sys

from sessionpool.bench.aio import main

if __name__ == "__main__":
    sys.exit(main())
