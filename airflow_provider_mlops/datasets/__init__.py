"""
Datasets: what tasks hand each other by URI.

A dataset is a prefix in object storage (or a local folder) holding Parquet, CSV or JSON Lines files
and a manifest. Writes follow a commit protocol (:mod:`.writer`): readers (:mod:`.reader`) see the
last committed version only, never a partial one, and a prefix with nothing committed is an error,
never 0 rows. The format is described in :mod:`.manifest`.
"""

from __future__ import annotations

from airflow_provider_mlops.datasets.manifest import (
    ATTEMPTS,
    FORMATS,
    MANIFEST,
    DataFile,
    DatasetCorruptError,
    DatasetError,
    DatasetFormat,
    Manifest,
    NoCommittedDatasetError,
)
from airflow_provider_mlops.datasets.reader import iter_batches, iter_committed, iter_files
from airflow_provider_mlops.datasets.writer import ObjectStore, read_manifest, write_dataset

__all__ = [
    "ATTEMPTS",
    "FORMATS",
    "MANIFEST",
    "DataFile",
    "DatasetCorruptError",
    "DatasetError",
    "DatasetFormat",
    "Manifest",
    "NoCommittedDatasetError",
    "ObjectStore",
    "iter_batches",
    "iter_committed",
    "iter_files",
    "read_manifest",
    "write_dataset",
]
