"""Tests of the compat faces: cx_Oracle's SessionPool and SQLAlchemy's pools over sessionpool."""
