"""The PostgreSQL hook's errors (the write contract's own are in :mod:`airflow_provider_mlops.sinks.contract`)."""

from __future__ import annotations

from airflow_provider_mlops.sinks.contract import WriteContractError


class PostgresWriteError(RuntimeError):
    """A batch could not be written; the target table is left as it was."""


class PostgresSchemaError(PostgresWriteError, WriteContractError):
    """The target table is missing or lacks a column of the data: found before any row moves."""
