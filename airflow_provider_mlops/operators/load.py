"""
LoadOperator: a dataset URI -> a sink spec (PostgreSQL / any common-sql table, a MongoDB collection,
a Delta Lake table (the lake) or an export file).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_mlops.hooks.s3 import storage_hook
from airflow_provider_mlops.operators.common import (
    fail_fast,
    iter_inputs,
    lineage_inputs,
    pin_inputs,
    require_inputs,
    static_uri,
)
from airflow_provider_mlops.sinks.specs import (
    FileExport,
    LakeTable,
    MongoCollection,
    SinkSpec,
    SqlTable,
    WriteMode,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import jinja2
    import pyarrow as pa
    from airflow.sdk import Context

    from airflow_provider_mlops.sinks.contract import OnEmpty


class LoadOperator(BaseOperator):
    """
    Write a dataset into a sink, idempotently per logical date.

    ``sink`` is one spec of :mod:`airflow_provider_mlops.sinks`:

    - :class:`~airflow_provider_mlops.sinks.SqlTable`: a table on PostgreSQL (COPY + one
      transaction) or any other common-sql database (``executemany`` in one transaction);
    - :class:`~airflow_provider_mlops.sinks.MongoCollection`: a MongoDB collection;
    - :class:`~airflow_provider_mlops.sinks.LakeTable`: a Delta Lake table (the lake), one commit
      per load, older versions readable until vacuumed;
    - :class:`~airflow_provider_mlops.sinks.FileExport`: one CSV / JSON Lines file, replaced whole.

    The connection's type chooses the hook that writes it
    (:func:`~airflow_provider_mlops.hooks.connection_types.get_batch_hook`); ``hook.write(sink,
    batches, mode=..., partition=...)`` does the rest. One write-mode vocabulary for every sink:
    ``append``, ``replace``, ``replace_partition`` (the rows of ``partition`` replaced: the
    idempotent choice for daily loads) and ``upsert`` (by the sink's ``keys``); a FileExport has
    only ``replace``. A mode the sink does not have is refused when the task is built. The sink's
    templated fields are rendered when the task runs.

    The sink is declared as an outlet Asset (``x-mlops-sql://<conn_id>/<table>``,
    ``x-mlops-mongo://<conn_id>/<collection>``, or the storage URI) unless ``outlets`` is given, so
    other DAGs can be scheduled on it.

    The same rules on every sink (see :mod:`airflow_provider_mlops.sinks.contract`): a NULL upsert
    key or a key repeated within the load fails the task before anything is committed, naming the
    rows; an empty input does what ``on_empty`` says; key, partition and target columns the
    database does not know fail the task before any row moves. These failures are
    ``AirflowFailException`` (no retries: a retry would meet the same data).

    Returns (XCom) the counts (``rows``, ``inserted``, ``updated``, ``deleted``; MongoDB adds
    ``matched``, ``modified``, ``upserted``; the lake ``table_rows``, ``version``; files ``files``
    and ``bytes``) and ``target``.

    :param input_uri: a dataset URI, an upstream XCom dict with ``uri``, or a list. (templated)
    :param sink: where to write, e.g. ``SqlTable("orders", keys=["id"])``.
    :param conn_id: the sink's connection: the database for a SqlTable / MongoCollection, the
        storage for a LakeTable / FileExport (default: ``storage_conn_id``'s). (templated)
    :param mode: ``append``, ``replace``, ``replace_partition`` or ``upsert``; default ``upsert``
        when the sink has ``keys``, else ``append`` (tables, collections) or ``replace`` (the lake,
        exports).
    :param partition: column -> value for ``replace_partition``, e.g. ``{"ds": "{{ ds }}"}``.
        (templated)
    :param on_empty: when the input has no rows: ``skip`` (default: the sink is not touched and
        the task ends *skipped*, so it records no Asset event and the DAGs scheduled on the sink do
        not run again on unchanged data; tasks downstream in the same DAG that must still run need
        ``trigger_rule="none_failed"``), ``replace`` (the load runs with no rows: a replace mode
        empties the table, partition, collection or file prefix, and the Asset event is recorded) or
        ``fail``.
    :param input_format: format of the input dataset (``parquet``, ``csv`` or ``jsonl``).
    :param storage_conn_id: connection for ``s3://`` inputs (default ``[mlops] storage_conn_id``).
    """

    # `sink` is rendered by render_template_fields (a frozen spec refuses Airflow's setattr); it is
    # listed here so that the rendered spec shows in the task's Rendered Template view.
    template_fields: Sequence[str] = ("input_uri", "sink", "conn_id", "partition")
    ui_color = "#e8f5e9"

    def __init__(
        self,
        *,
        input_uri: Any,
        sink: SinkSpec,
        conn_id: str | None = None,
        mode: WriteMode | None = None,
        partition: Mapping[str, Any] | None = None,
        on_empty: OnEmpty = "skip",
        input_format: str = "parquet",
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        from airflow_provider_mlops.sinks.contract import ON_EMPTY

        if not isinstance(sink, SinkSpec):
            raise TypeError(
                "sink must be a spec of airflow_provider_mlops.sinks (SqlTable, MongoCollection, LakeTable "
                f"or FileExport), got {type(sink).__name__}"
            )
        if on_empty not in ON_EMPTY:
            raise ValueError(f"on_empty must be one of {ON_EMPTY}, got {on_empty!r}")
        if sink.needs_connection and not conn_id:
            raise ValueError(f"A {type(sink).__name__} sink needs conn_id (its database's connection)")
        mode = sink.check_mode(mode, partition)  # type: ignore[assignment]
        if "outlets" not in kwargs:
            outlet = _outlet(sink, conn_id)
            if outlet is not None:
                kwargs["outlets"] = [outlet]
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.sink = sink
        self.conn_id = conn_id
        self.mode = mode
        self.partition = partition
        self.on_empty = on_empty
        self.input_format = input_format
        self.storage_conn_id = storage_conn_id
        self._lineage: dict[str, Any] = {}

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Airflow's rendering, then the sink's templated fields, into a rendered copy of it."""
        jinja_env = jinja_env or self.get_template_env()
        super().render_template_fields(context, jinja_env)
        self.sink = self.sink.render(lambda value: self.render_template(value, context, jinja_env))

    @fail_fast()  # bad keys, columns or options (WriteContractError...): the next try meets the same data
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_mlops.hooks.connection_types import connection_kind, get_batch_hook
        from airflow_provider_mlops.sinks.contract import empty_outcome, split_empty

        storage = storage_hook(self.storage_conn_id)
        # each input read at one version (a commit landing meanwhile changes neither schema nor rows)
        inputs = [pin.read_uri for pin in pin_inputs(storage, require_inputs(self.input_uri))]
        sink = self.sink
        # The inputs' schema, so that an empty dataset still creates its sink with the right columns;
        # every input's columns (a column only some inputs have makes the others fail by name,
        # never dropped from the ones that have it).
        schema = _inputs_schema(storage, inputs)
        empty, stream = split_empty(
            iter_inputs(storage, inputs, format=self.input_format, batch_size=sink.batch_size)
        )
        if empty and empty_outcome(self.on_empty, target=repr(sink.name)) == "skip":
            # The same on every sink: an empty input never truncates a sink unless asked to.
            # Skipped, not succeeded: a successful task records its outlets' Asset events, and the
            # table's consumers (monitoring, predictions, retraining) would run again on unchanged data.
            from airflow.providers.common.compat.sdk import AirflowSkipException

            raise AirflowSkipException(
                f"The input {inputs} has no rows: {sink.name!r} is not touched and no Asset event is "
                "recorded (on_empty='skip'; on_empty='replace' empties a replace-mode sink)"
            )
        # A sink in storage without a connection of its own goes where the input's storage does.
        hook = storage if self.conn_id is None else get_batch_hook(self.conn_id)
        try:
            result = hook.write(
                sink, stream, mode=self.mode, partition=self.partition, on_empty=self.on_empty, schema=schema
            )
        finally:
            if hasattr(hook, "close"):
                hook.close()
        counts = {k: v for k, v in result.items() if k != "target"}
        target = {"kind": connection_kind(self.conn_id), "conn_id": self.conn_id, "name": result["target"]}
        self._lineage = {"inputs": inputs, "target": target, "schema": _schema_json(schema)}
        self.log.info("Loaded %s into %s %r: %s", inputs, target["kind"], target["name"], counts)
        return {**counts, "target": target["name"]}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_mlops.utils.lineage import LineageDataset, dataset_for, operator_lineage

        if not self._lineage:
            return None
        target = self._lineage["target"]
        out = dataset_for(target["kind"], target["conn_id"], target["name"])
        return operator_lineage(
            lineage_inputs(self._lineage["inputs"]),
            [LineageDataset(out.namespace, out.name, self._lineage["schema"])],
        )


def _schema_json(schema: Any) -> list[dict[str, Any]]:
    if schema is None:
        return []
    from airflow_provider_mlops.utils.schema import schema_to_json

    return schema_to_json(schema)


def _outlet(sink: SinkSpec, conn_id: str | None) -> Any:
    """The sink's Asset when it is known at parse time (no template, no staging root), else None."""
    from airflow_provider_mlops.assets import collection_asset, storage_asset, table_asset

    if isinstance(sink, (SqlTable, MongoCollection)):
        name = sink.table if isinstance(sink, SqlTable) else sink.collection
        if not isinstance(name, str) or "{{" in name or "{{" in (conn_id or ""):
            return None
        if isinstance(sink, SqlTable):
            return table_asset(conn_id or "", name)
        if sink.database is not None and "{{" in sink.database:
            return None
        return collection_asset(conn_id or "", name, sink.database)
    if isinstance(sink, (LakeTable, FileExport)) and isinstance(sink.uri, str) and static_uri(sink.uri):
        return storage_asset(sink.uri)
    return None


def _inputs_schema(storage: Any, inputs: list[str]) -> pa.Schema | None:
    """
    The schema of the inputs together: the first one's when they agree, else their union (the same
    column with different types in two inputs is refused, naming it).
    """
    schemas = [storage.read_schema(uri) for uri in inputs]
    known = [schema for schema in schemas if schema is not None]
    if len(known) < 2 or all(schema.equals(known[0]) for schema in known[1:]):
        return schemas[0]
    import pyarrow as pa

    from airflow_provider_mlops.utils.arrow import SchemaMismatchError

    try:
        union = pa.unify_schemas(known)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise SchemaMismatchError(
            f"The inputs {inputs} disagree on a column's type ({err}): cast it in a transform first"
        ) from None
    for uri, schema in zip(inputs, schemas, strict=True):
        missing = [name for name in union.names if schema is not None and name not in schema.names]
        if missing:
            raise SchemaMismatchError(
                f"The input {uri} has no column(s) {missing}, which other inputs of this load have: "
                "load them in separate tasks, or give every input the column in a transform first"
            )
    return union
