"""
Open any source as a stream of record batches, and describe it for logs and lineage.

The connection type decides the hook (:mod:`airflow_provider_mlops.hooks.connection_types`):
PostgreSQL connections get the COPY-based hook, other common-sql connections the generic cursor
path, ``mongo`` / ``http`` / ``aws`` the matching hooks. A SQL source's incremental window is its
hook's (:meth:`~airflow_provider_mlops.hooks.sql_source.SqlSourceMixin.watermark_query`): the SQL
text is built by the hook's dialect, not here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_provider_mlops.sinks.protocols import SqlBatchSource

from airflow_provider_mlops.hooks.connection_types import (
    HTTP_TYPES,
    MONGO_TYPES,
    POSTGRES_TYPES,
    STORAGE_TYPES,
    connection_kind,
)

__all__ = [
    "HTTP_TYPES",
    "MONGO_TYPES",
    "POSTGRES_TYPES",
    "SOURCE_OPTIONS",
    "STORAGE_TYPES",
    "SourceOptions",
    "connection_kind",
    "filter_batches_by_window",
    "iter_json_lines",
    "parse_instant",
    "read_source",
    "sql_with_watermark",
]


def parse_instant(value: Any) -> dt.datetime | None:
    """A timezone-aware datetime from a rendered template (ISO text), a date or a datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    text = str(value).strip().replace("Z", "+00:00")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"Watermark bound {value!r} is not an ISO date/time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def sql_with_watermark(
    sql: str,
    column: str,
    placeholder: str,
    quote: str,
    start: Any,
    end: Any,
    *,
    escape_percent: bool = False,
) -> tuple[str, list[Any]]:
    """
    Wrap ``sql`` so only rows with ``start <= column < end`` come back (identifier quoted).

    .. deprecated:: 0.1.0
        The SQL hooks build the window themselves: ``hook.watermark_query(sql, parameters, column,
        start, end)`` (:class:`~airflow_provider_mlops.hooks.sql_source.SqlSourceMixin`), with
        their dialect's placeholder and quoting.
    """
    import warnings

    from airflow_provider_mlops.dialects.base import Dialect

    warnings.warn(
        "sql_with_watermark() is deprecated: use the SQL hook's watermark_query()",
        DeprecationWarning,
        stacklevel=2,
    )

    dialect = Dialect(placeholder)
    dialect.quote_char = quote
    return dialect.watermark_query(sql, column, start, end, escape_percent=escape_percent)


