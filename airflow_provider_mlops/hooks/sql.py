"""
Batches in and out of any common-sql database (sqlite, MySQL, ...) through its DbApiHook cursor.

This is the generic, slower path with the same interface as :class:`PostgresHook`: reads use
``fetchmany`` and build Arrow batches; writes use ``executemany`` inside one transaction. PostgreSQL
connections get the COPY-based :class:`~airflow_provider_mlops.hooks.postgres.PostgresHook`
instead (see :func:`get_sql_hook`).
"""

from __future__ import annotations

import contextlib
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import pyarrow as pa
    from airflow.providers.common.sql.hooks.sql import DbApiHook

POSTGRES_CONN_TYPES = frozenset({"postgres", "postgresql", "mlops-postgres", "mlops_postgres"})


def quote_identifier(name: str, quote: str = '"') -> str:
    """Quote one SQL identifier (``a"b`` -> ``"a""b"``); a dotted name is quoted part by part."""
    if not name or "\x00" in name:
        raise ValueError(f"Invalid SQL identifier {name!r}")
    return ".".join(quote + part.replace(quote, quote * 2) + quote for part in name.split("."))


def _generic_sql_type(data_type: pa.DataType, *, sqlite: bool = False) -> str:
    import pyarrow.types as t

    if sqlite and t.is_decimal(data_type):
        # NUMERIC affinity would turn '1234.5000' into a float: TEXT keeps every digit.
        return "TEXT"
    if t.is_boolean(data_type):
        return "BOOLEAN"
    if t.is_integer(data_type):
        return "BIGINT"
    if t.is_floating(data_type):
        return "DOUBLE PRECISION"
    if t.is_decimal(data_type):
        return f"DECIMAL({data_type.precision},{data_type.scale})"
    if t.is_timestamp(data_type):
        return "TIMESTAMP"
    if t.is_date(data_type):
        return "DATE"
    if t.is_binary(data_type) or t.is_large_binary(data_type):
        return "BLOB"
    return "TEXT"


