"""The benchmark suite behind `sessionpool bench` and ``benchmarks/*.py``: sessionpool against
a floor and the peer pools that are installed. Imported only by those callers, never by the pool.
"""
