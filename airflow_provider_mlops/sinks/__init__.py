"""
The sinks LoadOperator writes, as typed specs (:mod:`~airflow_provider_mlops.sinks.specs`), and what
every sink (PostgreSQL, any common-sql database, MongoDB, the lake, export files) promises, written
once (:mod:`~airflow_provider_mlops.sinks.contract`).
"""

from __future__ import annotations

from airflow_provider_mlops.sinks.specs import (
    FileExport,
    LakeTable,
    MongoCollection,
    SinkSpec,
    SqlTable,
    WriteMode,
)

__all__ = ["FileExport", "LakeTable", "MongoCollection", "SinkSpec", "SqlTable", "WriteMode"]
