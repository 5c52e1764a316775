"""ExtractOperator: any source -> a Parquet dataset in object storage, by reference through XCom."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_provider_mlops.operators.common import fail_fast, resolve_output_uri, storage_hook

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_mlops.etl.sources import SourceOptions

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

    What to read is given either as ``source`` (one dict, or an
    :class:`~airflow_provider_mlops.etl.sources.SourceOptions`, with the option names of
    :func:`~airflow_provider_mlops.etl.sources.read_source`: ``source={"sql": "SELECT ...",
    "watermark_column": "updated_at"}``), or as the keyword arguments below, which name the same
    options (``request_params`` is ``source``'s ``params``). An option given both ways is an error.
    Templated keys of ``source`` are rendered like the keyword arguments.

    :param source_conn_id: the source connection (None for local files). (templated)
    :param source: the source options as one dict or ``SourceOptions``.
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
        source: SourceOptions | Mapping[str, Any] | None = None,
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
        given = {k: v for k, v in locals().items() if k in _OPERATOR_NAMES.values()}
        super().__init__(**kwargs)
        if on_empty not in ("succeed", "skip", "fail"):
            raise ValueError(f"on_empty must be succeed, skip or fail, got {on_empty!r}")
        self.source_conn_id = source_conn_id
        self.output_uri = output_uri
        self.storage_conn_id = storage_conn_id
        self.on_empty = on_empty
        # One attribute per source option (the templated ones are template_fields), whether it came
        # as a keyword argument or inside `source`.
        options = _merge_source(given, source)
        if options["extra"] not in ("error", "ignore"):
            raise ValueError(f"extra must be error or ignore, got {options['extra']!r}")
        if options["type_conflict"] not in ("error", "string"):
            raise ValueError(f"type_conflict must be error or string, got {options['type_conflict']!r}")
        if options["nested"] not in (None, "json", "struct"):
            raise ValueError(f"nested must be json or struct, got {options['nested']!r}")
        for attr, value in options.items():
            setattr(self, attr, value)
        self._lineage: dict[str, Any] = {}

    def source_options(self) -> SourceOptions:
        """The source options as this task holds them (rendered, once templates are rendered)."""
        from airflow_provider_mlops.etl.sources import SourceOptions

        return SourceOptions(**{name: getattr(self, attr) for name, attr in _OPERATOR_NAMES.items()})

    @fail_fast()  # bad options, an empty window, on_empty="fail": a retry would meet the same
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.common.compat.sdk import AirflowFailException, AirflowSkipException

        from airflow_provider_mlops.etl.sources import parse_instant, read_source
        from airflow_provider_mlops.utils.staging import resolve_uri

        options = self.source_options()
        start, end = options.watermark_start, options.watermark_end
        if options.watermark_column:
            # Read from the context, not templated by default: asset-triggered and manual runs
            # without a logical date have no data interval, and only a watermark needs one.
            if start is None:
                start = context.get("data_interval_start")
            if end is None:
                end = context.get("data_interval_end")
            if start is None and end is None:
                raise ValueError(
                    "watermark_column is set but this run has no data interval (e.g. an asset-triggered "
                    "run): give watermark_start / watermark_end"
                )
            if start and parse_instant(start) == parse_instant(end):
                raise ValueError(
                    f"The watermark window is empty ({start} .. {end}). Airflow 3's default cron schedule "
                    "(CronTriggerTimetable) gives runs a zero-length data interval: schedule the DAG with "
                    "CronDataIntervalTimetable, or give watermark_start / watermark_end explicitly."
                )
        else:
            start = end = None
        batches, source = read_source(
            self.source_conn_id,
            options,
            sort=[tuple(s) for s in options.sort] if options.sort else None,
            path=resolve_uri(options.path) if options.path else None,
            watermark_start=start,
            watermark_end=end,
        )
        uri = resolve_output_uri(self.output_uri, context)
        storage = storage_hook(self.storage_conn_id)
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
            type_conflict=options.type_conflict,
        )
        # the committed schema comes back with the write: no second read of the manifest
        self._lineage = {"source": source, "output": uri, "schema": result["schema"]}
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


# SourceOptions name -> ExtractOperator keyword / attribute: the same but for `params`, which is a
# BaseOperator argument (the task's Jinja params).
_OPERATOR_NAMES: dict[str, str] = {
    name: ("request_params" if name == "params" else name)
    for name in (
        # etl.sources.SOURCE_OPTIONS, spelled out: importing etl.sources here would load it at DAG
        # parse time (tests/operators check both lists agree).
        "sql",
        "parameters",
        "collection",
        "database",
        "filter",
        "projection",
        "sort",
        "pipeline",
        "endpoint",
        "method",
        "params",
        "json",
        "headers",
        "records_path",
        "pagination",
        "max_pages",
        "path",
        "format",
        "watermark_column",
        "watermark_start",
        "watermark_end",
        "batch_size",
        "schema",
        "extra",
        "type_conflict",
        "nested",
    )
}


def _merge_source(given: Mapping[str, Any], source: Any) -> dict[str, Any]:
    """
    The operator's attributes for the source options: the keyword arguments (``given``, by
    attribute name), with ``source`` (a dict or ``SourceOptions``, by option name) on top. An option
    set both ways (to a value other than its default) is an error: which one wins would be a guess.
    """
    if source is None:
        return dict(given)
    import inspect

    defaults = inspect.unwrap(ExtractOperator.__init__).__kwdefaults__ or {}
    if isinstance(source, Mapping):
        chosen = dict(source)
    elif hasattr(source, "__dataclass_fields__"):  # SourceOptions: the options it changes
        chosen = {
            n: getattr(source, n) for n, a in _OPERATOR_NAMES.items() if getattr(source, n) != defaults[a]
        }
    else:
        raise TypeError(f"source must be a dict or a SourceOptions, got {type(source).__name__}")
    unknown = sorted(set(chosen) - set(_OPERATOR_NAMES))
    if unknown:
        raise ValueError(f"Unknown source option(s) {unknown}; known: {sorted(_OPERATOR_NAMES)}")
    merged = dict(given)
    for name, value in chosen.items():
        attr = _OPERATOR_NAMES[name]
        if given[attr] != defaults[attr] and given[attr] != value:
            raise ValueError(f"{attr!r} is given both as a keyword argument and in source={{{name!r}: ...}}")
        merged[attr] = value
    return merged
