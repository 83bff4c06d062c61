"""`sessionpool top`: a live terminal view of running pools (through their Prometheus metrics
endpoint) or of a database server's sessions. Imported only by the command line.
"""

from .command import TopOptions, run_top

__all__ = ["TopOptions", "run_top"]