class SqlBatchHook(BaseHook):
    """
    Stream Arrow batches from and into any database that has a common-sql ``DbApiHook``.

    :param conn_id: an Airflow connection whose hook is a ``DbApiHook`` (sqlite, mysql, ...).
    """

    conn_name_attr = "conn_id"
    default_conn_name = "sql_default"
    ROWS_PER_FETCH = 5_000
    hook_name = "Generic SQL batches (MLOps)"

    def __init__(self, conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    @cached_property
    def db_hook(self) -> DbApiHook:
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        hook = self.get_connection(self.conn_id).get_hook()
        if not isinstance(hook, DbApiHook):
            raise TypeError(
                f"Connection {self.conn_id!r} has hook {type(hook).__name__}, not a common-sql DbApiHook"
            )
        return hook

    @cached_property
    def quote_char(self) -> str:
        return "`" if "mysql" in (self.db_hook.dialect_name or "") else '"'

    @cached_property
    def is_sqlite(self) -> bool:
        """SQLite has no decimal, timestamp or date storage: those travel as exact ISO / decimal text."""
        return "sqlite" in (self.db_hook.dialect_name or "") or type(self.db_hook).__name__ == "SqliteHook"

    def quote(self, name: str) -> str:
        return quote_identifier(name, self.quote_char)

    def test_connection(self) -> tuple[bool, str]:
        # common-sql annotates DbApiHook.test_connection as returning None; it returns (bool, str).
        result: Any = self.db_hook.test_connection()  # type: ignore[func-returns-value]
        return bool(result[0]), str(result[1])

    def iter_batches(
        self,
        sql: str,
        parameters: Sequence[Any] | Mapping[str, Any] | None = None,
        *,
        batch_size: int = 50_000,
        schema: pa.Schema | None = None,
    ) -> Iterator[pa.RecordBatch]:
        """
        Run ``sql`` and stream the rows as record batches of at most ``batch_size`` rows.

        Rows are fetched and turned into Arrow columns ``ROWS_PER_FETCH`` at a time (a Python tuple
        per row costs ~10x its Arrow form), and the pieces joined into batches. Without ``schema``
        the first fetch fixes the column types (all-null columns become text).
        """
        import pyarrow as pa

        from airflow_provider_mlops.utils.arrow import concat_batches

        with contextlib.closing(self.db_hook.get_conn()) as connection:
            cursor = connection.cursor()
            try:
                if parameters:
                    cursor.execute(sql, parameters)
                else:
                    cursor.execute(sql)
                names = [d[0] for d in cursor.description or []]
                emitted = False
                pending: list[pa.RecordBatch] = []
                pending_rows = 0
                while rows := cursor.fetchmany(min(self.ROWS_PER_FETCH, batch_size - pending_rows)):
                    columns = list(zip(*rows, strict=True))
                    if schema is None:
                        first = [pa.array(list(c)) for c in columns]
                        schema = pa.schema(
                            [
                                pa.field(n, pa.string() if pa.types.is_null(a.type) else a.type)
                                for n, a in zip(names, first, strict=True)
                            ]
                        )
                        arrays = [a.cast(f.type) for a, f in zip(first, schema, strict=True)]
                    else:
                        arrays = [_typed_array(c, f, sql) for c, f in zip(columns, schema, strict=True)]
                    pending.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
                    pending_rows += len(rows)
                    if pending_rows >= batch_size:
                        emitted = True
                        yield concat_batches(pending)
                        pending, pending_rows = [], 0
                if pending:
                    emitted = True
                    yield concat_batches(pending)
                if not emitted and names:
                    # No rows: still hand the columns on (as text unless a schema was given).
                    empty = schema or pa.schema([pa.field(n, pa.string()) for n in names])
                    yield pa.RecordBatch.from_pylist([], schema=empty)
            finally:
                cursor.close()

    def write_batches(
        self,
        table: str,
        batches: Iterable[pa.RecordBatch],
        *,
        mode: str = "append",
        keys: Sequence[str] | None = None,
        partition: Mapping[str, Any] | None = None,
        create_table: bool = True,
        schema: pa.Schema | None = None,
        newer_column: str | None = None,
        **_: Any,
    ) -> dict[str, int]:
        """
        Write batches with ``executemany`` in one transaction (modes as in ``PostgresHook``).

        ``upsert`` uses ``INSERT ... ON CONFLICT (keys) DO UPDATE`` (SQLite, PostgreSQL) or
        ``ON DUPLICATE KEY UPDATE`` (MySQL).
        """
        from airflow_provider_mlops.utils.arrow import conform, peek_schema, rebatch

        if mode not in ("append", "replace", "replace_partition", "upsert"):
            raise ValueError(f"Unknown mode {mode!r}")
        if mode == "upsert" and not keys:
            raise ValueError("mode='upsert' needs keys=[...]")
        if mode == "replace_partition" and not partition:
            raise ValueError("mode='replace_partition' needs partition={column: value}")
        schema, stream = peek_schema(batches, schema)
        counts = {"rows": 0, "inserted": 0, "updated": 0, "deleted": 0}
        if schema is None or not schema.names:
            self.log.info("No columns to write to %s: nothing to do", table)
            return counts
        names = list(schema.names)
        placeholder = self.db_hook.placeholder
        target = self.quote(table)
        cols = ", ".join(self.quote(n) for n in names)
        insert = f"INSERT INTO {target} ({cols}) VALUES ({', '.join([placeholder] * len(names))})"
        if mode == "upsert":
            others = [n for n in names if n not in (keys or [])]
            if self.quote_char == "`":
                updates = ", ".join(f"{self.quote(n)} = VALUES({self.quote(n)})" for n in others)
                insert += f" ON DUPLICATE KEY UPDATE {updates}" if others else ""
            else:
                conflict = ", ".join(self.quote(k) for k in keys or [])
                updates = ", ".join(f"{self.quote(n)} = excluded.{self.quote(n)}" for n in others)
                insert += f" ON CONFLICT ({conflict}) " + (
                    f"DO UPDATE SET {updates}" if others else "DO NOTHING"
                )
                if newer_column and others:
                    column = self.quote(newer_column)
                    insert += f" WHERE {target}.{column} IS NULL OR {target}.{column} <= excluded.{column}"
        connection = self.db_hook.get_conn()
        try:
            cursor = connection.cursor()
            if create_table:
                columns = [
                    f"{self.quote(f.name)} {_generic_sql_type(f.type, sqlite=self.is_sqlite)}" for f in schema
                ]
                if mode == "upsert":
                    columns.append(f"PRIMARY KEY ({', '.join(self.quote(k) for k in keys or [])})")
                cursor.execute(f"CREATE TABLE IF NOT EXISTS {target} ({', '.join(columns)})")
            if mode == "replace":
                cursor.execute(f"DELETE FROM {target}")
                counts["deleted"] = max(cursor.rowcount, 0)
            elif mode == "replace_partition":
                where = " AND ".join(f"{self.quote(c)} = {placeholder}" for c in partition or {})
                cursor.execute(f"DELETE FROM {target} WHERE {where}", list((partition or {}).values()))
                counts["deleted"] = max(cursor.rowcount, 0)
            # executemany per 5,000-row slice: the Python tuples never hold a whole batch.
            for batch in rebatch(conform(stream, schema), self.ROWS_PER_FETCH):
                rows = list(
                    zip(*(_python_column(c, sqlite=self.is_sqlite) for c in batch.columns), strict=True)
                )
                if rows:
                    cursor.executemany(insert, rows)
                counts["rows"] += len(rows)
            counts["inserted"] = counts["rows"]
            connection.commit()
        except Exception:
            connection.rollback()
            raise
        finally:
            connection.close()
        return counts


def _python_column(column: pa.Array, *, sqlite: bool = False) -> list[Any]:
    """
    Values a DB-API driver accepts: nested values as JSON text, timezone-aware datetimes kept.

    For SQLite (no decimal or date/time types; Python 3.12 deprecates its datetime adapters),
    decimals, timestamps and dates go as text that casts back exactly: ``1234.5000``,
    ``2024-01-02 03:04:05.123000+00:00``, ``2024-01-02``.
    """
    import pyarrow.types as t

    from airflow_provider_mlops.utils.arrow import dumps_json

    values = column.to_pylist()
    if t.is_struct(column.type) or t.is_list(column.type) or t.is_map(column.type):
        return [None if v is None else dumps_json(v) for v in values]
    if sqlite and t.is_decimal(column.type):
        return [None if v is None else str(v) for v in values]
    if sqlite and t.is_timestamp(column.type):
        return [None if v is None else v.isoformat(sep=" ", timespec="microseconds") for v in values]
    if sqlite and (t.is_date(column.type) or t.is_time(column.type)):
        return [None if v is None else v.isoformat() for v in values]
    return values


def _typed_array(values: Sequence[Any], field: pa.Field, sql: str) -> pa.Array:
    """
    ``values`` as an array of ``field.type``: directly, or through Arrow's cast from what the driver
    returned (text decimals and timestamps from SQLite, 0/1 booleans), naming the column otherwise.
    """
    import pyarrow as pa

    from airflow_provider_mlops.utils.arrow import SchemaMismatchError

    try:
        return pa.array(list(values), type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        pass
    try:
        return pa.array(list(values)).cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError) as err:
        raise SchemaMismatchError(
            f"Column {field.name!r} of {sql[:80]!r} does not fit {field.type} ({err}); pass a schema that does"
        ) from None


def get_sql_hook(conn_id: str) -> Any:
    """The batch hook for a SQL connection: COPY-based for PostgreSQL, generic otherwise."""
    conn_type = (BaseHook.get_connection(conn_id).conn_type or "").lower()
    if conn_type in POSTGRES_CONN_TYPES:
        from airflow_provider_mlops.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=conn_id)
    return SqlBatchHook(conn_id)
