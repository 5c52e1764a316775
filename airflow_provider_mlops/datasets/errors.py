"""The errors and formats of the dataset layer (no heavy import: DAG files reach this module)."""

from __future__ import annotations

from typing import Literal

DatasetFormat = Literal["parquet", "csv", "jsonl"]
#: ``parquet`` datasets are Delta Lake tables; ``csv`` and ``jsonl`` are exports (one file each).
FORMATS: tuple[str, ...] = ("parquet", "csv", "jsonl")
EXTENSIONS = {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl"}
#: the transaction log folder of a Delta table
DELTA_LOG = "_delta_log"


class DatasetError(RuntimeError):
    """A dataset cannot be written or read as committed (permanent: a retry meets the same data)."""


class NoCommittedDatasetError(DatasetError, FileNotFoundError):
    """The URI holds no committed dataset (no Delta commit, no data file): never read as 0 rows."""


class DatasetCorruptError(DatasetError):
    """A file a committed version names is missing or unreadable (removed under the table)."""


class DatasetConflictError(RuntimeError):
    """
    Another writer committed to the same table first in a way this write conflicts with (a zombie
    task and its retry, two runs of one day). Nothing of this write was committed; a retry reads
    the new state and writes again. Not a :class:`DatasetError`: a retry can fix it.
    """
