"""
What :class:`~airflow_provider_mlops.operators.load.LoadOperator` writes: one frozen spec per kind
of sink, and the write modes each one has.

- :class:`SqlTable`: a table on PostgreSQL (COPY) or any other common-sql database.
- :class:`MongoCollection`: a MongoDB collection.
- :class:`LakeTable`: a Delta Lake table (the lake) in S3 or on a local path.
- :class:`FileExport`: one CSV or JSON Lines export file, in S3 or on a local path.

One write-mode vocabulary for every sink (:data:`~airflow_provider_mlops.sinks.contract.WRITE_MODES`):

- ``append``: the rows are added (not idempotent: a re-run adds them again);
- ``replace``: the whole table, collection or file is replaced;
- ``replace_partition``: the rows matching the load's ``partition`` (``{"day": "{{ ds }}"}``) are
  replaced, and every written row must belong to it (the idempotent choice for daily loads);
- ``upsert``: rows are inserted or replaced by the spec's ``keys``.

SqlTable, MongoCollection and LakeTable have the four; FileExport only ``replace`` (an export is
rewritten on every run). A mode a sink does not have is refused when the task is built
(:meth:`SinkSpec.check_mode`). A spec is written by one method of the hook its connection gets,
``hook.write(spec, batches, mode=..., partition=...)``; the connection type chooses the hook
(:func:`~airflow_provider_mlops.hooks.connection_types.get_batch_hook`), never the spec. Templated
fields are rendered like the sources' (:class:`~airflow_provider_mlops.utils.specs.Spec`).
A plain module: nothing heavy is imported at import time (DAG files import it).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from airflow_provider_mlops.sinks.contract import WRITE_MODES
from airflow_provider_mlops.utils.specs import Spec, fail, require_columns, require_text

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["FileExport", "LakeTable", "MongoCollection", "SinkSpec", "SqlTable", "WriteMode"]

WriteMode = Literal["append", "replace", "replace_partition", "upsert"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class SinkSpec(Spec):
    """
    What every sink kind shares (keyword-only).

    :param batch_size: rows per record batch read from the input (memory stays bounded by it).
    """

    batch_size: int = 50_000

    #: the write modes this sink has
    modes: ClassVar[tuple[str, ...]] = WRITE_MODES
    #: the mode of a load that names none and has no ``keys`` (with ``keys``: ``upsert``)
    default_mode: ClassVar[str] = "append"
    #: whether the sink needs a connection (a table, a collection) or defaults to the storage's
    needs_connection: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            fail(self, "batch_size", f"must be a positive whole number, got {self.batch_size!r}")

    @property
    def name(self) -> str:
        """What is written, for logs, Assets and lineage."""
        raise NotImplementedError

    @property
    def upsert_keys(self) -> list[str] | None:
        """The key columns of ``upsert`` (None for a sink without keys)."""
        keys = getattr(self, "keys", None)
        return list(keys) if keys else None

    def check_mode(self, mode: str | None, partition: Mapping[str, Any] | None) -> str:
        """
        The mode a load with this sink uses (``mode``, else ``upsert`` with ``keys``, else
        :attr:`default_mode`); a mode the sink does not have, ``upsert`` without ``keys`` or
        ``replace_partition`` without a partition is a ValueError naming the sink and the mode.
        """
        sink = type(self).__name__
        chosen = mode or ("upsert" if self.upsert_keys else self.default_mode)
        if chosen not in WRITE_MODES:
            raise ValueError(f"mode must be one of {WRITE_MODES}, got {chosen!r}")
        if chosen not in self.modes:
            raise ValueError(f"{sink} has no mode {chosen!r}: its modes are {self.modes}")
        if chosen == "upsert" and not self.upsert_keys:
            raise ValueError(f"{sink}: mode='upsert' needs keys=[...] in the {sink}")
        if chosen == "replace_partition" and not partition:
            raise ValueError(f"{sink}: mode='replace_partition' needs partition={{column: value}}")
        if partition and chosen != "replace_partition":
            raise ValueError(f"{sink}: partition= is for mode='replace_partition', not {chosen!r}")
        return chosen


@dataclasses.dataclass(frozen=True)
class SqlTable(SinkSpec):
    """
    A table on PostgreSQL (COPY and one transaction) or any other common-sql database
    (``executemany`` in one transaction).

    ``SqlTable("analytics.customers", keys=["customer_id"], newer_column="updated_at")``

    :param table: ``table`` or ``schema.table``. (templated)
    :param keys: key columns of ``upsert``: every row needs a non-NULL key, unique within the load.
    :param create_table: create the table from the data's schema when missing.
    :param newer_column: ``upsert``: replace a stored row only with a row at least as new in this
        column (e.g. ``updated_at``), so days loaded out of order never regress the table.
    """

    table: str
    keys: Sequence[str] | None = None
    create_table: bool = True
    newer_column: str | None = None

    templated: ClassVar[tuple[str, ...]] = ("table",)

    def __post_init__(self) -> None:
        super().__post_init__()
        require_text(self, "table", self.table)
        require_columns(self, "keys", self.keys)
        if not isinstance(self.create_table, bool):
            fail(self, "create_table", f"must be True or False, got {self.create_table!r}")
        if self.newer_column is not None:
            require_text(self, "newer_column", self.newer_column)
            if not self.keys:
                fail(self, "newer_column", "compares the rows of an upsert: give keys=[...] too")

    @property
    def name(self) -> str:
        return self.table


@dataclasses.dataclass(frozen=True)
class MongoCollection(SinkSpec):
    """
    A MongoDB collection. ``replace`` and ``upsert`` are all-or-nothing (a transaction, or a
    staging collection on a server without transactions); ``append`` inserts (not idempotent).

    ``MongoCollection("customers", keys=["customer_id"])``

    :param collection: the collection. (templated)
    :param database: the database (default: the connection's). (templated)
    :param keys: the fields identifying a document for ``upsert`` (an ``_id`` column is used as is).
    :param json_columns: columns holding JSON text, stored as sub-documents.
    """

    collection: str
    database: str | None = None
    keys: Sequence[str] | None = None
    json_columns: Sequence[str] = ()

    templated: ClassVar[tuple[str, ...]] = ("collection", "database")

    def __post_init__(self) -> None:
        super().__post_init__()
        require_text(self, "collection", self.collection)
        if self.database is not None:
            require_text(self, "database", self.database)
        require_columns(self, "keys", self.keys)
        if self.json_columns:
            require_columns(self, "json_columns", self.json_columns)

    @property
    def name(self) -> str:
        return self.collection


@dataclasses.dataclass(frozen=True)
class LakeTable(SinkSpec):
    """
    A Delta Lake table (the lake) in S3 or on a local path. Each load is one commit, a new table
    version: older versions stay readable (``uri@v12``) until ``vacuum_retention_hours`` removes
    their files. Default mode ``replace`` (``upsert`` with ``keys``: a MERGE).

    ``LakeTable("s3://lake/activity", partition_by=["day"])``

    :param uri: the table's URI (``s3://``, ``file://``, ``staging://`` or a local path). (templated)
    :param keys: key columns of ``upsert``.
    :param partition_by: the table's partition columns (used when the table is created).
    :param vacuum_retention_hours: after the load, delete the files no version younger than this
        needs (168 = 7 days, Delta's default; None: no vacuum). Time travel to older versions
        fails afterwards.
    :param optimize: after the load, compact small files (a new version with the same rows).
    """

    uri: str
    keys: Sequence[str] | None = None
    partition_by: Sequence[str] | None = None
    vacuum_retention_hours: float | None = None
    optimize: bool = False

    templated: ClassVar[tuple[str, ...]] = ("uri",)
    default_mode: ClassVar[str] = "replace"
    needs_connection: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require_text(self, "uri", self.uri)
        require_columns(self, "keys", self.keys)
        require_columns(self, "partition_by", self.partition_by)
        hours = self.vacuum_retention_hours
        if hours is not None and (
            isinstance(hours, bool) or not isinstance(hours, (int, float)) or hours < 0
        ):
            fail(self, "vacuum_retention_hours", f"must be a number of hours >= 0 or None, got {hours!r}")
        if not isinstance(self.optimize, bool):
            fail(self, "optimize", f"must be True or False, got {self.optimize!r}")

    @property
    def name(self) -> str:
        from airflow_provider_mlops.utils.staging import resolve_uri

        return resolve_uri(self.uri)


@dataclasses.dataclass(frozen=True)
class FileExport(SinkSpec):
    """
    One CSV or JSON Lines export file under ``uri`` (``part-00000.csv``), replaced whole on every
    run; for tables in files, use :class:`LakeTable`.

    ``FileExport("s3://exports/customers/{{ ds }}/", format="csv")``

    :param uri: the export's prefix (``s3://``, ``file://``, ``staging://`` or a local path). (templated)
    :param format: ``csv`` or ``jsonl``.
    """

    uri: str
    format: Literal["csv", "jsonl"] = "csv"

    templated: ClassVar[tuple[str, ...]] = ("uri",)
    modes: ClassVar[tuple[str, ...]] = ("replace",)
    default_mode: ClassVar[str] = "replace"
    needs_connection: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        require_text(self, "uri", self.uri)
        if self.format not in ("csv", "jsonl"):
            fail(self, "format", f"must be csv or jsonl (a Delta table is a LakeTable), got {self.format!r}")

    @property
    def name(self) -> str:
        from airflow_provider_mlops.utils.staging import resolve_uri

        return resolve_uri(self.uri)
