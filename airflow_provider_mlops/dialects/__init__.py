"""
SQL dialects: the SQL text the SQL hooks run, built in one place per database.

A hook owns its connection and its transaction; its dialect owns the words: identifier quoting,
bind placeholders, column types for an Arrow schema, the upsert / partition / watermark clauses and
the Python values a driver accepts. :func:`get_dialect` picks one from a common-sql hook's
``dialect_name`` (as common-sql's own ``Dialect`` is picked), so a new database is a new module here
and a line in :func:`get_dialect`, not a branch in a hook.

- :class:`~.base.AnsiDialect`: ANSI SQL with ``INSERT ... ON CONFLICT`` (SQLite, PostgreSQL, and the
  fallback for any other common-sql database).
- :class:`~.sqlite.SqliteDialect`: decimals, timestamps and dates as exact text.
- :class:`~.mysql.MySqlDialect`: backticks, ``ON DUPLICATE KEY UPDATE``, ``DATETIME(6)``.
- :class:`~.postgres.PostgresDialect`: the COPY hook's staging, merge and partition statements,
  composed with ``psycopg.sql``.

Nothing here connects to a database or imports a driver at module level.
"""

from __future__ import annotations

from airflow_provider_mlops.dialects.base import AnsiDialect, quote_identifier

__all__ = ["AnsiDialect", "get_dialect", "quote_identifier"]


def get_dialect(dialect_name: str | None, placeholder: str = "?", *, sqlite: bool = False) -> AnsiDialect:
    """
    The dialect for a common-sql hook's ``dialect_name`` (``mysql``, ``sqlite``, ``postgresql``...).

    :param placeholder: the driver's bind placeholder (``DbApiHook.placeholder``).
    :param sqlite: the hook is SQLite's whatever its ``dialect_name`` says.
    """
    name = (dialect_name or "").lower()
    if "mysql" in name or "mariadb" in name:
        from airflow_provider_mlops.dialects.mysql import MySqlDialect

        return MySqlDialect(placeholder)
    if "sqlite" in name or sqlite:
        from airflow_provider_mlops.dialects.sqlite import SqliteDialect

        return SqliteDialect(placeholder)
    if name.startswith("postgres"):
        from airflow_provider_mlops.dialects.postgres import PostgresDialect

        return PostgresDialect()
    return AnsiDialect(placeholder)