def filter_batches_by_window(
    batches: Iterator[pa.RecordBatch], column: str, start: dt.datetime | None, end: dt.datetime | None
) -> Iterator[pa.RecordBatch]:
    """Keep rows with ``start <= column < end`` (client side; for APIs and files)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for batch in batches:
        if column not in batch.schema.names:
            raise ValueError(
                f"Watermark column {column!r} is not in the data (columns: {batch.schema.names})"
            )
        values = batch.column(column)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            values = pc.cast(values, pa.timestamp("us", tz="UTC"))
        elif pa.types.is_timestamp(values.type) and values.type.tz is None:
            values = pc.assume_timezone(values, "UTC")
        mask = None
        if start is not None:
            mask = pc.greater_equal(values, pa.scalar(start, values.type))
        if end is not None:
            upper = pc.less(values, pa.scalar(end, values.type))
            mask = upper if mask is None else pc.and_(mask, upper)
        yield batch if mask is None else batch.filter(pc.fill_null(mask, False))


@dataclasses.dataclass(frozen=True)
class SourceOptions:
    """
    What :func:`read_source` reads: the one list of source options (``ExtractOperator(source=...)``
    takes this or a dict of these names). Only the options of the connection's kind are used.

    SQL: ``sql``, ``parameters``. MongoDB: ``collection``, ``database``, ``filter``, ``projection``,
    ``sort``, ``pipeline``. HTTP: ``endpoint``, ``method``, ``params``, ``json``, ``headers``,
    ``records_path``, ``pagination``, ``max_pages``. Files: ``path``, ``format``. Every kind:
    ``watermark_column`` / ``watermark_start`` / ``watermark_end``, ``batch_size``, ``schema``,
    ``extra``, ``type_conflict``, ``nested`` (see :func:`read_source`).
    """

    sql: str | None = None
    parameters: Sequence[Any] | Mapping[str, Any] | None = None
    collection: str | None = None
    database: str | None = None
    filter: Mapping[str, Any] | None = None
    projection: Any = None
    sort: Any = None
    pipeline: Sequence[Mapping[str, Any]] | None = None
    endpoint: str | None = None
    method: str = "GET"
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    records_path: str | None = None
    pagination: Any = None
    max_pages: int | None = None
    path: str | None = None
    format: str = "parquet"
    watermark_column: str | None = None
    watermark_start: Any = None
    watermark_end: Any = None
    batch_size: int = 50_000
    schema: Any = None
    extra: str = "error"
    type_conflict: str = "error"
    nested: str | None = None

    @classmethod
    def of(cls, options: SourceOptions | Mapping[str, Any] | None = None, **changes: Any) -> SourceOptions:
        """``options`` (an instance or a dict of option names) with ``changes`` applied."""
        if options is None:
            base = cls()
        elif isinstance(options, SourceOptions):
            base = options
        elif isinstance(options, Mapping):
            unknown = sorted(set(options) - set(SOURCE_OPTIONS))
            if unknown:
                raise ValueError(f"Unknown source option(s) {unknown}; known: {list(SOURCE_OPTIONS)}")
            base = cls(**options)
        else:
            raise TypeError(f"Source options must be a SourceOptions or a dict, got {type(options).__name__}")
        return dataclasses.replace(base, **changes) if changes else base


SOURCE_OPTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SourceOptions))


def read_source(
    conn_id: str | None,
    options: SourceOptions | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[Iterator[pa.RecordBatch], dict[str, Any]]:
    """
    Open a stream of record batches from any supported source.

    ``options`` is a :class:`SourceOptions` (or a dict of its names); keyword arguments of the same
    names (``read_source(conn_id, sql=...)``) are applied on top of it.

    Record sources (MongoDB, HTTP, JSON Lines) go through
    :class:`~airflow_provider_mlops.utils.arrow.RecordBatcher`: without ``schema`` the schema evolves
    as fields appear, with it the schema is a contract.

    :param schema: a :class:`pyarrow.Schema`, a list of ``{"name", "type"}`` or a dict name -> type
        text (see :func:`~airflow_provider_mlops.utils.arrow.schema_from_spec`).
    :param extra: record sources with ``schema``: ``error`` or ``ignore`` for undeclared fields.
    :param type_conflict: record sources: ``error`` or ``string`` for values of no common type.
    :param nested: record sources: ``json`` or ``struct``; default ``json`` for MongoDB and HTTP,
        ``struct`` for JSON Lines (what Arrow's JSON reader gave before).
    :return: the batch iterator and a small description of the source (kind, name) for logs/lineage.
    """
    from airflow_provider_mlops.hooks.connection_types import get_batch_hook, get_sql_hook
    from airflow_provider_mlops.utils.schema import schema_from_spec

    o = SourceOptions.of(options, **kwargs)
    schema = schema_from_spec(o.schema)
    record_options: dict[str, Any] = {"schema": schema, "extra": o.extra, "type_conflict": o.type_conflict}
    kind = connection_kind(conn_id)
    start, end = parse_instant(o.watermark_start), parse_instant(o.watermark_end)
    if kind in ("postgres", "sql"):
        if not o.sql:
            raise ValueError(f"Connection {conn_id!r} is a SQL database: give sql=...")
        hook: SqlBatchSource = get_sql_hook(conn_id or "")
        query = o.sql
        query_params: Any = (
            list(o.parameters or []) if not isinstance(o.parameters, Mapping) else o.parameters
        )
        if o.watermark_column:
            query, query_params = hook.watermark_query(o.sql, query_params, o.watermark_column, start, end)
        batches = hook.iter_batches(query, query_params or None, batch_size=o.batch_size, schema=schema)
        return batches, {"kind": kind, "conn_id": conn_id, "name": o.sql.strip()[:200]}
    if kind == "mongo":
        if not o.collection:
            raise ValueError(f"Connection {conn_id!r} is MongoDB: give collection=...")
        mongo = get_batch_hook(conn_id, kind)
        find_filter = dict(o.filter or {})
        pipeline = o.pipeline
        if o.watermark_column and (start or end):
            window: dict[str, Any] = {}
            if start:
                window["$gte"] = start
            if end:
                window["$lt"] = end
            if pipeline is not None:
                pipeline = [{"$match": {o.watermark_column: window}}, *pipeline]
            else:
                find_filter[o.watermark_column] = window
        batches = mongo.iter_batches(
            o.collection,
            database=o.database,
            filter=find_filter,
            projection=o.projection,
            sort=o.sort,
            pipeline=pipeline,
            batch_size=o.batch_size,
            nested=o.nested or "json",  # type: ignore[arg-type]
            **record_options,  # type: ignore[arg-type]
        )
        return batches, {
            "kind": kind,
            "conn_id": conn_id,
            "name": f"{o.database or ''}.{o.collection}".lstrip("."),
        }
    if kind == "http":
        if not o.endpoint:
            raise ValueError(f"Connection {conn_id!r} is an HTTP API: give endpoint=...")
        from airflow_provider_mlops.utils.records import RecordBatcher

        api = get_batch_hook(conn_id, kind)
        records = api.iter_records(
            o.endpoint,
            method=o.method,
            params=o.params,
            json=o.json,
            headers=o.headers,
            records_path=o.records_path,
            pagination=o.pagination,
            max_pages=o.max_pages,
        )
        # The records go through the batcher here rather than HttpApiHook.iter_batches, which takes
        # no extra / type_conflict: the same conversion, with every schema option.
        batcher = RecordBatcher(batch_size=o.batch_size, nested=o.nested or "json", **record_options)
        batches = batcher.batches(r if isinstance(r, Mapping) else {"value": r} for r in records)
        if o.watermark_column:
            batches = filter_batches_by_window(batches, o.watermark_column, start, end)
        return batches, {"kind": kind, "conn_id": conn_id, "name": o.endpoint}
    if not o.path:
        raise ValueError("A storage source needs path=... (s3://bucket/prefix, file:///dir or a local path)")
    storage = get_batch_hook(conn_id, kind)
    if o.format == "jsonl":
        from airflow_provider_mlops.utils.records import RecordBatcher

        # JSON Lines are records like an API's: Arrow's JSON reader fixes the schema from the first
        # block and a dataset scan from the first file, dropping later fields; the batcher evolves it.
        batcher = RecordBatcher(batch_size=o.batch_size, nested=o.nested or "struct", **record_options)
        batches = batcher.batches(iter_json_lines(storage, o.path))
    else:
        batches = storage.iter_batches(o.path, format=o.format, batch_size=o.batch_size, schema=schema)  # type: ignore[arg-type]
    if o.watermark_column:
        batches = filter_batches_by_window(batches, o.watermark_column, start, end)
    return batches, {"kind": "storage", "conn_id": conn_id, "name": o.path}


def iter_json_lines(storage: Any, uri: str) -> Iterator[dict[str, Any]]:
    """
    The records of a JSON Lines file, or of every file below a prefix (names starting with ``_`` or
    ``.`` skipped, in name order), one line at a time; a line that is not a JSON object is an error
    naming the file and line.
    """
    import io
    import json as jsonlib

    import pyarrow.fs as pafs

    fs, location = storage.filesystem(uri)
    info = fs.get_file_info(location.path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"No JSON Lines file or prefix at {uri}")
    if info.type == pafs.FileType.File:
        files = [location.path]
    else:
        selector = pafs.FileSelector(location.path, recursive=True)
        files = sorted(
            item.path
            for item in fs.get_file_info(selector)
            if item.type == pafs.FileType.File and not item.base_name.startswith(("_", "."))
        )
    for file in files:
        with fs.open_input_stream(file) as raw:
            text = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8", newline="\n")
            for number, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    record = jsonlib.loads(line)
                except ValueError as err:
                    raise ValueError(f"{file} line {number} is not JSON: {err}") from None
                if not isinstance(record, dict):
                    raise ValueError(f"{file} line {number} is a JSON {type(record).__name__}, not an object")
                yield record
