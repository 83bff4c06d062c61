"""Tests of the threaded Pool and Lease against the fake DB-API driver and sqlite3."""
