"""LoadOperator: a dataset URI -> PostgreSQL / any common-sql database, MongoDB, a Delta Lake table (the lake) or export files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_mlops.hooks.s3 import storage_hook
from airflow_provider_mlops.operators.common import (
    fail_fast,
    iter_inputs,
    require_inputs,
    static_uri,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context

    from airflow_provider_mlops.sinks.protocols import SqlSourceSink


class LoadOperator(BaseOperator):
    """
    Write a dataset into its target, idempotently per logical date.

    Targets, chosen by the arguments and the connection type:

    - a SQL ``table`` (PostgreSQL: COPY + one transaction; other common-sql databases: executemany
      in one transaction). Modes: ``append``, ``replace``, ``replace_partition`` (rows of
      ``partition`` replaced: the idempotent choice for daily loads) and ``upsert`` by ``keys``.
    - a MongoDB ``collection``. Modes: ``upsert`` by ``keys`` (idempotent), ``replace`` (documents
      matching ``partition`` deleted first, then inserted) or ``insert`` (not idempotent: a re-run
      inserts again).
    - ``output_uri`` on S3 or a local path: a Delta Lake table (``format="parquet"``, the lake),
      partitioned by ``partition_by``. Modes: ``replace`` (default: the whole table, one commit),
      ``append``, ``replace_partition`` (the rows of ``partition`` replaced in one commit: the
      idempotent choice for daily loads; every written row must belong to the partition) and
      ``upsert`` (MERGE on ``keys``). Each load is a new table version: older versions stay readable
      (``uri@v12``) until ``vacuum_retention_hours`` removes their files. ``format="csv"`` /
      ``"jsonl"`` write one export file instead, replaced on every run.

    The target is declared as an outlet Asset (``x-mlops-sql://<conn_id>/<table>``,
    ``x-mlops-mongo://<conn_id>/<collection>``, or the storage URI) unless ``outlets`` is given, so
    other DAGs can be scheduled on it.

    The same rules on every sink (see :mod:`airflow_provider_mlops.sinks.contract`): a NULL upsert
    key or a key repeated within the load fails the task before anything is committed, naming the
    rows; an empty input does what ``on_empty`` says; key, partition and target columns the
    database does not know fail the task before any row moves. These failures are
    ``AirflowFailException`` (no retries: a retry would meet the same data).

    Returns (XCom) the counts (``rows``, ``inserted``, ``updated``, ``deleted``; MongoDB adds
    ``matched``, ``modified``, ``upserted``; files ``files`` and ``bytes``) and ``target``.

    :param input_uri: a dataset URI, an upstream XCom dict with ``uri``, or a list. (templated)
    :param target_conn_id: the target connection (None for local files). (templated)
    :param table: SQL: ``table`` or ``schema.table``. (templated)
    :param collection: MongoDB: the collection. (templated)
    :param database: MongoDB: the database (default: the connection's). (templated)
    :param output_uri: the lake: the Delta table's URI; exports: the file or prefix. (templated)
    :param format: ``parquet`` (a Delta table), ``csv`` or ``jsonl`` (an export file).
    :param mode: see above; default ``append`` (SQL), ``replace`` (the lake), ``upsert`` when ``keys``
        are given.
    :param partition_by: the lake: the table's partition columns (used when the table is created).
    :param vacuum_retention_hours: the lake: after the load, delete files no version younger than
        this needs (168 = 7 days, Delta's default; None: no vacuum). Time travel to older versions
        fails afterwards.
    :param optimize: the lake: after the load, compact small files (a new version with the same rows).
    :param keys: key columns for ``upsert``: every row needs a non-NULL key, unique within the load.
    :param partition: column -> value for ``replace_partition`` / Mongo ``replace``, e.g.
        ``{"ds": "{{ ds }}"}``. (templated)
    :param newer_column: SQL ``upsert``: replace a stored row only with a row at least as new in this
        column (e.g. ``updated_at``), so days loaded out of order never regress the table.
    :param create_table: SQL: create the table from the data's schema when missing.
    :param json_columns: MongoDB: JSON-text columns stored as sub-documents.
    :param input_format: format of the input dataset.
    :param storage_conn_id: connection for ``s3://`` URIs (default ``[mlops] storage_conn_id``).
    :param batch_size: rows per batch.
    :param on_empty: when the input has no rows: ``skip`` (default: the target is not touched and
        the task ends *skipped*, so it records no Asset event and the DAGs scheduled on the target do
        not run again on unchanged data; tasks downstream in the same DAG that must still run need
        ``trigger_rule="none_failed"``), ``replace`` (the load runs with no rows: a replace mode
        empties the table, partition, collection or file prefix, and the Asset event is recorded) or
        ``fail``.
    """

    template_fields: Sequence[str] = (
        "input_uri",
        "target_conn_id",
        "table",
        "collection",
        "database",
        "output_uri",
        "partition",
    )
    ui_color = "#e8f5e9"

    def __init__(
        self,
        *,
        input_uri: Any,
        target_conn_id: str | None = None,
        table: str | None = None,
        collection: str | None = None,
        database: str | None = None,
        output_uri: str | None = None,
        format: str = "parquet",
        mode: str | None = None,
        keys: Sequence[str] | None = None,
        partition: Mapping[str, Any] | None = None,
        create_table: bool = True,
        newer_column: str | None = None,
        json_columns: Sequence[str] = (),
        input_format: str = "parquet",
        storage_conn_id: str | None = None,
        batch_size: int = 50_000,
        on_empty: str = "skip",
        partition_by: Sequence[str] | None = None,
        vacuum_retention_hours: float | None = None,
        optimize: bool = False,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_mlops.sinks.contract import ON_EMPTY

        if on_empty not in ON_EMPTY:
            raise ValueError(f"on_empty must be one of {ON_EMPTY}, got {on_empty!r}")
        targets = [t for t in (table, collection, output_uri) if t]
        if len(targets) != 1:
            raise ValueError("Give exactly one target: table=..., collection=... or output_uri=...")
        if (table or collection) and not target_conn_id:
            raise ValueError("A table or collection target needs target_conn_id")
        if "outlets" not in kwargs:
            from airflow_provider_mlops.assets import collection_asset, storage_asset, table_asset

            if table and "{{" not in table and "{{" not in (target_conn_id or ""):
                kwargs["outlets"] = [table_asset(target_conn_id or "", table)]
            elif collection and "{{" not in collection and "{{" not in (target_conn_id or ""):
                kwargs["outlets"] = [collection_asset(target_conn_id or "", collection, database)]
            elif static_uri(output_uri):
                kwargs["outlets"] = [storage_asset(str(output_uri))]
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.target_conn_id = target_conn_id
        self.table = table
        self.collection = collection
        self.database = database
        self.output_uri = output_uri
        self.format = format
        self.mode = mode
        self.keys = list(keys) if keys else None
        self.partition = partition
        self.create_table = create_table
        self.newer_column = newer_column
        self.json_columns = list(json_columns)
        self.input_format = input_format
        self.storage_conn_id = storage_conn_id
        self.batch_size = batch_size
        self.on_empty = on_empty
        self.partition_by = list(partition_by) if partition_by else None
        self.vacuum_retention_hours = vacuum_retention_hours
        self.optimize = optimize
        if output_uri and format == "parquet":
            lake_modes = ("replace", "append", "replace_partition", "upsert")
            if (mode or "replace") not in lake_modes:
                raise ValueError(f"mode for a Delta table must be one of {lake_modes}, got {mode!r}")
            if (mode == "upsert" or (mode is None and keys)) and not keys:
                raise ValueError("mode='upsert' needs keys")
            if mode == "replace_partition" and not partition:
                raise ValueError("mode='replace_partition' needs partition={column: value}")
        self._lineage: dict[str, Any] = {}

    @fail_fast()  # bad keys, columns or options (WriteContractError...): the next try meets the same data
    def execute(self, context: Context) -> dict[str, Any]:
        return self._load()

    def _load(self) -> dict[str, Any]:
        from airflow_provider_mlops.hooks.connection_types import connection_kind
        from airflow_provider_mlops.hooks.s3 import ObjectStorageHook
        from airflow_provider_mlops.sinks.contract import empty_outcome, split_empty
        from airflow_provider_mlops.utils.staging import resolve_uri

        inputs = require_inputs(self.input_uri)
        storage = storage_hook(self.storage_conn_id)

        # The input table's schema, so that an empty dataset still creates its target with the right columns.
        schema = storage.read_schema(inputs[0])
        empty, stream = split_empty(
            iter_inputs(storage, inputs, format=self.input_format, batch_size=self.batch_size)
        )
        name = self.table or self.collection or self.output_uri
        if empty and empty_outcome(self.on_empty, target=repr(name)) == "skip":
            # The same on every sink: an empty input never truncates a target unless asked to.
            # Skipped, not succeeded: a successful task records its outlets' Asset events, and the
            # table's consumers (monitoring, predictions, retraining) would run again on unchanged data.
            from airflow.providers.common.compat.sdk import AirflowSkipException

            raise AirflowSkipException(
                f"The input {inputs} has no rows: {name!r} is not touched and no Asset event is recorded "
                "(on_empty='skip'; on_empty='replace' empties a replace-mode target)"
            )

        def batches() -> Any:
            return stream

        if self.output_uri:
            target_storage = (
                ObjectStorageHook(aws_conn_id=self.target_conn_id) if self.target_conn_id else storage
            )
            uri = resolve_uri(self.output_uri)
            if self.format == "parquet":
                counts = self._load_lake(target_storage, uri, batches(), schema)
                result_uri = uri
            else:
                result = target_storage.write_dataset(
                    uri,
                    batches(),
                    format=self.format,  # type: ignore[arg-type]
                    schema=schema,
                )
                counts = {"rows": result["rows"], "files": len(result["files"]), "bytes": result["bytes"]}
                result_uri = result["uri"]
            target = {"kind": "storage", "conn_id": self.target_conn_id, "name": result_uri}
        elif self.table:
            from airflow_provider_mlops.hooks.connection_types import get_sql_hook

            mode = self.mode or ("upsert" if self.keys else "append")
            hook: SqlSourceSink = get_sql_hook(self.target_conn_id or "")
            counts = hook.write_batches(
                self.table,
                batches(),
                mode=mode,
                keys=self.keys,
                partition=self.partition,
                create_table=self.create_table,
                schema=schema,
                newer_column=self.newer_column,
                on_empty=self.on_empty,  # type: ignore[arg-type]
            )
            target = {
                "kind": connection_kind(self.target_conn_id),
                "conn_id": self.target_conn_id,
                "name": self.table,
            }
        else:
            from airflow_provider_mlops.hooks.mongo import MongoBatchHook

            mode = self.mode or ("upsert" if self.keys else "insert")
            if mode == "insert":
                self.log.warning(
                    "mode='insert' into MongoDB is not idempotent: a re-run inserts the rows again"
                )
            mongo = MongoBatchHook(mongo_conn_id=self.target_conn_id or "")
            try:
                counts = mongo.write_batches(
                    self.collection or "",
                    batches(),
                    database=self.database,
                    mode=mode,  # type: ignore[arg-type]
                    keys=self.keys,
                    partition=self.partition,
                    json_columns=self.json_columns,
                    on_empty=self.on_empty,  # type: ignore[arg-type]
                )
            finally:
                mongo.close()
            target = {"kind": "mongo", "conn_id": self.target_conn_id, "name": self.collection}
        self._lineage = {"inputs": inputs, "target": target, "schema": _schema_json(schema)}
        self.log.info("Loaded %s into %s %r: %s", inputs, target["kind"], target["name"], counts)
        return {**counts, "target": target["name"]}

    def _load_lake(self, storage: Any, uri: str, batches: Any, schema: Any) -> dict[str, Any]:
        """The lake: one commit to the Delta table at ``uri``, then the maintenance asked for."""
        from airflow_provider_mlops.datasets import delta

        mode = self.mode or ("upsert" if self.keys else "replace")
        if mode == "upsert":
            result = storage.merge_dataset(
                uri, batches, keys=self.keys or [], schema=schema, partition_by=self.partition_by
            )
        elif mode == "replace_partition":
            partition = dict(self.partition or {})
            result = storage.write_dataset(
                uri,
                delta.rows_in_partition(batches, partition),
                schema=schema,
                mode="overwrite",
                predicate=delta.partition_predicate(partition),
                partition_by=self.partition_by,
            )
        else:
            result = storage.write_dataset(
                uri,
                batches,
                schema=schema,
                mode="append" if mode == "append" else "overwrite",
                partition_by=self.partition_by,
            )
        counts: dict[str, Any] = {
            "rows": result["rows_written"],
            "table_rows": result["rows"],
            "version": result["version"],
            "files": len(result["files"]),
            "bytes": result["bytes"],
        }
        for key in ("inserted", "updated"):
            if key in result:
                counts[key] = result[key]
        if self.optimize:
            metrics = storage.optimize_dataset(uri)
            counts["optimized_files"] = int(metrics.get("numFilesRemoved", 0))
            counts["version"] = storage.table_version(uri)
        if self.vacuum_retention_hours is not None:
            removed = storage.vacuum_dataset(uri, retention_hours=self.vacuum_retention_hours)
            counts["vacuumed_files"] = len(removed)
        return counts

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_mlops.utils.lineage import LineageDataset, dataset_for, operator_lineage

        if not self._lineage:
            return None
        target = self._lineage["target"]
        out = dataset_for(target["kind"], target["conn_id"], target["name"])
        return operator_lineage(
            [dataset_for("storage", None, uri) for uri in self._lineage["inputs"]],
            [LineageDataset(out.namespace, out.name, self._lineage["schema"])],
        )


def _schema_json(schema: Any) -> list[dict[str, Any]]:
    if schema is None:
        return []
    from airflow_provider_mlops.utils.schema import schema_to_json

    return schema_to_json(schema)
