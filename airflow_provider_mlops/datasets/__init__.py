"""
Datasets: what tasks hand each other by URI, and the lake.

A Parquet dataset is a Delta Lake table (:mod:`.delta`): written as one commit from a stream of
Arrow batches, read back as a stream of batches from its last committed version (or an older one:
``uri@v12`` / ``version=12``). Readers see the last committed version only, never a partial one,
and a URI with nothing committed is an error, never 0 rows. Any engine that reads Delta (Spark,
Polars, DuckDB, Trino, Athena...) reads it too.

CSV and JSON Lines are exports (:mod:`.files`): one file, written whole and committed by one atomic
step. A URI that is not a table is read as plain files (data handed in from elsewhere).

Tables are read and written through the storage hook
(:func:`airflow_provider_mlops.hooks.s3.storage_hook`: ``table_version``, ``iter_batches``,
``write_dataset``...), which brings the connection's credentials; this package holds no hook.
"""

from __future__ import annotations

from airflow_provider_mlops.datasets.errors import (
    DELTA_LOG,
    FORMATS,
    DatasetConflictError,
    DatasetCorruptError,
    DatasetError,
    DatasetFormat,
    NoCommittedDatasetError,
)

__all__ = [
    "DELTA_LOG",
    "FORMATS",
    "DatasetConflictError",
    "DatasetCorruptError",
    "DatasetError",
    "DatasetFormat",
    "NoCommittedDatasetError",
]
