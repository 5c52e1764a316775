"""
Datasets: what tasks hand each other by URI, and the lake.

A Parquet dataset is a Delta Lake table (:mod:`.delta`): written as one commit from a stream of
Arrow batches, read back as a stream of batches from its last committed version (or an older one:
``uri@v12`` / ``version=12``). Readers see the last committed version only, never a partial one,
and a URI with nothing committed is an error, never 0 rows. Any engine that reads Delta (Spark,
Polars, DuckDB, Trino, Athena...) reads it too.

CSV and JSON Lines are exports (:mod:`.files`): one file, written whole and committed by one atomic
step. A URI that is not a table is read as plain files (data handed in from elsewhere).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_mlops.datasets.errors import (
    DELTA_LOG,
    FORMATS,
    DatasetConflictError,
    DatasetCorruptError,
    DatasetError,
    DatasetFormat,
    NoCommittedDatasetError,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pyarrow as pa

__all__ = [
    "DELTA_LOG",
    "FORMATS",
    "DatasetConflictError",
    "DatasetCorruptError",
    "DatasetError",
    "DatasetFormat",
    "NoCommittedDatasetError",
    "read_batches",
    "table_version",
]


def table_version(uri: str, *, storage_conn_id: str | None = None) -> int:
    """
    The current version of the Delta table at ``uri``: record it next to what was computed from the
    table, and read exactly those rows later with ``f"{uri}@v{version}"`` (or ``version=``).

    :param storage_conn_id: the connection for ``s3://`` URIs (default ``[mlops] storage_conn_id``).
    :raises NoCommittedDatasetError: nothing was ever committed at ``uri``.
    """
    from airflow_provider_mlops.hooks.s3 import storage_hook

    return storage_hook(storage_conn_id).table_version(uri)


def read_batches(
    uri: str,
    *,
    version: int | None = None,
    storage_conn_id: str | None = None,
    columns: list[str] | None = None,
    batch_size: int = 50_000,
) -> Iterator[pa.RecordBatch]:
    """
    The rows of the table at ``uri`` as Arrow batches: the latest version, or ``version`` (also
    written ``uri@v12``), exactly as committed then.
    """
    from airflow_provider_mlops.hooks.s3 import storage_hook

    return storage_hook(storage_conn_id).iter_batches(
        uri, version=version, columns=columns, batch_size=batch_size
    )
