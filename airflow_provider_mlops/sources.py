"""
What :class:`~airflow_provider_mlops.operators.extract.ExtractOperator` reads: one frozen spec per
kind of source, and the window an incremental read keeps.

- :class:`SqlQuery`: PostgreSQL (COPY), MySQL / MariaDB or any other common-sql database.
- :class:`MongoFind`: a MongoDB ``find`` or aggregation pipeline.
- :class:`HttpPages`: the records of a paginated JSON API.
- :class:`Files`: Parquet, CSV or JSON Lines files in S3 or on a local path.

A spec is checked when it is built (an error names the field). It is read by one method of the
hook its connection gets, ``hook.read(spec, window, ...)``; the connection type chooses the hook
(:func:`~airflow_provider_mlops.hooks.connection_types.get_batch_hook`), never the spec.

The fields named in a spec's ``templated`` are Jinja-rendered by the operator when the task runs
(``SqlQuery("SELECT * FROM t WHERE day = '{{ ds }}'")``) into a copy of the frozen spec, as for the
sinks (:class:`~airflow_provider_mlops.utils.specs.Spec`). A plain module: nothing heavy is imported at import time (DAG files import it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from airflow_provider_mlops.utils.specs import Spec
from airflow_provider_mlops.utils.specs import fail as _fail
from airflow_provider_mlops.utils.specs import require_text as _text

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Files", "HttpPages", "MongoFind", "SourceSpec", "SqlQuery", "Window", "parse_instant"]

FileFormat = Literal["parquet", "csv", "jsonl"]
Nested = Literal["json", "struct"]


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


@dataclasses.dataclass(frozen=True)
class Window:
    """The rows an incremental read keeps: ``start <= column < end`` (a None bound is open)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @classmethod
    def of(cls, start: Any, end: Any) -> Window:
        """A window from ISO text, dates or datetimes (naive ones are UTC)."""
        return cls(parse_instant(start), parse_instant(end))


