"""Faces of sessionpool in foreign vocabularies: cx_Oracle's SessionPool and SQLAlchemy's pools."""
