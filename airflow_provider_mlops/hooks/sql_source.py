"""
What both SQL source hooks share: reading a :class:`~airflow_provider_mlops.sources.SqlQuery` and
its incremental window, asked of the hook, built by its dialect.

``ExtractOperator(source=SqlQuery(..., watermark_column=...))`` calls :meth:`SqlSourceMixin.read`
on whichever SQL hook serves the connection (:class:`~airflow_provider_mlops.hooks.postgres.PostgresBatchHook` or
:class:`~airflow_provider_mlops.hooks.sql.SqlBatchHook`); the hook checks the column against the
query's result and its :attr:`sql_dialect` writes the filter, placeholders and quoting included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import pyarrow as pa

    from airflow_provider_mlops.dialects import AnsiDialect
    from airflow_provider_mlops.sources import SourceSpec, Window


class SqlSourceMixin:
    """``read`` and ``watermark_query`` for a hook with ``iter_batches(sql, parameters, batch_size=...)`` and ``sql_dialect``."""

    if TYPE_CHECKING:  # what the hook provides

        @property
        def sql_dialect(self) -> AnsiDialect: ...

        def iter_batches(
            self,
            sql: str,
            parameters: Sequence[Any] | Mapping[str, Any] | None = None,
            *,
            batch_size: int = 50_000,
            schema: pa.Schema | None = None,
        ) -> Iterator[pa.RecordBatch]: ...

    def read(
        self,
        spec: SourceSpec,
        window: Window | None = None,
        *,
        schema: pa.Schema | None = None,
        extra: str = "error",
        type_conflict: str = "error",
    ) -> Iterator[pa.RecordBatch]:
        """
        Stream a :class:`~airflow_provider_mlops.sources.SqlQuery`, narrowed to ``window`` on its
        ``watermark_column`` (in the query, by the dialect).

        :param schema: the schema to read with (the query's result types otherwise).
        :param extra: unused (SQL results have the query's columns).
        :param type_conflict: unused (a SQL column has one type).
        """
        from airflow_provider_mlops.sources import SqlQuery, Window

        if not isinstance(spec, SqlQuery):
            raise ValueError(
                f"{type(self).__name__} reads a SQL database: give source=SqlQuery(...), "
                f"not {type(spec).__name__}"
            )
        query = spec.sql
        params: Any = spec.parameters if isinstance(spec.parameters, Mapping) else list(spec.parameters or [])
        if spec.watermark_column:
            window = window or Window()
            query, params = self.watermark_query(
                query, params, spec.watermark_column, window.start, window.end
            )
        return self.iter_batches(query, params or None, batch_size=spec.batch_size, schema=schema)

    def watermark_query(
        self,
        sql: str,
        parameters: Sequence[Any] | Mapping[str, Any] | None,
        column: str,
        start: Any,
        end: Any,
    ) -> tuple[str, list[Any]]:
        """
        ``sql`` narrowed to the rows with ``start <= column < end``, and its parameters.

        :param parameters: the query's positional parameters (a mapping is refused: the window's
            are appended to them).
        :param start: an aware datetime or None (no lower bound); likewise ``end``.
        :raises ValueError: ``column`` is not a column of the query's result.
        """
        if isinstance(parameters, Mapping):
            raise ValueError("watermark_column works with positional parameters (a list), not a mapping")
        params = list(parameters or [])
        dialect = self.sql_dialect
        low, high = dialect.watermark_bound(start), dialect.watermark_bound(end)
        self.require_result_column(sql, params, column)
        query, extra = dialect.watermark_query(
            sql, column, low, high, escape_percent=dialect.placeholder == "%s" and not params
        )
        return query, [*params, *extra]

    def require_result_column(self, sql: str, parameters: Any, column: str) -> None:
        """
        ``column`` must be a column of the query's result: asked of the database (the query with no
        rows) before a filter is built on it. SQLite would read an unknown double-quoted name as a
        string literal and return 0 rows without an error.
        """
        inner = sql.strip().rstrip(";")
        probe = f"SELECT * FROM ({inner}) AS mlops_probe WHERE 1 = 0"
        batches: Any = self.iter_batches(probe, parameters or None, batch_size=1)  # a generator
        with contextlib.closing(batches):
            names = next(batches).schema.names
        if column not in names:
            raise ValueError(
                f"Watermark column {column!r} is not a column of the query's result (its columns: {names}); "
                "names are case-sensitive"
            )