@dataclasses.dataclass(frozen=True, kw_only=True)
class SourceSpec(Spec):
    """
    What every source kind shares (keyword-only).

    :param watermark_column: keep only rows with ``window.start <= column < window.end``; the
        window is the run's data interval unless ``watermark_start`` / ``watermark_end`` are given.
        Pushed into the query for SQL and MongoDB, applied to the batches for APIs and files.
    :param watermark_start: the window's lower bound instead of ``data_interval_start``. (templated)
    :param watermark_end: the window's upper bound instead of ``data_interval_end``. (templated)
    :param batch_size: rows per record batch (memory stays bounded by it).
    """

    watermark_column: str | None = None
    watermark_start: Any = None
    watermark_end: Any = None
    batch_size: int = 50_000

    templated: ClassVar[tuple[str, ...]] = ("watermark_start", "watermark_end")

    def __post_init__(self) -> None:
        if self.watermark_column is not None and (
            not isinstance(self.watermark_column, str) or not self.watermark_column
        ):
            _fail(self, "watermark_column", f"must be a column name, got {self.watermark_column!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            _fail(self, "batch_size", f"must be a positive whole number, got {self.batch_size!r}")
        if not self.watermark_column:
            for bound in ("watermark_start", "watermark_end"):
                if getattr(self, bound) not in (None, ""):
                    _fail(self, bound, "a window's bounds need watermark_column")

    @property
    def name(self) -> str:
        """What is read, for logs and lineage."""
        raise NotImplementedError


def _nested(spec: object, value: Any, allowed: tuple[Any, ...] = ("json", "struct")) -> None:
    if value not in allowed:
        _fail(spec, "nested", f"must be json or struct, got {value!r}")


@dataclasses.dataclass(frozen=True)
class SqlQuery(SourceSpec):
    """
    A query on PostgreSQL (read with COPY), MySQL / MariaDB or any other common-sql database.

    ``SqlQuery("SELECT * FROM orders", watermark_column="updated_at")``

    :param sql: the query, or the path of a ``.sql`` file (rendered too). (templated)
    :param parameters: bind parameters, in the connection's paramstyle; a list when
        ``watermark_column`` is set (the window's bounds are appended). (templated)
    """

    sql: str
    parameters: Sequence[Any] | Mapping[str, Any] | None = None

    templated: ClassVar[tuple[str, ...]] = (*SourceSpec.templated, "sql", "parameters")

    def __post_init__(self) -> None:
        super().__post_init__()
        _text(self, "sql", self.sql)
        if self.parameters is not None and not isinstance(self.parameters, (Sequence, Mapping)):
            _fail(self, "parameters", f"must be a list or a dict, got {type(self.parameters).__name__}")
        if self.watermark_column and isinstance(self.parameters, Mapping):
            _fail(
                self, "parameters", "watermark_column works with positional parameters (a list), not a dict"
            )

    @property
    def name(self) -> str:
        return self.sql.strip()[:200]


@dataclasses.dataclass(frozen=True)
class MongoFind(SourceSpec):
    """
    A MongoDB ``find`` (``filter``, ``projection``, ``sort``) or an aggregation ``pipeline``.

    ``MongoFind("orders", filter={"status": "paid"}, watermark_column="updated_at")``

    :param collection: the collection. (templated)
    :param database: the database (default: the connection's). (templated)
    :param filter: a ``find`` filter. (templated)
    :param projection: a ``find`` projection (a dict or a list of field names).
    :param sort: a ``find`` sort, e.g. ``[["updated_at", 1]]``.
    :param pipeline: an aggregation pipeline instead of ``find`` (the window becomes its first
        ``$match``). (templated)
    :param nested: sub-documents and arrays as ``json`` text or as Arrow ``struct`` / list columns.
    """

    collection: str
    database: str | None = None
    filter: Mapping[str, Any] | None = None
    projection: Mapping[str, Any] | Sequence[str] | None = None
    sort: Sequence[Sequence[Any]] | None = None
    pipeline: Sequence[Mapping[str, Any]] | None = None
    nested: Nested = "json"

    templated: ClassVar[tuple[str, ...]] = (
        *SourceSpec.templated,
        "collection",
        "database",
        "filter",
        "pipeline",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _text(self, "collection", self.collection)
        if self.filter is not None and not isinstance(self.filter, (Mapping, str)):
            _fail(self, "filter", f"must be a dict, got {type(self.filter).__name__}")
        if self.pipeline is not None:
            if isinstance(self.pipeline, (Mapping, bytes)) or not isinstance(self.pipeline, (Sequence, str)):
                _fail(self, "pipeline", f"must be a list of stages, got {type(self.pipeline).__name__}")
            given = [f for f in ("filter", "projection", "sort") if getattr(self, f)]
            if given:
                _fail(
                    self, given[0], "an aggregation pipeline replaces find: put it in the pipeline's stages"
                )
        _nested(self, self.nested)

    @property
    def name(self) -> str:
        return f"{self.database or ''}.{self.collection}".lstrip(".")

    def sort_pairs(self) -> list[tuple[str, int]] | None:
        """``sort`` as pymongo's list of ``(field, direction)`` tuples."""
        return [tuple(s) for s in self.sort] if self.sort else None  # type: ignore[misc]


@dataclasses.dataclass(frozen=True)
class HttpPages(SourceSpec):
    """
    The records of every page of a JSON API (retries, authentication and rate limits are the
    connection's).

    ``HttpPages("customers", params={"updated_since": "{{ data_interval_start | ts }}"},
    records_path="data", pagination={"type": "cursor", "cursor_path": "next_cursor"})``

    :param endpoint: the endpoint path or URL. (templated)
    :param method: the HTTP method.
    :param params: query parameters of the first request. (templated)
    :param json: a JSON body. (templated)
    :param headers: headers on top of the connection's. (templated)
    :param records_path: dotted path of the records list in a page (``data.items``).
    :param pagination: a pagination spec, e.g. ``{"type": "cursor", "cursor_path": "next"}``.
    :param max_pages: stop after this many pages.
    :param nested: sub-objects and arrays as ``json`` text or as Arrow ``struct`` / list columns.
    """

    endpoint: str
    method: str = "GET"
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    records_path: str | None = None
    pagination: Any = None
    max_pages: int | None = None
    nested: Nested = "json"

    templated: ClassVar[tuple[str, ...]] = (*SourceSpec.templated, "endpoint", "params", "json", "headers")

    def __post_init__(self) -> None:
        super().__post_init__()
        _text(self, "endpoint", self.endpoint)
        _text(self, "method", self.method)
        for field in ("params", "headers"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, (Mapping, str)):
                _fail(self, field, f"must be a dict, got {type(value).__name__}")
        if self.max_pages is not None and (
            isinstance(self.max_pages, bool) or not isinstance(self.max_pages, int) or self.max_pages < 1
        ):
            _fail(self, "max_pages", f"must be a positive whole number, got {self.max_pages!r}")
        _nested(self, self.nested)

    @property
    def name(self) -> str:
        return self.endpoint


@dataclasses.dataclass(frozen=True)
class Files(SourceSpec):
    """
    A file, or every file below a prefix (names starting with ``_`` or ``.`` skipped), in S3 or on
    a local path; a dataset another task committed is read from its manifest.

    ``Files("s3://landing/orders/{{ ds }}/", format="csv")``

    :param path: ``s3://...``, ``file://...``, ``staging://...`` or a local path. (templated)
    :param format: ``parquet``, ``csv`` or ``jsonl`` (JSON Lines, read as records like an API's).
    :param nested: JSON Lines: sub-objects as ``json`` text or ``struct`` columns (default).
    """

    path: str
    format: FileFormat = "parquet"
    nested: Nested = "struct"

    templated: ClassVar[tuple[str, ...]] = (*SourceSpec.templated, "path")

    def __post_init__(self) -> None:
        super().__post_init__()
        _text(self, "path", self.path)
        if self.format not in ("parquet", "csv", "jsonl"):
            _fail(self, "format", f"must be parquet, csv or jsonl, got {self.format!r}")
        _nested(self, self.nested)

    @property
    def name(self) -> str:
        from airflow_provider_mlops.utils.staging import resolve_uri

        return resolve_uri(self.path)  # staging://... as the URI read


def filter_batches_by_window(
    batches: Iterator[pa.RecordBatch], column: str, window: Window
) -> Iterator[pa.RecordBatch]:
    """Keep rows with ``window.start <= column < window.end`` (client side; for APIs and files)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    start, end = window.start, window.end
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
