"""
Batches in and out of any common-sql database (sqlite, MySQL, ...) through its DbApiHook cursor.

This is the generic, slower path with the same interface as :class:`PostgresHook`: reads use
``fetchmany`` and build Arrow batches; writes use ``executemany`` inside one transaction. PostgreSQL
connections get the COPY-based :class:`~airflow_provider_mlops.hooks.postgres.PostgresHook`
instead (see :func:`get_sql_hook`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    import pyarrow as pa
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_mlops.sinks.contract import OnEmpty

POSTGRES_CONN_TYPES = frozenset({"postgres", "postgresql", "mlops-postgres", "mlops_postgres"})


def quote_identifier(name: str, quote: str = '"') -> str:
    """Quote one SQL identifier (``a"b`` -> ``"a""b"``); a dotted name is quoted part by part."""
    if not name or "\x00" in name:
        raise ValueError(f"Invalid SQL identifier {name!r}")
    return ".".join(quote + part.replace(quote, quote * 2) + quote for part in name.split("."))


def _generic_sql_type(
    data_type: pa.DataType, *, sqlite: bool = False, mysql: bool = False, key: bool = False
) -> str:
    import pyarrow.types as t

    if sqlite and t.is_decimal(data_type):
        # NUMERIC affinity would turn '1234.5000' into a float: TEXT keeps every digit.
        return "TEXT"
    if mysql:
        if t.is_string(data_type) or t.is_large_string(data_type):
            # A TEXT column cannot be a key; 255 characters of utf8mb4 fit InnoDB's 3,072-byte key limit.
            return "VARCHAR(255)" if key else "LONGTEXT"
        if t.is_binary(data_type) or t.is_large_binary(data_type):
            return "VARBINARY(255)" if key else "LONGBLOB"
        if t.is_timestamp(data_type):
            # TIMESTAMP would convert through the session time zone and stop in 2038.
            return "DATETIME(6)"
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

        connection = self.get_connection(self.conn_id)
        try:
            hook = connection.get_hook()
        except Exception:
            from airflow_provider_mlops.hooks.mysql import MYSQL_CONN_TYPES, MySqlHook

            if (connection.conn_type or "").lower() not in MYSQL_CONN_TYPES:
                raise
            # Airflow's MySQL provider is not installed: the PyMySQL hook serves the same connection.
            hook = MySqlHook(mysql_conn_id=self.conn_id)
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

    @cached_property
    def is_mysql(self) -> bool:
        """MySQL / MariaDB: backtick identifiers, ``ON DUPLICATE KEY UPDATE``, no NaN or infinity."""
        return self.quote_char == "`"

    def table_columns(self, cursor: Any, table: str) -> list[str] | None:
        """
        The column names of ``table`` (from a query that returns no rows), or None when the
        database does not know the table.
        """
        try:
            cursor.execute(f"SELECT * FROM {self.quote(table)} WHERE 1 = 0")
            names = [d[0] for d in cursor.description or []]
            cursor.fetchall()
        except Exception:
            return None
        return names

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
        on_empty: OnEmpty = "skip",
        **_: Any,
    ) -> dict[str, int]:
        """
        Write batches with ``executemany`` in one transaction (modes, keys, ``on_empty`` and counts
        as in :meth:`PostgresHook.write_batches
        <airflow_provider_mlops.hooks.postgres.PostgresHook.write_batches>`).

        ``upsert`` uses ``INSERT ... ON CONFLICT (keys) DO UPDATE`` (SQLite, PostgreSQL) or
        ``ON DUPLICATE KEY UPDATE`` (MySQL, MariaDB); ``updated`` counts the rows whose key was
        already stored (with ``newer_column``, also those kept because the stored row is newer).
        Unknown target columns, NULL keys and keys repeated within the load are errors found
        before the commit: the table is left as it was.
        """
        from airflow_provider_mlops.sinks import contract
        from airflow_provider_mlops.utils.arrow import conform, peek_schema, rebatch

        contract.check_options(
            mode=mode, modes=contract.SQL_MODES, keys=keys, partition=partition, on_empty=on_empty
        )
        schema, stream = peek_schema(batches, schema)
        counts = contract.new_counts()
        if schema is None or not schema.names:
            self.log.info("No columns to write to %s: nothing to do", table)
            return counts
        names = list(schema.names)
        contract.check_columns(names, keys=keys, partition=partition, newer_column=newer_column)
        empty, stream = contract.split_empty(stream)
        if empty and contract.empty_outcome(on_empty, target=f"table {table!r}") == "skip":
            self.log.info(
                "No rows for %s (mode=%s, on_empty=%s): the table is not touched", table, mode, on_empty
            )
            return counts
        target = self.quote(table)
        insert = self._insert_sql(target, names, mode, keys, newer_column)
        key_check = contract.KeyCheck(keys) if mode == "upsert" and keys else None
        if key_check is not None:
            stream = key_check.watch(stream)
        connection = self.db_hook.get_conn()
        try:
            cursor = connection.cursor()
            existing = self.table_columns(cursor, table)
            if existing is None:
                # A failed probe may have aborted the transaction on some databases: nothing is written yet.
                connection.rollback()
                if not create_table:
                    raise contract.WriteContractError(
                        f"Table {table!r} does not exist (or cannot be read) and create_table=False"
                    )
                cursor.execute(self.create_table_sql(table, schema, keys if mode == "upsert" else None))
            else:
                # SQLite and MySQL match column names case-insensitively, as their INSERT does.
                known = {n.casefold() for n in existing}
                unknown = [n for n in names if n.casefold() not in known]
                if unknown:
                    raise contract.WriteContractError(
                        f"Column(s) {unknown} do not exist in table {table!r} (its columns: {existing}); "
                        "nothing was written"
                    )
            if mode == "replace":
                cursor.execute(f"DELETE FROM {target}")
                counts["deleted"] = max(cursor.rowcount, 0)
            elif mode == "replace_partition":
                where, values = self._partition_where(partition or {})
                cursor.execute(f"DELETE FROM {target} WHERE {where}", values)
                counts["deleted"] = max(cursor.rowcount, 0)
            # executemany per 5,000-row slice: the Python tuples never hold a whole batch.
            for batch in rebatch(conform(stream, schema), self.ROWS_PER_FETCH):
                columns = [
                    _python_column(c, sqlite=self.is_sqlite, mysql=self.is_mysql, name=n)
                    for c, n in zip(batch.columns, names, strict=True)
                ]
                rows = list(zip(*columns, strict=True))
                if not rows:
                    continue
                if key_check is not None:
                    positions = [names.index(k) for k in keys or []]
                    counts["updated"] += self._count_stored(cursor, target, keys or [], positions, rows)
                cursor.executemany(insert, rows)
                counts["rows"] += len(rows)
            counts["inserted"] = counts["rows"] - counts["updated"]
            if key_check is not None:
                key_check.verify()
            if mode == "replace_partition":
                where, values = self._partition_where(partition or {})
                cursor.execute(f"SELECT COUNT(*) FROM {target} WHERE {where}", values)
                stored = int(cursor.fetchone()[0])
                if stored != counts["rows"]:
                    raise contract.WriteContractError(
                        f"replace_partition: {counts['rows']} rows were written but {stored} rows in the "
                        f"target match partition {dict(partition or {})}: every written row must belong "
                        "to the partition; nothing was written"
                    )
            connection.commit()
        except Exception:
            connection.rollback()
            raise
        finally:
            connection.close()
        self.log.info("Wrote %s rows to %s (mode=%s): %s", counts["rows"], table, mode, counts)
        return counts

    def create_table_sql(self, table: str, schema: pa.Schema, keys: Sequence[str] | None = None) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for an Arrow schema in this database's types."""
        columns = [
            f"{self.quote(f.name)} "
            + _generic_sql_type(
                f.type, sqlite=self.is_sqlite, mysql=self.is_mysql, key=f.name in (keys or [])
            )
            for f in schema
        ]
        if keys:
            columns.append(f"PRIMARY KEY ({', '.join(self.quote(k) for k in keys)})")
        return f"CREATE TABLE IF NOT EXISTS {self.quote(table)} ({', '.join(columns)})"

    def _insert_sql(
        self, target: str, names: list[str], mode: str, keys: Sequence[str] | None, newer_column: str | None
    ) -> str:
        cols = ", ".join(self.quote(n) for n in names)
        insert = (
            f"INSERT INTO {target} ({cols}) VALUES ({', '.join([self.db_hook.placeholder] * len(names))})"
        )
        if mode != "upsert":
            return insert
        others = [n for n in names if n not in (keys or [])]
        if self.is_mysql:
            if not others:
                # A no-op assignment: a stored key is left as it is, as DO NOTHING does.
                first = self.quote((keys or [])[0])
                return f"{insert} ON DUPLICATE KEY UPDATE {first} = {first}"
            if newer_column:
                newer = self.quote(newer_column)
                keep = f"{target}.{newer} IS NULL OR {target}.{newer} <= VALUES({newer})"
                # Assignments run left to right and see earlier ones: the newer column goes last.
                ordered = sorted(others, key=lambda n: n == newer_column)
                updates = ", ".join(
                    f"{self.quote(n)} = IF({keep}, VALUES({self.quote(n)}), {self.quote(n)})" for n in ordered
                )
            else:
                updates = ", ".join(f"{self.quote(n)} = VALUES({self.quote(n)})" for n in others)
            return f"{insert} ON DUPLICATE KEY UPDATE {updates}"
        conflict = ", ".join(self.quote(k) for k in keys or [])
        updates = ", ".join(f"{self.quote(n)} = excluded.{self.quote(n)}" for n in others)
        insert += f" ON CONFLICT ({conflict}) " + (f"DO UPDATE SET {updates}" if others else "DO NOTHING")
        if newer_column and others:
            column = self.quote(newer_column)
            insert += f" WHERE {target}.{column} IS NULL OR {target}.{column} <= excluded.{column}"
        return insert

    def _partition_where(self, partition: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """``a = ? AND b IS NULL`` and its parameters (a NULL partition value matches NULL)."""
        parts, values = [], []
        for column, value in partition.items():
            if value is None:
                parts.append(f"{self.quote(column)} IS NULL")
            else:
                parts.append(f"{self.quote(column)} = {self.db_hook.placeholder}")
                values.append(value)
        return " AND ".join(parts), values

    def _count_stored(
        self, cursor: Any, target: str, keys: Sequence[str], positions: list[int], rows: list[tuple[Any, ...]]
    ) -> int:
        """How many of ``rows`` have a key already stored in ``target`` (so upsert updates them)."""
        placeholder = self.db_hook.placeholder
        stored = 0
        # Chunks of 200 rows stay far below every driver's parameter limit (SQLite's is 999 on old builds).
        for start in range(0, len(rows), 200):
            chunk = rows[start : start + 200]
            if len(keys) == 1:
                where = f"{self.quote(keys[0])} IN ({', '.join([placeholder] * len(chunk))})"
                values = [row[positions[0]] for row in chunk]
            else:
                match = "(" + " AND ".join(f"{self.quote(k)} = {placeholder}" for k in keys) + ")"
                where = " OR ".join([match] * len(chunk))
                values = [row[p] for row in chunk for p in positions]
            cursor.execute(f"SELECT COUNT(*) FROM {target} WHERE {where}", values)
            stored += int(cursor.fetchone()[0])
        return stored


def _python_column(
    column: pa.Array, *, sqlite: bool = False, mysql: bool = False, name: str = ""
) -> list[Any]:
    """
    Values a DB-API driver accepts: nested values as JSON text, timezone-aware datetimes kept.

    For SQLite (no decimal or date/time types; Python 3.12 deprecates its datetime adapters),
    decimals, timestamps and dates go as text that casts back exactly: ``1234.5000``,
    ``2024-01-02 03:04:05.123000+00:00``, ``2024-01-02``. MySQL / MariaDB ``DATETIME`` has no time
    zone: aware timestamps go as UTC wall time; NaN and infinity, which it cannot store, are an error.
    """
    import pyarrow.types as t

    from airflow_provider_mlops.utils.arrow import dumps_json

    values = column.to_pylist()
    if t.is_struct(column.type) or t.is_list(column.type) or t.is_map(column.type):
        return [None if v is None else dumps_json(v) for v in values]
    if mysql and t.is_floating(column.type):
        import pyarrow.compute as pc

        bad = pc.invert(pc.fill_null(pc.is_finite(column), True))
        if pc.any(bad).as_py():
            row = pc.indices_nonzero(bad)[0].as_py()
            raise ValueError(
                f"MySQL / MariaDB cannot store NaN or infinity: column {name!r} holds {values[row]} "
                f"(row {row} of a batch); map them to NULL or a number upstream"
            )
    if mysql and t.is_timestamp(column.type) and column.type.tz is not None:
        return [None if v is None else v.astimezone(dt.UTC).replace(tzinfo=None) for v in values]
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
