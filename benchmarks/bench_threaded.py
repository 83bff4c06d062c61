"""Speed benchmark of the threaded sessionpool against a floor, a fair floor and peer pools.

A thin front: the benchmark lives in `sessionpool.bench.threaded`, which `sessionpool bench`
runs too. See benchmarks/README.md for the scenarios and their columns.
"""

import sys

from sessionpool.bench.threaded import main

if __name__ == "__main__":
    sys.exit(main())
