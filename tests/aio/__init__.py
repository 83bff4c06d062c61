"""Tests of the asyncio AsyncPool and AsyncLease against the fake async driver."""
