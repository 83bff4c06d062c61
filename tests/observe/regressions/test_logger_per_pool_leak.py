"""Each pool gets its own logger `sessionpool.pool.<name>`, and a pool built from a creator
is named `pool-<id>`: logging keeps every logger it ever made (Logger.manager.loggerDict),
so a process that creates and closes pools keeps one logger per pool for good (SQLAlchemy
avoids per-instance loggers for exactly this reason)."""

from __future__ import annotations

import logging

import sessionpool
from tests.fakes.fake_dbapi import FakeDatabase


def test_closed_pools_do_not_accumulate_loggers() -> None:
    with FakeDatabase() as db:
        before = len(logging.Logger.manager.loggerDict)
        for _ in range(200):
            pool = sessionpool.create_pool(db.connect, min_size=0, max_size=1, lazy=True)
            pool.close()
            del pool
        grown = len(logging.Logger.manager.loggerDict) - before
        assert grown < 20, f"{grown} loggers left behind by 200 closed pools"
