"""
PostgreSQL: the hook that streams Arrow record batches in and out (psycopg 3 and ADBC).

One layer per module:

- :mod:`.hook`: :class:`PostgresBatchHook`, the connection (libpq extras, UTC sessions, *Test*).
- :mod:`.reader`: its read path (``COPY (query) TO STDOUT`` parsed by Arrow in whole-row blocks).
- :mod:`.writer`: its write path (the write contract, one transaction, staging and merge).
- :mod:`.sessions`: the write sessions, psycopg (CSV ``COPY``) and ADBC (binary ``COPY``).
- :mod:`.copy_codec`: the CSV form of ``COPY``, both ways.
- :mod:`.types`: the PostgreSQL <-> Arrow type tables.
- :mod:`.errors`: :class:`PostgresWriteError`, :class:`PostgresSchemaError`.

The SQL text is :class:`~airflow_provider_mlops.dialects.postgres.PostgresDialect`'s. Every name
importable from the former single module ``hooks/postgres.py`` is importable from here.
"""

from __future__ import annotations

from airflow_provider_mlops.hooks.postgres.copy_codec import batch_to_copy_csv
from airflow_provider_mlops.hooks.postgres.errors import PostgresSchemaError, PostgresWriteError
from airflow_provider_mlops.hooks.postgres.hook import LOAD_ENGINES, LoadEngine, PostgresBatchHook
from airflow_provider_mlops.hooks.postgres.writer import WRITE_MODES, WriteMode

__all__ = [
    "LOAD_ENGINES",
    "WRITE_MODES",
    "LoadEngine",
    "PostgresBatchHook",
    "PostgresSchemaError",
    "PostgresWriteError",
    "WriteMode",
    "batch_to_copy_csv",
]
