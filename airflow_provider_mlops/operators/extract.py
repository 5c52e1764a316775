"""ExtractOperator: any source -> a Parquet dataset in object storage, by reference through XCom."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow.sdk import Context

EmptyPolicy = Literal["succeed", "skip", "fail"]


class ExtractOperator(BaseOperator):
    """
    Stream rows from a source into a Parquet dataset and return its URI.

    The hook is chosen by the connection's type: PostgreSQL (COPY), any other common-sql database
    (cursor batches), MongoDB (``collection`` + ``filter`` / ``pipeline``), an HTTP JSON API
    (``endpoint`` + pagination), or S3 / local files (``path``). Memory stays bounded by
    ``batch_size``: nothing holds the whole result.

    The dataset goes to ``output_uri`` (default ``<staging>/<dag_id>/<task_id>/<ds>``) and replaces
    whatever a previous try wrote there, so re-running a logical date gives the same dataset.

    Returns (XCom) ``{"uri", "rows", "bytes", "files", "schema_fingerprint", "format"}``.

    :param source_conn_id: the source connection (None for local files). (templated)
    :param sql: SQL sources: the query; a ``.sql`` file path is rendered too. (templated)
    :param parameters: SQL sources: bind parameters (a list with ``watermark_column``). (templated)
    :param collection: MongoDB: the collection. (templated)
    :param database: MongoDB: the database (default: the connection's). (templated)
    :param filter: MongoDB: a ``find`` filter. (templated)
    :param projection: MongoDB: a ``find`` projection.
    :param sort: MongoDB: a ``find`` sort, e.g. ``[["updated_at", 1]]``.
    :param pipeline: MongoDB: an aggregation pipeline (instead of ``find``). (templated)
    :param endpoint: HTTP: the endpoint path or URL. (templated)
    :param method: HTTP: the method.
    :param request_params: HTTP: query parameters, e.g. ``{"updated_since": "{{ data_interval_start }}"}``. (templated)
    :param json: HTTP: a JSON body. (templated)
    :param headers: HTTP: extra headers. (templated)
    :param records_path: HTTP: dotted path of the records list in a page (``data.items``).
    :param pagination: HTTP: a pagination spec, e.g. ``{"type": "cursor", "cursor_path": "next"}``.
    :param max_pages: HTTP: stop after this many pages.
    :param path: files: a file or prefix (``s3://...``, ``file://...``, local path). (templated)
    :param format: files: ``parquet``, ``csv`` or ``jsonl``.
    :param watermark_column: keep only rows with ``watermark_start <= column < watermark_end``
        (pushed into the query for SQL and MongoDB, applied to batches for APIs and files).
    :param watermark_start: lower bound; default the run's ``data_interval_start``. (templated)
    :param watermark_end: upper bound; default the run's ``data_interval_end``. (templated)
    :param output_uri: where to write; default a deterministic staging URI. (templated)
    :param storage_conn_id: connection for ``s3://`` output (default ``[mlops] storage_conn_id``).
    :param batch_size: rows per batch.
    :param schema: a fixed schema (a contract) instead of one that evolves with the data: a
        ``pyarrow.Schema``, a list of ``{"name": ..., "type": ...}`` (the dataset manifest's form) or
        a dict ``{"name": "type"}``, types in Arrow's text form (``int64``, ``float64``, ``string``,
        ``bool``, ``timestamp[us, tz=UTC]``, ``decimal128(38, 2)``, ``list<string>``,
        ``struct<a: int64>``), so a DAG file needs no pyarrow import. Values are converted to these
        types with Arrow's safe casts (ISO text into a timestamp); a value that does not convert is
        an error naming the field, the record and the value. For SQL and file sources it is the
        schema to read with, as before. (templated)
    :param extra: MongoDB / HTTP / JSON Lines with ``schema``: a field the schema does not declare
        is an error naming it (``error``, default) or is left out (``ignore``); never a silent drop.
    :param type_conflict: MongoDB / HTTP / JSON Lines: a field whose values fit no common lossless
        type (``1`` then ``"n/a"``) fails naming the field, the record and the value (``error``,
        default) or becomes a text column (``string``).
    :param nested: MongoDB / HTTP / JSON Lines: sub-documents and arrays as ``json`` text or as Arrow
        ``struct`` / list columns. Default: ``json`` for MongoDB and HTTP, ``struct`` for JSON Lines.
    :param on_empty: what an empty result does: ``succeed`` (0 rows), ``skip`` (downstream skipped)
        or ``fail``. The (empty) dataset is written in every case, replacing a previous try's.
    """

    template_fields: Sequence[str] = (
        "source_conn_id",
        "sql",
        "parameters",
        "collection",
        "database",
        "filter",
        "pipeline",
        "endpoint",
        "request_params",
        "json",
        "headers",
        "path",
        "watermark_start",
        "watermark_end",
        "output_uri",
        "schema",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "filter": "json", "pipeline": "json", "json": "json"}
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        source_conn_id: str | None,
        sql: str | None = None,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        collection: str | None = None,
        database: str | None = None,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        sort: Sequence[Sequence[Any]] | None = None,
        pipeline: Sequence[Mapping[str, Any]] | None = None,
        endpoint: str | None = None,
        method: str = "GET",
        request_params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        records_path: str | None = None,
        pagination: Any = None,
        max_pages: int | None = None,
        path: str | None = None,
        format: str = "parquet",
        watermark_column: str | None = None,
        watermark_start: Any = None,
        watermark_end: Any = None,
        output_uri: str | None = None,
        storage_conn_id: str | None = None,
        batch_size: int = 50_000,
        on_empty: EmptyPolicy = "succeed",
        schema: Any = None,
        extra: Literal["error", "ignore"] = "error",
        type_conflict: Literal["error", "string"] = "error",
        nested: Literal["json", "struct"] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_empty not in ("succeed", "skip", "fail"):
            raise ValueError(f"on_empty must be succeed, skip or fail, got {on_empty!r}")
        if extra not in ("error", "ignore"):
            raise ValueError(f"extra must be error or ignore, got {extra!r}")
        if type_conflict not in ("error", "string"):
            raise ValueError(f"type_conflict must be error or string, got {type_conflict!r}")
        if nested not in (None, "json", "struct"):
            raise ValueError(f"nested must be json or struct, got {nested!r}")
        self.source_conn_id = source_conn_id
        self.sql = sql
        self.parameters = parameters
        self.collection = collection
        self.database = database
        self.filter = filter
        self.projection = projection
        self.sort = sort
        self.pipeline = pipeline
        self.endpoint = endpoint
        self.method = method
        self.request_params = request_params
        self.json = json
        self.headers = headers
        self.records_path = records_path
        self.pagination = pagination
        self.max_pages = max_pages
        self.path = path
        self.format = format
        self.watermark_column = watermark_column
        self.watermark_start = watermark_start
        self.watermark_end = watermark_end
        self.output_uri = output_uri
        self.storage_conn_id = storage_conn_id
        self.batch_size = batch_size
        self.on_empty = on_empty
        self.schema = schema
        self.extra = extra
        self.type_conflict = type_conflict
        self.nested = nested
        self._lineage: dict[str, Any] = {}

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from airflow_provider_mlops.etl.sources import parse_instant, read_source
        from airflow_provider_mlops.hooks.s3 import S3Hook
        from airflow_provider_mlops.utils.staging import default_storage_conn_id, resolve_uri, task_output_uri

        if self.watermark_column:
            # Read from the context, not templated by default: asset-triggered and manual runs
            # without a logical date have no data interval, and only a watermark needs one.
            if self.watermark_start is None:
                self.watermark_start = context.get("data_interval_start")
            if self.watermark_end is None:
                self.watermark_end = context.get("data_interval_end")
            if self.watermark_start is None and self.watermark_end is None:
                raise ValueError(
                    "watermark_column is set but this run has no data interval (e.g. an asset-triggered "
                    "run): give watermark_start / watermark_end"
                )
        empty_window = (
            self.watermark_column
            and self.watermark_start
            and parse_instant(self.watermark_start) == parse_instant(self.watermark_end)
        )
        if empty_window:
            raise ValueError(
                f"The watermark window is empty ({self.watermark_start} .. {self.watermark_end}). Airflow 3's "
                "default cron schedule (CronTriggerTimetable) gives runs a zero-length data interval: schedule "
                "the DAG with CronDataIntervalTimetable, or give watermark_start / watermark_end explicitly."
            )
        batches, source = read_source(
            self.source_conn_id,
            sql=self.sql,
            parameters=self.parameters,
            collection=self.collection,
            database=self.database,
            filter=self.filter,
            projection=self.projection,
            sort=[tuple(s) for s in self.sort] if self.sort else None,
            pipeline=self.pipeline,
            endpoint=self.endpoint,
            method=self.method,
            params=self.request_params,
            json=self.json,
            headers=self.headers,
            records_path=self.records_path,
            pagination=self.pagination,
            max_pages=self.max_pages,
            path=resolve_uri(self.path) if self.path else None,
            format=self.format,
            watermark_column=self.watermark_column,
            watermark_start=self.watermark_start if self.watermark_column else None,
            watermark_end=self.watermark_end if self.watermark_column else None,
            batch_size=self.batch_size,
            schema=self.schema,
            extra=self.extra,
            type_conflict=self.type_conflict,
            nested=self.nested,
        )
        uri = resolve_uri(self.output_uri) if self.output_uri else task_output_uri(context)
        storage = S3Hook(aws_conn_id=self.storage_conn_id or default_storage_conn_id())
        self.log.info(
            "Extracting %s %r from %s into %s", source["kind"], source["name"], self.source_conn_id, uri
        )

        def refuse_empty(manifest: Any) -> None:
            # Before the commit: an empty source with on_empty="fail" keeps the previous dataset.
            if manifest.rows == 0 and self.on_empty == "fail":
                raise AirflowFailException(
                    f"The source returned no rows ({source['kind']} {source['name']!r}); "
                    f"nothing was committed to {uri}"
                )

        result = storage.write_dataset(
            uri,
            batches,
            metadata={"source": source, "dag_id": context["ti"].dag_id, "run_id": context["run_id"]},
            before_commit=refuse_empty,
            type_conflict=self.type_conflict,
        )
        manifest = storage.read_manifest(uri) or {}
        self._lineage = {"source": source, "output": uri, "schema": manifest.get("schema", [])}
        summary = {k: result[k] for k in ("uri", "rows", "bytes", "schema_fingerprint", "format")}
        summary["files"] = len(result["files"])
        if result["rows"] == 0:
            if self.on_empty == "skip":
                raise AirflowSkipException(f"The source returned no rows; downstream is skipped ({uri})")
            self.log.warning("The source returned no rows; an empty dataset was written to %s", uri)
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        from airflow_provider_mlops.utils.lineage import LineageDataset, dataset_for, operator_lineage

        if not self._lineage:
            return None
        source = self._lineage["source"]
        output = dataset_for("storage", None, self._lineage["output"])
        return operator_lineage(
            [dataset_for(source["kind"], source["conn_id"], source["name"])],
            [LineageDataset(output.namespace, output.name, self._lineage["schema"])],
        )
