"""The pool's decision core: pure bookkeeping, no threads, asyncio, clock, logging or driver.

Shells (`_sync`, later `_async`) call it under their own lock, passing `now`, and carry out the
effects it returns after releasing the lock.
"""
